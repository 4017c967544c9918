/* plyctl.h: what the subcommands of plyctl share. */
#ifndef PLYCTL_H
#define PLYCTL_H

#include "ply.h"

#define PLYCTL_EXIT_USAGE 2

/* Opens the stack named by an -o option list, as plyfs takes it. */
int plyctl_open_stack(const char *optstr, struct ply_stack *ret,
		      struct ply_err *err);

int plyctl_which(int argc, char **argv);

#endif
