/* Security: what a user gets through a plyfs mount, and what a crafted
 * layer can make the daemon do (docs/threat-model.md names the test of each
 * claim).
 *
 * - root mounts (allow_other, as root always mounts): other users are
 *   checked against the merged attributes, a refused change copies nothing
 *   up, no privileged or private xattr and no marker name can be added,
 *   uid/gid mappings count as presented, an owner kept in a lower layer's
 *   override xattr survives a copy-up;
 * - an unprivileged user's mount (through fusermount3): setuid, setgid and
 *   device files of the layers are inert (nosuid, nodev), what the user
 *   cannot read below stays unreadable, and no device or setuid-root file
 *   can be made;
 * - copy-up never adds permissions: every trigger, compared with the same
 *   operation on a native directory, and the copy-up temporary watched
 *   while it is written; a write by a non-owner clears setuid/setgid;
 * - nothing in a layer leads the daemon out of its layers: a symlinked
 *   lower parent, a redirect to "..", a bind source reached through a
 *   symlink.
 *
 * Runs as root; the unprivileged tests create the user plyfs-sec and open
 * /dev/fuse to all, as test-mount-rootless does. Other users are plain ids
 * (a forked child that drops to them): they need no account. */
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

#define MiB (1024L * 1024)

/* Ids that own lower files, and other users; none needs an account. */
#define OWNER_UID 1234
#define OWNER_GID 5678
#define OTHER_UID 2345
#define OTHER_GID 2345
#define ACL_UID 4321

#define TEST_USER "plyfs-sec"
#define AS_WAIT_MS 10000 /* one operation as another user */

static const char *const setpriv_bin = "/usr/bin/setpriv";

/* A file of the test tree with owner and mode (set after the owner, since
 * chown clears setuid). */
static void file_as(const char *rel, const char *content, uid_t uid, gid_t gid,
		    mode_t mode)
{
	h_file(rel, content);
	h_assert_ok(lchown(h_path("%s", rel), uid, gid));
	h_assert_ok(chmod(h_path("%s", rel), mode));
}

static void dir_as(const char *rel, uid_t uid, gid_t gid, mode_t mode)
{
	h_mkdir(rel);
	h_assert_ok(lchown(h_path("%s", rel), uid, gid));
	h_assert_ok(chmod(h_path("%s", rel), mode));
}

/* The upper directory holds nothing (a refusal copied nothing up). */
static void assert_empty_dir(const char *path, const char *why)
{
	size_t n;
	char **v = h_listdir(path, &n);

	if (n != 2) {
		char names[1024] = "";

		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i], ".") && strcmp(v[i], ".."))
				snprintf(names + strlen(names),
					 sizeof(names) - strlen(names), " %s",
					 v[i]);
		h_strv_free(v, n);
		fail_msg("%s: %s holds:%s", why, path, names);
	}
	h_strv_free(v, n);
}

/* ---- operations as another user ---------------------------------------- */

struct who {
	uid_t uid;
	gid_t gid;
	size_t ngroups;
	gid_t groups[4];
};

static const struct who other = { OTHER_UID, OTHER_GID, 0, { 0 } };

/* One operation, run by a forked child as another user: fn returns 0 or
 * an errno and may describe what it saw in out. Only plain calls in the
 * child (no cmocka). */
struct op;
typedef int (*op_fn)(const struct op *op, char *out, size_t size);
struct op {
	op_fn fn;
	const char *path, *path2, *data;
	int flags;
	mode_t mode;
	dev_t dev;
	uid_t uid;
	gid_t gid;
};

static int op_read(const struct op *op, char *out, size_t size)
{
	int fd = open(op->path, O_RDONLY | O_CLOEXEC), e;
	ssize_t n;

	if (fd < 0)
		return errno;
	n = read(fd, out, size - 1);
	e = errno;
	close(fd);
	if (n < 0)
		return e;
	out[n] = '\0';
	return 0;
}

