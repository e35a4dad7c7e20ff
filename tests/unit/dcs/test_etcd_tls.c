/*
 * test_etcd_tls.c — the etcd client's TLS options as a whole (dcs/etcd_tls.c):
 * a certificate without its key or a key without its certificate, TLS files
 * with an http:// endpoint, and a missing CA file are refused naming the
 * caller's option; no TLS option at all is fine. The files' own checks are
 * common/tlsfile.c's (tests/unit/common/test_tlsfile.c); certificates that
 * work against a real etcd: tests/integration/test_etcd_tls.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dcs/etcd.h"

static const char *const names[3] = {"[etcd] ca_file", "[etcd] cert_file", "[etcd] key_file"};

static void refused(const struct etcd_opts *o, const char *want1, const char *want2)
{
	struct pgha_err e = {{0}};
	assert_int_not_equal(etcd_check_tls(o, names, &e), 0);
	if (strstr(e.msg, want1) == NULL || (want2 && strstr(e.msg, want2) == NULL))
		fail_msg("\"%s\" lacks \"%s\" or \"%s\"", e.msg, want1, want2 ? want2 : "");
}

static void test_combinations(void **state)
{
	struct pgha_err e = {{0}};
	struct etcd_opts none = {.endpoints = "http://127.0.0.1:2379"};
	assert_int_equal(etcd_check_tls(&none, names, &e), 0);

	struct etcd_opts cert_only = {.endpoints = "https://a:2379", .cert_file = "/x.pem"};
	refused(&cert_only, "[etcd] cert_file is set but [etcd] key_file is not", "HINT:");
	struct etcd_opts key_only = {.endpoints = "https://a:2379", .key_file = "/x.key", .cert_file = ""};
	refused(&key_only, "[etcd] key_file is set but [etcd] cert_file is not", NULL);

	/* One plain endpoint among https ones is enough to refuse (spaces as the list allows). */
	struct etcd_opts plain = {.endpoints = "https://a:2379, http://b:2379", .ca_file = "/ca.pem"};
	refused(&plain, "[etcd] ca_file is set but the etcd endpoint \"http://b:2379\" is not https://", "HINT:");

	struct etcd_opts missing = {.endpoints = "https://a:2379,https://b:2379", .ca_file = "/nonexistent/ca.pem"};
	refused(&missing, "[etcd] ca_file", "/nonexistent/ca.pem");
	struct etcd_opts missing_cert = {.endpoints = "https://a:2379", .cert_file = "/nonexistent/c.pem",
					 .key_file = "/nonexistent/c.key"};
	refused(&missing_cert, "[etcd] cert_file", "/nonexistent/c.pem");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_combinations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
