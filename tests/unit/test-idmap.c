/* test-idmap.c: uidmapping=/gidmapping= ranges and the override xattr. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>

#include "ply.h"
#include "tree.h"

/* The keep-id shape containers-storage passes, leading ':' included:
 * "ondisk:presented:length" triples, as fuse-overlayfs reads them. */
static void test_runtime_keep_id(void **state)
{
	struct ply_idmap map = { 0 };

	assert_int_equal(ply_idmap_parse(":0:1:1001:1001:0:1:1002:1002:64535",
					 &map, NULL),
			 0);
	assert_int_equal(map.n, 3);
	/* on disk 0..1000 show as 1..1001, 1001 as 0, the rest as they are */
	assert_int_equal(ply_idmap_to_presented(&map, 0), 1);
	assert_int_equal(ply_idmap_to_disk(&map, 1), 0);
	assert_int_equal(ply_idmap_to_presented(&map, 1000), 1001);
	assert_int_equal(ply_idmap_to_presented(&map, 1001), 0);
	assert_int_equal(ply_idmap_to_disk(&map, 0), 1001);
	assert_int_equal(ply_idmap_to_presented(&map, 1002), 1002);
	assert_int_equal(ply_idmap_to_presented(&map, 65536), 65536);
	/* beyond every range: the overflow id, both ways */
	assert_int_equal(ply_idmap_to_presented(&map, 70000), PLY_OVERFLOW_ID);
	assert_int_equal(ply_idmap_to_disk(&map, 70000), PLY_OVERFLOW_ID);
	ply_idmap_free(&map);
}

static void test_identity_without_ranges(void **state)
{
	struct ply_idmap map = { 0 };

	assert_int_equal(ply_idmap_to_presented(&map, 12345), 12345);
	assert_int_equal(ply_idmap_to_disk(&map, 0), 0);
}

static void test_range_edges(void **state)
{
	struct ply_idmap map = { 0 };

	assert_int_equal(ply_idmap_parse("100000:0:65536", &map, NULL), 0);
	assert_int_equal(ply_idmap_to_presented(&map, 100000), 0);
	assert_int_equal(ply_idmap_to_presented(&map, 165535), 65535);
	assert_int_equal(ply_idmap_to_presented(&map, 165536),
			 PLY_OVERFLOW_ID);
	assert_int_equal(ply_idmap_to_presented(&map, 99999), PLY_OVERFLOW_ID);
	/* a second parse replaces the ranges */
	assert_int_equal(ply_idmap_parse("6:5:1", &map, NULL), 0);
	assert_int_equal(map.n, 1);
	assert_int_equal(ply_idmap_to_presented(&map, 6), 5);
	ply_idmap_free(&map);
}

/* ply_idmap_parse checks what it is given itself (fuzz-options: called
 * alone, it took "-1" and ids past 2^32 truncated, and ranges that wrap
 * past 2^32-1 to 0 in one direction only). A refusal keeps the map. */
