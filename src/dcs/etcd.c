/*
 * etcd.c — etcd v3 client over the JSON gateway: libcurl transport, endpoint
 * failover, deadlines, auth tokens, and the streaming watch thread.
 *
 * Retry policy of one call (etcd_call):
 * - the call has a deadline (opts.deadline_ms); every HTTP request gets
 *   min(request_timeout_ms, time left) so the deadline holds;
 * - a failure that may be the endpoint's fault (connect/transport error, HTTP
 *   5xx without an etcd error, an etcd "unavailable" error such as no leader,
 *   or a reply we cannot parse) moves to the next endpoint and tries again;
 * - at most RETRY_ROUNDS passes over the endpoint list, with a short backoff
 *   between passes, so a total outage fails fast instead of spinning;
 * - an answer from etcd that is final (lease not found, auth denied, invalid
 *   argument) is returned at once;
 * - an invalid or expired token is refreshed once per call.
 * Retrying a write whose reply was lost can apply it twice; puts and deletes
 * are idempotent, and the CAS helpers below recognize their own earlier write.
 */
#include "dcs/etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "dcs/etcd_codec.h"

#define ETCD_MAX_ENDPOINTS 32
#define ETCD_MAX_REPLY (16u * 1024 * 1024) /* one reply / one watch message */
#define RETRY_ROUNDS 4
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000
#define WATCH_BACKOFF_MAX_MS 5000

struct etcd_client {
	char **endpoints;
	size_t nendpoints;
	size_t cur;              /* endpoint to try first: the last one that worked */
	char *username;          /* NULL = no auth */
	char *password;          /* wiped on free */
	char *token;             /* wiped on free; NULL until authenticated */
	bool auth_disabled;      /* etcd said auth is not enabled: send no token */
	char *ca_file;
	int request_timeout_ms;
	int deadline_ms;
	bool healthy;            /* last request succeeded (for quieter logs) */
	CURL *curl;              /* reused: keeps the connection alive */
	atomic_bool *cancel;     /* watch's stop flag, NULL for a normal client */
};

/* ------------------------------------------------------------- curl setup */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int curl_ready(struct pgha_err *e)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return err_set(e, "cannot initialize libcurl: %s", curl_easy_strerror(curl_init_rc));
	return 0;
}

/* Body sink with a size cap: a runaway reply aborts the transfer. */
struct sink {
	struct strbuf sb;
	bool overflow;
};

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;
	if (s->sb.len + n > ETCD_MAX_REPLY) {
		s->overflow = true;
		return 0;
	}
	sb_append(&s->sb, ptr, n);
	return n;
}

/* Replies may carry a token: wipe before freeing. */
static void sink_free(struct sink *s)
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

/* Options shared by unary requests and the watch stream. */
static void set_common_opts(CURL *h, const struct etcd_client *c, const char *url,
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
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
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
static struct curl_slist *make_headers(const char *token)
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

/* ------------------------------------------------------------- the client */

static void free_endpoints(char **eps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(eps[i]);
	free(eps);
}

/* Split "url1, url2/" into trimmed URLs without trailing slashes. */
static int parse_endpoints(const char *list, char ***out, size_t *n, struct pgha_err *e)
{
	char **eps = xcalloc(ETCD_MAX_ENDPOINTS, sizeof(*eps));
	size_t cnt = 0;
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ",");
		const char *s = p, *end = p + len;
		p = *end ? end + 1 : end;
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '/'))
			end--;
		if (s == end)
			continue;
		char *url = xstrndup(s, (size_t)(end - s));
		if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
			err_set(e, "etcd endpoint \"%s\" is not an http:// or https:// URL", url);
			free(url);
			goto fail;
		}
		if (cnt == ETCD_MAX_ENDPOINTS) {
			err_set(e, "more than %d etcd endpoints", ETCD_MAX_ENDPOINTS);
			free(url);
			goto fail;
		}
		eps[cnt++] = url;
	}
	if (cnt == 0) {
		err_set(e, "no etcd endpoint given");
		goto fail;
	}
	*out = eps;
	*n = cnt;
	return 0;
fail:
	free_endpoints(eps, cnt);
	return -1;
}

