/* cmd-cp.c: plyctl cp — files copied out of a stack or into it, as cp -a
 * copies: recursively, with owners, modes, times, xattrs, hard links, and
 * symlinks as links. A stack is named by its options (-o, the path then
 * written ":PATH") or by the mountpoint of a running plyfs ("MNT:PATH").
 * Out of an unmounted stack, the merged view is read through lib; into
 * one, every change goes through lib's copy-up and directory operations,
 * as a mount would make it, with the workdir locked. Through a mount, it
 * is plain syscalls under the mountpoint, never following a symlink of
 * the stack's on the way. */
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

static void cp_usage(FILE *out)
{
	fputs("usage: plyctl cp [-o STACKOPTS] SRC DEST\n"
	      "Copies SRC to DEST as cp -a does (recursively; owners, modes, times,\n"
	      "xattrs, hard links kept; symlinks copied as links, never followed).\n"
	      "One of SRC and DEST is a path in a stack, written\n"
	      "  :PATH       in the stack given by -o lowerdir=...,upperdir=...,workdir=...\n"
	      "              (unmounted: read through libply, written as a mount would,\n"
	      "              with copy-up and whiteouts; refused while a mount uses it)\n"
	      "  MNT:PATH    in the plyfs mounted at MNT (through the mount)\n"
	      "the other a host path (write ./a:b for a host path holding a colon).\n"
	      "PATH is taken from the root of the merged view; a symlink on the way\n"
	      "is refused. As with cp, an existing directory DEST receives SRC under\n"
	      "its own name; SRC ending in /. copies what the directory holds.\n"
	      "Exit status: 0 done, 1 error, 2 usage error.\n",
	      out);
}

/* A directory of the destination: a host directory (fd) or a merged
 * directory of an unmounted stack (inode). */
struct dnode {
	int fd;
	struct ply_inode *inode;
	bool borrowed; /* not ours to close or forget */
};

/* An object of the source: its stat, and fds for metadata and data. */
struct sobj {
	struct stat st;
	int meta_fd, data_fd; /* O_PATH */
	int own_fd;           /* host: owned, else -1 */
	struct ply_lookup lk; /* stack: owns the part fds */
	bool has_lk;
};

struct link_rec {
	dev_t dev;
	ino_t ino;
	char *rel; /* the first copy, relative to the destination base */
};

struct cp {
	struct ply_err *err;
	/* the unmounted stack, when one side is one */
	struct ply_stack stack;
	bool stack_open;
	bool src_stack, dst_stack; /* which side goes through lib */
	struct ply_workdir wd;
	struct ply_inode_table table;
	bool table_ok;
	struct ply_union u;
	/* where the copy is rooted in the destination, for hard links */
	struct dnode base;
	struct link_rec *links;
	size_t nlinks;
	char rel[PATH_MAX]; /* the object in the destination, from base */
	bool root;
};

/* ---- the stack as destination: lib's operations on inodes --------------- */

static int st_child(struct cp *c, struct ply_inode *dir, const char *name,
		    struct ply_inode **ret)
{
	struct ply_lookup lk;
	int r = ply_inode_pin(&c->table, dir);

	if (r < 0)
		return r;
	r = ply_lookup_child(&c->stack, dir->parts, dir->nparts, dir->snode,
			     name, 0, &lk);
	ply_inode_unpin(&c->table, dir);
	if (r < 0)
		return r;
	return ply_inode_table_acquire(&c->table, dir, name, &lk, ret);
}

static void st_put(struct cp *c, struct ply_inode *inode)
{
	if (inode && inode != c->table.root)
		ply_inode_table_forget(&c->table, inode, 1);
}

/* ---- copying data and metadata ----------------------------------------- */

/* Copies the data of the O_PATH fd data into out, holes kept. */
static int copy_data(int data, int out)
{
	char *buf = malloc(1 << 20);
	struct stat st;
	off_t pos = 0;
	int in = plyctl_reopen_read(data), r = 0;

	if (in < 0 || !buf) {
		free(buf);
		if (in >= 0)
			close(in);
		return in < 0 ? in : -ENOMEM;
	}
	if (fstat(in, &st) < 0) {
		r = -errno;
		goto out;
	}
	while (pos < st.st_size && r >= 0) {
		off_t d = lseek(in, pos, SEEK_DATA), h;

		if (d < 0)
			break; /* a hole up to the end */
		h = lseek(in, d, SEEK_HOLE);
		if (h < 0)
			h = st.st_size;
		for (pos = d; pos < h && r >= 0;) {
			size_t want = (size_t)(h - pos) < (1 << 20) ?
					      (size_t)(h - pos) :
					      (1 << 20);
			ssize_t n = pread(in, buf, want, pos);

			if (n <= 0) {
				r = n < 0 ? -errno : 0;
				pos = h;
				break;
			}
			if (pwrite(out, buf, (size_t)n, pos) != n)
				r = -errno;
			pos += n;
			plyctl_progress_add((uint64_t)n, 0);
		}
	}
	if (r >= 0 && ftruncate(out, st.st_size) < 0)
		r = -errno;
out:
	close(in);
	free(buf);
	return r;
}

