/* main.c: the plyfs daemon. A straight ladder of set-up steps, each
 * undone by the labels at the bottom in reverse order. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "plyfs.h"
#include "sys.h"

#define EXIT_USAGE 2

static const struct fuse_lowlevel_ops plyfs_ops = {
	.init = plyfs_init,
	.lookup = plyfs_lookup,
	.forget = plyfs_forget,
	.forget_multi = plyfs_forget_multi,
	.getattr = plyfs_getattr,
	.readlink = plyfs_readlink,
	.statfs = plyfs_statfs,
	.access = plyfs_access,
	.opendir = plyfs_opendir,
	.readdir = plyfs_readdir,
	.readdirplus = plyfs_readdirplus,
	.releasedir = plyfs_releasedir,
	.open = plyfs_open,
	.read = plyfs_read,
	.lseek = plyfs_lseek,
	.flush = plyfs_flush,
	.release = plyfs_release,
	.getxattr = plyfs_getxattr,
	.listxattr = plyfs_listxattr,
	.mknod = plyfs_mknod,
	.mkdir = plyfs_mkdir,
	.symlink = plyfs_symlink,
	.create = plyfs_create,
	.link = plyfs_link,
	.unlink = plyfs_unlink,
	.rmdir = plyfs_rmdir,
	.rename = plyfs_rename,
	.setattr = plyfs_setattr,
	.write_buf = plyfs_write_buf,
	.fallocate = plyfs_fallocate,
	.copy_file_range = plyfs_copy_file_range,
	.fsync = plyfs_fsync,
	.fsyncdir = plyfs_fsyncdir,
	.setxattr = plyfs_setxattr,
	.removexattr = plyfs_removexattr,
};

static void log_to_stderr(const char *line)
{
	fprintf(stderr, "plyfs: %s\n", line);
}

static void warn_unimplemented(const struct ply_options *opts)
{
	char list[1024] = "";

	if (!opts->nunimplemented)
		return;
	for (size_t i = 0; i < opts->nunimplemented; i++) {
		if (i)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, opts->unimplemented[i],
			sizeof(list) - strlen(list) - 1);
	}
	fprintf(stderr,
		"plyfs: warning: not implemented yet, ignored: %s\n", list);
}

/* Each layer part of an inode the kernel holds, and each open handle, is an
 * fd: take all we may. Root may go past the hard limit, up to nr_open. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	unsigned long nr_open = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");

	if (f) {
		if (fscanf(f, "%lu", &nr_open) != 1)
			nr_open = 0;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (nr_open > rl.rlim_max) {
		struct rlimit wider = { nr_open, nr_open };

		if (setrlimit(RLIMIT_NOFILE, &wider) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* fusermount3 lets a user pass allow_other only where the admin agreed:
 * say so now instead of failing in fusermount3. */
static bool allow_other_permitted(const struct plyfs_cli *cli)
{
	const char *o = cli->opts.fuse_opts;
	char line[256];
	bool found = false;
	FILE *f;

	if (geteuid() == 0 || !o || !strstr(o, "allow_other"))
		return true;
	f = fopen("/etc/fuse.conf", "re");
	while (f && !found && fgets(line, sizeof(line), f))
		found = !strncmp(line, "user_allow_other", 16);
	if (f)
		fclose(f);
	return found;
}

/* Holds each lower layer with a shared flock while mounted; the upper is
 * held with an exclusive one (ply_workdir_open), so no directory is one
 * mount's upper and another's lower at once. A filesystem without flock
 * is let be. */
static int lock_lowers(const struct ply_stack *stack, int *fds,
		       struct ply_err *err)
{
	for (size_t i = stack->has_upper ? 1 : 0; i < stack->nunion; i++) {
		const struct ply_layer *l = &stack->layers[i];
		int fd = ply_sys_openat(l->fd, ".", O_RDONLY | O_DIRECTORY, 0);
		int r = fd < 0 ? fd : ply_sys_flock(fd, LOCK_SH | LOCK_NB);

		if (r == -EWOULDBLOCK) {
			ply_sys_close(fd);
			return ply_err_set(err, -EBUSY,
					   "lowerdir %s is the upperdir of another mount",
					   l->path);
		}
		if (r < 0) {
			ply_sys_close(fd);
			fd = -1;
		}
		fds[i] = fd;
	}
	return 0;
}

static void unlock_lowers(const struct ply_stack *stack, int *fds)
{
	for (size_t i = 0; fds && i < stack->nunion; i++)
		ply_sys_close(fds[i]);
	free(fds);
}

/* POSIX ACLs are enforced only where every layer's filesystem has them. */
static bool layers_have_acls(const struct ply_stack *stack)
{
	for (size_t i = 0; i < stack->nlayers; i++)
		if (ply_sys_fd_getxattr(stack->layers[i].fd,
					"system.posix_acl_access", NULL,
					0) == -EOPNOTSUPP)
			return false;
	return true;
}

