/* dirops.c: the operations that change a merged directory: create, link,
 * unlink, rmdir, rename. Every change lands in the upper layer; a name
 * that a lower layer still holds is hidden by a whiteout, and a directory
 * that replaces hidden lower content is made opaque. Each operation holds
 * the write lock of the directories it changes (two in address order). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#define RENAME_WHITEOUT (1 << 2)
#endif


static int upper_fd(const struct ply_inode *dir)
{
	return dir->parts[0].fd;
}

/* Which tree an object belongs to: a splice's layer, or -1 for the
 * union. Renames and links between trees cross a mount boundary. */
static int domain_of(const struct ply_union *u, const struct ply_inode *inode)
{
	if (inode->nparts && u->stack->layers[inode->parts[0].layer].is_splice)
		return inode->parts[0].layer;
	return -1;
}

static bool in_splice(const struct ply_union *u, const struct ply_inode *dir)
{
	return domain_of(u, dir) >= 0;
}

/* A name given for a new object: valid, and in the union never one of
 * our markers (inside a splice, a plain tree, any name is itself). */
static int check_new_name(const struct ply_union *u,
			  const struct ply_inode *dir, const char *name)
{
	int r = ply_name_check(name);

	if (r < 0)
		return r;
	return ply_marker_name_reserved(name) && !in_splice(u, dir) ? -EINVAL :
								      0;
}

/* A splice, or a directory on the way to one, stands at name in dir: a
 * mount point, which nothing may remove or rename (checked before any
 * copy-up, so a refusal changes nothing). */
static bool splice_at(const struct ply_inode *dir, const char *name)
{
	return ply_snode_child(dir->snode, name) != NULL;
}

/* Locks one or two directories for writing, pinned, in address order. */
static int lock_dirs(const struct ply_union *u, struct ply_inode *a,
		     struct ply_inode *b)
{
	struct ply_inode *first = a < b ? a : b, *second = a < b ? b : a;
	int r = ply_inode_pin(u->table, a);

	if (r < 0)
		return r;
	if (b != a) {
		r = ply_inode_pin(u->table, b);
		if (r < 0) {
			ply_inode_unpin(u->table, a);
			return r;
		}
		pthread_rwlock_wrlock(&first->lock);
		pthread_rwlock_wrlock(&second->lock);
	} else {
		pthread_rwlock_wrlock(&a->lock);
	}
	return 0;
}

static void unlock_dirs(const struct ply_union *u, struct ply_inode *a,
			struct ply_inode *b)
{
	/* names may have changed: the kept listings go, before a reader
	 * can come in */
	ply_inode_drop_listing(a);
	ply_inode_drop_listing(b);
	pthread_rwlock_unlock(&a->lock);
	if (b != a) {
		pthread_rwlock_unlock(&b->lock);
		ply_inode_unpin(u->table, b);
	}
	ply_inode_unpin(u->table, a);
}

/* Does a layer below the upper still hold name in dir (so that removing
 * it from the upper needs a whiteout)? dir->parts[0] is the upper. */
static int lower_has(const struct ply_union *u, const struct ply_inode *dir,
		     const char *name)
{
	struct ply_lookup lk;
	int r;

	if (dir->nparts < 2)
		return 0;
	r = ply_lookup_name(u->stack, dir->parts + 1, dir->nparts - 1, name,
			    &lk);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	ply_lookup_release(&lk);
	return 1;
}

/* What the upper directory holds under name. */
enum upper_state { UPPER_NONE, UPPER_OBJECT, UPPER_WHITEOUT, UPPER_WH_FILE };

