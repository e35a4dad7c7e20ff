/*
 * config_key.c — the dynamic config key: its table of settings, the codec
 * and the checks (see config_key.h).
 */
#include "cluster/config_key.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/strbuf.h"

const struct dyncfg_setting dyncfg_settings[DYNCFG_N] = {
	[DYNCFG_SYNC_MODE] = {"synchronous_mode", DYNCFG_MODE, 0, 0, "off", "use off, on, quorum or strict",
			      "off|on|quorum|strict",
			      "off: asynchronous; on: one synchronous standby (asynchronous while none is available);\n"
			      "quorum: ANY synchronous_node_count of the standbys; strict: one synchronous standby,\n"
			      "writes wait while none is available. In every mode but off only a synchronous standby\n"
			      "is promoted, so no acknowledged commit is lost."},
	[DYNCFG_SYNC_COUNT] = {"synchronous_node_count", DYNCFG_INT, 1, SYNC_MAX, "1",
			       "use a whole number from 1 to 16", "1..16",
			       "quorum mode: how many standbys must confirm each commit (default 1)"},
	[DYNCFG_SYNC_CROSS_REGION] = {"synchronous_cross_region", DYNCFG_BOOL, 0, 1, "false", "use true or false",
				      "true|false",
				      "synchronous modes: only standbys outside the leader's [node] region are made\n"
				      "synchronous, so losing the leader's whole region loses no acknowledged commit\n"
				      "(a failover then promotes one of them: docs/TWO_REGIONS.md). No such standby\n"
				      "streaming: as none available (on: asynchronous meanwhile; strict: writes wait)."},
	[DYNCFG_MAX_LAG] = {"maximum_lag_on_failover", DYNCFG_INT, 0, DYNCFG_MAX_LAG_MAX, DYNCFG_MAX_LAG_DEFAULT,
			    "use a number of bytes from 0 to 2147483647", "bytes",
			    "asynchronous mode: a standby further behind the leader is never promoted"},
	[DYNCFG_TTL] = {"ttl", DYNCFG_DURATION, DYNCFG_TTL_MIN_MS, DYNCFG_TTL_MAX_MS, DYNCFG_TTL_DEFAULT, NULL,
			"DURATION",
			"leader lease (default 9s; 10 = seconds, or 10s, 500ms, 2m); each lease takes it at its\n"
			"next renewal. ttl >= loop_wait + 2 * retry_timeout must hold."},
	[DYNCFG_LOOP_WAIT] = {"loop_wait", DYNCFG_DURATION, DYNCFG_LOOP_WAIT_MIN_MS, DYNCFG_LOOP_WAIT_MAX_MS,
			      DYNCFG_LOOP_WAIT_DEFAULT, NULL, "DURATION", "longest sleep of the HA loop (default 1s)"},
	[DYNCFG_RETRY_TIMEOUT] = {"retry_timeout", DYNCFG_DURATION, DYNCFG_RETRY_TIMEOUT_MIN_MS,
				  DYNCFG_RETRY_TIMEOUT_MAX_MS, DYNCFG_RETRY_TIMEOUT_DEFAULT, NULL, "DURATION",
				  "how long one etcd call retries (default 3s; not below a member's [etcd] request_timeout)"},
	[DYNCFG_PAUSE] = {"pause", DYNCFG_BOOL, 0, 1, "false", "use true or false (or `pgha ctl pause` / `resume`)",
			  NULL, "maintenance mode: no automatic failover, no demotion"},
};

const struct dyncfg_setting *dyncfg_setting_find(const char *key, size_t len)
{
	for (size_t i = 0; i < DYNCFG_N; i++)
		if (strlen(dyncfg_settings[i].key) == len && strncmp(dyncfg_settings[i].key, key, len) == 0)
			return &dyncfg_settings[i];
	return NULL;
}

/* A scalar as the text an operator would type: "on", "3", "quorum" (caller frees); NULL if not one. */
static char *scalar_text(const json_t *v)
{
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return xasprintf("%lld", (long long)json_integer_value(v));
	if (json_is_boolean(v))
		return xstrdup(json_is_true(v) ? "on" : "off");
	return NULL;
}

