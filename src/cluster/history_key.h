/*
 * history_key.h — the cluster's history of leader changes, /pgha/<cluster>/history:
 *
 *   {"entries": [{"at": unix ms, "kind": "bootstrap" | "failover" | "switchover" |
 *                 "manual failover" | "restore", "from": member or "", "to": member,
 *                 "timeline": N, "unavailable_ms": N}, ...]}
 *
 * oldest first, the newest HISTORY_MAX kept. Appended by the member that became
 * primary under the leader key (compared on the key's revision), read by
 * `ctl history` and GET /history. Decoding is strict (etcd may be written by
 * anyone): a bad entry makes the whole key invalid, named by index and field.
 */
#ifndef PGHA_CLUSTER_HISTORY_KEY_H
#define PGHA_CLUSTER_HISTORY_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/member.h"
#include "common/err.h"

#define HISTORY_MAX 100

struct history_entry {
	int64_t at_ms;                 /* unix ms: when the new leader ran as primary */
	char kind[20];
	char from[MEMBER_NAME_MAX];    /* the leader before, "" if none known */
	char to[MEMBER_NAME_MAX];
	uint32_t timeline;
	int64_t unavailable_ms;        /* how long no member ran as primary under the key, as the new leader saw it */
};

struct history {
	struct history_entry *entries; /* oldest first */
	size_t n;
};

/* NULL json: an empty history. */
int history_decode(const char *json, struct history *out, struct pgha_err *e) PGHA_MUSTCHECK;
char *history_encode(const struct history *h);
/* Append e, dropping the oldest beyond HISTORY_MAX. */
void history_append(struct history *h, const struct history_entry *e);
void history_free(struct history *h);

#endif
