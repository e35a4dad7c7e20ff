/*
 * ctl.h — `pgha ctl`: the operator's CLI. Reads (and later changes) the
 * cluster state in etcd.
 */
#ifndef PGHA_CLI_CTL_H
#define PGHA_CLI_CTL_H

#include <stdio.h>

#include "cluster/member.h"

int ctl_main(int argc, char **argv);

/* Print the member table of `ctl list` (also used by `pgha up`). */
void ctl_print_table(FILE *out, const struct cluster_view *v, const char *cluster);

#endif
