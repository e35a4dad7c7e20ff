/*
 * member.c — member records (JSON) and the cluster view built from one range
 * read of the cluster prefix.
 *
 * A record is written by one pgha version and read by others, so decoding is
 * lenient where that is safe (unknown fields ignored, null = absent, unknown
 * role/state names read as "unknown") and strict where a wrong value would
 * mislead (wrong types, out-of-range numbers, an address too long to hold).
 */
#include "cluster/member.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/record.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"

static const char *const role_names[] = {
	[ROLE_UNKNOWN] = "unknown",
	[ROLE_PRIMARY] = "primary",
	[ROLE_REPLICA] = "replica",
	[ROLE_UNINITIALIZED] = "uninitialized",
};

static const char *const state_names[] = {
	[STATE_UNKNOWN] = "unknown",
	[STATE_RUNNING] = "running",
	[STATE_STREAMING] = "streaming",
	[STATE_STARTING] = "starting",
	[STATE_STOPPING] = "stopping",
	[STATE_STOPPED] = "stopped",
	[STATE_CRASHED] = "crashed",
	[STATE_INITIALIZING] = "initializing",
	[STATE_CLONING] = "cloning",
	[STATE_START_FAILED] = "start failed",
	[STATE_RESTORING] = "restoring",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *member_role_name(enum member_role r)
{
	return (size_t)r < NELEM(role_names) ? role_names[r] : "unknown";
}

const char *member_state_name(enum member_state s)
{
	return (size_t)s < NELEM(state_names) ? state_names[s] : "unknown";
}

static int name_lookup(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s != NULL && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

int member_role_parse(const char *s, enum member_role *out)
{
	int i = name_lookup(role_names, NELEM(role_names), s);
	if (i < 0)
		return -1;
	*out = (enum member_role)i;
	return 0;
}

int member_state_parse(const char *s, enum member_state *out)
{
	int i = name_lookup(state_names, NELEM(state_names), s);
	if (i < 0)
		return -1;
	*out = (enum member_state)i;
	return 0;
}

/* ---------------------------------------------------------------- encode */

/* LSNs go out twice: a number for programs, "0/3000060" for people. */
static void set_lsn(json_t *o, const char *field, uint64_t lsn)
{
	char text[32];
	char *tfield = xasprintf("%s_text", field);
	/* jansson integers are signed 64-bit; a larger LSN is only sent as text. */
	if (lsn <= INT64_MAX)
		json_object_set_new(o, field, json_integer((json_int_t)lsn));
	lsn_format(lsn, text, sizeof(text));
	json_object_set_new(o, tfield, json_string(text));
	free(tfield);
}

#define FIXED_STR(arr) REC_FIXED_STR(arr)
#define safe_str rec_safe_str

static json_t *member_to_json(const struct member *m)
{
	json_t *o = json_object();
	json_t *tags = json_object();
	json_object_set_new(o, "name", FIXED_STR(m->name));
	json_object_set_new(o, "role", json_string(member_role_name(m->role)));
	json_object_set_new(o, "state", json_string(member_state_name(m->state)));
	json_object_set_new(o, "timeline", json_integer(m->timeline));
	set_lsn(o, "received_lsn", m->received_lsn);
	set_lsn(o, "replayed_lsn", m->replayed_lsn);
	set_lsn(o, "wal_lsn", m->wal_lsn);
	json_object_set_new(o, "lag_bytes", json_integer(m->lag_bytes));
	json_object_set_new(o, "host", FIXED_STR(m->host));
	json_object_set_new(o, "port", json_integer(m->port));
	json_object_set_new(o, "api_url", FIXED_STR(m->api_url));
	json_object_set_new(o, "system_id", FIXED_STR(m->system_id));
	json_object_set_new(o, "pg_version", FIXED_STR(m->pg_version));
	json_object_set_new(tags, "nofailover", json_boolean(m->tags.nofailover));
	json_object_set_new(tags, "nosync", json_boolean(m->tags.nosync));
	json_object_set_new(tags, "noloadbalance", json_boolean(m->tags.noloadbalance));
	json_object_set_new(tags, "priority", json_integer(m->tags.priority));
	if (m->tags.region[0] != '\0')
		json_object_set_new(tags, "region", FIXED_STR(m->tags.region));
	if (m->tags.zone[0] != '\0')
		json_object_set_new(tags, "zone", FIXED_STR(m->tags.zone));
	json_object_set_new(o, "tags", tags);
	json_object_set_new(o, "updated_at", json_integer(m->updated_at));
	json_object_set_new(o, "error", FIXED_STR(m->error));
	json_object_set_new(o, "pending_restart", json_boolean(m->pending_restart));
	json_t *pending = json_array();
	const char *p = m->pending_params;
	while (*p) {
		size_t n = strcspn(p, ",");
		json_array_append_new(pending, safe_str(p, n));
		p += n + (p[n] == ',');
	}
	json_object_set_new(o, "pending_restart_params", pending);
	if (m->op_id[0]) {
		json_object_set_new(o, "op_id", FIXED_STR(m->op_id));
		json_object_set_new(o, "op_state", FIXED_STR(m->op_state));
	}
	if (m->diverged_copy[0])
		json_object_set_new(o, "diverged_copy", FIXED_STR(m->diverged_copy));
	if (m->standby_of[0])
		json_object_set_new(o, "standby_of", FIXED_STR(m->standby_of));
	if (m->has_source) {
		json_object_set_new(o, "source", FIXED_STR(m->source));
		json_object_set_new(o, "source_lag_bytes", json_integer(m->source_lag_bytes));
		json_object_set_new(o, "source_msg_age_ms", json_integer(m->source_msg_age_ms));
	}
	if (m->archive[0])
		json_object_set_new(o, "archive", FIXED_STR(m->archive));
	if (m->archive_replay)
		json_object_set_new(o, "archive_replay", json_true());
	if (m->tls_not_after > 0)
		json_object_set_new(o, "tls_not_after", json_integer(m->tls_not_after));
	else if (m->tls_not_after < 0)
		json_object_set_new(o, "tls_not_after", json_string("invalid"));
	if (m->archived_at > 0)
		json_object_set_new(o, "archived_at", json_integer(m->archived_at));
	if (m->backup_host[0]) {
		json_object_set_new(o, "backup_host", FIXED_STR(m->backup_host));
		json_object_set_new(o, "pg_path", FIXED_STR(m->pg_path));
		json_object_set_new(o, "pg_socket", FIXED_STR(m->pg_socket));
	}
	if (m->restore_id[0])
		json_object_set_new(o, "restore_id", FIXED_STR(m->restore_id));
	return o;
}

void member_source_describe(const struct member *m, char *out, size_t len)
{
	char lag[32] = "an unknown amount", age[48] = "";
	out[0] = '\0';
	if (!m->has_source)
		return;
	if (m->source[0] == '\0') {
		snprintf(out, len, " not streaming from the primary cluster");
		return;
	}
	if (m->source_lag_bytes >= 0)
		format_bytes((uint64_t)m->source_lag_bytes, lag, sizeof(lag));
	if (m->source_msg_age_ms >= 0)
		snprintf(age, sizeof(age), ", last message %" PRId64 ".%" PRId64 " s ago", m->source_msg_age_ms / 1000,
			 m->source_msg_age_ms % 1000 / 100);
	snprintf(out, len, " streaming from %s, %s behind%s", m->source, lag, age);
}

#define dump rec_dump

char *member_encode(const struct member *m)
{
	return dump(member_to_json(m));
}

/* ---------------------------------------------------------------- decode */

#define WHAT "member record"
#define field rec_field

static int get_str(const json_t *o, const char *name, char *out, size_t size, bool required,
		   bool truncate, struct pgha_err *e)
{
	return rec_str(o, WHAT, name, out, size, required, truncate, e);
}

static int get_int(const json_t *o, const char *name, int64_t min, int64_t max, int64_t def,
		   int64_t *out, struct pgha_err *e)
{
	return rec_int(o, WHAT, name, min, max, def, out, e);
}

static int get_bool(const json_t *o, const char *name, bool def, bool *out, struct pgha_err *e)
{
	return rec_bool(o, WHAT, name, def, out, e);
}

/* The integer if present, else the "<name>_text" string, else 0. */
static int get_lsn(const json_t *o, const char *name, uint64_t *out, struct pgha_err *e)
{
	int64_t v;
	*out = 0;
	if (field(o, name) != NULL) {
		if (get_int(o, name, 0, INT64_MAX, 0, &v, e) != 0)
			return -1;
		*out = (uint64_t)v;
		return 0;
	}
	char tname[64];
	snprintf(tname, sizeof(tname), "%s_text", name);
	json_t *t = field(o, tname);
	if (t == NULL)
		return 0;
	if (!json_is_string(t) || lsn_parse(json_string_value(t), out) != 0)
		return err_set(e, "member record: \"%s\" is not an LSN like \"0/3000060\"", tname);
	return 0;
}

static int get_enum(const json_t *o, const char *name, int (*parse)(const char *, int *),
		    int *out, struct pgha_err *e)
{
	json_t *v = field(o, name);
	if (v == NULL)
		return err_set(e, "member record: \"%s\" is missing", name);
	if (!json_is_string(v))
		return err_set(e, "member record: \"%s\" is not a string", name);
	/* A name from a newer pgha: keep the member visible, as "unknown". */
	if (parse(json_string_value(v), out) != 0)
		*out = 0;
	return 0;
}

static int parse_role(const char *s, int *out)
{
	enum member_role r;
	if (member_role_parse(s, &r) != 0)
		return -1;
	*out = (int)r;
	return 0;
}

static int parse_state(const char *s, int *out)
{
	enum member_state st;
	if (member_state_parse(s, &st) != 0)
		return -1;
	*out = (int)st;
	return 0;
}

static int decode_tags(const json_t *o, struct member_tags *t, struct pgha_err *e)
{
	json_t *tags = field(o, "tags");
	int64_t prio;
	t->nofailover = t->nosync = t->noloadbalance = false;
	t->priority = 100;
	t->region[0] = t->zone[0] = '\0';
	if (tags == NULL)
		return 0;
	if (!json_is_object(tags))
		return err_set(e, "member record: \"tags\" is not an object");
	if (get_bool(tags, "nofailover", false, &t->nofailover, e) != 0 ||
	    get_bool(tags, "nosync", false, &t->nosync, e) != 0 ||
	    get_bool(tags, "noloadbalance", false, &t->noloadbalance, e) != 0 ||
	    get_int(tags, "priority", INT32_MIN, INT32_MAX, 100, &prio, e) != 0 ||
	    rec_str(tags, WHAT, "region", t->region, sizeof(t->region), false, false, e) != 0 ||
	    rec_str(tags, WHAT, "zone", t->zone, sizeof(t->zone), false, false, e) != 0)
		return err_wrap(e, "tags");
	t->priority = (int)prio;
	const char *bad = !member_label_valid(t->region) ? "region" : !member_label_valid(t->zone) ? "zone" : NULL;
	if (bad != NULL) {
		err_set(e, "%s: \"%s\" is not 1 to 63 of A-Z a-z 0-9 _ - .", WHAT, bad);
		return err_wrap(e, "tags");
	}
	return 0;
}

/* ["a", "b"] -> "a,b" (cut at the buffer's end; names never hold commas). */
static int get_name_list(const json_t *o, const char *name, char *out, size_t size, struct pgha_err *e)
{
	json_t *v = field(o, name);
	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return err_set(e, "member record: \"%s\" is not an array", name);
	size_t i, n = 0;
	json_t *item;
	json_array_foreach(v, i, item) {
		if (!json_is_string(item))
			return err_set(e, "member record: \"%s\" holds a non-string", name);
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", i ? "," : "", json_string_value(item));
		if (n >= size)
			break;
	}
	return 0;
}

/*
 * "tls_not_after" only informs (ctl list, /cluster): a bad value must not
 * cost the member its record, so it reads as -1 instead of an error. Year
 * 2000 to 9999 are plausible.
 */
static int64_t get_not_after(const json_t *o)
{
	json_t *v = field(o, "tls_not_after");
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 946684800 || json_integer_value(v) > 253402300799LL)
		return -1;
	return (int64_t)json_integer_value(v);
}

static int decode_fields(const json_t *o, struct member *m, struct pgha_err *e)
{
	int role = 0, state = 0;
	int64_t timeline, port;
	if (get_str(o, "name", m->name, sizeof(m->name), true, false, e) != 0)
		return -1;
	if (m->name[0] == '\0')
		return err_set(e, "member record: \"name\" is empty");
	if (get_enum(o, "role", parse_role, &role, e) != 0 ||
	    get_enum(o, "state", parse_state, &state, e) != 0 ||
	    get_int(o, "timeline", 0, UINT32_MAX, 0, &timeline, e) != 0 ||
	    get_lsn(o, "received_lsn", &m->received_lsn, e) != 0 ||
	    get_lsn(o, "replayed_lsn", &m->replayed_lsn, e) != 0 ||
	    get_lsn(o, "wal_lsn", &m->wal_lsn, e) != 0 ||
	    get_int(o, "lag_bytes", INT64_MIN, INT64_MAX, -1, &m->lag_bytes, e) != 0 ||
	    get_str(o, "host", m->host, sizeof(m->host), false, false, e) != 0 ||
	    get_int(o, "port", 0, 65535, 0, &port, e) != 0 ||
	    get_str(o, "api_url", m->api_url, sizeof(m->api_url), false, false, e) != 0 ||
	    get_str(o, "system_id", m->system_id, sizeof(m->system_id), false, false, e) != 0 ||
	    get_str(o, "pg_version", m->pg_version, sizeof(m->pg_version), false, false, e) != 0 ||
	    decode_tags(o, &m->tags, e) != 0 ||
	    get_int(o, "updated_at", INT64_MIN, INT64_MAX, 0, &m->updated_at, e) != 0 ||
	    get_str(o, "error", m->error, sizeof(m->error), false, true, e) != 0 ||
	    get_bool(o, "pending_restart", false, &m->pending_restart, e) != 0 ||
	    get_name_list(o, "pending_restart_params", m->pending_params, sizeof(m->pending_params), e) != 0 ||
	    get_str(o, "op_id", m->op_id, sizeof(m->op_id), false, false, e) != 0 ||
	    get_str(o, "op_state", m->op_state, sizeof(m->op_state), false, false, e) != 0 ||
	    get_str(o, "diverged_copy", m->diverged_copy, sizeof(m->diverged_copy), false, true, e) != 0 ||
	    get_str(o, "standby_of", m->standby_of, sizeof(m->standby_of), false, false, e) != 0 ||
	    get_str(o, "source", m->source, sizeof(m->source), false, false, e) != 0 ||
	    get_int(o, "source_lag_bytes", -1, INT64_MAX, -1, &m->source_lag_bytes, e) != 0 ||
	    get_int(o, "source_msg_age_ms", -1, INT64_MAX, -1, &m->source_msg_age_ms, e) != 0 ||
	    get_str(o, "archive", m->archive, sizeof(m->archive), false, true, e) != 0 ||
	    get_bool(o, "archive_replay", false, &m->archive_replay, e) != 0 ||
	    get_int(o, "archived_at", 0, INT64_MAX, 0, &m->archived_at, e) != 0 ||
	    get_str(o, "backup_host", m->backup_host, sizeof(m->backup_host), false, false, e) != 0 ||
	    get_str(o, "pg_path", m->pg_path, sizeof(m->pg_path), false, false, e) != 0 ||
	    get_str(o, "pg_socket", m->pg_socket, sizeof(m->pg_socket), false, false, e) != 0 ||
	    get_str(o, "restore_id", m->restore_id, sizeof(m->restore_id), false, false, e) != 0)
		return -1;
	m->tls_not_after = get_not_after(o);
	m->has_source = field(o, "source") != NULL;
	if (!m->has_source)   /* the figures mean nothing without it: as a zeroed record (round trips) */
		m->source_lag_bytes = m->source_msg_age_ms = 0;
	if (m->source[0] != '\0') {
		/* A proxy may take it as a hint: it must be an address, checked here once. */
		char host[256];
		int sport = 0;
		struct pgha_err sub;
		if (parse_host_port(m->source, host, sizeof(host), &sport, &sub) != 0 || sport <= 0 ||
		    strpbrk(host, " '\\") != NULL)
			return err_set(e, "member record: \"source\" = \"%.80s\" is not host:port", m->source);
	}
	m->role = (enum member_role)role;
	m->state = (enum member_state)state;
	m->timeline = (uint32_t)timeline;
	m->port = (int)port;
	return 0;
}

int member_decode(const char *json, struct member *out, struct pgha_err *e)
{
	json_error_t jerr;
	struct member m;
	memset(&m, 0, sizeof(m));
	json_t *root = json_loads(json ? json : "", 0, &jerr);
	int rc = -1;
	if (root == NULL) {
		err_set(e, "member record is not JSON: %s", jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		err_set(e, "member record is not a JSON object");
		goto out;
	}
	if (decode_fields(root, &m, e) != 0)
		goto out;
	*out = m;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* ---------------------------------------------------------- cluster view */

static void view_add_member(struct cluster_view *v, const char *key, const char *name,
			    const struct etcd_kv *kv)
{
	struct member m;
	struct pgha_err e = {{0}};
	if (strlen(kv->value) != kv->value_len) {
		log_warn_once("member NUL", key, kv->mod_revision,
			      "skipping member record %s: the value contains a NUL byte", key);
		return;
	}
	if (member_decode(kv->value, &m, &e) != 0) {
		log_warn_once("member bad", key, kv->mod_revision, "skipping member record %s: %s", key, e.msg);
		return;
	}
	/* The key is what the member's lease protects; a record claiming
	 * another name is someone's mistake, not that member. */
	if (strcmp(m.name, name) != 0) {
		log_warn_once("member name", key, kv->mod_revision,
			      "skipping member record %s: it names member \"%s\"", key, m.name);
		return;
	}
	m.lease = kv->lease;
	v->members = xrealloc(v->members, (v->nmembers + 1) * sizeof(*v->members));
	v->members[v->nmembers++] = m;
}

static void view_add(struct cluster_view *v, const char *key, const char *rel,
		     const struct etcd_kv *kv)
{
	if (strcmp(rel, "initialize") == 0) {
		free(v->initialize);
		v->initialize = xstrdup(kv->value);
	} else if (strcmp(rel, "leader") == 0) {
		free(v->leader);
		v->leader = xstrdup(kv->value);
		v->leader_mod_revision = kv->mod_revision;
		v->leader_lease = kv->lease;
	} else if (strcmp(rel, "config") == 0) {
		free(v->config);
		v->config = xstrdup(kv->value);
	} else if (strcmp(rel, "sync") == 0) {
		free(v->sync);
		v->sync = xstrdup(kv->value);
	} else if (strcmp(rel, "backup/request") == 0) {
		free(v->backup_request);
		v->backup_request = xstrdup(kv->value);
		v->backup_request_rev = kv->mod_revision;
	} else if (strcmp(rel, "backup/running") == 0) {
		free(v->backup_running);
		v->backup_running = xstrdup(kv->value);
	} else if (strcmp(rel, "backup/last") == 0) {
		free(v->backup_last);
		v->backup_last = xstrdup(kv->value);
	} else if (strcmp(rel, "backup/schedule") == 0) {
		free(v->backup_schedule);
		v->backup_schedule = xstrdup(kv->value);
		v->backup_schedule_rev = kv->mod_revision;
	} else if (strcmp(rel, "restore") == 0) {
		free(v->restore);
		v->restore = xstrdup(kv->value);
		v->restore_rev = kv->mod_revision;
	} else if (strcmp(rel, "promoted") == 0) {
		free(v->promoted);
		v->promoted = xstrdup(kv->value);
	} else if (strcmp(rel, "switchover") == 0) {
		free(v->switchover);
		v->switchover = xstrdup(kv->value);
	} else if (strncmp(rel, "proxies/", 8) == 0) {
		v->proxies = xrealloc(v->proxies, (v->nproxies + 1) * sizeof(*v->proxies));
		v->proxies[v->nproxies++] = xstrdup(kv->value);
	} else if (strcmp(rel, "history") == 0) {
		free(v->history);
		v->history = xstrdup(kv->value);
		v->history_rev = kv->mod_revision;
	} else if (strncmp(rel, "members/", 8) == 0) {
		const char *name = rel + 8;
		if (name[0] == '\0' || strchr(name, '/') != NULL)
			log_warn_once("member key", key, kv->mod_revision,
				      "skipping member record %s: bad member name in the key", key);
		else
			view_add_member(v, key, name, kv);
	}
	/* Other keys (written by newer versions or by hand) are not ours to judge. */
}

bool member_label_valid(const char *s)
{
	return s[0] == '\0' || member_name_valid(s);
}

int member_where_check(const char *path, const char *section, const char *region, const char *zone,
		       struct pgha_err *e)
{
	const char *opt = !member_label_valid(region) ? "region" : !member_label_valid(zone) ? "zone" : NULL;
	if (opt != NULL)
		return err_set(e, "%s: [%s] %s = \"%s\": use 1 to 63 of A-Z a-z 0-9 _ - ., or leave it empty\n"
			       "HINT: the same name on every agent and proxy of that %s ([node] %s, [proxy] %s)",
			       path, section, opt, opt[0] == 'r' ? region : zone, opt, opt, opt);
	if (zone[0] != '\0' && region[0] == '\0')
		return err_set(e, "%s: [%s] zone = \"%s\" needs a region\nHINT: add [%s] region = ... (the region the "
			       "zone is in)", path, section, zone, section);
	return 0;
}

bool member_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= MEMBER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!isalnum((unsigned char)c) && c != '_' && c != '-' && c != '.')
			return false;
	}
	return true;
}

