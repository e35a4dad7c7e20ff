/*
 * sync_leader.c — synchronous replication in the agent: reading the dynamic
 * config and the sync key, what that allows this member (election, decide),
 * the fence before a promotion, and the leader's duty of keeping
 * synchronous_standby_names and the sync key in step through the planner of
 * sync.c (one step per loop, the loop re-reading both before the next).
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/config_key.h"
#include "common/log.h"
#include "common/util.h"
#include "ha/sync.h"

/* Look again soon while a change is under way, but not forever. */
#define SYNC_QUICK_MS 15000

void sync_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	/* config: {"synchronous_mode": "on", "synchronous_node_count": 1} */
	enum sync_mode mode = SYNC_OFF;
	int count = 1;
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->key_config);
	struct dyncfg dc;
	struct pgha_err not_object;   /* failover.c says so */
	(void)dyncfg_decode(kv ? kv->value : NULL, &dc, &not_object);
	if (dc.set[DYNCFG_SYNC_MODE]) {
		mode = (enum sync_mode)dc.value[DYNCFG_SYNC_MODE];
	} else if (dc.bad[DYNCFG_SYNC_MODE]) {
		mode = a->sync_mode;
		log_warn_once("synchronous_mode", a->key_config, kv->mod_revision,
			      "ignoring %s: synchronous_mode is not off, on, quorum or strict; keeping %s",
			      a->key_config, sync_mode_name(a->sync_mode));
	}
	if (dc.set[DYNCFG_SYNC_COUNT])
		count = (int)dc.value[DYNCFG_SYNC_COUNT];
	dyncfg_free(&dc);
	if (mode != a->sync_mode || (mode == SYNC_QUORUM && count != a->sync_count)) {
		if (mode == SYNC_QUORUM)
			log_warn("synchronous_mode quorum, synchronous_node_count %d", count);
		else
			log_warn("synchronous_mode %s", sync_mode_name(mode));
	}
	a->sync_mode = mode;
	a->sync_count = count;

	/* sync: {"leader": "n1", "sync_standby": ["n2"], "quorum": 1} */
	kv = etcd_kvs_find(kvs, a->key_sync);
	bool was_valid = a->sync_valid;
	a->sync_present = kv != NULL;
	a->sync_valid = false;
	if (kv != NULL) {
		struct pgha_err e;
		if (sync_state_decode(kv->value, &a->sync, &e) == 0)
			a->sync_valid = true;
		else if (was_valid || a->sync_mode != SYNC_OFF)
			log_warn_once("sync key", a->key_sync, kv->mod_revision,
				      "%s: %s (in synchronous mode nobody but the leader may be promoted until it is rewritten)",
				      a->key_sync, e.msg);
	}
	if (!a->sync_valid)
		memset(&a->sync, 0, sizeof(a->sync));
}

bool sync_mode_active(const struct agent *a)
{
	return a->sync_mode != SYNC_OFF && a->sync_present;
}

bool sync_allows_me(const struct agent *a)
{
	return sync_mode_active(a) && a->sync_valid &&
	       (strcmp(a->sync.leader, a->cfg.name) == 0 || sync_set_has(&a->sync.set, a->cfg.name));
}

bool sync_denies_me(const struct agent *a)
{
	return sync_mode_active(a) && !sync_allows_me(a);
}

void sync_forget_leadership(struct agent *a)
{
	free(a->ssn_conf);
	free(a->ssn_seen);
	a->ssn_conf = a->ssn_seen = NULL;
	a->ssn_settle_lsn = 0;
	a->sync_last_why = NULL;
}

static void set_ssn_conf(struct agent *a, const char *value)
{
	free(a->ssn_conf);
	a->ssn_conf = xstrdup(value);
}

/* The sync key, written only while the leader key holds our name under our lease. */
static int publish(struct agent *a, const struct sync_set *set)
{
	struct sync_state st;
	memset(&st, 0, sizeof(st));
	snprintf(st.leader, sizeof(st.leader), "%s", a->cfg.name);
	st.set = *set;
	char *json = sync_state_encode(&st);
	struct etcd_cmp cmp[] = {
		{.key = a->key_leader, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = a->cfg.name},
		{.key = a->key_leader, .target = ETCD_CMP_LEASE, .result = ETCD_CMP_EQUAL, .number = a->lease},
	};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = a->key_sync, .value = json};
	bool ok = false;
	struct pgha_err e;
	int rc = -1;
	if (etcd_txn(a->etcd, cmp, 2, &put, 1, NULL, 0, &ok, NULL, &e) != 0) {
		log_warn("writing %s: %s", a->key_sync, e.msg);
	} else if (!ok) {
		log_warn("not writing %s: the leader key is not ours (any more)", a->key_sync);
	} else {
		char d[512];
		sync_pub_describe(set, d, sizeof(d));
		log_info("published synchronous standbys: %s", d);
		a->sync_present = a->sync_valid = true;
		a->sync = st;
		rc = 0;
	}
	free(json);
	return rc;
}

