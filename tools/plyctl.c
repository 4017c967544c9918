/* plyctl: the toolbox for layer stacks, working offline through libply. */
#include <stdio.h>
#include <string.h>

#include "plyctl.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "which", plyctl_which,
	  "which layer provides a path, and what it shadows or what hides it" },
	{ "diff", plyctl_diff, "what the upper layer changed (A, C, D)" },
	{ "commit", plyctl_commit,
	  "the upper layer's changes as a new layer (directory or OCI tar)" },
	{ "export", plyctl_export, "the merged view as a tar archive" },
	{ "cp", plyctl_cp,
	  "copy files out of a stack or into it (cp -a semantics)" },
	{ "check", plyctl_check,
	  "verify a stack's upper and workdir; --repair fixes what is safe" },
	{ "convert", plyctl_convert,
	  "rewrite a layer's whiteouts and opaque markers in one format" },
	{ "import", plyctl_import,
	  "unpack an OCI layer tar into a layer directory" },
	{ "volume", plyctl_volume,
	  "create, list, inspect and remove the volumes of a volume store" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: plyctl COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(out, "\nplyctl COMMAND --help shows a command's usage.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return PLYCTL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("plyctl version %s\n", PLY_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "plyctl: unknown command '%s' (see plyctl --help)\n",
		argv[1]);
	return PLYCTL_EXIT_USAGE;
}
