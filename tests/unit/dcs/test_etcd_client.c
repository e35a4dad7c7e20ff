/*
 * test_etcd_client.c — the etcd client's retries, endpoint failover, tokens
 * and watch reconnects (etcd.c, etcd_http.c, etcd_kv.c, etcd_watch.c), against
 * the scripted HTTP servers of etcd_script.h (no etcd).
 */
#include "etcd_script.h"

#include "common/util.h"
#include "dcs/etcd.h"

/* ------------------------------------------------------------ replies */

#define HDR "\"header\":{\"revision\":\"9\"}"
/* key "k" = "v" */
#define RANGE_OK "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"value\":\"dg==\",\"mod_revision\":\"9\"}],\"count\":\"1\"}"
#define PUT_OK "{" HDR "}"
#define LEADER_CHANGED "{\"error\":\"etcdserver: leader changed\",\"message\":\"etcdserver: leader changed\",\"code\":14}"
#define TIMED_OUT "{\"error\":\"etcdserver: request timed out\",\"message\":\"etcdserver: request timed out\",\"code\":14}"
#define BAD_TOKEN "{\"error\":\"etcdserver: invalid auth token\",\"message\":\"etcdserver: invalid auth token\",\"code\":16}"
#define TOKEN(t) "{" HDR ",\"token\":\"" t "\"}"

static void get_k(struct etcd_client *c, const char *want_value)
{
	struct pgha_err e = {{0}};
	struct etcd_kvs r;
	int rc = etcd_get(c, "k", &r, &e);
	if (rc != ETCD_OK)
		fail_msg("etcd_get: %d %s", rc, e.msg);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.kvs[0].value, want_value);
	etcd_kvs_free(&r);
}

/* ------------------------------------------------------------ failover */

/* A client of endpoints a then b, deadline 5 s. */
static struct etcd_client *client_pair(const char *a, const char *b, int request_ms)
{
	char eps[160];
	snprintf(eps, sizeof(eps), "%s,%s", a, b);
	return client_new(eps, request_ms, 5000, NULL);
}

/* Endpoint a fails its one request as a_step says; b answers the get. */
static void check_fails_over(const struct step *a_step)
{
	static const struct step b_script[] = {
		ANSWER("/v3/kv/range", 200, RANGE_OK),
	};
	struct server *a = server_start(a_step, 1);
	struct server *b = server_start(SCRIPT(b_script));
	struct etcd_client *c = client_pair(a->url, b->url, 1000);

	get_k(c, "v");

	etcd_free(c);
	server_done(a, 1);
	server_done(b, 1);
}

static void test_refused_endpoint_skipped(void **state)
{
	struct refuser r;
	refuser_open(&r);
	static const struct step b_script[] = {
		ANSWER("/v3/kv/range", 200, RANGE_OK),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
	};
	struct server *b = server_start(SCRIPT(b_script));
	struct etcd_client *c = client_pair(r.url, b->url, 1000);

	get_k(c, "v");
	assert_string_equal(etcd_current_endpoint(c), b->url);
	get_k(c, "v");
	assert_string_equal(etcd_current_endpoint(c), b->url);

	etcd_free(c);
	close(r.fd);
	server_done(b, 2);
}

/*
 * etcd's "leader changed" on the first endpoint: the call goes to the
 * second, and the next call starts there (a request to the first would be
 * unexpected by its script).
 */
static void test_unavailable_fails_over_and_sticks(void **state)
{
	static const struct step a_script[] = {
		ANSWER("/v3/kv/range", 503, LEADER_CHANGED),
	};
	static const struct step b_script[] = {
		ANSWER("/v3/kv/range", 200, RANGE_OK),
		ANSWER("/v3/kv/put", 200, PUT_OK),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
	};
	struct server *a = server_start(SCRIPT(a_script));
	struct server *b = server_start(SCRIPT(b_script));
	struct etcd_client *c = client_pair(a->url, b->url, 1000);
	struct pgha_err e = {{0}};

	get_k(c, "v");
	assert_int_equal(etcd_put(c, "k", "v", 0, &e), ETCD_OK);
	get_k(c, "v");
	assert_string_equal(etcd_current_endpoint(c), b->url);

	etcd_free(c);
	server_done(a, 1);
	server_done(b, 3);
}

