/*
 * test_member.c — member record JSON and the cluster view.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl.h"
#include "cluster/member.h"
#include "dcs/etcd.h"

static void sample(struct member *m, const char *name)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->role = ROLE_REPLICA;
	m->state = STATE_STREAMING;
	m->timeline = 3;
	m->received_lsn = 123;
	m->replayed_lsn = 0x3000060;
	m->wal_lsn = 0x100000000ULL;
	m->lag_bytes = 42;
	snprintf(m->host, sizeof(m->host), "10.0.0.%d", (int)strlen(name));
	m->port = 5432;
	snprintf(m->api_url, sizeof(m->api_url), "http://10.0.0.1:8008");
	snprintf(m->system_id, sizeof(m->system_id), "7311111111111111111");
	snprintf(m->pg_version, sizeof(m->pg_version), "160004");
	m->tags.nofailover = true;
	m->tags.nosync = false;
	m->tags.noloadbalance = true;
	m->tags.priority = 7;
	snprintf(m->tags.region, sizeof(m->tags.region), "eu-west");
	snprintf(m->tags.zone, sizeof(m->tags.zone), "eu-west-1a");
	m->updated_at = 1795000000;
	snprintf(m->error, sizeof(m->error), "pg_basebackup failed: \"quoted\"\n");
	m->pending_restart = true;
	snprintf(m->pending_params, sizeof(m->pending_params), "max_connections,shared_buffers");
	snprintf(m->op_id, sizeof(m->op_id), "rq-1795000000-Ab3dE9xQ");
	snprintf(m->op_state, sizeof(m->op_state), "done");
	snprintf(m->diverged_copy, sizeof(m->diverged_copy), "/var/lib/pg/data.diverged");
	snprintf(m->standby_of, sizeof(m->standby_of), "10.1.0.1:5432,10.1.0.2:5432");
	m->has_source = true;
	snprintf(m->source, sizeof(m->source), "10.1.0.2:5432");
	m->source_lag_bytes = 8192;
	m->source_msg_age_ms = -1;
	snprintf(m->archive, sizeof(m->archive), "failing: stanza-create: repository /srv/backup is not writable");
	m->archive_replay = true;
}

static void test_names(void **state)
{
	static const char *const roles[] = {"unknown", "primary", "replica", "uninitialized"};
	static const char *const states[] = {"unknown",  "running",      "streaming", "starting",
					     "stopping", "stopped",      "crashed",   "initializing",
					     "cloning",  "start failed"};
	for (int i = 0; i < 4; i++) {
		enum member_role r;
		assert_string_equal(member_role_name((enum member_role)i), roles[i]);
		assert_int_equal(member_role_parse(roles[i], &r), 0);
		assert_int_equal(r, i);
	}
	for (int i = 0; i < 10; i++) {
		enum member_state s;
		assert_string_equal(member_state_name((enum member_state)i), states[i]);
		assert_int_equal(member_state_parse(states[i], &s), 0);
		assert_int_equal(s, i);
	}
	enum member_role r;
	enum member_state s;
	assert_int_equal(member_role_parse("leader", &r), -1);
	assert_int_equal(member_role_parse("", &r), -1);
	assert_int_equal(member_role_parse(NULL, &r), -1);
	assert_int_equal(member_state_parse("Running", &s), -1);
	assert_string_equal(member_role_name((enum member_role)99), "unknown");
	assert_string_equal(member_state_name((enum member_state)-1), "unknown");
}

static void test_roundtrip(void **state)
{
	struct member m, d;
	struct pgha_err e = {{0}};
	sample(&m, "node1");
	char *json = member_encode(&m);
	assert_int_equal(member_decode(json, &d, &e), 0);
	assert_memory_equal(&m, &d, sizeof(m));
	free(json);

	/* Every role and state survives. */
	for (int r = 0; r < 4; r++) {
		for (int s = 0; s < 10; s++) {
			m.role = (enum member_role)r;
			m.state = (enum member_state)s;
			json = member_encode(&m);
			assert_int_equal(member_decode(json, &d, &e), 0);
			assert_int_equal(d.role, r);
			assert_int_equal(d.state, s);
			free(json);
		}
	}
}

