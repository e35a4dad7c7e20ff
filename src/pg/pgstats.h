/*
 * pgstats.h — PostgreSQL's statistics as Prometheus text, from a connection
 * to the local server: per database (backends, commits, rollbacks, blocks
 * read and hit, deadlocks, conflicts, temp bytes, size), connections by state
 * against max_connections, the longest transaction and oldest idle-in-
 * transaction session, xid and multixact age, each standby as the primary
 * sees it (write/flush/replay lag in time, replay lag in bytes), replication
 * slots (active, WAL retained), a standby's replay lag in time, checkpoints
 * and the background writer, WAL volume, the archiver. docs/METRICS.md lists
 * the series. The caller bounds each query (statement_timeout) and runs this
 * off the HA loop (ha/pgmon.c).
 */
#ifndef PGHA_PG_PGSTATS_H
#define PGHA_PG_PGSTATS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "common/err.h"
#include "common/strbuf.h"

/*
 * Append the series to out, each with labels (key, value pairs, NULL-ended).
 * Returns how many queries failed (their series are missing; e names the
 * first failure); 0 when all answered. *dead: a query got no answer within
 * 3 s (a frozen server): close the connection, it may still be mid-query.
 */
int pgstats_collect(PGconn *c, const char *const *labels, struct strbuf *out, bool *dead, struct pgha_err *e);

/* The dashboard's charts: transactions ended so far (all databases) and client connections now. -1: failed. */
int pgstats_totals(PGconn *c, double *xacts, double *conns, bool *dead);

#endif
