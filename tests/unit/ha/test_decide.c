/*
 * test_decide.c — the HA decision (ha/decide.c): a table of observed states
 * with one or more rows for every return statement of ha_decide, the action
 * names, and brute-force safety properties over EVERY combination of the
 * fields of struct ha_observed (22 bools and 8 enums; only the states where
 * leader_suspect goes with a leader that is not this member are swept with it,
 * and during an in-place restore four enums no restore path reads are held).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ha/decide.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NACTIONS (ACT_LAST + 1)

/* ---- the fields of struct ha_observed ----------------------------------- */

struct field {
	const char *name;
	size_t off;
	size_t size;
	size_t align;
};

#define BOOL_FIELD(f) {#f, offsetof(struct ha_observed, f), sizeof(bool), _Alignof(bool)}
#define ENUM_FIELD(f, t) {#f, offsetof(struct ha_observed, f), sizeof(t), _Alignof(t)}

/* Every bool of struct ha_observed, in declaration order. */
static const struct field bool_fields[] = {
	BOOL_FIELD(job_running),    BOOL_FIELD(in_backoff),        BOOL_FIELD(dcs_ok),
	BOOL_FIELD(paused),         BOOL_FIELD(failsafe_ok),       BOOL_FIELD(failsafe_hold),
	BOOL_FIELD(lease_expiring),
	BOOL_FIELD(leader_absent),  BOOL_FIELD(leader_is_me),      BOOL_FIELD(leader_known),
	BOOL_FIELD(leader_running), BOOL_FIELD(leader_suspect),    BOOL_FIELD(sysid_mismatch),
	BOOL_FIELD(data_standby),
	BOOL_FIELD(crashed),        BOOL_FIELD(restart_exhausted), BOOL_FIELD(following_leader),
	BOOL_FIELD(rewind_failed),  BOOL_FIELD(slot_ready),
	BOOL_FIELD(eligible),       BOOL_FIELD(sync_denied),       BOOL_FIELD(handover_wait),
};
#define NBOOLS NELEM(bool_fields)

/* Every enum of struct ha_observed. */
static const struct field enum_fields[] = {
	ENUM_FIELD(init, enum ha_init),          ENUM_FIELD(failover_to, enum ha_target),
	ENUM_FIELD(data, enum ha_data),          ENUM_FIELD(pg, enum ha_pg),
	ENUM_FIELD(election, enum ha_election),  ENUM_FIELD(request, enum ha_request),
	ENUM_FIELD(history, enum ha_history),    ENUM_FIELD(restore, enum ha_restore),
};

/* Number of values of each enum (the last value + 1). */
#define NINIT (HA_INIT_DONE + 1)
#define NTARGET (HA_TARGET_OTHER + 1)
#define NDATA (HA_DATA_INVALID + 1)
#define NPG (HA_PG_REPLICA + 1)
#define NELECT (HA_ELECT_UNSETTLED + 1)
#define NREQ (HA_REQ_REINIT + 1)
#define NHIST (HA_HIST_DIVERGED + 1)
#define NRST (HA_RST_FAILED + 1)

static const char *const init_names[NINIT] = {"absent", "mine", "other", "done"};
static const char *const target_names[NTARGET] = {"none", "me", "other"};
static const char *const data_names[NDATA] = {"missing", "valid", "invalid"};
static const char *const pg_names[NPG] = {"stopped", "starting", "primary", "replica"};
static const char *const elect_names[NELECT] = {"not_asked", "best", "behind", "unsettled"};
static const char *const req_names[NREQ] = {"none", "restart", "reinit"};
static const char *const hist_names[NHIST] = {"on", "unknown", "diverged"};
static const char *const rst_names[NRST] = {"none", "other", "stopping", "ready", "restored", "failed"};

static bool get_bool(const struct ha_observed *o, size_t i)
{
	bool v;
	memcpy(&v, (const char *)o + bool_fields[i].off, sizeof(v));
	return v;
}

/* Every field, by name, for failure messages. */
static void describe(const struct ha_observed *o, char *out, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < NBOOLS && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s=%d ", bool_fields[i].name,
				      get_bool(o, i));
	if (n < len)
		snprintf(out + n, len - n, "init=%s failover_to=%s data=%s pg=%s election=%s request=%s history=%s "
			 "restore=%s", init_names[o->init], target_names[o->failover_to], data_names[o->data],
			 pg_names[o->pg], elect_names[o->election], req_names[o->request], hist_names[o->history],
			 rst_names[o->restore]);
}

/*
 * The brute force below is only "every combination" if the two tables above
 * name every field of the struct. Lay the listed fields out as a C compiler
 * would and compare with the real offsets and size: a field added to struct
 * ha_observed and not to the tables moves an offset or changes the size.
 * The one blind spot: a bool that lands in existing padding (today bytes
 * 7 before init and 26-27 before pg, on x86-64).
 */
