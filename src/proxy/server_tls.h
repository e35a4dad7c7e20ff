/*
 * server_tls.h — TLS from the proxy to PostgreSQL (server_tls.c): the
 * client context from [tls] server_sslmode, server_ca_file,
 * server_cert_file and server_key_file, and the SSLRequest and handshake
 * steps of a server connection before its startup packet. Once the
 * handshake is done, server_read()/server_send() (tls.h) carry its bytes.
 */
#ifndef PGHA_PROXY_SERVER_TLS_H
#define PGHA_PROXY_SERVER_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proxy/objects.h"

/* server->tls_phase */
enum { SERVER_TLS_DONE = 0, SERVER_TLS_ASKED = 1, SERVER_TLS_HANDSHAKE = 2 };

/*
 * Build the context the options ask for (at start and reload). On error
 * (e: the option, the file and the reason) the proxy keeps its previous
 * context and mode: connections go on as before.
 */
int server_tls_configure(struct proxy *px, struct pgha_err *e) PGHA_MUSTCHECK;
void server_tls_shutdown(struct proxy *px);
/*
 * s is connecting: unless server_sslmode is disable, an SSLRequest goes
 * first and s->out's startup packet waits in s->startup (tls_phase ASKED);
 * the session is made now, so that a reload does not change it midway.
 */
void server_tls_request(struct server *s);
/*
 * tls_phase ASKED or HANDSHAKE: one step on events. 1: done, the startup
 * packet is queued in s->out (in TLS, or in plain text after prefer's 'N');
 * 0: wait (the epoll interest is set); -1: failed, why says why.
 */
int server_tls_step(struct server *s, uint32_t events, char *why, size_t whylen);
/*
 * A client session on fd for a server at host (verify-full: its certificate
 * must name host, a name or an IP address); NULL: why. Any thread (cancel.c).
 */
struct ssl_st *server_tls_new(struct ssl_ctx_st *ctx, enum server_sslmode mode, const char *host, int fd,
			      char *why, size_t whylen);
/* Free s's session (server_close). */
void server_tls_end(struct server *s);

#endif
