#include "proxy/route.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "cluster/member.h"

struct route {
	pthread_t thread;
	pthread_mutex_t lock;
	struct topology topo;
	int notify_fd;      /* to the event loop */
	int wake_fd;        /* from the watch callback */
	volatile int stop;
	struct etcd_opts opts;
	char *endpoints, *username, *password;
	char *prefix;
	struct etcd_watch *watch;
	/* this proxy's record: set by the loop, written by the thread */
	struct proxy_record rec;
	bool have_rec;
	char *written;       /* the JSON last written under the lease */
	int64_t lease;
	int64_t keepalive_ms;
	uint64_t sysid;          /* pinned: the first system identifier the initialize key showed */
	char *other_sysid;       /* a different value seen since, logged once */
	struct route_forward fwd;  /* [proxy] primary_hosts */
	char fwd_logged[300];      /* the last reason logged for not forwarding ("" none) */
};

#define RECORD_TTL_S 10

static void on_watch(void *arg, const struct etcd_event *ev, int64_t revision)
{
	struct route *r = arg;
	uint64_t one = 1;
	if (write(r->wake_fd, &one, sizeof(one)) < 0) {
		/* the thread polls every few seconds anyway */
	}
}

static bool same_target(const struct route_target *a, const struct route_target *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->region, b->region) == 0 && strcmp(a->zone, b->zone) == 0;
}

static void set_target(struct route_target *rt, const struct member *m)
{
	snprintf(rt->name, sizeof(rt->name), "%s", m->name);
	snprintf(rt->host, sizeof(rt->host), "%s", m->host);
	rt->port = m->port;
	snprintf(rt->region, sizeof(rt->region), "%s", m->tags.region);
	snprintf(rt->zone, sizeof(rt->zone), "%s", m->tags.zone);
}

bool route_forward_pick(const struct route_forward *fwd, const struct member *leader, struct route_target *out)
{
	char host[256];
	int port;
	struct pgha_err e;
	if (fwd == NULL || fwd->refuse || !leader->has_source || leader->source[0] == '\0' ||
	    parse_host_port(leader->source, host, sizeof(host), &port, &e) != 0)
		return false;
	for (int i = 0; i < fwd->n; i++) {
		if (strcmp(fwd->hosts[i].host, host) != 0 || fwd->hosts[i].port != port)
			continue;
		memset(out, 0, sizeof(*out));
		snprintf(out->name, sizeof(out->name), "%s", ROUTE_FORWARD_NAME);
		snprintf(out->host, sizeof(out->host), "%s", fwd->hosts[i].host);
		out->port = port;
		return true;
	}
	return false;
}

/* Once per change of what is logged: why a standby cluster's writes have nowhere to go. */
static void log_forward(struct route *r, const struct member *leader, bool picked)
{
	char what[300];
	if (picked || r->fwd.n == 0 || r->fwd.refuse)
		snprintf(what, sizeof(what), "%s", picked ? "" : r->fwd.refuse ? "refuse" : "no primary_hosts");
	else
		snprintf(what, sizeof(what), "%s", leader->has_source ? leader->source : "no source");
	if (strcmp(what, r->fwd_logged) == 0)
		return;
	snprintf(r->fwd_logged, sizeof(r->fwd_logged), "%s", what);
	if (picked)
		return;
	if (r->fwd.refuse)
		log_info("the cluster is a standby cluster of %s (standby leader %s): read-write clients are refused "
			 "([proxy] standby_writes = refuse)", leader->standby_of, leader->name);
	else if (r->fwd.n == 0)
		log_warn("the cluster is a standby cluster (standby leader %s): read-write clients wait, then fail\n"
			 "HINT: set [proxy] primary_hosts = host:port,... (the primary cluster's members) to forward "
			 "writes to its primary", leader->name);
	else if (leader->has_source && leader->source[0] != '\0')
		log_warn("the standby leader %s streams from %s, which is not in [proxy] primary_hosts: no writes "
			 "go there\nHINT: list every member of the primary cluster in primary_hosts, as in its "
			 "agents' [standby_cluster] primary_hosts", leader->name, leader->source);
	else
		log_info("the standby leader %s does not stream from the primary cluster now: new read-write "
			 "transactions wait (failover in the primary cluster?)", leader->name);
}

