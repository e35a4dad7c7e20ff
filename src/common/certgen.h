/*
 * certgen.h — a private certificate authority in a few calls (OpenSSL), for
 * `pgha up --tls` and for tests: a CA, certificates it signs for servers and
 * clients, written as PEM files (keys 0600).
 *
 * Keys are EC P-256 (fast to make, also under ASan; every TLS stack we talk
 * to accepts them); signatures SHA-256; serials 128 random bits.
 */
#ifndef PGHA_COMMON_CERTGEN_H
#define PGHA_COMMON_CERTGEN_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/err.h"

struct cert_pair {
	X509 *crt;
	EVP_PKEY *key;
};

/* A self-signed CA named cn, valid from now (minus an hour of clock skew) for days. */
int certgen_ca(const char *cn, int days, struct cert_pair *out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * A certificate for cn (subject O=pgha, OU=cn: no CommonName, which etcd's
 * gateway refuses in a client certificate) signed by ca, usable as server and as client
 * (extendedKeyUsage serverAuth, clientAuth). sans: subjectAltName entries,
 * comma-separated, as OpenSSL writes them ("IP:127.0.0.1,DNS:localhost");
 * NULL or "": none.
 */
int certgen_leaf(const struct cert_pair *ca, const char *cn, const char *sans, int days, struct cert_pair *out,
		 struct pgha_err *e) PGHA_MUSTCHECK;

/* crt_path (0644) and key_path (0600), each replaced atomically; key_path NULL: the certificate only. */
int certgen_write(const struct cert_pair *p, const char *crt_path, const char *key_path,
		  struct pgha_err *e) PGHA_MUSTCHECK;

/* A pair written by certgen_write (the CA of an earlier run), read back. */
int certgen_load(const char *crt_path, const char *key_path, struct cert_pair *out,
		 struct pgha_err *e) PGHA_MUSTCHECK;

void certgen_free(struct cert_pair *p);

#endif
