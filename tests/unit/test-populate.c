/* test-populate.c: filling a volume from the layers (populate.c): a merged
 * tree of two layers with whiteouts of both formats, an opaque directory,
 * a merged directory, hard links across directories, a symlink to
 * /etc/passwd (a link, not followed), a 1 GiB sparse file (still sparse),
 * xattrs (private ones left out), devices, owners, modes and times to the
 * nanosecond on files, links and directories; and the failures: a
 * non-empty target, an injected fault (the target left empty), devices
 * we may not make (skipped). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "sys.h"
#include "tree.h"

#define GIB (1024LL * 1024 * 1024)

struct fx {
	char *base;
	char *l1, *l2, *dst;
	struct ply_stack stack;
	struct ply_lookup root, src;
	bool open;
	int dstfd;
};

static bool is_root(void)
{
	return geteuid() == 0;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->base = tree_mkdtemp();
	fx->l1 = strdup(tree_path(fx->base, "l1"));
	fx->l2 = strdup(tree_path(fx->base, "l2"));
	fx->dst = strdup(tree_path(fx->base, "dst"));
	tree_mkdir(fx->base, "l1");
	tree_mkdir(fx->base, "l2");
	tree_mkdir(fx->base, "dst");
	fx->dstfd = open(fx->dst, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->dstfd >= 0);
	*state = fx;
	return 0;
}

/* Directories copied without write permission (mode 0555) cannot be
 * emptied by a user that is not root: open them up first. */
static int make_writable(const char *path, const struct stat *st, int flag,
			 struct FTW *ftw)
{
	if (flag == FTW_D)
		chmod(path, (st->st_mode & 07777) | 0700);
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	ply_sys_set_fault_hook(NULL);
	if (fx->open) {
		ply_lookup_release(&fx->src);
		ply_lookup_release(&fx->root);
		ply_stack_close(&fx->stack);
	}
	close(fx->dstfd);
	nftw(fx->base, make_writable, 16, FTW_PHYS);
	tree_remove(fx->base);
	free(fx->l1);
	free(fx->l2);
	free(fx->dst);
	free(fx->base);
	free(fx);
	return 0;
}

/* Opens the stack l1:l2 and looks path up in it. */
static void open_src(struct fx *fx, const char *path)
{
	struct ply_err err = { "" };
	char opts[PATH_MAX * 2 + 32];

	snprintf(opts, sizeof(opts), "lowerdir=%s:%s", fx->l1, fx->l2);
	assert_int_equal(tree_stack_open(&fx->stack, opts, &err), 0);
	assert_int_equal(ply_lookup_root(&fx->stack, &fx->root), 0);
	assert_int_equal(tree_lookup_path(&fx->stack, &fx->root, path,
					  &fx->src),
			 0);
	fx->open = true;
}

static void set_times(const char *base, const char *rel, time_t sec, long ns)
{
	struct timespec t[2] = { { sec, ns }, { sec + 1000, ns ? ns - 1 : 1 } };

	assert_int_equal(utimensat(AT_FDCWD, tree_path(base, rel), t,
				   AT_SYMLINK_NOFOLLOW),
			 0);
}

static void set_owner_mode(const char *base, const char *rel, uid_t uid,
			   gid_t gid, mode_t mode)
{
	const char *p = tree_path(base, rel);

	if (is_root())
		assert_int_equal(lchown(p, uid, gid), 0);
	assert_int_equal(chmod(p, mode), 0);
}

/* The sources' attributes as they were before populating: copying a
 * symlink reads it, and readlink updates its atime (relatime). */
static struct {
	char path[PATH_MAX];
	struct stat st;
} before[32];
static int nbefore;

static void remember(const char *path)
{
	assert_true(nbefore < 32);
	snprintf(before[nbefore].path, PATH_MAX, "%s", path);
	assert_int_equal(lstat(path, &before[nbefore].st), 0);
	nbefore++;
}

/* The same owner, mode and times (to the nanosecond) as the source had. */
static void same_meta(const char *src, const char *dst)
{
	struct stat a, b;
	int i;

	for (i = 0; i < nbefore && strcmp(before[i].path, src); i++)
		;
	if (i < nbefore)
		a = before[i].st;
	else
		assert_int_equal(lstat(src, &a), 0);
	assert_int_equal(lstat(dst, &b), 0);
	assert_int_equal(a.st_mode, b.st_mode);
	if (is_root()) {
		assert_int_equal(a.st_uid, b.st_uid);
		assert_int_equal(a.st_gid, b.st_gid);
	}
	assert_int_equal(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
	assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	assert_int_equal(a.st_atim.tv_sec, b.st_atim.tv_sec);
	assert_int_equal(a.st_atim.tv_nsec, b.st_atim.tv_nsec);
	if (S_ISREG(a.st_mode))
		assert_int_equal(a.st_size, b.st_size);
}

static const char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* The names in a directory, sorted, joined by ' '. */
static const char *listing(const char *path)
{
	static char out[4096];
	struct dirent **v;
	int n = scandir(path, &v, NULL, alphasort);

	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(v[i]->d_name, ".") && strcmp(v[i]->d_name, "..")) {
			if (out[0])
				strcat(out, " ");
			strcat(out, v[i]->d_name);
		}
		free(v[i]);
	}
	free(v);
	return out;
}