/* A 5xx that is not etcd's (a proxy's page) is the endpoint's fault too. */
static void test_non_etcd_5xx_fails_over(void **state)
{
	static const struct step a = ANSWER("/v3/kv/range", 502, "<html>Bad Gateway</html>");
	check_fails_over(&a);
}

/* One endpoint that is briefly unavailable: retried after a backoff, same call. */
static void test_unavailable_retried_then_ok(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/kv/range", 503, LEADER_CHANGED),
		ANSWER("/v3/kv/range", 503, TIMED_OUT),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, NULL);

	int64_t t0 = now_ms();
	get_k(c, "v");
	/* Backoffs of 100 and 200 ms between the rounds. */
	assert_true(now_ms() - t0 >= 300);

	etcd_free(c);
	server_done(s, 3);
}

/* A lasting outage: four rounds over the endpoint list, then EUNAVAIL with the last error. */
static void test_unavailable_gives_up_after_rounds(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/kv/put", 503, TIMED_OUT), ANSWER("/v3/kv/put", 503, TIMED_OUT),
		ANSWER("/v3/kv/put", 503, TIMED_OUT), ANSWER("/v3/kv/put", 503, TIMED_OUT),
		ANSWER("/v3/kv/put", 503, TIMED_OUT),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 10000, NULL);
	struct pgha_err e = {{0}};

	int64_t t0 = now_ms();
	assert_int_equal(etcd_put(c, "k", "v", 0, &e), ETCD_EUNAVAIL);
	assert_true(now_ms() - t0 < 5000);
	assert_contains(e.msg, "no endpoint answered /v3/kv/put");
	assert_contains(e.msg, s->url);
	assert_contains(e.msg, "request timed out");

	etcd_free(c);
	server_done(s, 4);
}

/* The call's deadline cuts the rounds short. */
static void test_deadline_bounds_retries(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/kv/put", 503, LEADER_CHANGED), ANSWER("/v3/kv/put", 503, LEADER_CHANGED),
		ANSWER("/v3/kv/put", 503, LEADER_CHANGED), ANSWER("/v3/kv/put", 503, LEADER_CHANGED),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 250, NULL);
	struct pgha_err e = {{0}};

	int64_t t0 = now_ms();
	assert_int_equal(etcd_put(c, "k", "v", 0, &e), ETCD_EUNAVAIL);
	assert_true(now_ms() - t0 < 1000);
	assert_contains(e.msg, "deadline 250 ms");
	/* 0 ms, after 100 ms, after another 150 ms (cut to the deadline) at most. */
	server_stop(s);
	assert_true(s->nreqs >= 2 && s->nreqs <= 3);
	assert_true(s->error[0] == '\0');
	server_free(s);
	etcd_free(c);
}

/* An endpoint that accepts and never answers costs one request timeout. */
static void test_hang_fails_over(void **state)
{
	static const struct step a_script[] = {
		HANGS("/v3/kv/range", 5000),
	};
	static const struct step b_script[] = {
		ANSWER("/v3/kv/range", 200, RANGE_OK),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
	};
	struct server *a = server_start(SCRIPT(a_script));
	struct server *b = server_start(SCRIPT(b_script));
	struct etcd_client *c = client_pair(a->url, b->url, 300);

	int64_t t0 = now_ms();
	get_k(c, "v");
	int64_t took = now_ms() - t0;
	assert_true(took >= 250 && took < 2000);
	/* Straight to b: a second request would be one a's script does not expect. */
	get_k(c, "v");

	etcd_free(c);
	server_done(a, 1);
	server_done(b, 2);
}

