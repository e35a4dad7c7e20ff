/*
 * tls.h — TLS for client connections (tls.c): the server context from
 * [tls], a session per client that sent an SSLRequest, and the client I/O
 * that goes through it when there is one; the server I/O the same way
 * (sessions to PostgreSQL: server_tls.h).
 */
#ifndef PGHA_PROXY_TLS_H
#define PGHA_PROXY_TLS_H

#include <sys/types.h>

#include "common/err.h"
#include "proxy/objects.h"

int tls_configure(struct proxy *px, struct pgha_err *e);
/* The notAfter of ctx's certificate in unix seconds; 0: none. */
int64_t tls_ctx_not_after(struct ssl_ctx_st *ctx);
void tls_shutdown(struct proxy *px);
int tls_begin(struct client *c);
void tls_end(struct client *c);
/* 1 done, 0 in progress (c->tls_want says what to wait for), -1 failed. */
int tls_handshake(struct client *c);

/*
 * One TLS session's I/O, a client's or a server's: *want is the readiness it
 * waits for, kind and name say whom it is with in the log ("client",
 * "10.0.0.5:4711"). Same results as pbuf_read() and strbuf_send().
 */
ssize_t tls_read(struct ssl_st *ssl, uint32_t *want, const char *kind, const char *name, struct pbuf *b);
int tls_send(struct ssl_st *ssl, uint32_t *want, const char *kind, const char *name, struct strbuf *sb,
	     size_t *off);
/* What SSL_get_error says about the result r of an SSL call: -2 would block (*want set), 0 EOF, -1 error. */
int tls_result(struct ssl_st *ssl, uint32_t *want, const char *kind, const char *name, int r, const char *what);

/* Client I/O, TLS or not: same results as pbuf_read() and strbuf_send(). */
static inline ssize_t client_read(struct client *c, struct pbuf *b)
{
	ssize_t n = c->ssl ? tls_read(c->ssl, &c->tls_want, "client", c->addr, b) : pbuf_read(b, c->tag.fd);
	if (n > 0)
		c->px->stats_bytes_from_clients += (uint64_t)n;
	return n;
}

static inline int client_send(struct client *c, struct strbuf *sb, size_t *off)
{
	size_t pending = sb->len - *off, before = *off;
	int r = c->ssl ? tls_send(c->ssl, &c->tls_want, "client", c->addr, sb, off) : strbuf_send(sb, off, c->tag.fd);
	/* Sent whole, the buffer and offset are reset: what was pending went out. */
	c->px->stats_bytes_to_clients += r == 1 ? pending : *off - before;
	return r;
}

/*
 * Server I/O, TLS or not (server_tls.c starts the session): the same. One
 * predictable branch when TLS is off.
 */
static inline ssize_t server_read(struct server *s, struct pbuf *b)
{
	return s->ssl ? tls_read(s->ssl, &s->tls_want, "server", s->target.host, b) : pbuf_read(b, s->tag.fd);
}

static inline int server_send(struct server *s)
{
	return s->ssl ? tls_send(s->ssl, &s->tls_want, "server", s->target.host, &s->out, &s->out_off)
		      : strbuf_send(&s->out, &s->out_off, s->tag.fd);
}

#endif
