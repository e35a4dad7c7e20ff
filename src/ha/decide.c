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
		[ACT_RELEASE_LEADER] = "release leader key", [ACT_REWIND] = "rewind",
		[ACT_RECLONE] = "re-clone", [ACT_ELECT] = "elect",
		[ACT_LEADER_DUTIES] = "leader duties", [ACT_REPLICA_DUTIES] = "replica duties",
		[ACT_RESTART] = "restart", [ACT_REINIT] = "re-initialize",
		[ACT_RESTORE_STOP] = "stop for restore", [ACT_RESTORE_RUN] = "restore in place",
		[ACT_RESTORE_FINISH] = "finish restore",
	};
	return ((int)a >= 0 && a <= ACT_LAST) ? names[a] : "?";
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
		if (o->in_backoff)
			return act(ACT_WAIT, "bootstrap: PostgreSQL failed to start; waiting before the next attempt");
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

static struct ha_decision decide_without_etcd(const struct ha_observed *o)
{
	if (o->pg != HA_PG_PRIMARY)
		return act(ACT_WAIT, "etcd is unreachable: nothing is promoted or started without it");
	if (o->paused)
		return act(ACT_WAIT, "etcd is unreachable; maintenance mode: staying primary");
	if (o->failsafe_ok)
		return act(ACT_WAIT, "failsafe: etcd is unreachable but every member answered; staying primary");
	if (o->lease_expiring)
		return act(ACT_DEMOTE, "etcd is unreachable, not every member confirmed, and the lease is running out: demoting");
	return act(ACT_WAIT, "etcd is unreachable: asking the members (failsafe) until the lease runs out");
}

static struct ha_decision decide_paused(const struct ha_observed *o)
{
	if (o->pg == HA_PG_PRIMARY && o->leader_is_me)
		return act(ACT_LEADER_DUTIES, "leader (maintenance mode)");
	if (o->pg == HA_PG_PRIMARY && o->leader_absent && o->sync_denied)
		return act(ACT_WAIT, "maintenance mode: the sync key does not list this primary; not taking the key");
	if (o->pg == HA_PG_PRIMARY && o->leader_absent)
		return act(ACT_TAKE_LEADER, "maintenance mode: keeping the key with the running primary");
	return act(ACT_WAIT, "maintenance mode: no automatic action");
}

static struct ha_decision decide_clone(const struct ha_observed *o)
{
	if (o->leader_absent || o->leader_is_me || !o->leader_known || !o->leader_running)
		return act(ACT_WAIT, "waiting for a running leader to clone from");
	if (o->in_backoff)
		return act(ACT_WAIT, "the last clone failed; waiting before the next attempt");
	if (!o->slot_ready)
		return act(ACT_WAIT, "waiting for the leader to create this member's replication slot");
	return act(ACT_CLONE, "cloning the leader with pg_basebackup");
}

static struct ha_decision decide_as_leader(const struct ha_observed *o)
{
	if (o->failover_to == HA_TARGET_OTHER) {
		if (o->pg == HA_PG_PRIMARY || o->pg == HA_PG_STARTING)
			return act(ACT_DEMOTE, "manual failover to another member: stopping before giving up the key");
		if (o->handover_wait)
			return act(ACT_WAIT, "planned switchover: keeping the key until the candidate has every WAL "
				   "record of our clean stop");
		return act(ACT_RELEASE_LEADER, "manual failover to another member");
	}
	if (o->sync_denied && (o->pg == HA_PG_STOPPED || o->pg == HA_PG_REPLICA))
		return act(ACT_RELEASE_LEADER, "holding the key, but the sync key does not list this member: giving it up");
	switch (o->pg) {
	case HA_PG_STOPPED:
		if (o->restart_exhausted)
			return act(ACT_RELEASE_LEADER, "PostgreSQL did not come back in time: giving up the leader key");
		if (o->in_backoff)
			return act(ACT_WAIT, "PostgreSQL failed to start; waiting before the next attempt");
		if (o->crashed)
			return act(ACT_START_PRIMARY, "PostgreSQL crashed: restarting it in place");
		return act(ACT_START_PRIMARY, "holding the leader key: starting PostgreSQL as primary");
	case HA_PG_STARTING:
		return act(ACT_WAIT, "PostgreSQL is starting");
	case HA_PG_REPLICA:
		return act(ACT_PROMOTE, "holding the leader key: promoting");
	case HA_PG_PRIMARY:
		break;
	}
	if (o->request == HA_REQ_RESTART)
		return act(ACT_RESTART, "restart requested: stopping PostgreSQL to start it again as primary "
			   "(writes stop meanwhile)");
	return act(ACT_LEADER_DUTIES, "leader");
}

