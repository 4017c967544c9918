/* check.c: what is wrong in a stack's upper and work directories (plyctl
 * check): temporaries a crash left, whiteouts hiding nothing, redirects to
 * nowhere, hard-link index entries no lower file or upper name needs,
 * markers in a format the mount would not write, malformed private
 * xattrs; and the repair of what is safe to remove without changing the
 * merged view. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

#define LOCK_FILE ".plyfs.lock" /* workdir.c's */

struct checker {
	const struct ply_stack *stack;
	bool repair;
	ply_check_fn fn;
	void *ctx;
	struct ply_check_result res;
	char path[PATH_MAX]; /* in the upper: "" for its root, else "/a/b" */
	/* st_ino of every hard-linked lower file, sorted: read once, when
	 * the index has entries */
	uint64_t *linked;
	size_t nlinked;
	bool linked_read;
};

const char *ply_problem_name(enum ply_problem_kind kind)
{
	switch (kind) {
	case PLY_PROBLEM_TEMPORARY:
		return "temporary";
	case PLY_PROBLEM_WHITEOUT_NOTHING:
		return "whiteout-over-nothing";
	case PLY_PROBLEM_REDIRECT_NOWHERE:
		return "redirect-nowhere";
	case PLY_PROBLEM_INDEX_ORPHAN:
		return "index-orphan";
	case PLY_PROBLEM_INDEX_UNLINKED:
		return "index-unlinked";
	case PLY_PROBLEM_FOREIGN_MARKER:
		return "foreign-marker";
	case PLY_PROBLEM_BAD_XATTR:
		return "bad-xattr";
	}
	return "?";
}

/* Reports one problem; repairs it with the given action (dirfd/name
 * removed) when asked and the problem is safe to repair. */
