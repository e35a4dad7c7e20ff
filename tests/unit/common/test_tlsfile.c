/*
 * test_tlsfile.c — checks of certificate, key and CA files (common/tlsfile.c):
 * a good pair with its CA passes; a missing or garbage file, a key of another
 * certificate, an expired or not-yet-valid certificate, a certificate of
 * another CA and a CA file with garbage after its certificate are refused,
 * naming the file and the reason. The expiry date read for the member record
 * and /metrics, and the server context of the agent API (a key of another
 * certificate refused there too, as on a reload); a CA file alone is checked
 * the same way as ca_file.
 *
 * The certificates are made here with OpenSSL (EC P-256: fast under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/tlsfile.h"

static char dir[] = "/tmp/pgha-test-tlsfile-XXXXXX";
static char path_buf[8][1200];
static int path_next;

static const char *path(const char *name)
{
	char *p = path_buf[path_next++ % 8];
	snprintf(p, sizeof(path_buf[0]), "%s/%s", dir, name);
	return p;
}

/* A certificate for key, signed by issuer (NULL: self-signed CA), valid from now+from_s to now+to_s. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long from_s, long to_s)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), to_s);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	if (issuer == NULL) {
		X509V3_CTX ctx;
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static void write_cert(const char *p, X509 *x, const char *trailer)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	if (trailer)
		fputs(trailer, f);
	fclose(f);
}

static void write_key(const char *p, EVP_PKEY *k, mode_t mode)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
}

static void write_text(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *other_ca_key = EVP_EC_gen("P-256");
	EVP_PKEY *key = EVP_EC_gen("P-256"), *key2 = EVP_EC_gen("P-256");
	X509 *ca = make_cert(ca_key, "test CA", NULL, NULL, -60, 86400);
	X509 *other_ca = make_cert(other_ca_key, "other CA", NULL, NULL, -60, 86400);
	X509 *good = make_cert(key, "node1", ca, ca_key, -60, 86400);
	X509 *expired = make_cert(key, "node1", ca, ca_key, -7200, -3600);
	X509 *future = make_cert(key, "node1", ca, ca_key, 3600, 7200);
	X509 *foreign = make_cert(key, "node1", other_ca, other_ca_key, -60, 86400);
	write_cert(path("ca.crt"), ca, NULL);
	write_cert(path("ca-garbage.crt"), ca, "this is not PEM\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	write_cert(path("good.crt"), good, NULL);
	write_cert(path("expired.crt"), expired, NULL);
	write_cert(path("future.crt"), future, NULL);
	write_cert(path("foreign.crt"), foreign, NULL);
	write_key(path("good.key"), key, 0600);
	write_key(path("other.key"), key2, 0600);
	write_key(path("writable.key"), key, 0666);
	write_text(path("garbage.crt"), "hello\n");
	assert_int_equal(mkdir(path("dir.crt"), 0700), 0);
	write_text(path("garbage.key"), "hello\n");
	assert_int_equal(chmod(path("garbage.key"), 0600), 0);
	X509_free(ca);
	X509_free(other_ca);
	X509_free(good);
	X509_free(expired);
	X509_free(future);
	X509_free(foreign);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_ca_key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* tls_files_check(cert, key, ca) fails and its message holds every one of want (NULL-terminated). */
static void refused(const char *cert, const char *key, const char *ca, const char *const *want)
{
	struct pgha_err e;
	e.msg[0] = '\0';
	char c[1200], k[1200], a[1200];
	snprintf(c, sizeof(c), "%s", path(cert));
	snprintf(k, sizeof(k), "%s", path(key));
	snprintf(a, sizeof(a), "%s", ca ? path(ca) : "");
	if (tls_files_check(c, k, a, &e) == 0)
		fail_msg("%s + %s + %s accepted", cert, key, ca ? ca : "(no CA)");
	for (; *want; want++)
		if (strstr(e.msg, *want) == NULL)
			fail_msg("\"%s\" lacks \"%s\"", e.msg, *want);
}

static void test_good(void **state)
{
	struct pgha_err e;
	char c[1200], k[1200];
	snprintf(c, sizeof(c), "%s", path("good.crt"));
	snprintf(k, sizeof(k), "%s", path("good.key"));
	if (tls_files_check(c, k, path("ca.crt"), &e) != 0)
		fail_msg("%s", e.msg);
	if (tls_files_check(c, k, "", &e) != 0 || tls_files_check(c, k, NULL, &e) != 0)
		fail_msg("%s", e.msg);
}

