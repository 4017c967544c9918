/* test-splice.c: the splice table (splice.c) and what lookups and listings
 * make of it (ply_lookup_child, ply_dir_read_spliced). Each test builds a
 * stack of an upper layer u and lower layers l1 (top), l2 (bottom), opens
 * it with ply_stack_open, then adds bind-like splices by hand: a directory
 * or file under s/ opened O_PATH and given to ply_splice_add, as
 * fs/splices.c does. No FUSE. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tree.h"

#define UPPER 0 /* layer indexes of the default stack */
#define L1 1
#define L2 2
#define NUNION 3 /* the first splice is layer 3, the next 4, ... */

struct fx {
	char *base;
	struct ply_stack stack;
	struct ply_lookup root;
	bool open, rooted;
	int fds_before;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->base = tree_mkstack();
	tree_mkdir(fx->base, "s");
	fx->fds_before = tree_count_fds();
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->rooted)
		ply_lookup_release(&fx->root);
	if (fx->open)
		ply_stack_close(&fx->stack);
	tree_remove(fx->base);
	free(fx->base);
	free(fx);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

/* Opens u over l1 over l2 (lowers only when upper is false). */
static void open_stack_with(struct fx *fx, bool upper)
{
	struct ply_err err = { "" };
	char opt[4 * PATH_MAX];

	if (upper)
		snprintf(opt, sizeof(opt),
			 "lowerdir=%s/l1:%s/l2,upperdir=%s/u,workdir=%s/w",
			 fx->base, fx->base, fx->base, fx->base);
	else
		snprintf(opt, sizeof(opt), "lowerdir=%s/l1:%s/l2", fx->base,
			 fx->base);
	if (tree_stack_open(&fx->stack, opt, &err) < 0)
		fail_msg("stack: %s", err.msg);
	fx->open = true;
}

static void open_stack(struct fx *fx)
{
	open_stack_with(fx, true);
}

/* Adds a bind of base/src (a directory or a file) at dest. */
static int add(struct fx *fx, const char *src, const char *dest, bool ro,
	       struct ply_err *err)
{
	struct ply_splice_spec spec = { 0 };
	const char *path = tree_path(fx->base, src);
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	spec.kind = PLY_SPLICE_BIND;
	spec.source = (char *)path;
	spec.dest = (char *)dest;
	spec.ro = ro;
	err->msg[0] = '\0';
	return ply_splice_add(&fx->stack, &spec, fd, path, err);
}

static void add_ok(struct fx *fx, const char *src, const char *dest)
{
	struct ply_err err = { "" };

	if (add(fx, src, dest, false, &err) < 0)
		fail_msg("splice %s at %s: %s", src, dest, err.msg);
}

/* Checks the splices and takes the merged root. */
static void finish(struct fx *fx)
{
	struct ply_err err = { "" };

	if (ply_splice_check(&fx->stack, &err) < 0)
		fail_msg("splice check: %s", err.msg);
	assert_int_equal(ply_lookup_root(&fx->stack, &fx->root), 0);
	fx->rooted = true;
}

/* The splice node at a '/'-separated path, by ply_snode_child. */
static const struct ply_snode *snode_at(struct fx *fx, const char *path)
{
	const struct ply_snode *node = fx->stack.splices;
	char buf[PATH_MAX], *save = NULL, *comp;

	snprintf(buf, sizeof(buf), "%s", path);
	for (comp = strtok_r(buf, "/", &save); comp && node;
	     comp = strtok_r(NULL, "/", &save))
		node = ply_snode_child(node, comp);
	return node;
}

/* Looks a path up from the root through ply_lookup_child, as the daemon
 * does: each directory with its place in the splice tree. */
