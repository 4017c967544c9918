/* test-volstore.c: the volume store (volstore.c): named and anonymous
 * volumes and their layout, names, meta.json, concurrent creation, the
 * lock and the mount records that make rm refuse a volume in use, stale
 * records, links planted in the store, size, prune; and plyctl volume end
 * to end (run from $PLYCTL, set by meson). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tree.h"

struct fx {
	char *base;
	char *store; /* base/store */
	struct ply_volstore vs;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct ply_err err = { "" };

	assert_non_null(fx);
	fx->base = tree_mkdtemp();
	fx->store = strdup(tree_path(fx->base, "store"));
	assert_non_null(fx->store);
	assert_int_equal(ply_volstore_open(fx->store, true, &fx->vs, &err), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	ply_volstore_close(&fx->vs);
	tree_remove(fx->base);
	free(fx->store);
	free(fx->base);
	free(fx);
	return 0;
}

static const char *vpath(const struct fx *fx, const char *rel)
{
	static char buf[4][PATH_MAX];
	static unsigned next;
	char *b = buf[next++ % 4];

	snprintf(b, PATH_MAX, "%s/volumes/%s", fx->store, rel);
	return b;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static void create(struct fx *fx, const char *name, bool want_created)
{
	struct ply_err err = { "" };
	char *got = NULL;
	bool created = !want_created;

	assert_int_equal(ply_volstore_create(&fx->vs, name, &got, &created,
					     &err),
			 0);
	assert_string_equal(got, name);
	assert_int_equal(created, want_created);
	free(got);
}

/* Checks meta.json: whole, valid, and what it says. */
static void check_meta(struct fx *fx, const char *name, bool anonymous)
{
	char want[256], path[PATH_MAX];
	const char *json;
	int y, mo, d, h, mi, s, n = 0;
	char z = 0;

	snprintf(path, sizeof(path), "%s/meta.json", vpath(fx, name));
	json = slurp(path);
	assert_non_null(json);
	snprintf(want, sizeof(want), "{\"name\":\"%s\",\"created\":\"", name);
	assert_memory_equal(json, want, strlen(want));
	assert_int_equal(sscanf(json + strlen(want),
				"%4d-%2d-%2dT%2d:%2d:%2d%c\"%n", &y, &mo, &d,
				&h, &mi, &s, &z, &n),
			 7);
	assert_int_equal(z, 'Z');
	assert_true(y >= 2024 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31);
	snprintf(want, sizeof(want), ",\"anonymous\":%s}\n",
		 anonymous ? "true" : "false");
	assert_string_equal(json + strlen("{\"name\":\"\",\"created\":\"") +
				    strlen(name) + (size_t)n,
			    want);
}

/* Nothing but the volume's own entries: no temporaries left. */
static void check_layout(struct fx *fx, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	assert_int_equal(stat(tree_path(fx->store, "volumes"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(lstat(vpath(fx, name), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/_data", vpath(fx, name));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_uid, geteuid());
	snprintf(path, sizeof(path), "%s/lock", vpath(fx, name));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	snprintf(path, sizeof(path), "%s/mounts", vpath(fx, name));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	{
		DIR *d = opendir(vpath(fx, name));
		struct dirent *de;
		int n = 0;

		assert_non_null(d);
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' &&
			    (!de->d_name[1] ||
			     (de->d_name[1] == '.' && !de->d_name[2])))
				continue;
			assert_true(!strcmp(de->d_name, "_data") ||
				    !strcmp(de->d_name, "lock") ||
				    !strcmp(de->d_name, "mounts") ||
				    !strcmp(de->d_name, "meta.json"));
			n++;
		}
		closedir(d);
		assert_int_equal(n, 4);
	}
}

static void test_create_named(void **state)
{
	struct fx *fx = *state;

	umask(077); /* _data is 0755 whatever the umask */
	create(fx, "data", true);
	umask(022);
	check_layout(fx, "data");
	check_meta(fx, "data", false);
	/* a second create finds it and changes nothing */
	tree_write(vpath(fx, "data"), "_data/keep", "x");
	create(fx, "data", false);
	assert_true(exists(vpath(fx, "data/_data/keep")));
	check_meta(fx, "data", false);
}

static void test_create_anonymous(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	char *a = NULL, *b = NULL;
	bool created = false;

	assert_int_equal(ply_volstore_create(&fx->vs, NULL, &a, &created,
					     &err),
			 0);
	assert_true(created);
	assert_int_equal(ply_volstore_create(&fx->vs, "", &b, &created, &err),
			 0);
	assert_true(created);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(strspn(a, "0123456789abcdef"), 64);
	assert_string_not_equal(a, b);
	check_layout(fx, a);
	check_meta(fx, a, true);
	free(a);
	free(b);
}

static void test_names(void **state)
{
	static const char *const good[] = { "a", "Z", "0", "db-data",
					    "my_vol.1", "a.b-c_d" };
	static const char *const bad[] = { "", "-a", ".a", "_a", "a/b", "..",
					   ".", "a b", "a\n", "é", "a:b" };
	struct fx *fx = *state;
	struct ply_err err = { "" };
	char longest[130];

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_true(ply_volstore_name_ok(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_false(ply_volstore_name_ok(bad[i]));
	memset(longest, 'a', 128);
	longest[128] = '\0';
	assert_true(ply_volstore_name_ok(longest));
	longest[128] = 'a';
	longest[129] = '\0';
	assert_false(ply_volstore_name_ok(longest));
	assert_false(ply_volstore_name_ok(NULL));
	for (size_t i = 1; i < sizeof(bad) / sizeof(*bad); i++) {
		char *got = NULL;

		assert_int_equal(ply_volstore_create(&fx->vs, bad[i], &got,
						     NULL, &err),
				 -EINVAL);
		assert_non_null(strstr(err.msg, "invalid volume name"));
	}
	assert_int_equal(ply_volstore_remove(&fx->vs, "../x", &err), -EINVAL);
}

/* Many processes create the same name at once: all succeed, one of them
 * created it, and the volume is whole. */
static void test_create_race(void **state)
{
	enum { N = 12 };
	struct fx *fx = *state;
	int go[2], res[2], ncreated = 0;
	pid_t pids[N];
	char c;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(res), 0);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct ply_volstore vs;
			struct ply_err err;
			bool created;
			char *name;

			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(3);
			if (ply_volstore_open(fx->store, true, &vs, &err) < 0 ||
			    ply_volstore_create(&vs, "race", &name, &created,
						&err) < 0)
				_exit(2);
			c = created ? 'c' : 'f';
			_exit(write(res[1], &c, 1) == 1 ? 0 : 4);
		}
	}
	close(go[0]);
	close(go[1]); /* all start at once */
	close(res[1]);
	for (int i = 0; i < N; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(read(res[0], &c, 1), 1);
		ncreated += c == 'c';
	}
	close(res[0]);
	assert_int_equal(ncreated, 1);
	check_layout(fx, "race");
	check_meta(fx, "race", false);
}

/* A child process attaches the volume as a mount would and holds it
 * until told to go. */
struct holder {
	pid_t pid;
	int release; /* write end: closing it lets the child exit */
};

/* The release ends of the holders alive: a new holder must not keep
 * them open, or closing one would not let its child go. */
static int live_releases[8];
static int nlive;

static struct holder hold(struct fx *fx, const char *name, const char *mnt)
{
	struct holder h;
	int ready[2], rel[2];
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(rel), 0);
	h.pid = fork();
	assert_true(h.pid >= 0);
	if (h.pid == 0) {
		struct ply_volstore vs;
		struct ply_err err;
		int datafd, lockfd;

		close(ready[0]);
		close(rel[1]);
		for (int i = 0; i < nlive; i++)
			close(live_releases[i]);
		if (ply_volstore_open(fx->store, false, &vs, &err) < 0 ||
		    ply_volstore_attach(&vs, name, mnt, &datafd, &lockfd,
					&err) < 0) {
			fprintf(stderr, "attach: %s\n", err.msg);
			_exit(2);
		}
		c = 'r';
		if (write(ready[1], &c, 1) != 1)
			_exit(3);
		(void)!read(rel[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(rel[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	h.release = rel[1];
	assert_true(nlive < 8);
	live_releases[nlive++] = h.release;
	return h;
}

static void unhold(struct holder *h)
{
	int status;

	for (int i = 0; i < nlive; i++)
		if (live_releases[i] == h->release)
			live_releases[i] = live_releases[--nlive];
	close(h->release);
	assert_int_equal(waitpid(h->pid, &status, 0), h->pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_attach(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	char **mounts = NULL, path[PATH_MAX];
	int datafd, lockfd, fd;
	size_t n = 0;
	struct stat a, b;

	create(fx, "data", true);
	assert_int_equal(ply_volstore_in_use(&fx->vs, "data", &mounts, &n,
					     &err),
			 0);
	assert_int_equal(ply_volstore_attach(&fx->vs, "data", "/mnt/one",
					     &datafd, &lockfd, &err),
			 0);
	/* the data directory, as an O_PATH fd */
	assert_int_equal(fstat(datafd, &a), 0);
	snprintf(path, sizeof(path), "%s/_data", vpath(fx, "data"));
	assert_int_equal(stat(path, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(fcntl(datafd, F_GETFL) & O_PATH, O_PATH);
	assert_true(fcntl(datafd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(lockfd, F_GETFD) & FD_CLOEXEC);
	/* the record: named by our pid, holding the mountpoint */
	snprintf(path, sizeof(path), "%s/mounts/%d", vpath(fx, "data"),
		 (int)getpid());
	assert_string_equal(slurp(path), "/mnt/one");
	/* the lock counts even from this process */
	assert_int_equal(ply_volstore_in_use(&fx->vs, "data", &mounts, &n,
					     &err),
			 1);
	assert_int_equal(n, 1);
	assert_string_equal(mounts[0], "/mnt/one");
	ply_strv_free(mounts, n);
	assert_int_equal(ply_volstore_remove(&fx->vs, "data", &err), -EBUSY);
	assert_string_equal(err.msg,
			    "volume data is in use by the mount at /mnt/one");
	/* a lock held elsewhere stays, too: the test only probes */
	fd = open(tree_path(vpath(fx, "data"), "lock"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	close(fd);
	close(datafd);
	close(lockfd);
	/* closed: no longer in use, and the record is cleaned */
	assert_int_equal(ply_volstore_in_use(&fx->vs, "data", NULL, NULL,
					     &err),
			 0);
	assert_false(exists(path));
	assert_int_equal(ply_volstore_attach(&fx->vs, "nope", "/m", &datafd,
					     &lockfd, &err),
			 -ENOENT);
}

static void test_rm_in_use(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	struct holder h1, h2;
	struct ply_volume_info info;

	create(fx, "db", true);
	tree_write(vpath(fx, "db"), "_data/table", "rows");
	h1 = hold(fx, "db", "/run/c1/merged");
	assert_int_equal(ply_volstore_remove(&fx->vs, "db", &err), -EBUSY);
	assert_string_equal(err.msg,
			    "volume db is in use by the mount at /run/c1/merged");
	assert_true(exists(vpath(fx, "db/_data/table")));
	h2 = hold(fx, "db", "/run/c2/merged");
	assert_int_equal(ply_volstore_inspect(&fx->vs, "db", &info, &err), 0);
	assert_true(info.in_use);
	assert_int_equal(info.nmountpoints, 2);
	assert_string_equal(info.mountpoints[0], "/run/c1/merged");
	assert_string_equal(info.mountpoints[1], "/run/c2/merged");
	ply_volume_info_free(&info);
	assert_int_equal(ply_volstore_remove(&fx->vs, "db", &err), -EBUSY);
	assert_non_null(strstr(err.msg, "mounts at /run/c1/merged, /run/c2/merged"));
	unhold(&h1);
	/* the one gone is no longer named; the other still holds */
	assert_int_equal(ply_volstore_remove(&fx->vs, "db", &err), -EBUSY);
	assert_string_equal(err.msg,
			    "volume db is in use by the mount at /run/c2/merged");
	unhold(&h2);
	assert_int_equal(ply_volstore_remove(&fx->vs, "db", &err), 0);
	assert_false(exists(vpath(fx, "db")));
	/* nothing left behind: no trash */
	{
		DIR *d = opendir(tree_path(fx->store, "volumes"));
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)))
			assert_true(de->d_name[0] == '.');
		closedir(d);
	}
	assert_int_equal(ply_volstore_remove(&fx->vs, "db", &err), -ENOENT);
	assert_string_equal(err.msg, "no such volume: db");
}

static pid_t dead_pid(void)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return pid;
}

static void test_stale_records(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	char rel[64], **mounts = NULL;
	struct holder h;
	size_t n = 0;
	pid_t dead = dead_pid();

	create(fx, "v", true);
	snprintf(rel, sizeof(rel), "mounts/%d", (int)dead);
	tree_write(vpath(fx, "v"), rel, "/mnt/crashed");
	/* lock free: the record is stale whoever wrote it */
	tree_write(vpath(fx, "v"), "mounts/1", "/mnt/init");
	assert_int_equal(ply_volstore_in_use(&fx->vs, "v", &mounts, &n, &err),
			 0);
	assert_false(exists(tree_path(vpath(fx, "v"), rel)));
	assert_false(exists(vpath(fx, "v/mounts/1")));
	/* lock held: the records of live processes name the mounts, the
	 * others are left out (and kept until the lock is free) */
	tree_write(vpath(fx, "v"), rel, "/mnt/crashed");
	h = hold(fx, "v", "/mnt/live");
	assert_int_equal(ply_volstore_in_use(&fx->vs, "v", &mounts, &n, &err),
			 1);
	assert_int_equal(n, 1);
	assert_string_equal(mounts[0], "/mnt/live");
	ply_strv_free(mounts, n);
	assert_true(exists(tree_path(vpath(fx, "v"), rel)));
	unhold(&h);
	assert_int_equal(ply_volstore_in_use(&fx->vs, "v", &mounts, &n, &err),
			 0);
	assert_false(exists(tree_path(vpath(fx, "v"), rel)));
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/mounts/%d", vpath(fx, "v"),
			 (int)h.pid);
		assert_false(exists(path));
	}
	assert_int_equal(ply_volstore_remove(&fx->vs, "v", &err), 0);
}

/* A daemon that forks after attaching: the process that wrote the record
 * is gone, but its child holds the lock, and the record names it. */
static void test_forked_holder(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	char **mounts = NULL;
	int ready[2], rel[2], status;
	size_t n = 0;
	pid_t pid;
	char c;

	create(fx, "v", true);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(rel), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ply_volstore vs;
		int datafd, lockfd;

		close(ready[0]);
		close(rel[1]);
		if (ply_volstore_open(fx->store, false, &vs, &err) < 0 ||
		    ply_volstore_attach(&vs, "v", "/mnt/daemon", &datafd,
					&lockfd, &err) < 0)
			_exit(2);
		if (fork() != 0)
			_exit(0); /* the parent goes, the daemon stays */
		c = 'r';
		if (write(ready[1], &c, 1) != 1)
			_exit(3);
		(void)!read(rel[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(rel[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(ply_volstore_in_use(&fx->vs, "v", &mounts, &n, &err),
			 1);
	assert_int_equal(n, 1);
	assert_string_equal(mounts[0], "/mnt/daemon");
	ply_strv_free(mounts, n);
	assert_int_equal(ply_volstore_remove(&fx->vs, "v", &err), -EBUSY);
	assert_string_equal(err.msg,
			    "volume v is in use by the mount at /mnt/daemon");
	close(rel[1]); /* the daemon exits */
	assert_int_equal(read(ready[0], &c, 1), 0);
	close(ready[0]);
	for (int i = 0; i < 500; i++) {
		if (ply_volstore_remove(&fx->vs, "v", &err) == 0)
			break;
		usleep(10000);
	}
	assert_false(exists(vpath(fx, "v")));
}

/* rm racing mounts that attach: the lock settles every round. An attach
 * that succeeds holds a volume that stays in place until it lets go; a
 * removal either removes or refuses. */
static void test_rm_attach_race(void **state)
{
	enum { ROUNDS = 300 };
	struct fx *fx = *state;
	struct ply_err err = { "" };
	int status, removed = 0, busy = 0;
	pid_t pid;

	create(fx, "v", true);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ply_volstore vs;
		int bad = 0;

		if (ply_volstore_open(fx->store, false, &vs, &err) < 0)
			_exit(2);
		for (int i = 0; i < ROUNDS; i++) {
			int datafd, lockfd, r;
			struct stat a, b;
			char path[PATH_MAX];

			ply_volstore_create(&vs, "v", NULL, NULL, &err);
			r = ply_volstore_attach(&vs, "v", "/mnt/race", &datafd,
						&lockfd, &err);
			if (r == -ENOENT)
				continue;
			if (r < 0)
				_exit(3);
			snprintf(path, sizeof(path), "%s/volumes/v/_data",
				 fx->store);
			for (int j = 0; j < 20; j++) {
				if (fstat(datafd, &a) < 0 ||
				    stat(path, &b) < 0 || a.st_ino != b.st_ino)
					bad++;
			}
			close(datafd);
			close(lockfd);
		}
		_exit(bad ? 4 : 0);
	}
	/* remove for as long as the child attaches */
	while (waitpid(pid, &status, WNOHANG) == 0) {
		int r = ply_volstore_remove(&fx->vs, "v", &err);

		if (r != 0 && r != -EBUSY && r != -ENOENT)
			fail_msg("remove: %d %s", r, err.msg);
		removed += r == 0;
		busy += r == -EBUSY;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	print_message("race: %d removed, %d refused\n", removed, busy);
}

/* A symlink planted anywhere in the store is refused, never followed. */
static void test_symlinks(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	struct ply_volume_info info;
	char **names = NULL;
	size_t n = 0;
	int datafd, lockfd;

	tree_mkdir(fx->base, "outside/_data");
	tree_write(fx->base, "outside/_data/precious", "keep");
	tree_write(fx->base, "outside/lock", "");
	tree_symlink(fx->store, "volumes/evil", tree_path(fx->base, "outside"));
	assert_int_equal(ply_volstore_attach(&fx->vs, "evil", "/m", &datafd,
					     &lockfd, &err),
			 -ELOOP);
	assert_non_null(strstr(err.msg, "symlink"));
	assert_int_equal(ply_volstore_remove(&fx->vs, "evil", &err), -ELOOP);
	assert_int_equal(ply_volstore_inspect(&fx->vs, "evil", &info, &err),
			 -ELOOP);
	assert_int_equal(ply_volstore_create(&fx->vs, "evil", NULL, NULL,
					     &err),
			 -ELOOP);
	assert_int_equal(ply_volstore_list(&fx->vs, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_true(exists(tree_path(fx->base, "outside/_data/precious")));

	/* inside a volume: _data, lock, mounts/ */
	create(fx, "v", true);
	assert_int_equal(rename(vpath(fx, "v/_data"), vpath(fx, "v/_old")), 0);
	tree_symlink(vpath(fx, "v"), "_data",
		     tree_path(fx->base, "outside/_data"));
	assert_int_equal(ply_volstore_attach(&fx->vs, "v", "/m", &datafd,
					     &lockfd, &err),
			 -ELOOP);
	assert_int_equal(unlink(vpath(fx, "v/_data")), 0);
	assert_int_equal(rename(vpath(fx, "v/_old"), vpath(fx, "v/_data")), 0);
	assert_int_equal(unlink(vpath(fx, "v/lock")), 0);
	tree_symlink(vpath(fx, "v"), "lock",
		     tree_path(fx->base, "outside/lock"));
	assert_int_equal(ply_volstore_attach(&fx->vs, "v", "/m", &datafd,
					     &lockfd, &err),
			 -ELOOP);
	assert_int_equal(ply_volstore_remove(&fx->vs, "v", &err), -ELOOP);
	assert_int_equal(unlink(vpath(fx, "v/lock")), 0);
	/* a removal deletes the links, never what they point to */
	tree_symlink(vpath(fx, "v"), "_data/link",
		     tree_path(fx->base, "outside"));
	assert_int_equal(ply_volstore_remove(&fx->vs, "v", &err), 0);
	assert_true(exists(tree_path(fx->base, "outside/_data/precious")));

	/* the volumes directory itself */
	assert_int_equal(rename(tree_path(fx->store, "volumes"),
				tree_path(fx->store, "old")),
			 0);
	tree_symlink(fx->store, "volumes", tree_path(fx->base, "outside"));
	assert_true(ply_volstore_list(&fx->vs, &names, &n, &err) < 0);
	assert_int_equal(ply_volstore_create(&fx->vs, "x", NULL, NULL, &err),
			 -ELOOP);
	assert_false(exists(tree_path(fx->base, "outside/x")));
}

static void test_list_inspect_size(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	struct ply_volume_info info;
	char **names = NULL, *anon = NULL, buf[8192];
	size_t n = 0;
	uint64_t size, empty;
	struct stat st;
	int fd;

	create(fx, "b", true);
	create(fx, "a", true);
	assert_int_equal(ply_volstore_create(&fx->vs, NULL, &anon, NULL, &err),
			 0);
	tree_mkdir(fx->store, "volumes/#rm-0123456789abcdef"); /* trash */
	assert_int_equal(ply_volstore_list(&fx->vs, &names, &n, &err), 0);
	assert_int_equal(n, 3);
	/* sorted bytewise: the anonymous name may sort anywhere */
	assert_true(strcmp(names[0], names[1]) < 0 &&
		    strcmp(names[1], names[2]) < 0);
	assert_true(!strcmp(names[0], anon) || !strcmp(names[1], anon) ||
		    !strcmp(names[2], anon));
	ply_strv_free(names, n);

	assert_int_equal(ply_volstore_inspect(&fx->vs, "a", &info, &err), 0);
	assert_string_equal(info.name, "a");
	assert_string_equal(info.data_path, vpath(fx, "a/_data"));
	assert_int_equal(strlen(info.created), 20);
	assert_false(info.anonymous);
	assert_false(info.in_use);
	assert_int_equal(info.nmountpoints, 0);
	ply_volume_info_free(&info);
	assert_int_equal(ply_volstore_inspect(&fx->vs, anon, &info, &err), 0);
	assert_true(info.anonymous);
	ply_volume_info_free(&info);

	/* size: blocks of everything, hard links once, links not followed */
	assert_int_equal(ply_volstore_size(&fx->vs, "a", &empty, &err), 0);
	assert_int_equal(stat(vpath(fx, "a/_data"), &st), 0);
	assert_int_equal(empty, (uint64_t)st.st_blocks * 512);
	memset(buf, 'x', sizeof(buf));
	fd = open(vpath(fx, "a/_data/f"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	fsync(fd);
	close(fd);
	tree_link(vpath(fx, "a"), "_data/f", "_data/f2");
	tree_symlink(vpath(fx, "a"), "_data/out", "/usr");
	tree_mkdir(vpath(fx, "a"), "_data/d");
	assert_int_equal(ply_volstore_size(&fx->vs, "a", &size, &err), 0);
	{
		uint64_t want = empty;
		struct stat f, l, d;

		assert_int_equal(lstat(vpath(fx, "a/_data/f"), &f), 0);
		assert_int_equal(lstat(vpath(fx, "a/_data/out"), &l), 0);
		assert_int_equal(lstat(vpath(fx, "a/_data/d"), &d), 0);
		want += (uint64_t)(f.st_blocks + l.st_blocks + d.st_blocks) *
			512;
		assert_int_equal(size, want);
		assert_true(size >= empty + 8192);
	}
	free(anon);
	assert_int_equal(ply_volstore_inspect(&fx->vs, "zz", &info, &err),
			 -ENOENT);
}

static int prune_count;
static char prune_seen[8][80];

static void on_removed(const char *name, void *ctx)
{
	(void)ctx;
	snprintf(prune_seen[prune_count++ % 8], 80, "%s", name);
}

static void test_prune(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	char *a1 = NULL, *a2 = NULL, **names = NULL;
	struct holder h;
	size_t n = 0;

	create(fx, "named", true);
	assert_int_equal(ply_volstore_create(&fx->vs, NULL, &a1, NULL, &err),
			 0);
	assert_int_equal(ply_volstore_create(&fx->vs, NULL, &a2, NULL, &err),
			 0);
	tree_mkdir(fx->store, "volumes/#rm-00000000deadbeef/_data/x");
	h = hold(fx, a2, "/mnt/busy");
	prune_count = 0;
	assert_int_equal(ply_volstore_prune(&fx->vs, false, on_removed, NULL,
					    &err),
			 0);
	assert_int_equal(prune_count, 1);
	assert_string_equal(prune_seen[0], a1);
	assert_false(exists(tree_path(fx->store,
				      "volumes/#rm-00000000deadbeef")));
	assert_int_equal(ply_volstore_list(&fx->vs, &names, &n, &err), 0);
	assert_int_equal(n, 2);
	ply_strv_free(names, n);
	/* --all: named ones too, never one in use */
	prune_count = 0;
	assert_int_equal(ply_volstore_prune(&fx->vs, true, on_removed, NULL,
					    &err),
			 0);
	assert_int_equal(prune_count, 1);
	assert_string_equal(prune_seen[0], "named");
	unhold(&h);
	prune_count = 0;
	assert_int_equal(ply_volstore_prune(&fx->vs, false, on_removed, NULL,
					    &err),
			 0);
	assert_int_equal(prune_count, 1);
	assert_string_equal(prune_seen[0], a2);
	assert_int_equal(ply_volstore_list(&fx->vs, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	free(a1);
	free(a2);
}

static void test_store_open(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };
	struct ply_volstore vs;
	char *def, **names = NULL, cwd[PATH_MAX];
	size_t n = 0;

	/* not created unless asked */
	assert_int_equal(ply_volstore_open(tree_path(fx->base, "none/s"),
					   false, &vs, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "does not exist"));
	/* created with its parents, 0700; a relative path made absolute */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->base), 0);
	assert_int_equal(ply_volstore_open("deep/er/s", true, &vs, &err), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(vs.path, tree_path(fx->base, "deep/er/s"));
	assert_int_equal(ply_volstore_list(&vs, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	ply_volstore_close(&vs);
	{
		struct stat st;

		assert_int_equal(stat(tree_path(fx->base, "deep/er/s"), &st),
				 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
	/* a store without volumes/ yet lists none */
	tree_mkdir(fx->base, "bare");
	assert_int_equal(ply_volstore_open(tree_path(fx->base, "bare"), false,
					   &vs, &err),
			 0);
	assert_int_equal(ply_volstore_list(&vs, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	ply_volstore_close(&vs);

	def = ply_volstore_default_path();
	assert_non_null(def);
	if (geteuid() == 0) {
		assert_string_equal(def, "/var/lib/plyfs");
	} else {
		const char *xdg = getenv("XDG_DATA_HOME");

		if (xdg && xdg[0] == '/')
			assert_non_null(strstr(def, "/plyfs"));
		else
			assert_non_null(strstr(def, "/.local/share/plyfs"));
	}
	free(def);
}

/* ---- plyctl volume, end to end ------------------------------------------- */

static const char *plyctl(void)
{
	const char *p = getenv("PLYCTL");

	if (!p || !*p)
		skip();
	return p;
}

/* Runs plyctl with args (a shell fragment), capturing stdout and stderr;
 * returns the exit status. */
static int run(const char *args, char *out, size_t outsz, char *errbuf,
	       size_t errsz)
{
	char cmd[4096], efile[] = "/tmp/ply-unit-err-XXXXXX";
	FILE *f;
	size_t n;
	int fd = mkstemp(efile), status;

	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>'%s'", plyctl(), args, efile);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, outsz - 1, f);
	out[n] = '\0';
	status = pclose(f);
	f = fopen(efile, "r");
	assert_non_null(f);
	n = fread(errbuf, 1, errsz - 1, f);
	errbuf[n] = '\0';
	fclose(f);
	unlink(efile);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_plyctl(void **state)
{
	struct fx *fx = *state;
	char args[2048], out[16384], errb[4096];
	struct holder h;
	char *anon;

	plyctl();
	snprintf(args, sizeof(args), "volume create --store '%s' web",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_string_equal(out, "web\n");
	snprintf(args, sizeof(args), "volume --store='%s' create", fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_int_equal(strlen(out), 65);
	anon = strndup(out, 64);
	assert_int_equal(strspn(anon, "0123456789abcdef"), 64);
	tree_write(vpath(fx, "web"), "_data/index.html", "<html>");

	h = hold(fx, "web", "/run/ctr/merged");
	snprintf(args, sizeof(args), "volume ls --store '%s'", fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "IN USE"));
	assert_non_null(strstr(out, "SIZE"));
	assert_non_null(strstr(out, "ANONYMOUS"));
	assert_non_null(strstr(out, "yes (/run/ctr/merged)"));
	assert_non_null(strstr(out, anon));

	snprintf(args, sizeof(args), "volume ls --json --store '%s'",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_non_null(strstr(out, "\"name\": \"web\""));
	assert_non_null(strstr(out, "\"in_use\": true, \"mountpoints\": [\"/run/ctr/merged\"]"));
	assert_non_null(strstr(out, "\"anonymous\": true"));
	assert_non_null(strstr(out, "\"size\": "));
	assert_int_equal(out[0], '[');

	snprintf(args, sizeof(args), "volume inspect --store '%s' web",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_non_null(strstr(out, "\"name\": \"web\""));
	{
		char want[PATH_MAX + 16];

		snprintf(want, sizeof(want), "\"path\": \"%s\"",
			 vpath(fx, "web/_data"));
		assert_non_null(strstr(out, want));
	}
	assert_non_null(strstr(out, "\"created\": \"20"));
	assert_non_null(strstr(out, "\"anonymous\": false"));
	assert_non_null(strstr(out, "\"mountpoints\": [\"/run/ctr/merged\"]"));

	/* rm refuses a volume in use, -f or not */
	snprintf(args, sizeof(args), "volume rm --store '%s' web", fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 1);
	assert_string_equal(errb,
			    "plyctl volume rm: volume web is in use by the mount at /run/ctr/merged\n");
	snprintf(args, sizeof(args), "volume rm -f --store '%s' web",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 1);
	assert_non_null(strstr(errb, "is in use by the mount at /run/ctr/merged"));
	assert_true(exists(vpath(fx, "web/_data/index.html")));
	/* prune leaves it, and the named volume too */
	snprintf(args, sizeof(args), "volume prune --store '%s' --all",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_int_equal(strlen(out), 65);
	assert_memory_equal(out, anon, 64);
	unhold(&h);
	snprintf(args, sizeof(args), "volume rm --store '%s' web nosuch",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 1);
	assert_string_equal(out, "web\n");
	assert_string_equal(errb, "plyctl volume rm: no such volume: nosuch\n");
	snprintf(args, sizeof(args), "volume rm -f --store '%s' nosuch",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	snprintf(args, sizeof(args), "volume ls --store '%s' --json",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_string_equal(out, "[\n]\n");

	/* usage errors: 2 */
	snprintf(args, sizeof(args), "volume create --store '%s' 'a/b'",
		 fx->store);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 2);
	assert_int_equal(run("volume", out, sizeof(out), errb, sizeof(errb)),
			 2);
	assert_int_equal(run("volume frob", out, sizeof(out), errb,
			     sizeof(errb)),
			 2);
	assert_int_equal(run("volume ls --bogus", out, sizeof(out), errb,
			     sizeof(errb)),
			 2);
	assert_int_equal(run("volume inspect", out, sizeof(out), errb,
			     sizeof(errb)),
			 2);
	assert_int_equal(run("volume rm --store", out, sizeof(out), errb,
			     sizeof(errb)),
			 2);
	/* --help on each */
	assert_int_equal(run("volume --help", out, sizeof(out), errb,
			     sizeof(errb)),
			 0);
	assert_non_null(strstr(out, "usage: plyctl volume"));
	{
		static const char *const subs[] = { "create", "ls", "inspect",
						    "rm", "prune" };

		for (size_t i = 0; i < 5; i++) {
			snprintf(args, sizeof(args), "volume %s --help",
				 subs[i]);
			assert_int_equal(run(args, out, sizeof(out), errb,
					     sizeof(errb)),
					 0);
			assert_non_null(strstr(out, "usage: plyctl volume "));
			assert_non_null(strstr(out, subs[i]));
		}
	}
	/* a store that does not exist: empty, not an error; nothing made */
	snprintf(args, sizeof(args), "volume ls --store '%s/absent'",
		 fx->base);
	assert_int_equal(run(args, out, sizeof(out), errb, sizeof(errb)), 0);
	assert_false(exists(tree_path(fx->base, "absent")));
	free(anon);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_named, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_create_anonymous, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_race, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_attach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rm_in_use, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stale_records, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forked_holder, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rm_attach_race, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_inspect_size, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_plyctl, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
