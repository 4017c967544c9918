/* Inode numbers as a user sees them: distinct objects never share st_ino
 * (even when their layers reuse the same numbers), every path keeps its
 * st_ino across unmount and remount, hard links share one. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

struct ino_ent {
	char *path; /* relative to the walked root */
	ino_t ino;
	nlink_t nlink;
	mode_t mode;
};

/* nftw has no user pointer: the walk in progress. */
static struct ino_ent *walk_ents;
static size_t walk_n, walk_root_len;

static int walk_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	if (flag == FTW_NS || flag == FTW_DNR)
		fail_msg("%s: cannot stat or read", path);
	walk_ents = realloc(walk_ents, (walk_n + 1) * sizeof(*walk_ents));
	assert_non_null(walk_ents);
	walk_ents[walk_n].path = strdup(path + walk_root_len);
	walk_ents[walk_n].ino = st->st_ino;
	walk_ents[walk_n].nlink = st->st_nlink;
	walk_ents[walk_n].mode = st->st_mode;
	walk_n++;
	return 0;
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(((const struct ino_ent *)a)->path,
		      ((const struct ino_ent *)b)->path);
}

/* Every object under root (root included), sorted by path. */
static struct ino_ent *walk(const char *root, size_t *ret_n)
{
	struct ino_ent *ents;

	walk_ents = NULL;
	walk_n = 0;
	walk_root_len = strlen(root);
	if (nftw(root, walk_one, 32, FTW_PHYS | FTW_MOUNT) != 0)
		fail_msg("walking %s: %s", root, strerror(errno));
	ents = walk_ents;
	*ret_n = walk_n;
	walk_ents = NULL;
	qsort(ents, *ret_n, sizeof(*ents), cmp_path);
	return ents;
}

static void walk_free(struct ino_ent *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ents[i].path);
	free(ents);
}

static int cmp_ino(const void *a, const void *b)
{
	ino_t x = ((const struct ino_ent *)a)->ino;
	ino_t y = ((const struct ino_ent *)b)->ino;

	return x < y ? -1 : x > y;
}

/* No two paths of the walk share an st_ino (there are no hard links). */
static void assert_all_distinct(struct ino_ent *ents, size_t n)
{
	struct ino_ent *byino = malloc(n * sizeof(*byino));

	assert_non_null(byino);
	memcpy(byino, ents, n * sizeof(*byino));
	qsort(byino, n, sizeof(*byino), cmp_ino);
	for (size_t i = 1; i < n; i++) {
		if (byino[i].ino == byino[i - 1].ino)
			fail_msg("\"%s\" and \"%s\" share st_ino %lu",
				 byino[i - 1].path, byino[i].path,
				 (unsigned long)byino[i].ino);
	}
	free(byino);
}

/* The same tree shape in every layer, so names recur at every level, plus
 * objects that exist in one layer only. */
static void build_tree(int nlayers)
{
	for (int l = 1; l <= nlayers; l++) {
		h_file(h_fmt("l%d/common", l), h_fmt("layer %d", l));
		h_file(h_fmt("l%d/d/common", l), "x");
		h_file(h_fmt("l%d/d/own-%d", l, l), "x");
		h_file(h_fmt("l%d/d/sub/own-%d", l, l), "x");
		h_symlink("common", h_fmt("l%d/d/link-%d", l, l));
		h_mkdir(h_fmt("l%d/dir-%d", l, l));
	}
	h_file("l1/d/sub/top-only", "x");
	h_fifo("l2/fifo");
}

static void distinct_objects(void **state)
{
	struct ino_ent *ents;
	size_t n;

	build_tree(3);
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	ents = walk(h_path("mnt"), &n);
	/* "", common, d, d/common, d/own-*3, d/sub, d/sub/own-*3,
	 * d/sub/top-only, d/link-*3, dir-*3, fifo */
	assert_int_equal(n, 19);
	assert_all_distinct(ents, n);
	walk_free(ents, n);
}

