/*
 * httpc.h — small HTTP client (libcurl) for agent-to-agent calls: asking
 * other members for their WAL position before an election, and failsafe
 * pings while etcd is unreachable. Requests run in parallel with one overall
 * deadline; a member that does not answer in time simply has no answer.
 */
#ifndef PGHA_HTTPC_H
#define PGHA_HTTPC_H

#include <stddef.h>

#include "common/strbuf.h"

struct httpc_req {
	const char *url;        /* in */
	const char *body;       /* in: POST body, NULL for GET */
	const char *bearer;     /* in: token sent as "Authorization: Bearer <token>", NULL for none */
	int status;             /* out: HTTP status, 0 if no answer */
	struct strbuf resp;     /* out: response body (capped at 1 MiB); caller frees */
	char error[128];        /* out: why there was no answer */
};

/* Run all requests in parallel; returns when all answered or timeout_ms passed. */
void httpc_run(struct httpc_req *reqs, size_t n, int timeout_ms);

#endif
