/*
 * test_config.c — the declarative option tables (common/config.c): value
 * parsers, config_set on every option type, the INI reader (common/ini.c,
 * directly and through config_parse_file) and its error messages; and the
 * agent's own table and checks (ha/agent_config.c).
 *
 * Config files are written into a private temporary directory (mkdtemp +
 * mkstemp) that the group teardown removes, even after a failed test.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
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
#include "common/ini.h"
#include "common/log.h"
#include "ha/agent_config.h"

/* ---- helpers ------------------------------------------------------------ */

static char tmpdir[1024];

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/pgha-test-config-XXXXXX",
		 base && base[0] ? base : "/tmp");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			char p[PATH_MAX + 256];
			snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	return rmdir(tmpdir) == 0 ? 0 : -1;
}

/* Write len bytes of content to a new file in tmpdir; path receives its name. */
static void write_conf_n(char *path, size_t pathlen, const char *content, size_t len)
{
	snprintf(path, pathlen, "%s/conf-XXXXXX", tmpdir);
	int fd = mkstemp(path);
	if (fd < 0)
		fail_msg("mkstemp: %s", strerror(errno));
	if (write(fd, content, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	close(fd);
}

static void write_conf(char *path, size_t pathlen, const char *content)
{
	write_conf_n(path, pathlen, content, strlen(content));
}

#define assert_contains(hay, needle)                                                    \
	do {                                                                             \
		const char *h_ = (hay), *n_ = (needle);                                  \
		if (strstr(h_, n_) == NULL)                                              \
			fail_msg("\"%s\"\n  does not contain\n\"%s\"", h_, n_);           \
	} while (0)

#define assert_not_contains(hay, needle)                                                \
	do {                                                                             \
		const char *h_ = (hay), *n_ = (needle);                                  \
		if (strstr(h_, n_) != NULL)                                              \
			fail_msg("\"%s\"\n  contains\n\"%s\"", h_, n_);                   \
	} while (0)

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
		"10d", "1s1", "h", "1hh", "inf", "infinity", "-inf",
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

/* ---- agent_config ------------------------------------------------------- */

#define AGENT_MIN                                         \
	"[node]\n"                                        \
	"name = node1\n"                                  \
	"[postgresql]\n"                                  \
	"data_dir = /srv/pg/data\n"                       \
	"superuser_password_file = /etc/pgha/su.pw\n"     \
	"replication_password_file = /etc/pgha/repl.pw\n"

static int agent_load_text(const char *text, struct agent_config *cfg, char *path, size_t pathlen,
			   struct pgha_err *e)
{
	write_conf(path, pathlen, text);
	int rc = agent_config_load(path, cfg, e);
	unlink(path);
	return rc;
}

/* Load text that must be refused; the message must contain want (after "<path>"). */
static void agent_refused(const char *text, const char *want)
{
	char path[PATH_MAX];
	struct agent_config cfg;
	struct pgha_err e;
	e.msg[0] = '\0';
	int rc = agent_load_text(text, &cfg, path, sizeof(path), &e);
	agent_config_free(&cfg);
	if (rc == 0)
		fail_msg("accepted, want an error containing \"%s\":\n%s", want, text);
	if (strncmp(e.msg, path, strlen(path)) != 0)
		fail_msg("\"%s\" does not start with the path %s", e.msg, path);
	assert_contains(e.msg, want);
}

/* Load text that must be refused with exactly "<path><after_path>". */
static void agent_refused_exact(const char *text, const char *after_path)
{
	char path[PATH_MAX], want[PATH_MAX + 1024];
	struct agent_config cfg;
	struct pgha_err e;
	e.msg[0] = '\0';
	int rc = agent_load_text(text, &cfg, path, sizeof(path), &e);
	agent_config_free(&cfg);
	if (rc == 0)
		fail_msg("accepted, want \"<path>%s\":\n%s", after_path, text);
	snprintf(want, sizeof(want), "%s%s", path, after_path);
	assert_string_equal(e.msg, want);
}

static void agent_accepted(const char *text, struct agent_config *cfg)
{
	char path[PATH_MAX];
	struct pgha_err e;
	if (agent_load_text(text, cfg, path, sizeof(path), &e) != 0)
		fail_msg("refused: %s\n%s", e.msg, text);
}

static void test_agent_minimal(void **state)
{
	char path[PATH_MAX];
	struct agent_config cfg;
	struct pgha_err e;
	if (agent_load_text(AGENT_MIN, &cfg, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(cfg.path, path);
	assert_string_equal(cfg.name, "node1");
	assert_string_equal(cfg.cluster_name, "pgha");
	assert_string_equal(cfg.etcd_prefix, "/pgha");
	assert_int_equal(cfg.ttl_ms, 9000);
	assert_int_equal(cfg.loop_wait_ms, 1000);
	assert_int_equal(cfg.retry_timeout_ms, 3000);
	assert_string_equal(cfg.etcd_endpoints, "http://127.0.0.1:2379");
	assert_string_equal(cfg.etcd_username, "");
	assert_int_equal(cfg.etcd_request_timeout_ms, 1500);
	assert_string_equal(cfg.api_listen, "127.0.0.1:8008");
	assert_string_equal(cfg.run_as, "postgres");
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_false(cfg.nofailover);
	assert_false(cfg.nosync);
	assert_false(cfg.noloadbalance);
	assert_int_equal(cfg.priority, 100);
	assert_string_equal(cfg.data_dir, "/srv/pg/data");
	assert_string_equal(cfg.bin_dir, "/usr/lib/postgresql/15/bin");
	assert_string_equal(cfg.listen, "127.0.0.1:5432");
	assert_string_equal(cfg.socket_dir, "/tmp");
	assert_string_equal(cfg.superuser, "postgres");
	assert_string_equal(cfg.superuser_password_file, "/etc/pgha/su.pw");
	assert_string_equal(cfg.replication_user, "replicator");
	assert_string_equal(cfg.replication_password_file, "/etc/pgha/repl.pw");
	assert_string_equal(cfg.allowed_networks, "127.0.0.1/32,::1/128");
	assert_int_equal(cfg.start_timeout_ms, 60000);
	assert_int_equal(cfg.stop_timeout_ms, 60000);
	assert_int_equal(cfg.member_slots_ttl_ms, 30 * 60000);
	assert_int_equal(cfg.nparams, 0);
	/* derived */
	assert_string_equal(cfg.pg_host, "127.0.0.1");
	assert_int_equal(cfg.pg_port, 5432);
	assert_string_equal(cfg.address, "127.0.0.1:5432");
	assert_string_equal(cfg.address_host, "127.0.0.1");
	assert_int_equal(cfg.address_port, 5432);
	assert_string_equal(cfg.api_address, "127.0.0.1:8008");
	assert_string_equal(cfg.pgpass, "/srv/pg/node1.pgpass");
	assert_string_equal(cfg.log_file, "/srv/pg/node1.postgresql.log");
	agent_config_free(&cfg);
	assert_null(cfg.name);
	assert_null(cfg.path);
}

static void test_agent_derived(void **state)
{
	struct agent_config cfg;
	/* listen given, address derived from it */
	agent_accepted(AGENT_MIN "listen = 10.0.0.5:6432\n"
				 "[node]\napi_listen = [::1]:8009\n", &cfg);
	assert_string_equal(cfg.pg_host, "10.0.0.5");
	assert_int_equal(cfg.pg_port, 6432);
	assert_string_equal(cfg.address, "10.0.0.5:6432");
	assert_string_equal(cfg.address_host, "10.0.0.5");
	assert_int_equal(cfg.address_port, 6432);
	assert_string_equal(cfg.api_address, "[::1]:8009");
	agent_config_free(&cfg);

	/* explicit address, api_address, pgpass and log_file are kept */
	agent_accepted(AGENT_MIN "listen = *:5432\n"
				 "address = db1.example.com:5433\n"
				 "pgpass = /etc/pgha/pgpass\n"
				 "log_file = /var/log/pg.log\n"
				 "[node]\n"
				 "api_listen = 0.0.0.0:8008\n"
				 "api_address = db1.example.com:8008\n", &cfg);
	assert_string_equal(cfg.pg_host, "*");
	assert_int_equal(cfg.pg_port, 5432);
	assert_string_equal(cfg.address, "db1.example.com:5433");
	assert_string_equal(cfg.address_host, "db1.example.com");
	assert_int_equal(cfg.address_port, 5433);
	assert_string_equal(cfg.api_address, "db1.example.com:8008");
	assert_string_equal(cfg.pgpass, "/etc/pgha/pgpass");
	assert_string_equal(cfg.log_file, "/var/log/pg.log");
	agent_config_free(&cfg);

	/* IPv6 address */
	agent_accepted(AGENT_MIN "listen = [fd00::5]:5432\n", &cfg);
	assert_string_equal(cfg.pg_host, "fd00::5");
	assert_string_equal(cfg.address_host, "fd00::5");
	assert_int_equal(cfg.address_port, 5432);
	agent_config_free(&cfg);

	/* defaults next to data_dir: its parent directory */
	agent_accepted("[node]\nname = n2\n[postgresql]\ndata_dir = /var/lib/pgsql/15/main\n"
		       "superuser_password_file = /a\nreplication_password_file = /b\n", &cfg);
	assert_string_equal(cfg.pgpass, "/var/lib/pgsql/15/n2.pgpass");
	assert_string_equal(cfg.log_file, "/var/lib/pgsql/15/n2.postgresql.log");
	agent_config_free(&cfg);
}

/*
 * Trailing slashes on data_dir are stripped: "/srv/pg/data/" is
 * "/srv/pg/data", so the passfile and the server log land beside it, not
 * inside it (an empty data_dir would become non-empty, and initdb and
 * pg_basebackup refuse that).
 */
static void test_agent_data_dir_trailing_slash(void **state)
{
	static const char *const dirs[] = {"/srv/pg/data/", "/srv/pg/data//", "/srv/pg/data///"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char text[512];
		struct agent_config cfg;
		snprintf(text, sizeof(text),
			 "[node]\nname = node1\n[postgresql]\ndata_dir = %s\n"
			 "superuser_password_file = /a\nreplication_password_file = /b\n", dirs[i]);
		agent_accepted(text, &cfg);
		assert_string_equal(cfg.data_dir, "/srv/pg/data");
		assert_string_equal(cfg.pgpass, "/srv/pg/node1.pgpass");
		assert_string_equal(cfg.log_file, "/srv/pg/node1.postgresql.log");
		agent_config_free(&cfg);
	}
}

/* A data_dir right under "/": its files go in "/", joined without "//". "/" itself is refused. */
static void test_agent_data_dir_root(void **state)
{
	static const char *const dirs[] = {"/pgdata", "/pgdata/"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char text[512];
		struct agent_config cfg;
		snprintf(text, sizeof(text),
			 "[node]\nname = node1\n[postgresql]\ndata_dir = %s\n"
			 "superuser_password_file = /a\nreplication_password_file = /b\n", dirs[i]);
		agent_accepted(text, &cfg);
		assert_string_equal(cfg.data_dir, "/pgdata");
		assert_string_equal(cfg.pgpass, "/node1.pgpass");
		assert_string_equal(cfg.log_file, "/node1.postgresql.log");
		agent_config_free(&cfg);
	}
	static const char *const roots[] = {"/", "//", "///"};
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text),
			 "[node]\nname = node1\n[postgresql]\ndata_dir = %s\n"
			 "superuser_password_file = /a\nreplication_password_file = /b\n", roots[i]);
		agent_refused_exact(text, ": [postgresql] data_dir = \"/\": choose a directory of its own");
	}
}

static void test_agent_missing_required(void **state)
{
	agent_refused("[node]\nname = node1\n[postgresql]\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir is required (PostgreSQL data directory");
	agent_refused("[postgresql]\ndata_dir = /d\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [node] name is required (this member's name");
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir = /d\n"
		      "superuser_password_file = /a\n",
		      ": [postgresql] replication_password_file is required");
	agent_refused("", ": [node] name is required");
}

