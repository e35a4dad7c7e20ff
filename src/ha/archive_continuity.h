/*
 * archive_continuity.h — the pure part of archive_continuity.c: which WAL
 * files to archive again before a promotion, which ones a rejoining member
 * pushes, and a refused .partial. Tested in tests/unit/ha/test_archive_continuity.c.
 */
#ifndef PGHA_HA_ARCHIVE_CONTINUITY_H
#define PGHA_HA_ARCHIVE_CONTINUITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A WAL segment file name: exactly 24 upper-case hex digits; *tli its timeline. */
bool arcc_segment_name(const char *name, uint32_t *tli);

/* The newest timeline a pg_wal listing knows: the highest "NNNNNNNN.history", 1 without one. */
uint32_t arcc_newest_timeline(const char *const *wal_names, size_t n);

/*
 * Before a promotion: is this archive_status entry the ".done" mark of a
 * segment of timeline tli, a segment to archive again? Only whole segments of
 * the timeline being left: the last segment of an older timeline holds WAL
 * only up to where the next one branched off, under a full segment's name.
 */
bool arcc_rearchive(const char *status_name, uint32_t tli);

/* An archive_status entry "<file>.ready": the WAL file it marks, into file (false otherwise). */
bool arcc_ready_file(const char *status_name, char *file, size_t len);

/* qsort order of WAL file names to push: history files first (recovery needs them to pick a timeline), then by name. */
int arcc_push_order(const void *a, const void *b);

/*
 * pgBackRest's error file for wal (its spool's out/<wal>.error: the code on
 * the first line, then the message): is it the refusal of a .partial the
 * archive already holds with other content? Such a file comes from another
 * promotion off the same segment; recovery never reads a .partial.
 */
bool arcc_partial_refused(const char *wal, const char *error_text);

#endif
