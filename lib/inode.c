/* inode.c: the table of merged objects the kernel holds references to,
 * keyed by st_ino (unique per object, so hard links share one inode).
 * Lock order: table lock, then an inode's lock; never the other way. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"
#include "sys.h"

#define INITIAL_BUCKETS 1024

static size_t bucket_of(const struct ply_inode_table *table, uint64_t ino)
{
	/* st_ino's low bits are the real inode number: spread them */
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 20) &
	       (table->nbuckets - 1);
}

int ply_inode_table_init(struct ply_inode_table *table)
{
	memset(table, 0, sizeof(*table));
	table->buckets = calloc(INITIAL_BUCKETS, sizeof(*table->buckets));
	if (!table->buckets)
		return -ENOMEM;
	table->nbuckets = INITIAL_BUCKETS;
	pthread_mutex_init(&table->lock, NULL);
	return 0;
}

static void inode_free(struct ply_inode *inode)
{
	for (size_t i = 0; i < inode->nparts; i++)
		ply_sys_close(inode->parts[i].fd);
	free(inode->parts);
	pthread_rwlock_destroy(&inode->lock);
	free(inode);
}

void ply_inode_table_destroy(struct ply_inode_table *table)
{
	for (size_t b = 0; b < table->nbuckets; b++) {
		struct ply_inode *inode = table->buckets[b], *next;

		for (; inode; inode = next) {
			next = inode->next;
			inode_free(inode);
		}
	}
	free(table->buckets);
	pthread_mutex_destroy(&table->lock);
	memset(table, 0, sizeof(*table));
}

/* Doubles the bucket array when the table gets crowded; a failed
 * allocation just leaves longer chains. Called with the lock held. */
static void maybe_grow(struct ply_inode_table *table)
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

int ply_inode_table_acquire(struct ply_inode_table *table,
			    struct ply_lookup *lk, struct ply_inode **ret)
{
	struct ply_inode *inode, *fresh;
	size_t b;

	/* allocate outside the lock; most lookups of a cold tree insert */
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh) {
		ply_lookup_release(lk);
		return -ENOMEM;
	}
	pthread_mutex_lock(&table->lock);
	inode = find_locked(table, lk->st.st_ino);
	if (inode) {
		inode->nlookup++;
		pthread_mutex_unlock(&table->lock);
		free(fresh);
		ply_lookup_release(lk);
		*ret = inode;
		return 0;
	}
	fresh->ino = lk->st.st_ino;
	fresh->type = lk->st.st_mode & S_IFMT;
	fresh->nlookup = 1;
	fresh->parts = lk->parts;
	fresh->nparts = lk->nparts;
	pthread_rwlock_init(&fresh->lock, NULL);
	lk->parts = NULL;
	lk->nparts = 0;
	b = bucket_of(table, fresh->ino);
	fresh->next = table->buckets[b];
	table->buckets[b] = fresh;
	table->count++;
	maybe_grow(table);
	pthread_mutex_unlock(&table->lock);
	*ret = fresh;
	return 0;
}

void ply_inode_table_forget(struct ply_inode_table *table,
			    struct ply_inode *inode, uint64_t n)
{
	struct ply_inode **link;

	pthread_mutex_lock(&table->lock);
	if (inode->nlookup > n) {
		inode->nlookup -= n;
		pthread_mutex_unlock(&table->lock);
		return;
	}
	link = &table->buckets[bucket_of(table, inode->ino)];
	while (*link && *link != inode)
		link = &(*link)->next;
	if (*link)
		*link = inode->next;
	table->count--;
	pthread_mutex_unlock(&table->lock);
	inode_free(inode);
}
