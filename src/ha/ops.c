/*
 * ops.c — operator requests to this member (`pgha ctl restart`, `ctl reinit`)
 * through its requests/<name> key (cluster/switchover.h).
 *
 * The agent takes a request once (by id), and only before its deadline, so a
 * member that was down does not act on a stale one. The decision acts on it
 * (ha_observed.request): ACT_RESTART stops PostgreSQL and the next loops start
 * it again as the leader key allows (a standby, or the key holder's primary);
 * ACT_REINIT stops it and moves the data directory aside, and the clone path
 * copies the leader afresh (the old copy is removed once a clone succeeded).
 * The request is done once PostgreSQL runs again (a standby: streaming); the
 * agent then deletes the key. Progress is in the member record (op_id,
 * op_state; error says why one failed), which is what ctl follows.
 */
#include "ha/agent_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"

static bool holds_leader_key(const struct agent *a)
{
	return a->view.leader && strcmp(a->view.leader, a->cfg.name) == 0;
}

/* The request is over: say so, and remove it (only if it is still this one). */
static void finish(struct agent *a, int state, const char *fmt, ...) PGHA_PRINTF(3, 4);

static void finish(struct agent *a, int state, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	a->op.state = state;
	double secs = (double)(now_ms() - a->op.started_ms) / 1000.0;
	if (state == OP_DONE)
		log_info("%s %s done in %.1f s: %s", req_action_name(a->op.action), a->op.id, secs, why);
	else
		node_set_error(a, "%s %s failed after %.1f s: %s", req_action_name(a->op.action), a->op.id, secs, why);
	bool done = false;
	struct pgha_err e;
	if (a->dcs.ok && etcd_delete_if_value(a->dcs.etcd, a->keys.request, a->op.raw, &done, &e) != 0)
		log_warn("removing %s: %s", a->keys.request, e.msg);
}

void ops_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->keys.request);
	if (kv == NULL)
		return;
	struct member_request r;
	struct pgha_err e;
	if (member_request_decode(kv->value, kv->value_len, &r, &e) != 0) {
		if (kv->mod_revision != a->op.bad_rev)
			log_warn("%s: %s (ignored)", a->keys.request, e.msg);
		a->op.bad_rev = kv->mod_revision;
		return;
	}
	if (strcmp(r.id, a->op.id) == 0)
		return;   /* taken already */
	int64_t late = wall_ms() - r.deadline_ms;
	if (late > 0) {
		bool done;
		log_warn("ignoring %s %s: its deadline passed %.1f s ago", req_action_name(r.action), r.id,
			 (double)late / 1000.0);
		if (etcd_delete_if_value(a->dcs.etcd, a->keys.request, kv->value, &done, &e) != 0)
			log_warn("removing %s: %s", a->keys.request, e.msg);
		return;
	}
	if (a->op.state == OP_RUNNING)
		log_warn("%s %s is replaced by a new request", req_action_name(a->op.action), a->op.id);
	snprintf(a->op.id, sizeof(a->op.id), "%s", r.id);
	snprintf(a->op.raw, sizeof(a->op.raw), "%s", kv->value);
	a->op.action = r.action;
	a->op.deadline_ms = r.deadline_ms;
	a->op.state = OP_RUNNING;
	a->op.stopped = false;
	a->op.started_ms = now_ms();
	log_warn("%s %s requested", req_action_name(r.action), r.id);
	if (a->fo.paused)
		finish(a, OP_FAILED, "maintenance mode is on: nothing is stopped or started (`pgha ctl resume` first)");
	else if (r.action == REQ_REINIT && holds_leader_key(a))
		finish(a, OP_FAILED, "this member holds the leader key: a leader is never re-cloned (switch over first)");
}

enum ha_request ops_observed(const struct agent *a)
{
	if (a->op.state != OP_RUNNING || a->op.stopped)
		return HA_REQ_NONE;
	return a->op.action == REQ_RESTART ? HA_REQ_RESTART : HA_REQ_REINIT;
}

/* Runs again as it should: a standby streams, the key holder runs as primary. */
static bool back_up(const struct agent *a)
{
	if (a->pg.phase != PG_RUNNING || !a->pg.have_st || a->job.kind != JOB_NONE)
		return false;
	return a->pg.st.in_recovery ? a->pg.st.streaming : holds_leader_key(a);
}

void ops_step(struct agent *a, const struct ha_decision *d)
{
	if (a->op.state != OP_RUNNING)
		return;
	if (!a->op.stopped) {
		/* Whatever stopped PostgreSQL (this request, a demote, a crash), the next start is the restart. */
		if (a->op.action == REQ_RESTART)
			a->op.stopped = a->pg.phase == PG_STOPPED;
		else
			a->op.stopped = a->pg.phase == PG_STOPPED && a->pg.data.kind == PG_DATA_MISSING;
	}
	if (a->op.stopped && back_up(a)) {
		finish(a, OP_DONE, "%s", a->pg.st.in_recovery ? "streaming from the leader" : "running as the leader's primary");
		return;
	}
	if (a->fo.paused) {
		finish(a, OP_FAILED, "maintenance mode was turned on");
		return;
	}
	if (wall_ms() > a->op.deadline_ms)
		finish(a, OP_FAILED, "not done by its deadline (now: %s)", d->reason);
}

char *agent_reinit_aside(const struct agent *a)
{
	return xasprintf("%s.pgha-reinit", a->cfg.data_dir);
}

void ops_clone_finished(struct agent *a, bool ok)
{
	if (!ok) {
		if (a->op.state == OP_RUNNING && a->op.action == REQ_REINIT && a->op.stopped)
			finish(a, OP_FAILED, "pg_basebackup failed (it is tried again; the old data is kept)");
		return;
	}
	char *aside = agent_reinit_aside(a);
	struct pgha_err e;
	if (path_exists(aside)) {
		if (pg_remove_tree(aside, &e) != 0)
			log_warn("the new clone is in place, but removing the old data failed: %s", e.msg);
		else
			log_info("the new clone is in place: removed the old data directory %s", aside);
	}
	free(aside);
}
