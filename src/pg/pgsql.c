#include "pg/pgsql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/util.h"

PGconn *pg_connect_local(const struct pg_node *n, struct pgha_err *e)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", n->port);
	const char *keys[] = {"host", "port", "dbname", "user", "password", "connect_timeout",
			      "application_name", NULL};
	const char *vals[] = {n->socket_dir, port, "postgres", n->superuser,
			      n->superuser_password, "3", n->application_name ? n->application_name : "pgha",
			      NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 0);
	if (c == NULL) {
		err_set(e, "cannot allocate a libpq connection");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		char *msg = xstrdup(PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		err_set(e, "cannot connect to PostgreSQL on %s port %d: %s", n->socket_dir, n->port, msg);
		free(msg);
		PQfinish(c);
		return NULL;
	}
	return c;
}

static PGresult *exec_ok(PGconn *c, const char *sql, int nparams, const char *const *params,
			 struct pgha_err *e)
{
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		char *msg = xstrdup(PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		err_set(e, "query failed: %s", msg);
		free(msg);
		PQclear(r);
		return NULL;
	}
	return r;
}

static uint64_t lsn_col(PGresult *r, int col)
{
	uint64_t v = 0;
	if (!PQgetisnull(r, 0, col))
		lsn_parse(PQgetvalue(r, 0, col), &v);
	return v;
}

int pg_query_status(PGconn *c, struct pg_status *out, struct pgha_err *e)
{
	static const char sql[] =
		"SELECT pg_is_in_recovery(),"
		" (SELECT system_identifier FROM pg_control_system())::text,"
		" current_setting('server_version_num'),"
		/* After a promotion the checkpoint's timeline lags; the WAL file name does not. */
		" CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())"
		"  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
		" CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,"
		" pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
		" w.status, w.received_tli, w.sender_host, w.sender_port, w.latest_end_lsn::text,"
		" (extract(epoch FROM clock_timestamp() - w.last_msg_receipt_time) * 1000)::bigint"
		" FROM (SELECT 1) AS x LEFT JOIN pg_stat_wal_receiver AS w ON true";
	memset(out, 0, sizeof(*out));
	PGresult *r = exec_ok(c, sql, 0, NULL, e);
	if (r == NULL)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return err_set(e, "status query returned %d rows", PQntuples(r));
	}
	out->in_recovery = PQgetvalue(r, 0, 0)[0] == 't';
	snprintf(out->system_id, sizeof(out->system_id), "%s", PQgetvalue(r, 0, 1));
	out->server_version = atoi(PQgetvalue(r, 0, 2));
	out->timeline = (uint32_t)strtoul(PQgetvalue(r, 0, 3), NULL, 10);
	out->wal_lsn = lsn_col(r, 4);
	out->received_lsn = lsn_col(r, 5);
	out->replayed_lsn = lsn_col(r, 6);
	if (!PQgetisnull(r, 0, 7))
		out->streaming = strcmp(PQgetvalue(r, 0, 7), "streaming") == 0;
	if (!PQgetisnull(r, 0, 8)) {
		uint32_t tli = (uint32_t)strtoul(PQgetvalue(r, 0, 8), NULL, 10);
		if (tli > out->timeline)
			out->timeline = tli;
	}
	if (!PQgetisnull(r, 0, 9))
		snprintf(out->upstream_host, sizeof(out->upstream_host), "%s", PQgetvalue(r, 0, 9));
	if (!PQgetisnull(r, 0, 10))
		out->upstream_port = atoi(PQgetvalue(r, 0, 10));
	out->sender_end_lsn = lsn_col(r, 11);
	out->last_msg_age_ms = -1;
	if (!PQgetisnull(r, 0, 12)) {
		long long age = atoll(PQgetvalue(r, 0, 12));
		out->last_msg_age_ms = age < 0 ? 0 : age;   /* clocks of one host: never negative but for rounding */
	}
	PQclear(r);
	return 0;
}

int pg_ensure_role(PGconn *c, const char *role, const char *password, bool replication,
		   struct pgha_err *e)
{
	char *verifier = PQencryptPasswordConn(c, password, role, "scram-sha-256");
	if (verifier == NULL)
		return err_set(e, "cannot compute the SCRAM verifier for role %s: %s", role, PQerrorMessage(c));
	char *ident = PQescapeIdentifier(c, role, strlen(role));
	char *lit = PQescapeLiteral(c, verifier, strlen(verifier));
	PQfreemem(verifier);
	int rc = -1;
	if (ident == NULL || lit == NULL) {
		err_set(e, "cannot quote role %s", role);
		goto out;
	}
	const char *params[] = {role};
	PGresult *r = exec_ok(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, params, e);
	if (r == NULL)
		goto out;
	bool exists = PQntuples(r) > 0;
	PQclear(r);
	char *sql = xasprintf("%s ROLE %s WITH LOGIN%s PASSWORD %s", exists ? "ALTER" : "CREATE", ident,
			      replication ? " REPLICATION" : "", lit);
	r = exec_ok(c, sql, 0, NULL, e);
	free(sql);
	if (r == NULL) {
		err_wrap(e, "%s role %s", exists ? "altering" : "creating", role);
		goto out;
	}
	PQclear(r);
	rc = 0;
out:
	if (ident)
		PQfreemem(ident);
	if (lit)
		PQfreemem(lit);
	return rc;
}

