/* plyfs.h: the daemon's private header. fs/ translates FUSE requests into
 * libply calls and sends exactly one reply per request: each callback is a
 * thin wrapper around a do_X helper that returns -errno. */
#ifndef PLYFS_H
#define PLYFS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdio.h>

#include "ply.h"

struct plyfs {
	struct ply_stack stack;
	struct ply_inode_table table; /* its root is FUSE_ROOT_ID */
	double timeout;        /* entry and attr cache, seconds */
	bool read_only;
};

/* What the command line asked for (args.c). */
struct plyfs_cli {
	bool foreground, debug, single_thread, version, help;
	const char *source;
	const char *mountpoint;
	struct ply_options opts;
};

int plyfs_cli_parse(int argc, char **argv, struct plyfs_cli *cli,
		    struct ply_err *err);
void plyfs_usage(FILE *out);

static inline struct plyfs *plyfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct ply_inode *plyfs_inode(struct plyfs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return fs->table.root;
	return (struct ply_inode *)(uintptr_t)ino;
}

static inline fuse_ino_t plyfs_nodeid(struct plyfs *fs, struct ply_inode *i)
{
	return i == fs->table.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)i;
}

/* Brackets every use of an inode's parts: their fds are open and the
 * parts stay as they are until plyfs_done. */
static inline int plyfs_use(struct plyfs *fs, struct ply_inode *inode)
{
	int r = ply_inode_pin(&fs->table, inode);

	if (r >= 0)
		pthread_rwlock_rdlock(&inode->lock);
	return r;
}

static inline void plyfs_done(struct plyfs *fs, struct ply_inode *inode)
{
	pthread_rwlock_unlock(&inode->lock);
	ply_inode_unpin(&fs->table, inode);
}

/* ops-entry.c */
void plyfs_init(void *userdata, struct fuse_conn_info *conn);
void plyfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void plyfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void plyfs_forget_multi(fuse_req_t req, size_t count,
			struct fuse_forget_data *forgets);
void plyfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void plyfs_readlink(fuse_req_t req, fuse_ino_t ino);
void plyfs_statfs(fuse_req_t req, fuse_ino_t ino);
void plyfs_access(fuse_req_t req, fuse_ino_t ino, int mask);
/* Looks name up under parent and takes a kernel reference on the result. */
int plyfs_do_lookup(struct plyfs *fs, struct ply_inode *parent,
		    const char *name, struct fuse_entry_param *ret_e);

/* ops-dir.c */
void plyfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void plyfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void plyfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void plyfs_releasedir(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi);

/* ops-file.c */
void plyfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void plyfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void plyfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		 struct fuse_file_info *fi);
void plyfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void plyfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ops-xattr.c */
void plyfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size);
void plyfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

#endif
