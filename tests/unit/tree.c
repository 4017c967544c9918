/* tree.c: building layer trees on disk for the unit tests (see tree.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tree.h"

char *tree_mkdtemp(void)
{
	char *dir = strdup("/tmp/ply-unit-XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

void tree_remove(const char *path)
{
	if (path)
		nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tree_path(const char *base, const char *rel)
{
	/* per thread: test_concurrent calls this from several at once */
	static __thread char bufs[8][PATH_MAX];
	static __thread unsigned int next;
	char *buf = bufs[next++ % 8];

	if (!rel || !*rel)
		snprintf(buf, PATH_MAX, "%s", base);
	else
		snprintf(buf, PATH_MAX, "%s/%s", base, rel);
	return buf;
}

static void mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", buf, strerror(errno));
}

/* Creates the parents of base/rel. */
static const char *with_parents(const char *base, const char *rel)
{
	const char *path = tree_path(base, rel);
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir_p(dir);
	}
	return path;
}

void tree_mkdir(const char *base, const char *rel)
{
	mkdir_p(tree_path(base, rel));
}

void tree_write(const char *base, const char *rel, const char *content)
{
	const char *path = with_parents(base, rel);
	size_t len = strlen(content);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	if (write(fd, content, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	close(fd);
}

void tree_symlink(const char *base, const char *rel, const char *target)
{
	const char *path = with_parents(base, rel);

	if (symlink(target, path) < 0)
		fail_msg("symlink %s: %s", path, strerror(errno));
}

void tree_link(const char *base, const char *oldrel, const char *newrel)
{
	const char *oldpath = tree_path(base, oldrel);
	const char *newpath = with_parents(base, newrel);

	if (link(oldpath, newpath) < 0)
		fail_msg("link %s: %s", newpath, strerror(errno));
}

void tree_setxattr(const char *base, const char *rel, const char *name,
		   const char *value)
{
	const char *path = tree_path(base, rel);

	if (lsetxattr(path, name, value, strlen(value), 0) < 0)
		fail_msg("setxattr %s %s: %s", path, name, strerror(errno));
}

void tree_mknod(const char *base, const char *rel, mode_t mode, dev_t dev)
{
	const char *path = with_parents(base, rel);

	if (mknod(path, mode, dev) < 0)
		fail_msg("mknod %s: %s", path, strerror(errno));
}

int tree_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream's own fd */
}

int tree_stack_open(struct ply_stack *stack, const char *optstr,
		    struct ply_err *err)
{
	struct ply_options opts;
	int r;

	ply_options_init(&opts);
	r = ply_options_parse(&opts, optstr, err);
	if (r >= 0)
		r = ply_stack_open(stack, &opts, err);
	ply_options_free(&opts);
	return r;
}

int tree_lookup_path(const struct ply_stack *stack,
		     const struct ply_lookup *root, const char *path,
		     struct ply_lookup *ret)
{
	struct ply_lookup cur = { 0 }, next;
	char buf[PATH_MAX], *save = NULL, *comp;
	bool first = true;
	int r = -EINVAL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (comp = strtok_r(buf, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		const struct ply_lookup *dir = first ? root : &cur;

		r = ply_lookup_name(stack, dir->parts, dir->nparts, comp,
				    &next);
		ply_lookup_release(&cur);
		if (r < 0)
			return r;
		cur = next;
		first = false;
	}
	if (r < 0)
		return r;
	*ret = cur;
	return 0;
}

char *tree_mkstack(void)
{
	char *base = tree_mkdtemp();

	tree_mkdir(base, "u");
	tree_mkdir(base, "w");
	tree_mkdir(base, "l1");
	tree_mkdir(base, "l2");
	return base;
}

void tree_open_u_l1_l2(const char *base, struct ply_stack *stack,
		       struct ply_err *err)
{
	char opt[4 * PATH_MAX];

	snprintf(opt, sizeof(opt),
		 "lowerdir=%s/l1:%s/l2,upperdir=%s/u,workdir=%s/w", base, base,
		 base, base);
	if (tree_stack_open(stack, opt, err) < 0)
		fail_msg("stack: %s", err->msg);
}
