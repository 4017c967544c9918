/* Splices (volumes and bind mounts) as a user of the mount sees them:
 * bind=SRC:DEST[:ro] and volume=NAME:DEST[:ro][:nocopy] grafted into the
 * merged tree, changed in place, hiding what the layers hold at DEST (which
 * comes back unchanged without the splice); nested splices and file binds;
 * ro (EROFS), EXDEV across a boundary, EBUSY on DEST; st_ino and statfs;
 * '..' and symlinks at and inside a splice; DESTs refused at mount; the
 * volume store: populate on first use, nocopy, persistence across mounts,
 * anonymous volumes, a store on tmpfs, a bind of a directory of another
 * FUSE mount, and `plyctl volume rm` of a volume in use. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

/* A path inside the mount at ROOT/mnt. */
#define MP(rel) h_path("mnt/%s", rel)

/* ---- helpers ----------------------------------------------------------- */

/* Lower layers l1 (top) and l2, upper u, work w. */
static void stack(void)
{
	h_mkdir("l1");
	h_mkdir("l2");
	h_mkdir("u");
	h_mkdir("w");
}

/* The options of the l1:l2 + u stack with the store ROOT/vs, then extra
 * (",bind=..." etc., printf-style). */
static const char *opts_v(const char *fmt, va_list ap)
{
	char extra[4096];

	vsnprintf(extra, sizeof(extra), fmt, ap);
	return h_fmt("%s,upperdir=%s,workdir=%s,volstore=%s%s",
		     h_lowerdir("l1", "l2", NULL), h_path("u"), h_path("w"),
		     h_path("vs"), extra);
}

