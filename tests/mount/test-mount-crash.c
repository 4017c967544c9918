/* Crashes: kill -9 of the daemon at seeded random moments during copy-ups
 * (large and small files, metadata-only ones), renames of files and of
 * directories with lower content, unlinks and rmdirs, and hard-link
 * copy-ups; after each kill the dead mount is unmounted, the stack mounted
 * again, and every file must show its old content or its new content in
 * full, no marker or temporary may show, and w/work must hold no
 * "#plyfs-*", and `plyctl check` of the stack must report nothing. Kills
 * while a new volume is being filled must not leave a half-filled volume
 * that the next mount takes as filled. Also: a mount onto a dead mountpoint
 * is refused, and a full upper (ENOSPC mid copy-up) leaves nothing
 * behind. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define KiB 1024L
#define MiB (1024L * 1024)

/* Each op runs as a sequence of atomic steps; after a crash every step
 * must read as done ("new") or not done ("old"), the done ones a prefix. */
enum { ST_BAD = -1, ST_OLD = 0, ST_NEW = 1 };

struct kind {
	const char *name;
	int kills;			 /* at scale 1 */
	int (*build)(void);		 /* the lower layers; the steps */
	void (*prep)(const char *mnt);	 /* through the mount, no kill */
	int (*step)(const char *mnt, int i);	 /* in the child: 0 or -1 */
	int (*state)(const char *mnt, int i);	 /* after the remount */
};

static unsigned long long rng;

static unsigned long long next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static const char *opts(void)
{
	return h_fmt("%s,upperdir=%s,workdir=%s", h_lowerdir("l1", "l2", NULL),
		     h_path("u"), h_path("w"));
}

static struct h_mount *mount_rw(void)
{
	return h_mount(opts(), "mnt");
}

