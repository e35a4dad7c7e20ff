/*
 * tlsfile.c — checks of TLS certificate, key and CA files (OpenSSL).
 *
 * The dates are checked here because OpenSSL loads an expired certificate
 * without a word: the server would start and every verifying client would
 * then fail, far from the file that is wrong.
 */
#include "common/tlsfile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common/util.h"

void tls_error_text(char *buf, size_t len)
{
	buf[0] = '\0';
	unsigned long code;
	size_t used = 0;
	while ((code = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(code, one, sizeof(one));
		int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", one);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "%s", errno ? strerror(errno) : "unknown error");
}

/* An ASN1 time as OpenSSL prints it ("Jan  2 03:04:05 2027 GMT"). */
static void time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n = 0;
	if (b != NULL && ASN1_TIME_print(b, t) == 1)
		n = BIO_read(b, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(b);
}

/* Every certificate of a PEM file; an empty file or anything but certificates is refused. */
static STACK_OF(X509) *read_certs(const char *what, const char *path, struct pgha_err *e)
{
	char why[512];
	errno = 0;
	ERR_clear_error();
	BIO *b = BIO_new_file(path, "r");
	if (b == NULL) {
		int saved = errno;
		ERR_clear_error();
		err_set(e, "%s \"%s\": cannot open: %s", what, path, saved ? strerror(saved) : "unknown error");
		return NULL;
	}
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509 *x;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(certs, x);
	unsigned long last = ERR_peek_last_error();
	bool at_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
	BIO_free(b);
	if (sk_X509_num(certs) > 0 && (last == 0 || at_end)) {
		ERR_clear_error();
		return certs;
	}
	tls_error_text(why, sizeof(why));
	if (sk_X509_num(certs) == 0)
		err_set(e, "%s \"%s\": no PEM certificate in it (%s)", what, path, why);
	else
		err_set(e, "%s \"%s\": not PEM certificates only, after certificate %d: %s", what, path,
			sk_X509_num(certs), why);
	sk_X509_pop_free(certs, X509_free);
	return NULL;
}

static int check_dates(const char *path, X509 *cert, struct pgha_err *e)
{
	char when[64];
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		time_text(X509_get0_notBefore(cert), when, sizeof(when));
		return err_set(e, "cert_file \"%s\": the certificate is not valid yet (not before %s)\n"
			       "HINT: check this host's clock, or issue a certificate valid from now", path, when);
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		time_text(X509_get0_notAfter(cert), when, sizeof(when));
		return err_set(e, "cert_file \"%s\": the certificate expired on %s\n"
			       "HINT: issue a new certificate with the cluster's CA", path, when);
	}
	return 0;
}

static int check_key(const char *key_file, const char *cert_file, X509 *cert, struct pgha_err *e)
{
	char *pem = NULL;
	size_t len = 0;
	if (read_secret_text(key_file, &pem, &len, e) != 0)
		return err_wrap(e, "key_file");
	char why[512];
	ERR_clear_error();
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	secret_wipe_free(pem, len);
	int rc = 0;
	if (key == NULL) {
		tls_error_text(why, sizeof(why));
		rc = err_set(e, "key_file \"%s\": no PEM private key in it (or it is encrypted): %s", key_file, why);
	} else if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		rc = err_set(e, "key_file \"%s\" does not match cert_file \"%s\"\n"
			     "HINT: give the key the certificate was issued for", key_file, cert_file);
	}
	EVP_PKEY_free(key);
	return rc;
}

