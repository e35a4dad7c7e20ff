/*
 * pool.c — server connections per (database, user, port kind), and the
 * clients waiting for one. A waiting client gets the first server that
 * becomes free; new servers are opened up to pool_size. With no target
 * (no leader during a failover) clients wait up to hold_timeout, and get
 * the new leader's servers as soon as the topology names one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/log.h"
#include "common/util.h"
#include "pgproto/pgproto.h"
#include "proxy/locality.h"
#include "proxy/pool.h"
#include "proxy/server.h"

struct pool *pool_get(struct proxy *px, const char *db, const char *user, bool ro)
{
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		if (p->ro == ro && strcmp(p->database, db) == 0 && strcmp(p->user, user) == 0)
			return p;
	}
	struct pool *p = xcalloc(1, sizeof(*p));
	p->px = px;
	snprintf(p->database, sizeof(p->database), "%s", db);
	snprintf(p->user, sizeof(p->user), "%s", user);
	p->ro = ro;
	p->pinning = proxy_pinning_for(&px->cfg, user, db);
	link_init(&p->idle);
	link_init(&p->active);
	link_init(&p->waiting);
	sb_init(&p->params);
	link_add_tail(&px->pools, &p->node);
	return p;
}

static bool same_target(const struct route_target *a, const struct route_target *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port;
}

static bool replica_usable(const struct proxy *px, const struct route_target *r)
{
	return r->lag_bytes >= 0 && r->lag_bytes <= px->cfg.ro_max_lag;
}

/*
 * The standbys a read-only pool may open servers to: within ro_max_lag, and
 * with read-your-writes first not lately too far behind for a read if another
 * will do. false: none.
 */
static bool replicas_usable(struct proxy *px, bool usable[ROUTE_MAX_REPLICAS])
{
	const struct topology *t = &px->topo;
	for (int pass = px->cfg.read_your_writes ? 0 : 1; pass < 2; pass++) {
		bool any = false;
		for (int i = 0; i < t->nreplicas; i++) {
			const struct route_target *r = &t->replicas[i];
			const struct ryw_standby *st = pass == 0 ? ryw_standby_find(px, r->host, r->port, false) : NULL;
			usable[i] = replica_usable(px, r) && (st == NULL || st->behind_until_ms <= px->now_ms);
			any = any || usable[i];
		}
		if (any)
			return true;
	}
	return false;
}

/*
 * Where new servers of this pool go: the leader, or a usable standby of the
 * nearest locality ([proxy] region and zone, locality.h), round robin among
 * those; the leader for reads only when no standby anywhere is usable.
 */
bool pool_target(struct pool *p, struct route_target *out)
{
	struct proxy *px = p->px;
	const struct topology *t = &px->topo;
	if (p->ro) {
		bool usable[ROUTE_MAX_REPLICAS];
		int i = replicas_usable(px, usable) ? locality_pick(t->replicas, usable, t->nreplicas, px->cfg.region,
								    px->cfg.zone, &px->ro_rr) : -1;
		if (i >= 0) {
			*out = t->replicas[i];
			return true;
		}
		/* A standby cluster's reads stay in its region: not on the primary cluster's primary. */
		if (!px->cfg.ro_fallback_leader || t->standby_cluster)
			return false;
	}
	if (!t->has_leader)
		return false;
	*out = t->leader;
	return true;
}

/*
 * Is t still where this pool's servers belong? Read-write: the leader. Read-only:
 * a usable standby (within ro_max_lag, and not lately behind for a read if
 * another will do) no farther than the nearest usable one, so that a server in
 * another region goes once one in the proxy's is usable again and reads come
 * home; any standby the topology lists while none is usable; the leader only
 * while no standby is within ro_max_lag (the fallback): once a standby is back,
 * the leader's servers go. Servers that are no longer current are closed when
 * idle, or when their client releases them: no client sees an error.
 */
static bool target_current(struct pool *p, const struct route_target *t)
{
	struct proxy *px = p->px;
	const struct topology *topo = &px->topo;
	bool leader = topo->has_leader && same_target(&topo->leader, t);
	if (!p->ro)
		return leader;
	bool usable[ROUTE_MAX_REPLICAS];
	bool standby_usable = replicas_usable(px, usable);
	for (int i = 0; i < topo->nreplicas; i++)
		if (same_target(&topo->replicas[i], t))
			return !standby_usable ||
			       (usable[i] && locality_of(px->cfg.region, px->cfg.zone, &topo->replicas[i]) <=
						     locality_nearest(topo->replicas, usable, topo->nreplicas,
								      px->cfg.region, px->cfg.zone));
	return leader && px->cfg.ro_fallback_leader && !standby_usable;
}

void pool_open_servers(struct pool *p)
{
	/*
	 * One connection attempt per waiting client, within pool_size. Stale servers
	 * (busy on a target the topology no longer names: a frozen or cut-off old
	 * leader) do not count: they must not keep the new leader's servers out.
	 */
	int connecting = 0, stale = 0;
	for (struct link *l = p->active.next; l != &p->active; l = l->next) {
		struct server *s = link_entry(l, struct server, node);
		if (s->stale)
			stale++;
		else if (s->state == SV_CONNECTING || s->state == SV_LOGIN)
			connecting++;
	}
	while (!pool_held(p) && p->nservers - stale < p->px->cfg.pool_size && connecting < p->nwaiting) {
		struct route_target t;
		if (!pool_target(p, &t))
			return;   /* no leader yet: the clients wait (hold) */
		log_debug("pool %s@%s: opening a server to %s:%d (%d waiting)", p->user, p->database, t.host,
			  t.port, p->nwaiting);
		char why[300];
		if (server_connect(p, &t, why, sizeof(why)) == NULL) {
			/* Only a connect failure (address, socket): not one that fails the clients. */
			pool_login_failed(p, why);
			return;
		}
		connecting++;
	}
}

