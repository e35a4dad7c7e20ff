/*
 * ctl_backup.c — `pgha ctl backup`: ask the cluster for a backup (the
 * backup/request key, cluster/backup_key.h), follow it with --wait (the
 * running key's progress, then the last key's outcome), or withdraw it with
 * --cancel. The agents decide who runs it (ha/backup_job.c); ctl only needs
 * etcd, so it works from any host.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/ctl_int.h"
#include "cluster/backup_key.h"
#include "common/strbuf.h"
#include "common/util.h"

static int usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl backup [--type full|diff|incr] [--wait [SECONDS]] [--json]\n"
		"       pgha ctl backup --cancel\n\n"
		"Ask the cluster for a pgBackRest backup (default: full). A streaming standby on the\n"
		"leader's host copies the files when there is one (the primary only starts and stops\n"
		"the backup), else the leader. One backup at a time; with --wait (default 3600 s when\n"
		"given without a number) it shows progress and the outcome, and exits 1 if it failed.\n"
		"--cancel withdraws the request; a backup already running is stopped, and the\n"
		"repository keeps only complete backups. `pgha ctl backups` lists what the repository holds.\n");
	return out == stdout ? 0 : 2;
}

/* The backup keys as they are now. */
struct bk_now {
	bool have_request, have_running, have_last;
	struct backup_request req;
	struct backup_run running, last;
	char leader[MEMBER_NAME_MAX];
	char leader_archive[256];
	bool leader_backup;       /* the leader's record says [backup] is on */
};

static int read_now(const struct ctl_target *t, struct bk_now *n, struct pgha_err *e)
{
	struct cluster_view v = {0};
	memset(n, 0, sizeof(*n));
	if (ctl_read_view(t, &v, NULL, e) != 0)
		return -1;
	int rc = -1;
	const char *which = "request";
	if (v.backup_request != NULL && backup_request_decode(v.backup_request, &n->req, e) != 0)
		goto out;
	n->have_request = v.backup_request != NULL;
	which = "running";
	if (v.backup_running != NULL && backup_run_decode(v.backup_running, "backup running", &n->running, e) != 0)
		goto out;
	n->have_running = v.backup_running != NULL;
	which = "last";
	if (v.backup_last != NULL && backup_run_decode(v.backup_last, "backup last", &n->last, e) != 0)
		goto out;
	n->have_last = v.backup_last != NULL;
	const struct member *l = v.leader ? cluster_view_member(&v, v.leader) : NULL;
	if (l != NULL) {
		snprintf(n->leader, sizeof(n->leader), "%s", l->name);
		snprintf(n->leader_archive, sizeof(n->leader_archive), "%s", l->archive);
		n->leader_backup = l->backup_host[0] != '\0';
	}
	rc = 0;
out:
	if (rc != 0) {
		char *prefix = ctl_cluster_prefix(t);
		err_wrap(e, "%sbackup/%s in etcd was not written by pgha\nHINT: `pgha ctl backup --cancel` removes a "
			 "bad request; etcdctl del %sbackup/%s removes the key", prefix, which, prefix, which);
		free(prefix);
	}
	cluster_view_free(&v);
	return rc;
}

static void print_outcome(const struct backup_run *r, bool json)
{
	if (json) {
		char *txt = backup_run_encode(r);
		printf("%s\n", txt);
		free(txt);
		return;
	}
	if (r->ok)
		printf("done: %s backup %s in %lld s%s%s, on %s%s\n", backup_type_name(r->type), r->label,
		       (long long)(r->finished_at - r->started_at), r->size[0] ? ", " : "", r->size, r->member,
		       r->standby ? " (copied from the standby)" : "");
	else
		fprintf(stderr, "failed on %s after %lld s: %s\nHINT: pgBackRest's log is in the member's "
			"[backup] work_dir/log; `pgha ctl backups` shows what the repository holds\n", r->member,
			(long long)(r->finished_at - r->started_at), r->error);
}

/* Follow request id until its outcome or wait_s: an exit code. */
static int follow(const struct ctl_target *t, const char *id, long wait_s, bool json)
{
	int64_t deadline = now_ms() + wait_s * 1000;
	char shown[400] = "";
	struct pgha_err e;
	while (now_ms() < deadline) {
		struct bk_now n;
		if (read_now(t, &n, &e) != 0) {
			fprintf(stderr, "pgha ctl backup: %s\n", e.msg);
			return 1;
		}
		if (n.have_last && strcmp(n.last.id, id) == 0) {
			print_outcome(&n.last, json);
			return n.last.ok ? 0 : 1;
		}
		char now[400];
		if (n.have_running && strcmp(n.running.id, id) == 0)
			snprintf(now, sizeof(now), "running on %s%s: %d%%", n.running.member,
				 n.running.standby ? " (from the standby)" : "", n.running.percent < 0 ? 0 : n.running.percent);
		else if (n.have_request && strcmp(n.req.id, id) == 0)
			snprintf(now, sizeof(now), "waiting for a member to take it%s%s%s",
				 strcmp(n.leader_archive, "ok") != 0 ? " (WAL archiving on the leader is " : "",
				 strcmp(n.leader_archive, "ok") != 0 ? (n.leader_archive[0] ? n.leader_archive : "not checked yet") : "",
				 strcmp(n.leader_archive, "ok") != 0 ? ")" : "");
		else {
			fprintf(stderr, "pgha ctl backup: the request %s was withdrawn (pgha ctl backup --cancel?)\n", id);
			return 1;
		}
		if (!json && strcmp(now, shown) != 0) {
			printf("  %s\n", now);
			fflush(stdout);
			snprintf(shown, sizeof(shown), "%s", now);
		}
		usleep(500000);
	}
	fprintf(stderr, "pgha ctl backup: no outcome within %ld s; it goes on\nHINT: `pgha ctl backup --wait` "
		"follows it again, `pgha ctl list` shows the last backup\n", wait_s);
	return 1;
}

