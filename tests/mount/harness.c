/* Mount-level test harness: temporary trees, the daemon as our child, and
 * the unmount that always happens (teardown, or the watchdog when a request
 * hangs). The per-test state is owned by h_setup/h_teardown. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct h_ctx {
	char root[256];
	unsigned nspawn; /* names the capture files */

	/* lock protects mounts[].pid/path/active and tmpfs against the
	 * watchdog, which reads them; done tells the watchdog to stop. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	pthread_t watchdog;
	struct h_mount mounts[H_MAX_MOUNTS];
	char tmpfs[H_MAX_TMPFS][PATH_MAX];
	size_t ntmpfs;

	/* Where the sanitizers and a valgrind wrapper of the programs we
	 * spawn write their reports (h_checker_env, h_wrap); scanned by
	 * h_teardown, and any report fails the test. */
	char logdir[256];
	unsigned nreports;
};

/* The running test's state (cmocka runs tests one at a time). */
static struct h_ctx *cur;

#define H_BUFS 16
#define H_BUFSZ 8192
static char bufs[H_BUFS][H_BUFSZ];
static unsigned nextbuf;

static char *h_buf(void)
{
	return bufs[nextbuf++ % H_BUFS];
}

static void h_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- sanitizers and valgrind ------------------------------------------- */

/* A sanitized build (meson -Db_sanitize=...) or PLYFS_WRAPPER (e.g.
 * "valgrind --leak-check=full") checks the daemon as it runs; whatever they
 * find goes to files in the test's logdir, not to the daemon's stderr, which
 * is /dev/null once it daemonizes and which tests compare: sanitizer
 * reports as logdir/san.PID (log_path, added to ASAN_OPTIONS and
 * UBSAN_OPTIONS of every program we spawn), valgrind's as logdir/vg.PID
 * (--log-file, added to a valgrind wrapper). h_teardown scans them after
 * every daemon has exited and fails the test on any report, leaks at exit
 * included. */

extern char **environ;

/* Does a valgrind log hold an error (a killed valgrind writes no
 * summary, so the error records themselves count)? */
static bool h_valgrind_found(const char *log)
{
	static const char *const pats[] = {
		"Invalid read", "Invalid write", "Invalid free",
		"Mismatched free", "uninitialised", "Syscall param",
		"Source and destination overlap", "are definitely lost",
		"are indirectly lost", "Invalid address", "Jump to the invalid",
		NULL,
	};
	const char *s = strstr(log, "ERROR SUMMARY: ");

	if (s && s[15] >= '1' && s[15] <= '9')
		return true;
	for (const char *const *p = pats; *p; p++) {
		if (strstr(log, *p))
			return true;
	}
	return false;
}

static char *h_slurp(const char *path);

/* Prints and counts the reports in c->logdir, and removes the logs. */
static void h_scan_logs(struct h_ctx *c)
{
	DIR *d = opendir(c->logdir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		bool vg = !strncmp(de->d_name, "vg.", 3);
		char *log;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", c->logdir, de->d_name);
		log = h_slurp(path);
		if (log && *log && (!vg || h_valgrind_found(log))) {
			int len = (int)strlen(log);

			fprintf(stderr, "harness: %s report (%s):\n%.*s%s\n",
				vg ? "valgrind" : "sanitizer", de->d_name,
				len > 65536 ? 65536 : len, log,
				len > 65536 ? "\n[...]" : "");
			c->nreports++;
		}
		free(log);
		unlink(path);
	}
	closedir(d);
}

/* Reports a sanitizer printed to a program's stderr (text; what) anyway:
 * UBSan does, whatever its log_path says, when built with ASan. */
static void h_scan_text(const char *text, const char *what)
{
	static const char *const pats[] = { "runtime error: ",
					    "ERROR: AddressSanitizer",
					    "ERROR: LeakSanitizer", NULL };

	if (!cur || !text)
		return;
	for (const char *const *p = pats; *p; p++) {
		if (strstr(text, *p)) {
			fprintf(stderr, "harness: sanitizer report in the "
					"stderr of %s:\n%s\n", what, text);
			cur->nreports++;
			return;
		}
	}
}

/* envp (NULL: ours) with log_path=logdir/san added to the sanitizer
 * options; to be freed with h_strv_free. */
static char **h_checker_env(const char *const envp[], size_t *ret_n)
{
	static const char *const vars[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
					    NULL };
	const char *const *src = envp ? envp : (const char *const *)environ;
	size_t n = 0, k = 0;
	char **v;

	while (src[n])
		n++;
	v = calloc(n + 3, sizeof(*v));
	assert_non_null(v);
	for (const char *const *var = vars; cur && *var; var++) {
		size_t len = strlen(*var);
		const char *old = "";
		char *e;

		for (size_t i = 0; i < n; i++) {
			if (!strncmp(src[i], *var, len) && src[i][len] == '=')
				old = src[i] + len + 1;
		}
		if (asprintf(&e, "%s=%s%slog_path=%s/san", *var, old,
			     *old ? ":" : "", cur->logdir) < 0)
			fail_msg("asprintf: %s", strerror(errno));
		v[k++] = e;
	}
	for (size_t i = 0; i < n; i++) {
		bool skip = false;

		for (const char *const *var = vars; cur && *var; var++) {
			size_t len = strlen(*var);

			skip |= !strncmp(src[i], *var, len) &&
				src[i][len] == '=';
		}
		if (!skip) {
			v[k] = strdup(src[i]);
			assert_non_null(v[k]);
			k++;
		}
	}
	*ret_n = k;
	return v;
}

/* The wrapper's program, looked up in $PATH unless it has a slash; in
 * buf. */
static const char *h_which(const char *prog, char *buf, size_t size)
{
	const char *path = getenv("PATH");

	if (strchr(prog, '/'))
		return prog;
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t len = strcspn(p, ":");

		snprintf(buf, size, "%.*s/%s", (int)len, p, prog);
		if (access(buf, X_OK) == 0)
			return buf;
		p += len + (p[len] == ':');
	}
	fail_msg("PLYFS_WRAPPER: %s not found in $PATH", prog);
	return NULL;
}

