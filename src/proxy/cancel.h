/*
 * cancel.h — forwarding a client's CancelRequest to the backend of the
 * client it names (cancel.c).
 */
#ifndef PGHA_PROXY_CANCEL_H
#define PGHA_PROXY_CANCEL_H

#include <stdint.h>

#include "proxy/objects.h"

/* The client whose cancel key is (pid, key), if it has a server: its backend is sent a cancel. */
/* A cancel for what s's backend runs now, sent from a thread of its own. */
void cancel_backend(const struct server *s);

void cancel_forward(struct proxy *px, int32_t pid, const uint8_t key[4], const char *from);

#endif
