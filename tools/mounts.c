/* mounts.c: the stack a running plyfs serves, found from its mountpoint.
 * The daemon publishes a record per mount (fs/registry.c: the format and
 * the directories); nothing in it is taken on trust. It must name a live
 * plyfs process owned by the record's owner, the mount must be in
 * /proc/self/mountinfo as fuse.plyfs at that path with the st_dev a stat
 * of it gives, and a record owned by someone else must name only layer
 * directories the daemon holds open. */
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

#include "plyctl.h"

#define RECORD_MAX (256 * 1024)

/* The fuse.plyfs mount at path with st_dev dev: its owner (user_id=). */
static bool find_mount(const char *path, dev_t dev, uid_t *ret_uid)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	while (f && !found && getline(&line, &cap, f) > 0) {
		char mnt[PATH_MAX], fstype[64], *sep = strstr(line, " - ");
		const char *p = line, *uid;
		unsigned maj, min;
		size_t j = 0;

		if (!sep || sscanf(sep, " - %63s", fstype) != 1 ||
		    strcmp(fstype, "fuse.plyfs") ||
		    sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2 ||
		    makedev(maj, min) != dev)
			continue;
		/* the fifth field, with \ooo escapes */
		for (int field = 0; field < 4 && p; field++)
			p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
		while (p && *p && *p != ' ' && j + 1 < sizeof(mnt)) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' &&
			    p[2] && p[3]) {
				mnt[j++] = (char)((p[1] - '0') * 64 +
						  (p[2] - '0') * 8 +
						  (p[3] - '0'));
				p += 4;
			} else {
				mnt[j++] = *p++;
			}
		}
		mnt[j] = '\0';
		if (strcmp(mnt, path))
			continue;
		found = true;
		uid = strstr(sep, "user_id=");
		*ret_uid = uid ? (uid_t)strtoul(uid + 8, NULL, 10) : 0;
	}
	free(line);
	if (f)
		fclose(f);
	return found;
}

/* Opens the record named name in dir, if it is a plain file owned by
 * owner; its text (NUL-terminated) in *ret. */
static int read_record(const char *dir, const char *name, uid_t owner,
		       char **ret)
{
	char path[PATH_MAX + 300], *buf;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != owner || st.st_size > RECORD_MAX) {
		close(fd);
		return -EPERM;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n < 0) {
		free(buf);
		return -EIO;
	}
	buf[n] = '\0';
	*ret = buf;
	return 0;
}

/* The directories a record of a mount owned by uid may be in. */
static int record_dirs(uid_t uid, char dirs[3][PATH_MAX])
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n = 0;

	if (xdg && xdg[0] == '/')
		snprintf(dirs[n++], PATH_MAX, "%.4000s/plyfs/mounts", xdg);
	snprintf(dirs[n++], PATH_MAX, "/run/user/%u/plyfs/mounts",
		 (unsigned)uid);
	if (uid == 0)
		snprintf(dirs[n++], PATH_MAX, "/run/plyfs/mounts");
	return n;
}

/* Finds the record of the mount (dev, ino): DEV-INO, else any DEV-*
 * (should the root's st_ino have changed). */
static int find_record(dev_t dev, ino_t ino, uid_t owner, char **ret)
{
	char dirs[3][PATH_MAX], name[64], prefix[32];
	int ndirs = record_dirs(owner, dirs);

	snprintf(name, sizeof(name), "%llu-%llu", (unsigned long long)dev,
		 (unsigned long long)ino);
	snprintf(prefix, sizeof(prefix), "%llu-", (unsigned long long)dev);
	for (int i = 0; i < ndirs; i++)
		if (read_record(dirs[i], name, owner, ret) == 0)
			return 0;
	for (int i = 0; i < ndirs; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;
		int r = -ENOENT;

		while (d && r < 0 && (de = readdir(d)))
			if (!strncmp(de->d_name, prefix, strlen(prefix)) &&
			    !strchr(de->d_name, '.'))
				r = read_record(dirs[i], de->d_name, owner,
						ret);
		if (d)
			closedir(d);
		if (r == 0)
			return 0;
	}
	return -ENOENT;
}

/* The value of the line "key VALUE" of a record, owned. */
static char *field(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p;
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, klen) && p[klen] == ' ') {
			const char *v = p + klen + 1, *end = strchr(v, '\n');

			return strndup(v, end ? (size_t)(end - v) : strlen(v));
		}
	return NULL;
}

