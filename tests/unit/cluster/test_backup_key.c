/*
 * test_backup_key.c — the backup records, the schedule and the choice of the
 * member that runs a backup (cluster/backup_key.c).
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

#include "cluster/backup_key.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_request_codec(void **state)
{
	(void)state;
	struct backup_request r = {.type = BACKUP_DIFF, .period = 7, .requested_at = 1796297335}, d;
	snprintf(r.id, sizeof(r.id), "00ff");
	snprintf(r.by, sizeof(r.by), "schedule");
	struct pgha_err e;
	char *t = backup_request_encode(&r);
	assert_string_equal(t, "{\"id\":\"00ff\",\"type\":\"diff\",\"by\":\"schedule\",\"period\":7,"
			    "\"requested_at\":1796297335}");
	assert_int_equal(backup_request_decode(t, &d, &e), 0);
	free(t);
	assert_string_equal(d.id, "00ff");
	assert_int_equal(d.type, BACKUP_DIFF);
	assert_int_equal(d.period, 7);

	/* Written by hand in etcd: each error names the record and the field. */
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"[]", "backup request is not a JSON object"},
		{"{\"type\":\"full\"}", "backup request: \"id\" is missing"},
		{"{\"id\":\"XY\",\"type\":\"full\"}", "backup request: \"id\" must be 1 to 32 lowercase hex digits"},
		{"{\"id\":\"1\",\"type\":\"weekly\"}", "backup request: \"type\" must be full, diff or incr"},
		{"{\"id\":\"1\",\"type\":1}", "backup request: \"type\" is not a string"},
		{"{\"id\":\"1\",\"type\":\"full\",\"by\":\"me\"}", "backup request: \"by\" must be ctl or schedule"},
		{"{\"id\":\"1\",\"type\":\"full\",\"period\":-3}", "backup request: \"period\" is out of range (-3)"},
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		assert_int_equal(backup_request_decode(bad[i].json, &d, &e), -1);
		assert_string_equal(e.msg, bad[i].msg);
	}
}

static void test_run_codec(void **state)
{
	(void)state;
	struct backup_run r = {.type = BACKUP_FULL, .standby = true, .started_at = 10, .percent = 37}, d;
	struct pgha_err e;
	snprintf(r.id, sizeof(r.id), "ab");
	snprintf(r.member, sizeof(r.member), "n2");
	char *t = backup_run_encode(&r);
	assert_string_equal(t, "{\"id\":\"ab\",\"type\":\"full\",\"member\":\"n2\",\"standby\":true,"
			    "\"started_at\":10,\"percent\":37}");
	assert_int_equal(backup_run_decode(t, "backup running", &d, &e), 0);
	free(t);
	assert_false(d.done);
	assert_int_equal(d.percent, 37);
	assert_true(d.standby);

	r.done = true;
	r.ok = false;
	snprintf(r.error, sizeof(r.error), "ERROR: [082]: WAL segment was not archived");
	r.finished_at = 20;
	t = backup_run_encode(&r);
	assert_string_equal(t, "{\"id\":\"ab\",\"type\":\"full\",\"member\":\"n2\",\"standby\":true,"
			    "\"started_at\":10,\"ok\":false,\"error\":\"ERROR: [082]: WAL segment was not archived\","
			    "\"finished_at\":20}");
	assert_int_equal(backup_run_decode(t, "backup last", &d, &e), 0);
	free(t);
	assert_true(d.done);
	assert_false(d.ok);
	assert_int_equal(d.finished_at, 20);

	assert_int_equal(backup_run_decode("{\"id\":\"1\",\"type\":\"full\",\"member\":\"../x\"}", "backup running",
					   &d, &e), -1);
	assert_string_equal(e.msg, "backup running: \"member\" is not a member name");
	assert_int_equal(backup_run_decode("{\"id\":\"1\",\"type\":\"full\",\"member\":\"n1\",\"percent\":101}",
					   "backup running", &d, &e), -1);
	assert_string_equal(e.msg, "backup running: \"percent\" is out of range (101)");
}

static void test_new_id(void **state)
{
	(void)state;
	char a[BACKUP_ID_MAX], b[BACKUP_ID_MAX];
	backup_new_id(a);
	backup_new_id(b);
	assert_int_equal(strlen(a), 16);
	assert_int_equal(strspn(a, "0123456789abcdef"), 16);
	assert_string_not_equal(a, b);
}