static struct ha_decision decide_election(const struct ha_observed *o)
{
	switch (o->pg) {
	case HA_PG_PRIMARY:
		if (o->sync_denied)
			return act(ACT_DEMOTE, "running as primary without the key, and the sync key names other members: stopping");
		return act(ACT_TAKE_LEADER, "running as primary and nobody holds the key: taking it");
	case HA_PG_STARTING:
		return act(ACT_WAIT, "PostgreSQL is starting");
	case HA_PG_STOPPED:
		if (o->in_backoff)
			return act(ACT_WAIT, "PostgreSQL failed to start; waiting before the next attempt");
		return act(ACT_START_STANDBY, "no leader: starting as a standby to take part in the election");
	case HA_PG_REPLICA:
		break;
	}
	if (o->failover_to == HA_TARGET_OTHER)
		return act(ACT_WAIT, "manual failover to another member: not racing");
	if (o->failsafe_hold)
		return act(ACT_WAIT, "answered the leader's failsafe ping: not racing until it expires");
	if (o->sync_denied)
		return act(ACT_WAIT, "no leader, but in synchronous mode only a member the sync key lists may be promoted");
	if (o->failover_to == HA_TARGET_ME)
		return act(ACT_TAKE_LEADER, "manual failover to this member: taking the leader key");
	if (!o->eligible)
		return act(ACT_WAIT, "no leader, but this member may not be promoted (nofailover, priority 0 or too far behind)");
	switch (o->election) {
	case HA_ELECT_NOT_ASKED:
		return act(ACT_ELECT, "no leader: asking the other members for their WAL positions");
	case HA_ELECT_UNSETTLED:
		return act(ACT_WAIT, "no leader: waiting for answers (a member has not seen the leader go, or too few synchronous standbys answered)");
	case HA_ELECT_BEHIND:
		return act(ACT_WAIT, "no leader: a more advanced member should take over");
	case HA_ELECT_BEST:
		break;
	}
	return act(ACT_TAKE_LEADER, "no leader and this is the most advanced eligible member: taking the key");
}

static struct ha_decision decide_follower(const struct ha_observed *o)
{
	switch (o->pg) {
	case HA_PG_PRIMARY:
		if (o->leader_suspect)
			return act(ACT_WAIT, "the leader key names another member under a lease not its own: not "
				   "stopping this primary for it (it counts as no leader once it lasts a ttl)");
		return act(ACT_DEMOTE, "running as primary while another member holds the leader key");
	case HA_PG_STARTING:
		return act(ACT_WAIT, "PostgreSQL is starting");
	case HA_PG_STOPPED:
		if (!o->leader_known)
			return act(ACT_WAIT, "waiting for the leader's member record");
		if (o->in_backoff)
			return act(ACT_WAIT, "the last attempt failed; waiting before the next one");
		if (o->request == HA_REQ_REINIT && o->leader_running)
			return act(ACT_REINIT, "re-clone requested: moving the data directory aside to clone the leader afresh");
		if (o->history == HA_HIST_UNKNOWN)
			return act(ACT_WAIT, "checking that this member's WAL is on the leader's history before "
				   "starting (a diverged directory never serves reads)");
		if (o->history == HA_HIST_DIVERGED && !o->leader_running)
			return act(ACT_WAIT, "diverged: waiting for the leader to run before rewinding");
		if (o->history == HA_HIST_DIVERGED && o->rewind_failed)
			return act(ACT_RECLONE, "pg_rewind failed: moving the data directory aside and cloning");
		if (o->history == HA_HIST_DIVERGED)
			return act(ACT_REWIND, "the timeline diverged from the leader's: rewinding");
		return act(ACT_START_STANDBY, "starting as a standby of the leader");
	case HA_PG_REPLICA:
		break;
	}
	if (o->request == HA_REQ_REINIT && o->leader_known && o->leader_running)
		return act(ACT_REINIT, "re-clone requested: stopping PostgreSQL to clone the leader afresh");
	if (o->history == HA_HIST_DIVERGED)
		return act(ACT_DEMOTE, "diverged from the leader's timeline: stopping to rewind");
	if (o->request == HA_REQ_RESTART)
		return act(ACT_RESTART, "restart requested: stopping PostgreSQL to start it again as a standby");
	if (o->leader_known && !o->following_leader)
		return act(ACT_FOLLOW, "re-pointing replication at the leader");
	return act(ACT_REPLICA_DUTIES, "standby");
}

