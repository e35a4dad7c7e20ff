/*
 * sync_key.h — the synchronous replication records of the cluster model: the
 * modes of the config key's synchronous_mode, a set of member names, and the
 * `sync` key {"leader": L, "sync_standby": P, "quorum": Q} the leader
 * publishes (what they mean, and the planner that keeps them safe: ha/sync.h).
 */
#ifndef PGHA_CLUSTER_SYNC_KEY_H
#define PGHA_CLUSTER_SYNC_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster/member.h"
#include "common/err.h"

#define SYNC_MAX 16                 /* names in one set (more standbys are not made synchronous) */

enum sync_mode {
	SYNC_OFF,      /* asynchronous replication */
	SYNC_ON,       /* one synchronous standby; none available: asynchronous until one is */
	SYNC_QUORUM,   /* ANY synchronous_node_count of every available standby */
	SYNC_STRICT,   /* one synchronous standby; none available: writes wait */
};

const char *sync_mode_name(enum sync_mode m);
/* "off", "on", "quorum", "strict" (also true/false, as Patroni spells on/off). */
int sync_mode_parse(const char *s, enum sync_mode *out);

/* A set of member names (sorted, distinct) and a number: k in the ssn, Q in the sync key. */
struct sync_set {
	int num;
	size_t n;
	char names[SYNC_MAX][MEMBER_NAME_MAX];
};

void sync_set_clear(struct sync_set *s);
/* Add a name (kept sorted; duplicates and names past SYNC_MAX are ignored). */
void sync_set_add(struct sync_set *s, const char *name);
bool sync_set_has(const struct sync_set *s, const char *name);
bool sync_set_equal(const struct sync_set *a, const struct sync_set *b);
/* Text for ctl and logs: a published set "n2, n3 (quorum 2)" / "(none)". */
void sync_pub_describe(const struct sync_set *s, char *out, size_t len);

/* The sync key. */
struct sync_state {
	char leader[MEMBER_NAME_MAX];
	struct sync_set set;        /* num = Q, 0 when the set is empty */
};

char *sync_state_encode(const struct sync_state *s);
/* Strict: wrong types, bad names, Q outside 1..|P| (0 when empty) are errors. */
int sync_state_decode(const char *json, struct sync_state *out, struct pgha_err *e) PGHA_MUSTCHECK;

#endif
