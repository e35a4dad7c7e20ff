#include "ha/decide.h"

#include <stddef.h>

static struct ha_decision act(enum ha_action a, const char *reason)
{
	struct ha_decision d = {a, reason};
	return d;
}

const char *ha_action_name(enum ha_action a)
{
	static const char *const names[] = {
		[ACT_WAIT] = "wait", [ACT_FATAL] = "fatal", [ACT_CLAIM_INIT] = "claim initialize",
		[ACT_INITDB] = "initdb", [ACT_TAKE_LEADER] = "take leader key",
		[ACT_START_PRIMARY] = "start primary", [ACT_FINISH_BOOTSTRAP] = "finish bootstrap",
		[ACT_CLONE] = "clone", [ACT_START_STANDBY] = "start standby", [ACT_FOLLOW] = "follow",
		[ACT_DEMOTE] = "demote", [ACT_PROMOTE] = "promote",
		[ACT_LEADER_DUTIES] = "leader duties", [ACT_REPLICA_DUTIES] = "replica duties",
	};
	return (a >= 0 && a <= ACT_REPLICA_DUTIES) ? names[a] : "?";
}

/* The bootstrap: claim → initdb → leader key → start → roles → initialize = sysid. */
static struct ha_decision decide_bootstrap(const struct ha_observed *o)
{
	if (o->data == HA_DATA_MISSING) {
		if (o->in_backoff)
			return act(ACT_WAIT, "initdb failed; waiting before the next attempt");
		return act(ACT_INITDB, "bootstrapping a new cluster");
	}
	if (o->leader_absent)
		return act(ACT_TAKE_LEADER, "bootstrap: taking the leader key before starting as primary");
	if (!o->leader_is_me)
		return act(ACT_WAIT, "bootstrap: another member holds the leader key");
	switch (o->pg) {
	case HA_PG_STOPPED:
		return act(ACT_START_PRIMARY, "bootstrap: starting the new primary");
	case HA_PG_STARTING:
		return act(ACT_WAIT, "bootstrap: PostgreSQL is starting");
	case HA_PG_REPLICA:
		return act(ACT_PROMOTE, "bootstrap: the data directory runs as a standby; promoting");
	case HA_PG_PRIMARY:
		break;
	}
	return act(ACT_FINISH_BOOTSTRAP, "bootstrap: creating roles and recording the system identifier");
}

static struct ha_decision decide_as_leader(const struct ha_observed *o)
{
	switch (o->pg) {
	case HA_PG_STOPPED:
		if (o->in_backoff)
			return act(ACT_WAIT, "PostgreSQL failed to start; waiting before the next attempt");
		return act(ACT_START_PRIMARY, "holding the leader key: starting PostgreSQL as primary");
	case HA_PG_STARTING:
		return act(ACT_WAIT, "PostgreSQL is starting");
	case HA_PG_REPLICA:
		return act(ACT_PROMOTE, "holding the leader key while running as a standby");
	case HA_PG_PRIMARY:
		break;
	}
	return act(ACT_LEADER_DUTIES, "leader");
}

static struct ha_decision decide_follower(const struct ha_observed *o)
{
	switch (o->pg) {
	case HA_PG_PRIMARY:
		return act(ACT_DEMOTE, "running as primary without the leader key");
	case HA_PG_STARTING:
		return act(ACT_WAIT, "PostgreSQL is starting");
	case HA_PG_STOPPED:
		if (o->in_backoff)
			return act(ACT_WAIT, "PostgreSQL failed to start; waiting before the next attempt");
		if (!o->leader_known)
			return act(ACT_WAIT, "waiting for the leader's member record");
		return act(ACT_START_STANDBY, "starting as a standby of the leader");
	case HA_PG_REPLICA:
		break;
	}
	if (o->leader_known && !o->following_leader)
		return act(ACT_FOLLOW, "re-pointing replication at the new leader");
	return act(ACT_REPLICA_DUTIES, "standby");
}

struct ha_decision ha_decide(const struct ha_observed *o)
{
	if (o->job_running)
		return act(ACT_WAIT, "a job (initdb or pg_basebackup) is running");
	if (o->data == HA_DATA_INVALID)
		return act(ACT_FATAL, "the data directory is not empty and is not a PostgreSQL data directory");
	if (!o->dcs_ok)
		return act(ACT_WAIT, "etcd is unreachable; leaving PostgreSQL as it is");

	switch (o->init) {
	case HA_INIT_ABSENT:
		if (o->data == HA_DATA_MISSING || !o->data_standby)
			return act(ACT_CLAIM_INIT, "the cluster is not initialized: racing for the initialize key");
		return act(ACT_WAIT, "data directory of a standby, but the cluster has no initialize key");
	case HA_INIT_MINE:
		return decide_bootstrap(o);
	case HA_INIT_OTHER:
		return act(ACT_WAIT, "another member is bootstrapping the cluster");
	case HA_INIT_DONE:
		break;
	}

	if (o->data == HA_DATA_VALID && o->sysid_mismatch)
		return act(ACT_FATAL, "the data directory belongs to another cluster (system identifier differs)");

	if (o->data == HA_DATA_MISSING) {
		if (o->leader_absent || o->leader_is_me || !o->leader_known || !o->leader_running)
			return act(ACT_WAIT, "waiting for a running leader to clone from");
		if (o->in_backoff)
			return act(ACT_WAIT, "the last clone failed; waiting before the next attempt");
		if (!o->slot_ready)
			return act(ACT_WAIT, "waiting for the leader to create this member's replication slot");
		return act(ACT_CLONE, "cloning the leader with pg_basebackup");
	}

	if (o->leader_is_me)
		return decide_as_leader(o);
	if (o->leader_absent) {
		/*
		 * Only a member whose data was a primary takes a free leader key here;
		 * standbys never promote on their own in this path.
		 */
		if (o->pg == HA_PG_PRIMARY || (o->pg == HA_PG_STOPPED && !o->data_standby))
			return act(ACT_TAKE_LEADER, "no leader and this member's data is the primary's");
		if (o->pg == HA_PG_STOPPED && o->leader_known)
			return act(ACT_START_STANDBY, "starting as a standby");
		return act(ACT_WAIT, "no leader: waiting for one");
	}
	return decide_follower(o);
}