static void test_agent_bad_values(void **state)
{
	agent_refused(AGENT_MIN "[cluster]\nttl = ten\n",
		      ":8: [cluster] ttl = \"ten\": not a duration (examples: 10, 10s, 500ms, 2m)");
	agent_refused(AGENT_MIN "[cluster]\nttl = 1s\n",
		      ":8: [cluster] ttl = \"1s\": out of range: must be from 2000ms to 3600000ms");
	agent_refused(AGENT_MIN "[node]\npriority = -1\n",
		      ":8: [node] priority = \"-1\": out of range: must be from 0 to 1000000");
	agent_refused(AGENT_MIN "[node]\nnofailover = maybe\n",
		      ":8: [node] nofailover = \"maybe\": not a boolean");
	agent_refused(AGENT_MIN "[node]\nlog_level = loud\n",
		      ":8: [node] log_level = \"loud\": not a log level");
	agent_refused(AGENT_MIN "[node]\nbogus = 1\n", ":8: [node] unknown option \"bogus\"");
	agent_refused(AGENT_MIN "[nodes]\nname = x\n", ":8: unknown section [nodes]");
	agent_refused("[node]\nname = node1\nthis is not ini\n" AGENT_MIN,
		      ":3: syntax error (expected \"[section]\" or \"name = value\")");
}

