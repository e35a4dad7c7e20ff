/*
 * failover.c — who may become the leader: dynamic config (pause, lag
 * limit), manual failover requests, whether this member may be promoted, and
 * the election poll.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/config_key.h"
#include "common/log.h"
#include "common/util.h"
#include "ha/election.h"
#include "ha/failover.h"
#include "pg/pgconf.h"

void failover_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	/* config: {"pause": true, "maximum_lag_on_failover": 1048576} */
	int64_t max_lag = a->cfg.maximum_lag_on_failover;
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->keys.config);
	struct dyncfg dc;
	struct pgha_err e;
	if (dyncfg_decode(kv ? kv->value : NULL, &dc, &e) != 0)
		log_warn_once("config json", a->keys.config, kv->mod_revision,
			      "ignoring %s: not a JSON object (%s)", a->keys.config, e.msg);
	bool paused = dc.set[DYNCFG_PAUSE] && dc.value[DYNCFG_PAUSE];
	if (dc.set[DYNCFG_MAX_LAG])
		max_lag = dc.value[DYNCFG_MAX_LAG];
	dyncfg_free(&dc);
	if (paused != a->fo.paused)
		log_warn("maintenance mode %s", paused ? "on: no automatic failover, no demotion" : "off");
	a->fo.paused = paused;
	a->fo.max_lag = max_lag;
	if (a->fencing.fence)
		fence_set_paused(a->fencing.fence, paused);

	/* failover: {"to": "node2"} */
	char to[MEMBER_NAME_MAX] = "";
	kv = etcd_kvs_find(kvs, a->keys.failover);
	struct failover_key fr;
	if (kv != NULL && failover_key_decode(kv->value, kv->value_len, &fr, &e) == 0)
		snprintf(to, sizeof(to), "%s", fr.to);
	else if (kv != NULL)
		log_warn_once("failover key", a->keys.failover, kv->mod_revision,
			      "ignoring %s: expected {\"to\": \"<member>\"} (%s)", a->keys.failover, e.msg);
	if (strcmp(to, a->fo.to) != 0 && to[0] != '\0')
		log_warn("manual failover requested to %s", to);
	snprintf(a->fo.to, sizeof(a->fo.to), "%s", to);

	/* The last position the leader published bounds how far behind a candidate may be. */
	const struct member *leader = view_leader(a);
	if (leader != NULL && strcmp(leader->name, a->cfg.name) != 0 && leader->wal_lsn > 0)
		a->fo.last_leader_lsn = leader->wal_lsn;
	/* The region an election prefers: the last leader's, kept after its record expired with it. */
	if (leader != NULL)
		snprintf(a->fo.last_leader_region, sizeof(a->fo.last_leader_region), "%s", leader->tags.region);
}

void failover_init(struct agent *a)
{
	a->fo.max_lag = a->cfg.maximum_lag_on_failover;
}

/* Promoted on a manual failover to this member: the request is done. */
void failover_request_done(struct agent *a)
{
	if (strcmp(a->fo.to, a->cfg.name) != 0)
		return;
	struct pgha_err e;
	if (etcd_delete(a->dcs.etcd, a->keys.failover, NULL, &e) != 0)
		log_warn("clearing the failover request: %s", e.msg);
	else
		log_info("manual failover to this member done");
	a->fo.to[0] = '\0';
}


/* Ask for a manual failover to `to`, on behalf of switchover `so_id`. */
void failover_request(struct agent *a, const char *to, const char *so_id)
{
	struct failover_key fk = {.to = ""};
	snprintf(fk.to, sizeof(fk.to), "%s", to);
	snprintf(fk.switchover, sizeof(fk.switchover), "%s", so_id);
	char *v = failover_key_encode(&fk);
	struct pgha_err e;
	if (etcd_put(a->dcs.etcd, a->keys.failover, v, 0, &e) != 0)
		log_warn("switchover %s: writing the failover key: %s", so_id, e.msg);
	else
		snprintf(a->fo.to, sizeof(a->fo.to), "%s", to);
	free(v);
}

