/*
 * test_route.c — where a standby cluster's read-write work goes
 * (route_forward_pick, proxy/route.c): only to a host of [proxy]
 * primary_hosts, the one the standby leader's record says it streams from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/route.h"

static struct route_forward fwd(void)
{
	struct route_forward f;
	memset(&f, 0, sizeof(f));
	f.n = 3;
	snprintf(f.hosts[0].host, sizeof(f.hosts[0].host), "10.0.0.1");
	f.hosts[0].port = 5432;
	snprintf(f.hosts[1].host, sizeof(f.hosts[1].host), "10.0.0.2");
	f.hosts[1].port = 5432;
	snprintf(f.hosts[2].host, sizeof(f.hosts[2].host), "fd00::3");
	f.hosts[2].port = 5433;
	return f;
}

static struct member leader(const char *source)
{
	struct member m;
	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "b1");
	m.role = ROLE_REPLICA;
	snprintf(m.standby_of, sizeof(m.standby_of), "10.0.0.1:5432,10.0.0.2:5432");
	if (source != NULL) {
		m.has_source = true;
		snprintf(m.source, sizeof(m.source), "%s", source);
	}
	return m;
}

static void test_pick(void **state)
{
	struct route_forward f = fwd();
	struct route_target t;
	struct member m = leader("10.0.0.2:5432");
	assert_true(route_forward_pick(&f, &m, &t));
	assert_string_equal(t.host, "10.0.0.2");
	assert_int_equal(t.port, 5432);
	assert_string_equal(t.name, "primary-cluster");
	m = leader("[fd00::3]:5433");
	assert_true(route_forward_pick(&f, &m, &t));
	assert_string_equal(t.host, "fd00::3");
	assert_int_equal(t.port, 5433);
}

static void test_no_pick(void **state)
{
	struct route_forward f = fwd(), none;
	memset(&none, 0, sizeof(none));
	struct route_target t;
	/* Not streaming, an older agent's record, no list. */
	struct member m = leader("");
	assert_false(route_forward_pick(&f, &m, &t));
	m = leader(NULL);
	assert_false(route_forward_pick(&f, &m, &t));
	m = leader("10.0.0.1:5432");
	assert_false(route_forward_pick(&none, &m, &t));
	assert_false(route_forward_pick(NULL, &m, &t));
	/* standby_writes = refuse: nowhere, whatever the list. */
	f.refuse = true;
	assert_false(route_forward_pick(&f, &m, &t));
	f.refuse = false;
	/* etcd never adds a host: another host, another port, a prefix of a listed host. */
	static const char *const others[] = {"10.6.6.6:5432", "10.0.0.1:5433", "10.0.0.1:543", "10.0.0:5432"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		m = leader(others[i]);
		if (route_forward_pick(&f, &m, &t))
			fail_msg("%s was taken", others[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_no_pick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
