/*
 * test_pgproto.c — the PostgreSQL wire protocol layer (src/pgproto): framing
 * of partial/oversized/undersized buffers, startup packets good and bad,
 * exact bytes of a few messages computed by hand, builder -> parser round
 * trips for every message, every truncation of every body, trailing garbage,
 * and bad field values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "pgproto/pgproto.h"

/* ------------------------------------------------------------- helpers */

/* sb holds exactly one typed message: frame it. */
static struct pgp_msg frame_one(const struct strbuf *sb)
{
	struct pgp_msg m;
	struct pgha_err err = {{0}};
	int rc = pgp_frame(sb->data, sb->len, 0, &m, &err);
	if (rc != PGP_OK)
		fail_msg("pgp_frame: rc %d: %s", rc, err.msg);
	assert_int_equal(m.total_len, sb->len);
	assert_int_equal(m.body_len, sb->len - 5);
	return m;
}

static void assert_bytes(const struct strbuf *sb, const uint8_t *want, size_t n)
{
	assert_int_equal(sb->len, n);
	assert_memory_equal(sb->data, want, n);
}

static void assert_err_has(const struct pgha_err *err, const char *needle)
{
	if (strstr(err->msg, needle) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
}

/* A message of the given type whose body is a private exact-size copy, so
 * that AddressSanitizer catches any read past it. Free m->body after use. */
static struct pgp_msg copy_msg(char type, const uint8_t *body, size_t len)
{
	struct pgp_msg m = {type, NULL, len, len + 5};
	uint8_t *b = malloc(len ? len : 1);
	assert_non_null(b);
	if (len)
		memcpy(b, body, len);
	m.body = b;
	return m;
}

typedef int (*parse_fn)(const struct pgp_msg *m, struct pgha_err *err);

/*
 * Every truncation of m's body must fail (when strict_end), and so must the
 * body with one byte of garbage appended (when strict_tail); otherwise they
 * must only not crash.
 */
static void check_bounds(const struct pgp_msg *m, parse_fn parse, bool strict_end,
			 bool strict_tail)
{
	struct pgha_err err = {{0}};
	struct pgp_msg full = copy_msg(m->type, m->body, m->body_len);
	if (parse(&full, &err) != 0)
		fail_msg("valid '%c' body rejected: %s", m->type, err.msg);
	free((void *)full.body);
	for (size_t cut = 0; cut < m->body_len; cut++) {
		struct pgp_msg t = copy_msg(m->type, m->body, cut);
		int rc = parse(&t, &err);
		if (strict_end && rc == 0)
			fail_msg("'%c' body truncated to %zu of %zu bytes accepted", m->type,
				 cut, m->body_len);
		if (rc != 0)
			assert_true(err.msg[0] != '\0');
		free((void *)t.body);
	}
	uint8_t *longer = malloc(m->body_len + 1);
	assert_non_null(longer);
	memcpy(longer, m->body, m->body_len);
	for (int g = 0; g < 3; g++) {
		static const uint8_t garbage[3] = {0x00, 'x', 0xff};
		longer[m->body_len] = garbage[g];
		struct pgp_msg t = copy_msg(m->type, longer, m->body_len + 1);
		int rc = parse(&t, &err);
		if (strict_tail && rc == 0)
			fail_msg("'%c' body with trailing byte 0x%02x accepted", m->type,
				 garbage[g]);
		if (strict_tail)
			assert_true(strstr(err.msg, "trailing") || strstr(err.msg, "message"));
		free((void *)t.body);
	}
	free(longer);
}

/* ---------------------------------------------------------------- framing */

static void test_frame_prefixes(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	pgp_build_query(&sb, "SELECT 1");
	size_t first = sb.len;
	pgp_build_sync(&sb);
	struct pgha_err err = {{0}};
	struct pgp_msg m;
	for (size_t n = 0; n < first; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, sb.data, n);
		assert_int_equal(pgp_frame(copy, n, 0, &m, &err), PGP_NEED_MORE);
		free(copy);
	}
	for (size_t n = first; n <= sb.len; n++) {
		assert_int_equal(pgp_frame(sb.data, n, 0, &m, &err), PGP_OK);
		assert_int_equal(m.type, 'Q');
		assert_int_equal(m.total_len, first);
		assert_int_equal(m.body_len, 9);
		assert_ptr_equal(m.body, (const uint8_t *)sb.data + 5);
		assert_memory_equal(m.body, "SELECT 1", 9);
	}
	/* the second message follows */
	assert_int_equal(pgp_frame(sb.data + first, sb.len - first, 0, &m, &err), PGP_OK);
	assert_int_equal(m.type, 'S');
	assert_int_equal(m.body_len, 0);
	assert_int_equal(m.total_len, 5);
	for (size_t n = 0; n < 5; n++)
		assert_int_equal(pgp_frame(sb.data + first, n, 0, &m, &err), PGP_NEED_MORE);
	sb_free(&sb);
}

static void test_frame_lengths(void **state)
{
	struct pgha_err err = {{0}};
	struct pgp_msg m;
	uint8_t b[5] = {'Q', 0, 0, 0, 3};
	assert_int_equal(pgp_frame(b, 5, 0, &m, &err), PGP_ERROR);
	assert_err_has(&err, "less than 4");
	b[4] = 0;
	assert_int_equal(pgp_frame(b, 5, 0, &m, &err), PGP_ERROR);
	b[4] = 4; /* empty body */
	assert_int_equal(pgp_frame(b, 5, 0, &m, &err), PGP_OK);
	assert_int_equal(m.body_len, 0);
	/* default limit 1 MiB: exactly 1 MiB waits, one more byte fails at once */
	b[1] = 0x00; b[2] = 0x10; b[3] = 0x00; b[4] = 0x00;
	assert_int_equal(pgp_frame(b, 5, 0, &m, &err), PGP_NEED_MORE);
	b[4] = 0x01;
	assert_int_equal(pgp_frame(b, 5, 0, &m, &err), PGP_ERROR);
	assert_err_has(&err, "exceeds");
	b[1] = b[2] = b[3] = b[4] = 0xff; /* 4 GiB - 1, negative as int32 */
	assert_int_equal(pgp_frame(b, 5, 0, &m, &err), PGP_ERROR);
	b[1] = 0x80; b[2] = b[3] = b[4] = 0;
	assert_int_equal(pgp_frame(b, 5, 0, &m, &err), PGP_ERROR);
	/* caller-given limit */
	b[1] = b[2] = b[3] = 0; b[4] = 100;
	assert_int_equal(pgp_frame(b, 5, 100, &m, &err), PGP_NEED_MORE);
	assert_int_equal(pgp_frame(b, 5, 99, &m, &err), PGP_ERROR);
	assert_err_has(&err, "99");
}