static int lookup(struct fx *fx, const char *path, struct ply_lookup *ret)
{
	struct ply_lookup cur = { 0 }, next;
	char buf[PATH_MAX], *save = NULL, *comp;
	bool first = true;
	int r = -EINVAL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (comp = strtok_r(buf, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		const struct ply_lookup *dir = first ? &fx->root : &cur;

		r = ply_lookup_child(&fx->stack, dir->parts, dir->nparts,
				     dir->snode, comp, 0, &next);
		ply_lookup_release(&cur);
		if (r < 0)
			return r;
		cur = next;
		first = false;
	}
	if (r < 0)
		return r;
	*ret = cur;
	return 0;
}

/* The listing of path ("" the root), through ply_dir_read_spliced. */
static void list(struct fx *fx, const char *path, struct ply_dir *ret)
{
	struct ply_lookup lk;

	if (!*path) {
		assert_int_equal(ply_dir_read_spliced(&fx->stack,
						      fx->root.parts,
						      fx->root.nparts,
						      fx->root.snode,
						      fx->root.st.st_ino,
						      fx->root.st.st_ino, ret),
				 0);
		return;
	}
	assert_int_equal(lookup(fx, path, &lk), 0);
	assert_int_equal(ply_dir_read_spliced(&fx->stack, lk.parts, lk.nparts,
					      lk.snode, lk.st.st_ino, 1, ret),
			 0);
	ply_lookup_release(&lk);
}

static const struct ply_dirent *entry(const struct ply_dir *dir,
				      const char *name)
{
	const struct ply_dirent *found = NULL;

	for (size_t i = 0; i < dir->count; i++) {
		if (strcmp(dir->entries[i].name, name))
			continue;
		if (found)
			fail_msg("'%s' listed twice", name);
		found = &dir->entries[i];
	}
	return found;
}

static void assert_msg_has(const struct ply_err *err, const char *what)
{
	if (!strstr(err->msg, what))
		fail_msg("message '%s' does not say '%s'", err->msg, what);
}

/* ---- DEST normalisation ------------------------------------------------ */

static void test_dest_forms_same_place(void **state)
{
	struct fx *fx = *state;
	struct ply_err err;
	int fds;

	tree_mkdir(fx->base, "s/one");
	tree_mkdir(fx->base, "s/two");
	open_stack(fx);
	add_ok(fx, "s/one", "/a/b");
	fds = tree_count_fds();

	const char *same[] = { "/a/b", "a/b", "a//b/", "//a/b//", "a/b/" };
	for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++) {
		assert_int_equal(add(fx, "s/two", same[i], false, &err),
				 -EINVAL);
		assert_msg_has(&err, "given twice");
		assert_msg_has(&err, same[i]);
		/* the refused source is closed, not kept */
		assert_int_equal(tree_count_fds(), fds);
	}
	/* one layer added, one node each on the way */
	assert_int_equal(fx->stack.nlayers, NUNION + 1);
	assert_int_equal(fx->stack.splices->nchildren, 1);
	assert_int_equal(snode_at(fx, "a")->nchildren, 1);
	assert_int_equal(snode_at(fx, "a/b")->nchildren, 0);
	assert_int_equal(snode_at(fx, "a/b")->layer, NUNION);

	/* a sibling in a relative, doubled-slash form lands beside it */
	add_ok(fx, "s/two", "a//c/");
	assert_int_equal(snode_at(fx, "a")->nchildren, 2);
	assert_int_equal(snode_at(fx, "a/c")->layer, NUNION + 1);
}

static void test_dest_root_refused(void **state)
{
	struct fx *fx = *state;
	struct ply_err err;
	int fds;

	tree_mkdir(fx->base, "s/one");
	open_stack(fx);
	fds = tree_count_fds();

	const char *roots[] = { "", "/", "//", "///" };
	for (size_t i = 0; i < sizeof(roots) / sizeof(*roots); i++) {
		assert_int_equal(add(fx, "s/one", roots[i], false, &err),
				 -EINVAL);
		assert_msg_has(&err, "root");
		assert_int_equal(tree_count_fds(), fds);
	}
	assert_int_equal(fx->stack.nlayers, NUNION);
	assert_true(!fx->stack.splices || !fx->stack.splices->nchildren);
	/* the root never becomes a splice */
	assert_true(!fx->stack.splices || fx->stack.splices->layer < 0);
}

static void test_dest_dots_refused(void **state)
{
	struct fx *fx = *state;
	struct ply_err err;
	int fds;

	tree_mkdir(fx->base, "s/one");
	open_stack(fx);
	fds = tree_count_fds();

	const char *dotted[] = { ".",     "..",     "/.",      "/..",
				 "./a",   "../a",   "/a/./b",  "/a/../b",
				 "a/b/.", "a/b/..", "/x/./..", "a/.." };
	for (size_t i = 0; i < sizeof(dotted) / sizeof(*dotted); i++) {
		assert_int_equal(add(fx, "s/one", dotted[i], false, &err),
				 -EINVAL);
		assert_msg_has(&err, "'.' and '..'");
		assert_msg_has(&err, dotted[i]);
		assert_int_equal(tree_count_fds(), fds);
	}
	assert_int_equal(fx->stack.nlayers, NUNION);
	/* names that merely start with dots are plain names */
	add_ok(fx, "s/one", "/...");
	add_ok(fx, "s/one", "/.hidden/..x");
	assert_non_null(snode_at(fx, "..."));
	assert_non_null(snode_at(fx, ".hidden/..x"));
}

static void test_dest_long_component_refused(void **state)
{
	struct fx *fx = *state;
	struct ply_err err;
	char dest[NAME_MAX + 8];

	tree_mkdir(fx->base, "s/one");
	open_stack(fx);
	dest[0] = '/';
	memset(dest + 1, 'n', NAME_MAX + 1);
	dest[NAME_MAX + 2] = '\0';
	assert_int_equal(add(fx, "s/one", dest, false, &err), -EINVAL);
	assert_msg_has(&err, "bad component");
	assert_int_equal(fx->stack.nlayers, NUNION);
}

/* ---- the splice tree and the new layers --------------------------------- */

