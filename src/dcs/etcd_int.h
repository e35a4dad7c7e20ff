/*
 * etcd_int.h — what the files of the etcd client share and nobody else sees:
 * the client's state, the libcurl transport (etcd_http.c) and the call loop
 * with failover and tokens (etcd.c), used by the KV/lease calls (etcd_kv.c)
 * and the watch thread (etcd_watch.c).
 *
 * Layering inside src/dcs: etcd_http.c calls nothing of the client;
 * etcd.c calls etcd_http.c; etcd_kv.c calls etcd.c, etcd_watch.c both; all of
 * them use etcd_codec.c. Nothing calls back up (scripts/check-calls.py).
 */
#ifndef PGHA_DCS_ETCD_INT_H
#define PGHA_DCS_ETCD_INT_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "dcs/etcd.h"

#define ETCD_MAX_REPLY (16u * 1024 * 1024) /* one reply / one watch message */
#define ETCD_BACKOFF_FIRST_MS 100

struct etcd_client {
	char **endpoints;        /* the members' URLs from the last sync, then configured */
	size_t nendpoints;
	size_t cur;              /* endpoint to try first: the last one that worked */
	char **configured;       /* opts.endpoints: always kept, a wrong sync never strands us */
	size_t nconfigured;
	int sync_interval_ms;    /* 0: never ask etcd for its members */
	int64_t next_sync;       /* now_ms() after which the next call syncs first */
	bool syncing;            /* inside the sync's own call: no recursion */
	char *username;          /* NULL = no auth */
	char *password;          /* wiped on free */
	char *token;             /* wiped on free; NULL until authenticated */
	bool auth_disabled;      /* etcd said auth is not enabled: send no token */
	char *ca_file;
	char *cert_file;         /* client certificate (etcd --client-cert-auth), NULL = none */
	char *key_file;
	int request_timeout_ms;
	int deadline_ms;
	bool healthy;            /* last request succeeded (for quieter logs) */
	CURL *curl;              /* reused: keeps the connection alive */
	atomic_bool *cancel;     /* watch's stop flag, NULL for a normal client */
};

/* ------------------------------------------------ etcd_http.c: transport */

/* Body sink with a size cap: a runaway reply aborts the transfer. */
struct etcd_sink {
	struct strbuf sb;
	bool overflow;
};

int etcd_curl_ready(struct pgha_err *e);
/* A libcurl write callback into a struct etcd_sink (ud). */
size_t etcd_sink_write(char *ptr, size_t size, size_t nmemb, void *ud);
void etcd_sink_free(struct etcd_sink *s);
/* Options shared by unary requests and the watch stream. */
void etcd_set_common_opts(CURL *h, const struct etcd_client *c, const char *url,
			  const char *body, struct curl_slist *hdrs);
/* Request headers, with the token (NULL = none); free with curl_slist_free_all. */
struct curl_slist *etcd_make_headers(const char *token);
/*
 * A transport failure into e: curl's text, its detail (CURLOPT_ERRORBUFFER,
 * "" if none) and a HINT for the TLS failures whose likely fix is plain.
 * https: the endpoint's scheme; has_cert: the client has a certificate.
 */
void etcd_curl_error(struct pgha_err *e, CURLcode rc, const char *detail, bool https, bool has_cert);
/*
 * POST body to endpoint+path within timeout_ms. Returns 0 with *status and
 * the body in s when an HTTP answer came back; ETCD_EPROTO for a reply that
 * was too large or cut short, ETCD_EUNAVAIL for other transport failures.
 */
int etcd_http_post(struct etcd_client *c, const char *ep, const char *path, const char *body,
		   const char *token, int64_t timeout_ms, long *status, struct etcd_sink *s,
		   struct pgha_err *e);

/* ------------------------------------------- etcd.c: calls and tokens */

/* Decoder of a 200 reply; ctx is the caller's output. */
typedef int (*etcd_decoder)(const char *body, void *ctx, struct pgha_err *e);

/*
 * One logical call: POST body (NULL = the caller could not encode its
 * arguments) to path, decode a 200 reply with dec, retrying across endpoints
 * (the policy is at the top of etcd.c).
 */
int etcd_call(struct etcd_client *c, const char *path, const char *body, etcd_decoder dec,
	      void *ctx, struct pgha_err *e);
/* A caller mistake: ETCD_EINVAL with the message. */
int etcd_bad_arg(struct pgha_err *e, const char *msg);
/* Does an etcd error say our token is stale (get a new one and retry)? */
bool etcd_is_token_error(const char *msg);
/* Credentials, no token yet, and etcd has auth on (as far as we know). */
bool etcd_need_token(const struct etcd_client *c);
void etcd_drop_token(struct etcd_client *c);
/* Get a token from the current endpoint before deadline: ETCD_OK or why not, in e. */
int etcd_authenticate(struct etcd_client *c, int64_t deadline, struct pgha_err *e);
/* Every endpoint failed: ask for the member list at the next chance. */
void etcd_sync_soon(struct etcd_client *c);
/* Sync the endpoint list now if it is due (no-op with sync off). */
void etcd_sync_if_due(struct etcd_client *c);

#endif
