/*
 * test_history_key.c — the history of leader changes (cluster/history_key.c):
 * round trip, the bound, and refusals naming the entry and field.
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

#include "cluster/history_key.h"

static void test_round_trip_and_bound(void **state)
{
	(void)state;
	struct history h = {0};
	struct pgha_err e;
	assert_int_equal(history_decode(NULL, &h, &e), 0);
	assert_int_equal(h.n, 0);
	for (int i = 0; i < HISTORY_MAX + 5; i++) {
		struct history_entry x = {.at_ms = 1000 + i, .timeline = (uint32_t)i + 1, .unavailable_ms = 7};
		snprintf(x.kind, sizeof(x.kind), "%s", i == 0 ? "bootstrap" : "failover");
		snprintf(x.from, sizeof(x.from), "%s", i == 0 ? "" : "n1");
		snprintf(x.to, sizeof(x.to), "n%d", i % 3 + 1);
		history_append(&h, &x);
	}
	assert_int_equal(h.n, HISTORY_MAX);
	assert_int_equal(h.entries[0].at_ms, 1005);   /* the oldest five dropped */
	char *json = history_encode(&h);
	struct history back;
	assert_int_equal(history_decode(json, &back, &e), 0);
	free(json);
	assert_int_equal(back.n, HISTORY_MAX);
	assert_memory_equal(back.entries, h.entries, sizeof(*h.entries) * h.n);
	history_free(&back);
	history_free(&h);
}

static void test_bad_keys(void **state)
{
	(void)state;
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"[]", "history is not a JSON object"},
		{"{\"entries\":{}}", "\"entries\" is not a list"},
		{"{\"entries\":[1]}", "history entry 0 is not a JSON object"},
		{"{\"entries\":[{\"at\":1,\"kind\":\"coup\",\"to\":\"n1\"}]}", "history entry 0: \"kind\" must be"},
		{"{\"entries\":[{\"at\":1,\"kind\":\"failover\",\"to\":\"n1\"},{\"at\":2,\"kind\":\"failover\","
		 "\"to\":\"../etc\"}]}", "history entry 1: \"from\" and \"to\" must be member names"},
		{"{\"entries\":[{\"at\":-1,\"kind\":\"failover\",\"to\":\"n1\"}]}", "history entry 0: \"at\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct history h;
		struct pgha_err e = {{0}};
		if (history_decode(bad[i].json, &h, &e) == 0)
			fail_msg("accepted %s", bad[i].json);
		if (strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("%s: \"%s\" does not say %s", bad[i].json, e.msg, bad[i].msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_bound),
		cmocka_unit_test(test_bad_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
