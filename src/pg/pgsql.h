/*
 * pgsql.h — the SQL the agent runs on its local PostgreSQL (libpq, unix socket).
 */
#ifndef PGHA_PG_PGSQL_H
#define PGHA_PG_PGSQL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "pg/pgctl.h"

struct pg_status {
	bool in_recovery;
	uint32_t timeline;
	uint64_t wal_lsn;          /* primary: pg_current_wal_lsn() */
	uint64_t received_lsn;     /* standby */
	uint64_t replayed_lsn;     /* standby */
	bool streaming;            /* walreceiver status = streaming */
	char upstream_host[256];   /* walreceiver sender_host, "" if none */
	int upstream_port;
	/*
	 * Walreceiver: the sender's last reported WAL end (latest_end_lsn), 0
	 * unknown; the age of its last message (last_msg_receipt_time), -1 unknown.
	 */
	uint64_t sender_end_lsn;
	int64_t last_msg_age_ms;
	char system_id[32];
	int server_version;        /* server_version_num */
};

/* One row of pg_stat_replication (a walsender). */
struct pg_replica {
	char name[64];             /* application_name: the member name (primary_conninfo) */
	bool streaming;            /* state = 'streaming' */
	char sync_state[16];       /* async, potential, sync, quorum */
	uint64_t flush_lsn;
};

struct pg_slot {
	char name[64];
	bool active;
	bool physical;
};

/* Connect over the unix socket as the superuser (password in memory). */
PGconn *pg_connect_local(const struct pg_node *n, struct pgha_err *e);
int pg_query_status(PGconn *c, struct pg_status *out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Create the role if missing, or update it: LOGIN, the given password (sent as a
 * SCRAM verifier computed here, never as plain text), and REPLICATION or
 * SUPERUSER as asked.
 */
int pg_ensure_role(PGconn *c, const char *role, const char *password, bool replication,
		   struct pgha_err *e) PGHA_MUSTCHECK;

int pg_list_slots(PGconn *c, struct pg_slot **slots, size_t *n, struct pgha_err *e) PGHA_MUSTCHECK;
/* reserve: the slot keeps WAL from now on, before anyone streams through it. */
int pg_create_physical_slot(PGconn *c, const char *name, bool reserve, struct pgha_err *e) PGHA_MUSTCHECK;
int pg_drop_slot(PGconn *c, const char *name, struct pgha_err *e) PGHA_MUSTCHECK;
int pg_reload_conf(PGconn *c, struct pgha_err *e) PGHA_MUSTCHECK;
/* The walsenders of this server (pg_stat_replication). */
int pg_list_replication(PGconn *c, struct pg_replica **out, size_t *n, struct pgha_err *e) PGHA_MUSTCHECK;
/*
 * Parameters whose changed value waits for a restart (pg_settings.pending_restart),
 * comma-separated and sorted, "" if none (caller frees).
 */
int pg_pending_restart(PGconn *c, char **names, struct pgha_err *e) PGHA_MUSTCHECK;
/* current_setting(name) as this session sees it (caller frees). */
int pg_show_setting(PGconn *c, const char *name, char **value, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Over a replication connection to conninfo (READ_REPLICATION_SLOT, PG 15+):
 * 1 if the slot exists on that server, 0 if not, -1 on error.
 */
int pg_remote_slot_exists(const char *conninfo, const char *slot, struct pgha_err *e);

/*
 * Ask a server over a replication connection for its current timeline and
 * WAL position (IDENTIFY_SYSTEM) and, when its timeline is above 1, the
 * history file of that timeline (TIMELINE_HISTORY). *history is "" for
 * timeline 1; the caller frees it.
 */
int pg_remote_timeline(const char *conninfo, uint32_t *tli, uint64_t *lsn, char **history,
		       struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Can pg_rewind use this server as its source now? It reads the source's
 * timeline from its control file, which a promotion updates only at the next
 * checkpoint: until then pg_rewind picks a wrong divergence point (or finds
 * "no rewind required") and the standby will not start. *ready: the last
 * checkpoint is on the current timeline, of a primary, or of a standby (a
 * cascading source: its timeline is the one it receives, and it is asked for
 * a CHECKPOINT, i.e. a restartpoint, when its control file lags); *ckpt_tli
 * and *cur_tli say what was seen (cur_tli 0: a standby not receiving).
 * conninfo: a superuser's.
 */
int pg_remote_rewind_ready(const char *conninfo, bool *ready, uint32_t *ckpt_tli, uint32_t *cur_tli,
			   struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Pure: has a server at (my_tli, my_lsn) diverged from the history of a
 * server on leader_tli? True when my timeline is not an ancestor of the
 * leader's, or when I have WAL past the point where the leader's history
 * left my timeline. `history` is the content of leader_tli's history file.
 */
bool pg_timeline_diverged(const char *history, uint32_t leader_tli, uint32_t my_tli, uint64_t my_lsn);

/*
 * Pure: is a stopped data directory (its pg_controldata) off the history of a
 * server on leader_tli? "Latest checkpoint location" is where the checkpoint
 * record STARTS: PostgreSQL refuses to recover from a checkpoint at or past
 * the switchpoint ("requested timeline N is not a child of this server's
 * history"). The minimum recovery point is an end position. A primary that
 * did not shut down cleanly ("in production") has WAL past its last
 * checkpoint that pg_controldata does not show: on another timeline than the
 * leader's it counts as diverged (pg_rewind finds out how far).
 */
bool pg_data_diverged(const char *history, uint32_t leader_tli, const struct pg_data_info *d);

#endif
