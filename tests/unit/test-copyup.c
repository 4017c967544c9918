/* test-copyup.c: the copy-up engine (copyup.c): every object type with its
 * owner, mode, times and xattrs; data small, large and sparse; metacopy,
 * empty and replace; the origin record; and atomicity under injected
 * faults (the upper unchanged, no temporary left, no fd leaked). Then
 * copy-up of a union inode (upper.c) from a lower layer that keeps
 * ownership in override xattrs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "sys.h"
#include "tree.h"

struct fixture {
	char *base;
	int upperfd; /* O_PATH of base/upper */
	int workfd;  /* O_PATH of base/work/work */
};

static bool is_root(void)
{
	return geteuid() == 0;
}

static void need_root(void)
{
	if (!is_root())
		skip();
}

/* The namespace of our markers; NULL (an upper without xattrs) when a
 * test sets no_xattr_ns. */
static bool no_xattr_ns;

static const char *xattr_ns(void)
{
	if (no_xattr_ns)
		return NULL;
	return is_root() ? "trusted." : "user.";
}

static int open_dir(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	return fd;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->base = tree_mkdtemp();
	tree_mkdir(fx->base, "lower");
	tree_mkdir(fx->base, "upper");
	tree_mkdir(fx->base, "work/work");
	fx->upperfd = open_dir(tree_path(fx->base, "upper"));
	fx->workfd = open_dir(tree_path(fx->base, "work/work"));
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	ply_sys_set_fault_hook(NULL);
	no_xattr_ns = false;
	close(fx->upperfd);
	close(fx->workfd);
	tree_remove(fx->base);
	free(fx->base);
	free(fx);
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

#define LOWER(rel) tree_path(fx->base, "lower/" rel)
#define UPPER(rel) tree_path(fx->base, "upper/" rel)

static void set_xattr(const char *path, const char *name, const void *value,
		      size_t size)
{
	if (lsetxattr(path, name, value, size, 0) < 0)
		fail_msg("setxattr %s %s: %s", path, name, strerror(errno));
}

/* The xattr's value as a string; NULL when absent. Static buffer. */
static const char *get_xattr(const char *path, const char *name)
{
	static char buf[4096];
	ssize_t n = lgetxattr(path, name, buf, sizeof(buf) - 1);

	if (n < 0) {
		if (errno != ENODATA)
			fail_msg("getxattr %s %s: %s", path, name,
				 strerror(errno));
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static void set_times(const char *path, time_t asec, long ansec, time_t msec,
		      long mnsec)
{
	struct timespec ts[2] = { { asec, ansec }, { msec, mnsec } };

	if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0)
		fail_msg("utimensat %s: %s", path, strerror(errno));
}

static struct stat lstat_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		fail_msg("lstat %s: %s", path, strerror(errno));
	return st;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Copies lower/src to upper/name: data and metadata from the same object
 * unless meta_path is given (then data from src, metadata from it). */
static int copy_from(struct fixture *fx, const char *src,
		     const char *meta_path, const char *name, unsigned flags,
		     uint64_t origin, int *ret_fd)
{
	const char *mp = meta_path ? meta_path : tree_path(fx->base, src);
	struct stat st = lstat_of(mp);
	int data_fd = open(tree_path(fx->base, src),
			   O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int meta_fd = open(mp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct ply_copyup_req req = {
		.workfd = fx->workfd,
		.data_fd = data_fd,
		.meta_fd = meta_fd,
		.meta_st = &st,
		.upper_dirfd = fx->upperfd,
		.name = name,
		.flags = flags,
		.xattr_ns = xattr_ns(),
		.origin_ino = origin,
	};
	int r;

	assert_true(data_fd >= 0 && meta_fd >= 0);
	r = ply_copyup(&req, ret_fd);
	close(data_fd);
	close(meta_fd);
	return r;
}

/* Copies lower/<name> to upper/<name>; fails the test on an error. */
static void copy_ok(struct fixture *fx, const char *name, unsigned flags,
		    uint64_t origin)
{
	char src[512], dst[512];
	struct stat a, b;
	int fd = -1, r;

	snprintf(src, sizeof(src), "lower/%s", name);
	snprintf(dst, sizeof(dst), "upper/%s", name);
	r = copy_from(fx, src, NULL, name, flags, origin, &fd);
	if (r < 0)
		fail_msg("copy-up %s: %s", name, strerror(-r));
	/* the fd handed back is the new upper object, not followed */
	assert_int_equal(fstatat(fd, "", &a, AT_EMPTY_PATH), 0);
	b = lstat_of(tree_path(fx->base, dst));
	assert_int_equal(a.st_dev, b.st_dev);
	assert_int_equal(a.st_ino, b.st_ino);
	close(fd);
}

/* Entries of work/work: a copy-up leaves none behind. */
static int work_entries(const struct fixture *fx)
{
	DIR *d = opendir(tree_path(fx->base, "work/work"));
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Asserts same owner, mode, size and times (atime and mtime, ns). */
static void assert_same_meta(const char *a, const char *b, bool times)
{
	struct stat sa = lstat_of(a), sb = lstat_of(b);

	assert_int_equal(sa.st_mode, sb.st_mode);
	assert_int_equal(sa.st_uid, sb.st_uid);
	assert_int_equal(sa.st_gid, sb.st_gid);
	if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode))
		assert_int_equal(sa.st_rdev, sb.st_rdev);
	if (!times)
		return;
	assert_int_equal(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	assert_int_equal(sa.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
	assert_int_equal(sa.st_atim.tv_sec, sb.st_atim.tv_sec);
	assert_int_equal(sa.st_atim.tv_nsec, sb.st_atim.tv_nsec);
}

static bool same_content(const char *a, const char *b)
{
	int fa = open(a, O_RDONLY | O_CLOEXEC);
	int fb = open(b, O_RDONLY | O_CLOEXEC);
	char *ba = malloc(1 << 20), *bb = malloc(1 << 20);
	bool same = true;

	assert_true(fa >= 0 && fb >= 0 && ba && bb);
	for (;;) {
		ssize_t na = read(fa, ba, 1 << 20), nb = read(fb, bb, 1 << 20);

		assert_true(na >= 0 && nb >= 0);
		if (na != nb || memcmp(ba, bb, (size_t)na)) {
			same = false;
			break;
		}
		if (na == 0)
			break;
	}
	close(fa);
	close(fb);
	free(ba);
	free(bb);
	return same;
}

static void assert_content(const char *path, const char *want)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

/* The VFS_CAP_REVISION_2 value setcap writes for cap_net_raw+ep:
 * magic_etc (revision 2 | effective), then permitted and inheritable of
 * the two 32-bit halves, all little-endian. */
static const unsigned char cap_net_raw[20] = {
	0x01, 0x00, 0x00, 0x02, /* REVISION_2 | FLAGS_EFFECTIVE */
	0x00, 0x20, 0x00, 0x00, /* permitted[0]: 1 << CAP_NET_RAW (13) */
	0x00, 0x00, 0x00, 0x00, /* inheritable[0] */
	0x00, 0x00, 0x00, 0x00, /* permitted[1] */
	0x00, 0x00, 0x00, 0x00, /* inheritable[1] */
};

static void assert_caps(const char *path)
{
	unsigned char buf[64];
	ssize_t n = lgetxattr(path, "security.capability", buf, sizeof(buf));

	assert_int_equal(n, sizeof(cap_net_raw));
	assert_memory_equal(buf, cap_net_raw, sizeof(cap_net_raw));
}

/* Gives path the private xattrs no copy-up may carry over. */
static void set_private(const char *path)
{
	if (is_root())
		set_xattr(path, "trusted.overlay.opaque", "y", 1);
	set_xattr(path, "user.overlay.whiteout", "", 0);
	set_xattr(path, "user.plyfs.x", "p", 1);
}

static void assert_no_private(const char *path)
{
	assert_null(get_xattr(path, "trusted.overlay.opaque"));
	assert_null(get_xattr(path, "user.overlay.whiteout"));
	assert_null(get_xattr(path, "user.plyfs.x"));
}

/* ---- object types and their metadata ------------------------------------- */

static void test_regular(void **state)
{
	struct fixture *fx = *state;
	int fds = tree_count_fds(), fd;

	tree_write(fx->base, "lower/f", "hello, upper");
	if (is_root())
		assert_int_equal(lchown(LOWER("f"), 1234, 5678), 0);
	set_xattr(LOWER("f"), "user.a", "1", 1);
	set_xattr(LOWER("f"), "user.b", "two", 3);
	if (is_root()) {
		set_xattr(LOWER("f"), "trusted.foo", "bar", 3);
		set_xattr(LOWER("f"), "security.capability", cap_net_raw,
			  sizeof(cap_net_raw));
	}
	set_private(LOWER("f"));
	assert_int_equal(chmod(LOWER("f"), 0751), 0);
	set_times(LOWER("f"), 1000000000, 123456789, 1200000000, 987654321);

	copy_ok(fx, "f", 0, 0);
	/* times first: reading the copy sets its atime */
	assert_same_meta(LOWER("f"), UPPER("f"), true);
	assert_content(UPPER("f"), "hello, upper");
	assert_string_equal(get_xattr(UPPER("f"), "user.a"), "1");
	assert_string_equal(get_xattr(UPPER("f"), "user.b"), "two");
	if (is_root()) {
		assert_int_equal(lstat_of(UPPER("f")).st_uid, 1234);
		assert_string_equal(get_xattr(UPPER("f"), "trusted.foo"),
				    "bar");
		assert_caps(UPPER("f"));
	}
	assert_no_private(UPPER("f"));
	fd = open(UPPER("f"), O_PATH | O_CLOEXEC);
	assert_false(ply_copyup_is_metacopy(fd));
	close(fd);
	assert_int_equal(work_entries(fx), 0);
	assert_int_equal(tree_count_fds(), fds);
}

/* chown clears setuid/setgid and security.capability: both survive. */
static void test_setuid_caps(void **state)
{
	struct fixture *fx = *state;

	tree_write(fx->base, "lower/s", "#!binary");
	if (is_root()) {
		assert_int_equal(lchown(LOWER("s"), 1234, 1234), 0);
		set_xattr(LOWER("s"), "security.capability", cap_net_raw,
			  sizeof(cap_net_raw));
	}
	assert_int_equal(chmod(LOWER("s"), 04755), 0);
	tree_write(fx->base, "lower/g", "#!binary");
	if (is_root())
		assert_int_equal(lchown(LOWER("g"), 1234, 4321), 0);
	assert_int_equal(chmod(LOWER("g"), 02711), 0);

	copy_ok(fx, "s", 0, 0);
	copy_ok(fx, "g", 0, 0);
	assert_int_equal(lstat_of(UPPER("s")).st_mode, S_IFREG | 04755);
	assert_int_equal(lstat_of(UPPER("g")).st_mode, S_IFREG | 02711);
	assert_same_meta(LOWER("s"), UPPER("s"), true);
	assert_same_meta(LOWER("g"), UPPER("g"), true);
	if (is_root())
		assert_caps(UPPER("s"));
}

static void test_directory(void **state)
{
	struct fixture *fx = *state;
	DIR *d;
	struct dirent *de;
	int n = 0;

	tree_write(fx->base, "lower/d/inside", "not copied");
	tree_mkdir(fx->base, "lower/d/sub");
	if (is_root()) {
		assert_int_equal(lchown(LOWER("d"), 42, 43), 0);
		set_xattr(LOWER("d"), "trusted.dir", "t", 1);
	}
	set_xattr(LOWER("d"), "user.dir", "u", 1);
	set_private(LOWER("d"));
	assert_int_equal(chmod(LOWER("d"), 01751), 0);
	set_times(LOWER("d"), 1100000000, 1, 1100000001, 2);

	copy_ok(fx, "d", PLY_COPYUP_SYNC, 0);
	assert_same_meta(LOWER("d"), UPPER("d"), true);
	assert_true(S_ISDIR(lstat_of(UPPER("d")).st_mode));
	assert_string_equal(get_xattr(UPPER("d"), "user.dir"), "u");
	if (is_root())
		assert_string_equal(get_xattr(UPPER("d"), "trusted.dir"), "t");
	assert_no_private(UPPER("d"));
	/* an empty directory: its content is copied up one by one later */
	d = opendir(UPPER("d"));
	assert_non_null(d);
	while ((de = readdir(d)))
		n++;
	closedir(d);
	assert_int_equal(n, 2);
	assert_int_equal(work_entries(fx), 0);
}

static void test_symlink(void **state)
{
	struct fixture *fx = *state;
	struct stat before, st;
	char buf[256];
	ssize_t n;

	tree_symlink(fx->base, "lower/l", "../some/where/else");
	/* a dangling absolute one: never followed */
	tree_symlink(fx->base, "lower/abs", "/nonexistent/abs");
	if (is_root()) {
		assert_int_equal(lchown(LOWER("l"), 77, 88), 0);
		set_xattr(LOWER("l"), "trusted.sym", "s", 1);
	}
	set_times(LOWER("l"), 1000, 5, 2000, 6);
	/* reading a link sets its atime (no O_NOATIME for readlink): the
	 * copy has the times the lower link had when it was copied */
	before = lstat_of(LOWER("l"));

	copy_ok(fx, "l", PLY_COPYUP_SYNC, 0);
	copy_ok(fx, "abs", 0, 0);
	st = lstat_of(UPPER("l"));
	assert_int_equal(st.st_mode, before.st_mode);
	assert_int_equal(st.st_uid, before.st_uid);
	assert_int_equal(st.st_gid, before.st_gid);
	assert_int_equal(st.st_atim.tv_sec, 1000);
	assert_int_equal(st.st_atim.tv_nsec, 5);
	assert_int_equal(st.st_mtim.tv_sec, 2000);
	assert_int_equal(st.st_mtim.tv_nsec, 6);
	n = readlink(UPPER("l"), buf, sizeof(buf));
	assert_int_equal(n, strlen("../some/where/else"));
	assert_memory_equal(buf, "../some/where/else", n);
	n = readlink(UPPER("abs"), buf, sizeof(buf));
	assert_int_equal(n, strlen("/nonexistent/abs"));
	if (is_root())
		assert_string_equal(get_xattr(UPPER("l"), "trusted.sym"), "s");
	assert_int_equal(work_entries(fx), 0);
}

static void test_special(void **state)
{
	struct fixture *fx = *state;

	tree_mknod(fx->base, "lower/fifo", S_IFIFO | 0620, 0);
	tree_mknod(fx->base, "lower/sock", S_IFSOCK | 0700, 0);
	/* user.* is for files and directories only */
	if (is_root())
		set_xattr(LOWER("fifo"), "trusted.kind", "fifo", 4);
	set_times(LOWER("fifo"), 10, 20, 30, 40);
	copy_ok(fx, "fifo", 0, 0);
	copy_ok(fx, "sock", 0, 0);
	assert_same_meta(LOWER("fifo"), UPPER("fifo"), true);
	assert_same_meta(LOWER("sock"), UPPER("sock"), true);
	if (is_root())
		assert_string_equal(get_xattr(UPPER("fifo"), "trusted.kind"),
				    "fifo");
}

static void test_devices(void **state)
{
	struct fixture *fx = *state;
	int fd = -1;

	need_root(); /* only root may make devices */
	tree_mknod(fx->base, "lower/chr", S_IFCHR | 0640, makedev(1, 3));
	tree_mknod(fx->base, "lower/blk", S_IFBLK | 0600, makedev(7, 200));
	assert_int_equal(lchown(LOWER("chr"), 0, 5), 0);
	copy_ok(fx, "chr", 0, 0);
	copy_ok(fx, "blk", 0, 0);
	assert_same_meta(LOWER("chr"), UPPER("chr"), true);
	assert_same_meta(LOWER("blk"), UPPER("blk"), true);
	assert_int_equal(copy_from(fx, "lower/chr", NULL, "chr", 0, 0, &fd),
			 -EEXIST);
}

/* ---- data ---------------------------------------------------------------- */

static void write_pattern(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char *buf = malloc(1 << 20);
	uint32_t x = 2463534242u;

	assert_true(fd >= 0 && buf);
	for (size_t done = 0; done < size;) {
		size_t n = size - done < (1 << 20) ? size - done : (1 << 20);

		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			buf[i] = (char)x;
		}
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		done += n;
	}
	free(buf);
	close(fd);
}

static void test_data(void **state)
{
	struct fixture *fx = *state;

	tree_write(fx->base, "lower/empty", "");
	tree_write(fx->base, "lower/small", "x");
	write_pattern(LOWER("odd"), 3 * 1000 * 1000 + 7);
	write_pattern(LOWER("big"), 100 << 20);
	copy_ok(fx, "empty", 0, 0);
	copy_ok(fx, "small", 0, 0);
	copy_ok(fx, "odd", PLY_COPYUP_SYNC, 0);
	copy_ok(fx, "big", 0, 0);
	assert_int_equal(lstat_of(UPPER("empty")).st_size, 0);
	assert_content(UPPER("small"), "x");
	assert_int_equal(lstat_of(UPPER("odd")).st_size, 3 * 1000 * 1000 + 7);
	assert_true(same_content(LOWER("odd"), UPPER("odd")));
	assert_int_equal(lstat_of(UPPER("big")).st_size, 100 << 20);
	assert_true(same_content(LOWER("big"), UPPER("big")));
	assert_int_equal(work_entries(fx), 0);
}

static void test_sparse(void **state)
{
	struct fixture *fx = *state;
	const off_t offs[] = { 0, 100 << 20, 700 << 20, (1 << 30) - 4096 };
	const off_t gib = 1 << 30;
	char want[4096], got[4096];
	struct stat st;
	int fd;

	fd = open(LOWER("sparse"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	for (size_t i = 0; i < 3; i++) {
		memset(want, 'a' + (int)i, sizeof(want));
		assert_int_equal(pwrite(fd, want, sizeof(want), offs[i]),
				 sizeof(want));
	}
	/* a trailing hole: the size is beyond the last data */
	assert_int_equal(ftruncate(fd, gib), 0);
	close(fd);

	copy_ok(fx, "sparse", 0, 0);
	st = lstat_of(UPPER("sparse"));
	assert_int_equal(st.st_size, gib);
	assert_true(st.st_blocks * 512 <= 256 * 1024);
	fd = open(UPPER("sparse"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (size_t i = 0; i < 4; i++) {
		memset(want, i < 3 ? 'a' + (int)i : 0, sizeof(want));
		assert_int_equal(pread(fd, got, sizeof(got), offs[i]),
				 sizeof(got));
		assert_memory_equal(got, want, sizeof(want));
	}
	/* a hole in the middle reads as zeros */
	memset(want, 0, sizeof(want));
	assert_int_equal(pread(fd, got, sizeof(got), 300 << 20), sizeof(got));
	assert_memory_equal(got, want, sizeof(want));
	close(fd);
}

/* Makes every call named force_call (or only its force_nth one) fail
 * with force_err, to take the fallback paths this filesystem does not. */
static const char *force_call;
static int force_nth, force_seen, force_err;

static int force_error(const char *call)
{
	if (strcmp(call, force_call))
		return 0;
	force_seen++;
	return !force_nth || force_seen == force_nth ? force_err : 0;
}

static void force(const char *call, int nth, int err)
{
	force_call = call;
	force_nth = nth;
	force_seen = 0;
	force_err = err;
	ply_sys_set_fault_hook(call ? force_error : NULL);
}

static void test_data_fallbacks(void **state)
{
	struct fixture *fx = *state;
	char want[4096], got[4096];
	struct stat st;
	int fd;

	write_pattern(LOWER("odd"), 3 * 1000 * 1000 + 7);
	fd = open(LOWER("sparse"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	memset(want, 's', sizeof(want));
	assert_int_equal(pwrite(fd, want, sizeof(want), 50 << 20),
			 sizeof(want));
	assert_int_equal(ftruncate(fd, 256 << 20), 0);
	close(fd);

	/* no copy_file_range (another filesystem): read and write */
	force("copy_file_range", 0, -EXDEV);
	copy_ok(fx, "odd", 0, 0);
	copy_ok(fx, "sparse", 0, 0);
	force(NULL, 0, 0);
	assert_true(same_content(LOWER("odd"), UPPER("odd")));
	st = lstat_of(UPPER("sparse"));
	assert_int_equal(st.st_size, 256 << 20);
	assert_true(st.st_blocks * 512 <= 256 * 1024);
	fd = open(UPPER("sparse"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, sizeof(got), 50 << 20), sizeof(got));
	close(fd);
	assert_memory_equal(got, want, sizeof(want));

	/* not the owner of the lower file: no O_NOATIME */
	tree_write(fx->base, "lower/noatime", "read anyway");
	force("reopen", 2, -EPERM); /* the 1st: the temporary's O_PATH fd */
	copy_ok(fx, "noatime", 0, 0);
	force(NULL, 0, 0);
	assert_content(UPPER("noatime"), "read anyway");
	/* a real error of FICLONE is an error, not a reason to copy */
	force("ficlone", 0, -EIO);
	fd = -1;
	assert_int_equal(copy_from(fx, "lower/odd", NULL, "odd2", 0, 0, &fd),
			 -EIO);
	force(NULL, 0, 0);
	assert_false(exists(UPPER("odd2")));
	assert_int_equal(work_entries(fx), 0);
}

/* PLY_COPYUP_SYNC syncs copied data and nothing else: with every fsync
 * failing, copies of metadata alone (a metacopy, an O_TRUNC copy, a
 * directory, a symlink) go through, a copy with data fails and leaves
 * nothing behind. */
static void test_sync_only_data(void **state)
{
	struct fixture *fx = *state;
	int fd = -1;

	tree_write(fx->base, "lower/f", "data");
	tree_write(fx->base, "lower/g", "data");
	tree_write(fx->base, "lower/d/x", "x");
	assert_int_equal(symlink("f", tree_path(fx->base, "lower/s")), 0);
	force("fsync", 0, -EIO);
	copy_ok(fx, "f", PLY_COPYUP_SYNC | PLY_COPYUP_METACOPY, 0);
	copy_ok(fx, "g", PLY_COPYUP_SYNC | PLY_COPYUP_EMPTY, 0);
	copy_ok(fx, "d", PLY_COPYUP_SYNC, 0);
	copy_ok(fx, "s", PLY_COPYUP_SYNC, 0);
	assert_int_equal(force_seen, 0);
	assert_int_equal(copy_from(fx, "lower/f", NULL, "f2", PLY_COPYUP_SYNC,
				   0, &fd),
			 -EIO);
	assert_int_equal(force_seen, 1);
	force(NULL, 0, 0);
	assert_false(exists(UPPER("f2")));
	assert_int_equal(work_entries(fx), 0);
}

/* ---- metacopy, empty, replace, origin ------------------------------------ */

static const char *marker_name(void)
{
	static char name[64];

	snprintf(name, sizeof(name), "%soverlay.metacopy", xattr_ns());
	return name;
}

static void test_metacopy(void **state)
{
	struct fixture *fx = *state;
	struct stat st;
	int fd = -1;

	write_pattern(LOWER("m"), 10 << 20);
	set_xattr(LOWER("m"), "user.keep", "k", 1);
	assert_int_equal(chmod(LOWER("m"), 0604), 0);
	set_times(LOWER("m"), 5, 6, 7, 8);
	assert_int_equal(copy_from(fx, "lower/m", NULL, "m",
				   PLY_COPYUP_METACOPY, 0, &fd),
			 0);
	st = lstat_of(UPPER("m"));
	assert_int_equal(st.st_size, 10 << 20);
	assert_true(st.st_blocks <= 8); /* at most an xattr block */
	assert_same_meta(LOWER("m"), UPPER("m"), true);
	assert_string_equal(get_xattr(UPPER("m"), marker_name()), "");
	assert_string_equal(get_xattr(UPPER("m"), "user.keep"), "k");
	assert_true(ply_copyup_is_metacopy(fd));
	close(fd);
}

static void test_empty(void **state)
{
	struct fixture *fx = *state;
	int fd = -1;

	write_pattern(LOWER("e"), 1 << 20);
	set_xattr(LOWER("e"), "user.keep", "k", 1);
	assert_int_equal(chmod(LOWER("e"), 0640), 0);
	assert_int_equal(copy_from(fx, "lower/e", NULL, "e", PLY_COPYUP_EMPTY,
				   0, &fd),
			 0);
	assert_int_equal(lstat_of(UPPER("e")).st_size, 0);
	assert_int_equal(lstat_of(UPPER("e")).st_mode, S_IFREG | 0640);
	assert_string_equal(get_xattr(UPPER("e"), "user.keep"), "k");
	assert_false(ply_copyup_is_metacopy(fd));
	close(fd);
}

static void test_replace_metacopy(void **state)
{
	struct fixture *fx = *state;
	struct stat before, after;
	uint64_t ino = 0;
	int fd = -1;

	tree_write(fx->base, "lower/r", "the data below");
	set_xattr(LOWER("r"), "user.x", "from lower", 10);
	assert_int_equal(copy_from(fx, "lower/r", NULL, "r",
				   PLY_COPYUP_METACOPY, 4242, &fd),
			 0);
	close(fd);
	/* metadata changed in the upper since */
	assert_int_equal(chmod(UPPER("r"), 0600), 0);
	if (is_root())
		assert_int_equal(lchown(UPPER("r"), 4321, 1234), 0);
	set_xattr(UPPER("r"), "user.added", "new", 3);
	set_times(UPPER("r"), 111, 0, 222, 0);
	before = lstat_of(UPPER("r"));

	assert_int_equal(copy_from(fx, "lower/r", UPPER("r"), "r",
				   PLY_COPYUP_REPLACE, 0, &fd),
			 0);
	after = lstat_of(UPPER("r"));
	assert_content(UPPER("r"), "the data below");
	assert_false(ply_copyup_is_metacopy(fd));
	assert_null(get_xattr(UPPER("r"), marker_name()));
	assert_string_equal(get_xattr(UPPER("r"), "user.x"), "from lower");
	assert_string_equal(get_xattr(UPPER("r"), "user.added"), "new");
	assert_int_equal(after.st_mode, S_IFREG | 0600);
	assert_int_equal(after.st_uid, before.st_uid);
	assert_int_equal(after.st_gid, before.st_gid);
	assert_int_equal(after.st_mtim.tv_sec, 222);
	/* the origin record is the upper's and stays */
	assert_int_equal(ply_copyup_origin(fd, &ino), 0);
	assert_int_equal(ino, 4242);
	close(fd);
	assert_int_equal(work_entries(fx), 0);
}

static void test_origin(void **state)
{
	struct fixture *fx = *state;
	const uint64_t origin = 0x0102030405060708ULL;
	unsigned char raw[16];
	char name[64];
	uint64_t ino = 0;
	int fd = -1;

	tree_write(fx->base, "lower/o", "o");
	tree_write(fx->base, "lower/n", "n");
	assert_int_equal(copy_from(fx, "lower/o", NULL, "o", 0, origin, &fd),
			 0);
	assert_int_equal(ply_copyup_origin(fd, &ino), 0);
	assert_true(ino == origin);
	close(fd);
	/* 8 bytes, little-endian */
	snprintf(name, sizeof(name), "%splyfs.origin", xattr_ns());
	assert_int_equal(lgetxattr(UPPER("o"), name, raw, sizeof(raw)), 8);
	assert_int_equal(raw[0], 0x08);
	assert_int_equal(raw[7], 0x01);
	/* no record: ENODATA, and ret untouched */
	assert_int_equal(copy_from(fx, "lower/n", NULL, "n", 0, 0, &fd), 0);
	ino = 99;
	assert_int_equal(ply_copyup_origin(fd, &ino), -ENODATA);
	assert_int_equal(ino, 99);
	close(fd);
	/* a recorded origin is private: the next copy-up does not carry it */
	set_xattr(LOWER("n"), "user.plyfs.origin", "12345678", 8);
	assert_int_equal(copy_from(fx, "lower/n", NULL, "n2", 0, 0, &fd), 0);
	assert_int_equal(ply_copyup_origin(fd, &ino), -ENODATA);
	close(fd);
}

/* An upper without xattrs: no origin recorded, no metacopy possible. */
static void test_no_xattr_ns(void **state)
{
	struct fixture *fx = *state;
	uint64_t ino = 0;
	int fd = -1;

	tree_write(fx->base, "lower/f", "f");
	tree_mkdir(fx->base, "lower/d");
	no_xattr_ns = true;
	assert_int_equal(copy_from(fx, "lower/f", NULL, "f",
				   PLY_COPYUP_METACOPY, 7, &fd),
			 -EOPNOTSUPP);
	assert_false(exists(UPPER("f")));
	assert_int_equal(copy_from(fx, "lower/f", NULL, "f", 0, 7, &fd), 0);
	assert_int_equal(ply_copyup_origin(fd, &ino), -ENODATA);
	close(fd);
	/* METACOPY means nothing for a directory */
	assert_int_equal(copy_from(fx, "lower/d", NULL, "d",
				   PLY_COPYUP_METACOPY, 7, &fd),
			 0);
	assert_false(ply_copyup_is_metacopy(fd));
	close(fd);
	no_xattr_ns = false;
	assert_int_equal(work_entries(fx), 0);
}

static void test_noreplace(void **state)
{
	struct fixture *fx = *state;
	struct stat before;
	int fds = tree_count_fds(), fd = -1;

	tree_write(fx->base, "lower/f", "new");
	tree_write(fx->base, "upper/f", "old content");
	tree_mkdir(fx->base, "lower/d");
	tree_mkdir(fx->base, "upper/d/x");
	before = lstat_of(UPPER("f"));
	assert_int_equal(copy_from(fx, "lower/f", NULL, "f", 0, 0, &fd),
			 -EEXIST);
	assert_int_equal(copy_from(fx, "lower/d", NULL, "d", 0, 0, &fd),
			 -EEXIST);
	assert_int_equal(fd, -1);
	assert_content(UPPER("f"), "old content");
	assert_int_equal(lstat_of(UPPER("f")).st_ino, before.st_ino);
	assert_true(exists(UPPER("d/x")));
	assert_int_equal(work_entries(fx), 0);
	assert_int_equal(tree_count_fds(), fds);
	/* bad names are refused before anything is made */
	assert_int_equal(copy_from(fx, "lower/f", NULL, "a/b", 0, 0, &fd),
			 -EINVAL);
	assert_int_equal(copy_from(fx, "lower/f", NULL, "..", 0, 0, &fd),
			 -EINVAL);
	assert_int_equal(work_entries(fx), 0);
}

/* ---- atomicity under injected faults ------------------------------------ */

static int calls, fail_at;

static int count_or_fail(const char *call)
{
	return ++calls == fail_at ? -EIO : 0;
}

/* What a user sees of upper/: names, types, sizes, contents, xattrs,
 * inode numbers, modes. Returns a malloc'ed text to compare. */
static char *snapshot(const char *dir)
{
	struct dirent **list;
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	int n = scandir(dir, &list, NULL, alphasort);

	assert_true(n >= 0 && out);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *path = tree_path(dir, list[i]->d_name);
		struct stat st = lstat_of(path);
		char xl[1024] = "", data[256] = "";
		ssize_t xn = llistxattr(path, xl, sizeof(xl) - 1);

		for (ssize_t j = 0; j < xn - 1; j++)
			if (!xl[j])
				xl[j] = ',';
		if (S_ISREG(st.st_mode)) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			ssize_t dn = read(fd, data, sizeof(data) - 1);

			data[dn > 0 ? dn : 0] = '\0';
			close(fd);
		}
		len += (size_t)snprintf(out + len, cap - len,
					"%s %lu %o %ld %s [%s]\n",
					list[i]->d_name,
					(unsigned long)st.st_ino, st.st_mode,
					(long)st.st_size, data, xl);
		assert_true(len < cap);
		free(list[i]);
	}
	free(list);
	return out;
}

/* Runs one copy-up with the k-th wrapped call failing (k = 0: none),
 * counting the calls. */
static int faulty_copy(struct fixture *fx, const char *src, const char *meta,
		       const char *name, unsigned flags, int k)
{
	int fd = -1, r;

	calls = 0;
	fail_at = k;
	ply_sys_set_fault_hook(count_or_fail);
	r = copy_from(fx, src, meta, name, flags, 77, &fd);
	ply_sys_set_fault_hook(NULL);
	if (r >= 0)
		close(fd);
	return r;
}

/* Counts the calls of one successful copy-up to counted_name (metadata
 * from counted_meta, a twin of meta), then fails each call in turn on
 * name: always an error, the upper unchanged. Metadata paths are
 * relative to the base, NULL: from src. */
static void fault_each_call(struct fixture *fx, const char *src,
			    const char *counted_meta, const char *meta,
			    const char *counted_name, const char *name,
			    unsigned flags)
{
	char upper[PATH_MAX], mc[PATH_MAX], m[PATH_MAX];
	char *before;
	int fds, n;

	snprintf(upper, sizeof(upper), "%s/upper", fx->base);
	snprintf(mc, sizeof(mc), "%s/%s", fx->base,
		 counted_meta ? counted_meta : src);
	snprintf(m, sizeof(m), "%s/%s", fx->base, meta ? meta : src);
	n = faulty_copy(fx, src, mc, counted_name, flags, 0);
	if (n < 0)
		fail_msg("copy-up %s: %s", counted_name, strerror(-n));
	n = calls;
	assert_true(n >= 8);
	before = snapshot(upper);
	fds = tree_count_fds();
	for (int k = 1; k <= n; k++) {
		char *now;
		int r = faulty_copy(fx, src, m, name, flags, k);

		if (r != -EIO)
			fail_msg("%s: fault at call %d of %d: got %d", name, k,
				 n, r);
		now = snapshot(upper);
		assert_string_equal(now, before);
		free(now);
		assert_int_equal(work_entries(fx), 0);
		assert_int_equal(tree_count_fds(), fds);
	}
	free(before);
	/* and without a fault it goes through, with as many calls */
	assert_int_equal(faulty_copy(fx, src, m, name, flags, 0), 0);
	assert_int_equal(calls, n);
	assert_int_equal(work_entries(fx), 0);
}

static void test_faults(void **state)
{
	struct fixture *fx = *state;
	int fd = -1;

	tree_write(fx->base, "upper/existing", "untouched");
	tree_mkdir(fx->base, "upper/subdir");
	/* a file with data, xattrs, owner, synced */
	write_pattern(LOWER("f"), 300000);
	set_xattr(LOWER("f"), "user.a", "1", 1);
	set_xattr(LOWER("f"), "user.b", "2", 1);
	if (is_root()) {
		assert_int_equal(lchown(LOWER("f"), 10, 10), 0);
		set_xattr(LOWER("f"), "security.capability", cap_net_raw,
			  sizeof(cap_net_raw));
	}
	set_private(LOWER("f"));
	fault_each_call(fx, "lower/f", NULL, NULL, "f.count", "f",
			PLY_COPYUP_SYNC);
	fault_each_call(fx, "lower/f", NULL, NULL, "m.count", "m",
			PLY_COPYUP_METACOPY);
	fault_each_call(fx, "lower/f", NULL, NULL, "e.count", "e",
			PLY_COPYUP_EMPTY);
	/* a directory, a symlink, a fifo */
	tree_mkdir(fx->base, "lower/d/sub");
	set_xattr(LOWER("d"), "user.d", "d", 1);
	fault_each_call(fx, "lower/d", NULL, NULL, "d.count", "d",
			PLY_COPYUP_SYNC);
	tree_symlink(fx->base, "lower/l", "target");
	fault_each_call(fx, "lower/l", NULL, NULL, "l.count", "l", 0);
	tree_mknod(fx->base, "lower/p", S_IFIFO | 0644, 0);
	fault_each_call(fx, "lower/p", NULL, NULL, "p.count", "p", 0);
	/* completing a metacopy: the old upper file stays as it was; the
	 * calls are counted on a twin */
	assert_int_equal(copy_from(fx, "lower/f", NULL, "r",
				   PLY_COPYUP_METACOPY, 5, &fd),
			 0);
	close(fd);
	assert_int_equal(copy_from(fx, "lower/f", NULL, "r.count",
				   PLY_COPYUP_METACOPY, 5, &fd),
			 0);
	close(fd);
	fault_each_call(fx, "lower/f", "upper/r.count", "upper/r", "r.count",
			"r", PLY_COPYUP_REPLACE);
	assert_null(get_xattr(UPPER("r"), marker_name()));
	assert_true(same_content(LOWER("f"), UPPER("r")));
}

/* ---- concurrency -------------------------------------------------------- */

struct worker {
	struct fixture *fx;
	int id;
	int failures;
};

static void *copy_many(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 25; i++) {
		char src[64], name[64];
		int fd = -1;

		snprintf(src, sizeof(src), "lower/c%d", i);
		snprintf(name, sizeof(name), "t%d-c%d", w->id, i);
		if (copy_from(w->fx, src, NULL, name, PLY_COPYUP_SYNC, 0,
			      &fd) < 0)
			w->failures++;
		else
			close(fd);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fixture *fx = *state;
	struct worker w[4];
	pthread_t th[4];
	char rel[64];

	for (int i = 0; i < 25; i++) {
		snprintf(rel, sizeof(rel), "lower/c%d", i);
		write_pattern(tree_path(fx->base, rel), 4096 * (size_t)(i + 1));
	}
	for (int t = 0; t < 4; t++) {
		w[t] = (struct worker){ fx, t, 0 };
		assert_int_equal(pthread_create(&th[t], NULL, copy_many, &w[t]),
				 0);
	}
	for (int t = 0; t < 4; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(w[t].failures, 0);
	}
	for (int t = 0; t < 4; t++)
		for (int i = 0; i < 25; i++) {
			char a[64], b[64];

			snprintf(a, sizeof(a), "lower/c%d", i);
			snprintf(b, sizeof(b), "upper/t%d-c%d", t, i);
			assert_true(same_content(tree_path(fx->base, a),
						 tree_path(fx->base, b)));
		}
	assert_int_equal(work_entries(fx), 0);
}

/* ---- upper.c: copy-up of an inode of the union ------------------------- */

/* u over l1 and l2 of a tree_mkstack() tree, with the inode table, work
 * directory and probed upper that the daemon sets up for copy-ups. */
struct union_fx {
	char *base;
	struct ply_stack stack;
	struct ply_inode_table table;
	struct ply_workdir wd;
	struct ply_union u;
};

static void union_open(struct union_fx *ux, const char *extra)
{
	struct ply_err err = { "" };
	struct ply_lookup root;
	char opt[4 * PATH_MAX];
	const char *b = ux->base;

	snprintf(opt, sizeof(opt),
		 "lowerdir=%s/l1:%s/l2,upperdir=%s/u,workdir=%s/w%s", b, b, b,
		 b, extra);
	if (tree_stack_open(&ux->stack, opt, &err) < 0 ||
	    ply_workdir_open(&ux->stack, &ux->wd, &err) < 0 ||
	    ply_stack_probe_upper(&ux->stack, ux->wd.workfd, PLY_WH_AUTO,
				  &err) < 0)
		fail_msg("stack: %s", err.msg);
	assert_int_equal(ply_lookup_root(&ux->stack, &root), 0);
	assert_int_equal(ply_inode_table_init(&ux->table, &root, 64), 0);
	ply_lookup_release(&root);
	ux->u = (struct ply_union){ .stack = &ux->stack,
				    .table = &ux->table,
				    .workfd = ux->wd.workfd };
}

static void union_close(struct union_fx *ux)
{
	ply_inode_table_destroy(&ux->table);
	ply_workdir_close(&ux->wd);
	ply_stack_close(&ux->stack);
	tree_remove(ux->base);
	free(ux->base);
}

/* The inode of name in the union's root, as a lookup from the kernel. */
static struct ply_inode *union_acquire(struct union_fx *ux, const char *name)
{
	struct ply_inode *root = ux->table.root, *inode = NULL;
	struct ply_lookup lk;

	assert_int_equal(ply_inode_pin(&ux->table, root), 0);
	assert_int_equal(ply_lookup_name(&ux->stack, root->parts, root->nparts,
					 name, &lk),
			 0);
	ply_inode_unpin(&ux->table, root);
	assert_int_equal(ply_inode_table_acquire(&ux->table, root, name, &lk,
						 &inode),
			 0);
	return inode;
}

/* The stat the union presents for inode. */
static struct stat union_stat(struct union_fx *ux, struct ply_inode *inode)
{
	struct stat st;

	assert_int_equal(ply_inode_pin(&ux->table, inode), 0);
	assert_int_equal(ply_inode_stat(&ux->stack, inode, &st), 0);
	ply_inode_unpin(&ux->table, inode);
	return st;
}

/* A lower layer keeping ownership in override xattrs (its root carries
 * one, as containers-storage writes them): f and g are 0666 on disk (and
 * another owner's, as root) and shown 0600 as ours. A copy-up, full (f)
 * or metacopy (g), keeps what was shown: on disk, or with
 * xattr_permissions in the upper's override xattr. */
static void test_upper_override(void **state)
{
	const char *const names[] = { "f", "g" };
	struct union_fx ux = { 0 };
	char shown[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();

	(void)state;
	snprintf(shown, sizeof(shown), "%u:%u:0600", (unsigned)uid,
		 (unsigned)gid);
	for (int xperm = 0; xperm < 2; xperm++) {
		ux.base = tree_mkstack();
		tree_setxattr(ux.base, "l1", PLY_OVERRIDE_CONTAINERS,
			      "0:0:0755");
		for (size_t i = 0; i < 2; i++) {
			char rel[16];
			const char *p;

			snprintf(rel, sizeof(rel), "l1/%s", names[i]);
			tree_write(ux.base, rel, "secret");
			p = tree_path(ux.base, rel);
			assert_int_equal(chmod(p, 0666), 0);
			if (is_root())
				assert_int_equal(lchown(p, 1234, 5678), 0);
			tree_setxattr(ux.base, rel, PLY_OVERRIDE_CONTAINERS,
				      shown);
		}
		union_open(&ux, xperm ? ",xattr_permissions=2" : "");
		for (size_t i = 0; i < 2; i++) {
			struct ply_inode *inode = union_acquire(&ux, names[i]);
			char rel[16];
			struct stat st;

			st = union_stat(&ux, inode);
			assert_int_equal(st.st_mode & 07777, 0600);
			assert_int_equal(ply_upper_copy_up(
						 &ux.u, inode,
						 i ? PLY_COPYUP_METACOPY : 0),
					 0);
			st = union_stat(&ux, inode);
			assert_int_equal(st.st_uid, uid);
			assert_int_equal(st.st_gid, gid);
			assert_int_equal(st.st_mode & 07777, 0600);
			snprintf(rel, sizeof(rel), "u/%s", names[i]);
			st = lstat_of(tree_path(ux.base, rel));
			if (xperm) {
				/* the file stays as the daemon had it */
				assert_int_equal(st.st_mode & 07777, 0666);
				assert_string_equal(
					get_xattr(tree_path(ux.base, rel),
						  PLY_OVERRIDE_CONTAINERS),
					shown);
			} else {
				assert_int_equal(st.st_uid, uid);
				assert_int_equal(st.st_gid, gid);
				assert_int_equal(st.st_mode & 07777, 0600);
				assert_int_equal(
					lgetxattr(tree_path(ux.base, rel),
						  PLY_OVERRIDE_CONTAINERS, NULL,
						  0),
					-1);
				assert_int_equal(errno, ENODATA);
			}
		}
		union_close(&ux);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setuid_caps, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_directory, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_fallbacks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_only_data, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_metacopy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_metacopy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_xattr_ns, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_noreplace, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup,
						teardown),
		cmocka_unit_test(test_upper_override),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
