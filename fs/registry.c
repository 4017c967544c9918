/* registry.c: publishes the stack a running mount serves, so that plyctl
 * can be given the mountpoint instead of the options (tools/mounts.c reads
 * it). One record per mount, a file in
 *   $XDG_RUNTIME_DIR/plyfs/mounts/, else /run/plyfs/mounts/ for root, else
 *   /run/user/UID/plyfs/mounts/
 * named DEV-INO after the st_dev and st_ino a stat of the mountpoint gives
 * once mounted, holding lines
 *   plyfs-mount 1
 *   pid PID
 *   mountpoint /absolute/path
 *   options lowerdir=...,upperdir=...,workdir=...[,...]
 * the options normalised: absolute paths, escaped as plyfs reads them.
 * Written atomically (a temporary renamed over it), removed on a clean
 * stop. plyctl trusts a record only while PID is a running plyfs and the
 * mount is in /proc/self/mountinfo with that st_dev. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "plyfs.h"

static char record_dir[PATH_MAX];
static char record_path[PATH_MAX]; /* "" until published */
static char *record_mnt, *record_opts;

/* mkdir -p of the part of dir below base (base itself must exist). */
static int make_dirs(const char *dir, size_t base_len, mode_t mode)
{
	char buf[PATH_MAX];

	if (strlen(dir) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, dir);
	for (char *p = buf + base_len + 1;;) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		if (!slash)
			break;
		*slash = '/';
		p = slash + 1;
	}
	return 0;
}

static int pick_dir(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char base[PATH_MAX];
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(base, sizeof(base), "%s", xdg);
	else if (geteuid() == 0)
		n = snprintf(base, sizeof(base), "/run");
	else
		n = snprintf(base, sizeof(base), "/run/user/%u",
			     (unsigned)geteuid());
	if (n < 0 || (size_t)n >= sizeof(base) - 32)
		return -ENAMETOOLONG;
	n = snprintf(record_dir, sizeof(record_dir), "%s/plyfs/mounts", base);
	if (n < 0 || (size_t)n >= sizeof(record_dir))
		return -ENAMETOOLONG;
	return make_dirs(record_dir, strlen(base),
			 geteuid() == 0 && !(xdg && xdg[0] == '/') ? 0755 :
								      0700);
}

/* ---- the option string ---------------------------------------------- */
struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *grown = realloc(b->s, cap);

		if (!grown) {
			b->failed = true;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* A value as lib/options.c reads it back: '\\', ',' and ':' escaped. */
static void sb_escaped(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == ',' || *s == ':')
			sb_add(b, "\\", 1);
		sb_add(b, s, 1);
	}
}

static void sb_path(struct sbuf *b, const char *path)
{
	char *abs = realpath(path, NULL);

	sb_escaped(b, abs ? abs : path);
	free(abs);
}

static char *options_string(const struct plyfs *fs,
			    const struct ply_options *opts)
{
	const struct ply_stack *st = &fs->stack;
	size_t first = st->has_upper ? 1 : 0;
	struct sbuf b = { 0 };

	sb_str(&b, "lowerdir=");
	for (size_t i = first; i < st->nunion; i++) {
		if (i > first)
			sb_str(&b, ":");
		sb_escaped(&b, st->layers[i].path);
	}
	if (st->has_upper) {
		sb_str(&b, ",upperdir=");
		sb_escaped(&b, st->layers[0].path);
	}
	if (st->workdir) {
		sb_str(&b, ",workdir=");
		sb_escaped(&b, st->workdir);
	}
	if (opts->whiteout != PLY_WH_AUTO) {
		static const char *const names[] = { "auto", "chardev",
						      "xattr", "file" };

		sb_str(&b, ",whiteout=");
		sb_str(&b, names[opts->whiteout]);
	}
	if (opts->xattr_permissions) {
		sb_str(&b, ",xattr_permissions=");
		sb_add(&b, opts->xattr_permissions == 1 ? "1" : "2", 1);
	}
	if (opts->volstore) {
		sb_str(&b, ",volstore=");
		sb_path(&b, opts->volstore);
	}
	/* the splices' layers follow the union ones, in the options' order;
	 * a volume's layer is labelled with its name (anonymous ones too) */
	for (size_t i = 0; i < opts->nsplices; i++) {
		const struct ply_splice_spec *sp = &opts->splices[i];
		size_t l = st->nunion + i;

		if (sp->kind == PLY_SPLICE_BIND) {
			sb_str(&b, ",bind=");
			sb_path(&b, sp->source);
		} else {
			sb_str(&b, ",volume=");
			sb_escaped(&b, l < st->nlayers ? st->layers[l].path :
							 sp->source);
		}
		sb_str(&b, ":");
		sb_escaped(&b, sp->dest);
		if (sp->ro)
			sb_str(&b, ":ro");
		if (sp->nocopy)
			sb_str(&b, ":nocopy");
	}
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* ---- the record ------------------------------------------------------ */
/* st_dev of the plyfs mounted at mnt, from /proc/self/mountinfo: the
 * daemon must not stat its own mount before it serves requests. The last
 * line wins: the mount on top. */
static int mount_dev(const char *mnt, dev_t *ret)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char path[PATH_MAX], fstype[64], *sep = strstr(line, " - ");
		unsigned maj, min;
		size_t j = 0;
		const char *p = line;

		if (!sep || sscanf(sep, " - %63s", fstype) != 1 ||
		    strcmp(fstype, "fuse.plyfs") ||
		    sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2)
			continue;
		for (int field = 0; field < 4 && p; field++)
			p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
		while (p && *p && *p != ' ' && j + 1 < sizeof(path)) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' &&
			    p[2] && p[3]) {
				path[j++] = (char)((p[1] - '0') * 64 +
						   (p[2] - '0') * 8 +
						   (p[3] - '0'));
				p += 4;
			} else {
				path[j++] = *p++;
			}
		}
		path[j] = '\0';
		if (!strcmp(path, mnt)) {
			*ret = makedev(maj, min);
			found = true;
		}
	}
	free(line);
	fclose(f);
	return found ? 0 : -ENOENT;
}

