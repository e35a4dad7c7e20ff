/*
 * ctl_set.c — `pgha ctl set KEY=VALUE...`: change the cluster's dynamic
 * config (the `config` key every agent reads each loop). Values are checked
 * here, so a typo never reaches the agents; the change is a read-modify-write
 * under a compare on the key's revision, so other settings (pause) are kept.
 * The check, the summary of changes, the confirmation and the write are
 * shared with `ctl edit-config` (ctl_edit.c): ctl_config_change().
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/ctl_int.h"
#include "cluster/dyncfg.h"
#include "cluster/sync_key.h"
#include "common/strbuf.h"
#include "common/util.h"

#define PARAM_PREFIX "postgresql.parameters."

struct setting {
	const char *key;
	const char *values;     /* for the usage text */
	const char *help;
	/* Check a value (KEY=VALUE text comes as a JSON string); the JSON to store, or NULL and e says why. */
	json_t *(*parse)(const struct setting *s, const json_t *v, struct pgha_err *e);
	int arg;                /* timing keys: enum dyncfg_timing_key */
};

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

static json_t *parse_mode(const struct setting *s, const json_t *v, struct pgha_err *e)
{
	enum sync_mode m;
	char *text = scalar_text(v);
	bool ok = text != NULL && sync_mode_parse(text, &m) == 0 &&
		  (!json_is_string(v) || (strcasecmp(text, "true") != 0 && strcasecmp(text, "false") != 0));
	free(text);
	if (!ok) {
		err_set(e, "use off, on, quorum or strict");
		return NULL;
	}
	return json_string(sync_mode_name(m));
}

static json_t *parse_int(const json_t *v, long long min, long long max)
{
	char *text = scalar_text(v), *end;
	if (text == NULL || json_is_boolean(v)) {
		free(text);
		return NULL;
	}
	errno = 0;
	long long x = strtoll(text, &end, 10);
	bool ok = text[0] != '\0' && *end == '\0' && errno == 0 && x >= min && x <= max;
	free(text);
	return ok ? json_integer(x) : NULL;
}

static json_t *parse_count(const struct setting *s, const json_t *v, struct pgha_err *e)
{
	json_t *j = parse_int(v, 1, SYNC_MAX);
	if (j == NULL)
		err_set(e, "use a whole number from 1 to 16");
	return j;
}

static json_t *parse_lag(const struct setting *s, const json_t *v, struct pgha_err *e)
{
	json_t *j = parse_int(v, 0, 2147483647);
	if (j == NULL)
		err_set(e, "use a number of bytes from 0 to 2147483647");
	return j;
}

static json_t *parse_timing(const struct setting *s, const json_t *v, struct pgha_err *e)
{
	long ms;
	if (dyncfg_duration((enum dyncfg_timing_key)s->arg, v, &ms, e) != 0)
		return NULL;
	return dyncfg_duration_json(ms);
}

static json_t *parse_pause(const struct setting *s, const json_t *v, struct pgha_err *e)
{
	if (!json_is_boolean(v)) {
		err_set(e, "use true or false (or `pgha ctl pause` / `resume`)");
		return NULL;
	}
	return json_boolean(json_is_true(v));
}