static int cancel(const struct ctl_target *t)
{
	struct pgha_err e;
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL) {
		fprintf(stderr, "pgha ctl backup: %s\n", e.msg);
		return 1;
	}
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sbackup/request", prefix);
	int64_t deleted = 0;
	int rc = etcd_delete(c, key, &deleted, &e);
	if (rc != 0)
		fprintf(stderr, "pgha ctl backup --cancel: %s\n", e.msg);
	else if (deleted == 0)
		printf("no backup request to withdraw\n");
	else
		printf("backup request withdrawn; a backup already running stops (the repository keeps only "
		       "complete backups)\n");
	free(key);
	free(prefix);
	etcd_free(c);
	return rc == 0 ? 0 : 1;
}

int ctl_cmd_backup(const struct ctl_target *t, int argc, char **argv)
{
	enum backup_type type = BACKUP_FULL;
	bool json = false, want_cancel = false;
	long wait_s = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
			if (backup_type_parse(argv[++i], &type) != 0) {
				fprintf(stderr, "pgha ctl backup: --type %s: use full, diff or incr\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--wait") == 0) {
			wait_s = 3600;
			if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9') {
				wait_s = strtol(argv[++i], NULL, 10);
				if (wait_s < 1)
					return usage(stderr);
			}
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--cancel") == 0) {
			want_cancel = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			return usage(stdout);
		} else {
			fprintf(stderr, "pgha ctl backup: unknown option \"%s\"\n", argv[i]);
			return usage(stderr);
		}
	}
	if (want_cancel)
		return cancel(t);
	struct pgha_err e;
	struct bk_now n;
	if (read_now(t, &n, &e) != 0) {
		fprintf(stderr, "pgha ctl backup: %s\n", e.msg);
		return 1;
	}
	if (n.leader[0] == '\0') {
		fprintf(stderr, "pgha ctl backup: cluster %s has no leader now\nHINT: `pgha ctl list` shows why\n",
			t->cluster);
		return 1;
	}
	if (!n.leader_backup) {
		fprintf(stderr, "pgha ctl backup: the leader %s has no [backup] section, so nothing can take a backup\n"
			"HINT: add [backup] repo_path to every member's config and restart the agents (`pgha up --backup` "
			"does it for a local cluster)\n", n.leader);
		return 1;
	}
	if (n.have_request || n.have_running) {
		const char *id = n.have_running ? n.running.id : n.req.id;
		fprintf(stderr, "pgha ctl backup: a %s backup (%s) is already %s%s%s\nHINT: one at a time: "
			"`pgha ctl backup --wait` follows it, --cancel withdraws it\n",
			backup_type_name(n.have_running ? n.running.type : n.req.type), id,
			n.have_running ? "running on " : "requested", n.have_running ? n.running.member : "", "");
		if (wait_s > 0)
			return follow(t, id, wait_s, json);
		return 1;
	}
	struct backup_request r = {.type = type, .requested_at = wall_s()};
	backup_new_id(r.id);
	snprintf(r.by, sizeof(r.by), "ctl");
	char *body = backup_request_encode(&r);
	struct etcd_client *c = ctl_etcd(t, &e);
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sbackup/request", prefix);
	bool created = false;
	int rc = c == NULL ? -1 : etcd_create(c, key, body, 0, &created, &e);
	free(body);
	free(key);
	free(prefix);
	etcd_free(c);
	if (rc != 0) {
		fprintf(stderr, "pgha ctl backup: %s\n", e.msg);
		return 1;
	}
	if (!created) {
		fprintf(stderr, "pgha ctl backup: another backup was requested just now\nHINT: `pgha ctl backup --wait` "
			"follows it\n");
		return 1;
	}
	if (!json)
		printf("%s backup requested (id %s)%s\n", backup_type_name(type), r.id,
		       wait_s > 0 ? "" : "; `pgha ctl list` shows the last backup, `pgha ctl backups` the repository");
	if (wait_s > 0)
		return follow(t, r.id, wait_s, json);
	return 0;
}
