/*
 * test_switchover_step.c — the planned switchover's decision
 * (switchover_decide in ha/switchover.c): a table of inputs with one or more
 * rows for every return of the function, each row the step it must take; and
 * the check of the candidate (switchover_check_candidate), one row per answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ha/switchover.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define NOW 1000000
#define PAUSE_MS 5000       /* switchover.c PAUSE_TIMEOUT_MS */
#define HANDOVER_MS 20000   /* switchover.c HANDOVER_TIMEOUT_MS */
#define KEEP_MS 60000       /* switchover.c KEEP_FINISHED_MS */

/* The record: n1 hands over to n2. */
struct rec {
	enum so_phase phase;
	int64_t at_ms;
	int64_t deadline_ms;
};

/* The inputs besides the record; the leader "" means no leader key. */
struct in {
	const char *me;
	const char *leader;
	bool running_primary;
	bool paused;
	int proxies, proxies_paused;
	int64_t started_ms;
	const char *problem;
};

struct want {
	enum so_step_action action;
	enum so_phase phase;
	int64_t deadline_ms;
	const char *reason;      /* the reason starts with this */
	bool start_clock;
	enum so_failover failover;
};

struct step_case {
	const char *desc;
	struct rec rec;
	struct in in;
	struct want want;
};

/* The old leader n1, holding the key, its PostgreSQL a running primary. */
#define FROM_PRIMARY .me = "n1", .leader = "n1", .running_primary = true
/* The candidate n2 after it took the key and promoted. */
#define TO_PRIMARY .me = "n2", .leader = "n2", .running_primary = true
#define NONE {SO_STEP_NONE, 0, 0, NULL, false, SO_FAILOVER_NONE}
#define ABORT(why) {SO_STEP_ADVANCE, SO_ABORTED, NOW, why, false, SO_FAILOVER_NONE}

