/* test-which.c: where a path comes from (which.c): the rows plyctl which
 * prints for shadowed, whited-out, opaque-hidden and merged objects, for a
 * missing path and a path under a hidden parent. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
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
	struct ply_which *w;
	struct ply_err err;
	bool open;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->w = calloc(1, sizeof(*fx->w));
	assert_non_null(fx->w);
	fx->base = tree_mkstack();
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->open)
		ply_stack_close(&fx->stack);
	tree_remove(fx->base);
	free(fx->base);
	free(fx->w);
	free(fx);
	return 0;
}

static void open_stack(struct fx *fx)
{
	tree_open_u_l1_l2(fx->base, &fx->stack, &fx->err);
	fx->open = true;
}

static int which(struct fx *fx, const char *path)
{
	return ply_which(&fx->stack, path, fx->w, &fx->err);
}

static void assert_row(const struct ply_which *w, size_t i, uint16_t layer,
		       enum ply_which_role role)
{
	if (i >= w->n)
		fail_msg("row %zu missing (%zu rows)", i, w->n);
	if (w->rows[i].layer != layer || w->rows[i].role != role)
		fail_msg("row %zu: layer %u role %d, expected layer %u role %d",
			 i, w->rows[i].layer, w->rows[i].role, layer, role);
}

static void test_shadowed(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "u/f", "upper");
	tree_write(fx->base, "l2/f", "lower");
	open_stack(fx);
	assert_int_equal(which(fx, "/f"), 0);
	assert_true(fx->w->visible);
	assert_int_equal(fx->w->hidden_at, 0);
	assert_int_equal(fx->w->n, 2);
	assert_row(fx->w, 0, UPPER, PLY_ROLE_PROVIDES);
	assert_true(S_ISREG(fx->w->rows[0].mode));
	assert_row(fx->w, 1, L2, PLY_ROLE_SHADOWED);
	assert_non_null(strstr(fx->w->rows[1].why, "upper"));
}

static void test_whited_out(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "u/.wh.f", "");
	tree_write(fx->base, "l1/f", "lower");
	open_stack(fx);
	assert_int_equal(which(fx, "f"), 0);
	assert_false(fx->w->visible);
	assert_int_equal(fx->w->n, 2);
	assert_row(fx->w, 0, UPPER, PLY_ROLE_HIDES);
	assert_non_null(strstr(fx->w->rows[0].marker, ".wh."));
	assert_row(fx->w, 1, L1, PLY_ROLE_HIDDEN);
	assert_non_null(strstr(fx->w->rows[1].why, "whiteout"));
}

static void test_whited_out_chardev(void **state)
{
	struct fx *fx = *state;

	if (geteuid() != 0)
		skip();
	tree_mknod(fx->base, "l1/f", S_IFCHR | 0600, makedev(0, 0));
	tree_write(fx->base, "l2/f", "lower");
	open_stack(fx);
	assert_int_equal(which(fx, "f"), 0);
	assert_false(fx->w->visible);
	assert_int_equal(fx->w->n, 2);
	assert_row(fx->w, 0, L1, PLY_ROLE_HIDES);
	assert_non_null(strstr(fx->w->rows[0].marker, "0/0"));
	assert_row(fx->w, 1, L2, PLY_ROLE_HIDDEN);
	assert_true(fx->w->rows[1].why[0]);
}

static void test_under_opaque_dir(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "u/d");
	tree_setxattr(fx->base, "u/d", "user.overlay.opaque", "y");
	tree_write(fx->base, "l1/d/f", "hidden");
	open_stack(fx);
	assert_int_equal(which(fx, "d/f"), 0);
	assert_false(fx->w->visible);
	assert_int_equal(fx->w->hidden_at, 0);
	assert_int_equal(fx->w->n, 1);
	assert_row(fx->w, 0, L1, PLY_ROLE_HIDDEN);
	assert_non_null(strstr(fx->w->rows[0].why, "opaque"));

	/* the opaque directory itself says so */
	assert_int_equal(which(fx, "d"), 0);
	assert_true(fx->w->visible);
	assert_row(fx->w, 0, UPPER, PLY_ROLE_PROVIDES);
	assert_non_null(strstr(fx->w->rows[0].marker, "opaque"));
	assert_row(fx->w, 1, L1, PLY_ROLE_HIDDEN);
}

static void test_merged_dir(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "u/d");
	tree_mkdir(fx->base, "l2/d");
	open_stack(fx);
	assert_int_equal(which(fx, "d/"), 0);
	assert_true(fx->w->visible);
	assert_int_equal(fx->w->n, 2);
	assert_row(fx->w, 0, UPPER, PLY_ROLE_PROVIDES);
	assert_true(S_ISDIR(fx->w->rows[0].mode));
	assert_row(fx->w, 1, L2, PLY_ROLE_MERGED);
}

static void test_root(void **state)
{
	struct fx *fx = *state;

	open_stack(fx);
	assert_int_equal(which(fx, "/"), 0);
	assert_true(fx->w->visible);
	assert_int_equal(fx->w->n, 3);
	assert_row(fx->w, 0, UPPER, PLY_ROLE_PROVIDES);
	assert_row(fx->w, 1, L1, PLY_ROLE_MERGED);
	assert_row(fx->w, 2, L2, PLY_ROLE_MERGED);
}

