/*
 * test_health.c — the health decisions of the API (pure functions, no
 * sockets) and lag parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/api.h"

#define NOW 1000000 /* now_ms() passed to api_health */

enum fixture {
	F_PRIMARY,          /* running primary holding the leader key */
	F_PRIMARY_NOKEY,    /* running primary, key lost (or never had it) */
	F_PRIMARY_STOPPED,  /* holds the key but PostgreSQL is stopped */
	F_REPLICA_STREAM,   /* streaming replica, lag 1000 B */
	F_REPLICA_RUNNING,  /* running replica, no walreceiver, lag unknown */
	F_REPLICA_NOLB,     /* streaming, tagged noloadbalance */
	F_REPLICA_LAGCALC,  /* lag_bytes unknown, computed from leader_lsn: 2 MiB */
	F_REPLICA_STOPPED,
	F_REPLICA_KEY,      /* a replica that (somehow) holds the key */
	F_STALE_LOOP,       /* running primary whose HA loop is stuck */
	F_NEVER_LOOPED,     /* last_loop_ms == 0 */
};

static void make_status(enum fixture f, struct api_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->self.name, sizeof(st->self.name), "node1");
	st->self.timeline = 3;
	st->self.lag_bytes = -1;
	st->self.port = 5432;
	st->self.tags.priority = 100;
	snprintf(st->self.host, sizeof(st->self.host), "10.0.0.1");
	snprintf(st->self.api_url, sizeof(st->self.api_url), "http://10.0.0.1:8008");
	st->etcd_reachable = true;
	st->ttl_s = 30;
	st->last_loop_ms = NOW - 2000;
	snprintf(st->leader, sizeof(st->leader), "node1");

	switch (f) {
	case F_PRIMARY:
	case F_STALE_LOOP:
	case F_NEVER_LOOPED:
		st->self.role = ROLE_PRIMARY;
		st->self.state = STATE_RUNNING;
		st->self.wal_lsn = 0x3000060;
		st->holds_leader_key = true;
		if (f == F_STALE_LOOP)
			st->last_loop_ms = NOW - 30001;
		if (f == F_NEVER_LOOPED)
			st->last_loop_ms = 0;
		break;
	case F_PRIMARY_NOKEY:
		st->self.role = ROLE_PRIMARY;
		st->self.state = STATE_RUNNING;
		snprintf(st->leader, sizeof(st->leader), "node2");
		break;
	case F_PRIMARY_STOPPED:
		st->self.role = ROLE_PRIMARY;
		st->self.state = STATE_STOPPED;
		st->holds_leader_key = true;
		break;
	case F_REPLICA_STREAM:
	case F_REPLICA_NOLB:
	case F_REPLICA_KEY:
		st->self.role = ROLE_REPLICA;
		st->self.state = STATE_STREAMING;
		st->self.lag_bytes = 1000;
		st->self.received_lsn = 0x3000000;
		st->self.replayed_lsn = 0x3000000;
		st->self.tags.noloadbalance = f == F_REPLICA_NOLB;
		st->holds_leader_key = f == F_REPLICA_KEY;
		snprintf(st->leader, sizeof(st->leader), "node2");
		break;
	case F_REPLICA_RUNNING:
		st->self.role = ROLE_REPLICA;
		st->self.state = STATE_RUNNING;
		snprintf(st->leader, sizeof(st->leader), "node2");
		break;
	case F_REPLICA_LAGCALC:
		st->self.role = ROLE_REPLICA;
		st->self.state = STATE_STREAMING;
		st->self.received_lsn = 0x1000000;
		st->self.replayed_lsn = 0x0F00000;
		st->leader_lsn = 0x1000000 + 2 * 1024 * 1024;
		break;
	case F_REPLICA_STOPPED:
		st->self.role = ROLE_REPLICA;
		st->self.state = STATE_STOPPED;
		break;
	}
}

struct health_case {
	enum fixture f;
	const char *path;
	const char *query;
	int want;
};

