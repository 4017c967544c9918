/* ops-file.c: open files. A handle is the real file's fd, reopened from
 * the object's O_PATH fd; reads are spliced from it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include "plyfs.h"
#include "sys.h"

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

int plyfs_cached_write_flags(const struct plyfs *fs, int flags)
{
	if (!fs->writeback)
		return flags;
	/* the kernel reads around partly written pages, and places appends
	 * itself: a pwrite on an O_APPEND fd would go to the end instead */
	if ((flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags & ~O_APPEND;
}

static void file_free(struct plyfs_handle *h)
{
	struct plyfs_file *f = (struct plyfs_file *)h;

	close(f->fd);
	if (f->old_fd >= 0)
		close(f->old_fd);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* Whether close(2) of fd can report nothing: its filesystem has no flush
 * of its own (NFS, CIFS, FUSE... write back or report errors on close).
 * Then a FLUSH at each close would be a round trip for nothing. */
static bool close_is_silent(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) < 0)
		return false;
	switch ((unsigned long)sfs.f_type) {
	case EXT4_SUPER_MAGIC: /* ext2 and ext3 too */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
	case F2FS_SUPER_MAGIC:
		return true;
	default:
		return false;
	}
}

int plyfs_file_new(struct plyfs *fs, int fd, bool lower,
		   struct fuse_file_info *fi)
{
	struct plyfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->h.free = file_free;
	f->fd = fd;
	f->lower = lower;
	f->old_fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	plyfs_handle_add(fs, &f->h);
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->noflush = !wants_write(fi->flags) || close_is_silent(fd);
	return 0;
}

void plyfs_file_free(struct plyfs *fs, struct plyfs_file *f)
{
	plyfs_handle_del(fs, &f->h);
	file_free(&f->h);
}

static bool data_in_upper(struct plyfs *fs, const struct ply_inode *inode)
{
	return fs->stack.layers[ply_upper_data_part(inode)->layer].is_upper;
}

/* A reader of a lower file moves to the upper copy once there is one. */
static void follow_copy_up(struct plyfs *fs, struct ply_inode *inode,
			   struct plyfs_file *f)
{
	int fd;

