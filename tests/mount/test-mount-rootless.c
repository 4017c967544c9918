/* Rootless use as a user meets it: an unprivileged user mounting through
 * fusermount3 (copy-up, whiteouts, opaque directories, redirects, metacopy,
 * hard links, remount, unmount), the permission checks such a user gets,
 * and, inside `unshare --map-auto --map-root-user -m`, ownership kept in
 * xattrs, uid/gid mapping and the exact shapes containers-storage runs its
 * mount program with.
 *
 * The tests run as root and set themselves up: a user plyfs-test with
 * subordinate id ranges, /dev/fuse open to all. Each scenario runs as that
 * user in a child: this same binary, started again with
 * `--scenario NAME` through setpriv (and unshare), runs the scenario as a
 * one-test cmocka group with the usual harness, so it always unmounts; the
 * root side checks that it passed and left no mount and no daemon. */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

#define MiB (1024L * 1024)

#define TEST_USER "plyfs-test"
#define SCENARIO_WAIT_MS 150000 /* a whole scenario, mounts included */

static const char *const setpriv_bin = "/usr/bin/setpriv";
static const char *const unshare_bin = "/usr/bin/unshare";

/* ---- the scenarios (run as the test user) ------------------------------ */

/* The value of xattr name of path (not following symlinks), or NULL. */
static const char *xattr_of(const char *path, const char *name)
{
	static char buf[4096];
	ssize_t n = lgetxattr(path, name, buf, sizeof(buf) - 1);

	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

/* path (in an upper) is a whiteout in a form an unprivileged user can
 * make: a character device 0/0, a zero-size file with
 * user.overlay.whiteout, or a .wh.NAME beside it. */
static void assert_user_whiteout(const char *path)
{
	struct stat st;
	char wh[PATH_MAX];
	const char *slash = strrchr(path, '/');

	h_sfmt(wh, sizeof(wh), "%.*s/.wh.%s", (int)(slash - path), path,
		 slash + 1);
	if (lstat(path, &st) == 0) {
		if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
			return;
		if (S_ISREG(st.st_mode) && st.st_size == 0 &&
		    xattr_of(path, "user.overlay.whiteout"))
			return;
		fail_msg("%s: not a whiteout (mode %06o, size %lld)", path,
			 (unsigned)st.st_mode, (long long)st.st_size);
	}
	if (lstat(wh, &st) == 0 && S_ISREG(st.st_mode))
		return;
	fail_msg("no whiteout for %s in the upper", path);
}

static void assert_user_opaque(const char *path)
{
	const char *v = xattr_of(path, "user.overlay.opaque");

	if (v && !strcmp(v, "y"))
		return;
	if (access(h_fmt("%s/.wh..wh..opq", path), F_OK) == 0)
		return;
	fail_msg("%s: not marked opaque (user.overlay.opaque: %s)", path,
		 v ? v : "none");
}

/* Runs plyfs as containers-storage does: in the background, returning
 * only once the mount is live. argv runs plyfs without -f; mnt is
 * absolute. The daemon becomes our child (we are a subreaper), and the
 * harness unmounts it. */
static struct h_mount *mount_daemon(const char *const argv[], const char *cwd,
				    const char *mnt)
{
	struct h_run r;

	h_run(argv, cwd, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		fail_msg("plyfs exited with 0x%x: %s", r.status, r.err);
	h_run_free(&r);
	/* No waiting here: the mount must be there when plyfs returns. */
	if (!h_dev_differs(mnt))
		fail_msg("plyfs returned but %s is not mounted yet", mnt);
	return h_adopt(mnt);
}

/* Unmounts with fusermount3 -u (h_umount), expecting the daemon to exit
 * 0 and the mount point to be free. */
static void umount_clean(struct h_mount *m)
{
	char path[PATH_MAX];

	h_sfmt(path, sizeof(path), "%s", m->path);
	assert_int_equal(h_umount(m), 0);
	assert_false(h_is_mountpoint(path));
}

static const char *rw_opts(const char *lowers, const char *up, const char *wk)
{
	return h_fmt("lowerdir=%s,upperdir=%s,workdir=%s", lowers,
		     h_path("%s", up), h_path("%s", wk));
}

/* As the plain unprivileged user, through fusermount3: every kind of
 * change lands in the upper in forms that user can write, survives a
 * remount, and fusermount3 -u stops the daemon. */
static void sc_plain(void **state)
{
	char mnt[PATH_MAX], up[PATH_MAX], opts[4096];
	struct h_tree before, after;
	struct h_mount *m;
	struct stat a, b;
	off_t bigsize = 4 * MiB;

	(void)state;
	h_file("l2/d/a", "a");
	h_file("l2/d/b", "b");
	h_file("l2/keep/x", "x");
	h_file_pattern("l2/big", bigsize, 7);
	h_file("l2/h1", "h");
	h_link("l2/h1", "l2/h2");
	h_file("l2/tree/sub/f1", "f1");
	h_file("l2/tree/f2", "f2");
	h_file("l2/gone", "g");
	h_file("l2/opq/o1", "o1");
	h_file("l2/opq/o2", "o2");
	h_file("l1/d/c", "c");
	h_file("l1/top", "top");
	h_mkdir("u");
	h_mkdir("w");
	h_mkdir("mnt");
	h_sfmt(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_sfmt(up, sizeof(up), "%s", h_path("u"));
	h_sfmt(opts, sizeof(opts), "%s",
		 rw_opts(h_fmt("%s:%s", h_path("l1"), h_path("l2")), "u",
			 "w"));
	m = mount_daemon(H_NAMES(h_plyfs(), "-o", opts, mnt), NULL, mnt);

	/* create, modify, delete */
	h_file(h_fmt("%s/new", mnt), "n");
	h_file(h_fmt("%s/d/new", mnt), "dn");
	h_append(h_fmt("%s/d/a", mnt), "+more");
	h_assert_content(h_fmt("%s/d/a", mnt), "a+more");
	h_assert_content(h_fmt("%s/d/a", up), "a+more");
	h_assert_ok(unlink(h_fmt("%s/gone", mnt)));
	h_assert_ok(unlink(h_fmt("%s/d/b", mnt)));
	h_assert_errno(open(h_fmt("%s/gone", mnt), O_RDONLY), ENOENT);
	assert_user_whiteout(h_fmt("%s/gone", up));
	assert_user_whiteout(h_fmt("%s/d/b", up));

	/* a directory with lower content removed and made again is opaque;
	 * its old names stay hidden however it is looked at (fuse-overlayfs
	 * leaks them, timing dependent, after `ls parent; ls d`) */
	h_assert_ok(unlink(h_fmt("%s/opq/o1", mnt)));
	h_assert_ok(unlink(h_fmt("%s/opq/o2", mnt)));
	h_assert_ok(rmdir(h_fmt("%s/opq", mnt)));
	h_assert_ok(mkdir(h_fmt("%s/opq", mnt), 0755));
	for (int i = 0; i < 20; i++) {
		size_t n;

		char **names = h_listdir(mnt, &n);

		h_strv_free(names, n);
		h_assert_listing(h_fmt("%s/opq", mnt), H_NONE);
		h_assert_errno(open(h_fmt("%s/opq/o1", mnt), O_RDONLY), ENOENT);
		h_assert_errno(lstat(h_fmt("%s/opq/o2", mnt), &a), ENOENT);
	}
	h_file(h_fmt("%s/opq/n", mnt), "n");
	assert_user_opaque(h_fmt("%s/opq", up));

	/* a directory with lower content renamed: no EXDEV, a redirect */
	h_assert_ok(rename(h_fmt("%s/tree", mnt), h_fmt("%s/tree2", mnt)));
	h_assert_listing(h_fmt("%s/tree2", mnt), H_NAMES("sub", "f2"));
	h_assert_content(h_fmt("%s/tree2/sub/f1", mnt), "f1");
	h_assert_errno(lstat(h_fmt("%s/tree", mnt), &a), ENOENT);
	h_assert_ok(rename(h_fmt("%s/tree2/sub", mnt), h_fmt("%s/d/sub2", mnt)));
	h_assert_content(h_fmt("%s/d/sub2/f1", mnt), "f1");
	if (!xattr_of(h_fmt("%s/tree2", up), "user.overlay.redirect"))
		fail_msg("%s/tree2: no user.overlay.redirect", up);
	if (!xattr_of(h_fmt("%s/d/sub2", up), "user.overlay.redirect"))
		fail_msg("%s/d/sub2: no user.overlay.redirect", up);
	assert_user_whiteout(h_fmt("%s/tree", up));

	/* chmod of a big lower file copies no data */
	h_assert_ok(chmod(h_fmt("%s/big", mnt), 0600));
	a = h_lstat(h_fmt("%s/big", mnt));
	assert_int_equal(a.st_mode & 07777, 0600);
	b = h_lstat(h_fmt("%s/big", up));
	assert_int_equal(b.st_size, bigsize);
	if (b.st_blocks * 512 > 16384)
		fail_msg("chmod copied data: the upper big has %lld blocks",
			 (long long)b.st_blocks);
	if (!xattr_of(h_fmt("%s/big", up), "user.overlay.metacopy"))
		fail_msg("%s/big: no user.overlay.metacopy", up);
	assert_true(h_hash_file(h_fmt("%s/big", mnt), NULL) ==
		    h_pattern_hash(bigsize, 7));

	/* hard links: a lower pair stays linked after copy-up of one name,
	 * and link(2) of a lower file copies it up and links it */
	a = h_lstat(h_fmt("%s/h1", mnt));
	h_append(h_fmt("%s/h1", mnt), "+1");
	h_assert_content(h_fmt("%s/h2", mnt), "h+1");
	b = h_lstat(h_fmt("%s/h2", mnt));
	assert_int_equal(b.st_ino, a.st_ino);
	assert_int_equal(b.st_nlink, 2);
	h_assert_ok(link(h_fmt("%s/keep/x", mnt), h_fmt("%s/xl", mnt)));
	a = h_lstat(h_fmt("%s/keep/x", mnt));
	b = h_lstat(h_fmt("%s/xl", mnt));
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 2);

	h_assert_listing(mnt, H_NAMES("d", "keep", "big", "h1", "h2", "tree2",
				      "opq", "new", "top", "xl"));
	h_assert_listing(h_fmt("%s/d", mnt),
			 H_NAMES("a", "c", "new", "sub2"));

	/* the same tree after fusermount3 -u and a new mount */
	h_tree_walk(mnt, &before);
	umount_clean(m);
	m = h_mount(opts, "mnt");
	h_tree_walk(mnt, &after);
	h_tree_assert_equal(&before, &after, H_CMP_ALL | H_CMP_MTIME,
			    "before and after a remount");
	h_tree_free(&before);
	h_tree_free(&after);
	umount_clean(m);
}

/* As the plain unprivileged user: the modes of lower objects owned by
 * someone else are enforced, and nothing is copied up for a refusal. */
static void sc_perm(void **state)
{
	const char *prep = getenv("PLY_PREP");
	char mnt[PATH_MAX], opts[4096];
	struct stat st;

	(void)state;
	assert_non_null(prep);
	h_mkdir("u");
	h_mkdir("w");
	h_mkdir("mnt");
	h_sfmt(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_sfmt(opts, sizeof(opts), "%s",
		 rw_opts(h_fmt("%s/lower", prep), "u", "w"));
	h_mount(opts, "mnt");

	/* the lower says: root:root 0600 */
	h_assert_errno(open(h_fmt("%s/sub/secret", mnt), O_RDONLY), EACCES);
	/* root:root 0644: readable, not writable */
	h_assert_content(h_fmt("%s/sub/pub", mnt), "p");
	h_assert_errno(open(h_fmt("%s/sub/pub", mnt), O_WRONLY), EACCES);
	h_assert_errno(truncate(h_fmt("%s/sub/pub", mnt), 0), EACCES);
	h_assert_errno(chmod(h_fmt("%s/sub/pub", mnt), 0666), EPERM);
	h_assert_errno(chown(h_fmt("%s/sub/pub", mnt), getuid(), getgid()),
		       EPERM);
	/* sub is root:root 0755: no new names, no removals */
	h_assert_errno(unlink(h_fmt("%s/sub/pub", mnt)), EACCES);
	h_assert_errno(open(h_fmt("%s/sub/new", mnt),
			    O_WRONLY | O_CREAT | O_EXCL, 0644),
		       EACCES);
	h_assert_errno(mkdir(h_fmt("%s/sub/newdir", mnt), 0755), EACCES);
	h_assert_errno(rename(h_fmt("%s/sub/pub", mnt), h_fmt("%s/pub", mnt)),
		       EACCES);
	/* blind is root:root 0711: its names are reached, not listed (the
	 * daemon holds it without read access) */
	h_assert_content(h_fmt("%s/sub/blind/inner", mnt), "b");
	h_assert_errno(open(h_fmt("%s/sub/blind", mnt), O_RDONLY | O_DIRECTORY),
		       EACCES);
	/* closed is root:root 0700 */
	h_assert_errno(lstat(h_fmt("%s/sub/closed/inner", mnt), &st), EACCES);
	h_assert_errno(open(h_fmt("%s/sub/closed", mnt),
			    O_RDONLY | O_DIRECTORY),
		       EACCES);
	/* nothing was copied up for all that */
	h_assert_listing(h_path("u"), H_NONE);
}

/* Does /etc/fuse.conf hold user_allow_other (uncommented)? */
static bool fuse_conf_allows_other(void)
{
	FILE *f = fopen("/etc/fuse.conf", "re");
	char line[256];
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f)) {
		const char *p = line + strspn(line, " \t");

		found = !strncmp(p, "user_allow_other", 16);
	}
	if (f)
		fclose(f);
	return found;
}

/* As the plain unprivileged user: allow_other works only when
 * /etc/fuse.conf allows it, and is otherwise refused with the reason,
 * nothing mounted. */
static void sc_allow_other(void **state)
{
	char mnt[PATH_MAX], opts[4096];
	struct h_run r;

	(void)state;
	h_file("l/f", "f");
	h_mkdir("mnt");
	h_sfmt(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_sfmt(opts, sizeof(opts), "lowerdir=%s,allow_other", h_path("l"));
	if (fuse_conf_allows_other()) {
		umount_clean(h_mount(opts, "mnt"));
		return;
	}
	h_run(H_NAMES(h_plyfs(), "-o", opts, mnt), NULL, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) == 0 ||
	    !strstr(r.err, "user_allow_other"))
		fail_msg("allow_other without user_allow_other: status 0x%x, "
			 "stderr \"%s\"", r.status, r.err);
	h_run_free(&r);
	assert_false(h_is_mountpoint(mnt));
}

/* In a user namespace, with xattr_permissions=2: chown and chmod to ids
 * and modes the upper file cannot have on disk read back at once and
 * after a remount, kept in user.containers.override_stat. */
static void sc_override(void **state)
{
	static const struct {
		const char *name;
		uid_t uid;
		gid_t gid;
		mode_t mode;
	} want[] = {
		{ "a", 1000, 1000, 0640 },
		{ "b", 0, 5, 02750 },
		{ "c", 65535, 100, 0600 },
		{ "D", 2000, 2001, 0700 },
		{ "D/e", 33, 33, 0444 },
	};
	char mnt[PATH_MAX], opts[4096];
	struct h_mount *m;

	(void)state;
	h_file("l/a", "a");
	h_file("l/b", "b");
	h_file("l/D/e", "e");
	h_mkdir("u");
	h_mkdir("w");
	h_mkdir("mnt");
	h_sfmt(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_sfmt(opts, sizeof(opts), "%s,xattr_permissions=2",
		 rw_opts(h_path("l"), "u", "w"));
	m = h_mount(opts, "mnt");
	h_file(h_fmt("%s/c", mnt), "c"); /* an upper-only file */
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
		const char *p = h_fmt("%s/%s", mnt, want[i].name);

		h_assert_ok(chown(p, want[i].uid, want[i].gid));
		h_assert_ok(chmod(p, want[i].mode));
	}
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
			const char *p = h_fmt("%s/%s", mnt, want[i].name);
			const char *u = h_path("u/%s", want[i].name);
			struct stat st = h_lstat(p), ust = h_lstat(u);
			const char *x;
			unsigned xu, xg, xm;

			if (st.st_uid != want[i].uid ||
			    st.st_gid != want[i].gid ||
			    (st.st_mode & 07777) != want[i].mode)
				fail_msg("%s%s: %u:%u %04o, expected %u:%u "
					 "%04o", p,
					 round ? " after a remount" : "",
					 st.st_uid, st.st_gid,
					 st.st_mode & 07777, want[i].uid,
					 want[i].gid, want[i].mode);
			/* on disk: still ours, the rest in the xattr */
			assert_int_equal(ust.st_uid, getuid());
			x = xattr_of(u, "user.containers.override_stat");
			if (!x || sscanf(x, "%u:%u:%o", &xu, &xg, &xm) != 3)
				fail_msg("%s: user.containers.override_stat "
					 "is %s", u, x ? x : "missing");
			assert_int_equal(xu, want[i].uid);
			assert_int_equal(xg, want[i].gid);
			assert_int_equal(xm & 07777, want[i].mode);
		}
		h_assert_content(h_fmt("%s/D/e", mnt), "e");
		if (round == 0) {
			umount_clean(m);
			m = h_mount(opts, "mnt");
		}
	}
	/* the override xattr is private: not readable (ENODATA, or
	 * EOPNOTSUPP as overlayfs answers for its own names), not listed,
	 * not settable */
	errno = 0;
	assert_int_equal(lgetxattr(h_fmt("%s/a", mnt),
				   "user.containers.override_stat", NULL, 0),
			 -1);
	if (errno != ENODATA && errno != EOPNOTSUPP)
		fail_msg("getxattr user.containers.override_stat: %s",
			 strerrorname_np(errno));
	{
		char list[4096];
		ssize_t n = llistxattr(h_fmt("%s/a", mnt), list, sizeof(list));

		for (ssize_t pos = 0; pos < n; pos += strlen(list + pos) + 1)
			if (strstr(list + pos, "override_stat"))
				fail_msg("%s listed", list + pos);
	}
	h_assert_errno(lsetxattr(h_fmt("%s/a", mnt),
				 "user.containers.override_stat", "0:0:755", 7,
				 0),
		       EPERM);
	umount_clean(m);
}

