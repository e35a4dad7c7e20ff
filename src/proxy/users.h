/*
 * users.h — the users file (users.c): lines of "user" "secret", PgBouncer's
 * userlist.txt format, read at start and at each reload.
 */
#ifndef PGHA_PROXY_USERS_H
#define PGHA_PROXY_USERS_H

#include <stddef.h>

#include "common/err.h"
#include "proxy/objects.h"

/* Read [auth] auth_file into px->users (appended to what is there). */
int users_load(struct proxy *px, struct pgha_err *e) PGHA_MUSTCHECK;
void users_free(struct proxy *px);
void users_free_list(struct user_entry *users, size_t n);
/* The users file's entry for name; NULL if none. */
const struct user_entry *users_find(const struct proxy *px, const char *name);

#endif