static const char *opts(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static const char *opts(const char *fmt, ...)
{
	va_list ap;
	const char *r;

	va_start(ap, fmt);
	r = opts_v(fmt, ap);
	va_end(ap);
	return r;
}

/* Mounts the stack at ROOT/mnt with the extra options. */
static struct h_mount *mnt(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static struct h_mount *mnt(const char *fmt, ...)
{
	char o[8192];
	va_list ap;

	va_start(ap, fmt);
	snprintf(o, sizeof(o), "%s", opts_v(fmt, ap));
	va_end(ap);
	return h_mount(o, "mnt");
}

static void umnt(struct h_mount *m)
{
	int st = h_umount(m);

	if (st != 0)
		fail_msg("plyfs exited with status 0x%x", st);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void write_file(const char *path, const char *content, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0644);
	size_t len = strlen(content);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	if (write(fd, content, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	h_assert_ok(close(fd));
}

static void assert_link(const char *path, const char *target)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);

	if (n < 0)
		fail_msg("readlink %s: %s", path, strerror(errno));
	buf[n] = '\0';
	if (strcmp(buf, target))
		fail_msg("%s -> '%s', expected '%s'", path, buf, target);
}

static void assert_gone(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		fail_msg("%s exists (mode %o)", path, (unsigned)st.st_mode);
	if (errno != ENOENT)
		fail_msg("lstat %s: %s, expected ENOENT", path,
			 strerror(errno));
}

static void walk(const char *path, struct h_tree *t)
{
	h_tree_walk(path, t);
}

/* Fails unless the trees at a and b hold the same things now as before
 * (snapshot taken with walk). */
static void assert_unchanged(const struct h_tree *before, const char *path,
			     const char *what)
{
	struct h_tree now;

	walk(path, &now);
	h_tree_assert_equal(before, &now, H_CMP_ALL | H_CMP_MTIME, what);
	h_tree_free(&now);
}

static const char *plyctl(void)
{
	const char *p = getenv("PLYCTL");

	if (!p || access(p, X_OK) < 0)
		fail_msg("$PLYCTL must name the plyctl binary");
	return p;
}

/* Runs plyfs -f with the options: it must refuse the mount, exiting with
 * status 2 and one line on stderr, leaving nothing mounted. */
static void assert_refused(const char *o, const char *what)
{
	char mp[PATH_MAX], errp[PATH_MAX];
	int status;
	pid_t pid;
	char *err;
	size_t len;

	h_mkdir("mnt");
	snprintf(mp, sizeof(mp), "%s", h_path("mnt"));
	snprintf(errp, sizeof(errp), "%s", h_path("refused.err"));
	pid = h_spawn(H_NAMES(h_plyfs(), "-f", "-o", o, mp), NULL, NULL, NULL,
		      errp);
	if (h_wait(pid, H_MOUNT_WAIT_MS, &status) < 0) {
		h_adopt(mp); /* teardown unmounts and reaps it */
		fail_msg("%s: plyfs still running after %d ms (mounted: %d)",
			 what, H_MOUNT_WAIT_MS, h_is_mountpoint(mp));
	}
	err = h_read(errp, &len);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
		fail_msg("%s: plyfs exit status 0x%x, expected exit 2; stderr:"
			 "\n%s", what, status, err);
	if (len == 0 || err[len - 1] != '\n' || memchr(err, '\n', len - 1))
		fail_msg("%s: expected one line on stderr, got:\n%s", what,
			 err);
	if (strlen(err) < 10)
		fail_msg("%s: message too short to be clear: %s", what, err);
	free(err);
	if (h_is_mountpoint(mp))
		fail_msg("%s: %s is mounted", what, mp);
}

/* An xattr's value, or NULL with errno. Owned. */
static char *lgetx(const char *path, const char *name)
{
	char buf[256];
	ssize_t n = lgetxattr(path, name, buf, sizeof(buf) - 1);

	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

/* ---- bind: a directory ------------------------------------------------- */

/* Reads and changes go straight to the source: no copy-up, nothing in the
 * upper; what is made in the source shows in the mount. A "\:" in the
 * option escapes a colon of SRC. */
static void bind_dir(void **state)
{
	struct h_tree upper;

	stack();
	h_file("l1/keep", "k");
	h_file("src/a", "alpha");
	h_file("src/sub/b", "beta");
	h_file("co:lon/f", "colon");
	walk(h_path("u"), &upper);
	struct h_mount *m = mnt(",bind=%s:/srv/app,bind=%s:/c",
				h_path("src"), h_path("co\\:lon"));

	h_assert_listing(MP(""), H_NAMES("keep", "srv", "c"));
	h_assert_listing(MP("srv"), H_NAMES("app"));
	h_assert_listing(MP("srv/app"), H_NAMES("a", "sub"));
	h_assert_content(MP("srv/app/a"), "alpha");
	h_assert_content(MP("srv/app/sub/b"), "beta");
	h_assert_content(MP("c/f"), "colon");
	assert_true(S_ISDIR(h_lstat(MP("srv/app")).st_mode));

	write_file(MP("srv/app/new"), "n", O_CREAT | O_EXCL);
	h_assert_content(h_path("src/new"), "n");
	write_file(MP("srv/app/a"), "+more", O_APPEND);
	h_assert_content(h_path("src/a"), "alpha+more");
	h_assert_content(MP("srv/app/a"), "alpha+more");
	h_assert_ok(chmod(MP("srv/app/a"), 0600));
	assert_int_equal(h_lstat(h_path("src/a")).st_mode & 07777, 0600);
	h_assert_ok(mkdir(MP("srv/app/d"), 0750));
	assert_true(S_ISDIR(h_lstat(h_path("src/d")).st_mode));
	h_assert_ok(symlink("a", MP("srv/app/sl")));
	assert_link(h_path("src/sl"), "a");
	h_assert_ok(rename(MP("srv/app/new"), MP("srv/app/new2")));
	h_assert_content(h_path("src/new2"), "n");
	assert_gone(h_path("src/new"));
	/* deleting deletes in the source: no whiteout anywhere */
	h_assert_ok(unlink(MP("srv/app/sub/b")));
	assert_gone(h_path("src/sub/b"));
	h_assert_listing(h_path("src/sub"), H_NONE);
	h_assert_ok(rmdir(MP("srv/app/sub")));
	assert_gone(h_path("src/sub"));
	h_assert_listing(h_path("src"), H_NAMES("a", "d", "sl", "new2"));
	h_assert_listing(MP("srv/app"), H_NAMES("a", "d", "sl", "new2"));

	/* made in the source behind the daemon's back */
	h_file("src/late", "L");
	h_assert_content(MP("srv/app/late"), "L");

	/* the upper layer was not touched */
	assert_unchanged(&upper, h_path("u"), "upper after changes in a bind");
	h_tree_free(&upper);
	umnt(m);
}

/* What the layers hold at DEST is hidden while the splice is there and
 * comes back unchanged without it. */
static void bind_hides_layers(void **state)
{
	struct h_tree l1, l2;

	stack();
	h_file("l1/data/x", "layer x");
	h_file("l1/data/sub/y", "layer y");
	h_file("l2/data/z", "layer z");
	h_file("src/only", "src");
	walk(h_path("l1"), &l1);
	walk(h_path("l2"), &l2);

	struct h_mount *m = mnt(",bind=%s:/data", h_path("src"));

	h_assert_listing(MP("data"), H_NAMES("only"));
	assert_gone(MP("data/x"));
	assert_gone(MP("data/z"));
	h_assert_errno(open(MP("data/sub/y"), O_RDONLY), ENOENT);
	/* a name the layers hold is made in the source, not the upper */
	write_file(MP("data/x"), "src x", O_CREAT | O_EXCL);
	h_assert_content(h_path("src/x"), "src x");
	umnt(m);

	assert_unchanged(&l1, h_path("l1"), "l1");
	assert_unchanged(&l2, h_path("l2"), "l2");
	if (exists(h_path("u/data")))
		fail_msg("the upper holds data/ after changes in a splice");

	m = mnt("%s", "");
	h_assert_listing(MP("data"), H_NAMES("x", "sub", "z"));
	h_assert_content(MP("data/x"), "layer x");
	h_assert_content(MP("data/sub/y"), "layer y");
	h_assert_content(MP("data/z"), "layer z");
	umnt(m);
	h_tree_free(&l1);
	h_tree_free(&l2);
}

/* DEST need not exist in the layers: the directories on the way appear,
 * beside what the layers hold; what is made in them goes to the upper. */
static void dest_missing(void **state)
{
	stack();
	h_file("l1/var/log", "log");
	h_file("src/f", "in src");
	struct h_mount *m = mnt(",bind=%s:/opt/a/b,bind=%s:/var/lib/db",
				h_path("src"), h_path("src"));

	h_assert_listing(MP(""), H_NAMES("opt", "var"));
	assert_true(S_ISDIR(h_lstat(MP("opt")).st_mode));
	assert_true(S_ISDIR(h_lstat(MP("opt/a")).st_mode));
	/* they belong to whoever owns the merged root (the mounting user in a
	 * rootless mount), so that user can make things in them */
	{
		struct stat r = h_lstat(MP("")), o = h_lstat(MP("opt/a"));

		if (o.st_uid != r.st_uid || o.st_gid != r.st_gid)
			fail_msg("a directory on the way to a splice is owned "
				 "by %u:%u, the merged root by %u:%u",
				 o.st_uid, o.st_gid, r.st_uid, r.st_gid);
	}
	h_assert_listing(MP("opt"), H_NAMES("a"));
	h_assert_listing(MP("opt/a"), H_NAMES("b"));
	h_assert_content(MP("opt/a/b/f"), "in src");
	h_assert_listing(MP("var"), H_NAMES("log", "lib"));
	h_assert_listing(MP("var/lib"), H_NAMES("db"));
	h_assert_content(MP("var/lib/db/f"), "in src");
	h_assert_content(MP("var/log"), "log");

	/* made in a directory on the way: in the upper */
	write_file(MP("opt/a/new"), "upper", O_CREAT | O_EXCL);
	h_assert_content(h_path("u/opt/a/new"), "upper");
	h_assert_ok(mkdir(MP("opt/dir"), 0755));
	assert_true(S_ISDIR(h_lstat(h_path("u/opt/dir")).st_mode));
	write_file(MP("var/lib/n"), "n", O_CREAT | O_EXCL);
	h_assert_content(h_path("u/var/lib/n"), "n");
	h_assert_listing(MP("opt/a"), H_NAMES("b", "new"));
	h_assert_listing(MP("opt"), H_NAMES("a", "dir"));
	assert_gone(h_path("src/new"));
	umnt(m);

	/* without the splice: what went to the upper stays, b is gone */
	m = mnt("%s", "");
	h_assert_listing(MP("opt/a"), H_NAMES("new"));
	h_assert_content(MP("opt/a/new"), "upper");
	h_assert_listing(MP("var/lib"), H_NAMES("n"));
	umnt(m);
}

/* A splice is a plain tree: whiteout and opaque markers in it are
 * ordinary objects, listed and read as they are, and made as they are. */
static void bind_plain_tree(void **state)
{
	stack();
	h_file("src/.wh.foo", "not a whiteout");
	h_file("src/.wh..wh..opq", "not opaque");
	h_file("src/opq/inner", "i");
	h_xattr("src/opq", "user.overlay.opaque", "y");
	h_file("src/wf", "");
	h_xattr("src/wf", "user.overlay.whiteout", "");
	h_file("l1/s/foo", "hidden anyway");
	if (h_is_root()) {
		h_mknod("src/cdev", S_IFCHR | 0600, makedev(0, 0));
		h_file("src/topq/t", "t");
		h_xattr("src/topq", "trusted.overlay.opaque", "y");
	}
	struct h_mount *m = mnt(",bind=%s:/s", h_path("src"));

	if (h_is_root())
		h_assert_listing(MP("s"), H_NAMES(".wh.foo", ".wh..wh..opq",
						    "opq", "wf", "cdev",
						    "topq"));
	else
		h_assert_listing(MP("s"), H_NAMES(".wh.foo", ".wh..wh..opq",
						    "opq", "wf"));
	h_assert_content(MP("s/.wh.foo"), "not a whiteout");
	h_assert_content(MP("s/.wh..wh..opq"), "not opaque");
	h_assert_listing(MP("s/opq"), H_NAMES("inner"));
	assert_true(S_ISREG(h_lstat(MP("s/wf")).st_mode));
	if (h_is_root()) {
		struct stat st = h_lstat(MP("s/cdev"));

		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(0, 0));
		h_assert_listing(MP("s/topq"), H_NAMES("t"));
	}

	/* made through the mount: ordinary objects in the source */
	if (h_is_root()) {
		h_assert_ok(mknod(MP("s/c2"), S_IFCHR | 0600, makedev(0, 0)));
		struct stat st = h_lstat(h_path("src/c2"));

		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(0, 0));
		assert_true(S_ISCHR(h_lstat(MP("s/c2")).st_mode));
	}
	/* deleting leaves no marker in the source */
	h_assert_ok(unlink(MP("s/.wh.foo")));
	assert_gone(h_path("src/.wh.foo"));
	h_assert_ok(unlink(MP("s/opq/inner")));
	h_assert_listing(h_path("src/opq"), H_NONE);
	umnt(m);
}

/* Splices inside splices: the longest DEST wins, whatever the order of the
 * options; rename across the inner boundary is EXDEV. */
static void nested(void **state)
{
	stack();
	h_file("outer/a", "A");
	h_file("outer/inner/hidden", "H");
	h_file("innersrc/b", "B");
	for (int order = 0; order < 2; order++) {
		struct h_mount *m =
			order ? mnt(",bind=%s:/o/inner,bind=%s:/o",
				    h_path("innersrc"), h_path("outer")) :
				mnt(",bind=%s:/o,bind=%s:/o/inner",
				    h_path("outer"), h_path("innersrc"));

		h_assert_listing(MP("o"), H_NAMES("a", "inner"));
		h_assert_listing(MP("o/inner"), H_NAMES("b"));
		h_assert_content(MP("o/inner/b"), "B");
		assert_gone(MP("o/inner/hidden"));
		write_file(MP("o/inner/n"), "n", O_CREAT | O_TRUNC);
		h_assert_content(h_path("innersrc/n"), "n");
		assert_gone(h_path("outer/inner/n"));
		h_assert_errno(rename(MP("o/a"), MP("o/inner/a")), EXDEV);
		h_assert_errno(rename(MP("o/inner/b"), MP("o/b")), EXDEV);
		h_assert_errno(link(MP("o/a"), MP("o/inner/a")), EXDEV);
		h_assert_errno(rmdir(MP("o/inner")), EBUSY);
		h_assert_ok(unlink(MP("o/inner/n")));
		umnt(m);
		h_assert_content(h_path("outer/inner/hidden"), "H");
	}
}

/* A single file bound at DEST: read and written in place; hides the
 * layers' file; DEST may be missing (made with its parents). */
static void file_bind(void **state)
{
	stack();
	h_file("l1/etc/conf", "layer conf");
	h_file("l1/etc/other", "other");
	h_file("host/conf", "host conf");
	h_file("host/file2", "f2");
	struct h_mount *m = mnt(",bind=%s:/etc/conf,bind=%s:/new/dir/file,"
				"bind=%s:/etc/added",
				h_path("host/conf"), h_path("host/file2"),
				h_path("host/file2"));

	h_assert_listing(MP("etc"), H_NAMES("conf", "other", "added"));
	h_assert_content(MP("etc/added"), "f2");
	assert_true(S_ISREG(h_lstat(MP("etc/conf")).st_mode));
	h_assert_content(MP("etc/conf"), "host conf");
	write_file(MP("etc/conf"), "rewritten", O_TRUNC);
	h_assert_content(h_path("host/conf"), "rewritten");
	h_assert_content(MP("etc/conf"), "rewritten");
	h_assert_ok(chmod(MP("etc/conf"), 0640));
	assert_int_equal(h_lstat(h_path("host/conf")).st_mode & 07777, 0640);
	assert_int_equal(h_lstat(MP("etc/conf")).st_size, strlen("rewritten"));

	assert_true(S_ISDIR(h_lstat(MP("new")).st_mode));
	h_assert_listing(MP("new/dir"), H_NAMES("file"));
	assert_true(S_ISREG(h_lstat(MP("new/dir/file")).st_mode));
	h_assert_content(MP("new/dir/file"), "f2");

	h_assert_errno(unlink(MP("etc/conf")), EBUSY);
	h_assert_errno(rename(MP("etc/conf"), MP("etc/conf2")), EBUSY);
	h_assert_errno(unlink(MP("new/dir/file")), EBUSY);
	h_assert_errno(rename(MP("new/dir/file"), MP("new/dir/g")), EBUSY);
	h_assert_content(h_path("host/conf"), "rewritten");
	h_assert_listing(MP("new/dir"), H_NAMES("file"));
	/* a refused change leaves nothing behind */
	if (exists(h_path("u/new")))
		fail_msg("a refused unlink/rename of a file bind's DEST made "
			 "the directories on the way in the upper (u/new)");
	if (exists(h_path("u/etc/conf")))
		fail_msg("the upper holds etc/conf after writes to a file bind");
	umnt(m);

	m = mnt("%s", "");
	h_assert_content(MP("etc/conf"), "layer conf");
	assert_gone(MP("new"));
	umnt(m);
}

/* ro: every change answers EROFS, for a directory and a file bind; the
 * source stays as it was. */
static void ro_splices(void **state)
{
	struct h_tree before;
	struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };

	stack();
	h_file("src/f", "f");
	h_file("src/d/g", "g");
	h_symlink("f", "src/l");
	h_xattr("src/f", "user.k", "v");
	h_file("host/file", "file");
	walk(h_path("src"), &before);
	struct h_mount *m = mnt(",bind=%s:/r:ro,bind=%s:/etc/file:ro",
				h_path("src"), h_path("host/file"));

	h_assert_content(MP("r/f"), "f");
	h_assert_listing(MP("r"), H_NAMES("f", "d", "l"));
	assert_link(MP("r/l"), "f");
	char *v = lgetx(MP("r/f"), "user.k");

	assert_non_null(v);
	assert_string_equal(v, "v");
	free(v);
	h_assert_content(MP("etc/file"), "file");

	h_assert_errno(open(MP("r/f"), O_WRONLY), EROFS);
	h_assert_errno(open(MP("r/f"), O_RDWR), EROFS);
	h_assert_errno(open(MP("r/f"), O_RDONLY | O_TRUNC), EROFS);
	h_assert_errno(open(MP("r/new"), O_WRONLY | O_CREAT, 0644), EROFS);
	h_assert_errno(truncate(MP("r/f"), 0), EROFS);
	h_assert_errno(unlink(MP("r/f")), EROFS);
	h_assert_errno(rmdir(MP("r/d")), EROFS);
	h_assert_errno(unlink(MP("r/d/g")), EROFS);
	h_assert_errno(mkdir(MP("r/n"), 0755), EROFS);
	h_assert_errno(symlink("x", MP("r/s")), EROFS);
	h_assert_errno(link(MP("r/f"), MP("r/f2")), EROFS);
	h_assert_errno(mknod(MP("r/fifo"), S_IFIFO | 0644, 0), EROFS);
	h_assert_errno(rename(MP("r/f"), MP("r/g")), EROFS);
	h_assert_errno(rename(MP("r/d/g"), MP("r/g")), EROFS);
	h_assert_errno(chmod(MP("r/f"), 0600), EROFS);
	h_assert_errno(chmod(MP("r/d"), 0700), EROFS);
	h_assert_errno(lchown(MP("r/f"), getuid(), getgid()), EROFS);
	h_assert_errno(utimensat(AT_FDCWD, MP("r/f"), ts, 0), EROFS);
	h_assert_errno(utimensat(AT_FDCWD, MP("r/l"), ts,
				 AT_SYMLINK_NOFOLLOW),
		       EROFS);
	h_assert_errno(setxattr(MP("r/f"), "user.k", "w", 1, 0), EROFS);
	h_assert_errno(setxattr(MP("r/f"), "user.new", "w", 1, 0), EROFS);
	h_assert_errno(removexattr(MP("r/f"), "user.k"), EROFS);

	h_assert_errno(open(MP("etc/file"), O_WRONLY), EROFS);
	h_assert_errno(truncate(MP("etc/file"), 0), EROFS);
	h_assert_errno(chmod(MP("etc/file"), 0600), EROFS);

	assert_unchanged(&before, h_path("src"), "ro bind source");
	h_assert_content(h_path("host/file"), "file");
	h_tree_free(&before);
	umnt(m);
}

