/*
 * switchover_req.h — asking for a planned switchover, and withdrawing one:
 * what `pgha ctl switchover` and the agent API (POST/DELETE /switchover)
 * share. The agents then carry it out (switchover.c).
 */
#ifndef PGHA_CLUSTER_SWITCHOVER_REQ_H
#define PGHA_CLUSTER_SWITCHOVER_REQ_H

#include <stdint.h>

#include "cluster/member.h"
#include "cluster/switchover.h"
#include "common/err.h"
#include "dcs/etcd.h"

/* The record now: 1 present (*raw set, caller frees; an unreadable one reads as aborted), 0 absent, -1 error. */
int switchover_read(struct etcd_client *c, const char *key, struct switchover *so, char **raw, struct pgha_err *e);

/* 0 if the view has a running leader and `to` may take over from it; else -1 and why (with a HINT). */
int switchover_fit(const struct cluster_view *v, const char *to, struct pgha_err *e);

/*
 * Write a new request from the view's leader to `to`, at at_ms (unix ms, 0 now):
 * created, or replacing a finished one (compare-and-swap). -1 if one is pending
 * or the write failed; *out gets the request.
 */
int switchover_submit(struct etcd_client *c, const char *key, const struct cluster_view *v, const char *to,
		      int64_t at_ms, struct switchover *out, struct pgha_err *e);

/* 0 if so (read with raw) may still be withdrawn: scheduled or pausing. */
int switchover_cancellable(const struct switchover *so, struct pgha_err *e);
/* Withdraw it: delete only if the record still holds raw. */
int switchover_withdraw(struct etcd_client *c, const char *key, const char *raw, struct pgha_err *e);

/* "+30s", "+5m", "2026-11-21T23:00:00Z", "...+01:00" -> unix ms; -1 if not understood. */
int64_t switchover_parse_time(const char *s, int64_t now_wall_ms);

#endif
