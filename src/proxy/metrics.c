/*
 * metrics.c — Prometheus metrics of the proxy. Once a second the event loop
 * renders the text (walking pools, clients and servers, which only it may
 * touch) into a snapshot; the HTTP thread (src/http/httpd) serves the last
 * snapshot under a mutex. So /metrics never races with the loop.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/httpd.h"
#include "common/log.h"
#include "common/prom.h"
#include "proxy/metrics.h"
#include "proxy/objects.h"

static const int64_t bucket_ms[] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};
#define NBUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

struct metrics {
	pthread_mutex_t lock;
	struct strbuf text;
	struct httpd *httpd;
};

static void handler(void *arg, const struct http_request *req, struct http_response *resp)
{
	struct metrics *m = arg;
	if (strcmp(req->path, "/metrics") != 0) {
		resp->status = 404;
		sb_puts(&resp->body, "not found: try /metrics\n");
		resp->content_type = "text/plain";
		return;
	}
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4";
	pthread_mutex_lock(&m->lock);
	sb_append(&resp->body, m->text.data ? m->text.data : "", m->text.len);
	pthread_mutex_unlock(&m->lock);
}

struct metrics *metrics_start(struct proxy *px, const char *listen, struct pgha_err *e)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	sb_init(&m->text);
	px->metrics = m;
	metrics_render(px);
	m->httpd = httpd_start(listen, handler, m, e);
	if (m->httpd == NULL) {
		px->metrics = NULL;
		sb_free(&m->text);
		free(m);
		return NULL;
	}
	return m;
}

void metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	httpd_stop(m->httpd);
	sb_free(&m->text);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static void observe(uint64_t hist[NBUCKETS + 1], uint64_t *sum, int64_t ms)
{
	size_t i = 0;
	while (i < NBUCKETS && ms > bucket_ms[i])
		i++;
	hist[i]++;
	*sum += (uint64_t)(ms > 0 ? ms : 0);
}

void metrics_observe_xact(struct proxy *px, int64_t ms)
{
	observe(px->stats_xact_hist, &px->stats_xact_ms_sum, ms);
}

void metrics_observe_query(struct proxy *px, int64_t ms)
{
	observe(px->stats_query_hist, &px->stats_query_ms_sum, ms);
}

void metrics_observe_wait(struct proxy *px, int64_t ms)
{
	observe(px->stats_wait_hist, &px->stats_wait_ms_sum, ms);
}

void metrics_count_error(struct proxy *px, const char *sqlstate)
{
	px->stats_errors_sent++;
	size_t i;
	for (i = 0; i < px->nsqlstate; i++)
		if (strcmp(px->stats_sqlstate[i].code, sqlstate) == 0)
			break;
	if (i == px->nsqlstate) {
		/* SQLSTATEs are the proxy's own, a dozen at most; a 17th shares the last slot. */
		if (px->nsqlstate == sizeof(px->stats_sqlstate) / sizeof(px->stats_sqlstate[0]))
			i = px->nsqlstate - 1;
		else
			px->nsqlstate++;
		snprintf(px->stats_sqlstate[i].code, sizeof(px->stats_sqlstate[i].code), "%.5s", sqlstate);
	}
	px->stats_sqlstate[i].n++;
}

/* A histogram in seconds from buckets of milliseconds. */
static void histogram(struct strbuf *sb, const char *name, const uint64_t hist[NBUCKETS + 1], uint64_t ms_sum)
{
	uint64_t cum = 0;
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += hist[i];
		sb_printf(sb, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bucket_ms[i] / 1000.0, (unsigned long long)cum);
	}
	cum += hist[NBUCKETS];
	sb_printf(sb, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	sb_printf(sb, "%s_sum %g\n", name, (double)ms_sum / 1000.0);
	sb_printf(sb, "%s_count %llu\n", name, (unsigned long long)cum);
}

/* The pool's labels: database and user come from clients, so prom_sample escapes them. */
#define POOL_LABELS(p) {"database", (p)->database, "user", (p)->user, "port", (p)->ro ? "ro" : "rw", NULL}

static void pool_lines(struct strbuf *sb, const struct pool *p)
{
	int idle = 0, active = 0, login = 0;
	for (const struct link *l = p->idle.next; l != &p->idle; l = l->next)
		idle++;
	for (const struct link *l = p->active.next; l != &p->active; l = l->next) {
		const struct server *s = link_entry(l, const struct server, node);
		if (s->state == SV_CONNECTING || s->state == SV_LOGIN)
			login++;
		else
			active++;
	}
	const char *labels[] = POOL_LABELS(p);
	const char *st_idle[] = {"state", "idle", NULL}, *st_active[] = {"state", "active", NULL},
		   *st_login[] = {"state", "login", NULL};
	prom_sample(sb, "pgha_proxy_servers", labels, st_idle, idle);
	prom_sample(sb, "pgha_proxy_servers", labels, st_active, active);
	prom_sample(sb, "pgha_proxy_servers", labels, st_login, login);
	prom_sample(sb, "pgha_proxy_clients_waiting", labels, NULL, p->nwaiting);
}