static void assert_owner(const char *path, uid_t uid, gid_t gid)
{
	struct stat st = h_lstat(path);

	if (st.st_uid != uid || st.st_gid != gid)
		fail_msg("%s: owner %u:%u, expected %u:%u", path, st.st_uid,
			 st.st_gid, uid, gid);
}

/* In a user namespace: lower files owned by various ids show through
 * uidmapping=/gidmapping= (and the squash_* options) as mapped, and ids
 * set through the mount go back to disk mapped the other way. */
static void sc_idmap(void **state)
{
	static const struct {
		const char *name;
		uid_t uid;
		gid_t gid;
		uid_t puid; /* presented */
		gid_t pgid;
	} files[] = {
		{ "f0", 0, 0, 0, 0 },
		{ "f1000", 1000, 2000, 100, 200 },
		{ "f1001", 1001, 2001, 101, 201 },
		{ "f1050", 1050, 2050, 65534, 65534 }, /* not in the map */
		{ "f5000", 5000, 5000, 65534, 65534 },
		{ "dd", 1000, 2000, 100, 200 },
	};
	char mnt[PATH_MAX], lower[PATH_MAX], opts[4096];
	struct h_mount *m;

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		const char *rel = h_fmt("l/%s", files[i].name);

		if (files[i].name[0] == 'd')
			h_mkdir(h_fmt("%s/sub", rel));
		else
			h_file(rel, files[i].name);
		if (lchown(h_path("%s", rel), files[i].uid, files[i].gid) < 0)
			fail_msg("chown %s %u:%u in the user namespace: %s",
				 rel, files[i].uid, files[i].gid,
				 strerror(errno));
	}
	h_mkdir("u");
	h_mkdir("w");
	h_mkdir("mnt");
	h_sfmt(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_sfmt(lower, sizeof(lower), "%s", h_path("l"));

	/* fuse-overlayfs's syntax: triples ONDISK:PRESENTED:LENGTH (its
	 * read_mappings() reads "host:to:len" and stat maps host to "to");
	 * a leading ':' on one map, none on the other */
	h_sfmt(opts, sizeof(opts),
	     "%s,uidmapping=:0:0:1:1000:100:10,"
	     "gidmapping=0:0:1:2000:200:2",
	     rw_opts(lower, "u", "w"));
	m = h_mount(opts, "mnt");
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++)
		assert_owner(h_fmt("%s/%s", mnt, files[i].name),
			     files[i].puid, files[i].pgid);
	/* what we create is ours (presented 0, on disk 0) */
	h_file(h_fmt("%s/new", mnt), "n");
	assert_owner(h_fmt("%s/new", mnt), 0, 0);
	assert_owner(h_path("u/new"), 0, 0);
	/* chown through the mount: presented ids, mapped back on disk */
	h_assert_ok(chown(h_fmt("%s/new", mnt), 105, 201));
	assert_owner(h_fmt("%s/new", mnt), 105, 201);
	assert_owner(h_path("u/new"), 1005, 2001);
	/* a copy-up keeps the on-disk owner */
	h_assert_ok(chmod(h_fmt("%s/f1001", mnt), 0600));
	assert_owner(h_fmt("%s/f1001", mnt), 101, 201);
	assert_owner(h_path("u/f1001"), 1001, 2001);
	umount_clean(m);

	h_sfmt(opts, sizeof(opts), "lowerdir=%s,squash_to_root", lower);
	m = h_mount(opts, "mnt");
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++)
		assert_owner(h_fmt("%s/%s", mnt, files[i].name), 0, 0);
	umount_clean(m);

	h_sfmt(opts, sizeof(opts), "lowerdir=%s,squash_to_uid=7,"
		 "squash_to_gid=8", lower);
	m = h_mount(opts, "mnt");
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++)
		assert_owner(h_fmt("%s/%s", mnt, files[i].name), 7, 8);
	umount_clean(m);

	h_sfmt(opts, sizeof(opts), "lowerdir=%s,static_nlink", lower);
	m = h_mount(opts, "mnt");
	assert_int_equal(h_lstat(h_fmt("%s/dd", mnt)).st_nlink, 1);
	umount_clean(m);
	h_sfmt(opts, sizeof(opts), "lowerdir=%s", lower);
	m = h_mount(opts, "mnt");
	assert_int_equal(h_lstat(h_fmt("%s/dd", mnt)).st_nlink, 3);
	umount_clean(m);
}

