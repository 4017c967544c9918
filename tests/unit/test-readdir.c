/* test-readdir.c: the merged listing of a directory (readdir.c): dots
 * first, each name once from the topmost layer, every whiteout format and
 * marker left out, entry inos equal to what a lookup reports, large
 * listings, a stable order, and cookies that mean the same place in every
 * listing. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tree.h"

#define UPPER 0
#define L1 1
#define L2 2

struct fx {
	char *base;
	struct ply_stack stack;
	struct ply_lookup root;
	struct ply_dir dir;
	bool open;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->base = tree_mkstack();
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	ply_dir_free(&fx->dir);
	if (fx->open) {
		ply_lookup_release(&fx->root);
		ply_stack_close(&fx->stack);
	}
	tree_remove(fx->base);
	free(fx->base);
	free(fx);
	return 0;
}

static void open_stack(struct fx *fx)
{
	struct ply_err err = { "" };

	tree_open_u_l1_l2(fx->base, &fx->stack, &err);
	assert_int_equal(ply_lookup_root(&fx->stack, &fx->root), 0);
	fx->open = true;
}

/* Lists the merged directory at path ("" for the root) into fx->dir. */
static void list(struct fx *fx, const char *path)
{
	struct ply_lookup lk;

	ply_dir_free(&fx->dir);
	if (!*path) {
		assert_int_equal(ply_dir_read(&fx->stack, fx->root.parts,
					      fx->root.nparts,
					      fx->root.st.st_ino,
					      fx->root.st.st_ino, &fx->dir),
				 0);
		return;
	}
	assert_int_equal(tree_lookup_path(&fx->stack, &fx->root, path, &lk),
			 0);
	assert_int_equal(ply_dir_read(&fx->stack, lk.parts, lk.nparts,
				      lk.st.st_ino, fx->root.st.st_ino,
				      &fx->dir),
			 0);
	ply_lookup_release(&lk);
}

/* The entry named name, or NULL; fails if it is listed twice. */
static const struct ply_dirent *entry(struct fx *fx, const char *name)
{
	const struct ply_dirent *found = NULL;

	for (size_t i = 0; i < fx->dir.count; i++) {
		if (strcmp(fx->dir.entries[i].name, name))
			continue;
		if (found)
			fail_msg("'%s' listed twice", name);
		found = &fx->dir.entries[i];
	}
	return found;
}

static void test_dots_first(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "l1/d/f", "f");
	open_stack(fx);
	ply_dir_free(&fx->dir);
	assert_int_equal(ply_dir_read(&fx->stack, fx->root.parts,
				      fx->root.nparts, 1234, 5678, &fx->dir),
			 0);
	assert_true(fx->dir.count >= 3);
	assert_string_equal(fx->dir.entries[0].name, ".");
	assert_int_equal(fx->dir.entries[0].ino, 1234);
	assert_int_equal(fx->dir.entries[0].type, DT_DIR);
	assert_string_equal(fx->dir.entries[1].name, "..");
	assert_int_equal(fx->dir.entries[1].ino, 5678);
	assert_int_equal(fx->dir.entries[1].type, DT_DIR);
	assert_int_equal(fx->dir.count, 3);
	assert_string_equal(fx->dir.entries[2].name, "d");
	/* the dots are not repeated from each layer */
	assert_non_null(entry(fx, "."));
	assert_non_null(entry(fx, ".."));
}

static void test_topmost_wins(void **state)
{
	struct fx *fx = *state;
	const struct ply_dirent *e;

	tree_write(fx->base, "u/a", "file");
	tree_mkdir(fx->base, "l1/a");
	tree_symlink(fx->base, "l2/a", "x");
	tree_write(fx->base, "u/b", "b");
	tree_symlink(fx->base, "l1/c", "x");
	tree_write(fx->base, "l2/c", "c");
	tree_mkdir(fx->base, "l1/d");
	tree_mkdir(fx->base, "l2/d");
	tree_write(fx->base, "l2/e", "e");
	open_stack(fx);
	list(fx, "");
	assert_int_equal(fx->dir.count, 2 + 5);
	e = entry(fx, "a");
	assert_non_null(e);
	assert_int_equal(e->type, DT_REG);
	assert_int_equal(e->layer, UPPER);
	e = entry(fx, "c");
	assert_non_null(e);
	assert_int_equal(e->type, DT_LNK);
	assert_int_equal(e->layer, L1);
	e = entry(fx, "d");
	assert_non_null(e);
	assert_int_equal(e->type, DT_DIR);
	assert_int_equal(e->layer, L1);
	assert_int_equal(entry(fx, "e")->layer, L2);
	assert_int_equal(entry(fx, "b")->layer, UPPER);
}

