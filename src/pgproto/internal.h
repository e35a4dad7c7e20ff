/*
 * internal.h — bounds-checked big-endian reader shared by the pgproto parsers.
 * Not part of the module's API.
 *
 * A struct rd walks [p, p + len); every read checks what is left first and on
 * failure sets "<what> message: <field>: <problem>", zeroes its output and
 * returns -1. Nothing is ever read at or past p + len.
 */
#ifndef PGHA_PGPROTO_INTERNAL_H
#define PGHA_PGPROTO_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "pgproto/pgproto.h"

struct rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
	const char *what;       /* message name for errors, e.g. "Bind" */
	struct pgha_err *err;
};

static inline void rd_init(struct rd *r, const uint8_t *p, size_t len, const char *what,
			   struct pgha_err *err)
{
	static const uint8_t none[1];
	r->p = p != NULL ? p : none; /* no arithmetic on a null pointer */
	r->len = p != NULL ? len : 0;
	r->pos = 0;
	r->what = what;
	r->err = err;
}

static inline size_t rd_left(const struct rd *r)
{
	return r->len - r->pos;
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline int rd_need(struct rd *r, size_t n, const char *field)
{
	if (rd_left(r) < n)
		return err_set(r->err, "%s message: %s: truncated (needs %zu bytes, %zu left)",
			       r->what, field, n, rd_left(r));
	return 0;
}

static inline int rd_u8(struct rd *r, uint8_t *v, const char *field)
{
	*v = 0;
	if (rd_need(r, 1, field) < 0)
		return -1;
	*v = r->p[r->pos++];
	return 0;
}

static inline int rd_i16(struct rd *r, int16_t *v, const char *field)
{
	*v = 0;
	if (rd_need(r, 2, field) < 0)
		return -1;
	*v = (int16_t)be16(r->p + r->pos);
	r->pos += 2;
	return 0;
}

static inline int rd_i32(struct rd *r, int32_t *v, const char *field)
{
	*v = 0;
	if (rd_need(r, 4, field) < 0)
		return -1;
	*v = (int32_t)be32(r->p + r->pos);
	r->pos += 4;
	return 0;
}

/*
 * An Int16 count, read unsigned (0..65535) as PostgreSQL reads it
 * (pq_getmsgint(msg, 2)): a Parse or Bind may carry up to 65,535 parameters.
 */
static inline int rd_count16(struct rd *r, size_t *n, const char *field)
{
	int16_t v;
	*n = 0;
	if (rd_i16(r, &v, field) < 0)
		return -1;
	*n = (size_t)(uint16_t)v;
	return 0;
}

/* A NUL-terminated string; *s points into the buffer. */
static inline int rd_str(struct rd *r, const char **s, const char *field)
{
	size_t left = rd_left(r);
	const uint8_t *start = r->p + r->pos;
	const uint8_t *nul = left ? memchr(start, '\0', left) : NULL;
	*s = NULL;
	if (nul == NULL)
		return err_set(r->err, "%s message: %s: string not NUL-terminated "
			       "(%zu bytes left)", r->what, field, left);
	*s = (const char *)start;
	r->pos += (size_t)(nul - start) + 1;
	return 0;
}

static inline int rd_bytes(struct rd *r, size_t n, const uint8_t **out, const char *field)
{
	*out = NULL;
	if (rd_need(r, n, field) < 0)
		return -1;
	*out = r->p + r->pos;
	r->pos += n;
	return 0;
}

/* The body must be used up exactly. */
static inline int rd_end(struct rd *r)
{
	if (rd_left(r) != 0)
		return err_set(r->err, "%s message: %zu trailing bytes after the last field",
			       r->what, rd_left(r));
	return 0;
}

/* Type check shared by the parsers. */
static inline int rd_type(const struct pgp_msg *m, char want, const char *what,
			  struct pgha_err *err)
{
	if (m->type != want)
		return err_set(err, "%s message: type byte is 0x%02x, expected '%c'", what,
			       (unsigned)(unsigned char)m->type, want);
	if (m->body == NULL && m->body_len != 0)
		return err_set(err, "%s message: no body", what);
	return 0;
}

#endif
