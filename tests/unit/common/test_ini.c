/*
 * test_ini.c — the INI reader (common/ini.c): ini_parse_text and
 * ini_parse_path, what each callback receives, and the error messages.
 *
 * Files are written into a private temporary directory (unit_files.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ini.h"

#include "../unit_files.h"

/* ---- ini_parse_text / ini_parse_path (common/ini.c) ------------------------ */

struct ini_rec {
	int line;
	char *section, *name, *value;
};

struct ini_log {
	struct ini_rec r[32];
	size_t n;
	size_t fail_at;        /* refuse the fail_at-th call (1-based); 0: never */
	const char *fail_msg;
};

static int ini_record(void *arg, int line, const char *section, const char *name,
		      const char *value, struct pgha_err *e)
{
	struct ini_log *log = arg;
	if (log->n == sizeof(log->r) / sizeof(log->r[0]))
		fail_msg("too many callbacks");
	struct ini_rec *r = &log->r[log->n++];
	r->line = line;
	r->section = strdup(section);
	r->name = strdup(name);
	r->value = strdup(value);
	if (log->fail_at != 0 && log->n == log->fail_at)
		return err_set(e, "%s", log->fail_msg);
	return 0;
}

static void ini_log_free(struct ini_log *log)
{
	for (size_t i = 0; i < log->n; i++) {
		free(log->r[i].section);
		free(log->r[i].name);
		free(log->r[i].value);
	}
	memset(log, 0, sizeof(*log));
}

#define assert_rec(log, i, ln, sec, nm, val)                                 \
	do {                                                                  \
		assert_true((i) < (log)->n);                                  \
		assert_int_equal((log)->r[i].line, (ln));                     \
		assert_string_equal((log)->r[i].section, (sec));              \
		assert_string_equal((log)->r[i].name, (nm));                  \
		assert_string_equal((log)->r[i].value, (val));                \
	} while (0)

