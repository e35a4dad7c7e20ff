/*
 * fuzz_pgproto.c — libFuzzer target for src/pgproto.
 *
 * Input: one selector byte (bit 0: 0 = client side, 1 = server side; bit 1:
 * frame with a 64-byte length limit instead of the default), then
 * bytes that are fed
 *   1. to pgp_decode_startup() (as the first packet of a connection), and
 *   2. to pgp_frame() in a loop; every framed message goes to every parser of
 *      the chosen side, its type byte forced to what each parser expects, so
 *      each parser sees every body.
 * Bodies are copied into exact-size heap buffers so that AddressSanitizer
 * catches a read past the body even when more messages follow it.
 *
 * Beyond "no crash": whatever a parser accepts must come back byte for byte
 * from the matching builder (or, for the messages a builder cannot reproduce
 * exactly, parse again to the same fields); a decoded startup packet must
 * re-encode and decode to the same values. A difference aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "pgproto/pgproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                \
			abort();                                                 \
		}                                                                \
	} while (0)

/* The wire bytes of m (type, length, body). */
static void wire(struct strbuf *sb, const struct pgp_msg *m)
{
	size_t n = m->body_len + 4;
	uint8_t h[5] = {(uint8_t)m->type, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
			(uint8_t)(n >> 8), (uint8_t)n};
	sb_append(sb, h, 5);
	if (m->body_len)
		sb_append(sb, m->body, m->body_len);
}

/* sb (freed here) must hold exactly the bytes of m. */
static void same_bytes(struct strbuf *sb, const struct pgp_msg *m)
{
	struct strbuf want = STRBUF_INIT;
	wire(&want, m);
	CHECK(sb->len == want.len);
	CHECK(memcmp(sb->data, want.data, want.len) == 0);
	sb_free(&want);
	sb_free(sb);
}

static bool streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ------------------------------------------------------------ startup */

static void fuzz_startup(const uint8_t *in, size_t n)
{
	struct pgp_startup s, s2;
	struct pgha_err err;
	int rc = pgp_decode_startup(in, n, &s, &err);
	if (rc != PGP_OK)
		return;
	CHECK(s.total_len >= PGP_STARTUP_MIN_LEN && s.total_len <= PGP_STARTUP_MAX_LEN);
	CHECK(s.total_len <= n);
	/* a prefix of a complete packet never completes */
	CHECK(pgp_decode_startup(in, s.total_len - 1, &s2, &err) == PGP_NEED_MORE);
	struct strbuf sb = STRBUF_INIT;
	switch (s.kind) {
	case PGP_SSL_REQUEST:
		pgp_build_ssl_request(&sb);
		CHECK(sb.len == 8 && memcmp(sb.data, in, 8) == 0);
		break;
	case PGP_GSSENC_REQUEST:
		CHECK(s.total_len == 8);
		break;
	case PGP_CANCEL_REQUEST:
		CHECK(s.cancel_key_len >= PGP_CANCEL_KEY_MIN &&
		      s.cancel_key_len <= PGP_CANCEL_KEY_MAX);
		pgp_build_cancel_request(&sb, s.cancel_pid, s.cancel_key, s.cancel_key_len);
		CHECK(sb.len == s.total_len && memcmp(sb.data, in, sb.len) == 0);
		break;
	case PGP_STARTUP_MESSAGE: {
		CHECK(s.user != NULL && s.user[0] != '\0' && s.database != NULL);
		struct pgp_param *ps = malloc((s.n_params + 5) * sizeof(*ps));
		size_t k = 0;
		ps[k++] = (struct pgp_param){"user", s.user};
		ps[k++] = (struct pgp_param){"database", s.database};
		if (s.application_name)
			ps[k++] = (struct pgp_param){"application_name", s.application_name};
		if (s.options)
			ps[k++] = (struct pgp_param){"options", s.options};
		if (s.replication)
			ps[k++] = (struct pgp_param){"replication", s.replication};
		struct pgp_iter it = s.params;
		struct pgp_param p;
		size_t others = 0;
		while (pgp_startup_next_param(&it, &p)) {
			CHECK(others < s.n_params);
			ps[k++] = p;
			others++;
			(void)pgp_is_protocol_option(p.name);
		}
		CHECK(others == s.n_params);
		pgp_build_startup(&sb, s.proto_minor, ps, k);
		/* the rebuilt packet may be longer (database made explicit) */
		if (sb.len <= PGP_STARTUP_MAX_LEN) {
			CHECK(pgp_decode_startup(sb.data, sb.len, &s2, &err) == PGP_OK);
			CHECK(s2.kind == PGP_STARTUP_MESSAGE && s2.proto_minor == s.proto_minor);
			CHECK(streq(s2.user, s.user) && streq(s2.database, s.database));
			CHECK(streq(s2.application_name, s.application_name));
			CHECK(streq(s2.options, s.options) && streq(s2.replication, s.replication));
			CHECK(s2.n_params == s.n_params);
			it = s.params;
			struct pgp_param p2;
			while (pgp_startup_next_param(&it, &p)) {
				CHECK(pgp_startup_next_param(&s2.params, &p2));
				CHECK(streq(p.name, p2.name) && streq(p.value, p2.value));
			}
			CHECK(!pgp_startup_next_param(&s2.params, &p2));
		}
		free(ps);
		break;
	}
	default:
		CHECK(!"unknown startup kind");
	}
	sb_free(&sb);
}

