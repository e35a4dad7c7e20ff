/*
 * test_pgbackrest.c — pgBackRest's config text and the archive/restore
 * commands (backup/pgbackrest.c): exact text (posix and S3), the passphrase
 * and the S3 keys only on their lines, paths that cannot be quoted refused,
 * the S3 causes pgBackRest's output names, the file written 0600 in a 0700
 * work directory with spool/log/lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/pgbackrest.h"
#include "common/util.h"

#include "../unit_files.h"

static struct pgbr_spec spec(void)
{
	struct pgbr_spec s = {
		.stanza = "pgha", .repo_path = "/srv/backup", .retention_full = 2, .compress_type = "zstd",
		.process_max = 2, .archive_push_queue_max = "1GiB", .work_dir = "/srv/pg/data.pgha-backup",
		.cipher_pass = NULL, .pg_path = "/srv/pg/data", .pg_port = 5432, .pg_socket_path = "/tmp",
		.pg_user = "postgres",
	};
	return s;
}

/* What follows the repository's lines in every config spec() renders. */
#define CONF_AFTER_REPO                                   \
	"repo1-retention-full=2\n"                        \
	"compress-type=zst\n"                             \
	"process-max=2\n"                                 \
	"archive-async=y\n"                               \
	"spool-path=/srv/pg/data.pgha-backup/spool\n"     \
	"archive-push-queue-max=1GiB\n"                   \
	"log-path=/srv/pg/data.pgha-backup/log\n"         \
	"lock-path=/srv/pg/data.pgha-backup/lock\n"       \
	"log-level-console=warn\n"                        \
	"log-level-file=info\n"                           \
	"start-fast=y\n"                                  \
	"\n"                                              \
	"[pgha]\n"                                        \
	"pg1-path=/srv/pg/data\n"                         \
	"pg1-port=5432\n"                                 \
	"pg1-socket-path=/tmp\n"                          \
	"pg1-user=postgres\n"

static void test_conf_exact(void **state)
{
	struct pgbr_spec s = spec();
	struct strbuf sb = STRBUF_INIT;
	pgbr_render_conf(&s, &sb);
	assert_string_equal(sb_str(&sb),
			    "# Written by pgha at every start from its [backup] section. Do not edit.\n"
			    "[global]\n"
			    "repo1-path=/srv/backup\n"
			    CONF_AFTER_REPO);
	sb_free(&sb);
}

/* A standby cluster's config also names the primary's stanza, with this data directory, for archive-get. */
static void test_conf_archive_stanza(void **state)
{
	struct pgbr_spec s = spec();
	s.archive_stanza = "east";
	struct strbuf sb = STRBUF_INIT;
	pgbr_render_conf(&s, &sb);
	assert_string_equal(sb_str(&sb),
			    "# Written by pgha at every start from its [backup] section. Do not edit.\n"
			    "[global]\n"
			    "repo1-path=/srv/backup\n"
			    CONF_AFTER_REPO
			    "\n"
			    "[east]\n"
			    "pg1-path=/srv/pg/data\n"
			    "pg1-port=5432\n"
			    "pg1-socket-path=/tmp\n"
			    "pg1-user=postgres\n");
	/* "" is none. */
	s.archive_stanza = "";
	sb_reset(&sb);
	pgbr_render_conf(&s, &sb);
	assert_null(strstr(sb_str(&sb), "[east]"));
	sb_free(&sb);
}

static void test_conf_cipher(void **state)
{
	struct pgbr_spec s = spec();
	s.cipher_pass = "Sekr1t-pass";
	struct strbuf sb = STRBUF_INIT;
	pgbr_render_conf(&s, &sb);
	const char *t = sb_str(&sb);
	assert_non_null(strstr(t, "repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=Sekr1t-pass\n"));
	/* Exactly once, on its own line. */
	const char *first = strstr(t, "Sekr1t-pass");
	assert_null(strstr(first + 1, "Sekr1t-pass"));
	/* An empty passphrase means no encryption. */
	s.cipher_pass = "";
	sb_reset(&sb);
	pgbr_render_conf(&s, &sb);
	assert_null(strstr(sb_str(&sb), "cipher"));
	sb_free(&sb);
}

static const struct pgbr_s3 s3_spec = {
	.bucket = "pgha-backups", .endpoint = "minio.lan", .port = 9000, .region = "us-east-1",
	.key = "AKIAKEY123", .key_secret = "s3cr3t/Key+x", .uri_style = "path", .verify_tls = true, .ca_file = NULL,
};

