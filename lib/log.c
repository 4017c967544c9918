/* log.c: lib/ logs only at debug level, through a sink the program sets. */
#include <stdarg.h>
#include <stdio.h>

#include "ply.h"

static ply_log_sink log_sink;

void ply_log_set_sink(ply_log_sink sink)
{
	log_sink = sink;
}

void ply_debug(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!log_sink)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_sink(line);
}
