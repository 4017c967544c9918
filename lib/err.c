/* err.c: one-line diagnostics that lib/ hands to the program to print. */
#include <stdarg.h>
#include <stdio.h>

#include "ply.h"

int ply_err_set(struct ply_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}
