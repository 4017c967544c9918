/* fuzz-import.c: the importer of plyctl import (tools/import.c) on
 * arbitrary archives. Each input is opened by libarchive from memory, as
 * plyctl opens a file (every filter, the tar formats), and unpacked into
 * DIR/layer, DIR a fresh directory under one temporary base that also
 * holds a canary file, DIR/canary. After the run: nothing but canary and
 * layer is in DIR, nothing but DIR in the base, the canary is as it was
 * (content, mode, owner, times, ctime, link count: no chmod, chown,
 * xattr or link reached it), layer is still a directory,
 * and no fd is left open. Then DIR is removed.
 *
 * The last byte of the input picks the settings: bits 0-1 the marker
 * format (chardev, xattr under trusted. or user. as plyctl picks it, file,
 * xattr under user.), bit 2 an unprivileged import even as root. A tar
 * ends with zero blocks, so the seeds run with plyctl's defaults. Tar
 * header checksums are set right before the archive is read (see
 * fix_checksums). */
#include <archive.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "import.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CANARY "canary\n"
#define CANARY_MTIME 1000000000

static char base[4096]; /* the temporary base, made once */
static int basefd = -1;

/* Removes name in parent and all it holds, following nothing; directories
 * are opened up first (an archive may have made them 0000). */
static void remove_tree(int parent, const char *name)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return;
	fchmodat(parent, name, 0700, 0); /* a directory: not a symlink */
	fd = openat(parent, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd))) {
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				remove_tree(dirfd(d), de->d_name);
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		fprintf(stderr, "fuzz-import: cannot remove %s/%s: %m\n", base,
			name);
		abort();
	}
}

static void remove_base(void)
{
	if (basefd >= 0)
		remove_tree(AT_FDCWD, base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/plyfs-fuzz-import.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("fuzz-import: mkdtemp");
		abort();
	}
	basefd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(basefd >= 0);
	atexit(remove_base);
	return 0;
}

/* Aborts unless every name in the directory parent/name (but "." and
 * "..") is one of allowed. */
static void expect_only(int parent, const char *name,
			const char *const *allowed)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	CHECK(fd >= 0);
	d = fdopendir(fd);
	CHECK(d);
	while ((de = readdir(d))) {
		bool ok = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");

		for (const char *const *a = allowed; !ok && *a; a++)
			ok = !strcmp(de->d_name, *a);
		if (!ok) {
			fprintf(stderr,
				"fuzz-import: the import wrote '%s' outside its layer\n",
				de->d_name);
			abort();
		}
	}
	closedir(d);
}

/* Sets the checksum of every 512-byte block that carries the ustar magic,
 * as a tar writer would: without it nearly every mutation of a header is
 * refused by libarchive's checksum test, and the importer never sees the
 * fields it was meant to get. */
static void fix_checksums(uint8_t *buf, size_t size)
{
	for (size_t off = 0; off + 512 <= size; off += 512) {
		uint8_t *h = buf + off;
		unsigned sum = 0;

		if (memcmp(h + 257, "ustar", 5))
			continue;
		memset(h + 148, ' ', 8);
		for (size_t i = 0; i < 512; i++)
			sum += h[i];
		snprintf((char *)h + 148, 8, "%06o", sum & 0777777);
		h[155] = ' ';
	}
}

static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const in_base[] = { "run", NULL };
	static const char *const in_dir[] = { "canary", "layer", NULL };
	struct timespec ts[2] = { { CANARY_MTIME, 0 }, { CANARY_MTIME, 0 } };
	unsigned char knob = size ? data[size - 1] : 0;
	struct plyctl_import opts = { .quiet = true };
	struct plyctl_import_result res;
	struct stat before, after, lst;
	char content[sizeof(CANARY)];
	int runfd, layerfd, fd, free_fd = lowest_free_fd();
	struct archive *a;
	uint8_t *copy;
	ssize_t n;

	/* DIR = base/run, with the canary beside the layer */
	CHECK(mkdirat(basefd, "run", 0755) == 0);
	runfd = openat(basefd, "run", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(runfd >= 0);
	CHECK(mkdirat(runfd, "layer", 0755) == 0);
	fd = openat(runfd, "canary", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0640);
	CHECK(fd >= 0);
	CHECK(write(fd, CANARY, strlen(CANARY)) == (ssize_t)strlen(CANARY));
	CHECK(fchmod(fd, 0640) == 0 && futimens(fd, ts) == 0);
	CHECK(fstat(fd, &before) == 0);
	close(fd);
	layerfd = openat(runfd, "layer", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(layerfd >= 0);

	switch (knob & 3) {
	case 0:
		opts.wh_format = PLY_WH_CHARDEV;
		break;
	case 1:
	case 3:
		opts.wh_format = PLY_WH_XATTR;
		break;
	case 2:
		opts.wh_format = PLY_WH_FILE;
		break;
	}
	opts.root = geteuid() == 0 && !(knob & 4);
	opts.xattr_ns = opts.root && (knob & 3) != 3 ? "trusted." : "user.";

	copy = malloc(size ? size : 1);
	CHECK(copy);
	memcpy(copy, data, size);
	fix_checksums(copy, size);

	/* as plyctl import opens a file */
	a = archive_read_new();
	CHECK(a);
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_memory(a, copy, size) == ARCHIVE_OK)
		(void)plyctl_import_archive(a, layerfd, &opts, &res);
	archive_read_free(a);
	free(copy);
	close(layerfd);

	expect_only(basefd, "run", in_dir);
	expect_only(AT_FDCWD, base, in_base);
	CHECK(fstatat(runfd, "layer", &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(lst.st_mode));
	fd = openat(runfd, "canary", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(fstat(fd, &after) == 0);
	n = read(fd, content, sizeof(content));
	close(fd);
	if (n != (ssize_t)strlen(CANARY) || memcmp(content, CANARY, (size_t)n) ||
	    after.st_ino != before.st_ino || after.st_mode != before.st_mode ||
	    after.st_uid != before.st_uid || after.st_gid != before.st_gid ||
	    after.st_nlink != 1 || after.st_size != before.st_size ||
	    after.st_mtim.tv_sec != CANARY_MTIME ||
	    after.st_atim.tv_sec != before.st_atim.tv_sec ||
	    after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
	    after.st_ctim.tv_nsec != before.st_ctim.tv_nsec) {
		fprintf(stderr,
			"fuzz-import: the canary beside the layer was changed "
			"(mode 0%o -> 0%o, uid %u -> %u, nlink %lu, mtime %lld)\n",
			before.st_mode, after.st_mode, before.st_uid,
			after.st_uid, (unsigned long)after.st_nlink,
			(long long)after.st_mtim.tv_sec);
		abort();
	}
	close(runfd);
	remove_tree(basefd, "run");
	if (lowest_free_fd() != free_fd) {
		fprintf(stderr, "fuzz-import: the import left an fd open\n");
		abort();
	}
	return 0;
}
