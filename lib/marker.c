/* marker.c: reads every whiteout and opaque format of DESIGN.md:
 * whiteouts as character device 0/0, ".wh.NAME" files (OCI, aufs), and
 * zero-size files with an overlay.whiteout xattr; opaque directories by
 * the overlay.opaque xattr or a ".wh..wh..opq" file. overlay.* xattrs are
 * read under trusted. and user. alike. */
#include <errno.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

static const char *const opaque_xattrs[] = {
	"trusted.overlay.opaque",
	"user.overlay.opaque",
};
static const char *const whiteout_xattrs[] = {
	"trusted.overlay.whiteout",
	"user.overlay.whiteout",
};

bool ply_marker_name_reserved(const char *name)
{
	return !strncmp(name, PLY_WH_PREFIX, PLY_WH_PREFIX_LEN);
}

const char *ply_marker_whiteout_target(const char *name)
{
	const char *target;

	if (!ply_marker_name_reserved(name))
		return NULL;
	target = name + PLY_WH_PREFIX_LEN;
	/* ".wh..wh.*" names are aufs and OCI metadata, not whiteouts */
	if (!*target || ply_marker_name_reserved(target) ||
	    !strcmp(target, ".") || !strcmp(target, ".."))
		return NULL;
	return target;
}

int ply_marker_dir_state(int dirfd, enum ply_opaque *ret_state)
{
	enum ply_opaque state = PLY_DIR_PLAIN;
	struct stat st;
	char v[4];

	for (size_t i = 0; i < sizeof(opaque_xattrs) / sizeof(*opaque_xattrs);
	     i++) {
		ssize_t n = ply_sys_fd_getxattr(dirfd, opaque_xattrs[i], v,
						sizeof(v));
		if (n == 1 && v[0] == 'y') {
			*ret_state = PLY_DIR_OPAQUE;
			return 0;
		}
		if (n == 1 && v[0] == 'x')
			state = PLY_DIR_XWHITEOUTS;
	}
	if (ply_sys_fstatat(dirfd, PLY_WH_OPAQUE, &st) == 0)
		state = PLY_DIR_OPAQUE;
	*ret_state = state;
	return 0;
}

static bool has_whiteout_xattr(int dirfd, const char *name)
{
	bool found = false;
	int fd = ply_sys_open_path(dirfd, name);

	if (fd < 0)
		return false;
	for (size_t i = 0;
	     !found && i < sizeof(whiteout_xattrs) / sizeof(*whiteout_xattrs);
	     i++)
		found = ply_sys_fd_getxattr(fd, whiteout_xattrs[i], NULL, 0) >=
			0;
	close(fd);
	return found;
}

int ply_marker_is_whiteout(int dirfd, const char *name, const struct stat *st,
			   enum ply_opaque dir_state)
{
	if (S_ISCHR(st->st_mode))
		return st->st_rdev == makedev(0, 0);
	/* As the kernel does, xattr whiteouts count only in a directory that
	 * announces them (overlay.opaque "x"), or in an opaque one. */
	if (S_ISREG(st->st_mode) && st->st_size == 0 &&
	    dir_state != PLY_DIR_PLAIN)
		return has_whiteout_xattr(dirfd, name);
	return 0;
}

bool ply_xattr_is_private(const char *name)
{
	static const char *const prefixes[] = {
		"trusted.overlay.",	 "user.overlay.",
		"trusted.fuseoverlayfs.", "user.fuseoverlayfs.",
		"user.containers.override_stat",
	};
	const char *dot = strchr(name, '.');

	/* plyfs's own namespace is private under every prefix */
	if (dot && !strncmp(dot + 1, "plyfs.", 6))
		return true;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}
