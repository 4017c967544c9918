/* stack.c: opens the layers named by the options, once, and checks that
 * they form a stack plyfs can serve. Every later access to a layer starts
 * from the fd opened here. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

static int open_layer(struct ply_layer *layer, const char *what,
		      const char *path, bool check_read, struct ply_err *err)
{
	struct stat st;
	char *abs;
	int fd, r;

	/* The layer path itself is the user's to choose and may be a
	 * symlink (runtimes pass l/<id> links); only what lies inside a
	 * layer is never followed. */
	fd = ply_sys_openat(AT_FDCWD, path, O_PATH | O_DIRECTORY, 0);
	if (fd == -ENOTDIR)
		return ply_err_set(err, -ENOTDIR, "%s %s is not a directory",
				   what, path);
	if (fd == -ENOTCONN)
		return ply_err_set(err, fd,
				   "%s %s: transport endpoint is not connected (a crashed FUSE mount? run fusermount3 -u on it)",
				   what, path);
	if (fd < 0)
		return ply_err_set(err, fd, "%s %s: %s", what, path,
				   strerror(-fd));
	r = ply_sys_fstat(fd, &st);
	if (r < 0) {
		close(fd);
		return ply_err_set(err, r, "%s %s: %s", what, path,
				   strerror(-r));
	}
	/* a layer must be listed and searched: say so now, naming it,
	 * rather than fail on the first lookup (root passes anyway) */
	if (check_read) {
		int dfd = ply_sys_openat(fd, ".", O_RDONLY | O_DIRECTORY, 0);

		if (dfd < 0) {
			close(fd);
			return ply_err_set(err, dfd, "%s %s: cannot read it: %s",
					   what, path, strerror(-dfd));
		}
		close(dfd);
	}
	abs = realpath(path, NULL);
	if (!abs) {
		r = -errno;
		close(fd);
		return ply_err_set(err, r, "%s %s: %s", what, path,
				   strerror(-r));
	}
	layer->path = abs;
	layer->fd = fd;
	layer->dev = st.st_dev;
	layer->ino = st.st_ino;
	/* as fuse-overlayfs: a layer whose root carries an override xattr
	 * keeps ownership that way */
	layer->override = ply_override_read(fd, &st) != 0;
	return 0;
}

/* Is the directory fd, or one of its ancestors, the directory (dev, ino)?
 * 1 yes, 0 no. Walks ".." up to the root, across mount points. */
static int within(int fd, dev_t dev, ino_t ino)
{
	int cur = dup(fd);
	int r = 0;

	if (cur < 0)
		return -errno;
	for (int depth = 0; depth < 4096; depth++) {
		struct stat st, up_st;
		int up;

		r = ply_sys_fstat(cur, &st);
		if (r < 0)
			break;
		if (st.st_dev == dev && st.st_ino == ino) {
			r = 1;
			break;
		}
		up = ply_sys_openat(cur, "..", O_PATH | O_DIRECTORY, 0);
		if (up < 0) {
			r = up;
			break;
		}
		r = ply_sys_fstat(up, &up_st);
		close(cur);
		cur = up;
		if (r < 0)
			break;
		if (up_st.st_dev == st.st_dev && up_st.st_ino == st.st_ino) {
			r = 0; /* reached the root */
			break;
		}
	}
	close(cur);
	return r;
}

static int check_distinct(const struct ply_stack *stack, struct ply_err *err)
{
	for (size_t i = 0; i < stack->nlayers; i++)
		for (size_t j = 0; j < i; j++) {
			const struct ply_layer *a = &stack->layers[j];
			const struct ply_layer *b = &stack->layers[i];

			if (a->dev != b->dev || a->ino != b->ino)
				continue;
			if (a->is_upper)
				return ply_err_set(err, -EINVAL,
						   "upperdir %s is also a lowerdir",
						   a->path);
			return ply_err_set(err, -EINVAL,
					   "layer %s is given twice", b->path);
		}
	return 0;
}

static int open_workdir(struct ply_stack *stack, const char *path,
			struct ply_err *err)
{
	struct ply_layer work = { 0 };
	const struct ply_layer *upper = &stack->layers[0];
	int r = open_layer(&work, "workdir", path, true, err);

	if (r < 0)
		return r;
	stack->workfd = work.fd;
	stack->workdir = work.path;
	for (size_t i = 0; i < stack->nlayers; i++)
		if (stack->layers[i].dev == work.dev &&
		    stack->layers[i].ino == work.ino)
			return ply_err_set(err, -EINVAL,
					   stack->layers[i].is_upper ?
						   "workdir %s is the upperdir" :
						   "workdir %s is also a lowerdir",
					   work.path);
	if (work.dev != upper->dev)
		return ply_err_set(err, -EXDEV,
				   "workdir %s and upperdir %s must be on the same filesystem",
				   work.path, upper->path);
	if (within(work.fd, upper->dev, upper->ino) > 0 ||
	    within(upper->fd, work.dev, work.ino) > 0)
		return ply_err_set(err, -EINVAL,
				   "workdir %s and upperdir %s must not be inside each other",
				   work.path, upper->path);
	return 0;
}

int ply_stack_open(struct ply_stack *stack, const struct ply_options *opts,
		   struct ply_err *err)
{
	size_t n = opts->nlower + (opts->upperdir ? 1 : 0);
	uint16_t next_id = 1;
	int r;

