/* test-namei.c: looking names up across the layers (namei.c) and the
 * inode numbers lookups report (ino.c). Each test builds a stack of an
 * upper layer u and lower layers l1 (top), l2 (bottom), opens it with
 * ply_stack_open and walks it from ply_lookup_root. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "sys.h"
#include "tree.h"

#define UPPER 0 /* layer indexes of the default stack */
#define L1 1
#define L2 2

struct fx {
	char *base;
	struct ply_stack stack;
	struct ply_lookup root;
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

	if (fx->open) {
		ply_lookup_release(&fx->root);
		ply_stack_close(&fx->stack);
	}
	tree_remove(fx->base);
	free(fx->base);
	free(fx);
	return 0;
}

/* Opens u over l1 over l2 once the tree is built. */
static void open_stack(struct fx *fx)
{
	struct ply_err err = { "" };

	tree_open_u_l1_l2(fx->base, &fx->stack, &err);
	assert_int_equal(ply_lookup_root(&fx->stack, &fx->root), 0);
	fx->open = true;
}

static int lookup(struct fx *fx, const char *path, struct ply_lookup *ret)
{
	return tree_lookup_path(&fx->stack, &fx->root, path, ret);
}

/* The content of a regular file's part, read through its O_PATH fd. */
static char *part_content(const struct ply_part *part)
{
	static char buf[256];
	char proc[64];
	ssize_t n;
	int fd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", part->fd);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* lstat of base/rel */
static struct stat real_stat(struct fx *fx, const char *rel)
{
	struct stat st;

	assert_int_equal(lstat(tree_path(fx->base, rel), &st), 0);
	return st;
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

static void test_root(void **state)
{
	struct fx *fx = *state;

	open_stack(fx);
	assert_int_equal(fx->root.nparts, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(fx->root.parts[i].layer, i);
	assert_true(S_ISDIR(fx->root.st.st_mode));
	assert_int_equal(fx->root.st.st_nlink, 1);
}

static void test_topmost_wins(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "u/f", "upper");
	tree_write(fx->base, "l1/f", "l1");
	tree_write(fx->base, "l2/f", "l2");
	tree_write(fx->base, "l1/g", "l1");
	tree_write(fx->base, "l2/g", "l2");
	tree_write(fx->base, "l2/h", "l2");
	open_stack(fx);

	assert_int_equal(lookup(fx, "f", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, UPPER);
	assert_string_equal(part_content(&lk.parts[0]), "upper");
	ply_lookup_release(&lk);

	assert_int_equal(lookup(fx, "g", &lk), 0);
	assert_int_equal(lk.parts[0].layer, L1);
	assert_string_equal(part_content(&lk.parts[0]), "l1");
	ply_lookup_release(&lk);

	assert_int_equal(lookup(fx, "h", &lk), 0);
	assert_int_equal(lk.parts[0].layer, L2);
	assert_int_equal(lk.st.st_size, 2);
	ply_lookup_release(&lk);

	assert_int_equal(lookup(fx, "nothing", &lk), -ENOENT);
}

static void test_file_hides_dir(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "u/x", "file");
	tree_write(fx->base, "l1/x/inner", "below");
	open_stack(fx);

	assert_int_equal(lookup(fx, "x", &lk), 0);
	assert_true(S_ISREG(lk.st.st_mode));
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, UPPER);
	ply_lookup_release(&lk);
	assert_true(lookup(fx, "x/inner", &lk) < 0);
}

static void test_dir_hides_file(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "u/x/a", "a");
	tree_write(fx->base, "l1/x", "file");
	tree_write(fx->base, "l2/x/b", "b");
	open_stack(fx);

	/* the file is not merged, and nothing below it either */
	assert_int_equal(lookup(fx, "x", &lk), 0);
	assert_true(S_ISDIR(lk.st.st_mode));
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, UPPER);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "x/b", &lk), -ENOENT);
}

