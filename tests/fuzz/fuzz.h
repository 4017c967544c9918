/* fuzz.h: what the fuzzers share: CHECK, an assert that stays in every
 * build type (a fuzzer's checks are its point) and names what failed. */
#ifndef PLY_FUZZ_H
#define PLY_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: check failed: %s\n",        \
				__FILE__, __LINE__, #cond);                 \
			abort();                                            \
		}                                                           \
	} while (0)

#endif
