/*
 * authq.h — auth_query lookups off the event loop.
 *
 * A few worker threads (at most AUTHQ_WORKERS lookups at once) take jobs
 * from a queue, run [auth] auth_query for the job's user on the job's target
 * with libpq as [auth] auth_user, and put the answered job on a done list;
 * an eventfd (authq_fd) tells the event loop, which takes the answers with
 * authq_take_done(). Each step is bounded by the timeout: connect and query
 * run on a non-blocking libpq connection polled against one deadline, and the
 * server gets statement_timeout too. A worker keeps its connection for the
 * next job to the same target and closes it after a while unused.
 *
 * The same workers derive SCRAM verifiers from the users file's plaintext
 * passwords (AUTHQ_DERIVE jobs: one PBKDF2 each, a few ms of CPU the event
 * loop must not spend); with no auth_user (opts.user NULL) they do only that.
 *
 * Ownership: a submitted job belongs to the workers until authq_take_done()
 * hands it back; the caller frees it with authq_job_free() (which wipes the
 * secret). The auth_user password is copied (authq_set_password() replaces
 * it) and wiped when replaced or at authq_stop(). Nothing here logs a
 * secret: errors carry libpq's message and the target.
 */
#ifndef PGHA_PROXY_AUTHQ_H
#define PGHA_PROXY_AUTHQ_H

#include <stdint.h>

#include "common/err.h"

#define AUTHQ_WORKERS 4

enum authq_status {
	AUTHQ_FOUND,       /* secret holds what auth_query returned */
	AUTHQ_NOT_FOUND,   /* no row, or no password (detail says which) */
	AUTHQ_FAILED,      /* the lookup could not run (detail says why) */
};

enum authq_kind {
	AUTHQ_LOOKUP,      /* run auth_query for user on host:port */
	AUTHQ_DERIVE,      /* SCRAM verifier of password: FOUND with it in secret, or FAILED */
};

struct authq_job {
	struct authq_job *next;
	/* in */
	enum authq_kind kind;
	char user[64];
	char *password;            /* AUTHQ_DERIVE: a copy, wiped by authq_job_free() */
	char host[256];
	int port;
	int64_t hold_until_ms;     /* the loop's: held while no server is known (creds.c) */
	/* out */
	enum authq_status status;
	char *secret;
	char detail[400];
	int64_t took_ms;
};

struct authq_opts {
	const char *user;        /* auth_user; NULL: AUTHQ_DERIVE jobs only */
	const char *password;
	const char *dbname;
	const char *query;       /* $1 = the user name */
	int timeout_ms;
	int workers;             /* 1..AUTHQ_WORKERS */
};

/* libpq's TLS settings for lookups: server connections' ([tls] server_*); "" leaves one to libpq. */
struct authq_tls {
	char sslmode[16];
	char rootcert[1024];
	char cert[1024];
	char key[1024];
};

struct authq;

struct authq *authq_start(const struct authq_opts *o, struct pgha_err *e);
/* Readable when answers wait (authq_take_done() clears it). */
int authq_fd(const struct authq *q);
void authq_set_password(struct authq *q, const char *password);
/* TLS settings for connections made from now on (kept connections keep theirs). */
void authq_set_tls(struct authq *q, const struct authq_tls *tls);
void authq_submit(struct authq *q, struct authq_job *j);
/* The answered jobs (a list through ->next), or NULL. */
struct authq_job *authq_take_done(struct authq *q);
void authq_job_free(struct authq_job *j);
/* Stop the workers (waits for running lookups, at most the timeout) and free everything. */
void authq_stop(struct authq *q);

#endif
