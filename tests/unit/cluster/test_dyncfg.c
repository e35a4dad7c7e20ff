/*
 * test_dyncfg.c — the dynamic config key's timing and PostgreSQL parameters
 * (cluster/dyncfg.c), and the whole-object check `ctl edit-config` and `ctl set`
 * go by (ctl_config_normalize in cli/ctl_set.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl_int.h"
#include "cluster/dyncfg.h"

static json_t *J(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return v;
}

static void expect_error(int rc, const struct pgha_err *e, const char *want)
{
	assert_int_equal(rc, -1);
	if (strstr(e->msg, want) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", e->msg, want);
}

static void test_duration(void **state)
{
	static const struct {
		enum dyncfg_timing_key k;
		const char *json;
		long ms;   /* -1: refused */
	} cases[] = {
		{DYN_TTL, "9", 9000},           {DYN_TTL, "\"9\"", 9000},     {DYN_TTL, "\"9s\"", 9000},
		{DYN_TTL, "\"2500ms\"", 2500},  {DYN_TTL, "\"2m\"", 120000},  {DYN_TTL, "1", -1},
		{DYN_TTL, "\"1999ms\"", -1},    {DYN_TTL, "3601", -1},        {DYN_TTL, "-5", -1},
		{DYN_TTL, "\"ten\"", -1},       {DYN_TTL, "9.5", -1},         {DYN_TTL, "true", -1},
		{DYN_TTL, "null", -1},          {DYN_LOOP_WAIT, "\"100ms\"", 100},
		{DYN_LOOP_WAIT, "\"99ms\"", -1}, {DYN_RETRY_TIMEOUT, "\"500ms\"", 500},
		{DYN_RETRY_TIMEOUT, "\"499ms\"", -1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *v = J(cases[i].json);
		long ms = 0;
		struct pgha_err e = {{0}};
		int rc = dyncfg_duration(cases[i].k, v, &ms, &e);
		if (cases[i].ms < 0 && rc == 0)
			fail_msg("%s = %s accepted (%ld ms)", dyncfg_timing_name(cases[i].k), cases[i].json, ms);
		if (cases[i].ms >= 0 && (rc != 0 || ms != cases[i].ms))
			fail_msg("%s = %s: rc %d, %ld ms, want %ld (%s)", dyncfg_timing_name(cases[i].k), cases[i].json, rc,
				 ms, cases[i].ms, e.msg);
		if (rc != 0)
			assert_true(strstr(e.msg, "not a duration") || strstr(e.msg, "out of range"));
		json_decref(v);
	}
	/* Stored as Patroni would (whole seconds) where it can be. */
	json_t *v = dyncfg_duration_json(9000);
	assert_true(json_is_integer(v) && json_integer_value(v) == 9);
	json_decref(v);
	v = dyncfg_duration_json(500);
	assert_string_equal(json_string_value(v), "500ms");
	json_decref(v);
	assert_int_equal(dyncfg_timing_find("loop_wait"), DYN_LOOP_WAIT);
	assert_int_equal(dyncfg_timing_find("ttl_ms"), -1);
}

static void test_timing(void **state)
{
	long def[DYN_NTIMING], t[DYN_NTIMING];
	bool set[DYN_NTIMING];
	struct pgha_err e = {{0}};
	dyncfg_timing_defaults(def);
	assert_int_equal(def[DYN_TTL], 9000);
	assert_int_equal(def[DYN_LOOP_WAIT], 1000);
	assert_int_equal(def[DYN_RETRY_TIMEOUT], 3000);

	/* Nothing set (or no config at all): the base. */
	assert_int_equal(dyncfg_timing(NULL, def, t, set, &e), 0);
	assert_memory_equal(t, def, sizeof(t));
	assert_false(set[DYN_TTL] || set[DYN_LOOP_WAIT] || set[DYN_RETRY_TIMEOUT]);

	json_t *cfg = J("{\"ttl\": 3, \"loop_wait\": \"500ms\", \"retry_timeout\": \"1s\", \"pause\": true}");
	assert_int_equal(dyncfg_timing(cfg, def, t, set, &e), 0);
	assert_int_equal(t[DYN_TTL], 3000);
	assert_int_equal(t[DYN_LOOP_WAIT], 500);
	assert_int_equal(t[DYN_RETRY_TIMEOUT], 1000);
	assert_true(set[DYN_TTL] && set[DYN_LOOP_WAIT] && set[DYN_RETRY_TIMEOUT]);
	json_decref(cfg);

	/* ttl alone checked against the base: 5s < 1s + 2 * 3s. */
	cfg = J("{\"ttl\": \"5s\", \"loop_wait\": null}");
	expect_error(dyncfg_timing(cfg, def, t, set, &e), &e,
		     "ttl (5000ms) must be at least loop_wait + 2 * retry_timeout (1000ms + 2 * 3000ms)");
	assert_true(set[DYN_TTL] && !set[DYN_LOOP_WAIT]);
	/* ... and against a node's file (the fast profile) it holds. */
	long fast[DYN_NTIMING] = {3000, 500, 1000};
	assert_int_equal(dyncfg_timing(cfg, fast, t, NULL, &e), 0);
	assert_int_equal(t[DYN_TTL], 5000);
	json_decref(cfg);

	/* Exactly loop_wait + 2 * retry_timeout is enough. */
	cfg = J("{\"ttl\": 7}");
	assert_int_equal(dyncfg_timing(cfg, def, t, NULL, &e), 0);
	json_decref(cfg);

	/* A bad value names its key and what it was. */
	cfg = J("{\"retry_timeout\": \"soon\"}");
	expect_error(dyncfg_timing(cfg, def, t, NULL, &e), &e, "retry_timeout = \"soon\": not a duration");
	json_decref(cfg);
}