struct etcd_client *etcd_new(const struct etcd_opts *opts, struct pgha_err *e)
{
	if (opts == NULL || opts->endpoints == NULL) {
		err_set(e, "no etcd endpoint given");
		return NULL;
	}
	if (curl_ready(e) != 0)
		return NULL;
	struct etcd_client *c = xcalloc(1, sizeof(*c));
	if (parse_endpoints(opts->endpoints, &c->endpoints, &c->nendpoints, e) != 0)
		goto fail;
	if (opts->username && opts->username[0]) {
		c->username = xstrdup(opts->username);
		c->password = xstrdup(opts->password ? opts->password : "");
	}
	if (opts->ca_file && opts->ca_file[0])
		c->ca_file = xstrdup(opts->ca_file);
	c->request_timeout_ms = opts->request_timeout_ms > 0 ? opts->request_timeout_ms : 2000;
	c->deadline_ms = opts->deadline_ms > 0 ? opts->deadline_ms : 5000;
	c->healthy = true;
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		err_set(e, "cannot create a libcurl handle");
		goto fail;
	}
	return c;
fail:
	etcd_free(c);
	return NULL;
}

void etcd_free(struct etcd_client *c)
{
	if (c == NULL)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free_endpoints(c->endpoints, c->nendpoints);
	free(c->username);
	secret_free(c->password);
	secret_free(c->token);
	free(c->ca_file);
	free(c);
}

void etcd_set_deadline(struct etcd_client *c, int deadline_ms)
{
	c->deadline_ms = deadline_ms > 0 ? deadline_ms : 5000;
}

const char *etcd_current_endpoint(const struct etcd_client *c)
{
	return c->endpoints[c->cur];
}

/* Move on after the current endpoint failed; reason (naming it) goes to the log. */
static void next_endpoint(struct etcd_client *c, const char *reason)
{
	c->cur = (c->cur + 1) % c->nendpoints;
	if (c->healthy)
		log_warn("%s; trying %s", reason, c->endpoints[c->cur]);
	else
		log_debug("%s; trying %s", reason, c->endpoints[c->cur]);
	c->healthy = false;
}

/* --------------------------------------------------------- one exchange */

/* Outcome classes of one attempt, deciding what etcd_call does next. */
enum attempt {
	ATT_DONE,       /* final answer (success or an error to return) */
	ATT_NEXT,       /* try the next endpoint */
	ATT_REAUTH,     /* token rejected: authenticate again, same endpoint */
};

/*
 * POST body to endpoint+path within timeout_ms. Returns 0 with *status and
 * the body in s when an HTTP answer came back; ETCD_EPROTO for a reply that
 * was too large or cut short, ETCD_EUNAVAIL for other transport failures.
 */
static int http_post(struct etcd_client *c, const char *ep, const char *path, const char *body,
		     const char *token, int64_t timeout_ms, long *status, struct sink *s,
		     struct pgha_err *e)
{
	char *url = xasprintf("%s%s", ep, path);
	struct curl_slist *hdrs = make_headers(token);
	CURL *h = c->curl;