static const struct health_case health_cases[] = {
	/* primary endpoints */
	{F_PRIMARY, "/primary", "", 200},
	{F_PRIMARY, "/leader", "", 200},
	{F_PRIMARY, "/master", "", 200},
	{F_PRIMARY, "/read-write", "", 200},
	{F_PRIMARY, "/primary/", "", 200},
	{F_PRIMARY_NOKEY, "/primary", "", 503},
	{F_PRIMARY_NOKEY, "/master", "", 503},
	{F_PRIMARY_STOPPED, "/primary", "", 503},
	{F_REPLICA_STREAM, "/primary", "", 503},
	{F_REPLICA_KEY, "/primary", "", 503},
	/* replica endpoints */
	{F_REPLICA_STREAM, "/replica", "", 200},
	{F_REPLICA_STREAM, "/standby", "", 200},
	{F_REPLICA_RUNNING, "/replica", "", 200},
	{F_REPLICA_NOLB, "/replica", "", 503},
	{F_REPLICA_STOPPED, "/replica", "", 503},
	{F_PRIMARY, "/replica", "", 503},
	{F_PRIMARY_NOKEY, "/replica", "", 503},
	/* lag thresholds */
	{F_REPLICA_STREAM, "/replica", "lag=1000", 200},
	{F_REPLICA_STREAM, "/replica", "lag=999", 503},
	{F_REPLICA_STREAM, "/replica", "lag=1kB", 200},
	{F_REPLICA_STREAM, "/replica", "lag=1MB", 200},
	{F_REPLICA_STREAM, "/replica", "other=1&lag=16MB", 200},
	{F_REPLICA_STREAM, "/replica", "lag=%31%30%30%30", 200}, /* "1000" encoded */
	{F_REPLICA_RUNNING, "/replica", "lag=1GB", 503},         /* lag unknown */
	{F_REPLICA_LAGCALC, "/replica", "lag=2MB", 200},
	{F_REPLICA_LAGCALC, "/replica", "lag=2097151", 503},
	{F_REPLICA_NOLB, "/replica", "lag=1GB", 503},
	{F_REPLICA_STREAM, "/replica", "lag=abc", 400},
	{F_REPLICA_STREAM, "/replica", "lag=", 400},
	{F_REPLICA_STREAM, "/replica", "lag=-1", 400},
	{F_REPLICA_STREAM, "/replica", "lag=%zz", 400},
	/* replication_state */
	{F_REPLICA_STREAM, "/replica", "replication_state=streaming", 200},
	{F_REPLICA_RUNNING, "/replica", "replication_state=streaming", 503},
	{F_REPLICA_STREAM, "/replica", "replication_state=bogus", 400},
	/* read-only */
	{F_PRIMARY, "/read-only", "", 200},
	{F_PRIMARY, "/read-only", "lag=1", 200},
	{F_PRIMARY_NOKEY, "/read-only", "", 503},
	{F_REPLICA_STREAM, "/read-only", "", 200},
	{F_REPLICA_RUNNING, "/read-only", "", 200},
	{F_REPLICA_STOPPED, "/read-only", "", 503},
	{F_REPLICA_NOLB, "/read-only", "", 503},
	{F_REPLICA_STREAM, "/read-only", "lag=10", 503},
	/* health */
	{F_PRIMARY, "/health", "", 200},
	{F_PRIMARY_NOKEY, "/health", "", 200},
	{F_REPLICA_STREAM, "/health", "", 200},
	{F_REPLICA_RUNNING, "/health", "", 200},
	{F_REPLICA_STOPPED, "/health", "", 503},
	{F_PRIMARY_STOPPED, "/health", "", 503},
	/* liveness */
	{F_PRIMARY, "/liveness", "", 200},
	{F_REPLICA_STOPPED, "/liveness", "", 200},
	{F_STALE_LOOP, "/liveness", "", 503},
	{F_NEVER_LOOPED, "/liveness", "", 503},
	/* readiness */
	{F_PRIMARY, "/readiness", "", 200},
	{F_PRIMARY_NOKEY, "/readiness", "", 503},
	{F_REPLICA_STREAM, "/readiness", "", 200},
	{F_REPLICA_RUNNING, "/readiness", "", 200},
	{F_REPLICA_NOLB, "/readiness", "", 200},
	{F_REPLICA_STOPPED, "/readiness", "", 503},
	{F_REPLICA_STREAM, "/readiness", "lag=10", 503},
	/* status documents */
	{F_PRIMARY, "/", "", 200},
	{F_REPLICA_STREAM, "/", "", 503},	/* / is the primary check, as in Patroni */
	{F_REPLICA_STREAM, "/status", "", 200},
	{F_PRIMARY, "/status", "", 200},
	{F_PRIMARY, "/patroni", "", 200},
	{F_REPLICA_STREAM, "/patroni", "", 200},
	{F_REPLICA_STOPPED, "/patroni", "", 503},
	/* not health endpoints */
	{F_PRIMARY, "/nope", "", 0},
	{F_PRIMARY, "/cluster", "", 0},
	{F_PRIMARY, "/primaryx", "", 0},
	{F_PRIMARY, "", "", 0},
};

static void test_health_table(void **state)
{
	for (size_t i = 0; i < sizeof(health_cases) / sizeof(health_cases[0]); i++) {
		const struct health_case *c = &health_cases[i];
		struct api_status st;
		struct strbuf body = STRBUF_INIT;
		make_status(c->f, &st);
		int got = api_health(c->path, c->query, &st, NOW, &body);
		if (got != c->want)
			fail_msg("case %zu: fixture %d %s?%s: got %d, want %d", i, (int)c->f,
				 c->path, c->query, got, c->want);
		if (got == 0) {
			assert_int_equal(body.len, 0);
		} else {
			/* Every answer is a JSON object: status document or error. */
			json_error_t jerr;
			json_t *doc = json_loads(sb_str(&body), 0, &jerr);
			if (doc == NULL)
				fail_msg("case %zu: body is not JSON: %s", i, sb_str(&body));
			assert_true(json_is_object(doc));
			if (got == 400)
				assert_non_null(json_object_get(doc, "error"));
			else
				assert_string_equal(json_string_value(json_object_get(doc, "name")),
						    "node1");
			json_decref(doc);
		}
		sb_free(&body);
	}
}

