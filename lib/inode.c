/* inode.c: the table of merged objects the kernel holds references to,
 * keyed by st_ino (unique per object, so hard links share one inode), and
 * the cache of their part fds, bounded so that a tree of any size can be
 * served within the process's fd limit.
 * Lock order: an inode's rwlock, its fd_lock, then the table lock; a
 * child's locks before its parent's. The table lock is never held across
 * a syscall other than close. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ply.h"
#include "sys.h"

#define INITIAL_BUCKETS 1024

static size_t bucket_of(const struct ply_inode_table *table, uint64_t ino)
{
	/* st_ino's low bits are the real inode number: spread them */
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 20) &
	       (table->nbuckets - 1);
}

/* Whether a lookup's parts are open: a lazy lookup leaves the one part of
 * a lower non-directory closed (fd -1), for ply_inode_pin to open. */
static bool fds_of(const struct ply_lookup *lk)
{
	return !lk->nparts || lk->parts[0].fd >= 0;
}

static struct ply_inode *inode_new(struct ply_lookup *lk, const char *name)
{
	struct ply_inode *inode = calloc(1, sizeof(*inode));

	if (!inode)
		return NULL;
	inode->name = strdup(name);
	if (!inode->name) {
		free(inode);
		return NULL;
	}
	inode->ino = lk->st.st_ino;
	inode->type = lk->st.st_mode & S_IFMT;
	inode->snode = lk->snode;
	inode->parts = lk->parts;
	inode->nparts = lk->nparts;
	inode->fds_open = fds_of(lk);
	lk->parts = NULL;
	lk->nparts = 0;
	pthread_rwlock_init(&inode->lock, NULL);
	pthread_mutex_init(&inode->fd_lock, NULL);
	return inode;
}

/* ---- the LRU of unpinned inodes with open fds --------------------------- */

static bool in_lru(const struct ply_inode_table *table,
		   const struct ply_inode *inode)
{
	return inode->lru_prev || table->lru_head == inode;
}

static void lru_remove(struct ply_inode_table *table, struct ply_inode *inode)
{
	if (!in_lru(table, inode))
		return;
	if (inode->lru_prev)
		inode->lru_prev->lru_next = inode->lru_next;
	else
		table->lru_head = inode->lru_next;
	if (inode->lru_next)
		inode->lru_next->lru_prev = inode->lru_prev;
	else
		table->lru_tail = inode->lru_prev;
	inode->lru_prev = inode->lru_next = NULL;
}

static void lru_append(struct ply_inode_table *table, struct ply_inode *inode)
{
	inode->lru_prev = table->lru_tail;
	inode->lru_next = NULL;
	if (table->lru_tail)
		table->lru_tail->lru_next = inode;
	else
		table->lru_head = inode;
	table->lru_tail = inode;
}

static void close_fds_locked(struct ply_inode_table *table,
			     struct ply_inode *inode)
{
	if (!inode->fds_open)
		return;
	for (size_t i = 0; i < inode->nparts; i++) {
		ply_sys_close(inode->parts[i].fd);
		inode->parts[i].fd = -1;
	}
	table->open_fds -= inode->nparts;
	inode->fds_open = false;
}

static void trim_locked(struct ply_inode_table *table)
{
	while (table->open_fds > table->max_fds && table->lru_head) {
		struct ply_inode *victim = table->lru_head;

		lru_remove(table, victim);
		close_fds_locked(table, victim);
	}
}

/* ---- the table ---------------------------------------------------------- */

int ply_inode_table_init(struct ply_inode_table *table, struct ply_lookup *root,
			 size_t max_fds)
{
	memset(table, 0, sizeof(*table));
	table->buckets = calloc(INITIAL_BUCKETS, sizeof(*table->buckets));
	table->root = inode_new(root, "/");
	if (!table->buckets || !table->root) {
		free(table->buckets);
		free(table->root);
		return -ENOMEM;
	}
	table->nbuckets = INITIAL_BUCKETS;
	table->max_fds = max_fds;
	table->root->nlookup = 1;
	table->root->pins = 1; /* the root's fds stay open */
	table->open_fds = table->root->nparts;
	pthread_mutex_init(&table->lock, NULL);
	return 0;
}