/* ------------------------------------------------------ client parsers */

static void fuzz_client(const struct pgp_msg *orig)
{
	struct pgha_err err;
	struct pgp_msg m = *orig;
	struct strbuf sb = STRBUF_INIT;

	m.type = 'Q';
	const char *str;
	if (pgp_parse_query(&m, &str, &err) == 0) {
		pgp_build_query(&sb, str);
		same_bytes(&sb, &m);
	}
	m.type = 'P';
	struct pgp_parse_msg pm;
	if (pgp_parse_parse(&m, &pm, &err) == 0) {
		uint32_t *oids = malloc((pm.param_types.n + 1) * sizeof(*oids));
		for (size_t i = 0; i < pm.param_types.n; i++)
			oids[i] = pgp_array_u32(&pm.param_types, i);
		pgp_build_parse(&sb, pm.stmt, pm.query, oids, pm.param_types.n);
		free(oids);
		same_bytes(&sb, &m);
	}
	m.type = 'B';
	struct pgp_bind b;
	if (pgp_parse_bind(&m, &b, &err) == 0) {
		int16_t *pf = malloc((b.param_formats.n + 1) * sizeof(*pf));
		int16_t *rf = malloc((b.result_formats.n + 1) * sizeof(*rf));
		struct pgp_value *vals = malloc((b.n_params + 1) * sizeof(*vals));
		for (size_t i = 0; i < b.param_formats.n; i++) {
			pf[i] = pgp_array_i16(&b.param_formats, i);
			CHECK(pf[i] == 0 || pf[i] == 1);
		}
		for (size_t i = 0; i < b.result_formats.n; i++)
			rf[i] = pgp_array_i16(&b.result_formats, i);
		size_t k = 0;
		struct pgp_iter it = b.params;
		while (k <= b.n_params && pgp_next_value(&it, &vals[k]))
			k++;
		CHECK(k == b.n_params);
		pgp_build_bind(&sb, b.portal, b.stmt, pf, b.param_formats.n, vals, k, rf,
			       b.result_formats.n);
		free(pf);
		free(rf);
		free(vals);
		same_bytes(&sb, &m);
	}
	struct pgp_target t;
	m.type = 'D';
	if (pgp_parse_describe(&m, &t, &err) == 0) {
		pgp_build_describe(&sb, t.kind, t.name);
		same_bytes(&sb, &m);
	}
	m.type = 'C';
	if (pgp_parse_close(&m, &t, &err) == 0) {
		pgp_build_close(&sb, t.kind, t.name);
		same_bytes(&sb, &m);
	}
	m.type = 'E';
	struct pgp_execute ex;
	if (pgp_parse_execute(&m, &ex, &err) == 0) {
		pgp_build_execute(&sb, ex.portal, ex.max_rows);
		same_bytes(&sb, &m);
	}
	m.type = 'p';
	if (pgp_parse_password(&m, &str, &err) == 0) {
		pgp_build_password(&sb, str);
		same_bytes(&sb, &m);
	}
	struct pgp_sasl_initial si;
	if (pgp_parse_sasl_initial_response(&m, &si, &err) == 0) {
		CHECK((si.data == NULL) == (si.data_len == -1));
		pgp_build_sasl_initial_response(&sb, si.mech, si.data,
						si.data_len < 0 ? 0 : (size_t)si.data_len);
		same_bytes(&sb, &m);
	}
	const uint8_t *d;
	size_t dl;
	if (pgp_parse_sasl_response(&m, &d, &dl, &err) == 0) {
		pgp_build_sasl_response(&sb, d, dl);
		same_bytes(&sb, &m);
	}
	static const char empties[] = {'S', 'H', 'X', 'c'};
	for (size_t i = 0; i < sizeof(empties); i++) {
		m.type = empties[i];
		if (pgp_parse_empty(&m, empties[i], &err) == 0)
			CHECK(m.body_len == 0);
	}
	(void)pgp_client_kind(orig->type);
	(void)pgp_client_type_name(orig->type);
}

