/*
 * ctl_restore.c — `pgha ctl restore --to TARGET --in-place`: the running
 * cluster rolled back to TARGET. The target was checked against the
 * recoverable window (ctl_backups.c) before this is called; here: the cluster
 * is fit for it (a running leader, not paused, no switchover, backup or other
 * restore under way), the confirmation names what is lost, the restore record
 * is written (cluster/restore_key.h) and followed: every member stops, the
 * leader restores with --delta onto a new timeline and starts, the standbys
 * rewind or re-clone onto it (ha/restore_inplace.c, ha/decide.c).
 * `--cancel` withdraws a restore nothing was touched for yet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/info.h"
#include "backup/restore.h"
#include "cli/ctl_int.h"
#include "cluster/config_key.h"
#include "cluster/restore_key.h"
#include "common/util.h"

#define POLL_MS 1000

/* The restore record as it is now: *kv NULL when absent; rec decoded when decodable (*ok). */
static int read_record(struct etcd_client *c, const char *key, struct etcd_kvs *kvs, const struct etcd_kv **kv,
		       struct restore_record *rec, bool *ok, struct pgha_err *e)
{
	if (etcd_get(c, key, kvs, e) != 0)
		return -1;
	*kv = etcd_kvs_find(kvs, key);
	struct pgha_err de;
	*ok = *kv != NULL && restore_record_decode((*kv)->value, rec, &de) == 0;
	return 0;
}

/* The etcd client (NULL: said why) and the restore record's key (caller frees both). */
static struct etcd_client *open_etcd(const struct ctl_target *t, char **key)
{
	struct pgha_err e;
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL) {
		fprintf(stderr, "pgha ctl restore: %s\n", e.msg);
		return NULL;
	}
	char *prefix = ctl_cluster_prefix(t);
	*key = xasprintf("%srestore", prefix);
	free(prefix);
	return c;
}

/* Why the cluster cannot be restored in place now, or NULL. */
static const char *unfit(struct etcd_client *c, const struct ctl_target *t, const struct cluster_view *v,
			 const struct member **leader, char *why, size_t len)
{
	*leader = v->leader ? cluster_view_member(v, v->leader) : NULL;
	if (*leader == NULL || (*leader)->role != ROLE_PRIMARY || (*leader)->state != STATE_RUNNING) {
		snprintf(why, len, "the cluster has no running leader\nHINT: `pgha ctl list` shows why; an in-place "
			 "restore starts from a running leader (or restore into a new cluster: --new-cluster NAME)");
		return why;
	}
	if (dyncfg_paused(v->config)) {
		snprintf(why, len, "the cluster is in maintenance mode\nHINT: `pgha ctl resume` first");
		return why;
	}
	if (v->backup_running != NULL) {
		snprintf(why, len, "a backup is running\nHINT: wait for it (`pgha ctl backup --wait`) or cancel it "
			 "(`pgha ctl backup --cancel`)");
		return why;
	}
	char *prefix = ctl_cluster_prefix(t), *key = xasprintf("%sswitchover", prefix);
	struct etcd_kvs kvs = {0};
	struct pgha_err e;
	bool switching = etcd_get(c, key, &kvs, &e) == 0 && kvs.count > 0;
	etcd_kvs_free(&kvs);
	free(key);
	free(prefix);
	if (switching) {
		snprintf(why, len, "a switchover is pending\nHINT: wait for it or cancel it (`pgha ctl switchover "
			 "--cancel`)");
		return why;
	}
	return NULL;
}

/* What the operator confirms: everything after the target goes, and the cluster stops meanwhile. */
static bool confirm(const struct ctl_target *t, const struct cluster_view *v, const struct member *leader,
		    const struct restore_target *target, const struct backup_entry *b, bool force)
{
	char lsn[32];
	lsn_format(leader->wal_lsn, lsn, sizeof(lsn));
	printf("In-place restore of cluster %s to %s, from backup %s.\n\n", t->cluster, target->text, b->label);
	if (target->kind == RESTORE_LATEST)
		printf("LOST: what the archive lacks (the leader's current WAL segment is archived before it stops; "
		       "a standby's unarchived WAL is not). The cluster is now at %s on timeline %u (leader %s)",
		       lsn, leader->timeline, leader->name);
	else
		printf("LOST: every transaction committed after %s. The cluster is now at %s on timeline %u "
		       "(leader %s)", target->text, lsn, leader->timeline, leader->name);
	int64_t at = restore_target_epoch(target);
	if (target->kind == RESTORE_TIME && at > 0) {
		int64_t ago = (int64_t)time(NULL) - at;
		printf("; the target is %lldh%02lldm%02llds ago", (long long)(ago / 3600), (long long)(ago / 60 % 60),
		       (long long)(ago % 60));
	}
	printf(".\n");
	printf("DOWNTIME: all %zu members stop PostgreSQL; clients get errors until %s has restored the\n"
	       "backup (--delta: only the files that differ), replayed the WAL to the target and started on a\n"
	       "new timeline. The standbys then rewind or re-clone onto it.\n\n", v->nmembers, leader->name);
	if (force)
		return true;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "refusing: standard input is not a terminal; add --force to go ahead\n");
		return false;
	}
	printf("Type the cluster name (%s) to go ahead: ", t->cluster);
	fflush(stdout);
	char line[128];
	if (fgets(line, sizeof(line), stdin) == NULL)
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, t->cluster) == 0;
}

