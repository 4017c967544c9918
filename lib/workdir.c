/* workdir.c: the work directory of a stack: its lock (one mount per workdir
 * and per upperdir), its work/ and index/ subdirectories, the temporary
 * names copy-up builds under, and the cleaning of what a crash left. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

#define PLY_LOCK_FILE ".plyfs.lock"
#define PLY_TEMP_PREFIX_LEN (sizeof(PLY_TEMP_PREFIX) - 1)

/* ---- temporary names ----------------------------------------------------- */

/* Used only when getrandom fails: unique within the process by the
 * counter, across processes by the pid and the time. */
static uint64_t fallback_random(void)
{
	static uint64_t counter;
	uint64_t n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_sec << 32) ^
	       (uint64_t)ts.tv_nsec ^ (n * 0x9e3779b97f4a7c15ULL);
}

void ply_workdir_temp_name(char *buf, size_t size)
{
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = fallback_random();
	snprintf(buf, size, PLY_TEMP_PREFIX "%016llx", (unsigned long long)v);
}

/* ---- cleaning work/ ------------------------------------------------------ */

static int remove_entry(int dirfd, const char *name, unsigned char type);

/* Removes everything inside the directory dfd (opened for reading).
 * Entries are removed while the directory is read, so it is read again
 * until a pass finds nothing left. */
static int remove_contents(int dfd)
{
	char *buf = malloc(32768);
	bool removed = true;
	ssize_t n = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	while (removed && r >= 0) {
		removed = false;
		r = (int)ply_sys_lseek(dfd, 0, SEEK_SET);
		while (r >= 0 && (n = ply_sys_getdents(dfd, buf, 32768)) > 0) {
			for (ssize_t pos = 0; pos < n && r >= 0;) {
				struct dirent *de;

				de = (struct dirent *)(buf + pos);
				pos += de->d_reclen;
				if (!strcmp(de->d_name, ".") ||
				    !strcmp(de->d_name, ".."))
					continue;
				r = remove_entry(dfd, de->d_name, de->d_type);
				removed = true;
			}
		}
		if (r >= 0 && n < 0)
			r = (int)n;
	}
	free(buf);
	return r;
}

static int remove_dir(int dirfd, const char *name)
{
	struct stat st;
	int dfd, r;

	/* a directory copy-up may have crashed after its chmod: make the
	 * temporary ours to empty again (it never leaves work/) */
	dfd = ply_sys_open_path(dirfd, name);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	r = ply_sys_fstat(dfd, &st);
	if (r >= 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0700) != 0700)
		ply_sys_fchmod_fd(dfd, 0700);
	ply_sys_close(dfd);
	/* O_NOFOLLOW: a symlink swapped in is never entered */
	dfd = ply_sys_openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
			     0);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	r = remove_contents(dfd);
	ply_sys_close(dfd);
	if (r < 0)
		return r;
	r = ply_sys_unlinkat(dirfd, name, AT_REMOVEDIR);
	return r == -ENOENT ? 0 : r;
}

/* Removes dirfd/name, a directory with all it holds; symlinks are removed,
 * never followed. */
static int remove_entry(int dirfd, const char *name, unsigned char type)
{
	int r;

	if (type == DT_DIR)
		return remove_dir(dirfd, name);
	r = ply_sys_unlinkat(dirfd, name, 0);
	if (r == -EISDIR)
		return remove_dir(dirfd, name);
	return r == -ENOENT ? 0 : r;
}

/* Removes the "#plyfs-*" entries of work/; other names (the kernel's
 * overlayfs keeps its own there) are left alone. */
static int clean_work(int workfd)
{
	char *buf = malloc(32768);
	ssize_t n = 0;
	int dfd, r = 0;

	if (!buf)
		return -ENOMEM;
	dfd = ply_sys_openat(workfd, ".", O_RDONLY | O_DIRECTORY, 0);
	if (dfd < 0) {
		free(buf);
		return dfd;
	}
	/* a removed entry is not listed again: one pass is enough, and an
	 * entry that cannot be removed does not stop the others */
	while ((n = ply_sys_getdents(dfd, buf, 32768)) > 0) {
		for (ssize_t pos = 0; pos < n;) {
			struct dirent *de = (struct dirent *)(buf + pos);
			int e;

			pos += de->d_reclen;
			if (strncmp(de->d_name, PLY_TEMP_PREFIX,
				    PLY_TEMP_PREFIX_LEN))
				continue;
			e = remove_entry(dfd, de->d_name, de->d_type);
			if (e < 0 && r >= 0)
				r = e;
		}
	}
	if (n < 0 && r >= 0)
		r = (int)n;
	ply_sys_close(dfd);
	free(buf);
	return r;
}

