/* Concurrency: N processes at once create, write, rename (files and
 * directories, lower and upper, across directories), link, unlink, rmdir
 * and list in the same shared directories, and race first writes (appends
 * of distinct markers) to the same lower files. Each process works on its
 * own names, so the final tree is predictable: each keeps a model of its
 * names, and the merged tree must match the union of the models; every
 * marker shows exactly once; readdir never lists a name twice; a remount
 * shows the same tree. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAXPROC 8
#define NSHARED 4	/* shared directories s0..s3 */
#define NRACE 16	/* raced lower files race0..race15 */
#define NLOWF 6		/* lower files each process owns */
#define NLOWD 2		/* lower directories each process owns */
#define MAXNAMES 512
#define MAXOBJS 512
#define MAXDATA 8192

/* A process's model: names (paths relative to the mount) pointing at
 * objects; a directory is an object too, its entries are names below it. */
struct obj {
	bool dir;
	bool used;
	size_t len;
	unsigned char data[MAXDATA];
};

struct name {
	char path[128];
	int obj;
};

struct model {
	int p;
	struct obj objs[MAXOBJS];
	struct name names[MAXNAMES];
	int nnames;
	int counter; /* for fresh names */
	int markers; /* appended to the raced files */
	unsigned long long rng;
	long ops[10];
	long list_errors;
};

static const char *const op_names[10] = {
	"create", "write", "rename file", "rename dir", "link",
	"unlink", "rmdir", "mkdir", "list", "append marker",
};

static unsigned long long rnd(struct model *m)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng;
}

static unsigned rndn(struct model *m, unsigned n)
{
	return (unsigned)(rnd(m) % n);
}

static void fill(struct model *m, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rndn(m, 36)];
}

static int new_obj(struct model *m, bool dir)
{
	for (int i = 0; i < MAXOBJS; i++) {
		if (!m->objs[i].used) {
			m->objs[i].used = true;
			m->objs[i].dir = dir;
			m->objs[i].len = 0;
			return i;
		}
	}
	return -1;
}

static int find_name(struct model *m, const char *path)
{
	for (int i = 0; i < m->nnames; i++)
		if (!strcmp(m->names[i].path, path))
			return i;
	return -1;
}

static void add_name(struct model *m, const char *path, int obj)
{
	struct name *n = &m->names[m->nnames++];

	assert_true(strlen(path) < sizeof(n->path));
	strcpy(n->path, path);
	n->obj = obj;
}

static void del_name(struct model *m, int i)
{
	int obj = m->names[i].obj;
	bool last = true;

	m->names[i] = m->names[--m->nnames];
	for (int j = 0; j < m->nnames; j++)
		last = last && m->names[j].obj != obj;
	if (last)
		m->objs[obj].used = false;
}

/* A random name of the given kind (file or dir), or -1. */
static int pick(struct model *m, bool dir)
{
	int idx[MAXNAMES], n = 0;

	for (int i = 0; i < m->nnames; i++)
		if (m->objs[m->names[i].obj].dir == dir)
			idx[n++] = i;
	return n ? idx[rndn(m, n)] : -1;
}

/* A fresh path for process p in a random shared directory, or in one of
 * its own directories. */
static void fresh(struct model *m, char *buf, size_t size, const char *what)
{
	int d = rndn(m, 3) == 0 ? pick(m, true) : -1;

	if (d >= 0 && strlen(m->names[d].path) < 80)
		snprintf(buf, size, "%s/%s%d_%d", m->names[d].path, what, m->p,
			 m->counter++);
	else
		snprintf(buf, size, "s%u/%s%d_%d", rndn(m, NSHARED), what,
			 m->p, m->counter++);
}

static void die(struct model *m, const char *what, const char *path)
{
	fprintf(stderr, "process %d: %s %s: %s\n", m->p, what, path,
		strerror(errno));
	_exit(1);
}

static const char *mp(const char *mnt, const char *rel)
{
	static char buf[4][PATH_MAX + 256];
	static int n;
	char *b = buf[n++ % 4];

	snprintf(b, sizeof(buf[0]), "%s/%s", mnt, rel);
	return b;
}

