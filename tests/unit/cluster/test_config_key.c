/*
 * test_config_key.c — the dynamic config key (cluster/config_key.c): its table
 * of settings (good values, each bad value with its message, wrong JSON types),
 * the decoding of a whole key (unknown keys, each setting judged alone, round
 * trip), the timing and PostgreSQL parameters, and the whole-object check
 * `ctl edit-config` and `ctl set` go by (dyncfg_normalize).
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

#include "cluster/config_key.h"

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

/* The timing of a config object over base; set[k]: the key gives that value (valid or not). */
static int timing_of(const json_t *cfg, const long base[DYN_NTIMING], long t[DYN_NTIMING], bool set[DYN_NTIMING],
		     struct pgha_err *e)
{
	struct dyncfg c;
	if (cfg != NULL && dyncfg_from_json(cfg, &c, e) != 0)
		fail_msg("not an object: %s", e->msg);
	if (cfg == NULL)
		assert_int_equal(dyncfg_decode(NULL, &c, e), 0);
	for (int k = 0; set && k < DYN_NTIMING; k++)
		set[k] = c.set[DYNCFG_TTL + k] || c.bad[DYNCFG_TTL + k];
	int rc = dyncfg_timing(&c, base, t, e);
	dyncfg_free(&c);
	return rc;
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
	assert_int_equal(timing_of(NULL, def, t, set, &e), 0);
	assert_memory_equal(t, def, sizeof(t));
	assert_false(set[DYN_TTL] || set[DYN_LOOP_WAIT] || set[DYN_RETRY_TIMEOUT]);

	json_t *cfg = J("{\"ttl\": 3, \"loop_wait\": \"500ms\", \"retry_timeout\": \"1s\", \"pause\": true}");
	assert_int_equal(timing_of(cfg, def, t, set, &e), 0);
	assert_int_equal(t[DYN_TTL], 3000);
	assert_int_equal(t[DYN_LOOP_WAIT], 500);
	assert_int_equal(t[DYN_RETRY_TIMEOUT], 1000);
	assert_true(set[DYN_TTL] && set[DYN_LOOP_WAIT] && set[DYN_RETRY_TIMEOUT]);
	json_decref(cfg);

	/* ttl alone checked against the base: 5s < 1s + 2 * 3s. */
	cfg = J("{\"ttl\": \"5s\", \"loop_wait\": null}");
	expect_error(timing_of(cfg, def, t, set, &e), &e,
		     "ttl (5000ms) must be at least loop_wait + 2 * retry_timeout (1000ms + 2 * 3000ms)");
	assert_true(set[DYN_TTL] && !set[DYN_LOOP_WAIT]);
	/* ... and against a node's file (the fast profile) it holds. */
	long fast[DYN_NTIMING] = {3000, 500, 1000};
	assert_int_equal(timing_of(cfg, fast, t, NULL, &e), 0);
	assert_int_equal(t[DYN_TTL], 5000);
	json_decref(cfg);

	/* Exactly loop_wait + 2 * retry_timeout is enough. */
	cfg = J("{\"ttl\": 7}");
	assert_int_equal(timing_of(cfg, def, t, NULL, &e), 0);
	json_decref(cfg);