/* ------------------------------------------------------ server parsers */

static void fuzz_server(const struct pgp_msg *orig)
{
	struct pgha_err err;
	struct pgp_msg m = *orig;
	struct strbuf sb = STRBUF_INIT;

	m.type = 'R';
	struct pgp_auth a;
	if (pgp_parse_auth(&m, &a, &err) == 0) {
		bool built = true;
		switch (a.code) {
		case PGP_AUTH_OK: pgp_build_auth_ok(&sb); break;
		case PGP_AUTH_CLEARTEXT: pgp_build_auth_cleartext(&sb); break;
		case PGP_AUTH_MD5: pgp_build_auth_md5(&sb, a.md5_salt); break;
		case PGP_AUTH_SASL_CONTINUE:
			pgp_build_auth_sasl_continue(&sb, a.data, a.data_len);
			break;
		case PGP_AUTH_SASL_FINAL:
			pgp_build_auth_sasl_final(&sb, a.data, a.data_len);
			break;
		case PGP_AUTH_SASL: {
			const char **mechs = malloc((a.n_mechs + 1) * sizeof(*mechs));
			size_t k = 0;
			const char *s;
			struct pgp_iter it = a.mechs;
			while (k <= a.n_mechs && (s = pgp_next_string(&it)) != NULL)
				mechs[k++] = s;
			CHECK(k == a.n_mechs && k >= 1);
			pgp_build_auth_sasl(&sb, mechs, k);
			free(mechs);
			break;
		}
		default:
			built = false;
		}
		if (built)
			same_bytes(&sb, &m);
	}
	m.type = 'S';
	struct pgp_param p;
	if (pgp_parse_parameter_status(&m, &p, &err) == 0) {
		pgp_build_parameter_status(&sb, p.name, p.value);
		same_bytes(&sb, &m);
	}
	m.type = 'K';
	struct pgp_backend_key k;
	if (pgp_parse_backend_key_data(&m, &k, &err) == 0) {
		pgp_build_backend_key_data(&sb, k.pid, k.key, k.key_len);
		same_bytes(&sb, &m);
	}
	m.type = 'Z';
	char st;
	if (pgp_parse_ready_for_query(&m, &st, &err) == 0) {
		CHECK(st == 'I' || st == 'T' || st == 'E');
		pgp_build_ready_for_query(&sb, st);
		same_bytes(&sb, &m);
	}
	static const char notice_types[] = {'E', 'N'};
	for (size_t i = 0; i < 2; i++) {
		m.type = notice_types[i];
		struct pgp_notice n, n2;
		if (pgp_parse_notice(&m, &n, &err) != 0)
			continue;
		CHECK(n.severity && n.sqlstate && strlen(n.sqlstate) == 5 && n.message);
		if (m.type == 'E')
			pgp_build_error(&sb, n.severity, n.sqlstate, n.message, n.detail, n.hint);
		else
			pgp_build_notice(&sb, n.severity, n.sqlstate, n.message, n.detail, n.hint);
		struct pgp_msg m2;
		CHECK(pgp_frame(sb.data, sb.len, (size_t)1 << 30, &m2, &err) == PGP_OK);
		CHECK(pgp_parse_notice(&m2, &n2, &err) == 0);
		CHECK(streq(n.severity, n2.severity) && streq(n.sqlstate, n2.sqlstate));
		CHECK(streq(n.message, n2.message) && streq(n.detail, n2.detail));
		CHECK(streq(n.hint, n2.hint) && streq(n.severity, n2.severity_nl));
		sb_free(&sb);
	}
	m.type = 'C';
	const char *tag;
	if (pgp_parse_command_complete(&m, &tag, &err) == 0) {
		pgp_build_command_complete(&sb, tag);
		same_bytes(&sb, &m);
	}
	m.type = 't';
	struct pgp_array oids;
	if (pgp_parse_parameter_description(&m, &oids, &err) == 0) {
		uint32_t *o = malloc((oids.n + 1) * sizeof(*o));
		for (size_t i = 0; i < oids.n; i++)
			o[i] = pgp_array_u32(&oids, i);
		pgp_build_parameter_description(&sb, o, oids.n);
		free(o);
		same_bytes(&sb, &m);
	}
	size_t n;
	struct pgp_iter it;
	m.type = 'T';
	if (pgp_parse_row_description(&m, &n, &it, &err) == 0) {
		struct pgp_field f;
		size_t c = 0;
		while (pgp_next_field(&it, &f)) {
			CHECK(f.format == 0 || f.format == 1);
			c++;
		}
		CHECK(c == n && it.left == 0);
	}
	m.type = 'D';
	if (pgp_parse_data_row(&m, &n, &it, &err) == 0) {
		struct pgp_value v;
		size_t c = 0, bytes = 0;
		while (pgp_next_value(&it, &v)) {
			CHECK(v.len >= -1 && (v.len == -1) == (v.data == NULL));
			bytes += 4 + (v.len > 0 ? (size_t)v.len : 0);
			c++;
		}
		CHECK(c == n && it.left == 0 && bytes + 2 == m.body_len);
	}
	m.type = 'v';
	struct pgp_negotiate neg;
	if (pgp_parse_negotiate_protocol_version(&m, &neg, &err) == 0) {
		const char **opts = malloc((neg.n_unrecognized + 1) * sizeof(*opts));
		size_t c = 0;
		const char *s;
		while (c <= neg.n_unrecognized && (s = pgp_next_string(&neg.unrecognized)))
			opts[c++] = s;
		CHECK(c == neg.n_unrecognized);
		pgp_build_negotiate_protocol_version(&sb, neg.newest_minor, opts, c);
		free(opts);
		same_bytes(&sb, &m);
	}
	m.type = 'I';
	if (pgp_parse_empty(&m, 'I', &err) == 0) {
		pgp_build_empty_query_response(&sb);
		same_bytes(&sb, &m);
	}
	(void)pgp_rfq_is_idle(orig->type);
	(void)pgp_server_type_name(orig->type);
}