/* ------------------------------------------------------ startup packets */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* A startup packet with the given code and raw parameter bytes; the length
 * field is the real length plus adjust. */
static void raw_startup(struct strbuf *sb, uint32_t code, const void *params, size_t n,
			int adjust)
{
	uint8_t h[8];
	put32(h, (uint32_t)((int)(8 + n) + adjust));
	put32(h + 4, code);
	sb_reset(sb);
	sb_append(sb, h, 8);
	if (n > 0)
		sb_append(sb, params, n);
}

static int decode(const struct strbuf *sb, struct pgp_startup *s, struct pgha_err *err)
{
	/* exact-size copy so that ASan sees reads past the packet; kept until
	 * the next call because *s points into it */
	static uint8_t *copy;
	free(copy);
	copy = malloc(sb->len ? sb->len : 1);
	memcpy(copy, sb->data, sb->len);
	return pgp_decode_startup(copy, sb->len, s, err);
}

static void test_startup_ssl_gss(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgp_startup s;
	struct pgha_err err = {{0}};
	pgp_build_ssl_request(&sb);
	static const uint8_t ssl[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	assert_bytes(&sb, ssl, 8);
	assert_int_equal(pgp_decode_startup(sb.data, sb.len, &s, &err), PGP_OK);
	assert_int_equal(s.kind, PGP_SSL_REQUEST);
	assert_int_equal(s.total_len, 8);
	for (size_t n = 0; n < 8; n++)
		assert_int_equal(pgp_decode_startup(sb.data, n, &s, &err), PGP_NEED_MORE);
	raw_startup(&sb, PGP_CODE_GSSENC, NULL, 0, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_OK);
	assert_int_equal(s.kind, PGP_GSSENC_REQUEST);
	raw_startup(&sb, PGP_CODE_SSL, "\0\0\0\0", 4, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	assert_err_has(&err, "SSLRequest");
	raw_startup(&sb, PGP_CODE_SSL + 10, NULL, 0, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	assert_err_has(&err, "unknown request code");
	sb_free(&sb);
}

static void test_startup_cancel(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgp_startup s;
	struct pgha_err err = {{0}};
	static const uint8_t key[4] = {1, 2, 3, 4};
	pgp_build_cancel_request(&sb, 1234, key, 4);
	static const uint8_t want[16] = {0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e,
					 0, 0, 0x04, 0xd2, 1, 2, 3, 4};
	assert_bytes(&sb, want, 16);
	assert_int_equal(decode(&sb, &s, &err), PGP_OK);
	assert_int_equal(s.kind, PGP_CANCEL_REQUEST);
	assert_int_equal(s.cancel_pid, 1234);
	assert_int_equal(s.cancel_key_len, 4);
	/* protocol 3.2 keys are longer */
	uint8_t long_key[32];
	for (int i = 0; i < 32; i++)
		long_key[i] = (uint8_t)i;
	sb_reset(&sb);
	pgp_build_cancel_request(&sb, -7, long_key, 32);
	assert_int_equal(decode(&sb, &s, &err), PGP_OK);
	assert_int_equal(s.cancel_pid, -7);
	assert_int_equal(s.cancel_key_len, 32);
	assert_memory_equal(s.cancel_key, long_key, 32);
	/* no key, a 3-byte key, a 257-byte key */
	raw_startup(&sb, PGP_CODE_CANCEL, "\0\0\0\1", 4, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	assert_err_has(&err, "CancelRequest");
	raw_startup(&sb, PGP_CODE_CANCEL, "\0\0\0\1abc", 7, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	uint8_t big[4 + 257] = {0};
	raw_startup(&sb, PGP_CODE_CANCEL, big, sizeof(big), 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	sb_free(&sb);
}

static void test_startup_v30_params(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgp_startup s;
	struct pgha_err err = {{0}};
	const struct pgp_param params[] = {
		{"user", "alice"}, {"TimeZone", "UTC"}, {"database", "shop"},
		{"application_name", "psql"}, {"client_encoding", "UTF8"},
		{"options", "-c work_mem=64MB"}, {"replication", "database"},
		{"DateStyle", "ISO, MDY"},
	};
	pgp_build_startup(&sb, 0, params, 8);
	assert_int_equal(decode(&sb, &s, &err), PGP_OK);
	assert_int_equal(s.kind, PGP_STARTUP_MESSAGE);
	assert_int_equal(s.total_len, sb.len);
	assert_int_equal(s.proto_minor, 0);
	assert_int_equal(pgp_decode_startup(sb.data, sb.len, &s, &err), PGP_OK);
	assert_string_equal(s.user, "alice");
	assert_string_equal(s.database, "shop");
	assert_string_equal(s.application_name, "psql");
	assert_string_equal(s.options, "-c work_mem=64MB");
	assert_string_equal(s.replication, "database");
	assert_int_equal(s.n_params, 3);
	struct pgp_param p;
	assert_true(pgp_startup_next_param(&s.params, &p));
	assert_string_equal(p.name, "TimeZone");
	assert_string_equal(p.value, "UTC");
	assert_true(pgp_startup_next_param(&s.params, &p));
	assert_string_equal(p.name, "client_encoding");
	assert_true(pgp_startup_next_param(&s.params, &p));
	assert_string_equal(p.name, "DateStyle");
	assert_string_equal(p.value, "ISO, MDY");
	assert_false(pgp_startup_next_param(&s.params, &p));
	assert_false(pgp_startup_next_param(&s.params, &p));
	/* every prefix waits */
	for (size_t n = 0; n < sb.len; n++)
		assert_int_equal(pgp_decode_startup(sb.data, n, &s, &err), PGP_NEED_MORE);
	/* hand-checked bytes of a minimal packet */
	sb_reset(&sb);
	const struct pgp_param u = {"user", "u"};
	pgp_build_startup(&sb, 0, &u, 1);
	static const uint8_t want[] = {0, 0, 0, 16, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'u', 0, 0};
	assert_bytes(&sb, want, sizeof(want));
	sb_free(&sb);
}

static void test_startup_defaults_and_minor(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgp_startup s;
	struct pgha_err err = {{0}};
	const struct pgp_param p1[] = {{"user", "bob"}};
	pgp_build_startup(&sb, 0, p1, 1);
	assert_int_equal(decode(&sb, &s, &err), PGP_OK);
	assert_string_equal(s.database, "bob");
	assert_null(s.application_name);
	assert_null(s.options);
	assert_null(s.replication);
	assert_int_equal(s.n_params, 0);
	const struct pgp_param p2[] = {{"database", ""}, {"user", "bob"},
				       {"_pq_.test_option", "x"}};
	sb_reset(&sb);
	pgp_build_startup(&sb, 2, p2, 3);
	assert_int_equal(pgp_decode_startup(sb.data, sb.len, &s, &err), PGP_OK);
	assert_int_equal(s.proto_minor, 2);
	assert_string_equal(s.database, "bob");
	assert_int_equal(s.n_params, 1);
	struct pgp_param p;
	assert_true(pgp_startup_next_param(&s.params, &p));
	assert_true(pgp_is_protocol_option(p.name));
	assert_false(pgp_is_protocol_option("user"));
	/* 3.65535 is still 3.x; 2.0 and 4.0 are not */
	raw_startup(&sb, PGP_PROTO(3, 0xffff), "user\0x\0", 8, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_OK);
	assert_int_equal(s.proto_minor, 0xffff);
	raw_startup(&sb, PGP_PROTO(2, 0), "user\0x\0", 8, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	assert_err_has(&err, "protocol version 2.0");
	raw_startup(&sb, PGP_PROTO(4, 0), "user\0x\0", 8, 0);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	sb_free(&sb);
}

static void expect_bad_startup(const void *params, size_t n, int adjust, const char *needle)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgp_startup s;
	struct pgha_err err = {{0}};
	raw_startup(&sb, PGP_PROTO(3, 0), params, n, adjust);
	if (adjust > 0) /* a longer length field: the bytes are there, as garbage */
		sb_append(&sb, "x\0x\0x\0x\0x\0x\0x\0x\0x\0x\0x\0x\0", (size_t)adjust);
	int rc = decode(&sb, &s, &err);
	if (rc != PGP_ERROR)
		fail_msg("bad startup packet (%s) gave %d", needle, rc);
	assert_err_has(&err, needle);
	assert_null(s.user);
	sb_free(&sb);
}

static void test_startup_bad(void **state)
{
#define P(lit) lit, sizeof(lit) - 1
	expect_bad_startup(P("database\0d\0\0"), 0, "user");
	expect_bad_startup(P("user\0\0\0"), 0, "empty");
	expect_bad_startup(P(""), 0, "terminator");
	expect_bad_startup(P("user\0bob\0"), 0, "missing terminator");
	expect_bad_startup(P("user\0bob\0database\0"), 0, "no value");
	expect_bad_startup(P("user\0bob\0database"), 0, "not NUL-terminated");
	expect_bad_startup(P("user\0bob\0user\0eve\0\0"), 0, "duplicate parameter \"user\"");
	expect_bad_startup(P("user\0bob\0database\0a\0database\0b\0\0"), 0, "duplicate");
	expect_bad_startup(P("user\0bob\0\0extra\0"), 0, "after the terminator");
	/* length field shorter than the strings: the packet ends mid-string */
	expect_bad_startup(P("user\0bob\0\0"), -3, "not NUL-terminated");
	/* length field longer: the extra bytes are not parameters */
	expect_bad_startup(P("user\0bob\0\0"), 4, "after the terminator");
#undef P
	struct strbuf sb = STRBUF_INIT;
	struct pgp_startup s;
	struct pgha_err err = {{0}};
	/* length out of 8..10000: rejected from the first 4 bytes */
	uint8_t h[4];
	put32(h, 7);
	assert_int_equal(pgp_decode_startup(h, 4, &s, &err), PGP_ERROR);
	assert_err_has(&err, "length 7");
	put32(h, 10001);
	assert_int_equal(pgp_decode_startup(h, 4, &s, &err), PGP_ERROR);
	assert_err_has(&err, "10001");
	/* a whole 10001-byte packet, and a valid 10000-byte one */
	char *big = malloc(10000);
	memcpy(big, "user\0bob\0opt\0", 13);
	memset(big + 13, 'x', 10000 - 13);
	big[10000 - 8 - 2] = '\0';
	big[10000 - 8 - 1] = '\0';
	raw_startup(&sb, PGP_PROTO(3, 0), big, 10000 - 8, 0);
	assert_int_equal(sb.len, 10000);
	assert_int_equal(decode(&sb, &s, &err), PGP_OK);
	assert_int_equal(s.n_params, 1);
	raw_startup(&sb, PGP_PROTO(3, 0), big, 10000 - 8, 0);
	sb_append(&sb, "", 1);
	put32((uint8_t *)sb.data, 10001);
	assert_int_equal(decode(&sb, &s, &err), PGP_ERROR);
	free(big);
	sb_free(&sb);
}

/* ----------------------------------------------------------- exact bytes */

static void test_exact_bytes(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	pgp_build_ready_for_query(&sb, 'I');
	static const uint8_t rfq[] = {0x5a, 0, 0, 0, 5, 0x49};
	assert_bytes(&sb, rfq, sizeof(rfq));

	sb_reset(&sb);
	pgp_build_auth_ok(&sb);
	static const uint8_t ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
	assert_bytes(&sb, ok, sizeof(ok));

	sb_reset(&sb);
	static const uint8_t salt[4] = {0xde, 0xad, 0xbe, 0xef};
	pgp_build_auth_md5(&sb, salt);
	static const uint8_t md5[] = {'R', 0, 0, 0, 12, 0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef};
	assert_bytes(&sb, md5, sizeof(md5));

	sb_reset(&sb);
	pgp_build_query(&sb, "SELECT 1");
	static const uint8_t q[] = {'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0};
	assert_bytes(&sb, q, sizeof(q));

	sb_reset(&sb);
	pgp_build_sync(&sb);
	pgp_build_terminate(&sb);
	pgp_build_flush(&sb);
	pgp_build_empty_query_response(&sb);
	static const uint8_t empties[] = {'S', 0, 0, 0, 4, 'X', 0, 0, 0, 4,
					  'H', 0, 0, 0, 4, 'I', 0, 0, 0, 4};
	assert_bytes(&sb, empties, sizeof(empties));

	sb_reset(&sb);
	const char *vals[2] = {"1", NULL};
	pgp_build_data_row(&sb, vals, 2);
	static const uint8_t dr[] = {'D', 0, 0, 0, 15, 0, 2, 0, 0, 0, 1, '1',
				     0xff, 0xff, 0xff, 0xff};
	assert_bytes(&sb, dr, sizeof(dr));

	sb_reset(&sb);
	const char *names[1] = {"a"};
	pgp_build_row_description(&sb, names, 1);
	static const uint8_t rd[] = {'T', 0, 0, 0, 26, 0, 1, 'a', 0,
				     0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff,
				     0xff, 0xff, 0xff, 0xff, 0, 0};
	assert_bytes(&sb, rd, sizeof(rd));

	sb_reset(&sb);
	pgp_build_parameter_status(&sb, "a", "b");
	static const uint8_t ps[] = {'S', 0, 0, 0, 8, 'a', 0, 'b', 0};
	assert_bytes(&sb, ps, sizeof(ps));

	sb_reset(&sb);
	pgp_build_error(&sb, "ERROR", "42601", "x", NULL, NULL);
	static const uint8_t er[] = {'E', 0, 0, 0, 29, 'S', 'E', 'R', 'R', 'O', 'R', 0,
				     'V', 'E', 'R', 'R', 'O', 'R', 0, 'C', '4', '2', '6',
				     '0', '1', 0, 'M', 'x', 0, 0};
	assert_bytes(&sb, er, sizeof(er));

	sb_reset(&sb);
	static const uint8_t key[4] = {0, 0, 0, 9};
	pgp_build_backend_key_data(&sb, 42, key, 4);
	static const uint8_t bk[] = {'K', 0, 0, 0, 12, 0, 0, 0, 42, 0, 0, 0, 9};
	assert_bytes(&sb, bk, sizeof(bk));
	sb_free(&sb);
}

/* ------------------------------------------------- parser wrappers */

static int p_query(const struct pgp_msg *m, struct pgha_err *e)
{
	const char *s;
	return pgp_parse_query(m, &s, e);
}
static int p_parse(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_parse_msg o;
	return pgp_parse_parse(m, &o, e);
}
static int p_bind(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_bind o;
	return pgp_parse_bind(m, &o, e);
}
static int p_describe(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_target o;
	return pgp_parse_describe(m, &o, e);
}
static int p_close(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_target o;
	return pgp_parse_close(m, &o, e);
}
static int p_execute(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_execute o;
	return pgp_parse_execute(m, &o, e);
}
static int p_password(const struct pgp_msg *m, struct pgha_err *e)
{
	const char *s;
	return pgp_parse_password(m, &s, e);
}
static int p_sasl_initial(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_sasl_initial o;
	return pgp_parse_sasl_initial_response(m, &o, e);
}
static int p_sasl_response(const struct pgp_msg *m, struct pgha_err *e)
{
	const uint8_t *d;
	size_t n;
	return pgp_parse_sasl_response(m, &d, &n, e);
}
static int p_empty(const struct pgp_msg *m, struct pgha_err *e)
{
	return pgp_parse_empty(m, m->type, e);
}
static int p_auth(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_auth o;
	return pgp_parse_auth(m, &o, e);
}
static int p_param_status(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_param o;
	return pgp_parse_parameter_status(m, &o, e);
}
static int p_key(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_backend_key o;
	return pgp_parse_backend_key_data(m, &o, e);
}
static int p_rfq(const struct pgp_msg *m, struct pgha_err *e)
{
	char c;
	return pgp_parse_ready_for_query(m, &c, e);
}
static int p_notice(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_notice o;
	return pgp_parse_notice(m, &o, e);
}
static int p_complete(const struct pgp_msg *m, struct pgha_err *e)
{
	const char *s;
	return pgp_parse_command_complete(m, &s, e);
}
static int p_param_desc(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_array o;
	return pgp_parse_parameter_description(m, &o, e);
}
static int p_row_desc(const struct pgp_msg *m, struct pgha_err *e)
{
	size_t n;
	struct pgp_iter it;
	return pgp_parse_row_description(m, &n, &it, e);
}
static int p_data_row(const struct pgp_msg *m, struct pgha_err *e)
{
	size_t n;
	struct pgp_iter it;
	return pgp_parse_data_row(m, &n, &it, e);
}
static int p_negotiate(const struct pgp_msg *m, struct pgha_err *e)
{
	struct pgp_negotiate o;
	return pgp_parse_negotiate_protocol_version(m, &o, e);
}

#define STRICT true, true

/* ------------------------------------------ round trips: client messages */

static void test_rt_query(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	pgp_build_query(&sb, "SELECT $1::int");
	struct pgp_msg m = frame_one(&sb);
	const char *sql;
	assert_int_equal(pgp_parse_query(&m, &sql, &err), 0);
	assert_string_equal(sql, "SELECT $1::int");
	check_bounds(&m, p_query, STRICT);
	sb_reset(&sb);
	pgp_build_query(&sb, "");
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_query(&m, &sql, &err), 0);
	assert_string_equal(sql, "");
	sb_free(&sb);
}

static void test_rt_parse(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	const uint32_t oids[3] = {23, 25, 0xfffffffe};
	pgp_build_parse(&sb, "s1", "SELECT $1, $2, $3", oids, 3);
	struct pgp_msg m = frame_one(&sb);
	struct pgp_parse_msg p;
	assert_int_equal(pgp_parse_parse(&m, &p, &err), 0);
	assert_string_equal(p.stmt, "s1");
	assert_string_equal(p.query, "SELECT $1, $2, $3");
	assert_int_equal(p.param_types.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(pgp_array_u32(&p.param_types, i), oids[i]);
	check_bounds(&m, p_parse, STRICT);
	sb_reset(&sb);
	pgp_build_parse(&sb, "", "SELECT 1", NULL, 0);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_parse(&m, &p, &err), 0);
	assert_string_equal(p.stmt, "");
	assert_int_equal(p.param_types.n, 0);
	check_bounds(&m, p_parse, STRICT);
	sb_free(&sb);
}

/* PostgreSQL reads these counts as unsigned 16-bit: up to 65,535 parameters. */
static void test_rt_many_parameters(void **state)
{
	enum { N = 40000 };
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	uint32_t *oids = calloc(N, sizeof(*oids));
	int16_t *formats = calloc(N, sizeof(*formats));
	struct pgp_value *values = calloc(N, sizeof(*values));
	for (size_t i = 0; i < N; i++) {
		oids[i] = 23;
		formats[i] = (int16_t)(i % 2);
		values[i].data = (const uint8_t *)"7";
		values[i].len = 1;
	}
	pgp_build_parse(&sb, "big", "SELECT $40000", oids, N);
	struct pgp_msg m = frame_one(&sb);
	struct pgp_parse_msg p;
	assert_int_equal(pgp_parse_parse(&m, &p, &err), 0);
	assert_int_equal(p.param_types.n, N);
	assert_int_equal(pgp_array_u32(&p.param_types, N - 1), 23);
	sb_reset(&sb);
	pgp_build_bind(&sb, "", "big", formats, N, values, N, NULL, 0);
	m = frame_one(&sb);
	struct pgp_bind b;
	assert_int_equal(pgp_parse_bind(&m, &b, &err), 0);
	assert_int_equal(b.param_formats.n, N);
	assert_int_equal(b.n_params, N);
	assert_int_equal(pgp_array_i16(&b.param_formats, N - 1), 1);
	/* The largest count, 65,535, on the wire as 0xffff. */
	sb_reset(&sb);
	uint32_t *all = calloc(65535, sizeof(*all));
	pgp_build_parse(&sb, "", "x", all, 65535);
	assert_int_equal((uint8_t)sb.data[5 + 1 + 2], 0xff);
	assert_int_equal((uint8_t)sb.data[5 + 1 + 3], 0xff);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_parse(&m, &p, &err), 0);
	assert_int_equal(p.param_types.n, 65535);
	free(all);
	free(oids);
	free(formats);
	free(values);
	sb_free(&sb);
}

static void test_rt_bind(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	const int16_t pf[3] = {0, 1, 0};
	const struct pgp_value params[3] = {
		{(const uint8_t *)"abc", 3}, {NULL, -1}, {(const uint8_t *)"", 0},
	};
	const int16_t rf[1] = {1};
	pgp_build_bind(&sb, "p1", "s1", pf, 3, params, 3, rf, 1);
	struct pgp_msg m = frame_one(&sb);
	struct pgp_bind b;
	assert_int_equal(pgp_parse_bind(&m, &b, &err), 0);
	assert_string_equal(b.portal, "p1");
	assert_string_equal(b.stmt, "s1");
	assert_int_equal(b.param_formats.n, 3);
	assert_int_equal(pgp_array_i16(&b.param_formats, 1), 1);
	assert_int_equal(b.n_params, 3);
	struct pgp_value v;
	assert_true(pgp_next_value(&b.params, &v));
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.data, "abc", 3);
	assert_true(pgp_next_value(&b.params, &v));
	assert_int_equal(v.len, -1);
	assert_null(v.data);
	assert_true(pgp_next_value(&b.params, &v));
	assert_int_equal(v.len, 0);
	assert_false(pgp_next_value(&b.params, &v));
	assert_int_equal(b.result_formats.n, 1);
	assert_int_equal(pgp_array_i16(&b.result_formats, 0), 1);
	check_bounds(&m, p_bind, STRICT);
	/* the simplest Bind: unnamed everything, nothing else */
	sb_reset(&sb);
	pgp_build_bind(&sb, "", "", NULL, 0, NULL, 0, NULL, 0);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_bind(&m, &b, &err), 0);
	assert_int_equal(b.n_params, 0);
	assert_false(pgp_next_value(&b.params, &v));
	check_bounds(&m, p_bind, STRICT);
	/* one format for all parameters */
	sb_reset(&sb);
	pgp_build_bind(&sb, "", "s", pf + 1, 1, params, 2, NULL, 0);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_bind(&m, &b, &err), 0);
	check_bounds(&m, p_bind, STRICT);
	sb_free(&sb);
}

static void test_rt_describe_close_execute(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	struct pgp_target t;
	struct pgp_msg m;
	pgp_build_describe(&sb, 'S', "stmt");
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_describe(&m, &t, &err), 0);
	assert_int_equal(t.kind, 'S');
	assert_string_equal(t.name, "stmt");
	check_bounds(&m, p_describe, STRICT);
	assert_int_equal(pgp_parse_close(&m, &t, &err), -1); /* 'D' is not Close */
	assert_err_has(&err, "Close");
	sb_reset(&sb);
	pgp_build_close(&sb, 'P', "");
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_close(&m, &t, &err), 0);
	assert_int_equal(t.kind, 'P');
	assert_string_equal(t.name, "");
	check_bounds(&m, p_close, STRICT);
	sb_reset(&sb);
	pgp_build_execute(&sb, "portal", 100);
	m = frame_one(&sb);
	struct pgp_execute e;
	assert_int_equal(pgp_parse_execute(&m, &e, &err), 0);
	assert_string_equal(e.portal, "portal");
	assert_int_equal(e.max_rows, 100);
	check_bounds(&m, p_execute, STRICT);
	sb_free(&sb);
}