/* Rename and link across a splice boundary (in, out, between two
 * splices, with RENAME_EXCHANGE too) answer EXDEV; inside one they work. */
static void exdev(void **state)
{
	stack();
	h_file("l1/out", "out");
	h_mkdir("l1/outdir");
	h_file("s1/a", "a");
	h_file("s1/d/x", "x");
	h_file("s2/b", "b");
	struct h_mount *m = mnt(",bind=%s:/s,bind=%s:/t", h_path("s1"),
				h_path("s2"));

	h_assert_errno(rename(MP("out"), MP("s/out")), EXDEV);
	h_assert_errno(rename(MP("s/a"), MP("a")), EXDEV);
	h_assert_errno(rename(MP("s/a"), MP("t/a")), EXDEV);
	h_assert_errno(rename(MP("s/d"), MP("d")), EXDEV);
	h_assert_errno(rename(MP("outdir"), MP("s/outdir")), EXDEV);
	h_assert_errno(rename(MP("s/a"), MP("out")), EXDEV);
	h_assert_errno(renameat2(AT_FDCWD, MP("s/a"), AT_FDCWD, MP("t/b"),
				 RENAME_EXCHANGE),
		       EXDEV);
	h_assert_errno(renameat2(AT_FDCWD, MP("out"), AT_FDCWD, MP("s/a"),
				 RENAME_EXCHANGE),
		       EXDEV);
	h_assert_errno(link(MP("s/a"), MP("a2")), EXDEV);
	h_assert_errno(link(MP("out"), MP("s/out")), EXDEV);
	h_assert_errno(link(MP("s/a"), MP("t/a")), EXDEV);

	/* nothing moved */
	h_assert_listing(MP("s"), H_NAMES("a", "d"));
	h_assert_listing(MP("t"), H_NAMES("b"));
	h_assert_content(MP("out"), "out");
	h_assert_listing(h_path("s1"), H_NAMES("a", "d"));
	if (exists(h_path("u/a")) || exists(h_path("u/a2")))
		fail_msg("a cross-splice rename or link left a file in the "
			 "upper");

	/* inside a splice they work */
	h_assert_ok(rename(MP("s/a"), MP("s/d/a")));
	h_assert_content(h_path("s1/d/a"), "a");
	h_assert_ok(link(MP("s/d/x"), MP("s/x2")));
	h_assert_content(h_path("s1/x2"), "x");
	h_assert_ok(renameat2(AT_FDCWD, MP("s/d/a"), AT_FDCWD, MP("s/x2"),
			      RENAME_EXCHANGE));
	h_assert_content(h_path("s1/x2"), "a");
	h_assert_content(h_path("s1/d/a"), "x");
	umnt(m);
}

