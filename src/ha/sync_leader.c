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

void sync_init(struct agent *a)
{
	a->sync.count = 1;
}

void sync_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	/* config: {"synchronous_mode": "on", "synchronous_node_count": 1} */
	enum sync_mode mode = SYNC_OFF;
	int count = 1;
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->keys.config);
	struct dyncfg dc;
	struct pgha_err not_object;   /* failover.c says so */
	(void)dyncfg_decode(kv ? kv->value : NULL, &dc, &not_object);
	if (dc.set[DYNCFG_SYNC_MODE]) {
		mode = (enum sync_mode)dc.value[DYNCFG_SYNC_MODE];
	} else if (dc.bad[DYNCFG_SYNC_MODE]) {
		mode = a->sync.mode;
		log_warn_once("synchronous_mode", a->keys.config, kv->mod_revision,
			      "ignoring %s: synchronous_mode is not off, on, quorum or strict; keeping %s",
			      a->keys.config, sync_mode_name(a->sync.mode));
	}
	if (dc.set[DYNCFG_SYNC_COUNT])
		count = (int)dc.value[DYNCFG_SYNC_COUNT];
	bool cross = dc.set[DYNCFG_SYNC_CROSS_REGION] && dc.value[DYNCFG_SYNC_CROSS_REGION];
	if (cross != a->sync.cross_region) {
		log_warn("synchronous_cross_region %s%s", cross ? "on" : "off",
			 cross && a->cfg.region[0] == '\0' ? " (this member has no [node] region: as off while it leads)" : "");
		a->sync.cross_region_none = false;
	}
	a->sync.cross_region = cross;
	dyncfg_free(&dc);
	if (mode != a->sync.mode || (mode == SYNC_QUORUM && count != a->sync.count)) {
		if (mode == SYNC_QUORUM)
			log_warn("synchronous_mode quorum, synchronous_node_count %d", count);
		else
			log_warn("synchronous_mode %s", sync_mode_name(mode));
	}
	a->sync.mode = mode;
	a->sync.count = count;

	/* sync: {"leader": "n1", "sync_standby": ["n2"], "quorum": 1} */
	kv = etcd_kvs_find(kvs, a->keys.sync);
	bool was_valid = a->sync.valid;
	a->sync.present = kv != NULL;
	a->sync.valid = false;
	if (kv != NULL) {
		struct pgha_err e;
		if (sync_state_decode(kv->value, &a->sync.pub, &e) == 0)
			a->sync.valid = true;
		else if (was_valid || a->sync.mode != SYNC_OFF)
			log_warn_once("sync key", a->keys.sync, kv->mod_revision,
				      "%s: %s (in synchronous mode nobody but the leader may be promoted until it is rewritten)",
				      a->keys.sync, e.msg);
	}
	if (!a->sync.valid)
		memset(&a->sync.pub, 0, sizeof(a->sync.pub));
}

bool sync_mode_active(const struct agent *a)
{
	return a->sync.mode != SYNC_OFF && a->sync.present;
}

bool sync_allows_me(const struct agent *a)
{
	return sync_mode_active(a) && a->sync.valid &&
	       (strcmp(a->sync.pub.leader, a->cfg.name) == 0 || sync_set_has(&a->sync.pub.set, a->cfg.name));
}

bool sync_denies_me(const struct agent *a)
{
	return sync_mode_active(a) && !sync_allows_me(a);
}

void sync_forget_leadership(struct agent *a)
{
	free(a->sync.ssn_conf);
	free(a->sync.ssn_seen);
	a->sync.ssn_conf = a->sync.ssn_seen = NULL;
	a->sync.ssn_settle_lsn = 0;
	a->sync.last_why = NULL;
}

static void set_ssn_conf(struct agent *a, const char *value)
{
	free(a->sync.ssn_conf);
	a->sync.ssn_conf = xstrdup(value);
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
		{.key = a->keys.leader, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = a->cfg.name},
		{.key = a->keys.leader, .target = ETCD_CMP_LEASE, .result = ETCD_CMP_EQUAL, .number = a->dcs.lease},
	};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = a->keys.sync, .value = json};
	bool ok = false;
	struct pgha_err e;
	int rc = -1;
	if (etcd_txn(a->dcs.etcd, cmp, 2, &put, 1, NULL, 0, &ok, NULL, &e) != 0) {
		log_warn("writing %s: %s", a->keys.sync, e.msg);
	} else if (!ok) {
		log_warn("not writing %s: the leader key is not ours (any more)", a->keys.sync);
	} else {
		char d[512];
		sync_pub_describe(set, d, sizeof(d));
		log_info("published synchronous standbys: %s", d);
		a->sync.present = a->sync.valid = true;
		a->sync.pub = st;
		rc = 0;
	}
	free(json);
	return rc;
}