static void test_rt_auth_client(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	struct pgp_msg m;
	pgp_build_password(&sb, "md5abcdef");
	m = frame_one(&sb);
	const char *pw;
	assert_int_equal(pgp_parse_password(&m, &pw, &err), 0);
	assert_string_equal(pw, "md5abcdef");
	check_bounds(&m, p_password, STRICT);

	sb_reset(&sb);
	pgp_build_sasl_initial_response(&sb, "SCRAM-SHA-256", "n,,n=,r=nonce", 13);
	m = frame_one(&sb);
	struct pgp_sasl_initial si;
	assert_int_equal(pgp_parse_sasl_initial_response(&m, &si, &err), 0);
	assert_string_equal(si.mech, "SCRAM-SHA-256");
	assert_int_equal(si.data_len, 13);
	assert_memory_equal(si.data, "n,,n=,r=nonce", 13);
	check_bounds(&m, p_sasl_initial, STRICT);
	sb_reset(&sb);
	pgp_build_sasl_initial_response(&sb, "SCRAM-SHA-256", NULL, 0);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_sasl_initial_response(&m, &si, &err), 0);
	assert_int_equal(si.data_len, -1);
	assert_null(si.data);
	check_bounds(&m, p_sasl_initial, STRICT);

	sb_reset(&sb);
	pgp_build_sasl_response(&sb, "c=biws,r=x,p=y", 14);
	m = frame_one(&sb);
	const uint8_t *d;
	size_t n;
	assert_int_equal(pgp_parse_sasl_response(&m, &d, &n, &err), 0);
	assert_int_equal(n, 14);
	assert_memory_equal(d, "c=biws,r=x,p=y", 14);
	check_bounds(&m, p_sasl_response, false, false); /* the length ends the data */
	sb_free(&sb);
}

