/*
 * cancel.c — a client's CancelRequest: the client whose key it names is
 * found among those with a server, and the request goes to that server's
 * backend (its pid and key) from a thread of its own, so that a slow or
 * unreachable server never holds the loop.
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

#include "common/log.h"
#include "common/util.h"
#include "pgproto/pgproto.h"

struct cancel_job {
	struct route_target target;
	int32_t pid;
	uint8_t key[4];
};

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
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			struct strbuf sb = STRBUF_INIT;
			pgp_build_cancel_request(&sb, j->pid, j->key, 4);
			if (send(fd, sb.data, sb.len, MSG_NOSIGNAL) < 0)
				log_debug("sending a cancel request: %s", strerror(errno));
			sb_free(&sb);
		}
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
	}
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
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, cancel_thread, j) != 0)
		free(j);
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
