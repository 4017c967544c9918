/* sys.h: every call lib/ makes on a real filesystem goes through one of
 * these wrappers. They return -errno instead of setting errno, never follow
 * a symlink unless told, and are the single place to log or inject faults. */
#ifndef PLY_SYS_H
#define PLY_SYS_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Fault injection for tests: when set, called before each wrapped call
 * with the call's name; a non-zero return is used as the call's -errno. */
typedef int (*ply_sys_fault_hook)(const char *call);
void ply_sys_set_fault_hook(ply_sys_fault_hook hook);

int ply_sys_openat(int dirfd, const char *name, int flags, mode_t mode);
/* Opens dirfd/name as O_PATH|O_NOFOLLOW. */
int ply_sys_open_path(int dirfd, const char *name);
/* Opens the directory dirfd/name readable (O_PATH when it may not be
 * read); never follows a symlink. */
int ply_sys_open_dir(int dirfd, const char *name);
/* Reopens an O_PATH fd with real access flags (through /proc/self/fd). */
int ply_sys_reopen(int fd, int flags);
int ply_sys_fstatat(int dirfd, const char *name, struct stat *st);
int ply_sys_fstat(int fd, struct stat *st);
ssize_t ply_sys_readlinkat(int dirfd, const char *name, char *buf, size_t size);
/* xattrs of the object an fd refers to, O_PATH fds and symlinks included. */
ssize_t ply_sys_fd_getxattr(int fd, const char *name, void *buf, size_t size);
ssize_t ply_sys_fd_listxattr(int fd, char *buf, size_t size);
/* getxattr of dirfd/name, name a single component, not followed. */
ssize_t ply_sys_getxattrat(int dirfd, const char *name, const char *xname,
			   void *buf, size_t size);
ssize_t ply_sys_getdents(int fd, void *buf, size_t size);
int ply_sys_close(int fd);

/* ---- changing calls: the writable layer, copy-up, markers --------------- */
int ply_sys_mkdirat(int dirfd, const char *name, mode_t mode);
int ply_sys_mknodat(int dirfd, const char *name, mode_t mode, dev_t dev);
int ply_sys_symlinkat(const char *target, int dirfd, const char *name);
int ply_sys_linkat(int olddirfd, const char *oldname, int newdirfd,
		   const char *newname, int flags);
int ply_sys_unlinkat(int dirfd, const char *name, int flags);
int ply_sys_renameat2(int olddirfd, const char *oldname, int newdirfd,
		      const char *newname, unsigned int flags);
/* Changes the object an fd refers to (O_PATH fds included, through
 * /proc where the call needs a real fd). */
int ply_sys_fchownat_fd(int fd, uid_t uid, gid_t gid);
int ply_sys_fchmod_fd(int fd, mode_t mode);
int ply_sys_futimens_fd(int fd, const struct timespec times[2]);
int ply_sys_fd_setxattr(int fd, const char *name, const void *value,
			size_t size, int flags);
int ply_sys_fd_removexattr(int fd, const char *name);
int ply_sys_ftruncate(int fd, off_t length);
int ply_sys_fsync(int fd);
int ply_sys_fdatasync(int fd);
int ply_sys_syncfs(int fd);
int ply_sys_fallocate(int fd, int mode, off_t offset, off_t len);
ssize_t ply_sys_pread(int fd, void *buf, size_t size, off_t off);
ssize_t ply_sys_pwrite(int fd, const void *buf, size_t size, off_t off);
ssize_t ply_sys_copy_file_range(int fd_in, off_t *off_in, int fd_out,
				off_t *off_out, size_t len);
/* FICLONE: share all of src's extents with dst. */
int ply_sys_clone(int dst_fd, int src_fd);
off_t ply_sys_lseek(int fd, off_t off, int whence);

/* added for copy-up */
/* flock(2) on an fd (a directory fd included). */
int ply_sys_flock(int fd, int operation);

#endif