static void test_agent_ttl_relation(void **state)
{
	struct agent_config cfg;
	/* exactly loop_wait + 2 * retry_timeout is enough */
	agent_accepted(AGENT_MIN "[cluster]\nttl = 7s\nloop_wait = 1s\nretry_timeout = 3s\n", &cfg);
	assert_int_equal(cfg.ttl_ms, 7000);
	agent_config_free(&cfg);
	agent_refused(AGENT_MIN "[cluster]\nttl = 7s\nloop_wait = 1001ms\nretry_timeout = 3s\n",
		      ": [cluster] ttl (7000ms) must be at least loop_wait + 2 * retry_timeout "
		      "(1001ms + 2 * 3000ms)\nHINT: raise ttl or lower loop_wait/retry_timeout");
	agent_refused(AGENT_MIN "[cluster]\nttl = 10s\nretry_timeout = 5s\n",
		      ": [cluster] ttl (10000ms) must be at least loop_wait + 2 * retry_timeout "
		      "(1000ms + 2 * 5000ms)");
	/* defaults: 1s + 2 * 3s <= 9s; only loop_wait raised */
	agent_refused(AGENT_MIN "[cluster]\nloop_wait = 5s\n",
		      ": [cluster] ttl (9000ms) must be at least");
}

static void test_agent_request_timeout(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[etcd]\nrequest_timeout = 3s\n", &cfg);
	assert_int_equal(cfg.etcd_request_timeout_ms, 3000);
	agent_config_free(&cfg);
	agent_refused(AGENT_MIN "[etcd]\nrequest_timeout = 3001ms\n",
		      ": [etcd] request_timeout (3001ms) must not exceed [cluster] retry_timeout "
		      "(3000ms)");
	agent_refused(AGENT_MIN "[etcd]\nrequest_timeout = 2s\n[cluster]\nretry_timeout = 1s\n",
		      ": [etcd] request_timeout (2000ms) must not exceed [cluster] retry_timeout "
		      "(1000ms)");
	agent_refused(AGENT_MIN "[etcd]\nusername = pgha\n",
		      ": [etcd] username is set but password_file is not");
}

