/* namei.c: looks names up across the layers, top to bottom. A whiteout
 * ends the walk; a non-directory ends it and is the result; a directory
 * merges with the same-named directories below until one is opaque, or a
 * whiteout or non-directory is met. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

int ply_name_check(const char *name)
{
	size_t len = strlen(name);

	if (!len || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return -EINVAL;
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

void ply_lookup_release(struct ply_lookup *lk)
{
	for (size_t i = 0; i < lk->nparts; i++)
		ply_sys_close(lk->parts[i].fd);
	free(lk->parts);
	lk->parts = NULL;
	lk->nparts = 0;
}

static int push_part(struct ply_lookup *lk, uint16_t layer, int fd,
		     enum ply_opaque state, const struct stat *st)
{
	struct ply_part *grown =
		realloc(lk->parts, (lk->nparts + 1) * sizeof(*lk->parts));

	if (!grown)
		return -ENOMEM;
	lk->parts = grown;
	if (!lk->nparts)
		lk->st = *st; /* the raw stat, made the object's at the end */
	grown[lk->nparts++] = (struct ply_part){ .layer = layer,
						 .fd = fd,
						 .state = state,
						 .dev = st->st_dev,
						 .ino = st->st_ino };
	return 0;
}

/* Does the layer directory dir hold ".wh.NAME", hiding NAME below? Not
 * asked of one a listing found without markers. */
static bool has_whiteout_file(const struct ply_part *dir, const char *name)
{
	char wh[PLY_WH_PREFIX_LEN + NAME_MAX + 1];
	struct stat st;

	if (strlen(name) + PLY_WH_PREFIX_LEN > NAME_MAX ||
	    __atomic_load_n(&dir->no_wh_files, __ATOMIC_RELAXED))
		return false;
	memcpy(wh, PLY_WH_PREFIX, PLY_WH_PREFIX_LEN);
	strcpy(wh + PLY_WH_PREFIX_LEN, name);
	return ply_sys_fstatat(dir->fd, wh, &st) == 0;
}

/* The object's stat from st, the raw stat of its top part. */
static void object_stat_of(const struct ply_stack *stack,
			   const struct ply_part *parts, size_t nparts,
			   struct stat st, struct stat *ret_st)
{
	const struct ply_layer *layer = &stack->layers[parts[0].layer];

	if (layer->override && ply_override_read(parts[0].fd, &st) < 0)
		ply_debug("malformed override xattr in %s", layer->path);
	if (parts[0].origin && S_ISREG(st.st_mode) && st.st_nlink > 1) {
		nlink_t n;

		/* shared through the index: the union's own count */
		if (ply_nlink_read(parts[0].fd, &n) == 0)
			st.st_nlink = n;
	}
	if (parts[0].origin)
		st.st_ino = parts[0].origin;
	else
		st.st_ino = ply_ino_compose(layer, st.st_dev, st.st_ino);
	if (parts[0].metacopy && nparts > 1) {
		struct stat data;

		/* blocks are where the data is, as overlayfs reports them */
		if (ply_sys_fstat(parts[1].fd, &data) == 0)
			st.st_blocks = data.st_blocks;
	}
	/* like overlayfs: a merged directory's link count is unknown */
	if (S_ISDIR(st.st_mode) && nparts > 1)
		st.st_nlink = 1;
	*ret_st = st;
}

int ply_object_stat(const struct ply_stack *stack, const struct ply_part *parts,
		    size_t nparts, struct stat *ret_st)
{
	struct stat st;
	int r = ply_sys_fstat(parts[0].fd, &st);

	if (r < 0)
		return r;
	object_stat_of(stack, parts, nparts, st, ret_st);
	return 0;
}

static void trace_step(struct ply_trace *trace, uint16_t layer,
		       enum ply_seen seen, mode_t mode, enum ply_opaque state,
		       bool wh_file)
{
	if (trace && trace->n < PLY_TRACE_MAX)
		trace->steps[trace->n++] =
			(struct ply_trace_step){ layer, seen, mode, state,
						 wh_file };
}

/* Visits name in one layer's directory: adds it to lk when it belongs to
 * the merged object. Returns 1 to go on to the next layer, 0 to stop. */