static void test_rt_empty(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	void (*builders[4])(struct strbuf *) = {pgp_build_sync, pgp_build_flush,
						pgp_build_terminate,
						pgp_build_empty_query_response};
	const char types[4] = {'S', 'H', 'X', 'I'};
	for (int i = 0; i < 4; i++) {
		sb_reset(&sb);
		builders[i](&sb);
		struct pgp_msg m = frame_one(&sb);
		assert_int_equal(m.type, types[i]);
		assert_int_equal(pgp_parse_empty(&m, types[i], &err), 0);
		check_bounds(&m, p_empty, STRICT);
		assert_int_equal(pgp_parse_empty(&m, 'Q', &err), -1);
	}
	sb_free(&sb);
}

/* ------------------------------------------ round trips: server messages */

static void test_rt_auth_server(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	struct pgp_auth a;
	struct pgp_msg m;
	pgp_build_auth_ok(&sb);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_auth(&m, &a, &err), 0);
	assert_int_equal(a.code, PGP_AUTH_OK);
	check_bounds(&m, p_auth, STRICT);
	sb_reset(&sb);
	pgp_build_auth_cleartext(&sb);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_auth(&m, &a, &err), 0);
	assert_int_equal(a.code, PGP_AUTH_CLEARTEXT);
	check_bounds(&m, p_auth, STRICT);
	sb_reset(&sb);
	const uint8_t salt[4] = {1, 0, 255, 7};
	pgp_build_auth_md5(&sb, salt);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_auth(&m, &a, &err), 0);
	assert_int_equal(a.code, PGP_AUTH_MD5);
	assert_memory_equal(a.md5_salt, salt, 4);
	check_bounds(&m, p_auth, STRICT);
	sb_reset(&sb);
	const char *mechs[2] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
	pgp_build_auth_sasl(&sb, mechs, 2);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_auth(&m, &a, &err), 0);
	assert_int_equal(a.code, PGP_AUTH_SASL);
	assert_int_equal(a.n_mechs, 2);
	assert_string_equal(pgp_next_string(&a.mechs), "SCRAM-SHA-256-PLUS");
	assert_string_equal(pgp_next_string(&a.mechs), "SCRAM-SHA-256");
	assert_null(pgp_next_string(&a.mechs));
	check_bounds(&m, p_auth, STRICT);
	sb_reset(&sb);
	pgp_build_auth_sasl_continue(&sb, "r=abc,s=salt,i=4096", 19);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_auth(&m, &a, &err), 0);
	assert_int_equal(a.code, PGP_AUTH_SASL_CONTINUE);
	assert_int_equal(a.data_len, 19);
	assert_memory_equal(a.data, "r=abc,s=salt,i=4096", 19);
	check_bounds(&m, p_auth, false, false);
	sb_reset(&sb);
	pgp_build_auth_sasl_final(&sb, "v=xyz", 5);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_auth(&m, &a, &err), 0);
	assert_int_equal(a.code, PGP_AUTH_SASL_FINAL);
	assert_int_equal(a.data_len, 5);
	assert_memory_equal(a.data, "v=xyz", 5);
	check_bounds(&m, p_auth, false, false);
	sb_free(&sb);
}

