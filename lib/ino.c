/* ino.c: the inode numbers plyfs reports (docs/inode-numbers.md).
 * st_ino = layer id in the top 10 bits, the object's own inode number in
 * the low 54. An object on another filesystem than its layer's root (a
 * mount inside a layer), or with an inode number too large to fit, gets a
 * 54-bit hash of (layer, dev, ino) under the reserved id 1023 instead. */
#include <xxhash.h>

#include "ply.h"

#define INO_MASK ((UINT64_C(1) << PLY_INO_BITS) - 1)

uint64_t ply_ino_compose(const struct ply_layer *layer, dev_t dev, ino_t ino)
{
	uint64_t key[3];

	if (dev == layer->dev && (uint64_t)ino <= INO_MASK)
		return ((uint64_t)layer->id << PLY_INO_BITS) | (uint64_t)ino;
	key[0] = layer->id;
	key[1] = (uint64_t)dev;
	key[2] = (uint64_t)ino;
	return ((uint64_t)PLY_LAYER_ID_HASHED << PLY_INO_BITS) |
	       (XXH64(key, sizeof(key), 0) & INO_MASK);
}