static void test_encode_format(void **state)
{
	struct member m;
	sample(&m, "node1");
	char *json = member_encode(&m);
	json_t *o = json_loads(json, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "name")), "node1");
	assert_string_equal(json_string_value(json_object_get(o, "role")), "replica");
	assert_string_equal(json_string_value(json_object_get(o, "state")), "streaming");
	assert_int_equal(json_integer_value(json_object_get(o, "received_lsn")), 123);
	assert_string_equal(json_string_value(json_object_get(o, "received_lsn_text")), "0/7B");
	assert_string_equal(json_string_value(json_object_get(o, "replayed_lsn_text")), "0/3000060");
	assert_string_equal(json_string_value(json_object_get(o, "wal_lsn_text")), "1/0");
	assert_int_equal(json_integer_value(json_object_get(o, "port")), 5432);
	assert_int_equal(json_integer_value(json_object_get(o, "lag_bytes")), 42);
	json_t *tags = json_object_get(o, "tags");
	json_t *want = json_loads("{\"nofailover\":true,\"nosync\":false,\"noloadbalance\":true,"
				  "\"priority\":7,\"region\":\"eu-west\",\"zone\":\"eu-west-1a\"}",
				  0, NULL);
	assert_true(json_equal(tags, want));
	json_decref(want);
	/* Pending restart: a flag and the parameters as an array; the last request and its state. */
	assert_true(json_is_true(json_object_get(o, "pending_restart")));
	want = json_loads("[\"max_connections\",\"shared_buffers\"]", 0, NULL);
	assert_true(json_equal(json_object_get(o, "pending_restart_params"), want));
	json_decref(want);
	assert_string_equal(json_string_value(json_object_get(o, "op_id")), "rq-1795000000-Ab3dE9xQ");
	assert_string_equal(json_string_value(json_object_get(o, "op_state")), "done");
	/* A re-clone's leftover copy of a diverged data directory, until the member streams again. */
	assert_string_equal(json_string_value(json_object_get(o, "diverged_copy")), "/var/lib/pg/data.diverged");
	/* A standby cluster's member: the primary cluster's hosts. */
	assert_string_equal(json_string_value(json_object_get(o, "standby_of")), "10.1.0.1:5432,10.1.0.2:5432");
	/* WAL archiving ([backup] on). */
	assert_string_equal(json_string_value(json_object_get(o, "archive")),
			    "failing: stanza-create: repository /srv/backup is not writable");
	/* A standby catching up from the archive. */
	assert_true(json_is_true(json_object_get(o, "archive_replay")));
	json_decref(o);
	free(json);

	/* Defaults: tags all false, priority 100. */
	memset(&m, 0, sizeof(m));
	strcpy(m.name, "x");
	m.tags.priority = 100;
	json = member_encode(&m);
	assert_non_null(strstr(json, "\"tags\":{\"nofailover\":false,\"nosync\":false,"
				     "\"noloadbalance\":false,\"priority\":100}"));
	assert_non_null(strstr(json, "\"received_lsn\":0,\"received_lsn_text\":\"0/0\""));
	assert_null(strstr(json, "diverged_copy"));   /* only when there is one */
	assert_null(strstr(json, "standby_of"));      /* only in a standby cluster */
	assert_null(strstr(json, "source"));          /* only a standby leader's */
	assert_null(strstr(json, "archive"));         /* only with [backup] on; archive_replay only when true */
	free(json);
}

