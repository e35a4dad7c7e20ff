/*
 * test_httpd_tls.c — the HTTP server over TLS (httpd_start_tls) on 127.0.0.1,
 * called by the agents' own client (common/httpc.h) the way members call each
 * other: verified against the CA with the host name, a client certificate
 * presented. Refused: a name the certificate does not hold (wrong host),
 * another CA, no client certificate where one is demanded, an http:// URL
 * while this side serves HTTPS (never connected). Plain HTTP to the TLS port is dropped
 * without an answer and the server goes on; a new context (reload) serves the
 * connections after it.
 *
 * Certificates come from the openssl command (EC P-256), as an operator would
 * make them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/httpc.h"
#include "common/tlsfile.h"
#include "http/httpd.h"
#include "http_client.h"

static char dir[] = "/tmp/pgha-test-httpd-tls-XXXXXX";
static char paths[16][1200];
static int npaths;

static const char *path(const char *name)
{
	char *p = paths[npaths++ % 16];
	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[4200];
	snprintf(full, sizeof(full), "cd '%s' && (%s) >/dev/null 2>&1", dir, cmd);
	if (system(full) != 0)
		fail_msg("failed: %s", cmd);
}

#define EC "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

static void make_ca(const char *name)
{
	sh("openssl req -x509 " EC " -days 2 -subj /CN=%s -keyout %s.key -out %s.pem", name, name, name);
}

static void make_cert(const char *ca, const char *name, const char *san)
{
	sh("openssl req " EC " -subj /CN=%s -keyout %s.key -out %s.csr && "
	   "printf 'subjectAltName=%s\\n' > %s.ext && "
	   "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -days 2 -extfile %s.ext -out %s.pem "
	   "&& chmod 600 %s.key",
	   name, name, name, san, name, name, ca, ca, name, name, name);
}

static void handler(void *arg, const struct http_request *req, struct http_response *resp)
{
	sb_printf(&resp->body, "{\"path\":\"%s\"}", req->path);
}

static SSL_CTX *server_ctx(const char *cert, bool client_certs)
{
	struct pgha_err e;
	char c[1200], k[1200];
	snprintf(c, sizeof(c), "%s", path(cert));
	snprintf(k, sizeof(k), "%s", path("node.key"));
	SSL_CTX *ctx = tls_server_ctx_new(c, k, client_certs ? path("ca.pem") : NULL, &e);
	if (ctx == NULL)
		fail_msg("%s", e.msg);
	return ctx;
}

static int setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	make_ca("ca");
	make_ca("other");
	make_cert("ca", "node", "IP:127.0.0.1");
	make_cert("ca", "client", "DNS:client");
	make_cert("other", "foreign", "IP:127.0.0.1");
	/* The node's key again, newly certified: a rotation. */
	sh("openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 -extfile node.ext "
	   "-out node2.pem");
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct httpd *start(bool client_certs)
{
	struct pgha_err e;
	struct httpd *h = httpd_start_tls("127.0.0.1:0", server_ctx("node.pem", client_certs), handler, NULL, &e);
	if (h == NULL)
		fail_msg("%s", e.msg);
	return h;
}

/* One call; returns the status (0: none) and copies the error. */
static int call(const char *url, const struct httpc_tls *tls, char *err, size_t errlen)
{
	struct httpc_req r = {.url = url, .tls = tls};
	httpc_run(&r, 1, 3000);
	snprintf(err, errlen, "%s", r.error);
	sb_free(&r.resp);
	return r.status;
}

static void load(struct httpc_tls *t, const char *ca, const char *cert, const char *key)
{
	struct pgha_err e;
	char a[1200], c[1200], k[1200];
	snprintf(a, sizeof(a), "%s", path(ca));
	snprintf(c, sizeof(c), "%s", cert ? path(cert) : "");
	snprintf(k, sizeof(k), "%s", key ? path(key) : "");
	if (httpc_tls_load(t, a, c, k, &e) != 0)
		fail_msg("%s", e.msg);
}

