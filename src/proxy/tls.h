/*
 * tls.h — TLS for client connections (tls.c): the server context from
 * [tls], a session per client that sent an SSLRequest, and the client I/O
 * that goes through it when there is one.
 */
#ifndef PGHA_PROXY_TLS_H
#define PGHA_PROXY_TLS_H

#include <sys/types.h>

#include "common/err.h"
#include "proxy/objects.h"

int tls_configure(struct proxy *px, struct pgha_err *e);
void tls_shutdown(struct proxy *px);
int tls_begin(struct client *c);
void tls_end(struct client *c);
/* 1 done, 0 in progress (c->tls_want says what to wait for), -1 failed. */
int tls_handshake(struct client *c);
ssize_t tls_read(struct client *c, struct pbuf *b);
int tls_send(struct client *c, struct strbuf *sb, size_t *off);

/* Client I/O, TLS or not: same results as pbuf_read() and strbuf_send(). */
static inline ssize_t client_read(struct client *c, struct pbuf *b)
{
	ssize_t n = c->ssl ? tls_read(c, b) : pbuf_read(b, c->tag.fd);
	if (n > 0)
		c->px->stats_bytes_from_clients += (uint64_t)n;
	return n;
}

static inline int client_send(struct client *c, struct strbuf *sb, size_t *off)
{
	size_t pending = sb->len - *off, before = *off;
	int r = c->ssl ? tls_send(c, sb, off) : strbuf_send(sb, off, c->tag.fd);
	/* Sent whole, the buffer and offset are reset: what was pending went out. */
	c->px->stats_bytes_to_clients += r == 1 ? pending : *off - before;
	return r;
}

#endif
