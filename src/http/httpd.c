/*
 * httpd.c — a small HTTP/1.1 server: one thread, poll(), non-blocking sockets.
 *
 * Every connection is a little state machine:
 *   HANDSHAKE  only with TLS: SSL_accept() on each readiness event, within the
 *          request deadline (5 s from accept); a failure (a plain-HTTP
 *          request, no or a wrong client certificate) is logged and the
 *          connection drained and closed without an answer;
 *   READ   collect request line + headers (<= 16 KiB) and the Content-Length
 *          body (<= 64 KiB) before the request deadline (5 s from accept);
 *   WRITE  send the whole answer (its own 5 s deadline: a client that does not
 *          read is dropped);
 *   DRAIN  after shutdown(SHUT_WR), read and discard until the client closes
 *          (at most 1 s). Closing a socket with unread input makes the kernel
 *          send a RST, which can destroy the answer before the client read it
 *          (typical for 413/431/400 answers sent while the client still talks).
 * Nothing ever blocks: one slow or hostile client costs a slot, not the loop.
 * Every answer says "Connection: close"; there is no keep-alive to get wrong.
 * What the head says is request.c's business; this file owns sockets,
 * buffers, deadlines and the connection table.
 */
#include "http/httpd.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/tlsfile.h"
#include "common/util.h"

enum {
	HTTPD_MAX_CONNS = 1024,
	HTTPD_HEADER_MAX = 16 * 1024,      /* request line + headers + blank line */
	HTTPD_REQUEST_TIMEOUT_MS = 5000,   /* accept -> complete request */
	HTTPD_WRITE_TIMEOUT_MS = 5000,     /* answer ready -> fully sent */
	HTTPD_DRAIN_TIMEOUT_MS = 1000,     /* sent -> client closed */
	HTTPD_ACCEPT_PAUSE_MS = 100,       /* after EMFILE: let connections finish */
	HTTPD_ACCEPT_BATCH = 64,           /* accepts per loop, so reads are not starved */
	HTTPD_READ_CHUNK = 4096,
};

enum conn_state { CONN_HANDSHAKE, CONN_READ, CONN_WRITE, CONN_DRAIN };

struct http_conn {
	int fd;
	SSL *ssl;               /* NULL: plain HTTP */
	short tls_want;         /* POLLIN/POLLOUT an SSL call waits for, 0 none */
	char peer[64];          /* the client's address, for log lines */
	enum conn_state state;
	int64_t deadline;       /* now_ms() value at which the current state times out */
	uint64_t seq;           /* accept order: the lowest is the oldest */
	struct strbuf in;       /* bytes received (NUL-terminated by strbuf) */
	size_t scanned;         /* in.data[0..scanned) holds no end of headers */
	size_t hdr_len;         /* length of the header block, 0 while incomplete */
	struct http_head head;  /* parsed once hdr_len is known */
	struct strbuf out;
	size_t out_off;
};

struct httpd {
	int listen_fd;
	int wake_fd;            /* eventfd: httpd_stop() wakes poll() through it */
	int port;
	atomic_bool stopping;
	pthread_t thread;
	bool thread_started;
	http_handler handler;
	void *arg;
	struct http_conn *conns[HTTPD_MAX_CONNS];
	size_t nconns;
	uint64_t next_seq;
	int64_t accept_paused_until;
	pthread_mutex_t tls_lock; /* guards tls: httpd_set_tls() runs on another thread */
	SSL_CTX *tls;           /* NULL: plain HTTP */
};

/* ---------------------------------------------------------------- helpers */

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static bool header_unsafe(const char *s)
{
	return s == NULL || strpbrk(s, "\r\n") != NULL;
}

/* ------------------------------------------------------------- connections */

static void conn_free(struct http_conn *c)
{
	if (c == NULL)
		return;
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	sb_free(&c->in);
	sb_free(&c->out);
	http_head_free(&c->head);
	free(c);
}