/* ---- opening and locking ------------------------------------------------- */

/* Takes an exclusive, non-blocking flock on fd: -EBUSY when held. */
static int lock_fd(int fd)
{
	int r = ply_sys_flock(fd, LOCK_EX | LOCK_NB);

	return r == -EWOULDBLOCK ? -EBUSY : r;
}

static int lock_workdir(const struct ply_stack *stack, int *ret_fd,
			struct ply_err *err)
{
	int fd, r;

	fd = ply_sys_openat(stack->workfd, PLY_LOCK_FILE,
			    O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
	if (fd < 0)
		return ply_err_set(err, fd, "workdir %s: cannot open %s: %s",
				   stack->workdir, PLY_LOCK_FILE,
				   strerror(-fd));
	r = lock_fd(fd);
	if (r < 0) {
		ply_sys_close(fd);
		if (r == -EBUSY)
			return ply_err_set(err, r,
					   "workdir %s is in use by another mount",
					   stack->workdir);
		return ply_err_set(err, r, "workdir %s: cannot lock: %s",
				   stack->workdir, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

/* flock works on a directory fd: a second mount of the same upper with
 * another workdir is refused too. */
static int lock_upper(const struct ply_stack *stack, int *ret_fd,
		      struct ply_err *err)
{
	const char *upper = stack->layers[0].path;
	int fd, r;

	fd = ply_sys_openat(stack->layers[0].fd, ".", O_RDONLY | O_DIRECTORY,
			    0);
	if (fd < 0)
		return ply_err_set(err, fd, "upperdir %s: cannot open: %s",
				   upper, strerror(-fd));
	r = lock_fd(fd);
	if (r < 0) {
		/* mounts hold their lower layers with LOCK_SH: a shared
		 * lock we can join says the upper is one of those */
		bool lower_elsewhere =
			r == -EBUSY &&
			ply_sys_flock(fd, LOCK_SH | LOCK_NB) == 0;

		ply_sys_close(fd);
		if (lower_elsewhere)
			return ply_err_set(err, -EBUSY,
					   "upperdir %s is a lower layer of another mount",
					   upper);
		if (r == -EBUSY)
			return ply_err_set(err, r,
					   "upperdir %s is in use by another mount",
					   upper);
		return ply_err_set(err, r, "upperdir %s: cannot lock: %s",
				   upper, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

/* Creates WORKDIR/name (mode 0700) if missing and opens it as O_PATH. */
static int open_subdir(const struct ply_stack *stack, int wfd,
		       const char *name, int *ret_fd, struct ply_err *err)
{
	int r = ply_sys_mkdirat(wfd, name, 0700);
	int fd;

	if (r < 0 && r != -EEXIST)
		return ply_err_set(err, r, "workdir %s: cannot create %s: %s",
				   stack->workdir, name, strerror(-r));
	fd = ply_sys_openat(wfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return ply_err_set(err, fd, "workdir %s: cannot open %s: %s",
				   stack->workdir, name, strerror(-fd));
	*ret_fd = fd;
	return 0;
}

static void workdir_init(struct ply_workdir *wd)
{
	wd->fd = -1;
	wd->workfd = -1;
	wd->lockfd = -1;
	wd->upper_lockfd = -1;
}

int ply_workdir_open(const struct ply_stack *stack, struct ply_workdir *ret,
		     struct ply_err *err)
{
	struct ply_workdir wd;
	int indexfd = -1;
	int r;

	if (stack->workfd < 0 || !stack->has_upper)
		return ply_err_set(err, -EINVAL,
				   "a work directory needs upperdir and workdir");
	workdir_init(&wd);
	/* lock before anything is created or cleaned: the temporaries in
	 * work/ may belong to a live mount until then */
	r = lock_workdir(stack, &wd.lockfd, err);
	if (r < 0)
		goto fail;
	r = lock_upper(stack, &wd.upper_lockfd, err);
	if (r < 0)
		goto fail;
	wd.fd = ply_sys_openat(stack->workfd, ".", O_PATH | O_DIRECTORY, 0);
	if (wd.fd < 0) {
		r = ply_err_set(err, wd.fd, "workdir %s: cannot open: %s",
				stack->workdir, strerror(-wd.fd));
		goto fail;
	}
	r = open_subdir(stack, wd.fd, PLY_WORK_SUBDIR, &wd.workfd, err);
	if (r < 0)
		goto fail;
	r = open_subdir(stack, wd.fd, PLY_INDEX_SUBDIR, &indexfd, err);
	if (r < 0)
		goto fail;
	ply_sys_close(indexfd);
	/* a leftover temporary only costs space: report, do not refuse */
	r = clean_work(wd.workfd);
	if (r < 0)
		ply_debug("workdir %s: cleaning %s: %s", stack->workdir,
			  PLY_WORK_SUBDIR, strerror(-r));
	*ret = wd;
	return 0;
fail:
	ply_workdir_close(&wd);
	return r;
}

void ply_workdir_close(struct ply_workdir *wd)
{
	ply_sys_close(wd->workfd);
	ply_sys_close(wd->fd);
	/* closing the last fds of the lock files releases the locks */
	ply_sys_close(wd->upper_lockfd);
	ply_sys_close(wd->lockfd);
	workdir_init(wd);
}

/* ---- removing trees elsewhere (rmdir of an upper directory) ------------- */

int ply_remove_tree(int dirfd, const char *name)
{
	struct stat st;
	int r = ply_sys_fstatat(dirfd, name, &st);

	if (r < 0)
		return r;
	return remove_entry(dirfd, name, (unsigned char)IFTODT(st.st_mode));
}

/* ---- the hard-link index ------------------------------------------------ */

int ply_workdir_open_links(const struct ply_workdir *wd, int *ret_fd)
{
	int r = ply_sys_mkdirat(wd->fd, PLY_LINKS_SUBDIR, 0700);
	int fd;

	if (r < 0 && r != -EEXIST)
		return r;
	fd = ply_sys_openat(wd->fd, PLY_LINKS_SUBDIR,
			    O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

/* ---- volatile mounts ---------------------------------------------------- */

#define INCOMPAT_DIR "incompat"
#define VOLATILE_DIR "volatile"

int ply_workdir_check_volatile(const struct ply_workdir *wd,
			       const struct ply_stack *stack,
			       struct ply_err *err)
{
	struct stat st;
	int fd = ply_sys_openat(wd->workfd, INCOMPAT_DIR,
				O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	int r;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = ply_sys_fstatat(fd, VOLATILE_DIR, &st);
	close(fd);
	if (r == -ENOENT)
		return 0;
	return ply_err_set(err, -EINVAL,
			   "a volatile mount of %s was not stopped cleanly: the upper may have lost writes; start from a fresh upper and workdir (or remove %s/work/" INCOMPAT_DIR "/" VOLATILE_DIR " to use it anyway)",
			   stack->layers[0].path, stack->workdir);
}

int ply_workdir_mark_volatile(const struct ply_workdir *wd)
{
	int fd, r = ply_sys_mkdirat(wd->workfd, INCOMPAT_DIR, 0700);

	if (r < 0 && r != -EEXIST)
		return r;
	fd = ply_sys_openat(wd->workfd, INCOMPAT_DIR,
			    O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd;
	r = ply_sys_mkdirat(fd, VOLATILE_DIR, 0700);
	close(fd);
	return r == -EEXIST ? 0 : r;
}

void ply_workdir_unmark_volatile(const struct ply_workdir *wd)
{
	int fd = ply_sys_openat(wd->workfd, INCOMPAT_DIR,
				O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);

	if (fd < 0)
		return;
	ply_sys_unlinkat(fd, VOLATILE_DIR, AT_REMOVEDIR);
	close(fd);
	ply_sys_unlinkat(wd->workfd, INCOMPAT_DIR, AT_REMOVEDIR);
}