static void do_create(struct model *m, const char *mnt)
{
	char path[128];
	int o = new_obj(m, false), fd;
	size_t len = rndn(m, 2048);

	if (o < 0 || m->nnames >= MAXNAMES - 8)
		return;
	fresh(m, path, sizeof(path), "f");
	fill(m, m->objs[o].data, len);
	m->objs[o].len = len;
	fd = open(mp(mnt, path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		die(m, "create", path);
	if (write(fd, m->objs[o].data, len) != (ssize_t)len)
		die(m, "write", path);
	close(fd);
	add_name(m, path, o);
}

static void do_write(struct model *m, const char *mnt)
{
	int i = pick(m, false);
	struct obj *o;
	size_t off, len;
	unsigned char buf[1024];
	int fd;

	if (i < 0)
		return;
	o = &m->objs[m->names[i].obj];
	off = rndn(m, o->len + 1);
	len = 1 + rndn(m, sizeof(buf));
	if (off + len > MAXDATA)
		return;
	fill(m, buf, len);
	fd = open(mp(mnt, m->names[i].path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(m, "open for writing", m->names[i].path);
	if (pwrite(fd, buf, len, off) != (ssize_t)len)
		die(m, "pwrite", m->names[i].path);
	close(fd);
	memcpy(o->data + off, buf, len);
	if (off + len > o->len)
		o->len = off + len;
}

static void do_rename_file(struct model *m, const char *mnt)
{
	int i = pick(m, false);
	char to[128];

	if (i < 0)
		return;
	fresh(m, to, sizeof(to), "r");
	if (rename(mp(mnt, m->names[i].path), mp(mnt, to)) < 0)
		die(m, "rename", m->names[i].path);
	snprintf(m->names[i].path, sizeof(m->names[i].path), "%s", to);
}

/* Renames a directory of ours into a shared directory (never into itself:
 * fresh() may pick one of our directories, so we use a shared one). */
static void do_rename_dir(struct model *m, const char *mnt)
{
	int i = pick(m, true);
	char from[128], to[128];
	size_t fl;

	if (i < 0)
		return;
	snprintf(from, sizeof(from), "%s", m->names[i].path);
	snprintf(to, sizeof(to), "s%u/D%d_%d", rndn(m, NSHARED), m->p,
		 m->counter++);
	if (rename(mp(mnt, from), mp(mnt, to)) < 0)
		die(m, "rename dir", from);
	fl = strlen(from);
	for (int j = 0; j < m->nnames; j++) {
		char *p = m->names[j].path;
		char rest[128];

		if (!strcmp(p, from)) {
			snprintf(p, sizeof(m->names[j].path), "%s", to);
		} else if (!strncmp(p, from, fl) && p[fl] == '/') {
			snprintf(rest, sizeof(rest), "%s", p + fl);
			assert_true(strlen(to) + strlen(rest) <
				    sizeof(m->names[j].path));
			strcpy(p, to);
			strcat(p, rest);
		}
	}
}

static void do_link(struct model *m, const char *mnt)
{
	int i = pick(m, false);
	char to[128];

	if (i < 0 || m->nnames >= MAXNAMES - 8)
		return;
	fresh(m, to, sizeof(to), "l");
	if (link(mp(mnt, m->names[i].path), mp(mnt, to)) < 0)
		die(m, "link", m->names[i].path);
	add_name(m, to, m->names[i].obj);
}

static void do_unlink(struct model *m, const char *mnt)
{
	int i = pick(m, false);

	if (i < 0)
		return;
	if (unlink(mp(mnt, m->names[i].path)) < 0)
		die(m, "unlink", m->names[i].path);
	del_name(m, i);
}

/* rm -r of one of our directories. */
static void do_rmdir(struct model *m, const char *mnt)
{
	int i = pick(m, true);
	char dir[128];
	size_t dl;
	bool again = true;

	if (i < 0)
		return;
	snprintf(dir, sizeof(dir), "%s", m->names[i].path);
	dl = strlen(dir);
	/* deepest first: repeat until no name lies below dir */
	while (again) {
		again = false;
		for (int j = 0; j < m->nnames; j++) {
			char *p = m->names[j].path;
			bool below = !strncmp(p, dir, dl) && p[dl] == '/';
			bool has_child = false;

			if (!below)
				continue;
			for (int k = 0; k < m->nnames && m->objs[m->names[j].obj].dir; k++) {
				const char *q = m->names[k].path;
				size_t pl = strlen(p);

				has_child = has_child ||
					    (!strncmp(q, p, pl) && q[pl] == '/');
			}
			if (has_child)
				continue;
			if (m->objs[m->names[j].obj].dir ?
				    rmdir(mp(mnt, p)) < 0 :
				    unlink(mp(mnt, p)) < 0)
				die(m, "remove", p);
			del_name(m, j);
			again = true;
			break;
		}
	}
	if (rmdir(mp(mnt, dir)) < 0)
		die(m, "rmdir", dir);
	del_name(m, find_name(m, dir));
}

static void do_mkdir(struct model *m, const char *mnt)
{
	char path[128];
	int o = new_obj(m, true);

	if (o < 0 || m->nnames >= MAXNAMES - 8)
		return;
	fresh(m, path, sizeof(path), "d");
	if (mkdir(mp(mnt, path), 0755) < 0)
		die(m, "mkdir", path);
	add_name(m, path, o);
	do_create(m, mnt); /* most likely elsewhere; fine */
}

/* Lists a shared directory: no name twice, every name lstat-able (or gone
 * by now: others rename and unlink), and our own names exactly those of
 * the model. */
/* PLY_STRESS_LIST_WARN: a wrong listing is reported but does not stop
 * the run, so the final tree can still be checked. */
static void list_failed(struct model *m)
{
	if (!getenv("PLY_STRESS_LIST_WARN"))
		_exit(2);
	m->list_errors++;
}

static void do_list(struct model *m, const char *mnt)
{
	unsigned s = rndn(m, NSHARED);
	char dir[16], prefix[4][16];
	DIR *d;
	struct dirent *de;
	char (*seen)[256] = calloc(4096, 256);
	int nseen = 0, own = 0, want = 0;

	snprintf(dir, sizeof(dir), "s%u", s);
	snprintf(prefix[0], 16, "f%d_", m->p);
	snprintf(prefix[1], 16, "r%d_", m->p);
	snprintf(prefix[2], 16, "l%d_", m->p);
	snprintf(prefix[3], 16, "d%d_", m->p);
	d = opendir(mp(mnt, dir));
	if (!d || !seen)
		die(m, "opendir", dir);
	while ((de = readdir(d))) {
		struct stat st;
		const char *full = mp(mnt, h_fmt("%s/%s", dir, de->d_name));

		for (int i = 0; i < nseen; i++)
			if (!strcmp(seen[i], de->d_name)) {
				fprintf(stderr, "process %d: %s lists %s "
					"twice\n", m->p, dir, de->d_name);
				list_failed(m);
			}
		if (nseen < 4096)
			snprintf(seen[nseen++], 256, "%s", de->d_name);
		if (lstat(full, &st) < 0 && errno != ENOENT)
			die(m, "lstat of a listed name", full);
		/* our own: f<p>_, r<p>_, l<p>_, d<p>_, D<p>_, and the lower
		 * L<p>_ / M<p>_ */
		{
			char a[16], b[16], c[16];
			bool mine = false;

			snprintf(a, 16, "D%d_", m->p);
			snprintf(b, 16, "L%d_", m->p);
			snprintf(c, 16, "M%d_", m->p);
			for (int i = 0; i < 4; i++)
				mine = mine || !strncmp(de->d_name, prefix[i],
							strlen(prefix[i]));
			mine = mine || !strncmp(de->d_name, a, strlen(a)) ||
			       !strncmp(de->d_name, b, strlen(b)) ||
			       !strncmp(de->d_name, c, strlen(c));
			if (!mine)
				continue;
			own++;
			if (find_name(m, h_fmt("%s/%s", dir, de->d_name)) < 0) {
				fprintf(stderr, "process %d: %s lists %s, "
					"which it removed or never made\n",
					m->p, dir, de->d_name);
				list_failed(m);
			}
		}
	}
	closedir(d);
	free(seen);
	for (int i = 0; i < m->nnames; i++) {
		const char *p = m->names[i].path;

		want += !strncmp(p, dir, strlen(dir)) &&
			p[strlen(dir)] == '/' &&
			!strchr(p + strlen(dir) + 1, '/');
	}
	if (own != want) {
		fprintf(stderr, "process %d: %s lists %d of our names, the "
			"model has %d\n", m->p, dir, own, want);
		list_failed(m);
	}
}

static void do_marker(struct model *m, const char *mnt, unsigned r)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "<%d:%d>\n", m->p, m->markers);
	int fd = open(mp(mnt, h_fmt("race%u", r)),
		      O_WRONLY | O_APPEND | O_CLOEXEC);

	if (fd < 0)
		die(m, "open race file", h_fmt("race%u", r));
	if (write(fd, buf, len) != len)
		die(m, "append to race file", h_fmt("race%u", r));
	close(fd);
	m->markers++;
}

/* Lower content of process p: files s<k>/L<p>_<i> (in l1 or l2), and
 * directories s<k>/M<p>_<i> with a file in each layer. The model starts
 * with them. */
static void lower_content(struct model *m, bool build)
{
	for (int i = 0; i < NLOWF; i++) {
		char path[128];
		int o = new_obj(m, false);

		snprintf(path, sizeof(path), "s%d/L%d_%d", i % NSHARED, m->p,
			 i);
		m->objs[o].len = snprintf((char *)m->objs[o].data, MAXDATA,
					  "lower %d %d\n", m->p, i);
		if (build)
			h_file_data(h_fmt("%s/%s", i % 2 ? "l1" : "l2", path),
				    m->objs[o].data, m->objs[o].len);
		add_name(m, path, o);
	}
	for (int i = 0; i < NLOWD; i++) {
		char path[128];
		int o = new_obj(m, true);

		snprintf(path, sizeof(path), "s%d/M%d_%d", (i + m->p) % NSHARED,
			 m->p, i);
		add_name(m, path, o);
		for (int l = 0; l < 2; l++) {
			char f[160];
			int fo = new_obj(m, false);

			snprintf(f, sizeof(f), "%s/x%d", path, l);
			m->objs[fo].len = snprintf((char *)m->objs[fo].data,
						   MAXDATA, "in dir %d %d %d\n",
						   m->p, i, l);
			if (build)
				h_file_data(h_fmt("l%d/%s", l + 1, f),
					    m->objs[fo].data,
					    m->objs[fo].len);
			add_name(m, f, fo);
		}
	}
}

static void worker(struct model *m, const char *mnt, int gate, int nops,
		   const char *out)
{
	char c;
	FILE *f;

	/* all start together: the first appends race */
	if (read(gate, &c, 1) != 1)
		_exit(3);
	for (unsigned r = 0; r < NRACE; r++)
		do_marker(m, mnt, r);
	m->ops[9] += NRACE;
	for (int n = 0; n < nops; n++) {
		unsigned op = rndn(m, 100);
		int k = op < 14 ? 0 : op < 30 ? 1 : op < 40 ? 2 : op < 46 ? 3 :
			op < 54 ? 4 : op < 64 ? 5 : op < 67 ? 6 : op < 72 ? 7 :
			op < 84 ? 8 : 9;

		m->ops[k]++;
		switch (k) {
		case 0: do_create(m, mnt); break;
		case 1: do_write(m, mnt); break;
		case 2: do_rename_file(m, mnt); break;
		case 3: do_rename_dir(m, mnt); break;
		case 4: do_link(m, mnt); break;
		case 5: do_unlink(m, mnt); break;
		case 6: do_rmdir(m, mnt); break;
		case 7: do_mkdir(m, mnt); break;
		case 8: do_list(m, mnt); break;
		default: do_marker(m, mnt, rndn(m, NRACE)); break;
		}
	}
	/* hand the model over */
	f = fopen(out, "we");
	if (!f || fwrite(m, sizeof(*m), 1, f) != 1 || fclose(f) != 0)
		_exit(4);
	_exit(0);
}

static const char *stack_opts(void)
{
	return h_fmt("%s,upperdir=%s,workdir=%s", h_lowerdir("l1", "l2", NULL),
		     h_path("u"), h_path("w"));
}

/* The expected tree, from the models: path -> object of its model. */
struct want {
	const char *path;
	const struct model *m;
	int obj;
	bool found;
};

static int cmp_want(const void *a, const void *b)
{
	return strcmp(((const struct want *)a)->path,
		      ((const struct want *)b)->path);
}

static void check_tree(const char *mnt, struct model *models, int nproc,
		       const char *what)
{
	struct want *w = calloc(nproc * MAXNAMES, sizeof(*w));
	struct h_tree t;
	size_t nw = 0;
	int bad = 0;

	assert_non_null(w);
	for (int p = 0; p < nproc; p++)
		for (int i = 0; i < models[p].nnames; i++) {
			w[nw].path = models[p].names[i].path;
			w[nw].m = &models[p];
			w[nw++].obj = models[p].names[i].obj;
		}
	qsort(w, nw, sizeof(*w), cmp_want);

	h_tree_walk(mnt, &t);
	for (size_t i = 0; i < t.n; i++) {
		const struct h_entry *e = &t.v[i];
		struct want key = { .path = e->path }, *hit;

		if (!*e->path || (!strncmp(e->path, "s", 1) &&
				  !strchr(e->path, '/') && S_ISDIR(e->mode)) ||
		    (!strncmp(e->path, "race", 4) && !strchr(e->path, '/')))
			continue;
		hit = bsearch(&key, w, nw, sizeof(*w), cmp_want);
		if (!hit) {
			print_error("%s: /%s is in the tree, no model has it\n",
				    what, e->path);
			bad++;
			continue;
		}
		hit->found = true;
		{
			const struct obj *o = &hit->m->objs[hit->obj];

			if (o->dir != S_ISDIR(e->mode)) {
				print_error("%s: /%s: wrong type\n", what,
					    e->path);
				bad++;
			} else if (!o->dir &&
				   (e->size != (off_t)o->len ||
				    e->hash != h_hash_data(H_HASH_INIT, o->data,
							   o->len))) {
				print_error("%s: /%s: %lld bytes, the model "
					    "has %zu (or other content)\n",
					    what, e->path, (long long)e->size,
					    o->len);
				bad++;
			}
		}
	}
	for (size_t i = 0; i < nw; i++) {
		if (!w[i].found) {
			print_error("%s: /%s is missing\n", what, w[i].path);
			bad++;
		}
	}
	/* hard links: names of one object agree on st_ino */
	for (size_t i = 0; i < nw; i++) {
		for (size_t j = i + 1; j < nw; j++) {
			struct stat a, b;

			if (w[i].m != w[j].m || w[i].obj != w[j].obj)
				continue;
			if (lstat(mp(mnt, w[i].path), &a) < 0 ||
			    lstat(mp(mnt, w[j].path), &b) < 0 ||
			    a.st_ino != b.st_ino) {
				print_error("%s: /%s and /%s should be one "
					    "file\n", what, w[i].path,
					    w[j].path);
				bad++;
			}
		}
	}
	h_tree_free(&t);
	free(w);
	if (bad)
		fail_msg("%s: %d differences from the model", what, bad);
}

static void check_race_files(const char *mnt, int nproc,
			     const struct model *models)
{
	for (unsigned r = 0; r < NRACE; r++) {
		size_t len;
		char *s = h_read(mp(mnt, h_fmt("race%u", r)), &len);
		const char *head = h_fmt("race file %u\n", r);
		char *line;
		int count = 0;

		if (strncmp(s, head, strlen(head)))
			fail_msg("race%u lost its lower content", r);
		line = s + strlen(head);
		while (*line) {
			char *nl = strchr(line, '\n');
			int p, k;

			if (!nl || sscanf(line, "<%d:%d>", &p, &k) != 2 ||
			    p < 0 || p >= nproc || k < 0 ||
			    k >= models[p].markers)
				fail_msg("race%u: garbage at offset %ld", r,
					 (long)(line - s));
			count++;
			line = nl + 1;
		}
		(void)count;
		free(s);
	}
	/* each marker exactly once over all raced files */
	for (int p = 0; p < nproc; p++) {
		int *seen = calloc(models[p].markers, sizeof(int));

		assert_non_null(seen);
		for (unsigned r = 0; r < NRACE; r++) {
			char *s = h_read(mp(mnt, h_fmt("race%u", r)), NULL);

			for (char *q = s; (q = strchr(q, '<')); q++) {
				int pp, k;

				if (sscanf(q, "<%d:%d>", &pp, &k) == 2 &&
				    pp == p)
					seen[k]++;
			}
			free(s);
		}
		for (int k = 0; k < models[p].markers; k++)
			if (seen[k] != 1)
				fail_msg("marker <%d:%d> found %d times", p, k,
					 seen[k]);
		free(seen);
	}
}

static void stress(void **state)
{
	unsigned seed = h_seed("stress", 1);
	int nops = 1500 * h_scale();
	/* PLY_STRESS_PROCS: fewer processes, to tell a race from a bug */
	int NPROC = getenv("PLY_STRESS_PROCS") ?
			    atoi(getenv("PLY_STRESS_PROCS")) : MAXPROC;
	struct model *models = calloc(MAXPROC, sizeof(*models));
	pid_t pids[MAXPROC];
	int gate[2];
	char mnt[PATH_MAX];
	struct h_mount *m;
	struct h_tree before, after;
	long total[10] = { 0 };
	long sum = 0;

	assert_non_null(models);
	assert_true(NPROC >= 1 && NPROC <= MAXPROC);
	h_mkdir("l1");
	h_mkdir("l2");
	h_mkdir("u");
	h_mkdir("w");
	for (int s = 0; s < NSHARED; s++) {
		h_mkdir(h_fmt("l1/s%d", s));
		h_mkdir(h_fmt("l2/s%d", s));
	}
	for (unsigned r = 0; r < NRACE; r++)
		h_file(h_fmt("l%u/race%u", 1 + r % 2, r),
		       h_fmt("race file %u\n", r));
	for (int p = 0; p < NPROC; p++) {
		models[p].p = p;
		models[p].rng = 0x9e3779b97f4a7c15ULL * (seed * 131 + p + 1);
		lower_content(&models[p], true);
	}
	m = h_mount(stack_opts(), "mnt");
	snprintf(mnt, sizeof(mnt), "%s", m->path);

	assert_int_equal(pipe(gate), 0);
	for (int p = 0; p < NPROC; p++) {
		char out[PATH_MAX];

		snprintf(out, sizeof(out), "%s", h_path("model-%d", p));
		fflush(NULL);
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			close(gate[1]);
			worker(&models[p], mnt, gate[0], nops, out);
		}
	}
	close(gate[0]);
	{
		char go[MAXPROC];

		memset(go, 'g', sizeof(go));
		assert_int_equal(write(gate[1], go, (size_t)NPROC & (MAXPROC * 2 - 1)), NPROC);
		close(gate[1]);
	}
	for (int p = 0; p < NPROC; p++) {
		int status;
		FILE *f;

		if (h_wait(pids[p], 90000 * (int)h_scale(), &status) < 0) {
			for (int q = p; q < NPROC; q++)
				kill(pids[q], SIGKILL);
			fail_msg("process %d still running: a hang?", p);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			for (int q = p + 1; q < NPROC; q++) {
				kill(pids[q], SIGKILL);
				h_wait(pids[q], H_EXIT_WAIT_MS, &status);
			}
			fail_msg("process %d failed (status 0x%x): see above",
				 p, status);
		}
		f = fopen(h_path("model-%d", p), "re");
		assert_non_null(f);
		assert_int_equal(fread(&models[p], sizeof(models[p]), 1, f), 1);
		fclose(f);
		unlink(h_path("model-%d", p));
		for (int k = 0; k < 10; k++)
			total[k] += models[p].ops[k];
	}
	{
		long le = 0;

		for (int p = 0; p < NPROC; p++)
			le += models[p].list_errors;
		if (le)
			print_error("%ld wrong listings (PLY_STRESS_LIST_WARN)"
				    "\n", le);
	}
	for (int k = 0; k < 10; k++) {
		print_message("  %-14s %ld\n", op_names[k], total[k]);
		sum += total[k];
	}
	print_message("stress: %d processes, %ld operations\n", NPROC, sum);

	h_assert_alive(m);
	check_race_files(mnt, NPROC, models);
	check_tree(mnt, models, NPROC, "after the run");
	h_tree_walk(mnt, &before);
	assert_int_equal(h_umount_diag(m), 0);

	m = h_mount(stack_opts(), "mnt");
	h_tree_walk(mnt, &after);
	h_tree_assert_equal(&before, &after,
			    H_CMP_MODE | H_CMP_INO | H_CMP_NLINK,
			    "before and after the remount");
	check_tree(mnt, models, NPROC, "after the remount");
	check_race_files(mnt, NPROC, models);
	h_tree_free(&before);
	h_tree_free(&after);
	h_assert_alive(m);
	free(models);
}

/* Lists d over and over while a child changes it (fn), for about ms:
 * every stable name (s%03d, never touched) must show exactly once in
 * every listing, and no name twice. Returns the number of listings. */
static int list_while(const char *d, int nstable, void (*fn)(const char *),
		      int ms)
{
	pid_t pid;
	int status, listings = 0;
	long deadline;
	struct timespec ts;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn(d);
		_exit(0);
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = ts.tv_sec * 1000L + ts.tv_nsec / 1000000 + ms;
	for (;;) {
		size_t n;
		char **v = h_listdir(d, &n);
		int *seen = calloc(nstable, sizeof(int));
		char *bad = NULL;

		assert_non_null(seen);
		for (size_t i = 0; i < n && !bad; i++) {
			int k;

			for (size_t j = i + 1; j < n && !bad; j++)
				if (!strcmp(v[i], v[j]))
					bad = strdup(h_fmt("%s listed twice",
							   v[i]));
			if (sscanf(v[i], "s%d", &k) == 1 && k >= 0 &&
			    k < nstable)
				seen[k]++;
		}
		for (int k = 0; k < nstable && !bad; k++)
			if (seen[k] != 1)
				bad = strdup(h_fmt("s%03d listed %d times", k,
						   seen[k]));
		h_strv_free(v, n);
		free(seen);
		listings++;
		if (bad) {
			kill(pid, SIGKILL);
			h_wait(pid, H_EXIT_WAIT_MS, &status);
			fail_msg("%s, listing %d while the directory changes: "
				 "%s", d, listings, bad);
		}
		if (h_wait(pid, 0, &status) == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec * 1000L + ts.tv_nsec / 1000000 > deadline) {
			kill(pid, SIGKILL);
			h_wait(pid, H_EXIT_WAIT_MS, &status);
			break;
		}
	}
	return listings;
}

static void copy_up_all(const char *d)
{
	for (int k = 0; k < 300; k++) {
		int fd = open(h_fmt("%s/c%03d", d, k),
			      O_WRONLY | O_APPEND | O_CLOEXEC);

		if (fd < 0 || write(fd, "+", 1) != 1)
			_exit(1);
		close(fd);
	}
}

static void create_remove(const char *d)
{
	for (int k = 0; k < 300; k++) {
		int fd = open(h_fmt("%s/n%03d", d, k),
			      O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0)
			_exit(1);
		close(fd);
		if (k % 2 && unlink(h_fmt("%s/n%03d", d, k - 1)) < 0)
			_exit(1);
	}
}

static void rename_out_in(const char *d)
{
	for (int k = 0; k < 300; k++) {
		const char *a = h_fmt("%s/c%03d", d, k);
		const char *b = h_fmt("%s/../e/c%03d", d, k);
		const char *c = h_fmt("%s/r%03d", d, k);

		if (rename(a, b) < 0 || rename(b, c) < 0)
			_exit(1);
	}
}

/* The race the stress test meets, one kind at a time: readdir of a merged
 * directory while lower names in it are copied up, and while names come
 * and go. */
static void readdir_during_changes(void **state)
{
	struct h_mount *m;
	int n1, n2, n3;

	for (int k = 0; k < 150; k++) {
		h_file(h_fmt("l2/d/s%03d", k), "stable");
		h_file(h_fmt("l%d/d/c%03d", 1 + k % 2, k), "c");
		h_file(h_fmt("l2/d/c%03d", k + 150), "c");
	}
	h_mkdir("l1");
	h_mkdir("l2/e");
	h_mkdir("u");
	h_mkdir("w");
	m = h_mount(stack_opts(), "mnt");
	n1 = list_while(h_path("mnt/d"), 150, copy_up_all, 20000);
	n2 = list_while(h_path("mnt/d"), 150, create_remove, 20000);
	n3 = list_while(h_path("mnt/d"), 150, rename_out_in, 20000);
	print_message("%d listings during copy-ups, %d during creates and "
		      "unlinks, %d during renames: every name once\n", n1, n2,
		      n3);
	h_assert_alive(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(readdir_during_changes),
		H_TEST(stress),
	};

	h_init();
	if (getenv("PLY_TEST"))
		cmocka_set_test_filter(getenv("PLY_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
