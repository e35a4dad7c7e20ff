/*
 * test_sync.c — synchronous replication (ha/sync.c): the safety condition, the
 * planner over EVERY safe start state and goal of a four-member universe (each
 * step keeps the condition, the goal is reached, an unsettled ssn never lets a
 * non-empty set be published), and synchronous_standby_names text both ways.
 * The sync key codec and the modes: tests/unit/cluster/test_sync_key.c.
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

#include "ha/sync.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct sync_set set_of(int num, const char *names)
{
	struct sync_set s;
	sync_set_clear(&s);
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", names);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		sync_set_add(&s, t);
	s.num = num;
	return s;
}

/* ---- the condition ---------------------------------------------------------- */

/* Every ack set of the ssn meets every Q-subset of P: checked by enumeration. */
static bool safe_by_enumeration(const struct sync_set *ssn, const struct sync_set *pub)
{
	if (pub->n == 0)
		return true;
	if (pub->num < 1 || (size_t)pub->num > pub->n)
		return false;
	/* universe = ssn names ∪ pub names, at most 8 */
	const char *u[2 * SYNC_MAX];
	size_t nu = 0;
	for (size_t i = 0; i < ssn->n; i++)
		u[nu++] = ssn->names[i];
	for (size_t i = 0; i < pub->n; i++)
		if (!sync_set_has(ssn, pub->names[i]))
			u[nu++] = pub->names[i];
	for (unsigned acks = 0; acks < (1u << nu); acks++) {
		int na = 0;
		bool inside = true;
		for (size_t i = 0; i < nu; i++)
			if (acks & (1u << i)) {
				na++;
				inside &= sync_set_has(ssn, u[i]);
			}
		if (!inside || na < ssn->num)
			continue;   /* not an ack set */
		for (unsigned asked = 0; asked < (1u << nu); asked++) {
			int nq = 0;
			bool in_pub = true;
			for (size_t i = 0; i < nu; i++)
				if (asked & (1u << i)) {
					nq++;
					in_pub &= sync_set_has(pub, u[i]);
				}
			if (!in_pub || nq < pub->num)
				continue;
			if ((acks & asked) == 0)
				return false;
		}
	}
	/* k = 0 with a non-empty P: the empty ack set meets nothing */
	return true;
}

static const char *const U[] = {"a", "b", "c", "d"};
#define NU 4

static struct sync_set subset_of(unsigned mask, int num)
{
	struct sync_set s;
	sync_set_clear(&s);
	for (int i = 0; i < NU; i++)
		if (mask & (1u << i))
			sync_set_add(&s, U[i]);
	s.num = num;
	return s;
}

/* Every ssn over U: async, ANY k (S) for 1 <= k <= |S|, and strict's placeholder. */
static size_t all_ssn(struct sync_set *out)
{
	size_t n = 0;
	out[n++] = subset_of(0, 0);
	for (unsigned m = 1; m < (1u << NU); m++)
		for (int k = 1; k <= __builtin_popcount(m); k++)
			out[n++] = subset_of(m, k);
	sync_set_clear(&out[n]);
	sync_set_add(&out[n], SYNC_NONE_NAME);
	out[n++].num = 1;
	return n;
}

/* Every published set: empty, or (Q, P) for 1 <= Q <= |P|. */
static size_t all_pub(struct sync_set *out)
{
	size_t n = 0;
	out[n++] = subset_of(0, 0);
	for (unsigned m = 1; m < (1u << NU); m++)
		for (int q = 1; q <= __builtin_popcount(m); q++)
			out[n++] = subset_of(m, q);
	return n;
}

