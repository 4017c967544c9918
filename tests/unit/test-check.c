/* test-check.c: what check.c finds in an upper and work directory, kind by
 * kind (a temporary, a whiteout over nothing, a redirect to nowhere, index
 * entries of no lower file and with nlink 1, a marker in a format the
 * stack would not write, malformed xattrs), that a clean stack has none,
 * and that repair removes exactly the safe ones. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tree.h"

struct fx {
	char *base;
	struct ply_stack stack;
	struct ply_err err;
	bool open;
	struct ply_problem got[64];
	char where[64][PATH_MAX];
	size_t n;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->base = tree_mkdtemp();
	tree_mkdir(fx->base, "u");
	tree_mkdir(fx->base, "w/work");
	tree_mkdir(fx->base, "w/plyfs-index");
	tree_mkdir(fx->base, "l1");
	tree_mkdir(fx->base, "l2");
	/* the lower layers: a file, a directory, a hard-linked pair */
	tree_write(fx->base, "l2/etc/passwd", "root\n");
	tree_write(fx->base, "l2/data/a", "a\n");
	tree_link(fx->base, "l2/data/a", "l2/data/a2");
	tree_write(fx->base, "l1/etc/motd", "hi\n");
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

/* Opens the stack, with the markers the stack writes set as given (the
 * probe is plyctl's job): .wh. files and user. xattrs, which every user
 * can make. */
static void open_stack(struct fx *fx, enum ply_wh_format format)
{
	char opt[4 * PATH_MAX];

	if (fx->open)
		ply_stack_close(&fx->stack);
	snprintf(opt, sizeof(opt),
		 "lowerdir=%s/l1:%s/l2,upperdir=%s/u,workdir=%s/w", fx->base,
		 fx->base, fx->base, fx->base);
	if (tree_stack_open(&fx->stack, opt, &fx->err) < 0)
		fail_msg("stack: %s", fx->err.msg);
	fx->open = true;
	fx->stack.wh_format = format;
	fx->stack.xattr_ns = "user.";
}

static void collect(const struct ply_problem *p, void *ctx)
{
	struct fx *fx = ctx;

	assert_true(fx->n < 64);
	fx->got[fx->n] = *p;
	snprintf(fx->where[fx->n], PATH_MAX, "%s", p->where);
	fx->got[fx->n].where = fx->where[fx->n];
	fx->got[fx->n].what = NULL;
	fx->n++;
}

static struct ply_check_result run(struct fx *fx, bool repair)
{
	struct ply_check_result res;

	fx->n = 0;
	if (ply_check(&fx->stack, repair, collect, fx, &res, &fx->err) < 0)
		fail_msg("check: %s", fx->err.msg);
	assert_int_equal(res.found, fx->n);
	return res;
}

/* The problem of kind at the path ending in suffix, or NULL. */
static const struct ply_problem *find(struct fx *fx, enum ply_problem_kind kind,
				      const char *suffix)
{
	for (size_t i = 0; i < fx->n; i++) {
		size_t a = strlen(fx->got[i].where), b = strlen(suffix);

		if (fx->got[i].kind == kind && a >= b &&
		    !strcmp(fx->got[i].where + a - b, suffix))
			return &fx->got[i];
	}
	return NULL;
}

static void test_clean(void **state)
{
	struct fx *fx = *state;

	/* a proper whiteout, an opaque directory, a new file */
	tree_write(fx->base, "u/etc/.wh.passwd", "");
	tree_mkdir(fx->base, "u/data");
	tree_write(fx->base, "u/data/.wh..wh..opq", "");
	tree_write(fx->base, "u/new", "n\n");
	open_stack(fx, PLY_WH_FILE);
	assert_int_equal(run(fx, false).found, 0);
}