static void test_rt_status_key_rfq(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	struct pgp_msg m;
	pgp_build_parameter_status(&sb, "server_version", "15.4");
	m = frame_one(&sb);
	struct pgp_param p;
	assert_int_equal(pgp_parse_parameter_status(&m, &p, &err), 0);
	assert_string_equal(p.name, "server_version");
	assert_string_equal(p.value, "15.4");
	check_bounds(&m, p_param_status, STRICT);

	sb_reset(&sb);
	const uint8_t key[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
	pgp_build_backend_key_data(&sb, 4242, key, 32);
	m = frame_one(&sb);
	struct pgp_backend_key k;
	assert_int_equal(pgp_parse_backend_key_data(&m, &k, &err), 0);
	assert_int_equal(k.pid, 4242);
	assert_int_equal(k.key_len, 32);
	assert_memory_equal(k.key, key, 32);
	check_bounds(&m, p_key, false, false); /* the length ends the key */

	const char st[3] = {'I', 'T', 'E'};
	for (int i = 0; i < 3; i++) {
		sb_reset(&sb);
		pgp_build_ready_for_query(&sb, st[i]);
		m = frame_one(&sb);
		char c = 0;
		assert_int_equal(pgp_parse_ready_for_query(&m, &c, &err), 0);
		assert_int_equal(c, st[i]);
		assert_int_equal(pgp_rfq_is_idle(c), st[i] == 'I');
		check_bounds(&m, p_rfq, STRICT);
	}
	sb_free(&sb);
}

static void test_rt_error_notice(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	struct pgp_notice n;
	pgp_build_error(&sb, "FATAL", "28P01", "password authentication failed for user \"a\"",
			"Connection matched pg_hba.conf line 1", "Check the password.");
	struct pgp_msg m = frame_one(&sb);
	assert_int_equal(m.type, 'E');
	assert_int_equal(pgp_parse_notice(&m, &n, &err), 0);
	assert_string_equal(n.severity, "FATAL");
	assert_string_equal(n.severity_nl, "FATAL");
	assert_string_equal(n.sqlstate, "28P01");
	assert_string_equal(n.message, "password authentication failed for user \"a\"");
	assert_string_equal(n.detail, "Connection matched pg_hba.conf line 1");
	assert_string_equal(n.hint, "Check the password.");
	check_bounds(&m, p_notice, STRICT);
	sb_reset(&sb);
	pgp_build_notice(&sb, "WARNING", "01000", "careful", NULL, NULL);
	m = frame_one(&sb);
	assert_int_equal(m.type, 'N');
	assert_int_equal(pgp_parse_notice(&m, &n, &err), 0);
	assert_string_equal(n.severity, "WARNING");
	assert_string_equal(n.message, "careful");
	assert_null(n.detail);
	assert_null(n.hint);
	check_bounds(&m, p_notice, STRICT);
	sb_free(&sb);
}

static void test_rt_results(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	struct pgp_msg m;
	pgp_build_command_complete(&sb, "INSERT 0 1");
	m = frame_one(&sb);
	const char *tag;
	assert_int_equal(pgp_parse_command_complete(&m, &tag, &err), 0);
	assert_string_equal(tag, "INSERT 0 1");
	check_bounds(&m, p_complete, STRICT);

	sb_reset(&sb);
	const uint32_t oids[2] = {23, 1043};
	pgp_build_parameter_description(&sb, oids, 2);
	m = frame_one(&sb);
	struct pgp_array a;
	assert_int_equal(pgp_parse_parameter_description(&m, &a, &err), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(pgp_array_u32(&a, 1), 1043);
	check_bounds(&m, p_param_desc, STRICT);

	sb_reset(&sb);
	const char *names[3] = {"name", "state", ""};
	pgp_build_row_description(&sb, names, 3);
	m = frame_one(&sb);
	size_t n;
	struct pgp_iter it;
	assert_int_equal(pgp_parse_row_description(&m, &n, &it, &err), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < 3; i++) {
		struct pgp_field f;
		assert_true(pgp_next_field(&it, &f));
		assert_string_equal(f.name, names[i]);
		assert_int_equal(f.type_oid, 25);
		assert_int_equal(f.typlen, -1);
		assert_int_equal(f.typmod, -1);
		assert_int_equal(f.format, 0);
	}
	struct pgp_field f;
	assert_false(pgp_next_field(&it, &f));
	check_bounds(&m, p_row_desc, STRICT);

	sb_reset(&sb);
	const char *vals[4] = {"node1", NULL, "", "streaming"};
	pgp_build_data_row(&sb, vals, 4);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_data_row(&m, &n, &it, &err), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < 4; i++) {
		struct pgp_value v;
		assert_true(pgp_next_value(&it, &v));
		if (vals[i] == NULL) {
			assert_int_equal(v.len, -1);
			assert_null(v.data);
		} else {
			assert_int_equal(v.len, strlen(vals[i]));
			assert_memory_equal(v.data, vals[i], strlen(vals[i]));
		}
	}
	check_bounds(&m, p_data_row, STRICT);
	sb_reset(&sb);
	pgp_build_data_row(&sb, NULL, 0);
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_data_row(&m, &n, &it, &err), 0);
	assert_int_equal(n, 0);
	sb_free(&sb);
}

