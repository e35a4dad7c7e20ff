/*
 * test_config.c — the declarative option tables (common/config.c): value
 * parsers, config_set on every option type, and config_parse_file with its
 * error messages, on a test table that holds every option type.
 *
 * Config files are written into a private temporary directory (unit_files.h).
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

#include "common/config.h"
#include "common/log.h"

#include "../unit_files.h"

/* ---- a test table exercising every option type --------------------------- */

struct tcfg {
	char *str;
	char *required;
	int num;              /* OPT_INT 1..100 */
	int big;              /* OPT_INT, no range */
	int pin;              /* OPT_INT, secret */
	bool flag;
	int dur_ms;           /* OPT_DURATION 100ms..60s */
	int anydur_ms;        /* OPT_DURATION, no range */
	enum log_level level;
	/* [parameters] */
	char *keys[8];
	char *vals[8];
	size_t nkv;
};

#define T(sec, nm, type, field, def, min, max, flags, help) \
	{sec, nm, type, offsetof(struct tcfg, field), def, min, max, flags, help}

static const struct config_option topts[] = {
	T("main", "str", OPT_STRING, str, "hello", 1, 0, 0, "a string"),
	T("main", "required", OPT_STRING, required, NULL, 1, 0, OPT_REQUIRED, "must be set"),
	T("main", "num", OPT_INT, num, "5", 1, 100, 0, "an integer from 1 to 100"),
	T("main", "big", OPT_INT, big, "0", 1, 0, 0, "an unbounded integer"),
	T("main", "pin", OPT_INT, pin, "0", 0, 9999, OPT_SECRET, "a secret number"),
	T("main", "flag", OPT_BOOL, flag, "off", 1, 0, 0, "a boolean"),
	T("timing", "dur", OPT_DURATION, dur_ms, "1s", 100, 60000, OPT_RELOAD, "a duration"),
	T("timing", "anydur", OPT_DURATION, anydur_ms, "0", 1, 0, 0, "an unbounded duration"),
	T("timing", "level", OPT_LOGLEVEL, level, "info", 1, 0, 0, "a log level"),
};

static int tparam_set(void *target, const char *key, const char *value, struct pgha_err *e)
{
	struct tcfg *c = target;
	if (strcmp(key, "forbidden") == 0)
		return err_set(e, "[parameters] %s is refused", key);
	if (c->nkv == 8)
		return err_set(e, "too many");
	c->keys[c->nkv] = strdup(key);
	c->vals[c->nkv] = strdup(value);
	c->nkv++;
	return 0;
}

static const struct config_free_section tfree[] = {{"parameters", tparam_set}};

static const struct config_table ttable = {topts, sizeof(topts) / sizeof(topts[0]), tfree, 1};

static void tcfg_init(struct tcfg *c)
{
	struct pgha_err e;
	memset(c, 0, sizeof(*c));
	if (config_apply_defaults(&ttable, c, &e) != 0)
		fail_msg("defaults: %s", e.msg);
}

static void tcfg_free(struct tcfg *c)
{
	config_free_values(&ttable, c);
	for (size_t i = 0; i < c->nkv; i++) {
		free(c->keys[i]);
		free(c->vals[i]);
	}
	memset(c, 0, sizeof(*c));
}

/* ---- value parsers ------------------------------------------------------ */

