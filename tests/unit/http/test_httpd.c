/*
 * test_httpd.c — the HTTP server over real sockets on 127.0.0.1, driven by
 * plain sockets from the test (http_client.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/httpd.h"
#include "http_client.h"

static struct httpd *srv;   /* shared server for most tests */
static int srv_port;

/* ----------------------------------------------------------- test handler */

/*
 * Echo "METHOD PATH QUERY BODY". "/big" answers 4 MiB (to keep the server
 * writing while a client resets), "/code/NNN" answers NNN, DELETE gets 405.
 */
static void echo_handler(void *arg, const struct http_request *req, struct http_response *resp)
{
	if (strcmp(req->method, "DELETE") == 0) {
		resp->status = 405;
		resp->allow = "GET, HEAD, OPTIONS, POST";
		sb_puts(&resp->body, "{\"error\":\"method not allowed\"}");
		return;
	}
	if (strcmp(req->path, "/big") == 0) {
		sb_reserve(&resp->body, 4 << 20);
		memset(resp->body.data, 'x', 4 << 20);
		resp->body.len = 4 << 20;
		resp->body.data[resp->body.len] = '\0';
		return;
	}
	if (strncmp(req->path, "/code/", 6) == 0)
		resp->status = atoi(req->path + 6);
	resp->content_type = "text/plain";
	sb_printf(&resp->body, "%s %s %s %zu:%s", req->method, req->path, req->query,
		  req->body_len, req->body);
	if (strcmp(req->path, "/auth") == 0)
		sb_printf(&resp->body, " auth=[%s]", req->authorization ? req->authorization : "(none)");
}

/* ------------------------------------------------------------ socket bits */

static int connect_local(void)
{
	int fd = connect_to(AF_INET, srv_port);
	assert_true(fd >= 0);
	return fd;
}

static int exchange(const char *req, struct strbuf *out)
{
	return exchange_on(srv_port, req, strlen(req), out);
}

/* ----------------------------------------------------------------- tests */

static void test_port_bound(void **state)
{
	assert_true(srv_port > 0 && srv_port <= 65535);
}

static void test_get(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /hello?x=1&y=%41 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
	const char *s = sb_str(&r);
	assert_non_null(strcasestr(s, "\r\nConnection: close\r\n"));
	assert_non_null(strcasestr(s, "\r\nContent-Type: text/plain\r\n"));
	assert_string_equal(body_of(s), "GET /hello x=1&y=%41 0:");
	assert_int_equal(content_length_of(s), strlen(body_of(s)));
	sb_free(&r);
}

static void test_authorization_header(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /auth HTTP/1.1\r\nauthorization:  Bearer s3cret \r\n\r\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /auth  0: auth=[Bearer s3cret]");
	sb_reset(&r);
	assert_int_equal(exchange("GET /auth HTTP/1.1\r\n\r\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /auth  0: auth=[(none)]");
	sb_reset(&r);
	/* Two of them: which one would count? Neither. */
	assert_int_equal(exchange("GET /auth HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", &r), 400);
	sb_free(&r);
}

static void test_head(void **state)
{
	struct strbuf get = STRBUF_INIT, head = STRBUF_INIT;
	assert_int_equal(exchange("GET /same HTTP/1.1\r\n\r\n", &get), 200);
	assert_int_equal(exchange("HEAD /same HTTP/1.1\r\n\r\n", &head), 200);
	/* Same length announced, no body sent. */
	assert_string_equal(body_of(sb_str(&head)), "");
	assert_int_equal(content_length_of(sb_str(&head)),
			 content_length_of(sb_str(&get)) + 1); /* "HEAD" vs "GET" */
	sb_free(&get);
	sb_free(&head);
}

static void test_options(void **state)
{
	/* What HAProxy sends for "option httpchk OPTIONS /master": HTTP/1.0, no Host. */
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("OPTIONS /master HTTP/1.0\r\n\r\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "OPTIONS /master  0:");
	sb_free(&r);
}

static void test_bare_lf(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /lf HTTP/1.1\nHost: t\n\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /lf  0:");
	sb_free(&r);
}

static void test_split_request(void **state)
{
	static const char *const parts[] = {"GE", "T /sp", "lit?a=b HTTP/1.1\r", "\nHost: x\r\n\r",
					    "\n"};
	int fd = connect_local();
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		send_str(fd, parts[i]);
		sleep_ms(30);
	}
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /split a=b 0:");
	close(fd);
	sb_free(&r);
}

static void test_post_body(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("POST /p HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", &r),
			 200);
	assert_string_equal(body_of(sb_str(&r)), "POST /p  11:hello world");
	sb_free(&r);

	/* Body split from the headers and across writes, pipelined junk ignored. */
	int fd = connect_local();
	send_str(fd, "PUT /q HTTP/1.1\r\ncontent-length:  5 \r\n\r\nab");
	sleep_ms(30);
	send_str(fd, "cdeJUNK");
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	assert_string_equal(body_of(sb_str(&r)), "PUT /q  5:abcde");
	close(fd);
	sb_free(&r);
}

