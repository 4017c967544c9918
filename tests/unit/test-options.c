/* test-options.c: the -o option syntax (options.c): lowerdir splitting and
 * escapes, accumulation, validation, the compatibility options, the FUSE
 * mount options and the mount(8) tokens. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

/* Parses optstr into fresh options; returns what parse said. */
static int parse(struct ply_options *opts, const char *optstr,
		 struct ply_err *err)
{
	ply_options_init(opts);
	memset(err, 0, sizeof(*err));
	return ply_options_parse(opts, optstr, err);
}

/* optstr must be refused with -EINVAL and a message naming what. */
static void expect_refused(const char *optstr, const char *what)
{
	struct ply_options opts;
	struct ply_err err;
	int r = parse(&opts, optstr, &err);

	if (r != -EINVAL)
		fail_msg("'%s': expected -EINVAL, got %d", optstr, r);
	if (what && !strstr(err.msg, what))
		fail_msg("'%s': message '%s' does not name '%s'", optstr,
			 err.msg, what);
	ply_options_free(&opts);
}

static void expect_accepted(const char *optstr)
{
	struct ply_options opts;
	struct ply_err err;
	int r = parse(&opts, optstr, &err);

	if (r != 0)
		fail_msg("'%s': expected success, got %d (%s)", optstr, r,
			 err.msg);
	ply_options_free(&opts);
}

static void test_lowerdir_split(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "lowerdir=/a:/b:/c", &err), 0);
	assert_int_equal(opts.nlower, 3);
	assert_string_equal(opts.lowerdirs[0], "/a");
	assert_string_equal(opts.lowerdirs[1], "/b");
	assert_string_equal(opts.lowerdirs[2], "/c");
	ply_options_free(&opts);
}

static void test_lowerdir_escapes(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	/* "\:" is a colon inside a path, "\\" a backslash */
	assert_int_equal(parse(&opts, "lowerdir=/a\\:b:/c\\\\d:/e\\\\:/f",
			       &err),
			 0);
	assert_int_equal(opts.nlower, 4);
	assert_string_equal(opts.lowerdirs[0], "/a:b");
	assert_string_equal(opts.lowerdirs[1], "/c\\d");
	assert_string_equal(opts.lowerdirs[2], "/e\\");
	assert_string_equal(opts.lowerdirs[3], "/f");
	ply_options_free(&opts);
}

static void test_escaped_comma(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	/* "\," keeps a comma inside one option instead of splitting */
	assert_int_equal(parse(&opts,
			       "lowerdir=/a\\,b:/c,upperdir=/u\\,v,workdir=/w",
			       &err),
			 0);
	assert_int_equal(opts.nlower, 2);
	assert_string_equal(opts.lowerdirs[0], "/a,b");
	assert_string_equal(opts.lowerdirs[1], "/c");
	assert_string_equal(opts.upperdir, "/u,v");
	assert_string_equal(opts.workdir, "/w");
	ply_options_free(&opts);
}

static void test_several_o_accumulate(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "lowerdir=/l", &err), 0);
	assert_int_equal(ply_options_parse(&opts, "upperdir=/u", &err), 0);
	assert_int_equal(ply_options_parse(&opts, "workdir=/w,timeout=2",
					   &err),
			 0);
	assert_int_equal(opts.nlower, 1);
	assert_string_equal(opts.lowerdirs[0], "/l");
	assert_string_equal(opts.upperdir, "/u");
	assert_string_equal(opts.workdir, "/w");
	assert_true(opts.timeout == 2.0);
	assert_int_equal(ply_options_validate(&opts, &err), 0);
	ply_options_free(&opts);
}

static void test_lowerdir_plus_appends(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "lowerdir=/a:/b,lowerdir+=/c", &err), 0);
	assert_int_equal(ply_options_parse(&opts, "lowerdir+=/d", &err), 0);
	assert_int_equal(opts.nlower, 4);
	assert_string_equal(opts.lowerdirs[0], "/a");
	assert_string_equal(opts.lowerdirs[1], "/b");
	assert_string_equal(opts.lowerdirs[2], "/c");
	assert_string_equal(opts.lowerdirs[3], "/d");
	/* lowerdir+= takes one path, colons and all, as the kernel's does */
	assert_int_equal(ply_options_parse(&opts, "lowerdir+=/e:f", &err), 0);
	assert_int_equal(opts.nlower, 5);
	assert_string_equal(opts.lowerdirs[4], "/e:f");
	/* a plain lowerdir= again replaces the list */
	assert_int_equal(ply_options_parse(&opts, "lowerdir=/z", &err), 0);
	assert_int_equal(opts.nlower, 1);
	assert_string_equal(opts.lowerdirs[0], "/z");
	ply_options_free(&opts);
}

