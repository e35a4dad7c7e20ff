/*
 * test_decide.c — the HA decision (ha/decide.c): a table of observed states
 * covering every branch of ha_decide, and brute-force safety properties over
 * every combination of the fields of struct ha_observed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ha/decide.h"

#define NACTIONS (ACT_REPLICA_DUTIES + 1)

static const char *init_name(enum ha_init i)
{
	static const char *const n[] = {"absent", "mine", "other", "done"};
	return n[i];
}

static const char *data_name(enum ha_data d)
{
	static const char *const n[] = {"missing", "valid", "invalid"};
	return n[d];
}

static const char *pg_name(enum ha_pg p)
{
	static const char *const n[] = {"stopped", "starting", "primary", "replica"};
	return n[p];
}

/* One line naming every field, for failure messages. */
static void describe(const struct ha_observed *o, char *out, size_t len)
{
	snprintf(out, len,
		 "job=%d backoff=%d dcs=%d init=%s leader_absent=%d leader_is_me=%d "
		 "leader_known=%d leader_running=%d data=%s sysid_mismatch=%d data_standby=%d "
		 "pg=%s following=%d slot_ready=%d",
		 o->job_running, o->in_backoff, o->dcs_ok, init_name(o->init), o->leader_absent,
		 o->leader_is_me, o->leader_known, o->leader_running, data_name(o->data),
		 o->sysid_mismatch, o->data_standby, pg_name(o->pg), o->following_leader,
		 o->slot_ready);
}

/* ---- the table ------------------------------------------------------------ */

struct decide_case {
	const char *desc;
	struct ha_observed o;
	enum ha_action want;
};

/* Field groups for the cases below. */
#define UP .dcs_ok = true
#define DONE UP, .init = HA_INIT_DONE
#define MINE UP, .init = HA_INIT_MINE
#define NOLEADER .leader_absent = true
#define ME .leader_is_me = true, .leader_known = true, .leader_running = true
#define OTHER .leader_known = true, .leader_running = true
#define PRIMARY_DATA .data = HA_DATA_VALID, .data_standby = false
#define STANDBY_DATA .data = HA_DATA_VALID, .data_standby = true

