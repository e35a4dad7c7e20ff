/*
 * switchover.c — a planned switchover, driven by the agents through the
 * switchover record (cluster/switchover.h; `pgha ctl switchover` writes it).
 *
 *  leader (= from), scheduled, `at` passed: checks the candidate (a streaming
 *      standby, promotable, close behind; in synchronous mode a listed one)
 *      -> pausing, deadline pause_timeout. Proxies hold new read-write
 *      transactions and report paused in proxies/<name>.
 *  leader, pausing, every live proxy paused for this id -> demoting,
 *      deadline handover_timeout, and the failover key {"to": candidate}: the
 *      HA loop then stops PostgreSQL (a clean shutdown: the walsenders hand
 *      every WAL record to the streaming standbys before it ends) and gives
 *      up the key; the candidate takes it and promotes; the old leader
 *      follows it as a standby (no rewind: nothing diverged).
 *  candidate, holding the key as a running primary -> done.
 *  from, any phase past its deadline -> aborted: in pausing nothing happened
 *      (proxies resume to it); later, the failover key is pointed back at the
 *      old leader, which takes the key again if the candidate did not.
 *
 * Every write is a compare-and-swap on the record's previous value, so a
 * cancel (ctl deletes a scheduled record) or a second writer never races.
 */
#include "ha/switchover.h"

#include <inttypes.h>
#include <stdarg.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "ha/agent_int.h"
#include "ha/failover.h"
#include "pg/pgconf.h"

#define PAUSE_TIMEOUT_MS 5000
#define HANDOVER_TIMEOUT_MS 20000
#define CANDIDATE_MAX_LAG (16 * 1024 * 1024)
#define KEEP_FINISHED_MS 60000

void switchover_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	struct pgha_err e;
	a->so.present = false;
	free(a->so.raw);
	a->so.raw = NULL;
	a->so.proxies = 0;
	a->so.proxies_paused = 0;
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->keys.switchover);
	if (kv != NULL) {
		if (switchover_decode(kv->value, kv->value_len, &a->so.rec, &e) == 0) {
			/* Between clusters: ctl moves it on; the agents leave it alone. */
			a->so.present = !a->so.rec.clusters;
			a->so.raw = xstrdup(kv->value);
		} else if (!a->so.bad_logged) {
			log_warn("%s: %s (ignored)", a->keys.switchover, e.msg);
			a->so.bad_logged = true;
		}
	}
	if (!a->so.present)
		return;
	a->so.bad_logged = false;
	size_t plen = strlen(a->keys.proxies);
	for (size_t i = 0; i < kvs->count; i++) {
		if (strncmp(kvs->kvs[i].key, a->keys.proxies, plen) != 0)
			continue;
		struct proxy_record r;
		a->so.proxies++;
		if (proxy_record_decode(kvs->kvs[i].value, kvs->kvs[i].value_len, &r, &e) == 0 &&
		    strcmp(r.paused_for, a->so.rec.id) == 0)
			a->so.proxies_paused++;
	}
}

void switchover_free(struct agent *a)
{
	free(a->so.raw);
	a->so.raw = NULL;
}

/* Move the record on: CAS on the value we read. */
static bool advance(struct agent *a, enum so_phase phase, int64_t deadline_ms, const char *reason)
{
	struct switchover next = a->so.rec;
	next.phase = phase;
	next.deadline_ms = deadline_ms;
	snprintf(next.reason, sizeof(next.reason), "%s", reason ? reason : "");
	char *json = switchover_encode(&next);
	bool done = false;
	struct pgha_err e;
	if (etcd_put_if_value(a->dcs.etcd, a->keys.switchover, a->so.raw, json, 0, &done, &e) != 0)
		log_warn("switchover %s: cannot record phase %s: %s", a->so.rec.id, so_phase_name(phase), e.msg);
	else if (!done)
		log_info("switchover %s: the record changed meanwhile (cancelled?)", a->so.rec.id);
	if (done) {
		log_info("switchover %s (%s -> %s): %s%s%s", a->so.rec.id, a->so.rec.from, a->so.rec.to, so_phase_name(phase),
			 reason && reason[0] ? ": " : "", reason ? reason : "");
		a->so.rec = next;
		free(a->so.raw);
		a->so.raw = json;
	} else {
		free(json);
	}
	return done;
}