/* Empties the upper and work directories: every cycle starts afresh. */
static void reset_upper(void)
{
	int root = open(h_path("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(root >= 0);
	assert_int_equal(h_rm_at(root, "u"), 0);
	assert_int_equal(h_rm_at(root, "w"), 0);
	close(root);
	h_mkdir("u");
	h_mkdir("w");
}

static int temps_in(const char *dir, bool print)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "#plyfs-", 7))
			continue;
		if (print)
			print_error("%s/%s left behind\n", dir, de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* No marker or temporary anywhere in the merged view. */
static void assert_no_markers(const char *mnt)
{
	struct h_tree t;

	h_tree_walk(mnt, &t);
	for (size_t i = 0; i < t.n; i++) {
		const char *base = strrchr(t.v[i].path, '/');

		base = base ? base + 1 : t.v[i].path;
		if (!strncmp(base, ".wh.", 4) || !strncmp(base, "#plyfs", 6) ||
		    !strncmp(base, ".plyfs", 6))
			fail_msg("%s/%s: a marker or temporary shows in the "
				 "merged view", mnt, t.v[i].path);
		if (S_ISCHR(t.v[i].mode) && t.v[i].rdev == 0)
			fail_msg("%s/%s: a whiteout shows", mnt, t.v[i].path);
	}
	h_tree_free(&t);
}

static int append_to(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	ssize_t len = strlen(data);

	if (fd < 0)
		return -1;
	if (write(fd, data, len) != len) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* 1: exists, 0: ENOENT, -1 other error. */
static int exists(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	print_error("lstat %s: %s\n", path, strerror(errno));
	return -1;
}

/* Is path's content exactly (size, hash)? */
static bool has_hash(const char *path, off_t size, uint64_t hash)
{
	off_t got_size;
	uint64_t got = h_hash_file(path, &got_size);

	return got_size == size && got == hash;
}

/* ---- large copy-up: 64 MiB, one appended byte --------------------------- */

static off_t big_len;
static uint64_t big_old, big_new;

static int big_build(void)
{
	big_len = 64 * MiB;
	h_file_pattern("l2/big", big_len, 1);
	h_file("l2/other", "other");
	big_old = h_pattern_hash(big_len, 1);
	big_new = h_hash_data(big_old, "N", 1);
	return 1;
}

static int big_step(const char *mnt, int i)
{
	(void)i;
	return append_to(h_fmt("%s/big", mnt), "N");
}

static int big_state(const char *mnt, int i)
{
	const char *p = h_fmt("%s/big", mnt);
	off_t size;
	uint64_t h = h_hash_file(p, &size);

	(void)i;
	if (size == big_len && h == big_old)
		return ST_OLD;
	if (size == big_len + 1 && h == big_new)
		return ST_NEW;
	print_error("%s: %lld bytes, hash %016llx: neither old nor new\n", p,
		    (long long)size, (unsigned long long)h);
	return ST_BAD;
}

/* ---- small copy-ups, some metadata-only first --------------------------- */

#define NSMALL 24
static const off_t small_len[] = { 0,	  1,	  100,	    4095,  4096,
				   4097,  8192,	  65535,    65536, 65537,
				   12345, 200000, 300 * KiB, 1000,  3,
				   77777, 4096,	  1,	    0,	   131072,
				   5000,  9999,	  250000,   42 };
static uint64_t small_old[NSMALL], small_new[NSMALL];

/* Step 2k appends to file k; for k % 3 == 0 a chmod comes first, so the
 * steps are: (chmod k)? append k. */
static int small_steps[2 * NSMALL][2]; /* file, 0 chmod / 1 append */
static int small_nsteps;

static int small_build(void)
{
	small_nsteps = 0;
	for (int k = 0; k < NSMALL; k++) {
		const char *layer = k % 4 == 1 ? "l1" : "l2";

		h_file_pattern(h_fmt("%s/s/f%02d", layer, k), small_len[k],
			       100 + k);
		small_old[k] = h_pattern_hash(small_len[k], 100 + k);
		small_new[k] = h_hash_data(small_old[k], "+", 1);
		if (k % 3 == 0) {
			small_steps[small_nsteps][0] = k;
			small_steps[small_nsteps++][1] = 0;
		}
		small_steps[small_nsteps][0] = k;
		small_steps[small_nsteps++][1] = 1;
	}
	/* a shadowed copy below the one of l1 */
	h_file("l2/s/f01", "shadowed");
	return small_nsteps;
}

static int small_step(const char *mnt, int i)
{
	int k = small_steps[i][0];
	const char *p = h_fmt("%s/s/f%02d", mnt, k);

	if (small_steps[i][1] == 0)
		return chmod(p, 0600);
	return append_to(p, "+");
}

static int small_state(const char *mnt, int i)
{
	int k = small_steps[i][0];
	const char *p = h_fmt("%s/s/f%02d", mnt, k);
	struct stat st;

	if (lstat(p, &st) < 0) {
		print_error("lstat %s: %s\n", p, strerror(errno));
		return ST_BAD;
	}
	if (small_steps[i][1] == 0) {
		if ((st.st_mode & 07777) == 0644)
			return ST_OLD;
		if ((st.st_mode & 07777) == 0600)
			return ST_NEW;
		print_error("%s: mode %o\n", p, st.st_mode & 07777);
		return ST_BAD;
	}
	if (has_hash(p, small_len[k], small_old[k]))
		return ST_OLD;
	if (has_hash(p, small_len[k] + 1, small_new[k]))
		return ST_NEW;
	print_error("%s: %lld bytes, neither old nor new content\n", p,
		    (long long)st.st_size);
	return ST_BAD;
}

/* ---- renames of files and of directories with lower content ------------- */

#define NRF 8
#define NRD 4

static int ren_build(void)
{
	for (int k = 0; k < NRF; k++)
		h_file_pattern(h_fmt("%s/r/f%d", k % 3 ? "l2" : "l1", k),
			       10 * KiB + k, 200 + k);
	for (int k = 0; k < NRD; k++) {
		h_file(h_fmt("l2/r/d%d/a", k), h_fmt("a%d", k));
		h_file(h_fmt("l2/r/d%d/b", k), h_fmt("b%d", k));
		h_file(h_fmt("l1/r/d%d/c", k), h_fmt("c%d", k));
		h_file(h_fmt("l2/r/d%d/sub/x", k), h_fmt("x%d", k));
		h_file(h_fmt("l1/r/d%d/sub/y", k), h_fmt("y%d", k));
	}
	h_mkdir("l2/r2");
	return NRF + NRD;
}

/* Steps 0..NRF-1 rename files (odd ones into r2/), then the directories
 * (d0, d1 within r/, d2, d3 into r2/). */
static void ren_names(const char *mnt, int i, const char **from,
		      const char **to)
{
	if (i < NRF) {
		*from = h_fmt("%s/r/f%d", mnt, i);
		*to = h_fmt("%s/%s/g%d", mnt, i % 2 ? "r2" : "r", i);
	} else {
		int k = i - NRF;

		*from = h_fmt("%s/r/d%d", mnt, k);
		*to = h_fmt("%s/%s/e%d", mnt, k < 2 ? "r" : "r2", k);
	}
}

static int ren_step(const char *mnt, int i)
{
	const char *from, *to;

	ren_names(mnt, i, &from, &to);
	return rename(from, to);
}

static bool dir_ok(const char *d, int k)
{
	static const char *const names[] = { "a", "b", "c", "sub", NULL };
	size_t len;
	char *s;
	bool ok = true;

	h_assert_listing(d, names);
	h_assert_listing(h_fmt("%s/sub", d), H_NAMES("x", "y"));
	for (const char *const *n = names; *n && ok; n++) {
		if (!strcmp(*n, "sub"))
			continue;
		s = h_read(h_fmt("%s/%s", d, *n), &len);
		ok = !strcmp(s, h_fmt("%s%d", *n, k));
		free(s);
	}
	s = h_read(h_fmt("%s/sub/x", d), &len);
	ok = ok && !strcmp(s, h_fmt("x%d", k));
	free(s);
	s = h_read(h_fmt("%s/sub/y", d), &len);
	ok = ok && !strcmp(s, h_fmt("y%d", k));
	free(s);
	if (!ok)
		print_error("%s: wrong content\n", d);
	return ok;
}

static int ren_state(const char *mnt, int i)
{
	const char *from, *to;
	char f[PATH_MAX], t[PATH_MAX];
	int ef, et;

	ren_names(mnt, i, &from, &to);
	snprintf(f, sizeof(f), "%s", from);
	snprintf(t, sizeof(t), "%s", to);
	ef = exists(f);
	et = exists(t);
	if (ef < 0 || et < 0 || ef == et) {
		print_error("rename %s -> %s: %s\n", f, t,
			    ef == et && ef == 1 ? "both names exist" :
						  "neither name exists");
		return ST_BAD;
	}
	if (i < NRF) {
		if (!has_hash(ef ? f : t, 10 * KiB + i,
			      h_pattern_hash(10 * KiB + i, 200 + i))) {
			print_error("%s: wrong content\n", ef ? f : t);
			return ST_BAD;
		}
	} else if (!dir_ok(ef ? f : t, i - NRF)) {
		return ST_BAD;
	}
	return ef ? ST_OLD : ST_NEW;
}

/* ---- unlinks and rmdirs -------------------------------------------------- */

#define NUF 10
#define NUD 3 /* lower dirs x/dK: 4 files each, one from l1 */
#define NUN 2 /* upper dirs x/nK made through the mount: 5 files */

struct unl_step {
	char path[64]; /* relative to the mount */
	bool dir;
	char content[32];
};
static struct unl_step unl[NUF + NUD * 5 + NUN * 6];
static int unl_n;

static void unl_add(const char *path, bool dir, const char *content)
{
	struct unl_step *s = &unl[unl_n++];

	snprintf(s->path, sizeof(s->path), "%s", path);
	s->dir = dir;
	snprintf(s->content, sizeof(s->content), "%s", content ? content : "");
}

static int unl_build(void)
{
	unl_n = 0;
	for (int k = 0; k < NUF; k++) {
		h_file(h_fmt("%s/x/f%d", k % 2 ? "l1" : "l2", k),
		       h_fmt("file %d", k));
		unl_add(h_fmt("x/f%d", k), false, h_fmt("file %d", k));
	}
	for (int k = 0; k < NUN; k++) {
		for (int j = 0; j < 5; j++)
			unl_add(h_fmt("x/n%d/u%d", k, j), false,
				h_fmt("up %d %d", k, j));
		unl_add(h_fmt("x/n%d", k), true, NULL);
	}
	for (int k = 0; k < NUD; k++) {
		for (int j = 0; j < 4; j++) {
			h_file(h_fmt("%s/x/d%d/g%d", j == 3 ? "l1" : "l2", k,
				     j),
			       h_fmt("low %d %d", k, j));
			unl_add(h_fmt("x/d%d/g%d", k, j), false,
				h_fmt("low %d %d", k, j));
		}
		unl_add(h_fmt("x/d%d", k), true, NULL);
	}
	return unl_n;
}

static void unl_prep(const char *mnt)
{
	for (int k = 0; k < NUN; k++) {
		h_assert_ok(mkdir(h_fmt("%s/x/n%d", mnt, k), 0755));
		for (int j = 0; j < 5; j++) {
			const char *p = h_fmt("%s/x/n%d/u%d", mnt, k, j);
			int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				      0644);
			const char *c = h_fmt("up %d %d", k, j);

			assert_true(fd >= 0);
			assert_int_equal(write(fd, c, strlen(c)),
					 (ssize_t)strlen(c));
			close(fd);
		}
	}
}

static int unl_step(const char *mnt, int i)
{
	const char *p = h_fmt("%s/%s", mnt, unl[i].path);

	return unl[i].dir ? rmdir(p) : unlink(p);
}

static int unl_state(const char *mnt, int i)
{
	const char *p = h_fmt("%s/%s", mnt, unl[i].path);
	int e = exists(p);
	size_t len;
	char *s;
	bool ok;

	if (e < 0)
		return ST_BAD;
	if (!e)
		return ST_NEW;
	if (unl[i].dir)
		return ST_OLD; /* its entries are steps of their own */
	s = h_read(p, &len);
	ok = !strcmp(s, unl[i].content);
	if (!ok)
		print_error("%s: \"%s\", expected \"%s\"\n", p, s,
			    unl[i].content);
	free(s);
	return ok ? ST_OLD : ST_BAD;
}

/* ---- hard-link copy-ups: lower files with three names -------------------- */

#define NHG 4
static const off_t hl_len[NHG] = { 1 * KiB, 100 * KiB, 4 * MiB, 16 * MiB };
static const char *const hl_names[] = { "a", "b", "c", "d" };

static int hl_build(void)
{
	for (int g = 0; g < NHG; g++) {
		h_file_pattern(h_fmt("l2/h/g%d_a", g), hl_len[g], 300 + g);
		h_link(h_fmt("l2/h/g%d_a", g), h_fmt("l2/h/g%d_b", g));
		h_link(h_fmt("l2/h/g%d_a", g), h_fmt("l2/h/g%d_c", g));
	}
	return NHG * 3;
}

/* Per group three steps: append "1" by name a, append "2" by name c,
 * link c to a new name d. */
static int hl_step(const char *mnt, int i)
{
	int g = i / 3;

	switch (i % 3) {
	case 0:
		return append_to(h_fmt("%s/h/g%d_a", mnt, g), "1");
	case 1:
		return append_to(h_fmt("%s/h/g%d_c", mnt, g), "2");
	default:
		return link(h_fmt("%s/h/g%d_c", mnt, g),
			    h_fmt("%s/h/g%d_d", mnt, g));
	}
}

static int hl_state(const char *mnt, int i)
{
	int g = i / 3, ncontent = -1;
	uint64_t base = h_pattern_hash(hl_len[g], 300 + g);
	uint64_t h1 = h_hash_data(base, "1", 1), h2 = h_hash_data(h1, "2", 1);
	struct stat st0 = { 0 };
	int nnames = 0;

	for (int n = 0; n < 4; n++) {
		const char *p = h_fmt("%s/h/g%d_%s", mnt, g, hl_names[n]);
		struct stat st;
		off_t size;
		uint64_t h;
		int c;

		if (lstat(p, &st) < 0) {
			if (n == 3 && errno == ENOENT)
				continue;
			print_error("lstat %s: %s\n", p, strerror(errno));
			return ST_BAD;
		}
		nnames++;
		h = h_hash_file(p, &size);
		c = size == hl_len[g] && h == base	   ? 0 :
		    size == hl_len[g] + 1 && h == h1 ? 1 :
		    size == hl_len[g] + 2 && h == h2 ? 2 :
						       -1;
		if (c < 0) {
			print_error("%s: %lld bytes: not a content it ever "
				    "had\n", p, (long long)size);
			return ST_BAD;
		}
		if (n == 0) {
			st0 = st;
			ncontent = c;
			continue;
		}
		if (c != ncontent || st.st_ino != st0.st_ino ||
		    st.st_nlink != st0.st_nlink) {
			print_error("group %d: names disagree: a has content "
				    "%d ino %llu nlink %lu, %s has %d ino %llu "
				    "nlink %lu\n", g, ncontent,
				    (unsigned long long)st0.st_ino,
				    (unsigned long)st0.st_nlink, hl_names[n],
				    c, (unsigned long long)st.st_ino,
				    (unsigned long)st.st_nlink);
			return ST_BAD;
		}
	}
	/* st_nlink against the number of names: hardlink_nlink */
	switch (i % 3) {
	case 0:
		return ncontent >= 1 ? ST_NEW : ST_OLD;
	case 1:
		return ncontent >= 2 ? ST_NEW : ST_OLD;
	default:
		return nnames == 4 ? ST_NEW : ST_OLD;
	}
}

/* ---- plyctl check ------------------------------------------------------- */

/* `plyctl check` of the (unmounted) stack must report nothing: exit 0
 * ("no problems found") and nothing on stderr. */
static void assert_check_clean(const char *what, int cycle)
{
	const char *plyctl = getenv("PLYCTL");
	struct h_run r;

	if (!plyctl || !*plyctl)
		fail_msg("PLYCTL must name the plyctl binary");
	h_run(H_NAMES(plyctl, "check", "-o", opts()), NULL, NULL, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 || *r.err) {
		print_error("plyctl check: status 0x%x\nstdout:\n%s\nstderr:\n%s",
			    r.status, r.out, r.err);
		h_run_free(&r);
		fail_msg("%s, cycle %d: plyctl check reports problems after "
			 "the remount", what, cycle);
	}
	h_run_free(&r);
}

/* ---- the kill loop ------------------------------------------------------- */

/* Runs every step in a child; exits 0 when all succeeded. */
static pid_t start_op(const struct kind *k, int nsteps, const char *mnt)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < nsteps; i++) {
			if (k->step(mnt, i) < 0)
				_exit(1);
		}
		_exit(0);
	}
	return pid;
}