/* argv, run through $PLYFS_WRAPPER (blank-separated words, no quoting)
 * when it runs $PLYFS; NULL when not. A valgrind wrapper gets
 * --log-file=logdir/vg.%p unless it names its own log. To be freed with
 * h_strv_free. */
static char **h_wrap(const char *const argv[], size_t *ret_n)
{
	const char *w = getenv("PLYFS_WRAPPER"), *plyfs = getenv("PLYFS");
	char *copy, *save = NULL, **v;
	size_t n = 0, k = 0, nw = 0;
	bool valgrind = false, haslog = false;
	char prog[PATH_MAX];

	if (!w || !*w || !plyfs || strcmp(argv[0], plyfs) || !cur)
		return NULL;
	while (argv[n])
		n++;
	copy = strdup(w);
	assert_non_null(copy);
	v = calloc(n + strlen(w) / 2 + 4, sizeof(*v));
	assert_non_null(v);
	for (char *word = strtok_r(copy, " \t", &save); word;
	     word = strtok_r(NULL, " \t", &save)) {
		if (nw++ == 0) {
			const char *base = strrchr(word, '/');

			valgrind = !strcmp(base ? base + 1 : word, "valgrind");
			word = (char *)h_which(word, prog, sizeof(prog));
		}
		haslog |= !strncmp(word, "--log-", 6);
		v[k] = strdup(word);
		assert_non_null(v[k]);
		k++;
	}
	free(copy);
	if (valgrind && !haslog) {
		if (asprintf(&v[k], "--log-file=%s/vg.%%p", cur->logdir) < 0)
			fail_msg("asprintf: %s", strerror(errno));
		k++;
	}
	for (size_t i = 0; i < n; i++) {
		v[k] = strdup(argv[i]);
		assert_non_null(v[k]);
		k++;
	}
	*ret_n = k;
	return v;
}

/* Is PLYFS_WRAPPER set (the daemon then starts and exits slower)? */
static bool h_wrapped(void)
{
	const char *w = getenv("PLYFS_WRAPPER");

	return w && *w;
}

/* ---- set-up ------------------------------------------------------------ */

void h_init(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("SKIP: /dev/fuse: %s\n", strerror(errno));
		exit(77);
	}
	close(fd);
	if (!getenv("PLYFS") || access(getenv("PLYFS"), X_OK) < 0) {
		fprintf(stderr, "PLYFS must name the plyfs binary\n");
		exit(1);
	}
	/* A daemonized plyfs (and anything it leaves behind) becomes our
	 * child, so we can wait for it and check that none is left. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("PR_SET_CHILD_SUBREAPER");
		exit(1);
	}
	umask(022);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

bool h_is_root(void)
{
	return geteuid() == 0;
}

void h_need_root(void)
{
	if (!h_is_root()) {
		print_message("needs root\n");
		skip();
	}
}

const char *h_plyfs(void)
{
	return getenv("PLYFS");
}

/* H_TEST_TIMEOUT_S, 5 times longer under PLYFS_WRAPPER. */
static int h_test_timeout_s(void)
{
	return H_TEST_TIMEOUT_S * (h_wrapped() ? 5 : 1);
}

/* How long a daemon may take to exit after its unmount: a valgrind
 * wrapper checks for leaks first. */
static int h_exit_wait_ms(void)
{
	return H_EXIT_WAIT_MS * (h_wrapped() ? 6 : 1);
}

/* Kills every daemon and detaches every mount of the test: the blocked
 * request (if any) then fails with ENOTCONN and the test ends. */
