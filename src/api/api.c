/*
 * api.c — the agent API: the api_source the HA loop publishes into, and the
 * routes served on top of httpd.
 *
 * Locking: the HA loop replaces the snapshot under src->lock; the API thread
 * copies what one answer needs under the same lock and formats and sends
 * without it, so a slow client can never stall the HA loop.
 */
#include "api/api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <strings.h>

#include "cluster/backup_key.h"
#include "cluster/config_key.h"
#include "cluster/history_key.h"
#include "cluster/switchover.h"
#include "cluster/switchover_req.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "http/httpd.h"

struct api_server {
	struct httpd *httpd;
	struct api_source *src;
};

void api_source_init(struct api_source *src, const char *cluster_name)
{
	memset(src, 0, sizeof(*src));
	pthread_mutex_init(&src->lock, NULL);
	src->status.self.lag_bytes = -1;
	src->status.ttl_s = 30;
	snprintf(src->cluster, sizeof(src->cluster), "%s", cluster_name ? cluster_name : "");
}

void api_source_destroy(struct api_source *src)
{
	if (src->have_view)
		cluster_view_free(&src->view);
	src->have_view = false;
	sb_free(&src->pg_text);
	pthread_mutex_destroy(&src->lock);
}

void api_source_set_pg(struct api_source *src, struct strbuf *text, bool up, bool failed, int64_t duration_ms)
{
	pthread_mutex_lock(&src->lock);
	struct strbuf old = src->pg_text;
	src->pg_text = *text;
	src->pg_up = up;
	src->pg_collected = true;
	src->pg_at_ms = now_ms();
	src->pg_duration_ms = duration_ms;
	src->pg_errors += failed;
	pthread_mutex_unlock(&src->lock);
	sb_init(text);
	sb_free(&old);
}

void api_source_set_etcd_health(struct api_source *src, char urls[][256], const bool *up, size_t n)
{
	pthread_mutex_lock(&src->lock);
	src->netcd = n < 8 ? n : 8;
	for (size_t i = 0; i < src->netcd; i++) {
		snprintf(src->etcd_health[i], sizeof(src->etcd_health[i]), "%s", urls[i]);
		src->etcd_up[i] = up[i];
	}
	pthread_mutex_unlock(&src->lock);
}

void api_source_add_sample(struct api_source *src, double xacts, double conns)
{
	pthread_mutex_lock(&src->lock);
	size_t i = src->series_n < API_SERIES_MAX ? src->series_n++ : src->series_head;
	if (src->series_n == API_SERIES_MAX && i == src->series_head)
		src->series_head = (src->series_head + 1) % API_SERIES_MAX;
	struct api_sample *p = &src->series[i];
	memset(p, 0, sizeof(*p));
	p->t_ms = wall_ms();
	p->xacts = xacts;
	p->conns = conns;
	p->proxy_waiting = NAN;
	for (size_t k = 0; src->have_view && k < src->view.nproxies; k++) {
		struct proxy_record r;
		struct pgha_err e;
		const char *raw = src->view.proxies[k];
		if (proxy_record_decode(raw, strlen(raw), &r, &e) == 0)
			p->proxy_waiting = (isnan(p->proxy_waiting) ? 0 : p->proxy_waiting) + r.waiting;
	}
	for (size_t k = 0; src->have_view && k < src->view.nmembers && p->nlag < API_SERIES_LAGS; k++) {
		const struct member *m = &src->view.members[k];
		if (m->role != ROLE_REPLICA || m->lag_bytes < 0)
			continue;
		snprintf(p->lag_name[p->nlag], sizeof(p->lag_name[0]), "%s", m->name);
		p->lag[p->nlag++] = m->lag_bytes;
	}
	pthread_mutex_unlock(&src->lock);
}