	curl_easy_reset(h);
	set_common_opts(h, c, url, body, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	CURLcode rc = curl_easy_perform(h);
	/* The handle keeps pointers to the header list: drop them now. */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
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
		err_set(e, "%s", rc == CURLE_ABORTED_BY_CALLBACK ? "canceled" : curl_easy_strerror(rc));
		return ETCD_EUNAVAIL;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

static bool is_token_error(const char *msg)
{
	return strstr(msg, "invalid auth token") != NULL || strstr(msg, "auth store is old") != NULL ||
	       strstr(msg, "user name is empty") != NULL;
}

/* Decoder of a 200 reply; ctx is the caller's output. */
typedef int (*etcd_decoder)(const char *body, void *ctx, struct pgha_err *e);

/*
 * Classify an HTTP answer. Sets *rc to the call's result when ATT_DONE,
 * or to the error to report if the retries run out.
 */
static enum attempt classify(struct etcd_client *c, long status, const char *body,
			     etcd_decoder dec, void *ctx, int *rc, struct pgha_err *e)
{
	if (status == 200) {
		*rc = dec(body, ctx, e);
		if (*rc == ETCD_EUNAVAIL || *rc == ETCD_EPROTO)
			return ATT_NEXT;
		if (*rc == ETCD_EAUTH && c->username && is_token_error(e->msg))
			return ATT_REAUTH;
		return ATT_DONE;
	}
	*rc = etcd_dec_error(body, e);
	if (*rc == ETCD_OK) {
		/* Not etcd's error object: a proxy page, garbage, a crash. */
		err_set(e, "HTTP %ld with a reply that is not an etcd error", status);
		*rc = status >= 500 ? ETCD_EUNAVAIL : ETCD_EPROTO;
		return ATT_NEXT;
	}
	if (*rc == ETCD_EAUTH && c->username && is_token_error(e->msg))
		return ATT_REAUTH;
	/* 5xx: the server had a problem, whatever it was; another may not. */
	if (*rc == ETCD_EUNAVAIL || (*rc == ETCD_EPROTO && status >= 500))
		return ATT_NEXT;
	return ATT_DONE;
}

/* A caller mistake: ETCD_EINVAL with the message. */
static int bad_arg(struct pgha_err *e, const char *msg)
{
	err_set(e, "%s", msg);
	return ETCD_EINVAL;
}

static int64_t time_left(int64_t deadline)
{
	return deadline - now_ms();
}

static int64_t request_timeout(const struct etcd_client *c, int64_t deadline)
{
	int64_t left = time_left(deadline);
	return left < c->request_timeout_ms ? left : c->request_timeout_ms;
}

static int dec_auth_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_auth(body, ctx, e);
}

/*
 * Get a token from endpoint `ep`. ATT_DONE with *rc = ETCD_OK when a token was
 * obtained (or etcd runs without auth), ATT_NEXT when this endpoint failed.
 */
static enum attempt authenticate(struct etcd_client *c, const char *ep, int64_t deadline,
				 int *rc, struct pgha_err *e)
{
	const char *path = "/v3/auth/authenticate";
	char *body = etcd_enc_auth(c->username, c->password);
	struct sink s = {STRBUF_INIT, false};
	long status = 0;
	char *token = NULL;
	enum attempt att = ATT_NEXT;

	*rc = http_post(c, ep, path, body, NULL, request_timeout(c, deadline), &status, &s, e);
	if (*rc != 0)
		goto out;
	att = classify(c, status, sb_str(&s.sb), dec_auth_ctx, &token, rc, e);
	if (*rc == ETCD_EAUTH && strstr(e->msg, "authentication is not enabled") != NULL) {
		/* Credentials configured before `etcdctl auth enable`: carry on. */
		if (!c->auth_disabled)
			log_warn("etcd %s: a username is configured but etcd authentication is "
				 "not enabled; sending requests without a token", ep);
		c->auth_disabled = true;
		*rc = ETCD_OK;
		att = ATT_DONE;
	} else if (*rc == ETCD_OK) {
		secret_free(c->token);
		c->token = token;
		c->auth_disabled = false;
		att = ATT_DONE;
	} else if (att == ATT_REAUTH) {
		att = ATT_DONE; /* the authenticate call itself was refused */
	}
out:
	explicit_bzero(body, strlen(body));
	free(body);
	sink_free(&s);
	if (*rc != ETCD_OK)
		err_wrap(e, "etcd %s%s (user \"%s\")", ep, path, c->username);
	return att;
}

static bool need_token(const struct etcd_client *c)
{
	return c->username != NULL && c->token == NULL && !c->auth_disabled;
}

/* Sleep between rounds; false if canceled. */
static bool backoff_sleep(struct etcd_client *c, int round, int64_t deadline)
{
	int64_t ms = (int64_t)BACKOFF_FIRST_MS << (round - 1 < 4 ? round - 1 : 4);
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	if (ms > time_left(deadline))
		ms = time_left(deadline);
	while (ms > 0) {
		if (c->cancel && atomic_load(c->cancel))
			return false;
		int64_t step = ms < 100 ? ms : 100;
		sleep_ms(step);
		ms -= step;
	}
	return true;
}

static void drop_token(struct etcd_client *c)
{
	secret_free(c->token);
	c->token = NULL;
	c->auth_disabled = false;
}

/*
 * One try on the current endpoint: authenticate if needed, POST, classify.
 * Any error in *last names the endpoint and the path.
 */
static enum attempt attempt_once(struct etcd_client *c, const char *path, const char *body,
				 int64_t deadline, etcd_decoder dec, void *ctx, int *rc,
				 struct pgha_err *last)
{
	const char *ep = c->endpoints[c->cur];
	enum attempt att = ATT_NEXT;
	if (need_token(c)) {
		att = authenticate(c, ep, deadline, rc, last);
		if (att != ATT_DONE || *rc != ETCD_OK)
			return att;
	}
	struct sink s = {STRBUF_INIT, false};
	long status = 0;
	const char *tok = c->auth_disabled ? NULL : c->token;
	*rc = http_post(c, ep, path, body, tok, request_timeout(c, deadline), &status, &s, last);
	if (*rc == 0)
		att = classify(c, status, sb_str(&s.sb), dec, ctx, rc, last);
	sink_free(&s);
	if (*rc != ETCD_OK)
		err_wrap(last, "etcd %s%s", ep, path);
	return att;
}

/*
 * One logical call: POST body to path, decode a 200 reply with dec, retrying
 * across endpoints as described at the top of this file.
 */
static int etcd_call(struct etcd_client *c, const char *path, const char *body,
		     etcd_decoder dec, void *ctx, struct pgha_err *e)
{
	int64_t start = now_ms(), deadline = start + c->deadline_ms;
	size_t max_attempts = RETRY_ROUNDS * c->nendpoints;
	bool reauthed = false, answered = false;
	int rc = ETCD_EUNAVAIL;
	struct pgha_err last;

	if (body == NULL)
		return bad_arg(e, "etcd: invalid request arguments");
	snprintf(last.msg, sizeof(last.msg), "no attempt made");
	for (size_t i = 0; i < max_attempts && !answered; i++) {
		if (i > 0 && i % c->nendpoints == 0 &&
		    !backoff_sleep(c, (int)(i / c->nendpoints), deadline))
			break;
		if (time_left(deadline) <= 0 || (c->cancel && atomic_load(c->cancel)))
			break;
		enum attempt att = attempt_once(c, path, body, deadline, dec, ctx, &rc, &last);
		if (att == ATT_REAUTH && !reauthed) {
			/* Expired or foreign token: get a new one, retry here. */
			reauthed = true;
			drop_token(c);
			max_attempts++;
		} else if (att == ATT_NEXT) {
			next_endpoint(c, last.msg);
		} else {
			answered = true;
			c->healthy = true;
		}
	}
	if (!answered && (rc == ETCD_OK || rc == ETCD_EUNAVAIL)) {
		err_set(e, "etcd: no endpoint answered %s (%" PRId64 " ms, deadline %d ms; last error: %s)",
			path, now_ms() - start, c->deadline_ms, last.msg);
		return ETCD_EUNAVAIL;
	}
	if (rc != ETCD_OK && e)
		memcpy(e->msg, last.msg, sizeof(e->msg));
	return rc;
}

static int dec_any_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return ETCD_OK;
}

