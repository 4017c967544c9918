/* test-marker.c: the whiteout and opaque codecs (marker.c): reserved
 * names, ".wh." targets, every opaque format, every whiteout format and
 * the private xattr names. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tree.h"

static int setup(void **state)
{
	*state = tree_mkdtemp();
	return 0;
}

static int teardown(void **state)
{
	tree_remove(*state);
	free(*state);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

static void test_name_reserved(void **state)
{
	assert_true(ply_marker_name_reserved(".wh.foo"));
	assert_true(ply_marker_name_reserved(".wh..wh..opq"));
	assert_true(ply_marker_name_reserved(".wh."));
	assert_false(ply_marker_name_reserved("foo"));
	assert_false(ply_marker_name_reserved(".whfoo"));
	assert_false(ply_marker_name_reserved(".wh"));
	assert_false(ply_marker_name_reserved("a.wh.foo"));
	assert_false(ply_marker_name_reserved(""));
}

static void test_whiteout_target(void **state)
{
	assert_string_equal(ply_marker_whiteout_target(".wh.foo"), "foo");
	assert_string_equal(ply_marker_whiteout_target(".wh..hidden"),
			    ".hidden");
	assert_null(ply_marker_whiteout_target(".wh..wh..opq"));
	assert_null(ply_marker_whiteout_target(".wh..wh.plnk"));
	assert_null(ply_marker_whiteout_target(".wh."));
	assert_null(ply_marker_whiteout_target(".wh.."));
	assert_null(ply_marker_whiteout_target(".wh..."));
	assert_null(ply_marker_whiteout_target("foo"));
	assert_null(ply_marker_whiteout_target(""));
}

/* The opaque state of base/rel as the lib reads it. */
static enum ply_opaque dir_state(const char *base, const char *rel)
{
	enum ply_opaque st = (enum ply_opaque)-1;
	int fd = open(tree_path(base, rel), O_PATH | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ply_marker_dir_state(fd, &st), 0);
	close(fd);
	return st;
}

static void test_dir_state_plain(void **state)
{
	const char *base = *state;

	tree_mkdir(base, "d");
	tree_write(base, "d/f", "x");
	assert_int_equal(dir_state(base, "d"), PLY_DIR_PLAIN);
	/* other values and other xattrs are no marker */
	tree_setxattr(base, "d", "user.overlay.opaque", "n");
	tree_setxattr(base, "d", "user.overlay.other", "y");
	assert_int_equal(dir_state(base, "d"), PLY_DIR_PLAIN);
}

static void test_dir_state_trusted_opaque(void **state)
{
	const char *base = *state;

	need_root();
	tree_mkdir(base, "d");
	tree_setxattr(base, "d", "trusted.overlay.opaque", "y");
	assert_int_equal(dir_state(base, "d"), PLY_DIR_OPAQUE);
}

static void test_dir_state_user_opaque(void **state)
{
	const char *base = *state;

	tree_mkdir(base, "d");
	tree_setxattr(base, "d", "user.overlay.opaque", "y");
	assert_int_equal(dir_state(base, "d"), PLY_DIR_OPAQUE);
}

static void test_dir_state_opq_file(void **state)
{
	const char *base = *state;

	tree_write(base, "d/.wh..wh..opq", "");
	assert_int_equal(dir_state(base, "d"), PLY_DIR_OPAQUE);
	/* the file makes a directory opaque even if it announces "x" */
	tree_setxattr(base, "d", "user.overlay.opaque", "x");
	assert_int_equal(dir_state(base, "d"), PLY_DIR_OPAQUE);
}

static void test_dir_state_xwhiteouts(void **state)
{
	const char *base = *state;

	tree_mkdir(base, "d");
	tree_setxattr(base, "d", "user.overlay.opaque", "x");
	assert_int_equal(dir_state(base, "d"), PLY_DIR_XWHITEOUTS);
	if (geteuid() == 0) {
		tree_mkdir(base, "t");
		tree_setxattr(base, "t", "trusted.overlay.opaque", "x");
		assert_int_equal(dir_state(base, "t"), PLY_DIR_XWHITEOUTS);
		/* "y" under either namespace wins over "x" */
		tree_setxattr(base, "d", "trusted.overlay.opaque", "y");
		assert_int_equal(dir_state(base, "d"), PLY_DIR_OPAQUE);
	}
}

