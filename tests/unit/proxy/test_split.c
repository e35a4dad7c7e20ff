/*
 * test_split.c — the single-endpoint read/write split (proxy/split.c): which
 * texts the parser proves may run on a standby, the safe-function list, and
 * how a client's buffered unit of messages is judged whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "pgproto/pgproto.h"
#include "proxy/objects.h"
#include "proxy/split.h"

static struct split_rules *rules(const char *list)
{
	struct pgha_err e;
	struct split_rules *r = split_rules_new(list, &e);
	assert_non_null(r);
	return r;
}

static bool may(struct split_rules *r, const char *sql, bool statements, bool *in)
{
	return split_may_read(r, sql, strlen(sql), statements, in);
}

static void test_read_only_transactions(void **state)
{
	struct split_rules *r = rules("default");
	const char *yes[] = {
		"BEGIN READ ONLY", "begin transaction read only", "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
		"BEGIN READ ONLY; SELECT nextval('s'); COMMIT",   /* the server refuses nextval in it: no harm */
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		bool in = false;
		assert_true(may(r, yes[i], false, &in));
	}
	bool in = false;
	assert_true(may(r, "BEGIN READ ONLY", false, &in));
	assert_true(in);
	const char *no[] = {
		"BEGIN", "BEGIN READ WRITE", "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
		"BEGIN READ ONLY; COMMIT; INSERT INTO t VALUES (1)",
		"SELECT 1",   /* not in transactions mode */
		"BEGIN READ ONLY; CREATE TEMP TABLE t (i int)", "BEGIN READ ONLY; LISTEN x",
		"BEGIN READ ONLY; PREPARE TRANSACTION 'x'", "this is not SQL", "",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		in = false;
		assert_false(may(r, no[i], false, &in));
	}
	/* Inside one, begun earlier in the unit: anything but its end goes on, quickly. */
	in = true;
	assert_true(may(r, "UPDATE t SET x = 1", false, &in));
	assert_true(in);
	assert_true(may(r, "COMMIT", false, &in));
	assert_false(in);
	split_rules_free(r);
}

static void test_proven_reads(void **state)
{
	struct split_rules *r = rules("default, my_read, app.report");
	const char *yes[] = {
		"SELECT 1", "select count(*), max(x) FROM t WHERE y = $1",
		"WITH a AS (SELECT * FROM t) SELECT lower(name), now() FROM a",
		"SELECT pg_catalog.lower('A')", "VALUES (1), (2)", "TABLE t", "SHOW work_mem",
		"SELECT my_read(1)", "SELECT app.report()", "SELECT * FROM generate_series(1, 3)",
		"SELECT 1; SELECT 2",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		bool in = false;
		assert_true(may(r, yes[i], true, &in));
		assert_false(in);
	}
	const char *no[] = {
		"SELECT nextval('s')", "SELECT * FROM t FOR UPDATE", "SELECT * FROM t FOR SHARE",
		"SELECT 1 INTO t2", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
		"WITH u AS (UPDATE t SET x = 1 RETURNING *) SELECT 1", "SELECT my_write(1)",
		"SELECT public.lower('a')",   /* a schema of its own: not pg_catalog's lower */
		"SELECT other.report()", "SELECT pg_advisory_lock(1)", "SELECT set_config('a.b', '1', false)",
		"SELECT txid_current()", "INSERT INTO t VALUES (1)", "SELECT 1; INSERT INTO t VALUES (1)",
		"SELECT * FROM t, LATERAL my_write(t.x)",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		bool in = false;
		assert_false(may(r, no[i], true, &in));
	}
	/* The cache gives the parser's answer again, and keeps the state apart. */
	for (int k = 0; k < 3; k++) {
		bool in = false;
		assert_true(may(r, "SELECT count(*) FROM t", true, &in));
		assert_false(may(r, "SELECT count(*) FROM t", false, &in));
		assert_true(may(r, "BEGIN READ ONLY", true, &in));
		assert_true(in);
	}
	split_rules_free(r);
}

static void test_safe_function_list(void **state)
{
	struct pgha_err e;
	assert_null(split_rules_new("default, drop table x", &e));
	assert_non_null(strstr(e.msg, "rw_split_safe_functions"));
	/* Without "default", only what is listed. */
	struct split_rules *r = rules("lower");
	bool in = false;
	assert_true(may(r, "SELECT lower('A')", true, &in));
	assert_false(may(r, "SELECT upper('a')", true, &in));
	assert_false(may(r, "SELECT count(*) FROM t", true, &in));
	split_rules_free(r);
}