/* The first waiting client gets s (active now): the caller links them. */
static struct client *give_to_waiting(struct pool *p, struct server *s)
{
	struct client *c = link_entry(p->waiting.next, struct client, node);
	server_set_state(s, SV_ACTIVE);
	return c;
}

struct client *pool_resume_next(struct pool *p, struct server **s)
{
	if (link_empty(&p->waiting) || link_empty(&p->idle))
		return NULL;
	*s = link_entry(p->idle.next, struct server, node);
	return give_to_waiting(p, *s);
}

struct server *pool_request(struct pool *p, struct client *c)
{
	log_debug("pool %s: client %p wants a server (%d waiting, %d servers)", p->user, (void *)c, p->nwaiting, p->nservers);
	while (!pool_held(p) && !link_empty(&p->idle)) {
		struct server *s = link_entry(p->idle.next, struct server, node);
		if (s->stale || !target_current(p, &s->target)) {
			server_close(s, "its target changed");
			continue;
		}
		server_set_state(s, SV_ACTIVE);
		return s;
	}
	client_set_state(c, CL_WAITING);
	pool_open_servers(p);
	return NULL;
}

/* c stops waiting (it leaves, or gets an error): idle again, read again. Idempotent. */
void pool_cancel_wait(struct pool *p, struct client *c)
{
	if (c->state != CL_WAITING)
		return;
	client_set_state(c, CL_IDLE);
	proxy_watch(p->px, &c->tag, EPOLLIN);
}

struct client *pool_release(struct server *s)
{
	struct pool *p = s->pool;
	log_debug("pool %s: server pid %d released (status %c, %d waiting)", p->user, s->backend_pid, s->status, p->nwaiting);
	s->client = NULL;
	s->used_ms = p->px->now_ms;
	if (s->stale || !target_current(p, &s->target) || s->status != 'I') {
		server_close(s, s->status != 'I' ? "released inside a transaction" : "its target changed");
		return NULL;
	}
	return pool_server_ready(s);
}

struct client *pool_server_ready(struct server *s)
{
	struct pool *p = s->pool;
	if (!link_empty(&p->waiting) && !pool_held(p))
		return give_to_waiting(p, s);
	server_set_state(s, SV_IDLE);
	return NULL;
}

void pool_take_params(struct pool *p, struct strbuf *params)
{
	sb_free(&p->params);
	p->params = *params;
	sb_init(params);
	p->have_params = true;
	size_t off = 0;
	struct pgp_msg m;
	struct pgha_err e;
	while (off < p->params.len && pgp_frame(p->params.data + off, p->params.len - off, 0, &m, &e) == PGP_OK) {
		off += m.total_len;
		struct pgp_param prm;
		int k;
		if (pgp_parse_parameter_status(&m, &prm, &e) == 0 && (k = tracked_index(prm.name)) >= 0 &&
		    p->defaults[k] == NULL)
			p->defaults[k] = xstrdup(prm.value);
	}
	/* No application_name is an empty one (as PostgreSQL has it), not the proxy's own. */
	int k = tracked_index("application_name");
	free(p->defaults[k]);
	p->defaults[k] = xstrdup("");
}

bool pool_login_failed(struct pool *p, const char *why)
{
	snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	p->last_error_ms = p->px->now_ms;
	log_warn("pool %s@%s%s: %s", p->user, p->database, p->ro ? " (read-only)" : "", why);
	/*
	 * Authentication problems will not go away by waiting, nor will TLS settings that do not
	 * fit the server (server_tls.c names server_sslmode in each): the caller fails the clients now.
	 */
	return strstr(why, "password") != NULL || strstr(why, "SCRAM") != NULL || strstr(why, "server_sslmode") != NULL ||
	       strstr(why, "28P01") != NULL || strstr(why, "28000") != NULL || strstr(why, "3D000") != NULL;
}

void pool_topology_changed(struct proxy *px)
{
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		/* Read-only: the standby left, lags, or a nearer one is usable again. */
		const char *why = p->ro ? "reads go to another standby now" : "the leader changed";
		char abandoned[64];
		snprintf(abandoned, sizeof(abandoned), "abandoned: %s", why);
		/* Idle servers to an old target go at once; busy ones when their transaction ends. */
		for (struct link *sl = p->idle.next; sl != &p->idle;) {
			struct server *s = link_entry(sl, struct server, node);
			sl = sl->next;
			if (!target_current(p, &s->target))
				server_close(s, why);
		}
		for (struct link *sl = p->active.next; sl != &p->active;) {
			struct server *s = link_entry(sl, struct server, node);
			sl = sl->next;
			if (target_current(p, &s->target) || s->stale)
				continue;
			s->stale = true;
			s->stale_ms = px->now_ms;
			/*
			 * A connection attempt to the old target is dropped at once: a frozen or
			 * cut-off leader would hold its clients until server_connect_timeout.
			 */
			if (s->state == SV_CONNECTING || s->state == SV_LOGIN)
				server_close(s, abandoned);
		}
		pool_open_servers(p);
	}
}

bool pool_held(const struct pool *p)
{
	return p->px->paused || (!p->ro && p->px->so_hold);
}
