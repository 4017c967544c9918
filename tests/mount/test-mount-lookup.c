/* Lookup across layers as a user sees it: topmost wins, directories merge
 * until an opaque marker, a whiteout or a non-directory, every whiteout and
 * opaque format is honoured, and markers are never reachable. */
#include <stdio.h>
#include <sys/stat.h>

#include "harness.h"

/* A file in two layers: the top one's content and attributes. */
static void topmost_wins(void **state)
{
	struct stat st;

	h_file("l1/f", "top");
	h_file("l2/f", "bottom, longer");
	h_file("l2/only-low", "low");
	h_file("l1/d/g", "top g");
	h_file("l2/d/g", "bottom g");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_content(h_path("mnt/f"), "top");
	h_assert_ok(stat(h_path("mnt/f"), &st));
	assert_int_equal(st.st_size, 3);
	h_assert_content(h_path("mnt/only-low"), "low");
	h_assert_content(h_path("mnt/d/g"), "top g");
	h_assert_errno(stat(h_path("mnt/nothere"), &st), ENOENT);
}

/* A non-directory above hides a directory below, contents included. */
static void nondir_hides_dir(void **state)
{
	struct stat st;

	h_file("l1/x", "file on top");
	h_file("l2/x/y", "under a dir");
	h_symlink("target", "l1/s");
	h_file("l2/s/z", "z");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_ok(lstat(h_path("mnt/x"), &st));
	assert_true(S_ISREG(st.st_mode));
	h_assert_content(h_path("mnt/x"), "file on top");
	h_assert_errno(lstat(h_path("mnt/x/y"), &st), ENOTDIR);
	h_assert_ok(lstat(h_path("mnt/s"), &st));
	assert_true(S_ISLNK(st.st_mode));
	h_assert_listing(h_path("mnt"), H_NAMES("x", "s"));
}

/* A directory above a non-directory: the directory, with only its own
 * content (the walk stops at the non-directory). */
static void dir_above_nondir(void **state)
{
	struct stat st;

	h_file("l1/x/a", "a");
	h_file("l2/x", "file below");
	h_file("l3/x/c", "c below the file");
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	h_assert_ok(lstat(h_path("mnt/x"), &st));
	assert_true(S_ISDIR(st.st_mode));
	h_assert_listing(h_path("mnt/x"), H_NAMES("a"));
	h_assert_errno(lstat(h_path("mnt/x/c"), &st), ENOENT);
}

/* Same-named directories of every layer merge, at every depth. */
static void dirs_merge(void **state)
{
	h_file("l1/d/a", "a1");
	h_file("l2/d/b", "b2");
	h_file("l3/d/c", "c3");
	h_file("l1/d/sub/deep/x", "x1");
	h_file("l3/d/sub/deep/y", "y3");
	h_file("l2/d/sub/z", "z2");
	h_mkdir("l1/empty");
	h_mkdir("l3/empty");
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	h_assert_listing(h_path("mnt"), H_NAMES("d", "empty"));
	h_assert_listing(h_path("mnt/d"), H_NAMES("a", "b", "c", "sub"));
	h_assert_content(h_path("mnt/d/a"), "a1");
	h_assert_content(h_path("mnt/d/b"), "b2");
	h_assert_content(h_path("mnt/d/c"), "c3");
	h_assert_listing(h_path("mnt/d/sub"), H_NAMES("deep", "z"));
	h_assert_listing(h_path("mnt/d/sub/deep"), H_NAMES("x", "y"));
	h_assert_content(h_path("mnt/d/sub/deep/y"), "y3");
	h_assert_listing(h_path("mnt/empty"), H_NONE);
}

/*
 * One stack per whiteout format, l2 holding the markers:
 *   l1/d: back (above the whiteout of back: visible), sub2/a
 *   l2/d: whiteouts of f, sub, back, ghost, sub2; new
 *   l3/d: f, keep, sub/x, back, sub2/b
 */