static void test_ini_callback(void **state)
{
	struct ini_log log = {0};
	struct pgha_err e;
	int rc = ini_parse_text("\xEF\xBB\xBF# comment\r\n"          /* 1 */
				"\r\n"                                  /* 2 */
				"[alpha]\r\n"                           /* 3 */
				"  a = 1  \r\n"                         /* 4 */
				"\t; comment\n"                         /* 5 */
				"b=two words ; not a comment # nor this\n" /* 6 */
				"[ beta gamma ]\n"                      /* 7 */
				"c = \"  quoted  \"\n"                  /* 8 */
				"d = x = y\n"                           /* 9 */
				"my key = \"\"\n"                       /* 10 */
				"e =\n"                                 /* 11 */
				"f = \"\n"                              /* 12 */
				"\n"                                    /* 13 */
				"[alpha]\n"                             /* 14 */
				"a = again",                            /* 15: no final newline */
				"t.ini", ini_record, &log, &e);
	if (rc != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(log.n, 8);
	assert_rec(&log, 0, 4, "alpha", "a", "1");
	assert_rec(&log, 1, 6, "alpha", "b", "two words ; not a comment # nor this");
	assert_rec(&log, 2, 8, "beta gamma", "c", "  quoted  ");
	assert_rec(&log, 3, 9, "beta gamma", "d", "x = y");
	assert_rec(&log, 4, 10, "beta gamma", "my key", "");
	assert_rec(&log, 5, 11, "beta gamma", "e", "");
	assert_rec(&log, 6, 12, "beta gamma", "f", "\"");
	assert_rec(&log, 7, 15, "alpha", "a", "again");
	ini_log_free(&log);

	/* nothing to read is fine */
	static const char *const empty[] = {"", "\n", "\n\n\r\n", "# only\n; comments", "[s]\n[t]\n",
					    "\xEF\xBB\xBF"};
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		if (ini_parse_text(empty[i], "t.ini", ini_record, &log, &e) != 0)
			fail_msg("<%s>: %s", empty[i], e.msg);
		assert_int_equal(log.n, 0);
	}

	/* a 5000-byte value, and the line after it */
	char *text = malloc(6000);
	assert_non_null(text);
	memcpy(text, "[s]\nk = ", 8);
	memset(text + 8, 'v', 5000);
	strcpy(text + 8 + 5000, "\nnext = 1\n");
	if (ini_parse_text(text, "t.ini", ini_record, &log, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(log.n, 2);
	assert_int_equal(log.r[0].line, 2);
	assert_int_equal(strlen(log.r[0].value), 5000);
	assert_int_equal(strspn(log.r[0].value, "v"), 5000);
	assert_rec(&log, 1, 3, "s", "next", "1");
	ini_log_free(&log);
	free(text);
}

/* A callback that returns -1 stops the parse; its message gets "<where>:<line>: ". */
static void test_ini_callback_stops(void **state)
{
	struct ini_log log = {.fail_at = 2, .fail_msg = "[s] b = \"2\": refused"};
	struct pgha_err e;
	assert_int_equal(ini_parse_text("[s]\na = 1\n\n# c\nb = 2\nc = 3\nbroken\n", "/etc/x.ini",
					ini_record, &log, &e), -1);
	assert_string_equal(e.msg, "/etc/x.ini:5: [s] b = \"2\": refused");
	assert_int_equal(log.n, 2); /* c = 3 was never seen */
	assert_rec(&log, 0, 2, "s", "a", "1");
	assert_rec(&log, 1, 5, "s", "b", "2");
	ini_log_free(&log);

	/* on the first entry, after a BOM and CRLF lines */
	log = (struct ini_log){.fail_at = 1, .fail_msg = "no"};
	assert_int_equal(ini_parse_text("\xEF\xBB\xBF\r\n[s]\r\nk = v\r\n", "w", ini_record, &log, &e),
			 -1);
	assert_string_equal(e.msg, "w:3: no");
	assert_int_equal(log.n, 1);
	assert_rec(&log, 0, 3, "s", "k", "v");
	ini_log_free(&log);
}

/* Reader errors: "<where>:<line>: <what>", the first problem in file order. */
static void test_ini_errors(void **state)
{
	static const struct {
		const char *text, *want;
		size_t calls;   /* callbacks before the error */
	} cases[] = {
		{"[a]\nx\n", "w:2: syntax error (expected \"[section]\" or \"name = value\")", 0},
		{"[a\n", "w:1: syntax error: a section header looks like [name]", 0},
		{"[a] b\n", "w:1: syntax error: a section header looks like [name]", 0},
		{"[a]]\n", "w:1: syntax error: a section header looks like [name]", 0},
		{"a]\n", "w:1: syntax error (expected \"[section]\" or \"name = value\")", 0},
		{"[a]\n = 1\n", "w:2: syntax error: a value without a name", 0},
		{"[a]\n=\n", "w:2: syntax error: a value without a name", 0},
		{"x = 1\n[a]\n", "w:1: \"x\" is outside any [section]", 0},
		{"# c\n\n  y = \"q\"\n[a]\n", "w:3: \"y\" is outside any [section]", 0},
		{"[a]\nk = v\nbad\nk2 = v2\n[b\n",
		 "w:3: syntax error (expected \"[section]\" or \"name = value\")", 1},
		{"[a]\nk = v\n[b\nbad\n", "w:3: syntax error: a section header looks like [name]", 1},
		{"[a]\r\nk = v\r\nbad\r\n", "w:3: syntax error (expected \"[section]\" or \"name = value\")", 1},
		{"[a]\r\n\r\n[b\r\n", "w:3: syntax error: a section header looks like [name]", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ini_log log = {0};
		struct pgha_err e;
		e.msg[0] = '\0';
		int rc = ini_parse_text(cases[i].text, "w", ini_record, &log, &e);
		size_t n = log.n;
		ini_log_free(&log);
		if (rc != -1 || strcmp(e.msg, cases[i].want) != 0 || n != cases[i].calls)
			fail_msg("case %zu: rc %d, \"%s\" after %zu calls; want -1, \"%s\" after %zu", i,
				 rc, e.msg, n, cases[i].want, cases[i].calls);
	}

	/* the BOM is skipped on line 1 only: on line 2 it is part of the name */
	struct ini_log log = {0};
	struct pgha_err e;
	if (ini_parse_text("[a]\n\xEF\xBB\xBFk = v\n", "w", ini_record, &log, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(log.n, 1);
	assert_rec(&log, 0, 2, "a", "\xEF\xBB\xBFk", "v");
	ini_log_free(&log);
}

static void test_ini_parse_path(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 256];
	struct ini_log log = {0};
	struct pgha_err e;
	write_conf(path, sizeof(path), "[s]\nk = v\n\nbad line\n");
	assert_int_equal(ini_parse_path(path, ini_record, &log, &e), -1);
	unlink(path);
	snprintf(want, sizeof(want), "%s:4: syntax error (expected \"[section]\" or \"name = value\")",
		 path);
	assert_string_equal(e.msg, want);
	assert_int_equal(log.n, 1);
	assert_rec(&log, 0, 2, "s", "k", "v");
	ini_log_free(&log);

	static const char nul[] = "[s]\nk = v\0\n";
	write_conf_n(path, sizeof(path), nul, sizeof(nul) - 1);
	assert_int_equal(ini_parse_path(path, ini_record, &log, &e), -1);
	unlink(path);
	snprintf(want, sizeof(want), "%s: not a text file (it holds NUL bytes)", path);
	assert_string_equal(e.msg, want);
	assert_int_equal(log.n, 0);

	snprintf(path, sizeof(path), "%s/no-such.ini", tmpdir);
	assert_int_equal(ini_parse_path(path, ini_record, &log, &e), -1);
	snprintf(want, sizeof(want), "cannot open \"%s\": No such file or directory", path);
	assert_string_equal(e.msg, want);
	assert_int_equal(log.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ini_callback),
		cmocka_unit_test(test_ini_callback_stops),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_ini_parse_path),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
