/*
 * metrics.c — the agent's /metrics: Prometheus text rendered from the API
 * snapshot (the member record the HA loop last published, its counters, the
 * cluster view it last read), so a scrape answers at once whatever PostgreSQL
 * or etcd are doing, and says what it does not know (a NaN, or a 0 in a
 * *_known gauge) instead of waiting. Names follow Prometheus conventions; every
 * series has cluster and member labels; docs/METRICS.md lists them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cluster/backup_key.h"
#include "cluster/sync_key.h"
#include "common/prom.h"

struct ctx {
	struct strbuf *out;
	const char *labels[5];    /* cluster, member */
};

static void head(struct ctx *c, const char *name, const char *type, const char *help)
{
	prom_family(c->out, name, type, help);
}

/* name{cluster="..",member=".."[,extra]} value */
static void series(struct ctx *c, const char *name, const char *extra_k, const char *extra_v, double value)
{
	const char *extra[3] = {extra_k, extra_v, NULL};
	prom_sample(c->out, name, c->labels, extra_k ? extra : NULL, value);
}

static void gauge(struct ctx *c, const char *name, const char *help, double value)
{
	head(c, name, "gauge", help);
	series(c, name, NULL, NULL, value);
}

static void counter(struct ctx *c, const char *name, const char *help, double value)
{
	head(c, name, "counter", help);
	series(c, name, NULL, NULL, value);
}

static const char *role_of(const struct api_status *st)
{
	const struct member *m = &st->self;
	if (m->role == ROLE_PRIMARY)
		return st->holds_leader_key ? "primary" : "demoting";
	if (m->role == ROLE_REPLICA)
		return "replica";
	if (m->role == ROLE_UNINITIALIZED)
		return "uninitialized";
	return "unknown";
}

