/*
 * metrics.h — Prometheus text rendered by the loop each second, served by
 * an HTTP thread (metrics.c).
 */
#ifndef PGHA_PROXY_METRICS_H
#define PGHA_PROXY_METRICS_H

#include <stdint.h>

#include "common/err.h"

struct proxy;
struct metrics;

struct metrics *metrics_start(struct proxy *px, const char *listen, struct pgha_err *e);
void metrics_render(struct proxy *px);
void metrics_stop(struct metrics *m);
void metrics_observe_xact(struct proxy *px, int64_t ms);
/* A query round trip (Query or Sync to ReadyForQuery) took ms. */
void metrics_observe_query(struct proxy *px, int64_t ms);
/* A client waited ms for a server (a failover or switchover hold included). */
void metrics_observe_wait(struct proxy *px, int64_t ms);
/* The proxy sent a client an error with this SQLSTATE. */
void metrics_count_error(struct proxy *px, const char *sqlstate);

#endif