static int op_open(const struct op *op, char *out, size_t size)
{
	int fd = open(op->path, op->flags | O_CLOEXEC, 0644);

	(void)out;
	(void)size;
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int op_append(const struct op *op, char *out, size_t size)
{
	int fd = open(op->path, O_WRONLY | O_APPEND | O_CLOEXEC), e = 0;
	size_t len = strlen(op->data);

	(void)out;
	(void)size;
	if (fd < 0)
		return errno;
	if (write(fd, op->data, len) != (ssize_t)len)
		e = errno ? errno : EIO;
	close(fd);
	return e;
}

static int op_stat(const struct op *op, char *out, size_t size)
{
	struct stat st;

	if (lstat(op->path, &st) < 0)
		return errno;
	snprintf(out, size, "%o %u %u", (unsigned)st.st_mode,
		 (unsigned)st.st_uid, (unsigned)st.st_gid);
	return 0;
}

/* The names of a directory as " a b c ", for strstr(" name "). */
static int op_list(const struct op *op, char *out, size_t size)
{
	DIR *d = opendir(op->path);
	struct dirent *de;
	size_t len = 1;

	if (!d)
		return errno;
	out[0] = ' ';
	out[1] = '\0';
	errno = 0;
	while ((de = readdir(d))) {
		int n = snprintf(out + len, size - len, "%s ", de->d_name);

		if (n > 0 && (size_t)n < size - len)
			len += (size_t)n;
	}
	closedir(d);
	return errno;
}

#define OP_RET(expr) return (expr) < 0 ? errno : 0

static int op_unlink(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(unlink(op->path));
}

static int op_rmdir(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(rmdir(op->path));
}

static int op_rename(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(rename(op->path, op->path2));
}

static int op_link(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(link(op->path, op->path2));
}

static int op_mkdir(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(mkdir(op->path, op->mode));
}

static int op_mknod(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(mknod(op->path, op->mode, op->dev));
}

static int op_chmod(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(chmod(op->path, op->mode));
}

static int op_chown(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(lchown(op->path, op->uid, op->gid));
}

static int op_truncate(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(truncate(op->path, 0));
}

static int op_setxattr(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(lsetxattr(op->path, "user.sec", "v", 1, 0));
}

/* utimes to a given time: only the owner may. */
static int op_utimes(const struct op *op, char *o, size_t s)
{
	const struct timeval tv[2] = { { 1000, 0 }, { 1000, 0 } };

	(void)o, (void)s;
	OP_RET(utimes(op->path, tv));
}

/* utimes to now: anyone who may write. */
static int op_touch(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(utimes(op->path, NULL));
}

/* Runs op->path (sec-ids) and returns what it printed. */
static int op_exec(const struct op *op, char *out, size_t size)
{
	int p[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return errno;
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		dup2(p[1], 1);
		execl(op->path, op->path, (char *)NULL);
		_exit(errno == EACCES ? 126 : 127);
	}
	close(p[1]);
	while (len < size - 1 &&
	       (n = read(p[0], out + len, size - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
		return ENOEXEC;
	if (WEXITSTATUS(status) == 126)
		return EACCES;
	return 0;
}

/* Runs op as w in a child, bounded; returns its errno (0: success) and
 * what it described in out (if given). */
static int as_who(const struct who *w, const struct op *op, char *out,
		  size_t size)
{
	char buf[4096];
	int pfd[2], status, res = -1;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	h_assert_ok(pipe2(pfd, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int r = 1000;

		close(pfd[0]);
		buf[0] = '\0';
		if (setgroups(w->ngroups, w->groups) == 0 &&
		    setresgid(w->gid, w->gid, w->gid) == 0 &&
		    setresuid(w->uid, w->uid, w->uid) == 0)
			r = op->fn(op, buf, sizeof(buf));
		if (write(pfd[1], &r, sizeof(r)) < 0 ||
		    write(pfd[1], buf, strnlen(buf, sizeof(buf))) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	if (h_wait(pid, AS_WAIT_MS, &status) < 0) {
		kill(pid, SIGKILL);
		h_wait(pid, H_EXIT_WAIT_MS, &status);
		close(pfd[0]);
		fail_msg("%s as uid %u: no answer within %d ms", op->path,
			 (unsigned)w->uid, AS_WAIT_MS);
	}
	if (read(pfd[0], &res, sizeof(res)) != sizeof(res))
		res = -1;
	while (got < sizeof(buf) - 1 &&
	       (n = read(pfd[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(pfd[0]);
	if (res == 1000 || res < 0)
		fail_msg("could not become uid %u gid %u", (unsigned)w->uid,
			 (unsigned)w->gid);
	if (out)
		snprintf(out, size, "%s", buf);
	return res;
}

/* op as w must end with errno want (0: succeed). */
#define as_expect(w, want, ...)                                               \
	do {                                                                  \
		const struct op op_ = { __VA_ARGS__ };                        \
		int e_ = as_who((w), &op_, NULL, 0);                          \
		if (e_ != (want))                                             \
			fail_msg("%s as uid %u (%s): %s, expected %s",        \
				 op_.path, (unsigned)(w)->uid,                \
				 #__VA_ARGS__,                                \
				 e_ ? strerrorname_np(e_) : "success",        \
				 (want) ? strerrorname_np(want) : "success"); \
	} while (0)

/* The content w reads at path must be content. */
static void as_reads(const struct who *w, const char *path,
		     const char *content)
{
	char out[4096];
	const struct op op = { .fn = op_read, .path = path };
	int e = as_who(w, &op, out, sizeof(out));

	if (e)
		fail_msg("%s as uid %u: %s, expected to read \"%s\"", path,
			 (unsigned)w->uid, strerrorname_np(e), content);
	if (strcmp(out, content))
		fail_msg("%s as uid %u: read \"%s\", expected \"%s\"", path,
			 (unsigned)w->uid, out, content);
}

/* w must fail to read path with want, and see no content of it. */
static void as_denied(const struct who *w, const char *path, int want)
{
	char out[4096];
	const struct op op = { .fn = op_read, .path = path };
	int e = as_who(w, &op, out, sizeof(out));

	if (e != want)
		fail_msg("%s as uid %u: %s%s%s, expected %s", path,
			 (unsigned)w->uid, e ? strerrorname_np(e) : "read \"",
			 e ? "" : out, e ? "" : "\"", strerrorname_np(want));
}

/* ---- attributes --------------------------------------------------------- */

/* A POSIX ACL xattr (version 2, little-endian entries). */
struct acl_ent {
	uint16_t tag, perm;
	uint32_t id;
};
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_MASK 0x10
#define ACL_OTHER 0x20
#define ACL_NO_ID 0xffffffffu

static void set_acl(const char *rel, const char *name, const struct acl_ent *e,
		    size_t n)
{
	char buf[4 + 8 * 8];
	uint32_t v = htole32(2);

	assert_true(n <= 8);
	memcpy(buf, &v, 4);
	for (size_t i = 0; i < n; i++) {
		uint16_t tag = htole16(e[i].tag), perm = htole16(e[i].perm);
		uint32_t id = htole32(e[i].id);

		memcpy(buf + 4 + 8 * i, &tag, 2);
		memcpy(buf + 6 + 8 * i, &perm, 2);
		memcpy(buf + 8 + 8 * i, &id, 4);
	}
	if (lsetxattr(h_path("%s", rel), name, buf, 4 + 8 * n, 0) < 0) {
		if (errno == EOPNOTSUPP) {
			print_message("SKIP: no POSIX ACLs here\n");
			skip();
		}
		fail_msg("set %s on %s: %s", name, rel, strerror(errno));
	}
}

/* 0640 with user ACL_UID r--: the file's access ACL. */
static void acl_file(const char *rel)
{
	static const struct acl_ent e[] = {
		{ ACL_USER_OBJ, 6, ACL_NO_ID }, { ACL_USER, 4, ACL_UID },
		{ ACL_GROUP_OBJ, 4, ACL_NO_ID }, { ACL_MASK, 4, ACL_NO_ID },
		{ ACL_OTHER, 0, ACL_NO_ID },
	};

	set_acl(rel, "system.posix_acl_access", e, 5);
}

/* 0750 with user ACL_UID r-x, and the same as the default ACL. */
static void acl_dir(const char *rel)
{
	static const struct acl_ent e[] = {
		{ ACL_USER_OBJ, 7, ACL_NO_ID }, { ACL_USER, 5, ACL_UID },
		{ ACL_GROUP_OBJ, 5, ACL_NO_ID }, { ACL_MASK, 5, ACL_NO_ID },
		{ ACL_OTHER, 0, ACL_NO_ID },
	};

	set_acl(rel, "system.posix_acl_access", e, 5);
	set_acl(rel, "system.posix_acl_default", e, 5);
}

/* security.capability: cap_net_bind_service+ep. */
static void set_caps(const char *rel)
{
	struct vfs_cap_data cap = { 0 };

	cap.magic_etc = htole32(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE);
	cap.data[0].permitted = htole32(1u << CAP_NET_BIND_SERVICE);
	if (lsetxattr(h_path("%s", rel), "security.capability", &cap,
		      XATTR_CAPS_SZ_2, 0) < 0)
		fail_msg("set security.capability on %s: %s", rel,
			 strerror(errno));
}

/* What "copy-up never adds permissions" is about: type and mode, owner,
 * the ACLs and file capabilities. */
struct attrs {
	mode_t mode;
	uid_t uid;
	gid_t gid;
	char acl[256], dacl[256], cap[64];
	ssize_t nacl, ndacl, ncap; /* -errno when absent */
};

static ssize_t xattr_or_errno(const char *path, const char *name, char *buf,
			      size_t size)
{
	ssize_t n = lgetxattr(path, name, buf, size);

	return n < 0 ? -errno : n;
}

static void attrs_of(const char *path, struct attrs *a)
{
	struct stat st = h_lstat(path);

	memset(a, 0, sizeof(*a));
	a->mode = st.st_mode;
	a->uid = st.st_uid;
	a->gid = st.st_gid;
	a->nacl = xattr_or_errno(path, "system.posix_acl_access", a->acl,
				 sizeof(a->acl));
	a->ndacl = xattr_or_errno(path, "system.posix_acl_default", a->dacl,
				  sizeof(a->dacl));
	a->ncap = xattr_or_errno(path, "security.capability", a->cap,
				 sizeof(a->cap));
	/* "none" reads the same whichever way a filesystem says it */
	if (a->nacl == -EOPNOTSUPP)
		a->nacl = -ENODATA;
	if (a->ndacl == -EOPNOTSUPP)
		a->ndacl = -ENODATA;
	if (a->ncap == -EOPNOTSUPP)
		a->ncap = -ENODATA;
}

static bool same_blob(ssize_t na, const char *a, ssize_t nb, const char *b)
{
	return na == nb && (na <= 0 || !memcmp(a, b, (size_t)na));
}

/* Appends to msg what differs between got and want; true when nothing. */
static bool attrs_equal(const struct attrs *got, const struct attrs *want,
			char *msg, size_t size)
{
	size_t start = strlen(msg), len = start;

#define ADD(...)                                                             \
	do {                                                                 \
		int n_ = snprintf(msg + len, size - len, __VA_ARGS__);       \
		if (n_ > 0 && (size_t)n_ < size - len)                       \
			len += (size_t)n_;                                   \
	} while (0)
	if (got->mode != want->mode)
		ADD(" mode %06o (native %06o)", (unsigned)got->mode,
		    (unsigned)want->mode);
	if (got->uid != want->uid || got->gid != want->gid)
		ADD(" owner %u:%u (native %u:%u)", (unsigned)got->uid,
		    (unsigned)got->gid, (unsigned)want->uid,
		    (unsigned)want->gid);
	if (!same_blob(got->nacl, got->acl, want->nacl, want->acl))
		ADD(" access ACL %zd bytes (native %zd)", got->nacl,
		    want->nacl);
	if (!same_blob(got->ndacl, got->dacl, want->ndacl, want->dacl))
		ADD(" default ACL %zd bytes (native %zd)", got->ndacl,
		    want->ndacl);
	if (!same_blob(got->ncap, got->cap, want->ncap, want->cap))
		ADD(" security.capability %zd bytes (native %zd)", got->ncap,
		    want->ncap);
#undef ADD
	return len == start;
}

/* ---- the stack of the root-mounted tests -------------------------------- */

/* l1 over l2, upper u, work w, mounted at mnt by root (so with
 * allow_other), the test root open to other users. */
static struct h_mount *mount_root(const char *extra)
{
	h_mkdir("l1");
	h_mkdir("l2");
	h_mkdir("u");
	h_mkdir("w");
	h_assert_ok(chmod(h_path("."), 0755));
	return h_mount(h_fmt("%s,upperdir=%s,workdir=%s%s",
			     h_lowerdir("l1", "l2", NULL), h_path("u"),
			     h_path("w"), extra),
		       "mnt");
}

/* ---- 1. other users, checked against the merged attributes -------------- */

/* Root changes modes and owners through the mount; another user's access
 * follows what the mount now shows, not what the lower says. */
static void other_user_merged_attrs(void **state)
{
	const struct who owner = { OWNER_UID, OWNER_GID, 0, { 0 } };
	struct h_mount *m;
	struct stat st;
	char mnt[PATH_MAX];

	(void)state;
	h_need_root();
	file_as("l2/a644", "A", 0, 0, 0644);
	file_as("l2/b600", "B", 0, 0, 0600);
	file_as("l2/c600", "C", 0, 0, 0600);
	file_as("l2/d600", "D", OTHER_UID, OTHER_GID, 0600);
	dir_as("l2/dir", 0, 0, 0755);
	file_as("l2/dir/f", "F", 0, 0, 0644);
	dir_as("l2/od", 0, 0, 0755);
	file_as("l2/od/f", "F", 0, 0, 0644);
	file_as("l2/gone", "G", 0, 0, 0644);
	file_as("l2/hidden", "H", 0, 0, 0644);
	dir_as("l1", 0, 0, 0755);
	h_whiteout("l1/hidden", H_WH_CHARDEV);
	/* an opaque upper directory, stricter than the lower one */
	dir_as("u", 0, 0, 0755);
	dir_as("u/od", 0, 0, 0700);
	file_as("u/od/g", "G", 0, 0, 0644);
	h_opaque("u/od", H_OPQ_XATTR_TRUSTED);
	m = mount_root("");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);

	/* what the lower says, first */
	as_reads(&other, h_fmt("%s/a644", mnt), "A");
	as_denied(&other, h_fmt("%s/b600", mnt), EACCES);
	as_reads(&other, h_fmt("%s/dir/f", mnt), "F");

	/* chmod through the mount: 0644 -> 0600 closes it, 0600 -> 0644
	 * opens it */
	h_assert_ok(chmod(h_fmt("%s/a644", mnt), 0600));
	h_assert_ok(chmod(h_fmt("%s/b600", mnt), 0644));
	as_denied(&other, h_fmt("%s/a644", mnt), EACCES);
	as_reads(&other, h_fmt("%s/b600", mnt), "B");
	assert_int_equal(h_lstat(h_path("u/a644")).st_mode & 07777, 0600);
	assert_int_equal(h_lstat(h_path("u/b600")).st_mode & 07777, 0644);

	/* chown moves access: to the other user, and away from it */
	h_assert_ok(chown(h_fmt("%s/c600", mnt), OTHER_UID, OTHER_GID));
	h_assert_ok(chown(h_fmt("%s/d600", mnt), 0, 0));
	as_reads(&other, h_fmt("%s/c600", mnt), "C");
	as_denied(&other, h_fmt("%s/d600", mnt), EACCES);
	as_denied(&owner, h_fmt("%s/c600", mnt), EACCES);

	/* a directory made 0700 in the upper hides its lower entries */
	h_assert_ok(chmod(h_fmt("%s/dir", mnt), 0700));
	as_expect(&other, EACCES, .fn = op_stat,
		  .path = h_fmt("%s/dir/f", mnt));
	as_expect(&other, EACCES, .fn = op_list, .path = h_fmt("%s/dir", mnt));
	as_denied(&other, h_fmt("%s/dir/f", mnt), EACCES);
	h_assert_content(h_fmt("%s/dir/f", mnt), "F");

	/* the opaque upper directory: its mode rules, and the lower names
	 * it hides do not exist */
	as_expect(&other, EACCES, .fn = op_stat,
		  .path = h_fmt("%s/od/g", mnt));
	as_expect(&other, EACCES, .fn = op_stat,
		  .path = h_fmt("%s/od/f", mnt));
	as_expect(&other, EACCES, .fn = op_list, .path = h_fmt("%s/od", mnt));
	h_assert_errno(lstat(h_fmt("%s/od/f", mnt), &st), ENOENT);
	h_assert_content(h_fmt("%s/od/g", mnt), "G");

	/* whiteouts: one made through the mount, one in a lower layer */
	h_assert_ok(unlink(h_fmt("%s/gone", mnt)));
	as_expect(&other, ENOENT, .fn = op_stat, .path = h_fmt("%s/gone", mnt));
	as_expect(&other, ENOENT, .fn = op_read, .path = h_fmt("%s/gone", mnt));
	as_expect(&other, ENOENT, .fn = op_stat,
		  .path = h_fmt("%s/hidden", mnt));
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* Changes the modes refuse: the errno a native filesystem gives, and
 * nothing copied up (no file, no directory, no whiteout in the upper). */
static void refused_changes_copy_nothing(void **state)
{
	struct h_mount *m;
	char mnt[PATH_MAX];

	(void)state;
	h_need_root();
	file_as("l2/pub", "P", 0, 0, 0644);
	dir_as("l2/sub", 0, 0, 0755);
	file_as("l2/sub/pub2", "P2", 0, 0, 0644);
	dir_as("l2/tmp", 0, 0, 01777);
	file_as("l2/tmp/theirs", "T", OWNER_UID, OWNER_GID, 0666);
	m = mount_root("");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);

	/* writing a file of root's */
	as_expect(&other, EACCES, .fn = op_open, .path = h_fmt("%s/pub", mnt),
		  .flags = O_WRONLY);
	as_expect(&other, EACCES, .fn = op_open, .path = h_fmt("%s/pub", mnt),
		  .flags = O_RDWR | O_APPEND);
	as_expect(&other, EACCES, .fn = op_open, .path = h_fmt("%s/pub", mnt),
		  .flags = O_RDONLY | O_TRUNC);
	as_expect(&other, EACCES, .fn = op_truncate,
		  .path = h_fmt("%s/pub", mnt));
	/* its metadata */
	as_expect(&other, EPERM, .fn = op_chmod, .path = h_fmt("%s/pub", mnt),
		  .mode = 0666);
	as_expect(&other, EPERM, .fn = op_chown, .path = h_fmt("%s/pub", mnt),
		  .uid = OTHER_UID, .gid = OTHER_GID);
	as_expect(&other, EPERM, .fn = op_chown, .path = h_fmt("%s/pub", mnt),
		  .uid = (uid_t)-1, .gid = OTHER_GID);
	as_expect(&other, EACCES, .fn = op_setxattr,
		  .path = h_fmt("%s/pub", mnt));
	as_expect(&other, EPERM, .fn = op_utimes, .path = h_fmt("%s/pub", mnt));
	as_expect(&other, EACCES, .fn = op_touch, .path = h_fmt("%s/pub", mnt));
	/* names in directories of root's */
	as_expect(&other, EACCES, .fn = op_unlink,
		  .path = h_fmt("%s/sub/pub2", mnt));
	as_expect(&other, EACCES, .fn = op_rename,
		  .path = h_fmt("%s/sub/pub2", mnt),
		  .path2 = h_fmt("%s/tmp/moved", mnt));
	as_expect(&other, EACCES, .fn = op_open,
		  .path = h_fmt("%s/sub/new", mnt),
		  .flags = O_WRONLY | O_CREAT | O_EXCL);
	as_expect(&other, EACCES, .fn = op_mkdir,
		  .path = h_fmt("%s/sub/newdir", mnt), .mode = 0755);
	as_expect(&other, EACCES, .fn = op_rmdir,
		  .path = h_fmt("%s/sub", mnt));
	/* a hard link to a file it may not write (protected_hardlinks) */
	as_expect(&other, EPERM, .fn = op_link, .path = h_fmt("%s/pub", mnt),
		  .path2 = h_fmt("%s/tmp/l", mnt));
	/* the sticky directory: another user's file stays */
	as_expect(&other, EPERM, .fn = op_unlink,
		  .path = h_fmt("%s/tmp/theirs", mnt));
	as_expect(&other, EPERM, .fn = op_rename,
		  .path = h_fmt("%s/tmp/theirs", mnt),
		  .path2 = h_fmt("%s/tmp/mine", mnt));
	as_expect(&other, EPERM, .fn = op_chmod,
		  .path = h_fmt("%s/tmp/theirs", mnt), .mode = 0600);
	as_reads(&other, h_fmt("%s/tmp/theirs", mnt), "T");
	h_assert_content(h_fmt("%s/pub", mnt), "P");
	h_assert_content(h_fmt("%s/sub/pub2", mnt), "P2");

	/* nothing of all that reached the upper: no copy, no whiteout */
	assert_empty_dir(h_path("u"), "after refused changes");
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

static int op_setxattr_named(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(lsetxattr(op->path, op->path2, op->data, strlen(op->data), 0));
}

/* Sets a valid security.capability (cap_net_bind_service+ep). */
static int op_setcap(const struct op *op, char *o, size_t s)
{
	struct vfs_cap_data cap = { 0 };

	(void)o, (void)s;
	cap.magic_etc = htole32(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE);
	cap.data[0].permitted = htole32(1u << CAP_NET_BIND_SERVICE);
	OP_RET(lsetxattr(op->path, "security.capability", &cap,
			 XATTR_CAPS_SZ_2, 0));
}

/* What another user may not add through root's mount, even to objects it
 * owns: file capabilities and trusted.* xattrs (the kernel requires
 * CAP_SETFCAP, CAP_SYS_ADMIN), plyfs's and overlayfs's private xattrs (a
 * forged redirect or opaque marker would show it what root's directories
 * hold: plyfs refuses them) and marker names (.wh.*). */
static void other_user_cannot_forge(void **state)
{
	struct h_mount *m;
	char mnt[PATH_MAX], mine[PATH_MAX], dir[PATH_MAX];
	static const char *const privileged[] = {
		"trusted.x", "trusted.overlay.opaque", "trusted.overlay.redirect",
	};
	static const char *const private[] = {
		"user.overlay.redirect",  "user.overlay.opaque",
		"user.overlay.whiteout",  "user.overlay.metacopy",
		"user.plyfs.origin",	  "user.containers.override_stat",
		"user.fuseoverlayfs.override_stat",
	};

	(void)state;
	h_need_root();
	dir_as("l2/tmp", 0, 0, 01777);
	dir_as("l2/vault", 0, 0, 0700);
	file_as("l2/vault/key", "KEY", 0, 0, 0644);
	m = mount_root("");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	h_sfmt(mine, sizeof(mine), "%s/tmp/mine", mnt);
	h_sfmt(dir, sizeof(dir), "%s/tmp/d", mnt);
	as_expect(&other, 0, .fn = op_open, .path = mine,
		  .flags = O_WRONLY | O_CREAT | O_EXCL);
	as_expect(&other, 0, .fn = op_mkdir, .path = dir, .mode = 0755);
	as_expect(&other, EPERM, .fn = op_setcap, .path = mine);
	for (size_t i = 0; i < sizeof(privileged) / sizeof(*privileged); i++) {
		as_expect(&other, EPERM, .fn = op_setxattr_named, .path = mine,
			  .path2 = privileged[i], .data = "y");
		as_expect(&other, EPERM, .fn = op_setxattr_named, .path = dir,
			  .path2 = privileged[i], .data = "y");
	}
	for (size_t i = 0; i < sizeof(private) / sizeof(*private); i++) {
		as_expect(&other, EPERM, .fn = op_setxattr_named, .path = mine,
			  .path2 = private[i], .data = "/vault");
		as_expect(&other, EPERM, .fn = op_setxattr_named, .path = dir,
			  .path2 = private[i], .data = "/vault");
	}
	as_expect(&other, EINVAL, .fn = op_open,
		  .path = h_fmt("%s/tmp/.wh.mine", mnt),
		  .flags = O_WRONLY | O_CREAT | O_EXCL);
	as_expect(&other, EINVAL, .fn = op_mkdir,
		  .path = h_fmt("%s/tmp/.wh..wh..opq", mnt), .mode = 0755);
	/* its own user.* xattrs are fine */
	as_expect(&other, 0, .fn = op_setxattr, .path = mine);
	/* nothing it tried is in the upper, and the vault stays closed */
	for (int k = 0; k < 2; k++) {
		const char *up = h_path(k ? "u/tmp/d" : "u/tmp/mine");
		char list[4096];
		ssize_t n = llistxattr(up, list, sizeof(list));

		for (ssize_t pos = 0; pos < n; pos += strlen(list + pos) + 1)
			if (strcmp(list + pos, "user.sec") &&
			    strncmp(list + pos, "trusted.plyfs.", 14) &&
			    strncmp(list + pos, "system.", 7))
				fail_msg("%s carries %s", up, list + pos);
	}
	as_expect(&other, EACCES, .fn = op_list,
		  .path = h_fmt("%s/vault", mnt));
	as_expect(&other, ENOENT, .fn = op_stat,
		  .path = h_fmt("%s/tmp/d/key", mnt));
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* With uidmapping=/gidmapping= (ONDISK:PRESENTED:LENGTH, fuse-overlayfs's
 * order), the kernel checks access against the presented owner; chown
 * through the mount moves access by presented ids, written back mapped. */
static void idmap_presented_owner(void **state)
{
	const struct who u2000 = { 2000, 2000, 0, { 0 } };
	const struct who u1000 = { 1000, 1000, 0, { 0 } };
	const struct who u2001 = { 2001, 2001, 0, { 0 } };
	const struct who g2001 = { 3000, 3000, 1, { 2001 } };
	const struct who g1001 = { 3000, 3000, 1, { 1001 } };
	struct h_mount *m;
	char mnt[PATH_MAX];
	struct stat st;

	(void)state;
	h_need_root();
	file_as("l2/f", "F", 1000, 1000, 0600);
	file_as("l2/g", "G", 0, 1001, 0640);
	m = mount_root(",uidmapping=0:0:1:1000:2000:10,"
		       "gidmapping=0:0:1:1000:2000:10");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);

	st = h_lstat(h_fmt("%s/f", mnt));
	assert_int_equal(st.st_uid, 2000);
	assert_int_equal(st.st_gid, 2000);
	st = h_lstat(h_fmt("%s/g", mnt));
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, 2001);

	/* the presented owner reads, the on-disk one does not */
	as_reads(&u2000, h_fmt("%s/f", mnt), "F");
	as_denied(&u1000, h_fmt("%s/f", mnt), EACCES);
	as_reads(&g2001, h_fmt("%s/g", mnt), "G");
	as_denied(&g1001, h_fmt("%s/g", mnt), EACCES);

	/* chown to presented 2001: on disk 1001, and access moves */
	h_assert_ok(chown(h_fmt("%s/f", mnt), 2001, 2001));
	st = h_lstat(h_fmt("%s/f", mnt));
	assert_int_equal(st.st_uid, 2001);
	st = h_lstat(h_path("u/f"));
	assert_int_equal(st.st_uid, 1001);
	assert_int_equal(st.st_gid, 1001);
	assert_int_equal(st.st_mode & 07777, 0600);
	as_reads(&u2001, h_fmt("%s/f", mnt), "F");
	as_denied(&u2000, h_fmt("%s/f", mnt), EACCES);
	/* the presented owner may chmod; others may not */
	as_expect(&u2000, EPERM, .fn = op_chmod, .path = h_fmt("%s/f", mnt),
		  .mode = 0644);
	as_expect(&u2001, 0, .fn = op_chmod, .path = h_fmt("%s/f", mnt),
		  .mode = 0640);
	assert_int_equal(h_lstat(h_path("u/f")).st_mode & 07777, 0640);
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* A lower layer that keeps ownership in override xattrs (its root carries
 * one, as containers-storage writes them): what the mount shows must not
 * change when the object is copied up. */
static void lower_override_kept(void **state)
{
	struct h_mount *m;
	char mnt[PATH_MAX], msg[1024] = "";
	struct stat st;

	(void)state;
	h_need_root();
	h_mkdir("l2");
	h_xattr("l2", "user.containers.override_stat", "0:0:0755");
	/* on disk OWNER's and 0666; shown as root's, 0600 */
	file_as("l2/f", "secret", OWNER_UID, OWNER_GID, 0666);
	h_xattr("l2/f", "user.containers.override_stat", "0:0:0600");
	file_as("l2/g", "secret", OWNER_UID, OWNER_GID, 0666);
	h_xattr("l2/g", "user.containers.override_stat", "0:0:0600");
	m = mount_root("");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);

	st = h_lstat(h_fmt("%s/f", mnt));
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	as_denied(&other, h_fmt("%s/f", mnt), EACCES);

	/* root appends (a full copy-up) and touches the other (metacopy) */
	h_append(h_fmt("%s/f", mnt), "+");
	h_assert_ok(utimes(h_fmt("%s/g", mnt), NULL));
	for (int i = 0; i < 2; i++) {
		const char *name = i ? "g" : "f";
		char out[64];
		const struct op rd = { .fn = op_read,
				       .path = h_fmt("%s/%s", mnt, name) };
		size_t len = strlen(msg);
		int e;

		st = h_lstat(h_fmt("%s/%s", mnt, name));
		e = as_who(&other, &rd, out, sizeof(out));
		if (st.st_uid == 0 && st.st_gid == 0 &&
		    (st.st_mode & 07777) == 0600 && e == EACCES)
			continue;
		snprintf(msg + len, sizeof(msg) - len,
			 "\n  %s (%s): shown %u:%u %04o (0:0 0600 before), "
			 "uid %u reads it: %s",
			 name, i ? "utimes, metacopy" : "append, full copy",
			 (unsigned)st.st_uid, (unsigned)st.st_gid,
			 (unsigned)(st.st_mode & 07777), (unsigned)OTHER_UID,
			 e ? strerrorname_np(e) : "yes");
	}
	if (msg[0])
		fail_msg("a copy-up changed what the mount shows:%s", msg);
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* ---- 2. an unprivileged user's mount ------------------------------------ */

/* Why the unprivileged tests skip (NULL: they run), and the user. */
static const char *skip_user;
static char skip_buf[512];
static struct who user;

static bool have_exe(const char *path)
{
	return access(path, X_OK) == 0;
}

/* useradd of the test user, as test-mount-rootless does it. */
static bool add_user(void)
{
	const char *argv[] = { "/usr/sbin/useradd", "-M", "-s", "/bin/sh",
			       TEST_USER, NULL };
	char out[] = "/tmp/plyfs-security-setup.XXXXXX";
	int fd = mkstemp(out), status = -1;
	pid_t pid;

	if (fd < 0)
		return false;
	close(fd);
	pid = h_spawn(argv, "/", NULL, out, out);
	if (h_wait(pid, H_RUN_WAIT_MS, &status) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		status = -1;
	}
	if (status != 0) {
		FILE *f = fopen(out, "re");
		size_t n;

		snprintf(skip_buf, sizeof(skip_buf), "useradd failed: ");
		n = strlen(skip_buf);
		if (f) {
			n += fread(skip_buf + n, 1, sizeof(skip_buf) - n - 1, f);
			fclose(f);
		}
		skip_buf[n] = '\0';
	}
	unlink(out);
	return status == 0;
}

static mode_t fuse_mode_before;
static bool fuse_mode_changed;

static int group_setup(void **state)
{
	struct passwd *pw;
	struct stat st;

	(void)state;
	umask(022);
	if (!h_is_root()) {
		skip_user = "needs root (it creates the user " TEST_USER ")";
		return 0;
	}
	if (!have_exe(setpriv_bin) || !have_exe("/usr/bin/fusermount3")) {
		skip_user = "needs setpriv and fusermount3 (util-linux, fuse3)";
		return 0;
	}
	pw = getpwnam(TEST_USER);
	if (!pw && have_exe("/usr/sbin/useradd") && add_user())
		pw = getpwnam(TEST_USER);
	if (!pw) {
		skip_user = skip_buf[0] ? skip_buf :
					  "no user " TEST_USER " and no useradd";
		return 0;
	}
	user.uid = pw->pw_uid;
	user.gid = pw->pw_gid;
	if (stat("/dev/fuse", &st) == 0 && (st.st_mode & 0666) != 0666) {
		fuse_mode_before = st.st_mode & 07777;
		if (chmod("/dev/fuse", 0666) == 0)
			fuse_mode_changed = true;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (fuse_mode_changed)
		chmod("/dev/fuse", fuse_mode_before);
	return 0;
}

static int op_access_x(const struct op *op, char *o, size_t s)
{
	(void)o, (void)s;
	OP_RET(access(op->path, X_OK));
}

/* Skips unless the user exists and can run plyfs; opens the test root
 * to it (search only) and gives it s/ for its upper, work and mount. */
static void need_user(void)
{
	const struct op op = { .fn = op_access_x, .path = h_plyfs() };

	if (skip_user) {
		print_message("SKIP: %s\n", skip_user);
		skip();
	}
	h_assert_ok(chmod(h_path("."), 0711));
	if (as_who(&user, &op, NULL, 0) != 0) {
		print_message("SKIP: %s cannot run %s (a directory on its way "
			      "is closed to it)\n", TEST_USER, h_plyfs());
		skip();
	}
	dir_as("s", user.uid, user.gid, 0700);
}

/* The sec-ids helper: $PLY_SEC_IDS, else beside this program. */
static const char *sec_ids(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("PLY_SEC_IDS");
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", path, sizeof(path) - 16);
	assert_true(n > 0);
	path[n] = '\0';
	slash = strrchr(path, '/');
	assert_non_null(slash);
	strcpy(slash + 1, "sec-ids");
	if (!have_exe(path))
		fail_msg("no sec-ids helper at %s (set PLY_SEC_IDS)", path);
	return path;
}

/* Copies sec-ids to rel, root-owned, with mode. */
static void install_ids(const char *rel, uid_t uid, gid_t gid, mode_t mode)
{
	size_t len;
	char *data = h_read(sec_ids(), &len);

	h_file_data(rel, data, len);
	free(data);
	h_assert_ok(lchown(h_path("%s", rel), uid, gid));
	h_assert_ok(chmod(h_path("%s", rel), mode));
}

/* The per-mount options of the mount at path in /proc/self/mountinfo
 * (field 6, e.g. "rw,nosuid,nodev,relatime"). */
static const char *mount_flags(const char *path)
{
	static char flags[256];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	assert_non_null(f);
	while (!found && getline(&line, &cap, f) > 0) {
		char mp[PATH_MAX], opts[256];

		if (sscanf(line, "%*s %*s %*s %*s %4095s %255s", mp, opts) != 2)
			continue;
		if (!strcmp(mp, path)) {
			snprintf(flags, sizeof(flags), "%s", opts);
			found = true;
		}
	}
	free(line);
	fclose(f);
	if (!found)
		fail_msg("%s is not in /proc/self/mountinfo", path);
	return flags;
}

static bool has_flag(const char *flags, const char *flag)
{
	const char *p = flags;
	size_t n = strlen(flag);

	while ((p = strstr(p, flag))) {
		if ((p == flags || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

/* plyfs -f run as the user (setpriv), which mounts through fusermount3.
 * Root cannot look into a mount without allow_other, so the mount is
 * awaited in mountinfo. The harness unmounts it (fusermount3 -u as root)
 * and reaps the daemon whatever happens. NULL when the daemon exited
 * first (its stderr in *ret_err, if asked). */
static struct h_mount *mount_user(const char *opts, const char *mntrel,
				  char **ret_err)
{
	char mnt[PATH_MAX];
	struct h_mount *m;

	dir_as(mntrel, user.uid, user.gid, 0755);
	h_sfmt(mnt, sizeof(mnt), "%s", h_path("%s", mntrel));
	m = h_start(H_NAMES(setpriv_bin, h_fmt("--reuid=%u", user.uid),
			    h_fmt("--regid=%u", user.gid), "--init-groups",
			    "--", h_plyfs(), "-f", "-o", opts, mnt),
		    "/", mnt);
	for (int waited = 0; waited <= H_MOUNT_WAIT_MS; waited += H_POLL_MS) {
		siginfo_t si = { 0 };

		if (h_is_mountpoint(mnt))
			return m;
		/* exited? (not reaped: h_umount does that) */
		if (waitid(P_PID, m->pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
			    0 &&
		    si.si_pid == m->pid) {
			char *err = h_read(m->errlog, NULL);

			assert_int_equal(h_umount(m), si.si_status << 8);
			if (ret_err) {
				*ret_err = err;
				return NULL;
			}
			fail_msg("plyfs as %s exited before mounting: %s",
				 TEST_USER, err);
		}
		usleep(H_POLL_MS * 1000);
	}
	fail_msg("%s not mounted after %d ms", mnt, H_MOUNT_WAIT_MS);
	return NULL;
}

/* What sec-ids printed as w: "RUID EUID RGID EGID". */
static void exec_ids(const struct who *w, const char *path, unsigned ids[4])
{
	char out[256];
	const struct op op = { .fn = op_exec, .path = path };
	int e = as_who(w, &op, out, sizeof(out));

	if (e)
		fail_msg("running %s as uid %u: %s", path, (unsigned)w->uid,
			 strerrorname_np(e));
	if (sscanf(out, "%u %u %u %u", &ids[0], &ids[1], &ids[2], &ids[3]) != 4)
		fail_msg("%s printed \"%s\"", path, out);
}

/* The user's mount is nosuid,nodev: a setuid-root and a setgid-root
 * program of the layers run with the user's ids, and device files do not
 * open. The same programs run from the lower itself do change ids (so the
 * test sees the difference), and so they do through root's mount with
 * suid,dev. */
static void unpriv_setuid_devices_inert(void **state)
{
	char mnt[PATH_MAX], opts[4096], *err = NULL;
	struct h_mount *m;
	unsigned ids[4];
	const char *fl;

	(void)state;
	h_need_root();
	need_user();
	dir_as("p", 0, 0, 0755);
	dir_as("p/lower", 0, 0, 0755);
	install_ids("p/lower/suid-ids", 0, 0, 04755);
	install_ids("p/lower/sgid-ids", 0, 0, 02755);
	h_mknod("p/lower/null", S_IFCHR | 0666, makedev(1, 3));
	h_mknod("p/lower/loop", S_IFBLK | 0666, makedev(7, 0));
	h_assert_ok(chmod(h_path("p/lower/null"), 0666));
	h_assert_ok(chmod(h_path("p/lower/loop"), 0666));
	dir_as("s/u", user.uid, user.gid, 0755);
	dir_as("s/w", user.uid, user.gid, 0755);

	/* where the filesystem allows it, the bits work */
	exec_ids(&user, h_path("p/lower/suid-ids"), ids);
	if (ids[1] != 0) {
		print_message("SKIP: a setuid-root program does not take "
			      "effect here even outside the mount (euid %u)\n",
			      ids[1]);
		skip();
	}

	h_sfmt(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s",
	     h_path("p/lower"), h_path("s/u"), h_path("s/w"));
	m = mount_user(opts, "s/mnt", NULL);
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	fl = mount_flags(mnt);
	print_message("%s's mount: %s\n", TEST_USER, fl);
	if (!has_flag(fl, "nosuid") || !has_flag(fl, "nodev"))
		fail_msg("%s's mount is \"%s\": not nosuid,nodev", TEST_USER,
			 fl);
	exec_ids(&user, h_fmt("%s/suid-ids", mnt), ids);
	if (ids[0] != user.uid || ids[1] != user.uid)
		fail_msg("setuid-root program through the mount: uid %u euid "
			 "%u", ids[0], ids[1]);
	exec_ids(&user, h_fmt("%s/sgid-ids", mnt), ids);
	if (ids[2] != user.gid || ids[3] != user.gid)
		fail_msg("setgid-root program through the mount: gid %u egid "
			 "%u", ids[2], ids[3]);
	as_expect(&user, EACCES, .fn = op_open,
		  .path = h_fmt("%s/null", mnt), .flags = O_RDWR);
	as_expect(&user, EACCES, .fn = op_open,
		  .path = h_fmt("%s/loop", mnt), .flags = O_RDONLY);
	/* a copy-up of the setuid program (chmod needs ownership: the user
	 * has none, so EPERM) leaves the upper as it was */
	as_expect(&user, EPERM, .fn = op_chmod,
		  .path = h_fmt("%s/suid-ids", mnt), .mode = 04755);
	assert_empty_dir(h_path("s/u"), "after the user's attempts");
	assert_int_equal(h_umount(m), 0);

	/* asking for suid,dev changes nothing: fusermount3 refuses them to
	 * a user (or the mount fails) */
	h_sfmt(opts, sizeof(opts), "lowerdir=%s,suid,dev", h_path("p/lower"));
	m = mount_user(opts, "s/mnt", &err);
	if (!m) {
		print_message("suid,dev as %s: refused: %s\n", TEST_USER, err);
		free(err);
	} else {
		fl = mount_flags(mnt);
		print_message("suid,dev as %s: %s\n", TEST_USER, fl);
		if (!has_flag(fl, "nosuid") || !has_flag(fl, "nodev"))
			fail_msg("%s's mount with suid,dev is \"%s\"",
				 TEST_USER, fl);
		exec_ids(&user, h_fmt("%s/suid-ids", mnt), ids);
		assert_int_equal(ids[1], user.uid);
		assert_int_equal(h_umount(m), 0);
	}

	/* root's own mount is nosuid,nodev too unless told (libfuse's
	 * default); with suid,dev the same layer's bits work */
	m = h_mount(h_fmt("lowerdir=%s", h_path("p/lower")), "rmnt");
	fl = mount_flags(m->path);
	if (!has_flag(fl, "nosuid") || !has_flag(fl, "nodev"))
		fail_msg("root's mount without options is \"%s\"", fl);
	exec_ids(&other, h_path("rmnt/suid-ids"), ids);
	assert_int_equal(ids[1], OTHER_UID);
	assert_int_equal(h_umount(m), 0);
	m = h_mount(h_fmt("lowerdir=%s,suid,dev", h_path("p/lower")), "rmnt");
	exec_ids(&other, h_path("rmnt/suid-ids"), ids);
	assert_int_equal(ids[1], 0);
	as_expect(&other, 0, .fn = op_open, .path = h_path("rmnt/null"),
		  .flags = O_RDWR);
	assert_int_equal(h_umount(m), 0);
}

/* The daemon runs as the user: what the user cannot read below stays
 * unreadable through the mount, whatever the mount shows (squash_to_*,
 * noacl, a crafted override xattr): EACCES, never content, and nothing
 * copied up. */
static void unpriv_unreadable_lower(void **state)
{
	const struct acl_ent deny[] = {
		{ ACL_USER_OBJ, 6, ACL_NO_ID }, { ACL_USER, 0, 0 },
		{ ACL_GROUP_OBJ, 4, ACL_NO_ID }, { ACL_MASK, 4, ACL_NO_ID },
		{ ACL_OTHER, 4, ACL_NO_ID },
	};
	struct acl_ent acl[5];
	char mnt[PATH_MAX], opts[4096];
	struct h_mount *m;
	struct stat st;

	(void)state;
	h_need_root();
	need_user();
	dir_as("p", 0, 0, 0755);
	file_as("p/lower/secret", "SECRET", 0, 0, 0600);
	file_as("p/lower/aclsecret", "ACLSECRET", 0, 0, 0644);
	memcpy(acl, deny, sizeof(acl));
	acl[1].id = user.uid;
	set_acl("p/lower/aclsecret", "system.posix_acl_access", acl, 5);
	h_assert_ok(chmod(h_path("p/lower"), 0755));
	/* a crafted layer: its override xattrs say the user owns a file
	 * that is root's 0600 on disk */
	dir_as("p/crafted", 0, 0, 0755);
	h_xattr("p/crafted", "user.containers.override_stat", "0:0:0755");
	file_as("p/crafted/ov", "OVSECRET", 0, 0, 0600);
	h_xattr("p/crafted/ov", "user.containers.override_stat",
		h_fmt("%u:%u:0644", (unsigned)user.uid, (unsigned)user.gid));
	dir_as("s/u", user.uid, user.gid, 0755);
	dir_as("s/w", user.uid, user.gid, 0755);

	/* as the lower says: the kernel refuses */
	h_sfmt(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s",
	     h_path("p/lower"), h_path("s/u"), h_path("s/w"));
	m = mount_user(opts, "s/mnt", NULL);
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	as_denied(&user, h_fmt("%s/secret", mnt), EACCES);
	as_denied(&user, h_fmt("%s/aclsecret", mnt), EACCES);
	as_expect(&user, EACCES, .fn = op_append,
		  .path = h_fmt("%s/secret", mnt), .data = "x");
	assert_int_equal(h_umount(m), 0);
	assert_empty_dir(h_path("s/u"), "after reads refused");

	/* shown as the user's own (squash_to_*) and without ACL checks
	 * (noacl): the kernel lets the open through, the daemon's own open
	 * as the user fails */
	h_sfmt(opts, sizeof(opts),
	     "lowerdir=%s,squash_to_uid=%u,squash_to_gid=%u,noacl",
	     h_path("p/lower"), (unsigned)user.uid, (unsigned)user.gid);
	m = mount_user(opts, "s/mnt", NULL);
	as_expect(&user, 0, .fn = op_stat, .path = h_fmt("%s/secret", mnt));
	as_denied(&user, h_fmt("%s/secret", mnt), EACCES);
	as_denied(&user, h_fmt("%s/aclsecret", mnt), EACCES);
	assert_int_equal(h_umount(m), 0);

	/* the crafted layer: shown as the user's 0644, read EACCES; an
	 * append (a copy-up, which must read it) fails and leaves nothing */
	h_sfmt(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s",
	     h_path("p/crafted"), h_path("s/u"), h_path("s/w"));
	m = mount_user(opts, "s/mnt", NULL);
	{
		char out[128];
		const struct op op = { .fn = op_stat,
				       .path = h_fmt("%s/ov", mnt) };

		assert_int_equal(as_who(&user, &op, out, sizeof(out)), 0);
		print_message("crafted ov as %s sees: %s\n", TEST_USER, out);
	}
	as_denied(&user, h_fmt("%s/ov", mnt), EACCES);
	as_expect(&user, EACCES, .fn = op_append, .path = h_fmt("%s/ov", mnt),
		  .data = "x");
	as_denied(&user, h_fmt("%s/ov", mnt), EACCES);
	assert_int_equal(h_umount(m), 0);
	h_assert_errno(lstat(h_path("s/u/ov"), &st), ENOENT);
	assert_empty_dir(h_path("s/w/work"), "work after the refused copy-up");
}

/* Through the user's mount, no device node and no setuid-root file can be
 * made: mknod EPERM, chmod u+s of a root file EPERM, chown to root EPERM.
 * The user's own setuid bit is allowed (its own ids) and stays inert. */
static void unpriv_no_devices_no_setuid(void **state)
{
	char mnt[PATH_MAX], opts[4096];
	struct h_mount *m;
	struct h_tree t;

	(void)state;
	h_need_root();
	need_user();
	dir_as("p", 0, 0, 0755);
	dir_as("p/lower", 0, 0, 0755);
	file_as("p/lower/rootfile", "R", 0, 0, 0755);
	dir_as("p/lower/mine", user.uid, user.gid, 0755);
	dir_as("s/u", user.uid, user.gid, 0755);
	dir_as("s/w", user.uid, user.gid, 0755);
	h_sfmt(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s",
	     h_path("p/lower"), h_path("s/u"), h_path("s/w"));
	m = mount_user(opts, "s/mnt", NULL);
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);

	as_expect(&user, EPERM, .fn = op_mknod,
		  .path = h_fmt("%s/mine/null", mnt),
		  .mode = S_IFCHR | 0666, .dev = makedev(1, 3));
	as_expect(&user, EPERM, .fn = op_mknod,
		  .path = h_fmt("%s/mine/loop", mnt),
		  .mode = S_IFBLK | 0666, .dev = makedev(7, 0));
	as_expect(&user, EPERM, .fn = op_chmod,
		  .path = h_fmt("%s/rootfile", mnt), .mode = 04755);
	as_expect(&user, EPERM, .fn = op_chmod,
		  .path = h_fmt("%s/rootfile", mnt), .mode = 02755);
	as_expect(&user, 0, .fn = op_open, .path = h_fmt("%s/mine/own", mnt),
		  .flags = O_WRONLY | O_CREAT | O_EXCL);
	as_expect(&user, EPERM, .fn = op_chown,
		  .path = h_fmt("%s/mine/own", mnt), .uid = 0, .gid = 0);
	as_expect(&user, EPERM, .fn = op_chown,
		  .path = h_fmt("%s/mine/own", mnt), .uid = (uid_t)-1,
		  .gid = 0);
	as_expect(&user, 0, .fn = op_chmod, .path = h_fmt("%s/mine/own", mnt),
		  .mode = 04755);
	assert_int_equal(h_umount(m), 0);

	/* the upper: no device but a 0/0 whiteout, no setuid or setgid file
	 * of root's, nothing owned by anyone but the user */
	h_tree_walk(h_path("s/u"), &t);
	for (size_t i = 0; i < t.n; i++) {
		const struct h_entry *e = &t.v[i];

		if ((S_ISCHR(e->mode) && e->rdev != makedev(0, 0)) ||
		    S_ISBLK(e->mode))
			fail_msg("s/u/%s: a device %u:%u", e->path,
				 major(e->rdev), minor(e->rdev));
		if (e->uid != user.uid || e->gid != user.gid)
			fail_msg("s/u/%s: owned by %u:%u", e->path,
				 (unsigned)e->uid, (unsigned)e->gid);
	}
	h_tree_free(&t);
	assert_int_equal(h_lstat(h_path("s/u/mine/own")).st_mode & 07777, 04755);
	assert_int_equal(h_lstat(h_path("s/u/mine/own")).st_uid, user.uid);
}

/* ---- 3. copy-up never adds permissions ---------------------------------- */

enum { X_ACL = 1, X_CAP = 2 };

/* The objects of the copy-up matrix: modes, owners, ACLs, capabilities. */
static const struct spec {
	const char *name;
	bool dir;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int extra;
} specs[] = {
	{ "m0000", false, 0000, OWNER_UID, OWNER_GID, 0 },
	{ "m0600", false, 0600, OWNER_UID, OWNER_GID, 0 },
	{ "m0640", false, 0640, OWNER_UID, OWNER_GID, 0 },
	{ "suid", false, 04755, 0, 0, 0 },
	{ "suidu", false, 04755, OWNER_UID, OWNER_GID, 0 },
	{ "sgid", false, 02755, OWNER_UID, OWNER_GID, 0 },
	{ "acl", false, 0640, OWNER_UID, OWNER_GID, X_ACL },
	{ "cap", false, 0755, 0, 0, X_CAP },
	{ "d1777", true, 01777, OWNER_UID, OWNER_GID, 0 },
	{ "d0700", true, 0700, OWNER_UID, OWNER_GID, 0 },
	{ "d2770", true, 02770, OWNER_UID, OWNER_GID, 0 },
	{ "dacl", true, 0750, OWNER_UID, OWNER_GID, X_ACL },
};

/* What triggers the copy-up. */
enum trig { T_APPEND, T_CHMOD, T_CHOWN, T_SETXATTR, T_LINK, T_RENAME,
	    T_CREATE_IN, T_N };
static const char *const trig_names[T_N] = {
	"append", "chmod", "chown", "setxattr", "link", "rename", "create",
};

static bool trig_applies(enum trig t, const struct spec *sp)
{
	if (sp->dir)
		return t != T_APPEND && t != T_LINK;
	return t != T_CREATE_IN;
}

static void build_spec(const char *base, enum trig t, const struct spec *sp)
{
	const char *rel = h_fmt("%s/%s-%s", base, trig_names[t], sp->name);
	char path[PATH_MAX];

	h_sfmt(path, sizeof(path), "%s", rel);
	if (sp->dir) {
		h_file(h_fmt("%s/inner", path), "inner");
		dir_as(path, sp->uid, sp->gid, sp->mode);
	} else {
		file_as(path, "data", sp->uid, sp->gid, sp->mode);
	}
	if (sp->extra == X_ACL && sp->dir)
		acl_dir(path);
	else if (sp->extra == X_ACL)
		acl_file(path);
	if (sp->extra == X_CAP)
		set_caps(path); /* last: chown would clear it */
}

/* Runs trigger t on path (as root); returns the path to compare. */
static const char *run_trig(enum trig t, const struct spec *sp,
			    const char *path)
{
	switch (t) {
	case T_APPEND:
		h_append(path, "+");
		return path;
	case T_CHMOD:
		h_assert_ok(chmod(path, sp->mode));
		return path;
	case T_CHOWN:
		h_assert_ok(lchown(path, sp->uid, sp->gid));
		return path;
	case T_SETXATTR:
		h_assert_ok(lsetxattr(path, "user.t", "1", 1, 0));
		return path;
	case T_LINK:
		h_assert_ok(link(path, h_fmt("%s.l", path)));
		return path;
	case T_RENAME:
		h_assert_ok(rename(path, h_fmt("%s.r", path)));
		return h_fmt("%s.r", path);
	case T_CREATE_IN:
		h_file(h_fmt("%s/new", path), "new");
		return path;
	default:
		fail_msg("no trigger %d", t);
		return NULL;
	}
}

/* Every trigger on every kind of object, on the mount and on a native
 * copy: the merged object and its upper copy have exactly the attributes
 * the native filesystem gives after the same operation (which is the
 * lower's unless the operation itself changes them: chown clears setuid,
 * a write clears capabilities). */
static void copyup_keeps_attrs(void **state)
{
	struct h_mount *m;
	char mnt[PATH_MAX], msg[8192] = "";
	size_t checked = 0;

	(void)state;
	h_need_root();
	for (enum trig t = 0; t < T_N; t++)
		for (size_t i = 0; i < sizeof(specs) / sizeof(*specs); i++) {
			if (!trig_applies(t, &specs[i]))
				continue;
			build_spec("l2", t, &specs[i]);
			build_spec("n", t, &specs[i]);
		}
	m = mount_root("");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	for (enum trig t = 0; t < T_N; t++)
		for (size_t i = 0; i < sizeof(specs) / sizeof(*specs); i++) {
			const struct spec *sp = &specs[i];
			char name[128], mp[PATH_MAX], np[PATH_MAX];
			struct attrs got, upper, want;
			const char *sub = t == T_CREATE_IN ? "/new" : "";

			if (!trig_applies(t, sp))
				continue;
			h_sfmt(name, sizeof(name), "%s-%s", trig_names[t],
			     sp->name);
			h_sfmt(mp, sizeof(mp), "%s",
			     run_trig(t, sp, h_fmt("%s/%s", mnt, name)));
			h_sfmt(np, sizeof(np), "%s",
			     run_trig(t, sp, h_path("n/%s", name)));
			for (int k = 0; k < (t == T_CREATE_IN ? 2 : 1); k++) {
				const char *s = k ? sub : "";
				const char *last = strrchr(mp, '/') + 1;
				char dm[512] = "", du[512] = "";
				size_t len = strlen(msg);
				bool okm, oku;

				attrs_of(h_fmt("%s%s", np, s), &want);
				attrs_of(h_fmt("%s%s", mp, s), &got);
				attrs_of(h_path("u/%s%s", last, s), &upper);
				okm = attrs_equal(&got, &want, dm, sizeof(dm));
				oku = attrs_equal(&upper, &want, du, sizeof(du));
				if (!okm || !oku)
					snprintf(msg + len, sizeof(msg) - len,
						 "\n  %s%s: mount:%s; upper:%s",
						 last, s, okm ? " same" : dm,
						 oku ? " same" : du);
				checked++;
			}
		}
	print_message("%zu objects compared with native\n", checked);
	if (msg[0])
		fail_msg("attributes after copy-up differ from a native "
			 "filesystem's:%s",
			 msg);
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* Watches WORKDIR/work while a copy-up runs: every temporary seen, its
 * widest mode and owner. */
struct watch {
	char dir[PATH_MAX];
	volatile bool stop;
	unsigned seen, wide;
	mode_t widest;
	char wide_name[128];
	uid_t wide_uid;
};

static void *watch_work(void *arg)
{
	struct watch *w = arg;

	while (!w->stop) {
		DIR *d = opendir(w->dir);
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d))) {
			struct stat st;

			if (strncmp(de->d_name, "#plyfs-", 7) ||
			    fstatat(dirfd(d), de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			w->seen++;
			if (st.st_mode & 077) {
				w->wide++;
				w->widest = st.st_mode;
				w->wide_uid = st.st_uid;
				snprintf(w->wide_name, sizeof(w->wide_name),
					 "%.100s", de->d_name);
			}
		}
		closedir(d);
	}
	return NULL;
}

/* A 64 MiB lower file of mode 0600 (owner not root) copied up by an
 * append: the temporary it is built as in WORKDIR/work is never open to
 * group or others while it is written (it is made 0600 by the daemon,
 * given its owner, then its mode), and work/ itself is closed to others. */
static void copyup_temp_never_wider(void **state)
{
	struct h_mount *m;
	char mnt[PATH_MAX];
	struct watch w = { 0 };
	pthread_t th;
	struct stat st;
	int round;

	(void)state;
	h_need_root();
	for (int i = 0; i < 3; i++) {
		const char *rel = h_fmt("l2/big%d", i);

		h_file_pattern(rel, 64 * MiB, 11 + i);
		h_assert_ok(lchown(h_path("%s", rel), OWNER_UID, OWNER_GID));
		h_assert_ok(chmod(h_path("%s", rel), 0600));
	}
	dir_as("l2/sub", OWNER_UID, OWNER_GID, 0700);
	h_file_pattern("l2/sub/big", 64 * MiB, 21);
	h_assert_ok(chmod(h_path("l2/sub/big"), 0600));
	m = mount_root("");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	h_sfmt(w.dir, sizeof(w.dir), "%s", h_path("w/work"));
	st = h_lstat(w.dir);
	if (st.st_mode & 077)
		fail_msg("%s is mode %04o: open to others", w.dir,
			 (unsigned)(st.st_mode & 07777));

	/* until the watcher has caught a temporary being written */
	for (round = 0; round < 3 && !w.seen; round++) {
		w.stop = false;
		assert_int_equal(pthread_create(&th, NULL, watch_work, &w), 0);
		h_append(h_fmt("%s/big%d", mnt, round), "+");
		w.stop = true;
		pthread_join(th, NULL);
		st = h_lstat(h_path("u/big%d", round));
		assert_int_equal(st.st_mode & 07777, 0600);
		assert_int_equal(st.st_uid, OWNER_UID);
		assert_int_equal(st.st_size, 64 * MiB + 1);
	}
	/* a parent directory (0700) and its file, copied up together */
	w.stop = false;
	assert_int_equal(pthread_create(&th, NULL, watch_work, &w), 0);
	h_append(h_fmt("%s/sub/big", mnt), "+");
	w.stop = true;
	pthread_join(th, NULL);
	assert_int_equal(h_lstat(h_path("u/sub")).st_mode & 07777, 0700);
	print_message("temporaries seen in %d+1 copy-ups: %u, open to group "
		      "or others: %u\n", round, w.seen, w.wide);
	if (w.wide)
		fail_msg("a copy-up temporary was mode %06o (owner %u) while "
			 "being written: %s",
			 (unsigned)w.widest, (unsigned)w.wide_uid, w.wide_name);
	if (!w.seen) {
		print_message("SKIP: no temporary caught while being "
			      "written\n");
		skip();
	}
	assert_empty_dir(h_path("w/work"), "work after the copy-ups");
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

static int op_open_trunc(const struct op *op, char *o, size_t s)
{
	int fd = open(op->path, O_WRONLY | O_TRUNC | O_CLOEXEC);

	(void)o, (void)s;
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* A write, truncation or O_TRUNC open by a user who is not the owner (a
 * member of the file's group, allow_other) clears setuid, and setgid where
 * group-exec is set, as on a native filesystem (for writes and truncates
 * the kernel asks plyfs for the mode change, since plyfs leaves killpriv
 * to it; an O_TRUNC open, truncated inside the OPEN request by
 * atomic_o_trunc, plyfs clears itself); root's writes keep them
 * (CAP_FSETID), as natively. */
static void write_clears_setuid(void **state)
{
	static const struct {
		const char *name;
		gid_t gid;
		mode_t mode;
	} files[] = {
		{ "s6775", 2000, 06775 },
		{ "s2765", 2000, 02765 }, /* no group-exec: setgid stays */
		{ "s4777", 0, 04777 },
		{ "s2775", 2000, 02775 },
	};
	static const op_fn fns[] = { op_append, op_truncate, op_open_trunc };
	static const char *const fn_names[] = { "append", "truncate", "otrunc" };
	const struct who writer = { 3000, 3000, 1, { 2000 } };
	const struct who *whos[] = { &writer, NULL };
	struct h_mount *m;
	char mnt[PATH_MAX], msg[4096] = "";

	(void)state;
	h_need_root();
	for (size_t w = 0; w < 2; w++)
		for (size_t f = 0; f < sizeof(fns) / sizeof(*fns); f++)
			for (size_t i = 0; i < sizeof(files) / sizeof(*files);
			     i++) {
				const char *n = h_fmt("%s-%s-%s",
						      w ? "root" : "user",
						      fn_names[f],
						      files[i].name);

				file_as(h_fmt("l2/%s", n), "data", 0,
					files[i].gid, files[i].mode);
				file_as(h_fmt("n/%s", n), "data", 0,
					files[i].gid, files[i].mode);
			}
	h_assert_ok(chmod(h_path("n"), 0755));
	m = mount_root("");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	for (size_t w = 0; w < 2; w++)
		for (size_t f = 0; f < sizeof(fns) / sizeof(*fns); f++)
			for (size_t i = 0; i < sizeof(files) / sizeof(*files);
			     i++) {
				char n[128];
				const struct op opm = {
					.fn = fns[f],
					.path = h_fmt("%s/%s-%s-%s", mnt,
						      w ? "root" : "user",
						      fn_names[f],
						      files[i].name),
					.data = "x"
				};
				struct op opn = opm;
				struct stat sm, su, sn;
				size_t len = strlen(msg);
				int em, en;

				h_sfmt(n, sizeof(n), "%s-%s-%s",
				     w ? "root" : "user", fn_names[f],
				     files[i].name);
				opn.path = h_path("n/%s", n);
				if (whos[w]) {
					em = as_who(whos[w], &opm, NULL, 0);
					en = as_who(whos[w], &opn, NULL, 0);
				} else {
					char out[64];

					em = opm.fn(&opm, out, sizeof(out));
					en = opn.fn(&opn, out, sizeof(out));
				}
				if (em != en) {
					snprintf(msg + len, sizeof(msg) - len,
						 "\n  %s: %s, natively %s", n,
						 em ? strerrorname_np(em) : "ok",
						 en ? strerrorname_np(en) : "ok");
					continue;
				}
				sm = h_lstat(opm.path);
				sn = h_lstat(opn.path);
				su = h_lstat(h_path("u/%s", n));
				if (sm.st_mode != sn.st_mode ||
				    su.st_mode != sn.st_mode)
					snprintf(msg + len, sizeof(msg) - len,
						 "\n  %s: mode %06o (upper "
						 "%06o), natively %06o",
						 n, (unsigned)sm.st_mode,
						 (unsigned)su.st_mode,
						 (unsigned)sn.st_mode);
			}
	if (msg[0])
		fail_msg("setuid/setgid after writes differ from a native "
			 "filesystem:%s",
			 msg);
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* ---- 4. nothing in a layer leads the daemon out ------------------------- */

/* A lower directory that is a symlink out of the layer (relative, "..",
 * and absolute): the kernel resolves it, from the caller's view and with
 * the caller's rights; the daemon copies nothing from where it leads and
 * changes nothing there. A change of the link itself copies up the link. */
static void symlinked_lower_parent(void **state)
{
	struct h_mount *m;
	char mnt[PATH_MAX], outside[PATH_MAX];
	struct h_tree t;

	(void)state;
	h_need_root();
	file_as("outside/etc/f", "OUT", 0, 0, 0644);
	file_as("m/outside/etc/f", "DECOY", 0, 0, 0644);
	h_sfmt(outside, sizeof(outside), "%s", h_path("outside/etc"));
	h_mkdir("layers/l2");
	h_mkdir("layers/u");
	h_mkdir("layers/w");
	h_symlink("../../outside/etc", "layers/l1/etc");
	h_symlink(outside, "layers/l1/abs");
	h_file("layers/l1/keep", "k");
	h_assert_ok(chmod(h_path("."), 0755));
	h_mkdir("m/a/mnt");
	m = h_mount(h_fmt("lowerdir=%s:%s,upperdir=%s,workdir=%s",
			  h_path("layers/l1"), h_path("layers/l2"),
			  h_path("layers/u"), h_path("layers/w")),
		    "m/a/mnt");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);

	/* "../../outside/etc" from the mount is m/outside/etc: the decoy */
	h_append(h_fmt("%s/etc/f", mnt), "+");
	h_assert_ok(chmod(h_fmt("%s/etc/f", mnt), 0600));
	h_assert_content(h_path("m/outside/etc/f"), "DECOY+");
	/* the absolute link reaches the host path, with the caller's
	 * rights: another user may not write there */
	as_expect(&other, EACCES, .fn = op_append,
		  .path = h_fmt("%s/abs/f", mnt), .data = "x");
	h_assert_content(h_path("outside/etc/f"), "OUT");
	assert_int_equal(h_lstat(h_path("outside/etc/f")).st_mode & 07777, 0644);
	/* changing the links themselves copies up links */
	h_assert_ok(lchown(h_fmt("%s/etc", mnt), OWNER_UID, OWNER_GID));
	h_assert_ok(rename(h_fmt("%s/abs", mnt), h_fmt("%s/abs2", mnt)));
	assert_true(S_ISLNK(h_lstat(h_path("layers/u/etc")).st_mode));
	assert_int_equal(h_lstat(h_path("layers/u/etc")).st_uid, OWNER_UID);
	assert_true(S_ISLNK(h_lstat(h_path("layers/u/abs2")).st_mode));
	assert_int_equal(h_lstat(h_path("outside/etc")).st_uid, 0);
	assert_int_equal(h_lstat(h_path("outside")).st_uid, 0);
	/* the upper holds the two links and a whiteout, nothing else */
	h_tree_walk(h_path("layers/u"), &t);
	for (size_t i = 0; i < t.n; i++)
		if (S_ISREG(t.v[i].mode) && t.v[i].size > 0)
			fail_msg("layers/u/%s: a file with content", t.v[i].path);
	h_tree_free(&t);
	h_assert_content(h_path("outside/etc/f"), "OUT");
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* A crafted lower directory whose overlay.redirect points above its
 * layer's root ("/..", "//..", "/./..", under trusted. and user.): the
 * redirect is refused or ignored; the daemon never lists or opens what
 * lies beside the layers. */
static void redirect_out_of_layer(void **state)
{
	static const struct {
		const char *dir, *xattr, *value;
	} crafted[] = {
		{ "d1", "trusted.overlay.redirect", "/.." },
		{ "d2", "trusted.overlay.redirect", "//.." },
		{ "d3", "trusted.overlay.redirect", "/./.." },
		{ "d4", "user.overlay.redirect", "/.." },
		{ "d5", "trusted.overlay.redirect", "/../layers" },
		{ "d6", "trusted.overlay.redirect", ".." },
	};
	struct h_mount *m;
	char mnt[PATH_MAX], leaks[2048] = "";

	(void)state;
	h_need_root();
	h_file("layers/secret", "SECRET");
	h_mkdir("layers/l2");
	for (size_t i = 0; i < sizeof(crafted) / sizeof(*crafted); i++) {
		h_file(h_fmt("layers/l1/%s/own", crafted[i].dir), "own");
		h_xattr(h_fmt("layers/l1/%s", crafted[i].dir), crafted[i].xattr,
			crafted[i].value);
	}
	m = h_mount(h_fmt("lowerdir=%s:%s", h_path("layers/l1"),
			  h_path("layers/l2")),
		    "mnt");
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	for (size_t i = 0; i < sizeof(crafted) / sizeof(*crafted); i++) {
		const char *d = h_fmt("%s/%s", mnt, crafted[i].dir);
		char out[4096], buf[64];
		const struct op op = { .fn = op_list, .path = d };
		size_t len = strlen(leaks);
		int e = as_who(&(struct who){ 0, 0, 0, { 0 } }, &op, out,
			       sizeof(out));
		int fd;
		ssize_t n = 0;

		if (e)
			fail_msg("listing %s: %s", d, strerrorname_np(e));
		fd = open(h_fmt("%s/secret", d), O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
		}
		buf[n > 0 ? n : 0] = '\0';
		if (strstr(out, " secret ") || strstr(out, " l1 ") ||
		    strstr(out, " l2 ") || fd >= 0)
			snprintf(leaks + len, sizeof(leaks) - len,
				 "\n  %s (%s=%s) lists:%.300s; opening secret "
				 "there: %s",
				 crafted[i].dir, crafted[i].xattr,
				 crafted[i].value, out,
				 fd >= 0 ? buf : "fails");
		else if (!strstr(out, " own "))
			fail_msg("%s lost its own content: %s", d, out);
	}
	/* until 2b5c49e (marker.c refuses '.' and '..' components), each of
	 * d1..d4 listed and opened the layers' parent directory */
	if (leaks[0])
		fail_msg("a crafted redirect led the daemon out of its "
			 "layers:%s",
			 leaks);
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);
}

/* bind= with a source path that passes through a symlink: the user's
 * path, resolved once at mount time (to the directory then); the splice
 * stays on that directory when the link is changed afterwards, and links
 * inside it are returned as links. A DEST that crosses a symlink of the
 * layers, or holds "..", is refused. */
static void bind_source_symlink(void **state)
{
	struct h_mount *m;
	struct h_run r;
	char mnt[PATH_MAX], buf[64];
	ssize_t n;

	(void)state;
	h_need_root();
	h_file("host/data/f", "HOST");
	h_file("host/other/f", "OTHER");
	h_symlink("data", "host/link");
	h_symlink("../other", "host/data/esc");
	h_symlink(h_path("host/other"), "host/data/abs");
	h_mkdir("l1");
	h_symlink("/tmp", "l2/lnk");
	h_mkdir("l2/real");
	m = mount_root(h_fmt(",bind=%s:/vol", h_path("host/link")));
	h_sfmt(mnt, sizeof(mnt), "%s", m->path);
	h_assert_content(h_fmt("%s/vol/f", mnt), "HOST");
	/* the link moved to the other directory: the splice stays */
	h_assert_ok(unlink(h_path("host/link")));
	h_symlink("other", "host/link");
	h_assert_content(h_fmt("%s/vol/f", mnt), "HOST");
	h_file(h_fmt("%s/vol/new", mnt), "N");
	h_assert_content(h_path("host/data/new"), "N");
	h_assert_errno(access(h_path("host/other/new"), F_OK), ENOENT);
	/* links inside the source are links */
	assert_true(S_ISLNK(h_lstat(h_fmt("%s/vol/esc", mnt)).st_mode));
	n = readlink(h_fmt("%s/vol/esc", mnt), buf, sizeof(buf) - 1);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "../other", 8);
	assert_true(S_ISLNK(h_lstat(h_fmt("%s/vol/abs", mnt)).st_mode));
	h_assert_alive(m);
	assert_int_equal(h_umount(m), 0);

	/* refused destinations: through a layer's symlink, with ".." */
	static const char *const dests[] = { "/lnk/x", "/lnk/a/b",
					     "/real/../x", "/./real" };
	for (size_t i = 0; i < sizeof(dests) / sizeof(*dests); i++) {
		const char *opts = h_fmt("%s,upperdir=%s,workdir=%s,bind=%s:%s",
					 h_lowerdir("l1", "l2", NULL),
					 h_path("u"), h_path("w"),
					 h_path("host/data"), dests[i]);

		h_mkdir("mnt2");
		h_run(H_NAMES(h_plyfs(), "-o", opts, h_path("mnt2")), NULL,
		      NULL, &r);
		if (h_is_mountpoint(h_path("mnt2"))) {
			h_umount(h_adopt(h_path("mnt2")));
			fail_msg("bind to %s was mounted", dests[i]);
		}
		if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) == 0)
			fail_msg("bind to %s: status 0x%x", dests[i],
				 r.status);
		print_message("bind to %s refused: %s", dests[i], r.err);
		h_run_free(&r);
	}
	h_assert_content(h_path("host/data/f"), "HOST");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(other_user_merged_attrs),
		H_TEST(refused_changes_copy_nothing),
		H_TEST(other_user_cannot_forge),
		H_TEST(idmap_presented_owner),
		H_TEST(lower_override_kept),
		H_TEST(unpriv_setuid_devices_inert),
		H_TEST(unpriv_unreadable_lower),
		H_TEST(unpriv_no_devices_no_setuid),
		H_TEST(copyup_keeps_attrs),
		H_TEST(copyup_temp_never_wider),
		H_TEST(write_clears_setuid),
		H_TEST(symlinked_lower_parent),
		H_TEST(redirect_out_of_layer),
		H_TEST(bind_source_symlink),
	};

	h_init();
	if (getenv("PLY_TEST"))
		cmocka_set_test_filter(getenv("PLY_TEST"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
