/* Data integrity, the fsx way: random pread, pwrite, truncate, mmap writes
 * and reads (MAP_SHARED + msync), fallocate (plain, KEEP_SIZE, PUNCH_HOLE)
 * and copy_file_range on (a) a lower file, whose first write is a copy-up,
 * and (b) a new file; each step checked against an in-memory model (the
 * range it touched every step, the whole file every K steps), with a
 * remount in the middle and a final compare after a remount and in the
 * upper directory itself. */
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAXLEN (256 * 1024)
#define MAXOP (64 * 1024)
#define FULL_EVERY 64

enum { OP_READ, OP_WRITE, OP_TRUNC, OP_MAPWRITE, OP_MAPREAD, OP_FALLOC,
       OP_PUNCH, OP_CFR, OP_N };
static const char *const op_names[OP_N] = {
	"pread", "pwrite", "truncate", "mmap write", "mmap read",
	"fallocate", "punch hole", "copy_file_range",
};

struct fsx {
	const char *name;
	char path[PATH_MAX];
	int fd;
	unsigned char *model;
	unsigned char *buf;
	off_t size;
	unsigned long long rng;
	long step;
	long counts[OP_N];
	bool no_falloc, no_punch, no_cfr;
	/* the last steps, for the failure message */
	char log[16][96];
};

static unsigned long long rnd(struct fsx *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return f->rng;
}

static long rndn(struct fsx *f, long n)
{
	return n > 0 ? (long)(rnd(f) % (unsigned long long)n) : 0;
}

static void logop(struct fsx *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logop(struct fsx *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->log[f->step % 16], sizeof(f->log[0]), fmt, ap);
	va_end(ap);
}

static void dump_log(struct fsx *f)
{
	for (long s = f->step - 15; s <= f->step; s++)
		if (s >= 0)
			print_error("  step %ld: %s\n", s, f->log[s % 16]);
}

static void fsx_fail(struct fsx *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fsx_fail(struct fsx *f, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("%s: the last steps:\n", f->name);
	dump_log(f);
	fail_msg("%s, step %ld: %s", f->name, f->step, msg);
}

/* Compares [off, off+len) of the file (read through fd) to the model. */
static void check_range(struct fsx *f, off_t off, size_t len)
{
	ssize_t n;
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		fsx_fail(f, "fstat: %s", strerror(errno));
	if (st.st_size != f->size)
		fsx_fail(f, "size %lld, the model has %lld",
			 (long long)st.st_size, (long long)f->size);
	if (off >= f->size)
		return;
	if (off + (off_t)len > f->size)
		len = f->size - off;
	n = pread(f->fd, f->buf, len, off);
	if (n != (ssize_t)len)
		fsx_fail(f, "pread %zu at %lld: %zd (%s)", len,
			 (long long)off, n, strerror(errno));
	if (memcmp(f->buf, f->model + off, len)) {
		size_t i = 0;

		while (f->buf[i] == f->model[off + i])
			i++;
		fsx_fail(f, "byte %lld is 0x%02x, the model has 0x%02x",
			 (long long)(off + i), f->buf[i], f->model[off + i]);
	}
}

static void check_all(struct fsx *f)
{
	check_range(f, 0, f->size);
}

static void gen(struct fsx *f, unsigned char *p, size_t len)
{
	unsigned long long x = rnd(f);

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 32);
	}
}

static void set_size(struct fsx *f, off_t size)
{
	if (size > f->size)
		memset(f->model + f->size, 0, size - f->size);
	f->size = size;
}