static void test_snode_shape(void **state)
{
	struct fx *fx = *state;
	const struct ply_snode *n;
	struct stat st;

	tree_mkdir(fx->base, "s/deep");
	tree_mkdir(fx->base, "s/outer");
	tree_write(fx->base, "s/file", "bound file");
	open_stack(fx);
	add_ok(fx, "s/deep", "/a/b/c"); /* layer 3 */
	add_ok(fx, "s/outer", "/a");    /* layer 4: over the way to c */
	add_ok(fx, "s/file", "/x/f");   /* layer 5 */

	n = fx->stack.splices;
	assert_non_null(n);
	assert_int_equal(n->layer, -1);
	assert_int_equal(n->nchildren, 2);
	assert_null(ply_snode_child(n, "b"));
	assert_null(ply_snode_child(NULL, "a"));

	n = snode_at(fx, "a");
	assert_non_null(n);
	assert_string_equal(n->name, "a");
	assert_int_equal(n->layer, NUNION + 1);
	assert_int_equal(n->type, DT_DIR);
	assert_int_equal(n->nchildren, 1);
	assert_int_equal(lstat(tree_path(fx->base, "s/outer"), &st), 0);
	assert_int_equal(n->ino,
			 ply_ino_compose(&fx->stack.layers[NUNION + 1],
					 st.st_dev, st.st_ino));

	n = snode_at(fx, "a/b");
	assert_non_null(n);
	assert_int_equal(n->layer, -1);
	assert_int_equal(n->type, DT_DIR);
	assert_true(S_ISDIR(n->vstat.st_mode));
	assert_int_equal(n->ino, n->vstat.st_ino);
	assert_int_equal(n->ino >> PLY_INO_BITS, PLY_LAYER_ID_VIRTUAL);

	n = snode_at(fx, "a/b/c");
	assert_non_null(n);
	assert_int_equal(n->layer, NUNION);
	assert_int_equal(n->nchildren, 0);
	assert_int_equal(lstat(tree_path(fx->base, "s/deep"), &st), 0);
	assert_int_equal(n->ino, ply_ino_compose(&fx->stack.layers[NUNION],
						 st.st_dev, st.st_ino));

	n = snode_at(fx, "x");
	assert_int_equal(n->layer, -1);
	n = snode_at(fx, "x/f");
	assert_int_equal(n->layer, NUNION + 2);
	assert_int_equal(n->type, DT_REG);
}

static void check_layers(struct fx *fx, size_t nsplices)
{
	const struct ply_stack *s = &fx->stack;

	assert_int_equal(s->nunion, fx->stack.has_upper ? 3 : 2);
	assert_int_equal(s->nlayers, s->nunion + nsplices);
	for (size_t i = 0; i < s->nlayers; i++) {
		assert_int_equal(s->layers[i].is_splice, i >= s->nunion);
		assert_true(s->layers[i].id != PLY_LAYER_ID_VIRTUAL);
		assert_true(s->layers[i].id != PLY_LAYER_ID_HASHED);
		for (size_t j = 0; j < i; j++)
			if (s->layers[i].id == s->layers[j].id)
				fail_msg("layers %zu and %zu share id %u", j,
					 i, s->layers[i].id);
	}
}

static void test_splice_layers(void **state)
{
	struct fx *fx = *state;
	const struct ply_layer *l;
	struct stat st;

	tree_mkdir(fx->base, "s/rw");
	tree_mkdir(fx->base, "s/ro");
	open_stack(fx);
	add_ok(fx, "s/rw", "/rw");
	{
		struct ply_err err = { "" };

		if (add(fx, "s/ro", "/ro", true, &err) < 0)
			fail_msg("%s", err.msg);
	}
	check_layers(fx, 2);

	l = &fx->stack.layers[NUNION];
	assert_true(l->is_splice);
	assert_false(l->is_upper);
	assert_false(l->ro);
	assert_string_equal(l->path, tree_path(fx->base, "s/rw"));
	assert_int_equal(lstat(tree_path(fx->base, "s/rw"), &st), 0);
	assert_int_equal(l->dev, st.st_dev);
	assert_int_equal(l->ino, st.st_ino);
	assert_true(l->fd >= 0);

	l = &fx->stack.layers[NUNION + 1];
	assert_true(l->is_splice);
	assert_true(l->ro);
	assert_int_equal(snode_at(fx, "ro")->layer, NUNION + 1);
}

static void test_splice_layers_no_upper(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "s/one");
	tree_mkdir(fx->base, "s/two");
	open_stack_with(fx, false);
	add_ok(fx, "s/one", "/one");
	add_ok(fx, "s/two", "/two");
	check_layers(fx, 2);
	finish(fx);
}

/* ---- ply_splice_check ---------------------------------------------------- */

static void check_refused(struct fx *fx, const char *what, const char *comp)
{
	struct ply_err err = { "" };
	char quoted[NAME_MAX + 3];

	assert_int_equal(ply_splice_check(&fx->stack, &err), -ELOOP);
	snprintf(quoted, sizeof(quoted), "'%s'", comp);
	assert_msg_has(&err, quoted);
	assert_msg_has(&err, what);
}

static void test_check_crosses_symlink(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "s/one");
	tree_mkdir(fx->base, "l2/real");
	tree_symlink(fx->base, "l1/a", "real");
	open_stack(fx);
	add_ok(fx, "s/one", "/a/b");
	check_refused(fx, "symlink", "a");
}

static void test_check_crosses_symlink_deep(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "s/one");
	tree_mkdir(fx->base, "u/d");
	tree_mkdir(fx->base, "l2/d/e");
	tree_symlink(fx->base, "l2/d/e/link", "/");
	open_stack(fx);
	add_ok(fx, "s/one", "/d/e/link/x/y");
	check_refused(fx, "symlink", "link");
}

