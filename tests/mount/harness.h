/* Mount-level test harness: a temporary directory per test, helpers that
 * build layer trees (every whiteout and opaque format), and the plyfs daemon
 * run as our child and always unmounted again, even when an assertion fails.
 * Each test uses h_setup/h_teardown (H_TEST); helpers fail the test on
 * error. */
#ifndef PLY_TEST_HARNESS_H
#define PLY_TEST_HARNESS_H

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cmocka.h>

/* Every wait of the harness is bounded by one of these. */
#define H_POLL_MS 10
#define H_MOUNT_WAIT_MS 10000
#define H_EXIT_WAIT_MS 10000
#define H_RUN_WAIT_MS 30000
/* A test still running after this long gets its daemons killed, so a hung
 * request fails the test (ENOTCONN) instead of hanging the suite. */
#ifndef H_TEST_TIMEOUT_S
#define H_TEST_TIMEOUT_S 120
#endif

#define H_MAX_MOUNTS 4
#define H_MAX_TMPFS 4

/* A test: fresh temporary root before, everything unmounted and removed
 * after, whatever the outcome. */
#define H_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_setup, h_teardown)

/* Whiteout formats a layer may hold (see DESIGN.md "Whiteouts"). */
enum h_wh {
	H_WH_CHARDEV,	     /* character device 0/0 (root) */
	H_WH_FILE,	     /* .wh.NAME beside it */
	H_WH_XATTR_USER,     /* empty file, user.overlay.whiteout, parent x */
	H_WH_XATTR_TRUSTED,  /* the same under trusted. (root) */
};

/* Opaque-directory formats. */
enum h_opq {
	H_OPQ_XATTR_TRUSTED, /* trusted.overlay.opaque=y (root) */
	H_OPQ_XATTR_USER,    /* user.overlay.opaque=y */
	H_OPQ_FILE,	     /* .wh..wh..opq inside the directory */
};

struct h_mount {
	char path[PATH_MAX];
	pid_t pid;     /* the daemon, our child (or adopted, see h_adopt) */
	bool active;   /* still ours to unmount */
	char errlog[PATH_MAX]; /* the daemon's stderr */
	bool kernel;   /* a kernel mount (h_kmount): umount2, no daemon */
};

/* One object of a walked tree (h_tree_walk). */
struct h_entry {
	char *path;	/* relative to the walked root, "" for the root */
	mode_t mode;	/* type and permission bits */
	uid_t uid;
	gid_t gid;
	off_t size;	/* regular files and symlinks */
	uint64_t hash;	/* FNV-1a of a regular file's content */
	char *link;	/* a symlink's target, else NULL */
	dev_t rdev;	/* devices */
	ino_t ino;
	nlink_t nlink;
	struct timespec mtime;
};

struct h_tree {
	struct h_entry *v; /* sorted by path */
	size_t n;
};

/* What h_tree_assert_equal compares besides names, types, sizes, contents,
 * symlink targets and device numbers (always compared). */
enum {
	H_CMP_MODE = 1 << 0,  /* permission bits */
	H_CMP_OWNER = 1 << 1, /* uid, gid */
	H_CMP_INO = 1 << 2,   /* st_ino */
	H_CMP_NLINK = 1 << 3, /* st_nlink of non-directories */
	H_CMP_MTIME = 1 << 4, /* mtime of non-directories */
};
#define H_CMP_ALL (H_CMP_MODE | H_CMP_OWNER | H_CMP_INO | H_CMP_NLINK)

/* The outcome of h_run: exit status and what it printed. */
struct h_run {
	int status;	/* as from waitpid */
	char *out;	/* NUL-terminated, owned */
	char *err;
};

/* ---- set-up ------------------------------------------------------------ */
/* Called first by every main(): exits 77 without /dev/fuse, checks $PLYFS
 * and makes us the subreaper of anything our children leave behind. */
void h_init(void);
int h_setup(void **state);
int h_teardown(void **state);
bool h_is_root(void);
/* Skips the test unless we are root. */
void h_need_root(void);
const char *h_plyfs(void);

/* ---- paths and strings ------------------------------------------------- */
/* A path under the test's root (absolute paths are kept as they are). The
 * result lives in one of 16 rotating buffers: copy it to keep it. */
const char *h_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A formatted string in the same rotating buffers. */
const char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "lowerdir=ROOT/a:ROOT/b:..." for the NULL-terminated relative names. */
const char *h_lowerdir(const char *first, ...);
#define H_NAMES(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define H_NONE ((const char *const[]){ NULL })

