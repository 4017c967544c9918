/* tarout.c: writing the tar archives of export and commit with libarchive:
 * pax, numeric owners only, xattrs kept, hard links as tar links, holes
 * left out (pax sparse entries), and nothing taken from the clock, so the
 * same input gives the same bytes. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plyctl.h"

struct link_rec {
	dev_t dev;
	ino_t ino;
	char *path; /* NULL: empty slot */
};

struct plyctl_tar {
	struct archive *a;
	struct link_rec *links; /* open addressing by (dev, ino) */
	size_t nlinks, cap;
	char *buf;
};

#define BUF_SIZE (256 * 1024)

static int tar_fail(struct plyctl_tar *t, struct ply_err *err,
		    const char *what)
{
	int code = archive_errno(t->a);

	return ply_err_set(err, code > 0 ? -code : -EIO, "%s: %s", what,
			   archive_error_string(t->a) ?
				   archive_error_string(t->a) :
				   "archive error");
}

int plyctl_tar_open(const char *file, bool gzip, struct plyctl_tar **ret,
		    struct ply_err *err)
{
	struct plyctl_tar *t = calloc(1, sizeof(*t));
	int r;

	if (!t || !(t->buf = malloc(BUF_SIZE)) || !(t->a = archive_write_new())) {
		if (t)
			free(t->buf);
		free(t);
		return ply_err_set(err, -ENOMEM, "out of memory");
	}
	r = archive_write_set_format_pax(t->a);
	if (r == ARCHIVE_OK && gzip) {
		r = archive_write_add_filter_gzip(t->a);
		/* reproducible: no file name, no time stamp in the header */
		if (r == ARCHIVE_OK)
			r = archive_write_set_filter_option(t->a, "gzip",
							    "timestamp", NULL);
		if (r == ARCHIVE_WARN)
			r = ARCHIVE_OK;
	}
	if (r == ARCHIVE_OK)
		r = archive_write_open_filename(t->a, strcmp(file, "-") ? file :
									   NULL);
	if (r != ARCHIVE_OK) {
		r = tar_fail(t, err, strcmp(file, "-") ? file : "stdout");
		archive_write_free(t->a);
		free(t->buf);
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

static size_t link_slot(const struct plyctl_tar *t, dev_t dev, ino_t ino)
{
	size_t s = (size_t)((ino * 0x9e3779b97f4a7c15ULL) ^ dev) & (t->cap - 1);

	while (t->links[s].path &&
	       (t->links[s].dev != dev || t->links[s].ino != ino))
		s = (s + 1) & (t->cap - 1);
	return s;
}

/* The path dev/ino was first written under, or NULL after recording path
 * as that. */
static int link_find_or_add(struct plyctl_tar *t, dev_t dev, ino_t ino,
			    const char *path, const char **ret)
{
	size_t s;

	if (2 * (t->nlinks + 1) > t->cap) {
		struct link_rec *old = t->links;
		size_t oldcap = t->cap;

		t->cap = oldcap ? 2 * oldcap : 64;
		t->links = calloc(t->cap, sizeof(*t->links));
		if (!t->links) {
			t->links = old;
			t->cap = oldcap;
			return -ENOMEM;
		}
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].path)
				t->links[link_slot(t, old[i].dev, old[i].ino)] =
					old[i];
		free(old);
	}
	s = link_slot(t, dev, ino);
	if (t->links[s].path) {
		*ret = t->links[s].path;
		return 0;
	}
	t->links[s] = (struct link_rec){ dev, ino, strdup(path) };
	if (!t->links[s].path)
		return -ENOMEM;
	t->nlinks++;
	*ret = NULL;
	return 0;
}

/* Adds the data segments of a file with holes to the entry as a sparse
 * map; leaves a file without holes alone. */
static void add_sparse_map(struct archive_entry *e, int fd,
			   const struct stat *st)
{
	off_t pos = 0, data, hole;

	if ((off_t)st->st_blocks * 512 >= st->st_size)
		return;
	while (pos < st->st_size) {
		data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			break; /* ENXIO: a hole up to the end */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = st->st_size;
		archive_entry_sparse_add_entry(e, data, hole - data);
		pos = hole;
	}
	if (!archive_entry_sparse_count(e))
		archive_entry_sparse_add_entry(e, st->st_size, 0);
}