int etcd_post(struct etcd_client *c, const char *path, const char *body, struct pgha_err *e)
{
	return etcd_call(c, path, body, dec_any_ctx, NULL, e);
}

/* ------------------------------------------------------------------- KV */

static int dec_range_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_range(body, ctx, e);
}

static int get_impl(struct etcd_client *c, const char *key, bool prefix, struct etcd_kvs *out,
		    struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	if (key == NULL)
		return bad_arg(e, "etcd get: no key");
	char *body = etcd_enc_range(key, prefix);
	int rc = etcd_call(c, "/v3/kv/range", body, dec_range_ctx, out, e);
	free(body);
	return rc;
}

int etcd_get(struct etcd_client *c, const char *key, struct etcd_kvs *out, struct pgha_err *e)
{
	return get_impl(c, key, false, out, e);
}

int etcd_get_prefix(struct etcd_client *c, const char *prefix, struct etcd_kvs *out,
		    struct pgha_err *e)
{
	return get_impl(c, prefix, true, out, e);
}

static int dec_put_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_put(body, ctx, e);
}

int etcd_put(struct etcd_client *c, const char *key, const char *value, int64_t lease,
	     struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || value == NULL)
		return bad_arg(e, "etcd put: no key or value");
	int64_t rev = 0;
	char *body = etcd_enc_put(key, value, lease);
	int rc = etcd_call(c, "/v3/kv/put", body, dec_put_ctx, &rev, e);
	free(body);
	return rc;
}

static int dec_delete_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_delete(body, ctx, e);
}

static int delete_impl(struct etcd_client *c, const char *key, bool prefix, int64_t *deleted,
		       struct pgha_err *e)
{
	if (key == NULL || (!prefix && key[0] == '\0'))
		return bad_arg(e, "etcd delete: no key");
	int64_t n = 0;
	char *body = etcd_enc_delete(key, prefix);
	int rc = etcd_call(c, "/v3/kv/deleterange", body, dec_delete_ctx, &n, e);
	free(body);
	if (rc == ETCD_OK && deleted)
		*deleted = n;
	return rc;
}

int etcd_delete(struct etcd_client *c, const char *key, int64_t *deleted, struct pgha_err *e)
{
	return delete_impl(c, key, false, deleted, e);
}