static void report(struct checker *c, enum ply_problem_kind kind,
		   const char *where, int dirfd, const char *name,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void report(struct checker *c, enum ply_problem_kind kind,
		   const char *where, int dirfd, const char *name,
		   const char *fmt, ...)
{
	struct ply_problem p = { .kind = kind, .where = where };
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	p.what = what;
	p.repairable = dirfd >= 0 && name;
	c->res.found++;
	if (c->repair && p.repairable) {
		p.repaired = ply_remove_tree(dirfd, name);
		if (p.repaired == -ENOENT)
			p.repaired = 0;
		if (p.repaired >= 0) {
			p.repaired = 1;
			c->res.repaired++;
		}
	}
	if (c->fn)
		c->fn(&p, c->ctx);
}


/* ---- the upper layer ---------------------------------------------------- */

static const char *upper_where(struct checker *c, const char *name,
			       char *buf, size_t size)
{
	snprintf(buf, size, "%s%s/%s", c->stack->layers[0].path, c->path,
		 name);
	return buf;
}

/* Is name visible in the lower layers' view of a directory (parts)? */
static bool lower_has(const struct ply_stack *stack,
		      const struct ply_part *parts, size_t nparts,
		      const char *name, bool want_dir)
{
	struct ply_lookup lk;
	bool found;

	if (!nparts || ply_lookup_name(stack, parts, nparts, name, &lk) < 0)
		return false;
	found = !want_dir || S_ISDIR(lk.st.st_mode);
	ply_lookup_release(&lk);
	return found;
}

/* The parts of a merged directory that are not the upper's. */
static size_t lower_parts(const struct ply_stack *stack,
			  const struct ply_lookup *dir,
			  const struct ply_part **ret)
{
	size_t skip = dir->nparts && stack->layers[dir->parts[0].layer].is_upper;

	*ret = dir->parts + skip;
	return dir->nparts - skip;
}

/* Follows an absolute redirect ("/a/b") from the lower layers' roots. */
static bool redirect_resolves(const struct ply_stack *stack,
			      const struct ply_lookup *parent,
			      const char *target)
{
	struct ply_lookup cur, next;
	const struct ply_part *parts;
	char comp[NAME_MAX + 1];
	const char *p = target;
	size_t n;
	bool ok = true;

	if (target[0] != '/') {
		n = lower_parts(stack, parent, &parts);
		return lower_has(stack, parts, n, target, true);
	}
	if (ply_lookup_root(stack, &cur) < 0)
		return false;
	while (ok && *p) {
		const char *slash;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > NAME_MAX) {
			ok = false;
			break;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		p += len;
		n = lower_parts(stack, &cur, &parts);
		if (!n || ply_lookup_name(stack, parts, n, comp, &next) < 0) {
			ok = false;
			break;
		}
		ply_lookup_release(&cur);
		cur = next;
		if (!S_ISDIR(cur.st.st_mode))
			ok = false;
	}
	ply_lookup_release(&cur);
	return ok;
}

static bool ns_matches(const struct ply_stack *stack, const char *xname)
{
	return !stack->xattr_ns ||
	       !strncmp(xname, stack->xattr_ns, strlen(stack->xattr_ns));
}

/* The overlay.*, plyfs.* and override xattrs of one upper object. */
static void check_xattrs(struct checker *c, int fd, const struct stat *st,
			 const char *where)
{
	char list[8192], v[PATH_MAX + 1];
	ssize_t len = ply_sys_fd_listxattr(fd, list, sizeof(list));

	for (ssize_t pos = 0; pos < len; pos += (ssize_t)strlen(list + pos) + 1) {
		const char *xname = list + pos, *dot = strchr(xname, '.');
		const char *key;
		ssize_t n;

		if (ply_override_name(xname)) {
			struct stat o = *st;

			if (ply_override_read(fd, &o) == -EINVAL)
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s is not UID:GID:MODE", xname);
			continue;
		}
		if (!dot || (strncmp(xname, "trusted.", 8) &&
			     strncmp(xname, "user.", 5)))
			continue;
		key = dot + 1;
		if (strncmp(key, "overlay.", 8) && strncmp(key, "plyfs.", 6))
			continue;
		n = ply_sys_fd_getxattr(fd, xname, v, sizeof(v) - 1);
		if (n < 0)
			continue;
		v[n] = '\0';
		if (!ns_matches(c->stack, xname) &&
		    (!strcmp(key, "overlay.opaque") ||
		     !strcmp(key, "overlay.whiteout") ||
		     !strcmp(key, "overlay.redirect")))
			report(c, PLY_PROBLEM_FOREIGN_MARKER, where, -1, NULL,
			       "%s: this stack's markers are %soverlay.* (plyctl convert --ns fixes it)",
			       xname, c->stack->xattr_ns);
		if (!strcmp(key, "overlay.opaque")) {
			if (!S_ISDIR(st->st_mode) ||
			    n != 1 || (v[0] != 'y' && v[0] != 'x'))
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s = '%s' (want y or x on a directory)",
				       xname, v);
		} else if (!strcmp(key, "overlay.whiteout")) {
			if (!S_ISREG(st->st_mode) || st->st_size)
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s on an object that is not an empty file",
				       xname);
		} else if (!strcmp(key, "overlay.impure")) {
			if (n != 1 || v[0] != 'y')
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s = '%s' (want y)", xname, v);
		} else if (!strcmp(key, "overlay.redirect")) {
			if (!n || (v[0] != '/' && strchr(v, '/')) ||
			    strstr(v, "/../") || !strcmp(v, "..") ||
			    !strncmp(v, "../", 3) ||
			    (strlen(v) >= 3 && !strcmp(v + strlen(v) - 3, "/..")))
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s = '%s' is neither a name nor a path from the layer root",
				       xname, v);
		} else if (!strcmp(key, "overlay.metacopy")) {
			/* empty, or the kernel's fs-verity record:
			 * version 0, its own length, flags, algorithm */
			if (!S_ISREG(st->st_mode) ||
			    (n && (n < 4 || v[0] != 0 || v[1] != n)))
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s: malformed (%zd bytes)", xname, n);
		} else if (!strcmp(key, "overlay.origin")) {
			/* empty ("no origin"), or the kernel's file handle:
			 * version 0, magic 0xfb, its own length */
			if (n && (n < 21 || v[0] != 0 ||
				  (unsigned char)v[1] != 0xfb ||
				  (unsigned char)v[2] != n))
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s: not a file handle the kernel writes (%zd bytes)",
				       xname, n);
		} else if (!strcmp(key, "plyfs.origin")) {
			if (n != 8)
				report(c, PLY_PROBLEM_BAD_XATTR, where, -1, NULL,
				       "%s: %zd bytes (want 8)", xname, n);
		}
	}
}

static int check_dir(struct checker *c, const struct ply_lookup *dir);

