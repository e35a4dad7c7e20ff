/*
 * agent_int.h — the agent's internal state, in one part per concern, each
 * written by one file of src/ha (named at the part), read by the others.
 * Only the HA loop thread touches struct agent.
 */
#ifndef PGHA_HA_AGENT_INT_H
#define PGHA_HA_AGENT_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api/api.h"
#include "common/httpc.h"
#include "common/proc.h"
#include "common/strbuf.h"
#include "dcs/etcd.h"
#include "cluster/backup_key.h"
#include "cluster/member.h"
#include "cluster/history_key.h"
#include "cluster/restore_key.h"
#include "cluster/switchover.h"
#include "ha/agent_config.h"
#include "ha/decide.h"
#include "ha/divergence.h"
#include "ha/fence.h"
#include "ha/sync.h"
#include "pg/pgconf.h"
#include "pg/pgctl.h"
#include "pg/pgsql.h"

enum job_kind { JOB_NONE, JOB_INITDB, JOB_BASEBACKUP, JOB_REWIND, JOB_RESTORE, JOB_RESTORE_INPLACE };

/*
 * Each part of struct agent below is written by the one file its comment
 * names; every other file only reads it (or asks that file to change it).
 */

/* The etcd connection and lease (agent.c). */
struct agent_dcs {
	struct etcd_opts opts;
	struct etcd_client *etcd;
	struct etcd_watch *watch;
	int64_t lease;
	int64_t lease_ttl_ms;     /* the TTL the current lease was granted with (fencing goes by it) */
	int64_t renew_sent_ms;    /* when the last successful lease renewal was sent */
	bool ok;                  /* this loop's read of etcd succeeded */
	bool was_ok;
	int64_t last_log_ms;
};

/* The cluster's keys in etcd, all under prefix "/pgha/<cluster>/" (agent.c, at setup). */
struct agent_keys {
	char *prefix;
	char *leader, *init, *member, *config, *failover, *switchover, *proxies, *sync, *request;
	char *init_claim;         /* the value of the initialize key while this member bootstraps */
};

/* A leader key no agent wrote (leader_key.c). */
struct agent_leader_key {
	int64_t foreign_rev;      /* leader key seen under a foreign lease: its mod_revision ... */
	int64_t foreign_since_ms; /* ... and since when */
};

enum pg_phase { PG_STOPPED, PG_STARTING, PG_RUNNING };

/* The local PostgreSQL (node.c). */
struct agent_pg {
	enum pg_phase phase;
	pid_t pid;
	bool child;               /* started by us (waitpid) or adopted */
	int64_t start_ms;
	PGconn *conn;
	struct pg_status st;
	bool have_st;
	struct pg_data_info data;
	char *primary_conninfo;   /* what pgha.conf points at (standby) */
	char primary_slot[64];    /* ... and its primary_slot_name ("" none) */
	bool crashed;
	bool started_as_standby;  /* what node_start wrote (standby.signal) */
	int64_t reload_ms;        /* pgha.conf last reloaded */
	char last_error[256];     /* the member record's error */
	int crash_count;          /* crashes since crash_first_ms (restarting gives up after a few) */
	int64_t crash_first_ms;
	int64_t running_since_ms;
};

/* Fencing the leader's PostgreSQL (fencing.c). */
struct agent_fencing {
	struct fence *fence;
	bool failsafe_ok;         /* the last failsafe round got a yes from every member */
};

/* Who may become the leader: dynamic config, manual failover (failover.c). */
struct agent_failover {
	uint64_t last_leader_lsn; /* last WAL position the leader published */
	char last_leader_region[MEMBER_NAME_MAX]; /* the region of the last leader seen, "" if none */
	bool paused;              /* from the config key */
	int64_t max_lag;          /* maximum_lag_on_failover (config key overrides the file) */
	char to[MEMBER_NAME_MAX]; /* from the failover key, "" if none */
};

