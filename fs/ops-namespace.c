/* ops-namespace.c: the FUSE operations that change names: create, mknod,
 * mkdir, symlink, link, unlink, rmdir, rename. Each calls one dirops
 * function and, for a new name, looks it up to answer with its entry. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "plyfs.h"

static struct ply_new new_object(fuse_req_t req, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct plyfs *fs = plyfs_of(req);

	return (struct ply_new){ .mode = mode,
				 .uid = plyfs_disk_uid(fs, ctx->uid),
				 .gid = plyfs_disk_gid(fs, ctx->gid),
				 .umask = ctx->umask };
}

/* Creates what under parent and answers with the new entry. */
static void reply_new_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
			    const struct ply_new *what)
{
	struct plyfs *fs = plyfs_of(req);
	struct ply_inode *dir = plyfs_inode(fs, parent);
	struct fuse_entry_param e;
	int r = ply_dirop_create(&fs->u, dir, name, what, NULL);

	if (r >= 0)
		r = plyfs_do_lookup(fs, dir, name, &e);
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (fuse_reply_entry(req, &e) < 0)
		ply_inode_table_forget(&fs->table, plyfs_inode(fs, e.ino), 1);
}

void plyfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, dev_t rdev)
{
	struct ply_new what = new_object(req, mode);

	what.rdev = rdev;
	reply_new_entry(req, parent, name, &what);
}

void plyfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode)
{
	struct ply_new what = new_object(req, S_IFDIR | (mode & 07777));

	reply_new_entry(req, parent, name, &what);
}

void plyfs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		   const char *name)
{
	struct ply_new what = new_object(req, S_IFLNK | 0777);

	what.target = target;
	reply_new_entry(req, parent, name, &what);
}

void plyfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);
	struct ply_inode *dir = plyfs_inode(fs, parent);
	struct ply_new what = new_object(req, S_IFREG | (mode & 07777));
	struct fuse_entry_param e;
	int fd = -1, r;

	what.open_flags = plyfs_cached_write_flags(fs, fi->flags);
	r = ply_dirop_create(&fs->u, dir, name, &what, &fd);
	if (r >= 0)
		r = plyfs_do_lookup(fs, dir, name, &e);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		fuse_reply_err(req, -r);
		return;
	}
	r = plyfs_file_new(fs, fd, false, fi);
	if (r < 0) {
		close(fd);
		ply_inode_table_forget(&fs->table, plyfs_inode(fs, e.ino), 1);
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_create(req, &e, fi) < 0) {
		plyfs_file_free(fs, plyfs_file_of(fi));
		ply_inode_table_forget(&fs->table, plyfs_inode(fs, e.ino), 1);
	}
}

void plyfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname)
{
	struct plyfs *fs = plyfs_of(req);
	struct ply_inode *dir = plyfs_inode(fs, newparent);
	struct fuse_entry_param e;
	int r = ply_dirop_link(&fs->u, plyfs_inode(fs, ino), dir, newname);

	if (r >= 0)
		r = plyfs_do_lookup(fs, dir, newname, &e);
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (fuse_reply_entry(req, &e) < 0)
		ply_inode_table_forget(&fs->table, plyfs_inode(fs, e.ino), 1);
}

void plyfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct plyfs *fs = plyfs_of(req);

	fuse_reply_err(req, -ply_dirop_unlink(&fs->u, plyfs_inode(fs, parent),
					       name));
}

void plyfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct plyfs *fs = plyfs_of(req);

	fuse_reply_err(req, -ply_dirop_rmdir(&fs->u, plyfs_inode(fs, parent),
					      name));
}

void plyfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct plyfs *fs = plyfs_of(req);

	fuse_reply_err(req, -ply_dirop_rename(&fs->u, plyfs_inode(fs, parent),
					       name,
					       plyfs_inode(fs, newparent),
					       newname, flags));
}