static enum upper_state upper_state_of(const struct ply_inode *dir,
				       const char *name, bool plain)
{
	char wh[PLY_WH_PREFIX_LEN + NAME_MAX + 1];
	struct stat st;

	if (plain) /* inside a splice nothing is a marker */
		return ply_sys_fstatat(upper_fd(dir), name, &st) == 0 ?
			       UPPER_OBJECT :
			       UPPER_NONE;
	if (ply_sys_fstatat(upper_fd(dir), name, &st) == 0)
		return ply_marker_is_whiteout(upper_fd(dir), name, &st,
					      dir->parts[0].state) > 0 ?
			       UPPER_WHITEOUT :
			       UPPER_OBJECT;
	snprintf(wh, sizeof(wh), "%s%s", PLY_WH_PREFIX, name);
	if (strlen(name) + PLY_WH_PREFIX_LEN <= NAME_MAX &&
	    ply_sys_fstatat(upper_fd(dir), wh, &st) == 0)
		return UPPER_WH_FILE;
	return UPPER_NONE;
}

/* Readies the upper part of dir to hold whiteouts, and says so in the
 * part's state so that lookups and listings honour xattr whiteouts at
 * once. The caller holds dir's write lock. */
static int prepare_upper_dir(const struct ply_union *u, struct ply_inode *dir)
{
	int r = ply_marker_prepare_parent(u->stack, upper_fd(dir));

	if (r >= 0 && u->stack->wh_format == PLY_WH_XATTR &&
	    dir->parts[0].state == PLY_DIR_PLAIN)
		dir->parts[0].state = PLY_DIR_XWHITEOUTS;
	return r;
}

static void drop_wh_file(const struct ply_inode *dir, const char *name)
{
	char wh[PLY_WH_PREFIX_LEN + NAME_MAX + 1];

	snprintf(wh, sizeof(wh), "%s%s", PLY_WH_PREFIX, name);
	ply_sys_unlinkat(upper_fd(dir), wh, 0);
}

/* ---- creating ----------------------------------------------------------- */

/* -EEXIST when the merged view (splices included) has name in dir. */
static int refuse_existing(const struct ply_union *u,
			   const struct ply_inode *dir, const char *name)
{
	struct ply_lookup lk;
	int r = ply_lookup_child(u->stack, dir->parts, dir->nparts, dir->snode,
				 name, 0, &lk);

	if (r == 0) {
		ply_lookup_release(&lk);
		return -EEXIST;
	}
	return r == -ENOENT ? 0 : r;
}

/* Gives a new object its owner, as far as this process may: as root the
 * caller's, with the group of a setgid parent directory. */
static void set_owner(int dirfd, const char *name, const struct ply_new *what,
		      const struct stat *parent_st)
{
	gid_t gid = (parent_st->st_mode & S_ISGID) ? parent_st->st_gid :
						      what->gid;
	int fd = ply_sys_open_path(dirfd, name);

	if (fd < 0)
		return;
	if (ply_sys_fchownat_fd(fd, what->uid, gid) == 0 &&
	    !S_ISLNK(what->mode) && (what->mode & (S_ISUID | S_ISGID)))
		ply_sys_fchmod_fd(fd, what->mode & 07777); /* chown clears them */
	close(fd);
}

/* As the kernel does: a default ACL of the parent replaces the umask. */
static mode_t apply_umask(int dirfd, const struct ply_new *what)
{
	int fd = ply_sys_openat(dirfd, ".", O_PATH | O_DIRECTORY, 0);
	bool has_default = false;

	if (fd >= 0) {
		has_default = ply_sys_fd_getxattr(fd, "system.posix_acl_default",
						  NULL, 0) > 0;
		close(fd);
	}
	if (has_default || S_ISLNK(what->mode))
		return what->mode & 07777;
	return what->mode & 07777 & ~what->umask;
}

static void remove_object(int dirfd, const char *name, mode_t mode)
{
	ply_sys_unlinkat(dirfd, name, S_ISDIR(mode) ? AT_REMOVEDIR : 0);
}

/* With xattr_permissions, the owner and mode live in the override xattr;
 * on disk the daemon keeps the access it needs. */
