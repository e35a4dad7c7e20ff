/*
 * backup_job.c — backups the cluster asks for, with [backup] on (a->bk).
 *
 * A backup is wanted when the request key exists (cluster/backup_key.h):
 * `pgha ctl backup` creates it, and so does the leader when its [backup]
 * schedule says a period is due (the schedule key records the last period
 * requested, so a new leader never requests a period twice). The member that
 * should run it is picked from the view the same way by everyone
 * (backup_pick_runner: a streaming standby on the leader's host, else the
 * leader); it claims the running key under its own lease in one transaction
 * that also checks the request is unchanged, so two members never run one
 * request, and a runner that dies releases the claim when its lease expires.
 * A request nobody claims for BK_TAKEOVER_MS is run by the leader.
 *
 * The run is `pgbackrest backup` as a child: polled each loop, never waited
 * for, so HA goes on; it dies with the agent (parent death signal), so a
 * claim that expired is never still copying. Progress goes to the running
 * key; the outcome to the last key, and the request is deleted if unchanged.
 * Each backup is annotated in the repository with the request id, who asked
 * and the member that ran it.
 */
#include "ha/agent_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/pgbackrest.h"
#include "common/log.h"
#include "common/util.h"

#define BK_TAKEOVER_MS 20000       /* a request the chosen standby has not claimed: the leader runs it */
#define BK_PROGRESS_MS 3000        /* progress written to the running key at most this often */
#define BK_RETRY_MS 2000           /* after a failed etcd write */

void backup_job_init(struct agent *a)
{
	struct agent_backup *b = &a->bk;
	b->fd = -1;
	b->k_request = xasprintf("%sbackup/request", a->keys.prefix);
	b->k_running = xasprintf("%sbackup/running", a->keys.prefix);
	b->k_last = xasprintf("%sbackup/last", a->keys.prefix);
	b->k_schedule = xasprintf("%sbackup/schedule", a->keys.prefix);
}

/* A key someone wrote badly: said once per message, then ignored (never acted on). */
static void bad_key(struct agent *a, const char *what, const char *msg)
{
	char seen[sizeof(a->bk.bad_seen)];
	snprintf(seen, sizeof(seen), "%s: %s", what, msg);
	if (strcmp(seen, a->bk.bad_seen) == 0)
		return;
	memcpy(a->bk.bad_seen, seen, sizeof(seen));
	log_warn("ignoring the %s key in etcd: %s\nHINT: it is written by pgha ctl backup and the agents; "
		 "delete it (pgha ctl backup --cancel does) and ask again", what, msg);
}

/* ---- the schedule (leader) ---------------------------------------------- */

