/*
 * objects.c — the one place a client's or a server's state changes (as
 * PgBouncer's objects.c): the lists and counts that follow from a state
 * change here; the startup parameters every client and server tracks.
 */
#include "proxy/objects.h"
#include "proxy/metrics.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const tracked_params[NTRACKED] = {
	"client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
	"application_name",
};

int tracked_index(const char *name)
{
	for (int k = 0; k < NTRACKED; k++)
		if (strcasecmp(tracked_params[k], name) == 0)
			return k;
	return -1;
}

/* The list a client in state st sits on; NULL: none (an active client is reached through its server). */
static struct link *client_list(struct client *c, enum client_state st)
{
	switch (st) {
	case CL_WAITING:
		return &c->pool->waiting;
	case CL_ACTIVE:
	case CL_CLOSING:
		return NULL;
	default:
		return &c->px->clients_idle;
	}
}

void client_set_state(struct client *c, enum client_state to)
{
	struct link *from_list = client_list(c, c->state), *to_list = client_list(c, to);
	/* Every server handed to a client: how long it waited (0 when one was free). */
	if (to == CL_ACTIVE && c->state != CL_ACTIVE)
		metrics_observe_wait(c->px, c->state == CL_WAITING ? c->px->now_ms - c->since_ms : 0);
	if (c->state == CL_WAITING)
		c->pool->nwaiting--;
	if (to == CL_WAITING)
		c->pool->nwaiting++;
	if (from_list != to_list || c->node.next == NULL) {
		link_del(&c->node);
		if (to_list != NULL)
			link_add_tail(to_list, &c->node);
	}
	c->state = to;
	if (to == CL_IDLE || to == CL_CLOSING) {
		/* Its transaction is over: a lent leader server's pool is no longer its own, nothing gates it. */
		if (c->ryw_home != NULL) {
			c->pool = c->ryw_home;
			c->ryw_home = NULL;
		}
		if (c->split_home != NULL) {
			c->pool = c->split_home;   /* after ryw_home: a split read lent a leader server came from it */
			c->split_home = NULL;
		}
		c->split_hold = false;
		c->ryw = 0;
		c->ryw_on_standby = false;
		link_del(&c->ryw_node);
	}
	if (to == CL_IDLE)
		c->query_start_ms = 0;   /* nothing owed between transactions: a lost round trip is not timed */
	/* The login timeout counts from the accept, through TLS and authentication. */
	if (to == CL_LOGIN || to == CL_IDLE || to == CL_WAITING || to == CL_ACTIVE)
		c->since_ms = c->px->now_ms;
}

/* The list of its pool a server in state st sits on; NULL: none. */
static struct link *server_list(struct server *s, enum server_state st)
{
	switch (st) {
	case SV_IDLE:
		return &s->pool->idle;
	case SV_CLOSING:
		return NULL;
	default:
		return &s->pool->active;   /* connecting and logging in servers sit with the active ones */
	}
}

void server_set_state(struct server *s, enum server_state to)
{
	struct link *from_list = server_list(s, s->state), *to_list = server_list(s, to);
	if (from_list != to_list || s->node.next == NULL) {
		link_del(&s->node);
		if (to_list != NULL)
			link_add_tail(to_list, &s->node);
	}
	if (to == SV_CLOSING)
		s->pool->nservers--;   /* counted from server_connect() on */
	s->state = to;
}

const char *pool_param(const struct client *c, int k)
{
	return c->want[k] != NULL ? c->want[k] : c->pool->defaults[k];
}

struct ryw_standby *ryw_standby_find(struct proxy *px, const char *host, int port, bool create)
{
	size_t n = sizeof(px->ryw_replay) / sizeof(px->ryw_replay[0]), empty = n;
	for (size_t i = 0; i < n; i++) {
		if (px->ryw_replay[i].port == port && strcmp(px->ryw_replay[i].host, host) == 0)
			return &px->ryw_replay[i];
		if (px->ryw_replay[i].port == 0 && empty == n)
			empty = i;
	}
	if (!create)
		return NULL;
	struct ryw_standby *st = &px->ryw_replay[empty < n ? empty : 0];   /* more standbys than slots: one is read again */
	memset(st, 0, sizeof(*st));
	snprintf(st->host, sizeof(st->host), "%s", host);
	st->port = port;
	return st;
}