static void test_empty_elements_skipped(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, ",lowerdir=/a,,upperdir=/u,,,workdir=/w,",
			       &err),
			 0);
	assert_int_equal(opts.nlower, 1);
	assert_string_equal(opts.upperdir, "/u");
	assert_string_equal(opts.workdir, "/w");
	assert_int_equal(ply_options_validate(&opts, &err), 0);
	ply_options_free(&opts);
	expect_accepted("");
	expect_accepted(",");
}

static void test_empty_layer_path(void **state)
{
	expect_refused("lowerdir=/a::/b", "/a::/b");
	expect_refused("lowerdir=:/a", "empty");
	expect_refused("lowerdir=/a:", "empty");
	expect_refused("lowerdir=", "lowerdir");
	expect_refused("lowerdir+=", "lowerdir+");
	expect_refused("upperdir=", "upperdir");
	expect_refused("workdir=", "workdir");
}

static void test_validate(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "lowerdir=/l,upperdir=/u", &err), 0);
	assert_int_equal(ply_options_validate(&opts, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "workdir"));
	ply_options_free(&opts);

	assert_int_equal(parse(&opts, "lowerdir=/l,workdir=/w", &err), 0);
	assert_int_equal(ply_options_validate(&opts, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "upperdir"));
	ply_options_free(&opts);

	assert_int_equal(parse(&opts, "upperdir=/u,workdir=/w", &err), 0);
	assert_int_equal(ply_options_validate(&opts, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "lowerdir"));
	ply_options_free(&opts);

	assert_int_equal(parse(&opts, "lowerdir=/l", &err), 0);
	assert_int_equal(ply_options_validate(&opts, &err), 0);
	ply_options_free(&opts);
}

/* "lowerdir=/l0:/l1:..." with n layers */
static char *many_layers(size_t n)
{
	size_t size = 16 + n * 8;
	char *s = malloc(size);
	size_t len;

	assert_non_null(s);
	len = (size_t)snprintf(s, size, "lowerdir=");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, size - len, "%s/l%zu",
					i ? ":" : "", i);
	return s;
}

static void test_layer_limit(void **state)
{
	struct ply_options opts;
	struct ply_err err;
	char *s;

	s = many_layers(PLY_MAX_LAYERS);
	assert_int_equal(parse(&opts, s, &err), 0);
	assert_int_equal(opts.nlower, 500);
	assert_int_equal(ply_options_validate(&opts, &err), 0);
	ply_options_free(&opts);
	free(s);

	s = many_layers(PLY_MAX_LAYERS + 1);
	assert_int_equal(parse(&opts, s, &err), 0);
	assert_int_equal(ply_options_validate(&opts, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "501"));
	ply_options_free(&opts);
	free(s);
}

static void test_timeout(void **state)
{
	static const struct {
		const char *opt;
		double want;
	} good[] = {
		{ "timeout=0", 0 },
		{ "timeout=1.5", 1.5 },
		{ "timeout=3600", 3600 },
	};
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "lowerdir=/l", &err), 0);
	assert_true(opts.timeout < 0); /* not given */
	ply_options_free(&opts);
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		assert_int_equal(parse(&opts, good[i].opt, &err), 0);
		assert_true(opts.timeout == good[i].want);
		ply_options_free(&opts);
	}
	expect_refused("timeout=abc", "timeout");
	expect_refused("timeout=-1", "timeout");
	expect_refused("timeout=", "timeout");
	expect_refused("timeout", "timeout");
	expect_refused("timeout=1s", "timeout");
}