/* Builds a containers-storage tree: overlay/<id>/diff layers holding
 * OCI markers (.wh.NAME, .wh..wh..opq as plain empty files), and
 * overlay/l/<short> -> ../<id>/diff symlinks; overlay/ctr/{diff,work,
 * merged} for a container. */
static void make_storage(void)
{
	h_file("st/overlay/base1/diff/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
	h_file("st/overlay/base1/diff/etc/group", "root:x:0:\n");
	h_file("st/overlay/base1/diff/usr/bin/tool", "tool");
	h_file("st/overlay/base1/diff/var/cache/a", "a");
	h_file("st/overlay/base1/diff/var/cache/b", "b");
	h_file("st/overlay/base1/diff/opt/old", "old");
	h_file("st/overlay/mid2/diff/etc/.wh.group", "");
	h_file("st/overlay/mid2/diff/var/cache/.wh..wh..opq", "");
	h_file("st/overlay/mid2/diff/var/cache/c", "c");
	h_file("st/overlay/mid2/diff/new2", "new2");
	h_file("st/overlay/top3/diff/etc/hostname", "box\n");
	h_symlink("../base1/diff", "st/overlay/l/BBBBBBBBBBBB");
	h_symlink("../mid2/diff", "st/overlay/l/MMMMMMMMMMMM");
	h_symlink("../top3/diff", "st/overlay/l/TTTTTTTTTTTT");
	h_mkdir("st/overlay/ctr/diff");
	h_mkdir("st/overlay/ctr/work");
	h_mkdir("st/overlay/ctr/merged");
	h_mkdir("st/overlay/ctr2/diff");
	h_mkdir("st/overlay/ctr2/work");
	h_mkdir("st/overlay/ctr2/merged");
}

static void assert_image_view(const char *mnt)
{
	h_assert_listing(mnt, H_NAMES("etc", "usr", "var", "opt", "new2"));
	h_assert_listing(h_fmt("%s/etc", mnt), H_NAMES("passwd", "hostname"));
	h_assert_listing(h_fmt("%s/var/cache", mnt), H_NAMES("c"));
	h_assert_content(h_fmt("%s/etc/hostname", mnt), "box\n");
	h_assert_content(h_fmt("%s/usr/bin/tool", mnt), "tool");
}

/* A foreground mount's daemon after SIGKILL: reaped, mount left dead. */
static void kill_daemon(struct h_mount *m)
{
	int status;

	assert_true(m->pid > 0);
	kill(m->pid, SIGKILL);
	if (h_wait(m->pid, H_EXIT_WAIT_MS, &status) < 0)
		fail_msg("plyfs (pid %d) survives SIGKILL", m->pid);
	m->pid = 0;
}

/* In a user namespace, as uid 0 there: the command lines containers-
 * storage runs its mount program with, lower paths that are symlinks, the
 * daemon returning only once the mount is live and exiting after
 * fusermount3 -u. */
static void sc_shapes(void **state)
{
	char ov[PATH_MAX], lowers[PATH_MAX * 2], merged[PATH_MAX];
	char opts[8192];
	struct h_mount *m;
	struct h_run r;
	struct stat st;

	(void)state;
	make_storage();
	h_sfmt(ov, sizeof(ov), "%s", h_path("st/overlay"));
	h_sfmt(lowers, sizeof(lowers),
		 "%s/l/TTTTTTTTTTTT:%s/l/MMMMMMMMMMMM:%s/l/BBBBBBBBBBBB", ov,
		 ov, ov);
	h_sfmt(merged, sizeof(merged), "%s/ctr/merged", ov);

	/* plyfs --version */
	h_run(H_NAMES(h_plyfs(), "--version"), NULL, NULL, &r);
	assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	if (!strstr(r.out, "plyfs"))
		fail_msg("--version printed \"%s\"", r.out);
	h_run_free(&r);

	/* trailing comma */
	h_sfmt(opts, sizeof(opts),
		 "lowerdir=%s,upperdir=%s/ctr/diff,workdir=%s/ctr/work,",
		 lowers, ov, ov);
	m = mount_daemon(H_NAMES(h_plyfs(), "-o", opts, merged), NULL, merged);
	assert_image_view(merged);
	h_file(h_fmt("%s/etc/written", merged), "w");
	h_assert_ok(unlink(h_fmt("%s/opt/old", merged)));
	umount_clean(m);
	h_assert_content(h_fmt("%s/ctr/diff/etc/written", ov), "w");

	/* ",,volatile": an empty element */
	h_sfmt(opts, sizeof(opts),
		 "lowerdir=%s,upperdir=%s/ctr/diff,workdir=%s/ctr/work,,"
		 "volatile",
		 lowers, ov, ov);
	m = mount_daemon(H_NAMES(h_plyfs(), "-o", opts, merged), NULL, merged);
	h_assert_content(h_fmt("%s/etc/written", merged), "w");
	h_assert_errno(lstat(h_fmt("%s/opt/old", merged), &st), ENOENT);
	h_file(h_fmt("%s/v", merged), "v");
	umount_clean(m);
	/* a clean stop: the next volatile mount starts; an unclean one
	 * (the daemon killed) is refused at the next mount, exit 2 */
	m = mount_daemon(H_NAMES(h_plyfs(), "-o", opts, merged), NULL, merged);
	h_assert_content(h_fmt("%s/v", merged), "v");
	kill_daemon(m);
	h_umount(m);
	h_run(H_NAMES(h_plyfs(), "-o", opts, merged), NULL, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 2 ||
	    !strstr(r.err, "volatile"))
		fail_msg("a mount after an unclean volatile one: status 0x%x, "
			 "stderr \"%s\"", r.status, r.err);
	h_run_free(&r);
	assert_false(h_is_mountpoint(merged));

	/* ",,volatile,uidmapping=:...,gidmapping=:..." as podman passes them
	 * for --userns=keep-id of uid 1001. The triples are ONDISK:PRESENTED:
	 * LENGTH as fuse-overlayfs reads them: on disk 0..1000 are presented
	 * as 1..1001, 1001 as 0, 1002.. as themselves. So image files owned
	 * by 0 on disk show as 1, which the container's user namespace (its
	 * 0 is our 1) shows as its root. */
	h_assert_ok(lchown(h_path("st/overlay/base1/diff/usr/bin/tool"), 1,
			   1));
	h_assert_ok(lchown(h_path("st/overlay/base1/diff/opt/old"), 1002,
			   1002));
	h_assert_ok(lchown(h_path("st/overlay/top3/diff/etc/hostname"), 1001,
			   1001));
	h_sfmt(merged, sizeof(merged), "%s/ctr2/merged", ov);
	h_sfmt(opts, sizeof(opts),
	     "lowerdir=%s,upperdir=%s/ctr2/diff,workdir=%s/ctr2/work,,"
	     "volatile,uidmapping=:0:1:1001:1001:0:1:1002:1002:64534,"
	     "gidmapping=:0:1:1001:1001:0:1:1002:1002:64534",
	     lowers, ov, ov);
	m = mount_daemon(H_NAMES(h_plyfs(), "-o", opts, merged), NULL, merged);
	assert_image_view(merged);
	assert_owner(h_fmt("%s/etc/passwd", merged), 1, 1);
	assert_owner(h_fmt("%s/usr/bin/tool", merged), 2, 2);
	assert_owner(h_fmt("%s/etc/hostname", merged), 0, 0);
	assert_owner(h_fmt("%s/opt/old", merged), 1002, 1002);
	/* what we (presented 0) create is 1001 on disk; chown goes back
	 * through the same map */
	h_file(h_fmt("%s/mine", merged), "m");
	assert_owner(h_fmt("%s/mine", merged), 0, 0);
	assert_owner(h_path("st/overlay/ctr2/diff/mine"), 1001, 1001);
	h_assert_ok(chown(h_fmt("%s/mine", merged), 1, 1));
	assert_owner(h_path("st/overlay/ctr2/diff/mine"), 0, 0);
	h_assert_ok(chown(h_fmt("%s/mine", merged), 1002, 1002));
	assert_owner(h_path("st/overlay/ctr2/diff/mine"), 1002, 1002);
	umount_clean(m);

	/* read-only, no upper; relative symlinked lowers from the storage
	 * directory */
	h_sfmt(opts, sizeof(opts),
		 "lowerdir=l/TTTTTTTTTTTT:l/MMMMMMMMMMMM:l/BBBBBBBBBBBB");
	m = mount_daemon(H_NAMES(h_plyfs(), "-o", opts, merged), ov, merged);
	assert_image_view(merged);
	h_assert_errno(open(h_fmt("%s/x", merged), O_WRONLY | O_CREAT, 0644),
		       EROFS);
	umount_clean(m);
}

/* Exits 0 when run: the test user can run this binary. */
static void sc_probe(void **state)
{
	(void)state;
	if (access(h_plyfs(), X_OK) < 0)
		fail_msg("%s: %s", h_plyfs(), strerror(errno));
}

static const struct {
	const char *name;
	void (*fn)(void **state);
} scenarios[] = {
	{ "probe", sc_probe },	     { "plain", sc_plain },
	{ "perm", sc_perm },	     { "allow_other", sc_allow_other },
	{ "override", sc_override },
	{ "idmap", sc_idmap },	     { "shapes", sc_shapes },
};

static int run_scenario(const char *name)
{
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(*scenarios); i++) {
		if (strcmp(scenarios[i].name, name))
			continue;
		const struct CMUnitTest tests[] = { {
			.name = name,
			.test_func = scenarios[i].fn,
			.setup_func = h_setup,
			.teardown_func = h_teardown,
		} };

		h_init();
		return _cmocka_run_group_tests(name, tests, 1, NULL, NULL);
	}
	fprintf(stderr, "no scenario %s\n", name);
	return 2;
}