static void test_parse_bool(void **state)
{
	static const struct {
		const char *s;
		bool want;
	} good[] = {
		{"1", true}, {"on", true}, {"ON", true}, {"true", true}, {"True", true},
		{"yes", true}, {"YES", true}, {"0", false}, {"off", false}, {"Off", false},
		{"false", false}, {"FALSE", false}, {"no", false}, {"No", false},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		bool v = !good[i].want;
		if (config_parse_bool(good[i].s, &v) != 0)
			fail_msg("\"%s\" rejected", good[i].s);
		if (v != good[i].want)
			fail_msg("\"%s\" parsed as %d", good[i].s, v);
	}
	static const char *const bad[] = {"", "2", "-1", "y", "n", "t", "onn", "of", "enable",
					  " on", "on ", "yes!", "truee", "10"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool v = true;
		if (config_parse_bool(bad[i], &v) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_true(v); /* untouched */
		v = false;
		assert_int_equal(config_parse_bool(bad[i], &v), -1);
		assert_false(v);
	}
}

static void test_parse_long(void **state)
{
	static const struct {
		const char *s;
		long want;
	} good[] = {
		{"10", 10}, {"0", 0}, {"-1", -1}, {"+7", 7}, {"007", 7},
		{"9223372036854775807", LONG_MAX}, {"-9223372036854775808", LONG_MIN},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		long v = 12345;
		if (config_parse_long(good[i].s, &v) != 0)
			fail_msg("\"%s\" rejected", good[i].s);
		if (v != good[i].want)
			fail_msg("\"%s\" parsed as %ld", good[i].s, v);
	}
	static const char *const bad[] = {
		"", "10x", "10s", "1.5", "x", "-", "+", "0x10", "10 ", "1e3",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long v = 777;
		if (config_parse_long(bad[i], &v) == 0)
			fail_msg("\"%s\" accepted as %ld", bad[i], v);
		assert_int_equal(v, 777);
	}
}

static void test_parse_duration_good(void **state)
{
	static const struct {
		const char *s;
		long want_ms;
	} good[] = {
		{"10", 10000},      /* bare number: seconds */
		{"10s", 10000},
		{"500ms", 500},
		{"2m", 120000},
		{"2min", 120000},
		{"30min", 1800000},
		{"1h", 3600000},
		{"7d", 604800000},  /* days: backup schedules */
		{"1.5s", 1500},
		{"1.5", 1500},
		{"0.25m", 15000},
		{"0", 0},
		{"0ms", 0},
		{"0.4ms", 0},       /* rounded to the nearest millisecond */
		{"0.5ms", 1},
		{"2.0004s", 2000},
		{"168h", 168L * 3600000},
		{"007", 7000},      /* leading zeros are digits */
		{".5", 500},        /* digits and '.' only */
		{"5.", 5000},
		{"10.ms", 10},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		long v = -12345;
		if (config_parse_duration_ms(good[i].s, &v) != 0)
			fail_msg("\"%s\" rejected", good[i].s);
		if (v != good[i].want_ms)
			fail_msg("\"%s\": got %ld ms, want %ld", good[i].s, v, good[i].want_ms);
	}
}

static void test_parse_duration_bad(void **state)
{
	static const char *const bad[] = {
		"", "-1", "-1s", "-0.5ms", "10x", "10 s", "10sec", "10S", "10MS", "s", "ms",
		"10w", "1dd", "1s1", "h", "1hh", "inf", "infinity", "-inf",
		"1e400",                    /* an exponent (and ERANGE) */
		"99999999999999999999h",    /* overflows a long */
		"9223372036854775807",      /* seconds: overflows in ms */
		"10000000000000000000ms",
		/* the numeric part may hold only digits and '.' */
		"1e3", "1e3ms", "1E3", "1.5e2s", "1e-3h", "0x10", "0X1A", "0x10s", "0x1p4",
		"+5", "+5s", "+0", "-0", "-0ms", " 10", "\t10", "\n10", "INF", "Infinity", "inf s",
		".", "..", "1..2", "1.2.3",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long v = 777;
		if (config_parse_duration_ms(bad[i], &v) == 0)
			fail_msg("\"%s\" accepted as %ld ms", bad[i], v);
		assert_int_equal(v, 777); /* untouched on failure */
	}
}

/*
 * "nan" is not a duration: strtod() accepts it, and (long)(NaN + 0.5) would be
 * undefined behaviour. Neither are hex numbers, exponents or infinities,
 * which strtod() also accepts.
 */
static void test_parse_duration_nan(void **state)
{
	static const char *const nans[] = {"nan", "NaN", "-nan", "nan(0x1)", "nans", "nanms",
					   "NAN", "+nan"};
	for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
		long v = 777;
		if (config_parse_duration_ms(nans[i], &v) == 0)
			fail_msg("\"%s\" accepted as a duration of %ld ms", nans[i], v);
		assert_int_equal(v, 777);
	}
	/* Through config_set the message must say "not a duration". */
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "nan", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] anydur = \"nan\": not a duration (examples: 10, 10s, 500ms, 2m)");
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "1e3", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] anydur = \"1e3\": not a duration (examples: 10, 10s, 500ms, 2m)");
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "0x10", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] anydur = \"0x10\": not a duration (examples: 10, 10s, 500ms, 2m)");
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "inf", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] anydur = \"inf\": not a duration (examples: 10, 10s, 500ms, 2m)");
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "+5", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] anydur = \"+5\": not a duration (examples: 10, 10s, 500ms, 2m)");
	assert_int_equal(c.anydur_ms, 0);
	/* and what a duration is, through the same path */
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "1.5s", &e), 0);
	assert_int_equal(c.anydur_ms, 1500);
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "2min", &e), 0);
	assert_int_equal(c.anydur_ms, 120000);
	tcfg_free(&c);
}

/* ---- config_set ---------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct tcfg c;
	tcfg_init(&c);
	assert_string_equal(c.str, "hello");
	assert_null(c.required);
	assert_int_equal(c.num, 5);
	assert_int_equal(c.big, 0);
	assert_false(c.flag);
	assert_int_equal(c.dur_ms, 1000);
	assert_int_equal(c.anydur_ms, 0);
	assert_int_equal(c.level, LOG_INFO);
	tcfg_free(&c);
	assert_null(c.str);

	/* An invalid built-in default is reported with its option. */
	struct bad {
		int n;
	} b;
	static const struct config_option bad_opts[] = {
		{"x", "n", OPT_INT, offsetof(struct bad, n), "ten", 1, 0, 0, "n"},
	};
	static const struct config_table bad_table = {bad_opts, 1, NULL, 0};
	struct pgha_err e;
	assert_int_equal(config_apply_defaults(&bad_table, &b, &e), -1);
	assert_string_equal(e.msg, "built-in default of [x] n = \"ten\": not an integer");
}

