/* progress.h: the one-line progress bar of plyctl's long operations. */
#ifndef PLYCTL_PROGRESS_H
#define PLYCTL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/* Starts the bar of the operation what ("import", ...), shown only when
 * standard error is a terminal. total_bytes, when known (else 0), makes
 * it a bar with a percentage; otherwise it counts. One bar at a time. */
void plyctl_progress_begin(const char *what, uint64_t total_bytes);
/* Counts bytes and files done; redraws at most ten times a second. */
void plyctl_progress_add(uint64_t bytes, uint64_t files);
/* Sets the bytes done to an absolute count (an archive read so far). */
void plyctl_progress_set_bytes(uint64_t bytes);
/* Draws the final state and ends the line; nothing when not shown. */
void plyctl_progress_end(void);

#endif
