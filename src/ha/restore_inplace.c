/*
 * restore_inplace.c — the running cluster rolled back to a recovery target
 * (`ctl restore --in-place`, the record in cluster/restore_key.h), as the
 * agent sees it (a->rip). Each loop: the record decoded (a bad one is said
 * once and ignored: never acted on), and this member's answer published (the
 * member record's restore_id once its PostgreSQL is stopped for it). decide
 * keeps every member stopped while the record is active; the member it names
 * moves it on: restoring (then `pgha restore-job --in-place` as a job),
 * restored or failed when the job ends, done once it runs as primary. Each
 * move is compared on the record's value as last read or written (ctl gives
 * every request a new id): a record changed by ctl meanwhile is never
 * overwritten.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/restore.h"
#include "common/log.h"
#include "common/util.h"

void rip_init(struct agent *a)
{
	a->rip.key = xasprintf("%srestore", a->keys.prefix);
}

void rip_free(struct agent *a)
{
	free(a->rip.key);
	free(a->rip.raw);
	a->rip.key = a->rip.raw = NULL;
}

void rip_step(struct agent *a)
{
	struct agent_restore *r = &a->rip;
	r->active = false;
	free(r->raw);
	r->raw = NULL;
	if (a->view.restore != NULL) {
		struct pgha_err e;
		struct restore_record rec;
		if (restore_record_decode(a->view.restore, &rec, &e) != 0) {
			log_warn_once("restore record", r->key, a->view.restore_rev,
				      "ignoring the restore key in etcd: %s\nHINT: it is written by pgha ctl restore "
				      "--in-place and the agents; delete it or ask again", e.msg);
		} else {
			r->rec = rec;
			r->raw = xstrdup(a->view.restore);
			r->active = restore_phase_active(rec.phase);
		}
	}
	/* Published: stopped for this restore (its leader waits for every member's). */
	bool stopped = a->pg.phase == PG_STOPPED && a->job.kind == JOB_NONE;
	snprintf(r->stopped_for, sizeof(r->stopped_for), "%s", r->active && stopped ? r->rec.id : "");
}

enum ha_restore rip_observed(const struct agent *a)
{
	const struct agent_restore *r = &a->rip;
	if (!r->active)
		return HA_RST_NONE;
	if (r->rec.phase == RESTORE_FAILED)
		return HA_RST_FAILED;
	if (strcmp(r->rec.member, a->cfg.name) != 0)
		return HA_RST_OTHER;
	if (r->rec.phase == RESTORE_RESTORED)
		return HA_RST_RESTORED;
	if (r->rec.phase == RESTORE_RESTORING || restore_all_stopped(&a->view, a->cfg.name, r->rec.id))
		return HA_RST_READY;
	return HA_RST_STOPPING;
}

/* The record moved to rec, compared on the value last read or written. false: not written. */
static bool rip_move(struct agent *a, const struct restore_record *rec)
{
	struct agent_restore *r = &a->rip;
	if (r->raw == NULL)
		return false;
	char *json = restore_record_encode(rec);
	struct etcd_cmp cmp = {.key = r->key, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = r->raw};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = r->key, .value = json};
	bool done = false;
	struct pgha_err e;
	if (etcd_txn(a->dcs.etcd, &cmp, 1, &put, 1, NULL, 0, &done, NULL, &e) != 0)
		log_warn("in-place restore: writing the restore record (%s): %s", restore_phase_name(rec->phase), e.msg);
	else if (!done)
		log_warn("in-place restore: the restore record changed meanwhile; not moving it to %s",
			 restore_phase_name(rec->phase));
	if (!done) {
		free(json);
		return false;
	}
	log_info("in-place restore %s: %s", rec->id, restore_phase_name(rec->phase));
	free(r->raw);
	r->raw = json;
	r->rec = *rec;
	return true;
}

static void rip_fail(struct agent *a, const char *why, bool touched)
{
	struct restore_record rec = a->rip.rec;
	rec.phase = RESTORE_FAILED;
	rec.touched = touched;
	rec.finished_at = wall_s();
	snprintf(rec.error, sizeof(rec.error), "%s", why);
	rip_move(a, &rec);
}

void rip_run(struct agent *a)
{
	struct agent_restore *r = &a->rip;
	if (r->rec.phase == RESTORE_STOPPING) {
		struct restore_record rec = r->rec;
		rec.phase = RESTORE_RESTORING;
		if (!rip_move(a, &rec))
			return;
	}
	struct pgha_err e;
	if (job_start_restore_inplace(a, r->rec.target, r->rec.set, &e) != 0) {
		node_set_error(a, "cannot start the in-place restore: %s", e.msg);
		rip_fail(a, e.msg, false);
		return;
	}
	snprintf(r->job_id, sizeof(r->job_id), "%s", r->rec.id);
	log_warn("in-place restore %s: restoring backup %s to %s into %s (--delta); every transaction after the "
		 "target is being discarded", r->rec.id, r->rec.set, r->rec.target, a->cfg.data_dir);
}

void rip_job_finished(struct agent *a, int code)
{
	struct agent_restore *r = &a->rip;
	bool same = r->active && strcmp(r->rec.id, r->job_id) == 0 && r->rec.phase == RESTORE_RESTORING;
	r->job_id[0] = '\0';
	if (!same) {
		log_warn("in-place restore: the record changed while the job ran; not recording its outcome");
		return;
	}
	if (code == 0) {
		struct restore_record rec = r->rec;
		rec.phase = RESTORE_RESTORED;
		rip_move(a, &rec);
		return;
	}
	/* The job's own last words ("restore failed: why", then a HINT line) say more than its exit code. */
	const char *tail = sb_str(&a->job.tail), *why = NULL;
	for (const char *p = strstr(tail, "restore failed: "); p != NULL; p = strstr(p + 1, "restore failed: "))
		why = p + strlen("restore failed: ");
	char msg[sizeof(r->rec.error)];
	if (why != NULL) {
		snprintf(msg, sizeof(msg), "%s", why);
		msg[strcspn(msg, "\n")] = '\0';
	} else {
		char how[64];
		proc_describe_exit(code, how, sizeof(how));
		snprintf(msg, sizeof(msg), "the restore job ended with %s (the agent's log has its output)", how);
	}
	rip_fail(a, msg, code != RESTORE_UNTOUCHED);
}

void rip_finish(struct agent *a)
{
	struct restore_record rec = a->rip.rec;
	rec.phase = RESTORE_DONE;
	rec.error[0] = '\0';
	rec.finished_at = wall_s();
	rec.timeline = a->pg.have_st ? a->pg.st.timeline : 0;
	rip_move(a, &rec);
}