static void one_op(struct fsx *f)
{
	int op = rndn(f, OP_N);
	off_t off = rndn(f, MAXLEN);
	size_t len = 1 + rndn(f, MAXOP);
	off_t touched = off;
	size_t tlen = len;

	if (off + (off_t)len > MAXLEN)
		len = MAXLEN - off;
	if ((op == OP_FALLOC && f->no_falloc) ||
	    (op == OP_PUNCH && f->no_punch) || (op == OP_CFR && f->no_cfr))
		op = OP_WRITE;
	if ((op == OP_READ || op == OP_MAPREAD || op == OP_CFR) && !f->size)
		op = OP_WRITE;
	f->counts[op]++;
	switch (op) {
	case OP_READ:
		off = rndn(f, f->size);
		logop(f, "pread %zu at %lld", len, (long long)off);
		check_range(f, off, len);
		return;
	case OP_WRITE:
		logop(f, "pwrite %zu at %lld", len, (long long)off);
		gen(f, f->buf, len);
		if (pwrite(f->fd, f->buf, len, off) != (ssize_t)len)
			fsx_fail(f, "pwrite: %s", strerror(errno));
		if (off + (off_t)len > f->size)
			set_size(f, off + len);
		memcpy(f->model + off, f->buf, len);
		break;
	case OP_TRUNC:
		off = rndn(f, MAXLEN + 1);
		logop(f, "truncate to %lld (from %lld)", (long long)off,
		      (long long)f->size);
		if (ftruncate(f->fd, off) < 0)
			fsx_fail(f, "ftruncate: %s", strerror(errno));
		touched = off < f->size ? off : f->size;
		tlen = 4096;
		set_size(f, off);
		break;
	case OP_MAPWRITE: {
		off_t pg = off & ~4095L;
		char *map;

		logop(f, "mmap write %zu at %lld", len, (long long)off);
		if (off + (off_t)len > f->size) {
			if (ftruncate(f->fd, off + len) < 0)
				fsx_fail(f, "ftruncate: %s", strerror(errno));
			set_size(f, off + len);
		}
		map = mmap(NULL, off + len - pg, PROT_READ | PROT_WRITE,
			   MAP_SHARED, f->fd, pg);
		if (map == MAP_FAILED)
			fsx_fail(f, "mmap: %s", strerror(errno));
		gen(f, f->buf, len);
		memcpy(map + (off - pg), f->buf, len);
		if (msync(map, off + len - pg, MS_SYNC) < 0)
			fsx_fail(f, "msync: %s", strerror(errno));
		munmap(map, off + len - pg);
		memcpy(f->model + off, f->buf, len);
		break;
	}
	case OP_MAPREAD: {
		off_t pg;
		char *map;

		off = rndn(f, f->size);
		if (off + (off_t)len > f->size)
			len = f->size - off;
		pg = off & ~4095L;
		logop(f, "mmap read %zu at %lld", len, (long long)off);
		map = mmap(NULL, off + len - pg, PROT_READ, MAP_SHARED, f->fd,
			   pg);
		if (map == MAP_FAILED)
			fsx_fail(f, "mmap: %s", strerror(errno));
		if (memcmp(map + (off - pg), f->model + off, len))
			fsx_fail(f, "mmap read differs from the model");
		munmap(map, off + len - pg);
		return;
	}
	case OP_FALLOC: {
		int mode = rndn(f, 2) ? FALLOC_FL_KEEP_SIZE : 0;

		logop(f, "fallocate%s %zu at %lld",
		      mode ? " keep_size" : "", len, (long long)off);
		if (fallocate(f->fd, mode, off, len) < 0) {
			if (errno == EOPNOTSUPP && f->step == 0) {
				f->no_falloc = true;
				return;
			}
			fsx_fail(f, "fallocate: %s", strerror(errno));
		}
		if (!mode && off + (off_t)len > f->size)
			set_size(f, off + len);
		break;
	}
	case OP_PUNCH:
		logop(f, "punch hole %zu at %lld", len, (long long)off);
		if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      off, len) < 0)
			fsx_fail(f, "fallocate punch hole: %s",
				 strerror(errno));
		if (off < f->size)
			memset(f->model + off, 0,
			       (off + (off_t)len > f->size ? f->size - off :
							     (off_t)len));
		break;
	case OP_CFR: {
		/* two ranges of the file that do not overlap */
		loff_t src = rndn(f, f->size), dst;
		ssize_t n;

		if (src + (off_t)len > f->size)
			len = f->size - src;
		dst = rndn(f, MAXLEN - len);
		if (dst < src + (off_t)len && src < dst + (off_t)len) {
			dst = src + len;
			if (dst + (off_t)len > MAXLEN) {
				f->counts[op]--;
				return;
			}
		}
		logop(f, "copy_file_range %zu from %lld to %lld", len,
		      (long long)src, (long long)dst);
		touched = dst;
		tlen = len;
		{
			loff_t s = src, d = dst;
			size_t left = len;

			while (left) {
				n = copy_file_range(f->fd, &s, f->fd, &d, left,
						    0);
				if (n < 0)
					fsx_fail(f, "copy_file_range: %s",
						 strerror(errno));
				if (n == 0)
					fsx_fail(f, "copy_file_range: 0 of %zu",
						 left);
				left -= n;
			}
		}
		if (dst + (off_t)len > f->size)
			set_size(f, dst + len);
		memmove(f->model + dst, f->model + src, len);
		break;
	}
	}
	check_range(f, touched, tlen);
}