/* Synchronous replication (sync_leader.c, ha/sync.h). */
struct agent_sync {
	enum sync_mode mode;      /* from the config key */
	int count;                /* synchronous_node_count (quorum) */
	bool cross_region;        /* synchronous_cross_region: only standbys outside our region */
	bool cross_region_none;   /* leader: no standby outside our region was available (logged once) */
	bool present;             /* the sync key exists ... */
	bool valid;               /* ... and decodes into `pub` */
	struct sync_state pub;
	char *ssn_conf;           /* leader: synchronous_standby_names pgha writes (NULL: not decided) */
	char *ssn_seen;           /* leader: what PostgreSQL reported last */
	int64_t ssn_seen_ms;      /* when ssn_seen last changed */
	uint64_t ssn_settle_lsn;  /* WAL position measured after that change (0: not yet) */
	const char *last_why;     /* last planner reason logged */
};

/* A planned switchover (switchover.c). */
struct agent_switchover {
	bool present;             /* the switchover record exists and decodes into rec */
	struct switchover rec;
	char *raw;                /* its value as read (compare-and-swap) */
	bool bad_logged;
	int proxies, proxies_paused;  /* proxies/<name> records, and those paused for rec.id */
	int64_t started_ms;       /* wall clock the pause began (this member drives it) */
	bool handover_wait;       /* old leader, stopped: the candidate has not confirmed our last WAL */
	bool handover_logged;
};

/* Dynamic config beyond failover and sync: timing, PostgreSQL parameters (dynconf.c). */
struct agent_dynconf {
	int file_ttl_ms, file_loop_wait_ms, file_retry_timeout_ms;  /* a->cfg holds the effective ones */
	struct pg_param *params;  /* [parameters] with the config key's merged over them (owned) */
	size_t nparams;
	bool params_dirty;        /* changed since pgha.conf was last written */
	char error[256];          /* the config key holds something this agent refuses */
	bool pending_restart;     /* pg_settings.pending_restart, as last queried */
	char pending_params[256];
	int64_t pending_checked_ms, pending_fast_until_ms;
};

/* Operator requests: requests/<name> (ops.c). */
struct agent_op {
	char id[40];              /* "" until a request was taken */
	enum req_action action;
	int state;                /* OP_RUNNING, OP_DONE, OP_FAILED */
	bool stopped;             /* restart: PostgreSQL went down since; reinit: the data was moved aside */
	int64_t deadline_ms;      /* wall clock */
	int64_t started_ms;
	char raw[256];            /* the request's value, to delete it only if unchanged */
	int64_t bad_rev;          /* an undecodable request was logged at this revision */
};

/* initdb, pg_basebackup, pg_rewind as child jobs (job.c). */
struct job {
	enum job_kind kind;
	pid_t pid;
	int fd;                   /* its output */
	int64_t started_ms;
	int64_t last_progress_ms;
	struct strbuf line;       /* partial output line */
	struct strbuf tail;       /* last lines, for the error message */
	char *tmpdir;             /* where it writes; renamed into place on success */
	char *pwfile;             /* initdb's password file, removed afterwards */
	int rewind_failures;      /* pg_rewind failed this many times in a row */
	bool rewind_waiting_logged;
	bool rewind_failed;
	bool from_repo;           /* JOB_BASEBACKUP: restoring the latest backup, not pg_basebackup */
	bool repo_clone_failed;   /* ... which failed: the next clone copies from the primary */
	int last_exit;            /* the exit code of the job that ended last */
};

/* Archive continuity at a promotion and a rejoin, [backup] on (archive_continuity.c). */
struct agent_arc_gap {
	pid_t pid;                /* archive-push of one WAL file this member holds, 0 if none */
	int fd;                   /* its output (when pid > 0) */
	struct strbuf out;
	char **files;             /* the WAL files the round pushes, in order */
	size_t nfiles, next;
	int pushed, failed;
	const char *why;          /* what the round comes before (a string literal) */
	int64_t deadline_ms;      /* the round gives up then */
	int64_t round_end_ms;     /* the last round ended: one round each time PostgreSQL stopped */
	int64_t check_ms;         /* a refused .partial last looked for */
};