static void print_members(const struct cluster_view *v)
{
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		printf("    %-16s %-8s %-10s timeline %u%s%s\n", m->name, member_role_name(m->role),
		       member_state_name(m->state), m->timeline, m->error[0] ? "  " : "", m->error[0] ? m->error : "");
	}
}

/* Follow the record until done or failed (or wait_s): an exit code. */
static int follow(const struct ctl_target *t, struct etcd_client *c, const char *key, const char *id, long wait_s)
{
	int64_t start = now_ms(), deadline = start + wait_s * 1000;
	enum restore_phase said = RESTORE_CANCELLED;
	bool first = true;
	int64_t done_ms = 0;
	while (now_ms() < deadline) {
		struct etcd_kvs kvs = {0};
		const struct etcd_kv *kv;
		struct restore_record rec;
		bool ok = false;
		struct pgha_err e;
		if (read_record(c, key, &kvs, &kv, &rec, &ok, &e) != 0) {
			fprintf(stderr, "  reading the restore record: %s (retrying)\n", e.msg);
		} else if (!ok || strcmp(rec.id, id) != 0) {
			etcd_kvs_free(&kvs);
			fprintf(stderr, "pgha ctl restore: the restore record was removed or replaced by another request\n");
			return 1;
		} else if (first || rec.phase != said) {
			double secs = (double)(now_ms() - start) / 1000.0;
			static const char *const what[] = {
				[RESTORE_STOPPING] = "every member stops PostgreSQL",
				[RESTORE_RESTORING] = "the leader restores the backup and replays the WAL to the target",
				[RESTORE_RESTORED] = "restored; the leader starts on the new timeline",
				[RESTORE_FAILED] = "FAILED", [RESTORE_DONE] = "done", [RESTORE_CANCELLED] = "cancelled",
			};
			printf("  %6.1fs  %-9s  %s\n", secs, restore_phase_name(rec.phase), what[rec.phase]);
			fflush(stdout);
			said = rec.phase;
			first = false;
		}
		etcd_kvs_free(&kvs);
		if (ok && strcmp(rec.id, id) == 0) {
			if (rec.phase == RESTORE_FAILED) {
				fprintf(stderr, "pgha ctl restore: the in-place restore failed: %s\nHINT: %s\n", rec.error,
					rec.touched ? "the leader's data directory was partly overwritten: fix the cause "
						      "and run the same restore again (it resumes with --delta)"
						    : "nothing was touched: fix the cause and run it again, or "
						      "`pgha ctl restore --cancel` to start the cluster as it was");
				return 1;
			}
			if (rec.phase == RESTORE_CANCELLED)
				return 1;
			if (rec.phase == RESTORE_DONE && done_ms == 0)
				done_ms = now_ms();
		}
		if (done_ms > 0) {
			/* Done: the leader runs; show the standbys coming back (a while at most). */
			struct cluster_view v;
			bool all = false;
			if (ctl_read_view(t, &v, NULL, &e) == 0) {
				all = true;
				for (size_t i = 0; i < v.nmembers; i++)
					all = all && v.members[i].state == (v.leader && strcmp(v.leader, v.members[i].name) == 0
									    ? STATE_RUNNING : STATE_STREAMING);
				if (all || now_ms() - done_ms > 120000) {
					printf("  %6.1fs  %s\n", (double)(now_ms() - start) / 1000.0,
					       all ? "every member runs on the new timeline" :
						     "the leader runs; some standbys are still rejoining:");
					print_members(&v);
				}
				cluster_view_free(&v);
			}
			if (all || now_ms() - done_ms > 120000)
				return 0;
		}
		sleep_ms(POLL_MS);
	}
	fprintf(stderr, "pgha ctl restore: still going after %ld s; `pgha ctl list` shows where it is\n", wait_s);
	return 1;
}