static void schedule_step(struct agent *a)
{
	const struct backup_plan *p = &a->cfg.backup_plan;
	if (p->every_s[BACKUP_FULL] <= 0 && p->every_s[BACKUP_DIFF] <= 0 && p->every_s[BACKUP_INCR] <= 0)
		return;
	/* One at a time, and only once the repository took the leader's WAL. */
	if (a->view.backup_request != NULL || a->view.backup_running != NULL || !a->arc.checked ||
	    now_ms() < a->bk.retry_ms)
		return;
	struct backup_schedule s;
	struct pgha_err e;
	if (backup_schedule_decode(a->view.backup_schedule, &s, &e) != 0) {
		bad_key(a, "backup/schedule", e.msg);
		return;
	}
	enum backup_type type;
	int64_t period, now = wall_s();
	bool due = backup_schedule_due(p, &s, now, &type, &period), retry = false;
	if (!due && a->view.backup_last != NULL) {
		/* A failed scheduled backup does not wait for the next period. */
		struct backup_run last;
		retry = backup_run_decode(a->view.backup_last, "backup last", &last, &e) == 0 &&
			backup_schedule_retry_due(p, &last, now, &type, &period);
		if (retry)
			log_warn("backup schedule: the %s backup of period %lld failed (%s); asking for it again",
				 backup_type_name(type), (long long)period, last.error);
	}
	if (!due && !retry)
		return;
	struct backup_request r = {.type = type, .period = period, .requested_at = now};
	backup_new_id(r.id);
	snprintf(r.by, sizeof(r.by), "schedule");
	if (due)
		backup_schedule_mark(p, &s, type, now);
	char *req = backup_request_encode(&r), *sched = backup_schedule_encode(&s);
	/* The period is recorded with the request, both only if no one changed either meanwhile. */
	struct etcd_cmp cmp[] = {
		{.key = a->bk.k_request, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL, .number = 0},
		{.key = a->bk.k_schedule, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
		 .number = a->view.backup_schedule ? a->view.backup_schedule_rev : 0},
	};
	struct etcd_op put[] = {
		{.type = ETCD_OP_PUT, .key = a->bk.k_request, .value = req},
		{.type = ETCD_OP_PUT, .key = a->bk.k_schedule, .value = sched},
	};
	bool ok = false;
	if (etcd_txn(a->dcs.etcd, cmp, 2, put, 2, NULL, 0, &ok, NULL, &e) != 0) {
		log_warn("backup schedule: cannot request the %s backup due: %s", backup_type_name(type), e.msg);
		a->bk.retry_ms = now_ms() + BK_RETRY_MS;
	} else if (ok) {
		log_info("backup schedule: %s backup requested for period %lld (id %s)", backup_type_name(type),
			 (long long)period, r.id);
	}
	free(req);
	free(sched);
}

/* ---- the run -------------------------------------------------------------- */

/* pgBackRest's options to copy from this standby, with the start and stop on the leader. */
static int standby_args(struct agent *a, const struct member *leader, char **args, struct pgha_err *e)
{
	struct pgha_err sub;
	if (pgbr_path_check(leader->pg_path, &sub) != 0 || pgbr_path_check(leader->pg_socket, &sub) != 0)
		return err_set(e, "the leader's record gives a bad data or socket directory (%s)", sub.msg);
	args[0] = xasprintf("--pg1-path=%s", leader->pg_path);
	args[1] = xasprintf("--pg1-port=%d", leader->port);
	args[2] = xasprintf("--pg1-socket-path=%s", leader->pg_socket);
	args[3] = xasprintf("--pg2-path=%s", a->cfg.data_dir);
	args[4] = xasprintf("--pg2-port=%d", a->cfg.pg_port);
	args[5] = xasprintf("--pg2-socket-path=%s", a->cfg.socket_dir);
	args[6] = xasprintf("--pg2-user=%s", a->cfg.superuser);
	args[7] = xstrdup("--backup-standby");
	return 0;
}

#define BK_MAX_ARGS 24

static int spawn_backup(struct agent *a, const struct member *leader, struct pgha_err *e)
{
	struct agent_backup *b = &a->bk;
	char *own[16] = {0};
	size_t n = 0;
	own[n++] = xasprintf("--config=%s", a->arc.conf);
	own[n++] = xasprintf("--stanza=%s", a->cfg.cluster_name);
	own[n++] = xstrdup("--log-level-console=detail");   /* one line per file, with the percent done */
	own[n++] = xasprintf("--type=%s", backup_type_name(b->run.type));
	own[n++] = xasprintf("--annotation=pgha-id=%s", b->run.id);
	own[n++] = xasprintf("--annotation=pgha-by=%s", b->run.by[0] ? b->run.by : "ctl");
	own[n++] = xasprintf("--annotation=pgha-member=%s", a->cfg.name);
	if (b->run.period > 0)
		own[n++] = xasprintf("--annotation=pgha-period=%s:%lld", backup_type_name(b->run.type),
				     (long long)b->run.period);
	char *sb[8] = {0};
	int rc = b->run.standby ? standby_args(a, leader, sb, e) : 0;
	const char *argv[BK_MAX_ARGS];
	size_t k = 0;
	argv[k++] = a->arc.bin;
	for (size_t i = 0; i < n; i++)
		argv[k++] = own[i];
	for (size_t i = 0; i < 8 && sb[i]; i++)
		argv[k++] = sb[i];
	argv[k++] = "backup";
	argv[k] = NULL;
	char *passfile = xasprintf("PGPASSFILE=%s", a->cfg.pgpass);
	const char *env[] = {passfile, NULL};
	struct proc_spec spec = {.argv = argv, .user = &a->user, .out_fd = -1, .new_session = true,
				 .env_add = env, .parent_death_signal = SIGTERM};
	if (rc == 0)
		rc = proc_spawn_piped(&spec, &b->pid, &b->fd, e);
	for (size_t i = 0; i < n; i++)
		free(own[i]);
	for (size_t i = 0; i < 8; i++)
		free(sb[i]);
	free(passfile);
	return rc;
}