static int cmp_field_off(const void *a, const void *b)
{
	const struct field *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void test_field_tables_cover_struct(void **state)
{
	struct field all[NELEM(bool_fields) + NELEM(enum_fields)];
	memcpy(all, bool_fields, sizeof(bool_fields));
	memcpy(all + NBOOLS, enum_fields, sizeof(enum_fields));
	qsort(all, NELEM(all), sizeof(all[0]), cmp_field_off);
	size_t off = 0, max_align = 1;
	for (size_t i = 0; i < NELEM(all); i++) {
		off = (off + all[i].align - 1) / all[i].align * all[i].align;
		if (all[i].off != off)
			fail_msg("field %s at offset %zu, expected %zu: a field of struct ha_observed "
				 "is missing from the tables of this test", all[i].name, all[i].off, off);
		off += all[i].size;
		if (all[i].align > max_align)
			max_align = all[i].align;
	}
	off = (off + max_align - 1) / max_align * max_align;
	if (off != sizeof(struct ha_observed))
		fail_msg("struct ha_observed is %zu bytes, the listed fields make %zu: "
			 "a field is missing from the tables of this test",
			 sizeof(struct ha_observed), off);
}

/* ---- the table ------------------------------------------------------------ */

struct decide_case {
	const char *desc;
	struct ha_observed o;
	enum ha_action want;
};

/* Field groups for the rows below (no row sets a field twice: -Woverride-init). */
#define UP .dcs_ok = true
#define DONE UP, .init = HA_INIT_DONE
#define MINE UP, .init = HA_INIT_MINE
#define VALID .data = HA_DATA_VALID
#define MISSING .data = HA_DATA_MISSING
#define NOLEADER .leader_absent = true
#define ME .leader_is_me = true, .leader_known = true, .leader_running = true
#define OTHER .leader_known = true, .leader_running = true
/* A replica in an election that would win it: eligible and the best. */
#define WINNER NOLEADER, .pg = HA_PG_REPLICA, .data_standby = true, .eligible = true

static const struct decide_case cases[] = {
	/* a job runs: nothing else is looked at */
	{"job running, invalid data", {.job_running = true, DONE, .data = HA_DATA_INVALID}, ACT_WAIT},
	{"job running, etcd down, primary without failsafe",
	 {.job_running = true, .init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY}, ACT_WAIT},
	{"job running, would clone", {.job_running = true, DONE, OTHER, MISSING, .slot_ready = true},
	 ACT_WAIT},

	/* invalid data directory: fatal, with or without etcd */
	{"invalid data", {DONE, OTHER, .data = HA_DATA_INVALID}, ACT_FATAL},
	{"invalid data, etcd down", {.init = HA_INIT_DONE, .data = HA_DATA_INVALID}, ACT_FATAL},
	{"invalid data, etcd down, pg primary",
	 {.init = HA_INIT_DONE, ME, .data = HA_DATA_INVALID, .pg = HA_PG_PRIMARY}, ACT_FATAL},
	{"invalid data, no initialize key", {UP, .init = HA_INIT_ABSENT, .data = HA_DATA_INVALID},
	 ACT_FATAL},

	/* etcd unreachable */
	{"etcd down, replica", {.init = HA_INIT_DONE, OTHER, VALID, .pg = HA_PG_REPLICA}, ACT_WAIT},
	{"etcd down, stopped, holds key", {.init = HA_INIT_DONE, ME, VALID}, ACT_WAIT},
	{"etcd down, starting", {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_STARTING}, ACT_WAIT},
	{"etcd down, no data, no init key", {.init = HA_INIT_ABSENT, MISSING}, ACT_WAIT},
	{"etcd down, paused primary",
	 {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY, .paused = true}, ACT_WAIT},
	{"etcd down, primary, failsafe confirmed",
	 {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY, .failsafe_ok = true}, ACT_WAIT},
	{"etcd down, primary holding key, no failsafe yet: keep asking",
	 {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY}, ACT_WAIT},
	{"etcd down, primary holding key, no failsafe, lease running out",
	 {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY, .lease_expiring = true}, ACT_DEMOTE},
	{"etcd down, primary, failsafe confirmed, lease running out",
	 {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY, .failsafe_ok = true, .lease_expiring = true},
	 ACT_WAIT},
	{"etcd down, paused primary, lease running out",
	 {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY, .paused = true, .lease_expiring = true},
	 ACT_WAIT},
	{"etcd down, primary, no leader seen, no failsafe, lease running out",
	 {.init = HA_INIT_ABSENT, NOLEADER, VALID, .pg = HA_PG_PRIMARY, .lease_expiring = true}, ACT_DEMOTE},

	/* no initialize key */
	{"init absent, no data", {UP, .init = HA_INIT_ABSENT, NOLEADER, MISSING}, ACT_CLAIM_INIT},
	{"init absent, no data, stale standby flag",
	 {UP, .init = HA_INIT_ABSENT, NOLEADER, MISSING, .data_standby = true}, ACT_CLAIM_INIT},
	{"init absent, primary data stopped", {UP, .init = HA_INIT_ABSENT, NOLEADER, VALID},
	 ACT_CLAIM_INIT},
	{"init absent, primary data running",
	 {UP, .init = HA_INIT_ABSENT, NOLEADER, VALID, .pg = HA_PG_PRIMARY}, ACT_CLAIM_INIT},
	{"init absent, standby data stopped",
	 {UP, .init = HA_INIT_ABSENT, NOLEADER, VALID, .data_standby = true}, ACT_WAIT},
	{"init absent, running replica", {UP, .init = HA_INIT_ABSENT, NOLEADER, VALID,
					  .pg = HA_PG_REPLICA}, ACT_WAIT},

	/* initialize claimed by this member: the bootstrap */
	{"bootstrap, no data", {MINE, NOLEADER, MISSING}, ACT_INITDB},
	{"bootstrap, no data, backoff", {MINE, NOLEADER, MISSING, .in_backoff = true}, ACT_WAIT},
	{"bootstrap, data, no leader", {MINE, NOLEADER, VALID}, ACT_TAKE_LEADER},
	{"bootstrap, data, leader is other", {MINE, OTHER, VALID, .pg = HA_PG_PRIMARY}, ACT_WAIT},
	{"bootstrap, leader me, stopped", {MINE, ME, VALID}, ACT_START_PRIMARY},
	{"bootstrap, leader me, stopped, backoff", {MINE, ME, VALID, .in_backoff = true}, ACT_WAIT},
	{"bootstrap, leader me, starting", {MINE, ME, VALID, .pg = HA_PG_STARTING}, ACT_WAIT},
	{"bootstrap, leader me, replica",
	 {MINE, ME, VALID, .data_standby = true, .pg = HA_PG_REPLICA}, ACT_PROMOTE},
	{"bootstrap, leader me, primary", {MINE, ME, VALID, .pg = HA_PG_PRIMARY},
	 ACT_FINISH_BOOTSTRAP},

	/* another member bootstraps */
	{"init other, no data", {UP, .init = HA_INIT_OTHER, OTHER, MISSING, .slot_ready = true},
	 ACT_WAIT},
	{"init other, running primary", {UP, .init = HA_INIT_OTHER, NOLEADER, VALID,
					 .pg = HA_PG_PRIMARY}, ACT_WAIT},

	/* initialized cluster, data of another cluster */
	{"sysid mismatch", {DONE, OTHER, VALID, .sysid_mismatch = true}, ACT_FATAL},
	{"sysid mismatch, leader me running",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .sysid_mismatch = true}, ACT_FATAL},
	{"sysid mismatch, paused", {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .sysid_mismatch = true,
				    .paused = true}, ACT_FATAL},

	/* maintenance mode */
	{"paused, leader me, primary", {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .paused = true},
	 ACT_LEADER_DUTIES},
	{"paused, no leader, primary", {DONE, NOLEADER, VALID, .pg = HA_PG_PRIMARY, .paused = true},
	 ACT_TAKE_LEADER},
	{"paused, no leader, primary not in the sync key",
	 {DONE, NOLEADER, VALID, .pg = HA_PG_PRIMARY, .paused = true, .sync_denied = true}, ACT_WAIT},
	{"paused, leader other, primary", {DONE, OTHER, VALID, .pg = HA_PG_PRIMARY, .paused = true},
	 ACT_WAIT},
	{"paused, leader me, stopped", {DONE, ME, VALID, .paused = true}, ACT_WAIT},
	{"paused, leader me, crashed", {DONE, ME, VALID, .crashed = true, .paused = true}, ACT_WAIT},
	{"paused, leader me, replica",
	 {DONE, ME, VALID, .data_standby = true, .pg = HA_PG_REPLICA, .paused = true}, ACT_WAIT},
	{"switchover, leader still running: stop first", {DONE, ME, VALID, .pg = HA_PG_PRIMARY,
	 .failover_to = HA_TARGET_OTHER, .handover_wait = true}, ACT_DEMOTE},
	{"switchover, stopped, candidate not caught up: keep the key", {DONE, ME, VALID,
	 .failover_to = HA_TARGET_OTHER, .handover_wait = true}, ACT_WAIT},
	{"switchover, stopped, candidate has everything: give the key", {DONE, ME, VALID,
	 .failover_to = HA_TARGET_OTHER}, ACT_RELEASE_LEADER},
	{"paused, leader me, failover to other",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .failover_to = HA_TARGET_OTHER, .paused = true},
	 ACT_LEADER_DUTIES},
	{"paused, election winner", {DONE, WINNER, VALID, .election = HA_ELECT_BEST, .paused = true},
	 ACT_WAIT},
	{"paused, follower primary", {DONE, OTHER, VALID, .pg = HA_PG_PRIMARY, .paused = true},
	 ACT_WAIT},
	{"paused, diverged replica", {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .data_standby = true,
				      .history = HA_HIST_DIVERGED, .paused = true}, ACT_WAIT},
	{"paused, no data, could clone",
	 {DONE, OTHER, MISSING, .slot_ready = true, .paused = true}, ACT_WAIT},

	/* initialized cluster, no data: clone from a running leader */
	{"clone, no leader", {DONE, NOLEADER, MISSING, .slot_ready = true}, ACT_WAIT},
	{"clone, leader is me", {DONE, ME, MISSING, .slot_ready = true}, ACT_WAIT},
	{"clone, leader record unknown",
	 {DONE, .leader_running = true, MISSING, .slot_ready = true}, ACT_WAIT},
	{"clone, leader not running",
	 {DONE, .leader_known = true, MISSING, .slot_ready = true}, ACT_WAIT},
	{"clone, backoff", {DONE, OTHER, MISSING, .slot_ready = true, .in_backoff = true}, ACT_WAIT},
	{"clone, slot not ready", {DONE, OTHER, MISSING}, ACT_WAIT},
	{"clone", {DONE, OTHER, MISSING, .slot_ready = true}, ACT_CLONE},
	{"clone, sysid flag ignored without data",
	 {DONE, OTHER, MISSING, .slot_ready = true, .sysid_mismatch = true}, ACT_CLONE},

	/* no leader: election */
	{"election, running primary", {DONE, NOLEADER, VALID, .pg = HA_PG_PRIMARY},
	 ACT_TAKE_LEADER},
	{"election, running primary not in the sync key",
	 {DONE, NOLEADER, VALID, .pg = HA_PG_PRIMARY, .sync_denied = true}, ACT_DEMOTE},
	{"election, running primary, failover to other",
	 {DONE, NOLEADER, VALID, .pg = HA_PG_PRIMARY, .failover_to = HA_TARGET_OTHER},
	 ACT_TAKE_LEADER},
	{"election, starting", {DONE, NOLEADER, VALID, .pg = HA_PG_STARTING,
				.election = HA_ELECT_BEST, .eligible = true}, ACT_WAIT},
	{"election, stopped", {DONE, NOLEADER, VALID, .data_standby = true}, ACT_START_STANDBY},
	{"election, stopped primary data", {DONE, NOLEADER, VALID}, ACT_START_STANDBY},
	{"election, stopped, backoff", {DONE, NOLEADER, VALID, .in_backoff = true}, ACT_WAIT},
	{"election, replica, failover to other",
	 {DONE, WINNER, VALID, .election = HA_ELECT_BEST, .failover_to = HA_TARGET_OTHER}, ACT_WAIT},
	{"election, replica, failsafe hold",
	 {DONE, WINNER, VALID, .election = HA_ELECT_BEST, .failsafe_hold = true}, ACT_WAIT},
	{"election, replica, failover to me, failsafe hold",
	 {DONE, WINNER, VALID, .failover_to = HA_TARGET_ME, .failsafe_hold = true}, ACT_WAIT},
	{"election, replica, failover to me",
	 {DONE, WINNER, VALID, .failover_to = HA_TARGET_ME}, ACT_TAKE_LEADER},
	{"election, replica, failover to me, not in the sync key",
	 {DONE, WINNER, VALID, .failover_to = HA_TARGET_ME, .sync_denied = true}, ACT_WAIT},
	{"election, replica, best, not in the sync key",
	 {DONE, WINNER, VALID, .election = HA_ELECT_BEST, .sync_denied = true}, ACT_WAIT},
	{"election, replica, failover to other, not in the sync key",
	 {DONE, WINNER, VALID, .failover_to = HA_TARGET_OTHER, .sync_denied = true}, ACT_WAIT},
	{"election, replica, failover to me, not eligible, behind",
	 {DONE, NOLEADER, .pg = HA_PG_REPLICA, VALID, .failover_to = HA_TARGET_ME,
	  .election = HA_ELECT_BEHIND}, ACT_TAKE_LEADER},
	{"election, replica, not eligible",
	 {DONE, NOLEADER, .pg = HA_PG_REPLICA, VALID, .election = HA_ELECT_BEST}, ACT_WAIT},
	{"election, replica, not asked yet", {DONE, WINNER, VALID}, ACT_ELECT},
	{"election, replica, unsettled", {DONE, WINNER, VALID, .election = HA_ELECT_UNSETTLED},
	 ACT_WAIT},
	{"election, replica, behind", {DONE, WINNER, VALID, .election = HA_ELECT_BEHIND}, ACT_WAIT},
	{"election, replica, best", {DONE, WINNER, VALID, .election = HA_ELECT_BEST},
	 ACT_TAKE_LEADER},

	/* this member holds the leader key */
	{"leader, failover to other, primary",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .failover_to = HA_TARGET_OTHER}, ACT_DEMOTE},
	{"leader, failover to other, starting",
	 {DONE, ME, VALID, .pg = HA_PG_STARTING, .failover_to = HA_TARGET_OTHER}, ACT_DEMOTE},
	{"leader, failover to other, stopped",
	 {DONE, ME, VALID, .failover_to = HA_TARGET_OTHER}, ACT_RELEASE_LEADER},
	{"leader, failover to other, replica",
	 {DONE, ME, VALID, .pg = HA_PG_REPLICA, .failover_to = HA_TARGET_OTHER}, ACT_RELEASE_LEADER},
	{"leader, stopped, not in the sync key", {DONE, ME, VALID, .crashed = true, .sync_denied = true},
	 ACT_RELEASE_LEADER},
	{"leader, replica, not in the sync key",
	 {DONE, ME, VALID, .data_standby = true, .pg = HA_PG_REPLICA, .sync_denied = true},
	 ACT_RELEASE_LEADER},
	{"leader, starting, not in the sync key",
	 {DONE, ME, VALID, .pg = HA_PG_STARTING, .sync_denied = true}, ACT_WAIT},
	{"leader, primary, not in the sync key: keeps leading (it rewrites the key)",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .sync_denied = true}, ACT_LEADER_DUTIES},
	{"leader, stopped, restart exhausted",
	 {DONE, ME, VALID, .crashed = true, .restart_exhausted = true, .in_backoff = true},
	 ACT_RELEASE_LEADER},
	{"leader, stopped, backoff", {DONE, ME, VALID, .crashed = true, .in_backoff = true},
	 ACT_WAIT},
	{"leader, crashed", {DONE, ME, VALID, .crashed = true}, ACT_START_PRIMARY},
	{"leader, stopped", {DONE, ME, VALID}, ACT_START_PRIMARY},
	{"leader, stopped standby data", {DONE, ME, VALID, .data_standby = true},
	 ACT_START_PRIMARY},
	{"leader, starting", {DONE, ME, VALID, .pg = HA_PG_STARTING}, ACT_WAIT},
	{"leader, replica", {DONE, ME, VALID, .data_standby = true, .pg = HA_PG_REPLICA},
	 ACT_PROMOTE},
	{"leader, primary", {DONE, ME, VALID, .pg = HA_PG_PRIMARY}, ACT_LEADER_DUTIES},
	{"leader, primary, failover to me", {DONE, ME, VALID, .pg = HA_PG_PRIMARY,
					     .failover_to = HA_TARGET_ME}, ACT_LEADER_DUTIES},

	/* another member holds the leader key */
	{"follower, primary", {DONE, OTHER, VALID, .pg = HA_PG_PRIMARY}, ACT_DEMOTE},
	{"follower, primary, leader record unknown",
	 {DONE, .leader_running = true, VALID, .pg = HA_PG_PRIMARY}, ACT_DEMOTE},
	{"follower, starting", {DONE, OTHER, VALID, .pg = HA_PG_STARTING}, ACT_WAIT},
	{"follower, stopped, leader record unknown",
	 {DONE, .leader_running = true, VALID, .history = HA_HIST_DIVERGED, .rewind_failed = true}, ACT_WAIT},
	{"follower, stopped, diverged, rewind failed",
	 {DONE, OTHER, VALID, .history = HA_HIST_DIVERGED, .rewind_failed = true}, ACT_RECLONE},
	{"follower, stopped, diverged", {DONE, OTHER, VALID, .history = HA_HIST_DIVERGED}, ACT_REWIND},
	{"follower, stopped, diverged, backoff: no rewind storm",
	 {DONE, OTHER, VALID, .history = HA_HIST_DIVERGED, .in_backoff = true}, ACT_WAIT},
	{"follower, stopped, diverged, rewind failed, backoff",
	 {DONE, OTHER, VALID, .history = HA_HIST_DIVERGED, .rewind_failed = true, .in_backoff = true}, ACT_WAIT},
	{"follower, stopped, diverged, leader not running: pg_rewind needs it",
	 {DONE, .leader_known = true, VALID, .history = HA_HIST_DIVERGED}, ACT_WAIT},
	{"follower, stopped, backoff", {DONE, OTHER, VALID, .in_backoff = true, .rewind_failed = true},
	 ACT_WAIT},
	/* an old leader's data is checked against the new leader before it may serve reads */
	{"follower, stopped, history not checked yet",
	 {DONE, OTHER, VALID, .history = HA_HIST_UNKNOWN}, ACT_WAIT},
	{"follower, stopped standby data, history not checked yet",
	 {DONE, OTHER, VALID, .data_standby = true, .history = HA_HIST_UNKNOWN}, ACT_WAIT},
	{"follower, stopped, history unknown, leader not running",
	 {DONE, .leader_known = true, VALID, .history = HA_HIST_UNKNOWN}, ACT_WAIT},
	{"follower, stopped, history unknown, reinit requested",
	 {DONE, OTHER, VALID, .history = HA_HIST_UNKNOWN, .request = HA_REQ_REINIT}, ACT_REINIT},
	{"no leader, stopped, history unknown: starts for the election",
	 {DONE, .leader_absent = true, VALID, .history = HA_HIST_UNKNOWN}, ACT_START_STANDBY},
	{"follower, stopped", {DONE, OTHER, VALID, .data_standby = true}, ACT_START_STANDBY},
	{"follower, stopped primary data", {DONE, OTHER, VALID}, ACT_START_STANDBY},
	{"follower, stopped, leader not running", {DONE, .leader_known = true, VALID},
	 ACT_START_STANDBY},
	{"follower, replica, diverged",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .history = HA_HIST_DIVERGED, .following_leader = true},
	 ACT_DEMOTE},
	{"follower, replica, not following", {DONE, OTHER, VALID, .pg = HA_PG_REPLICA},
	 ACT_FOLLOW},
	{"follower, replica, following",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .following_leader = true}, ACT_REPLICA_DUTIES},
	{"follower, replica, leader record unknown",
	 {DONE, .leader_running = true, VALID, .pg = HA_PG_REPLICA}, ACT_REPLICA_DUTIES},

	/* operator requests (ctl restart, ctl reinit) */
	{"leader, primary, restart requested",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .request = HA_REQ_RESTART}, ACT_RESTART},
	{"leader, primary, re-clone requested: never the leader's data",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .request = HA_REQ_REINIT}, ACT_LEADER_DUTIES},
	{"leader, primary, failover to other beats a restart",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .failover_to = HA_TARGET_OTHER, .request = HA_REQ_RESTART},
	 ACT_DEMOTE},
	{"follower, replica, restart requested",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .following_leader = true, .request = HA_REQ_RESTART},
	 ACT_RESTART},
	{"follower, replica, re-clone requested",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .following_leader = true, .request = HA_REQ_REINIT},
	 ACT_REINIT},
	{"follower, replica, re-clone requested, leader not running",
	 {DONE, .leader_known = true, VALID, .pg = HA_PG_REPLICA, .following_leader = true,
	  .request = HA_REQ_REINIT}, ACT_REPLICA_DUTIES},
	{"follower, stopped, re-clone requested",
	 {DONE, OTHER, VALID, .history = HA_HIST_DIVERGED, .request = HA_REQ_REINIT}, ACT_REINIT},
	{"follower, stopped, re-clone requested, backoff",
	 {DONE, OTHER, VALID, .in_backoff = true, .request = HA_REQ_REINIT}, ACT_WAIT},
	{"follower, stopped, restart requested: starting is the restart",
	 {DONE, OTHER, VALID, .request = HA_REQ_RESTART}, ACT_START_STANDBY},
	{"follower, primary, the key is only suspect: not stopped for it",
	 {DONE, OTHER, VALID, .pg = HA_PG_PRIMARY, .leader_suspect = true}, ACT_WAIT},
	{"follower, replica, the key is only suspect: follows it",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .following_leader = true, .leader_suspect = true},
	 ACT_REPLICA_DUTIES},
	{"paused, replica, restart requested",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .paused = true, .request = HA_REQ_RESTART}, ACT_WAIT},
	{"paused, replica, re-clone requested",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .paused = true, .request = HA_REQ_REINIT}, ACT_WAIT},
	{"election, replica, restart requested: the election first",
	 {DONE, WINNER, VALID, .election = HA_ELECT_BEST, .request = HA_REQ_RESTART}, ACT_TAKE_LEADER},
	{"etcd down, replica, restart requested",
	 {.init = HA_INIT_DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .request = HA_REQ_RESTART}, ACT_WAIT},
	{"no data, re-clone requested: the clone is the re-clone",
	 {DONE, OTHER, MISSING, .slot_ready = true, .request = HA_REQ_REINIT}, ACT_CLONE},

	/* in-place restore (ctl restore --in-place) */
	{"restore asked, leader's primary: it stops",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .restore = HA_RST_STOPPING}, ACT_RESTORE_STOP},
	{"restore asked, a standby: it stops",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .following_leader = true, .restore = HA_RST_OTHER},
	 ACT_RESTORE_STOP},
	{"restore asked, PostgreSQL starting",
	 {DONE, OTHER, VALID, .pg = HA_PG_STARTING, .restore = HA_RST_OTHER}, ACT_WAIT},
	{"restore asked, a stopped standby stays stopped (no rewind, no start)",
	 {DONE, OTHER, VALID, .history = HA_HIST_DIVERGED, .restore = HA_RST_OTHER}, ACT_WAIT},
	{"restore asked, no data: no clone",
	 {DONE, OTHER, MISSING, .slot_ready = true, .restore = HA_RST_OTHER}, ACT_WAIT},
	{"restore failed: everybody stays stopped",
	 {DONE, ME, VALID, .restore = HA_RST_FAILED}, ACT_WAIT},
	{"restorer stopped, others still running",
	 {DONE, ME, VALID, .restore = HA_RST_STOPPING}, ACT_WAIT},
	{"restorer stopped, every member stopped: restore",
	 {DONE, ME, VALID, .restore = HA_RST_READY}, ACT_RESTORE_RUN},
	{"restorer ready, backoff",
	 {DONE, ME, VALID, .in_backoff = true, .restore = HA_RST_READY}, ACT_WAIT},
	{"restorer ready, the key lapsed: it takes it back (no election)",
	 {DONE, NOLEADER, VALID, .restore = HA_RST_READY}, ACT_TAKE_LEADER},
	{"restorer ready, another member holds the key",
	 {DONE, OTHER, VALID, .restore = HA_RST_READY}, ACT_WAIT},
	{"restorer ready, the sync key does not list it",
	 {DONE, NOLEADER, VALID, .sync_denied = true, .restore = HA_RST_READY}, ACT_WAIT},
	{"restored: start the restored primary",
	 {DONE, ME, VALID, .restore = HA_RST_RESTORED}, ACT_START_PRIMARY},
	{"restored, start failed: backoff",
	 {DONE, ME, VALID, .in_backoff = true, .restore = HA_RST_RESTORED}, ACT_WAIT},
	{"restored, starting",
	 {DONE, ME, VALID, .pg = HA_PG_STARTING, .restore = HA_RST_RESTORED}, ACT_WAIT},
	{"restored, primary runs: done",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .restore = HA_RST_RESTORED}, ACT_RESTORE_FINISH},
	{"restored, runs as a standby: stop it",
	 {DONE, ME, VALID, .pg = HA_PG_REPLICA, .restore = HA_RST_RESTORED}, ACT_RESTORE_STOP},
	{"restored, the key lapsed: take it",
	 {DONE, NOLEADER, VALID, .restore = HA_RST_RESTORED}, ACT_TAKE_LEADER},
	{"restored, the sync key does not list it",
	 {DONE, ME, VALID, .sync_denied = true, .restore = HA_RST_RESTORED}, ACT_WAIT},
	{"restored, another member holds the key",
	 {DONE, OTHER, VALID, .restore = HA_RST_RESTORED}, ACT_WAIT},
	{"restored, a primary under another member's key: stop",
	 {DONE, OTHER, VALID, .pg = HA_PG_PRIMARY, .restore = HA_RST_RESTORED}, ACT_RESTORE_STOP},
	{"restore asked, paused: maintenance mode wins",
	 {DONE, OTHER, VALID, .pg = HA_PG_REPLICA, .paused = true, .restore = HA_RST_OTHER}, ACT_WAIT},
};