static void test_dirs_merge(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "u/d/a", "a");
	tree_write(fx->base, "l1/d/b", "b");
	tree_write(fx->base, "l2/d/c", "c");
	tree_mkdir(fx->base, "l1/e");
	tree_mkdir(fx->base, "l2/e");
	open_stack(fx);

	assert_int_equal(lookup(fx, "d", &lk), 0);
	assert_int_equal(lk.nparts, 3);
	assert_int_equal(lk.parts[0].layer, UPPER);
	assert_int_equal(lk.parts[1].layer, L1);
	assert_int_equal(lk.parts[2].layer, L2);
	ply_lookup_release(&lk);

	assert_int_equal(lookup(fx, "e", &lk), 0);
	assert_int_equal(lk.nparts, 2);
	assert_int_equal(lk.parts[0].layer, L1);
	ply_lookup_release(&lk);

	assert_int_equal(lookup(fx, "d/a", &lk), 0);
	assert_int_equal(lk.parts[0].layer, UPPER);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/b", &lk), 0);
	assert_int_equal(lk.parts[0].layer, L1);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/c", &lk), 0);
	assert_int_equal(lk.parts[0].layer, L2);
	ply_lookup_release(&lk);
}

/* l1/d is made opaque by mark(); d/c in l2 must then be hidden. */
static void check_opaque(struct fx *fx)
{
	struct ply_lookup lk;

	tree_write(fx->base, "u/d/a", "a");
	tree_write(fx->base, "l1/d/b", "b");
	tree_write(fx->base, "l2/d/c", "c");
	open_stack(fx);

	assert_int_equal(lookup(fx, "d", &lk), 0);
	assert_int_equal(lk.nparts, 2);
	assert_int_equal(lk.parts[1].state, PLY_DIR_OPAQUE);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/b", &lk), 0);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/c", &lk), -ENOENT);
}

static void test_opaque_user_xattr(void **state)
{
	struct fx *fx = *state;

	tree_mkdir(fx->base, "l1/d");
	tree_setxattr(fx->base, "l1/d", "user.overlay.opaque", "y");
	check_opaque(fx);
}

static void test_opaque_trusted_xattr(void **state)
{
	struct fx *fx = *state;

	need_root();
	tree_mkdir(fx->base, "l1/d");
	tree_setxattr(fx->base, "l1/d", "trusted.overlay.opaque", "y");
	check_opaque(fx);
}

static void test_opaque_opq_file(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "l1/d/.wh..wh..opq", "");
	check_opaque(fx);
	/* the marker itself is not a name of the directory */
	assert_int_equal(lookup(fx, "d/.wh..wh..opq", &lk), -ENOENT);
}

static void test_opaque_upper_hides_all(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_mkdir(fx->base, "u/d");
	tree_setxattr(fx->base, "u/d", "user.overlay.opaque", "y");
	tree_write(fx->base, "l1/d/b", "b");
	open_stack(fx);
	assert_int_equal(lookup(fx, "d", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.st.st_nlink, 2); /* one layer: its real count */
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/b", &lk), -ENOENT);
}

static void test_opaque_root_still_merges(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	/* a layer root is never opaque: the layers below still show */
	tree_setxattr(fx->base, "u", "user.overlay.opaque", "y");
	tree_write(fx->base, "l1/f", "f");
	open_stack(fx);
	assert_int_equal(lookup(fx, "f", &lk), 0);
	ply_lookup_release(&lk);
}

static void check_whiteout_hides(struct fx *fx)
{
	struct ply_lookup lk;

	tree_write(fx->base, "l1/f", "f");
	tree_write(fx->base, "l2/f", "f");
	tree_write(fx->base, "l1/d/x", "x");
	open_stack(fx);
	assert_int_equal(lookup(fx, "f", &lk), -ENOENT);
	assert_int_equal(lookup(fx, "d", &lk), -ENOENT);
	assert_int_equal(lookup(fx, "d/x", &lk), -ENOENT);
}

static void test_whiteout_chardev(void **state)
{
	struct fx *fx = *state;

	need_root();
	tree_mknod(fx->base, "u/f", S_IFCHR | 0600, makedev(0, 0));
	tree_mknod(fx->base, "u/d", S_IFCHR | 0600, makedev(0, 0));
	check_whiteout_hides(fx);
}

static void test_whiteout_file(void **state)
{
	struct fx *fx = *state;

	tree_write(fx->base, "u/.wh.f", "");
	tree_write(fx->base, "u/.wh.d", "");
	check_whiteout_hides(fx);
}

static void test_whiteout_xattr(void **state)
{
	struct fx *fx = *state;

	tree_setxattr(fx->base, "u", "user.overlay.opaque", "x");
	tree_write(fx->base, "u/f", "");
	tree_setxattr(fx->base, "u/f", "user.overlay.whiteout", "y");
	tree_write(fx->base, "u/d", "");
	tree_setxattr(fx->base, "u/d", "user.overlay.whiteout", "y");
	check_whiteout_hides(fx);
}

static void test_whiteout_xattr_in_plain_dir(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	/* the directory does not announce xattr whiteouts: an empty file */
	tree_write(fx->base, "u/sub/f", "");
	tree_setxattr(fx->base, "u/sub/f", "user.overlay.whiteout", "y");
	tree_write(fx->base, "l1/sub/f", "lower");
	open_stack(fx);
	assert_int_equal(lookup(fx, "sub/f", &lk), 0);
	assert_int_equal(lk.parts[0].layer, UPPER);
	assert_int_equal(lk.st.st_size, 0);
	ply_lookup_release(&lk);
}

static void test_whiteout_middle_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	/* a whiteout in l1 hides l2, not what the upper adds above it */
	tree_write(fx->base, "l1/.wh.f", "");
	tree_write(fx->base, "l2/f", "l2");
	tree_write(fx->base, "u/g", "upper");
	tree_write(fx->base, "l1/.wh.g", "");
	tree_write(fx->base, "l2/g", "l2");
	tree_write(fx->base, "u/d/a", "a");
	tree_write(fx->base, "l1/.wh.d", "");
	tree_write(fx->base, "l2/d/b", "b");
	open_stack(fx);
	assert_int_equal(lookup(fx, "f", &lk), -ENOENT);
	assert_int_equal(lookup(fx, "g", &lk), 0);
	assert_int_equal(lk.parts[0].layer, UPPER);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/b", &lk), -ENOENT);
}

