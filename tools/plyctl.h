/* plyctl.h: what the subcommands of plyctl share. */
#ifndef PLYCTL_H
#define PLYCTL_H

#include "ply.h"

#define PLYCTL_EXIT_USAGE 2

/* Opens the stack named by an -o option list, as plyfs takes it. */
int plyctl_open_stack(const char *optstr, struct ply_stack *ret,
		      struct ply_err *err);

/* The stack argument of a subcommand: -o OPTS (optstr), or MNT (mnt), the
 * mountpoint of a running plyfs, whose published options are used. Exactly
 * one must be given. 0 with *ret (owned) and *ret_live (may be NULL), or
 * else the exit status, the reason printed as "plyctl CMD: ...". */
int plyctl_stack_options(const char *cmd, const char *optstr, const char *mnt,
			 char **ret, bool *ret_live);

/* ---- mounts.c: the stack a running plyfs serves ------------------------ */
struct plyctl_live {
	char *mountpoint; /* absolute */
	pid_t pid;        /* the daemon */
	char *options;    /* normalised, for ply_options_parse */
};
/* Finds the running plyfs mounted at mnt from the record it published,
 * checked against the process and the mount table; -ENOENT with "no
 * running plyfs at MNT (why)" when there is none. */
int plyctl_live_find(const char *mnt, struct plyctl_live *ret,
		     struct ply_err *err);
void plyctl_live_free(struct plyctl_live *l);

int plyctl_which(int argc, char **argv);
int plyctl_diff(int argc, char **argv);
int plyctl_export(int argc, char **argv);
int plyctl_import(int argc, char **argv);
int plyctl_commit(int argc, char **argv);
int plyctl_cp(int argc, char **argv);
int plyctl_check(int argc, char **argv);
int plyctl_convert(int argc, char **argv);
int plyctl_volume(int argc, char **argv);

/* ---- objio.c: reading objects of a layer by their O_PATH fds ----------- */
/* One xattr of an object. */
struct plyctl_xattr {
	char *name;
	void *value;
	size_t size;
};
/* The xattrs of the object fd refers to (an O_PATH fd is fine), sorted by
 * name, private ones (overlay, plyfs) left out. */
int plyctl_xattrs_read(int fd, struct plyctl_xattr **ret, size_t *ret_n);
void plyctl_xattrs_free(struct plyctl_xattr *v, size_t n);
/* Opens the object of an O_PATH fd for reading, without touching atime
 * where we may. */
int plyctl_reopen_read(int fd);
/* Reads a symlink's target from its O_PATH fd into buf (NUL-terminated). */
int plyctl_read_link(int fd, char *buf, size_t size);
/* Parses --whiteout=chardev|xattr|file; *ret_ns gets the xattr namespace
 * for markers. The default: chardev when root, else xattr under user. */
int plyctl_parse_whiteout(const char *value, enum ply_wh_format *ret,
			  const char **ret_ns);
/* Is the argument a -h/--help? */
bool plyctl_is_help(const char *arg);

/* ---- tarout.c: writing tar archives (export, commit) -------------------- */
struct plyctl_tar;
/* Opens FILE ("-": stdout) for a pax tar, gzip'ed without name or time
 * when gzip is set. */
int plyctl_tar_open(const char *file, bool gzip, struct plyctl_tar **ret,
		    struct ply_err *err);
/* Adds the object at path (relative, no leading "/"): st is its lstat,
 * meta_fd (O_PATH) gives its xattrs and symlink target, data_fd (O_PATH)
 * a regular file's content. A non-directory with more links than one,
 * already written under another path (same st_dev and st_ino of meta_fd),
 * is written as a hard link to it. Sockets are left out (tar has none). */
int plyctl_tar_object(struct plyctl_tar *t, const char *path,
		      const struct stat *st, int meta_fd, int data_fd,
		      struct ply_err *err);
/* Adds an empty regular file (a ".wh." marker), mode 0, time 0. */
int plyctl_tar_marker(struct plyctl_tar *t, const char *path,
		      struct ply_err *err);
/* Finishes the archive; frees t in every case. */
int plyctl_tar_close(struct plyctl_tar *t, struct ply_err *err);

#endif
