/* stack-arg.c: the stack argument every subcommand takes, in plyfs's own
 * -o syntax or as the mountpoint of a running plyfs (the options it
 * published, tools/mounts.c), opened read-only for offline work: no lock
 * is taken, so a live mount's stack can be read beside it. Offline, an upperdir needs
 * no workdir: nothing is written; a workdir given lends its hard-link
 * index, so that names of a hard-linked lower file show its upper copy. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plyctl.h"

/* Opens a stack whose upperdir comes without a workdir: as a stack whose
 * top lower layer is the upper, relabelled as the upper afterwards. */
static int open_without_workdir(struct ply_options *opts,
				 struct ply_stack *ret, struct ply_err *err)
{
	char **lowers = calloc(opts->nlower + 1, sizeof(*lowers));
	char **saved = opts->lowerdirs;
	size_t nsaved = opts->nlower;
	int r;

	if (!lowers)
		return ply_err_set(err, -ENOMEM, "out of memory");
	lowers[0] = opts->upperdir;
	memcpy(lowers + 1, saved, nsaved * sizeof(*lowers));
	opts->lowerdirs = lowers;
	opts->nlower = nsaved + 1;
	opts->upperdir = NULL;
	r = ply_stack_open(ret, opts, err);
	opts->upperdir = lowers[0];
	opts->lowerdirs = saved;
	opts->nlower = nsaved;
	free(lowers);
	if (r < 0)
		return r;
	ret->layers[0].is_upper = true;
	ret->layers[0].id = PLY_LAYER_ID_UPPER;
	/* the ids after it move down by the one the upper took */
	for (size_t i = 1; i < ret->nlayers; i++)
		ret->layers[i].id--;
	ret->has_upper = true;
	return 0;
}

int plyctl_open_stack(const char *optstr, struct ply_stack *ret,
		      struct ply_err *err)
{
	struct ply_options opts;
	int r;

	ply_options_init(&opts);
	r = ply_options_parse(&opts, optstr, err);
	if (r >= 0 && opts.upperdir && !opts.workdir && opts.nlower)
		r = open_without_workdir(&opts, ret, err);
	else if (r >= 0)
		r = ply_stack_open(ret, &opts, err);
	ply_options_free(&opts);
	if (r >= 0 && ret->workfd >= 0 && ret->indexfd < 0) {
		int fd = openat(ret->workfd, PLY_LINKS_SUBDIR,
				O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd >= 0)
			ret->indexfd = fd;
	}
	return r;
}

int plyctl_stack_options(const char *cmd, const char *optstr, const char *mnt,
			 char **ret, bool *ret_live)
{
	struct ply_err err = { "" };
	struct plyctl_live live;

	if (ret_live)
		*ret_live = false;
	if (optstr && mnt) {
		fprintf(stderr,
			"plyctl %s: give the stack as -o OPTS or as MNT, not both ('%s')\n",
			cmd, mnt);
		return PLYCTL_EXIT_USAGE;
	}
	if (!optstr && !mnt) {
		fprintf(stderr,
			"plyctl %s: no stack given (-o lowerdir=...,upperdir=..., or the mountpoint of a running plyfs; see plyctl %s --help)\n",
			cmd, cmd);
		return PLYCTL_EXIT_USAGE;
	}
	if (optstr) {
		*ret = strdup(optstr);
		return *ret ? 0 : 1;
	}
	if (plyctl_live_find(mnt, &live, &err) < 0) {
		fprintf(stderr, "plyctl %s: %s\n", cmd, err.msg);
		return PLYCTL_EXIT_USAGE;
	}
	*ret = live.options;
	live.options = NULL;
	plyctl_live_free(&live);
	if (ret_live)
		*ret_live = true;
	return 0;
}