static void test_encode_odd_strings(void **state)
{
	struct member m, d;
	struct pgha_err e = {{0}};
	sample(&m, "n");
	/* Not UTF-8 (from a server message in Latin-1): still a valid record. */
	snprintf(m.error, sizeof(m.error), "caf\xe9 \xff");
	/* An unterminated fixed buffer must not be read past its end. */
	memset(m.pg_version, '9', sizeof(m.pg_version));
	char *json = member_encode(&m);
	assert_non_null(json);
	json_t *o = json_loads(json, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "error")), "caf? ?");
	assert_int_equal(json_string_length(json_object_get(o, "pg_version")), sizeof(m.pg_version));
	json_decref(o);
	/* ...and a pg_version that long is refused when read back. */
	assert_int_not_equal(member_decode(json, &d, &e), 0);
	assert_non_null(strstr(e.msg, "pg_version"));
	free(json);

	/* LSNs beyond int64 go out as text only and come back from it. */
	sample(&m, "n");
	m.wal_lsn = 0xFFFFFFFF00000001ULL;
	json = member_encode(&m);
	assert_null(strstr(json, "\"wal_lsn\":"));
	assert_int_equal(member_decode(json, &d, &e), 0);
	assert_true(d.wal_lsn == 0xFFFFFFFF00000001ULL);
	free(json);
}

static void test_decode_minimal(void **state)
{
	struct member d;
	struct pgha_err e = {{0}};
	memset(&d, 0x5a, sizeof(d));
	assert_int_equal(member_decode("{\"name\":\"a\",\"role\":\"primary\",\"state\":\"running\"}",
				       &d, &e),
			 0);
	assert_string_equal(d.name, "a");
	assert_int_equal(d.role, ROLE_PRIMARY);
	assert_int_equal(d.state, STATE_RUNNING);
	assert_int_equal(d.timeline, 0);
	assert_int_equal(d.received_lsn, 0);
	assert_int_equal(d.lag_bytes, -1);
	assert_string_equal(d.host, "");
	assert_int_equal(d.port, 0);
	assert_string_equal(d.error, "");
	assert_false(d.tags.nofailover);
	assert_false(d.tags.nosync);
	assert_false(d.tags.noloadbalance);
	assert_int_equal(d.tags.priority, 100);
}

static void test_decode_lenient(void **state)
{
	struct member d;
	struct pgha_err e = {{0}};
	/* Unknown fields and tags ignored; null = absent; unknown role/state
	 * names from newer versions read as unknown; LSN from text only. */
	assert_int_equal(member_decode("{\"name\":\"a\",\"role\":\"witness\",\"state\":\"dreaming\","
				       "\"future\":{\"x\":[1,2]},\"host\":null,\"port\":null,"
				       "\"received_lsn_text\":\"16/B374D848\","
				       "\"tags\":{\"priority\":5,\"nostream\":true},\"lag_bytes\":null}",
				       &d, &e),
			 0);
	assert_int_equal(d.role, ROLE_UNKNOWN);
	assert_int_equal(d.state, STATE_UNKNOWN);
	assert_true(d.received_lsn == 0x16B374D848ULL);
	assert_int_equal(d.tags.priority, 5);
	assert_int_equal(d.lag_bytes, -1);
	/* The integer wins over the text. */
	assert_int_equal(member_decode("{\"name\":\"a\",\"role\":\"replica\",\"state\":\"running\","
				       "\"received_lsn\":5,\"received_lsn_text\":\"0/9\"}",
				       &d, &e),
			 0);
	assert_int_equal(d.received_lsn, 5);
	/* A long error text is truncated, not refused. */
	char big[600];
	char json[800];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"name\":\"a\",\"role\":\"replica\",\"state\":\"running\","
				     "\"error\":\"%s\"}",
		 big);
	assert_int_equal(member_decode(json, &d, &e), 0);
	assert_int_equal(strlen(d.error), sizeof(d.error) - 1);
}