static void test_wh_file_own_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	/* ".wh.NAME" hides NAME below its layer, never beside it */
	tree_write(fx->base, "l1/f", "l1");
	tree_write(fx->base, "l1/.wh.f", "");
	tree_write(fx->base, "l2/f", "l2");
	tree_write(fx->base, "l1/d/a", "a");
	tree_write(fx->base, "l1/.wh.d", "");
	tree_write(fx->base, "l2/d/b", "b");
	open_stack(fx);
	assert_int_equal(lookup(fx, "f", &lk), 0);
	assert_int_equal(lk.parts[0].layer, L1);
	assert_string_equal(part_content(&lk.parts[0]), "l1");
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.parts[0].layer, L1);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/a", &lk), 0);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/b", &lk), -ENOENT);
}

static unsigned probes_seen;

static int count_probes(const char *call)
{
	if (!strcmp(call, "fstatat") || !strcmp(call, "openat"))
		probes_seen++;
	return 0;
}

static void test_whiteout_probe_when_needed(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	/* a ".wh." file two layers above what it hides */
	tree_write(fx->base, "u/.wh.f", "");
	tree_write(fx->base, "l2/f", "l2");
	tree_write(fx->base, "l2/g", "l2");
	tree_mkdir(fx->base, "u/d");
	tree_write(fx->base, "l1/.wh.d", "");
	tree_write(fx->base, "l2/d/b", "b");
	open_stack(fx);
	assert_int_equal(lookup(fx, "f", &lk), -ENOENT);
	assert_int_equal(lookup(fx, "d", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "d/b", &lk), -ENOENT);
	assert_int_equal(lookup(fx, "g", &lk), 0);
	assert_int_equal(lk.parts[0].layer, L2);
	ply_lookup_release(&lk);

	/* a name no layer holds costs one call a layer: the ".wh." probes
	 * wait for a layer that holds it */
	probes_seen = 0;
	ply_sys_set_fault_hook(count_probes);
	assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
					 fx->root.nparts, "none", &lk),
			 -ENOENT);
	ply_sys_set_fault_hook(NULL);
	assert_int_equal(probes_seen, fx->root.nparts);
}

