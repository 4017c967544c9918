/* test-inode.c: the inode table (inode.c): one inode per object, lookup
 * references and forget, growth, hard links, and the bounded cache of
 * part fds (closed when over budget, reopened by name on pin, -ESTALE when
 * the layer changed). fds are counted in /proc/self/fd. */
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
	struct ply_stack stack;
	struct ply_inode_table table;
	bool open;
	int fds0; /* open fds once the table holds the root */
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

	if (fx->open) {
		ply_inode_table_destroy(&fx->table);
		ply_stack_close(&fx->stack);
	}
	tree_remove(fx->base);
	free(fx->base);
	free(fx);
	return 0;
}

/* Opens u over l1 over l2 and a table allowed max_fds part fds. */
static void open_table(struct fx *fx, size_t max_fds)
{
	struct ply_err err = { "" };
	struct ply_lookup root;

	tree_open_u_l1_l2(fx->base, &fx->stack, &err);
	assert_int_equal(ply_lookup_root(&fx->stack, &root), 0);
	assert_int_equal(ply_inode_table_init(&fx->table, &root, max_fds), 0);
	ply_lookup_release(&root);
	fx->open = true;
	fx->fds0 = tree_count_fds();
}

/* What the daemon does on a lookup: name in parent, then the table. */
static int acquire(struct fx *fx, struct ply_inode *parent, const char *name,
		   struct ply_inode **ret)
{
	struct ply_lookup lk;
	int r = ply_inode_pin(&fx->table, parent);

	if (r < 0)
		return r;
	r = ply_lookup_name(&fx->stack, parent->parts, parent->nparts, name,
			    &lk);
	ply_inode_unpin(&fx->table, parent);
	if (r < 0)
		return r;
	return ply_inode_table_acquire(&fx->table, parent, name, &lk, ret);
}

static struct ply_inode *must_acquire(struct fx *fx, struct ply_inode *parent,
				      const char *name)
{
	struct ply_inode *inode = NULL;
	int r = acquire(fx, parent, name, &inode);

	if (r < 0)
		fail_msg("acquire %s: %d", name, r);
	return inode;
}

/* The content of a pinned regular file inode. */
static const char *content(struct ply_inode *inode)
{
	static char buf[256];
	char proc[64];
	ssize_t n;
	int fd;

	assert_true(inode->parts[0].fd >= 0);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", inode->parts[0].fd);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* Pins inode and checks it reads as want. */
static void assert_reads(struct fx *fx, struct ply_inode *inode,
			 const char *want)
{
	assert_int_equal(ply_inode_pin(&fx->table, inode), 0);
	assert_string_equal(content(inode), want);
	ply_inode_unpin(&fx->table, inode);
}

static void test_same_object_twice(void **state)
{
	struct fx *fx = *state;
	struct ply_inode *a, *b;

	tree_write(fx->base, "l1/f", "f");
	open_table(fx, 1000);
	a = must_acquire(fx, fx->table.root, "f");
	assert_int_equal(tree_count_fds(), fx->fds0 + 1);
	b = must_acquire(fx, fx->table.root, "f");
	assert_ptr_equal(a, b);
	assert_int_equal(a->nlookup, 2);
	assert_int_equal(fx->table.count, 1);
	/* the second lookup's fd was closed, not kept */
	assert_int_equal(tree_count_fds(), fx->fds0 + 1);
	assert_reads(fx, a, "f");
}

static void test_forget(void **state)
{
	struct fx *fx = *state;
	struct ply_inode *a, *d;

	tree_write(fx->base, "l1/f", "f");
	tree_write(fx->base, "l1/g", "g");
	tree_write(fx->base, "u/d/x", "x");
	tree_mkdir(fx->base, "l1/d");
	open_table(fx, 1000);

	a = must_acquire(fx, fx->table.root, "f");
	must_acquire(fx, fx->table.root, "f");
	ply_inode_table_forget(&fx->table, a, 1);
	assert_int_equal(fx->table.count, 1);
	assert_int_equal(a->nlookup, 1);
	assert_int_equal(tree_count_fds(), fx->fds0 + 1);
	ply_inode_table_forget(&fx->table, a, 1);
	assert_int_equal(fx->table.count, 0);
	assert_int_equal(tree_count_fds(), fx->fds0);

	/* forgetting more than was looked up frees too */
	a = must_acquire(fx, fx->table.root, "g");
	ply_inode_table_forget(&fx->table, a, 5);
	assert_int_equal(fx->table.count, 0);
	assert_int_equal(tree_count_fds(), fx->fds0);

	/* a merged directory holds one fd per layer; a child holds it */
	d = must_acquire(fx, fx->table.root, "d");
	assert_int_equal(d->nparts, 2);
	assert_int_equal(tree_count_fds(), fx->fds0 + 2);
	a = must_acquire(fx, d, "x");
	ply_inode_table_forget(&fx->table, d, 1);
	assert_int_equal(fx->table.count, 2);
	assert_reads(fx, a, "x");
	ply_inode_table_forget(&fx->table, a, 1);
	assert_int_equal(fx->table.count, 0);
	assert_int_equal(tree_count_fds(), fx->fds0);
}

static void test_destroy_closes_all(void **state)
{
	struct fx *fx = *state;
	int before = tree_count_fds();
	char name[32];

	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "l2/f%d", i);
		tree_write(fx->base, name, "x");
	}
	open_table(fx, 1000);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		must_acquire(fx, fx->table.root, name);
	}
	assert_int_equal(tree_count_fds(), fx->fds0 + 20);
	ply_inode_table_destroy(&fx->table);
	ply_stack_close(&fx->stack);
	fx->open = false;
	assert_int_equal(tree_count_fds(), before);
}

