/*
 * restore_key.c — the in-place restore record (see restore_key.h).
 */
#include "cluster/restore_key.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/restore.h"
#include "cluster/record.h"
#include "common/util.h"

static const char *const phase_names[] = {
	[RESTORE_STOPPING] = "stopping", [RESTORE_RESTORING] = "restoring", [RESTORE_RESTORED] = "restored",
	[RESTORE_FAILED] = "failed",     [RESTORE_DONE] = "done",           [RESTORE_CANCELLED] = "cancelled",
};
#define NPHASES (sizeof(phase_names) / sizeof(phase_names[0]))

const char *restore_phase_name(enum restore_phase p)
{
	return (size_t)p < NPHASES ? phase_names[p] : "?";
}

bool restore_phase_active(enum restore_phase p)
{
	return p == RESTORE_STOPPING || p == RESTORE_RESTORING || p == RESTORE_RESTORED || p == RESTORE_FAILED;
}

char *restore_record_encode(const struct restore_record *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "target", REC_FIXED_STR(r->target));
	json_object_set_new(o, "set", REC_FIXED_STR(r->set));
	json_object_set_new(o, "member", REC_FIXED_STR(r->member));
	json_object_set_new(o, "phase", json_string(restore_phase_name(r->phase)));
	json_object_set_new(o, "requested_at", json_integer(r->requested_at));
	if (r->error[0])
		json_object_set_new(o, "error", REC_FIXED_STR(r->error));
	if (r->phase == RESTORE_FAILED)
		json_object_set_new(o, "touched", json_boolean(r->touched));
	if (r->timeline > 0)
		json_object_set_new(o, "timeline", json_integer(r->timeline));
	if (r->finished_at > 0)
		json_object_set_new(o, "finished_at", json_integer(r->finished_at));
	return rec_dump(o);
}

int restore_record_decode(const char *json, struct restore_record *out, struct pgha_err *e)
{
	static const char what[] = "restore record";
	struct restore_record r;
	memset(&r, 0, sizeof(r));
	json_t *o = rec_load(json, json ? strlen(json) : 0, what, e);
	if (o == NULL)
		return -1;
	int rc = -1;
	char phase[16];
	int64_t tl = 0;
	if (rec_str(o, what, "id", r.id, sizeof(r.id), true, false, e) != 0 ||
	    rec_str(o, what, "target", r.target, sizeof(r.target), true, false, e) != 0 ||
	    rec_str(o, what, "set", r.set, sizeof(r.set), true, false, e) != 0 ||
	    rec_str(o, what, "member", r.member, sizeof(r.member), true, false, e) != 0 ||
	    rec_str(o, what, "phase", phase, sizeof(phase), true, false, e) != 0 ||
	    rec_int(o, what, "requested_at", 0, INT64_MAX, 0, &r.requested_at, e) != 0 ||
	    rec_str(o, what, "error", r.error, sizeof(r.error), false, true, e) != 0 ||
	    rec_bool(o, what, "touched", true, &r.touched, e) != 0 ||
	    rec_int(o, what, "timeline", 0, UINT32_MAX, 0, &tl, e) != 0 ||
	    rec_int(o, what, "finished_at", 0, INT64_MAX, 0, &r.finished_at, e) != 0)
		goto out;
	size_t n = strlen(r.id);
	if (n == 0 || strspn(r.id, "0123456789abcdef") != n) {
		err_set(e, "%s: \"id\" must be 1 to %d lowercase hex digits", what, BACKUP_ID_MAX - 1);
		goto out;
	}
	if (!member_name_valid(r.member)) {
		err_set(e, "%s: \"member\" is not a member name", what);
		goto out;
	}
	/* The label reaches pgbackrest's argv: only what pgBackRest labels are made of. */
	if (r.set[0] == '\0' || strspn(r.set, "0123456789FDI_-") != strlen(r.set)) {
		err_set(e, "%s: \"set\" is not a pgBackRest backup label", what);
		goto out;
	}
	struct restore_target t;
	struct pgha_err te;
	if (restore_target_parse(r.target, &t, &te) != 0) {
		err_set(e, "%s: \"target\": %s", what, te.msg);
		goto out;
	}
	size_t p;
	for (p = 0; p < NPHASES; p++)
		if (strcmp(phase, phase_names[p]) == 0)
			break;
	if (p == NPHASES) {
		err_set(e, "%s: \"phase\" must be stopping, restoring, restored, failed, done or cancelled", what);
		goto out;
	}
	r.phase = (enum restore_phase)p;
	r.timeline = (uint32_t)tl;
	*out = r;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

bool restore_all_stopped(const struct cluster_view *v, const char *self, const char *id)
{
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		if (strcmp(m->name, self) != 0 && strcmp(m->restore_id, id) != 0)
			return false;
	}
	return true;
}

json_t *restore_view_json(const struct cluster_view *v)
{
	if (v->restore == NULL)
		return json_null();
	struct pgha_err e;
	struct restore_record r;
	if (restore_record_decode(v->restore, &r, &e) != 0) {
		json_t *o = json_object();
		json_object_set_new(o, "invalid", json_string(e.msg));
		return o;
	}
	char *txt = restore_record_encode(&r);
	json_t *o = json_loads(txt, 0, NULL);
	free(txt);
	return o ? o : json_null();
}

void restore_view_describe(const struct cluster_view *v, char *out, size_t len)
{
	out[0] = '\0';
	if (v->restore == NULL)
		return;
	struct pgha_err e;
	struct restore_record r;
	if (restore_record_decode(v->restore, &r, &e) != 0) {
		snprintf(out, len, "In-place restore: the restore key is not valid (agents ignore it): %s", e.msg);
		return;
	}
	if (restore_phase_active(r.phase)) {
		snprintf(out, len, "In-place restore to %s by %s: %s%s%s%s", r.target, r.member, restore_phase_name(r.phase),
			 r.phase == RESTORE_FAILED ? ": " : " (every member stays stopped until it is done)",
			 r.phase == RESTORE_FAILED ? r.error : "",
			 r.phase == RESTORE_FAILED ? (r.touched ? "\n  HINT: run the same restore again (it resumes "
								  "with --delta)" : "\n  HINT: run it again, or "
								  "`pgha ctl restore --cancel`") : "");
		return;
	}
	char when[32] = "";
	if (r.finished_at > 0)
		format_utc(r.finished_at, when, sizeof(when));
	if (r.phase == RESTORE_DONE)
		snprintf(out, len, "Last in-place restore: to %s, done %s UTC (timeline %u)", r.target, when, r.timeline);
	else
		snprintf(out, len, "Last in-place restore: to %s, cancelled %s UTC", r.target, when);
}