static const struct setting settings[] = {
	{"synchronous_mode", "off|on|quorum|strict",
	 "off: asynchronous; on: one synchronous standby (asynchronous while none is available);\n"
	 "quorum: ANY synchronous_node_count of the standbys; strict: one synchronous standby,\n"
	 "writes wait while none is available. In every mode but off only a synchronous standby\n"
	 "is promoted, so no acknowledged commit is lost.", parse_mode, 0},
	{"synchronous_node_count", "1..16",
	 "quorum mode: how many standbys must confirm each commit (default 1)", parse_count, 0},
	{"maximum_lag_on_failover", "bytes",
	 "asynchronous mode: a standby further behind the leader is never promoted", parse_lag, 0},
	{"ttl", "DURATION",
	 "leader lease (default 9s; 10 = seconds, or 10s, 500ms, 2m); each lease takes it at its\n"
	 "next renewal. ttl >= loop_wait + 2 * retry_timeout must hold.", parse_timing, DYN_TTL},
	{"loop_wait", "DURATION", "longest sleep of the HA loop (default 1s)", parse_timing, DYN_LOOP_WAIT},
	{"retry_timeout", "DURATION",
	 "how long one etcd call retries (default 3s; not below a member's [etcd] request_timeout)",
	 parse_timing, DYN_RETRY_TIMEOUT},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* `pause` is only for edit-config (ctl pause/resume set it otherwise). */
static const struct setting pause_setting = {"pause", "true|false", "", parse_pause, 0};

static int usage(FILE *out)
{
	fprintf(out, "Usage: pgha ctl set KEY=VALUE [KEY=VALUE...] [--force]\n\n"
		     "Change the cluster's dynamic config in etcd; every agent applies it within a loop.\n"
		     "Asks for confirmation unless --force, then prints what changed.\n\nKeys:\n");
	for (size_t i = 0; i < NSETTINGS; i++) {
		fprintf(out, "  %s=%s\n", settings[i].key, settings[i].values);
		const char *h = settings[i].help;
		while (*h) {
			size_t n = strcspn(h, "\n");
			fprintf(out, "      %.*s\n", (int)n, h);
			h += n + (h[n] == '\n');
		}
	}
	fprintf(out, "  " PARAM_PREFIX "NAME=VALUE\n"
		     "      a PostgreSQL setting for every member, over the [parameters] of their files;\n"
		     "      written to pgha.conf and reloaded. One that needs a restart shows as pending\n"
		     "      in `pgha ctl list` until `pgha ctl restart --pending`. NAME= (empty) removes it.\n"
		     "      Refused for the settings pgha manages (port, listen_addresses, primary_conninfo,\n"
		     "      synchronous_standby_names, hot_standby, ...).\n"
		     "\nSee also `pgha ctl edit-config` to change several at once in an editor.\n");
	return out == stdout ? 0 : 2;
}

static const struct setting *find_setting(const char *key, size_t klen)
{
	for (size_t k = 0; k < NSETTINGS; k++)
		if (strlen(settings[k].key) == klen && strncmp(settings[k].key, key, klen) == 0)
			return &settings[k];
	if (strlen(pause_setting.key) == klen && strncmp(pause_setting.key, key, klen) == 0)
		return &pause_setting;
	return NULL;
}

static void print_keys(FILE *out)
{
	for (size_t k = 0; k < NSETTINGS; k++)
		fprintf(out, "%s%s", k ? ", " : "", settings[k].key);
	fprintf(out, ", " PARAM_PREFIX "<name>\n");
}

/* ---- the config object: check, summary of changes -------------------------- */

/* parent[key] if it is an object; else a new empty one put there if asked, or NULL. */
static json_t *child_object(json_t *parent, const char *key, bool create)
{
	json_t *o = parent ? json_object_get(parent, key) : NULL;
	if (json_is_object(o) || !create || parent == NULL)
		return json_is_object(o) ? o : NULL;
	o = json_object();
	json_object_set_new(parent, key, o);
	return o;
}

/* The "postgresql": {"parameters": {...}} object of cfg, created if asked. */
static json_t *params_object(json_t *cfg, bool create)
{
	return child_object(child_object(cfg, "postgresql", create), "parameters", create);
}

/* Drop an empty parameters object (and postgresql with it). */
static void params_tidy(json_t *cfg)
{
	json_t *pg = json_object_get(cfg, "postgresql");
	json_t *p = json_is_object(pg) ? json_object_get(pg, "parameters") : NULL;
	if (json_is_object(p) && json_object_size(p) == 0)
		json_object_del(pg, "parameters");
	if (json_is_object(pg) && json_object_size(pg) == 0)
		json_object_del(cfg, "postgresql");
}

int ctl_config_check_timing(const json_t *cfg, struct pgha_err *e)
{
	long def[DYN_NTIMING], t[DYN_NTIMING];
	bool set[DYN_NTIMING];
	dyncfg_timing_defaults(def);
	if (dyncfg_timing(cfg, def, t, set, e) == 0)
		return 0;
	if (set[DYN_TTL] && set[DYN_LOOP_WAIT] && set[DYN_RETRY_TIMEOUT])
		return -1;
	struct pgha_err sub = *e;
	return err_set(e, "%s\n(what the dynamic config does not set counts at its default here; each agent checks "
		       "again with its own file)", sub.msg);
}

json_t *ctl_config_normalize(const json_t *in, struct pgha_err *e)
{
	if (!json_is_object(in)) {
		err_set(e, "the config must be a JSON object");
		return NULL;
	}
	json_t *out = json_object();
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)in, key, v) {
		if (json_is_null(v))
			continue;   /* null: not set */
		if (strcmp(key, "postgresql") == 0) {
			struct pg_param *p = NULL;
			size_t n = 0;
			if (dyncfg_params(in, &p, &n, e) != 0)
				goto fail;
			json_t *po = n > 0 ? params_object(out, true) : NULL;
			for (size_t i = 0; i < n; i++)
				json_object_set_new(po, p[i].name, json_string(p[i].value));
			dyncfg_params_free(p, n);
			continue;
		}
		const struct setting *s = find_setting(key, strlen(key));
		if (s == NULL) {
			err_set(e, "unknown key \"%s\" (keys: pause, synchronous_mode, synchronous_node_count, "
				"maximum_lag_on_failover, ttl, loop_wait, retry_timeout, postgresql.parameters)", key);
			goto fail;
		}
		json_t *nv = s->parse(s, v, e);
		if (nv == NULL) {
			char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			err_wrap(e, "%s = %s", key, t ? t : "?");
			free(t);
			goto fail;
		}
		json_object_set_new(out, key, nv);
	}
	if (ctl_config_check_timing(out, e) != 0)
		goto fail;
	return out;
