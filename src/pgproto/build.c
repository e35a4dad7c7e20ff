/*
 * build.c — message builders: each appends one whole message to a strbuf.
 *
 * A message is begun with its type byte and a placeholder length, the body
 * is appended, and the length is patched in at the end, so no builder has to
 * compute sizes up front.
 */
#include "pgproto/pgproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY ((size_t)1 << 30) /* PostgreSQL's own limit on a message */

static void too_big(const char *what)
{
	fprintf(stderr, "pgproto: %s too large for the protocol (caller bug)\n", what);
	abort();
}

static void put_u8(struct strbuf *sb, uint8_t v)
{
	sb_append(sb, &v, 1);
}

static void put_i16(struct strbuf *sb, int16_t v)
{
	uint8_t b[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
	sb_append(sb, b, 2);
}

static void put_i32(struct strbuf *sb, int32_t v)
{
	uint32_t u = (uint32_t)v;
	uint8_t b[4] = {(uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u};
	sb_append(sb, b, 4);
}

static void put_str(struct strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s) + 1);
}

static void put_count(struct strbuf *sb, size_t n, const char *what)
{
	if (n > UINT16_MAX)   /* the count is unsigned 16-bit on the wire */
		too_big(what);
	put_i16(sb, (int16_t)(uint16_t)n);
}

/* Start a message: type byte (none when type is 0) + length placeholder.
 * Returns the offset of the length field. */
static size_t msg_begin(struct strbuf *sb, char type)
{
	if (type != 0)
		put_u8(sb, (uint8_t)type);
	size_t off = sb->len;
	put_i32(sb, 0);
	return off;
}

