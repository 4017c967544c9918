/* readdir.c: the merged listing of one directory. Each name appears once,
 * from the topmost layer that has it; markers and whited-out names are
 * left out. A ".wh.NAME" hides NAME only in the layers below its own. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "ply.h"
#include "sys.h"

/* Names already decided: listed, or hidden by a whiteout. Open addressing
 * over indexes into recs; pool offsets stay valid while the pool grows. */
struct name_rec {
	size_t name_off;
	bool hidden;
};

struct name_set {
	uint32_t *slots; /* 0 empty, else rec index + 1 */
	size_t nslots;
	struct name_rec *recs;
	size_t nrecs, recs_cap;
};

struct builder {
	struct ply_dir *dir;
	struct name_set seen;
	size_t entries_cap;
	size_t *entry_off; /* pool offset of each entry's name */
	size_t entry_off_cap;
	size_t *pending; /* pool offsets of ".wh." targets of this layer */
	size_t npending, pending_cap;
	bool saw_marker; /* this layer holds a marker name */
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	q = realloc(*p, ncap * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = ncap;
	return 0;
}

static int pool_add(struct ply_dir *dir, const char *name, size_t *ret_off)
{
	size_t len = strlen(name) + 1;
	int r = grow((void **)&dir->pool, &dir->pool_size, dir->pool_used + len,
		     1);

	if (r < 0)
		return r;
	memcpy(dir->pool + dir->pool_used, name, len);
	*ret_off = dir->pool_used;
	dir->pool_used += len;
	return 0;
}

static size_t slot_of(const struct name_set *set, const char *name)
{
	return (size_t)XXH3_64bits(name, strlen(name)) & (set->nslots - 1);
}

/* Returns the slot holding name, or the empty slot where it would go. */
static size_t probe(const struct name_set *set, const char *pool,
		    const char *name)
{
	size_t s = slot_of(set, name);

	while (set->slots[s] &&
	       strcmp(pool + set->recs[set->slots[s] - 1].name_off, name))
		s = (s + 1) & (set->nslots - 1);
	return s;
}

static int set_rehash(struct name_set *set, const char *pool)
{
	size_t n = set->nslots ? set->nslots * 2 : 256;
	uint32_t *old = set->slots;

	set->slots = calloc(n, sizeof(*set->slots));
	if (!set->slots) {
		set->slots = old;
		return -ENOMEM;
	}
	set->nslots = n;
	for (size_t i = 0; i < set->nrecs; i++)
		set->slots[probe(set, pool, pool + set->recs[i].name_off)] =
			(uint32_t)(i + 1);
	free(old);
	return 0;
}

static bool set_contains(const struct name_set *set, const char *pool,
			 const char *name)
{
	return set->nslots && set->slots[probe(set, pool, name)];
}

static int set_insert(struct name_set *set, const char *pool, size_t name_off,
		      bool hidden)
{
	int r;

	if (2 * (set->nrecs + 1) > set->nslots) {
		r = set_rehash(set, pool);
		if (r < 0)
			return r;
	}
	r = grow((void **)&set->recs, &set->recs_cap, set->nrecs + 1,
		 sizeof(*set->recs));
	if (r < 0)
		return r;
	set->recs[set->nrecs] = (struct name_rec){ name_off, hidden };
	set->slots[probe(set, pool, pool + name_off)] =
		(uint32_t)(++set->nrecs);
	return 0;
}

static int add_entry(struct builder *b, const char *name, uint64_t ino,
		     unsigned char type, uint16_t layer)
{
	struct ply_dir *dir = b->dir;
	size_t off;
	int r;

	r = grow((void **)&dir->entries, &b->entries_cap, dir->count + 1,
		 sizeof(*dir->entries));
	if (r >= 0)
		r = grow((void **)&b->entry_off, &b->entry_off_cap, dir->count + 1,
			 sizeof(*b->entry_off));
	if (r < 0)
		return r;
	r = pool_add(dir, name, &off);
	if (r < 0)
		return r;
	b->entry_off[dir->count] = off;
	dir->entries[dir->count++] =
		(struct ply_dirent){ NULL, ino, 0, type, layer };
	return 0;
}

static unsigned char type_of_mode(mode_t mode)
{
	return (unsigned char)IFTODT(mode);
}

/* d_ino as a lookup's st_ino: an entry copied up into an impure upper
 * directory keeps the number it had below (its origin). */
static uint64_t entry_ino(const struct ply_layer *layer,
			  const struct ply_part *part, const char *name,
			  ino_t d_ino)
{
	uint64_t origin;
	int fd;

	if (layer->is_upper && part->impure) {
		fd = ply_sys_open_path(part->fd, name);
		if (fd >= 0) {
			int r = ply_copyup_origin(fd, &origin);

			close(fd);
			if (r >= 0)
				return origin;
		}
	}
	return ply_ino_compose(layer, layer->dev, d_ino);
}

/* Decides one name of one layer: listed, hidden, or already decided. */
static int take_name(struct builder *b, const struct ply_stack *stack,
		     const struct ply_part *part, const struct dirent *de)
{
	const struct ply_layer *layer = &stack->layers[part->layer];
	const char *name = de->d_name;
	unsigned char type = de->d_type;
	const char *target;
	struct stat st;
	size_t off;
	int r;

	if (layer->is_splice) /* a plain tree: every name is itself */
		return add_entry(b, name,
				 ply_ino_compose(layer, layer->dev, de->d_ino),
				 type, part->layer);
	if (ply_marker_name_reserved(name)) {
		b->saw_marker = true;
		target = ply_marker_whiteout_target(name);
		if (!target)
			return 0;
		r = pool_add(b->dir, target, &off);
		if (r >= 0)
			r = grow((void **)&b->pending, &b->pending_cap,
				 b->npending + 1, sizeof(*b->pending));
		if (r >= 0)
			b->pending[b->npending++] = off;
		return r;
	}
	if (set_contains(&b->seen, b->dir->pool, name))
		return 0;
	if (type == DT_UNKNOWN || type == DT_CHR ||
	    (type == DT_REG && part->state != PLY_DIR_PLAIN)) {
		if (ply_sys_fstatat(part->fd, name, &st) < 0)
			return 0; /* vanished meanwhile */
		type = type_of_mode(st.st_mode);
		if (ply_marker_is_whiteout(part->fd, name, &st, part->state) >
		    0) {
			r = pool_add(b->dir, name, &off);
			return r < 0 ? r :
				       set_insert(&b->seen, b->dir->pool, off,
						  true);
		}
	}
	r = add_entry(b, name, entry_ino(layer, part, name, de->d_ino), type,
		      part->layer);
	if (r < 0)
		return r;
	return set_insert(&b->seen, b->dir->pool,
			  b->entry_off[b->dir->count - 1], false);
}

static int read_layer(struct builder *b, const struct ply_stack *stack,
		      const struct ply_part *part)
{
	char buf[32768];
	ssize_t n;
	int fd, r = 0;

	/* listing must not touch the layer's atimes where we may say so */
	fd = ply_sys_openat(part->fd, ".", O_RDONLY | O_DIRECTORY | O_NOATIME,
			    0);
	if (fd == -EPERM)
		fd = ply_sys_openat(part->fd, ".", O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	while ((n = ply_sys_getdents(fd, buf, sizeof(buf))) > 0 && r >= 0) {
		for (ssize_t pos = 0; pos < n && r >= 0;) {
			struct dirent *de = (struct dirent *)(buf + pos);

			pos += de->d_reclen;
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				r = take_name(b, stack, part, de);
		}
	}
	close(fd);
	if (n < 0)
		return (int)n;
	/* this layer's ".wh.NAME" files hide NAME in the layers below */
	for (size_t i = 0; i < b->npending && r >= 0; i++) {
		const char *target = b->dir->pool + b->pending[i];

		if (!set_contains(&b->seen, b->dir->pool, target))
			r = set_insert(&b->seen, b->dir->pool, b->pending[i],
				       true);
	}
	b->npending = 0;
	return r;
}

/* The splices and the directories on the way to them stand over
 * whatever the layers list under their names. */
static int add_splices(struct builder *b, const struct ply_snode *snode)
{
	struct ply_dir *dir = b->dir;

	for (size_t i = 0; snode && i < snode->nchildren; i++) {
		const struct ply_snode *child = &snode->children[i];
		bool found = false;

		for (size_t e = 2; e < dir->count && !found; e++) {
			if (strcmp(dir->pool + b->entry_off[e], child->name))
				continue;
			found = true;
			/* a directory the layers hold on the way to a splice
			 * stays itself, as a lookup finds it */
			if (child->layer < 0 && dir->entries[e].type == DT_DIR)
				continue;
			dir->entries[e].ino = child->ino;
			dir->entries[e].type = child->type;
		}
		if (!found) {
			int r = add_entry(b, child->name, child->ino,
					  child->type, 0);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void order_by_cookie(struct ply_dir *dir);
static int build_index(struct ply_dir *dir);

int ply_dir_read(const struct ply_stack *stack, const struct ply_part *parts,
		 size_t nparts, uint64_t self_ino, uint64_t parent_ino,
		 struct ply_dir *ret)
{
	return ply_dir_read_spliced(stack, parts, nparts, NULL, self_ino,
				    parent_ino, ret);
}

int ply_dir_read_spliced(const struct ply_stack *stack,
			 const struct ply_part *parts, size_t nparts,
			 const struct ply_snode *snode, uint64_t self_ino,
			 uint64_t parent_ino, struct ply_dir *ret)
{
	struct ply_dir dir = { 0 };
	struct builder b = { .dir = &dir };
	int r;

	r = add_entry(&b, ".", self_ino, DT_DIR, nparts ? parts[0].layer : 0);
	if (r >= 0)
		r = add_entry(&b, "..", parent_ino, DT_DIR,
			      nparts ? parts[0].layer : 0);
	for (size_t i = 0; i < nparts && r >= 0; i++) {
		const struct ply_layer *layer = &stack->layers[parts[i].layer];

		b.saw_marker = false;
		r = read_layer(&b, stack, &parts[i]);
		if (r >= 0 && !b.saw_marker && i < 64 && !layer->is_upper &&
		    !layer->is_splice)
			dir.unmarked |= UINT64_C(1) << i;
	}
	if (r >= 0)
		r = add_splices(&b, snode);
	free(b.seen.slots);
	free(b.seen.recs);
	free(b.pending);
	if (r < 0) {
		free(b.entry_off);
		ply_dir_free(&dir);
		return r;
	}
	for (size_t i = 0; i < dir.count; i++)
		dir.entries[i].name = dir.pool + b.entry_off[i];
	free(b.entry_off);
	order_by_cookie(&dir);
	r = build_index(&dir);
	if (r < 0) {
		ply_dir_free(&dir);
		return r;
	}
	*ret = dir;
	return 0;
}

static uint64_t name_hash(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

/* Offsets 1 and 2 are "." and ".."; a name's cookie is 29 bits of its
 * hash above those. Every offset stays below 2^31, so a 32-bit program's
 * readdir (a 32-bit d_off, or EOVERFLOW from glibc) can take it, as
 * ext4 hands 31-bit hashes to such callers; the room above 2^29 is for
 * the collision steps. */
enum { COOKIE_DOT = 1, COOKIE_DOTDOT = 2, COOKIE_FIRST = 3 };

static int cookie_cmp(const void *a, const void *b)
{
	const struct ply_dirent *x = a, *y = b;

	if (x->cookie != y->cookie)
		return x->cookie < y->cookie ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Sorts the names after "." and ".." by cookie, the order a reader sees:
 * the place after a name is then the same in every listing. Names whose
 * hashes collide take the next free cookies in name order. */
static void order_by_cookie(struct ply_dir *dir)
{
	struct ply_dirent *e = dir->entries;

	if (dir->count < 2)
		return;
	e[0].cookie = COOKIE_DOT;
	e[1].cookie = COOKIE_DOTDOT;
	for (size_t i = 2; i < dir->count; i++)
		e[i].cookie = COOKIE_FIRST + (name_hash(e[i].name) >> 35);
	qsort(e + 2, dir->count - 2, sizeof(*e), cookie_cmp);
	for (size_t i = 3; i < dir->count; i++)
		if (e[i].cookie <= e[i - 1].cookie)
			e[i].cookie = e[i - 1].cookie + 1;
}

size_t ply_dir_seek(const struct ply_dir *dir, uint64_t off)
{
	size_t lo = 0, hi = dir->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (dir->entries[mid].cookie <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t index_slot(const struct ply_dir *dir, const char *name)
{
	return (size_t)name_hash(name) & (dir->nindex - 1);
}

/* The name index that answers lookups from a kept listing. */
static int build_index(struct ply_dir *dir)
{
	size_t n = 16;

	while (n < 2 * dir->count)
		n *= 2;
	dir->index = calloc(n, sizeof(*dir->index));
	if (!dir->index)
		return -ENOMEM;
	dir->nindex = n;
	for (size_t i = 0; i < dir->count; i++) {
		size_t s = index_slot(dir, dir->entries[i].name);

		while (dir->index[s])
			s = (s + 1) & (n - 1);
		dir->index[s] = (uint32_t)(i + 1);
	}
	return 0;
}

const struct ply_dirent *ply_dir_find(const struct ply_dir *dir,
				      const char *name)
{
	size_t s;

	if (!dir->nindex)
		return NULL;
	for (s = index_slot(dir, name); dir->index[s];
	     s = (s + 1) & (dir->nindex - 1)) {
		const struct ply_dirent *de = &dir->entries[dir->index[s] - 1];

		if (!strcmp(de->name, name))
			return de;
	}
	return NULL;
}

struct ply_dir *ply_dir_get(struct ply_dir *dir)
{
	__atomic_add_fetch(&dir->refs, 1, __ATOMIC_RELAXED);
	return dir;
}

void ply_dir_put(struct ply_dir *dir)
{
	if (dir && __atomic_sub_fetch(&dir->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		ply_dir_free(dir);
		free(dir);
	}
}

void ply_dir_free(struct ply_dir *dir)
{
	free(dir->index);
	free(dir->entries);
	free(dir->pool);
	memset(dir, 0, sizeof(*dir));
}

/* ---- a plain listing, for the tools ------------------------------------- */

int ply_strcmp_qsort(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ply_dir_names(int fd, char ***ret, size_t *ret_n)
{
	int dfd = ply_sys_openat(fd, ".", O_RDONLY | O_DIRECTORY, 0);
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	if (dfd < 0)
		return dfd;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **grown = realloc(v, (cap = cap ? 2 * cap : 32) *
							  sizeof(*v));

			if (!grown)
				goto nomem;
			v = grown;
		}
		if (!(v[n] = strdup(de->d_name)))
			goto nomem;
		n++;
	}
	closedir(d);
	if (n) /* qsort wants an array, even an empty one */
		qsort(v, n, sizeof(*v), ply_strcmp_qsort);
	*ret = v;
	*ret_n = n;
	return 0;
nomem:
	closedir(d);
	ply_strv_free(v, n);
	return -ENOMEM;
}
