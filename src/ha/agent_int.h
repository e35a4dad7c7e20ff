/*
 * agent_int.h — the agent's internal state, shared by agent.c (lifecycle,
 * observe, publish), actions.c (acting on a decision) and job.c (child jobs).
 * Only the HA loop thread touches struct agent.
 */
#ifndef PGHA_HA_AGENT_INT_H
#define PGHA_HA_AGENT_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api/api.h"
#include "common/proc.h"
#include "common/strbuf.h"
#include "dcs/etcd.h"
#include "cluster/member.h"
#include "cluster/switchover.h"
#include "ha/agent_config.h"
#include "ha/decide.h"
#include "ha/fence.h"
#include "ha/sync.h"
#include "pg/pgctl.h"
#include "pg/pgsql.h"

enum job_kind { JOB_NONE, JOB_INITDB, JOB_BASEBACKUP, JOB_REWIND };

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
};

struct slot_seen {
	char name[64];
	int64_t last_seen_ms;
};

enum pg_phase { PG_STOPPED, PG_STARTING, PG_RUNNING };

struct agent {
	struct agent_config cfg;
	struct run_user user;
	char *su_password;
	char *repl_password;
	char *etcd_password;
	char *api_token;          /* [node] api_token_file: what POST/DELETE /switchover need */
	struct pg_node node;

	/* etcd */
	struct etcd_opts etcd_opts;
	struct etcd_client *etcd;
	struct etcd_watch *watch;
	int64_t lease;
	char *prefix;             /* "/pgha/<cluster>/" */
	char *key_leader, *key_init, *key_member, *init_claim;
	struct cluster_view view;
	struct cluster_view api_view;  /* next copy for the API thread */
	bool have_api_view;
	int64_t foreign_key_rev;  /* leader key seen under a foreign lease: its mod_revision ... */
	int64_t foreign_key_since_ms; /* ... and since when (leader_key.c) */
	bool dcs_ok;
	bool dcs_was_ok;
	int64_t dcs_last_log_ms;

	/* PostgreSQL */
	enum pg_phase phase;
	pid_t pg_pid;
	bool pg_child;            /* started by us (waitpid) or adopted */
	int64_t pg_start_ms;
	PGconn *conn;
	struct pg_status st;
	bool have_st;
	struct pg_data_info data;
	char *primary_conninfo;   /* what pgha.conf points at (standby) */
	bool crashed;
	bool started_as_standby;  /* what agent_start_pg wrote (standby.signal) */

	/* failover */
	struct fence *fence;
	int64_t renew_sent_ms;    /* when the last successful lease renewal was sent */
	uint64_t last_leader_lsn; /* last WAL position the leader published */
	bool paused;              /* from the config key */
	int64_t max_lag;          /* maximum_lag_on_failover (config key overrides the file) */
	char failover_to[MEMBER_NAME_MAX]; /* from the failover key, "" if none */
	bool failsafe_ok;         /* the last failsafe round got a yes from every member */
	enum ha_history history; /* is our WAL on the leader's history (decide.h)? */
	char history_key[512];    /* what the stopped data's check was made for (failover.c) */
	int rewind_failures;      /* pg_rewind failed this many times in a row */
	bool rewind_waiting_logged;
	bool rewind_failed;
	int64_t divergence_checked_ms;
	int64_t not_streaming_since_ms;
	int crash_count;
	int64_t crash_first_ms;
	int64_t running_since_ms;
	bool quick_retry;         /* look again in 100 ms (an election waits for others) */
	char *key_config, *key_failover;

	/* synchronous replication (sync_leader.c, ha/sync.h) */
	enum sync_mode sync_mode;   /* from the config key */
	int sync_count;             /* synchronous_node_count (quorum) */
	char *key_sync;
	bool sync_present;          /* the sync key exists ... */
	bool sync_valid;            /* ... and decodes into `sync` */
	struct sync_state sync;
	char *ssn_conf;             /* leader: synchronous_standby_names pgha writes (NULL: not decided) */
	char *ssn_seen;             /* leader: what PostgreSQL reported last */
	int64_t ssn_seen_ms;        /* when ssn_seen last changed */
	uint64_t ssn_settle_lsn;    /* WAL position measured after that change (0: not yet) */
	int64_t ssn_reload_ms;
	const char *sync_last_why;  /* last planner reason logged */

	/* planned switchover (switchover.c) */
	char *key_switchover, *key_proxies;
	bool so_present;            /* the switchover record exists and decodes into so */
	struct switchover so;
	char *so_raw;               /* its value as read (compare-and-swap) */
	bool so_bad_logged;
	int so_proxies, so_proxies_paused;  /* proxies/<name> records, and those paused for so.id */
	int64_t so_started_ms;      /* wall clock the pause began (this member drives it) */
	bool so_handover_wait;      /* old leader, stopped: the candidate has not confirmed our last WAL */
	bool so_handover_logged;

