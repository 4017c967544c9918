/* The command line as a user meets it: mounting in the foreground and as a
 * daemon, escapes and relative paths, 500 layers, compatibility options,
 * mount(8); and every refusal: exit 2, one line, nothing mounted, no
 * daemon left. */
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Waits (bounded) until none of our children is alive. */
static int children_after_grace(void)
{
	pid_t pids[8];
	int n = 0;

	for (int waited = 0; waited <= 1000; waited += H_POLL_MS * 10) {
		n = h_children(pids, 8);
		if (n == 0)
			break;
		usleep(H_POLL_MS * 10 * 1000);
	}
	return n;
}

/* After a failure: kills whatever of ours still runs, detaches mnt. */
static void kill_strays(const char *mnt)
{
	pid_t pids[8];
	int n = h_children(pids, 8);
	int status;

	for (int i = 0; i < n && i < 8; i++) {
		kill(pids[i], SIGKILL);
		h_wait(pids[i], H_EXIT_WAIT_MS, &status);
	}
	if (h_is_mountpoint(mnt))
		umount2(mnt, MNT_DETACH);
}

/* Runs plyfs with options opts on mnt (relative), expecting a refusal:
 * exit status 2, exactly one line on stderr starting with "plyfs: ",
 * mnt not mounted, no process of ours left. */
static void expect_refused(const char *opts, const char *mnt, bool fg)
{
	char mntp[PATH_MAX], errp[PATH_MAX];
	const char *argv[6];
	struct stat before, after;
	int status, i = 0;
	pid_t pid;
	char *err, *nl;

	h_mkdir(mnt);
	snprintf(mntp, sizeof(mntp), "%s", h_path("%s", mnt));
	snprintf(errp, sizeof(errp), "%s", h_path("refused.err"));
	h_assert_ok(stat(mntp, &before));
	argv[i++] = h_plyfs();
	if (fg)
		argv[i++] = "-f";
	argv[i++] = "-o";
	argv[i++] = opts;
	argv[i++] = mntp;
	argv[i] = NULL;

	pid = h_spawn(argv, NULL, NULL, NULL, errp);
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
		kill_strays(mntp);
		fail_msg("plyfs -o %.200s still running after %d ms", opts,
			 H_EXIT_WAIT_MS);
	}
	if (h_is_mountpoint(mntp)) {
		kill_strays(mntp);
		fail_msg("plyfs -o %.200s: mounted although refused", opts);
	}

	err = h_read(errp, NULL);
	print_message("plyfs -o %.200s: status 0x%x, stderr: %s", opts, status,
		      err);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
	nl = strchr(err, '\n');
	if (strncmp(err, "plyfs: ", 7) != 0 || !nl || nl[1] != '\0')
		fail_msg("stderr is not one line starting with \"plyfs: \"");
	free(err);
	h_assert_ok(stat(mntp, &after));
	assert_int_equal(after.st_dev, before.st_dev);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(children_after_grace(), 0);
}

/* A few lines of layer content to mount. */
static void two_layers(void)
{
	h_file("l1/f", "top");
	h_file("l2/f", "bottom");
	h_file("l2/g", "g");
}