/* Queue the answer and switch to WRITE. The body is omitted for HEAD. */
static void conn_respond(struct http_conn *c, int status, const char *content_type,
			 const char *allow, const char *csp, const char *body, size_t body_len, bool head,
			 int64_t now)
{
	if (status < 100 || status > 599)
		status = 500;
	if (header_unsafe(content_type))
		content_type = "application/json";
	sb_reset(&c->out);
	sb_printf(&c->out,
		  "HTTP/1.1 %d %s\r\n"
		  "Content-Type: %s\r\n"
		  "Content-Length: %zu\r\n"
		  "Cache-Control: no-cache\r\n"
		  "X-Content-Type-Options: nosniff\r\n"
		  "X-Frame-Options: DENY\r\n"
		  "Connection: close\r\n",
		  status, http_status_text(status), content_type, body_len);
	if (allow != NULL && !header_unsafe(allow))
		sb_printf(&c->out, "Allow: %s\r\n", allow);
	if (csp != NULL && !header_unsafe(csp))
		sb_printf(&c->out, "Content-Security-Policy: %s\r\n", csp);
	sb_puts(&c->out, "\r\n");
	if (!head && body_len > 0)
		sb_append(&c->out, body, body_len);
	c->out_off = 0;
	c->state = CONN_WRITE;
	c->deadline = now + HTTPD_WRITE_TIMEOUT_MS;
}

/* An answer the server makes itself (protocol errors): a JSON error body. */
static void conn_respond_error(struct http_conn *c, int status, const char *why, int64_t now)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", why);
	log_debug("http: %d %s", status, why);
	conn_respond(c, status, "application/json", NULL, NULL, body, (size_t)n, false, now);
}

