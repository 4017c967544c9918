/* cmd-check.c: plyctl check — verifies an unmounted stack's upper and work
 * directories (lib/check.c) and, with --repair, removes what is safe to
 * remove, saying what it did. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plyctl.h"

static void check_usage(FILE *out)
{
	fputs("usage: plyctl check -o lowerdir=TOP:...:BOTTOM,upperdir=U[,workdir=W][,whiteout=F] [--repair]\n"
	      "       plyctl check MNT\n"
	      "Verifies an unmounted stack and lists each problem, one a line:\n"
	      "  temporary              WORKDIR/work/#plyfs-* left by a crash\n"
	      "  whiteout-over-nothing  a whiteout in the upper hiding no lower name\n"
	      "  redirect-nowhere       overlay.redirect to no lower directory\n"
	      "  index-orphan           a WORKDIR/plyfs-index entry of no lower file\n"
	      "  index-unlinked         an index entry no upper name links to\n"
	      "  foreign-marker         a marker in a format (or xattr namespace)\n"
	      "                         a mount of this stack would not write\n"
	      "  bad-xattr              a malformed overlay.*, plyfs.* or override xattr\n"
	      "The format a mount would write is probed as plyfs does (whiteout=\n"
	      "forces it). --repair removes temporaries, index-orphan and\n"
	      "index-unlinked entries and whiteouts over nothing, which leaves the\n"
	      "merged view as it is; the others are reported only (plyctl convert\n"
	      "rewrites markers). A stack in use by a mount is refused; MNT, the\n"
	      "mountpoint of a running plyfs, checks the stack it serves read-only\n"
	      "(a temporary may then be a copy-up in progress; --repair is refused).\n"
	      "Exit status: 0 no problem (left), 1 problems found (and not all\n"
	      "repaired) or an error, 2 usage error.\n",
	      out);
}

static void print_problem(const struct ply_problem *p, void *ctx)
{
	(void)ctx;
	printf("%-22s %s: %s", ply_problem_name(p->kind), p->where, p->what);
	if (p->repaired > 0)
		printf(" [repaired: removed]");
	else if (p->repaired < 0)
		printf(" [not repaired: %s]", strerror(-p->repaired));
	putchar('\n');
}

/* Probes, as a mount would, which markers the upper takes; in WORKDIR
 * (its work/ when there is one), where the probe's scratch file goes. */
static int probe(struct ply_stack *stack, enum ply_wh_format forced,
		 struct ply_err *err)
{
	int fd, r;

	if (stack->workfd < 0) {
		const char *ns;
		enum ply_wh_format def;

		plyctl_parse_whiteout(NULL, &def, &ns);
		stack->wh_format = forced != PLY_WH_AUTO ? forced : def;
		stack->xattr_ns = stack->wh_format == PLY_WH_FILE ? NULL : ns;
		return 0;
	}
	fd = openat(stack->workfd, PLY_WORK_SUBDIR,
		    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fd = fcntl(stack->workfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return ply_err_set(err, -errno, "workdir: %s", strerror(errno));
	r = ply_stack_probe_upper(stack, fd, forced, err);
	close(fd);
	return r;
}

int plyctl_check(int argc, char **argv)
{
	const char *optstr = NULL, *mnt = NULL;
	char *optbuf;
	struct ply_err err = { "" };
	struct ply_check_result res = { 0, 0 };
	struct ply_options opts;
	struct ply_stack stack;
	bool repair = false, live;
	int r, lockfd = -1;

	for (int i = 1; i < argc; i++) {
		if (plyctl_is_help(argv[i])) {
			check_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			optstr = argv[++i];
		} else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
			optstr = argv[i] + 2;
		} else if (!strcmp(argv[i], "--repair")) {
			repair = true;
		} else if (!mnt && argv[i][0] != '-') {
			mnt = argv[i];
		} else {
			fprintf(stderr, "plyctl check: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	r = plyctl_stack_options("check", optstr, mnt, &optbuf, &live);
	if (r)
		return r;
	if (live && repair) {
		fprintf(stderr, "plyctl check: --repair needs the stack unmounted: %s is a running plyfs (unmount it first)\n",
			mnt);
		free(optbuf);
		return 1;
	}
	ply_options_init(&opts);
	r = ply_options_parse(&opts, optbuf, &err);
	if (r >= 0 && !opts.upperdir)
		r = ply_err_set(&err, -EINVAL,
				"the stack has no upperdir: nothing to check");
	if (r >= 0)
		r = plyctl_open_stack(optbuf, &stack, &err);
	free(optbuf);
	if (r < 0) {
		fprintf(stderr, "plyctl check: %s\n", err.msg);
		ply_options_free(&opts);
		return PLYCTL_EXIT_USAGE;
	}
	/* a live mount holds the lock: read beside it, change nothing */
	if (stack.workfd >= 0 && !live) {
		r = ply_check_lock(&stack, &lockfd, &err);
		if (r == -EBUSY && !repair)
			snprintf(err.msg + strlen(err.msg),
				 sizeof(err.msg) - strlen(err.msg),
				 " (or check it through the mount: plyctl check MNT)");
	}
	if (r >= 0)
		r = probe(&stack, opts.whiteout, &err);
	ply_options_free(&opts);
	if (r >= 0)
		r = ply_check(&stack, repair, print_problem, NULL, &res, &err);
	if (lockfd >= 0)
		close(lockfd);
	ply_stack_close(&stack);
	if (r < 0) {
		fprintf(stderr, "plyctl check: %s\n",
			err.msg[0] ? err.msg : strerror(-r));
		return 1;
	}
	if (!res.found)
		printf("no problems found\n");
	else if (repair)
		printf("%zu problem%s found, %zu repaired\n", res.found,
		       res.found == 1 ? "" : "s", res.repaired);
	else
		printf("%zu problem%s found\n", res.found,
		       res.found == 1 ? "" : "s");
	if (fflush(stdout) != 0)
		return 1;
	return res.found > res.repaired ? 1 : 0;
}