static void unpublish(struct agent *a)
{
	struct etcd_cmp cmp = {.key = a->keys.leader, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL,
			       .value = a->cfg.name};
	struct etcd_op del = {.type = ETCD_OP_DELETE, .key = a->keys.sync};
	bool ok = false;
	struct pgha_err e;
	if (etcd_txn(a->dcs.etcd, &cmp, 1, &del, 1, NULL, 0, &ok, NULL, &e) != 0)
		log_warn("removing %s: %s", a->keys.sync, e.msg);
	else if (ok) {
		log_info("synchronous mode off: removed %s", a->keys.sync);
		a->sync.present = a->sync.valid = false;
	}
}

int sync_before_promote(struct agent *a)
{
	struct pgha_err e;
	if (a->sync.mode == SYNC_OFF) {
		sync_forget_leadership(a);   /* the leader's duty adopts what PostgreSQL runs with */
		return 0;
	}
	/*
	 * Name this member as the leader of an empty set before it takes writes:
	 * from now on nobody else may be promoted (it may acknowledge commits the
	 * others lack), whatever happens to it.
	 */
	bool mine_empty = a->sync.valid && strcmp(a->sync.pub.leader, a->cfg.name) == 0 && a->sync.pub.set.n == 0;
	struct sync_set empty;
	sync_set_clear(&empty);
	if (!mine_empty && publish(a, &empty) != 0) {
		log_warn("postponing the promotion: the sync key could not be written");
		return -1;
	}
	/* Strict: commits wait from the first one on, until a standby is synchronous. */
	struct sync_set none;
	sync_set_clear(&none);
	if (a->sync.mode == SYNC_STRICT) {
		sync_set_add(&none, SYNC_NONE_NAME);
		none.num = 1;
	}
	char *ssn = sync_ssn_format(&none, false);
	set_ssn_conf(a, ssn);
	free(ssn);
	if (node_apply_conf(a, &e) != 0) {
		log_warn("postponing the promotion: setting synchronous_standby_names: %s", e.msg);
		return -1;
	}
	return 0;
}

