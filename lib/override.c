/* override.c: ownership and mode kept in an xattr, for users who cannot
 * chown on disk (xattr_permissions=, as fuse-overlayfs and
 * containers-storage write it): "uid:gid:mode" with the mode in octal, an
 * optional ":type" after it ignored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"
#include "sys.h"

static const char *const override_names[] = {
	PLY_OVERRIDE_CONTAINERS,
	PLY_OVERRIDE_PRIVILEGED,
	"user.fuseoverlayfs.override_stat",
};

bool ply_override_name(const char *name)
{
	for (size_t i = 0; i < sizeof(override_names) / sizeof(*override_names);
	     i++)
		if (!strcmp(name, override_names[i]))
			return true;
	return false;
}

int ply_override_read(int fd, struct stat *st)
{
	for (size_t i = 0; i < sizeof(override_names) / sizeof(*override_names);
	     i++) {
		char buf[96], *end;
		unsigned long uid, gid, mode;
		ssize_t n = ply_sys_fd_getxattr(fd, override_names[i], buf,
						sizeof(buf) - 1);

		if (n < 0)
			continue;
		buf[n] = '\0';
		uid = strtoul(buf, &end, 10);
		if (*end != ':')
			return -EINVAL;
		gid = strtoul(end + 1, &end, 10);
		if (*end != ':')
			return -EINVAL;
		mode = strtoul(end + 1, &end, 8);
		if (*end && *end != ':')
			return -EINVAL;
		st->st_uid = (uid_t)uid;
		st->st_gid = (gid_t)gid;
		st->st_mode = (st->st_mode & S_IFMT) | (mode & 07777);
		return 1;
	}
	return 0;
}

int ply_override_write(int fd, const char *name, uid_t uid, gid_t gid,
		       mode_t mode)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%u:%u:%04o", (unsigned)uid,
			 (unsigned)gid, (unsigned)(mode & 07777));

	return ply_sys_fd_setxattr(fd, name, buf, (size_t)n, 0);
}
