/* progress.c: a one-line progress bar on standard error, for import,
 * commit, export and cp: bytes and files done, a bar and percentage when
 * the total is known. Drawn only on a terminal, at most ten times a
 * second; a pipe or a file gets nothing. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define REDRAW_NS 100000000LL /* 0.1 s */

static struct {
	bool on;
	bool drawn; /* something is on the line */
	const char *what;
	uint64_t total, bytes, files;
	long long last_ns;
	struct timespec start;
} bar;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void human(char *buf, size_t size, uint64_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(*units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	return 80;
}

static void draw(void)
{
	char done[32], total[32], line[512];
	int cols = columns(), n;

	human(done, sizeof(done), bar.bytes);
	if (bar.total) {
		uint64_t pct = bar.bytes >= bar.total ?
				       100 :
				       bar.bytes * 100 / bar.total;
		int width = cols - 60 > 10 ? (cols - 60 > 40 ? 40 : cols - 60) :
					     10;
		int fill = (int)(pct * (uint64_t)width / 100);
		char b[64];

		memset(b, '#', (size_t)fill);
		memset(b + fill, '-', (size_t)(width - fill));
		b[width] = '\0';
		human(total, sizeof(total), bar.total);
		n = snprintf(line, sizeof(line),
			     "%s [%s] %3u%% %s of %s, %llu files", bar.what, b,
			     (unsigned)pct, done, total,
			     (unsigned long long)bar.files);
	} else {
		n = snprintf(line, sizeof(line), "%s: %s, %llu files",
			     bar.what, done, (unsigned long long)bar.files);
	}
	if (n >= cols)
		line[cols - 1] = '\0';
	/* \r and clear to the end of the line: one line, redrawn in place */
	fprintf(stderr, "\r%s\033[K", line);
	bar.drawn = true;
	fflush(stderr);
}

void plyctl_progress_begin(const char *what, uint64_t total_bytes)
{
	memset(&bar, 0, sizeof(bar));
	bar.on = isatty(STDERR_FILENO);
	bar.what = what;
	bar.total = total_bytes;
	bar.last_ns = now_ns();
}

static void maybe_draw(void)
{
	long long t;

	if (!bar.on)
		return;
	t = now_ns();
	if (t - bar.last_ns < REDRAW_NS)
		return;
	bar.last_ns = t;
	draw();
}

void plyctl_progress_add(uint64_t bytes, uint64_t files)
{
	bar.bytes += bytes;
	bar.files += files;
	maybe_draw();
}

void plyctl_progress_set_bytes(uint64_t bytes)
{
	bar.bytes = bytes;
	maybe_draw();
}

void plyctl_progress_end(void)
{
	/* an operation over before the first redraw leaves no line */
	if (!bar.on || !bar.drawn) {
		bar.on = false;
		return;
	}
	draw();
	fputc('\n', stderr);
	bar.on = false;
}
