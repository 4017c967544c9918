/* Hostile and broken layers: symlinks to host paths and ".." chains (the
 * kernel resolves them from the mount's view, the daemon never does),
 * symlink loops, directories without read or search permission, 255-byte
 * names, paths deeper than PATH_MAX, 100,000 entries in one directory,
 * 64 KiB xattrs and many xattr names, markers in odd places, and a layer
 * directory replaced while mounted. Each test ends by checking that the
 * daemon still answers. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

static const char *stack_opts(const char *extra)
{
	return h_fmt("%s,upperdir=%s,workdir=%s%s",
		     h_lowerdir("l1", "l2", NULL), h_path("u"), h_path("w"),
		     extra);
}

static struct h_mount *mount_rw(const char *extra)
{
	h_mkdir("l1");
	h_mkdir("l2");
	h_mkdir("u");
	h_mkdir("w");
	return h_mount(stack_opts(extra), "mnt");
}

/* Reads a file's first bytes into buf; -errno on failure. */
static int peek(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* ---- symlinks out of the layers ---------------------------------------- */

/* Layers under ROOT/layers, the mount at ROOT/m/a/b/mnt. A secret lies at
 * ROOT/layers/secret (reachable from inside a layer by "..") and at an
 * absolute host path; decoys lie where the same links lead from the
 * mount's view. Whatever the link, the daemon must not open the secret:
 * either the kernel resolves it from the mount (decoy or ENOENT) or it
 * fails. */
static void host_symlinks(void **state)
{
	struct h_mount *m;
	char buf[64], mnt[PATH_MAX], secret_abs[PATH_MAX];
	struct stat st;
	ssize_t n;
	static const char *const probes[] = {
		"dir/up2/secret",	/* symlink as a middle component */
		"dir/rel",		/* ../../secret from the layer */
		"dir/up2dir/../secret", /* .. after a symlink */
		"dir/rel/..",
		NULL,
	};

	h_file("layers/secret", "SECRET");
	h_file("m/a/b/secret", "DECOY");
	snprintf(secret_abs, sizeof(secret_abs), "%s",
		 h_path("layers/secret"));
	h_mkdir("layers/l1/dir");
	h_mkdir("layers/l2");
	h_mkdir("layers/u");
	h_mkdir("layers/w");
	h_symlink("../..", "layers/l1/dir/up2");
	h_symlink("../../secret", "layers/l1/dir/rel");
	h_symlink(h_fmt("../../../../../../../../../../..%s", secret_abs),
		  "layers/l1/dir/deep");
	h_symlink("../..", "layers/l1/dir/up2dir");
	h_symlink(secret_abs, "layers/l1/dir/abs");
	h_symlink("/", "layers/l1/dir/root");
	h_mkdir("m/a/b/mnt");
	m = h_mount(h_fmt("lowerdir=%s:%s,upperdir=%s,workdir=%s",
			  h_path("layers/l1"), h_path("layers/l2"),
			  h_path("layers/u"), h_path("layers/w")),
		    "m/a/b/mnt");
	snprintf(mnt, sizeof(mnt), "%s", m->path);

	/* lookups give links, readlink the target as stored */
	h_assert_ok(lstat(h_fmt("%s/dir/abs", mnt), &st));
	assert_true(S_ISLNK(st.st_mode));
	n = readlink(h_fmt("%s/dir/abs", mnt), buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(n, (ssize_t)strlen(secret_abs) < (ssize_t)sizeof(buf) ?
				    (ssize_t)strlen(secret_abs) :
				    (ssize_t)sizeof(buf));
	n = readlink(h_fmt("%s/dir/up2", mnt), buf, sizeof(buf) - 1);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "../..", 5);

	for (const char *const *p = probes; *p; p++) {
		const char *path = h_fmt("%s/%s", mnt, *p);
		int r = peek(path, buf, sizeof(buf));

		print_message("open %s: %s%s\n", *p,
			      r ? strerror(-r) : "read \"",
			      r ? "" : h_fmt("%s\"", buf));
		if (r == 0 && strstr(buf, "SECRET"))
			fail_msg("%s opens the secret outside the layers", *p);
	}
	/* the kernel's view: dir/up2 is the mount's grandparent */
	assert_int_equal(peek(h_fmt("%s/dir/up2/secret", mnt), buf,
			      sizeof(buf)), 0);
	assert_string_equal(buf, "DECOY");

	/* an absolute link: in a chroot at the mount, the kernel resolves it
	 * inside the merged tree, where no secret is */
	if (h_is_root()) {
		pid_t pid;
		int status;

		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char b[64];

			if (chroot(mnt) < 0 || chdir("/") < 0)
				_exit(10);
			if (peek("/dir/abs", b, sizeof(b)) == 0)
				_exit(strstr(b, "SECRET") ? 1 : 2);
			if (peek("/dir/root/layers/secret", b, sizeof(b)) == 0)
				_exit(3);
			/* ".." above the chroot stays at its root */
			if (peek("/dir/deep", b, sizeof(b)) == 0)
				_exit(4);
			_exit(0);
		}
		assert_int_equal(h_wait(pid, H_RUN_WAIT_MS, &status), 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("in a chroot at the mount, an absolute link "
				 "reached something outside (status %d)",
				 WEXITSTATUS(status));
	}
	h_assert_alive(m);
}

/* ---- symlink loops ------------------------------------------------------ */

static void symlink_loops(void **state)
{
	struct h_mount *m;
	struct stat st;

	h_symlink("loop2", "l1/loop1");
	h_symlink("loop1", "l2/loop2");
	h_symlink("self", "l1/self");
	h_symlink("d/../chain", "l1/chain");
	h_mkdir("l1/d");
	m = mount_rw("");
	h_assert_errno(open(h_path("mnt/loop1"), O_RDONLY), ELOOP);
	h_assert_errno(stat(h_path("mnt/self"), &st), ELOOP);
	h_assert_errno(stat(h_path("mnt/chain"), &st), ELOOP);
	h_assert_errno(open(h_path("mnt/self/x"), O_RDONLY), ELOOP);
	h_assert_ok(lstat(h_path("mnt/loop1"), &st));
	assert_true(S_ISLNK(st.st_mode));
	/* a write through a loop fails too, and creates nothing */
	h_assert_errno(open(h_path("mnt/loop2"), O_WRONLY | O_CREAT, 0644),
		       ELOOP);
	h_assert_alive(m);
}

/* ---- directories without permission ----------------------------------- */

static void no_permission_dirs(void **state)
{
	struct h_mount *m;
	size_t n;
	char **v;
	pid_t pid;
	int status;

	h_need_root();
	h_file("l2/noperm/f", "f");
	h_file("l2/nox/f", "f");
	h_file("l2/nor/f", "f");
	h_file("l2/open/f", "f");
	chmod(h_path("l2/noperm"), 0);
	chmod(h_path("l2/nox"), 0644);
	chmod(h_path("l2/nor"), 0311);
	/* nobody must reach the mount */
	chmod(h_path("."), 0755);
	m = mount_rw(",allow_other");

	/* root: the daemon reads them all */
	v = h_listdir(h_path("mnt/noperm"), &n);
	assert_int_equal(n, 3);
	h_strv_free(v, n);
	h_assert_content(h_path("mnt/noperm/f"), "f");
	h_assert_content(h_path("mnt/nox/f"), "f");
	h_assert_content(h_path("mnt/nor/f"), "f");

	/* nobody: EACCES as the modes say */
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat st;
		int bad = 0;

		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
		    setuid(65534) < 0)
			_exit(100);
		bad |= opendir(h_path("mnt/noperm")) != NULL ||
				       errno != EACCES ?
			       1 :
			       0;
		bad |= stat(h_path("mnt/noperm/f"), &st) == 0 ||
				       errno != EACCES ?
			       2 :
			       0;
		bad |= open(h_path("mnt/nox/f"), O_RDONLY) >= 0 ||
				       errno != EACCES ?
			       4 :
			       0;
		bad |= opendir(h_path("mnt/nor")) != NULL || errno != EACCES ?
			       8 :
			       0;
		bad |= stat(h_path("mnt/nor/f"), &st) != 0 ? 16 : 0;
		bad |= open(h_path("mnt/open/f"), O_RDONLY) < 0 ? 32 : 0;
		bad |= open(h_path("mnt/open/f"), O_WRONLY) >= 0 ||
				       errno != EACCES ?
			       64 :
			       0;
		_exit(bad);
	}
	assert_int_equal(h_wait(pid, H_RUN_WAIT_MS, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("as nobody: unexpected outcomes, mask %d (1 opendir "
			 "noperm, 2 stat noperm/f, 4 open nox/f, 8 opendir nor, "
			 "16 stat nor/f, 32 read open/f, 64 write open/f)",
			 WEXITSTATUS(status));
	h_assert_alive(m);
	assert_int_equal(h_umount_diag(m), 0);
	chmod(h_path("l2/noperm"), 0755);
	chmod(h_path("l2/nox"), 0755);
	chmod(h_path("l2/nor"), 0755);
}

/* ---- long names --------------------------------------------------------- */

static void long_names(void **state)
{
	char n255[256], n251[252], n256[257];
	struct h_mount *m;
	struct stat st;
	int fd;

	memset(n255, 'a', 255);
	n255[255] = '\0';
	memset(n251, 'b', 251);
	n251[251] = '\0';
	memset(n256, 'c', 256);
	n256[256] = '\0';
	h_file(h_fmt("l2/%s", n255), "long");
	h_file(h_fmt("l2/%s", n251), "hidden");
	h_file(h_fmt("l1/.wh.%s", n251), "");
	h_mkdir(h_fmt("l2/d/%s", n255));
	h_file(h_fmt("l2/d/%s/%s", n255, n255), "deeplong");
	m = mount_rw(",whiteout=file");

	h_assert_listing(h_path("mnt"), H_NAMES(n255, "d"));
	h_assert_content(h_path("mnt/%s", n255), "long");
	h_assert_content(h_path("mnt/d/%s/%s", n255, n255), "deeplong");
	h_assert_errno(stat(h_path("mnt/%s", n251), &st), ENOENT);
	h_assert_errno(stat(h_path("mnt/%s", n256), &st), ENAMETOOLONG);
	h_assert_errno(open(h_path("mnt/%s", n256), O_CREAT | O_WRONLY, 0644),
		       ENAMETOOLONG);
	/* a new 255-byte name, and the old one's copy-up */
	fd = open(h_path("mnt/d/%.255s", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
					  "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"),
		  O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	h_assert_ok(fd);
	close(fd);
	fd = open(h_path("mnt/%s", n255), O_WRONLY | O_APPEND | O_CLOEXEC);
	h_assert_ok(fd);
	assert_int_equal(write(fd, "+", 1), 1);
	close(fd);
	h_assert_content(h_path("mnt/%s", n255), "long+");

	/* whiteout=file cannot write ".wh." + 255 bytes: the unlink either
	 * fails and leaves the name, or succeeds and the name stays gone */
	{
		int r = unlink(h_path("mnt/d/%s/%s", n255, n255));
		int e = errno;

		print_message("unlink of a 255-byte lower name with "
			      "whiteout=file: %s\n",
			      r == 0 ? "done" : strerrorname_np(e));
		assert_int_equal(h_umount_diag(m), 0);
		m = h_mount(stack_opts(",whiteout=file"), "mnt");
		if (r == 0)
			h_assert_errno(stat(h_path("mnt/d/%s/%s", n255, n255),
					    &st),
				       ENOENT);
		else
			h_assert_content(h_path("mnt/d/%s/%s", n255, n255),
					 "deeplong");
	}
	h_assert_content(h_path("mnt/%s", n255), "long+");
	h_assert_alive(m);
}

/* ---- paths deeper than PATH_MAX ----------------------------------------- */

#define DEPTH 300
#define COMP "0123456789abcdefghi" /* 19 + "/" = 20 bytes a level */

/* Opens the directory DEPTH levels down from dirfd's root, with *at(). */
static int walk_down(const char *root, int depth)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (int i = 0; i < depth && fd >= 0; i++) {
		int next = openat(fd, COMP, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (next < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		close(fd);
		fd = next;
	}
	return fd;
}

static int deep_teardown(void **state)
{
	int root = open(h_path("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	/* nftw cannot remove what is deeper than PATH_MAX */
	if (root >= 0) {
		h_rm_at(root, "l2");
		h_rm_at(root, "u");
		close(root);
	}
	/* the upper's copy after the unmount */
	return h_teardown(state);
}

static void deep_paths(void **state)
{
	struct h_mount *m;
	int fd, d;
	char buf[16];

	h_mkdir("l2");
	fd = open(h_path("l2"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < DEPTH; i++) {
		int next;

		h_assert_ok(mkdirat(fd, COMP, 0755));
		next = openat(fd, COMP, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		h_assert_ok(next);
		close(fd);
		fd = next;
	}
	d = openat(fd, "leaf", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_int_equal(write(d, "leaf", 4), 4);
	close(d);
	close(fd);
	print_message("a lower path of %d bytes\n", DEPTH * 20 + 4);

	m = mount_rw("");
	fd = walk_down(h_path("mnt"), DEPTH);
	if (fd < 0)
		fail_msg("walk down %d levels of the mount: %s", DEPTH,
			 strerror(errno));
	d = openat(fd, "leaf", O_RDONLY | O_CLOEXEC);
	h_assert_ok(d);
	assert_int_equal(read(d, buf, sizeof(buf)), 4);
	close(d);
	/* a copy-up of 300 parents, then a new file down there */
	d = openat(fd, "leaf", O_WRONLY | O_APPEND | O_CLOEXEC);
	h_assert_ok(d);
	assert_int_equal(write(d, "+", 1), 1);
	close(d);
	d = openat(fd, "new", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	h_assert_ok(d);
	close(d);
	h_assert_ok(unlinkat(fd, "new", 0));
	close(fd);
	h_assert_alive(m);
	assert_int_equal(h_umount_diag(m), 0);

	m = h_mount(stack_opts(""), "mnt");
	fd = walk_down(h_path("mnt"), DEPTH);
	h_assert_ok(fd);
	d = openat(fd, "leaf", O_RDONLY | O_CLOEXEC);
	h_assert_ok(d);
	assert_int_equal(read(d, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "leaf+", 5);
	close(d);
	close(fd);
	h_assert_alive(m);
	assert_int_equal(h_umount_diag(m), 0);
	fd = open(h_path("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(h_rm_at(fd, "u"), 0);
	assert_int_equal(h_rm_at(fd, "l2"), 0);
	close(fd);
}

/* ---- a huge directory --------------------------------------------------- */

#define NBIG 100000

static void huge_directory(void **state)
{
	struct h_mount *m;
	unsigned char *seen = calloc(NBIG + 2000, 1);
	int dfd, listed = 0;
	DIR *d;
	struct dirent *de;

	assert_non_null(seen);
	h_mkdir("l2/big");
	dfd = open(h_path("l2/big"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < NBIG; i++) {
		char name[16];
		int fd;

		snprintf(name, sizeof(name), "f%06d", i);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		h_assert_ok(fd);
		close(fd);
	}
	close(dfd);
	m = mount_rw("");
	/* some changes on top: 1000 removed, 1000 added */
	for (int i = 0; i < 1000; i++) {
		h_assert_ok(unlink(h_path("mnt/big/f%06d", i * 97)));
		close(open(h_path("mnt/big/g%06d", i), O_WRONLY | O_CREAT,
			   0644));
	}
	d = opendir(h_path("mnt/big"));
	assert_non_null(d);
	while ((de = readdir(d))) {
		int i;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_name[0] == 'f' && sscanf(de->d_name, "f%d", &i) == 1)
			;
		else if (de->d_name[0] == 'g' &&
			 sscanf(de->d_name, "g%d", &i) == 1)
			i += NBIG;
		else
			fail_msg("unexpected name %s", de->d_name);
		if (i < 0 || i >= NBIG + 1000)
			fail_msg("unexpected name %s", de->d_name);
		if (seen[i]++)
			fail_msg("%s listed twice", de->d_name);
		listed++;
	}
	closedir(d);
	for (int i = 0; i < NBIG; i++) {
		bool gone = i % 97 == 0 && i / 97 < 1000;

		if (seen[i] != !gone)
			fail_msg("f%06d listed %d times, expected %d", i,
				 seen[i], !gone);
	}
	for (int i = 0; i < 1000; i++)
		if (seen[NBIG + i] != 1)
			fail_msg("g%06d listed %d times", i, seen[NBIG + i]);
	print_message("listed %d names, each once\n", listed);
	free(seen);
	h_assert_alive(m);
}

/* ---- huge xattrs -------------------------------------------------------- */

static void huge_xattrs(void **state)
{
	size_t vlen = 65536;
	char *val = malloc(vlen), *got = malloc(vlen), *list;
	struct h_mount *m;
	ssize_t n;
	int names = 0;

	h_need_root();
	assert_true(val && got);
	for (size_t i = 0; i < vlen; i++)
		val[i] = (char)('A' + i % 26);
	/* ext4 takes values up to a block: the layers live on a tmpfs */
	h_tmpfs_opts("t", "size=64m,mode=0755");
	h_file("t/l2/f", "f");
	h_file("t/l2/many", "m");
	h_mkdir("t/l1");
	h_mkdir("t/u");
	h_mkdir("t/w");
	if (lsetxattr(h_path("t/l2/f"), "trusted.big", val, vlen, 0) < 0)
		fail_msg("setxattr 64 KiB on tmpfs: %s", strerror(errno));
	for (int i = 0; i < 1000; i++) {
		const char *name = h_fmt("trusted.name-%04d-%s", i,
					 "padding-padding-padding");

		if (lsetxattr(h_path("t/l2/many"), name, "v", 1, 0) < 0)
			break;
		names++;
	}
	m = h_mount(h_fmt("lowerdir=%s:%s,upperdir=%s,workdir=%s",
			  h_path("t/l1"), h_path("t/l2"), h_path("t/u"),
			  h_path("t/w")),
		    "mnt");
	n = getxattr(h_path("mnt/f"), "trusted.big", NULL, 0);
	assert_int_equal(n, (ssize_t)vlen);
	n = getxattr(h_path("mnt/f"), "trusted.big", got, vlen);
	assert_int_equal(n, (ssize_t)vlen);
	assert_memory_equal(got, val, vlen);
	h_assert_errno(getxattr(h_path("mnt/f"), "trusted.big", got, 100),
		       ERANGE);

	n = listxattr(h_path("mnt/many"), NULL, 0);
	print_message("%d xattr names, listxattr size %zd\n", names, n);
	assert_true(n > 0);
	list = malloc(n);
	assert_int_equal(listxattr(h_path("mnt/many"), list, n), n);
	{
		int count = 0;

		for (char *p = list; p < list + n; p += strlen(p) + 1)
			count += !strncmp(p, "trusted.name-", 13);
		assert_int_equal(count, names);
	}
	free(list);

	/* copy-up keeps them; a 64 KiB value can be set through the mount */
	h_assert_ok(chmod(h_path("mnt/f"), 0600));
	n = getxattr(h_path("mnt/f"), "trusted.big", got, vlen);
	assert_int_equal(n, (ssize_t)vlen);
	assert_memory_equal(got, val, vlen);
	h_assert_ok(setxattr(h_path("mnt/many"), "trusted.big2", val, vlen, 0));
	n = getxattr(h_path("mnt/many"), "trusted.big2", got, vlen);
	assert_int_equal(n, (ssize_t)vlen);
	n = listxattr(h_path("mnt/many"), NULL, 0);
	assert_true(n > 0);
	h_assert_alive(m);
	free(val);
	free(got);
}

/* ---- markers in odd places --------------------------------------------- */

static void odd_markers(void **state)
{
	struct h_mount *m;
	struct stat st;
	int fd;

	h_need_root();
	/* a .wh. at a layer root hides a lower root entry */
	h_file("l2/top", "top");
	h_file("l1/.wh.top", "");
	/* an opaque marker on a file, over a lower directory */
	h_file("l2/fileopq/inner", "inner");
	h_file("l1/fileopq", "file");
	h_xattr("l1/fileopq", "trusted.overlay.opaque", "y");
	h_xattr("l1/fileopq", "user.overlay.opaque", "y");
	/* whiteouts over nothing, in every format */
	h_file("l1/.wh.ghost", "");
	h_mknod("l2/ghost2", S_IFCHR, 0);
	h_file("l2/d/.wh.ghost3", "");
	/* .wh..wh..opq as a directory, and as a file at a layer root */
	h_file("l1/d/.wh..wh..opq/x", "x");
	h_file("l2/d/below", "below");
	h_file("l2/.wh..wh..opq", "");
	h_file("l2/bottom", "bottom");
	/* a bare ".wh." (the whiteout of "") and ".wh..wh." */
	h_file("l1/.wh.", "");
	h_file("l1/.wh..wh.", "");
	/* an opaque xattr with a strange value, a redirect to nowhere */
	h_mkdir("l1/odd");
	h_xattr("l1/odd", "trusted.overlay.opaque", "garbage");
	h_file("l2/odd/o", "o");
	h_mkdir("l1/redir");
	h_xattr("l1/redir", "trusted.overlay.redirect", "/does/not/exist");
	h_mkdir("l1/redir2");
	h_xattr("l1/redir2", "trusted.overlay.redirect", "../../..");
	h_file("l2/redir2/r", "r");
	m = mount_rw("");

	h_assert_errno(stat(h_path("mnt/top"), &st), ENOENT);
	h_assert_content(h_path("mnt/fileopq"), "file");
	h_assert_errno(stat(h_path("mnt/ghost"), &st), ENOENT);
	h_assert_errno(stat(h_path("mnt/ghost2"), &st), ENOENT);
	h_assert_errno(stat(h_path("mnt/d/ghost3"), &st), ENOENT);
	h_assert_content(h_path("mnt/bottom"), "bottom");
	{
		size_t n;
		char **v = h_listdir(h_path("mnt"), &n);

		for (size_t i = 0; i < n; i++) {
			print_message("root lists %s\n", v[i]);
			if (!strncmp(v[i], ".wh.", 4))
				fail_msg("a marker is listed: %s", v[i]);
			for (size_t j = i + 1; j < n; j++)
				if (!strcmp(v[i], v[j]))
					fail_msg("%s listed twice", v[i]);
			h_assert_ok(lstat(h_path("mnt/%s", v[i]), &st));
		}
		h_strv_free(v, n);
		v = h_listdir(h_path("mnt/d"), &n);
		for (size_t i = 0; i < n; i++) {
			print_message("d lists %s\n", v[i]);
			if (!strncmp(v[i], ".wh.", 4))
				fail_msg("a marker is listed: d/%s", v[i]);
		}
		h_strv_free(v, n);
	}
	/* names over markers: a whiteout over nothing can be replaced */
	fd = open(h_path("mnt/ghost"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	h_assert_ok(fd);
	close(fd);
	h_assert_ok(stat(h_path("mnt/ghost"), &st));
	h_assert_errno(open(h_path("mnt/.wh.x"), O_WRONLY | O_CREAT, 0644),
		       EINVAL);
	/* the odd directories answer */
	h_assert_ok(stat(h_path("mnt/odd"), &st));
	{
		size_t n;
		char **odd = h_listdir(h_path("mnt/odd"), &n);

		h_strv_free(odd, n);
	}
	h_assert_ok(stat(h_path("mnt/redir"), &st));
	h_assert_ok(stat(h_path("mnt/redir2"), &st));
	{
		size_t n;
		char **v = h_listdir(h_path("mnt/redir2"), &n);

		for (size_t i = 0; i < n; i++)
			print_message("redir2 (redirect ../../..) lists %s\n",
				      v[i]);
		h_strv_free(v, n);
	}
	h_assert_alive(m);
}

/* ---- a layer directory replaced while mounted ------------------------- */

/* Runs fn(path) in a child, bounded: its errno (0 for success), or -1 if
 * it hangs. */
static int bounded(int (*fn)(const char *), const char *path)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(path) < 0 ? errno : 0);
	if (h_wait(pid, H_EXIT_WAIT_MS, &status) < 0) {
		kill(pid, SIGKILL);
		h_wait(pid, H_EXIT_WAIT_MS, &status);
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int op_stat(const char *p)
{
	struct stat st;

	return stat(p, &st);
}

static int op_read(const char *p)
{
	char buf[16];

	int r = peek(p, buf, sizeof(buf));

	errno = -r;
	return r < 0 ? -1 : 0;
}

static int op_list(const char *p)
{
	DIR *d = opendir(p);

	if (!d)
		return -1;
	errno = 0;
	while (readdir(d))
		;
	closedir(d);
	return errno ? -1 : 0;
}

static int op_append(const char *p)
{
	int fd = open(p, O_WRONLY | O_APPEND);

	if (fd < 0)
		return -1;
	if (write(fd, "+", 1) != 1) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int op_create(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT, 0644);

	return fd < 0 ? -1 : close(fd);
}

static int op_unlink(const char *p)
{
	return unlink(p);
}

static int op_rename(const char *p)
{
	return rename(p, h_fmt("%s.moved", p));
}

static void layer_replaced(void **state)
{
	static const struct {
		const char *name;
		int (*fn)(const char *);
		const char *path;
	} ops[] = {
		{ "stat", op_stat, "mnt/d/a" },
		{ "read", op_read, "mnt/d/a" },
		{ "list", op_list, "mnt/d" },
		{ "append", op_append, "mnt/d/b" },
		{ "create", op_create, "mnt/d/new" },
		{ "unlink", op_unlink, "mnt/d/c" },
		{ "rename", op_rename, "mnt/d/e" },
		{ "stat sub", op_stat, "mnt/d/sub/x" },
		{ "list sub", op_list, "mnt/d/sub" },
		{ "rename dir", op_rename, "mnt/d/sub" },
	};
	struct h_mount *m;
	int root;

	for (const char *n = "abcde"; *n; n++)
		h_file(h_fmt("l2/d/%c", *n), "old");
	h_file("l2/d/sub/x", "x");
	h_file("l2/other", "other");
	m = mount_rw(",timeout=0");
	/* look everything up once, so the daemon knows the inodes */
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		bounded(op_stat, h_path("%s", ops[i].path));
	op_list(h_path("mnt/d"));

	/* the layer's directory renamed away and made again, other
	 * content */
	h_assert_ok(rename(h_path("l2/d"), h_path("l2/d.away")));
	h_file("l2/d/a", "new");
	h_file("l2/d/z", "z");

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		int e = bounded(ops[i].fn, h_path("%s", ops[i].path));

		print_message("after the replacement: %-10s %s: %s\n",
			      ops[i].name, ops[i].path,
			      e < 0 ? "HANG" : e ? strerrorname_np(e) : "ok");
		if (e < 0)
			fail_msg("%s %s hangs after the layer directory was "
				 "replaced", ops[i].name, ops[i].path);
		if (e != 0 && e != ENOENT && e != ESTALE)
			fail_msg("%s %s: %s; expected success, ENOENT or "
				 "ESTALE", ops[i].name, ops[i].path,
				 strerrorname_np(e));
		h_assert_alive(m);
	}
	/* then removed altogether */
	root = open(h_path("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(h_rm_at(root, "l2/d"), 0);
	assert_int_equal(h_rm_at(root, "l2/d.away"), 0);
	close(root);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		int e = bounded(ops[i].fn, h_path("%s", ops[i].path));

		print_message("after the removal:     %-10s %s: %s\n",
			      ops[i].name, ops[i].path,
			      e < 0 ? "HANG" : e ? strerrorname_np(e) : "ok");
		if (e < 0)
			fail_msg("%s %s hangs after the layer directory was "
				 "removed", ops[i].name, ops[i].path);
		if (e != 0 && e != ENOENT && e != ESTALE)
			fail_msg("%s %s: %s; expected success, ENOENT or "
				 "ESTALE", ops[i].name, ops[i].path,
				 strerrorname_np(e));
	}
	/* the rest is served */
	h_assert_content(h_path("mnt/other"), "other");
	h_assert_alive(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(host_symlinks),
		H_TEST(symlink_loops),
		H_TEST(no_permission_dirs),
		H_TEST(long_names),
		cmocka_unit_test_setup_teardown(deep_paths, h_setup,
						deep_teardown),
		H_TEST(huge_directory),
		H_TEST(huge_xattrs),
		H_TEST(odd_markers),
		H_TEST(layer_replaced),
	};

	h_init();
	if (getenv("PLY_TEST"))
		cmocka_set_test_filter(getenv("PLY_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
