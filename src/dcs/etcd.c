/*
 * etcd.c — the etcd v3 client over the JSON gateway: endpoint list and
 * failover, deadlines and retries, auth tokens. The HTTP exchange itself is
 * etcd_http.c; the KV, txn and lease calls built on etcd_call are etcd_kv.c;
 * the watch thread is etcd_watch.c.
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
 * are idempotent, and the CAS helpers (etcd_kv.c) recognize their own earlier
 * write.
 */
#include "dcs/etcd.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "dcs/etcd_codec.h"
#include "dcs/etcd_int.h"

#define ETCD_MAX_ENDPOINTS 32
#define RETRY_ROUNDS 4
#define BACKOFF_MAX_MS 1000

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
	if (etcd_curl_ready(e) != 0)
		return NULL;
	struct etcd_client *c = xcalloc(1, sizeof(*c));
	if (parse_endpoints(opts->endpoints, &c->endpoints, &c->nendpoints, e) != 0 ||
	    parse_endpoints(opts->endpoints, &c->configured, &c->nconfigured, e) != 0)
		goto fail;
	if (opts->username && opts->username[0]) {
		c->username = xstrdup(opts->username);
		c->password = xstrdup(opts->password ? opts->password : "");
	}
	if (opts->ca_file && opts->ca_file[0])
		c->ca_file = xstrdup(opts->ca_file);
	if (opts->cert_file && opts->cert_file[0])
		c->cert_file = xstrdup(opts->cert_file);
	if (opts->key_file && opts->key_file[0])
		c->key_file = xstrdup(opts->key_file);
	/* The first sync waits a full interval: a short-lived client (ctl, one
	 * API request) never pays for one. */
	c->sync_interval_ms = opts->sync_interval_ms > 0 ? opts->sync_interval_ms : 0;
	c->next_sync = now_ms() + c->sync_interval_ms;
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
	free_endpoints(c->configured, c->nconfigured);
	free(c->username);
	secret_free(c->password);
	secret_free(c->token);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
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
	if (c->syncing) {
		/* A sync is an extra; its failures are not news (the next call says it). */
		log_debug("%s; trying %s", reason, c->endpoints[c->cur]);
		return;
	}
	if (c->healthy)
		log_warn("%s; trying %s", reason, c->endpoints[c->cur]);
	else
		log_debug("%s; trying %s", reason, c->endpoints[c->cur]);
	c->healthy = false;
}

/* ---------------------------------------------------------- one attempt */

/* Outcome classes of one attempt, deciding what etcd_call does next. */
enum attempt {
	ATT_DONE,       /* final answer (success or an error to return) */
	ATT_NEXT,       /* try the next endpoint */
	ATT_REAUTH,     /* token rejected: authenticate again, same endpoint */
};

bool etcd_is_token_error(const char *msg)
{
	return strstr(msg, "invalid auth token") != NULL || strstr(msg, "auth store is old") != NULL ||
	       strstr(msg, "user name is empty") != NULL;
}

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
		if (*rc == ETCD_EAUTH && c->username && etcd_is_token_error(e->msg))
			return ATT_REAUTH;
		return ATT_DONE;
	}
	*rc = etcd_dec_error(body, e);
	if (*rc == ETCD_OK) {
		/* Not etcd's error object: a proxy page, garbage, a crash. */
		etcd_explain_foreign(status, body, e);
		*rc = status >= 500 ? ETCD_EUNAVAIL : ETCD_EPROTO;
		return ATT_NEXT;
	}
	if (*rc == ETCD_EAUTH && c->username && etcd_is_token_error(e->msg))
		return ATT_REAUTH;
	/* 5xx: the server had a problem, whatever it was; another may not. */
	if (*rc == ETCD_EUNAVAIL || (*rc == ETCD_EPROTO && status >= 500))
		return ATT_NEXT;
	return ATT_DONE;
}

int etcd_bad_arg(struct pgha_err *e, const char *msg)
{
	err_set(e, "%s", msg);
	return ETCD_EINVAL;
}

