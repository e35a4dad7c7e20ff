/*
 * dyncfg.c — timing and PostgreSQL parameters of the dynamic config key
 * (see dyncfg.h). The agent's option table takes its ranges and defaults
 * from dyncfg.h, so the file and the key accept the same values.
 */
#include "cluster/dyncfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/strbuf.h"

static const struct {
	const char *name, *def;
	long min, max;
} timings[DYN_NTIMING] = {
	[DYN_TTL] = {"ttl", CLUSTER_TTL_DEFAULT, CLUSTER_TTL_MIN_MS, CLUSTER_TTL_MAX_MS},
	[DYN_LOOP_WAIT] = {"loop_wait", CLUSTER_LOOP_WAIT_DEFAULT, CLUSTER_LOOP_WAIT_MIN_MS, CLUSTER_LOOP_WAIT_MAX_MS},
	[DYN_RETRY_TIMEOUT] = {"retry_timeout", CLUSTER_RETRY_TIMEOUT_DEFAULT, CLUSTER_RETRY_TIMEOUT_MIN_MS,
			       CLUSTER_RETRY_TIMEOUT_MAX_MS},
};

int cluster_timing_check(long ttl_ms, long loop_wait_ms, long retry_timeout_ms, struct pgha_err *e)
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
	return (unsigned)k < DYN_NTIMING ? timings[k].name : "?";
}

int dyncfg_timing_find(const char *name)
{
	for (int k = 0; k < DYN_NTIMING; k++)
		if (strcmp(name, timings[k].name) == 0)
			return k;
	return -1;
}

int dyncfg_duration(enum dyncfg_timing_key k, const json_t *v, long *ms, struct pgha_err *e)
{
	long x = -1;
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 86400)
		x = (long)json_integer_value(v) * 1000;
	else if (json_is_string(v) && config_parse_duration_ms(json_string_value(v), &x) != 0)
		x = -1;
	if (x < 0)
		return err_set(e, "not a duration (examples: 10 for seconds, 10s, 500ms, 2m)");
	if (x < timings[k].min || x > timings[k].max)
		return err_set(e, "%ldms is out of range (%ldms to %ldms)", x, timings[k].min, timings[k].max);
	*ms = x;
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
		if (config_parse_duration_ms(timings[k].def, &out[k]) != 0)
			abort();   /* a built-in default that does not parse: a bug */
}

int dyncfg_timing(const json_t *cfg, const long base[DYN_NTIMING], long out[DYN_NTIMING], bool set[DYN_NTIMING],
		  struct pgha_err *e)
{
	for (int k = 0; k < DYN_NTIMING; k++) {
		json_t *v = json_is_object(cfg) ? json_object_get(cfg, timings[k].name) : NULL;
		out[k] = base[k];
		if (set)
			set[k] = v != NULL && !json_is_null(v);
		if (v == NULL || json_is_null(v))
			continue;
		if (dyncfg_duration((enum dyncfg_timing_key)k, v, &out[k], e) != 0) {
			char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			err_wrap(e, "%s = %s", timings[k].name, t ? t : "?");
			free(t);
			return -1;
		}
	}
	return cluster_timing_check(out[DYN_TTL], out[DYN_LOOP_WAIT], out[DYN_RETRY_TIMEOUT], e);
}

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
