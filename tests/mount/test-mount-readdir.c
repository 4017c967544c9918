/* Merged readdir as a user sees it: each name once, a deterministic order,
 * telldir/seekdir on an open handle, d_ino and d_type matching lstat, large
 * directories, `ls -l` (readdirplus), and listings that follow the changes
 * made through a writable mount (the kernel's cached listings too). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "harness.h"

/* A directory spread over three layers, with hidden names and markers:
 * shows a0..a{n-1} from the layers, and "link", "fifo", "sub". */
static void build_mixed(int n)
{
	for (int i = 0; i < n; i++) {
		/* every name in its own layer, some also in others */
		h_file(h_fmt("l%d/d/a%d", i % 3 + 1, i), "x");
		if (i % 5 == 0)
			h_file(h_fmt("l3/d/a%d", i), "lower copy");
	}
	h_whiteout("l1/d/gone", H_WH_FILE);
	h_file("l2/d/gone", "hidden");
	h_file("l3/d/.wh..wh.other", "");
	h_symlink("a0", "l2/d/link");
	h_fifo("l3/d/fifo");
	h_file("l1/d/sub/x", "x");
	h_file("l3/d/sub/y", "y");
}

/* Every name once, the same set whatever the layers' overlaps. */
static void names_once(void **state)
{
	const char *expect[64];
	int n = 40, k = 0;

	build_mixed(n);
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	for (int i = 0; i < n; i++)
		expect[k++] = strdup(h_fmt("a%d", i));
	expect[k++] = "link";
	expect[k++] = "fifo";
	expect[k++] = "sub";
	expect[k] = NULL;
	h_assert_listing(h_path("mnt/d"), expect);
	h_assert_listing(h_path("mnt/d/sub"), H_NAMES("x", "y"));
	for (int i = 0; i < n; i++)
		free((char *)expect[i]);
}

/* An empty directory present in several layers lists only . and .. */
static void empty_merged(void **state)
{
	h_mkdir("l1/e");
	h_mkdir("l2/e");
	h_file("l2/e/.wh..wh..opq", "");
	h_mkdir("l3/e");
	h_whiteout("l3/e/w", H_WH_FILE);
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	h_assert_listing(h_path("mnt/e"), H_NONE);
}

/* Two listings (two opens, and a rewinddir) give the same order. */
static void deterministic(void **state)
{
	size_t n1, n2;
	char **v1, **v2;
	DIR *d;
	struct dirent *de;
	size_t i = 0;

	build_mixed(200);
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	v1 = h_listdir(h_path("mnt/d"), &n1);
	v2 = h_listdir(h_path("mnt/d"), &n2);
	assert_int_equal(n1, n2);
	for (i = 0; i < n1; i++)
		assert_string_equal(v1[i], v2[i]);

	d = opendir(h_path("mnt/d"));
	assert_non_null(d);
	while (readdir(d))
		;
	rewinddir(d);
	for (i = 0; (de = readdir(d)); i++) {
		assert_true(i < n1);
		assert_string_equal(de->d_name, v1[i]);
	}
	closedir(d);
	assert_int_equal(i, n1);
	h_strv_free(v1, n1);
	h_strv_free(v2, n2);
}

/* telldir before every entry, then seekdir back to many of them, in an
 * order that jumps back and forth: readdir returns the same names. */
static void seekdir_telldir(void **state)
{
	enum { N = 600 };
	long *pos;
	char **names;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	build_mixed(N);
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	pos = calloc(N + 8, sizeof(*pos));
	names = calloc(N + 8, sizeof(*names));
	assert_non_null(pos);
	assert_non_null(names);
	d = opendir(h_path("mnt/d"));
	assert_non_null(d);
	for (;;) {
		long here = telldir(d);

		de = readdir(d);
		if (!de)
			break;
		assert_true(n < N + 8);
		/* within a 32-bit program's d_off */
		assert_true(here >= 0 && here < (1L << 31));
		pos[n] = here;
		names[n] = strdup(de->d_name);
		n++;
	}
	assert_int_equal(n, N + 5); /* a*, link, fifo, sub, ., .. */

	/* backwards, with strides that cross getdents buffer boundaries */
	for (size_t i = n; i-- > 0;) {
		if (i % 37 != 0 && i != n - 1)
			continue;
		seekdir(d, pos[i]);
		de = readdir(d);
		assert_non_null(de);
		assert_string_equal(de->d_name, names[i]);
		/* and carry on reading from there a few entries */
		for (size_t j = i + 1; j < n && j < i + 4; j++) {
			de = readdir(d);
			assert_non_null(de);
			assert_string_equal(de->d_name, names[j]);
		}
	}
	/* a seek to the end reads nothing more */
	seekdir(d, pos[n - 1]);
	assert_non_null(readdir(d));
	assert_null(readdir(d));
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(pos);
}

