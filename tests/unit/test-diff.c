/* test-diff.c: what the upper layer changes (diff.c): added, changed and
 * deleted paths for whiteouts in every format (character device, xattr,
 * ".wh.NAME"), opaque directories (xattr, ".wh..wh..opq"), a redirected
 * directory, a metacopy file; parents of changes; the order; that lower
 * names the upper does not touch are never reported; and the flags commit
 * relies on (opaque, covered, in_upper). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tree.h"

struct fx {
	char *base;
	struct ply_stack stack;
	struct ply_err err;
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

	if (fx->open)
		ply_stack_close(&fx->stack);
	tree_remove(fx->base);
	free(fx->base);
	free(fx);
	return 0;
}

static void open_stack(struct fx *fx)
{
	tree_open_u_l1_l2(fx->base, &fx->stack, &fx->err);
	fx->open = true;
}

/* The diff as "K /path" lines. */
static char *diff_text(struct fx *fx)
{
	struct ply_changes c;
	size_t size = 1;
	char *out;

	open_stack(fx);
	if (ply_diff_list(&fx->stack, &c, &fx->err) < 0)
		fail_msg("diff: %s", fx->err.msg);
	for (size_t i = 0; i < c.n; i++)
		size += strlen(c.v[i].path) + 3;
	out = calloc(1, size);
	assert_non_null(out);
	for (size_t i = 0; i < c.n; i++)
		sprintf(out + strlen(out), "%c %s\n", c.v[i].kind,
			c.v[i].path);
	ply_changes_free(&c);
	return out;
}

static void assert_diff(struct fx *fx, const char *expected)
{
	char *got = diff_text(fx);

	if (strcmp(got, expected))
		fail_msg("diff:\n%s--- expected:\n%s", got, expected);
	free(got);
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

/* Added, changed (and its parents), deleted by a character device. */
static void test_basic_chardev(void **state)
{
	struct fx *fx = *state;

	need_root();
	tree_write(fx->base, "l2/etc/passwd", "old");
	tree_write(fx->base, "l2/etc/group", "g");
	tree_write(fx->base, "l2/bin/sh", "sh");
	tree_write(fx->base, "l1/keep", "k");
	tree_write(fx->base, "u/etc/passwd", "new");
	tree_write(fx->base, "u/etc/added", "a");
	tree_mknod(fx->base, "u/keep", S_IFCHR | 0, makedev(0, 0));
	tree_write(fx->base, "u/top", "t");
	assert_diff(fx, "C /etc\n"
			"A /etc/added\n"
			"C /etc/passwd\n"
			"D /keep\n"
			"A /top\n");
}

/* A zero-size file with overlay.whiteout counts only in a directory
 * marked overlay.opaque=x. */
static void test_xattr_whiteout(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "l1/d/a", "a");
	tree_write(fx->base, "l1/d/b", "b");
	tree_write(fx->base, "l1/e/c", "c");
	tree_write(fx->base, "u/d/a", "");
	tree_setxattr(fx->base, "u/d/a", "user.overlay.whiteout", "y");
	tree_setxattr(fx->base, "u/d", "user.overlay.opaque", "x");
	/* not announced by its directory: an ordinary empty file */
	tree_write(fx->base, "u/e/c", "");
	tree_setxattr(fx->base, "u/e/c", "user.overlay.whiteout", "y");
	assert_diff(fx, "C /d\n"
			"D /d/a\n"
			"C /e\n"
			"C /e/c\n");
}

/* ".wh.NAME" whites out NAME; a whiteout of nothing is no change. */
static void test_file_whiteout(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "l2/x/gone", "g");
	tree_mkdir(fx->base, "l2/x/gonedir/sub");
	tree_write(fx->base, "u/x/.wh.gone", "");
	tree_write(fx->base, "u/x/.wh.gonedir", "");
	tree_write(fx->base, "u/x/.wh.never", "");
	tree_write(fx->base, "u/x/.wh..wh.aufs", "");
	assert_diff(fx, "C /x\n"
			"D /x/gone\n"
			"D /x/gonedir\n");
}

static void check_opaque(struct fx *fx)
{
	tree_write(fx->base, "l1/o/keep", "k");
	tree_write(fx->base, "l2/o/old", "o");
	tree_write(fx->base, "l2/o/sub/deep", "d");
	tree_write(fx->base, "u/o/keep", "new");
	tree_write(fx->base, "u/o/fresh", "f");
	assert_diff(fx, "C /o\n"
			"A /o/fresh\n"
			"C /o/keep\n"
			"D /o/old\n"
			"D /o/sub\n");
}

static void test_opaque_xattr(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "u/o");
	tree_setxattr(fx->base, "u/o", "user.overlay.opaque", "y");
	check_opaque(fx);
}

static void test_opaque_trusted(void **state)
{
	struct fx *fx = *state;

	need_root();
	tree_mkdir(fx->base, "u/o");
	tree_setxattr(fx->base, "u/o", "trusted.overlay.opaque", "y");
	check_opaque(fx);
}

static void test_opaque_file(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "u/o/.wh..wh..opq", "");
	check_opaque(fx);
}

/* A directory renamed by redirect: A for the new path and all it shows,
 * D for the old one (the whiteout left there). */