static void test_whiteout_file_hides(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "u/.wh.x", "");
	tree_write(fx->base, "l1/x", "x");
	tree_write(fx->base, "l1/.wh.d", "");
	tree_write(fx->base, "l2/d/f", "f");
	tree_write(fx->base, "l2/keep", "k");
	open_stack(fx);
	list(fx, "");
	assert_null(entry(fx, "x"));
	assert_null(entry(fx, "d"));
	assert_null(entry(fx, ".wh.x"));
	assert_null(entry(fx, ".wh.d"));
	assert_non_null(entry(fx, "keep"));
	assert_int_equal(fx->dir.count, 3);
}

static void test_whiteout_chardev_hides(void **state)
{
	struct fx *fx = *state;
	const struct ply_dirent *e;

	if (geteuid() != 0)
		skip();
	tree_mknod(fx->base, "u/x", S_IFCHR | 0600, makedev(0, 0));
	tree_write(fx->base, "l1/x", "x");
	tree_mknod(fx->base, "l1/y", S_IFCHR | 0600, makedev(0, 0));
	tree_mkdir(fx->base, "l2/y");
	tree_mknod(fx->base, "u/null", S_IFCHR | 0600, makedev(1, 3));
	open_stack(fx);
	list(fx, "");
	assert_null(entry(fx, "x"));
	assert_null(entry(fx, "y"));
	/* a character device that is not 0/0 is an ordinary entry */
	e = entry(fx, "null");
	assert_non_null(e);
	assert_int_equal(e->type, DT_CHR);
	assert_int_equal(fx->dir.count, 3);
}

static void test_whiteout_xattr_hides(void **state)
{
	struct fx *fx = *state;
	const struct ply_dirent *e;

	tree_setxattr(fx->base, "u", "user.overlay.opaque", "x");
	tree_write(fx->base, "u/x", "");
	tree_setxattr(fx->base, "u/x", "user.overlay.whiteout", "y");
	tree_write(fx->base, "l1/x", "x");
	/* in a directory that does not announce them: an ordinary file */
	tree_write(fx->base, "u/p/x", "");
	tree_setxattr(fx->base, "u/p/x", "user.overlay.whiteout", "y");
	tree_write(fx->base, "l1/p/x", "x");
	open_stack(fx);
	list(fx, "");
	assert_null(entry(fx, "x"));
	assert_non_null(entry(fx, "p"));
	list(fx, "p");
	e = entry(fx, "x");
	assert_non_null(e);
	assert_int_equal(e->layer, UPPER);
	assert_int_equal(e->type, DT_REG);
}

static void test_wh_file_own_layer(void **state)
{
	struct fx *fx = *state;
	const struct ply_dirent *e;

	tree_write(fx->base, "l1/f", "l1");
	tree_write(fx->base, "l1/.wh.f", "");
	tree_write(fx->base, "l2/f", "l2");
	tree_write(fx->base, "l1/.wh.g", "");
	tree_write(fx->base, "l2/g", "g");
	open_stack(fx);
	list(fx, "");
	e = entry(fx, "f");
	assert_non_null(e);
	assert_int_equal(e->layer, L1);
	assert_null(entry(fx, "g"));
	assert_int_equal(fx->dir.count, 3);
}