/* tls_not_after only informs: absent is 0, a bad value -1, and neither costs the record. */
static void test_decode_not_after(void **state)
{
	static const struct {
		const char *value;
		int64_t want;
	} cases[] = {
		{NULL, 0},
		{"1800000000", 1800000000},
		{"\"2027-01-01\"", -1},
		{"-5", -1},
		{"12", -1},
		{"1e30", -1},
		{"99999999999999", -1},
		{"true", -1},
		{"null", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[200];
		struct member d;
		struct pgha_err e = {{0}};
		if (cases[i].value)
			snprintf(json, sizeof(json), "{\"name\":\"a\",\"role\":\"replica\",\"state\":\"running\","
				 "\"tls_not_after\":%s}", cases[i].value);
		else
			snprintf(json, sizeof(json), "{\"name\":\"a\",\"role\":\"replica\",\"state\":\"running\"}");
		if (member_decode(json, &d, &e) != 0)
			fail_msg("%s refused: %s", json, e.msg);
		if (d.tls_not_after != cases[i].want)
			fail_msg("%s: tls_not_after %lld, want %lld", json, (long long)d.tls_not_after,
				 (long long)cases[i].want);
		/* Encoded again, it reads the same (a bad value stays visibly bad). */
		char *enc = member_encode(&d);
		struct member d2;
		assert_int_equal(member_decode(enc, &d2, &e), 0);
		assert_int_equal(d2.tls_not_after, d.tls_not_after);
		assert_true((strstr(enc, "tls_not_after") != NULL) == (d.tls_not_after != 0));
		free(enc);
	}
}

/* ctl list: the CERT EXPIRES column, and a warning under a member within 30 days, expired or invalid. */
static void test_table_cert_expiry(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct member ms[5];
	memset(ms, 0, sizeof(ms));
	const char *names[] = {"far", "near", "gone", "bad", "none"};
	int64_t when[] = {now + 200 * 86400LL, now + 10 * 86400LL + 3600, now - 86400, -1, 0};
	for (int i = 0; i < 5; i++) {
		snprintf(ms[i].name, sizeof(ms[i].name), "%s", names[i]);
		ms[i].role = ROLE_REPLICA;
		ms[i].state = STATE_STREAMING;
		ms[i].lag_bytes = 0;
		ms[i].tls_not_after = when[i];
	}
	struct cluster_view v;
	memset(&v, 0, sizeof(v));
	v.members = ms;
	v.nmembers = 5;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	ctl_print_table(f, &v, "main");
	fclose(f);
	char far[16];
	time_t t = (time_t)when[0];
	struct tm tm;
	strftime(far, sizeof(far), "%Y-%m-%d", gmtime_r(&t, &tm));
	if (strstr(text, "CERT EXPIRES") == NULL || strstr(text, far) == NULL ||
	    strstr(text, "TLS certificate: expires in 10 days, on ") == NULL ||
	    strstr(text, "TLS certificate: EXPIRED on ") == NULL ||
	    strstr(text, "TLS certificate: the record's tls_not_after is not a time") == NULL)
		fail_msg("%s", text);
	/* Exactly three warnings: far and none have none. */
	int n = 0;
	for (const char *p = text; (p = strstr(p, "TLS certificate:")) != NULL; p++)
		n++;
	assert_int_equal(n, 3);
	free(text);
	/* Without any certificate the table is as before: no column. */
	for (int i = 0; i < 5; i++)
		ms[i].tls_not_after = 0;
	f = open_memstream(&text, &len);
	ctl_print_table(f, &v, "main");
	fclose(f);
	assert_null(strstr(text, "CERT EXPIRES"));
	free(text);
}

static void check_bad(const char *json, const char *needle)
{
	struct member d;
	struct pgha_err e = {{0}};
	int rc = member_decode(json, &d, &e);
	if (rc == 0)
		fail_msg("accepted: %s", json);
	if (strstr(e.msg, needle) == NULL)
		fail_msg("%s: message \"%s\" lacks \"%s\"", json, e.msg, needle);
}

#define RS "\"role\":\"replica\",\"state\":\"running\""

static void test_decode_bad(void **state)
{
	check_bad("", "not JSON");
	check_bad("{", "not JSON");
	check_bad("[1]", "not a JSON object");
	check_bad("{\"role\":\"replica\",\"state\":\"running\"}", "\"name\" is missing");
	check_bad("{\"name\":\"a\",\"state\":\"running\"}", "\"role\" is missing");
	check_bad("{\"name\":\"a\",\"role\":\"replica\"}", "\"state\" is missing");
	check_bad("{\"name\":null," RS "}", "\"name\" is missing");
	check_bad("{\"name\":\"\"," RS "}", "\"name\" is empty");
	check_bad("{\"name\":5," RS "}", "\"name\" is not a string");
	check_bad("{\"name\":\"a\",\"role\":1,\"state\":\"running\"}", "\"role\" is not a string");
	check_bad("{\"name\":\"a\",\"role\":\"replica\",\"state\":true}", "\"state\" is not a string");
	check_bad("{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"," RS
		  "}",
		  "\"name\" is longer");
	check_bad("{\"name\":\"a\"," RS ",\"timeline\":\"3\"}", "\"timeline\" is not an integer");
	check_bad("{\"name\":\"a\"," RS ",\"timeline\":-1}", "\"timeline\" is out of range");
	check_bad("{\"name\":\"a\"," RS ",\"timeline\":4294967296}", "\"timeline\" is out of range");
	check_bad("{\"name\":\"a\"," RS ",\"port\":70000}", "\"port\" is out of range");
	check_bad("{\"name\":\"a\"," RS ",\"port\":5432.0}", "\"port\" is not an integer");
	check_bad("{\"name\":\"a\"," RS ",\"received_lsn\":-5}", "\"received_lsn\" is out of range");
	check_bad("{\"name\":\"a\"," RS ",\"received_lsn\":\"0/7B\"}", "\"received_lsn\" is not an integer");
	check_bad("{\"name\":\"a\"," RS ",\"wal_lsn_text\":\"nope\"}", "\"wal_lsn_text\"");
	check_bad("{\"name\":\"a\"," RS ",\"wal_lsn_text\":5}", "\"wal_lsn_text\"");
	check_bad("{\"name\":\"a\"," RS ",\"lag_bytes\":true}", "\"lag_bytes\"");
	check_bad("{\"name\":\"a\"," RS ",\"host\":[]}", "\"host\" is not a string");
	check_bad("{\"name\":\"a\"," RS ",\"system_id\":\"123456789012345678901234567890123\"}",
		  "\"system_id\" is longer");
	check_bad("{\"name\":\"a\"," RS ",\"tags\":[]}", "\"tags\" is not an object");
	check_bad("{\"name\":\"a\"," RS ",\"tags\":{\"nofailover\":\"yes\"}}", "\"nofailover\"");
	check_bad("{\"name\":\"a\"," RS ",\"tags\":{\"priority\":\"1\"}}", "\"priority\"");
	check_bad("{\"name\":\"a\"," RS ",\"tags\":{\"priority\":9999999999}}", "\"priority\"");
	check_bad("{\"name\":\"a\"," RS ",\"tags\":{\"region\":5}}", "\"region\" is not a string");
	check_bad("{\"name\":\"a\"," RS ",\"tags\":{\"region\":\"eu west\"}}", "\"region\" is not 1 to 63");
	check_bad("{\"name\":\"a\"," RS ",\"tags\":{\"zone\":\"a/b\"}}", "\"zone\" is not 1 to 63");
	check_bad("{\"name\":\"a\"," RS ",\"updated_at\":1.5}", "\"updated_at\"");
	check_bad("{\"name\":\"a\"," RS ",\"error\":{}}", "\"error\"");
}

/* ---------------------------------------------------------- cluster view */

static void add_kv(struct etcd_kvs *r, const char *key, const char *value, int64_t mod,
		   int64_t lease)
{
	r->kvs = realloc(r->kvs, (r->count + 1) * sizeof(*r->kvs));
	struct etcd_kv *kv = &r->kvs[r->count++];
	memset(kv, 0, sizeof(*kv));
	kv->key = strdup(key);
	kv->value = strdup(value);
	kv->value_len = strlen(value);
	kv->mod_revision = mod;
	kv->create_revision = mod;
	kv->lease = lease;
}

static void add_member(struct etcd_kvs *r, const char *prefix, const char *name)
{
	struct member m;
	char key[256];
	sample(&m, name);
	char *json = member_encode(&m);
	snprintf(key, sizeof(key), "%smembers/%s", prefix, name);
	add_kv(r, key, json, 10, 77);
	free(json);
}

static void test_view_from_kvs(void **state)
{
	const char *p = "/pgha/main/";
	struct etcd_kvs r = {0};
	struct cluster_view v;
	r.revision = 99;
	add_kv(&r, "/pgha/main/config", "{\"ttl\":30}", 3, 0);
	add_kv(&r, "/pgha/main/initialize", "7311111111111111111", 2, 0);
	add_kv(&r, "/pgha/main/leader", "node2", 42, 4111120142044508681LL);
	add_member(&r, p, "node3");
	add_member(&r, p, "node1");
	add_kv(&r, "/pgha/main/members/bad", "{not json", 11, 0);
	add_kv(&r, "/pgha/main/members/typed", "{\"name\":\"typed\",\"role\":1,\"state\":\"x\"}", 11, 0);
	add_kv(&r, "/pgha/main/members/liar", "{\"name\":\"node1\",\"role\":\"primary\","
					      "\"state\":\"running\"}",
	       11, 0);
	add_kv(&r, "/pgha/main/members/", "{}", 11, 0);
	add_kv(&r, "/pgha/main/members/a/b", "{}", 11, 0);
	add_member(&r, p, "node2");
	add_kv(&r, "/pgha/main/history", "[]", 12, 0);
	add_kv(&r, "/pgha/other/leader", "x", 12, 0);

	cluster_view_from_kvs(p, &r, &v);
	assert_int_equal(v.revision, 99);
	assert_string_equal(v.initialize, "7311111111111111111");
	assert_string_equal(v.leader, "node2");
	assert_int_equal(v.leader_mod_revision, 42);
	assert_int_equal(v.leader_lease, 4111120142044508681LL);
	assert_string_equal(v.config, "{\"ttl\":30}");
	assert_int_equal(v.nmembers, 3);
	assert_string_equal(v.members[0].name, "node1");
	assert_string_equal(v.members[1].name, "node2");
	assert_string_equal(v.members[2].name, "node3");
	assert_int_equal(v.members[1].port, 5432);
	assert_int_equal(v.members[1].tags.priority, 7);
	const struct member *m = cluster_view_member(&v, "node3");
	assert_non_null(m);
	assert_string_equal(m->host, "10.0.0.5");
	assert_null(cluster_view_member(&v, "bad"));
	assert_null(cluster_view_member(&v, "node"));

	char *json = cluster_view_encode(&v, "main");
	json_t *o = json_loads(json, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "cluster")), "main");
	assert_string_equal(json_string_value(json_object_get(o, "leader")), "node2");
	assert_string_equal(json_string_value(json_object_get(o, "initialize")), "7311111111111111111");
	json_t *arr = json_object_get(o, "members");
	assert_int_equal(json_array_size(arr), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "name")), "node1");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 2), "name")), "node3");
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(arr, 1), "received_lsn_text")), "0/7B");
	json_decref(o);
	free(json);

	cluster_view_free(&v);
	assert_null(v.members);
	assert_int_equal(v.nmembers, 0);
	cluster_view_free(&v);
	etcd_kvs_free(&r);
}