static void test_verified_calls(void **state)
{
	struct httpd *h = start(true);
	int port = httpd_port(h);
	struct httpc_tls good, foreign_ca, anonymous;
	load(&good, "ca.pem", "client.pem", "client.key");
	load(&foreign_ca, "other.pem", "client.pem", "client.key");
	load(&anonymous, "ca.pem", NULL, NULL);
	char url[128], err[512];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/status", port);
	assert_int_equal(call(url, &good, err, sizeof(err)), 200);

	/* Wrong host: the certificate names 127.0.0.1, not localhost. */
	snprintf(url, sizeof(url), "https://localhost:%d/status", port);
	assert_int_equal(call(url, &good, err, sizeof(err)), 0);
	if (strstr(err, "localhost") == NULL)
		fail_msg("wrong host: %s", err);

	/* The server's certificate is not of the CA this client trusts. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/status", port);
	assert_int_equal(call(url, &foreign_ca, err, sizeof(err)), 0);
	if (strstr(err, "certificate") == NULL)
		fail_msg("wrong CA: %s", err);

	/* No client certificate where the server demands one. */
	assert_int_equal(call(url, &anonymous, err, sizeof(err)), 0);
	assert_true(err[0] != '\0');

	/*
	 * An http:// URL while this side serves HTTPS (https_only): never called,
	 * the bearer token would travel in clear. Without https_only (a member with
	 * only a CA), it is called as it is.
	 */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/status", port);
	assert_int_equal(call(url, &good, err, sizeof(err)), 0);
	assert_null(strstr(err, "not called"));
	good.https_only = true;
	assert_int_equal(call(url, &good, err, sizeof(err)), 0);
	if (strstr(err, "not called") == NULL)
		fail_msg("downgrade: %s", err);

	httpc_tls_free(&good);
	httpc_tls_free(&foreign_ca);
	httpc_tls_free(&anonymous);
	httpd_stop(h);
}

/* notAfter of the certificate the server presents now. */
static int64_t presented_not_after(int port)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_use_certificate_chain_file(ctx, path("client.pem"));
	SSL_CTX_use_PrivateKey_file(ctx, path("client.key"), SSL_FILETYPE_PEM);
	int fd = connect_to(AF_INET, port);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	assert_int_equal(SSL_connect(ssl), 1);
	X509 *x = SSL_get1_peer_certificate(ssl);
	assert_non_null(x);
	struct tm tm;
	assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm), 1);
	X509_free(x);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	return (int64_t)timegm(&tm);
}

static void test_plain_http_dropped_then_reload(void **state)
{
	struct httpd *h = start(false);
	int port = httpd_port(h);
	struct strbuf out = STRBUF_INIT;
	static const char req[] = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
	exchange_on(port, req, sizeof(req) - 1, &out);
	/* No answer in plain text (nor a TLS alert read as one): the connection is just closed. */
	assert_null(strstr(sb_str(&out), "HTTP/1"));
	sb_free(&out);

	int64_t before = presented_not_after(port);
	struct pgha_err e;
	int64_t want1 = 0, want2 = 0;
	assert_int_equal(tls_cert_not_after(path("node.pem"), &want1, &e), 0);
	assert_int_equal(tls_cert_not_after(path("node2.pem"), &want2, &e), 0);
	assert_true(before == want1 && want2 > want1);
	httpd_set_tls(h, server_ctx("node2.pem", false));
	assert_true(presented_not_after(port) == want2);

	/* Still serving: a verified call is answered. */
	struct httpc_tls good;
	load(&good, "ca.pem", NULL, NULL);
	char url[128], err[512];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", port);
	assert_int_equal(call(url, &good, err, sizeof(err)), 200);
	httpc_tls_free(&good);
	httpd_stop(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verified_calls),
		cmocka_unit_test(test_plain_http_dropped_then_reload),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
