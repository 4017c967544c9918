/* Attributes as a user sees them: lstat of every file type equals the layer
 * object's, symlinks are returned and never followed by the daemon, user
 * xattrs are readable and private ones invisible, statfs, directory nlink. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

#define FUSE_SUPER_MAGIC 0x65735546

/* What lstat through the mount must report for a layer object. */
static void assert_same_attr(const char *layer_rel, const char *mnt_rel)
{
	struct stat lo, st;

	h_assert_ok(lstat(h_path("%s", layer_rel), &lo));
	h_assert_ok(lstat(h_path("%s", mnt_rel), &st));
	if (lo.st_mode != st.st_mode)
		fail_msg("%s: mode 0%o, layer has 0%o", mnt_rel, st.st_mode,
			 lo.st_mode);
	assert_int_equal(st.st_uid, lo.st_uid);
	assert_int_equal(st.st_gid, lo.st_gid);
	assert_int_equal(st.st_size, lo.st_size);
	assert_int_equal(st.st_mtim.tv_sec, lo.st_mtim.tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, lo.st_mtim.tv_nsec);
	if (S_ISCHR(lo.st_mode) || S_ISBLK(lo.st_mode)) {
		assert_int_equal(major(st.st_rdev), major(lo.st_rdev));
		assert_int_equal(minor(st.st_rdev), minor(lo.st_rdev));
	}
	if (!S_ISDIR(lo.st_mode))
		assert_int_equal(st.st_nlink, lo.st_nlink);
}

/* Gives rel an owner, a mode and times that no default would produce. */
static void distinct_attr(const char *rel, mode_t mode, long nsec)
{
	const char *p = h_path("%s", rel);

	if (h_is_root())
		h_assert_ok(lchown(p, 1234, 5678));
	if (mode)
		h_assert_ok(chmod(p, mode));
	h_times(rel, 1234567890, nsec);
}

static void attr_regular_dir(void **state)
{
	h_file("l2/f", "some bytes");
	distinct_attr("l2/f", 0604, 111);
	h_file("l1/top", "top file");
	distinct_attr("l1/top", 04751, 222);
	h_file("l2/dir/x", "");
	distinct_attr("l2/dir", 0751, 333);
	h_file("l1/empty", "");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	assert_same_attr("l2/f", "mnt/f");
	assert_same_attr("l1/top", "mnt/top");
	assert_same_attr("l2/dir", "mnt/dir");
	assert_same_attr("l1/empty", "mnt/empty");
}

static void attr_symlink(void **state)
{
	char buf[PATH_MAX];
	struct stat st, host;
	ssize_t n;

	h_symlink("f", "l1/rel");
	h_symlink("/etc/passwd", "l1/abs");
	h_symlink("../../../../../../etc/passwd", "l1/escape");
	h_symlink("/nonexistent/plyfs/target", "l2/dangling");
	h_symlink("d/f", "l2/through");
	h_file("l1/f", "top f");
	h_file("l1/d/f", "top d/f");
	h_file("l2/d/f", "bottom d/f");
	distinct_attr("l1/abs", 0, 444);
	h_mount_lowers("mnt", "l1", "l2", NULL);

	assert_same_attr("l1/rel", "mnt/rel");
	assert_same_attr("l1/abs", "mnt/abs");
	assert_same_attr("l2/dangling", "mnt/dangling");

	/* returned as-is, size of the target string, not of /etc/passwd */
	h_assert_ok(lstat(h_path("mnt/abs"), &st));
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_size, strlen("/etc/passwd"));
	n = readlink(h_path("mnt/abs"), buf, sizeof(buf));
	assert_int_equal(n, strlen("/etc/passwd"));
	assert_memory_equal(buf, "/etc/passwd", n);
	n = readlink(h_path("mnt/escape"), buf, sizeof(buf));
	assert_int_equal(n, strlen("../../../../../../etc/passwd"));
	assert_memory_equal(buf, "../../../../../../etc/passwd", n);
	n = readlink(h_path("mnt/dangling"), buf, sizeof(buf));
	assert_int_equal(n, strlen("/nonexistent/plyfs/target"));

	/* Resolution is the kernel's, as on any filesystem: an absolute
	 * target is the host's file, a relative one the merged tree's. */
	h_assert_ok(stat(h_path("mnt/abs"), &st));
	h_assert_ok(stat("/etc/passwd", &host));
	assert_int_equal(st.st_dev, host.st_dev);
	assert_int_equal(st.st_ino, host.st_ino);
	h_assert_content(h_path("mnt/through"), "top d/f");
	h_assert_content(h_path("mnt/rel"), "top f");
	h_assert_errno(stat(h_path("mnt/dangling"), &st), ENOENT);
}

