/*
 * server.h — connections to PostgreSQL (server.c): connect, log in, check
 * the role and the cluster, then carry a client's work.
 */
#ifndef PGHA_PROXY_SERVER_H
#define PGHA_PROXY_SERVER_H

#include <stdint.h>

#include "proxy/objects.h"

struct pgp_msg;

/* Connecting: counted in p->nservers (until closed), on p's active list. NULL: failed (told to p). */
struct server *server_connect(struct pool *p, const struct route_target *t);
void server_event(struct server *s, uint32_t events);
void server_close(struct server *s, const char *why);
void server_check_timeouts(struct server *s);
/* A ParameterStatus from the server: role (in_hot_standby) and tracked parameters. */
void server_param(struct server *s, const struct pgp_msg *m);

#endif