const char *leader_key_problem(enum leader_key_state s)
{
	switch (s) {
	case LEADER_KEY_OK: return NULL;
	case LEADER_KEY_GARBAGE: return "not a member name";
	case LEADER_KEY_NO_LEASE: return "under no lease (an agent always writes it under its lease)";
	case LEADER_KEY_NO_MEMBER: return "names no member with a live record";
	case LEADER_KEY_FOREIGN_LEASE: return "under a lease that is not the named member's";
	}
	return "?";
}

/* Judge the leader key once every key is in (the members come in any order). */
static void view_check_leader(struct cluster_view *v, const char *prefix)
{
	if (v->leader == NULL)
		return;
	const struct member *m = NULL;
	if (!member_name_valid(v->leader))
		v->leader_state = LEADER_KEY_GARBAGE;
	else if (v->leader_lease == 0)
		v->leader_state = LEADER_KEY_NO_LEASE;
	else if ((m = cluster_view_member(v, v->leader)) == NULL)
		v->leader_state = LEADER_KEY_NO_MEMBER;
	else if (m->lease != v->leader_lease)
		v->leader_state = LEADER_KEY_FOREIGN_LEASE;
	if (v->leader_state == LEADER_KEY_OK || v->leader_state == LEADER_KEY_FOREIGN_LEASE)
		return;
	char key[300];
	snprintf(key, sizeof(key), "%sleader", prefix);
	log_warn_once("leader key", key, v->leader_mod_revision,
		      "the leader key %s = \"%.80s\" is %s: no agent wrote it, so the cluster has no leader "
		      "until an agent replaces it (the running primary, else the election's winner)",
		      key, v->leader, leader_key_problem(v->leader_state));
	v->leader_invalid = v->leader;
	v->leader = NULL;
}

