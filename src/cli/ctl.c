/*
 * ctl.c — `pgha ctl`: connection options, and the command that runs (ctl_*.c).
 */
#include "cli/ctl.h"
#include "cli/ctl_int.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "backup/pgbackrest.h"
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
		"  backup               take a backup now (from a standby when one streams)\n"
		"       [--type full|diff|incr] [--wait [SEC]] [--cancel]\n"
		"  backups [--json]     the backups in the repository, the archived WAL and the\n"
		"                       recoverable window (with -c NODE.conf, on a member's host)\n"
		"  restore --to TARGET  a new cluster recovered to TARGET (latest, an LSN or a time)\n"
		"       --new-cluster NAME   from the repository (with -c NODE.conf); the target must\n"
		"                       lie in the recoverable window\n"
		"       --in-place      or THIS cluster rolled back to TARGET (asks first; --cancel)\n"
		"  history [--json]     every leader change: time, kind, from, to, timeline, how long\n"
		"                       writes were unavailable\n"
		"  pause [--force]      maintenance mode: no automatic failover, no demotion\n"
		"  resume [--force]     end maintenance mode\n"
		"  switchover --to NODE planned switchover: proxies hold new transactions, no client\n"
		"       [--at TIME]     error; --cancel withdraws a scheduled one\n"
		"       [--force] [--wait SEC]\n"
		"  failover --to NODE   make NODE the leader now (when the leader is gone or broken)\n"
		"       [--force] [--wait SEC]\n"
		"  promote-cluster      (with -c NODE.conf) make this standby cluster a cluster of\n"
		"       [--force] [--json]   its own; refused while a primary host runs as primary\n"
		"  demote-cluster       (with -c NODE.conf) make this promoted cluster follow the\n"
		"       [--force] [--json]   cluster its [standby_cluster] names (rewound if needed)\n"
		"  switchover-cluster   (with -c PRIMARY-NODE.conf) swap this primary cluster and\n"
		"       --to STANDBY-NODE.conf [--force] [--json]   its standby cluster, writes held\n"
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
		"      --etcd-ca-file F       https endpoints: CA of etcd's server certificates\n"
		"                             (default $PGHA_ETCD_CA_FILE, else the system's CAs)\n"
		"      --etcd-cert-file F     client certificate for etcd --client-cert-auth\n"
		"                             (default $PGHA_ETCD_CERT_FILE)\n"
		"      --etcd-key-file F      its private key (default $PGHA_ETCD_KEY_FILE)\n"
		"  -h, --help                 this help\n");
}

/* Flag, else environment (paths only: a secret never travels in the environment). */
static char *flag_or_env(const char *flag, const char *env)
{
	const char *v = flag ? flag : getenv(env);
	return v && v[0] ? xstrdup(v) : NULL;
}

static int target_tls(struct ctl_target *t, const char *ca, const char *cert, const char *key,
		      struct pgha_err *e)
{
	static const char *const names[3] = {"--etcd-ca-file", "--etcd-cert-file", "--etcd-key-file"};
	t->ca_file = flag_or_env(ca, "PGHA_ETCD_CA_FILE");
	t->cert_file = flag_or_env(cert, "PGHA_ETCD_CERT_FILE");
	t->key_file = flag_or_env(key, "PGHA_ETCD_KEY_FILE");
	struct etcd_opts o = {.endpoints = t->endpoints, .ca_file = t->ca_file, .cert_file = t->cert_file,
			      .key_file = t->key_file};
	return etcd_check_tls(&o, names, e);
}

int ctl_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"etcd", required_argument, NULL, 'e'},
		{"cluster", required_argument, NULL, 'n'}, {"prefix", required_argument, NULL, 'p'},
		{"etcd-user", required_argument, NULL, 'u'},
		{"etcd-password-file", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
		{"etcd-ca-file", required_argument, NULL, 'A'}, {"etcd-cert-file", required_argument, NULL, 'C'},
		{"etcd-key-file", required_argument, NULL, 'K'},
		{NULL, 0, NULL, 0}};
	const char *config = NULL, *etcd = NULL, *cluster = NULL, *prefix = NULL, *user = NULL,
		   *pwfile = NULL, *ca = NULL, *cert = NULL, *key = NULL;
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
		case 'A': ca = optarg; break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
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
		if (ctl_target_from_config(&t, config, &e) != 0) {
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
		if (target_tls(&t, ca, cert, key, &e) != 0) {
			fprintf(stderr, "pgha ctl: %s\n", e.msg);
			goto out;
		}
	}
	const char *cmd = argv[optind];
	if (strcmp(cmd, "list") == 0) {
		rc = ctl_cmd_list(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "backup") == 0) {
		rc = ctl_cmd_backup(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "restore") == 0) {
		rc = ctl_cmd_restore(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "history") == 0) {
		rc = ctl_cmd_history(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "backups") == 0) {
		rc = ctl_cmd_backups(&t, argc - optind, argv + optind);
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
	} else if (strcmp(cmd, "promote-cluster") == 0) {
		rc = ctl_cmd_promote_cluster(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "demote-cluster") == 0) {
		rc = ctl_cmd_demote_cluster(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "switchover-cluster") == 0) {
		rc = ctl_cmd_switchover_cluster(&t, argc - optind, argv + optind);
	} else if (strcmp(cmd, "reinit") == 0) {
		rc = ctl_cmd_reinit(&t, argc - optind, argv + optind);
	} else {
		fprintf(stderr, "pgha ctl: unknown command \"%s\"\n\n", cmd);
		usage(stderr);
	}
out:
	ctl_target_free(&t);
	return rc;
}
