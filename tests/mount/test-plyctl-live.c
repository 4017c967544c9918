/* test-plyctl-live.c: plyctl given the mountpoint of a running plyfs in
 * place of -o OPTS. The daemon publishes a record of its stack (in
 * $XDG_RUNTIME_DIR/plyfs/mounts, here a directory of the test), named by
 * the mountpoint's st_dev and st_ino; diff, which, export, commit and
 * check through it give what -o gives, after changes made through the
 * mount; the record is gone after the unmount and plyctl then says "no
 * running plyfs at MNT" (exit 2); a record naming a dead or foreign pid or
 * another mountpoint is not trusted; a daemonized plyfs has its record
 * name the daemon before its parent returns; paths with ',' and ':' are
 * escaped in the record. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char *plyctl(void)
{
	const char *p = getenv("PLYCTL");

	if (!p)
		fail_msg("$PLYCTL is not set");
	return p;
}

/* Runs plyctl ARGS in cwd (NULL: ours); the exit status. */
static int run_plyctl_in(const char *cwd, const char *const args[],
			 struct h_run *ret)
{
	const char *argv[32] = { plyctl() };
	size_t n = 1;

	for (size_t i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	h_run(argv, cwd, NULL, ret);
	if (!WIFEXITED(ret->status))
		fail_msg("plyctl %s: killed (status 0x%x)", args[0],
			 ret->status);
	return WEXITSTATUS(ret->status);
}

static int run_plyctl(const char *const args[], struct h_run *ret)
{
	return run_plyctl_in(NULL, args, ret);
}

/* The same exit status and output from both argument lists. */
static void assert_same(const char *const a[], const char *const b[],
			int want_status)
{
	struct h_run ra, rb;
	int sa = run_plyctl(a, &ra), sb = run_plyctl(b, &rb);

	if (sa != want_status || sb != want_status)
		fail_msg("plyctl %s: exit %d and %d, expected %d:\n%s%s\n%s%s",
			 a[0], sa, sb, want_status, ra.out, ra.err, rb.out,
			 rb.err);
	if (strcmp(ra.out, rb.out))
		fail_msg("plyctl %s: output differs:\n--- MNT\n%s--- -o\n%s",
			 a[0], ra.out, rb.out);
	h_run_free(&ra);
	h_run_free(&rb);
}

static void assert_files_equal(const char *a, const char *b)
{
	size_t la, lb;
	char *da = h_read(a, &la), *db = h_read(b, &lb);

	if (la != lb || memcmp(da, db, la))
		fail_msg("%s and %s differ (%zu and %zu bytes)", a, b, la, lb);
	free(da);
	free(db);
}

/* plyctl ARGS exits 2 saying there is no running plyfs at MNT. */
static void assert_not_running(const char *const args[], const char *mnt)
{
	struct h_run run;
	int st = run_plyctl(args, &run);

	if (st != 2 || !strstr(run.err, h_fmt("no running plyfs at %s", mnt)))
		fail_msg("plyctl %s %s: exit %d, stderr: %s", args[0], mnt, st,
			 run.err);
	h_run_free(&run);
}

/* Our own runtime directory: the daemons we start and the plyctl we run
 * inherit it. */
static const char *runtime_dir(void)
{
	h_mkdir("run");
	chmod(h_path("run"), 0700);
	setenv("XDG_RUNTIME_DIR", h_path("run"), 1);
	return h_path("run/plyfs/mounts");
}

/* The record of the plyfs mounted at mnt, where plyctl looks for it. */
static const char *record_of(const char *mnt)
{
	struct stat st;

	h_assert_ok(stat(mnt, &st));
	return h_fmt("%s/%llu-%llu", h_path("run/plyfs/mounts"),
		     (unsigned long long)st.st_dev,
		     (unsigned long long)st.st_ino);
}

static void make_stack(void)
{
	h_file("l2/etc/hosts", "127.0.0.1 lower\n");
	h_file("l2/data/a", "aaa\n");
	h_file("l2/data/gone", "gone\n");
	h_file("l2/data/sub/b", "bbb\n");
	h_file("l1/etc/motd", "hello\n");
	h_mkdir("u");
	h_mkdir("w");
}

static const char *stack_opts(void)
{
	return h_fmt("%s,upperdir=%s,workdir=%s", h_lowerdir("l1", "l2", NULL),
		     h_path("u"), h_path("w"));
}

/* Changes of each kind, made through the mount. */
static void change_through(const char *mnt)
{
	FILE *f;

	f = fopen(h_fmt("%s/data/a", mnt), "a");
	assert_non_null(f);
	fputs("more\n", f);
	fclose(f);
	h_assert_ok(unlink(h_fmt("%s/data/gone", mnt)));
	h_assert_ok(mkdir(h_fmt("%s/data/newdir", mnt), 0755));
	f = fopen(h_fmt("%s/data/newdir/n", mnt), "w");
	assert_non_null(f);
	fputs("new\n", f);
	fclose(f);
	h_assert_ok(rename(h_fmt("%s/etc/motd", mnt),
			   h_fmt("%s/etc/motd2", mnt)));
}

static void test_live_like_offline(void **state)
{
	char o[4 * PATH_MAX], mnt[PATH_MAX], rec[PATH_MAX], dir[PATH_MAX];
	struct h_mount *m;
	struct h_run run;
	char *text;
	size_t len;

	snprintf(dir, sizeof(dir), "%s", runtime_dir());
	make_stack();
	snprintf(o, sizeof(o), "%s", stack_opts());
	m = h_mount(o, "mnt");
	snprintf(mnt, sizeof(mnt), "%s", h_path("mnt"));
	change_through(mnt);

	/* the record: named by the mountpoint's stat, the daemon's pid */
	snprintf(rec, sizeof(rec), "%s", record_of(mnt));
	text = h_read(rec, &len);
	if (!strstr(text, h_fmt("\npid %ld\n", (long)m->pid)) ||
	    !strstr(text, h_fmt("\nmountpoint %s\n", mnt)) ||
	    !strstr(text, h_fmt("\noptions %s\n", o)))
		fail_msg("record %s:\n%s", rec, text);
	free(text);
	assert_true(strncmp(rec, dir, strlen(dir)) == 0);

	assert_same(H_NAMES("diff", mnt), H_NAMES("diff", "-o", o), 0);
	assert_same(H_NAMES("diff", "--json", mnt),
		    H_NAMES("diff", "-o", o, "--json"), 0);
	assert_same(H_NAMES("which", mnt, "/data/a"),
		    H_NAMES("which", "-o", o, "/data/a"), 0);
	assert_same(H_NAMES("which", mnt, "/data/gone"),
		    H_NAMES("which", "-o", o, "/data/gone"), 1);
	assert_same(H_NAMES("which", mnt, "/etc/motd2"),
		    H_NAMES("which", "-o", o, "/etc/motd2"), 0);
	/* the diff holds what was done */
	assert_int_equal(run_plyctl(H_NAMES("diff", mnt), &run), 0);
	assert_non_null(strstr(run.out, "C /data/a\n"));
	assert_non_null(strstr(run.out, "D /data/gone\n"));
	assert_non_null(strstr(run.out, "A /data/newdir/n\n"));
	assert_non_null(strstr(run.out, "A /etc/motd2\n"));
	h_run_free(&run);
	/* a relative MNT */
	assert_int_equal(run_plyctl_in(h_path("."), H_NAMES("diff", "mnt"),
				       &run), 0);
	h_run_free(&run);

	assert_same(H_NAMES("export", mnt, "-f", h_path("e1.tar")),
		    H_NAMES("export", "-o", o, "-f", h_path("e2.tar")), 0);
	assert_files_equal(h_path("e1.tar"), h_path("e2.tar"));
	assert_same(H_NAMES("commit", mnt, h_path("c1.tar")),
		    H_NAMES("commit", "-o", o, h_path("c2.tar")), 0);
	assert_files_equal(h_path("c1.tar"), h_path("c2.tar"));
	assert_same(H_NAMES("commit", "--squash", mnt, h_path("s1.tar")),
		    H_NAMES("commit", "--squash", "-o", o, h_path("s2.tar")),
		    0);
	assert_files_equal(h_path("s1.tar"), h_path("s2.tar"));

	/* check reads beside the mount; --repair is refused */
	assert_int_equal(run_plyctl(H_NAMES("check", mnt), &run), 0);
	assert_non_null(strstr(run.out, "no problems found"));
	h_run_free(&run);
	assert_int_equal(run_plyctl(H_NAMES("check", "--repair", mnt), &run),
			 1);
	assert_non_null(strstr(run.err, "unmount it first"));
	h_run_free(&run);

	/* both forms at once, or neither: usage errors */
	assert_int_equal(run_plyctl(H_NAMES("diff", "-o", o, mnt), &run), 2);
	h_run_free(&run);
	assert_int_equal(run_plyctl(H_NAMES("diff"), &run), 2);
	assert_non_null(strstr(run.err, "no stack given"));
	h_run_free(&run);

	/* the mount still serves what it did */
	h_assert_content(h_fmt("%s/data/a", mnt), "aaa\nmore\n");
	assert_int_equal(h_umount(m), 0);
	if (access(rec, F_OK) == 0)
		fail_msg("record %s left after the unmount", rec);
	assert_not_running(H_NAMES("diff", mnt), mnt);
	assert_not_running(H_NAMES("which", mnt, "/data/a"), mnt);
	assert_not_running(H_NAMES("export", mnt, "-f", h_path("e3.tar")),
			   mnt);
	assert_not_running(H_NAMES("commit", mnt, h_path("c3.tar")), mnt);
	assert_not_running(H_NAMES("check", mnt), mnt);
	/* a plain directory, a missing one */
	assert_not_running(H_NAMES("diff", h_path("u")), h_path("u"));
	assert_not_running(H_NAMES("diff", h_path("nowhere")),
			   h_path("nowhere"));
}

/* Rewrites the record with its "pid" line (or another key's) replaced. */
static void rewrite_record(const char *rec, const char *saved,
			   const char *key, const char *value)
{
	char out[8192] = "";
	const char *p = saved;
	FILE *f;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);

