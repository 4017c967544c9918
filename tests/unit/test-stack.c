/* test-stack.c: opening a layer stack (stack.c): layer ids and fds, the
 * errors a user gets for a missing, non-directory or repeated layer, the
 * workdir checks, and the mountpoint checks. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tree.h"

struct fx {
	char *base;
	char cwd[PATH_MAX];
	char opt[4 * PATH_MAX];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_non_null(getcwd(fx->cwd, sizeof(fx->cwd)));
	fx->base = tree_mkdtemp();
	tree_mkdir(fx->base, "l1");
	tree_mkdir(fx->base, "l2");
	tree_mkdir(fx->base, "l3");
	tree_mkdir(fx->base, "u");
	tree_mkdir(fx->base, "w");
	tree_write(fx->base, "file", "not a directory\n");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (chdir(fx->cwd) < 0)
		return -1;
	tree_remove(fx->base);
	free(fx->base);
	free(fx);
	return 0;
}

/* fx->opt = fmt with every "%s" replaced by the base directory */
static const char *opt(struct fx *fx, const char *fmt)
{
	size_t len = 0;

	for (const char *p = fmt; *p && len + PATH_MAX < sizeof(fx->opt);) {
		if (p[0] == '%' && p[1] == 's') {
			len += (size_t)snprintf(fx->opt + len,
						sizeof(fx->opt) - len, "%s",
						fx->base);
			p += 2;
		} else {
			fx->opt[len++] = *p++;
		}
	}
	fx->opt[len] = '\0';
	return fx->opt;
}

/* The layer's fd reaches the directory named by rel. */
static void assert_layer_is(struct fx *fx, const struct ply_layer *layer,
			    const char *rel)
{
	struct stat fd_st, path_st;
	char want[PATH_MAX];

	assert_int_equal(fstat(layer->fd, &fd_st), 0);
	assert_int_equal(stat(tree_path(fx->base, rel), &path_st), 0);
	assert_int_equal(fd_st.st_dev, path_st.st_dev);
	assert_int_equal(fd_st.st_ino, path_st.st_ino);
	assert_int_equal(layer->dev, path_st.st_dev);
	assert_int_equal(layer->ino, path_st.st_ino);
	assert_non_null(realpath(tree_path(fx->base, rel), want));
	assert_string_equal(layer->path, want);
}

static void test_open_with_upper(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/l2,"
						 "upperdir=%s/u,workdir=%s/w"),
					 &err),
			 0);
	assert_true(stack.has_upper);
	assert_int_equal(stack.nlayers, 3);
	assert_true(stack.layers[0].is_upper);
	assert_false(stack.layers[1].is_upper);
	assert_false(stack.layers[2].is_upper);
	assert_int_equal(stack.layers[0].id, PLY_LAYER_ID_UPPER);
	assert_int_equal(stack.layers[1].id, 1);
	assert_int_equal(stack.layers[2].id, 2);
	assert_layer_is(fx, &stack.layers[0], "u");
	assert_layer_is(fx, &stack.layers[1], "l1");
	assert_layer_is(fx, &stack.layers[2], "l2");
	assert_true(stack.workfd >= 0);
	ply_stack_close(&stack);
}

static void test_open_lowers_only(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/l2:%s/l3"),
					 &err),
			 0);
	assert_false(stack.has_upper);
	assert_int_equal(stack.nlayers, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_false(stack.layers[i].is_upper);
		assert_int_equal(stack.layers[i].id, i + 1);
	}
	assert_layer_is(fx, &stack.layers[0], "l1");
	assert_layer_is(fx, &stack.layers[2], "l3");
	assert_int_equal(stack.workfd, -1);
	ply_stack_close(&stack);
}

static void test_close_releases_fds(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };
	int before = tree_count_fds();

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/l2,"
						 "upperdir=%s/u,workdir=%s/w"),
					 &err),
			 0);
	assert_int_equal(tree_count_fds(), before + 4);
	ply_stack_close(&stack);
	assert_int_equal(tree_count_fds(), before);
	/* a failed open leaves nothing open either */
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/l2:%s/nope"),
					 &err),
			 -ENOENT);
	assert_int_equal(tree_count_fds(), before);
}

static void test_missing_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/missing"),
					 &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, tree_path(fx->base, "missing")));

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1,upperdir=%s/"
						 "gone,workdir=%s/w"),
					 &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, tree_path(fx->base, "gone")));
}

static void test_file_as_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/file"),
					 &err),
			 -ENOTDIR);
	assert_non_null(strstr(err.msg, tree_path(fx->base, "file")));
}

static void test_symlinked_layer_accepted(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	/* runtimes pass layers as l/<id> symlinks */
	tree_symlink(fx->base, "l/abc", "../l2");
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/l/abc"),
					 &err),
			 0);
	assert_layer_is(fx, &stack.layers[1], "l2");
	ply_stack_close(&stack);
}

