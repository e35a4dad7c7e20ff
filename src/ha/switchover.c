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
	a->so_present = false;
	free(a->so_raw);
	a->so_raw = NULL;
	a->so_proxies = 0;
	a->so_proxies_paused = 0;
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->key_switchover);
	if (kv != NULL) {
		if (switchover_decode(kv->value, kv->value_len, &a->so, &e) == 0) {
			a->so_present = true;
			a->so_raw = xstrdup(kv->value);
		} else if (!a->so_bad_logged) {
			log_warn("%s: %s (ignored)", a->key_switchover, e.msg);
			a->so_bad_logged = true;
		}
	}
	if (!a->so_present)
		return;
	a->so_bad_logged = false;
	size_t plen = strlen(a->key_proxies);
	for (size_t i = 0; i < kvs->count; i++) {
		if (strncmp(kvs->kvs[i].key, a->key_proxies, plen) != 0)
			continue;
		struct proxy_record r;
		a->so_proxies++;
		if (proxy_record_decode(kvs->kvs[i].value, kvs->kvs[i].value_len, &r, &e) == 0 &&
		    strcmp(r.paused_for, a->so.id) == 0)
			a->so_proxies_paused++;
	}
}

/* Move the record on: CAS on the value we read. */
static bool advance(struct agent *a, enum so_phase phase, int64_t deadline_ms, const char *reason)
{
	struct switchover next = a->so;
	next.phase = phase;
	next.deadline_ms = deadline_ms;
	snprintf(next.reason, sizeof(next.reason), "%s", reason ? reason : "");
	char *json = switchover_encode(&next);
	bool done = false;
	struct pgha_err e;
	if (etcd_put_if_value(a->etcd, a->key_switchover, a->so_raw, json, 0, &done, &e) != 0)
		log_warn("switchover %s: cannot record phase %s: %s", a->so.id, so_phase_name(phase), e.msg);
	else if (!done)
		log_info("switchover %s: the record changed meanwhile (cancelled?)", a->so.id);
	if (done) {
		log_info("switchover %s (%s -> %s): %s%s%s", a->so.id, a->so.from, a->so.to, so_phase_name(phase),
			 reason && reason[0] ? ": " : "", reason ? reason : "");
		a->so = next;
		free(a->so_raw);
		a->so_raw = json;
	} else {
		free(json);
	}
	return done;
}

static void set_failover_key(struct agent *a, const char *to)
{
	char *v = xasprintf("{\"to\":\"%s\",\"switchover\":\"%s\"}", to, a->so.id);
	struct pgha_err e;
	if (etcd_put(a->etcd, a->key_failover, v, 0, &e) != 0)
		log_warn("switchover %s: writing the failover key: %s", a->so.id, e.msg);
	else
		snprintf(a->failover_to, sizeof(a->failover_to), "%s", to);
	free(v);
}

/* Why the candidate cannot take over now ("" if it can). */
static void check_candidate(struct agent *a, char *why, size_t len)
{
	why[0] = '\0';
	const struct member *m = cluster_view_member(&a->view, a->so.to);
	if (m == NULL)
		snprintf(why, len, "%s is not a member of the cluster (or its agent is down)", a->so.to);
	else if (m->state != STATE_STREAMING)
		snprintf(why, len, "%s is %s, not streaming", a->so.to, member_state_name(m->state));
	else if (m->tags.nofailover)
		snprintf(why, len, "%s is tagged nofailover", a->so.to);
	else if (m->lag_bytes < 0 || m->lag_bytes > CANDIDATE_MAX_LAG)
		snprintf(why, len, "%s is %" PRId64 " bytes behind (more than %d)", a->so.to, m->lag_bytes,
			 CANDIDATE_MAX_LAG);
	else if (sync_mode_active(a) && !sync_set_has(&a->sync.set, a->so.to))
		snprintf(why, len, "synchronous mode: %s is not a synchronous standby", a->so.to);
}