/* Owner, xattrs, mode and times of pfd/name from the source object, in
 * that order: a chown clears set-id bits, and a later xattr could not be
 * set on a file made read-only. */
static int set_meta(int pfd, const char *name, const struct sobj *s)
{
	struct timespec ts[2] = { s->st.st_atim, s->st.st_mtim };
	struct plyctl_xattr *xv;
	char path[64];
	size_t nx;
	int fd, r;

	if (fchownat(pfd, name, s->st.st_uid, s->st.st_gid,
		     AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno != EPERM)
		return -errno;
	r = plyctl_xattrs_read(s->meta_fd, &xv, &nx);
	if (r < 0)
		return r;
	fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		plyctl_xattrs_free(xv, nx);
		return -errno;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	for (size_t i = 0; i < nx && r >= 0; i++)
		if (setxattr(path, xv[i].name, xv[i].value, xv[i].size, 0) < 0 &&
		    errno != EPERM && errno != ENOTSUP)
			r = -errno;
	close(fd);
	plyctl_xattrs_free(xv, nx);
	if (r < 0)
		return r;
	if (!S_ISLNK(s->st.st_mode) &&
	    fchmodat(pfd, name, s->st.st_mode & 07777, 0) < 0)
		return -errno;
	if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* The upper directory of a stack inode, pinned: unpin when done. */
static int st_upper_fd(struct cp *c, struct ply_inode *dir)
{
	int r = ply_inode_pin(&c->table, dir);

	if (r < 0)
		return r;
	if (!dir->nparts || !c->stack.layers[dir->parts[0].layer].is_upper) {
		ply_inode_unpin(&c->table, dir);
		return -EIO;
	}
	return dir->parts[0].fd;
}

static int dest_set_meta(struct cp *c, struct dnode *dir, const char *name,
			 const struct sobj *s)
{
	struct ply_inode *child;
	int pfd, r;

	if (!c->dst_stack)
		return set_meta(dir->fd, name, s);
	r = st_child(c, dir->inode, name, &child);
	if (r < 0)
		return r;
	/* a merged directory may still be only below: metadata up */
	r = ply_upper_copy_up(&c->u, child, PLY_COPYUP_METACOPY);
	st_put(c, child);
	if (r < 0)
		return r;
	pfd = st_upper_fd(c, dir->inode);
	if (pfd < 0)
		return pfd;
	r = set_meta(pfd, name, s);
	ply_inode_unpin(&c->table, dir->inode);
	return r;
}

/* ---- the destination's operations ---------------------------------------- */

static int dest_mkdir(struct cp *c, struct dnode *dir, const char *name,
		      const struct sobj *s, struct dnode *ret)
{
	struct stat st;
	int r;

	ret->borrowed = false;
	if (c->dst_stack) {
		struct ply_new what = { .mode = S_IFDIR | 0700,
					.uid = s->st.st_uid,
					.gid = s->st.st_gid };

		r = st_child(c, dir->inode, name, &ret->inode);
		if (r == 0 && !S_ISDIR(ret->inode->type)) {
			st_put(c, ret->inode);
			return -ENOTDIR;
		}
		if (r == -ENOENT) {
			r = ply_dirop_create(&c->u, dir->inode, name, &what,
					     NULL);
			if (r >= 0)
				r = st_child(c, dir->inode, name, &ret->inode);
		}
		ret->fd = -1;
		return r;
	}
	if (mkdirat(dir->fd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	ret->inode = NULL;
	ret->fd = openat(dir->fd, name,
			 O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return ret->fd < 0 ? -errno : 0;
}

static void dnode_close(struct cp *c, struct dnode *d)
{
	if (!d->borrowed) {
		if (d->fd >= 0)
			close(d->fd);
		st_put(c, d->inode);
	}
	d->fd = -1;
	d->inode = NULL;
	d->borrowed = false;
}

/* Makes the new non-directory name in a host directory; a regular file
 * is returned open for writing. */
static int host_make(int pfd, const char *name, const struct sobj *s)
{
	char target[PATH_MAX];
	int fd, r;

	switch (s->st.st_mode & S_IFMT) {
	case S_IFREG:
		fd = openat(pfd, name,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		return fd < 0 ? -errno : fd;
	case S_IFLNK:
		r = plyctl_read_link(s->meta_fd, target, sizeof(target));
		if (r >= 0 && symlinkat(target, pfd, name) < 0)
			r = -errno;
		return r < 0 ? r : -1;
	default:
		if (mknodat(pfd, name, (s->st.st_mode & S_IFMT) | 0600,
			    s->st.st_rdev) < 0)
			return -errno;
		return -1;
	}
}

static int host_put(struct cp *c, struct dnode *dir, const char *name,
		    const struct sobj *s)
{
	struct stat st;
	int fd = -1, r;

	(void)c;
	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return -EISDIR;
		/* as cp: an existing regular file is written over */
		if (S_ISREG(st.st_mode) && S_ISREG(s->st.st_mode)) {
			fd = openat(dir->fd, name,
				    O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				return -errno;
		} else if (unlinkat(dir->fd, name, 0) < 0) {
			return -errno;
		}
	}
	if (fd < 0) {
		fd = host_make(dir->fd, name, s);
		if (fd < -1)
			return fd;
	}
	r = 0;
	if (fd >= 0) {
		r = copy_data(s->data_fd, fd);
		close(fd);
	}
	return r < 0 ? r : set_meta(dir->fd, name, s);
}

static int st_put_object(struct cp *c, struct dnode *dir, const char *name,
			 const struct sobj *s)
{
	struct ply_new what = { .mode = (s->st.st_mode & S_IFMT) | 0600,
				.rdev = s->st.st_rdev,
				.uid = s->st.st_uid,
				.gid = s->st.st_gid,
				.open_flags = O_WRONLY | O_CLOEXEC };
	char target[PATH_MAX];
	struct ply_inode *child;
	int fd = -1, r;

	r = st_child(c, dir->inode, name, &child);
	if (r == 0) {
		if (S_ISDIR(child->type)) {
			st_put(c, child);
			return -EISDIR;
		}
		if (S_ISREG(child->type) && S_ISREG(s->st.st_mode)) {
			/* as cp: written over, so a lower file is copied up
			 * (its data thrown away) and its hard links follow */
			r = ply_upper_copy_up(&c->u, child, PLY_COPYUP_EMPTY);
			if (r >= 0)
				r = ply_inode_pin(&c->table, child);
			if (r >= 0) {
				char path[64];

				snprintf(path, sizeof(path), "/proc/self/fd/%d",
					 child->parts[0].fd);
				fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
				if (fd < 0)
					r = -errno;
				ply_inode_unpin(&c->table, child);
			}
			st_put(c, child);
			if (r < 0)
				return r;
			goto write;
		}
		st_put(c, child);
		r = ply_dirop_unlink(&c->u, dir->inode, name);
		if (r < 0)
			return r;
	} else if (r != -ENOENT) {
		return r;
	}
	if (S_ISLNK(s->st.st_mode)) {
		r = plyctl_read_link(s->meta_fd, target, sizeof(target));
		if (r < 0)
			return r;
		what.target = target;
	}
	r = ply_dirop_create(&c->u, dir->inode, name, &what,
			     S_ISREG(s->st.st_mode) ? &fd : NULL);
	if (r < 0)
		return r;
write:
	if (fd >= 0) {
		r = copy_data(s->data_fd, fd);
		close(fd);
		if (r < 0)
			return r;
	}
	return dest_set_meta(c, dir, name, s);
}

/* Opens the destination directory holding rel (from base), one component
 * at a time, following nothing; *ret_name is rel's last component. */
static int dest_walk(struct cp *c, const char *rel, struct dnode *ret,
		     const char **ret_name)
{
	struct dnode cur = c->base;
	const char *p = rel, *slash;
	char comp[NAME_MAX + 1];
	int r = 0;

	cur.borrowed = true;
	while (r >= 0 && (slash = strchr(p, '/'))) {
		struct dnode next = { -1, NULL, false };

		if ((size_t)(slash - p) > NAME_MAX) {
			r = -ENAMETOOLONG;
			break;
		}
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = '\0';
		if (c->dst_stack) {
			r = st_child(c, cur.inode, comp, &next.inode);
		} else {
			next.fd = openat(cur.fd, comp,
					 O_PATH | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
			r = next.fd < 0 ? -errno : 0;
		}
		dnode_close(c, &cur);
		cur = next;
		p = slash + 1;
	}
	if (r < 0) {
		dnode_close(c, &cur);
		return r;
	}
	*ret = cur;
	*ret_name = p;
	return 0;
}

static int dest_link(struct cp *c, const char *first, struct dnode *dir,
		     const char *name)
{
	struct dnode fdir;
	const char *fname;
	int r = dest_walk(c, first, &fdir, &fname);

	if (r < 0)
		return r;
	if (c->dst_stack) {
		struct ply_inode *target, *old;

		r = st_child(c, fdir.inode, fname, &target);
		if (r >= 0) {
			if (st_child(c, dir->inode, name, &old) == 0) {
				bool same = old == target;

				st_put(c, old);
				if (!same)
					r = ply_dirop_unlink(&c->u, dir->inode,
							     name);
				else
					r = 1;
			}
			if (r == 0)
				r = ply_dirop_link(&c->u, target, dir->inode,
						   name);
			st_put(c, target);
		}
	} else {
		struct stat a, b;

		if (fstatat(dir->fd, name, &a, AT_SYMLINK_NOFOLLOW) == 0) {
			if (fstatat(fdir.fd, fname, &b, AT_SYMLINK_NOFOLLOW) ==
				    0 &&
			    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
				r = 1;
			else if (unlinkat(dir->fd, name, 0) < 0)
				r = -errno;
		}
		if (r == 0 && linkat(fdir.fd, fname, dir->fd, name, 0) < 0)
			r = -errno;
	}
	dnode_close(c, &fdir);
	return r < 0 ? r : 0;
}

/* ---- the source ------------------------------------------------------------ */

static void sobj_release(struct sobj *s)
{
	if (s->own_fd >= 0)
		close(s->own_fd);
	if (s->has_lk)
		ply_lookup_release(&s->lk);
	s->own_fd = -1;
	s->has_lk = false;
}

static int sobj_from_lookup(struct sobj *s)
{
	s->own_fd = -1;
	s->has_lk = true;
	s->meta_fd = s->lk.parts[0].fd;
	s->data_fd = ply_diff_data_part(&s->lk)->fd;
	if (fstat(s->meta_fd, &s->st) < 0) {
		ply_lookup_release(&s->lk);
		s->has_lk = false;
		return -errno;
	}
	return 0;
}

static int sobj_from_fd(struct sobj *s, int fd)
{
	s->own_fd = fd;
	s->meta_fd = s->data_fd = fd;
	s->has_lk = false;
	if (fstat(fd, &s->st) < 0) {
		close(fd);
		s->own_fd = -1;
		return -errno;
	}
	return 0;
}

static int sobj_child(struct cp *c, const struct sobj *dir, const char *name,
		      struct sobj *ret)
{
	int fd, r;

	if (c->src_stack) {
		r = ply_lookup_name(&c->stack, dir->lk.parts, dir->lk.nparts,
				    name, &ret->lk);
		return r < 0 ? r : sobj_from_lookup(ret);
	}
	fd = openat(dir->meta_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return sobj_from_fd(ret, fd);
}

/* The names a source directory holds, sorted. */
static int sobj_list(struct cp *c, const struct sobj *dir, char ***ret,
		     size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0;

	if (c->src_stack) {
		struct ply_dir listing;
		int r = ply_dir_read(&c->stack, dir->lk.parts, dir->lk.nparts,
				     0, 0, &listing);

		if (r < 0)
			return r;
		v = calloc(listing.count + 1, sizeof(*v));
		for (size_t i = 2; v && i < listing.count; i++)
			if (!(v[n++] = strdup(listing.entries[i].name)))
				break;
		ply_dir_free(&listing);
		if (!v || (n && !v[n - 1])) {
			ply_strv_free(v, n);
			return -ENOMEM;
		}
	} else {
		int dfd = openat(dir->meta_fd, ".",
				 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct dirent *de;
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;

		if (!d) {
			if (dfd >= 0)
				close(dfd);
			return -errno;
		}
		while ((de = readdir(d))) {
			char **grown;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			grown = realloc(v, (n + 1) * sizeof(*v));
			if (!grown || !(grown[n] = strdup(de->d_name))) {
				if (grown)
					v = grown;
				closedir(d);
				ply_strv_free(v, n);
				return -ENOMEM;
			}
			v = grown;
			n++;
		}
		closedir(d);
	}
	if (n) /* qsort wants an array, even an empty one */
		qsort(v, n, sizeof(*v), ply_strcmp_qsort);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- the walk ------------------------------------------------------------ */

static int copy_obj(struct cp *c, struct sobj *s, struct dnode *dir,
		    const char *name);

static int copy_children(struct cp *c, struct sobj *s, struct dnode *d)
{
	size_t saved = strlen(c->rel);
	char **names = NULL;
	size_t n = 0;
	int r = sobj_list(c, s, &names, &n);

	if (r < 0)
		return ply_err_set(c->err, r, "%s: listing: %s",
				   saved ? c->rel : ".", strerror(-r));
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct sobj child;

		if (saved + strlen(names[i]) + 2 > sizeof(c->rel)) {
			r = ply_err_set(c->err, -ENAMETOOLONG,
					"%s/%s: path too long", c->rel,
					names[i]);
			break;
		}
		snprintf(c->rel + saved, sizeof(c->rel) - saved, "%s%s",
			 saved ? "/" : "", names[i]);
		r = sobj_child(c, s, names[i], &child);
		if (r == -ENOENT) {
			r = 0; /* gone meanwhile */
		} else if (r < 0) {
			r = ply_err_set(c->err, r, "%s: %s", c->rel,
					strerror(-r));
		} else {
			r = copy_obj(c, &child, d, names[i]);
			sobj_release(&child);
		}
		c->rel[saved] = '\0';
	}
	ply_strv_free(names, n);
	return r;
}

static const char *link_first(struct cp *c, const struct stat *st)
{
	struct link_rec *grown;

	for (size_t i = 0; i < c->nlinks; i++)
		if (c->links[i].dev == st->st_dev &&
		    c->links[i].ino == st->st_ino)
			return c->links[i].rel;
	grown = realloc(c->links, (c->nlinks + 1) * sizeof(*grown));
	if (grown) {
		c->links = grown;
		grown[c->nlinks] = (struct link_rec){ st->st_dev, st->st_ino,
						      strdup(c->rel) };
		if (grown[c->nlinks].rel)
			c->nlinks++;
	}
	return NULL;
}

static int copy_obj(struct cp *c, struct sobj *s, struct dnode *dir,
		    const char *name)
{
	const char *first;
	int r;

	plyctl_progress_add(0, 1);
	if (S_ISDIR(s->st.st_mode)) {
		struct dnode d;

		r = dest_mkdir(c, dir, name, s, &d);
		if (r < 0)
			return ply_err_set(c->err, r, "%s: %s", c->rel,
					   r == -ENOTDIR ?
						   "cannot overwrite a non-directory with a directory" :
						   strerror(-r));
		r = copy_children(c, s, &d);
		dnode_close(c, &d);
		if (r >= 0) {
			r = dest_set_meta(c, dir, name, s);
			if (r < 0)
				r = ply_err_set(c->err, r, "%s: %s", c->rel,
						strerror(-r));
		}
		return r;
	}
	if (s->st.st_nlink > 1 && (first = link_first(c, &s->st)))
		r = dest_link(c, first, dir, name);
	else if (c->dst_stack)
		r = st_put_object(c, dir, name, s);
	else
		r = host_put(c, dir, name, s);
	if (r < 0)
		return ply_err_set(c->err, r, "%s: %s", c->rel,
				   r == -EISDIR ?
					   "cannot overwrite a directory with a non-directory" :
					   strerror(-r));
	return 0;
}

/* ---- naming the two sides ------------------------------------------------ */

/* Is path the mountpoint of a running plyfs? From /proc/self/mountinfo. */
static bool is_plyfs_mount(const char *path)
{
	char *real = realpath(path, NULL), line[8192];
	bool found = false;
	FILE *f;

	if (!real)
		return false;
	f = fopen("/proc/self/mountinfo", "re");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], *sep = strstr(line, " - "), fstype[64];
		size_t j = 0;
		const char *p;

		/* the fifth field, with \ooo escapes */
		if (!sep || sscanf(sep, " - %63s", fstype) != 1 ||
		    strcmp(fstype, "fuse.plyfs"))
			continue;
		p = line;
		for (int field = 0; field < 4 && p; field++)
			p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
		while (p && *p && *p != ' ' && j + 1 < sizeof(mnt)) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3') {
				mnt[j++] = (char)((p[1] - '0') * 64 +
						  (p[2] - '0') * 8 + (p[3] - '0'));
				p += 4;
			} else {
				mnt[j++] = *p++;
			}
		}
		mnt[j] = '\0';
		found = !strcmp(mnt, real);
	}
	if (f)
		fclose(f);
	free(real);
	return found;
}

/* A side of the copy, parsed: a host path, or a path in the stack. */
struct side {
	bool stack;     /* ":PATH" (with -o) or "MNT:PATH" */
	char *mnt;      /* MNT, or NULL */
	const char *path;
};

static int parse_side(const char *arg, bool have_opts, struct side *ret)
{
	const char *colon = strchr(arg, ':');

	memset(ret, 0, sizeof(*ret));
	ret->path = arg;
	if (!colon)
		return 0;
	if (colon == arg) {
		if (!have_opts)
			return -EINVAL;
		ret->stack = true;
		ret->path = colon + 1;
		return 0;
	}
	ret->mnt = strndup(arg, (size_t)(colon - arg));
	if (!ret->mnt)
		return -ENOMEM;
	if (!is_plyfs_mount(ret->mnt)) {
		free(ret->mnt);
		ret->mnt = NULL;
		return 0; /* a host path with a colon */
	}
	ret->stack = true;
	ret->path = colon + 1;
	return 0;
}

/* Splits a path into its directory part and last name; trailing "/"
 * dropped; *ret_contents for a path ending in "/." (what it holds). */
static int split_path(const char *path, char **ret_dir, char **ret_name,
		      bool *ret_contents)
{
	size_t len = strlen(path);
	char *copy, *slash;

	*ret_contents = false;
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= 2 && path[len - 1] == '.' &&
	    (len == 2 ? path[0] == '/' : path[len - 2] == '/')) {
		*ret_contents = true;
		len -= 2;
		if (!len)
			len = 1; /* "/." */
		while (len > 1 && path[len - 1] == '/')
			len--;
	} else if (len == 1 && path[0] == '.') {
		*ret_contents = true;
	}
	copy = strndup(path, len);
	if (!copy)
		return -ENOMEM;
	slash = strrchr(copy, '/');
	if (!slash) {
		*ret_dir = strdup(".");
		*ret_name = copy;
	} else if (slash == copy) {
		*ret_dir = strdup("/");
		*ret_name = strdup(slash[1] ? slash + 1 : "");
		free(copy);
	} else {
		*slash = '\0';
		*ret_dir = copy;
		*ret_name = strdup(slash + 1);
	}
	if (!*ret_dir || !*ret_name)
		return -ENOMEM;
	return 0;
}

/* Takes the next component of the path at *p into comp, passing over
 * slashes and "." ones: 1 when there is one, 0 at the end of the path,
 * -ENAMETOOLONG. */
static int next_component(const char **p, char comp[NAME_MAX + 1])
{
	for (;;) {
		size_t len;

		while (**p == '/')
			(*p)++;
		len = strcspn(*p, "/");
		if (!len)
			return 0;
		if (len > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(comp, *p, len);
		comp[len] = '\0';
		*p += len;
		if (strcmp(comp, "."))
			return 1;
	}
}

/* Looks the stack path up in the merged view, one component at a time:
 * every component but the last must be a directory (a symlink is not
 * followed). An empty or "/" path is the root. */
static int stack_lookup(struct cp *c, const char *path, struct ply_lookup *ret)
{
	struct ply_lookup cur, next;
	char comp[NAME_MAX + 1];
	const char *p = path;
	int r = ply_lookup_root(&c->stack, &cur), more = 0;

	while (r >= 0 && (more = next_component(&p, comp)) > 0) {
		if (!S_ISDIR(cur.st.st_mode)) {
			r = S_ISLNK(cur.st.st_mode) ? -ELOOP : -ENOTDIR;
			break;
		}
		r = ply_lookup_name(&c->stack, cur.parts, cur.nparts, comp,
				    &next);
		if (r < 0)
			break;
		ply_lookup_release(&cur);
		cur = next;
	}
	if (r >= 0 && more < 0)
		r = more;
	if (r < 0) {
		ply_lookup_release(&cur);
		return r;
	}
	*ret = cur;
	return 0;
}

/* The same walk in the stack's inode table (the destination). */
static int stack_dir_inode(struct cp *c, const char *path,
			   struct ply_inode **ret)
{
	struct ply_inode *cur = c->table.root, *next;
	char comp[NAME_MAX + 1];
	const char *p = path;
	int r;

	while ((r = next_component(&p, comp)) > 0) {
		r = st_child(c, cur, comp, &next);
		st_put(c, cur);
		if (r < 0)
			return r;
		cur = next;
		if (!S_ISDIR(cur->type)) {
			r = S_ISLNK(cur->type) ? -ELOOP : -ENOTDIR;
			st_put(c, cur);
			return r;
		}
	}
	if (r < 0) {
		st_put(c, cur);
		return r;
	}
	*ret = cur;
	return 0;
}

/* Opens a directory of a host path: beneath a mount (rootfd >= 0) one
 * component at a time without following symlinks, else as the user gave
 * it. */
static int host_open_dir(int rootfd, const char *path)
{
	int fd, next, r;
	char comp[NAME_MAX + 1];
	const char *p = path;

	if (rootfd < 0) {
		fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	fd = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	while (fd >= 0 && (r = next_component(&p, comp)) != 0) {
		if (r < 0) {
			close(fd);
			return r;
		}
		next = openat(fd, comp,
			      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return errno == ELOOP ? -ELOOP : -errno;
		fd = next;
	}
	return fd < 0 ? -errno : fd;
}

static const char *why(int r)
{
	return r == -ELOOP ? "a symlink on the way (not followed in a stack)" :
			     strerror(-r);
}

/* ---- setting the stack up ------------------------------------------------ */

static int open_stack_for_writing(struct cp *c, const char *optstr)
{
	struct ply_options opts;
	struct ply_lookup root;
	int r;

	ply_options_init(&opts);
	r = ply_options_parse(&opts, optstr, c->err);
	if (r >= 0 && (!opts.upperdir || !opts.workdir))
		r = ply_err_set(c->err, -EINVAL,
				"copying into a stack needs its upperdir and workdir");
	if (r >= 0)
		r = ply_stack_open(&c->stack, &opts, c->err);
	if (r < 0)
		goto out;
	c->stack_open = true;
	/* as the daemon sets up: lock (refused while mounted), clean,
	 * index, probe */
	r = ply_workdir_open(&c->stack, &c->wd, c->err);
	if (r == -EBUSY) {
		char msg[sizeof(c->err->msg)];

		memcpy(msg, c->err->msg, sizeof(msg));
		ply_err_set(c->err, r,
			    "%.900s (copy through the mountpoint instead: MNT:PATH)",
			    msg);
	}
	if (r >= 0)
		r = ply_workdir_check_volatile(&c->wd, &c->stack, c->err);
	if (r >= 0) {
		r = ply_workdir_open_links(&c->wd, &c->stack.indexfd);
		if (r < 0)
			ply_err_set(c->err, r, "workdir: %s", strerror(-r));
	}
	if (r >= 0)
		r = ply_stack_probe_upper(&c->stack, c->wd.workfd,
					  opts.whiteout, c->err);
	if (r >= 0)
		r = ply_lookup_root(&c->stack, &root);
	if (r >= 0) {
		r = ply_inode_table_init(&c->table, &root, 256);
		ply_lookup_release(&root);
		c->table_ok = r >= 0;
	}
	c->u = (struct ply_union){ .stack = &c->stack, .table = &c->table,
				   .workfd = c->wd.workfd,
				   .sync = !opts.nosync };
	if (r < 0 && !c->err->msg[0])
		ply_err_set(c->err, r, "%s", strerror(-r));
out:
	ply_options_free(&opts);
	return r;
}

/* ---- the command --------------------------------------------------------- */

/* Copies: the source object s (named name) into the destination
 * directory (parent of the target) under the name dname, or, for
 * contents, what it holds into the directory d itself. */
static int run_copy(struct cp *c, struct sobj *s, struct dnode *d,
		    const char *dname, bool contents)
{
	int r;

	c->base = *d;
	c->rel[0] = '\0';
	if (contents) {
		if (!S_ISDIR(s->st.st_mode))
			return ply_err_set(c->err, -ENOTDIR,
					   "the source is not a directory");
		return copy_children(c, s, d);
	}
	snprintf(c->rel, sizeof(c->rel), "%s", dname);
	r = copy_obj(c, s, d, dname);
	return r;
}

int plyctl_cp(int argc, char **argv)
{
	const char *optstr = NULL, *args[2] = { NULL, NULL };
	struct ply_err err = { "" };
	struct cp c = { .err = &err };
	struct side src, dst;
	struct sobj s = { .own_fd = -1 };
	struct dnode d = { -1, NULL, false };
	char *sdir = NULL, *sname = NULL, *ddir = NULL, *dname = NULL;
	char *target = NULL;
	bool scontents, dcontents, into = false;
	int srcroot = -1, dstroot = -1, r;
	size_t nargs = 0;

	c.wd = (struct ply_workdir){ -1, -1, -1, -1 };
	for (int i = 1; i < argc; i++) {
		if (plyctl_is_help(argv[i])) {
			cp_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			optstr = argv[++i];
		} else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
			optstr = argv[i] + 2;
		} else if (!strcmp(argv[i], "-a")) {
			/* cp -a is what it always does */
		} else if (nargs < 2 && (argv[i][0] != '-' || !argv[i][1])) {
			args[nargs++] = argv[i];
		} else {
			fprintf(stderr, "plyctl cp: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	if (nargs != 2) {
		fprintf(stderr, "plyctl cp: need SRC and DEST (see plyctl cp --help)\n");
		return PLYCTL_EXIT_USAGE;
	}
	if (parse_side(args[0], optstr, &src) < 0 ||
	    parse_side(args[1], optstr, &dst) < 0 || src.stack == dst.stack) {
		fprintf(stderr, "plyctl cp: exactly one of SRC and DEST must be in a stack (:PATH with -o, or MNT:PATH of a plyfs mount)\n");
		free(src.mnt);
		free(dst.mnt);
		return PLYCTL_EXIT_USAGE;
	}
	if ((src.stack && !src.mnt) || (dst.stack && !dst.mnt)) {
		c.src_stack = src.stack;
		c.dst_stack = dst.stack;
	}
	if (c.src_stack) {
		r = plyctl_open_stack(optstr, &c.stack, &err);
		c.stack_open = r >= 0;
	} else if (c.dst_stack) {
		r = open_stack_for_writing(&c, optstr);
	} else {
		r = 0;
	}
	if (r < 0) {
		fprintf(stderr, "plyctl cp: %s\n", err.msg);
		r = c.stack_open ? 1 : PLYCTL_EXIT_USAGE;
		goto out_stack;
	}
	if (src.mnt) {
		srcroot = open(src.mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (srcroot < 0) {
			r = ply_err_set(&err, -errno, "%s: %s", src.mnt,
					strerror(errno));
			goto fail;
		}
	}
	if (dst.mnt) {
		dstroot = open(dst.mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dstroot < 0) {
			r = ply_err_set(&err, -errno, "%s: %s", dst.mnt,
					strerror(errno));
			goto fail;
		}
	}

	/* the source object */
	r = split_path(src.path, &sdir, &sname, &scontents);
	if (r < 0)
		goto fail;
	if (c.src_stack) {
		char full[PATH_MAX];

		snprintf(full, sizeof(full), "%s/%s", sdir, sname);
		r = stack_lookup(&c, full, &s.lk);
		if (r >= 0)
			r = sobj_from_lookup(&s);
	} else {
		int dfd = host_open_dir(srcroot, sdir);

		r = dfd;
		if (dfd >= 0) {
			int fd = *sname ? openat(dfd, sname,
						 O_PATH | O_NOFOLLOW | O_CLOEXEC) :
					  openat(dfd, ".",
						 O_PATH | O_DIRECTORY | O_CLOEXEC);

			r = fd < 0 ? -errno : sobj_from_fd(&s, fd);
			close(dfd);
		}
	}
	if (r < 0) {
		ply_err_set(&err, r, "%s: %s", args[0], why(r));
		goto fail;
	}
	if (!*sname || !strcmp(sname, "/"))
		scontents = true; /* a root: what it holds */

	/* the destination: an existing directory receives SRC in it */
	r = split_path(dst.path, &ddir, &dname, &dcontents);
	if (r < 0)
		goto fail;
	if (c.dst_stack) {
		struct ply_inode *pdir = NULL, *t = NULL;

		r = stack_dir_inode(&c, ddir, &pdir);
		if (r >= 0 && *dname) {
			r = st_child(&c, pdir, dname, &t);
			if (r == 0 && S_ISDIR(t->type)) {
				st_put(&c, pdir);
				pdir = t;
				into = true;
			} else if (r == 0) {
				st_put(&c, t);
			}
			if (r == -ENOENT)
				r = 0;
		} else if (r >= 0) {
			into = true; /* the root */
		}
		d.inode = pdir;
	} else {
		int dfd = host_open_dir(dstroot, ddir);
		struct stat st;

		r = dfd;
		if (dfd >= 0 && *dname &&
		    (dstroot >= 0 ? fstatat(dfd, dname, &st,
					    AT_SYMLINK_NOFOLLOW) :
				    fstatat(dfd, dname, &st, 0)) == 0 &&
		    S_ISDIR(st.st_mode)) {
			d.fd = openat(dfd, dname,
				      O_PATH | O_DIRECTORY | O_CLOEXEC |
					      (dstroot >= 0 ? O_NOFOLLOW : 0));
			close(dfd);
			r = d.fd < 0 ? -errno : 0;
			into = true;
		} else if (dfd >= 0) {
			d.fd = dfd;
			into = !*dname;
			r = 0;
		}
	}
	if (r < 0) {
		ply_err_set(&err, r, "%s: %s", args[1], why(r));
		goto fail;
	}
	if (!into && dcontents) {
		r = ply_err_set(&err, -ENOENT, "%s: no such directory", args[1]);
		goto fail;
	}
	if (!into && scontents) {
		/* what a directory holds, into a new directory DEST */
		struct dnode nd;

		c.base = d;
		snprintf(c.rel, sizeof(c.rel), "%s", dname);
		r = dest_mkdir(&c, &d, dname, &s, &nd);
		if (r < 0) {
			ply_err_set(&err, r, "%s: %s", args[1], strerror(-r));
			goto fail;
		}
		dnode_close(&c, &d);
		d = nd;
		into = true;
	}
	target = strdup(into ? sname : dname);
	if (!target) {
		r = -ENOMEM;
		goto fail;
	}
	plyctl_progress_begin("cp", 0);
	r = run_copy(&c, &s, &d, target, scontents);
	plyctl_progress_end();
	if (r < 0)
		goto fail;
	r = 0;
	goto out;
fail:
	fprintf(stderr, "plyctl cp: %s\n", err.msg[0] ? err.msg : strerror(-r));
	r = 1;
out:
	dnode_close(&c, &d);
	sobj_release(&s);
	free(target);
	free(sdir);
	free(sname);
	free(ddir);
	free(dname);
	if (srcroot >= 0)
		close(srcroot);
	if (dstroot >= 0)
		close(dstroot);
	for (size_t i = 0; i < c.nlinks; i++)
		free(c.links[i].rel);
	free(c.links);
out_stack:
	if (c.table_ok)
		ply_inode_table_destroy(&c.table);
	if (c.stack_open) {
		ply_workdir_close(&c.wd);
		ply_stack_close(&c.stack);
	}
	free(src.mnt);
	free(dst.mnt);
	return r;
}
