/* splice.c: volumes and bind mounts grafted into the merged tree. Each
 * splice is one more layer of the stack, a plain tree read and changed in
 * place; the splice tree maps the path components leading to each DEST,
 * so that a lookup knows where a splice stands without any path string. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

const struct ply_snode *ply_snode_child(const struct ply_snode *node,
					const char *name)
{
	for (size_t i = 0; node && i < node->nchildren; i++)
		if (!strcmp(node->children[i].name, name))
			return &node->children[i];
	return NULL;
}

static void snode_clear(struct ply_snode *node)
{
	for (size_t i = 0; i < node->nchildren; i++)
		snode_clear(&node->children[i]);
	free(node->children);
	free(node->name);
}

void ply_splice_free(struct ply_snode *root)
{
	if (!root)
		return;
	snode_clear(root);
	free(root);
}

/* A directory on the way to a splice that no layer holds shows as an
 * empty root-owned 0755 directory, dated when the mount started. */
static void virtual_dir_stat(struct stat *st, uint64_t serial)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_ino = ((uint64_t)PLY_LAYER_ID_VIRTUAL << PLY_INO_BITS) | serial;
	st->st_blksize = 4096;
	clock_gettime(CLOCK_REALTIME, &st->st_mtim);
	st->st_atim = st->st_ctim = st->st_mtim;
}

static struct ply_snode *snode_add(struct ply_snode *parent, const char *name,
				   uint64_t serial)
{
	struct ply_snode *grown, *node;

	grown = realloc(parent->children,
			(parent->nchildren + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	parent->children = grown;
	node = &grown[parent->nchildren];
	memset(node, 0, sizeof(*node));
	node->name = strdup(name);
	if (!node->name)
		return NULL;
	node->layer = -1;
	node->type = DT_DIR;
	virtual_dir_stat(&node->vstat, serial);
	node->ino = node->vstat.st_ino;
	parent->nchildren++;
	return node;
}

static int count_nodes(const struct ply_snode *node)
{
	int n = 1;

	for (size_t i = 0; i < node->nchildren; i++)
		n += count_nodes(&node->children[i]);
	return n;
}

/* Walks dest's components, making the nodes on the way. */
static int place(struct ply_stack *stack, const char *dest,
		 struct ply_snode **ret, struct ply_err *err)
{
	char *copy = strdup(dest), *save = NULL, *comp;
	struct ply_snode *node;
	int r = 0, depth = 0;

	if (!copy)
		return -ENOMEM;
	if (!stack->splices) {
		stack->splices = calloc(1, sizeof(*stack->splices));
		if (!stack->splices) {
			free(copy);
			return -ENOMEM;
		}
		stack->splices->layer = -1;
	}
	node = stack->splices;
	for (comp = strtok_r(copy, "/", &save); comp && r >= 0;
	     comp = strtok_r(NULL, "/", &save), depth++) {
		struct ply_snode *next;

		if (!strcmp(comp, ".") || !strcmp(comp, "..")) {
			r = ply_err_set(err, -EINVAL,
					"splice destination %s: '.' and '..' are not allowed",
					dest);
			break;
		}
		if (ply_name_check(comp) < 0) {
			r = ply_err_set(err, -EINVAL,
					"splice destination %s: bad component '%s'",
					dest, comp);
			break;
		}
		next = (struct ply_snode *)ply_snode_child(node, comp);
		if (!next) {
			next = snode_add(node, comp,
					 (uint64_t)count_nodes(stack->splices));
			if (!next)
				r = -ENOMEM;
		}
		node = next;
	}
	free(copy);
	if (r >= 0 && depth == 0)
		r = ply_err_set(err, -EINVAL,
				"splice destination '%s' is the root: mount the source instead",
				dest);
	if (r >= 0 && node->layer >= 0)
		r = ply_err_set(err, -EINVAL,
				"splice destination %s is given twice", dest);
	if (r < 0)
		return r;
	*ret = node;
	return 0;
}

int ply_splice_add(struct ply_stack *stack, const struct ply_splice_spec *spec,
		   int source_fd, const char *source_label, struct ply_err *err)
{
	struct ply_layer *grown, *layer;
	struct ply_snode *node;
	struct stat st;
	int r;

	r = ply_sys_fstat(source_fd, &st);
	/* layer ids take 10 bits, the last two reserved */
	if (r >= 0 && stack->nlayers + 1 >= PLY_LAYER_ID_VIRTUAL)
		r = ply_err_set(err, -E2BIG,
				"too many layers and splices: at most %d in all",
				PLY_LAYER_ID_VIRTUAL - 2);
	if (r >= 0)
		r = place(stack, spec->dest, &node, err);
	if (r < 0) {
		close(source_fd);
		return r;
	}
	grown = realloc(stack->layers,
			(stack->nlayers + 1) * sizeof(*stack->layers));
	if (!grown) {
		close(source_fd);
		return -ENOMEM;
	}
	stack->layers = grown;
	layer = &grown[stack->nlayers];
	memset(layer, 0, sizeof(*layer));
	layer->path = strdup(source_label);
	layer->fd = source_fd;
	layer->dev = st.st_dev;
	layer->ino = st.st_ino;
	layer->id = (uint16_t)(stack->nlayers + (stack->has_upper ? 0 : 1));
	layer->is_splice = true;
	layer->ro = spec->ro;
	node->layer = (int)stack->nlayers;
	node->type = (unsigned char)IFTODT(st.st_mode);
	node->ino = ply_ino_compose(layer, st.st_dev, st.st_ino);
	stack->nlayers++;
	return layer->path ? 0 : -ENOMEM;
}

/* Checks one level of the splice tree against the merged directory made
 * of parts: each node's name must be absent or a directory (a splice
 * itself may hide anything). */
static int check_level(const struct ply_stack *stack,
		       const struct ply_snode *node,
		       const struct ply_part *parts, size_t nparts,
		       struct ply_err *err)
{
	for (size_t i = 0; i < node->nchildren; i++) {
		const struct ply_snode *child = &node->children[i];
		struct ply_lookup lk;
		int r;

		if (child->layer >= 0)
			continue; /* a splice hides whatever stands there */
		r = nparts ? ply_lookup_name(stack, parts, nparts, child->name,
					     &lk) :
			     -ENOENT;
		if (r == -ENOENT)
			r = check_level(stack, child, NULL, 0, err);
		else if (r < 0)
			return r;
		else {
			if (!S_ISDIR(lk.st.st_mode))
				r = ply_err_set(err, -ELOOP,
						"splice destination crosses %s '%s' in the layers",
						S_ISLNK(lk.st.st_mode) ?
							"the symlink" :
							"the non-directory",
						child->name);
			else
				r = check_level(stack, child, lk.parts,
						lk.nparts, err);
			ply_lookup_release(&lk);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static void own_like(struct ply_snode *node, const struct stat *root)
{
	node->vstat.st_uid = root->st_uid;
	node->vstat.st_gid = root->st_gid;
	for (size_t i = 0; i < node->nchildren; i++)
		own_like(&node->children[i], root);
}

int ply_splice_check(const struct ply_stack *stack, struct ply_err *err)
{
	struct ply_lookup root;
	int r;

	if (!stack->splices)
		return 0;
	r = ply_lookup_root(stack, &root);
	if (r < 0)
		return r;
	own_like(stack->splices, &root.st);
	r = check_level(stack, stack->splices, root.parts, root.nparts, err);
	ply_lookup_release(&root);
	return r;
}