int etcd_delete_prefix(struct etcd_client *c, const char *prefix, int64_t *deleted,
		       struct pgha_err *e)
{
	return delete_impl(c, prefix, true, deleted, e);
}

/* ------------------------------------------------------------------ txn */

struct txn_ctx {
	bool succeeded;
	struct etcd_kvs ranges;
};

static int dec_txn_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	struct txn_ctx *t = ctx;
	/* A retried attempt must not append twice: start from empty each time. */
	etcd_kvs_free(&t->ranges);
	return etcd_dec_txn(body, &t->succeeded, &t->ranges, e);
}

static void kvs_append_move(struct etcd_kvs *dst, struct etcd_kvs *src)
{
	if (src->count > 0) {
		dst->kvs = xrealloc(dst->kvs, (dst->count + src->count) * sizeof(*dst->kvs));
		memcpy(dst->kvs + dst->count, src->kvs, src->count * sizeof(*src->kvs));
		dst->count += src->count;
	}
	dst->revision = src->revision;
	free(src->kvs);
	memset(src, 0, sizeof(*src));
}

int etcd_txn(struct etcd_client *c, const struct etcd_cmp *cmps, size_t ncmps,
	     const struct etcd_op *success, size_t nsuccess, const struct etcd_op *failure,
	     size_t nfailure, bool *succeeded, struct etcd_kvs *ranges, struct pgha_err *e)
{
	struct txn_ctx t = {false, {0}};
	char *body = etcd_enc_txn(cmps, ncmps, success, nsuccess, failure, nfailure);
	if (body == NULL)
		return bad_arg(e, "etcd txn: invalid compare or operation");
	int rc = etcd_call(c, "/v3/kv/txn", body, dec_txn_ctx, &t, e);
	free(body);
	if (rc == ETCD_OK) {
		if (succeeded)
			*succeeded = t.succeeded;
		if (ranges)
			kvs_append_move(ranges, &t.ranges);
	}
	etcd_kvs_free(&t.ranges);
	return rc;
}

/*
 * After a failed compare: is the key already exactly what we meant to write?
 * Then an earlier attempt of this very call got through but its reply was
 * lost. For a create that counts only under our own lease (non-zero, hence
 * unique): without one, another writer of the same value cannot be told apart.
 * For a put-if-value the desired state is reached either way.
 */
static bool is_own_write(const struct etcd_kvs *r, const char *key, const char *value,
			 int64_t lease, bool need_lease)
{
	const struct etcd_kv *kv = etcd_kvs_find(r, key);
	if (kv == NULL || (need_lease && lease == 0))
		return false;
	return kv->lease == lease && kv->value_len == strlen(value) &&
	       strcmp(kv->value, value) == 0;
}

/* Put key=value if every compare holds; a range of the key on failure lets
 * us recognize a lost reply of our own earlier attempt. */
static int cas_put(struct etcd_client *c, const struct etcd_cmp *cmps, size_t ncmps,
		   const char *key, const char *value, int64_t lease, bool need_lease, bool *done,
		   struct pgha_err *e)
{
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = value, .lease = lease};
	struct etcd_op get = {.type = ETCD_OP_RANGE, .key = key};
	struct etcd_kvs r = {0};
	bool ok = false;
	int rc = etcd_txn(c, cmps, ncmps, &put, 1, &get, 1, &ok, &r, e);
	if (rc == ETCD_OK && !ok && is_own_write(&r, key, value, lease, need_lease))
		ok = true;
	etcd_kvs_free(&r);
	if (rc == ETCD_OK && done)
		*done = ok;
	return rc;
}

int etcd_create(struct etcd_client *c, const char *key, const char *value, int64_t lease,
		bool *created, struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || value == NULL)
		return bad_arg(e, "etcd create: no key or value");
	struct etcd_cmp cmp = {.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL,
			       .number = 0};
	return cas_put(c, &cmp, 1, key, value, lease, true, created, e);
}

int etcd_put_if_value(struct etcd_client *c, const char *key, const char *expected,
		      const char *value, int64_t lease, bool *done, struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || value == NULL || expected == NULL)
		return bad_arg(e, "etcd put_if_value: no key, value or expected value");
	/* VALUE == "" would also match an absent key; require existence too. */
	struct etcd_cmp cmp[2] = {
		{.key = key, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = expected},
		{.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_GREATER, .number = 0},
	};
	return cas_put(c, cmp, 2, key, value, lease, false, done, e);
}

