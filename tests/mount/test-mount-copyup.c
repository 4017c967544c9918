/* Copy-up as a user sees it: data (large files, holes), owner, mode, times
 * and xattrs kept, st_ino kept, metadata-only changes copy no data, parents
 * copied with their attributes, racing first writes lose nothing, workdir
 * left clean, one mount per upper/work, and a crash mid-copy leaves the old
 * file or the new one, never half of it. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MiB (1024L * 1024)

static const char *stack_opts(const char *u, const char *w)
{
	return h_fmt("%s,upperdir=%s,workdir=%s", h_lowerdir("l1", "l2", NULL),
		     h_path("%s", u), h_path("%s", w));
}

static struct h_mount *mount_rw(void)
{
	h_mkdir("l1");
	h_mkdir("l2");
	h_mkdir("u");
	h_mkdir("w");
	return h_mount(stack_opts("u", "w"), "mnt");
}

static struct h_mount *remount(struct h_mount *m)
{
	assert_int_equal(h_umount(m), 0);
	return mount_rw();
}

/* Opens path for writing and closes it again: a copy-up, no data change. */
static void touch_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open %s for writing: %s", path, strerror(errno));
	h_assert_ok(close(fd));
}

static void assert_hash(const char *path, uint64_t want, off_t want_size)
{
	off_t size;
	uint64_t got = h_hash_file(path, &size);

	if (size != want_size || got != want)
		fail_msg("%s: %lld bytes, hash %016llx; expected %lld bytes, "
			 "hash %016llx", path, (long long)size,
			 (unsigned long long)got, (long long)want_size,
			 (unsigned long long)want);
}

/* The names in dir/ starting with prefix (NULL: all but . and ..). */
static int count_names(const char *dir, const char *prefix)
{
	size_t n;
	char **v = h_listdir(dir, &n);
	int count = 0;

	for (size_t i = 0; i < n; i++) {
		if (!strcmp(v[i], ".") || !strcmp(v[i], ".."))
			continue;
		if (!prefix || !strncmp(v[i], prefix, strlen(prefix))) {
			print_message("%s: %s\n", dir, v[i]);
			count++;
		}
	}
	h_strv_free(v, n);
	return count;
}

/* ---- data -------------------------------------------------------------- */

static void data_64m(void **state)
{
	off_t len = 64 * MiB;
	uint64_t old = h_pattern_hash(len, 1);
	uint64_t new = h_hash_data(old, "Z", 1);
	struct h_mount *m;
	ino_t ino;

	h_file_pattern("l2/big", len, 1);
	m = mount_rw();
	ino = h_lstat(h_path("mnt/big")).st_ino;
	h_append(h_path("mnt/big"), "Z");
	assert_int_equal(h_lstat(h_path("mnt/big")).st_ino, ino);
	assert_hash(h_path("mnt/big"), new, len + 1);
	assert_hash(h_path("u/big"), new, len + 1);
	assert_hash(h_path("l2/big"), old, len);

	m = remount(m);
	assert_int_equal(h_lstat(h_path("mnt/big")).st_ino, ino);
	assert_hash(h_path("mnt/big"), new, len + 1);
	(void)m;
}

/* A 1 GiB lower file with a few KiB of data stays sparse in the upper. */
static void holes_kept(void **state)
{
	off_t gib = 1024 * MiB;
	char buf[4096], got[4096];
	struct stat st;
	int fd;

	memset(buf, 'd', sizeof(buf));
	h_mkdir("l2");
	fd = open(h_path("l2/sparse"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	h_assert_ok(fd);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 512 * MiB),
			 sizeof(buf));
	h_assert_ok(ftruncate(fd, gib));
	h_assert_ok(close(fd));
	mount_rw();

	h_append(h_path("mnt/sparse"), "e");
	st = h_lstat(h_path("u/sparse"));
	assert_int_equal(st.st_size, gib + 1);
	if (st.st_blocks > 1024)
		fail_msg("u/sparse: %lld blocks of 512 bytes for 8 KiB of "
			 "data: holes were filled", (long long)st.st_blocks);
	assert_int_equal(h_lstat(h_path("mnt/sparse")).st_size, gib + 1);

	fd = open(h_path("mnt/sparse"), O_RDONLY | O_CLOEXEC);
	h_assert_ok(fd);
	assert_int_equal(pread(fd, got, sizeof(got), 0), sizeof(got));
	assert_memory_equal(got, buf, sizeof(buf));
	assert_int_equal(pread(fd, got, sizeof(got), 512 * MiB), sizeof(got));
	assert_memory_equal(got, buf, sizeof(buf));
	assert_int_equal(pread(fd, got, sizeof(got), 256 * MiB), sizeof(got));
	for (size_t i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], 0);
	assert_int_equal(pread(fd, got, 10, gib - 9), 10);
	assert_int_equal(got[8], 0);
	assert_int_equal(got[9], 'e');
	h_assert_ok(close(fd));
}