static void test_check_crosses_file(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "s/one");
	tree_write(fx->base, "l2/f", "a file");
	open_stack(fx);
	add_ok(fx, "s/one", "/f/x");
	check_refused(fx, "non-directory", "f");
}

static void test_check_file_over_dir(void **state)
{
	struct fx *fx = *state;

	/* the merged view has a file at d: the directory below is hidden */
	tree_mkdir(fx->base, "s/one");
	tree_write(fx->base, "l1/d", "file");
	tree_mkdir(fx->base, "l2/d");
	open_stack(fx);
	add_ok(fx, "s/one", "/d/x");
	check_refused(fx, "non-directory", "d");
}

static void test_check_whited_out_file_accepted(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	/* l2's file g is hidden by l1's ".wh.g": nothing stands at g */
	tree_mkdir(fx->base, "s/one");
	tree_write(fx->base, "l2/g", "hidden");
	tree_write(fx->base, "l1/.wh.g", "");
	open_stack(fx);
	add_ok(fx, "s/one", "/g/x");
	finish(fx);
	assert_int_equal(lookup(fx, "g", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.nparts, 0);
	ply_lookup_release(&lk);
}

static void test_check_final_component_hidden(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_mkdir(fx->base, "s/one");
	tree_mkdir(fx->base, "s/two");
	tree_write(fx->base, "l1/f", "a file");
	tree_symlink(fx->base, "u/s", "/etc");
	tree_mkdir(fx->base, "l2/d");
	tree_symlink(fx->base, "l2/d/link", "..");
	open_stack(fx);
	add_ok(fx, "s/one", "/f");
	add_ok(fx, "s/two", "/s");
	add_ok(fx, "s/one", "/d/link");
	finish(fx);

	assert_int_equal(lookup(fx, "f", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.parts[0].layer, NUNION);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "s", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.parts[0].layer, NUNION + 1);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/link", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.parts[0].layer, NUNION + 2);
	ply_lookup_release(&lk);
}

static void test_check_absent_accepted(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_mkdir(fx->base, "s/one");
	tree_mkdir(fx->base, "l1/half");
	open_stack(fx);
	add_ok(fx, "s/one", "/no/such/place");
	add_ok(fx, "s/one", "/half/way/there");
	finish(fx);
	assert_int_equal(lookup(fx, "no/such/place", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "half/way/there", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION + 1);
	ply_lookup_release(&lk);
}

static void test_check_without_splices(void **state)
{
	struct fx *fx = *state;
	struct ply_err err = { "" };

	open_stack(fx);
	assert_int_equal(ply_splice_check(&fx->stack, &err), 0);
	assert_null(fx->stack.splices);
}

static void test_check_owner_of_root(void **state)
{
	struct fx *fx = *state;
	const struct ply_snode *n;

	need_root();
	tree_mkdir(fx->base, "s/one");
	/* the merged root's owner is its topmost part's: the upper's */
	assert_int_equal(chown(tree_path(fx->base, "u"), 1234, 5678), 0);
	assert_int_equal(chown(tree_path(fx->base, "l1"), 42, 43), 0);
	open_stack(fx);
	add_ok(fx, "s/one", "/a/b/c");
	add_ok(fx, "s/one", "/x/y");
	finish(fx);
	assert_int_equal(fx->root.st.st_uid, 1234);
	const char *ways[] = { "a", "a/b", "x" };
	for (size_t i = 0; i < 3; i++) {
		n = snode_at(fx, ways[i]);
		assert_int_equal(n->layer, -1);
		assert_int_equal(n->vstat.st_uid, 1234);
		assert_int_equal(n->vstat.st_gid, 5678);
		assert_int_equal(n->vstat.st_mode, S_IFDIR | 0755);
	}
}

/* ---- ply_lookup_child ---------------------------------------------------- */

static void test_lookup_splice_wins(void **state)
{
	struct fx *fx = *state;
	const struct ply_snode *n;
	struct ply_lookup lk;
	struct stat st;

	tree_write(fx->base, "s/src/inside", "in the splice");
	tree_write(fx->base, "s/hosts", "bound file");
	tree_write(fx->base, "u/a", "upper file at a");
	tree_write(fx->base, "l1/a/below", "lower dir at a");
	tree_write(fx->base, "l2/f/below", "lower dir at f");
	tree_write(fx->base, "l1/n/d/gone", "dir at n/d");
	open_stack(fx);
	add_ok(fx, "s/src", "/a");
	add_ok(fx, "s/hosts", "/f");
	add_ok(fx, "s/src", "/n/d");
	finish(fx);

	n = snode_at(fx, "a");
	assert_int_equal(lookup(fx, "a", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, NUNION);
	assert_int_equal(lk.st.st_ino, n->ino);
	assert_ptr_equal(lk.snode, n);
	assert_int_equal(lstat(tree_path(fx->base, "s/src"), &st), 0);
	assert_int_equal(lk.parts[0].ino, st.st_ino);
	ply_lookup_release(&lk);

	/* inside: the source's names, not the layers' */
	assert_int_equal(lookup(fx, "a/inside", &lk), 0);
	assert_true(S_ISREG(lk.st.st_mode));
	assert_int_equal(lk.parts[0].layer, NUNION);
	assert_int_equal(lk.st.st_size, strlen("in the splice"));
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "a/below", &lk), -ENOENT);

	/* a file bind over a lower directory */
	n = snode_at(fx, "f");
	assert_int_equal(lookup(fx, "f", &lk), 0);
	assert_true(S_ISREG(lk.st.st_mode));
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, NUNION + 1);
	assert_int_equal(lk.st.st_ino, n->ino);
	assert_int_equal(lk.st.st_size, strlen("bound file"));
	ply_lookup_release(&lk);

	/* deeper, below a directory the layers hold */
	n = snode_at(fx, "n/d");
	assert_int_equal(lookup(fx, "n/d", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION + 2);
	assert_int_equal(lk.st.st_ino, n->ino);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "n/d/gone", &lk), -ENOENT);
	assert_int_equal(lookup(fx, "n/d/inside", &lk), 0);
	ply_lookup_release(&lk);
}