const char *sync_primary_ssn(struct agent *a)
{
	if (a->sync.ssn_conf != NULL)
		return a->sync.ssn_conf;
	/* Not decided by this agent yet (it restarted): what is published is safe to go by. */
	struct sync_set s;
	sync_set_clear(&s);
	if (a->sync.mode != SYNC_OFF && a->sync.valid && strcmp(a->sync.pub.leader, a->cfg.name) == 0 &&
	    a->sync.pub.set.n > 0) {
		s = a->sync.pub.set;
		s.num = (int)s.n - a->sync.pub.set.num + 1;   /* k + Q = |P| + 1 > |P| */
	} else if (a->sync.mode == SYNC_STRICT) {
		sync_set_add(&s, SYNC_NONE_NAME);
		s.num = 1;
	}
	char *ssn = sync_ssn_format(&s, a->sync.mode == SYNC_QUORUM);
	set_ssn_conf(a, ssn);
	free(ssn);
	return a->sync.ssn_conf;
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
 * above 0; with synchronous_cross_region, in a region other than ours (a
 * member with no region may be anywhere: not one). Best (furthest flushed)
 * first.
 */
static bool outside_my_region(const struct agent *a, const struct member *m)
{
	return !a->sync.cross_region || a->cfg.region[0] == '\0' ||
	       (m->tags.region[0] != '\0' && strcmp(m->tags.region, a->cfg.region) != 0);
}

static size_t candidates(const struct agent *a, const struct pg_replica *reps, size_t nreps, const char **out)
{
	struct cand c[SYNC_MAX];
	size_t n = 0;
	for (size_t i = 0; i < nreps && n < SYNC_MAX; i++) {
		if (!reps[i].streaming)
			continue;
		const struct member *m = cluster_view_member(&a->view, reps[i].name);
		if (m == NULL || strcmp(m->name, a->cfg.name) == 0 || m->role != ROLE_REPLICA ||
		    m->state != STATE_STREAMING || m->tags.nosync || m->tags.nofailover || m->tags.priority <= 0 ||
		    !outside_my_region(a, m))
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
	if (a->sync.ssn_settle_lsn == 0)
		return false;
	int ok = 0;
	for (size_t i = 0; i < n; i++)
		if (sync_set_has(cur, reps[i].name) && reps[i].flush_lsn >= a->sync.ssn_settle_lsn &&
		    (strcmp(reps[i].sync_state, "sync") == 0 || strcmp(reps[i].sync_state, "quorum") == 0))
			ok++;
	return ok >= cur->num;
}

static void set_ssn(struct agent *a, const struct sync_set *set, const char *why)
{
	char *text = sync_ssn_format(set, a->sync.mode == SYNC_QUORUM);
	set_ssn_conf(a, text);
	struct pgha_err e;
	if (node_apply_conf(a, &e) != 0)
		log_warn("setting synchronous_standby_names: %s", e.msg);
	else
		log_info("synchronous_standby_names = '%s' (%s)", text, why);
	free(text);
}

bool sync_leader_duties(struct agent *a)
{
	struct pgha_err e;
	bool quick = false;
	if (a->pg.conn == NULL || !a->pg.have_st || a->pg.st.in_recovery || !a->dcs.ok)
		return false;
	int64_t now = now_ms();
	char *seen = NULL;
	if (pg_show_setting(a->pg.conn, "synchronous_standby_names", &seen, &e) != 0) {
		log_warn("%s", e.msg);
		return false;
	}
	if (a->sync.ssn_seen == NULL || strcmp(seen, a->sync.ssn_seen) != 0) {
		free(a->sync.ssn_seen);
		a->sync.ssn_seen = xstrdup(seen);
		a->sync.ssn_seen_ms = now;
		a->sync.ssn_settle_lsn = 0;
	}
	if (a->sync.ssn_conf == NULL)
		set_ssn_conf(a, seen);   /* adopted a running primary: go on from what it runs with */
	/* The settle mark: the WAL position once the new value had a moment to reach every walsender. */
	if (a->sync.ssn_settle_lsn == 0 && now - a->sync.ssn_seen_ms >= 200)
		a->sync.ssn_settle_lsn = a->pg.st.wal_lsn > 0 ? a->pg.st.wal_lsn : 1;

	if (a->sync.mode == SYNC_OFF) {
		/* Asynchronous again: first the setting, then the key (nobody reads it in this mode). */
		if (seen[0] != '\0') {
			struct sync_set none;
			sync_set_clear(&none);
			set_ssn(a, &none, "synchronous mode off");
		} else if (a->sync.present) {
			unpublish(a);
		}
		free(seen);
		return false;
	}
	if (strcmp(a->sync.ssn_conf, seen) != 0) {
		/* Asked for, not in effect yet (reload pending): plan again once it is. */
		if (now - a->pg.reload_ms > 2000 && node_apply_conf(a, &e) == 0 && node_reload(a, &e) != 0)
			log_debug("reloading PostgreSQL: %s", e.msg);
		free(seen);
		return true;
	}

	struct pg_replica *reps = NULL;
	size_t nreps = 0;
	if (pg_list_replication(a->pg.conn, &reps, &nreps, &e) != 0) {
		log_warn("%s", e.msg);
		free(seen);
		return false;
	}
	const char *names[SYNC_MAX];
	size_t nc = candidates(a, reps, nreps, names);
	bool none_remote = a->sync.cross_region && a->cfg.region[0] != '\0' && nc == 0;
	if (none_remote && !a->sync.cross_region_none)
		log_warn("synchronous_cross_region: no standby outside region %s streams from this leader%s", a->cfg.region,
			 a->sync.mode == SYNC_STRICT ? ": writes wait until one does" :
			 ": commits are acknowledged without a copy in another region until one does");
	else if (!none_remote && a->sync.cross_region_none)
		log_info("synchronous_cross_region: a standby outside region %s streams again", a->cfg.region);
	a->sync.cross_region_none = none_remote;
	struct sync_set cur, goal;
	bool known = sync_ssn_parse(seen, &cur) == 0;
	sync_goal(a->sync.mode, a->sync.count, names, nc, known ? &cur : NULL, &goal);
	bool mine = a->sync.valid && strcmp(a->sync.pub.leader, a->cfg.name) == 0;
	struct sync_set empty;
	sync_set_clear(&empty);
	struct sync_plan_in in = {
		.ssn = &cur, .ssn_known = known, .settled = known && settled(a, &cur, reps, nreps),
		.pub = mine ? &a->sync.pub.set : &empty, .pub_mine = mine, .goal = &goal,
	};
	struct sync_step s = sync_plan(&in);
	switch (s.kind) {
	case SYNC_STEP_SSN:
		set_ssn(a, &s.set, s.why);
		quick = true;
		break;
	case SYNC_STEP_PUBLISH:
		if (publish(a, &s.set) == 0)
			quick = true;
		break;
	case SYNC_STEP_NONE:
		if (s.why != a->sync.last_why && strcmp(s.why, "steady") != 0)
			log_info("synchronous replication: %s", s.why);
		if (strcmp(s.why, "steady") != 0 && now - a->sync.ssn_seen_ms < SYNC_QUICK_MS)
			quick = true;
		break;
	}
	a->sync.last_why = s.why;
	free(reps);
	free(seen);
	return quick;
}