void cluster_view_from_kvs(const char *prefix, const struct etcd_kvs *kvs, struct cluster_view *out)
{
	size_t plen = strlen(prefix);
	memset(out, 0, sizeof(*out));
	if (kvs == NULL)
		return;
	out->revision = kvs->revision;
	for (size_t i = 0; i < kvs->count; i++) {
		const struct etcd_kv *kv = &kvs->kvs[i];
		if (kv->key == NULL || kv->value == NULL || strncmp(kv->key, prefix, plen) != 0)
			continue;
		view_add(out, kv->key, kv->key + plen, kv);
	}
	view_check_leader(out, prefix);
	cluster_view_sort(out);
}

void cluster_view_free(struct cluster_view *v)
{
	if (v == NULL)
		return;
	free(v->initialize);
	free(v->leader);
	free(v->leader_invalid);
	free(v->config);
	free(v->sync);
	free(v->restore);
	free(v->history);
	free(v->switchover);
	free(v->promoted);
	for (size_t i = 0; i < v->nproxies; i++)
		free(v->proxies[i]);
	free(v->proxies);
	free(v->backup_request);
	free(v->backup_running);
	free(v->backup_last);
	free(v->backup_schedule);
	free(v->members);
	memset(v, 0, sizeof(*v));
}

const struct member *cluster_view_member(const struct cluster_view *v, const char *name)
{
	for (size_t i = 0; v != NULL && name != NULL && i < v->nmembers; i++)
		if (strncmp(v->members[i].name, name, sizeof(v->members[i].name)) == 0)
			return &v->members[i];
	return NULL;
}

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	return strncmp(x->name, y->name, sizeof(x->name));
}