static const struct decide_case cases[] = {
	/* a job runs: nothing else is looked at */
	{"job running", {.job_running = true, DONE, OTHER, .data = HA_DATA_MISSING, .slot_ready = true},
	 ACT_WAIT},
	{"job running, leader me, pg stopped", {.job_running = true, DONE, ME, PRIMARY_DATA}, ACT_WAIT},
	{"job running, invalid data", {.job_running = true, DONE, .data = HA_DATA_INVALID}, ACT_WAIT},
	{"job running, etcd down", {.job_running = true, .init = HA_INIT_MINE}, ACT_WAIT},

	/* invalid data directory: fatal whatever else is true */
	{"invalid data", {DONE, OTHER, .data = HA_DATA_INVALID}, ACT_FATAL},
	{"invalid data, etcd down", {.dcs_ok = false, .data = HA_DATA_INVALID}, ACT_FATAL},
	{"invalid data, no initialize key", {UP, .init = HA_INIT_ABSENT, .data = HA_DATA_INVALID},
	 ACT_FATAL},
	{"invalid data, bootstrapping", {MINE, ME, .data = HA_DATA_INVALID}, ACT_FATAL},

	/* etcd unreachable: PostgreSQL is left as it is */
	{"etcd down, leader primary", {.init = HA_INIT_DONE, ME, PRIMARY_DATA, .pg = HA_PG_PRIMARY},
	 ACT_WAIT},
	{"etcd down, primary without key",
	 {.init = HA_INIT_DONE, OTHER, PRIMARY_DATA, .pg = HA_PG_PRIMARY}, ACT_WAIT},
	{"etcd down, stopped primary data", {.init = HA_INIT_DONE, NOLEADER, PRIMARY_DATA}, ACT_WAIT},
	{"etcd down, replica", {.init = HA_INIT_DONE, OTHER, STANDBY_DATA, .pg = HA_PG_REPLICA},
	 ACT_WAIT},
	{"etcd down, no data", {.init = HA_INIT_ABSENT, .data = HA_DATA_MISSING}, ACT_WAIT},

	/* no initialize key */
	{"init absent, empty data", {UP, .init = HA_INIT_ABSENT, NOLEADER, .data = HA_DATA_MISSING},
	 ACT_CLAIM_INIT},
	{"init absent, primary data stopped", {UP, .init = HA_INIT_ABSENT, NOLEADER, PRIMARY_DATA},
	 ACT_CLAIM_INIT},
	{"init absent, primary data running",
	 {UP, .init = HA_INIT_ABSENT, NOLEADER, PRIMARY_DATA, .pg = HA_PG_PRIMARY}, ACT_CLAIM_INIT},
	{"init absent, standby data stopped", {UP, .init = HA_INIT_ABSENT, NOLEADER, STANDBY_DATA},
	 ACT_WAIT},
	{"init absent, standby data running",
	 {UP, .init = HA_INIT_ABSENT, NOLEADER, STANDBY_DATA, .pg = HA_PG_REPLICA}, ACT_WAIT},

	/* initialize claimed by this member: the bootstrap */
	{"bootstrap, no data", {MINE, NOLEADER, .data = HA_DATA_MISSING}, ACT_INITDB},
	{"bootstrap, no data, backoff", {MINE, NOLEADER, .data = HA_DATA_MISSING, .in_backoff = true},
	 ACT_WAIT},
	{"bootstrap, data, no leader", {MINE, NOLEADER, PRIMARY_DATA}, ACT_TAKE_LEADER},
	{"bootstrap, data, leader is other", {MINE, OTHER, PRIMARY_DATA}, ACT_WAIT},
	{"bootstrap, data, leader is other, pg primary",
	 {MINE, OTHER, PRIMARY_DATA, .pg = HA_PG_PRIMARY}, ACT_WAIT},
	{"bootstrap, leader me, pg stopped", {MINE, ME, PRIMARY_DATA, .pg = HA_PG_STOPPED},
	 ACT_START_PRIMARY},
	{"bootstrap, leader me, pg starting", {MINE, ME, PRIMARY_DATA, .pg = HA_PG_STARTING}, ACT_WAIT},
	{"bootstrap, leader me, pg replica", {MINE, ME, STANDBY_DATA, .pg = HA_PG_REPLICA},
	 ACT_PROMOTE},
	{"bootstrap, leader me, pg primary", {MINE, ME, PRIMARY_DATA, .pg = HA_PG_PRIMARY},
	 ACT_FINISH_BOOTSTRAP},

	/* another member bootstraps */
	{"init other, no data", {UP, .init = HA_INIT_OTHER, NOLEADER, .data = HA_DATA_MISSING},
	 ACT_WAIT},
	{"init other, leader other, no data",
	 {UP, .init = HA_INIT_OTHER, OTHER, .data = HA_DATA_MISSING, .slot_ready = true}, ACT_WAIT},
	{"init other, running primary", {UP, .init = HA_INIT_OTHER, OTHER, PRIMARY_DATA,
					 .pg = HA_PG_PRIMARY}, ACT_WAIT},

	/* cluster initialized: foreign data */
	{"sysid mismatch", {DONE, OTHER, PRIMARY_DATA, .sysid_mismatch = true}, ACT_FATAL},
	{"sysid mismatch, leader me running",
	 {DONE, ME, PRIMARY_DATA, .pg = HA_PG_PRIMARY, .sysid_mismatch = true}, ACT_FATAL},
	{"sysid mismatch, no leader", {DONE, NOLEADER, PRIMARY_DATA, .sysid_mismatch = true},
	 ACT_FATAL},

	/* cluster initialized, no data: clone from a running leader */
	{"no data, no leader", {DONE, NOLEADER, .data = HA_DATA_MISSING}, ACT_WAIT},
	{"no data, leader is me", {DONE, ME, .data = HA_DATA_MISSING, .slot_ready = true}, ACT_WAIT},
	{"no data, leader record unknown",
	 {DONE, .leader_running = true, .data = HA_DATA_MISSING, .slot_ready = true}, ACT_WAIT},
	{"no data, leader not running",
	 {DONE, .leader_known = true, .data = HA_DATA_MISSING, .slot_ready = true}, ACT_WAIT},
	{"no data, backoff", {DONE, OTHER, .data = HA_DATA_MISSING, .slot_ready = true,
			      .in_backoff = true}, ACT_WAIT},
	{"no data, slot not ready", {DONE, OTHER, .data = HA_DATA_MISSING}, ACT_WAIT},
	{"no data, all good", {DONE, OTHER, .data = HA_DATA_MISSING, .slot_ready = true}, ACT_CLONE},
	{"no data, sysid flag ignored",
	 {DONE, OTHER, .data = HA_DATA_MISSING, .slot_ready = true, .sysid_mismatch = true}, ACT_CLONE},

	/* this member holds the leader key */
	{"leader me, stopped", {DONE, ME, PRIMARY_DATA}, ACT_START_PRIMARY},
	{"leader me, stopped standby data", {DONE, ME, STANDBY_DATA}, ACT_START_PRIMARY},
	{"leader me, stopped, backoff", {DONE, ME, PRIMARY_DATA, .in_backoff = true}, ACT_WAIT},
	{"leader me, starting", {DONE, ME, PRIMARY_DATA, .pg = HA_PG_STARTING}, ACT_WAIT},
	{"leader me, replica", {DONE, ME, STANDBY_DATA, .pg = HA_PG_REPLICA}, ACT_PROMOTE},
	{"leader me, primary", {DONE, ME, PRIMARY_DATA, .pg = HA_PG_PRIMARY}, ACT_LEADER_DUTIES},
	{"leader me, primary, backoff",
	 {DONE, ME, PRIMARY_DATA, .pg = HA_PG_PRIMARY, .in_backoff = true}, ACT_LEADER_DUTIES},

	/* no leader */
	{"no leader, running primary", {DONE, NOLEADER, PRIMARY_DATA, .pg = HA_PG_PRIMARY},
	 ACT_TAKE_LEADER},
	{"no leader, stopped primary data", {DONE, NOLEADER, PRIMARY_DATA}, ACT_TAKE_LEADER},
	{"no leader, stopped standby data", {DONE, NOLEADER, STANDBY_DATA}, ACT_WAIT},
	{"no leader, stopped standby data, backoff",
	 {DONE, NOLEADER, STANDBY_DATA, .in_backoff = true}, ACT_WAIT},
	{"no leader, running replica", {DONE, NOLEADER, STANDBY_DATA, .pg = HA_PG_REPLICA}, ACT_WAIT},
	{"no leader, starting standby", {DONE, NOLEADER, STANDBY_DATA, .pg = HA_PG_STARTING},
	 ACT_WAIT},
	{"no leader, starting primary data", {DONE, NOLEADER, PRIMARY_DATA, .pg = HA_PG_STARTING},
	 ACT_WAIT},

	/* another member holds the leader key */
	{"leader other, primary", {DONE, OTHER, PRIMARY_DATA, .pg = HA_PG_PRIMARY}, ACT_DEMOTE},
	{"leader other, primary, leader unknown",
	 {DONE, .leader_running = true, PRIMARY_DATA, .pg = HA_PG_PRIMARY}, ACT_DEMOTE},
	{"leader other, starting", {DONE, OTHER, STANDBY_DATA, .pg = HA_PG_STARTING}, ACT_WAIT},
	{"leader other, stopped standby data", {DONE, OTHER, STANDBY_DATA}, ACT_START_STANDBY},
	{"leader other, stopped primary data", {DONE, OTHER, PRIMARY_DATA}, ACT_START_STANDBY},
	{"leader other, stopped, leader not running",
	 {DONE, .leader_known = true, STANDBY_DATA}, ACT_START_STANDBY},
	{"leader other, stopped, leader record unknown",
	 {DONE, .leader_running = true, STANDBY_DATA}, ACT_WAIT},
	{"leader other, stopped, backoff", {DONE, OTHER, STANDBY_DATA, .in_backoff = true}, ACT_WAIT},
	{"leader other, replica not following",
	 {DONE, OTHER, STANDBY_DATA, .pg = HA_PG_REPLICA, .following_leader = false}, ACT_FOLLOW},
	{"leader other, replica following",
	 {DONE, OTHER, STANDBY_DATA, .pg = HA_PG_REPLICA, .following_leader = true},
	 ACT_REPLICA_DUTIES},
	{"leader other, replica, leader record unknown",
	 {DONE, .leader_running = true, STANDBY_DATA, .pg = HA_PG_REPLICA}, ACT_REPLICA_DUTIES},
	{"leader other, replica following, backoff",
	 {DONE, OTHER, STANDBY_DATA, .pg = HA_PG_REPLICA, .following_leader = true,
	  .in_backoff = true}, ACT_REPLICA_DUTIES},
};

