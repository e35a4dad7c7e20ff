/*
 * switchover.c — JSON of the switchover request, of proxy records, of the
 * failover request and of member requests (see switchover.h for the protocols).
 */
#include "cluster/switchover.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/member.h"
#include "cluster/record.h"
#include "common/util.h"

static const char *const phase_names[] = {
	[SO_SCHEDULED] = "scheduled", [SO_PAUSING] = "pausing", [SO_DEMOTING] = "demoting",
	[SO_PROMOTING] = "promoting", [SO_DONE] = "done",      [SO_ABORTED] = "aborted",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *so_phase_name(enum so_phase p)
{
	return (size_t)p < NELEM(phase_names) ? phase_names[p] : "unknown";
}

bool so_phase_holds(enum so_phase p)
{
	return p == SO_PAUSING || p == SO_DEMOTING || p == SO_PROMOTING;
}

/* Strings: absent = "", present must be a string that fits. */
static int get_str(json_t *o, const char *field, char *out, size_t size, bool required, struct pgha_err *e)
{
	json_t *v = json_object_get(o, field);
	out[0] = '\0';
	if (v == NULL || json_is_null(v))
		return required ? err_set(e, "field \"%s\" is missing", field) : 0;
	if (!json_is_string(v))
		return err_set(e, "field \"%s\" is not a string", field);
	size_t n = json_string_length(v);
	if (n >= size)
		return err_set(e, "field \"%s\" is too long (%zu bytes, at most %zu)", field, n, size - 1);
	if (memchr(json_string_value(v), '\0', n) != NULL)
		return err_set(e, "field \"%s\" holds a NUL byte", field);
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

static int get_int(json_t *o, const char *field, int64_t min, int64_t max, int64_t *out, struct pgha_err *e)
{
	json_t *v = json_object_get(o, field);
	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return err_set(e, "field \"%s\" is not an integer", field);
	json_int_t n = json_integer_value(v);
	if (n < min || n > max)
		return err_set(e, "field \"%s\" = %lld is out of range", field, (long long)n);
	*out = n;
	return 0;
}

int switchover_decode(const char *json, size_t len, struct switchover *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	json_t *o = rec_load(json, len, "the switchover record", e);
	if (o == NULL)
		return -1;
	int rc = -1;
	char phase[32], kind[16];
	int64_t at, deadline;
	if (get_str(o, "id", out->id, sizeof(out->id), true, e) != 0 ||
	    get_str(o, "kind", kind, sizeof(kind), false, e) != 0 ||
	    get_str(o, "from", out->from, sizeof(out->from), true, e) != 0 ||
	    get_str(o, "to", out->to, sizeof(out->to), true, e) != 0 ||
	    get_str(o, "phase", phase, sizeof(phase), true, e) != 0 ||
	    get_str(o, "reason", out->reason, sizeof(out->reason), false, e) != 0 ||
	    get_int(o, "at", 0, INT64_MAX, &at, e) != 0 || get_int(o, "deadline", 0, INT64_MAX, &deadline, e) != 0)
		goto out;
	size_t i;
	for (i = 0; i < NELEM(phase_names); i++)
		if (strcmp(phase, phase_names[i]) == 0)
			break;
	if (i == NELEM(phase_names)) {
		err_set(e, "field \"phase\" = \"%s\" is not a phase (scheduled, pausing, demoting, promoting, done, aborted)",
			phase);
		goto out;
	}
	if (kind[0] != '\0' && strcmp(kind, "member") != 0 && strcmp(kind, "cluster") != 0) {
		err_set(e, "field \"kind\" = \"%s\" is not member or cluster", kind);
		goto out;
	}
	out->clusters = strcmp(kind, "cluster") == 0;
	if (out->id[0] == '\0' || out->to[0] == '\0') {
		err_set(e, "field \"%s\" is empty", out->id[0] == '\0' ? "id" : "to");
		goto out;
	}
	out->phase = (enum so_phase)i;
	out->at_ms = at;
	out->deadline_ms = deadline;
	rc = 0;
out:
	if (rc != 0)
		err_wrap(e, "switchover record");
	json_decref(o);
	return rc;
}

static char *dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		abort();   /* only on out-of-memory */
	return s;
}

char *switchover_encode(const struct switchover *s)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(s->id));
	json_object_set_new(o, "from", json_string(s->from));
	json_object_set_new(o, "to", json_string(s->to));
	json_object_set_new(o, "at", json_integer(s->at_ms));
	json_object_set_new(o, "phase", json_string(so_phase_name(s->phase)));
	json_object_set_new(o, "deadline", json_integer(s->deadline_ms));
	if (s->clusters)
		json_object_set_new(o, "kind", json_string("cluster"));
	if (s->reason[0])
		json_object_set_new(o, "reason", json_string(s->reason));
	return dump(o);
}