static int64_t time_left(int64_t deadline)
{
	return deadline - now_ms();
}

/* At least 1 ms: curl reads a timeout of 0 as none, and a request must never outlive the deadline. */
static int64_t request_timeout(const struct etcd_client *c, int64_t deadline)
{
	int64_t left = time_left(deadline);
	if (left < 1)
		left = 1;
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
	struct etcd_sink s = {STRBUF_INIT, false};
	long status = 0;
	char *token = NULL;
	enum attempt att = ATT_NEXT;

	*rc = etcd_http_post(c, ep, path, body, NULL, request_timeout(c, deadline), &status, &s, e);
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
	etcd_sink_free(&s);
	if (*rc != ETCD_OK)
		err_wrap(e, "etcd %s%s (user \"%s\")", ep, path, c->username);
	return att;
}

bool etcd_need_token(const struct etcd_client *c)
{
	return c->username != NULL && c->token == NULL && !c->auth_disabled;
}

int etcd_authenticate(struct etcd_client *c, int64_t deadline, struct pgha_err *e)
{
	int rc;
	authenticate(c, c->endpoints[c->cur], deadline, &rc, e);
	return rc;
}

/* Sleep between rounds; false if canceled. */
static bool backoff_sleep(struct etcd_client *c, int round, int64_t deadline)
{
	int64_t ms = (int64_t)ETCD_BACKOFF_FIRST_MS << (round - 1 < 4 ? round - 1 : 4);
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

void etcd_drop_token(struct etcd_client *c)
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
	if (etcd_need_token(c)) {
		att = authenticate(c, ep, deadline, rc, last);
		if (att != ATT_DONE || *rc != ETCD_OK)
			return att;
	}
	struct etcd_sink s = {STRBUF_INIT, false};
	long status = 0;
	const char *tok = c->auth_disabled ? NULL : c->token;
	*rc = etcd_http_post(c, ep, path, body, tok, request_timeout(c, deadline), &status, &s, last);
	if (*rc == 0)
		att = classify(c, status, sb_str(&s.sb), dec, ctx, rc, last);
	etcd_sink_free(&s);
	if (*rc != ETCD_OK)
		err_wrap(last, "etcd %s%s", ep, path);
	return att;
}

int etcd_call(struct etcd_client *c, const char *path, const char *body,
	      etcd_decoder dec, void *ctx, struct pgha_err *e)
{
	int64_t start = now_ms(), deadline = start + c->deadline_ms;
	/* A sync is one pass: it must stay cheap, and the next one comes anyway. */
	size_t max_attempts = (c->syncing ? 1 : RETRY_ROUNDS) * c->nendpoints;
	bool reauthed = false, answered = false;
	int rc = ETCD_EUNAVAIL;
	struct pgha_err last;

	if (body == NULL)
		return etcd_bad_arg(e, "etcd: invalid request arguments");
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
			etcd_drop_token(c);
			max_attempts++;
		} else if (att == ATT_NEXT) {
			next_endpoint(c, last.msg);
		} else {
			answered = true;
			c->healthy = true;
		}
	}
	if (!answered && rc == ETCD_EUNAVAIL)
		etcd_sync_soon(c);
	/* After an answer, when the endpoint is known to work: the sync costs
	 * one quick request then, and nothing while etcd is down. */
	if (answered)
		etcd_sync_if_due(c);
	if (!answered && (rc == ETCD_OK || rc == ETCD_EUNAVAIL)) {
		err_set(e, "etcd: no endpoint answered %s (%" PRId64 " ms, deadline %d ms; last error: %s)",
			path, now_ms() - start, c->deadline_ms, last.msg);
		return ETCD_EUNAVAIL;
	}
	if (rc != ETCD_OK && e)
		memcpy(e->msg, last.msg, sizeof(e->msg));
	return rc;
}

/* ----------------------------------------------------- endpoint auto-sync */