static void inode_free(struct ply_inode_table *table, struct ply_inode *inode)
{
	ply_dir_put(inode->listing);
	close_fds_locked(table, inode);
	free(inode->parts);
	free(inode->name);
	pthread_rwlock_destroy(&inode->lock);
	pthread_mutex_destroy(&inode->fd_lock);
	free(inode);
}

void ply_inode_table_destroy(struct ply_inode_table *table)
{
	for (size_t b = 0; b < table->nbuckets; b++) {
		struct ply_inode *inode = table->buckets[b], *next;

		for (; inode; inode = next) {
			next = inode->next;
			inode_free(table, inode);
		}
	}
	if (table->root)
		inode_free(table, table->root);
	free(table->buckets);
	pthread_mutex_destroy(&table->lock);
	memset(table, 0, sizeof(*table));
}

/* Doubles the bucket array when the table gets crowded; a failed
 * allocation just leaves longer chains. */
static void maybe_grow_locked(struct ply_inode_table *table)
{
	size_t old_n = table->nbuckets;
	struct ply_inode **old = table->buckets, **grown;

	if (table->count < 2 * old_n)
		return;
	grown = calloc(2 * old_n, sizeof(*grown));
	if (!grown)
		return;
	table->buckets = grown;
	table->nbuckets = 2 * old_n;
	for (size_t b = 0; b < old_n; b++) {
		struct ply_inode *inode = old[b], *next;

		for (; inode; inode = next) {
			size_t nb = bucket_of(table, inode->ino);

			next = inode->next;
			inode->next = grown[nb];
			grown[nb] = inode;
		}
	}
	free(old);
}

static struct ply_inode *find_locked(struct ply_inode_table *table,
				     uint64_t ino)
{
	struct ply_inode *inode = table->buckets[bucket_of(table, ino)];

	while (inode && inode->ino != ino)
		inode = inode->next;
	return inode;
}

static bool unused(const struct ply_inode *inode)
{
	return !inode->nlookup && !inode->nchildren && !inode->pins;
}

/* Frees inode, and then each parent that nothing holds any more. */
static void release_locked(struct ply_inode_table *table,
			   struct ply_inode *inode)
{
	while (inode && inode != table->root && unused(inode)) {
		struct ply_inode **link = &table->buckets[bucket_of(table,
								     inode->ino)];
		struct ply_inode *parent = inode->parent;

		while (*link && *link != inode)
			link = &(*link)->next;
		if (*link)
			*link = inode->next;
		table->count--;
		lru_remove(table, inode);
		inode_free(table, inode);
		if (parent)
			parent->nchildren--;
		inode = parent;
	}
}

/* An inode whose fds were closed takes the fresh ones of a new lookup. */
static bool adopt_locked(struct ply_inode_table *table,
			 struct ply_inode *inode, struct ply_lookup *lk)
{
	if (inode->fds_open || inode->nparts != lk->nparts || !fds_of(lk))
		return false;
	for (size_t i = 0; i < lk->nparts; i++)
		if (inode->parts[i].layer != lk->parts[i].layer)
			return false;
	for (size_t i = 0; i < lk->nparts; i++) {
		inode->parts[i].fd = lk->parts[i].fd;
		lk->parts[i].fd = -1;
	}
	inode->fds_open = true;
	table->open_fds += inode->nparts;
	if (!inode->pins)
		lru_append(table, inode);
	return true;
}

bool ply_inode_table_knows(struct ply_inode_table *table,
			   const struct ply_inode *parent, const char *name,
			   uint64_t ino)
{
	struct ply_inode *inode;
	bool known;

	pthread_mutex_lock(&table->lock);
	inode = find_locked(table, ino);
	known = inode && inode->nlookup && inode->parent == parent &&
		!inode->orphan && strcmp(inode->name, name) == 0;
	pthread_mutex_unlock(&table->lock);
	return known;
}

