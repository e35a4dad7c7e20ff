/*
 * pool.h — server connections per (database, user, port kind) and the
 * clients waiting for one (pool.c).
 */
#ifndef PGHA_PROXY_POOL_H
#define PGHA_PROXY_POOL_H

#include <stdbool.h>

#include "common/strbuf.h"
#include "proxy/objects.h"

/*
 * A server handed to a client is active already; the caller (client.c) links
 * the two and starts its work (client_got_server). The pool never calls up.
 */
struct pool *pool_get(struct proxy *px, const char *db, const char *user, bool ro);
/* c has work: an idle server for it, or NULL: c waits (servers are opened for it). */
struct server *pool_request(struct pool *p, struct client *c);
/* c stops waiting (it leaves, or gets an error): idle again, read again. Idempotent. */
void pool_cancel_wait(struct pool *p, struct client *c);
/* s's client is done with it: the waiting client that gets it, or NULL (idle, or closed). */
struct client *pool_release(struct server *s);
/* s is free for work (logged in, or released): the waiting client that gets it, or NULL (idle). */
struct client *pool_server_ready(struct server *s);
/* After a PAUSE or a hold: the next waiting client and the idle server *s it gets; NULL: none. */
struct client *pool_resume_next(struct pool *p, struct server **s);
/* One connection attempt per waiting client, within pool_size. */
void pool_open_servers(struct pool *p);
/* The first server logged in: its ParameterStatus messages (taken) are what clients are told. */
void pool_take_params(struct pool *p, struct strbuf *params);
/* A server's login failed: kept for the pool's clients. true: it will not pass by waiting (fail them). */
bool pool_login_failed(struct pool *p, const char *why);
bool pool_target(struct pool *p, struct route_target *out);
void pool_topology_changed(struct proxy *px);
/* New transactions of this pool wait: admin PAUSE, or a switchover (read-write pools). */
bool pool_held(const struct pool *p);

#endif
