/* cmd-import.c: plyctl import — the command line: an OCI layer tar (plain
 * or compressed) opened and handed to the importer (import.c), which
 * unpacks it into a layer directory with its markers in the chosen
 * format. */
#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import.h"
#include "plyctl.h"
#include "progress.h"

static void import_usage(FILE *out)
{
	fputs("usage: plyctl import [--whiteout=chardev|xattr|file] TAR DIR\n"
	      "Unpacks the OCI layer archive TAR (plain or compressed, - for\n"
	      "standard input) into the layer directory DIR (created if missing),\n"
	      "turning its .wh.NAME whiteouts and .wh..wh..opq markers into the\n"
	      "chosen format (default: chardev as root, else xattr under user.;\n"
	      "file keeps the OCI form). Entries that would write outside DIR\n"
	      "(absolute names, .., paths through symlinks, hard links to missing\n"
	      "or outside targets), entries inside a .wh. marker name, or\n"
	      "names over NAME_MAX are refused; device nodes are skipped with\n"
	      "a warning when we may not create them.\n"
	      "Exit status: 0 done, 1 entries refused or an error, 2 usage error.\n",
	      out);
}

int plyctl_import(int argc, char **argv)
{
	const char *tar = NULL, *dir = NULL, *wh = NULL;
	struct plyctl_import opts = { 0 };
	struct plyctl_import_result res;
	struct archive *a;
	int rootfd, r, status = 0;

	for (int i = 1; i < argc; i++) {
		if (plyctl_is_help(argv[i])) {
			import_usage(stdout);
			return 0;
		} else if (!strncmp(argv[i], "--whiteout=", 11)) {
			wh = argv[i] + 11;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "plyctl import: unknown option '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		} else if (!tar) {
			tar = argv[i];
		} else if (!dir) {
			dir = argv[i];
		} else {
			fprintf(stderr, "plyctl import: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	if (!tar || !dir) {
		fprintf(stderr, "plyctl import: need TAR and DIR (see plyctl import --help)\n");
		return PLYCTL_EXIT_USAGE;
	}
	if (plyctl_parse_whiteout(wh, &opts.wh_format, &opts.xattr_ns) < 0) {
		fprintf(stderr, "plyctl import: --whiteout=%s: not chardev, xattr or file\n",
			wh);
		return PLYCTL_EXIT_USAGE;
	}
	opts.root = geteuid() == 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "plyctl import: %s: %s\n", dir, strerror(errno));
		return PLYCTL_EXIT_USAGE;
	}
	rootfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		fprintf(stderr, "plyctl import: %s: %s\n", dir, strerror(errno));
		return PLYCTL_EXIT_USAGE;
	}
	a = archive_read_new();
	if (!a) {
		close(rootfd);
		fprintf(stderr, "plyctl import: out of memory\n");
		return 1;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	r = archive_read_open_filename(a, strcmp(tar, "-") ? tar : NULL,
				       256 * 1024);
	if (r != ARCHIVE_OK) {
		fprintf(stderr, "plyctl import: %s: %s\n", tar,
			archive_error_string(a));
		archive_read_free(a);
		close(rootfd);
		return PLYCTL_EXIT_USAGE;
	}
	{
		struct stat tst;

		/* the bar follows the archive's own bytes, read so far */
		plyctl_progress_begin("import",
				      strcmp(tar, "-") && stat(tar, &tst) == 0 &&
						      S_ISREG(tst.st_mode) ?
					      (uint64_t)tst.st_size :
					      0);
	}
	r = plyctl_import_archive(a, rootfd, &opts, &res);
	plyctl_progress_end();
	if (r < 0) {
		const char *why = archive_error_string(a);

		if (!why)
			why = "cannot read the archive";
		/* libarchive's "Truncated input file (needed 3584 bytes, only
		 * 0 available)", "truncated gzip input", ... */
		if (!strncasecmp(why, "truncated", 9))
			why = "truncated archive";
		if (res.cut[0])
			fprintf(stderr,
				"plyctl import: %s: %s: '%s' is cut short and left out\n",
				tar, why, res.cut);
		else
			fprintf(stderr, "plyctl import: %s: %s\n", tar, why);
		status = 1;
	}
	archive_read_free(a);
	close(rootfd);
	if (res.refused) {
		fprintf(stderr, "plyctl import: %u entr%s refused\n", res.refused,
			res.refused == 1 ? "y" : "ies");
		status = 1;
	}
	return status;
}
