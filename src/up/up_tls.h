/*
 * up_tls.h — `pgha up --tls`: a private CA and a certificate for every
 * process of the local cluster, in DIR/secrets/tls/.
 */
#ifndef PGHA_UP_UP_TLS_H
#define PGHA_UP_UP_TLS_H

#include "common/err.h"

/*
 * DIR/secrets/tls/: ca.crt + ca.key, then nodeN.crt/.key (N = 1..nodes),
 * proxy, etcd and client (ctl, up itself), each for 127.0.0.1 and localhost.
 * A file already there and still good is kept (a later run, the same
 * cluster); a certificate gone bad (expired, unreadable, another CA) is made
 * again and said so. Made files are listed on stdout.
 */
int up_tls_prepare(const char *dir, int nodes, struct pgha_err *e) PGHA_MUSTCHECK;

/* DIR/secrets/tls/NAME.crt, .key or ca.crt (the caller frees). */
char *up_tls_path(const char *dir, const char *name, const char *ext);

#endif
