/*
 * promoted_key.c — the promoted key's record, and the probe `ctl
 * promote-cluster` asks each primary host before writing it.
 */
#include "cluster/promoted_key.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/record.h"
#include "common/strbuf.h"
#include "common/util.h"

static bool all_of(const char *s, const char *set)
{
	return s[0] != '\0' && strspn(s, set) == strlen(s);
}

int promoted_decode(const char *json, struct promoted_rec *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	json_t *o = rec_load(json, strlen(json), "promoted", e);
	if (o == NULL)
		return -1;
	int rc = 0;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (strcmp(k, "at") != 0 && strcmp(k, "by") != 0 && strcmp(k, "id") != 0) {
			rc = err_set(e, "promoted: unknown field \"%s\"", k);
			break;
		}
	}
	if (rc == 0 && (rec_field(o, "at") == NULL || rec_field(o, "by") == NULL || rec_field(o, "id") == NULL))
		rc = err_set(e, "promoted: \"at\", \"by\" and \"id\" are required");
	if (rc == 0 && (rec_int(o, "promoted", "at", 1, INT64_C(1) << 40, 0, &out->at, e) != 0 ||
			rec_str(o, "promoted", "by", out->by, sizeof(out->by), true, false, e) != 0 ||
			rec_str(o, "promoted", "id", out->id, sizeof(out->id), true, false, e) != 0))
		rc = -1;
	if (rc == 0 && !all_of(out->by, "abcdefghijklmnopqrstuvwxyz"))
		rc = err_set(e, "promoted: \"by\" must be lowercase letters");
	if (rc == 0 && !all_of(out->id, "0123456789abcdef"))
		rc = err_set(e, "promoted: \"id\" must be lowercase hex");
	json_decref(o);
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

char *promoted_encode(const struct promoted_rec *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "at", json_integer(r->at));
	json_object_set_new(o, "by", REC_FIXED_STR(r->by));
	json_object_set_new(o, "id", REC_FIXED_STR(r->id));
	return rec_dump(o);
}

/* libpq's reasons for a server that is not there (or not ready to be anything yet). */
static bool is_down(const char *msg)
{
	static const char *const down[] = {
		"Connection refused", "timeout expired", "could not translate host name", "No route to host",
		"Network is unreachable", "the database system is starting up", "the database system is shutting down",
		"the database system is in recovery mode", "the database system is not yet accepting connections",
	};
	for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++)
		if (strstr(msg, down[i]) != NULL)
			return true;
	return false;
}

/* A replication connection to host:port (what a standby cluster would use), connect_timeout 5 s. */
static PGconn *probe_connect(const char *host, int port, const char *user, const char *password,
			     const struct pg_tls *tls)
{
	char *ci = pg_conninfo(host, port, user, NULL, "pgha-ctl", NULL, tls);
	const char *keys[] = {"dbname", "replication", "password", NULL};
	const char *vals[] = {ci, "true", password, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	free(ci);
	return c;
}

static void first_line(const char *msg, char *why, size_t whylen)
{
	snprintf(why, whylen, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* SHOW transaction_read_only on c: 1 on, 0 off, -1 (why says) neither. */
static int read_only(PGconn *c, char *why, size_t whylen)
{
	PGresult *res = PQexec(c, "SHOW transaction_read_only");
	int r = -1;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		r = strcmp(PQgetvalue(res, 0, 0), "on") == 0;
	else
		snprintf(why, whylen, "SHOW transaction_read_only: %s", PQresultErrorMessage(res));
	PQclear(res);
	return r;
}

enum primary_probe promoted_probe_primary(const char *host, int port, const char *user, const char *password,
					  const struct pg_tls *tls, char *why, size_t whylen)
{
	PGconn *c = probe_connect(host, port, user, password, tls);
	enum primary_probe r = PROBE_UNKNOWN;
	if (PQstatus(c) != CONNECTION_OK) {
		const char *msg = PQerrorMessage(c);
		r = is_down(msg) ? PROBE_NOT_PRIMARY : PROBE_UNKNOWN;
		first_line(msg, why, whylen);
	} else {
		int ro = read_only(c, why, whylen);
		if (ro >= 0) {
			r = ro ? PROBE_NOT_PRIMARY : PROBE_PRIMARY;
			snprintf(why, whylen, "%s", ro ? "a standby (read-only)" : "a running primary (read-write)");
		}
	}
	PQfinish(c);
	return r;
}

int promoted_probe_position(const char *host, int port, const char *user, const char *password,
			    const struct pg_tls *tls, struct wal_position *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	PGconn *c = probe_connect(host, port, user, password, tls);
	int rc = -1;
	if (PQstatus(c) != CONNECTION_OK) {
		first_line(PQerrorMessage(c), why, whylen);
		goto out;
	}
	int ro = read_only(c, why, whylen);
	if (ro < 0)
		goto out;
	out->read_only = ro;
	PGresult *res = PQexec(c, "IDENTIFY_SYSTEM");
	long tli = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 3) {
		snprintf(why, whylen, "IDENTIFY_SYSTEM: %s", PQresultErrorMessage(res));
	} else if (snprintf(out->sysid, sizeof(out->sysid), "%s", PQgetvalue(res, 0, 0)) >= (int)sizeof(out->sysid) ||
		   (tli = strtol(PQgetvalue(res, 0, 1), NULL, 10)) <= 0 || tli > UINT32_MAX ||
		   lsn_parse(PQgetvalue(res, 0, 2), &out->lsn) != 0) {
		snprintf(why, whylen, "IDENTIFY_SYSTEM answered something else than (system id, timeline, LSN)");
	} else {
		out->timeline = (uint32_t)tli;
		rc = 0;
	}
	PQclear(res);
out:
	PQfinish(c);
	return rc;
}