static int set_override(const struct ply_union *u, int dirfd, const char *name,
			const struct ply_new *what, mode_t perm)
{
	int fd, r;

	if (!u->stack->override_xattr)
		return 0;
	fd = ply_sys_open_path(dirfd, name);
	if (fd < 0)
		return fd;
	r = ply_override_write(fd, u->stack->override_xattr, what->uid,
			       what->gid, perm);
	close(fd);
	return r == -EPERM && S_ISLNK(what->mode) ? 0 : r;
}

static int make_object(const struct ply_union *u, int dirfd, const char *name,
		       const struct ply_new *what,
		       const struct stat *parent_st, int *ret_fd)
{
	mode_t perm = apply_umask(dirfd, what);
	mode_t shown = perm; /* what the override xattr records */
	int fd = -1, r;

	/* the daemon keeps its own access to what it stores for others */
	if (u->stack->override_xattr)
		perm |= S_IRUSR | S_IWUSR | (S_ISDIR(what->mode) ? S_IXUSR : 0);

	if (S_ISDIR(parent_st->st_mode) && (parent_st->st_mode & S_ISGID) &&
	    S_ISDIR(what->mode))
		perm |= S_ISGID;
	switch (what->mode & S_IFMT) {
	case S_IFREG:
		fd = ply_sys_openat(dirfd, name,
				    (what->open_flags &
				     ~(O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW)) |
					    O_CREAT | O_EXCL,
				    perm);
		r = fd < 0 ? fd : 0;
		break;
	case S_IFDIR:
		r = ply_sys_mkdirat(dirfd, name, perm);
		break;
	case S_IFLNK:
		r = ply_sys_symlinkat(what->target, dirfd, name);
		break;
	default:
		r = ply_sys_mknodat(dirfd, name, (what->mode & S_IFMT) | perm,
				    what->rdev);
		break;
	}
	if (r < 0)
		return r;
	set_owner(dirfd, name, what, parent_st);
	r = set_override(u, dirfd, name, what, shown);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		remove_object(dirfd, name, what->mode);
		return r;
	}
	if (ret_fd && fd >= 0)
		*ret_fd = fd;
	else if (fd >= 0)
		close(fd);
	return 0;
}

/* Builds the object in the work directory and moves it over the whiteout
 * that stands at name, in one rename: nobody sees the name missing. */
static int create_over_whiteout(const struct ply_union *u,
				const struct ply_inode *dir, const char *name,
				enum upper_state state,
				const struct ply_new *what,
				const struct stat *parent_st, int *ret_fd)
{
	char tmp[64];
	int fd = -1, r;

	ply_workdir_temp_name(tmp, sizeof(tmp));
	r = make_object(u, u->workfd, tmp, what, parent_st,
			S_ISREG(what->mode) ? &fd : NULL);
	if (r < 0)
		return r;
	if (S_ISDIR(what->mode)) {
		/* the whiteout hid a lower directory: keep it hidden */
		int dfd = ply_sys_open_path(u->workfd, tmp);

		r = dfd < 0 ? dfd : ply_marker_set_opaque(u->stack, dfd);
		if (dfd >= 0)
			close(dfd);
	}
	/* exchange, as a directory cannot be renamed over a whiteout */
	if (r >= 0)
		r = ply_sys_renameat2(u->workfd, tmp, upper_fd(dir), name,
				      state == UPPER_WHITEOUT ?
					      RENAME_EXCHANGE :
					      RENAME_NOREPLACE);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		remove_object(u->workfd, tmp, what->mode);
		return r;
	}
	if (state == UPPER_WHITEOUT)
		ply_sys_unlinkat(u->workfd, tmp, 0); /* the old whiteout */
	if (state == UPPER_WH_FILE)
		drop_wh_file(dir, name);
	if (ret_fd && fd >= 0)
		*ret_fd = fd;
	else if (fd >= 0)
		close(fd);
	return 0;
}