int etcd_delete_if_value(struct etcd_client *c, const char *key, const char *expected,
			 bool *done, struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || expected == NULL)
		return bad_arg(e, "etcd delete_if_value: no key or expected value");
	struct etcd_cmp cmp[2] = {
		{.key = key, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = expected},
		{.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_GREATER, .number = 0},
	};
	struct etcd_op del = {.type = ETCD_OP_DELETE, .key = key};
	return etcd_txn(c, cmp, 2, &del, 1, NULL, 0, done, NULL, e);
}

/* ---------------------------------------------------------------- leases */

struct grant_ctx {
	int64_t id;
	int64_t ttl;
};

static int dec_grant_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	struct grant_ctx *g = ctx;
	return etcd_dec_lease_grant(body, &g->id, &g->ttl, e);
}

int etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, int64_t *lease_id, struct pgha_err *e)
{
	if (ttl_s <= 0)
		return bad_arg(e, "etcd lease grant: the TTL must be positive");
	struct grant_ctx g = {0, 0};
	char *body = etcd_enc_lease_grant(ttl_s);
	int rc = etcd_call(c, "/v3/lease/grant", body, dec_grant_ctx, &g, e);
	free(body);
	if (rc == ETCD_OK)
		*lease_id = g.id;
	return rc;
}

static int dec_keepalive_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_lease_keepalive(body, ctx, e);
}

int etcd_lease_keepalive(struct etcd_client *c, int64_t lease_id, int64_t *ttl_left,
			 struct pgha_err *e)
{
	int64_t ttl = 0;
	char *body = etcd_enc_lease_id(lease_id);
	int rc = etcd_call(c, "/v3/lease/keepalive", body, dec_keepalive_ctx, &ttl, e);
	free(body);
	if (rc == ETCD_OK && ttl_left)
		*ttl_left = ttl;
	return rc;
}

static int dec_revoke_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	int64_t rev;
	return etcd_dec_put(body, &rev, e); /* a bare {"header":...} like put's */
}

/* Both /v3/lease/revoke and /v3/kv/lease/revoke work on 3.4; the former is
 * the path newer releases keep. */
int etcd_lease_revoke(struct etcd_client *c, int64_t lease_id, struct pgha_err *e)
{
	char *body = etcd_enc_lease_id(lease_id);
	int rc = etcd_call(c, "/v3/lease/revoke", body, dec_revoke_ctx, NULL, e);
	free(body);
	return rc;
}

/* ----------------------------------------------------------------- watch */

struct etcd_watch {
	struct etcd_client *c;      /* endpoints and auth; used by the thread only */
	char *prefix;
	etcd_watch_cb cb;
	void *arg;
	int64_t next_rev;           /* first revision not yet delivered (0 = now) */
	atomic_bool stop;
	pthread_t thread;
	CURLM *multi;               /* created before the thread: stop can wake it */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* State of the current connection. */
	CURL *easy;
	struct strbuf line;         /* message being received */
	struct sink errbody;        /* body of a non-200 answer */
	long status;
	bool created;               /* first message seen on this connection */
	bool broken;                /* decode failure or cancel: drop the connection */
	bool token_rejected;
	struct pgha_err err;
	int fails;                  /* consecutive failed connections */
};

/* A long outage should not flood the log: the first failure and every
 * tenth after it are warnings, the rest debug lines. */
#define WATCH_LOG_LEVEL(w) ((w)->fails % 10 == 0 ? LOG_WARN : LOG_DEBUG)

/* Track what was delivered, so a reconnect resumes right after it. */
static void watch_event(void *arg, const struct etcd_event *ev, int64_t revision)
{
	struct etcd_watch *w = arg;
	if (ev->kv->mod_revision + 1 > w->next_rev)
		w->next_rev = ev->kv->mod_revision + 1;
	w->cb(w->arg, ev, revision);
}

