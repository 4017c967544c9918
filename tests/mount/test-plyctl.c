/* test-plyctl.c: plyctl's layer toolbox end to end: an image of two OCI
 * layer tars imported into layer directories, changed through a plyfs
 * mount, its diff, committed as a tar, imported as a third layer, and the
 * three layers mounted read-only showing the same tree as the changed
 * mount; commit's output reproducible; export of both stacks alike;
 * hostile archives refused entry by entry with nothing written outside
 * the target; usage errors exit 2. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

static const char *plyctl(void)
{
	const char *p = getenv("PLYCTL");

	if (!p)
		fail_msg("$PLYCTL is not set");
	return p;
}

/* ---- writing test archives with libarchive ----------------------------- */
static struct archive *tar_new(const char *rel)
{
	struct archive *a = archive_write_new();

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	if (archive_write_open_filename(a, h_path("%s", rel)) != ARCHIVE_OK)
		fail_msg("%s: %s", rel, archive_error_string(a));
	return a;
}

/* One entry: type AE_IF*, perm, content (regular), or the symlink or hard
 * link target (link). */
static void tar_add(struct archive *a, const char *name, mode_t type,
		    mode_t perm, const char *content, const char *link)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_mtime(e, 1600000000, 0);
	if (type == AE_IFLNK)
		archive_entry_set_symlink(e, link);
	else if (link)
		archive_entry_set_hardlink(e, link);
	archive_entry_set_size(e, content && !link ? (la_int64_t)strlen(content) : 0);
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

