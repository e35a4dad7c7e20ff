/*
 * ctl_set.c — `pgha ctl set KEY=VALUE...`: change the cluster's dynamic
 * config (the `config` key every agent reads each loop). Values are checked
 * here, so a typo never reaches the agents; the change is a read-modify-write
 * under a compare on the key's revision, so other settings (pause) are kept.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/ctl_int.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "ha/sync.h"

struct setting {
	const char *key;
	const char *values;     /* for the error message */
	const char *help;
	/* Check text; on success the JSON value to store. NULL and *why set on error. */
	json_t *(*parse)(const char *text, const char **why);
};

static json_t *parse_mode(const char *text, const char **why)
{
	enum sync_mode m;
	if (sync_mode_parse(text, &m) != 0 || strcasecmp(text, "true") == 0 || strcasecmp(text, "false") == 0) {
		*why = "use off, on, quorum or strict";
		return NULL;
	}
	return json_string(sync_mode_name(m));
}

static json_t *parse_int(const char *text, long long min, long long max, const char **why)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (text[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return NULL;
	(void)why;
	return json_integer(v);
}

static json_t *parse_count(const char *text, const char **why)
{
	json_t *j = parse_int(text, 1, SYNC_MAX, why);
	if (j == NULL)
		*why = "use a whole number from 1 to 16";
	return j;
}

static json_t *parse_lag(const char *text, const char **why)
{
	json_t *j = parse_int(text, 0, 2147483647, why);
	if (j == NULL)
		*why = "use a number of bytes from 0 to 2147483647";
	return j;
}

static const struct setting settings[] = {
	{"synchronous_mode", "off|on|quorum|strict",
	 "off: asynchronous; on: one synchronous standby (asynchronous while none is available);\n"
	 "quorum: ANY synchronous_node_count of the standbys; strict: one synchronous standby,\n"
	 "writes wait while none is available. In every mode but off only a synchronous standby\n"
	 "is promoted, so no acknowledged commit is lost.", parse_mode},
	{"synchronous_node_count", "1..16",
	 "quorum mode: how many standbys must confirm each commit (default 1)", parse_count},
	{"maximum_lag_on_failover", "bytes",
	 "asynchronous mode: a standby further behind the leader is never promoted", parse_lag},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

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
	return out == stdout ? 0 : 2;
}

struct change {
	const struct setting *s;
	json_t *value;
};

static char *show(json_t *v)
{
	if (v == NULL)
		return xstrdup("(default)");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	return t ? t : xstrdup("?");
}

/* Parse the arguments into changes; 0, or an exit code. */
static int parse_args(int argc, char **argv, struct change *ch, size_t *nch, bool *force)
{
	*nch = 0;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--force") == 0 || strcmp(arg, "-f") == 0) {
			*force = true;
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			return usage(stdout) == 0 ? -1 : 2;
		const char *eq = strchr(arg, '=');
		if (arg[0] == '-' || eq == NULL || eq == arg) {
			fprintf(stderr, "pgha ctl set: \"%s\": expected KEY=VALUE (e.g. synchronous_mode=on)\n", arg);
			return 2;
		}
		size_t klen = (size_t)(eq - arg);
		const struct setting *s = NULL;
		for (size_t k = 0; k < NSETTINGS; k++)
			if (strlen(settings[k].key) == klen && strncmp(settings[k].key, arg, klen) == 0)
				s = &settings[k];
		if (s == NULL) {
			fprintf(stderr, "pgha ctl set: unknown key \"%.*s\"; keys: ", (int)klen, arg);
			for (size_t k = 0; k < NSETTINGS; k++)
				fprintf(stderr, "%s%s", k ? ", " : "", settings[k].key);
			fprintf(stderr, "\n");
			return 2;
		}
		for (size_t k = 0; k < *nch; k++)
			if (ch[k].s == s) {
				fprintf(stderr, "pgha ctl set: %s is given twice\n", s->key);
				return 2;
			}
		const char *why = NULL;
		json_t *v = s->parse(eq + 1, &why);
		if (v == NULL) {
			fprintf(stderr, "pgha ctl set: %s = \"%s\": %s\n", s->key, eq + 1, why);
			return 2;
		}
		ch[*nch].s = s;
		ch[*nch].value = v;
		(*nch)++;
	}
	if (*nch == 0) {
		fprintf(stderr, "pgha ctl set: nothing to set\n\n");
		return usage(stderr);
	}
	return 0;
}

int ctl_cmd_set(const struct ctl_target *t, int argc, char **argv)
{
	struct change ch[NSETTINGS];
	size_t nch = 0;
	bool force = false;
	int rc = parse_args(argc, argv, ch, &nch, &force);
	if (rc != 0) {
		for (size_t i = 0; i < nch; i++)
			json_decref(ch[i].value);
		return rc < 0 ? 0 : rc;
	}
	struct pgha_err e = {{0}};
	rc = 1;
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL) {
		fprintf(stderr, "pgha ctl set: %s\n", e.msg);
		goto out;
	}
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sconfig", prefix);
	struct strbuf what = STRBUF_INIT;
	bool asked = false;
	/* Read-modify-write under a compare on the revision; a concurrent change makes us read again. */
	for (int attempt = 0; attempt < 5; attempt++) {
		struct etcd_kvs kvs = {0};
		if (etcd_get(c, key, &kvs, &e) != 0)
			break;
		const struct etcd_kv *kv = etcd_kvs_find(&kvs, key);
		json_t *cfg = ctl_config_json(kv);
		sb_reset(&what);
		for (size_t i = 0; i < nch; i++) {
			json_t *old = json_object_get(cfg, ch[i].s->key);
			if (old != NULL && json_equal(old, ch[i].value))
				continue;
			char *a = show(old), *b = show(ch[i].value);
			sb_printf(&what, "  %s: %s -> %s\n", ch[i].s->key, a, b);
			free(a);
			free(b);
			json_object_set(cfg, ch[i].s->key, ch[i].value);
		}
		if (what.len == 0) {
			printf("nothing to change: the cluster config already has %s\n", nch == 1 ? "this value" : "these values");
			json_decref(cfg);
			etcd_kvs_free(&kvs);
			rc = 0;
			break;
		}
		if (!asked) {
			char *q = xasprintf("Change the config of cluster %s:\n%sApply?", t->cluster, sb_str(&what));
			bool yes = ctl_confirm(q, force);
			free(q);
			asked = true;
			if (!yes) {
				json_decref(cfg);
				etcd_kvs_free(&kvs);
				break;
			}
		}
		bool ok = false;
		int r = ctl_config_put_cas(c, key, kv, cfg, &ok, &e);
		json_decref(cfg);
		etcd_kvs_free(&kvs);
		if (r != 0)
			break;
		if (ok) {
			printf("changed:\n%s", sb_str(&what));
			rc = 0;
			break;
		}
	}
	if (rc != 0 && asked && e.msg[0] == '\0')
		fprintf(stderr, "pgha ctl set: not changed\n");
	else if (rc != 0 && e.msg[0] != '\0')
		fprintf(stderr, "pgha ctl set: %s\n", e.msg);
	else if (rc != 0)
		fprintf(stderr, "pgha ctl set: the config key kept changing; try again\n");
	sb_free(&what);
	free(key);
	free(prefix);
	etcd_free(c);
out:
	for (size_t i = 0; i < nch; i++)
		json_decref(ch[i].value);
	return rc;
}