fail:
	json_decref(out);
	return NULL;
}

static char *show(const json_t *v)
{
	if (v == NULL)
		return xstrdup("(default)");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	return t ? t : xstrdup("?");
}

static void diff_line(struct strbuf *sb, const char *key, const json_t *a, const json_t *b)
{
	if (a != NULL && b != NULL && json_equal((json_t *)a, (json_t *)b))
		return;
	char *x = show(a), *y = show(b);
	sb_printf(sb, "  %s: %s -> %s\n", key, x, y);
	free(x);
	free(y);
}

/* The differences between two objects (keys named prefix + key), but for the key `skip`. */
static void diff_objects(struct strbuf *sb, const json_t *old, const json_t *new, const char *prefix,
			 const char *skip)
{
	const char *key;
	json_t *v;
	for (int pass = 0; pass < 2; pass++) {
		/* Pass 0: every key of old (changed or gone); pass 1: the keys only new has. */
		json_object_foreach((json_t *)(pass ? new : old), key, v) {
			json_t *other = json_object_get(pass ? old : new, key);
			if ((skip && strcmp(key, skip) == 0) || (pass && other != NULL))
				continue;
			char *k = xasprintf("%s%s", prefix, key);
			diff_line(sb, k, pass ? NULL : v, pass ? v : other);
			free(k);
		}
	}
}

/* One "  key: old -> new" line per difference; parameters as postgresql.parameters.<name>. */
static void config_diff(const json_t *old, const json_t *new, struct strbuf *sb)
{
	diff_objects(sb, old, new, "", "postgresql");
	json_t *empty = json_object();
	json_t *po = params_object((json_t *)old, false), *pn = params_object((json_t *)new, false);
	diff_objects(sb, po ? po : empty, pn ? pn : empty, PARAM_PREFIX, NULL);
	json_decref(empty);
}

int ctl_config_change(const struct ctl_target *t, const char *cmd, ctl_config_edit_fn edit, void *arg, bool force,
		      int attempts)
{
	struct pgha_err e = {{0}};
	int64_t t0 = now_ms();
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL) {
		fprintf(stderr, "pgha ctl %s: %s\n", cmd, e.msg);
		return 1;
	}
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sconfig", prefix);
	struct strbuf what = STRBUF_INIT;
	bool asked = false, raced = false;
	int rc = 1;
	/* Read-modify-write under a compare on the revision; a concurrent change makes us read again. */
	for (int attempt = 0; attempt < attempts; attempt++) {
		struct etcd_kvs kvs = {0};
		if (etcd_get(c, key, &kvs, &e) != 0)
			break;
		const struct etcd_kv *kv = etcd_kvs_find(&kvs, key);
		json_t *old = ctl_config_json(kv);
		json_t *cfg = json_deep_copy(old);
		int r = edit(&cfg, arg, &e);
		if (r != 0) {
			fprintf(stderr, "pgha ctl %s: %s\n", cmd, e.msg);
			json_decref(old);
			json_decref(cfg);
			etcd_kvs_free(&kvs);
			rc = r;
			goto out;
		}
		sb_reset(&what);
		config_diff(old, cfg, &what);
		json_decref(old);
		if (what.len == 0) {
			printf("nothing to change: the cluster config already says so\n");
			json_decref(cfg);
			etcd_kvs_free(&kvs);
			rc = 0;
			goto out;
		}
		if (!asked) {
			char *q = xasprintf("Change the config of cluster %s:\n%sApply?", t->cluster, sb_str(&what));
			bool yes = ctl_confirm(q, force);
			free(q);
			asked = true;
			if (!yes) {
				json_decref(cfg);
				etcd_kvs_free(&kvs);
				fprintf(stderr, "pgha ctl %s: not changed\n", cmd);
				goto out;
			}
			t0 = now_ms();
		}
		bool ok = false;
		r = ctl_config_put_cas(c, key, kv, cfg, &ok, &e);
		json_decref(cfg);
		etcd_kvs_free(&kvs);
		if (r != 0)
			break;
		if (ok) {
			printf("changed (%.2f s; every agent applies it within a loop):\n%s", (double)(now_ms() - t0) / 1000.0,
			       sb_str(&what));
			rc = 0;
			goto out;
		}
		raced = true;
	}
	if (e.msg[0] != '\0')
		fprintf(stderr, "pgha ctl %s: %s\n", cmd, e.msg);
	else if (raced && attempts == 1)
		fprintf(stderr, "pgha ctl %s: the config changed in etcd meanwhile; nothing written\n"
			"HINT: run it again to start from the current config\n", cmd);
	else
		fprintf(stderr, "pgha ctl %s: the config key kept changing; try again\n", cmd);
