/* sys.c: the syscall wrappers of sys.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "sys.h"

static ply_sys_fault_hook fault_hook;

void ply_sys_set_fault_hook(ply_sys_fault_hook hook)
{
	fault_hook = hook;
}

#define FAULT_POINT(call)                                                \
	do {                                                             \
		if (fault_hook) {                                        \
			int fault_ = fault_hook(call);                   \
			if (fault_)                                      \
				return fault_;                           \
		}                                                        \
	} while (0)

static inline int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

int ply_sys_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	int fd;

	FAULT_POINT("openat");
	fd = openat(dirfd, name, flags | O_CLOEXEC, mode);
	return fd < 0 ? neg_errno() : fd;
}

int ply_sys_open_path(int dirfd, const char *name)
{
	return ply_sys_openat(dirfd, name, O_PATH | O_NOFOLLOW, 0);
}

static void proc_fd_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

int ply_sys_reopen(int fd, int flags)
{
	char path[64];
	int newfd;

	FAULT_POINT("reopen");
	proc_fd_path(path, sizeof(path), fd);
	newfd = open(path, (flags & ~(O_CREAT | O_EXCL | O_NOCTTY)) |
				   O_CLOEXEC);
	return newfd < 0 ? neg_errno() : newfd;
}

int ply_sys_fstatat(int dirfd, const char *name, struct stat *st)
{
	FAULT_POINT("fstatat");
	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

int ply_sys_fstat(int fd, struct stat *st)
{
	FAULT_POINT("fstat");
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

ssize_t ply_sys_readlinkat(int dirfd, const char *name, char *buf, size_t size)
{
	ssize_t n;

	FAULT_POINT("readlinkat");
	n = readlinkat(dirfd, name, buf, size);
	return n < 0 ? neg_errno() : n;
}

/* fgetxattr refuses O_PATH fds. getxattr through the /proc magic link
 * reaches the object the fd refers to, and for a symlink the link itself:
 * the jump lands on the object and is not resolved any further. */
ssize_t ply_sys_fd_getxattr(int fd, const char *name, void *buf, size_t size)
{
	char path[64];
	ssize_t n;

	FAULT_POINT("getxattr");
	proc_fd_path(path, sizeof(path), fd);
	n = getxattr(path, name, buf, size);
	return n < 0 ? neg_errno() : n;
}

ssize_t ply_sys_fd_listxattr(int fd, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	FAULT_POINT("listxattr");
	proc_fd_path(path, sizeof(path), fd);
	n = listxattr(path, buf, size);
	return n < 0 ? neg_errno() : n;
}

ssize_t ply_sys_getdents(int fd, void *buf, size_t size)
{
	ssize_t n;

	FAULT_POINT("getdents");
	n = syscall(SYS_getdents64, fd, buf, size);
	return n < 0 ? neg_errno() : n;
}

int ply_sys_close(int fd)
{
	if (fd >= 0)
		close(fd);
	return 0;
}
