/*
 * httpc.h — small HTTP client (libcurl) for agent-to-agent calls: asking
 * other members for their WAL position before an election, and failsafe
 * pings while etcd is unreachable. Requests run in parallel with one overall
 * deadline; a member that does not answer in time simply has no answer.
 */
#ifndef PGHA_HTTPC_H
#define PGHA_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/strbuf.h"

/*
 * TLS of calls to other members' APIs ([tls] of the agent): held in memory,
 * so a certificate reload that fails keeps the one in use, and a file
 * replaced on disk is never half-read in the middle of a call.
 */
struct httpc_tls {
	char *ca;               /* PEM of the CA that signed the peers' certificates; NULL: the system's */
	size_t ca_len;
	char *cert;             /* PEM client certificate presented, NULL: none */
	size_t cert_len;
	char *key;              /* its private key (wiped when freed) */
	size_t key_len;
	bool https_only;        /* refuse a URL that is not https:// without connecting */
};

/* Read the three files (ca_file may be "" or NULL). Errors name the file. */
int httpc_tls_load(struct httpc_tls *t, const char *ca_file, const char *cert_file, const char *key_file,
		   struct pgha_err *e) PGHA_MUSTCHECK;
void httpc_tls_free(struct httpc_tls *t);

struct httpc_req {
	const char *url;        /* in */
	const char *body;       /* in: POST body, NULL for GET */
	const char *bearer;     /* in: token sent as "Authorization: Bearer <token>", NULL for none */
	/*
	 * in: NULL, plain libcurl defaults; else an https:// peer's certificate
	 * is verified against tls->ca with its host name, the client
	 * certificate presented, TLS 1.2 at least; with tls->https_only a URL
	 * that is not https:// is refused without connecting (error says so): a
	 * member record in etcd must not be able to downgrade a call, nor learn
	 * the bearer token.
	 */
	const struct httpc_tls *tls;
	int status;             /* out: HTTP status, 0 if no answer */
	struct strbuf resp;     /* out: response body (capped at 1 MiB); caller frees */
	char error[384];        /* out: why there was no answer (libcurl's detail: a certificate's problem) */
};

/* Run all requests in parallel; returns when all answered or timeout_ms passed. */
void httpc_run(struct httpc_req *reqs, size_t n, int timeout_ms);

#endif
