/* stack-arg.c: the stack argument every subcommand takes, in plyfs's own
 * -o syntax, opened read-only for offline work. */
#include "plyctl.h"

int plyctl_open_stack(const char *optstr, struct ply_stack *ret,
		      struct ply_err *err)
{
	struct ply_options opts;
	int r;

	ply_options_init(&opts);
	r = ply_options_parse(&opts, optstr, err);
	if (r >= 0)
		r = ply_stack_open(ret, &opts, err);
	ply_options_free(&opts);
	return r;
}