	if (!__atomic_load_n(&f->lower, __ATOMIC_ACQUIRE) ||
	    plyfs_use(fs, inode) < 0)
		return;
	pthread_mutex_lock(&f->lock);
	if (f->lower && data_in_upper(fs, inode)) {
		fd = ply_sys_reopen(ply_upper_data_part(inode)->fd, O_RDONLY);
		if (fd >= 0) {
			f->old_fd = f->fd; /* a read may still be using it */
			__atomic_store_n(&f->fd, fd, __ATOMIC_RELEASE);
			__atomic_store_n(&f->lower, false, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&f->lock);
	plyfs_done(fs, inode);
}

/* open(O_TRUNC) of a regular file clears setuid and setgid, as any
 * truncation by a caller without CAP_FSETID does. With atomic_o_trunc
 * (libfuse's default, kept: the O_TRUNC copy-up copies no data) the
 * kernel truncates inside the OPEN request, and the mode change it
 * computes for the truncation (fuse_setattr turns ATTR_KILL_SUID/SGID
 * into ATTR_MODE) is dropped in fuse_do_setattr's ATTR_OPEN branch: it
 * is the daemon's to make. The bits are those fuse_setattr clears:
 * S_ISUID always, S_ISGID only with S_IXGRP. Whether to clear them at all
 * depends on the caller's CAP_FSETID, which the daemon cannot see: it
 * takes uid 0 (of the mount's user namespace) to hold it and every other
 * uid not to, as the kernel assumes of each when it asks a FUSE daemon to
 * kill privileges (root's writes keep the bits, a user's clear them). A
 * root that dropped CAP_FSETID keeps them; a non-root holding it loses
 * them. The caller holds the inode (plyfs_use); its top part is the
 * upper copy just opened. */
static int kill_suid_sgid(struct plyfs *fs, struct ply_inode *inode)
{
	int fd = inode->parts[0].fd;
	struct stat shown, disk;
	mode_t kill = S_ISUID;
	int r = ply_object_stat(&fs->stack, inode->parts, inode->nparts,
				&shown);

	if (r < 0)
		return r;
	if ((shown.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	r = ply_sys_fstat(fd, &disk);
	if (r >= 0 && (disk.st_mode & kill))
		r = ply_sys_fchmod_fd(fd, disk.st_mode & 07777 & ~kill);
	/* xattr_permissions: the mode shown lives in the override xattr */
	if (r >= 0 && fs->stack.override_xattr && (shown.st_mode & kill))
		r = ply_override_write(fd, fs->stack.override_xattr,
				       shown.st_uid, shown.st_gid,
				       shown.st_mode & ~kill);
	return r;
}

static int do_open(struct plyfs *fs, struct ply_inode *inode, int flags,
		   bool kill_priv, int *ret_fd, bool *ret_lower)
{
	const struct ply_part *part;
	int fd, want;

	if (wants_write(flags)) {
		/* O_TRUNC throws the data away: copy none */
		fd = ply_upper_copy_up(&fs->u, inode,
				       (flags & O_TRUNC) ? PLY_COPYUP_EMPTY : 0);
		if (fd < 0)
			return fd;
	}
	fd = plyfs_use(fs, inode);
	if (fd < 0)
		return fd;
	part = wants_write(flags) ? &inode->parts[0] :
				    ply_upper_data_part(inode);
	/* reading must not touch a layer, not even its atimes; O_NOATIME
	 * needs ownership or CAP_FOWNER, so it is a wish, not a must */
	flags &= ~O_NOFOLLOW;
	want = plyfs_cached_write_flags(fs, flags);
	fd = ply_sys_reopen(part->fd, want | O_NOATIME);
	if (fd == -EPERM)
		fd = ply_sys_reopen(part->fd, want);
	if (fd == -EACCES && want != flags) /* write-only for its owner */
		fd = ply_sys_reopen(part->fd, flags);
	*ret_lower = !fs->stack.layers[part->layer].is_upper;
	if (fd >= 0 && kill_priv && (flags & O_TRUNC) && S_ISREG(inode->type)) {
		int r = kill_suid_sgid(fs, inode);

		if (r < 0) {
			close(fd);
			fd = r;
		}
	}
	plyfs_done(fs, inode);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

void plyfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);
	bool lower;
	int fd;
	/* see kill_suid_sgid: uid 0 is taken to hold CAP_FSETID */
	int r = do_open(fs, plyfs_inode(fs, ino), fi->flags,
			fuse_req_ctx(req)->uid != 0, &fd, &lower);

	if (r >= 0) {
		r = plyfs_file_new(fs, fd, lower, fi);
		if (r < 0)
			close(fd);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	/* every change goes through this mount, so cached pages stay true */
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) < 0)
		plyfs_file_free(fs, plyfs_file_of(fi));
}

void plyfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	follow_copy_up(fs, plyfs_inode(fs, ino), plyfs_file_of(fi));
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = plyfs_fd(fi);
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* SEEK_DATA and SEEK_HOLE answer from the real file, so sparse files
 * copy as sparse files. */
void plyfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		 struct fuse_file_info *fi)
{
	off_t pos = lseek(plyfs_fd(fi), off, whence);

	if (pos < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, pos);
}

/* close(2) of one of several descriptors, asked for only where the real
 * file's close may say something (close_is_silent): report what it would,
 * delayed write errors. */
void plyfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int fd = dup(plyfs_fd(fi));

	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_err(req, close(fd) < 0 ? errno : 0);
}

void plyfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	plyfs_file_free(plyfs_of(req), plyfs_file_of(fi));
	fuse_reply_err(req, 0);
}