static void *h_watchdog(void *arg)
{
	struct h_ctx *c = arg;
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += h_test_timeout_s();
	pthread_mutex_lock(&c->lock);
	while (!c->done) {
		if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) ==
		    ETIMEDOUT)
			break;
	}
	if (!c->done) {
		fprintf(stderr, "harness: test still running after %d s: "
				"killing its daemons\n", h_test_timeout_s());
		for (size_t i = 0; i < H_MAX_MOUNTS; i++) {
			struct h_mount *m = &c->mounts[i];

			if (!m->active)
				continue;
			if (m->pid > 0)
				kill(m->pid, SIGKILL);
			umount2(m->path, MNT_DETACH);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int h_setup(void **state)
{
	struct h_ctx *c = calloc(1, sizeof(*c));
	const char *tmp = getenv("TMPDIR");

	if (!c)
		return -1;
	snprintf(c->root, sizeof(c->root), "%s/plyfs-mt.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(c->root)) {
		fprintf(stderr, "mkdtemp %s: %s\n", c->root, strerror(errno));
		free(c);
		return -1;
	}
	/* Outside the root, which tests walk; open to all, since daemons
	 * may run as another user. */
	snprintf(c->logdir, sizeof(c->logdir), "%s/plyfs-mt-log.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(c->logdir) || chmod(c->logdir, 01777) < 0) {
		fprintf(stderr, "mkdtemp %s: %s\n", c->logdir, strerror(errno));
		rmdir(c->root);
		free(c);
		return -1;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (pthread_create(&c->watchdog, NULL, h_watchdog, c) != 0) {
		rmdir(c->logdir);
		rmdir(c->root);
		free(c);
		return -1;
	}
	cur = c;
	*state = c;
	return 0;
}

static int h_rm_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int h_teardown(void **state)
{
	struct h_ctx *c = *state;
	int ret = 0;

	for (size_t i = 0; i < H_MAX_MOUNTS; i++) {
		if (c->mounts[i].active)
			h_umount(&c->mounts[i]);
	}
	for (size_t i = c->ntmpfs; i-- > 0;)
		umount2(c->tmpfs[i], MNT_DETACH);
	/* FTW_MOUNT: never descend into a mount we failed to remove. */
	nftw(c->root, h_rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (access(c->root, F_OK) == 0) {
		fprintf(stderr, "harness: could not remove %s\n", c->root);
		ret = -1;
	}
	/* Every daemon is gone now: their reports are complete. */
	h_scan_logs(c);
	nftw(c->logdir, h_rm_one, 8, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (c->nreports) {
		fprintf(stderr, "harness: FAIL: %u sanitizer or valgrind "
				"report(s) from the programs this test ran "
				"(above)\n", c->nreports);
		print_error("%u sanitizer or valgrind report(s) from the "
			    "programs the test started\n", c->nreports);
		ret = -1;
	}

	pthread_mutex_lock(&c->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->watchdog, NULL);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	cur = NULL;
	free(c);
	return ret;
}

/* ---- paths and strings ------------------------------------------------- */

static const char *h_vpath(const char *fmt, va_list ap)
{
	char rel[H_BUFSZ - 512];
	char *buf = h_buf();

	vsnprintf(rel, sizeof(rel), fmt, ap);
	if (rel[0] == '/')
		snprintf(buf, H_BUFSZ, "%s", rel);
	else
		snprintf(buf, H_BUFSZ, "%s/%s", cur->root, rel);
	return buf;
}

const char *h_path(const char *fmt, ...)
{
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	p = h_vpath(fmt, ap);
	va_end(ap);
	return p;
}

const char *h_fmt(const char *fmt, ...)
{
	char *buf = h_buf();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, H_BUFSZ, fmt, ap);
	va_end(ap);
	return buf;
}

static const char *h_vlowerdir(const char *first, va_list ap)
{
	char *buf = h_buf();
	size_t len = 0;

	len += snprintf(buf, H_BUFSZ, "lowerdir=");
	for (const char *l = first; l; l = va_arg(ap, const char *)) {
		len += snprintf(buf + len, H_BUFSZ - len, "%s%s/%s",
				l == first ? "" : ":", cur->root, l);
		assert_true(len < H_BUFSZ);
	}
	return buf;
}

const char *h_lowerdir(const char *first, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, first);
	s = h_vlowerdir(first, ap);
	va_end(ap);
	return s;
}

/* ---- building layer trees ---------------------------------------------- */

void h_mkdir(const char *rel)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s", h_path("%s", rel));
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", p, strerror(errno));
		*s = c;
		if (!c)
			break;
	}
}

/* Creates the parent directory of rel. */
static void h_mkparent(const char *rel)
{
	char p[PATH_MAX];
	char *slash;

	snprintf(p, sizeof(p), "%s", rel);
	slash = strrchr(p, '/');
	if (slash && slash != p) {
		*slash = '\0';
		h_mkdir(p);
	}
}

void h_file_data(const char *rel, const void *data, size_t len)
{
	const char *p = h_path("%s", rel);
	int fd;

	h_mkparent(rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("create %s: %s", p, strerror(errno));
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, (const char *)data + done, len - done);

		if (n <= 0)
			fail_msg("write %s: %s", p, strerror(errno));
		done += n;
	}
	close(fd);
}

void h_file(const char *rel, const char *content)
{
	h_file_data(rel, content, strlen(content));
}

void h_symlink(const char *target, const char *rel)
{
	h_mkparent(rel);
	if (symlink(target, h_path("%s", rel)) < 0)
		fail_msg("symlink %s: %s", rel, strerror(errno));
}

void h_fifo(const char *rel)
{
	h_mkparent(rel);
	if (mkfifo(h_path("%s", rel), 0640) < 0)
		fail_msg("mkfifo %s: %s", rel, strerror(errno));
}

void h_socket(const char *rel)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *p = h_path("%s", rel);
	int fd;

	h_mkparent(rel);
	if (strlen(p) >= sizeof(sa.sun_path))
		fail_msg("socket path too long: %s", p);
	strcpy(sa.sun_path, p);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("bind %s: %s", p, strerror(errno));
	close(fd);
}

void h_mknod(const char *rel, mode_t mode, dev_t dev)
{
	h_need_root();
	h_mkparent(rel);
	if (mknod(h_path("%s", rel), mode, dev) < 0)
		fail_msg("mknod %s: %s", rel, strerror(errno));
}

void h_link(const char *oldrel, const char *newrel)
{
	h_mkparent(newrel);
	if (link(h_path("%s", oldrel), h_path("%s", newrel)) < 0)
		fail_msg("link %s %s: %s", oldrel, newrel, strerror(errno));
}

void h_xattr(const char *rel, const char *name, const char *value)
{
	if (lsetxattr(h_path("%s", rel), name, value, strlen(value), 0) == 0)
		return;
	if (errno == ENOTSUP) {
		print_message("no %s xattrs on the test filesystem\n", name);
		skip();
	}
	fail_msg("setxattr %s %s: %s", rel, name, strerror(errno));
}

void h_times(const char *rel, time_t sec, long nsec)
{
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };

	if (utimensat(AT_FDCWD, h_path("%s", rel), ts, AT_SYMLINK_NOFOLLOW) <
	    0)
		fail_msg("utimensat %s: %s", rel, strerror(errno));
}

void h_need_wh(enum h_wh fmt)
{
	if (fmt == H_WH_CHARDEV || fmt == H_WH_XATTR_TRUSTED)
		h_need_root();
}

void h_need_opq(enum h_opq fmt)
{
	if (fmt == H_OPQ_XATTR_TRUSTED)
		h_need_root();
}

