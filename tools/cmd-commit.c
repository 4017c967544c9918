/* cmd-commit.c: plyctl commit — the upper layer's changes as a new layer:
 * a layer directory with markers in a chosen format, or an OCI layer tar
 * (".wh.NAME" whiteouts, ".wh..wh..opq" opaque directories). OCI has no
 * redirect: a redirected directory is written whole, marked opaque, and
 * its old path whited out; a metacopy file takes its data from below. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "plyctl.h"
#include "progress.h"

enum out_format { OUT_DIR, OUT_TAR, OUT_TGZ };

static void commit_usage(FILE *out)
{
	fputs("usage: plyctl commit -o lowerdir=TOP:...:BOTTOM,upperdir=U[,workdir=W]\n"
	      "                     [--format=dir|tar|tar.gz] [--whiteout=chardev|xattr|file] OUT\n"
	      "       plyctl commit --squash -o lowerdir=...[,upperdir=U[,workdir=W]]\n"
	      "                     [--format=dir|tar|tar.gz] OUT\n"
	      "       plyctl commit [--squash] [OPTIONS] MNT OUT\n"
	      "Writes what the upper layer changes as a new layer OUT, to be stacked\n"
	      "on the same lower layers; with --squash, the whole merged view of the\n"
	      "stack (every layer flattened) as one layer that needs none below it:\n"
	      "  dir     a layer directory (OUT new or empty); whiteouts and opaque\n"
	      "          markers in the --whiteout format (default: chardev as root,\n"
	      "          else xattr under user.)\n"
	      "  tar     an OCI layer tar (OUT a file, or - for standard output)\n"
	      "  tar.gz  the same, gzip'ed\n"
	      "The format defaults to what OUT's name says (.tar, .tar.gz, .tgz),\n"
	      "else dir. The same stack always gives the same bytes.\n"
	      "MNT, the mountpoint of a running plyfs, stands for the stack it\n"
	      "serves, read beside the mount: changes in flight may or may not be\n"
	      "included (stop the writers for a consistent layer).\n"
	      "Exit status: 0 done, 1 error, 2 usage error.\n",
	      out);
}

struct link_rec {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct committer {
	const struct ply_stack *stack;
	enum out_format format;
	struct ply_err *err;
	/* tar */
	struct plyctl_tar *tar;
	/* dir */
	int outfd;
	struct ply_stack markers; /* wh_format and xattr_ns only */
	struct link_rec *links;
	size_t nlinks;
	struct dir_fix {
		char *path;
		struct stat st;
	} *dirs;
	size_t ndirs;
};

/* Opens the parent directory of rel (no leading '/') inside outfd, one
 * component at a time, following nothing; *ret_name points at the last
 * component of rel. */
