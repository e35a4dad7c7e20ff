/*
 * test_election.c — who takes a free leader key (ha/election.c): ranking this
 * member among the others' answers (ha_rank), and reading an answer from the
 * /status body another agent serves (ha_candidate_from_status). The bodies
 * are made by api_status_json, the function that serves them, plus literal
 * JSON for the malformed ones.
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

#include "api/api.h"
#include "common/strbuf.h"
#include "ha/election.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- ha_rank -------------------------------------------------------------- */

/* A settled, answering candidate. */
static struct ha_candidate cand(const char *name, uint32_t tli, uint64_t lsn, int priority)
{
	struct ha_candidate c;
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.answered = c.settled = c.candidate = true;
	c.timeline = tli;
	c.lsn = lsn;
	c.priority = priority;
	return c;
}

static const char SENTINEL[] = "sentinel";

static void test_rank_me_best(void **state)
{
	struct ha_candidate me = cand("n2", 3, 0x5000000, 100);
	struct ha_candidate others[] = {
		cand("n1", 3, 0x4FFFFFF, 100),   /* same timeline, behind */
		cand("n3", 2, 0x9000000, 1000),  /* further on an older timeline */
		cand("n4", 3, 0x5000000, 50),    /* same position, lower priority */
		cand("n0", 3, 0x5000000, 99),    /* lower name, lower priority */
	};
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank(&me, others, NELEM(others), &ahead), HA_RANK_BEST);
	/* ahead may be NULL */
	assert_int_equal(ha_rank(&me, others, NELEM(others), NULL), HA_RANK_BEST);
	/* nobody else */
	assert_int_equal(ha_rank(&me, NULL, 0, &ahead), HA_RANK_BEST);
}