struct member_urls {
	const char *scheme;
	char **urls;
	size_t n;
};

static int dec_members_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	struct member_urls *m = ctx;
	free_endpoints(m->urls, m->n);
	m->urls = NULL;
	m->n = 0;
	return etcd_dec_member_urls(body, m->scheme, ETCD_MAX_ENDPOINTS, &m->urls, &m->n, e);
}

static bool has_endpoint(char *const *eps, size_t n, const char *url)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(eps[i], url) == 0)
			return true;
	return false;
}

/* Add url (trailing slashes trimmed) unless present or the list is full. */
static void add_endpoint(char **eps, size_t *n, const char *url)
{
	size_t len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		len--;
	char *u = xstrndup(url, len);
	if (*n < 2 * ETCD_MAX_ENDPOINTS && !has_endpoint(eps, *n, u))
		eps[(*n)++] = u;
	else
		free(u);
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!has_endpoint(b, nb, a[i]))
			return false;
	return true;
}

char *etcd_endpoints_text(const struct etcd_client *c)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < c->nendpoints; i++)
		sb_printf(&sb, "%s%s", i ? "," : "", c->endpoints[i]);
	return sb_steal(&sb);
}

int etcd_sync_endpoints(struct etcd_client *c, struct pgha_err *e)
{
	struct member_urls m = {strncmp(c->configured[0], "https://", 8) == 0 ? "https" : "http", NULL, 0};
	int saved_deadline = c->deadline_ms;
	/* One quick try: a sync must not hold up the caller's work. */
	c->deadline_ms = c->request_timeout_ms;
	c->syncing = true;
	int rc = etcd_call(c, "/v3/cluster/member/list", "{}", dec_members_ctx, &m, e);
	c->syncing = false;
	c->deadline_ms = saved_deadline;
	c->next_sync = now_ms() + c->sync_interval_ms;
	if (rc != ETCD_OK) {
		free_endpoints(m.urls, m.n);
		return rc;
	}
	if (m.n == 0) {
		free_endpoints(m.urls, m.n);
		err_set(e, "etcd member list has no %s client URL; keeping %zu endpoints", m.scheme, c->nendpoints);
		return ETCD_EPROTO;
	}
	/* The members first, then the configured endpoints not among them. */
	char **eps = xcalloc(2 * ETCD_MAX_ENDPOINTS, sizeof(*eps));
	size_t n = 0;
	for (size_t i = 0; i < m.n; i++)
		add_endpoint(eps, &n, m.urls[i]);
	for (size_t i = 0; i < c->nconfigured; i++)
		add_endpoint(eps, &n, c->configured[i]);
	free_endpoints(m.urls, m.n);
	if (same_list(eps, n, c->endpoints, c->nendpoints)) {
		free_endpoints(eps, n);
		return 0;
	}
	const char *cur = c->endpoints[c->cur];
	size_t newcur = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(eps[i], cur) == 0)
			newcur = i;
	char *was = etcd_endpoints_text(c);
	free_endpoints(c->endpoints, c->nendpoints);
	c->endpoints = eps;
	c->nendpoints = n;
	c->cur = newcur;
	char *now = etcd_endpoints_text(c);
	log_info("etcd endpoints changed (member list from %s): %s (was %s)", c->endpoints[c->cur], now, was);
	free(now);
	free(was);
	return 0;
}

void etcd_sync_soon(struct etcd_client *c)
{
	c->next_sync = 0;
}

void etcd_sync_if_due(struct etcd_client *c)
{
	if (c->sync_interval_ms <= 0 || c->syncing || now_ms() < c->next_sync)
		return;
	struct pgha_err e = {{0}};
	if (etcd_sync_endpoints(c, &e) != 0)
		log_debug("etcd endpoint sync: %s", e.msg);
}

static int dec_any_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return ETCD_OK;
}

int etcd_post(struct etcd_client *c, const char *path, const char *body, struct pgha_err *e)
{
	return etcd_call(c, path, body, dec_any_ctx, NULL, e);
}