bool failover_eligible(const struct agent *a)
{
	if (a->cfg.nofailover || a->cfg.priority <= 0 || !a->pg.have_st)
		return false;
	/* A synchronous standby has every acknowledged commit however far behind it is. */
	if (sync_allows_me(a))
		return true;
	uint64_t pos = a->pg.st.received_lsn > a->pg.st.replayed_lsn ? a->pg.st.received_lsn : a->pg.st.replayed_lsn;
	if (a->fo.last_leader_lsn > pos && (int64_t)(a->fo.last_leader_lsn - pos) > a->fo.max_lag) {
		log_warn("not eligible for promotion: %llu bytes behind the last known leader position "
			 "(maximum_lag_on_failover = %lld)",
			 (unsigned long long)(a->fo.last_leader_lsn - pos), (long long)a->fo.max_lag);
		return false;
	}
	return true;
}

enum ha_election failover_elect(const struct agent *a)
{
	struct ha_candidate me = {0};
	snprintf(me.name, sizeof(me.name), "%s", a->cfg.name);
	me.answered = me.settled = me.candidate = true;
	me.timeline = a->pg.st.timeline;
	me.lsn = a->pg.st.received_lsn > a->pg.st.replayed_lsn ? a->pg.st.received_lsn : a->pg.st.replayed_lsn;
	me.priority = a->cfg.priority;
	snprintf(me.region, sizeof(me.region), "%s", a->cfg.region);
	struct ha_candidate *others = NULL;
	size_t n = 0;
	int timeout = a->cfg.ttl_ms / 10 < 500 ? 500 : a->cfg.ttl_ms / 10;
	ha_poll_candidates(&a->view, a->cfg.name, agent_peer_tls(a), timeout > 2000 ? 2000 : timeout, &others, &n);
	/* Among equally advanced candidates, one in the old leader's region first. */
	const char *home = a->fo.last_leader_region;
	me.home_region = home[0] != '\0' && strcmp(me.region, home) == 0;
	for (size_t i = 0; i < n; i++)
		others[i].home_region = home[0] != '\0' && strcmp(others[i].region, home) == 0;
	const char *who = NULL;
	enum ha_rank r;
	size_t need = 0;
	if (sync_mode_active(a)) {
		/* Only the members the sync key lists compete; a listed standby hears from Q of them. */
		me.listed = sync_set_has(&a->sync.pub.set, me.name);
		me.sync_leader = strcmp(a->sync.pub.leader, me.name) == 0;
		me.has_position = true;
		need = me.sync_leader ? 0 : (size_t)a->sync.pub.set.num;
		for (size_t i = 0; i < n; i++) {
			others[i].listed = sync_set_has(&a->sync.pub.set, others[i].name);
			others[i].sync_leader = strcmp(a->sync.pub.leader, others[i].name) == 0;
		}
		r = ha_rank_sync(&me, others, n, need, &who);
	} else {
		r = ha_rank(&me, others, n, &who);
	}
	enum ha_election out = HA_ELECT_BEST;
	char pos[32];
	lsn_format(me.lsn, pos, sizeof(pos));
	if (r == HA_RANK_BEHIND) {
		log_info("election: %s is ahead of this member (timeline %u, %s); not racing", who, me.timeline, pos);
		out = HA_ELECT_BEHIND;
	} else if (r == HA_RANK_UNSETTLED) {
		log_info("election: %s has not seen the leader go yet; asking again", who);
		out = HA_ELECT_UNSETTLED;
	} else if (r == HA_RANK_NO_QUORUM) {
		log_info("election: synchronous mode needs answers from %zu of the synchronous standbys "
			 "(this one included) to be sure no acknowledged commit is missing; asking again", need);
		out = HA_ELECT_UNSETTLED;
	} else {
		size_t answered = 0;
		for (size_t i = 0; i < n; i++)
			answered += others[i].answered;
		log_info("election: this member is the most advanced that answered (timeline %u, %s, %zu of %zu "
			 "others answered)", me.timeline, pos, answered, n);
	}
	free(others);
	return out;
}
