/*
 * sync.h — synchronous replication, the pure part: the modes, the two places
 * the synchronous state lives, and the planner that moves between them safely.
 * No I/O; unit-tested in tests/unit/ha/test_sync.c (every start state and goal
 * over a small universe of members). The leader's side effects are in
 * sync_leader.c.
 *
 * Two places hold the state:
 *  - PostgreSQL's synchronous_standby_names ("ssn"): a commit returns to the
 *    client once `k` of the standbys `S` have flushed it ("ANY k (S)"; a
 *    single name or FIRST k is read as ANY k: the same or fewer ack sets).
 *  - the `sync` key in etcd ("pub"): {"leader": L, "sync_standby": P,
 *    "quorum": Q}. Only L or a member of P may take the leader key in
 *    synchronous mode, and a member of P only after it has heard from Q
 *    members of P (itself included) and is the most advanced of them.
 *
 * No acknowledged commit is lost if every ack set of the ssn meets every Q
 * members of P. The worst ack set avoids P as much as it can, so this holds
 * exactly when
 *
 *        P is empty,  or  k + Q > |S ∪ P|   (with 1 <= Q <= |P|)     (*)
 *
 * (an empty P leaves only the leader L promotable: always safe). The planner
 * changes one of the two at a time and only to a state where (*) holds, so the
 * pair is safe at every moment, whichever the other members read. With one
 * synchronous standby this gives the familiar order: a standby is added to
 * the ssn first and published once it confirmed; it is removed from the
 * published set first and from the ssn after.
 *
 * A commit acknowledged under an earlier ssn must also be covered by what is
 * published next. The leader therefore publishes a non-empty set only when the
 * current ssn has "settled": it took effect, and k of its standbys report
 * (sync_state sync/quorum) a flush position at least the leader's WAL position
 * measured after the change, so everything acknowledged before is on k of them.
 */
#ifndef PGHA_HA_SYNC_H
#define PGHA_HA_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster/sync_key.h"
#include "common/err.h"

#define SYNC_NONE_NAME "pgha:none"  /* strict mode, nobody available: no member can have this name */

/* Text for logs: an ssn "ANY 1 (n2, n3)" / "(none)". */
void sync_set_describe(const struct sync_set *s, char *out, size_t len);

/* (*) above: is the published set safe against every ack set of the ssn? */
bool sync_safe(const struct sync_set *ssn, const struct sync_set *pub);

/*
 * synchronous_standby_names for a set: "" when empty, "\"n2\"" for one
 * standby (sync_state "sync"), ANY k ("n2","n3") for a quorum. Caller frees.
 */
char *sync_ssn_format(const struct sync_set *s, bool quorum);
/*
 * Read a synchronous_standby_names value back (any form PostgreSQL accepts
 * except '*'): 0 and the set, or -1 when it is not understood.
 */
int sync_ssn_parse(const char *text, struct sync_set *out);

/*
 * What the leader wants now. cands: the standbys that may be synchronous
 * (streaming, not nosync/nofailover), best first. cur: the ssn in effect
 * (keeps the one synchronous standby of on/strict while it stays a candidate).
 */
void sync_goal(enum sync_mode mode, int count, const char *const *cands, size_t ncands,
	       const struct sync_set *cur, struct sync_set *goal);
/* The sync key set that goes with a goal ssn: Q = n - k + 1 (empty for none/placeholder). */
void sync_goal_pub(const struct sync_set *goal, struct sync_set *pub);

enum sync_step_kind {
	SYNC_STEP_NONE,      /* nothing to change now (steady, or waiting to settle) */
	SYNC_STEP_SSN,       /* set synchronous_standby_names to `set` */
	SYNC_STEP_PUBLISH,   /* write the sync key with `set` (leader = this member) */
};

struct sync_step {
	enum sync_step_kind kind;
	struct sync_set set;
	const char *why;     /* static text */
};

struct sync_plan_in {
	const struct sync_set *ssn;   /* in effect */
	bool ssn_known;               /* false: a value we cannot read (then ssn is ignored) */
	bool settled;                 /* see above */
	const struct sync_set *pub;   /* the sync key's set */
	bool pub_mine;                /* the key exists, is valid, and names this member as leader */
	const struct sync_set *goal;  /* from sync_goal */
};

/* Pure: the next step from (ssn, pub) towards the goal, keeping (*) at every step. */
struct sync_step sync_plan(const struct sync_plan_in *in);

#endif