static void test_agent_data_dir_relative(void **state)
{
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir = data\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir = \"data\": must be an absolute path");
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir = ./pg/data\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir = \"./pg/data\": must be an absolute path");
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir =\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir = \"\": must be an absolute path");
}

static void test_agent_listen(void **state)
{
	agent_refused(AGENT_MIN "listen = *:5432\n",
		      ": [postgresql] address is required when listen is \"*:5432\"");
	agent_refused(AGENT_MIN "listen = 0.0.0.0:5432\n",
		      ": [postgresql] address is required when listen is \"0.0.0.0:5432\"");
	agent_refused(AGENT_MIN "listen = 10.0.0.1,10.0.0.2:5432\n",
		      ": [postgresql] address is required when listen is \"10.0.0.1,10.0.0.2:5432\"");
	agent_refused(AGENT_MIN "listen = localhost\n",
		      ": [postgresql] listen: \"localhost\" is not host:port");
	agent_refused(AGENT_MIN "listen = 127.0.0.1:70000\n",
		      ": [postgresql] listen: \"127.0.0.1:70000\": the port must be a number from 1 to "
		      "65535");
	agent_refused(AGENT_MIN "listen = *:5432\naddress = db1\n",
		      ": [postgresql] address: \"db1\" is not host:port");
	agent_refused(AGENT_MIN "[node]\napi_listen = 0.0.0.0:8008\n",
		      ": [node] api_address is required when api_listen is \"0.0.0.0:8008\"");
	agent_refused(AGENT_MIN "[node]\napi_listen = [::]:8008\n",
		      ": [node] api_address is required when api_listen is \"[::]:8008\"");
	agent_refused(AGENT_MIN "[node]\napi_listen = 8008\n", ": [node] api_listen: \"8008\"");
	agent_refused(AGENT_MIN "[node]\napi_listen = 0.0.0.0:8008\napi_address = x:0\n",
		      ": [node] api_address: \"x:0\": the port must be a number from 1 to 65535");
}

