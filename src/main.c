/*
 * main.c — one binary, several modes: agent, ctl, up (and proxy, later).
 */
#include <stdio.h>
#include <string.h>

#include "backup/restore.h"
#include "cli/ctl.h"
#include "ha/agent.h"
#include "proxy/proxy.h"
#include "up/up.h"

#ifndef PGHA_VERSION
#define PGHA_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
	fprintf(out,
		"pgha %s — PostgreSQL high availability in one program\n"
		"\n"
		"Usage: pgha <mode> [options]\n"
		"\n"
		"Modes:\n"
		"  agent -c FILE     run beside one PostgreSQL: bootstrap or clone it, hold\n"
		"                    or follow the leader key in etcd, serve the health API\n"
		"  proxy -c FILE     the clients' endpoint: pooling, writes to the leader,\n"
		"                    reads to standbys, work held during a failover\n"
		"  ctl <command>     operate a cluster: list, pause, resume, failover\n"
		"  up [--dir DIR]    start a whole local cluster (etcd + N agents) on this machine\n"
		"  version           print the version\n"
		"\n"
		"`pgha <mode> --help` describes each mode and its options.\n",
		PGHA_VERSION);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *mode = argv[1];
	if (strcmp(mode, "agent") == 0)
		return agent_main(argc - 1, argv + 1);
	if (strcmp(mode, "proxy") == 0)
		return proxy_main(argc - 1, argv + 1);
	if (strcmp(mode, "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);
	/* The agent's child that bootstraps a data directory from a backup (backup/restore.h). */
	if (strcmp(mode, "restore-job") == 0)
		return restore_job_main(argc - 1, argv + 1);
	if (strcmp(mode, "up") == 0)
		return up_main(argc - 1, argv + 1);
	if (strcmp(mode, "version") == 0 || strcmp(mode, "--version") == 0) {
		printf("pgha %s\n", PGHA_VERSION);
		return 0;
	}
	if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0 || strcmp(mode, "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "pgha: unknown mode \"%s\"\n\n", mode);
	usage(stderr);
	return 2;
}
