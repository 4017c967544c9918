/* idmap.c: the uidmapping= and gidmapping= ranges of fuse-overlayfs, by
 * which a rootless runtime shows on-disk owners as the container's ids
 * without chowning a single file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"

#define IDMAP_SYNTAX "expected CONTAINER:HOST:SIZE ranges joined by ':'"

/* A decimal number, digits only: 1, or 0 when s is not one, or -1 when it
 * is past 2^32-1. */
static int parse_id(const char *s, uint32_t *ret)
{
	uint64_t x = 0;
	bool big = false;

	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		x = x * 10 + (uint64_t)(*s - '0');
		if (x > UINT32_MAX) {
			big = true;
			x = UINT32_MAX; /* keep reading: a letter is worse */
		}
	}
	if (big)
		return -1;
	*ret = (uint32_t)x;
	return 1;
}

static bool overlap(uint32_t a, uint32_t b, uint32_t len_a, uint32_t len_b)
{
	return (uint64_t)a < (uint64_t)b + len_b &&
	       (uint64_t)b < (uint64_t)a + len_a;
}

/* Checks range g against itself and the ranges before it. As the
 * kernel's uid_map (kernel/user_namespace.c, map_write): no empty range,
 * and neither the on-disk sides nor the presented sides of two ranges
 * overlap, so that the map is one-to-one both ways. fuse-overlayfs takes
 * overlapping ranges and maps by the first that holds an id: an id would
 * then show as one id and be written back as another. */
static int check_range(const struct ply_idmap_range *ranges, size_t i,
		       struct ply_err *err)
{
	const struct ply_idmap_range *g = &ranges[i];

	if (!g->len)
		return ply_err_set(err, -EINVAL, "a range of size 0");
	/* a range past 2^32-1 would wrap around to 0 one way only */
	if ((uint64_t)g->ondisk + g->len > (uint64_t)1 << 32 ||
	    (uint64_t)g->presented + g->len > (uint64_t)1 << 32)
		return ply_err_set(err, -EINVAL, "a range past 4294967295");
	for (size_t k = 0; k < i; k++)
		if (overlap(g->ondisk, ranges[k].ondisk, g->len,
			    ranges[k].len) ||
		    overlap(g->presented, ranges[k].presented, g->len,
			    ranges[k].len))
			return ply_err_set(err, -EINVAL, "ranges overlap");
	return 0;
}

int ply_idmap_parse(const char *spec, struct ply_idmap *ret,
		    struct ply_err *err)
{
	struct ply_idmap_range *ranges;
	char **parts;
	size_t n, first, count;
	int r = ply_split_escaped(spec, ':', &parts, &n);

	if (r < 0)
		return r;
	first = (n && !parts[0][0]) ? 1 : 0; /* runtimes lead with ':' */
	if (n - first == 0 || (n - first) % 3) {
		ply_strv_free(parts, n);
		return ply_err_set(err, -EINVAL, IDMAP_SYNTAX);
	}
	count = (n - first) / 3;
	ranges = calloc(count, sizeof(*ranges));
	if (!ranges) {
		ply_strv_free(parts, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count && r >= 0; i++) {
		struct ply_idmap_range *g = &ranges[i];
		/* as fuse-overlayfs reads them: the on-disk id first */
		uint32_t *field[3] = { &g->ondisk, &g->presented, &g->len };

		for (size_t k = 0; k < 3 && r >= 0; k++) {
			int ok = parse_id(parts[first + 3 * i + k], field[k]);

			if (ok == 0)
				r = ply_err_set(err, -EINVAL, IDMAP_SYNTAX);
			else if (ok < 0)
				r = ply_err_set(err, -EINVAL,
						"a number past 4294967295");
		}
		if (r >= 0)
			r = check_range(ranges, i, err);
	}
	ply_strv_free(parts, n);
	if (r < 0) {
		free(ranges);
		return r;
	}
	ply_idmap_free(ret);
	ret->ranges = ranges;
	ret->n = count;
	return 0;
}

void ply_idmap_free(struct ply_idmap *map)
{
	free(map->ranges);
	map->ranges = NULL;
	map->n = 0;
}

static bool in_range(uint32_t id, uint32_t start, uint32_t len)
{
	return id >= start && (uint64_t)id - start < len;
}

uint32_t ply_idmap_to_presented(const struct ply_idmap *map, uint32_t ondisk)
{
	if (!map->n)
		return ondisk;
	for (size_t i = 0; i < map->n; i++)
		if (in_range(ondisk, map->ranges[i].ondisk, map->ranges[i].len))
			return map->ranges[i].presented +
			       (ondisk - map->ranges[i].ondisk);
	return PLY_OVERFLOW_ID;
}

uint32_t ply_idmap_to_disk(const struct ply_idmap *map, uint32_t presented)
{
	if (!map->n)
		return presented;
	for (size_t i = 0; i < map->n; i++)
		if (in_range(presented, map->ranges[i].presented,
			     map->ranges[i].len))
			return map->ranges[i].ondisk +
			       (presented - map->ranges[i].presented);
	return PLY_OVERFLOW_ID;
}
