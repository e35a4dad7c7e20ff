/*
 * ctl_int.h — what the ctl commands share: where the cluster is, and how to
 * read it.
 */
#ifndef PGHA_CLI_CTL_INT_H
#define PGHA_CLI_CTL_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "common/err.h"
#include "dcs/etcd.h"
#include "dcs/member.h"

struct ctl_target {
	char *endpoints;
	char *cluster;
	char *prefix;
	char *user;
	char *password;
	int timeout_ms;
};

char *ctl_cluster_prefix(const struct ctl_target *t);
struct etcd_client *ctl_etcd(const struct ctl_target *t, struct pgha_err *e);
/* One range read of the cluster; *raw (if not NULL) receives the kvs (caller frees). */
int ctl_read_view(const struct ctl_target *t, struct cluster_view *v, struct etcd_kvs *raw,
		  struct pgha_err *e);

/* ctl_ops.c */
int ctl_cmd_pause(const struct ctl_target *t, bool pause, int argc, char **argv);
int ctl_cmd_failover(const struct ctl_target *t, int argc, char **argv);
/* "Maintenance mode: on" / pending failover lines for `ctl list`. */
void ctl_print_notes(FILE *out, const struct etcd_kvs *raw, const char *prefix);

#endif
