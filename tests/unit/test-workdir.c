/* test-workdir.c: the work directory (workdir.c): work/ and index/ made,
 * one mount per workdir and per upperdir, the lock released on close, a
 * crash's temporaries removed without following symlinks, fresh names. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tree.h"

static int setup(void **state)
{
	char *base = tree_mkdtemp();

	tree_mkdir(base, "lower");
	tree_mkdir(base, "upper");
	tree_mkdir(base, "work");
	tree_mkdir(base, "upper2");
	tree_mkdir(base, "work2");
	*state = base;
	return 0;
}

static int teardown(void **state)
{
	tree_remove(*state);
	free(*state);
	return 0;
}

static void open_stack(struct ply_stack *stack, const char *base,
		       const char *upper, const char *work)
{
	struct ply_err err = { { 0 } };
	char opts[4096];

	snprintf(opts, sizeof(opts),
		 "lowerdir=%s/lower,upperdir=%s/%s,workdir=%s/%s", base, base,
		 upper, base, work);
	if (tree_stack_open(stack, opts, &err) < 0)
		fail_msg("stack: %s", err.msg);
}

static bool is_dir(const char *path, mode_t *ret_mode)
{
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	if (ret_mode)
		*ret_mode = st.st_mode & 07777;
	return true;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void test_open_creates(void **state)
{
	const char *base = *state;
	struct ply_stack stack;
	struct ply_workdir wd;
	struct ply_err err = { { 0 } };
	mode_t mode = 0;
	int fds = tree_count_fds();

	open_stack(&stack, base, "upper", "work");
	assert_int_equal(ply_workdir_open(&stack, &wd, &err), 0);
	assert_true(is_dir(tree_path(base, "work/work"), &mode));
	assert_int_equal(mode, 0700);
	assert_true(is_dir(tree_path(base, "work/index"), NULL));
	assert_true(wd.fd >= 0 && wd.workfd >= 0 && wd.lockfd >= 0 &&
		    wd.upper_lockfd >= 0);
	/* workfd is work/ itself */
	assert_int_equal(mkdirat(wd.workfd, "probe", 0700), 0);
	assert_true(is_dir(tree_path(base, "work/work/probe"), NULL));
	ply_workdir_close(&wd);
	assert_int_equal(wd.fd, -1);
	/* a second open of existing work/ and index/ is fine */
	assert_int_equal(ply_workdir_open(&stack, &wd, &err), 0);
	assert_true(is_dir(tree_path(base, "work/work/probe"), NULL));
	ply_workdir_close(&wd);
	ply_stack_close(&stack);
	assert_int_equal(tree_count_fds(), fds);
}

static void test_no_upper(void **state)
{
	const char *base = *state;
	struct ply_stack stack;
	struct ply_workdir wd = { -1, -1, -1, -1 };
	struct ply_err err = { { 0 } };
	char opts[4096];

	snprintf(opts, sizeof(opts), "lowerdir=%s/lower", base);
	assert_int_equal(tree_stack_open(&stack, opts, &err), 0);
	assert_int_equal(ply_workdir_open(&stack, &wd, &err), -EINVAL);
	assert_int_equal(wd.fd, -1); /* untouched */
	ply_stack_close(&stack);
}

static void test_busy_same_workdir(void **state)
{
	const char *base = *state;
	struct ply_stack s1, s2;
	struct ply_workdir w1, w2;
	struct ply_err err = { { 0 } };
	int fds;

	open_stack(&s1, base, "upper", "work");
	open_stack(&s2, base, "upper", "work");
	fds = tree_count_fds();
	assert_int_equal(ply_workdir_open(&s1, &w1, &err), 0);
	assert_int_equal(ply_workdir_open(&s2, &w2, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "workdir"));
	assert_non_null(strstr(err.msg, "is in use by another mount"));
	assert_non_null(strstr(err.msg, tree_path(base, "work")));
	/* close releases: the second mount gets it now */
	ply_workdir_close(&w1);
	assert_int_equal(tree_count_fds(), fds);
	assert_int_equal(ply_workdir_open(&s2, &w2, &err), 0);
	assert_int_equal(ply_workdir_open(&s1, &w1, &err), -EBUSY);
	ply_workdir_close(&w2);
	assert_int_equal(tree_count_fds(), fds);
	ply_stack_close(&s1);
	ply_stack_close(&s2);
}