static void test_opaque_marker_unlisted(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "l1/d/.wh..wh..opq", "");
	tree_write(fx->base, "l1/d/mine", "m");
	tree_write(fx->base, "l2/d/below", "b");
	tree_write(fx->base, "l2/.wh..wh..opq", "");
	tree_write(fx->base, "l2/.wh..wh.plnk/x", "aufs metadata");
	open_stack(fx);
	list(fx, "d");
	assert_null(entry(fx, ".wh..wh..opq"));
	assert_null(entry(fx, "below"));
	assert_non_null(entry(fx, "mine"));
	assert_int_equal(fx->dir.count, 3);
	list(fx, "");
	assert_null(entry(fx, ".wh..wh..opq"));
	assert_null(entry(fx, ".wh..wh.plnk"));
	assert_int_equal(fx->dir.count, 3); /* ., .., d */
}

static void test_ino_matches_lookup(void **state)
{
	struct fx *fx = *state;
	size_t checked = 0;

	tree_write(fx->base, "u/a", "a");
	tree_write(fx->base, "l1/a", "a below");
	tree_write(fx->base, "l1/b", "b");
	tree_link(fx->base, "l1/b", "l1/b2");
	tree_mkdir(fx->base, "u/m");
	tree_mkdir(fx->base, "l2/m");
	tree_mkdir(fx->base, "l2/only");
	tree_symlink(fx->base, "l2/s", "a");
	tree_write(fx->base, "l2/c", "c");
	open_stack(fx);
	list(fx, "");
	for (size_t i = 2; i < fx->dir.count; i++) {
		const struct ply_dirent *e = &fx->dir.entries[i];
		struct ply_lookup lk;

		assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
						 fx->root.nparts, e->name, &lk),
				 0);
		if (e->ino != lk.st.st_ino)
			fail_msg("%s: d_ino %llx, st_ino %llx", e->name,
				 (unsigned long long)e->ino,
				 (unsigned long long)lk.st.st_ino);
		assert_int_equal(e->type, IFTODT(lk.st.st_mode));
		ply_lookup_release(&lk);
		checked++;
	}
	assert_int_equal(checked, 7);
	assert_int_equal(entry(fx, "b")->ino, entry(fx, "b2")->ino);
}

#define NAMES 20000

static void test_many_names(void **state)
{
	struct fx *fx = *state;
	unsigned char *seen = calloc(NAMES, 1);
	char name[32];

	assert_non_null(seen);
	/* u: 0..9999, l1: 5000..14999, l2: 10000..19999 */
	for (int i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "%s/n%d",
			 i < 10000 ? "u" : "l2", i);
		tree_write(fx->base, name, "");
		if (i >= 5000 && i < 15000) {
			snprintf(name, sizeof(name), "l1/n%d", i);
			tree_write(fx->base, name, "");
		}
	}
	open_stack(fx);
	list(fx, "");
	assert_int_equal(fx->dir.count, 2 + NAMES);
	for (size_t i = 2; i < fx->dir.count; i++) {
		const struct ply_dirent *e = &fx->dir.entries[i];
		int n = atoi(e->name + 1);

		assert_in_range(n, 0, NAMES - 1);
		assert_int_equal(seen[n], 0);
		seen[n] = 1;
		assert_int_equal(e->layer,
				 n < 10000 ? UPPER : n < 15000 ? L1 : L2);
		/* the name index finds each entry as itself */
		assert_ptr_equal(ply_dir_find(&fx->dir, e->name), e);
	}
	assert_ptr_equal(ply_dir_find(&fx->dir, "."), &fx->dir.entries[0]);
	assert_null(ply_dir_find(&fx->dir, "n20000"));
	assert_null(ply_dir_find(&fx->dir, "n"));
	assert_null(ply_dir_find(&fx->dir, ""));
	free(seen);
}

/* A whited-out or marker name is not found, as it is not listed. */
static void test_find_skips_hidden(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "l1/gone", "");
	tree_write(fx->base, "l1/kept", "");
	tree_write(fx->base, "l2/.wh.other", "");
	tree_write(fx->base, "u/.wh.gone", "");
	open_stack(fx);
	list(fx, "");
	assert_non_null(ply_dir_find(&fx->dir, "kept"));
	assert_null(ply_dir_find(&fx->dir, "gone"));
	assert_null(ply_dir_find(&fx->dir, ".wh.gone"));
	/* only a lower part without marker names is marked as such */
	assert_int_equal(fx->dir.unmarked, UINT64_C(1) << 1);
}

