/*
 * failover.h — observations for automatic failover (see failover.c).
 * All functions run on the HA loop thread.
 */
#ifndef PGHA_HA_FAILOVER_H
#define PGHA_HA_FAILOVER_H

#include <stdbool.h>

#include "dcs/etcd.h"
#include "ha/decide.h"

struct agent;

void failover_read_dcs(struct agent *a, const struct etcd_kvs *kvs);
bool failover_is_primary(const struct agent *a);
void failover_arm_fence(struct agent *a);
bool failover_lease_expiring(const struct agent *a);
void failover_update_fence(struct agent *a);
void failover_failsafe_round(struct agent *a);
bool failover_failsafe_hold(struct agent *a);
void failover_note_crash(struct agent *a);
void failover_note_running(struct agent *a);
bool failover_restart_exhausted(const struct agent *a);
bool failover_eligible(const struct agent *a);
void failover_check_divergence(struct agent *a);
enum ha_election failover_elect(struct agent *a);

#endif
