/*
 * pgmon.c — PostgreSQL's statistics for /metrics, collected by a thread of
 * its own (pg/pgstats.c) every PGMON_INTERVAL_MS on its own connection, each
 * query under statement_timeout: the HA loop never waits for it, and a slow or
 * stopped PostgreSQL only makes the collection fail, counted, with the series
 * missing until it answers again. The text goes to the API's snapshot.
 */
#include "ha/agent_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"
#include "pg/pgstats.h"

#define PGMON_INTERVAL_MS 5000

struct pgmon {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* signalled to stop */
	bool stop;
	struct pg_node node;      /* the agent's, with its own application_name */
	struct api_source *api;
	const char *labels[5];
	const char *endpoints;    /* etcd's, comma-separated (the agent's configuration) */
	struct httpc_tls etcd_tls;  /* [etcd] ca_file, cert_file, key_file: etcd asks them of /health too */
	bool etcd_tls_on;
	char last_error[256];     /* said once until it changes */
	char log_ctx[96];
};

static PGconn *connect_bounded(struct pgmon *m, struct pgha_err *e)
{
	PGconn *c = pg_connect_local(&m->node, e);
	if (c == NULL)
		return NULL;
	PGresult *r = PQexec(c, "SET statement_timeout = 2000; SET lock_timeout = 1000; "
			     "SET idle_in_transaction_session_timeout = 10000");
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		err_set(e, "setting the statistics session's timeouts: %s", PQresultErrorMessage(r));
	PQclear(r);
	if (!ok) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

static void say(struct pgmon *m, const char *msg)
{
	if (strncmp(msg, m->last_error, sizeof(m->last_error) - 1) == 0)
		return;
	snprintf(m->last_error, sizeof(m->last_error), "%.*s", (int)sizeof(m->last_error) - 1, msg);
	if (msg[0] != '\0')
		log_info("metrics: PostgreSQL's statistics: %s", msg);
}

/* Sleep until the next round or a stop; true: stop. */
static bool wait_round(struct pgmon *m)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += PGMON_INTERVAL_MS / 1000;
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		if (pthread_cond_timedwait(&m->cond, &m->lock, &ts) == ETIMEDOUT)
			break;
	}
	bool stop = m->stop;
	pthread_mutex_unlock(&m->lock);
	return stop;
}

/* Each etcd endpoint's /health, for the dashboard: in parallel, within a second. */
static void probe_etcd(struct pgmon *m)
{
	char urls[8][256];
	struct httpc_req reqs[8];
	size_t n = 0;
	const char *p = m->endpoints;
	while (p != NULL && *p != '\0' && n < 8) {
		size_t len = strcspn(p, ",");
		snprintf(urls[n], sizeof(urls[n]), "%.*s", (int)(len < 200 ? len : 200), p);
		n++;
		p += len + (p[len] == ',');
	}
	char health[8][300];
	memset(reqs, 0, sizeof(reqs));
	for (size_t i = 0; i < n; i++) {
		snprintf(health[i], sizeof(health[i]), "%.250s/health", urls[i]);
		reqs[i].url = health[i];
		reqs[i].tls = m->etcd_tls_on ? &m->etcd_tls : NULL;
	}
	httpc_run(reqs, n, 1000);
	bool up[8];
	for (size_t i = 0; i < n; i++) {
		up[i] = reqs[i].status == 200 && strstr(sb_str(&reqs[i].resp), "\"health\":\"true\"") != NULL;
		sb_free(&reqs[i].resp);
	}
	api_source_set_etcd_health(m->api, urls, up, n);
}

static void *run(void *arg)
{
	struct pgmon *m = arg;
	log_set_context(m->log_ctx);
	PGconn *c = NULL;
	do {
		int64_t t0 = now_ms();
		struct strbuf text = STRBUF_INIT;
		struct pgha_err e = {{0}};
		bool up = false, failed = true;
		if (c != NULL && PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = NULL;
		}
		if (c == NULL)
			c = connect_bounded(m, &e);
		double xacts = NAN, conns = NAN;
		if (c != NULL) {
			bool dead = false;
			int nfailed = pgstats_collect(c, m->labels, &text, &dead, &e);
			if (!dead && pgstats_totals(c, &xacts, &conns, &dead) != 0)
				xacts = conns = NAN;
			up = !dead && PQstatus(c) == CONNECTION_OK;
			failed = nfailed > 0 || !up;
			if (dead) {
				PQfinish(c);
				c = NULL;
			}
		}
		say(m, failed ? e.msg : "");
		api_source_set_pg(m->api, &text, up, failed, now_ms() - t0);
		api_source_add_sample(m->api, xacts, conns);
		probe_etcd(m);
		sb_free(&text);
	} while (!wait_round(m));
	PQfinish(c);
	return NULL;
}

int pgmon_start(struct agent *a, struct pgha_err *e)
{
	struct pgmon *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->node = a->node;
	m->node.application_name = "pgha-metrics";
	m->api = &a->api;
	m->labels[0] = "cluster";
	m->labels[1] = a->cfg.cluster_name;
	m->labels[2] = "member";
	m->labels[3] = a->cfg.name;
	m->endpoints = a->dcs.opts.endpoints;
	snprintf(m->log_ctx, sizeof(m->log_ctx), "agent %s", a->cfg.name);
	const struct etcd_opts *o = &a->dcs.opts;
	if ((o->ca_file && o->ca_file[0]) || (o->cert_file && o->cert_file[0])) {
		/* Checked at start already (etcd_check_tls): a failure here is a file changed since. */
		if (httpc_tls_load(&m->etcd_tls, o->ca_file, o->cert_file, o->key_file, e) != 0) {
			pthread_cond_destroy(&m->cond);
			pthread_mutex_destroy(&m->lock);
			free(m);
			return err_wrap(e, "[etcd] TLS files for the dashboard's etcd health");
		}
		m->etcd_tls_on = true;
	}
	int rc = pthread_create(&m->thread, NULL, run, m);
	if (rc != 0) {
		httpc_tls_free(&m->etcd_tls);
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return err_set(e, "cannot start the statistics thread: %s", strerror(rc));
	}
	a->pgmon = m;
	return 0;
}

void pgmon_stop(struct agent *a)
{
	struct pgmon *m = a->pgmon;
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	httpc_tls_free(&m->etcd_tls);
	free(m);
	a->pgmon = NULL;
}
