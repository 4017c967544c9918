/* import.c: the core of plyctl import — the entries of an opened OCI layer
 * archive unpacked into a layer directory, its ".wh." whiteouts and
 * ".wh..wh..opq" markers turned into the chosen format. The archive is
 * distrusted: every path is made with *at() calls from the directory's fd,
 * one component at a time, following nothing, and an entry that would
 * reach outside (an absolute name, "..", a symlink on the way, a hard link
 * to elsewhere) is refused with a message while the others go on.
 * tests/fuzz/fuzz-import.c drives it with arbitrary archives. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "import.h"
#include "progress.h"

struct dir_fix {
	char *path;
	mode_t mode;
	struct timespec mtime;
};

struct importer {
	int rootfd; /* DIR, O_PATH */
	struct ply_stack markers; /* wh_format and xattr_ns only */
	bool root;
	bool quiet;
	unsigned refused, skipped;
	char cut[PATH_MAX]; /* the entry the archive broke off in, or "" */
	const char *path; /* the entry's cleaned path, for messages */
	struct dir_fix *dirs;
	size_t ndirs;
};

/* One line on stderr about entry raw, unless quiet: "plyctl import:
 * WHAT'raw': " and the message. */
static void say(const struct importer *im, const char *what, const char *raw,
		const char *fmt, va_list ap)
{
	if (im->quiet)
		return;
	fprintf(stderr, "plyctl import: %s'%s': ", what, raw);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void refuse(struct importer *im, const char *raw, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct importer *im, const char *raw, const char *fmt, ...)
{
	va_list ap;

	im->refused++;
	va_start(ap, fmt);
	say(im, "refused ", raw, fmt, ap);
	va_end(ap);
}

static void warn(struct importer *im, const char *raw, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warn(struct importer *im, const char *raw, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(im, "warning: ", raw, fmt, ap);
	va_end(ap);
}

/* Cleans an archive path into out ("a/b", "" for the root): "." and empty
 * components dropped; NULL on success, else why it is refused. */
static const char *clean_path(const char *in, char *out, size_t size)
{
	size_t len = 0;

	if (!in || !*in)
		return "empty name";
	if (in[0] == '/')
		return "absolute path";
	for (const char *p = in; *p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 2 && !strncmp(p, "..", 2))
			return "'..' component";
		if (n > NAME_MAX)
			return "a name longer than NAME_MAX";
		if (n && !(n == 1 && p[0] == '.')) {
			if (len + n + 2 > size)
				return "path too long";
			if (len)
				out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	out[len] = '\0';
	return NULL;
}

/* Opens the parent of rel inside rootfd, one component at a time, never
 * following a symlink nor entering a marker (".wh." name); missing
 * directories are made when create is set. On failure *why says what
 * stood in the way. */
static int walk_parent(struct importer *im, const char *rel, bool create,
		       const char **ret_name, char *why, size_t whysize)
{
	const char *p = rel, *slash;
	char comp[NAME_MAX + 1];
	int fd = openat(im->rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);

	while (fd >= 0 && (slash = strchr(p, '/'))) {
		struct stat st;
		int next;

		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = '\0';
		/* a ".wh." name is a marker, never a directory to put things
		 * in: "d/.wh.x/y" would make a layer with content inside a
		 * whiteout (or inside ".wh..wh..opq") */
		if (ply_marker_name_reserved(comp)) {
			snprintf(why, whysize,
				 "its path crosses the marker %.*s",
				 (int)(slash - rel), rel);
			close(fd);
			return -EINVAL;
		}
		next = openat(fd, comp,
			      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && create &&
		    mkdirat(fd, comp, 0755) == 0)
			next = openat(fd, comp, O_PATH | O_DIRECTORY |
							O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			int e = errno;

			if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				snprintf(why, whysize,
					 "its path crosses the symlink %.*s",
					 (int)(slash - rel), rel);
			else if (e == ENOENT)
				snprintf(why, whysize, "%.*s does not exist",
					 (int)(slash - rel), rel);
			else if (e == ENOTDIR || e == ELOOP)
				snprintf(why, whysize,
					 "%.*s is not a directory",
					 (int)(slash - rel), rel);
			else
				snprintf(why, whysize, "%.*s: %s",
					 (int)(slash - rel), rel, strerror(e));
			close(fd);
			return -e;
		}
		close(fd);
		fd = next;
		p = slash + 1;
	}
	if (fd < 0) {
		snprintf(why, whysize, "%s", strerror(errno));
		return -errno;
	}
	*ret_name = p;
	return fd;
}

/* Clears the way for a new object name in pfd: removes what is there (an
 * empty directory at most). 1 when a directory stays (want_dir). */
static int clear_name(int pfd, const char *name, bool want_dir)
{
	struct stat st;

	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		if (want_dir)
			return 1;
		return unlinkat(pfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
	}
	return unlinkat(pfd, name, 0) < 0 ? -errno : 0;
}

/* Copies the entry's data into fd. -EIO when the archive could not be
 * read (archive_error_string(a) says why), with *ret_fatal set when it
 * cannot go on past this entry (cut short, a broken stream); else -errno
 * of a write. */
static int write_data(struct archive *a, int fd, la_int64_t size,
		      bool *ret_fatal)
{
	const void *block;
	size_t len;
	la_int64_t off;
	int r;

	*ret_fatal = false;
	while ((r = archive_read_data_block(a, &block, &len, &off)) ==
	       ARCHIVE_OK) {
		const char *p = block;

		while (len) {
			ssize_t n = pwrite(fd, p, len, off);

			if (n < 0)
				return -errno;
			p += n;
			len -= (size_t)n;
			off += n;
		}
	}
	if (r != ARCHIVE_EOF) {
		*ret_fatal = r == ARCHIVE_FATAL;
		return -EIO;
	}
	return ftruncate(fd, size) < 0 ? -errno : 0;
}

/* Owner, xattrs, mode, times of the new object name in pfd. */
static void set_meta(struct importer *im, struct archive_entry *e,
		     const char *raw, int pfd, const char *name, mode_t type)
{
	struct timespec ts[2];
	const char *xname;
	const void *value;
	size_t size;
	char path[64];
	int fd;

	if (im->root && fchownat(pfd, name, archive_entry_uid(e),
				 archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
		warn(im, raw, "chown: %s", strerror(errno));
	fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	archive_entry_xattr_reset(e);
	while (fd >= 0 &&
	       archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
		if (ply_xattr_is_private(xname)) {
			warn(im, raw, "private xattr %s dropped", xname);
			continue;
		}
		if (setxattr(path, xname, value, size, 0) < 0)
			warn(im, raw, "xattr %s: %s", xname, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	if (type == S_IFDIR) {
		struct dir_fix *grown =
			realloc(im->dirs, (im->ndirs + 1) * sizeof(*grown));

		if (grown) {
			im->dirs = grown;
			grown[im->ndirs].path = strdup(im->path);
			grown[im->ndirs].mode = archive_entry_perm(e);
			grown[im->ndirs].mtime.tv_sec = archive_entry_mtime(e);
			grown[im->ndirs].mtime.tv_nsec =
				archive_entry_mtime_nsec(e);
			if (grown[im->ndirs].path)
				im->ndirs++;
		}
		return;
	}
	if (type != S_IFLNK &&
	    fchmodat(pfd, name, archive_entry_perm(e), 0) < 0)
		warn(im, raw, "chmod: %s", strerror(errno));
	ts[1].tv_sec = archive_entry_mtime(e);
	ts[1].tv_nsec = archive_entry_mtime_nsec(e);
	ts[0] = ts[1];
	if (archive_entry_atime_is_set(e)) {
		ts[0].tv_sec = archive_entry_atime(e);
		ts[0].tv_nsec = archive_entry_atime_nsec(e);
	}
	if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		warn(im, raw, "times: %s", strerror(errno));
}

/* A marker entry: ".wh..wh..opq" makes its directory opaque, ".wh.NAME"
 * whites NAME out; other ".wh..wh." names (aufs metadata) are dropped. */
static void take_marker(struct importer *im, const char *raw, int pfd,
			const char *name)
{
	const char *target = ply_marker_whiteout_target(name);
	struct stat st;
	int r;

	if (!strcmp(name, PLY_WH_OPAQUE)) {
		r = ply_marker_set_opaque(&im->markers, pfd);
		if (r < 0)
			refuse(im, raw, "cannot mark the directory opaque: %s",
			       strerror(-r));
		return;
	}
	if (!target)
		return;
	if (fstatat(pfd, target, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		refuse(im, raw, "a whiteout of %s, which this layer holds",
		       target);
		return;
	}
	r = ply_marker_prepare_parent(&im->markers, pfd);
	if (r >= 0)
		r = ply_marker_make_whiteout(&im->markers, pfd, target);
	if (r == -EEXIST && im->markers.wh_format == PLY_WH_FILE)
		r = 0;
	if (r < 0)
		refuse(im, raw, "cannot make the whiteout: %s", strerror(-r));
}

static void take_hardlink(struct importer *im, const char *raw,
			  const char *target_raw, int pfd, const char *name)
{
	char target[PATH_MAX], why[PATH_MAX + 64];
	const char *bad = clean_path(target_raw, target, sizeof(target));
	const char *tname;
	struct stat st;
	int tfd, r;

	if (!bad && !*target)
		bad = "the layer root";
	if (bad) {
		refuse(im, raw, "hard link to '%s': %s", target_raw, bad);
		return;
	}
	tfd = walk_parent(im, target, false, &tname, why, sizeof(why));
	if (tfd < 0) {
		refuse(im, raw, "hard link to '%s': %s", target_raw, why);
		return;
	}
	if (fstatat(tfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		refuse(im, raw, "hard link to '%s': no such entry before it",
		       target_raw);
	} else if (S_ISDIR(st.st_mode)) {
		refuse(im, raw, "hard link to the directory '%s'", target_raw);
	} else if (tfd == pfd && !strcmp(tname, name)) {
		/* a link to itself: already there */
	} else if ((r = clear_name(pfd, name, false)) < 0 ||
		   linkat(tfd, tname, pfd, name, 0) < 0) {
		refuse(im, raw, "hard link to '%s': %s", target_raw,
		       strerror(r < 0 ? -r : errno));
	}
	close(tfd);
}

static void take_entry(struct importer *im, struct archive *a,
		       struct archive_entry *e)
{
	const char *raw = archive_entry_pathname(e);
	char rel[PATH_MAX], why[PATH_MAX + 64];
	const char *bad, *name, *hardlink = archive_entry_hardlink(e);
	mode_t type = archive_entry_filetype(e);
	int pfd, fd, r = 0;

	if (!raw)
		raw = archive_entry_pathname_utf8(e);
	bad = clean_path(raw, rel, sizeof(rel));
	if (bad) {
		refuse(im, raw ? raw : "", "%s", bad);
		return;
	}
	if (!*rel)
		return; /* the layer root itself: DIR keeps its own */
	im->path = rel;
	pfd = walk_parent(im, rel, true, &name, why, sizeof(why));
	if (pfd < 0) {
		refuse(im, raw, "%s", why);
		return;
	}
	if (ply_marker_name_reserved(name)) {
		take_marker(im, raw, pfd, name);
		goto out;
	}
	if (hardlink) {
		take_hardlink(im, raw, hardlink, pfd, name);
		goto out;
	}
	if ((type == AE_IFCHR || type == AE_IFBLK) && !im->root) {
		warn(im, raw, "device node skipped: unprivileged");
		im->skipped++;
		goto out;
	}
	if (type == AE_IFSOCK) {
		warn(im, raw, "socket skipped");
		goto out;
	}
	r = clear_name(pfd, name, type == AE_IFDIR);
	if (r < 0) {
		refuse(im, raw, "cannot replace what is there: %s",
		       r == -ENOTEMPTY ? "a non-empty directory" :
					 strerror(-r));
		goto out;
	}
	switch (type) {
	case AE_IFDIR:
		if (r == 0 && mkdirat(pfd, name, 0700) < 0)
			r = -errno;
		break;
	case AE_IFREG: {
		bool fatal;

		fd = openat(pfd, name,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd < 0) {
			r = -errno;
			break;
		}
		r = write_data(a, fd, archive_entry_size(e), &fatal);
		if (close(fd) < 0 && r >= 0)
			r = -errno;
		if (r < 0) /* no half-written file in the layer */
			unlinkat(pfd, name, 0);
		if (fatal) {
			/* the archive ends here: said once, by the caller */
			snprintf(im->cut, sizeof(im->cut), "%s", raw);
			goto out;
		}
		if (r == -EIO) {
			refuse(im, raw, "%s", archive_error_string(a));
			goto out;
		}
		break;
	}
	case AE_IFLNK:
		if (!archive_entry_symlink(e))
			r = -EINVAL;
		else if (symlinkat(archive_entry_symlink(e), pfd, name) < 0)
			r = -errno;
		break;
	case AE_IFIFO:
	case AE_IFCHR:
	case AE_IFBLK:
		if (mknodat(pfd, name, type | 0600, archive_entry_rdev(e)) < 0)
			r = -errno;
		if (r == -EPERM && type != AE_IFIFO) {
			warn(im, raw, "device node skipped: %s",
			     strerror(EPERM));
			im->skipped++;
			goto out;
		}
		break;
	default:
		refuse(im, raw, "unknown entry type 0%o", (unsigned)type);
		goto out;
	}
	if (r < 0) {
		refuse(im, raw, "%s", strerror(-r));
		goto out;
	}
	set_meta(im, e, raw, pfd, name, type);
out:
	close(pfd);
}

/* Modes and times of the directories, deepest (last made) first. A later
 * entry may have put something else at a directory's path (a symlink to
 * anywhere, a file): only a directory is changed, through an fd opened
 * without following, never by name (fchmodat follows symlinks). */
static void fix_dirs(struct importer *im)
{
	for (size_t i = im->ndirs; i-- > 0;) {
		struct dir_fix *d = &im->dirs[i];
		struct timespec ts[2] = { d->mtime, d->mtime };
		const char *name;
		char why[PATH_MAX + 64], path[64];
		int pfd, fd;

		im->path = d->path;
		pfd = walk_parent(im, d->path, false, &name, why, sizeof(why));
		if (pfd >= 0) {
			fd = openat(pfd, name, O_PATH | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				snprintf(path, sizeof(path), "/proc/self/fd/%d",
					 fd);
				chmod(path, d->mode);
				utimensat(AT_FDCWD, path, ts, 0);
				close(fd);
			}
			close(pfd);
		}
		free(d->path);
	}
	free(im->dirs);
}

int plyctl_import_archive(struct archive *a, int rootfd,
			  const struct plyctl_import *opts,
			  struct plyctl_import_result *res)
{
	struct importer im = {
		.rootfd = rootfd,
		.markers = { .wh_format = opts->wh_format,
			     .xattr_ns = opts->xattr_ns },
		.root = opts->root,
		.quiet = opts->quiet,
	};
	struct archive_entry *e;
	int r, status = 0;

	im.cut[0] = '\0';

	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK ||
	       r == ARCHIVE_WARN) {
		take_entry(&im, a, e);
		plyctl_progress_add(0, 1);
		plyctl_progress_set_bytes(
			(uint64_t)archive_filter_bytes(a, -1));
	}
	if (r != ARCHIVE_EOF)
		status = -EIO;
	fix_dirs(&im);
	res->refused = im.refused;
	res->skipped = im.skipped;
	snprintf(res->cut, sizeof(res->cut), "%s", im.cut);
	return status;
}