static void test_missing(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "l1/d");
	open_stack(fx);
	assert_int_equal(which(fx, "nothing"), 0);
	assert_false(fx->w->visible);
	assert_int_equal(fx->w->n, 0);
	assert_int_equal(which(fx, "d/nothing"), 0);
	assert_false(fx->w->visible);
	assert_int_equal(fx->w->n, 0);
}

static void test_hidden_parent(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "u/.wh.p", "");
	tree_write(fx->base, "l1/p/q/f", "f");
	tree_write(fx->base, "l1/file", "a file");
	open_stack(fx);
	assert_int_equal(which(fx, "p/q/f"), 0);
	assert_false(fx->w->visible);
	assert_int_equal(fx->w->hidden_at, 1);
	assert_string_equal(fx->w->hidden_path, "/p");
	/* the rows describe the hidden parent */
	assert_row(fx->w, 0, UPPER, PLY_ROLE_HIDES);
	assert_row(fx->w, 1, L1, PLY_ROLE_HIDDEN);

	/* a parent that is a file */
	assert_int_equal(which(fx, "file/x"), 0);
	assert_false(fx->w->visible);
	assert_int_equal(fx->w->hidden_at, 1);
	assert_string_equal(fx->w->hidden_path, "/file");
	assert_row(fx->w, 0, L1, PLY_ROLE_PROVIDES);
}

static void test_dotdot_refused(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "l1/d/f", "f");
	open_stack(fx);
	assert_int_equal(which(fx, "d/../d/f"), -EINVAL);
	assert_non_null(strstr(fx->err.msg, ".."));
	assert_int_equal(which(fx, ".."), -EINVAL);
	/* "." and empty components are fine */
	assert_int_equal(which(fx, "./d//./f"), 0);
	assert_true(fx->w->visible);
}

static void test_dir_below_nondir(void **state)
{
	struct fx *fx = *state;

	/* the walk stops at l1's file: l2's directory is not in the view,
	 * and which must say so rather than leave it out */
	tree_mkdir(fx->base, "u/d");
	tree_write(fx->base, "l1/d", "file");
	tree_mkdir(fx->base, "l2/d");
	open_stack(fx);
	assert_int_equal(which(fx, "d"), 0);
	assert_true(fx->w->visible);
	assert_row(fx->w, 0, UPPER, PLY_ROLE_PROVIDES);
	assert_row(fx->w, 1, L1, PLY_ROLE_HIDDEN);
	assert_non_null(strstr(fx->w->rows[1].why, "directory above"));
	assert_int_equal(fx->w->n, 3);
	assert_row(fx->w, 2, L2, PLY_ROLE_HIDDEN);
	assert_true(fx->w->rows[2].why[0]);
}

/* Bytes the process has allocated and not freed. */
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

/* A leak grows the heap with every call; allow a little one-time noise
 * from the allocator and the test harness. */
static void assert_no_leak(size_t before, size_t calls)
{
	size_t now = heap_in_use();

	if (now > before + 8 * calls)
		fail_msg("ply_which leaked %zu bytes over %zu calls",
			 now - before, calls);
}

static void test_no_leak_under_hidden_parent(void **state)
{
	struct fx *fx = *state;
	size_t before;

	tree_write(fx->base, "u/.wh.p", "");
	tree_write(fx->base, "l1/p/q/r/f", "f");
	open_stack(fx);
	assert_int_equal(which(fx, "p/q/r/f"), 0); /* warm up */
	before = heap_in_use();
	for (int i = 0; i < 100; i++)
		assert_int_equal(which(fx, "p/q/r/f"), 0);
	assert_int_equal(fx->w->hidden_at, 1);
	assert_no_leak(before, 100);
}

static void test_no_leak(void **state)
{
	struct fx *fx = *state;
	size_t before;

	tree_write(fx->base, "u/a/b/f", "f");
	tree_write(fx->base, "l1/a/b/f", "f");
	open_stack(fx);
	/* warm up each path once */
	assert_int_equal(which(fx, "a/b/f"), 0);
	assert_int_equal(which(fx, "a/../x"), -EINVAL);
	assert_int_equal(which(fx, "a/nope"), 0);
	before = heap_in_use();
	for (int i = 0; i < 100; i++) {
		assert_int_equal(which(fx, "a/b/f"), 0);
		assert_int_equal(which(fx, "a/../x"), -EINVAL);
		assert_int_equal(which(fx, "a/nope"), 0);
	}
	assert_no_leak(before, 300);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_shadowed),
		T(test_whited_out),
		T(test_whited_out_chardev),
		T(test_under_opaque_dir),
		T(test_merged_dir),
		T(test_root),
		T(test_missing),
		T(test_hidden_parent),
		T(test_dotdot_refused),
		T(test_dir_below_nondir),
		T(test_no_leak),
		T(test_no_leak_under_hidden_parent),
	};
#undef T

	return cmocka_run_group_tests_name("which", tests, NULL, NULL);
}
