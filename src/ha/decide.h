/*
 * decide.h — the HA decision: a pure function from what the agent observed to
 * the one action it takes next. No I/O, no clocks: unit-tested over tables of
 * observed states (tests/unit/test_decide.c).
 *
 * The agent loop is: observe (local PostgreSQL, data directory, etcd) → decide
 * → act → publish. Each action is small and idempotent; the next loop observes
 * its effect. Long work (initdb, pg_basebackup) runs as a child job, so the
 * loop keeps renewing the lease meanwhile.
 */
#ifndef PGHA_HA_DECIDE_H
#define PGHA_HA_DECIDE_H

#include <stdbool.h>

enum ha_data {
	HA_DATA_MISSING,     /* no data directory (or an empty one) */
	HA_DATA_VALID,       /* a PostgreSQL data directory */
	HA_DATA_INVALID,     /* a non-empty directory that is not one: never touched */
};

enum ha_pg {
	HA_PG_STOPPED,
	HA_PG_STARTING,      /* started, not accepting connections yet */
	HA_PG_PRIMARY,       /* running, not in recovery */
	HA_PG_REPLICA,       /* running, in recovery */
};

enum ha_init {
	HA_INIT_ABSENT,      /* no initialize key: nobody bootstrapped the cluster */
	HA_INIT_MINE,        /* this member claimed the bootstrap and is doing it */
	HA_INIT_OTHER,       /* another member is bootstrapping */
	HA_INIT_DONE,        /* the cluster exists; its system identifier is known */
};

struct ha_observed {
	bool job_running;          /* initdb or pg_basebackup in progress */
	bool in_backoff;           /* the last job/start failed: wait before retrying */
	bool dcs_ok;               /* etcd answered this loop */
	enum ha_init init;
	bool leader_absent;
	bool leader_is_me;
	bool leader_known;         /* the leader's member record (address) is known */
	bool leader_running;       /* ... and says PostgreSQL runs as primary */
	enum ha_data data;
	bool sysid_mismatch;       /* data belongs to another cluster (init DONE only) */
	bool data_standby;         /* standby.signal present (the data was a standby) */
	enum ha_pg pg;
	bool following_leader;     /* replica: primary_conninfo points at the leader */
	bool slot_ready;           /* the leader has our replication slot (for cloning) */
};

enum ha_action {
	ACT_WAIT,             /* nothing to do now; reason says why */
	ACT_FATAL,            /* refuse to go on (foreign or invalid data directory) */
	ACT_CLAIM_INIT,       /* race for the initialize key */
	ACT_INITDB,           /* start initdb as a job */
	ACT_TAKE_LEADER,      /* create the leader key under our lease */
	ACT_START_PRIMARY,    /* write config (no standby.signal) and start PostgreSQL */
	ACT_FINISH_BOOTSTRAP, /* roles, then initialize = system identifier */
	ACT_CLONE,            /* start pg_basebackup from the leader as a job */
	ACT_START_STANDBY,    /* write standby config and start PostgreSQL */
	ACT_FOLLOW,           /* re-point primary_conninfo at the leader and reload */
	ACT_DEMOTE,           /* stop a primary that does not hold the key */
	ACT_PROMOTE,          /* we hold the key but run as a replica */
	ACT_LEADER_DUTIES,    /* keep slots for the members, publish */
	ACT_REPLICA_DUTIES,   /* streaming from the leader: publish */
};

struct ha_decision {
	enum ha_action action;
	const char *reason;   /* static text for logs and the API */
};

struct ha_decision ha_decide(const struct ha_observed *o);
const char *ha_action_name(enum ha_action a);

#endif
