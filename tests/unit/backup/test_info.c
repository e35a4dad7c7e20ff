/*
 * test_info.c — decoding `pgbackrest info --output=json` (backup/info.c):
 * what pgBackRest 2.45 printed for a stanza with a full and an incremental
 * backup, a stanza the repository does not hold, and each field that is
 * wrong naming itself and the backup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backup/info.h"
#include "common/strbuf.h"

/* Captured from pgBackRest 2.45: a full backup, rows written, an incremental one. */
static const char real_info[] =
	"[{\"archive\":[{\"database\":{\"id\":1,\"repo-key\":1},\"id\":\"15-1\",\"max\":\"000000010000000000000007\",\"min"
	"\":\"000000010000000000000001\"}],\"backup\":[{\"archive\":{\"start\":\"000000010000000000000004\",\"stop\":\""
	"000000010000000000000005\"},\"backrest\":{\"format\":5,\"version\":\"2.45\"},\"database\":{\"id\":1,\"repo-key"
	"\":1},\"error\":false,\"info\":{\"delta\":22992566,\"repository\":{\"delta\":4522359,\"size\":4522359},\"size\""
	":22992566},\"label\":\"20261203-093950F\",\"lsn\":{\"start\":\"0/4000028\",\"stop\":\"0/5000050\"},\"prior\":nul"
	"l,\"reference\":null,\"timestamp\":{\"start\":1796290790,\"stop\":1796290792},\"type\":\"full\"},{\"archive\":"
	"{\"start\":\"000000010000000000000007\",\"stop\":\"000000010000000000000007\"},\"backrest\":{\"format\":5,\"v"
	"ersion\":\"2.45\"},\"database\":{\"id\":1,\"repo-key\":1},\"error\":false,\"info\":{\"delta\":1474826,\"reposito"
	"ry\":{\"delta\":280550,\"size\":4532704},\"size\":23058102},\"label\":\"20261203-093950F_20261203-093953I\""
	",\"lsn\":{\"start\":\"0/7000028\",\"stop\":\"0/7000100\"},\"prior\":\"20261203-093950F\",\"reference\":[\"2026120"
	"3-093950F\"],\"timestamp\":{\"start\":1796290793,\"stop\":1796290795},\"type\":\"incr\"}],\"cipher\":\"none\",\""
	"db\":[{\"id\":1,\"repo-key\":1,\"system-id\":7715009871825996027,\"version\":\"15\"}],\"name\":\"demo\",\"repo\":"
	"[{\"cipher\":\"none\",\"key\":1,\"status\":{\"code\":0,\"message\":\"ok\"}}],\"status\":{\"code\":0,\"lock\":{\"backu"
	"p\":{\"held\":false}},\"message\":\"ok\"}}]";

static const char missing_stanza[] =
	"[{\"archive\":[],\"backup\":[],\"cipher\":\"none\",\"db\":[],\"name\":\"demo\",\"repo\":[{\"cipher\":\"none\","
	"\"key\":1,\"status\":{\"code\":1,\"message\":\"missing stanza path\"}}],\"status\":{\"code\":1,"
	"\"lock\":{\"backup\":{\"held\":false}},\"message\":\"missing stanza path\"}}]";

/* real_info with the first "from" replaced by "to" (which must be there). */
static char *real_with(const char *from, const char *to)
{
	const char *p = strstr(real_info, from);
	if (p == NULL)
		fail_msg("\"%s\" is not in the captured output", from);
	struct strbuf sb = STRBUF_INIT;
	sb_append(&sb, real_info, (size_t)(p - real_info));
	sb_puts(&sb, to);
	sb_puts(&sb, p + strlen(from));
	return sb_steal(&sb);
}