/* The member that restored its data: back under the key as primary, then done. */
static struct ha_decision decide_restored(const struct ha_observed *o)
{
	if (o->pg == HA_PG_STARTING)
		return act(ACT_WAIT, "in-place restore: the restored primary is starting");
	if (o->pg == HA_PG_REPLICA)
		return act(ACT_RESTORE_STOP, "in-place restore: the restored data runs as a standby; stopping it to "
			   "start it as primary");
	if (o->sync_denied)
		return act(ACT_WAIT, "in-place restore: the sync key does not list this member; waiting");
	if (o->leader_absent)
		return act(ACT_TAKE_LEADER, "in-place restore: taking the key to start the restored primary");
	if (!o->leader_is_me) {
		if (o->pg == HA_PG_PRIMARY)
			return act(ACT_RESTORE_STOP, "in-place restore: another member holds the key; stopping");
		return act(ACT_WAIT, "in-place restore: another member holds the key; waiting for it");
	}
	if (o->pg == HA_PG_PRIMARY)
		return act(ACT_RESTORE_FINISH, "in-place restore: the restored primary runs; recording it done");
	if (o->in_backoff)
		return act(ACT_WAIT, "in-place restore: the restored primary failed to start; waiting before the "
			   "next attempt");
	return act(ACT_START_PRIMARY, "in-place restore: starting the restored primary");
}

/*
 * An in-place restore: every member stops and stays stopped (nothing serves,
 * clones, rewinds or wins an election on the data being rolled back); the
 * member it names restores once all have stopped.
 */
static struct ha_decision decide_restore(const struct ha_observed *o)
{
	if (o->restore == HA_RST_RESTORED)
		return decide_restored(o);
	if (o->pg == HA_PG_STARTING)
		return act(ACT_WAIT, "in-place restore: PostgreSQL is starting; it stops once it can");
	if (o->pg != HA_PG_STOPPED)
		return act(ACT_RESTORE_STOP, "in-place restore requested: stopping PostgreSQL");
	if (o->restore == HA_RST_FAILED)
		return act(ACT_WAIT, "in-place restore failed (ctl list says why): staying stopped until it is "
			   "retried or cancelled");
	if (o->restore == HA_RST_OTHER)
		return act(ACT_WAIT, "in-place restore: staying stopped while the leader restores");
	if (o->sync_denied)
		return act(ACT_WAIT, "in-place restore: the sync key does not list this member; waiting");
	if (o->leader_absent)
		return act(ACT_TAKE_LEADER, "in-place restore: this member restores; taking the key");
	if (!o->leader_is_me)
		return act(ACT_WAIT, "in-place restore: another member holds the key; waiting for it");
	if (o->restore == HA_RST_STOPPING)
		return act(ACT_WAIT, "in-place restore: waiting for every member to stop PostgreSQL");
	if (o->in_backoff)
		return act(ACT_WAIT, "in-place restore: waiting before the next attempt");
	return act(ACT_RESTORE_RUN, "in-place restore: every member is stopped; restoring the backup with --delta");
}

