/* options.c: the -o option syntax of overlayfs and fuse-overlayfs.
 * Owns the split of one option string into ours, libfuse's mount options,
 * and the fuse-overlayfs options accepted for compatibility. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"

/* Splits s at every sep not preceded by a backslash. When unescape is
 * set, each backslash escape is replaced by the character it escapes. */
static int split(const char *s, char sep, bool unescape, char ***ret_parts,
		 size_t *ret_n)
{
	size_t len = strlen(s), n = 0, cap = 4;
	char **parts = calloc(cap, sizeof(*parts));
	char *cur = malloc(len + 1);
	size_t curlen = 0;

	if (!parts || !cur)
		goto nomem;
	for (size_t i = 0;; i++) {
		char c = s[i];

		if (c == '\\' && s[i + 1]) {
			if (!unescape)
				cur[curlen++] = c;
			cur[curlen++] = s[++i];
			continue;
		}
		if (c != sep && c != '\0') {
			cur[curlen++] = c;
			continue;
		}
		if (n + 1 >= cap) {
			char **grown = realloc(parts, 2 * cap * sizeof(*parts));
			if (!grown)
				goto nomem;
			parts = grown;
			cap *= 2;
		}
		parts[n] = strndup(cur, curlen);
		if (!parts[n])
			goto nomem;
		n++;
		curlen = 0;
		if (c == '\0')
			break;
	}
	free(cur);
	*ret_parts = parts;
	*ret_n = n;
	return 0;
nomem:
	free(cur);
	ply_strv_free(parts, n);
	return -ENOMEM;
}

int ply_split_escaped(const char *s, char sep, char ***ret_parts, size_t *ret_n)
{
	return split(s, sep, true, ret_parts, ret_n);
}

void ply_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int unescape_dup(const char *s, char **ret)
{
	char **parts;
	size_t n;
	int r = split(s, '\0', true, &parts, &n);

	if (r < 0)
		return r;
	*ret = parts[0];
	parts[0] = NULL;
	ply_strv_free(parts, n);
	return 0;
}

