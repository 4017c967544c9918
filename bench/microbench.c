/* microbench: times single syscalls on a list of paths in a directory, so
 * per-operation costs of a union mount are visible. No library, no FUSE:
 * built by bench/run with `cc -O2 -o microbench bench/microbench.c`.
 *
 *   microbench [-C DIR] [-s SYNCDIR]... [-l LIST] OP [ARG] [PATH...]
 *
 * OP is one of
 *   append          open(O_WRONLY|O_APPEND), write 1 byte, close
 *   openappend      open(O_WRONLY|O_APPEND), close (no write)
 *   trunc           open(O_WRONLY|O_TRUNC), close
 *   open            open(O_RDONLY), close
 *   read            open, read the whole file in 1 MiB chunks, close
 *   chmod MODE      chmod(path, MODE)           (MODE in octal)
 *   chown UID:GID   lchown(path, UID, GID)
 *   utimes          utimensat(path, {1e9 s, 1e9 s}, AT_SYMLINK_NOFOLLOW)
 *   lstat           lstat(path); ENOENT counts as a result, not an error
 * Paths are relative to DIR (-C, default "."), one per argument or one per
 * line of LIST (-l). After the last operation each -s SYNCDIR is opened and
 * syncfs()ed, timed apart. The one output line is key=value pairs:
 *   op n ok enoent err ops_us per_op_us p50_us p99_us max_us sync_us total_us
 * (total_us = ops_us + sync_us). Exit status 1 when any operation failed
 * with an errno other than the expected ENOENT of lstat, 2 for bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum op { OP_APPEND, OP_OPENAPPEND, OP_TRUNC, OP_OPEN, OP_READ, OP_CHMOD,
	  OP_CHOWN, OP_UTIMES, OP_LSTAT };

static const char *const op_names[] = {
	"append", "openappend", "trunc", "open", "read",
	"chmod", "chown", "utimes", "lstat",
};

#define MAX_SYNC 8
#define READ_CHUNK (1 << 20)

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: microbench [-C DIR] [-s SYNCDIR]... [-l LIST] OP [ARG] [PATH...]\n"
		"OP: append openappend trunc open read chmod MODE chown UID:GID utimes lstat\n");
	exit(2);
}

/* Appends the lines of file to *paths (each malloc'd); returns the count. */
static size_t read_list(const char *file, char ***paths, size_t n)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0, alloc = n + 1024;
	ssize_t len;

	if (!f) {
		fprintf(stderr, "microbench: %s: %s\n", file, strerror(errno));
		exit(2);
	}
	*paths = realloc(*paths, alloc * sizeof(char *));
	while ((len = getline(&line, &cap, f)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (n == alloc) {
			alloc *= 2;
			*paths = realloc(*paths, alloc * sizeof(char *));
		}
		(*paths)[n++] = strdup(line);
	}
	free(line);
	fclose(f);
	return n;
}