static void test_rt_negotiate(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pgha_err err = {{0}};
	const char *opts[2] = {"_pq_.foo", "_pq_.bar"};
	pgp_build_negotiate_protocol_version(&sb, 0, opts, 2);
	struct pgp_msg m = frame_one(&sb);
	struct pgp_negotiate n;
	assert_int_equal(pgp_parse_negotiate_protocol_version(&m, &n, &err), 0);
	assert_int_equal(n.newest_minor, 0);
	assert_int_equal(n.n_unrecognized, 2);
	assert_string_equal(pgp_next_string(&n.unrecognized), "_pq_.foo");
	assert_string_equal(pgp_next_string(&n.unrecognized), "_pq_.bar");
	assert_null(pgp_next_string(&n.unrecognized));
	check_bounds(&m, p_negotiate, STRICT);
	sb_reset(&sb);
	pgp_build_negotiate_protocol_version(&sb, 2, NULL, 0);
	static const uint8_t want[] = {'v', 0, 0, 0, 12, 0, 3, 0, 2, 0, 0, 0, 0};
	assert_bytes(&sb, want, sizeof(want));
	m = frame_one(&sb);
	assert_int_equal(pgp_parse_negotiate_protocol_version(&m, &n, &err), 0);
	assert_int_equal(n.newest_minor, 2);
	assert_int_equal(n.n_unrecognized, 0);
	check_bounds(&m, p_negotiate, STRICT);
	sb_free(&sb);
}

