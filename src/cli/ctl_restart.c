/*
 * ctl_restart.c — `pgha ctl restart [NODE] [--pending]` and `ctl reinit NODE`:
 * requests to members' agents through requests/<member> (cluster/switchover.h),
 * followed in the member records until done, each step printed with the time
 * it took.
 *
 * A rolling restart restarts the standbys one at a time (each streams again
 * before the next), then switches over from the leader to a streaming
 * standby (ctl_switchover_run): the switchover stops the old leader cleanly
 * and starts it again as a standby, which is its restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl_int.h"
#include "cluster/config_key.h"
#include "cluster/switchover.h"
#include "common/strbuf.h"
#include "common/util.h"

static double since(int64_t t0)
{
	return (double)(now_ms() - t0) / 1000.0;
}

/* Ask (unless forced; takes the question), then connect: NULL if not to go on. */
static struct etcd_client *confirm_connect(const struct ctl_target *t, const char *cmd, char *question, bool force)
{
	bool yes = ctl_confirm(question, force);
	free(question);
	if (!yes)
		return NULL;
	struct pgha_err e;
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL)
		fprintf(stderr, "pgha ctl %s: %s\n", cmd, e.msg);
	return c;
}

/* Common arguments of restart and reinit. */
struct op_args {
	const char *node;
	bool pending, force, in_place;
	long wait_s;
};

static int restart_usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl restart [NODE] [--pending] [--force] [--wait SEC] [--in-place]\n"
		"\n"
		"Restart PostgreSQL on NODE, or on every member: the standbys one at a time (each\n"
		"must stream again before the next), then a planned switchover from the leader to\n"
		"a streaming standby, which stops the old leader cleanly and starts it again as a\n"
		"standby (its restart). Restarting the leader by name does the same switchover.\n"
		"Refused in maintenance mode (the agents start and stop nothing while paused).\n"
		"\n"
		"  --pending     only the members whose parameters wait for a restart\n"
		"                (PENDING RESTART in `pgha ctl list`)\n"
		"  --force       do not ask for confirmation\n"
		"  --wait SEC    how long one member may take (default 120)\n"
		"  --in-place    restart the leader's PostgreSQL where it is, without a switchover:\n"
		"                writes stop until it is back (for a cluster without a standby)\n");
	return out == stdout ? 0 : 2;
}

static int reinit_usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl reinit NODE [--force] [--wait SEC]\n"
		"\n"
		"Re-clone the standby NODE from the leader: its agent stops PostgreSQL, moves the data\n"
		"directory to <data_dir>.pgha-reinit, clones the leader with pg_basebackup and starts\n"
		"it as a standby; the old copy is removed once the new clone is in place (kept if the\n"
		"clone fails). Refused for the leader and in maintenance mode.\n"
		"\n"
		"  --force       do not ask for confirmation\n"
		"  --wait SEC    how long it may take (default 600)\n");
	return out == stdout ? 0 : 2;
}

/* 0, or an exit code after saying why (-1: --help was printed). */
static int parse_args(const char *cmd, int argc, char **argv, struct op_args *o, int (*usage)(FILE *))
{
	bool restart = strcmp(cmd, "restart") == 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
			o->force = true;
		} else if (restart && strcmp(argv[i], "--pending") == 0) {
			o->pending = true;
		} else if (restart && strcmp(argv[i], "--in-place") == 0) {
			o->in_place = true;
		} else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			char *end;
			o->wait_s = strtol(argv[++i], &end, 10);
			if (*end != '\0' || o->wait_s < 1 || o->wait_s > 86400) {
				fprintf(stderr, "pgha ctl %s: --wait %s: give seconds, 1 to 86400\n", cmd, argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return -1;
		} else if (argv[i][0] != '-' && o->node == NULL) {
			o->node = argv[i];
		} else {
			fprintf(stderr, "pgha ctl %s: unexpected \"%s\"\n", cmd, argv[i]);
			return usage(stderr);
		}
	}
	if (!restart && o->node == NULL) {
		fprintf(stderr, "pgha ctl %s: NODE is required\n", cmd);
		return usage(stderr);
	}
	return 0;
}

/* The view, refused in maintenance mode or without a running leader. 0, or an exit code. */
static int read_checked(const struct ctl_target *t, const char *cmd, struct cluster_view *v);