static void test_health_liveness_edges(void **state)
{
	struct api_status st;
	struct strbuf body = STRBUF_INIT;
	make_status(F_PRIMARY, &st);
	st.last_loop_ms = NOW - 30000; /* exactly ttl: still alive */
	assert_int_equal(api_health("/liveness", "", &st, NOW, &body), 200);
	st.ttl_s = 0; /* unset ttl falls back to 30 s */
	assert_int_equal(api_health("/liveness", "", &st, NOW, &body), 200);
	st.ttl_s = 10;
	assert_int_equal(api_health("/liveness", "", &st, NOW, &body), 503);
	sb_free(&body);
}

static void test_status_json_fields(void **state)
{
	struct api_status st;
	struct strbuf body = STRBUF_INIT;
	make_status(F_REPLICA_STREAM, &st);
	snprintf(st.self.error, sizeof(st.self.error), "bad \"quote\" \\ and \xff byte");
	snprintf(st.self.system_id, sizeof(st.self.system_id), "7300000000000000001");
	st.self.tags.noloadbalance = true;
	api_status_json(&st, &body);

	json_error_t jerr;
	json_t *o = json_loads(sb_str(&body), 0, &jerr);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "name")), "node1");
	assert_string_equal(json_string_value(json_object_get(o, "leader")), "node2");
	assert_int_equal(json_integer_value(json_object_get(o, "timeline")), 3);
	assert_true(json_is_false(json_object_get(o, "holds_leader_key")));
	assert_true(json_is_true(json_object_get(o, "etcd_reachable")));
	assert_true(json_is_false(json_object_get(o, "paused")));
	assert_string_equal(json_string_value(json_object_get(o, "received_lsn")), "0/3000000");
	assert_string_equal(json_string_value(json_object_get(o, "replayed_lsn")), "0/3000000");
	assert_true(json_is_null(json_object_get(o, "wal_lsn")));
	assert_int_equal(json_integer_value(json_object_get(o, "lag_bytes")), 1000);
	assert_string_equal(json_string_value(json_object_get(o, "host")), "10.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(o, "port")), 5432);
	assert_string_equal(json_string_value(json_object_get(o, "api_url")),
			    "http://10.0.0.1:8008");
	json_t *tags = json_object_get(o, "tags");
	assert_true(json_is_true(json_object_get(tags, "noloadbalance")));
	assert_true(json_is_false(json_object_get(tags, "nofailover")));
	assert_int_equal(json_integer_value(json_object_get(tags, "priority")), 100);
	assert_string_equal(json_string_value(json_object_get(o, "system_id")),
			    "7300000000000000001");
	assert_true(json_is_null(json_object_get(o, "pg_version")));
	/* Invalid UTF-8 is replaced, quotes and backslashes survive. */
	assert_string_equal(json_string_value(json_object_get(o, "error")),
			    "bad \"quote\" \\ and ? byte");
	assert_non_null(json_object_get(o, "role"));
	assert_non_null(json_object_get(o, "state"));
	json_decref(o);
	sb_free(&body);
}

static void test_parse_lag_good(void **state)
{
	static const struct {
		const char *s;
		uint64_t want;
	} good[] = {
		{"0", 0},
		{"1048576", 1048576},
		{"100B", 100},
		{"100b", 100},
		{"100kB", 100 * 1024},
		{"100KB", 100 * 1024},
		{"100k", 100 * 1024},
		{"16MB", 16ULL << 20},
		{"16mb", 16ULL << 20},
		{"16M", 16ULL << 20},
		{"1GB", 1ULL << 30},
		{"1gB", 1ULL << 30},
		{"2TB", 2ULL << 40},
		{"18446744073709551615", UINT64_MAX},
		{"16777215TB", 16777215ULL << 40},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 12345;
		if (api_parse_lag(good[i].s, &v) != 0)
			fail_msg("\"%s\" rejected", good[i].s);
		if (v != good[i].want)
			fail_msg("\"%s\": got %llu", good[i].s, (unsigned long long)v);
	}
}

static void test_parse_lag_bad(void **state)
{
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "1 MB", "abc", "1.5MB", "MB", "10XB", "10kBB",
		"0x10", "18446744073709551616", "16777216TB", "99999999999999999999GB",
		"1e6", "1kiB",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 777;
		if (api_parse_lag(bad[i], &v) == 0)
			fail_msg("\"%s\" accepted as %llu", bad[i], (unsigned long long)v);
		assert_int_equal(v, 777); /* untouched on failure */
	}
	uint64_t v;
	assert_int_equal(api_parse_lag(NULL, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_table),
		cmocka_unit_test(test_health_liveness_edges),
		cmocka_unit_test(test_status_json_fields),
		cmocka_unit_test(test_parse_lag_good),
		cmocka_unit_test(test_parse_lag_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