static void test_deterministic(void **state)
{
	struct fx *fx = *state;
	struct ply_dir first;
	char name[32];

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "%s/n%d",
			 i % 3 == 0 ? "u" : i % 3 == 1 ? "l1" : "l2", i);
		tree_write(fx->base, name, "");
	}
	tree_write(fx->base, "u/.wh.n1", "");
	open_stack(fx);
	list(fx, "");
	first = fx->dir;
	memset(&fx->dir, 0, sizeof(fx->dir));
	list(fx, "");
	assert_int_equal(first.count, 2 + 299);
	assert_int_equal(fx->dir.count, first.count);
	for (size_t i = 0; i < first.count; i++) {
		assert_string_equal(fx->dir.entries[i].name,
				    first.entries[i].name);
		assert_int_equal(fx->dir.entries[i].ino, first.entries[i].ino);
	}
	ply_dir_free(&first);
}

/* Cookies: 1 and 2 for the dots, then rising with the entries; a seek to
 * an entry's cookie lands on the next entry; and a name keeps its cookie
 * when other names come and go, so a seek to a cookie taken from an older
 * listing lands after the same name, or where it would be. */
static void test_cookies(void **state)
{
	struct fx *fx = *state;
	struct ply_dir first;
	char name[PATH_MAX];
	size_t kept = 0;

	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "u/n%d", i);
		tree_write(fx->base, name, "");
	}
	open_stack(fx);
	list(fx, "");
	assert_int_equal(fx->dir.entries[0].cookie, 1);
	assert_int_equal(fx->dir.entries[1].cookie, 2);
	assert_int_equal(ply_dir_seek(&fx->dir, 0), 0);
	for (size_t i = 0; i < fx->dir.count; i++) {
		if (i > 0)
			assert_true(fx->dir.entries[i].cookie >
				    fx->dir.entries[i - 1].cookie);
		/* a 32-bit readdir takes every offset */
		assert_true(fx->dir.entries[i].cookie < (UINT64_C(1) << 31));
		assert_int_equal(ply_dir_seek(&fx->dir,
					      fx->dir.entries[i].cookie),
				 i + 1);
	}
	first = fx->dir;
	memset(&fx->dir, 0, sizeof(fx->dir));

	/* every third name gone, 100 new ones */
	for (int i = 0; i < 200; i += 3) {
		snprintf(name, sizeof(name), "%s/u/n%d", fx->base, i);
		assert_int_equal(unlink(name), 0);
	}
	for (int i = 200; i < 300; i++) {
		snprintf(name, sizeof(name), "u/n%d", i);
		tree_write(fx->base, name, "");
	}
	list(fx, "");
	for (size_t i = 2; i < first.count; i++) {
		const struct ply_dirent *now = entry(fx, first.entries[i].name);
		size_t next = ply_dir_seek(&fx->dir, first.entries[i].cookie);

		if (now) {
			assert_int_equal(now->cookie, first.entries[i].cookie);
			assert_ptr_equal(&fx->dir.entries[next], now + 1);
			kept++;
		}
		/* nothing at or before the old place comes after it */
		for (size_t j = next; j < fx->dir.count; j++)
			assert_true(fx->dir.entries[j].cookie >
				    first.entries[i].cookie);
	}
	assert_int_equal(kept, 200 - 67);
	ply_dir_free(&first);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_dots_first),
		T(test_topmost_wins),
		T(test_whiteout_file_hides),
		T(test_whiteout_chardev_hides),
		T(test_whiteout_xattr_hides),
		T(test_wh_file_own_layer),
		T(test_opaque_marker_unlisted),
		T(test_ino_matches_lookup),
		T(test_many_names),
		T(test_deterministic),
		T(test_find_skips_hidden),
		T(test_cookies),
	};
#undef T

	return cmocka_run_group_tests_name("readdir", tests, NULL, NULL);
}
