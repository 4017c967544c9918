/* cmd-which.c: plyctl which — the layer that provides a path, what it
 * shadows below, and the whiteout or opaque marker that hides it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plyctl.h"

static void which_usage(FILE *out)
{
	fputs("usage: plyctl which -o lowerdir=TOP:...:BOTTOM[,upperdir=U] PATH\n"
	      "       plyctl which MNT PATH\n"
	      "Prints the layer that provides PATH in the merged view, what it\n"
	      "shadows below, and the marker that hides it if it is hidden.\n"
	      "MNT, the mountpoint of a running plyfs, stands for the stack it\n"
	      "serves (splices are not looked at).\n"
	      "Exit status: 0 visible, 1 hidden or absent, 2 usage error.\n",
	      out);
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	default: return "marker";
	}
}

static const char *role_name(enum ply_which_role role)
{
	switch (role) {
	case PLY_ROLE_PROVIDES: return "provides";
	case PLY_ROLE_MERGED: return "merged";
	case PLY_ROLE_HIDES: return "hides below";
	case PLY_ROLE_SHADOWED: return "shadowed";
	case PLY_ROLE_HIDDEN: return "hidden";
	}
	return "?";
}

static void print_layer(const struct ply_stack *stack, uint16_t index)
{
	const struct ply_layer *l = &stack->layers[index];

	if (l->is_upper)
		printf("upper    %s", l->path);
	else
		printf("lower %-2u %s", l->id, l->path);
}

static void print_report(const struct ply_stack *stack, const char *path,
			 const struct ply_which *w)
{
	const struct ply_which_row *top = w->n ? &w->rows[0] : NULL;

	if (w->hidden_at)
		printf("%s: not visible: its parent %s is not a visible directory\n%s:\n",
		       path, w->hidden_path, w->hidden_path);
	else if (w->visible && top)
		printf("%s: %s from %s\n", path, type_name(top->mode),
		       stack->layers[top->layer].path);
	else if (top && top->role == PLY_ROLE_HIDES)
		printf("%s: hidden by a %s in %s\n", path, top->marker,
		       stack->layers[top->layer].path);
	else if (w->n)
		printf("%s: hidden\n", path);
	else
		printf("%s: not in any layer\n", path);
	for (size_t i = 0; i < w->n; i++) {
		const struct ply_which_row *row = &w->rows[i];

		printf("  %-12s ", role_name(row->role));
		print_layer(stack, row->layer);
		printf(": %s", row->role == PLY_ROLE_HIDES ?
				       row->marker :
				       type_name(row->mode));
		if (row->role != PLY_ROLE_HIDES && row->marker[0])
			printf(", %s", row->marker);
		if (row->why[0])
			printf(" (%s %s)",
			       row->role == PLY_ROLE_SHADOWED ? "under" :
								"hidden by",
			       row->why);
		putchar('\n');
	}
}

int plyctl_which(int argc, char **argv)
{
	const char *optstr = NULL, *path = NULL, *args[2] = { NULL, NULL };
	char *opts;
	int nargs = 0;
	struct ply_err err = { "" };
	struct ply_stack stack;
	struct ply_which *w;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			which_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			optstr = argv[++i];
		} else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
			optstr = argv[i] + 2;
		} else if (nargs < 2 && (argv[i][0] != '-' || !argv[i][1])) {
			args[nargs++] = argv[i];
		} else {
			fprintf(stderr, "plyctl which: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	/* with -o, PATH alone; else MNT PATH */
	path = nargs == (optstr ? 1 : 2) ? args[nargs - 1] : NULL;
	if (!path) {
		which_usage(stderr);
		return PLYCTL_EXIT_USAGE;
	}
	r = plyctl_stack_options("which", optstr, optstr ? NULL : args[0],
				 &opts, NULL);
	if (r)
		return r;
	r = plyctl_open_stack(opts, &stack, &err);
	free(opts);
	if (r < 0) {
		fprintf(stderr, "plyctl which: %s\n", err.msg);
		return PLYCTL_EXIT_USAGE;
	}
	w = malloc(sizeof(*w));
	r = w ? ply_which(&stack, path, w, &err) : -12;
	if (r < 0) {
		fprintf(stderr, "plyctl which: %s\n",
			err.msg[0] ? err.msg : strerror(-r));
		r = PLYCTL_EXIT_USAGE;
	} else {
		print_report(&stack, path, w);
		r = w->visible ? 0 : 1;
	}
	free(w);
	ply_stack_close(&stack);
	return r;
}
