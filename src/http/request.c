/*
 * request.c — parsing an HTTP/1.1 request head (request line and header
 * fields) and percent-decoding. Pure functions on a buffer: no sockets, no
 * state between calls, so every rule can be tested (and fuzzed) alone.
 *
 * Strict where leniency has bitten other servers: "Name : value", folded
 * lines, control characters, two different Content-Lengths, Content-Length
 * next to Transfer-Encoding (request smuggling) and an encoded NUL are all
 * refused; bare LF line ends are accepted (RFC 9112 allows it).
 */
#include "http/request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/strbuf.h"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decode src[0..n) into out (NUL-terminated). '+' means a space only
 * in query strings (form encoding), never in paths. A bad escape, an encoded
 * NUL (it would silently truncate the string) or a result that does not fit
 * are errors.
 */
static int pct_decode(const char *src, size_t n, bool plus_is_space, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int hi = hex_value(src[i + 1]);
			int lo = hex_value(src[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

int http_query_param(const char *query, const char *name, char *out, size_t outlen)
{
	if (query == NULL || name == NULL)
		return -1;
	size_t name_len = strlen(name);
	const char *p = query;
	while (*p != '\0') {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		size_t key_len = eq ? (size_t)(eq - p) : len;
		/* Keys are compared decoded: "%6Cag=1" is "lag=1" for any client. */
		char key[128];
		if (key_len < sizeof(key) && pct_decode(p, key_len, true, key, sizeof(key)) == 0 &&
		    strlen(key) == name_len && memcmp(key, name, name_len) == 0) {
			const char *val = eq ? eq + 1 : p + len;
			size_t val_len = (size_t)(p + len - val);
			/* Present but unusable is not absent: callers must not fall back. */
			if (pct_decode(val, val_len, true, out, outlen) < 0)
				return -2;
			return 0;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	return -1;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 9110 token characters (method and header names). */
static bool is_tchar(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return true;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

size_t http_head_end(const char *buf, size_t len, size_t from)
{
	for (size_t i = from; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* The next line of the header block, CR stripped, NUL-terminated in place. */
static char *next_line(char **cursor, char *end)
{
	char *line = *cursor;
	if (line >= end)
		return NULL;
	char *nl = memchr(line, '\n', (size_t)(end - line));
	if (nl == NULL)
		return NULL;
	*nl = '\0';
	if (nl > line && nl[-1] == '\r')
		nl[-1] = '\0';
	*cursor = nl + 1;
	return line;
}

/* Split the request target into the decoded path and the raw query. */
static int parse_target(struct http_head *hd, const char *target, const char **why)
{
	bool absolute = false;
	/* absolute-form (what a proxy sends): keep only the path and query. */
	if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
		const char *auth = strstr(target, "://") + 3;
		target = auth + strcspn(auth, "/?");
		absolute = true;
	}
	const char *q = strchr(target, '?');
	size_t plen = q ? (size_t)(q - target) : strlen(target);
	hd->query = xstrdup(q ? q + 1 : "");
	if (absolute && plen == 0) {
		hd->path = xstrdup("/"); /* "http://host" or "http://host?x" */
		return 0;
	}
	if (target[0] != '/' && strcmp(target, "*") != 0) {
		*why = "malformed request target";
		return 400;
	}
	hd->path = xmalloc(plen + 1);
	if (pct_decode(target, plen, false, hd->path, plen + 1) < 0) {
		*why = "bad percent-encoding in the path";
		return 400;
	}
	return 0;
}

/* Parse "METHOD SP target SP HTTP/x.y". Returns 0 or the status to answer. */
static int parse_request_line(struct http_head *hd, char *line, const char **why)
{
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || strchr(sp2 + 1, ' ') != NULL) {
		*why = "malformed request line";
		return 400;
	}
	*sp1 = '\0';
	*sp2 = '\0';
	const char *method = line, *target = sp1 + 1, *version = sp2 + 1;

	size_t mlen = strlen(method);
	if (mlen == 0 || mlen > HTTP_METHOD_MAX) {
		*why = "malformed method";
		return 400;
	}
	for (size_t i = 0; i < mlen; i++) {
		if (!is_tchar((unsigned char)method[i])) {
			*why = "malformed method";
			return 400;
		}
	}
	memcpy(hd->method, method, mlen + 1);

	if (strncmp(version, "HTTP/", 5) != 0 || !is_digit(version[5]) || version[6] != '.' ||
	    !is_digit(version[7]) || version[8] != '\0') {
		*why = "malformed HTTP version";
		return 400;
	}
	if (version[5] != '1') {
		*why = "only HTTP/1.x is supported";
		return 505;
	}
	hd->http11 = version[7] != '0';

	for (const char *t = target; *t; t++) {
		if (is_ctl((unsigned char)*t)) {
			*why = "control character in the request target";
			return 400;
		}
	}
	return parse_target(hd, target, why);
}

static int parse_content_length(struct http_head *hd, const char *value, bool *seen,
				const char **why)
{
	size_t n = strlen(value);
	if (n == 0 || strspn(value, "0123456789") != n) {
		*why = "malformed Content-Length";
		return 400;
	}
	/* More than ten digits is over the limit anyway; strtoull cannot overflow. */
	size_t len = n > 10 ? SIZE_MAX : (size_t)strtoull(value, NULL, 10);
	if (*seen && len != hd->body_len) {
		*why = "conflicting Content-Length headers";
		return 400;
	}
	*seen = true;
	hd->body_len = len;
	if (len > HTTP_BODY_MAX) {
		*why = "request body larger than 64 KiB";
		return 413;
	}
	return 0;
}

/* One "Name: value" line. Returns 0 or the status to answer. */
static int parse_header(struct http_head *hd, char *line, bool *have_cl, bool *have_te,
			const char **why)
{
	if (line[0] == ' ' || line[0] == '\t') {
		*why = "obsolete header line folding";
		return 400;
	}
	char *colon = strchr(line, ':');
	if (colon == NULL || colon == line) {
		*why = "malformed header line";
		return 400;
	}
	for (char *p = line; p < colon; p++) {
		/* Also rejects "Name : value", a classic request-smuggling trick. */
		if (!is_tchar((unsigned char)*p)) {
			*why = "malformed header name";
			return 400;
		}
	}
	*colon = '\0';
	char *value = colon + 1;
	value += strspn(value, " \t");
	size_t vlen = strlen(value);
	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		value[--vlen] = '\0';
	for (size_t i = 0; i < vlen; i++) {
		if (is_ctl((unsigned char)value[i]) && value[i] != '\t') {
			*why = "control character in a header value";
			return 400;
		}
	}

	if (strcasecmp(line, "Content-Length") == 0)
		return parse_content_length(hd, value, have_cl, why);
	if (strcasecmp(line, "Transfer-Encoding") == 0)
		*have_te = true;
	else if (strcasecmp(line, "Expect") == 0 && strcasecmp(value, "100-continue") == 0)
		hd->expect_continue = true;
	else if (strcasecmp(line, "Authorization") == 0) {
		if (hd->authorization != NULL) {
			*why = "more than one Authorization header";
			return 400;
		}
		hd->authorization = xstrdup(value);
	}
	return 0;
}

int http_parse_head(char *buf, size_t len, struct http_head *hd, const char **why)
{
	char *cursor = buf;
	char *end = buf + len;
	char *line = next_line(&cursor, end);
	if (line == NULL) {
		*why = "malformed request line";
		return 400;
	}
	int rc = parse_request_line(hd, line, why);
	if (rc != 0)
		return rc;
	bool have_cl = false, have_te = false;
	while ((line = next_line(&cursor, end)) != NULL && line[0] != '\0') {
		rc = parse_header(hd, line, &have_cl, &have_te, why);
		if (rc != 0)
			return rc;
	}
	/*
	 * Chunked bodies are not worth their bugs here (nothing in pgha sends
	 * them), and Transfer-Encoding next to Content-Length is how requests
	 * get smuggled past proxies.
	 */
	if (have_te && have_cl) {
		*why = "both Transfer-Encoding and Content-Length";
		return 400;
	}
	if (have_te) {
		*why = "Transfer-Encoding is not supported; send Content-Length";
		return 411;
	}
	return 0;
}

void http_head_free(struct http_head *hd)
{
	free(hd->path);
	free(hd->query);
	if (hd->authorization != NULL) {
		explicit_bzero(hd->authorization, strlen(hd->authorization));
		free(hd->authorization);
	}
	*hd = (struct http_head){0};
}
