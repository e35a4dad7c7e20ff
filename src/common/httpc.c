#include "common/httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;

static void httpc_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct strbuf *sb = arg;
	size_t n = size * nmemb;
	if (sb->len + n > 1024 * 1024)
		return 0;   /* too big: abort this transfer */
	sb_append(sb, ptr, n);
	return n;
}

int httpc_tls_load(struct httpc_tls *t, const char *ca_file, const char *cert_file, const char *key_file,
		   struct pgha_err *e)
{
	memset(t, 0, sizeof(*t));
	if (ca_file != NULL && ca_file[0] != '\0' && read_file(ca_file, &t->ca, &t->ca_len, e) != 0)
		goto fail;
	if (cert_file != NULL && cert_file[0] != '\0') {
		if (read_file(cert_file, &t->cert, &t->cert_len, e) != 0)
			goto fail;
		if (read_secret_text(key_file, &t->key, &t->key_len, e) != 0) {
			err_wrap(e, "key_file");
			goto fail;
		}
	}
	return 0;
fail:
	httpc_tls_free(t);
	return -1;
}

void httpc_tls_free(struct httpc_tls *t)
{
	free(t->ca);
	free(t->cert);
	if (t->key != NULL)
		secret_wipe_free(t->key, t->key_len);
	memset(t, 0, sizeof(*t));
}

static void set_blob(CURL *h, CURLoption opt, char *data, size_t len)
{
	struct curl_blob b = {.data = data, .len = len, .flags = CURL_BLOB_COPY};
	curl_easy_setopt(h, opt, &b);
}

/* With tls: verify the peer against the cluster's CA and present our certificate. */
static void set_tls(CURL *h, const struct httpc_tls *t)
{
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (t->ca != NULL)
		set_blob(h, CURLOPT_CAINFO_BLOB, t->ca, t->ca_len);
	if (t->cert != NULL) {
		set_blob(h, CURLOPT_SSLCERT_BLOB, t->cert, t->cert_len);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		set_blob(h, CURLOPT_SSLKEY_BLOB, t->key, t->key_len);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

void httpc_run(struct httpc_req *reqs, size_t n, int timeout_ms)
{
	pthread_once(&httpc_once, httpc_global_init);
	CURLM *multi = curl_multi_init();
	CURL **handles = xcalloc(n, sizeof(*handles));
	char (*detail)[CURL_ERROR_SIZE] = xcalloc(n ? n : 1, sizeof(*detail));
	struct curl_slist **hdrs = xcalloc(n, sizeof(*hdrs));
	for (size_t i = 0; i < n; i++) {
		struct httpc_req *r = &reqs[i];
		r->status = 0;
		r->error[0] = '\0';
		sb_init(&r->resp);
		if (r->tls != NULL && r->tls->https_only && strncasecmp(r->url, "https://", 8) != 0) {
			snprintf(r->error, sizeof(r->error), "not called: [tls] is on and the URL is not https://");
			continue;
		}
		CURL *h = curl_easy_init();
		handles[i] = h;
		curl_easy_setopt(h, CURLOPT_URL, r->url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->resp);
		curl_easy_setopt(h, CURLOPT_PRIVATE, r);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail[i]);
		if (r->tls != NULL)
			set_tls(h, r->tls);
		if (r->body != NULL) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
			hdrs[i] = curl_slist_append(hdrs[i], "Content-Type: application/json");
		}
		if (r->bearer != NULL) {
			/* curl copies the line; ours is wiped at once. */
			char *auth = xasprintf("Authorization: Bearer %s", r->bearer);
			hdrs[i] = curl_slist_append(hdrs[i], auth);
			explicit_bzero(auth, strlen(auth));
			free(auth);
		}
		if (hdrs[i] != NULL)
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs[i]);
		curl_multi_add_handle(multi, h);
	}
	int running = 1;
	while (running > 0) {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		if (running > 0 && curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			break;
	}
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct httpc_req *r = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r == NULL)
			continue;
		if (msg->data.result == CURLE_OK) {
			long code = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			r->status = (int)code;
		} else {
			/* The detail says which check failed ("no alternative certificate subject name matches ..."). */
			const char *d = detail[(size_t)(r - reqs)];
			snprintf(r->error, sizeof(r->error), "%s%s%s", curl_easy_strerror(msg->data.result),
				 d[0] ? ": " : "", d);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (handles[i] == NULL)
			continue;
		curl_multi_remove_handle(multi, handles[i]);
		curl_easy_cleanup(handles[i]);
		for (struct curl_slist *l = hdrs[i]; l != NULL; l = l->next)
			explicit_bzero(l->data, strlen(l->data));
		curl_slist_free_all(hdrs[i]);
	}
	free(hdrs);
	free(handles);
	free(detail);
	curl_multi_cleanup(multi);
}