/* One operation on one path: 0, or -errno. */
static int do_op(enum op op, const char *path, mode_t mode, uid_t uid,
		 gid_t gid, char *buf)
{
	struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	struct stat st;
	ssize_t r;
	int fd, ret = 0;

	switch (op) {
	case OP_APPEND:
	case OP_OPENAPPEND:
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (op == OP_APPEND && write(fd, "x", 1) != 1)
			ret = -errno;
		if (close(fd) < 0 && !ret)
			ret = -errno;
		return ret;
	case OP_TRUNC:
	case OP_OPEN:
		fd = open(path, (op == OP_TRUNC ? O_WRONLY | O_TRUNC : O_RDONLY) |
					O_CLOEXEC);
		if (fd < 0)
			return -errno;
		return close(fd) < 0 ? -errno : 0;
	case OP_READ:
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		while ((r = read(fd, buf, READ_CHUNK)) > 0)
			;
		if (r < 0)
			ret = -errno;
		close(fd);
		return ret;
	case OP_CHMOD:
		return chmod(path, mode) < 0 ? -errno : 0;
	case OP_CHOWN:
		return lchown(path, uid, gid) < 0 ? -errno : 0;
	case OP_UTIMES:
		return utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0 ?
			       -errno : 0;
	case OP_LSTAT:
		return lstat(path, &st) < 0 ? -errno : 0;
	}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	const char *dir = ".", *sync_dirs[MAX_SYNC];
	char **paths = NULL, *buf = NULL;
	size_t n = 0, ok = 0, enoent = 0, err = 0, i;
	int nsync = 0, c, first_errno = 0;
	unsigned op, mode = 0, uid = 0, gid = 0;
	double t0, ops_us, sync_us = 0, *lat;

	while ((c = getopt(argc, argv, "+C:s:l:h")) != -1) {
		switch (c) {
		case 'C':
			dir = optarg;
			break;
		case 's':
			if (nsync == MAX_SYNC)
				usage();
			sync_dirs[nsync++] = optarg;
			break;
		case 'l':
			n = read_list(optarg, &paths, n);
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	for (op = 0; op < sizeof(op_names) / sizeof(op_names[0]); op++)
		if (!strcmp(argv[optind], op_names[op]))
			break;
	if (op == sizeof(op_names) / sizeof(op_names[0]))
		usage();
	optind++;
	if (op == OP_CHMOD || op == OP_CHOWN) {
		if (optind >= argc)
			usage();
		if (op == OP_CHMOD && sscanf(argv[optind], "%o", &mode) != 1)
			usage();
		if (op == OP_CHOWN &&
		    sscanf(argv[optind], "%u:%u", &uid, &gid) != 2)
			usage();
		optind++;
	}
	paths = realloc(paths, (n + argc) * sizeof(char *));
	for (; optind < argc; optind++)
		paths[n++] = argv[optind];
	if (n == 0)
		usage();
	/* Sync dirs are opened relative to the caller's cwd, not DIR. */
	int sync_fds[MAX_SYNC];
	for (c = 0; c < nsync; c++) {
		sync_fds[c] = open(sync_dirs[c], O_RDONLY | O_DIRECTORY |
						      O_CLOEXEC);
		if (sync_fds[c] < 0) {
			fprintf(stderr, "microbench: %s: %s\n", sync_dirs[c],
				strerror(errno));
			return 2;
		}
	}
	if (chdir(dir) < 0) {
		fprintf(stderr, "microbench: %s: %s\n", dir, strerror(errno));
		return 2;
	}
	lat = calloc(n, sizeof(double));
	if (op == OP_READ)
		buf = malloc(READ_CHUNK);
	if (!lat || (op == OP_READ && !buf))
		return 2;

	t0 = now_us();
	for (i = 0; i < n; i++) {
		double a = now_us();
		int r = do_op(op, paths[i], mode, uid, gid, buf);

		lat[i] = now_us() - a;
		if (r == 0) {
			ok++;
		} else if (r == -ENOENT && op == OP_LSTAT) {
			enoent++;
		} else {
			err++;
			if (!first_errno) {
				first_errno = -r;
				fprintf(stderr, "microbench: %s %s: %s\n",
					op_names[op], paths[i], strerror(-r));
			}
		}
	}
	ops_us = now_us() - t0;
	if (nsync) {
		double a = now_us();

		for (c = 0; c < nsync; c++) {
			if (syncfs(sync_fds[c]) < 0) {
				fprintf(stderr, "microbench: syncfs %s: %s\n",
					sync_dirs[c], strerror(errno));
				err++;
			}
			close(sync_fds[c]);
		}
		sync_us = now_us() - a;
	}
	qsort(lat, n, sizeof(double), cmp_double);
	printf("op=%s n=%zu ok=%zu enoent=%zu err=%zu ops_us=%.1f "
	       "per_op_us=%.2f p50_us=%.2f p99_us=%.2f max_us=%.1f "
	       "sync_us=%.1f total_us=%.1f\n",
	       op_names[op], n, ok, enoent, err, ops_us, ops_us / n,
	       lat[n / 2], lat[(size_t)(n * 0.99)], lat[n - 1], sync_us,
	       ops_us + sync_us);
	free(lat);
	free(buf);
	return err ? 1 : 0;
}
