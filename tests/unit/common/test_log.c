/*
 * test_log.c — log_first_time(): a bad etcd key read every loop is reported
 * once per (complaint, key, revision), again when it changes, separately per
 * complaint and per thread context, with bounded memory. log_format = json:
 * one valid JSON object per line, with the identity, the event's fields and
 * the message escaped (quotes, newlines, control bytes, invalid UTF-8).
 * Text lines to systemd's journal: no timestamp, a syslog priority prefix, and
 * only when JOURNAL_STREAM names the stderr we write to.
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
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

static void test_once_per_revision(void **state)
{
	static const char bad[] = "member bad", other[] = "member name";
	log_set_context("agent t1");
	assert_true(log_first_time(bad, "/pgha/t/members/x", 5));
	for (int i = 0; i < 100; i++)
		assert_false(log_first_time(bad, "/pgha/t/members/x", 5));
	/* Another complaint about the same key, another key: their own first time. */
	assert_true(log_first_time(other, "/pgha/t/members/x", 5));
	assert_true(log_first_time(bad, "/pgha/t/members/y", 5));
	/* Rewritten (new revision): reported again, once. */
	assert_true(log_first_time(bad, "/pgha/t/members/x", 9));
	assert_false(log_first_time(bad, "/pgha/t/members/x", 9));
	/* Another thread's context (the API, a second agent in one process) hears it too. */
	log_set_context("agent t2");
	assert_true(log_first_time(bad, "/pgha/t/members/x", 9));
	log_set_context("agent t1");
}

static void test_bounded(void **state)
{
	static const char what[] = "flood";
	char key[64];
	log_set_context("agent t3");
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "/pgha/t/members/k%d", i);
		assert_true(log_first_time(what, key, 1));
	}
	/* The most recent ones are still remembered; the oldest were forgotten. */
	assert_false(log_first_time(what, "/pgha/t/members/k9999", 1));
	assert_true(log_first_time(what, "/pgha/t/members/k0", 1));
}

/* What the logging calls in fn wrote to stderr. */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/pgha-test-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
}

static void log_two_json_lines(void)
{
	log_set_format(LOG_FORMAT_JSON);
	log_set_identity("agent", "main", "db1");
	log_set_context("agent db1");
	const char *kv[] = {"event", "leader_change", "new_leader", "db\"2", NULL};
	log_info_kv(kv, "promoted \"db2\"\nnext line\ttab \x01 bad utf8 \xff\xfe ok \xc3\xa9");
	log_warn("plain %d", 42);
	log_set_format(LOG_FORMAT_TEXT);
	log_info("a text line");
	log_set_identity("", "", "");
	log_set_context("");
}

static void test_json_lines(void **state)
{
	(void)state;
	char *out = capture(log_two_json_lines);
	char *second = strchr(out, '\n');
	assert_non_null(second);
	*second++ = '\0';
	json_error_t err;
	json_t *a = json_loads(out, 0, &err);
	if (a == NULL)
		fail_msg("not JSON (%s): %s", err.text, out);
	assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(a, "component")), "agent");
	assert_string_equal(json_string_value(json_object_get(a, "cluster")), "main");
	assert_string_equal(json_string_value(json_object_get(a, "member")), "db1");
	assert_string_equal(json_string_value(json_object_get(a, "event")), "leader_change");
	assert_string_equal(json_string_value(json_object_get(a, "new_leader")), "db\"2");
	assert_string_equal(json_string_value(json_object_get(a, "message")),
			    "promoted \"db2\"\nnext line\ttab \x01 bad utf8 ?? ok \xc3\xa9");
	const char *t = json_string_value(json_object_get(a, "time"));
	assert_non_null(t);
	assert_int_equal(strlen(t), 24);   /* 2026-11-21T06:40:01.123Z */
	assert_int_equal(t[23], 'Z');
	json_decref(a);
	char *third = strchr(second, '\n');
	assert_non_null(third);
	*third++ = '\0';
	json_t *b = json_loads(second, 0, &err);
	assert_non_null(b);
	assert_string_equal(json_string_value(json_object_get(b, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(b, "message")), "plain 42");
	json_decref(b);
	/* Back to text: the usual line. */
	assert_non_null(strstr(third, " UTC INFO  [agent db1] a text line\n"));
	free(out);
	enum log_format f;
	assert_int_equal(log_parse_format("JSON", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_equal(log_parse_format("xml", &f), -1);
}

/* JOURNAL_STREAM naming stderr (as systemd sets it), then naming another stream. */
static void log_journal_lines(void)
{
	struct stat st;
	assert_int_equal(fstat(2, &st), 0);
	char js[64];
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_set_context("agent j1");
	log_set_format(LOG_FORMAT_TEXT);
	log_warn("lease lost");
	log_error("no etcd");
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", js, 1);
	log_set_format(LOG_FORMAT_TEXT);
	log_info("to a file");
	unsetenv("JOURNAL_STREAM");
	log_set_format(LOG_FORMAT_TEXT);
	log_set_context("");
}

static void test_journal_lines(void **state)
{
	(void)state;
	char *out = capture(log_journal_lines);
	const char *want = "<4>WARN  [agent j1] lease lost\n<3>ERROR [agent j1] no etcd\n";
	if (strncmp(out, want, strlen(want)) != 0)
		fail_msg("journal lines: %s", out);
	/* stderr is not the journal's stream: the usual timestamped line. */
	const char *rest = out + strlen(want);
	assert_int_equal(strlen(rest), strlen("2026-11-21 06:40:01.123 UTC INFO  [agent j1] to a file\n"));
	assert_true(strstr(rest, " UTC INFO  [agent j1] to a file\n") != NULL);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_per_revision),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_journal_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
