/*
 * etcd_watch.c — the streaming watch (/v3/watch) on a key prefix: its own
 * thread and client, one long HTTP stream split into JSON messages,
 * reconnecting with backoff across the endpoints from the last revision
 * delivered.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "dcs/etcd_codec.h"
#include "dcs/etcd_int.h"

#define WATCH_BACKOFF_MAX_MS 5000

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
	struct etcd_sink errbody;        /* body of a non-200 answer */
	long status;
	bool created;               /* first message seen on this connection */
	bool broken;                /* decode failure or cancel: drop the connection */
	bool token_rejected;
	struct pgha_err err;
	char detail[CURL_ERROR_SIZE];  /* curl's own words on a failed connection */
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
		w->token_rejected = rc == ETCD_EAUTH && etcd_is_token_error(e.msg);
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
		w->token_rejected = etcd_is_token_error(e.msg);
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
		return etcd_sink_write(ptr, 1, n, &w->errbody);
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
	etcd_set_common_opts(h, w->c, url, body, hdrs);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)w->c->request_timeout_ms);
	/* The stream is idle when nothing changes: let TCP notice a dead peer. */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	w->detail[0] = '\0';
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, w->detail);
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
			etcd_explain_foreign(w->status, sb_str(&w->errbody.sb), &w->err);
		else
			err_set(&w->err, "%s", e.msg);
		w->token_rejected = rc == ETCD_EAUTH && etcd_is_token_error(e.msg);
	} else if (!is_blank(w->line.data, w->line.len)) {
		/* A last message without its newline: say what it was. */
		watch_message(w, w->line.data);
		if (!w->broken)
			err_set(&w->err, "stream closed by the server");
	} else if (res != CURLE_OK) {
		etcd_curl_error(&w->err, res, w->detail, strncmp(etcd_current_endpoint(w->c), "https://", 8) == 0,
				w->c->cert_file != NULL);
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
	struct curl_slist *hdrs = etcd_make_headers(tok);

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
	etcd_sink_free(&w->errbody);
	free(body);
	free(url);
	if (!atomic_load(&w->stop))
		log_at(WATCH_LOG_LEVEL(w), "etcd watch on %s at %s ended: %s", w->prefix, ep,
		       w->err.msg);
	if (w->token_rejected)
		etcd_drop_token(w->c);
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
	if (!etcd_need_token(w->c))
		return true;
	struct pgha_err e = {{0}};
	int64_t deadline = now_ms() + w->c->request_timeout_ms;
	if (etcd_authenticate(w->c, deadline, &e) == ETCD_OK)
		return true;
	if (!atomic_load(&w->stop))
		log_at(WATCH_LOG_LEVEL(w), "etcd watch on %s: %s", w->prefix, e.msg);
	return false;
}

static void *watch_main(void *arg)
{
	struct etcd_watch *w = arg;
	int64_t backoff = ETCD_BACKOFF_FIRST_MS;
	log_set_context("etcd watch");
	while (!atomic_load(&w->stop)) {
		/* Members may have changed while the stream was up: a reconnect
		 * is when a new list matters (a no-op unless the sync is due). */
		etcd_sync_if_due(w->c);
		bool ok = watch_auth(w) && watch_connect(w);
		if (atomic_load(&w->stop))
			break;
		/* A connection that worked earns a quick retry; repeated
		 * failures back off, moving through the endpoints. */
		if (ok) {
			backoff = ETCD_BACKOFF_FIRST_MS;
			w->fails = 0;
		} else {
			w->fails++;
			if (w->fails % w->c->nendpoints == 0)
				etcd_sync_soon(w->c);
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
