/* volstore.c: the volume store — named volumes that outlive mounts, their
 * metadata, the locks and records that say which mounts use them, and
 * their removal. Every path below the store is reached with *at() calls
 * from the store's fd, one component at a time, never following a link.
 *
 * STORE/volumes/NAME/_data      the volume's files
 * STORE/volumes/NAME/lock       held LOCK_SH by every mount using it;
 *                               LOCK_EX|LOCK_NB proves nobody does
 * STORE/volumes/NAME/mounts/PID the mountpoint of the attachment of
 *                               process PID (written atomically)
 * STORE/volumes/NAME/meta.json  {"name","created","anonymous"}
 *
 * Races are settled like this: mkdir of NAME decides who created a volume,
 * and every creator completes what is missing, so each returns a whole
 * volume. Removal takes the lock exclusively, renames NAME to a trash name
 * ("#rm-…", never a volume name) while holding it, and only then removes
 * the tree; an attacher takes the lock shared and checks that NAME is
 * still the directory it opened, so it either holds the volume before the
 * removal (which then refuses) or finds it gone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

#define VOLUMES_DIR "volumes"
#define DATA_DIR "_data"
#define LOCK_FILE "lock"
#define MOUNTS_DIR "mounts"
#define META_FILE "meta.json"
#define TRASH_PREFIX "#rm-"
#define NAME_MAX_LEN 128
#define ANON_LEN 64
/* how long an attach waits for a removal or a query holding the lock */
#define LOCK_WAIT_MS 10000

/* ---- small helpers ------------------------------------------------------- */

bool ply_volstore_name_ok(const char *name)
{
	size_t len;

	if (!name || !name[0])
		return false;
	len = strlen(name);
	if (len > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

static bool looks_anonymous(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return i == ANON_LEN;
}

static int random_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int random_hex(char *buf, size_t ndigits)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[64];
	int r;

	if (ndigits / 2 > sizeof(raw))
		return -EINVAL;
	r = random_bytes(raw, ndigits / 2);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ndigits / 2; i++) {
		buf[2 * i] = hex[raw[i] >> 4];
		buf[2 * i + 1] = hex[raw[i] & 15];
	}
	buf[ndigits] = '\0';
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static int strv_push(char ***v, size_t *n, const char *s)
{
	char **grown = realloc(*v, (*n + 1) * sizeof(**v));
	char *copy = strdup(s);

	if (grown)
		*v = grown;
	if (!grown || !copy) {
		free(copy);
		return -ENOMEM;
	}
	grown[(*n)++] = copy;
	return 0;
}

/* Calls fn for each entry of the directory fd (O_PATH is fine) but "."
 * and "..". fn returns < 0 to stop with that result. */
static int each_entry(int fd, int (*fn)(const char *name, unsigned char type,
					void *ctx),
		      void *ctx)
{
	int dfd = ply_sys_reopen(fd, O_RDONLY | O_DIRECTORY);
	char *buf;
	ssize_t n;
	int r = 0;

	if (dfd < 0)
		return dfd;
	buf = malloc(32768);
	if (!buf) {
		ply_sys_close(dfd);
		return -ENOMEM;
	}
	while (r >= 0 && (n = ply_sys_getdents(dfd, buf, 32768)) > 0) {
		for (ssize_t pos = 0; pos < n && r >= 0;) {
			struct dirent *de = (struct dirent *)(buf + pos);

			pos += de->d_reclen;
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				r = fn(de->d_name, de->d_type, ctx);
		}
	}
	if (r >= 0 && n < 0)
		r = (int)n;
	free(buf);
	ply_sys_close(dfd);
	return r;
}

/* Writes data to dirfd/name atomically: a temporary, synced, renamed into
 * place. noreplace keeps an existing name (-EEXIST). */
static int write_atomic(int dirfd, const char *name, const char *data,
			size_t len, bool noreplace)
{
	char temp[NAME_MAX + 1], hex[17];
	size_t done = 0;
	int fd, r;

	r = random_hex(hex, 16);
	if (r < 0)
		return r;
	snprintf(temp, sizeof(temp), ".%s.tmp-%s", name, hex);
	fd = ply_sys_openat(dirfd, temp,
			    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0644);
	if (fd < 0)
		return fd;
	while (r >= 0 && done < len) {
		ssize_t w = ply_sys_pwrite(fd, data + done, len - done,
					   (off_t)done);

		if (w < 0)
			r = (int)w;
		else
			done += (size_t)w;
	}
	if (r >= 0)
		r = ply_sys_fsync(fd);
	ply_sys_close(fd);
	if (r >= 0)
		r = ply_sys_renameat2(dirfd, temp, dirfd, name,
				      noreplace ? RENAME_NOREPLACE : 0);
	if (r < 0)
		ply_sys_unlinkat(dirfd, temp, 0);
	return r;
}

/* Reads the small regular file dirfd/name (never a link, never blocking
 * on a fifo) into buf, NUL-terminated; returns its length. */
static ssize_t read_small(int dirfd, const char *name, char *buf, size_t size)
{
	struct stat st;
	ssize_t n;
	int fd, r;

	fd = ply_sys_openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
			    0);
	if (fd < 0)
		return fd;
	r = ply_sys_fstat(fd, &st);
	if (r >= 0 && !S_ISREG(st.st_mode))
		r = -EINVAL;
	if (r < 0) {
		ply_sys_close(fd);
		return r;
	}
	n = ply_sys_pread(fd, buf, size - 1, 0);
	ply_sys_close(fd);
	if (n < 0)
		return n;
	buf[n] = '\0';
	return n;
}

