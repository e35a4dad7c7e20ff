/*
 * test_metrics.c — the agent's /metrics text (api/metrics.c): every line is a
 * comment or a sample in Prometheus's text format, each family is declared
 * once before its samples, labels are escaped, and the values say what the
 * snapshot holds (NaN where it does not know).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api.h"

/* The sample line for name{...labels...} (labels as written), or NULL. */
static const char *sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; *p;) {
		if (strncmp(p, prefix, n) == 0)
			return p + n;
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return NULL;
}

static double value(const char *text, const char *prefix)
{
	const char *v = sample(text, prefix);
	if (v == NULL)
		fail_msg("no sample %s in:\n%s", prefix, text);
	assert_true(*v == ' ');
	return strtod(v + 1, NULL);
}

/* Each line: "# HELP name text", "# TYPE name kind" (once per name, before its samples), or a sample. */
static void check_format(const char *text)
{
	char typed[128][96];
	size_t ntyped = 0;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		char line[1024];
		size_t len = (size_t)(nl - p);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			/* fine */
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[96], kind[32];
			assert_int_equal(sscanf(line + 7, "%95s %31s", name, kind), 2);
			assert_true(strcmp(kind, "gauge") == 0 || strcmp(kind, "counter") == 0);
			for (size_t i = 0; i < ntyped; i++)
				if (strcmp(typed[i], name) == 0)
					fail_msg("%s declared twice", name);
			assert_true(ntyped < 128);
			snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
		} else {
			size_t nlen = strcspn(line, "{ ");
			bool declared = false;
			for (size_t i = 0; i < ntyped; i++)
				declared = declared || (strlen(typed[i]) == nlen && strncmp(typed[i], line, nlen) == 0);
			if (!declared)
				fail_msg("sample before its TYPE: %s", line);
			assert_non_null(strstr(line, "{cluster=\""));
			const char *sp = strrchr(line, ' ');
			assert_non_null(sp);
			if (strcmp(sp + 1, "NaN") != 0) {
				char *end;
				(void)strtod(sp + 1, &end);
				if (*end != '\0')
					fail_msg("not a number: %s", line);
			}
		}
		p = nl + 1;
	}
}

static void test_a_streaming_standby(void **state)
{
	(void)state;
	struct api_status st = {.etcd_reachable = true, .loop_ms = 12, .loops = 40, .leader_changes = 1,
				.etcd_ok_s = 1796000000, .lease_left_ms = 25500, .started_s = 1795999000,
				.last_loop_ms = 1000};
	snprintf(st.self.name, sizeof(st.self.name), "n\"2");
	st.self.role = ROLE_REPLICA;
	st.self.state = STATE_STREAMING;
	st.self.timeline = 3;
	st.self.received_lsn = 0x5000000;
	st.self.replayed_lsn = 0x4000000;
	st.self.lag_bytes = 4096;
	snprintf(st.self.tags.region, sizeof(st.self.tags.region), "eu-west");
	snprintf(st.self.archive, sizeof(st.self.archive), "failing: repository unreachable");
	struct member ms[2] = {0};
	snprintf(ms[0].name, sizeof(ms[0].name), "n1");
	ms[0].role = ROLE_PRIMARY;
	ms[0].state = STATE_RUNNING;
	ms[1] = st.self;
	snprintf(ms[1].name, sizeof(ms[1].name), "n2");
	char leader[] = "n1";
	struct cluster_view v = {.leader = leader, .members = ms, .nmembers = 2};
	struct strbuf out = STRBUF_INIT;
	api_metrics_render(&st, &v, "main", 3500, &out);
	const char *t = sb_str(&out);
	check_format(t);
	/* The member label escaped. */
	assert_non_null(strstr(t, "member=\"n\\\"2\""));
	const char *m = "{cluster=\"main\",member=\"n\\\"2\"";
	char k[256];
	snprintf(k, sizeof(k), "pgha_member_role%s,role=\"replica\"}", m);
	assert_true(value(t, k) == 1);
	snprintf(k, sizeof(k), "pgha_member_info%s,region=\"eu-west\",zone=\"\"}", m);
	assert_true(value(t, k) == 1);
	snprintf(k, sizeof(k), "pgha_member_role%s,role=\"primary\"}", m);
	assert_true(value(t, k) == 0);
	snprintf(k, sizeof(k), "pgha_postgres_streaming%s}", m);
	assert_true(value(t, k) == 1);
	snprintf(k, sizeof(k), "pgha_replication_lag_bytes%s}", m);
	assert_true(value(t, k) == 4096);
	snprintf(k, sizeof(k), "pgha_wal_position_bytes%s,kind=\"received\"}", m);
	assert_true(value(t, k) == (double)0x5000000);
	snprintf(k, sizeof(k), "pgha_wal_position_bytes%s,kind=\"written\"} NaN", m);
	assert_non_null(sample(t, k));
	snprintf(k, sizeof(k), "pgha_lease_remaining_seconds%s}", m);
	assert_true(value(t, k) == 25.5);
	snprintf(k, sizeof(k), "pgha_ha_loop_age_seconds%s}", m);
	assert_true(value(t, k) == 2.5);
	snprintf(k, sizeof(k), "pgha_archive_ok%s}", m);
	assert_true(value(t, k) == 0);
	snprintf(k, sizeof(k), "pgha_cluster_streaming_standbys%s}", m);
	assert_true(value(t, k) == 1);
	snprintf(k, sizeof(k), "pgha_cluster_leader_running%s}", m);
	assert_true(value(t, k) == 1);
	snprintf(k, sizeof(k), "pgha_cluster_member_lag_bytes%s,standby=\"n2\"}", m);
	assert_true(value(t, k) == 4096);
	snprintf(k, sizeof(k), "pgha_leader_changes_total%s}", m);
	assert_true(value(t, k) == 1);
	/* No certificate, no expiry series. */
	assert_null(strstr(t, "pgha_tls_cert_expiry_timestamp_seconds"));
	sb_free(&out);
}

