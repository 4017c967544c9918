/* test-plyctl-more.c: plyctl cp, check, convert and commit --squash end to
 * end: cp out of a mounted and of an unmounted stack give the same tree;
 * cp into an unmounted stack shows up in the next mount (a lower file
 * written over is copied up, nothing else lost), and is refused while a
 * mount holds the workdir; check exits 0 on a clean stack, 1 on a broken
 * one, 0 again after --repair; a layer converted chardev -> file -> xattr
 * -> chardev mounts as the same tree; a squash of three layers is the
 * merged view, the same bytes each time. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

#define CMP_CP (H_CMP_MODE | H_CMP_OWNER | H_CMP_NLINK | H_CMP_MTIME)

static const char *plyctl(void)
{
	const char *p = getenv("PLYCTL");

	if (!p)
		fail_msg("$PLYCTL is not set");
	return p;
}

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

static int plyctl_status(const char *const args[])
{
	struct h_run run;
	int st = run_plyctl(args, &run);

	h_run_free(&run);
	return st;
}

static void plyctl_ok(const char *const args[])
{
	struct h_run run;
	int st = run_plyctl(args, &run);

	if (st != 0)
		fail_msg("plyctl %s: exit %d: %s%s", args[0], st, run.out,
			 run.err);
	h_run_free(&run);
}

/* Two lower layers and an upper with a change of each kind, in the
 * markers the mount writes (chardev as root, xattr otherwise). */
static void make_stack(void)
{
	enum h_wh wh = h_is_root() ? H_WH_CHARDEV : H_WH_XATTR_USER;

	h_file("l2/etc/hosts", "127.0.0.1 lower\n");
	h_file("l2/etc/passwd", "root:x:0:0\n");
	h_file("l2/data/a", "aaa\n");
	h_link("l2/data/a", "l2/data/a2");
	h_symlink("../etc/hosts", "l2/data/lnk");
	h_file("l2/data/sub/b", "bbb\n");
	h_file("l2/data/gone", "gone\n");
	h_times("l2/data/a", 1500000000, 5);
	h_xattr("l2/data/a", "user.tag", "lower");
	h_file("l1/etc/motd", "hello\n");
	h_file("l1/data/big", "");
	h_file_pattern("l1/data/big", 3 << 20, 7);
	h_file("u/data/new", "new\n");
	h_whiteout("u/data/gone", wh);
	h_mkdir("w");
}

static const char *opts(void)
{
	return h_fmt("%s,upperdir=%s,workdir=%s", h_lowerdir("l1", "l2", NULL),
		     h_path("u"), h_path("w"));
}

static void test_cp_out(void **state)
{
	struct h_tree a, b, want;
	struct h_mount *m;
	char o[4 * PATH_MAX], xv[32];
	ssize_t n;

	make_stack();
	snprintf(o, sizeof(o), "%s", opts());
	/* unmounted: read through lib */
	plyctl_ok(H_NAMES("cp", "-o", o, ":/data", h_path("out1")));
	n = lgetxattr(h_path("out1/a"), "user.tag", xv, sizeof(xv));
	assert_int_equal(n, 5);
	assert_memory_equal(xv, "lower", 5);
	/* through the mount: MNT:PATH */
	m = h_mount(o, "mnt");
	plyctl_ok(H_NAMES("cp", h_fmt("%s:/data", h_path("mnt")),
			  h_path("out2")));
	h_tree_walk(h_path("mnt/data"), &want);
	assert_int_equal(h_umount(m), 0);
	h_tree_walk(h_path("out1"), &a);
	h_tree_walk(h_path("out2"), &b);
	h_tree_assert_equal(&want, &a, CMP_CP, "cp out of the unmounted stack");
	h_tree_assert_equal(&want, &b, CMP_CP, "cp out through the mount");
	h_tree_free(&a);
	h_tree_free(&b);
	h_tree_free(&want);
	/* one file into an existing host directory, a root's content */
	h_mkdir("dir");
	plyctl_ok(H_NAMES("cp", "-o", o, ":/etc/motd", h_path("dir")));
	h_assert_content(h_path("dir/motd"), "hello\n");
	plyctl_ok(H_NAMES("cp", "-o", o, ":/", h_path("root")));
	h_assert_content(h_path("root/etc/passwd"), "root:x:0:0\n");
	(void)state;
}