static void check_entry(struct checker *c, const struct ply_lookup *dir,
			int dirfd, enum ply_opaque state, const char *name)
{
	const struct ply_stack *stack = c->stack;
	const struct ply_part *lower;
	size_t nlower = lower_parts(stack, dir, &lower);
	char where[PATH_MAX + 64], rd[PATH_MAX];
	const char *target;
	struct stat st;
	int fd, r;

	if (ply_sys_fstatat(dirfd, name, &st) < 0)
		return;
	upper_where(c, name, where, sizeof(where));
	if (!strcmp(name, PLY_WH_OPAQUE)) {
		if (stack->wh_format != PLY_WH_FILE && stack->xattr_ns)
			report(c, PLY_PROBLEM_FOREIGN_MARKER, where, -1, NULL,
			       "an opaque marker file; this stack marks opaque directories with %soverlay.opaque",
			       stack->xattr_ns);
		return;
	}
	if (ply_marker_name_reserved(name)) {
		target = ply_marker_whiteout_target(name);
		if (!target)
			return; /* aufs metadata (".wh..wh.*") */
		if (stack->wh_format != PLY_WH_FILE)
			report(c, PLY_PROBLEM_FOREIGN_MARKER, where, -1, NULL,
			       "a .wh. whiteout file; this stack writes %s whiteouts",
			       stack->wh_format == PLY_WH_XATTR ? "xattr" :
								  "character device");
		if (!lower_has(stack, lower, nlower, target, false))
			report(c, PLY_PROBLEM_WHITEOUT_NOTHING, where, dirfd,
			       name, "whiteout of '%s', which no lower layer has",
			       target);
		return;
	}
	r = ply_marker_is_whiteout(dirfd, name, &st, state);
	if (r == 1) {
		bool chr = S_ISCHR(st.st_mode);

		if ((chr && stack->wh_format != PLY_WH_CHARDEV) ||
		    (!chr && stack->wh_format != PLY_WH_XATTR))
			report(c, PLY_PROBLEM_FOREIGN_MARKER, where, -1, NULL,
			       "a%s whiteout; this stack writes %s whiteouts",
			       chr ? " character device" : "n xattr",
			       stack->wh_format == PLY_WH_FILE ? ".wh. file" :
			       stack->wh_format == PLY_WH_XATTR ?
								 "xattr" :
								 "character device");
		if (!lower_has(stack, lower, nlower, name, false))
			report(c, PLY_PROBLEM_WHITEOUT_NOTHING, where, dirfd,
			       name, "whiteout of '%s', which no lower layer has",
			       name);
		if (!chr) {
			fd = ply_sys_open_path(dirfd, name);
			if (fd >= 0) {
				check_xattrs(c, fd, &st, where);
				close(fd);
			}
		}
		return;
	}
	fd = ply_sys_open_path(dirfd, name);
	if (fd < 0)
		return;
	check_xattrs(c, fd, &st, where);
	if (S_ISDIR(st.st_mode)) {
		struct ply_lookup lk;
		size_t saved = strlen(c->path);

		r = ply_marker_dir_redirect(fd, rd, sizeof(rd));
		if (r == 0 && !redirect_resolves(stack, dir, rd))
			report(c, PLY_PROBLEM_REDIRECT_NOWHERE, where, -1, NULL,
			       "overlay.redirect '%s': no lower layer has that directory",
			       rd);
		if (saved + strlen(name) + 2 <= sizeof(c->path) &&
		    ply_lookup_name(stack, dir->parts, dir->nparts, name,
				    &lk) == 0) {
			snprintf(c->path + saved, sizeof(c->path) - saved,
				 "/%s", name);
			if (lk.nparts && stack->layers[lk.parts[0].layer].is_upper)
				check_dir(c, &lk);
			c->path[saved] = '\0';
			ply_lookup_release(&lk);
		}
	}
	close(fd);
}

static int check_dir(struct checker *c, const struct ply_lookup *dir)
{
	int dirfd = dir->parts[0].fd;
	enum ply_opaque state;
	char **names;
	size_t n;
	int r;

	r = ply_dir_names(dirfd, &names, &n);
	if (r < 0)
		return r;
	ply_marker_dir_state(dirfd, &state);
	for (size_t i = 0; i < n; i++)
		check_entry(c, dir, dirfd, state, names[i]);
	ply_strv_free(names, n);
	return 0;
}

/* ---- the work directory ------------------------------------------------- */