static void test_conf_s3_exact(void **state)
{
	struct pgbr_spec s = spec();
	s.s3 = &s3_spec;
	s.repo_path = "/pgha";
	struct strbuf sb = STRBUF_INIT;
	pgbr_render_conf(&s, &sb);
	assert_string_equal(sb_str(&sb),
			    "# Written by pgha at every start from its [backup] section. Do not edit.\n"
			    "[global]\n"
			    "repo1-type=s3\n"
			    "repo1-s3-bucket=pgha-backups\n"
			    "repo1-s3-endpoint=minio.lan\n"
			    "repo1-storage-port=9000\n"
			    "repo1-s3-region=us-east-1\n"
			    "repo1-s3-key=AKIAKEY123\n"
			    "repo1-s3-key-secret=s3cr3t/Key+x\n"
			    "repo1-s3-uri-style=path\n"
			    "repo1-path=/pgha\n"
			    CONF_AFTER_REPO);
	sb_free(&sb);
}

static void test_conf_s3_tls(void **state)
{
	struct pgbr_s3 s3 = s3_spec;
	s3.port = 0;
	s3.uri_style = "host";
	s3.verify_tls = false;
	s3.ca_file = "/etc/pgha/s3-ca.pem";
	struct pgbr_spec s = spec();
	s.s3 = &s3;
	struct strbuf sb = STRBUF_INIT;
	pgbr_render_conf(&s, &sb);
	const char *t = sb_str(&sb);
	/* No port: pgBackRest's 443. */
	assert_null(strstr(t, "storage-port"));
	assert_non_null(strstr(t, "repo1-s3-uri-style=host\nrepo1-storage-verify-tls=n\n"
				  "repo1-storage-ca-file=/etc/pgha/s3-ca.pem\nrepo1-path=/srv/backup\n"));
	/* Each key exactly once. */
	assert_null(strstr(strstr(t, "AKIAKEY123") + 1, "AKIAKEY123"));
	assert_null(strstr(strstr(t, "s3cr3t/Key+x") + 1, "s3cr3t/Key+x"));
	sb_free(&sb);
}

static void test_value_check(void **state)
{
	struct pgha_err e;
	assert_int_equal(pgbr_value_check("pgha-backups.2", &e), 0);
	assert_int_equal(pgbr_value_check("", &e), -1);
	assert_non_null(strstr(e.msg, "empty"));
	assert_int_equal(pgbr_value_check("a b", &e), -1);
	assert_int_equal(pgbr_value_check("a\nrepo1-path=/x", &e), -1);
	assert_int_equal(pgbr_value_check("a=b", &e), -1);
	assert_non_null(strstr(e.msg, "\"a=b\""));
}

