/*
 * config_key.h — the dynamic `config` key of the cluster model: one table of
 * its settings and the codec every reader and writer goes through (the agent:
 * ha/failover.c, ha/sync_leader.c, ha/dynconf.c; the view's synchronous mode;
 * `pgha ctl list`, `pause`, `set`, `edit-config`):
 *
 *   {"pause": true, "synchronous_mode": "quorum", "synchronous_node_count": 2,
 *    "maximum_lag_on_failover": 1048576, "ttl": 9, "loop_wait": "500ms",
 *    "retry_timeout": 3, "postgresql": {"parameters": {"work_mem": "8MB"}}}
 *
 * Durations: a whole number is seconds (as Patroni writes them), a string is a
 * duration as in the config file ("500ms", "9s", "2m"); the ranges are those of
 * the file's [cluster] options (agent_config.c takes them from here), and
 * ttl >= loop_wait + 2 * retry_timeout must hold for the values in effect.
 * Numbers and modes may also come as text ("2", "on": what `ctl set` passes).
 * Parameter values: strings, numbers or booleans (on/off); parameters pgha
 * writes itself (pg_param_managed) are refused. null means not set.
 *
 * Decoding judges each setting alone: a bad value leaves that setting unset
 * and says why, naming the setting and the value; the others still count, so
 * the agent applies what it can while ctl refuses the whole config.
 * The prefix dyncfg_ stands for the dynamic config.
 */
#ifndef PGHA_CLUSTER_CONFIG_KEY_H
#define PGHA_CLUSTER_CONFIG_KEY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cluster/member.h"
#include "cluster/sync_key.h"
#include "common/err.h"
#include "dcs/etcd.h"
#include "pg/pgconf.h"

/* Defaults and ranges a member's file shares with the key (static initializers need them as macros). */
#define DYNCFG_TTL_DEFAULT "9s"
#define DYNCFG_TTL_MIN_MS 2000
#define DYNCFG_TTL_MAX_MS 3600000
#define DYNCFG_LOOP_WAIT_DEFAULT "1s"
#define DYNCFG_LOOP_WAIT_MIN_MS 100
#define DYNCFG_LOOP_WAIT_MAX_MS 600000
#define DYNCFG_RETRY_TIMEOUT_DEFAULT "3s"
#define DYNCFG_RETRY_TIMEOUT_MIN_MS 500
#define DYNCFG_RETRY_TIMEOUT_MAX_MS 600000
#define DYNCFG_MAX_LAG_DEFAULT "1048576"
#define DYNCFG_MAX_LAG_MAX 2147483647

/* The settings, in the order `ctl set --help` shows them. */
enum dyncfg_id {
	DYNCFG_SYNC_MODE,
	DYNCFG_SYNC_COUNT,
	DYNCFG_SYNC_CROSS_REGION,
	DYNCFG_MAX_LAG,
	DYNCFG_TTL,             /* the timing: DYNCFG_TTL + enum dyncfg_timing_key */
	DYNCFG_LOOP_WAIT,
	DYNCFG_RETRY_TIMEOUT,
	DYNCFG_PAUSE,
	DYNCFG_N,
};

enum dyncfg_type {
	DYNCFG_BOOL,            /* true | false */
	DYNCFG_MODE,            /* enum sync_mode: a name, or a boolean (Patroni's synchronous_mode) */
	DYNCFG_INT,             /* a whole number in min..max */
	DYNCFG_DURATION,        /* ms in min..max */
};

struct dyncfg_setting {
	const char *key;
	enum dyncfg_type type;
	long long min, max;     /* DYNCFG_INT: the number; DYNCFG_DURATION: ms */
	const char *def;        /* built in, as text; a member's file may set its own (timing, lag) */
	const char *use;        /* a bad value: what to give instead */
	const char *values;     /* `ctl set --help`; NULL: not a `ctl set` key (pause: `ctl pause`) */
	const char *help;
};

extern const struct dyncfg_setting dyncfg_settings[DYNCFG_N];

/* The setting named by the first len bytes of key, or NULL. */
const struct dyncfg_setting *dyncfg_setting_find(const char *key, size_t len);
/* One value of setting id (a string is read as `ctl set` text); the error says what to give, not which key. */
int dyncfg_setting_parse(enum dyncfg_id id, const json_t *v, long long *out, struct pgha_err *e) PGHA_MUSTCHECK;
/* The JSON to store for a value: a mode's name, a duration as dyncfg_duration_json, a number, a boolean. */
json_t *dyncfg_setting_json(enum dyncfg_id id, long long v);

