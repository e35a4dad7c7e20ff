/*
 * route.h — where the proxy sends work, learned by watching etcd.
 *
 * A thread of its own watches the cluster prefix; on every change (and every
 * few seconds as a fallback) it reads the prefix once and publishes a new
 * topology: the leader's address (only if its member record says it runs as
 * primary) and the standbys that stream, with their lag and their region and
 * zone tags (where reads go first, locality.h). The event loop is
 * told through an eventfd and copies the topology under the lock. The proxy
 * still checks each server itself (in_hot_standby at login), so a stale or
 * wrong etcd view never sends a write to a standby.
 */
#ifndef PGHA_PROXY_ROUTE_H
#define PGHA_PROXY_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "dcs/etcd.h"
#include "cluster/switchover.h"

#define ROUTE_MAX_REPLICAS 32

struct route_target {
	char name[64];
	char host[256];
	int port;
	int64_t lag_bytes;     /* standbys; -1 unknown */
	char region[64];       /* the member's tags.region and tags.zone ("": none), for locality.h */
	char zone[64];
};

struct topology {
	uint64_t version;          /* bumps on every change */
	bool etcd_ok;
	bool has_leader;
	struct route_target leader;
	struct route_target replicas[ROUTE_MAX_REPLICAS];
	int nreplicas;
	/*
	 * The cluster's system identifier (the initialize key), pinned at first sight:
	 * servers must show it before they get any work. 0: not known yet.
	 */
	uint64_t sysid;
	bool paused;
	bool has_switchover;       /* a switchover record exists (and decodes) */
	struct switchover so;
};

struct route;

/* Start watching; fd (eventfd) becomes readable when a new topology is out. */
struct route *route_start(const struct etcd_opts *opts, const char *prefix, struct pgha_err *e);
int route_fd(const struct route *r);
/* Copy the current topology (and clear the eventfd). */
void route_get(struct route *r, struct topology *out);
/*
 * This proxy's record (<prefix>/<cluster>/proxies/<name>, under a lease the
 * routing thread keeps alive): set it; the thread writes it when it changed.
 * route_stop() revokes the lease, so the record goes with the proxy.
 */
void route_set_record(struct route *r, const struct proxy_record *rec);
void route_stop(struct route *r);

#endif
