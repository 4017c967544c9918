/* idmap.c: the uidmapping= and gidmapping= ranges of fuse-overlayfs, by
 * which a rootless runtime shows on-disk owners as the container's ids
 * without chowning a single file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"

/* A decimal id, digits only, at most 2^32-1. */
static bool parse_id(const char *s, uint32_t *ret)
{
	uint64_t x = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
		if (x > UINT32_MAX)
			return false;
	}
	*ret = (uint32_t)x;
	return true;
}

int ply_idmap_parse(const char *spec, struct ply_idmap *ret)
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
		return -EINVAL;
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
		if (!parse_id(parts[first + 3 * i], &g->ondisk) ||
		    !parse_id(parts[first + 3 * i + 1], &g->presented) ||
		    !parse_id(parts[first + 3 * i + 2], &g->len))
			r = -EINVAL;
		/* a range past 2^32-1 would wrap around to 0 one way only */
		else if ((uint64_t)g->ondisk + g->len > (uint64_t)1 << 32 ||
			 (uint64_t)g->presented + g->len > (uint64_t)1 << 32)
			r = -EINVAL;
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