static void run_cases(const struct decide_case *tab, size_t n)
{
	int failures = 0;
	for (size_t i = 0; i < n; i++) {
		const struct decide_case *c = &tab[i];
		struct ha_decision d = ha_decide(&c->o);
		if (d.reason == NULL || d.reason[0] == '\0') {
			print_error("case %zu \"%s\": no reason\n", i, c->desc);
			failures++;
		}
		if (d.action != c->want) {
			char buf[512];
			describe(&c->o, buf, sizeof(buf));
			print_error("case %zu \"%s\": got %s (%s), want %s\n    %s\n", i, c->desc,
				    ha_action_name(d.action), d.reason ? d.reason : "(null)",
				    ha_action_name(c->want), buf);
			failures++;
		}
	}
	if (failures > 0)
		fail_msg("%d of %zu cases failed", failures, n);
}

static void test_decide_table(void **state)
{
	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/*
 * Every action of the enum is produced by at least one case of the table,
 * so no branch of ha_decide is left without a case.
 */
static void test_table_covers_every_action(void **state)
{
	bool seen[NACTIONS] = {false};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		seen[cases[i].want] = true;
	for (int a = 0; a < NACTIONS; a++)
		if (!seen[a])
			fail_msg("no case expects %s", ha_action_name((enum ha_action)a));
}

/*
 * During the bootstrap, a start that failed (PostgreSQL exited during startup,
 * or agent_start_pg returned an error) sets the backoff; decide_bootstrap
 * ignores it and answers START_PRIMARY again. The loop does not sleep after
 * START_PRIMARY, so a bootstrap whose first start fails retries in a tight
 * loop. decide_as_leader waits in the same situation.
 */
static void test_decide_bootstrap_start_backoff(void **state)
{
	static const struct decide_case bootstrap_backoff[] = {
		{"bootstrap, leader me, pg stopped, backoff",
		 {MINE, ME, PRIMARY_DATA, .pg = HA_PG_STOPPED, .in_backoff = true}, ACT_WAIT},
	};
	run_cases(bootstrap_backoff, 1);
}

static void test_action_names(void **state)
{
	static const char *const want[NACTIONS] = {
		[ACT_WAIT] = "wait",
		[ACT_FATAL] = "fatal",
		[ACT_CLAIM_INIT] = "claim initialize",
		[ACT_INITDB] = "initdb",
		[ACT_TAKE_LEADER] = "take leader key",
		[ACT_START_PRIMARY] = "start primary",
		[ACT_FINISH_BOOTSTRAP] = "finish bootstrap",
		[ACT_CLONE] = "clone",
		[ACT_START_STANDBY] = "start standby",
		[ACT_FOLLOW] = "follow",
		[ACT_DEMOTE] = "demote",
		[ACT_PROMOTE] = "promote",
		[ACT_LEADER_DUTIES] = "leader duties",
		[ACT_REPLICA_DUTIES] = "replica duties",
	};
	for (int a = 0; a < NACTIONS; a++) {
		const char *n = ha_action_name((enum ha_action)a);
		assert_non_null(n);
		if (strcmp(n, "?") == 0)
			fail_msg("action %d has no name", a);
		assert_string_equal(n, want[a]);
		/* names are distinct */
		for (int b = 0; b < a; b++)
			assert_string_not_equal(n, ha_action_name((enum ha_action)b));
	}
	/* one past the last action (still a representable value of the enum) */
	assert_string_equal(ha_action_name((enum ha_action)NACTIONS), "?");
}

/* ---- brute force over every observed state -------------------------------- */

#define NBOOLS 11

/* The idx-th of the 2^11 * 4 * 3 * 4 combinations. */
static void nth_state(unsigned long idx, struct ha_observed *o)
{
	memset(o, 0, sizeof(*o));
	unsigned long b = idx & ((1UL << NBOOLS) - 1);
	unsigned long rest = idx >> NBOOLS;
	o->job_running = b & 1;
	o->in_backoff = (b >> 1) & 1;
	o->dcs_ok = (b >> 2) & 1;
	o->leader_absent = (b >> 3) & 1;
	o->leader_is_me = (b >> 4) & 1;
	o->leader_known = (b >> 5) & 1;
	o->leader_running = (b >> 6) & 1;
	o->sysid_mismatch = (b >> 7) & 1;
	o->data_standby = (b >> 8) & 1;
	o->following_leader = (b >> 9) & 1;
	o->slot_ready = (b >> 10) & 1;
	o->init = (enum ha_init)(rest % 4);
	rest /= 4;
	o->data = (enum ha_data)(rest % 3);
	rest /= 3;
	o->pg = (enum ha_pg)(rest % 4);
}

#define NSTATES ((1UL << NBOOLS) * 4 * 3 * 4)

/*
 * What build_observed() (ha/agent.c) can actually produce: a leader key names
 * one member; a running PostgreSQL implies valid data whose standby flag is
 * its recovery state; the sysid is compared only for valid data of an
 * initialized cluster; following and slot checks only where they are made.
 */
static bool observable(const struct ha_observed *o)
{
	if (o->leader_absent && (o->leader_is_me || o->leader_known || o->leader_running))
		return false;
	if (o->pg != HA_PG_STOPPED && o->data != HA_DATA_VALID)
		return false;
	if (o->pg == HA_PG_PRIMARY && o->data_standby)
		return false;
	if (o->pg == HA_PG_REPLICA && !o->data_standby)
		return false;
	if (o->sysid_mismatch && (o->init != HA_INIT_DONE || o->data != HA_DATA_VALID))
		return false;
	if (o->following_leader && (o->pg != HA_PG_REPLICA || o->leader_absent))
		return false;
	if (o->slot_ready && (o->data != HA_DATA_MISSING || !o->leader_known || o->leader_is_me ||
			      !o->dcs_ok))
		return false;
	return true;
}

static bool starts_or_promotes(enum ha_action a)
{
	return a == ACT_START_PRIMARY || a == ACT_PROMOTE;
}

/*
 * Safety property 1: a member whose data is a standby's, with no leader key,
 * in an initialized cluster, never takes the key, starts as primary or
 * promotes.
 */
static bool violates_standby_rule(const struct ha_observed *o, enum ha_action a)
{
	return o->data_standby && o->leader_absent && o->init == HA_INIT_DONE &&
	       (a == ACT_TAKE_LEADER || starts_or_promotes(a));
}

static void check_standby_rule(bool only_observable)
{
	unsigned long checked = 0, violations = 0;
	unsigned long per_action[NACTIONS] = {0};
	for (unsigned long i = 0; i < NSTATES; i++) {
		struct ha_observed o;
		nth_state(i, &o);
		if (only_observable && !observable(&o))
			continue;
		checked++;
		struct ha_decision d = ha_decide(&o);
		if (violates_standby_rule(&o, d.action)) {
			if (per_action[d.action]++ == 0) { /* first example of each action */
				char buf[512];
				describe(&o, buf, sizeof(buf));
				print_error("%s (%s) for\n    %s\n", ha_action_name(d.action), d.reason,
					    buf);
			}
			violations++;
		}
	}
	if (only_observable)
		assert_true(checked > 1000); /* the filter leaves a real search space */
	else
		assert_int_equal(checked, NSTATES);
	if (violations > 0)
		fail_msg("%lu of %lu states: a standby without the leader key takes it (%lu), "
			 "starts as primary (%lu) or promotes (%lu)", violations, checked,
			 per_action[ACT_TAKE_LEADER], per_action[ACT_START_PRIMARY],
			 per_action[ACT_PROMOTE]);
}

/* Property 1 over EVERY combination of the fields, consistent or not. */
static void test_safety_standby_never_promotes_all_states(void **state)
{
	check_standby_rule(false);
}

/* Property 1 over the combinations the agent's observer can produce. */
static void test_safety_standby_never_promotes_observable(void **state)
{
	check_standby_rule(true);
}

/*
 * Safety property 2, over every combination: PostgreSQL is started as primary
 * or promoted only by the holder of the leader key.
 */
static void test_safety_primary_only_with_key(void **state)
{
	unsigned long violations = 0;
	for (unsigned long i = 0; i < NSTATES; i++) {
		struct ha_observed o;
		nth_state(i, &o);
		struct ha_decision d = ha_decide(&o);
		if (starts_or_promotes(d.action) && !o.leader_is_me) {
			if (violations < 8) {
				char buf[512];
				describe(&o, buf, sizeof(buf));
				print_error("%s without the key for\n    %s\n", ha_action_name(d.action),
					    buf);
			}
			violations++;
		}
	}
	if (violations > 0)
		fail_msg("%lu states start or promote a primary without the leader key", violations);
}

/* The rules that hold in every state, whatever the other fields say. */
static void test_invariants_all_states(void **state)
{
	unsigned long per_action[NACTIONS] = {0};
	for (unsigned long i = 0; i < NSTATES; i++) {
		struct ha_observed o;
		nth_state(i, &o);
		struct ha_decision d = ha_decide(&o);
		char buf[512];
		describe(&o, buf, sizeof(buf));
		if ((int)d.action < 0 || d.action >= NACTIONS)
			fail_msg("action %d out of range for %s", (int)d.action, buf);
		per_action[d.action]++;
		if (d.reason == NULL || d.reason[0] == '\0')
			fail_msg("%s without a reason for %s", ha_action_name(d.action), buf);
		if (strcmp(ha_action_name(d.action), "?") == 0)
			fail_msg("unnamed action %d for %s", (int)d.action, buf);
		/* a running job: wait */
		if (o.job_running && d.action != ACT_WAIT)
			fail_msg("%s while a job runs: %s", ha_action_name(d.action), buf);
		/* invalid data: fatal, even without etcd */
		if (!o.job_running && o.data == HA_DATA_INVALID && d.action != ACT_FATAL)
			fail_msg("%s on invalid data: %s", ha_action_name(d.action), buf);
		/* no etcd: touch nothing */
		if (!o.dcs_ok && o.data != HA_DATA_INVALID && d.action != ACT_WAIT)
			fail_msg("%s without etcd: %s", ha_action_name(d.action), buf);
		/* FATAL only for invalid or foreign data */
		if (d.action == ACT_FATAL && o.data != HA_DATA_INVALID &&
		    !(o.sysid_mismatch && o.data == HA_DATA_VALID && o.init == HA_INIT_DONE))
			fail_msg("fatal on usable data: %s", buf);
		/* each action only where it belongs */
		if (d.action == ACT_CLAIM_INIT && o.init != HA_INIT_ABSENT)
			fail_msg("claim initialize when it is taken: %s", buf);
		if ((d.action == ACT_INITDB || d.action == ACT_FINISH_BOOTSTRAP) &&
		    o.init != HA_INIT_MINE)
			fail_msg("%s outside our bootstrap: %s", ha_action_name(d.action), buf);
		if ((d.action == ACT_INITDB || d.action == ACT_CLONE) && o.data != HA_DATA_MISSING)
			fail_msg("%s over existing data: %s", ha_action_name(d.action), buf);
		if (d.action == ACT_CLONE && (o.leader_is_me || !o.leader_running || !o.slot_ready ||
					      o.in_backoff))
			fail_msg("clone without a running leader and slot: %s", buf);
		if (d.action == ACT_DEMOTE && (o.leader_is_me || o.pg != HA_PG_PRIMARY))
			fail_msg("demote of %s: %s", o.leader_is_me ? "the leader" : "a non-primary",
				 buf);
		if (d.action == ACT_TAKE_LEADER && !o.leader_absent)
			fail_msg("take a key someone holds: %s", buf);
		if ((d.action == ACT_FOLLOW || d.action == ACT_REPLICA_DUTIES) &&
		    (o.pg != HA_PG_REPLICA || o.leader_is_me))
			fail_msg("%s: %s", ha_action_name(d.action), buf);
		if (d.action == ACT_LEADER_DUTIES && (!o.leader_is_me || o.pg != HA_PG_PRIMARY))
			fail_msg("leader duties: %s", buf);
		/*
		 * Backoff is honoured by every start and job once the cluster exists
		 * (the bootstrap has its own test above). Only for observable states:
		 * the leader_absent && leader_known branch of ha_decide is dead code.
		 */
		if ((d.action == ACT_START_PRIMARY || d.action == ACT_START_STANDBY ||
		     d.action == ACT_INITDB || d.action == ACT_CLONE) &&
		    o.in_backoff && o.init == HA_INIT_DONE && observable(&o))
			fail_msg("%s in backoff: %s", ha_action_name(d.action), buf);
	}
	/* every action is reachable */
	for (int a = 0; a < NACTIONS; a++)
		if (per_action[a] == 0)
			fail_msg("%s is never decided", ha_action_name((enum ha_action)a));
}

/* The same observed state always gives the same decision (a pure function). */
static void test_pure(void **state)
{
	for (unsigned long i = 0; i < NSTATES; i += 97) {
		struct ha_observed o, copy;
		nth_state(i, &o);
		copy = o;
		struct ha_decision a = ha_decide(&o);
		struct ha_decision b = ha_decide(&o);
		assert_int_equal(a.action, b.action);
		assert_ptr_equal(a.reason, b.reason);
		assert_memory_equal(&o, &copy, sizeof(o)); /* input untouched */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_table_covers_every_action),
		cmocka_unit_test(test_decide_bootstrap_start_backoff),
		cmocka_unit_test(test_action_names),
		cmocka_unit_test(test_safety_primary_only_with_key),
		cmocka_unit_test(test_safety_standby_never_promotes_observable),
		cmocka_unit_test(test_safety_standby_never_promotes_all_states),
		cmocka_unit_test(test_invariants_all_states),
		cmocka_unit_test(test_pure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
