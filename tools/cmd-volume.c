/* cmd-volume.c: plyctl volume — create, list, inspect and remove the
 * volumes of a volume store (lib/volstore.c), offline, as mounts use them:
 * a volume a mount holds is never removed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plyctl.h"

#define EXIT_FAILED 1

static void volume_usage(FILE *out)
{
	fputs("usage: plyctl volume COMMAND [--store DIR] [ARGS]\n"
	      "Manages the volumes that plyfs mounts splice in with volume=.\n"
	      "\n"
	      "commands:\n"
	      "  create [NAME]       create volume NAME (none: an anonymous one)\n"
	      "  ls [--json]         list volumes: in use by which mounts, size\n"
	      "  inspect NAME        show a volume as JSON\n"
	      "  rm [-f] NAME...     remove volumes no mount is using\n"
	      "  prune [--all]       remove unused anonymous volumes (--all: every\n"
	      "                      unused volume)\n"
	      "\n"
	      "--store DIR          the volume store (default: $XDG_DATA_HOME/plyfs,\n"
	      "                     ~/.local/share/plyfs, or /var/lib/plyfs for root;\n"
	      "                     plyfs takes it as volstore=DIR)\n"
	      "Exit status: 0 done, 1 refused or failed, 2 usage error.\n"
	      "plyctl volume COMMAND --help shows a command's usage.\n",
	      out);
}

struct sub {
	const char *name;
	const char *usage; /* after "usage: plyctl volume " */
	const char *help;
	int (*run)(const char *store, int argc, char **argv);
};

/* ---- output helpers ------------------------------------------------------ */

