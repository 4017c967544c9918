/* args.c: the command line of plyfs, in the shape fuse-overlayfs and
 * mount.fuse3 use: [-f] [-d] [-s] [-o OPTS]... [SOURCE] MOUNTPOINT. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "plyfs.h"

void plyfs_usage(FILE *out)
{
	fputs("usage: plyfs [-f] [-d] [-s] -o lowerdir=TOP:...:BOTTOM"
	      "[,upperdir=UPPER,workdir=WORK][,OPTION...] [SOURCE] MOUNTPOINT\n"
	      "\n"
	      "  -f            stay in the foreground\n"
	      "  -d            debug output (implies -f)\n"
	      "  -s            single-threaded\n"
	      "  -o OPTIONS    comma-separated mount options:\n"
	      "      lowerdir=A:B:...  read-only layers, leftmost on top; \\: escapes a colon\n"
	      "      upperdir=DIR      the writable layer\n"
	      "      workdir=DIR       scratch space on upperdir's filesystem\n"
	      "      timeout=SECS      how long the kernel caches names and attributes\n"
	      "      fsync=0           do not sync copy-ups\n"
	      "      volatile          no syncs; an unclean stop is refused at the next mount\n"
	      "      whiteout=auto|chardev|xattr|file  how the upper records deletions\n"
	      "      noacl             the kernel does not enforce POSIX ACLs\n"
	      "      threaded=0|1      multithreaded request loop (default 1)\n"
	      "      allow_other, default_permissions, ro, fsname=..., and the other\n"
	      "      FUSE mount options are passed on; fuse-overlayfs options are accepted\n"
	      "  -V, --version print the version\n"
	      "  -h, --help    print this help\n",
	      out);
}

int plyfs_cli_parse(int argc, char **argv, struct plyfs_cli *cli,
		    struct ply_err *err)
{
	const char *positional[2];
	size_t npositional = 0;
	bool options_end = false;
	int r;

	memset(cli, 0, sizeof(*cli));
	ply_options_init(&cli->opts);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options_end || a[0] != '-' || !a[1]) {
			if (npositional == 2)
				return ply_err_set(err, -EINVAL,
						   "unexpected argument '%s'", a);
			positional[npositional++] = a;
		} else if (!strcmp(a, "--")) {
			options_end = true;
		} else if (!strcmp(a, "-f")) {
			cli->foreground = true;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--debug")) {
			cli->debug = cli->foreground = true;
		} else if (!strcmp(a, "-s")) {
			cli->single_thread = true;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			cli->version = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			cli->help = true;
		} else if (!strncmp(a, "-o", 2)) {
			const char *o = a[2] ? a + 2 : argv[++i];

			if (!o)
				return ply_err_set(err, -EINVAL,
						   "-o needs an option list");
			r = ply_options_parse(&cli->opts, o, err);
			if (r < 0)
				return r;
		} else {
			return ply_err_set(err, -EINVAL, "unknown flag '%s'",
					   a);
		}
	}
	if (cli->version || cli->help)
		return 0;
	if (npositional == 0)
		return ply_err_set(err, -EINVAL,
				   "no mountpoint given (see plyfs --help)");
	cli->mountpoint = positional[npositional - 1];
	cli->source = npositional == 2 ? positional[0] : NULL;
	return 0;
}