static void test_threaded(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "lowerdir=/l", &err), 0);
	assert_int_equal(opts.threaded, PLY_UNSET);
	ply_options_free(&opts);
	assert_int_equal(parse(&opts, "threaded=0", &err), 0);
	assert_int_equal(opts.threaded, PLY_OFF);
	ply_options_free(&opts);
	assert_int_equal(parse(&opts, "threaded=1", &err), 0);
	assert_int_equal(opts.threaded, PLY_ON);
	ply_options_free(&opts);
	expect_refused("threaded=2", "threaded");
	expect_refused("threaded", "threaded");
}

static void test_compat_values(void **state)
{
	expect_accepted("uidmapping=0:1000:1");
	expect_accepted("gidmapping=0:1000:1:1:100000:65536");
	/* the leading ':' form container runtimes pass */
	expect_accepted("uidmapping=:0:1:1001:1001:0:1:1002:1002:64535");
	expect_accepted("squash_to_root");
	expect_accepted("squash_to_uid=1000");
	expect_accepted("fsync=0");
	expect_accepted("xattr_permissions=2");
	expect_accepted("redirect_dir=on");
	expect_accepted("volatile");

	expect_refused("uidmapping=0:1000", "uidmapping");
	expect_refused("uidmapping=", "uidmapping");
	expect_refused("uidmapping=a:b:c", "uidmapping");
	/* a range running past 2^32-1 (fuzz-options) */
	expect_refused("uidmapping=0:4294967295:2", "uidmapping");
	expect_refused("gidmapping=4294967000:0:1000", "gidmapping");
	expect_accepted("uidmapping=0:4294967295:1");
	/* the reason idmap.c gives comes after the option as given */
	expect_refused("uidmapping=0:0:10:5:100:10",
		       "uidmapping=0:0:10:5:100:10: ranges overlap");
	expect_refused("gidmapping=0:0:0",
		       "gidmapping=0:0:0: a range of size 0");
	expect_refused("uidmapping",
		       "uidmapping=: expected CONTAINER:HOST:SIZE");
	expect_refused("fsync=banana", "fsync");
	expect_refused("xattr_permissions=3", "xattr_permissions");
	expect_refused("squash_to_root=1", "squash_to_root");
	expect_refused("squash_to_uid=-1", "squash_to_uid");
	expect_refused("redirect_dir=maybe", "redirect_dir");
}

static void test_compat_named_once(void **state)
{
	struct ply_options opts;
	struct ply_err err;
	size_t idle = 0, fast_ino = 0;

	assert_int_equal(parse(&opts, "max_idle_threads=1,fast_ino=1,"
				      "max_idle_threads=2",
			       &err),
			 0);
	assert_int_equal(ply_options_parse(&opts, "fast_ino=0", &err), 0);
	for (size_t i = 0; i < opts.nunimplemented; i++) {
		if (!strcmp(opts.unimplemented[i], "max_idle_threads"))
			idle++;
		else if (!strcmp(opts.unimplemented[i], "fast_ino"))
			fast_ino++;
	}
	assert_int_equal(idle, 1);
	assert_int_equal(fast_ino, 1);
	assert_int_equal(opts.nunimplemented, 2);
	ply_options_free(&opts);
}

/* fsync=, whiteout= and writeback= are plyfs's own: read, checked, and
 * kept */
static void test_fsync_and_whiteout(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "fsync=0,whiteout=xattr", &err), 0);
	assert_true(opts.nosync);
	assert_int_equal(opts.whiteout, PLY_WH_XATTR);
	assert_int_equal(opts.nunimplemented, 0);
	assert_int_equal(ply_options_parse(&opts, "fsync=1,whiteout=chardev",
					   &err),
			 0);
	assert_false(opts.nosync);
	assert_int_equal(opts.whiteout, PLY_WH_CHARDEV);
	assert_int_equal(ply_options_parse(&opts, "whiteout=bogus", &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "whiteout"));
	/* volatile implies no syncs; noacl and volatile take no value */
	assert_false(opts.volatile_mount);
	assert_int_equal(ply_options_parse(&opts, "volatile,noacl", &err), 0);
	assert_true(opts.volatile_mount);
	assert_true(opts.nosync);
	assert_true(opts.noacl);
	assert_int_equal(ply_options_parse(&opts, "noacl=1", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "noacl"));
	/* writeback= too (off unless asked; the last one given wins) */
	assert_false(opts.writeback);
	assert_int_equal(ply_options_parse(&opts, "writeback=1", &err), 0);
	assert_true(opts.writeback);
	assert_int_equal(ply_options_parse(&opts, "writeback=1,writeback=0",
					   &err),
			 0);
	assert_false(opts.writeback);
	assert_int_equal(ply_options_parse(&opts, "writeback=yes", &err),
			 -EINVAL);
	assert_string_equal(err.msg, "writeback=yes: expected 0 or 1");
	assert_int_equal(opts.nunimplemented, 0);
	ply_options_free(&opts);
}

