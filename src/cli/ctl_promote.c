/*
 * ctl_promote.c — `pgha ctl promote-cluster`: make a standby cluster a
 * cluster of its own (the primary cluster's region is lost). It writes the
 * promoted key (cluster/promoted_key.h); the agents see it and the standby
 * leader promotes. Refused while a host of the primary cluster answers as a
 * running primary: two primaries would both take writes.
 *
 * `pgha ctl demote-cluster`, the other way: a promoted cluster follows the
 * cluster its [standby_cluster] names again (after a lost region came back
 * and the other one was promoted meanwhile). It deletes the promoted key; the
 * leader stops, is rewound onto the other cluster's history if it took writes
 * that cluster never got, and streams from it. Refused unless a host there
 * answers as a running primary: nothing would take writes.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl_int.h"
#include "cluster/backup_key.h"
#include "cluster/promoted_key.h"
#include "common/util.h"
#include "ha/agent_config.h"

static int usage(FILE *out)
{
	fprintf(out, "Usage: pgha ctl -c NODE.conf promote-cluster [--force] [--json]\n\n"
		     "Make this standby cluster ([standby_cluster] primary_hosts in NODE.conf, a member's\n"
		     "config) a cluster of its own: its standby leader promotes and takes writes, and\n"
		     "it stops replicating from the primary cluster. For when the primary cluster's\n"
		     "region is lost.\n\n"
		     "First every primary host is asked (a replication connection with the member's\n"
		     "replication user, `SHOW transaction_read_only`, 5 s each): if one answers as a\n"
		     "running primary, or answers in a way that does not tell, it is refused.\n"
		     "--force skips that check and the confirmation. The agents act on\n"
		     "<prefix>/<cluster>/promoted; deleting that key makes the cluster a standby\n"
		     "cluster again (its primary is then stopped).\n");
	return out == stdout ? 0 : 2;
}

struct probe {
	char host[256];
	int port;
	enum primary_probe r;
	char why[256];
};

static const char *probe_name(enum primary_probe r)
{
	return r == PROBE_PRIMARY ? "primary" : r == PROBE_NOT_PRIMARY ? "not primary" : "unknown";
}

/* Ask every primary host; *n of them in *out (caller frees). */
static void probe_all(const struct agent_config *cfg, const char *password, struct probe **out, size_t *n)
{
	struct pg_tls tls;
	agent_config_pg_tls(cfg, &tls);
	char *hosts = xstrdup(cfg->standby_hosts), *ports = xstrdup(cfg->standby_ports);
	char *hs = NULL, *ps = NULL;
	*out = NULL;
	*n = 0;
	for (char *h = strtok_r(hosts, ",", &hs), *p = strtok_r(ports, ",", &ps); h && p;
	     h = strtok_r(NULL, ",", &hs), p = strtok_r(NULL, ",", &ps)) {
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		struct probe *x = &(*out)[(*n)++];
		snprintf(x->host, sizeof(x->host), "%s", h);
		x->port = atoi(p);
		x->r = promoted_probe_primary(h, x->port, cfg->replication_user, password, &tls, x->why, sizeof(x->why));
	}
	free(hosts);
	free(ports);
}

static void print_json(const struct ctl_target *t, const struct probe *p, size_t n, bool promoted,
		       const struct promoted_rec *r)
{
	json_t *o = json_object(), *list = json_array();
	json_object_set_new(o, "cluster", json_string(t->cluster));
	json_object_set_new(o, "promoted", json_boolean(promoted));
	if (promoted && r != NULL) {
		json_object_set_new(o, "at", json_integer(r->at));
		json_object_set_new(o, "id", json_string(r->id));
	}
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_object();
		json_object_set_new(x, "host", json_string(p[i].host));
		json_object_set_new(x, "port", json_integer(p[i].port));
		json_object_set_new(x, "result", json_string(probe_name(p[i].r)));
		json_object_set_new(x, "detail", json_string(p[i].why));
		json_array_append_new(list, x);
	}
	json_object_set_new(o, "primary_hosts", list);
	char *s = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

/*
 * What promote-cluster and demote-cluster share: --force, --json, --help and a
 * member's config file. -1: go on (cfg loaded); else the exit code.
 */
