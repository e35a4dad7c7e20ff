/*
 * hold.h — the proxy's part in a planned switchover (hold.c): new
 * read-write transactions wait while the leader changes. It decides; the
 * caller (proxy.c, client.c) acts on clients: ends the sessions it names,
 * lets the waiting transactions go when a hold ends.
 */
#ifndef PGHA_PROXY_HOLD_H
#define PGHA_PROXY_HOLD_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/objects.h"

/*
 * After a new topology. true: a hold ended, the waiting transactions go on
 * (client_resume_waiting); then call again: a switchover that replaced the
 * one held for is held in turn.
 */
bool hold_topology(struct proxy *px);
/* Once a second (the record in etcd, switchover_hold). true: a hold ended, as above. */
bool hold_tick(struct proxy *px);
/*
 * While holding in session mode: a client on the read-write port at a
 * transaction boundary, whose session cannot follow the leader: the caller
 * ends it (FATAL 57P01, why). NULL: none.
 */
struct client *hold_session_to_end(struct proxy *px, char *why, size_t whylen);
/* No read-write transaction runs (after each batch of events): drained, reported in etcd. */
void hold_check(struct proxy *px);

#endif