/* ---- the root side ----------------------------------------------------- */

/* Why every test skips (NULL: they run), and the user's ids. */
static const char *skip_all;
static char skip_buf[512];
static uid_t test_uid;
static gid_t test_gid;
static char test_home[PATH_MAX];
static char self_bin[PATH_MAX];
static mode_t fuse_mode_before;
static bool fuse_mode_changed;

static bool have_exe(const char *path)
{
	return access(path, X_OK) == 0;
}

/* Runs a set-up command as root; its output goes to skip_buf on failure.
 * true when it exited 0. */
static bool setup_run(const char *const argv[])
{
	char out[] = "/tmp/plyfs-rootless-setup.XXXXXX";
	int fd = mkstemp(out), status;
	pid_t pid;
	bool ok;

	if (fd < 0)
		return false;
	close(fd);
	pid = h_spawn(argv, "/", NULL, out, out);
	if (h_wait(pid, H_RUN_WAIT_MS, &status) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		status = -1;
	}
	ok = status == 0;
	if (!ok) {
		FILE *f = fopen(out, "re");
		size_t n = 0;

		snprintf(skip_buf, sizeof(skip_buf), "%s failed: ", argv[0]);
		if (f) {
			n = strlen(skip_buf);
			n += fread(skip_buf + n, 1, sizeof(skip_buf) - n - 1,
				   f);
			skip_buf[n] = '\0';
			fclose(f);
		}
	}
	unlink(out);
	return ok;
}