static int run_case(size_t i, const struct decide_case *c)
{
	int failures = 0;
	struct ha_decision d = ha_decide(&c->o);
	char buf[1024];
	describe(&c->o, buf, sizeof(buf));
	if (d.reason == NULL || d.reason[0] == '\0') {
		print_error("case %zu \"%s\": %s without a reason\n    %s\n", i, c->desc,
			    ha_action_name(d.action), buf);
		failures++;
	}
	if (d.action != c->want) {
		print_error("case %zu \"%s\": got %s (%s), want %s\n    %s\n", i, c->desc,
			    ha_action_name(d.action), d.reason ? d.reason : "(null)",
			    ha_action_name(c->want), buf);
		failures++;
	}
	return failures;
}

static void test_decide_table(void **state)
{
	int failures = 0;
	for (size_t i = 0; i < NELEM(cases); i++)
		failures += run_case(i, &cases[i]);
	if (failures > 0)
		fail_msg("%d failures in %zu cases", failures, NELEM(cases));
}

/* Every action of the enum is expected by at least one row of the table. */
static void test_table_covers_every_action(void **state)
{
	bool seen[NACTIONS] = {false};
	for (size_t i = 0; i < NELEM(cases); i++)
		seen[cases[i].want] = true;
	for (int a = 0; a < NACTIONS; a++)
		if (!seen[a])
			fail_msg("no case expects %s", ha_action_name((enum ha_action)a));
}