void h_whiteout(const char *rel, enum h_wh fmt)
{
	char dir[PATH_MAX], name[NAME_MAX + 1];
	const char *slash = strrchr(rel, '/');

	h_need_wh(fmt);
	if (slash) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - rel), rel);
		snprintf(name, sizeof(name), "%s", slash + 1);
	} else {
		snprintf(dir, sizeof(dir), ".");
		snprintf(name, sizeof(name), "%s", rel);
	}
	h_mkdir(dir);
	switch (fmt) {
	case H_WH_CHARDEV:
		h_mknod(rel, S_IFCHR | 0600, makedev(0, 0));
		break;
	case H_WH_FILE:
		h_file(h_fmt("%s/.wh.%s", dir, name), "");
		break;
	case H_WH_XATTR_USER:
	case H_WH_XATTR_TRUSTED: {
		const char *ns = fmt == H_WH_XATTR_USER ? "user" : "trusted";

		/* The kernel honours xattr whiteouts only in a directory
		 * whose overlay.opaque is "x". */
		h_file(rel, "");
		h_xattr(rel, h_fmt("%s.overlay.whiteout", ns), "");
		h_xattr(dir, h_fmt("%s.overlay.opaque", ns), "x");
		break;
	}
	}
}

void h_opaque(const char *rel, enum h_opq fmt)
{
	h_need_opq(fmt);
	h_mkdir(rel);
	switch (fmt) {
	case H_OPQ_XATTR_TRUSTED:
		h_xattr(rel, "trusted.overlay.opaque", "y");
		break;
	case H_OPQ_XATTR_USER:
		h_xattr(rel, "user.overlay.opaque", "y");
		break;
	case H_OPQ_FILE:
		h_file(h_fmt("%s/.wh..wh..opq", rel), "");
		break;
	}
}

void h_tmpfs(const char *rel)
{
	const char *p = h_path("%s", rel);

	h_need_root();
	assert_true(cur->ntmpfs < H_MAX_TMPFS);
	h_mkdir(rel);
	if (mount("plyfs-test", p, "tmpfs", 0, "mode=0755") < 0)
		fail_msg("mount tmpfs %s: %s", p, strerror(errno));
	pthread_mutex_lock(&cur->lock);
	snprintf(cur->tmpfs[cur->ntmpfs++], PATH_MAX, "%s", p);
	pthread_mutex_unlock(&cur->lock);
}

/* ---- running things ---------------------------------------------------- */