static void test_busy_same_upper(void **state)
{
	const char *base = *state;
	struct ply_stack s1, s2, s3;
	struct ply_workdir w1, w2, w3;
	struct ply_err err = { { 0 } };
	int fds;

	open_stack(&s1, base, "upper", "work");
	open_stack(&s2, base, "upper", "work2");
	open_stack(&s3, base, "upper2", "work2");
	fds = tree_count_fds();
	assert_int_equal(ply_workdir_open(&s1, &w1, &err), 0);
	assert_int_equal(ply_workdir_open(&s2, &w2, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "upperdir"));
	assert_non_null(strstr(err.msg, tree_path(base, "upper")));
	assert_non_null(strstr(err.msg, "is in use by another mount"));
	/* the refused open left work2 unlocked: another upper may use it */
	assert_int_equal(ply_workdir_open(&s3, &w3, &err), 0);
	ply_workdir_close(&w3);
	ply_workdir_close(&w1);
	assert_int_equal(ply_workdir_open(&s2, &w2, &err), 0);
	ply_workdir_close(&w2);
	assert_int_equal(tree_count_fds(), fds);
	ply_stack_close(&s1);
	ply_stack_close(&s2);
	ply_stack_close(&s3);
}

static void test_clean(void **state)
{
	const char *base = *state;
	struct ply_stack stack;
	struct ply_workdir wd;
	struct ply_err err = { { 0 } };

	/* what must survive, outside workdir */
	tree_write(base, "outside/keep", "precious");
	tree_write(base, "outside/dir/keep2", "precious");
	/* a crash's leftovers */
	tree_write(base, "work/work/#plyfs-0123456789abcdef", "half");
	tree_mkdir(base, "work/work/#plyfs-emptydir");
	tree_write(base, "work/work/#plyfs-dir/a", "x");
	tree_write(base, "work/work/#plyfs-dir/sub/b", "y");
	tree_mkdir(base, "work/work/#plyfs-dir/sub/deeper/still");
	tree_symlink(base, "work/work/#plyfs-dir/out",
		     tree_path(base, "outside"));
	tree_symlink(base, "work/work/#plyfs-dir/sub/outfile",
		     tree_path(base, "outside/keep"));
	tree_symlink(base, "work/work/#plyfs-link", tree_path(base, "outside"));
	tree_mknod(base, "work/work/#plyfs-fifo", S_IFIFO | 0600, 0);
	/* a directory copy-up that crashed after its chmod */
	tree_write(base, "work/work/#plyfs-locked/sub/f", "x");
	tree_write(base, "work/work/#plyfs-locked/g", "x");
	assert_int_equal(chmod(tree_path(base, "work/work/#plyfs-locked/sub"),
			       0),
			 0);
	assert_int_equal(chmod(tree_path(base, "work/work/#plyfs-locked"),
			       0500),
			 0);
	/* names that are not ours */
	tree_write(base, "work/work/#1234", "kernel");
	tree_mkdir(base, "work/work/incompat/volatile");
	tree_write(base, "work/work/plyfs-nohash", "z");
	tree_write(base, "work/index/#plyfs-notinwork", "i");

	open_stack(&stack, base, "upper", "work");
	assert_int_equal(ply_workdir_open(&stack, &wd, &err), 0);
	assert_false(exists(
		tree_path(base, "work/work/#plyfs-0123456789abcdef")));
	assert_false(exists(tree_path(base, "work/work/#plyfs-emptydir")));
	assert_false(exists(tree_path(base, "work/work/#plyfs-dir")));
	assert_false(exists(tree_path(base, "work/work/#plyfs-link")));
	assert_false(exists(tree_path(base, "work/work/#plyfs-fifo")));
	assert_false(exists(tree_path(base, "work/work/#plyfs-locked")));
	assert_true(exists(tree_path(base, "work/work/#1234")));
	assert_true(
		is_dir(tree_path(base, "work/work/incompat/volatile"), NULL));
	assert_true(exists(tree_path(base, "work/work/plyfs-nohash")));
	assert_true(exists(tree_path(base, "work/index/#plyfs-notinwork")));
	assert_true(exists(tree_path(base, "outside/keep")));
	assert_true(exists(tree_path(base, "outside/dir/keep2")));
	ply_workdir_close(&wd);
	ply_stack_close(&stack);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_temp_names(void **state)
{
	enum { N = 10000 };
	char **names = calloc(N, sizeof(*names));
	char small[12];

	assert_non_null(names);
	for (int i = 0; i < N; i++) {
		char buf[32];

		ply_workdir_temp_name(buf, sizeof(buf));
		assert_int_equal(strlen(buf), strlen(PLY_TEMP_PREFIX) + 16);
		assert_memory_equal(buf, PLY_TEMP_PREFIX,
				    strlen(PLY_TEMP_PREFIX));
		assert_int_equal(strspn(buf + strlen(PLY_TEMP_PREFIX),
					"0123456789abcdef"),
				 16);
		names[i] = strdup(buf);
		assert_non_null(names[i]);
	}
	qsort(names, N, sizeof(*names), cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(names[i - 1], names[i]);
	for (int i = 0; i < N; i++)
		free(names[i]);
	free(names);
	/* a short buffer is cut, never overrun */
	ply_workdir_temp_name(small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_upper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_same_workdir, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_busy_same_upper, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
		cmocka_unit_test(test_temp_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