static void attr_fifo_socket(void **state)
{
	struct stat st;

	h_fifo("l1/fifo");
	distinct_attr("l1/fifo", 0620, 555);
	h_socket("l2/sock");
	distinct_attr("l2/sock", 0751, 666);
	h_mount_lowers("mnt", "l1", "l2", NULL);

	assert_same_attr("l1/fifo", "mnt/fifo");
	h_assert_ok(lstat(h_path("mnt/fifo"), &st));
	assert_true(S_ISFIFO(st.st_mode));
	assert_same_attr("l2/sock", "mnt/sock");
	h_assert_ok(lstat(h_path("mnt/sock"), &st));
	assert_true(S_ISSOCK(st.st_mode));
}

static void attr_devices(void **state)
{
	struct stat st;

	h_need_root();
	h_mknod("l1/null", S_IFCHR | 0666, makedev(1, 3));
	h_mknod("l2/d/chr", S_IFCHR | 0600, makedev(136, 1025));
	h_mknod("l2/loop", S_IFBLK | 0660, makedev(7, 0));
	distinct_attr("l2/loop", 0, 777);
	h_mount_lowers("mnt", "l1", "l2", NULL);

	assert_same_attr("l1/null", "mnt/null");
	assert_same_attr("l2/d/chr", "mnt/d/chr");
	assert_same_attr("l2/loop", "mnt/loop");
	h_assert_ok(lstat(h_path("mnt/loop"), &st));
	assert_true(S_ISBLK(st.st_mode));
	h_assert_listing(h_path("mnt"), H_NAMES("null", "d", "loop"));
}

/* Is name in the listxattr result of path? */
static bool xattr_listed(const char *path, const char *name)
{
	char buf[65536];
	ssize_t n = llistxattr(path, buf, sizeof(buf));

	if (n < 0)
		fail_msg("listxattr %s: %s", path, strerror(errno));
	for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1) {
		if (!strcmp(buf + i, name))
			return true;
	}
	return false;
}

static void xattr_user_visible(void **state)
{
	char **names;
	size_t nnames;
	const char *f;
	char buf[256];
	ssize_t n;

	h_file("l2/f", "x");
	h_xattr("l2/f", "user.color", "blue");
	h_xattr("l2/f", "user.empty", "");
	h_xattr("l2/f", "trusted.color", "red");
	h_file("l1/d/x", "");
	h_file("l2/d/y", "");
	h_xattr("l1/d", "user.dirattr", "top");
	assert_int_equal(symlink("f", h_path("l2/ln")), 0);
	h_mount_lowers("mnt", "l1", "l2", NULL);

	f = strdup(h_path("mnt/f"));
	n = lgetxattr(f, "user.color", buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "blue", 4);
	assert_int_equal(lgetxattr(f, "user.color", NULL, 0), 4);
	assert_int_equal(lgetxattr(f, "user.empty", buf, sizeof(buf)), 0);
	h_assert_errno(lgetxattr(f, "user.nothere", buf, sizeof(buf)),
		       ENODATA);
	assert_true(xattr_listed(f, "user.color"));
	assert_true(xattr_listed(f, "user.empty"));
	/* the size query covers the whole list */
	assert_true(llistxattr(f, NULL, 0) >= (ssize_t)sizeof("user.color") +
		    (ssize_t)sizeof("user.empty"));
	free((char *)f);
	/* a symlink's own xattrs, not its target's; met in a listing
	 * first, it is read through its parent directory */
	names = h_listdir(h_path("mnt"), &nnames);
	h_strv_free(names, nnames);
	h_assert_errno(lgetxattr(h_path("mnt/ln"), "trusted.color", buf,
				 sizeof(buf)), ENODATA);

	n = lgetxattr(h_path("mnt/d"), "user.dirattr", buf, sizeof(buf));
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "top", 3);
	assert_true(xattr_listed(h_path("mnt/d"), "user.dirattr"));
}

/* A private xattr reads as absent: ENODATA, or EOPNOTSUPP as the kernel's
 * overlayfs answers for its own names; never a value. */
static void assert_xattr_unreadable(const char *path, const char *name)
{
	char buf[256];
	ssize_t n;

	n = lgetxattr(path, name, buf, sizeof(buf));
	if (n >= 0 || (errno != ENODATA && errno != EOPNOTSUPP))
		fail_msg("getxattr %s %s: %zd (%s)", path, name, n,
			 n >= 0 ? "a value" : strerrorname_np(errno));
	n = lgetxattr(path, name, NULL, 0);
	if (n >= 0 || (errno != ENODATA && errno != EOPNOTSUPP))
		fail_msg("getxattr %s %s (size): %zd", path, name, n);
}

/* Private xattrs: neither readable nor listed, on files and directories.
 * The names carry no meaning for a lower layer, so only hiding is tested. */
