/*
 * http_client.h — a plain-socket HTTP client for the tests of servers built
 * on src/http (no HTTP client library to be lenient for us). The server closes
 * every connection, so an answer is everything up to EOF. Every wait is
 * bounded: reads use poll() against a deadline. Include it after <cmocka.h>.
 */
#ifndef PGHA_TESTS_HTTP_CLIENT_H
#define PGHA_TESTS_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

#define IO_TIMEOUT_MS 3000

static inline int connect_to(int family, int port)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct timeval tv = {.tv_sec = 3};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int rc;
	if (family == AF_INET6) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
		a.sin6_addr = in6addr_loopback;
		rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (rc < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline void send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		assert_true(n > 0);
		data += n;
		len -= (size_t)n;
	}
}

static inline void send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/*
 * Read until EOF (the server closes every connection) or the deadline.
 * Returns 0 on EOF, -1 on timeout, -2 on a reset.
 */
static inline int read_until_eof(int fd, struct strbuf *out, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		char buf[8192];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0)
			return 0;
		if (n < 0)
			return errno == EINTR ? 0 : -2;
		sb_append(out, buf, (size_t)n);
	}
}

/* Read exactly until the buffer contains needle (bounded). */
static inline int read_until(int fd, struct strbuf *out, const char *needle, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	while (strstr(sb_str(out), needle) == NULL) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			return -1;
		char buf[1024];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return -1;
		sb_append(out, buf, (size_t)n);
	}
	return 0;
}

static inline int status_of(const char *resp)
{
	int code = 0;
	if (sscanf(resp, "HTTP/1.1 %d ", &code) != 1)
		return -1;
	return code;
}

static inline const char *body_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");
	return p ? p + 4 : NULL;
}

static inline long content_length_of(const char *resp)
{
	const char *p = strcasestr(resp, "\r\nContent-Length:");
	return p ? strtol(p + 17, NULL, 10) : -1;
}

/* One request on a fresh connection; the whole answer in *out. Returns the status. */
static inline int exchange_on(int port, const char *req, size_t len, struct strbuf *out)
{
	int fd = connect_to(AF_INET, port);
	assert_true(fd >= 0);
	send_all(fd, req, len);
	int rc = read_until_eof(fd, out, IO_TIMEOUT_MS);
	close(fd);
	if (rc != 0)
		fail_msg("no complete answer to %.40s (rc %d): %s", req, rc, sb_str(out));
	return status_of(sb_str(out));
}

#endif