static void foreground(void **state)
{
	struct h_mount *m;
	int status;

	two_layers();
	m = h_mount_lowers("mnt", "l1", "l2", NULL);
	h_assert_content(h_path("mnt/f"), "top");
	h_assert_content(h_path("mnt/g"), "g");
	assert_true(h_is_mountpoint(h_path("mnt")));

	/* the daemon leaves cleanly when unmounted */
	status = h_umount(m);
	assert_true(status != -1 && WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(h_is_mountpoint(h_path("mnt")));
	assert_false(h_dev_differs(h_path("mnt")));
	assert_int_equal(children_after_grace(), 0);
}

/* Without -f the first process exits 0 only once the mount is up. */
static void daemonize(void **state)
{
	struct h_run run;
	struct h_mount *m;
	int status;

	two_layers();
	h_mkdir("mnt");
	h_run(H_NAMES(h_plyfs(), "-o", h_lowerdir("l1", "l2", NULL),
		      h_path("mnt")),
	      NULL, NULL, &run);
	/* checked at once: no waiting for the mount to show up */
	if (!h_dev_differs(h_path("mnt"))) {
		kill_strays(h_path("mnt"));
		fail_msg("plyfs exited (status 0x%x) before the mount was up",
			 run.status);
	}
	m = h_adopt(h_path("mnt"));
	assert_true(WIFEXITED(run.status));
	assert_int_equal(WEXITSTATUS(run.status), 0);
	h_run_free(&run);
	h_assert_content(h_path("mnt/f"), "top");

	status = h_umount(m);
	assert_true(status != -1 && WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(children_after_grace(), 0);
}

/* A SOURCE word before the mountpoint (as mount.fuse3 passes) is fine. */
static void source_argument(void **state)
{
	two_layers();
	h_mkdir("mnt");
	h_mount_argv(H_NAMES(h_plyfs(), "-f", "-o",
			     h_lowerdir("l1", "l2", NULL), "plyfs",
			     h_path("mnt")),
		     NULL, h_path("mnt"));
	h_assert_content(h_path("mnt/f"), "top");
}

/* The generic mount flags that mount(8) and mount.fuse3 add. */
static void generic_flags(void **state)
{
	struct h_mount *m;

	two_layers();
	m = h_mount(h_fmt("rw,%s,dev,suid", h_lowerdir("l1", "l2", NULL)),
		    "mnt");
	h_assert_content(h_path("mnt/f"), "top");
	h_umount(m);
	h_mount(h_fmt("ro,nodev,nosuid,%s", h_lowerdir("l1", "l2", NULL)),
		"mnt");
	h_assert_content(h_path("mnt/g"), "g");
}

/* "\:" is a colon inside a layer path. */
static void escape_colon(void **state)
{
	h_file("a:b/f", "colon layer");
	h_file("a:b/:x", "colon name");
	h_file("c/g", "c");
	h_mount(h_fmt("lowerdir=%s:%s", h_path("a\\:b"), h_path("c")),
		"mnt");
	h_assert_content(h_path("mnt/f"), "colon layer");
	h_assert_content(h_path("mnt/:x"), "colon name");
	h_assert_content(h_path("mnt/g"), "c");
	h_assert_listing(h_path("mnt"), H_NAMES("f", ":x", "g"));
}

/* "\," is a comma inside the -o string. */
static void escape_comma(void **state)
{
	h_file("c,d/f", "comma layer");
	h_file("e/g", "e");
	h_mount(h_fmt("lowerdir=%s:%s,timeout=1", h_path("c\\,d"),
		      h_path("e")),
		"mnt");
	h_assert_content(h_path("mnt/f"), "comma layer");
	h_assert_content(h_path("mnt/g"), "e");
}

/* Relative layers and mountpoint are resolved at start. */
static void relative_paths(void **state)
{
	char root[PATH_MAX];

	two_layers();
	h_file("sub/l3/h", "h");
	h_mkdir("mnt");
	snprintf(root, sizeof(root), "%s", h_path("."));
	h_mount_argv(H_NAMES(h_plyfs(), "-f", "-o",
			     "lowerdir=l1:./l2:sub/../sub/l3", "mnt"),
		     root, h_path("mnt"));
	h_assert_content(h_path("mnt/f"), "top");
	h_assert_content(h_path("mnt/h"), "h");
	h_assert_listing(h_path("mnt"), H_NAMES("f", "g", "h"));
}

/* "lowerdir=" with n layers l000.., each holding its own file and "c". */
static char *many_layers(int n)
{
	size_t cap = 64 + (size_t)n * (strlen(h_path(".")) + 8);
	char *opts = malloc(cap);
	size_t len;

	assert_non_null(opts);
	len = snprintf(opts, cap, "lowerdir=");
	for (int i = 0; i < n; i++) {
		h_file(h_fmt("l%03d/f-%03d", i, i), "x");
		h_file(h_fmt("l%03d/c", i), h_fmt("%d", i));
		len += snprintf(opts + len, cap - len, "%s%s", i ? ":" : "",
				h_path("l%03d", i));
		assert_true(len < cap);
	}
	return opts;
}

static void layers_500(void **state)
{
	char *opts = many_layers(500);
	size_t n;
	char **v;

	h_mount(opts, "mnt");
	free(opts);
	h_assert_content(h_path("mnt/c"), "0");
	h_assert_content(h_path("mnt/f-000"), "x");
	h_assert_content(h_path("mnt/f-499"), "x");
	v = h_listdir(h_path("mnt"), &n);
	assert_int_equal(n, 500 + 3);
	h_strv_free(v, n);
}

static void layers_501(void **state)
{
	char *opts = many_layers(501);

	expect_refused(opts, "mnt", true);
	free(opts);
}

static void refuse_no_lowerdir(void **state)
{
	two_layers();
	expect_refused("timeout=1", "mnt", true);
}

static void refuse_empty_lowerdir(void **state)
{
	expect_refused("lowerdir=", "mnt", true);
}

static void refuse_missing_layer(void **state)
{
	two_layers();
	expect_refused(h_lowerdir("l1", "nothere", NULL), "mnt", true);
}

static void refuse_missing_layer_daemon(void **state)
{
	two_layers();
	expect_refused(h_lowerdir("l1", "nothere", NULL), "mnt", false);
}

static void refuse_layer_is_file(void **state)
{
	two_layers();
	expect_refused(h_lowerdir("l1", "l2/g", NULL), "mnt", true);
}

static void refuse_same_layer_twice(void **state)
{
	two_layers();
	expect_refused(h_lowerdir("l1", "l2", "l1", NULL), "mnt", true);
}

static void refuse_same_layer_respelled(void **state)
{
	two_layers();
	expect_refused(h_fmt("lowerdir=%s:%s/:%s", h_path("l2"),
			     h_path("l1"), h_path("l2/../l1/.")),
		       "mnt", true);
}

static void refuse_mnt_inside_layer(void **state)
{
	two_layers();
	expect_refused(h_lowerdir("l1", "l2", NULL), "l2/mnt", true);
}

static void refuse_layer_inside_mnt(void **state)
{
	two_layers();
	h_file("mnt/l3/x", "x");
	expect_refused(h_lowerdir("l1", "mnt/l3", NULL), "mnt", true);
}

static void refuse_bad_fsync(void **state)
{
	two_layers();
	expect_refused(h_fmt("%s,fsync=banana", h_lowerdir("l1", NULL)),
		       "mnt", true);
}

static void refuse_bad_timeout(void **state)
{
	two_layers();
	expect_refused(h_fmt("%s,timeout=abc", h_lowerdir("l1", NULL)),
		       "mnt", true);
}

static void refuse_unknown_option(void **state)
{
	two_layers();
	expect_refused(h_fmt("%s,bogusopt", h_lowerdir("l1", NULL)), "mnt",
		       true);
}

static void refuse_unknown_option_daemon(void **state)
{
	two_layers();
	expect_refused(h_fmt("%s,bogusopt", h_lowerdir("l1", NULL)), "mnt",
		       false);
}

/* fuse-overlayfs options are accepted; a warning, if any, names the
 * option it is about. */
static void compat_options(void **state)
{
	static const char *const opts[] = {
		"uidmapping=0:0:65536", "gidmapping=0:0:65536",
		"squash_to_root", "xattr_permissions=0", "fsync=0",
		"noacl", "threaded=1", "threaded=0", "volatile",
		"static_nlink", "timeout=0", "timeout=2.5",
	};

	two_layers();
	for (size_t i = 0; i < sizeof(opts) / sizeof(*opts); i++) {
		char name[64];
		struct h_mount *m;
		char *err, *line, *save = NULL;

		snprintf(name, sizeof(name), "%.*s",
			 (int)strcspn(opts[i], "="), opts[i]);
		print_message("option %s\n", opts[i]);
		m = h_mount(h_fmt("%s,%s", h_lowerdir("l1", "l2", NULL),
				  opts[i]),
			    "mnt");
		h_assert_content(h_path("mnt/f"), "top");
		err = h_read(m->errlog, NULL);
		for (line = strtok_r(err, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (!strstr(line, name))
				fail_msg("with %s, stderr says: %s", opts[i],
					 line);
		}
		free(err);
		h_umount(m);
	}
}

/* mount(8) with the "fuse" type and "PROGRAM#SOURCE": the path mount.fuse3
 * takes for -t fuse.plyfs, with the built daemon. */
static void mount_helper_program(void **state)
{
	struct h_run run;
	struct h_mount *m = NULL;

	h_need_root();
	if (access("/sbin/mount.fuse3", X_OK) < 0 &&
	    access("/usr/sbin/mount.fuse3", X_OK) < 0)
		skip();
	h_file("a:b/f", "top");
	h_file("c/g", "g");
	h_mkdir("mnt");
	h_run(H_NAMES("/bin/mount", "-t", "fuse",
		      h_fmt("%s#plyfs", h_plyfs()), h_path("mnt"), "-o",
		      h_fmt("lowerdir=%s:%s", h_path("a\\:b"), h_path("c"))),
	      NULL, NULL, &run);
	print_message("mount: status 0x%x, stderr: %s", run.status, run.err);
	if (h_is_mountpoint(h_path("mnt")))
		m = h_adopt(h_path("mnt"));
	assert_int_equal(run.status, 0);
	h_run_free(&run);
	assert_non_null(m);
	assert_true(h_dev_differs(h_path("mnt")));
	h_assert_content(h_path("mnt/f"), "top");
	h_assert_content(h_path("mnt/g"), "g");
	assert_int_equal(h_umount(m), 0);
}

/* mount -t fuse.plyfs finds plyfs only where /bin/sh looks without a PATH
 * (mount(8) clears it): an installed plyfs. */
static void mount_type_fuse_plyfs(void **state)
{
	static const char *const dirs[] = {
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
		"/sbin", "/bin",
	};
	struct h_run run;
	struct h_mount *m = NULL;
	bool found = false;

	h_need_root();
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++)
		found = found || access(h_fmt("%s/plyfs", dirs[i]), X_OK) == 0;
	if (!found) {
		print_message("no installed plyfs\n");
		skip();
	}
	two_layers();
	h_mkdir("mnt");
	h_run(H_NAMES("/bin/mount", "-t", "fuse.plyfs", "plyfs",
		      h_path("mnt"), "-o", h_lowerdir("l1", "l2", NULL)),
	      NULL, NULL, &run);
	print_message("mount: status 0x%x, stderr: %s", run.status, run.err);
	if (h_is_mountpoint(h_path("mnt")))
		m = h_adopt(h_path("mnt"));
	assert_int_equal(run.status, 0);
	h_run_free(&run);
	assert_non_null(m);
	h_assert_content(h_path("mnt/f"), "top");
	assert_int_equal(h_umount(m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(foreground),
		H_TEST(daemonize),
		H_TEST(source_argument),
		H_TEST(generic_flags),
		H_TEST(escape_colon),
		H_TEST(escape_comma),
		H_TEST(relative_paths),
		H_TEST(layers_500),
		H_TEST(layers_501),
		H_TEST(refuse_no_lowerdir),
		H_TEST(refuse_empty_lowerdir),
		H_TEST(refuse_missing_layer),
		H_TEST(refuse_missing_layer_daemon),
		H_TEST(refuse_layer_is_file),
		H_TEST(refuse_same_layer_twice),
		H_TEST(refuse_same_layer_respelled),
		H_TEST(refuse_mnt_inside_layer),
		H_TEST(refuse_layer_inside_mnt),
		H_TEST(refuse_bad_fsync),
		H_TEST(refuse_bad_timeout),
		H_TEST(refuse_unknown_option),
		H_TEST(refuse_unknown_option_daemon),
		H_TEST(compat_options),
		H_TEST(mount_helper_program),
		H_TEST(mount_type_fuse_plyfs),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
