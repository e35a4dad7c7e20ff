/*
 * hold.h — the proxy's part in a planned switchover (hold.c): new
 * read-write transactions wait while the leader changes.
 */
#ifndef PGHA_PROXY_HOLD_H
#define PGHA_PROXY_HOLD_H

#include "proxy/objects.h"

void hold_topology(struct proxy *px);   /* after a new topology */
void hold_check(struct proxy *px);      /* a server was released: drained now? */
void hold_tick(struct proxy *px);

#endif
