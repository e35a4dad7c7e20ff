/*
 * pool.h — server connections per (database, user, port kind) and the
 * clients waiting for one (pool.c).
 */
#ifndef PGHA_PROXY_POOL_H
#define PGHA_PROXY_POOL_H

#include <stdbool.h>

#include "common/strbuf.h"
#include "proxy/objects.h"

struct pool *pool_get(struct proxy *px, const char *db, const char *user, bool ro);
void pool_request(struct pool *p, struct client *c);
void pool_cancel_wait(struct pool *p, struct client *c);
void pool_release(struct server *s);
void pool_server_ready(struct server *s);
/* The first server logged in: its ParameterStatus messages (taken) are what clients are told. */
void pool_take_params(struct pool *p, struct strbuf *params);
void pool_login_failed(struct pool *p, const char *why);
bool pool_target(struct pool *p, struct route_target *out);
void pool_topology_changed(struct proxy *px);
void pool_tick(struct pool *p);
void pool_resume_all(struct proxy *px);
/* New transactions of this pool wait: admin PAUSE, or a switchover (read-write pools). */
bool pool_held(const struct pool *p);

#endif