static void build(struct route *r, const struct cluster_view *v, struct topology *t)
{
	const struct member *leader = v->leader ? cluster_view_member(v, v->leader) : NULL;
	if (leader && leader->role == ROLE_PRIMARY && leader->state == STATE_RUNNING && leader->port > 0) {
		t->has_leader = true;
		set_target(&t->leader, leader);
		t->leader.lag_bytes = 0;
		r->fwd_logged[0] = '\0';
	} else if (leader && leader->standby_of[0] != '\0' && leader->role == ROLE_REPLICA) {
		t->standby_cluster = true;
		snprintf(t->standby_of, sizeof(t->standby_of), "%s", leader->standby_of);
		t->has_leader = route_forward_pick(&r->fwd, leader, &t->leader);
		log_forward(r, leader, t->has_leader);
	}
	/*
	 * A standby cluster reads from its own members, the standby leader too
	 * (as far behind as it says it is from the primary cluster); the others
	 * publish no lag (their leader writes no WAL position of a primary):
	 * theirs is measured here against the standby leader's.
	 */
	uint64_t sl_pos = 0;
	if (t->standby_cluster)
		sl_pos = leader->received_lsn > leader->replayed_lsn ? leader->received_lsn : leader->replayed_lsn;
	for (size_t i = 0; i < v->nmembers && t->nreplicas < ROUTE_MAX_REPLICAS; i++) {
		const struct member *m = &v->members[i];
		bool is_leader = v->leader && strcmp(v->leader, m->name) == 0;
		if (m->role != ROLE_REPLICA || m->state != STATE_STREAMING || m->tags.noloadbalance ||
		    (is_leader && !t->standby_cluster))
			continue;
		struct route_target *rt = &t->replicas[t->nreplicas++];
		set_target(rt, m);
		rt->lag_bytes = m->lag_bytes;
		if (is_leader)
			rt->lag_bytes = m->has_source ? m->source_lag_bytes : -1;
		else if (t->standby_cluster && sl_pos > 0)
			rt->lag_bytes = sl_pos > m->replayed_lsn ? (int64_t)(sl_pos - m->replayed_lsn) : 0;
	}
}

/*
 * The cluster's system identifier: the first one the initialize key shows is
 * kept for the life of the proxy. A key rewritten later (by a careless or
 * hostile hand, or a cluster re-created under the same name) is reported and
 * not followed: servers of another cluster never get work.
 */
static void read_sysid(struct route *r, const struct cluster_view *v, struct topology *t)
{
	const char *init = v->initialize;
	uint64_t id = 0;
	if (init != NULL && init[0] >= '1' && init[0] <= '9' && strlen(init) <= 20) {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(init, &end, 10);
		if (errno == 0 && *end == '\0')
			id = x;
	}
	if (r->sysid == 0 && id != 0) {
		r->sysid = id;
		log_info("cluster system identifier %llu (servers must show it before they get work)",
			 (unsigned long long)id);
	} else if (id != 0 && id != r->sysid && (r->other_sysid == NULL || strcmp(r->other_sysid, init) != 0)) {
		log_error("the initialize key now says system identifier %s, but this proxy serves %llu (pinned "
			  "when it first saw the cluster): servers with the new identifier get no work\n"
			  "HINT: if the cluster was re-created on purpose, restart the proxy",
			  init, (unsigned long long)r->sysid);
		free(r->other_sysid);
		r->other_sysid = xstrdup(init);
	}
	t->sysid = r->sysid;
}

static bool so_equal(const struct topology *a, const struct topology *b)
{
	if (a->has_switchover != b->has_switchover)
		return false;
	if (!a->has_switchover)
		return true;
	const struct switchover *x = &a->so, *y = &b->so;
	return strcmp(x->id, y->id) == 0 && x->phase == y->phase && x->deadline_ms == y->deadline_ms &&
	       strcmp(x->to, y->to) == 0 && strcmp(x->from, y->from) == 0 && x->at_ms == y->at_ms;
}