static void xattr_private_hidden(void **state)
{
	static const char *const private_user[] = {
		"user.overlay.impure", "user.overlay.zz-test",
		"user.plyfs.meta",
	};
	/* root: *.plyfs.* in every namespace root may write */
	static const char *const private_trusted[] = {
		"trusted.overlay.impure", "trusted.overlay.zz-test",
		"trusted.plyfs.id", "security.plyfs.id",
	};
	const size_t nuser = sizeof(private_user) / sizeof(*private_user);
	const size_t ntrusted =
		sizeof(private_trusted) / sizeof(*private_trusted);
	bool root = h_is_root();

	h_file("l1/other", "x");
	h_file("l2/f", "x");
	h_file("l2/d/y", "");
	/* the opaque=x marker of a directory is private too */
	h_xattr("l2/d", "user.overlay.opaque", "x");
	for (int obj = 0; obj < 2; obj++) {
		const char *rel = obj ? "l2/d" : "l2/f";

		h_xattr(rel, "user.keep", "1");
		for (size_t i = 0; i < nuser; i++)
			h_xattr(rel, private_user[i], "private");
		for (size_t i = 0; root && i < ntrusted; i++)
			h_xattr(rel, private_trusted[i], "private");
	}
	h_mount_lowers("mnt", "l1", "l2", NULL);

	for (int obj = 0; obj < 2; obj++) {
		char *p = strdup(h_path(obj ? "mnt/d" : "mnt/f"));

		assert_true(xattr_listed(p, "user.keep"));
		assert_false(xattr_listed(p, "user.overlay.opaque"));
		assert_xattr_unreadable(p, "user.overlay.opaque");
		for (size_t i = 0; i < nuser; i++) {
			if (xattr_listed(p, private_user[i]))
				fail_msg("%s lists %s", p, private_user[i]);
			assert_xattr_unreadable(p, private_user[i]);
		}
		for (size_t i = 0; root && i < ntrusted; i++) {
			if (xattr_listed(p, private_trusted[i]))
				fail_msg("%s lists %s", p, private_trusted[i]);
			assert_xattr_unreadable(p, private_trusted[i]);
		}
		free(p);
	}
}

static void statfs_works(void **state)
{
	struct statvfs sv;
	struct statfs sf;

	h_file("l1/f", "x");
	h_mount_lowers("mnt", "l1", NULL);

	h_assert_ok(statvfs(h_path("mnt"), &sv));
	assert_true(sv.f_bsize > 0);
	assert_true(sv.f_blocks > 0);
	assert_true(sv.f_namemax > 0);
	h_assert_ok(statvfs(h_path("mnt/f"), &sv));
	assert_true(sv.f_bsize > 0);
	h_assert_ok(statfs(h_path("mnt"), &sf));
	assert_int_equal(sf.f_type, FUSE_SUPER_MAGIC);
}

/* A directory that spans layers has st_nlink 1 (as overlayfs); one that
 * comes from a single layer keeps its real count. */
static void dir_nlink(void **state)
{
	struct stat st, lo;

	h_mkdir("l1/merged/a");
	h_mkdir("l1/merged/b");
	h_mkdir("l2/merged/c");
	h_mkdir("l1/single/a");
	h_mkdir("l1/single/b");
	h_mkdir("l2/lowonly/a");
	h_mkdir("l2/lowonly/b");
	h_mkdir("l2/lowonly/c");
	h_mkdir("l1/opq/a");
	h_opaque("l1/opq", H_OPQ_FILE);
	h_mkdir("l2/opq/z");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_ok(lstat(h_path("mnt"), &st));
	assert_int_equal(st.st_nlink, 1);
	h_assert_ok(lstat(h_path("mnt/merged"), &st));
	assert_int_equal(st.st_nlink, 1);

	h_assert_ok(lstat(h_path("l1/single"), &lo));
	h_assert_ok(lstat(h_path("mnt/single"), &st));
	assert_int_equal(lo.st_nlink, 4);
	assert_int_equal(st.st_nlink, lo.st_nlink);
	h_assert_ok(lstat(h_path("l2/lowonly"), &lo));
	h_assert_ok(lstat(h_path("mnt/lowonly"), &st));
	assert_int_equal(lo.st_nlink, 5);
	assert_int_equal(st.st_nlink, lo.st_nlink);
	/* opaque: only l1's directory makes it up */
	h_assert_ok(lstat(h_path("l1/opq"), &lo));
	h_assert_ok(lstat(h_path("mnt/opq"), &st));
	assert_int_equal(lo.st_nlink, 3);
	assert_int_equal(st.st_nlink, lo.st_nlink);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(attr_regular_dir),
		H_TEST(attr_symlink),
		H_TEST(attr_fifo_socket),
		H_TEST(attr_devices),
		H_TEST(xattr_user_visible),
		H_TEST(xattr_private_hidden),
		H_TEST(statfs_works),
		H_TEST(dir_nlink),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