static int cluster_cmd_start(const struct ctl_target *t, int argc, char **argv, const char *cmd,
			     int (*usage_fn)(FILE *), bool *force, bool *as_json, struct agent_config *cfg)
{
	*force = *as_json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0)
			*force = true;
		else if (strcmp(argv[i], "--json") == 0)
			*as_json = true;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return usage_fn(stdout);
		else {
			fprintf(stderr, "pgha ctl %s: unknown option \"%s\"\n", cmd, argv[i]);
			return usage_fn(stderr);
		}
	}
	if (t->config_path == NULL) {
		fprintf(stderr, "pgha ctl %s: needs a member's config file (the other cluster's hosts and the "
				"replication user are there)\nHINT: pgha ctl -c /etc/pgha/NODE.conf %s\n", cmd, cmd);
		return 2;
	}
	struct pgha_err e;
	if (agent_config_load(t->config_path, cfg, &e) != 0) {
		fprintf(stderr, "pgha ctl %s: %s\n", cmd, e.msg);
		agent_config_free(cfg);
		return 1;
	}
	return -1;
}

int ctl_cmd_promote_cluster(const struct ctl_target *t, int argc, char **argv)
{
	bool force, as_json;
	struct agent_config cfg;
	struct pgha_err e;
	int start = cluster_cmd_start(t, argc, argv, "promote-cluster", usage, &force, &as_json, &cfg);
	if (start >= 0)
		return start;
	int rc = 1;
	char *password = NULL, *prefix = NULL, *key = NULL, *value = NULL;
	struct probe *p = NULL;
	size_t n = 0;
	struct etcd_client *c = NULL;
	if (!agent_config_standby_cluster(&cfg)) {
		fprintf(stderr, "pgha ctl promote-cluster: %s: [standby_cluster] primary_hosts is not set: cluster %s "
				"is not a standby cluster\n", t->config_path, t->cluster);
		goto out;
	}
	if (read_secret_file(cfg.replication_password_file, &password, &e) != 0) {
		fprintf(stderr, "pgha ctl promote-cluster: [postgresql] replication_password_file: %s\n", e.msg);
		goto out;
	}
	probe_all(&cfg, password, &p, &n);
	for (size_t i = 0; i < n && !force; i++) {
		if (p[i].r == PROBE_NOT_PRIMARY)
			continue;
		if (as_json)
			print_json(t, p, n, false, NULL);
		if (p[i].r == PROBE_PRIMARY)
			fprintf(stderr, "pgha ctl promote-cluster: refused: %s:%d of the primary cluster is a running "
					"primary; promoting would make two primaries take writes\nHINT: stop the primary "
					"cluster first; if its clients cannot reach it any more, --force promotes anyway\n",
				p[i].host, p[i].port);
		else
			fprintf(stderr, "pgha ctl promote-cluster: refused: cannot tell whether %s:%d of the primary "
					"cluster is a running primary: %s\nHINT: fix the check (the replication user's "
					"password, TLS), or --force if you know it is not\n", p[i].host, p[i].port, p[i].why);
		goto out;
	}
	char q[512];
	snprintf(q, sizeof(q), "Promote standby cluster %s to a cluster of its own (it stops replicating from %s)?",
		 t->cluster, cfg.standby_primary_hosts);
	if (!ctl_confirm(q, force))
		goto out;
	if ((c = ctl_etcd(t, &e)) == NULL) {
		fprintf(stderr, "pgha ctl promote-cluster: %s\n", e.msg);
		goto out;
	}
	struct promoted_rec r = {.at = (int64_t)time(NULL)};
	char id[BACKUP_ID_MAX];
	backup_new_id(id);
	snprintf(r.by, sizeof(r.by), "ctl");
	snprintf(r.id, sizeof(r.id), "%s", id);
	prefix = ctl_cluster_prefix(t);
	key = xasprintf("%spromoted", prefix);
	value = promoted_encode(&r);
	if (etcd_put(c, key, value, 0, &e) != 0) {
		fprintf(stderr, "pgha ctl promote-cluster: writing %s: %s\n", key, e.msg);
		goto out;
	}
	if (as_json)
		print_json(t, p, n, true, &r);
	else
		printf("Standby cluster %s promoted (%s, id %s): its standby leader promotes now; `pgha ctl list` "
		       "shows it\n", t->cluster, key, r.id);
	rc = 0;
out:
	free(value);
	free(key);
	free(prefix);
	etcd_free(c);
	free(p);
	secret_free(password);
	agent_config_free(&cfg);
	return rc;
}

