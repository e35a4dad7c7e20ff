/*
 * api.h — the agent's HTTP API: Patroni-compatible health endpoints and the
 * cluster view.
 *
 * The agent's HA loop owns an api_source and updates it (under its lock) after
 * every loop; the API thread only reads it. The answer to every health check
 * is a pure function of that snapshot (api_health), unit-tested without
 * sockets.
 *
 * Endpoints (GET, HEAD and OPTIONS are answered alike):
 *   /primary, /leader, /master   200 when this member holds the leader key and
 *                                PostgreSQL runs as primary, else 503
 *   /replica                     200 when PostgreSQL runs as a streaming standby
 *                                (and not tagged noloadbalance); ?lag=<n|nkB|nMB>
 *                                adds: lag behind the leader <= n bytes
 *   /read-only                   200 on the primary or a running replica
 *   /health                      200 when PostgreSQL is running
 *   /liveness                    200 when the HA loop ran within ttl seconds
 *   /readiness                   200 when leader (with key) or a running replica
 *   /cluster                     JSON view of all members (always 200 if etcd was read);
 *                                "leader_key_invalid" {value, problem, mod_revision} when the
 *                                leader key was not written by an agent (cluster/member.h)
 *   POST /failsafe               the leader's ping while etcd is unreachable: 200 if this
 *                                member cannot reach etcd either (and then it does not race
 *                                for the key for one TTL), 409 otherwise. Needs the bearer
 *                                token like /switchover (401 without or wrong, 403 when no
 *                                token file is configured: failsafe is then off)
 *   POST /switchover             {"candidate": NODE, "leader": optional, "scheduled_at":
 *                                optional ISO time or +30s}: request a planned switchover
 *                                (202 with the request); DELETE /switchover withdraws a
 *                                pending one. Both need "Authorization: Bearer <token>"
 *                                ([node] api_token_file); without a token file, 403.
 *   POST /pause, DELETE /pause   maintenance mode on / off (the config key, as `ctl pause` /
 *                                `ctl resume`); the bearer token like /switchover
 *   /ui                          the dashboard (api/ui.c); /ui/series its charts' points
 *   /                            same as /primary (Patroni; HAProxy's bare httpchk probes it)
 *   /status, /patroni            this member's status JSON, 200 if PostgreSQL runs
 *   /history                     {"entries": [...]}: the leader changes, oldest first
 *                                (cluster/history_key.h); 500 naming the entry if the key is bad
 *   /metrics                     Prometheus text: this member's HA state and the cluster
 *                                as this member last read it (api/metrics.c)
 * Every health answer carries this member's status JSON as the body.
 */
#ifndef PGHA_API_API_H
#define PGHA_API_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/member.h"
#include "common/strbuf.h"
#include "dcs/etcd.h"
#include "http/httpd.h"

struct api_status {
	struct member self;      /* this member, as last published */
	bool holds_leader_key;   /* this member is the leader in etcd */
	bool etcd_reachable;     /* the last etcd call succeeded */
	bool paused;             /* cluster in maintenance mode */
	uint64_t leader_lsn;     /* last known WAL position of the leader, 0 unknown */
	int64_t last_loop_ms;    /* now_ms() of the last completed HA loop */
	int ttl_s;               /* leader TTL (for /liveness) */
	char leader[MEMBER_NAME_MAX]; /* current leader name, "" if none */
	bool failsafe_active;    /* leader staying primary without etcd (every member confirmed) */
	/* For /metrics (api/metrics.c). */
	int64_t loop_ms;         /* how long the last HA loop took */
	uint64_t loops;          /* HA loops run since the agent started */
	uint64_t leader_changes; /* changes of the leader key's holder this agent saw */
	uint64_t promotions;     /* times this member became primary under the leader key */
	int64_t etcd_ok_s;       /* unix time of the last successful etcd read, 0 never */
	int64_t lease_left_ms;   /* this member's lease left at the end of the last loop, -1 none */
	int64_t started_s;       /* unix time the agent started */
	const char *tls_cert_file; /* [tls] cert_file (self.tls_not_after is its expiry), NULL none */
	bool api_tls;            /* the API serves HTTPS with that certificate */
};

/* One point of the dashboard's charts (api/ui.c), taken with each statistics collection. */
#define API_SERIES_MAX 120         /* 10 minutes at one point every 5 s */
#define API_SERIES_LAGS 8
struct api_sample {
	int64_t t_ms;               /* wall clock */
	double xacts;               /* transactions ended so far, NaN unknown */
	double conns;               /* client connections, NaN unknown */
	double proxy_waiting;       /* clients the proxies hold or queue (their records), NaN: no proxy */
	int nlag;
	char lag_name[API_SERIES_LAGS][MEMBER_NAME_MAX];
	int64_t lag[API_SERIES_LAGS];  /* each standby's lag in bytes, from the view */
};

