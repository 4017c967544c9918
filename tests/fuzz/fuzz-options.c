/* fuzz-options.c: the -o option parser (options.c) and the id mapping
 * ranges (idmap.c) on arbitrary text. The input is split at '\n' into -o
 * arguments that accumulate as plyfs's do; then the set is validated and
 * freed. Each line is also given to ply_idmap_parse as it is. Beyond
 * what the sanitizers see, the fuzzer checks what the parsers promise:
 * an accepted set names 1..PLY_MAX_LAYERS non-empty layers, an upper
 * only with a work directory; an accepted id map has no empty range, none
 * past 2^32-1, no two overlapping on either side, and maps each range's
 * ends to its other side and back. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Do [a, a+len_a) and [b, b+len_b) share an id? */
static bool ranges_meet(uint32_t a, uint32_t len_a, uint32_t b, uint32_t len_b)
{
	return (uint64_t)a < (uint64_t)b + len_b &&
	       (uint64_t)b < (uint64_t)a + len_a;
}

static void check_idmap(const struct ply_idmap *map)
{
	for (size_t i = 0; i < map->n; i++) {
		const struct ply_idmap_range *r = &map->ranges[i];
		uint32_t last_disk, last_shown;

		CHECK((uint64_t)r->ondisk + r->len <= (uint64_t)1 << 32);
		CHECK((uint64_t)r->presented + r->len <= (uint64_t)1 << 32);
		CHECK(r->len > 0);
		/* no two ranges overlap on either side */
		for (size_t k = 0; k < i; k++) {
			const struct ply_idmap_range *o = &map->ranges[k];

			CHECK(!ranges_meet(r->ondisk, r->len, o->ondisk,
					   o->len));
			CHECK(!ranges_meet(r->presented, r->len, o->presented,
					   o->len));
		}
		/* one-to-one: a range's ends map to its other side and back */
		last_disk = r->ondisk + r->len - 1;
		last_shown = r->presented + r->len - 1;
		CHECK(ply_idmap_to_presented(map, r->ondisk) == r->presented);
		CHECK(ply_idmap_to_presented(map, last_disk) == last_shown);
		CHECK(ply_idmap_to_disk(map, r->presented) == r->ondisk);
		CHECK(ply_idmap_to_disk(map, last_shown) == last_disk);
	}
	/* identity without ranges; the overflow id past every range */
	if (!map->n)
		CHECK(ply_idmap_to_presented(map, 12345) == 12345);
}

static void one_idmap(const char *line)
{
	struct ply_idmap map = { 0 };

	if (ply_idmap_parse(line, &map, NULL) == 0)
		check_idmap(&map);
	ply_idmap_free(&map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ply_options opts;
	struct ply_err err;
	char *text = malloc(size + 1), *line;
	int r = 0;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	ply_options_init(&opts);
	line = text;
	for (;;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		one_idmap(line);
		/* plyfs stops at the first refused -o; go on regardless, so
		 * what a refusal leaves behind is parsed over too */
		r = ply_options_parse(&opts, line, &err);
		CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
		if (!nl)
			break;
		line = nl + 1;
	}
	check_idmap(&opts.uidmap);
	check_idmap(&opts.gidmap);
	if (ply_options_validate(&opts, &err) == 0) {
		CHECK(opts.nlower >= 1 && opts.nlower <= PLY_MAX_LAYERS);
		for (size_t i = 0; i < opts.nlower; i++)
			CHECK(opts.lowerdirs[i] && opts.lowerdirs[i][0]);
		CHECK(!opts.upperdir == !opts.workdir);
		for (size_t i = 0; i < opts.nsplices; i++)
			CHECK(opts.splices[i].dest && opts.splices[i].dest[0]);
	}
	ply_options_free(&opts);
	free(text);
	return 0;
}
