/* ops-entry.c: the FUSE operations on names and inodes: init, lookup,
 * forget, getattr, readlink, statfs, access. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "plyfs.h"
#include "sys.h"

void plyfs_init(void *userdata, struct fuse_conn_info *conn)
{
	/* DONT_MASK: umask is ours to apply, so that a default ACL can
	 * replace it as it does on a real filesystem */
	const unsigned wanted = FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
				FUSE_CAP_DONT_MASK |
				FUSE_CAP_CACHE_SYMLINKS |
				FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ASYNC_READ;

	struct plyfs *fs = userdata;

	conn->want |= conn->capable & wanted;
	if (fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		fs->writeback = false;
	if (fs->acl)
		conn->want |= conn->capable & FUSE_CAP_POSIX_ACL;
	conn->time_gran = 1;
	/* 1 MiB a request (libfuse's buffers hold 256 pages): a quarter of
	 * the round trips of the 128 KiB default for large reads and writes */
	conn->max_write = 1 << 20;
	conn->max_readahead = 1 << 20;
}

/* The part to start a lookup at when a listing already showed in which
 * layer name first stands: in a directory of lower layers only (which
 * never change), the layers above that one do not hold it. */
static size_t first_part(struct plyfs *fs, const struct ply_inode *parent,
			 int layer_hint)
{
	if (layer_hint < 0 || (parent->snode && parent->snode->nchildren))
		return 0;
	for (size_t i = 0; i < parent->nparts; i++) {
		const struct ply_layer *l = &fs->stack.layers[parent->parts[i].layer];

		if (l->is_upper || l->is_splice)
			return 0;
		if (parent->parts[i].layer == layer_hint)
			return i;
	}
	return 0;
}

/* Whether to read parent's merged listing to answer lookups: when the
 * names it missed so far cost more than the listing would. A miss costs
 * two calls per layer (the name and its ".wh." file), a listing about one
 * per 4 KiB block of each layer's directory. Weighed at 2, 4, 8... misses
 * since the last listing, so a large directory that changes all the time
 * is read once in many misses, never once per lookup. */
static bool listing_worth_reading(struct plyfs *fs, struct ply_inode *parent)
{
	unsigned misses = __atomic_load_n(&parent->misses, __ATOMIC_RELAXED);
	uint64_t blocks = 0;
	struct stat st;

	if (fs->timeout <= 0 || parent->nparts < 2 || misses < 2 ||
	    (misses & (misses - 1)) ||
	    !ply_inode_listing_keepable(&fs->stack, parent))
		return false;
	for (size_t i = 0; i < parent->nparts; i++) {
		if (ply_sys_fstat(parent->parts[i].fd, &st) < 0)
			return false;
		blocks += (uint64_t)st.st_size / 4096 + 1;
	}
	return blocks <= 2 * (uint64_t)misses * parent->nparts;
}

/* Answers a lookup from parent's merged listing when one is kept, or is
 * worth reading: -ENOENT when it does not hold name, 1 and the layer name
 * comes from when it does, 0 when there is no listing to ask. Only while
 * nothing changes the layers behind the mount (timeout > 0): every change
 * through it drops the kept listing. */
static int ask_listing(struct plyfs *fs, struct ply_inode *parent,
		       const char *name, int *ret_layer)
{
	struct ply_dir *dir = ply_inode_listing(parent);
	const struct ply_dirent *de;

	if (!dir) {
		if (!listing_worth_reading(fs, parent) ||
		    plyfs_read_listing(fs, parent, &dir) < 0)
			return 0;
		__atomic_store_n(&parent->misses, 0, __ATOMIC_RELAXED);
	}
	de = ply_dir_find(dir, name);
	if (de)
		*ret_layer = de->layer;
	ply_dir_put(dir);
	return de ? 1 : -ENOENT;
}

int plyfs_do_lookup(struct plyfs *fs, struct ply_inode *parent,
		    const char *name, struct fuse_entry_param *ret_e)
{
	return plyfs_do_lookup_hint(fs, parent, name, -1, ret_e);
}

int plyfs_do_lookup_hint(struct plyfs *fs, struct ply_inode *parent,
			 const char *name, int layer_hint,
			 struct fuse_entry_param *ret_e)
{
	struct ply_inode *child;
	struct ply_lookup lk;
	size_t skip;
	int r;

	r = ply_name_check(name);
	if (r < 0)
		return r;
	r = plyfs_use(fs, parent);
	if (r < 0)
		return r;
	if (layer_hint < 0)
		r = ask_listing(fs, parent, name, &layer_hint);
	if (r >= 0) {
		skip = first_part(fs, parent, layer_hint);
		r = ply_lookup_child(&fs->stack, parent->parts + skip,
				     parent->nparts - skip, parent->snode, name,
				     PLY_LOOKUP_LAZY, &lk);
		if (r == -ENOENT)
			__atomic_add_fetch(&parent->misses, 1,
					   __ATOMIC_RELAXED);
	}
	plyfs_done(fs, parent);
	if (r < 0)
		return r;
	memset(ret_e, 0, sizeof(*ret_e));
	ret_e->attr = lk.st;
	plyfs_present(fs, &ret_e->attr);
	r = ply_inode_table_acquire(&fs->table, parent, name, &lk, &child);
	if (r < 0)
		return r;
	ret_e->ino = plyfs_nodeid(fs, child);
	ret_e->attr_timeout = fs->timeout;
	ret_e->entry_timeout = fs->timeout;
	return 0;
}

void plyfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct plyfs *fs = plyfs_of(req);
	struct fuse_entry_param e;
	int r = plyfs_do_lookup(fs, plyfs_inode(fs, parent), name, &e);

	if (r == -ENOENT) {
		/* a negative entry: the kernel caches the miss too */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_entry(req, &e) < 0)
		ply_inode_table_forget(&fs->table,
				       plyfs_inode(fs, e.ino), 1);
}

static void forget_one(struct plyfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	if (ino != FUSE_ROOT_ID)
		ply_inode_table_forget(&fs->table, plyfs_inode(fs, ino),
				       nlookup);
}

/* Inodes to free before malloc is asked to give its free memory back. */
#define TRIM_AFTER 16384

/* Freed inodes stay in malloc's arenas: without a trim, the daemon would
 * keep the size of the largest tree ever looked up, even once the kernel
 * forgot it all (drop_caches, memory pressure). */
static void trim_after_forgets(struct plyfs *fs, size_t before)
{
	size_t now = __atomic_load_n(&fs->table.count, __ATOMIC_RELAXED);

	if (now >= before ||
	    __atomic_add_fetch(&fs->forgotten, before - now,
			       __ATOMIC_RELAXED) < TRIM_AFTER)
		return;
	__atomic_store_n(&fs->forgotten, 0, __ATOMIC_RELAXED);
	malloc_trim(0);
}

void plyfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct plyfs *fs = plyfs_of(req);
	size_t before = __atomic_load_n(&fs->table.count, __ATOMIC_RELAXED);

	forget_one(fs, ino, nlookup);
	fuse_reply_none(req);
	trim_after_forgets(fs, before);
}

void plyfs_forget_multi(fuse_req_t req, size_t count,
			struct fuse_forget_data *forgets)
{
	struct plyfs *fs = plyfs_of(req);
	size_t before = __atomic_load_n(&fs->table.count, __ATOMIC_RELAXED);

	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
	trim_after_forgets(fs, before);
}

static int do_getattr(struct plyfs *fs, struct ply_inode *inode,
		      struct stat *ret_st)
{
	int r = plyfs_use(fs, inode);

	if (r < 0)
		return r;
	r = ply_inode_stat(&fs->stack, inode, ret_st);
	plyfs_done(fs, inode);
	if (r >= 0)
		plyfs_present(fs, ret_st);
	return r;
}

void plyfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);
	struct stat st;
	int r = do_getattr(fs, plyfs_inode(fs, ino), &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

void plyfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct plyfs *fs = plyfs_of(req);
	struct ply_inode *inode = plyfs_inode(fs, ino);
	char buf[PATH_MAX + 1];
	ssize_t n;

	n = plyfs_use(fs, inode);
	if (n >= 0) {
		n = !inode->nparts ? -EINVAL :
		    ply_sys_readlinkat(inode->parts[0].fd, "", buf,
				       sizeof(buf));
		plyfs_done(fs, inode);
	}
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* Like overlayfs: the upper layer's filesystem, else the top one; inside
 * a splice, the splice source's own. */
static int do_statfs(struct plyfs *fs, struct ply_inode *inode,
		     struct statvfs *ret)
{
	int fd = fs->stack.layers[0].fd, r = plyfs_use(fs, inode);

	if (r < 0)
		return r;
	if (inode->nparts &&
	    fs->stack.layers[inode->parts[0].layer].is_splice)
		fd = inode->parts[0].fd;
	r = fstatvfs(fd, ret) < 0 ? -errno : 0;
	plyfs_done(fs, inode);
	return r;
}

void plyfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct plyfs *fs = plyfs_of(req);
	struct statvfs sv;
	int r = do_statfs(fs, plyfs_inode(fs, ino), &sv);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_statfs(req, &sv);
}

/* Checks mask against the merged attributes for the caller. The kernel
 * does the same with default_permissions; this serves access(2) when it
 * asks us, and adds EROFS for writes to a read-only view. */
static int do_access(struct plyfs *fs, fuse_req_t req, struct ply_inode *inode,
		     int mask)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat st;
	int r = do_getattr(fs, inode, &st);
	mode_t bits;

	if (r < 0)
		return r;
	if ((mask & W_OK) && fs->read_only)
		return -EROFS;
	if (mask == F_OK)
		return 0;
	if (ctx->uid == 0) {
		/* root may execute only what someone may execute */
		if ((mask & X_OK) && !S_ISDIR(st.st_mode) &&
		    !(st.st_mode & 0111))
			return -EACCES;
		return 0;
	}
	if (ctx->uid == st.st_uid)
		bits = (st.st_mode >> 6) & 7;
	else if (ctx->gid == st.st_gid)
		bits = (st.st_mode >> 3) & 7;
	else
		bits = st.st_mode & 7;
	return ((mode_t)mask & ~bits) ? -EACCES : 0;
}

void plyfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct plyfs *fs = plyfs_of(req);

	fuse_reply_err(req, -do_access(fs, req, plyfs_inode(fs, ino), mask));
}
