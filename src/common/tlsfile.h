/*
 * tlsfile.h — checks of TLS certificate, key and CA files (PEM) before a
 * program hands them to a server, so a bad file is refused at start with its
 * name and the reason instead of a server that does not come up.
 */
#ifndef PGHA_COMMON_TLSFILE_H
#define PGHA_COMMON_TLSFILE_H

#include <stddef.h>

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

/* ca_file alone (a client that only verifies its server): readable PEM, certificates only. */
int tls_ca_check(const char *ca_file, struct pgha_err *e) PGHA_MUSTCHECK;

/* OpenSSL's error queue as one line ("unknown error" if empty), emptied. */
void tls_error_text(char *buf, size_t len);

#endif