static bool parse_mode(const json_t *v, long long *out)
{
	enum sync_mode m;
	char *text = scalar_text(v);
	/* The strings "true" and "false" are not modes: only a JSON boolean says on/off. */
	bool ok = text != NULL && sync_mode_parse(text, &m) == 0 &&
		  (!json_is_string(v) || (strcasecmp(text, "true") != 0 && strcasecmp(text, "false") != 0));
	free(text);
	if (ok)
		*out = m;
	return ok;
}

static bool parse_int(const json_t *v, long long min, long long max, long long *out)
{
	char *text = scalar_text(v), *end;
	if (text == NULL || json_is_boolean(v)) {
		free(text);
		return false;
	}
	errno = 0;
	long long x = strtoll(text, &end, 10);
	bool ok = text[0] != '\0' && *end == '\0' && errno == 0 && x >= min && x <= max;
	free(text);
	if (ok)
		*out = x;
	return ok;
}

static int parse_duration(const struct dyncfg_setting *s, const json_t *v, long long *out, struct pgha_err *e)
{
	long x = -1;
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 86400)
		x = (long)json_integer_value(v) * 1000;
	else if (json_is_string(v) && config_parse_duration_ms(json_string_value(v), &x) != 0)
		x = -1;
	if (x < 0)
		return err_set(e, "not a duration (examples: 10 for seconds, 10s, 500ms, 2m)");
	if (x < s->min || x > s->max)
		return err_set(e, "%ldms is out of range (%lldms to %lldms)", x, s->min, s->max);
	*out = x;
	return 0;
}

int dyncfg_setting_parse(enum dyncfg_id id, const json_t *v, long long *out, struct pgha_err *e)
{
	const struct dyncfg_setting *s = &dyncfg_settings[id];
	bool ok = false;
	switch (s->type) {
	case DYNCFG_BOOL:
		ok = json_is_boolean(v);
		if (ok)
			*out = json_is_true(v);
		break;
	case DYNCFG_MODE:
		ok = parse_mode(v, out);
		break;
	case DYNCFG_INT:
		ok = parse_int(v, s->min, s->max, out);
		break;
	case DYNCFG_DURATION:
		return parse_duration(s, v, out, e);
	}
	return ok ? 0 : err_set(e, "%s", s->use);
}

json_t *dyncfg_setting_json(enum dyncfg_id id, long long v)
{
	switch (dyncfg_settings[id].type) {
	case DYNCFG_BOOL:
		return json_boolean(v);
	case DYNCFG_MODE:
		return json_string(sync_mode_name((enum sync_mode)v));
	case DYNCFG_DURATION:
		return dyncfg_duration_json((long)v);
	case DYNCFG_INT:
		break;
	}
	return json_integer(v);
}

/* ---- the whole key ---------------------------------------------------------- */

static void problem(struct dyncfg *c, const struct pgha_err *why)
{
	if (!c->problem)
		c->first = *why;
	c->problem = true;
}

int dyncfg_from_json(const json_t *o, struct dyncfg *c, struct pgha_err *e)
{
	memset(c, 0, sizeof(*c));
	if (!json_is_object(o))
		return err_set(e, "the config must be a JSON object");
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)o, key, v) {
		if (json_is_null(v))
			continue;   /* null: not set */
		if (strcmp(key, "postgresql") == 0) {
			if (dyncfg_params(o, &c->params, &c->nparams, &c->params_why) != 0) {
				c->params_bad = true;
				problem(c, &c->params_why);
			}
			continue;
		}
		const struct dyncfg_setting *s = dyncfg_setting_find(key, strlen(key));
		if (s == NULL) {
			struct pgha_err u;
			struct strbuf keys = STRBUF_INIT;
			for (size_t i = 0; i < DYNCFG_N; i++)
				sb_printf(&keys, "%s, ", dyncfg_settings[i].key);
			err_set(&u, "unknown key \"%s\" (keys: %spostgresql.parameters)", key, sb_str(&keys));
			sb_free(&keys);
			problem(c, &u);
			continue;
		}
		enum dyncfg_id id = (enum dyncfg_id)(s - dyncfg_settings);
		if (dyncfg_setting_parse(id, v, &c->value[id], &c->why[id]) == 0) {
			c->set[id] = true;
			continue;
		}
		char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		err_wrap(&c->why[id], "%s = %s", key, t ? t : "?");
		free(t);
		c->bad[id] = true;
		problem(c, &c->why[id]);
	}
	return 0;
}

