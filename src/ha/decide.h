/*
 * decide.h — the HA decision: a pure function from what the agent observed to
 * the one action it takes next. No I/O, no clocks: unit-tested over tables of
 * observed states (tests/unit/test_decide.c).
 *
 * The agent loop is: observe (local PostgreSQL, data directory, etcd, other
 * members' API when an election needs it) → decide → act → publish. Each
 * action is small and idempotent; the next loop observes its effect. Long
 * work (initdb, pg_basebackup, pg_rewind) runs as a child job, so the loop
 * keeps renewing the lease meanwhile.
 *
 * Safety rules the decision keeps (and the unit tests check over every
 * combination of inputs):
 *  - PostgreSQL is started as a primary or promoted only by the holder of the
 *    leader key, and the key is only taken with etcd reachable.
 *  - Without etcd nothing is promoted; a primary that cannot reach etcd keeps
 *    asking the members (failsafe) and stays primary while every member
 *    confirms; otherwise it demotes just before its lease could expire (and the
 *    fence thread kills PostgreSQL at the deadline if that did not happen).
 *  - A standby races for a free key only if it is the most advanced eligible
 *    member that answered, within maximum_lag_on_failover of the last known
 *    leader position, not tagged nofailover, and not holding a failsafe promise.
 *  - In synchronous mode (sync.h) a member the sync key does not list (as a
 *    synchronous standby or as the leader it belongs to) never takes the key,
 *    is never promoted or started as primary; a primary so placed without the
 *    key stops. Which listed standby may race (it must hear from enough of
 *    the others) is the election's job (election.h).
 *  - In maintenance mode (paused) nothing is started, stopped, promoted or
 *    demoted.
 *  - Under another member's key, a stopped member starts as a standby only once
 *    its WAL is known to be on that leader's history (a diverged directory
 *    never serves reads; it is rewound first).
 *  - A running primary is not stopped for a leader key that is only suspect
 *    (leader_suspect): it may be hand-written.
 *  - An operator's request (`ctl restart`, `ctl reinit`) is acted on only with
 *    etcd reachable and not paused: a restart stops a standby of the current
 *    leader or the leader's own primary (which then starts again as the key
 *    allows); a re-clone moves aside only the data of a standby (never of the
 *    key holder) while a leader runs to clone from.
 *  - During an in-place restore (`ctl restore --in-place`, cluster/restore_key.h)
 *    every member keeps PostgreSQL stopped: nothing starts, clones, rewinds
 *    or elects on the data being rolled back. Only the member the record
 *    names takes the key, restores once every member stopped, and starts as
 *    primary once its restore succeeded.
 *
 * A standby cluster ([standby_cluster] primary_hosts, until `ctl promote-cluster`)
 * replicates from another pgha cluster; ha_decide_standby_cluster() rewrites the
 * decision for it, and keeps these rules (the sweep checks them too):
 *  - Nothing is initialized, started as a primary or promoted: initdb becomes a
 *    clone of the primary cluster, a primary start a standby start, and the key
 *    holder ("standby leader") streams from the primary cluster (following_leader
 *    then means: primary_conninfo names the primary cluster).
 *  - A running primary is stopped (a standby cluster never runs one), except in
 *    maintenance mode, while a job runs, or with data refused as FATAL.
 *  - The standby leader checks its data against the primary cluster's history
 *    (history): a data directory that ran as a primary waits for the answer
 *    before it starts; one that diverged (it took writes the primary cluster
 *    does not have: a cluster demoted after the other was promoted) is stopped
 *    and rewound from the primary cluster, re-cloned only if pg_rewind fails.
 *  - Everything else is ha_decide's: elections among the standby cluster's own
 *    members, and its other members cascading from the standby leader.
 */
#ifndef PGHA_HA_DECIDE_H
#define PGHA_HA_DECIDE_H

#include <stdbool.h>
#include <stdint.h>

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

enum ha_election {
	HA_ELECT_NOT_ASKED,  /* the agent did not poll the others (not needed) */
	HA_ELECT_BEST,       /* no eligible member that answered is ahead of us */
	HA_ELECT_BEHIND,     /* another member is ahead */
	HA_ELECT_UNSETTLED,  /* someone has not seen the leader go yet, or (synchronous
				mode) too few synchronous standbys answered: ask again */
};

enum ha_target {
	HA_TARGET_NONE,      /* no manual failover requested */
	HA_TARGET_ME,        /* `ctl failover --to` names this member */
	HA_TARGET_OTHER,     /* ... names another member */
};

/* Is this member's WAL on the leader's history? (pg_timeline_diverged, failover.c) */
enum ha_history {
	HA_HIST_ON,          /* yes, or nothing to compare with (no other leader, or running) */
	HA_HIST_UNKNOWN,     /* stopped, and not yet checked against the current leader: a
				diverged directory must never start as a hot standby serving reads */
	HA_HIST_DIVERGED,    /* our WAL has records the leader's history does not */
};

enum ha_request {
	HA_REQ_NONE,         /* no operator request pending for this member */
	HA_REQ_RESTART,      /* `ctl restart`: PostgreSQL must still be stopped for it */
	HA_REQ_REINIT,       /* `ctl reinit`: the data must still be moved aside for it */
};

