/*
 * cancel.c — a client's CancelRequest: the client whose key it names is
 * found among those with a server, and the request goes to that server's
 * backend (its pid and key) from a thread of its own, so that a slow or
 * unreachable server never holds the loop. It goes in TLS when the
 * server's connection does (server_tls.c).
 */
#include "proxy/cancel.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/tlsfile.h"
#include "common/util.h"
#include "pgproto/pgproto.h"
#include "proxy/server_tls.h"

struct cancel_job {
	struct route_target target;
	int32_t pid;
	uint8_t key[4];
	struct ssl_ctx_st *ctx;          /* a reference (NULL: server_sslmode = disable) */
	enum server_sslmode mode;
};

/*
 * The cancel request over TLS, as the server connections go (a backend's key
 * is not sent in clear when they are encrypted): SSLRequest, then the request
 * inside TLS, which PostgreSQL takes as it takes a startup packet. 'N': prefer
 * sends it in plain text on the same connection, stricter modes give up.
 */
static void send_tls(struct cancel_job *j, int fd, const struct strbuf *req)
{
	struct strbuf ask = STRBUF_INIT;
	pgp_build_ssl_request(&ask);
	ssize_t sent = send(fd, ask.data, ask.len, MSG_NOSIGNAL);
	sb_free(&ask);
	uint8_t ans[2];
	ssize_t n = sent > 0 ? recv(fd, ans, sizeof(ans), 0) : -1;
	const char *host = j->target.host;
	if (n == 1 && ans[0] == 'N' && j->mode == SSLMODE_PREFER) {
		if (send(fd, req->data, req->len, MSG_NOSIGNAL) < 0)
			log_debug("sending a cancel request to %s: %s", host, strerror(errno));
		return;
	}
	if (n != 1 || ans[0] != 'S') {
		log_info("cancel request to %s:%d not sent: %s (server_sslmode = %s)", host, j->target.port,
			 n == 1 && ans[0] == 'N' ? "the server does not accept TLS" : "no answer to the SSLRequest",
			 proxy_sslmode_name(j->mode));
		return;
	}
	char why[256] = "";
	SSL *ssl = server_tls_new(j->ctx, j->mode, host, fd, why, sizeof(why));
	if (ssl != NULL && SSL_connect(ssl) == 1 && SSL_write(ssl, req->data, (int)req->len) == (int)req->len) {
		(void)SSL_shutdown(ssl);
	} else {
		if (why[0] == '\0')
			tls_error_text(why, sizeof(why));
		log_info("cancel request to %s:%d over TLS failed: %s", host, j->target.port, why);
	}
	if (ssl != NULL)
		SSL_free(ssl);
	ERR_clear_error();
}

static void *cancel_thread(void *arg)
{
	struct cancel_job *j = arg;
	char port[16];
	snprintf(port, sizeof(port), "%d", j->target.port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	if (getaddrinfo(j->target.host, port, &hints, &ai) == 0) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct timeval tv = {.tv_sec = 2};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			struct strbuf sb = STRBUF_INIT;
			pgp_build_cancel_request(&sb, j->pid, j->key, 4);
			if (j->ctx != NULL)
				send_tls(j, fd, &sb);
			else if (send(fd, sb.data, sb.len, MSG_NOSIGNAL) < 0)
				log_debug("sending a cancel request: %s", strerror(errno));
			sb_free(&sb);
		}
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
	}
	if (j->ctx != NULL)
		SSL_CTX_free(j->ctx);
	free(j);
	return NULL;
}

static struct client *find_by_cancel(struct proxy *px, int32_t pid, const uint8_t *key)
{
	for (struct link *pl = px->pools.next; pl != &px->pools; pl = pl->next) {
		struct pool *p = link_entry(pl, struct pool, node);
		for (struct link *l = p->active.next; l != &p->active; l = l->next) {
			struct server *s = link_entry(l, struct server, node);
			struct client *c = s->client;
			if (c && c->cancel_pid == pid && memcmp(c->cancel_key, key, 4) == 0)
				return c;
		}
	}
	return NULL;
}

void cancel_backend(const struct server *s)
{
	struct cancel_job *j = xcalloc(1, sizeof(*j));
	j->target = s->target;
	j->pid = s->backend_pid;
	memcpy(j->key, s->backend_key, 4);
	/* In TLS if its connection is, with the mode and context that connection was made with. */
	j->mode = s->tls_mode;
	if (s->ssl != NULL && SSL_CTX_up_ref(SSL_get_SSL_CTX(s->ssl)) == 1)
		j->ctx = SSL_get_SSL_CTX(s->ssl);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, cancel_thread, j) != 0) {
		if (j->ctx != NULL)
			SSL_CTX_free(j->ctx);
		free(j);
	}
	pthread_attr_destroy(&attr);
}

void cancel_forward(struct proxy *px, int32_t pid, const uint8_t key[4], const char *from)
{
	struct client *target = find_by_cancel(px, pid, key);
	if (target == NULL || target->server == NULL)
		return;
	cancel_backend(target->server);
	log_info("client %s: cancel forwarded to backend %d", from, target->server->backend_pid);
}
