/*
 * backup_key.h — the backup records of the cluster model, under
 * /pgha/<cluster>/backup/:
 *
 *   request   a backup wanted: {"id", "type", "by": "ctl"|"schedule",
 *             "period", "requested_at"}; created if absent by `ctl backup`
 *             or by the leader's schedule, deleted by the member that ran it.
 *   running   the claim of the member running it, under that member's lease
 *             (it vanishes with the member): {"id", "type", "member",
 *             "standby", "started_at", "percent"}.
 *   last      the outcome of the last run: the running fields plus "ok",
 *             "label", "error", "finished_at", "by", "period".
 *   schedule  the last period requested per type: {"full": N, ...}, so a
 *             period gets one scheduled backup whoever is leader.
 *
 * Decoding is strict (etcd may be written by anyone): wrong types, an id that
 * is not hex, a bad member name are errors naming the record and field. The
 * pure planning functions (which type is due, who runs) live here too, so the
 * agent and the unit tests share them.
 */
#ifndef PGHA_CLUSTER_BACKUP_KEY_H
#define PGHA_CLUSTER_BACKUP_KEY_H

#include <stdbool.h>
#include <stdint.h>

#include "backup/info.h"   /* enum backup_type */
#include "cluster/member.h"
#include "common/err.h"


#define BACKUP_ID_MAX 33           /* 1..32 lowercase hex digits */

struct backup_request {
	char id[BACKUP_ID_MAX];
	enum backup_type type;
	char by[16];               /* "ctl" or "schedule" */
	int64_t period;            /* schedule: the period it is for; 0 for ctl */
	int64_t requested_at;      /* unix seconds */
};

/* The running key and, with done set, the last key. */
struct backup_run {
	char id[BACKUP_ID_MAX];
	enum backup_type type;
	char member[MEMBER_NAME_MAX];
	bool standby;              /* copied from a standby (backup-standby) */
	int64_t started_at;
	int percent;               /* running: -1 unknown */
	char by[16];
	int64_t period;
	/* last only */
	bool done;
	bool ok;
	char label[64];            /* pgBackRest's backup label, "" if none */
	char size[32];             /* pgBackRest's "backup size" text, e.g. "21.9MB" */
	char error[256];
	int64_t finished_at;
};

/* A fresh request id from /dev/urandom (16 hex digits). */
void backup_new_id(char id[BACKUP_ID_MAX]);

char *backup_request_encode(const struct backup_request *r);
int backup_request_decode(const char *json, struct backup_request *out, struct pgha_err *e) PGHA_MUSTCHECK;
char *backup_run_encode(const struct backup_run *r);
/* what: "backup running" or "backup last" (for the error). */
int backup_run_decode(const char *json, const char *what, struct backup_run *out,
		      struct pgha_err *e) PGHA_MUSTCHECK;

/* ---- the schedule ------------------------------------------------------ */

/* [backup] full_every / diff_every / incr_every (seconds, 0: not scheduled) and schedule_offset. */
struct backup_plan {
	int64_t every_s[BACKUP_NTYPES];
	int64_t offset_s;
};

/* The last period requested per type, -1: none yet. */
struct backup_schedule {
	int64_t period[BACKUP_NTYPES];
};

char *backup_schedule_encode(const struct backup_schedule *s);
/* NULL json: nothing requested yet (every period -1). */
int backup_schedule_decode(const char *json, struct backup_schedule *out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Periods are counted from the Unix epoch shifted by offset_s: with
 * every = 1 day and offset = 2 h, a period starts at 02:00 UTC each day.
 * Due: the largest type (full, then diff, then incr) whose period at now_s is
 * later than the one recorded. A period with no record yet is due at once (a
 * new cluster gets its first full backup). false: nothing due.
 */
bool backup_schedule_due(const struct backup_plan *p, const struct backup_schedule *s, int64_t now_s,
			 enum backup_type *type, int64_t *period);
/*
 * A scheduled backup that failed is asked for again, every BACKUP_RETRY_S,
 * while its period lasts: true when last (the last key) is such a failure,
 * of a period still current, that ended at least that long ago.
 */
#define BACKUP_RETRY_S 900
bool backup_schedule_retry_due(const struct backup_plan *p, const struct backup_run *last, int64_t now_s,
			       enum backup_type *type, int64_t *period);
/*
 * Record type as requested at now_s. A full backup also serves the diff and
 * incr periods of now, a diff the incr period.
 */
void backup_schedule_mark(const struct backup_plan *p, struct backup_schedule *s, enum backup_type type,
			  int64_t now_s);

/* ---- who runs it ------------------------------------------------------- */

#define BACKUP_STANDBY_MAX_LAG (16LL << 20)

/*
 * The member that should run a backup: a streaming standby on the leader's
 * host (pgBackRest copies from it and needs only the start and stop from the
 * primary), the one with the least lag, then the lowest name; else the
 * leader. NULL when the leader has no record or no [backup] (no backup_host).
 * *standby tells which case.
 */
const struct member *backup_pick_runner(const struct cluster_view *v, bool *standby);

/* ---- what operators see ------------------------------------------------ */

/*
 * The JSON of GET /cluster and `ctl list --json`: cluster_view_encode plus
 * "backup": {"request", "running", "last"} (each decoded and re-encoded, null
 * when absent; a key that does not decode shows as {"invalid": why}). Caller
 * frees.
 */
char *backup_view_encode(const struct cluster_view *v, const char *cluster_name);

/*
 * One line for `ctl list`: the last backup and its age, a running one, and how
 * long ago the leader archived WAL. "" when [backup] is off on the leader and
 * no backup key exists.
 */
void backup_view_describe(const struct cluster_view *v, int64_t now_s, char *out, size_t len);

#endif