static void test_expect_continue(void **state)
{
	struct strbuf r = STRBUF_INIT;
	int fd = connect_local();
	send_str(fd, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
	assert_int_equal(read_until(fd, &r, "\r\n\r\n", IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 100);
	sb_reset(&r);
	send_str(fd, "xyz");
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 200);
	assert_string_equal(body_of(sb_str(&r)), "POST /e  3:xyz");
	close(fd);

	/* No 1xx for an HTTP/1.0 client: the first thing it hears is the answer. */
	sb_reset(&r);
	fd = connect_local();
	send_str(fd, "POST /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
	sleep_ms(50);
	send_str(fd, "ok");
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 200);
	assert_string_equal(body_of(sb_str(&r)), "POST /e  2:ok");
	close(fd);
	sb_free(&r);
}

static void test_body_too_large(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", &r), 413);
	sb_reset(&r);
	/* Too many digits to even convert: over the limit, not malformed. */
	assert_int_equal(exchange("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n"
				  "\r\n", &r), 413);
	sb_free(&r);
}

static void test_oversized_header(void **state)
{
	struct strbuf req = STRBUF_INIT, r = STRBUF_INIT;
	sb_puts(&req, "GET / HTTP/1.1\r\nX-Big: ");
	for (int i = 0; i < 20 * 1024; i++)
		sb_puts(&req, "a");
	sb_puts(&req, "\r\n\r\n");
	int code = exchange_on(srv_port, req.data, req.len, &r);
	if (code != 431 && code != 413 && code != 400)
		fail_msg("oversized header answered %d", code);

	/* Headers that never end, over the limit: refused without waiting for more. */
	sb_reset(&r);
	int fd = connect_local();
	send_all(fd, req.data, 17 * 1024);
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 431);
	close(fd);
	sb_free(&req);
	sb_free(&r);
}

static void test_bad_requests(void **state)
{
	static const struct {
		const char *req;
		int want;
	} cases[] = {
		{"HELLO\r\n\r\n", 400},
		{"\x01\x02\x03 / HTTP/1.1\r\n\r\n", 400},
		{"GET / HTTP/1.1 extra\r\n\r\n", 400},
		{"GET  / HTTP/1.1\r\n\r\n", 400},
		{"GET nopath HTTP/1.1\r\n\r\n", 400},
		{"GET ?x=1 HTTP/1.1\r\n\r\n", 400},
		{"GET *x HTTP/1.1\r\n\r\n", 400},
		{"GET / HTTP/1.1x\r\n\r\n", 400},
		{"GET / FTP/1.1\r\n\r\n", 400},
		{"GET / HTTP/2.0\r\n\r\n", 505},
		{"GET /a\x7f HTTP/1.1\r\n\r\n", 400},
		{"GET /%zz HTTP/1.1\r\n\r\n", 400},
		{"GET /%00 HTTP/1.1\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		 400},
		{"\r\n\r\n", 400},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf r = STRBUF_INIT;
		int got = exchange(cases[i].req, &r);
		if (got != cases[i].want)
			fail_msg("case %zu: got %d, want %d: %s", i, got, cases[i].want, sb_str(&r));
		assert_non_null(strcasestr(sb_str(&r), "\r\nConnection: close\r\n"));
		assert_non_null(strstr(body_of(sb_str(&r)), "\"error\""));
		sb_free(&r);
	}
}

static void test_incomplete_then_eof(void **state)
{
	/* The client half-closes before finishing: it still hears 400. */
	struct strbuf r = STRBUF_INIT;
	int fd = connect_local();
	send_str(fd, "GET /x HTTP/1.1\r\nHost");
	shutdown(fd, SHUT_WR);
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 400);
	close(fd);
	sb_free(&r);
}

