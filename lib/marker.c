/* marker.c: reads every whiteout and opaque format of DESIGN.md:
 * whiteouts as character device 0/0, ".wh.NAME" files (OCI, aufs), and
 * zero-size files with an overlay.whiteout xattr; opaque directories by
 * the overlay.opaque xattr or a ".wh..wh..opq" file. overlay.* xattrs are
 * read under trusted. and user. alike. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
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

unsigned ply_marker_marks_parse(const char *list, size_t size)
{
	static const struct {
		const char *suffix;
		unsigned mark;
	} known[] = {
		{ "overlay.opaque", PLY_MARK_OPAQUE },
		{ "overlay.redirect", PLY_MARK_REDIRECT },
		{ "overlay.impure", PLY_MARK_IMPURE },
		{ "overlay.metacopy", PLY_MARK_METACOPY },
		{ "plyfs.origin", PLY_MARK_ORIGIN },
	};
	unsigned marks = 0;

	/* NUL-separated names; the last one is read within size even
	 * without its NUL (the kernel always ends it with one) */
	for (size_t pos = 0, len; pos < size; pos += len + 1) {
		const char *name = list + pos, *key;
		size_t klen;

		len = strnlen(name, size - pos);
		if (len > 8 && !strncmp(name, "trusted.", 8))
			key = name + 8;
		else if (len > 5 && !strncmp(name, "user.", 5))
			key = name + 5;
		else
			continue;
		klen = len - (size_t)(key - name);
		for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
			if (klen == strlen(known[i].suffix) &&
			    !memcmp(key, known[i].suffix, klen))
				marks |= known[i].mark;
	}
	return marks;
}

unsigned ply_marker_present(int fd)
{
	char list[4096];
	ssize_t n = ply_sys_fd_listxattr(fd, list, sizeof(list));

	if (n == -ERANGE)
		return ~0u; /* too many to list here: look at each */
	return n > 0 ? ply_marker_marks_parse(list, (size_t)n) : 0;
}

int ply_marker_dir_state(int dirfd, enum ply_opaque *ret_state)
{
	return ply_marker_dir_state_marks(dirfd, ply_marker_present(dirfd),
					  ret_state);
}

enum ply_opaque ply_marker_opaque_parse(const void *value, size_t size)
{
	const char *v = value;

	if (size == 1 && v[0] == 'y')
		return PLY_DIR_OPAQUE;
	if (size == 1 && v[0] == 'x')
		return PLY_DIR_XWHITEOUTS;
	return PLY_DIR_PLAIN;
}

int ply_marker_dir_state_marks(int dirfd, unsigned marks,
			       enum ply_opaque *ret_state)
{
	enum ply_opaque state = PLY_DIR_PLAIN;
	struct stat st;
	char v[4];