/* Is pid a running plyfs owned by owner? */
static bool is_plyfs_process(pid_t pid, uid_t owner)
{
	char path[64], buf[PATH_MAX], *base;
	struct stat st;
	ssize_t n;
	FILE *f;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%ld", (long)pid);
	if (stat(path, &st) < 0 || st.st_uid != owner)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		/* rebuilt or reinstalled while it runs */
		if (n > 10 && !strcmp(buf + n - 10, " (deleted)"))
			buf[n - 10] = '\0';
		base = strrchr(buf, '/');
		if (!strcmp(base ? base + 1 : buf, "plyfs"))
			return true;
	}
	/* another user's process: its name is what we may see */
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	if (!strcmp(buf, "plyfs") || !strcmp(buf, "mount.plyfs"))
		return true;
	/* run under a wrapper (valgrind): plyfs among its arguments */
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	f = fopen(path, "re");
	n = f ? (ssize_t)fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	for (char *arg = buf; arg < buf + n; arg += strlen(arg) + 1) {
		base = strrchr(arg, '/');
		if (!strcmp(base ? base + 1 : arg, "plyfs"))
			return true;
	}
	return false;
}

/* Does the daemon hold every layer directory the options name open? */
static bool daemon_holds_layers(pid_t pid, const char *optstr)
{
	struct ply_options opts;
	struct ply_err err;
	struct stat *want = NULL;
	size_t nwant = 0, nfound = 0;
	bool *found, ok = false;
	char dir[64];
	DIR *d;

	ply_options_init(&opts);
	if (ply_options_parse(&opts, optstr, &err) < 0)
		goto out;
	want = calloc(opts.nlower + 2, sizeof(*want));
	found = want ? calloc(opts.nlower + 2, sizeof(*found)) : NULL;
	if (!found)
		goto out;
	for (size_t i = 0; i < opts.nlower; i++)
		if (stat(opts.lowerdirs[i], &want[nwant++]) < 0)
			goto out_found;
	if (opts.upperdir && stat(opts.upperdir, &want[nwant++]) < 0)
		goto out_found;
	if (opts.workdir && stat(opts.workdir, &want[nwant++]) < 0)
		goto out_found;
	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	d = opendir(dir);
	for (struct dirent *de; d && nfound < nwant && (de = readdir(d));) {
		struct stat st;

		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		for (size_t i = 0; i < nwant; i++)
			if (!found[i] && want[i].st_dev == st.st_dev &&
			    want[i].st_ino == st.st_ino) {
				found[i] = true;
				nfound++;
			}
	}
	if (d)
		closedir(d);
	ok = nwant > 0 && nfound == nwant;
out_found:
	free(found);
out:
	free(want);
	ply_options_free(&opts);
	return ok;
}

int plyctl_live_find(const char *mnt, struct plyctl_live *ret,
		     struct ply_err *err)
{
	char *real = realpath(mnt, NULL), *text = NULL, *pidstr = NULL;
	const char *why = "not a plyfs mount";
	struct stat st;
	uid_t owner;
	long pid = 0;

	memset(ret, 0, sizeof(*ret));
	if (!real || stat(real, &st) < 0) {
		why = errno == ENOTCONN ? "transport endpoint is not connected" :
					  strerror(errno);
		goto fail;
	}
	if (!find_mount(real, st.st_dev, &owner))
		goto fail;
	why = "it published no record of its stack";
	if (find_record(st.st_dev, st.st_ino, owner, &text) < 0)
		goto fail;
	why = "its record is malformed";
	pidstr = field(text, "pid");
	ret->mountpoint = field(text, "mountpoint");
	ret->options = field(text, "options");
	if (strncmp(text, "plyfs-mount 1\n", 14) || !pidstr ||
	    !ret->mountpoint || !ret->options ||
	    sscanf(pidstr, "%ld", &pid) != 1)
		goto fail;
	why = "its record names another mountpoint";
	if (strcmp(ret->mountpoint, real))
		goto fail;
	why = "its record is stale: the daemon it names is not running";
	if (!is_plyfs_process((pid_t)pid, owner))
		goto fail;
	/* root's records are root's to write; another user's record must
	 * not make us read what its mount does not serve */
	why = "its record names layers its daemon does not hold open";
	if (owner != geteuid() && owner != 0 &&
	    !daemon_holds_layers((pid_t)pid, ret->options))
		goto fail;
	ret->pid = (pid_t)pid;
	free(real);
	free(text);
	free(pidstr);
	return 0;
fail:
	ply_err_set(err, -ENOENT, "no running plyfs at %s (%s)", mnt, why);
	free(real);
	free(text);
	free(pidstr);
	plyctl_live_free(ret);
	return -ENOENT;
}

void plyctl_live_free(struct plyctl_live *l)
{
	free(l->mountpoint);
	free(l->options);
	l->mountpoint = l->options = NULL;
}