/* -------------------------------------------------------------- framing */

static void fuzz_frames(const uint8_t *in, size_t n, bool server, size_t max_len)
{
	size_t off = 0;
	while (off < n) {
		struct pgp_msg m;
		struct pgha_err err;
		int rc = pgp_frame(in + off, n - off, max_len, &m, &err);
		if (rc == PGP_NEED_MORE)
			break;
		if (rc == PGP_ERROR) {
			CHECK(err.msg[0] != '\0');
			break;
		}
		CHECK(rc == PGP_OK && m.total_len == m.body_len + 5 && m.total_len <= n - off);
		CHECK(m.body == in + off + 5);
		/* one byte short of the message is always NEED_MORE */
		struct pgp_msg m2;
		CHECK(pgp_frame(in + off, m.total_len - 1, max_len, &m2, &err) == PGP_NEED_MORE);
		uint8_t *body = malloc(m.body_len ? m.body_len : 1);
		memcpy(body, m.body, m.body_len);
		struct pgp_msg copy = m;
		copy.body = body;
		if (server)
			fuzz_server(&copy);
		else
			fuzz_client(&copy);
		free(body);
		off += m.total_len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool server = data[0] & 1;
	/* bit 1: a small length limit, so the limit check is hit at fuzz sizes */
	size_t max_len = data[0] & 2 ? 64 : 0;
	size_t n = size - 1;
	uint8_t *in = malloc(n ? n : 1); /* exact size: reads past the end are caught */
	memcpy(in, data + 1, n);
	fuzz_startup(in, n);
	fuzz_frames(in, n, server, max_len);
	free(in);
	return 0;
}
