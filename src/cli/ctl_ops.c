/*
 * ctl_ops.c — ctl commands that change the cluster: pause/resume (the
 * `config` key's "pause" flag) and failover (the `failover` key, which the
 * target member's agent acts on).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl_int.h"
#include "cluster/config_key.h"
#include "cluster/switchover.h"
#include "common/strbuf.h"
#include "common/util.h"

int ctl_cmd_pause(const struct ctl_target *t, bool pause, int argc, char **argv)
{
	bool force = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
			force = true;
			continue;
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("Usage: pgha ctl %s [--force]\n\n%s\nAsks for confirmation unless --force.\n",
			       pause ? "pause" : "resume",
			       pause ? "Maintenance mode: agents keep running but do no automatic failover, no demotion,\n"
				       "no start or stop of PostgreSQL until `pgha ctl resume`."
				     : "End maintenance mode.");
			return 0;
		}
		fprintf(stderr, "pgha ctl %s: unknown option \"%s\"\n", pause ? "pause" : "resume", argv[i]);
		return 2;
	}
	char q[160];
	snprintf(q, sizeof(q), "%s maintenance mode in cluster %s%s?", pause ? "Turn on" : "End", t->cluster,
		 pause ? " (no automatic failover until `pgha ctl resume`)" : "");
	if (!ctl_confirm(q, force))
		return 1;
	struct pgha_err e;
	int64_t t0 = now_ms();
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL) {
		fprintf(stderr, "pgha ctl: %s\n", e.msg);
		return 1;
	}
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sconfig", prefix);
	int rc = dyncfg_write_pause(c, key, pause, &e) == 0 ? 0 : 1;
	if (rc == 0)
		printf("%s (%.1f s)%s\n", pause ? "Maintenance mode on: no automatic failover" : "Maintenance mode off",
		       (double)(now_ms() - t0) / 1000.0, pause ? "; `pgha ctl resume` ends it" : "");
	else
		fprintf(stderr, "pgha ctl %s: %s\n", pause ? "pause" : "resume", e.msg);
	free(key);
	free(prefix);
	etcd_free(c);
	return rc;
}

static int failover_usage(FILE *out)
{
	fprintf(out, "Usage: pgha ctl failover --to NODE [--force] [--wait SECONDS]\n\n"
		     "Make NODE the leader now, for when the leader is gone or broken. NODE must be a\n"
		     "running standby not tagged nofailover. A live leader stops PostgreSQL and gives the\n"
		     "key up; NODE takes it and promotes. Waits (default 60 s) and reports how long it took.\n");
	return out == stdout ? 0 : 2;
}

int ctl_cmd_failover(const struct ctl_target *t, int argc, char **argv)
{
	const char *to = NULL;
	bool force = false;
	long wait_s = 60;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
			to = argv[++i];
		} else if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
			force = true;
		} else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			wait_s = strtol(argv[++i], NULL, 10);
			if (wait_s < 1)
				return failover_usage(stderr);
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			return failover_usage(stdout);
		} else {
			fprintf(stderr, "pgha ctl failover: unknown option \"%s\"\n", argv[i]);
			return failover_usage(stderr);
		}
	}
	if (to == NULL) {
		fprintf(stderr, "pgha ctl failover: --to NODE is required\n");
		return failover_usage(stderr);
	}
	struct pgha_err e;
	struct cluster_view v = {0};
	if (ctl_read_view(t, &v, NULL, &e) != 0) {
		fprintf(stderr, "pgha ctl failover: %s\n", e.msg);
		return 1;
	}
	int rc = 1;
	const struct member *m = cluster_view_member(&v, to);
	if (m == NULL) {
		fprintf(stderr, "pgha ctl failover: %s is not a member of cluster %s\n", to, t->cluster);
		goto out;
	}
	if (v.leader && strcmp(v.leader, to) == 0) {
		fprintf(stderr, "pgha ctl failover: %s is already the leader\n", to);
		goto out;
	}
	if (m->role != ROLE_REPLICA || (m->state != STATE_STREAMING && m->state != STATE_RUNNING)) {
		fprintf(stderr, "pgha ctl failover: %s is not fit: it is %s and %s (a running standby is needed)\n",
			to, member_role_name(m->role), member_state_name(m->state));
		goto out;
	}
	if (m->tags.nofailover) {
		fprintf(stderr, "pgha ctl failover: %s is not fit: it is tagged nofailover\n", to);
		goto out;
	}
	struct sync_state ss;
	if (dyncfg_view_sync(&v, &ss, NULL) == 1 && strcmp(ss.leader, to) != 0 && !sync_set_has(&ss.set, to)) {
		fprintf(stderr, "pgha ctl failover: %s is not fit: synchronous mode is on and it is not a synchronous "
			"standby, so it may lack acknowledged commits\n"
			"HINT: choose one of the synchronous standbys (`pgha ctl list`), or accept the loss with "
			"`pgha ctl set synchronous_mode=off` first\n", to);
		goto out;
	}
	char q[256];
	snprintf(q, sizeof(q), "Fail over from %s to %s?", v.leader ? v.leader : "(no leader)", to);
	if (!ctl_confirm(q, force))
		goto out;
	int64_t t0 = now_ms();
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL) {
		fprintf(stderr, "pgha ctl failover: %s\n", e.msg);
		goto out;
	}
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sfailover", prefix);
	char *lkey = xasprintf("%sleader", prefix);
	struct failover_key fk = {.to = ""};
	snprintf(fk.to, sizeof(fk.to), "%s", to);
	snprintf(fk.from, sizeof(fk.from), "%s", v.leader ? v.leader : "");
	char *body = failover_key_encode(&fk);
	/* The request lives under a lease: if nobody acts on it, it goes away. */
	int64_t lease = 0;
	if (etcd_lease_grant(c, wait_s + 30, &lease, &e) != 0 || etcd_put(c, key, body, lease, &e) != 0) {
		fprintf(stderr, "pgha ctl failover: %s\n", e.msg);
		goto done;
	}
	printf("failover to %s requested; waiting up to %ld s\n", to, wait_s);
	fflush(stdout);
	int64_t deadline = t0 + wait_s * 1000;
	while (now_ms() < deadline) {
		struct cluster_view nv = {0};
		if (ctl_read_view(t, &nv, NULL, &e) == 0) {
			const struct member *nm = cluster_view_member(&nv, to);
			bool done = nv.leader && strcmp(nv.leader, to) == 0 && nm && nm->role == ROLE_PRIMARY &&
				    nm->state == STATE_RUNNING;
			cluster_view_free(&nv);
			if (done) {
				printf("%s is the leader (%.1f s)\n", to, (double)(now_ms() - t0) / 1000.0);
				rc = 0;
				goto done;
			}
		}
		sleep_ms(200);
	}
	fprintf(stderr, "pgha ctl failover: %s did not become the leader within %ld s; request withdrawn\n"
		"HINT: see its agent log; `pgha ctl list` shows the cluster\n", to, wait_s);
	if (etcd_delete(c, key, NULL, &e) != 0)
		fprintf(stderr, "pgha ctl failover: withdrawing the request: %s\n", e.msg);
done:
	free(body);
	free(lkey);
	free(key);
	free(prefix);
	etcd_free(c);
out:
	cluster_view_free(&v);
	return rc;
}