static const struct step_case cases[] = {
	/* finished records: the leader removes them after a while */
	{"done, kept a while", {SO_DONE, 0, NOW - KEEP_MS}, {FROM_PRIMARY}, NONE},
	{"done, kept long enough: removed", {SO_DONE, 0, NOW - KEEP_MS - 1}, {FROM_PRIMARY},
	 {SO_STEP_REMOVE, 0, 0, NULL, false, SO_FAILOVER_NONE}},
	{"aborted, kept long enough: removed by the new leader too", {SO_ABORTED, 0, NOW - KEEP_MS - 1},
	 {TO_PRIMARY}, {SO_STEP_REMOVE, 0, 0, NULL, false, SO_FAILOVER_NONE}},
	{"done, old: not removed by a replica", {SO_DONE, 0, NOW - KEEP_MS - 1}, {.me = "n3", .leader = "n1"},
	 NONE},
	{"done, old: not removed by a leader whose PostgreSQL is not primary", {SO_DONE, 0, NOW - KEEP_MS - 1},
	 {.me = "n1", .leader = "n1"}, NONE},
	{"done without a deadline: kept", {SO_DONE, 0, 0}, {FROM_PRIMARY}, NONE},

	/* the candidate finishes it */
	{"candidate runs as the leader's primary (demoting): done", {SO_DEMOTING, 0, NOW + 1},
	 {TO_PRIMARY, .started_ms = NOW - 2500},
	 {SO_STEP_ADVANCE, SO_DONE, NOW, "the new leader runs (2.5 s after pausing began)", false,
	  SO_FAILOVER_NONE}},
	{"candidate runs as the leader's primary (promoting), start unknown: done", {SO_PROMOTING, 0, NOW + 1},
	 {TO_PRIMARY}, {SO_STEP_ADVANCE, SO_DONE, NOW, "the new leader runs", false, SO_FAILOVER_NONE}},
	{"candidate holds the key, not primary yet", {SO_PROMOTING, 0, NOW + 1},
	 {.me = "n2", .leader = "n2"}, NONE},
	{"candidate, still pausing", {SO_PAUSING, 0, NOW + 1}, {TO_PRIMARY}, NONE},
	{"a third member never acts", {SO_PAUSING, 0, NOW - 1}, {.me = "n3", .leader = "n1"}, NONE},

	/* scheduled */
	{"scheduled, not yet", {SO_SCHEDULED, NOW + 1, 0}, {FROM_PRIMARY}, NONE},
	{"scheduled, not primary", {SO_SCHEDULED, 0, 0}, {.me = "n1", .leader = "n1"}, NONE},
	{"scheduled, another holds the key", {SO_SCHEDULED, 0, 0}, {.me = "n1", .leader = "n2",
	 .running_primary = true}, NONE},
	{"scheduled, paused", {SO_SCHEDULED, 0, 0}, {FROM_PRIMARY, .paused = true},
	 ABORT("maintenance mode is on")},
	{"scheduled, the candidate cannot", {SO_SCHEDULED, 0, 0}, {FROM_PRIMARY, .problem = "n2 is tagged nofailover"},
	 ABORT("n2 is tagged nofailover")},
	{"scheduled, its time: pausing", {SO_SCHEDULED, NOW, 0}, {FROM_PRIMARY},
	 {SO_STEP_ADVANCE, SO_PAUSING, NOW + PAUSE_MS, "", true, SO_FAILOVER_NONE}},

	/* pausing */
	{"pausing, no longer primary", {SO_PAUSING, 0, NOW + 1}, {.me = "n1", .leader = "n1"},
	 ABORT("this member stopped being the running leader")},
	{"pausing, lost the key", {SO_PAUSING, 0, NOW + 1}, {.me = "n1", .running_primary = true},
	 ABORT("this member stopped being the running leader")},
	{"pausing, late", {SO_PAUSING, 0, NOW - 1}, {FROM_PRIMARY, .proxies = 3, .proxies_paused = 2},
	 ABORT("only 2 of 3 proxies paused within 5000 ms")},
	{"pausing, proxies still pausing", {SO_PAUSING, 0, NOW + 1}, {FROM_PRIMARY, .proxies = 3,
	 .proxies_paused = 2}, NONE},
	{"pausing, all paused, the candidate cannot", {SO_PAUSING, 0, NOW + 1},
	 {FROM_PRIMARY, .proxies = 2, .proxies_paused = 2, .problem = "n2 is stopped, not streaming"},
	 ABORT("n2 is stopped, not streaming")},
	{"pausing, all paused: demoting, the failover key to the candidate", {SO_PAUSING, 0, NOW + 1},
	 {FROM_PRIMARY, .proxies = 2, .proxies_paused = 2, .started_ms = NOW - 100},
	 {SO_STEP_ADVANCE, SO_DEMOTING, NOW + HANDOVER_MS, "", false, SO_FAILOVER_CANDIDATE}},
	{"pausing, no proxy, start unknown (agent restarted): demoting, the clock starts",
	 {SO_PAUSING, 0, NOW + 1}, {FROM_PRIMARY},
	 {SO_STEP_ADVANCE, SO_DEMOTING, NOW + HANDOVER_MS, "", true, SO_FAILOVER_CANDIDATE}},

	/* demoting, promoting: the old leader watches the key */
	{"demoting, the candidate took the key: promoting", {SO_DEMOTING, 0, NOW + 7},
	 {.me = "n1", .leader = "n2"}, {SO_STEP_ADVANCE, SO_PROMOTING, NOW + 7, "", false, SO_FAILOVER_NONE}},
	{"promoting, the candidate holds the key", {SO_PROMOTING, 0, NOW - 1}, {.me = "n1", .leader = "n2"},
	 NONE},
	{"demoting, nobody holds the key yet", {SO_DEMOTING, 0, NOW + 1}, {.me = "n1"}, NONE},
	{"demoting, still holding the key", {SO_DEMOTING, 0, NOW + 1}, {.me = "n1", .leader = "n1"}, NONE},
	{"demoting, late: aborted, the failover key back to this member", {SO_DEMOTING, 0, NOW - 1}, {.me = "n1"},
	 {SO_STEP_ADVANCE, SO_ABORTED, NOW, "n2 did not take over within 20000 ms: n1 goes on as the leader", false,
	  SO_FAILOVER_ME}},
	{"promoting, late, the key back with us: aborted", {SO_PROMOTING, 0, NOW - 1}, {FROM_PRIMARY},
	 {SO_STEP_ADVANCE, SO_ABORTED, NOW, "n2 did not take over", false, SO_FAILOVER_ME}},
};

static const char *action_name(enum so_step_action a)
{
	return a == SO_STEP_NONE ? "none" : a == SO_STEP_REMOVE ? "remove" : "advance";
}

static int run_case(size_t i, const struct step_case *c)
{
	struct switchover so;
	memset(&so, 0, sizeof(so));
	snprintf(so.id, sizeof(so.id), "so-1");
	snprintf(so.from, sizeof(so.from), "n1");
	snprintf(so.to, sizeof(so.to), "n2");
	so.phase = c->rec.phase;
	so.at_ms = c->rec.at_ms;
	so.deadline_ms = c->rec.deadline_ms;
	struct so_inputs in = {
		.so = &so, .me = c->in.me, .leader = c->in.leader, .running_primary = c->in.running_primary,
		.paused = c->in.paused, .proxies = c->in.proxies, .proxies_paused = c->in.proxies_paused,
		.started_ms = c->in.started_ms, .candidate_problem = c->in.problem ? c->in.problem : "",
		.now_ms = NOW,
	};
	struct so_step s = switchover_decide(&in);
	const struct want *w = &c->want;
	bool ok = s.action == w->action;
	if (ok && s.action == SO_STEP_ADVANCE)
		ok = s.phase == w->phase && s.deadline_ms == w->deadline_ms && s.start_clock == w->start_clock &&
		     s.failover == w->failover && strncmp(s.reason, w->reason, strlen(w->reason)) == 0 &&
		     (w->reason[0] != '\0' || s.reason[0] == '\0');
	if (ok)
		return 0;
	print_error("case %zu \"%s\": got %s %s deadline %lld reason \"%s\" start_clock %d failover %d, "
		    "want %s %s deadline %lld reason \"%s\" start_clock %d failover %d\n", i, c->desc,
		    action_name(s.action), so_phase_name(s.phase), (long long)s.deadline_ms, s.reason, s.start_clock,
		    s.failover, action_name(w->action), so_phase_name(w->phase), (long long)w->deadline_ms,
		    w->reason ? w->reason : "", w->start_clock, w->failover);
	return 1;
}