static bool same_object(int dirfd, const char *name, int fd)
{
	struct stat a, b;

	return ply_sys_fstatat(dirfd, name, &a) == 0 &&
	       ply_sys_fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* ---- the store ----------------------------------------------------------- */

char *ply_volstore_default_path(void)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home;
	char *path = NULL;

	if (geteuid() == 0)
		return strdup("/var/lib/plyfs");
	/* the XDG spec: a relative XDG_DATA_HOME is invalid and ignored */
	if (xdg && xdg[0] == '/')
		return asprintf(&path, "%s/plyfs", xdg) < 0 ? NULL : path;
	home = getenv("HOME");
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());

		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || home[0] != '/')
		return NULL;
	return asprintf(&path, "%s/.local/share/plyfs", home) < 0 ? NULL : path;
}

static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *abs = NULL;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	return asprintf(&abs, "%s/%s", cwd, path) < 0 ? NULL : abs;
}

/* mkdir -p: the store's own path is the user's choice, so it may pass
 * through links; only what lies inside the store is never followed. */
static int mkdir_parents(const char *path, mode_t mode)
{
	char *p = strdup(path);
	int r = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; r >= 0; s++) {
		bool end = *s == '\0';

		if (*s != '/' && !end)
			continue;
		*s = '\0';
		r = ply_sys_mkdirat(AT_FDCWD, p, mode);
		if (r == -EEXIST)
			r = 0;
		if (end)
			break;
		*s = '/';
	}
	free(p);
	return r;
}

int ply_volstore_open(const char *path, bool create, struct ply_volstore *ret,
		      struct ply_err *err)
{
	char *def = NULL, *abs;
	int fd, r;

	if (!path) {
		def = ply_volstore_default_path();
		if (!def)
			return ply_err_set(err, -ENOENT,
					   "no default volume store: no home directory");
		path = def;
	}
	if (!path[0]) {
		free(def);
		return ply_err_set(err, -EINVAL, "volume store: empty path");
	}
	abs = absolute(path);
	free(def);
	if (!abs)
		return ply_err_set(err, -ENOMEM, "volume store: out of memory");
	if (create) {
		r = mkdir_parents(abs, 0700);
		if (r < 0) {
			ply_err_set(err, r, "volume store %s: cannot create: %s",
				    abs, strerror(-r));
			goto fail;
		}
	}
	fd = ply_sys_openat(AT_FDCWD, abs, O_PATH | O_DIRECTORY, 0);
	if (fd < 0) {
		r = ply_err_set(err, fd, "volume store %s: %s", abs,
				fd == -ENOENT ? "does not exist" :
						strerror(-fd));
		goto fail;
	}
	if (create) {
		r = ply_sys_mkdirat(fd, VOLUMES_DIR, 0700);
		if (r < 0 && r != -EEXIST) {
			ply_sys_close(fd);
			ply_err_set(err, r, "volume store %s: cannot create %s: %s",
				    abs, VOLUMES_DIR, strerror(-r));
			goto fail;
		}
	}
	ret->fd = fd;
	ret->path = abs;
	return 0;
fail:
	free(abs);
	return r;
}

void ply_volstore_close(struct ply_volstore *vs)
{
	ply_sys_close(vs->fd);
	free(vs->path);
	vs->fd = -1;
	vs->path = NULL;
}

/* Explains why dirfd/name could not be opened as a directory. */
static int not_a_dir(const struct ply_volstore *vs, int dirfd, const char *rel,
		     const char *name, int r, struct ply_err *err)
{
	struct stat st;

	if ((r == -ENOTDIR || r == -ELOOP) &&
	    ply_sys_fstatat(dirfd, name, &st) == 0)
		return ply_err_set(err, -ELOOP,
				   "volume store %s: %s%s is a %s, not a directory: refused",
				   vs->path, rel, name,
				   S_ISLNK(st.st_mode) ? "symlink" : "non-directory");
	return ply_err_set(err, r, "volume store %s: %s%s: %s", vs->path, rel,
			   name, strerror(-r));
}

/* STORE/volumes, as an O_PATH fd. */
static int open_volumes(const struct ply_volstore *vs, int *ret,
			struct ply_err *err)
{
	int fd = ply_sys_openat(vs->fd, VOLUMES_DIR,
				O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);

