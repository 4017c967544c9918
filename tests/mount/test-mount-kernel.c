/* The on-disk format against the kernel's overlayfs (root only): an upper
 * and workdir written by plyfs mount under the kernel and show the same
 * tree, and one written by the kernel (chardev whiteouts, opaque and
 * redirected directories, metacopy files) shows the same tree under
 * plyfs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

static void need_kernel_overlay(void)
{
	FILE *f;
	char line[256];
	bool found = false;

	h_need_root();
	f = fopen("/proc/filesystems", "re");
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, "\toverlay\n") != NULL;
	if (f)
		fclose(f);
	if (!found) {
		print_message("no overlay filesystem in this kernel\n");
		skip();
	}
}

static const char *layers(void)
{
	return h_fmt("%s,upperdir=%s,workdir=%s", h_lowerdir("l1", "l2", NULL),
		     h_path("u"), h_path("w"));
}

static struct h_mount *mount_plyfs(void)
{
	return h_mount(layers(), "mnt");
}

/* The kernel's overlayfs on the same layers at kmnt: with metacopy and
 * redirect_dir where it has them, else plain. */
static struct h_mount *mount_kernel(void)
{
	const char *opts = h_fmt("%s", layers());
	struct h_mount *m;
	int r;

	r = h_kmount("overlay", "overlay",
		     h_fmt("%s,metacopy=on,redirect_dir=on", opts), "kmnt",
		     &m);
	if (r < 0) {
		print_message("overlay with metacopy=on,redirect_dir=on: %s;"
			      " trying without\n", strerror(-r));
		r = h_kmount("overlay", "overlay", opts, "kmnt", &m);
	}
	if (r == -ENODEV) {
		print_message("mount -t overlay: %s\n", strerror(-r));
		skip();
	}
	if (r < 0)
		fail_msg("mount -t overlay %s: %s", opts, strerror(-r));
	return m;
}