void cluster_view_sort(struct cluster_view *v)
{
	if (v != NULL && v->nmembers > 1)
		qsort(v->members, v->nmembers, sizeof(*v->members), member_cmp);
}

static int member_ptr_cmp(const void *a, const void *b)
{
	return member_cmp(*(const struct member *const *)a, *(const struct member *const *)b);
}

static json_t *str_or_null(const char *s)
{
	return s != NULL ? safe_str(s, strlen(s)) : json_null();
}

/* The view is const: sort pointers to the members, not the members. */
char *cluster_view_encode(const struct cluster_view *v, const char *cluster_name)
{
	json_t *o = json_object();
	json_t *arr = json_array();
	size_t n = v->nmembers;
	const struct member **sorted = xcalloc(n ? n : 1, sizeof(*sorted));
	for (size_t i = 0; i < n; i++)
		sorted[i] = &v->members[i];
	qsort(sorted, n, sizeof(*sorted), member_ptr_cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, member_to_json(sorted[i]));
	free(sorted);
	json_object_set_new(o, "cluster", str_or_null(cluster_name));
	json_object_set_new(o, "leader", str_or_null(v->leader));
	json_object_set_new(o, "initialize", str_or_null(v->initialize));
	if (v->leader_state != LEADER_KEY_OK) {
		/* Reported, not hidden: an operator must see why there is no leader. */
		json_t *lk = json_object();
		json_object_set_new(lk, "value", str_or_null(v->leader_invalid ? v->leader_invalid : v->leader));
		json_object_set_new(lk, "problem", json_string(leader_key_problem(v->leader_state)));
		json_object_set_new(lk, "mod_revision", json_integer(v->leader_mod_revision));
		json_object_set_new(o, "leader_key_invalid", lk);
	}
	json_object_set_new(o, "members", arr);
	return dump(o);
}