static int h_open_out(const char *path)
{
	return open(path ? path : "/dev/null",
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

pid_t h_spawn(const char *const argv[], const char *cwd,
	      const char *const envp[], const char *out, const char *err)
{
	int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out_fd = h_open_out(out);
	int err_fd = h_open_out(err);
	pid_t pid;

	size_t nenv = 0, nwrap = 0;
	char **env, **wrapped;

	if (in_fd < 0 || out_fd < 0 || err_fd < 0)
		fail_msg("spawn %s: %s", argv[0], strerror(errno));
	/* prepared here: after fork only async-signal-safe calls */
	env = h_checker_env(envp, &nenv);
	wrapped = h_wrap(argv, &nwrap);
	if (wrapped)
		argv = (const char *const *)wrapped;
	envp = (const char *const *)env;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here on. */
		if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
		    dup2(err_fd, 2) < 0)
			_exit(126);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		if (cwd && chdir(cwd) < 0)
			_exit(126);
		execve(argv[0], (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	close(in_fd);
	close(out_fd);
	close(err_fd);
	h_strv_free(env, nenv);
	if (wrapped)
		h_strv_free(wrapped, nwrap);
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	return pid;
}

int h_wait(pid_t pid, int ms, int *status)
{
	for (int waited = 0;; waited += H_POLL_MS) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (waited >= ms)
			return -ETIMEDOUT;
		h_sleep_ms(H_POLL_MS);
	}
}

/* Kills pid and reaps it; bounded as well, in case it is stuck in D. */
static int h_kill(pid_t pid)
{
	int status;

	kill(pid, SIGKILL);
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
		fprintf(stderr, "harness: pid %d survives SIGKILL\n", pid);
		return -1;
	}
	return status;
}

char *h_read(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t size = 0, cap = 4096;
	char *buf = malloc(cap + 1);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	assert_non_null(buf);
	for (;;) {
		ssize_t n;

		if (size == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		n = read(fd, buf + size, cap - size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			free(buf);
			fail_msg("read %s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		size += n;
	}
	close(fd);
	buf[size] = '\0';
	if (len)
		*len = size;
	return buf;
}

/* Reads a capture file; never fails the test (teardown uses it too). */
static char *h_slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0;
	FILE *mem = open_memstream(&buf, &cap);
	char chunk[4096];
	size_t n;

	if (f) {
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			fwrite(chunk, 1, n, mem);
		fclose(f);
	}
	fclose(mem);
	return buf;
}

void h_run(const char *const argv[], const char *cwd,
	   const char *const envp[], struct h_run *ret)
{
	unsigned n = cur->nspawn++;
	char out[PATH_MAX], err[PATH_MAX];
	pid_t pid;

	snprintf(out, sizeof(out), "%s/run-%u.out", cur->root, n);
	snprintf(err, sizeof(err), "%s/run-%u.err", cur->root, n);
	pid = h_spawn(argv, cwd, envp, out, err);
	if (h_wait(pid, H_RUN_WAIT_MS, &ret->status) < 0) {
		h_kill(pid);
		fail_msg("%s did not finish within %d ms", argv[0],
			 H_RUN_WAIT_MS);
	}
	ret->out = h_slurp(out);
	ret->err = h_slurp(err);
	unlink(out);
	unlink(err);
	h_scan_text(ret->err, argv[0]);
}

void h_run_free(struct h_run *run)
{
	free(run->out);
	free(run->err);
	run->out = run->err = NULL;
}

int h_children(pid_t *pids, int max)
{
	pid_t self = getpid();
	DIR *d;
	struct dirent *de;
	int n = 0;

	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	d = opendir("/proc");
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[300], buf[512], state;
		const char *rp;
		int ppid;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		/* "pid (comm) state ppid": comm may hold anything. */
		rp = strrchr(buf, ')');
		if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
			continue;
		if (ppid != self || state == 'Z')
			continue;
		if (n < max)
			pids[n] = atoi(de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* ---- mounting ---------------------------------------------------------- */

bool h_dev_differs(const char *path)
{
	char parent[PATH_MAX];
	struct stat st, pst;

	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(path, &st) < 0 || stat(parent, &pst) < 0)
		return false;
	return st.st_dev != pst.st_dev;
}

/* Undoes mountinfo's octal escapes (\040 for a blank and so on). */
static void h_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] &&
		    r[3]) {
			*w++ = (char)strtol((char[]){ r[1], r[2], r[3], 0 },
					    NULL, 8);
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

bool h_is_mountpoint(const char *path)
{
	char real[PATH_MAX];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	/* realpath of a dead FUSE mount fails; fall back to path. */
	if (!realpath(path, real))
		snprintf(real, sizeof(real), "%s", path);
	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char mp[PATH_MAX];

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		h_unescape(mp);
		found = strcmp(mp, real) == 0 || strcmp(mp, path) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

static struct h_mount *h_slot(const char *mnt)
{
	for (size_t i = 0; i < H_MAX_MOUNTS; i++) {
		struct h_mount *m = &cur->mounts[i];

		if (m->active)
			continue;
		char errlog[sizeof(m->errlog)];

		snprintf(errlog, sizeof(errlog), "%s/plyfs-%zu.err", cur->root,
			 i);
		memset(m, 0, sizeof(*m));
		snprintf(m->path, sizeof(m->path), "%s", mnt);
		memcpy(m->errlog, errlog, sizeof(errlog));
		return m;
	}
	fail_msg("more than %d mounts in one test", H_MAX_MOUNTS);
	return NULL;
}

struct h_mount *h_start(const char *const argv[], const char *cwd,
			const char *mnt)
{
	struct h_mount *m = h_slot(mnt);
	pid_t pid;

	pid = h_spawn(argv, cwd, NULL, NULL, m->errlog);
	pthread_mutex_lock(&cur->lock);
	m->pid = pid;
	m->active = true;
	pthread_mutex_unlock(&cur->lock);
	return m;
}

struct h_mount *h_mount_argv(const char *const argv[], const char *cwd,
			     const char *mnt)
{
	struct h_mount *m = h_start(argv, cwd, mnt);
	pid_t pid = m->pid;
	int status;

	for (int waited = 0; waited <= H_MOUNT_WAIT_MS; waited += H_POLL_MS) {
		if (h_wait(pid, 0, &status) == 0) {
			char *err = h_slurp(m->errlog);

			pthread_mutex_lock(&cur->lock);
			m->active = false;
			pthread_mutex_unlock(&cur->lock);
			print_error("plyfs stderr:\n%s", err);
			free(err);
			fail_msg("plyfs exited (status 0x%x) before %s was "
				 "mounted", status, mnt);
		}
		if (h_dev_differs(mnt))
			return m;
		h_sleep_ms(H_POLL_MS);
	}
	fail_msg("%s not mounted after %d ms", mnt, H_MOUNT_WAIT_MS);
	return NULL;
}

struct h_mount *h_mount(const char *opts, const char *mnt)
{
	const char *extra = getenv("PLYFS_EXTRA_OPTS");
	char p[PATH_MAX];

	if (extra && *extra)
		opts = h_fmt("%s,%s", opts, extra);
	h_mkdir(mnt);
	snprintf(p, sizeof(p), "%s", h_path("%s", mnt));
	return h_mount_argv(H_NAMES(h_plyfs(), "-f", "-o", opts, p), NULL, p);
}

struct h_mount *h_mount_lowers(const char *mnt, const char *first, ...)
{
	va_list ap;
	const char *opts;

	va_start(ap, first);
	opts = h_vlowerdir(first, ap);
	va_end(ap);
	return h_mount(opts, mnt);
}

struct h_mount *h_adopt(const char *mnt)
{
	struct h_mount *m = h_slot(mnt);
	pid_t pids[4];
	int n = h_children(pids, 4);

	pthread_mutex_lock(&cur->lock);
	m->pid = n >= 1 ? pids[0] : 0;
	m->active = true;
	pthread_mutex_unlock(&cur->lock);
	if (n != 1)
		fail_msg("expected one daemon as our child, found %d", n);
	return m;
}

static bool h_fusermount(const char *path)
{
	const char *fm = access("/usr/bin/fusermount3", X_OK) == 0 ?
				 "/usr/bin/fusermount3" :
				 "/bin/fusermount3";
	pid_t pid = h_spawn(H_NAMES(fm, "-u", path), "/", NULL, NULL, NULL);
	int status;

	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
		h_kill(pid);
		return false;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int h_umount(struct h_mount *m)
{
	int status = -1;

	if (m->kernel) {
		/* A kernel mount: no daemon to wait for. */
		for (int i = 0; i < 8 && h_is_mountpoint(m->path); i++) {
			if (umount2(m->path, 0) < 0 &&
			    umount2(m->path, MNT_DETACH) < 0)
				fprintf(stderr, "harness: umount %s: %s\n",
					m->path, strerror(errno));
		}
		pthread_mutex_lock(&cur->lock);
		m->active = false;
		pthread_mutex_unlock(&cur->lock);
		return 0;
	}
	/* Stacked mounts at one path (a buggy daemon): take them all. */
	for (int i = 0; i < 8 && h_is_mountpoint(m->path); i++) {
		if (!h_fusermount(m->path) && umount2(m->path, MNT_DETACH) < 0)
			fprintf(stderr, "harness: umount %s: %s\n", m->path,
				strerror(errno));
	}
	if (m->pid > 0 && h_wait(m->pid, h_exit_wait_ms(), &status) < 0) {
		fprintf(stderr, "harness: plyfs (pid %d) still running %d ms "
				"after unmount: killed\n", m->pid,
			h_exit_wait_ms());
		h_kill(m->pid);
		status = -1;
	}
	{
		char *err = h_slurp(m->errlog);

		/* Whatever the daemon said may explain the failure. */
		if (status != 0 && err && *err)
			fprintf(stderr, "harness: plyfs stderr:\n%s", err);
		h_scan_text(err, "plyfs");
		free(err);
	}
	pthread_mutex_lock(&cur->lock);
	m->active = false;
	m->pid = 0;
	pthread_mutex_unlock(&cur->lock);
	return status;
}

/* ---- looking at the result --------------------------------------------- */

void h_assert_content(const char *path, const char *content)
{
	size_t len;
	char *got = h_read(path, &len);

	if (len != strlen(content) || memcmp(got, content, len) != 0) {
		print_error("%s: expected \"%s\", got \"%s\"\n", path, content,
			    got);
		free(got);
		fail_msg("%s: wrong content", path);
	}
	free(got);
}

char **h_listdir(const char *dir, size_t *ret_n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t n = 0;

	if (!d)
		fail_msg("opendir %s: %s", dir, strerror(errno));
	errno = 0;
	while ((de = readdir(d))) {
		v = realloc(v, (n + 1) * sizeof(*v));
		assert_non_null(v);
		v[n] = strdup(de->d_name);
		assert_non_null(v[n]);
		n++;
		errno = 0;
	}
	if (errno) {
		int e = errno;

		closedir(d);
		h_strv_free(v, n);
		fail_msg("readdir %s: %s", dir, strerror(e));
	}
	closedir(d);
	*ret_n = n;
	return v;
}

void h_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int h_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Joins v into one string for a message; owned. */
static char *h_join(char *const *v, size_t n)
{
	char *buf = NULL;
	size_t cap = 0;
	FILE *mem = open_memstream(&buf, &cap);

	for (size_t i = 0; i < n; i++)
		fprintf(mem, "%s%s", i ? " " : "", v[i]);
	fclose(mem);
	return buf;
}

void h_assert_listing(const char *dir, const char *const expected[])
{
	size_t n, nexp = 0, nself = 0;
	char **got = h_listdir(dir, &n);
	char **want;
	bool same;

	qsort(got, n, sizeof(*got), h_cmp_str);
	for (const char *const *e = expected; *e; e++)
		nexp++;
	want = calloc(nexp + 2, sizeof(*want));
	assert_non_null(want);
	want[0] = ".";
	want[1] = "..";
	for (size_t i = 0; i < nexp; i++)
		want[i + 2] = (char *)expected[i];
	qsort(want, nexp + 2, sizeof(*want), h_cmp_str);
	for (size_t i = 0; i < n; i++)
		nself += !strcmp(got[i], ".") || !strcmp(got[i], "..");

	same = n == nexp + 2 && nself == 2;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(got[i], want[i]) == 0;
	if (!same) {
		char *g = h_join(got, n), *w = h_join(want, nexp + 2);

		print_error("%s:\n  expected: %s\n  listed:   %s\n", dir, w, g);
		free(g);
		free(w);
	}
	free(want);
	h_strv_free(got, n);
	if (!same)
		fail_msg("%s: wrong listing", dir);
}

/* ---- trees and hashes -------------------------------------------------- */

uint64_t h_hash_data(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t h_hash_file(const char *path, off_t *size)
{
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint64_t h = H_HASH_INIT;
	off_t total = 0;

	assert_non_null(buf);
	if (fd < 0) {
		free(buf);
		fail_msg("open %s: %s", path, strerror(errno));
	}
	for (;;) {
		ssize_t n = read(fd, buf, cap);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			free(buf);
			fail_msg("read %s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		h = h_hash_data(h, buf, n);
		total += n;
	}
	close(fd);
	free(buf);
	if (size)
		*size = total;
	return h;
}

/* The pattern of h_file_pattern: a 1 MiB block derived from seed, each
 * block's first 8 bytes its index, so no two blocks are alike. */
static void h_pattern_block(char *buf, size_t len, unsigned seed,
			    uint64_t index)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1);

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (char)x;
	}
	memcpy(buf, &index, len < 8 ? len : 8);
}

#define H_PATTERN_BLOCK (1 << 20)

void h_file_pattern(const char *rel, off_t len, unsigned seed)
{
	const char *p = h_path("%s", rel);
	char *buf = malloc(H_PATTERN_BLOCK);
	int fd;

	assert_non_null(buf);
	h_mkparent(rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("create %s: %s", p, strerror(errno));
	for (off_t off = 0; off < len; off += H_PATTERN_BLOCK) {
		size_t n = len - off < H_PATTERN_BLOCK ? (size_t)(len - off) :
							 H_PATTERN_BLOCK;

		h_pattern_block(buf, n, seed, off / H_PATTERN_BLOCK);
		for (size_t done = 0; done < n;) {
			ssize_t w = write(fd, buf + done, n - done);

			if (w <= 0)
				fail_msg("write %s: %s", p, strerror(errno));
			done += w;
		}
	}
	close(fd);
	free(buf);
}

uint64_t h_pattern_hash(off_t len, unsigned seed)
{
	char *buf = malloc(H_PATTERN_BLOCK);
	uint64_t h = H_HASH_INIT;

	assert_non_null(buf);
	for (off_t off = 0; off < len; off += H_PATTERN_BLOCK) {
		size_t n = len - off < H_PATTERN_BLOCK ? (size_t)(len - off) :
							 H_PATTERN_BLOCK;

		h_pattern_block(buf, n, seed, off / H_PATTERN_BLOCK);
		h = h_hash_data(h, buf, n);
	}
	free(buf);
	return h;
}

static void h_tree_add(struct h_tree *t, const char *abs, const char *rel,
		       dev_t dev)
{
	struct h_entry *e;
	struct stat st;

	if (lstat(abs, &st) < 0)
		fail_msg("lstat %s: %s", abs, strerror(errno));
	t->v = realloc(t->v, (t->n + 1) * sizeof(*t->v));
	assert_non_null(t->v);
	e = &t->v[t->n++];
	memset(e, 0, sizeof(*e));
	e->path = strdup(rel);
	assert_non_null(e->path);
	e->mode = st.st_mode;
	e->uid = st.st_uid;
	e->gid = st.st_gid;
	e->ino = st.st_ino;
	e->nlink = st.st_nlink;
	e->mtime = st.st_mtim;
	if (S_ISREG(st.st_mode)) {
		e->hash = h_hash_file(abs, &e->size);
		if (e->size != st.st_size)
			fail_msg("%s: st_size %lld but %lld bytes read", abs,
				 (long long)st.st_size, (long long)e->size);
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(abs, target, sizeof(target) - 1);

		if (n < 0)
			fail_msg("readlink %s: %s", abs, strerror(errno));
		target[n] = '\0';
		e->link = strdup(target);
		e->size = st.st_size;
	} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		e->rdev = st.st_rdev;
	}
	if (!S_ISDIR(st.st_mode) || (*rel && st.st_dev != dev))
		return;

	size_t n;
	char **names = h_listdir(abs, &n);

	for (size_t i = 0; i < n; i++) {
		char a[PATH_MAX], r[PATH_MAX];

		if (!strcmp(names[i], ".") || !strcmp(names[i], ".."))
			continue;
		snprintf(a, sizeof(a), "%s/%s", abs, names[i]);
		snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "",
			 names[i]);
		h_tree_add(t, a, r, dev);
	}
	h_strv_free(names, n);
}

static int h_cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct h_entry *)a)->path,
		      ((const struct h_entry *)b)->path);
}