	if (fd == -ENOENT)
		return ply_err_set(err, -ENOENT, "volume store %s is empty",
				   vs->path);
	if (fd < 0)
		return not_a_dir(vs, vs->fd, "", VOLUMES_DIR, fd, err);
	*ret = fd;
	return 0;
}

/* STORE/volumes/NAME, as an O_PATH fd. */
static int open_volume(const struct ply_volstore *vs, int volfd,
		       const char *name, int *ret, struct ply_err *err)
{
	int fd;

	if (!ply_volstore_name_ok(name))
		return ply_err_set(err, -EINVAL, "invalid volume name '%s'",
				   name);
	fd = ply_sys_openat(volfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd == -ENOENT)
		return ply_err_set(err, -ENOENT, "no such volume: %s", name);
	if (fd < 0)
		return not_a_dir(vs, volfd, VOLUMES_DIR "/", name, fd, err);
	*ret = fd;
	return 0;
}

/* Both steps at once, for the callers that need only the volume. */
static int open_volume_at(const struct ply_volstore *vs, const char *name,
			  int *ret_volfd, int *ret_vfd, struct ply_err *err)
{
	int volfd, r;

	if (!ply_volstore_name_ok(name))
		return ply_err_set(err, -EINVAL, "invalid volume name '%s'",
				   name);
	r = open_volumes(vs, &volfd, err);
	if (r == -ENOENT)
		return ply_err_set(err, -ENOENT, "no such volume: %s", name);
	if (r < 0)
		return r;
	r = open_volume(vs, volfd, name, ret_vfd, err);
	if (r < 0) {
		ply_sys_close(volfd);
		return r;
	}
	*ret_volfd = volfd;
	return 0;
}

/* The volume's lock file, opened (created where missing) as a regular
 * file, never through a link. */
static int open_lock(const struct ply_volstore *vs, int vfd, const char *name,
		     bool create, int *ret, struct ply_err *err)
{
	struct stat st;
	int fd, r;

	fd = ply_sys_openat(vfd, LOCK_FILE,
			    O_RDWR | O_NOFOLLOW | O_NONBLOCK |
				    (create ? O_CREAT : 0),
			    0600);
	if (fd < 0)
		return ply_err_set(err, fd, "volume %s: lock file: %s", name,
				   fd == -ELOOP ? "a symlink, refused" :
						  strerror(-fd));
	r = ply_sys_fstat(fd, &st);
	if (r >= 0 && !S_ISREG(st.st_mode))
		r = -EINVAL;
	if (r < 0) {
		ply_sys_close(fd);
		return ply_err_set(err, r, "volume %s: lock file: %s", name,
				   r == -EINVAL ? "not a regular file" :
						  strerror(-r));
	}
	(void)vs;
	*ret = fd;
	return 0;
}

/* ---- creating ------------------------------------------------------------ */

