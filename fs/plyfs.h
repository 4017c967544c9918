/* plyfs.h: the daemon's private header. fs/ translates FUSE requests into
 * libply calls and sends exactly one reply per request: each callback is a
 * thin wrapper around a do_X helper that returns -errno. */
#ifndef PLYFS_H
#define PLYFS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdio.h>

#include "ply.h"

/* Every open file and directory handle, listed so that those the kernel
 * never released (a release in flight when the session ends) are freed
 * at exit (handles.c). */
struct plyfs_handle {
	struct plyfs_handle *prev, *next;
	void (*free)(struct plyfs_handle *h);
};

struct plyfs {
	struct ply_stack stack;
	struct ply_inode_table table; /* its root is FUSE_ROOT_ID */
	struct ply_workdir work;      /* with an upper layer */
	struct ply_union u;           /* what changing operations use */
	double timeout;        /* entry and attr cache, seconds */
	bool read_only;
	bool volatile_mount; /* unmark WORKDIR on a clean stop */
	bool acl;            /* the kernel enforces POSIX ACLs */
	bool writeback;      /* the kernel's writeback cache is on */
	/* with it, a file's mtime is the kernel's to set: a write from its
	 * page cache keeps the mtime, and the SETATTR that carries the
	 * kernel's mtime must not be overtaken by one (ops-write.c) */
	pthread_mutex_t mtime_locks[16];
	/* how owners are shown (present.c) */
	const struct ply_idmap *uidmap, *gidmap;
	int64_t squash_uid, squash_gid; /* -1: none */
	bool static_nlink;
	/* splices (splices.c) */
	struct ply_volstore store;  /* fd -1 until a volume needs it */
	const char *volstore_path;  /* volstore=, or NULL: the default */
	int *volume_locks;          /* held while the volumes are in use */
	size_t nvolume_locks;
	bool rw_splices;            /* writable even without an upper */
	pthread_mutex_t handles_lock;
	struct plyfs_handle handles; /* the list's head */
	size_t forgotten; /* inodes freed since malloc last gave memory back
			   * (atomic) */
};

int plyfs_setup_splices(struct plyfs *fs, const struct ply_options *opts,
			const char *mountpoint, struct ply_err *err);
void plyfs_release_splices(struct plyfs *fs);

/* registry.c: the record of this mount that plyctl MNT reads, published
 * once mounted, its pid made the daemon's by plyfs_registry_daemonize (in
 * place of fuse_daemonize), removed after the session loop. */
void plyfs_registry_publish(struct plyfs *fs, const struct ply_options *opts,
			    const char *mountpoint);
int plyfs_registry_daemonize(bool foreground);
void plyfs_registry_remove(void);

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

/* The merged listing of inode, read now or the one kept since its last
 * change; kept for the next reader. The caller is between plyfs_use and
 * plyfs_done of inode, and puts the listing. */
int plyfs_read_listing(struct plyfs *fs, struct ply_inode *inode,
		       struct ply_dir **ret);

/* An open file (ops-file.c). A read-only open of a lower file follows the
 * file to its upper copy when another open copies it up, so that every
 * reader sees what the writers wrote. */
struct plyfs_file {
	struct plyfs_handle h; /* first: the handle list's view of it */
	int fd;
	bool lower;      /* fd is a lower layer's file */
	int old_fd;      /* the lower fd after the switch, closed at release */
	pthread_mutex_t lock; /* the switch */
};

/* The flags to open a file with for the writer's flags: with the
 * writeback cache, write-only becomes read-write and O_APPEND goes. */
int plyfs_cached_write_flags(const struct plyfs *fs, int flags);
int plyfs_file_new(struct plyfs *fs, int fd, bool lower,
		   struct fuse_file_info *fi);
static inline struct plyfs_file *plyfs_file_of(struct fuse_file_info *fi)
{
	return (struct plyfs_file *)(uintptr_t)fi->fh;
}
static inline int plyfs_fd(struct fuse_file_info *fi)
{
	return __atomic_load_n(&plyfs_file_of(fi)->fd, __ATOMIC_ACQUIRE);
}
void plyfs_file_free(struct plyfs *fs, struct plyfs_file *f);

void plyfs_handle_add(struct plyfs *fs, struct plyfs_handle *h);
void plyfs_handle_del(struct plyfs *fs, struct plyfs_handle *h);
void plyfs_handles_free_all(struct plyfs *fs);

/* Is inode inside a splice: a plain tree where no name or xattr is one
 * of our markers? */
static inline bool plyfs_in_splice(struct plyfs *fs, struct ply_inode *inode)
{
	bool plain;

	pthread_rwlock_rdlock(&inode->lock);
	plain = inode->nparts &&
		fs->stack.layers[inode->parts[0].layer].is_splice;
	pthread_rwlock_unlock(&inode->lock);
	return plain;
}

/* present.c: attributes as the mount shows them, and ids as the disk
 * stores them. */
void plyfs_present(const struct plyfs *fs, struct stat *st);
uid_t plyfs_disk_uid(const struct plyfs *fs, uid_t uid);
gid_t plyfs_disk_gid(const struct plyfs *fs, gid_t gid);

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
/* The same, knowing from a listing the layer where name first stands
 * (-1: unknown). */
int plyfs_do_lookup_hint(struct plyfs *fs, struct ply_inode *parent,
			 const char *name, int layer_hint,
			 struct fuse_entry_param *ret_e);

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

/* ops-namespace.c */
void plyfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, dev_t rdev);
void plyfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode);
void plyfs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		   const char *name);
void plyfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi);
void plyfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname);
void plyfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void plyfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void plyfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname,
		  unsigned int flags);

/* ops-write.c */
void plyfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int to_set, struct fuse_file_info *fi);
void plyfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		     off_t off, struct fuse_file_info *fi);
void plyfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		     off_t length, struct fuse_file_info *fi);
void plyfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			   struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			   off_t off_out, struct fuse_file_info *fi_out,
			   size_t len, int flags);
void plyfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void plyfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		    struct fuse_file_info *fi);
void plyfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags);
void plyfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ops-xattr.c */
void plyfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size);
void plyfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

#endif