static void member_lines(struct ctx *c, const struct api_status *st, int64_t now_ms)
{
	const struct member *m = &st->self;
	static const char *const roles[] = {"primary", "replica", "demoting", "uninitialized", "unknown"};
	const char *role = role_of(st);
	/* The info idiom: 1, with where the member runs as labels, for joins (group_left(region)). */
	head(c, "pgha_member_info", "gauge", "Always 1; the labels say where this member runs ([node] region and zone, "
	     "empty when not set).");
	const char *where[] = {"region", m->tags.region, "zone", m->tags.zone, NULL};
	prom_sample(c->out, "pgha_member_info", c->labels, where, 1);
	head(c, "pgha_member_role", "gauge", "This member's role: 1 for the one it has (primary means it also holds the leader key).");
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		series(c, "pgha_member_role", "role", roles[i], strcmp(role, roles[i]) == 0);
	head(c, "pgha_member_state", "gauge", "What this member's PostgreSQL is doing: 1 for its state.");
	for (int s = STATE_RUNNING; s <= STATE_RESTORING; s++)
		series(c, "pgha_member_state", "state", member_state_name((enum member_state)s), (int)m->state == s);
	gauge(c, "pgha_postgres_running", "PostgreSQL runs and answers (primary or standby).",
	      m->state == STATE_RUNNING || m->state == STATE_STREAMING);
	gauge(c, "pgha_postgres_streaming", "A standby receiving WAL from the leader.", m->state == STATE_STREAMING);
	gauge(c, "pgha_postgres_archive_replay", "A standby catching up from the WAL archive (not streaming).",
	      m->archive_replay);
	gauge(c, "pgha_leader", "This member holds the leader key.", st->holds_leader_key);
	gauge(c, "pgha_timeline", "PostgreSQL's timeline (0 unknown).", m->timeline);
	head(c, "pgha_wal_position_bytes", "gauge",
	     "WAL positions as bytes since 0/0: written (primary), received and replayed (standby); NaN unknown.");
	series(c, "pgha_wal_position_bytes", "kind", "written", m->role == ROLE_PRIMARY ? (double)m->wal_lsn : NAN);
	series(c, "pgha_wal_position_bytes", "kind", "received",
	       m->role == ROLE_REPLICA && m->received_lsn ? (double)m->received_lsn : NAN);
	series(c, "pgha_wal_position_bytes", "kind", "replayed",
	       m->role == ROLE_REPLICA && m->replayed_lsn ? (double)m->replayed_lsn : NAN);
	gauge(c, "pgha_replication_lag_bytes", "How far this standby is behind the leader's last published "
	      "position; 0 on the primary, NaN unknown.", m->lag_bytes >= 0 ? (double)m->lag_bytes : NAN);
	/* The standby leader of a standby cluster: NaN on every other member. */
	gauge(c, "pgha_standby_cluster_streaming", "The standby leader streams from the primary cluster (1) or not (0); "
	      "NaN on other members.", m->has_source ? (m->source[0] != '\0') : NAN);
	gauge(c, "pgha_standby_cluster_source_lag_bytes", "The standby leader: WAL replayed behind the end the primary "
	      "cluster last reported; NaN unknown or not a standby leader.",
	      m->has_source && m->source_lag_bytes >= 0 ? (double)m->source_lag_bytes : NAN);
	gauge(c, "pgha_standby_cluster_source_last_message_seconds", "The standby leader: age of the last message from "
	      "the primary cluster; NaN unknown or not a standby leader.",
	      m->has_source && m->source_msg_age_ms >= 0 ? (double)m->source_msg_age_ms / 1000.0 : NAN);
	gauge(c, "pgha_pending_restart", "A changed parameter waits for a restart (ctl restart --pending).",
	      m->pending_restart);
	gauge(c, "pgha_member_error", "The member record carries an error (ctl list shows it).", m->error[0] != '\0');
	gauge(c, "pgha_paused", "The cluster is in maintenance mode (no automatic failover).", st->paused);
	gauge(c, "pgha_failsafe_active", "The leader stays primary without etcd because every member confirmed.",
	      st->failsafe_active);
	gauge(c, "pgha_etcd_reachable", "This agent's last read of etcd succeeded.", st->etcd_reachable);
	gauge(c, "pgha_etcd_last_contact_timestamp_seconds", "Unix time of this agent's last successful etcd read "
	      "(NaN never).", st->etcd_ok_s > 0 ? (double)st->etcd_ok_s : NAN);
	gauge(c, "pgha_lease_remaining_seconds", "Time left on this member's etcd lease (NaN none): the leader "
	      "fences itself before it reaches 0.", st->lease_left_ms >= 0 ? (double)st->lease_left_ms / 1000.0 : NAN);
	gauge(c, "pgha_ha_loop_duration_seconds", "How long the agent's last HA loop took.", (double)st->loop_ms / 1000.0);
	gauge(c, "pgha_ha_loop_age_seconds", "Time since the agent's last HA loop ended (it should stay below the "
	      "loop wait).", st->last_loop_ms > 0 ? (double)(now_ms - st->last_loop_ms) / 1000.0 : NAN);
	counter(c, "pgha_ha_loops_total", "HA loops run since the agent started.", (double)st->loops);
	counter(c, "pgha_leader_changes_total", "Changes of the leader this agent saw since it started.",
		(double)st->leader_changes);
	counter(c, "pgha_promotions_total", "Times this member became primary under the leader key since the agent "
		"started.", (double)st->promotions);
	gauge(c, "pgha_agent_start_time_seconds", "Unix time the agent started.", (double)st->started_s);
	if (st->tls_cert_file != NULL && m->tls_not_after > 0) {
		/* One series per link the certificate serves: an alert can name what breaks. */
		head(c, "pgha_tls_cert_expiry_timestamp_seconds", "gauge",
		     "Unix time the [tls] certificate in use expires (its notAfter), per link it serves.");
		const char *pg[] = {"link", "postgresql", "file", st->tls_cert_file, NULL};
		prom_sample(c->out, "pgha_tls_cert_expiry_timestamp_seconds", c->labels, pg, (double)m->tls_not_after);
		if (st->api_tls) {
			const char *api[] = {"link", "api", "file", st->tls_cert_file, NULL};
			prom_sample(c->out, "pgha_tls_cert_expiry_timestamp_seconds", c->labels, api,
				    (double)m->tls_not_after);
		}
	}
	if (m->archive[0]) {
		gauge(c, "pgha_archive_ok", "WAL archiving with pgBackRest works on this member ([backup] on).",
		      strcmp(m->archive, "ok") == 0);
		gauge(c, "pgha_archive_last_archived_timestamp_seconds", "Primary: unix time of the last WAL segment "
		      "archived (NaN unknown).", m->archived_at > 0 ? (double)m->archived_at : NAN);
	}
}

