/* ops-dir.c: merged directory listings. A handle reads the listing at
 * opendir and again when the reader comes back to the start (rewinddir);
 * offsets are the entries' cookies, which mean the same place in every
 * listing of the directory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plyfs.h"

/* An open directory: its listing, shared with the inode's kept one. */
struct dir_handle {
	struct plyfs_handle h; /* first: the handle list's view of it */
	struct ply_dir *dir;
	bool read_from; /* a READDIR has used dir */
};

static void dir_handle_free(struct plyfs_handle *h)
{
	struct dir_handle *dh = (struct dir_handle *)h;

	ply_dir_put(dh->dir);
	free(dh);
}

int plyfs_read_listing(struct plyfs *fs, struct ply_inode *inode,
		       struct ply_dir **ret)
{
	uint64_t parent_ino = inode->parent ? inode->parent->ino : inode->ino;
	struct ply_dir *dir = ply_inode_listing(inode);
	int r;

	if (dir) {
		*ret = dir;
		return 0;
	}
	dir = calloc(1, sizeof(*dir));
	if (!dir)
		return -ENOMEM;
	r = ply_dir_read_spliced(&fs->stack, inode->parts, inode->nparts,
				 inode->snode, inode->ino, parent_ino, dir);
	if (r < 0) {
		free(dir);
		return r;
	}
	dir->refs = 1;
	/* lookups in it skip the ".wh." probes of lower parts without one
	 * (unless the layers may change behind the mount: timeout=0) */
	for (size_t i = 0; fs->timeout > 0 && i < inode->nparts && i < 64; i++)
		if (dir->unmarked & (UINT64_C(1) << i))
			__atomic_store_n(&inode->parts[i].no_wh_files, true,
					 __ATOMIC_RELAXED);
	/* still under the read lock: no change came between */
	ply_inode_keep_listing(&fs->stack, inode, dir);
	*ret = dir;
	return 0;
}

/* Whether the kernel may keep this directory's listing between opens.
 * It drops its copy when a change it made bumps the directory's version,
 * but only for readers starting at offset 0: a reader part way through
 * may carry on in a copy filled before the change by a handle opened
 * before it. So a directory changed through this mount is never handed
 * to the kernel's cache again (while the inode lives), nor is one whose
 * layers may change behind the mount (timeout=0, splices). */
static bool listing_cacheable(struct plyfs *fs, struct ply_inode *inode)
{
	return fs->timeout > 0 && !ply_inode_listing_changed(inode) &&
	       ply_inode_listing_keepable(&fs->stack, inode);
}

static int take_listing(struct plyfs *fs, struct ply_inode *inode,
		      struct ply_dir **ret)
{
	int r = plyfs_use(fs, inode);

	if (r < 0)
		return r;
	r = plyfs_read_listing(fs, inode, ret);
	plyfs_done(fs, inode);
	return r;
}

void plyfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct plyfs *fs = plyfs_of(req);
	struct dir_handle *dh = calloc(1, sizeof(*dh));
	int r = dh ? take_listing(fs, plyfs_inode(fs, ino), &dh->dir) : -ENOMEM;

	if (r < 0) {
		free(dh);
		fuse_reply_err(req, -r);
		return;
	}
	dh->h.free = dir_handle_free;
	plyfs_handle_add(fs, &dh->h);
	fi->fh = (uint64_t)(uintptr_t)dh;
	fi->cache_readdir = listing_cacheable(fs, plyfs_inode(fs, ino));
	fi->keep_cache = fi->cache_readdir;
	if (fuse_reply_open(req, fi) < 0) {
		plyfs_handle_del(fs, &dh->h);
		dir_handle_free(&dh->h);
	}
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' &&
	       (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Fills buf with entries from off on. In plus mode each entry other than
 * . and .. is looked up, and the one that does not fit is forgotten. */
static size_t fill(fuse_req_t req, struct plyfs *fs, struct ply_inode *inode,
		   struct ply_dir *dir, char *buf, size_t size, off_t off,
		   bool plus)
{
	size_t used = 0;

	for (size_t i = ply_dir_seek(dir, (uint64_t)off); i < dir->count;
	     i++) {
		const struct ply_dirent *de = &dir->entries[i];
		struct fuse_entry_param e;
		size_t need;

		memset(&e, 0, sizeof(e));
		e.attr.st_ino = de->ino;
		e.attr.st_mode = (mode_t)de->type << 12;
		if (!plus) {
			need = fuse_add_direntry(req, buf + used, size - used,
						 de->name, &e.attr,
						 (off_t)de->cookie);
			if (need > size - used)
				break;
			used += need;
			continue;
		}
		/* An entry the kernel already holds goes without a nodeid:
		 * looking it up again would only make the kernel drop the
		 * ACLs it cached for it. */
		if (!is_dot_or_dotdot(de->name) &&
		    !ply_inode_table_knows(&fs->table, inode, de->name,
					   de->ino) &&
		    plyfs_do_lookup_hint(fs, inode, de->name, de->layer, &e) <
			    0)
			continue; /* gone since opendir */
		need = fuse_add_direntry_plus(req, buf + used, size - used,
					      de->name, &e, (off_t)de->cookie);
		if (need > size - used) {
			if (e.ino)
				ply_inode_table_forget(&fs->table,
						       plyfs_inode(fs, e.ino),
						       1);
			break;
		}
		used += need;
	}
	return used;
}

static void reply_listing(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi, bool plus)
{
	struct plyfs *fs = plyfs_of(req);
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	struct ply_inode *inode = plyfs_inode(fs, ino);
	char *buf;
	size_t used;
	int r;

	/* back at the start: the stream shows the directory as it is now */
	if (off == 0 && dh->read_from) {
		struct ply_dir *now;

		r = take_listing(fs, inode, &now);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
		ply_dir_put(dh->dir);
		dh->dir = now;
	}
	dh->read_from = true;
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	used = fill(req, fs, inode, dh->dir, buf, size, off, plus);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void plyfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	reply_listing(req, ino, size, off, fi, false);
}

void plyfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	reply_listing(req, ino, size, off, fi, true);
}

void plyfs_releasedir(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;

	plyfs_handle_del(plyfs_of(req), &dh->h);
	dir_handle_free(&dh->h);
	fuse_reply_err(req, 0);
}