static void test_fuse_opts(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "allow_other,lowerdir=/l,ro", &err), 0);
	assert_int_equal(ply_options_parse(&opts, "fsname=x", &err), 0);
	assert_non_null(opts.fuse_opts);
	assert_string_equal(opts.fuse_opts, "allow_other,ro,fsname=x");
	/* not mistaken for a layer option */
	assert_int_equal(opts.nlower, 1);
	ply_options_free(&opts);

	assert_int_equal(parse(&opts, "lowerdir=/l", &err), 0);
	assert_null(opts.fuse_opts);
	ply_options_free(&opts);

	expect_refused("fsname=", "fsname");
}

static void test_mount_tokens_dropped(void **state)
{
	struct ply_options opts;
	struct ply_err err;

	assert_int_equal(parse(&opts, "defaults,nofail,_netdev,x-systemd.foo,"
				      "x-systemd.requires=/x,lowerdir=/l",
			       &err),
			 0);
	assert_null(opts.fuse_opts);
	assert_int_equal(opts.nunimplemented, 0);
	assert_int_equal(opts.nlower, 1);
	ply_options_free(&opts);
}

static void test_unknown_refused(void **state)
{
	expect_refused("lowerdir=/l,bogus", "bogus");
	expect_refused("frobnicate=3", "frobnicate");
	expect_refused("upperdir", "upperdir");
	expect_refused("allow_other=1", "allow_other");
	/* a long name is still named, not cut */
	expect_refused("an_option_name_that_is_far_longer_than_sixty_four_characters_in_all",
		       "an_option_name_that_is_far_longer_than_sixty_four_characters_in_all");
}

/* optstr is refused with exactly the message msg. */
static void expect_message(const char *optstr, const char *msg)
{
	struct ply_options opts;
	struct ply_err err;
	int r = parse(&opts, optstr, &err);

	if (r != -EINVAL)
		fail_msg("'%s': expected -EINVAL, got %d", optstr, r);
	if (strcmp(err.msg, msg))
		fail_msg("'%s': '%s', expected '%s'", optstr, err.msg, msg);
	ply_options_free(&opts);
}

/* Every option plyfs knows, in a form it takes: the table in options.c
 * that decides flags and values lists each one, and each reaches what
 * reads it (a name missing from the table would be "unknown"). */