static void test_set_string(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	assert_int_equal(config_set(&ttable, &c, "main", "str", "new value", &e), 0);
	assert_string_equal(c.str, "new value");
	assert_int_equal(config_set(&ttable, &c, "main", "str", "", &e), 0); /* old one freed */
	assert_string_equal(c.str, "");
	assert_int_equal(config_set(&ttable, &c, "main", "required", "x", &e), 0);
	assert_string_equal(c.required, "x");
	tcfg_free(&c);
	assert_null(c.str);
	assert_null(c.required);
}

static void test_set_int(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	assert_int_equal(config_set(&ttable, &c, "main", "num", "1", &e), 0);
	assert_int_equal(c.num, 1);
	assert_int_equal(config_set(&ttable, &c, "main", "num", "100", &e), 0);
	assert_int_equal(c.num, 100);

	assert_int_equal(config_set(&ttable, &c, "main", "num", "0", &e), -1);
	assert_string_equal(e.msg, "[main] num = \"0\": out of range: must be from 1 to 100");
	assert_int_equal(config_set(&ttable, &c, "main", "num", "101", &e), -1);
	assert_string_equal(e.msg, "[main] num = \"101\": out of range: must be from 1 to 100");
	assert_int_equal(config_set(&ttable, &c, "main", "num", "-1", &e), -1);
	assert_string_equal(e.msg, "[main] num = \"-1\": out of range: must be from 1 to 100");
	assert_int_equal(config_set(&ttable, &c, "main", "num", "10x", &e), -1);
	assert_string_equal(e.msg, "[main] num = \"10x\": not an integer");
	assert_int_equal(config_set(&ttable, &c, "main", "num", "", &e), -1);
	assert_string_equal(e.msg, "[main] num = \"\": not an integer");
	assert_int_equal(c.num, 100); /* failures leave the value alone */

	/* No range: still limited to an int. */
	assert_int_equal(config_set(&ttable, &c, "main", "big", "2147483647", &e), 0);
	assert_int_equal(c.big, INT_MAX);
	assert_int_equal(config_set(&ttable, &c, "main", "big", "-2147483648", &e), 0);
	assert_int_equal(c.big, INT_MIN);
	assert_int_equal(config_set(&ttable, &c, "main", "big", "2147483648", &e), -1);
	assert_string_equal(e.msg, "[main] big = \"2147483648\": out of range");
	assert_int_equal(config_set(&ttable, &c, "main", "big", "-2147483649", &e), -1);
	assert_string_equal(e.msg, "[main] big = \"-2147483649\": out of range");
	assert_int_equal(config_set(&ttable, &c, "main", "big", "99999999999999999999", &e), -1);
	assert_string_equal(e.msg, "[main] big = \"99999999999999999999\": not an integer");
	assert_int_equal(c.big, INT_MIN);
	tcfg_free(&c);
}

static void test_set_secret(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	assert_int_equal(config_set(&ttable, &c, "main", "pin", "1234", &e), 0);
	assert_int_equal(c.pin, 1234);
	/* The value of a secret option never appears in a message. */
	assert_int_equal(config_set(&ttable, &c, "main", "pin", "s3cr3t", &e), -1);
	assert_string_equal(e.msg, "[main] pin: not an integer");
	assert_int_equal(config_set(&ttable, &c, "main", "pin", "123456", &e), -1);
	assert_string_equal(e.msg, "[main] pin: out of range: must be from 0 to 9999");
	assert_not_contains(e.msg, "123456");
	assert_int_equal(c.pin, 1234);
	tcfg_free(&c);
}

static void test_set_bool(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	assert_int_equal(config_set(&ttable, &c, "main", "flag", "yes", &e), 0);
	assert_true(c.flag);
	assert_int_equal(config_set(&ttable, &c, "main", "flag", "OFF", &e), 0);
	assert_false(c.flag);
	assert_int_equal(config_set(&ttable, &c, "main", "flag", "1", &e), 0);
	assert_true(c.flag);
	assert_int_equal(config_set(&ttable, &c, "main", "flag", "maybe", &e), -1);
	assert_string_equal(e.msg, "[main] flag = \"maybe\": not a boolean "
				   "(use on/off, true/false, yes/no or 1/0)");
	assert_true(c.flag);
	tcfg_free(&c);
}