/* What only an upper object can carry: the st_ino it had before its
 * copy-up, the metacopy mark, and the impure mark of a directory. */
static void read_upper_marks(int fd, const struct stat *st, unsigned marks,
			     struct ply_part *part)
{
	if (!(marks & PLY_MARK_ORIGIN) ||
	    ply_copyup_origin(fd, &part->origin) < 0)
		part->origin = 0;
	if (S_ISREG(st->st_mode) && (marks & PLY_MARK_METACOPY))
		part->metacopy = ply_copyup_is_metacopy(fd);
	if (S_ISDIR(st->st_mode))
		part->impure = marks & PLY_MARK_IMPURE;
}

/* Names the index entry of a lower object: its st_ino in hex. */
void ply_index_name(uint64_t ino, char *buf, size_t size)
{
	snprintf(buf, size, "%016llx", (unsigned long long)ino);
}

/* A hard-linked lower file that was copied up under another name has
 * its upper copy in the index: every name shows that copy. 1 when taken
 * (lk holds it), 0 when there is none. */
static int take_indexed(const struct ply_stack *stack, struct ply_lookup *lk,
			uint16_t layer, const struct stat *lower_st)
{
	uint64_t ino = ply_ino_compose(&stack->layers[layer],
				       lower_st->st_dev, lower_st->st_ino);
	struct stat st;
	char name[32];
	int fd, r;

	if (stack->indexfd < 0)
		return 0;
	ply_index_name(ino, name, sizeof(name));
	fd = ply_sys_open_path(stack->indexfd, name);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = ply_sys_fstat(fd, &st);
	if (r >= 0)
		r = push_part(lk, 0, fd, PLY_DIR_PLAIN, &st);
	if (r < 0) {
		close(fd);
		return r;
	}
	lk->parts[0].origin = ino;
	lk->parts[0].indexed = true;
	return 1;
}

/* Inside a splice a tree is plain: no markers, nothing merged. */
static int visit_plain(struct ply_lookup *lk, const struct ply_part *dir,
		       const char *name)
{
	struct stat st;
	int fd = ply_sys_open_path(dir->fd, name), r;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = ply_sys_fstat(fd, &st);
	if (r >= 0)
		r = push_part(lk, dir->layer, fd, PLY_DIR_PLAIN, &st);
	if (r < 0)
		close(fd);
	return r < 0 ? r : 0;
}

/* open_object's fd for a part left closed */
#define LAZY (-1)

/* Opens name in the layer directory dir and stats it; with lazy, a lower
 * non-directory is only stat'ed (PLY_LOOKUP_LAZY). */