int dyncfg_decode(const char *text, struct dyncfg *c, struct pgha_err *e)
{
	memset(c, 0, sizeof(*c));
	if (text == NULL)
		return 0;
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	int rc = json_is_object(o) ? dyncfg_from_json(o, c, e)
				   : err_set(e, "%s", o ? "valid JSON, but another type" : jerr.text);
	json_decref(o);
	return rc;
}

void dyncfg_free(struct dyncfg *c)
{
	dyncfg_params_free(c->params, c->nparams);
	c->params = NULL;
	c->nparams = 0;
}

json_t *dyncfg_encode(const struct dyncfg *c)
{
	json_t *out = json_object();
	for (size_t i = 0; i < DYNCFG_N; i++)
		if (c->set[i])
			json_object_set_new(out, dyncfg_settings[i].key, dyncfg_setting_json((enum dyncfg_id)i, c->value[i]));
	if (c->nparams > 0) {
		json_t *p = json_object();
		for (size_t i = 0; i < c->nparams; i++)
			json_object_set_new(p, c->params[i].name, json_string(c->params[i].value));
		json_t *pg = json_object();
		json_object_set_new(pg, "parameters", p);
		json_object_set_new(out, "postgresql", pg);
	}
	return out;
}

/* The timing of c over the defaults; what c does not set is named in the error as counted at its default. */
static int timing_over_defaults(const struct dyncfg *c, struct pgha_err *e)
{
	long def[DYN_NTIMING], t[DYN_NTIMING];
	dyncfg_timing_defaults(def);
	if (dyncfg_timing(c, def, t, e) == 0)
		return 0;
	bool all = true;
	for (int k = 0; k < DYN_NTIMING; k++)
		all &= c->set[DYNCFG_TTL + k] || c->bad[DYNCFG_TTL + k];
	if (all)
		return -1;
	struct pgha_err sub = *e;
	return err_set(e, "%s\n(what the dynamic config does not set counts at its default here; each agent checks "
		       "again with its own file)", sub.msg);
}

json_t *dyncfg_normalize(const json_t *in, struct pgha_err *e)
{
	struct dyncfg c;
	json_t *out = NULL;
	if (dyncfg_from_json(in, &c, e) != 0)
		return NULL;
	if (c.problem)
		*e = c.first;
	else if (timing_over_defaults(&c, e) == 0)
		out = dyncfg_encode(&c);
	dyncfg_free(&c);
	return out;
}

int dyncfg_check_timing(const json_t *cfg, struct pgha_err *e)
{
	struct dyncfg c;
	if (dyncfg_from_json(cfg, &c, e) != 0)
		return -1;
	int rc = timing_over_defaults(&c, e);
	dyncfg_free(&c);
	return rc;
}

bool dyncfg_paused(const char *text)
{
	struct dyncfg c;
	struct pgha_err e;
	bool paused = dyncfg_decode(text, &c, &e) == 0 && c.set[DYNCFG_PAUSE] && c.value[DYNCFG_PAUSE];
	dyncfg_free(&c);
	return paused;
}

json_t *dyncfg_object(const char *text)
{
	json_error_t jerr;
	json_t *o = text ? json_loads(text, 0, &jerr) : NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		o = json_object();
	}
	return o;
}

int dyncfg_view_sync(const struct cluster_view *v, struct sync_state *s, enum sync_mode *mode)
{
	struct dyncfg c;
	struct pgha_err e;
	enum sync_mode m = SYNC_OFF;
	if (dyncfg_decode(v->config, &c, &e) == 0 && c.set[DYNCFG_SYNC_MODE])
		m = (enum sync_mode)c.value[DYNCFG_SYNC_MODE];
	dyncfg_free(&c);
	if (mode)
		*mode = m;
	if (m == SYNC_OFF || v->sync == NULL || sync_state_decode(v->sync, s, &e) != 0)
		return 0;
	return 1;
}

