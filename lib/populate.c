/* populate.c: filling a new volume with what the layers hold at its
 * destination, as Docker does: the merged tree is walked (merged listing,
 * then a lookup per name) and each object is copied with the copy-up
 * engine, so owners, modes, times, xattrs and holes are kept the same way.
 * Hard links are linked again; symlinks are copied as links, never
 * followed. A failure removes what was copied: the volume stays empty. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

int ply_dir_is_empty(int fd)
{
	int dfd = ply_sys_reopen(fd, O_RDONLY | O_DIRECTORY | O_NOATIME);
	char buf[4096];
	ssize_t n;
	int r = 1;

	if (dfd == -EPERM) /* O_NOATIME: only the owner or a privileged one */
		dfd = ply_sys_reopen(fd, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return dfd;
	while (r == 1 && (n = ply_sys_getdents(dfd, buf, sizeof(buf))) > 0) {
		for (ssize_t pos = 0; pos < n;) {
			struct dirent *de = (struct dirent *)(buf + pos);

			pos += de->d_reclen;
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				r = 0;
				break;
			}
		}
	}
	if (r == 1 && n < 0)
		r = (int)n;
	ply_sys_close(dfd);
	return r;
}

/* The first copy of each hard-linked object, by its merged st_ino: the
 * path of that copy from dst. */
struct link_rec {
	uint64_t ino; /* 0: empty slot */
	char *path;
};

struct populate {
	const struct ply_stack *stack;
	int dst;
	struct link_rec *links;
	size_t nlinks, cap;
	char path[PATH_MAX]; /* of the directory being filled, from dst */
	size_t len;
	unsigned depth;
};

static size_t link_slot(const struct link_rec *v, size_t cap, uint64_t ino)
{
	size_t i = (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) & (cap - 1);

	while (v[i].ino && v[i].ino != ino)
		i = (i + 1) & (cap - 1);
	return i;
}

static const char *link_find(const struct populate *p, uint64_t ino)
{
	size_t i;

	if (!p->cap)
		return NULL;
	i = link_slot(p->links, p->cap, ino);
	return p->links[i].ino ? p->links[i].path : NULL;
}

static int link_add(struct populate *p, uint64_t ino, const char *path)
{
	char *copy;
	size_t i;

	if (!ino)
		return 0;
	if (2 * (p->nlinks + 1) > p->cap) {
		size_t ncap = p->cap ? 2 * p->cap : 64;
		struct link_rec *v = calloc(ncap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t j = 0; j < p->cap; j++)
			if (p->links[j].ino)
				v[link_slot(v, ncap, p->links[j].ino)] =
					p->links[j];
		free(p->links);
		p->links = v;
		p->cap = ncap;
	}
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	i = link_slot(p->links, p->cap, ino);
	p->links[i].ino = ino;
	p->links[i].path = copy;
	p->nlinks++;
	return 0;
}

static void links_free(struct populate *p)
{
	for (size_t i = 0; i < p->cap; i++)
		free(p->links[i].path);
	free(p->links);
}

/* Appends name to p->path; returns the old length to restore. */
static int path_push(struct populate *p, const char *name, size_t *ret_old)
{
	size_t len = strlen(name), need = p->len + (p->len ? 1 : 0) + len;

	if (need >= sizeof(p->path))
		return -ENAMETOOLONG;
	*ret_old = p->len;
	if (p->len)
		p->path[p->len++] = '/';
	memcpy(p->path + p->len, name, len + 1);
	p->len += len;
	return 0;
}

/* Makes name in dirfd a hard link to the copy at path (from dst), walking
 * path one component at a time without following anything. */