/* ---- attributes -------------------------------------------------------- */

static void assert_xattr(const char *path, const char *name, const void *val,
			 size_t len)
{
	char buf[256];
	ssize_t n = lgetxattr(path, name, buf, sizeof(buf));

	if (n < 0)
		fail_msg("%s: no %s: %s", path, name, strerror(errno));
	if ((size_t)n != len || memcmp(buf, val, len) != 0)
		fail_msg("%s: %s has another value (%zd bytes)", path, name,
			 n);
}

static void check_attrs(const char *path, const struct stat *want,
			const struct vfs_cap_data *cap)
{
	struct stat st = h_lstat(path);

	if (st.st_mode != want->st_mode)
		fail_msg("%s: mode %o, expected %o", path,
			 (unsigned)st.st_mode, (unsigned)want->st_mode);
	assert_int_equal(st.st_uid, want->st_uid);
	assert_int_equal(st.st_gid, want->st_gid);
	if (st.st_mtim.tv_sec != want->st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != want->st_mtim.tv_nsec)
		fail_msg("%s: mtime %lld.%09ld, expected %lld.%09ld", path,
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			 (long long)want->st_mtim.tv_sec,
			 want->st_mtim.tv_nsec);
	assert_xattr(path, "user.foo", "bar", 3);
	if (h_is_root()) {
		assert_xattr(path, "trusted.foo", "tv", 2);
		assert_xattr(path, "security.capability", cap,
			     XATTR_CAPS_SZ_2);
	}
}

/* Owner, mode (setuid too), times and xattrs survive a copy-up, on the
 * upper file and through the mount. */
static void attrs_kept(void **state)
{
	struct vfs_cap_data cap = {
		.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
		.data = { { .permitted = 1u << CAP_NET_BIND_SERVICE } },
	};
	struct stat want;

	h_file("l2/d/f", "content of f");
	if (h_is_root()) {
		h_assert_ok(lchown(h_path("l2/d/f"), 1234, 5678));
		h_assert_ok(lsetxattr(h_path("l2/d/f"), "security.capability",
				      &cap, XATTR_CAPS_SZ_2, 0));
		h_xattr("l2/d/f", "trusted.foo", "tv");
	}
	h_assert_ok(chmod(h_path("l2/d/f"), 04751));
	h_xattr("l2/d/f", "user.foo", "bar");
	h_times("l2/d/f", 1111111111, 222222222);
	want = h_lstat(h_path("l2/d/f"));
	assert_int_equal(want.st_mode, S_IFREG | 04751);
	mount_rw();

	check_attrs(h_path("mnt/d/f"), &want, &cap);
	touch_open(h_path("mnt/d/f"));
	if (lstat(h_path("u/d/f"), &(struct stat){ 0 }) < 0)
		fail_msg("open for writing did not copy d/f up: %s",
			 strerror(errno));
	check_attrs(h_path("u/d/f"), &want, &cap);
	check_attrs(h_path("mnt/d/f"), &want, &cap);
	h_assert_content(h_path("mnt/d/f"), "content of f");
	h_assert_content(h_path("u/d/f"), "content of f");
}

/* st_ino stays through every kind of copy-up and across a remount. */
static void ino_kept(void **state)
{
	const char *names[] = { "w", "c", "x", "t", "l", "r" };
	ino_t ino[6];
	struct h_mount *m;

	for (size_t i = 0; i < 6; i++)
		h_file(h_fmt("l2/%s", names[i]), names[i]);
	m = mount_rw();
	for (size_t i = 0; i < 6; i++)
		ino[i] = h_lstat(h_path("mnt/%s", names[i])).st_ino;

	h_append(h_path("mnt/w"), "+");
	h_assert_ok(chmod(h_path("mnt/c"), 0600));
	h_assert_ok(lsetxattr(h_path("mnt/x"), "user.a", "b", 1, 0));
	h_assert_ok(truncate(h_path("mnt/t"), 0));
	h_assert_ok(link(h_path("mnt/l"), h_path("mnt/l2")));
	h_assert_ok(rename(h_path("mnt/r"), h_path("mnt/r2")));
	names[5] = "r2";
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(h_lstat(h_path("mnt/%s", names[i])).st_ino,
				 ino[i]);
	assert_int_equal(h_lstat(h_path("mnt/l2")).st_ino, ino[4]);

	m = remount(m);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(h_lstat(h_path("mnt/%s", names[i])).st_ino,
				 ino[i]);
	assert_int_equal(h_lstat(h_path("mnt/l2")).st_ino, ino[4]);
	(void)m;
}

