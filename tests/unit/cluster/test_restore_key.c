/*
 * test_restore_key.c — the in-place restore record (cluster/restore_key.c):
 * its codec, strict on what someone may have written into etcd, and who has
 * stopped for it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/restore_key.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_codec_round_trip(void **state)
{
	(void)state;
	struct restore_record r = {.phase = RESTORE_FAILED, .requested_at = 1796297335, .touched = false}, d;
	snprintf(r.id, sizeof(r.id), "00ff");
	snprintf(r.target, sizeof(r.target), "2026-12-03 14:02:00+00:00");
	snprintf(r.set, sizeof(r.set), "20261203-144842F_20261203-150000D");
	snprintf(r.member, sizeof(r.member), "node3");
	snprintf(r.error, sizeof(r.error), "pgbackrest restore failed");
	struct pgha_err e;
	char *t = restore_record_encode(&r);
	assert_int_equal(restore_record_decode(t, &d, &e), 0);
	free(t);
	assert_string_equal(d.id, "00ff");
	assert_string_equal(d.target, r.target);
	assert_string_equal(d.set, r.set);
	assert_string_equal(d.member, "node3");
	assert_int_equal(d.phase, RESTORE_FAILED);
	assert_false(d.touched);
	assert_string_equal(d.error, r.error);
	assert_true(restore_phase_active(RESTORE_FAILED));
	assert_false(restore_phase_active(RESTORE_DONE));
	assert_false(restore_phase_active(RESTORE_CANCELLED));
	/* A failed record that does not say: taken as touched (the safe reading). */
	assert_int_equal(restore_record_decode("{\"id\":\"1\",\"target\":\"latest\",\"set\":\"20261203-144842F\","
					       "\"member\":\"n1\",\"phase\":\"failed\"}", &d, &e), 0);
	assert_true(d.touched);
}

static void test_bad_records_are_refused(void **state)
{
	(void)state;
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"[]", "restore record is not a JSON object"},
		{"{\"target\":\"latest\",\"set\":\"1F\",\"member\":\"n1\",\"phase\":\"stopping\"}", "\"id\""},
		{"{\"id\":\"XY\",\"target\":\"latest\",\"set\":\"1F\",\"member\":\"n1\",\"phase\":\"stopping\"}",
		 "lowercase hex"},
		{"{\"id\":\"1\",\"target\":\"yesterday\",\"set\":\"1F\",\"member\":\"n1\",\"phase\":\"stopping\"}",
		 "\"target\""},
		{"{\"id\":\"1\",\"target\":\"latest\",\"set\":\"1F; rm -rf /\",\"member\":\"n1\",\"phase\":\"stopping\"}",
		 "not a pgBackRest backup label"},
		{"{\"id\":\"1\",\"target\":\"latest\",\"set\":\"1F\",\"member\":\"../x\",\"phase\":\"stopping\"}",
		 "not a member name"},
		{"{\"id\":\"1\",\"target\":\"latest\",\"set\":\"1F\",\"member\":\"n1\",\"phase\":\"now\"}",
		 "\"phase\" must be"},
		{"{\"id\":\"1\",\"target\":\"latest\",\"set\":\"1F\",\"member\":\"n1\",\"phase\":\"done\",\"timeline\":-1}",
		 "\"timeline\""},
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		struct restore_record d;
		struct pgha_err e = {{0}};
		if (restore_record_decode(bad[i].json, &d, &e) == 0)
			fail_msg("accepted %s", bad[i].json);
		if (strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("%s: \"%s\" does not say %s", bad[i].json, e.msg, bad[i].msg);
	}
}

static void test_all_stopped(void **state)
{
	(void)state;
	struct member m[3] = {0};
	snprintf(m[0].name, sizeof(m[0].name), "n1");
	snprintf(m[1].name, sizeof(m[1].name), "n2");
	snprintf(m[2].name, sizeof(m[2].name), "n3");
	struct cluster_view v = {.members = m, .nmembers = 3};
	/* The restorer itself does not count; the others must name this restore. */
	assert_false(restore_all_stopped(&v, "n1", "ab"));
	snprintf(m[1].restore_id, sizeof(m[1].restore_id), "ab");
	assert_false(restore_all_stopped(&v, "n1", "ab"));
	snprintf(m[2].restore_id, sizeof(m[2].restore_id), "old");
	assert_false(restore_all_stopped(&v, "n1", "ab"));
	snprintf(m[2].restore_id, sizeof(m[2].restore_id), "ab");
	assert_true(restore_all_stopped(&v, "n1", "ab"));
	/* A member whose record is gone is not waited for. */
	v.nmembers = 2;
	assert_true(restore_all_stopped(&v, "n1", "ab"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_round_trip),
		cmocka_unit_test(test_bad_records_are_refused),
		cmocka_unit_test(test_all_stopped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