static void test_safe_matches_enumeration(void **state)
{
	static struct sync_set ssn[64], pub[64];
	size_t ns = all_ssn(ssn), np = all_pub(pub);
	size_t safe = 0;
	for (size_t i = 0; i < ns; i++)
		for (size_t j = 0; j < np; j++) {
			bool a = sync_safe(&ssn[i], &pub[j]);
			bool b = safe_by_enumeration(&ssn[i], &pub[j]);
			if (a != b) {
				char x[256], y[256];
				sync_set_describe(&ssn[i], x, sizeof(x));
				sync_set_describe(&pub[j], y, sizeof(y));
				fail_msg("ssn %s, pub %s: sync_safe %d, enumeration %d", x, y, a, b);
			}
			safe += a;
		}
	assert_true(safe > 100);
	/* the textbook cases */
	struct sync_set s = set_of(1, "b"), p = set_of(1, "b");
	assert_true(sync_safe(&s, &p));
	p = set_of(1, "c");
	assert_false(sync_safe(&s, &p));         /* acked by b, c promoted */
	s = set_of(1, "b,c");
	p = set_of(1, "b,c");
	assert_false(sync_safe(&s, &p));         /* ANY 1: asking one of two is not enough */
	p = set_of(2, "b,c");
	assert_true(sync_safe(&s, &p));
	s = set_of(0, "");
	assert_false(sync_safe(&s, &p));         /* asynchronous with a published set */
}

/* ---- the planner, every start and goal ------------------------------------- */

struct sim_stats {
	unsigned long runs, steps, max_steps;
};

static void fail_sim(const char *what, const struct sync_set *s0, const struct sync_set *p0,
		     const struct sync_set *goal, const struct sync_set *s, const struct sync_set *p)
{
	char a[200], b[200], c[200], d[200], e[200];
	sync_set_describe(s0, a, sizeof(a));
	sync_set_describe(p0, b, sizeof(b));
	sync_set_describe(goal, c, sizeof(c));
	sync_set_describe(s, d, sizeof(d));
	sync_set_describe(p, e, sizeof(e));
	fail_msg("%s: start ssn %s pub %s, goal %s; now ssn %s pub %s", what, a, b, c, d, e);
}

static void simulate(const struct sync_set *s0, const struct sync_set *p0, const struct sync_set *goal,
		     struct sim_stats *st)
{
	struct sync_set ssn = *s0, pub = *p0, want_pub;
	sync_goal_pub(goal, &want_pub);
	st->runs++;

	/* Unsettled: no non-empty publication, every ssn change safe. */
	for (int i = 0; i < 8; i++) {
		struct sync_plan_in in = {&ssn, true, false, &pub, true, goal};
		struct sync_step s = sync_plan(&in);
		assert_non_null(s.why);
		if (s.kind == SYNC_STEP_NONE)
			break;
		if (s.kind == SYNC_STEP_PUBLISH) {
			if (s.set.n != 0)
				fail_sim("published a non-empty set while unsettled", s0, p0, goal, &ssn, &s.set);
			pub = s.set;
		} else {
			ssn = s.set;
		}
		if (!sync_safe(&ssn, &pub))
			fail_sim("unsafe step while unsettled", s0, p0, goal, &ssn, &pub);
	}

	/* Settled: safe at every step, and the goal within 6 steps. */
	ssn = *s0;
	pub = *p0;
	for (unsigned long i = 0;; i++) {
		struct sync_plan_in in = {&ssn, true, true, &pub, true, goal};
		struct sync_step s = sync_plan(&in);
		if (s.kind == SYNC_STEP_NONE) {
			if (!sync_set_equal(&ssn, goal) || !sync_set_equal(&pub, &want_pub))
				fail_sim("stopped short of the goal", s0, p0, goal, &ssn, &pub);
			if (i > st->max_steps)
				st->max_steps = i;
			return;
		}
		if (i >= 6)
			fail_sim("no goal after 6 steps", s0, p0, goal, &ssn, &pub);
		if (s.kind == SYNC_STEP_PUBLISH)
			pub = s.set;
		else
			ssn = s.set;
		st->steps++;
		if (!sync_safe(&ssn, &pub))
			fail_sim("unsafe step", s0, p0, goal, &ssn, &pub);
	}
}

