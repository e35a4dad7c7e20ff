/*
 * failover.c — the observations automatic failover needs, kept out of the
 * main loop file: dynamic config (pause, lag limit), manual failover requests,
 * the leader's fencing deadline and failsafe pings, crash bookkeeping,
 * divergence from the leader's timeline, and the election poll.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/config_key.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"
#include "ha/election.h"
#include "ha/failover.h"
#include "ha/switchover.h"
#include "pg/pgconf.h"

/* Fence this long before a lease of ttl_ms could expire at etcd. */
static int64_t fence_margin_ms(const struct agent *a, int64_t ttl_ms)
{
	int64_t m = ttl_ms / 4;
	return m < a->cfg.retry_timeout_ms ? m : a->cfg.retry_timeout_ms;
}

/* The fence deadline: when the lease the leader key is under could expire, less the margin. */
static int64_t lease_fence_at(const struct agent *a)
{
	int64_t ttl = a->lease_ttl_ms > 0 ? a->lease_ttl_ms : a->cfg.ttl_ms;
	return a->renew_sent_ms + ttl - fence_margin_ms(a, ttl);
}

void failover_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	/* config: {"pause": true, "maximum_lag_on_failover": 1048576} */
	int64_t max_lag = a->cfg.maximum_lag_on_failover;
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->key_config);
	struct dyncfg dc;
	struct pgha_err e;
	if (dyncfg_decode(kv ? kv->value : NULL, &dc, &e) != 0)
		log_warn_once("config json", a->key_config, kv->mod_revision,
			      "ignoring %s: not a JSON object (%s)", a->key_config, e.msg);
	bool paused = dc.set[DYNCFG_PAUSE] && dc.value[DYNCFG_PAUSE];
	if (dc.set[DYNCFG_MAX_LAG])
		max_lag = dc.value[DYNCFG_MAX_LAG];
	dyncfg_free(&dc);
	if (paused != a->paused)
		log_warn("maintenance mode %s", paused ? "on: no automatic failover, no demotion" : "off");
	a->paused = paused;
	a->max_lag = max_lag;
	if (a->fence)
		fence_set_paused(a->fence, paused);

	/* failover: {"to": "node2"} */
	char to[MEMBER_NAME_MAX] = "";
	kv = etcd_kvs_find(kvs, a->key_failover);
	struct failover_request fr;
	if (kv != NULL && failover_request_decode(kv->value, kv->value_len, &fr, &e) == 0)
		snprintf(to, sizeof(to), "%s", fr.to);
	else if (kv != NULL)
		log_warn_once("failover key", a->key_failover, kv->mod_revision,
			      "ignoring %s: expected {\"to\": \"<member>\"} (%s)", a->key_failover, e.msg);
	if (strcmp(to, a->failover_to) != 0 && to[0] != '\0')
		log_warn("manual failover requested to %s", to);
	snprintf(a->failover_to, sizeof(a->failover_to), "%s", to);

	sync_read_dcs(a, kvs);
	switchover_read_dcs(a, kvs);

	/* The last position the leader published bounds how far behind a candidate may be. */
	const struct member *leader = agent_leader_member(a);
	if (leader != NULL && strcmp(leader->name, a->cfg.name) != 0 && leader->wal_lsn > 0)
		a->last_leader_lsn = leader->wal_lsn;
}

bool failover_is_primary(const struct agent *a)
{
	return a->phase == PG_RUNNING && a->have_st && !a->st.in_recovery;
}

/* Time for a graceful demote: one loop before the fence would kill PostgreSQL. */
bool failover_lease_expiring(const struct agent *a)
{
	return now_ms() >= lease_fence_at(a) - a->cfg.loop_wait_ms - 500;
}

void failover_arm_fence(struct agent *a)
{
	if (a->fence == NULL || a->pg_pid <= 0)
		return;
	fence_arm(a->fence, a->pg_pid, lease_fence_at(a));
}

/* After each loop's etcd read: keep the fence deadline in step with the lease. */
void failover_update_fence(struct agent *a)
{
	if (a->fence == NULL || !a->dcs_ok)
		return;   /* without etcd the deadline runs out unless failsafe extends it */
	bool mine = a->view.leader && strcmp(a->view.leader, a->cfg.name) == 0 &&
		    a->view.leader_lease == a->lease;
	if (mine && (failover_is_primary(a) || a->phase == PG_STARTING))
		failover_arm_fence(a);
	else if (!mine)
		fence_disarm(a->fence);
}