int ply_dirop_create(const struct ply_union *u, struct ply_inode *dir,
		     const char *name, const struct ply_new *what,
		     int *ret_fd)
{
	enum upper_state state;
	struct stat parent_st;
	int r = check_new_name(u, dir, name);

	if (r < 0)
		return r;
	r = ply_upper_copy_up(u, dir, 0);
	if (r < 0)
		return r;
	r = lock_dirs(u, dir, dir);
	if (r < 0)
		return r;
	r = refuse_existing(u, dir, name);
	if (r < 0)
		goto out;
	r = ply_sys_fstat(upper_fd(dir), &parent_st);
	if (r < 0)
		goto out;
	state = upper_state_of(dir, name, in_splice(u, dir));
	if (state == UPPER_WHITEOUT || state == UPPER_WH_FILE)
		r = create_over_whiteout(u, dir, name, state, what, &parent_st,
					 ret_fd);
	else
		r = make_object(u, upper_fd(dir), name, what, &parent_st,
				ret_fd);
out:
	unlock_dirs(u, dir, dir);
	return r;
}

int ply_dirop_link(const struct ply_union *u, struct ply_inode *inode,
		   struct ply_inode *dir, const char *newname)
{
	enum upper_state state;
	char src[64], tmp[64];
	int r = check_new_name(u, dir, newname);

	if (r < 0)
		return r;
	if (domain_of(u, inode) != domain_of(u, dir))
		return -EXDEV;
	r = ply_upper_copy_up(u, inode, 0);
	if (r >= 0)
		r = ply_upper_copy_up(u, dir, 0);
	if (r < 0)
		return r;
	r = lock_dirs(u, dir, dir);
	if (r < 0)
		return r;
	r = ply_inode_pin(u->table, inode);
	if (r < 0)
		goto out_dir;
	r = refuse_existing(u, dir, newname);
	if (r < 0)
		goto out;
	/* linkat through /proc needs no privilege, unlike AT_EMPTY_PATH */
	snprintf(src, sizeof(src), "/proc/self/fd/%d", inode->parts[0].fd);
	state = upper_state_of(dir, newname, in_splice(u, dir));
	if (state != UPPER_WHITEOUT) {
		r = ply_sys_linkat(AT_FDCWD, src, upper_fd(dir), newname,
				   AT_SYMLINK_FOLLOW);
		if (r >= 0)
			ply_nlink_adjust(u->stack->xattr_ns,
					 inode->parts[0].fd, +1);
		if (r >= 0 && state == UPPER_WH_FILE)
			drop_wh_file(dir, newname);
		goto out;
	}
	ply_workdir_temp_name(tmp, sizeof(tmp));
	r = ply_sys_linkat(AT_FDCWD, src, u->workfd, tmp, AT_SYMLINK_FOLLOW);
	if (r >= 0) {
		r = ply_sys_renameat2(u->workfd, tmp, upper_fd(dir), newname,
				      0);
		if (r < 0)
			ply_sys_unlinkat(u->workfd, tmp, 0);
		else
			ply_nlink_adjust(u->stack->xattr_ns,
					 inode->parts[0].fd, +1);
	}
out:
	ply_inode_unpin(u->table, inode);
out_dir:
	unlock_dirs(u, dir, dir);
	return r;
}

/* ---- removing ----------------------------------------------------------- */

/* Puts a whiteout where the upper object name stands, in one rename
 * where the format allows. A directory is exchanged with the whiteout and
 * then removed from the work directory with all it holds (whiteouts). */
static int replace_with_whiteout(const struct ply_union *u,
				 struct ply_inode *dir, const char *name,
				 bool is_dir)
{
	char tmp[64];
	int r;

	ply_workdir_temp_name(tmp, sizeof(tmp));
	if (u->stack->wh_format == PLY_WH_FILE) {
		if (is_dir) {
			r = ply_sys_renameat2(upper_fd(dir), name, u->workfd,
					      tmp, RENAME_NOREPLACE);
			if (r >= 0)
				ply_remove_tree(u->workfd, tmp);
		} else {
			r = ply_sys_unlinkat(upper_fd(dir), name, 0);
		}
		return r < 0 ? r :
			       ply_marker_make_whiteout(u->stack, upper_fd(dir),
							name);
	}
	r = prepare_upper_dir(u, dir);
	if (r >= 0)
		r = ply_marker_make_whiteout(u->stack, u->workfd, tmp);
	if (r < 0)
		return r;
	r = ply_sys_renameat2(u->workfd, tmp, upper_fd(dir), name,
			      is_dir ? RENAME_EXCHANGE : 0);
	if (r < 0) {
		ply_sys_unlinkat(u->workfd, tmp, 0);
		return r;
	}
	if (is_dir)
		ply_remove_tree(u->workfd, tmp);
	return 0;
}