static void test_redirect(void **state)
{
	struct fx *fx = *state;

	need_root();
	tree_write(fx->base, "l2/old/x/y", "y");
	tree_write(fx->base, "l2/old/z", "z");
	tree_write(fx->base, "l2/other", "o");
	tree_mkdir(fx->base, "u/new");
	tree_setxattr(fx->base, "u/new", "trusted.overlay.redirect", "/old");
	tree_write(fx->base, "u/new/added", "a");
	tree_mknod(fx->base, "u/new/z", S_IFCHR | 0, makedev(0, 0));
	tree_mknod(fx->base, "u/old", S_IFCHR | 0, makedev(0, 0));
	assert_diff(fx, "A /new\n"
			"A /new/added\n"
			"A /new/x\n"
			"A /new/x/y\n"
			"D /old\n");
}

/* A redirected directory over one that was there: opaque for commit. */
struct flags_seen {
	char path[64];
	struct ply_diff_entry e;
};

static int record(const struct ply_diff_entry *e, void *ctx)
{
	struct flags_seen *seen = ctx;

	for (; seen->path[0]; seen++)
		;
	snprintf(seen->path, sizeof(seen->path), "%s", e->path);
	seen->e = *e;
	seen->e.now = seen->e.then = NULL;
	return 0;
}

static void test_flags(void **state)
{
	struct fx *fx = *state;
	struct flags_seen seen[16];

	need_root();
	memset(seen, 0, sizeof(seen));
	tree_write(fx->base, "l2/src/a", "a");
	tree_write(fx->base, "l2/dst/b", "b");
	tree_mkdir(fx->base, "u/dst");
	tree_setxattr(fx->base, "u/dst", "trusted.overlay.redirect", "/src");
	tree_mknod(fx->base, "u/src", S_IFCHR | 0, makedev(0, 0));
	open_stack(fx);
	assert_int_equal(ply_diff_walk(&fx->stack, record, seen, &fx->err), 0);
	assert_string_equal(seen[0].path, "/dst");
	assert_int_equal(seen[0].e.kind, PLY_DIFF_CHANGED);
	assert_true(seen[0].e.opaque);
	assert_true(seen[0].e.in_upper);
	assert_string_equal(seen[1].path, "/dst/a");
	assert_int_equal(seen[1].e.kind, PLY_DIFF_ADDED);
	assert_false(seen[1].e.in_upper);
	assert_string_equal(seen[2].path, "/dst/b");
	assert_int_equal(seen[2].e.kind, PLY_DIFF_DELETED);
	assert_true(seen[2].e.covered);
	assert_string_equal(seen[3].path, "/src");
	assert_int_equal(seen[3].e.kind, PLY_DIFF_DELETED);
	assert_false(seen[3].e.covered);
	assert_string_equal(seen[4].path, "");
}

/* A metacopy file (chmod of a lower file) is a change, its data below. */
static void test_metacopy(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup root, lk;
	const struct ply_part *data;

	tree_write(fx->base, "l1/f", "lower data");
	tree_write(fx->base, "u/f", "");
	assert_int_equal(truncate(tree_path(fx->base, "u/f"), 10), 0);
	tree_setxattr(fx->base, "u/f", "user.overlay.metacopy", "");
	assert_diff(fx, "C /f\n");
	assert_int_equal(ply_lookup_root(&fx->stack, &root), 0);
	assert_int_equal(ply_lookup_name(&fx->stack, root.parts, root.nparts,
					 "f", &lk),
			 0);
	data = ply_diff_data_part(&lk);
	assert_int_equal(data->layer, 1);
	ply_lookup_release(&lk);
	ply_lookup_release(&root);
}

/* Lower names the upper does not touch are not looked at; a type change
 * is a change; order is by component, each directory before its content. */
static void test_untouched_and_order(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "l1/a/x", "x");
	tree_write(fx->base, "l1/a/y", "y");
	tree_write(fx->base, "l1/a-b", "ab");
	tree_write(fx->base, "l2/lots/1", "1");
	tree_write(fx->base, "l2/t", "file");
	tree_write(fx->base, "u/a/y", "new");
	tree_write(fx->base, "u/a-b", "new");
	tree_write(fx->base, "u/t/inside", "now a dir");
	tree_symlink(fx->base, "u/s", "/etc/passwd");
	assert_diff(fx, "C /a\n"
			"C /a/y\n"
			"C /a-b\n"
			"A /s\n"
			"C /t\n"
			"A /t/inside\n");
}

static void test_empty_and_no_upper(void **state)
{
	struct fx *fx = *state;
	struct ply_changes c;
	struct ply_stack lower;
	char opt[2 * PATH_MAX];

	tree_write(fx->base, "l1/a", "a");
	assert_diff(fx, "");
	snprintf(opt, sizeof(opt), "lowerdir=%s/l1", fx->base);
	if (tree_stack_open(&lower, opt, &fx->err) < 0)
		fail_msg("stack: %s", fx->err.msg);
	assert_int_equal(ply_diff_list(&lower, &c, &fx->err), -EINVAL);
	assert_non_null(strstr(fx->err.msg, "no upper"));
	ply_stack_close(&lower);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_basic_chardev),
		T(test_xattr_whiteout),
		T(test_file_whiteout),
		T(test_opaque_xattr),
		T(test_opaque_trusted),
		T(test_opaque_file),
		T(test_redirect),
		T(test_flags),
		T(test_metacopy),
		T(test_untouched_and_order),
		T(test_empty_and_no_upper),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
