/*
 * frame.c — typed message framing, startup packet decoding, message
 * classification for the pooler.
 */
#include "pgproto/pgproto.h"

#include <string.h>

#include "pgproto/internal.h"

/* ---------------------------------------------------------------- framing */

int pgp_frame(const void *buf, size_t len, size_t max_len, struct pgp_msg *out,
	      struct pgha_err *err)
{
	const uint8_t *b = buf;
	if (max_len == 0)
		max_len = PGP_MAX_MSG_DEFAULT;
	if (len < 5)
		return PGP_NEED_MORE;
	uint32_t mlen = be32(b + 1);
	if (mlen < 4)
		return err_set(err, "message type 0x%02x: length %u is less than 4",
			       (unsigned)b[0], mlen);
	if (mlen > max_len)
		return err_set(err, "message type 0x%02x: length %u exceeds the limit of %zu bytes",
			       (unsigned)b[0], mlen, max_len);
	size_t total = (size_t)mlen + 1;
	if (len < total)
		return PGP_NEED_MORE;
	out->type = (char)b[0];
	out->body = b + 5;
	out->body_len = (size_t)mlen - 4;
	out->total_len = total;
	return PGP_OK;
}

/* -------------------------------------------------------- startup packets */

enum known_key { KEY_OTHER = -1, KEY_USER, KEY_DATABASE, KEY_APPNAME, KEY_OPTIONS,
		 KEY_REPLICATION, KEY_COUNT };

static const char *const known_keys[KEY_COUNT] = {
	"user", "database", "application_name", "options", "replication",
};

static int known_key(const char *name)
{
	for (int i = 0; i < KEY_COUNT; i++)
		if (strcmp(name, known_keys[i]) == 0)
			return i;
	return KEY_OTHER;
}

/*
 * The parameter list of a StartupMessage: body[0..len) (after the code).
 * Pairs of strings, then an empty key that must be the last byte.
 */
static int decode_params(const uint8_t *body, size_t len, struct pgp_startup *out,
			 struct pgha_err *err)
{
	const char *known[KEY_COUNT] = {NULL};
	struct rd r;
	rd_init(&r, body, len, "StartupMessage", err);
	if (len == 0)
		return err_set(err, "StartupMessage: no parameters and no terminator "
			       "(user is required)");
	if (body[len - 1] != '\0')
		return err_set(err, "StartupMessage: last string is not NUL-terminated "
			       "(missing terminator)");
	size_t n_other = 0;
	const char *last_key = NULL;
	for (;;) {
		const char *key = NULL, *val = NULL;
		if (rd_left(&r) == 0) {
			if (last_key != NULL)
				return err_set(err, "StartupMessage: missing terminator after "
					       "parameter \"%.64s\" (or an odd number of strings)",
					       last_key);
			return err_set(err, "StartupMessage: missing terminator");
		}
		size_t key_pos = r.pos;
		if (rd_str(&r, &key, "parameter name") < 0)
			return -1;
		if (key[0] == '\0') {
			if (rd_left(&r) != 0)
				return err_set(err, "StartupMessage: %zu bytes after the terminator",
					       rd_left(&r));
			out->params.p = body;
			out->params.left = key_pos;
			break;
		}
		if (rd_left(&r) == 0)
			return err_set(err, "StartupMessage: parameter \"%.64s\" has no value "
				       "(odd number of strings, missing terminator)", key);
		if (rd_str(&r, &val, "parameter value") < 0)
			return -1;
		int k = known_key(key);
		if (k == KEY_OTHER) {
			n_other++;
		} else {
			if (known[k] != NULL)
				return err_set(err, "StartupMessage: duplicate parameter \"%s\"", key);
			known[k] = val;
		}
		last_key = key;
	}
	if (known[KEY_USER] == NULL || known[KEY_USER][0] == '\0')
		return err_set(err, "StartupMessage: no user name (parameter \"user\" is %s)",
			       known[KEY_USER] == NULL ? "missing" : "empty");
	out->user = known[KEY_USER];
	out->database = known[KEY_DATABASE] != NULL && known[KEY_DATABASE][0] != '\0'
				? known[KEY_DATABASE] : known[KEY_USER];
	out->application_name = known[KEY_APPNAME];
	out->options = known[KEY_OPTIONS];
	out->replication = known[KEY_REPLICATION];
	out->n_params = n_other;
	return 0;
}