static void test_same_layer_twice(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/l2:%s/l1"),
					 &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "l1"));

	/* the same directory through a symlink */
	tree_symlink(fx->base, "alias", "l2");
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l2:%s/alias"),
					 &err),
			 -EINVAL);

	/* a relative and an absolute path */
	assert_int_equal(chdir(fx->base), 0);
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=l3:%s/l3"), &err),
			 -EINVAL);

	/* the upper layer given as a lower one too */
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/u,"
						 "upperdir=%s/u,workdir=%s/w"),
					 &err),
			 -EINVAL);
}

static void test_workdir_other_fs(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };
	char work[] = "/dev/shm/ply-unit-XXXXXX";
	char buf[3 * PATH_MAX];
	struct stat a, b;
	int r;

	if (stat("/dev/shm", &a) < 0 || stat(fx->base, &b) < 0 ||
	    a.st_dev == b.st_dev || !mkdtemp(work))
		skip();
	snprintf(buf, sizeof(buf), "lowerdir=%s/l1,upperdir=%s/u,workdir=%s",
		 fx->base, fx->base, work);
	r = tree_stack_open(&stack, buf, &err);
	rmdir(work);
	assert_int_equal(r, -EXDEV);
	assert_non_null(strstr(err.msg, "same filesystem"));
}

static void test_workdir_inside_upper(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	tree_mkdir(fx->base, "u/work");
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1,upperdir=%s/u,"
						 "workdir=%s/u/work"),
					 &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "inside"));

	/* and the other way round */
	tree_mkdir(fx->base, "w/upper");
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1,upperdir=%s/w/"
						 "upper,workdir=%s/w"),
					 &err),
			 -EINVAL);

	/* workdir equal to upper */
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1,upperdir=%s/u,"
						 "workdir=%s/u"),
					 &err),
			 -EINVAL);
}

static void test_workdir_is_a_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1:%s/l2,"
						 "upperdir=%s/u,workdir=%s/l2"),
					 &err),
			 -EINVAL);
}

static int open_default(struct fx *fx, struct ply_stack *stack)
{
	struct ply_err err = { "" };

	return tree_stack_open(stack,
			       opt(fx, "lowerdir=%s/l1:%s/l2,upperdir=%s/u,"
				       "workdir=%s/w"),
			       &err);
}

static void test_mountpoint_inside_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	tree_mkdir(fx->base, "l2/deep/mnt");
	tree_mkdir(fx->base, "u/mnt");
	assert_int_equal(open_default(fx, &stack), 0);
	assert_int_equal(ply_stack_check_mountpoint(
				 &stack, tree_path(fx->base, "l2/deep/mnt"),
				 &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "l2"));
	assert_int_equal(ply_stack_check_mountpoint(
				 &stack, tree_path(fx->base, "u/mnt"), &err),
			 -EINVAL);
	ply_stack_close(&stack);
}

static void test_mountpoint_equals_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(open_default(fx, &stack), 0);
	assert_int_equal(ply_stack_check_mountpoint(
				 &stack, tree_path(fx->base, "l1"), &err),
			 -EINVAL);
	assert_int_equal(ply_stack_check_mountpoint(
				 &stack, tree_path(fx->base, "u"), &err),
			 -EINVAL);
	ply_stack_close(&stack);
}

static void test_layer_inside_mountpoint(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	assert_int_equal(open_default(fx, &stack), 0);
	assert_int_equal(ply_stack_check_mountpoint(&stack, fx->base, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "inside"));
	ply_stack_close(&stack);

	/* only the workdir lies inside it */
	tree_mkdir(fx->base, "m/w2");
	assert_int_equal(tree_stack_open(&stack,
					 opt(fx, "lowerdir=%s/l1,upperdir=%s/u,"
						 "workdir=%s/m/w2"),
					 &err),
			 0);
	assert_int_equal(ply_stack_check_mountpoint(
				 &stack, tree_path(fx->base, "m"), &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "workdir"));
	ply_stack_close(&stack);
}

static void test_separate_mountpoint(void **state)
{
	struct fx *fx = *state;
	struct ply_stack stack;
	struct ply_err err = { "" };

	tree_mkdir(fx->base, "mnt");
	assert_int_equal(open_default(fx, &stack), 0);
	assert_int_equal(ply_stack_check_mountpoint(
				 &stack, tree_path(fx->base, "mnt"), &err),
			 0);
	/* a missing mountpoint is an error that names it */
	assert_true(ply_stack_check_mountpoint(
			    &stack, tree_path(fx->base, "nomnt"), &err) < 0);
	assert_non_null(strstr(err.msg, "nomnt"));
	ply_stack_close(&stack);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_with_upper),
		T(test_open_lowers_only),
		T(test_close_releases_fds),
		T(test_missing_layer),
		T(test_file_as_layer),
		T(test_symlinked_layer_accepted),
		T(test_same_layer_twice),
		T(test_workdir_other_fs),
		T(test_workdir_inside_upper),
		T(test_workdir_is_a_layer),
		T(test_mountpoint_inside_layer),
		T(test_mountpoint_equals_layer),
		T(test_layer_inside_mountpoint),
		T(test_separate_mountpoint),
	};
#undef T

	return cmocka_run_group_tests_name("stack", tests, NULL, NULL);
}