/*
 * "[::]:5432" is the IPv6 wildcard (like "*" and "0.0.0.0", which are
 * refused): without [postgresql] address, the member record advertises host
 * "::", and a standby connecting to "::" reaches its OWN machine.
 */
static void test_agent_listen_ipv6_wildcard(void **state)
{
	agent_refused_exact(AGENT_MIN "listen = [::]:5432\n",
			    ": [postgresql] address is required when listen is \"[::]:5432\" "
			    "(others need one address to reach this member)");
	/* the same sentence as for the IPv4 wildcards */
	agent_refused_exact(AGENT_MIN "listen = *:5432\n",
			    ": [postgresql] address is required when listen is \"*:5432\" "
			    "(others need one address to reach this member)");
	agent_refused_exact(AGENT_MIN "listen = 0.0.0.0:5432\n",
			    ": [postgresql] address is required when listen is \"0.0.0.0:5432\" "
			    "(others need one address to reach this member)");
	/* with an address it is fine */
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "listen = [::]:5432\naddress = [fd00::7]:5432\n", &cfg);
	assert_string_equal(cfg.pg_host, "::");
	assert_int_equal(cfg.pg_port, 5432);
	assert_string_equal(cfg.address, "[fd00::7]:5432");
	assert_string_equal(cfg.address_host, "fd00::7");
	assert_int_equal(cfg.address_port, 5432);
	agent_config_free(&cfg);
	/* a specific IPv6 address is its own address */
	agent_accepted(AGENT_MIN "listen = [::1]:5433\n", &cfg);
	assert_string_equal(cfg.address, "[::1]:5433");
	assert_string_equal(cfg.address_host, "::1");
	agent_config_free(&cfg);
}