int ply_inode_table_acquire(struct ply_inode_table *table,
			    struct ply_inode *parent, const char *name,
			    struct ply_lookup *lk, struct ply_inode **ret)
{
	struct ply_inode *inode, *fresh;
	size_t b;

	/* allocate outside the lock; most lookups of a cold tree insert */
	pthread_mutex_lock(&table->lock);
	inode = find_locked(table, lk->st.st_ino);
	if (inode) {
		inode->nlookup++;
		adopt_locked(table, inode, lk);
		trim_locked(table);
		pthread_mutex_unlock(&table->lock);
		ply_lookup_release(lk);
		*ret = inode;
		return 0;
	}
	pthread_mutex_unlock(&table->lock);

	fresh = inode_new(lk, name);
	if (!fresh) {
		ply_lookup_release(lk);
		return -ENOMEM;
	}
	pthread_mutex_lock(&table->lock);
	inode = find_locked(table, fresh->ino);
	if (inode) { /* another thread inserted it meanwhile */
		struct ply_lookup mine = { .parts = fresh->parts,
					   .nparts = fresh->nparts };

		inode->nlookup++;
		adopt_locked(table, inode, &mine);
		trim_locked(table);
		pthread_mutex_unlock(&table->lock);
		fresh->parts = NULL;
		fresh->nparts = 0;
		ply_lookup_release(&mine);
		inode_free(table, fresh);
		*ret = inode;
		return 0;
	}
	fresh->nlookup = 1;
	fresh->parent = parent;
	parent->nchildren++;
	b = bucket_of(table, fresh->ino);
	fresh->next = table->buckets[b];
	table->buckets[b] = fresh;
	table->count++;
	if (fresh->fds_open) {
		table->open_fds += fresh->nparts;
		lru_append(table, fresh);
	}
	maybe_grow_locked(table);
	trim_locked(table);
	pthread_mutex_unlock(&table->lock);
	*ret = fresh;
	return 0;
}

void ply_inode_table_forget(struct ply_inode_table *table,
			    struct ply_inode *inode, uint64_t n)
{
	pthread_mutex_lock(&table->lock);
	inode->nlookup = inode->nlookup > n ? inode->nlookup - n : 0;
	if (!inode->nlookup && inode->orphan) {
		inode->orphan = false;
		inode->pins--;
	}
	release_locked(table, inode);
	pthread_mutex_unlock(&table->lock);
}

/* ---- pinning: the fds of an inode in use -------------------------------- */

static const struct ply_part *part_in_layer(const struct ply_inode *dir,
					    uint16_t layer)
{
	for (size_t i = 0; i < dir->nparts; i++)
		if (dir->parts[i].layer == layer)
			return &dir->parts[i];
	return NULL;
}

/* Reopens every part of inode by name from its parent; the parent's own
 * fds are pinned (and reopened) for the while. Called with fd_lock held. */