/* ---- the standby cluster's rewrite (ha_decide_standby_cluster) ---------- */

static const struct decide_case standby_cases[] = {
	{"bootstrap: clone the primary cluster instead of initdb", {MINE, NOLEADER, MISSING}, ACT_CLONE},
	{"bootstrap: the clone failed, backoff", {MINE, NOLEADER, MISSING, .in_backoff = true}, ACT_WAIT},
	{"bootstrap: cloned, take the key", {MINE, NOLEADER, VALID, .data_standby = true}, ACT_TAKE_LEADER},
	{"bootstrap: start as a standby, not a primary", {MINE, ME, VALID, .data_standby = true}, ACT_START_STANDBY},
	{"bootstrap: runs, not yet streaming from the primary cluster",
	 {MINE, ME, VALID, .pg = HA_PG_REPLICA}, ACT_FOLLOW},
	{"bootstrap: streams from the primary cluster: record its system identifier",
	 {MINE, ME, VALID, .pg = HA_PG_REPLICA, .following_leader = true}, ACT_FINISH_BOOTSTRAP},
	{"bootstrap: a primary runs: stop it", {MINE, ME, VALID, .pg = HA_PG_PRIMARY}, ACT_DEMOTE},
	{"standby leader, stopped: start as a standby", {DONE, ME, VALID}, ACT_START_STANDBY},
	{"standby leader, stopped, not yet checked against the primary cluster: wait",
	 {DONE, ME, VALID, .history = HA_HIST_UNKNOWN}, ACT_WAIT},
	{"standby leader, stopped, diverged from the primary cluster: rewind",
	 {DONE, ME, VALID, .history = HA_HIST_DIVERGED}, ACT_REWIND},
	{"standby leader, diverged and the rewind failed: re-clone",
	 {DONE, ME, VALID, .history = HA_HIST_DIVERGED, .rewind_failed = true}, ACT_RECLONE},
	{"standby leader, running, diverged from the primary cluster: stop to rewind",
	 {DONE, ME, VALID, .pg = HA_PG_REPLICA, .following_leader = true, .history = HA_HIST_DIVERGED}, ACT_DEMOTE},
	{"standby leader, crashed: start as a standby again", {DONE, ME, VALID, .crashed = true}, ACT_START_STANDBY},
	{"standby leader, not following the primary cluster", {DONE, ME, VALID, .pg = HA_PG_REPLICA}, ACT_FOLLOW},
	{"standby leader, following the primary cluster: its duties",
	 {DONE, ME, VALID, .pg = HA_PG_REPLICA, .following_leader = true}, ACT_LEADER_DUTIES},
	{"standby leader, a primary runs under the key: stop it", {DONE, ME, VALID, .pg = HA_PG_PRIMARY}, ACT_DEMOTE},
	{"a primary without the key: stop it (not take the key)", {DONE, NOLEADER, VALID, .pg = HA_PG_PRIMARY},
	 ACT_DEMOTE},
	{"a primary without etcd: stop it", {.init = HA_INIT_DONE, ME, VALID, .pg = HA_PG_PRIMARY, .failsafe_ok = true},
	 ACT_DEMOTE},
	{"a primary in maintenance mode: left alone", {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .paused = true},
	 ACT_LEADER_DUTIES},
	{"a primary during a restore: stop it",
	 {DONE, ME, VALID, .pg = HA_PG_PRIMARY, .restore = HA_RST_RESTORED}, ACT_RESTORE_STOP},
	{"restored data: no primary start", {DONE, ME, VALID, .restore = HA_RST_RESTORED}, ACT_WAIT},
	{"election as usual", {DONE, WINNER, VALID, .election = HA_ELECT_BEST}, ACT_TAKE_LEADER},
	{"a member cascades from the standby leader as usual", {DONE, OTHER, VALID, .pg = HA_PG_REPLICA},
	 ACT_FOLLOW},
	{"a member clones the standby leader as usual", {DONE, OTHER, MISSING, .slot_ready = true}, ACT_CLONE},
	{"a requested restart of the standby leader", {DONE, ME, VALID, .pg = HA_PG_REPLICA, .request = HA_REQ_RESTART,
	  .following_leader = true}, ACT_LEADER_DUTIES},
};