static void test_percent_decoded_path_and_target_forms(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /a%20b+c?q=%20 HTTP/1.1\r\n\r\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /a b+c q=%20 0:");
	sb_reset(&r);
	assert_int_equal(exchange("GET http://h:8008/abs?z=1 HTTP/1.1\r\n\r\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /abs z=1 0:");
	sb_reset(&r);
	assert_int_equal(exchange("GET http://h:8008 HTTP/1.1\r\n\r\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /  0:");
	sb_free(&r);
}

static void test_handler_status_and_405(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /code/503 HTTP/1.1\r\n\r\n", &r), 503);
	assert_non_null(strstr(sb_str(&r), "HTTP/1.1 503 Service Unavailable\r\n"));
	sb_reset(&r);
	assert_int_equal(exchange("GET /code/42 HTTP/1.1\r\n\r\n", &r), 500);
	sb_reset(&r);
	assert_int_equal(exchange("DELETE /x HTTP/1.1\r\n\r\n", &r), 405);
	assert_non_null(strstr(sb_str(&r), "\r\nAllow: GET, HEAD, OPTIONS, POST\r\n"));
	sb_free(&r);
}

/*
 * Two requests in one write: HTTP/1.1 allows pipelining, and a server that
 * closes after each answer must answer the first one only, once.
 */
static void test_pipelined_requests(void **state)
{
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n", &r), 200);
	assert_string_equal(body_of(sb_str(&r)), "GET /one  0:");
	assert_null(strstr(sb_str(&r) + 1, "HTTP/1.1 "));
	sb_free(&r);
}

/* The head limit is 16 KiB including the blank line: exactly that passes. */
static void test_header_limit_edge(void **state)
{
	static const char start[] = "GET /edge HTTP/1.1\r\nX-Pad: ";
	static const char end[] = "\r\n\r\n";
	for (int over = 0; over <= 1; over++) {
		struct strbuf req = STRBUF_INIT, r = STRBUF_INIT;
		sb_puts(&req, start);
		while (req.len < 16 * 1024 - (sizeof(end) - 1) + (size_t)over)
			sb_puts(&req, "a");
		sb_puts(&req, end);
		assert_int_equal(exchange_on(srv_port, req.data, req.len, &r), over ? 431 : 200);
		sb_free(&req);
		sb_free(&r);
	}
}

/*
 * Slowloris: a client that keeps sending, one byte at a time, never finishes
 * its head. The 5 s deadline counts from accept, not from the last byte, so it
 * is told 408 on time however busy it looks.
 */
static void test_drip_feed_gets_408(void **state)
{
	static const char drip[] = "GET /drip HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	int64_t t0 = now_ms();
	int fd = connect_local();
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t i = 0;
	while (poll(&p, 1, 200) == 0 && now_ms() - t0 < 8000 && i < sizeof(drip) - 1) {
		ssize_t n = send(fd, drip + i++, 1, MSG_NOSIGNAL);
		assert_int_equal(n, 1);
	}
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	int64_t waited = now_ms() - t0;
	assert_int_equal(status_of(sb_str(&r)), 408);
	assert_true(waited >= 4500 && waited < 6500);
	assert_true(i >= 20);   /* it kept sending until then */
	close(fd);
	sb_free(&r);
}

/*
 * Two slow clients (one silent, one stalled mid-request) must not delay a
 * fast one, and both get 408 after the 5 s request deadline.
 */
static void test_slow_clients(void **state)
{
	int64_t t0 = now_ms();
	int idle = connect_local();
	int stalled = connect_local();
	send_str(stalled, "GET /slow HTTP/1.1\r\nHost: x\r\n");

	int64_t t1 = now_ms();
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /fast HTTP/1.1\r\n\r\n", &r), 200);
	assert_true(now_ms() - t1 < 1000);

	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	assert_int_equal(read_until_eof(idle, &a, 8000), 0);
	assert_int_equal(read_until_eof(stalled, &b, 8000), 0);
	int64_t waited = now_ms() - t0;
	assert_int_equal(status_of(sb_str(&a)), 408);
	assert_int_equal(status_of(sb_str(&b)), 408);
	assert_true(waited >= 4500 && waited < 8000);
	close(idle);
	close(stalled);
	sb_free(&r);
	sb_free(&a);
	sb_free(&b);
}

/*
 * A client that resets while the server is still writing 4 MiB: the server
 * gets EPIPE/ECONNRESET, not SIGPIPE, and keeps serving.
 */
static void test_client_reset_mid_answer(void **state)
{
	for (int i = 0; i < 3; i++) {
		int fd = connect_local();
		send_str(fd, "GET /big HTTP/1.1\r\n\r\n");
		struct strbuf r = STRBUF_INIT;
		assert_int_equal(read_until(fd, &r, "\r\n\r\n", IO_TIMEOUT_MS), 0);
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd); /* RST */
		sb_free(&r);
	}
	sleep_ms(50);
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(exchange("GET /still-alive HTTP/1.1\r\n\r\n", &r), 200);
	sb_free(&r);
}

/*
 * More slow clients than the connection table holds (each sent the first byte
 * of a request head, as a byte-a-second drip does): complete requests are
 * still answered, quickly and every time, and the clients dropped to make room
 * are the oldest incomplete ones (503), never the complete request.
 */
static void test_slow_flood_keeps_serving(void **state)
{
	enum { N = 1100 };   /* over the table size (1024) */
	int *fds = calloc(N, sizeof(*fds));
	assert_non_null(fds);
	for (int i = 0; i < N; i++) {
		fds[i] = connect_local();
		send_str(fds[i], "G");
	}
	struct strbuf r = STRBUF_INIT;
	for (int k = 0; k < 5; k++) {
		sb_reset(&r);
		int64_t t = now_ms();
		assert_int_equal(exchange("GET /fast HTTP/1.1\r\n\r\n", &r), 200);
		int64_t took = now_ms() - t;
		if (took >= 1000)
			fail_msg("a complete request took %lld ms during the flood", (long long)took);
	}
	/* The oldest slow client made room: told 503, then closed. */
	sb_reset(&r);
	assert_int_equal(read_until_eof(fds[0], &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 503);
	/* The newest is still waiting for the rest of its request. */
	struct pollfd p = {.fd = fds[N - 1], .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	free(fds);

	/* The slots free up once the server sees the closes. */
	int code = 0;
	for (int64_t end = now_ms() + 3000; now_ms() < end && code != 200;) {
		sb_reset(&r);
		int fd = connect_local();
		send_str(fd, "GET /after HTTP/1.1\r\n\r\n");
		if (read_until_eof(fd, &r, IO_TIMEOUT_MS) == 0)
			code = status_of(sb_str(&r));
		close(fd);
		if (code != 200)
			sleep_ms(50);
	}
	assert_int_equal(code, 200);
	sb_free(&r);
}

static void test_stop_is_prompt(void **state)
{
	struct pgha_err e;
	struct httpd *h = httpd_start("127.0.0.1:0", echo_handler, NULL, &e);
	assert_non_null(h);
	int port = httpd_port(h);
	int idle = connect_to(AF_INET, port);
	int stalled = connect_to(AF_INET, port);
	assert_true(idle >= 0 && stalled >= 0);
	send_str(stalled, "GET / HTTP/1.1\r\n");
	sleep_ms(50);
	int64_t t0 = now_ms();
	httpd_stop(h);
	assert_true(now_ms() - t0 < 500);
	/* The server closed its side of both connections. */
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(read_until_eof(idle, &r, 1000) == -1, 0);
	assert_int_equal(read_until_eof(stalled, &r, 1000) == -1, 0);
	close(idle);
	close(stalled);
	/* And nobody listens any more. */
	assert_int_equal(connect_to(AF_INET, port), -1);
	sb_free(&r);
	httpd_stop(NULL);
}

static void test_ipv6(void **state)
{
	struct pgha_err e;
	struct httpd *h = httpd_start("[::1]:0", echo_handler, NULL, &e);
	if (h == NULL) {
		print_message("no IPv6 loopback here (%s), skipping\n", e.msg);
		skip();
	}
	int fd = connect_to(AF_INET6, httpd_port(h));
	assert_true(fd >= 0);
	send_str(fd, "GET /v6 HTTP/1.1\r\n\r\n");
	struct strbuf r = STRBUF_INIT;
	assert_int_equal(read_until_eof(fd, &r, IO_TIMEOUT_MS), 0);
	assert_int_equal(status_of(sb_str(&r)), 200);
	close(fd);
	sb_free(&r);
	httpd_stop(h);
}

static void test_bad_listen(void **state)
{
	static const char *const bad[] = {"nonsense", "127.0.0.1:99999", "127.0.0.1:", ":8008",
					  "[::1]8008", "127.0.0.1:80a", "no.such.host.invalid:0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pgha_err e = {{0}};
		struct httpd *h = httpd_start(bad[i], echo_handler, NULL, &e);
		if (h != NULL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_true(e.msg[0] != '\0');
	}
	/* SO_REUSEADDR does not let two servers share a listening port. */
	char addr[64];
	struct pgha_err e = {{0}};
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv_port);
	assert_null(httpd_start(addr, echo_handler, NULL, &e));
	assert_non_null(strstr(e.msg, "127.0.0.1"));
}

/* ------------------------------------------------------- pure helpers */

static void test_status_text(void **state)
{
	assert_string_equal(http_status_text(200), "OK");
	assert_string_equal(http_status_text(503), "Service Unavailable");
	assert_string_equal(http_status_text(408), "Request Timeout");
	assert_string_equal(http_status_text(799), "Unknown");
}

/* ------------------------------------------------------------------ main */

static int group_setup(void **state)
{
	struct pgha_err e;
	srv = httpd_start("127.0.0.1:0", echo_handler, NULL, &e);
	if (srv == NULL) {
		fprintf(stderr, "httpd_start: %s\n", e.msg);
		return -1;
	}
	srv_port = httpd_port(srv);
	return 0;
}

static int group_teardown(void **state)
{
	httpd_stop(srv);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_bound),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_authorization_header),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_split_request),
		cmocka_unit_test(test_post_body),
		cmocka_unit_test(test_expect_continue),
		cmocka_unit_test(test_body_too_large),
		cmocka_unit_test(test_oversized_header),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_incomplete_then_eof),
		cmocka_unit_test(test_percent_decoded_path_and_target_forms),
		cmocka_unit_test(test_handler_status_and_405),
		cmocka_unit_test(test_pipelined_requests),
		cmocka_unit_test(test_header_limit_edge),
		cmocka_unit_test(test_slow_clients),
		cmocka_unit_test(test_drip_feed_gets_408),
		cmocka_unit_test(test_client_reset_mid_answer),
		cmocka_unit_test(test_slow_flood_keeps_serving),
		cmocka_unit_test(test_stop_is_prompt),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_bad_listen),
		cmocka_unit_test(test_status_text),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