void api_source_update(struct api_source *src, const struct api_status *st,
		       struct cluster_view *view)
{
	struct cluster_view old;
	bool free_old = false;
	pthread_mutex_lock(&src->lock);
	if (st != NULL)
		src->status = *st;
	if (view != NULL) {
		old = src->view;
		free_old = src->have_view;
		src->view = *view;
		src->have_view = true;
		memset(view, 0, sizeof(*view));
	}
	pthread_mutex_unlock(&src->lock);
	/* Freeing a big view is work the API thread need not wait for. */
	if (free_old)
		cluster_view_free(&old);
}

static void api_error(struct http_response *resp, int status, const char *why)
{
	resp->status = status;
	sb_reset(&resp->body);
	json_t *o = json_pack("{s:s}", "error", why);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	sb_puts(&resp->body, text ? text : "{\"error\":\"(unprintable)\"}");
	free(text);
	json_decref(o);
}

/* Authorization: Bearer <token>, compared in constant time. */
static bool api_authorized(const struct api_source *src, const struct http_request *req, struct http_response *resp)
{
	if (src->token == NULL) {
		api_error(resp, 403, "no [node] api_token_file is set: this member refuses every request that "
			  "changes something (POST/DELETE /switchover, POST/DELETE /pause, POST /failsafe)");
		return false;
	}
	const char *a = req->authorization;
	if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0) {
		api_error(resp, 401, "send Authorization: Bearer <the token in [node] api_token_file>");
		return false;
	}
	a += 7;
	size_t n = strlen(a), m = strlen(src->token);
	unsigned char diff = n != m;
	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char)(a[i < n ? i : 0] ^ src->token[i]);
	if (diff != 0) {
		log_warn("API: %s %s refused: wrong token", req->method, req->path);
		api_error(resp, 401, "wrong token");
		return false;
	}
	return true;
}

/* POST /pause: maintenance mode on; DELETE /pause: off (the config key's pause, as `ctl pause`/`resume`). */
static void api_pause(struct api_source *src, const struct http_request *req, struct http_response *resp)
{
	if (!api_authorized(src, req, resp))
		return;
	bool pause = strcmp(req->method, "POST") == 0;
	struct pgha_err e;
	struct etcd_client *c = etcd_new(src->etcd, &e);
	if (c == NULL) {
		api_error(resp, 503, e.msg);
		return;
	}
	char *key = xasprintf("%sconfig", src->prefix);
	if (dyncfg_write_pause(c, key, pause, &e) != 0) {
		api_error(resp, 503, e.msg);
	} else {
		log_info("API: maintenance mode %s", pause ? "on" : "off");
		sb_printf(&resp->body, "{\"paused\":%s}", pause ? "true" : "false");
	}
	free(key);
	etcd_free(c);
}