/* Does /etc/subuid (or subgid) give the user a range? */
static bool has_subids(const char *file)
{
	FILE *f = fopen(file, "re");
	char line[256];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		size_t n = strlen(TEST_USER);

		found = !strncmp(line, TEST_USER, n) && line[n] == ':';
	}
	fclose(f);
	return found;
}

/* The test user, its subordinate ids, /dev/fuse for everyone. Anything
 * missing makes every test skip, with the reason. */
static int group_setup(void **state)
{
	struct passwd *pw;
	struct stat st;
	ssize_t n;

	(void)state;
	if (!h_is_root()) {
		skip_all = "needs root (it creates the user " TEST_USER ")";
		return 0;
	}
	if (!have_exe(setpriv_bin) || !have_exe("/usr/bin/fusermount3")) {
		skip_all = "needs setpriv and fusermount3 "
			   "(util-linux, fuse3)";
		return 0;
	}
	pw = getpwnam(TEST_USER);
	if (!pw) {
		if (!have_exe("/usr/sbin/useradd")) {
			skip_all = "no user " TEST_USER " and no useradd";
			return 0;
		}
		if (!setup_run(H_NAMES("/usr/sbin/useradd", "-m", "-s",
				       "/bin/sh", TEST_USER))) {
			skip_all = skip_buf;
			return 0;
		}
		pw = getpwnam(TEST_USER);
		if (!pw) {
			skip_all = "useradd " TEST_USER " made no user";
			return 0;
		}
	}
	test_uid = pw->pw_uid;
	test_gid = pw->pw_gid;
	snprintf(test_home, sizeof(test_home), "%s", pw->pw_dir);
	/* useradd gives new users ranges when login.defs says so; an older
	 * user may lack them: add a range above every other. */
	if ((!has_subids("/etc/subuid") || !has_subids("/etc/subgid")) &&
	    have_exe("/usr/sbin/usermod")) {
		const char *range = "700000000-700065535";

		if (!has_subids("/etc/subuid"))
			setup_run(H_NAMES("/usr/sbin/usermod", "--add-subuids",
					  range, TEST_USER));
		if (!has_subids("/etc/subgid"))
			setup_run(H_NAMES("/usr/sbin/usermod", "--add-subgids",
					  range, TEST_USER));
	}
	if (stat("/dev/fuse", &st) == 0 && (st.st_mode & 0666) != 0666) {
		fuse_mode_before = st.st_mode & 07777;
		if (chmod("/dev/fuse", 0666) == 0)
			fuse_mode_changed = true;
	}
	n = readlink("/proc/self/exe", self_bin, sizeof(self_bin) - 1);
	if (n < 0) {
		skip_all = "cannot read /proc/self/exe";
		return 0;
	}
	self_bin[n] = '\0';
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (fuse_mode_changed)
		chmod("/dev/fuse", fuse_mode_before);
	return 0;
}