static int remove_upper_dir(const struct ply_union *u,
			    const struct ply_inode *dir, const char *name)
{
	char tmp[64];
	int r;

	/* it may still hold whiteouts: move it out whole, then empty it */
	ply_workdir_temp_name(tmp, sizeof(tmp));
	r = ply_sys_renameat2(upper_fd(dir), name, u->workfd, tmp,
			      RENAME_NOREPLACE);
	if (r >= 0)
		ply_remove_tree(u->workfd, tmp);
	return r;
}

static int whiteout_lower(const struct ply_union *u, struct ply_inode *dir,
			  const char *name)
{
	int r = prepare_upper_dir(u, dir);

	return r < 0 ? r : ply_marker_make_whiteout(u->stack, upper_fd(dir), name);
}

/* Takes a reference on the inode of name in dir, as a lookup from the
 * kernel would, and pins it, so that it can be orphaned once its name is
 * gone. ret_st is its stat. */
static int grab_child(const struct ply_union *u, struct ply_inode *dir,
		      const char *name, struct stat *ret_st,
		      struct ply_inode **ret)
{
	struct ply_inode *inode;
	struct ply_lookup lk;
	int r = ply_lookup_child(u->stack, dir->parts, dir->nparts, dir->snode,
				 name, 0, &lk);

	if (r < 0)
		return r;
	*ret_st = lk.st;
	r = ply_inode_table_acquire(u->table, dir, name, &lk, &inode);
	if (r < 0)
		return r;
	r = ply_inode_pin(u->table, inode);
	if (r < 0) {
		ply_inode_table_forget(u->table, inode, 1);
		return r;
	}
	*ret = inode;
	return 0;
}

static void release_child(const struct ply_union *u, struct ply_inode *inode,
			  bool gone)
{
	if (gone)
		ply_inode_orphan(u->table, inode);
	else
		ply_inode_unpin(u->table, inode);
	ply_inode_table_forget(u->table, inode, 1);
}

static int do_remove(const struct ply_union *u, struct ply_inode *dir,
		     const char *name, bool rmdir)
{
	struct ply_inode *child;
	struct stat st;
	bool child_upper;
	int lower, r;

	if (splice_at(dir, name))
		return -EBUSY;
	r = ply_upper_copy_up(u, dir, 0);
	if (r < 0)
		return r;
	r = lock_dirs(u, dir, dir);
	if (r < 0)
		return r;
	r = grab_child(u, dir, name, &st, &child);
	if (r < 0)
		goto out;
	if (child->snode) { /* a splice, or on the way to one: a mount point */
		r = -EBUSY;
		goto out_child;
	}
	if (rmdir != S_ISDIR(st.st_mode)) {
		r = rmdir ? -ENOTDIR : -EISDIR;
		goto out_child;
	}
	if (rmdir) {
		struct ply_dir listing;

		r = ply_dir_read_spliced(u->stack, child->parts, child->nparts,
					 child->snode, 0, 0, &listing);
		if (r < 0)
			goto out_child;
		r = listing.count > 2 ? -ENOTEMPTY : 0;
		ply_dir_free(&listing);
		if (r < 0)
			goto out_child;
	}
	if (in_splice(u, dir)) { /* a plain tree: remove in place */
		r = ply_sys_unlinkat(upper_fd(dir), name,
				     rmdir ? AT_REMOVEDIR : 0);
		goto out_child;
	}
	child_upper = u->stack->layers[child->parts[0].layer].is_upper &&
		      !child->parts[0].indexed;
	lower = lower_has(u, dir, name);
	/* one name fewer for a file whose names share the index's copy */
	if (!rmdir && child->parts[0].origin &&
	    u->stack->layers[child->parts[0].layer].is_upper)
		ply_nlink_adjust(u->stack->xattr_ns, child->parts[0].fd, -1);
	if (lower < 0) {
		r = lower;
		goto out_child;
	}
	if (child_upper && lower)
		r = replace_with_whiteout(u, dir, name, rmdir);
	else if (child_upper && rmdir)
		r = remove_upper_dir(u, dir, name);
	else if (child_upper)
		r = ply_sys_unlinkat(upper_fd(dir), name, 0);
	else
		r = whiteout_lower(u, dir, name);
out_child:
	release_child(u, child, r >= 0);
out:
	unlock_dirs(u, dir, dir);
	return r;
}

