/* test-mount-badinput.c: every bad option, bad layer and hostile archive
 * of docs/robustness.md ("Bad input, and the error plyfs gives"), one case
 * per row. The table is read from the docs ($PLY_BADINPUT_DOC) and must
 * list exactly the cases below, with the same input, exit status and
 * message; each case then runs its command and checks what a user sees:
 * the exit status, stderr (the one documented line, temporary paths
 * written as placeholders), nothing mounted, no daemon left, nothing
 * written in the layers (nor, for an archive, outside the target).
 * PLY_BADINPUT_PRINT=1 prints each case's row as it runs, from what the
 * command actually did; PLY_BADINPUT_TABLE=1 prints the table's rows from
 * the cases below, and runs nothing. */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <fcntl.h>
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

#define SETPRIV "/usr/bin/setpriv"
#define NOBODY 65534

enum kind { OPTION, LAYER, ARCHIVE };

enum {
	AS_NOBODY = 1 << 0, /* run the command as uid/gid 65534 */
	NEED_ROOT = 1 << 1, /* the set-up needs root (tmpfs, mknod, ...) */
};

struct bcase {
	const char *id;
	enum kind kind;
	const char *input; /* the table's "input" cell, verbatim */
	const char *cmd;   /* words; placeholders expanded (see expand) */
	int exit;
	const char *message; /* the first stderr line, or "(nothing)" */
	void (*setup)(void);
	void (*check)(void); /* exit 0: what the mount or the layer shows */
	unsigned flags;
	const char *skip; /* the bug that keeps the row from passing yet */
};

/* ---- placeholders --------------------------------------------------------- */
/* A word of a command, or a path in a message, stands for ROOT/<dir>. */
static const struct {
	const char *word, *dir;
} places[] = {
	{ "LOWER2", "lower2" }, { "LOWER", "lower" }, { "UPPER2", "upper2" },
	{ "UPPER", "upper" },   { "WORK2", "work2" }, { "WORK", "work" },
	{ "MNT2", "mnt2" },     { "MNT", "mnt" },     { "TAR", "archive" },
	{ "DIR", "layer" },     { "STORE", "store" }, { "TMPFS", "tmpfs" },
};

/* Set by a case's set-up: what X in its command stands for. */
static char *extra;
static const struct bcase *current;

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Replaces each placeholder (a whole word) in s by its path. */
static char *expand(const char *s)
{
	size_t cap = strlen(s) + 64 + (extra ? strlen(extra) : 0), len = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	for (size_t i = 0; s[i];) {
		const char *rep = NULL;
		size_t wlen = 0;

		if (!i || !word_char(s[i - 1])) {
			for (size_t k = 0; k < sizeof(places) / sizeof(*places);
			     k++) {
				size_t n = strlen(places[k].word);

				if (!strncmp(s + i, places[k].word, n) &&
				    !word_char(s[i + n])) {
					rep = h_path("%s", places[k].dir);
					wlen = n;
					break;
				}
			}
			if (!rep && !strncmp(s + i, "ROOT", 4) &&
			    !word_char(s[i + 4]))
				rep = h_path("."), wlen = 4;
			if (!rep && s[i] == 'X' && !word_char(s[i + 1]) && extra)
				rep = extra, wlen = 1;
		}
		if (rep) {
			size_t n = strlen(rep);

			if (!strcmp(rep + (n >= 2 ? n - 2 : 0), "/."))
				n -= 2; /* ROOT itself */
			while (len + n + 2 > cap)
				out = realloc(out, cap *= 2);
			memcpy(out + len, rep, n);
			len += n;
			i += wlen;
		} else {
			if (len + 2 > cap)
				out = realloc(out, cap *= 2);
			out[len++] = s[i++];
		}
	}
	out[len] = '\0';
	return out;
}

/* The other way: ROOT/<dir> in a message becomes its placeholder, any
 * other path under the root "ROOT/...". */
static char *placehold(const char *msg)
{
	char root[PATH_MAX];
	size_t rlen, len = 0;
	char *out = malloc(strlen(msg) + 1);

	assert_non_null(out);
	snprintf(root, sizeof(root), "%s", h_path("."));
	root[strlen(root) - 2] = '\0';
	rlen = strlen(root);
	for (const char *p = msg; *p;) {
		if (strncmp(p, root, rlen) || word_char(p[rlen]) ||
		    p[rlen] == '.' || p[rlen] == '-') {
			out[len++] = *p++;
			continue;
		}
		p += rlen;
		if (*p == '/') {
			size_t n = 0;
			const char *word = NULL;

			while (word_char(p[1 + n]) || p[1 + n] == '-' ||
			       p[1 + n] == '.')
				n++;
			for (size_t k = 0; k < sizeof(places) / sizeof(*places);
			     k++)
				if (strlen(places[k].dir) == n &&
				    !strncmp(p + 1, places[k].dir, n))
					word = places[k].word;
			if (word) {
				memcpy(out + len, word, strlen(word));
				len += strlen(word);
				p += 1 + n;
				continue;
			}
		}
		memcpy(out + len, "ROOT", 4); /* no longer than the root */
		len += 4;
	}
	out[len] = '\0';
	return out;
}

/* ---- what a case may not change ------------------------------------------ */

/* The mount points under the root, one string (from mountinfo). */
static char *mounts_under_root(void)
{
	char root[PATH_MAX], line[8192], *all = calloc(1, 1);
	size_t len = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	assert_non_null(f);
	snprintf(root, sizeof(root), "%s", h_path("."));
	root[strlen(root) - 1] = '\0'; /* "ROOT/" */
	while (fgets(line, sizeof(line), f)) {
		char mp[4096];

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
		    strncmp(mp, root, strlen(root)))
			continue;
		all = realloc(all, len + strlen(mp) + 2);
		len += (size_t)sprintf(all + len, "%s\n", mp);
	}
	fclose(f);
	return all;
}

/* Waits (bounded) until at most n of our children are alive. */
static int children_after_grace(int n)
{
	pid_t pids[16];
	int now = 0;

	for (int waited = 0; waited <= 2000; waited += 50) {
		now = h_children(pids, 16);
		if (now <= n)
			break;
		usleep(50 * 1000);
	}
	return now;
}

/* Names plyfs makes for itself in a workdir: not the user's data. */
static bool own_scratch(const char *path)
{
	static const char *const own[] = { ".plyfs.lock", "work", "index",
					   "plyfs-index" };

	for (const char *const *w = H_NAMES("work/", "work2/"); *w; w++) {
		size_t n = strlen(*w);

		if (strncmp(path, *w, n))
			continue;
		for (size_t k = 0; k < sizeof(own) / sizeof(*own); k++) {
			size_t m = strlen(own[k]);

			if (!strncmp(path + n, own[k], m) &&
			    (!path[n + m] || path[n + m] == '/'))
				return true;
		}
	}
	return false;
}

/* The tree of the root, without the archive's target, the volume store
 * and plyfs's own scratch in the workdirs. */
static void snapshot(struct h_tree *t)
{
	size_t k = 0;

	h_tree_walk(h_path("."), t);
	for (size_t i = 0; i < t->n; i++) {
		const char *p = t->v[i].path;

		if (!strcmp(p, "") || !strcmp(p, "layer") ||
		    !strncmp(p, "layer/", 6) || !strncmp(p, "store", 5) ||
		    own_scratch(p)) {
			free(t->v[i].path);
			free(t->v[i].link);
			continue;
		}
		t->v[k++] = t->v[i];
	}
	t->n = k;
}

/* ---- set-ups -------------------------------------------------------------- */

static void base(void)
{
	h_file("lower/f", "lower f");
	h_file("lower/d/g", "lower g");
	h_file("lower2/f", "lower2 f");
	h_file("lower2/h", "lower2 h");
	h_mkdir("upper");
	h_mkdir("work");
	h_mkdir("upper2");
	h_mkdir("work2");
	h_mkdir("mnt");
	h_mkdir("mnt2");
}

