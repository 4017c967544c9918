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
					 &map),
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

	assert_int_equal(ply_idmap_parse("100000:0:65536", &map), 0);
	assert_int_equal(ply_idmap_to_presented(&map, 100000), 0);
	assert_int_equal(ply_idmap_to_presented(&map, 165535), 65535);
	assert_int_equal(ply_idmap_to_presented(&map, 165536),
			 PLY_OVERFLOW_ID);
	assert_int_equal(ply_idmap_to_presented(&map, 99999), PLY_OVERFLOW_ID);
	/* a second parse replaces the ranges */
	assert_int_equal(ply_idmap_parse("6:5:1", &map), 0);
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

	assert_int_equal(ply_idmap_parse("6:5:1", &map), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(ply_idmap_parse(bad[i], &map), -EINVAL);
	assert_int_equal(map.n, 1);
	assert_int_equal(ply_idmap_to_presented(&map, 6), 5);
	/* the last ids of the id space are fine */
	assert_int_equal(ply_idmap_parse("0:4294967295:1:4294967295:0:1",
					 &map),
			 0);
	assert_int_equal(ply_idmap_to_presented(&map, 0), 4294967295u);
	assert_int_equal(ply_idmap_to_disk(&map, 0), 4294967295u);
	ply_idmap_free(&map);
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
		cmocka_unit_test(test_override_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
