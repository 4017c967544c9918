/* ops-xattr.c: extended attributes of the topmost part of an object,
 * with the private ones (overlayfs's, plyfs's) invisible. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plyfs.h"
#include "sys.h"

void plyfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size)
{
	struct plyfs *fs = plyfs_of(req);
	struct ply_inode *inode = plyfs_inode(fs, ino);
	char *buf = NULL;
	ssize_t n;

	if (ply_xattr_is_private(name) && !plyfs_in_splice(fs, inode)) {
		fuse_reply_err(req, EOPNOTSUPP); /* as overlayfs answers */
		return;
	}
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = ply_inode_getxattr(&fs->table, inode, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Reads the whole name list of fd into a new buffer. */
static ssize_t list_all(int fd, char **ret)
{
	for (int tries = 0; tries < 8; tries++) {
		ssize_t size = ply_sys_fd_listxattr(fd, NULL, 0), n;
		char *buf;

		if (size <= 0) {
			*ret = NULL;
			return size;
		}
		buf = malloc((size_t)size);
		if (!buf)
			return -ENOMEM;
		n = ply_sys_fd_listxattr(fd, buf, (size_t)size);
		if (n >= 0) {
			*ret = buf;
			return n;
		}
		free(buf);
		if (n != -ERANGE)
			return n;
	}
	return -EAGAIN;
}

/* Removes private names in place; returns the new length. */
static size_t drop_private(char *list, size_t len, bool plain)
{
	size_t out = 0;

	for (size_t pos = 0; pos < len;) {
		size_t nlen = strlen(list + pos) + 1;

		if (plain || !ply_xattr_is_private(list + pos)) {
			memmove(list + out, list + pos, nlen);
			out += nlen;
		}
		pos += nlen;
	}
	return out;
}

void plyfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct plyfs *fs = plyfs_of(req);
	struct ply_inode *inode = plyfs_inode(fs, ino);
	char *list = NULL;
	ssize_t n;
	size_t len;

	n = plyfs_use(fs, inode);
	if (n >= 0) {
		n = inode->nparts ? list_all(inode->parts[0].fd, &list) : 0;
		plyfs_done(fs, inode);
	}
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	len = drop_private(list, (size_t)n, plyfs_in_splice(fs, inode));
	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
	free(list);
}