out:
	sb_free(&what);
	free(key);
	free(prefix);
	etcd_free(c);
	return rc;
}

/* ---- ctl set ---------------------------------------------------------------- */

struct change {
	char *key;              /* a setting's key, or the parameter's name */
	bool param;
	json_t *value;          /* NULL: remove (a parameter set to "") */
};

/* One KEY=VALUE into a change; 0, or 2 after saying why. */
static int parse_change(const char *arg, struct change *ch)
{
	const char *eq = strchr(arg, '=');
	if (arg[0] == '-' || eq == NULL || eq == arg) {
		fprintf(stderr, "pgha ctl set: \"%s\": expected KEY=VALUE (e.g. synchronous_mode=on)\n", arg);
		return 2;
	}
	size_t klen = (size_t)(eq - arg);
	const char *text = eq + 1;
	struct pgha_err e;
	if (klen > strlen(PARAM_PREFIX) && strncmp(arg, PARAM_PREFIX, strlen(PARAM_PREFIX)) == 0) {
		ch->key = xstrndup(arg + strlen(PARAM_PREFIX), klen - strlen(PARAM_PREFIX));
		ch->param = true;
		if (text[0] == '\0')
			return 0;   /* remove it */
		json_t *v = json_string(text);
		char *norm = NULL;
		int r = v ? dyncfg_param(ch->key, v, &norm, &e) : err_set(&e, "the value is not valid UTF-8");
		json_decref(v);
		if (r != 0) {
			fprintf(stderr, "pgha ctl set: " PARAM_PREFIX "%s: %s\n", ch->key, e.msg);
			return 2;
		}
		ch->value = json_string(norm);
		free(norm);
		return 0;
	}
	const struct setting *s = find_setting(arg, klen);
	if (s == NULL || s == &pause_setting) {
		fprintf(stderr, "pgha ctl set: unknown key \"%.*s\"; keys: ", (int)klen, arg);
		print_keys(stderr);
		if (s == &pause_setting)
			fprintf(stderr, "HINT: `pgha ctl pause` / `pgha ctl resume`\n");
		return 2;
	}
	ch->key = xstrdup(s->key);
	json_t *v = json_string(text);
	ch->value = v ? s->parse(s, v, &e) : NULL;
	json_decref(v);
	if (ch->value == NULL) {
		fprintf(stderr, "pgha ctl set: %s = \"%s\": %s\n", s->key, text, v ? e.msg : "not valid UTF-8");
		return 2;
	}
	return 0;
}

struct set_args {
	struct change *ch;
	size_t n;
};

static int apply_set(json_t **cfg, void *arg, struct pgha_err *e)
{
	const struct set_args *sa = arg;
	for (size_t i = 0; i < sa->n; i++) {
		const struct change *ch = &sa->ch[i];
		if (!ch->param) {
			json_object_set(*cfg, ch->key, ch->value);
			continue;
		}
		json_t *p = params_object(*cfg, ch->value != NULL);
		if (ch->value != NULL)
			json_object_set(p, ch->key, ch->value);
		else if (p != NULL)
			json_object_del(p, ch->key);
	}
	params_tidy(*cfg);
	return ctl_config_check_timing(*cfg, e) == 0 ? 0 : 2;
}

int ctl_cmd_set(const struct ctl_target *t, int argc, char **argv)
{
	struct change *ch = xcalloc((size_t)argc + 1, sizeof(*ch));
	size_t n = 0;
	bool force = false;
	int rc = 0;
	for (int i = 1; i < argc && rc == 0; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
			force = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			rc = usage(stdout) == 0 ? -1 : 2;
		} else if ((rc = parse_change(argv[i], &ch[n])) == 0) {
			for (size_t k = 0; k < n && rc == 0; k++) {
				if (ch[k].param == ch[n].param && strcasecmp(ch[k].key, ch[n].key) == 0) {
					fprintf(stderr, "pgha ctl set: %s%s is given twice\n", ch[n].param ? PARAM_PREFIX : "",
						ch[n].key);
					rc = 2;
				}
			}
			n++;
		} else {
			n++;   /* freed below */
		}
	}
	if (rc == 0 && n == 0) {
		fprintf(stderr, "pgha ctl set: nothing to set\n\n");
		rc = usage(stderr);
	}
	if (rc == 0) {
		struct set_args sa = {ch, n};
		rc = ctl_config_change(t, "set", apply_set, &sa, force, 5);
	}
	for (size_t i = 0; i < n; i++) {
		free(ch[i].key);
		json_decref(ch[i].value);
	}
	free(ch);
	return rc < 0 ? 0 : rc;
}
