/* upper.c: brings merged objects into the upper layer. Copy-up of an
 * inode copies up its parents first, then the object itself through the
 * copy-up engine, and swaps the inode's parts. It is serialized per inode
 * by the inode's lock, so a long copy-up stalls nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

static bool has_upper_part(const struct ply_union *u,
			   const struct ply_inode *inode)
{
	return inode->nparts &&
	       u->stack->layers[inode->parts[0].layer].is_upper &&
	       !inode->parts[0].indexed;
}

/* A hard-linked lower file shares one upper copy among all its names:
 * the first copy-up records it in the index, the next ones link it. */
static bool shares_copy(const struct ply_union *u, const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_nlink > 1 &&
	       u->stack->indexfd >= 0;
}

static int link_fd_at(int fd, int dirfd, const char *name)
{
	char src[64];

	/* through /proc: no privilege needed, unlike AT_EMPTY_PATH */
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	return ply_sys_linkat(AT_FDCWD, src, dirfd, name, AT_SYMLINK_FOLLOW);
}

/* Links the index's copy of inode in as its name; 0 when there is none. */
static int link_from_index(const struct ply_union *u, struct ply_inode *inode,
			   int upper_dirfd, int *ret_fd)
{
	char name[32];
	int fd, r;

	ply_index_name(inode->ino, name, sizeof(name));
	fd = ply_sys_open_path(u->stack->indexfd, name);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = link_fd_at(fd, upper_dirfd, inode->name);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 1;
}

/* Records the first copy of a hard-linked lower file in the index, with
 * the link count the union shows for it. */
static void add_to_index(const struct ply_union *u, struct ply_inode *inode,
			 int fd, nlink_t lower_nlink)
{
	char name[32];

	ply_nlink_write(u->stack->xattr_ns, fd, lower_nlink);

	ply_index_name(inode->ino, name, sizeof(name));
	link_fd_at(fd, u->stack->indexfd, name); /* a racing name won: fine */
}

/* The new parts after a copy-up: the upper part first; a directory keeps
 * merging with its lower parts, a metacopy keeps the lower data part, any
 * other object leaves the lower behind. */
static int parts_after_copy_up(const struct ply_inode *inode, int upper_fd,
			       const struct stat *st, bool metacopy,
			       uint64_t origin, struct ply_part **ret,
			       size_t *ret_n)
{
	bool keep = S_ISDIR(st->st_mode) || metacopy;
	size_t n = keep ? inode->nparts + 1 : 1;
	struct ply_part *parts = calloc(n, sizeof(*parts));

	if (!parts)
		return -ENOMEM;
	parts[0] = (struct ply_part){ .layer = 0,
				      .fd = upper_fd,
				      .state = PLY_DIR_PLAIN,
				      .dev = st->st_dev,
				      .ino = st->st_ino,
				      .origin = origin,
				      .metacopy = metacopy };
	if (keep)
		memcpy(parts + 1, inode->parts,
		       inode->nparts * sizeof(*parts));
	*ret = parts;
	*ret_n = n;
	return 0;
}

/* A copy-up changes nothing a user sees in the parent: keep its times
 * as they were before the copy landed in it, as overlayfs does. */
static void keep_parent_times(int dirfd, const struct stat *before)
{
	const struct timespec tv[2] = { before->st_atim, before->st_mtim };

	ply_sys_futimens_fd(dirfd, tv);
}

/* The owner and mode the mount shows for the lower object whose on-disk
 * stat is ondisk: where its layer keeps ownership in override xattrs,
 * the xattr's (a malformed one is ignored, as ply_object_stat does).
 * They are what a copy-up must keep: the on-disk ones of such a layer are
 * often wider (containers-storage's force_mask), and giving them to the
 * copy would open the file to whoever the xattr kept out. */
static void shown_owner_mode(const struct ply_union *u,
			     const struct ply_part *part,
			     const struct stat *ondisk, struct stat *ret)
{
	*ret = *ondisk;
	if (u->stack->layers[part->layer].override &&
	    ply_override_read(part->fd, ret) < 0)
		*ret = *ondisk;
}

/* With xattr_permissions, a copy owned by the daemon records the owner
 * and mode the object showed below (shown). */
static int record_override(const struct ply_union *u, int upper_fd,
			   const struct stat *shown)
{
	int r;

	if (!u->stack->override_xattr)
		return 0;
	r = ply_override_write(upper_fd, u->stack->override_xattr,
			       shown->st_uid, shown->st_gid, shown->st_mode);
	return r == -EPERM && S_ISLNK(shown->st_mode) ? 0 : r;
}

/* Copies inode up, its parent being in the upper already. Called with
 * inode->lock held for writing and inode pinned. */
/* A directory on the way to a splice that no layer holds comes into the
 * upper as a plain directory, when something is created in it. */