static void test_standby_cluster_table(void **state)
{
	int failures = 0;
	for (size_t i = 0; i < NELEM(standby_cases); i++) {
		const struct decide_case *c = &standby_cases[i];
		struct ha_decision d = ha_decide_standby_cluster(&c->o, ha_decide(&c->o));
		if (d.action != c->want || d.reason == NULL || d.reason[0] == '\0') {
			char buf[1024];
			describe(&c->o, buf, sizeof(buf));
			print_error("standby case %zu \"%s\": got %s (%s), want %s\n    %s\n", i, c->desc,
				    ha_action_name(d.action), d.reason ? d.reason : "(null)", ha_action_name(c->want), buf);
			failures++;
		}
	}
	if (failures > 0)
		fail_msg("%d failures in %zu standby cluster cases", failures, NELEM(standby_cases));
}

/* ---- action names --------------------------------------------------------- */

static void test_action_names(void **state)
{
	for (int a = ACT_WAIT; a <= ACT_LAST; a++) {
		const char *n = ha_action_name((enum ha_action)a);
		if (n == NULL || n[0] == '\0')
			fail_msg("action %d has no name", a);
		if (strcmp(n, "?") == 0)
			fail_msg("action %d is named \"?\"", a);
		for (int b = ACT_WAIT; b < a; b++)
			if (strcmp(n, ha_action_name((enum ha_action)b)) == 0)
				fail_msg("actions %d and %d are both named \"%s\"", b, a, n);
	}
	assert_string_equal(ha_action_name((enum ha_action)(ACT_LAST + 1)), "?");
	assert_string_equal(ha_action_name((enum ha_action)1000), "?");
	assert_string_equal(ha_action_name((enum ha_action)-1), "?");
}

/* ---- brute force over every observed state -------------------------------- */

/*
 * With no in-place restore (restore = none), all 2^20 * 4 * 3 * 3 * 4 * 4 * 3 * 3 =
 * 5,435,817,984 combinations of the other fields, consistent or not, are
 * enumerated: nothing is fixed. leader_suspect is only ever set with a leader
 * that is not this member (!leader_absent && !leader_is_me, agent.c): with it
 * only those states are swept (a quarter more, 6,794,772,480 in all, not
 * twice as many). The outer loop sets the bools from the bits of a counter,
 * the inner loops the enums; the properties are checked in one pass.
 *
 * With a restore (the 5 other values), every bool and init, data and pg are
 * swept (another 629,145,600 states); failover_to, election, request and
 * history stay at their first value: no path of ha_decide that a restore
 * reaches reads them, which test_restore_ignores_the_rest checks on a
 * sample of those states with every value of the four.
 */