static int reopen_parts(struct ply_inode_table *table, struct ply_inode *inode)
{
	struct ply_inode *parent = inode->parent;
	int *fds, r, pinned;
	bool open;

	pthread_mutex_lock(&table->lock);
	open = inode->fds_open;
	pthread_mutex_unlock(&table->lock);
	if (open)
		return 0;
	if (!parent)
		return -ESTALE;
	fds = malloc(inode->nparts * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	r = pinned = ply_inode_pin(table, parent);
	for (size_t i = 0; i < inode->nparts && r >= 0; i++) {
		const struct ply_part *part = &inode->parts[i];
		const struct ply_part *dir = part_in_layer(parent, part->layer);
		struct stat st;

		if (!dir)
			fds[i] = -ESTALE;
		else if (S_ISDIR(inode->type))
			fds[i] = ply_sys_open_dir(dir->fd, inode->name);
		else
			fds[i] = ply_sys_open_path(dir->fd, inode->name);
		r = fds[i] < 0 ? fds[i] : ply_sys_fstat(fds[i], &st);
		if (r >= 0 && (st.st_dev != part->dev || st.st_ino != part->ino))
			r = -ESTALE; /* the layer changed under us */
		if (r < 0) {
			if (fds[i] >= 0)
				ply_sys_close(fds[i]);
			while (i--)
				ply_sys_close(fds[i]);
		}
	}
	if (pinned >= 0)
		ply_inode_unpin(table, parent);
	if (r < 0) {
		free(fds);
		/* gone, or no longer a directory (O_DIRECTORY|O_NOFOLLOW) */
		return (r == -ENOENT || r == -ENOTDIR || r == -ELOOP) ?
			       -ESTALE : r;
	}
	pthread_mutex_lock(&table->lock);
	if (inode->fds_open) { /* a lookup gave it fresh fds meanwhile */
		for (size_t i = 0; i < inode->nparts; i++)
			ply_sys_close(fds[i]);
	} else {
		for (size_t i = 0; i < inode->nparts; i++)
			inode->parts[i].fd = fds[i];
		inode->fds_open = true;
		table->open_fds += inode->nparts;
	}
	pthread_mutex_unlock(&table->lock);
	free(fds);
	return 0;
}

int ply_inode_pin(struct ply_inode_table *table, struct ply_inode *inode)
{
	bool open;
	int r;

	pthread_mutex_lock(&table->lock);
	if (inode->pins++ == 0)
		lru_remove(table, inode);
	open = inode->fds_open;
	pthread_mutex_unlock(&table->lock);
	if (open)
		return 0;
	pthread_mutex_lock(&inode->fd_lock);
	r = reopen_parts(table, inode);
	pthread_mutex_unlock(&inode->fd_lock);
	if (r < 0)
		ply_inode_unpin(table, inode);
	return r;
}

void ply_inode_unpin(struct ply_inode_table *table, struct ply_inode *inode)
{
	pthread_mutex_lock(&table->lock);
	if (--inode->pins == 0 && inode->fds_open)
		lru_append(table, inode);
	release_locked(table, inode);
	trim_locked(table);
	pthread_mutex_unlock(&table->lock);
}

void ply_inode_set_parts(struct ply_inode_table *table,
			 struct ply_inode *inode, struct ply_part *parts,
			 size_t nparts)
{
	struct ply_part *old = inode->parts;
	size_t nold = inode->nparts;

	for (size_t i = 0; i < nold; i++) {
		bool kept = false;

		for (size_t j = 0; j < nparts && !kept; j++)
			kept = parts[j].fd == old[i].fd;
		if (!kept)
			ply_sys_close(old[i].fd);
	}
	pthread_mutex_lock(&table->lock);
	table->open_fds += nparts;
	table->open_fds -= nold;
	inode->parts = parts;
	inode->nparts = nparts;
	inode->fds_open = true;
	pthread_mutex_unlock(&table->lock);
	free(old);
}

int ply_inode_move(struct ply_inode_table *table, struct ply_inode *inode,
		   struct ply_inode *newparent, const char *name)
{
	char *copy = strdup(name), *old_name;
	struct ply_inode *old_parent;

	if (!copy)
		return -ENOMEM;
	/* the rwlock waits out a copy-up, which works by parent and name;
	 * fd_lock: a reopen reads parent and name under it */
	pthread_rwlock_wrlock(&inode->lock);
	pthread_mutex_lock(&inode->fd_lock);
	pthread_mutex_lock(&table->lock);
	old_parent = inode->parent;
	old_name = inode->name;
	inode->parent = newparent;
	inode->name = copy;
	newparent->nchildren++;
	old_parent->nchildren--;
	release_locked(table, old_parent);
	pthread_mutex_unlock(&table->lock);
	pthread_mutex_unlock(&inode->fd_lock);
	pthread_rwlock_unlock(&inode->lock);
	free(old_name);
	return 0;
}

void ply_inode_orphan(struct ply_inode_table *table, struct ply_inode *inode)
{
	pthread_mutex_lock(&table->lock);
	if (inode->orphan || inode == table->root)
		inode->pins--; /* already held by an earlier orphaning */
	else
		inode->orphan = true;
	pthread_mutex_unlock(&table->lock);
}

bool ply_inode_is_orphan(struct ply_inode_table *table,
			 const struct ply_inode *inode)
{
	bool orphan;

	pthread_mutex_lock(&table->lock);
	orphan = inode->orphan;
	pthread_mutex_unlock(&table->lock);
	return orphan;
}

int ply_inode_stat(const struct ply_stack *stack, const struct ply_inode *inode,
		   struct stat *ret_st)
{
	if (!inode->nparts && inode->snode) {
		*ret_st = inode->snode->vstat;
		return 0;
	}
	return ply_object_stat(stack, inode->parts, inode->nparts, ret_st);
}

ssize_t ply_inode_getxattr(struct ply_inode_table *table,
			   struct ply_inode *inode, const char *name,
			   void *buf, size_t size)
{
	struct ply_inode *parent = NULL;
	ssize_t n = -ENODATA;
	bool open;

	if (!inode->nparts)
		return -ENODATA; /* on the way to a splice: none */
	pthread_mutex_lock(&inode->fd_lock);
	pthread_mutex_lock(&table->lock);
	open = inode->fds_open || !inode->parent;
	if (open) {
		inode->pins++;
		lru_remove(table, inode);
	} else if (inode->parent->fds_open) {
		parent = inode->parent;
		parent->pins++;
		lru_remove(table, parent);
	}
	pthread_mutex_unlock(&table->lock);
	if (!open && parent) {
		const struct ply_part *dir = part_in_layer(parent,
							   inode->parts[0].layer);

		n = dir ? ply_sys_getxattrat(dir->fd, inode->name, name, buf,
						 size) :
			  -ESTALE;
	}
	pthread_mutex_unlock(&inode->fd_lock);
	if (parent) {
		ply_inode_unpin(table, parent);
		return n;
	}
	if (!open) { /* neither is open: the slow way */
		n = ply_inode_pin(table, inode);
		if (n < 0)
			return n;
	}
	pthread_rwlock_rdlock(&inode->lock);
	n = ply_sys_fd_getxattr(inode->parts[0].fd, name, buf, size);
	pthread_rwlock_unlock(&inode->lock);
	ply_inode_unpin(table, inode);
	return n;
}

struct ply_dir *ply_inode_listing(struct ply_inode *inode)
{
	struct ply_dir *dir;

	pthread_mutex_lock(&inode->fd_lock);
	dir = inode->listing ? ply_dir_get(inode->listing) : NULL;
	pthread_mutex_unlock(&inode->fd_lock);
	return dir;
}

bool ply_inode_listing_keepable(const struct ply_stack *stack,
				const struct ply_inode *inode)
{
	for (size_t i = 0; i < inode->nparts; i++)
		if (stack->layers[inode->parts[i].layer].is_splice)
			return false;
	return true;
}

void ply_inode_keep_listing(const struct ply_stack *stack,
			    struct ply_inode *inode, struct ply_dir *dir)
{
	if (!ply_inode_listing_keepable(stack, inode))
		return;
	pthread_mutex_lock(&inode->fd_lock);
	if (!inode->listing)
		inode->listing = ply_dir_get(dir);
	pthread_mutex_unlock(&inode->fd_lock);
}

void ply_inode_drop_listing(struct ply_inode *inode)
{
	struct ply_dir *old;

	__atomic_store_n(&inode->listing_changed, true, __ATOMIC_RELAXED);
	pthread_mutex_lock(&inode->fd_lock);
	old = inode->listing;
	inode->listing = NULL;
	pthread_mutex_unlock(&inode->fd_lock);
	ply_dir_put(old);
}

bool ply_inode_listing_changed(const struct ply_inode *inode)
{
	return __atomic_load_n(&inode->listing_changed, __ATOMIC_RELAXED);
}