static void test_set_duration(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	static const struct {
		const char *s;
		int want;
	} good[] = {
		{"100ms", 100}, {"60", 60000}, {"1m", 60000}, {"1.5s", 1500}, {"250ms", 250},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (config_set(&ttable, &c, "timing", "dur", good[i].s, &e) != 0)
			fail_msg("%s: %s", good[i].s, e.msg);
		assert_int_equal(c.dur_ms, good[i].want);
	}
	assert_int_equal(config_set(&ttable, &c, "timing", "dur", "99ms", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] dur = \"99ms\": out of range: must be from 100ms to 60000ms");
	assert_int_equal(config_set(&ttable, &c, "timing", "dur", "61s", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] dur = \"61s\": out of range: must be from 100ms to 60000ms");
	assert_int_equal(config_set(&ttable, &c, "timing", "dur", "1h", &e), -1);
	assert_contains(e.msg, "out of range");
	assert_int_equal(config_set(&ttable, &c, "timing", "dur", "ten", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] dur = \"ten\": not a duration (examples: 10, 10s, 500ms, 2m)");
	assert_int_equal(config_set(&ttable, &c, "timing", "dur", "-1", &e), -1);
	assert_string_equal(e.msg,
			    "[timing] dur = \"-1\": not a duration (examples: 10, 10s, 500ms, 2m)");
	assert_int_equal(c.dur_ms, 250);

	/* No range: limited to what an int of milliseconds holds (about 596 h). */
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "596h", &e), 0);
	assert_int_equal(c.anydur_ms, 596 * 3600000);
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "2147483647ms", &e), 0);
	assert_int_equal(c.anydur_ms, INT_MAX);
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "2147483648ms", &e), -1);
	assert_string_equal(e.msg, "[timing] anydur = \"2147483648ms\": out of range");
	assert_int_equal(config_set(&ttable, &c, "timing", "anydur", "597h", &e), -1);
	assert_string_equal(e.msg, "[timing] anydur = \"597h\": out of range");
	assert_int_equal(c.anydur_ms, INT_MAX);
	tcfg_free(&c);
}

static void test_set_loglevel(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	static const struct {
		const char *s;
		enum log_level want;
	} good[] = {
		{"debug", LOG_DEBUG}, {"INFO", LOG_INFO}, {"warn", LOG_WARN},
		{"warning", LOG_WARN}, {"Error", LOG_ERROR}, {"debug", LOG_DEBUG},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (config_set(&ttable, &c, "timing", "level", good[i].s, &e) != 0)
			fail_msg("%s: %s", good[i].s, e.msg);
		assert_int_equal(c.level, good[i].want);
	}
	assert_int_equal(config_set(&ttable, &c, "timing", "level", "verbose", &e), -1);
	assert_string_equal(e.msg, "[timing] level = \"verbose\": not a log level "
				   "(debug, info, warn, error)");
	assert_int_equal(config_set(&ttable, &c, "timing", "level", "", &e), -1);
	assert_int_equal(c.level, LOG_DEBUG);
	tcfg_free(&c);
}

static void test_set_unknown(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	assert_int_equal(config_set(&ttable, &c, "nope", "str", "x", &e), -1);
	assert_string_equal(e.msg, "unknown section [nope]");
	assert_int_equal(config_set(&ttable, &c, "main", "nope", "x", &e), -1);
	assert_string_equal(e.msg, "[main] unknown option \"nope\"");
	/* An option of another section is unknown here. */
	assert_int_equal(config_set(&ttable, &c, "timing", "str", "x", &e), -1);
	assert_string_equal(e.msg, "[timing] unknown option \"str\"");
	/* Names are case-sensitive. */
	assert_int_equal(config_set(&ttable, &c, "MAIN", "str", "x", &e), -1);
	assert_string_equal(e.msg, "unknown section [MAIN]");
	assert_string_equal(c.str, "hello");

	assert_ptr_equal(config_find(&ttable, "timing", "dur"), &topts[6]);
	assert_ptr_equal(config_find(&ttable, "main", "str"), &topts[0]);
	assert_null(config_find(&ttable, "main", "dur"));
	assert_null(config_find(&ttable, "parameters", "x"));
	tcfg_free(&c);
}

static void test_set_free_section(void **state)
{
	struct tcfg c;
	struct pgha_err e;
	tcfg_init(&c);
	assert_int_equal(config_set(&ttable, &c, "parameters", "shared_buffers", "1GB", &e), 0);
	assert_int_equal(config_set(&ttable, &c, "parameters", "anything.goes", "x y", &e), 0);
	assert_int_equal(c.nkv, 2);
	assert_string_equal(c.keys[0], "shared_buffers");
	assert_string_equal(c.vals[0], "1GB");
	assert_string_equal(c.keys[1], "anything.goes");
	assert_string_equal(c.vals[1], "x y");
	/* The callback may refuse; its message is passed through unchanged. */
	assert_int_equal(config_set(&ttable, &c, "parameters", "forbidden", "1", &e), -1);
	assert_string_equal(e.msg, "[parameters] forbidden is refused");
	assert_int_equal(c.nkv, 2);
	tcfg_free(&c);
}

