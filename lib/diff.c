/* diff.c: what the upper layer changes in the merged view (plyctl diff and
 * commit). Compares the view now (every layer) with the view before (the
 * lower layers alone), walking only the directories the upper holds and
 * looking single names up below; only an opaque or redirected directory
 * has its lower listing read, and a redirected one its moved content. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

struct walker {
	const struct ply_stack *now;
	struct ply_stack before; /* the same layers, without the hard-link
				  * index: what the lower layers alone show */
	ply_diff_fn fn;
	void *ctx;
	struct ply_err *err;
	char path[PATH_MAX];
	size_t len;
};

const struct ply_part *ply_diff_data_part(const struct ply_lookup *lk)
{
	if (lk->nparts > 1 && lk->parts[0].metacopy)
		return &lk->parts[1];
	return &lk->parts[0];
}

static bool part_is_upper(const struct ply_stack *stack,
			  const struct ply_part *p)
{
	return stack->layers[p->layer].is_upper;
}

/* The parts of an object that come from the lower layers. */
static size_t lower_parts(const struct ply_stack *stack,
			  const struct ply_part *parts, size_t n,
			  const struct ply_part **ret)
{
	size_t skip = n && part_is_upper(stack, &parts[0]) ? 1 : 0;

	*ret = parts + skip;
	return n - skip;
}

static bool same_parts(const struct ply_part *a, size_t na,
		       const struct ply_part *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].layer != b[i].layer || a[i].dev != b[i].dev ||
		    a[i].ino != b[i].ino)
			return false;
	return true;
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *s, const char *name)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 32;
		char **v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n] = strdup(name);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts bytewise and drops duplicates. */
static void names_sort(struct names *s)
{
	size_t out = 0;

	if (s->n) /* qsort wants an array, even an empty one */
		qsort(s->v, s->n, sizeof(*s->v), cmp_name);
	for (size_t i = 0; i < s->n; i++) {
		if (out && !strcmp(s->v[out - 1], s->v[i])) {
			free(s->v[i]);
			continue;
		}
		s->v[out++] = s->v[i];
	}
	s->n = out;
}

/* Every name the upper directory fd holds or whites out with ".wh.". */
static int upper_names(int fd, struct names *s)
{
	char buf[32768];
	ssize_t n;
	int dfd, r = 0;

	dfd = ply_sys_openat(fd, ".", O_RDONLY | O_DIRECTORY, 0);
	if (dfd < 0)
		return dfd;
	while ((n = ply_sys_getdents(dfd, buf, sizeof(buf))) > 0 && r >= 0) {
		for (ssize_t pos = 0; pos < n && r >= 0;) {
			struct dirent *de = (struct dirent *)(buf + pos);
			const char *name = de->d_name;

			pos += de->d_reclen;
			if (!strcmp(name, ".") || !strcmp(name, ".."))
				continue;
			if (ply_marker_name_reserved(name)) {
				name = ply_marker_whiteout_target(name);
				if (!name)
					continue; /* .wh..wh.opq and the like */
			}
			r = names_add(s, name);
		}
	}
	close(dfd);
	return n < 0 ? (int)n : r;
}

/* Every name of the merged listing of a directory made of parts. */
static int merged_names(const struct ply_stack *stack,
			const struct ply_part *parts, size_t nparts,
			struct names *s)
{
	struct ply_dir dir;
	int r;

	if (!nparts)
		return 0;
	r = ply_dir_read(stack, parts, nparts, 0, 0, &dir);
	if (r < 0)
		return r;
	for (size_t i = 2; i < dir.count && r >= 0; i++)
		r = names_add(s, dir.entries[i].name);
	ply_dir_free(&dir);
	return r;
}

static int walk_dir(struct walker *w, const struct ply_lookup *now,
		    const struct ply_part *bparts, size_t nb, bool opaque);

static int lookup(const struct ply_stack *stack, const struct ply_part *parts,
		  size_t n, const char *name, struct ply_lookup *ret,
		  bool *found)
{
	int r;

	*found = false;
	if (!n)
		return 0;
	r = ply_lookup_name(stack, parts, n, name, ret);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r < 0)
		return r;
	*found = true;
	return 0;
}

/* Compares name in the directory now with the same name before, reports
 * the change, and goes down into a directory that is in the upper or whose
 * content differs from what was there before. */
