/*
 * err.h — error values carried up the stack.
 *
 * Fallible functions return 0 on success and a negative value on failure, and
 * fill a caller-owned struct pgha_err with a message that says what failed and
 * with what value. The caller decides whether to log it, wrap it or give up.
 */
#ifndef PGHA_ERR_H
#define PGHA_ERR_H

#include <stddef.h>

#define PGHA_MUSTCHECK __attribute__((warn_unused_result))
#define PGHA_PRINTF(a, b) __attribute__((format(printf, a, b)))

struct pgha_err {
	char msg[1024];
};

/* Set the message (printf style). Returns -1 so callers can `return err_set(...)`. */
int err_set(struct pgha_err *e, const char *fmt, ...) PGHA_PRINTF(2, 3);

/* Prefix the existing message: "what: <old message>". Returns -1. */
int err_wrap(struct pgha_err *e, const char *fmt, ...) PGHA_PRINTF(2, 3);

void err_clear(struct pgha_err *e);

#endif