static void unpublish(struct agent *a)
{
	struct etcd_cmp cmp = {.key = a->key_leader, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL,
			       .value = a->cfg.name};
	struct etcd_op del = {.type = ETCD_OP_DELETE, .key = a->key_sync};
	bool ok = false;
	struct pgha_err e;
	if (etcd_txn(a->etcd, &cmp, 1, &del, 1, NULL, 0, &ok, NULL, &e) != 0)
		log_warn("removing %s: %s", a->key_sync, e.msg);
	else if (ok) {
		log_info("synchronous mode off: removed %s", a->key_sync);
		a->sync_present = a->sync_valid = false;
	}
}

int sync_before_promote(struct agent *a)
{
	struct pgha_err e;
	if (a->sync_mode == SYNC_OFF) {
		sync_forget_leadership(a);   /* the leader's duty adopts what PostgreSQL runs with */
		return 0;
	}
	/*
	 * Name this member as the leader of an empty set before it takes writes:
	 * from now on nobody else may be promoted (it may acknowledge commits the
	 * others lack), whatever happens to it.
	 */
	bool mine_empty = a->sync_valid && strcmp(a->sync.leader, a->cfg.name) == 0 && a->sync.set.n == 0;
	struct sync_set empty;
	sync_set_clear(&empty);
	if (!mine_empty && publish(a, &empty) != 0) {
		log_warn("postponing the promotion: the sync key could not be written");
		return -1;
	}
	/* Strict: commits wait from the first one on, until a standby is synchronous. */
	struct sync_set none;
	sync_set_clear(&none);
	if (a->sync_mode == SYNC_STRICT) {
		sync_set_add(&none, SYNC_NONE_NAME);
		none.num = 1;
	}
	char *ssn = sync_ssn_format(&none, false);
	set_ssn_conf(a, ssn);
	free(ssn);
	if (agent_apply_ssn(a, &e) != 0) {
		log_warn("postponing the promotion: setting synchronous_standby_names: %s", e.msg);
		return -1;
	}
	return 0;
}

const char *sync_primary_ssn(struct agent *a)
{
	if (a->ssn_conf != NULL)
		return a->ssn_conf;
	/* Not decided by this agent yet (it restarted): what is published is safe to go by. */
	struct sync_set s;
	sync_set_clear(&s);
	if (a->sync_mode != SYNC_OFF && a->sync_valid && strcmp(a->sync.leader, a->cfg.name) == 0 &&
	    a->sync.set.n > 0) {
		s = a->sync.set;
		s.num = (int)s.n - a->sync.set.num + 1;   /* k + Q = |P| + 1 > |P| */
	} else if (a->sync_mode == SYNC_STRICT) {
		sync_set_add(&s, SYNC_NONE_NAME);
		s.num = 1;
	}
	char *ssn = sync_ssn_format(&s, a->sync_mode == SYNC_QUORUM);
	set_ssn_conf(a, ssn);
	free(ssn);
	return a->ssn_conf;
}

/* ---- the leader's duty ---------------------------------------------------- */

struct cand {
	const char *name;
	uint64_t flush;
};

static int cand_cmp(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;
	if (a->flush != b->flush)
		return a->flush > b->flush ? -1 : 1;
	return strcmp(a->name, b->name);
}

/*
 * Standbys that may be synchronous: streaming from us (pg_stat_replication,
 * application_name = member name) and saying so in their record (a member
 * still cloning streams WAL too), not tagged nosync or nofailover, priority
 * above 0. Best (furthest flushed) first.
 */
static size_t candidates(const struct agent *a, const struct pg_replica *reps, size_t nreps, const char **out)
{
	struct cand c[SYNC_MAX];
	size_t n = 0;
	for (size_t i = 0; i < nreps && n < SYNC_MAX; i++) {
		if (!reps[i].streaming)
			continue;
		const struct member *m = cluster_view_member(&a->view, reps[i].name);
		if (m == NULL || strcmp(m->name, a->cfg.name) == 0 || m->role != ROLE_REPLICA ||
		    m->state != STATE_STREAMING || m->tags.nosync || m->tags.nofailover || m->tags.priority <= 0)
			continue;
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(c[k].name, m->name) == 0;
		if (!dup)
			c[n++] = (struct cand){m->name, reps[i].flush_lsn};
	}
	qsort(c, n, sizeof(c[0]), cand_cmp);
	for (size_t i = 0; i < n; i++)
		out[i] = c[i].name;
	return n;
}