int pg_list_slots(PGconn *c, struct pg_slot **slots, size_t *n, struct pgha_err *e)
{
	PGresult *r = exec_ok(c, "SELECT slot_name, active, slot_type = 'physical' FROM pg_replication_slots",
			      0, NULL, e);
	if (r == NULL)
		return -1;
	int rows = PQntuples(r);
	struct pg_slot *s = xcalloc((size_t)rows, sizeof(*s));
	for (int i = 0; i < rows; i++) {
		snprintf(s[i].name, sizeof(s[i].name), "%s", PQgetvalue(r, i, 0));
		s[i].active = PQgetvalue(r, i, 1)[0] == 't';
		s[i].physical = PQgetvalue(r, i, 2)[0] == 't';
	}
	PQclear(r);
	*slots = s;
	*n = (size_t)rows;
	return 0;
}

int pg_create_physical_slot(PGconn *c, const char *name, bool reserve, struct pgha_err *e)
{
	const char *params[] = {name, reserve ? "true" : "false"};
	PGresult *r = exec_ok(c, "SELECT pg_create_physical_replication_slot($1, $2::boolean)", 2, params, e);
	if (r == NULL)
		return err_wrap(e, "creating replication slot %s", name);
	PQclear(r);
	return 0;
}

int pg_drop_slot(PGconn *c, const char *name, struct pgha_err *e)
{
	const char *params[] = {name};
	PGresult *r = exec_ok(c, "SELECT pg_drop_replication_slot($1)", 1, params, e);
	if (r == NULL)
		return err_wrap(e, "dropping replication slot %s", name);
	PQclear(r);
	return 0;
}

int pg_reload_conf(PGconn *c, struct pgha_err *e)
{
	PGresult *r = exec_ok(c, "SELECT pg_reload_conf()", 0, NULL, e);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

int pg_list_replication(PGconn *c, struct pg_replica **out, size_t *n, struct pgha_err *e)
{
	PGresult *r = exec_ok(c, "SELECT application_name, state, sync_state, flush_lsn::text"
				 " FROM pg_stat_replication WHERE application_name <> ''", 0, NULL, e);
	if (r == NULL)
		return err_wrap(e, "reading pg_stat_replication");
	int rows = PQntuples(r);
	struct pg_replica *s = xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(*s));
	for (int i = 0; i < rows; i++) {
		snprintf(s[i].name, sizeof(s[i].name), "%s", PQgetvalue(r, i, 0));
		s[i].streaming = strcmp(PQgetvalue(r, i, 1), "streaming") == 0;
		snprintf(s[i].sync_state, sizeof(s[i].sync_state), "%s", PQgetvalue(r, i, 2));
		if (!PQgetisnull(r, i, 3))
			lsn_parse(PQgetvalue(r, i, 3), &s[i].flush_lsn);
	}
	PQclear(r);
	*out = s;
	*n = (size_t)rows;
	return 0;
}

int pg_pending_restart(PGconn *c, char **names, struct pgha_err *e)
{
	PGresult *r = exec_ok(c, "SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_settings "
			      "WHERE pending_restart", 0, NULL, e);
	if (r == NULL)
		return err_wrap(e, "reading pg_settings.pending_restart");
	*names = xstrdup(PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return 0;
}

int pg_show_setting(PGconn *c, const char *name, char **value, struct pgha_err *e)
{
	const char *params[] = {name};
	PGresult *r = exec_ok(c, "SELECT current_setting($1)", 1, params, e);
	if (r == NULL)
		return err_wrap(e, "reading %s", name);
	*value = xstrdup(PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return 0;
}

/*
 * Connect to a peer (the leader): conninfo plus extra keywords, 3 s to connect.
 * NULL with "<what> to the leader failed: <libpq's first line>" in e.
 */
static PGconn *connect_leader(const char *conninfo, const char *extra, const char *what, struct pgha_err *e)
{
	char *ci = xasprintf("%s %sconnect_timeout=3", conninfo, extra);
	PGconn *c = PQconnectdb(ci);
	free(ci);
	if (PQstatus(c) == CONNECTION_OK)
		return c;
	char *msg = xstrdup(PQerrorMessage(c));
	msg[strcspn(msg, "\n")] = '\0';
	err_set(e, "%s to the leader failed: %s", what, msg);
	free(msg);
	PQfinish(c);
	return NULL;
}

int pg_remote_slot_exists(const char *conninfo, const char *slot, struct pgha_err *e)
{
	PGconn *c = connect_leader(conninfo, "replication=true ", "replication connection", e);
	if (c == NULL)
		return -1;
	int rc = -1;
	char *ident = PQescapeIdentifier(c, slot, strlen(slot));
	char *cmd = xasprintf("READ_REPLICATION_SLOT %s", ident ? ident : slot);
	if (ident)
		PQfreemem(ident);
	PGresult *r = PQexec(c, cmd);
	free(cmd);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		err_set(e, "READ_REPLICATION_SLOT failed: %s", PQresultErrorMessage(r));
	} else {
		rc = (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) ? 1 : 0;
	}
	PQclear(r);
	PQfinish(c);
	return rc;
}

int pg_remote_timeline(const char *conninfo, uint32_t *tli, uint64_t *lsn, char **history,
		       struct pgha_err *e)
{
	*history = NULL;
	PGconn *c = connect_leader(conninfo, "replication=true ", "replication connection", e);
	if (c == NULL)
		return -1;
	int rc = -1;
	PGresult *r = PQexec(c, "IDENTIFY_SYSTEM");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) < 3) {
		err_set(e, "IDENTIFY_SYSTEM failed: %s", PQresultErrorMessage(r));
		PQclear(r);
		goto out;
	}
	*tli = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
	if (lsn_parse(PQgetvalue(r, 0, 2), lsn) != 0) {
		err_set(e, "IDENTIFY_SYSTEM returned a bad position \"%s\"", PQgetvalue(r, 0, 2));
		PQclear(r);
		goto out;
	}
	PQclear(r);
	if (*tli <= 1) {
		*history = xstrdup("");
		rc = 0;
		goto out;
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "TIMELINE_HISTORY %u", *tli);
	r = PQexec(c, cmd);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) < 2) {
		err_set(e, "%s failed: %s", cmd, PQresultErrorMessage(r));
		PQclear(r);
		goto out;
	}
	*history = xstrdup(PQgetvalue(r, 0, 1));
	PQclear(r);
	rc = 0;
