/*
 * pgctl.h — controlling the local PostgreSQL: inspect the data directory, run
 * initdb / pg_basebackup as child jobs, start postgres as our child, stop it,
 * and query its state through libpq over the unix socket.
 *
 * Everything that touches the data directory runs as the configured OS user
 * (struct run_user), never as root. Secrets go to children only as files
 * (initdb --pwfile, passfile=) and to libpq as in-memory parameters.
 */
#ifndef PGHA_PG_PGCTL_H
#define PGHA_PG_PGCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/proc.h"

struct pg_node {
	const char *bin_dir;
	const char *data_dir;
	const char *socket_dir;
	const char *log_file;
	const char *listen_host;
	int port;
	const struct run_user *user;   /* OS user for postgres and its tools */
	const char *superuser;
	const char *superuser_password; /* in memory only */
	const char *application_name;   /* for libpq connections (the member name) */
	int start_timeout_ms;
	int stop_timeout_ms;
};

enum pg_data_kind {
	PG_DATA_MISSING,   /* no directory, or an empty one */
	PG_DATA_VALID,     /* PG_VERSION + global/pg_control */
	PG_DATA_INVALID,   /* something else: never touched by pgha */
};

struct pg_data_info {
	enum pg_data_kind kind;
	char system_id[32];
	uint32_t timeline;             /* latest checkpoint's timeline */
	char cluster_state[64];        /* "in production", "shut down in recovery", ... */
	bool standby_signal;           /* standby.signal present */
	uint64_t checkpoint_lsn;
	uint64_t min_recovery_lsn;     /* a standby: how far it had replayed */
	uint32_t min_recovery_tli;
	int major_version;             /* from PG_VERSION */
};

/* Inspect the data directory (runs pg_controldata when it is valid). */
int pg_data_inspect(const struct pg_node *n, struct pg_data_info *out, struct pgha_err *e) PGHA_MUSTCHECK;

/* Prepare an empty directory owned by the run user with mode 0700. */
int pg_prepare_dir(const struct pg_node *n, const char *dir, struct pgha_err *e) PGHA_MUSTCHECK;

/* Remove a directory tree (only used on pgha's own temporary directories). */
int pg_remove_tree(const char *dir, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Start `initdb` into dir (checksums, scram-sha-256, superuser password from
 * pwfile). Output goes to the pipe *out_fd.
 */
int pg_initdb_spawn(const struct pg_node *n, const char *dir, const char *pwfile, pid_t *pid,
		    int *out_fd, struct pgha_err *e) PGHA_MUSTCHECK;

/* Start `pg_basebackup` of the given source into dir, through a slot. */
int pg_basebackup_spawn(const struct pg_node *n, const char *dir, const char *conninfo,
			const char *slot, pid_t *pid, int *out_fd, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Start `pg_rewind` of the data directory against a running source (the new
 * leader, as superuser through the passfile). PostgreSQL must be stopped;
 * pg_rewind runs crash recovery first when it was not shut down cleanly.
 */
int pg_rewind_spawn(const struct pg_node *n, const char *source_conninfo, pid_t *pid, int *out_fd,
		    struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Make the stopped data directory fit for pg_rewind: remove standby.signal and
 * recovery.signal (pg_rewind's single-user crash recovery refuses standby mode;
 * the standby configuration is written again before the next start).
 */
int pg_rewind_prepare(const struct pg_node *n, struct pgha_err *e) PGHA_MUSTCHECK;

/* Start postgres -D data_dir as our child (own session; output to log_file). */
int pg_start(const struct pg_node *n, pid_t *pid, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Pid of a running postmaster for the data directory (from postmaster.pid, if
 * that process is alive), or 0.
 */
pid_t pg_postmaster_pid(const struct pg_node *n);

/*
 * Stop the postmaster: fast shutdown, and after stop_timeout immediate.
 * `child` tells whether pid is our child (waitpid) or adopted (polled).
 */
int pg_stop(const struct pg_node *n, pid_t pid, bool child, struct pgha_err *e) PGHA_MUSTCHECK;

/* PQping over the unix socket: true when PostgreSQL accepts connections. */
bool pg_accepting(const struct pg_node *n);

#endif