/* DEST itself, and every directory on the way to a splice, cannot be
 * removed or renamed (nor renamed over): EBUSY, as for a mount point. */
static void ebusy(void **state)
{
	stack();
	h_mkdir("l1/x");
	h_mkdir("l1/p");
	h_mkdir("l1/empty");
	h_file("l1/etc/keep", "k");
	h_mkdir("e1");
	h_mkdir("e2");
	h_mkdir("e3");
	h_file("host/f", "f");
	struct h_mount *m =
		mnt(",bind=%s:/x,bind=%s:/a/b,bind=%s:/p/q,bind=%s:/etc/f",
		    h_path("e1"), h_path("e2"), h_path("e3"),
		    h_path("host/f"));

	h_assert_errno(rmdir(MP("x")), EBUSY);
	h_assert_errno(rename(MP("x"), MP("y")), EBUSY);
	h_assert_errno(rmdir(MP("a/b")), EBUSY);
	h_assert_errno(rename(MP("a/b"), MP("a/c")), EBUSY);
	h_assert_errno(rmdir(MP("a")), EBUSY);
	h_assert_errno(rename(MP("a"), MP("z")), EBUSY);
	h_assert_errno(rmdir(MP("p")), EBUSY);
	h_assert_errno(rename(MP("p"), MP("z")), EBUSY);
	h_assert_errno(rmdir(MP("p/q")), EBUSY);
	h_assert_errno(unlink(MP("etc/f")), EBUSY);
	h_assert_errno(rename(MP("etc/f"), MP("etc/g")), EBUSY);
	/* renamed over, as over a mount point */
	h_assert_errno(rename(MP("empty"), MP("x")), EBUSY);

	/* all still there */
	h_assert_listing(MP(""), H_NAMES("x", "a", "p", "empty", "etc"));
	h_assert_listing(MP("a"), H_NAMES("b"));
	h_assert_listing(MP("p"), H_NAMES("q"));
	h_assert_content(MP("etc/f"), "f");
	assert_true(exists(h_path("e1")) && exists(h_path("e2")));
	/* a refused change leaves nothing behind */
	if (exists(h_path("u/a")))
		fail_msg("a refused rmdir/rename of a DEST made the directory "
			 "on the way (a) in the upper");
	umnt(m);
	m = mnt("%s", "");
	h_assert_listing(MP(""), H_NAMES("x", "p", "empty", "etc"));
	umnt(m);
}

/* st_ino is unique across the layers and every splice, although all of
 * them sit on one filesystem. */
static void ino_unique(void **state)
{
	struct h_tree t;

	stack();
	h_file("l1/f", "1");
	h_file("l1/d/g", "2");
	h_file("l2/h", "3");
	h_file("s1/f", "4");
	h_file("s1/d/g", "5");
	h_file("s2/f", "6");
	h_file("host/file", "7");
	h_file("l2/vol/v", "8");
	struct h_mount *m = mnt(",bind=%s:/s1,bind=%s:/s2,bind=%s:/s1/s3,"
				"bind=%s:/file,volume=iv:/vol",
				h_path("s1"), h_path("s2"), h_path("s2"),
				h_path("host/file"));

	write_file(MP("upperfile"), "u", O_CREAT | O_EXCL);
	walk(MP(""), &t);
	if (t.n < 15) {
		h_tree_print(&t, "mount");
		fail_msg("only %zu objects seen", t.n);
	}
	for (size_t i = 0; i < t.n; i++)
		for (size_t j = i + 1; j < t.n; j++)
			if (t.v[i].ino == t.v[j].ino)
				fail_msg("%s and %s share st_ino %llu",
					 t.v[i].path, t.v[j].path,
					 (unsigned long long)t.v[i].ino);
	/* and stay the same while mounted */
	for (size_t i = 0; i < t.n; i++)
		assert_int_equal(h_lstat(MP(t.v[i].path)).st_ino, t.v[i].ino);
	h_tree_free(&t);
	umnt(m);
}

/* statfs inside a splice reports the source's filesystem (f_type is
 * always FUSE's, the kernel sets it: blocks, sizes and files tell). */
static void statfs_source(void **state)
{
	struct statfs tm, in, out, root;

	h_need_root();
	stack();
	h_tmpfs_opts("tm", "size=8m,nr_inodes=1000");
	h_file("tm/f", "on tmpfs");
	struct h_mount *m = mnt(",bind=%s:/s", h_path("tm"));

	h_assert_content(MP("s/f"), "on tmpfs");
	h_assert_ok(statfs(h_path("tm"), &tm));
	h_assert_ok(statfs(MP("s"), &in));
	h_assert_ok(statfs(MP("s/f"), &out));
	h_assert_ok(statfs(MP(""), &root));
	assert_int_equal((uint64_t)in.f_blocks * in.f_bsize, 8 << 20);
	assert_int_equal(in.f_blocks, tm.f_blocks);
	assert_int_equal(in.f_bsize, tm.f_bsize);
	assert_int_equal(in.f_files, tm.f_files);
	assert_int_equal(out.f_blocks, tm.f_blocks);
	assert_int_equal(out.f_files, tm.f_files);
	if (root.f_blocks == tm.f_blocks && root.f_files == tm.f_files)
		fail_msg("statfs of the mount's root reports the tmpfs too");
	umnt(m);
}

/* '..' at the top of a splice is the merged parent, not the source's; a
 * relative symlink climbing out of the splice resolves in the merged tree. */