/*
 * etcd is unreachable and we run as the leader's primary: ask every member
 * whether it can reach etcd. Only if none can (so nobody can be elected) may
 * we stay primary, until one TTL after the round started.
 */
void failover_failsafe_round(struct agent *a)
{
	bool was_ok = a->failsafe_ok;
	a->failsafe_ok = false;
	if (a->dcs_ok || !a->cfg.failsafe || !failover_is_primary(a) || a->view.leader == NULL ||
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
	a->failsafe_ok = true;
	fence_arm(a->fence, a->pg_pid, t0 + a->cfg.ttl_ms - fence_margin_ms(a, a->cfg.ttl_ms));
	if (!was_ok)
		log_warn("failsafe: etcd is unreachable, but all %zu other members answered and none reaches "
			 "etcd: staying primary", n);
}

bool failover_failsafe_hold(struct agent *a)
{
	pthread_mutex_lock(&a->api.lock);
	bool hold = now_ms() < a->api.failsafe_until_ms;
	pthread_mutex_unlock(&a->api.lock);
	return hold;
}

void failover_note_crash(struct agent *a)
{
	int64_t now = now_ms();
	if (a->crash_first_ms == 0)
		a->crash_first_ms = now;
	a->crash_count++;
}

/* Forget an old crash once PostgreSQL has run well for a while. */
void failover_note_running(struct agent *a)
{
	if (a->phase != PG_RUNNING) {
		a->running_since_ms = 0;
		return;
	}
	int64_t now = now_ms();
	if (a->running_since_ms == 0)
		a->running_since_ms = now;
	if (a->crash_first_ms != 0 && now - a->running_since_ms > 30000) {
		a->crash_first_ms = 0;
		a->crash_count = 0;
	}
}

bool failover_restart_exhausted(const struct agent *a)
{
	if (a->crash_first_ms == 0)
		return false;
	return now_ms() - a->crash_first_ms > a->cfg.crash_restart_timeout_ms || a->crash_count > 3;
}

bool failover_eligible(const struct agent *a)
{
	if (a->cfg.nofailover || a->cfg.priority <= 0 || !a->have_st)
		return false;
	/* A synchronous standby has every acknowledged commit however far behind it is. */
	if (sync_allows_me(a))
		return true;
	uint64_t pos = a->st.received_lsn > a->st.replayed_lsn ? a->st.received_lsn : a->st.replayed_lsn;
	if (a->last_leader_lsn > pos && (int64_t)(a->last_leader_lsn - pos) > a->max_lag) {
		log_warn("not eligible for promotion: %llu bytes behind the last known leader position "
			 "(maximum_lag_on_failover = %lld)",
			 (unsigned long long)(a->last_leader_lsn - pos), (long long)a->max_lag);
		return false;
	}
	return true;
}

/*
 * What the stopped data directory's check depends on: the leader (name and
 * published timeline) and the data (pg_controldata). A check made for another
 * key says nothing about this one.
 */
static void history_key(const struct agent *a, const struct member *leader, char *out, size_t len)
{
	snprintf(out, len, "%s/%u/%s/%u/%llx/%u/%llx/%s", leader->name, leader->timeline, a->data.system_id,
		 a->data.timeline, (unsigned long long)a->data.checkpoint_lsn, a->data.min_recovery_tli,
		 (unsigned long long)a->data.min_recovery_lsn, a->data.cluster_state);
}

/*
 * Does our WAL leave the leader's history? Asked of a stopped data directory
 * before it may start as a standby (until a check succeeds for this leader and
 * this data, the history is unknown and decide waits: a diverged directory
 * must never serve reads), and of a running standby that stopped streaming.
 * The leader's timeline history comes over a replication connection
 * (IDENTIFY_SYSTEM + TIMELINE_HISTORY).
 */
void failover_check_divergence(struct agent *a)
{
	const struct member *leader = agent_leader_member(a);
	if (leader == NULL || strcmp(leader->name, a->cfg.name) == 0 || !a->dcs_ok) {
		a->not_streaming_since_ms = 0;
		return;
	}
	int64_t now = now_ms();
	uint32_t my_tli = 0;
	uint64_t my_lsn = 0;
	bool stopped = a->phase == PG_STOPPED && a->data.kind == PG_DATA_VALID && a->job.kind == JOB_NONE;
	char key[sizeof(a->history_key)];
	if (stopped) {
		history_key(a, leader, key, sizeof(key));
		if (strcmp(key, a->history_key) != 0) {
			/* Another leader or other data: nothing is known until checked. */
			snprintf(a->history_key, sizeof(a->history_key), "%s", key);
			a->history = HA_HIST_UNKNOWN;
		} else if (a->history != HA_HIST_UNKNOWN || now - a->divergence_checked_ms < 1000) {
			return;   /* known for this leader and this data, or failed a moment ago */
		}
	} else if (a->phase == PG_RUNNING && a->have_st && a->st.in_recovery && !a->st.streaming) {
		a->history_key[0] = '\0';
		if (a->not_streaming_since_ms == 0)
			a->not_streaming_since_ms = now;
		if (now - a->not_streaming_since_ms < 3000 || now - a->divergence_checked_ms < 5000)
			return;
		my_tli = a->st.timeline;
		my_lsn = a->st.received_lsn > a->st.replayed_lsn ? a->st.received_lsn : a->st.replayed_lsn;
	} else {
		a->history_key[0] = '\0';
		if (a->phase == PG_RUNNING && a->have_st && a->st.streaming)
			a->not_streaming_since_ms = 0;
		return;
	}
	a->divergence_checked_ms = now;
	char *ci = agent_leader_conninfo(a, leader);
	uint32_t leader_tli = 0;
	uint64_t leader_lsn = 0;
	char *history = NULL;
	struct pgha_err e;
	if (pg_remote_timeline(ci, &leader_tli, &leader_lsn, &history, &e) != 0) {
		log_warn("checking the leader's timeline: %s", e.msg);
		free(ci);
		return;
	}
	bool crashed_primary = false;
	bool diverged;
	if (stopped) {
		my_tli = a->data.timeline;
		my_lsn = a->data.checkpoint_lsn > a->data.min_recovery_lsn ? a->data.checkpoint_lsn
									     : a->data.min_recovery_lsn;
		crashed_primary = strcmp(a->data.cluster_state, "in production") == 0;
		diverged = pg_data_diverged(history, leader_tli, &a->data);
	} else {
		diverged = pg_timeline_diverged(history, leader_tli, my_tli, my_lsn);
	}
	if (diverged && a->history != HA_HIST_DIVERGED) {
		char mine[32], theirs[32];
		lsn_format(my_lsn, mine, sizeof(mine));
		lsn_format(leader_lsn, theirs, sizeof(theirs));
		log_warn("this member (timeline %u, %s) is not on the history of leader %s (timeline %u, %s)%s",
			 my_tli, mine, leader->name, leader_tli, theirs,
			 crashed_primary ? "; it was a primary that did not shut down cleanly" : "");
	}
	a->history = diverged ? HA_HIST_DIVERGED : HA_HIST_ON;
	free(history);
	free(ci);
}

enum ha_election failover_elect(struct agent *a)
{
	struct ha_candidate me = {0};
	snprintf(me.name, sizeof(me.name), "%s", a->cfg.name);
	me.answered = me.settled = me.candidate = true;
	me.timeline = a->st.timeline;
	me.lsn = a->st.received_lsn > a->st.replayed_lsn ? a->st.received_lsn : a->st.replayed_lsn;
	me.priority = a->cfg.priority;
	struct ha_candidate *others = NULL;
	size_t n = 0;
	int timeout = a->cfg.ttl_ms / 10 < 500 ? 500 : a->cfg.ttl_ms / 10;
	ha_poll_candidates(&a->view, a->cfg.name, timeout > 2000 ? 2000 : timeout, &others, &n);
	const char *who = NULL;
	enum ha_rank r;
	size_t need = 0;
	if (sync_mode_active(a)) {
		/* Only the members the sync key lists compete; a listed standby hears from Q of them. */
		me.listed = sync_set_has(&a->sync.set, me.name);
		me.sync_leader = strcmp(a->sync.leader, me.name) == 0;
		me.has_position = true;
		need = me.sync_leader ? 0 : (size_t)a->sync.set.num;
		for (size_t i = 0; i < n; i++) {
			others[i].listed = sync_set_has(&a->sync.set, others[i].name);
			others[i].sync_leader = strcmp(a->sync.leader, others[i].name) == 0;
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
		log_info("election: this member is the most advanced that answered (timeline %u, %s, %zu others asked)",
			 me.timeline, pos, n);
	}
	free(others);
	return out;
}
