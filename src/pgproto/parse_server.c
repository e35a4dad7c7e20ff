/*
 * parse_server.c — parsers for the messages a server (backend) sends.
 */
#include "pgproto/pgproto.h"

#include <stdio.h>

#include "pgproto/internal.h"

static void rd_msg(struct rd *r, const struct pgp_msg *m, const char *what,
		   struct pgha_err *err)
{
	rd_init(r, m->body, m->body_len, what, err);
}

int pgp_parse_auth(const struct pgp_msg *m, struct pgp_auth *out, struct pgha_err *err)
{
	struct rd r;
	const uint8_t *salt;
	if (rd_type(m, 'R', "Authentication", err) < 0)
		return -1;
	rd_msg(&r, m, "Authentication", err);
	memset(out, 0, sizeof(*out));
	if (rd_i32(&r, &out->code, "request code") < 0)
		return -1;
	switch (out->code) {
	case PGP_AUTH_OK:
	case PGP_AUTH_KERBEROS_V5:
	case PGP_AUTH_CLEARTEXT:
	case PGP_AUTH_GSS:
	case PGP_AUTH_SSPI:
		break;
	case PGP_AUTH_MD5:
		if (rd_bytes(&r, 4, &salt, "MD5 salt") < 0)
			return -1;
		memcpy(out->md5_salt, salt, 4);
		break;
	case PGP_AUTH_SASL: {
		size_t start = r.pos;
		for (;;) {
			const char *mech;
			if (rd_str(&r, &mech, "SASL mechanism list") < 0)
				return -1;
			if (mech[0] == '\0')
				break;
			out->n_mechs++;
		}
		if (out->n_mechs == 0)
			return err_set(err, "Authentication message: SASL mechanism list is empty");
		out->mechs.p = r.p + start;
		out->mechs.left = r.pos - 1 - start; /* without the terminator */
		break;
	}
	case PGP_AUTH_GSS_CONTINUE:
	case PGP_AUTH_SASL_CONTINUE:
	case PGP_AUTH_SASL_FINAL:
		out->data_len = rd_left(&r);
		if (rd_bytes(&r, out->data_len, &out->data, "data") < 0)
			return -1;
		break;
	default:
		return err_set(err, "Authentication message: unknown request code %d", out->code);
	}
	return rd_end(&r);
}

int pgp_parse_parameter_status(const struct pgp_msg *m, struct pgp_param *out,
			       struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'S', "ParameterStatus", err) < 0)
		return -1;
	rd_msg(&r, m, "ParameterStatus", err);
	if (rd_str(&r, &out->name, "name") < 0 || rd_str(&r, &out->value, "value") < 0)
		return -1;
	if (out->name[0] == '\0')
		return err_set(err, "ParameterStatus message: name: empty");
	return rd_end(&r);
}

int pgp_parse_backend_key_data(const struct pgp_msg *m, struct pgp_backend_key *out,
			       struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'K', "BackendKeyData", err) < 0)
		return -1;
	rd_msg(&r, m, "BackendKeyData", err);
	if (rd_i32(&r, &out->pid, "process ID") < 0)
		return -1;
	out->key_len = rd_left(&r);
	if (out->key_len < PGP_CANCEL_KEY_MIN || out->key_len > PGP_CANCEL_KEY_MAX)
		return err_set(err, "BackendKeyData message: secret key: %zu bytes, must be %d..%d",
			       out->key_len, PGP_CANCEL_KEY_MIN, PGP_CANCEL_KEY_MAX);
	return rd_bytes(&r, out->key_len, &out->key, "secret key");
}

int pgp_parse_ready_for_query(const struct pgp_msg *m, char *status, struct pgha_err *err)
{
	struct rd r;
	uint8_t s;
	if (rd_type(m, 'Z', "ReadyForQuery", err) < 0)
		return -1;
	rd_msg(&r, m, "ReadyForQuery", err);
	if (rd_u8(&r, &s, "transaction status") < 0)
		return -1;
	if (s != 'I' && s != 'T' && s != 'E')
		return err_set(err, "ReadyForQuery message: transaction status 0x%02x is not "
			       "'I', 'T' or 'E'", (unsigned)s);
	if (rd_end(&r) < 0)
		return -1;
	*status = (char)s;
	return 0;
}

static bool sqlstate_ok(const char *s)
{
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return s[5] == '\0';
}