static void json_string(FILE *out, const char *s)
{
	if (!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		case '\r': fputs("\\r", out); break;
		default:
			if (*p < 0x20)
				fprintf(out, "\\u%04x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

static void json_strings(FILE *out, char **v, size_t n)
{
	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(", ", out);
		json_string(out, v[i]);
	}
	fputc(']', out);
}

/* du -h style: 0B, 512B, 4.0K, 1.5M, 1.0G. */
static void human_size(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%lluB", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* Opens the store: only create makes a missing one. *ret_missing says a
 * store that does not exist yet (which holds no volume). */
static int open_store(const char *store, bool create, struct ply_volstore *vs,
		      bool *ret_missing)
{
	struct ply_err err = { "" };
	int r = ply_volstore_open(store, create, vs, &err);

	if (ret_missing)
		*ret_missing = r == -ENOENT;
	if (r == -ENOENT && ret_missing)
		return r;
	if (r < 0)
		fprintf(stderr, "plyctl volume: %s\n", err.msg);
	return r;
}

static int usage_error(const char *cmd, const char *arg)
{
	fprintf(stderr, "plyctl volume %s: unexpected argument '%s'\n", cmd,
		arg);
	return PLYCTL_EXIT_USAGE;
}

static bool is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

static bool check_name(const char *cmd, const char *name)
{
	if (ply_volstore_name_ok(name))
		return true;
	fprintf(stderr,
		"plyctl volume %s: invalid volume name '%s': use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 128 bytes\n",
		cmd, name);
	return false;
}

/* ---- create -------------------------------------------------------------- */

static int cmd_create(const char *store, int argc, char **argv)
{
	struct ply_err err = { "" };
	struct ply_volstore vs;
	char *name = NULL;
	bool created;
	int r;

	if (argc > 1) {
		fprintf(stderr, "plyctl volume create: one NAME at most\n");
		return PLYCTL_EXIT_USAGE;
	}
	if (argc == 1 && argv[0][0] == '-')
		return usage_error("create", argv[0]);
	if (argc == 1 && !check_name("create", argv[0]))
		return PLYCTL_EXIT_USAGE;
	if (open_store(store, true, &vs, NULL) < 0)
		return EXIT_FAILED;
	r = ply_volstore_create(&vs, argc ? argv[0] : NULL, &name, &created,
				&err);
	ply_volstore_close(&vs);
	if (r < 0) {
		fprintf(stderr, "plyctl volume create: %s\n", err.msg);
		return EXIT_FAILED;
	}
	printf("%s\n", name);
	free(name);
	return 0;
}

/* ---- ls ------------------------------------------------------------------ */

struct row {
	struct ply_volume_info info;
	bool have_size;
	uint64_t size;
	char size_str[16];
	char *in_use_str;
};

static char *in_use_text(const struct ply_volume_info *info)
{
	size_t len = 8;
	char *s;

	if (!info->in_use)
		return strdup("no");
	for (size_t i = 0; i < info->nmountpoints; i++)
		len += strlen(info->mountpoints[i]) + 2;
	s = malloc(len + 4);
	if (!s)
		return NULL;
	strcpy(s, "yes");
	for (size_t i = 0; i < info->nmountpoints; i++) {
		strcat(s, i ? ", " : " (");
		strcat(s, info->mountpoints[i]);
	}
	if (info->nmountpoints)
		strcat(s, ")");
	return s;
}

static void print_table(struct row *rows, size_t n)
{
	int wname = 4, wuse = 6, wsize = 4;

	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(rows[i].info.name);

		wname = l > wname ? l : wname;
		l = (int)strlen(rows[i].in_use_str);
		wuse = l > wuse ? l : wuse;
		l = (int)strlen(rows[i].size_str);
		wsize = l > wsize ? l : wsize;
	}
	printf("%-*s  %-*s  %*s  %s\n", wname, "NAME", wuse, "IN USE", wsize,
	       "SIZE", "ANONYMOUS");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-*s  %*s  %s\n", wname, rows[i].info.name, wuse,
		       rows[i].in_use_str, wsize, rows[i].size_str,
		       rows[i].info.anonymous ? "yes" : "no");
}

static void print_json_row(const struct row *row, bool last)
{
	const struct ply_volume_info *info = &row->info;

	printf("  {\"name\": ");
	json_string(stdout, info->name);
	printf(", \"path\": ");
	json_string(stdout, info->data_path);
	printf(", \"created\": ");
	json_string(stdout, info->created[0] ? info->created : NULL);
	printf(", \"anonymous\": %s, \"in_use\": %s, \"mountpoints\": ",
	       info->anonymous ? "true" : "false",
	       info->in_use ? "true" : "false");
	json_strings(stdout, info->mountpoints, info->nmountpoints);
	if (row->have_size)
		printf(", \"size\": %llu}", (unsigned long long)row->size);
	else
		printf(", \"size\": null}");
	printf("%s\n", last ? "" : ",");
}

static int cmd_ls(const char *store, int argc, char **argv)
{
	struct ply_err err = { "" };
	struct ply_volstore vs;
	struct row *rows = NULL;
	char **names = NULL;
	size_t nnames = 0, nrows = 0;
	bool json = false, missing;
	int status = 0, r;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json")) {
			fprintf(stderr, "plyctl volume ls: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
		json = true;
	}
	r = open_store(store, false, &vs, &missing);
	if (r < 0 && !missing)
		return EXIT_FAILED;
	if (r >= 0) {
		r = ply_volstore_list(&vs, &names, &nnames, &err);
		if (r < 0) {
			fprintf(stderr, "plyctl volume ls: %s\n", err.msg);
			ply_volstore_close(&vs);
			return EXIT_FAILED;
		}
		rows = calloc(nnames ? nnames : 1, sizeof(*rows));
		if (!rows) {
			fprintf(stderr, "plyctl volume ls: out of memory\n");
			status = EXIT_FAILED;
			nnames = 0;
		}
	}
	for (size_t i = 0; i < nnames; i++) {
		struct row *row = &rows[nrows];

		r = ply_volstore_inspect(&vs, names[i], &row->info, &err);
		if (r == -ENOENT)
			continue; /* removed meanwhile */
		if (r < 0) {
			fprintf(stderr, "plyctl volume ls: %s\n", err.msg);
			status = EXIT_FAILED;
			continue;
		}
		r = ply_volstore_size(&vs, names[i], &row->size, &err);
		row->have_size = r >= 0;
		if (r >= 0)
			human_size(row->size, row->size_str,
				   sizeof(row->size_str));
		else
			strcpy(row->size_str, "?");
		row->in_use_str = in_use_text(&row->info);
		if (!row->in_use_str) {
			ply_volume_info_free(&row->info);
			status = EXIT_FAILED;
			continue;
		}
		nrows++;
	}
	if (json) {
		printf("[\n");
		for (size_t i = 0; i < nrows; i++)
			print_json_row(&rows[i], i + 1 == nrows);
		printf("]\n");
	} else {
		print_table(rows, nrows);
	}
	for (size_t i = 0; i < nrows; i++) {
		ply_volume_info_free(&rows[i].info);
		free(rows[i].in_use_str);
	}
	free(rows);
	ply_strv_free(names, nnames);
	if (!missing)
		ply_volstore_close(&vs);
	return status;
}

/* ---- inspect ------------------------------------------------------------- */

static int cmd_inspect(const char *store, int argc, char **argv)
{
	struct ply_volume_info info;
	struct ply_err err = { "" };
	struct ply_volstore vs;
	bool missing;
	int r;

	if (argc != 1) {
		fprintf(stderr, "plyctl volume inspect: one NAME expected\n");
		return PLYCTL_EXIT_USAGE;
	}
	if (argv[0][0] == '-')
		return usage_error("inspect", argv[0]);
	if (!check_name("inspect", argv[0]))
		return PLYCTL_EXIT_USAGE;
	r = open_store(store, false, &vs, &missing);
	if (missing) {
		fprintf(stderr, "plyctl volume inspect: no such volume: %s\n",
			argv[0]);
		return EXIT_FAILED;
	}
	if (r < 0)
		return EXIT_FAILED;
	r = ply_volstore_inspect(&vs, argv[0], &info, &err);
	ply_volstore_close(&vs);
	if (r < 0) {
		fprintf(stderr, "plyctl volume inspect: %s\n", err.msg);
		return EXIT_FAILED;
	}
	printf("{\n  \"name\": ");
	json_string(stdout, info.name);
	printf(",\n  \"path\": ");
	json_string(stdout, info.data_path);
	printf(",\n  \"created\": ");
	json_string(stdout, info.created[0] ? info.created : NULL);
	printf(",\n  \"anonymous\": %s,\n  \"in_use\": %s,\n  \"mountpoints\": ",
	       info.anonymous ? "true" : "false",
	       info.in_use ? "true" : "false");
	json_strings(stdout, info.mountpoints, info.nmountpoints);
	printf("\n}\n");
	ply_volume_info_free(&info);
	return 0;
}

/* ---- rm ------------------------------------------------------------------ */

static int cmd_rm(const char *store, int argc, char **argv)
{
	struct ply_volstore vs;
	bool force = false, missing;
	int status = 0, n = 0, r;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force"))
			force = true;
		else if (argv[i][0] == '-')
			return usage_error("rm", argv[i]);
		else
			argv[n++] = argv[i];
	}
	argc = n;
	if (argc < 1) {
		fprintf(stderr, "plyctl volume rm: NAME expected\n");
		return PLYCTL_EXIT_USAGE;
	}
	for (int i = 0; i < argc; i++)
		if (!check_name("rm", argv[i]))
			return PLYCTL_EXIT_USAGE;
	r = open_store(store, false, &vs, &missing);
	if (r < 0 && !missing)
		return EXIT_FAILED;
	for (int i = 0; i < argc; i++) {
		struct ply_err err = { "" };

		r = missing ? ply_err_set(&err, -ENOENT, "no such volume: %s",
					  argv[i]) :
			      ply_volstore_remove(&vs, argv[i], &err);
		if (r == -ENOENT && force)
			continue;
		if (r < 0) {
			/* -f never removes a volume a mount uses */
			fprintf(stderr, "plyctl volume rm: %s\n", err.msg);
			status = EXIT_FAILED;
			continue;
		}
		printf("%s\n", argv[i]);
	}
	if (!missing)
		ply_volstore_close(&vs);
	return status;
}