/* The switchover record, if any; a record that does not decode is logged once and ignored. */
static void read_switchover(struct route *r, const struct etcd_kvs *kvs, struct topology *t)
{
	static char last_bad[sizeof(((struct pgha_err *)0)->msg)];
	size_t plen = strlen(r->prefix);
	for (size_t i = 0; i < kvs->count; i++) {
		const struct etcd_kv *kv = &kvs->kvs[i];
		if (strncmp(kv->key, r->prefix, plen) != 0 || strcmp(kv->key + plen, "switchover") != 0)
			continue;
		struct pgha_err e;
		if (switchover_decode(kv->value, kv->value_len, &t->so, &e) != 0) {
			if (strcmp(last_bad, e.msg) != 0)
				log_warn("%s: %s (ignored: no switchover is followed)", kv->key, e.msg);
			snprintf(last_bad, sizeof(last_bad), "%s", e.msg);
			return;
		}
		last_bad[0] = '\0';
		t->has_switchover = true;
		return;
	}
}

/* Keep this proxy's record in etcd: a lease, kept alive; the record rewritten when it changes. */
static void keep_record(struct route *r, struct etcd_client *c)
{
	struct pgha_err e;
	pthread_mutex_lock(&r->lock);
	char *json = r->have_rec ? proxy_record_encode(&r->rec) : NULL;
	char name[sizeof(r->rec.name)];
	snprintf(name, sizeof(name), "%s", r->rec.name);
	pthread_mutex_unlock(&r->lock);
	if (json == NULL)
		return;
	int64_t now = now_ms();
	if (r->lease != 0 && now >= r->keepalive_ms) {
		int rc = etcd_lease_keepalive(c, r->lease, NULL, &e);
		if (rc == ETCD_ENOLEASE) {
			log_warn("the lease of this proxy's record expired: registering again");
			r->lease = 0;
		} else if (rc != 0) {
			log_debug("keeping this proxy's record alive: %s", e.msg);
		} else {
			r->keepalive_ms = now + RECORD_TTL_S * 1000 / 3;
		}
	}
	bool fresh = false;
	if (r->lease == 0) {
		if (etcd_lease_grant(c, RECORD_TTL_S, &r->lease, &e) != 0) {
			log_debug("registering this proxy: %s", e.msg);
			free(json);
			return;
		}
		r->keepalive_ms = now + RECORD_TTL_S * 1000 / 3;
		fresh = true;
	}
	if (fresh || r->written == NULL || strcmp(r->written, json) != 0) {
		char *key = xasprintf("%sproxies/%s", r->prefix, name);
		if (etcd_put(c, key, json, r->lease, &e) != 0) {
			log_warn("writing %s: %s", key, e.msg);
			free(json);
		} else {
			free(r->written);
			r->written = json;
		}
		free(key);
		return;
	}
	free(json);
}

static bool topo_equal(const struct topology *a, const struct topology *b)
{
	if (a->etcd_ok != b->etcd_ok || a->has_leader != b->has_leader || a->nreplicas != b->nreplicas ||
	    a->standby_cluster != b->standby_cluster || strcmp(a->standby_of, b->standby_of) != 0 ||
	    a->sysid != b->sysid || !so_equal(a, b))
		return false;
	if (a->has_leader && !same_target(&a->leader, &b->leader))
		return false;
	for (int i = 0; i < a->nreplicas; i++)
		if (!same_target(&a->replicas[i], &b->replicas[i]) ||
		    a->replicas[i].lag_bytes != b->replicas[i].lag_bytes)
			return false;
	return true;
}

static void publish(struct route *r, struct topology *t)
{
	pthread_mutex_lock(&r->lock);
	bool changed = !topo_equal(&r->topo, t);
	if (changed) {
		t->version = r->topo.version + 1;
		if (t->has_leader != r->topo.has_leader || !same_target(&t->leader, &r->topo.leader))
		{
			if (t->has_leader) {
				char addr[300];
				snprintf(addr, sizeof(addr), "%s:%d", t->leader.host, t->leader.port);
				const char *kv[] = {"event", "leader", "leader", t->leader.name, "leader_address", addr, NULL};
				log_info_kv(kv, "leader: %s at %s", t->leader.name, addr);
			} else {
				log_info("leader: none (failover in progress?): new transactions wait");
			}
		}
		r->topo = *t;
	}
	pthread_mutex_unlock(&r->lock);
	if (changed) {
		uint64_t one = 1;
		if (write(r->notify_fd, &one, sizeof(one)) < 0) {
			/* the loop also checks the version periodically */
		}
	}
}