	memset(stack, 0, sizeof(*stack));
	stack->workfd = -1;
	stack->indexfd = -1;
	r = ply_options_validate(opts, err);
	if (r < 0)
		return r;
	stack->layers = calloc(n, sizeof(*stack->layers));
	if (!stack->layers)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		stack->layers[i].fd = -1;
	if (opts->upperdir) {
		r = open_layer(&stack->layers[0], "upperdir", opts->upperdir,
			       true, err);
		if (r < 0)
			goto fail;
		stack->layers[0].id = PLY_LAYER_ID_UPPER;
		stack->layers[0].is_upper = true;
		stack->has_upper = true;
		stack->nlayers = 1;
	}
	for (size_t i = 0; i < opts->nlower; i++) {
		struct ply_layer *layer = &stack->layers[stack->nlayers];

		r = open_layer(layer, "lowerdir", opts->lowerdirs[i], true,
			       err);
		if (r < 0)
			goto fail;
		layer->id = next_id++;
		stack->nlayers++;
	}
	stack->nunion = stack->nlayers;
	r = check_distinct(stack, err);
	if (r < 0)
		goto fail;
	if (opts->xattr_permissions && stack->has_upper) {
		stack->override_xattr = opts->xattr_permissions == 1 ?
						PLY_OVERRIDE_PRIVILEGED :
						PLY_OVERRIDE_CONTAINERS;
		stack->layers[0].override = true;
	}
	if (opts->workdir) {
		r = open_workdir(stack, opts->workdir, err);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	ply_stack_close(stack);
	return r;
}

int ply_stack_check_mountpoint(const struct ply_stack *stack, const char *mnt,
			       struct ply_err *err)
{
	struct ply_layer m = { 0 };
	int r = open_layer(&m, "mountpoint", mnt, false, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < stack->nlayers && r >= 0; i++) {
		const struct ply_layer *l = &stack->layers[i];

		if (within(m.fd, l->dev, l->ino) > 0)
			r = ply_err_set(err, -EINVAL,
					"mountpoint %s lies inside layer %s",
					m.path, l->path);
		else if (within(l->fd, m.dev, m.ino) > 0)
			r = ply_err_set(err, -EINVAL,
					"layer %s lies inside mountpoint %s",
					l->path, m.path);
	}
	if (r >= 0 && stack->workfd >= 0 &&
	    within(stack->workfd, m.dev, m.ino) > 0)
		r = ply_err_set(err, -EINVAL,
				"workdir %s lies inside mountpoint %s",
				stack->workdir, m.path);
	close(m.fd);
	free(m.path);
	return r < 0 ? r : 0;
}

void ply_stack_close(struct ply_stack *stack)
{
	for (size_t i = 0; i < stack->nlayers; i++) {
		ply_sys_close(stack->layers[i].fd);
		free(stack->layers[i].path);
	}
	free(stack->layers);
	ply_sys_close(stack->workfd);
	ply_sys_close(stack->indexfd);
	ply_splice_free(stack->splices);
	free(stack->workdir);
	memset(stack, 0, sizeof(*stack));
	stack->workfd = -1;
	stack->indexfd = -1;
}

/* Tries to set an xattr in namespace ns on a scratch file in workfd. */
static bool can_set_xattr(int workfd, const char *scratch, const char *ns)
{
	char name[64];
	int fd = ply_sys_open_path(workfd, scratch);
	bool ok;

	if (fd < 0)
		return false;
	snprintf(name, sizeof(name), "%splyfs.probe", ns);
	ok = ply_sys_fd_setxattr(fd, name, "1", 1, 0) == 0;
	close(fd);
	return ok;
}

int ply_stack_probe_upper(struct ply_stack *stack, int workfd,
			  enum ply_wh_format forced, struct ply_err *err)
{
	const char *scratch = "#plyfs-probe";
	const char *upper = stack->layers[0].path;
	bool chardev;
	int fd;

	ply_sys_unlinkat(workfd, scratch, 0);
	fd = ply_sys_openat(workfd, scratch, O_CREAT | O_EXCL | O_WRONLY, 0600);
	if (fd < 0)
		return ply_err_set(err, fd, "workdir %s is not writable: %s",
				   stack->workdir, strerror(-fd));
	close(fd);
	stack->xattr_ns = can_set_xattr(workfd, scratch, "trusted.") ?
				  "trusted." :
			  can_set_xattr(workfd, scratch, "user.") ? "user." :
								    NULL;
	ply_sys_unlinkat(workfd, scratch, 0);
	chardev = ply_sys_mknodat(workfd, scratch, S_IFCHR | 0600,
				  makedev(0, 0)) == 0;
	ply_sys_unlinkat(workfd, scratch, 0);

	switch (forced) {
	case PLY_WH_AUTO:
		stack->wh_format = chardev	   ? PLY_WH_CHARDEV :
				   stack->xattr_ns ? PLY_WH_XATTR :
						     PLY_WH_FILE;
		return 0;
	case PLY_WH_CHARDEV:
		if (!chardev)
			return ply_err_set(err, -EPERM,
					   "whiteout=chardev: cannot create character devices in %s",
					   upper);
		break;
	case PLY_WH_XATTR:
		if (!stack->xattr_ns)
			return ply_err_set(err, -EOPNOTSUPP,
					   "whiteout=xattr: the filesystem of %s has no xattrs",
					   upper);
		break;
	case PLY_WH_FILE:
		break;
	}
	stack->wh_format = forced;
	return 0;
}