/* A connection closed without a reply is a transport failure: next endpoint. */
static void test_closed_connection_fails_over(void **state)
{
	static const struct step a = CLOSES("/v3/kv/range");
	check_fails_over(&a);
}

/* A reply cut short is the endpoint's fault: next endpoint. */
static void test_cut_short_fails_over(void **state)
{
	static const struct step a = CUTS("/v3/kv/range", RANGE_OK);
	check_fails_over(&a);
}

/* --------------------------------------------------------------- replies */

/* Garbage from every try: ETCD_EPROTO naming the endpoint, the path and the fault. */
static void test_malformed_reply(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/kv/range", 200, "{\"header\": nonsense"),
		ANSWER("/v3/kv/range", 200, "{\"header\": nonsense"),
		ANSWER("/v3/kv/range", 200, "{\"header\": nonsense"),
		ANSWER("/v3/kv/range", 200, "{\"header\": nonsense"),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, NULL);
	struct pgha_err e = {{0}};
	struct etcd_kvs r;

	assert_int_equal(etcd_get(c, "k", &r, &e), ETCD_EPROTO);
	assert_int_equal(r.count, 0);
	etcd_kvs_free(&r);
	assert_contains(e.msg, s->url);
	assert_contains(e.msg, "/v3/kv/range");
	assert_contains(e.msg, "reply is not JSON");

	etcd_free(c);
	server_done(s, 4);
}

/* A reply of the wrong shape is as bad as garbage; the good endpoint answers. */
static void test_wrong_shape_fails_over(void **state)
{
	static const struct step a = ANSWER("/v3/kv/range", 200, "{" HDR ",\"kvs\":\"not a list\"}");
	check_fails_over(&a);
}

/* A final answer from etcd (lease not found) is returned at once, not retried. */
static void test_final_error_not_retried(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/lease/keepalive", 404,
		       "{\"error\":\"etcdserver: requested lease not found\",\"code\":5}"),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, NULL);
	struct pgha_err e = {{0}};

	assert_int_equal(etcd_lease_keepalive(c, 42, NULL, &e), ETCD_ENOLEASE);
	assert_contains(e.msg, "lease not found");

	etcd_free(c);
	server_done(s, 1);
}

#define TXN_FAILED(value, lease)                                                          \
	"{" HDR ",\"responses\":[{\"response_range\":{" HDR ",\"kvs\":[{\"key\":\"aw==\","  \
	"\"value\":\"" value "\",\"mod_revision\":\"9\",\"lease\":\"" lease "\"}]}}]}"

/* A compare that does not hold is an answer (succeeded = false), not an error. */
static void test_txn_compare_failed(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/kv/txn", 200, TXN_FAILED("dw==", "7")), /* holds "w" */
		ANSWER("/v3/kv/txn", 200, TXN_FAILED("dg==", "7")), /* holds our "v" */
		ANSWER("/v3/kv/txn", 200, "{" HDR ",\"succeeded\":true}"),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, NULL);
	struct pgha_err e = {{0}};
	bool done = true;

	assert_int_equal(etcd_create(c, "k", "v", 7, &done, &e), ETCD_OK);
	assert_false(done);
	/* Our own value under our own lease: a lost reply of an earlier try. */
	assert_int_equal(etcd_create(c, "k", "v", 7, &done, &e), ETCD_OK);
	assert_true(done);
	assert_int_equal(etcd_delete_if_value(c, "k", "v", &done, &e), ETCD_OK);
	assert_true(done);

	etcd_free(c);
	server_done(s, 3);
}

/* ------------------------------------------------------------------ auth */