/* pgBackRest's output as it prints it (2.45), shortened. */
static void test_s3_cause(void **state)
{
	char buf[200];
	pgbr_s3_cause("ERROR: [039]: HTTP request failed with 404 (Not Found):\n"
		      "       *** Response Content ***:\n"
		      "       <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "       <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
		      "<BucketName>nosuchbucket</BucketName></Error>\n", buf, sizeof(buf));
	assert_string_equal(buf, "bucket missing (S3 NoSuchBucket)");
	pgbr_s3_cause("ProtocolError: HTTP request failed with 403 (Forbidden):\n"
		      "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature", buf, sizeof(buf));
	assert_string_equal(buf, "secret key refused, check [backup] s3_key_secret_file (S3 SignatureDoesNotMatch)");
	pgbr_s3_cause("<Error><Code>InvalidAccessKeyId</Code>", buf, sizeof(buf));
	assert_string_equal(buf, "access key unknown to the server, check [backup] s3_key_file (S3 InvalidAccessKeyId)");
	pgbr_s3_cause("<Error><Code>AccessDenied</Code><Message>Access Denied</Message>", buf, sizeof(buf));
	assert_string_equal(buf, "access denied, the key may not use this bucket (S3 AccessDenied)");
	pgbr_s3_cause("<Error><Code>SlowDown</Code>", buf, sizeof(buf));
	assert_string_equal(buf, "S3 error SlowDown");
	pgbr_s3_cause("ERROR: [049]: unable to connect to '127.0.0.1:1': [111] Connection refused\n", buf, sizeof(buf));
	assert_string_equal(buf, "endpoint unreachable: unable to connect to '127.0.0.1:1': [111] Connection refused");
	pgbr_s3_cause("ERROR: [095]: unable to load info file 'x':\n       CryptoError: unable to verify certificate "
		      "presented by '127.0.0.1:33213': [20] unable to get local issuer certificate\n", buf, sizeof(buf));
	assert_string_equal(buf, "TLS certificate refused: unable to verify certificate presented by '127.0.0.1:33213': "
			    "[20] unable to get local issuer certificate");
	pgbr_s3_cause("ERROR: [039]: HTTP request failed with 403 (Forbidden):\n       HEAD /b/pgha/archive/t/archive.info\n",
		      buf, sizeof(buf));
	assert_string_equal(buf, "access refused (HTTP 403), check [backup] s3_key_file, s3_key_secret_file and the "
			    "key's rights on the bucket");
	pgbr_s3_cause("ERROR: [055]: unable to open missing file", buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void test_redact(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	pgbr_redact("<AWSAccessKeyId>AKIA1</AWSAccessKeyId> AKIA1", "AKIA1", &sb);
	assert_string_equal(sb_str(&sb), "<AWSAccessKeyId><redacted></AWSAccessKeyId> <redacted>");
	sb_reset(&sb);
	pgbr_redact("as is", NULL, &sb);
	pgbr_redact(" too", "", &sb);
	assert_string_equal(sb_str(&sb), "as is too");
	sb_free(&sb);
}

static void test_commands(void **state)
{
	struct pgha_err e;
	char *a = pgbr_archive_command("/usr/bin/pgbackrest", "/srv/pg/data.pgha-backup", "pgha", &e);
	assert_string_equal(a, "'/usr/bin/pgbackrest' '--config=/srv/pg/data.pgha-backup/pgbackrest.conf' "
			       "--stanza=pgha archive-push %p");
	free(a);
	char *r = pgbr_restore_command(NULL, 0, "/usr/bin/pgbackrest", "/srv/pg/data.pgha-backup", "pgha", &e);
	assert_string_equal(r, "'/usr/bin/pgbackrest' '--config=/srv/pg/data.pgha-backup/pgbackrest.conf' "
			       "--stanza=pgha archive-get %f \"%p\"");
	free(r);
	r = pgbr_restore_command("/usr/bin/timeout", 10, "/usr/bin/pgbackrest", "/srv/pg/data.pgha-backup", "pgha", &e);
	assert_string_equal(r, "'/usr/bin/timeout' 10 '/usr/bin/pgbackrest' "
			       "'--config=/srv/pg/data.pgha-backup/pgbackrest.conf' --stanza=pgha archive-get %f \"%p\"");
	free(r);
	assert_null(pgbr_restore_command("timeout", 30, "/usr/bin/pgbackrest", "/srv/x", "pgha", &e));
	assert_non_null(strstr(e.msg, "timeout program"));
}

static void test_commands_quoting(void **state)
{
	struct pgha_err e;
	/* A quote ends the single-quoted word, is escaped, and starts it again; '%' is doubled for PostgreSQL. */
	char *a = pgbr_archive_command("/usr/bin/pgbackrest", "/srv/it's 100% $(x)", "c1", &e);
	assert_string_equal(a, "'/usr/bin/pgbackrest' '--config=/srv/it'\\''s 100%% $(x)/pgbackrest.conf' "
			       "--stanza=c1 archive-push %p");
	free(a);
}

static void test_commands_refused(void **state)
{
	struct pgha_err e;
	assert_null(pgbr_archive_command("/usr/bin/pgbackrest", "/srv/a\nb", "pgha", &e));
	assert_non_null(strstr(e.msg, "[backup] work_dir"));
	assert_non_null(strstr(e.msg, "control characters"));
	assert_null(pgbr_restore_command(NULL, 0, "/usr/bin/pgbackrest", "relative/dir", "pgha", &e));
	assert_non_null(strstr(e.msg, "absolute"));
	assert_null(pgbr_restore_command(NULL, 0, "pgbackrest", "/srv/x", "pgha", &e));
	assert_non_null(strstr(e.msg, "pgBackRest program"));
	assert_int_equal(pgbr_path_check("/srv/x ", &e), -1);
	assert_int_equal(pgbr_path_check("/srv/x\t1", &e), -1);
	assert_int_equal(pgbr_path_check("/srv/ok dir/x", &e), 0);
}

static void test_compress(void **state)
{
	assert_true(pgbr_compress_ok("zstd"));
	assert_true(pgbr_compress_ok("lz4"));
	assert_true(pgbr_compress_ok("gz"));
	assert_true(pgbr_compress_ok("none"));
	assert_false(pgbr_compress_ok("bz2"));
	assert_false(pgbr_compress_ok("ZSTD"));
	assert_false(pgbr_compress_ok(""));
	/* pgBackRest spells zstd "zst" (and refuses "zstd"); the others as they are. */
	assert_string_equal(pgbr_compress_name("zstd"), "zst");
	assert_string_equal(pgbr_compress_name("lz4"), "lz4");
}

static void test_write_conf(void **state)
{
	struct pgbr_spec s = spec();
	char *work = xasprintf("%s/work", tmpdir);
	s.work_dir = work;
	s.cipher_pass = "pass-phrase";
	struct pgha_err e;
	assert_int_equal(pgbr_write_conf(&s, NULL, &e), 0);
	struct stat st;
	assert_int_equal(stat(work, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	const char *subs[] = {"spool", "log", "lock"};
	for (int i = 0; i < 3; i++) {
		char *d = path_join(work, subs[i]);
		assert_int_equal(stat(d, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
		rmdir(d);
		free(d);
	}
	char *conf = pgbr_conf_path(work);
	assert_int_equal(stat(conf, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *text = NULL;
	assert_int_equal(read_file(conf, &text, NULL, &e), 0);
	assert_non_null(strstr(text, "repo1-cipher-pass=pass-phrase\n"));
	free(text);
	/* Written again: same result (atomic replace). */
	assert_int_equal(pgbr_write_conf(&s, NULL, &e), 0);
	unlink(conf);
	free(conf);
	const char *subs2[] = {"spool", "log", "lock"};
	for (int i = 0; i < 3; i++) {
		char *d = path_join(work, subs2[i]);
		rmdir(d);
		free(d);
	}
	rmdir(work);
	free(work);
}

static void test_backup_output(void **state)
{
	(void)state;
	assert_int_equal(pgbr_backup_percent(""), -1);
	assert_int_equal(pgbr_backup_percent("P00   INFO: backup start archive = 000000010000000000000005\n"), -1);
	const char *out = "P01 DETAIL: backup file /d/base/5/1255 (768KB, 3.54%) checksum 22dc\n"
			  "P02 DETAIL: backup file /d/base/4/1255 (768KB, 87.97%) checksum 22dc\n"
			  "P00   INFO: new backup label = 20261203-113629F_20261203-113637I\n"
			  "P00   INFO: incr backup size = 8.3KB, file total = 965\n";
	assert_int_equal(pgbr_backup_percent(out), 87);
	assert_int_equal(pgbr_backup_percent("(1GB, 100.00%)"), 100);
	assert_int_equal(pgbr_backup_percent("odd (x, %)"), -1);
	char label[64], size[32];
	pgbr_backup_summary(out, label, sizeof(label), size, sizeof(size));
	assert_string_equal(label, "20261203-113629F_20261203-113637I");
	assert_string_equal(size, "8.3KB");
	pgbr_backup_summary("ERROR: [082]: nothing", label, sizeof(label), size, sizeof(size));
	assert_string_equal(label, "");
	assert_string_equal(size, "");
	assert_int_equal(pgbr_parse_version("pgBackRest 2.45\n"), 245);
	assert_int_equal(pgbr_parse_version("pgBackRest 2.40dev\n"), 240);
	assert_true(pgbr_parse_version("pgBackRest 2.40\n") < PGBR_MIN_VERSION);
	assert_int_equal(pgbr_parse_version("bash: pgbackrest: command not found"), -1);
}

/* pgBackRest 2.45's own output for each local fault, as it printed it here, and the cause pgha names. */
static const struct {
	const char *out, *cause;
} local_causes[] = {
	{"ERROR: [064]: unable to write '/m/repo/backup/t/20261203-144855F/backup.manifest.copy.pgbackrest.tmp': [28] "
	 "No space left on device\n",
	 "no space left on device in /m/repo/backup/t; free space there (or lower [backup] retention_full)"},
	{"ERROR: [104]: archive-push command encountered error(s):\n       repo1: [FileWriteError] unable to write "
	 "'/m/repo/archive/t/15-1/0000000100000000/0000000100000000000006-09.zst.pgbackrest.tmp': [28] No space left "
	 "on device\n",
	 "no space left on device in /m/repo/archive/t; free space there (or lower [backup] retention_full)"},
	/* The spool on the member's own disk is named as it is. */
	{"unable to write '/d/spool/archive/x': [28] No space left on device",
	 "no space left on device in /d/spool/archive/x; free space there (or lower [backup] retention_full)"},
	{"ERROR: [029]: unable to load info file '/r/archive/t/archive.info' or '/r/archive/t/archive.info.copy':\n"
	 "       FormatError: key/value found outside of section at line 1: \x8e\xb3g\xf0O\n       FormatError: "
	 "key/value found outside of section at line 1: \x8e\n       HINT: archive.info cannot be opened but is "
	 "required to push/get WAL segments.\n",
	 "cannot decrypt /r/archive/t/archive.info: [backup] cipher_pass_file does not hold the passphrase the "
	 "repository was created with (or the file is damaged)"},
	{"[FormatError] unable to load info file '/r/backup/t/backup.info' or '/r/backup/t/backup.info.copy':\n"
	 "FormatError: key/value found outside of section at line 1: Salted__\xa7\x01\n",
	 "/r/backup/t/backup.info is encrypted; set [backup] cipher_pass_file to the passphrase the repository was "
	 "created with"},
	{"[CryptoError] unable to load info file '/r/backup/t/backup.info' or '/r/backup/t/backup.info.copy':\n"
	 "CryptoError: cipher header missing\nHINT: is or was the repo encrypted?\n",
	 "/r/backup/t/backup.info is not encrypted (or is empty) but [backup] cipher_pass_file is set: the repository "
	 "was created without a passphrase, or the file is damaged"},
	{"ERROR: [029]: unable to load info file '/r/backup/t/backup.info' or '/r/backup/t/backup.info.copy':\n"
	 "       FormatError: missing '=' in key/value at line 6: 20261203-\xef\xbf{\"x\":1}\n",
	 "/r/backup/t/backup.info and its .copy are damaged (FormatError: missing '=' in key/value at line 6); put "
	 "back a sound copy or set a new [backup] repo_path"},
	{"ERROR: [029]: unable to load info file '/r/backup/t/backup.info' or '/r/backup/t/backup.info.copy':\n"
	 "       ChecksumError: invalid checksum in '/r/backup/t/backup.info', expected 'a' but found 'b'\n",
	 "/r/backup/t/backup.info and its .copy are damaged (ChecksumError: invalid checksum in "
	 "'/r/backup/t/backup.info'); put back a sound copy or set a new [backup] repo_path"},
	{"P02   INFO: invalid checksum '20261203-144558F/pg_data/base/5/2654.zst'\n",
	 "20261203-144558F/pg_data/base/5/2654.zst is damaged (invalid checksum); `pgbackrest verify` lists every "
	 "damaged file; take a new full backup"},
	/* Nothing known: the reason is pgBackRest's line alone. */
	{"INFO: x\nERROR: [082]: WAL segment 5 was not archived\n       HINT: check\n", ""},
};

static void test_local_cause(void **state)
{
	(void)state;
	char buf[400], reason[200];
	for (size_t i = 0; i < sizeof(local_causes) / sizeof(local_causes[0]); i++) {
		pgbr_local_cause(local_causes[i].out, buf, sizeof(buf));
		assert_string_equal(buf, local_causes[i].cause);
		/* The reason the member record and ctl backup show: the cause alone when there is one. */
		pgbr_reason(local_causes[i].out, reason, sizeof(reason));
		if (buf[0] != '\0')
			assert_true(strncmp(reason, buf, sizeof(reason) - 1) == 0);
	}
	pgbr_reason(local_causes[sizeof(local_causes) / sizeof(local_causes[0]) - 1].out, reason, sizeof(reason));
	assert_string_equal(reason, "ERROR: [082]: WAL segment 5 was not archived");
	pgbr_reason("line one\nlast words  \n", reason, sizeof(reason));
	assert_string_equal(reason, "last words");

	/* pgBackRest's words after its retries: no errno, so the file system is asked (here: not full). */
	char *dir = xasprintf("/tmp/pgha-test-pgbr-%d", (int)getpid());
	char *stanza = xasprintf("%s/backup/t", dir);
	struct pgha_err e;
	assert_int_equal(mkdir_p(stanza, 0700, &e), 0);
	char *retried = xasprintf("ERROR: [064]: raised from local-1 protocol: unable to write '%s/2026F/pg_data/base/4/"
				  "2609.zst'\n       [FileWriteError] on retry after 0ms\n       [FileWriteError] on retry "
				  "after 15000ms\n", stanza);
	pgbr_local_cause(retried, buf, sizeof(buf));
	assert_string_equal(buf, "");
	rmdir(stanza);
	*strrchr(stanza, '/') = '\0';
	rmdir(stanza);
	rmdir(dir);
	free(retried);
	free(stanza);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_exact),
		cmocka_unit_test(test_conf_archive_stanza),
		cmocka_unit_test(test_conf_cipher),
		cmocka_unit_test(test_conf_s3_exact),
		cmocka_unit_test(test_conf_s3_tls),
		cmocka_unit_test(test_value_check),
		cmocka_unit_test(test_s3_cause),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_commands_quoting),
		cmocka_unit_test(test_commands_refused),
		cmocka_unit_test(test_compress),
		cmocka_unit_test(test_write_conf),
		cmocka_unit_test(test_backup_output),
		cmocka_unit_test(test_local_cause),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