/* ---- config_parse_file -------------------------------------------------- */

static int parse_text_n(const char *text, size_t len, struct tcfg *c, char *path, size_t pathlen,
			struct pgha_err *e)
{
	write_conf_n(path, pathlen, text, len);
	tcfg_init(c);
	e->msg[0] = '\0';
	int rc = config_parse_file(&ttable, path, c, e);
	unlink(path);
	return rc;
}

static int parse_text(const char *text, struct tcfg *c, char *path, size_t pathlen,
		      struct pgha_err *e)
{
	return parse_text_n(text, strlen(text), c, path, pathlen, e);
}

/* The file (len bytes of text) must be refused with exactly "<path><after_path>". */
static void file_refused_n(const char *text, size_t len, const char *after_path)
{
	char path[PATH_MAX], want[PATH_MAX + 1024];
	struct tcfg c;
	struct pgha_err e;
	int rc = parse_text_n(text, len, &c, path, sizeof(path), &e);
	tcfg_free(&c);
	if (rc != -1)
		fail_msg("rc %d, want -1 with \"<path>%s\"", rc, after_path);
	snprintf(want, sizeof(want), "%s%s", path, after_path);
	assert_string_equal(e.msg, want);
}

static void file_refused(const char *text, const char *after_path)
{
	file_refused_n(text, strlen(text), after_path);
}

static void test_file_ok(void **state)
{
	char path[PATH_MAX];
	struct tcfg c;
	struct pgha_err e;
	int rc = parse_text("; a comment\n"
			    "# another comment\n"
			    "\n"
			    "[main]\n"
			    "required = here\n"
			    "   # an indented comment\n"
			    "\t; a comment after a tab\n"
			    "num = 42\n"
			    "flag = true\n"
			    "str = with spaces ; and # no comments\n"
			    "\n"
			    "[timing]\n"
			    "dur = 250ms\n"
			    "level = debug\n"
			    "[parameters]\n"
			    "shared_buffers = 128MB\n"
			    "log_line_prefix = %m [%p] \n"
			    "[main]\n"
			    "big = -3\n",
			    &c, path, sizeof(path), &e);
	if (rc != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.required, "here");
	assert_int_equal(c.num, 42);
	assert_true(c.flag);
	assert_string_equal(c.str, "with spaces ; and # no comments"); /* no inline comments */
	assert_int_equal(c.dur_ms, 250);
	assert_int_equal(c.level, LOG_DEBUG);
	assert_int_equal(c.big, -3);
	/* untouched options keep their defaults */
	assert_int_equal(c.anydur_ms, 0);
	assert_int_equal(c.pin, 0);
	/* the free section collected its keys in file order */
	assert_int_equal(c.nkv, 2);
	assert_string_equal(c.keys[0], "shared_buffers");
	assert_string_equal(c.vals[0], "128MB");
	assert_string_equal(c.keys[1], "log_line_prefix");
	assert_string_equal(c.vals[1], "%m [%p]");
	tcfg_free(&c);
}

static void test_file_defaults_only(void **state)
{
	char path[PATH_MAX];
	struct tcfg c;
	struct pgha_err e;
	if (parse_text("[main]\nrequired = r\n", &c, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.str, "hello");
	assert_int_equal(c.num, 5);
	assert_false(c.flag);
	assert_int_equal(c.dur_ms, 1000);
	assert_int_equal(c.level, LOG_INFO);
	assert_int_equal(c.nkv, 0);
	tcfg_free(&c);
}

static void test_file_bad_value(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 256];
	struct tcfg c;
	struct pgha_err e;
	assert_int_equal(parse_text("[main]\n"
				    "required = r\n"
				    "[timing]\n"
				    "dur = ten\n",
				    &c, path, sizeof(path), &e), -1);
	snprintf(want, sizeof(want),
		 "%s:4: [timing] dur = \"ten\": not a duration (examples: 10, 10s, 500ms, 2m)", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);

	assert_int_equal(parse_text("[main]\nrequired = r\nnum = 500\n", &c, path, sizeof(path), &e),
			 -1);
	snprintf(want, sizeof(want), "%s:3: [main] num = \"500\": out of range: must be from 1 to 100",
		 path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);

	/* A secret's value is not shown, but file, line and option are. */
	assert_int_equal(parse_text("[main]\nrequired = r\n\npin = hunter2\n", &c, path, sizeof(path),
				    &e), -1);
	snprintf(want, sizeof(want), "%s:4: [main] pin: not an integer", path);
	assert_string_equal(e.msg, want);
	assert_not_contains(e.msg, "hunter2");
	tcfg_free(&c);

	/* The free section's callback refusal, with file and line. */
	assert_int_equal(parse_text("[main]\nrequired = r\n[parameters]\na = 1\nforbidden = 2\n", &c,
				    path, sizeof(path), &e), -1);
	snprintf(want, sizeof(want), "%s:5: [parameters] forbidden is refused", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);
}