static void dotdot(void **state)
{
	struct stat st;
	int fd;

	stack();
	h_file("l1/s/sib", "sibling");
	h_file("src/in", "in");
	h_symlink("..", "src/up");
	h_symlink("../sib", "src/upsib");
	h_file("src2/n", "n");
	struct h_mount *m = mnt(",bind=%s:/s/t,bind=%s:/s/t/n2",
				h_path("src"), h_path("src2"));

	assert_int_equal(h_lstat(MP("s/t/..")).st_ino, h_lstat(MP("s")).st_ino);
	h_assert_listing(MP("s/t/.."), H_NAMES("sib", "t"));
	h_assert_listing(MP("s/t/n2/.."), H_NAMES("in", "up", "upsib", "n2"));
	assert_int_equal(h_lstat(MP("s/t/n2/..")).st_ino, h_lstat(MP("s/t")).st_ino);

	fd = open(MP("s/t"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	h_assert_ok(fd);
	int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	h_assert_ok(up);
	h_assert_ok(fstat(up, &st));
	assert_int_equal(st.st_ino, h_lstat(MP("s")).st_ino);
	h_assert_ok(fstatat(up, "sib", &st, AT_SYMLINK_NOFOLLOW));
	close(up);
	close(fd);

	assert_link(MP("s/t/up"), "..");
	assert_int_equal(h_lstat(MP("s/t/up/")).st_ino, h_lstat(MP("s")).st_ino);
	h_assert_content(MP("s/t/upsib"), "sibling");
	umnt(m);
}

/* DESTs that are not plain paths are refused at mount with one line and
 * exit 2: '..' components, a DEST crossing a symlink or a non-directory in
 * the layers (volumes too). */
static void dest_refused(void **state)
{
	stack();
	h_mkdir("src");
	h_mkdir("l1/real");
	h_symlink("real", "l1/lnk");
	h_file("l1/file", "f");
	h_symlink("/tmp", "l2/abs");

	assert_refused(opts(",bind=%s:/a/../b", h_path("src")), "'..'");
	assert_refused(opts(",bind=%s:/a/..", h_path("src")), "trailing '..'");
	assert_refused(opts(",bind=%s:/lnk/x", h_path("src")),
		       "crossing a symlink");
	assert_refused(opts(",bind=%s:/abs/x", h_path("src")),
		       "crossing an absolute symlink of a lower layer");
	assert_refused(opts(",bind=%s:/file/x", h_path("src")),
		       "crossing a file");
	assert_refused(opts(",volume=v:/lnk/y"), "volume crossing a symlink");
	assert_refused(opts(",volume=v:/x/../y"), "volume with '..'");
	if (exists(h_path("l1/real/x")) || exists(h_path("real")) ||
	    exists(h_path("u/real")) || exists(h_path("u/lnk")))
		fail_msg("a refused DEST was made");
	h_assert_content(h_path("l1/file"), "f");
	pid_t pids[4];

	assert_int_equal(h_children(pids, 4), 0);
}

/* Symlinks inside a splice that point out of it are returned as links,
 * changed as links, and never resolved by the daemon. */
static void symlinks_out(void **state)
{
	struct stat out_before;
	struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };

	stack();
	h_file("outside/secret", "secret");
	h_symlink(h_path("outside"), "src/abs");
	h_symlink("../outside", "src/rel");
	h_symlink("../outside/secret", "src/relfile");
	h_file("src/x", "x");
	out_before = h_lstat(h_path("outside/secret"));
	struct h_mount *m = mnt(",bind=%s:/s", h_path("src"));

	assert_true(S_ISLNK(h_lstat(MP("s/abs")).st_mode));
	assert_true(S_ISLNK(h_lstat(MP("s/rel")).st_mode));
	assert_link(MP("s/abs"), h_path("outside"));
	assert_link(MP("s/rel"), "../outside");
	h_assert_listing(MP("s"), H_NAMES("abs", "rel", "relfile", "x"));
	/* a relative link resolves in the merged tree (the kernel does it):
	 * ROOT/outside is not there */
	h_assert_errno(stat(MP("s/rel"), &(struct stat){ 0 }), ENOENT);
	h_assert_errno(open(MP("s/relfile"), O_RDONLY), ENOENT);
	h_assert_errno(open(MP("s/abs"), O_RDONLY | O_NOFOLLOW), ELOOP);
	h_assert_errno(open(MP("s/relfile"), O_RDONLY | O_NOFOLLOW), ELOOP);

	/* changed as links: the target stays as it was */
	h_assert_ok(utimensat(AT_FDCWD, MP("s/relfile"), ts,
			      AT_SYMLINK_NOFOLLOW));
	assert_int_equal(h_lstat(h_path("src/relfile")).st_mtime, 1000);
	if (h_is_root()) {
		h_assert_ok(lchown(MP("s/relfile"), 1234, 1234));
		assert_int_equal(h_lstat(h_path("src/relfile")).st_uid, 1234);
	}
	struct stat now = h_lstat(h_path("outside/secret"));

	assert_int_equal(now.st_uid, out_before.st_uid);
	assert_int_equal(now.st_mtime, out_before.st_mtime);
	/* renamed over and removed as links */
	h_assert_ok(rename(MP("s/x"), MP("s/abs")));
	assert_true(S_ISREG(h_lstat(h_path("src/abs")).st_mode));
	h_assert_ok(unlink(MP("s/rel")));
	assert_gone(h_path("src/rel"));
	h_assert_listing(h_path("outside"), H_NAMES("secret"));
	h_assert_content(h_path("outside/secret"), "secret");
	umnt(m);
}

/* Hard links inside a splice: one inode, its link count, links made
 * through the mount are links in the source. */
static void hardlinks(void **state)
{
	stack();
	h_file("src/a", "A");
	h_link("src/a", "src/b");
	struct h_mount *m = mnt(",bind=%s:/s", h_path("src"));
	struct stat a = h_lstat(MP("s/a")), b = h_lstat(MP("s/b"));

	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 2);
	h_assert_ok(link(MP("s/a"), MP("s/c")));
	assert_int_equal(h_lstat(h_path("src/c")).st_ino,
			 h_lstat(h_path("src/a")).st_ino);
	assert_int_equal(h_lstat(MP("s/c")).st_ino, a.st_ino);
	assert_int_equal(h_lstat(MP("s/a")).st_nlink, 3);
	write_file(MP("s/c"), "C", O_TRUNC);
	h_assert_content(MP("s/a"), "C");
	h_assert_content(MP("s/b"), "C");
	h_assert_ok(unlink(MP("s/b")));
	assert_int_equal(h_lstat(MP("s/a")).st_nlink, 2);
	assert_int_equal(h_lstat(h_path("src/a")).st_nlink, 2);
	umnt(m);
}

/* A bind whose source is a directory of another FUSE mount (a read-only
 * plyfs stack): read through, and its errno for what it refuses. */
static void bind_fuse_source(void **state)
{
	struct statfs in, sp;

	stack();
	h_file("il/pkg/readme", "from fuse");
	h_file("il/pkg/sub/deep", "deep");
	h_file("il/other", "o");
	struct h_mount *inner = h_mount_lowers("inner", "il", NULL);
	struct h_mount *m = mnt(",bind=%s:/pkg", h_path("inner/pkg"));

	h_assert_listing(MP("pkg"), H_NAMES("readme", "sub"));
	h_assert_content(MP("pkg/readme"), "from fuse");
	h_assert_content(MP("pkg/sub/deep"), "deep");
	assert_true(S_ISDIR(h_lstat(MP("pkg/sub")).st_mode));
	h_assert_errno(open(MP("pkg/new"), O_WRONLY | O_CREAT, 0644), EROFS);
	h_assert_errno(unlink(MP("pkg/readme")), EROFS);
	errno = 0;
	assert_int_equal(lgetxattr(MP("pkg/readme"), "user.none", NULL, 0),
			 -1);
	assert_int_equal(errno, ENODATA);
	h_assert_ok(statfs(h_path("inner"), &in));
	h_assert_ok(statfs(MP("pkg"), &sp));
	assert_int_equal(sp.f_blocks, in.f_blocks);
	/* the rest of the first mount is unaffected */
	write_file(MP("top"), "t", O_CREAT | O_EXCL);
	h_assert_content(h_path("u/top"), "t");
	umnt(m); /* the user of the inner mount first */
	umnt(inner);
}