/* ---- timing ----------------------------------------------------------------- */

int dyncfg_timing_check(long ttl_ms, long loop_wait_ms, long retry_timeout_ms, struct pgha_err *e)
{
	/*
	 * The leader must be able to notice a failed renewal and demote before its
	 * lease runs out: one loop plus a retry window on each side of it.
	 */
	if (loop_wait_ms + 2 * retry_timeout_ms > ttl_ms)
		return err_set(e, "ttl (%ldms) must be at least loop_wait + 2 * retry_timeout (%ldms + 2 * %ldms)"
			       "\nHINT: raise ttl or lower loop_wait/retry_timeout", ttl_ms, loop_wait_ms,
			       retry_timeout_ms);
	return 0;
}

const char *dyncfg_timing_name(enum dyncfg_timing_key k)
{
	return (unsigned)k < DYN_NTIMING ? dyncfg_settings[DYNCFG_TTL + k].key : "?";
}

int dyncfg_timing_find(const char *name)
{
	for (int k = 0; k < DYN_NTIMING; k++)
		if (strcmp(name, dyncfg_settings[DYNCFG_TTL + k].key) == 0)
			return k;
	return -1;
}

int dyncfg_duration(enum dyncfg_timing_key k, const json_t *v, long *ms, struct pgha_err *e)
{
	long long x;
	if (parse_duration(&dyncfg_settings[DYNCFG_TTL + k], v, &x, e) != 0)
		return -1;
	*ms = (long)x;
	return 0;
}

json_t *dyncfg_duration_json(long ms)
{
	if (ms % 1000 == 0)
		return json_integer(ms / 1000);
	char buf[32];
	snprintf(buf, sizeof(buf), "%ldms", ms);
	return json_string(buf);
}

void dyncfg_timing_defaults(long out[DYN_NTIMING])
{
	for (int k = 0; k < DYN_NTIMING; k++)
		if (config_parse_duration_ms(dyncfg_settings[DYNCFG_TTL + k].def, &out[k]) != 0)
			abort();   /* a built-in default that does not parse: a bug */
}

int dyncfg_timing(const struct dyncfg *c, const long base[DYN_NTIMING], long out[DYN_NTIMING], struct pgha_err *e)
{
	for (int k = 0; k < DYN_NTIMING; k++) {
		enum dyncfg_id id = DYNCFG_TTL + k;
		if (c->bad[id]) {
			*e = c->why[id];
			return -1;
		}
		out[k] = c->set[id] ? (long)c->value[id] : base[k];
	}
	return dyncfg_timing_check(out[DYN_TTL], out[DYN_LOOP_WAIT], out[DYN_RETRY_TIMEOUT], e);
}

/* ---- PostgreSQL parameters ------------------------------------------------- */

int dyncfg_param(const char *name, const json_t *v, char **text, struct pgha_err *e)
{
	if (!pg_param_name_ok(name))
		return err_set(e, "\"%s\" is not a PostgreSQL parameter name (letters, digits, _ and .)", name);
	const char *hint = pg_param_managed(name);
	if (hint != NULL)
		return err_set(e, "%s is managed by pgha and cannot be set\nHINT: %s", name, hint);
	if (json_is_string(v)) {
		if (strlen(json_string_value(v)) != json_string_length(v))
			return err_set(e, "%s: the value holds a NUL byte", name);
		*text = xstrdup(json_string_value(v));
	} else if (json_is_boolean(v)) {
		*text = xstrdup(json_is_true(v) ? "on" : "off");
	} else if (json_is_number(v)) {
		*text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		if (*text == NULL)
			abort();   /* only on out-of-memory */
	} else {
		return err_set(e, "%s: give a string, a number or a boolean", name);
	}
	if (strpbrk(*text, "\n\r") != NULL) {
		free(*text);
		*text = NULL;
		return err_set(e, "%s: a value cannot span lines", name);
	}
	return 0;
}

static int param_cmp(const void *x, const void *y)
{
	return strcasecmp(((const struct pg_param *)x)->name, ((const struct pg_param *)y)->name);
}