static void test_file_unknown(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 256];
	struct tcfg c;
	struct pgha_err e;
	assert_int_equal(parse_text("[main]\nrequired = r\nbogus = 1\n", &c, path, sizeof(path), &e),
			 -1);
	snprintf(want, sizeof(want), "%s:3: [main] unknown option \"bogus\"", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);

	assert_int_equal(parse_text("[main]\nrequired = r\n\n[nope]\nx = 1\n", &c, path, sizeof(path),
				    &e), -1);
	snprintf(want, sizeof(want), "%s:5: unknown section [nope]", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);

	/* A key before any section header is refused with its own line. */
	file_refused("num = 1\n[main]\nrequired = r\n", ":1: \"num\" is outside any [section]");
	file_refused("# comment\n\n  num = 1\n[main]\nrequired = r\n",
		     ":3: \"num\" is outside any [section]");
	file_refused("\xEF\xBB\xBFnum = 1\n[main]\nrequired = r\n",
		     ":1: \"num\" is outside any [section]");
}

static void test_file_first_error_wins(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 256];
	struct tcfg c;
	struct pgha_err e;
	assert_int_equal(parse_text("[main]\n"
				    "required = r\n"
				    "num = zero\n"
				    "flag = maybe\n"
				    "bogus = 1\n",
				    &c, path, sizeof(path), &e), -1);
	snprintf(want, sizeof(want), "%s:3: [main] num = \"zero\": not an integer", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);

	/* A bad value before a syntax error: the bad value's line and message. */
	assert_int_equal(parse_text("[main]\nrequired = r\nnum = zero\njunk\n", &c, path, sizeof(path),
				    &e), -1);
	snprintf(want, sizeof(want), "%s:3: [main] num = \"zero\": not an integer", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);
}

static void test_file_syntax_error(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 256];
	struct tcfg c;
	struct pgha_err e;
	assert_int_equal(parse_text("[main]\nrequired = r\nthis line has no equals sign\nnum = 1\n",
				    &c, path, sizeof(path), &e), -1);
	snprintf(want, sizeof(want),
		 "%s:3: syntax error (expected \"[section]\" or \"name = value\")", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);

	assert_int_equal(parse_text("[main]\nrequired = r\n[timing\nnum = 1\n", &c, path, sizeof(path),
				    &e), -1);
	snprintf(want, sizeof(want), "%s:3: syntax error: a section header looks like [name]", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);

	file_refused("[main]\nrequired = r\n[timing] dur = 1s\n",
		     ":3: syntax error: a section header looks like [name]");
	file_refused("[main]\nrequired = r\n[timing]]\n",
		     ":3: syntax error: a section header looks like [name]");
	file_refused("[main\nrequired = r\n", ":1: syntax error: a section header looks like [name]");
	file_refused("[main]\nrequired = r\n= 5\n", ":3: syntax error: a value without a name");
	file_refused("[main]\nrequired = r\n\t =\n", ":3: syntax error: a value without a name");
	file_refused("[main]\nrequired = r\n\"\"\n",
		     ":3: syntax error (expected \"[section]\" or \"name = value\")");
}

/*
 * The first problem in file order is reported, with its own line and its own
 * message, whatever kind it is (a syntax error must not be paired with the
 * message of a later bad value, nor the other way round).
 */
static void test_file_syntax_error_then_bad_value(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 256];
	struct tcfg c;
	struct pgha_err e;
	assert_int_equal(parse_text("[main]\n"
				    "oops no equals\n"
				    "required = r\n"
				    "num = zero\n",
				    &c, path, sizeof(path), &e), -1);
	tcfg_free(&c);
	snprintf(want, sizeof(want),
		 "%s:2: syntax error (expected \"[section]\" or \"name = value\")", path);
	assert_string_equal(e.msg, want);

	file_refused("[main]\nrequired = r\n[bad\nnum = zero\n",
		     ":3: syntax error: a section header looks like [name]");
	file_refused("[main]\nrequired = r\nnum = zero\n[bad\n",
		     ":3: [main] num = \"zero\": not an integer");
	file_refused("[main]\nrequired = r\nnum = 5\n= 1\nnum = zero\n",
		     ":4: syntax error: a value without a name");
	file_refused("x = 1\n[main]\nnum = zero\n", ":1: \"x\" is outside any [section]");
	file_refused("[main]\nbogus = 1\nnum = zero\njunk\n", ":2: [main] unknown option \"bogus\"");
}