static void test_schedule(void **state)
{
	(void)state;
	const int64_t day = 86400, hour = 3600;
	struct backup_plan p = {.every_s = {7 * day, day, 0}, .offset_s = 2 * hour};
	struct backup_schedule s;
	struct pgha_err e;
	enum backup_type t;
	int64_t period;
	assert_int_equal(backup_schedule_decode(NULL, &s, &e), 0);
	int64_t now = 20000 * day + 3 * hour;   /* 03:00 UTC */

	/* Nothing recorded: a full backup at once, which also serves today's diff. */
	assert_true(backup_schedule_due(&p, &s, now, &t, &period));
	assert_int_equal(t, BACKUP_FULL);
	assert_int_equal(period, (20000 * day + hour) / (7 * day));
	backup_schedule_mark(&p, &s, t, now);
	assert_false(backup_schedule_due(&p, &s, now + hour, &t, &period));
	assert_int_equal(s.period[BACKUP_INCR], -1);   /* incr not scheduled */

	/* 01:59 the next day is still today's diff period (offset 2 h); 02:00 starts the next. */
	assert_false(backup_schedule_due(&p, &s, 20001 * day + 2 * hour - 1, &t, &period));
	assert_true(backup_schedule_due(&p, &s, 20001 * day + 2 * hour, &t, &period));
	assert_int_equal(t, BACKUP_DIFF);
	assert_int_equal(period, 20001);
	backup_schedule_mark(&p, &s, t, 20001 * day + 2 * hour);
	assert_int_equal(s.period[BACKUP_FULL], (20000 * day + hour) / (7 * day));

	char *txt = backup_schedule_encode(&s);
	struct backup_schedule back;
	assert_int_equal(backup_schedule_decode(txt, &back, &e), 0);
	assert_memory_equal(&back, &s, sizeof(s));
	free(txt);
	assert_int_equal(backup_schedule_decode("{\"full\":\"x\"}", &back, &e), -1);
	assert_string_equal(e.msg, "backup schedule: \"full\" is not an integer");

	/* Nothing scheduled: never due. */
	struct backup_plan none = {.every_s = {0, 0, 0}};
	assert_false(backup_schedule_due(&none, &back, now, &t, &period));
}

/* A failed scheduled backup is asked for again within its period, no sooner than BACKUP_RETRY_S. */
static void test_schedule_retry(void **state)
{
	(void)state;
	const int64_t day = 86400, hour = 3600;
	struct backup_plan p = {.every_s = {7 * day, day, 0}, .offset_s = 2 * hour};
	int64_t now = 20000 * day + 3 * hour;
	struct backup_run last = {.type = BACKUP_DIFF, .done = true, .ok = false, .period = 20000,
				  .finished_at = now - BACKUP_RETRY_S};
	snprintf(last.by, sizeof(last.by), "schedule");
	enum backup_type t = BACKUP_FULL;
	int64_t period = -1;
	assert_true(backup_schedule_retry_due(&p, &last, now, &t, &period));
	assert_int_equal(t, BACKUP_DIFF);
	assert_int_equal(period, 20000);
	/* Too soon after the failure. */
	assert_false(backup_schedule_retry_due(&p, &last, now - 1, &t, &period));
	/* The period is over: the next one is the schedule's, not a retry. */
	assert_false(backup_schedule_retry_due(&p, &last, 20001 * day + 2 * hour, &t, &period));
	/* It succeeded, it is still running, ctl asked for it, or the type is no longer scheduled. */
	last.ok = true;
	assert_false(backup_schedule_retry_due(&p, &last, now, &t, &period));
	last.ok = false;
	last.done = false;
	assert_false(backup_schedule_retry_due(&p, &last, now, &t, &period));
	last.done = true;
	snprintf(last.by, sizeof(last.by), "ctl");
	assert_false(backup_schedule_retry_due(&p, &last, now, &t, &period));
	snprintf(last.by, sizeof(last.by), "schedule");
	p.every_s[BACKUP_DIFF] = 0;
	assert_false(backup_schedule_retry_due(&p, &last, now, &t, &period));
	assert_false(backup_schedule_retry_due(&p, NULL, now, &t, &period));
}

static struct member mk(const char *name, enum member_role role, enum member_state st, int64_t lag,
			const char *host)
{
	struct member m;
	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", name);
	m.role = role;
	m.state = st;
	m.lag_bytes = lag;
	snprintf(m.backup_host, sizeof(m.backup_host), "%s", host);
	snprintf(m.pg_path, sizeof(m.pg_path), "/data/%s", name);
	return m;
}

static void test_pick_runner(void **state)
{
	(void)state;
	struct member ms[4] = {
		mk("n1", ROLE_PRIMARY, STATE_RUNNING, -1, "h1"),
		mk("n2", ROLE_REPLICA, STATE_STREAMING, 100, "h1"),
		mk("n3", ROLE_REPLICA, STATE_STREAMING, 0, "h1"),
		mk("n4", ROLE_REPLICA, STATE_STREAMING, 0, "h2"),
	};
	struct cluster_view v = {.leader = "n1", .members = ms, .nmembers = 4};
	bool standby;
	/* The least lag on the leader's host; n4 is on another host. */
	const struct member *r = backup_pick_runner(&v, &standby);
	assert_string_equal(r->name, "n3");
	assert_true(standby);
	/* Equal lag: the lowest name. */
	ms[1].lag_bytes = 0;
	assert_string_equal(backup_pick_runner(&v, &standby)->name, "n2");
	/* Not streaming, too far behind or lag unknown: not a runner. */
	ms[1].state = STATE_RUNNING;
	ms[2].lag_bytes = BACKUP_STANDBY_MAX_LAG + 1;
	r = backup_pick_runner(&v, &standby);
	assert_string_equal(r->name, "n1");
	assert_false(standby);
	/* A leader without [backup]: nobody. */
	ms[0].backup_host[0] = '\0';
	assert_null(backup_pick_runner(&v, &standby));
	v.leader = NULL;
	assert_null(backup_pick_runner(&v, &standby));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_codec),
		cmocka_unit_test(test_run_codec),
		cmocka_unit_test(test_new_id),
		cmocka_unit_test(test_schedule),
		cmocka_unit_test(test_schedule_retry),
		cmocka_unit_test(test_pick_runner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