/* ---- building layer trees (paths relative to the test root) ------------ */
void h_mkdir(const char *rel);	/* mkdir -p */
void h_file(const char *rel, const char *content); /* parents made too */
void h_file_data(const char *rel, const void *data, size_t len);
void h_symlink(const char *target, const char *rel);
void h_fifo(const char *rel);
void h_socket(const char *rel);	/* a bound unix socket */
void h_mknod(const char *rel, mode_t mode, dev_t dev); /* root */
void h_link(const char *oldrel, const char *newrel);
/* Sets an xattr without following symlinks; skips the test where the
 * filesystem has no such namespace. */
void h_xattr(const char *rel, const char *name, const char *value);
/* Sets mtime (and atime) to sec.nsec, without following symlinks. */
void h_times(const char *rel, time_t sec, long nsec);
/* Turns rel into a whiteout of that name, in format fmt. */
void h_whiteout(const char *rel, enum h_wh fmt);
/* Makes directory rel (created if needed) opaque, in format fmt. */
void h_opaque(const char *rel, enum h_opq fmt);
/* Skips the test when fmt needs root and we are not. */
void h_need_wh(enum h_wh fmt);
void h_need_opq(enum h_opq fmt);
/* Mounts a fresh tmpfs at rel (root; unmounted by teardown). */
void h_tmpfs(const char *rel);

/* ---- running things ---------------------------------------------------- */
/* Starts argv[0] (a path) as our child: stdin /dev/null, stdout/stderr to
 * the given files (NULL: /dev/null), in cwd (NULL: ours), with envp (NULL:
 * ours), every other fd closed. */
pid_t h_spawn(const char *const argv[], const char *cwd,
	      const char *const envp[], const char *out, const char *err);
/* Waits up to ms for pid: 0 and *status when it exited, -ETIMEDOUT. */
int h_wait(pid_t pid, int ms, int *status);
/* Runs argv to completion (bounded by H_RUN_WAIT_MS, else the test fails)
 * and captures its output. */
void h_run(const char *const argv[], const char *cwd,
	   const char *const envp[], struct h_run *ret);
void h_run_free(struct h_run *run);
/* Live (not zombie) processes whose parent is us, at most max, returned in
 * pids; the count is returned. Reaps our zombies first. */
int h_children(pid_t *pids, int max);

/* ---- mounting ---------------------------------------------------------- */
/* Runs `$PLYFS -f -o OPTS MNT` (MNT relative to the root, created) and
 * waits for the mount; the test fails if plyfs exits first.
 * $PLYFS_EXTRA_OPTS, when set, is appended to OPTS. */
struct h_mount *h_mount(const char *opts, const char *mnt);
/* The same for any argv that runs plyfs in the foreground mounting at mnt
 * (absolute), started in cwd. */
struct h_mount *h_mount_argv(const char *const argv[], const char *cwd,
			     const char *mnt);
/* Starts the daemon of h_mount_argv without waiting for the mount; the
 * mount (if it comes) is still unmounted by teardown. */
struct h_mount *h_start(const char *const argv[], const char *cwd,
			const char *mnt);
/* Mounts the NULL-terminated relative lower layers, top first, at mnt. */
struct h_mount *h_mount_lowers(const char *mnt, const char *first, ...);
/* Takes charge of a mount made by someone else at mnt (absolute), whose
 * daemon daemonized and so became our child: we are its subreaper. */
struct h_mount *h_adopt(const char *mnt);
/* Unmounts (fusermount3 -u, else a lazy umount2) and waits for the daemon
 * (bounded, then SIGKILL). Returns its wait status, or -1 if it was killed
 * or not found. */
int h_umount(struct h_mount *m);
/* Is path a mount point (from /proc/self/mountinfo, no FUSE request)? */
bool h_is_mountpoint(const char *path);
/* st_dev of path differs from its parent's. */
bool h_dev_differs(const char *path);

/* ---- looking at the result --------------------------------------------- */
/* Reads a whole file; *len gets its length. The result is owned. */
char *h_read(const char *path, size_t *len);
/* lstat that fails the test on an error. */
struct stat h_lstat(const char *path);
/* Appends data to the file path (open O_APPEND, write, close), failing
 * the test on any error. */
