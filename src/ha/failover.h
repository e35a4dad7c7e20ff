/*
 * failover.h — who may become the leader (see failover.c).
 * All functions run on the HA loop thread.
 */
#ifndef PGHA_HA_FAILOVER_H
#define PGHA_HA_FAILOVER_H

#include <stdbool.h>

#include "dcs/etcd.h"
#include "ha/decide.h"

struct agent;

void failover_init(struct agent *a);
void failover_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
void failover_request(struct agent *a, const char *to, const char *so_id);
void failover_request_done(struct agent *a);
bool failover_eligible(const struct agent *a);
enum ha_election failover_elect(const struct agent *a);

#endif