static void test_plan_every_state_and_goal(void **state)
{
	static struct sync_set ssn[64], pub[64];
	size_t ns = all_ssn(ssn), np = all_pub(pub);
	struct sim_stats st = {0};
	const enum sync_mode modes[] = {SYNC_OFF, SYNC_ON, SYNC_STRICT, SYNC_QUORUM};
	for (size_t i = 0; i < ns; i++)
		for (size_t j = 0; j < np; j++) {
			if (!sync_safe(&ssn[i], &pub[j]))
				continue;   /* the planner only ever starts from where it left a safe pair */
			for (size_t m = 0; m < NELEM(modes); m++)
				for (int count = 1; count <= 3; count++)
					for (unsigned cm = 0; cm < (1u << NU); cm++) {
						const char *cands[NU];
						size_t nc = 0;
						for (int u = 0; u < NU; u++)
							if (cm & (1u << u))
								cands[nc++] = U[u];
						struct sync_set goal;
						sync_goal(modes[m], count, cands, nc, &ssn[i], &goal);
						simulate(&ssn[i], &pub[j], &goal, &st);
					}
		}
	print_message("planner: %lu runs, %lu steps, at most %lu steps to a goal\n", st.runs, st.steps,
		      st.max_steps);
	assert_true(st.runs > 10000);
}

static void test_plan_not_mine_or_unknown(void **state)
{
	struct sync_set ssn = set_of(1, "b"), pub = set_of(1, "b"), goal = set_of(1, "c");
	struct sync_plan_in in = {&ssn, true, true, &pub, false, &goal};
	struct sync_step s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_PUBLISH);
	assert_int_equal(s.set.n, 0);
	/* an ssn we cannot read: empty the published set, then replace it */
	in.pub_mine = true;
	in.ssn_known = false;
	s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_PUBLISH);
	assert_int_equal(s.set.n, 0);
	struct sync_set none = set_of(0, "");
	in.pub = &none;
	s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_SSN);
	assert_true(sync_set_equal(&s.set, &goal));
}

/* The familiar order for one synchronous standby. */
static void test_plan_one_standby_order(void **state)
{
	struct sync_set ssn = set_of(0, ""), pub = set_of(0, ""), goal = set_of(1, "b");
	struct sync_plan_in in = {&ssn, true, true, &pub, true, &goal};
	struct sync_step s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_SSN);     /* add: ssn first */
	ssn = s.set;
	s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_PUBLISH); /* then publish */
	assert_true(sync_set_equal(&s.set, &goal));
	pub = s.set;
	assert_int_equal(sync_plan(&in).kind, SYNC_STEP_NONE);
	/* b goes, c comes: publish without b first, then the ssn, then publish c */
	goal = set_of(1, "c");
	s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_PUBLISH);
	assert_int_equal(s.set.n, 0);
	pub = s.set;
	s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_SSN);
	ssn = s.set;
	in.settled = false;
	assert_int_equal(sync_plan(&in).kind, SYNC_STEP_NONE);   /* c has not confirmed yet */
	in.settled = true;
	s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_PUBLISH);
	assert_string_equal(s.set.names[0], "c");
	/* nobody left (on): publish empty, then asynchronous */
	pub = s.set;
	goal = set_of(0, "");
	s = sync_plan(&in);
	assert_int_equal(s.kind, SYNC_STEP_PUBLISH);
	assert_int_equal(s.set.n, 0);
}