		if (!strncmp(p, key, strlen(key)) && p[strlen(key)] == ' ')
			snprintf(out + strlen(out), sizeof(out) - strlen(out),
				 "%s %s\n", key, value);
		else
			snprintf(out + strlen(out), sizeof(out) - strlen(out),
				 "%.*s", (int)n, p);
		p += n;
	}
	f = fopen(h_fmt("%s.new", rec), "w");
	assert_non_null(f);
	fputs(out, f);
	fclose(f);
	h_assert_ok(rename(h_fmt("%s.new", rec), rec));
}

static void test_stale_record(void **state)
{
	char o[4 * PATH_MAX], mnt[PATH_MAX], rec[PATH_MAX];
	struct h_mount *m;
	struct h_run run;
	char *saved;
	size_t len;
	pid_t dead;
	int st;

	runtime_dir();
	make_stack();
	snprintf(o, sizeof(o), "%s", stack_opts());
	m = h_mount(o, "mnt");
	snprintf(mnt, sizeof(mnt), "%s", h_path("mnt"));
	snprintf(rec, sizeof(rec), "%s", record_of(mnt));
	saved = h_read(rec, &len);

	/* a pid that is no more */
	dead = fork();
	if (dead == 0)
		_exit(0);
	assert_true(dead > 0);
	assert_int_equal(waitpid(dead, &st, 0), dead);
	rewrite_record(rec, saved, "pid", h_fmt("%ld", (long)dead));
	assert_not_running(H_NAMES("diff", mnt), mnt);
	assert_int_equal(run_plyctl(H_NAMES("diff", mnt), &run), 2);
	assert_non_null(strstr(run.err, "stale"));
	h_run_free(&run);
	/* a live process that is not plyfs: ourselves */
	rewrite_record(rec, saved, "pid", h_fmt("%ld", (long)getpid()));
	assert_not_running(H_NAMES("diff", mnt), mnt);
	/* another mountpoint */
	rewrite_record(rec, saved, "mountpoint", h_path("elsewhere"));
	assert_not_running(H_NAMES("diff", mnt), mnt);
	/* no record at all */
	h_assert_ok(unlink(rec));
	assert_not_running(H_NAMES("diff", mnt), mnt);
	/* put back: trusted again */
	rewrite_record(rec, saved, "pid", h_fmt("%ld", (long)m->pid));
	assert_int_equal(run_plyctl(H_NAMES("diff", mnt), &run), 0);
	h_run_free(&run);
	assert_int_equal(h_umount(m), 0);

	/* a daemon killed leaves its record; plyctl does not trust it, and
	 * the next mount sweeps it away (the record of a dead daemon under
	 * another name stands for it: the new mount may get the old name) */
	m = h_mount(o, "mnt");
	snprintf(rec, sizeof(rec), "%s", record_of(mnt));
	h_crash(m);
	assert_int_equal(access(rec, F_OK), 0);
	assert_not_running(H_NAMES("diff", mnt), mnt);
	h_umount(m);
	rewrite_record(h_path("run/plyfs/mounts/1-1"), saved, "pid",
		       h_fmt("%ld", (long)dead));
	m = h_mount(o, "mnt2");
	if (access(h_path("run/plyfs/mounts/1-1"), F_OK) == 0)
		fail_msg("the stale record 1-1 was not swept");
	free(saved);
	assert_int_equal(h_umount(m), 0);
}