int ctl_restore_in_place(const struct ctl_target *t, const struct restore_target *target,
			 const struct backup_entry *b, bool force, long wait_s)
{
	struct pgha_err e;
	char *key = NULL;
	struct etcd_client *c = open_etcd(t, &key);
	if (c == NULL)
		return 1;
	struct cluster_view v = {0};
	struct etcd_kvs kvs = {0};
	int rc = 1;
	const struct etcd_kv *kv = NULL;
	struct restore_record old;
	bool old_ok = false;
	if (ctl_read_view(t, &v, NULL, &e) != 0 || read_record(c, key, &kvs, &kv, &old, &old_ok, &e) != 0) {
		fprintf(stderr, "pgha ctl restore: %s\n", e.msg);
		goto out;
	}
	/* A failed restore is retried by a new request; anything else active is waited for. */
	if (old_ok && restore_phase_active(old.phase) && old.phase != RESTORE_FAILED) {
		fprintf(stderr, "pgha ctl restore: an in-place restore to %s is under way (%s)\nHINT: `pgha ctl list` "
			"follows it\n", old.target, restore_phase_name(old.phase));
		goto out;
	}
	const struct member *leader = NULL;
	char why[512];
	bool retry = old_ok && old.phase == RESTORE_FAILED;
	if (retry) {
		leader = cluster_view_member(&v, old.member);
		if (leader == NULL) {
			fprintf(stderr, "pgha ctl restore: member %s, which restores, has no record\nHINT: start its agent\n",
				old.member);
			goto out;
		}
		printf("Retrying the failed in-place restore (%s) on %s.\n", old.error, old.member);
	} else if (unfit(c, t, &v, &leader, why, sizeof(why)) != NULL) {
		fprintf(stderr, "pgha ctl restore: %s\n", why);
		goto out;
	}
	if (!retry && !confirm(t, &v, leader, target, b, force)) {
		fprintf(stderr, "pgha ctl restore: not confirmed; nothing was changed\n");
		goto out;
	}
	struct restore_record rec = {0};
	backup_new_id(rec.id);
	snprintf(rec.target, sizeof(rec.target), "%s", target->text);
	snprintf(rec.set, sizeof(rec.set), "%s", b->label);
	snprintf(rec.member, sizeof(rec.member), "%s", leader->name);
	rec.phase = retry ? RESTORE_RESTORING : RESTORE_STOPPING;
	rec.requested_at = (int64_t)time(NULL);
	char *json = restore_record_encode(&rec);
	/* Created if absent, or replacing the record read above (a finished or failed one). */
	struct etcd_cmp cmp = {.key = key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
			       .number = kv ? kv->mod_revision : 0};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = json};
	bool done = false;
	int w = etcd_txn(c, &cmp, 1, &put, 1, NULL, 0, &done, NULL, &e);
	if (w != 0 || !done) {
		fprintf(stderr, "pgha ctl restore: %s\n", w != 0 ? e.msg : "the restore record changed meanwhile; "
			"nothing was written\nHINT: look at `pgha ctl list` and ask again");
		free(json);
		goto out;
	}
	free(json);
	printf("In-place restore %s asked (%s restores).\n", rec.id, leader->name);
	fflush(stdout);
	rc = wait_s > 0 ? follow(t, c, key, rec.id, wait_s) : 0;
out:
	etcd_kvs_free(&kvs);
	cluster_view_free(&v);
	free(key);
	etcd_free(c);
	return rc;
}

int ctl_restore_cancel(const struct ctl_target *t)
{
	struct pgha_err e;
	char *key = NULL;
	struct etcd_client *c = open_etcd(t, &key);
	if (c == NULL)
		return 1;
	struct etcd_kvs kvs = {0};
	const struct etcd_kv *kv = NULL;
	struct restore_record rec;
	bool ok = false;
	int rc = 1;
	if (read_record(c, key, &kvs, &kv, &rec, &ok, &e) != 0) {
		fprintf(stderr, "pgha ctl restore: %s\n", e.msg);
	} else if (kv == NULL || (ok && !restore_phase_active(rec.phase))) {
		printf("No in-place restore is under way.\n");
		rc = 0;
	} else if (ok && rec.phase != RESTORE_STOPPING && !(rec.phase == RESTORE_FAILED && !rec.touched)) {
		fprintf(stderr, "pgha ctl restore: the in-place restore to %s is %s: %s cannot be cancelled\nHINT: %s\n",
			rec.target, restore_phase_name(rec.phase), rec.member,
			rec.phase == RESTORE_FAILED ? "its data directory was partly overwritten; run the restore again "
						      "(it resumes with --delta)"
						    : "let it finish; `pgha ctl list` follows it");
	} else {
		/* Stopping, or failed before touching anything (or a record no agent can read): the cluster starts as it was. */
		char *json = NULL;
		struct etcd_cmp cmp = {.key = key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
				       .number = kv->mod_revision};
		struct etcd_op op = {.type = ETCD_OP_DELETE, .key = key};
		if (ok) {
			rec.phase = RESTORE_CANCELLED;
			rec.finished_at = (int64_t)time(NULL);
			json = restore_record_encode(&rec);
			op = (struct etcd_op){.type = ETCD_OP_PUT, .key = key, .value = json};
		}
		bool done = false;
		int w = etcd_txn(c, &cmp, 1, &op, 1, NULL, 0, &done, NULL, &e);
		if (w != 0 || !done) {
			fprintf(stderr, "pgha ctl restore: %s\n", w != 0 ? e.msg : "the restore record changed meanwhile; "
				"look at `pgha ctl list` and try again");
		} else {
			printf("In-place restore cancelled: nothing was restored; the members start as they were.\n");
			rc = 0;
		}
		free(json);
	}
	etcd_kvs_free(&kvs);
	free(key);
	etcd_free(c);
	return rc;
}
