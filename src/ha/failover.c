/*
 * failover.c — the observations automatic failover needs: dynamic config
 * (pause, lag limit), manual failover requests, crash bookkeeping, divergence
 * from the leader's timeline, and the election poll.
 */
#include "ha/agent_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "ha/election.h"
#include "ha/failover.h"
#include "pg/pgconf.h"

void failover_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	/* config: {"pause": true, "maximum_lag_on_failover": 1048576} */
	bool paused = false;
	int64_t max_lag = a->cfg.maximum_lag_on_failover;
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->key_config);
	if (kv != NULL) {
		json_error_t jerr;
		json_t *o = json_loads(kv->value, 0, &jerr);
		if (json_is_object(o)) {
			paused = json_is_true(json_object_get(o, "pause"));
			json_t *l = json_object_get(o, "maximum_lag_on_failover");
			if (json_is_integer(l) && json_integer_value(l) >= 0)
				max_lag = json_integer_value(l);
		} else {
			log_warn_once("config json", a->key_config, kv->mod_revision,
				      "ignoring %s: not a JSON object (%s)", a->key_config, jerr.text);
		}
		json_decref(o);
	}
	if (paused != a->paused)
		log_warn("maintenance mode %s", paused ? "on: no automatic failover, no demotion" : "off");
	a->paused = paused;
	a->max_lag = max_lag;
	if (a->fence)
		fence_set_paused(a->fence, paused);

	/* failover: {"to": "node2"} */
	char to[MEMBER_NAME_MAX] = "";
	kv = etcd_kvs_find(kvs, a->key_failover);
	if (kv != NULL) {
		json_error_t jerr;
		json_t *o = json_loads(kv->value, 0, &jerr);
		json_t *t = json_is_object(o) ? json_object_get(o, "to") : NULL;
		if (json_is_string(t))
			snprintf(to, sizeof(to), "%s", json_string_value(t));
		else
			log_warn_once("failover key", a->key_failover, kv->mod_revision,
				      "ignoring %s: expected {\"to\": \"<member>\"}", a->key_failover);
		json_decref(o);
	}
	if (strcmp(to, a->failover_to) != 0 && to[0] != '\0')
		log_warn("manual failover requested to %s", to);
	snprintf(a->failover_to, sizeof(a->failover_to), "%s", to);

	/* The last position the leader published bounds how far behind a candidate may be. */
	const struct member *leader = view_leader(a);
	if (leader != NULL && strcmp(leader->name, a->cfg.name) != 0 && leader->wal_lsn > 0)
		a->last_leader_lsn = leader->wal_lsn;
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
	const struct member *leader = view_leader(a);
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
	char *ci = view_leader_conninfo(a, leader);
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
