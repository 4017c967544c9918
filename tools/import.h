/* import.h: the importer behind plyctl import, on an archive already
 * opened (a file for plyctl, a buffer for tests/fuzz/fuzz-import.c). */
#ifndef PLYCTL_IMPORT_H
#define PLYCTL_IMPORT_H

#include <archive.h>
#include <limits.h>
#include <stdbool.h>

#include "ply.h"

struct plyctl_import {
	enum ply_wh_format wh_format; /* how markers are written */
	const char *xattr_ns;         /* "trusted." or "user." for them */
	bool root;  /* owners from the archive, device nodes made */
	bool quiet; /* no messages on stderr (the fuzzer) */
};
struct plyctl_import_result {
	unsigned refused; /* entries refused, each with a message */
	unsigned skipped; /* device nodes we may not make */
	/* the file the archive broke off in (cut short, a broken stream),
	 * left out of the layer, or "": then the archive broke off between
	 * entries, if it did */
	char cut[PATH_MAX];
};

/* Unpacks every entry of the opened archive a into the layer directory
 * rootfd (O_PATH), never writing outside it; then sets the directories'
 * modes and times. res is filled in every case. Returns 0, or -EIO when
 * the archive could not be read to its end (what came before is unpacked,
 * a file it broke off in is not: res->cut names it;
 * archive_error_string(a) says why). */
int plyctl_import_archive(struct archive *a, int rootfd,
			  const struct plyctl_import *opts,
			  struct plyctl_import_result *res);

#endif
