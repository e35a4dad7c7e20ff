/*
 * server.h — connections to PostgreSQL (server.c): connect, log in, check
 * the role and the cluster, then carry a client's work.
 */
#ifndef PGHA_PROXY_SERVER_H
#define PGHA_PROXY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/objects.h"

struct pgp_msg;
struct pgp_param;

/* Connecting: counted in p->nservers (until closed), on p's active list. NULL: failed, why says why. */
struct server *server_connect(struct pool *p, const struct route_target *t, char *why, size_t whylen);

/*
 * A probe: a server of c's pool that logs in with c's startup values of the
 * reported parameters (vals), so that its login's ParameterStatus messages
 * (s->login_params) say how PostgreSQL reports them, or its login error that
 * PostgreSQL refuses one. It never gets work (client.c closes it once logged
 * in). Sets c->probe, s->probe_sent and the pool's probing flag; NULL:
 * failed, why says why.
 */
struct server *server_connect_probe(struct client *c, const struct pgp_param *vals, size_t nvals,
				    const struct route_target *t, char *why, size_t whylen);

/* What the caller (client.c) does after server_event(). */
enum server_next {
	SERVER_WAIT,         /* nothing */
	SERVER_CLIENT_IN,    /* its client's: forward what the server sent (relay_s2c) */
	SERVER_CLIENT_OUT,   /* its client's: the server can take more (relay_c2s) */
	SERVER_READY,        /* logged in: give it work (s->login_params: its ParameterStatus messages) */
	SERVER_RESET_DONE,   /* session mode: the reset query ran, back to the pool */
	SERVER_FAILED,       /* close it (why); a failed login counts against its pool */
};
enum server_next server_event(struct server *s, uint32_t events, char *why, size_t whylen);
/*
 * Close and free s. Its client (s->client must be NULL: the caller unlinks
 * it first) and pool are not told: that is the caller's.
 */
void server_close(struct server *s, const char *why);
/*
 * s's read-your-writes LSN request will not be read (its server closes, or its
 * client left): lost, and the reads waiting for it learn so (px->lsn_lost).
 */
void server_forget_lsn(struct server *s);
/* The pg_lsn in a one-column DataRow ("16/B374D848"); false for anything else, NULL included. */
bool server_row_lsn(const struct pgp_msg *m, uint64_t *out);
/* s's LSN request answered lsn: reads must see at least that (px->lsn_known). */
void server_lsn_answered(struct server *s, uint64_t lsn);
/* Why s is to be closed now (connect, idle, lifetime, stale timeouts); NULL: not. */
const char *server_timed_out(const struct server *s);
/* A ParameterStatus from the server: role (in_hot_standby) and tracked parameters. */
void server_param(struct server *s, const struct pgp_msg *m);

#endif