static unsigned char dt_of(mode_t mode)
{
	return IFTODT(mode);
}

/* d_ino of every entry of dir equals lstat's st_ino, d_type its type; .
 * and .. point at the directory and its parent. Returns the number of
 * entries other than . and .. */
static int assert_dino_matches(const char *dirpath)
{
	char dir[PATH_MAX];
	struct dirent *de;
	struct stat st, self, parent;
	DIR *d;
	int seen = 0;

	snprintf(dir, sizeof(dir), "%s", dirpath);
	h_assert_ok(lstat(dir, &self));
	h_assert_ok(lstat(h_fmt("%s/..", dir), &parent));
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".")) {
			assert_int_equal(de->d_ino, self.st_ino);
			continue;
		}
		if (!strcmp(de->d_name, "..")) {
			assert_int_equal(de->d_ino, parent.st_ino);
			continue;
		}
		h_assert_ok(lstat(h_fmt("%s/%s", dir, de->d_name), &st));
		if (de->d_ino != st.st_ino)
			fail_msg("%s: d_ino %lu, st_ino %lu", de->d_name,
				 (unsigned long)de->d_ino,
				 (unsigned long)st.st_ino);
		if (de->d_type != DT_UNKNOWN &&
		    de->d_type != dt_of(st.st_mode))
			fail_msg("%s: d_type %u, lstat type %u", de->d_name,
				 de->d_type, dt_of(st.st_mode));
		seen++;
	}
	closedir(d);
	return seen;
}

static void dino_matches_lstat(void **state)
{
	build_mixed(30);
	h_socket("l2/d/sock");
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	assert_int_equal(assert_dino_matches(h_path("mnt/d")), 30 + 4);
	assert_int_equal(assert_dino_matches(h_path("mnt/d/sub")), 2);
}

/* The same for a filesystem mounted inside a layer: the entry is the
 * mounted directory, as lstat sees it. */
static void dino_mount_inside_layer(void **state)
{
	h_need_root();
	h_file("l1/d/a", "a");
	h_file("l2/d/b", "b");
	h_tmpfs("l1/d/nested");
	h_file("l1/d/nested/inner", "inner");
	h_mount_lowers("mnt", "l1", "l2", NULL);

	h_assert_content(h_path("mnt/d/nested/inner"), "inner");
	assert_int_equal(assert_dino_matches(h_path("mnt/d")), 3);
	assert_int_equal(assert_dino_matches(h_path("mnt/d/nested")), 1);
}

/* 20,000 names spread over three layers (with overlaps and whiteouts):
 * every visible name exactly once. */
static void large_directory(void **state)
{
	enum { N = 20000 };
	char *seen;
	size_t n;
	char **v;

	h_mkdir("l1/big");
	h_mkdir("l2/big");
	h_mkdir("l3/big");
	for (int i = 0; i < N; i++) {
		h_file(h_fmt("l%d/big/entry-%05d", i % 3 + 1, i), "");
		if (i % 7 == 0) /* the same name lower down: still once */
			h_file(h_fmt("l3/big/entry-%05d", i), "dup");
		if (i % 11 == 0) /* hidden names */
			h_file(h_fmt("l3/big/gone-%05d", i), "");
	}
	for (int i = 0; i < N; i += 11)
		h_whiteout(h_fmt("l2/big/gone-%05d", i), H_WH_FILE);
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	v = h_listdir(h_path("mnt/big"), &n);
	seen = calloc(N, 1);
	assert_non_null(seen);
	for (size_t i = 0; i < n; i++) {
		int k;
		char tail;

		if (!strcmp(v[i], ".") || !strcmp(v[i], ".."))
			continue;
		if (sscanf(v[i], "entry-%d%c", &k, &tail) != 1 || k < 0 ||
		    k >= N)
			fail_msg("unexpected name %s", v[i]);
		if (seen[k]++)
			fail_msg("%s listed twice", v[i]);
	}
	for (int k = 0; k < N; k++) {
		if (!seen[k])
			fail_msg("entry-%05d missing", k);
	}
	assert_int_equal(n, N + 2);
	free(seen);
	h_strv_free(v, n);
}