/* Two fresh tmpfs instances hand out the same inode numbers in the same
 * order: the mount must still give every object its own st_ino. */
static void distinct_across_filesystems(void **state)
{
	struct ino_ent *ents;
	struct stat a, b;
	size_t n;

	h_need_root();
	h_tmpfs("t1");
	h_tmpfs("t2");
	for (int l = 1; l <= 2; l++) {
		h_file(h_fmt("t%d/only-%d", l, l), "x");
		h_file(h_fmt("t%d/common/c-%d", l, l), "x");
		h_file(h_fmt("t%d/dir-%d/f-%d", l, l, l), "x");
	}
	/* the precondition this test is about */
	h_assert_ok(lstat(h_path("t1/only-1"), &a));
	h_assert_ok(lstat(h_path("t2/only-2"), &b));
	if (a.st_ino != b.st_ino) {
		print_message("tmpfs numbers do not collide here\n");
		skip();
	}
	h_mount_lowers("mnt", "t1", "t2", NULL);

	ents = walk(h_path("mnt"), &n);
	/* "", only-1, only-2, common, common/c-1, common/c-2, dir-1,
	 * dir-1/f-1, dir-2, dir-2/f-2 */
	assert_int_equal(n, 10);
	assert_all_distinct(ents, n);
	walk_free(ents, n);
}

/* Unmount and mount again: every path has the st_ino it had. */
static void stable_across_remount(void **state)
{
	struct ino_ent *first, *second;
	size_t n1, n2;
	struct h_mount *m;

	build_tree(3);
	h_whiteout("l1/d/own-3", H_WH_FILE);
	h_opaque("l2/dir-2", H_OPQ_FILE);
	m = h_mount_lowers("mnt", "l1", "l2", "l3", NULL);
	first = walk(h_path("mnt"), &n1);
	h_umount(m);
	assert_false(h_is_mountpoint(h_path("mnt")));

	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);
	second = walk(h_path("mnt"), &n2);
	assert_int_equal(n1, n2);
	for (size_t i = 0; i < n1; i++) {
		assert_string_equal(first[i].path, second[i].path);
		if (first[i].ino != second[i].ino)
			fail_msg("\"%s\": st_ino %lu, after remount %lu",
				 first[i].path, (unsigned long)first[i].ino,
				 (unsigned long)second[i].ino);
	}
	walk_free(first, n1);
	walk_free(second, n2);
}

/* Hard links inside one layer: one st_ino, st_nlink 2; two different
 * linked pairs in two layers stay different. */
static void hard_links(void **state)
{
	struct stat a, b, c, d, other;

	h_file("l1/h1", "pair one");
	h_link("l1/h1", "l1/sub/h2");
	h_file("l2/g1", "pair two");
	h_link("l2/g1", "l2/sub/g2");
	h_file("l2/single", "x");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_ok(lstat(h_path("mnt/h1"), &a));
	h_assert_ok(lstat(h_path("mnt/sub/h2"), &b));
	h_assert_ok(lstat(h_path("mnt/g1"), &c));
	h_assert_ok(lstat(h_path("mnt/sub/g2"), &d));
	h_assert_ok(lstat(h_path("mnt/single"), &other));
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 2);
	assert_int_equal(b.st_nlink, 2);
	assert_int_equal(c.st_ino, d.st_ino);
	assert_int_equal(c.st_nlink, 2);
	assert_int_equal(d.st_nlink, 2);
	assert_int_not_equal(a.st_ino, c.st_ino);
	assert_int_not_equal(a.st_ino, other.st_ino);
	assert_int_not_equal(c.st_ino, other.st_ino);
	assert_int_equal(other.st_nlink, 1);
	h_assert_content(h_path("mnt/sub/g2"), "pair two");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(distinct_objects),
		H_TEST(distinct_across_filesystems),
		H_TEST(stable_across_remount),
		H_TEST(hard_links),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
