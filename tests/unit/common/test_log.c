/*
 * test_log.c — log_first_time(): a bad etcd key read every loop is reported
 * once per (complaint, key, revision), again when it changes, separately per
 * complaint and per thread context, with bounded memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>

#include "common/log.h"

static void test_once_per_revision(void **state)
{
	static const char bad[] = "member bad", other[] = "member name";
	log_set_context("agent t1");
	assert_true(log_first_time(bad, "/pgha/t/members/x", 5));
	for (int i = 0; i < 100; i++)
		assert_false(log_first_time(bad, "/pgha/t/members/x", 5));
	/* Another complaint about the same key, another key: their own first time. */
	assert_true(log_first_time(other, "/pgha/t/members/x", 5));
	assert_true(log_first_time(bad, "/pgha/t/members/y", 5));
	/* Rewritten (new revision): reported again, once. */
	assert_true(log_first_time(bad, "/pgha/t/members/x", 9));
	assert_false(log_first_time(bad, "/pgha/t/members/x", 9));
	/* Another thread's context (the API, a second agent in one process) hears it too. */
	log_set_context("agent t2");
	assert_true(log_first_time(bad, "/pgha/t/members/x", 9));
	log_set_context("agent t1");
}

static void test_bounded(void **state)
{
	static const char what[] = "flood";
	char key[64];
	log_set_context("agent t3");
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "/pgha/t/members/k%d", i);
		assert_true(log_first_time(what, key, 1));
	}
	/* The most recent ones are still remembered; the oldest were forgotten. */
	assert_false(log_first_time(what, "/pgha/t/members/k9999", 1));
	assert_true(log_first_time(what, "/pgha/t/members/k0", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_per_revision),
		cmocka_unit_test(test_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
