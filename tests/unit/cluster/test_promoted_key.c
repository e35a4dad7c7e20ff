/*
 * test_promoted_key.c — the promoted key (cluster/promoted_key.c): round trip,
 * and every value a careless write could leave refused (it never promotes).
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

#include "cluster/promoted_key.h"

static void test_round_trip(void **state)
{
	(void)state;
	struct promoted_rec r = {.at = 1796000000}, back;
	snprintf(r.by, sizeof(r.by), "ctl");
	snprintf(r.id, sizeof(r.id), "0123456789abcdef");
	char *json = promoted_encode(&r);
	struct pgha_err e;
	assert_int_equal(promoted_decode(json, &back, &e), 0);
	free(json);
	assert_memory_equal(&r, &back, sizeof(r));
}

static void refused(const char *json, const char *want)
{
	struct promoted_rec r;
	struct pgha_err e;
	e.msg[0] = '\0';
	if (promoted_decode(json, &r, &e) == 0)
		fail_msg("accepted: %s", json);
	if (strstr(e.msg, want) == NULL)
		fail_msg("\"%s\" does not contain \"%s\" (%s)", e.msg, want, json);
	assert_int_equal(r.at, 0);
}

static void test_refused(void **state)
{
	(void)state;
	refused("", "promoted");
	refused("true", "promoted");
	refused("[]", "promoted");
	refused("{}", "\"at\", \"by\" and \"id\" are required");
	refused("{\"at\": 1, \"by\": \"ctl\"}", "are required");
	refused("{\"at\": 1, \"by\": \"ctl\", \"id\": \"ab\", \"force\": true}", "unknown field \"force\"");
	refused("{\"at\": \"1\", \"by\": \"ctl\", \"id\": \"ab\"}", "\"at\" is not an integer");
	refused("{\"at\": 0, \"by\": \"ctl\", \"id\": \"ab\"}", "\"at\" is out of range");
	refused("{\"at\": 1, \"by\": \"CTL\", \"id\": \"ab\"}", "\"by\" must be lowercase letters");
	refused("{\"at\": 1, \"by\": \"\", \"id\": \"ab\"}", "\"by\"");
	refused("{\"at\": 1, \"by\": \"ctl\", \"id\": \"xyz\"}", "\"id\" must be lowercase hex");
	refused("{\"at\": 1, \"by\": \"ctl\", \"id\": \"0123456789abcdef0123456789abcdef0\"}", "\"id\"");
	refused("{\"at\": 1, \"at\": 2, \"by\": \"ctl\", \"id\": \"ab\"}", "promoted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
