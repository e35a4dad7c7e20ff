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
void client_send_error(struct client *c, const char *sqlstate, const char *msg, bool fatal);
void client_close(struct client *c, const char *why);
/* Send what is queued for c, then close it (reading and dropping its input meanwhile). */
void client_close_when_sent(struct client *c, const char *why);
/*
 * c's server is gone (it died, ended the session with FATAL, or was closed for
 * it): its transaction is lost, not its connection. Told at once (08006, then
 * ReadyForQuery) unless it sits idle inside the transaction (the server's last
 * ReadyForQuery said 'T' or 'E', nothing is owed, nothing is buffered): then at
 * its next request, never unsolicited.
 */
void client_server_lost(struct client *c, char server_status, const char *why);
/* FATAL error sqlstate/msg to the client, then client_close_when_sent(). */
void client_fail(struct client *c, const char *sqlstate, const char *msg);
void client_got_server(struct client *c, struct server *s);
void client_login_done(struct client *c);
void client_check_timeouts(struct client *c);
void client_report_refused(struct proxy *px);
/* creds.c: the auth_query lookup c waited for is over (failure: why, for the log). */
void client_auth_lookup_done(struct client *c, const char *secret, const char *failure);

#endif
