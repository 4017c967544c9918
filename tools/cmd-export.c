/* cmd-export.c: plyctl export — the merged view of a stack as one tar, as
 * docker export writes a container's: walked through lib's lookup and
 * merged listing, names sorted, symlinks never followed. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plyctl.h"
#include "progress.h"

static void export_usage(FILE *out)
{
	fputs("usage: plyctl export -o lowerdir=TOP:...:BOTTOM[,upperdir=U[,workdir=W]] [-f FILE|-]\n"
	      "       plyctl export MNT [-f FILE|-]\n"
	      "Writes the merged view of the stack as a tar archive (pax: owners,\n"
	      "modes, times, xattrs, hard links, devices, fifos, symlinks, holes)\n"
	      "to FILE, or to standard output (-, the default). MNT, the mountpoint\n"
	      "of a running plyfs, stands for the stack it serves (its layers, not\n"
	      "its splices); changes in flight may or may not be included.\n"
	      "Exit status: 0 done, 1 error, 2 usage error.\n",
	      out);
}

struct exporter {
	const struct ply_stack *stack;
	struct plyctl_tar *tar;
	struct ply_err *err;
	char path[PATH_MAX]; /* relative, "" for the root */
	size_t len;
};

static int export_dir(struct exporter *x, const struct ply_lookup *dir);

static int export_one(struct exporter *x, const struct ply_lookup *dir,
		      const char *name)
{
	struct ply_lookup lk;
	size_t saved = x->len, len = strlen(name);
	struct stat st;
	int r;

	if (x->len + len + 2 >= sizeof(x->path))
		return ply_err_set(x->err, -ENAMETOOLONG,
				   "%s/%s: path too long", x->path, name);
	if (x->len)
		x->path[x->len++] = '/';
	memcpy(x->path + x->len, name, len + 1);
	x->len += len;
	r = ply_lookup_name(x->stack, dir->parts, dir->nparts, name, &lk);
	if (r == -ENOENT) {
		r = 0; /* gone meanwhile */
		goto out;
	}
	if (r < 0) {
		r = ply_err_set(x->err, r, "/%s: %s", x->path, strerror(-r));
		goto out;
	}
	/* the real object's stat: owner, mode, times, links, device */
	if (fstat(lk.parts[0].fd, &st) < 0) {
		r = ply_err_set(x->err, -errno, "/%s: %s", x->path,
				strerror(errno));
	} else {
		r = plyctl_tar_object(x->tar, x->path, &st, lk.parts[0].fd,
				      ply_diff_data_part(&lk)->fd, x->err);
		plyctl_progress_add(S_ISREG(st.st_mode) ?
					    (uint64_t)st.st_size :
					    0,
				    1);
		if (r >= 0 && S_ISDIR(st.st_mode))
			r = export_dir(x, &lk);
	}
	ply_lookup_release(&lk);
out:
	x->len = saved;
	x->path[saved] = '\0';
	return r;
}

static int export_dir(struct exporter *x, const struct ply_lookup *dir)
{
	struct ply_dir listing;
	const char **names;
	size_t n = 0;
	int r;

	r = ply_dir_read(x->stack, dir->parts, dir->nparts, 0, 0, &listing);
	if (r < 0)
		return ply_err_set(x->err, r, "/%s: listing: %s", x->path,
				   strerror(-r));
	names = calloc(listing.count, sizeof(*names));
	if (!names) {
		ply_dir_free(&listing);
		return ply_err_set(x->err, -ENOMEM, "out of memory");
	}
	for (size_t i = 2; i < listing.count; i++)
		names[n++] = listing.entries[i].name;
	if (n) /* qsort wants an array, even an empty one */
		qsort(names, n, sizeof(*names), ply_strcmp_qsort);
	for (size_t i = 0; i < n && r >= 0; i++)
		r = export_one(x, dir, names[i]);
	free(names);
	ply_dir_free(&listing);
	return r;
}

int plyctl_export(int argc, char **argv)
{
	const char *optstr = NULL, *file = "-", *mnt = NULL;
	char *opts;
	struct ply_err err = { "" };
	struct exporter *x;
	struct ply_lookup root;
	struct ply_stack stack;
	int r;

	for (int i = 1; i < argc; i++) {
		if (plyctl_is_help(argv[i])) {
			export_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			optstr = argv[++i];
		} else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
			optstr = argv[i] + 2;
		} else if (!strcmp(argv[i], "-f") && i + 1 < argc) {
			file = argv[++i];
		} else if (!mnt && argv[i][0] != '-') {
			mnt = argv[i];
		} else {
			fprintf(stderr, "plyctl export: unexpected argument '%s'\n",
				argv[i]);
			return PLYCTL_EXIT_USAGE;
		}
	}
	r = plyctl_stack_options("export", optstr, mnt, &opts, NULL);
	if (r)
		return r;
	if (!strcmp(file, "-") && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "plyctl export: refusing to write a tar to a terminal (use -f FILE)\n");
		free(opts);
		return PLYCTL_EXIT_USAGE;
	}
	r = plyctl_open_stack(opts, &stack, &err);
	free(opts);
	if (r < 0) {
		fprintf(stderr, "plyctl export: %s\n", err.msg);
		return PLYCTL_EXIT_USAGE;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		ply_stack_close(&stack);
		fprintf(stderr, "plyctl export: out of memory\n");
		return 1;
	}
	x->stack = &stack;
	x->err = &err;
	r = ply_lookup_root(&stack, &root);
	if (r < 0) {
		ply_err_set(&err, r, "the layer roots: %s", strerror(-r));
	} else {
		r = plyctl_tar_open(file, false, &x->tar, &err);
		if (r >= 0) {
			plyctl_progress_begin("export", 0);
			r = export_dir(x, &root);
			plyctl_progress_end();
			if (r < 0)
				plyctl_tar_close(x->tar, NULL);
			else
				r = plyctl_tar_close(x->tar, &err);
		}
		ply_lookup_release(&root);
	}
	free(x);
	ply_stack_close(&stack);
	if (r < 0) {
		fprintf(stderr, "plyctl export: %s\n",
			err.msg[0] ? err.msg : strerror(-r));
		if (strcmp(file, "-"))
			unlink(file);
		return 1;
	}
	return 0;
}
