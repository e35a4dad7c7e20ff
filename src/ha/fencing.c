/*
 * fencing.c — when the leader's PostgreSQL must be fenced (ha/fence.h kills
 * it): the deadline follows the lease the leader key is under, renewed each
 * loop, or, while etcd is unreachable, a failsafe round in which every other
 * member said it cannot reach etcd either.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"

int fencing_start(struct agent *a, struct pgha_err *e)
{
	a->fencing.fence = fence_start(e);
	return a->fencing.fence != NULL ? 0 : -1;
}

void fencing_stop(struct agent *a)
{
	if (a->fencing.fence) {
		fence_stop(a->fencing.fence);
		a->fencing.fence = NULL;
	}
}

/* Fence this long before a lease of ttl_ms could expire at etcd. */
static int64_t fence_margin_ms(const struct agent *a, int64_t ttl_ms)
{
	int64_t m = ttl_ms / 4;
	return m < a->cfg.retry_timeout_ms ? m : a->cfg.retry_timeout_ms;
}

/* The fence deadline: when the lease the leader key is under could expire, less the margin. */
static int64_t lease_fence_at(const struct agent *a)
{
	int64_t ttl = a->dcs.lease_ttl_ms > 0 ? a->dcs.lease_ttl_ms : a->cfg.ttl_ms;
	return a->dcs.renew_sent_ms + ttl - fence_margin_ms(a, ttl);
}

/* Time for a graceful demote: one loop before the fence would kill PostgreSQL. */
bool fencing_lease_expiring(const struct agent *a, int64_t now)
{
	return now >= lease_fence_at(a) - a->cfg.loop_wait_ms - 500;
}

void fencing_arm(struct agent *a)
{
	if (a->fencing.fence == NULL || a->pg.pid <= 0)
		return;
	fence_arm(a->fencing.fence, a->pg.pid, lease_fence_at(a));
}

/* After each loop's etcd read: keep the fence deadline in step with the lease. */
void fencing_update(struct agent *a)
{
	if (a->fencing.fence == NULL || !a->dcs.ok)
		return;   /* without etcd the deadline runs out unless failsafe extends it */
	bool mine = a->view.leader && strcmp(a->view.leader, a->cfg.name) == 0 &&
		    a->view.leader_lease == a->dcs.lease;
	/* A standby cluster's leader runs a standby: nothing to fence once it is seen in recovery. */
	bool standby_leader = mine && view_standby_cluster(a) && a->pg.phase == PG_RUNNING && a->pg.have_st &&
			      a->pg.st.in_recovery && !a->act.promoting;
	if (mine && !standby_leader && (node_is_primary(a) || a->pg.phase == PG_STARTING))
		fencing_arm(a);
	else if (!mine || standby_leader)
		fence_disarm(a->fencing.fence);
}

/*
 * etcd is unreachable and we run as the leader's primary: ask every member
 * whether it can reach etcd. Only if none can (so nobody can be elected) may
 * we stay primary, until one TTL after the round started.
 *
 * With the API on HTTPS the calls verify the member's certificate, and a
 * member whose record gives a plain http:// api_url is not called at all
 * (httpc refuses it): the bearer token must not travel in clear text because
 * someone wrote the record. That member counts as one that did not answer,
 * so this leader demotes rather than staying primary on an unproven round:
 * the safe side, since failsafe only ever keeps a primary when every member
 * vouched that none of them can take over.
 */
void fencing_failsafe_round(struct agent *a)
{
	bool was_ok = a->fencing.failsafe_ok;
	a->fencing.failsafe_ok = false;
	if (a->dcs.ok || !a->cfg.failsafe || !node_is_primary(a) || a->view.leader == NULL ||
	    strcmp(a->view.leader, a->cfg.name) != 0)
		return;
	int64_t t0 = now_ms();
	size_t n = 0;
	struct httpc_req *reqs = xcalloc(a->view.nmembers ? a->view.nmembers : 1, sizeof(*reqs));
	char **urls = xcalloc(a->view.nmembers ? a->view.nmembers : 1, sizeof(*urls));
	char *body = xasprintf("{\"leader\":\"%s\"}", a->cfg.name);
	for (size_t i = 0; i < a->view.nmembers; i++) {
		const struct member *m = &a->view.members[i];
		if (strcmp(m->name, a->cfg.name) == 0 || m->api_url[0] == '\0')
			continue;
		urls[n] = xasprintf("%s/failsafe", m->api_url);
		reqs[n].url = urls[n];
		reqs[n].body = body;
		reqs[n].bearer = a->api_token;
		reqs[n].tls = agent_peer_tls(a);
		n++;
	}
	int timeout = a->cfg.loop_wait_ms < 1000 ? 1000 : a->cfg.loop_wait_ms;
	httpc_run(reqs, n, timeout);
	bool all = true;
	for (size_t i = 0; i < n; i++) {
		if (reqs[i].status != 200) {
			if (all)
				log_warn("failsafe: %s said no (%s)", reqs[i].url,
					 reqs[i].status ? sb_str(&reqs[i].resp) : reqs[i].error);
			all = false;
		}
		sb_free(&reqs[i].resp);
		free(urls[i]);
	}
	free(urls);
	free(reqs);
	free(body);
	if (!all)
		return;
	a->fencing.failsafe_ok = true;
	fence_arm(a->fencing.fence, a->pg.pid, t0 + a->cfg.ttl_ms - fence_margin_ms(a, a->cfg.ttl_ms));
	if (!was_ok)
		log_warn("failsafe: etcd is unreachable, but all %zu other members answered and none reaches "
			 "etcd: staying primary", n);
}

bool fencing_failsafe_hold(struct agent *a)
{
	pthread_mutex_lock(&a->api.lock);
	bool hold = now_ms() < a->api.failsafe_until_ms;
	pthread_mutex_unlock(&a->api.lock);
	return hold;
}