static void build_tree(struct fx *fx)
{
	int fd;

	/* bottom layer */
	tree_write(fx->l2, "src/gone", "whited out by a char device");
	tree_write(fx->l2, "src/gone2", "whited out by a .wh. file");
	tree_write(fx->l2, "src/opq/below", "hidden by the opaque dir");
	tree_write(fx->l2, "src/m/low", "from the bottom");
	tree_write(fx->l2, "src/shadowed", "below");
	/* top layer */
	tree_write(fx->l1, "src/shadowed", "above");
	if (is_root())
		tree_mknod(fx->l1, "src/gone", S_IFCHR | 0600, makedev(0, 0));
	else
		tree_write(fx->l1, "src/.wh.gone", "");
	tree_write(fx->l1, "src/.wh.gone2", "");
	tree_write(fx->l1, "src/opq/above", "in the opaque dir");
	tree_setxattr(fx->l1, "src/opq",
		      is_root() ? "trusted.overlay.opaque" :
				  "user.overlay.opaque",
		      "y");
	tree_write(fx->l1, "src/m/high", "from the top");
	tree_write(fx->l1, "src/h1", "linked");
	tree_link(fx->l1, "src/h1", "src/sub/h2");
	tree_link(fx->l1, "src/h1", "src/h3");
	tree_symlink(fx->l1, "src/passwd", "/etc/passwd");
	tree_symlink(fx->l1, "src/etc", "/etc");
	tree_write(fx->l1, "src/x", "with xattrs");
	tree_setxattr(fx->l1, "src/x", "user.test", "hello");
	tree_setxattr(fx->l1, "src/x", "user.overlay.redirect", "/private");
	tree_setxattr(fx->l1, "src/sub", "user.dir", "on a dir");
	tree_write(fx->l1, "src/owned", "mine");
	tree_write(fx->l1, "src/suid", "setuid");
	tree_write(fx->l1, "src/ro/inside", "in a read-only dir");
	assert_int_equal(mkfifo(tree_path(fx->l1, "src/fifo"), 0640), 0);
	if (is_root())
		tree_mknod(fx->l1, "src/null", S_IFCHR | 0666, makedev(1, 3));
	fd = open(tree_path(fx->l1, "src/sparse"),
		  O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "head", 4, 0), 4);
	assert_int_equal(pwrite(fd, "middle", 6, GIB / 2), 6);
	assert_int_equal(ftruncate(fd, GIB), 0);
	close(fd);

	/* owners and modes, then times: files first, directories last */
	set_owner_mode(fx->l1, "src/owned", 1234, 5678, 0640);
	set_owner_mode(fx->l1, "src/suid", 1234, 5678, 04755);
	set_owner_mode(fx->l1, "src/sub", 1234, 5678, 02750);
	set_owner_mode(fx->l1, "src/ro/inside", 1000, 1000, 0444);
	if (is_root())
		assert_int_equal(lchown(tree_path(fx->l1, "src/passwd"), 42,
					43),
				 0);
	static const char *const files[] = {
		"src/owned", "src/suid", "src/h1", "src/passwd", "src/etc",
		"src/x", "src/sparse", "src/fifo", "src/ro/inside",
		"src/opq/above", "src/m/high", "src/m/low", "src/shadowed",
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		const char *base = strcmp(files[i], "src/m/low") ? fx->l1 :
								    fx->l2;

		set_times(base, files[i], 1500000000 + (time_t)i * 7,
			  123456789 - (long)i);
	}
	if (is_root())
		set_times(fx->l1, "src/null", 1400000000, 1);
	set_owner_mode(fx->l1, "src/ro", 1000, 1000, 0555);
	set_times(fx->l1, "src/sub", 1600000000, 1);
	set_times(fx->l1, "src/ro", 1600000001, 2);
	set_times(fx->l1, "src/opq", 1600000002, 3);
	set_times(fx->l1, "src/m", 1600000003, 4);
	set_owner_mode(fx->l1, "src", 2000, 2001, 0750);
	set_times(fx->l1, "src", 1600000004, 999999999);
}