static void check_whiteout(enum h_wh fmt)
{
	struct stat st;

	h_need_wh(fmt);
	h_file("l3/d/f", "lower f");
	h_file("l3/d/keep", "keep");
	h_file("l3/d/sub/x", "x");
	h_file("l3/d/back", "bottom back");
	h_file("l3/d/sub2/b", "b");
	h_whiteout("l2/d/f", fmt);
	h_whiteout("l2/d/sub", fmt);
	h_whiteout("l2/d/back", fmt);
	h_whiteout("l2/d/ghost", fmt);
	h_whiteout("l2/d/sub2", fmt);
	h_file("l2/d/new", "new");
	h_file("l1/d/back", "top back");
	h_file("l1/d/sub2/a", "a");
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	h_assert_errno(lstat(h_path("mnt/d/f"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/sub"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/sub/x"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/ghost"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/.wh.f"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/.wh.ghost"), &st), ENOENT);
	h_assert_content(h_path("mnt/d/back"), "top back");
	h_assert_content(h_path("mnt/d/keep"), "keep");
	h_assert_listing(h_path("mnt/d"), H_NAMES("keep", "new", "back",
						  "sub2"));
	/* The whiteout of sub2 ends the merge below l1's sub2. */
	h_assert_listing(h_path("mnt/d/sub2"), H_NAMES("a"));
	h_assert_errno(lstat(h_path("mnt/d/sub2/b"), &st), ENOENT);
}

static void whiteout_chardev(void **state)
{
	check_whiteout(H_WH_CHARDEV);
}

static void whiteout_wh_file(void **state)
{
	check_whiteout(H_WH_FILE);
}

static void whiteout_xattr_user(void **state)
{
	check_whiteout(H_WH_XATTR_USER);
}

static void whiteout_xattr_trusted(void **state)
{
	check_whiteout(H_WH_XATTR_TRUSTED);
}

/* Whiteouts in a layer root hide names of the roots below. */
static void whiteout_at_root(void **state)
{
	struct stat st;

	h_file("l2/gone-file", "x");
	h_file("l2/gone-dir/x", "x");
	h_file("l2/stays", "x");
	h_whiteout("l1/gone-file", H_WH_FILE);
	h_whiteout("l1/gone-dir", H_WH_FILE);
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_errno(lstat(h_path("mnt/gone-file"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/gone-dir"), &st), ENOENT);
	h_assert_listing(h_path("mnt"), H_NAMES("stays"));
}

/* .wh.NAME hides NAME in the layers below only, never in its own layer. */
static void wh_file_same_layer(void **state)
{
	h_file("l1/d/f", "top f");
	h_file("l1/d/.wh.f", "");
	h_file("l1/d/g", "top g");
	h_file("l1/d/.wh.g", "");
	h_file("l2/d/f", "bottom f");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_content(h_path("mnt/d/f"), "top f");
	h_assert_content(h_path("mnt/d/g"), "top g");
	h_assert_listing(h_path("mnt/d"), H_NAMES("f", "g"));
}

/*
 * One stack per opaque format:
 *   l1/d: top        l1/e (opaque): own
 *   l2/d (opaque): mid, both
 *   l3/d: bot, both, sub/deep       l3/e: hidden
 */
static void check_opaque(enum h_opq fmt)
{
	struct stat st;

	h_need_opq(fmt);
	h_file("l3/d/bot", "bot");
	h_file("l3/d/both", "l3 both");
	h_file("l3/d/sub/deep", "deep");
	h_file("l3/e/hidden", "hidden");
	h_opaque("l2/d", fmt);
	h_file("l2/d/mid", "mid");
	h_file("l2/d/both", "l2 both");
	h_file("l1/d/top", "top");
	h_opaque("l1/e", fmt);
	h_file("l1/e/own", "own");
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	h_assert_listing(h_path("mnt/d"), H_NAMES("top", "mid", "both"));
	h_assert_content(h_path("mnt/d/both"), "l2 both");
	h_assert_content(h_path("mnt/d/mid"), "mid");
	h_assert_errno(lstat(h_path("mnt/d/bot"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/sub"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/.wh..wh..opq"), &st), ENOENT);
	h_assert_listing(h_path("mnt/e"), H_NAMES("own"));
	h_assert_errno(lstat(h_path("mnt/e/hidden"), &st), ENOENT);
}

static void opaque_xattr_trusted(void **state)
{
	check_opaque(H_OPQ_XATTR_TRUSTED);
}

static void opaque_xattr_user(void **state)
{
	check_opaque(H_OPQ_XATTR_USER);
}

static void opaque_wh_file(void **state)
{
	check_opaque(H_OPQ_FILE);
}

/* Layer roots always merge: an opaque marker at a root is ignored. */
static void check_root_opaque_ignored(enum h_opq fmt)
{
	h_need_opq(fmt);
	h_opaque("l1", fmt);
	h_file("l1/top", "top");
	h_opaque("l2", fmt);
	h_file("l2/mid", "mid");
	h_file("l3/bot", "bot");
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	h_assert_listing(h_path("mnt"), H_NAMES("top", "mid", "bot"));
	h_assert_content(h_path("mnt/bot"), "bot");
}

static void root_opaque_xattr_trusted(void **state)
{
	check_root_opaque_ignored(H_OPQ_XATTR_TRUSTED);
}

static void root_opaque_xattr_user(void **state)
{
	check_root_opaque_ignored(H_OPQ_XATTR_USER);
}

static void root_opaque_wh_file(void **state)
{
	check_root_opaque_ignored(H_OPQ_FILE);
}

/* No .wh.* name is ever listed or reachable, whatever it holds. */
static void markers_unreachable(void **state)
{
	struct stat st;

	h_file("l1/.wh.foo", "");
	h_file("l1/.wh..wh.aufs", "");
	h_mkdir("l1/.wh..wh.plnk");
	h_file("l1/d/.wh..wh..opq", "");
	h_file("l1/d/.wh.notempty", "some content");
	h_file("l1/d/real", "real");
	h_file("l2/d/.wh.lower", "");
	h_file("l2/plain", "plain");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_errno(lstat(h_path("mnt/.wh.foo"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/.wh..wh.aufs"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/.wh..wh.plnk"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/.wh..wh..opq"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/.wh.notempty"), &st), ENOENT);
	h_assert_errno(lstat(h_path("mnt/d/.wh.lower"), &st), ENOENT);
	h_assert_listing(h_path("mnt"), H_NAMES("d", "plain"));
	h_assert_listing(h_path("mnt/d"), H_NAMES("real"));
}

/* A path many levels deep, each level merged from different layers. */
static void deep_path(void **state)
{
	char rel[256] = "";

	for (int i = 0; i < 12; i++) {
		strcat(rel, "/n");
		h_file(h_fmt("l%d%s/here-%d", i % 3 + 1, rel, i),
		       h_fmt("level %d", i));
	}
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	rel[0] = '\0';
	for (int i = 0; i < 12; i++) {
		strcat(rel, "/n");
		h_assert_content(h_path("mnt%s/here-%d", rel, i),
				 h_fmt("level %d", i));
	}
	h_assert_listing(h_path("mnt/n/n"), H_NAMES("n", "here-1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(topmost_wins),
		H_TEST(nondir_hides_dir),
		H_TEST(dir_above_nondir),
		H_TEST(dirs_merge),
		H_TEST(whiteout_chardev),
		H_TEST(whiteout_wh_file),
		H_TEST(whiteout_xattr_user),
		H_TEST(whiteout_xattr_trusted),
		H_TEST(whiteout_at_root),
		H_TEST(wh_file_same_layer),
		H_TEST(opaque_xattr_trusted),
		H_TEST(opaque_xattr_user),
		H_TEST(opaque_wh_file),
		H_TEST(root_opaque_xattr_trusted),
		H_TEST(root_opaque_xattr_user),
		H_TEST(root_opaque_wh_file),
		H_TEST(markers_unreachable),
		H_TEST(deep_path),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