/*
 * The outcome, only while the claim is still ours (it is under our lease: an
 * agent that lost etcd past its ttl may find another member's claim there),
 * and the request deleted only if it is still the one this run served.
 */
static void write_finish(struct agent *a)
{
	struct agent_backup *b = &a->bk;
	struct etcd_cmp cmp[] = {
		{.key = b->k_running, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = b->claim},
		{.key = b->k_request, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL, .number = b->request_rev},
	};
	struct etcd_op done[] = {
		{.type = ETCD_OP_PUT, .key = b->k_last, .value = b->finish},
		{.type = ETCD_OP_DELETE, .key = b->k_running},
		{.type = ETCD_OP_DELETE, .key = b->k_request},
	};
	bool both = false, ours = false;
	struct pgha_err e;
	if (etcd_txn(a->dcs.etcd, cmp, 2, done, 3, NULL, 0, &both, NULL, &e) != 0 ||
	    (!both && etcd_txn(a->dcs.etcd, cmp, 1, done, 2, NULL, 0, &ours, NULL, &e) != 0)) {
		log_warn("backup %s: cannot record the outcome in etcd (will retry): %s", b->run.id, e.msg);
		b->retry_ms = now_ms() + BK_RETRY_MS;
		return;
	}
	if (!both && !ours)
		log_warn("backup %s: the claim is no longer this member's (its lease expired?): the outcome is not "
			 "recorded; the member holding the claim now runs the request", b->run.id);
	free(b->finish);
	b->finish = NULL;
}

/* Progress, only into our own claim; false when the claim is no longer ours. */
static bool put_progress(struct agent *a)
{
	struct agent_backup *b = &a->bk;
	char *val = backup_run_encode(&b->run);
	bool done = false;
	struct pgha_err e;
	int rc = etcd_put_if_value(a->dcs.etcd, b->k_running, b->claim, val, a->dcs.lease, &done, &e);
	b->put_ms = now_ms();
	if (rc == 0 && done) {
		free(b->claim);
		b->claim = val;
		b->put_percent = b->run.percent;
		return true;
	}
	free(val);
	return rc != 0;   /* etcd unreachable: try again later, the claim may well be ours */
}

/* The child ended (or could not start): the last key says how. */
static void finished(struct agent *a, int code, const char *why)
{
	struct agent_backup *b = &a->bk;
	struct backup_run *r = &b->run;
	r->done = true;
	r->finished_at = wall_s();
	r->ok = why == NULL && code == 0;
	const char *t = sb_str(&b->out);
	pgbr_backup_summary(t, r->label, sizeof(r->label), r->size, sizeof(r->size));
	if (why != NULL) {
		snprintf(r->error, sizeof(r->error), "%s", why);
	} else if (code != 0) {
		char reason[200], exitdesc[40];
		pgbr_reason(t, reason, sizeof(reason));
		proc_describe_exit(code, exitdesc, sizeof(exitdesc));
		snprintf(r->error, sizeof(r->error), "%s (%s)", reason[0] ? reason : "no output", exitdesc);
	}
	if (r->ok)
		log_info("backup %s: %s backup %s done in %lld s (%s%s)", r->id, backup_type_name(r->type), r->label,
			 (long long)(r->finished_at - r->started_at), r->size[0] ? r->size : "size unknown",
			 r->standby ? ", copied from this standby" : "");
	else
		log_error("backup %s: %s backup failed: %s\nHINT: pgBackRest's log is in %s/log; the repository "
			  "keeps only complete backups (a later run resumes or removes this one)", r->id,
			  backup_type_name(r->type), r->error, a->cfg.backup_work_dir);
	free(b->finish);
	b->finish = backup_run_encode(r);
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	b->pid = 0;
	write_finish(a);
}