static void test_agent_names(void **state)
{
	static const char *const bad[] = {
		"", "node 1", "node/1", "node:1", "n\xc3\xb6""de", "node@x", "a,b",
		"0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024], want[256];
		snprintf(text, sizeof(text), AGENT_MIN "[node]\nname = %s\n", bad[i]);
		snprintf(want, sizeof(want),
			 ": [node] name = \"%s\": use 1 to 63 of A-Z a-z 0-9 _ - .", bad[i]);
		agent_refused(text, want);
	}
	static const char *const good[] = {
		"a", "Node-1.dc_2", "012345678901234567890123456789012345678901234567890123456789012",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char text[1024];
		struct agent_config cfg;
		snprintf(text, sizeof(text), AGENT_MIN "[node]\nname = %s\n", good[i]);
		agent_accepted(text, &cfg);
		assert_string_equal(cfg.name, good[i]);
		agent_config_free(&cfg);
	}
	agent_refused(AGENT_MIN "[cluster]\nname = my cluster\n",
		      ": [cluster] name = \"my cluster\": use 1 to 63 of A-Z a-z 0-9 _ - .");
	agent_refused(AGENT_MIN "[cluster]\nprefix = pgha\n",
		      ": [cluster] prefix = \"pgha\": must start with /");
}

static void test_agent_parameters(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[parameters]\n"
				 "shared_buffers = 1GB\n"
				 "work_mem = 4MB\n"
				 "pg_stat_statements.max = 10000\n"
				 "shared_buffers = 2GB\n", &cfg);
	assert_int_equal(cfg.nparams, 3);
	assert_string_equal(cfg.params[0].name, "shared_buffers");
	assert_string_equal(cfg.params[0].value, "2GB"); /* a repeated key replaces */
	assert_string_equal(cfg.params[1].name, "work_mem");
	assert_string_equal(cfg.params[1].value, "4MB");
	assert_string_equal(cfg.params[2].name, "pg_stat_statements.max");
	assert_string_equal(cfg.params[2].value, "10000");
	agent_config_free(&cfg);

	agent_refused(AGENT_MIN "[parameters]\nshared-buffers = 1GB\n",
		      ":8: [parameters] \"shared-buffers\" is not a PostgreSQL parameter name");

	static const char *const owned[] = {
		"port", "listen_addresses", "hot_standby", "primary_conninfo", "primary_slot_name",
		"unix_socket_directories", "wal_level", "hba_file", "data_directory",
	};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		char text[1024], want[256];
		snprintf(text, sizeof(text), AGENT_MIN "[parameters]\nwork_mem = 1MB\n%s = x\n",
			 owned[i]);
		snprintf(want, sizeof(want),
			 ": [parameters] %s is managed by pgha and cannot be set here\nHINT: ", owned[i]);
		agent_refused(text, want);
	}
}

/*
 * PostgreSQL parameter names are case-insensitive ("Port = 5433" in
 * postgresql.conf sets port), so the managed parameters are refused in any
 * case, and the message names them as written.
 */
static void test_agent_parameters_managed_case(void **state)
{
	static const char *const names[] = {"Port", "PORT", "WAL_LEVEL", "Listen_Addresses",
					    "Primary_Conninfo", "HBA_file", "Data_Directory",
					    "restore_command_PGHA"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char text[1024], want[256];
		snprintf(text, sizeof(text), AGENT_MIN "[parameters]\nwork_mem = 1MB\n%s = x\n",
			 names[i]);
		snprintf(want, sizeof(want),
			 ": [parameters] %s is managed by pgha and cannot be set here"
			 "\nHINT: use [postgresql] listen/socket_dir for addresses", names[i]);
		agent_refused_exact(text, want);
	}
	/* not a prefix match: names that merely start like a managed one are fine */
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[parameters]\nPorts = 1\nwal_level_x = 2\n", &cfg);
	assert_int_equal(cfg.nparams, 2);
	assert_string_equal(cfg.params[0].name, "Ports");
	assert_string_equal(cfg.params[1].name, "wal_level_x");
	agent_config_free(&cfg);
}