#define MANY 5000

static void test_many_inodes(void **state)
{
	struct fx *fx = *state;
	struct ply_inode **inodes = calloc(MANY, sizeof(*inodes));
	struct ply_inode *sub;
	char name[32];

	assert_non_null(inodes);
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "l1/sub/n%d", i);
		tree_write(fx->base, name, name + 3);
	}
	open_table(fx, 100000);
	sub = must_acquire(fx, fx->table.root, "sub");
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		inodes[i] = must_acquire(fx, sub, name);
	}
	assert_int_equal(fx->table.count, MANY + 1);
	assert_true(fx->table.nbuckets > 1024); /* it grew */
	/* every one is still found, as the same inode */
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		assert_ptr_equal(must_acquire(fx, sub, name), inodes[i]);
		assert_int_equal(inodes[i]->nlookup, 2);
	}
	assert_int_equal(fx->table.count, MANY + 1);
	assert_int_equal(tree_count_fds(), fx->fds0 + 1 + MANY);
	for (int i = 0; i < MANY; i++)
		ply_inode_table_forget(&fx->table, inodes[i], 2);
	ply_inode_table_forget(&fx->table, sub, 1);
	assert_int_equal(fx->table.count, 0);
	assert_int_equal(tree_count_fds(), fx->fds0);
	free(inodes);
}

static void test_many_inodes_small_budget(void **state)
{
	struct fx *fx = *state;
	struct ply_inode **inodes = calloc(MANY, sizeof(*inodes));
	struct ply_inode *sub;
	char name[32];

	assert_non_null(inodes);
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "l1/sub/n%d", i);
		tree_write(fx->base, name, name + 3);
	}
	open_table(fx, 64);
	sub = must_acquire(fx, fx->table.root, "sub");
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		inodes[i] = must_acquire(fx, sub, name);
		assert_true(tree_count_fds() <= fx->fds0 + 64);
	}
	/* each reads right when used, and the budget holds throughout */
	for (int i = 0; i < MANY; i += 7) {
		snprintf(name, sizeof(name), "sub/n%d", i);
		assert_reads(fx, inodes[i], name);
		assert_true(tree_count_fds() <= fx->fds0 + 64);
	}
	for (int i = 0; i < MANY; i++)
		ply_inode_table_forget(&fx->table, inodes[i], 1);
	ply_inode_table_forget(&fx->table, sub, 1);
	assert_int_equal(fx->table.count, 0);
	assert_int_equal(tree_count_fds(), fx->fds0);
	free(inodes);
}

static void test_hard_links(void **state)
{
	struct fx *fx = *state;
	struct ply_inode *a, *b, *sub;

	tree_write(fx->base, "l1/a", "linked");
	tree_link(fx->base, "l1/a", "l1/sub/b");
	open_table(fx, 1000);
	a = must_acquire(fx, fx->table.root, "a");
	sub = must_acquire(fx, fx->table.root, "sub");
	b = must_acquire(fx, sub, "b");
	assert_ptr_equal(a, b);
	assert_int_equal(a->nlookup, 2);
	assert_int_equal(fx->table.count, 2);
	assert_reads(fx, b, "linked");
}

