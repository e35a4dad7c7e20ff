/*
 * divergence.c — is this member's WAL on the leader's history? Checked over a
 * replication connection to the leader when divergence_due (pure) says so;
 * decide reads the answer (a->div.history).
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
	/* leader NULL: a standby leader's check against the primary cluster. */
	snprintf(out, len, "%s/%u/%s/%u/%llx/%u/%llx/%s", leader ? leader->name : "[standby_cluster]",
		 leader ? leader->timeline : 0, a->pg.data.system_id,
		 a->pg.data.timeline, (unsigned long long)a->pg.data.checkpoint_lsn, a->pg.data.min_recovery_tli,
		 (unsigned long long)a->pg.data.min_recovery_lsn, a->pg.data.cluster_state);
}

bool divergence_due(struct agent_divergence *d, enum div_situation s, const char *key, int64_t now)
{
	switch (s) {
	case DIV_NO_LEADER:
		d->not_streaming_since_ms = 0;
		return false;
	case DIV_STOPPED:
		if (strcmp(key, d->key) != 0) {
			/* Another leader or other data: nothing is known until checked. */
			snprintf(d->key, sizeof(d->key), "%s", key);
			d->history = HA_HIST_UNKNOWN;
		} else if (d->history != HA_HIST_UNKNOWN || now - d->checked_ms < 1000) {
			return false;   /* known for this leader and this data, or failed a moment ago */
		}
		break;
	case DIV_NOT_STREAMING:
		d->key[0] = '\0';
		if (d->not_streaming_since_ms == 0)
			d->not_streaming_since_ms = now;
		if (now - d->not_streaming_since_ms < 3000 || now - d->checked_ms < 5000)
			return false;
		break;
	case DIV_STREAMING:
		d->not_streaming_since_ms = 0;
		d->key[0] = '\0';
		return false;
	case DIV_OTHER:
		d->key[0] = '\0';
		return false;
	}
	d->checked_ms = now;
	return true;
}

/*
 * Does our WAL leave the leader's history? Asked of a stopped data directory
 * before it may start as a standby (until a check succeeds for this leader and
 * this data, the history is unknown and decide waits: a diverged directory
 * must never serve reads), and of a running standby that stopped streaming.
 * The leader's timeline history comes over a replication connection
 * (IDENTIFY_SYSTEM + TIMELINE_HISTORY).
 */
/*
 * The data directory ran as a primary (or is a fresh copy of one): shut down
 * or stopped in production, not in recovery.
 */
static bool data_was_primary(const struct agent *a)
{
	return strcmp(a->pg.data.cluster_state, "shut down") == 0 ||
	       strcmp(a->pg.data.cluster_state, "in production") == 0;
}

/*
 * A standby leader could not ask the primary cluster. Its hosts answered,
 * only none is a primary (libpq's "session is read-only": mid-switchover, or
 * between a failover's two steps): there is no other history to have left
 * yet. Or they did not answer: a data directory that ran as a standby only
 * starts anyway (the standby cluster serves reads through a region outage);
 * one that ran as a primary waits (it may hold writes the primary cluster
 * never got). A running standby that stops streaming is checked again.
 */
static void primary_cluster_unknown(struct agent *a, bool stopped, const char *why)
{
	bool no_primary = strstr(why, "session is read-only") != NULL || strstr(why, "hot standby") != NULL;
	if (!stopped || (!no_primary && data_was_primary(a))) {
		if (strncmp(a->div.warned, why, sizeof(a->div.warned) - 1) != 0)
			log_warn("standby leader: cannot check this member's WAL against the primary cluster's history "
				 "(asked again every few seconds): %s", why);
		snprintf(a->div.warned, sizeof(a->div.warned), "%.255s", why);
		return;
	}
	a->div.warned[0] = '\0';
	if (a->div.history != HA_HIST_ON)
		log_info("standby leader: %s: starting as a standby on this data", no_primary ?
			 "the primary cluster has no primary right now (its hosts answer read-only)" :
			 "the primary cluster does not answer and this data ran as a standby only");
	a->div.history = HA_HIST_ON;
}

void divergence_check(struct agent *a)
{
	const struct member *leader = view_leader(a);
	bool stopped = a->pg.phase == PG_STOPPED && a->pg.data.kind == PG_DATA_VALID && a->job.kind == JOB_NONE;
	bool running = a->pg.phase == PG_RUNNING && a->pg.have_st;
	char key[sizeof(a->div.key)] = "";
	enum div_situation s;
	/* A standby cluster's leader compares with the primary cluster. */
	bool sc_leader = leader != NULL && strcmp(leader->name, a->cfg.name) == 0 && view_standby_cluster(a);
	/* During an in-place restore the leader's data is being replaced: ask once it is done. */
	if (leader == NULL || (strcmp(leader->name, a->cfg.name) == 0 && !sc_leader) || !a->dcs.ok || a->rip.active)
		s = DIV_NO_LEADER;
	else if (stopped)
		s = DIV_STOPPED;
	else if (running && a->pg.st.in_recovery && !a->pg.st.streaming)
		s = DIV_NOT_STREAMING;
	else if (running && a->pg.st.streaming)
		s = DIV_STREAMING;
	else
		s = DIV_OTHER;
	if (s == DIV_STOPPED)
		history_key(a, sc_leader ? NULL : leader, key, sizeof(key));
	if (!divergence_due(&a->div, s, key, now_ms()))
		return;
	uint32_t my_tli = 0;
	uint64_t my_lsn = 0;
	if (!stopped) {
		my_tli = a->pg.st.timeline;
		my_lsn = a->pg.st.received_lsn > a->pg.st.replayed_lsn ? a->pg.st.received_lsn : a->pg.st.replayed_lsn;
	}
	char slot[64];
	char *ci = sc_leader ? view_primary_cluster_conninfo(a, slot, sizeof(slot)) : view_leader_conninfo(a, leader);
	const char *whose = sc_leader ? "the primary cluster" : leader->name;
	uint32_t leader_tli = 0;
	uint64_t leader_lsn = 0;
	char *history = NULL;
	struct pgha_err e;
	if (pg_remote_timeline(ci, &leader_tli, &leader_lsn, &history, &e) == 0) {
		a->div.warned[0] = '\0';
	} else {
		if (sc_leader)
			primary_cluster_unknown(a, stopped, e.msg);
		else
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
		log_warn("this member (timeline %u, %s) is not on the history of %s%s (timeline %u, %s)%s",
			 my_tli, mine, sc_leader ? "" : "leader ", whose, leader_tli, theirs,
			 crashed_primary ? "; it was a primary that did not shut down cleanly" : "");
	}
	a->div.history = diverged ? HA_HIST_DIVERGED : HA_HIST_ON;
	free(history);
	free(ci);
}

void divergence_unknown(struct agent *a)
{
	a->div.history = HA_HIST_UNKNOWN;
}

void divergence_reset(struct agent *a)
{
	a->div.history = HA_HIST_ON;
	a->div.key[0] = '\0';
}