static void test_file_missing_required(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 256];
	struct tcfg c;
	struct pgha_err e;
	assert_int_equal(parse_text("[main]\nnum = 2\n", &c, path, sizeof(path), &e), -1);
	snprintf(want, sizeof(want), "%s: [main] required is required (must be set)", path);
	assert_string_equal(e.msg, want);
	assert_int_equal(c.num, 2);
	tcfg_free(&c);

	/* Set to an empty value counts as set (the empty value is then checked by the caller). */
	assert_int_equal(parse_text("[main]\nrequired =\n", &c, path, sizeof(path), &e), 0);
	assert_string_equal(c.required, "");
	tcfg_free(&c);

	/* A required option that fails its own parse is not "seen": the value error wins. */
	assert_int_equal(parse_text("[main]\nnum = x\n", &c, path, sizeof(path), &e), -1);
	snprintf(want, sizeof(want), "%s:2: [main] num = \"x\": not an integer", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);
}

/* No inline comments: "; x" or "# x" after a value is part of the value. */
static void test_file_no_inline_comments(void **state)
{
	file_refused("[main]\nrequired = r\nnum = 42 ; x\n",
		     ":3: [main] num = \"42 ; x\": not an integer");
	file_refused("[main]\nrequired = r\nnum = 42 # x\n",
		     ":3: [main] num = \"42 # x\": not an integer");
	file_refused("[main]\nrequired = r\n[timing]\ndur = 1s ;x\n",
		     ":4: [timing] dur = \"1s ;x\": not a duration (examples: 10, 10s, 500ms, 2m)");

	char path[PATH_MAX];
	struct tcfg c;
	struct pgha_err e;
	if (parse_text("[main]\nrequired = r ; # r\n[parameters]\n"
		       "archive_command = cp %p /x ; sync\n"
		       "log_line_prefix = #%p;\n",
		       &c, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.required, "r ; # r");
	assert_int_equal(c.nkv, 2);
	assert_string_equal(c.keys[0], "archive_command");
	assert_string_equal(c.vals[0], "cp %p /x ; sync");
	assert_string_equal(c.keys[1], "log_line_prefix");
	assert_string_equal(c.vals[1], "#%p;");
	tcfg_free(&c);
}

/* No line-length limit: a 5000-byte value is read whole, and lines after it keep their numbers. */
static void test_file_long_value(void **state)
{
	enum { VLEN = 5000 };
	char *value = malloc(VLEN + 1);
	assert_non_null(value);
	for (int i = 0; i < VLEN; i++)
		value[i] = "abcdefghij ;#=[]\"x"[i % 18];
	value[0] = 'S';         /* neither quoted nor blank at either end */
	value[VLEN - 1] = 'E';
	value[VLEN] = '\0';
	size_t tlen = 2 * VLEN + 256;
	char *text = malloc(tlen);
	assert_non_null(text);
	snprintf(text, tlen, "[main]\nrequired = r\nstr = %s\n[parameters]\nk = %s\nnum = 7\n", value,
		 value);

	char path[PATH_MAX];
	struct tcfg c;
	struct pgha_err e;
	if (parse_text(text, &c, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(strlen(c.str), VLEN);
	assert_string_equal(c.str, value);
	assert_int_equal(c.nkv, 2);
	assert_string_equal(c.keys[0], "k");
	assert_string_equal(c.vals[0], value);
	assert_string_equal(c.keys[1], "num");
	assert_string_equal(c.vals[1], "7");
	tcfg_free(&c);

	/* an error after two long lines names its own line */
	snprintf(text, tlen, "[main]\nrequired = r\nstr = %s\nstr = %s\nnum = 0\n", value, value);
	file_refused(text, ":5: [main] num = \"0\": out of range: must be from 1 to 100");
	/* a long line that is itself wrong (no '=') names its line */
	memset(value, 'x', VLEN);
	snprintf(text, tlen, "[main]\nrequired = r\n\n%s\nnum = 0\n", value);
	file_refused(text, ":4: syntax error (expected \"[section]\" or \"name = value\")");
	free(text);
	free(value);
}

/* Double quotes around a value are removed (to keep blanks); anything else is kept. */
static void test_file_quotes(void **state)
{
	char path[PATH_MAX];
	struct tcfg c;
	struct pgha_err e;
	if (parse_text("[main]\nrequired = \"  padded  \"\nstr = \"\"\nnum = \"42\"\n"
		       "[parameters]\n"
		       "a = \"\n"
		       "b = 'single'\n"
		       "c = \"x ; y # z\"   \n"
		       "d = \"half\n"
		       "e = half\"\n"
		       "f = \"\"\"\n",
		       &c, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.required, "  padded  ");
	assert_string_equal(c.str, "");
	assert_int_equal(c.num, 42);
	assert_int_equal(c.nkv, 6);
	assert_string_equal(c.vals[0], "\"");       /* one quote wraps nothing */
	assert_string_equal(c.vals[1], "'single'");
	assert_string_equal(c.vals[2], "x ; y # z");
	assert_string_equal(c.vals[3], "\"half");
	assert_string_equal(c.vals[4], "half\"");
	assert_string_equal(c.vals[5], "\"");       /* only the outer pair goes */
	tcfg_free(&c);

	/* the unquoted value is what the option parser sees */
	file_refused("[main]\nrequired = r\nnum = \"42 \"\n", ":3: [main] num = \"42 \": not an integer");
}

/* A UTF-8 byte order mark is skipped on line 1, and only there. */
static void test_file_bom(void **state)
{
	char path[PATH_MAX];
	struct tcfg c;
	struct pgha_err e;
	if (parse_text("\xEF\xBB\xBF[main]\nrequired = r\nnum = 9\n", &c, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.required, "r");
	assert_int_equal(c.num, 9);
	tcfg_free(&c);

	if (parse_text("\xEF\xBB\xBF# comment\n[main]\nrequired = r\n", &c, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.required, "r");
	tcfg_free(&c);

	/* on line 2 the bytes are part of the name */
	file_refused("[main]\n\xEF\xBB\xBFrequired = r\n",
		     ":2: [main] unknown option \"\xEF\xBB\xBFrequired\"");
	/* only a whole mark is skipped */
	file_refused("\xEF\xBB[main]\nrequired = r\n",
		     ":1: syntax error (expected \"[section]\" or \"name = value\")");
}

/* CRLF line endings: values lose the CR, lines keep their numbers. */
static void test_file_crlf(void **state)
{
	char path[PATH_MAX];
	struct tcfg c;
	struct pgha_err e;
	if (parse_text("# comment\r\n\r\n[main]\r\nrequired = r\r\nstr = \"q \"\r\nnum = 12\r\n"
		       "[timing]   \r\ndur = 250ms\r\n[parameters]\r\nk = v w\r\n",
		       &c, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.required, "r");
	assert_string_equal(c.str, "q ");
	assert_int_equal(c.num, 12);
	assert_int_equal(c.dur_ms, 250);
	assert_int_equal(c.nkv, 1);
	assert_string_equal(c.keys[0], "k");
	assert_string_equal(c.vals[0], "v w");
	tcfg_free(&c);

	file_refused("[main]\r\nrequired = r\r\n\r\nnum = zero\r\n",
		     ":4: [main] num = \"zero\": not an integer");
	file_refused("[main]\r\nrequired = r\r\njunk\r\n",
		     ":3: syntax error (expected \"[section]\" or \"name = value\")");
}

/* A NUL byte: not a text file (and nothing before it is applied). */
static void test_file_nul(void **state)
{
	static const char text[] = "[main]\nrequired = r\nstr = a\0b\n";
	file_refused_n(text, sizeof(text) - 1, ": not a text file (it holds NUL bytes)");
	static const char lead[] = "\0[main]\nrequired = r\n";
	file_refused_n(lead, sizeof(lead) - 1, ": not a text file (it holds NUL bytes)");
}

static void test_file_missing(void **state)
{
	char path[PATH_MAX + 64], want[PATH_MAX + 256];
	struct tcfg c;
	struct pgha_err e;
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	tcfg_init(&c);
	assert_int_equal(config_parse_file(&ttable, path, &c, &e), -1);
	snprintf(want, sizeof(want), "cannot open config file \"%s\": No such file or directory", path);
	assert_string_equal(e.msg, want);
	tcfg_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_parse_long),
		cmocka_unit_test(test_parse_duration_good),
		cmocka_unit_test(test_parse_duration_bad),
		cmocka_unit_test(test_parse_duration_nan),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_set_string),
		cmocka_unit_test(test_set_int),
		cmocka_unit_test(test_set_secret),
		cmocka_unit_test(test_set_bool),
		cmocka_unit_test(test_set_duration),
		cmocka_unit_test(test_set_loglevel),
		cmocka_unit_test(test_set_unknown),
		cmocka_unit_test(test_set_free_section),
		cmocka_unit_test(test_file_ok),
		cmocka_unit_test(test_file_defaults_only),
		cmocka_unit_test(test_file_bad_value),
		cmocka_unit_test(test_file_unknown),
		cmocka_unit_test(test_file_first_error_wins),
		cmocka_unit_test(test_file_syntax_error),
		cmocka_unit_test(test_file_syntax_error_then_bad_value),
		cmocka_unit_test(test_file_missing_required),
		cmocka_unit_test(test_file_no_inline_comments),
		cmocka_unit_test(test_file_long_value),
		cmocka_unit_test(test_file_quotes),
		cmocka_unit_test(test_file_bom),
		cmocka_unit_test(test_file_crlf),
		cmocka_unit_test(test_file_nul),
		cmocka_unit_test(test_file_missing),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