/* What SSL_get_error() says about r, as recv()/send() would: 0 EOF, -1 with errno. */
static ssize_t conn_ssl_result(struct http_conn *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->tls_want = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		c->tls_want = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			return 0;   /* the client went away without close_notify */
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

/*
 * Every byte of a request and its answer passes through these two (only the
 * best-effort 503 of httpd_refuse() does not), so that a TLS session can wrap
 * the connection in this one place. As recv()/send(): the bytes moved, 0 when
 * the client closed (receiving), -1 with errno set; an interrupted call is
 * retried here.
 */
static ssize_t conn_recv(struct http_conn *c, void *buf, size_t len)
{
	ssize_t n;
	if (c->ssl != NULL) {
		ERR_clear_error();
		errno = 0;
		c->tls_want = 0;
		int r = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
		return r > 0 ? r : conn_ssl_result(c, r);
	}
	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t conn_send(struct http_conn *c, const void *buf, size_t len)
{
	ssize_t n;
	if (c->ssl != NULL) {
		/* SSL_write() uses write(): SIGPIPE is ignored by every program that serves TLS here. */
		ERR_clear_error();
		errno = 0;
		c->tls_want = 0;
		int r = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
		return r > 0 ? r : conn_ssl_result(c, r);
	}
	/* MSG_NOSIGNAL: a client gone away must not SIGPIPE the agent. */
	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

/* After conn_recv()/conn_send() returned -1: only wait for the next poll(). */
static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* The request is complete: call the handler and queue its answer. */
static void conn_dispatch(struct httpd *h, struct http_conn *c, int64_t now)
{
	/* in.data[hdr_len + body_len] exists (<= in.len, and strbuf keeps a NUL). */
	char *body = c->in.data + c->hdr_len;
	body[c->head.body_len] = '\0';
	struct http_request req = {
		.method = c->head.method,
		.path = c->head.path,
		.query = c->head.query,
		.body = body,
		.body_len = c->head.body_len,
		.authorization = c->head.authorization,
	};
	struct http_response resp = {
		.status = 200,
		.content_type = "application/json",
		.body = STRBUF_INIT,
		.allow = NULL,
	};
	h->handler(h->arg, &req, &resp);
	bool head = strcmp(c->head.method, "HEAD") == 0;
	log_debug("http: %s %s -> %d", c->head.method, c->head.path, resp.status);
	conn_respond(c, resp.status, resp.content_type, resp.allow, resp.csp, sb_str(&resp.body),
		     resp.body.len, head, now);
	sb_free(&resp.body);
}

/*
 * The header block just completed: validate it and, for a body announced with
 * "Expect: 100-continue", tell the client to go on. Returns false when an
 * error answer was queued.
 */
static bool conn_headers_done(struct http_conn *c, size_t hdr_end, int64_t now)
{
	const char *why = NULL;
	c->hdr_len = hdr_end;
	if (hdr_end > HTTPD_HEADER_MAX) {
		conn_respond_error(c, 431, "request line and headers larger than 16 KiB", now);
		return false;
	}
	int rc = http_parse_head(c->in.data, c->hdr_len, &c->head, &why);
	if (rc != 0) {
		conn_respond_error(c, rc, why, now);
		return false;
	}
	if (c->head.expect_continue && c->head.http11 &&
	    c->in.len < c->hdr_len + c->head.body_len) {
		/*
		 * Best effort: nothing was sent yet, 25 bytes fit any send buffer.
		 * (An HTTP/1.0 client must not get a 1xx answer.)
		 */
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		ssize_t n = conn_send(c, cont, sizeof(cont) - 1);
		(void)n;
	}
	return true;
}

/* New bytes arrived in READ: move the request forward. */
static void conn_progress(struct httpd *h, struct http_conn *c, int64_t now)
{
	if (c->hdr_len == 0) {
		size_t end = http_head_end(c->in.data, c->in.len, c->scanned);
		if (end == 0) {
			if (c->in.len > HTTPD_HEADER_MAX) {
				conn_respond_error(c, 431,
						   "request line and headers larger than 16 KiB", now);
				return;
			}
			/* A terminator may straddle the next read: rescan 2 bytes. */
			c->scanned = c->in.len > 2 ? c->in.len - 2 : 0;
			return;
		}
		if (!conn_headers_done(c, end, now))
			return;
	}
	if (c->in.len >= c->hdr_len + c->head.body_len)
		conn_dispatch(h, c, now);
}

/* How many more bytes READ may take: never more than the request needs. */
static size_t conn_read_room(const struct http_conn *c)
{
	size_t limit = c->hdr_len ? c->hdr_len + c->head.body_len : HTTPD_HEADER_MAX + 1;
	return limit > c->in.len ? limit - c->in.len : 0;
}

/* Returns false when the connection must be closed. */
static bool conn_read(struct httpd *h, struct http_conn *c, int64_t now)
{
	while (c->state == CONN_READ) {
		size_t room = conn_read_room(c);
		if (room == 0)
			break; /* cannot happen in READ; recv(0) would look like EOF */
		if (room > HTTPD_READ_CHUNK)
			room = HTTPD_READ_CHUNK;
		sb_reserve(&c->in, room);
		ssize_t n = conn_recv(c, c->in.data + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->in.data[c->in.len] = '\0';
			conn_progress(h, c, now);
			continue;
		}
		if (n == 0) {
			/* EOF: a half-closed client still deserves to hear why. */
			if (c->in.len == 0)
				return false;
			conn_respond_error(c, 400, "incomplete request", now);
			return true;
		}
		return would_block();
	}
	return true;
}

/* Returns false when the connection must be closed. */
static bool conn_write(struct http_conn *c, int64_t now)
{
	while (c->out_off < c->out.len) {
		ssize_t n = conn_send(c, c->out.data + c->out_off, c->out.len - c->out_off);
		if (n <= 0)
			return n < 0 && would_block();
		c->out_off += (size_t)n;
	}
	/* A close_notify if it goes out at once; the peer's is never waited for. */
	if (c->ssl != NULL)
		(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAIN;
	c->deadline = now + HTTPD_DRAIN_TIMEOUT_MS;
	return true;
}

/* Returns false when the connection must be closed. */
static bool conn_drain(struct http_conn *c)
{
	char buf[4096];
	/* Raw bytes (TLS records too): they are only read so that close() sends no RST. */
	for (int i = 0; i < 16; i++) {
		ssize_t n;
		do
			n = recv(c->fd, buf, sizeof(buf), 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return n < 0 && would_block();
	}
	return true;
}

/* Drop a connection without an answer: drain what the client sends, then close. */
static void conn_abandon(struct http_conn *c, int64_t now)
{
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAIN;
	c->deadline = now + HTTPD_DRAIN_TIMEOUT_MS;
}

/*
 * HANDSHAKE: one SSL_accept() step. A client that is not TLS (a plain-HTTP
 * request) or fails verification is logged and dropped: an answer in plain
 * text would only teach a browser to retry without TLS.
 */
static void conn_handshake(struct http_conn *c, int64_t now)
{
	ERR_clear_error();
	errno = 0;
	c->tls_want = 0;
	int r = SSL_accept(c->ssl);
	if (r == 1) {
		log_debug("http: %s: %s, cipher %s", c->peer, SSL_get_version(c->ssl), SSL_get_cipher(c->ssl));
		c->state = CONN_READ;
		return;
	}
	int err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		c->tls_want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return;
	}
	unsigned long code = ERR_peek_error();
	char why[512];
	if (err == SSL_ERROR_SYSCALL && code == 0)
		snprintf(why, sizeof(why), "%s", errno ? strerror(errno) : "the client closed the connection");
	else
		tls_error_text(why, sizeof(why));
	if (ERR_GET_REASON(code) == SSL_R_HTTP_REQUEST)
		log_info("http: %s sent plain HTTP to the TLS port: dropped (HINT: use https://)", c->peer);
	else
		log_info("http: TLS handshake with %s failed: %s", c->peer, why);
	ERR_clear_error();
	conn_abandon(c, now);
}

/* One poll() result for one connection. Returns false to close it. */
static bool conn_step(struct httpd *h, struct http_conn *c, short revents, int64_t now)
{
	if (c->state == CONN_HANDSHAKE) {
		if (revents & (POLLIN | POLLOUT | POLLHUP | POLLERR))
			conn_handshake(c, now);
		if (c->state == CONN_HANDSHAKE && now >= c->deadline) {
			log_info("http: TLS handshake with %s not complete within 5 s: dropped", c->peer);
			return false;
		}
	}
	/* POLLOUT in READ only when an SSL_read() asked for it (conn_events()). */
	if (c->state == CONN_READ && (revents & (POLLIN | POLLOUT | POLLHUP | POLLERR))) {
		if (!conn_read(h, c, now))
			return false;
	}
	if (c->state == CONN_READ && now >= c->deadline)
		conn_respond_error(c, 408, "request not complete within 5 s", now);
	if (c->state == CONN_WRITE) {
		/* Try at once: a fresh answer almost always fits the send buffer. */
		if (!conn_write(c, now))
			return false;
		if (c->state == CONN_WRITE && now >= c->deadline)
			return false;
	}
	if (c->state == CONN_DRAIN) {
		if ((revents & (POLLIN | POLLHUP | POLLERR)) && !conn_drain(c))
			return false;
		if (now >= c->deadline)
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------- server */

static void httpd_remove_conn(struct httpd *h, size_t i)
{
	conn_free(h->conns[i]);
	h->conns[i] = h->conns[--h->nconns];
	h->conns[h->nconns] = NULL;
}

/*
 * Over the cap (or evicted): say so (best effort, never blocking) and hang up.
 * Input that already arrived is read first: closing with unread input sends a
 * RST, and the client would see "connection reset" instead of the 503.
 * Over TLS (tls) no 503: plain text inside a TLS stream is only garbage to the
 * client, so it is just closed.
 */
static void httpd_refuse(int fd, bool tls)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
				   "Content-Type: application/json\r\n"
				   "Content-Length: 32\r\n"
				   "Connection: close\r\n\r\n"
				   "{\"error\":\"too many connections\"}";
	char buf[4096];
	for (int i = 0; i < 8 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	if (!tls) {
		ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
	}
	shutdown(fd, SHUT_WR);
	close(fd);
}

/*
 * How much a connection is worth keeping at the cap, lowest first: an answer
 * already sent (DRAIN, only waiting for the client's close), then a request
 * whose head is still incomplete, then one whose body is still coming. A
 * complete request (WRITE: its answer is queued) is never evicted.
 */
static int conn_evict_rank(const struct http_conn *c)
{
	if (c->state == CONN_DRAIN)
		return 0;
	if (c->state == CONN_HANDSHAKE)
		return 1;
	if (c->state == CONN_READ)
		return c->hdr_len == 0 ? 1 : 2;
	return -1;
}

/*
 * At the cap, make room for a new connection by dropping the cheapest one
 * (lowest rank; the oldest within a rank). Slow or silent clients can then
 * never lock health checks out: a flood of them only evicts its own oldest
 * members, while a check sends its whole request at once and is answered in
 * the next poll round. Those still evicted when a check is accepted are all
 * older than it, so a check is never evicted before more than HTTPD_MAX_CONNS
 * later connections arrived. Returns false if every slot holds an answered
 * request still being written.
 */
static bool httpd_make_room(struct httpd *h)
{
	size_t victim = SIZE_MAX;
	int best = -1;
	for (size_t i = 0; i < h->nconns; i++) {
		const struct http_conn *c = h->conns[i];
		int r = conn_evict_rank(c);
		if (r < 0)
			continue;
		if (victim == SIZE_MAX || r < best || (r == best && c->seq < h->conns[victim]->seq)) {
			victim = i;
			best = r;
		}
	}
	if (victim == SIZE_MAX)
		return false;
	struct http_conn *c = h->conns[victim];
	if (c->state == CONN_HANDSHAKE) {
		log_debug("http: %d connections open, dropping the oldest TLS handshake", HTTPD_MAX_CONNS);
	} else if (c->state == CONN_READ) {
		log_debug("http: %d connections open, dropping the oldest incomplete request",
			  HTTPD_MAX_CONNS);
		httpd_refuse(c->fd, c->ssl != NULL);
		c->fd = -1;
	}
	httpd_remove_conn(h, victim);
	return true;
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "a client");
	}
}

/* With TLS on, a new connection starts in HANDSHAKE with the context in use now. */
static bool conn_start_tls(struct httpd *h, struct http_conn *c)
{
	pthread_mutex_lock(&h->tls_lock);
	if (h->tls != NULL) {
		ERR_clear_error();
		c->ssl = SSL_new(h->tls);   /* holds its own reference: a reload cannot free it */
	}
	bool tls = h->tls != NULL;
	pthread_mutex_unlock(&h->tls_lock);
	if (!tls)
		return true;
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		char why[256];
		tls_error_text(why, sizeof(why));
		log_warn("http: %s: cannot start TLS: %s", c->peer, why);
		return false;
	}
	c->state = CONN_HANDSHAKE;
	return true;
}

static void httpd_accept(struct httpd *h, int64_t now)
{
	for (int i = 0; i < HTTPD_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The listen fd stays readable: without a pause we would spin. */
				log_warn("http: accept: %s; pausing accepts", strerror(errno));
				h->accept_paused_until = now + HTTPD_ACCEPT_PAUSE_MS;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warn("http: accept: %s", strerror(errno));
			}
			return;
		}
		if (h->nconns >= HTTPD_MAX_CONNS && !httpd_make_room(h)) {
			log_debug("http: %d connections open, refusing one", HTTPD_MAX_CONNS);
			pthread_mutex_lock(&h->tls_lock);
			bool tls = h->tls != NULL;
			pthread_mutex_unlock(&h->tls_lock);
			httpd_refuse(fd, tls);
			continue;
		}
		struct http_conn *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->state = CONN_READ;
		addr_text(&ss, c->peer, sizeof(c->peer));
		if (!conn_start_tls(h, c)) {
			conn_free(c);
			continue;
		}
		c->deadline = now + HTTPD_REQUEST_TIMEOUT_MS;
		c->seq = h->next_seq++;
		sb_init(&c->in);
		sb_init(&c->out);
		h->conns[h->nconns++] = c;
	}
}

static short conn_events(const struct http_conn *c)
{
	/* An SSL call waits for what it said (a TLS write may need to read, and back). */
	if (c->ssl != NULL && c->tls_want != 0 && c->state != CONN_DRAIN)
		return c->tls_want;
	return c->state == CONN_WRITE ? POLLOUT : POLLIN;
}

/* The poll() timeout: up to the nearest deadline, at most 1 s. */
static int httpd_poll_timeout(const struct httpd *h, int64_t now)
{
	int64_t next = now + 1000;
	for (size_t i = 0; i < h->nconns; i++) {
		if (h->conns[i]->deadline < next)
			next = h->conns[i]->deadline;
	}
	if (h->accept_paused_until > now && h->accept_paused_until < next)
		next = h->accept_paused_until;
	return next > now ? (int)(next - now) : 0;
}

static void httpd_drain_wake(struct httpd *h)
{
	uint64_t v;
	ssize_t n = read(h->wake_fd, &v, sizeof(v));
	(void)n;
}

static void *httpd_thread(void *arg)
{
	struct httpd *h = arg;
	struct pollfd pfds[HTTPD_MAX_CONNS + 2];
	log_set_context("api");
	while (!atomic_load(&h->stopping)) {
		int64_t now = now_ms();
		pfds[0] = (struct pollfd){.fd = h->wake_fd, .events = POLLIN};
		pfds[1] = (struct pollfd){.fd = h->accept_paused_until > now ? -1 : h->listen_fd,
					  .events = POLLIN};
		size_t n = h->nconns;
		for (size_t i = 0; i < n; i++)
			pfds[i + 2] = (struct pollfd){.fd = h->conns[i]->fd,
						      .events = conn_events(h->conns[i])};
		int rc = poll(pfds, n + 2, httpd_poll_timeout(h, now));
		if (rc < 0 && errno != EINTR) {
			log_error("http: poll: %s", strerror(errno));
			sleep_ms(100);
			continue;
		}
		if (rc < 0)
			continue;
		if (pfds[0].revents)
			httpd_drain_wake(h);
		now = now_ms();
		/*
		 * Downwards: removing conns[i] moves the last one into its place,
		 * and that one (index > i) has already been served.
		 */
		for (size_t i = n; i-- > 0;) {
			if (!conn_step(h, h->conns[i], pfds[i + 2].revents, now))
				httpd_remove_conn(h, i);
		}
		if (pfds[1].revents & POLLIN)
			httpd_accept(h, now);
	}
	return NULL;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

/* Bind the first address of host that works. */
static int httpd_listen(struct httpd *h, const char *addr, const char *host, int port,
			struct pgha_err *e)
{
	struct addrinfo hints = {0}, *res = NULL;
	char ports[8];
	int last_errno = 0;
	snprintf(ports, sizeof(ports), "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int rc = getaddrinfo(host, ports, &hints, &res);
	if (rc != 0)
		return err_set(e, "listen on %s: cannot resolve \"%s\": %s", addr, host,
			       gai_strerror(rc));
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		/* A restarted agent must get its port back while old sockets sit in TIME_WAIT. */
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
			h->listen_fd = fd;
			h->port = bound_port(fd);
			break;
		}
		last_errno = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (h->listen_fd < 0)
		return err_set(e, "listen on %s: %s", addr, strerror(last_errno));
	return 0;
}

static void httpd_free(struct httpd *h)
{
	for (size_t i = 0; i < h->nconns; i++)
		conn_free(h->conns[i]);
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	if (h->wake_fd >= 0)
		close(h->wake_fd);
	SSL_CTX_free(h->tls);
	pthread_mutex_destroy(&h->tls_lock);
	free(h);
}

struct httpd *httpd_start(const char *listen_addr, http_handler handler, void *arg,
			  struct pgha_err *e)
{
	return httpd_start_tls(listen_addr, NULL, handler, arg, e);
}

struct httpd *httpd_start_tls(const char *listen_addr, SSL_CTX *tls, http_handler handler, void *arg,
			      struct pgha_err *e)
{
	char host[256];
	int port = 0;
	if (parse_listen_addr(listen_addr, host, sizeof(host), &port, e) != 0) {
		SSL_CTX_free(tls);
		return NULL;
	}
	struct httpd *h = xcalloc(1, sizeof(*h));
	h->listen_fd = -1;
	h->wake_fd = -1;
	h->handler = handler;
	h->arg = arg;
	pthread_mutex_init(&h->tls_lock, NULL);
	h->tls = tls;
	atomic_init(&h->stopping, false);
	if (httpd_listen(h, listen_addr, host, port, e) < 0)
		goto fail;
	h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->wake_fd < 0) {
		err_set(e, "eventfd: %s", strerror(errno));
		goto fail;
	}
	/*
	 * The server thread blocks every signal (it inherits the mask): SIGTERM
	 * and friends must reach the thread that handles them, not interrupt
	 * poll() here.
	 */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&h->thread, NULL, httpd_thread, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		err_set(e, "listen on %s: cannot start a thread: %s", listen_addr, strerror(rc));
		goto fail;
	}
	h->thread_started = true;
	return h;
fail:
	httpd_free(h);
	return NULL;
}

void httpd_set_tls(struct httpd *h, SSL_CTX *tls)
{
	pthread_mutex_lock(&h->tls_lock);
	SSL_CTX *old = h->tls;
	h->tls = tls;
	pthread_mutex_unlock(&h->tls_lock);
	SSL_CTX_free(old);   /* connections already open hold their own reference */
}

int httpd_port(const struct httpd *h)
{
	return h ? h->port : -1;
}

void httpd_stop(struct httpd *h)
{
	if (h == NULL)
		return;
	if (h->thread_started) {
		atomic_store(&h->stopping, true);
		uint64_t one = 1;
		ssize_t n = write(h->wake_fd, &one, sizeof(one));
		(void)n;
		pthread_join(h->thread, NULL);
	}
	httpd_free(h);
}