static void need_setup(void)
{
	if (skip_all) {
		print_message("SKIP: %s\n", skip_all);
		skip();
	}
}

/* Why user-namespace scenarios cannot run, or NULL. */
static const char *userns_missing(void)
{
	static char why[600];
	char helpout[PATH_MAX];
	char *help;
	pid_t pid;
	int status;

	if (!have_exe(unshare_bin))
		return "no unshare (util-linux)";
	if (!have_exe("/usr/bin/newuidmap") || !have_exe("/usr/bin/newgidmap"))
		return "no newuidmap/newgidmap (apt-get install uidmap)";
	if (!has_subids("/etc/subuid") || !has_subids("/etc/subgid"))
		return "no /etc/subuid or /etc/subgid range for " TEST_USER;
	snprintf(helpout, sizeof(helpout), "%s", h_path("unshare-help"));
	pid = h_spawn(H_NAMES(unshare_bin, "--help"), "/", NULL, helpout,
		      NULL);
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0)
		return "unshare --help does not return";
	help = h_read(helpout, NULL);
	if (!strstr(help, "--map-auto")) {
		free(help);
		return "this unshare has no --map-auto (util-linux < 2.38)";
	}
	free(help);
	/* The real thing, as the user. */
	snprintf(helpout, sizeof(helpout), "%s", h_path("unshare-try"));
	pid = h_spawn(H_NAMES(setpriv_bin, h_fmt("--reuid=%u", test_uid),
			      h_fmt("--regid=%u", test_gid), "--init-groups",
			      "--", unshare_bin, "--map-auto",
			      "--map-root-user", "-m", "--", "/bin/true"),
		      "/", NULL, helpout, helpout);
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return "unshare --map-auto as " TEST_USER " does not return";
	}
	if (status != 0) {
		help = h_read(helpout, NULL);
		snprintf(why, sizeof(why),
			 "unshare --map-auto --map-root-user -m as " TEST_USER
			 " fails: %s",
			 help);
		free(help);
		return why;
	}
	return NULL;
}

