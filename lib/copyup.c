/* copyup.c: the atomic copy of one object into the upper layer. The copy is
 * built as a temporary in WORKDIR/work (data, owner, xattrs, mode, markers,
 * times) and only then renamed into place; any failure removes it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

#define COPY_CHUNK (1 << 20)

/* One copy-up in progress: everything lives on the caller's stack, so
 * copy-ups of different objects run at once without shared state. */
struct copyup {
	const struct ply_copyup_req *req;
	mode_t type;   /* S_IFMT bits of the object */
	char temp[64]; /* its temporary name in req->workfd */
	bool created;  /* the temporary exists */
	int wfd;       /* regular file: the temporary, open for writing */
	bool wrote_data; /* data went through the page cache (not a
			  * reflink): to be synced before the rename */
	int pfd;       /* O_PATH of the temporary object */
};

/* ---- the temporary object ------------------------------------------------ */

static int create_file(struct copyup *c)
{
	int fd = ply_sys_openat(c->req->workfd, c->temp,
				O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0600);

	if (fd < 0)
		return fd;
	c->created = true;
	c->wfd = fd;
	/* the O_PATH fd comes from the open file, not from the name */
	c->pfd = ply_sys_reopen(fd, O_PATH);
	return c->pfd < 0 ? c->pfd : 0;
}

static int create_symlink(struct copyup *c)
{
	char *target = malloc(PATH_MAX);
	ssize_t n;
	int r;

	if (!target)
		return -ENOMEM;
	n = ply_sys_readlinkat(c->req->meta_fd, "", target, PATH_MAX);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	if (n >= PATH_MAX) {
		r = -ENAMETOOLONG;
		goto out;
	}
	target[n] = '\0';
	r = ply_sys_symlinkat(target, c->req->workfd, c->temp);
out:
	free(target);
	return r;
}