struct slot_seen {
	char name[64];
	int64_t last_seen_ms;
};

/* WAL archiving with pgBackRest, [backup] on (archive.c). */
struct agent_archive {
	bool on;                  /* [backup] repo_path is set */
	char *bin;                /* the pgbackrest program, found in PATH at setup */
	char *conf;               /* <work_dir>/pgbackrest.conf */
	char *archive_command;    /* what pgha.conf sets on every member (node_conf_spec) */
	char *restore_command;
	char *restore_command_promote;  /* ... with a short timeout, in force while this member promotes */
	char *restore_command_standby;  /* NULL, or archive-get from [standby_cluster] archive_stanza */
	bool promoting;
	pid_t pid;                /* stanza-create or check running, 0 if none */
	int fd;                   /* its output */
	int step;                 /* ARC_STANZA_CREATE, ARC_CHECK */
	int64_t started_ms;
	struct strbuf out;        /* its output (the last few KB) */
	bool checked;             /* stanza-create + check passed since this member became primary */
	int64_t retry_ms;         /* no new try before this */
	int busy;                 /* tries in a row that found pgBackRest's lock held */
	int64_t stat_ms;          /* pg_stat_archiver last read */
	char state[256];          /* the member record's "archive": "ok", "failing: why", "" */
	int64_t archived_at;      /* primary: unix time of the last WAL archived, 0 unknown */
	char host_id[64];         /* /etc/machine-id (or the host name): who shares this host */
};

/* Backups the cluster asks for: the leader's schedule and this member's run (backup_job.c). */
struct agent_backup {
	pid_t pid;                /* pgbackrest backup running here, 0 if none */
	int fd;                   /* its output */
	struct strbuf out;        /* the last few KB of it */
	struct backup_run run;    /* the claim (the running key's fields) */
	char *claim;              /* the running key's value as this member last wrote it */
	int64_t request_rev;      /* mod_revision of the request it runs: deleted only if unchanged */
	bool cancelled;           /* the request was withdrawn while it ran: stopped */
	int64_t put_ms;           /* progress last written */
	int put_percent;
	char *finish;             /* the last key's value still to be written (etcd failed), or NULL */
	int64_t retry_ms;         /* no new etcd write before this */
	char seen_id[BACKUP_ID_MAX];  /* the request first seen unclaimed ... */
	int64_t seen_ms;          /* ... at this time (the leader takes it over after a while) */
	char bad_seen[300];       /* the last undecodable backup key logged (once) */
	char *k_request, *k_running, *k_last, *k_schedule;  /* <prefix>backup/... */
};

/* An in-place restore of the cluster (restore_inplace.c). */
struct agent_restore {
	char *key;                /* <prefix>restore */
	bool active;              /* a decodable record in an active phase */
	struct restore_record rec;
	char *raw;                /* its value as last read or written (moves compare on it) */
	char stopped_for[BACKUP_ID_MAX];  /* published as the member record's restore_id */
	char job_id[BACKUP_ID_MAX];       /* the restore the running job is for */
};

/* The history of leader changes (history.c, cluster/history_key.h). */
struct agent_history {
	char *key;                /* <prefix>history */
	int64_t no_writer_since_ms;  /* wall ms of the first loop that saw no primary under the key; 0: one runs */
	char prev_leader[MEMBER_NAME_MAX];  /* the last leader other than this member */
	bool pending;             /* entry still to append (etcd refused) */
	struct history_entry entry;
};

/* What acting on decisions leaves behind (actions.c). */
struct agent_act {
	int64_t backoff_until_ms; /* no new start or job before this */
	bool fatal;               /* the agent cannot go on */
	struct slot_seen *slots;  /* leader: the replication slots it manages */
	size_t nslots;
	char diverged_copy[300];  /* <data>.diverged while it exists (agent_diverged_copy_step) */
	bool promoting;           /* pg_promote asked; PostgreSQL still leaving recovery */
	int64_t promote_started_ms;
	int64_t promote_logged_ms;
};

