/* convert.c: rewrites a layer directory's whiteouts and opaque markers,
 * read in every format marker.c knows, into one format (plyctl convert);
 * with xattrs, plyfs's and overlayfs's other xattrs move to the chosen
 * namespace too. Directory times are kept. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

struct converter {
	struct ply_stack markers; /* wh_format and xattr_ns only */
	ply_convert_warn_fn warn;
	void *ctx;
	struct ply_convert_result res;
	struct ply_err *err;
	char path[PATH_MAX]; /* "" for the root, else "/a/b" */
};

static void warn(struct converter *c, const char *name, const char *what)
{
	char where[PATH_MAX + NAME_MAX + 2];

	snprintf(where, sizeof(where), "%s/%s", c->path, name);
	if (c->warn)
		c->warn(where, what, c->ctx);
}


/* Moves overlay.* and plyfs.* xattrs other than the markers to the
 * chosen namespace. */
static void move_namespace(struct converter *c, int fd, const char *name)
{
	static const char *const keys[] = { "overlay.redirect",
					    "overlay.metacopy",
					    "overlay.impure", "overlay.origin",
					    "overlay.nlink", "plyfs.origin" };
	static const char *const nss[] = { "trusted.", "user." };
	const char *to = c->markers.xattr_ns;
	char from_name[64], to_name[64], v[PATH_MAX];

	if (!to || c->markers.wh_format == PLY_WH_FILE)
		return;
	for (size_t k = 0; k < sizeof(keys) / sizeof(*keys); k++) {
		for (size_t i = 0; i < 2; i++) {
			ssize_t n;

			if (!strcmp(nss[i], to))
				continue;
			snprintf(from_name, sizeof(from_name), "%s%s", nss[i],
				 keys[k]);
			n = ply_sys_fd_getxattr(fd, from_name, v, sizeof(v));
			if (n < 0)
				continue;
			snprintf(to_name, sizeof(to_name), "%s%s", to, keys[k]);
			if (ply_sys_fd_setxattr(fd, to_name, v, (size_t)n, 0) <
			    0) {
				warn(c, name,
				     "an xattr could not move to the new namespace; kept as it was");
				continue;
			}
			ply_sys_fd_removexattr(fd, from_name);
		}
	}
}

static bool in_list(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static int convert_dir(struct converter *c, int dirfd, unsigned depth);

static int convert_entries(struct converter *c, int dirfd, char **names,
			   size_t n, enum ply_opaque state, char ***targets,
			   size_t *ntargets, unsigned depth)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = names[i], *target;
		struct stat st;
		int fd, r;

		if (ply_sys_fstatat(dirfd, name, &st) < 0)
			continue;
		if (!strcmp(name, PLY_WH_OPAQUE)) {
			r = ply_sys_unlinkat(dirfd, name, 0);
			if (r < 0)
				return r;
			continue;
		}
		target = ply_marker_whiteout_target(name);
		if (!target && ply_marker_name_reserved(name))
			continue; /* aufs metadata: left alone */
		if (!target && ply_marker_is_whiteout(dirfd, name, &st,
						      state) == 1)
			target = name;
		if (target) {
			char **grown;

			if (!in_list(*targets, *ntargets, target)) {
				grown = realloc(*targets, (*ntargets + 1) *
								  sizeof(*grown));
				if (!grown)
					return -ENOMEM;
				*targets = grown;
				if (!(grown[*ntargets] = strdup(target)))
					return -ENOMEM;
				(*ntargets)++;
			}
			r = ply_sys_unlinkat(dirfd, name, 0);
			if (r < 0)
				return r;
			continue;
		}
		fd = ply_sys_open_path(dirfd, name);
		if (fd < 0)
			return fd;
		move_namespace(c, fd, name);
		if (S_ISDIR(st.st_mode)) {
			size_t saved = strlen(c->path);

			if (saved + strlen(name) + 2 > sizeof(c->path)) {
				close(fd);
				return -ENAMETOOLONG;
			}
			snprintf(c->path + saved, sizeof(c->path) - saved,
				 "/%s", name);
			r = convert_dir(c, fd, depth + 1);
			if (r >= 0)
				c->path[saved] = '\0';
			if (r < 0) {
				close(fd);
				return r;
			}
		}
		close(fd);
	}
	return 0;
}

static int convert_dir(struct converter *c, int dirfd, unsigned depth)
{
	static const char *const opaque_xattrs[] = { "trusted.overlay.opaque",
						     "user.overlay.opaque" };
	enum ply_opaque state;
	char **names = NULL, **targets = NULL;
	size_t n = 0, ntargets = 0;
	struct stat dst;
	int r;

	if (depth > 4096)
		return -ELOOP;
	r = ply_sys_fstat(dirfd, &dst);
	if (r < 0)
		return r;
	r = ply_marker_dir_state(dirfd, &state);
	if (r < 0)
		return r;
	r = ply_dir_names(dirfd, &names, &n);
	if (r < 0)
		return r;
	/* take every marker out, then write them back in the one format */
	r = convert_entries(c, dirfd, names, n, state, &targets, &ntargets,
			    depth);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < 2; i++)
		ply_sys_fd_removexattr(dirfd, opaque_xattrs[i]);
	if (state == PLY_DIR_OPAQUE) {
		r = ply_marker_set_opaque(&c->markers, dirfd);
		if (r < 0)
			goto out;
		c->res.opaques++;
	}
	for (size_t i = 0; i < ntargets; i++) {
		struct stat st;

		if (ply_sys_fstatat(dirfd, targets[i], &st) == 0) {
			warn(c, targets[i],
			     "a whiteout beside the name it hides: dropped (the name stays)");
			c->res.dropped++;
			continue;
		}
		r = ply_marker_prepare_parent(&c->markers, dirfd);
		if (r >= 0)
			r = ply_marker_make_whiteout(&c->markers, dirfd,
						     targets[i]);
		if (r < 0)
			goto out;
		c->res.whiteouts++;
	}
	{
		struct timespec ts[2] = { dst.st_atim, dst.st_mtim };

		ply_sys_futimens_fd(dirfd, ts);
	}
out:
	ply_strv_free(names, n);
	ply_strv_free(targets, ntargets);
	return r < 0 ? r : 0;
}

int ply_convert_layer(int rootfd, enum ply_wh_format to, const char *xattr_ns,
		      ply_convert_warn_fn warn_fn, void *ctx,
		      struct ply_convert_result *ret, struct ply_err *err)
{
	struct converter *c;
	int r;

	if (to == PLY_WH_AUTO)
		return ply_err_set(err, -EINVAL, "no format to convert to");
	if (to == PLY_WH_XATTR && !xattr_ns)
		return ply_err_set(err, -EINVAL,
				   "xattr whiteouts need an xattr namespace");
	c = calloc(1, sizeof(*c));
	if (!c)
		return ply_err_set(err, -ENOMEM, "out of memory");
	c->markers.wh_format = to;
	c->markers.xattr_ns = xattr_ns;
	c->warn = warn_fn;
	c->ctx = ctx;
	c->err = err;
	r = convert_dir(c, rootfd, 0);
	if (r < 0)
		r = ply_err_set(err, r, "%s: %s", c->path[0] ? c->path : "/",
				strerror(-r));
	else if (ret)
		*ret = c->res;
	free(c);
	return r;
}