static void test_goal(void **state)
{
	const char *cands[] = {"c", "b", "d"};
	struct sync_set cur = set_of(1, "b"), g;
	sync_goal(SYNC_ON, 1, cands, 3, &cur, &g);
	assert_true(sync_set_equal(&g, &cur));     /* keeps b */
	sync_goal(SYNC_ON, 1, cands, 3, NULL, &g);
	assert_string_equal(g.names[0], "c");      /* the best one */
	sync_goal(SYNC_ON, 1, cands, 0, &cur, &g);
	assert_int_equal(g.n, 0);                  /* asynchronous */
	sync_goal(SYNC_STRICT, 1, cands, 0, &cur, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.names[0], SYNC_NONE_NAME);
	sync_goal(SYNC_QUORUM, 2, cands, 3, &cur, &g);
	assert_int_equal(g.num, 2);
	assert_int_equal(g.n, 3);
	sync_goal(SYNC_QUORUM, 5, cands, 3, &cur, &g);
	assert_int_equal(g.num, 3);
	sync_goal(SYNC_OFF, 1, cands, 3, &cur, &g);
	assert_int_equal(g.n, 0);
	struct sync_set p;
	sync_goal(SYNC_QUORUM, 1, cands, 3, &cur, &g);
	sync_goal_pub(&g, &p);
	assert_int_equal(p.num, 3);                /* ANY 1 of 3: ask all three */
	g = set_of(1, SYNC_NONE_NAME);
	sync_goal_pub(&g, &p);
	assert_int_equal(p.n, 0);
}

/* ---- synchronous_standby_names --------------------------------------------- */

static void test_ssn_format_parse(void **state)
{
	struct sync_set s = set_of(1, "node-2"), r;
	char *t = sync_ssn_format(&s, false);
	assert_string_equal(t, "\"node-2\"");
	assert_int_equal(sync_ssn_parse(t, &r), 0);
	assert_true(sync_set_equal(&s, &r));
	free(t);
	s = set_of(2, "n.3,n2,n4");
	t = sync_ssn_format(&s, true);
	assert_string_equal(t, "ANY 2 (\"n.3\",\"n2\",\"n4\")");
	assert_int_equal(sync_ssn_parse(t, &r), 0);
	assert_true(sync_set_equal(&s, &r));
	free(t);
	s = set_of(1, "n2");
	t = sync_ssn_format(&s, true);
	assert_string_equal(t, "ANY 1 (\"n2\")");
	free(t);
	s = set_of(0, "");
	t = sync_ssn_format(&s, false);
	assert_string_equal(t, "");
	free(t);
	s = set_of(1, SYNC_NONE_NAME);
	t = sync_ssn_format(&s, false);
	assert_string_equal(t, "\"pgha:none\"");
	assert_int_equal(sync_ssn_parse(t, &r), 0);
	assert_true(sync_set_equal(&s, &r));
	free(t);

	static const struct {
		const char *text;
		int num;
		const char *names;
	} ok[] = {
		{"", 0, ""}, {"   ", 0, ""}, {"a", 1, "a"}, {"a, b", 1, "a,b"},
		{"FIRST 2 (a, \"b c\")", 2, "a,b c"}, {"first 1(a)", 1, "a"}, {"2 (a,b,c)", 2, "a,b,c"},
		{"any 1 ( \"x\"\"y\" )", 1, "x\"y"}, {"ANY 3 (a,b)", 3, "a,b"}, {"s1", 1, "s1"},
	};
	for (size_t i = 0; i < NELEM(ok); i++) {
		if (sync_ssn_parse(ok[i].text, &r) != 0)
			fail_msg("\"%s\" not parsed", ok[i].text);
		struct sync_set want = set_of(ok[i].num, ok[i].names);
		if (!sync_set_equal(&r, &want))
			fail_msg("\"%s\" parsed wrong", ok[i].text);
	}
	static const char *const bad[] = {"*", "ANY (a)", "ANY 0 (a)", "ANY 1 (a", "ANY 1 ()",
					  "a,", "\"a", "ANY 1 (a) b", "a b", "FIRST a"};
	for (size_t i = 0; i < NELEM(bad); i++)
		if (sync_ssn_parse(bad[i], &r) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe_matches_enumeration),
		cmocka_unit_test(test_plan_every_state_and_goal),
		cmocka_unit_test(test_plan_not_mine_or_unknown),
		cmocka_unit_test(test_plan_one_standby_order),
		cmocka_unit_test(test_goal),
		cmocka_unit_test(test_ssn_format_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
