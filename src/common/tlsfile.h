/*
 * tlsfile.h — checks of TLS certificate, key and CA files (PEM) before a
 * program hands them to a server, so a bad file is refused at start with its
 * name and the reason instead of a server that does not come up.
 */
#ifndef PGHA_COMMON_TLSFILE_H
#define PGHA_COMMON_TLSFILE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common/err.h"

/*
 * cert_file and key_file: readable PEM, the key matches the certificate,
 * the certificate is valid now. ca_file (NULL or "": none): readable PEM with
 * at least one certificate and nothing else, and it signed cert_file. The key
 * is read as a secret file (common/util.h: refused if group or others may
 * write it). Errors name the file and the reason.
 */
int tls_files_check(const char *cert_file, const char *key_file, const char *ca_file,
		    struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * A CA bundle alone: readable PEM with at least one certificate and nothing
 * else. what names it in the message ("server_ca_file").
 */
int tls_ca_check(const char *what, const char *ca_file, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * cert_file's first certificate names host (an IP literal: an IP entry of
 * its subjectAltName; a name: a DNS entry, or the CN without any), as a
 * verifying peer checks it. what says where host comes from, for the error
 * ("[node] api_address").
 */
int tls_cert_check_host(const char *cert_file, const char *what, const char *host,
			struct pgha_err *e) PGHA_MUSTCHECK;

/* The notAfter date of cert_file's first certificate, as unix seconds. */
int tls_cert_not_after(const char *cert_file, int64_t *out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * A server context (TLS 1.2 at least, no compression, renegotiation or
 * session cache) presenting cert_file (with its intermediates) and key_file.
 * client_ca_file (NULL or "": none) makes it demand a client certificate
 * signed by that CA. Check the files with tls_files_check() first: this only
 * says what OpenSSL could not load. NULL with e set on failure.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char *client_ca_file,
			    struct pgha_err *e);

/* OpenSSL's error queue as one line ("unknown error" if empty), emptied. */
void tls_error_text(char *buf, size_t len);

#endif