static void test_token_refreshed_once(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/auth/authenticate", 200, TOKEN("tok1")),
		ANSWER("/v3/kv/range", 401, BAD_TOKEN),
		ANSWER("/v3/auth/authenticate", 200, TOKEN("tok2")),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, "pgha");

	get_k(c, "v");
	get_k(c, "v");

	server_finish(s, 5);
	assert_contains(s->reqs[0].body, "\"name\":\"pgha\"");
	assert_contains(s->reqs[0].body, "\"password\":\"secret\"");
	assert_string_equal(s->reqs[0].auth, "");
	assert_string_equal(s->reqs[1].auth, "tok1");
	assert_string_equal(s->reqs[3].auth, "tok2");
	assert_string_equal(s->reqs[4].auth, "tok2");
	server_free(s);
	etcd_free(c);
}

/* A new token rejected as well: no second refresh, the rejection is the answer. */
static void test_token_rejected_twice(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/auth/authenticate", 200, TOKEN("tok1")),
		ANSWER("/v3/kv/range", 401, BAD_TOKEN),
		ANSWER("/v3/auth/authenticate", 200, TOKEN("tok2")),
		ANSWER("/v3/kv/range", 401, BAD_TOKEN),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, "pgha");
	struct pgha_err e = {{0}};
	struct etcd_kvs r;

	assert_int_equal(etcd_get(c, "k", &r, &e), ETCD_EAUTH);
	etcd_kvs_free(&r);
	assert_contains(e.msg, "invalid auth token");
	assert_contains(e.msg, s->url);

	etcd_free(c);
	server_done(s, 4);
}

/* Wrong password: final, returned at once with the user's name, not the password. */
static void test_authenticate_refused(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/auth/authenticate", 400,
		       "{\"error\":\"etcdserver: authentication failed, invalid user ID or password\","
		       "\"code\":3}"),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, "pgha");
	struct pgha_err e = {{0}};

	assert_int_equal(etcd_put(c, "k", "v", 0, &e), ETCD_EAUTH);
	assert_contains(e.msg, "authentication failed");
	assert_contains(e.msg, "user \"pgha\"");
	assert_null(strstr(e.msg, "secret"));

	etcd_free(c);
	server_done(s, 1);
}

/* Credentials but etcd without auth: carry on without a token. */
static void test_auth_not_enabled(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/auth/authenticate", 400,
		       "{\"error\":\"etcdserver: authentication is not enabled\",\"code\":9}"),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
		ANSWER("/v3/kv/range", 200, RANGE_OK),
	};
	struct server *s = server_start(SCRIPT(script));
	struct etcd_client *c = client_new(s->url, 1000, 5000, "pgha");

	get_k(c, "v");
	get_k(c, "v");

	server_finish(s, 3);
	assert_string_equal(s->reqs[1].auth, "");
	assert_string_equal(s->reqs[2].auth, "");
	server_free(s);
	etcd_free(c);
}

/* ------------------------------------------------------ endpoint sync */

static struct etcd_client *client_sync(const char *endpoints, int sync_ms)
{
	struct pgha_err e = {{0}};
	struct etcd_opts o = {.endpoints = endpoints, .request_timeout_ms = 1000, .deadline_ms = 3000,
			      .sync_interval_ms = sync_ms};
	struct etcd_client *c = etcd_new(&o, &e);
	if (c == NULL)
		fail_msg("etcd_new: %s", e.msg);
	return c;
}

/*
 * The member list names a member the configuration does not (b, a
 * replacement): after the sync the client uses it, with the configured
 * endpoint kept last; when a is gone, b answers (and the next sync, due
 * again, gets an empty list from b: the list stays).
 */