static void *route_thread(void *arg)
{
	struct route *r = arg;
	log_set_context("proxy route");
	struct pgha_err e;
	struct etcd_client *c = etcd_new(&r->opts, &e);
	if (c == NULL) {
		log_error("etcd client: %s", e.msg);
		return NULL;
	}
	bool was_ok = true;
	while (!r->stop) {
		struct etcd_kvs kvs = {0};
		struct topology t;
		memset(&t, 0, sizeof(t));
		if (etcd_get_prefix(c, r->prefix, &kvs, &e) == 0) {
			struct cluster_view v = {0};
			cluster_view_from_kvs(r->prefix, &kvs, &v);
			cluster_view_sort(&v);
			t.etcd_ok = true;
			build(r, &v, &t);
			read_sysid(r, &v, &t);
			read_switchover(r, &kvs, &t);
			cluster_view_free(&v);
			etcd_kvs_free(&kvs);
			if (!was_ok)
				log_info("etcd reachable again");
			was_ok = true;
			publish(r, &t);
		} else {
			if (was_ok)
				log_warn("etcd unreachable: %s; keeping the last known topology", e.msg);
			was_ok = false;
			/* Keep routing to what we knew: servers are still checked one by one. */
		}
		keep_record(r, c);
		struct pollfd pfd = {.fd = r->wake_fd, .events = POLLIN};
		if (poll(&pfd, 1, 1000) > 0) {
			uint64_t v;
			if (read(r->wake_fd, &v, sizeof(v)) < 0) {
				/* drained by someone else */
			}
		}
	}
	if (r->lease != 0 && etcd_lease_revoke(c, r->lease, &e) != 0)
		log_warn("removing this proxy's record: %s", e.msg);
	etcd_free(c);
	return NULL;
}

void route_set_record(struct route *r, const struct proxy_record *rec)
{
	pthread_mutex_lock(&r->lock);
	bool changed = !r->have_rec || memcmp(&r->rec, rec, sizeof(*rec)) != 0;
	r->rec = *rec;
	r->have_rec = true;
	pthread_mutex_unlock(&r->lock);
	if (changed) {
		uint64_t one = 1;
		if (write(r->wake_fd, &one, sizeof(one)) < 0) {
			/* the thread looks within a second anyway */
		}
	}
}

struct route *route_start(const struct etcd_opts *opts, const char *prefix, const struct route_forward *fwd,
			  struct pgha_err *e)
{
	struct route *r = xcalloc(1, sizeof(*r));
	if (fwd != NULL)
		r->fwd = *fwd;
	pthread_mutex_init(&r->lock, NULL);
	r->endpoints = xstrdup(opts->endpoints);
	r->username = opts->username ? xstrdup(opts->username) : NULL;
	r->password = opts->password ? xstrdup(opts->password) : NULL;
	r->opts = *opts;
	r->opts.endpoints = r->endpoints;
	r->opts.username = r->username;
	r->opts.password = r->password;
	r->prefix = xstrdup(prefix);
	r->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->notify_fd < 0 || r->wake_fd < 0) {
		err_set(e, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r->watch = etcd_watch_start(&r->opts, prefix, 0, on_watch, r, e);
	if (r->watch == NULL)
		goto fail;
	if (pthread_create(&r->thread, NULL, route_thread, r) != 0) {
		err_set(e, "cannot start the routing thread");
		etcd_watch_stop(r->watch);
		goto fail;
	}
	return r;
fail:
	if (r->notify_fd >= 0)
		close(r->notify_fd);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	free(r->endpoints);
	free(r->username);
	secret_free(r->password);
	free(r->prefix);
	free(r->other_sysid);
	free(r);
	return NULL;
}

int route_fd(const struct route *r)
{
	return r->notify_fd;
}

void route_get(struct route *r, struct topology *out)
{
	uint64_t v;
	if (read(r->notify_fd, &v, sizeof(v)) < 0) {
		/* nothing pending */
	}
	pthread_mutex_lock(&r->lock);
	*out = r->topo;
	pthread_mutex_unlock(&r->lock);
}

void route_stop(struct route *r)
{
	if (r == NULL)
		return;
	r->stop = 1;
	uint64_t one = 1;
	if (write(r->wake_fd, &one, sizeof(one)) < 0) {
		/* the thread wakes within 2 s anyway */
	}
	pthread_join(r->thread, NULL);
	etcd_watch_stop(r->watch);
	close(r->notify_fd);
	close(r->wake_fd);
	free(r->endpoints);
	free(r->username);
	secret_free(r->password);
	free(r->prefix);
	free(r->other_sysid);
	free(r->written);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