static const char *stack_opts(void)
{
	return h_fmt("%s,upperdir=%s,workdir=%s", h_lowerdir("l1", "l2", NULL),
		     h_path("u"), h_path("w"));
}

static void fsx_open(struct fsx *f, int flags)
{
	f->fd = open(f->path, O_RDWR | O_CLOEXEC | flags, 0644);
	if (f->fd < 0)
		fail_msg("open %s: %s", f->path, strerror(errno));
}

static void run(struct fsx *f, const char *upper_rel, bool lower)
{
	unsigned seed = h_seed(f->name, lower ? 11 : 12);
	long nops = 40000L * h_scale();
	struct h_mount *m;
	size_t len;
	char *up;

	f->rng = 0x2545f4914f6cdd1dULL * (seed + 7);
	f->model = calloc(1, MAXLEN);
	f->buf = malloc(MAXLEN);
	assert_true(f->model && f->buf);
	h_mkdir("l1");
	h_mkdir("l2");
	h_mkdir("u");
	h_mkdir("w");
	if (lower) {
		f->size = 100000;
		gen(f, f->model, f->size);
		h_file_data("l2/d/file", f->model, f->size);
	}
	m = h_mount(stack_opts(), "mnt");
	snprintf(f->path, sizeof(f->path), "%s",
		 h_path(lower ? "mnt/d/file" : "mnt/d2/new"));
	if (!lower)
		h_assert_ok(mkdir(h_path("mnt/d2"), 0755));
	fsx_open(f, lower ? 0 : O_CREAT | O_EXCL);
	check_all(f);

	for (f->step = 0; f->step < nops; f->step++) {
		one_op(f);
		if (f->step % FULL_EVERY == 0)
			check_all(f);
		if (f->step == nops / 2) {
			/* remount in the middle */
			check_all(f);
			close(f->fd);
			assert_int_equal(h_umount_diag(m), 0);
			m = h_mount(stack_opts(), "mnt");
			fsx_open(f, 0);
			check_all(f);
		}
	}
	check_all(f);
	close(f->fd);
	h_assert_alive(m);
	assert_int_equal(h_umount_diag(m), 0);

	/* what the upper holds is the model */
	up = h_read(h_path("%s", upper_rel), &len);
	if ((off_t)len != f->size || memcmp(up, f->model, len))
		fail_msg("%s: the upper file differs from the model (%zu "
			 "bytes, model %lld)", f->name, len,
			 (long long)f->size);
	free(up);
	m = h_mount(stack_opts(), "mnt");
	fsx_open(f, 0);
	check_all(f);
	close(f->fd);
	h_assert_alive(m);
	{
		long total = 0;

		for (int i = 0; i < OP_N; i++) {
			print_message("  %-16s %ld\n", op_names[i],
				      f->counts[i]);
			total += f->counts[i];
		}
		print_message("%s: %ld operations, final size %lld; all "
			      "matched the model%s%s%s\n", f->name, total,
			      (long long)f->size,
			      f->no_falloc ? " (no fallocate)" : "",
			      f->no_punch ? " (no punch hole)" : "",
			      f->no_cfr ? " (no copy_file_range)" : "");
	}
	free(f->model);
	free(f->buf);
}

static void fsx_lower(void **state)
{
	struct fsx f = { .name = "fsx on a lower file" };

	run(&f, "u/d/file", true);
}

static void fsx_new(void **state)
{
	struct fsx f = { .name = "fsx on a new file" };

	run(&f, "u/d2/new", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(fsx_lower),
		H_TEST(fsx_new),
	};

	h_init();
	if (getenv("PLY_TEST"))
		cmocka_set_test_filter(getenv("PLY_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