	/* A bad value names its key and what it was. */
	cfg = J("{\"retry_timeout\": \"soon\"}");
	expect_error(timing_of(cfg, def, t, NULL, &e), &e, "retry_timeout = \"soon\": not a duration");
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
		       "\"synchronous_cross_region\": true, "
		       "\"loop_wait\": \"1500ms\", \"pause\": false, \"maximum_lag_on_failover\": null, "
		       "\"postgresql\": {\"parameters\": {\"work_mem\": \"8MB\", \"max_connections\": 40}}}");
	json_t *out = dyncfg_normalize(in, &e);
	if (out == NULL)
		fail_msg("%s", e.msg);
	json_t *want = J("{\"synchronous_mode\": \"on\", \"synchronous_node_count\": 2, \"ttl\": 12, "
			 "\"synchronous_cross_region\": true, "
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
	out = dyncfg_normalize(in, &e);
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
		{"{\"synchronous_cross_region\": 1}", "synchronous_cross_region = 1: use true or false"},
		{"{\"ttl\": 5}", "ttl (5000ms) must be at least loop_wait + 2 * retry_timeout"},
		{"{\"ttl\": 5}", "counts at its default here; each agent checks again with its own file"},
		{"{\"ttl\": 5, \"loop_wait\": 1, \"retry_timeout\": 3}", "(1000ms + 2 * 3000ms)"},
		{"{\"postgresql\": {\"parameters\": {\"wal_level\": \"logical\"}}}", "wal_level is managed by pgha"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in = J(bad[i].json);
		memset(&e, 0, sizeof(e));
		out = dyncfg_normalize(in, &e);
		if (out != NULL || strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("%s: %s (want an error saying %s)", bad[i].json, out ? "accepted" : e.msg, bad[i].msg);
		json_decref(in);
	}
	/* All three given and consistent: no note about defaults. */
	in = J("{\"ttl\": 3, \"loop_wait\": \"500ms\", \"retry_timeout\": 1}");
	out = dyncfg_normalize(in, &e);
	assert_non_null(out);
	json_decref(out);
	json_decref(in);
}

/* Every setting of the table: good values (JSON and `ctl set` text) and bad ones with what to give. */
static void test_settings(void **state)
{
	static const struct {
		enum dyncfg_id id;
		const char *json;
		long long want;   /* -1: refused */
		const char *stored;   /* what dyncfg_setting_json writes back */
	} cases[] = {
		{DYNCFG_SYNC_MODE, "\"on\"", SYNC_ON, "\"on\""},
		{DYNCFG_SYNC_MODE, "\"Quorum\"", SYNC_QUORUM, "\"quorum\""},
		{DYNCFG_SYNC_MODE, "\"strict\"", SYNC_STRICT, "\"strict\""},
		{DYNCFG_SYNC_MODE, "\"off\"", SYNC_OFF, "\"off\""},
		{DYNCFG_SYNC_MODE, "true", SYNC_ON, "\"on\""},          /* as Patroni writes it */
		{DYNCFG_SYNC_MODE, "false", SYNC_OFF, "\"off\""},
		{DYNCFG_SYNC_MODE, "\"true\"", -1, NULL},                /* a string is a mode's name */
		{DYNCFG_SYNC_MODE, "\"maybe\"", -1, NULL},
		{DYNCFG_SYNC_MODE, "1", -1, NULL},
		{DYNCFG_SYNC_MODE, "[\"on\"]", -1, NULL},
		{DYNCFG_SYNC_COUNT, "2", 2, "2"},
		{DYNCFG_SYNC_COUNT, "\"16\"", 16, "16"},
		{DYNCFG_SYNC_COUNT, "0", -1, NULL},
		{DYNCFG_SYNC_COUNT, "17", -1, NULL},
		{DYNCFG_SYNC_COUNT, "\"2x\"", -1, NULL},
		{DYNCFG_SYNC_COUNT, "true", -1, NULL},
		{DYNCFG_SYNC_COUNT, "1.5", -1, NULL},
		{DYNCFG_MAX_LAG, "0", 0, "0"},
		{DYNCFG_MAX_LAG, "\"1048576\"", 1048576, "1048576"},
		{DYNCFG_MAX_LAG, "2147483647", 2147483647, "2147483647"},
		{DYNCFG_MAX_LAG, "2147483648", -1, NULL},
		{DYNCFG_MAX_LAG, "-1", -1, NULL},
		{DYNCFG_MAX_LAG, "{}", -1, NULL},
		{DYNCFG_TTL, "9", 9000, "9"},
		{DYNCFG_TTL, "\"2500ms\"", 2500, "\"2500ms\""},
		{DYNCFG_TTL, "\"1s\"", -1, NULL},
		{DYNCFG_LOOP_WAIT, "\"100ms\"", 100, "\"100ms\""},
		{DYNCFG_RETRY_TIMEOUT, "\"1m\"", 60000, "60"},
		{DYNCFG_RETRY_TIMEOUT, "false", -1, NULL},
		{DYNCFG_PAUSE, "true", 1, "true"},
		{DYNCFG_PAUSE, "false", 0, "false"},
		{DYNCFG_PAUSE, "\"yes\"", -1, NULL},
		{DYNCFG_PAUSE, "1", -1, NULL},
	};
	static const char *const use[DYNCFG_N] = {
		[DYNCFG_SYNC_MODE] = "use off, on, quorum or strict",
		[DYNCFG_SYNC_COUNT] = "use a whole number from 1 to 16",
		[DYNCFG_MAX_LAG] = "use a number of bytes from 0 to 2147483647",
		[DYNCFG_TTL] = "out of range (2000ms to 3600000ms)",
		[DYNCFG_RETRY_TIMEOUT] = "not a duration",
		[DYNCFG_PAUSE] = "use true or false",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *v = J(cases[i].json);
		long long x = -7;
		struct pgha_err e = {{0}};
		int rc = dyncfg_setting_parse(cases[i].id, v, &x, &e);
		const char *key = dyncfg_settings[cases[i].id].key;
		if (cases[i].want < 0) {
			if (rc == 0)
				fail_msg("%s = %s accepted (%lld)", key, cases[i].json, x);
			if (strstr(e.msg, use[cases[i].id]) == NULL)
				fail_msg("%s = %s: \"%s\" does not say \"%s\"", key, cases[i].json, e.msg, use[cases[i].id]);
		} else {
			if (rc != 0 || x != cases[i].want)
				fail_msg("%s = %s: rc %d, %lld, want %lld (%s)", key, cases[i].json, rc, x, cases[i].want,
					 e.msg);
			json_t *out = dyncfg_setting_json(cases[i].id, x), *want = J(cases[i].stored);
			if (!json_equal(out, want))
				fail_msg("%s = %s stored as something else than %s", key, cases[i].json, cases[i].stored);
			json_decref(out);
			json_decref(want);
		}
		json_decref(v);
	}
	/* The table names every setting once; `ctl set` takes all but pause. */
	for (size_t i = 0; i < DYNCFG_N; i++) {
		const char *key = dyncfg_settings[i].key;
		assert_ptr_equal(dyncfg_setting_find(key, strlen(key)), &dyncfg_settings[i]);
		assert_non_null(dyncfg_settings[i].def);
		assert_non_null(dyncfg_settings[i].help);
		assert_true((dyncfg_settings[i].values == NULL) == (i == DYNCFG_PAUSE));
	}
	assert_null(dyncfg_setting_find("ttl_ms", 6));
	assert_ptr_equal(dyncfg_setting_find("ttl_ms", 3), &dyncfg_settings[DYNCFG_TTL]);
	/* The defaults are values the table accepts. */
	for (size_t i = 0; i < DYNCFG_N; i++) {
		json_t *v = dyncfg_settings[i].type == DYNCFG_BOOL ? J(dyncfg_settings[i].def)
								    : json_string(dyncfg_settings[i].def);
		long long x;
		struct pgha_err e;
		if (dyncfg_setting_parse((enum dyncfg_id)i, v, &x, &e) != 0)
			fail_msg("the default of %s (%s) is refused: %s", dyncfg_settings[i].key, dyncfg_settings[i].def,
				 e.msg);
		json_decref(v);
	}
}

/* A whole key: each setting judged alone, problems named, unknown keys noted, and the round trip. */
static void test_decode(void **state)
{
	struct dyncfg c;
	struct pgha_err e = {{0}};
	assert_int_equal(dyncfg_decode(NULL, &c, &e), 0);
	assert_false(c.problem);
	for (size_t i = 0; i < DYNCFG_N; i++)
		assert_false(c.set[i] || c.bad[i]);
	dyncfg_free(&c);

	static const char *const not_objects[] = {"", "{", "[]", "3", "\"x\"", "null"};
	for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
		assert_int_equal(dyncfg_decode(not_objects[i], &c, &e), -1);
		assert_false(c.set[DYNCFG_PAUSE] || c.problem || c.nparams);
		dyncfg_free(&c);
	}

	/* A bad value leaves only its setting unset; the message names setting and value. */
	const char *text = "{\"pause\": true, \"synchronous_mode\": \"maybe\", \"synchronous_node_count\": 2, "
			   "\"maximum_lag_on_failover\": -5, \"ttl\": 12, \"loop_wait\": null, \"tll\": 3, "
			   "\"postgresql\": {\"parameters\": {\"work_mem\": \"8MB\"}}}";
	assert_int_equal(dyncfg_decode(text, &c, &e), 0);
	assert_true(c.set[DYNCFG_PAUSE] && c.value[DYNCFG_PAUSE] == 1);
	assert_true(c.bad[DYNCFG_SYNC_MODE] && !c.set[DYNCFG_SYNC_MODE]);
	assert_string_equal(c.why[DYNCFG_SYNC_MODE].msg, "synchronous_mode = \"maybe\": use off, on, quorum or strict");
	assert_true(c.set[DYNCFG_SYNC_COUNT] && c.value[DYNCFG_SYNC_COUNT] == 2);
	assert_true(c.bad[DYNCFG_MAX_LAG]);
	assert_string_equal(c.why[DYNCFG_MAX_LAG].msg,
			    "maximum_lag_on_failover = -5: use a number of bytes from 0 to 2147483647");
	assert_true(c.set[DYNCFG_TTL] && c.value[DYNCFG_TTL] == 12000);
	assert_false(c.set[DYNCFG_LOOP_WAIT] || c.bad[DYNCFG_LOOP_WAIT]);
	assert_int_equal(c.nparams, 1);
	assert_string_equal(c.params[0].value, "8MB");
	assert_true(c.problem);
	assert_string_equal(c.first.msg, "synchronous_mode = \"maybe\": use off, on, quorum or strict");
	dyncfg_free(&c);

	/* Unknown keys are a problem for ctl only: the settings still count. */
	assert_int_equal(dyncfg_decode("{\"tll\": 3, \"pause\": false}", &c, &e), 0);
	assert_true(c.problem && strstr(c.first.msg, "unknown key \"tll\" (keys: ") != NULL);
	assert_non_null(strstr(c.first.msg, "retry_timeout, pause, postgresql.parameters)"));
	assert_true(c.set[DYNCFG_PAUSE] && c.value[DYNCFG_PAUSE] == 0);
	dyncfg_free(&c);

	/* Bad parameters: none of them count, and why. */
	assert_int_equal(dyncfg_decode("{\"postgresql\": {\"parameters\": {\"port\": 1, \"work_mem\": 1}}}", &c, &e), 0);
	assert_true(c.params_bad && c.nparams == 0);
	assert_non_null(strstr(c.params_why.msg, "port is managed by pgha"));
	dyncfg_free(&c);

	/* Round trip: encode, decode, encode gives the same; values in normal form. */
	text = "{\"synchronous_mode\": true, \"synchronous_node_count\": \"3\", \"maximum_lag_on_failover\": 0, "
	       "\"ttl\": \"12s\", \"loop_wait\": \"1500ms\", \"retry_timeout\": 3, \"pause\": false, "
	       "\"postgresql\": {\"parameters\": {\"work_mem\": \"8MB\", \"jit\": false}}}";
	assert_int_equal(dyncfg_decode(text, &c, &e), 0);
	assert_false(c.problem);
	json_t *once = dyncfg_encode(&c);
	dyncfg_free(&c);
	json_t *want = J("{\"synchronous_mode\": \"on\", \"synchronous_node_count\": 3, \"maximum_lag_on_failover\": 0, "
			 "\"ttl\": 12, \"loop_wait\": \"1500ms\", \"retry_timeout\": 3, \"pause\": false, "
			 "\"postgresql\": {\"parameters\": {\"jit\": \"off\", \"work_mem\": \"8MB\"}}}");
	assert_true(json_equal(once, want));
	assert_int_equal(dyncfg_from_json(once, &c, &e), 0);
	json_t *twice = dyncfg_encode(&c);
	assert_true(json_equal(once, twice));
	dyncfg_free(&c);
	json_decref(once);
	json_decref(twice);
	json_decref(want);

	assert_true(dyncfg_paused("{\"pause\": true}"));
	assert_false(dyncfg_paused("{\"pause\": \"true\"}"));
	assert_false(dyncfg_paused("not json"));
	assert_false(dyncfg_paused(NULL));
	json_t *o = dyncfg_object("[1]");
	assert_true(json_is_object(o) && json_object_size(o) == 0);
	json_decref(o);
	o = dyncfg_object("{\"x\": 1}");
	assert_int_equal(json_object_size(o), 1);
	json_decref(o);
}

/* The view's synchronous mode comes from its config key, the set from its sync key. */
static void test_view_sync(void **state)
{
	struct cluster_view v = {0};
	struct sync_state ss;
	enum sync_mode m = SYNC_STRICT;
	assert_int_equal(dyncfg_view_sync(&v, &ss, &m), 0);
	assert_int_equal(m, SYNC_OFF);
	v.config = (char *)"{\"synchronous_mode\": \"quorum\"}";
	assert_int_equal(dyncfg_view_sync(&v, &ss, &m), 0);   /* no sync key */
	assert_int_equal(m, SYNC_QUORUM);
	v.sync = (char *)"{\"leader\": \"n1\", \"sync_standby\": [\"n2\", \"n3\"], \"quorum\": 2}";
	assert_int_equal(dyncfg_view_sync(&v, &ss, NULL), 1);
	assert_string_equal(ss.leader, "n1");
	assert_int_equal(ss.set.n, 2);
	v.config = (char *)"{\"synchronous_mode\": \"sometimes\"}";
	assert_int_equal(dyncfg_view_sync(&v, &ss, &m), 0);
	assert_int_equal(m, SYNC_OFF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_view_sync),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_timing),
		cmocka_unit_test(test_param),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_normalize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
