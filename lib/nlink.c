/* nlink.c: the union link count of a hard-linked lower file whose names
 * share one upper copy through the index. The upper copy's own count
 * knows only the names copied up (and the index entry); the count the
 * union shows lives in <ns>plyfs.nlink on that copy, seen from every
 * name since an xattr belongs to the inode. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"
#include "sys.h"

static const char *const nlink_names[] = { "trusted.plyfs.nlink",
					   "user.plyfs.nlink" };

int ply_nlink_read(int fd, nlink_t *ret)
{
	for (size_t i = 0; i < 2; i++) {
		char buf[24], *end;
		unsigned long n;
		ssize_t len = ply_sys_fd_getxattr(fd, nlink_names[i], buf,
						  sizeof(buf) - 1);

		if (len <= 0)
			continue;
		buf[len] = '\0';
		n = strtoul(buf, &end, 10);
		if (*end)
			return -EINVAL;
		*ret = (nlink_t)n;
		return 0;
	}
	return -ENODATA;
}

int ply_nlink_write(const char *xattr_ns, int fd, nlink_t n)
{
	char name[32], buf[24];
	int len;

	if (!xattr_ns)
		return -EOPNOTSUPP;
	snprintf(name, sizeof(name), "%splyfs.nlink", xattr_ns);
	len = snprintf(buf, sizeof(buf), "%lu", (unsigned long)n);
	return ply_sys_fd_setxattr(fd, name, buf, (size_t)len, 0);
}

void ply_nlink_adjust(const char *xattr_ns, int fd, int delta)
{
	nlink_t n;

	if (ply_nlink_read(fd, &n) < 0)
		return;
	if (delta < 0 && n < (nlink_t)-delta)
		n = 0;
	else
		n = (nlink_t)((long)n + delta);
	ply_nlink_write(xattr_ns, fd, n);
}
