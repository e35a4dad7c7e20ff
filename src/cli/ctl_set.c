/*
 * ctl_set.c — `pgha ctl set KEY=VALUE...`: change the cluster's dynamic
 * config (the `config` key every agent reads each loop). Values are checked
 * here against the config key's table (cluster/config_key.h), so a typo never
 * reaches the agents; the change is a read-modify-write under a compare on
 * the key's revision, so other settings (pause) are kept.
 * The check, the summary of changes, the confirmation and the write are
 * shared with `ctl edit-config` (ctl_edit.c): ctl_config_change().
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/ctl_int.h"
#include "cluster/config_key.h"
#include "common/strbuf.h"
#include "common/util.h"

#define PARAM_PREFIX "postgresql.parameters."

static int usage(FILE *out)
{
	fprintf(out, "Usage: pgha ctl set KEY=VALUE [KEY=VALUE...] [--force]\n\n"
		     "Change the cluster's dynamic config in etcd; every agent applies it within a loop.\n"
		     "Asks for confirmation unless --force, then prints what changed.\n\nKeys:\n");
	for (size_t i = 0; i < DYNCFG_N; i++) {
		const struct dyncfg_setting *s = &dyncfg_settings[i];
		if (s->values == NULL)
			continue;
		fprintf(out, "  %s=%s\n", s->key, s->values);
		const char *h = s->help;
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

static void print_keys(FILE *out)
{
	for (size_t k = 0; k < DYNCFG_N; k++)
		if (dyncfg_settings[k].values != NULL)
			fprintf(out, "%s, ", dyncfg_settings[k].key);
	fprintf(out, PARAM_PREFIX "<name>\n");
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
		json_t *old = dyncfg_object(kv ? kv->value : NULL);
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
	const struct dyncfg_setting *s = dyncfg_setting_find(arg, klen);
	if (s == NULL || s->values == NULL) {
		fprintf(stderr, "pgha ctl set: unknown key \"%.*s\"; keys: ", (int)klen, arg);
		print_keys(stderr);
		if (s != NULL)
			fprintf(stderr, "HINT: `pgha ctl pause` / `pgha ctl resume`\n");
		return 2;
	}
	ch->key = xstrdup(s->key);
	/* The key holds a JSON boolean: the words true and false are one here. */
	bool is_bool = s->type == DYNCFG_BOOL && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0);
	json_t *v = is_bool ? json_boolean(text[0] == 't') : json_string(text);
	long long x;
	int r = v ? dyncfg_setting_parse((enum dyncfg_id)(s - dyncfg_settings), v, &x, &e) : -1;
	json_decref(v);
	if (r != 0) {
		fprintf(stderr, "pgha ctl set: %s = \"%s\": %s\n", s->key, text, v ? e.msg : "not valid UTF-8");
		return 2;
	}
	ch->value = dyncfg_setting_json((enum dyncfg_id)(s - dyncfg_settings), x);
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
	return dyncfg_check_timing(*cfg, e) == 0 ? 0 : 2;
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