void switchover_check_candidate(const char *to, const struct member *m, const struct sync_set *sync_set,
				char *why, size_t len)
{
	why[0] = '\0';
	if (m == NULL)
		snprintf(why, len, "%s is not a member of the cluster (or its agent is down)", to);
	else if (m->state != STATE_STREAMING)
		snprintf(why, len, "%s is %s, not streaming", to, member_state_name(m->state));
	else if (m->tags.nofailover)
		snprintf(why, len, "%s is tagged nofailover", to);
	else if (m->lag_bytes < 0 || m->lag_bytes > CANDIDATE_MAX_LAG)
		snprintf(why, len, "%s is %" PRId64 " bytes behind (more than %d)", to, m->lag_bytes, CANDIDATE_MAX_LAG);
	else if (sync_set != NULL && !sync_set_has(sync_set, to))
		snprintf(why, len, "synchronous mode: %s is not a synchronous standby", to);
}

/* The candidate's last received WAL position, asked of its PostgreSQL itself (0: unknown). */
static uint64_t candidate_received(const struct agent *a, const struct member *m)
{
	/* The superuser's password comes from the agent's passfile, as for every other connection. */
	char *base = pg_conninfo(m->host, m->port, a->cfg.superuser, a->cfg.pgpass, "pgha-agent", "postgres", &a->tls);
	char *ci = xasprintf("%s connect_timeout=2", base);   /* the HA loop waits for it */
	PGconn *c = PQconnectdb(ci);
	free(base);
	free(ci);
	uint64_t lsn = 0;
	if (c != NULL && PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, "SELECT pg_last_wal_receive_lsn()");
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetisnull(r, 0, 0) ||
		    lsn_parse(PQgetvalue(r, 0, 0), &lsn) != 0)
			lsn = 0;
		PQclear(r);
	} else if (c != NULL) {
		log_debug("switchover: asking %s for its WAL position: %s", m->name, PQerrorMessage(c));
	}
	PQfinish(c);
	return lsn;
}

/*
 * The old leader, stopped cleanly and still holding the key: has the
 * candidate received every WAL record, up to and including our shutdown
 * checkpoint? Asked of its PostgreSQL directly (its agent's /status is up to
 * a loop old).
 */
static bool candidate_has_everything(struct agent *a)
{
	if (a->pg.phase != PG_STOPPED || a->pg.data.checkpoint_lsn == 0 ||
	    strcmp(a->pg.data.cluster_state, "shut down") != 0)
		return false;
	const struct member *m = cluster_view_member(&a->view, a->so.rec.to);
	if (m == NULL || m->port <= 0)
		return false;
	uint64_t got = candidate_received(a, m);
	if (got <= a->pg.data.checkpoint_lsn)
		return false;
	if (!a->so.handover_logged) {
		log_info("switchover %s: %s has received our WAL to %X/%X, past the shutdown checkpoint at %X/%X: "
			 "giving it the key", a->so.rec.id, a->so.rec.to, (unsigned)(got >> 32), (unsigned)got,
			 (unsigned)(a->pg.data.checkpoint_lsn >> 32), (unsigned)a->pg.data.checkpoint_lsn);
		a->so.handover_logged = true;
	}
	return true;
}

/* ---- the decision (pure) ------------------------------------------------- */

static struct so_step advance_to(enum so_phase phase, int64_t deadline_ms, const char *fmt, ...) PGHA_PRINTF(3, 4);

static struct so_step advance_to(enum so_phase phase, int64_t deadline_ms, const char *fmt, ...)
{
	struct so_step s = {.action = SO_STEP_ADVANCE, .phase = phase, .deadline_ms = deadline_ms};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s.reason, sizeof(s.reason), fmt, ap);
	va_end(ap);
	return s;
}

struct so_step switchover_decide(const struct so_inputs *in)
{
	static const struct so_step none = {.action = SO_STEP_NONE};
	const struct switchover *so = in->so;
	const char *me = in->me;
	int64_t now = in->now_ms;
	bool primary = in->leader && strcmp(in->leader, me) == 0 && in->running_primary;
	bool from_me = strcmp(so->from, me) == 0, to_me = strcmp(so->to, me) == 0;
	bool late = so->deadline_ms > 0 && now > so->deadline_ms;
	struct so_step s;

