/*
 * test_util.c — splitting "host:port" (common/util.c): parse_host_port() for
 * addresses to reach, parse_listen_addr() for addresses to listen on, where
 * port 0 asks the kernel for a free port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"

static void test_host_port_good(void **state)
{
	static const struct {
		const char *in, *host;
		int port;
	} cases[] = {
		{"db1:5432", "db1", 5432},
		{"127.0.0.1:1", "127.0.0.1", 1},
		{"[::1]:65535", "::1", 65535},
		{"::1:8008", "::1", 8008},   /* the last colon splits */
		{"*:5432", "*", 5432},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char host[64];
		int port = -1;
		struct pgha_err e = {{0}};
		assert_int_equal(parse_host_port(cases[i].in, host, sizeof(host), &port, &e), 0);
		assert_string_equal(host, cases[i].host);
		assert_int_equal(port, cases[i].port);
		port = -1;
		assert_int_equal(parse_listen_addr(cases[i].in, host, sizeof(host), &port, &e), 0);
		assert_string_equal(host, cases[i].host);
		assert_int_equal(port, cases[i].port);
	}
}

static void test_host_port_bad(void **state)
{
	static const struct {
		const char *in, *msg;
	} cases[] = {
		{"localhost", "\"localhost\" is not host:port"},
		{"[::1]8008", "\"[::1]8008\" is not host:port ([v6addr]:port for IPv6)"},
		{"[::1:8008", "\"[::1:8008\" is not host:port ([v6addr]:port for IPv6)"},
		{":8008", "\":8008\": the host part is empty or too long"},
		{"[]:8008", "\"[]:8008\": the host part is empty or too long"},
		{"h:", "\"h:\": the port must be a number from 1 to 65535"},
		{"h:80a", "\"h:80a\": the port must be a number from 1 to 65535"},
		{"h:65536", "\"h:65536\": the port must be a number from 1 to 65535"},
		{"h:99999999999999999999", "\"h:99999999999999999999\": the port must be a number from 1 to 65535"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char host[64];
		int port = -1;
		struct pgha_err e = {{0}};
		assert_int_not_equal(parse_host_port(cases[i].in, host, sizeof(host), &port, &e), 0);
		assert_string_equal(e.msg, cases[i].msg);
		assert_int_equal(port, -1);
		struct pgha_err e2 = {{0}};
		assert_int_not_equal(parse_listen_addr(cases[i].in, host, sizeof(host), &port, &e2), 0);
		assert_true(e2.msg[0] != '\0');
	}
	/* A host longer than the buffer is refused, not cut. */
	char small[4];
	int port;
	struct pgha_err e = {{0}};
	assert_int_not_equal(parse_host_port("abcd:1", small, sizeof(small), &port, &e), 0);
	assert_string_equal(e.msg, "\"abcd:1\": the host part is empty or too long");
	assert_int_not_equal(parse_listen_addr(NULL, small, sizeof(small), &port, &e), 0);
}

/* Port 0 is a free port to listen on, never a port to reach. */
static void test_port_zero(void **state)
{
	char host[64];
	int port = -1;
	struct pgha_err e = {{0}};
	assert_int_equal(parse_listen_addr("127.0.0.1:0", host, sizeof(host), &port, &e), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 0);
	assert_int_not_equal(parse_host_port("127.0.0.1:0", host, sizeof(host), &port, &e), 0);
	assert_string_equal(e.msg, "\"127.0.0.1:0\": the port must be a number from 1 to 65535");
	assert_int_not_equal(parse_listen_addr("h:65536", host, sizeof(host), &port, &e), 0);
	assert_string_equal(e.msg, "\"h:65536\": the port must be a number from 0 to 65535");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_port_good),
		cmocka_unit_test(test_host_port_bad),
		cmocka_unit_test(test_port_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