static void test_each_kind(void **state)
{
	struct fx *fx = *state;
	const struct ply_problem *p;
	char idx[64];

	tree_mkdir(fx->base, "w/work/#plyfs-00000000deadbeef/inner");
	tree_write(fx->base, "w/work/kernel-temp", ""); /* not ours */
	tree_write(fx->base, "u/etc/.wh.ghost", "");    /* hides nothing */
	tree_write(fx->base, "u/etc/.wh.passwd", "");   /* hides passwd */
	tree_mkdir(fx->base, "u/moved");
	tree_setxattr(fx->base, "u/moved", "user.overlay.redirect", "/nowhere");
	tree_mkdir(fx->base, "u/moved2");
	tree_setxattr(fx->base, "u/moved2", "user.overlay.redirect", "/data");
	tree_mkdir(fx->base, "u/bad");
	tree_setxattr(fx->base, "u/bad", "user.overlay.opaque", "q");
	tree_write(fx->base, "u/f", "f\n");
	tree_setxattr(fx->base, "u/f", "user.plyfs.origin", "abc");
	tree_write(fx->base, "u/g", "g\n");
	tree_setxattr(fx->base, "u/g", "user.containers.override_stat", "x");
	/* index: one of no lower file, one linked nowhere */
	tree_write(fx->base, "u/linked", "l\n");
	tree_link(fx->base, "u/linked", "w/plyfs-index/00000000000f0f0f");
	tree_write(fx->base, "w/plyfs-index/0000000000000123", "");
	open_stack(fx, PLY_WH_XATTR);
	run(fx, false);

	assert_non_null(find(fx, PLY_PROBLEM_TEMPORARY,
			     "/work/#plyfs-00000000deadbeef"));
	assert_null(find(fx, PLY_PROBLEM_TEMPORARY, "kernel-temp"));
	p = find(fx, PLY_PROBLEM_WHITEOUT_NOTHING, "/u/etc/.wh.ghost");
	assert_non_null(p);
	assert_true(p->repairable);
	assert_null(find(fx, PLY_PROBLEM_WHITEOUT_NOTHING, "/u/etc/.wh.passwd"));
	/* .wh. files where the stack writes xattr whiteouts */
	assert_non_null(find(fx, PLY_PROBLEM_FOREIGN_MARKER, "/u/etc/.wh.passwd"));
	p = find(fx, PLY_PROBLEM_REDIRECT_NOWHERE, "/u/moved");
	assert_non_null(p);
	assert_false(p->repairable);
	assert_null(find(fx, PLY_PROBLEM_REDIRECT_NOWHERE, "/u/moved2"));
	assert_non_null(find(fx, PLY_PROBLEM_BAD_XATTR, "/u/bad"));
	assert_non_null(find(fx, PLY_PROBLEM_BAD_XATTR, "/u/f"));
	assert_non_null(find(fx, PLY_PROBLEM_BAD_XATTR, "/u/g"));
	snprintf(idx, sizeof(idx), "/plyfs-index/%s", "00000000000f0f0f");
	assert_non_null(find(fx, PLY_PROBLEM_INDEX_ORPHAN, idx));
	assert_non_null(find(fx, PLY_PROBLEM_INDEX_UNLINKED,
			     "/plyfs-index/0000000000000123"));
}

/* An index entry of a real hard-linked lower file is no problem. */
static void test_index_of_lower_file(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup root, lk;
	char name[32];

	open_stack(fx, PLY_WH_FILE);
	assert_int_equal(ply_lookup_root(&fx->stack, &root), 0);
	assert_int_equal(tree_lookup_path(&fx->stack, &root, "data/a", &lk), 0);
	ply_index_name(lk.st.st_ino, name, sizeof(name));
	ply_lookup_release(&lk);
	ply_lookup_release(&root);
	tree_mkdir(fx->base, "u/data");
	tree_write(fx->base, "u/data/a", "copied\n");
	tree_link(fx->base, "u/data/a", "u/data/a2");
	snprintf(fx->where[0], PATH_MAX, "w/plyfs-index/%s", name);
	tree_link(fx->base, "u/data/a", fx->where[0]);
	run(fx, false);
	assert_int_equal(fx->n, 0);
}

static void test_repair(void **state)
{
	struct fx *fx = *state;
	struct ply_check_result res;
	struct stat st;

	tree_mkdir(fx->base, "w/work/#plyfs-00000000deadbeef/inner");
	tree_write(fx->base, "u/etc/.wh.ghost", "");
	tree_write(fx->base, "u/etc/.wh.passwd", "");
	tree_write(fx->base, "w/plyfs-index/0000000000000123", "");
	tree_mkdir(fx->base, "u/moved");
	tree_setxattr(fx->base, "u/moved", "user.overlay.redirect", "/nowhere");
	open_stack(fx, PLY_WH_FILE);
	res = run(fx, true);
	assert_int_equal(res.found, 4);
	assert_int_equal(res.repaired, 3);
	assert_int_equal(find(fx, PLY_PROBLEM_TEMPORARY, "deadbeef")->repaired, 1);
	assert_int_equal(
		find(fx, PLY_PROBLEM_REDIRECT_NOWHERE, "/u/moved")->repaired, 0);
	assert_int_equal(lstat(tree_path(fx->base, "w/work/#plyfs-00000000deadbeef"), &st), -1);
	assert_int_equal(lstat(tree_path(fx->base, "u/etc/.wh.ghost"), &st), -1);
	assert_int_equal(lstat(tree_path(fx->base, "w/plyfs-index/0000000000000123"), &st), -1);
	/* what hides something stays */
	assert_int_equal(lstat(tree_path(fx->base, "u/etc/.wh.passwd"), &st), 0);
	/* again: only what cannot be repaired is left */
	res = run(fx, false);
	assert_int_equal(res.found, 1);
	assert_non_null(find(fx, PLY_PROBLEM_REDIRECT_NOWHERE, "/u/moved"));
}

static void test_no_upper(void **state)
{
	struct fx *fx = *state;
	char opt[PATH_MAX + 16];

	snprintf(opt, sizeof(opt), "lowerdir=%s/l1", fx->base);
	assert_int_equal(tree_stack_open(&fx->stack, opt, &fx->err), 0);
	fx->open = true;
	assert_int_equal(ply_check(&fx->stack, false, NULL, NULL, NULL,
				   &fx->err),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_of_lower_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_upper, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
