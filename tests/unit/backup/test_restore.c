/*
 * test_restore.c — recovery targets, the backup a target starts from, and the
 * recovery settings a restore leaves behind (backup/restore.c).
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

#include "backup/info.h"
#include "backup/restore.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_targets(void **state)
{
	(void)state;
	static const struct {
		const char *in, *text;
		enum restore_target_kind kind;
	} ok[] = {
		{"latest", "latest", RESTORE_LATEST},
		{"0/5000028", "0/5000028", RESTORE_LSN},
		{"2026-12-03 14:02", "2026-12-03 14:02:00+00:00", RESTORE_TIME},
		{"2026-12-03 14:02:07", "2026-12-03 14:02:07+00:00", RESTORE_TIME},
		{"2026-12-03T14:02:07.250Z", "2026-12-03 14:02:07.250+00:00", RESTORE_TIME},
		{"2026-12-03 14:02:07 UTC", "2026-12-03 14:02:07+00:00", RESTORE_TIME},
		{"2026-12-03 14:02:07+01", "2026-12-03 14:02:07+01:00", RESTORE_TIME},
		{"2026-12-03 14:02:07-05:30", "2026-12-03 14:02:07-05:30", RESTORE_TIME},
		{"2026-12-03 14:02:07+0200", "2026-12-03 14:02:07+02:00", RESTORE_TIME},
	};
	struct restore_target t;
	struct pgha_err e;
	for (size_t i = 0; i < NELEM(ok); i++) {
		assert_int_equal(restore_target_parse(ok[i].in, &t, &e), 0);
		assert_int_equal(t.kind, ok[i].kind);
		assert_string_equal(t.text, ok[i].text);
	}
	/* Nothing that PostgreSQL could read another way, and no room for a second config line. */
	static const char *const bad[] = {
		"", "yesterday", "2026-12-03", "2026-13-03 14:02", "2026-12-03 25:00", "2026-12-03 14:02:07 CET",
		"2026-12-03 14:02:07+01\nrestore_command = x", "2026-12-03 14:02:07.1234567", "0/zz", "20261203 1402",
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		assert_int_equal(restore_target_parse(bad[i], &t, &e), -1);
		assert_non_null(strstr(e.msg, "give latest, an LSN such as 0/5000028, or a time such as"));
	}
	assert_int_equal(restore_target_parse("1970-01-02 01:00:00+01", &t, &e), 0);
	assert_int_equal(restore_target_epoch(&t), 86400);
	assert_int_equal(restore_target_parse("2026-12-03 14:02:07.9", &t, &e), 0);
	assert_int_equal(restore_target_epoch(&t), 1796306527);

	char *args[3];
	restore_target_args(&t, args);
	assert_string_equal(args[0], "--type=time");
	assert_string_equal(args[1], "--target=2026-12-03 14:02:07.9+00:00");
	assert_string_equal(args[2], "--target-action=promote");
	for (int i = 0; i < 3; i++)
		free(args[i]);
	assert_int_equal(restore_target_parse("latest", &t, &e), 0);
	restore_target_args(&t, args);
	assert_string_equal(args[0], "--type=default");
	assert_null(args[1]);
	free(args[0]);
}

static void test_pick_backup(void **state)
{
	(void)state;
	struct backup_entry b[3];
	memset(b, 0, sizeof(b));
	snprintf(b[0].label, sizeof(b[0].label), "F1");
	b[0].stop_s = 1000;
	b[0].lsn_stop = 0x3000000;
	snprintf(b[1].label, sizeof(b[1].label), "F1_I2");
	b[1].stop_s = 2000;
	b[1].lsn_stop = 0x5000000;
	b[1].error = true;          /* a page checksum error: never a starting point */
	snprintf(b[2].label, sizeof(b[2].label), "F3");
	b[2].stop_s = 3000;
	b[2].lsn_stop = 0x7000000;
	struct backup_info bi = {.backups = b, .nbackups = 3};
	snprintf(bi.stanza, sizeof(bi.stanza), "main");
	snprintf(bi.wal_max, sizeof(bi.wal_max), "000000010000000000000009");
	struct restore_target t;
	struct pgha_err e;

	assert_int_equal(restore_target_parse("1970-01-01 00:40:00", &t, &e), 0);   /* 2400 s */
	assert_string_equal(restore_pick_backup(&bi, &t, &e)->label, "F1");
	assert_int_equal(restore_target_parse("1970-01-01 00:50:00", &t, &e), 0);   /* 3000 s: that backup's end */
	assert_string_equal(restore_pick_backup(&bi, &t, &e)->label, "F3");
	assert_int_equal(restore_target_parse("0/6000000", &t, &e), 0);
	assert_string_equal(restore_pick_backup(&bi, &t, &e)->label, "F1");
	assert_int_equal(restore_target_parse("latest", &t, &e), 0);
	assert_string_equal(restore_pick_backup(&bi, &t, &e)->label, "F3");

	assert_int_equal(restore_target_parse("1970-01-01 00:16:00", &t, &e), 0);   /* before F1 ended */
	assert_null(restore_pick_backup(&bi, &t, &e));
	assert_string_equal(e.msg, "restore target 1970-01-01 00:16:00+00:00 is before the recoverable window of "
			    "stanza main, which starts at 1970-01-01 00:16:40 UTC (LSN 0/3000000, the end of backup F1) "
			    "and ends at the last archived WAL segment 000000010000000000000009\n"
			    "HINT: choose a target inside the window (pgha ctl backups shows it); nothing was changed");
	assert_int_equal(restore_target_parse("2999-01-01 00:00", &t, &e), 0);
	assert_null(restore_pick_backup(&bi, &t, &e));
	assert_non_null(strstr(e.msg, "is in the future"));

	bi.nbackups = 0;
	assert_int_equal(restore_target_parse("latest", &t, &e), 0);
	assert_null(restore_pick_backup(&bi, &t, &e));
	assert_non_null(strstr(e.msg, "the repository holds no backup of stanza main"));
}

static void test_strip_auto_conf(void **state)
{
	(void)state;
	const char *in = "# Do not edit this file manually!\n"
			 "work_mem = '8MB'\n"
			 "restore_command = 'keep: not from a restore'\n"
			 "\n"
			 "# Recovery settings generated by pgBackRest restore on 2026-12-03 11:51:34\n"
			 "restore_command = 'pgbackrest --stanza=src archive-get %f \"%p\"'\n"
			 "recovery_target_time = '2026-12-03 11:51:30+00:00'\n"
			 "recovery_target_action = 'promote'\n"
			 "archive_mode = 'off'\n"
			 "recovery_target_timeline_x_unrelated = 1\n"
			 "maintenance_work_mem = '64MB'";
	char *out = restore_strip_auto_conf(in);
	assert_string_equal(out, "# Do not edit this file manually!\n"
				 "work_mem = '8MB'\n"
				 "restore_command = 'keep: not from a restore'\n"
				 "\n"
				 "maintenance_work_mem = '64MB'");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_pick_backup),
		cmocka_unit_test(test_strip_auto_conf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