/* The loop's own (agent.c): the member record, the API's snapshot, the last decision. */
struct agent_publish {
	struct member self;
	char *last;               /* last record written (without updated_at) */
	int64_t lease;
	int64_t ms;
	struct cluster_view api_view;  /* next copy of the view for the API thread */
	bool have_api_view;
	struct ha_decision last_decision;
	bool quick_retry;         /* look again in 100 ms (an election waits for others) */
	/* Counted for /metrics (api/metrics.c). */
	int64_t loop_start_ms;
	int64_t loop_ms;          /* the last loop's duration */
	uint64_t loops;
	char seen_leader[MEMBER_NAME_MAX];  /* the last leader seen ("" none yet) */
	uint64_t leader_changes;
	bool was_primary_leader;  /* the last publish: primary under the key */
	uint64_t promotions;
	int64_t etcd_ok_s;        /* unix time of the last successful etcd read */
	int64_t started_s;
	struct ha_replay_watch replay;  /* is this standby catching up from the archive (decide.c) */
	bool self_archive_replay;       /* ... what the last record said */
};

/* [tls] for the API and the calls to other members' APIs (tls_reload.c). */
struct agent_tls {
	struct httpc_tls peer;    /* CA and client certificate of the calls (in memory) */
	bool peer_on;             /* calls use peer ([tls] ca_file or the API on HTTPS; https:// only with the latter) */
	int64_t not_after;        /* [tls] cert_file's notAfter (unix s), 0 without TLS */
};

struct agent {
	/* Set up once by agent.c; dynconf.c overrides cfg's timing. */
	struct agent_config cfg;
	struct run_user user;
	char *su_password;
	char *repl_password;
	char *etcd_password;
	char *api_token;          /* [node] api_token_file: what POST/DELETE /switchover need */
	char *cipher_pass;        /* [backup] cipher_pass_file: only ever written to pgBackRest's 0600 config */
	char *s3_key;             /* [backup] s3_key_file and s3_key_secret_file: the same */
	char *s3_key_secret;
	struct pg_node node;
	struct pg_tls tls;            /* [tls] for PostgreSQL and the connections to other members */
	struct agent_keys keys;
	struct api_source api;
	struct api_server *api_server;
	struct agent_tls atls;
	struct pgmon *pgmon;      /* PostgreSQL's statistics for /metrics (pgmon.c) */
	int wake_fd;              /* eventfd: watch events, signals */

	struct agent_dcs dcs;
	struct cluster_view view; /* this loop's read of etcd (view.c) */
	bool sc_promoted;         /* a standby cluster whose promoted key decodes: primary now (view.c) */
	char *sc_bad_promoted;    /* the promoted value last warned about (it does not decode) */
	struct agent_leader_key lk;
	struct agent_pg pg;
	struct agent_fencing fencing;
	struct agent_failover fo;
	struct agent_divergence div;
	struct agent_sync sync;
	struct agent_switchover so;
	struct agent_dynconf dyn;
	struct agent_op op;
	struct job job;
	struct agent_archive arc;
	struct agent_arc_gap gap;
	struct agent_backup bk;
	struct agent_restore rip;
	struct agent_history hist;
	struct agent_act act;
	struct agent_publish publish;
};

extern volatile int agent_stop_requested;

/*
 * The files of the agent, lowest first: each calls only files listed above it
 * (scripts/check-calls.py); what a lower file finds that an upper one must act
 * on, it returns.
 */

