/* Reading through the mount: content of files of many sizes, a large sparse
 * file at far offsets, mmap; the layers are never written (not even atime);
 * a mount without upperdir refuses every change with EROFS. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

#define GIB (1024LL * 1024 * 1024)

/* A byte pattern that differs at every offset of a few MiB. */
static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)((i * 31 + seed * 7 + (i >> 12)) & 0xff);
}

static void read_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097,
					65543, 131072, (1 << 20) + 3 };
	const size_t nsizes = sizeof(sizes) / sizeof(*sizes);
	char *want = malloc(sizes[nsizes - 1]);

	assert_non_null(want);
	for (size_t i = 0; i < nsizes; i++) {
		fill(want, sizes[i], i);
		h_file_data(h_fmt("l%zu/f%zu", i % 2 + 1, i), want, sizes[i]);
	}
	h_mount_lowers("mnt", "l1", "l2", NULL);

	for (size_t i = 0; i < nsizes; i++) {
		size_t len;
		char *got = h_read(h_path("mnt/f%zu", i), &len);
		struct stat st;

		fill(want, sizes[i], i);
		assert_int_equal(len, sizes[i]);
		assert_memory_equal(got, want, len);
		free(got);
		h_assert_ok(stat(h_path("mnt/f%zu", i), &st));
		assert_int_equal(st.st_size, sizes[i]);
	}
	free(want);
}