static void set_extra(const char *s)
{
	free(extra);
	extra = strdup(s);
	assert_non_null(extra);
}

static void su_many_layers(void)
{
	size_t cap = 16 + 501 * (strlen(h_path(".")) + 16), len = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	for (int i = 0; i < 501; i++) {
		h_mkdir(h_fmt("many/l%03d", i));
		len += (size_t)snprintf(s + len, cap - len, "%s%s",
					i ? ":" : "",
					h_path("many/l%03d", i));
	}
	set_extra(s);
	free(s);
}

static void su_mnt_in_layer(void)
{
	h_mkdir("lower/mnt");
}

static void su_layer_in_mnt(void)
{
	h_file("mnt/l/x", "x");
}

static void su_work_in_mnt(void)
{
	h_mkdir("mnt/w");
}

static void su_work_in_upper(void)
{
	h_mkdir("upper/w");
}

static void su_upper_in_work(void)
{
	h_mkdir("work/u");
}

static void su_work_tmpfs(void)
{
	h_tmpfs("tmpfs");
}

static void su_file_mnt(void)
{
	h_file("notdir", "x");
}

static void su_dead_mnt(void)
{
	struct h_mount *m = h_mount(h_fmt("lowerdir=%s", h_path("lower2")),
				    "mnt");

	h_crash(m);
}

static void su_busy_work(void)
{
	h_mount(h_fmt("lowerdir=%s,upperdir=%s,workdir=%s", h_path("lower2"),
		      h_path("upper2"), h_path("work")),
		"mnt2");
}

static void su_busy_upper(void)
{
	h_mount(h_fmt("lowerdir=%s,upperdir=%s,workdir=%s", h_path("lower2"),
		      h_path("upper"), h_path("work2")),
		"mnt2");
}

static void su_upper_is_lower(void)
{
	h_mount(h_fmt("lowerdir=%s:%s", h_path("upper"), h_path("lower2")),
		"mnt2");
}

static void su_symlink_root(void)
{
	h_symlink("lower", "link");
}

static void su_dangling_root(void)
{
	h_symlink("nowhere", "link");
}

static void su_unreadable(void)
{
	h_assert_ok(chmod(h_path("."), 0755));
	h_assert_ok(chmod(h_path("lower"), 0));
	h_assert_ok(chown(h_path("mnt"), NOBODY, NOBODY));
}

static void su_search_only(void)
{
	h_assert_ok(chmod(h_path("."), 0755));
	h_assert_ok(chmod(h_path("lower"), 0311));
	h_assert_ok(chown(h_path("mnt"), NOBODY, NOBODY));
}

static void su_wrong_whiteout(void)
{
	h_assert_ok(unlink(h_path("lower/f")));
	h_mknod("lower/f", S_IFCHR | 0644, makedev(0, 1));
	h_mknod("lower/null", S_IFCHR | 0644, makedev(1, 3));
}

static void ck_wrong_whiteout(void)
{
	struct stat st;

	/* only 0/0 is a whiteout: these are devices, and hide lower2/f */
	h_assert_ok(lstat(h_path("mnt/f"), &st));
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 1));
	h_assert_ok(lstat(h_path("mnt/null"), &st));
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	h_assert_content(h_path("mnt/h"), "lower2 h");
}

static void su_redirect_up(void)
{
	h_xattr("lower/d", "trusted.overlay.redirect", "../../../../etc");
}

static void ck_redirect(void)
{
	/* the redirect is ignored: d is the top layer's plain directory */
	h_assert_listing(h_path("mnt"), H_NAMES("f", "d", "h"));
	h_assert_listing(h_path("mnt/d"), H_NAMES("g"));
	h_assert_content(h_path("mnt/d/g"), "lower g");
}

static void su_redirect_long(void)
{
	char v[301];

	memset(v, 'x', 300);
	v[300] = '\0';
	h_xattr("lower/d", "trusted.overlay.redirect", v);
}

static void su_redirect_binary(void)
{
	static const char v[] = { 'a', '\n', '\x01', '\xff', 'b' };

	h_assert_ok(lsetxattr(h_path("lower/d"), "trusted.overlay.redirect",
			      v, sizeof(v), 0));
}

static void su_work_junk(void)
{
	h_file("work/junk/j", "j");
	h_file("work/work/notours", "n");
	h_file("work/work/#plyfs-00000000deadbeef", "ours");
	h_file("work/index/x", "kernel's index entry");
}

static void ck_work_junk(void)
{
	struct stat st;

	/* plyfs removes its own leftovers only */
	h_assert_content(h_path("work/junk/j"), "j");
	h_assert_content(h_path("work/work/notours"), "n");
	h_assert_content(h_path("work/index/x"), "kernel's index entry");
	h_assert_errno(lstat(h_path("work/work/#plyfs-00000000deadbeef"), &st),
		       ENOENT);
	h_assert_content(h_path("mnt/f"), "lower f");
}

static void su_volatile_left(void)
{
	h_mkdir("work/work/incompat/volatile");
}

static void ck_mounted(void)
{
	h_assert_content(h_path("mnt/f"), "lower f");
}

/* An option given twice: the last one wins. */
static void ck_lower2_only(void)
{
	h_assert_listing(h_path("mnt"), H_NAMES("f", "h"));
	h_assert_content(h_path("mnt/f"), "lower2 f");
}

static void su_two_uppers(void)
{
	h_file("upper/u1", "upper u1");
	h_file("upper2/u2", "upper2 u2");
}

static void ck_upper2(void)
{
	h_assert_listing(h_path("mnt"), H_NAMES("f", "d", "u2"));
	h_assert_content(h_path("mnt/u2"), "upper2 u2");
}

/* DIR as an upper layer: what the mount writes there is not compared */
static void su_upper_dir(void)
{
	h_mkdir("layer");
}

static void ck_file_whiteout(void)
{
	struct stat st;

	h_assert_ok(unlink(h_path("mnt/f")));
	h_assert_errno(lstat(h_path("mnt/f"), &st), ENOENT);
	/* whiteout=file, the last given, not xattr: an OCI ".wh.f" */
	h_assert_ok(lstat(h_path("layer/.wh.f"), &st));
	assert_true(S_ISREG(st.st_mode));
	h_assert_errno(lstat(h_path("layer/f"), &st), ENOENT);
}

static void su_store_file(void)
{
	h_file("store", "not a directory");
}

static void su_dest_symlink(void)
{
	h_symlink("/etc", "lower/s");
}

/* ---- archives ------------------------------------------------------------- */

static struct archive *tar_new(const char *filter)
{
	struct archive *a = archive_write_new();
	int r = ARCHIVE_OK;

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a),
			 ARCHIVE_OK);
	if (filter && !strcmp(filter, "gzip"))
		r = archive_write_add_filter_gzip(a);
	else if (filter && !strcmp(filter, "zstd"))
		r = archive_write_add_filter_zstd(a);
	if (r != ARCHIVE_OK) {
		print_message("libarchive cannot write %s: %s\n", filter,
			      archive_error_string(a));
		archive_write_free(a);
		skip();
	}
	if (archive_write_open_filename(a, h_path("archive")) != ARCHIVE_OK)
		fail_msg("archive: %s", archive_error_string(a));
	return a;
}

/* One entry: type AE_IF*, content (regular files), link: the symlink's or
 * the hard link's target. */
static void tar_add(struct archive *a, const char *name, mode_t type,
		    const char *content, const char *link)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
	archive_entry_set_mtime(e, 1600000000, 0);
	if (type == AE_IFLNK)
		archive_entry_set_symlink(e, link);
	else if (link)
		archive_entry_set_hardlink(e, link);
	if (type == AE_IFCHR)
		archive_entry_set_rdev(e, makedev(1, 3));
	archive_entry_set_size(e, content && !link ?
					  (la_int64_t)strlen(content) : 0);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		fail_msg("%s: %s", name, archive_error_string(a));
	if (content && !link)
		archive_write_data(a, content, strlen(content));
	archive_entry_free(e);
}