/* ---- volumes ----------------------------------------------------------- */

static void make_sparse(const char *rel, off_t hole)
{
	int fd = open(h_path("%s", rel), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	h_assert_ok(fd);
	assert_int_equal(pwrite(fd, "end", 3, hole), 3);
	h_assert_ok(close(fd));
}

/* A new volume is filled from what the layers hold at DEST (merged:
 * whiteouts apply), keeping owners, modes, times, xattrs, links and holes;
 * the upper is not touched. */
static void volume_populate(void **state)
{
	struct h_tree merged, vol;
	struct stat lsp;

	stack();
	h_file("l2/data/f", "file f");
	h_file("l2/data/gone", "whited out");
	h_file("l2/data/over", "lower");
	h_file("l1/data/over", "upper layer");
	h_file("l1/data/sub/g", "g");
	h_whiteout("l1/data/gone", H_WH_FILE);
	h_symlink("f", "l2/data/sym");
	h_file("l2/data/h1", "hard");
	h_link("l2/data/h1", "l2/data/h2");
	make_sparse("l2/data/sparse", 4 << 20);
	h_assert_ok(chmod(h_path("l2/data/f"), 0640));
	h_assert_ok(chmod(h_path("l1/data/sub"), 0710));
	h_xattr("l2/data/f", "user.k", "kv");
	if (h_is_root()) {
		h_assert_ok(lchown(h_path("l2/data/f"), 1234, 5678));
		h_assert_ok(lchown(h_path("l2/data/sym"), 1235, 5679));
		h_assert_ok(lchown(h_path("l1/data/sub"), 1236, 5680));
	}
	h_times("l2/data/f", 1500000000, 123456789);
	h_times("l2/data/sym", 1500000001, 0);
	h_times("l1/data/sub/g", 1500000002, 0);
	h_times("l2/data/sparse", 1500000003, 0);
	lsp = h_lstat(h_path("l2/data/sparse"));

	struct h_mount *m = mnt("%s", "");

	walk(MP("data"), &merged);
	umnt(m);

	m = mnt(",volume=pop:/data");
	h_assert_listing(MP("data"),
			 H_NAMES("f", "over", "sub", "sym", "h1", "h2",
				 "sparse"));
	walk(MP("data"), &vol);
	h_tree_assert_equal(&merged, &vol,
			    H_CMP_MODE | H_CMP_OWNER | H_CMP_NLINK |
				    H_CMP_MTIME,
			    "the new volume against the layers");
	h_assert_content(MP("data/over"), "upper layer");
	char *v = lgetx(MP("data/f"), "user.k");

	if (!v)
		fail_msg("user.k of data/f in the volume: %s",
			 strerror(errno));
	assert_string_equal(v, "kv");
	free(v);
	assert_int_equal(h_lstat(MP("data/h1")).st_ino, h_lstat(MP("data/h2")).st_ino);
	if (lsp.st_blocks * 512 < (4 << 20)) {
		struct stat vs = h_lstat(MP("data/sparse"));
		int fd = open(MP("data/sparse"), O_RDONLY | O_CLOEXEC);
		off_t d;

		assert_int_equal(vs.st_size, (4 << 20) + 3);
		if (vs.st_blocks * 512 >= (4 << 20))
			fail_msg("holes not kept: %lld blocks",
				 (long long)vs.st_blocks);
		h_assert_ok(fd);
		d = lseek(fd, 0, SEEK_DATA);
		if (d < (4 << 20) - 65536)
			fail_msg("SEEK_DATA from 0 gives %lld: no hole",
				 (long long)d);
		close(fd);
	}
	/* changes go to the volume, not the upper */
	write_file(MP("data/new"), "new", O_CREAT | O_EXCL);
	h_assert_ok(unlink(MP("data/f")));
	assert_gone(h_path("u/data"));
	umnt(m);
	h_tree_free(&merged);
	h_tree_free(&vol);
}

/* nocopy leaves a new volume empty; an existing but empty volume is filled
 * on its next use without nocopy; a non-empty one never is. */
static void volume_nocopy(void **state)
{
	stack();
	h_file("l1/data/x", "layer x");
	h_file("l1/data/y", "layer y");

	struct h_mount *m = mnt(",volume=nc:/data:nocopy");

	h_assert_listing(MP("data"), H_NONE);
	umnt(m);
	m = mnt(",volume=nc:/data");
	h_assert_listing(MP("data"), H_NAMES("x", "y"));
	h_assert_content(MP("data/x"), "layer x");
	umnt(m);

	m = mnt(",volume=mine:/data:nocopy");
	h_assert_listing(MP("data"), H_NONE);
	write_file(MP("data/own"), "own", O_CREAT | O_EXCL);
	umnt(m);
	m = mnt(",volume=mine:/data");
	h_assert_listing(MP("data"), H_NAMES("own"));
	h_assert_content(MP("data/own"), "own");
	/* emptied through the mount: still not refilled while mounted */
	h_assert_ok(unlink(MP("data/own")));
	h_assert_listing(MP("data"), H_NONE);
	umnt(m);
	/* the layers themselves were not changed */
	h_assert_listing(h_path("l1/data"), H_NAMES("x", "y"));
}

/* Named volumes outlive the mount: written through one mount, there again
 * in the next; the layers' own DEST content unchanged. */
static void volume_persist(void **state)
{
	struct h_tree l1, upper;

	stack();
	h_file("l1/data/x", "layer x");
	h_file("l1/data/y", "layer y");
	h_file("l1/other", "o");
	walk(h_path("l1"), &l1);

	struct h_mount *m = mnt(",volume=db:/data");

	write_file(MP("data/new"), "persist", O_CREAT | O_EXCL);
	write_file(MP("data/x"), "changed", O_TRUNC);
	h_assert_ok(unlink(MP("data/y")));
	h_assert_ok(mkdir(MP("data/dir"), 0700));
	write_file(MP("data/dir/deep"), "deep", O_CREAT | O_EXCL);
	write_file(MP("outside"), "upper", O_CREAT | O_EXCL);
	umnt(m);
	walk(h_path("u"), &upper);

	m = mnt(",volume=db:/data");
	h_assert_listing(MP("data"), H_NAMES("new", "x", "dir"));
	h_assert_content(MP("data/new"), "persist");
	h_assert_content(MP("data/x"), "changed");
	h_assert_content(MP("data/dir/deep"), "deep");
	assert_int_equal(h_lstat(MP("data/dir")).st_mode & 07777, 0700);
	umnt(m);

	/* a different DEST, the same data */
	m = mnt(",volume=db:/elsewhere");
	h_assert_listing(MP("elsewhere"), H_NAMES("new", "x", "dir"));
	h_assert_listing(MP("data"), H_NAMES("x", "y"));
	umnt(m);

	m = mnt("%s", "");
	h_assert_listing(MP("data"), H_NAMES("x", "y"));
	h_assert_content(MP("data/x"), "layer x");
	h_assert_content(MP("data/y"), "layer y");
	umnt(m);
	assert_unchanged(&l1, h_path("l1"), "l1 after volume use");
	assert_unchanged(&upper, h_path("u"), "upper after volume use");
	assert_gone(h_path("u/data"));
	h_tree_free(&l1);
	h_tree_free(&upper);
}

/* Reads the "plyfs: anonymous volume <id> at <dest>" lines of a daemon's
 * stderr: the id of the one for dest (64 hex digits) into id. */
static void anon_id(const struct h_mount *m, const char *dest, char id[65])
{
	size_t len;
	char *log = h_read(m->errlog, &len);
	char *line, *save = NULL;
	int found = 0;

	for (line = strtok_r(log, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char hex[100], at[PATH_MAX];

		if (sscanf(line, "plyfs: anonymous volume %99s at %4095s", hex,
			   at) != 2 ||
		    strcmp(at, dest))
			continue;
		if (strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
			fail_msg("bad anonymous volume id '%s'", hex);
		memcpy(id, hex, 65);
		found++;
	}
	if (found != 1)
		fail_msg("%d lines 'plyfs: anonymous volume <id> at %s' in:\n"
			 "%s",
			 found, dest, h_read(m->errlog, &len));
	free(log);
}

/* volume=:DEST makes an anonymous volume, named on stderr, filled as a
 * named one, and kept after the mount: usable by its id. */
static void volume_anonymous(void **state)
{
	char id1[65], id2[65];

	stack();
	h_file("l1/cache/seed", "seed");
	struct h_mount *m = mnt(",volume=:/cache,volume=:/tmpdir");

	anon_id(m, "/cache", id1);
	anon_id(m, "/tmpdir", id2);
	if (!strcmp(id1, id2))
		fail_msg("two anonymous volumes share id %s", id1);
	h_assert_listing(MP("cache"), H_NAMES("seed"));
	h_assert_listing(MP("tmpdir"), H_NONE);
	write_file(MP("cache/kept"), "kept", O_CREAT | O_EXCL);
	write_file(MP("tmpdir/t"), "t", O_CREAT | O_EXCL);
	umnt(m);

	m = mnt(",volume=%s:/c2", id1);
	h_assert_listing(MP("c2"), H_NAMES("seed", "kept"));
	h_assert_content(MP("c2/kept"), "kept");
	umnt(m);
	m = mnt(",volume=%s:/t2:ro", id2);
	h_assert_content(MP("t2/t"), "t");
	umnt(m);
}

/* ro volumes: readable, EROFS to changes. */
static void volume_ro(void **state)
{
	stack();
	h_file("l1/data/x", "x");
	struct h_mount *m = mnt(",volume=r:/data");

	write_file(MP("data/w"), "w", O_CREAT | O_EXCL);
	umnt(m);
	m = mnt(",volume=r:/data:ro");
	h_assert_listing(MP("data"), H_NAMES("x", "w"));
	h_assert_content(MP("data/w"), "w");
	h_assert_errno(open(MP("data/new"), O_WRONLY | O_CREAT, 0644), EROFS);
	h_assert_errno(open(MP("data/x"), O_WRONLY), EROFS);
	h_assert_errno(unlink(MP("data/x")), EROFS);
	h_assert_errno(mkdir(MP("data/d"), 0755), EROFS);
	h_assert_errno(rename(MP("data/x"), MP("data/z")), EROFS);
	h_assert_errno(chmod(MP("data/x"), 0600), EROFS);
	h_assert_errno(setxattr(MP("data/x"), "user.a", "b", 1, 0), EROFS);
	umnt(m);
	/* ro with nocopy on a new volume: empty and read-only */
	m = mnt(",volume=r2:/data:ro:nocopy");
	h_assert_listing(MP("data"), H_NONE);
	h_assert_errno(open(MP("data/new"), O_WRONLY | O_CREAT, 0644), EROFS);
	umnt(m);
}

/* Inside a volume, whiteout-looking names, overlay xattrs and 0/0
 * devices are ordinary objects, read, made and kept as they are (the
 * store keeps a volume's files in STORE/volumes/NAME/_data). */
static void volume_plain_tree(void **state)
{
	stack();
	h_file("l1/data/a", "a");
	struct h_mount *m = mnt(",volume=plain:/data");

	h_assert_listing(MP("data"), H_NAMES("a"));
	if (h_is_root())
		h_assert_ok(mknod(MP("data/c00"), S_IFCHR | 0600,
				  makedev(0, 0)));
	h_assert_ok(mkdir(MP("data/o"), 0755));
	write_file(MP("data/o/in"), "in", O_CREAT | O_EXCL);
	umnt(m);
	/* markers put in the volume's data behind the daemon's back */
	h_xattr("vs/volumes/plain/_data/a", "user.overlay.whiteout", "");
	h_xattr("vs/volumes/plain/_data/o", "user.overlay.opaque", "y");
	h_file("vs/volumes/plain/_data/.wh.x", "not a whiteout");
	h_file("vs/volumes/plain/_data/o/.wh..wh..opq", "not opaque");

	m = mnt(",volume=plain:/data");
	if (h_is_root()) {
		h_assert_listing(MP("data"), H_NAMES("a", "c00", "o", ".wh.x"));
		struct stat st = h_lstat(MP("data/c00"));

		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(0, 0));
	} else {
		h_assert_listing(MP("data"), H_NAMES("a", "o", ".wh.x"));
	}
	h_assert_content(MP("data/a"), "a");
	h_assert_content(MP("data/.wh.x"), "not a whiteout");
	h_assert_listing(MP("data/o"), H_NAMES("in", ".wh..wh..opq"));
	h_assert_content(MP("data/o/.wh..wh..opq"), "not opaque");
	/* removed as ordinary objects: no marker left */
	h_assert_ok(unlink(MP("data/.wh.x")));
	h_assert_ok(unlink(MP("data/a")));
	h_assert_listing(h_path("vs/volumes/plain/_data"),
			 h_is_root() ? H_NAMES("c00", "o") : H_NAMES("o"));
	umnt(m);
}

/* overlay.* xattrs, private markers in the layers, are ordinary xattrs
 * inside a splice: set, read and removed as such, with no effect on what
 * the directory lists. */
static void overlay_xattrs_in_splice(void **state)
{
	stack();
	h_file("src/d/in", "in");
	h_file("src/f", "f");
	struct h_mount *m = mnt(",bind=%s:/s", h_path("src"));

	h_assert_ok(setxattr(MP("s/d"), "user.overlay.opaque", "y", 1, 0));
	h_assert_ok(setxattr(MP("s/f"), "user.overlay.whiteout", "", 0, 0));
	char *v = lgetx(h_path("src/d"), "user.overlay.opaque");

	assert_non_null(v);
	assert_string_equal(v, "y");
	free(v);
	v = lgetx(MP("s/d"), "user.overlay.opaque");
	if (!v)
		fail_msg("getxattr user.overlay.opaque in a splice: %s",
			 strerror(errno));
	assert_string_equal(v, "y");
	free(v);
	h_assert_listing(MP("s/d"), H_NAMES("in"));
	h_assert_listing(MP("s"), H_NAMES("d", "f"));
	h_assert_content(MP("s/f"), "f");
	h_assert_ok(removexattr(MP("s/d"), "user.overlay.opaque"));
	assert_null(lgetx(h_path("src/d"), "user.overlay.opaque"));
	umnt(m);
}

/* Names the upper layer refuses (.wh.*) are ordinary names inside a
 * splice: made, renamed to and linked as such, in a bind and a volume. */
static void wh_names_in_splice(void **state)
{
	stack();
	h_mkdir("src");
	struct h_mount *m = mnt(",bind=%s:/s,volume=whv:/v", h_path("src"));

	write_file(MP("s/.wh.bar"), "b", O_CREAT | O_EXCL);
	h_assert_content(h_path("src/.wh.bar"), "b");
	h_assert_ok(mkdir(MP("s/.wh..wh..opq"), 0755));
	h_assert_ok(rename(MP("s/.wh.bar"), MP("s/.wh.baz")));
	h_assert_ok(link(MP("s/.wh.baz"), MP("s/.wh.l")));
	h_assert_ok(symlink("x", MP("s/.wh.sym")));
	h_assert_listing(h_path("src"), H_NAMES(".wh.baz", ".wh..wh..opq",
						".wh.l", ".wh.sym"));
	write_file(MP("v/.wh.f"), "f", O_CREAT | O_EXCL);
	h_assert_listing(MP("v"), H_NAMES(".wh.f"));
	umnt(m);
	m = mnt(",volume=whv:/v");
	h_assert_content(MP("v/.wh.f"), "f");
	umnt(m);
}

/* A store on another filesystem (a tmpfs): statfs inside the volume is
 * that tmpfs's, and the volume works and persists. */
static void volume_tmpfs(void **state)
{
	struct statfs tm, in;

	h_need_root();
	stack();
	h_tmpfs_opts("store", "size=8m,nr_inodes=2000");
	h_file("l1/data/x", "x");
	const char *o = h_fmt("%s,volume=t:/data,volstore=%s",
			      h_fmt("%s,upperdir=%s,workdir=%s",
				    h_lowerdir("l1", "l2", NULL),
				    h_path("u"), h_path("w")),
			      h_path("store"));
	char ob[8192];

	snprintf(ob, sizeof(ob), "%s", o);
	struct h_mount *m = h_mount(ob, "mnt");

	h_assert_content(MP("data/x"), "x");
	h_assert_ok(statfs(h_path("store"), &tm));
	h_assert_ok(statfs(MP("data"), &in));
	assert_int_equal((uint64_t)in.f_blocks * in.f_bsize, 8 << 20);
	assert_int_equal(in.f_blocks, tm.f_blocks);
	assert_int_equal(in.f_files, tm.f_files);
	h_file_pattern("mnt/data/big", 1 << 20, 7);
	assert_int_equal(h_hash_file(MP("data/big"), NULL),
			 h_pattern_hash(1 << 20, 7));
	h_assert_ok(statfs(MP("data"), &in));
	h_assert_ok(statfs(h_path("store"), &tm));
	assert_int_equal(in.f_bfree, tm.f_bfree);
	assert_true(in.f_bfree < in.f_blocks - 200);
	umnt(m);
	m = h_mount(ob, "mnt");
	assert_int_equal(h_hash_file(MP("data/big"), NULL),
			 h_pattern_hash(1 << 20, 7));
	umnt(m);
}

/* A store on a FUSE filesystem (a second, writable plyfs mount): the
 * volume is filled (xattrs, links, holes as far as that filesystem keeps
 * them), written, persists, and statfs is that mount's. */
static void volume_on_fuse(void **state)
{
	struct statfs in, vol;
	char o[8192];

	stack();
	h_mkdir("fl");
	h_mkdir("fu");
	h_mkdir("fw");
	h_file("l1/data/x", "x");
	h_file("l1/data/sub/y", "y");
	h_link("l1/data/x", "l1/data/x2");
	h_xattr("l1/data/x", "user.k", "v");
	struct h_mount *inner =
		h_mount(h_fmt("%s,upperdir=%s,workdir=%s",
			      h_lowerdir("fl", NULL), h_path("fu"),
			      h_path("fw")),
			"inner");

	snprintf(o, sizeof(o), "%s,upperdir=%s,workdir=%s,volstore=%s%s",
		 h_lowerdir("l1", "l2", NULL), h_path("u"), h_path("w"),
		 h_path("inner/store"), ",volume=fv:/data");
	struct h_mount *m = h_mount(o, "mnt");

	h_assert_listing(MP("data"), H_NAMES("x", "x2", "sub"));
	h_assert_content(MP("data/x"), "x");
	h_assert_content(MP("data/sub/y"), "y");
	assert_int_equal(h_lstat(MP("data/x")).st_ino, h_lstat(MP("data/x2")).st_ino);
	char *v = lgetx(MP("data/x"), "user.k");

	if (!v)
		fail_msg("user.k of data/x in a volume on FUSE: %s",
			 strerror(errno));
	assert_string_equal(v, "v");
	free(v);
	write_file(MP("data/new"), "new", O_CREAT | O_EXCL);
	h_assert_ok(statfs(h_path("inner"), &in));
	h_assert_ok(statfs(MP("data"), &vol));
	assert_int_equal(vol.f_blocks, in.f_blocks);
	umnt(m);
	m = h_mount(o, "mnt");
	h_assert_listing(MP("data"), H_NAMES("x", "x2", "sub", "new"));
	h_assert_content(MP("data/new"), "new");
	umnt(m); /* the user of the inner mount first */
	umnt(inner);
}

/* plyctl volume rm of a volume in use is refused naming the mount (exit 1,
 * -f too); after the unmount it works. */
static void volume_rm_in_use(void **state)
{
	struct h_run r;
	char store[PATH_MAX], mp[PATH_MAX];

	stack();
	h_file("l1/data/x", "x");
	snprintf(store, sizeof(store), "%s", h_path("vs"));
	struct h_mount *m = mnt(",volume=busy:/data");

	snprintf(mp, sizeof(mp), "%s", h_path("mnt"));
	h_run(H_NAMES(plyctl(), "volume", "rm", "--store", store, "busy"),
	      NULL, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 1)
		fail_msg("volume rm of a volume in use: status 0x%x, expected "
			 "exit 1; stderr: %s",
			 r.status, r.err);
	if (!strstr(r.err, mp))
		fail_msg("volume rm does not name the mount %s: %s", mp,
			 r.err);
	h_run_free(&r);
	h_run(H_NAMES(plyctl(), "volume", "rm", "-f", "--store", store,
		      "busy"),
	      NULL, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 1)
		fail_msg("volume rm -f of a volume in use: status 0x%x, "
			 "expected exit 1; stderr: %s",
			 r.status, r.err);
	h_run_free(&r);
	h_assert_content(MP("data/x"), "x");
	write_file(MP("data/y"), "y", O_CREAT | O_EXCL);
	umnt(m);

	h_run(H_NAMES(plyctl(), "volume", "ls", "--store", store), NULL, NULL,
	      &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 ||
	    !strstr(r.out, "busy"))
		fail_msg("volume ls: status 0x%x, out: %s err: %s", r.status,
			 r.out, r.err);
	h_run_free(&r);
	h_run(H_NAMES(plyctl(), "volume", "rm", "--store", store, "busy"),
	      NULL, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		fail_msg("volume rm after unmount: status 0x%x; stderr: %s",
			 r.status, r.err);
	h_run_free(&r);
	h_run(H_NAMES(plyctl(), "volume", "ls", "--store", store), NULL, NULL,
	      &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 ||
	    strstr(r.out, "busy"))
		fail_msg("volume ls after rm: status 0x%x, out: %s",
			 r.status, r.out);
	h_run_free(&r);

	/* a new volume of that name starts again from the layers */
	m = mnt(",volume=busy:/data");
	h_assert_listing(MP("data"), H_NAMES("x"));
	umnt(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(bind_dir),
		H_TEST(bind_hides_layers),
		H_TEST(dest_missing),
		H_TEST(bind_plain_tree),
		H_TEST(nested),
		H_TEST(file_bind),
		H_TEST(ro_splices),
		H_TEST(exdev),
		H_TEST(ebusy),
		H_TEST(ino_unique),
		H_TEST(statfs_source),
		H_TEST(dotdot),
		H_TEST(dest_refused),
		H_TEST(symlinks_out),
		H_TEST(hardlinks),
		H_TEST(bind_fuse_source),
		H_TEST(volume_populate),
		H_TEST(volume_nocopy),
		H_TEST(volume_persist),
		H_TEST(volume_anonymous),
		H_TEST(volume_ro),
		H_TEST(volume_plain_tree),
		H_TEST(wh_names_in_splice),
		H_TEST(overlay_xattrs_in_splice),
		H_TEST(volume_tmpfs),
		H_TEST(volume_on_fuse),
		H_TEST(volume_rm_in_use),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