void h_tree_walk(const char *dir, struct h_tree *ret)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		fail_msg("lstat %s: %s", dir, strerror(errno));
	ret->v = NULL;
	ret->n = 0;
	h_tree_add(ret, dir, "", st.st_dev);
	qsort(ret->v, ret->n, sizeof(*ret->v), h_cmp_entry);
}

void h_tree_free(struct h_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].path);
		free(t->v[i].link);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

static void h_entry_print(FILE *f, const struct h_entry *e)
{
	fprintf(f, "/%s: mode %06o uid %u gid %u size %lld ino %llu "
		   "nlink %lu",
		e->path, (unsigned)e->mode, (unsigned)e->uid, (unsigned)e->gid,
		(long long)e->size, (unsigned long long)e->ino,
		(unsigned long)e->nlink);
	if (S_ISREG(e->mode))
		fprintf(f, " hash %016llx", (unsigned long long)e->hash);
	if (e->link)
		fprintf(f, " -> %s", e->link);
	if (S_ISCHR(e->mode) || S_ISBLK(e->mode))
		fprintf(f, " rdev %u:%u", major(e->rdev), minor(e->rdev));
}

void h_tree_print(const struct h_tree *t, const char *title)
{
	char *buf = NULL;
	size_t cap = 0;
	FILE *mem = open_memstream(&buf, &cap);

	fprintf(mem, "%s (%zu objects):\n", title, t->n);
	for (size_t i = 0; i < t->n; i++) {
		fprintf(mem, "  ");
		h_entry_print(mem, &t->v[i]);
		fprintf(mem, "\n");
	}
	fclose(mem);
	print_message("%s", buf);
	free(buf);
}

