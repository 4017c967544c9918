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
/* Reopens an O_PATH fd with real access flags (through /proc/self/fd). */
int ply_sys_reopen(int fd, int flags);
int ply_sys_fstatat(int dirfd, const char *name, struct stat *st);
int ply_sys_fstat(int fd, struct stat *st);
ssize_t ply_sys_readlinkat(int dirfd, const char *name, char *buf, size_t size);
/* xattrs of the object an fd refers to, O_PATH fds and symlinks included. */
ssize_t ply_sys_fd_getxattr(int fd, const char *name, void *buf, size_t size);
ssize_t ply_sys_fd_listxattr(int fd, char *buf, size_t size);
ssize_t ply_sys_getdents(int fd, void *buf, size_t size);
int ply_sys_close(int fd);

#endif
