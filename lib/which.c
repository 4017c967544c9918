/* which.c: explains where a path of the merged tree comes from: the layer
 * that provides it, what it shadows, and the marker that hides it. The
 * rules stay in namei.c; this reads the trace a lookup leaves. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

static void layer_label(const struct ply_stack *stack, uint16_t layer,
			char *buf, size_t size)
{
	const struct ply_layer *l = &stack->layers[layer];

	if (l->is_upper)
		snprintf(buf, size, "the upper layer");
	else
		snprintf(buf, size, "lower layer %u", l->id);
}

/* Walks path inside one layer, never following a symlink. */
static int stat_in_layer(const struct ply_layer *layer, char **comps,
			 size_t ncomps, struct stat *ret_st)
{
	int fd = ply_sys_openat(layer->fd, ".", O_PATH | O_DIRECTORY, 0);
	int r = fd < 0 ? fd : 0;

	for (size_t i = 0; i < ncomps && r >= 0; i++) {
		int next = ply_sys_open_path(fd, comps[i]);

		close(fd);
		fd = next;
		r = fd < 0 ? fd : 0;
	}
	if (r >= 0) {
		r = ply_sys_fstat(fd, ret_st);
		close(fd);
	}
	return r;
}

static struct ply_which_row *add_row(struct ply_which *w, uint16_t layer,
				     enum ply_which_role role, mode_t mode)
{
	struct ply_which_row *row = &w->rows[w->n++];

	memset(row, 0, sizeof(*row));
	row->layer = layer;
	row->role = role;
	row->mode = mode;
	return row;
}

/* Turns the lookup's trace into rows and says why the walk stopped. */
static void rows_from_trace(const struct ply_stack *stack,
			    const struct ply_trace *trace, struct ply_which *w,
			    char *stop, size_t stop_size, bool *ret_by_marker)
{
	bool found = false;

	*ret_by_marker = true;
	char label[64];

	stop[0] = '\0';
	for (size_t i = 0; i < trace->n; i++) {
		const struct ply_trace_step *s = &trace->steps[i];
		struct ply_which_row *row;

		layer_label(stack, s->layer, label, sizeof(label));
		switch (s->seen) {
		case PLY_SEEN_NOTHING:
			break;
		case PLY_SEEN_OBJECT:
			row = add_row(w, s->layer,
				      found ? PLY_ROLE_MERGED :
					      PLY_ROLE_PROVIDES,
				      s->mode);
			found = true;
			if (s->state == PLY_DIR_OPAQUE) {
				snprintf(row->marker, sizeof(row->marker),
					 "opaque directory");
				snprintf(stop, stop_size,
					 "the opaque directory in %s", label);
			} else if (s->wh_file) {
				snprintf(row->marker, sizeof(row->marker),
					 "with a .wh. whiteout beside it");
				snprintf(stop, stop_size,
					 "the .wh. whiteout in %s", label);
			} else if (!S_ISDIR(s->mode)) {
				snprintf(stop, stop_size, "%s", label);
				*ret_by_marker = false;
			}
			break;
		case PLY_SEEN_WHITEOUT:
		case PLY_SEEN_WHITEOUT_FILE:
			row = add_row(w, s->layer, PLY_ROLE_HIDES, s->mode);
			snprintf(row->marker, sizeof(row->marker), "%s",
				 s->seen == PLY_SEEN_WHITEOUT_FILE ?
					 "whiteout file .wh.NAME" :
				 S_ISCHR(s->mode) ?
					 "whiteout (character device 0/0)" :
					 "whiteout (overlay.whiteout xattr)");
			snprintf(stop, stop_size, "the whiteout in %s", label);
			break;
		case PLY_SEEN_HIDDEN_NONDIR:
			row = add_row(w, s->layer, PLY_ROLE_HIDDEN, s->mode);
			snprintf(row->why, sizeof(row->why),
				 "a directory above it");
			snprintf(stop, stop_size,
				 "a directory above the %s in %s",
				 S_ISDIR(s->mode) ? "directory" : "file",
				 label);
			break;
		}
	}
}