static void test_reserved_names(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "u/.wh.f", "");
	tree_write(fx->base, "l1/.wh..wh..opq", "");
	tree_write(fx->base, "l1/.wh.plain", "a real file named like a marker");
	open_stack(fx);
	assert_int_equal(lookup(fx, ".wh.f", &lk), -ENOENT);
	assert_int_equal(lookup(fx, ".wh..wh..opq", &lk), -ENOENT);
	assert_int_equal(lookup(fx, ".wh.plain", &lk), -ENOENT);
	assert_int_equal(lookup(fx, ".wh.", &lk), -ENOENT);
}

static void test_bad_names(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;
	char name[NAME_MAX + 2];

	tree_write(fx->base, "l1/a/b", "b");
	open_stack(fx);
	assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
					 fx->root.nparts, ".", &lk),
			 -EINVAL);
	assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
					 fx->root.nparts, "..", &lk),
			 -EINVAL);
	assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
					 fx->root.nparts, "a/b", &lk),
			 -EINVAL);
	assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
					 fx->root.nparts, "", &lk),
			 -EINVAL);
	memset(name, 'n', NAME_MAX + 1);
	name[NAME_MAX + 1] = '\0';
	assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
					 fx->root.nparts, name, &lk),
			 -ENAMETOOLONG);
	name[NAME_MAX] = '\0'; /* 255: a valid name, just absent */
	assert_int_equal(ply_lookup_name(&fx->stack, fx->root.parts,
					 fx->root.nparts, name, &lk),
			 -ENOENT);
	assert_int_equal(ply_name_check("ok"), 0);
}

static void test_symlink_not_followed(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_write(fx->base, "l1/dir/secret", "s");
	tree_symlink(fx->base, "u/link", "dir");
	tree_symlink(fx->base, "l1/abs", "/etc");
	tree_symlink(fx->base, "l1/dangling", "nowhere");
	open_stack(fx);

	assert_int_equal(lookup(fx, "link", &lk), 0);
	assert_true(S_ISLNK(lk.st.st_mode));
	assert_int_equal(lk.nparts, 1);
	ply_lookup_release(&lk);
	/* never a path through the link */
	assert_true(lookup(fx, "link/secret", &lk) < 0);

	assert_int_equal(lookup(fx, "abs", &lk), 0);
	assert_true(S_ISLNK(lk.st.st_mode));
	ply_lookup_release(&lk);
	assert_true(lookup(fx, "abs/passwd", &lk) < 0);
	assert_true(lookup(fx, "abs/hostname", &lk) < 0);

	assert_int_equal(lookup(fx, "dangling", &lk), 0);
	assert_true(S_ISLNK(lk.st.st_mode));
	ply_lookup_release(&lk);
}

static void test_symlink_hides_dir_below(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	/* a symlink is a non-directory: it is not merged with a dir below */
	tree_symlink(fx->base, "u/d", "elsewhere");
	tree_write(fx->base, "l1/d/f", "f");
	open_stack(fx);
	assert_int_equal(lookup(fx, "d", &lk), 0);
	assert_true(S_ISLNK(lk.st.st_mode));
	assert_int_equal(lk.nparts, 1);
	ply_lookup_release(&lk);
	assert_true(lookup(fx, "d/f", &lk) < 0);
}

static void test_ino_stable(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup a, b;

	tree_write(fx->base, "l1/d/f", "f");
	tree_mkdir(fx->base, "u/d");
	open_stack(fx);
	assert_int_equal(lookup(fx, "d/f", &a), 0);
	assert_int_equal(lookup(fx, "d/f", &b), 0);
	assert_int_equal(a.st.st_ino, b.st.st_ino);
	ply_lookup_release(&a);
	ply_lookup_release(&b);
	assert_int_equal(lookup(fx, "d", &a), 0);
	assert_int_equal(lookup(fx, "d", &b), 0);
	assert_int_equal(a.st.st_ino, b.st.st_ino);
	ply_lookup_release(&a);
	ply_lookup_release(&b);
}

static void test_ino_hard_links(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup a, b;

	tree_write(fx->base, "l1/a", "data");
	tree_link(fx->base, "l1/a", "l1/sub/b");
	open_stack(fx);
	assert_int_equal(lookup(fx, "a", &a), 0);
	assert_int_equal(lookup(fx, "sub/b", &b), 0);
	assert_int_equal(a.st.st_ino, b.st.st_ino);
	assert_int_equal(a.st.st_nlink, 2);
	ply_lookup_release(&a);
	ply_lookup_release(&b);
}