#define NENUMS ((unsigned long)NINIT * NTARGET * NDATA * NPG * NELECT * NREQ * NHIST)
#define NRSTENUMS ((unsigned long)NINIT * NDATA * NPG * (NRST - 1))
#define NSTATES (((1UL << (NBOOLS - 1)) + (1UL << (NBOOLS - 3))) * (NENUMS + NRSTENUMS))

enum property {
	P_PRIMARY_ONLY_WITH_KEY,   /* a */
	P_TAKE_ONLY_FREE_KEY,      /* b */
	P_WITHOUT_ETCD,            /* c */
	P_PAUSED,                  /* d */
	P_REPLICA_ELECTION,        /* e */
	P_JOB_WAITS,               /* f */
	P_SYNC_ONLY_LISTED,        /* g */
	P_RESTART,                 /* h */
	P_REINIT,                  /* i */
	P_HANDOVER,                /* j */
	P_HISTORY,                 /* k */
	P_SUSPECT_KEY,             /* l */
	P_RESTORE,                 /* m */
	P_STANDBY_CLUSTER,         /* n */
	P_REASON,                  /* every decision has a reason and a named action */
	NPROPS
};

static const char *const property_text[NPROPS] = {
	[P_PRIMARY_ONLY_WITH_KEY] =
		"(a) START_PRIMARY/PROMOTE only when leader_is_me && !leader_absent && dcs_ok",
	[P_TAKE_ONLY_FREE_KEY] = "(b) TAKE_LEADER only when dcs_ok && leader_absent",
	[P_WITHOUT_ETCD] = "(c) without etcd only WAIT, DEMOTE (a primary, not paused, no failsafe) "
			   "and FATAL (invalid data)",
	[P_PAUSED] = "(d) paused: never DEMOTE, PROMOTE, START_*, REWIND, RECLONE, "
		     "RELEASE_LEADER or CLONE",
	[P_REPLICA_ELECTION] = "(e) a replica does not take the key when held back, failover "
			       "to another member, or not eligible/not best",
	[P_JOB_WAITS] = "(f) a running job: WAIT",
	[P_SYNC_ONLY_LISTED] = "(g) synchronous mode: a member the sync key does not list never takes the "
			       "key, is never promoted or started as primary",
	[P_RESTART] = "(h) RESTART only on request, with etcd, not paused: a replica following a leader "
		      "that is not this member, or the key holder's own primary",
	[P_REINIT] = "(i) REINIT only on request, with etcd, not paused, initialized, this cluster's "
		     "valid data of a stopped or replica PostgreSQL, while another member leads and runs",
	[P_HANDOVER] = "(j) planned switchover: the key is never handed over before the candidate "
		       "confirmed every WAL record of the clean stop",
	[P_HISTORY] = "(k) START_STANDBY under another member's key only when this member's WAL is known "
		      "to be on its history",
	[P_SUSPECT_KEY] = "(l) with etcd, a running primary is never stopped (DEMOTE) for a leader key that is "
			  "only suspect",
	[P_RESTORE] = "(m) in-place restore: RESTORE_RUN only by the restorer holding the key, every member "
		      "stopped, no job, not paused; RESTORE_FINISH only by the restored primary holding the key; "
		      "RESTORE_STOP only during a restore with a running PostgreSQL; while a restore is active "
		      "nothing starts (but the restored primary), promotes, clones, rewinds, follows or elects",
	[P_STANDBY_CLUSTER] = "(n) standby cluster (ha_decide_standby_cluster): never INITDB, START_PRIMARY or "
			      "PROMOTE; a running primary is stopped (DEMOTE, RESTART, RESTORE_STOP) unless paused, a "
			      "job runs or the data is refused (FATAL); without etcd only WAIT, FATAL and DEMOTE of a "
			      "primary; and properties (a), (b), (d)-(k), (m) hold for the rewritten decision too",
	[P_REASON] = "every decision has a non-empty reason and a named action",
};

static bool in_range(enum ha_action a)
{
	return (int)a >= ACT_WAIT && a <= ACT_LAST;
}

/* The properties a state and its decision violate, as a bit mask. */
static unsigned violations(const struct ha_observed *o, struct ha_decision d)
{
	unsigned v = 0;
	enum ha_action a = d.action;

	if ((a == ACT_START_PRIMARY || a == ACT_PROMOTE) &&
	    !(o->leader_is_me && !o->leader_absent && o->dcs_ok))
		v |= 1u << P_PRIMARY_ONLY_WITH_KEY;

	if (a == ACT_TAKE_LEADER && !(o->dcs_ok && o->leader_absent))
		v |= 1u << P_TAKE_ONLY_FREE_KEY;

	if (!o->dcs_ok) {
		bool ok = a == ACT_WAIT ||
			  (a == ACT_FATAL && o->data == HA_DATA_INVALID) ||
			  (a == ACT_DEMOTE && o->pg == HA_PG_PRIMARY && !o->paused && !o->failsafe_ok &&
			   o->lease_expiring);
		if (!ok)
			v |= 1u << P_WITHOUT_ETCD;
	}

	if (o->paused && o->dcs_ok && o->init == HA_INIT_DONE && o->data == HA_DATA_VALID &&
	    !o->sysid_mismatch && !o->job_running) {
		switch (a) {
		case ACT_DEMOTE:
		case ACT_PROMOTE:
		case ACT_START_PRIMARY:
		case ACT_START_STANDBY:
		case ACT_REWIND:
		case ACT_RECLONE:
		case ACT_RELEASE_LEADER:
		case ACT_CLONE:
		case ACT_RESTART:
		case ACT_REINIT:
		case ACT_RESTORE_STOP:
		case ACT_RESTORE_RUN:
		case ACT_RESTORE_FINISH:
			v |= 1u << P_PAUSED;
			break;
		default:
			break;
		}
	}

	if (a == ACT_TAKE_LEADER && o->leader_absent && o->init == HA_INIT_DONE && o->dcs_ok &&
	    o->data == HA_DATA_VALID && !o->paused && o->pg == HA_PG_REPLICA &&
	    (o->failsafe_hold || o->failover_to == HA_TARGET_OTHER ||
	     (o->failover_to == HA_TARGET_NONE && (!o->eligible || o->election != HA_ELECT_BEST))))
		v |= 1u << P_REPLICA_ELECTION;

	if (o->job_running && a != ACT_WAIT)
		v |= 1u << P_JOB_WAITS;

	if (o->sync_denied && o->init == HA_INIT_DONE &&
	    (a == ACT_TAKE_LEADER || a == ACT_PROMOTE || a == ACT_START_PRIMARY))
		v |= 1u << P_SYNC_ONLY_LISTED;

	if (a == ACT_RESTART &&
	    !(o->request == HA_REQ_RESTART && o->dcs_ok && !o->paused && o->init == HA_INIT_DONE &&
	      ((o->pg == HA_PG_REPLICA && !o->leader_is_me && !o->leader_absent) ||
	       (o->pg == HA_PG_PRIMARY && o->leader_is_me && !o->leader_absent))))
		v |= 1u << P_RESTART;

	if (a == ACT_REINIT &&
	    !(o->request == HA_REQ_REINIT && o->dcs_ok && !o->paused && o->init == HA_INIT_DONE &&
	      o->data == HA_DATA_VALID && !o->sysid_mismatch && !o->leader_is_me && !o->leader_absent &&
	      o->leader_known && o->leader_running && (o->pg == HA_PG_STOPPED || o->pg == HA_PG_REPLICA)))
		v |= 1u << P_REINIT;

	if (a == ACT_RELEASE_LEADER && o->handover_wait && o->failover_to == HA_TARGET_OTHER)
		v |= 1u << P_HANDOVER;

	if (a == ACT_START_STANDBY && !o->leader_absent && !o->leader_is_me && o->history != HA_HIST_ON)
		v |= 1u << P_HISTORY;

	if (a == ACT_DEMOTE && o->leader_suspect && o->dcs_ok && o->pg == HA_PG_PRIMARY)
		v |= 1u << P_SUSPECT_KEY;

	if (a == ACT_RESTORE_RUN &&
	    !(o->restore == HA_RST_READY && o->leader_is_me && !o->leader_absent && o->dcs_ok && !o->paused &&
	      o->pg == HA_PG_STOPPED && !o->job_running && o->init == HA_INIT_DONE))
		v |= 1u << P_RESTORE;
	if (a == ACT_RESTORE_FINISH &&
	    !(o->restore == HA_RST_RESTORED && o->leader_is_me && !o->leader_absent && o->dcs_ok &&
	      o->pg == HA_PG_PRIMARY))
		v |= 1u << P_RESTORE;
	if (a == ACT_RESTORE_STOP && !(o->restore != HA_RST_NONE && o->dcs_ok && o->pg != HA_PG_STOPPED))
		v |= 1u << P_RESTORE;
	if (o->restore != HA_RST_NONE && o->dcs_ok && o->init == HA_INIT_DONE &&
	    (a == ACT_START_STANDBY || a == ACT_CLONE || a == ACT_REWIND || a == ACT_RECLONE || a == ACT_ELECT ||
	     a == ACT_FOLLOW || a == ACT_INITDB || a == ACT_REINIT || a == ACT_RESTART ||
	     ((a == ACT_START_PRIMARY || a == ACT_PROMOTE) && o->restore != HA_RST_RESTORED)))
		v |= 1u << P_RESTORE;

	if (d.reason == NULL || d.reason[0] == '\0' || !in_range(a))
		v |= 1u << P_REASON;
	return v;
}