/* ---- prune --------------------------------------------------------------- */

static void print_removed(const char *name, void *ctx)
{
	(void)ctx;
	printf("%s\n", name);
	fflush(stdout);
}

static int cmd_prune(const char *store, int argc, char **argv)
{
	struct ply_err err = { "" };
	struct ply_volstore vs;
	bool all = false, missing;
	int r;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--all"))
			return usage_error("prune", argv[i]);
		all = true;
	}
	r = open_store(store, false, &vs, &missing);
	if (missing)
		return 0; /* no store, nothing to prune */
	if (r < 0)
		return EXIT_FAILED;
	r = ply_volstore_prune(&vs, all, print_removed, NULL, &err);
	ply_volstore_close(&vs);
	if (r < 0) {
		fprintf(stderr, "plyctl volume prune: %s\n", err.msg);
		return EXIT_FAILED;
	}
	return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

static const struct sub subs[] = {
	{ "create", "create [--store DIR] [NAME]",
	  "Creates volume NAME in the store (creating the store too), or an\n"
	  "anonymous volume with a random 64-hex-digit name when NAME is left\n"
	  "out, and prints its name. An existing volume is left as it is.\n",
	  cmd_create },
	{ "ls", "ls [--store DIR] [--json]",
	  "Lists the volumes: NAME, IN USE (yes, with the mountpoints of the\n"
	  "mounts using it, or no), SIZE (the space its files take, as du\n"
	  "counts it) and ANONYMOUS. --json prints a JSON array, sizes in bytes.\n",
	  cmd_ls },
	{ "inspect", "inspect [--store DIR] NAME",
	  "Prints the volume as a JSON object: name, path (of its files),\n"
	  "created (RFC 3339, UTC), anonymous, in_use and mountpoints.\n",
	  cmd_inspect },
	{ "rm", "rm [--store DIR] [-f] NAME...",
	  "Removes the volumes and all their files. A volume a mount is using\n"
	  "is refused, naming the mount, and -f does not change that; -f only\n"
	  "makes a volume that does not exist no error.\n",
	  cmd_rm },
	{ "prune", "prune [--store DIR] [--all]",
	  "Removes every anonymous volume no mount is using (--all: every\n"
	  "volume no mount is using) and prints the name of each.\n",
	  cmd_prune },
};