static int make_virtual_real(const struct ply_union *u, struct ply_inode *inode)
{
	struct ply_inode *parent = inode->parent;
	struct ply_part *parts = calloc(1, sizeof(*parts));
	struct stat st;
	int fd, r;

	if (!parts)
		return -ENOMEM;
	r = ply_inode_pin(u->table, parent);
	if (r < 0) {
		free(parts);
		return r;
	}
	r = ply_sys_mkdirat(parent->parts[0].fd, inode->name, 0755);
	fd = r < 0 && r != -EEXIST ? r :
				     ply_sys_openat(parent->parts[0].fd,
						    inode->name,
						    O_PATH | O_DIRECTORY |
							    O_NOFOLLOW,
						    0);
	ply_inode_unpin(u->table, parent);
	r = fd < 0 ? fd : ply_sys_fstat(fd, &st);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		free(parts);
		return r;
	}
	parts[0] = (struct ply_part){ .layer = 0, .fd = fd,
				      .dev = st.st_dev, .ino = st.st_ino,
				      .origin = inode->ino };
	ply_inode_set_parts(u->table, inode, parts, 1);
	return 0;
}

static int copy_up_locked(const struct ply_union *u, struct ply_inode *inode,
			  unsigned flags)
{
	struct ply_inode *parent = inode->parent;
	struct ply_copyup_req req;
	struct ply_part *parts;
	struct stat st, shown, up_st, parent_st;
	size_t n;
	int fd, r;

	r = ply_sys_fstat(inode->parts[0].fd, &st);
	if (r < 0)
		return r;
	shown_owner_mode(u, &inode->parts[0], &st, &shown);
	if (!S_ISREG(st.st_mode))
		flags &= ~(unsigned)(PLY_COPYUP_METACOPY | PLY_COPYUP_EMPTY);
	if (!u->stack->xattr_ns) /* no place for the metacopy mark */
		flags &= ~(unsigned)PLY_COPYUP_METACOPY;
	if (shares_copy(u, &st))
		flags &= ~(unsigned)(PLY_COPYUP_METACOPY | PLY_COPYUP_EMPTY);
	r = ply_inode_pin(u->table, parent);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&parent->lock);
	r = ply_sys_fstat(parent->parts[0].fd, &parent_st);
	if (r < 0)
		goto out_parent;
	if (shares_copy(u, &st) || inode->parts[0].indexed) {
		r = link_from_index(u, inode, parent->parts[0].fd, &fd);
		if (r != 0) {
			keep_parent_times(parent->parts[0].fd, &parent_st);
			pthread_rwlock_unlock(&parent->lock);
			ply_inode_unpin(u->table, parent);
			if (r < 0)
				return r;
			goto have_copy;
		}
	}
	req = (struct ply_copyup_req){
		.workfd = u->workfd,
		.data_fd = inode->parts[0].fd,
		.meta_fd = inode->parts[0].fd,
		/* the copy keeps what the mount showed: with xattr_permissions
		 * in the upper's xattr (record_override), the file on disk
		 * keeping the access the daemon had below; else on disk (a
		 * daemon that may not chown owns the copy, as any it makes,
		 * but with the mode shown, never the wider on-disk one) */
		.meta_st = u->stack->override_xattr ? &st : &shown,
		.upper_dirfd = parent->parts[0].fd,
		.name = inode->name,
		.flags = flags | (u->sync ? PLY_COPYUP_SYNC : 0),
		.xattr_ns = u->stack->xattr_ns,
		.origin_ino = inode->ino,
	};
	r = ply_copyup(&req, &fd);
	if (r >= 0) {
		r = record_override(u, fd, &shown);
		if (r < 0) {
			close(fd);
			ply_remove_tree(parent->parts[0].fd, inode->name);
		}
	}
	/* the part remembers the mark: read it once, not per copy-up
	 * (copy-ups in one directory run side by side, hence atomic) */
	if (r >= 0 && u->stack->xattr_ns &&
	    !__atomic_load_n(&parent->parts[0].impure, __ATOMIC_RELAXED) &&
	    ply_marker_set_impure(u->stack, parent->parts[0].fd) >= 0)
		__atomic_store_n(&parent->parts[0].impure, true,
				 __ATOMIC_RELAXED);
	if (r >= 0 && shares_copy(u, &st))
		add_to_index(u, inode, fd, st.st_nlink);
	if (r >= 0)
		keep_parent_times(parent->parts[0].fd, &parent_st);
out_parent:
	pthread_rwlock_unlock(&parent->lock);
	ply_inode_unpin(u->table, parent);
	if (r < 0)
		return r;
have_copy:
	r = ply_sys_fstat(fd, &up_st);
	if (r >= 0)
		r = parts_after_copy_up(inode, fd, &up_st,
					flags & PLY_COPYUP_METACOPY,
					u->stack->xattr_ns ? inode->ino : 0,
					&parts, &n);
	if (r < 0) {
		close(fd);
		return r;
	}
	ply_inode_set_parts(u->table, inode, parts, n);
	return 0;
}