/* An in-place restore (ctl restore --in-place), from this member's side. */
enum ha_restore {
	HA_RST_NONE,         /* none active */
	HA_RST_OTHER,        /* another member restores: stay stopped */
	HA_RST_STOPPING,     /* this member restores; another member's PostgreSQL still runs */
	HA_RST_READY,        /* this member restores; every member is stopped: restore (again, after a crash) */
	HA_RST_RESTORED,     /* this member restored its data: start it as primary */
	HA_RST_FAILED,       /* the restore failed: everybody stays stopped until ctl retries or cancels */
};

struct ha_observed {
	bool job_running;          /* initdb, pg_basebackup or pg_rewind in progress */
	bool in_backoff;           /* the last job/start failed: wait before retrying */
	bool dcs_ok;               /* etcd answered this loop (lease renewed, cluster read) */
	bool paused;               /* maintenance mode */
	bool failsafe_ok;          /* etcd unreachable, but every member confirmed our ping */
	bool failsafe_hold;        /* we promised a leader (failsafe ping) not to race for now */
	bool lease_expiring;       /* no etcd: the fencing deadline is near, demote gracefully now */
	enum ha_init init;
	bool leader_absent;
	bool leader_is_me;
	bool leader_known;         /* the leader's member record (address) is known */
	bool leader_running;       /* ... and says PostgreSQL runs as primary */
	bool leader_suspect;       /* the key names another member under a lease not its own, for less
				      than a ttl: an agent moving its key shows that for a moment, a hand-
				      written key forever (then it counts as no leader: ha/leader_key.c) */
	enum ha_target failover_to;
	enum ha_data data;
	bool sysid_mismatch;       /* data belongs to another cluster (init DONE only) */
	bool data_standby;         /* the data is (or was last started as) a standby */
	enum ha_pg pg;
	bool crashed;              /* PostgreSQL died without being asked to */
	bool restart_exhausted;    /* as leader: it did not come back within the bound */
	bool following_leader;     /* replica: primary_conninfo points at the leader */
	bool rewind_failed;        /* pg_rewind failed twice in a row: only a re-clone can help */
	bool slot_ready;           /* the leader has our replication slot (for cloning) */
	bool eligible;             /* may be promoted: no nofailover tag, priority > 0, lag ok */
	bool sync_denied;          /* synchronous mode: the sync key names neither this member
				      as a synchronous standby nor as its leader */
	bool handover_wait;        /* planned switchover: the candidate has not confirmed every WAL
				      record of our clean stop yet, so the key stays with us */
	enum ha_election election;
	enum ha_request request;
	enum ha_history history;
	enum ha_restore restore;
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
	ACT_START_STANDBY,    /* write standby config and start (streaming from the leader if any) */
	ACT_FOLLOW,           /* re-point primary_conninfo at the leader and reload */
	ACT_DEMOTE,           /* stop PostgreSQL (fast): a primary without the key, or to rewind */
	ACT_PROMOTE,          /* we hold the key but run as a replica */
	ACT_RELEASE_LEADER,   /* give the key up (crashed PostgreSQL that does not come back, manual failover) */
	ACT_REWIND,           /* pg_rewind against the leader as a job */
	ACT_RECLONE,          /* move the diverged data directory aside, then clone */
	ACT_ELECT,            /* poll the other members before racing for the key */
	ACT_LEADER_DUTIES,    /* keep slots for the members, publish */
	ACT_REPLICA_DUTIES,   /* streaming from the leader: publish */
	ACT_RESTART,          /* requested restart: stop PostgreSQL (the next loops start it again) */
	ACT_REINIT,           /* requested re-clone: stop PostgreSQL, move the data aside (then clone) */
	ACT_RESTORE_STOP,     /* in-place restore: stop PostgreSQL (fast) and stay stopped */
	ACT_RESTORE_RUN,      /* in-place restore: the record to "restoring", then the restore job */
	ACT_RESTORE_FINISH,   /* in-place restore: the restored primary runs; the record to "done" */
};
#define ACT_LAST ACT_RESTORE_FINISH

struct ha_decision {
	enum ha_action action;
	const char *reason;   /* static text for logs and the API */
};

struct ha_decision ha_decide(const struct ha_observed *o);
/* d = ha_decide(o), rewritten for a standby cluster (see the rules above). Pure. */
struct ha_decision ha_decide_standby_cluster(const struct ha_observed *o, struct ha_decision d);
const char *ha_action_name(enum ha_action a);

/*
 * Is a standby catching up from the WAL archive? Its walreceiver does not
 * stream, yet replay is past everything it received and moved within
 * HA_ARCHIVE_REPLAY_WINDOW_MS (WAL restored at restore_command's pace, or
 * after a restart its own pg_wal, which cannot be told apart cheaply). w
 * keeps the last replay position and when it moved. Pure but for w.
 */
#define HA_ARCHIVE_REPLAY_WINDOW_MS 15000
struct ha_replay_watch {
	uint64_t replayed;
	int64_t moved_ms;
};
bool ha_archive_replay(struct ha_replay_watch *w, bool in_recovery, bool streaming, uint64_t received,
		       uint64_t replayed, int64_t now_ms);

#endif