int pgp_decode_startup(const void *buf, size_t len, struct pgp_startup *out,
		       struct pgha_err *err)
{
	const uint8_t *b = buf;
	memset(out, 0, sizeof(*out));
	if (len < 4)
		return PGP_NEED_MORE;
	uint32_t plen = be32(b);
	if (plen < PGP_STARTUP_MIN_LEN || plen > PGP_STARTUP_MAX_LEN)
		return err_set(err, "startup packet: length %u is outside %d..%d", plen,
			       PGP_STARTUP_MIN_LEN, PGP_STARTUP_MAX_LEN);
	if (len < plen)
		return PGP_NEED_MORE;
	uint32_t code = be32(b + 4);
	out->total_len = plen;
	switch (code) {
	case PGP_CODE_SSL:
	case PGP_CODE_GSSENC: {
		const char *what = code == PGP_CODE_SSL ? "SSLRequest" : "GSSENCRequest";
		if (plen != 8)
			return err_set(err, "%s: length is %u, must be 8", what, plen);
		out->kind = code == PGP_CODE_SSL ? PGP_SSL_REQUEST : PGP_GSSENC_REQUEST;
		return PGP_OK;
	}
	case PGP_CODE_CANCEL: {
		size_t key_len = plen < 12 ? 0 : plen - 12;
		if (plen < 12 || key_len < PGP_CANCEL_KEY_MIN || key_len > PGP_CANCEL_KEY_MAX)
			return err_set(err, "CancelRequest: length is %u, must be %d..%d "
				       "(pid + %d..%d key bytes)", plen,
				       12 + PGP_CANCEL_KEY_MIN, 12 + PGP_CANCEL_KEY_MAX,
				       PGP_CANCEL_KEY_MIN, PGP_CANCEL_KEY_MAX);
		out->kind = PGP_CANCEL_REQUEST;
		out->cancel_pid = (int32_t)be32(b + 8);
		out->cancel_key = b + 12;
		out->cancel_key_len = key_len;
		return PGP_OK;
	}
	default:
		break;
	}
	unsigned major = code >> 16, minor = code & 0xffff;
	if (major == 1234)
		return err_set(err, "startup packet: unknown request code %u.%u", major, minor);
	if (major != PGP_PROTO_MAJOR)
		return err_set(err, "startup packet: unsupported protocol version %u.%u "
			       "(only 3.x)", major, minor);
	out->kind = PGP_STARTUP_MESSAGE;
	out->proto_minor = minor;
	if (decode_params(b + 8, plen - 8, out, err) < 0) {
		memset(out, 0, sizeof(*out));
		return PGP_ERROR;
	}
	return PGP_OK;
}

/* Next raw pair; the region was validated by decode_params. */
static bool next_pair(struct pgp_iter *it, struct pgp_param *out)
{
	const char *k = pgp_next_string(it);
	if (k == NULL)
		return false;
	const char *v = pgp_next_string(it);
	if (v == NULL)
		return false;
	out->name = k;
	out->value = v;
	return true;
}

bool pgp_startup_next_param(struct pgp_iter *it, struct pgp_param *out)
{
	struct pgp_param p;
	while (next_pair(it, &p)) {
		if (known_key(p.name) == KEY_OTHER) {
			*out = p;
			return true;
		}
	}
	return false;
}

bool pgp_is_protocol_option(const char *name)
{
	return strncmp(name, "_pq_.", 5) == 0;
}

/* --------------------------------------------------------------- iterators */

const char *pgp_next_string(struct pgp_iter *it)
{
	if (it->p == NULL || it->left == 0)
		return NULL;
	const uint8_t *nul = memchr(it->p, '\0', it->left);
	if (nul == NULL) {
		it->left = 0;
		return NULL;
	}
	const char *s = (const char *)it->p;
	size_t used = (size_t)(nul - it->p) + 1;
	it->p += used;
	it->left -= used;
	return s;
}