static void test_refused(void **state)
{
	refused("missing.crt", "good.key", NULL,
		(const char *const[]){"cert_file", "missing.crt", "cannot open: No such file or directory", NULL});
	refused("garbage.crt", "good.key", NULL, (const char *const[]){"cert_file", "garbage.crt", "no PEM certificate", NULL});
	refused("good.crt", "missing.key", NULL, (const char *const[]){"key_file", "missing.key", NULL});
	refused("good.crt", "garbage.key", NULL, (const char *const[]){"key_file", "garbage.key", "no PEM private key", NULL});
	refused("good.crt", "writable.key", NULL, (const char *const[]){"key_file", "writable.key", "chmod 600", NULL});
	refused("good.crt", "other.key", NULL,
		(const char *const[]){"key_file", "other.key", "does not match cert_file", "good.crt", NULL});
	refused("expired.crt", "good.key", NULL, (const char *const[]){"expired.crt", "the certificate expired on", NULL});
	refused("future.crt", "good.key", NULL, (const char *const[]){"future.crt", "not valid yet", NULL});
	refused("foreign.crt", "good.key", "ca.crt",
		(const char *const[]){"foreign.crt", "is not signed by ca_file", "ca.crt", NULL});
	refused("good.crt", "good.key", "missing-ca.crt", (const char *const[]){"ca_file", "missing-ca.crt", NULL});
	refused("good.crt", "good.key", "garbage.crt", (const char *const[]){"ca_file", "garbage.crt", NULL});
	refused("dir.crt", "good.key", NULL, (const char *const[]){"cert_file", "dir.crt", NULL});
	refused("good.crt", "good.key", "dir.crt", (const char *const[]){"ca_file", "dir.crt", NULL});
	refused("good.crt", "good.key", "ca-garbage.crt",
		(const char *const[]){"ca_file", "ca-garbage.crt", "not PEM certificates only", NULL});
}

/* notAfter as unix seconds: good.crt was made valid until now + 1 day. */
static void test_not_after(void **state)
{
	struct pgha_err e;
	int64_t t = 0;
	if (tls_cert_not_after(path("good.crt"), &t, &e) != 0)
		fail_msg("%s", e.msg);
	int64_t want = (int64_t)time(NULL) + 86400;
	assert_true(t > want - 120 && t <= want + 5);
	assert_int_equal(tls_cert_not_after(path("garbage.crt"), &t, &e), -1);
	assert_non_null(strstr(e.msg, "garbage.crt"));
}

static void test_server_ctx(void **state)
{
	struct pgha_err e;
	char c[1200], k[1200];
	snprintf(c, sizeof(c), "%s", path("good.crt"));
	snprintf(k, sizeof(k), "%s", path("good.key"));
	SSL_CTX *ctx = tls_server_ctx_new(c, k, NULL, &e);
	if (ctx == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
	SSL_CTX_free(ctx);
	ctx = tls_server_ctx_new(c, k, path("ca.crt"), &e);
	if (ctx == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	SSL_CTX_free(ctx);
	snprintf(k, sizeof(k), "%s", path("other.key"));
	assert_null(tls_server_ctx_new(c, k, NULL, &e));
	assert_non_null(strstr(e.msg, "other.key"));
	assert_non_null(strstr(e.msg, "good.crt"));
	snprintf(k, sizeof(k), "%s", path("good.key"));
	assert_null(tls_server_ctx_new(c, k, path("garbage.crt"), &e));
	assert_non_null(strstr(e.msg, "ca_file"));
}

/* The host a verifying peer checks: an IP in subjectAltName's IP entries, a name in DNS (or the CN). */
static void test_host(void **state)
{
	struct pgha_err e;
	char c[1200];
	snprintf(c, sizeof(c), "%s", path("good.crt"));   /* CN=node1, no subjectAltName */
	if (tls_cert_check_host(c, "[node] api_address", "node1", &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(tls_cert_check_host(c, "[node] api_address", "127.0.0.1", &e), -1);
	assert_non_null(strstr(e.msg, "good.crt\" does not name [node] api_address \"127.0.0.1\""));
	assert_non_null(strstr(e.msg, "HINT: issue the certificate with subjectAltName = IP:127.0.0.1"));
	assert_int_equal(tls_cert_check_host(c, "[postgresql] address", "db2.lan", &e), -1);
	assert_non_null(strstr(e.msg, "subjectAltName = DNS:db2.lan"));
	assert_int_equal(tls_cert_check_host(path("garbage.crt"), "x", "node1", &e), -1);
	assert_non_null(strstr(e.msg, "garbage.crt"));
}

/* A CA file alone (a client that only verifies its server). */
static void test_ca_only(void **state)
{
	struct pgha_err e = {{0}};
	if (tls_ca_check("ca_file", path("ca.crt"), &e) != 0)
		fail_msg("ca.crt refused: %s", e.msg);
	assert_int_not_equal(tls_ca_check("ca_file", path("missing-ca.crt"), &e), 0);
	assert_non_null(strstr(e.msg, "missing-ca.crt"));
	assert_non_null(strstr(e.msg, "cannot open"));
	assert_int_not_equal(tls_ca_check("ca_file", path("garbage.crt"), &e), 0);
	assert_non_null(strstr(e.msg, "no PEM certificate"));
	assert_int_not_equal(tls_ca_check("ca_file", path("ca-garbage.crt"), &e), 0);
	assert_non_null(strstr(e.msg, "not PEM certificates only"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_not_after),
		cmocka_unit_test(test_server_ctx),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_ca_only),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
