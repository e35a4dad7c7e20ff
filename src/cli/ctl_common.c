/*
 * ctl_common.c — what every ctl command uses: where the cluster's keys are
 * (also from a member's config file),
 * an etcd client, one read of the cluster, the confirmation question, and the
 * compare-and-swap write of the config key. The bottom of src/cli: it calls
 * no other file of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/pgbackrest.h"
#include "cli/ctl_int.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "ha/agent_config.h"

void ctl_target_free(struct ctl_target *t)
{
	free(t->endpoints);
	free(t->cluster);
	free(t->prefix);
	free(t->user);
	secret_free(t->password);
	free(t->ca_file);
	free(t->cert_file);
	free(t->key_file);
	free(t->backup_conf);
	free(t->run_as);
	free(t->config_path);
}

int ctl_target_from_config(struct ctl_target *t, const char *path, struct pgha_err *e)
{
	struct agent_config cfg;
	if (agent_config_load(path, &cfg, e) != 0) {
		agent_config_free(&cfg);
		return -1;
	}
	t->endpoints = xstrdup(cfg.etcd_endpoints);
	t->cluster = xstrdup(cfg.cluster_name);
	t->prefix = xstrdup(cfg.etcd_prefix);
	if (cfg.etcd_username[0]) {
		t->user = xstrdup(cfg.etcd_username);
		if (read_secret_file(cfg.etcd_password_file, &t->password, e) != 0) {
			agent_config_free(&cfg);
			return err_wrap(e, "[etcd] password_file");
		}
	}
	/* Checked with the rest of the file by agent_config_load. */
	t->ca_file = cfg.etcd_ca_file[0] ? xstrdup(cfg.etcd_ca_file) : NULL;
	t->cert_file = cfg.etcd_cert_file[0] ? xstrdup(cfg.etcd_cert_file) : NULL;
	t->key_file = cfg.etcd_key_file[0] ? xstrdup(cfg.etcd_key_file) : NULL;
	t->timeout_ms = cfg.retry_timeout_ms;
	t->config_path = xstrdup(path);
	if (agent_config_backup_on(&cfg)) {
		t->backup_conf = pgbr_conf_path(cfg.backup_work_dir);
		t->run_as = xstrdup(cfg.run_as);
	}
	agent_config_free(&cfg);
	return 0;
}

char *ctl_cluster_prefix(const struct ctl_target *t)
{
	return xasprintf("%s/%s/", strcmp(t->prefix, "/") == 0 ? "" : t->prefix, t->cluster);
}

struct etcd_client *ctl_etcd(const struct ctl_target *t, struct pgha_err *e)
{
	struct etcd_opts o = {.endpoints = t->endpoints, .username = t->user, .password = t->password,
			      .request_timeout_ms = 2000, .deadline_ms = t->timeout_ms, .ca_file = t->ca_file,
			      .cert_file = t->cert_file, .key_file = t->key_file};
	return etcd_new(&o, e);
}

int ctl_read_view(const struct ctl_target *t, struct cluster_view *v, struct etcd_kvs *raw,
		  struct pgha_err *e)
{
	struct etcd_client *c = ctl_etcd(t, e);
	if (c == NULL)
		return -1;
	char *prefix = ctl_cluster_prefix(t);
	struct etcd_kvs kvs = {0};
	int rc = etcd_get_prefix(c, prefix, &kvs, e);
	if (rc == 0) {
		cluster_view_from_kvs(prefix, &kvs, v);
		cluster_view_sort(v);
		if (raw != NULL)
			*raw = kvs;
		else
			etcd_kvs_free(&kvs);
	} else {
		err_wrap(e, "reading cluster %s from etcd (%s)", t->cluster, t->endpoints);
	}
	free(prefix);
	etcd_free(c);
	return rc;
}

/* Ask "question [y/N]" unless forced; refuse when nobody can answer. */
bool ctl_confirm(const char *question, bool force)
{
	if (force)
		return true;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "%s\nrefusing: standard input is not a terminal; add --force to go ahead\n", question);
		return false;
	}
	printf("%s [y/N] ", question);
	fflush(stdout);
	char line[16];
	if (fgets(line, sizeof(line), stdin) == NULL)
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

int ctl_config_put_cas(struct etcd_client *c, const char *key, const struct etcd_kv *kv, json_t *cfg, bool *ok,
		       struct pgha_err *e)
{
	char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
	struct etcd_cmp cmp = {.key = key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
			       .number = kv ? kv->mod_revision : 0};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = text};
	*ok = false;
	int r = etcd_txn(c, &cmp, 1, &put, 1, NULL, 0, ok, NULL, e);
	free(text);
	return r;
}