static int strv_push(char ***v, size_t *n, const char *s)
{
	char **grown = realloc(*v, (*n + 1) * sizeof(**v));

	if (!grown)
		return -ENOMEM;
	*v = grown;
	grown[*n] = strdup(s);
	if (!grown[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

void ply_options_init(struct ply_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->timeout = -1;
	opts->threaded = PLY_UNSET;
	opts->squash_uid = opts->squash_gid = -1;
}

void ply_options_free(struct ply_options *opts)
{
	ply_strv_free(opts->lowerdirs, opts->nlower);
	ply_strv_free(opts->unimplemented, opts->nunimplemented);
	free(opts->upperdir);
	free(opts->workdir);
	free(opts->fuse_opts);
	free(opts->volstore);
	for (size_t i = 0; i < opts->nsplices; i++) {
		free(opts->splices[i].source);
		free(opts->splices[i].dest);
	}
	free(opts->splices);
	ply_idmap_free(&opts->uidmap);
	ply_idmap_free(&opts->gidmap);
	ply_options_init(opts);
}

/* ---- values ------------------------------------------------------------- */

static bool parse_uint(const char *v, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long x;

	if (!v || !*v || *v == '-' || *v == '+')
		return false;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || *end || x > max)
		return false;
	*ret = x;
	return true;
}

static bool value_is_bool01(const char *v)
{
	return v && (!strcmp(v, "0") || !strcmp(v, "1"));
}

static bool value_in(const char *v, const char *const *allowed)
{
	for (; v && *allowed; allowed++)
		if (!strcmp(v, *allowed))
			return true;
	return false;
}

static bool value_is_id(const char *v)
{
	unsigned long x;

	return parse_uint(v, UINT32_MAX, &x);
}

static bool value_is_timeout(const char *v, double *ret)
{
	char *end;
	double x;

	if (!v || !*v)
		return false;
	errno = 0;
	x = strtod(v, &end);
	if (errno || *end || !(x >= 0) || x > 1e9)
		return false;
	*ret = x;
	return true;
}

/* ---- the option table --------------------------------------------------- */

enum value_kind {
	V_NONE,    /* a flag: must have no value */
	V_BOOL01,  /* 0 or 1 */
	V_ID,      /* a number up to 2^32-1 */
	V_ANY,     /* any non-empty text */
	V_ONOFF,   /* on or off */
	V_CHOICE,  /* one of choices */
	V_OURS,    /* a value, checked by parse_ours */
};

enum option_role {
	R_OURS,   /* read into struct ply_options (parse_ours) */
	R_COMPAT, /* fuse-overlayfs and kernel overlayfs options a runtime may
		   * pass: accepted with their values checked, and named as
		   * not implemented */
	R_FUSE,   /* options of the FUSE mount itself, handed to libfuse */
	R_MOUNT,  /* tokens mount(8) and fstab use for themselves */
};

struct option_spec {
	const char *name;
	enum option_role role;
	enum value_kind kind;
	/* for an option that takes a value: what "NAME" or "NAME=" alone is
	 * told it needs ("a path"), or NULL when the option's own check
	 * says what it expects */
	const char *need;
	const char *const *choices; /* V_CHOICE */
};

static const char *const xattr_permission_values[] = { "0", "1", "2", NULL };
static const char *const redirect_values[] = { "on", "off", "follow",
					       "nofollow", NULL };
static const char *const xino_values[] = { "on", "off", "auto", NULL };
static const char *const noxattrs_values[] = { "0", "1", "2", NULL };

#define OURS(n, k, need) { n, R_OURS, k, need, NULL }
#define COMPAT(n, k, c) { n, R_COMPAT, k, NULL, c }
#define FUSE_FLAG(n) { n, R_FUSE, V_NONE, NULL, NULL }
#define FUSE_VALUE(n, k) { n, R_FUSE, k, "a value", NULL }
#define MOUNT_TOKEN(n) { n, R_MOUNT, V_NONE, NULL, NULL }

/* Every option plyfs knows. Before an option is read, the table decides
 * the two mistakes every option can be given: a value for a flag ("NAME
 * takes no value"), and none for an option that needs one. */
static const struct option_spec options[] = {
	OURS("lowerdir", V_OURS, "at least one path"),
	OURS("lowerdir+", V_OURS, "a path"),
	OURS("upperdir", V_OURS, "a path"),
	OURS("workdir", V_OURS, "a path"),
	OURS("volstore", V_OURS, "a path"),
	OURS("timeout", V_OURS, NULL),
	OURS("bind", V_OURS, NULL),
	OURS("volume", V_OURS, NULL),
	OURS("uidmapping", V_OURS, NULL),
	OURS("gidmapping", V_OURS, NULL),
	OURS("squash_to_uid", V_OURS, NULL),
	OURS("squash_to_gid", V_OURS, NULL),
	OURS("xattr_permissions", V_OURS, NULL),
	OURS("fsync", V_OURS, NULL),
	OURS("writeback", V_OURS, NULL),
	OURS("whiteout", V_OURS, NULL),
	OURS("threaded", V_OURS, NULL),
	OURS("squash_to_root", V_NONE, NULL),
	OURS("static_nlink", V_NONE, NULL),
	OURS("noacl", V_NONE, NULL),
	OURS("volatile", V_NONE, NULL),

	COMPAT("fast_ino", V_BOOL01, NULL),
	COMPAT("redirect_dir", V_CHOICE, redirect_values),
	COMPAT("index", V_ONOFF, NULL),
	COMPAT("metacopy", V_ONOFF, NULL),
	COMPAT("xino", V_CHOICE, xino_values),
	COMPAT("userxattr", V_NONE, NULL),
	COMPAT("noxattrs", V_CHOICE, noxattrs_values),
	{ "plugins", R_COMPAT, V_ANY, "a value", NULL },
	COMPAT("max_idle_threads", V_ID, NULL),

	FUSE_FLAG("allow_other"), FUSE_FLAG("allow_root"),
	FUSE_FLAG("default_permissions"), FUSE_FLAG("auto_unmount"),
	FUSE_FLAG("blkdev"), FUSE_FLAG("ro"), FUSE_FLAG("rw"),
	FUSE_FLAG("suid"), FUSE_FLAG("nosuid"), FUSE_FLAG("dev"),
	FUSE_FLAG("nodev"), FUSE_FLAG("exec"), FUSE_FLAG("noexec"),
	FUSE_FLAG("async"), FUSE_FLAG("sync"), FUSE_FLAG("dirsync"),
	FUSE_FLAG("noatime"), FUSE_FLAG("nodiratime"),
	FUSE_VALUE("fsname", V_ANY), FUSE_VALUE("subtype", V_ANY),
	FUSE_VALUE("max_read", V_ID), FUSE_VALUE("blksize", V_ID),
	FUSE_VALUE("context", V_ANY), FUSE_VALUE("fscontext", V_ANY),
	FUSE_VALUE("defcontext", V_ANY), FUSE_VALUE("rootcontext", V_ANY),

	MOUNT_TOKEN("defaults"), MOUNT_TOKEN("auto"), MOUNT_TOKEN("noauto"),
	MOUNT_TOKEN("user"), MOUNT_TOKEN("nouser"), MOUNT_TOKEN("users"),
	MOUNT_TOKEN("owner"), MOUNT_TOKEN("group"), MOUNT_TOKEN("nofail"),
	MOUNT_TOKEN("_netdev"), MOUNT_TOKEN("atime"), MOUNT_TOKEN("relatime"),
	MOUNT_TOKEN("strictatime"), MOUNT_TOKEN("lazytime"),
	MOUNT_TOKEN("nolazytime"), MOUNT_TOKEN("iversion"),
	MOUNT_TOKEN("noiversion"),
};

static const struct option_spec *find_option(const char *name)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(*options); i++)
		if (!strcmp(options[i].name, name))
			return &options[i];
	return NULL;
}

