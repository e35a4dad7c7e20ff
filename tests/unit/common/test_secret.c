/*
 * test_secret.c — files holding secrets (read_secret_file, read_secret_text in
 * common/util.c): modes refused or warned, NUL bytes, empty and missing files.
 *
 * A password file of mode 0666 was used without a word (anyone on the machine
 * could put in a password of their choosing), and a NUL byte cut a password
 * short silently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"

static char dir[] = "/tmp/pgha-test-secret-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write len bytes to dir/name with exactly this mode (whatever the umask). */
static const char *put(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void expect_refused(const char *path, const char *needle)
{
	char *pw = (char *)"untouched";
	struct pgha_err e;
	assert_int_equal(read_secret_file(path, &pw, &e), -1);
	assert_string_equal(pw, "untouched");
	if (strstr(e.msg, needle) == NULL || strstr(e.msg, path) == NULL)
		fail_msg("error \"%s\" should name the file and say \"%s\"", e.msg, needle);
}

static void expect_password(const char *path, const char *want)
{
	char *pw = NULL;
	struct pgha_err e;
	if (read_secret_file(path, &pw, &e) != 0)
		fail_msg("%s refused: %s", path, e.msg);
	assert_string_equal(pw, want);
	secret_free(pw);
}

static void test_private_modes_are_read(void **state)
{
	(void)state;
	expect_password(put("p600", "s3cret\n", 7, 0600), "s3cret");
	expect_password(put("p400", "s3cret", 6, 0400), "s3cret");
	/* Group-readable (a group of the service) and world-readable (Kubernetes mounts): a warning only. */
	expect_password(put("p640", "s3cret\r\nignored\n", 16, 0640), "s3cret");
	expect_password(put("p644", "s3cret\n", 7, 0644), "s3cret");
}

static void test_group_or_world_writable_is_refused(void **state)
{
	(void)state;
	static const mode_t modes[] = {0666, 0660, 0620, 0602, 0622, 0777};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char name[16], mode[8];
		snprintf(name, sizeof(name), "w%o", (unsigned)modes[i]);
		snprintf(mode, sizeof(mode), "%04o", (unsigned)modes[i]);
		const char *path = put(name, "s3cret\n", 7, modes[i]);
		expect_refused(path, mode);
		expect_refused(path, "HINT: chmod 600");
		expect_refused(path, "writable by");
	}
}

static void test_nul_byte_is_refused(void **state)
{
	(void)state;
	/* "abc\0def": used to be taken as the password "abc". */
	expect_refused(put("nul1", "abc\0def\n", 8, 0600), "NUL byte (at byte 3)");
	expect_refused(put("nul2", "abcdef\n\0\n", 9, 0600), "NUL byte");
	expect_refused(put("nul3", "\0abc\n", 5, 0600), "NUL byte");
}

static void test_empty_and_missing(void **state)
{
	(void)state;
	expect_refused(put("empty", "", 0, 0600), "empty");
	expect_refused(put("emptyline", "\nsecond\n", 8, 0600), "empty");
	char missing[256];
	snprintf(missing, sizeof(missing), "%s/no-such-file", dir);
	expect_refused(missing, "No such file");
	expect_refused(dir, "not a regular file");
	char *pw = NULL;
	struct pgha_err e;
	assert_int_equal(read_secret_file("", &pw, &e), -1);
	assert_null(pw);
}

static void test_fifo_is_refused_without_blocking(void **state)
{
	(void)state;
	char path[256];
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10);   /* a blocking open would hang the test: fail it instead */
	expect_refused(path, "not a regular file");
	alarm(0);
}

/* The users file is read whole, with the same checks. */
static void test_whole_text(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	struct pgha_err e;
	const char *path = put("users", "\"a\" \"b\"\n\"c\" \"d\"\n", 16, 0600);
	assert_int_equal(read_secret_text(path, &text, &len, &e), 0);
	assert_int_equal(len, 16);
	assert_string_equal(text, "\"a\" \"b\"\n\"c\" \"d\"\n");
	secret_wipe_free(text, len);
	text = NULL;
	path = put("users666", "\"a\" \"b\"\n", 8, 0666);
	assert_int_equal(read_secret_text(path, &text, &len, &e), -1);
	assert_null(text);
	assert_non_null(strstr(e.msg, "0666"));
	path = put("usersnul", "\"a\" \"b\0\"\n", 9, 0600);
	assert_int_equal(read_secret_text(path, &text, &len, &e), -1);
	assert_null(text);
	assert_non_null(strstr(e.msg, "NUL byte (at byte 6)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_private_modes_are_read),
		cmocka_unit_test(test_group_or_world_writable_is_refused),
		cmocka_unit_test(test_nul_byte_is_refused),
		cmocka_unit_test(test_empty_and_missing),
		cmocka_unit_test(test_fifo_is_refused_without_blocking),
		cmocka_unit_test(test_whole_text),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