int pgp_parse_notice(const struct pgp_msg *m, struct pgp_notice *out, struct pgha_err *err)
{
	const char *what;
	if (m->type == 'E')
		what = "ErrorResponse";
	else if (m->type == 'N')
		what = "NoticeResponse";
	else
		return err_set(err, "ErrorResponse/NoticeResponse message: type byte is 0x%02x, "
			       "expected 'E' or 'N'", (unsigned)(unsigned char)m->type);
	if (rd_type(m, m->type, what, err) < 0)
		return -1;
	struct rd r;
	rd_msg(&r, m, what, err);
	memset(out, 0, sizeof(*out));
	for (;;) {
		uint8_t code;
		const char *val;
		char field[32];
		if (rd_u8(&r, &code, "field code") < 0)
			return -1;
		if (code == 0)
			break;
		snprintf(field, sizeof(field), "field '%c'", code >= 0x20 && code < 0x7f ? code : '?');
		if (rd_str(&r, &val, field) < 0)
			return -1;
		switch (code) {
		case 'S': out->severity = val; break;
		case 'V': out->severity_nl = val; break;
		case 'C': out->sqlstate = val; break;
		case 'M': out->message = val; break;
		case 'D': out->detail = val; break;
		case 'H': out->hint = val; break;
		default: break; /* the protocol says to ignore unknown fields */
		}
	}
	if (rd_end(&r) < 0)
		return -1;
	if (out->severity == NULL)
		return err_set(err, "%s message: severity (field 'S') missing", what);
	if (out->sqlstate == NULL)
		return err_set(err, "%s message: SQLSTATE (field 'C') missing", what);
	if (!sqlstate_ok(out->sqlstate))
		return err_set(err, "%s message: SQLSTATE \"%.16s\" is not 5 characters [0-9A-Z]",
			       what, out->sqlstate);
	if (out->message == NULL)
		return err_set(err, "%s message: message (field 'M') missing", what);
	return 0;
}

int pgp_parse_command_complete(const struct pgp_msg *m, const char **tag,
			       struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'C', "CommandComplete", err) < 0)
		return -1;
	rd_msg(&r, m, "CommandComplete", err);
	if (rd_str(&r, tag, "command tag") < 0)
		return -1;
	return rd_end(&r);
}

int pgp_parse_parameter_description(const struct pgp_msg *m, struct pgp_array *oids,
				    struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 't', "ParameterDescription", err) < 0)
		return -1;
	rd_msg(&r, m, "ParameterDescription", err);
	if (rd_count16(&r, &oids->n, "parameter count") < 0 ||
	    rd_bytes(&r, 4 * oids->n, &oids->raw, "parameter type OIDs") < 0)
		return -1;
	return rd_end(&r);
}

int pgp_parse_row_description(const struct pgp_msg *m, size_t *n, struct pgp_iter *fields,
			      struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'T', "RowDescription", err) < 0)
		return -1;
	rd_msg(&r, m, "RowDescription", err);
	if (rd_count16(&r, n, "field count") < 0)
		return -1;
	size_t start = r.pos;
	for (size_t i = 0; i < *n; i++) {
		const char *name;
		const uint8_t *attrs;
		char field[48];
		snprintf(field, sizeof(field), "field %zu name", i);
		if (rd_str(&r, &name, field) < 0)
			return -1;
		snprintf(field, sizeof(field), "field %zu attributes", i);
		if (rd_bytes(&r, 18, &attrs, field) < 0)
			return -1;
		int16_t format = (int16_t)be16(attrs + 16);
		if (format != 0 && format != 1)
			return err_set(err, "RowDescription message: field %zu: format code %d "
				       "is not 0 or 1", i, format);
	}
	if (rd_end(&r) < 0)
		return -1;
	fields->p = r.p + start;
	fields->left = r.pos - start;
	return 0;
}

int pgp_parse_data_row(const struct pgp_msg *m, size_t *n, struct pgp_iter *values,
		       struct pgha_err *err)
{
	struct rd r;
	if (rd_type(m, 'D', "DataRow", err) < 0)
		return -1;
	rd_msg(&r, m, "DataRow", err);
	if (rd_count16(&r, n, "column count") < 0)
		return -1;
	size_t start = r.pos;
	for (size_t i = 0; i < *n; i++) {
		int32_t len;
		const uint8_t *data;
		char field[48];
		snprintf(field, sizeof(field), "column %zu length", i);
		if (rd_i32(&r, &len, field) < 0)
			return -1;
		if (len < -1)
			return err_set(err, "DataRow message: column %zu: length %d is invalid",
				       i, len);
		snprintf(field, sizeof(field), "column %zu value", i);
		if (len > 0 && rd_bytes(&r, (size_t)len, &data, field) < 0)
			return -1;
	}
	if (rd_end(&r) < 0)
		return -1;
	values->p = r.p + start;
	values->left = r.pos - start;
	return 0;
}

int pgp_parse_negotiate_protocol_version(const struct pgp_msg *m, struct pgp_negotiate *out,
					 struct pgha_err *err)
{
	struct rd r;
	int32_t version, count;
	if (rd_type(m, 'v', "NegotiateProtocolVersion", err) < 0)
		return -1;
	rd_msg(&r, m, "NegotiateProtocolVersion", err);
	if (rd_i32(&r, &version, "protocol version") < 0 ||
	    rd_i32(&r, &count, "option count") < 0)
		return -1;
	if ((uint32_t)version >> 16 != PGP_PROTO_MAJOR)
		return err_set(err, "NegotiateProtocolVersion message: protocol version %u.%u "
			       "is not 3.x", (uint32_t)version >> 16, (uint32_t)version & 0xffff);
	if (count < 0)
		return err_set(err, "NegotiateProtocolVersion message: option count %d is negative",
			       count);
	size_t start = r.pos;
	for (int32_t i = 0; i < count; i++) {
		const char *opt;
		if (rd_str(&r, &opt, "option name") < 0)
			return -1;
	}
	if (rd_end(&r) < 0)
		return -1;
	out->newest_minor = (uint32_t)version & 0xffff;
	out->n_unrecognized = (size_t)count;
	out->unrecognized.p = r.p + start;
	out->unrecognized.left = r.pos - start;
	return 0;
}
