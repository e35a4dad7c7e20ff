/*
 * health.c — the health decisions of the agent API, as pure functions of an
 * api_status snapshot (no locks, no sockets, no clock: the caller passes now).
 *
 * The endpoints and their meaning follow Patroni's REST API, so the HAProxy,
 * Kubernetes and keepalived recipes written for Patroni work unchanged.
 */
#include "api/api.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/httpd.h"
#include "common/util.h"

#define API_DEFAULT_TTL_S 30

enum api_check {
	CHECK_NONE = 0,
	CHECK_PRIMARY,    /* holds the leader key and runs as primary */
	CHECK_REPLICA,    /* a replica fit for read traffic */
	CHECK_READ_ONLY,  /* primary or replica: anything that serves reads */
	CHECK_HEALTH,     /* PostgreSQL is up */
	CHECK_LIVENESS,   /* the HA loop is not stuck */
	CHECK_READINESS,  /* may receive traffic (Kubernetes readiness probe) */
	CHECK_STATUS,     /* just the status document */
};

static const struct {
	const char *path;
	enum api_check check;
} api_routes[] = {
	{"/primary", CHECK_PRIMARY},
	{"/leader", CHECK_PRIMARY},
	{"/master", CHECK_PRIMARY},
	{"/read-write", CHECK_PRIMARY},
	{"/replica", CHECK_REPLICA},
	{"/standby", CHECK_REPLICA},
	{"/read-only", CHECK_READ_ONLY},
	{"/health", CHECK_HEALTH},
	{"/liveness", CHECK_LIVENESS},
	{"/readiness", CHECK_READINESS},
	{"/", CHECK_PRIMARY},	/* Patroni: a bare `option httpchk` probes OPTIONS / */
	{"/status", CHECK_STATUS},
	{"/patroni", CHECK_STATUS},
};

/* Path -> check. One trailing slash is tolerated ("/replica/"). */
static enum api_check api_route(const char *path)
{
	size_t len = strlen(path);
	if (len > 1 && path[len - 1] == '/')
		len--;
	for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
		if (strlen(api_routes[i].path) == len && strncmp(api_routes[i].path, path, len) == 0)
			return api_routes[i].check;
	}
	return CHECK_NONE;
}

/* ------------------------------------------------------------ lag parsing */

int api_parse_lag(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = {
		{"", 0}, {"b", 0}, {"k", 10}, {"kb", 10}, {"m", 20}, {"mb", 20},
		{"g", 30}, {"gb", 30}, {"t", 40}, {"tb", 40},
	};
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1; /* also rejects "", "-1", "+1" and leading blanks */
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].unit) != 0)
			continue;
		if (units[i].shift > 0 && v > (UINT64_MAX >> units[i].shift))
			return -1;
		*bytes = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -1;
}

/* ------------------------------------------------------------ status JSON */

static void json_oom(void)
{
	fputs("pgha: out of memory\n", stderr);
	abort();
}

static json_t *json_must(json_t *v)
{
	if (v == NULL)
		json_oom();
	return v;
}

/*
 * A JSON string, or null for "". jansson refuses invalid UTF-8 (a PostgreSQL
 * error message in LATIN1, say); such bytes become '?' rather than losing the
 * whole field.
 */
static json_t *jstr_or_null(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return json_null();
	json_t *v = json_string(s);
	if (v != NULL)
		return v;
	char *copy = xstrdup(s);
	for (char *p = copy; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	v = json_must(json_string(copy));
	free(copy);
	return v;
}

static json_t *jlsn_or_null(uint64_t lsn)
{
	char buf[32];
	if (lsn == 0)
		return json_null();
	lsn_format(lsn, buf, sizeof(buf));
	return json_must(json_string(buf));
}

static void jset(json_t *obj, const char *key, json_t *value)
{
	if (json_object_set_new(obj, key, json_must(value)) != 0)
		json_oom();
}

static const char *role_name(enum member_role r)
{
	const char *s = member_role_name(r);
	return s ? s : "unknown";
}

static const char *state_name(enum member_state s)
{
	const char *n = member_state_name(s);
	return n ? n : "unknown";
}

static json_t *api_tags_json(const struct member_tags *t)
{
	json_t *tags = json_must(json_object());
	jset(tags, "nofailover", json_boolean(t->nofailover));
	jset(tags, "nosync", json_boolean(t->nosync));
	jset(tags, "noloadbalance", json_boolean(t->noloadbalance));
	jset(tags, "priority", json_integer(t->priority));
	if (t->region[0] != '\0')
		jset(tags, "region", json_string(t->region));
	if (t->zone[0] != '\0')
		jset(tags, "zone", json_string(t->zone));
	return tags;
}

void api_status_json(const struct api_status *st, struct strbuf *out)
{
	const struct member *m = &st->self;
	json_t *o = json_must(json_object());
	jset(o, "name", jstr_or_null(m->name));
	jset(o, "role", json_string(role_name(m->role)));
	jset(o, "state", json_string(state_name(m->state)));
	jset(o, "timeline", json_integer(m->timeline));
	jset(o, "leader", jstr_or_null(st->leader));
	jset(o, "holds_leader_key", json_boolean(st->holds_leader_key));
	jset(o, "etcd_reachable", json_boolean(st->etcd_reachable));
	jset(o, "paused", json_boolean(st->paused));
	jset(o, "failsafe_active", json_boolean(st->failsafe_active));
	jset(o, "received_lsn", jlsn_or_null(m->received_lsn));
	jset(o, "replayed_lsn", jlsn_or_null(m->replayed_lsn));
	jset(o, "wal_lsn", jlsn_or_null(m->wal_lsn));
	jset(o, "lag_bytes", m->lag_bytes >= 0 ? json_integer(m->lag_bytes) : json_null());
	jset(o, "host", jstr_or_null(m->host));
	jset(o, "port", json_integer(m->port));
	jset(o, "api_url", jstr_or_null(m->api_url));
	jset(o, "tags", api_tags_json(&m->tags));
	jset(o, "system_id", jstr_or_null(m->system_id));
	jset(o, "pg_version", jstr_or_null(m->pg_version));
	jset(o, "error", jstr_or_null(m->error));
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (text == NULL)
		json_oom();
	sb_puts(out, text);
	free(text);
}

/* {"error":"<why>"}, escaped properly. */
static void api_error_json(const char *why, struct strbuf *out)
{
	json_t *o = json_must(json_object());
	jset(o, "error", jstr_or_null(why));
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		json_oom();
	sb_puts(out, text);
	free(text);
}

/* --------------------------------------------------------------- decisions */

static bool pg_running(const struct api_status *st)
{
	return st->self.state == STATE_RUNNING || st->self.state == STATE_STREAMING;
}

static bool is_leading_primary(const struct api_status *st)
{
	return st->holds_leader_key && st->self.role == ROLE_PRIMARY &&
	       st->self.state == STATE_RUNNING;
}

static bool is_running_replica(const struct api_status *st)
{
	return st->self.role == ROLE_REPLICA && pg_running(st);
}

/*
 * Lag behind the leader in bytes: what the agent measured, else computed from
 * the leader's last known position. -1 when neither is known.
 */
static int64_t replica_lag(const struct api_status *st)
{
	const struct member *m = &st->self;
	if (m->lag_bytes >= 0)
		return m->lag_bytes;
	if (st->leader_lsn == 0)
		return -1;
	uint64_t own = m->received_lsn > m->replayed_lsn ? m->received_lsn : m->replayed_lsn;
	if (own == 0)
		return -1;
	if (own >= st->leader_lsn)
		return 0;
	uint64_t lag = st->leader_lsn - own;
	return lag > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)lag;
}

