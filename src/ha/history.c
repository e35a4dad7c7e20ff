/*
 * history.c — the history of leader changes (cluster/history_key.h), kept by
 * the agents (a->hist): each loop notes since when no member has run as
 * primary under the leader key and which other member led last; when this
 * member becomes primary under the key it appends an entry (what kind of
 * change, from whom, the timeline, how long writes were unavailable as it saw
 * it), compared on the key's revision, retried while etcd refuses.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

void history_init(struct agent *a)
{
	a->hist.key = xasprintf("%shistory", a->keys.prefix);
}

void history_free_agent(struct agent *a)
{
	free(a->hist.key);
	a->hist.key = NULL;
}

static void try_append(struct agent *a)
{
	struct agent_history *h = &a->hist;
	struct pgha_err e;
	struct history hist;
	if (history_decode(a->view.history, &hist, &e) != 0) {
		log_warn("the history key in etcd is not valid (%s): starting it afresh", e.msg);
		memset(&hist, 0, sizeof(hist));
	}
	history_append(&hist, &h->entry);
	char *json = history_encode(&hist);
	history_free(&hist);
	struct etcd_cmp cmp = {.key = h->key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
			       .number = a->view.history ? a->view.history_rev : 0};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = h->key, .value = json};
	bool done = false;
	if (etcd_txn(a->dcs.etcd, &cmp, 1, &put, 1, NULL, 0, &done, NULL, &e) != 0)
		log_warn("recording the leader change in the history: %s (retrying)", e.msg);
	else if (done)
		h->pending = false;
	free(json);
}

void history_step(struct agent *a)
{
	struct agent_history *h = &a->hist;
	if (!a->dcs.ok)
		return;
	const struct member *leader = view_leader(a);
	bool writer = leader != NULL && leader->role == ROLE_PRIMARY && leader->state == STATE_RUNNING;
	if (writer)
		h->no_writer_since_ms = 0;
	else if (h->no_writer_since_ms == 0)
		h->no_writer_since_ms = wall_ms();
	if (a->view.leader != NULL && strcmp(a->view.leader, a->cfg.name) != 0)
		snprintf(h->prev_leader, sizeof(h->prev_leader), "%s", a->view.leader);
	if (h->pending)
		try_append(a);
}

void history_became_leader(struct agent *a)
{
	struct agent_history *h = &a->hist;
	uint32_t tl = a->pg.have_st ? a->pg.st.timeline : 0;
	/* The same leader on the same timeline (its agent or the cluster restarted): no change. */
	struct history old;
	struct pgha_err e;
	if (history_decode(a->view.history, &old, &e) == 0 && old.n > 0) {
		const struct history_entry *last = &old.entries[old.n - 1];
		bool same = strcmp(last->to, a->cfg.name) == 0 && last->timeline == tl;
		history_free(&old);
		if (same)
			return;
	}
	struct history_entry *x = &h->entry;
	memset(x, 0, sizeof(*x));
	x->at_ms = wall_ms();
	const char *kind = "failover";
	if (a->rip.active && strcmp(a->rip.rec.member, a->cfg.name) == 0)
		kind = "restore";
	else if (a->so.present && strcmp(a->so.rec.to, a->cfg.name) == 0)
		kind = "switchover";
	else if (strcmp(a->fo.to, a->cfg.name) == 0)
		kind = "manual failover";
	else if (h->prev_leader[0] == '\0' && a->view.history == NULL)
		kind = "bootstrap";
	snprintf(x->kind, sizeof(x->kind), "%s", kind);
	snprintf(x->from, sizeof(x->from), "%s", h->prev_leader);
	snprintf(x->to, sizeof(x->to), "%s", a->cfg.name);
	x->timeline = tl;
	if (strcmp(kind, "bootstrap") != 0 && h->no_writer_since_ms > 0)
		x->unavailable_ms = x->at_ms - h->no_writer_since_ms;
	char tl_s[16], ms_s[24];
	snprintf(tl_s, sizeof(tl_s), "%u", x->timeline);
	snprintf(ms_s, sizeof(ms_s), "%lld", (long long)x->unavailable_ms);
	const char *kv[] = {"event", "leader_change", "kind", kind, "old_leader", x->from, "new_leader", a->cfg.name,
			    "timeline", tl_s, "unavailable_ms", ms_s, NULL};
	log_info_kv(kv, "history: %s to %s%s%s on timeline %u (writes unavailable %lld ms)", kind, a->cfg.name,
		    x->from[0] ? " from " : "", x->from, x->timeline, (long long)x->unavailable_ms);
	h->pending = true;
	if (a->dcs.ok)
		try_append(a);
}
