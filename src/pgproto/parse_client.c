/*
 * parse_client.c — parsers for the messages a client (frontend) sends.
 */
#include "pgproto/pgproto.h"

#include <stdio.h>

#include "pgproto/internal.h"

static void rd_msg(struct rd *r, const struct pgp_msg *m, const char *what,
		   struct pgha_err *err)
{
	rd_init(r, m->body, m->body_len, what, err);
}

/* An Int16 format code: 0 text, 1 binary. */
static int check_formats(struct rd *r, const struct pgp_array *a, const char *field)
{
	for (size_t i = 0; i < a->n; i++) {
		int16_t f = pgp_array_i16(a, i);
		if (f != 0 && f != 1)
			return err_set(r->err, "%s message: %s %zu: format code %d is not 0 or 1",
				       r->what, field, i, f);
	}
	return 0;
}

/* Int16 count then count Int16 format codes. */
static int rd_formats(struct rd *r, struct pgp_array *a, const char *count_field,
		      const char *field)
{
	if (rd_count16(r, &a->n, count_field) < 0)
		return -1;
	if (rd_bytes(r, 2 * a->n, &a->raw, field) < 0)
		return -1;
	return check_formats(r, a, field);
}

int pgp_parse_query(const struct pgp_msg *m, const char **sql, struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'Q', "Query", err) < 0)
		return -1;
	rd_msg(&r, m, "Query", err);
	if (rd_str(&r, sql, "query string") < 0 || rd_end(&r) < 0)
		return -1;
	return 0;
}

int pgp_parse_parse(const struct pgp_msg *m, struct pgp_parse_msg *out, struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'P', "Parse", err) < 0)
		return -1;
	rd_msg(&r, m, "Parse", err);
	if (rd_str(&r, &out->stmt, "statement name") < 0 ||
	    rd_str(&r, &out->query, "query string") < 0 ||
	    rd_count16(&r, &out->param_types.n, "parameter type count") < 0 ||
	    rd_bytes(&r, 4 * out->param_types.n, &out->param_types.raw,
		     "parameter type OIDs") < 0 ||
	    rd_end(&r) < 0)
		return -1;
	return 0;
}

int pgp_parse_bind(const struct pgp_msg *m, struct pgp_bind *out, struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'B', "Bind", err) < 0)
		return -1;
	rd_msg(&r, m, "Bind", err);
	if (rd_str(&r, &out->portal, "portal name") < 0 ||
	    rd_str(&r, &out->stmt, "statement name") < 0 ||
	    rd_formats(&r, &out->param_formats, "parameter format count",
		       "parameter format") < 0 ||
	    rd_count16(&r, &out->n_params, "parameter count") < 0)
		return -1;
	if (out->param_formats.n > 1 && out->param_formats.n != out->n_params)
		return err_set(err, "Bind message: %zu parameter formats for %zu parameters "
			       "(must be 0, 1 or equal)", out->param_formats.n, out->n_params);
	size_t start = r.pos;
	for (size_t i = 0; i < out->n_params; i++) {
		int32_t len;
		const uint8_t *data;
		char field[64];
		snprintf(field, sizeof(field), "parameter %zu length", i);
		if (rd_i32(&r, &len, field) < 0)
			return -1;
		if (len < -1)
			return err_set(err, "Bind message: parameter %zu: length %d is invalid",
				       i, len);
		snprintf(field, sizeof(field), "parameter %zu value", i);
		if (len > 0 && rd_bytes(&r, (size_t)len, &data, field) < 0)
			return -1;
	}
	out->params.p = r.p + start;
	out->params.left = r.pos - start;
	if (rd_formats(&r, &out->result_formats, "result format count",
		       "result format") < 0 ||
	    rd_end(&r) < 0)
		return -1;
	return 0;
}

static int parse_target(const struct pgp_msg *m, char type, const char *what,
			struct pgp_target *out, struct pgha_err *err)
{
	struct rd r;
	uint8_t kind;
	if (rd_type(m, type, what, err) < 0)
		return -1;
	rd_msg(&r, m, what, err);
	if (rd_u8(&r, &kind, "target kind") < 0)
		return -1;
	if (kind != 'S' && kind != 'P')
		return err_set(err, "%s message: target kind 0x%02x is not 'S' or 'P'", what,
			       (unsigned)kind);
	out->kind = (char)kind;
	if (rd_str(&r, &out->name, kind == 'S' ? "statement name" : "portal name") < 0 ||
	    rd_end(&r) < 0)
		return -1;
	return 0;
}

int pgp_parse_describe(const struct pgp_msg *m, struct pgp_target *out, struct pgha_err *err)
{
	return parse_target(m, 'D', "Describe", out, err);
}

int pgp_parse_close(const struct pgp_msg *m, struct pgp_target *out, struct pgha_err *err)
{
	return parse_target(m, 'C', "Close", out, err);
}

int pgp_parse_execute(const struct pgp_msg *m, struct pgp_execute *out, struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'E', "Execute", err) < 0)
		return -1;
	rd_msg(&r, m, "Execute", err);
	if (rd_str(&r, &out->portal, "portal name") < 0 ||
	    rd_i32(&r, &out->max_rows, "max rows") < 0 ||
	    rd_end(&r) < 0)
		return -1;
	return 0;
}

int pgp_parse_password(const struct pgp_msg *m, const char **password, struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'p', "PasswordMessage", err) < 0)
		return -1;
	rd_msg(&r, m, "PasswordMessage", err);
	if (rd_str(&r, password, "password") < 0 || rd_end(&r) < 0)
		return -1;
	return 0;
}

int pgp_parse_sasl_initial_response(const struct pgp_msg *m, struct pgp_sasl_initial *out,
				    struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'p', "SASLInitialResponse", err) < 0)
		return -1;
	rd_msg(&r, m, "SASLInitialResponse", err);
	if (rd_str(&r, &out->mech, "mechanism") < 0 ||
	    rd_i32(&r, &out->data_len, "data length") < 0)
		return -1;
	if (out->mech[0] == '\0')
		return err_set(err, "SASLInitialResponse message: mechanism: empty name");
	if (out->data_len < -1)
		return err_set(err, "SASLInitialResponse message: data length %d is invalid",
			       out->data_len);
	out->data = NULL;
	if (out->data_len >= 0 &&
	    rd_bytes(&r, (size_t)out->data_len, &out->data, "data") < 0)
		return -1;
	return rd_end(&r);
}

int pgp_parse_sasl_response(const struct pgp_msg *m, const uint8_t **data, size_t *len,
			    struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'p', "SASLResponse", err) < 0)
		return -1;
	rd_msg(&r, m, "SASLResponse", err);
	*len = rd_left(&r);
	return rd_bytes(&r, *len, data, "data");
}

int pgp_parse_empty(const struct pgp_msg *m, char type, struct pgha_err *err)
{
	if (m->type != type)
		return err_set(err, "message type 0x%02x, expected '%c'",
			       (unsigned)(unsigned char)m->type, type);
	if (m->body_len != 0)
		return err_set(err, "message '%c': %zu bytes of body, expected none", type,
			       m->body_len);
	return 0;
}
