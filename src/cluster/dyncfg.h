/*
 * dyncfg.h — the parts of the dynamic `config` key beyond failover and
 * synchronous replication, as pure functions shared by the agent (which
 * applies them, ha/dynconf.c) and `pgha ctl set` / `edit-config` (which check
 * them before writing):
 *
 *   {"ttl": 9, "loop_wait": "500ms", "retry_timeout": 3,
 *    "postgresql": {"parameters": {"work_mem": "8MB", "max_connections": 200}}}
 *
 * Durations: a whole number is seconds (as Patroni writes them), a string is a
 * duration as in the config file ("500ms", "9s", "2m"); the ranges are those of
 * the file's [cluster] options, and ttl >= loop_wait + 2 * retry_timeout must
 * hold for the values in effect. Parameter values: strings, numbers or
 * booleans (on/off); parameters pgha writes itself (pg_param_managed) are
 * refused.
 */
#ifndef PGHA_CLUSTER_DYNCFG_H
#define PGHA_CLUSTER_DYNCFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "pg/pgconf.h"

/*
 * The timing options: the agent's file ([cluster] ttl, loop_wait,
 * retry_timeout) and the config key take the same defaults and ranges.
 */
#define CLUSTER_TTL_DEFAULT "9s"
#define CLUSTER_TTL_MIN_MS 2000
#define CLUSTER_TTL_MAX_MS 3600000
#define CLUSTER_LOOP_WAIT_DEFAULT "1s"
#define CLUSTER_LOOP_WAIT_MIN_MS 100
#define CLUSTER_LOOP_WAIT_MAX_MS 600000
#define CLUSTER_RETRY_TIMEOUT_DEFAULT "3s"
#define CLUSTER_RETRY_TIMEOUT_MIN_MS 500
#define CLUSTER_RETRY_TIMEOUT_MAX_MS 600000

/*
 * ttl >= loop_wait + 2 * retry_timeout (a leader notices a failed renewal and
 * demotes before its lease runs out); checked for the file and for the dynamic
 * config (`pgha ctl set ttl=...`).
 */
int cluster_timing_check(long ttl_ms, long loop_wait_ms, long retry_timeout_ms, struct pgha_err *e) PGHA_MUSTCHECK;

enum dyncfg_timing_key { DYN_TTL, DYN_LOOP_WAIT, DYN_RETRY_TIMEOUT, DYN_NTIMING };

/* "ttl", "loop_wait", "retry_timeout" */
const char *dyncfg_timing_name(enum dyncfg_timing_key k);
/* The key of that name, or -1. */
int dyncfg_timing_find(const char *name);

/* One timing value in ms, within its range; the error says what is wrong (not which key). */
int dyncfg_duration(enum dyncfg_timing_key k, const json_t *v, long *ms, struct pgha_err *e) PGHA_MUSTCHECK;
/* The JSON to store for ms: whole seconds as a number, else "NNNms". */
json_t *dyncfg_duration_json(long ms);
/* The file's defaults (9s, 1s, 3s). */
void dyncfg_timing_defaults(long out[DYN_NTIMING]);
/*
 * The timing in effect: the config key's values over base (a node's file, or
 * the defaults), checked. Which came from the key: set[k] (may be NULL).
 */
int dyncfg_timing(const json_t *cfg, const long base[DYN_NTIMING], long out[DYN_NTIMING], bool set[DYN_NTIMING],
		  struct pgha_err *e) PGHA_MUSTCHECK;

/* One parameter: a name pgha lets the operator set, and its value as text (caller frees). */
int dyncfg_param(const char *name, const json_t *v, char **text, struct pgha_err *e) PGHA_MUSTCHECK;
/* Every parameter of "postgresql": {"parameters": {...}}, sorted by name (none if absent). */
int dyncfg_params(const json_t *cfg, struct pg_param **out, size_t *n, struct pgha_err *e) PGHA_MUSTCHECK;
/* base with over merged on top (over wins; names compare as PostgreSQL does, case-insensitively). */
void dyncfg_params_merge(const struct pg_param *base, size_t nbase, const struct pg_param *over, size_t nover,
			 struct pg_param **out, size_t *n);
bool dyncfg_params_equal(const struct pg_param *a, size_t na, const struct pg_param *b, size_t nb);
void dyncfg_params_free(struct pg_param *p, size_t n);

#endif