static void now_rfc3339(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int write_meta(int vfd, const char *name, bool anonymous)
{
	char created[40], json[512];
	int len, r;

	now_rfc3339(created, sizeof(created));
	len = snprintf(json, sizeof(json),
		       "{\"name\":\"%s\",\"created\":\"%s\",\"anonymous\":%s}\n",
		       name, created, anonymous ? "true" : "false");
	if (len < 0 || (size_t)len >= sizeof(json))
		return -ENAMETOOLONG;
	/* a concurrent creator may have written it first: its time stays */
	r = write_atomic(vfd, META_FILE, json, (size_t)len, true);
	return r == -EEXIST ? 0 : r;
}

/* Makes whatever the volume lacks; every creator of the same name runs
 * it, so each may stop at any point and the next one finishes. */
static int complete_volume(int vfd, const char *name, bool anonymous)
{
	struct stat st;
	int fd, r;

	r = ply_sys_mkdirat(vfd, DATA_DIR, 0755);
	if (r >= 0) {
		/* exactly 0755, whatever the umask */
		fd = ply_sys_openat(vfd, DATA_DIR,
				    O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		if (fd < 0)
			return fd;
		r = ply_sys_fchmod_fd(fd, 0755);
		ply_sys_close(fd);
		if (r < 0)
			return r;
	} else if (r == -EEXIST) {
		r = ply_sys_fstatat(vfd, DATA_DIR, &st);
		if (r < 0)
			return r;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
	} else {
		return r;
	}
	fd = ply_sys_openat(vfd, LOCK_FILE,
			    O_CREAT | O_RDWR | O_NOFOLLOW | O_NONBLOCK, 0600);
	if (fd < 0)
		return fd;
	ply_sys_close(fd);
	r = ply_sys_mkdirat(vfd, MOUNTS_DIR, 0700);
	if (r < 0 && r != -EEXIST)
		return r;
	/* meta.json last: its presence says the volume is whole */
	if (ply_sys_fstatat(vfd, META_FILE, &st) == 0)
		return 0;
	return write_meta(vfd, name, anonymous);
}

int ply_volstore_create(const struct ply_volstore *vs, const char *name,
			char **ret_name, bool *ret_created,
			struct ply_err *err)
{
	bool anonymous = !name || !name[0];
	char anon[ANON_LEN + 1];
	int volfd, r;

	if (!anonymous && !ply_volstore_name_ok(name))
		return ply_err_set(err, -EINVAL,
				   "invalid volume name '%s': use letters, digits, '_', '.' and '-', starting with a letter or digit, at most %d bytes",
				   name, NAME_MAX_LEN);
	r = ply_sys_mkdirat(vs->fd, VOLUMES_DIR, 0700);
	if (r < 0 && r != -EEXIST)
		return ply_err_set(err, r, "volume store %s: cannot create %s: %s",
				   vs->path, VOLUMES_DIR, strerror(-r));
	r = open_volumes(vs, &volfd, err);
	if (r < 0)
		return r;
	/* a removal may take the name away while we complete it: again */
	for (int tries = 0; tries < 16; tries++) {
		bool created;
		int vfd;

		if (anonymous) {
			r = random_hex(anon, ANON_LEN);
			if (r < 0)
				break;
			name = anon;
		}
		r = ply_sys_mkdirat(volfd, name, 0700);
		created = r >= 0;
		if (r == -EEXIST && anonymous)
			continue; /* 256 random bits collided: draw again */
		if (r < 0 && r != -EEXIST)
			break;
		r = ply_sys_openat(volfd, name,
				   O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			r = not_a_dir(vs, volfd, VOLUMES_DIR "/", name, r, err);
			ply_sys_close(volfd);
			return r;
		}
		vfd = r;
		r = complete_volume(vfd, name, anonymous);
		if (!same_object(volfd, name, vfd)) {
			ply_sys_close(vfd);
			continue;
		}
		ply_sys_close(vfd);
		if (r < 0)
			break;
		ply_sys_close(volfd);
		if (ret_name) {
			*ret_name = strdup(name);
			if (!*ret_name)
				return ply_err_set(err, -ENOMEM,
						   "out of memory");
		}
		if (ret_created)
			*ret_created = created;
		return 0;
	}
	ply_sys_close(volfd);
	if (r >= 0)
		r = -EAGAIN;
	return ply_err_set(err, r, "volume store %s: cannot create volume %s: %s",
			   vs->path, anonymous ? "(anonymous)" : name,
			   strerror(-r));
}

/* ---- who uses a volume --------------------------------------------------- */

/* A record is stale when its process is gone and the lock is free; only
 * then is it removed. While the lock is held, the records of live
 * processes name the mounts; the records of processes that are gone are
 * left out, unless no live one is left: then the holder is a process
 * that went on from the one that wrote them (a daemon that forked after
 * attaching), and they still name its mount. */
struct records {
	int mfd;        /* the mounts/ directory */
	bool lock_free; /* nobody holds the lock: every record is stale */
	char **live, **dead; /* mountpoints, by whether the writer lives */
	size_t nlive, ndead;
};

static int visit_record(const char *name, unsigned char type, void *ctx)
{
	struct records *rec = ctx;
	char buf[PATH_MAX + 1];
	char *end;
	long pid;
	ssize_t n;

	if (name[0] == '.')
		return 0; /* a record being written */
	pid = strtol(name, &end, 10);
	if (*end || pid <= 0 || pid > INT_MAX) {
		ply_debug("volume store: stray record %s", name);
		return 0;
	}
	if (rec->lock_free) {
		ply_sys_unlinkat(rec->mfd, name, 0);
		return 0;
	}
	n = read_small(rec->mfd, name, buf, sizeof(buf));
	if (n == -ENOENT)
		return 0;
	if (n < 0) {
		ply_debug("volume store: record %s: %s", name,
			  strerror((int)-n));
		return 0;
	}
	if (pid_alive((pid_t)pid))
		return strv_push(&rec->live, &rec->nlive, buf);
	return strv_push(&rec->dead, &rec->ndead, buf);
}

/* Reads the records of mounts/ in vfd (removing all when the lock is
 * free) into the mountpoints of the mounts that hold it. */
static int read_records(int vfd, bool lock_free, char ***ret_mounts,
			size_t *ret_n)
{
	struct records rec = { .lock_free = lock_free };
	int r;

	rec.mfd = ply_sys_openat(vfd, MOUNTS_DIR,
				 O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	if (rec.mfd == -ENOENT) {
		*ret_mounts = NULL;
		*ret_n = 0;
		return 0;
	}
	if (rec.mfd < 0)
		return rec.mfd;
	r = each_entry(rec.mfd, visit_record, &rec);
	ply_sys_close(rec.mfd);
	if (r < 0) {
		ply_strv_free(rec.live, rec.nlive);
		ply_strv_free(rec.dead, rec.ndead);
		return r;
	}
	if (!rec.nlive) {
		rec.live = rec.dead;
		rec.nlive = rec.ndead;
	} else {
		ply_strv_free(rec.dead, rec.ndead);
	}
	/* one mount may hold a volume twice (two splices): name it once */
	if (rec.nlive > 1)
		if (rec.nlive) /* qsort wants an array, even an empty one */
			qsort(rec.live, rec.nlive, sizeof(*rec.live), ply_strcmp_qsort);
	for (size_t i = 1; i < rec.nlive;) {
		if (strcmp(rec.live[i], rec.live[i - 1])) {
			i++;
			continue;
		}
		free(rec.live[i]);
		memmove(&rec.live[i], &rec.live[i + 1],
			(rec.nlive - i - 1) * sizeof(*rec.live));
		rec.nlive--;
	}
	*ret_mounts = rec.live;
	*ret_n = rec.nlive;
	return 0;
}

/* Is the volume vfd in use? Tries the lock exclusively: if that works,
 * nobody uses it (and *ret_lockfd, when asked for, keeps it so). */
static int probe_use(const struct ply_volstore *vs, int vfd, const char *name,
		     int *ret_lockfd, char ***ret_mounts, size_t *ret_n,
		     struct ply_err *err)
{
	char **mounts = NULL;
	size_t n = 0;
	int lockfd, r;

	r = open_lock(vs, vfd, name, ret_lockfd != NULL, &lockfd, err);
	if (r == -ENOENT) {
		/* a volume being created: nobody can hold it yet */
		*ret_mounts = NULL;
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	r = ply_sys_flock(lockfd, LOCK_EX | LOCK_NB);
	if (r == -EWOULDBLOCK) {
		ply_sys_close(lockfd);
		r = read_records(vfd, false, &mounts, &n);
		if (r < 0)
			return ply_err_set(err, r, "volume %s: mounts: %s",
					   name, strerror(-r));
		*ret_mounts = mounts;
		*ret_n = n;
		return 1;
	}
	if (r < 0) {
		ply_sys_close(lockfd);
		return ply_err_set(err, r, "volume %s: lock: %s", name,
				   strerror(-r));
	}
	r = read_records(vfd, true, &mounts, &n);
	if (r < 0)
		ply_debug("volume %s: cleaning mounts: %s", name,
			  strerror(-r));
	if (ret_lockfd)
		*ret_lockfd = lockfd;
	else
		ply_sys_close(lockfd);
	*ret_mounts = NULL;
	*ret_n = 0;
	return 0;
}

int ply_volstore_in_use(const struct ply_volstore *vs, const char *name,
			char ***ret_mounts, size_t *ret_n, struct ply_err *err)
{
	char **mounts = NULL;
	size_t n = 0;
	int volfd, vfd, r;

	r = open_volume_at(vs, name, &volfd, &vfd, err);
	if (r < 0)
		return r;
	r = probe_use(vs, vfd, name, NULL, &mounts, &n, err);
	ply_sys_close(vfd);
	ply_sys_close(volfd);
	if (r < 0)
		return r;
	if (ret_mounts) {
		*ret_mounts = mounts;
		*ret_n = n;
	} else {
		ply_strv_free(mounts, n);
	}
	return r;
}

/* Waits (briefly) for a removal or a query to let go of the lock. */
static int lock_shared(int lockfd)
{
	for (int waited = 0;; waited += 10) {
		int r = ply_sys_flock(lockfd, LOCK_SH | LOCK_NB);

		if (r != -EWOULDBLOCK || waited >= LOCK_WAIT_MS)
			return r;
		sleep_ms(10);
	}
}

int ply_volstore_attach(const struct ply_volstore *vs, const char *name,
			const char *mountpoint, int *ret_datafd,
			int *ret_lockfd, struct ply_err *err)
{
	int volfd, vfd, lockfd = -1, datafd = -1, mfd = -1, r;
	char pidname[32];

	r = open_volume_at(vs, name, &volfd, &vfd, err);
	if (r < 0)
		return r;
	r = open_lock(vs, vfd, name, true, &lockfd, err);
	if (r < 0)
		goto out;
	r = lock_shared(lockfd);
	if (r < 0) {
		ply_err_set(err, r == -EWOULDBLOCK ? -EBUSY : r,
			    "volume %s: %s", name,
			    r == -EWOULDBLOCK ?
				    "locked by another process (being removed?)" :
				    strerror(-r));
		r = r == -EWOULDBLOCK ? -EBUSY : r;
		goto out;
	}
	/* the lock is ours: a removal that renamed the volume before we got
	 * it has won, and NAME is no longer what we opened */
	if (!same_object(volfd, name, vfd)) {
		r = ply_err_set(err, -ENOENT, "volume %s was removed meanwhile",
				name);
		goto out;
	}
	datafd = ply_sys_openat(vfd, DATA_DIR,
				O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	if (datafd < 0) {
		r = not_a_dir(vs, vfd, "", DATA_DIR, datafd, err);
		goto out;
	}
	r = ply_sys_mkdirat(vfd, MOUNTS_DIR, 0700);
	if (r < 0 && r != -EEXIST) {
		ply_err_set(err, r, "volume %s: mounts: %s", name,
			    strerror(-r));
		goto out;
	}
	mfd = ply_sys_openat(vfd, MOUNTS_DIR,
			     O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
	if (mfd < 0) {
		r = not_a_dir(vs, vfd, "", MOUNTS_DIR, mfd, err);
		goto out;
	}
	snprintf(pidname, sizeof(pidname), "%d", (int)getpid());
	r = write_atomic(mfd, pidname, mountpoint ? mountpoint : "",
			 mountpoint ? strlen(mountpoint) : 0, false);
	if (r < 0) {
		ply_err_set(err, r, "volume %s: recording the mount: %s", name,
			    strerror(-r));
		goto out;
	}
	*ret_datafd = datafd;
	*ret_lockfd = lockfd;
	datafd = lockfd = -1;
	r = 0;
out:
	ply_sys_close(mfd);
	ply_sys_close(datafd);
	ply_sys_close(lockfd);
	ply_sys_close(vfd);
	ply_sys_close(volfd);
	return r;
}

/* ---- listing and inspecting ---------------------------------------------- */

struct name_list {
	int volfd;
	char **v;
	size_t n;
};

static int visit_volume(const char *name, unsigned char type, void *ctx)
{
	struct name_list *list = ctx;
	struct stat st;

	if (!ply_volstore_name_ok(name))
		return 0; /* trash, temporaries */
	if (type == DT_UNKNOWN) {
		if (ply_sys_fstatat(list->volfd, name, &st) < 0)
			return 0;
		type = (unsigned char)IFTODT(st.st_mode);
	}
	if (type != DT_DIR) {
		ply_debug("volume store: %s is not a directory: ignored", name);
		return 0;
	}
	return strv_push(&list->v, &list->n, name);
}

int ply_volstore_list(const struct ply_volstore *vs, char ***ret_names,
		      size_t *ret_n, struct ply_err *err)
{
	struct name_list list = { 0 };
	int r;

	r = open_volumes(vs, &list.volfd, err);
	if (r == -ENOENT) {
		*ret_names = NULL;
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	r = each_entry(list.volfd, visit_volume, &list);
	ply_sys_close(list.volfd);
	if (r < 0) {
		ply_strv_free(list.v, list.n);
		return ply_err_set(err, r, "volume store %s: %s", vs->path,
				   strerror(-r));
	}
	if (list.n > 1)
		if (list.n) /* qsort wants an array, even an empty one */
			qsort(list.v, list.n, sizeof(*list.v), ply_strcmp_qsort);
	*ret_names = list.v;
	*ret_n = list.n;
	return 0;
}

/* Finds "key": in json and returns what follows the colon. */
static const char *json_value(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(json, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p != ':')
		return NULL;
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Reads meta.json into info; a volume without one (being created, or
 * from a crash mid-creation) is told anonymous by its name. */
static void read_meta(int vfd, const char *name, struct ply_volume_info *info)
{
	char json[4096];
	const char *v;

	info->anonymous = looks_anonymous(name);
	info->created[0] = '\0';
	if (read_small(vfd, META_FILE, json, sizeof(json)) < 0)
		return;
	v = json_value(json, "created");
	if (v && *v == '"') {
		size_t len = strcspn(v + 1, "\"");

		if (len < sizeof(info->created) && v[1 + len] == '"') {
			memcpy(info->created, v + 1, len);
			info->created[len] = '\0';
		}
	}
	v = json_value(json, "anonymous");
	if (v && !strncmp(v, "true", 4))
		info->anonymous = true;
	else if (v && !strncmp(v, "false", 5))
		info->anonymous = false;
}

int ply_volstore_inspect(const struct ply_volstore *vs, const char *name,
			 struct ply_volume_info *ret, struct ply_err *err)
{
	struct ply_volume_info info = { 0 };
	int volfd, vfd, r;

	r = open_volume_at(vs, name, &volfd, &vfd, err);
	if (r < 0)
		return r;
	info.name = strdup(name);
	if (!info.name ||
	    asprintf(&info.data_path, "%s/" VOLUMES_DIR "/%s/" DATA_DIR,
		     vs->path, name) < 0) {
		info.data_path = NULL;
		r = ply_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	read_meta(vfd, name, &info);
	r = probe_use(vs, vfd, name, NULL, &info.mountpoints,
		      &info.nmountpoints, err);
	if (r < 0)
		goto out;
	info.in_use = r > 0;
	*ret = info;
	r = 0;
out:
	ply_sys_close(vfd);
	ply_sys_close(volfd);
	if (r < 0)
		ply_volume_info_free(&info);
	return r;
}

void ply_volume_info_free(struct ply_volume_info *info)
{
	free(info->name);
	free(info->data_path);
	ply_strv_free(info->mountpoints, info->nmountpoints);
	memset(info, 0, sizeof(*info));
}

/* ---- disk usage ---------------------------------------------------------- */

/* The inodes with more than one link already counted, as du does. */
struct ino_set {
	struct { dev_t dev; ino_t ino; } *v;
	size_t n, cap; /* open addressing; cap a power of two */
};

static size_t ino_slot(const struct ino_set *s, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;
	size_t i = (size_t)(h >> 17) & (s->cap - 1);

	while (s->v[i].ino && (s->v[i].ino != ino || s->v[i].dev != dev))
		i = (i + 1) & (s->cap - 1);
	return i;
}

/* 1 when added, 0 when already there. */
static int ino_set_add(struct ino_set *s, dev_t dev, ino_t ino)
{
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		struct ino_set g = { .cap = s->cap ? s->cap * 2 : 256 };

		g.v = calloc(g.cap, sizeof(*g.v));
		if (!g.v)
			return -ENOMEM;
		for (size_t j = 0; j < s->cap; j++)
			if (s->v[j].ino)
				g.v[ino_slot(&g, s->v[j].dev, s->v[j].ino)] =
					s->v[j];
		g.n = s->n;
		free(s->v);
		*s = g;
	}
	i = ino_slot(s, dev, ino);
	if (s->v[i].ino)
		return 0;
	s->v[i].dev = dev;
	s->v[i].ino = ino ? ino : 1;
	s->n++;
	return 1;
}

struct du {
	int dirfd;
	struct ino_set seen;
	uint64_t bytes;
	unsigned depth;
};

static int du_dir(struct du *du, int fd);

static int du_entry(const char *name, unsigned char type, void *ctx)
{
	struct du *du = ctx;
	struct stat st;
	int r, fd;

	r = ply_sys_fstatat(du->dirfd, name, &st);
	if (r == -ENOENT)
		return 0; /* removed while we count */
	if (r < 0)
		return r;
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		r = ino_set_add(&du->seen, st.st_dev, st.st_ino);
		if (r <= 0)
			return r;
	}
	du->bytes += (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return 0;
	if (du->depth > 4096)
		return -ELOOP;
	fd = ply_sys_openat(du->dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW,
			    0);
	if (fd == -ENOENT || fd == -ENOTDIR)
		return 0;
	if (fd < 0)
		return fd;
	r = du_dir(du, fd);
	ply_sys_close(fd);
	return r;
}

static int du_dir(struct du *du, int fd)
{
	int saved = du->dirfd, r;

	du->dirfd = fd;
	du->depth++;
	r = each_entry(fd, du_entry, du);
	du->depth--;
	du->dirfd = saved;
	return r;
}

int ply_volstore_size(const struct ply_volstore *vs, const char *name,
		      uint64_t *ret_bytes, struct ply_err *err)
{
	struct du du = { 0 };
	struct stat st;
	int volfd, vfd, fd, r;

	r = open_volume_at(vs, name, &volfd, &vfd, err);
	if (r < 0)
		return r;
	fd = ply_sys_openat(vfd, DATA_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW,
			    0);
	if (fd < 0) {
		r = not_a_dir(vs, vfd, "", DATA_DIR, fd, err);
		goto out;
	}
	r = ply_sys_fstat(fd, &st);
	if (r >= 0) {
		du.bytes = (uint64_t)st.st_blocks * 512;
		r = du_dir(&du, fd);
	}
	ply_sys_close(fd);
	free(du.seen.v);
	if (r < 0) {
		ply_err_set(err, r, "volume %s: size: %s", name, strerror(-r));
		goto out;
	}
	*ret_bytes = du.bytes;
out:
	ply_sys_close(vfd);
	ply_sys_close(volfd);
	return r;
}

/* ---- removing ------------------------------------------------------------ */

static int in_use_error(const char *name, char **mounts, size_t n,
			struct ply_err *err)
{
	char list[768] = "";
	size_t len = 0;

	for (size_t i = 0; i < n && len < sizeof(list); i++) {
		int w = snprintf(list + len, sizeof(list) - len, "%s%s",
				 i ? ", " : "", mounts[i]);

		if (w < 0)
			break;
		len += (size_t)w;
	}
	if (!n)
		return ply_err_set(err, -EBUSY, "volume %s is in use by a mount",
				   name);
	return ply_err_set(err, -EBUSY, "volume %s is in use by the mount%s at %s",
			   name, n > 1 ? "s" : "", list);
}

int ply_volstore_remove(const struct ply_volstore *vs, const char *name,
			struct ply_err *err)
{
	char trash[sizeof(TRASH_PREFIX) + 16];
	char **mounts = NULL;
	size_t n = 0;
	int volfd, vfd, lockfd = -1, r;

	r = open_volume_at(vs, name, &volfd, &vfd, err);
	if (r < 0)
		return r;
	r = probe_use(vs, vfd, name, &lockfd, &mounts, &n, err);
	if (r > 0) {
		r = in_use_error(name, mounts, n, err);
		ply_strv_free(mounts, n);
		goto out;
	}
	if (r < 0)
		goto out;
	/* the lock is ours, exclusively: nobody attaches until NAME is gone */
	if (!same_object(volfd, name, vfd)) {
		r = ply_err_set(err, -ENOENT, "no such volume: %s", name);
		goto out;
	}
	r = random_hex(trash + strlen(TRASH_PREFIX), 16);
	if (r >= 0) {
		memcpy(trash, TRASH_PREFIX, strlen(TRASH_PREFIX));
		r = ply_sys_renameat2(volfd, name, volfd, trash,
				      RENAME_NOREPLACE);
	}
	ply_sys_close(lockfd);
	lockfd = -1;
	if (r < 0) {
		ply_err_set(err, r, "volume %s: cannot remove: %s", name,
			    strerror(-r));
		goto out;
	}
	/* a creator that opened the volume before the rename may still add
	 * the parts it completes until it sees the rename: only the removal
	 * of the directory itself ends that, so go again when it races */
	for (int tries = 0; tries < 50; tries++) {
		r = ply_remove_tree(volfd, trash);
		if (r != -ENOTEMPTY)
			break;
		sleep_ms(1);
	}
	if (r < 0)
		ply_err_set(err, r,
			    "volume %s removed, but its files could not all be deleted (%s/%s/%s): %s",
			    name, vs->path, VOLUMES_DIR, trash, strerror(-r));
out:
	ply_sys_close(lockfd);
	ply_sys_close(vfd);
	ply_sys_close(volfd);
	return r;
}

static int visit_trash(const char *name, unsigned char type, void *ctx)
{
	int volfd = *(int *)ctx;
	int r;

	if (strncmp(name, TRASH_PREFIX, strlen(TRASH_PREFIX)))
		return 0;
	r = ply_remove_tree(volfd, name);
	if (r < 0 && r != -ENOENT)
		ply_debug("volume store: leftover %s: %s", name, strerror(-r));
	return 0;
}

int ply_volstore_prune(const struct ply_volstore *vs, bool all,
		       void (*removed)(const char *name, void *ctx), void *ctx,
		       struct ply_err *err)
{
	char **names = NULL;
	size_t nnames = 0;
	int first = 0, volfd, r;

	r = ply_volstore_list(vs, &names, &nnames, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nnames; i++) {
		struct ply_volume_info info = { 0 };
		struct ply_err e;
		int vfd;

		r = open_volume_at(vs, names[i], &volfd, &vfd, &e);
		if (r < 0)
			continue; /* gone meanwhile */
		read_meta(vfd, names[i], &info);
		ply_sys_close(vfd);
		ply_sys_close(volfd);
		if (!all && !info.anonymous)
			continue;
		r = ply_volstore_remove(vs, names[i], &e);
		if (r == -EBUSY || r == -ENOENT)
			continue; /* in use, or removed by someone else */
		if (r < 0 && !first) {
			first = r;
			if (err)
				*err = e;
		}
		if (r >= 0 && removed)
			removed(names[i], ctx);
	}
	ply_strv_free(names, nnames);
	/* what a removal interrupted by a crash left behind */
	if (open_volumes(vs, &volfd, NULL) >= 0) {
		each_entry(volfd, visit_trash, &volfd);
		ply_sys_close(volfd);
	}
	return first;
}

/* ---- filling a new volume, crash-safe ----------------------------------- */

#define FILLING_MARK "filling"

static int fill_mark(const struct ply_volstore *vs, const char *name,
		     int action)
{
	int volfd, vfd, fd, r;

	r = open_volume_at(vs, name, &volfd, &vfd, NULL);
	if (r < 0)
		return r;
	if (action > 0) {
		fd = ply_sys_openat(vfd, FILLING_MARK,
				    O_WRONLY | O_CREAT | O_NOFOLLOW, 0600);
		r = fd < 0 ? fd : ply_sys_fsync(fd);
		if (fd >= 0)
			ply_sys_close(fd);
	} else if (action < 0) {
		r = ply_sys_unlinkat(vfd, FILLING_MARK, 0);
	} else {
		struct stat st;

		r = ply_sys_fstatat(vfd, FILLING_MARK, &st);
		r = r == 0 ? 1 : r == -ENOENT ? 0 : r;
	}
	ply_sys_close(vfd);
	ply_sys_close(volfd);
	return r;
}

int ply_volstore_fill_begin(const struct ply_volstore *vs, const char *name)
{
	return fill_mark(vs, name, 1);
}

int ply_volstore_fill_end(const struct ply_volstore *vs, const char *name)
{
	return fill_mark(vs, name, -1);
}

int ply_volstore_fill_pending(const struct ply_volstore *vs, const char *name)
{
	return fill_mark(vs, name, 0);
}