static void test_rank_higher_timeline_ahead(void **state)
{
	struct ha_candidate me = cand("n1", 3, 0x9000000, 100);
	struct ha_candidate others[] = {
		cand("n2", 3, 0x1000000, 100),
		cand("n3", 4, 0x1000000, 1), /* newer timeline wins over position and priority */
	};
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank(&me, others, NELEM(others), &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n3");
}

static void test_rank_higher_lsn_ahead(void **state)
{
	struct ha_candidate me = cand("n1", 3, 0x5000000, 500);
	struct ha_candidate others[] = {
		cand("n2", 3, 0x4000000, 100),
		cand("n3", 3, 0x5000001, 1), /* one byte ahead beats a higher priority */
	};
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank(&me, others, NELEM(others), &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n3");
	/* the high 32 bits of the position count */
	me = cand("n1", 3, 0xFFFFFFFF, 100);
	struct ha_candidate high = cand("n2", 3, 0x100000000ULL, 100);
	ahead = SENTINEL;
	assert_int_equal(ha_rank(&me, &high, 1, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n2");
}

static void test_rank_priority_breaks_ties(void **state)
{
	struct ha_candidate me = cand("n1", 3, 0x5000000, 100);
	struct ha_candidate higher = cand("n9", 3, 0x5000000, 101);
	struct ha_candidate lower = cand("n0", 3, 0x5000000, 99);
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank(&me, &higher, 1, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n9");
	assert_int_equal(ha_rank(&me, &lower, 1, NULL), HA_RANK_BEST);
}

static void test_rank_name_breaks_ties(void **state)
{
	struct ha_candidate a = cand("node-a", 3, 0x5000000, 100);
	struct ha_candidate b = cand("node-b", 3, 0x5000000, 100);
	const char *ahead = SENTINEL;
	/* b sees a, with the lower name, ahead; a sees itself best: exactly one races */
	assert_int_equal(ha_rank(&b, &a, 1, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "node-a");
	assert_int_equal(ha_rank(&a, &b, 1, NULL), HA_RANK_BEST);
}

/* Equally advanced: the one in the old leader's region first, over priority and name. */
static void test_rank_home_region_breaks_ties(void **state)
{
	struct ha_candidate home = cand("n9", 3, 0x5000000, 50);
	struct ha_candidate away = cand("n0", 3, 0x5000000, 900);
	home.home_region = true;
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank(&away, &home, 1, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n9");
	assert_int_equal(ha_rank(&home, &away, 1, NULL), HA_RANK_BEST);
	/* more data wins over the region: a byte further ahead */
	away.lsn++;
	assert_int_equal(ha_rank(&home, &away, 1, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n0");
	assert_int_equal(ha_rank(&away, &home, 1, NULL), HA_RANK_BEST);
	/* a later timeline too */
	away.lsn = 0x1000000;
	away.timeline = 4;
	assert_int_equal(ha_rank(&home, &away, 1, NULL), HA_RANK_BEHIND);
	/* both at home: priority, then name, as before */
	away = cand("n0", 3, 0x5000000, 900);
	away.home_region = true;
	assert_int_equal(ha_rank(&home, &away, 1, NULL), HA_RANK_BEHIND);
	/* in synchronous mode among the listed standbys, the same order */
	struct ha_candidate a = cand("n0", 3, 0x5000000, 900), b = cand("n9", 3, 0x5000000, 50);
	a.listed = a.has_position = b.listed = b.has_position = true;
	b.home_region = true;
	assert_int_equal(ha_rank_sync(&a, &b, 1, 2, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n9");
	assert_int_equal(ha_rank_sync(&b, &a, 1, 2, NULL), HA_RANK_BEST);
}

static void test_rank_ignores_non_candidates(void **state)
{
	struct ha_candidate me = cand("n2", 3, 0x5000000, 100);
	struct ha_candidate others[] = {
		cand("n1", 9, 0xF000000, 1000),
		cand("n3", 9, 0xF000000, 1000),
		cand("n4", 9, 0xF000000, 1000),
	};
	others[0].candidate = false;                      /* nofailover, stopped, ... */
	others[1].answered = false;                       /* did not answer */
	others[2].answered = false;                       /* neither, and unsettled */
	others[2].candidate = false;
	others[2].settled = false;
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank(&me, others, NELEM(others), &ahead), HA_RANK_BEST);
	/* an unsettled member that is not a candidate, or did not answer, is not waited for */
	others[0].settled = false;
	others[1].settled = false;
	assert_int_equal(ha_rank(&me, others, NELEM(others), &ahead), HA_RANK_BEST);
}

static void test_rank_unsettled(void **state)
{
	struct ha_candidate me = cand("n1", 3, 0x5000000, 100);
	struct ha_candidate others[] = {
		cand("n2", 3, 0x1000000, 100),
		cand("n3", 2, 0x1000000, 1), /* far behind, but still sees the old leader */
		cand("n4", 3, 0x2000000, 100),
	};
	others[1].settled = false;
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank(&me, others, NELEM(others), &ahead), HA_RANK_UNSETTLED);
	assert_string_equal(ahead, "n3");
	/* once it has seen the leader go, this member is the best */
	others[1].settled = true;
	assert_int_equal(ha_rank(&me, others, NELEM(others), &ahead), HA_RANK_BEST);
}

/* ---- ha_rank_sync: synchronous mode ----------------------------------------- */

/* A listed synchronous standby that answered with its position. */
static struct ha_candidate listed(const char *name, uint64_t lsn)
{
	struct ha_candidate c = cand(name, 3, lsn, 100);
	c.listed = c.has_position = true;
	return c;
}

static void test_sync_quorum_of_listed(void **state)
{
	/* ANY 1 (n2, n3): Q = 2, so n2 must hear from n3 too */
	struct ha_candidate me = listed("n2", 0x5000000);
	struct ha_candidate others[] = {listed("n3", 0x4000000), cand("n4", 3, 0x9000000, 100)};
	const char *ahead = SENTINEL;
	/* n4 is further but not listed: it neither competes nor counts */
	assert_int_equal(ha_rank_sync(&me, others, NELEM(others), 2, &ahead), HA_RANK_BEST);
	/* without n3's answer, n2 cannot know it has every acknowledged commit */
	others[0].answered = false;
	assert_int_equal(ha_rank_sync(&me, others, NELEM(others), 2, &ahead), HA_RANK_NO_QUORUM);
	/* n3 answered but its PostgreSQL is down: no position, does not count */
	others[0].answered = true;
	others[0].has_position = others[0].candidate = false;
	assert_int_equal(ha_rank_sync(&me, others, NELEM(others), 2, &ahead), HA_RANK_NO_QUORUM);
	/* with Q = 1 (ANY 2 of 2) n2 alone is enough */
	assert_int_equal(ha_rank_sync(&me, others, NELEM(others), 1, &ahead), HA_RANK_BEST);
}

static void test_sync_behind_listed_even_if_not_candidate(void **state)
{
	struct ha_candidate me = listed("n2", 0x5000000);
	struct ha_candidate others[] = {listed("n3", 0x6000000)};
	others[0].candidate = false;   /* tagged nofailover since: it may hold the only copy */
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank_sync(&me, others, 1, 2, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n3");
	/*
	 * As far along as me but not a candidate (it cannot reach etcd, say): it would win the
	 * tie on its name, but it will not take the key, so I do.
	 */
	struct ha_candidate n0 = listed("n0", 0x5000000);
	n0.candidate = false;
	assert_int_equal(ha_rank_sync(&me, &n0, 1, 2, &ahead), HA_RANK_BEST);
	/* a listed standby that has not seen the leader go is waited for */
	others[0].lsn = 0x1000000;
	others[0].settled = false;
	assert_int_equal(ha_rank_sync(&me, others, 1, 2, &ahead), HA_RANK_UNSETTLED);
	assert_string_equal(ahead, "n3");
}

static void test_sync_leader_of_key(void **state)
{
	/* the old leader (named in the sync key) needs nobody's answer */
	struct ha_candidate me = cand("n1", 3, 0x7000000, 100);
	me.sync_leader = true;
	struct ha_candidate others[] = {listed("n2", 0x5000000), cand("n3", 3, 0x8000000, 100)};
	others[0].answered = false;
	const char *ahead = SENTINEL;
	assert_int_equal(ha_rank_sync(&me, others, NELEM(others), 0, &ahead), HA_RANK_BEST);
	/* and a listed standby competes with it on position */
	struct ha_candidate me2 = listed("n2", 0x5000000);
	struct ha_candidate others2[] = {me, listed("n4", 0x5000000)};
	assert_int_equal(ha_rank_sync(&me2, others2, NELEM(others2), 2, &ahead), HA_RANK_BEHIND);
	assert_string_equal(ahead, "n1");
	assert_int_equal(ha_rank_sync(&me2, others2, NELEM(others2), 2, NULL), HA_RANK_BEHIND);
}

/* ---- ha_candidate_from_status on what api_status_json serves --------------- */

struct status_spec {
	enum member_role role;
	enum member_state state;
	uint32_t timeline;
	const char *leader;      /* "" serves null */
	bool etcd;
	uint64_t received, replayed; /* 0 serves null */
	bool nofailover;
	int priority;
};

/* A streaming replica that reaches etcd and has seen the leader go. */
static const struct status_spec STREAMING = {
	ROLE_REPLICA, STATE_STREAMING, 3, "", true, 0x3000060, 0x3000000, false, 100,
};

static char *status_body(const struct status_spec *sp)
{
	static struct api_status st; /* large: not on the stack */
	memset(&st, 0, sizeof(st));
	snprintf(st.self.name, sizeof(st.self.name), "n2");
	st.self.role = sp->role;
	st.self.state = sp->state;
	st.self.timeline = sp->timeline;
	st.self.received_lsn = sp->received;
	st.self.replayed_lsn = sp->replayed;
	st.self.lag_bytes = -1;
	st.self.tags.nofailover = sp->nofailover;
	st.self.tags.priority = sp->priority;
	snprintf(st.self.host, sizeof(st.self.host), "10.0.0.2");
	st.self.port = 5432;
	st.etcd_reachable = sp->etcd;
	snprintf(st.leader, sizeof(st.leader), "%s", sp->leader);
	struct strbuf b = STRBUF_INIT;
	api_status_json(&st, &b);
	char *s = strdup(sb_str(&b));
	sb_free(&b);
	assert_non_null(s);
	return s;
}

/* Parse into a candidate whose name was filled in (as ha_poll_candidates does). */
static struct ha_candidate parse(const char *json)
{
	struct ha_candidate c;
	memset(&c, 0xA5, sizeof(c)); /* stale garbage: every field must be set */
	snprintf(c.name, sizeof(c.name), "n2");
	ha_candidate_from_status(json, &c);
	assert_string_equal(c.name, "n2");
	return c;
}

static struct ha_candidate parse_spec(const struct status_spec *sp)
{
	char *body = status_body(sp);
	struct ha_candidate c = parse(body);
	free(body);
	return c;
}

static void test_status_streaming_replica(void **state)
{
	struct ha_candidate c = parse_spec(&STREAMING);
	assert_true(c.answered);
	assert_true(c.settled);
	assert_true(c.candidate);
	assert_int_equal(c.timeline, 3);
	assert_int_equal(c.lsn, 0x3000060); /* received > replayed */
	assert_int_equal(c.priority, 100);
	assert_true(c.has_position);
	assert_false(c.listed);          /* set by the caller from the sync key */
	assert_false(c.sync_leader);

	/* replayed ahead of received (e.g. WAL from the archive) */
	struct status_spec sp = STREAMING;
	sp.received = 0x1000000;
	sp.replayed = 0x100000020ULL;
	c = parse_spec(&sp);
	assert_int_equal(c.lsn, 0x100000020ULL);

	/* only one known, the other null */
	sp.received = 0;
	sp.replayed = 0x2A000000;
	c = parse_spec(&sp);
	assert_true(c.candidate);
	assert_int_equal(c.lsn, 0x2A000000);
	sp.received = 0x2B000000;
	sp.replayed = 0;
	c = parse_spec(&sp);
	assert_int_equal(c.lsn, 0x2B000000);

	/* a running replica without a walreceiver is a candidate too */
	sp = STREAMING;
	sp.state = STATE_RUNNING;
	sp.priority = 7;
	c = parse_spec(&sp);
	assert_true(c.answered);
	assert_true(c.candidate);
	assert_int_equal(c.priority, 7);
}

static void test_status_leader_still_seen(void **state)
{
	struct status_spec sp = STREAMING;
	sp.leader = "n1";
	struct ha_candidate c = parse_spec(&sp);
	assert_true(c.answered);
	assert_false(c.settled);
	assert_true(c.candidate);
	assert_int_equal(c.lsn, 0x3000060);
}

static void test_status_not_candidates(void **state)
{
	static const struct {
		const char *desc;
		enum member_role role;
		enum member_state state;
		bool etcd;
		bool nofailover;
		int priority;
	} cases[] = {
		{"nofailover", ROLE_REPLICA, STATE_STREAMING, true, true, 100},
		{"priority 0", ROLE_REPLICA, STATE_STREAMING, true, false, 0},
		{"negative priority", ROLE_REPLICA, STATE_STREAMING, true, false, -5},
		{"etcd unreachable", ROLE_REPLICA, STATE_STREAMING, false, false, 100},
		{"replica stopped", ROLE_REPLICA, STATE_STOPPED, true, false, 100},
		{"replica starting", ROLE_REPLICA, STATE_STARTING, true, false, 100},
		{"replica crashed", ROLE_REPLICA, STATE_CRASHED, true, false, 100},
		{"primary stopped", ROLE_PRIMARY, STATE_STOPPED, true, false, 100},
		{"primary starting", ROLE_PRIMARY, STATE_STARTING, true, false, 100},
		{"primary crashed", ROLE_PRIMARY, STATE_CRASHED, true, false, 100},
		{"primary running, etcd unreachable", ROLE_PRIMARY, STATE_RUNNING, false, false, 100},
		{"uninitialized, cloning", ROLE_UNINITIALIZED, STATE_CLONING, true, false, 100},
		{"unknown role", ROLE_UNKNOWN, STATE_UNKNOWN, true, false, 100},
		{"unknown role, running", ROLE_UNKNOWN, STATE_RUNNING, true, false, 100},
		{"uninitialized, streaming", ROLE_UNINITIALIZED, STATE_STREAMING, true, false, 100},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct status_spec sp = STREAMING;
		sp.role = cases[i].role;
		sp.state = cases[i].state;
		sp.etcd = cases[i].etcd;
		sp.nofailover = cases[i].nofailover;
		sp.priority = cases[i].priority;
		struct ha_candidate c = parse_spec(&sp);
		if (!c.answered)
			fail_msg("%s: not answered", cases[i].desc);
		if (c.candidate)
			fail_msg("%s: taken for a candidate", cases[i].desc);
		/* a running standby's position counts in synchronous mode, candidate or not */
		bool pos = cases[i].role == ROLE_REPLICA &&
			   (cases[i].state == STATE_STREAMING || cases[i].state == STATE_RUNNING);
		if (c.has_position != pos)
			fail_msg("%s: has_position %d", cases[i].desc, c.has_position);
	}
}

static void test_status_running_primary(void **state)
{
	struct status_spec sp = STREAMING;
	sp.role = ROLE_PRIMARY;
	sp.state = STATE_RUNNING;
	sp.timeline = 4;
	sp.received = sp.replayed = 0;
	struct ha_candidate c = parse_spec(&sp);
	assert_true(c.answered);
	assert_true(c.candidate);
	assert_true(c.settled);
	assert_int_equal(c.timeline, UINT32_MAX);
	/* it takes the key itself, whatever its tags: it is ahead of every standby */
	sp.nofailover = true;
	sp.priority = 0;
	c = parse_spec(&sp);
	assert_true(c.candidate);
	assert_true(c.settled);
	assert_int_equal(c.timeline, UINT32_MAX);
	struct ha_candidate me = cand("n1", 4, 0xFFFFFFFFFFULL, 1000);
	assert_int_equal(ha_rank(&me, &c, 1, NULL), HA_RANK_BEHIND);
}

static void test_status_literal_bodies(void **state)
{
	/* hand-written: missing tags default to priority 100 and no nofailover */
	struct ha_candidate c = parse("{\"role\":\"replica\",\"state\":\"streaming\",\"timeline\":5,"
				      "\"etcd_reachable\":true,\"leader\":null,"
				      "\"received_lsn\":\"1/A0\",\"replayed_lsn\":null}");
	assert_true(c.answered);
	assert_true(c.candidate);
	assert_true(c.settled);
	assert_int_equal(c.timeline, 5);
	assert_int_equal(c.lsn, 0x1000000A0ULL);
	assert_int_equal(c.priority, 100);
	assert_string_equal(c.region, "");
	assert_false(c.home_region);   /* set by the caller from the last leader's region */

	/* the region tag; one that is not a label is read as none */
	c = parse("{\"role\":\"replica\",\"state\":\"streaming\",\"timeline\":5,\"etcd_reachable\":true,"
		  "\"leader\":null,\"tags\":{\"region\":\"eu-west\"}}");
	assert_string_equal(c.region, "eu-west");
	c = parse("{\"role\":\"replica\",\"state\":\"streaming\",\"timeline\":5,\"etcd_reachable\":true,"
		  "\"leader\":null,\"tags\":{\"region\":\"eu west; DROP\"}}");
	assert_true(c.candidate);
	assert_string_equal(c.region, "");

	/* no leader key at all counts as "no leader" */
	c = parse("{\"role\":\"replica\",\"state\":\"running\",\"timeline\":5,"
		  "\"etcd_reachable\":true}");
	assert_true(c.answered);
	assert_true(c.settled);
	assert_true(c.candidate);
	assert_int_equal(c.lsn, 0);

	/* etcd_reachable missing: not a candidate */
	c = parse("{\"role\":\"replica\",\"state\":\"streaming\",\"timeline\":5,\"leader\":null}");
	assert_true(c.answered);
	assert_false(c.candidate);

	/* a name in the body does not replace the one the caller set */
	c = parse("{\"name\":\"impostor\",\"role\":\"replica\",\"state\":\"streaming\","
		  "\"timeline\":5,\"etcd_reachable\":true,\"leader\":null}");
	assert_true(c.answered);
	assert_string_equal(c.name, "n2");
}

static void test_status_unusable(void **state)
{
	static const char *const bad[] = {
		"",
		"garbage",
		"{\"role\":",
		"null",
		"42",
		"\"replica\"",
		"[{\"role\":\"replica\",\"state\":\"streaming\",\"timeline\":3}]",
		"{}",
		/* each of role, state, timeline missing or of the wrong type */
		"{\"state\":\"streaming\",\"timeline\":3,\"etcd_reachable\":true}",
		"{\"role\":\"replica\",\"timeline\":3,\"etcd_reachable\":true}",
		"{\"role\":\"replica\",\"state\":\"streaming\",\"etcd_reachable\":true}",
		"{\"role\":1,\"state\":\"streaming\",\"timeline\":3,\"etcd_reachable\":true}",
		"{\"role\":\"replica\",\"state\":null,\"timeline\":3,\"etcd_reachable\":true}",
		"{\"role\":\"replica\",\"state\":\"streaming\",\"timeline\":\"3\","
		"\"etcd_reachable\":true}",
		"{\"role\":\"replica\",\"state\":\"streaming\",\"timeline\":3.0,"
		"\"etcd_reachable\":true}",
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		struct ha_candidate c = parse(bad[i]);
		if (c.answered || c.candidate || c.settled)
			fail_msg("\"%s\": answered=%d candidate=%d settled=%d", bad[i], c.answered,
				 c.candidate, c.settled);
		/* an unusable answer never ranks ahead */
		struct ha_candidate me = cand("n9", 1, 0, 1);
		assert_int_equal(ha_rank(&me, &c, 1, NULL), HA_RANK_BEST);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rank_me_best),
		cmocka_unit_test(test_rank_higher_timeline_ahead),
		cmocka_unit_test(test_rank_higher_lsn_ahead),
		cmocka_unit_test(test_rank_priority_breaks_ties),
		cmocka_unit_test(test_rank_name_breaks_ties),
		cmocka_unit_test(test_rank_home_region_breaks_ties),
		cmocka_unit_test(test_rank_ignores_non_candidates),
		cmocka_unit_test(test_rank_unsettled),
		cmocka_unit_test(test_sync_quorum_of_listed),
		cmocka_unit_test(test_sync_behind_listed_even_if_not_candidate),
		cmocka_unit_test(test_sync_leader_of_key),
		cmocka_unit_test(test_status_streaming_replica),
		cmocka_unit_test(test_status_leader_still_seen),
		cmocka_unit_test(test_status_not_candidates),
		cmocka_unit_test(test_status_running_primary),
		cmocka_unit_test(test_status_literal_bodies),
		cmocka_unit_test(test_status_unusable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