/* Without -f: the parent returns with the record naming the daemon. */
static void test_daemonized(void **state)
{
	char o[4 * PATH_MAX], mnt[PATH_MAX], rec[PATH_MAX];
	struct h_mount *m;
	struct h_run run, d;
	char *text;
	size_t len;

	runtime_dir();
	make_stack();
	snprintf(o, sizeof(o), "%s", stack_opts());
	h_mkdir("mnt");
	snprintf(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_run(H_NAMES(h_plyfs(), "-o", o, mnt), NULL, NULL, &run);
	if (!h_dev_differs(mnt))
		fail_msg("plyfs exited (status 0x%x) before the mount was up: %s",
			 run.status, run.err);
	m = h_adopt(mnt);
	/* at once: the record names the daemon, not the parent that left */
	assert_int_equal(run_plyctl(H_NAMES("diff", mnt), &d), 0);
	h_run_free(&d);
	assert_true(WIFEXITED(run.status));
	assert_int_equal(WEXITSTATUS(run.status), 0);
	h_run_free(&run);
	snprintf(rec, sizeof(rec), "%s", record_of(mnt));
	text = h_read(rec, &len);
	if (!strstr(text, h_fmt("\npid %ld\n", (long)m->pid)))
		fail_msg("record %s does not name the daemon %ld:\n%s", rec,
			 (long)m->pid, text);
	free(text);
	assert_int_equal(h_umount(m), 0);
	assert_int_not_equal(access(rec, F_OK), 0);
}

/* Layer paths with ',', ':' and '\' come back through the record. */
static void test_escaped_paths(void **state)
{
	char o[4 * PATH_MAX], mnt[PATH_MAX];
	struct h_mount *m;
	struct h_run run;

	runtime_dir();
	h_file("a,b/f", "top\n");
	h_file("c:d/g", "low\n");
	h_file("e\\f/h", "lowest\n");
	h_mkdir("u,1");
	h_mkdir("w:1");
	snprintf(o, sizeof(o),
		 "lowerdir=%s:%s:%s,upperdir=%s,workdir=%s",
		 h_path("a\\,b"), h_path("c\\:d"), h_path("e\\\\f"),
		 h_path("u\\,1"), h_path("w\\:1"));
	m = h_mount(o, "mnt");
	snprintf(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_assert_content(h_fmt("%s/h", mnt), "lowest\n");
	h_assert_ok(unlink(h_fmt("%s/g", mnt)));
	assert_same(H_NAMES("diff", mnt), H_NAMES("diff", "-o", o), 0);
	assert_same(H_NAMES("which", mnt, "/h"),
		    H_NAMES("which", "-o", o, "/h"), 0);
	assert_int_equal(run_plyctl(H_NAMES("which", mnt, "/h"), &run), 0);
	assert_non_null(strstr(run.out, h_path("e\\f")));
	h_run_free(&run);
	assert_int_equal(h_umount(m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(test_live_like_offline),
		H_TEST(test_stale_record),
		H_TEST(test_daemonized),
		H_TEST(test_escaped_paths),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