/*
 * (n): the standby cluster's rewrite of d, given base = violations(o, d). (c)
 * and (l) are its own rules there: a running primary is stopped whether etcd
 * answers or the key is suspect.
 */
static unsigned standby_violations(const struct ha_observed *o, struct ha_decision d, unsigned base)
{
	enum ha_action a = d.action;
	base &= ~((1u << P_WITHOUT_ETCD) | (1u << P_SUSPECT_KEY));
	bool bad = a == ACT_INITDB || a == ACT_START_PRIMARY || a == ACT_PROMOTE;
	if (o->pg == HA_PG_PRIMARY && !o->paused && !o->job_running &&
	    !(a == ACT_DEMOTE || a == ACT_RESTART || a == ACT_RESTORE_STOP || a == ACT_FATAL))
		bad = true;
	if (!o->dcs_ok && !(a == ACT_WAIT || (a == ACT_FATAL && o->data == HA_DATA_INVALID) ||
			    (a == ACT_DEMOTE && o->pg == HA_PG_PRIMARY)))
		bad = true;
	return base | (bad ? 1u << P_STANDBY_CLUSTER : 0);
}

/* The distinct (action, reason) pairs any state produces: one per return statement. */
struct outcome {
	enum ha_action action;
	const char *reason;
	unsigned long count;
	struct ha_observed example;
};

#define MAX_OUTCOMES 128

struct sweep {
	unsigned long states;
	unsigned long per_action[NACTIONS];
	unsigned long violated[NPROPS];
	struct outcome outcomes[MAX_OUTCOMES];
	size_t noutcomes;
	bool overflow;         /* more outcomes than MAX_OUTCOMES (checked by the caller) */
	atomic_ulong *next;    /* the threads take the bools' combinations in chunks from here */
};

/* Count the outcome of one state; returns its index in s->outcomes. */
static size_t note_outcome(struct sweep *s, const struct ha_observed *o, struct ha_decision d)
{
	/* Reasons are string literals: one pointer per literal (identical ones may merge). */
	for (size_t i = 0; i < s->noutcomes; i++) {
		if (s->outcomes[i].reason == d.reason && s->outcomes[i].action == d.action) {
			s->outcomes[i].count++;
			return i;
		}
	}
	if (s->noutcomes == MAX_OUTCOMES) { /* no cmocka assert here: this runs in a thread */
		s->overflow = true;
		return SIZE_MAX;
	}
	s->outcomes[s->noutcomes] = (struct outcome){d.action, d.reason, 1, *o};
	return s->noutcomes++;
}

static void report_violation(struct sweep *s, unsigned v, const struct ha_observed *o,
			     struct ha_decision d)
{
	for (int p = 0; p < NPROPS; p++) {
		if (!(v & (1u << p)))
			continue;
		if (s->violated[p]++ < 3) { /* the first few examples of each property */
			char buf[1024];
			describe(o, buf, sizeof(buf));
			print_error("VIOLATION %s:\n    got %s (%s)\n    %s\n", property_text[p],
				    in_range(d.action) ? ha_action_name(d.action) : "out of range",
				    d.reason ? d.reason : "(null)", buf);
		}
	}
}

/* One state: its decision checked and counted. */
static void sweep_one(struct sweep *s, const struct ha_observed *o, size_t *last)
{
	struct ha_decision d = ha_decide(o);
	s->states++;
	unsigned v = violations(o, d);
	if (v != 0)
		report_violation(s, v, o, d);
	/* The standby cluster's rewrite, in the same pass (a new swept field would double the time). */
	struct ha_decision sd = ha_decide_standby_cluster(o, d);
	/* Mostly unchanged: then its base properties are those just checked (reported once, above). */
	bool same = sd.action == d.action && sd.reason == d.reason;
	unsigned sv = standby_violations(o, sd, same ? 0 : violations(o, sd));
	if (sv != 0)
		report_violation(s, sv, o, sd);
	if (!in_range(d.action))
		return;
	s->per_action[d.action]++;
	if (*last != SIZE_MAX && s->outcomes[*last].reason == d.reason && s->outcomes[*last].action == d.action)
		s->outcomes[*last].count++;
	else
		*last = note_outcome(s, o, d);
}

/* Chunks, not a fixed split: some bools (job_running) make their states much quicker to decide. */
#define SWEEP_CHUNK 256UL

static void *sweep_part(void *arg)
{
	struct sweep *s = arg;
	/* the outcome of the previous state: neighbouring states mostly repeat it */
	size_t last = SIZE_MAX;
	unsigned long start;
	while ((start = atomic_fetch_add(s->next, SWEEP_CHUNK)) < (1UL << NBOOLS))
	for (unsigned long bits = start; bits < start + SWEEP_CHUNK; bits++) {
		struct ha_observed o;
		memset(&o, 0, sizeof(o));
		for (size_t i = 0; i < NBOOLS; i++) {
			bool b = (bits >> i) & 1;
			memcpy((char *)&o + bool_fields[i].off, &b, sizeof(b));
		}
		if (o.leader_suspect && (o.leader_absent || o.leader_is_me))
			continue;   /* never observed (see NSTATES) */
		o.restore = HA_RST_NONE;
		for (int init = 0; init < NINIT; init++)
		for (int tgt = 0; tgt < NTARGET; tgt++)
		for (int data = 0; data < NDATA; data++)
		for (int pg = 0; pg < NPG; pg++)
		for (int el = 0; el < NELECT; el++)
		for (int rq = 0; rq < NREQ; rq++)
		for (int hi = 0; hi < NHIST; hi++) {
			o.history = (enum ha_history)hi;
			o.init = (enum ha_init)init;
			o.failover_to = (enum ha_target)tgt;
			o.data = (enum ha_data)data;
			o.pg = (enum ha_pg)pg;
			o.election = (enum ha_election)el;
			o.request = (enum ha_request)rq;
			sweep_one(s, &o, &last);
		}
		o.failover_to = HA_TARGET_NONE;
		o.election = HA_ELECT_NOT_ASKED;
		o.request = HA_REQ_NONE;
		o.history = HA_HIST_ON;
		for (int rst = HA_RST_NONE + 1; rst < NRST; rst++)
		for (int init = 0; init < NINIT; init++)
		for (int data = 0; data < NDATA; data++)
		for (int pg = 0; pg < NPG; pg++) {
			o.restore = (enum ha_restore)rst;
			o.init = (enum ha_init)init;
			o.data = (enum ha_data)data;
			o.pg = (enum ha_pg)pg;
			sweep_one(s, &o, &last);
		}
	}
	return NULL;
}