int dyncfg_params(const json_t *cfg, struct pg_param **out, size_t *n, struct pgha_err *e)
{
	*out = NULL;
	*n = 0;
	json_t *pg = json_is_object(cfg) ? json_object_get(cfg, "postgresql") : NULL;
	if (pg == NULL || json_is_null(pg))
		return 0;
	if (!json_is_object(pg))
		return err_set(e, "postgresql: expected an object like {\"parameters\": {\"work_mem\": \"8MB\"}}");
	const char *key;
	json_t *v;
	json_object_foreach(pg, key, v) {
		if (strcmp(key, "parameters") != 0)
			return err_set(e, "postgresql.%s: unknown key (only postgresql.parameters)", key);
	}
	json_t *params = json_object_get(pg, "parameters");
	if (params == NULL || json_is_null(params))
		return 0;
	if (!json_is_object(params))
		return err_set(e, "postgresql.parameters: expected an object of name: value");
	struct pg_param *p = xcalloc(json_object_size(params) + 1, sizeof(*p));
	size_t k = 0;
	json_object_foreach(params, key, v) {
		if (json_is_null(v))
			continue;
		char *text = NULL;
		if (dyncfg_param(key, v, &text, e) != 0) {
			dyncfg_params_free(p, k);
			return err_wrap(e, "postgresql.parameters");
		}
		for (size_t i = 0; i < k; i++) {
			if (strcasecmp(p[i].name, key) == 0) {
				free(text);
				dyncfg_params_free(p, k);
				return err_set(e, "postgresql.parameters: %s is given twice", key);
			}
		}
		p[k].name = xstrdup(key);
		p[k].value = text;
		k++;
	}
	qsort(p, k, sizeof(*p), param_cmp);
	*out = p;
	*n = k;
	return 0;
}

void dyncfg_params_merge(const struct pg_param *base, size_t nbase, const struct pg_param *over, size_t nover,
			 struct pg_param **out, size_t *n)
{
	struct pg_param *p = xcalloc(nbase + nover + 1, sizeof(*p));
	size_t k = 0;
	for (size_t i = 0; i < nbase; i++) {
		const struct pg_param *src = &base[i];
		for (size_t j = 0; j < nover; j++)
			if (strcasecmp(over[j].name, base[i].name) == 0)
				src = &over[j];
		p[k].name = xstrdup(src->name);
		p[k].value = xstrdup(src->value);
		k++;
	}
	for (size_t j = 0; j < nover; j++) {
		bool in_base = false;
		for (size_t i = 0; i < nbase && !in_base; i++)
			in_base = strcasecmp(over[j].name, base[i].name) == 0;
		if (in_base)
			continue;
		p[k].name = xstrdup(over[j].name);
		p[k].value = xstrdup(over[j].value);
		k++;
	}
	*out = p;
	*n = k;
}

bool dyncfg_params_equal(const struct pg_param *a, size_t na, const struct pg_param *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].value, b[i].value) != 0)
			return false;
	return true;
}

void dyncfg_params_free(struct pg_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

int dyncfg_write_pause(struct etcd_client *c, const char *key, bool pause, struct pgha_err *e)
{
	/* Read-modify-write under a compare on the revision: other settings are kept. */
	for (int attempt = 0; attempt < 5; attempt++) {
		struct etcd_kvs kvs = {0};
		if (etcd_get(c, key, &kvs, e) != 0)
			return -1;
		const struct etcd_kv *kv = etcd_kvs_find(&kvs, key);
		json_t *cfg = dyncfg_object(kv ? kv->value : NULL);
		json_object_set_new(cfg, "pause", dyncfg_setting_json(DYNCFG_PAUSE, pause));
		char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(cfg);
		struct etcd_cmp cmp = {.key = key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
				       .number = kv ? kv->mod_revision : 0};
		struct etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = text};
		bool ok = false;
		int r = etcd_txn(c, &cmp, 1, &put, 1, NULL, 0, &ok, NULL, e);
		free(text);
		etcd_kvs_free(&kvs);
		if (r != 0)
			return -1;
		if (ok)
			return 0;
	}
	return err_set(e, "the config key kept changing; try again");
}