/* POST /switchover {"candidate", "leader"?, "scheduled_at"?}; DELETE /switchover. */
static void api_switchover(struct api_source *src, const struct http_request *req, struct http_response *resp)
{
	if (!api_authorized(src, req, resp))
		return;
	struct pgha_err e;
	char *key = xasprintf("%sswitchover", src->prefix);
	struct etcd_client *c = etcd_new(src->etcd, &e);
	struct cluster_view v = {0};
	struct etcd_kvs kvs = {0};
	json_t *body = NULL;
	char *raw = NULL;
	if (c == NULL) {
		api_error(resp, 503, e.msg);
		goto out;
	}
	if (strcmp(req->method, "DELETE") == 0) {
		struct switchover so;
		int r = switchover_read(c, key, &so, &raw, &e);
		if (r < 0) {
			api_error(resp, 503, e.msg);
		} else if (r == 0) {
			api_error(resp, 404, "no switchover is pending");
		} else if (switchover_cancellable(&so, &e) != 0 || switchover_withdraw(c, key, raw, &e) != 0) {
			api_error(resp, 409, e.msg);
		} else {
			log_info("API: switchover %s withdrawn", so.id);
			sb_printf(&resp->body, "{\"cancelled\":\"%s\"}", so.id);
		}
		goto out;
	}
	json_error_t jerr;
	body = json_loadb(req->body, req->body_len, 0, &jerr);
	const char *to = NULL, *leader = NULL, *at_text = NULL;
	if (!json_is_object(body) || json_unpack_ex(body, &jerr, 0, "{s:s, s?s, s?s}", "candidate", &to, "leader", &leader,
						     "scheduled_at", &at_text) != 0) {
		api_error(resp, 400, "expected a JSON object {\"candidate\": NODE, \"leader\": NODE (optional), "
			  "\"scheduled_at\": \"2026-11-21T23:00:00Z\" or \"+5m\" (optional)}");
		goto out;
	}
	int64_t at = 0;
	if (at_text != NULL && (at = switchover_parse_time(at_text, wall_ms())) < 0) {
		api_error(resp, 400, "scheduled_at: use an ISO time such as 2026-11-21T23:00:00Z, or +30s / +5m");
		goto out;
	}
	if (etcd_get_prefix(c, src->prefix, &kvs, &e) != 0) {
		api_error(resp, 503, e.msg);
		goto out;
	}
	cluster_view_from_kvs(src->prefix, &kvs, &v);
	if (leader != NULL && (v.leader == NULL || strcmp(leader, v.leader) != 0)) {
		char why[300];
		snprintf(why, sizeof(why), "%s is not the leader (the leader is %s)", leader, v.leader ? v.leader : "nobody");
		api_error(resp, 412, why);
		goto out;
	}
	struct switchover so;
	if (switchover_fit(&v, to, &e) != 0 || switchover_submit(c, key, &v, to, at, &so, &e) != 0) {
		api_error(resp, 409, e.msg);
		goto out;
	}
	log_info("API: switchover %s requested: %s -> %s%s", so.id, so.from, so.to, at > 0 ? " (scheduled)" : "");
	char *json = switchover_encode(&so);
	resp->status = 202;
	sb_puts(&resp->body, json);
	free(json);
out:
	json_decref(body);
	free(raw);
	cluster_view_free(&v);
	etcd_kvs_free(&kvs);
	if (c)
		etcd_free(c);
	free(key);
}

static void api_cluster(struct api_source *src, struct http_response *resp)
{
	char *json = NULL;
	bool have_view;
	/* Encoding is CPU work on a private copy of the text: fine under the lock. */
	pthread_mutex_lock(&src->lock);
	have_view = src->have_view;
	if (have_view)
		json = backup_view_encode(&src->view, src->cluster);
	pthread_mutex_unlock(&src->lock);
	if (!have_view) {
		api_error(resp, 503, "no cluster view yet (etcd not read)");
		return;
	}
	if (json == NULL) {
		api_error(resp, 500, "cannot encode the cluster view");
		return;
	}
	resp->status = 200;
	sb_puts(&resp->body, json);
	free(json);
}

/* GET /history: the leader changes, oldest first (cluster/history_key.h). */
static void api_history(struct api_source *src, struct http_response *resp)
{
	struct history h = {0};
	struct pgha_err e;
	pthread_mutex_lock(&src->lock);
	bool have_view = src->have_view;
	int rc = have_view ? history_decode(src->view.history, &h, &e) : 0;
	pthread_mutex_unlock(&src->lock);
	if (!have_view) {
		api_error(resp, 503, "no cluster view yet (etcd not read)");
		return;
	}
	if (rc != 0) {
		api_error(resp, 500, e.msg);
		return;
	}
	char *json = history_encode(&h);
	history_free(&h);
	resp->status = 200;
	sb_puts(&resp->body, json);
	free(json);
}

static void api_metrics(struct api_source *src, struct http_response *resp)
{
	/* Rendering is CPU work on the snapshot: fine under the lock, like /cluster. */
	pthread_mutex_lock(&src->lock);
	api_metrics_render(&src->status, src->have_view ? &src->view : NULL, src->cluster, now_ms(), &resp->body);
	api_metrics_render_pg(src, now_ms(), &resp->body);
	pthread_mutex_unlock(&src->lock);
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4";
}

static bool api_method_ok(const char *method)
{
	/* OPTIONS like GET: Patroni's HAProxy recipe checks "OPTIONS /master". */
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
	       strcmp(method, "OPTIONS") == 0;
}

