/*
 * test_certgen.c — the private CA of `pgha up --tls` (common/certgen.c): a
 * leaf it signs passes tls_files_check with the CA, carries its names in
 * subjectAltName (what verify-full checks), serves as server and client,
 * has a 0600 key, and the CA read back signs the same way; a leaf of
 * another CA is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common/certgen.h"
#include "common/err.h"
#include "common/tlsfile.h"

static char dir[] = "/tmp/pgha-test-certgen-XXXXXX";

static char *path(const char *name)
{
	static char buf[8][600];
	static int next;
	char *p = buf[next++ % 8];
	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static int setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The chain verifies and the purpose fits, as a verifying peer would check it. */
static int verify(X509 *ca, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, ca);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	int ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

static void test_ca_signs_server_and_client(void **state)
{
	struct pgha_err e;
	struct cert_pair ca, leaf;
	assert_int_equal(certgen_ca("pgha test CA", 30, &ca, &e), 0);
	assert_int_equal(certgen_leaf(&ca, "node1", "IP:127.0.0.1,DNS:localhost", 30, &leaf, &e), 0);
	assert_int_equal(certgen_write(&ca, path("ca.crt"), path("ca.key"), &e), 0);
	assert_int_equal(certgen_write(&leaf, path("node1.crt"), path("node1.key"), &e), 0);

	int rc = tls_files_check(path("node1.crt"), path("node1.key"), path("ca.crt"), &e);
	if (rc != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(verify(ca.crt, leaf.crt, X509_PURPOSE_SSL_SERVER), 1);
	assert_int_equal(verify(ca.crt, leaf.crt, X509_PURPOSE_SSL_CLIENT), 1);
	/* Names: what verify-full, curl and etcd match. */
	assert_int_equal(X509_check_ip_asc(leaf.crt, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_host(leaf.crt, "localhost", 0, 0, NULL), 1);
	assert_int_not_equal(X509_check_ip_asc(leaf.crt, "127.0.0.2", 0), 1);
	assert_int_not_equal(X509_check_host(leaf.crt, "node2", 0, 0, NULL), 1);
	/* No CommonName (etcd's gateway refuses client certificates with one): O=pgha, OU=name. */
	assert_int_equal(X509_NAME_get_index_by_NID(X509_get_subject_name(leaf.crt), NID_commonName, -1), -1);
	char ou[64];
	assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf.crt), NID_organizationalUnitName, ou,
						   sizeof(ou)), 5);
	assert_string_equal(ou, "node1");
	/* A leaf cannot sign: only the CA may. */
	assert_int_equal(X509_check_ca(leaf.crt), 0);
	assert_int_not_equal(X509_check_ca(ca.crt), 0);

	struct stat st;
	assert_int_equal(stat(path("node1.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(path("ca.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(path("node1.crt"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	/* The CA read back (a later run) signs certificates the first CA file verifies. */
	struct cert_pair again, leaf2;
	assert_int_equal(certgen_load(path("ca.crt"), path("ca.key"), &again, &e), 0);
	assert_int_equal(certgen_leaf(&again, "proxy", "IP:127.0.0.1", 30, &leaf2, &e), 0);
	assert_int_equal(verify(ca.crt, leaf2.crt, X509_PURPOSE_SSL_SERVER), 1);
	/* Serials are random: two leaves never share one. */
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf.crt), X509_get0_serialNumber(leaf2.crt)), 0);
	certgen_free(&again);
	certgen_free(&leaf2);
	certgen_free(&leaf);
	certgen_free(&ca);
}

static void test_other_ca_refused(void **state)
{
	struct pgha_err e;
	struct cert_pair ca, other, leaf;
	assert_int_equal(certgen_ca("pgha CA", 30, &ca, &e), 0);
	assert_int_equal(certgen_ca("another CA", 30, &other, &e), 0);
	assert_int_equal(certgen_leaf(&other, "intruder", "IP:127.0.0.1", 30, &leaf, &e), 0);
	assert_int_equal(certgen_write(&ca, path("ca2.crt"), NULL, &e), 0);
	assert_int_equal(certgen_write(&leaf, path("intruder.crt"), path("intruder.key"), &e), 0);
	assert_int_equal(access(path("ca2.key"), F_OK), -1);
	assert_int_not_equal(tls_files_check(path("intruder.crt"), path("intruder.key"), path("ca2.crt"), &e), 0);
	assert_non_null(strstr(e.msg, "intruder.crt"));
	assert_int_equal(verify(ca.crt, leaf.crt, X509_PURPOSE_SSL_SERVER), 0);
	certgen_free(&leaf);
	certgen_free(&other);
	certgen_free(&ca);
}

static void test_bad_names_and_missing_files(void **state)
{
	struct pgha_err e;
	struct cert_pair ca, leaf;
	assert_int_equal(certgen_ca("pgha CA", 30, &ca, &e), 0);
	assert_int_not_equal(certgen_leaf(&ca, "node1", "IP:not-an-address", 30, &leaf, &e), 0);
	assert_non_null(strstr(e.msg, "node1"));
	assert_null(leaf.crt);
	assert_int_not_equal(certgen_load(path("missing.crt"), path("missing.key"), &leaf, &e), 0);
	assert_non_null(strstr(e.msg, "missing.crt"));
	certgen_free(&ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_signs_server_and_client),
		cmocka_unit_test(test_other_ca_refused),
		cmocka_unit_test(test_bad_names_and_missing_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