static void poll_run(struct agent *a)
{
	struct agent_backup *b = &a->bk;
	pgbr_read_tail(b->fd, &b->out);
	int code = 0;
	if (proc_poll(b->pid, &code) != 0) {
		pgbr_read_tail(b->fd, &b->out);
		finished(a, code, b->cancelled && code != 0 ? "cancelled: the request was withdrawn" : NULL);
		return;
	}
	/* Withdrawn (`ctl backup --cancel`): pgBackRest stops on SIGTERM and keeps the repository sound. */
	if (!b->cancelled && a->view.backup_request_rev != b->request_rev) {
		log_info("backup %s: the request was withdrawn; stopping pgbackrest (pid %d)", b->run.id, (int)b->pid);
		kill(b->pid, SIGTERM);
		b->cancelled = true;
	}
	int pct = pgbr_backup_percent(sb_str(&b->out));
	if (pct < 0 || pct == b->put_percent || now_ms() - b->put_ms < BK_PROGRESS_MS)
		return;
	b->run.percent = pct;
	if (!put_progress(a) && !b->cancelled) {
		log_warn("backup %s: the claim is no longer this member's (its lease expired?); stopping pgbackrest "
			 "(pid %d): the member holding the claim now runs the request", b->run.id, (int)b->pid);
		kill(b->pid, SIGTERM);
		b->cancelled = true;
	}
}

/* Claim the request and start pgbackrest; false if another member got it first. */
static void claim_and_run(struct agent *a, const struct backup_request *req, const struct member *leader,
			  bool standby)
{
	struct agent_backup *b = &a->bk;
	memset(&b->run, 0, sizeof(b->run));
	snprintf(b->run.id, sizeof(b->run.id), "%s", req->id);
	b->run.type = req->type;
	snprintf(b->run.member, sizeof(b->run.member), "%s", a->cfg.name);
	b->run.standby = standby;
	b->run.started_at = wall_s();
	b->run.percent = 0;
	snprintf(b->run.by, sizeof(b->run.by), "%s", req->by);
	b->run.period = req->period;
	b->request_rev = a->view.backup_request_rev;
	free(b->claim);
	b->claim = backup_run_encode(&b->run);
	const char *val = b->claim;
	struct etcd_cmp cmp[] = {
		{.key = b->k_running, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL, .number = 0},
		{.key = b->k_request, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL, .number = b->request_rev},
	};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = b->k_running, .value = val, .lease = a->dcs.lease};
	bool claimed = false;
	struct pgha_err e;
	int rc = etcd_txn(a->dcs.etcd, cmp, 2, &put, 1, NULL, 0, &claimed, NULL, &e);
	if (rc != 0) {
		log_warn("backup %s: cannot claim it in etcd: %s", req->id, e.msg);
		b->retry_ms = now_ms() + BK_RETRY_MS;
		return;
	}
	if (!claimed)
		return;
	sb_reset(&b->out);
	b->cancelled = false;
	b->put_percent = 0;
	b->put_ms = now_ms();
	if (spawn_backup(a, leader, &e) != 0) {
		finished(a, 0, e.msg);
		return;
	}
	log_info("backup %s: %s backup started (pid %d, asked by %s)%s", req->id, backup_type_name(req->type),
		 (int)b->pid, req->by[0] ? req->by : "ctl", standby ? ", copying from this standby" : "");
}