/* Mount points under our test root still mounted: detached, counted. */
static int detach_leftovers(void)
{
	const char *root = h_path(".");
	size_t len = strlen(root) - 1; /* "ROOT/" */
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, mp[PATH_MAX];
	size_t cap = 0;
	int n = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		if (strncmp(mp, root, len))
			continue;
		fprintf(stderr, "left mounted: %s\n", mp);
		umount2(mp, MNT_DETACH);
		n++;
	}
	free(line);
	fclose(f);
	return n;
}

/* Runs scenario name as the test user (inside a user namespace when
 * userns), with $PLY_PREP set to the test root, and fails the test
 * unless it passed and left nothing behind. It skips with the scenario's
 * reason when the scenario skipped. */
static void as_user(const char *name, bool userns)
{
	char out[PATH_MAX], err[PATH_MAX], work[PATH_MAX];
	char env_plyfs[PATH_MAX + 8];
	char env_prep[PATH_MAX + 16], env_tmp[PATH_MAX + 8];
	char env_home[PATH_MAX + 8];
	const char *argv[16];
	const char *envp[8];
	int status, i = 0, left;
	pid_t pid, strays[8];
	char *log, *elog;
	bool skipped;

	/* The user gets through our root to its own work area. */
	h_assert_ok(chmod(h_path("."), 0711));
	h_mkdir("u");
	snprintf(work, sizeof(work), "%s", h_path("u"));
	h_assert_ok(chown(work, test_uid, test_gid));
	snprintf(out, sizeof(out), "%s", h_path("scenario-%s.out", name));
	snprintf(err, sizeof(err), "%s", h_path("scenario-%s.err", name));

	argv[i++] = setpriv_bin;
	argv[i++] = h_fmt("--reuid=%u", test_uid);
	argv[i++] = h_fmt("--regid=%u", test_gid);
	argv[i++] = "--init-groups";
	argv[i++] = "--";
	if (userns) {
		argv[i++] = unshare_bin;
		argv[i++] = "--map-auto";
		argv[i++] = "--map-root-user";
		argv[i++] = "-m";
		argv[i++] = "--";
	}
	argv[i++] = self_bin;
	argv[i++] = "--scenario";
	argv[i++] = name;
	argv[i] = NULL;
	snprintf(env_plyfs, sizeof(env_plyfs), "PLYFS=%s", h_plyfs());
	snprintf(env_prep, sizeof(env_prep), "PLY_PREP=%s", h_path("p"));
	snprintf(env_tmp, sizeof(env_tmp), "TMPDIR=%s", work);
	snprintf(env_home, sizeof(env_home), "HOME=%s", test_home);
	i = 0;
	envp[i++] = env_plyfs;
	envp[i++] = env_prep;
	envp[i++] = env_tmp;
	envp[i++] = env_home;
	envp[i++] = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	envp[i++] = "LC_ALL=C";
	envp[i] = NULL;

	pid = h_spawn(argv, work, envp, out, err);
	if (h_wait(pid, SCENARIO_WAIT_MS, &status) < 0) {
		kill(pid, SIGKILL);
		h_wait(pid, H_EXIT_WAIT_MS, &status);
		status = -1;
	}
	log = h_read(out, NULL);
	elog = h_read(err, NULL);
	print_message("---- scenario %s as %s%s ----\n%s%s---- end of %s ----\n",
		      name, TEST_USER, userns ? " in a user namespace" : "",
		      log, elog, name);
	skipped = strstr(log, "[  SKIPPED ]") || strstr(elog, "[  SKIPPED ]");
	free(log);
	free(elog);

	/* Whatever happened: no mount and no daemon may be left. */
	left = detach_leftovers();
	for (int k = 0, n = h_children(strays, 8); k < n && k < 8; k++) {
		int st;

		fprintf(stderr, "left running: pid %d\n", strays[k]);
		kill(strays[k], SIGKILL);
		h_wait(strays[k], H_EXIT_WAIT_MS, &st);
		left++;
	}
	if (status == -1)
		fail_msg("scenario %s did not finish within %d ms", name,
			 SCENARIO_WAIT_MS);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		print_message("SKIP: scenario %s: no /dev/fuse for %s\n", name,
			      TEST_USER);
		skip();
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("scenario %s failed (status 0x%x): see its log above",
			 name, status);
	if (left)
		fail_msg("scenario %s left %d mounts or processes behind",
			 name, left);
	if (skipped) {
		print_message("SKIP: scenario %s skipped (see above)\n", name);
		skip();
	}
}

