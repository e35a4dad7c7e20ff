/*
 * backup_key.c — the backup records and their planning (see backup_key.h).
 */
#include "cluster/backup_key.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/config_key.h"
#include "cluster/record.h"
#include "cluster/restore_key.h"
#include "cluster/switchover.h"

static const char *const type_keys[BACKUP_NTYPES] = {"full", "diff", "incr"};

void backup_new_id(char id[BACKUP_ID_MAX])
{
	unsigned char b[8] = {0};
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof(b)) : -1;
	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)sizeof(b)) {
		/* Unique enough to tell two requests apart; not a secret. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
		memcpy(b, &x, sizeof(b));
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(id + 2 * i, 3, "%02x", b[i]);
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= BACKUP_ID_MAX)
		return false;
	return strspn(id, "0123456789abcdef") == n;
}

static int get_id(const json_t *o, const char *what, char id[BACKUP_ID_MAX], struct pgha_err *e)
{
	if (rec_str(o, what, "id", id, BACKUP_ID_MAX, true, false, e) != 0)
		return -1;
	if (!id_ok(id))
		return err_set(e, "%s: \"id\" must be 1 to %d lowercase hex digits", what, BACKUP_ID_MAX - 1);
	return 0;
}

static int get_type(const json_t *o, const char *what, enum backup_type *t, struct pgha_err *e)
{
	char s[8];
	if (rec_str(o, what, "type", s, sizeof(s), true, true, e) != 0)
		return -1;
	if (backup_type_parse(s, t) != 0)
		return err_set(e, "%s: \"type\" must be full, diff or incr", what);
	return 0;
}

static int get_by(const json_t *o, const char *what, char by[16], struct pgha_err *e)
{
	if (rec_str(o, what, "by", by, 16, false, false, e) != 0)
		return -1;
	if (by[0] != '\0' && strcmp(by, "ctl") != 0 && strcmp(by, "schedule") != 0)
		return err_set(e, "%s: \"by\" must be ctl or schedule", what);
	return 0;
}

char *backup_request_encode(const struct backup_request *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "type", json_string(backup_type_name(r->type)));
	json_object_set_new(o, "by", json_string(r->by));
	if (r->period > 0)
		json_object_set_new(o, "period", json_integer(r->period));
	json_object_set_new(o, "requested_at", json_integer(r->requested_at));
	return rec_dump(o);
}

int backup_request_decode(const char *json, struct backup_request *out, struct pgha_err *e)
{
	static const char what[] = "backup request";
	struct backup_request r;
	memset(&r, 0, sizeof(r));
	json_t *o = rec_load(json, json ? strlen(json) : 0, what, e);
	if (o == NULL)
		return -1;
	int rc = -1;
	if (get_id(o, what, r.id, e) != 0 || get_type(o, what, &r.type, e) != 0 || get_by(o, what, r.by, e) != 0 ||
	    rec_int(o, what, "period", 0, INT64_MAX, 0, &r.period, e) != 0 ||
	    rec_int(o, what, "requested_at", 0, INT64_MAX, 0, &r.requested_at, e) != 0)
		goto out;
	*out = r;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

char *backup_run_encode(const struct backup_run *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "type", json_string(backup_type_name(r->type)));
	json_object_set_new(o, "member", json_string(r->member));
	json_object_set_new(o, "standby", json_boolean(r->standby));
	json_object_set_new(o, "started_at", json_integer(r->started_at));
	if (r->by[0])
		json_object_set_new(o, "by", json_string(r->by));
	if (r->period > 0)
		json_object_set_new(o, "period", json_integer(r->period));
	if (!r->done) {
		json_object_set_new(o, "percent", json_integer(r->percent));
		return rec_dump(o);
	}
	json_object_set_new(o, "ok", json_boolean(r->ok));
	if (r->label[0])
		json_object_set_new(o, "label", REC_FIXED_STR(r->label));
	if (r->size[0])
		json_object_set_new(o, "size", REC_FIXED_STR(r->size));
	if (r->error[0])
		json_object_set_new(o, "error", REC_FIXED_STR(r->error));
	json_object_set_new(o, "finished_at", json_integer(r->finished_at));
	return rec_dump(o);
}

int backup_run_decode(const char *json, const char *what, struct backup_run *out, struct pgha_err *e)
{
	struct backup_run r;
	memset(&r, 0, sizeof(r));
	json_t *o = rec_load(json, json ? strlen(json) : 0, what, e);
	if (o == NULL)
		return -1;
	int rc = -1;
	int64_t percent;
	if (get_id(o, what, r.id, e) != 0 || get_type(o, what, &r.type, e) != 0 ||
	    rec_str(o, what, "member", r.member, sizeof(r.member), true, false, e) != 0 ||
	    rec_bool(o, what, "standby", false, &r.standby, e) != 0 ||
	    rec_int(o, what, "started_at", 0, INT64_MAX, 0, &r.started_at, e) != 0 ||
	    get_by(o, what, r.by, e) != 0 ||
	    rec_int(o, what, "period", 0, INT64_MAX, 0, &r.period, e) != 0 ||
	    rec_int(o, what, "percent", -1, 100, -1, &percent, e) != 0)
		goto out;
	if (!member_name_valid(r.member)) {
		err_set(e, "%s: \"member\" is not a member name", what);
		goto out;
	}
	r.percent = (int)percent;
	r.done = rec_field(o, "ok") != NULL;
	if (r.done && (rec_bool(o, what, "ok", false, &r.ok, e) != 0 ||
		       rec_str(o, what, "label", r.label, sizeof(r.label), false, false, e) != 0 ||
		       rec_str(o, what, "size", r.size, sizeof(r.size), false, true, e) != 0 ||
		       rec_str(o, what, "error", r.error, sizeof(r.error), false, true, e) != 0 ||
		       rec_int(o, what, "finished_at", 0, INT64_MAX, 0, &r.finished_at, e) != 0))
		goto out;
	*out = r;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/* ---- the schedule ------------------------------------------------------ */

char *backup_schedule_encode(const struct backup_schedule *s)
{
	json_t *o = json_object();
	for (int t = 0; t < BACKUP_NTYPES; t++)
		if (s->period[t] >= 0)
			json_object_set_new(o, type_keys[t], json_integer(s->period[t]));
	return rec_dump(o);
}

int backup_schedule_decode(const char *json, struct backup_schedule *out, struct pgha_err *e)
{
	for (int t = 0; t < BACKUP_NTYPES; t++)
		out->period[t] = -1;
	if (json == NULL)
		return 0;
	json_t *o = rec_load(json, strlen(json), "backup schedule", e);
	if (o == NULL)
		return -1;
	int rc = 0;
	for (int t = 0; t < BACKUP_NTYPES && rc == 0; t++)
		rc = rec_int(o, "backup schedule", type_keys[t], 0, INT64_MAX, -1, &out->period[t], e);
	json_decref(o);
	return rc;
}

static int64_t period_at(const struct backup_plan *p, enum backup_type t, int64_t now_s)
{
	int64_t x = now_s - p->offset_s;
	int64_t every = p->every_s[t];
	/* floor division: a time before the first period is period -1 */
	return x >= 0 ? x / every : -((-x + every - 1) / every);
}

bool backup_schedule_due(const struct backup_plan *p, const struct backup_schedule *s, int64_t now_s,
			 enum backup_type *type, int64_t *period)
{
	for (int t = 0; t < BACKUP_NTYPES; t++) {
		if (p->every_s[t] <= 0)
			continue;
		int64_t cur = period_at(p, (enum backup_type)t, now_s);
		if (cur >= 0 && cur > s->period[t]) {
			*type = (enum backup_type)t;
			*period = cur;
			return true;
		}
	}
	return false;
}

bool backup_schedule_retry_due(const struct backup_plan *p, const struct backup_run *last, int64_t now_s,
			       enum backup_type *type, int64_t *period)
{
	if (last == NULL || !last->done || last->ok || strcmp(last->by, "schedule") != 0 ||
	    (int)last->type < 0 || last->type >= BACKUP_NTYPES || p->every_s[last->type] <= 0)
		return false;
	if (period_at(p, last->type, now_s) != last->period || now_s - last->finished_at < BACKUP_RETRY_S)
		return false;
	*type = last->type;
	*period = last->period;
	return true;
}

void backup_schedule_mark(const struct backup_plan *p, struct backup_schedule *s, enum backup_type type,
			  int64_t now_s)
{
	for (int t = type; t < BACKUP_NTYPES; t++)
		if (p->every_s[t] > 0)
			s->period[t] = period_at(p, (enum backup_type)t, now_s);
}

/* ---- who runs it ------------------------------------------------------- */

const struct member *backup_pick_runner(const struct cluster_view *v, bool *standby)
{
	*standby = false;
	const struct member *leader = v->leader ? cluster_view_member(v, v->leader) : NULL;
	if (leader == NULL || leader->backup_host[0] == '\0')
		return NULL;
	const struct member *best = NULL;
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		if (m == leader || m->role != ROLE_REPLICA || m->state != STATE_STREAMING ||
		    strcmp(m->backup_host, leader->backup_host) != 0 || m->pg_path[0] == '\0' ||
		    m->lag_bytes < 0 || m->lag_bytes > BACKUP_STANDBY_MAX_LAG)
			continue;
		if (best == NULL || m->lag_bytes < best->lag_bytes ||
		    (m->lag_bytes == best->lag_bytes && strcmp(m->name, best->name) < 0))
			best = m;
	}
	if (best == NULL)
		return leader;
	*standby = true;
	return best;
}