static void watch_message(struct etcd_watch *w, const char *msg)
{
	int64_t rev = 0, compact = 0;
	bool canceled = false;
	struct pgha_err e = {{0}};
	int rc = etcd_dec_watch_msg(msg, watch_event, w, &rev, &canceled, &compact, &e);
	if (rc != ETCD_OK) {
		w->token_rejected = rc == ETCD_EAUTH && is_token_error(e.msg);
		err_set(&w->err, "%s", e.msg);
		w->broken = true;
		return;
	}
	if (!w->created) {
		/* (Re)connected: from here on nothing is missed, so tell the
		 * consumer to re-read everything now. */
		w->created = true;
		if (w->next_rev == 0 && rev > 0)
			w->next_rev = rev + 1;
		log_info("etcd watch on %s established at %s (revision %" PRId64 ")", w->prefix,
			 etcd_current_endpoint(w->c), rev);
		w->cb(w->arg, NULL, rev);
	}
	if (canceled) {
		if (compact > 0 && compact > w->next_rev) {
			/* Events before compact are gone: resume there; the
			 * reconnect's NULL callback makes the consumer re-read. */
			w->next_rev = compact;
		}
		/* etcd cancels (rather than fails) a watch whose token it no
		 * longer knows, e.g. after a restart: get a new one. */
		w->token_rejected = is_token_error(e.msg);
		if (compact > 0)
			err_set(&w->err, "%s (compact revision %" PRId64 ")", e.msg, compact);
		else
			err_set(&w->err, "%s", e.msg);
		w->broken = true;
	}
}

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\r' && s[i] != '\n' && s[i] != '\t')
			return false;
	return true;
}

/* Stream bytes: split into newline-terminated JSON messages. */
static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct etcd_watch *w = ud;
	size_t n = size * nmemb;
	if (atomic_load(&w->stop))
		return 0;
	if (w->status == 0)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->status != 200)
		return sink_write(ptr, 1, n, &w->errbody);
	for (size_t off = 0; off < n && !w->broken;) {
		const char *nl = memchr(ptr + off, '\n', n - off);
		size_t chunk = nl ? (size_t)(nl - (ptr + off)) : n - off;
		if (w->line.len + chunk > ETCD_MAX_REPLY) {
			err_set(&w->err, "watch message larger than %u bytes", ETCD_MAX_REPLY);
			w->broken = true;
			break;
		}
		sb_append(&w->line, ptr + off, chunk);
		off += chunk;
		if (nl == NULL)
			break;
		off++;
		if (!is_blank(w->line.data, w->line.len))
			watch_message(w, w->line.data);
		sb_reset(&w->line);
	}
	return w->broken ? 0 : n;
}

static CURL *watch_open(struct etcd_watch *w, const char *url, const char *body,
			struct curl_slist *hdrs)
{
	CURL *h = curl_easy_init();
	if (h == NULL)
		return NULL;
	set_common_opts(h, w->c, url, body, hdrs);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)w->c->request_timeout_ms);
	/* The stream is idle when nothing changes: let TCP notice a dead peer. */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	return h;
}

/* Drive the transfer until it ends, breaks, stalls before "created", or stop. */
static CURLcode watch_pump(struct etcd_watch *w)
{
	int64_t start = now_ms();
	CURLcode result = CURLE_OK;
	int running = 1;
	while (running && !atomic_load(&w->stop) && !w->broken) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			return CURLE_RECV_ERROR;
		int left;
		CURLMsg *m;
		while ((m = curl_multi_info_read(w->multi, &left)) != NULL)
			if (m->msg == CURLMSG_DONE)
				result = m->data.result;
		if (!running)
			break;
		if (!w->created && now_ms() - start > w->c->request_timeout_ms) {
			err_set(&w->err, "no answer within %d ms", w->c->request_timeout_ms);
			w->broken = true;
			break;
		}
		curl_multi_poll(w->multi, NULL, 0, 500, NULL);
	}
	return result;
}

/* Why the connection ended, into w->err (unless already set). */
static void watch_explain(struct etcd_watch *w, CURLcode res)
{
	if (w->broken || atomic_load(&w->stop))
		return;
	if (w->status != 0 && w->status != 200) {
		struct pgha_err e = {{0}};
		int rc = etcd_dec_error(sb_str(&w->errbody.sb), &e);
		if (rc == ETCD_OK)
			err_set(&w->err, "HTTP %ld with a reply that is not an etcd error",
				w->status);
		else
			err_set(&w->err, "%s", e.msg);
		w->token_rejected = rc == ETCD_EAUTH && is_token_error(e.msg);
	} else if (!is_blank(w->line.data, w->line.len)) {
		/* A last message without its newline: say what it was. */
		watch_message(w, w->line.data);
		if (!w->broken)
			err_set(&w->err, "stream closed by the server");
	} else if (res != CURLE_OK) {
		err_set(&w->err, "%s", curl_easy_strerror(res));
	} else {
		err_set(&w->err, "stream closed by the server");
	}
}

