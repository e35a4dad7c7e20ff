/*
 * proxy.h — `pgha proxy`: the clients' single endpoint. See proxy_int.h for
 * how it is built.
 */
#ifndef PGHA_PROXY_PROXY_H
#define PGHA_PROXY_PROXY_H

int proxy_main(int argc, char **argv);

#endif
