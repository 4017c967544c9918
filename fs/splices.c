/* splices.c: sets up the bind= and volume= splices of a mount: opens
 * each source (a volume from the store, created and filled on first use),
 * grafts it into the stack, and checks the destinations. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plyfs.h"
#include "sys.h"

static int open_bind(const struct ply_splice_spec *spec, int *ret_fd,
		     struct ply_err *err)
{
	/* the source path is the user's to choose: it may be a symlink */
	int fd = ply_sys_openat(AT_FDCWD, spec->source, O_PATH, 0);

	if (fd < 0)
		return ply_err_set(err, fd, "bind source %s: %s", spec->source,
				   strerror(-fd));
	*ret_fd = fd;
	return 0;
}

/* Walks dest through the union layers: the merged directory found there,
 * or nothing (-ENOENT) where the layers hold no directory. */
static int lookup_dest(const struct ply_stack *stack, const char *dest,
		       struct ply_lookup *ret)
{
	char *copy = strdup(dest), *save = NULL, *comp;
	struct ply_lookup cur;
	int r;

	if (!copy)
		return -ENOMEM;
	r = ply_lookup_root(stack, &cur);
	for (comp = strtok_r(copy, "/", &save); comp && r >= 0;
	     comp = strtok_r(NULL, "/", &save)) {
		struct ply_lookup next;

		r = ply_lookup_name(stack, cur.parts, cur.nparts, comp, &next);
		ply_lookup_release(&cur);
		if (r >= 0)
			cur = next;
	}
	free(copy);
	if (r >= 0 && !S_ISDIR(cur.st.st_mode)) {
		ply_lookup_release(&cur);
		r = -ENOENT;
	}
	if (r >= 0)
		*ret = cur;
	return r;
}

/* Empties a volume whose filling a crash cut short. */
static int wipe(int datafd)
{
	char **names;
	size_t n;
	int r = ply_dir_names(datafd, &names, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = ply_remove_tree(datafd, names[i]);
	ply_strv_free(names, n);
	return r;
}

/* A new or empty volume takes what the layers hold at its destination,
 * as Docker fills one; a mark on the volume makes a filling that a crash
 * cut short start over at the next mount. */
static int fill_volume(struct plyfs *fs, const struct ply_splice_spec *spec,
		       const char *name, int datafd, struct ply_err *err)
{
	struct ply_lookup at;
	int pending = ply_volstore_fill_pending(&fs->store, name);
	int r = pending > 0 ? wipe(datafd) : 0;

	if (r >= 0)
		r = ply_dir_is_empty(datafd);
	if (r <= 0)
		return r < 0 ? ply_err_set(err, r, "volume %s: %s", name,
					   strerror(-r)) :
			       0;
	r = lookup_dest(&fs->stack, spec->dest, &at);
	if (r == -ENOENT)
		return pending > 0 ? ply_volstore_fill_end(&fs->store, name) :
				     0;
	if (r < 0)
		return ply_err_set(err, r, "volume at %s: %s", spec->dest,
				   strerror(-r));
	r = ply_volstore_fill_begin(&fs->store, name);
	if (r >= 0)
		r = ply_populate(&fs->stack, at.parts, at.nparts, datafd);
	if (r >= 0)
		r = ply_volstore_fill_end(&fs->store, name);
	ply_lookup_release(&at);
	if (r < 0)
		return ply_err_set(err, r, "filling the volume at %s: %s",
				   spec->dest, strerror(-r));
	return 0;
}

static int open_volume(struct plyfs *fs, const struct ply_splice_spec *spec,
		       const char *mountpoint, int *ret_fd, char **ret_label,
		       struct ply_err *err)
{
	char *name = NULL;
	bool created;
	int datafd, lockfd, r;

	if (fs->store.fd < 0) {
		r = ply_volstore_open(fs->volstore_path, true, &fs->store,
				      err);
		if (r < 0)
			return r;
	}
	r = ply_volstore_create(&fs->store, spec->source, &name, &created,
				err);
	if (r < 0)
		return r;
	if (!spec->source[0])
		fprintf(stderr, "plyfs: anonymous volume %s at %s\n", name,
			spec->dest);
	r = ply_volstore_attach(&fs->store, name, mountpoint, &datafd, &lockfd,
				err);
	if (r >= 0) {
		fs->volume_locks[fs->nvolume_locks++] = lockfd;
		if (!spec->nocopy)
			r = fill_volume(fs, spec, name, datafd, err);
		if (r < 0)
			close(datafd);
	}
	if (r >= 0) {
		*ret_fd = datafd;
		*ret_label = name;
	} else {
		free(name);
	}
	return r;
}

int plyfs_setup_splices(struct plyfs *fs, const struct ply_options *opts,
			const char *mountpoint, struct ply_err *err)
{
	int r = 0;

	fs->volume_locks = calloc(opts->nsplices + 1,
				  sizeof(*fs->volume_locks));
	if (!fs->volume_locks)
		return -ENOMEM;
	fs->volstore_path = opts->volstore;
	for (size_t i = 0; i < opts->nsplices && r >= 0; i++) {
		const struct ply_splice_spec *spec = &opts->splices[i];
		char *label = NULL;
		int fd = -1;

		if (spec->kind == PLY_SPLICE_BIND)
			r = open_bind(spec, &fd, err);
		else
			r = open_volume(fs, spec, mountpoint, &fd, &label,
					err);
		if (r >= 0)
			r = ply_splice_add(&fs->stack, spec, fd,
					   label ? label : spec->source, err);
		free(label);
		if (!spec->ro)
			fs->rw_splices = true;
	}
	if (r >= 0)
		r = ply_splice_check(&fs->stack, err);
	return r;
}

void plyfs_release_splices(struct plyfs *fs)
{
	for (size_t i = 0; i < fs->nvolume_locks; i++)
		close(fs->volume_locks[i]);
	free(fs->volume_locks);
	fs->volume_locks = NULL;
	fs->nvolume_locks = 0;
	if (fs->store.fd >= 0)
		ply_volstore_close(&fs->store);
}