static void msg_end(struct strbuf *sb, size_t off)
{
	size_t n = sb->len - off;
	if (n > MAX_BODY)
		too_big("message");
	uint8_t *p = (uint8_t *)sb->data + off;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

static void build_empty(struct strbuf *sb, char type)
{
	msg_end(sb, msg_begin(sb, type));
}

/* ------------------------------------------------------- backend messages */

static void build_fields(struct strbuf *sb, char type, const char *severity,
			 const char *sqlstate, const char *message, const char *detail,
			 const char *hint)
{
	size_t off = msg_begin(sb, type);
	put_u8(sb, 'S');
	put_str(sb, severity);
	put_u8(sb, 'V');
	put_str(sb, severity);
	put_u8(sb, 'C');
	put_str(sb, sqlstate);
	put_u8(sb, 'M');
	put_str(sb, message);
	if (detail != NULL) {
		put_u8(sb, 'D');
		put_str(sb, detail);
	}
	if (hint != NULL) {
		put_u8(sb, 'H');
		put_str(sb, hint);
	}
	put_u8(sb, 0);
	msg_end(sb, off);
}

void pgp_build_error(struct strbuf *sb, const char *severity, const char *sqlstate,
		     const char *message, const char *detail, const char *hint)
{
	build_fields(sb, 'E', severity, sqlstate, message, detail, hint);
}

void pgp_build_notice(struct strbuf *sb, const char *severity, const char *sqlstate,
		      const char *message, const char *detail, const char *hint)
{
	build_fields(sb, 'N', severity, sqlstate, message, detail, hint);
}

void pgp_build_ready_for_query(struct strbuf *sb, char status)
{
	size_t off = msg_begin(sb, 'Z');
	put_u8(sb, (uint8_t)status);
	msg_end(sb, off);
}

static void build_auth(struct strbuf *sb, int32_t code, const void *data, size_t len)
{
	size_t off = msg_begin(sb, 'R');
	put_i32(sb, code);
	if (len > MAX_BODY)
		too_big("authentication data");
	if (len > 0)
		sb_append(sb, data, len);
	msg_end(sb, off);
}

void pgp_build_auth_ok(struct strbuf *sb)
{
	build_auth(sb, PGP_AUTH_OK, NULL, 0);
}

void pgp_build_auth_cleartext(struct strbuf *sb)
{
	build_auth(sb, PGP_AUTH_CLEARTEXT, NULL, 0);
}

void pgp_build_auth_md5(struct strbuf *sb, const uint8_t salt[4])
{
	build_auth(sb, PGP_AUTH_MD5, salt, 4);
}

void pgp_build_auth_sasl(struct strbuf *sb, const char *const *mechs, size_t n)
{
	size_t off = msg_begin(sb, 'R');
	put_i32(sb, PGP_AUTH_SASL);
	for (size_t i = 0; i < n; i++)
		put_str(sb, mechs[i]);
	put_u8(sb, 0);
	msg_end(sb, off);
}

void pgp_build_auth_sasl_continue(struct strbuf *sb, const void *data, size_t len)
{
	build_auth(sb, PGP_AUTH_SASL_CONTINUE, data, len);
}

void pgp_build_auth_sasl_final(struct strbuf *sb, const void *data, size_t len)
{
	build_auth(sb, PGP_AUTH_SASL_FINAL, data, len);
}

void pgp_build_parameter_status(struct strbuf *sb, const char *name, const char *value)
{
	size_t off = msg_begin(sb, 'S');
	put_str(sb, name);
	put_str(sb, value);
	msg_end(sb, off);
}

void pgp_build_backend_key_data(struct strbuf *sb, int32_t pid, const void *key,
				size_t key_len)
{
	if (key_len > PGP_CANCEL_KEY_MAX)
		too_big("cancel key");
	size_t off = msg_begin(sb, 'K');
	put_i32(sb, pid);
	if (key_len > 0)
		sb_append(sb, key, key_len);
	msg_end(sb, off);
}

void pgp_build_command_complete(struct strbuf *sb, const char *tag)
{
	size_t off = msg_begin(sb, 'C');
	put_str(sb, tag);
	msg_end(sb, off);
}

void pgp_build_empty_query_response(struct strbuf *sb)
{
	build_empty(sb, 'I');
}

void pgp_build_row_description(struct strbuf *sb, const char *const *names, size_t n)
{
	size_t off = msg_begin(sb, 'T');
	put_count(sb, n, "RowDescription column count");
	for (size_t i = 0; i < n; i++) {
		put_str(sb, names[i]);
		put_i32(sb, 0);         /* table OID: not a table column */
		put_i16(sb, 0);         /* attribute number */
		put_i32(sb, 25);        /* type OID: text */
		put_i16(sb, -1);        /* typlen: varlena */
		put_i32(sb, -1);        /* typmod: none */
		put_i16(sb, 0);         /* format: text */
	}
	msg_end(sb, off);
}

void pgp_build_data_row(struct strbuf *sb, const char *const *values, size_t n)
{
	size_t off = msg_begin(sb, 'D');
	put_count(sb, n, "DataRow column count");
	for (size_t i = 0; i < n; i++) {
		if (values[i] == NULL) {
			put_i32(sb, -1);
			continue;
		}
		size_t len = strlen(values[i]);
		if (len > MAX_BODY)
			too_big("DataRow value");
		put_i32(sb, (int32_t)len);
		sb_append(sb, values[i], len);
	}
	msg_end(sb, off);
}

void pgp_build_parameter_description(struct strbuf *sb, const uint32_t *oids, size_t n)
{
	size_t off = msg_begin(sb, 't');
	put_count(sb, n, "ParameterDescription count");
	for (size_t i = 0; i < n; i++)
		put_i32(sb, (int32_t)oids[i]);
	msg_end(sb, off);
}

void pgp_build_negotiate_protocol_version(struct strbuf *sb, unsigned newest_minor,
					  const char *const *unrecognized, size_t n)
{
	if (newest_minor > 0xffff || n > INT32_MAX)
		too_big("NegotiateProtocolVersion field");
	size_t off = msg_begin(sb, 'v');
	put_i32(sb, (int32_t)PGP_PROTO(PGP_PROTO_MAJOR, newest_minor));
	put_i32(sb, (int32_t)n);
	for (size_t i = 0; i < n; i++)
		put_str(sb, unrecognized[i]);
	msg_end(sb, off);
}

/* ------------------------------------------------------ frontend messages */

void pgp_build_startup(struct strbuf *sb, unsigned minor, const struct pgp_param *params,
		       size_t n)
{
	if (minor > 0xffff)
		too_big("protocol minor version");
	size_t off = msg_begin(sb, 0);
	put_i32(sb, (int32_t)PGP_PROTO(PGP_PROTO_MAJOR, minor));
	for (size_t i = 0; i < n; i++) {
		put_str(sb, params[i].name);
		put_str(sb, params[i].value);
	}
	put_u8(sb, 0);
	msg_end(sb, off);
}

void pgp_build_ssl_request(struct strbuf *sb)
{
	put_i32(sb, 8);
	put_i32(sb, PGP_CODE_SSL);
}

void pgp_build_cancel_request(struct strbuf *sb, int32_t pid, const void *key,
			      size_t key_len)
{
	if (key_len > PGP_CANCEL_KEY_MAX)
		too_big("cancel key");
	size_t off = msg_begin(sb, 0);
	put_i32(sb, PGP_CODE_CANCEL);
	put_i32(sb, pid);
	if (key_len > 0)
		sb_append(sb, key, key_len);
	msg_end(sb, off);
}

void pgp_build_password(struct strbuf *sb, const char *password)
{
	size_t off = msg_begin(sb, 'p');
	put_str(sb, password);
	msg_end(sb, off);
}

void pgp_build_sasl_initial_response(struct strbuf *sb, const char *mech,
				     const void *data, size_t len)
{
	size_t off = msg_begin(sb, 'p');
	put_str(sb, mech);
	if (data == NULL) {
		put_i32(sb, -1);
	} else {
		if (len > MAX_BODY)
			too_big("SASL data");
		put_i32(sb, (int32_t)len);
		sb_append(sb, data, len);
	}
	msg_end(sb, off);
}

void pgp_build_sasl_response(struct strbuf *sb, const void *data, size_t len)
{
	size_t off = msg_begin(sb, 'p');
	if (len > MAX_BODY)
		too_big("SASL data");
	if (len > 0)
		sb_append(sb, data, len);
	msg_end(sb, off);
}

void pgp_build_query(struct strbuf *sb, const char *sql)
{
	size_t off = msg_begin(sb, 'Q');
	put_str(sb, sql);
	msg_end(sb, off);
}

void pgp_build_parse(struct strbuf *sb, const char *stmt, const char *query,
		     const uint32_t *param_oids, size_t n)
{
	size_t off = msg_begin(sb, 'P');
	put_str(sb, stmt);
	put_str(sb, query);
	put_count(sb, n, "Parse parameter count");
	for (size_t i = 0; i < n; i++)
		put_i32(sb, (int32_t)param_oids[i]);
	msg_end(sb, off);
}

void pgp_build_bind(struct strbuf *sb, const char *portal, const char *stmt,
		    const int16_t *param_formats, size_t n_param_formats,
		    const struct pgp_value *params, size_t n_params,
		    const int16_t *result_formats, size_t n_result_formats)
{
	size_t off = msg_begin(sb, 'B');
	put_str(sb, portal);
	put_str(sb, stmt);
	put_count(sb, n_param_formats, "Bind parameter format count");
	for (size_t i = 0; i < n_param_formats; i++)
		put_i16(sb, param_formats[i]);
	put_count(sb, n_params, "Bind parameter count");
	for (size_t i = 0; i < n_params; i++) {
		if (params[i].len < 0 || params[i].data == NULL) {
			put_i32(sb, -1);
			continue;
		}
		put_i32(sb, params[i].len);
		sb_append(sb, params[i].data, (size_t)params[i].len);
	}
	put_count(sb, n_result_formats, "Bind result format count");
	for (size_t i = 0; i < n_result_formats; i++)
		put_i16(sb, result_formats[i]);
	msg_end(sb, off);
}

void pgp_build_execute(struct strbuf *sb, const char *portal, int32_t max_rows)
{
	size_t off = msg_begin(sb, 'E');
	put_str(sb, portal);
	put_i32(sb, max_rows);
	msg_end(sb, off);
}

static void build_target(struct strbuf *sb, char type, char kind, const char *name)
{
	size_t off = msg_begin(sb, type);
	put_u8(sb, (uint8_t)kind);
	put_str(sb, name);
	msg_end(sb, off);
}

void pgp_build_describe(struct strbuf *sb, char kind, const char *name)
{
	build_target(sb, 'D', kind, name);
}

void pgp_build_close(struct strbuf *sb, char kind, const char *name)
{
	build_target(sb, 'C', kind, name);
}

void pgp_build_sync(struct strbuf *sb)
{
	build_empty(sb, 'S');
}

void pgp_build_flush(struct strbuf *sb)
{
	build_empty(sb, 'H');
}

void pgp_build_terminate(struct strbuf *sb)
{
	build_empty(sb, 'X');
}
