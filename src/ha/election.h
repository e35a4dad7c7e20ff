/*
 * election.h — who should take a free leader key.
 *
 * When the leader key is gone, each eligible standby asks the other members
 * (GET <api_url>/status, in parallel, short timeout) for their timeline and
 * WAL position. Only the most advanced one races for the key; ties are broken
 * by region (one in the region of the leader that went wins: clients, proxies
 * and the other standbys are near it), then by priority (higher wins), then by
 * name (lower wins). Members that do not
 * answer, that cannot reach etcd, that are not running standbys, or that are
 * tagged nofailover / priority 0 are not candidates. A member whose answer
 * still shows the old leader has not seen the change yet: its position may
 * be stale, so the election waits for it (one loop).
 *
 * Synchronous mode (sync.h): only the members the sync key lists compete (its
 * synchronous standbys, and the leader it belongs to). A listed standby must
 * hear from Q of the listed standbys (itself included) and be at least as
 * advanced as each of them, candidate or not: every acknowledged commit is on
 * one of any Q of them, so the most advanced of Q has them all. The leader the
 * key belongs to has them all anyway (Q = 0 for it).
 */
#ifndef PGHA_HA_ELECTION_H
#define PGHA_HA_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/member.h"

struct httpc_tls;

struct ha_candidate {
	char name[MEMBER_NAME_MAX];
	bool answered;          /* the API answered with a usable status */
	bool settled;           /* it has seen that there is no leader */
	bool candidate;         /* running standby, reaches etcd, may be promoted */
	uint32_t timeline;
	uint64_t lsn;           /* max(received, replayed) */
	int priority;
	char region[MEMBER_NAME_MAX]; /* its [node] region, "" if none */
	bool home_region;       /* in the region of the leader that went (set by the caller) */
	bool has_position;      /* a running PostgreSQL: the position is current */
	bool listed;            /* synchronous mode: a synchronous standby of the sync key */
	bool sync_leader;       /* synchronous mode: the leader the sync key belongs to */
};

enum ha_rank {
	HA_RANK_BEST,           /* nobody eligible is ahead of me */
	HA_RANK_BEHIND,         /* someone is ahead: let them take the key */
	HA_RANK_UNSETTLED,      /* someone has not seen the leader go yet: ask again */
	HA_RANK_NO_QUORUM,      /* synchronous mode: too few listed standbys answered */
};

/* Pure: rank me among the answers. *ahead (may be NULL) names who is ahead/unsettled. */
enum ha_rank ha_rank(const struct ha_candidate *me, const struct ha_candidate *others, size_t n,
		     const char **ahead);

/*
 * Pure, synchronous mode: rank me among the members the sync key lists; `need`
 * listed members with a position (me included when listed) must have answered.
 */
enum ha_rank ha_rank_sync(const struct ha_candidate *me, const struct ha_candidate *others, size_t n,
			  size_t need, const char **ahead);

/* Pure: parse a /status body into a candidate (answered=false when unusable). */
void ha_candidate_from_status(const char *json, struct ha_candidate *out);

/*
 * Ask every member of the view except `self` for its status (parallel,
 * timeout_ms). tls (NULL: plain): the calls verify each member's certificate
 * and skip a member whose api_url is not https:// (common/httpc.h); a member
 * that did not answer, for that or any reason, is logged and counts as
 * unreachable, as in a network partition.
 */
void ha_poll_candidates(const struct cluster_view *v, const char *self, const struct httpc_tls *tls,
			int timeout_ms, struct ha_candidate **out, size_t *n);

#endif