static void tar_close(struct archive *a)
{
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* Something outside the target that a hostile archive may aim at. */
static void outside(void)
{
	h_file("secret", "secret");
	h_mkdir("outside");
}

static void su_tar_dotdot(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "../evil", AE_IFREG, "x", NULL);
	tar_close(a);
}

static void su_tar_dotdot_mid(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "a/../../outside/evil", AE_IFREG, "x", NULL);
	tar_close(a);
}

static void su_tar_absolute(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, h_path("outside/evil"), AE_IFREG, "x", NULL);
	tar_close(a);
}

static void su_tar_symlink_rel(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "s", AE_IFLNK, NULL, "../outside");
	tar_add(a, "s/evil", AE_IFREG, "x", NULL);
	tar_close(a);
}

static void su_tar_symlink_abs(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "s", AE_IFLNK, NULL, h_path("outside"));
	tar_add(a, "s/evil", AE_IFREG, "x", NULL);
	tar_close(a);
}

static void ck_only_symlink(void)
{
	struct stat st;

	/* the link itself is data, kept as a link */
	h_assert_listing(h_path("layer"), H_NAMES("s"));
	h_assert_ok(lstat(h_path("layer/s"), &st));
	assert_true(S_ISLNK(st.st_mode));
	h_assert_listing(h_path("outside"), H_NONE);
}

static void su_tar_hardlink_out(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "h", AE_IFREG, NULL, "../secret");
	tar_close(a);
}

static void su_tar_hardlink_abs(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "h", AE_IFREG, NULL, h_path("secret"));
	tar_close(a);
}

static void su_tar_hardlink_symlink(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "s", AE_IFLNK, NULL, "..");
	tar_add(a, "h", AE_IFREG, NULL, "s/secret");
	tar_close(a);
}

static void su_tar_hardlink_forward(void)
{
	struct archive *a = tar_new(NULL);

	tar_add(a, "h", AE_IFREG, NULL, "later");
	tar_add(a, "later", AE_IFREG, "later", NULL);
	tar_close(a);
}

static void ck_later_only(void)
{
	h_assert_listing(h_path("layer"), H_NAMES("later"));
	h_assert_content(h_path("layer/later"), "later");
}

static void su_tar_device(void)
{
	struct archive *a = tar_new(NULL);

	tar_add(a, "null", AE_IFCHR, NULL, NULL);
	tar_add(a, "f", AE_IFREG, "f", NULL);
	tar_close(a);
	h_assert_ok(chmod(h_path("."), 0755));
	h_assert_ok(chmod(h_path("archive"), 0644));
	h_mkdir("layer");
	h_assert_ok(chown(h_path("layer"), NOBODY, NOBODY));
}

static void ck_device_skipped(void)
{
	h_assert_listing(h_path("layer"), H_NAMES("f"));
	h_assert_content(h_path("layer/f"), "f");
}

static void su_tar_long_name(void)
{
	struct archive *a = tar_new(NULL);
	char name[301];

	memset(name, 'n', 300);
	name[300] = '\0';
	tar_add(a, name, AE_IFREG, "x", NULL);
	tar_add(a, "ok", AE_IFREG, "ok", NULL);
	tar_close(a);
}

static void ck_ok_only(void)
{
	h_assert_listing(h_path("layer"), H_NAMES("ok"));
	h_assert_content(h_path("layer/ok"), "ok");
}

static void su_tar_truncated(void)
{
	struct archive *a = tar_new(NULL);
	char big[5001];

	memset(big, 'b', 5000);
	big[5000] = '\0';
	tar_add(a, "a", AE_IFREG, big, NULL);
	tar_close(a);
	h_assert_ok(truncate(h_path("archive"), 2048));
}

static void ck_truncated(void)
{
	struct stat st;

	/* no half-written file in the layer */
	h_assert_errno(lstat(h_path("layer/a"), &st), ENOENT);
}

static void su_not_tar(void)
{
	h_file("archive", "this is not an archive\n");
}

static void su_empty(void)
{
	h_file("archive", "");
}

static void su_tar_gzip(void)
{
	struct archive *a = tar_new("gzip");

	tar_add(a, "ok", AE_IFREG, "ok", NULL);
	tar_close(a);
}

static void su_tar_zstd(void)
{
	struct archive *a = tar_new("zstd");

	tar_add(a, "ok", AE_IFREG, "ok", NULL);
	tar_close(a);
}

static void su_tar_wh_dotdot(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, ".wh.a/..", AE_IFREG, "", NULL);
	tar_close(a);
}

static void su_tar_wh_of_dotdot(void)
{
	struct archive *a = tar_new(NULL);

	outside();
	tar_add(a, "d/", AE_IFDIR, NULL, NULL);
	tar_add(a, "d/.wh...", AE_IFREG, "", NULL);
	tar_close(a);
}

static void ck_plain_d(void)
{
	h_assert_listing(h_path("layer"), H_NAMES("d"));
	h_assert_listing(h_path("layer/d"), H_NONE);
}

static void su_tar_opaque_dir(void)
{
	struct archive *a = tar_new(NULL);

	tar_add(a, "d/", AE_IFDIR, NULL, NULL);
	tar_add(a, "d/.wh..wh..opq/", AE_IFDIR, NULL, NULL);
	tar_close(a);
}

static void su_tar_in_opaque(void)
{
	struct archive *a = tar_new(NULL);

	tar_add(a, "d/", AE_IFDIR, NULL, NULL);
	tar_add(a, "d/.wh..wh..opq/x", AE_IFREG, "x", NULL);
	tar_close(a);
}

static void su_tar_in_whiteout(void)
{
	struct archive *a = tar_new(NULL);

	tar_add(a, "d/", AE_IFDIR, NULL, NULL);
	tar_add(a, "d/.wh.x/y", AE_IFREG, "y", NULL);
	tar_close(a);
}

static void ck_opaque_d(void)
{
	char v[8];

	/* taken as the marker: d is opaque, holds nothing */
	h_assert_listing(h_path("layer"), H_NAMES("d"));
	h_assert_listing(h_path("layer/d"), H_NONE);
	assert_int_equal(lgetxattr(h_path("layer/d"), "trusted.overlay.opaque",
				   v, sizeof(v)),
			 1);
	assert_int_equal(v[0], 'y');
}

static void su_target_file(void)
{
	struct archive *a = tar_new(NULL);

	tar_add(a, "ok", AE_IFREG, "ok", NULL);
	tar_close(a);
	h_file("layer", "a file");
}

/* ---- the cases, in the order of the table --------------------------------- */