/* `ls -la` (readdirplus, then lstat of each entry) lists every name with
 * no error, including after whiteouts and opaque directories. */
static void ls_l(void **state)
{
	static const char *const lines_wanted[] = {
		" a0\n", " a1\n", " a2\n", " link -> a0\n", " fifo\n", " sub\n",
	};
	struct h_run run;
	int lines = 0;

	build_mixed(3);
	h_opaque("l1/d/sub", H_OPQ_FILE);
	h_mount_lowers("mnt", "l1", "l2", "l3", NULL);

	h_run(H_NAMES("/bin/ls", "-la", h_path("mnt/d")), NULL, NULL, &run);
	print_message("%s", run.out);
	assert_int_equal(run.status, 0);
	assert_string_equal(run.err, "");
	for (const char *s = run.out; *s; s++)
		lines += *s == '\n';
	/* "total", ".", "..", and one line per name */
	assert_int_equal(lines, 3 + 6);
	for (size_t i = 0; i < sizeof(lines_wanted) / sizeof(*lines_wanted);
	     i++) {
		if (!strstr(run.out, lines_wanted[i]))
			fail_msg("ls -la has no line ending in \"%s\"",
				 lines_wanted[i]);
	}
	assert_non_null(strstr(run.out, "\nl")); /* a symlink line */
	assert_non_null(strstr(run.out, "\np")); /* a fifo line */
	h_run_free(&run);

	h_run(H_NAMES("/bin/ls", "-laR", h_path("mnt")), NULL, NULL, &run);
	assert_int_equal(run.status, 0);
	assert_string_equal(run.err, "");
	h_run_free(&run);
}

/* build_mixed(n) under l1..l3 with an upper layer: a writable mount. */
static struct h_mount *mount_mixed_rw(int n)
{
	build_mixed(n);
	h_mkdir("u");
	h_mkdir("w");
	return h_mount(h_fmt("%s,upperdir=%s,workdir=%s",
			     h_lowerdir("l1", "l2", "l3", NULL), h_path("u"),
			     h_path("w")),
		       "mnt");
}

/* A directory listed before a change (so the kernel may hold its listing)
 * is listed with the change after it: create, unlink, rename in and out,
 * mkdir and rmdir, each followed by two listings. */
static void listing_follows_changes(void **state)
{
	mount_mixed_rw(3);
	for (int round = 0; round < 2; round++) {
		h_assert_listing(h_path("mnt/d"),
				 H_NAMES("a0", "a1", "a2", "link", "fifo",
					 "sub"));
		h_assert_listing(h_path("mnt/d/sub"), H_NAMES("x", "y"));
	}
	h_file("mnt/d/new", "n");
	for (int round = 0; round < 2; round++)
		h_assert_listing(h_path("mnt/d"),
				 H_NAMES("a0", "a1", "a2", "link", "fifo",
					 "sub", "new"));
	assert_int_equal(unlink(h_path("mnt/d/a1")), 0);
	h_assert_listing(h_path("mnt/d"),
			 H_NAMES("a0", "a2", "link", "fifo", "sub", "new"));
	assert_int_equal(rename(h_path("mnt/d/a0"), h_path("mnt/d/sub/a0")),
			 0);
	for (int round = 0; round < 2; round++) {
		h_assert_listing(h_path("mnt/d"),
				 H_NAMES("a2", "link", "fifo", "sub", "new"));
		h_assert_listing(h_path("mnt/d/sub"),
				 H_NAMES("x", "y", "a0"));
	}
	assert_int_equal(mkdir(h_path("mnt/d/sub/dir"), 0755), 0);
	h_assert_listing(h_path("mnt/d/sub"), H_NAMES("x", "y", "a0", "dir"));
	assert_int_equal(rmdir(h_path("mnt/d/sub/dir")), 0);
	assert_int_equal(unlink(h_path("mnt/d/sub/x")), 0);
	h_assert_listing(h_path("mnt/d/sub"), H_NAMES("y", "a0"));
}