struct ha_decision ha_decide(const struct ha_observed *o)
{
	if (o->job_running)
		return act(ACT_WAIT, "a job (initdb, pg_basebackup or pg_rewind) is running");
	if (o->data == HA_DATA_INVALID)
		return act(ACT_FATAL, "the data directory is not empty and is not a PostgreSQL data directory");
	if (!o->dcs_ok)
		return decide_without_etcd(o);

	switch (o->init) {
	case HA_INIT_ABSENT:
		if (o->data == HA_DATA_MISSING || (!o->data_standby && o->pg != HA_PG_REPLICA))
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
	if (o->paused)
		return decide_paused(o);
	if (o->restore != HA_RST_NONE)
		return decide_restore(o);
	if (o->data == HA_DATA_MISSING)
		return decide_clone(o);
	if (o->leader_absent)
		return decide_election(o);
	if (o->leader_is_me)
		return decide_as_leader(o);
	return decide_follower(o);
}

/* Actions that stop PostgreSQL (or leave it to a FATAL refusal, a job or the operator). */
static bool stops_pg(enum ha_action a)
{
	return a == ACT_DEMOTE || a == ACT_RESTART || a == ACT_RESTORE_STOP || a == ACT_FATAL;
}

struct ha_decision ha_decide_standby_cluster(const struct ha_observed *o, struct ha_decision d)
{
	if (o->pg == HA_PG_PRIMARY && !o->paused && !o->job_running && !stops_pg(d.action)) {
		if (o->dcs_ok && o->restore != HA_RST_NONE)
			return act(ACT_RESTORE_STOP, "standby cluster: a primary runs here during an in-place restore; "
				   "stopping it");
		return act(ACT_DEMOTE, "standby cluster: it never runs a primary (ctl promote-cluster makes it "
			   "one); stopping PostgreSQL to start it as a standby");
	}
	switch (d.action) {
	case ACT_INITDB:
		return act(ACT_CLONE, "standby cluster: bootstrapping by cloning the primary cluster");
	case ACT_START_PRIMARY:
		if (o->restore != HA_RST_NONE)
			return act(ACT_WAIT, "standby cluster: an in-place restore cannot start a primary here");
		/* history: this data against the primary cluster's timeline (divergence.c). */
		if (o->history == HA_HIST_UNKNOWN)
			return act(ACT_WAIT, "standby leader: checking that this data directory (it ran as a primary) is "
				   "on the primary cluster's history before starting (a diverged one never serves reads)");
		if (o->history == HA_HIST_DIVERGED && o->rewind_failed)
			return act(ACT_RECLONE, "standby leader: pg_rewind failed: moving the data directory aside and "
				   "cloning the primary cluster");
		if (o->history == HA_HIST_DIVERGED)
			return act(ACT_REWIND, "standby leader: this data has WAL the primary cluster's history does not "
				   "(it took writes as a primary cluster): rewinding from the primary cluster");
		return act(ACT_START_STANDBY, "standby leader: starting PostgreSQL as a standby of the primary cluster");
	case ACT_PROMOTE:
		if (o->history == HA_HIST_DIVERGED)
			return act(ACT_DEMOTE, "standby leader: diverged from the primary cluster's timeline: stopping to "
				   "rewind");
		if (!o->following_leader)
			return act(ACT_FOLLOW, "standby leader: pointing replication at the primary cluster");
		if (o->init == HA_INIT_MINE)
			return act(ACT_FINISH_BOOTSTRAP, "standby cluster: recording the primary cluster's system "
				   "identifier");
		return act(ACT_LEADER_DUTIES, "standby leader: replicating from the primary cluster");
	default:
		return d;
	}
}

bool ha_archive_replay(struct ha_replay_watch *w, bool in_recovery, bool streaming, uint64_t received,
		       uint64_t replayed, int64_t now_ms)
{
	if (!in_recovery || streaming) {
		w->replayed = 0;
		w->moved_ms = 0;
		return false;
	}
	/* The first look after a start only learns where replay is. */
	if (w->replayed != 0 && replayed > w->replayed)
		w->moved_ms = now_ms;
	w->replayed = replayed;
	return replayed > received && w->moved_ms != 0 && now_ms - w->moved_ms < HA_ARCHIVE_REPLAY_WINDOW_MS;
}