static void sub_usage(const struct sub *s, FILE *out)
{
	fprintf(out, "usage: plyctl volume %s\n%s", s->usage, s->help);
	fprintf(out, "Exit status: 0 done, 1 refused or failed, 2 usage error.\n");
}

/* Takes --store DIR / --store=DIR out of argv (anywhere before a "--"),
 * answers --help, and leaves the rest in order for the subcommand. */
static int take_store(const struct sub *s, int *argc, char **argv,
		      const char **ret_store)
{
	int out = 0;
	bool dashdash = false;

	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i];

		if (!dashdash && !strcmp(a, "--")) {
			dashdash = true;
			continue;
		}
		if (!dashdash && !strcmp(a, "--store")) {
			if (i + 1 >= *argc) {
				fprintf(stderr,
					"plyctl volume %s: --store needs a DIR\n",
					s->name);
				return PLYCTL_EXIT_USAGE;
			}
			*ret_store = argv[++i];
			continue;
		}
		if (!dashdash && !strncmp(a, "--store=", 8)) {
			*ret_store = a + 8;
			continue;
		}
		if (!dashdash && is_help(a)) {
			sub_usage(s, stdout);
			return -1;
		}
		argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	if (*ret_store && !(*ret_store)[0]) {
		fprintf(stderr, "plyctl volume %s: --store needs a DIR\n",
			s->name);
		return PLYCTL_EXIT_USAGE;
	}
	return 0;
}

int plyctl_volume(int argc, char **argv)
{
	const char *store = NULL;
	const struct sub *s = NULL;
	int i = 1, r;

	/* --store may come before the command, too */
	while (i < argc && !strncmp(argv[i], "--store", 7)) {
		if (!strcmp(argv[i], "--store") && i + 1 < argc) {
			store = argv[i + 1];
			i += 2;
		} else if (!strncmp(argv[i], "--store=", 8)) {
			store = argv[i] + 8;
			i++;
		} else {
			volume_usage(stderr);
			return PLYCTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		volume_usage(stderr);
		return PLYCTL_EXIT_USAGE;
	}
	if (is_help(argv[i])) {
		volume_usage(stdout);
		return 0;
	}
	for (size_t j = 0; j < sizeof(subs) / sizeof(*subs); j++)
		if (!strcmp(argv[i], subs[j].name))
			s = &subs[j];
	if (!s) {
		fprintf(stderr,
			"plyctl volume: unknown command '%s' (see plyctl volume --help)\n",
			argv[i]);
		return PLYCTL_EXIT_USAGE;
	}
	argc -= i + 1;
	argv += i + 1;
	r = take_store(s, &argc, argv, &store);
	if (r < 0)
		return 0; /* --help answered */
	if (r > 0)
		return r;
	return s->run(store, argc, argv);
}
