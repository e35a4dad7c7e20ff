/*
 * test_prom.c — Prometheus text format (common/prom.c): labels escaped, NaN,
 * integers with every digit, no braces without labels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include <cmocka.h>

#include "common/prom.h"

static void test_samples(void **state)
{
	(void)state;
	struct strbuf out = STRBUF_INIT;
	prom_family(&out, "x_total", "counter", "Things.");
	prom_sample(&out, "x_total", NULL, NULL, 3);
	const char *l[] = {"member", "a\"b\\c\nd", NULL};
	const char *more[] = {"kind", "written", NULL};
	prom_sample(&out, "y", l, more, NAN);
	prom_sample(&out, "z", NULL, more, (double)0xFFFFFFFFFFFull);
	prom_sample(&out, "w", l, NULL, 0.25);
	prom_sample(&out, "v", NULL, NULL, 1e300);
	assert_string_equal(sb_str(&out), "# HELP x_total Things.\n# TYPE x_total counter\n"
			    "x_total 3\n"
			    "y{member=\"a\\\"b\\\\c\\nd\",kind=\"written\"} NaN\n"
			    "z{kind=\"written\"} 17592186044415\n"
			    "w{member=\"a\\\"b\\\\c\\nd\"} 0.25\n"
			    "v 1e+300\n");
	sb_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
