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
#include "cluster/member.h"
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

/*
 * [proxy] primary_hosts: the members of the primary cluster this proxy's
 * cluster may be a standby cluster of, from the proxy's own file. While the
 * cluster's leader is a standby leader, read-write work goes to the one of
 * these the standby leader streams from (its record's source): etcd only
 * picks among them, it never adds a host. The login still checks the server
 * (in_hot_standby off, the system identifier).
 */
#define ROUTE_MAX_FORWARD 16
#define ROUTE_FORWARD_NAME "primary-cluster"   /* the leader target's name while forwarding */

struct route_forward {
	bool refuse;          /* [proxy] standby_writes = refuse: no writes go anywhere (client.c says why) */
	int n;
	struct {
		char host[256];
		int port;
	} hosts[ROUTE_MAX_FORWARD];
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
	/*
	 * The cluster is a standby cluster (its leader's record has standby_of and
	 * runs in recovery): the leader target, if any, is the primary cluster's
	 * member from [proxy] primary_hosts the standby leader streams from.
	 */
	bool standby_cluster;
	char standby_of[256];      /* ... the leader's standby_of (the primary cluster's hosts), for messages */
	bool paused;
	bool has_switchover;       /* a switchover record exists (and decodes) */
	struct switchover so;
};

struct route;

/*
 * Start watching; fd (eventfd) becomes readable when a new topology is out.
 * fwd ([proxy] primary_hosts, copied) may be NULL or empty.
 */
struct route *route_start(const struct etcd_opts *opts, const char *prefix, const struct route_forward *fwd,
			  struct pgha_err *e);
/*
 * A standby cluster's leader record: where its read-write work goes. true and
 * out set: the leader's source is one of fwd's hosts (same host text, same
 * port); false: none (not streaming, or a source that is not in the list).
 */
bool route_forward_pick(const struct route_forward *fwd, const struct member *leader, struct route_target *out);
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