/* Makes an object of c->type named c->temp in workfd. */
static int create_object(struct copyup *c)
{
	const struct stat *st = c->req->meta_st;
	int r;

	switch (c->type) {
	case S_IFREG:
		return create_file(c);
	case S_IFDIR:
		r = ply_sys_mkdirat(c->req->workfd, c->temp, 0700);
		break;
	case S_IFLNK:
		r = create_symlink(c);
		break;
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		/* devices need privilege: EPERM is the answer without it */
		r = ply_sys_mknodat(c->req->workfd, c->temp, c->type | 0600,
				    st->st_rdev);
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;
	c->created = true;
	c->pfd = ply_sys_open_path(c->req->workfd, c->temp);
	return c->pfd < 0 ? c->pfd : 0;
}

/* Removes the temporary after a failure. */
static void remove_temp(struct copyup *c)
{
	if (!c->created)
		return;
	ply_sys_unlinkat(c->req->workfd, c->temp,
			 c->type == S_IFDIR ? AT_REMOVEDIR : 0);
	c->created = false;
}

/* ---- data ---------------------------------------------------------------- */

/* Opens the data source for reading without touching its atime. */
static int open_source(int fd)
{
	int r = ply_sys_reopen(fd, O_RDONLY | O_NOATIME);

	if (r == -EPERM)
		r = ply_sys_reopen(fd, O_RDONLY);
	return r;
}

/* The errors by which FICLONE and copy_file_range say "not here". */
static bool unsupported(int r)
{
	return r == -EOPNOTSUPP || r == -ENOTTY || r == -EXDEV ||
	       r == -EINVAL || r == -ENOSYS;
}

static int copy_rw(int in, int out, off_t off, off_t len, char **buf)
{
	while (len > 0) {
		size_t want = len > COPY_CHUNK ? COPY_CHUNK : (size_t)len;
		ssize_t n, done;

		if (!*buf) {
			*buf = malloc(COPY_CHUNK);
			if (!*buf)
				return -ENOMEM;
		}
		n = ply_sys_pread(in, *buf, want, off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break; /* the source got shorter */
		for (done = 0; done < n;) {
			ssize_t w = ply_sys_pwrite(out, *buf + done,
						   (size_t)(n - done),
						   off + done);
			if (w < 0)
				return (int)w;
			done += w;
		}
		off += n;
		len -= n;
	}
	return 0;
}

/* Copies [off, off + len) of in to the same offsets of out; *use_rw
 * turns on (for the rest of the file) when copy_file_range cannot. */
static int copy_segment(int in, int out, off_t off, off_t len, bool *use_rw,
			char **buf)
{
	while (len > 0 && !*use_rw) {
		off_t in_off = off, out_off = off;
		size_t want = len > SSIZE_MAX / 2 ? SSIZE_MAX / 2 : (size_t)len;
		ssize_t n = ply_sys_copy_file_range(in, &in_off, out, &out_off,
						    want);

		if (n < 0 && unsupported((int)n)) {
			*use_rw = true;
			break;
		}
		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0; /* the source got shorter */
		off += n;
		len -= n;
	}
	return len > 0 ? copy_rw(in, out, off, len, buf) : 0;
}

/* Copies each data segment of in (SEEK_DATA/SEEK_HOLE), so holes stay
 * holes, then sets the size, so trailing holes do too. */
static int copy_sparse(int in, int out)
{
	bool use_rw = false;
	char *buf = NULL;
	struct stat st;
	off_t off = 0;
	int r;

	r = ply_sys_fstat(in, &st);
	while (r >= 0 && off < st.st_size) {
		off_t data = ply_sys_lseek(in, off, SEEK_DATA), hole;

		if (data == -ENXIO)
			break; /* only a hole is left */
		if (data < 0) {
			r = (int)data;
			break;
		}
		hole = ply_sys_lseek(in, data, SEEK_HOLE);
		if (hole < 0) {
			r = (int)hole;
			break;
		}
		r = copy_segment(in, out, data, hole - data, &use_rw, &buf);
		off = hole;
	}
	free(buf);
	if (r < 0)
		return r;
	return ply_sys_ftruncate(out, st.st_size);
}

static int copy_data(struct copyup *c)
{
	int in = open_source(c->req->data_fd);
	int r;

	if (in < 0)
		return in;
	/* a reflink shares every extent: data and holes at once */
	r = ply_sys_clone(c->wfd, in);
	if (r < 0 && unsupported(r)) {
		c->wrote_data = true;
		r = copy_sparse(in, c->wfd);
	}
	ply_sys_close(in);
	return r;
}

static int fill_file(struct copyup *c)
{
	unsigned flags = c->req->flags;

	if (flags & PLY_COPYUP_METACOPY)
		/* the size only, all of it a hole: the data stays below */
		return ply_sys_ftruncate(c->wfd, c->req->meta_st->st_size);
	if (flags & PLY_COPYUP_EMPTY)
		return 0;
	return copy_data(c);
}

/* ---- metadata ------------------------------------------------------------ */

static int set_owner(struct copyup *c)
{
	const struct stat *st = c->req->meta_st;
	int r = ply_sys_fchownat_fd(c->pfd, st->st_uid, st->st_gid);

	/* rootless: the copy belongs to us, as every file we create */
	if (r == -EPERM && geteuid() != 0)
		return 0;
	return r;
}

static bool is_metacopy_name(const char *name)
{
	return !strcmp(name, "trusted.overlay.metacopy") ||
	       !strcmp(name, "user.overlay.metacopy");
}

/* Which source xattrs to copy: all but the private ones; completing a
 * metacopy (REPLACE) keeps the upper's private ones but the marker. */
static bool want_xattr(const struct copyup *c, const char *name)
{
	if (c->req->flags & PLY_COPYUP_REPLACE)
		return !is_metacopy_name(name);
	return !ply_xattr_is_private(name);
}

/* A refusal of the target to skip: a namespace the filesystem or our
 * privilege does not allow (trusted.* unprivileged, an unsupported
 * security.*). user.* is skipped only where the filesystem has none. */
static bool refused(const char *name, int r)
{
	if (r == -EOPNOTSUPP)
		return true;
	return r == -EPERM && strncmp(name, "user.", 5);
}

/* Reads xattr name of fd into *buf (grown as needed); returns its size. */
static ssize_t get_xattr(int fd, const char *name, char **buf, size_t *size)
{
	for (int tries = 0; tries < 8; tries++) {
		ssize_t n;
		char *nbuf;

		if (*buf) {
			n = ply_sys_fd_getxattr(fd, name, *buf, *size);
			if (n != -ERANGE)
				return n;
		}
		n = ply_sys_fd_getxattr(fd, name, NULL, 0);
		if (n < 0)
			return n;
		nbuf = realloc(*buf, (size_t)n + 1);
		if (!nbuf)
			return -ENOMEM;
		*buf = nbuf;
		*size = (size_t)n + 1;
	}
	return -ERANGE;
}

/* Lists the xattr names of fd into *ret_list (size in *ret_size). */
static int list_xattrs(int fd, char **ret_list, size_t *ret_size)
{
	for (int tries = 0; tries < 8; tries++) {
		ssize_t n = ply_sys_fd_listxattr(fd, NULL, 0), m;
		char *list;

		if (n == -EOPNOTSUPP)
			n = 0; /* no xattrs on this filesystem */
		if (n <= 0) {
			*ret_list = NULL;
			*ret_size = 0;
			return (int)n;
		}
		list = malloc((size_t)n);
		if (!list)
			return -ENOMEM;
		m = ply_sys_fd_listxattr(fd, list, (size_t)n);
		if (m >= 0) {
			*ret_list = list;
			*ret_size = (size_t)m;
			return 0;
		}
		free(list);
		if (m != -ERANGE)
			return (int)m;
	}
	return -ERANGE;
}

static int copy_xattrs(struct copyup *c)
{
	char *list = NULL, *value = NULL;
	size_t size = 0, vsize = 0;
	int r;

	r = list_xattrs(c->req->meta_fd, &list, &size);
	for (size_t pos = 0; r >= 0 && pos < size;
	     pos += strlen(list + pos) + 1) {
		const char *name = list + pos;
		ssize_t n;

		if (!want_xattr(c, name))
			continue;
		n = get_xattr(c->req->meta_fd, name, &value, &vsize);
		if (n == -ENODATA)
			continue; /* removed since it was listed */
		if (n < 0) {
			r = (int)n;
			break;
		}
		r = ply_sys_fd_setxattr(c->pfd, name, value, (size_t)n, 0);
		if (r < 0 && refused(name, r)) {
			ply_debug("copy-up: xattr %s not copied: %s", name,
				  strerror(-r));
			r = 0;
		}
	}
	free(value);
	free(list);
	return r;
}

static int set_mode(struct copyup *c)
{
	/* after the owner: chown clears setuid and setgid */
	if (c->type == S_IFLNK)
		return 0;
	return ply_sys_fchmod_fd(c->pfd, c->req->meta_st->st_mode & 07777);
}

/* Our own markers: overlay.metacopy, plyfs.origin (8 bytes, LE). */
static int set_markers(struct copyup *c)
{
	const struct ply_copyup_req *req = c->req;
	char name[64];
	uint8_t le[8];
	int r;

	if ((req->flags & PLY_COPYUP_METACOPY) && c->type == S_IFREG) {
		snprintf(name, sizeof(name), "%soverlay.metacopy",
			 req->xattr_ns);
		r = ply_sys_fd_setxattr(c->pfd, name, "", 0, 0);
		if (r < 0)
			return r;
	}
	if (!req->origin_ino || !req->xattr_ns)
		return 0; /* no xattrs on the upper: nowhere to record it */
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(req->origin_ino >> (8 * i));
	snprintf(name, sizeof(name), "%splyfs.origin", req->xattr_ns);
	r = ply_sys_fd_setxattr(c->pfd, name, le, sizeof(le), 0);
	/* user.* xattrs exist only on files and directories, and some
	 * filesystems have none: the object then keeps no origin (only its
	 * st_ino after a remount depends on it), which is no reason to
	 * refuse the copy-up */
	if (r == -EOPNOTSUPP ||
	    (r == -EPERM && c->type != S_IFREG && c->type != S_IFDIR)) {
		ply_debug("copy-up: %s not recorded: %s", name, strerror(-r));
		r = 0;
	}
	return r;
}

static int set_times(struct copyup *c)
{
	const struct stat *st = c->req->meta_st;
	const struct timespec times[2] = { st->st_atim, st->st_mtim };

	return ply_sys_futimens_fd(c->pfd, times);
}

/* Only written data needs a sync before the rename: a copy of metadata
 * alone (a directory, a symlink, a metacopy, an O_TRUNC copy, a reflink's
 * shared extents) is made of changes the filesystem's journal orders
 * before the rename, so a crash shows it whole or not at all, as the
 * kernel's overlayfs relies on too. Written data blocks are not ordered
 * so: without the fsync a crash could leave the renamed file with holes
 * where its data was. */
static int sync_temp(struct copyup *c)
{
	if (!(c->req->flags & PLY_COPYUP_SYNC) || !c->wrote_data)
		return 0;
	return ply_sys_fsync(c->wfd);
}

/* ---- the whole copy-up --------------------------------------------------- */

/* Builds the temporary: object, data, then metadata in the order that
 * keeps it (see each step). */
static int build(struct copyup *c)
{
	int r;

	/* the random name may collide with a live temporary: draw again */
	for (int tries = 0; tries < 4; tries++) {
		ply_workdir_temp_name(c->temp, sizeof(c->temp));
		r = create_object(c);
		if (r != -EEXIST || c->created)
			break;
	}
	if (r >= 0 && c->type == S_IFREG)
		r = fill_file(c);
	/* owner first: chown strips security.capability, copied next */
	if (r >= 0)
		r = set_owner(c);
	if (r >= 0)
		r = copy_xattrs(c);
	if (r >= 0)
		r = set_mode(c);
	if (r >= 0)
		r = set_markers(c);
	if (r >= 0)
		r = set_times(c);
	if (r >= 0)
		r = sync_temp(c);
	return r;
}

int ply_copyup(const struct ply_copyup_req *req, int *ret_fd)
{
	struct copyup c = {
		.req = req,
		.type = req->meta_st->st_mode & S_IFMT,
		.wfd = -1,
		.pfd = -1,
	};
	unsigned rflags = (req->flags & PLY_COPYUP_REPLACE) ? 0 :
							      RENAME_NOREPLACE;
	int r;

	r = ply_name_check(req->name);
	if (r < 0)
		return r;
	if ((req->flags & PLY_COPYUP_REPLACE) && c.type != S_IFREG)
		return -EINVAL;
	/* a metacopy without its marker would be an empty file */
	if ((req->flags & PLY_COPYUP_METACOPY) && c.type == S_IFREG &&
	    !req->xattr_ns)
		return -EOPNOTSUPP;
	r = build(&c);
	if (r >= 0)
		r = ply_sys_renameat2(req->workfd, c.temp, req->upper_dirfd,
				      req->name, rflags);
	ply_sys_close(c.wfd);
	if (r < 0) {
		remove_temp(&c);
		ply_sys_close(c.pfd);
		return r;
	}
	*ret_fd = c.pfd;
	return 0;
}

/* ---- reading what a copy-up recorded ------------------------------------- */

int ply_copyup_origin(int fd, uint64_t *ret_ino)
{
	static const char *const names[] = {
		"trusted.plyfs.origin",
		"user.plyfs.origin",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		uint8_t le[8];
		uint64_t ino = 0;
		ssize_t n = ply_sys_fd_getxattr(fd, names[i], le, sizeof(le));

		if (n == -ENODATA || n == -EOPNOTSUPP)
			continue;
		if (n == -ERANGE || (n >= 0 && n != sizeof(le)))
			return -EINVAL; /* not a record of ours */
		if (n < 0)
			return (int)n;
		for (int b = 7; b >= 0; b--)
			ino = (ino << 8) | le[b];
		*ret_ino = ino;
		return 0;
	}
	return -ENODATA;
}

bool ply_copyup_is_metacopy(int fd)
{
	return ply_sys_fd_getxattr(fd, "trusted.overlay.metacopy", NULL, 0) >=
		       0 ||
	       ply_sys_fd_getxattr(fd, "user.overlay.metacopy", NULL, 0) >= 0;
}
