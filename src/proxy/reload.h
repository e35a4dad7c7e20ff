/*
 * reload.h — what SIGHUP and the admin console's RELOAD re-read (reload.c).
 */
#ifndef PGHA_PROXY_RELOAD_H
#define PGHA_PROXY_RELOAD_H

#include "common/err.h"
#include "proxy/objects.h"

/* The users file again; on an error the users from before stay. */
int reload_users(struct proxy *px, struct pgha_err *e);
/* The config file (reloadable options), TLS files and the users file. */
int proxy_reload(struct proxy *px, struct pgha_err *e);

#endif