static int write_data(struct plyctl_tar *t, int fd, const struct stat *st,
		      const char *path, struct ply_err *err)
{
	off_t off = 0;

	while (off < st->st_size) {
		size_t want = (size_t)(st->st_size - off) < BUF_SIZE ?
				      (size_t)(st->st_size - off) :
				      BUF_SIZE;
		ssize_t n = pread(fd, t->buf, want, off);

		if (n < 0)
			return ply_err_set(err, -errno, "%s: read: %s", path,
					   strerror(errno));
		if (n == 0) {
			/* shrunk meanwhile: pad, the header is written */
			memset(t->buf, 0, want);
			n = (ssize_t)want;
		}
		if (archive_write_data(t->a, t->buf, (size_t)n) < 0)
			return tar_fail(t, err, path);
		off += n;
	}
	return 0;
}

int plyctl_tar_object(struct plyctl_tar *t, const char *path,
		      const struct stat *st, int meta_fd, int data_fd,
		      struct ply_err *err)
{
	struct archive_entry *e;
	struct plyctl_xattr *xv = NULL;
	size_t nx = 0;
	const char *first = NULL;
	char target[PATH_MAX];
	int fd = -1, r;

	if (S_ISSOCK(st->st_mode))
		return 0;
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		r = link_find_or_add(t, st->st_dev, st->st_ino, path, &first);
		if (r < 0)
			return ply_err_set(err, r, "out of memory");
	}
	e = archive_entry_new();
	if (!e)
		return ply_err_set(err, -ENOMEM, "out of memory");
	archive_entry_set_pathname(e, path);
	archive_entry_set_uid(e, st->st_uid);
	archive_entry_set_gid(e, st->st_gid);
	archive_entry_set_mode(e, st->st_mode);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (first) {
		/* a hard link: the name only */
		archive_entry_set_hardlink(e, first);
		archive_entry_set_size(e, 0);
		goto write;
	}
	r = plyctl_xattrs_read(meta_fd, &xv, &nx);
	if (r < 0) {
		r = ply_err_set(err, r, "%s: xattrs: %s", path, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < nx; i++)
		archive_entry_xattr_add_entry(e, xv[i].name, xv[i].value,
					      xv[i].size);
	if (S_ISLNK(st->st_mode)) {
		r = plyctl_read_link(meta_fd, target, sizeof(target));
		if (r < 0) {
			r = ply_err_set(err, r, "%s: readlink: %s", path,
					strerror(-r));
			goto out;
		}
		archive_entry_set_symlink(e, target);
	} else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		archive_entry_set_rdev(e, st->st_rdev);
	} else if (S_ISREG(st->st_mode)) {
		struct stat dst;

		fd = plyctl_reopen_read(data_fd);
		if (fd < 0) {
			r = ply_err_set(err, fd, "%s: open: %s", path,
					strerror(-fd));
			goto out;
		}
		/* the size is the data's (a metacopy's data is below) */
		if (fstat(fd, &dst) < 0) {
			r = ply_err_set(err, -errno, "%s: %s", path,
					strerror(errno));
			goto out;
		}
		archive_entry_set_size(e, dst.st_size);
		add_sparse_map(e, fd, &dst);
	}
write:
	if (archive_write_header(t->a, e) < ARCHIVE_WARN) {
		r = tar_fail(t, err, path);
		goto out;
	}
	r = 0;
	if (fd >= 0) {
		struct stat dst;

		r = fstat(fd, &dst) < 0 ? -errno : 0;
		if (r >= 0)
			r = write_data(t, fd, &dst, path, err);
	}
out:
	if (fd >= 0)
		close(fd);
	plyctl_xattrs_free(xv, nx);
	archive_entry_free(e);
	return r;
}

int plyctl_tar_marker(struct plyctl_tar *t, const char *path,
		      struct ply_err *err)
{
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	if (!e)
		return ply_err_set(err, -ENOMEM, "out of memory");
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0);
	archive_entry_set_size(e, 0);
	archive_entry_set_mtime(e, 0, 0);
	if (archive_write_header(t->a, e) < ARCHIVE_WARN)
		r = tar_fail(t, err, path);
	archive_entry_free(e);
	return r;
}

int plyctl_tar_close(struct plyctl_tar *t, struct ply_err *err)
{
	int r = 0;

	if (archive_write_close(t->a) != ARCHIVE_OK)
		r = tar_fail(t, err, "closing the archive");
	archive_write_free(t->a);
	for (size_t i = 0; i < t->cap; i++)
		free(t->links[i].path);
	free(t->links);
	free(t->buf);
	free(t);
	return r;
}