static void test_ino_per_layer(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;
	uint64_t ino[3];
	const char *names[3] = { "a", "b", "c" };
	const char *paths[3] = { "u/a", "l1/b", "l2/c" };

	tree_write(fx->base, "u/a", "a");
	tree_write(fx->base, "l1/b", "b");
	tree_write(fx->base, "l2/c", "c");
	open_stack(fx);
	for (size_t i = 0; i < 3; i++) {
		struct stat st = real_stat(fx, paths[i]);

		assert_int_equal(lookup(fx, names[i], &lk), 0);
		ino[i] = lk.st.st_ino;
		/* layer id in the top 10 bits, the real number below */
		assert_int_equal(ino[i] >> PLY_INO_BITS,
				 fx->stack.layers[i].id);
		assert_int_equal(ino[i] & ((UINT64_C(1) << PLY_INO_BITS) - 1),
				 st.st_ino);
		ply_lookup_release(&lk);
	}
	assert_int_not_equal(ino[0], ino[1]);
	assert_int_not_equal(ino[1], ino[2]);
	assert_int_not_equal(ino[0], ino[2]);
}

static void test_nlink(void **state)
{
	struct fx *fx = *state;
	struct ply_lookup lk;

	tree_mkdir(fx->base, "u/m/x");
	tree_mkdir(fx->base, "l1/m/y");
	tree_mkdir(fx->base, "l1/s/p");
	tree_mkdir(fx->base, "l1/s/q");
	open_stack(fx);
	assert_int_equal(lookup(fx, "m", &lk), 0);
	assert_int_equal(lk.nparts, 2);
	assert_int_equal(lk.st.st_nlink, 1);
	ply_lookup_release(&lk);
	assert_int_equal(lookup(fx, "s", &lk), 0);
	assert_int_equal(lk.nparts, 1);
	assert_int_equal(lk.st.st_nlink, real_stat(fx, "l1/s").st_nlink);
	assert_int_equal(lk.st.st_nlink, 4);
	ply_lookup_release(&lk);
}

static void test_traced(void **state)
{
	struct fx *fx = *state;
	struct ply_trace *trace = calloc(1, sizeof(*trace));
	struct ply_lookup lk;

	assert_non_null(trace);
	tree_mkdir(fx->base, "u/d");
	tree_write(fx->base, "l2/d/x", "x");
	tree_write(fx->base, "u/.wh.f", "");
	tree_write(fx->base, "l1/f", "f");
	tree_mkdir(fx->base, "u/n");
	tree_write(fx->base, "l1/n", "file below a dir");
	open_stack(fx);

	/* merged across a layer that lacks it */
	assert_int_equal(ply_lookup_traced(&fx->stack, fx->root.parts,
					   fx->root.nparts, "d", &lk, trace),
			 0);
	ply_lookup_release(&lk);
	assert_int_equal(trace->n, 3);
	assert_int_equal(trace->steps[0].layer, UPPER);
	assert_int_equal(trace->steps[0].seen, PLY_SEEN_OBJECT);
	assert_true(S_ISDIR(trace->steps[0].mode));
	assert_int_equal(trace->steps[1].layer, L1);
	assert_int_equal(trace->steps[1].seen, PLY_SEEN_NOTHING);
	assert_int_equal(trace->steps[2].layer, L2);
	assert_int_equal(trace->steps[2].seen, PLY_SEEN_OBJECT);

	/* a whiteout file ends the walk */
	memset(trace, 0, sizeof(*trace));
	assert_int_equal(ply_lookup_traced(&fx->stack, fx->root.parts,
					   fx->root.nparts, "f", &lk, trace),
			 -ENOENT);
	assert_int_equal(trace->n, 1);
	assert_int_equal(trace->steps[0].seen, PLY_SEEN_WHITEOUT_FILE);

	/* a file below a directory */
	memset(trace, 0, sizeof(*trace));
	assert_int_equal(ply_lookup_traced(&fx->stack, fx->root.parts,
					   fx->root.nparts, "n", &lk, trace),
			 0);
	ply_lookup_release(&lk);
	assert_int_equal(trace->n, 2);
	assert_int_equal(trace->steps[1].layer, L1);
	assert_int_equal(trace->steps[1].seen, PLY_SEEN_HIDDEN_NONDIR);
	assert_true(S_ISREG(trace->steps[1].mode));
	free(trace);
}