static int open_object(const struct ply_stack *stack,
		       const struct ply_lookup *lk, const struct ply_part *dir,
		       const char *name, bool lazy, struct stat *ret_st)
{
	const struct ply_layer *layer = &stack->layers[dir->layer];
	int fd, r;

	/* a metacopy's data part is read through its fd, and an override
	 * layer's ownership through the object's */
	if (lazy && !layer->is_upper && !layer->override &&
	    !(lk->nparts == 1 && lk->parts[0].metacopy)) {
		r = ply_sys_fstatat(dir->fd, name, ret_st);
		if (r < 0)
			return r;
		if (!S_ISDIR(ret_st->st_mode))
			return LAZY;
		/* a lower layer does not change: the stat stands for the
		 * directory opened now */
		return ply_sys_open_dir(dir->fd, name);
	}
	fd = ply_sys_open_path(dir->fd, name);
	if (fd < 0)
		return fd;
	r = ply_sys_fstat(fd, ret_st);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* With ret_unprobed, a layer without name leaves its ".wh.NAME" probe to
 * the caller (*ret_unprobed set, 1 returned): it matters only if a layer
 * below holds name (see lookup_layers). */
static int visit_layer(const struct ply_stack *stack, struct ply_lookup *lk,
		       const struct ply_part *dir, const char *name,
		       struct ply_trace *trace, bool lazy, char *redirect,
		       bool *ret_unprobed)
{
	enum ply_opaque state = PLY_DIR_PLAIN;
	unsigned marks = 0;
	struct stat st;
	bool wh_file;
	int fd, r;

	if (stack->layers[dir->layer].is_splice)
		return visit_plain(lk, dir, name);
	fd = open_object(stack, lk, dir, name, lazy, &st);
	if (fd == -ENOENT && ret_unprobed) {
		*ret_unprobed = true;
		return 1;
	}
	if (fd == -ENOENT) {
		wh_file = has_whiteout_file(dir, name);
		trace_step(trace, dir->layer,
			   wh_file ? PLY_SEEN_WHITEOUT_FILE : PLY_SEEN_NOTHING,
			   0, state, wh_file);
		return wh_file ? 0 : 1;
	}
	if (fd < 0 && fd != LAZY)
		return fd;
	if (ply_marker_is_whiteout(dir->fd, name, &st, dir->state) > 0) {
		trace_step(trace, dir->layer, PLY_SEEN_WHITEOUT, st.st_mode,
			   state, false);
		r = 0;
		goto drop;
	}
	if (lk->nparts == 1 && lk->parts[0].metacopy) {
		/* the data of a metacopy file is the regular file below */
		if (!S_ISREG(st.st_mode)) {
			r = -EIO; /* as overlayfs: the data is missing */
			goto drop;
		}
		r = push_part(lk, dir->layer, fd, PLY_DIR_PLAIN, &st);
		if (r < 0)
			goto drop;
		trace_step(trace, dir->layer, PLY_SEEN_OBJECT, st.st_mode,
			   PLY_DIR_PLAIN, false);
		return 0;
	}
	if (!lk->nparts && S_ISREG(st.st_mode) && st.st_nlink > 1 &&
	    !stack->layers[dir->layer].is_upper) {
		r = take_indexed(stack, lk, dir->layer, &st);
		if (r != 0) {
			ply_sys_close(fd);
			return r < 0 ? r : 0;
		}
	}
	if (lk->nparts && !S_ISDIR(st.st_mode)) {
		/* a non-directory below a directory is hidden */
		trace_step(trace, dir->layer, PLY_SEEN_HIDDEN_NONDIR,
			   st.st_mode, state, false);
		r = 0;
		goto drop;
	}
	if (S_ISDIR(st.st_mode) || stack->layers[dir->layer].is_upper)
		marks = ply_marker_present(fd);
	if (S_ISDIR(st.st_mode)) {
		ply_marker_dir_state_marks(fd, marks, &state);
		if (state != PLY_DIR_OPAQUE && (marks & PLY_MARK_REDIRECT) &&
		    ply_marker_dir_redirect(fd, redirect, PATH_MAX) < 0)
			redirect[0] = '\0';
	}
	r = push_part(lk, dir->layer, fd, state, &st);
	if (r < 0)
		goto drop;
	if (stack->layers[dir->layer].is_upper)
		read_upper_marks(fd, &st, marks, &lk->parts[lk->nparts - 1]);
	if (lk->parts[lk->nparts - 1].metacopy) {
		/* its data is below, where a redirect says if it has one */
		if ((marks & PLY_MARK_REDIRECT) &&
		    ply_marker_dir_redirect(fd, redirect, PATH_MAX) < 0)
			redirect[0] = '\0';
		return 1;
	}
	wh_file = S_ISDIR(st.st_mode) && state != PLY_DIR_OPAQUE &&
		  has_whiteout_file(dir, name);
	trace_step(trace, dir->layer, PLY_SEEN_OBJECT, st.st_mode, state,
		   wh_file);
	if (!S_ISDIR(st.st_mode) || state == PLY_DIR_OPAQUE || wh_file)
		return 0;
	return 1;
drop:
	ply_sys_close(fd);
	return r;
}

/* Does one of the n layer directories hold ".wh.NAME"? */
static bool whiteout_file_in(const struct ply_part *dirs, size_t n,
			     const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (has_whiteout_file(&dirs[i], name))
			return true;
	return false;
}

/* Drops the parts lk took from index from on. */
static void drop_parts_from(struct ply_lookup *lk, size_t from)
{
	while (lk->nparts > from)
		ply_sys_close(lk->parts[--lk->nparts].fd);
}

/* Opens the parent directory of path's last component in layer, walking
 * it one component at a time without following anything. */
static int open_in_layer(const struct ply_layer *layer, const char *path,
			 const char **ret_last)
{
	char comp[NAME_MAX + 1];
	const char *p = path, *slash;
	int fd = ply_sys_openat(layer->fd, ".", O_PATH | O_DIRECTORY, 0);

	while (fd >= 0) {
		int next;
		size_t len;

		while (*p == '/')
			p++;
		slash = strchr(p, '/');
		if (!slash) {
			*ret_last = p;
			return fd;
		}
		len = (size_t)(slash - p);
		if (len > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		next = ply_sys_openat(fd, comp,
				      O_PATH | O_NOFOLLOW | O_DIRECTORY, 0);
		close(fd);
		fd = next;
		p = slash + 1;
	}
	return fd;
}

/* Visits the layers below a directory that carries an absolute redirect:
 * there, its content lives at path from each layer's root, not under its
 * parent. A further redirect found on the way takes over. */
static int visit_redirected(const struct ply_stack *stack,
			    struct ply_lookup *lk, size_t first_layer,
			    char *path, struct ply_trace *trace)
{
	char *redirect = malloc(PATH_MAX);
	int r = 1;

	if (!redirect)
		return -ENOMEM;
	for (size_t j = first_layer; j < stack->nunion && r > 0; j++) {
		struct ply_part dir = { .layer = (uint16_t)j };
		const char *last;

		dir.fd = open_in_layer(&stack->layers[j], path, &last);
		if (dir.fd < 0)
			continue; /* this layer does not hold it */
		ply_marker_dir_state(dir.fd, &dir.state);
		redirect[0] = '\0';
		r = visit_layer(stack, lk, &dir, last, trace, false, redirect,
				NULL);
		close(dir.fd);
		if (redirect[0] == '/') {
			strcpy(path, redirect);
		} else if (redirect[0]) {
			char *cut = strrchr(path, '/');

			/* a relative redirect names a sibling */
			if (cut && (size_t)(cut - path) + 1 + strlen(redirect) <
					   PATH_MAX)
				strcpy(cut + 1, redirect);
		}
	}
	free(redirect);
	return r < 0 ? r : 0;
}

static int lookup_layers(const struct ply_stack *stack,
			 const struct ply_part *parent, size_t nparent,
			 const char *name, struct ply_lookup *ret,
			 struct ply_trace *trace, bool lazy)
{
	struct ply_lookup lk = { 0 };
	char *redirect = NULL, *cur_name = NULL;
	const char *looked = name;
	/* the first of the layers passed without name since the last one
	 * holding it, whose ".wh.NAME" probes wait for a layer below that
	 * holds name: a miss in every layer costs one call a layer */
	size_t unprobed_from = SIZE_MAX;
	int r;

	r = ply_name_check(name);
	if (r < 0)
		return r;
	if (ply_marker_name_reserved(name) &&
	    !(nparent && stack->layers[parent[0].layer].is_splice))
		return -ENOENT;
	redirect = malloc(PATH_MAX);
	if (!redirect)
		return -ENOMEM;
	for (size_t i = 0; i < nparent; i++) {
		size_t had = lk.nparts;
		bool unprobed = false;

		redirect[0] = '\0';
		r = visit_layer(stack, &lk, &parent[i], looked, trace, lazy,
				redirect, trace ? NULL : &unprobed);
		if (unprobed) {
			if (unprobed_from == SIZE_MAX)
				unprobed_from = i;
			continue;
		}
		if (unprobed_from != SIZE_MAX &&
		    (r < 0 || lk.nparts > had) &&
		    whiteout_file_in(parent + unprobed_from, i - unprobed_from,
				     looked)) {
			/* hidden from above: as if the walk had stopped there */
			drop_parts_from(&lk, had);
			r = 0;
		}
		unprobed_from = SIZE_MAX;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		if (redirect[0] == '/') {
			r = visit_redirected(stack, &lk,
					     (size_t)parent[i].layer + 1,
					     redirect, trace);
			if (r < 0)
				goto fail;
			break;
		}
		if (redirect[0] && !strchr(redirect, '/')) {
			/* below, the directory is found under its old name */
			free(cur_name);
			cur_name = strdup(redirect);
			if (!cur_name) {
				r = -ENOMEM;
				goto fail;
			}
			looked = cur_name;
		}
	}
	if (!lk.nparts) {
		r = -ENOENT;
		goto fail;
	}
	object_stat_of(stack, lk.parts, lk.nparts, lk.st, &lk.st);
	free(redirect);
	free(cur_name);
	*ret = lk;
	return 0;
fail:
	free(redirect);
	free(cur_name);
	ply_lookup_release(&lk);
	return r;
}

int ply_lookup_traced(const struct ply_stack *stack,
		      const struct ply_part *parent, size_t nparent,
		      const char *name, struct ply_lookup *ret,
		      struct ply_trace *trace)
{
	return lookup_layers(stack, parent, nparent, name, ret, trace, false);
}

int ply_lookup_name(const struct ply_stack *stack,
		    const struct ply_part *parent, size_t nparent,
		    const char *name, struct ply_lookup *ret)
{
	return ply_lookup_traced(stack, parent, nparent, name, ret, NULL);
}

static int splice_root(const struct ply_stack *stack,
		       const struct ply_snode *node, struct ply_lookup *ret)
{
	const struct ply_layer *layer = &stack->layers[node->layer];
	struct ply_lookup lk = { .snode = node };
	struct stat st;
	int fd = fcntl(layer->fd, F_DUPFD_CLOEXEC, 0), r;

	if (fd < 0)
		return -errno;
	r = ply_sys_fstat(fd, &st);
	if (r >= 0)
		r = push_part(&lk, (uint16_t)node->layer, fd, PLY_DIR_PLAIN,
			      &st);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = ply_object_stat(stack, lk.parts, lk.nparts, &lk.st);
	if (r < 0) {
		ply_lookup_release(&lk);
		return r;
	}
	*ret = lk;
	return 0;
}

int ply_lookup_child(const struct ply_stack *stack,
		     const struct ply_part *parent, size_t nparent,
		     const struct ply_snode *snode, const char *name,
		     unsigned flags, struct ply_lookup *ret)
{
	const struct ply_snode *node = ply_snode_child(snode, name);
	struct ply_lookup lk = { 0 };
	int r;

	if (node && node->layer >= 0)
		return splice_root(stack, node, ret);
	r = nparent ? lookup_layers(stack, parent, nparent, name, &lk, NULL,
				    flags & PLY_LOOKUP_LAZY) :
		      -ENOENT;
	if (!node) {
		if (r >= 0)
			*ret = lk;
		return r;
	}
	/* on the way to a splice: a directory, whatever the layers say */
	if (r >= 0 && !S_ISDIR(lk.st.st_mode)) {
		ply_lookup_release(&lk);
		r = -ENOENT;
	}
	if (r == -ENOENT) {
		memset(&lk, 0, sizeof(lk));
		lk.st = node->vstat;
		r = 0;
	}
	if (r >= 0) {
		lk.snode = node;
		*ret = lk;
	}
	return r;
}

int ply_lookup_root(const struct ply_stack *stack, struct ply_lookup *ret)
{
	struct ply_lookup lk = { 0 };
	int r = 0;

	for (size_t i = 0; i < stack->nunion && r >= 0; i++) {
		enum ply_opaque state;
		struct stat st;
		int fd = ply_sys_openat(stack->layers[i].fd, ".",
					O_PATH | O_DIRECTORY, 0);

		if (fd < 0) {
			r = fd;
			break;
		}
		r = ply_sys_fstat(fd, &st);
		if (r < 0) {
			close(fd);
			break;
		}
		ply_marker_dir_state(fd, &state);
		/* layer roots always merge: an opaque root hides nothing */
		if (state == PLY_DIR_OPAQUE)
			state = PLY_DIR_XWHITEOUTS;
		r = push_part(&lk, (uint16_t)i, fd, state, &st);
		if (r < 0)
			close(fd);
		else if (stack->layers[i].is_upper)
			read_upper_marks(fd, &st, ply_marker_present(fd),
					 &lk.parts[lk.nparts - 1]);
	}
	if (r >= 0)
		r = ply_object_stat(stack, lk.parts, lk.nparts, &lk.st);
	if (r < 0) {
		ply_lookup_release(&lk);
		return r;
	}
	lk.snode = stack->splices;
	*ret = lk;
	return 0;
}
