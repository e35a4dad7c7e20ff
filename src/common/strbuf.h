/*
 * strbuf.h — a growable, always NUL-terminated byte buffer.
 * The buffer owns its memory; sb_free() releases it. Allocation failure aborts
 * (pgha cannot do anything useful without memory).
 */
#ifndef PGHA_STRBUF_H
#define PGHA_STRBUF_H

#include <stddef.h>
#include "common/err.h"

struct strbuf {
	char *data;
	size_t len;
	size_t cap;
};

#define STRBUF_INIT {NULL, 0, 0}

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_reserve(struct strbuf *sb, size_t extra);
void sb_append(struct strbuf *sb, const void *data, size_t len);
void sb_puts(struct strbuf *sb, const char *s);
void sb_printf(struct strbuf *sb, const char *fmt, ...) PGHA_PRINTF(2, 3);
/* Detach the buffer: the caller owns and frees the returned string. */
char *sb_steal(struct strbuf *sb);
/* Always returns a valid C string (empty if nothing was appended). */
const char *sb_str(const struct strbuf *sb);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PGHA_PRINTF(1, 2);

#endif