/* ---- what operators see ------------------------------------------------ */

static json_t *key_json(const char *raw, bool request, const char *what)
{
	if (raw == NULL)
		return json_null();
	struct pgha_err e;
	char *txt = NULL;
	if (request) {
		struct backup_request r;
		if (backup_request_decode(raw, &r, &e) == 0)
			txt = backup_request_encode(&r);
	} else {
		struct backup_run r;
		if (backup_run_decode(raw, what, &r, &e) == 0)
			txt = backup_run_encode(&r);
	}
	if (txt == NULL) {
		json_t *o = json_object();
		json_object_set_new(o, "invalid", json_string(e.msg));
		return o;
	}
	json_t *o = json_loads(txt, 0, NULL);
	free(txt);
	return o ? o : json_null();
}

char *backup_view_encode(const struct cluster_view *v, const char *cluster_name)
{
	char *base = cluster_view_encode(v, cluster_name);
	json_t *o = json_loads(base, JSON_PRESERVE_ORDER, NULL);
	if (o == NULL)
		return base;
	free(base);
	json_t *b = json_object();
	json_object_set_new(b, "request", key_json(v->backup_request, true, "backup request"));
	json_object_set_new(b, "running", key_json(v->backup_running, false, "backup running"));
	json_object_set_new(b, "last", key_json(v->backup_last, false, "backup last"));
	json_object_set_new(o, "backup", b);
	json_object_set_new(o, "restore", restore_view_json(v));
	json_object_set_new(o, "paused", json_boolean(dyncfg_paused(v->config)));
	/* The proxies as they registered (their client count is refreshed every 10 s). */
	json_t *px = json_array();
	for (size_t i = 0; i < v->nproxies; i++) {
		struct proxy_record r;
		struct pgha_err e;
		if (proxy_record_decode(v->proxies[i], strlen(v->proxies[i]), &r, &e) != 0) {
			json_array_append_new(px, json_pack("{s:s}", "invalid", e.msg));
			continue;
		}
		json_array_append_new(px, json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s}", "name", r.name, "listen",
						    r.listen, "listen_ro", r.listen_ro, "clients", r.clients, "waiting",
						    r.waiting, "pools", r.pools, "paused_for", r.paused_for));
	}
	json_object_set_new(o, "proxies", px);
	/* A planned switchover under way (or its outcome until the record goes). */
	struct switchover so;
	struct pgha_err se;
	if (v->switchover != NULL && switchover_decode(v->switchover, strlen(v->switchover), &so, &se) == 0)
		json_object_set_new(o, "switchover", json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "id", so.id, "from", so.from,
							       "to", so.to, "phase", so_phase_name(so.phase), "at",
							       (json_int_t)so.at_ms, "reason", so.reason));
	else
		json_object_set_new(o, "switchover", json_null());
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