static bool value_ok(const struct option_spec *o, const char *v)
{
	static const char *const onoff[] = { "on", "off", NULL };

	switch (o->kind) {
	case V_NONE:
		return !v;
	case V_BOOL01:
		return value_is_bool01(v);
	case V_ID:
		return value_is_id(v);
	case V_ANY:
	case V_OURS:
		return v && *v;
	case V_ONOFF:
		return value_in(v, onoff);
	case V_CHOICE:
		return value_in(v, o->choices);
	}
	return false;
}

static int append_fuse_opt(struct ply_options *opts, const char *opt)
{
	size_t old = opts->fuse_opts ? strlen(opts->fuse_opts) : 0;
	char *grown = realloc(opts->fuse_opts, old + strlen(opt) + 2);

	if (!grown)
		return -ENOMEM;
	opts->fuse_opts = grown;
	if (old)
		grown[old++] = ',';
	strcpy(grown + old, opt);
	return 0;
}

static int note_unimplemented(struct ply_options *opts, const char *name)
{
	for (size_t i = 0; i < opts->nunimplemented; i++)
		if (!strcmp(opts->unimplemented[i], name))
			return 0;
	return strv_push(&opts->unimplemented, &opts->nunimplemented, name);
}

/* A path option (its emptiness refused by parse_one); the last one
 * given wins. */
static int set_path(char **slot, const char *raw)
{
	char *v;
	int r = unescape_dup(raw, &v);

	if (r < 0)
		return r;
	free(*slot);
	*slot = v;
	return 0;
}