static int link_again(const struct populate *p, const char *path, int dirfd,
		      const char *name)
{
	char comp[NAME_MAX + 1];
	const char *s = path, *slash;
	int fd = ply_sys_openat(p->dst, ".", O_PATH | O_DIRECTORY, 0), r;

	while (fd >= 0 && (slash = strchr(s, '/'))) {
		size_t len = (size_t)(slash - s);
		int next;

		if (len > NAME_MAX) {
			ply_sys_close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, s, len);
		comp[len] = '\0';
		next = ply_sys_openat(fd, comp,
				      O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		ply_sys_close(fd);
		fd = next;
		s = slash + 1;
	}
	if (fd < 0)
		return fd;
	r = ply_sys_linkat(fd, s, dirfd, name, 0);
	ply_sys_close(fd);
	return r;
}

static int set_dir_meta(int fd, const struct stat *st, bool owner)
{
	const struct timespec times[2] = { st->st_atim, st->st_mtim };
	int r = 0;

	if (owner) {
		r = ply_sys_fchownat_fd(fd, st->st_uid, st->st_gid);
		/* rootless: the volume belongs to us, as what we copy */
		if (r == -EPERM && geteuid() != 0)
			r = 0;
	}
	/* mode after the owner: chown clears setgid */
	if (r >= 0)
		r = ply_sys_fchmod_fd(fd, st->st_mode & 07777);
	if (r >= 0)
		r = ply_sys_futimens_fd(fd, times);
	return r;
}

static int fill_dir(struct populate *p, const struct ply_part *parts,
		    size_t nparts, int dirfd);

/* Fills the new directory fd (copied from lk's object) and gives it its
 * times back, which the new entries changed. A directory we may not
 * write to is made writable while it is filled. */
static int fill_subdir(struct populate *p, const struct ply_lookup *lk, int fd)
{
	mode_t mode = lk->st.st_mode & 07777;
	int r = 0;

	if (p->depth >= 4096)
		return -ELOOP;
	if ((mode & 0700) != 0700)
		r = ply_sys_fchmod_fd(fd, mode | 0700);
	p->depth++;
	if (r >= 0)
		r = fill_dir(p, lk->parts, lk->nparts, fd);
	p->depth--;
	if (r >= 0)
		r = set_dir_meta(fd, &lk->st, false);
	return r;
}

/* Copies the object name of the merged directory parts into dirfd. */
static int copy_entry(struct populate *p, const struct ply_part *parts,
		      size_t nparts, int dirfd, const char *name)
{
	struct ply_lookup lk = { 0 };
	const char *first;
	mode_t type;
	size_t old = 0;
	int fd = -1, r;

	r = ply_lookup_name(p->stack, parts, nparts, name, &lk);
	if (r == -ENOENT)
		return 0; /* hidden or gone since it was listed */
	if (r < 0)
		return r;
	if (!lk.nparts) {
		ply_lookup_release(&lk);
		return 0; /* only a way to a splice: no layer content */
	}
	type = lk.st.st_mode & S_IFMT;
	r = path_push(p, name, &old);
	if (r < 0)
		goto out;
	if (type != S_IFDIR && lk.st.st_nlink > 1) {
		first = link_find(p, lk.st.st_ino);
		if (first) {
			r = link_again(p, first, dirfd, name);
			goto pop;
		}
	}
	{
		/* the data of a metacopy file is in the part below it */
		const struct ply_part *data =
			lk.nparts > 1 && lk.parts[0].metacopy ? &lk.parts[1] :
								&lk.parts[0];
		struct ply_copyup_req req = {
			.workfd = dirfd,
			.data_fd = data->fd,
			.meta_fd = lk.parts[0].fd,
			.meta_st = &lk.st,
			.upper_dirfd = dirfd,
			.name = name,
			.flags = 0,
			.xattr_ns = NULL,
			.origin_ino = 0,
		};

		r = ply_copyup(&req, &fd);
	}
	if (r == -EPERM && (type == S_IFCHR || type == S_IFBLK)) {
		ply_debug("populate: %s: device not copied: %s", p->path,
			  strerror(-r));
		r = 0;
		goto pop;
	}
	if (r < 0)
		goto pop;
	if (type != S_IFDIR && lk.st.st_nlink > 1)
		r = link_add(p, lk.st.st_ino, p->path);
	if (r >= 0 && type == S_IFDIR)
		r = fill_subdir(p, &lk, fd);
	ply_sys_close(fd);
pop:
	p->len = old;
	p->path[old] = '\0';
out:
	if (r < 0)
		ply_debug("populate: %s: %s", p->path[0] ? p->path : name,
			  strerror(-r));
	ply_lookup_release(&lk);
	return r;
}

static int fill_dir(struct populate *p, const struct ply_part *parts,
		    size_t nparts, int dirfd)
{
	struct ply_dir dir = { 0 };
	int r;

	r = ply_dir_read(p->stack, parts, nparts, 0, 0, &dir);
	if (r < 0)
		return r;
	for (size_t i = 0; i < dir.count && r >= 0; i++) {
		const char *name = dir.entries[i].name;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		r = copy_entry(p, parts, nparts, dirfd, name);
	}
	ply_dir_free(&dir);
	return r;
}

static int remove_one(int dst, const char *name)
{
	int r = ply_remove_tree(dst, name);

	if (r < 0 && r != -ENOENT)
		ply_debug("populate: cleaning %s: %s", name, strerror(-r));
	return 0;
}

/* Removes everything in dst after a failure (dst was empty before). */
static void clean(int dst)
{
	for (int pass = 0; pass < 4 && ply_dir_is_empty(dst) == 0; pass++) {
		int dfd = ply_sys_reopen(dst, O_RDONLY | O_DIRECTORY);
		char buf[8192];
		ssize_t n;

		if (dfd < 0)
			return;
		while ((n = ply_sys_getdents(dfd, buf, sizeof(buf))) > 0) {
			for (ssize_t pos = 0; pos < n;) {
				struct dirent *de;

				de = (struct dirent *)(buf + pos);
				pos += de->d_reclen;
				if (strcmp(de->d_name, ".") &&
				    strcmp(de->d_name, ".."))
					remove_one(dst, de->d_name);
			}
		}
		ply_sys_close(dfd);
	}
}

int ply_populate(const struct ply_stack *stack, const struct ply_part *parts,
		 size_t nparts, int dst)
{
	struct populate p = { .stack = stack, .dst = dst };
	struct stat st;
	int r;

	if (!nparts)
		return 0; /* nothing in the layers there */
	r = ply_object_stat(stack, parts, nparts, &st);
	if (r < 0)
		return r;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	r = ply_dir_is_empty(dst);
	if (r == 0)
		return -ENOTEMPTY;
	if (r < 0)
		return r;
	r = fill_dir(&p, parts, nparts, dst);
	/* the volume's root takes the owner, mode and times of what the
	 * layers hold there, as Docker gives it */
	if (r >= 0)
		r = set_dir_meta(dst, &st, true);
	links_free(&p);
	if (r < 0)
		clean(dst);
	return r;
}