/*
 * A leader key no agent wrote (hand-edited, corrupt) names no leader: garbage,
 * no lease, or no member with a record; the value is kept to be reported. A
 * key under a lease other than the named member's keeps its leader (an agent
 * moving to a new lease shows that for a moment) but is reported too.
 */
static void test_view_leader_key(void **state)
{
	static const struct {
		const char *value;
		int64_t lease;
		enum leader_key_state want;
	} cases[] = {
		{"node1", 77, LEADER_KEY_OK},
		{"{\"garbage\":", 77, LEADER_KEY_GARBAGE},
		{"{\"garbage\":", 0, LEADER_KEY_GARBAGE},
		{"", 77, LEADER_KEY_GARBAGE},
		{"node1", 0, LEADER_KEY_NO_LEASE},
		{"ghost", 77, LEADER_KEY_NO_MEMBER},
		{"node1", 78, LEADER_KEY_FOREIGN_LEASE},
	};
	const char *p = "/pgha/main/";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct etcd_kvs r = {0};
		struct cluster_view v;
		add_kv(&r, "/pgha/main/leader", cases[i].value, 42, cases[i].lease);
		add_member(&r, p, "node1");   /* under lease 77 */
		cluster_view_from_kvs(p, &r, &v);
		assert_int_equal(v.leader_state, cases[i].want);
		bool named = cases[i].want == LEADER_KEY_OK || cases[i].want == LEADER_KEY_FOREIGN_LEASE;
		if (named) {
			assert_string_equal(v.leader, cases[i].value);
			assert_null(v.leader_invalid);
		} else {
			assert_null(v.leader);
			assert_string_equal(v.leader_invalid, cases[i].value);
		}
		assert_int_equal(v.leader_mod_revision, 42);
		/* ctl list says what is wrong and what happens next. */
		char *text = NULL;
		size_t text_len = 0;
		FILE *f = open_memstream(&text, &text_len);
		assert_non_null(f);
		ctl_print_table(f, &v, "main");
		fclose(f);
		char want[300];
		snprintf(want, sizeof(want), "Leader key: \"%s\" (revision 42) is %s", cases[i].value,
			 cases[i].want == LEADER_KEY_OK ? "" : leader_key_problem(v.leader_state));
		assert_true((strstr(text, want) != NULL) == (cases[i].want != LEADER_KEY_OK));
		free(text);
		char *json = cluster_view_encode(&v, "main");
		json_t *o = json_loads(json, 0, NULL);
		json_t *bad = json_object_get(o, "leader_key_invalid");
		if (cases[i].want == LEADER_KEY_OK) {
			assert_null(bad);
			assert_null(leader_key_problem(v.leader_state));
		} else {
			assert_string_equal(json_string_value(json_object_get(bad, "value")), cases[i].value);
			assert_string_equal(json_string_value(json_object_get(bad, "problem")),
					    leader_key_problem(v.leader_state));
			assert_int_equal(json_integer_value(json_object_get(bad, "mod_revision")), 42);
		}
		json_decref(o);
		free(json);
		cluster_view_free(&v);
		etcd_kvs_free(&r);
	}
}