/* ------------------------------------------------------ bad field values */

/* Parse body (len bytes) as a message of type with fn: must fail naming needle. */
static void expect_bad(char type, const void *body, size_t len, parse_fn fn,
		       const char *needle)
{
	struct pgha_err err = {{0}};
	struct pgp_msg m = copy_msg(type, body, len);
	if (fn(&m, &err) == 0)
		fail_msg("bad '%c' body accepted (expected: %s)", type, needle);
	assert_err_has(&err, needle);
	free((void *)m.body);
}

static void test_bad_values(void **state)
{
#define B(lit) lit, sizeof(lit) - 1
	expect_bad('P', B("SELECT 1\0"), p_query, "expected 'Q'");
	expect_bad('Z', B("X"), p_rfq, "transaction status");
	expect_bad('Z', B(""), p_rfq, "ReadyForQuery");
	expect_bad('D', B("Xname\0"), p_describe, "target kind");
	expect_bad('C', B("\0name\0"), p_close, "target kind");
	/* Counts are unsigned: 0xffff is 65,535 entries, which these bodies lack. */
	expect_bad('P', B("s\0q\0\xff\xff"), p_parse, "parameter type OIDs");
	expect_bad('B', B("\0\0\xff\xff\0\0\0\0"), p_bind, "parameter format");
	expect_bad('B', B("\0\0\0\1\0\2\0\0\0\0"), p_bind, "format code 2");
	expect_bad('B', B("\0\0\0\2\0\0\0\0\0\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"), p_bind,
		   "2 parameter formats for 3 parameters");
	expect_bad('B', B("\0\0\0\0\0\1\xff\xff\xff\xfe\0\0"), p_bind, "length -2");
	expect_bad('B', B("\0\0\0\0\0\1\0\0\0\5ab"), p_bind, "parameter 0 value");
	expect_bad('B', B("\0\0\0\0\0\0\0\1\0\7"), p_bind, "result format");
	expect_bad('p', B("\0\0\0\0\0"), p_sasl_initial, "mechanism");
	expect_bad('p', B("M\0\xff\xff\xff\xfe"), p_sasl_initial, "data length -2");
	expect_bad('p', B("M\0\0\0\0\5abc"), p_sasl_initial, "data");
	expect_bad('R', B("\0\0\0\6"), p_auth, "unknown request code 6");
	expect_bad('R', B("\0\0\0\x0a\0"), p_auth, "empty");
	expect_bad('R', B("\0\0\0\x0aSCRAM-SHA-256\0"), p_auth, "SASL mechanism list");
	expect_bad('S', B("\0v\0"), p_param_status, "name");
	expect_bad('K', B("\0\0\0\1abc"), p_key, "secret key");
	static uint8_t longkey[4 + 257];
	expect_bad('K', longkey, sizeof(longkey), p_key, "257 bytes");
	expect_bad('E', B("C42601\0Mx\0\0"), p_notice, "severity");
	expect_bad('E', B("SERROR\0Mx\0\0"), p_notice, "SQLSTATE");
	expect_bad('E', B("SERROR\0C4260\0Mx\0\0"), p_notice, "4260");
	expect_bad('N', B("SERROR\0C42p01\0Mx\0\0"), p_notice, "42p01");
	expect_bad('E', B("SERROR\0C42601\0\0"), p_notice, "message");
	expect_bad('E', B("SERROR\0C42601\0Mx\0"), p_notice, "field code");
	expect_bad('X', B("SERROR\0C42601\0Mx\0\0"), p_notice, "expected 'E' or 'N'");
	expect_bad('T', B("\0\1a\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\2"),
		   p_row_desc, "format code 2");
	expect_bad('T', B("\0\2a\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0"),
		   p_row_desc, "field 1 name");
	expect_bad('D', B("\0\1\xff\xff\xff\xf0"), p_data_row, "length -16");
	expect_bad('D', B("\0\2\0\0\0\0"), p_data_row, "column 1 length");
	expect_bad('t', B("\0\1\0\0"), p_param_desc, "parameter type OIDs");
	expect_bad('v', B("\0\3\0\0\xff\xff\xff\xff"), p_negotiate, "negative");
	expect_bad('v', B("\0\2\0\0\0\0\0\0"), p_negotiate, "2.0");
	expect_bad('v', B("\0\3\0\0\0\0\0\1"), p_negotiate, "option name");
#undef B
	/* unknown ErrorResponse fields are skipped */
	struct pgha_err err = {{0}};
	static const uint8_t e[] = "SERROR\0P12\0C42601\0Mx\0Wctx\0";
	struct pgp_msg m = copy_msg('E', e, sizeof(e));
	struct pgp_notice n;
	assert_int_equal(pgp_parse_notice(&m, &n, &err), 0);
	assert_null(n.severity_nl);
	assert_string_equal(n.message, "x");
	free((void *)m.body);
}