static void test_traced_chardev(void **state)
{
	struct fx *fx = *state;
	struct ply_trace *trace = calloc(1, sizeof(*trace));
	struct ply_lookup lk;

	assert_non_null(trace);
	if (geteuid() != 0) {
		free(trace);
		skip();
	}
	tree_mknod(fx->base, "l1/f", S_IFCHR | 0600, makedev(0, 0));
	tree_write(fx->base, "l2/f", "f");
	open_stack(fx);
	assert_int_equal(ply_lookup_traced(&fx->stack, fx->root.parts,
					   fx->root.nparts, "f", &lk, trace),
			 -ENOENT);
	assert_int_equal(trace->n, 2);
	assert_int_equal(trace->steps[0].seen, PLY_SEEN_NOTHING);
	assert_int_equal(trace->steps[1].layer, L1);
	assert_int_equal(trace->steps[1].seen, PLY_SEEN_WHITEOUT);
	assert_true(S_ISCHR(trace->steps[1].mode));
	free(trace);
}

static void test_ino_compose(void **state)
{
	struct ply_layer upper = { .dev = makedev(8, 1), .id = 0 };
	struct ply_layer lower = { .dev = makedev(8, 1), .id = 3 };
	struct ply_layer other = { .dev = makedev(8, 1), .id = 4 };
	const uint64_t mask = (UINT64_C(1) << PLY_INO_BITS) - 1;
	uint64_t a, b;

	assert_int_equal(ply_ino_compose(&upper, upper.dev, 42), 42);
	assert_int_equal(ply_ino_compose(&lower, lower.dev, 42),
			 (UINT64_C(3) << 54) | 42);
	/* the largest number that fits is kept as it is */
	assert_int_equal(ply_ino_compose(&lower, lower.dev, mask),
			 (UINT64_C(3) << 54) | mask);

	/* too large: hashed under id 1023, the same every time */
	a = ply_ino_compose(&lower, lower.dev, (ino_t)(mask + 1));
	b = ply_ino_compose(&lower, lower.dev, (ino_t)(mask + 1));
	assert_int_equal(a >> PLY_INO_BITS, PLY_LAYER_ID_HASHED);
	assert_int_equal(a, b);
	assert_int_not_equal(
		a, ply_ino_compose(&lower, lower.dev, (ino_t)(mask + 2)));

	/* another filesystem inside the layer: hashed, by layer too */
	a = ply_ino_compose(&lower, makedev(9, 9), 42);
	b = ply_ino_compose(&lower, makedev(9, 9), 42);
	assert_int_equal(a >> PLY_INO_BITS, PLY_LAYER_ID_HASHED);
	assert_int_equal(a, b);
	assert_int_not_equal(a, ply_ino_compose(&other, makedev(9, 9), 42));
	assert_int_not_equal(a, ply_ino_compose(&lower, makedev(9, 8), 42));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_root),
		T(test_topmost_wins),
		T(test_file_hides_dir),
		T(test_dir_hides_file),
		T(test_dirs_merge),
		T(test_opaque_user_xattr),
		T(test_opaque_trusted_xattr),
		T(test_opaque_opq_file),
		T(test_opaque_upper_hides_all),
		T(test_opaque_root_still_merges),
		T(test_whiteout_chardev),
		T(test_whiteout_file),
		T(test_whiteout_xattr),
		T(test_whiteout_xattr_in_plain_dir),
		T(test_whiteout_middle_layer),
		T(test_wh_file_own_layer),
		T(test_whiteout_probe_when_needed),
		T(test_reserved_names),
		T(test_bad_names),
		T(test_symlink_not_followed),
		T(test_symlink_hides_dir_below),
		T(test_ino_stable),
		T(test_ino_hard_links),
		T(test_ino_per_layer),
		T(test_nlink),
		T(test_traced),
		T(test_traced_chardev),
		cmocka_unit_test(test_ino_compose),
	};
#undef T

	return cmocka_run_group_tests_name("namei", tests, NULL, NULL);
}
