/*
 * promoted_key.h — `<prefix>/<cluster>/promoted`: a standby cluster made primary
 * by `pgha ctl promote-cluster`. While the key holds a record that decodes, the
 * agents of a standby cluster ([standby_cluster] primary_hosts) act as a
 * cluster of its own: the standby leader promotes through the normal path.
 * A value that does not decode is ignored (with a warning): a careless write
 * never promotes. The key has no lease; deleting it makes the cluster a
 * standby cluster again (its primary is then stopped).
 *
 * {"at": <unix seconds>, "by": "ctl", "id": "<hex>"}: all three required, no
 * other field.
 */
#ifndef PGHA_CLUSTER_PROMOTED_KEY_H
#define PGHA_CLUSTER_PROMOTED_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "pg/pgconf.h"

struct promoted_rec {
	int64_t at;        /* unix seconds */
	char by[16];       /* who wrote it: "ctl" */
	char id[33];       /* a random id (hex), for logs */
};

int promoted_decode(const char *json, struct promoted_rec *out, struct pgha_err *e) PGHA_MUSTCHECK;
char *promoted_encode(const struct promoted_rec *r);

enum primary_probe {
	PROBE_NOT_PRIMARY,   /* down (refused, timed out, starting or stopping) or a standby */
	PROBE_PRIMARY,       /* answered over a replication connection: transaction_read_only = off */
	PROBE_UNKNOWN,       /* answered, but we cannot tell (authentication failed, ...): why says */
};

/*
 * Is host:port a running primary? A replication connection (what a standby
 * cluster would use) and `SHOW transaction_read_only`, connect_timeout 5 s.
 */
enum primary_probe promoted_probe_primary(const char *host, int port, const char *user, const char *password,
					  const struct pg_tls *tls, char *why, size_t whylen);

struct wal_position {
	bool read_only;        /* SHOW transaction_read_only: on (a standby) */
	char sysid[32];        /* IDENTIFY_SYSTEM: the system identifier, */
	uint32_t timeline;     /* the timeline, */
	uint64_t lsn;          /* and the WAL written (a primary) or flushed/replayed (a standby) */
};

/*
 * Where host:port's WAL ends: over a replication connection (the member's
 * replication user, connect_timeout 5 s), SHOW transaction_read_only and
 * IDENTIFY_SYSTEM. 0, or -1 with why. Used by `ctl switchover-cluster` to
 * check, not assume, that the standby cluster has all of the old primary's WAL.
 */
int promoted_probe_position(const char *host, int port, const char *user, const char *password,
			    const struct pg_tls *tls, struct wal_position *out, char *why, size_t whylen);

#endif