static void test_sync_finds_replaced_member(void **state)
{
	static const struct step b_script[] = {
		ANSWER("/v3/kv/range", 200, RANGE_OK),
		ANSWER("/v3/cluster/member/list", 200, "{" HDR ",\"members\":[]}"),
	};
	struct server *b = server_start(SCRIPT(b_script));
	char members[512];
	snprintf(members, sizeof(members),
		 "{" HDR ",\"members\":[{\"ID\":\"1\",\"name\":\"b\",\"clientURLs\":[\"%s/\"]},"
		 "{\"ID\":\"2\",\"name\":\"\",\"peerURLs\":[\"http://10.0.0.9:2380\"]},"
		 "{\"ID\":\"3\",\"clientURLs\":[\"https://elsewhere:2379\",\"http://bad url\",7]}]}",
		 b->url);
	const struct step a_script[] = {
		ANSWER("/v3/kv/range", 200, RANGE_OK),
		ANSWER("/v3/cluster/member/list", 200, members),
	};
	struct server *a = server_start(SCRIPT(a_script));
	struct etcd_client *c = client_sync(a->url, 1);
	sleep_ms(5);   /* the first sync waits one interval */

	get_k(c, "v");   /* then the sync, on a */
	char *eps = etcd_endpoints_text(c);
	char want[160];
	snprintf(want, sizeof(want), "%s,%s", b->url, a->url);
	assert_string_equal(eps, want);
	free(eps);
	assert_string_equal(etcd_current_endpoint(c), a->url);
	server_done(a, 2);

	sleep_ms(5);
	get_k(c, "v");   /* a refuses now */
	assert_string_equal(etcd_current_endpoint(c), b->url);
	eps = etcd_endpoints_text(c);
	assert_string_equal(eps, want);
	free(eps);

	etcd_free(c);
	server_done(b, 2);
}

/* A reply that is not a member list, or one without a usable URL, keeps the list. */
static void test_sync_bad_reply_keeps_list(void **state)
{
	static const struct step a_script[] = {
		ANSWER("/v3/cluster/member/list", 200, "{" HDR ",\"members\":\"nope\"}"),
		ANSWER("/v3/cluster/member/list", 200, "{" HDR ",\"members\":[{\"clientURLs\":[\"ftp://x\"]}]}"),
	};
	struct server *a = server_start(SCRIPT(a_script));
	struct etcd_client *c = client_sync(a->url, 3600000);
	struct pgha_err e = {{0}};

	assert_int_equal(etcd_sync_endpoints(c, &e), ETCD_EPROTO);
	assert_contains(e.msg, "\"members\" is not an array");
	assert_int_equal(etcd_sync_endpoints(c, &e), ETCD_EPROTO);
	assert_contains(e.msg, "no http client URL");
	char *eps = etcd_endpoints_text(c);
	assert_string_equal(eps, a->url);
	free(eps);

	etcd_free(c);
	server_done(a, 2);
}

/* ----------------------------------------------------------------- watch */

struct seen {
	pthread_mutex_t lock;
	int resyncs;          /* callbacks with ev == NULL */
	int events;
	int64_t last_mod;
	char last_value[32];
};

static void on_watch(void *arg, const struct etcd_event *ev, int64_t revision)
{
	struct seen *w = arg;
	pthread_mutex_lock(&w->lock);
	if (ev == NULL) {
		w->resyncs++;
	} else {
		w->events++;
		w->last_mod = ev->kv->mod_revision;
		snprintf(w->last_value, sizeof(w->last_value), "%s", ev->kv->value);
	}
	pthread_mutex_unlock(&w->lock);
}

/* Wait up to 5 s for the server to have seen n requests and the watch n resyncs. */
static void wait_watch(struct server *s, struct seen *w, size_t n)
{
	for (int waited = 0; waited < 5000; waited += 10) {
		pthread_mutex_lock(&w->lock);
		int resyncs = w->resyncs;
		pthread_mutex_unlock(&w->lock);
		if (server_nreqs(s) >= n && resyncs >= (int)n)
			return;
		usleep(10 * 1000);
	}
	fail_msg("watch: %zu connections and resyncs not seen within 5 s", n);
}