/* The differences between two entries of one path, as text; "" when
 * none. */
static void h_entry_diff(FILE *f, const struct h_entry *a,
			 const struct h_entry *b, unsigned flags)
{
	bool differ = (a->mode & S_IFMT) != (b->mode & S_IFMT) ||
		      a->rdev != b->rdev ||
		      (!S_ISDIR(a->mode) && a->size != b->size) ||
		      (S_ISREG(a->mode) && a->hash != b->hash) ||
		      (a->link && b->link && strcmp(a->link, b->link));

	if ((flags & H_CMP_MODE) && (a->mode & 07777) != (b->mode & 07777))
		differ = true;
	if ((flags & H_CMP_OWNER) && (a->uid != b->uid || a->gid != b->gid))
		differ = true;
	if ((flags & H_CMP_INO) && a->ino != b->ino)
		differ = true;
	if ((flags & H_CMP_NLINK) && !S_ISDIR(a->mode) && a->nlink != b->nlink)
		differ = true;
	if ((flags & H_CMP_MTIME) && !S_ISDIR(a->mode) &&
	    (a->mtime.tv_sec != b->mtime.tv_sec ||
	     a->mtime.tv_nsec != b->mtime.tv_nsec))
		differ = true;
	if (!differ)
		return;
	fprintf(f, "  differs:\n    ");
	h_entry_print(f, a);
	fprintf(f, "\n    ");
	h_entry_print(f, b);
	fprintf(f, "\n");
}

void h_tree_assert_equal(const struct h_tree *a, const struct h_tree *b,
			 unsigned flags, const char *what)
{
	char *buf = NULL;
	size_t cap = 0, i = 0, j = 0;
	FILE *mem = open_memstream(&buf, &cap);
	bool same;

	while (i < a->n || j < b->n) {
		int c = i == a->n ? 1 :
			j == b->n ? -1 :
				    strcmp(a->v[i].path, b->v[j].path);

		if (c < 0) {
			fprintf(mem, "  only in the first:  ");
			h_entry_print(mem, &a->v[i++]);
			fprintf(mem, "\n");
		} else if (c > 0) {
			fprintf(mem, "  only in the second: ");
			h_entry_print(mem, &b->v[j++]);
			fprintf(mem, "\n");
		} else {
			h_entry_diff(mem, &a->v[i++], &b->v[j++], flags);
		}
	}
	fclose(mem);
	same = !buf || !*buf;
	if (!same)
		print_error("%s: trees differ:\n%s", what, buf);
	free(buf);
	if (!same)
		fail_msg("%s: trees differ", what);
}

/* ---- kernel mounts ----------------------------------------------------- */

