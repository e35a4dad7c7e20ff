/*
 * up_tls.c — the certificates of `pgha up --tls`.
 *
 * One CA per cluster directory signs everything; its key stays in
 * DIR/secrets/tls (0600, in a 0700 directory) so a later run can make the
 * certificate of a member it lacks, or one that expired, without changing
 * the CA every client already trusts. Every certificate names 127.0.0.1 and
 * localhost, the only addresses `up` listens on, and serves as server and as
 * client (PostgreSQL, the API and etcd ask for client certificates).
 */
#include "up/up_tls.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/certgen.h"
#include "common/strbuf.h"
#include "common/tlsfile.h"
#include "common/util.h"

enum {
	CA_DAYS = 3650,
	LEAF_DAYS = 397,  /* what browsers accept for a server certificate */
};

#define UP_TLS_NAMES "IP:127.0.0.1,DNS:localhost"

char *up_tls_path(const char *dir, const char *name, const char *ext)
{
	return xasprintf("%s/secrets/tls/%s.%s", dir, name, ext);
}

/* name's certificate, kept when good, made by ca otherwise. */
static int ensure_leaf(const char *dir, const struct cert_pair *ca, const char *name, struct pgha_err *e)
{
	char *crt = up_tls_path(dir, name, "crt"), *key = up_tls_path(dir, name, "key"),
	     *ca_crt = up_tls_path(dir, "ca", "crt");
	int rc = 0;
	struct pgha_err why;
	bool had = path_exists(crt);
	if (!had || tls_files_check(crt, key, ca_crt, &why) != 0) {
		if (had)
			printf("  %s: %s; making a new one\n", crt, why.msg);
		struct cert_pair leaf;
		rc = certgen_leaf(ca, name, UP_TLS_NAMES, LEAF_DAYS, &leaf, e);
		if (rc == 0)
			rc = certgen_write(&leaf, crt, key, e);
		certgen_free(&leaf);
	}
	free(crt);
	free(key);
	free(ca_crt);
	return rc;
}

int up_tls_prepare(const char *dir, int nodes, struct pgha_err *e)
{
	char *tls = xasprintf("%s/secrets/tls", dir);
	char *ca_crt = up_tls_path(dir, "ca", "crt"), *ca_key = up_tls_path(dir, "ca", "key");
	struct cert_pair ca = {0};
	int rc = mkdir_p(tls, 0700, e);
	if (rc == 0 && path_exists(ca_crt)) {
		rc = certgen_load(ca_crt, ca_key, &ca, e);
		if (rc != 0)
			err_wrap(e, "the cluster's CA\nHINT: a new CA means new certificates for every "
				    "member and client: remove %s to make them all again", tls);
	} else if (rc == 0) {
		rc = certgen_ca("pgha up CA", CA_DAYS, &ca, e);
		if (rc == 0)
			rc = certgen_write(&ca, ca_crt, ca_key, e);
		if (rc == 0)
			printf("  made a private CA: %s (valid %d days)\n", ca_crt, CA_DAYS);
	}
	static const char *const others[] = {"proxy", "etcd", "client"};
	for (int i = 0; rc == 0 && i < nodes; i++) {
		char name[16];
		snprintf(name, sizeof(name), "node%d", i + 1);
		rc = ensure_leaf(dir, &ca, name, e);
	}
	for (size_t i = 0; rc == 0 && i < sizeof(others) / sizeof(others[0]); i++)
		rc = ensure_leaf(dir, &ca, others[i], e);
	certgen_free(&ca);
	free(tls);
	free(ca_crt);
	free(ca_key);
	return rc;
}