/* An empty parameter name is a syntax error of the file (the reader refuses "= 5"). */
static void test_agent_parameters_empty_name(void **state)
{
	agent_refused_exact(AGENT_MIN "[parameters]\n= 5\n", ":8: syntax error: a value without a name");
	agent_refused_exact(AGENT_MIN "[parameters]\nwork_mem = 1MB\n   = 5\n",
			    ":9: syntax error: a value without a name");
	/* and param_set refuses it too when reached some other way */
	struct agent_config cfg;
	struct pgha_err e;
	memset(&cfg, 0, sizeof(cfg));
	if (config_apply_defaults(&agent_config_table, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(config_set(&agent_config_table, &cfg, "parameters", "", "5", &e), -1);
	assert_string_equal(e.msg, "[parameters] a value without a parameter name");
	assert_int_equal(cfg.nparams, 0);
	agent_config_free(&cfg);
}

/*
 * Long archive_command lines are read whole: the old inih reader cut lines at
 * 200 bytes and parsed the tail as a new "stanza = ..." parameter.
 */
static void test_agent_long_line(void **state)
{
	char value[512], text[2048];
	const char *key = "archive_command = ";
	snprintf(value, sizeof(value),
		 "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --log-path=/var/log/pgbackrest "
		 "--spool-path=/var/spool/pgbackrest/");
	size_t len = strlen(key) + strlen(value);
	while (len < 199 - 3) { /* pad the spool path so "--" ends at byte 199 */
		strcat(value, "x");
		len++;
	}
	strcat(value, " --stanza=main archive-push %p");
	assert_int_equal(strlen(key) + strlen(value), 199 + strlen("stanza=main archive-push %p"));
	snprintf(text, sizeof(text), AGENT_MIN "[parameters]\n%s%s\nwork_mem = 4MB\n", key, value);

	struct agent_config cfg;
	agent_accepted(text, &cfg);
	assert_int_equal(cfg.nparams, 2);
	assert_string_equal(cfg.params[0].name, "archive_command");
	assert_string_equal(cfg.params[0].value, value);
	assert_string_equal(cfg.params[1].name, "work_mem");
	assert_string_equal(cfg.params[1].value, "4MB");
	agent_config_free(&cfg);

	/* 5000 bytes, intact */
	enum { VLEN = 5000 };
	char *big = malloc(VLEN + 1);
	char *btext = malloc(VLEN + 512);
	assert_non_null(big);
	assert_non_null(btext);
	for (int i = 0; i < VLEN; i++)
		big[i] = (char)('a' + i % 26);
	memcpy(big + 100, " ; # = ", 7);
	big[VLEN] = '\0';
	snprintf(btext, VLEN + 512, AGENT_MIN "[parameters]\narchive_command = %s\n", big);
	agent_accepted(btext, &cfg);
	assert_int_equal(cfg.nparams, 1);
	assert_string_equal(cfg.params[0].name, "archive_command");
	assert_int_equal(strlen(cfg.params[0].value), VLEN);
	assert_string_equal(cfg.params[0].value, big);
	agent_config_free(&cfg);
	/* an error after it names its own line */
	snprintf(btext, VLEN + 512, AGENT_MIN "[parameters]\narchive_command = %s\n[node]\nbogus = 1\n",
		 big);
	agent_refused_exact(btext, ":10: [node] unknown option \"bogus\"");
	free(btext);
	free(big);
}

/* No inline comments: "; sync" is part of the command, not a comment. */
static void test_agent_semicolon_in_value(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[parameters]\narchive_command = cp %p /x ; sync\n"
				 "restore_command = \"cp /x/%f %p # quoted\"\n", &cfg);
	assert_int_equal(cfg.nparams, 2);
	assert_string_equal(cfg.params[0].name, "archive_command");
	assert_string_equal(cfg.params[0].value, "cp %p /x ; sync");
	assert_string_equal(cfg.params[1].name, "restore_command");
	assert_string_equal(cfg.params[1].value, "cp /x/%f %p # quoted");
	agent_config_free(&cfg);
	/* for an option that is a number, a would-be comment makes the value wrong */
	agent_refused_exact(AGENT_MIN "[node]\npriority = 5 ; high\n",
			    ":8: [node] priority = \"5 ; high\": not an integer");
	agent_refused_exact(AGENT_MIN "[cluster]\nttl = 10s # ten\n",
			    ":8: [cluster] ttl = \"10s # ten\": not a duration (examples: 10, 10s, "
			    "500ms, 2m)");
}

static void test_agent_help(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	config_print_help(&agent_config_table, f);
	fclose(f);
	assert_non_null(buf);
	const struct config_table *t = &agent_config_table;
	assert_true(t->noptions >= 30);
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		char line[128], sec[64];
		/* "    <name padded to 26> <type>; ..." */
		snprintf(line, sizeof(line), "\n    %-26s ", o->name);
		assert_contains(buf, line);
		snprintf(sec, sizeof(sec), "\n  [%s]\n", o->section);
		assert_contains(buf, sec);
		assert_contains(buf, o->help);
	}
	assert_contains(buf, "\n  [parameters]\n    any name = value: passed through as is\n");
	/* a few complete lines: required, default, reloadable, type names */
	static const char *const lines[][2] = {
		{"name", "string; required"},
		{"data_dir", "string; required"},
		{"ttl", "duration; default: 9s; reloadable"},
		{"request_timeout", "duration; default: 1500ms"},
		{"priority", "integer; default: 100; reloadable"},
		{"nofailover", "boolean; default: off; reloadable"},
		{"log_level", "log level; default: info; reloadable"},
		{"username", "string; default: none"},
		{"endpoints", "string; default: http://127.0.0.1:2379"},
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char line[160];
		snprintf(line, sizeof(line), "\n    %-26s %s\n", lines[i][0], lines[i][1]);
		assert_contains(buf, line);
	}
	/* each section header once, in table order */
	assert_true(strstr(buf, "[cluster]") < strstr(buf, "[etcd]"));
	assert_true(strstr(buf, "[etcd]") < strstr(buf, "[node]"));
	assert_true(strstr(buf, "[node]") < strstr(buf, "[postgresql]"));
	assert_null(strstr(strstr(buf, "[node]") + 1, "\n  [node]\n"));
	free(buf);
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
		cmocka_unit_test(test_ini_callback),
		cmocka_unit_test(test_ini_callback_stops),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_ini_parse_path),
		cmocka_unit_test(test_agent_minimal),
		cmocka_unit_test(test_agent_derived),
		cmocka_unit_test(test_agent_data_dir_trailing_slash),
		cmocka_unit_test(test_agent_data_dir_root),
		cmocka_unit_test(test_agent_missing_required),
		cmocka_unit_test(test_agent_bad_values),
		cmocka_unit_test(test_agent_ttl_relation),
		cmocka_unit_test(test_agent_request_timeout),
		cmocka_unit_test(test_agent_data_dir_relative),
		cmocka_unit_test(test_agent_listen),
		cmocka_unit_test(test_agent_listen_ipv6_wildcard),
		cmocka_unit_test(test_agent_names),
		cmocka_unit_test(test_agent_parameters),
		cmocka_unit_test(test_agent_parameters_managed_case),
		cmocka_unit_test(test_agent_parameters_empty_name),
		cmocka_unit_test(test_agent_long_line),
		cmocka_unit_test(test_agent_semicolon_in_value),
		cmocka_unit_test(test_agent_help),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