out:
	PQfinish(c);
	return rc;
}

int pg_remote_rewind_ready(const char *conninfo, bool *ready, uint32_t *ckpt_tli, uint32_t *cur_tli,
			   struct pgha_err *e)
{
	/*
	 * The current timeline of a primary: the WAL file name's first 8 hex
	 * digits (as pg_query_status); of a standby (a cascading source, which
	 * pg_rewind takes since PostgreSQL 14): the timeline it receives.
	 */
	static const char sql[] =
		"SELECT pg_is_in_recovery(), c.timeline_id,"
		" CASE WHEN pg_is_in_recovery() THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0)"
		"  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END"
		" FROM pg_control_checkpoint() AS c";
	*ready = false;
	PGconn *c = connect_leader(conninfo, "", "connection", e);
	if (c == NULL)
		return -1;
	int rc = -1;
	for (int round = 0; round < 2; round++) {
		PGresult *r = exec_ok(c, sql, 0, NULL, e);
		if (r == NULL)
			goto out;
		if (PQntuples(r) != 1) {
			err_set(e, "the checkpoint query returned %d rows", PQntuples(r));
			PQclear(r);
			goto out;
		}
		bool in_recovery = PQgetvalue(r, 0, 0)[0] == 't';
		*ckpt_tli = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
		*cur_tli = (uint32_t)strtoul(PQgetvalue(r, 0, 2), NULL, 10);
		PQclear(r);
		*ready = *cur_tli != 0 && *ckpt_tli == *cur_tli;
		rc = 0;
		if (*ready || !in_recovery || *cur_tli == 0 || round == 1)
			break;
		/*
		 * A standby's control file names the timeline of its last restartpoint:
		 * CHECKPOINT makes one at the last checkpoint record it replayed (the
		 * primary's after its promotion, once received).
		 */
		r = exec_ok(c, "CHECKPOINT", 0, NULL, e);
		if (r == NULL) {
			rc = -1;
			goto out;
		}
		PQclear(r);
	}
out:
	PQfinish(c);
	return rc;
}

bool pg_timeline_diverged(const char *history, uint32_t leader_tli, uint32_t my_tli, uint64_t my_lsn)
{
	if (my_tli == leader_tli)
		return false;
	if (my_tli > leader_tli)
		return true;
	/* Lines: "<parent tli>\t<switchpoint>\t<reason>"; comments start with '#'. */
	const char *line = history ? history : "";
	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char buf[256];
		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
		memcpy(buf, line, len);
		buf[len] = '\0';
		unsigned int parent;
		char sw[64];
		if (buf[0] != '#' && sscanf(buf, "%u %63s", &parent, sw) == 2 && parent == my_tli) {
			uint64_t switchpoint;
			if (lsn_parse(sw, &switchpoint) != 0)
				return true;
			return my_lsn > switchpoint;
		}
		line = eol ? eol + 1 : line + len;
	}
	return true;   /* my timeline is not in the leader's history */
}

bool pg_data_diverged(const char *history, uint32_t leader_tli, const struct pg_data_info *d)
{
	if (strcmp(d->cluster_state, "in production") == 0 && d->timeline != leader_tli)
		return true;
	/* +1: a record that starts at the switchpoint is already past it. */
	if (pg_timeline_diverged(history, leader_tli, d->timeline, d->checkpoint_lsn + 1))
		return true;
	return d->min_recovery_lsn != 0 &&
	       pg_timeline_diverged(history, leader_tli, d->min_recovery_tli, d->min_recovery_lsn);
}