static void test_real_output(void **state)
{
	struct backup_info bi;
	struct pgha_err e;
	assert_int_equal(backup_info_decode(real_info, "demo", &bi, &e), 0);
	assert_int_equal(bi.status_code, 0);
	assert_string_equal(bi.status, "ok");
	assert_false(bi.backup_running);
	assert_true(bi.system_id == 7715009871825996027ULL);
	assert_string_equal(bi.wal_min, "000000010000000000000001");
	assert_string_equal(bi.wal_max, "000000010000000000000007");
	assert_int_equal(bi.nbackups, 2);

	const struct backup_entry *f = &bi.backups[0], *i = &bi.backups[1];
	assert_string_equal(f->label, "20261203-093950F");
	assert_int_equal(f->type, BACKUP_FULL);
	assert_string_equal(f->prior, "");
	assert_int_equal(f->start_s, 1796290790);
	assert_int_equal(f->stop_s, 1796290792);
	assert_int_equal(f->size, 22992566);
	assert_int_equal(f->repo_size, 4522359);
	assert_string_equal(f->wal_start, "000000010000000000000004");
	assert_string_equal(f->wal_stop, "000000010000000000000005");
	assert_true(f->lsn_start == 0x4000028 && f->lsn_stop == 0x5000050);
	assert_false(f->error);

	assert_string_equal(i->label, "20261203-093950F_20261203-093953I");
	assert_int_equal(i->type, BACKUP_INCR);
	assert_string_equal(i->prior, "20261203-093950F");
	assert_int_equal(i->delta, 1474826);
	assert_int_equal(i->repo_delta, 280550);
	assert_ptr_equal(backup_info_latest(&bi), i);
	assert_string_equal(backup_type_name(i->type), "incr");
	backup_info_free(&bi);
}

static void test_missing_stanza(void **state)
{
	struct backup_info bi;
	struct pgha_err e;
	/* as pgBackRest prints it, and a stanza the list does not name */
	assert_int_equal(backup_info_decode(missing_stanza, "demo", &bi, &e), 0);
	assert_int_equal(bi.status_code, 1);
	assert_string_equal(bi.status, "missing stanza path");
	assert_int_equal(bi.nbackups, 0);
	assert_null(backup_info_latest(&bi));
	assert_string_equal(bi.wal_max, "");
	backup_info_free(&bi);

	assert_int_equal(backup_info_decode(real_info, "other", &bi, &e), 0);
	assert_int_equal(bi.status_code, 1);
	assert_string_equal(bi.status, "missing stanza path");
	assert_int_equal(bi.nbackups, 0);
	backup_info_free(&bi);
}

/* The latest backup a restore can start from skips one pgBackRest marked with errors. */
static void test_latest_skips_errors(void **state)
{
	char *text = real_with("\"error\":false,\"info\":{\"delta\":1474826", "\"error\":true,\"info\":{\"delta\":1474826");
	struct backup_info bi;
	struct pgha_err e;
	assert_int_equal(backup_info_decode(text, "demo", &bi, &e), 0);
	assert_true(bi.backups[1].error);
	assert_ptr_equal(backup_info_latest(&bi), &bi.backups[0]);
	backup_info_free(&bi);
	free(text);
}