static int build_fuse_args(struct fuse_args *args, const char *argv0,
			   const struct plyfs_cli *cli, bool read_only)
{
	char opts[4096];
	int n;

	/* ro comes last: mount(8) passes "rw", which must not win */
	n = snprintf(opts, sizeof(opts),
		     "default_permissions,subtype=plyfs,fsname=%s%s%s%s%s",
		     cli->source ? cli->source : "plyfs",
		     geteuid() == 0 ? ",allow_other" : "",
		     cli->opts.fuse_opts ? "," : "",
		     cli->opts.fuse_opts ? cli->opts.fuse_opts : "",
		     read_only ? ",ro" : "");
	if (n < 0 || (size_t)n >= sizeof(opts))
		return -E2BIG;
	if (fuse_opt_add_arg(args, argv0) || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, opts) ||
	    (cli->debug && fuse_opt_add_arg(args, "-d")))
		return -ENOMEM;
	return 0;
}

static int serve(struct fuse_session *se, const struct plyfs_cli *cli)
{
	struct fuse_loop_config *config;
	int r;

	if (cli->single_thread || cli->opts.threaded == PLY_OFF)
		return fuse_session_loop(se);
	config = fuse_loop_cfg_create();
	if (!config)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(config, 0);
	r = fuse_session_loop_mt(se, config);
	fuse_loop_cfg_destroy(config);
	return r;
}

/* The part fds of cached inodes may use half of the fd limit; open files
 * and in-flight lookups take the rest. */
static size_t fd_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 4096;
	return rl.rlim_cur / 2 > 64 ? rl.rlim_cur / 2 : 64;
}

static int setup_table(struct plyfs *fs)
{
	struct ply_lookup root;
	int r = ply_lookup_root(&fs->stack, &root);

	if (r < 0)
		return r;
	r = ply_inode_table_init(&fs->table, &root, fd_budget());
	ply_lookup_release(&root);
	return r;
}

/* The writable layer: lock and clean the work directory, find out which
 * marker formats the upper takes. Without one the view is read-only. */
static int setup_upper(struct plyfs *fs, const struct ply_options *opts,
		       struct ply_err *err)
{
	int r;

	fs->read_only = !fs->stack.has_upper && !fs->rw_splices;
	fs->u = (struct ply_union){ .stack = &fs->stack, .table = &fs->table,
				    .workfd = -1, .sync = !opts->nosync };
	if (fs->read_only)
		return 0;
	r = ply_workdir_open(&fs->stack, &fs->work, err);
	if (r < 0)
		return r;
	r = ply_workdir_check_volatile(&fs->work, &fs->stack, err);
	if (r < 0)
		return r;
	if (opts->volatile_mount) {
		r = ply_workdir_mark_volatile(&fs->work);
		if (r < 0)
			return ply_err_set(err, r, "workdir %s: %s",
					   fs->stack.workdir, strerror(-r));
		fs->volatile_mount = true;
	}
	fs->u.workfd = fs->work.workfd;
	r = ply_workdir_open_links(&fs->work, &fs->stack.indexfd);
	if (r < 0)
		return ply_err_set(err, r, "workdir %s: cannot open %s: %s",
				   fs->stack.workdir, PLY_LINKS_SUBDIR,
				   strerror(-r));
	return ply_stack_probe_upper(&fs->stack, fs->work.workfd,
				     opts->whiteout, err);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct plyfs fs = { 0 };
	struct plyfs_cli cli;
	struct fuse_session *se;
	struct ply_err err = { "" };
	char *mountpoint = NULL;
	int *lower_locks = NULL;
	struct statfs sfs;
	int r, status = EXIT_USAGE;

	fs.work = (struct ply_workdir){ -1, -1, -1, -1 };
	fs.handles.next = fs.handles.prev = &fs.handles;
	pthread_mutex_init(&fs.handles_lock, NULL);
	for (size_t i = 0; i < sizeof(fs.mtime_locks) / sizeof(*fs.mtime_locks);
	     i++)
		pthread_mutex_init(&fs.mtime_locks[i], NULL);
	fs.store.fd = -1;
	r = plyfs_cli_parse(argc, argv, &cli, &err);
	if (r < 0) {
		fprintf(stderr, "plyfs: %s\n", err.msg);
		goto out_options;
	}
	if (cli.help || cli.version) {
		if (cli.help)
			plyfs_usage(stdout);
		else
			printf("plyfs version %s (libfuse %s)\n", PLY_VERSION,
			       fuse_pkgversion());
		status = EXIT_SUCCESS;
		goto out_options;
	}
	if (cli.debug)
		ply_log_set_sink(log_to_stderr);
	raise_fd_limit();