/* Runs plyctl with args; returns its exit status, output in *ret. */
static int run_plyctl(const char *const args[], struct h_run *ret)
{
	const char *argv[32] = { plyctl() };
	size_t n = 1;

	for (size_t i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	h_run(argv, NULL, NULL, ret);
	if (!WIFEXITED(ret->status))
		fail_msg("plyctl %s: killed (status 0x%x)", args[0],
			 ret->status);
	return WEXITSTATUS(ret->status);
}

static void plyctl_ok(const char *const args[])
{
	struct h_run run;
	int st = run_plyctl(args, &run);

	if (st != 0)
		fail_msg("plyctl %s: exit %d: %s", args[0], st, run.err);
	h_run_free(&run);
}

/* The image: a base layer and a top one with a whiteout and an opaque
 * directory, as a real image tar holds them. */
static void make_image(void)
{
	struct archive *a = tar_new("base.tar");

	tar_add(a, "etc/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "etc/passwd", AE_IFREG, 0644, "root:x:0:0\n", NULL);
	tar_add(a, "etc/group", AE_IFREG, 0644, "root:x:0:\n", NULL);
	tar_add(a, "bin/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "bin/sh", AE_IFREG, 0755, "#!sh\n", NULL);
	tar_add(a, "bin/dash", AE_IFREG, 0755, "#!sh\n", "bin/sh");
	tar_add(a, "bin/rsh", AE_IFLNK, 0777, NULL, "sh");
	tar_add(a, "data/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "data/a", AE_IFREG, 0644, "aaa\n", NULL);
	tar_add(a, "data/b", AE_IFREG, 0644, "bbb\n", NULL);
	tar_add(a, "usr/share/doc/readme", AE_IFREG, 0644, "doc\n", NULL);
	tar_add(a, "old/x/y", AE_IFREG, 0600, "yyy\n", NULL);
	tar_add(a, "old/z", AE_IFREG, 0640, "zzz\n", NULL);
	tar_add(a, "empty/", AE_IFDIR, 0700, NULL, NULL);
	tar_add(a, "run/pipe", AE_IFIFO, 0600, NULL, NULL);
	tar_close(a);

	a = tar_new("top.tar");
	tar_add(a, "etc/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "etc/passwd", AE_IFREG, 0644, "root:x:0:0\nuser:x:1:1\n",
		NULL);
	tar_add(a, "data/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "data/.wh.b", AE_IFREG, 0644, "", NULL);
	tar_add(a, "usr/share/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "usr/share/.wh..wh..opq", AE_IFREG, 0644, "", NULL);
	tar_add(a, "usr/share/new", AE_IFREG, 0644, "new\n", NULL);
	tar_add(a, "app/run", AE_IFREG, 0755, "run\n", NULL);
	tar_close(a);
}

static void write_file(const char *path, const char *content, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	h_assert_ok(write(fd, content, strlen(content)));
	h_assert_ok(close(fd));
}

static const char *stack_opts(void)
{
	return h_fmt("%s,upperdir=%s,workdir=%s",
		     h_lowerdir("top", "base", NULL), h_path("u"), h_path("w"));
}

static void test_round_trip(void **state)
{
	static const char expected_diff[] = "A /added.txt\n"
					    "C /bin\n"
					    "D /bin/sh\n"
					    "C /data\n"
					    "C /data/a\n"
					    "D /empty\n"
					    "C /etc\n"
					    "C /etc/passwd\n"
					    "A /moved\n"
					    "A /moved/x\n"
					    "A /moved/x/y\n"
					    "A /moved/z\n"
					    "A /newdir\n"
					    "A /newdir/f\n"
					    "D /old\n";
	struct h_tree changed, rebuilt;
	struct h_mount *m;
	struct h_run run;
	struct stat st;
	char opts[4 * PATH_MAX];
	size_t n1, n2;
	char *t1, *t2;

	make_image();
	plyctl_ok(H_NAMES("import", h_path("base.tar"), h_path("base")));
	plyctl_ok(H_NAMES("import", h_path("top.tar"), h_path("top")));
	h_mkdir("u");
	h_mkdir("w");
	snprintf(opts, sizeof(opts), "%s", stack_opts());

	/* the image as imported: whiteout and opaque directory honoured */
	m = h_mount(opts, "mnt");
	h_assert_listing(h_path("mnt/data"), H_NAMES("a"));
	h_assert_listing(h_path("mnt/usr/share"), H_NAMES("new"));
	h_assert_content(h_path("mnt/etc/passwd"), "root:x:0:0\nuser:x:1:1\n");
	h_assert_ok(lstat(h_path("mnt/run/pipe"), &st));
	assert_true(S_ISFIFO(st.st_mode));

	/* change it: add, modify, chmod, delete, rmdir, rename a directory */
	write_file(h_path("mnt/added.txt"), "added\n", O_EXCL);
	h_assert_ok(mkdir(h_path("mnt/newdir"), 0750));
	write_file(h_path("mnt/newdir/f"), "f\n", O_EXCL);
	write_file(h_path("mnt/etc/passwd"), "more:x:2:2\n", O_APPEND);
	h_assert_ok(chmod(h_path("mnt/data/a"), 0600));
	h_assert_ok(unlink(h_path("mnt/bin/sh")));
	h_assert_ok(rmdir(h_path("mnt/empty")));
	h_assert_ok(rename(h_path("mnt/old"), h_path("mnt/moved")));
	assert_int_equal(h_umount(m), 0);

	/* diff: exactly those changes */
	assert_int_equal(run_plyctl(H_NAMES("diff", "-o", opts), &run), 0);
	if (strcmp(run.out, expected_diff))
		fail_msg("diff:\n%s--- expected:\n%s", run.out, expected_diff);
	h_run_free(&run);
	assert_int_equal(run_plyctl(H_NAMES("diff", "-o", opts, "--json"),
				    &run),
			 0);
	assert_non_null(strstr(run.out, "{\"path\": \"/moved\", \"kind\": \"A\"}"));
	assert_non_null(strstr(run.out, "{\"path\": \"/old\", \"kind\": \"D\"}"));
	h_run_free(&run);

	/* commit: the same bytes twice, plain and gzip'ed */
	plyctl_ok(H_NAMES("commit", "-o", opts, h_path("c1.tar")));
	plyctl_ok(H_NAMES("commit", "-o", opts, "--format=tar",
			  h_path("c2.tar")));
	plyctl_ok(H_NAMES("commit", "-o", opts, h_path("c1.tar.gz")));
	plyctl_ok(H_NAMES("commit", "-o", opts, "--format=tar.gz",
			  h_path("c2.tgz")));
	t1 = h_read(h_path("c1.tar"), &n1);
	t2 = h_read(h_path("c2.tar"), &n2);
	assert_true(n1 == n2 && !memcmp(t1, t2, n1));
	free(t1);
	free(t2);
	t1 = h_read(h_path("c1.tar.gz"), &n1);
	t2 = h_read(h_path("c2.tgz"), &n2);
	assert_true(n1 == n2 && !memcmp(t1, t2, n1));
	free(t1);
	free(t2);

	/* import it as a third layer; the three read-only show the same */
	plyctl_ok(H_NAMES("import", h_path("c1.tar.gz"), h_path("new")));
	m = h_mount(opts, "mnt");
	h_tree_walk(h_path("mnt"), &changed);
	{
		struct h_mount *ro = h_mount(h_lowerdir("new", "top", "base",
							NULL),
					     "ro");

		h_tree_walk(h_path("ro"), &rebuilt);
		h_tree_assert_equal(&changed, &rebuilt,
				    H_CMP_MODE | H_CMP_OWNER | H_CMP_MTIME,
				    "changed mount vs the committed layer");
		assert_int_equal(h_umount(ro), 0);
	}
	h_tree_free(&changed);
	h_tree_free(&rebuilt);
	assert_int_equal(h_umount(m), 0);

	/* the committed directory form gives the same tree too */
	plyctl_ok(H_NAMES("commit", "-o", opts, "--format=dir",
			  "--whiteout=file", h_path("newdir-layer")));
	m = h_mount(h_lowerdir("newdir-layer", "top", "base", NULL), "ro2");
	h_tree_walk(h_path("ro2"), &rebuilt);
	{
		struct h_mount *rw = h_mount(opts, "mnt");

		h_tree_walk(h_path("mnt"), &changed);
		h_tree_assert_equal(&changed, &rebuilt,
				    H_CMP_MODE | H_CMP_OWNER | H_CMP_MTIME,
				    "changed mount vs the committed directory");
		assert_int_equal(h_umount(rw), 0);
	}
	h_tree_free(&changed);
	h_tree_free(&rebuilt);
	assert_int_equal(h_umount(m), 0);

	/* export: both stacks give the same archive */
	plyctl_ok(H_NAMES("export", "-o", opts, "-f", h_path("e1.tar")));
	plyctl_ok(H_NAMES("export", "-o",
			  h_lowerdir("new", "top", "base", NULL), "-f",
			  h_path("e2.tar")));
	t1 = h_read(h_path("e1.tar"), &n1);
	t2 = h_read(h_path("e2.tar"), &n2);
	assert_true(n1 > 0 && n1 == n2 && !memcmp(t1, t2, n1));
	free(t1);
	free(t2);
	(void)state;
}

/* Markers converted into each format. */
static void test_import_formats(void **state)
{
	struct archive *a = tar_new("l.tar");
	struct stat st;
	char v[4];

	tar_add(a, "d/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "d/.wh.gone", AE_IFREG, 0644, "", NULL);
	tar_add(a, "o/", AE_IFDIR, 0755, NULL, NULL);
	tar_add(a, "o/.wh..wh..opq", AE_IFREG, 0644, "", NULL);
	tar_add(a, "o/f", AE_IFREG, 0644, "f", NULL);
	tar_close(a);

	plyctl_ok(H_NAMES("import", "--whiteout=file", h_path("l.tar"),
			  h_path("file")));
	h_assert_ok(lstat(h_path("file/d/.wh.gone"), &st));
	h_assert_ok(lstat(h_path("file/o/.wh..wh..opq"), &st));

	plyctl_ok(H_NAMES("import", "--whiteout=xattr", h_path("l.tar"),
			  h_path("xattr")));
	h_assert_ok(lstat(h_path("xattr/d/gone"), &st));
	assert_true(S_ISREG(st.st_mode) && st.st_size == 0);
	h_assert_errno(lstat(h_path("xattr/d/.wh.gone"), &st), ENOENT);
	h_assert_errno(lstat(h_path("xattr/o/.wh..wh..opq"), &st), ENOENT);
	{
		const char *ns = h_is_root() ? "trusted" : "user";

		assert_int_equal(lgetxattr(h_path("xattr/d/gone"),
					   h_fmt("%s.overlay.whiteout", ns), v,
					   sizeof(v)),
				 1);
		assert_int_equal(lgetxattr(h_path("xattr/d"),
					   h_fmt("%s.overlay.opaque", ns), v,
					   sizeof(v)),
				 1);
		assert_int_equal(v[0], 'x');
		assert_int_equal(lgetxattr(h_path("xattr/o"),
					   h_fmt("%s.overlay.opaque", ns), v,
					   sizeof(v)),
				 1);
		assert_int_equal(v[0], 'y');
	}
	if (h_is_root()) {
		plyctl_ok(H_NAMES("import", "--whiteout=chardev",
				  h_path("l.tar"), h_path("chr")));
		h_assert_ok(lstat(h_path("chr/d/gone"), &st));
		assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
	}
	(void)state;
}

/* A hostile archive: each bad entry refused with a message, the good ones
 * unpacked, nothing written outside the target. */
static void test_import_hostile(void **state)
{
	struct archive *a = tar_new("evil.tar");
	char longname[NAME_MAX + 8];
	struct h_run run;
	size_t n;
	char **names;
	struct stat st;

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	h_mkdir("outside");
	tar_add(a, "ok", AE_IFREG, 0644, "ok", NULL);
	tar_add(a, "../escape", AE_IFREG, 0644, "x", NULL);
	tar_add(a, "/abs", AE_IFREG, 0644, "x", NULL);
	tar_add(a, "sub/../../up", AE_IFREG, 0644, "x", NULL);
	tar_add(a, "lnk", AE_IFLNK, 0777, NULL, h_path("outside"));
	tar_add(a, "lnk/through", AE_IFREG, 0644, "x", NULL);
	tar_add(a, "lnk/.wh..wh..opq", AE_IFREG, 0644, "", NULL);
	tar_add(a, "rel", AE_IFLNK, 0777, NULL, "../outside");
	tar_add(a, "rel/deep/file", AE_IFREG, 0644, "x", NULL);
	tar_add(a, "hl", AE_IFREG, 0644, "", "../outside/x");
	tar_add(a, "hl2", AE_IFREG, 0644, "", "missing");
	tar_add(a, "hl3", AE_IFREG, 0644, "", "lnk/x");
	tar_add(a, longname, AE_IFREG, 0644, "x", NULL);
	tar_add(a, "ok2", AE_IFREG, 0644, "", "ok");
	tar_close(a);

	assert_int_equal(run_plyctl(H_NAMES("import", h_path("evil.tar"),
					    h_path("dir")),
				    &run),
			 1);
	print_message("%s", run.err);
	assert_non_null(strstr(run.err, "refused '../escape': '..'"));
	assert_non_null(strstr(run.err, "refused '/abs': absolute path"));
	assert_non_null(strstr(run.err, "refused 'lnk/through': its path crosses the symlink lnk"));
	assert_non_null(strstr(run.err, "refused 'rel/deep/file'"));
	assert_non_null(strstr(run.err, "refused 'hl2': hard link to 'missing'"));
	assert_non_null(strstr(run.err, "refused 'hl3'"));
	assert_non_null(strstr(run.err, "NAME_MAX"));
	h_run_free(&run);

	/* the target holds the good entries only; outside, nothing */
	h_assert_listing(h_path("dir"), H_NAMES("ok", "lnk", "rel", "ok2"));
	h_assert_content(h_path("dir/ok"), "ok");
	h_assert_ok(lstat(h_path("dir/ok2"), &st));
	assert_int_equal(st.st_nlink, 2);
	h_assert_listing(h_path("outside"), H_NONE);
	names = h_listdir(h_path("."), &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], ".") && strcmp(names[i], "..") &&
		    strcmp(names[i], "dir") && strcmp(names[i], "outside") &&
		    strcmp(names[i], "evil.tar"))
			fail_msg("import wrote %s outside its target", names[i]);
	h_strv_free(names, n);
	h_assert_errno(lstat(h_path("../escape"), &st), ENOENT);
	h_assert_errno(lstat("/abs", &st), ENOENT);
	(void)state;
}

static void test_usage(void **state)
{
	struct h_run run;

	assert_int_equal(run_plyctl(H_NAMES("import"), &run), 2);
	assert_non_null(strstr(run.err, "plyctl import:"));
	h_run_free(&run);
	assert_int_equal(run_plyctl(H_NAMES("diff"), &run), 2);
	assert_non_null(strstr(run.err, "plyctl diff:"));
	h_run_free(&run);
	assert_int_equal(run_plyctl(H_NAMES("diff", "-o",
					    h_lowerdir("a", NULL)),
				    &run),
			 2);
	h_run_free(&run);
	h_mkdir("a");
	assert_int_equal(run_plyctl(H_NAMES("diff", "-o",
					    h_lowerdir("a", NULL)),
				    &run),
			 2);
	assert_non_null(strstr(run.err, "no upperdir"));
	h_run_free(&run);
	assert_int_equal(run_plyctl(H_NAMES("commit", "-o", "lowerdir=/x",
					    "--format=zip", "out"),
				    &run),
			 2);
	assert_non_null(strstr(run.err, "--format=zip"));
	h_run_free(&run);
	assert_int_equal(run_plyctl(H_NAMES("import", "--whiteout=odd",
					    "t", "d"),
				    &run),
			 2);
	h_run_free(&run);
	for (const char *const *cmd = H_NAMES("diff", "commit", "export",
					      "import");
	     *cmd; cmd++) {
		assert_int_equal(run_plyctl(H_NAMES(*cmd, "--help"), &run), 0);
		assert_non_null(strstr(run.out, "usage: plyctl"));
		h_run_free(&run);
	}
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(test_round_trip),
		H_TEST(test_import_formats),
		H_TEST(test_import_hostile),
		H_TEST(test_usage),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
