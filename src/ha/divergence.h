/*
 * divergence.h — is this member's WAL on the leader's history (divergence.c)?
 * divergence_due, when to ask the leader again, is pure: tested in
 * tests/unit/ha/test_divergence.c.
 */
#ifndef PGHA_HA_DIVERGENCE_H
#define PGHA_HA_DIVERGENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "ha/decide.h"

/* Is our WAL on the leader's history? Written by divergence.c only. */
struct agent_divergence {
	enum ha_history history;
	char key[512];            /* what the stopped data's check was made for */
	int64_t checked_ms;
	int64_t not_streaming_since_ms;
	char warned[256];         /* the last failure to ask the primary cluster, logged once */
};

/* Where this member stands, as far as the check goes. */
enum div_situation {
	DIV_NO_LEADER,       /* no other leader to compare with (or etcd is down) */
	DIV_STOPPED,         /* PostgreSQL stopped with a valid data directory, no job running */
	DIV_NOT_STREAMING,   /* a running standby without a walreceiver */
	DIV_STREAMING,       /* running, streaming */
	DIV_OTHER,           /* anything else: starting, a primary, a job */
};

/*
 * Move d on for this loop (key: what a stopped data directory's check is made
 * for); true: check the leader's history now.
 */
bool divergence_due(struct agent_divergence *d, enum div_situation s, const char *key, int64_t now);

struct agent;
/* Gather: the leader's timeline history, when divergence_due says so. Each loop. */
void divergence_check(struct agent *a);
/* A clone or a rewind changed the data: check it again before it starts. */
void divergence_unknown(struct agent *a);
/* The data was moved aside: nothing left to diverge until a clone. */
void divergence_reset(struct agent *a);

#endif