/* A 3 GiB sparse file with data at a few far offsets. */
static void read_sparse(void **state)
{
	static const long long offs[] = { 0, GIB - 5, 2 * GIB + 4096 * 7,
					  3 * GIB - 16 };
	const size_t noffs = sizeof(offs) / sizeof(*offs);
	char want[16], got[64], zero[64] = { 0 };
	struct stat st;
	int fd;

	h_file("l1/other", "x");
	h_file("l2/sparse", "");
	fd = open(h_path("l2/sparse"), O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	h_assert_ok(ftruncate(fd, 3 * GIB));
	for (size_t i = 0; i < noffs; i++) {
		fill(want, sizeof(want), i + 1);
		assert_int_equal(pwrite(fd, want, sizeof(want), offs[i]),
				 sizeof(want));
	}
	close(fd);
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_ok(stat(h_path("mnt/sparse"), &st));
	assert_int_equal(st.st_size, 3 * GIB);
	fd = open(h_path("mnt/sparse"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (size_t i = 0; i < noffs; i++) {
		fill(want, sizeof(want), i + 1);
		assert_int_equal(pread(fd, got, sizeof(want), offs[i]),
				 sizeof(want));
		assert_memory_equal(got, want, sizeof(want));
	}
	/* holes read as zeros */
	assert_int_equal(pread(fd, got, sizeof(got), GIB + 12345),
			 sizeof(got));
	assert_memory_equal(got, zero, sizeof(got));
	assert_int_equal(pread(fd, got, sizeof(got), 2 * GIB), sizeof(got));
	assert_memory_equal(got, zero, sizeof(got));
	/* a read across the end is short, at the end empty */
	assert_int_equal(pread(fd, got, sizeof(got), 3 * GIB - 8), 8);
	assert_int_equal(pread(fd, got, sizeof(got), 3 * GIB), 0);
	assert_int_equal(pread(fd, got, sizeof(got), 4 * GIB), 0);
	close(fd);
}

static void read_mmap(void **state)
{
	const size_t len = (1 << 20) + 123;
	char *want = malloc(len);
	char *map;
	int fd;

	assert_non_null(want);
	fill(want, len, 9);
	h_file_data("l2/d/m", want, len);
	h_file("l1/d/other", "x");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	fd = open(h_path("mnt/d/m"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_memory_equal(map, want, len);
	munmap(map, len);
	/* a private mapping at an offset */
	map = mmap(NULL, 65536, PROT_READ, MAP_PRIVATE, fd, 65536);
	assert_true(map != MAP_FAILED);
	assert_memory_equal(map, want + 65536, 65536);
	munmap(map, 65536);
	close(fd);
	free(want);
}

static void old_atime(const char *rel)
{
	struct timespec ts[2] = { { 1000, 0 }, { 1000000000, 0 } };

	h_assert_ok(utimensat(AT_FDCWD, h_path("%s", rel), ts, 0));
}

/* Reading, listing and stat through the mount leave the layer's atime
 * alone: plyfs never writes to a lower layer. */
static void no_atime_change(void **state)
{
	struct stat before, after, dbefore, dafter;
	char *got;

	/* atime older than mtime: relatime updates it on a plain read */
	h_file("probe", "probe");
	old_atime("probe");
	free(h_read(h_path("probe"), NULL));
	h_assert_ok(lstat(h_path("probe"), &after));
	if (after.st_atim.tv_sec == 1000) {
		print_message("the test filesystem never updates atime\n");
		skip();
	}

	h_file("l1/d/f", "data to read");
	old_atime("l1/d/f");
	old_atime("l1/d");
	h_assert_ok(lstat(h_path("l1/d/f"), &before));
	h_assert_ok(lstat(h_path("l1/d"), &dbefore));
	h_mount_lowers("mnt", "l1", NULL);

	got = h_read(h_path("mnt/d/f"), NULL);
	assert_string_equal(got, "data to read");
	free(got);
	h_assert_listing(h_path("mnt/d"), H_NAMES("f"));
	h_assert_ok(lstat(h_path("l1/d/f"), &after));
	h_assert_ok(lstat(h_path("l1/d"), &dafter));
	if (after.st_atim.tv_sec != before.st_atim.tv_sec)
		fail_msg("reading mnt/d/f changed l1/d/f's atime (%ld to %ld)",
			 (long)before.st_atim.tv_sec,
			 (long)after.st_atim.tv_sec);
	assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	assert_int_equal(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
	assert_int_equal(after.st_ctim.tv_nsec, before.st_ctim.tv_nsec);
	if (dafter.st_atim.tv_sec != dbefore.st_atim.tv_sec)
		fail_msg("listing mnt/d changed l1/d's atime");
}

/* Without upperdir every change fails with EROFS; reads still work. */
static void readonly_erofs(void **state)
{
	struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };
	char *f, *d, *n;

	h_file("l1/f", "file");
	h_file("l2/d/x", "x");
	h_mkdir("l1/emptydir");
	h_mount_lowers("mnt", "l1", "l2", NULL);
	f = strdup(h_path("mnt/f"));
	d = strdup(h_path("mnt/d"));
	n = strdup(h_path("mnt/new"));

	h_assert_errno(open(f, O_WRONLY | O_CLOEXEC), EROFS);
	h_assert_errno(open(f, O_RDWR | O_CLOEXEC), EROFS);
	h_assert_errno(open(f, O_WRONLY | O_TRUNC | O_CLOEXEC), EROFS);
	h_assert_errno(open(n, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EROFS);
	h_assert_errno(creat(h_path("mnt/d/new"), 0644), EROFS);
	h_assert_errno(mkdir(n, 0755), EROFS);
	h_assert_errno(mkdir(h_path("mnt/d/newdir"), 0755), EROFS);
	h_assert_errno(unlink(f), EROFS);
	h_assert_errno(unlink(h_path("mnt/d/x")), EROFS);
	h_assert_errno(rmdir(h_path("mnt/emptydir")), EROFS);
	h_assert_errno(rename(f, n), EROFS);
	h_assert_errno(symlink("f", n), EROFS);
	h_assert_errno(link(f, n), EROFS);
	h_assert_errno(mkfifo(n, 0644), EROFS);
	h_assert_errno(chmod(f, 0600), EROFS);
	h_assert_errno(chown(f, 1, 1), EROFS);
	h_assert_errno(utimensat(AT_FDCWD, f, ts, 0), EROFS);
	h_assert_errno(truncate(f, 0), EROFS);
	h_assert_errno(setxattr(f, "user.x", "1", 1, 0), EROFS);
	h_assert_errno(access(f, W_OK), EROFS);
	h_assert_errno(access(d, W_OK), EROFS);

	/* reads are unaffected, and nothing changed */
	h_assert_ok(access(f, R_OK));
	h_assert_content(f, "file");
	h_assert_listing(h_path("mnt"), H_NAMES("f", "d", "emptydir"));
	h_assert_listing(h_path("l1"), H_NAMES("f", "emptydir"));
	free(f);
	free(d);
	free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(read_sizes),
		H_TEST(read_sparse),
		H_TEST(read_mmap),
		H_TEST(no_atime_change),
		H_TEST(readonly_erofs),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