static void test_cp_in(void **state)
{
	struct h_mount *m;
	struct stat s1, s2;
	char o[4 * PATH_MAX];

	make_stack();
	snprintf(o, sizeof(o), "%s", opts());
	h_file("host/hosts", "127.0.0.1 replaced\n");
	h_file("host/tree/d/f", "f\n");
	h_link("host/tree/d/f", "host/tree/g");
	h_symlink("d/f", "host/tree/sl");
	h_times("host/tree/d/f", 1400000000, 0);
	h_file("host/a", "written over\n");
	h_file("host/gone", "back\n");

	plyctl_ok(H_NAMES("cp", "-o", o, h_path("host/hosts"), ":/etc/hosts"));
	plyctl_ok(H_NAMES("cp", "-o", o, h_path("host/tree"), ":/data"));
	/* over a hard-linked lower file: both names show the new data */
	plyctl_ok(H_NAMES("cp", "-o", o, h_path("host/a"), ":/data/a2"));
	/* in place of a whiteout */
	plyctl_ok(H_NAMES("cp", "-o", o, h_path("host/gone"), ":/data/gone"));
	/* the lower layers are untouched */
	h_assert_content(h_path("l2/etc/hosts"), "127.0.0.1 lower\n");
	h_assert_content(h_path("l2/data/a"), "aaa\n");

	m = h_mount(o, "mnt");
	h_assert_content(h_path("mnt/etc/hosts"), "127.0.0.1 replaced\n");
	h_assert_content(h_path("mnt/etc/passwd"), "root:x:0:0\n");
	h_assert_content(h_path("mnt/etc/motd"), "hello\n");
	h_assert_content(h_path("mnt/data/tree/d/f"), "f\n");
	h_assert_content(h_path("mnt/data/a"), "written over\n");
	h_assert_content(h_path("mnt/data/a2"), "written over\n");
	h_assert_content(h_path("mnt/data/gone"), "back\n");
	h_assert_content(h_path("mnt/data/new"), "new\n");
	assert_int_equal(h_hash_file(h_path("mnt/data/big"), NULL),
			 h_pattern_hash(3 << 20, 7));
	h_assert_ok(lstat(h_path("mnt/data/tree/d/f"), &s1));
	h_assert_ok(lstat(h_path("mnt/data/tree/g"), &s2));
	assert_int_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s1.st_mtim.tv_sec, 1400000000);
	h_assert_ok(lstat(h_path("mnt/data/tree/sl"), &s1));
	assert_true(S_ISLNK(s1.st_mode));
	h_assert_ok(lstat(h_path("mnt/data/a"), &s1));
	h_assert_ok(lstat(h_path("mnt/data/a2"), &s2));
	assert_int_equal(s1.st_ino, s2.st_ino);

	/* while mounted, the workdir is locked: refused, use the mount */
	assert_int_equal(plyctl_status(H_NAMES("cp", "-o", o,
					       h_path("host/hosts"),
					       ":/etc/x")),
			 1);
	plyctl_ok(H_NAMES("cp", h_path("host/hosts"),
			  h_fmt("%s:/etc/viamount", h_path("mnt"))));
	h_assert_content(h_path("mnt/etc/viamount"), "127.0.0.1 replaced\n");
	assert_int_equal(h_umount(m), 0);

	/* a directory over a file, and usage errors */
	assert_int_equal(plyctl_status(H_NAMES("cp", "-o", o, h_path("host/tree"),
					       ":/etc/passwd")),
			 1);
	assert_int_equal(plyctl_status(H_NAMES("cp", h_path("host/a"),
					       h_path("host/b"))),
			 2);
	(void)state;
}

static void test_check(void **state)
{
	char o[4 * PATH_MAX];
	struct h_mount *m;
	struct h_run run;

	make_stack();
	snprintf(o, sizeof(o), "%s", opts());
	m = h_mount(o, "mnt");
	h_file("mnt/data/sub/c", "c\n"); /* a copy-up of the parent */
	assert_int_equal(h_umount(m), 0);
	assert_int_equal(plyctl_status(H_NAMES("check", "-o", o)), 0);

	/* broken: what a crash and stray tools leave */
	h_mkdir("w/work/#plyfs-00000000cafe0000/x");
	h_whiteout("u/etc/nothing", h_is_root() ? H_WH_CHARDEV : H_WH_XATTR_USER);
	h_file("w/plyfs-index/0000000000000777", "");
	assert_int_equal(run_plyctl(H_NAMES("check", "-o", o), &run), 1);
	assert_non_null(strstr(run.out, "temporary"));
	assert_non_null(strstr(run.out, "whiteout-over-nothing"));
	assert_non_null(strstr(run.out, "index-unlinked"));
	h_run_free(&run);

	assert_int_equal(run_plyctl(H_NAMES("check", "-o", o, "--repair"), &run),
			 0);
	assert_non_null(strstr(run.out, "repaired"));
	h_run_free(&run);
	assert_int_equal(plyctl_status(H_NAMES("check", "-o", o)), 0);

	/* the view is as it was */
	m = h_mount(o, "mnt");
	h_assert_content(h_path("mnt/data/sub/c"), "c\n");
	h_assert_listing(h_path("mnt/etc"), H_NAMES("hosts", "passwd", "motd"));
	/* refused while mounted */
	assert_int_equal(plyctl_status(H_NAMES("check", "-o", o)), 1);
	assert_int_equal(h_umount(m), 0);
	assert_int_equal(plyctl_status(H_NAMES("check")), 2);
	(void)state;
}

