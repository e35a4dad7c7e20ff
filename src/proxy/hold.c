/*
 * hold.c — the proxy's part in a planned switchover.
 *
 * The routing thread follows <cluster>/switchover (cluster/switchover.h). While
 * its phase is pausing, demoting or promoting, new read-write transactions
 * wait (read-only ports go on); running ones finish. Once no read-write
 * server is busy, this proxy says so in its record (proxies/<name>:
 * paused_for = the switchover's id), which the leader waits for before it
 * stops. Session-mode clients on the read-write port cannot move to the new
 * leader with their session: each is told why and disconnected at its next
 * transaction boundary. When the phase is done or aborted (or the record
 * goes), the waiting transactions go on, to whichever leader etcd names.
 *
 * A proxy never holds longer than [proxy] switchover_hold for one
 * switchover, whatever etcd says: an agent that died mid-way cannot stall
 * the clients for good.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "proxy/hold.h"
#include "proxy/relay.h"

static void publish_record(struct proxy *px)
{
	struct proxy_record rec;
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.name, sizeof(rec.name), "%s", px->cfg.name);
	rec.pid = (int)getpid();
	snprintf(rec.listen, sizeof(rec.listen), "%s", px->cfg.listen);
	snprintf(rec.listen_ro, sizeof(rec.listen_ro), "%s", px->cfg.listen_ro);
	snprintf(rec.region, sizeof(rec.region), "%s", px->cfg.region);
	snprintf(rec.zone, sizeof(rec.zone), "%s", px->cfg.zone);
	if (px->so_hold && px->so_drained)
		snprintf(rec.paused_for, sizeof(rec.paused_for), "%s", px->so.id);
	/* The client count is informative: refreshed with the record, not on every connect. */
	rec.clients = px->so_clients_published;
	rec.waiting = px->so_waiting_published;
	rec.pools = px->so_pools_published;
	route_set_record(px->route, &rec);
}

/* A read-write server busy for a client: c, on the first of them; NULL: none. */
static struct client *rw_busy(struct proxy *px, bool sessions_at_boundary_only)
{
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		if (p->ro)
			continue;
		for (struct link *sl = p->active.next; sl != &p->active; sl = sl->next) {
			struct server *s = link_entry(sl, struct server, node);
			struct client *c = s->client;
			if (c == NULL)
				continue;
			/* A session: the session mode's, or a transaction-mode client its state pins. */
			if (sessions_at_boundary_only && px->cfg.pool_mode != POOL_SESSION && c->pinned == NULL)
				continue;
			if (!sessions_at_boundary_only ||
			    (s->status == 'I' && relay_idle(c) && pbuf_len(&c->in) == 0))
				return c;
		}
	}
	return NULL;
}

struct client *hold_session_to_end(struct proxy *px, char *why, size_t whylen)
{
	if (!px->so_hold || px->so_drained)
		return NULL;
	struct client *c = rw_busy(px, true);
	if (c != NULL)
		snprintf(why, whylen, "planned switchover of the leader from %s to %s: this session ends; reconnect "
			 "(new sessions go to the new leader)", px->so.from, px->so.to);
	return c;
}

void hold_check(struct proxy *px)
{
	if (!px->so_hold || px->so_drained)
		return;
	if (rw_busy(px, false) != NULL)
		return;
	px->so_drained = true;
	log_info("switchover %s: no read-write transaction running after %lld ms: paused, reported in etcd",
		 px->so.id, (long long)(px->now_ms - px->so_since_ms));
	publish_record(px);
}

static void release(struct proxy *px, const char *why)
{
	log_info("switchover %s: %s: read-write transactions go on (held %lld ms)", px->so.id, why,
		 (long long)(px->now_ms - px->so_since_ms));
	px->so_hold = false;
	px->so_drained = false;
	publish_record(px);
}

bool hold_topology(struct proxy *px)
{
	const struct topology *t = &px->topo;
	bool want = t->has_switchover && so_phase_holds(t->so.phase) &&
		    strcmp(t->so.id, px->so_given_up) != 0;
	if (want && !px->so_hold) {
		px->so = t->so;
		px->so_hold = true;
		px->so_drained = false;
		px->so_since_ms = px->now_ms;
		log_info("switchover %s from %s to %s (%s): holding new read-write transactions", t->so.id,
			 t->so.from, t->so.to, so_phase_name(t->so.phase));
		hold_check(px);
		return false;
	}
	if (want && strcmp(t->so.id, px->so.id) != 0) {
		/* Another switchover replaced the one we held for: the caller resumes, then calls again. */
		release(px, "replaced by another switchover");
		return true;
	}
	if (want) {
		px->so.phase = t->so.phase;
		return false;
	}
	if (!px->so_hold)
		return false;
	release(px, t->has_switchover ? so_phase_name(t->so.phase) : "the switchover record is gone");
	return true;
}

bool hold_tick(struct proxy *px)
{
	bool released = false;
	if (px->so_hold && px->now_ms - px->so_since_ms > px->cfg.switchover_hold_ms) {
		log_warn("switchover %s: still %s after switchover_hold = %d ms: resuming anyway", px->so.id,
			 so_phase_name(px->so.phase), px->cfg.switchover_hold_ms);
		snprintf(px->so_given_up, sizeof(px->so_given_up), "%s", px->so.id);
		release(px, "gave up holding");
		released = true;
	}
	hold_check(px);
	/* Register at start, then refresh the client count now and then. */
	if (!px->record_published || px->now_ms - px->record_ms >= 10000) {
		px->record_published = true;
		px->record_ms = px->now_ms;
		px->so_clients_published = px->nclients;
		px->so_waiting_published = 0;
		px->so_pools_published = 0;
		for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
			px->so_pools_published++;
			px->so_waiting_published += link_entry(l, struct pool, node)->nwaiting;
		}
		publish_record(px);
	}
	return released;
}