#define OK_MOUNT 0
static const struct bcase cases[] = {
	/* options */
	{ "opt-unknown", OPTION, "an unknown option",
	  "plyfs -o lowerdir=LOWER,bogus MNT", 2,
	  "plyfs: unknown option 'bogus'" },
	{ "opt-unknown-flag", OPTION, "an unknown command-line flag",
	  "plyfs -x -o lowerdir=LOWER MNT", 2, "plyfs: unknown flag '-x'" },
	{ "opt-o-no-list", OPTION, "`-o` without its list", "plyfs MNT -o", 2,
	  "plyfs: -o needs an option list" },
	{ "opt-no-mountpoint", OPTION, "no mountpoint",
	  "plyfs -o lowerdir=LOWER", 2,
	  "plyfs: no mountpoint given (see plyfs --help)" },
	{ "opt-extra-argument", OPTION, "a third argument",
	  "plyfs -o lowerdir=LOWER src MNT MNT2", 2,
	  "plyfs: unexpected argument 'MNT2'" },
	{ "opt-no-lowerdir", OPTION, "no `lowerdir=`",
	  "plyfs -o timeout=1 MNT", 2,
	  "plyfs: no lowerdir= given: need at least one layer" },
	{ "opt-empty-lowerdir", OPTION, "`lowerdir=` with nothing",
	  "plyfs -o lowerdir= MNT", 2,
	  "plyfs: lowerdir= needs at least one path" },
	{ "opt-empty-element", OPTION, "an empty element in `lowerdir=`",
	  "plyfs -o lowerdir=LOWER::LOWER2 MNT", 2,
	  "plyfs: lowerdir=LOWER::LOWER2 has an empty layer path" },
	{ "opt-trailing-colon", OPTION, "`lowerdir=` ending in `:`",
	  "plyfs -o lowerdir=LOWER: MNT", 2,
	  "plyfs: lowerdir=LOWER: has an empty layer path" },
	{ "opt-lower-missing", OPTION, "a lower layer that does not exist",
	  "plyfs -o lowerdir=LOWER:ROOT/nothere MNT", 2,
	  "plyfs: lowerdir ROOT/nothere: No such file or directory" },
	{ "opt-lower-file", OPTION, "a lower layer that is a file",
	  "plyfs -o lowerdir=LOWER:LOWER2/f MNT", 2,
	  "plyfs: lowerdir LOWER2/f is not a directory" },
	{ "opt-lower-twice", OPTION, "the same lower layer twice",
	  "plyfs -o lowerdir=LOWER:LOWER2:LOWER MNT", 2,
	  "plyfs: layer LOWER is given twice" },
	{ "opt-lower-respelled", OPTION,
	  "the same lower layer twice, spelled differently",
	  "plyfs -o lowerdir=LOWER:ROOT/lower2/../lower/. MNT", 2,
	  "plyfs: layer LOWER is given twice" },
	{ "opt-too-many-layers", OPTION, "501 lower layers",
	  "plyfs -o lowerdir=X MNT", 2,
	  "plyfs: too many layers: 501 given, at most 500", su_many_layers },
	{ "opt-upper-no-work", OPTION, "`upperdir=` without `workdir=`",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER MNT", 2,
	  "plyfs: upperdir= needs workdir= as well" },
	{ "opt-work-no-upper", OPTION, "`workdir=` without `upperdir=`",
	  "plyfs -o lowerdir=LOWER,workdir=WORK MNT", 2,
	  "plyfs: workdir= given without upperdir=" },
	{ "opt-upper-empty", OPTION, "`upperdir=` with nothing",
	  "plyfs -o lowerdir=LOWER,upperdir=,workdir=WORK MNT", 2,
	  "plyfs: upperdir= needs a path" },
	{ "opt-upper-missing", OPTION, "an upper layer that does not exist",
	  "plyfs -o lowerdir=LOWER,upperdir=ROOT/nothere,workdir=WORK MNT", 2,
	  "plyfs: upperdir ROOT/nothere: No such file or directory" },
	{ "opt-work-file", OPTION, "a workdir that is a file",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=LOWER/f MNT", 2,
	  "plyfs: workdir LOWER/f is not a directory" },
	{ "opt-work-in-upper", OPTION, "the workdir inside the upperdir",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=UPPER/w MNT", 2,
	  "plyfs: workdir UPPER/w and upperdir UPPER must not be inside each other",
	  su_work_in_upper },
	{ "opt-upper-in-work", OPTION, "the upperdir inside the workdir",
	  "plyfs -o lowerdir=LOWER,upperdir=WORK/u,workdir=WORK MNT", 2,
	  "plyfs: workdir WORK and upperdir WORK/u must not be inside each other",
	  su_upper_in_work },
	{ "opt-work-is-upper", OPTION, "the workdir is the upperdir",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=UPPER MNT", 2,
	  "plyfs: workdir UPPER is the upperdir" },
	{ "opt-work-other-fs", OPTION,
	  "the workdir on another filesystem than the upperdir (a tmpfs)",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=TMPFS MNT", 2,
	  "plyfs: workdir TMPFS and upperdir UPPER must be on the same filesystem",
	  su_work_tmpfs, NULL, NEED_ROOT },
	{ "opt-upper-is-lower", OPTION, "the upperdir is also a lower layer",
	  "plyfs -o lowerdir=LOWER:LOWER2,upperdir=LOWER2,workdir=WORK MNT", 2,
	  "plyfs: upperdir LOWER2 is also a lowerdir" },
	{ "opt-work-is-lower", OPTION, "the workdir is also a lower layer",
	  "plyfs -o lowerdir=LOWER:LOWER2,upperdir=UPPER,workdir=LOWER2 MNT", 2,
	  "plyfs: workdir LOWER2 is also a lowerdir" },
	{ "opt-mnt-in-layer", OPTION, "the mountpoint inside a layer",
	  "plyfs -o lowerdir=LOWER:LOWER2 LOWER/mnt", 2,
	  "plyfs: mountpoint LOWER/mnt lies inside layer LOWER",
	  su_mnt_in_layer },
	{ "opt-layer-in-mnt", OPTION, "a layer inside the mountpoint",
	  "plyfs -o lowerdir=LOWER:MNT/l MNT", 2,
	  "plyfs: layer MNT/l lies inside mountpoint MNT", su_layer_in_mnt },
	{ "opt-work-in-mnt", OPTION, "the workdir inside the mountpoint",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=MNT/w MNT", 2,
	  "plyfs: workdir MNT/w lies inside mountpoint MNT",
	  su_work_in_mnt },
	{ "opt-mnt-relative", OPTION,
	  "a relative mountpoint: taken from the current directory (mounts)",
	  "plyfs -o lowerdir=LOWER mnt", OK_MOUNT, "(nothing)", NULL,
	  ck_mounted },
	{ "opt-mnt-missing", OPTION, "a mountpoint that does not exist",
	  "plyfs -o lowerdir=LOWER ROOT/nothere", 2,
	  "plyfs: mountpoint ROOT/nothere: No such file or directory" },
	{ "opt-mnt-file", OPTION, "a mountpoint that is a file",
	  "plyfs -o lowerdir=LOWER ROOT/notdir", 2,
	  "plyfs: mountpoint ROOT/notdir is not a directory", su_file_mnt },
	{ "opt-mnt-dead", OPTION,
	  "a dead mountpoint (its daemon was killed: ENOTCONN)",
	  "plyfs -o lowerdir=LOWER MNT", 2,
	  "plyfs: mountpoint MNT: transport endpoint is not connected (a crashed mount: run fusermount3 -u MNT first)",
	  su_dead_mnt },
	{ "opt-uidmap-syntax", OPTION, "`uidmapping=` with two fields",
	  "plyfs -o lowerdir=LOWER,uidmapping=0:0 MNT", 2,
	  "plyfs: uidmapping=0:0: expected CONTAINER:HOST:SIZE ranges joined by ':'" },
	{ "opt-uidmap-letters", OPTION, "`uidmapping=` with a letter",
	  "plyfs -o lowerdir=LOWER,uidmapping=a:0:1 MNT", 2,
	  "plyfs: uidmapping=a:0:1: expected CONTAINER:HOST:SIZE ranges joined by ':'" },
	{ "opt-uidmap-too-big", OPTION, "`uidmapping=` with a size past 2^32-1",
	  "plyfs -o lowerdir=LOWER,uidmapping=0:0:4294967296 MNT", 2,
	  "plyfs: uidmapping=0:0:4294967296: a number past 4294967295" },
	{ "opt-uidmap-overlap", OPTION, "`uidmapping=` with overlapping ranges",
	  "plyfs -o lowerdir=LOWER,uidmapping=0:0:10:5:100:10 MNT", 2,
	  "plyfs: uidmapping=0:0:10:5:100:10: ranges overlap" },
	{ "opt-uidmap-wrap", OPTION, "`uidmapping=` with a range past 2^32-1",
	  "plyfs -o lowerdir=LOWER,uidmapping=4294967295:0:10 MNT", 2,
	  "plyfs: uidmapping=4294967295:0:10: a range past 4294967295" },
	{ "opt-gidmap-empty-range", OPTION, "`gidmapping=` with a size of 0",
	  "plyfs -o lowerdir=LOWER,gidmapping=0:0:0 MNT", 2,
	  "plyfs: gidmapping=0:0:0: a range of size 0" },
	{ "opt-bind-no-dest", OPTION, "`bind=` without DEST",
	  "plyfs -o lowerdir=LOWER,bind=LOWER2 MNT", 2,
	  "plyfs: bind=LOWER2: expected SRC:DEST[:ro]" },
	{ "opt-bind-missing", OPTION, "`bind=` of a missing source",
	  "plyfs -o lowerdir=LOWER,bind=ROOT/nothere:/x MNT", 2,
	  "plyfs: bind source ROOT/nothere: No such file or directory" },
	{ "opt-bind-flag", OPTION, "`bind=` with an unknown flag",
	  "plyfs -o lowerdir=LOWER,bind=LOWER2:/x:rx MNT", 2,
	  "plyfs: bind=LOWER2:/x:rx: unknown flag 'rx'" },
	{ "opt-bind-root", OPTION, "`bind=` at `/`",
	  "plyfs -o lowerdir=LOWER,bind=LOWER2:/ MNT", 2,
	  "plyfs: splice destination '/' is the root: mount the source instead" },
	{ "opt-bind-dotdot", OPTION, "`bind=` at a DEST with `..`",
	  "plyfs -o lowerdir=LOWER,bind=LOWER2:/a/../x MNT", 2,
	  "plyfs: splice destination /a/../x: '.' and '..' are not allowed" },
	{ "opt-bind-through-file", OPTION,
	  "`bind=` at a DEST below a file of the layers",
	  "plyfs -o lowerdir=LOWER,bind=LOWER2:/f/x MNT", 2,
	  "plyfs: splice destination crosses the non-directory 'f' in the layers" },
	{ "opt-bind-through-symlink", OPTION,
	  "`bind=` at a DEST below a symlink of the layers",
	  "plyfs -o lowerdir=LOWER,bind=LOWER2:/s/x MNT", 2,
	  "plyfs: splice destination crosses the symlink 's' in the layers",
	  su_dest_symlink },
	{ "opt-bind-twice", OPTION, "two splices at one DEST",
	  "plyfs -o lowerdir=LOWER,bind=LOWER2:/x,bind=UPPER:/x MNT", 2,
	  "plyfs: splice destination /x is given twice" },
	{ "opt-volume-name", OPTION, "`volume=` with a bad name",
	  "plyfs -o lowerdir=LOWER,volstore=STORE,volume=a/b:/x MNT", 2,
	  "plyfs: invalid volume name 'a/b': use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 128 bytes" },
	{ "opt-volume-dash", OPTION, "`volume=` with a name starting with `-`",
	  "plyfs -o lowerdir=LOWER,volstore=STORE,volume=-v:/x MNT", 2,
	  "plyfs: invalid volume name '-v': use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 128 bytes" },
	{ "opt-volume-no-dest", OPTION, "`volume=` without DEST",
	  "plyfs -o lowerdir=LOWER,volstore=STORE,volume=v MNT", 2,
	  "plyfs: volume=v: expected NAME:DEST[:ro][:nocopy]" },
	{ "opt-volume-flag", OPTION, "`volume=` with an unknown flag",
	  "plyfs -o lowerdir=LOWER,volstore=STORE,volume=v:/x:nocopy:zz MNT", 2,
	  "plyfs: volume=v:/x:nocopy:zz: unknown flag 'zz'" },
	{ "opt-volstore-file", OPTION, "`volstore=` that is a file",
	  "plyfs -o lowerdir=LOWER,volstore=STORE,volume=v:/x MNT", 2,
	  "plyfs: volume store STORE: Not a directory", su_store_file },
	{ "opt-volstore-empty", OPTION, "`volstore=` with nothing",
	  "plyfs -o lowerdir=LOWER,volstore= MNT", 2,
	  "plyfs: volstore= needs a path" },
	{ "opt-xattr-permissions", OPTION, "`xattr_permissions=3`",
	  "plyfs -o lowerdir=LOWER,xattr_permissions=3 MNT", 2,
	  "plyfs: xattr_permissions=3: expected 0, 1 or 2" },
	{ "opt-whiteout", OPTION, "`whiteout=foo`",
	  "plyfs -o lowerdir=LOWER,whiteout=foo MNT", 2,
	  "plyfs: whiteout=foo: expected auto, chardev, xattr or file" },
	{ "opt-whiteout-novalue", OPTION, "`whiteout` without a value",
	  "plyfs -o lowerdir=LOWER,whiteout MNT", 2,
	  "plyfs: whiteout=: expected auto, chardev, xattr or file" },
	{ "opt-redirect-dir", OPTION, "`redirect_dir=maybe`",
	  "plyfs -o lowerdir=LOWER,redirect_dir=maybe MNT", 2,
	  "plyfs: redirect_dir=maybe: invalid value for option redirect_dir" },
	{ "opt-metacopy", OPTION, "`metacopy=yes`",
	  "plyfs -o lowerdir=LOWER,metacopy=yes MNT", 2,
	  "plyfs: metacopy=yes: invalid value for option metacopy" },
	{ "opt-index", OPTION, "`index=1`", "plyfs -o lowerdir=LOWER,index=1 MNT",
	  2, "plyfs: index=1: invalid value for option index" },
	{ "opt-xino", OPTION, "`xino=x`", "plyfs -o lowerdir=LOWER,xino=x MNT", 2,
	  "plyfs: xino=x: invalid value for option xino" },
	{ "opt-userxattr", OPTION, "`userxattr=1`",
	  "plyfs -o lowerdir=LOWER,userxattr=1 MNT", 2,
	  "plyfs: userxattr takes no value" },
	{ "opt-noxattrs", OPTION, "`noxattrs=3`",
	  "plyfs -o lowerdir=LOWER,noxattrs=3 MNT", 2,
	  "plyfs: noxattrs=3: invalid value for option noxattrs" },
	{ "opt-plugins", OPTION, "`plugins=` with nothing",
	  "plyfs -o lowerdir=LOWER,plugins= MNT", 2,
	  "plyfs: plugins= needs a value" },
	{ "opt-fast-ino", OPTION, "`fast_ino=2`",
	  "plyfs -o lowerdir=LOWER,fast_ino=2 MNT", 2,
	  "plyfs: fast_ino=2: invalid value for option fast_ino" },
	{ "opt-writeback", OPTION, "`writeback=yes`",
	  "plyfs -o lowerdir=LOWER,writeback=yes MNT", 2,
	  "plyfs: writeback=yes: expected 0 or 1" },
	{ "opt-max-idle-threads", OPTION, "`max_idle_threads=-1`",
	  "plyfs -o lowerdir=LOWER,max_idle_threads=-1 MNT", 2,
	  "plyfs: max_idle_threads=-1: invalid value for option max_idle_threads" },
	{ "opt-fsync", OPTION, "`fsync=2`", "plyfs -o lowerdir=LOWER,fsync=2 MNT",
	  2, "plyfs: fsync=2: expected 0 or 1" },
	{ "opt-timeout", OPTION, "`timeout=-1`",
	  "plyfs -o lowerdir=LOWER,timeout=-1 MNT", 2,
	  "plyfs: timeout=-1: expected seconds, e.g. timeout=3600" },
	{ "opt-timeout-nan", OPTION, "`timeout=nan`",
	  "plyfs -o lowerdir=LOWER,timeout=nan MNT", 2,
	  "plyfs: timeout=nan: expected seconds, e.g. timeout=3600" },
	{ "opt-threaded", OPTION, "`threaded=2`",
	  "plyfs -o lowerdir=LOWER,threaded=2 MNT", 2,
	  "plyfs: threaded=2: expected 0 or 1" },
	{ "opt-squash-uid", OPTION, "`squash_to_uid=-1`",
	  "plyfs -o lowerdir=LOWER,squash_to_uid=-1 MNT", 2,
	  "plyfs: squash_to_uid=-1: expected a numeric id" },
	{ "opt-squash-gid", OPTION, "`squash_to_gid=4294967295` (the invalid id)",
	  "plyfs -o lowerdir=LOWER,squash_to_gid=4294967295 MNT", 2,
	  "plyfs: squash_to_gid=4294967295: expected a numeric id" },
	{ "opt-squash-root-value", OPTION, "`squash_to_root=1`",
	  "plyfs -o lowerdir=LOWER,squash_to_root=1 MNT", 2,
	  "plyfs: squash_to_root takes no value" },
	{ "opt-noacl-value", OPTION, "`noacl=1`",
	  "plyfs -o lowerdir=LOWER,noacl=1 MNT", 2,
	  "plyfs: noacl takes no value" },
	{ "opt-volatile-value", OPTION, "`volatile=1`",
	  "plyfs -o lowerdir=LOWER,volatile=1 MNT", 2,
	  "plyfs: volatile takes no value" },
	{ "opt-static-nlink-value", OPTION, "`static_nlink=1`",
	  "plyfs -o lowerdir=LOWER,static_nlink=1 MNT", 2,
	  "plyfs: static_nlink takes no value" },
	{ "opt-lowerdir-plus-empty", OPTION, "`lowerdir+=` with nothing",
	  "plyfs -o lowerdir=LOWER,lowerdir+= MNT", 2,
	  "plyfs: lowerdir+= needs a path" },
	{ "opt-fuse-flag-value", OPTION, "`allow_other=1`",
	  "plyfs -o lowerdir=LOWER,allow_other=1 MNT", 2,
	  "plyfs: allow_other takes no value" },
	{ "opt-fsname-empty", OPTION, "`fsname=` with nothing",
	  "plyfs -o lowerdir=LOWER,fsname= MNT", 2,
	  "plyfs: fsname= needs a value" },
	{ "opt-lowerdir-twice", OPTION,
	  "`lowerdir=` given twice: the last list wins, as in the kernel's overlayfs (mounts LOWER2 alone; `lowerdir+=` adds a layer)",
	  "plyfs -o lowerdir=LOWER,lowerdir=LOWER2 MNT", OK_MOUNT, "(nothing)",
	  NULL, ck_lower2_only },
	{ "opt-upperdir-twice", OPTION,
	  "`upperdir=` given twice, differently: the last one wins, as in the kernel's overlayfs (mounts over UPPER2)",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=WORK,upperdir=UPPER2 MNT",
	  OK_MOUNT, "(nothing)", su_two_uppers, ck_upper2 },
	{ "opt-whiteout-twice", OPTION,
	  "`whiteout=` given twice, differently: the last one wins, as for every option (a removal writes `.wh.f` in DIR, the upper)",
	  "plyfs -o lowerdir=LOWER,upperdir=DIR,workdir=WORK,whiteout=xattr,whiteout=file MNT",
	  OK_MOUNT, "(nothing)", su_upper_dir, ck_file_whiteout },

	/* layers */
	{ "layer-symlink-root", LAYER,
	  "a layer given as a symlink to a directory: followed (runtimes pass `l/<id>` links; nothing inside a layer is followed)",
	  "plyfs -o lowerdir=ROOT/link:LOWER2 MNT", OK_MOUNT, "(nothing)",
	  su_symlink_root, ck_mounted },
	{ "layer-dangling-symlink", LAYER, "a layer given as a dangling symlink",
	  "plyfs -o lowerdir=ROOT/link MNT", 2,
	  "plyfs: lowerdir ROOT/link: No such file or directory",
	  su_dangling_root },
	{ "layer-unreadable", LAYER,
	  "a lower layer of mode 000, mounted by a user (uid 65534)",
	  "plyfs -o lowerdir=LOWER:LOWER2 MNT", 2,
	  "plyfs: lowerdir LOWER: cannot read it: Permission denied",
	  su_unreadable, NULL, AS_NOBODY | NEED_ROOT },
	{ "layer-search-only", LAYER,
	  "a lower layer of mode 0311 (search, no read), mounted by a user",
	  "plyfs -o lowerdir=LOWER:LOWER2 MNT", 2,
	  "plyfs: lowerdir LOWER: cannot read it: Permission denied",
	  su_search_only, NULL, AS_NOBODY | NEED_ROOT },
	{ "layer-upper-busy", LAYER, "an upperdir another mount is using",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=WORK MNT", 2,
	  "plyfs: upperdir UPPER is in use by another mount", su_busy_upper },
	{ "layer-work-busy", LAYER,
	  "a workdir another mount is using (its lock is held)",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=WORK MNT", 2,
	  "plyfs: workdir WORK is in use by another mount", su_busy_work },
	{ "layer-upper-is-lower-elsewhere", LAYER,
	  "an upperdir that is a lower layer of another running mount",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=WORK MNT", 2,
	  "plyfs: upperdir UPPER is a lower layer of another mount",
	  su_upper_is_lower },
	{ "layer-lower-is-upper-elsewhere", LAYER,
	  "a lower layer that is the upperdir of another running mount",
	  "plyfs -o lowerdir=UPPER MNT", 2,
	  "plyfs: lowerdir UPPER is the upperdir of another mount",
	  su_busy_upper },
	{ "layer-volatile-left", LAYER,
	  "a workdir left by a volatile mount that did not stop cleanly",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=WORK MNT", 2,
	  "plyfs: a volatile mount of UPPER was not stopped cleanly: the upper may have lost writes; start from a fresh upper and workdir (or remove WORK/work/incompat/volatile to use it anyway)",
	  su_volatile_left },
	{ "layer-work-junk", LAYER,
	  "a workdir holding files that are not plyfs's: mounts, keeps them, removes only its own `#plyfs-*` leftovers",
	  "plyfs -o lowerdir=LOWER,upperdir=UPPER,workdir=WORK MNT", OK_MOUNT,
	  "(nothing)", su_work_junk, ck_work_junk },
	{ "layer-whiteout-wrong-dev", LAYER,
	  "character devices 0/1 and 1/3 in a layer: not whiteouts (only 0/0 is); shown as devices, hiding the name below",
	  "plyfs -o lowerdir=LOWER:LOWER2 MNT", OK_MOUNT, "(nothing)",
	  su_wrong_whiteout, ck_wrong_whiteout, NEED_ROOT },
	{ "layer-redirect-escape", LAYER,
	  "a directory whose `overlay.redirect` is `../../../../etc`: ignored, the directory shows its own content",
	  "plyfs -o lowerdir=LOWER:LOWER2 MNT", OK_MOUNT, "(nothing)",
	  su_redirect_up, ck_redirect, NEED_ROOT },
	{ "layer-redirect-binary", LAYER,
	  "a directory whose `overlay.redirect` is binary garbage: ignored",
	  "plyfs -o lowerdir=LOWER:LOWER2 MNT", OK_MOUNT, "(nothing)",
	  su_redirect_binary, ck_redirect, NEED_ROOT },
	{ "layer-redirect-long", LAYER,
	  "a directory whose `overlay.redirect` is a 300-byte name: ignored",
	  "plyfs -o lowerdir=LOWER:LOWER2 MNT", OK_MOUNT, "(nothing)",
	  su_redirect_long, ck_redirect, NEED_ROOT },

	/* archives */
	{ "tar-dotdot", ARCHIVE, "an entry `../evil`", "plyctl import TAR DIR",
	  1, "plyctl import: refused '../evil': '..' component", su_tar_dotdot },
	{ "tar-dotdot-inside", ARCHIVE, "an entry `a/../../outside/evil`",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'a/../../outside/evil': '..' component",
	  su_tar_dotdot_mid },
	{ "tar-absolute", ARCHIVE, "an entry with an absolute name",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'ROOT/outside/evil': absolute path",
	  su_tar_absolute },
	{ "tar-symlink-relative", ARCHIVE,
	  "a symlink `s` -> `../outside`, then a file `s/evil` (the link is kept)",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 's/evil': its path crosses the symlink s",
	  su_tar_symlink_rel, ck_only_symlink },
	{ "tar-symlink-absolute", ARCHIVE,
	  "a symlink `s` -> an absolute directory outside, then a file `s/evil`",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 's/evil': its path crosses the symlink s",
	  su_tar_symlink_abs, ck_only_symlink },
	{ "tar-hardlink-dotdot", ARCHIVE, "a hard link to `../secret`",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'h': hard link to '../secret': '..' component",
	  su_tar_hardlink_out },
	{ "tar-hardlink-absolute", ARCHIVE,
	  "a hard link to an absolute path outside",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'h': hard link to 'ROOT/secret': absolute path",
	  su_tar_hardlink_abs },
	{ "tar-hardlink-symlink", ARCHIVE,
	  "a symlink `s` -> `..`, then a hard link to `s/secret`",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'h': hard link to 's/secret': its path crosses the symlink s",
	  su_tar_hardlink_symlink },
	{ "tar-hardlink-forward", ARCHIVE,
	  "a hard link to a name that comes later in the archive",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'h': hard link to 'later': no such entry before it",
	  su_tar_hardlink_forward, ck_later_only },
	{ "tar-device-unprivileged", ARCHIVE,
	  "a device node, imported by a user (uid 65534): skipped with a warning",
	  "plyctl import TAR DIR", 0,
	  "plyctl import: warning: 'null': device node skipped: unprivileged",
	  su_tar_device, ck_device_skipped, AS_NOBODY | NEED_ROOT },
	{ "tar-long-name", ARCHIVE, "a 300-byte name (the rest is imported)",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'NAME300': a name longer than NAME_MAX",
	  su_tar_long_name, ck_ok_only },
	{ "tar-truncated", ARCHIVE,
	  "an archive cut in the middle of a file's data",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: TAR: truncated archive: 'a' is cut short and left out",
	  su_tar_truncated, ck_truncated },
	{ "tar-not-a-tar", ARCHIVE, "a text file", "plyctl import TAR DIR", 2,
	  "plyctl import: TAR: Unrecognized archive format", su_not_tar },
	{ "tar-empty", ARCHIVE, "an empty file", "plyctl import TAR DIR", 2,
	  "plyctl import: TAR: Unrecognized archive format", su_empty },
	{ "tar-missing", ARCHIVE, "an archive that does not exist",
	  "plyctl import ROOT/nothere DIR", 2,
	  "plyctl import: ROOT/nothere: Failed to open 'ROOT/nothere'" },
	{ "tar-target-file", ARCHIVE, "a target DIR that is a file",
	  "plyctl import TAR DIR", 2, "plyctl import: DIR: Not a directory",
	  su_target_file },
	{ "tar-gzip", ARCHIVE, "a gzip-compressed tar: imported",
	  "plyctl import TAR DIR", 0, "(nothing)", su_tar_gzip, ck_ok_only },
	{ "tar-zstd", ARCHIVE, "a zstd-compressed tar: imported",
	  "plyctl import TAR DIR", 0, "(nothing)", su_tar_zstd, ck_ok_only },
	{ "tar-whiteout-dotdot", ARCHIVE, "a whiteout entry `.wh.a/..`",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused '.wh.a/..': '..' component", su_tar_wh_dotdot },
	{ "tar-whiteout-of-dotdot", ARCHIVE,
	  "a whiteout of `..` (`d/.wh...`): dropped, as other `.wh..` metadata",
	  "plyctl import TAR DIR", 0, "(nothing)", su_tar_wh_of_dotdot,
	  ck_plain_d },
	{ "tar-opaque-as-dir", ARCHIVE,
	  "the opaque marker as a directory entry `d/.wh..wh..opq/`: taken as the marker (d opaque)",
	  "plyctl import TAR DIR", 0, "(nothing)", su_tar_opaque_dir,
	  ck_opaque_d, NEED_ROOT },
	{ "tar-inside-opaque", ARCHIVE,
	  "a file inside the opaque marker, `d/.wh..wh..opq/x`",
	  "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'd/.wh..wh..opq/x': its path crosses the marker d/.wh..wh..opq",
	  su_tar_in_opaque, ck_plain_d },
	{ "tar-inside-whiteout", ARCHIVE,
	  "a file inside a whiteout, `d/.wh.x/y`", "plyctl import TAR DIR", 1,
	  "plyctl import: refused 'd/.wh.x/y': its path crosses the marker d/.wh.x",
	  su_tar_in_whiteout, ck_plain_d },
};
#define NCASES (sizeof(cases) / sizeof(*cases))

/* ---- the table in the docs ------------------------------------------------ */

struct row {
	char *id, *input, *exit, *message;
};
static struct row *rows;
static size_t nrows;

static char *trim(char *s)
{
	char *e;

	while (*s == ' ')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* "`x`" -> "x" */
static char *unquote(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '`' && s[n - 1] == '`') {
		s[n - 1] = '\0';
		return s + 1;
	}
	return s;
}

static const char *read_table(void)
{
	const char *doc = getenv("PLY_BADINPUT_DOC");
	char line[4096];
	bool in = false;
	FILE *f;

	if (!doc)
		return "$PLY_BADINPUT_DOC is not set";
	f = fopen(doc, "re");
	if (!f)
		return "cannot open $PLY_BADINPUT_DOC";
	while (fgets(line, sizeof(line), f)) {
		char *cells[6], *p = line;
		int n = 0;

		if (!strncmp(line, "## ", 3)) {
			in = !strcmp(trim(line + 3),
				     "Bad input, and the error plyfs gives");
			continue;
		}
		if (!in || strncmp(line, "| ", 2))
			continue;
		/* cells split at " | " (no cell holds one) */
		p += 2;
		while (n < 6) {
			char *bar = strstr(p, " |");

			if (!bar)
				break;
			*bar = '\0';
			cells[n++] = trim(p);
			p = bar + 2;
		}
		if (n != 4 || !strcmp(cells[0], "id") || cells[0][0] == '-')
			continue;
		rows = realloc(rows, (nrows + 1) * sizeof(*rows));
		rows[nrows].id = strdup(unquote(cells[0]));
		rows[nrows].input = strdup(cells[1]);
		rows[nrows].exit = strdup(cells[2]);
		rows[nrows].message = strdup(unquote(cells[3]));
		nrows++;
	}
	fclose(f);
	return nrows ? NULL : "no table rows under \"## Bad input, and the error plyfs gives\"";
}

static const struct row *find_row(const char *id)
{
	for (size_t i = 0; i < nrows; i++)
		if (!strcmp(rows[i].id, id))
			return &rows[i];
	return NULL;
}

/* Every row has a case and every case its row, alike. */
static void table_matches_cases(void **state)
{
	const char *why = read_table();
	unsigned bad = 0;

	(void)state;
	if (why)
		fail_msg("%s", why);
	for (size_t i = 0; i < nrows; i++) {
		bool found = false;

		for (size_t k = 0; k < NCASES; k++)
			found = found || !strcmp(cases[k].id, rows[i].id);
		if (!found) {
			print_error("row %s: no such case in %s\n", rows[i].id,
				    __FILE__);
			bad++;
		}
		for (size_t k = 0; k < i; k++)
			if (!strcmp(rows[k].id, rows[i].id)) {
				print_error("row %s: twice\n", rows[i].id);
				bad++;
			}
	}
	for (size_t k = 0; k < NCASES; k++) {
		const struct bcase *c = &cases[k];
		const struct row *r = find_row(c->id);
		char exit[16];

		snprintf(exit, sizeof(exit), "%d", c->exit);
		if (!r) {
			print_error("case %s: no row in the docs\n", c->id);
			bad++;
			continue;
		}
		if (strcmp(r->input, c->input) || strcmp(r->exit, exit) ||
		    strcmp(r->message, c->message)) {
			print_error("case %s differs from its row:\n"
				    "  docs: %s | %s | %s\n"
				    "  test: %s | %s | %s\n",
				    c->id, r->input, r->exit, r->message,
				    c->input, exit, c->message);
			bad++;
		}
	}
	if (bad)
		fail_msg("%u differences between the table and the cases",
			 bad);
}

/* ---- running a case ------------------------------------------------------- */

static int bi_setup(void **state)
{
	current = *state;
	return h_setup(state);
}

static int bi_teardown(void **state)
{
	free(extra);
	extra = NULL;
	return h_teardown(state);
}

/* Splits the expanded command into argv (blank-separated words). */
static int make_argv(const struct bcase *c, char *cmd, const char **argv,
		     int max)
{
	int n = 0;

	if (c->flags & AS_NOBODY) {
		argv[n++] = SETPRIV;
		argv[n++] = "--reuid=65534";
		argv[n++] = "--regid=65534";
		argv[n++] = "--clear-groups";
	}
	for (char *save = NULL, *w = strtok_r(cmd, " ", &save);
	     w && n < max - 1; w = strtok_r(NULL, " ", &save)) {
		if (!strcmp(w, "plyfs"))
			w = (char *)h_plyfs();
		else if (!strcmp(w, "plyctl"))
			w = getenv("PLYCTL");
		assert_non_null(w);
		argv[n++] = w;
	}
	argv[n] = NULL;
	return n;
}

/* stderr with the 300-byte name of tar-long-name shortened, the paths
 * placeheld. */
static char *normalize(const char *err)
{
	char *s = placehold(err);
	char *n = strstr(s, "nnnnnnnnnnnnnnnnnnnn");

	if (n) {
		size_t len = strspn(n, "n");

		if (len == 300) {
			memcpy(n, "NAME300", 7);
			memmove(n + 7, n + 300, strlen(n + 300) + 1);
		}
	}
	return s;
}

static void run_case(void **state)
{
	const struct bcase *c = current;
	struct h_tree before, after;
	char *mounts_before, *mounts_after, *cmd, *err, *first, *nl;
	const char *argv[24];
	int nbefore, code;
	pid_t pids[16];
	bool mounted;
	struct h_run run;
	struct h_mount *m = NULL;

	(void)state;
	if ((c->flags & NEED_ROOT) && !h_is_root()) {
		print_message("%s: needs root\n", c->id);
		skip();
	}
	if ((c->flags & AS_NOBODY) && access(SETPRIV, X_OK) < 0) {
		print_message("%s: needs %s\n", c->id, SETPRIV);
		skip();
	}
	base();
	if (c->setup)
		c->setup();
	snapshot(&before);
	mounts_before = mounts_under_root();
	nbefore = h_children(pids, 16);

	cmd = expand(c->cmd);
	make_argv(c, cmd, argv, 24);
	h_run(argv, h_path("."), NULL, &run);
	mounted = c->kind != ARCHIVE && h_is_mountpoint(h_path("mnt")) &&
		  !strstr(mounts_before, "/mnt\n");
	if (mounted)
		m = h_adopt(h_path("mnt"));
	code = WIFEXITED(run.status) ? WEXITSTATUS(run.status) :
				       128 + WTERMSIG(run.status);
	err = normalize(run.err);
	nl = strchr(err, '\n');
	first = strndup(err, nl ? (size_t)(nl - err) : strlen(err));
	if (!*first) {
		free(first);
		first = strdup("(nothing)");
	}
	if (getenv("PLY_BADINPUT_PRINT"))
		print_message("| `%s` | %s | %d | %s%s%s |\n", c->id, c->input,
			      code, strcmp(first, "(nothing)") ? "`" : "",
			      first, strcmp(first, "(nothing)") ? "`" : "");
	print_message("%s: %s -> exit %d\n%s", c->id, c->cmd, code, run.err);

	if (c->skip) {
		/* run, so the log shows what it does now; never fails */
		print_message("%s: SKIPPED until fixed: %s\n", c->id, c->skip);
		if (code == c->exit && !strcmp(first, c->message))
			print_message("%s: exit and message now as documented%s\n",
				      c->id,
				      c->check ? " (what the mount or layer "
						 "shows is not checked here)" :
						 ": remove the skip");
		goto out_skip;
	}
	if (code != c->exit)
		fail_msg("%s: exit %d, documented %d", c->id, code, c->exit);
	if (strcmp(first, c->message))
		fail_msg("%s: stderr says\n  %s\ndocumented\n  %s", c->id,
			 first, c->message);
	/* the documented line is all there is, but for import's count of
	 * refused entries after a refusal */
	if (nl && nl[1]) {
		const char *rest = nl + 1;

		if (c->kind == ARCHIVE && c->exit == 1 &&
		    !strcmp(rest, "plyctl import: 1 entry refused\n"))
			;
		else
			fail_msg("%s: more on stderr after the first line:\n%s",
				 c->id, rest);
	} else if (!nl && *err) {
		fail_msg("%s: stderr does not end in a newline", c->id);
	}
	if (c->kind != ARCHIVE && c->exit == 0 && !mounted)
		fail_msg("%s: exit 0 but nothing mounted", c->id);
	if (c->kind != ARCHIVE && c->exit != 0 && mounted)
		fail_msg("%s: refused, yet mounted", c->id);
	if (c->check)
		c->check();
out_skip:
	if (m)
		h_umount(m);
	/* nothing mounted, no daemon left, nothing changed */
	mounts_after = mounts_under_root();
	if (strcmp(mounts_before, mounts_after))
		fail_msg("%s: mounts before:\n%safter:\n%s", c->id,
			 mounts_before, mounts_after);
	if (children_after_grace(nbefore) > nbefore)
		fail_msg("%s: a process of ours is still running", c->id);
	snapshot(&after);
	h_tree_assert_equal(&before, &after, H_CMP_ALL | H_CMP_MTIME,
			    "the layers (and all but the target), before and after");
	h_tree_free(&before);
	h_tree_free(&after);
	free(mounts_before);
	free(mounts_after);
	free(first);
	free(err);
	free(cmd);
	h_run_free(&run);
	if (c->skip)
		skip();
}

int main(void)
{
	struct CMUnitTest tests[NCASES + 1];
	const char *filter = getenv("PLY_TEST");

	if (getenv("PLY_BADINPUT_TABLE")) {
		/* the table's rows, to paste into the docs */
		for (size_t i = 0; i < NCASES; i++) {
			const struct bcase *c = &cases[i];
			bool q = strcmp(c->message, "(nothing)") != 0;

			printf("| `%s` | %s | %d | %s%s%s |\n", c->id, c->input,
			       c->exit, q ? "`" : "", c->message, q ? "`" : "");
		}
		return 0;
	}
	tests[0] = (struct CMUnitTest){ "table_matches_cases",
					table_matches_cases, NULL, NULL, NULL };
	for (size_t i = 0; i < NCASES; i++)
		tests[i + 1] = (struct CMUnitTest){ cases[i].id, run_case,
						    bi_setup, bi_teardown,
						    (void *)&cases[i] };
	h_init();
	if (filter)
		cmocka_set_test_filter(filter);
	return _cmocka_run_group_tests("mount-badinput", tests, NCASES + 1,
				       NULL, NULL);
}