/* The merged tree of the three lower layers. */
static void walk_lowers(const char *mnt, struct h_tree *t)
{
	struct h_mount *m = h_mount_lowers(mnt, "c1", "c2", "c3", NULL);

	h_tree_walk(h_path("%s", mnt), t);
	assert_int_equal(h_umount(m), 0);
}

static void make_three_layers(void)
{
	enum h_wh wh = h_is_root() ? H_WH_CHARDEV : H_WH_XATTR_USER;
	enum h_opq opq = h_is_root() ? H_OPQ_XATTR_TRUSTED : H_OPQ_XATTR_USER;

	h_file("c3/a/f", "1\n");
	h_file("c3/a/b/g", "2\n");
	h_file("c3/c/h", "3\n");
	h_file("c3/d/i", "4\n");
	h_file("c3/top", "5\n");
	h_link("c3/top", "c3/top2");
	h_symlink("a/f", "c3/sl");
	h_file("c2/a/new", "n\n");
	h_whiteout("c2/a/f", wh);
	h_file("c3/old", "6\n");
	h_whiteout("c2/old", wh);
	h_file("c2/c/n", "o\n");
	h_opaque("c2/c", opq);
	h_file("c1/d/i", "over\n");
	h_times("c1/d/i", 1300000000, 0);
}

static void test_convert_round_trip(void **state)
{
	static const char *const formats[] = { "file", "xattr", "chardev" };
	struct h_tree before, after;

	h_need_wh(H_WH_CHARDEV);
	make_three_layers();
	walk_lowers("m0", &before);
	for (size_t i = 0; i < 3; i++) {
		struct h_tree t;

		plyctl_ok(H_NAMES("convert", h_fmt("--to=%s", formats[i]),
				  h_path("c2")));
		walk_lowers(h_fmt("m%zu", i + 1), &t);
		h_tree_assert_equal(&before, &t, CMP_CP, formats[i]);
		h_tree_free(&t);
	}
	walk_lowers("m9", &after);
	h_tree_assert_equal(&before, &after, CMP_CP, "round trip");
	h_tree_free(&before);
	h_tree_free(&after);
	assert_int_equal(plyctl_status(H_NAMES("convert", "--to=bogus",
					       h_path("c2"))),
			 2);
	(void)state;
}

static void test_squash(void **state)
{
	struct h_tree view, squashed;
	const char *lower;
	size_t n1, n2;
	char *t1, *t2;

	make_three_layers();
	walk_lowers("mv", &view);
	lower = h_lowerdir("c1", "c2", "c3", NULL);
	plyctl_ok(H_NAMES("commit", "--squash", "-o", lower, h_path("sq")));
	h_tree_walk(h_path("sq"), &squashed);
	h_tree_assert_equal(&view, &squashed, CMP_CP, "squash to a directory");
	h_tree_free(&squashed);
	h_tree_free(&view);
	/* a tar: the same bytes twice */
	plyctl_ok(H_NAMES("commit", "--squash", "-o", lower,
			  h_path("s1.tar")));
	plyctl_ok(H_NAMES("commit", "--squash", "-o", lower,
			  h_path("s2.tar")));
	t1 = h_read(h_path("s1.tar"), &n1);
	t2 = h_read(h_path("s2.tar"), &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(t1, t2, n1);
	free(t1);
	free(t2);
	/* imported as a single layer, it mounts as the same view */
	plyctl_ok(H_NAMES("import", h_path("s1.tar"), h_path("imp")));
	{
		struct h_mount *m = h_mount_lowers("mi", "imp", NULL);
		struct h_tree a, b;

		h_tree_walk(h_path("mi"), &a);
		assert_int_equal(h_umount(m), 0);
		walk_lowers("mv2", &b);
		h_tree_assert_equal(&b, &a, H_CMP_MODE | H_CMP_OWNER | H_CMP_NLINK,
				    "squash tar imported");
		h_tree_free(&a);
		h_tree_free(&b);
	}
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(test_cp_out),
		H_TEST(test_cp_in),
		H_TEST(test_check),
		H_TEST(test_convert_round_trip),
		H_TEST(test_squash),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