static void test_lookup_way_dirs(void **state)
{
	struct fx *fx = *state;
	const struct ply_snode *n;
	struct ply_lookup lk;

	tree_mkdir(fx->base, "s/one");
	tree_write(fx->base, "l1/real/other", "beside the way");
	open_stack(fx);
	add_ok(fx, "s/one", "/void/v/s");
	add_ok(fx, "s/one", "/real/w/s");
	finish(fx);

	/* nothing in the layers: the virtual directory, no parts */
	n = snode_at(fx, "void");
	assert_int_equal(lookup(fx, "void", &lk), 0);
	assert_int_equal(lk.nparts, 0);
	assert_null(lk.parts);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.st.st_ino, n->vstat.st_ino);
	assert_int_equal(lk.st.st_mode, n->vstat.st_mode);
	assert_int_equal(lk.st.st_uid, n->vstat.st_uid);
	assert_ptr_equal(lk.snode, n);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "void/v", &lk), 0);
	assert_int_equal(lk.nparts, 0);
	assert_ptr_equal(lk.snode, snode_at(fx, "void/v"));
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "void/v/s", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION);
	ply_lookup_release(&lk);
	/* a virtual directory holds nothing but the way */
	assert_int_equal(lookup(fx, "void/nothing", &lk), -ENOENT);

	/* a directory the layers hold: theirs, with its place in the tree */
	n = snode_at(fx, "real");
	assert_int_equal(lookup(fx, "real", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, L1);
	assert_ptr_equal(lk.snode, n);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "real/other", &lk), 0);
	assert_int_equal(lk.parts[0].layer, L1);
	assert_null(lk.snode);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "real/w", &lk), 0);
	assert_int_equal(lk.nparts, 0);
	ply_lookup_release(&lk);
}

static void test_lookup_way_over_file(void **state)
{
	struct fx *fx = *state;
	const struct ply_snode *n;
	struct ply_lookup lk;
	struct ply_err err = { "" };

	/* splice_check refuses this; ply_lookup_child on its own still
	 * shows the way as a directory whatever a layer holds there */
	tree_mkdir(fx->base, "s/one");
	tree_write(fx->base, "l1/f", "a file");
	tree_symlink(fx->base, "l2/l", "/");
	open_stack(fx);
	add_ok(fx, "s/one", "/f/s");
	add_ok(fx, "s/one", "/l/s");
	assert_int_equal(ply_splice_check(&fx->stack, &err), -ELOOP);
	assert_int_equal(ply_lookup_root(&fx->stack, &fx->root), 0);
	fx->rooted = true;

	n = snode_at(fx, "f");
	assert_int_equal(lookup(fx, "f", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.nparts, 0);
	assert_int_equal(lk.st.st_ino, n->vstat.st_ino);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "l", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.nparts, 0);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "f/s", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION);
	ply_lookup_release(&lk);
}

static void test_lookup_nested(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "s/outer/file", "outer");
	tree_mkdir(fx->base, "s/outer/b");
	tree_write(fx->base, "s/outer/b/mine", "outer's b");
	tree_write(fx->base, "s/inner/file", "inner");
	open_stack(fx);
	add_ok(fx, "s/outer", "/a");
	add_ok(fx, "s/inner", "/a/b/c");
	add_ok(fx, "s/inner", "/a/v/w");
	finish(fx);

	assert_int_equal(lookup(fx, "a/file", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION);
	ply_lookup_release(&lk);
	/* b: the outer splice's own directory, on the way to c */
	assert_int_equal(lookup(fx, "a/b", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, NUNION);
	assert_ptr_equal(lk.snode, snode_at(fx, "a/b"));
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "a/b/mine", &lk), 0);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "a/b/c", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION + 1);
	assert_int_equal(lk.st.st_ino, snode_at(fx, "a/b/c")->ino);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "a/b/c/file", &lk), 0);
	assert_int_equal(lk.st.st_size, strlen("inner"));
	ply_lookup_release(&lk);
	/* v: nothing in the outer source, a virtual directory */
	assert_int_equal(lookup(fx, "a/v", &lk), 0);
	assert_int_equal(lk.nparts, 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "a/v/w/file", &lk), 0);
	assert_int_equal(lk.parts[0].layer, NUNION + 2);
	ply_lookup_release(&lk);
}