void h_append(const char *path, const char *data);
/* snprintf that fails the test rather than truncate. */
void h_sfmt(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The file holds exactly content. */
void h_assert_content(const char *path, const char *content);
/* Lists dir: "." and ".." must be there, every name exactly once, and the
 * other names must be exactly expected (any order). */
void h_assert_listing(const char *dir, const char *const expected[]);
/* The names of dir, in readdir order, "." and ".." included; owned. */
char **h_listdir(const char *dir, size_t *ret_n);
void h_strv_free(char **v, size_t n);

/* FNV-1a 64 of a file's whole content; *size (if given) gets its length.
 * The file is read in 1 MiB blocks: fit for large files. */
uint64_t h_hash_file(const char *path, off_t *size);
uint64_t h_hash_data(uint64_t h, const void *data, size_t len);
#define H_HASH_INIT 0xcbf29ce484222325ULL
/* Writes len bytes of a pattern determined by seed (reproducible with
 * h_pattern_hash) to rel, parents made too. */
void h_file_pattern(const char *rel, off_t len, unsigned seed);
uint64_t h_pattern_hash(off_t len, unsigned seed);
/* Every object under dir (dir itself as ""), lstat'ed, without following
 * symlinks or crossing mounts, sorted by path. */
void h_tree_walk(const char *dir, struct h_tree *ret);
void h_tree_free(struct h_tree *t);
/* Fails the test, listing every difference, unless a and b hold the same
 * paths with the same attributes (H_CMP_* flags: which beyond the
 * always-compared ones). */
void h_tree_assert_equal(const struct h_tree *a, const struct h_tree *b,
			 unsigned flags, const char *what);
/* Prints the tree (for messages). */
void h_tree_print(const struct h_tree *t, const char *title);

/* ---- kernel mounts ----------------------------------------------------- */
/* mount(2) of fstype from source at mnt (relative to the root, created)
 * with data opts; the mount is unmounted (umount2) by teardown or
 * h_umount. 0 or -errno (the test does not fail: the caller may retry
 * other options); *ret gets the mount. Root only. */
int h_kmount(const char *fstype, const char *source, const char *opts,
	     const char *mnt, struct h_mount **ret);

/* expr must fail with -1 and errno err. */
#define h_assert_errno(expr, err)                                             \
	do {                                                                  \
		errno = 0;                                                    \
		long h_r_ = (long)(expr);                                     \
		int h_e_ = errno;                                             \
		if (h_r_ != -1 || h_e_ != (err))                              \
			fail_msg("%s: expected -1 with %s, got %ld with %s",  \
				 #expr, strerrorname_np(err), h_r_,           \
				 h_e_ ? strerrorname_np(h_e_) : "no error");  \
	} while (0)

/* expr must succeed (>= 0). */
#define h_assert_ok(expr)                                                     \
	do {                                                                  \
		errno = 0;                                                    \
		if ((long)(expr) < 0)                                         \
			fail_msg("%s: failed: %s", #expr,                     \
				 strerrorname_np(errno));                     \
	} while (0)

#endif

/* ---- robustness tests (crash, stress, fsx, hostile) -------------------- */
/* PLY_STRESS_SCALE (default 1, at least 1): how many times longer the
 * robustness tests run. */
unsigned h_scale(void);
/* The seed of a randomized test: $PLY_SEED if set, else def; printed. */
unsigned h_seed(const char *what, unsigned def);
/* Mounts a tmpfs with mount options opts (e.g. "size=8m") at rel (root;
 * unmounted by teardown). */
void h_tmpfs_opts(const char *rel, const char *opts);
/* kill -9 of m's daemon, reaped; the mount is left dead ("Transport
 * endpoint is not connected") and still ours to unmount. */
void h_crash(struct h_mount *m);
/* Fails the test unless m's daemon still runs and answers a stat of the
 * mount's root within H_EXIT_WAIT_MS (the stat runs in a child, so a hung
 * daemon fails the test instead of hanging it). */
void h_assert_alive(struct h_mount *m);
/* Removes name under dirfd and all it holds, with *at() calls only: for
 * trees deeper than PATH_MAX. Never follows symlinks nor crosses mounts.
 * 0 or -errno (the first error; it goes on with the rest). */
int h_rm_at(int dirfd, const char *name);
/* h_umount, but a daemon that does not exit within H_EXIT_WAIT_MS of the
 * unmount has its threads' stacks printed (gdb, bounded) before it is
 * killed. Returns what h_umount returns. */
int h_umount_diag(struct h_mount *m);
