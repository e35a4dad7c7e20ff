/*
 * up.h — `pgha up`: a whole local cluster (one etcd, N agents) in one command.
 */
#ifndef PGHA_UP_UP_H
#define PGHA_UP_UP_H

int up_main(int argc, char **argv);

#endif
