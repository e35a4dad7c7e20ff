/*
 * httpd.h — a small HTTP/1.1 server: the agent's API (src/api) and the proxy's
 * /metrics (src/proxy/metrics.c) both run one. It needs only src/common.
 *
 * One thread, poll(), non-blocking sockets, many connections at once. Each
 * request is parsed (request line + headers, optional Content-Length body up
 * to 64 KiB), handed to the handler, answered, and the connection closed
 * ("Connection: close"). A client that sends more than the limits or does not
 * finish its request within 5 s is answered 400/408/413 and dropped; no other
 * client notices. HEAD is answered like GET without the body.
 *
 * Server-made answers: 400 malformed request, 408 not complete within 5 s,
 * 411 Transfer-Encoding (chunked bodies are not supported), 413 body over
 * 64 KiB, 431 request line + headers over 16 KiB, 505 not HTTP/1.x.
 * With 1024 connections open, a new one takes the slot of the oldest one that
 * has not completed its request (told 503 and closed), so slow or silent
 * clients cannot lock out health checks, which send their request at once; a
 * complete request is always answered. Only when every slot holds an answer
 * still being written is the new connection refused (503).
 * Any syntactically valid method reaches the handler, which picks 405.
 * Over TLS (httpd_start_tls) the same, after a non-blocking handshake inside
 * the same loop and the same 5 s; the context can be replaced while it runs
 * (a certificate reload).
 */
#ifndef PGHA_HTTP_HTTPD_H
#define PGHA_HTTP_HTTPD_H

#include <openssl/ssl.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "http/request.h"

struct http_response {
	int status;                 /* default 200 */
	const char *content_type;   /* default "application/json" */
	struct strbuf body;
	const char *allow;          /* NULL, or the Allow header value (send it with 405) */
	const char *csp;            /* NULL, or a Content-Security-Policy (the web page) */
};

/*
 * Called on the server thread; must not block for long (every other client
 * waits). resp arrives with status 200, content_type "application/json", an
 * empty body and allow NULL. A status outside 100..599 is sent as 500.
 */
typedef void (*http_handler)(void *arg, const struct http_request *req, struct http_response *resp);

struct httpd;

/* Listen on "host:port" ("0.0.0.0:8008", "127.0.0.1:0" picks a free port). */
struct httpd *httpd_start(const char *listen_addr, http_handler handler, void *arg,
			  struct pgha_err *e);
/*
 * The same over TLS: tls (taken over; NULL: plain HTTP) is the server
 * context, built with common/tlsfile.h's tls_server_ctx_new(). Every
 * connection must complete its handshake within the request's 5 s; one that
 * does not, or sends plain HTTP, or fails the client-certificate check, is
 * logged and dropped without an answer.
 */
struct httpd *httpd_start_tls(const char *listen_addr, SSL_CTX *tls, http_handler handler, void *arg,
			      struct pgha_err *e);
/*
 * Serve new connections with tls (taken over) from now on: a certificate
 * reload. Connections already open finish with the context they started
 * with. Only for a server started with TLS (tls not NULL). Any thread.
 */
void httpd_set_tls(struct httpd *h, SSL_CTX *tls);
/* Port actually bound (useful with port 0). */
int httpd_port(const struct httpd *h);
/* Stop the thread, close every socket, free. Not from the handler (it joins the thread). */
void httpd_stop(struct httpd *h);

const char *http_status_text(int status);

#endif