static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"", ":", "1:2", "1:2:3:4", "a:b:c", "-1:0:1", "+1:0:1",
		" 1:0:1", "1x:0:1", "4294967296:0:1", "0:4294967295:2",
		"4294967295:0:2", "1:2:3:", "0:0:18446744073709551617",
	};
	struct ply_idmap map = { 0 };

	assert_int_equal(ply_idmap_parse("6:5:1", &map, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(ply_idmap_parse(bad[i], &map, NULL), -EINVAL);
	assert_int_equal(map.n, 1);
	assert_int_equal(ply_idmap_to_presented(&map, 6), 5);
	/* the last ids of the id space are fine */
	assert_int_equal(ply_idmap_parse("0:4294967295:1:4294967295:0:1",
					 &map, NULL),
			 0);
	assert_int_equal(ply_idmap_to_presented(&map, 0), 4294967295u);
	assert_int_equal(ply_idmap_to_disk(&map, 0), 4294967295u);
	ply_idmap_free(&map);
}

#define SYNTAX "expected CONTAINER:HOST:SIZE ranges joined by ':'"

/* Each refusal says which problem it is, in one phrase that options.c
 * puts after "uidmapping=VALUE: ". */
static void expect_why(const char *spec, const char *why)
{
	struct ply_idmap map = { 0 };
	struct ply_err err = { { 0 } };

	if (ply_idmap_parse(spec, &map, &err) != -EINVAL)
		fail_msg("'%s': accepted", spec);
	if (strcmp(err.msg, why))
		fail_msg("'%s': '%s', expected '%s'", spec, err.msg, why);
	assert_int_equal(map.n, 0);
}

/* As the kernel's uid_map refuses them: an empty range, and ranges whose
 * on-disk sides or presented sides overlap (the map would not be
 * one-to-one: an id shown one way would be written back as another). */
static void test_parse_refuses_overlap_and_empty(void **state)
{
	static const char *const overlapping[] = {
		"0:0:10:5:100:10",   /* on disk 0..9 and 5..14 */
		"0:0:10:100:5:10",   /* presented 0..9 and 5..14 */
		"0:0:10:9:100:1",    /* the last id of the first range */
		"100:0:10:95:50:10", /* the first id of the first range */
		"0:0:10:20:20:5:3:50:1", /* the third with the first */
		"0:0:1:0:1:1",       /* the same on-disk id twice */
		"0:0:4294967295:4294967294:4294967295:1",
	};
	static const char *const disjoint[] = {
		"0:0:10:10:10:10",   /* adjacent, both sides */
		"0:100:10:100:0:10", /* swapped: each side disjoint */
		":0:1:1001:1001:0:1:1002:1002:64535",
		"0:4294967295:1:4294967295:0:1",
	};
	struct ply_idmap map = { 0 };

	for (size_t i = 0; i < sizeof(overlapping) / sizeof(*overlapping); i++)
		expect_why(overlapping[i], "ranges overlap");
	for (size_t i = 0; i < sizeof(disjoint) / sizeof(*disjoint); i++) {
		if (ply_idmap_parse(disjoint[i], &map, NULL) != 0)
			fail_msg("'%s': refused", disjoint[i]);
	}
	ply_idmap_free(&map);
	expect_why("0:0:0", "a range of size 0");
	expect_why("0:0:1:5:5:0", "a range of size 0");
	expect_why("0:0", SYNTAX);
	expect_why("a:0:1", SYNTAX);
	expect_why("", SYNTAX);
	expect_why("0:0:4294967296", "a number past 4294967295");
	/* a letter after a long run of digits is still a letter */
	expect_why("99999999999x:0:1", SYNTAX);
	expect_why("4294967295:0:10", "a range past 4294967295");
	expect_why("0:4294967295:2", "a range past 4294967295");
}

static void test_override_roundtrip(void **state)
{
	char *dir = tree_mkdtemp();
	struct stat st;
	int fd;

	tree_write(dir, "f", "x");
	tree_write(dir, "bad", "x");
	fd = open(tree_path(dir, "f"), O_PATH | O_NOFOLLOW);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	/* none yet: st untouched */
	assert_int_equal(ply_override_read(fd, &st), 0);
	assert_int_equal(ply_override_write(fd, PLY_OVERRIDE_CONTAINERS, 7, 8,
					    S_IFREG | 04751),
			 0);
	assert_int_equal(ply_override_read(fd, &st), 1);
	assert_int_equal(st.st_uid, 7);
	assert_int_equal(st.st_gid, 8);
	assert_int_equal(st.st_mode, S_IFREG | 04751);
	close(fd);
	assert_true(ply_override_name(PLY_OVERRIDE_CONTAINERS));
	/* hidden from listings through the mount */
	assert_true(ply_xattr_is_private(PLY_OVERRIDE_CONTAINERS));
	assert_true(ply_xattr_is_private(PLY_OVERRIDE_PRIVILEGED));
	/* a malformed value is refused, not half applied */
	tree_setxattr(dir, "bad", PLY_OVERRIDE_CONTAINERS, "12:x");
	fd = open(tree_path(dir, "bad"), O_PATH | O_NOFOLLOW);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(ply_override_read(fd, &st), -EINVAL);
	close(fd);
	tree_remove(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runtime_keep_id),
		cmocka_unit_test(test_identity_without_ranges),
		cmocka_unit_test(test_range_edges),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_parse_refuses_overlap_and_empty),
		cmocka_unit_test(test_override_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