static void test_param(void **state)
{
	struct pgha_err e = {{0}};
	char *text = NULL;
	static const struct {
		const char *name, *json, *want;
	} ok[] = {
		{"work_mem", "\"8MB\"", "8MB"},        {"max_connections", "200", "200"},
		{"jit", "false", "off"},               {"fsync", "true", "on"},
		{"random_page_cost", "1.5", "1.5"},    {"search_path", "\"\"", ""},
		{"auto_explain.log_min_duration", "\"1s\"", "1s"},
		{"application_name", "\"it's\"", "it's"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		json_t *v = J(ok[i].json);
		if (dyncfg_param(ok[i].name, v, &text, &e) != 0)
			fail_msg("%s = %s refused: %s", ok[i].name, ok[i].json, e.msg);
		assert_string_equal(text, ok[i].want);
		free(text);
		json_decref(v);
	}
	static const struct {
		const char *name, *json, *msg;
	} bad[] = {
		{"port", "5433", "port is managed by pgha"},
		{"Listen_Addresses", "\"*\"", "Listen_Addresses is managed by pgha"},
		{"synchronous_standby_names", "\"*\"", "pgha ctl set synchronous_mode=on"},
		{"primary_conninfo", "\"host=x\"", "managed by pgha"},
		{"hot_standby", "false", "managed by pgha"},
		{"cluster_name", "\"x\"", "managed by pgha"},
		{"shared-buffers", "\"1GB\"", "not a PostgreSQL parameter name"},
		{"", "\"1\"", "not a PostgreSQL parameter name"},
		{"work_mem", "{}", "give a string, a number or a boolean"},
		{"work_mem", "[1]", "give a string, a number or a boolean"},
		{"log_line_prefix", "\"a\\nb\"", "cannot span lines"},
		{"log_line_prefix", "\"a\\u0000b\"", "NUL"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *v = J(bad[i].json);
		text = NULL;
		expect_error(dyncfg_param(bad[i].name, v, &text, &e), &e, bad[i].msg);
		assert_null(text);
		json_decref(v);
	}
}

static void test_params(void **state)
{
	struct pgha_err e = {{0}};
	struct pg_param *p = NULL;
	size_t n = 99;
	assert_int_equal(dyncfg_params(NULL, &p, &n, &e), 0);
	assert_int_equal(n, 0);
	json_t *cfg = J("{\"postgresql\": {\"parameters\": {\"work_mem\": \"8MB\", \"Max_Connections\": 40, "
			"\"jit\": null, \"autovacuum\": true}}}");
	assert_int_equal(dyncfg_params(cfg, &p, &n, &e), 0);
	assert_int_equal(n, 3);   /* null: not set */
	assert_string_equal(p[0].name, "autovacuum");   /* sorted as PostgreSQL compares names */
	assert_string_equal(p[0].value, "on");
	assert_string_equal(p[1].name, "Max_Connections");
	assert_string_equal(p[1].value, "40");
	assert_string_equal(p[2].name, "work_mem");

	/* Merged over a node's [parameters]: the key wins, whatever the case; new ones come last. */
	static const struct pg_param file[] = {
		{(char *)"shared_buffers", (char *)"16MB"},
		{(char *)"max_connections", (char *)"30"},
	};
	struct pg_param *m = NULL;
	size_t nm = 0;
	dyncfg_params_merge(file, 2, p, n, &m, &nm);
	assert_int_equal(nm, 4);
	assert_string_equal(m[0].name, "shared_buffers");
	assert_string_equal(m[1].name, "Max_Connections");
	assert_string_equal(m[1].value, "40");
	assert_string_equal(m[2].name, "autovacuum");
	assert_string_equal(m[3].name, "work_mem");
	assert_true(dyncfg_params_equal(m, nm, m, nm));
	assert_false(dyncfg_params_equal(m, nm, file, 2));
	struct pg_param *copy = NULL;
	size_t ncopy = 0;
	dyncfg_params_merge(file, 2, NULL, 0, &copy, &ncopy);
	assert_true(dyncfg_params_equal(copy, ncopy, file, 2));
	dyncfg_params_free(copy, ncopy);
	dyncfg_params_free(m, nm);
	dyncfg_params_free(p, n);
	json_decref(cfg);

	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"{\"postgresql\": 1}", "postgresql: expected an object"},
		{"{\"postgresql\": {\"parameter\": {}}}", "postgresql.parameter: unknown key"},
		{"{\"postgresql\": {\"parameters\": [1]}}", "expected an object of name: value"},
		{"{\"postgresql\": {\"parameters\": {\"work_mem\": \"1MB\", \"WORK_MEM\": \"2MB\"}}}", "given twice"},
		{"{\"postgresql\": {\"parameters\": {\"work_mem\": \"1MB\", \"port\": 1}}}",
		 "postgresql.parameters: port is managed by pgha"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = J(bad[i].json);
		p = NULL;
		n = 0;
		expect_error(dyncfg_params(cfg, &p, &n, &e), &e, bad[i].msg);
		assert_null(p);
		json_decref(cfg);
	}
}

/* edit-config's check: every key known, values as `ctl set` takes them, normalized. */
static void test_normalize(void **state)
{
	struct pgha_err e = {{0}};
	json_t *in = J("{\"synchronous_mode\": true, \"synchronous_node_count\": \"2\", \"ttl\": \"12s\", "
		       "\"loop_wait\": \"1500ms\", \"pause\": false, \"maximum_lag_on_failover\": null, "
		       "\"postgresql\": {\"parameters\": {\"work_mem\": \"8MB\", \"max_connections\": 40}}}");
	json_t *out = ctl_config_normalize(in, &e);
	if (out == NULL)
		fail_msg("%s", e.msg);
	json_t *want = J("{\"synchronous_mode\": \"on\", \"synchronous_node_count\": 2, \"ttl\": 12, "
			 "\"loop_wait\": \"1500ms\", \"pause\": false, "
			 "\"postgresql\": {\"parameters\": {\"max_connections\": \"40\", \"work_mem\": \"8MB\"}}}");
	if (!json_equal(out, want)) {
		char *got = json_dumps(out, JSON_SORT_KEYS);
		fail_msg("normalized to %s", got);
	}
	json_decref(want);
	json_decref(out);
	json_decref(in);

	/* An empty object: every key back to its default. */
	in = J("{}");
	out = ctl_config_normalize(in, &e);
	assert_non_null(out);
	assert_int_equal(json_object_size(out), 0);
	json_decref(out);
	json_decref(in);

	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"[]", "must be a JSON object"},
		{"{\"tll\": 9}", "unknown key \"tll\""},
		{"{\"synchronous_mode\": \"maybe\"}", "synchronous_mode = \"maybe\": use off, on, quorum or strict"},
		{"{\"synchronous_mode\": \"true\"}", "use off, on, quorum or strict"},
		{"{\"synchronous_node_count\": 0}", "synchronous_node_count = 0: use a whole number from 1 to 16"},
		{"{\"maximum_lag_on_failover\": true}", "use a number of bytes"},
		{"{\"pause\": \"yes\"}", "pause = \"yes\": use true or false"},
		{"{\"ttl\": 5}", "ttl (5000ms) must be at least loop_wait + 2 * retry_timeout"},
		{"{\"ttl\": 5}", "counts at its default here; each agent checks again with its own file"},
		{"{\"ttl\": 5, \"loop_wait\": 1, \"retry_timeout\": 3}", "(1000ms + 2 * 3000ms)"},
		{"{\"postgresql\": {\"parameters\": {\"wal_level\": \"logical\"}}}", "wal_level is managed by pgha"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in = J(bad[i].json);
		memset(&e, 0, sizeof(e));
		out = ctl_config_normalize(in, &e);
		if (out != NULL || strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("%s: %s (want an error saying %s)", bad[i].json, out ? "accepted" : e.msg, bad[i].msg);
		json_decref(in);
	}
	/* All three given and consistent: no note about defaults. */
	in = J("{\"ttl\": 3, \"loop_wait\": \"500ms\", \"retry_timeout\": 1}");
	out = ctl_config_normalize(in, &e);
	assert_non_null(out);
	json_decref(out);
	json_decref(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_timing),
		cmocka_unit_test(test_param),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_normalize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