static int write_record(pid_t pid)
{
	char tmp[PATH_MAX + 32];
	FILE *f;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp%ld", record_path, (long)pid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0644);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		r = -errno;
		close(fd);
		unlink(tmp);
		return r;
	}
	fprintf(f, "plyfs-mount 1\npid %ld\nmountpoint %s\noptions %s\n",
		(long)pid, record_mnt, record_opts);
	if (ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && !r)
		r = -errno;
	if (!r && rename(tmp, record_path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

/* Removes the records whose daemon is gone (killed, or crashed). */
static void sweep(void)
{
	DIR *d = opendir(record_dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char path[PATH_MAX + 300], line[64];
		long pid = 0;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", record_dir, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "pid %ld", &pid) == 1)
				break;
		fclose(f);
		if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			unlink(path);
	}
	if (d)
		closedir(d);
}

void plyfs_registry_publish(struct plyfs *fs, const struct ply_options *opts,
			    const char *mountpoint)
{
	struct stat st;
	dev_t dev;
	int r;

	r = pick_dir();
	if (r < 0)
		goto fail;
	r = mount_dev(mountpoint, &dev);
	if (r < 0)
		goto fail;
	/* what getattr of the root will answer */
	r = plyfs_use(fs, fs->table.root);
	if (r < 0)
		goto fail;
	r = ply_inode_stat(&fs->stack, fs->table.root, &st);
	plyfs_done(fs, fs->table.root);
	if (r < 0)
		goto fail;
	record_opts = options_string(fs, opts);
	record_mnt = strdup(mountpoint);
	r = -ENOMEM;
	if (!record_opts || !record_mnt)
		goto fail;
	r = -EINVAL; /* the record is one line per field */
	if (strchr(record_opts, '\n') || strchr(record_mnt, '\n'))
		goto fail;
	sweep();
	r = snprintf(record_path, sizeof(record_path), "%s/%llu-%llu",
		     record_dir, (unsigned long long)dev,
		     (unsigned long long)st.st_ino);
	r = r < 0 || (size_t)r >= sizeof(record_path) ? -ENAMETOOLONG :
		write_record(getpid());
	if (r >= 0)
		return;
fail:
	record_path[0] = '\0';
	fprintf(stderr,
		"plyfs: warning: cannot publish the mount for plyctl (%s): %s\n",
		record_dir[0] ? record_dir : "no runtime directory",
		strerror(-r));
}

/* fuse_daemonize, but the record names the process that stays before the
 * one that started us returns: plyctl never finds the parent's pid. */
int plyfs_registry_daemonize(bool foreground)
{
	int waiter[2], nullfd;
	char done = 0;

	if (foreground)
		return fuse_daemonize(1);
	if (pipe2(waiter, O_CLOEXEC) < 0) {
		perror("plyfs: daemonize: pipe");
		return -1;
	}
	switch (fork()) {
	case -1:
		perror("plyfs: daemonize: fork");
		return -1;
	case 0:
		break;
	default:
		close(waiter[1]);
		_exit(read(waiter[0], &done, 1) == 1 ? 0 : 1);
	}
	close(waiter[0]);
	if (setsid() < 0) {
		perror("plyfs: daemonize: setsid");
		return -1;
	}
	if (chdir("/") < 0) {
		/* nothing depends on the working directory any more */
	}
	if (record_path[0])
		write_record(getpid());
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd >= 0) {
		dup2(nullfd, 0);
		dup2(nullfd, 1);
		dup2(nullfd, 2);
		if (nullfd > 2)
			close(nullfd);
	}
	done = 1;
	if (write(waiter[1], &done, 1) < 0) {
		/* the parent is gone: nobody to tell */
	}
	close(waiter[1]);
	return 0;
}

void plyfs_registry_remove(void)
{
	if (record_path[0])
		unlink(record_path);
	record_path[0] = '\0';
	free(record_mnt);
	free(record_opts);
	record_mnt = record_opts = NULL;
}