static void test_step_table(void **state)
{
	int failures = 0;
	for (size_t i = 0; i < NELEM(cases); i++)
		failures += run_case(i, &cases[i]);
	if (failures > 0)
		fail_msg("%d failures in %zu cases", failures, NELEM(cases));
}

/* Every action, and every phase the record can be moved to, is expected by a row. */
static void test_table_covers_every_step(void **state)
{
	bool action[SO_STEP_ADVANCE + 1] = {false}, phase[SO_ABORTED + 1] = {false};
	bool failover[SO_FAILOVER_ME + 1] = {false};
	for (size_t i = 0; i < NELEM(cases); i++) {
		action[cases[i].want.action] = true;
		if (cases[i].want.action == SO_STEP_ADVANCE)
			phase[cases[i].want.phase] = true;
		failover[cases[i].want.failover] = true;
	}
	for (size_t a = 0; a < NELEM(action); a++)
		if (!action[a])
			fail_msg("no case expects %s", action_name((enum so_step_action)a));
	for (size_t p = SO_PAUSING; p < NELEM(phase); p++)
		if (!phase[p])
			fail_msg("no case moves the record to %s", so_phase_name((enum so_phase)p));
	for (size_t f = 0; f < NELEM(failover); f++)
		if (!failover[f])
			fail_msg("no case expects failover %zu", f);
}

/* ---- the candidate ---------------------------------------------------------- */

struct candidate_case {
	const char *desc;
	bool member;             /* the candidate has a member record */
	enum member_state state;
	bool nofailover;
	int64_t lag;
	bool sync_mode;          /* in synchronous mode, with ... */
	bool listed;             /* ... the candidate a synchronous standby */
	const char *want;        /* the answer starts with this; "" if it can take over */
};

static const struct candidate_case candidates[] = {
	{"streaming, close", true, STATE_STREAMING, false, 100, false, false, ""},
	{"streaming, exactly at the lag limit", true, STATE_STREAMING, false, 16 * 1024 * 1024, false, false, ""},
	{"no member record", false, STATE_STREAMING, false, 0, false, false,
	 "n2 is not a member of the cluster"},
	{"running, not streaming", true, STATE_RUNNING, false, 0, false, false, "n2 is running, not streaming"},
	{"tagged nofailover", true, STATE_STREAMING, true, 0, false, false, "n2 is tagged nofailover"},
	{"too far behind", true, STATE_STREAMING, false, 16 * 1024 * 1024 + 1, false, false,
	 "n2 is 16777217 bytes behind (more than 16777216)"},
	{"lag unknown", true, STATE_STREAMING, false, -1, false, false, "n2 is -1 bytes behind"},
	{"synchronous mode, not a synchronous standby", true, STATE_STREAMING, false, 0, true, false,
	 "synchronous mode: n2 is not a synchronous standby"},
	{"synchronous mode, a synchronous standby", true, STATE_STREAMING, false, 0, true, true, ""},
};

static void test_candidate_table(void **state)
{
	int failures = 0;
	for (size_t i = 0; i < NELEM(candidates); i++) {
		const struct candidate_case *c = &candidates[i];
		struct member m;
		memset(&m, 0, sizeof(m));
		snprintf(m.name, sizeof(m.name), "n2");
		m.state = c->state;
		m.tags.nofailover = c->nofailover;
		m.lag_bytes = c->lag;
		struct sync_set set;
		sync_set_clear(&set);
		sync_set_add(&set, c->listed ? "n2" : "n3");
		set.num = 1;
		char why[300];
		switchover_check_candidate("n2", c->member ? &m : NULL, c->sync_mode ? &set : NULL, why, sizeof(why));
		if (strncmp(why, c->want, strlen(c->want)) != 0 || (c->want[0] == '\0' && why[0] != '\0')) {
			print_error("candidate case %zu \"%s\": got \"%s\", want \"%s\"\n", i, c->desc, why, c->want);
			failures++;
		}
	}
	if (failures > 0)
		fail_msg("%d failures in %zu candidate cases", failures, NELEM(candidates));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_step_table),
		cmocka_unit_test(test_table_covers_every_step),
		cmocka_unit_test(test_candidate_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