static void cluster_lines(struct ctx *c, const struct cluster_view *v)
{
	int streaming = 0;
	for (size_t i = 0; i < v->nmembers; i++)
		streaming += v->members[i].state == STATE_STREAMING;
	const struct member *leader = v->leader ? cluster_view_member(v, v->leader) : NULL;
	gauge(c, "pgha_cluster_members", "Members with a record in etcd, as this member last read it.",
	      (double)v->nmembers);
	gauge(c, "pgha_cluster_streaming_standbys", "Standbys streaming from the leader.", streaming);
	gauge(c, "pgha_cluster_leader_running", "A member holds the leader key and runs as primary.",
	      leader != NULL && leader->role == ROLE_PRIMARY && leader->state == STATE_RUNNING);
	head(c, "pgha_cluster_member_lag_bytes", "gauge", "Each standby's lag behind the leader, from its record.");
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		if (m->role == ROLE_REPLICA && m->lag_bytes >= 0)
			series(c, "pgha_cluster_member_lag_bytes", "standby", m->name, (double)m->lag_bytes);
	}
	struct backup_run last;
	struct pgha_err e;
	if (v->backup_last != NULL && backup_run_decode(v->backup_last, "backup last", &last, &e) == 0) {
		gauge(c, "pgha_backup_last_ok", "The last backup the cluster ran succeeded.", last.ok);
		gauge(c, "pgha_backup_last_finished_timestamp_seconds", "Unix time the last backup ended.",
		      (double)last.finished_at);
	}
	gauge(c, "pgha_backup_running", "A backup runs now.", v->backup_running != NULL);
}

void api_metrics_render(const struct api_status *st, const struct cluster_view *v, const char *cluster,
			int64_t now_ms, struct strbuf *out)
{
	struct ctx c = {.out = out, .labels = {"cluster", cluster, "member", st->self.name, NULL}};
	member_lines(&c, st, now_ms);
	gauge(&c, "pgha_cluster_view_known", "This member has read the cluster from etcd (else the pgha_cluster_* "
	      "series are missing).", v != NULL);
	if (v != NULL)
		cluster_lines(&c, v);
	/* Synchronous replication: the sync key the leader publishes names the standbys a commit waits for. */
	struct sync_state ss;
	struct pgha_err e;
	if (v != NULL && v->sync != NULL && sync_state_decode(v->sync, &ss, &e) == 0) {
		gauge(&c, "pgha_member_synchronous", "This member is a synchronous standby the sync key lists (only "
		      "those may be promoted in synchronous mode).", sync_set_has(&ss.set, st->self.name));
		gauge(&c, "pgha_cluster_synchronous_standbys", "Synchronous standbys the sync key lists.", (double)ss.set.n);
		gauge(&c, "pgha_cluster_synchronous_quorum", "How many of them a commit waits for (quorum mode; 0: none).",
		      ss.set.num);
	}
}

void api_metrics_render_pg(const struct api_source *src, int64_t now_ms, struct strbuf *out)
{
	struct ctx c = {.out = out, .labels = {"cluster", src->cluster, "member", src->status.self.name, NULL}};
	gauge(&c, "pgha_pg_stats_up", "The last collection of PostgreSQL's statistics reached it (else the "
	      "pgha_pg_* series are missing).", src->pg_up);
	gauge(&c, "pgha_pg_stats_age_seconds", "Time since the last collection ended (they run every few seconds, "
	      "off the HA loop; NaN: none yet).", src->pg_collected ? (double)(now_ms - src->pg_at_ms) / 1000.0 : NAN);
	gauge(&c, "pgha_pg_stats_duration_seconds", "How long the last collection took.",
	      (double)src->pg_duration_ms / 1000.0);
	counter(&c, "pgha_pg_stats_errors_total", "Collections that could not reach PostgreSQL or had a query fail.",
		(double)src->pg_errors);
	if (src->pg_up)
		sb_append(out, src->pg_text.data ? src->pg_text.data : "", src->pg_text.len);
}