/* Add one thread's counts into the total. */
static void sweep_merge(struct sweep *into, const struct sweep *part)
{
	into->states += part->states;
	into->overflow |= part->overflow;
	for (int a = 0; a < NACTIONS; a++)
		into->per_action[a] += part->per_action[a];
	for (int p = 0; p < NPROPS; p++)
		into->violated[p] += part->violated[p];
	for (size_t i = 0; i < part->noutcomes; i++) {
		const struct outcome *oc = &part->outcomes[i];
		size_t k = 0;
		while (k < into->noutcomes &&
		       !(into->outcomes[k].reason == oc->reason && into->outcomes[k].action == oc->action))
			k++;
		if (k < into->noutcomes) {
			into->outcomes[k].count += oc->count;
		} else if (into->noutcomes == MAX_OUTCOMES) {
			into->overflow = true;
		} else {
			into->outcomes[into->noutcomes++] = *oc;
		}
	}
}

/*
 * Every state once, over SWEEP_THREADS threads (each its own counts, merged
 * after): the sweep is most of the unit tests' time under ASan, and the CI
 * machine has two cores.
 */
#define SWEEP_THREADS 2

static void sweep_all(struct sweep *s)
{
	static struct sweep parts[SWEEP_THREADS];
	static atomic_ulong next;
	atomic_store(&next, 0);
	pthread_t th[SWEEP_THREADS];
	for (unsigned t = 0; t < SWEEP_THREADS; t++) {
		memset(&parts[t], 0, sizeof(parts[t]));
		parts[t].next = &next;
		assert_int_equal(pthread_create(&th[t], NULL, sweep_part, &parts[t]), 0);
	}
	memset(s, 0, sizeof(*s));
	for (unsigned t = 0; t < SWEEP_THREADS; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		sweep_merge(s, &parts[t]);
	}
	assert_false(s->overflow);
}

/*
 * The restore sweep above holds failover_to, election, request and history
 * at their first value. On every 997th state of it (all bools, init, data,
 * pg, restore), each of their 144 combinations must decide the same.
 */
static void test_restore_ignores_the_rest(void **state)
{
	unsigned long n = 0, checked = 0;
	for (unsigned long bits = 0; bits < (1UL << NBOOLS); bits++)
	for (int rst = HA_RST_NONE + 1; rst < NRST; rst++)
	for (int init = 0; init < NINIT; init++)
	for (int data = 0; data < NDATA; data++)
	for (int pg = 0; pg < NPG; pg++) {
		if (n++ % 997 != 0)
			continue;
		struct ha_observed o;
		memset(&o, 0, sizeof(o));
		for (size_t i = 0; i < NBOOLS; i++) {
			bool b = (bits >> i) & 1;
			memcpy((char *)&o + bool_fields[i].off, &b, sizeof(b));
		}
		o.restore = (enum ha_restore)rst;
		o.init = (enum ha_init)init;
		o.data = (enum ha_data)data;
		o.pg = (enum ha_pg)pg;
		struct ha_decision base = ha_decide(&o);
		for (int tgt = 0; tgt < NTARGET; tgt++)
		for (int el = 0; el < NELECT; el++)
		for (int rq = 0; rq < NREQ; rq++)
		for (int hi = 0; hi < NHIST; hi++) {
			o.failover_to = (enum ha_target)tgt;
			o.election = (enum ha_election)el;
			o.request = (enum ha_request)rq;
			o.history = (enum ha_history)hi;
			struct ha_decision d = ha_decide(&o);
			if (d.action != base.action || d.reason != base.reason) {
				char buf[1024];
				describe(&o, buf, sizeof(buf));
				fail_msg("during a restore the decision depends on failover_to, election, request or "
					 "history: %s (%s) here, %s (%s) with all four at their first value\n    %s",
					 ha_action_name(d.action), d.reason, ha_action_name(base.action), base.reason, buf);
			}
			checked++;
		}
	}
	assert_true(checked > 1000000);
}

static void test_safety_all_states(void **state)
{
	static struct sweep s;
	sweep_all(&s);
	assert_int_equal(s.states, NSTATES);
	unsigned long total = 0;
	for (int p = 0; p < NPROPS; p++) {
		if (s.violated[p] > 0)
			print_error("%lu states violate %s\n", s.violated[p], property_text[p]);
		total += s.violated[p];
	}
	if (total > 0)
		fail_msg("%lu property violations over %lu states", total, s.states);

	/* every action is decided for some state */
	for (int a = 0; a < NACTIONS; a++)
		if (s.per_action[a] == 0)
			fail_msg("%s is never decided", ha_action_name((enum ha_action)a));

	/*
	 * Every (action, reason) that some state produces is produced by a row of
	 * the table: a new return statement in ha_decide fails here until the
	 * table has a row for it.
	 */
	int missing = 0;
	for (size_t i = 0; i < s.noutcomes; i++) {
		const struct outcome *oc = &s.outcomes[i];
		bool found = false;
		for (size_t k = 0; k < NELEM(cases) && !found; k++) {
			struct ha_decision d = ha_decide(&cases[k].o);
			found = d.action == oc->action && strcmp(d.reason, oc->reason) == 0;
		}
		if (!found) {
			char buf[1024];
			describe(&oc->example, buf, sizeof(buf));
			print_error("no table row decides %s (\"%s\"), e.g.\n    %s\n",
				    ha_action_name(oc->action), oc->reason, buf);
			missing++;
		}
	}
	if (missing > 0)
		fail_msg("%d outcomes of ha_decide have no row in the table", missing);
}

/* The same observed state always gives the same decision, and the input is untouched. */
static void test_pure(void **state)
{
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct ha_observed o = cases[i].o, copy = cases[i].o;
		struct ha_decision a = ha_decide(&o);
		struct ha_decision b = ha_decide(&o);
		assert_int_equal(a.action, b.action);
		assert_ptr_equal(a.reason, b.reason);
		assert_memory_equal(&o, &copy, sizeof(o));
	}
}

/* ha_archive_replay: not streaming, replay past what was received and moving within the window. */
static void test_archive_replay(void **state)
{
	(void)state;
	struct ha_replay_watch w = {0};
	/* The first look only learns where replay is. */
	assert_false(ha_archive_replay(&w, true, false, 0, 1000, 1000));
	/* Replay moved past what was received: from the archive. */
	assert_true(ha_archive_replay(&w, true, false, 0, 2000, 2000));
	/* Still within the window though it did not move this time. */
	assert_true(ha_archive_replay(&w, true, false, 0, 2000, 2000 + HA_ARCHIVE_REPLAY_WINDOW_MS - 1));
	/* Not moved for the window: waiting, not catching up. */
	assert_false(ha_archive_replay(&w, true, false, 0, 2000, 2000 + HA_ARCHIVE_REPLAY_WINDOW_MS));
	/* Moving again, but only over WAL it received (its own pg_wal): not the archive. */
	assert_false(ha_archive_replay(&w, true, false, 5000, 3000, 40000));
	assert_true(ha_archive_replay(&w, true, false, 5000, 6000, 41000));
	/* Streaming, or a primary: never, and the watch starts over. */
	assert_false(ha_archive_replay(&w, true, true, 7000, 7000, 42000));
	assert_true(w.replayed == 0 && w.moved_ms == 0);
	assert_false(ha_archive_replay(&w, true, false, 7000, 8000, 43000));
	assert_true(ha_archive_replay(&w, true, false, 7000, 9000, 44000));
	assert_false(ha_archive_replay(&w, false, false, 0, 10000, 45000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field_tables_cover_struct),
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_standby_cluster_table),
		cmocka_unit_test(test_table_covers_every_action),
		cmocka_unit_test(test_action_names),
		cmocka_unit_test(test_pure),
		cmocka_unit_test(test_restore_ignores_the_rest),
		cmocka_unit_test(test_safety_all_states),
		cmocka_unit_test(test_archive_replay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
