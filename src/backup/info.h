/*
 * info.h — what the repository holds, from `pgbackrest info --output=json`:
 * the stanza's status, each backup (label, type, times, sizes, the WAL and
 * LSN range it needs) and the archived WAL range. Pure: text in, struct out;
 * `pgha ctl backups` prints it and computes the recoverable window from it.
 *
 * The text comes from a program pgha runs, but over a repository anyone with
 * access may have written, so decoding is strict on the fields it uses (a
 * wrong type is an error naming the field) and lenient on fields it does not.
 */
#ifndef PGHA_BACKUP_INFO_H
#define PGHA_BACKUP_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define BACKUP_INFO_MAX 1024   /* backups listed (a repository keeping more is refused) */

enum backup_type { BACKUP_FULL, BACKUP_DIFF, BACKUP_INCR, BACKUP_NTYPES };

struct backup_entry {
	char label[64];          /* 20261203-093950F_20261203-093953I */
	enum backup_type type;
	char prior[64];          /* the backup it depends on ("" for a full one) */
	int64_t start_s;         /* unix seconds */
	int64_t stop_s;
	uint64_t size;           /* the database's size at the backup */
	uint64_t delta;          /* what this backup copied */
	uint64_t repo_size;      /* the backup in the repository, compressed, with what it references */
	uint64_t repo_delta;     /* what this backup added to the repository */
	char wal_start[25];      /* the first and last WAL segment a restore of it needs */
	char wal_stop[25];
	uint64_t lsn_start;
	uint64_t lsn_stop;
	bool error;              /* pgBackRest found a page checksum error while copying */
};

struct backup_info {
	char stanza[64];
	int status_code;         /* 0 ok; see pgBackRest's info documentation for the others */
	char status[256];        /* its message: "ok", "no valid backups", "missing stanza path", ... */
	bool backup_running;     /* a backup holds the stanza's lock */
	uint64_t system_id;      /* of the current database (0: none known) */
	char wal_min[25];        /* archived WAL of the current database ("" none) */
	char wal_max[25];
	struct backup_entry *backups; /* oldest first */
	size_t nbackups;
};

/* "full", "diff", "incr" (pgBackRest's --type) */
const char *backup_type_name(enum backup_type t);
int backup_type_parse(const char *s, enum backup_type *out);

/*
 * Decode pgBackRest's JSON for one stanza (the text holds an array of
 * stanzas; `stanza` picks one). A stanza the repository does not hold is not
 * an error: its status says so, as pgBackRest reports it.
 */
int backup_info_decode(const char *json, const char *stanza, struct backup_info *out,
		       struct pgha_err *e) PGHA_MUSTCHECK;
void backup_info_free(struct backup_info *bi);

/* The newest backup without error that a restore can start from, or NULL. */
const struct backup_entry *backup_info_latest(const struct backup_info *bi);

#endif