static void test_view_empty(void **state)
{
	struct etcd_kvs r = {0};
	struct cluster_view v;
	r.revision = 5;
	cluster_view_from_kvs("/pgha/x/", &r, &v);
	assert_null(v.leader);
	assert_null(v.initialize);
	assert_null(v.config);
	assert_int_equal(v.nmembers, 0);
	assert_int_equal(v.revision, 5);
	char *json = cluster_view_encode(&v, "x");
	json_t *o = json_loads(json, 0, NULL);
	json_t *want = json_loads("{\"cluster\":\"x\",\"leader\":null,\"initialize\":null,"
				  "\"members\":[]}",
				  0, NULL);
	assert_true(json_equal(o, want));
	json_decref(o);
	json_decref(want);
	free(json);
	cluster_view_free(&v);
	cluster_view_from_kvs("/pgha/x/", NULL, &v);
	assert_int_equal(v.nmembers, 0);
}

/* Encoding sorts without touching the (const) view. */
static void test_view_encode_sorts(void **state)
{
	struct cluster_view v;
	memset(&v, 0, sizeof(v));
	v.nmembers = 3;
	v.members = calloc(3, sizeof(*v.members));
	sample(&v.members[0], "c");
	sample(&v.members[1], "a");
	sample(&v.members[2], "b");
	char *json = cluster_view_encode(&v, "k");
	const char *a = strstr(json, "\"name\":\"a\"");
	const char *b = strstr(json, "\"name\":\"b\"");
	const char *c = strstr(json, "\"name\":\"c\"");
	assert_true(a && b && c && a < b && b < c);
	assert_string_equal(v.members[0].name, "c");
	free(json);
	cluster_view_sort(&v);
	assert_string_equal(v.members[0].name, "a");
	assert_string_equal(v.members[2].name, "c");
	cluster_view_free(&v);
}