/*
 * POST /failsafe: the leader, cut off from etcd, asks whether it may stay
 * primary. Yes only if this member cannot reach etcd either (it could not
 * take part in an election); saying yes is a promise not to race for the
 * leader key for one TTL, which the HA loop keeps. The promise stops this
 * member from becoming leader, so only a member may ask: the cluster's API
 * token is required (without one configured, failsafe is off: refused).
 */
static void api_failsafe(struct api_source *src, const struct http_request *req,
			 struct http_response *resp)
{
	if (!api_authorized(src, req, resp))
		return;
	pthread_mutex_lock(&src->lock);
	bool reachable = src->status.etcd_reachable;
	int ttl_s = src->status.ttl_s > 0 ? src->status.ttl_s : 30;
	if (!reachable)
		src->failsafe_until_ms = now_ms() + (int64_t)ttl_s * 1000;
	pthread_mutex_unlock(&src->lock);
	if (reachable) {
		api_error(resp, 409, "this member reaches etcd: the leader must renew its key there");
		return;
	}
	resp->status = 200;
	sb_puts(&resp->body, "{\"failsafe\":true}");
}

static void api_handle(void *arg, const struct http_request *req, struct http_response *resp)
{
	struct api_server *s = arg;
	if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/failsafe") == 0) {
		api_failsafe(s->src, req, resp);
		return;
	}
	if (strcmp(req->path, "/switchover") == 0 &&
	    (strcmp(req->method, "POST") == 0 || strcmp(req->method, "DELETE") == 0)) {
		api_switchover(s->src, req, resp);
		return;
	}
	if (strcmp(req->path, "/pause") == 0 && (strcmp(req->method, "POST") == 0 || strcmp(req->method, "DELETE") == 0)) {
		api_pause(s->src, req, resp);
		return;
	}
	if (!api_method_ok(req->method)) {
		resp->allow = "GET, HEAD, OPTIONS";
		api_error(resp, 405, "method not allowed");
		return;
	}
	if (strcmp(req->path, "/cluster") == 0 || strcmp(req->path, "/cluster/") == 0) {
		api_cluster(s->src, resp);
		return;
	}
	if (strcmp(req->path, "/metrics") == 0) {
		api_metrics(s->src, resp);
		return;
	}
	if (strcmp(req->path, "/history") == 0) {
		api_history(s->src, resp);
		return;
	}
	if (strcmp(req->path, "/ui/series") == 0) {
		pthread_mutex_lock(&s->src->lock);
		api_series_json(s->src, &resp->body);
		pthread_mutex_unlock(&s->src->lock);
		return;
	}
	if (api_ui_file(req->path, resp))
		return;
	struct api_status st;
	pthread_mutex_lock(&s->src->lock);
	st = s->src->status;
	pthread_mutex_unlock(&s->src->lock);
	int status = api_health(req->path, req->query, &st, now_ms(), &resp->body);
	if (status == 0) {
		api_error(resp, 404, "not found");
		return;
	}
	resp->status = status;
}

struct api_server *api_start(const char *listen_addr, struct api_source *src, SSL_CTX *tls, struct pgha_err *e)
{
	struct api_server *s = xcalloc(1, sizeof(*s));
	s->src = src;
	s->httpd = httpd_start_tls(listen_addr, tls, api_handle, s, e);
	if (s->httpd == NULL) {
		free(s);
		err_wrap(e, "API");
		return NULL;
	}
	log_info("API listening on %s (port %d, %s)", listen_addr, httpd_port(s->httpd), tls ? "HTTPS" : "HTTP");
	return s;
}

void api_set_tls(struct api_server *s, SSL_CTX *tls)
{
	httpd_set_tls(s->httpd, tls);
}

int api_port(const struct api_server *s)
{
	return s ? httpd_port(s->httpd) : -1;
}

void api_stop(struct api_server *s)
{
	if (s == NULL)
		return;
	httpd_stop(s->httpd);
	free(s);
}