/* k of the ssn's standbys confirm (sync/quorum) a flush at least the position measured after the change. */
static bool settled(const struct agent *a, const struct sync_set *cur, const struct pg_replica *reps, size_t n)
{
	if (cur->num <= 0 || cur->n == 0)
		return true;
	if (a->ssn_settle_lsn == 0)
		return false;
	int ok = 0;
	for (size_t i = 0; i < n; i++)
		if (sync_set_has(cur, reps[i].name) && reps[i].flush_lsn >= a->ssn_settle_lsn &&
		    (strcmp(reps[i].sync_state, "sync") == 0 || strcmp(reps[i].sync_state, "quorum") == 0))
			ok++;
	return ok >= cur->num;
}

static void set_ssn(struct agent *a, const struct sync_set *set, const char *why)
{
	char *text = sync_ssn_format(set, a->sync_mode == SYNC_QUORUM);
	set_ssn_conf(a, text);
	struct pgha_err e;
	if (agent_apply_ssn(a, &e) != 0)
		log_warn("setting synchronous_standby_names: %s", e.msg);
	else
		log_info("synchronous_standby_names = '%s' (%s)", text, why);
	free(text);
}

void sync_leader_duties(struct agent *a)
{
	struct pgha_err e;
	if (a->conn == NULL || !a->have_st || a->st.in_recovery || !a->dcs_ok)
		return;
	int64_t now = now_ms();
	char *seen = NULL;
	if (pg_show_setting(a->conn, "synchronous_standby_names", &seen, &e) != 0) {
		log_warn("%s", e.msg);
		return;
	}
	if (a->ssn_seen == NULL || strcmp(seen, a->ssn_seen) != 0) {
		free(a->ssn_seen);
		a->ssn_seen = xstrdup(seen);
		a->ssn_seen_ms = now;
		a->ssn_settle_lsn = 0;
	}
	if (a->ssn_conf == NULL)
		set_ssn_conf(a, seen);   /* adopted a running primary: go on from what it runs with */
	/* The settle mark: the WAL position once the new value had a moment to reach every walsender. */
	if (a->ssn_settle_lsn == 0 && now - a->ssn_seen_ms >= 200)
		a->ssn_settle_lsn = a->st.wal_lsn > 0 ? a->st.wal_lsn : 1;

	if (a->sync_mode == SYNC_OFF) {
		/* Asynchronous again: first the setting, then the key (nobody reads it in this mode). */
		if (seen[0] != '\0') {
			struct sync_set none;
			sync_set_clear(&none);
			set_ssn(a, &none, "synchronous mode off");
		} else if (a->sync_present) {
			unpublish(a);
		}
		free(seen);
		return;
	}
	if (strcmp(a->ssn_conf, seen) != 0) {
		/* Asked for, not in effect yet (reload pending): plan again once it is. */
		if (now - a->ssn_reload_ms > 2000 && agent_apply_ssn(a, &e) == 0 && pg_reload_conf(a->conn, &e) == 0)
			a->ssn_reload_ms = now;
		a->quick_retry = true;
		free(seen);
		return;
	}

	struct pg_replica *reps = NULL;
	size_t nreps = 0;
	if (pg_list_replication(a->conn, &reps, &nreps, &e) != 0) {
		log_warn("%s", e.msg);
		free(seen);
		return;
	}
	const char *names[SYNC_MAX];
	size_t nc = candidates(a, reps, nreps, names);
	struct sync_set cur, goal;
	bool known = sync_ssn_parse(seen, &cur) == 0;
	sync_goal(a->sync_mode, a->sync_count, names, nc, known ? &cur : NULL, &goal);
	bool mine = a->sync_valid && strcmp(a->sync.leader, a->cfg.name) == 0;
	struct sync_set empty;
	sync_set_clear(&empty);
	struct sync_plan_in in = {
		.ssn = &cur, .ssn_known = known, .settled = known && settled(a, &cur, reps, nreps),
		.pub = mine ? &a->sync.set : &empty, .pub_mine = mine, .goal = &goal,
	};
	struct sync_step s = sync_plan(&in);
	switch (s.kind) {
	case SYNC_STEP_SSN:
		set_ssn(a, &s.set, s.why);
		a->quick_retry = true;
		break;
	case SYNC_STEP_PUBLISH:
		if (publish(a, &s.set) == 0)
			a->quick_retry = true;
		break;
	case SYNC_STEP_NONE:
		if (s.why != a->sync_last_why && strcmp(s.why, "steady") != 0)
			log_info("synchronous replication: %s", s.why);
		if (strcmp(s.why, "steady") != 0 && now - a->ssn_seen_ms < SYNC_QUICK_MS)
			a->quick_retry = true;
		break;
	}
	a->sync_last_why = s.why;
	free(reps);
	free(seen);
}
