/* objio.c: what the subcommands read of a layer object through its O_PATH
 * fd (xattrs, content, symlink target), and the whiteout-format argument
 * they share. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "plyctl.h"

bool plyctl_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

static void proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

int plyctl_reopen_read(int fd)
{
	char path[64];
	int r;

	proc_path(path, sizeof(path), fd);
	r = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (r < 0 && errno == EPERM)
		r = open(path, O_RDONLY | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

int plyctl_read_link(int fd, char *buf, size_t size)
{
	ssize_t n = readlinkat(fd, "", buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int cmp_xattr(const void *a, const void *b)
{
	return strcmp(((const struct plyctl_xattr *)a)->name,
		      ((const struct plyctl_xattr *)b)->name);
}

int plyctl_xattrs_read(int fd, struct plyctl_xattr **ret, size_t *ret_n)
{
	struct plyctl_xattr *v = NULL;
	char path[64], *list = NULL;
	size_t n = 0;
	ssize_t len;
	int r = 0;

	proc_path(path, sizeof(path), fd);
	len = listxattr(path, NULL, 0);
	if (len < 0) {
		if (errno == ENOTSUP || errno == ENODATA)
			len = 0;
		else
			return -errno;
	}
	if (len > 0) {
		list = malloc((size_t)len);
		if (!list)
			return -ENOMEM;
		len = listxattr(path, list, (size_t)len);
		if (len < 0) {
			r = -errno;
			goto out;
		}
	}
	for (ssize_t pos = 0; pos < len; pos += (ssize_t)strlen(list + pos) + 1) {
		const char *name = list + pos;
		struct plyctl_xattr *grown, *x;
		ssize_t vlen;

		if (ply_xattr_is_private(name))
			continue;
		vlen = getxattr(path, name, NULL, 0);
		if (vlen < 0)
			continue; /* gone meanwhile */
		grown = realloc(v, (n + 1) * sizeof(*v));
		if (!grown) {
			r = -ENOMEM;
			goto out;
		}
		v = grown;
		x = &v[n];
		x->name = strdup(name);
		x->value = malloc(vlen ? (size_t)vlen : 1);
		if (!x->name || !x->value) {
			free(x->name);
			free(x->value);
			r = -ENOMEM;
			goto out;
		}
		vlen = getxattr(path, name, x->value, (size_t)vlen);
		if (vlen < 0) {
			free(x->name);
			free(x->value);
			continue;
		}
		x->size = (size_t)vlen;
		n++;
	}
	if (n) /* qsort wants an array, even an empty one */
		qsort(v, n, sizeof(*v), cmp_xattr);
out:
	free(list);
	if (r < 0) {
		plyctl_xattrs_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void plyctl_xattrs_free(struct plyctl_xattr *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

int plyctl_parse_whiteout(const char *value, enum ply_wh_format *ret,
			  const char **ret_ns)
{
	bool root = geteuid() == 0;

	*ret_ns = root ? "trusted." : "user.";
	if (!value)
		*ret = root ? PLY_WH_CHARDEV : PLY_WH_XATTR;
	else if (!strcmp(value, "chardev"))
		*ret = PLY_WH_CHARDEV;
	else if (!strcmp(value, "xattr"))
		*ret = PLY_WH_XATTR;
	else if (!strcmp(value, "file"))
		*ret = PLY_WH_FILE;
	else
		return -EINVAL;
	return 0;
}
