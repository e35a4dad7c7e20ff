/*
 * request.h — an HTTP/1.1 request as a handler sees it, and the parser of
 * its head (request line + header fields), which the server runs on the bytes
 * it collected. The parser does no I/O: it takes a buffer and fills a
 * struct http_head, or names the status to answer and why.
 */
#ifndef PGHA_HTTP_REQUEST_H
#define PGHA_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct http_request {
	const char *method;   /* "GET", "HEAD", "OPTIONS", "POST", ... */
	const char *path;     /* decoded path without the query, e.g. "/replica" */
	const char *query;    /* raw query string without '?', "" if none */
	const char *body;     /* NUL-terminated, "" if none */
	size_t body_len;
	const char *authorization; /* the Authorization header's value, NULL if none */
};

/*
 * Value of a query parameter (percent-decoded, '+' is a space) into out; -1 if
 * absent, -2 if present but malformed (bad %-escape, %00) or longer than
 * outlen - 1. "lag" and "lag=" are present with an empty value. The first
 * occurrence wins.
 */
int http_query_param(const char *query, const char *name, char *out, size_t outlen);

enum {
	HTTP_METHOD_MAX = 32,
	HTTP_BODY_MAX = 64 * 1024,   /* a larger Content-Length is answered 413 */
};

/* A parsed request head. The strings belong to it: http_head_free(). */
struct http_head {
	char method[HTTP_METHOD_MAX + 1];
	char *path;             /* decoded */
	char *query;            /* raw, "" if none */
	char *authorization;    /* the Authorization header's value, NULL if none */
	size_t body_len;        /* Content-Length, 0 if none */
	bool expect_continue;   /* "Expect: 100-continue" */
	bool http11;            /* HTTP/1.1 or a later minor: 1xx answers are allowed */
};

/*
 * End of the head in buf[0..len): the offset just after its blank line, 0 if
 * it has not arrived yet. Both "\r\n\r\n" and "\n\n" end it. Scanning starts
 * at from, so a caller that reads in pieces rescans only the new bytes (and
 * the 2 before them, where a terminator may have started).
 */
size_t http_head_end(const char *buf, size_t len, size_t from);

/*
 * Parse the head buf[0..len) (up to and including its blank line; the buffer
 * is cut into strings in place). Returns 0, or the status to answer (400, 411
 * chunked body, 413 body over HTTP_BODY_MAX, 505 not HTTP/1.x) with *why
 * saying what was wrong. hd must start zeroed; free it with http_head_free()
 * either way.
 */
int http_parse_head(char *buf, size_t len, struct http_head *hd, const char **why);

/* Free the strings (the Authorization value is wiped first); hd is zeroed. */
void http_head_free(struct http_head *hd);

#endif