static void test_every_option_known(void **state)
{
	static const char *const good[] = {
		"lowerdir=/l", "lowerdir+=/m", "upperdir=/u", "workdir=/w",
		"volstore=/s", "timeout=1", "bind=/a:/b", "volume=v:/c",
		"uidmapping=0:1:1", "gidmapping=0:1:1", "squash_to_uid=1",
		"squash_to_gid=1", "xattr_permissions=1", "fsync=1",
		"whiteout=file", "threaded=0", "squash_to_root",
		"static_nlink", "noacl", "volatile", "fast_ino=1",
		"writeback=0", "redirect_dir=on", "index=off", "metacopy=on",
		"xino=auto", "userxattr", "noxattrs=1", "plugins=p",
		"max_idle_threads=3", "allow_other", "allow_root",
		"default_permissions", "auto_unmount", "blkdev", "ro", "rw",
		"suid", "nosuid", "dev", "nodev", "exec", "noexec", "async",
		"sync", "dirsync", "noatime", "nodiratime", "fsname=f",
		"subtype=s", "max_read=4096", "blksize=4096", "context=c",
		"fscontext=c", "defcontext=c", "rootcontext=c", "defaults",
		"auto", "noauto", "user", "nouser", "users", "owner", "group",
		"nofail", "_netdev", "atime", "relatime", "strictatime",
		"lazytime", "nolazytime", "iversion", "noiversion",
		"x-systemd.automount", "x-a=b", "comment=c", "comment",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		expect_accepted(good[i]);
}

/* A known option given the wrong shape is named for what it is, not as
 * unknown: a value for a flag, none for an option that needs one. */
static void test_flag_and_value_shapes(void **state)
{
	static const char *const flags[] = {
		"allow_other", "ro", "default_permissions", "noatime",
		"defaults", "nofail", "userxattr", "squash_to_root",
		"static_nlink", "noacl", "volatile",
	};
	static const struct {
		const char *opt, *msg;
	} missing[] = {
		{ "fsname", "fsname= needs a value" },
		{ "fsname=", "fsname= needs a value" },
		{ "subtype=", "subtype= needs a value" },
		{ "context=", "context= needs a value" },
		{ "max_read", "max_read= needs a value" },
		{ "plugins=", "plugins= needs a value" },
		{ "lowerdir", "lowerdir= needs at least one path" },
		{ "lowerdir=", "lowerdir= needs at least one path" },
		{ "lowerdir+", "lowerdir+= needs a path" },
		{ "upperdir", "upperdir= needs a path" },
		{ "workdir=", "workdir= needs a path" },
		{ "volstore", "volstore= needs a path" },
		/* options whose own message says what they expect */
		{ "whiteout", "whiteout=: expected auto, chardev, xattr or file" },
		{ "timeout", "timeout=: expected seconds, e.g. timeout=3600" },
		{ "squash_to_uid", "squash_to_uid=: expected a numeric id" },
		{ "index", "index=: invalid value for option index" },
		{ "bind", "bind=: expected SRC:DEST[:ro]" },
	};
	char opt[64], msg[128];

	for (size_t i = 0; i < sizeof(flags) / sizeof(*flags); i++) {
		snprintf(opt, sizeof(opt), "%s=1", flags[i]);
		snprintf(msg, sizeof(msg), "%s takes no value", flags[i]);
		expect_message(opt, msg);
		/* an empty value is a value too */
		snprintf(opt, sizeof(opt), "%s=", flags[i]);
		expect_message(opt, msg);
	}
	for (size_t i = 0; i < sizeof(missing) / sizeof(*missing); i++)
		expect_message(missing[i].opt, missing[i].msg);
	expect_message("max_read=lots", "max_read=lots: expected a number");
	expect_message("blksize=-1", "blksize=-1: expected a number");
}

static void test_split_escaped(void **state)
{
	char **parts;
	size_t n;

	assert_int_equal(ply_split_escaped("a:b\\:c::d\\\\", ':', &parts, &n),
			 0);
	assert_int_equal(n, 4);
	assert_string_equal(parts[0], "a");
	assert_string_equal(parts[1], "b:c");
	assert_string_equal(parts[2], "");
	assert_string_equal(parts[3], "d\\");
	ply_strv_free(parts, n);

	assert_int_equal(ply_split_escaped("", ',', &parts, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(parts[0], "");
	ply_strv_free(parts, n);

	/* many parts: the array grows */
	assert_int_equal(ply_split_escaped("1/2/3/4/5/6/7/8/9/10/11/12/13", '/',
					   &parts, &n),
			 0);
	assert_int_equal(n, 13);
	assert_string_equal(parts[12], "13");
	ply_strv_free(parts, n);

	/* a trailing lone backslash is kept as it is */
	assert_int_equal(ply_split_escaped("a\\", ':', &parts, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(parts[0], "a\\");
	ply_strv_free(parts, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lowerdir_split),
		cmocka_unit_test(test_lowerdir_escapes),
		cmocka_unit_test(test_escaped_comma),
		cmocka_unit_test(test_several_o_accumulate),
		cmocka_unit_test(test_lowerdir_plus_appends),
		cmocka_unit_test(test_empty_elements_skipped),
		cmocka_unit_test(test_empty_layer_path),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_layer_limit),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_threaded),
		cmocka_unit_test(test_compat_values),
		cmocka_unit_test(test_compat_named_once),
		cmocka_unit_test(test_fsync_and_whiteout),
		cmocka_unit_test(test_fuse_opts),
		cmocka_unit_test(test_mount_tokens_dropped),
		cmocka_unit_test(test_unknown_refused),
		cmocka_unit_test(test_every_option_known),
		cmocka_unit_test(test_flag_and_value_shapes),
		cmocka_unit_test(test_split_escaped),
	};

	return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
