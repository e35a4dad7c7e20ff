/*
 * admin.h — the admin console, database pgha (admin.c).
 */
#ifndef PGHA_PROXY_ADMIN_H
#define PGHA_PROXY_ADMIN_H

#include <stdbool.h>

#include "proxy/objects.h"

/* Is user in [auth] admin_users? */
bool admin_allowed(const struct proxy *px, const char *user);
/* Queue what a client is told after its login to the console. */
void admin_login_done(struct client *c);
/*
 * Handle the admin client's complete messages. Returns -1 if it must be
 * closed; *resume set: a RESUME ran, the caller lets the waiting transactions go.
 */
int admin_input(struct client *c, bool *resume);

#endif
