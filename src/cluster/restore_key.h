/*
 * restore_key.h — the in-place restore record, /pgha/<cluster>/restore:
 *
 *   {"id", "target", "set", "member", "phase", "requested_at",
 *    "error", "touched", "timeline", "finished_at"}
 *
 * Written by `ctl restore --in-place` (created if absent, or replacing a
 * finished one under a compare on its revision); moved on by the member it
 * names (the leader when it was asked), each step compared on the revision:
 *
 *   stopping ──► restoring ──► restored ──► done
 *        │            └──► failed ──► (ctl: retried, or cancelled if untouched)
 *        └──► cancelled (ctl, nothing touched yet)
 *
 * While a record is active (stopping, restoring, restored, failed) every
 * member keeps its PostgreSQL stopped and nobody else takes the leader key:
 * the old data must not serve, and must not win an election against the
 * restored timeline. Decoding is strict (etcd may be written by anyone).
 */
#ifndef PGHA_CLUSTER_RESTORE_KEY_H
#define PGHA_CLUSTER_RESTORE_KEY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/backup_key.h"   /* BACKUP_ID_MAX, backup_new_id */
#include "cluster/member.h"
#include "common/err.h"

enum restore_phase {
	RESTORE_STOPPING,    /* every member stops PostgreSQL */
	RESTORE_RESTORING,   /* the member restores its data directory (pgbackrest restore --delta) */
	RESTORE_RESTORED,    /* ... done: it starts as primary; the others rejoin after */
	RESTORE_FAILED,      /* everybody stays stopped until ctl retries or cancels */
	RESTORE_DONE,
	RESTORE_CANCELLED,
};

struct restore_record {
	char id[BACKUP_ID_MAX];
	char target[64];             /* as restore_target_parse normalised it */
	char set[64];                /* the backup it starts from (pgBackRest label) */
	char member[MEMBER_NAME_MAX];/* who restores: the leader when it was asked */
	enum restore_phase phase;
	int64_t requested_at;        /* unix seconds */
	char error[256];             /* failed: why */
	bool touched;                /* failed: the data directory was partly overwritten */
	uint32_t timeline;           /* done: the new timeline */
	int64_t finished_at;
};

const char *restore_phase_name(enum restore_phase p);
/* Members stay stopped: stopping, restoring, restored, failed. */
bool restore_phase_active(enum restore_phase p);

char *restore_record_encode(const struct restore_record *r);
int restore_record_decode(const char *json, struct restore_record *out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Have all the members of v other than `self` stopped for restore id (their
 * records' restore_id)? Members without a record (gone, their lease expired)
 * do not count: their data is checked against the leader's history when they
 * come back, as after any failover.
 */
bool restore_all_stopped(const struct cluster_view *v, const char *self, const char *id);

/* GET /cluster and `ctl list --json`: the record, {"invalid": why}, or null. */
json_t *restore_view_json(const struct cluster_view *v);
/* `ctl list`: a line about the record ("" when there is none). */
void restore_view_describe(const struct cluster_view *v, char *out, size_t len);

#endif