/*
 * What restart and reinit do first: the arguments, the view (refused when
 * paused or without a running leader), NODE a member. True to go on; else
 * *exit_code is what to return.
 */
static bool prepare(const struct ctl_target *t, const char *cmd, int argc, char **argv, struct op_args *o,
		    int (*usage)(FILE *), struct cluster_view *v, int *exit_code)
{
	int rc = parse_args(cmd, argc, argv, o, usage);
	if (rc == 0)
		rc = read_checked(t, cmd, v);
	if (rc == 0 && o->node != NULL && cluster_view_member(v, o->node) == NULL) {
		fprintf(stderr, "pgha ctl %s: %s is not a member of cluster %s\n", cmd, o->node, t->cluster);
		rc = 1;
	}
	*exit_code = rc < 0 ? 0 : rc;
	return rc == 0;
}

static int read_checked(const struct ctl_target *t, const char *cmd, struct cluster_view *v)
{
	struct pgha_err e;
	if (ctl_read_view(t, v, NULL, &e) != 0) {
		fprintf(stderr, "pgha ctl %s: %s\n", cmd, e.msg);
		return 1;
	}
	if (dyncfg_paused(v->config)) {
		fprintf(stderr, "pgha ctl %s: maintenance mode is on: the agents start and stop nothing while paused\n"
			"HINT: `pgha ctl resume` first\n", cmd);
		return 1;
	}
	const struct member *lm = v->leader ? cluster_view_member(v, v->leader) : NULL;
	if (lm == NULL || lm->role != ROLE_PRIMARY || lm->state != STATE_RUNNING) {
		fprintf(stderr, "pgha ctl %s: cluster %s has no running leader\n"
			"HINT: `pgha ctl list` shows the cluster; `pgha ctl failover --to NODE` when the leader is gone\n",
			cmd, t->cluster);
		return 1;
	}
	return 0;
}

/* The standby to switch over to: streaming, promotable, synchronous in synchronous mode, least behind. */
static const struct member *switchover_candidate(const struct cluster_view *v)
{
	struct sync_state ss;
	bool sync = dyncfg_view_sync(v, &ss, NULL) == 1;
	const struct member *best = NULL;
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		if (strcmp(m->name, v->leader) == 0 || m->role != ROLE_REPLICA || m->state != STATE_STREAMING ||
		    m->tags.nofailover || m->tags.priority <= 0 || (sync && !sync_set_has(&ss.set, m->name)))
			continue;
		if (best == NULL || (m->lag_bytes >= 0 && (best->lag_bytes < 0 || m->lag_bytes < best->lag_bytes)))
			best = m;
	}
	return best;
}

/*
 * Ask `name` for `action` and follow its member record until the agent says
 * done and PostgreSQL runs again (a standby: streaming). Progress lines carry
 * the time since t0. 0 done, 1 not.
 */