bool pgp_next_value(struct pgp_iter *it, struct pgp_value *out)
{
	if (it->p == NULL || it->left < 4)
		return false;
	int32_t len = (int32_t)be32(it->p);
	if (len < -1 || (len >= 0 && (size_t)len > it->left - 4)) {
		it->left = 0;
		return false;
	}
	out->len = len;
	out->data = len < 0 ? NULL : it->p + 4;
	size_t used = 4 + (len < 0 ? 0 : (size_t)len);
	it->p += used;
	it->left -= used;
	return true;
}

bool pgp_next_field(struct pgp_iter *it, struct pgp_field *out)
{
	struct pgp_iter save = *it;
	const char *name = pgp_next_string(it);
	if (name == NULL || it->left < 18) {
		*it = save;
		it->left = 0;
		return false;
	}
	const uint8_t *p = it->p;
	out->name = name;
	out->table_oid = be32(p);
	out->attnum = (int16_t)be16(p + 4);
	out->type_oid = be32(p + 6);
	out->typlen = (int16_t)be16(p + 10);
	out->typmod = (int32_t)be32(p + 12);
	out->format = (int16_t)be16(p + 16);
	it->p += 18;
	it->left -= 18;
	return true;
}

uint32_t pgp_array_u32(const struct pgp_array *a, size_t i)
{
	return i < a->n ? be32(a->raw + 4 * i) : 0;
}

int16_t pgp_array_i16(const struct pgp_array *a, size_t i)
{
	return i < a->n ? (int16_t)be16(a->raw + 2 * i) : 0;
}

/* ---------------------------------------------------------------- helpers */

enum pgp_client_kind pgp_client_kind(char type)
{
	switch (type) {
	case 'Q': return PGP_CLIENT_QUERY;
	case 'P': case 'B': case 'D': case 'E': case 'C': return PGP_CLIENT_EXTENDED;
	case 'S': return PGP_CLIENT_SYNC;
	case 'H': return PGP_CLIENT_FLUSH;
	case 'F': return PGP_CLIENT_FUNCTION;
	case 'd': case 'c': case 'f': return PGP_CLIENT_COPY;
	case 'X': return PGP_CLIENT_TERMINATE;
	case 'p': return PGP_CLIENT_AUTH;
	default: return PGP_CLIENT_UNKNOWN;
	}
}

bool pgp_rfq_is_idle(char status)
{
	return status == 'I';
}

const char *pgp_client_type_name(char type)
{
	switch (type) {
	case 'Q': return "Query";
	case 'P': return "Parse";
	case 'B': return "Bind";
	case 'D': return "Describe";
	case 'E': return "Execute";
	case 'C': return "Close";
	case 'S': return "Sync";
	case 'H': return "Flush";
	case 'F': return "FunctionCall";
	case 'd': return "CopyData";
	case 'c': return "CopyDone";
	case 'f': return "CopyFail";
	case 'X': return "Terminate";
	case 'p': return "PasswordMessage";
	default: return "unknown";
	}
}

const char *pgp_server_type_name(char type)
{
	switch (type) {
	case 'R': return "Authentication";
	case 'S': return "ParameterStatus";
	case 'K': return "BackendKeyData";
	case 'Z': return "ReadyForQuery";
	case 'E': return "ErrorResponse";
	case 'N': return "NoticeResponse";
	case 'A': return "NotificationResponse";
	case 'C': return "CommandComplete";
	case 'I': return "EmptyQueryResponse";
	case 'T': return "RowDescription";
	case 'D': return "DataRow";
	case 't': return "ParameterDescription";
	case 'n': return "NoData";
	case '1': return "ParseComplete";
	case '2': return "BindComplete";
	case '3': return "CloseComplete";
	case 's': return "PortalSuspended";
	case 'G': return "CopyInResponse";
	case 'H': return "CopyOutResponse";
	case 'W': return "CopyBothResponse";
	case 'd': return "CopyData";
	case 'c': return "CopyDone";
	case 'V': return "FunctionCallResponse";
	case 'v': return "NegotiateProtocolVersion";
	default: return "unknown";
	}
}