/* Watch under o from start_rev until the server saw conns connections, then stop. */
static void run_watch(const struct etcd_opts *o, int64_t start_rev, struct server *s,
		      struct seen *w, size_t conns)
{
	struct pgha_err e = {{0}};
	struct etcd_watch *wt = etcd_watch_start(o, "k", start_rev, on_watch, w, &e);
	if (wt == NULL)
		fail_msg("etcd_watch_start: %s", e.msg);
	wait_watch(s, w, conns);
	etcd_watch_stop(wt);
}

#define WATCH_CREATED(rev) "{\"result\":{\"header\":{\"revision\":\"" rev "\"},\"created\":true}}\n"

/* The stream ends: the watch reconnects and resumes after the last event delivered. */
static void test_watch_resumes_after_stream_end(void **state)
{
	static const struct step script[] = {
		STREAMS("/v3/watch",
		 WATCH_CREATED("5")
		 "{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":[{\"kv\":{\"key\":\"aw==\","
		 "\"value\":\"dg==\",\"mod_revision\":\"6\"}}]}}\n",
		 0),
		STREAMS("/v3/watch", WATCH_CREATED("6"), 10000),
	};
	struct server *s = server_start(SCRIPT(script));
	struct seen w = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct etcd_opts o = {.endpoints = s->url, .request_timeout_ms = 1000};

	run_watch(&o, 0, s, &w, 2);

	server_finish(s, 2);
	assert_null(strstr(s->reqs[0].body, "start_revision"));
	assert_contains(s->reqs[1].body, "\"start_revision\":\"7\"");
	assert_int_equal(w.resyncs, 2);
	assert_int_equal(w.events, 1);
	assert_int_equal(w.last_mod, 6);
	assert_string_equal(w.last_value, "v");
	server_free(s);
}

/* Compacted past where the watch asked to start: it resumes at the compact revision. */
static void test_watch_compacted(void **state)
{
	static const struct step script[] = {
		STREAMS("/v3/watch",
		 WATCH_CREATED("10")
		 "{\"result\":{\"header\":{\"revision\":\"10\"},\"canceled\":true,"
		 "\"compact_revision\":\"8\",\"cancel_reason\":\"mvcc: required revision has been "
		 "compacted\"}}\n",
		 5000),
		STREAMS("/v3/watch", WATCH_CREATED("10"), 10000),
	};
	struct server *s = server_start(SCRIPT(script));
	struct seen w = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct etcd_opts o = {.endpoints = s->url, .request_timeout_ms = 1000};

	run_watch(&o, 3, s, &w, 2);

	server_finish(s, 2);
	assert_contains(s->reqs[0].body, "\"start_revision\":\"3\"");
	assert_contains(s->reqs[1].body, "\"start_revision\":\"8\"");
	assert_int_equal(w.resyncs, 2);
	assert_int_equal(w.events, 0);
	server_free(s);
}

/*
 * A batch with a malformed event breaks the connection before any of it is
 * delivered; the watch reconnects from the same revision and gets it again.
 */
static void test_watch_malformed_batch(void **state)
{
	static const struct step script[] = {
		STREAMS("/v3/watch",
			WATCH_CREATED("5")
			"{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":["
			"{\"kv\":{\"key\":\"aw==\",\"value\":\"dg==\",\"mod_revision\":\"6\"}},"
			"{\"kv\":{\"value\":\"dw==\",\"mod_revision\":\"7\"}}]}}\n",
			5000),
		STREAMS("/v3/watch", WATCH_CREATED("7"), 10000),
	};
	struct server *s = server_start(SCRIPT(script));
	struct seen w = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct etcd_opts o = {.endpoints = s->url, .request_timeout_ms = 1000};

	run_watch(&o, 0, s, &w, 2);

	server_finish(s, 2);
	assert_contains(s->reqs[1].body, "\"start_revision\":\"6\"");
	assert_int_equal(w.events, 0);
	assert_int_equal(w.resyncs, 2);
	server_free(s);
}

/* A refusing endpoint first: the watch moves on to the next one. */
static void test_watch_fails_over(void **state)
{
	struct refuser r;
	refuser_open(&r);
	static const struct step script[] = {
		STREAMS("/v3/watch", WATCH_CREATED("4"), 10000),
	};
	struct server *s = server_start(SCRIPT(script));
	struct seen w = {.lock = PTHREAD_MUTEX_INITIALIZER};
	char eps[160];
	snprintf(eps, sizeof(eps), "%s,%s", r.url, s->url);
	struct etcd_opts o = {.endpoints = eps, .request_timeout_ms = 1000};

	run_watch(&o, 0, s, &w, 1);

	close(r.fd);
	server_done(s, 1);
	assert_int_equal(w.resyncs, 1);
}

/* A watch answered "invalid auth token": a new token, then the watch again. */
static void test_watch_token_refreshed(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/auth/authenticate", 200, TOKEN("tok1")),
		ANSWER("/v3/watch", 401, BAD_TOKEN),
		ANSWER("/v3/auth/authenticate", 200, TOKEN("tok2")),
		STREAMS("/v3/watch", WATCH_CREATED("4"), 10000),
	};
	struct server *s = server_start(SCRIPT(script));
	struct seen w = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct etcd_opts o = {.endpoints = s->url, .request_timeout_ms = 1000,
			      .username = "pgha", .password = "secret"};

	run_watch(&o, 0, s, &w, 1);

	server_finish(s, 4);
	assert_string_equal(s->reqs[1].auth, "tok1");
	assert_string_equal(s->reqs[3].auth, "tok2");
	assert_int_equal(w.resyncs, 1);
	server_free(s);
}

/* A watch that gets no answer within the request timeout tries again. */
static void test_watch_hang_retried(void **state)
{
	static const struct step script[] = {
		HANGS("/v3/watch", 5000),
		STREAMS("/v3/watch", WATCH_CREATED("4"), 10000),
	};
	struct server *s = server_start(SCRIPT(script));
	struct seen w = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct etcd_opts o = {.endpoints = s->url, .request_timeout_ms = 300};

	int64_t t0 = now_ms();
	run_watch(&o, 0, s, &w, 1);
	assert_true(now_ms() - t0 < 3000);

	server_done(s, 2);
	assert_int_equal(w.resyncs, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_endpoint_skipped),
		cmocka_unit_test(test_unavailable_fails_over_and_sticks),
		cmocka_unit_test(test_non_etcd_5xx_fails_over),
		cmocka_unit_test(test_unavailable_retried_then_ok),
		cmocka_unit_test(test_unavailable_gives_up_after_rounds),
		cmocka_unit_test(test_deadline_bounds_retries),
		cmocka_unit_test(test_hang_fails_over),
		cmocka_unit_test(test_closed_connection_fails_over),
		cmocka_unit_test(test_cut_short_fails_over),
		cmocka_unit_test(test_malformed_reply),
		cmocka_unit_test(test_wrong_shape_fails_over),
		cmocka_unit_test(test_final_error_not_retried),
		cmocka_unit_test(test_txn_compare_failed),
		cmocka_unit_test(test_token_refreshed_once),
		cmocka_unit_test(test_token_rejected_twice),
		cmocka_unit_test(test_authenticate_refused),
		cmocka_unit_test(test_auth_not_enabled),
		cmocka_unit_test(test_sync_finds_replaced_member),
		cmocka_unit_test(test_sync_bad_reply_keeps_list),
		cmocka_unit_test(test_watch_resumes_after_stream_end),
		cmocka_unit_test(test_watch_compacted),
		cmocka_unit_test(test_watch_malformed_batch),
		cmocka_unit_test(test_watch_fails_over),
		cmocka_unit_test(test_watch_token_refreshed),
		cmocka_unit_test(test_watch_hang_retried),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