static int visit(struct walker *w, const struct ply_lookup *now,
		 const struct ply_part *bparts, size_t nb, const char *name,
		 bool parent_opaque)
{
	struct ply_lookup a = { 0 }, b = { 0 };
	const struct ply_part *al;
	size_t nal, saved = w->len, len = strlen(name);
	bool has_a, has_b, a_dir, b_dir, differ;
	struct ply_diff_entry e = { .path = w->path };
	int r;

	if (w->len + 1 + len >= sizeof(w->path))
		return ply_err_set(w->err, -ENAMETOOLONG, "%s/%s: path too long",
				   w->path, name);
	w->path[w->len] = '/';
	memcpy(w->path + w->len + 1, name, len + 1);
	w->len += 1 + len;

	r = lookup(w->now, now->parts, now->nparts, name, &a, &has_a);
	if (r >= 0)
		r = lookup(&w->before, bparts, nb, name, &b, &has_b);
	if (r < 0) {
		r = ply_err_set(w->err, r, "%s: %s", w->path, strerror(-r));
		goto out;
	}
	if (!has_a && !has_b)
		goto out;
	if (!has_a) {
		e.kind = PLY_DIFF_DELETED;
		e.then = &b;
		e.covered = parent_opaque;
		r = w->fn(&e, w->ctx);
		goto out;
	}
	a_dir = S_ISDIR(a.st.st_mode);
	b_dir = has_b && S_ISDIR(b.st.st_mode);
	nal = lower_parts(w->now, a.parts, a.nparts, &al);
	e.in_upper = part_is_upper(w->now, &a.parts[0]);
	if (!has_b) {
		e.kind = PLY_DIFF_ADDED;
	} else if (e.in_upper) {
		e.kind = PLY_DIFF_CHANGED;
	} else if (same_parts(a.parts, a.nparts, b.parts, b.nparts)) {
		goto out; /* the same lower object: nothing changed below */
	} else {
		e.kind = PLY_DIFF_CHANGED;
	}
	/* its lower content is not what the lower layers show here */
	differ = a_dir && !same_parts(al, nal, b_dir ? b.parts : NULL,
				      b_dir ? b.nparts : 0);
	e.now = &a;
	e.then = has_b ? &b : NULL;
	e.opaque = differ && b_dir;
	r = w->fn(&e, w->ctx);
	if (r >= 0 && a_dir)
		r = walk_dir(w, &a, b_dir ? b.parts : NULL, b_dir ? b.nparts : 0,
			     differ);
out:
	ply_lookup_release(&a);
	ply_lookup_release(&b);
	w->len = saved;
	w->path[saved] = '\0';
	return r;
}

/* Visits, in sorted order, every name of directory now that may differ
 * from the directory bparts before: the upper's names (and whited-out
 * names) when the lower content is the same, else every name of both. */
static int walk_dir(struct walker *w, const struct ply_lookup *now,
		    const struct ply_part *bparts, size_t nb, bool full)
{
	struct names s = { 0 };
	int r = 0;

	if (full) {
		r = merged_names(w->now, now->parts, now->nparts, &s);
		if (r >= 0)
			r = merged_names(&w->before, bparts, nb, &s);
	} else if (part_is_upper(w->now, &now->parts[0])) {
		r = upper_names(now->parts[0].fd, &s);
	}
	if (r < 0) {
		r = ply_err_set(w->err, r, "%s/: %s", w->path, strerror(-r));
		goto out;
	}
	names_sort(&s);
	for (size_t i = 0; i < s.n && r >= 0; i++)
		r = visit(w, now, bparts, nb, s.v[i], full && nb);
out:
	names_free(&s);
	return r;
}

int ply_diff_walk(const struct ply_stack *stack, ply_diff_fn fn, void *ctx,
		  struct ply_err *err)
{
	struct walker *w;
	struct ply_lookup root;
	int r;

	if (!stack->has_upper)
		return ply_err_set(err, -EINVAL,
				   "the stack has no upper layer to compare");
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->now = stack;
	w->before = *stack;
	w->before.indexfd = -1;
	w->fn = fn;
	w->ctx = ctx;
	w->err = err;
	r = ply_lookup_root(stack, &root);
	if (r < 0) {
		r = ply_err_set(err, r, "the layer roots: %s", strerror(-r));
	} else {
		/* layer roots always merge: the root is never opaque */
		r = walk_dir(w, &root, root.parts + 1, root.nparts - 1, false);
		ply_lookup_release(&root);
	}
	free(w);
	return r;
}

static int collect(const struct ply_diff_entry *e, void *ctx)
{
	struct ply_changes *c = ctx;
	struct ply_change *v;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;

		v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	v = &c->v[c->n];
	v->path = strdup(e->path);
	if (!v->path)
		return -ENOMEM;
	v->kind = e->kind;
	v->mode = e->now ? e->now->st.st_mode : e->then->st.st_mode;
	c->n++;
	return 0;
}

int ply_diff_list(const struct ply_stack *stack, struct ply_changes *ret,
		  struct ply_err *err)
{
	struct ply_changes c = { 0 };
	int r = ply_diff_walk(stack, collect, &c, err);

	if (r < 0) {
		if (r == -ENOMEM && err && !err->msg[0])
			ply_err_set(err, r, "out of memory");
		ply_changes_free(&c);
		return r;
	}
	*ret = c;
	return 0;
}

void ply_changes_free(struct ply_changes *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].path);
	free(c->v);
	memset(c, 0, sizeof(*c));
}