/* How often name shows in v. */
static int count_of(char **v, size_t n, const char *name)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		c += !strcmp(v[i], name);
	return c;
}

/* rewinddir makes an open stream show the directory as it is now
 * (POSIX), also a stream that had read it all before the change. */
static void rewinddir_shows_changes(void **state)
{
	DIR *d;
	struct dirent *de;
	int saw_new = 0, saw_a1 = 0, total = 0;

	mount_mixed_rw(3);
	d = opendir(h_path("mnt/d"));
	assert_non_null(d);
	while (readdir(d))
		;
	h_file("mnt/d/new", "n");
	assert_int_equal(unlink(h_path("mnt/d/a1")), 0);
	rewinddir(d);
	while ((de = readdir(d))) {
		saw_new += !strcmp(de->d_name, "new");
		saw_a1 += !strcmp(de->d_name, "a1");
		total++;
	}
	closedir(d);
	assert_int_equal(saw_new, 1);
	assert_int_equal(saw_a1, 0);
	assert_int_equal(total, 2 + 6); /* ., .., a0 a2 link fifo sub new */
}

/* A reader that stops part way, lets others change the directory, then
 * carries on (the same handle, and a new handle seeked to its telldir)
 * sees every name nobody touched exactly once: positions name places
 * between names, not indexes into one listing. */
static void position_survives_changes(void **state)
{
	enum { N = 400 };
	char **before, **after;
	size_t nb = 0, na = 0;
	long here;
	DIR *d, *d2 = NULL;
	struct dirent *de;

	mount_mixed_rw(N);
	before = calloc(2 * N, sizeof(*before));
	after = calloc(2 * N, sizeof(*after));
	assert_non_null(before);
	assert_non_null(after);
	d = opendir(h_path("mnt/d"));
	assert_non_null(d);
	while (nb < N / 2 && (de = readdir(d)))
		before[nb++] = strdup(de->d_name);
	here = telldir(d);
	/* the others: many new names, and some gone, on both sides */
	for (int i = 0; i < N / 2; i++)
		h_file(h_fmt("mnt/d/n%d", i), "n");
	for (int i = 0; i < N; i += 7)
		assert_int_equal(unlink(h_path("mnt/d/a%d", i)), 0);

	for (int pass = 0; pass < 2; pass++) {
		DIR *r = d;

		na = 0;
		if (pass == 1) {
			d2 = opendir(h_path("mnt/d"));
			assert_non_null(d2);
			seekdir(d2, here);
			r = d2;
		} else {
			seekdir(d, here);
		}
		while ((de = readdir(r))) {
			assert_true(na < 2 * N);
			after[na++] = strdup(de->d_name);
		}
		for (int i = 0; i < N; i++) {
			const char *name = h_fmt("a%d", i);
			int c = count_of(before, nb, name) +
				count_of(after, na, name);

			/* an unlinked name may show before its unlink */
			if (i % 7 == 0 ? c > 1 : c != 1)
				fail_msg("pass %d: a%d listed %d times", pass,
					 i, c);
		}
		for (size_t i = 0; i < na; i++)
			assert_int_equal(count_of(before, nb, after[i]) +
						 count_of(after, na, after[i]),
					 1);
		if (pass == 1)
			closedir(d2);
		for (size_t i = 0; i < na; i++)
			free(after[i]);
	}
	closedir(d);
	h_strv_free(before, nb);
	free(after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(names_once),
		H_TEST(empty_merged),
		H_TEST(deterministic),
		H_TEST(seekdir_telldir),
		H_TEST(dino_matches_lstat),
		H_TEST(dino_mount_inside_layer),
		H_TEST(large_directory),
		H_TEST(ls_l),
		H_TEST(listing_follows_changes),
		H_TEST(rewinddir_shows_changes),
		H_TEST(position_survives_changes),
	};

	h_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