static int request_and_wait(const struct ctl_target *t, struct etcd_client *c, const char *name,
			    enum req_action action, long wait_s, int64_t t0)
{
	struct pgha_err e;
	struct member_request r = {.action = action, .deadline_ms = wall_ms() + wait_s * 1000};
	char token[9];
	if (random_token(token, sizeof(token) - 1, &e) != 0) {
		fprintf(stderr, "pgha ctl %s: %s\n", req_action_name(action), e.msg);
		return 1;
	}
	snprintf(r.id, sizeof(r.id), "rq-%lld-%s", (long long)(wall_ms() / 1000), token);
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%srequests/%s", prefix, name);
	char *json = member_request_encode(&r);
	int64_t lease = 0, started = now_ms();
	bool created = false;
	int rc = 1;
	/* Under a lease: if nothing acts on it, it is gone shortly after its deadline. */
	if (etcd_lease_grant(c, wait_s + 15, &lease, &e) != 0 || etcd_create(c, key, json, lease, &created, &e) != 0) {
		fprintf(stderr, "pgha ctl %s: %s\n", req_action_name(action), e.msg);
		goto out;
	}
	if (!created) {
		fprintf(stderr, "pgha ctl %s: %s has a request pending already (another pgha ctl?); it expires by itself\n",
			req_action_name(action), name);
		goto out;
	}
	printf("  %6.2f s  %s: %s requested (%s)\n", since(t0), name, req_action_name(action), r.id);
	fflush(stdout);
	char last[64] = "";
	while (now_ms() < started + wait_s * 1000) {
		struct cluster_view v = {0};
		if (ctl_read_view(t, &v, NULL, &e) != 0) {
			sleep_ms(500);
			continue;
		}
		const struct member *m = cluster_view_member(&v, name);
		char now[64] = "gone from etcd (agent down?)";
		if (m != NULL)
			snprintf(now, sizeof(now), "%s, %s", member_role_name(m->role), member_state_name(m->state));
		if (strcmp(now, last) != 0) {
			printf("  %6.2f s  %s: %s\n", since(t0), name, now);
			fflush(stdout);
			snprintf(last, sizeof(last), "%s", now);
		}
		bool mine = m != NULL && strcmp(m->op_id, r.id) == 0;
		bool up = m != NULL && (m->role == ROLE_PRIMARY ? m->state == STATE_RUNNING : m->state == STATE_STREAMING);
		if (mine && strcmp(m->op_state, "failed") == 0) {
			fprintf(stderr, "pgha ctl %s: %s failed: %s\n", req_action_name(action), name,
				m->error[0] ? m->error : "(no reason given)");
			cluster_view_free(&v);
			goto out;
		}
		if (mine && strcmp(m->op_state, "done") == 0 && up) {
			printf("  %6.2f s  %s: %s done in %.1f s\n", since(t0), name, req_action_name(action), since(started));
			cluster_view_free(&v);
			rc = 0;
			goto out;
		}
		cluster_view_free(&v);
		sleep_ms(200);
	}
	fprintf(stderr, "pgha ctl %s: %s did not finish within %ld s; request withdrawn\n"
		"HINT: see its agent log; `pgha ctl list` shows the cluster\n", req_action_name(action), name, wait_s);
	bool done;
	if (etcd_delete_if_value(c, key, json, &done, &e) != 0)
		fprintf(stderr, "pgha ctl %s: withdrawing the request: %s\n", req_action_name(action), e.msg);
out:
	free(json);
	free(key);
	free(prefix);
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* After the switchover: the old leader streams from the new one (it restarted as a standby). */
static int wait_streaming(const struct ctl_target *t, const char *name, long wait_s, int64_t t0)
{
	int64_t until = now_ms() + wait_s * 1000;
	struct pgha_err e;
	while (now_ms() < until) {
		struct cluster_view v = {0};
		if (ctl_read_view(t, &v, NULL, &e) == 0) {
			const struct member *m = cluster_view_member(&v, name);
			bool ok = m != NULL && m->state == STATE_STREAMING && m->role == ROLE_REPLICA;
			cluster_view_free(&v);
			if (ok) {
				printf("  %6.2f s  %s: restarted as a standby by the switchover, streaming\n", since(t0), name);
				return 0;
			}
		}
		sleep_ms(200);
	}
	fprintf(stderr, "pgha ctl restart: %s is not streaming %ld s after the switchover\n", name, wait_s);
	return 1;
}

/* The leader's turn: a switchover to the best standby (or, in place, a restart request). */
static int restart_leader(const struct ctl_target *t, struct etcd_client *c, const struct op_args *o, int64_t t0)
{
	struct cluster_view v = {0};
	int rc = read_checked(t, "restart", &v);
	if (rc != 0)
		goto out;
	char leader[MEMBER_NAME_MAX];
	snprintf(leader, sizeof(leader), "%s", v.leader);
	if (o->in_place) {
		rc = request_and_wait(t, c, leader, REQ_RESTART, o->wait_s, t0);
		goto out;
	}
	const struct member *cand = switchover_candidate(&v);
	if (cand == NULL) {
		fprintf(stderr, "pgha ctl restart: no streaming standby to switch over to from %s\n"
			"HINT: --in-place restarts the leader where it is (writes stop until it is back)\n", leader);
		rc = 1;
		goto out;
	}
	printf("  %6.2f s  %s: switching over to %s\n", since(t0), leader, cand->name);
	fflush(stdout);
	rc = ctl_switchover_run(t, c, cand->name, 0, true, true, o->wait_s);
	if (rc == 0)
		rc = wait_streaming(t, leader, o->wait_s, t0);
out:
	cluster_view_free(&v);
	return rc;
}

int ctl_cmd_restart(const struct ctl_target *t, int argc, char **argv)
{
	struct op_args o = {.wait_s = 120};
	struct cluster_view v = {0};
	int rc;
	if (!prepare(t, "restart", argc, argv, &o, restart_usage, &v, &rc)) {
		cluster_view_free(&v);
		return rc;
	}
	rc = 1;
	struct etcd_client *c = NULL;
	struct strbuf plan = STRBUF_INIT, names = STRBUF_INIT;
	bool leader_too = false;
	const char **standbys = xcalloc(v.nmembers + 1, sizeof(*standbys));
	size_t n = 0;
	for (size_t i = 0; i < v.nmembers; i++) {
		const struct member *m = &v.members[i];
		if ((o.node && strcmp(m->name, o.node) != 0) || (o.pending && !m->pending_restart))
			continue;
		if (strcmp(m->name, v.leader) == 0)
			leader_too = true;
		else
			standbys[n++] = m->name;
	}
	qsort(standbys, n, sizeof(*standbys), name_cmp);
	if (n == 0 && !leader_too) {
		printf("nothing to restart: %s\n", o.pending ? "no member has a pending restart" : "no such member");
		rc = 0;
		goto out;
	}
	if (leader_too && !o.in_place && switchover_candidate(&v) == NULL && n == 0) {
		fprintf(stderr, "pgha ctl restart: %s is the leader and no standby streams to switch over to\n"
			"HINT: --in-place restarts it where it is (writes stop until it is back)\n", v.leader);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		sb_printf(&plan, "%s%s", i ? ", " : "  ", standbys[i]);
		sb_printf(&names, "%s%s", names.len ? ", " : "", standbys[i]);
	}
	if (n > 0)
		sb_printf(&plan, " (standby%s, one at a time: each streams again before the next)\n", n > 1 ? "s" : "");
	if (leader_too) {
		sb_printf(&names, "%s%s", names.len ? ", " : "", v.leader);
		if (o.in_place)
			sb_printf(&plan, "  %s (the leader), in place: writes stop until it is back\n", v.leader);
		else
			sb_printf(&plan, "  %s (the leader): a switchover to a streaming standby, after which it runs as "
				  "a standby\n", v.leader);
	}
	c = confirm_connect(t, "restart", xasprintf("Restart PostgreSQL in cluster %s%s:\n%sGo ahead?", t->cluster,
						    o.pending ? " (pending restarts)" : "", sb_str(&plan)), o.force);
	if (c == NULL)
		goto out;
	int64_t t0 = now_ms();
	for (size_t i = 0; i < n; i++) {
		if (request_and_wait(t, c, standbys[i], REQ_RESTART, o.wait_s, t0) != 0) {
			fprintf(stderr, "pgha ctl restart: stopped after %.1f s; not restarted: %s%s\n", since(t0),
				i + 1 < n ? "the standbys after this one" : "", leader_too ? " and the leader" : "");
			goto out;
		}
	}
	if (leader_too && restart_leader(t, c, &o, t0) != 0)
		goto out;
	printf("restarted %s in %.1f s\n", sb_str(&names), since(t0));
	rc = 0;
out:
	sb_free(&plan);
	sb_free(&names);
	free(standbys);
	cluster_view_free(&v);
	etcd_free(c);
	return rc;
}

int ctl_cmd_reinit(const struct ctl_target *t, int argc, char **argv)
{
	struct op_args o = {.wait_s = 600};
	struct cluster_view v = {0};
	struct etcd_client *c = NULL;
	int rc;
	if (!prepare(t, "reinit", argc, argv, &o, reinit_usage, &v, &rc))
		goto out;
	rc = 1;
	if (strcmp(o.node, v.leader) == 0) {
		fprintf(stderr, "pgha ctl reinit: %s is the leader: a leader is never re-cloned\n"
			"HINT: `pgha ctl switchover --to <standby>` first\n", o.node);
		goto out;
	}
	c = confirm_connect(t, "reinit", xasprintf("Re-initialize %s: stop its PostgreSQL, discard its data and "
						   "clone the leader %s afresh?", o.node, v.leader), o.force);
	if (c == NULL)
		goto out;
	int64_t t0 = now_ms();
	if (request_and_wait(t, c, o.node, REQ_REINIT, o.wait_s, t0) == 0) {
		printf("re-initialized %s from %s in %.1f s\n", o.node, v.leader, since(t0));
		rc = 0;
	}
out:
	cluster_view_free(&v);
	etcd_free(c);
	return rc;
}
