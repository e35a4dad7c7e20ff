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

#endif