int h_kmount(const char *fstype, const char *source, const char *opts,
	     const char *mnt, struct h_mount **ret)
{
	char p[PATH_MAX];
	struct h_mount *m;

	h_need_root();
	h_mkdir(mnt);
	snprintf(p, sizeof(p), "%s", h_path("%s", mnt));
	if (mount(source, p, fstype, 0, opts) < 0)
		return -errno;
	m = h_slot(p);
	pthread_mutex_lock(&cur->lock);
	m->kernel = true;
	m->active = true;
	pthread_mutex_unlock(&cur->lock);
	*ret = m;
	return 0;
}

/* ---- robustness tests -------------------------------------------------- */

unsigned h_scale(void)
{
	const char *s = getenv("PLY_STRESS_SCALE");
	long v = s && *s ? strtol(s, NULL, 10) : 1;

	return v < 1 ? 1 : v > 100000 ? 100000 : (unsigned)v;
}

unsigned h_seed(const char *what, unsigned def)
{
	const char *s = getenv("PLY_SEED");
	unsigned seed = s && *s ? (unsigned)strtoul(s, NULL, 0) : def;

	print_message("%s: seed %u (PLY_SEED=%u to repeat), scale %u\n", what,
		      seed, seed, h_scale());
	return seed;
}

void h_tmpfs_opts(const char *rel, const char *opts)
{
	const char *p = h_path("%s", rel);

	h_need_root();
	assert_true(cur->ntmpfs < H_MAX_TMPFS);
	h_mkdir(rel);
	if (mount("plyfs-test", p, "tmpfs", 0, opts) < 0)
		fail_msg("mount tmpfs -o %s %s: %s", opts, p, strerror(errno));
	pthread_mutex_lock(&cur->lock);
	snprintf(cur->tmpfs[cur->ntmpfs++], PATH_MAX, "%s", p);
	pthread_mutex_unlock(&cur->lock);
}

void h_crash(struct h_mount *m)
{
	int status;

	assert_true(m->pid > 0);
	kill(m->pid, SIGKILL);
	if (h_wait(m->pid, H_EXIT_WAIT_MS, &status) < 0)
		fail_msg("plyfs (pid %d) survives SIGKILL", m->pid);
	pthread_mutex_lock(&cur->lock);
	m->pid = 0;
	pthread_mutex_unlock(&cur->lock);
}

void h_assert_alive(struct h_mount *m)
{
	int status;
	pid_t pid;

	if (m->pid > 0 && h_wait(m->pid, 0, &status) == 0) {
		pthread_mutex_lock(&cur->lock);
		m->pid = 0;
		pthread_mutex_unlock(&cur->lock);
		fail_msg("plyfs at %s died: status 0x%x (%s %d)", m->path,
			 status,
			 WIFSIGNALED(status) ? "signal" : "exit",
			 WIFSIGNALED(status) ? WTERMSIG(status) :
					       WEXITSTATUS(status));
	}
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat st;

		_exit(stat(m->path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 :
									 1);
	}
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
		h_kill(pid);
		fail_msg("stat %s: no answer within %d ms: the daemon hangs",
			 m->path, H_EXIT_WAIT_MS);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("stat %s failed: the daemon does not answer",
			 m->path);
}

int h_rm_at(int dirfd, const char *name)
{
	struct stat st, dst;
	int fd, r = 0;
	DIR *d;
	struct dirent *de;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
	if (fstat(dirfd, &dst) == 0 && dst.st_dev != st.st_dev)
		return -EXDEV;
	/* a directory we may not read or search: open it up first */
	fchmodat(dirfd, name, 0700, 0);
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		int e;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		e = h_rm_at(fd, de->d_name);
		if (e < 0 && r == 0)
			r = e;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && r == 0)
		r = -errno;
	return r;
}

int h_umount_diag(struct h_mount *m)
{
	int status;

	if (m->kernel || m->pid <= 0)
		return h_umount(m);
	for (int i = 0; i < 8 && h_is_mountpoint(m->path); i++) {
		if (!h_fusermount(m->path) && umount2(m->path, MNT_DETACH) < 0)
			break;
	}
	if (h_wait(m->pid, h_exit_wait_ms(), &status) == 0) {
		pthread_mutex_lock(&cur->lock);
		m->pid = 0;
		m->active = false;
		pthread_mutex_unlock(&cur->lock);
		char *err = h_slurp(m->errlog);

		if (status != 0)
			fprintf(stderr, "harness: plyfs exited 0x%x; stderr:\n%s",
				status, err ? err : "");
		h_scan_text(err, "plyfs");
		free(err);
		return status;
	}
	fprintf(stderr, "harness: plyfs (pid %d) still running %d ms after "
			"the unmount; its threads:\n", m->pid, h_exit_wait_ms());
	if (access("/usr/bin/gdb", X_OK) == 0) {
		char pid[16];
		pid_t g;
		int gs;

		snprintf(pid, sizeof(pid), "%d", m->pid);
		fflush(NULL);
		g = fork();
		if (g == 0) {
			/* onto our stderr */
			dup2(2, 1);
			syscall(SYS_close_range, 3U, ~0U, 0U);
			execl("/usr/bin/gdb", "gdb", "-p", pid, "-batch", "-ex",
			      "thread apply all bt", (char *)NULL);
			_exit(127);
		}
		if (g > 0 && h_wait(g, H_RUN_WAIT_MS, &gs) < 0)
			h_kill(g);
	}
	return h_umount(m);
}

struct stat h_lstat(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		fail_msg("lstat %s: %s", path, strerror(errno));
	return st;
}

void h_append(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	size_t len = strlen(data);

	if (fd < 0)
		fail_msg("open %s for appending: %s", path, strerror(errno));
	if (write(fd, data, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	if (close(fd) < 0)
		fail_msg("close %s: %s", path, strerror(errno));
}

void h_sfmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		fail_msg("string too long: %.40s...", buf);
}
