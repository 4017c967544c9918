/* cmd-diff.c: plyctl diff — what the upper layer changed, in docker diff's
 * form (A added, C changed, D deleted), or as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plyctl.h"

static void diff_usage(FILE *out)
{
	fputs("usage: plyctl diff -o lowerdir=TOP:...:BOTTOM,upperdir=U[,workdir=W] [--json]\n"
	      "       plyctl diff MNT [--json]\n"
	      "Lists what the upper layer changes in the merged view, one path a\n"
	      "line: A added, C changed (parents of changes too), D deleted.\n"
	      "Paths come sorted, each directory before what it holds.\n"
	      "  --json  an array of {\"path\": ..., \"kind\": \"A\"|\"C\"|\"D\"}\n"
	      "MNT, the mountpoint of a running plyfs, stands for the stack it\n"
	      "serves; changes in flight may or may not be listed.\n"
	      "Exit status: 0 done, 1 error reading the stack, 2 usage error.\n",
	      out);
}

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

int plyctl_diff(int argc, char **argv)
{
	const char *optstr = NULL, *mnt = NULL;
	char *opts;
	struct ply_err err = { "" };
	struct ply_changes changes;
	struct ply_stack stack;
	bool json = false;
	int r;

	for (int i = 1; i < argc; i++) {
		if (plyctl_is_help(argv[i])) {
			diff_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			optstr = argv[++i];
		} else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
			optstr = argv[i] + 2;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!mnt && argv[i][0] != '-') {
			mnt = argv[i];
		} else {
			fprintf(stderr, "plyctl diff: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	r = plyctl_stack_options("diff", optstr, mnt, &opts, NULL);
	if (r)
		return r;
	r = plyctl_open_stack(opts, &stack, &err);
	free(opts);
	if (r < 0) {
		fprintf(stderr, "plyctl diff: %s\n", err.msg);
		return PLYCTL_EXIT_USAGE;
	}
	if (!stack.has_upper) {
		fprintf(stderr, "plyctl diff: the stack has no upperdir: nothing to compare\n");
		ply_stack_close(&stack);
		return PLYCTL_EXIT_USAGE;
	}
	r = ply_diff_list(&stack, &changes, &err);
	ply_stack_close(&stack);
	if (r < 0) {
		fprintf(stderr, "plyctl diff: %s\n",
			err.msg[0] ? err.msg : strerror(-r));
		return 1;
	}
	if (json)
		putchar('[');
	for (size_t i = 0; i < changes.n; i++) {
		const struct ply_change *c = &changes.v[i];

		if (json) {
			printf("%s\n  {\"path\": ", i ? "," : "");
			json_string(c->path);
			printf(", \"kind\": \"%c\"}", c->kind);
		} else {
			printf("%c %s\n", c->kind, c->path);
		}
	}
	if (json)
		printf("%s]\n", changes.n ? "\n" : "");
	ply_changes_free(&changes);
	return fflush(stdout) == 0 ? 0 : 1;
}
