/* cmd-convert.c: plyctl convert — rewrites the whiteouts and opaque markers
 * of a layer directory, in whatever formats it holds them, into one
 * format (lib/convert.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plyctl.h"

static void convert_usage(FILE *out)
{
	fputs("usage: plyctl convert --to=chardev|xattr|file [--ns=trusted|user] DIR\n"
	      "Rewrites every whiteout and opaque marker of the layer directory DIR\n"
	      "(character devices 0/0, .wh. files, overlay.whiteout and\n"
	      "overlay.opaque xattrs under trusted. or user.) in one format:\n"
	      "  chardev  character device 0/0 whiteouts, overlay.opaque=y\n"
	      "  xattr    empty files with overlay.whiteout (parent overlay.opaque=x),\n"
	      "           overlay.opaque=y\n"
	      "  file     .wh.NAME files and .wh..wh..opq (OCI, aufs)\n"
	      "--ns picks the xattr namespace (default: trusted as root, else user);\n"
	      "overlay.redirect, metacopy, impure, origin and plyfs.origin move to it\n"
	      "too. Directory times are kept. DIR must not be in use by a mount.\n"
	      "Exit status: 0 done, 1 error, 2 usage error.\n",
	      out);
}

static void print_warning(const char *path, const char *what, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "plyctl convert: %s: %s\n", path, what);
}

int plyctl_convert(int argc, char **argv)
{
	const char *to = NULL, *ns = NULL, *dir = NULL, *xattr_ns;
	struct ply_convert_result res;
	struct ply_err err = { "" };
	enum ply_wh_format format;
	int fd, r;

	for (int i = 1; i < argc; i++) {
		if (plyctl_is_help(argv[i])) {
			convert_usage(stdout);
			return 0;
		} else if (!strncmp(argv[i], "--to=", 5)) {
			to = argv[i] + 5;
		} else if (!strncmp(argv[i], "--ns=", 5)) {
			ns = argv[i] + 5;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			fprintf(stderr, "plyctl convert: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	if (!to || !dir) {
		fprintf(stderr, "plyctl convert: need --to=FORMAT and DIR (see plyctl convert --help)\n");
		return PLYCTL_EXIT_USAGE;
	}
	if (plyctl_parse_whiteout(to, &format, &xattr_ns) < 0) {
		fprintf(stderr, "plyctl convert: --to=%s: not chardev, xattr or file\n",
			to);
		return PLYCTL_EXIT_USAGE;
	}
	if (ns && !strcmp(ns, "trusted"))
		xattr_ns = "trusted.";
	else if (ns && !strcmp(ns, "user"))
		xattr_ns = "user.";
	else if (ns) {
		fprintf(stderr, "plyctl convert: --ns=%s: not trusted or user\n",
			ns);
		return PLYCTL_EXIT_USAGE;
	}
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "plyctl convert: %s: %s\n", dir, strerror(errno));
		return PLYCTL_EXIT_USAGE;
	}
	r = ply_convert_layer(fd, format, xattr_ns, print_warning, NULL, &res,
			      &err);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "plyctl convert: %s: %s\n", dir, err.msg);
		return 1;
	}
	return 0;
}
