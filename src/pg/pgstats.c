/*
 * pgstats.c — PostgreSQL's own statistics as Prometheus text (see pgstats.h):
 * what postgres_exporter's default collectors give, from one connection, each
 * query bounded by the session's statement_timeout. A query that fails adds
 * nothing and is counted; the others still answer.
 */
#include "pg/pgstats.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/prom.h"
#include "common/util.h"

struct out {
	struct strbuf *sb;
	const char *const *labels;
	int failed;
	bool dead;                /* a query got no answer in time: the connection is given up */
	char first_error[256];
};

/*
 * Run sql and wait at most QUERY_WAIT_MS for its answer. statement_timeout
 * ends a slow query on the server first; this bounds what it cannot (a
 * server that is frozen, SIGSTOPped or unreachable): the connection is then
 * given up (o->dead) and the next round opens another.
 */
#define QUERY_WAIT_MS 3000

static PGresult *exec_bounded(struct out *o, PGconn *c, const char *sql)
{
	if (o->dead || !PQsendQuery(c, sql))
		return NULL;
	int64_t deadline = now_ms() + QUERY_WAIT_MS;
	while (PQisBusy(c)) {
		int64_t left = deadline - now_ms();
		struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
		if (left <= 0 || pfd.fd < 0 || (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) ||
		    !PQconsumeInput(c)) {
			o->dead = true;
			return NULL;
		}
	}
	PGresult *r = PQgetResult(c), *extra;
	while ((extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	return r;
}

/* Run sql; NULL (counted, the first error kept) unless it returned rows. */
static PGresult *query(struct out *o, PGconn *c, const char *sql)
{
	PGresult *r = exec_bounded(o, c, sql);
	if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	if (o->failed++ == 0) {
		const char *msg = r != NULL ? PQresultErrorMessage(r) : o->dead ? "no answer within 3 s"
											: PQerrorMessage(c);
		snprintf(o->first_error, sizeof(o->first_error), "%.*s", (int)strcspn(msg, "\n"), msg);
	}
	PQclear(r);
	return NULL;
}

/* A column's value as a double; NaN when NULL. */
static double num(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return NAN;
	return strtod(PQgetvalue(r, row, col), NULL);
}

static void one(struct out *o, const char *name, const char *type, const char *help, double v)
{
	prom_family(o->sb, name, type, help);
	prom_sample(o->sb, name, o->labels, NULL, v);
}

/* Per database: the pg_stat_database counters and its size. */
static void databases(struct out *o, PGconn *c)
{
	PGresult *r = query(o, c,
		"SELECT datname, numbackends, xact_commit, xact_rollback, blks_read, blks_hit, deadlocks, conflicts, "
		"temp_bytes, pg_database_size(datid) FROM pg_stat_database WHERE datname IS NOT NULL "
		"AND datname <> 'template0' ORDER BY datname");
	if (r == NULL)
		return;
	static const struct {
		const char *name, *type, *help;
	} cols[] = {
		{"pgha_pg_database_backends", "gauge", "Backends connected to the database."},
		{"pgha_pg_database_xact_commit_total", "counter", "Transactions committed."},
		{"pgha_pg_database_xact_rollback_total", "counter", "Transactions rolled back."},
		{"pgha_pg_database_blocks_read_total", "counter", "Blocks read from disk (or the OS cache)."},
		{"pgha_pg_database_blocks_hit_total", "counter", "Blocks found in shared buffers."},
		{"pgha_pg_database_deadlocks_total", "counter", "Deadlocks detected."},
		{"pgha_pg_database_conflicts_total", "counter", "Queries cancelled by recovery conflicts (standby)."},
		{"pgha_pg_database_temp_bytes_total", "counter", "Bytes written to temporary files."},
		{"pgha_pg_database_size_bytes", "gauge", "The database's size on disk."},
	};
	for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
		prom_family(o->sb, cols[k].name, cols[k].type, cols[k].help);
		for (int i = 0; i < PQntuples(r); i++) {
			const char *db[] = {"datname", PQgetvalue(r, i, 0), NULL};
			prom_sample(o->sb, cols[k].name, o->labels, db, num(r, i, (int)k + 1));
		}
	}
	PQclear(r);
}

/* Client connections by state against max_connections; the longest transaction, the oldest idle one. */
static void activity(struct out *o, PGconn *c)
{
	PGresult *r = query(o, c,
		"SELECT s.state, count(a.pid) FROM unnest(ARRAY['active', 'idle', 'idle in transaction', "
		"'idle in transaction (aborted)', 'fastpath function call', 'disabled']) AS s(state) "
		"LEFT JOIN pg_stat_activity a ON a.state = s.state AND a.backend_type = 'client backend' "
		"GROUP BY s.state ORDER BY s.state");
	if (r != NULL) {
		prom_family(o->sb, "pgha_pg_connections", "gauge", "Client connections by state.");
		for (int i = 0; i < PQntuples(r); i++) {
			const char *st[] = {"state", PQgetvalue(r, i, 0), NULL};
			prom_sample(o->sb, "pgha_pg_connections", o->labels, st, num(r, i, 1));
		}
		PQclear(r);
	}
	r = query(o, c,
		"SELECT current_setting('max_connections')::int, "
		"coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0), "
		"coalesce(extract(epoch FROM max(clock_timestamp() - state_change) FILTER "
		"(WHERE state LIKE 'idle in transaction%')), 0) "
		"FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
	if (r != NULL) {
		one(o, "pgha_pg_max_connections", "gauge", "The max_connections setting.", num(r, 0, 0));
		one(o, "pgha_pg_longest_transaction_seconds", "gauge",
		    "Age of the oldest open transaction of a client (0: none).", num(r, 0, 1));
		one(o, "pgha_pg_oldest_idle_in_transaction_seconds", "gauge",
		    "How long the oldest idle-in-transaction session has been idle (0: none).", num(r, 0, 2));
		PQclear(r);
	}
}

/* Wraparound: the oldest unfrozen transaction and multixact ids. */
static void wraparound(struct out *o, PGconn *c)
{
	PGresult *r = query(o, c, "SELECT max(age(datfrozenxid)), max(mxid_age(datminmxid)) FROM pg_database");
	if (r == NULL)
		return;
	one(o, "pgha_pg_xid_age", "gauge", "Age of the oldest unfrozen transaction id of any database "
	    "(wraparound at 2^31; autovacuum forces a freeze at autovacuum_freeze_max_age).", num(r, 0, 0));
	one(o, "pgha_pg_mxid_age", "gauge", "Age of the oldest multixact id of any database.", num(r, 0, 1));
	PQclear(r);
}

/* The primary's view of each standby, and the replication slots. */
static void replication(struct out *o, PGconn *c)
{
	PGresult *r = query(o, c,
		"SELECT application_name, state, extract(epoch FROM write_lag), extract(epoch FROM flush_lag), "
		"extract(epoch FROM replay_lag), pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) "
		"FROM pg_stat_replication WHERE NOT pg_is_in_recovery() ORDER BY application_name");
	if (r != NULL) {
		prom_family(o->sb, "pgha_pg_replication_lag_seconds", "gauge", "Primary: how long ago a standby last "
			    "wrote, flushed or replayed WAL the primary had sent (PostgreSQL's write/flush/replay_lag; "
			    "NaN when idle).");
		static const char *const kinds[] = {"write", "flush", "replay"};
		for (int i = 0; i < PQntuples(r); i++)
			for (int k = 0; k < 3; k++) {
				const char *l[] = {"standby", PQgetvalue(r, i, 0), "kind", kinds[k], NULL};
				prom_sample(o->sb, "pgha_pg_replication_lag_seconds", o->labels, l, num(r, i, 2 + k));
			}
		prom_family(o->sb, "pgha_pg_replication_replay_lag_bytes", "gauge",
			    "Primary: WAL bytes a standby has not replayed yet.");
		for (int i = 0; i < PQntuples(r); i++) {
			const char *l[] = {"standby", PQgetvalue(r, i, 0), NULL};
			prom_sample(o->sb, "pgha_pg_replication_replay_lag_bytes", o->labels, l, num(r, i, 5));
		}
		prom_family(o->sb, "pgha_pg_replication_streaming", "gauge", "Primary: a standby connected and streaming.");
		for (int i = 0; i < PQntuples(r); i++) {
			const char *l[] = {"standby", PQgetvalue(r, i, 0), NULL};
			prom_sample(o->sb, "pgha_pg_replication_streaming", o->labels, l,
				    strcmp(PQgetvalue(r, i, 1), "streaming") == 0);
		}
		PQclear(r);
	}
	r = query(o, c,
		"SELECT slot_name, active::int, pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() "
		"THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn) "
		"FROM pg_replication_slots ORDER BY slot_name");
	if (r != NULL) {
		prom_family(o->sb, "pgha_pg_slot_active", "gauge", "A replication slot has a consumer connected.");
		for (int i = 0; i < PQntuples(r); i++) {
			const char *l[] = {"slot", PQgetvalue(r, i, 0), NULL};
			prom_sample(o->sb, "pgha_pg_slot_active", o->labels, l, num(r, i, 1));
		}
		prom_family(o->sb, "pgha_pg_slot_retained_bytes", "gauge",
			    "WAL a replication slot keeps on disk (NaN: none reserved).");
		for (int i = 0; i < PQntuples(r); i++) {
			const char *l[] = {"slot", PQgetvalue(r, i, 0), NULL};
			prom_sample(o->sb, "pgha_pg_slot_retained_bytes", o->labels, l, num(r, i, 2));
		}
		PQclear(r);
	}
	/* A standby: how old the last replayed transaction is (0 when it has replayed all it received). */
	r = query(o, c,
		"SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL "
		"WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
		"ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END, "
		"CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM pg_last_xact_replay_timestamp()) END");
	if (r != NULL) {
		one(o, "pgha_pg_replay_lag_seconds", "gauge", "Standby: age of the last replayed transaction while WAL "
		    "received is still to replay (0: caught up; NaN on the primary).", num(r, 0, 0));
		one(o, "pgha_pg_last_replay_timestamp_seconds", "gauge", "Standby: commit time of the last transaction "
		    "replayed (NaN on the primary or before the first).", num(r, 0, 1));
		PQclear(r);
	}
}

/* Checkpoints, the background writer, WAL volume, the archiver. */
static void background(struct out *o, PGconn *c)
{
	PGresult *r = query(o, c,
		"SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time / 1000, checkpoint_sync_time / 1000, "
		"buffers_checkpoint, buffers_clean, buffers_backend, maxwritten_clean FROM pg_stat_bgwriter");
	if (r != NULL) {
		prom_family(o->sb, "pgha_pg_checkpoints_total", "counter", "Checkpoints, by what asked for them.");
		const char *t[] = {"kind", "timed", NULL}, *q[] = {"kind", "requested", NULL};
		prom_sample(o->sb, "pgha_pg_checkpoints_total", o->labels, t, num(r, 0, 0));
		prom_sample(o->sb, "pgha_pg_checkpoints_total", o->labels, q, num(r, 0, 1));
		prom_family(o->sb, "pgha_pg_checkpoint_seconds_total", "counter",
			    "Time checkpoints spent writing and syncing files.");
		const char *w[] = {"phase", "write", NULL}, *s[] = {"phase", "sync", NULL};
		prom_sample(o->sb, "pgha_pg_checkpoint_seconds_total", o->labels, w, num(r, 0, 2));
		prom_sample(o->sb, "pgha_pg_checkpoint_seconds_total", o->labels, s, num(r, 0, 3));
		prom_family(o->sb, "pgha_pg_buffers_written_total", "counter", "Shared buffers written, by whom.");
		const char *bc[] = {"by", "checkpointer", NULL}, *bb[] = {"by", "bgwriter", NULL},
			   *bk[] = {"by", "backend", NULL};
		prom_sample(o->sb, "pgha_pg_buffers_written_total", o->labels, bc, num(r, 0, 4));
		prom_sample(o->sb, "pgha_pg_buffers_written_total", o->labels, bb, num(r, 0, 5));
		prom_sample(o->sb, "pgha_pg_buffers_written_total", o->labels, bk, num(r, 0, 6));
		one(o, "pgha_pg_bgwriter_maxwritten_clean_total", "counter",
		    "Times the background writer stopped a round for writing too many buffers.", num(r, 0, 7));
		PQclear(r);
	}
	r = query(o, c, "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal");
	if (r != NULL) {
		one(o, "pgha_pg_wal_records_total", "counter", "WAL records generated.", num(r, 0, 0));
		one(o, "pgha_pg_wal_full_page_images_total", "counter", "Full page images in WAL.", num(r, 0, 1));
		one(o, "pgha_pg_wal_bytes_total", "counter", "WAL generated, in bytes.", num(r, 0, 2));
		PQclear(r);
	}
	r = query(o, c,
		"SELECT archived_count, failed_count, extract(epoch FROM last_archived_time), "
		"extract(epoch FROM last_failed_time), current_setting('archive_mode') <> 'off' FROM pg_stat_archiver");
	if (r != NULL) {
		one(o, "pgha_pg_archiver_archived_total", "counter", "WAL files archived.", num(r, 0, 0));
		one(o, "pgha_pg_archiver_failed_total", "counter", "Failed attempts to archive a WAL file.", num(r, 0, 1));
		one(o, "pgha_pg_archiver_last_archived_timestamp_seconds", "gauge",
		    "Unix time of the last WAL file archived (NaN never).", num(r, 0, 2));
		one(o, "pgha_pg_archiver_last_failed_timestamp_seconds", "gauge",
		    "Unix time of the last failed attempt (NaN never).", num(r, 0, 3));
		PQclear(r);
	}
}

int pgstats_collect(PGconn *c, const char *const *labels, struct strbuf *out, bool *dead, struct pgha_err *e)
{
	struct out o = {.sb = out, .labels = labels};
	databases(&o, c);
	activity(&o, c);
	wraparound(&o, c);
	replication(&o, c);
	background(&o, c);
	if (o.failed > 0)
		err_set(e, "%d statistics queries failed; the first: %s", o.failed, o.first_error);
	*dead = o.dead;
	return o.failed;
}

int pgstats_totals(PGconn *c, double *xacts, double *conns, bool *dead)
{
	struct out o = {0};
	PGresult *r = query(&o, c,
		"SELECT (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database), "
		"(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')");
	*dead = o.dead;
	if (r == NULL)
		return -1;
	*xacts = num(r, 0, 0);
	*conns = num(r, 0, 1);
	PQclear(r);
	return 0;
}