static void test_names_plain_inside(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "s/src/x", "x itself");
	tree_write(fx->base, "s/src/.wh.x", "not a whiteout");
	tree_write(fx->base, "s/src/.wh..wh..opq", "not a marker");
	tree_mkdir(fx->base, "s/src/d");
	tree_write(fx->base, "s/src/d/.wh.gone", "");
	/* the same names in a layer are markers */
	tree_write(fx->base, "l1/.wh.y", "");
	tree_write(fx->base, "l2/y", "hidden");
	open_stack(fx);
	add_ok(fx, "s/src", "/sp");
	finish(fx);

	assert_int_equal(lookup(fx, "sp/.wh.x", &lk), 0);
	assert_true(S_ISREG(lk.st.st_mode));
	assert_int_equal(lk.parts[0].layer, NUNION);
	assert_int_equal(lk.st.st_size, strlen("not a whiteout"));
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "sp/x", &lk), 0);
	assert_int_equal(lk.st.st_size, strlen("x itself"));
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "sp/.wh..wh..opq", &lk), 0);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "sp/d/.wh.gone", &lk), 0);
	ply_lookup_release(&lk);

	/* outside the splice they stay markers */
	assert_int_equal(lookup(fx, ".wh.y", &lk), -ENOENT);
	assert_int_equal(lookup(fx, "y", &lk), -ENOENT);
}

static void test_chardev_plain_inside(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;
	struct ply_dir dir;
	const struct ply_dirent *e;

	need_root();
	tree_mknod(fx->base, "s/src/cdev", S_IFCHR | 0644, makedev(0, 0));
	tree_mknod(fx->base, "l1/gone", S_IFCHR | 0644, makedev(0, 0));
	tree_write(fx->base, "l2/gone", "hidden");
	open_stack(fx);
	add_ok(fx, "s/src", "/sp");
	finish(fx);

	assert_int_equal(lookup(fx, "sp/cdev", &lk), 0);
	assert_true(S_ISCHR(lk.st.st_mode));
	assert_int_equal(lk.st.st_rdev, makedev(0, 0));
	assert_int_equal(lk.parts[0].layer, NUNION);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "gone", &lk), -ENOENT);

	list(fx, "sp", &dir);
	e = entry(&dir, "cdev");
	assert_non_null(e);
	assert_int_equal(e->type, DT_CHR);
	ply_dir_free(&dir);
}

/* ---- ply_dir_read_spliced ---------------------------------------------- */

static void test_readdir_lists_splices(void **state)
{
	struct fx *fx = *state;
	const struct ply_dirent *e;
	struct ply_dir dir;

	tree_mkdir(fx->base, "s/src");
	tree_write(fx->base, "s/hosts", "bound file");
	tree_write(fx->base, "u/a", "upper file at a");
	tree_mkdir(fx->base, "l1/a");
	tree_mkdir(fx->base, "l2/f");
	tree_write(fx->base, "l1/keep", "plain");
	tree_write(fx->base, "l2/file", "a file on the way");
	open_stack(fx);
	add_ok(fx, "s/src", "/a");
	add_ok(fx, "s/hosts", "/f");
	add_ok(fx, "s/src", "/new");
	add_ok(fx, "s/src", "/v/w");
	add_ok(fx, "s/src", "/v/x/y");
	finish(fx);

	list(fx, "", &dir);
	assert_int_equal(dir.count, 2 + 6); /* a f new v keep file */
	assert_string_equal(dir.entries[0].name, ".");
	assert_string_equal(dir.entries[1].name, "..");
	e = entry(&dir, "a");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "a")->ino);
	assert_int_equal(e->type, DT_DIR);
	e = entry(&dir, "f");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "f")->ino);
	assert_int_equal(e->type, DT_REG);
	e = entry(&dir, "new");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "new")->ino);
	assert_int_equal(e->type, DT_DIR);
	e = entry(&dir, "v");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "v")->vstat.st_ino);
	assert_int_equal(e->type, DT_DIR);
	assert_non_null(entry(&dir, "keep"));
	assert_non_null(entry(&dir, "file"));
	ply_dir_free(&dir);

	/* a virtual directory lists the way on, nothing else */
	list(fx, "v", &dir);
	assert_int_equal(dir.count, 2 + 2);
	e = entry(&dir, "w");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "v/w")->ino);
	e = entry(&dir, "x");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "v/x")->vstat.st_ino);
	assert_int_equal(e->type, DT_DIR);
	ply_dir_free(&dir);
}