/* ---- metacopy ---------------------------------------------------------- */

/* chmod of a large lower file copies no data; the data follows on the
 * first open for writing. */
static void metacopy_chmod(void **state)
{
	off_t len = 16 * MiB;
	uint64_t old = h_pattern_hash(len, 2);
	struct h_mount *m;
	struct stat st;

	h_file_pattern("l2/big", len, 2);
	m = mount_rw();
	h_assert_ok(chmod(h_path("mnt/big"), 0600));
	st = h_lstat(h_path("u/big"));
	assert_int_equal(st.st_size, len);
	if (st.st_blocks != 0)
		fail_msg("u/big: chmod copied data (%lld blocks)",
			 (long long)st.st_blocks);
	assert_int_equal(h_lstat(h_path("mnt/big")).st_mode, S_IFREG | 0600);
	assert_hash(h_path("mnt/big"), old, len);

	/* the data is still found after a remount */
	m = remount(m);
	assert_int_equal(h_lstat(h_path("mnt/big")).st_mode, S_IFREG | 0600);
	assert_hash(h_path("mnt/big"), old, len);

	h_append(h_path("mnt/big"), "Z");
	assert_hash(h_path("mnt/big"), h_hash_data(old, "Z", 1), len + 1);
	assert_hash(h_path("u/big"), h_hash_data(old, "Z", 1), len + 1);
	m = remount(m);
	assert_hash(h_path("mnt/big"), h_hash_data(old, "Z", 1), len + 1);
	assert_hash(h_path("l2/big"), old, len);
}

/* O_TRUNC of a large lower file: nothing of the old data is copied. */
static void otrunc_no_copy(void **state)
{
	off_t len = 16 * MiB;
	struct stat st;
	int fd;

	h_file_pattern("l2/big", len, 3);
	mount_rw();
	fd = open(h_path("mnt/big"), O_WRONLY | O_TRUNC | O_CLOEXEC);
	h_assert_ok(fd);
	st = h_lstat(h_path("u/big"));
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_blocks, 0);
	assert_int_equal(write(fd, "new", 3), 3);
	h_assert_ok(close(fd));
	h_assert_content(h_path("mnt/big"), "new");
	h_assert_content(h_path("u/big"), "new");
	assert_hash(h_path("l2/big"), h_pattern_hash(len, 3), len);
}

/* ---- parents ----------------------------------------------------------- */

