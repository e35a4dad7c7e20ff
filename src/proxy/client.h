/*
 * client.h — application connections (client.c): startup, authentication,
 * and what happens to a client, and to the server it works with, on each
 * event. The top of the proxy's objects: it acts on what the lower modules
 * (pool, server, relay, creds, admin) return.
 */
#ifndef PGHA_PROXY_CLIENT_H
#define PGHA_PROXY_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/objects.h"

void client_accept(struct proxy *px, int fd, bool ro);
void client_event(struct client *c, uint32_t events);
/* An event on a server: forwarded for its client, or acted on (logged in, failed, reset). */
void client_server_event(struct server *s, uint32_t events);
/* Once a second: p's clients waiting past hold_timeout fail, its servers' timeouts. */
void client_pool_tick(struct pool *p);
/* After a RESUME or a switchover's hold: waiting clients get idle servers, new ones open. */
void client_resume_waiting(struct proxy *px);
/* After a batch of events, while holding for a switchover: sessions that cannot follow end; drained? */
void client_hold_check(struct proxy *px);
/* After creds_lookups_done(), creds_tick(), creds_topology_changed(): the clients waiting go on. */
void client_wake_lookups(struct proxy *px);
void client_send_error(struct client *c, const char *sqlstate, const char *msg, bool fatal);
void client_close(struct client *c, const char *why);
void client_check_timeouts(struct client *c);
void client_report_refused(struct proxy *px);
/* After a batch of events: read-only clients whose LSN answers came go on (read-your-writes). */
void client_ryw_wake(struct proxy *px);

#endif