/* After the remount: the steps done form a prefix (all of them when the
 * op completed), each step reads as done or not done. */
static int check_steps(const struct kind *k, int nsteps, const char *mnt,
		       bool completed, int cycle)
{
	int first_old = -1;

	for (int i = 0; i < nsteps; i++) {
		int s = k->state(mnt, i);

		if (s == ST_BAD)
			fail_msg("%s, cycle %d: step %d is neither done nor "
				 "undone after the crash", k->name, cycle, i);
		if (s == ST_OLD && first_old < 0)
			first_old = i;
		if (s == ST_NEW && first_old >= 0)
			fail_msg("%s, cycle %d: step %d is done but step %d, "
				 "which came before, is lost", k->name, cycle,
				 i, first_old);
	}
	if (completed && first_old >= 0)
		fail_msg("%s, cycle %d: the op completed before the kill but "
			 "step %d is lost", k->name, cycle, first_old);
	return first_old < 0 ? nsteps : first_old;
}

/* n kills at scale 1, times PLY_STRESS_SCALE, cut to PLY_CRASH_SHARE
 * percent (the sanitizer pass runs a quarter: the daemon is twice as slow
 * there, and kill -9 is not what the sanitizers look at). */
static int kills_of(int n)
{
	const char *share = getenv("PLY_CRASH_SHARE");
	long pct = share ? strtol(share, NULL, 10) : 100;

	if (pct < 1 || pct > 100)
		pct = 100;
	n = (int)(n * h_scale() * pct / 100);
	return n > 0 ? n : 1;
}