/* Is base/dir/name a whiteout, read in a directory of state dstate? */
static int is_whiteout(const char *base, const char *dir, const char *name,
		       enum ply_opaque dstate)
{
	struct stat st;
	int fd = open(tree_path(base, dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r;

	assert_true(fd >= 0);
	assert_int_equal(fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
	r = ply_marker_is_whiteout(fd, name, &st, dstate);
	close(fd);
	return r;
}

static void test_whiteout_chardev(void **state)
{
	const char *base = *state;

	need_root();
	tree_mknod(base, "d/wh", S_IFCHR | 0600, makedev(0, 0));
	tree_mknod(base, "d/null", S_IFCHR | 0600, makedev(1, 3));
	tree_mknod(base, "d/blk", S_IFBLK | 0600, makedev(0, 0));
	assert_int_equal(is_whiteout(base, "d", "wh", PLY_DIR_PLAIN), 1);
	assert_int_equal(is_whiteout(base, "d", "wh", PLY_DIR_OPAQUE), 1);
	assert_int_equal(is_whiteout(base, "d", "null", PLY_DIR_PLAIN), 0);
	assert_int_equal(is_whiteout(base, "d", "blk", PLY_DIR_PLAIN), 0);
}

static void test_whiteout_xattr(void **state)
{
	const char *base = *state;

	tree_mkdir(base, "x");
	tree_setxattr(base, "x", "user.overlay.opaque", "x");
	tree_write(base, "x/wh", "");
	tree_setxattr(base, "x/wh", "user.overlay.whiteout", "y");
	tree_write(base, "x/full", "data");
	tree_setxattr(base, "x/full", "user.overlay.whiteout", "y");
	tree_write(base, "x/empty", "");
	tree_mkdir(base, "x/dir");
	tree_setxattr(base, "x/dir", "user.overlay.whiteout", "y");

	/* a zero-size file with the xattr, in a directory announcing them */
	assert_int_equal(is_whiteout(base, "x", "wh", dir_state(base, "x")), 1);
	/* not with data, not without the xattr, not a directory */
	assert_int_equal(is_whiteout(base, "x", "full", PLY_DIR_XWHITEOUTS), 0);
	assert_int_equal(is_whiteout(base, "x", "empty", PLY_DIR_XWHITEOUTS),
			 0);
	assert_int_equal(is_whiteout(base, "x", "dir", PLY_DIR_XWHITEOUTS), 0);

	/* the kernel's rule: in a plain directory it is an ordinary file */
	tree_mkdir(base, "p");
	tree_write(base, "p/wh", "");
	tree_setxattr(base, "p/wh", "user.overlay.whiteout", "y");
	assert_int_equal(dir_state(base, "p"), PLY_DIR_PLAIN);
	assert_int_equal(is_whiteout(base, "p", "wh", PLY_DIR_PLAIN), 0);
}

static void test_whiteout_trusted_xattr(void **state)
{
	const char *base = *state;

	need_root();
	tree_mkdir(base, "x");
	tree_setxattr(base, "x", "trusted.overlay.opaque", "x");
	tree_write(base, "x/wh", "");
	tree_setxattr(base, "x/wh", "trusted.overlay.whiteout", "y");
	assert_int_equal(is_whiteout(base, "x", "wh", dir_state(base, "x")), 1);
}

static void test_whiteout_symlink_not(void **state)
{
	const char *base = *state;

	/* a symlink to a whiteout-looking file is a symlink, not a marker */
	tree_mkdir(base, "x");
	tree_setxattr(base, "x", "user.overlay.opaque", "x");
	tree_write(base, "x/wh", "");
	tree_setxattr(base, "x/wh", "user.overlay.whiteout", "y");
	tree_symlink(base, "x/link", "wh");
	assert_int_equal(is_whiteout(base, "x", "link", PLY_DIR_XWHITEOUTS), 0);
}

static void test_xattr_is_private(void **state)
{
	assert_true(ply_xattr_is_private("trusted.overlay.opaque"));
	assert_true(ply_xattr_is_private("trusted.overlay.redirect"));
	assert_true(ply_xattr_is_private("user.overlay.whiteout"));
	assert_true(ply_xattr_is_private("user.plyfs.anything"));
	assert_true(ply_xattr_is_private("trusted.plyfs.x"));
	assert_true(ply_xattr_is_private("user.fuseoverlayfs.origin"));
	assert_true(ply_xattr_is_private("user.containers.override_stat"));
	assert_false(ply_xattr_is_private("user.foo"));
	assert_false(ply_xattr_is_private("user.overlayfoo"));
	assert_false(ply_xattr_is_private("security.capability"));
	assert_false(ply_xattr_is_private("system.posix_acl_access"));
	assert_false(ply_xattr_is_private("trusted.other"));
	assert_false(ply_xattr_is_private(""));
}

/* overlay.redirect as a directory carries it: a name, or a path from the
 * layer root, never one that leads out (fuzz-marker found "//.." taken). */
static int redirect_of(const char *base, const char *value, char *buf,
		       size_t size)
{
	int fd, r;

	tree_setxattr(base, "r", "user.overlay.redirect", value);
	fd = open(tree_path(base, "r"), O_PATH | O_DIRECTORY);
	assert_true(fd >= 0);
	r = ply_marker_dir_redirect(fd, buf, size);
	close(fd);
	return r;
}

static void test_redirect_values(void **state)
{
	static const char *const good[] = { "old", "/a/b", "/a", "//a//b/",
					    "..a", "/a/...", ".x" };
	static const char *const bad[] = { "a/b", "..", ".", "/..", "//..",
					   "/a/..", "/a/../b", "/./a",
					   "/a/.", "../a" };
	const char *base = *state;
	char buf[64];
	int fd;

	tree_mkdir(base, "r");
	fd = open(tree_path(base, "r"), O_PATH | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(ply_marker_dir_redirect(fd, buf, sizeof(buf)),
			 -ENODATA);
	close(fd);
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		assert_int_equal(redirect_of(base, good[i], buf, sizeof(buf)),
				 0);
		assert_string_equal(buf, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(redirect_of(base, bad[i], buf, sizeof(buf)),
				 -EINVAL);
	/* the pure decoder: a NUL inside is not one name; too long fails */
	assert_int_equal(ply_marker_redirect_parse("a\0/b", 4, buf,
						   sizeof(buf)),
			 -EINVAL);
	assert_int_equal(ply_marker_redirect_parse("abcd", 4, buf, 4),
			 -EINVAL);
	assert_int_equal(ply_marker_redirect_parse("abcd", 4, buf, 5), 0);
	assert_string_equal(buf, "abcd");
	assert_int_equal(ply_marker_redirect_parse("", 0, buf, sizeof(buf)),
			 -EINVAL);
}

/* A component longer than NAME_MAX names nothing a layer can hold: the
 * lookup it led to failed with ENAMETOOLONG and the directory vanished
 * from the mount (mount-badinput, layer-redirect-long). Refused, so the
 * redirect is ignored. */
static void test_redirect_long_name(void **state)
{
	char value[NAME_MAX + 8], buf[PATH_MAX];

	(void)state;
	memset(value, 'x', sizeof(value));
	/* a name of NAME_MAX bytes is fine, one more is not */
	assert_int_equal(ply_marker_redirect_parse(value, NAME_MAX, buf,
						   sizeof(buf)),
			 0);
	assert_int_equal(strlen(buf), NAME_MAX);
	assert_int_equal(ply_marker_redirect_parse(value, NAME_MAX + 1, buf,
						   sizeof(buf)),
			 -EINVAL);
	/* the same in any component of a path from the layer root */
	memcpy(value, "/a/", 3);
	assert_int_equal(ply_marker_redirect_parse(value, 3 + NAME_MAX, buf,
						   sizeof(buf)),
			 0);
	assert_int_equal(ply_marker_redirect_parse(value, 3 + NAME_MAX + 1,
						   buf, sizeof(buf)),
			 -EINVAL);
	/* and in a middle one */
	memcpy(value + 3 + NAME_MAX + 1, "/b", 2);
	assert_int_equal(ply_marker_redirect_parse(value, 3 + NAME_MAX + 3,
						   buf, sizeof(buf)),
			 -EINVAL);
}

static void test_marks_parse(void **state)
{
	static const char list[] = "trusted.overlay.opaque\0security.x\0"
				   "user.overlay.redirect\0user.plyfs.origin";
	char *exact = malloc(sizeof(list) - 1);

	assert_int_equal(ply_marker_opaque_parse("y", 1), PLY_DIR_OPAQUE);
	assert_int_equal(ply_marker_opaque_parse("x", 1), PLY_DIR_XWHITEOUTS);
	assert_int_equal(ply_marker_opaque_parse("yy", 2), PLY_DIR_PLAIN);
	assert_int_equal(ply_marker_opaque_parse("", 0), PLY_DIR_PLAIN);
	assert_int_equal(ply_marker_marks_parse(list, sizeof(list)),
			 PLY_MARK_OPAQUE | PLY_MARK_REDIRECT | PLY_MARK_ORIGIN);
	/* the last name without its NUL (fuzz-marker: read past the end
	 * before): read within the size given */
	assert_non_null(exact);
	memcpy(exact, list, sizeof(list) - 1);
	assert_int_equal(ply_marker_marks_parse(exact, sizeof(list) - 1),
			 PLY_MARK_OPAQUE | PLY_MARK_REDIRECT | PLY_MARK_ORIGIN);
	assert_int_equal(ply_marker_marks_parse(exact, 10), 0);
	assert_int_equal(ply_marker_marks_parse("user.", 5), 0);
	free(exact);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_reserved),
		cmocka_unit_test(test_whiteout_target),
		T(test_dir_state_plain),
		T(test_dir_state_trusted_opaque),
		T(test_dir_state_user_opaque),
		T(test_dir_state_opq_file),
		T(test_dir_state_xwhiteouts),
		T(test_whiteout_chardev),
		T(test_whiteout_xattr),
		T(test_whiteout_trusted_xattr),
		T(test_whiteout_symlink_not),
		cmocka_unit_test(test_xattr_is_private),
		T(test_redirect_values),
		cmocka_unit_test(test_redirect_long_name),
		cmocka_unit_test(test_marks_parse),
	};
#undef T

	return cmocka_run_group_tests_name("marker", tests, NULL, NULL);
}