/* view.c: this loop's read of etcd */
void view_refresh(struct agent *a, const struct etcd_kvs *kvs);
const struct member *view_leader(const struct agent *a);
char *view_leader_conninfo(const struct agent *a, const struct member *leader);
/* A standby cluster ([standby_cluster] primary_hosts) not promoted: its leader replicates from the primary cluster. */
bool view_standby_cluster(const struct agent *a);
/* The primary cluster, whichever of its hosts is primary; slot: [standby_cluster] primary_slot_name or "". */
char *view_primary_cluster_conninfo(const struct agent *a, char *slot, size_t slotlen);
/*
 * Where this member's PostgreSQL streams from as a standby, and through which
 * slot: another member leading (this member's slot there), or the primary
 * cluster when this member is a standby cluster's leader. NULL: nowhere.
 */
char *view_upstream_conninfo(const struct agent *a, const struct member *leader, char *slot, size_t slotlen);
void view_set_leader(struct agent *a, const char *name);
void view_set_leader_lease(struct agent *a, int64_t lease);
void view_leader_invalid(struct agent *a);
void view_free(struct agent *a);

/* node.c: the local PostgreSQL */
enum node_event {
	NODE_UP,              /* nothing ended (it runs, starts, or was stopped already) */
	NODE_EXITED,          /* it exited unexpectedly: a crash */
	NODE_EXITED_STARTING, /* it exited during startup */
	NODE_START_TIMEOUT,   /* it did not accept connections in time, and was stopped */
};
/* Gather: is it alive, does it accept connections, its status over SQL. */
enum node_event node_refresh(struct agent *a);
/* Gather: pg_controldata of the stopped data directory. */
void node_inspect_data(struct agent *a);
void node_adopt(struct agent *a);
/* Forget an old crash once PostgreSQL has run well for a while. Each loop. */
void node_note_running(struct agent *a);
/* Crashed too often, or for too long, to restart it again. */
bool node_restart_exhausted(const struct agent *a, int64_t now);
void node_adopt_upstream(struct agent *a, const struct member *leader);
bool node_is_primary(const struct agent *a);
void node_set_error(struct agent *a, const char *fmt, ...) PGHA_PRINTF(2, 3);
void node_disconnect(struct agent *a);
int node_start(struct agent *a, bool standby, char *conninfo, const char *slot, const char *ssn, struct pgha_err *e);
int node_stop(struct agent *a, struct pgha_err *e);
/* What pgha.conf holds: the parameters in effect and the given role, upstream and ssn. */
void node_conf_spec(const struct agent *a, struct pg_conf_spec *s, bool standby, const char *conninfo,
		    const char *slot, const char *ssn);
/*
 * Rewrite pgha.conf (keeping the current role) with a->sync.ssn_conf and the
 * parameters, and reload if it changed.
 */
int node_apply_conf(struct agent *a, struct pgha_err *e);
int node_reload(struct agent *a, struct pgha_err *e);
/* Point the running standby at the leader (pgha.conf, reload). */
void node_follow(struct agent *a, const struct member *leader);
void node_data_gone(struct agent *a);
void node_free(struct agent *a);

/* fencing.c */
int fencing_start(struct agent *a, struct pgha_err *e);
void fencing_stop(struct agent *a);
/* Arm (or extend) the fence to the deadline of the lease the leader key is under. */
void fencing_arm(struct agent *a);
/* Time for a graceful demote: one loop before the fence would kill PostgreSQL. */
bool fencing_lease_expiring(const struct agent *a, int64_t now);
/* After each loop's etcd read: keep the fence deadline in step with the lease. */
void fencing_update(struct agent *a);
void fencing_failsafe_round(struct agent *a);
/* Another leader asked us (POST /failsafe) to hold off an election. */
bool fencing_failsafe_hold(struct agent *a);

/* divergence.c (ha/divergence.h) */

/* leader_key.c */
/* True when the leader key names no leader: the caller drops it from the view. */
bool leader_key_judge(struct agent *a);
bool leader_key_may_reattach(const struct agent *a);
int leader_key_replace(const struct agent *a, bool *done, struct pgha_err *e);