	/* dynamic config beyond failover and sync (dynconf.c): timing, PostgreSQL parameters */
	int file_ttl_ms, file_loop_wait_ms, file_retry_timeout_ms;  /* a->cfg holds the effective ones */
	int64_t lease_ttl_ms;       /* the TTL the current lease was granted with (fencing goes by it) */
	struct pg_param *params;    /* [parameters] with the config key's merged over them (owned) */
	size_t nparams;
	bool params_dirty;          /* changed since pgha.conf was last written */
	char dyn_error[256];        /* the config key holds something this agent refuses */
	bool pending_restart;       /* pg_settings.pending_restart, as last queried */
	char pending_params[256];
	int64_t pending_checked_ms, pending_fast_until_ms;

	/* operator requests: requests/<name> (ops.c) */
	char *key_request;
	struct {
		char id[40];            /* "" until a request was taken */
		enum req_action action;
		int state;              /* OP_RUNNING, OP_DONE, OP_FAILED */
		bool stopped;           /* restart: PostgreSQL went down since; reinit: the data was moved aside */
		int64_t deadline_ms;    /* wall clock */
		int64_t started_ms;
		char raw[256];          /* the request's value, to delete it only if unchanged */
		int64_t bad_rev;        /* an undecodable request was logged at this revision */
	} op;

	struct job job;
	int64_t backoff_until_ms;
	struct slot_seen *slots;
	size_t nslots;

	/* publishing */
	struct member self;
	char *published;          /* last record written (without updated_at) */
	int64_t published_lease;
	int64_t published_ms;
	char last_error[256];
	char self_diverged_copy[300]; /* <data>.diverged while it exists (agent_diverged_copy_step) */
	struct ha_decision last_decision;
	struct api_source api;
	struct api_server *api_server;

	int wake_fd;              /* eventfd: watch events, signals */
	bool fatal;
};

extern volatile int agent_stop_requested;

/* leader_key.c */
void leader_key_judge(struct agent *a);
bool leader_key_may_reattach(const struct agent *a);
int leader_key_replace(struct agent *a, bool *done, struct pgha_err *e);

/* job.c */
int job_start_initdb(struct agent *a, struct pgha_err *e);
int job_start_basebackup(struct agent *a, struct pgha_err *e);
/* 0 started, 1 postponed (the leader's checkpoint after promotion is not done), -1 error. */
int job_start_rewind(struct agent *a, struct pgha_err *e);
/* Read output, reap; returns 1 when the job finished this call (ok tells how). */
int job_poll(struct agent *a, bool *ok);
void job_abort(struct agent *a);

/* dynconf.c */
void dynconf_init(struct agent *a);
void dynconf_free(struct agent *a);
/* Observe: timing and parameters from the config key (called with the prefix read). */
void dynconf_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
/* Act: write changed parameters and reload; keep pending_restart up to date. Each loop. */
void dynconf_step(struct agent *a);
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

/* sync_leader.c */
void sync_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
bool sync_mode_active(const struct agent *a);     /* synchronous mode and a sync key to go by */
bool sync_allows_me(const struct agent *a);       /* ... and it lists this member (or as its leader) */
bool sync_denies_me(const struct agent *a);       /* ... and it does not */
void sync_leader_duties(struct agent *a);
int sync_before_promote(struct agent *a);         /* 0, or -1: postpone the promotion */
const char *sync_primary_ssn(struct agent *a);    /* synchronous_standby_names to start a primary with */
void sync_forget_leadership(struct agent *a);

/* actions.c */
void agent_act(struct agent *a, const struct ha_decision *d);
const struct member *agent_leader_member(const struct agent *a);
char *agent_leader_conninfo(const struct agent *a, const struct member *leader);
void agent_set_error(struct agent *a, const char *fmt, ...) PGHA_PRINTF(2, 3);
int agent_start_pg(struct agent *a, bool standby, struct pgha_err *e);
/*
 * Rewrite pgha.conf (keeping the current role) with a->ssn_conf and the
 * parameters, and reload if it changed.
 */
int agent_apply_ssn(struct agent *a, struct pgha_err *e);
int agent_stop_pg(struct agent *a, struct pgha_err *e);
void agent_disconnect(struct agent *a);
void agent_bootstrap_failed(struct agent *a);
/* <data>.diverged (caller frees); removed once this member streams again (each loop). */
char *agent_diverged_aside(const struct agent *a);
void agent_diverged_copy_step(struct agent *a);
/* The re-clone's copy of the old data directory, removed once a clone succeeded (caller frees). */
char *agent_reinit_aside(const struct agent *a);

#endif