static void serve_request(struct agent *a)
{
	struct agent_backup *b = &a->bk;
	const struct cluster_view *v = &a->view;
	struct backup_request req;
	struct backup_run running;
	struct pgha_err e;
	if (v->backup_running != NULL) {
		if (backup_run_decode(v->backup_running, "backup running", &running, &e) != 0) {
			bad_key(a, "backup/running", e.msg);
			return;
		}
		/* Ours from before a restart of this agent (whose child died with it): let it go. */
		if (strcmp(running.member, a->cfg.name) == 0) {
			bool gone = false;
			if (etcd_delete_if_value(a->dcs.etcd, b->k_running, v->backup_running, &gone, &e) == 0 && gone)
				log_info("backup %s: released the claim left by this member's previous run", running.id);
		}
		return;
	}
	if (v->backup_request == NULL)
		return;
	if (backup_request_decode(v->backup_request, &req, &e) != 0) {
		bad_key(a, "backup/request", e.msg);
		return;
	}
	const struct member *leader = v->leader ? cluster_view_member(v, v->leader) : NULL;
	/* The repository must be taking the leader's WAL, or the backup could not complete. */
	if (leader == NULL || strcmp(leader->archive, "ok") != 0)
		return;
	if (strcmp(b->seen_id, req.id) != 0) {
		snprintf(b->seen_id, sizeof(b->seen_id), "%s", req.id);
		b->seen_ms = now_ms();
	}
	bool standby = false;
	const struct member *runner = backup_pick_runner(v, &standby);
	bool me_leader = strcmp(v->leader, a->cfg.name) == 0;
	if (runner != NULL && strcmp(runner->name, a->cfg.name) == 0) {
		/* As the view says; PostgreSQL must agree (a standby that stopped streaming lets the leader run it). */
		if (standby ? a->pg.phase == PG_RUNNING && a->pg.have_st && a->pg.st.in_recovery : node_is_primary(a))
			claim_and_run(a, &req, leader, standby);
	} else if (me_leader && node_is_primary(a) && now_ms() - b->seen_ms >= BK_TAKEOVER_MS) {
		log_info("backup %s: %s has not taken it in %d s; running it on the leader", req.id,
			 runner ? runner->name : "no standby", BK_TAKEOVER_MS / 1000);
		claim_and_run(a, &req, leader, false);
	}
}

void backup_job_step(struct agent *a)
{
	struct agent_backup *b = &a->bk;
	if (!a->arc.on || !a->dcs.ok)
		return;
	if (b->pid > 0) {
		poll_run(a);
		return;
	}
	if (now_ms() < b->retry_ms)
		return;
	if (b->finish != NULL) {
		write_finish(a);
		return;
	}
	/* An in-place restore stops every PostgreSQL: nothing to back up until it is done. */
	if (a->rip.active)
		return;
	if (a->view.leader != NULL && strcmp(a->view.leader, a->cfg.name) == 0 && node_is_primary(a))
		schedule_step(a);
	serve_request(a);
}

void backup_job_free(struct agent *a)
{
	struct agent_backup *b = &a->bk;
	if (b->pid > 0) {
		int code;
		/* pgBackRest stops its workers on SIGTERM; the claim goes with this agent's lease. */
		kill(b->pid, SIGTERM);
		if (proc_wait(b->pid, 10000, &code) == 0) {
			kill(-b->pid, SIGKILL);
			proc_wait(b->pid, 5000, &code);
		}
	}
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	sb_free(&b->out);
	free(b->finish);
	free(b->claim);
	free(b->k_request);
	free(b->k_running);
	free(b->k_last);
	free(b->k_schedule);
	b->finish = b->claim = b->k_request = b->k_running = b->k_last = b->k_schedule = NULL;
}
