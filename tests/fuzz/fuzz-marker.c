/* fuzz-marker.c: the marker decoders of marker.c on arbitrary bytes: the
 * input is taken as an xattr value (overlay.opaque, overlay.redirect), as
 * a listxattr list, and as a directory entry name (".wh." names, private
 * xattr names). Each gets an exactly sized copy, so a read past the end
 * is caught. Beyond the sanitizers, the fuzzer checks what the decoders
 * promise; above all that an accepted redirect can only lead to a name
 * in the same directory or to a path inside the layer (no "." or ".."
 * component, none longer than NAME_MAX, no NUL inside). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_redirect(const uint8_t *data, size_t size)
{
	char buf[PATH_MAX];
	int r = ply_marker_redirect_parse(data, size, buf, sizeof(buf));

	CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		return;
	CHECK(size > 0 && size < sizeof(buf));
	CHECK(strlen(buf) == size && !memcmp(buf, data, size));
	if (buf[0] != '/') {
		/* a name in the same directory */
		CHECK(!strchr(buf, '/'));
		CHECK(strcmp(buf, ".") && strcmp(buf, ".."));
		CHECK(size <= NAME_MAX);
		return;
	}
	/* a path from the layer root: no component climbs or stays, and
	 * none is longer than a layer can hold */
	for (const char *p = buf; *p;) {
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		CHECK(!(n == 1 && p[0] == '.'));
		CHECK(!(n == 2 && p[0] == '.' && p[1] == '.'));
		CHECK(n <= NAME_MAX);
		p += n;
	}
}

static void check_name(const char *name)
{
	const char *target = ply_marker_whiteout_target(name);
	bool reserved = ply_marker_name_reserved(name);

	CHECK(reserved == !strncmp(name, PLY_WH_PREFIX, PLY_WH_PREFIX_LEN));
	if (target) {
		CHECK(reserved);
		CHECK(target == name + PLY_WH_PREFIX_LEN);
		CHECK(*target && !ply_marker_name_reserved(target));
		CHECK(strcmp(target, ".") && strcmp(target, ".."));
	}
	/* every overlay.* name is private, in the namespaces markers use */
	if (!strncmp(name, "trusted.overlay.", 16) ||
	    !strncmp(name, "user.overlay.", 13))
		CHECK(ply_xattr_is_private(name));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	char *name = malloc(size + 1);
	enum ply_opaque state;
	unsigned marks;

	if (!copy || !name)
		goto out;
	memcpy(copy, data, size);

	state = ply_marker_opaque_parse(copy, size);
	CHECK(state == (size == 1 && copy[0] == 'y' ? PLY_DIR_OPAQUE :
			 size == 1 && copy[0] == 'x' ? PLY_DIR_XWHITEOUTS :
						       PLY_DIR_PLAIN));

	check_redirect((const uint8_t *)copy, size);

	marks = ply_marker_marks_parse(copy, size);
	CHECK(!(marks & ~(unsigned)(PLY_MARK_OPAQUE | PLY_MARK_REDIRECT |
				      PLY_MARK_IMPURE | PLY_MARK_METACOPY |
				      PLY_MARK_ORIGIN)));

	memcpy(name, data, size);
	name[size] = '\0';
	check_name(name);
out:
	free(copy);
	free(name);
	return 0;
}