/* A config key, decoded. */
struct dyncfg {
	bool set[DYNCFG_N];             /* given (not null) and valid: value[] holds it */
	long long value[DYNCFG_N];      /* boolean 0/1, enum sync_mode, number, ms */
	bool bad[DYNCFG_N];             /* given but not valid: why[] says "KEY = VALUE: ..." */
	struct pgha_err why[DYNCFG_N];
	struct pg_param *params;        /* postgresql.parameters, sorted by name */
	size_t nparams;
	bool params_bad;                /* then params_why says why and params is empty */
	struct pgha_err params_why;
	bool problem;                   /* anything wrong, unknown keys included: first says what */
	struct pgha_err first;
};

/*
 * text (NULL: no key) into c (free with dyncfg_free). -1 if it is not a JSON
 * object (e says why; c is then empty), else 0 whatever its settings hold.
 */
int dyncfg_decode(const char *text, struct dyncfg *c, struct pgha_err *e);
int dyncfg_from_json(const json_t *o, struct dyncfg *c, struct pgha_err *e);
void dyncfg_free(struct dyncfg *c);
/* The settings and parameters c holds, normalized. */
json_t *dyncfg_encode(const struct dyncfg *c);
/*
 * ctl's check of a whole config: every key known, every value valid, timing
 * consistent with what it does not set at its default. The normalized object,
 * or NULL and e says what is wrong first.
 */
json_t *dyncfg_normalize(const json_t *in, struct pgha_err *e);
/* ctl set's check after a change: the timing only, what is not set at its default. */
int dyncfg_check_timing(const json_t *cfg, struct pgha_err *e) PGHA_MUSTCHECK;
/* Set or clear maintenance mode in the config key at key, keeping its other settings (compare-and-swap, retried). */
int dyncfg_write_pause(struct etcd_client *c, const char *key, bool pause, struct pgha_err *e) PGHA_MUSTCHECK;
/* Whether maintenance mode is on: the pause flag of text (the key's value, NULL if absent). */
bool dyncfg_paused(const char *text);
/* The key's JSON object as stored (an empty one if absent or not an object), to change and write back. */
json_t *dyncfg_object(const char *text);

/*
 * A cluster view's synchronous mode (its config key) and sync key: 1 when the
 * mode is on (quorum, strict) and the sync key decodes into *s, 0 when the
 * mode is off or there is no usable key. *mode (may be NULL) gets the mode.
 */
int dyncfg_view_sync(const struct cluster_view *v, struct sync_state *s, enum sync_mode *mode);

/* ---- timing ----------------------------------------------------------------- */

enum dyncfg_timing_key { DYN_TTL, DYN_LOOP_WAIT, DYN_RETRY_TIMEOUT, DYN_NTIMING };

/* "ttl", "loop_wait", "retry_timeout" */
const char *dyncfg_timing_name(enum dyncfg_timing_key k);
/* The key of that name, or -1. */
int dyncfg_timing_find(const char *name);
/*
 * ttl >= loop_wait + 2 * retry_timeout (a leader notices a failed renewal and
 * demotes before its lease runs out); checked for the file and for the key.
 */
int dyncfg_timing_check(long ttl_ms, long loop_wait_ms, long retry_timeout_ms, struct pgha_err *e) PGHA_MUSTCHECK;
/* One timing value in ms, within its range; the error says what is wrong (not which key). */
int dyncfg_duration(enum dyncfg_timing_key k, const json_t *v, long *ms, struct pgha_err *e) PGHA_MUSTCHECK;
/* The JSON to store for ms: whole seconds as a number, else "NNNms". */
json_t *dyncfg_duration_json(long ms);
/* The built-in defaults (9s, 1s, 3s). */
void dyncfg_timing_defaults(long out[DYN_NTIMING]);
/* The timing in effect: c's values over base (a node's file, or the defaults), checked. */
int dyncfg_timing(const struct dyncfg *c, const long base[DYN_NTIMING], long out[DYN_NTIMING],
		  struct pgha_err *e) PGHA_MUSTCHECK;

/* ---- PostgreSQL parameters ------------------------------------------------- */

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