/* A counter with two values of one label. */
static void counter_pair(struct strbuf *sb, const char *name, const char *help, const char *label,
			 const char *a, uint64_t va, const char *b, uint64_t vb)
{
	sb_printf(sb, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	sb_printf(sb, "%s{%s=\"%s\"} %llu\n", name, label, a, (unsigned long long)va);
	sb_printf(sb, "%s{%s=\"%s\"} %llu\n", name, label, b, (unsigned long long)vb);
}

/* Per pool: clients by state and the longest wait, as pgbouncer_exporter gives them. */
static void pool_client_lines(struct strbuf *sb, const struct proxy *px, const struct pool *p)
{
	int idle = 0, active = 0;
	for (const struct link *l = px->clients_idle.next; l != &px->clients_idle; l = l->next) {
		const struct client *c = link_entry(l, const struct client, node);
		idle += c->pool == p && c->state == CL_IDLE;
	}
	int pinned = 0;
	for (const struct link *l = p->active.next; l != &p->active; l = l->next) {
		const struct client *c = link_entry(l, const struct server, node)->client;
		active += c != NULL;
		pinned += c != NULL && c->pinned != NULL;
	}
	int64_t longest = 0;
	for (const struct link *l = p->waiting.next; l != &p->waiting; l = l->next) {
		const struct client *c = link_entry(l, const struct client, node);
		if (px->now_ms - c->since_ms > longest)
			longest = px->now_ms - c->since_ms;
	}
	const char *labels[] = POOL_LABELS(p);
	const char *st_idle[] = {"state", "idle", NULL}, *st_active[] = {"state", "active", NULL},
		   *st_wait[] = {"state", "waiting", NULL};
	prom_sample(sb, "pgha_proxy_pool_clients", labels, st_idle, idle);
	prom_sample(sb, "pgha_proxy_pool_clients", labels, st_active, active);
	prom_sample(sb, "pgha_proxy_pool_clients", labels, st_wait, p->nwaiting);
	prom_sample(sb, "pgha_proxy_pool_longest_wait_seconds", labels, NULL, (double)longest / 1000.0);
	prom_sample(sb, "pgha_proxy_pool_clients_pinned", labels, NULL, pinned);
}

/* When the certificates in use expire: the one clients see, the one the proxy shows PostgreSQL. */
static void tls_expiry(struct strbuf *sb, const struct proxy *px)
{
	const char *name = "pgha_tls_cert_expiry_timestamp_seconds";
	if (px->tls_cert_loaded == NULL && px->server_tls_cert_loaded == NULL)
		return;
	prom_family(sb, name, "gauge", "When the certificate in use expires (notAfter, unix seconds): link "
		    "\"client\" is [tls] cert_file, shown to clients; \"server\" is server_cert_file, shown to PostgreSQL.");
	if (px->tls_cert_loaded != NULL) {
		const char *l[] = {"link", "client", "file", px->tls_cert_loaded, NULL};
		prom_sample(sb, name, l, NULL, (double)px->tls_not_after);
	}
	if (px->server_tls_cert_loaded != NULL) {
		const char *l[] = {"link", "server", "file", px->server_tls_cert_loaded, NULL};
		prom_sample(sb, name, l, NULL, (double)px->server_tls_not_after);
	}
}

void metrics_render(struct proxy *px)
{
	struct metrics *m = px->metrics;
	if (m == NULL)
		return;
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "# HELP pgha_proxy_clients Client connections now.\n# TYPE pgha_proxy_clients gauge\n");
	sb_printf(&sb, "pgha_proxy_clients %d\n", px->nclients);
	sb_puts(&sb, "# HELP pgha_proxy_clients_accepted_total Client connections accepted.\n"
		     "# TYPE pgha_proxy_clients_accepted_total counter\n");
	sb_printf(&sb, "pgha_proxy_clients_accepted_total %llu\n", (unsigned long long)px->stats_clients_total);
	sb_puts(&sb, "# HELP pgha_proxy_clients_logging_in Client connections not logged in yet.\n"
		     "# TYPE pgha_proxy_clients_logging_in gauge\n");
	sb_printf(&sb, "pgha_proxy_clients_logging_in %d\n", px->npreauth);
	sb_puts(&sb, "# HELP pgha_proxy_clients_refused_preauth_total Connections refused over max_preauth_conn.\n"
		     "# TYPE pgha_proxy_clients_refused_preauth_total counter\n");
	sb_printf(&sb, "pgha_proxy_clients_refused_preauth_total %llu\n",
		  (unsigned long long)px->stats_preauth_refused);
	sb_puts(&sb, "# HELP pgha_proxy_servers Server connections by pool and state.\n# TYPE pgha_proxy_servers gauge\n"
		     "# HELP pgha_proxy_clients_waiting Clients waiting for a server (failover hold included).\n"
		     "# TYPE pgha_proxy_clients_waiting gauge\n");
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next)
		pool_lines(&sb, link_entry(l, struct pool, node));
	sb_puts(&sb, "# HELP pgha_proxy_pool_clients Logged-in clients by pool and state (idle: no transaction; "
		     "active: linked to a server; waiting: for a server, a failover or switchover hold included).\n"
		     "# TYPE pgha_proxy_pool_clients gauge\n"
		     "# HELP pgha_proxy_pool_longest_wait_seconds How long the pool's oldest waiting client has waited.\n"
		     "# TYPE pgha_proxy_pool_longest_wait_seconds gauge\n"
		     "# HELP pgha_proxy_pool_clients_pinned Transaction-mode clients keeping their server for "
		     "session state that cannot move (LISTEN, advisory locks, temporary tables...).\n"
		     "# TYPE pgha_proxy_pool_clients_pinned gauge\n");
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next)
		pool_client_lines(&sb, px, link_entry(l, struct pool, node));
	sb_puts(&sb, "# HELP pgha_proxy_transactions_total Transactions finished (transaction pooling).\n"
		     "# TYPE pgha_proxy_transactions_total counter\n");
	sb_printf(&sb, "pgha_proxy_transactions_total %llu\n", (unsigned long long)px->stats_xacts);
	counter_pair(&sb, "pgha_proxy_ryw_reads_total", "Read-only transactions under read_your_writes, by where "
		     "they ran (a standby that had replayed far enough, or the leader).", "served_by",
		     "standby", px->stats_ryw_standby, "leader", px->stats_ryw_leader);
	sb_puts(&sb, "# HELP pgha_proxy_ryw_replay_checks_total Reads that asked their standby to replay further "
		     "first (read_your_writes).\n# TYPE pgha_proxy_ryw_replay_checks_total counter\n");
	sb_printf(&sb, "pgha_proxy_ryw_replay_checks_total %llu\n", (unsigned long long)px->stats_ryw_waited);
	sb_puts(&sb, "# HELP pgha_proxy_prepared_statements_evicted_total Drivers' statements closed on a server "
		     "connection at max_prepared_statements (prepared again when next used).\n"
		     "# TYPE pgha_proxy_prepared_statements_evicted_total counter\n");
	sb_printf(&sb, "pgha_proxy_prepared_statements_evicted_total %llu\n", (unsigned long long)px->stats_stmt_evicted);
	sb_puts(&sb, "# HELP pgha_proxy_rw_split_reads_total Transactions of the read-write port sent to the "
		     "read-only pool as proven reads (rw_split).\n# TYPE pgha_proxy_rw_split_reads_total counter\n");
	sb_printf(&sb, "pgha_proxy_rw_split_reads_total %llu\n", (unsigned long long)px->stats_split_standby);
	sb_puts(&sb, "# HELP pgha_proxy_ro_reads_remote_total Read-only transactions (read-only port, rw_split) that "
		     "ran on a standby outside this proxy's [proxy] region: none in it was usable (0 without a region).\n"
		     "# TYPE pgha_proxy_ro_reads_remote_total counter\n");
	sb_printf(&sb, "pgha_proxy_ro_reads_remote_total %llu\n", (unsigned long long)px->stats_ro_remote);
	sb_puts(&sb, "# HELP pgha_proxy_writes_forwarded_total Read-write transactions (sessions in session "
		     "mode) a standby cluster's proxy gave a server of the primary cluster ([proxy] primary_hosts).\n"
		     "# TYPE pgha_proxy_writes_forwarded_total counter\n");
	sb_printf(&sb, "pgha_proxy_writes_forwarded_total %llu\n", (unsigned long long)px->stats_forwarded);
	sb_puts(&sb, "# HELP pgha_proxy_queries_total Simple-protocol queries forwarded.\n"
		     "# TYPE pgha_proxy_queries_total counter\n");
	sb_printf(&sb, "pgha_proxy_queries_total %llu\n", (unsigned long long)px->stats_queries);
	sb_puts(&sb, "# HELP pgha_proxy_transaction_seconds Time a transaction held a server.\n"
		     "# TYPE pgha_proxy_transaction_seconds histogram\n");
	histogram(&sb, "pgha_proxy_transaction_seconds", px->stats_xact_hist, px->stats_xact_ms_sum);
	sb_puts(&sb, "# HELP pgha_proxy_query_seconds Time from a client's Query (or Sync) to the server's "
		     "ReadyForQuery, through the proxy.\n# TYPE pgha_proxy_query_seconds histogram\n");
	histogram(&sb, "pgha_proxy_query_seconds", px->stats_query_hist, px->stats_query_ms_sum);
	sb_puts(&sb, "# HELP pgha_proxy_client_wait_seconds Time a client waited for each server it got (0 when one "
		     "was free; a failover or switchover hold included).\n"
		     "# TYPE pgha_proxy_client_wait_seconds histogram\n");
	histogram(&sb, "pgha_proxy_client_wait_seconds", px->stats_wait_hist, px->stats_wait_ms_sum);
	counter_pair(&sb, "pgha_proxy_received_bytes_total", "Bytes read from clients and from servers (relayed).",
		     "from", "clients", px->stats_bytes_from_clients, "servers", px->stats_bytes_from_servers);
	sb_puts(&sb, "# HELP pgha_proxy_sent_bytes_total Bytes sent to clients.\n"
		     "# TYPE pgha_proxy_sent_bytes_total counter\n");
	sb_printf(&sb, "pgha_proxy_sent_bytes_total{to=\"clients\"} %llu\n", (unsigned long long)px->stats_bytes_to_clients);
	sb_puts(&sb, "# HELP pgha_proxy_errors_by_sqlstate_total Errors the proxy itself sent, by SQLSTATE "
		     "(53300 too many clients, 28P01 wrong password, 08P01 protocol, 08006 server lost, ...).\n"
		     "# TYPE pgha_proxy_errors_by_sqlstate_total counter\n");
	for (size_t i = 0; i < px->nsqlstate; i++) {
		const char *l[] = {"sqlstate", px->stats_sqlstate[i].code, NULL};
		prom_sample(&sb, "pgha_proxy_errors_by_sqlstate_total", l, NULL, (double)px->stats_sqlstate[i].n);
	}
	sb_puts(&sb, "# HELP pgha_proxy_errors_sent_total Errors the proxy itself sent to clients.\n"
		     "# TYPE pgha_proxy_errors_sent_total counter\n");
	sb_printf(&sb, "pgha_proxy_errors_sent_total %llu\n", (unsigned long long)px->stats_errors_sent);
	sb_puts(&sb, "# HELP pgha_proxy_routing_changes_total Topology changes seen in etcd.\n"
		     "# TYPE pgha_proxy_routing_changes_total counter\n");
	sb_printf(&sb, "pgha_proxy_routing_changes_total %llu\n", (unsigned long long)px->stats_routing_changes);
	sb_puts(&sb, "# HELP pgha_proxy_leader Whether a leader is known (1) and which.\n# TYPE pgha_proxy_leader gauge\n");
	if (px->topo.has_leader) {
		char addr[300];
		snprintf(addr, sizeof(addr), "%s:%d", px->topo.leader.host, px->topo.leader.port);
		const char *l[] = {"name", px->topo.leader.name, "address", addr, NULL};
		prom_sample(&sb, "pgha_proxy_leader", l, NULL, 1);
	} else {
		const char *l[] = {"name", "", "address", "", NULL};
		prom_sample(&sb, "pgha_proxy_leader", l, NULL, 0);
	}
	sb_puts(&sb, "# HELP pgha_proxy_standbys Streaming standbys the read-only port may use.\n"
		     "# TYPE pgha_proxy_standbys gauge\n");
	sb_printf(&sb, "pgha_proxy_standbys %d\n", px->topo.nreplicas);
	sb_puts(&sb, "# HELP pgha_proxy_held New read-write transactions wait: 1 admin PAUSE, 2 a planned switchover.\n"
		     "# TYPE pgha_proxy_held gauge\n");
	sb_printf(&sb, "pgha_proxy_held %d\n", px->paused ? 1 : px->so_hold ? 2 : 0);
	tls_expiry(&sb, px);
	pthread_mutex_lock(&m->lock);
	struct strbuf old = m->text;
	m->text = sb;
	pthread_mutex_unlock(&m->lock);
	sb_free(&old);
}
