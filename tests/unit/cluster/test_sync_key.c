/*
 * test_sync_key.c — the sync key codec and the synchronous modes
 * (cluster/sync_key.c).
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

#include "cluster/sync_key.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_state_codec(void **state)
{
	struct sync_state s, r;
	struct pgha_err e;
	memset(&s, 0, sizeof(s));
	snprintf(s.leader, sizeof(s.leader), "n1");
	sync_set_add(&s.set, "n3");
	sync_set_add(&s.set, "n2");
	s.set.num = 2;
	char *t = sync_state_encode(&s);
	assert_string_equal(t, "{\"leader\":\"n1\",\"sync_standby\":[\"n2\",\"n3\"],\"quorum\":2}");
	assert_int_equal(sync_state_decode(t, &r, &e), 0);
	assert_string_equal(r.leader, "n1");
	assert_true(sync_set_equal(&r.set, &s.set));
	free(t);
	assert_int_equal(sync_state_decode("{\"leader\":\"n1\",\"sync_standby\":[],\"quorum\":0}", &r, &e), 0);
	assert_int_equal(r.set.n, 0);
	assert_int_equal(sync_state_decode("{\"leader\":\"n1\",\"sync_standby\":[\"n2\"]}", &r, &e), 0);
	assert_int_equal(r.set.num, 1);
	assert_int_equal(sync_state_decode("{\"leader\":\"n1\",\"extra\":1}", &r, &e), 0);

	static const char *const bad[] = {
		"", "[]", "{}", "{\"leader\":1}", "{\"leader\":\"a b\"}",
		"{\"leader\":\"n1\",\"sync_standby\":\"n2\"}",
		"{\"leader\":\"n1\",\"sync_standby\":[1]}",
		"{\"leader\":\"n1\",\"sync_standby\":[\"n2\",\"n3\"]}",
		"{\"leader\":\"n1\",\"sync_standby\":[\"n2\"],\"quorum\":2}",
		"{\"leader\":\"n1\",\"sync_standby\":[\"n2\"],\"quorum\":0}",
		"{\"leader\":\"n1\",\"sync_standby\":[\"pgha:none\"],\"quorum\":1}",
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		if (sync_state_decode(bad[i], &r, &e) == 0)
			fail_msg("sync key %s accepted", bad[i]);
		assert_non_null(strstr(e.msg, "sync key"));
	}
}

static void test_modes(void **state)
{
	enum sync_mode m;
	static const char *const names[] = {"off", "on", "quorum", "strict"};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(sync_mode_parse(names[i], &m), 0);
		assert_int_equal((int)m, i);
		assert_string_equal(sync_mode_name(m), names[i]);
	}
	assert_int_equal(sync_mode_parse("true", &m), 0);
	assert_int_equal(m, SYNC_ON);
	assert_int_equal(sync_mode_parse("ON", &m), 0);
	assert_int_equal(sync_mode_parse("sync", &m), -1);
	assert_int_equal(sync_mode_parse(NULL, &m), -1);
	assert_string_equal(sync_mode_name((enum sync_mode)9), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_codec),
		cmocka_unit_test(test_modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
