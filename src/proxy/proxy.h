/*
 * proxy.h — `pgha proxy`: the clients' single endpoint. Its objects are in
 * objects.h; each module's header says what it owns.
 */
#ifndef PGHA_PROXY_PROXY_H
#define PGHA_PROXY_PROXY_H

int proxy_main(int argc, char **argv);

#endif
