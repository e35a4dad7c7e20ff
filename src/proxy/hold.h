/*
 * hold.h — the proxy's part in a planned switchover (hold.c): new
 * read-write transactions wait while the leader changes.
 */
#ifndef PGHA_PROXY_HOLD_H
#define PGHA_PROXY_HOLD_H

#include "proxy/objects.h"

void hold_topology(struct proxy *px);   /* after a new topology */
/* Servers were released: drained now? (after each batch of events while holding) */
void hold_check(struct proxy *px);
void hold_tick(struct proxy *px);

#endif