/* job.c */
void job_init(struct agent *a);
void job_free(struct agent *a);
int job_start_initdb(struct agent *a, struct pgha_err *e);
int job_start_basebackup(struct agent *a, struct pgha_err *e);
/* 0 started, 1 postponed (the leader's checkpoint after promotion is not done), -1 error. */
int job_start_rewind(struct agent *a, struct pgha_err *e);
/* `pgha restore-job --in-place` on the data directory itself (ctl restore --in-place). */
int job_start_restore_inplace(struct agent *a, const char *target, const char *set, struct pgha_err *e);
/* Read output, reap; returns 1 when the job finished this call (ok tells how). */
int job_poll(struct agent *a, bool *ok);
void job_abort(struct agent *a);
void job_forget_rewind(struct agent *a);

/* dynconf.c */
void dynconf_init(struct agent *a);
void dynconf_free(struct agent *a);
/* Observe: timing and parameters from the config key (called with the prefix read). */
void dynconf_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
/* Act: write changed parameters and reload; keep pending_restart up to date. Each loop. */
void dynconf_step(struct agent *a);
void dynconf_pg_started(struct agent *a);
/* The lease to grant / renew has this TTL in seconds. */
int64_t dynconf_lease_ttl_s(const struct agent *a);

/* ops.c */
enum { OP_RUNNING = 1, OP_DONE, OP_FAILED };
void ops_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
/* What decide must still do for the running request. */
enum ha_request ops_observed(const struct agent *a);
/* After acting and observing: progress, completion, deadline. Each loop. */
void ops_step(struct agent *a, const struct ha_decision *d);
/* A clone job ended (ok or not): a re-clone's outcome. */
void ops_clone_finished(struct agent *a, bool ok);
/* The re-clone's copy of the old data directory, removed once a clone succeeded (caller frees). */
char *agent_reinit_aside(const struct agent *a);

/* sync_leader.c */
void sync_init(struct agent *a);
void sync_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
bool sync_mode_active(const struct agent *a);     /* synchronous mode and a sync key to go by */
bool sync_allows_me(const struct agent *a);       /* ... and it lists this member (or as its leader) */
bool sync_denies_me(const struct agent *a);       /* ... and it does not */
bool sync_leader_duties(struct agent *a);         /* true: look again soon */
int sync_before_promote(struct agent *a);         /* 0, or -1: postpone the promotion */
const char *sync_primary_ssn(struct agent *a);    /* synchronous_standby_names to start a primary with */
void sync_forget_leadership(struct agent *a);

/* failover.c (ha/failover.h), switchover.c (ha/switchover.h) */

/* archive_continuity.c (ha/archive_continuity.h): no archive gap across promotions and rejoins */
/* Just before pg_promote: the segments of the timeline being left are archived again (once). */
void arcgap_before_promote(struct agent *a);
/*
 * Before this member's WAL may be thrown away (pg_rewind, a re-clone) or left
 * unarchived (starting as a standby): push what it marks .ready, as a child
 * with a deadline. false: under way, call again (the caller postpones its
 * action). why: a string literal, for the log.
 */
bool arcgap_before_wal_loss(struct agent *a, const char *why);
/* Each loop, primary: a .partial the archive holds with other content is marked done. */
void arcgap_step(struct agent *a);
void arcgap_free(struct agent *a);

/* restore_inplace.c: ctl restore --in-place (cluster/restore_key.h) */
void rip_init(struct agent *a);
void rip_free(struct agent *a);
/* Each loop: the record read, this member's answer (restore_id) made ready to publish. */
void rip_step(struct agent *a);
enum ha_restore rip_observed(const struct agent *a);
/* ACT_RESTORE_RUN: the record to restoring, then the restore job. */
void rip_run(struct agent *a);
/* The in-place restore job ended with this exit code: restored or failed. */
void rip_job_finished(struct agent *a, int code);
/* ACT_RESTORE_FINISH: the restored primary runs. */
void rip_finish(struct agent *a);