static void check_dir(const char *path, const struct stat *want)
{
	struct stat st = h_lstat(path);

	if (st.st_mode != want->st_mode || st.st_uid != want->st_uid ||
	    st.st_gid != want->st_gid)
		fail_msg("%s: mode %o uid %u gid %u, expected %o %u %u", path,
			 (unsigned)st.st_mode, (unsigned)st.st_uid,
			 (unsigned)st.st_gid, (unsigned)want->st_mode,
			 (unsigned)want->st_uid, (unsigned)want->st_gid);
	if (st.st_mtim.tv_sec != want->st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != want->st_mtim.tv_nsec)
		fail_msg("%s: mtime %lld.%09ld, expected the lower's "
			 "%lld.%09ld", path, (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec, (long long)want->st_mtim.tv_sec,
			 want->st_mtim.tv_nsec);
}

static void parents_copied(void **state)
{
	struct stat a, b, c;
	struct h_mount *m;

	h_file("l2/a/b/c/f", "deep");
	h_file("l2/a/other", "o");
	h_assert_ok(chmod(h_path("l2/a"), 0750));
	h_assert_ok(chmod(h_path("l2/a/b"), 0711));
	h_assert_ok(chmod(h_path("l2/a/b/c"), 0700));
	if (h_is_root()) {
		h_assert_ok(lchown(h_path("l2/a/b"), 1000, 1001));
		h_assert_ok(lchown(h_path("l2/a/b/c"), 2000, 2001));
	}
	h_times("l2/a", 1000000001, 1);
	h_times("l2/a/b", 1000000002, 2);
	h_times("l2/a/b/c", 1000000003, 3);
	a = h_lstat(h_path("l2/a"));
	b = h_lstat(h_path("l2/a/b"));
	c = h_lstat(h_path("l2/a/b/c"));
	m = mount_rw();

	h_append(h_path("mnt/a/b/c/f"), "!");
	h_assert_content(h_path("u/a/b/c/f"), "deep!");
	check_dir(h_path("u/a"), &a);
	check_dir(h_path("u/a/b"), &b);
	check_dir(h_path("u/a/b/c"), &c);
	check_dir(h_path("mnt/a"), &a);
	check_dir(h_path("mnt/a/b"), &b);
	check_dir(h_path("mnt/a/b/c"), &c);
	h_assert_listing(h_path("mnt/a"), H_NAMES("b", "other"));

	/* what the mount shows after a remount comes from the upper */
	m = remount(m);
	check_dir(h_path("mnt/a"), &a);
	check_dir(h_path("mnt/a/b"), &b);
	check_dir(h_path("mnt/a/b/c"), &c);
	(void)m;
}

/* ---- racing first writes ----------------------------------------------- */

static void racing_appends(void **state)
{
	enum { NPROC = 8, NFILES = 4 };
	off_t len = 4 * MiB;

	for (int f = 0; f < NFILES; f++)
		h_file_pattern(h_fmt("l2/race%d", f), len, 10 + f);
	mount_rw();

	for (int f = 0; f < NFILES; f++) {
		const char *path = h_fmt("%s", h_path("mnt/race%d", f));
		char mine[PATH_MAX];
		int go[2];
		pid_t pids[NPROC];
		char *got;
		size_t got_len;
		bool seen[NPROC] = { false };

		snprintf(mine, sizeof(mine), "%s", path);
		h_assert_ok(pipe2(go, O_CLOEXEC));
		fflush(NULL);
		for (int i = 0; i < NPROC; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				char c = 'A' + i, x;
				int fd;

				close(go[1]);
				if (read(go[0], &x, 1) != 0)
					_exit(3);
				fd = open(mine, O_WRONLY | O_APPEND);
				if (fd < 0)
					_exit(1);
				if (write(fd, &c, 1) != 1)
					_exit(2);
				_exit(close(fd) < 0 ? 4 : 0);
			}
		}
		close(go[0]);
		close(go[1]); /* all start at once */
		for (int i = 0; i < NPROC; i++) {
			int status;

			assert_int_equal(waitpid(pids[i], &status, 0),
					 pids[i]);
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				fail_msg("appender %d: status 0x%x", i,
					 status);
		}
		got = h_read(mine, &got_len);
		if (got_len != (size_t)len + NPROC) {
			free(got);
			fail_msg("%s: %zu bytes, expected %lld", mine, got_len,
				 (long long)len + NPROC);
		}
		if (h_hash_data(H_HASH_INIT, got, len) !=
		    h_pattern_hash(len, 10 + f)) {
			free(got);
			fail_msg("%s: the original content was changed", mine);
		}
		for (int i = 0; i < NPROC; i++) {
			int c = got[len + i] - 'A';

			if (c < 0 || c >= NPROC || seen[c]) {
				free(got);
				fail_msg("%s: appended bytes lost or doubled",
					 mine);
			}
			seen[c] = true;
		}
		free(got);
	}
}

/* ---- workdir ----------------------------------------------------------- */

static void workdir_clean(void **state)
{
	struct h_mount *m;

	h_file_pattern("l2/big", 8 * MiB, 4);
	h_file("l2/d/a", "a");
	h_file("l2/d/b", "b");
	h_file("l1/e/x", "x");
	h_file("l2/gone", "g");
	m = mount_rw();
	assert_int_equal(count_names(h_path("w/work"), NULL), 0);

	h_append(h_path("mnt/big"), "1");
	h_append(h_path("mnt/d/a"), "2");
	h_assert_ok(chmod(h_path("mnt/d/b"), 0600));
	h_assert_ok(unlink(h_path("mnt/gone")));
	h_assert_ok(unlink(h_path("mnt/e/x")));
	h_assert_ok(rmdir(h_path("mnt/e")));
	h_assert_ok(rename(h_path("mnt/d"), h_path("mnt/d2")));
	h_assert_ok(mkdir(h_path("mnt/n"), 0755));
	assert_int_equal(count_names(h_path("w/work"), NULL), 0);

	m = remount(m);
	assert_int_equal(count_names(h_path("w/work"), NULL), 0);
	h_assert_content(h_path("mnt/d2/a"), "a2");
	assert_int_equal(h_umount(m), 0);
	assert_int_equal(count_names(h_path("w/work"), NULL), 0);
}

/* Runs plyfs on a stack that is already mounted: it must fail with exit
 * status 2 and one line on stderr, and mount nothing. */