int ply_dirop_unlink(const struct ply_union *u, struct ply_inode *dir,
		     const char *name)
{
	return do_remove(u, dir, name, false);
}

int ply_dirop_rmdir(const struct ply_union *u, struct ply_inode *dir,
		    const char *name)
{
	return do_remove(u, dir, name, true);
}

/* ---- renaming ----------------------------------------------------------- */

static bool has_lower_parts(const struct ply_union *u,
			    const struct ply_inode *inode)
{
	for (size_t i = 0; i < inode->nparts; i++)
		if (!u->stack->layers[inode->parts[i].layer].is_upper)
			return true;
	return false;
}

/* Finds and copies up what a rename moves, before any directory lock is
 * taken (a copy-up takes its parent's lock). */
static int prepare_moved(const struct ply_union *u, struct ply_inode *dir,
			 const char *name, bool must_exist,
			 struct ply_inode **ret)
{
	struct ply_inode *inode = NULL;
	struct stat st;
	int r = ply_inode_pin(u->table, dir);

	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&dir->lock);
	r = grab_child(u, dir, name, &st, &inode);
	pthread_rwlock_unlock(&dir->lock);
	ply_inode_unpin(u->table, dir);
	if (r == -ENOENT && !must_exist) {
		*ret = NULL;
		return 0;
	}
	if (r < 0)
		return r;
	/* a directory with lower content moves by redirect: needs xattrs */
	if (S_ISDIR(st.st_mode) && has_lower_parts(u, inode) &&
	    !u->stack->xattr_ns) {
		release_child(u, inode, false);
		return -EXDEV;
	}
	*ret = inode;
	return 0;
}

/* Appends "/name" to the path in buf. */
static int path_append(char *buf, size_t size, const char *name)
{
	size_t len = strlen(buf);

	if (len + 1 + strlen(name) >= size)
		return -ENAMETOOLONG;
	buf[len] = '/';
	strcpy(buf + len + 1, name);
	return 0;
}

/* The path from the layer roots at which a directory's lower content
 * lives: its redirect if it has an absolute one, else its parent's lower
 * path and its (old) name. Ancestors are pinned one at a time. */
static int lower_path(const struct ply_union *u, struct ply_inode *inode,
		      char *buf, size_t size)
{
	char *redirect;
	int r;

	if (inode == u->table->root) {
		buf[0] = '\0';
		return 0;
	}
	redirect = malloc(PATH_MAX);
	if (!redirect)
		return -ENOMEM;
	r = ply_inode_pin(u->table, inode);
	if (r >= 0) {
		if (!u->stack->layers[inode->parts[0].layer].is_upper ||
		    ply_marker_dir_redirect(inode->parts[0].fd, redirect,
					    PATH_MAX) < 0)
			redirect[0] = '\0';
		ply_inode_unpin(u->table, inode);
	}
	if (r >= 0 && redirect[0] == '/') {
		r = strlen(redirect) < size ? 0 : -ENAMETOOLONG;
		if (r >= 0)
			strcpy(buf, redirect);
	} else if (r >= 0) {
		r = lower_path(u, inode->parent, buf, size);
		if (r >= 0)
			r = path_append(buf, size,
					redirect[0] ? redirect : inode->name);
	}
	free(redirect);
	return r;
}

