/*
 * relay.h — forwarding between a client and its server (relay.c):
 * transaction boundaries, and prepared statements across servers.
 */
#ifndef PGHA_PROXY_RELAY_H
#define PGHA_PROXY_RELAY_H

#include <stdbool.h>

#include "proxy/objects.h"

/* Client → server: send what waits, read and forward what the client sent. */
void relay_c2s(struct client *c);
/* Server → client: forward, and release the server at the end of a transaction. */
void client_forward_from_server(struct client *c);
/* Make the server's tracked parameters the client's before its work runs there. */
void relay_apply_params(struct client *c, struct server *s);
/* Nothing owed by the server, nothing of a client message left to copy. */
bool relay_idle(const struct client *c);
void relay_reset(struct client *c);
void relay_free(struct client *c);
void relay_server_free(struct server *s);
void relay_registry_free(struct proxy *px);

#endif