/* ---------------------------------------------------------------- helpers */

static void test_helpers(void **state)
{
	assert_int_equal(pgp_client_kind('Q'), PGP_CLIENT_QUERY);
	const char ext[] = "PBDEC";
	for (size_t i = 0; i < strlen(ext); i++)
		assert_int_equal(pgp_client_kind(ext[i]), PGP_CLIENT_EXTENDED);
	assert_int_equal(pgp_client_kind('S'), PGP_CLIENT_SYNC);
	assert_int_equal(pgp_client_kind('H'), PGP_CLIENT_FLUSH);
	assert_int_equal(pgp_client_kind('X'), PGP_CLIENT_TERMINATE);
	assert_int_equal(pgp_client_kind('d'), PGP_CLIENT_COPY);
	assert_int_equal(pgp_client_kind('c'), PGP_CLIENT_COPY);
	assert_int_equal(pgp_client_kind('f'), PGP_CLIENT_COPY);
	assert_int_equal(pgp_client_kind('F'), PGP_CLIENT_FUNCTION);
	assert_int_equal(pgp_client_kind('p'), PGP_CLIENT_AUTH);
	assert_int_equal(pgp_client_kind('Z'), PGP_CLIENT_UNKNOWN);
	assert_int_equal(pgp_client_kind(0), PGP_CLIENT_UNKNOWN);
	assert_true(pgp_rfq_is_idle('I'));
	assert_false(pgp_rfq_is_idle('T'));
	assert_false(pgp_rfq_is_idle('E'));
	assert_string_equal(pgp_client_type_name('B'), "Bind");
	assert_string_equal(pgp_server_type_name('D'), "DataRow");
	assert_string_equal(pgp_client_type_name('D'), "Describe");
	assert_string_equal(pgp_server_type_name('?'), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_prefixes),
		cmocka_unit_test(test_frame_lengths),
		cmocka_unit_test(test_startup_ssl_gss),
		cmocka_unit_test(test_startup_cancel),
		cmocka_unit_test(test_startup_v30_params),
		cmocka_unit_test(test_startup_defaults_and_minor),
		cmocka_unit_test(test_startup_bad),
		cmocka_unit_test(test_exact_bytes),
		cmocka_unit_test(test_rt_query),
		cmocka_unit_test(test_rt_parse),
		cmocka_unit_test(test_rt_bind),
		cmocka_unit_test(test_rt_describe_close_execute),
		cmocka_unit_test(test_rt_auth_client),
		cmocka_unit_test(test_rt_empty),
		cmocka_unit_test(test_rt_auth_server),
		cmocka_unit_test(test_rt_status_key_rfq),
		cmocka_unit_test(test_rt_error_notice),
		cmocka_unit_test(test_rt_results),
		cmocka_unit_test(test_rt_negotiate),
		cmocka_unit_test(test_rt_many_parameters),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
