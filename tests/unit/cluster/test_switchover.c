/*
 * test_switchover.c — the switchover record and proxy records
 * (cluster/switchover.c): round trips, and bad records named precisely.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/switchover.h"

static void test_round_trip(void **state)
{
	(void)state;
	struct switchover so = {.at_ms = 1790000000123, .phase = SO_DEMOTING, .deadline_ms = 1790000005000};
	strcpy(so.id, "so-1-abc");
	strcpy(so.from, "n1");
	strcpy(so.to, "n2");
	strcpy(so.reason, "a \"quoted\" reason");
	char *json = switchover_encode(&so);
	struct switchover back;
	struct pgha_err e;
	assert_int_equal(switchover_decode(json, strlen(json), &back, &e), 0);
	assert_string_equal(back.id, "so-1-abc");
	assert_string_equal(back.from, "n1");
	assert_string_equal(back.to, "n2");
	assert_string_equal(back.reason, "a \"quoted\" reason");
	assert_true(back.at_ms == so.at_ms && back.deadline_ms == so.deadline_ms);
	assert_int_equal(back.phase, SO_DEMOTING);
	assert_false(back.clusters);
	assert_null(strstr(json, "kind"));
	free(json);
	/* Between clusters: "kind": "cluster" both ways. */
	so.clusters = true;
	json = switchover_encode(&so);
	assert_non_null(strstr(json, "\"kind\":\"cluster\""));
	assert_int_equal(switchover_decode(json, strlen(json), &back, &e), 0);
	assert_true(back.clusters);
	free(json);
	for (int p = SO_SCHEDULED; p <= SO_ABORTED; p++)
		assert_int_equal(so_phase_holds((enum so_phase)p), p == SO_PAUSING || p == SO_DEMOTING || p == SO_PROMOTING);
}

static void test_bad_records(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
		{"", "not JSON"},
		{"[1]", "not a JSON object"},
		{"{\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"pausing\"}", "field \"id\" is missing"},
		{"{\"id\":\"x\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":7}", "field \"phase\" is not a string"},
		{"{\"id\":\"x\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"later\"}", "\"later\" is not a phase"},
		{"{\"id\":\"x\",\"from\":\"n1\",\"to\":\"\",\"phase\":\"pausing\"}", "field \"to\" is empty"},
		{"{\"id\":\"x\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"pausing\",\"at\":-5}", "\"at\" = -5 is out of range"},
		{"{\"id\":\"x\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"pausing\",\"deadline\":\"soon\"}",
		 "\"deadline\" is not an integer"},
		{"{\"id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"done\"}",
		 "field \"id\" is too long"},
		{"{\"id\":\"x\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"done\",\"kind\":\"region\"}",
		 "\"kind\" = \"region\" is not member or cluster"},
		{"{\"id\":\"x\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"done\",\"kind\":1}", "\"kind\" is not a string"},
		{"{\"id\":\"x\",\"id\":\"y\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"done\"}", "duplicate"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct switchover so;
		struct pgha_err e;
		assert_int_equal(switchover_decode(cases[i].json, strlen(cases[i].json), &so, &e), -1);
		if (strstr(e.msg, cases[i].want) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].want);
	}
	/* Unknown fields are another version's business. */
	const char *ok = "{\"id\":\"x\",\"from\":\"n1\",\"to\":\"n2\",\"phase\":\"scheduled\",\"later\":{\"a\":1}}";
	struct switchover so;
	struct pgha_err e;
	assert_int_equal(switchover_decode(ok, strlen(ok), &so, &e), 0);
	assert_int_equal(so.phase, SO_SCHEDULED);
}