/* history.c: the history of leader changes */
void history_init(struct agent *a);
void history_free_agent(struct agent *a);
/* Each loop after the etcd read: since when nobody writes, who led last; a pending entry retried. */
void history_step(struct agent *a);
/* This member runs as primary under the key, newly: append an entry (unless the last one says so). */
void history_became_leader(struct agent *a);

/* pgmon.c: PostgreSQL's statistics for /metrics, on a thread of its own */
int pgmon_start(struct agent *a, struct pgha_err *e);
void pgmon_stop(struct agent *a);

/* observe.c */
/* What the loop asked of the world (I/O, the clock) for one observation. */
struct ha_gathered {
	int64_t now_ms;
	bool failsafe_hold;       /* another leader asked us (POST /failsafe) to hold off an election */
	bool eligible;            /* asked only of a replica without a leader (failover_eligible) */
	bool slot_ready;          /* asked only of a member without data that would clone */
};
void observe(const struct agent *a, const struct ha_gathered *g, struct ha_observed *o);

/* backup_job.c: backups the cluster asks for (cluster/backup_key.h) */
void backup_job_init(struct agent *a);
/*
 * Each loop, [backup] on: the leader requests what its schedule says is due;
 * the member backup_pick_runner names claims a request and runs pgbackrest
 * backup as a polled child; its progress and outcome go to etcd.
 */
void backup_job_step(struct agent *a);
void backup_job_free(struct agent *a);

/* archive.c: pgBackRest (backup/pgbackrest.h) */
/*
 * While promoting, PostgreSQL looks for history files in the archive: a hung
 * repository must cost seconds, not a timeout per file. On: the short
 * restore_command (pgha.conf rewritten, reloaded); off: the usual one.
 */
void archive_promoting(struct agent *a, bool on);
/* [backup] on: find pgbackrest, write its config, the archive/restore commands. Before PostgreSQL starts. */
int archive_setup(struct agent *a, struct pgha_err *e);
/*
 * Each loop: the leader, once primary with the cluster initialized, runs
 * stanza-create then check (a bounded child, never waited for), retried after
 * a failure; then watches pg_stat_archiver. Its state goes to the member record.
 */
void archive_step(struct agent *a);
void archive_free(struct agent *a);

/* actions.c */
/* Carry out one decision; true: look again soon. */
bool agent_act(struct agent *a, const struct ha_decision *d);
/* No new start or job for a while. */
void agent_backoff(struct agent *a);
void agent_bootstrap_failed(struct agent *a);
/* <data>.diverged (caller frees); removed once this member streams again (each loop). */
char *agent_diverged_aside(const struct agent *a);
void agent_diverged_copy_step(struct agent *a);
void agent_act_free(struct agent *a);

/*
 * [tls] cert_file, key_file and ca_file (common/tlsfile.h), and that the
 * certificate names the hosts peers verify: [node] api_address's with the
 * API on HTTPS, [postgresql] address's with a ca_file (verify-full).
 */
int agent_tls_check(const struct agent_config *c, struct pgha_err *e) PGHA_MUSTCHECK;
/*
 * [tls] at start: check the files, read cert_file's expiry, and with the API
 * on HTTPS build its server context (*api_ctx, for api_start) and the calls'
 * client side. Errors name the file and the reason.
 */
int agent_tls_start(struct agent *a, SSL_CTX **api_ctx, struct pgha_err *e) PGHA_MUSTCHECK;
/*
 * SIGHUP: check the [tls] files again and, only if every one is good, copy
 * them for PostgreSQL and reload it, swap the API's context and the calls'
 * certificate. A failure is logged (file, reason) and changes nothing.
 */
void agent_tls_reload(struct agent *a);
void agent_tls_free(struct agent *a);
/* What calls to other members' APIs go with (common/httpc.h): NULL, plain. */
static inline const struct httpc_tls *agent_peer_tls(const struct agent *a)
{
	return a->atls.peer_on ? &a->atls.peer : NULL;
}

#endif
