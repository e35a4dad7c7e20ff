/*
 * ctl.c — `pgha ctl`: connection options, and the `list` command.
 */
#include "cli/ctl.h"
#include "cli/ctl_int.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "dcs/etcd.h"
#include "ha/agent_config.h"


static void usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl [connection options] <command> [command options]\n"
		"\n"
		"Commands:\n"
		"  list [--json]        members: name, address, role (sync: a synchronous standby),\n"
		"                       state, timeline, lag, pending restart; the synchronous mode\n"
		"  set KEY=VALUE...     change the cluster's dynamic config (synchronous_mode, ttl,\n"
		"       [--force]       loop_wait, postgresql.parameters.NAME, ...: see set --help)\n"
		"  edit-config          the dynamic config as JSON in $EDITOR (or --apply FILE|-)\n"
		"       [--force]\n"
		"  restart [NODE]       restart PostgreSQL: standbys one at a time, then a switchover\n"
		"       [--pending]     from the leader; --pending: only where parameters wait for it\n"
		"       [--force] [--wait SEC] [--in-place]\n"
		"  reinit NODE          re-clone the standby NODE from the leader\n"
		"       [--force] [--wait SEC]\n"
		"  pause [--force]      maintenance mode: no automatic failover, no demotion\n"
		"  resume [--force]     end maintenance mode\n"
		"  switchover --to NODE planned switchover: proxies hold new transactions, no client\n"
		"       [--at TIME]     error; --cancel withdraws a scheduled one\n"
		"       [--force] [--wait SEC]\n"
		"  failover --to NODE   make NODE the leader now (when the leader is gone or broken)\n"
		"       [--force] [--wait SEC]\n"
		"\n"
		"Every command that changes the cluster asks for confirmation unless --force, and\n"
		"prints what it did and how long it took. `pgha ctl COMMAND --help` tells more.\n"
		"\n"
		"Connection options (a node's config file, or the etcd address and cluster):\n"
		"  -c, --config FILE          read [etcd] and [cluster] from an agent config file\n"
		"      --etcd URLS            comma-separated etcd URLs (default $PGHA_ETCD or\n"
		"                             http://127.0.0.1:2379)\n"
		"      --cluster NAME         cluster name (default $PGHA_CLUSTER or pgha)\n"
		"      --prefix PREFIX        etcd key prefix (default /pgha)\n"
		"      --etcd-user USER       etcd user\n"
		"      --etcd-password-file F file holding the etcd user's password\n"
		"  -h, --help                 this help\n");
}

static void target_free(struct ctl_target *t)
{
	free(t->endpoints);
	free(t->cluster);
	free(t->prefix);
	free(t->user);
	secret_free(t->password);
}

static int target_from_config(struct ctl_target *t, const char *path, struct pgha_err *e)
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
	t->timeout_ms = cfg.retry_timeout_ms;
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
			      .request_timeout_ms = 2000, .deadline_ms = t->timeout_ms};
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

int ctl_view_sync(const struct cluster_view *v, struct sync_state *s, enum sync_mode *mode)
{
	return sync_view_state(v, s, mode);
}