	r = ply_stack_open(&fs.stack, &cli.opts, &err);
	if (r < 0) {
		fprintf(stderr, "plyfs: %s\n", err.msg);
		goto out_options;
	}
	/* a crashed daemon's mount still answers stat from the kernel's
	 * cache; statfs reaches the dead daemon and says so */
	if (statfs(cli.mountpoint, &sfs) < 0 && errno == ENOTCONN) {
		fprintf(stderr,
			"plyfs: mountpoint %s: transport endpoint is not connected (a crashed mount: run fusermount3 -u %s first)\n",
			cli.mountpoint, cli.mountpoint);
		goto out_stack;
	}
	/* absolute: the daemon leaves its working directory behind */
	mountpoint = realpath(cli.mountpoint, NULL);
	if (!mountpoint) {
		fprintf(stderr, "plyfs: mountpoint %s: %s%s\n", cli.mountpoint,
			strerror(errno),
			errno == ENOTCONN ?
				" (a crashed FUSE mount? run fusermount3 -u on it)" :
				"");
		goto out_stack;
	}
	r = ply_stack_check_mountpoint(&fs.stack, mountpoint, &err);
	if (r < 0) {
		fprintf(stderr, "plyfs: %s\n", err.msg);
		goto out_stack;
	}
	lower_locks = malloc(fs.stack.nunion * sizeof(*lower_locks));
	if (!lower_locks) {
		fprintf(stderr, "plyfs: out of memory\n");
		goto out_stack;
	}
	for (size_t i = 0; i < fs.stack.nunion; i++)
		lower_locks[i] = -1;
	r = lock_lowers(&fs.stack, lower_locks, &err);
	if (r < 0) {
		fprintf(stderr, "plyfs: %s\n", err.msg);
		goto out_stack;
	}
	r = plyfs_setup_splices(&fs, &cli.opts, mountpoint, &err);
	if (r < 0) {
		fprintf(stderr, "plyfs: %s\n", err.msg);
		goto out_stack;
	}
	if (!allow_other_permitted(&cli)) {
		fprintf(stderr,
			"plyfs: allow_other needs the line user_allow_other in /etc/fuse.conf\n");
		goto out_stack;
	}
	r = setup_upper(&fs, &cli.opts, &err);
	if (r < 0) {
		fprintf(stderr, "plyfs: %s\n", err.msg);
		goto out_stack;
	}
	warn_unimplemented(&cli.opts);
	fs.timeout = cli.opts.timeout >= 0 ? cli.opts.timeout : 86400.0;
	fs.acl = !cli.opts.noacl;
	fs.writeback = cli.opts.writeback;
	if (fs.acl && !layers_have_acls(&fs.stack)) {
		fprintf(stderr,
			"plyfs: warning: a layer's filesystem has no POSIX ACLs: ACLs are off for this mount\n");
		fs.acl = false;
	}
	fs.uidmap = &cli.opts.uidmap;
	fs.gidmap = &cli.opts.gidmap;
	fs.squash_uid = cli.opts.squash_uid >= 0 ? cli.opts.squash_uid :
			cli.opts.squash_to_root ? 0 : -1;
	fs.squash_gid = cli.opts.squash_gid >= 0 ? cli.opts.squash_gid :
			cli.opts.squash_to_root ? 0 : -1;
	fs.static_nlink = cli.opts.static_nlink;
	/* modes come from the kernel with the caller's umask applied */
	umask(0);

	status = EXIT_FAILURE;
	r = setup_table(&fs);
	if (r < 0) {
		fprintf(stderr, "plyfs: cannot read the layer roots: %s\n",
			strerror(-r));
		goto out_stack;
	}
	r = build_fuse_args(&args, argv[0], &cli, fs.read_only);
	if (r < 0)
		goto out_table;
	se = fuse_session_new(&args, &plyfs_ops, sizeof(plyfs_ops), &fs);
	if (!se)
		goto out_args;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, mountpoint) != 0)
		goto out_signals;
	/* for plyctl MNT (registry.c), before anyone can see the mount */
	plyfs_registry_publish(&fs, &cli.opts, mountpoint);
	/* the parent exits only now, with the mount up */
	plyfs_registry_daemonize(cli.foreground);
	r = serve(se, &cli);
	plyfs_registry_remove();
	/* SIGTERM and SIGINT end the loop with their number: a clean stop */
	status = r == 0 || fuse_session_exited(se) ? EXIT_SUCCESS :
						       EXIT_FAILURE;
	/* a clean stop: the next mount may trust the upper again */
	if (fs.volatile_mount)
		ply_workdir_unmark_volatile(&fs.work);

	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_args:
	fuse_opt_free_args(&args);
out_table:
	plyfs_handles_free_all(&fs);
	ply_inode_table_destroy(&fs.table);
out_stack:
	plyfs_release_splices(&fs);
	ply_workdir_close(&fs.work);
	unlock_lowers(&fs.stack, lower_locks);
	free(mountpoint);
	ply_stack_close(&fs.stack);
out_options:
	ply_options_free(&cli.opts);
	return status;
}
