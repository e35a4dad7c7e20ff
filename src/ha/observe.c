/*
 * observe.c — what decide reads (struct ha_observed), from the agent's state
 * and the answers the loop gathered (struct ha_gathered): no I/O, no clock,
 * no change to the agent.
 */
#include "ha/agent_int.h"

#include <stdlib.h>
#include <string.h>


static bool init_is_sysid(const char *v)
{
	if (v == NULL || v[0] == '\0')
		return false;
	for (const char *p = v; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

void observe(const struct agent *a, const struct ha_gathered *g, struct ha_observed *o)
{
	memset(o, 0, sizeof(*o));
	o->job_running = a->job.kind != JOB_NONE;
	o->in_backoff = g->now_ms < a->act.backoff_until_ms;
	o->dcs_ok = a->dcs.ok;
	const char *init = a->view.initialize;
	if (init == NULL)
		o->init = HA_INIT_ABSENT;
	else if (init_is_sysid(init))
		o->init = HA_INIT_DONE;
	else if (strcmp(init, a->keys.init_claim) == 0)
		o->init = HA_INIT_MINE;
	else
		o->init = HA_INIT_OTHER;
	o->leader_absent = a->view.leader == NULL;
	/* Ours only under our current lease: a key left under an old lease will expire. */
	o->leader_is_me = a->view.leader && strcmp(a->view.leader, a->cfg.name) == 0 &&
			  (a->view.leader_lease == a->dcs.lease || !a->dcs.ok);
	o->paused = a->fo.paused;
	o->failsafe_ok = a->fencing.failsafe_ok;
	o->failsafe_hold = g->failsafe_hold;
	o->lease_expiring = !a->dcs.ok && fencing_lease_expiring(a, g->now_ms);
	o->failover_to = a->fo.to[0] == '\0' ? HA_TARGET_NONE
		       : strcmp(a->fo.to, a->cfg.name) == 0 ? HA_TARGET_ME : HA_TARGET_OTHER;
	o->crashed = a->pg.crashed;
	o->restart_exhausted = o->leader_is_me && node_restart_exhausted(a, g->now_ms);
	o->history = a->div.history;
	o->rewind_failed = a->job.rewind_failed;
	o->election = HA_ELECT_NOT_ASKED;
	const struct member *leader = view_leader(a);
	o->leader_known = leader != NULL && leader->host[0] != '\0' && leader->port > 0;
	/* A standby cluster's leader runs as a standby (of the primary cluster). */
	o->leader_running = leader != NULL &&
			    ((leader->role == ROLE_PRIMARY && leader->state == STATE_RUNNING) ||
			     (view_standby_cluster(a) && leader->role == ROLE_REPLICA &&
			      (leader->state == STATE_RUNNING || leader->state == STATE_STREAMING)));
	o->leader_suspect = a->lk.foreign_rev != 0 && !o->leader_absent && !o->leader_is_me;

	switch (a->pg.phase) {
	case PG_STOPPED: o->pg = HA_PG_STOPPED; break;
	case PG_STARTING: o->pg = HA_PG_STARTING; break;
	case PG_RUNNING:
		if (!a->pg.have_st)
			o->pg = HA_PG_STARTING;   /* running but not queryable yet */
		else
			o->pg = a->pg.st.in_recovery ? HA_PG_REPLICA : HA_PG_PRIMARY;
		break;
	}
	if (a->pg.phase != PG_STOPPED) {
		o->data = HA_DATA_VALID;
		o->data_standby = a->pg.have_st ? a->pg.st.in_recovery
				: a->pg.child ? a->pg.started_as_standby : a->pg.data.standby_signal;
	} else {
		o->data = a->pg.data.kind == PG_DATA_MISSING ? HA_DATA_MISSING
			: a->pg.data.kind == PG_DATA_VALID ? HA_DATA_VALID : HA_DATA_INVALID;
		o->data_standby = a->pg.data.standby_signal;
	}
	const char *sysid = a->pg.have_st ? a->pg.st.system_id : a->pg.data.system_id;
	if (o->init == HA_INIT_DONE && o->data == HA_DATA_VALID && sysid[0] != '\0')
		o->sysid_mismatch = strcmp(sysid, init) != 0;
	if (o->pg == HA_PG_REPLICA && leader != NULL) {
		/* A standby cluster's leader: following the primary cluster. */
		char slot[64];
		char *want = view_upstream_conninfo(a, leader, slot, sizeof(slot));
		o->following_leader = want && a->pg.primary_conninfo && strcmp(want, a->pg.primary_conninfo) == 0 &&
				      strcmp(slot, a->pg.primary_slot) == 0;
		free(want);
	}
	o->eligible = g->eligible;
	o->sync_denied = o->init == HA_INIT_DONE && sync_denies_me(a);
	o->handover_wait = a->so.handover_wait;
	o->request = ops_observed(a);
	o->slot_ready = g->slot_ready;
	o->restore = rip_observed(a);
}