static void test_readdir_inside_splice(void **state)
{
	struct fx *fx = *state;
	const struct ply_dirent *e;
	struct ply_lookup lk;
	struct ply_dir dir;

	tree_write(fx->base, "s/src/x", "x");
	tree_write(fx->base, "s/src/.wh.x", "");
	tree_write(fx->base, "s/src/.wh..wh..opq", "");
	tree_mkdir(fx->base, "s/src/b");
	tree_write(fx->base, "s/src/b/inner", "");
	open_stack(fx);
	add_ok(fx, "s/src", "/sp");
	add_ok(fx, "s/src", "/sp/b/c"); /* nested, over a source dir */
	add_ok(fx, "s/src", "/sp/n");   /* nested, nothing in the source */
	finish(fx);

	list(fx, "sp", &dir);
	assert_int_equal(dir.count, 2 + 5); /* x .wh.x .wh..wh..opq b n */
	const char *names[] = { "x", ".wh.x", ".wh..wh..opq" };
	for (size_t i = 0; i < 3; i++) {
		e = entry(&dir, names[i]);
		if (!e)
			fail_msg("'%s' not listed in the splice", names[i]);
		assert_int_equal(e->layer, NUNION);
		assert_int_equal(lookup(fx, tree_path("sp", names[i]), &lk),
				 0);
		assert_int_equal(e->ino, lk.st.st_ino);
		ply_lookup_release(&lk);
	}
	e = entry(&dir, "n");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "sp/n")->ino);
	assert_non_null(entry(&dir, "b"));
	ply_dir_free(&dir);

	list(fx, "sp/b", &dir);
	assert_int_equal(dir.count, 2 + 2); /* inner c */
	assert_non_null(entry(&dir, "inner"));
	e = entry(&dir, "c");
	assert_non_null(e);
	assert_int_equal(e->ino, snode_at(fx, "sp/b/c")->ino);
	ply_dir_free(&dir);
}

/* Every listed name's d_ino and type are what a lookup of it reports;
 * returns the number of names that differ, each printed. */
static int listing_mismatches(struct fx *fx, const char *path)
{
	struct ply_lookup lk;
	struct ply_dir dir;
	int bad = 0;

	list(fx, path, &dir);
	for (size_t i = 2; i < dir.count; i++) {
		const struct ply_dirent *e = &dir.entries[i];
		char full[PATH_MAX];

		snprintf(full, sizeof(full), "%s%s%s", path, *path ? "/" : "",
			 e->name);
		if (lookup(fx, full, &lk) < 0)
			fail_msg("listed '%s' not found", full);
		if (e->ino != lk.st.st_ino) {
			print_error("'%s': listed ino %#llx, lookup st_ino "
				    "%#llx\n",
				    full, (unsigned long long)e->ino,
				    (unsigned long long)lk.st.st_ino);
			bad++;
		}
		if (e->type != IFTODT(lk.st.st_mode)) {
			print_error("'%s': listed type %u, lookup mode %o\n",
				    full, e->type, lk.st.st_mode);
			bad++;
		}
		ply_lookup_release(&lk);
	}
	ply_dir_free(&dir);
	return bad;
}

static void test_readdir_ino_matches_lookup(void **state)
{
	struct fx *fx = *state;
	int bad = 0;

	tree_mkdir(fx->base, "s/src/b");
	tree_write(fx->base, "s/hosts", "bound file");
	tree_write(fx->base, "l1/over/file", "");
	tree_write(fx->base, "l1/plain", "");
	open_stack(fx);
	add_ok(fx, "s/src", "/over/sp");  /* over: the layers' directory */
	add_ok(fx, "s/hosts", "/plain");  /* a file bind over a file */
	add_ok(fx, "s/src", "/virt/sp");  /* virt: no layer holds it */
	add_ok(fx, "s/src", "/over/sp/b/c"); /* b: the source's directory */
	finish(fx);

	bad += listing_mismatches(fx, "virt");
	bad += listing_mismatches(fx, "");
	bad += listing_mismatches(fx, "over");
	bad += listing_mismatches(fx, "over/sp");
	bad += listing_mismatches(fx, "over/sp/b");
	assert_int_equal(bad, 0);
}

/* ---- inode numbers ------------------------------------------------------- */

static void test_ino_unique(void **state)
{
	struct fx *fx = *state;
	const char *paths[] = {
		"",         "f",        "d",         "d/g",      "d/h",
		"sp1",      "sp1/f",    "sp1/d",     "sp1/d/g",  "sp2",
		"sp2/f",    "sp2/d",    "sp2/d/g",   "way",      "way/to",
		"way/to/s", "way/to/s/f", "way2",    "way2/s",   "hosts",
		"sp1/n",    "sp1/n/m",
	};
	size_t n = sizeof(paths) / sizeof(*paths);
	uint64_t inos[32];
	struct ply_lookup lk;

	/* the same inode numbers on disk in several layers, and one source
	 * spliced twice */
	tree_write(fx->base, "u/f", "");
	tree_write(fx->base, "l1/d/g", "");
	tree_write(fx->base, "l2/d/h", "");
	tree_write(fx->base, "s/src/f", "");
	tree_write(fx->base, "s/src/d/g", "");
	tree_write(fx->base, "s/hosts", "");
	open_stack(fx);
	add_ok(fx, "s/src", "/sp1");
	add_ok(fx, "s/src", "/sp2");
	add_ok(fx, "s/src", "/way/to/s");
	add_ok(fx, "s/src", "/way2/s");
	add_ok(fx, "s/hosts", "/hosts");
	add_ok(fx, "s/hosts", "/sp1/n/m");
	finish(fx);

	for (size_t i = 0; i < n; i++) {
		if (!*paths[i]) {
			inos[i] = fx->root.st.st_ino;
			continue;
		}
		if (lookup(fx, paths[i], &lk) < 0)
			fail_msg("lookup %s", paths[i]);
		inos[i] = lk.st.st_ino;
		ply_lookup_release(&lk);
		for (size_t j = 0; j < i; j++)
			if (inos[i] == inos[j])
				fail_msg("'%s' and '%s' share st_ino %#llx",
					 paths[j], paths[i],
					 (unsigned long long)inos[i]);
	}
	/* stable across lookups */
	assert_int_equal(lookup(fx, "sp2/d/g", &lk), 0);
	assert_int_equal(lk.st.st_ino, inos[12]);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "way/to", &lk), 0);
	assert_int_equal(lk.st.st_ino, inos[14]);
	ply_lookup_release(&lk);
}