static void need_userns(void)
{
	const char *why;

	need_setup();
	why = userns_missing();
	if (why) {
		print_message("SKIP: %s\n", why);
		skip();
	}
}

/* Checks first that the user can run this binary at all (a build under
 * a private home cannot be). */
static void need_runnable(void)
{
	char out[PATH_MAX];
	int status;
	pid_t pid;

	h_assert_ok(chmod(h_path("."), 0711));
	h_mkdir("u");
	h_assert_ok(chown(h_path("u"), test_uid, test_gid));
	snprintf(out, sizeof(out), "%s", h_path("probe.log"));
	pid = h_spawn(H_NAMES(setpriv_bin, h_fmt("--reuid=%u", test_uid),
			      h_fmt("--regid=%u", test_gid), "--init-groups",
			      "--", "/usr/bin/test", "-x", self_bin),
		      "/", NULL, out, out);
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0 || status != 0) {
		print_message("SKIP: %s cannot run %s (a directory on its way "
			      "is closed to it)\n", TEST_USER, self_bin);
		skip();
	}
	unlink(out);
}

static void plain_user(void **state)
{
	(void)state;
	need_setup();
	need_runnable();
	as_user("plain", false);
}

static void permissions(void **state)
{
	(void)state;
	need_setup();
	need_runnable();
	/* lower objects another user owns */
	h_file("p/lower/sub/secret", "s");
	h_file("p/lower/sub/pub", "p");
	h_file("p/lower/sub/closed/inner", "i");
	h_file("p/lower/sub/blind/inner", "b");
	h_assert_ok(chmod(h_path("p/lower/sub/secret"), 0600));
	h_assert_ok(chmod(h_path("p/lower/sub/blind"), 0711));
	h_assert_ok(chmod(h_path("p/lower/sub/closed"), 0700));
	as_user("perm", false);
}

static void allow_other(void **state)
{
	(void)state;
	need_setup();
	need_runnable();
	as_user("allow_other", false);
}

static void userns_override(void **state)
{
	(void)state;
	need_userns();
	need_runnable();
	as_user("override", true);
}

static void userns_idmap(void **state)
{
	(void)state;
	need_userns();
	need_runnable();
	as_user("idmap", true);
}

static void userns_storage_shapes(void **state)
{
	(void)state;
	need_userns();
	need_runnable();
	as_user("shapes", true);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		H_TEST(plain_user),
		H_TEST(permissions),
		H_TEST(allow_other),
		H_TEST(userns_override),
		H_TEST(userns_idmap),
		H_TEST(userns_storage_shapes),
	};

	if (argc == 3 && !strcmp(argv[1], "--scenario"))
		return run_scenario(argv[2]);
	h_init();
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