/*
 * Query-string conditions shared by /replica, /read-only and /readiness:
 *   lag=<n|nkB|nMB|nGB>          the lag must be known and <= n
 *   replication_state=streaming  the walreceiver must be streaming
 * Returns 200 if they hold, 503 if not, 400 (with *why) if the query is bad:
 * a malformed lag must not silently mean "any lag".
 */
static int replica_conditions(const char *query, const struct api_status *st, bool allow_state,
			      const char **why)
{
	char val[64];
	int rc = http_query_param(query, "lag", val, sizeof(val));
	if (rc == -2 || rc == 0) {
		uint64_t max_lag;
		if (rc == -2 || api_parse_lag(val, &max_lag) < 0) {
			*why = "invalid lag: expected bytes or a size like 100kB, 16MB, 1GB";
			return 400;
		}
		int64_t lag = replica_lag(st);
		if (lag < 0 || (uint64_t)lag > max_lag)
			return 503;
	}
	if (!allow_state)
		return 200;
	rc = http_query_param(query, "replication_state", val, sizeof(val));
	if (rc == -2 || (rc == 0 && strcmp(val, "streaming") != 0)) {
		*why = "invalid replication_state: only \"streaming\" is supported";
		return 400;
	}
	if (rc == 0 && st->self.state != STATE_STREAMING)
		return 503;
	return 200;
}

static int check_replica(const char *query, const struct api_status *st, const char **why)
{
	int rc = replica_conditions(query, st, true, why);
	if (rc != 200)
		return rc;
	return is_running_replica(st) && !st->self.tags.noloadbalance ? 200 : 503;
}

static int check_liveness(const struct api_status *st, int64_t now)
{
	int64_t ttl_ms = (int64_t)(st->ttl_s > 0 ? st->ttl_s : API_DEFAULT_TTL_S) * 1000;
	/* last_loop_ms 0: the loop never completed, which is not alive yet. */
	if (st->last_loop_ms <= 0)
		return 503;
	return now - st->last_loop_ms <= ttl_ms ? 200 : 503;
}

static int check_readiness(const char *query, const struct api_status *st, const char **why)
{
	if (is_leading_primary(st))
		return 200;
	int rc = replica_conditions(query, st, false, why);
	if (rc != 200)
		return rc;
	return is_running_replica(st) ? 200 : 503;
}

static int api_check_status(enum api_check check, const char *query, const struct api_status *st,
			    int64_t now, const char **why)
{
	switch (check) {
	case CHECK_PRIMARY:
		return is_leading_primary(st) ? 200 : 503;
	case CHECK_REPLICA:
		return check_replica(query, st, why);
	case CHECK_READ_ONLY: {
		/* The query is validated even on the primary: a typo must show. */
		int rc = check_replica(query, st, why);
		if (rc == 400)
			return rc;
		return is_leading_primary(st) ? 200 : rc;
	}
	case CHECK_HEALTH:
	case CHECK_STATUS:
		return pg_running(st) ? 200 : 503;
	case CHECK_LIVENESS:
		return check_liveness(st, now);
	case CHECK_READINESS:
		return check_readiness(query, st, why);
	case CHECK_NONE:
		break;
	}
	return 0;
}

int api_health(const char *path, const char *query, const struct api_status *st, int64_t now_ms,
	       struct strbuf *body)
{
	const char *why = NULL;
	enum api_check check = api_route(path ? path : "");
	if (check == CHECK_NONE)
		return 0;
	int status = api_check_status(check, query ? query : "", st, now_ms, &why);
	if (status == 400)
		api_error_json(why, body);
	else
		api_status_json(st, body);
	return status;
}