/* The standby leader's source: round trip, strict decoding, the ctl list text. */
static void test_source(void **state)
{
	struct member m, d;
	struct pgha_err e = {{0}};
	char text[200];
	sample(&m, "b1");
	m.has_source = true;
	snprintf(m.source, sizeof(m.source), "10.1.0.1:5432");
	m.source_lag_bytes = 0;
	m.source_msg_age_ms = 412;
	char *json = member_encode(&m);
	assert_non_null(strstr(json, "\"source\":\"10.1.0.1:5432\",\"source_lag_bytes\":0,\"source_msg_age_ms\":412"));
	assert_int_equal(member_decode(json, &d, &e), 0);
	free(json);
	assert_true(d.has_source);
	assert_string_equal(d.source, "10.1.0.1:5432");
	assert_int_equal(d.source_lag_bytes, 0);
	assert_int_equal(d.source_msg_age_ms, 412);
	member_source_describe(&d, text, sizeof(text));
	assert_string_equal(text, " streaming from 10.1.0.1:5432, 0 B behind, last message 0.4 s ago");
	d.source_lag_bytes = 3 * 1024 * 1024;
	d.source_msg_age_ms = -1;
	member_source_describe(&d, text, sizeof(text));
	assert_string_equal(text, " streaming from 10.1.0.1:5432, 3.0 MB behind");
	d.source_lag_bytes = -1;
	d.source_msg_age_ms = 61234;
	member_source_describe(&d, text, sizeof(text));
	assert_string_equal(text, " streaming from 10.1.0.1:5432, an unknown amount behind, last message 61.2 s ago");
	d.source[0] = '\0';
	member_source_describe(&d, text, sizeof(text));
	assert_string_equal(text, " not streaming from the primary cluster");
	/* An older agent's record, or any member but the standby leader: nothing to say. */
	assert_int_equal(member_decode("{\"name\":\"b2\",\"role\":\"replica\",\"state\":\"streaming\"}", &d, &e), 0);
	assert_false(d.has_source);
	assert_int_equal(d.source_lag_bytes, 0);
	member_source_describe(&d, text, sizeof(text));
	assert_string_equal(text, "");
	/* Not streaming: an empty source is still a source field. */
	assert_int_equal(member_decode("{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source\":\"\","
				       "\"source_lag_bytes\":-1,\"source_msg_age_ms\":-1}", &d, &e), 0);
	assert_true(d.has_source);
	/* IPv6 in brackets is an address. */
	assert_int_equal(member_decode("{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\","
				       "\"source\":\"[fd00::1]:5432\"}", &d, &e), 0);
	/* Strict: a proxy may take source as a hint, so it must be host:port; the figures are bounded. */
	static const char *const bad[] = {
		"{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source\":\"10.1.0.1\"}",
		"{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source\":\"h:0\"}",
		"{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source\":\"h x:5432\"}",
		"{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source\":5432}",
		"{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source_lag_bytes\":-2}",
		"{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source_lag_bytes\":\"0\"}",
		"{\"name\":\"b1\",\"role\":\"replica\",\"state\":\"running\",\"source_msg_age_ms\":-5}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(member_decode(bad[i], &d, &e), -1);
		assert_non_null(strstr(e.msg, "source"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_encode_format),
		cmocka_unit_test(test_encode_odd_strings),
		cmocka_unit_test(test_decode_minimal),
		cmocka_unit_test(test_decode_lenient),
		cmocka_unit_test(test_decode_bad),
		cmocka_unit_test(test_view_from_kvs),
		cmocka_unit_test(test_view_leader_key),
		cmocka_unit_test(test_view_empty),
		cmocka_unit_test(test_view_encode_sorts),
		cmocka_unit_test(test_decode_not_after),
		cmocka_unit_test(test_table_cert_expiry),
		cmocka_unit_test(test_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