static int add_lowerdirs(struct ply_options *opts, const char *raw,
			 bool append, struct ply_err *err)
{
	char **parts;
	size_t n;
	int r = split(raw, ':', true, &parts, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!parts[i][0]) {
			ply_strv_free(parts, n);
			return ply_err_set(err, -EINVAL,
					   "lowerdir=%s has an empty layer path",
					   raw);
		}
	if (!append) {
		ply_strv_free(opts->lowerdirs, opts->nlower);
		opts->lowerdirs = NULL;
		opts->nlower = 0;
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		r = strv_push(&opts->lowerdirs, &opts->nlower, parts[i]);
	ply_strv_free(parts, n);
	return r;
}

/* bind=SRC:DEST[:ro], volume=NAME:DEST[:ro][:nocopy]; "\:" escapes. */
static int add_splice(struct ply_options *opts, const char *name,
		      const char *raw, struct ply_err *err)
{
	struct ply_splice_spec spec = { 0 }, *grown;
	char **parts = NULL;
	size_t n = 0;
	int r;

	spec.kind = name[0] == 'b' ? PLY_SPLICE_BIND : PLY_SPLICE_VOLUME;
	r = raw ? split(raw, ':', true, &parts, &n) : -EINVAL;
	if (r < 0 || n < 2 || !parts[1][0] ||
	    (spec.kind == PLY_SPLICE_BIND && !parts[0][0])) {
		r = ply_err_set(err, -EINVAL,
				"%s=%s: expected %s:DEST[:ro]%s", name,
				raw ? raw : "",
				spec.kind == PLY_SPLICE_BIND ? "SRC" : "NAME",
				spec.kind == PLY_SPLICE_BIND ? "" :
							       "[:nocopy]");
		goto out;
	}
	for (size_t i = 2; i < n; i++) {
		if (!strcmp(parts[i], "ro")) {
			spec.ro = true;
		} else if (!strcmp(parts[i], "rw")) {
			spec.ro = false;
		} else if (!strcmp(parts[i], "nocopy") &&
			   spec.kind == PLY_SPLICE_VOLUME) {
			spec.nocopy = true;
		} else {
			r = ply_err_set(err, -EINVAL,
					"%s=%s: unknown flag '%s'", name, raw,
					parts[i]);
			goto out;
		}
	}
	grown = realloc(opts->splices,
			(opts->nsplices + 1) * sizeof(*opts->splices));
	if (!grown) {
		r = -ENOMEM;
		goto out;
	}
	opts->splices = grown;
	spec.source = parts[0];
	spec.dest = parts[1];
	parts[0] = parts[1] = NULL;
	opts->splices[opts->nsplices++] = spec;
out:
	ply_strv_free(parts, n);
	return r;
}

/* One of our own options, name with the value v (NULL: none). A flag
 * comes without a value, and an option with a need in the table with a
 * non-empty one: parse_one checked. */
static int parse_ours(struct ply_options *opts, const char *name,
		      const char *v, struct ply_err *err)
{
	if (!strcmp(name, "lowerdir"))
		return add_lowerdirs(opts, v, false, err);
	if (!strcmp(name, "lowerdir+")) {
		/* as the kernel's: exactly one path, ':' is part of it */
		char *path = NULL;
		int r = unescape_dup(v, &path);

		if (r >= 0)
			r = strv_push(&opts->lowerdirs, &opts->nlower, path);
		free(path);
		return r;
	}
	if (!strcmp(name, "upperdir"))
		return set_path(&opts->upperdir, v);
	if (!strcmp(name, "workdir"))
		return set_path(&opts->workdir, v);
	if (!strcmp(name, "volstore"))
		return set_path(&opts->volstore, v);
	if (!strcmp(name, "timeout")) {
		if (!value_is_timeout(v, &opts->timeout))
			return ply_err_set(err, -EINVAL,
					   "timeout=%s: expected seconds, e.g. timeout=3600",
					   v ? v : "");
		return 0;
	}
	if (!strcmp(name, "bind") || !strcmp(name, "volume"))
		return add_splice(opts, name, v, err);
	if (!strcmp(name, "uidmapping") || !strcmp(name, "gidmapping")) {
		struct ply_idmap *map = name[0] == 'u' ? &opts->uidmap :
							 &opts->gidmap;
		struct ply_err why;
		int r = ply_idmap_parse(v ? v : "", map, &why);

		if (r == -EINVAL)
			return ply_err_set(err, r, "%s=%s: %s", name,
					   v ? v : "", why.msg);
		return r;
	}
	if (!strcmp(name, "squash_to_uid") || !strcmp(name, "squash_to_gid")) {
		unsigned long id;

		if (!parse_uint(v, UINT32_MAX - 1, &id))
			return ply_err_set(err, -EINVAL,
					   "%s=%s: expected a numeric id", name,
					   v ? v : "");
		if (name[10] == 'u')
			opts->squash_uid = (int64_t)id;
		else
			opts->squash_gid = (int64_t)id;
		return 0;
	}
	if (!strcmp(name, "xattr_permissions")) {
		if (!value_in(v, xattr_permission_values))
			return ply_err_set(err, -EINVAL,
					   "xattr_permissions=%s: expected 0, 1 or 2",
					   v ? v : "");
		opts->xattr_permissions = v[0] - '0';
		return 0;
	}
	if (!strcmp(name, "squash_to_root")) {
		opts->squash_to_root = true;
		return 0;
	}
	if (!strcmp(name, "static_nlink")) {
		opts->static_nlink = true;
		return 0;
	}
	if (!strcmp(name, "noacl")) {
		opts->noacl = true;
		return 0;
	}
	if (!strcmp(name, "volatile")) {
		opts->volatile_mount = opts->nosync = true;
		return 0;
	}
	if (!strcmp(name, "writeback") || !strcmp(name, "fsync")) {
		if (!value_is_bool01(v))
			return ply_err_set(err, -EINVAL,
					   "%s=%s: expected 0 or 1", name,
					   v ? v : "");
		if (!strcmp(name, "writeback"))
			opts->writeback = v[0] == '1';
		else
			opts->nosync = v[0] == '0';
		return 0;
	}
	if (!strcmp(name, "whiteout")) {
		static const char *const formats[] = { "auto", "chardev",
							"xattr", "file", NULL };

		for (int i = 0; formats[i]; i++)
			if (v && !strcmp(v, formats[i])) {
				opts->whiteout = (enum ply_wh_format)i;
				return 0;
			}
		return ply_err_set(err, -EINVAL,
				   "whiteout=%s: expected auto, chardev, xattr or file",
				   v ? v : "");
	}
	if (!strcmp(name, "threaded")) {
		if (!value_is_bool01(v))
			return ply_err_set(err, -EINVAL,
					   "threaded=%s: expected 0 or 1",
					   v ? v : "");
		opts->threaded = v[0] == '1' ? PLY_ON : PLY_OFF;
		return 0;
	}
	/* an R_OURS entry of the table without its branch above */
	return ply_err_set(err, -EINVAL, "unknown option '%s'", name);
}

/* An option given more than once is read each time, and the last one
 * wins (several lowerdir= too: the last list replaces the others), as in
 * the kernel's overlayfs and in fuse-overlayfs, and as mount(8) expects
 * when it puts the options of the command line after those of fstab.
 * lowerdir+= adds a layer instead. */
static int parse_one(struct ply_options *opts, const char *opt,
		     struct ply_err *err)
{
	const char *eq = strchr(opt, '=');
	size_t namelen = eq ? (size_t)(eq - opt) : strlen(opt);
	const char *v = eq ? eq + 1 : NULL;
	const struct option_spec *o;
	char name[64];

	if (namelen >= sizeof(name))
		return ply_err_set(err, -EINVAL, "unknown option '%s'", opt);
	memcpy(name, opt, namelen);
	name[namelen] = '\0';

	o = find_option(name);
	if (!o) {
		/* mount(8)'s own, with or without a value */
		if (!strncmp(name, "x-", 2) || !strcmp(name, "comment"))
			return 0;
		return ply_err_set(err, -EINVAL, "unknown option '%s'", opt);
	}
	if (o->kind == V_NONE && v)
		return ply_err_set(err, -EINVAL, "%s takes no value", name);
	if (o->kind != V_NONE && o->need && (!v || !*v))
		return ply_err_set(err, -EINVAL, "%s= needs %s", name,
				   o->need);
	switch (o->role) {
	case R_OURS:
		return parse_ours(opts, name, v, err);
	case R_COMPAT:
		if (!value_ok(o, v))
			return ply_err_set(err, -EINVAL,
					   "%s=%s: invalid value for option %s",
					   name, v ? v : "", name);
		return note_unimplemented(opts, name);
	case R_FUSE:
		if (!value_ok(o, v))
			return ply_err_set(err, -EINVAL,
					   "%s=%s: expected a number", name,
					   v ? v : "");
		return append_fuse_opt(opts, opt);
	case R_MOUNT:
		return 0;
	}
	return ply_err_set(err, -EINVAL, "unknown option '%s'", opt);
}

int ply_options_parse(struct ply_options *opts, const char *optstr,
		      struct ply_err *err)
{
	char **parts;
	size_t n;
	int r = split(optstr, ',', false, &parts, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++)
		if (parts[i][0]) /* runtimes pass ",," and trailing commas */
			r = parse_one(opts, parts[i], err);
	ply_strv_free(parts, n);
	return r;
}

int ply_options_validate(const struct ply_options *opts, struct ply_err *err)
{
	if (!opts->nlower)
		return ply_err_set(err, -EINVAL,
				   "no lowerdir= given: need at least one layer");
	if (opts->nlower > PLY_MAX_LAYERS)
		return ply_err_set(err, -EINVAL,
				   "too many layers: %zu given, at most %d",
				   opts->nlower, PLY_MAX_LAYERS);
	if (opts->upperdir && !opts->workdir)
		return ply_err_set(err, -EINVAL,
				   "upperdir= needs workdir= as well");
	if (opts->workdir && !opts->upperdir)
		return ply_err_set(err, -EINVAL,
				   "workdir= given without upperdir=");
	return 0;
}