/* Splices take layer ids after the union's; the ids 1022 (directories
 * on the way) and 1023 (hashed numbers) are reserved, and ids live in 10
 * bits of st_ino: a splice must never get one of those, nor wrap. */
static void test_splice_ids_bounded(void **state)
{
	struct fx *fx = *state;
	struct ply_err err;
	size_t added = 0;
	char dest[32];
	int r = 0;

	tree_mkdir(fx->base, "s/src");
	open_stack(fx);
	for (int i = 0; i < 1100 && r >= 0; i++) {
		snprintf(dest, sizeof(dest), "/s%d", i);
		r = add(fx, "s/src", dest, false, &err);
		if (r >= 0)
			added++;
	}
	if (r < 0)
		assert_true(err.msg[0] != '\0');
	for (size_t i = 0; i < fx->stack.nlayers; i++) {
		const struct ply_layer *l = &fx->stack.layers[i];

		if (l->id >= PLY_LAYER_ID_VIRTUAL)
			fail_msg("splice %zu of %zu (layer %zu) has id %u",
				 i + 1 - fx->stack.nunion, added, i, l->id);
	}
	check_layers(fx, added);
}

/* ---- fd hygiene ---------------------------------------------------------- */

static void test_fds(void **state)
{
	struct fx *fx = *state;
	struct ply_err err;
	struct ply_lookup lk;
	struct ply_dir dir;
	int before = tree_count_fds();

	tree_write(fx->base, "s/src/f", "");
	tree_write(fx->base, "s/hosts", "");
	tree_write(fx->base, "l1/file", "");
	open_stack(fx);
	add_ok(fx, "s/src", "/a/b");
	add_ok(fx, "s/hosts", "/h");
	add_ok(fx, "s/src", "/file/x"); /* refused by the check below */
	/* refused adds close what they were given */
	assert_true(add(fx, "s/src", "/a/b", false, &err) < 0);
	assert_true(add(fx, "s/src", "/", false, &err) < 0);
	assert_true(add(fx, "s/src", "/a/../c", false, &err) < 0);
	assert_int_equal(ply_splice_check(&fx->stack, &err), -ELOOP);
	assert_int_equal(ply_lookup_root(&fx->stack, &fx->root), 0);
	fx->rooted = true;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lookup(fx, "a/b/f", &lk), 0);
		ply_lookup_release(&lk);
		assert_int_equal(lookup(fx, "a", &lk), 0);
		ply_lookup_release(&lk);
		assert_int_equal(lookup(fx, "h", &lk), 0);
		ply_lookup_release(&lk);
		assert_int_equal(lookup(fx, "a/b/none", &lk), -ENOENT);
		list(fx, "", &dir);
		ply_dir_free(&dir);
		list(fx, "a", &dir);
		ply_dir_free(&dir);
		list(fx, "a/b", &dir);
		ply_dir_free(&dir);
	}
	ply_lookup_release(&fx->root);
	fx->rooted = false;
	ply_stack_close(&fx->stack);
	fx->open = false;
	assert_int_equal(tree_count_fds(), before);
	assert_int_equal(tree_count_fds(), fx->fds_before);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_dest_forms_same_place),
		T(test_dest_root_refused),
		T(test_dest_dots_refused),
		T(test_dest_long_component_refused),
		T(test_snode_shape),
		T(test_splice_layers),
		T(test_splice_layers_no_upper),
		T(test_check_crosses_symlink),
		T(test_check_crosses_symlink_deep),
		T(test_check_crosses_file),
		T(test_check_file_over_dir),
		T(test_check_whited_out_file_accepted),
		T(test_check_final_component_hidden),
		T(test_check_absent_accepted),
		T(test_check_without_splices),
		T(test_check_owner_of_root),
		T(test_lookup_splice_wins),
		T(test_lookup_way_dirs),
		T(test_lookup_way_over_file),
		T(test_lookup_nested),
		T(test_names_plain_inside),
		T(test_chardev_plain_inside),
		T(test_readdir_lists_splices),
		T(test_readdir_inside_splice),
		T(test_readdir_ino_matches_lookup),
		T(test_ino_unique),
		T(test_splice_ids_bounded),
		T(test_fds),
	};
#undef T

	return cmocka_run_group_tests_name("splice", tests, NULL, NULL);
}