/* The candidate's last received WAL position, asked of its PostgreSQL itself (0: unknown). */
static uint64_t candidate_received(struct agent *a, const struct member *m)
{
	/* The superuser's password comes from the agent's passfile, as for every other connection. */
	char *base = pg_conninfo(m->host, m->port, a->cfg.superuser, a->cfg.pgpass, "pgha-agent", "postgres");
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
	if (a->phase != PG_STOPPED || a->data.checkpoint_lsn == 0 ||
	    strcmp(a->data.cluster_state, "shut down") != 0)
		return false;
	const struct member *m = cluster_view_member(&a->view, a->so.to);
	if (m == NULL || m->port <= 0)
		return false;
	uint64_t got = candidate_received(a, m);
	if (got <= a->data.checkpoint_lsn)
		return false;
	if (!a->so_handover_logged) {
		log_info("switchover %s: %s has received our WAL to %X/%X, past the shutdown checkpoint at %X/%X: "
			 "giving it the key", a->so.id, a->so.to, (unsigned)(got >> 32), (unsigned)got,
			 (unsigned)(a->data.checkpoint_lsn >> 32), (unsigned)a->data.checkpoint_lsn);
		a->so_handover_logged = true;
	}
	return true;
}

void switchover_step(struct agent *a)
{
	a->so_handover_wait = false;
	if (!a->so_present || !a->dcs_ok)
		return;
	if (a->so.phase == SO_DEMOTING && strcmp(a->so.from, a->cfg.name) == 0 && a->view.leader &&
	    strcmp(a->view.leader, a->cfg.name) == 0)
		a->so_handover_wait = !candidate_has_everything(a);
	else
		a->so_handover_logged = false;
	const char *me = a->cfg.name;
	bool leader = a->view.leader && strcmp(a->view.leader, me) == 0;
	bool primary = leader && failover_is_primary(a);
	int64_t now = wall_ms();
	struct switchover *so = &a->so;
	bool from_me = strcmp(so->from, me) == 0, to_me = strcmp(so->to, me) == 0;
	bool late = so->deadline_ms > 0 && now > so->deadline_ms;

	/* Finished records are left a while for `ctl list`, then the leader removes them. */
	if (so->phase == SO_DONE || so->phase == SO_ABORTED) {
		if (primary && so->deadline_ms > 0 && now > so->deadline_ms + KEEP_FINISHED_MS) {
			bool done;
			struct pgha_err e;
			if (etcd_delete_if_value(a->etcd, a->key_switchover, a->so_raw, &done, &e) != 0)
				log_debug("removing the finished switchover record: %s", e.msg);
		}
		return;
	}
	if (to_me && primary && (so->phase == SO_DEMOTING || so->phase == SO_PROMOTING)) {
		char took[96];
		snprintf(took, sizeof(took), "the new leader runs (%.1f s after pausing began)",
			 (double)(now - a->so_started_ms) / 1000.0);
		advance(a, SO_DONE, now, a->so_started_ms > 0 ? took : "the new leader runs");
		return;
	}
	if (!from_me)
		return;
	char why[300];
	switch (so->phase) {
	case SO_SCHEDULED:
		if (!primary || now < so->at_ms)
			return;
		if (a->paused) {
			advance(a, SO_ABORTED, now, "maintenance mode is on");
			return;
		}
		check_candidate(a, why, sizeof(why));
		if (why[0]) {
			advance(a, SO_ABORTED, now, why);
			return;
		}
		if (advance(a, SO_PAUSING, now + PAUSE_TIMEOUT_MS, NULL))
			a->so_started_ms = now;
		return;
	case SO_PAUSING:
		if (!primary) {
			advance(a, SO_ABORTED, now, "this member stopped being the running leader");
			return;
		}
		if (late) {
			snprintf(why, sizeof(why), "only %d of %d proxies paused within %d ms", a->so_proxies_paused,
				 a->so_proxies, PAUSE_TIMEOUT_MS);
			advance(a, SO_ABORTED, now, why);
			return;
		}
		if (a->so_proxies_paused < a->so_proxies)
			return;
		check_candidate(a, why, sizeof(why));
		if (why[0]) {
			advance(a, SO_ABORTED, now, why);
			return;
		}
		if (a->so_started_ms == 0)
			a->so_started_ms = now;
		if (advance(a, SO_DEMOTING, now + HANDOVER_TIMEOUT_MS, NULL))
			set_failover_key(a, so->to);
		return;
	case SO_DEMOTING:
	case SO_PROMOTING: {
		const char *holder = a->view.leader;
		if (holder && strcmp(holder, so->to) == 0) {
			if (so->phase == SO_DEMOTING)
				advance(a, SO_PROMOTING, so->deadline_ms, NULL);
			return;
		}
		if (!late)
			return;
		snprintf(why, sizeof(why), "%s did not take over within %d ms: %s goes on as the leader", so->to,
			 HANDOVER_TIMEOUT_MS, me);
		if (advance(a, SO_ABORTED, now, why))
			set_failover_key(a, me);
		return;
	}
	case SO_DONE:
	case SO_ABORTED:
		return;
	}
}