static int demote_usage(FILE *out)
{
	fprintf(out, "Usage: pgha ctl -c NODE.conf demote-cluster [--force] [--json]\n\n"
		     "Make this cluster (promoted earlier, with [standby_cluster] primary_hosts in NODE.conf)\n"
		     "a standby cluster of the cluster those hosts belong to: its leader stops, is rewound\n"
		     "onto that cluster's history if it took writes that cluster never got (they are\n"
		     "lost: pg_rewind discards them), and streams from it; its members follow. For when a\n"
		     "lost region comes back after the other one was promoted. No re-clone unless\n"
		     "pg_rewind fails.\n\n"
		     "Refused unless one of the primary hosts answers as a running primary (else nothing\n"
		     "would take writes); --force skips that check and the confirmation.\n");
	return out == stdout ? 0 : 2;
}

int ctl_cmd_demote_cluster(const struct ctl_target *t, int argc, char **argv)
{
	bool force, as_json;
	struct agent_config cfg;
	struct pgha_err e;
	int start = cluster_cmd_start(t, argc, argv, "demote-cluster", demote_usage, &force, &as_json, &cfg);
	if (start >= 0)
		return start;
	int rc = 1;
	char *password = NULL, *prefix = NULL, *key = NULL;
	struct probe *p = NULL;
	size_t n = 0;
	struct etcd_client *c = NULL;
	struct etcd_kvs kvs = {0};
	if (!agent_config_standby_cluster(&cfg)) {
		fprintf(stderr, "pgha ctl demote-cluster: %s: [standby_cluster] primary_hosts is not set: there is no "
				"cluster for %s to follow\nHINT: set it to the other cluster's members on every member "
				"(docs/TWO_REGIONS.md)\n", t->config_path, t->cluster);
		goto out;
	}
	if ((c = ctl_etcd(t, &e)) == NULL) {
		fprintf(stderr, "pgha ctl demote-cluster: %s\n", e.msg);
		goto out;
	}
	prefix = ctl_cluster_prefix(t);
	key = xasprintf("%spromoted", prefix);
	if (etcd_get(c, key, &kvs, &e) != 0) {
		fprintf(stderr, "pgha ctl demote-cluster: reading %s: %s\n", key, e.msg);
		goto out;
	}
	if (kvs.count == 0) {
		fprintf(stderr, "pgha ctl demote-cluster: cluster %s is a standby cluster already (no %s)\n",
			t->cluster, key);
		goto out;
	}
	if (read_secret_file(cfg.replication_password_file, &password, &e) != 0) {
		fprintf(stderr, "pgha ctl demote-cluster: [postgresql] replication_password_file: %s\n", e.msg);
		goto out;
	}
	probe_all(&cfg, password, &p, &n);
	bool primary = false;
	for (size_t i = 0; i < n; i++)
		primary |= p[i].r == PROBE_PRIMARY;
	if (!primary && !force) {
		if (as_json)
			print_json(t, p, n, true, NULL);
		fprintf(stderr, "pgha ctl demote-cluster: refused: no host of %s answers as a running primary; "
				"demoting %s would leave nothing taking writes\nHINT: promote the other cluster first "
				"(`pgha ctl promote-cluster` there), or --force\n", cfg.standby_primary_hosts, t->cluster);
		goto out;
	}
	char q[512];
	snprintf(q, sizeof(q), "Make cluster %s a standby cluster of %s (writes it took that the other cluster "
		 "does not have are discarded by pg_rewind)?", t->cluster, cfg.standby_primary_hosts);
	if (!ctl_confirm(q, force))
		goto out;
	bool deleted = false;
	if (etcd_delete_if_value(c, key, kvs.kvs[0].value, &deleted, &e) != 0 || !deleted) {
		fprintf(stderr, "pgha ctl demote-cluster: deleting %s: %s\n", key, deleted ? e.msg :
			"it changed meanwhile; try again");
		goto out;
	}
	if (as_json)
		print_json(t, p, n, false, NULL);
	else
		printf("Cluster %s is a standby cluster of %s now: its leader stops and follows it (rewound if it "
		       "diverged); `pgha ctl list` shows it\n", t->cluster, cfg.standby_primary_hosts);
	rc = 0;
out:
	etcd_kvs_free(&kvs);
	free(key);
	free(prefix);
	etcd_free(c);
	free(p);
	secret_free(password);
	agent_config_free(&cfg);
	return rc;
}
