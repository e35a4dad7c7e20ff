/*
 * leader_key.c — a leader key no agent wrote (issue 8): hand-edited, corrupt,
 * without a lease, naming no member, or under a lease not the named member's.
 *
 * An agent writes the key only with a create-if-absent txn under its own
 * lease, so such a key names no leader: the view (cluster/member.c) already shows
 * garbage, lease-less and member-less keys as "no leader". The decision then
 * runs as for a lost leader (brute-force tested): the running primary takes the
 * key back, else only the election's winner takes it, and nobody stops a
 * healthy primary because of it. Taking is a replacement compared on the exact
 * mod_revision of the bad key instead of create-if-absent: exactly as
 * exclusive (one txn wins, after it the revision differs), and it is the
 * repair: no operator is needed at 3 a.m.
 *
 * A key under a lease that is not the named member's record's lease is also
 * what an agent shows for a moment while it moves its key to a new lease (ctl
 * set ttl, an agent restart): it counts as invalid only once it has stayed so
 * for a whole ttl (at once for the member it names, who knows its own leases);
 * meanwhile it is leader_suspect for the decision, which keeps a running
 * primary from stopping for it.
 */
#include "ha/agent_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

bool leader_key_judge(struct agent *a)
{
	const struct cluster_view *v = &a->view;
	bool mine = v->leader != NULL && strcmp(v->leader, a->cfg.name) == 0;
	if (v->leader_state != LEADER_KEY_FOREIGN_LEASE || v->leader == NULL || (mine && leader_key_may_reattach(a))) {
		a->lk.foreign_rev = 0;
		return false;
	}
	int64_t now = now_ms();
	if (a->lk.foreign_rev != v->leader_mod_revision) {
		a->lk.foreign_rev = v->leader_mod_revision;
		a->lk.foreign_since_ms = now;
	}
	/*
	 * Others wait a ttl; the named member knows at once: our own moves keep
	 * a->dcs.lease in step, so our name under another lease while we may not
	 * re-attach it is not ours (following "ourselves" would stop streaming).
	 */
	if (!mine && now - a->lk.foreign_since_ms < a->cfg.ttl_ms)
		return false;
	log_warn_once("leader key foreign", a->keys.leader, v->leader_mod_revision,
		      "the leader key names %s under lease %lld, which is not %s's lease, for %lld ms: no agent "
		      "wrote it, so the cluster has no leader until an agent replaces it", v->leader,
		      (long long)v->leader_lease, v->leader, (long long)(now - a->lk.foreign_since_ms));
	return true;
}

/*
 * A key with our name under another lease is ours to re-attach only when our
 * PostgreSQL is (or was last) a primary: an agent restarted under the leader
 * it was. A standby that finds its name there did not write it, and promotes
 * only by winning an election.
 */
bool leader_key_may_reattach(const struct agent *a)
{
	if (node_is_primary(a))
		return true;
	return a->pg.phase == PG_STOPPED && a->pg.data.kind == PG_DATA_VALID && !a->pg.data.standby_signal;
}

/* Take the key from an invalid value: compared on its exact mod_revision. */
int leader_key_replace(const struct agent *a, bool *done, struct pgha_err *e)
{
	struct etcd_cmp cmp[] = {
		{.key = a->keys.leader, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
		 .number = a->view.leader_mod_revision},
	};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = a->keys.leader, .value = a->cfg.name, .lease = a->dcs.lease};
	*done = false;
	if (etcd_txn(a->dcs.etcd, cmp, 1, &put, 1, NULL, 0, done, NULL, e) != 0)
		return -1;
	if (*done)
		log_warn("replaced the invalid leader key (\"%.80s\", revision %lld: no agent wrote it) with this "
			 "member under lease %lld", a->view.leader_invalid, (long long)a->view.leader_mod_revision,
			 (long long)a->dcs.lease);
	return 0;
}