/* Splits path at '/', leaving out empty and "." components. */
static int split_path(const char *path, char ***ret, size_t *ret_n)
{
	char *copy = strdup(path), *save = NULL, *comp;
	char **comps = calloc(strlen(path) / 2 + 1, sizeof(*comps));
	size_t n = 0;

	if (!copy || !comps) {
		free(copy);
		free(comps);
		return -ENOMEM;
	}
	for (comp = strtok_r(copy, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, "."))
			continue;
		comps[n] = strdup(comp);
		if (!comps[n]) {
			ply_strv_free(comps, n);
			free(copy);
			return -ENOMEM;
		}
		n++;
	}
	free(copy);
	*ret = comps;
	*ret_n = n;
	return 0;
}

int ply_which(const struct ply_stack *stack, const char *path,
	      struct ply_which *ret, struct ply_err *err)
{
	struct ply_lookup dir = { 0 }, lk = { 0 };
	struct ply_trace *trace = NULL;
	char **comps = NULL, stop[128];
	size_t ncomps = 0, nwalk, walked = 0;
	uint16_t last_layer = 0;
	bool by_marker;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = split_path(path, &comps, &ncomps);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ncomps; i++)
		if (!strcmp(comps[i], "..")) {
			r = ply_err_set(err, -EINVAL,
					"%s: '..' is not allowed in a path",
					path);
			goto out;
		}
	nwalk = ncomps;
	r = ply_lookup_root(stack, &dir);
	if (r < 0)
		goto out;
	if (!ncomps) {
		for (size_t i = 0; i < dir.nparts; i++)
			add_row(ret, dir.parts[i].layer,
				i ? PLY_ROLE_MERGED : PLY_ROLE_PROVIDES,
				S_IFDIR);
		ret->visible = true;
		goto out;
	}
	/* the parents, through the merged view */
	for (; walked + 1 < ncomps; walked++) {
		r = ply_lookup_name(stack, dir.parts, dir.nparts, comps[walked],
				    &lk);
		if (r == -ENOENT || (r >= 0 && !S_ISDIR(lk.st.st_mode))) {
			ply_lookup_release(&lk);
			ret->hidden_at = walked + 1;
			r = 0;
			break;
		}
		if (r < 0)
			goto out;
		ply_lookup_release(&dir);
		dir = lk;
		memset(&lk, 0, sizeof(lk));
	}
	if (ret->hidden_at) {
		/* explain the first component that is not a visible dir */
		size_t len = 0;

		for (size_t i = 0; i < ret->hidden_at; i++)
			len += (size_t)snprintf(ret->hidden_path + len,
						sizeof(ret->hidden_path) - len,
						"/%s", comps[i]);
		nwalk = ret->hidden_at;
	}
	trace = calloc(1, sizeof(*trace));
	if (!trace) {
		r = -ENOMEM;
		goto out;
	}
	r = ply_lookup_traced(stack, dir.parts, dir.nparts, comps[nwalk - 1],
			      &lk, trace);
	ret->visible = r >= 0 && !ret->hidden_at;
	if (r < 0 && r != -ENOENT)
		goto out;
	r = 0;
	ply_lookup_release(&lk);
	rows_from_trace(stack, trace, ret, stop, sizeof(stop), &by_marker);
	if (trace->n)
		last_layer = trace->steps[trace->n - 1].layer;
	if (!stop[0]) {
		const struct ply_part *cut = &dir.parts[dir.nparts - 1];
		char label[64];

		layer_label(stack, cut->layer, label, sizeof(label));
		snprintf(stop, sizeof(stop), "%s of its parent in %s",
			 cut->state == PLY_DIR_OPAQUE ? "the opaque directory" :
							"the end",
			 label);
		last_layer = cut->layer;
	}
	/* whatever lies below where the walk stopped is shadowed or hidden */
	for (size_t i = (size_t)last_layer + 1; i < stack->nunion; i++) {
		struct ply_which_row *row;
		struct stat st;

		if (stat_in_layer(&stack->layers[i], comps, nwalk, &st) < 0)
			continue;
		row = add_row(ret, (uint16_t)i,
			      by_marker ? PLY_ROLE_HIDDEN : PLY_ROLE_SHADOWED,
			      st.st_mode);
		snprintf(row->why, sizeof(row->why), "%s", stop);
	}
out:
	free(trace);
	ply_lookup_release(&dir);
	ply_strv_free(comps, ncomps);
	return r;
}
