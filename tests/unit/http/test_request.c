/*
 * test_request.c — the request-head parser (src/http/request.c) on plain
 * buffers: what a well-formed head yields, which status and reason each
 * malformed one gets, where a head ends, and query-string decoding. The same
 * rules over real sockets are in test_httpd.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "http/request.h"

/* Parse a copy of text (the parser cuts its buffer); returns the status, 0 if good. */
static int parse(const char *text, struct http_head *hd, const char **why)
{
	static char buf[8192];
	size_t len = strlen(text);
	assert_true(len < sizeof(buf));
	memcpy(buf, text, len + 1);
	*hd = (struct http_head){0};
	*why = NULL;
	return http_parse_head(buf, len, hd, why);
}

static void test_head_end(void **state)
{
	static const char crlf[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
	assert_int_equal(http_head_end(crlf, strlen(crlf), 0), strlen(crlf) - 4);
	static const char lf[] = "GET / HTTP/1.1\nHost: x\n\nBODY";
	assert_int_equal(http_head_end(lf, strlen(lf), 0), strlen(lf) - 4);
	/* A bare LF line, then a CRLF blank line: still the end. */
	static const char mixed[] = "GET / HTTP/1.1\nHost: x\n\r\n";
	assert_int_equal(http_head_end(mixed, strlen(mixed), 0), strlen(mixed));
	/* Not there yet: no blank line, or only the first half of one. */
	assert_int_equal(http_head_end("GET / HTTP/1.1\r\nHost: x\r\n", 26, 0), 0);
	assert_int_equal(http_head_end("GET / HTTP/1.1\r\n\r", 17, 0), 0);
	/* A caller reading in pieces rescans from 2 bytes before the new ones. */
	static const char split[] = "GET / HTTP/1.1\r\n\r\n";
	size_t first = strlen(split) - 1;   /* the last \n has not arrived */
	assert_int_equal(http_head_end(split, first, 0), 0);
	assert_int_equal(http_head_end(split, strlen(split), first - 2), strlen(split));
}

static void test_parse_good(void **state)
{
	struct http_head hd;
	const char *why;
	assert_int_equal(parse("POST /a%20b+c?x=1&y=%41 HTTP/1.1\r\n"
			       "Host: h\r\n"
			       "content-length:  5 \r\n"
			       "Content-Length: 5\r\n"
			       "Expect: 100-Continue\r\n"
			       "Authorization:\tBearer t0ken \r\n"
			       "X-Tab: a\tb\r\n"
			       "\r\n", &hd, &why), 0);
	assert_string_equal(hd.method, "POST");
	assert_string_equal(hd.path, "/a b+c");   /* '+' is a space only in queries */
	assert_string_equal(hd.query, "x=1&y=%41"); /* the query stays raw */
	assert_int_equal(hd.body_len, 5);         /* the same length twice is fine */
	assert_true(hd.expect_continue);
	assert_true(hd.http11);
	assert_string_equal(hd.authorization, "Bearer t0ken");
	http_head_free(&hd);
	assert_null(hd.path);
	assert_null(hd.authorization);

	/* HAProxy's check: HTTP/1.0, no Host, no body. */
	assert_int_equal(parse("OPTIONS /master HTTP/1.0\n\n", &hd, &why), 0);
	assert_string_equal(hd.path, "/master");
	assert_string_equal(hd.query, "");
	assert_false(hd.http11);
	assert_int_equal(hd.body_len, 0);
	assert_null(hd.authorization);
	http_head_free(&hd);

	/* asterisk-form and absolute-form targets. */
	assert_int_equal(parse("OPTIONS * HTTP/1.1\r\n\r\n", &hd, &why), 0);
	assert_string_equal(hd.path, "*");
	http_head_free(&hd);
	assert_int_equal(parse("GET HTTPS://h:8008?lag=1 HTTP/1.1\r\n\r\n", &hd, &why), 0);
	assert_string_equal(hd.path, "/");
	assert_string_equal(hd.query, "lag=1");
	http_head_free(&hd);

	/* The largest body and the longest method still pass. */
	assert_int_equal(parse("PUT / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n", &hd, &why), 0);
	assert_int_equal(hd.body_len, HTTP_BODY_MAX);
	http_head_free(&hd);
	char line[128];
	snprintf(line, sizeof(line), "%.*s / HTTP/1.1\r\n\r\n", HTTP_METHOD_MAX,
		 "MKCALENDARMKCALENDARMKCALENDARMKCALENDAR");
	assert_int_equal(parse(line, &hd, &why), 0);
	assert_int_equal(strlen(hd.method), HTTP_METHOD_MAX);
	http_head_free(&hd);
}

/* Each refusal with its status and the reason the client reads. */
static void test_parse_bad(void **state)
{
	static const struct {
		const char *head;
		int status;
		const char *why;
	} cases[] = {
		{"\r\n\r\n", 400, "malformed request line"},
		{"GET /\r\n\r\n", 400, "malformed request line"},
		{"GET  / HTTP/1.1\r\n\r\n", 400, "malformed request line"},
		{" / HTTP/1.1\r\n\r\n", 400, "malformed method"},
		{"G@T / HTTP/1.1\r\n\r\n", 400, "malformed method"},
		{"MKCALENDARMKCALENDARMKCALENDARMKC / HTTP/1.1\r\n\r\n", 400, "malformed method"},
		{"GET / HTTP/1.10\r\n\r\n", 400, "malformed HTTP version"},
		{"GET / http/1.1\r\n\r\n", 400, "malformed HTTP version"},
		{"GET / HTTP/0.9\r\n\r\n", 505, "only HTTP/1.x is supported"},
		{"GET /a\tb HTTP/1.1\r\n\r\n", 400, "control character in the request target"},
		{"GET a/b HTTP/1.1\r\n\r\n", 400, "malformed request target"},
		{"GET /%4 HTTP/1.1\r\n\r\n", 400, "bad percent-encoding in the path"},
		{"GET /%00 HTTP/1.1\r\n\r\n", 400, "bad percent-encoding in the path"},
		{"GET / HTTP/1.1\r\n\tfolded\r\n\r\n", 400, "obsolete header line folding"},
		{"GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "malformed header line"},
		{"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header name"},
		{"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", 400, "control character in a header value"},
		{"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400, "malformed Content-Length"},
		{"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400, "malformed Content-Length"},
		{"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 01\r\ncontent-length: 2\r\n\r\n",
		 400, "conflicting Content-Length headers"},
		{"GET / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413, "request body larger than 64 KiB"},
		{"GET / HTTP/1.1\r\nAuthorization: a\r\nauthorization: a\r\n\r\n", 400,
		 "more than one Authorization header"},
		{"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 411,
		 "Transfer-Encoding is not supported; send Content-Length"},
		{"GET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
		 "both Transfer-Encoding and Content-Length"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_head hd;
		const char *why;
		int got = parse(cases[i].head, &hd, &why);
		if (got != cases[i].status || why == NULL || strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, got, why ? why : "(null)",
				 cases[i].status, cases[i].why);
		http_head_free(&hd);   /* whatever was parsed before the error */
	}
}

static void test_query_param(void **state)
{
	char out[32];
	assert_int_equal(http_query_param("lag=16MB", "lag", out, sizeof(out)), 0);
	assert_string_equal(out, "16MB");
	assert_int_equal(http_query_param("a=1&lag=2&lag=3", "lag", out, sizeof(out)), 0);
	assert_string_equal(out, "2");
	assert_int_equal(http_query_param("a=1&b=2", "lag", out, sizeof(out)), -1);
	assert_int_equal(http_query_param("", "lag", out, sizeof(out)), -1);
	assert_int_equal(http_query_param("lagx=1&xlag=2", "lag", out, sizeof(out)), -1);
	/* percent-decoding of values and keys, '+' is a space */
	assert_int_equal(http_query_param("x=a%20b%2Bc+d", "x", out, sizeof(out)), 0);
	assert_string_equal(out, "a b+c d");
	assert_int_equal(http_query_param("%6Cag=5", "lag", out, sizeof(out)), 0);
	assert_string_equal(out, "5");
	assert_int_equal(http_query_param("s=%e2%9c%93", "s", out, sizeof(out)), 0);
	assert_string_equal(out, "\xe2\x9c\x93");
	/* present without a value */
	assert_int_equal(http_query_param("lag", "lag", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(http_query_param("lag=&x=1", "lag", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* empty pairs are skipped */
	assert_int_equal(http_query_param("&&lag=7&", "lag", out, sizeof(out)), 0);
	assert_string_equal(out, "7");
	/* present but malformed or too long: -2, never "absent" */
	assert_int_equal(http_query_param("lag=%zz", "lag", out, sizeof(out)), -2);
	assert_int_equal(http_query_param("lag=%4", "lag", out, sizeof(out)), -2);
	assert_int_equal(http_query_param("lag=%", "lag", out, sizeof(out)), -2);
	assert_int_equal(http_query_param("lag=a%00b", "lag", out, sizeof(out)), -2);
	assert_int_equal(http_query_param("lag=0123456789", "lag", out, 10), -2);
	assert_int_equal(http_query_param("lag=012345678", "lag", out, 10), 0);
	assert_string_equal(out, "012345678");
	assert_int_equal(http_query_param(NULL, "lag", out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_end),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_query_param),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