/* One connection: true if it was established and worked for a while. */
static bool watch_connect(struct etcd_watch *w)
{
	const char *ep = etcd_current_endpoint(w->c);
	char *url = xasprintf("%s/v3/watch", ep);
	char *body = etcd_enc_watch_create(w->prefix, w->next_rev);
	const char *tok = w->c->auth_disabled ? NULL : w->c->token;
	struct curl_slist *hdrs = make_headers(tok);

	w->status = 0;
	w->created = w->broken = w->token_rejected = false;
	err_clear(&w->err);
	sb_reset(&w->line);
	int64_t started = now_ms();
	w->easy = watch_open(w, url, body, hdrs);
	CURLcode res = CURLE_FAILED_INIT;
	if (w->easy && curl_multi_add_handle(w->multi, w->easy) == CURLM_OK) {
		res = watch_pump(w);
		curl_multi_remove_handle(w->multi, w->easy);
	}
	watch_explain(w, res);
	if (w->easy)
		curl_easy_cleanup(w->easy);
	w->easy = NULL;
	curl_slist_free_all(hdrs);
	sink_free(&w->errbody);
	free(body);
	free(url);
	if (!atomic_load(&w->stop))
		log_at(WATCH_LOG_LEVEL(w), "etcd watch on %s at %s ended: %s", w->prefix, ep,
		       w->err.msg);
	if (w->token_rejected)
		drop_token(w->c);
	/* Created and lasted: not a connection that fails at once (a watch
	 * canceled for lack of permission would otherwise spin). */
	return w->created && now_ms() - started >= 1000;
}

/* Sleep up to ms, waking at once on stop. */
static void watch_sleep(struct etcd_watch *w, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	while (!atomic_load(&w->stop) &&
	       pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&w->lock);
}

/* Authenticate on the current endpoint if needed; false to back off. */
static bool watch_auth(struct etcd_watch *w)
{
	if (!need_token(w->c))
		return true;
	int rc;
	struct pgha_err e = {{0}};
	int64_t deadline = now_ms() + w->c->request_timeout_ms;
	authenticate(w->c, etcd_current_endpoint(w->c), deadline, &rc, &e);
	if (rc == ETCD_OK)
		return true;
	if (!atomic_load(&w->stop))
		log_at(WATCH_LOG_LEVEL(w), "etcd watch on %s: %s", w->prefix, e.msg);
	return false;
}

static void *watch_main(void *arg)
{
	struct etcd_watch *w = arg;
	int64_t backoff = BACKOFF_FIRST_MS;
	log_set_context("etcd watch");
	while (!atomic_load(&w->stop)) {
		bool ok = watch_auth(w) && watch_connect(w);
		if (atomic_load(&w->stop))
			break;
		/* A connection that worked earns a quick retry; repeated
		 * failures back off, moving through the endpoints. */
		if (ok) {
			backoff = BACKOFF_FIRST_MS;
			w->fails = 0;
		} else {
			w->fails++;
		}
		w->c->cur = (w->c->cur + 1) % w->c->nendpoints;
		watch_sleep(w, backoff);
		if (!ok)
			backoff = backoff * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

static void watch_free(struct etcd_watch *w)
{
	if (w->multi)
		curl_multi_cleanup(w->multi);
	etcd_free(w->c);
	free(w->prefix);
	sb_free(&w->line);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

struct etcd_watch *etcd_watch_start(const struct etcd_opts *opts, const char *prefix,
				    int64_t start_rev, etcd_watch_cb cb, void *arg,
				    struct pgha_err *e)
{
	if (prefix == NULL || cb == NULL) {
		err_set(e, "etcd watch: no prefix or callback");
		return NULL;
	}
	struct etcd_watch *w = xcalloc(1, sizeof(*w));
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&w->lock, NULL);
	atomic_init(&w->stop, false);
	sb_init(&w->line);
	w->prefix = xstrdup(prefix);
	w->cb = cb;
	w->arg = arg;
	w->next_rev = start_rev > 0 ? start_rev : 0;
	w->c = etcd_new(opts, e);
	if (w->c == NULL)
		goto fail;
	w->c->cancel = &w->stop;
	w->multi = curl_multi_init();
	if (w->multi == NULL) {
		err_set(e, "etcd watch: cannot create a libcurl multi handle");
		goto fail;
	}
	int rc = pthread_create(&w->thread, NULL, watch_main, w);
	if (rc != 0) {
		err_set(e, "etcd watch: cannot start thread: %s", strerror(rc));
		goto fail;
	}
	return w;
fail:
	watch_free(w);
	return NULL;
}

void etcd_watch_stop(struct etcd_watch *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	atomic_store(&w->stop, true);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	watch_free(w);
}