static void run_kind(const struct kind *k)
{
	unsigned seed = h_seed(k->name, 8);
	int kills = kills_of(k->kills), mid = 0, temps = 0;
	long window, t0, took;
	char mnt[PATH_MAX];
	struct h_mount *m;
	pid_t child;
	int status, nsteps;

	rng = 0x9e3779b97f4a7c15ULL ^ ((unsigned long long)seed << 17) ^
	      (unsigned long long)(k->kills * 7919);
	snprintf(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_mkdir("mnt");
	h_mkdir("l1");
	h_mkdir("l2");
	nsteps = k->build();

	/* calibration: the op once without a kill; the kills then land
	 * uniformly over 1.2 times its duration */
	reset_upper();
	m = mount_rw();
	if (k->prep)
		k->prep(mnt);
	t0 = now_us();
	child = start_op(k, nsteps, mnt);
	if (h_wait(child, H_RUN_WAIT_MS, &status) < 0)
		fail_msg("%s: the op did not finish", k->name);
	took = now_us() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("%s: the op failed without a crash", k->name);
	assert_int_equal(h_umount_diag(m), 0);
	m = mount_rw();
	check_steps(k, nsteps, mnt, true, -1);
	assert_int_equal(h_umount_diag(m), 0);
	assert_check_clean(k->name, -1);
	window = took + took / 5 + 1000;
	print_message("%s: op of %d steps takes %ld us; %d kills within "
		      "%ld us\n", k->name, nsteps, took, kills, window);

	for (int cycle = 0; cycle < kills; cycle++) {
		long delay = (long)(next_rand() % (unsigned long long)window);
		bool completed;
		int done;

		reset_upper();
		m = mount_rw();
		if (k->prep)
			k->prep(mnt);
		child = start_op(k, nsteps, mnt);
		usleep(delay);
		completed = h_wait(child, 0, &status) == 0;
		h_crash(m);
		if (!completed && h_wait(child, H_EXIT_WAIT_MS, &status) < 0) {
			kill(child, SIGKILL);
			h_wait(child, H_EXIT_WAIT_MS, &status);
			fail_msg("%s, cycle %d: the op still blocks %d ms "
				 "after the kill", k->name, cycle,
				 H_EXIT_WAIT_MS);
		}
		completed = completed && WIFEXITED(status) &&
			    WEXITSTATUS(status) == 0;
		mid += !completed;
		temps += temps_in(h_path("w/work"), false) > 0;
		h_umount(m);
		assert_false(h_is_mountpoint(mnt));

		m = mount_rw();
		assert_no_markers(mnt);
		done = check_steps(k, nsteps, mnt, completed, cycle);
		if (temps_in(h_path("w/work"), true))
			fail_msg("%s, cycle %d: w/work holds #plyfs-* after "
				 "the remount", k->name, cycle);
		h_assert_alive(m);
		assert_int_equal(h_umount_diag(m), 0);
		assert_check_clean(k->name, cycle);
		if (getenv("PLY_CRASH_VERBOSE"))
			print_message("%s cycle %d: kill at %ld us, %d/%d "
				      "steps done\n", k->name, cycle, delay,
				      done, nsteps);
	}
	print_message("%s: %d kills, %d during the op, %d with a temporary "
		      "in w/work; all consistent\n", k->name, kills, mid,
		      temps);
}

static void crash_big(void **state)
{
	static const struct kind k = { "big copy-up", 15, big_build, NULL,
				       big_step, big_state };

	run_kind(&k);
}

static void crash_small(void **state)
{
	static const struct kind k = { "small copy-ups", 40, small_build,
				       NULL, small_step, small_state };

	run_kind(&k);
}

static void crash_rename(void **state)
{
	static const struct kind k = { "renames", 40, ren_build, NULL,
				       ren_step, ren_state };

	run_kind(&k);
}

static void crash_unlink(void **state)
{
	static const struct kind k = { "unlinks and rmdirs", 30, unl_build,
				       unl_prep, unl_step, unl_state };

	run_kind(&k);
}

static void crash_hardlink(void **state)
{
	static const struct kind k = { "hard-link copy-ups", 30, hl_build,
				       NULL, hl_step, hl_state };

	run_kind(&k);
}

/* ---- volume population ------------------------------------------------- */

/* A new volume at /data is filled from the layers before the mount
 * appears (fs/splices.c, fill_volume): a tree of VOL_DIRS directories of
 * VOL_FILES files (0 to 16 KiB), some of 256 KiB, a symlink and a hard link
 * in each, so the filling takes a while. The daemon is killed at a random
 * moment from its start to 1.2 times the time it takes to mount; then the
 * stack is mounted again, and /data must be the whole tree of the layers:
 * a volume that a kill left half-filled must not be presented as filled. */
#define VOL_DIRS 24
#define VOL_FILES 40

static const char *vol_opts(void)
{
	return h_fmt("%s,volstore=%s,volume=pop:/data", opts(), h_path("vs"));
}

static void vol_build(void)
{
	for (int d = 0; d < VOL_DIRS; d++) {
		for (int f = 0; f < VOL_FILES; f++) {
			off_t len = f % 13 == 5 ? 256 * KiB :
					(off_t)((f * 977 + d * 131) % (16 * KiB));

			h_file_pattern(h_fmt("%s/data/d%02d/f%02d",
					     d % 3 ? "l2" : "l1", d, f),
				       len, 1000 + d * VOL_FILES + f);
		}
		h_symlink(h_fmt("f%02d", d % VOL_FILES),
			  h_fmt("l2/data/d%02d/sym", d));
		h_link(h_fmt("%s/data/d%02d/f01", d % 3 ? "l2" : "l1", d),
		       h_fmt("%s/data/d%02d/hl", d % 3 ? "l2" : "l1", d));
	}
	h_file("l2/other", "other");
}

/* Empties the upper, work directory and volume store. */
static void vol_reset(void)
{
	int root = open(h_path("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(root >= 0);
	assert_int_equal(h_rm_at(root, "vs"), 0);
	close(root);
	reset_upper();
}

/* The daemon with a new volume, not waiting for the mount. */
static struct h_mount *vol_start(const char *mnt)
{
	return h_start(H_NAMES(h_plyfs(), "-f", "-o", vol_opts(), mnt), NULL,
		       mnt);
}

/* Waits up to H_MOUNT_WAIT_MS for m's mount; false if the daemon exited. */
static bool vol_wait_mounted(struct h_mount *m)
{
	int status;

	for (int waited = 0; waited <= H_MOUNT_WAIT_MS; waited += H_POLL_MS) {
		if (h_dev_differs(m->path))
			return true;
		if (h_wait(m->pid, 0, &status) == 0)
			fail_msg("plyfs exited (0x%x) before the mount", status);
		usleep(H_POLL_MS * 1000);
	}
	fail_msg("%s not mounted after %d ms", m->path, H_MOUNT_WAIT_MS);
	return false;
}

/* Temporaries and markers among t's names. */
static int vol_markers(const struct h_tree *t)
{
	int n = 0;

	for (size_t i = 0; i < t->n; i++) {
		const char *base = strrchr(t->v[i].path, '/');

		base = base ? base + 1 : t->v[i].path;
		n += !strncmp(base, ".wh.", 4) || !strncmp(base, "#plyfs", 6) ||
		     !strncmp(base, ".plyfs", 6);
	}
	return n;
}

/* The differences between the tree of the layers and the volume's (names,
 * types, modes, sizes, contents, link targets, st_nlink), the first few
 * printed; 0 when the volume is whole. */
static int vol_diff(const struct h_tree *a, const struct h_tree *b)
{
	size_t i = 0, j = 0;
	int n = 0;

	while (i < a->n || j < b->n) {
		int c = i == a->n ? 1 :
			j == b->n ? -1 :
				    strcmp(a->v[i].path, b->v[j].path);
		const struct h_entry *x = c <= 0 ? &a->v[i] : NULL;
		const struct h_entry *y = c >= 0 ? &b->v[j] : NULL;
		const char *what = NULL;

		if (!y)
			what = "missing";
		else if (!x)
			what = "extra";
		else if (x->mode != y->mode)
			what = "mode or type differs";
		else if (!S_ISDIR(x->mode) &&
			 (x->size != y->size || x->hash != y->hash))
			what = "content differs";
		else if (x->link && (!y->link || strcmp(x->link, y->link)))
			what = "link target differs";
		else if (!S_ISDIR(x->mode) && x->nlink != y->nlink)
			what = "st_nlink differs";
		if (what && n++ < 5)
			print_error("  /data/%s: %s\n", (x ? x : y)->path, what);
		i += c <= 0;
		j += c >= 0;
	}
	return n;
}

static void crash_volume(void **state)
{
	unsigned seed = h_seed("volume population", 8);
	int kills = kills_of(20), mounted = 0, partial = 0, empty = 0;
	int markers = 0, diff;
	char mnt[PATH_MAX];
	struct h_tree want, got;
	struct h_mount *m;
	long t0, took, window;

	rng = 0x9e3779b97f4a7c15ULL ^ ((unsigned long long)seed << 17) ^
	      (unsigned long long)(20 * 7919);
	snprintf(mnt, sizeof(mnt), "%s", h_path("mnt"));
	h_mkdir("mnt");
	vol_build();

	/* what the layers hold at /data, through a mount without volume */
	reset_upper();
	m = mount_rw();
	h_tree_walk(h_path("mnt/data"), &want);
	assert_int_equal(h_umount_diag(m), 0);

	/* calibration: the time from the start to the mount */
	vol_reset();
	t0 = now_us();
	m = vol_start(mnt);
	vol_wait_mounted(m);
	took = now_us() - t0;
	h_tree_walk(h_path("mnt/data"), &got);
	if (vol_diff(&want, &got))
		fail_msg("a volume filled without a kill differs from the "
			 "layers");
	h_tree_free(&got);
	assert_int_equal(h_umount_diag(m), 0);
	assert_check_clean("volume population", -1);
	window = took + took / 5 + 1000;
	print_message("volume population: %zu objects; start to mount takes "
		      "%ld us; %d kills within %ld us\n", want.n, took, kills,
		      window);

	for (int cycle = 0; cycle < kills; cycle++) {
		long delay = (long)(next_rand() % (unsigned long long)window);
		struct stat st;
		size_t nvol = 0;
		bool was_mounted;
		int vfd;

		vol_reset();
		m = vol_start(mnt);
		usleep(delay);
		was_mounted = h_dev_differs(mnt);
		h_crash(m);
		h_umount(m);
		assert_false(h_is_mountpoint(mnt));
		mounted += was_mounted;

		/* what the killed daemon left in the volume's _data */
		vfd = open(h_path("vs/volumes/pop/_data"),
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (vfd >= 0) {
			struct h_tree left;

			close(vfd);
			h_tree_walk(h_path("vs/volumes/pop/_data"), &left);
			nvol = left.n;
			h_tree_free(&left);
		}
		empty += nvol <= 1;

		m = h_mount(vol_opts(), "mnt");
		h_assert_ok(lstat(h_path("mnt/other"), &st));
		h_tree_walk(h_path("mnt/data"), &got);
		diff = vol_diff(&want, &got);
		if (diff) {
			print_error("cycle %d: kill at %ld us (%s), %zu objects "
				    "left in the volume: the remount shows "
				    "%zu objects at /data (%zu wanted), %d "
				    "differences, %d temporaries or markers\n",
				    cycle, delay,
				    was_mounted ? "after the mount" :
						  "before the mount",
				    nvol, got.n, want.n, diff,
				    vol_markers(&got));
			partial++;
			markers += vol_markers(&got) > 0;
		}
		h_tree_free(&got);
		/* nowhere else in the merged view either */
		if (!diff)
			assert_no_markers(mnt);
		h_assert_alive(m);
		assert_int_equal(h_umount_diag(m), 0);
		assert_check_clean("volume population", cycle);
		if (getenv("PLY_CRASH_VERBOSE"))
			print_message("volume cycle %d: kill at %ld us, %s, %zu "
				      "objects left\n", cycle, delay,
				      was_mounted ? "mounted" : "not mounted",
				      nvol);
	}
	h_tree_free(&want);
	print_message("volume population: %d kills, %d after the mount, %d "
		      "with the volume still empty, %d presented "
		      "half-filled (%d of them with temporaries in it)\n",
		      kills, mounted, empty, partial, markers);
	if (partial)
		fail_msg("%d of %d kills during the filling left a half-filled "
			 "volume that the next mount presents as filled (%d "
			 "with copy-up temporaries showing)", partial, kills,
			 markers);
}

/* st_nlink of a hard-linked lower file counts its names in the merged
 * view, before and after a copy-up of one of them, and after a link. */
static void hardlink_nlink(void **state)
{
	struct h_mount *m;
	struct stat st;

	h_mkdir("l1");
	h_mkdir("u");
	h_mkdir("w");
	h_file("l2/h/a", "data");
	h_link("l2/h/a", "l2/h/b");
	h_link("l2/h/a", "l2/h/c");
	m = mount_rw();
	h_assert_ok(lstat(h_path("mnt/h/b"), &st));
	assert_int_equal(st.st_nlink, 3);
	assert_int_equal(append_to(h_path("mnt/h/a"), "1"), 0);
	for (int n = 0; n < 3; n++) {
		h_assert_ok(lstat(h_path("mnt/h/%s", hl_names[n]), &st));
		if (st.st_nlink != 3)
			fail_msg("after the copy-up of h/a, h/%s has st_nlink "
				 "%lu; it has 3 names", hl_names[n],
				 (unsigned long)st.st_nlink);
	}
	h_assert_ok(link(h_path("mnt/h/c"), h_path("mnt/h/d")));
	h_assert_ok(lstat(h_path("mnt/h/d"), &st));
	if (st.st_nlink != 4)
		fail_msg("after link h/c h/d: st_nlink %lu; 4 names",
			 (unsigned long)st.st_nlink);
	h_assert_alive(m);
}

/* ---- a dead mountpoint --------------------------------------------------- */

/* After a kill -9 the mountpoint answers ENOTCONN: a new plyfs on it must
 * say so in one line and exit 2; fusermount3 -u recovers it. */
static void dead_mountpoint(void **state)
{
	const char *errpath;
	char mnt[PATH_MAX];
	struct h_mount *m;
	int status = 0, lines = 0;
	pid_t pid;
	char *err;
	size_t len;

	h_file("l2/f", "f");
	h_mkdir("l1");
	h_mkdir("u");
	h_mkdir("w");
	m = mount_rw();
	snprintf(mnt, sizeof(mnt), "%s", m->path);
	h_crash(m);
	/* (stat may still be answered from the kernel's attribute cache) */
	h_assert_errno(open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ENOTCONN);

	errpath = h_path("again.err");
	pid = h_spawn(H_NAMES(h_plyfs(), "-f", "-o", opts(), mnt), NULL, NULL,
		      NULL, errpath);
	if (h_wait(pid, 3000, &status) < 0) {
		kill(pid, SIGTERM);
		if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
			kill(pid, SIGKILL);
			h_wait(pid, H_EXIT_WAIT_MS, &status);
		}
		print_error("%s", h_is_mountpoint(mnt) ? "it mounted over the "
				"dead mount\n" : "");
		h_umount(m);
		fail_msg("plyfs on a dead mountpoint did not exit within 3 s");
	}
	err = h_read(errpath, &len);
	for (size_t i = 0; i < len; i++)
		lines += err[i] == '\n';
	print_message("plyfs on the dead mountpoint: status 0x%x: %s", status,
		      err);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || lines != 1 ||
	    !strstr(err, "not connected")) {
		free(err);
		fail_msg("expected exit 2 and one line saying \"not "
			 "connected\"");
	}
	free(err);
	/* still dead, not stacked over */
	h_assert_errno(open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ENOTCONN);

	/* the recovery docs/robustness.md gives */
	h_umount(m);
	assert_false(h_is_mountpoint(mnt));
	m = mount_rw();
	h_assert_content(h_path("mnt/f"), "f");
	h_assert_alive(m);
}

/* ---- a full upper --------------------------------------------------------- */

static void enospc_copyup(void **state)
{
	off_t len = 16 * MiB;
	uint64_t old = h_pattern_hash(len, 9);
	struct statvfs before, after;
	struct h_mount *m;
	int fd, e = 0;

	h_need_root();
	h_file_pattern("l2/big", len, 9);
	h_file("l2/small", "small");
	h_mkdir("l1");
	h_tmpfs_opts("t", "size=8m,mode=0755");
	h_mkdir("t/u");
	h_mkdir("t/w");
	m = h_mount(h_fmt("%s,upperdir=%s,workdir=%s",
			  h_lowerdir("l1", "l2", NULL), h_path("t/u"),
			  h_path("t/w")),
		    "mnt");
	assert_int_equal(statvfs(h_path("t"), &before), 0);

	/* the copy-up is where it fails: at open, or at the write */
	fd = open(h_path("mnt/big"), O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
	} else {
		if (write(fd, "N", 1) != 1)
			e = errno;
		if (close(fd) < 0 && !e)
			e = errno;
	}
	print_message("append to a 16 MiB lower file, 8 MiB upper: %s\n",
		      e ? strerrorname_np(e) : "succeeded");
	if (e != ENOSPC)
		fail_msg("expected ENOSPC, got %s",
			 e ? strerrorname_np(e) : "success");

	/* the lower file is intact through the mount */
	if (!has_hash(h_path("mnt/big"), len, old))
		fail_msg("mnt/big changed after the failed copy-up");
	/* nothing partial in upper or work */
	assert_int_equal(exists(h_path("t/u/big")), 0);
	assert_int_equal(temps_in(h_path("t/w/work"), true), 0);
	assert_int_equal(statvfs(h_path("t"), &after), 0);
	if (after.f_bfree + 16 < before.f_bfree)
		fail_msg("the upper lost %lu blocks to the failed copy-up",
			 (unsigned long)(before.f_bfree - after.f_bfree));
	/* and the mount still works */
	h_assert_alive(m);
	assert_int_equal(append_to(h_path("mnt/small"), "+"), 0);
	h_assert_content(h_path("mnt/small"), "small+");
	if (!has_hash(h_path("mnt/big"), len, old))
		fail_msg("mnt/big changed");

	assert_int_equal(h_umount_diag(m), 0);
	m = h_mount(h_fmt("%s,upperdir=%s,workdir=%s",
			  h_lowerdir("l1", "l2", NULL), h_path("t/u"),
			  h_path("t/w")),
		    "mnt");
	if (!has_hash(h_path("mnt/big"), len, old))
		fail_msg("mnt/big changed after the remount");
	h_assert_content(h_path("mnt/small"), "small+");
	assert_int_equal(temps_in(h_path("t/w/work"), true), 0);
	h_assert_alive(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(dead_mountpoint),
		H_TEST(enospc_copyup),
		H_TEST(crash_small),
		H_TEST(crash_rename),
		H_TEST(crash_unlink),
		H_TEST(crash_hardlink),
		H_TEST(crash_big),
		H_TEST(crash_volume),
		H_TEST(hardlink_nlink),
	};

	h_init();
	if (getenv("PLY_TEST"))
		cmocka_set_test_filter(getenv("PLY_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
