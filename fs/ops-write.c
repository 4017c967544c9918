/* ops-write.c: the FUSE operations that change an object's data or
 * metadata: setattr, write_buf, fallocate, copy_file_range, fsync,
 * fsyncdir, setxattr, removexattr. Each copies the object up first, with
 * its data only when the data is what changes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "plyfs.h"
#include "sys.h"

static int apply_times(int fd, const struct stat *attr, int to_set)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_nsec = UTIME_OMIT } };

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	return ply_sys_futimens_fd(fd, tv);
}

static int apply_size(int fd, off_t size, struct fuse_file_info *fi)
{
	int wfd, r;

	if (fi)
		return ply_sys_ftruncate(plyfs_fd(fi), size);
	wfd = ply_sys_reopen(fd, O_WRONLY);
	if (wfd < 0)
		return wfd;
	r = ply_sys_ftruncate(wfd, size);
	close(wfd);
	return r;
}

/* With xattr_permissions, chown and chmod land in the override xattr;
 * the file on disk keeps the access the daemon needs. */
static int apply_owner_mode(struct plyfs *fs, struct ply_inode *inode,
			    const struct stat *attr, int to_set)
{
	int fd = inode->parts[0].fd, r = 0;
	uid_t uid = (to_set & FUSE_SET_ATTR_UID) ?
			    plyfs_disk_uid(fs, attr->st_uid) :
			    (uid_t)-1;
	gid_t gid = (to_set & FUSE_SET_ATTR_GID) ?
			    plyfs_disk_gid(fs, attr->st_gid) :
			    (gid_t)-1;
	struct stat cur;

	if (!fs->stack.override_xattr) {
		if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
			r = ply_sys_fchownat_fd(fd, uid, gid);
		if (r >= 0 && (to_set & FUSE_SET_ATTR_MODE))
			r = ply_sys_fchmod_fd(fd, attr->st_mode & 07777);
		return r;
	}
	r = ply_object_stat(&fs->stack, inode->parts, inode->nparts, &cur);
	if (r < 0)
		return r;
	if (uid != (uid_t)-1)
		cur.st_uid = uid;
	if (gid != (gid_t)-1)
		cur.st_gid = gid;
	if (to_set & FUSE_SET_ATTR_MODE) {
		cur.st_mode = (cur.st_mode & S_IFMT) | (attr->st_mode & 07777);
		if (!S_ISLNK(cur.st_mode))
			r = ply_sys_fchmod_fd(fd, (attr->st_mode & 07777) |
							  S_IRUSR | S_IWUSR |
							  (S_ISDIR(cur.st_mode) ?
								   S_IXUSR :
								   0));
	}
	if (r >= 0)
		r = ply_override_write(fd, fs->stack.override_xattr, cur.st_uid,
				       cur.st_gid, cur.st_mode);
	return r;
}

static pthread_mutex_t *mtime_lock(struct plyfs *fs,
				   const struct ply_inode *inode)
{
	return &fs->mtime_locks[inode->ino %
				(sizeof(fs->mtime_locks) /
				 sizeof(*fs->mtime_locks))];
}

static int do_setattr(struct plyfs *fs, struct ply_inode *inode,
		      const struct stat *attr, int to_set,
		      struct fuse_file_info *fi, struct stat *ret_st)
{
	unsigned flags = PLY_COPYUP_METACOPY;
	int fd, r;

	if (to_set & FUSE_SET_ATTR_SIZE)
		flags = attr->st_size == 0 ? PLY_COPYUP_EMPTY : 0;
	r = ply_upper_copy_up(&fs->u, inode, flags);
	if (r < 0)
		return r;
	r = plyfs_use(fs, inode);
	if (r < 0)
		return r;
	fd = inode->parts[0].fd;
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_MODE))
		r = apply_owner_mode(fs, inode, attr, to_set);
	if (r >= 0 && (to_set & FUSE_SET_ATTR_SIZE))
		r = apply_size(fd, attr->st_size, fi);
	if (r >= 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
				 FUSE_SET_ATTR_ATIME_NOW |
				 FUSE_SET_ATTR_MTIME_NOW))) {
		pthread_mutex_lock(mtime_lock(fs, inode));
		r = apply_times(fd, attr, to_set);
		pthread_mutex_unlock(mtime_lock(fs, inode));
	}
	if (r >= 0)
		r = ply_inode_stat(&fs->stack, inode, ret_st);
	plyfs_done(fs, inode);
	if (r >= 0)
		plyfs_present(fs, ret_st);
	return r;
}

void plyfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int to_set, struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);
	struct stat st;
	int r = do_setattr(fs, plyfs_inode(fs, ino), attr, to_set, fi, &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

/* A write from the kernel's page cache (writeback cache) keeps the file's
 * mtime: the kernel set its own at write(2) time and sends it in a
 * SETATTR of its own, or sends none when the clock had not moved on. */
static ssize_t write_keeping_mtime(struct plyfs *fs, struct ply_inode *inode,
				   struct fuse_bufvec *out,
				   struct fuse_bufvec *in)
{
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT } };
	struct stat st;
	ssize_t n;
	int r;

	pthread_mutex_lock(mtime_lock(fs, inode));
	r = ply_sys_fstat(out->buf[0].fd, &st);
	n = r < 0 ? r : fuse_buf_copy(out, in, 0);
	if (n > 0) {
		times[1] = st.st_mtim;
		r = ply_sys_futimens_fd(out->buf[0].fd, times);
		if (r < 0)
			n = r;
	}
	pthread_mutex_unlock(mtime_lock(fs, inode));
	return n;
}

void plyfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		     off_t off, struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t n;

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = plyfs_fd(fi);
	out.buf[0].pos = off;
	if (fs->writeback && fi->writepage)
		n = write_keeping_mtime(fs, plyfs_inode(fs, ino), &out, in);
	else
		n = fuse_buf_copy(&out, in, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void plyfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		     off_t length, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -ply_sys_fallocate(plyfs_fd(fi), mode, offset,
						length));
}

void plyfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			   struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			   off_t off_out, struct fuse_file_info *fi_out,
			   size_t len, int flags)
{
	ssize_t n;

	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = ply_sys_copy_file_range(plyfs_fd(fi_in), &off_in, plyfs_fd(fi_out),
				    &off_out, len);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void plyfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	int fd = plyfs_fd(fi);

	fuse_reply_err(req, -(datasync ? ply_sys_fdatasync(fd) :
					 ply_sys_fsync(fd)));
}

static int do_fsyncdir(struct plyfs *fs, struct ply_inode *inode, int datasync)
{
	int fd, r = plyfs_use(fs, inode);

	if (r < 0)
		return r;
	if (inode->nparts &&
	    (fs->stack.layers[inode->parts[0].layer].is_upper ||
	     fs->stack.layers[inode->parts[0].layer].is_splice)) {
		fd = ply_sys_reopen(inode->parts[0].fd,
				    O_RDONLY | O_DIRECTORY);
		r = fd < 0 ? fd :
			     (datasync ? ply_sys_fdatasync(fd) :
					 ply_sys_fsync(fd));
		if (fd >= 0)
			close(fd);
	}
	plyfs_done(fs, inode);
	return r;
}

void plyfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		    struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);

	fuse_reply_err(req, -do_fsyncdir(fs, plyfs_inode(fs, ino), datasync));
}

static int change_xattr(struct plyfs *fs, struct ply_inode *inode,
			const char *name, const void *value, size_t size,
			int flags, bool remove)
{
	int r;

	if (ply_xattr_is_private(name) && !plyfs_in_splice(fs, inode))
		return -EPERM; /* as overlayfs answers for its own */
	r = ply_upper_copy_up(&fs->u, inode, PLY_COPYUP_METACOPY);
	if (r < 0)
		return r;
	r = plyfs_use(fs, inode);
	if (r < 0)
		return r;
	if (remove)
		r = ply_sys_fd_removexattr(inode->parts[0].fd, name);
	else
		r = ply_sys_fd_setxattr(inode->parts[0].fd, name, value, size,
					flags);
	plyfs_done(fs, inode);
	return r;
}

void plyfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags)
{
	struct plyfs *fs = plyfs_of(req);

	fuse_reply_err(req, -change_xattr(fs, plyfs_inode(fs, ino), name,
					  value, size, flags, false));
}

void plyfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct plyfs *fs = plyfs_of(req);

	fuse_reply_err(req, -change_xattr(fs, plyfs_inode(fs, ino), name, NULL,
					  0, 0, true));
}
