/*
 * switchover.h — the agents' part in a planned switchover (see switchover.c
 * and cluster/switchover.h for the protocol).
 */
#ifndef PGHA_HA_SWITCHOVER_H
#define PGHA_HA_SWITCHOVER_H

#include "dcs/etcd.h"

struct agent;

/* Observe: the switchover record and the proxies' records, from the prefix read. */
void switchover_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
/* Act on it: once per loop, before the decision. */
void switchover_step(struct agent *a);

#endif