static void write_file(const char *path, const char *content, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0644);
	size_t len = strlen(content);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	if (write(fd, content, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	h_assert_ok(close(fd));
}

/* The lower layers both directions start from. */
static void build_lowers(void)
{
	h_file("l2/mod", "modify me: ");
	h_file("l2/chm", "chmod only, data stays below");
	h_file("l2/chmren", "chmod then rename");
	h_file("l2/trunc", "truncate me");
	h_file("l2/del", "delete me");
	h_file("l2/lnk", "link me");
	h_file("l2/dir/a", "a");
	h_file("l2/dir/sub/b", "b");
	h_file("l1/dir/c", "c");
	h_file("l2/deldir/x", "x");
	h_file("l2/opq/old", "old");
	h_file("l1/opq/old2", "old2");
	h_file("l2/mv/m1", "m1");
	h_file("l2/mv/deep/m2", "m2");
	h_file("l2/mv2/q", "q");
	h_mkdir("l2/target");
	h_file("l1/keep", "keep");
	h_symlink("dir/a", "l2/sl");
	h_mkdir("u");
	h_mkdir("w");
}

/* The same changes through either mount at mnt. Returns 0, or the errno
 * of the step that failed among those whose failure does not stop the
 * rest (recorded in *what). */
static int make_changes(const char *where, const char **what)
{
	char mnt[PATH_MAX];
	int ret = 0;

	/* where lives in a rotating buffer the h_fmt calls reuse */
	snprintf(mnt, sizeof(mnt), "%s", where);
	write_file(h_fmt("%s/new", mnt), "new file", O_CREAT | O_EXCL);
	h_assert_ok(mkdir(h_fmt("%s/newdir", mnt), 0750));
	write_file(h_fmt("%s/newdir/n", mnt), "n", O_CREAT | O_EXCL);
	h_assert_ok(symlink("../new", h_fmt("%s/newdir/sl", mnt)));
	h_assert_ok(mkfifo(h_fmt("%s/newdir/fifo", mnt), 0600));
	write_file(h_fmt("%s/mod", mnt), "modified", O_APPEND);
	write_file(h_fmt("%s/dir/a", mnt), "+", O_APPEND);
	h_assert_ok(chmod(h_fmt("%s/chm", mnt), 0600));
	h_assert_ok(chmod(h_fmt("%s/chmren", mnt), 0640));
	h_assert_ok(rename(h_fmt("%s/chmren", mnt),
			   h_fmt("%s/dir/chmren2", mnt)));
	h_assert_ok(truncate(h_fmt("%s/trunc", mnt), 4));
	h_assert_ok(unlink(h_fmt("%s/del", mnt)));
	h_assert_ok(unlink(h_fmt("%s/dir/sub/b", mnt)));
	h_assert_ok(link(h_fmt("%s/lnk", mnt), h_fmt("%s/newdir/lnk2", mnt)));
	h_assert_ok(lsetxattr(h_fmt("%s/keep", mnt), "user.k", "v", 1, 0));
	h_assert_ok(unlink(h_fmt("%s/deldir/x", mnt)));
	h_assert_ok(rmdir(h_fmt("%s/deldir", mnt)));
	/* a lower directory renamed: a redirect (same parent, and one to
	 * another directory) */
	h_assert_ok(rename(h_fmt("%s/mv", mnt), h_fmt("%s/mvd", mnt)));
	h_assert_ok(rename(h_fmt("%s/mv2", mnt), h_fmt("%s/target/mv2", mnt)));
	write_file(h_fmt("%s/mvd/added", mnt), "added", O_CREAT | O_EXCL);
	/* deleted and made again: opaque */
	h_assert_ok(unlink(h_fmt("%s/opq/old", mnt)));
	h_assert_ok(unlink(h_fmt("%s/opq/old2", mnt)));
	h_assert_ok(rmdir(h_fmt("%s/opq", mnt)));
	if (mkdir(h_fmt("%s/opq", mnt), 0755) < 0) {
		ret = errno;
		*what = "mkdir opq (a deleted lower directory made again)";
	} else {
		write_file(h_fmt("%s/opq/fresh", mnt), "fresh",
			   O_CREAT | O_EXCL);
	}
	return ret;
}

static void check_result(const char *where)
{
	char mnt[PATH_MAX];

	snprintf(mnt, sizeof(mnt), "%s", where);
	h_assert_listing(mnt, H_NAMES("new", "newdir", "mod", "chm", "trunc",
				      "lnk", "dir", "opq", "mvd", "target",
				      "keep", "sl"));
	h_assert_listing(h_fmt("%s/dir", mnt),
			 H_NAMES("a", "c", "sub", "chmren2"));
	h_assert_listing(h_fmt("%s/dir/sub", mnt), H_NONE);
	h_assert_listing(h_fmt("%s/mvd", mnt), H_NAMES("m1", "deep", "added"));
	h_assert_listing(h_fmt("%s/target/mv2", mnt), H_NAMES("q"));
	h_assert_content(h_fmt("%s/dir/chmren2", mnt), "chmod then rename");
	h_assert_content(h_fmt("%s/chm", mnt), "chmod only, data stays below");
	h_assert_content(h_fmt("%s/mvd/deep/m2", mnt), "m2");
	h_assert_content(h_fmt("%s/mod", mnt), "modify me: modified");
}

static void plyfs_then_kernel(void **state)
{
	struct h_tree ply, kern;
	struct h_mount *m;
	const char *what = NULL;
	int soft;

	need_kernel_overlay();
	build_lowers();
	m = mount_plyfs();
	soft = make_changes(h_path("mnt"), &what);
	h_tree_walk(h_path("mnt"), &ply);
	assert_int_equal(h_umount(m), 0);

	m = mount_kernel();
	h_tree_walk(h_path("kmnt"), &kern);
	h_tree_assert_equal(&ply, &kern, H_CMP_MODE | H_CMP_OWNER,
			    "plyfs's view, then the kernel's of the same "
			    "upper");
	h_tree_free(&ply);
	h_tree_free(&kern);
	check_result(h_path("kmnt"));
	h_assert_listing(h_path("l2/mv"), H_NAMES("m1", "deep"));
	if (soft)
		fail_msg("through plyfs: %s: %s", what, strerror(soft));
	h_assert_listing(h_path("kmnt/opq"), H_NAMES("fresh"));
	h_umount(m);
}

static void kernel_then_plyfs(void **state)
{
	struct h_tree ply, kern;
	struct h_mount *m;
	const char *what = NULL;
	char val[8];
	int soft;

	need_kernel_overlay();
	build_lowers();
	m = mount_kernel();
	soft = make_changes(h_path("kmnt"), &what);
	if (soft)
		fail_msg("through the kernel: %s: %s", what, strerror(soft));
	check_result(h_path("kmnt"));
	h_assert_listing(h_path("kmnt/opq"), H_NAMES("fresh"));
	h_tree_walk(h_path("kmnt"), &kern);
	h_umount(m);
	/* what the kernel wrote: the markers plyfs must read */
	{
		struct stat st;

		h_assert_ok(lstat(h_path("u/del"), &st));
		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(lgetxattr(h_path("u/opq"),
					   "trusted.overlay.opaque", val,
					   sizeof(val)),
				 1);
		if (lgetxattr(h_path("u/mvd"), "trusted.overlay.redirect", val,
			      sizeof(val)) < 0)
			print_message("the kernel left no redirect on u/mvd: "
				      "%s\n", strerror(errno));
	}

	m = mount_plyfs();
	h_tree_walk(h_path("mnt"), &ply);
	h_tree_assert_equal(&kern, &ply, H_CMP_MODE | H_CMP_OWNER,
			    "the kernel's view, then plyfs's of the same "
			    "upper");
	h_tree_free(&ply);
	h_tree_free(&kern);
	check_result(h_path("mnt"));
	h_assert_listing(h_path("mnt/opq"), H_NAMES("fresh"));
	/* and plyfs goes on writing to it */
	write_file(h_path("mnt/chm"), "!", O_APPEND);
	h_assert_content(h_path("mnt/chm"), "chmod only, data stays below!");
	h_assert_content(h_path("l2/chm"), "chmod only, data stays below");
	(void)m;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(plyfs_then_kernel),
		H_TEST(kernel_then_plyfs),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
