/*
 * test_server_tls.c — the SSLRequest step of a server connection
 * (proxy/server_tls.c), over a socketpair standing for PostgreSQL: the
 * request goes before the startup packet, which waits; 'N' goes on in plain
 * text under prefer and fails require; an 'S' or 'N' followed by more bytes
 * before the handshake or the startup packet is refused (CVE-2021-23222);
 * anything else is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/ssl.h>

#include "proxy/objects.h"
#include "proxy/server_tls.h"

static struct proxy px;
static struct pool pool;
static struct server srv;
static int peer = -1;

static const char startup[] = "STARTUP-PACKET";

/* A server connecting under mode: its socket is one end of a socketpair, peer the other. */
static void connecting(enum server_sslmode mode)
{
	memset(&px, 0, sizeof(px));
	memset(&pool, 0, sizeof(pool));
	memset(&srv, 0, sizeof(srv));
	px.epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(px.epfd >= 0);
	px.server_tls_mode = mode;
	px.server_tls_ctx = mode == SSLMODE_DISABLE ? NULL : SSL_CTX_new(TLS_client_method());
	pool.px = &px;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	srv.px = &px;
	srv.pool = &pool;
	srv.tag.kind = FD_SERVER;
	srv.tag.fd = sv[0];
	peer = sv[1];
	snprintf(srv.target.host, sizeof(srv.target.host), "127.0.0.1");
	srv.target.port = 5432;
	sb_append(&srv.out, startup, sizeof(startup) - 1);
	server_tls_request(&srv);
}

static int teardown(void **state)
{
	server_tls_end(&srv);
	sb_free(&srv.out);
	if (srv.tag.fd >= 0)
		close(srv.tag.fd);
	if (peer >= 0)
		close(peer);
	peer = -1;
	if (px.server_tls_ctx != NULL)
		SSL_CTX_free(px.server_tls_ctx);
	close(px.epfd);
	return 0;
}

/* The SSLRequest reaches the peer (the first step, on EPOLLOUT), nothing else. */
static void request_sent(void)
{
	char why[512] = "";
	assert_int_equal(srv.tls_phase, SERVER_TLS_ASKED);
	assert_int_equal(server_tls_step(&srv, EPOLLOUT, why, sizeof(why)), 0);
	uint8_t got[64];
	ssize_t n = recv(peer, got, sizeof(got), 0);
	static const uint8_t ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	assert_int_equal(n, 8);
	assert_memory_equal(got, ssl_request, 8);
	/* No answer yet: it waits. */
	assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), 0);
}

static void answer(const char *bytes, size_t n)
{
	assert_int_equal(send(peer, bytes, n, 0), (ssize_t)n);
}

static void test_disable_sends_the_startup_packet_alone(void **state)
{
	connecting(SSLMODE_DISABLE);
	assert_int_equal(srv.tls_phase, SERVER_TLS_DONE);
	assert_null(srv.ssl);
	assert_int_equal(srv.out.len, sizeof(startup) - 1);
	assert_memory_equal(srv.out.data, startup, sizeof(startup) - 1);
}

static void test_prefer_goes_on_in_plain_text_after_n(void **state)
{
	connecting(SSLMODE_PREFER);
	request_sent();
	answer("N", 1);
	char why[512] = "";
	assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), 1);
	assert_int_equal(srv.tls_phase, SERVER_TLS_DONE);
	assert_null(srv.ssl);   /* plain text from here: server_read/server_send go to the socket */
	char got[64];
	assert_int_equal(recv(peer, got, sizeof(got), 0), (ssize_t)sizeof(startup) - 1);
	assert_memory_equal(got, startup, sizeof(startup) - 1);
}

static void test_require_refuses_n(void **state)
{
	for (enum server_sslmode m = SSLMODE_REQUIRE; m <= SSLMODE_VERIFY_FULL; m++) {
		connecting(m);
		request_sent();
		answer("N", 1);
		char why[512] = "";
		assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "127.0.0.1:5432 does not accept TLS and server_sslmode = "));
		assert_non_null(strstr(why, proxy_sslmode_name(m)));
		assert_non_null(strstr(why, "\nHINT: "));
		/* The startup packet (the user's name) never went out. */
		char got[64];
		assert_true(recv(peer, got, sizeof(got), 0) < 0);
		teardown(state);
	}
	connecting(SSLMODE_REQUIRE);
}

static void test_bytes_after_s_are_refused(void **state)
{
	connecting(SSLMODE_VERIFY_FULL);
	request_sent();
	/* A man in the middle answering for the server, with plain text the proxy would take as TLS. */
	answer("SZ\0\0\0\5I", 7);
	char why[512] = "";
	assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "sent data after its 'S' to the SSLRequest"));
	assert_non_null(strstr(why, "CVE-2021-23222"));
	teardown(state);
	/* After 'N' too: the server's answer to a startup packet not sent yet. */
	connecting(SSLMODE_PREFER);
	request_sent();
	answer("NR\0\0\0\10\0\0\0\0", 10);
	assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "sent data after its 'N' to the SSLRequest, before the startup packet"));
}

static void test_s_starts_the_handshake(void **state)
{
	connecting(SSLMODE_REQUIRE);
	request_sent();
	answer("S", 1);
	char why[512] = "";
	/* The ClientHello goes out; the answer is awaited. */
	assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), 0);
	assert_int_equal(srv.tls_phase, SERVER_TLS_HANDSHAKE);
	uint8_t hello[5];
	assert_int_equal(recv(peer, hello, sizeof(hello), 0), 5);
	assert_int_equal(hello[0], 22);   /* a TLS handshake record */
	/* A peer that closes instead: the reason names the server and the mode. */
	close(peer);
	peer = -1;
	assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "127.0.0.1:5432 closed the connection during the TLS handshake (server_sslmode = require"));
}

static void test_other_answers_are_refused(void **state)
{
	connecting(SSLMODE_PREFER);
	request_sent();
	answer("E", 1);
	char why[512] = "";
	assert_int_equal(server_tls_step(&srv, EPOLLIN, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "answered the SSLRequest with 'E'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_disable_sends_the_startup_packet_alone, teardown),
		cmocka_unit_test_teardown(test_prefer_goes_on_in_plain_text_after_n, teardown),
		cmocka_unit_test_teardown(test_require_refuses_n, teardown),
		cmocka_unit_test_teardown(test_bytes_after_s_are_refused, teardown),
		cmocka_unit_test_teardown(test_s_starts_the_handshake, teardown),
		cmocka_unit_test_teardown(test_other_answers_are_refused, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
