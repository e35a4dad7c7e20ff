/*
 * test_sess.c — a transaction-pooled client's session state (proxy/sess.c):
 * which statements the parser says may change a session (and which plain
 * queries never reach the parser), the PREPARE texts and custom setting names
 * it keeps, the statements that move a session's state to another server,
 * the startup "options", and the refusal of a statement that would pin.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/sess.h"

static unsigned flags_of(const char *sql, bool pinned, const char **feature)
{
	struct sess_class cl;
	sess_classify(sql, strlen(sql), pinned, &cl);
	unsigned f = cl.flags;
	if (feature != NULL)
		*feature = cl.feature;
	sess_class_free(&cl);
	return f;
}

static void test_plain_queries_are_not_parsed(void **state)
{
	const char *plain[] = {
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
		"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
		"  /* a comment */ INSERT INTO t VALUES (1)",
		"BEGIN", "COMMIT", "select 1;   ",
		"EXECUTE p(1)",
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		struct sess_class cl;
		sess_classify(plain[i], strlen(plain[i]), false, &cl);
		assert_false(cl.parsed);
		assert_int_equal(cl.flags, 0);
		sess_class_free(&cl);
	}
}

static void test_statements_that_change_the_session(void **state)
{
	const char *feature = NULL;
	/* Settings SET by name are read back by name (cheap); the rest needs a full read. */
	assert_int_equal(flags_of("SET search_path = a, b", false, NULL), SESS_NAMED);
	assert_int_equal(flags_of("set session statement_timeout to 5", false, NULL), SESS_NAMED);
	assert_int_equal(flags_of("SELECT set_config('work_mem', '8MB', false)", false, NULL), SESS_NAMED);
	assert_int_equal(flags_of("SELECT set_config(current_user || '.x', '8MB', false)", false, NULL),
			 SESS_SETTINGS);
	assert_int_equal(flags_of("RESET work_mem", false, NULL), SESS_SETTINGS);
	assert_int_equal(flags_of("SET work_mem TO DEFAULT", false, NULL), SESS_SETTINGS);
	assert_int_equal(flags_of("RESET ALL", false, NULL), SESS_SETTINGS);
	assert_int_equal(flags_of("DISCARD ALL", false, NULL), SESS_SETTINGS | SESS_PREPARED | SESS_MAYPIN);
	assert_int_equal(flags_of("DO $$BEGIN PERFORM 1; END$$", false, NULL),
			 SESS_SETTINGS | SESS_PREPARED | SESS_MAYPIN);
	assert_int_equal(flags_of("PREPARE q(int) AS SELECT $1", false, NULL), SESS_PREPARED);
	assert_int_equal(flags_of("DEALLOCATE q", false, NULL), SESS_PREPARED);
	/* ParameterStatus follows the tracked startup parameters: nothing to read. */
	assert_int_equal(flags_of("SET application_name = 'x'", false, NULL), 0);
	assert_int_equal(flags_of("SET TIME ZONE 'UTC'", false, NULL), 0);
	/* Transaction-scoped: nothing to carry. */
	assert_int_equal(flags_of("SET LOCAL work_mem = '1MB'", false, NULL), 0);
	assert_int_equal(flags_of("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false, NULL), 0);
	/* A word in a literal or a column is not a statement. */
	assert_int_equal(flags_of("SELECT 'pg_advisory_lock(1)', temperature FROM t", false, NULL), 0);
	assert_int_equal(flags_of("CREATE TABLE temps (a int)", false, NULL), 0);
	/* Behind BEGIN, in a second statement. */
	assert_int_equal(flags_of("BEGIN; SET work_mem = '2MB'; COMMIT", false, NULL), SESS_NAMED);

	assert_true(flags_of("LISTEN jobs", false, &feature) & SESS_PIN);
	assert_string_equal(feature, "LISTEN");
	assert_true(flags_of("SELECT pg_advisory_lock(42)", false, &feature) & SESS_PIN);
	assert_string_equal(feature, "session advisory locks");
	assert_int_equal(flags_of("SELECT pg_advisory_xact_lock(42)", false, NULL), 0);
	assert_true(flags_of("CREATE TEMP TABLE t (a int)", false, &feature) & SESS_PIN);
	assert_string_equal(feature, "temporary tables");
	assert_true(flags_of("SELECT 1 AS a INTO TEMPORARY t2", false, NULL) & SESS_PIN);
	assert_true(flags_of("EXPLAIN ANALYZE CREATE TEMP TABLE t3 AS SELECT 1", false, NULL) & SESS_PIN);
	assert_true(flags_of("DECLARE c CURSOR WITH HOLD FOR SELECT 1", false, &feature) & SESS_PIN);
	assert_string_equal(feature, "WITH HOLD cursors");
	assert_int_equal(flags_of("DECLARE c CURSOR FOR SELECT 1", false, NULL), 0);
	assert_true(flags_of("LOAD 'auto_explain'", false, NULL) & SESS_LOAD);
	/* What may release it: only looked at when the client holds something. */
	assert_int_equal(flags_of("UNLISTEN *", false, NULL), SESS_UNPIN);
	assert_int_equal(flags_of("DROP TABLE t", false, NULL), 0);
	assert_int_equal(flags_of("DROP TABLE t", true, NULL), SESS_UNPIN);
	assert_int_equal(flags_of("SELECT pg_advisory_unlock_all()", false, NULL), SESS_UNPIN);
	/* What the parser rejects: the server answers it, the state is read after. */
	assert_int_equal(flags_of("SET = oops", false, NULL), SESS_SETTINGS | SESS_PREPARED | SESS_MAYPIN);
}

static void test_prepare_texts_and_custom_names(void **state)
{
	const char *sql = "PREPARE a AS SELECT 1; prepare B(int) AS SELECT $1 /* x; */; SET app.tenant = 'q'; "
			  "SELECT set_config('app.user', 'u', false)";
	struct sess_class cl;
	sess_classify(sql, strlen(sql), false, &cl);
	assert_int_equal(cl.nprepares, 2);
	assert_string_equal(cl.prepares[0].name, "a");
	assert_string_equal(cl.prepares[0].text, "PREPARE a AS SELECT 1");
	assert_string_equal(cl.prepares[1].name, "b");
	assert_string_equal(cl.prepares[1].text, "prepare B(int) AS SELECT $1 /* x; */");
	assert_int_equal(cl.ncustom, 2);
	assert_string_equal(cl.custom[0], "app.tenant");
	assert_string_equal(cl.custom[1], "app.user");
	assert_int_equal(cl.nnames, 2);
	assert_string_equal(cl.names[0], "app.tenant");
	assert_int_equal(cl.flags, SESS_NAMED | SESS_PREPARED);
	sess_class_free(&cl);
}

static void test_cache_gives_the_parser_s_answer(void **state)
{
	struct sess_cache *cache = sess_cache_new();
	const char *sql = "SET app.tenant = '7'; PREPARE p AS SELECT 1";
	for (int round = 0; round < 3; round++) {
		struct sess_class a, b;
		sess_classify_cached(cache, sql, strlen(sql), false, &a);
		sess_classify(sql, strlen(sql), false, &b);
		assert_int_equal(a.flags, b.flags);
		assert_int_equal(a.nnames, 1);
		assert_string_equal(a.names[0], "app.tenant");
		assert_int_equal(a.nprepares, 1);
		assert_string_equal(a.prepares[0].text, "PREPARE p AS SELECT 1");
		sess_class_free(&a);
		sess_class_free(&b);
	}
	/* Pinned or not is part of the key: DROP matters only to a pinned client. */
	struct sess_class d;
	sess_classify_cached(cache, "DROP TABLE t", 12, false, &d);
	assert_int_equal(d.flags, 0);
	sess_class_free(&d);
	sess_classify_cached(cache, "DROP TABLE t", 12, true, &d);
	assert_int_equal(d.flags, SESS_UNPIN);
	sess_class_free(&d);
	sess_cache_free(cache);
}

static void collect(void *arg, const char *sql)
{
	struct strbuf *sb = arg;
	sb_puts(sb, sql);
	sb_puts(sb, "\n");
}

static void test_sync_between_servers(void **state)
{
	struct sess_set from = {0}, to = {0};
	sess_set_put(&from, 'g', "work_mem", "8192");
	sess_set_put(&from, 'g', "search_path", "a");
	sess_set_put(&from, 'p', "q", "PREPARE q AS SELECT 1");
	sess_set_put(&to, 'g', "search_path", "it's \\ here");
	sess_set_put(&to, 'g', "statement_timeout", "5000");
	sess_set_put(&to, 'p', "q", "PREPARE q AS SELECT 2");
	sess_set_put(&to, 'p', "r", "PREPARE r AS SELECT 3");
	assert_false(sess_set_equal(&from, &to));
	struct strbuf sb = STRBUF_INIT;
	sess_sync(&from, &to, collect, &sb);
	assert_string_equal(sb_str(&sb),
			    "SELECT pg_catalog.set_config(E'search_path', E'it''s \\\\ here', false)\n"
			    "SELECT pg_catalog.set_config(E'statement_timeout', E'5000', false)\n"
			    "RESET \"work_mem\"\n"
			    "DEALLOCATE \"q\"\n"
			    "PREPARE q AS SELECT 2\n"
			    "PREPARE r AS SELECT 3\n");
	sess_set_copy(&from, &to);
	assert_true(sess_set_equal(&from, &to));
	sb_reset(&sb);
	sess_sync(&from, &to, collect, &sb);
	assert_int_equal(sb.len, 0);
	/* Names compare as PostgreSQL's do, without case. */
	assert_non_null(sess_set_get(&to, 'g', "STATEMENT_TIMEOUT"));
	sess_set_del(&to, 'g', "Statement_Timeout");
	assert_null(sess_set_get(&to, 'g', "statement_timeout"));
	assert_int_equal(to.n, 3);
	sb_free(&sb);
	sess_set_free(&from);
	sess_set_free(&to);
}

static void test_options(void **state)
{
	struct sess_set s = {0};
	struct pgha_err e;
	assert_int_equal(sess_parse_options("-c statement_timeout=5s --search-path=a\\ b -cwork_mem=8MB", &s, &e), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(sess_set_get(&s, 'g', "statement_timeout")->value, "5s");
	assert_string_equal(sess_set_get(&s, 'g', "search_path")->value, "a b");
	assert_string_equal(sess_set_get(&s, 'g', "work_mem")->value, "8MB");
	assert_int_equal(sess_parse_options("-e", &s, &e), -1);
	assert_non_null(strstr(e.msg, "\"-e\""));
	assert_int_equal(sess_parse_options("-c", &s, &e), -1);
	assert_int_equal(sess_parse_options("-c =x", &s, &e), -1);
	sess_set_free(&s);
}

static void test_state_query_and_refusal(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char *custom[] = {"app.tenant"}, *names[] = {"work_mem"};
	sess_state_query(SESS_SETTINGS, false, custom, 1, names, 1, &sb);
	assert_non_null(strstr(sb_str(&sb), "source = 'session'"));
	assert_non_null(strstr(sb_str(&sb), "E'app.tenant'"));
	assert_null(strstr(sb_str(&sb), "E'work_mem'"));                /* pg_settings has it */
	assert_non_null(strstr(sb_str(&sb), "E'application_name'"));   /* ParameterStatus carries the tracked ones */
	assert_null(strstr(sb_str(&sb), "pg_locks"));
	assert_null(strstr(sb_str(&sb), "pg_prepared_statements"));
	sb_reset(&sb);
	/* By name only: no pg_settings scan. */
	sess_state_query(SESS_NAMED, false, custom, 1, names, 1, &sb);
	assert_null(strstr(sb_str(&sb), "pg_settings"));
	assert_non_null(strstr(sb_str(&sb), "E'work_mem'"));
	sb_reset(&sb);
	sess_state_query(SESS_PREPARED, true, custom, 1, names, 1, &sb);
	assert_null(strstr(sb_str(&sb), "current_setting"));
	assert_non_null(strstr(sb_str(&sb), "pg_prepared_statements"));
	assert_non_null(strstr(sb_str(&sb), "pg_listening_channels"));
	sb_reset(&sb);
	sess_refusal_sql("LISTEN", &sb);
	assert_non_null(strstr(sb_str(&sb), "ERRCODE = '0A000'"));
	assert_non_null(strstr(sb_str(&sb), "LISTEN cannot be used"));
	assert_non_null(strstr(sb_str(&sb), "transaction_pinning"));
	assert_string_equal(sess_feature("LISTEN"), "LISTEN");
	assert_string_equal(sess_feature("anything else"), "session state");
	sb_free(&sb);
}

static void test_the_proxy_s_names(void **state)
{
	assert_true(sess_reserved_name("pgha_12"));
	assert_false(sess_reserved_name("pgha_"));
	assert_false(sess_reserved_name("pgha_x1"));
	assert_false(sess_reserved_name("PGHA_1x"));
	const char *mine[] = {"DEALLOCATE pgha_3", "deallocate prepare pgha_3", "EXECUTE pgha_3(1)",
			      "  execute PGHA_3", "PREPARE pgha_3 AS SELECT 1"};
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++) {
		struct sess_class cl;
		sess_classify(mine[i], strlen(mine[i]), false, &cl);
		assert_true(cl.flags & SESS_RESERVED);
		assert_string_equal(cl.reserved, "pgha_3");
		struct strbuf sb = STRBUF_INIT;
		sess_reserved_sql(&cl, &sb);
		assert_non_null(strstr(sb_str(&sb), cl.reserved_kind == 'P' ? "42P05" : "26000"));
		sb_free(&sb);
		sess_class_free(&cl);
	}
	assert_false(flags_of("EXECUTE pgha_mine", false, NULL) & SESS_RESERVED);
	assert_false(flags_of("DEALLOCATE ALL", false, NULL) & SESS_RESERVED);
	assert_int_equal(flags_of("EXECUTE q(1)", false, NULL), 0);   /* not even parsed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_queries_are_not_parsed),
		cmocka_unit_test(test_statements_that_change_the_session),
		cmocka_unit_test(test_prepare_texts_and_custom_names),
		cmocka_unit_test(test_cache_gives_the_parser_s_answer),
		cmocka_unit_test(test_sync_between_servers),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_state_query_and_refusal),
		cmocka_unit_test(test_the_proxy_s_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
