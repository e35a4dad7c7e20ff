/*
 * certgen.c — a private CA and the certificates it signs (OpenSSL 3).
 *
 * What a verifying peer checks decides the extensions: a CA needs
 * basicConstraints CA:TRUE and keyCertSign; a leaf carries its names in
 * subjectAltName (verify-full, etcd and curl match those, not the CN) and
 * extendedKeyUsage for both ends of a link, so one node certificate serves
 * PostgreSQL, the API, and the node's own client connections. A leaf has no
 * CommonName (O=pgha, OU=its name): etcd refuses a client certificate with
 * one on the HTTP gateway pgha talks to.
 */
#include "common/certgen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/tlsfile.h"
#include "common/util.h"

static int fail(struct pgha_err *e, const char *what)
{
	char why[512];
	tls_error_text(why, sizeof(why));
	return err_set(e, "%s: %s", what, why);
}

static EVP_PKEY *new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/*
 * Serial, dates and key of a new certificate, its subject CN=cn or, with
 * ou, O=pgha/OU=ou; the issuer's fields are set by the caller.
 */
static X509 *new_cert(const char *cn, const char *ou, EVP_PKEY *key, int days)
{
	X509 *x = X509_new();
	unsigned char rnd[16];
	BIGNUM *bn = NULL;
	bool ok = x != NULL && RAND_bytes(rnd, sizeof(rnd)) == 1;
	if (ok) {
		rnd[0] &= 0x7f;  /* a positive serial, as RFC 5280 asks */
		bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
		ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	}
	ok = ok && X509_set_version(x, 2) == 1 &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
	     X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) != NULL && X509_set_pubkey(x, key) == 1;
	X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
	if (ok && ou != NULL)
		ok = X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"pgha", -1, -1, 0) == 1 &&
		     X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1, -1, 0) == 1;
	else if (ok)
		ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) == 1;
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int certgen_ca(const char *cn, int days, struct cert_pair *out, struct pgha_err *e)
{
	*out = (struct cert_pair){0};
	EVP_PKEY *key = new_key();
	X509 *x = key ? new_cert(cn, NULL, key, days) : NULL;
	if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") != 0 || X509_sign(x, key, EVP_sha256()) <= 0) {
		X509_free(x);
		EVP_PKEY_free(key);
		return fail(e, "cannot make a CA certificate");
	}
	out->crt = x;
	out->key = key;
	return 0;
}

int certgen_leaf(const struct cert_pair *ca, const char *cn, const char *sans, int days, struct cert_pair *out,
		 struct pgha_err *e)
{
	*out = (struct cert_pair){0};
	EVP_PKEY *key = new_key();
	X509 *x = key ? new_cert(NULL, cn, key, days) : NULL;
	bool ok = x != NULL && X509_set_issuer_name(x, X509_get_subject_name(ca->crt)) == 1 &&
		  add_ext(x, ca->crt, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
		  add_ext(x, ca->crt, NID_key_usage, "critical,digitalSignature,keyEncipherment") == 0 &&
		  add_ext(x, ca->crt, NID_ext_key_usage, "serverAuth,clientAuth") == 0 &&
		  add_ext(x, ca->crt, NID_authority_key_identifier, "keyid") == 0;
	if (ok && sans != NULL && sans[0] != '\0')
		ok = add_ext(x, ca->crt, NID_subject_alt_name, sans) == 0;
	if (!ok || X509_sign(x, ca->key, EVP_sha256()) <= 0) {
		X509_free(x);
		EVP_PKEY_free(key);
		char what[300];
		snprintf(what, sizeof(what), "cannot make a certificate for %s (names \"%s\")", cn, sans ? sans : "");
		return fail(e, what);
	}
	out->crt = x;
	out->key = key;
	return 0;
}

/* PEM text of a certificate or a key, then the file (atomically). */
static int write_pem(const char *path, X509 *crt, EVP_PKEY *key, mode_t mode, struct pgha_err *e)
{
	BIO *b = BIO_new(BIO_s_mem());
	bool ok = b != NULL && (crt ? PEM_write_bio_X509(b, crt) : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0,
											NULL, NULL)) == 1;
	if (!ok) {
		BIO_free(b);
		char what[300];
		snprintf(what, sizeof(what), "cannot encode %s", path);
		return fail(e, what);
	}
	char *data;
	long len = BIO_get_mem_data(b, &data);
	int rc = write_file_atomic(path, data, (size_t)len, mode, (uid_t)-1, (gid_t)-1, e);
	if (key != NULL)
		OPENSSL_cleanse(data, (size_t)len);
	BIO_free(b);
	return rc;
}

int certgen_write(const struct cert_pair *p, const char *crt_path, const char *key_path, struct pgha_err *e)
{
	/* The key first: a certificate never names a key that is not on disk yet. */
	if (key_path != NULL && write_pem(key_path, NULL, p->key, 0600, e) != 0)
		return -1;
	return write_pem(crt_path, p->crt, NULL, 0644, e);
}

int certgen_load(const char *crt_path, const char *key_path, struct cert_pair *out, struct pgha_err *e)
{
	*out = (struct cert_pair){0};
	/* tls_files_check: readable, the key matches, valid now (a CA past its date is made again by the caller). */
	if (tls_files_check(crt_path, key_path, NULL, e) != 0)
		return -1;
	FILE *f = fopen(crt_path, "r");
	if (f != NULL) {
		out->crt = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	f = fopen(key_path, "r");
	if (f != NULL) {
		out->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (out->crt == NULL || out->key == NULL) {
		certgen_free(out);
		char what[600];
		snprintf(what, sizeof(what), "cannot read %s and %s", crt_path, key_path);
		return fail(e, what);
	}
	return 0;
}

void certgen_free(struct cert_pair *p)
{
	X509_free(p->crt);
	EVP_PKEY_free(p->key);
	*p = (struct cert_pair){0};
}