/* A client holding the bytes built in sb, behind a proxy set to mode. */
struct fixture {
	struct proxy px;
	struct client c;
};

static void load(struct fixture *f, int mode, const struct strbuf *sb)
{
	memset(f, 0, sizeof(*f));
	f->px.cfg.rw_split = mode;
	f->px.cfg.rw_split_safe_functions = (char *)"default";
	f->c.px = &f->px;
	pbuf_reserve(&f->c.in, sb->len);
	memcpy(f->c.in.data + f->c.in.end, sb->data, sb->len);
	f->c.in.end += sb->len;
}

static void unload(struct fixture *f)
{
	pbuf_free(&f->c.in);
	split_rules_free(f->px.split);
}

static int route(int mode, const struct strbuf *sb)
{
	struct fixture f;
	load(&f, mode, sb);
	int r = split_route(&f.c);
	unload(&f);
	return r;
}

static void extended(struct strbuf *sb, const char *sql, bool sync)
{
	pgp_build_parse(sb, "", sql, NULL, 0);
	pgp_build_bind(sb, "", "", NULL, 0, NULL, 0, NULL, 0);
	pgp_build_describe(sb, 'P', "");
	pgp_build_execute(sb, "", 0);
	if (sync)
		pgp_build_sync(sb);
}

static void test_units(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	pgp_build_query(&sb, "BEGIN READ ONLY");
	assert_int_equal(route(RW_SPLIT_TRANSACTIONS, &sb), 1);
	sb_reset(&sb);
	pgp_build_query(&sb, "SELECT 1");
	pgp_build_query(&sb, "INSERT INTO t VALUES (1)");   /* the next unit: judged on its own */
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 1);
	assert_int_equal(route(RW_SPLIT_TRANSACTIONS, &sb), 0);
	sb_reset(&sb);
	extended(&sb, "SELECT $1::int", true);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 1);
	/* pgJDBC's first use of a named statement: its Parse and its Bind in one unit. */
	sb_reset(&sb);
	pgp_build_parse(&sb, "S_2", "SELECT count(*) FROM t WHERE id = $1", NULL, 0);
	pgp_build_bind(&sb, "", "S_2", NULL, 0, NULL, 0, NULL, 0);
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 1);
	assert_int_equal(route(RW_SPLIT_TRANSACTIONS, &sb), 0);
	/* pgJDBC's read-only transaction: BEGIN READ ONLY and the query in one unit. */
	sb_reset(&sb);
	extended(&sb, "BEGIN READ ONLY", false);
	extended(&sb, "UPDATE t SET x = 1", true);
	assert_int_equal(route(RW_SPLIT_TRANSACTIONS, &sb), 1);
	/* A unit with a write in it stays whole on the leader. */
	sb_reset(&sb);
	extended(&sb, "SELECT 1", false);
	extended(&sb, "DELETE FROM t", true);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 0);
	/* Not all here: wait (a Flush ends a unit as a Sync does). */
	sb_reset(&sb);
	extended(&sb, "SELECT 1", false);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), -1);
	pgp_build_flush(&sb);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 1);
	struct strbuf part = STRBUF_INIT;
	pgp_build_query(&part, "SELECT 1");
	part.len -= 3;
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &part), -1);
	sb_free(&part);
	/* A Bind of a statement the client never prepared, a function call, a Sync alone: the leader. */
	sb_reset(&sb);
	pgp_build_bind(&sb, "", "S_1", NULL, 0, NULL, 0, NULL, 0);
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 0);
	sb_reset(&sb);
	pgp_build_sync(&sb);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 0);
	sb_reset(&sb);
	const uint8_t fcall[] = {'F', 0, 0, 0, 4};
	sb_append(&sb, fcall, sizeof(fcall));
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 0);
	/* Longer than SPLIT_UNIT_MAX: the leader, unread. */
	sb_reset(&sb);
	char *big = malloc(SPLIT_UNIT_MAX + 10);
	memset(big, ' ', SPLIT_UNIT_MAX + 9);
	memcpy(big, "SELECT 1", 8);
	big[SPLIT_UNIT_MAX + 9] = '\0';
	pgp_build_query(&sb, big);
	free(big);
	assert_int_equal(route(RW_SPLIT_STATEMENTS, &sb), 0);
	sb_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_only_transactions),
		cmocka_unit_test(test_proven_reads),
		cmocka_unit_test(test_safe_function_list),
		cmocka_unit_test(test_units),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