void ctl_print_table(FILE *out, const struct cluster_view *v, const char *cluster)
{
	struct sync_state ss;
	enum sync_mode mode;
	bool sync = ctl_view_sync(v, &ss, &mode) == 1 && v->leader && strcmp(ss.leader, v->leader) == 0;
	const char *sysid = v->initialize ? v->initialize : "not initialized";
	fprintf(out, "Cluster: %s (system identifier %s), leader: %s\n", cluster, sysid,
		v->leader ? v->leader : "none");
	if (v->leader_state != LEADER_KEY_OK)
		fprintf(out, "Leader key: \"%.80s\" (revision %lld) is %s: no agent wrote it.\n"
			"  The agents replace it (compared on that revision): the running primary, else the election's\n"
			"  winner%s.\n", v->leader_invalid ? v->leader_invalid : v->leader, (long long)v->leader_mod_revision,
			leader_key_problem(v->leader_state),
			v->leader_state == LEADER_KEY_FOREIGN_LEASE ? ", once it has stayed so for a ttl (an agent moving "
			"its key to a new lease shows this for a moment)" : "");
	/* As Patroni: the column shows only when a member waits for a restart. */
	bool pending = false;
	for (size_t i = 0; i < v->nmembers; i++)
		pending |= v->members[i].pending_restart;
	fprintf(out, "%-16s %-22s %-8s %-14s %4s  %-*s%s\n", "MEMBER", "HOST", "ROLE", "STATE", "TL", pending ? 10 : 0,
		"LAG", pending ? "  PENDING RESTART" : "");
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		char host[300], lag[32] = "", tl[16] = "";
		snprintf(host, sizeof(host), "%s:%d", m->host, m->port);
		bool leader = v->leader && strcmp(v->leader, m->name) == 0;
		const char *role = leader ? "leader" : member_role_name(m->role);
		if (!leader && sync && sync_set_has(&ss.set, m->name))
			role = mode == SYNC_QUORUM ? "quorum" : "sync";
		if (m->timeline > 0)
			snprintf(tl, sizeof(tl), "%u", m->timeline);
		if (!leader && m->role == ROLE_REPLICA && m->lag_bytes >= 0)
			format_bytes((uint64_t)m->lag_bytes, lag, sizeof(lag));
		else if (!leader && m->role == ROLE_REPLICA)
			snprintf(lag, sizeof(lag), "unknown");
		char restart[300] = "";
		if (m->pending_restart)
			snprintf(restart, sizeof(restart), "  * %s", m->pending_params);
		fprintf(out, "%-16s %-22s %-8s %-14s %4s  %-*s%s\n", m->name, host, role,
			member_state_name(m->state), tl, pending ? 10 : 0, lag, restart);
		if (m->error[0])
			fprintf(out, "%-16s   error: %s\n", "", m->error);
		if (m->diverged_copy[0])
			fprintf(out, "%-16s   diverged copy: %s (removed once it streams again)\n", "", m->diverged_copy);
	}
	if (v->nmembers == 0)
		fprintf(out, "(no members)\n");
	if (mode != SYNC_OFF) {
		char set[600];
		if (!sync)
			snprintf(set, sizeof(set), "none published by the leader yet");
		else if (ss.set.n == 0)
			snprintf(set, sizeof(set), "none (%s)", mode == SYNC_STRICT ? "writes wait for one" :
				 "asynchronous until one streams; no failover meanwhile");
		else
			sync_pub_describe(&ss.set, set, sizeof(set));
		fprintf(out, "Synchronous mode: %s; synchronous standbys: %s\n", sync_mode_name(mode), set);
		if (mode == SYNC_QUORUM && sync && ss.set.n > 1)
			fprintf(out, "  (a new leader must hear from %d of them: every commit is on one of any %d)\n",
				ss.set.num, ss.set.num);
	}
}

static int cmd_list(const struct ctl_target *t, int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("Usage: pgha ctl list [--json]\n\nList the members of the cluster as etcd knows them.\n"
			       "ROLE is leader, replica, or (synchronous mode) sync / quorum for the standbys the\n"
			       "leader published as synchronous: only those may be promoted. PENDING RESTART (shown\n"
			       "when a member has one) names the parameters that wait for `pgha ctl restart --pending`.\n");
			return 0;
		} else {
			fprintf(stderr, "pgha ctl list: unknown option \"%s\"\n", argv[i]);
			return 2;
		}
	}
	struct cluster_view v = {0};
	struct etcd_kvs raw = {0};
	struct pgha_err e;
	if (ctl_read_view(t, &v, &raw, &e) != 0) {
		fprintf(stderr, "pgha ctl list: %s\n", e.msg);
		return 1;
	}
	char *prefix = ctl_cluster_prefix(t);
	if (json) {
		char *s = cluster_view_encode(&v, t->cluster);
		json_error_t jerr;
		json_t *o = json_loads(s, 0, &jerr);
		char *ck = xasprintf("%sconfig", prefix), *fk = xasprintf("%sfailover", prefix);
		const struct etcd_kv *cfg = etcd_kvs_find(&raw, ck), *fo = etcd_kvs_find(&raw, fk);
		json_t *cj = cfg ? json_loads(cfg->value, 0, &jerr) : NULL;
		json_object_set_new(o, "paused", json_boolean(json_is_object(cj) && json_is_true(json_object_get(cj, "pause"))));
		json_object_set_new(o, "pending_failover", fo ? json_loads(fo->value, 0, &jerr) : json_null());
		struct sync_state ss;
		enum sync_mode mode;
		if (ctl_view_sync(&v, &ss, &mode) == 1) {
			json_t *arr = json_array();
			for (size_t i = 0; i < ss.set.n; i++)
				json_array_append_new(arr, json_string(ss.set.names[i]));
			json_t *sj = json_object();
			json_object_set_new(sj, "leader", json_string(ss.leader));
			json_object_set_new(sj, "sync_standby", arr);
			json_object_set_new(sj, "quorum", json_integer(ss.set.num));
			json_object_set_new(o, "sync", sj);
		} else {
			json_object_set_new(o, "sync", json_null());
		}
		json_object_set_new(o, "synchronous_mode", json_string(sync_mode_name(mode)));
		json_decref(cj);
		char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", out);
		free(out);
		json_decref(o);
		free(ck);
		free(fk);
		free(s);
	} else {
		ctl_print_table(stdout, &v, t->cluster);
		ctl_print_notes(stdout, &raw, prefix);
	}
	free(prefix);
	etcd_kvs_free(&raw);
	cluster_view_free(&v);
	return 0;
}