	/* Finished records are left a while for `ctl list`, then the leader removes them. */
	if (so->phase == SO_DONE || so->phase == SO_ABORTED) {
		if (primary && so->deadline_ms > 0 && now > so->deadline_ms + KEEP_FINISHED_MS)
			return (struct so_step){.action = SO_STEP_REMOVE};
		return none;
	}
	if (to_me && primary && (so->phase == SO_DEMOTING || so->phase == SO_PROMOTING)) {
		if (in->started_ms > 0)
			return advance_to(SO_DONE, now, "the new leader runs (%.1f s after pausing began)",
					  (double)(now - in->started_ms) / 1000.0);
		return advance_to(SO_DONE, now, "the new leader runs");
	}
	if (!from_me)
		return none;
	switch (so->phase) {
	case SO_SCHEDULED:
		if (!primary || now < so->at_ms)
			return none;
		if (in->paused)
			return advance_to(SO_ABORTED, now, "maintenance mode is on");
		if (in->candidate_problem[0])
			return advance_to(SO_ABORTED, now, "%s", in->candidate_problem);
		s = advance_to(SO_PAUSING, now + PAUSE_TIMEOUT_MS, "%s", "");
		s.start_clock = true;
		return s;
	case SO_PAUSING:
		if (!primary)
			return advance_to(SO_ABORTED, now, "this member stopped being the running leader");
		if (late)
			return advance_to(SO_ABORTED, now, "only %d of %d proxies paused within %d ms", in->proxies_paused,
					  in->proxies, PAUSE_TIMEOUT_MS);
		if (in->proxies_paused < in->proxies)
			return none;
		if (in->candidate_problem[0])
			return advance_to(SO_ABORTED, now, "%s", in->candidate_problem);
		s = advance_to(SO_DEMOTING, now + HANDOVER_TIMEOUT_MS, "%s", "");
		s.start_clock = in->started_ms == 0;
		s.failover = SO_FAILOVER_CANDIDATE;
		return s;
	case SO_DEMOTING:
	case SO_PROMOTING:
		if (in->leader && strcmp(in->leader, so->to) == 0) {
			if (so->phase == SO_DEMOTING)
				return advance_to(SO_PROMOTING, so->deadline_ms, "%s", "");
			return none;
		}
		if (!late)
			return none;
		s = advance_to(SO_ABORTED, now, "%s did not take over within %d ms: %s goes on as the leader", so->to,
			       HANDOVER_TIMEOUT_MS, me);
		s.failover = SO_FAILOVER_ME;
		return s;
	case SO_DONE:
	case SO_ABORTED:
		break;
	}
	return none;
}

/* ---- acting on it --------------------------------------------------------- */

/* Gather: the old leader, stopped, waits until the candidate confirms our last WAL (decide reads it). */
static void handover(struct agent *a)
{
	if (a->so.rec.phase == SO_DEMOTING && strcmp(a->so.rec.from, a->cfg.name) == 0 && a->view.leader &&
	    strcmp(a->view.leader, a->cfg.name) == 0)
		a->so.handover_wait = !candidate_has_everything(a);
	else
		a->so.handover_logged = false;
}

void switchover_step(struct agent *a)
{
	a->so.handover_wait = false;
	if (!a->so.present || !a->dcs.ok)
		return;
	handover(a);
	char problem[300];
	switchover_check_candidate(a->so.rec.to, cluster_view_member(&a->view, a->so.rec.to),
				   sync_mode_active(a) ? &a->sync.pub.set : NULL, problem, sizeof(problem));
	struct so_inputs in = {
		.so = &a->so.rec, .me = a->cfg.name, .leader = a->view.leader, .running_primary = node_is_primary(a),
		.paused = a->fo.paused, .proxies = a->so.proxies, .proxies_paused = a->so.proxies_paused,
		.started_ms = a->so.started_ms, .candidate_problem = problem, .now_ms = wall_ms(),
	};
	struct so_step s = switchover_decide(&in);
	if (s.action == SO_STEP_REMOVE) {
		bool done;
		struct pgha_err e;
		if (etcd_delete_if_value(a->dcs.etcd, a->keys.switchover, a->so.raw, &done, &e) != 0)
			log_debug("removing the finished switchover record: %s", e.msg);
		return;
	}
	if (s.action != SO_STEP_ADVANCE || !advance(a, s.phase, s.deadline_ms, s.reason))
		return;
	if (s.start_clock)
		a->so.started_ms = in.now_ms;
	if (s.failover == SO_FAILOVER_CANDIDATE)
		failover_request(a, a->so.rec.to, a->so.rec.id);
	else if (s.failover == SO_FAILOVER_ME)
		failover_request(a, a->cfg.name, a->so.rec.id);
}