static void assert_mount_refused(const char *opts, const char *mnt)
{
	char errpath[PATH_MAX], p[PATH_MAX];
	int status = 0;
	pid_t pid;
	char *err;
	size_t len;
	int lines = 0;

	h_mkdir(mnt);
	snprintf(p, sizeof(p), "%s", h_path("%s", mnt));
	snprintf(errpath, sizeof(errpath), "%s", h_path("%s.err", mnt));
	pid = h_spawn(H_NAMES(h_plyfs(), "-f", "-o", opts, p), NULL, NULL,
		      NULL, errpath);
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
		kill(pid, SIGKILL);
		h_wait(pid, H_EXIT_WAIT_MS, &status);
		umount2(p, MNT_DETACH);
		fail_msg("a second mount of the same stack at %s did not "
			 "fail: it mounted", mnt);
	}
	err = h_read(errpath, &len);
	for (size_t i = 0; i < len; i++)
		lines += err[i] == '\n';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || lines != 1 ||
	    len < 2 || err[len - 1] != '\n') {
		print_error("stderr:\n%s", err);
		free(err);
		fail_msg("second mount at %s: status 0x%x, %d lines on stderr;"
			 " expected exit 2 and one line", mnt, status, lines);
	}
	print_message("refused: %s", err);
	free(err);
	assert_false(h_is_mountpoint(p));
}

static void second_mount_refused(void **state)
{
	h_file("l2/f", "f");
	h_mkdir("u2");
	h_mkdir("w2");
	mount_rw();

	assert_mount_refused(stack_opts("u", "w"), "mnt2");
	assert_mount_refused(stack_opts("u", "w2"), "mnt3");
	assert_mount_refused(stack_opts("u2", "w"), "mnt4");
	/* the first mount is unharmed */
	h_assert_content(h_path("mnt/f"), "f");
	h_append(h_path("mnt/f"), "+");
	h_assert_content(h_path("mnt/f"), "f+");
}

/* ---- crash safety ------------------------------------------------------ */

static bool has_temp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d)))
		found = !strncmp(de->d_name, "#plyfs-", 7);
	closedir(d);
	return found;
}

/* kill -9 of the daemon during a 256 MiB copy-up: after a remount the
 * file is the old one or the new one, never partial, and no temporary is
 * left in the workdir. */
static void crash_during_copyup(void **state)
{
	off_t len = 256 * MiB;
	uint64_t old = h_pattern_hash(len, 5);
	struct h_mount *m;
	char path[PATH_MAX];
	pid_t writer;
	int status, waited;
	bool mid = false;
	off_t size;
	uint64_t got;

	h_file_pattern("l2/big", len, 5);
	m = mount_rw();
	snprintf(path, sizeof(path), "%s", h_path("mnt/big"));

	fflush(NULL);
	writer = fork();
	assert_true(writer >= 0);
	if (writer == 0) {
		int fd = open(path, O_WRONLY | O_APPEND);

		if (fd < 0)
			_exit(1);
		_exit(write(fd, "N", 1) == 1 ? 0 : 2);
	}
	/* kill as soon as the copy is seen in progress */
	for (waited = 0; waited < 5000; waited++) {
		if (has_temp(h_path("w/work"))) {
			mid = true;
			break;
		}
		if (waitpid(writer, &status, WNOHANG) == writer) {
			writer = 0;
			break;
		}
		usleep(1000);
	}
	kill(m->pid, SIGKILL);
	print_message("daemon killed %s\n",
		      mid ? "while a copy-up temporary was in w/work" :
			    "(no temporary seen in w/work)");
	h_umount(m);
	if (writer > 0)
		h_wait(writer, H_EXIT_WAIT_MS, &status);

	m = mount_rw();
	got = h_hash_file(h_path("mnt/big"), &size);
	if (!(size == len && got == old) &&
	    !(size == len + 1 && got == h_hash_data(old, "N", 1)))
		fail_msg("after the crash mnt/big has %lld bytes (hash "
			 "%016llx): neither the old file nor the new",
			 (long long)size, (unsigned long long)got);
	if (has_temp(h_path("w/work")))
		fail_msg("w/work still holds a #plyfs- temporary after the "
			 "remount");
	assert_int_equal(count_names(h_path("w/work"), "#plyfs-"), 0);
	/* and it can be written now */
	h_append(h_path("mnt/big"), "M");
	assert_int_equal(h_lstat(h_path("mnt/big")).st_size, size + 1);
	(void)m;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(data_64m),
		H_TEST(holes_kept),
		H_TEST(attrs_kept),
		H_TEST(ino_kept),
		H_TEST(metacopy_chmod),
		H_TEST(otrunc_no_copy),
		H_TEST(parents_copied),
		H_TEST(racing_appends),
		H_TEST(workdir_clean),
		H_TEST(second_mount_refused),
		H_TEST(crash_during_copyup),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
