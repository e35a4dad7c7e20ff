/*
 * divergence.c — is this member's WAL on the leader's history? Checked over a
 * replication connection to the leader; decide reads the answer (a->div).
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "pg/pgconf.h"

/*
 * What the stopped data directory's check depends on: the leader (name and
 * published timeline) and the data (pg_controldata). A check made for another
 * key says nothing about this one.
 */
static void history_key(const struct agent *a, const struct member *leader, char *out, size_t len)
{
	snprintf(out, len, "%s/%u/%s/%u/%llx/%u/%llx/%s", leader->name, leader->timeline, a->pg.data.system_id,
		 a->pg.data.timeline, (unsigned long long)a->pg.data.checkpoint_lsn, a->pg.data.min_recovery_tli,
		 (unsigned long long)a->pg.data.min_recovery_lsn, a->pg.data.cluster_state);
}

/*
 * Does our WAL leave the leader's history? Asked of a stopped data directory
 * before it may start as a standby (until a check succeeds for this leader and
 * this data, the history is unknown and decide waits: a diverged directory
 * must never serve reads), and of a running standby that stopped streaming.
 * The leader's timeline history comes over a replication connection
 * (IDENTIFY_SYSTEM + TIMELINE_HISTORY).
 */
void divergence_check(struct agent *a)
{
	const struct member *leader = view_leader(a);
	if (leader == NULL || strcmp(leader->name, a->cfg.name) == 0 || !a->dcs.ok) {
		a->div.not_streaming_since_ms = 0;
		return;
	}
	int64_t now = now_ms();
	uint32_t my_tli = 0;
	uint64_t my_lsn = 0;
	bool stopped = a->pg.phase == PG_STOPPED && a->pg.data.kind == PG_DATA_VALID && a->job.kind == JOB_NONE;
	char key[sizeof(a->div.key)];
	if (stopped) {
		history_key(a, leader, key, sizeof(key));
		if (strcmp(key, a->div.key) != 0) {
			/* Another leader or other data: nothing is known until checked. */
			snprintf(a->div.key, sizeof(a->div.key), "%s", key);
			a->div.history = HA_HIST_UNKNOWN;
		} else if (a->div.history != HA_HIST_UNKNOWN || now - a->div.checked_ms < 1000) {
			return;   /* known for this leader and this data, or failed a moment ago */
		}
	} else if (a->pg.phase == PG_RUNNING && a->pg.have_st && a->pg.st.in_recovery && !a->pg.st.streaming) {
		a->div.key[0] = '\0';
		if (a->div.not_streaming_since_ms == 0)
			a->div.not_streaming_since_ms = now;
		if (now - a->div.not_streaming_since_ms < 3000 || now - a->div.checked_ms < 5000)
			return;
		my_tli = a->pg.st.timeline;
		my_lsn = a->pg.st.received_lsn > a->pg.st.replayed_lsn ? a->pg.st.received_lsn : a->pg.st.replayed_lsn;
	} else {
		a->div.key[0] = '\0';
		if (a->pg.phase == PG_RUNNING && a->pg.have_st && a->pg.st.streaming)
			a->div.not_streaming_since_ms = 0;
		return;
	}
	a->div.checked_ms = now;
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
		my_tli = a->pg.data.timeline;
		my_lsn = a->pg.data.checkpoint_lsn > a->pg.data.min_recovery_lsn ? a->pg.data.checkpoint_lsn
									     : a->pg.data.min_recovery_lsn;
		crashed_primary = strcmp(a->pg.data.cluster_state, "in production") == 0;
		diverged = pg_data_diverged(history, leader_tli, &a->pg.data);
	} else {
		diverged = pg_timeline_diverged(history, leader_tli, my_tli, my_lsn);
	}
	if (diverged && a->div.history != HA_HIST_DIVERGED) {
		char mine[32], theirs[32];
		lsn_format(my_lsn, mine, sizeof(mine));
		lsn_format(leader_lsn, theirs, sizeof(theirs));
		log_warn("this member (timeline %u, %s) is not on the history of leader %s (timeline %u, %s)%s",
			 my_tli, mine, leader->name, leader_tli, theirs,
			 crashed_primary ? "; it was a primary that did not shut down cleanly" : "");
	}
	a->div.history = diverged ? HA_HIST_DIVERGED : HA_HIST_ON;
	free(history);
	free(ci);
}


/* A clone or a rewind changed the data: check it again before it starts. */
void divergence_unknown(struct agent *a)
{
	a->div.history = HA_HIST_UNKNOWN;
}

/* The data was moved aside: nothing left to diverge until a clone. */
void divergence_reset(struct agent *a)
{
	a->div.history = HA_HIST_ON;
	a->div.key[0] = '\0';
}