static void age(int64_t secs, char *out, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, len, "%llds", (long long)secs);
	else if (secs < 7200)
		snprintf(out, len, "%lldmin", (long long)(secs / 60));
	else if (secs < 172800)
		snprintf(out, len, "%lldh", (long long)(secs / 3600));
	else
		snprintf(out, len, "%lldd", (long long)(secs / 86400));
}

void backup_view_describe(const struct cluster_view *v, int64_t now_s, char *out, size_t len)
{
	const struct member *leader = v->leader ? cluster_view_member(v, v->leader) : NULL;
	bool on = leader != NULL && leader->backup_host[0] != '\0';
	out[0] = '\0';
	if (!on && v->backup_last == NULL && v->backup_running == NULL)
		return;
	struct pgha_err e;
	struct backup_run r;
	char a[32];
	size_t n = 0;
#define ADD(...) (n += (size_t)snprintf(out + n, n < len ? len - n : 0, __VA_ARGS__))
	ADD("Backups: ");
	if (v->backup_last == NULL) {
		ADD("none taken by pgha yet");
	} else if (backup_run_decode(v->backup_last, "backup last", &r, &e) != 0) {
		ADD("last: %s", e.msg);
	} else {
		age(now_s - r.finished_at, a, sizeof(a));
		if (r.ok)
			ADD("last %s %s ok %s ago (on %s%s%s%s)", backup_type_name(r.type), r.label, a, r.member,
			    r.standby ? ", from the standby" : "", r.size[0] ? ", " : "", r.size);
		else
			ADD("last %s FAILED %s ago on %s: %.120s", backup_type_name(r.type), a, r.member, r.error);
	}
	if (v->backup_running != NULL && backup_run_decode(v->backup_running, "backup running", &r, &e) == 0)
		ADD("; running: %s on %s, %d%%", backup_type_name(r.type), r.member, r.percent < 0 ? 0 : r.percent);
	if (on && leader->archived_at > 0) {
		age(now_s - leader->archived_at, a, sizeof(a));
		ADD("; WAL last archived %s ago", a);
	} else if (on && leader->archive[0] && strcmp(leader->archive, "ok") != 0) {
		ADD("; WAL archiving %.100s", leader->archive);
	}
#undef ADD
}