static void test_budget_closes_lru(void **state)
{
	struct fx *fx = *state;
	struct ply_inode *inodes[10];
	char name[32];

	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "l1/f%d", i);
		tree_write(fx->base, name, name + 3);
	}
	open_table(fx, 3 + 2); /* the root's 3 parts, and 2 more */
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		inodes[i] = must_acquire(fx, fx->table.root, name);
		assert_true(tree_count_fds() <= fx->fds0 + 2);
	}
	assert_true(fx->table.open_fds <= 5);
	/* closed ones reopen on use, and the right file each time */
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_reads(fx, inodes[i], name);
		assert_true(tree_count_fds() <= fx->fds0 + 2);
	}
}

static void test_pinned_kept_open(void **state)
{
	struct fx *fx = *state;
	struct ply_inode *keep;
	struct stat st;
	char name[32];
	int fd;

	tree_write(fx->base, "l1/keep", "keep");
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "l1/f%d", i);
		tree_write(fx->base, name, "x");
	}
	open_table(fx, 3 + 1);
	keep = must_acquire(fx, fx->table.root, "keep");
	assert_int_equal(ply_inode_pin(&fx->table, keep), 0);
	fd = keep->parts[0].fd;
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		must_acquire(fx, fx->table.root, name);
	}
	/* the pinned fd survived every trim */
	assert_int_equal(keep->parts[0].fd, fd);
	assert_int_equal(fstat(fd, &st), 0);
	assert_string_equal(content(keep), "keep");
	ply_inode_unpin(&fx->table, keep);
}

static void test_reopen_through_closed_parent(void **state)
{
	struct fx *fx = *state;
	struct ply_inode *d, *e, *f;
	char name[32];

	tree_write(fx->base, "l2/d/e/f", "deep");
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "l1/g%d", i);
		tree_write(fx->base, name, "x");
	}
	open_table(fx, 3 + 1);
	d = must_acquire(fx, fx->table.root, "d");
	e = must_acquire(fx, d, "e");
	f = must_acquire(fx, e, "f");
	/* the kernel forgets the directories; the file keeps them */
	ply_inode_table_forget(&fx->table, d, 1);
	ply_inode_table_forget(&fx->table, e, 1);
	assert_int_equal(fx->table.count, 3);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		must_acquire(fx, fx->table.root, name);
	}
	assert_false(f->fds_open);
	assert_false(e->fds_open);
	assert_false(d->fds_open);
	assert_reads(fx, f, "deep");
	ply_inode_table_forget(&fx->table, f, 1);
	assert_int_equal(fx->table.count, 10); /* d and e went with f */
}

static void evict(struct fx *fx, int n)
{
	char name[32];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "l1/evict%d", i);
		tree_write(fx->base, name, "x");
		must_acquire(fx, fx->table.root, name + 3);
	}
}

static void test_reopen_stale(void **state)
{
	struct fx *fx = *state;
	struct ply_inode *f, *g;

	tree_write(fx->base, "l1/f", "old");
	tree_write(fx->base, "l1/g", "gone soon");
	open_table(fx, 3 + 1);
	f = must_acquire(fx, fx->table.root, "f");
	g = must_acquire(fx, fx->table.root, "g");
	evict(fx, 4);
	assert_false(f->fds_open);
	assert_false(g->fds_open);

	/* another object now has the name: never served as the old one */
	tree_write(fx->base, "l1/f.new", "new");
	assert_int_equal(rename(tree_path(fx->base, "l1/f.new"),
				tree_path(fx->base, "l1/f")),
			 0);
	assert_int_equal(ply_inode_pin(&fx->table, f), -ESTALE);
	/* the name is gone */
	assert_int_equal(unlink(tree_path(fx->base, "l1/g")), 0);
	assert_int_equal(ply_inode_pin(&fx->table, g), -ESTALE);
	/* a failed pin leaves nothing pinned or open */
	assert_int_equal(f->pins, 0);
	ply_inode_table_forget(&fx->table, f, 1);
	ply_inode_table_forget(&fx->table, g, 1);
	assert_true(tree_count_fds() <= fx->fds0 + 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_same_object_twice),
		T(test_forget),
		T(test_destroy_closes_all),
		T(test_many_inodes),
		T(test_many_inodes_small_budget),
		T(test_hard_links),
		T(test_budget_closes_lru),
		T(test_pinned_kept_open),
		T(test_reopen_through_closed_parent),
		T(test_reopen_stale),
	};
#undef T

	return cmocka_run_group_tests_name("inode", tests, NULL, NULL);
}