int proxy_record_decode(const char *json, size_t len, struct proxy_record *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	json_t *o = rec_load(json, len, "the proxy record", e);
	if (o == NULL)
		return -1;
	int64_t pid, clients, waiting = 0, pools = 0;
	int rc = 0;
	if (get_str(o, "name", out->name, sizeof(out->name), true, e) != 0 ||
	    get_str(o, "listen", out->listen, sizeof(out->listen), false, e) != 0 ||
	    get_str(o, "listen_ro", out->listen_ro, sizeof(out->listen_ro), false, e) != 0 ||
	    get_str(o, "paused_for", out->paused_for, sizeof(out->paused_for), false, e) != 0 ||
	    get_int(o, "pid", 0, INT32_MAX, &pid, e) != 0 || get_int(o, "clients", 0, INT32_MAX, &clients, e) != 0 ||
	    get_int(o, "waiting", 0, INT32_MAX, &waiting, e) != 0 || get_int(o, "pools", 0, INT32_MAX, &pools, e) != 0)
		rc = err_wrap(e, "proxy record");
	if (rc == 0 && (get_str(o, "region", out->region, sizeof(out->region), false, e) != 0 ||
			get_str(o, "zone", out->zone, sizeof(out->zone), false, e) != 0))
		rc = err_wrap(e, "proxy record");
	if (rc == 0 && (!member_label_valid(out->region) || !member_label_valid(out->zone))) {
		err_set(e, "%s: \"%s\" is not 1 to 63 of A-Z a-z 0-9 _ - .",
			!member_label_valid(out->region) ? "region" : "zone",
			!member_label_valid(out->region) ? out->region : out->zone);
		rc = err_wrap(e, "proxy record");
	}
	out->pid = (int)pid;
	out->clients = (int)clients;
	out->waiting = (int)waiting;
	out->pools = (int)pools;
	json_decref(o);
	return rc;
}

char *proxy_record_encode(const struct proxy_record *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "pid", json_integer(r->pid));
	json_object_set_new(o, "listen", json_string(r->listen));
	json_object_set_new(o, "listen_ro", json_string(r->listen_ro));
	json_object_set_new(o, "paused_for", json_string(r->paused_for));
	json_object_set_new(o, "clients", json_integer(r->clients));
	json_object_set_new(o, "waiting", json_integer(r->waiting));
	json_object_set_new(o, "pools", json_integer(r->pools));
	if (r->region[0])
		json_object_set_new(o, "region", json_string(r->region));
	if (r->zone[0])
		json_object_set_new(o, "zone", json_string(r->zone));
	return dump(o);
}

int failover_key_decode(const char *json, size_t len, struct failover_key *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	json_t *o = rec_load(json, len, "the failover request", e);
	if (o == NULL)
		return -1;
	int rc = 0;
	if (get_str(o, "to", out->to, sizeof(out->to), true, e) != 0 ||
	    get_str(o, "from", out->from, sizeof(out->from), false, e) != 0 ||
	    get_str(o, "switchover", out->switchover, sizeof(out->switchover), false, e) != 0)
		rc = err_wrap(e, "failover request");
	else if (out->to[0] == '\0')
		rc = err_set(e, "failover request: field \"to\" is empty");
	json_decref(o);
	return rc;
}

char *failover_key_encode(const struct failover_key *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "to", json_string(r->to));
	if (r->from[0])
		json_object_set_new(o, "from", json_string(r->from));
	if (r->switchover[0])
		json_object_set_new(o, "switchover", json_string(r->switchover));
	return dump(o);
}

const char *req_action_name(enum req_action a)
{
	return a == REQ_REINIT ? "reinit" : "restart";
}

int member_request_decode(const char *json, size_t len, struct member_request *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	json_t *o = rec_load(json, len, "the request", e);
	if (o == NULL)
		return -1;
	char action[16];
	int rc = 0;
	if (get_str(o, "id", out->id, sizeof(out->id), true, e) != 0 ||
	    get_str(o, "action", action, sizeof(action), true, e) != 0 ||
	    get_int(o, "deadline", 1, INT64_MAX, &out->deadline_ms, e) != 0)
		rc = -1;
	else if (out->id[0] == '\0')
		rc = err_set(e, "field \"id\" is empty");
	else if (out->deadline_ms == 0)
		rc = err_set(e, "field \"deadline\" is missing");
	else if (strcmp(action, "restart") == 0)
		out->action = REQ_RESTART;
	else if (strcmp(action, "reinit") == 0)
		out->action = REQ_REINIT;
	else
		rc = err_set(e, "field \"action\" = \"%s\" is not restart or reinit", action);
	if (rc != 0)
		err_wrap(e, "member request");
	json_decref(o);
	return rc;
}

char *member_request_encode(const struct member_request *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "action", json_string(req_action_name(r->action)));
	json_object_set_new(o, "deadline", json_integer(r->deadline_ms));
	return dump(o);
}
