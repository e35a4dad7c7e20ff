/*
 * restore.h — bootstrap a data directory from a pgBackRest repository to a
 * recovery target, as one child process of the agent (`pgha restore-job`,
 * never typed by people): the agent treats it as it treats initdb, so its HA
 * state machine never sees a half-recovered server.
 *
 * Steps: `pgbackrest restore` of the backup the target needs into an empty
 * directory; PostgreSQL started on it with no TCP listener, a private socket
 * directory, a local-trust hba file of its own and archiving off (the new
 * timeline must never reach the source cluster's archive); waited for until
 * recovery reached the target and promoted; the superuser and replication
 * roles given the new cluster's passwords (from a 0600 file the agent wrote);
 * a checkpoint and a clean stop; pgBackRest's recovery settings removed from
 * postgresql.auto.conf. Progress goes to stdout, one line per step.
 */
#ifndef PGHA_BACKUP_RESTORE_H
#define PGHA_BACKUP_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum restore_target_kind { RESTORE_LATEST, RESTORE_TIME, RESTORE_LSN };

struct restore_target {
	enum restore_target_kind kind;
	char text[64];            /* time as pgBackRest and PostgreSQL take it, or the LSN */
};

/*
 * "latest", an LSN such as 0/5000028, or a time such as "2026-12-03 14:02:00"
 * (UTC unless it names a zone: "...+01", "... UTC"). The error says what forms
 * are taken.
 */
int restore_target_parse(const char *s, struct restore_target *out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * The target as unix seconds (time targets; 0 for others), to compare with the
 * recoverable window; -1 if the text is not a time PostgreSQL would read the
 * same way (then the check is left to recovery).
 */
int64_t restore_target_epoch(const struct restore_target *t);

struct backup_info;
struct backup_entry;
/*
 * The backup a restore to t starts from: the newest one without error that
 * ended at or before the target (its stop time, or its stop LSN; for latest
 * the newest). NULL when the target lies before the recoverable window (or
 * the repository holds no backup), with e naming the window and what to do.
 */
const struct backup_entry *restore_pick_backup(const struct backup_info *bi, const struct restore_target *t,
					       struct pgha_err *e);

/* pgBackRest's --type and --target options for it (argv entries; NULL-terminated, caller frees each). */
void restore_target_args(const struct restore_target *t, char *args[3]);

/* postgresql.auto.conf without the lines pgBackRest's restore wrote (in place of in; caller frees). */
char *restore_strip_auto_conf(const char *in);

/*
 * `pgha restore-job ...`: an exit code; RESTORE_NO_BACKUP when the repository
 * holds no backup (a standby is then cloned from the primary instead).
 * --standby: the latest backup as a standby's data directory, recovery left to
 * the agent's start. --in-place --set LABEL: the cluster's own (stopped) data
 * directory, restored with --delta from that backup, recovered with archiving
 * on (ctl restore --in-place).
 */
#define RESTORE_NO_BACKUP 3
/* Failed before pgbackrest restore started: the data directory is as it was. */
#define RESTORE_UNTOUCHED 4
int restore_job_main(int argc, char **argv);

#endif