struct api_source {
	pthread_mutex_t lock;
	struct api_status status;
	struct cluster_view view;   /* last read of etcd (owned; replaced under lock) */
	bool have_view;
	char cluster[128];
	int64_t failsafe_until_ms;  /* written by POST /failsafe: do not race before */
	/* set before api_start, read-only afterwards: for POST/DELETE /switchover */
	const struct etcd_opts *etcd;
	const char *prefix;         /* "<prefix>/<cluster>/" */
	const char *token;          /* NULL: the API changes nothing (no switchover, no failsafe) */
	/* PostgreSQL's statistics as Prometheus text, collected off the HA loop (ha/pgmon.c). */
	struct strbuf pg_text;
	bool pg_up;                 /* the last collection reached PostgreSQL */
	bool pg_collected;          /* a collection ran at all */
	int64_t pg_at_ms;           /* when it ended (now_ms) */
	int64_t pg_duration_ms;
	uint64_t pg_errors;         /* collections that failed or had a query fail */
	/* Each etcd endpoint and whether its /health answered healthy at the last probe (ha/pgmon.c). */
	char etcd_health[8][256];
	bool etcd_up[8];
	size_t netcd;
	struct api_sample series[API_SERIES_MAX];   /* a ring, oldest at series_head when full */
	size_t series_n, series_head;
};

void api_source_init(struct api_source *src, const char *cluster_name);
void api_source_destroy(struct api_source *src);
/*
 * Replace the view (takes ownership of *view, which is zeroed) and the status.
 * Either may be NULL to keep the current one (e.g. etcd unreachable: new
 * status, last view kept).
 */
void api_source_update(struct api_source *src, const struct api_status *st, struct cluster_view *view);
/*
 * A collection of PostgreSQL's statistics ended: text (taken over, emptied)
 * is what /metrics appends while up; failed counts a failure (up or not).
 */
void api_source_set_pg(struct api_source *src, struct strbuf *text, bool up, bool failed, int64_t duration_ms);
/* The etcd endpoints probed (urls[i] healthy: up[i]), for the dashboard. */
void api_source_set_etcd_health(struct api_source *src, char urls[][256], const bool *up, size_t n);
/* A point for the dashboard's charts: xacts and conns (NaN unknown) with each standby's lag from the view. */
void api_source_add_sample(struct api_source *src, double xacts, double conns);
/* GET /ui/series: the charts' points as JSON (under the source's lock). */
void api_series_json(const struct api_source *src, struct strbuf *out);
/* GET /ui, /ui/app.js, /ui/app.css: the dashboard. false: not one of its paths. */
bool api_ui_file(const char *path, struct http_response *resp);

/*
 * Health decision: status code for a health path, 0 if `path` is not a health
 * endpoint. `query` is the raw query string. Appends the status JSON to body.
 * A malformed query (?lag=abc, ?replication_state=bogus) is 400 with an
 * {"error": ...} body instead: a typo must not silently mean "any lag".
 * /read-only and /readiness accept ?lag= too; /liveness is 503 until the
 * first loop completed (last_loop_ms == 0); ttl_s <= 0 means 30 s.
 */
int api_health(const char *path, const char *query, const struct api_status *st, int64_t now_ms,
	       struct strbuf *body);

/* Status JSON of this member (the body of health answers). */
void api_status_json(const struct api_status *st, struct strbuf *out);

/*
 * /metrics: the Prometheus text of this member's state and of the view (NULL:
 * etcd not read yet), labelled with cluster and member. Pure: from the
 * snapshot only, so a scrape never waits for the HA loop, PostgreSQL or etcd.
 */
void api_metrics_render(const struct api_status *st, const struct cluster_view *v, const char *cluster,
			int64_t now_ms, struct strbuf *out);
/* /metrics' part about PostgreSQL's statistics (the source's pg_* fields), under the source's lock. */
void api_metrics_render_pg(const struct api_source *src, int64_t now_ms, struct strbuf *out);

/* Parse a lag threshold: "1048576", "100kB", "16MB", "1GB" (1 kB = 1024 B). */
int api_parse_lag(const char *s, uint64_t *bytes);

struct api_server;
/*
 * Serve the API on listen_addr ("0.0.0.0:8008", "[::1]:8008", port 0 picks a
 * free one), over HTTPS with tls (taken over; NULL: plain HTTP). Methods other than GET/HEAD/OPTIONS get 405, unknown paths 404,
 * both with a JSON {"error": ...} body; /cluster is 503 until a view was
 * published.
 */
struct api_server *api_start(const char *listen_addr, struct api_source *src, SSL_CTX *tls, struct pgha_err *e);
/* A certificate reload: new connections get tls (taken over; http/httpd.h httpd_set_tls). */
void api_set_tls(struct api_server *s, SSL_CTX *tls);
/* Port actually bound (useful with port 0). */
int api_port(const struct api_server *s);
void api_stop(struct api_server *s);

#endif