/* Before a directory with lower content moves, it records where that
 * content is; recorded first, so a crash never strands it. */
static int set_redirect_before_move(const struct ply_union *u,
				    struct ply_inode *inode)
{
	char *path;
	int r;

	if (!S_ISDIR(inode->type) || !has_lower_parts(u, inode))
		return 0;
	path = malloc(PATH_MAX);
	if (!path)
		return -ENOMEM;
	r = lower_path(u, inode, path, PATH_MAX);
	if (r >= 0)
		r = ply_marker_set_redirect(u->stack, inode->parts[0].fd,
					    path);
	free(path);
	return r;
}

static int merged_dir_empty(const struct ply_union *u,
			    const struct ply_inode *inode)
{
	struct ply_dir listing;
	int r = ply_dir_read_spliced(u->stack, inode->parts, inode->nparts,
				     inode->snode, 0, 0, &listing);

	if (r < 0)
		return r;
	r = listing.count > 2 ? -ENOTEMPTY : 0;
	ply_dir_free(&listing);
	return r;
}

/* Moves an (empty in the merged view) upper target directory out of the
 * way into the work directory; tmp gets its name there, or "". */
static int stash_target_dir(const struct ply_union *u,
			    const struct ply_inode *dir, const char *name,
			    char *tmp, size_t size)
{
	tmp[0] = '\0';
	if (upper_state_of(dir, name, in_splice(u, dir)) != UPPER_OBJECT)
		return 0;
	ply_workdir_temp_name(tmp, size);
	return ply_sys_renameat2(upper_fd(dir), name, u->workfd, tmp,
				 RENAME_NOREPLACE);
}

static int move_in_upper(const struct ply_union *u, struct ply_inode *olddir,
			 const char *oldname, struct ply_inode *newdir,
			 const char *newname, bool need_whiteout)
{
	enum upper_state state = upper_state_of(newdir, newname, in_splice(u, newdir));
	bool atomic_wh = need_whiteout && u->stack->wh_format == PLY_WH_CHARDEV;
	int r;

	r = ply_sys_renameat2(upper_fd(olddir), oldname, upper_fd(newdir),
			      newname, atomic_wh ? RENAME_WHITEOUT : 0);
	if (r == -EINVAL || r == -EPERM) {
		if (!atomic_wh)
			return r;
		atomic_wh = false; /* no RENAME_WHITEOUT here: two steps */
		r = ply_sys_renameat2(upper_fd(olddir), oldname,
				      upper_fd(newdir), newname, 0);
	}
	if (r < 0)
		return r;
	if (state == UPPER_WH_FILE)
		drop_wh_file(newdir, newname);
	if (need_whiteout && !atomic_wh)
		r = whiteout_lower(u, olddir, oldname);
	return r;
}

static int rename_locked(const struct ply_union *u, struct ply_inode *olddir,
			 const char *oldname, struct ply_inode *newdir,
			 const char *newname, unsigned int flags,
			 struct ply_inode *src, struct ply_inode *tgt)
{
	char stash[64] = "";
	int lower_old, r;

