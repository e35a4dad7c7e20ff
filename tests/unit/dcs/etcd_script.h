/*
 * etcd_script.h — a scripted HTTP/1.1 server standing in for etcd in the unit
 * tests of src/dcs: a thread on 127.0.0.1 (port chosen by the kernel) that
 * answers the requests it accepts, in order, from a script of canned replies,
 * closed connections, replies cut short, hangs and held streams, and records
 * every request (path, Authorization header, body). An endpoint that refuses
 * is a port bound without a listener. Every wait is bounded; server_stop
 * joins the thread.
 *
 * The functions are static inline: each test file includes this header once
 * and uses what it needs.
 */
#ifndef PGHA_TESTS_DCS_ETCD_SCRIPT_H
#define PGHA_TESTS_DCS_ETCD_SCRIPT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "dcs/etcd.h"

enum act {
	REPLY,      /* status + body, then close */
	CLOSE,      /* close without a word */
	HANG,       /* say nothing for ms, then close */
	STREAM,     /* 200 with body (watch messages), hold the stream ms, then close */
	CUT,        /* status + body announced 100 bytes longer than sent, then close */
};

struct step {
	const char *path;   /* the request path the script expects */
	enum act act;
	int status;
	const char *body;
	int ms;
};

struct req {
	char path[64];
	char auth[64];      /* the Authorization header, "" if none */
	char body[1024];
};

#define MAX_REQS 16

struct server {
	int fd;
	int port;
	char url[64];
	const struct step *script;
	size_t nsteps;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock;
	struct req reqs[MAX_REQS];
	size_t nreqs;
	char error[256];    /* a request the script did not expect */
};

/* Wait for fd to be readable, up to ms, giving up early on stop. */
static inline bool wait_readable(struct server *s, int fd, int ms)
{
	for (int waited = 0; waited < ms && !atomic_load(&s->stop); waited += 20) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 20) > 0)
			return true;
	}
	return false;
}

/* Keep the connection open for ms, or until the client closes it or stop. */
static inline void hold(struct server *s, int fd, int ms)
{
	char buf[256];
	int64_t end = now_ms() + ms;
	while (now_ms() < end && wait_readable(s, fd, (int)(end - now_ms())))
		if (recv(fd, buf, sizeof(buf), 0) <= 0)
			return;
}

static inline void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static inline void header_value(const char *head, const char *name, char *out, size_t outlen)
{
	out[0] = '\0';
	const char *p = strcasestr(head, name);
	if (p == NULL)
		return;
	p += strlen(name);
	while (*p == ' ')
		p++;
	size_t n = strcspn(p, "\r\n");
	snprintf(out, outlen, "%.*s", (int)n, p);
}

/* Read one request (head and Content-Length body) into r; false if none came. */
static inline bool read_request(struct server *s, int fd, struct req *r)
{
	char buf[8192];
	size_t len = 0;
	char *end = NULL;
	long clen = 0;
	memset(r, 0, sizeof(*r));
	while (end == NULL || len < (size_t)(end + 4 - buf) + (size_t)clen) {
		if (len == sizeof(buf) - 1 || !wait_readable(s, fd, 2000))
			return false;
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = '\0';
		if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			char cl[32];
			header_value(buf, "\r\nContent-Length:", cl, sizeof(cl));
			clen = atol(cl);
		}
	}
	sscanf(buf, "POST %63s", r->path);
	header_value(buf, "\r\nAuthorization:", r->auth, sizeof(r->auth));
	snprintf(r->body, sizeof(r->body), "%.*s", (int)clen, end + 4);
	return true;
}

static inline void serve(struct server *s, int fd)
{
	struct req r;
	if (!read_request(s, fd, &r))
		return;
	pthread_mutex_lock(&s->lock);
	size_t i = s->nreqs;
	if (i < MAX_REQS)
		s->reqs[s->nreqs++] = r;
	const struct step *st = i < s->nsteps ? &s->script[i] : NULL;
	if (st == NULL || strcmp(st->path, r.path) != 0)
		snprintf(s->error, sizeof(s->error), "request %zu to %s: %s unexpected", i + 1,
			 s->url, r.path);
	pthread_mutex_unlock(&s->lock);
	if (st == NULL || strcmp(st->path, r.path) != 0)
		return;

	char head[256];
	switch (st->act) {
	case REPLY:
	case CUT:
		snprintf(head, sizeof(head),
			 "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 st->status, strlen(st->body) + (st->act == CUT ? 100 : 0));
		send_all(fd, head, strlen(head));
		send_all(fd, st->body, strlen(st->body));
		break;
	case CLOSE:
		break;
	case HANG:
		hold(s, fd, st->ms);
		break;
	case STREAM:
		snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					     "Connection: close\r\n\r\n");
		send_all(fd, head, strlen(head));
		send_all(fd, st->body, strlen(st->body));
		hold(s, fd, st->ms);
		break;
	}
}

static inline void *server_main(void *arg)
{
	struct server *s = arg;
	while (!atomic_load(&s->stop)) {
		if (!wait_readable(s, s->fd, 100))
			continue;
		int fd = accept(s->fd, NULL, NULL);
		if (fd < 0)
			continue;
		serve(s, fd);
		close(fd);
	}
	return NULL;
}

/* A socket on 127.0.0.1, port chosen by the kernel; listening or not. */
static inline int bind_local(int *port, bool listening)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (listening)
		assert_int_equal(listen(fd, 16), 0);
	socklen_t alen = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static inline struct server *server_start(const struct step *script, size_t nsteps)
{
	struct server *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->fd = bind_local(&s->port, true);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
	s->script = script;
	s->nsteps = nsteps;
	atomic_init(&s->stop, false);
	pthread_mutex_init(&s->lock, NULL);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
	return s;
}

/* Stop and join the thread; the requests it saw stay readable until server_free. */
static inline void server_stop(struct server *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	close(s->fd);
}

static inline void server_free(struct server *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static inline size_t server_nreqs(struct server *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->nreqs;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Stop s and check it saw exactly nreqs requests, none unexpected; s->reqs stay readable. */
static inline void server_finish(struct server *s, size_t nreqs)
{
	server_stop(s);
	if (s->error[0])
		fail_msg("%s", s->error);
	assert_int_equal(s->nreqs, nreqs);
}

static inline void server_done(struct server *s, size_t nreqs)
{
	server_finish(s, nreqs);
	server_free(s);
}

#define SCRIPT(s) (s), sizeof(s) / sizeof((s)[0])
#define ANSWER(path, status, body) {path, REPLY, status, body, 0}
#define CLOSES(path) {path, CLOSE, 0, NULL, 0}
#define CUTS(path, body) {path, CUT, 200, body, 0}
#define HANGS(path, ms) {path, HANG, 0, NULL, ms}
#define STREAMS(path, body, ms) {path, STREAM, 200, body, ms}

/* An endpoint that refuses connections: a port bound without a listener. */
struct refuser {
	int fd;
	char url[64];
};

static inline void refuser_open(struct refuser *r)
{
	int port;
	r->fd = bind_local(&port, false);
	snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d", port);
}

static inline void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", hay, needle);
}

static inline struct etcd_client *client_new(const char *endpoints, int request_ms,
					     int deadline_ms, const char *user)
{
	struct pgha_err e = {{0}};
	struct etcd_opts o = {.endpoints = endpoints, .request_timeout_ms = request_ms,
			      .deadline_ms = deadline_ms, .username = user,
			      .password = user ? "secret" : NULL};
	struct etcd_client *c = etcd_new(&o, &e);
	if (c == NULL)
		fail_msg("etcd_new: %s", e.msg);
	return c;
}

#endif