static void test_populate(void **state)
{
	struct fx *fx = *state;
	char buf[64];
	struct stat a, b;
	ssize_t n;
	int fds, fd;

	build_tree(fx);
	static const char *const same[] = {
		"owned", "suid", "h1", "passwd", "etc", "x", "sparse", "fifo",
		"ro/inside", "opq/above", "m/high", "shadowed", "sub", "ro",
		"opq", "m",
	};
	nbefore = 0;
	for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), "src/%s", same[i]);
		remember(tree_path(fx->l1, rel));
	}
	remember(tree_path(fx->l2, "src/m/low"));
	remember(tree_path(fx->l1, "src"));
	open_src(fx, "src");
	fds = tree_count_fds();
	assert_int_equal(ply_populate(&fx->stack, fx->src.parts,
				      fx->src.nparts, fx->dstfd),
			 0);
	assert_int_equal(tree_count_fds(), fds);

	/* owners, modes, times, to the nanosecond; directories too, after
	 * their content was added; and the volume's root takes src's.
	 * First: reading a directory (listing) changes its atime */
	for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), "src/%s", same[i]);
		same_meta(tree_path(fx->l1, rel), tree_path(fx->dst, same[i]));
	}
	same_meta(tree_path(fx->l2, "src/m/low"), tree_path(fx->dst, "m/low"));
	same_meta(tree_path(fx->l1, "src"), fx->dst);
	assert_int_equal(lstat(tree_path(fx->dst, "suid"), &a), 0);
	assert_int_equal(a.st_mode & 07777, 04755);
	assert_int_equal(lstat(tree_path(fx->dst, "sub"), &a), 0);
	assert_int_equal(a.st_mode & 07777, 02750);

	/* the merged view: whiteouts and opaque dirs applied, no markers */
	assert_string_equal(listing(fx->dst),
			    is_root() ?
				    "etc fifo h1 h3 m null opq owned passwd ro shadowed sparse sub suid x" :
				    "etc fifo h1 h3 m opq owned passwd ro shadowed sparse sub suid x");
	assert_string_equal(listing(tree_path(fx->dst, "opq")), "above");
	assert_string_equal(listing(tree_path(fx->dst, "m")), "high low");
	assert_string_equal(slurp(tree_path(fx->dst, "shadowed")), "above");
	assert_string_equal(slurp(tree_path(fx->dst, "m/low")),
			    "from the bottom");
	assert_string_equal(slurp(tree_path(fx->dst, "ro/inside")),
			    "in a read-only dir");

	/* hard links linked again, across directories */
	assert_int_equal(lstat(tree_path(fx->dst, "h1"), &a), 0);
	assert_int_equal(lstat(tree_path(fx->dst, "sub/h2"), &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(lstat(tree_path(fx->dst, "h3"), &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 3);
	assert_string_equal(slurp(tree_path(fx->dst, "sub/h2")), "linked");

	/* symlinks copied as links, their targets never followed */
	n = readlink(tree_path(fx->dst, "passwd"), buf, sizeof(buf));
	assert_int_equal(n, strlen("/etc/passwd"));
	assert_memory_equal(buf, "/etc/passwd", (size_t)n);
	assert_int_equal(lstat(tree_path(fx->dst, "etc"), &a), 0);
	assert_true(S_ISLNK(a.st_mode));

	/* the sparse file: 1 GiB, its data where it was, still sparse */
	assert_int_equal(lstat(tree_path(fx->dst, "sparse"), &a), 0);
	assert_int_equal(a.st_size, GIB);
	assert_true((long long)a.st_blocks * 512 < 16 * 1024 * 1024);
	fd = open(tree_path(fx->dst, "sparse"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 4, 0), 4);
	assert_memory_equal(buf, "head", 4);
	assert_int_equal(pread(fd, buf, 6, GIB / 2), 6);
	assert_memory_equal(buf, "middle", 6);
	assert_int_equal(pread(fd, buf, 4, GIB / 4), 4);
	assert_memory_equal(buf, "\0\0\0\0", 4);
	close(fd);

	/* xattrs: user ones kept, private ones and markers left out */
	n = lgetxattr(tree_path(fx->dst, "x"), "user.test", buf, sizeof(buf));
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(lgetxattr(tree_path(fx->dst, "x"),
				   "user.overlay.redirect", buf, sizeof(buf)),
			 -1);
	n = lgetxattr(tree_path(fx->dst, "sub"), "user.dir", buf, sizeof(buf));
	assert_int_equal(n, 8);
	assert_int_equal(lgetxattr(tree_path(fx->dst, "opq"),
				   is_root() ? "trusted.overlay.opaque" :
					       "user.overlay.opaque",
				   buf, sizeof(buf)),
			 -1);

	/* devices and fifos */
	assert_int_equal(lstat(tree_path(fx->dst, "fifo"), &a), 0);
	assert_true(S_ISFIFO(a.st_mode));
	if (is_root()) {
		assert_int_equal(lstat(tree_path(fx->dst, "null"), &a), 0);
		assert_true(S_ISCHR(a.st_mode));
		assert_int_equal(a.st_rdev, makedev(1, 3));
		same_meta(tree_path(fx->l1, "src/null"),
			  tree_path(fx->dst, "null"));
	}

	/* the layers are untouched: no temporaries anywhere */
	assert_null(strstr(listing(fx->dst), "#plyfs-"));
	assert_null(strstr(listing(tree_path(fx->dst, "sub")), "#plyfs-"));
	assert_string_equal(listing(tree_path(fx->l2, "src")),
			    "gone gone2 m opq shadowed");
}

static void test_not_empty(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->l1, "src/a", "a");
	tree_write(fx->base, "dst/there", "already");
	open_src(fx, "src");
	assert_int_equal(ply_dir_is_empty(fx->dstfd), 0);
	assert_int_equal(ply_populate(&fx->stack, fx->src.parts,
				      fx->src.nparts, fx->dstfd),
			 -ENOTEMPTY);
	assert_string_equal(listing(fx->dst), "there");
}

static void test_not_dir(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->l1, "file", "a");
	open_src(fx, "file");
	assert_int_equal(ply_dir_is_empty(fx->dstfd), 1);
	assert_int_equal(ply_populate(&fx->stack, fx->src.parts,
				      fx->src.nparts, fx->dstfd),
			 -ENOTDIR);
}