	if (tgt && !(flags & RENAME_EXCHANGE) && S_ISDIR(tgt->type)) {
		r = merged_dir_empty(u, tgt);
		if (r < 0)
			return r;
	}
	r = set_redirect_before_move(u, src);
	if (r >= 0 && (flags & RENAME_EXCHANGE))
		r = set_redirect_before_move(u, tgt);
	if (r < 0)
		return r;
	if (tgt && !(flags & RENAME_EXCHANGE) && S_ISDIR(tgt->type)) {
		/* hidden lower content of the target stays hidden */
		if (has_lower_parts(u, tgt) && S_ISDIR(src->type) &&
		    !has_lower_parts(u, src)) {
			r = ply_marker_set_opaque(u->stack, src->parts[0].fd);
			if (r < 0)
				return r;
		}
		if (!in_splice(u, newdir)) /* a plain rename says ENOTEMPTY */
			r = stash_target_dir(u, newdir, newname, stash,
					     sizeof(stash));
		if (r < 0)
			return r;
	}
	if (flags & RENAME_EXCHANGE) {
		r = ply_sys_renameat2(upper_fd(olddir), oldname,
				      upper_fd(newdir), newname,
				      RENAME_EXCHANGE);
	} else {
		lower_old = lower_has(u, olddir, oldname);
		r = lower_old < 0 ? lower_old :
				    move_in_upper(u, olddir, oldname, newdir,
						  newname, lower_old);
	}
	if (stash[0]) {
		if (r < 0) /* put the target back where it was */
			ply_sys_renameat2(u->workfd, stash, upper_fd(newdir),
					  newname, RENAME_NOREPLACE);
		else
			ply_remove_tree(u->workfd, stash);
	}
	if (r >= 0 && u->stack->xattr_ns &&
	    (src->parts[0].origin || (tgt && tgt->parts[0].origin))) {
		ply_marker_set_impure(u->stack, upper_fd(newdir));
		ply_marker_set_impure(u->stack, upper_fd(olddir));
	}
	return r;
}

int ply_dirop_rename(const struct ply_union *u, struct ply_inode *olddir,
		     const char *oldname, struct ply_inode *newdir,
		     const char *newname, unsigned int flags)
{
	struct ply_inode *src = NULL, *tgt = NULL;
	bool exchange = flags & RENAME_EXCHANGE;
	int r;

	if ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
	    (exchange && (flags & RENAME_NOREPLACE)))
		return -EINVAL;
	r = check_new_name(u, newdir, newname);
	if (r < 0)
		return r;
	if (splice_at(olddir, oldname) || splice_at(newdir, newname))
		return -EBUSY;
	if (domain_of(u, olddir) != domain_of(u, newdir))
		return -EXDEV;
	r = ply_upper_copy_up(u, olddir, 0);
	if (r >= 0)
		r = ply_upper_copy_up(u, newdir, 0);
	if (r >= 0)
		r = prepare_moved(u, olddir, oldname, true, &src);
	if (r >= 0)
		r = prepare_moved(u, newdir, newname, exchange, &tgt);
	if (r < 0)
		goto out;
	if (src->snode || (tgt && tgt->snode)) {
		r = -EBUSY; /* a splice, or on the way to one: a mount point */
		goto out;
	}
	if (src == tgt) { /* the same object under both names: nothing */
		r = 0;
		goto out;
	}
	if (tgt && (flags & RENAME_NOREPLACE)) {
		r = -EEXIST;
		goto out;
	}
	r = ply_upper_copy_up(u, src, 0);
	if (r >= 0 && exchange)
		r = ply_upper_copy_up(u, tgt, 0);
	if (r < 0)
		goto out;
	r = lock_dirs(u, olddir, newdir);
	if (r < 0)
		goto out;
	r = rename_locked(u, olddir, oldname, newdir, newname, flags, src,
			  tgt);
	unlock_dirs(u, olddir, newdir);
	if (r < 0)
		goto out;
	r = ply_inode_move(u->table, src, newdir, newname);
	if (r >= 0 && exchange)
		r = ply_inode_move(u->table, tgt, olddir, oldname);
	/* a moved directory's ".." is another one now */
	ply_inode_drop_listing(src);
	if (tgt)
		ply_inode_drop_listing(tgt);
	if (tgt && !exchange) {
		release_child(u, tgt, true);
		tgt = NULL;
	}
out:
	if (src)
		release_child(u, src, false);
	if (tgt)
		release_child(u, tgt, false);
	return r;
}
