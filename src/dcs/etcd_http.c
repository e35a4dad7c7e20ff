/*
 * etcd_http.c — one HTTP exchange with an etcd endpoint over libcurl: the
 * options every request carries (no proxy, no redirects, http(s) only, CA
 * file and client certificate, cancel flag), the request headers with the token, and a capped body
 * sink that wipes what it held (replies may carry a token).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "dcs/etcd_int.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int etcd_curl_ready(struct pgha_err *e)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return err_set(e, "cannot initialize libcurl: %s", curl_easy_strerror(curl_init_rc));
	return 0;
}

size_t etcd_sink_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct etcd_sink *s = ud;
	size_t n = size * nmemb;
	if (s->sb.len + n > ETCD_MAX_REPLY) {
		s->overflow = true;
		return 0;
	}
	sb_append(&s->sb, ptr, n);
	return n;
}

/* Replies may carry a token: wipe before freeing. */
void etcd_sink_free(struct etcd_sink *s)
{
	if (s->sb.data)
		explicit_bzero(s->sb.data, s->sb.cap);
	sb_free(&s->sb);
	s->overflow = false;
}

static int xfer_cancel(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	atomic_bool *cancel = ud;
	return atomic_load(cancel) ? 1 : 0;
}

void etcd_set_common_opts(CURL *h, const struct etcd_client *c, const char *url,
			  const char *body, struct curl_slist *hdrs)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	/* etcd is reached directly: a proxy from the environment (CI, desktops)
	 * would only add a failure point between the agent and its DCS. */
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	/* https: the peer's certificate and host name are always verified
	 * (curl's defaults, set here so nobody turns them off by accident). */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	}
	if (c->cancel) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cancel);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, c->cancel);
	}
}

/*
 * "Grpc-Metadata-hasleader: true" is the gateway spelling of clientv3's
 * WithRequireLeader: a member cut off from the raft leader answers "no
 * leader" at once instead of hanging, so we fail over quickly.
 */
struct curl_slist *etcd_make_headers(const char *token)
{
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	h = curl_slist_append(h, "Grpc-Metadata-hasleader: true");
	if (token) {
		char *line = xasprintf("Authorization: %s", token);
		h = curl_slist_append(h, line);
		explicit_bzero(line, strlen(line));
		free(line);
	}
	return h;
}

void etcd_curl_error(struct pgha_err *e, CURLcode rc, const char *detail, bool https, bool has_cert)
{
	const char *what = curl_easy_strerror(rc);
	const char *hint = "";
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
		hint = " (HINT: the etcd CA file must hold the CA that signed etcd's server certificate, "
		       "and the endpoint's host must be in that certificate)";
	/* A server that refuses the client's certificate (or its absence) ends
	 * the TLS session: with TLS 1.3 the client sees that on its first send
	 * or receive, without a word about certificates. */
	else if (https && (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR))
		hint = has_cert ? " (HINT: etcd may have refused this client's certificate: is it signed by "
				  "a CA in etcd's --trusted-ca-file?)"
				: " (HINT: if etcd runs with --client-cert-auth, it wants a client certificate: "
				  "set the etcd cert and key files)";
	if (detail[0] != '\0' && strcmp(detail, what) != 0)
		err_set(e, "%s: %s%s", what, detail, hint);
	else
		err_set(e, "%s%s", what, hint);
}

int etcd_http_post(struct etcd_client *c, const char *ep, const char *path, const char *body,
		   const char *token, int64_t timeout_ms, long *status, struct etcd_sink *s,
		   struct pgha_err *e)
{
	char *url = xasprintf("%s%s", ep, path);
	struct curl_slist *hdrs = etcd_make_headers(token);
	CURL *h = c->curl;
	char detail[CURL_ERROR_SIZE] = "";

	curl_easy_reset(h);
	etcd_set_common_opts(h, c, url, body, hdrs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_sink_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	CURLcode rc = curl_easy_perform(h);
	/* The handle keeps pointers to the header list and the buffer: drop them now. */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdrs);
	free(url);
	if (rc != CURLE_OK) {
		if (s->overflow) {
			err_set(e, "reply larger than %u bytes", ETCD_MAX_REPLY);
			return ETCD_EPROTO;
		}
		if (rc == CURLE_PARTIAL_FILE) {
			err_set(e, "reply cut short after %zu bytes", s->sb.len);
			return ETCD_EPROTO;
		}
		if (rc == CURLE_ABORTED_BY_CALLBACK)
			err_set(e, "canceled");
		else
			etcd_curl_error(e, rc, detail, strncmp(ep, "https://", 8) == 0, c->cert_file != NULL);
		return ETCD_EUNAVAIL;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return 0;
}