int ctl_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"etcd", required_argument, NULL, 'e'},
		{"cluster", required_argument, NULL, 'n'}, {"prefix", required_argument, NULL, 'p'},
		{"etcd-user", required_argument, NULL, 'u'},
		{"etcd-password-file", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *config = NULL, *etcd = NULL, *cluster = NULL, *prefix = NULL, *user = NULL,
		   *pwfile = NULL;
	int opt;
	optind = 1;
	/* "+" stops at the first non-option: the command. */
	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'e': etcd = optarg; break;
		case 'n': cluster = optarg; break;
		case 'p': prefix = optarg; break;
		case 'u': user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "pgha ctl: a command is required\n\n");
		usage(stderr);
		return 2;
	}
	log_set_level(LOG_WARN);
	struct ctl_target t = {0};
	struct pgha_err e;
	int rc = 2;
	if (config != NULL) {
		if (target_from_config(&t, config, &e) != 0) {
			fprintf(stderr, "pgha ctl: %s\n", e.msg);
			goto out;
		}
	} else {
		const char *env_etcd = getenv("PGHA_ETCD"), *env_cluster = getenv("PGHA_CLUSTER");
		t.endpoints = xstrdup(etcd ? etcd : env_etcd ? env_etcd : "http://127.0.0.1:2379");
		t.cluster = xstrdup(cluster ? cluster : env_cluster ? env_cluster : "pgha");
		t.prefix = xstrdup(prefix ? prefix : "/pgha");
		t.timeout_ms = 5000;
		if (user) {
			t.user = xstrdup(user);
			if (pwfile == NULL || read_secret_file(pwfile, &t.password, &e) != 0) {
				fprintf(stderr, "pgha ctl: --etcd-user needs --etcd-password-file%s%s\n",
					pwfile ? ": " : "", pwfile ? e.msg : "");
				goto out;
			}
		}
	}
	const char *cmd = argv[optind];
	if (strcmp(cmd, "list") == 0) {
		rc = cmd_list(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
		rc = ctl_cmd_pause(&t, strcmp(cmd, "pause") == 0, argc - optind, argv + optind);
	} else if (strcmp(cmd, "failover") == 0) {
		rc = ctl_cmd_failover(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "switchover") == 0) {
		rc = ctl_cmd_switchover(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "set") == 0) {
		rc = ctl_cmd_set(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "edit-config") == 0) {
		rc = ctl_cmd_edit_config(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "restart") == 0) {
		rc = ctl_cmd_restart(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "reinit") == 0) {
		rc = ctl_cmd_reinit(&t, argc - optind, argv + optind);
	} else {
		fprintf(stderr, "pgha ctl: unknown command \"%s\"\n\n", cmd);
		usage(stderr);
	}
out:
	target_free(&t);
	return rc;
}