static int fail_linkat(const char *call)
{
	return strcmp(call, "linkat") ? 0 : -EIO;
}

/* A failure half-way leaves the volume as it was: empty. */
static void test_failure_cleans(void **state)
{
	struct fx *fx = *state;
	struct stat st;

	tree_write(fx->l1, "src/a/b/c", "deep");
	tree_write(fx->l1, "src/z/h1", "linked");
	tree_link(fx->l1, "src/z/h1", "src/z/h2");
	set_owner_mode(fx->l1, "src/a", 0, 0, 0555);
	open_src(fx, "src");
	assert_int_equal(stat(fx->dst, &st), 0);
	ply_sys_set_fault_hook(fail_linkat);
	assert_int_equal(ply_populate(&fx->stack, fx->src.parts,
				      fx->src.nparts, fx->dstfd),
			 -EIO);
	ply_sys_set_fault_hook(NULL);
	assert_int_equal(ply_dir_is_empty(fx->dstfd), 1);
	/* nor was the root's metadata changed */
	{
		struct stat now;

		assert_int_equal(stat(fx->dst, &now), 0);
		assert_int_equal(now.st_mode, st.st_mode);
	}
	/* and a second try works */
	assert_int_equal(ply_populate(&fx->stack, fx->src.parts,
				      fx->src.nparts, fx->dstfd),
			 0);
	assert_string_equal(slurp(tree_path(fx->dst, "a/b/c")), "deep");
}

static int deny_mknod(const char *call)
{
	return strcmp(call, "mknodat") ? 0 : -EPERM;
}

/* Devices we may not make are left out; the rest is copied. */
static void test_devices_denied(void **state)
{
	struct fx *fx = *state;

	if (!is_root())
		skip();
	tree_mknod(fx->l1, "src/null", S_IFCHR | 0666, makedev(1, 3));
	tree_mknod(fx->l1, "src/sda", S_IFBLK | 0600, makedev(8, 0));
	tree_write(fx->l1, "src/file", "kept");
	open_src(fx, "src");
	ply_sys_set_fault_hook(deny_mknod);
	assert_int_equal(ply_populate(&fx->stack, fx->src.parts,
				      fx->src.nparts, fx->dstfd),
			 0);
	ply_sys_set_fault_hook(NULL);
	assert_string_equal(listing(fx->dst), "file");
}

/* An empty directory in the layers: nothing to copy but its metadata. */
static void test_empty_source(void **state)
{
	struct fx *fx = *state;

	nbefore = 0;
	tree_mkdir(fx->l2, "src");
	set_owner_mode(fx->l2, "src", 999, 999, 0700);
	set_times(fx->l2, "src", 1234567890, 5);
	open_src(fx, "src");
	assert_int_equal(ply_populate(&fx->stack, fx->src.parts,
				      fx->src.nparts, fx->dstfd),
			 0);
	same_meta(tree_path(fx->l2, "src"), fx->dst);
	assert_int_equal(ply_dir_is_empty(fx->dstfd), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_populate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_not_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_cleans, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_devices_denied, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_empty_source, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