static void test_refused(void **state)
{
	static const char *const cases[][3] = {
		{"\"type\":\"incr\"", "\"type\":\"weekly\"", "backup 20261203-093950F_20261203-093953I: unknown type \"weekly\""},
		{"\"stop\":1796290792", "\"stop\":\"soon\"", "backup 20261203-093950F: \"timestamp.stop\" is not a whole number"},
		{"\"stop\":1796290792", "\"stop\":1796290000", "backup 20261203-093950F: it stopped before it started"},
		{"\"size\":22992566}", "\"size\":-1}", "backup 20261203-093950F: \"info.size\" is not a whole number"},
		{"\"start\":\"000000010000000000000004\"", "\"start\":\"../../etc\"",
		 "backup 20261203-093950F: \"archive.start\" is not a WAL segment name: ../../etc"},
		{"\"start\":\"0/4000028\"", "\"start\":\"zz\"", "backup 20261203-093950F: \"lsn.start\" is not an LSN: zz"},
		{"\"label\":\"20261203-093950F\"", "\"label\":7", "backup 1: \"label\" is not text"},
		{"\"error\":false", "\"error\":\"no\"", "backup 20261203-093950F: \"error\" is not true or false"},
		{"\"max\":\"000000010000000000000007\"", "\"max\":\"7\"", "archive: \"max\" is not a WAL segment name: 7"},
		{"\"system-id\":7715009871825996027", "\"system-id\":\"x\"", "db: \"system-id\" is not a whole number"},
		{"\"backup\":[{", "\"backup\":\"none\",\"x\":[{", "\"backup\" is not a list"},
		{"\"held\":false}},\"message\":\"ok\"", "\"held\":false}},\"message\":7", "status: \"status.message\" is not text"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char *text = real_with(cases[k][0], cases[k][1]);
		struct backup_info bi;
		struct pgha_err e = {{0}};
		int rc = backup_info_decode(text, "demo", &bi, &e);
		free(text);
		if (rc == 0)
			fail_msg("accepted: %s -> %s", cases[k][0], cases[k][1]);
		if (strstr(e.msg, cases[k][2]) == NULL)
			fail_msg("\"%s\" does not contain \"%s\"", e.msg, cases[k][2]);
		assert_null(bi.backups);
	}
	struct backup_info bi;
	struct pgha_err e;
	assert_int_equal(backup_info_decode("ERROR: [055]: unable to load info file", "demo", &bi, &e), -1);
	assert_non_null(strstr(e.msg, "pgbackrest info: not a JSON list of stanzas"));
	assert_int_equal(backup_info_decode("{}", "demo", &bi, &e), -1);
	assert_string_equal(e.msg, "pgbackrest info: not a JSON list of stanzas (another type)");
}

/* pgBackRest 2.45 with another passphrase than the repository's: it quotes the bytes it decrypted. */
static void test_wrong_passphrase(void **state)
{
	(void)state;
	static const char wrong[] =
		"[{\"archive\":[],\"backup\":[],\"cipher\":\"aes-256-cbc\",\"db\":[],\"name\":\"demo\",\"repo\":[{\"cipher\""
		":\"aes-256-cbc\",\"key\":1,\"status\":{\"code\":99,\"message\":\"[FormatError] unable to load info file "
		"'/r/backup/demo/backup.info' or '/r/backup/demo/backup.info.copy':\\nFormatError: key/value found outside "
		"of section at line 1: \xfa\xc0\x80w\x17\tE\\nHINT: backup.info cannot be opened and is required to "
		"perform a backup.\"}}],\"status\":{\"code\":99,\"lock\":{\"backup\":{\"held\":false}},\"message\":"
		"\"other\"}}]";
	struct backup_info bi;
	struct pgha_err e;
	assert_int_equal(backup_info_decode(wrong, "demo", &bi, &e), 0);
	assert_int_equal(bi.status_code, 99);
	assert_string_equal(bi.status, "error: cannot decrypt /r/backup/demo/backup.info: [backup] cipher_pass_file "
			    "does not hold the passphrase the repository was created with (or the file is damaged)");
	assert_int_equal(bi.nbackups, 0);
	backup_info_free(&bi);

	/* Any other error: the repository's first line, not "other". */
	static const char other[] =
		"[{\"archive\":[],\"backup\":[],\"cipher\":\"none\",\"db\":[],\"name\":\"demo\",\"repo\":[{\"cipher\":"
		"\"none\",\"key\":1,\"status\":{\"code\":99,\"message\":\"[PathOpenError] unable to list file info for "
		"path '/r/backup'\\nmore\"}}],\"status\":{\"code\":99,\"lock\":{\"backup\":{\"held\":false}},\"message\":"
		"\"other\"}}]";
	assert_int_equal(backup_info_decode(other, "demo", &bi, &e), 0);
	assert_string_equal(bi.status, "error: [PathOpenError] unable to list file info for path '/r/backup'");
	backup_info_free(&bi);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_output),
		cmocka_unit_test(test_missing_stanza),
		cmocka_unit_test(test_latest_skips_errors),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_wrong_passphrase),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