	for (size_t i = 0; (marks & PLY_MARK_OPAQUE) &&
			   i < sizeof(opaque_xattrs) / sizeof(*opaque_xattrs);
	     i++) {
		ssize_t n = ply_sys_fd_getxattr(dirfd, opaque_xattrs[i], v,
						sizeof(v));
		enum ply_opaque got =
			n > 0 ? ply_marker_opaque_parse(v, (size_t)n) :
				PLY_DIR_PLAIN;

		if (got == PLY_DIR_OPAQUE) {
			*ret_state = PLY_DIR_OPAQUE;
			return 0;
		}
		if (got == PLY_DIR_XWHITEOUTS)
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
		"security.fuseoverlayfs.",
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

static bool read_overlay_flag(int fd, const char *flag, char want)
{
	static const char *const namespaces[] = { "trusted.", "user." };
	char name[64], v[4];

	for (size_t i = 0; i < 2; i++) {
		ssize_t n;

		snprintf(name, sizeof(name), "%soverlay.%s", namespaces[i],
			 flag);
		n = ply_sys_fd_getxattr(fd, name, v, sizeof(v));
		if (n == 1 && v[0] == want)
			return true;
	}
	return false;
}

int ply_marker_redirect_parse(const void *value, size_t size, char *buf,
			      size_t bufsize)
{
	if (!size || size >= bufsize)
		return -EINVAL;
	memmove(buf, value, size); /* value may be buf itself */
	buf[size] = '\0';
	if (strlen(buf) != size)
		return -EINVAL; /* a NUL inside: not one name */
	/* a name, or a path from the layer root: nothing else */
	if (buf[0] != '/' && strchr(buf, '/'))
		return -EINVAL;
	/* and no component that stays or climbs: "/.." led a lookup to the
	 * directory above a lower layer's root, "." to the parent itself
	 * (the kernel's lookup refuses both as well); nor one longer than
	 * NAME_MAX, which no layer can hold: its lookup failed with
	 * ENAMETOOLONG and took the redirected directory out of the mount */
	for (const char *p = buf; *p;) {
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.') || n > NAME_MAX)
			return -EINVAL;
		p += n;
	}
	return 0;
}

int ply_marker_dir_redirect(int fd, char *buf, size_t size)
{
	static const char *const names[] = { "trusted.overlay.redirect",
					      "user.overlay.redirect" };

	for (size_t i = 0; i < 2; i++) {
		ssize_t n = ply_sys_fd_getxattr(fd, names[i], buf, size - 1);

		if (n > 0)
			return ply_marker_redirect_parse(buf, (size_t)n, buf,
							 size);
	}
	buf[0] = '\0';
	return -ENODATA;
}

bool ply_marker_dir_impure(int fd)
{
	return read_overlay_flag(fd, "impure", 'y');
}

static int set_overlay_xattr(const struct ply_stack *stack, int fd,
			     const char *flag, const char *value)
{
	char name[64];

	if (!stack->xattr_ns)
		return -EOPNOTSUPP;
	snprintf(name, sizeof(name), "%soverlay.%s", stack->xattr_ns, flag);
	return ply_sys_fd_setxattr(fd, name, value, strlen(value), 0);
}

int ply_marker_make_whiteout(const struct ply_stack *stack, int dirfd,
			     const char *name)
{
	char wh[PLY_WH_PREFIX_LEN + NAME_MAX + 1];
	int fd, r;

	switch (stack->wh_format) {
	case PLY_WH_CHARDEV:
	case PLY_WH_AUTO:
		return ply_sys_mknodat(dirfd, name, S_IFCHR | 0, makedev(0, 0));
	case PLY_WH_XATTR:
		fd = ply_sys_openat(dirfd, name,
				    O_CREAT | O_EXCL | O_WRONLY, 0);
		if (fd < 0)
			return fd;
		close(fd);
		fd = ply_sys_open_path(dirfd, name);
		r = fd < 0 ? fd :
			     set_overlay_xattr(stack, fd, "whiteout", "y");
		if (fd >= 0)
			close(fd);
		if (r < 0)
			ply_sys_unlinkat(dirfd, name, 0);
		return r;
	case PLY_WH_FILE:
		if (strlen(name) + PLY_WH_PREFIX_LEN > NAME_MAX)
			return -ENAMETOOLONG;
		snprintf(wh, sizeof(wh), "%s%s", PLY_WH_PREFIX, name);
		/* never through a symlink planted under that name */
		fd = ply_sys_openat(dirfd, wh,
				    O_CREAT | O_WRONLY | O_NOFOLLOW, 0);
		if (fd < 0)
			return fd;
		close(fd);
		return 0;
	}
	return -EINVAL;
}

int ply_marker_prepare_parent(const struct ply_stack *stack, int fd)
{
	if (stack->wh_format != PLY_WH_XATTR)
		return 0;
	if (read_overlay_flag(fd, "opaque", 'y') ||
	    read_overlay_flag(fd, "opaque", 'x'))
		return 0;
	return set_overlay_xattr(stack, fd, "opaque", "x");
}

int ply_marker_set_opaque(const struct ply_stack *stack, int fd)
{
	int mark;

	if (stack->xattr_ns && stack->wh_format != PLY_WH_FILE)
		return set_overlay_xattr(stack, fd, "opaque", "y");
	mark = ply_sys_openat(fd, PLY_WH_OPAQUE,
			      O_CREAT | O_WRONLY | O_NOFOLLOW, 0);
	if (mark < 0)
		return mark;
	close(mark);
	return 0;
}

int ply_marker_set_redirect(const struct ply_stack *stack, int fd,
			    const char *path)
{
	return set_overlay_xattr(stack, fd, "redirect", path);
}

int ply_marker_set_impure(const struct ply_stack *stack, int fd)
{
	if (!stack->xattr_ns || ply_marker_dir_impure(fd))
		return 0;
	return set_overlay_xattr(stack, fd, "impure", "y");
}