/* Brings a metacopy file's data up: a full copy of the lower data with
 * the upper file's metadata, moved over it. Same locking as above. */
static int complete_metacopy_locked(const struct ply_union *u,
				    struct ply_inode *inode)
{
	struct ply_inode *parent = inode->parent;
	struct ply_copyup_req req;
	struct ply_part *parts;
	struct stat st, parent_st;
	int fd, r;

	r = ply_sys_fstat(inode->parts[0].fd, &st);
	if (r < 0)
		return r;
	r = ply_inode_pin(u->table, parent);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&parent->lock);
	r = ply_sys_fstat(parent->parts[0].fd, &parent_st);
	if (r < 0) {
		pthread_rwlock_unlock(&parent->lock);
		ply_inode_unpin(u->table, parent);
		return r;
	}
	req = (struct ply_copyup_req){
		.workfd = u->workfd,
		.data_fd = inode->parts[1].fd,
		.meta_fd = inode->parts[0].fd,
		.meta_st = &st,
		.upper_dirfd = parent->parts[0].fd,
		.name = inode->name,
		.flags = PLY_COPYUP_REPLACE | (u->sync ? PLY_COPYUP_SYNC : 0),
		.xattr_ns = u->stack->xattr_ns,
		.origin_ino = inode->parts[0].origin,
	};
	r = ply_copyup(&req, &fd);
	if (r >= 0)
		keep_parent_times(parent->parts[0].fd, &parent_st);
	pthread_rwlock_unlock(&parent->lock);
	ply_inode_unpin(u->table, parent);
	if (r < 0)
		return r;
	r = ply_sys_fstat(fd, &st);
	parts = calloc(1, sizeof(*parts));
	if (r < 0 || !parts) {
		free(parts);
		close(fd);
		return r < 0 ? r : -ENOMEM;
	}
	parts[0] = inode->parts[0];
	parts[0].fd = fd;
	parts[0].dev = st.st_dev;
	parts[0].ino = st.st_ino;
	parts[0].metacopy = false;
	ply_inode_set_parts(u->table, inode, parts, 1);
	return 0;
}

/* The parent of inode, pinned so that a rename cannot free it. */
static struct ply_inode *pinned_parent(const struct ply_union *u,
				       struct ply_inode *inode)
{
	struct ply_inode *parent;

	pthread_rwlock_rdlock(&inode->lock);
	parent = inode->parent;
	if (ply_inode_pin(u->table, parent) < 0)
		parent = NULL;
	pthread_rwlock_unlock(&inode->lock);
	return parent;
}

int ply_upper_copy_up(const struct ply_union *u, struct ply_inode *inode,
		      unsigned flags)
{
	bool want_data = !(flags & (PLY_COPYUP_METACOPY | PLY_COPYUP_EMPTY));
	struct ply_inode *parent;
	int r = -EAGAIN;

	if (inode->nparts && u->stack->layers[inode->parts[0].layer].is_splice)
		/* a splice is changed in place */
		return u->stack->layers[inode->parts[0].layer].ro ? -EROFS : 0;
	if (!u->stack->has_upper)
		return -EROFS;
	if (inode == u->table->root)
		return 0; /* the upper root is always a part of the root */
	/* a rename may move inode meanwhile: then its new parent goes first */
	for (int tries = 0; r == -EAGAIN && tries < 16; tries++) {
		parent = pinned_parent(u, inode);
		if (!parent)
			return -ESTALE;
		/* parents first, each under its own lock, never nested */
		r = ply_upper_copy_up(u, parent, 0);
		if (r >= 0)
			r = ply_inode_pin(u->table, inode);
		if (r < 0) {
			ply_inode_unpin(u->table, parent);
			return r;
		}
		pthread_rwlock_wrlock(&inode->lock);
		if (inode->parent != parent)
			r = -EAGAIN;
		else if (!has_upper_part(u, inode) &&
			 ply_inode_is_orphan(u->table, inode))
			/* its name is gone: a copy would bring it back (the
			 * kernel's writeback cache sets the times of an
			 * unlinked file when it lets go of it) */
			r = -ENOENT;
		else if (!inode->nparts)
			r = make_virtual_real(u, inode);
		else if (!has_upper_part(u, inode))
			r = copy_up_locked(u, inode, flags);
		else if (inode->parts[0].metacopy && want_data)
			r = complete_metacopy_locked(u, inode);
		pthread_rwlock_unlock(&inode->lock);
		ply_inode_unpin(u->table, inode);
		ply_inode_unpin(u->table, parent);
	}
	return r;
}

/* The data of a regular file: the part below a metacopy, else the top. */
const struct ply_part *ply_upper_data_part(const struct ply_inode *inode)
{
	if (inode->parts[0].metacopy && inode->nparts > 1)
		return &inode->parts[1];
	return &inode->parts[0];
}