/* [tls]: the certificate's expiry, one series per link it serves (the API only over HTTPS). */
static void test_tls_expiry(void **state)
{
	(void)state;
	for (int api = 0; api <= 1; api++) {
		struct api_status st = {.lease_left_ms = -1, .tls_cert_file = "/etc/pgha/tls/\"n1\".crt", .api_tls = api};
		snprintf(st.self.name, sizeof(st.self.name), "n1");
		st.self.tls_not_after = 1830000000;
		struct strbuf out = STRBUF_INIT;
		api_metrics_render(&st, NULL, "main", 1000, &out);
		const char *t = sb_str(&out);
		check_format(t);
		assert_non_null(strstr(t, "# HELP pgha_tls_cert_expiry_timestamp_seconds "));
		const char *pre = "pgha_tls_cert_expiry_timestamp_seconds{cluster=\"main\",member=\"n1\",link=";
		char k[256];
		snprintf(k, sizeof(k), "%s\"postgresql\",file=\"/etc/pgha/tls/\\\"n1\\\".crt\"}", pre);
		assert_true(value(t, k) == 1830000000);
		snprintf(k, sizeof(k), "%s\"api\",file=\"/etc/pgha/tls/\\\"n1\\\".crt\"}", pre);
		assert_true((sample(t, k) != NULL) == (api == 1));
		sb_free(&out);
	}
}

static void test_before_etcd_was_read(void **state)
{
	(void)state;
	struct api_status st = {.lease_left_ms = -1};
	snprintf(st.self.name, sizeof(st.self.name), "n1");
	st.self.lag_bytes = -1;
	struct strbuf out = STRBUF_INIT;
	api_metrics_render(&st, NULL, "main", 1000, &out);
	const char *t = sb_str(&out);
	check_format(t);
	assert_true(value(t, "pgha_cluster_view_known{cluster=\"main\",member=\"n1\"}") == 0);
	assert_null(sample(t, "pgha_cluster_members"));
	assert_non_null(sample(t, "pgha_lease_remaining_seconds{cluster=\"main\",member=\"n1\"} NaN"));
	assert_non_null(sample(t, "pgha_etcd_last_contact_timestamp_seconds{cluster=\"main\",member=\"n1\"} NaN"));
	assert_non_null(sample(t, "pgha_replication_lag_bytes{cluster=\"main\",member=\"n1\"} NaN"));
	/* No archive series without [backup]. */
	assert_null(sample(t, "pgha_archive_ok"));
	sb_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_streaming_standby),
		cmocka_unit_test(test_before_etcd_was_read),
		cmocka_unit_test(test_tls_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