/* cert (with the rest of cert_file as intermediates) chains up to a certificate of ca_file. */
static int check_signed(const char *ca_file, const char *cert_file, STACK_OF(X509) *chain,
			STACK_OF(X509) *cas, struct pgha_err *e)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	for (int i = 0; i < sk_X509_num(cas); i++)
		X509_STORE_add_cert(store, sk_X509_value(cas, i));
	int rc = 0;
	if (X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), chain) != 1) {
		char why[512];
		tls_error_text(why, sizeof(why));
		rc = err_set(e, "cannot verify cert_file \"%s\": %s", cert_file, why);
	} else if (X509_verify_cert(ctx) != 1) {
		rc = err_set(e, "cert_file \"%s\" is not signed by ca_file \"%s\": %s\n"
			     "HINT: every member's certificate must come from the cluster's CA", cert_file, ca_file,
			     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	}
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

int tls_files_check(const char *cert_file, const char *key_file, const char *ca_file, struct pgha_err *e)
{
	STACK_OF(X509) *chain = read_certs("cert_file", cert_file, e);
	if (chain == NULL)
		return -1;
	X509 *cert = sk_X509_value(chain, 0);
	int rc = check_dates(cert_file, cert, e);
	if (rc == 0)
		rc = check_key(key_file, cert_file, cert, e);
	if (rc == 0 && ca_file != NULL && ca_file[0] != '\0') {
		STACK_OF(X509) *cas = read_certs("ca_file", ca_file, e);
		rc = cas ? check_signed(ca_file, cert_file, chain, cas, e) : -1;
		sk_X509_pop_free(cas, X509_free);
	}
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

int tls_ca_check(const char *what, const char *ca_file, struct pgha_err *e)
{
	STACK_OF(X509) *cas = read_certs(what, ca_file, e);
	if (cas == NULL)
		return -1;
	sk_X509_pop_free(cas, X509_free);
	return 0;
}

int tls_cert_check_host(const char *cert_file, const char *what, const char *host, struct pgha_err *e)
{
	STACK_OF(X509) *chain = read_certs("cert_file", cert_file, e);
	if (chain == NULL)
		return -1;
	X509 *cert = sk_X509_value(chain, 0);
	/* An IP literal must be an IP entry of subjectAltName, as libpq and libcurl check it. */
	int ok = X509_check_ip_asc(cert, host, 0);
	if (ok == -2)   /* not an IP address: a host name */
		ok = X509_check_host(cert, host, strlen(host), 0, NULL);
	ERR_clear_error();
	sk_X509_pop_free(chain, X509_free);
	if (ok == 1)
		return 0;
	bool ip = strchr(host, ':') != NULL || strspn(host, "0123456789.") == strlen(host);
	return err_set(e, "cert_file \"%s\" does not name %s \"%s\": members that verify it would refuse it\n"
		       "HINT: issue the certificate with subjectAltName = %s:%s", cert_file, what, host,
		       ip ? "IP" : "DNS", host);
}

int tls_cert_not_after(const char *cert_file, int64_t *out, struct pgha_err *e)
{
	STACK_OF(X509) *chain = read_certs("cert_file", cert_file, e);
	if (chain == NULL)
		return -1;
	struct tm tm;
	int rc = 0;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(sk_X509_value(chain, 0)), &tm) != 1)
		rc = err_set(e, "cert_file \"%s\": the certificate's notAfter date cannot be read", cert_file);
	else
		*out = (int64_t)timegm(&tm);
	ERR_clear_error();
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char *client_ca_file,
			    struct pgha_err *e)
{
	char why[512];
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_error_text(why, sizeof(why));
		err_set(e, "cannot create a TLS context: %s", why);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_error_text(why, sizeof(why));
		err_set(e, "cert_file \"%s\": cannot load the certificate: %s", cert_file, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		tls_error_text(why, sizeof(why));
		err_set(e, "key_file \"%s\": cannot use it with cert_file \"%s\": %s", key_file, cert_file, why);
		goto fail;
	}
	if (client_ca_file != NULL && client_ca_file[0] != '\0') {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
		if (names == NULL || SSL_CTX_load_verify_locations(ctx, client_ca_file, NULL) != 1) {
			tls_error_text(why, sizeof(why));
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			err_set(e, "ca_file \"%s\": cannot load: %s", client_ca_file, why);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