static void test_proxy_record(void **state)
{
	(void)state;
	struct proxy_record r = {.pid = 4242, .clients = 17};
	strcpy(r.name, "px1");
	strcpy(r.listen, "0.0.0.0:6432");
	strcpy(r.paused_for, "so-9");
	char *json = proxy_record_encode(&r);
	struct proxy_record back;
	struct pgha_err e;
	assert_int_equal(proxy_record_decode(json, strlen(json), &back, &e), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	free(json);
	const char *bad = "{\"name\":\"px\",\"paused_for\":5}";
	assert_int_equal(proxy_record_decode(bad, strlen(bad), &back, &e), -1);
	assert_non_null(strstr(e.msg, "paused_for"));

	/* Region and zone: kept when set, absent from the JSON when not (records of older proxies decode). */
	assert_null(strstr(json = proxy_record_encode(&r), "region"));
	free(json);
	strcpy(r.region, "eu-west");
	strcpy(r.zone, "eu-west-1a");
	json = proxy_record_encode(&r);
	assert_int_equal(proxy_record_decode(json, strlen(json), &back, &e), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	free(json);
	const char *bad_region = "{\"name\":\"px\",\"region\":\"eu west\"}";
	assert_int_equal(proxy_record_decode(bad_region, strlen(bad_region), &back, &e), -1);
	assert_non_null(strstr(e.msg, "region: \"eu west\" is not"));
	const char *bad_zone = "{\"name\":\"px\",\"region\":\"a\",\"zone\":7}";
	assert_int_equal(proxy_record_decode(bad_zone, strlen(bad_zone), &back, &e), -1);
	assert_non_null(strstr(e.msg, "zone"));
}

/* requests/<member>: what ctl restart / reinit write and the agents read. */
static void test_member_request(void **state)
{
	(void)state;
	struct member_request r = {.action = REQ_REINIT, .deadline_ms = 1795000000123};
	strcpy(r.id, "rq-1795000000-Ab3dE9xQ");
	char *json = member_request_encode(&r);
	struct member_request back;
	struct pgha_err e;
	assert_int_equal(member_request_decode(json, strlen(json), &back, &e), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	assert_string_equal(req_action_name(back.action), "reinit");
	free(json);
	const char *ok = "{\"id\":\"rq-1\",\"action\":\"restart\",\"deadline\":5,\"future\":[1]}";
	assert_int_equal(member_request_decode(ok, strlen(ok), &back, &e), 0);
	assert_int_equal(back.action, REQ_RESTART);
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"[]", "not a JSON object"},
		{"{\"action\":\"restart\",\"deadline\":5}", "\"id\" is missing"},
		{"{\"id\":\"\",\"action\":\"restart\",\"deadline\":5}", "\"id\" is empty"},
		{"{\"id\":\"x\",\"action\":\"reboot\",\"deadline\":5}", "not restart or reinit"},
		{"{\"id\":\"x\",\"action\":\"restart\"}", "\"deadline\" is missing"},
		{"{\"id\":\"x\",\"action\":\"restart\",\"deadline\":0}", "out of range"},
		{"{\"id\":\"x\",\"action\":\"restart\",\"deadline\":\"soon\"}", "not an integer"},
		{"{\"id\":\"x\",\"id\":\"y\",\"action\":\"restart\",\"deadline\":5}", "not JSON"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(member_request_decode(bad[i].json, strlen(bad[i].json), &back, &e), -1);
		if (strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("%s: %s (want %s)", bad[i].json, e.msg, bad[i].msg);
	}
}

/* failover: what ctl failover writes and the agents read. */
static void test_failover_key(void **state)
{
	(void)state;
	struct failover_key r;
	memset(&r, 0, sizeof(r));
	strcpy(r.to, "n2");
	strcpy(r.from, "n1");
	char *json = failover_key_encode(&r);
	assert_string_equal(json, "{\"to\":\"n2\",\"from\":\"n1\"}");
	struct failover_key back;
	struct pgha_err e;
	assert_int_equal(failover_key_decode(json, strlen(json), &back, &e), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	free(json);
	const char *ok = "{\"to\":\"n3\"}";
	assert_int_equal(failover_key_decode(ok, strlen(ok), &back, &e), 0);
	assert_string_equal(back.to, "n3");
	assert_string_equal(back.from, "");
	/* A switchover's last step names itself, and no leader. */
	memset(&r, 0, sizeof(r));
	strcpy(r.to, "n3");
	strcpy(r.switchover, "so-1795000000-Ab3dE9xQ");
	json = failover_key_encode(&r);
	assert_string_equal(json, "{\"to\":\"n3\",\"switchover\":\"so-1795000000-Ab3dE9xQ\"}");
	assert_int_equal(failover_key_decode(json, strlen(json), &back, &e), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	free(json);
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"[\"n2\"]", "not a JSON object"},
		{"{\"from\":\"n1\"}", "\"to\" is missing"},
		{"{\"to\":\"\"}", "\"to\" is empty"},
		{"{\"to\":2}", "\"to\" is not a string"},
		{"{\"to\":\"n2\",\"from\":[]}", "\"from\" is not a string"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(failover_key_decode(bad[i].json, strlen(bad[i].json), &back, &e), -1);
		if (strstr(e.msg, bad[i].msg) == NULL || strstr(e.msg, "failover request") == NULL)
			fail_msg("%s: %s (want %s)", bad[i].json, e.msg, bad[i].msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_proxy_record),
		cmocka_unit_test(test_member_request),
		cmocka_unit_test(test_failover_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