static void check_temporaries(struct checker *c)
{
	char where[PATH_MAX + 64];
	char **names;
	size_t n;
	int fd = ply_sys_openat(c->stack->workfd, PLY_WORK_SUBDIR,
				O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);

	if (fd < 0)
		return;
	if (ply_dir_names(fd, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (strncmp(names[i], PLY_TEMP_PREFIX,
				    strlen(PLY_TEMP_PREFIX)))
				continue;
			snprintf(where, sizeof(where), "%s/%s/%s",
				 c->stack->workdir, PLY_WORK_SUBDIR, names[i]);
			report(c, PLY_PROBLEM_TEMPORARY, where, fd, names[i],
			       "a temporary left by an interrupted copy-up or removal");
		}
		ply_strv_free(names, n);
	}
	close(fd);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Collects the st_ino of every hard-linked regular file of one layer. */
static void collect_linked(struct checker *c, const struct ply_layer *layer,
			   int dirfd, unsigned depth)
{
	char **names;
	size_t n;

	if (depth > 4096 || ply_dir_names(dirfd, &names, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int fd;

		if (ply_sys_fstatat(dirfd, names[i], &st) < 0)
			continue;
		if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
			uint64_t *grown = realloc(c->linked, (c->nlinked + 1) *
							     sizeof(*grown));

			if (grown) {
				c->linked = grown;
				c->linked[c->nlinked++] =
					ply_ino_compose(layer, st.st_dev,
							st.st_ino);
			}
		} else if (S_ISDIR(st.st_mode)) {
			fd = ply_sys_open_path(dirfd, names[i]);
			if (fd >= 0) {
				collect_linked(c, layer, fd, depth + 1);
				close(fd);
			}
		}
	}
	ply_strv_free(names, n);
}

static bool lower_file_has_ino(struct checker *c, uint64_t ino)
{
	if (!c->linked_read) {
		for (size_t i = 0; i < c->stack->nunion; i++) {
			const struct ply_layer *l = &c->stack->layers[i];

			if (!l->is_upper && !l->is_splice)
				collect_linked(c, l, l->fd, 0);
		}
		if (c->nlinked) /* qsort wants an array, even an empty one */
			qsort(c->linked, c->nlinked, sizeof(*c->linked), cmp_u64);
		c->linked_read = true;
	}
	return bsearch(&ino, c->linked, c->nlinked, sizeof(ino), cmp_u64);
}

static void check_index(struct checker *c)
{
	char where[PATH_MAX + 64], *end;
	char **names;
	size_t n;
	int fd = ply_sys_openat(c->stack->workfd, PLY_LINKS_SUBDIR,
				O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);

	if (fd < 0)
		return;
	if (ply_dir_names(fd, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			uint64_t ino;
			struct stat st;

			snprintf(where, sizeof(where), "%s/%s/%s",
				 c->stack->workdir, PLY_LINKS_SUBDIR, names[i]);
			if (ply_sys_fstatat(fd, names[i], &st) < 0)
				continue;
			errno = 0;
			ino = strtoull(names[i], &end, 16);
			if (strlen(names[i]) != 16 || *end || errno) {
				report(c, PLY_PROBLEM_INDEX_ORPHAN, where, fd,
				       names[i],
				       "not an index entry (its name is not 16 hex digits)");
			} else if (!S_ISREG(st.st_mode)) {
				report(c, PLY_PROBLEM_INDEX_ORPHAN, where, fd,
				       names[i],
				       "an index entry that is not a regular file");
			} else if (st.st_nlink == 1) {
				report(c, PLY_PROBLEM_INDEX_UNLINKED, where, fd,
				       names[i],
				       "an index entry no upper name links to (nlink 1)");
			} else if (!lower_file_has_ino(c, ino)) {
				report(c, PLY_PROBLEM_INDEX_ORPHAN, where, fd,
				       names[i],
				       "no hard-linked lower file has st_ino %016" PRIx64,
				       ino);
			}
		}
		ply_strv_free(names, n);
	}
	close(fd);
}

int ply_check_lock(const struct ply_stack *stack, int *ret_fd,
		   struct ply_err *err)
{
	int fd, r;

	if (stack->workfd < 0)
		return ply_err_set(err, -EINVAL, "no workdir");
	fd = ply_sys_openat(stack->workfd, LOCK_FILE,
			    O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
	if (fd < 0)
		return ply_err_set(err, fd, "workdir %s: cannot open %s: %s",
				   stack->workdir, LOCK_FILE, strerror(-fd));
	r = ply_sys_flock(fd, LOCK_EX | LOCK_NB);
	if (r < 0) {
		close(fd);
		if (r == -EWOULDBLOCK)
			return ply_err_set(err, -EBUSY,
					   "workdir %s is in use by a mount: unmount it first",
					   stack->workdir);
		return ply_err_set(err, r, "workdir %s: cannot lock: %s",
				   stack->workdir, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

int ply_check(const struct ply_stack *stack, bool repair, ply_check_fn fn,
	      void *ctx, struct ply_check_result *ret, struct ply_err *err)
{
	struct checker *c;
	struct ply_lookup root;
	int r;

	if (!stack->has_upper)
		return ply_err_set(err, -EINVAL,
				   "the stack has no upperdir: nothing to check");
	c = calloc(1, sizeof(*c));
	if (!c)
		return ply_err_set(err, -ENOMEM, "out of memory");
	c->stack = stack;
	c->repair = repair;
	c->fn = fn;
	c->ctx = ctx;
	if (stack->workfd >= 0)
		check_temporaries(c);
	r = ply_lookup_root(stack, &root);
	if (r < 0) {
		r = ply_err_set(err, r, "the layer roots: %s", strerror(-r));
		goto out;
	}
	r = check_dir(c, &root);
	ply_lookup_release(&root);
	if (r < 0) {
		r = ply_err_set(err, r, "upperdir %s: %s", stack->layers[0].path,
				strerror(-r));
		goto out;
	}
	if (stack->workfd >= 0)
		check_index(c);
	if (ret)
		*ret = c->res;
	r = 0;
out:
	free(c->linked);
	free(c);
	return r;
}
