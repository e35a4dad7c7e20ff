/*
 * switchover.h — the agents' part in a planned switchover (see switchover.c
 * and cluster/switchover.h for the protocol).
 */
#ifndef PGHA_HA_SWITCHOVER_H
#define PGHA_HA_SWITCHOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/member.h"
#include "cluster/switchover.h"
#include "dcs/etcd.h"
#include "ha/sync.h"

struct agent;

/*
 * The decision, pure (tests/unit/ha/test_switchover_step.c): what this member
 * does to the switchover record this loop. switchover_step gathers the inputs
 * and carries the step out.
 */
struct so_inputs {
	const struct switchover *so;   /* the record as read */
	const char *me;                /* this member's name */
	const char *leader;            /* the leader key's holder, NULL if none */
	bool running_primary;          /* this member's PostgreSQL runs as a primary */
	bool paused;                   /* maintenance mode */
	int proxies, proxies_paused;   /* proxies/<name> records, and those paused for so->id */
	int64_t started_ms;            /* wall clock the pause began, 0 if not known */
	const char *candidate_problem; /* why so->to cannot take over now, "" if it can */
	int64_t now_ms;                /* wall clock */
};

enum so_step_action {
	SO_STEP_NONE,
	SO_STEP_REMOVE,    /* delete the finished record (compared on its value) */
	SO_STEP_ADVANCE,   /* move the record to phase, deadline_ms, reason (compare-and-swap) */
};

enum so_failover {
	SO_FAILOVER_NONE,
	SO_FAILOVER_CANDIDATE,   /* once advanced: point the failover key at so->to ... */
	SO_FAILOVER_ME,          /* ... or back at this member */
};

struct so_step {
	enum so_step_action action;
	enum so_phase phase;
	int64_t deadline_ms;
	char reason[256];        /* "" for none (as long as the record keeps) */
	bool start_clock;        /* once advanced: the pause begins now (started_ms) */
	enum so_failover failover;
};

struct so_step switchover_decide(const struct so_inputs *in);

/*
 * Why candidate `to` (its member record m, NULL if none) cannot take over now,
 * "" if it can; sync_set: the synchronous standbys in synchronous mode, else NULL.
 */
void switchover_check_candidate(const char *to, const struct member *m, const struct sync_set *sync_set,
				char *why, size_t len);

/* Observe: the switchover record and the proxies' records, from the prefix read. */
void switchover_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
/* Act on it: once per loop, before the decision. */
void switchover_step(struct agent *a);
void switchover_free(struct agent *a);

#endif
