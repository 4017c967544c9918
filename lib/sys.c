/* sys.c: the syscall wrappers of sys.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
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

/* A readable fd lets the xattr calls below skip the /proc path walk,
 * which costs ten times the call itself. Without read permission the
 * directory is held like any other object. */
int ply_sys_open_dir(int dirfd, const char *name)
{
	int fd = ply_sys_openat(dirfd, name,
				O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);

	if (fd == -EACCES || fd == -EPERM)
		fd = ply_sys_openat(dirfd, name, O_PATH | O_NOFOLLOW, 0);
	return fd;
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

/* fgetxattr refuses O_PATH fds (EBADF). getxattr through the /proc magic link
 * reaches the object the fd refers to, and for a symlink the link itself:
 * the jump lands on the object and is not resolved any further. */
ssize_t ply_sys_fd_getxattr(int fd, const char *name, void *buf, size_t size)
{
	char path[64];
	ssize_t n;

	FAULT_POINT("getxattr");
	n = fgetxattr(fd, name, buf, size);
	if (n < 0 && errno == EBADF) {
		proc_fd_path(path, sizeof(path), fd);
		n = getxattr(path, name, buf, size);
	}
	return n < 0 ? neg_errno() : n;
}

#ifndef SYS_getxattrat
#define SYS_getxattrat 464 /* Linux 6.13, one number on every architecture */
#endif

struct xattrat_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

static atomic_bool no_getxattrat;

/* getxattrat(2) reaches dirfd/name without the /proc walk, in half the
 * time; older kernels take the walk. Neither follows a final symlink.
 * A seccomp filter may refuse a syscall it does not know with EPERM: when
 * the walk then gets past that, getxattrat is given up as missing. */
ssize_t ply_sys_getxattrat(int dirfd, const char *name, const char *xname,
			   void *buf, size_t size)
{
	struct xattrat_args args = {
		.value = (uintptr_t)buf,
		.size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size,
	};
	char path[64 + NAME_MAX];
	ssize_t n;

	FAULT_POINT("getxattr");
	if (!atomic_load_explicit(&no_getxattrat, memory_order_relaxed)) {
		n = syscall(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW,
			    xname, &args, sizeof(args));
		if (n >= 0 || (errno != ENOSYS && errno != EPERM))
			return n < 0 ? neg_errno() : n;
		if (errno == ENOSYS)
			atomic_store(&no_getxattrat, true);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	n = lgetxattr(path, xname, buf, size);
	if (n >= 0 || errno != EPERM)
		atomic_store(&no_getxattrat, true);
	return n < 0 ? neg_errno() : n;
}

ssize_t ply_sys_fd_listxattr(int fd, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	FAULT_POINT("listxattr");
	n = flistxattr(fd, buf, size);
	if (n < 0 && errno == EBADF) {
		proc_fd_path(path, sizeof(path), fd);
		n = listxattr(path, buf, size);
	}
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

/* ---- changing calls ----------------------------------------------------- */

#define RET_INT(expr)                                                    \
	do {                                                             \
		if ((expr) < 0)                                          \
			return neg_errno();                              \
		return 0;                                                \
	} while (0)

int ply_sys_mkdirat(int dirfd, const char *name, mode_t mode)
{
	FAULT_POINT("mkdirat");
	RET_INT(mkdirat(dirfd, name, mode));
}

int ply_sys_mknodat(int dirfd, const char *name, mode_t mode, dev_t dev)
{
	FAULT_POINT("mknodat");
	RET_INT(mknodat(dirfd, name, mode, dev));
}

int ply_sys_symlinkat(const char *target, int dirfd, const char *name)
{
	FAULT_POINT("symlinkat");
	RET_INT(symlinkat(target, dirfd, name));
}

int ply_sys_linkat(int olddirfd, const char *oldname, int newdirfd,
		   const char *newname, int flags)
{
	FAULT_POINT("linkat");
	RET_INT(linkat(olddirfd, oldname, newdirfd, newname, flags));
}

int ply_sys_unlinkat(int dirfd, const char *name, int flags)
{
	FAULT_POINT("unlinkat");
	RET_INT(unlinkat(dirfd, name, flags));
}

int ply_sys_renameat2(int olddirfd, const char *oldname, int newdirfd,
		      const char *newname, unsigned int flags)
{
	FAULT_POINT("renameat2");
	RET_INT(renameat2(olddirfd, oldname, newdirfd, newname, flags));
}

int ply_sys_fchownat_fd(int fd, uid_t uid, gid_t gid)
{
	FAULT_POINT("fchownat");
	RET_INT(fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

int ply_sys_fchmod_fd(int fd, mode_t mode)
{
	char path[64];

	FAULT_POINT("fchmod");
	/* fchmod refuses O_PATH fds; chmod through /proc reaches the object
	 * (a symlink's mode cannot be changed, and is not asked for) */
	proc_fd_path(path, sizeof(path), fd);
	RET_INT(chmod(path, mode));
}

int ply_sys_futimens_fd(int fd, const struct timespec times[2])
{
	FAULT_POINT("utimensat");
	RET_INT(utimensat(fd, "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

int ply_sys_fd_setxattr(int fd, const char *name, const void *value,
			size_t size, int flags)
{
	char path[64];

	FAULT_POINT("setxattr");
	proc_fd_path(path, sizeof(path), fd);
	RET_INT(setxattr(path, name, value, size, flags));
}

int ply_sys_fd_removexattr(int fd, const char *name)
{
	char path[64];

	FAULT_POINT("removexattr");
	proc_fd_path(path, sizeof(path), fd);
	RET_INT(removexattr(path, name));
}

int ply_sys_ftruncate(int fd, off_t length)
{
	FAULT_POINT("ftruncate");
	RET_INT(ftruncate(fd, length));
}

int ply_sys_fsync(int fd)
{
	FAULT_POINT("fsync");
	RET_INT(fsync(fd));
}

int ply_sys_fdatasync(int fd)
{
	FAULT_POINT("fdatasync");
	RET_INT(fdatasync(fd));
}

int ply_sys_syncfs(int fd)
{
	FAULT_POINT("syncfs");
	RET_INT(syncfs(fd));
}

int ply_sys_fallocate(int fd, int mode, off_t offset, off_t len)
{
	FAULT_POINT("fallocate");
	RET_INT(fallocate(fd, mode, offset, len));
}

ssize_t ply_sys_pread(int fd, void *buf, size_t size, off_t off)
{
	ssize_t n;

	FAULT_POINT("pread");
	n = pread(fd, buf, size, off);
	return n < 0 ? neg_errno() : n;
}

ssize_t ply_sys_pwrite(int fd, const void *buf, size_t size, off_t off)
{
	ssize_t n;

	FAULT_POINT("pwrite");
	n = pwrite(fd, buf, size, off);
	return n < 0 ? neg_errno() : n;
}

ssize_t ply_sys_copy_file_range(int fd_in, off_t *off_in, int fd_out,
				off_t *off_out, size_t len)
{
	ssize_t n;

	FAULT_POINT("copy_file_range");
	n = copy_file_range(fd_in, off_in, fd_out, off_out, len, 0);
	return n < 0 ? neg_errno() : n;
}

int ply_sys_clone(int dst_fd, int src_fd)
{
	FAULT_POINT("ficlone");
	RET_INT(ioctl(dst_fd, FICLONE, src_fd));
}

off_t ply_sys_lseek(int fd, off_t off, int whence)
{
	off_t pos;

	FAULT_POINT("lseek");
	pos = lseek(fd, off, whence);
	return pos < 0 ? neg_errno() : pos;
}

/* added for copy-up */
int ply_sys_flock(int fd, int operation)
{
	FAULT_POINT("flock");
	RET_INT(flock(fd, operation));
}