static int open_parent(int outfd, const char *rel, const char **ret_name)
{
	const char *p = rel, *slash;
	char comp[NAME_MAX + 1];
	int fd = openat(outfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);

	while (fd >= 0 && (slash = strchr(p, '/'))) {
		int next;

		if ((size_t)(slash - p) > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = '\0';
		next = openat(fd, comp,
			      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return -errno;
		fd = next;
		p = slash + 1;
	}
	if (fd < 0)
		return -errno;
	*ret_name = p;
	return fd;
}

static int copy_xattrs(int from, int to)
{
	struct plyctl_xattr *xv;
	char path[64];
	size_t nx;
	int r = plyctl_xattrs_read(from, &xv, &nx);

	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", to);
	for (size_t i = 0; i < nx && r >= 0; i++)
		if (setxattr(path, xv[i].name, xv[i].value, xv[i].size, 0) < 0 &&
		    errno != EPERM && errno != ENOTSUP)
			r = -errno;
	plyctl_xattrs_free(xv, nx);
	return r;
}

/* Copies the content of data (O_PATH), holes kept. */
static int copy_data(int data, int out)
{
	char buf[65536];
	struct stat st;
	off_t pos = 0;
	int in = plyctl_reopen_read(data), r = 0;

	if (in < 0)
		return in;
	if (fstat(in, &st) < 0) {
		r = -errno;
		goto out;
	}
	while (pos < st.st_size && r >= 0) {
		off_t d = lseek(in, pos, SEEK_DATA), h;

		if (d < 0)
			break; /* a hole to the end */
		h = lseek(in, d, SEEK_HOLE);
		if (h < 0)
			h = st.st_size;
		for (pos = d; pos < h && r >= 0;) {
			size_t want = (size_t)(h - pos) < sizeof(buf) ?
					      (size_t)(h - pos) :
					      sizeof(buf);
			ssize_t n = pread(in, buf, want, pos);

			if (n <= 0) {
				r = n < 0 ? -errno : -EIO;
				break;
			}
			if (pwrite(out, buf, (size_t)n, pos) != n)
				r = -errno;
			pos += n;
		}
	}
	if (r >= 0 && ftruncate(out, st.st_size) < 0)
		r = -errno;
out:
	close(in);
	return r;
}

static const char *link_first(struct committer *c, const struct stat *st,
			      const char *rel)
{
	struct link_rec *grown;

	for (size_t i = 0; i < c->nlinks; i++)
		if (c->links[i].dev == st->st_dev &&
		    c->links[i].ino == st->st_ino)
			return c->links[i].path;
	grown = realloc(c->links, (c->nlinks + 1) * sizeof(*grown));
	if (grown) {
		c->links = grown;
		grown[c->nlinks].dev = st->st_dev;
		grown[c->nlinks].ino = st->st_ino;
		grown[c->nlinks].path = strdup(rel);
		if (grown[c->nlinks].path)
			c->nlinks++;
	}
	return NULL;
}

/* Owner, xattrs, mode, times of a new object name in pfd, in that order
 * (a chown clears set-id bits). Directories get mode and times at the
 * end, once their content is written. */
static int set_meta(const struct ply_diff_entry *e, const struct stat *st,
		    int pfd, const char *name)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	int fd, r;

	if (fchownat(pfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) <
		    0 &&
	    errno != EPERM)
		return -errno;
	fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = copy_xattrs(e->now->parts[0].fd, fd);
	close(fd);
	if (r < 0 || S_ISDIR(st->st_mode))
		return r;
	if (!S_ISLNK(st->st_mode) &&
	    fchmodat(pfd, name, st->st_mode & 07777, 0) < 0)
		return -errno;
	if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static int dir_object(struct committer *c, const struct ply_diff_entry *e,
		      const char *rel, int pfd, const char *name)
{
	const struct ply_lookup *lk = e->now;
	char target[PATH_MAX];
	const char *first;
	struct stat st;
	int fd, r = 0;

	if (fstat(lk->parts[0].fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 &&
	    (first = link_first(c, &st, rel))) {
		int ffd;
		const char *fname;

		ffd = open_parent(c->outfd, first, &fname);
		if (ffd < 0)
			return ffd;
		r = linkat(ffd, fname, pfd, name, 0) < 0 ? -errno : 0;
		close(ffd);
		return r;
	}
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR: {
		struct dir_fix *grown;

		if (mkdirat(pfd, name, 0700) < 0)
			return -errno;
		grown = realloc(c->dirs, (c->ndirs + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		c->dirs = grown;
		grown[c->ndirs].path = strdup(rel);
		grown[c->ndirs].st = st;
		if (!grown[c->ndirs].path)
			return -ENOMEM;
		c->ndirs++;
		if (e->opaque) {
			fd = openat(pfd, name,
				    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			r = ply_marker_set_opaque(&c->markers, fd);
			close(fd);
		}
		break;
	}
	case S_IFREG:
		fd = openat(pfd, name,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd < 0)
			return -errno;
		r = copy_data(ply_diff_data_part(lk)->fd, fd);
		close(fd);
		break;
	case S_IFLNK:
		r = plyctl_read_link(lk->parts[0].fd, target, sizeof(target));
		if (r >= 0 && symlinkat(target, pfd, name) < 0)
			r = -errno;
		break;
	default:
		if (mknodat(pfd, name, st.st_mode & S_IFMT, st.st_rdev) < 0)
			r = -errno;
		break;
	}
	return r < 0 ? r : set_meta(e, &st, pfd, name);
}

static int dir_change(struct committer *c, const struct ply_diff_entry *e)
{
	const char *rel = e->path + 1, *name;
	int pfd, r;

	if (e->kind == PLY_DIFF_DELETED && e->covered)
		return 0;
	pfd = open_parent(c->outfd, rel, &name);
	if (pfd < 0)
		return pfd;
	if (e->kind == PLY_DIFF_DELETED) {
		r = ply_marker_prepare_parent(&c->markers, pfd);
		if (r >= 0)
			r = ply_marker_make_whiteout(&c->markers, pfd, name);
	} else {
		r = dir_object(c, e, rel, pfd, name);
	}
	close(pfd);
	return r;
}

static int tar_change(struct committer *c, const struct ply_diff_entry *e)
{
	const char *rel = e->path + 1, *slash;
	char marker[PATH_MAX + 16];
	struct stat st;
	int r;

	if (e->kind == PLY_DIFF_DELETED) {
		if (e->covered)
			return 0;
		slash = strrchr(rel, '/');
		snprintf(marker, sizeof(marker), "%.*s%s%s",
			 slash ? (int)(slash - rel + 1) : 0, rel, PLY_WH_PREFIX,
			 slash ? slash + 1 : rel);
		return plyctl_tar_marker(c->tar, marker, c->err);
	}
	if (fstat(e->now->parts[0].fd, &st) < 0)
		return ply_err_set(c->err, -errno, "%s: %s", e->path,
				   strerror(errno));
	r = plyctl_tar_object(c->tar, rel, &st, e->now->parts[0].fd,
			      ply_diff_data_part(e->now)->fd, c->err);
	if (r >= 0 && e->opaque) {
		snprintf(marker, sizeof(marker), "%s/%s", rel, PLY_WH_OPAQUE);
		r = plyctl_tar_marker(c->tar, marker, c->err);
	}
	return r;
}

static int on_change(const struct ply_diff_entry *e, void *ctx)
{
	struct committer *c = ctx;
	struct stat st;
	int r;

	if (e->now && fstat(ply_diff_data_part(e->now)->fd, &st) == 0)
		plyctl_progress_add(S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0,
				    1);

	if (c->format != OUT_DIR)
		return tar_change(c, e);
	r = dir_change(c, e);
	if (r < 0)
		return ply_err_set(c->err, r, "%s: %s", e->path, strerror(-r));
	return r;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* --squash: every object of the merged view, as an added one, in
 * ply_diff_walk's order (each directory before what it holds, names in
 * bytewise order), so the output is as deterministic as a commit's. */
static int squash_dir(struct committer *c, const struct ply_lookup *dir,
		      char *path, size_t len)
{
	struct ply_dir listing;
	const char **names;
	size_t n = 0;
	int r;

	r = ply_dir_read(c->stack, dir->parts, dir->nparts, 0, 0, &listing);
	if (r < 0)
		return ply_err_set(c->err, r, "%s: listing: %s",
				   len ? path : "/", strerror(-r));
	names = calloc(listing.count, sizeof(*names));
	if (!names) {
		ply_dir_free(&listing);
		return ply_err_set(c->err, -ENOMEM, "out of memory");
	}
	for (size_t i = 2; i < listing.count; i++)
		names[n++] = listing.entries[i].name;
	if (n) /* qsort wants an array, even an empty one */
		qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n && r >= 0; i++) {
		size_t nlen = strlen(names[i]);
		struct ply_diff_entry e = { .path = path,
					    .kind = PLY_DIFF_ADDED,
					    .in_upper = true };
		struct ply_lookup lk;

		if (len + nlen + 2 > PATH_MAX) {
			r = ply_err_set(c->err, -ENAMETOOLONG,
					"%s/%s: path too long", path, names[i]);
			break;
		}
		path[len] = '/';
		memcpy(path + len + 1, names[i], nlen + 1);
		r = ply_lookup_name(c->stack, dir->parts, dir->nparts,
				    names[i], &lk);
		if (r == -ENOENT) {
			r = 0; /* gone meanwhile */
			continue;
		}
		if (r < 0) {
			r = ply_err_set(c->err, r, "%s: %s", path,
					strerror(-r));
			break;
		}
		e.now = &lk;
		r = on_change(&e, c);
		if (r >= 0 && S_ISDIR(lk.st.st_mode))
			r = squash_dir(c, &lk, path, len + 1 + nlen);
		ply_lookup_release(&lk);
	}
	path[len] = '\0';
	free(names);
	ply_dir_free(&listing);
	return r;
}

static int squash_walk(struct committer *c)
{
	struct ply_lookup root;
	char *path = malloc(PATH_MAX);
	int r;

	if (!path)
		return ply_err_set(c->err, -ENOMEM, "out of memory");
	path[0] = '\0';
	r = ply_lookup_root(c->stack, &root);
	if (r < 0) {
		free(path);
		return ply_err_set(c->err, r, "the layer roots: %s",
				   strerror(-r));
	}
	r = squash_dir(c, &root, path, 0);
	ply_lookup_release(&root);
	free(path);
	return r;
}

static int walk(struct committer *c, bool squash)
{
	if (squash)
		return squash_walk(c);
	return ply_diff_walk(c->stack, on_change, c, c->err);
}

/* Modes and times of the directories written, deepest first. */
static int fix_dirs(struct committer *c)
{
	int r = 0;

	for (size_t i = c->ndirs; i-- > 0 && r >= 0;) {
		const struct stat *st = &c->dirs[i].st;
		struct timespec ts[2] = { st->st_atim, st->st_mtim };

		if (fchmodat(c->outfd, c->dirs[i].path, st->st_mode & 07777,
			     0) < 0 ||
		    utimensat(c->outfd, c->dirs[i].path, ts,
			      AT_SYMLINK_NOFOLLOW) < 0)
			r = ply_err_set(c->err, -errno, "/%s: %s",
					c->dirs[i].path, strerror(errno));
	}
	return r;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* Opens OUT as the root of the new layer directory: created, or empty. */
static int open_out_dir(const char *out, struct ply_err *err)
{
	int fd;

	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return ply_err_set(err, -errno, "%s: %s", out, strerror(errno));
	fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ply_err_set(err, -errno, "%s: %s", out, strerror(errno));
	{
		int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
		struct dirent *de;
		bool empty = true;

		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				empty = false;
		if (d)
			closedir(d);
		if (!empty) {
			close(fd);
			return ply_err_set(err, -ENOTEMPTY,
					   "%s: not empty: a new layer needs a new or empty directory",
					   out);
		}
	}
	return fd;
}

int plyctl_commit(int argc, char **argv)
{
	const char *optstr = NULL, *out = NULL, *format = NULL, *wh = NULL;
	const char *args[2] = { NULL, NULL };
	char *opts;
	int nargs = 0;
	struct ply_err err = { "" };
	struct committer c = { .outfd = -1, .err = &err };
	struct ply_stack stack;
	bool squash = false;
	int r;

	for (int i = 1; i < argc; i++) {
		if (plyctl_is_help(argv[i])) {
			commit_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--squash")) {
			squash = true;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			optstr = argv[++i];
		} else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
			optstr = argv[i] + 2;
		} else if (!strncmp(argv[i], "--format=", 9)) {
			format = argv[i] + 9;
		} else if (!strncmp(argv[i], "--whiteout=", 11)) {
			wh = argv[i] + 11;
		} else if (nargs < 2 && (argv[i][0] != '-' || !argv[i][1])) {
			args[nargs++] = argv[i];
		} else {
			fprintf(stderr, "plyctl commit: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	/* with -o, OUT alone; else MNT OUT */
	if (nargs > (optstr ? 1 : 2)) {
		fprintf(stderr, "plyctl commit: unexpected argument '%s'\n",
			args[nargs - 1]);
		return PLYCTL_EXIT_USAGE;
	}
	out = nargs == (optstr ? 1 : 2) ? args[nargs - 1] : NULL;
	if (!optstr && !nargs)
		return plyctl_stack_options("commit", NULL, NULL, &opts, NULL);
	if (!out) {
		fprintf(stderr, "plyctl commit: %s (see plyctl commit --help)\n",
			optstr ? "no OUT given" :
				 "give the stack (-o OPTS, or MNT) and OUT");
		return PLYCTL_EXIT_USAGE;
	}
	if (!format)
		c.format = ends_with(out, ".tar") || !strcmp(out, "-") ? OUT_TAR :
			   ends_with(out, ".tar.gz") || ends_with(out, ".tgz") ?
								     OUT_TGZ :
								     OUT_DIR;
	else if (!strcmp(format, "dir"))
		c.format = OUT_DIR;
	else if (!strcmp(format, "tar"))
		c.format = OUT_TAR;
	else if (!strcmp(format, "tar.gz") || !strcmp(format, "tgz"))
		c.format = OUT_TGZ;
	else {
		fprintf(stderr, "plyctl commit: --format=%s: not dir, tar or tar.gz\n",
			format);
		return PLYCTL_EXIT_USAGE;
	}
	if (plyctl_parse_whiteout(wh, &c.markers.wh_format,
				  &c.markers.xattr_ns) < 0) {
		fprintf(stderr, "plyctl commit: --whiteout=%s: not chardev, xattr or file\n",
			wh);
		return PLYCTL_EXIT_USAGE;
	}
	if (wh && c.format != OUT_DIR) {
		fprintf(stderr, "plyctl commit: --whiteout is for --format=dir (a tar has OCI whiteouts)\n");
		return PLYCTL_EXIT_USAGE;
	}
	if (c.format != OUT_DIR && !strcmp(out, "-") && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "plyctl commit: refusing to write a tar to a terminal\n");
		return PLYCTL_EXIT_USAGE;
	}
	r = plyctl_stack_options("commit", optstr, optstr ? NULL : args[0],
				 &opts, NULL);
	if (r)
		return r;
	r = plyctl_open_stack(opts, &stack, &err);
	free(opts);
	if (r < 0) {
		fprintf(stderr, "plyctl commit: %s\n", err.msg);
		return PLYCTL_EXIT_USAGE;
	}
	if (!stack.has_upper && !squash) {
		fprintf(stderr, "plyctl commit: the stack has no upperdir: nothing to commit (--squash flattens a stack of lower layers)\n");
		ply_stack_close(&stack);
		return PLYCTL_EXIT_USAGE;
	}
	c.stack = &stack;
	plyctl_progress_begin(squash ? "squash" : "commit", 0);
	if (c.format == OUT_DIR) {
		r = c.outfd = open_out_dir(out, &err);
		if (r >= 0)
			r = walk(&c, squash);
		if (r >= 0)
			r = fix_dirs(&c);
	} else {
		r = plyctl_tar_open(out, c.format == OUT_TGZ, &c.tar, &err);
		if (r >= 0) {
			r = walk(&c, squash);
			if (r < 0)
				plyctl_tar_close(c.tar, NULL);
			else
				r = plyctl_tar_close(c.tar, &err);
			if (r < 0 && strcmp(out, "-"))
				unlink(out);
		}
	}
	plyctl_progress_end();
	if (c.outfd >= 0)
		close(c.outfd);
	for (size_t i = 0; i < c.nlinks; i++)
		free(c.links[i].path);
	free(c.links);
	for (size_t i = 0; i < c.ndirs; i++)
		free(c.dirs[i].path);
	free(c.dirs);
	ply_stack_close(&stack);
	if (r < 0) {
		fprintf(stderr, "plyctl commit: %s\n",
			err.msg[0] ? err.msg : strerror(-r));
		return 1;
	}
	return 0;
}
