/* tree.h: helpers the unit tests share to build layer trees on disk.
 * Every helper takes a base directory and a path relative to it, creates
 * missing parents, and fails the running test (cmocka) on any error, so a
 * test reads as the tree it builds followed by what it asserts. */
#ifndef PLY_TEST_TREE_H
#define PLY_TEST_TREE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include "ply.h"

/* A fresh directory under /tmp; free with tree_remove() then free(). */
char *tree_mkdtemp(void);
/* rm -rf, never following symlinks. */
void tree_remove(const char *path);

/* base/rel in one of a few rotating static buffers (single-threaded). */
const char *tree_path(const char *base, const char *rel);

void tree_mkdir(const char *base, const char *rel);
void tree_write(const char *base, const char *rel, const char *content);
void tree_symlink(const char *base, const char *rel, const char *target);
void tree_link(const char *base, const char *oldrel, const char *newrel);
/* lsetxattr: on the object itself, a symlink included. */
void tree_setxattr(const char *base, const char *rel, const char *name,
		   const char *value);
void tree_mknod(const char *base, const char *rel, mode_t mode, dev_t dev);

/* Number of open file descriptors of this process. */
int tree_count_fds(void);

/* The tree most tests stand on: a new temporary directory holding the
 * empty layer directories u (upper), w (work), l1 and l2 (lowers, top
 * first). */
char *tree_mkstack(void);
/* Opens u over l1 over l2 of base (built by tree_mkstack), failing the
 * test with err's message when that is refused. */
void tree_open_u_l1_l2(const char *base, struct ply_stack *stack,
		       struct ply_err *err);
/* Parses optstr, opens the stack it names, frees the options. */
int tree_stack_open(struct ply_stack *stack, const char *optstr,
		    struct ply_err *err);
/* Looks up a '/'-separated path from root, one component at a time,
 * through the merged view. */
int tree_lookup_path(const struct ply_stack *stack,
		     const struct ply_lookup *root, const char *path,
		     struct ply_lookup *ret);

#endif
