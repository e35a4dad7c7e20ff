/*
 * test_divergence.c — when the agent asks the leader for its timeline history
 * (divergence_due in ha/divergence.c): a table of states and situations, one
 * or more rows for every return, each row whether to check and the state after.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ha/divergence.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define NOW 100000

/* The fields of struct agent_divergence a row sets or expects. */
struct div_state {
	enum ha_history history;
	const char *key;
	int64_t checked_ms;
	int64_t not_streaming_since_ms;
};

struct div_case {
	const char *desc;
	struct div_state before;
	enum div_situation situation;
	const char *key;          /* DIV_STOPPED: what the check is made for */
	bool want_check;
	struct div_state after;
};

static const struct div_case cases[] = {
	/* no leader to compare with */
	{"no leader: the not-streaming clock stops", {HA_HIST_ON, "k", 5, NOW - 10}, DIV_NO_LEADER, NULL, false,
	 {HA_HIST_ON, "k", 5, 0}},

	/* a stopped data directory */
	{"stopped, new key: checked at once, unknown until then", {HA_HIST_ON, "old", NOW - 10, 0}, DIV_STOPPED,
	 "new", true, {HA_HIST_UNKNOWN, "new", NOW, 0}},
	{"stopped, first key ever", {HA_HIST_ON, "", 0, 0}, DIV_STOPPED, "k", true, {HA_HIST_UNKNOWN, "k", NOW, 0}},
	{"stopped, same key, known on the history", {HA_HIST_ON, "k", NOW - 99999, 0}, DIV_STOPPED, "k", false,
	 {HA_HIST_ON, "k", NOW - 99999, 0}},
	{"stopped, same key, known diverged", {HA_HIST_DIVERGED, "k", NOW - 99999, 0}, DIV_STOPPED, "k", false,
	 {HA_HIST_DIVERGED, "k", NOW - 99999, 0}},
	{"stopped, same key, unknown, failed a moment ago", {HA_HIST_UNKNOWN, "k", NOW - 999, 0}, DIV_STOPPED, "k",
	 false, {HA_HIST_UNKNOWN, "k", NOW - 999, 0}},
	{"stopped, same key, unknown, failed a second ago: again", {HA_HIST_UNKNOWN, "k", NOW - 1000, 0}, DIV_STOPPED,
	 "k", true, {HA_HIST_UNKNOWN, "k", NOW, 0}},

	/* a running standby that does not stream */
	{"not streaming, just noticed", {HA_HIST_ON, "k", 0, 0}, DIV_NOT_STREAMING, NULL, false,
	 {HA_HIST_ON, "", 0, NOW}},
	{"not streaming for under 3 s", {HA_HIST_ON, "", 0, NOW - 2999}, DIV_NOT_STREAMING, NULL, false,
	 {HA_HIST_ON, "", 0, NOW - 2999}},
	{"not streaming for 3 s: checked", {HA_HIST_ON, "", 0, NOW - 3000}, DIV_NOT_STREAMING, NULL, true,
	 {HA_HIST_ON, "", NOW, NOW - 3000}},
	{"not streaming, checked under 5 s ago", {HA_HIST_ON, "", NOW - 4999, NOW - 60000}, DIV_NOT_STREAMING, NULL,
	 false, {HA_HIST_ON, "", NOW - 4999, NOW - 60000}},
	{"not streaming, checked 5 s ago: again", {HA_HIST_DIVERGED, "", NOW - 5000, NOW - 60000}, DIV_NOT_STREAMING,
	 NULL, true, {HA_HIST_DIVERGED, "", NOW, NOW - 60000}},

	/* nothing to check */
	{"streaming: the clock stops, the key is forgotten", {HA_HIST_ON, "k", 5, NOW - 10}, DIV_STREAMING, NULL, false,
	 {HA_HIST_ON, "", 5, 0}},
	{"starting: the key is forgotten, the clock goes on", {HA_HIST_UNKNOWN, "k", 5, NOW - 10}, DIV_OTHER, NULL,
	 false, {HA_HIST_UNKNOWN, "", 5, NOW - 10}},
};

static const char *const hist_names[] = {"on", "unknown", "diverged"};

static int run_case(size_t i, const struct div_case *c)
{
	struct agent_divergence d;
	memset(&d, 0, sizeof(d));
	d.history = c->before.history;
	snprintf(d.key, sizeof(d.key), "%s", c->before.key);
	d.checked_ms = c->before.checked_ms;
	d.not_streaming_since_ms = c->before.not_streaming_since_ms;
	bool check = divergence_due(&d, c->situation, c->key ? c->key : "", NOW);
	const struct div_state *w = &c->after;
	if (check == c->want_check && d.history == w->history && strcmp(d.key, w->key) == 0 &&
	    d.checked_ms == w->checked_ms && d.not_streaming_since_ms == w->not_streaming_since_ms)
		return 0;
	print_error("case %zu \"%s\": got check %d, %s \"%s\" checked %lld not streaming since %lld; "
		    "want check %d, %s \"%s\" checked %lld not streaming since %lld\n", i, c->desc, check,
		    hist_names[d.history], d.key, (long long)d.checked_ms, (long long)d.not_streaming_since_ms,
		    c->want_check, hist_names[w->history], w->key, (long long)w->checked_ms,
		    (long long)w->not_streaming_since_ms);
	return 1;
}

static void test_due_table(void **state)
{
	int failures = 0;
	for (size_t i = 0; i < NELEM(cases); i++)
		failures += run_case(i, &cases[i]);
	if (failures > 0)
		fail_msg("%d failures in %zu cases", failures, NELEM(cases));
}

/* Every situation is in the table, with and without a check where it can check. */
static void test_table_covers_every_situation(void **state)
{
	bool seen[DIV_OTHER + 1][2] = {{false}};
	for (size_t i = 0; i < NELEM(cases); i++)
		seen[cases[i].situation][cases[i].want_check] = true;
	for (int s = 0; s <= DIV_OTHER; s++) {
		if (!seen[s][false])
			fail_msg("no case of situation %d without a check", s);
		if ((s == DIV_STOPPED || s == DIV_NOT_STREAMING) && !seen[s][true])
			fail_msg("no case of situation %d with a check", s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due_table),
		cmocka_unit_test(test_table_covers_every_situation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
