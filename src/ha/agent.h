/*
 * agent.h — `pgha agent`: the process beside each PostgreSQL.
 *
 * Threads: the HA loop (main thread: observe → decide → act → publish), the
 * API server (src/api, reads a snapshot the loop publishes), and the etcd
 * watch (src/dcs, wakes the loop when anything under the cluster prefix
 * changes). The loop is the only writer of agent state.
 */
#ifndef PGHA_HA_AGENT_H
#define PGHA_HA_AGENT_H

/* Entry point of `pgha agent`; returns the process exit code. */
int agent_main(int argc, char **argv);

#endif
