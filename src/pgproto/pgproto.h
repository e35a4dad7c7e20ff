/*
 * pgproto.h — the PostgreSQL frontend/backend protocol (v3.x), without I/O.
 *
 * Everything here works on byte buffers the caller owns; nothing reads a
 * socket, allocates (except to grow a struct strbuf) or keeps state between
 * calls, so each function can be fed arbitrary bytes (see tests/fuzz/).
 *
 *   framing   pgp_frame()            one typed message: Byte1 type, Int32 length
 *                                    (counting itself), body
 *             pgp_decode_startup()   the untyped first packet of a connection:
 *                                    SSLRequest, GSSENCRequest, CancelRequest,
 *                                    StartupMessage 3.x
 *   builders  pgp_build_*()          append one whole message to a strbuf
 *   parsers   pgp_parse_*()          validate one framed message completely
 *   helpers   pgp_client_kind(), pgp_rfq_is_idle(), pgp_*_type_name()
 *
 * Zero copy: decoded and parsed results point into the caller's buffer and
 * are valid only while it is. Every string they return was checked to be
 * NUL-terminated inside the message, so it is a proper C string. Variable-size
 * lists (SASL mechanisms, DataRow values, RowDescription fields, Bind
 * parameters, startup parameters) are walked with a struct pgp_iter that the
 * parser hands back after validating the whole list; iterating never fails on
 * a list a parser accepted.
 *
 * Errors: functions that can fail return PGP_ERROR (-1) and fill a struct
 * pgha_err with "<what> message: <field>: <problem>". A parser never reads
 * outside [body, body + body_len) and rejects trailing bytes.
 *
 * Direction matters: several type bytes mean different things from a client
 * and from a server ('D' Describe / DataRow, 'C' Close / CommandComplete,
 * 'E' Execute / ErrorResponse, 'S' Sync / ParameterStatus), and 'p' is a
 * PasswordMessage, SASLInitialResponse or SASLResponse depending on the
 * authentication exchange in progress. The caller picks the parser.
 */
#ifndef PGHA_PGPROTO_H
#define PGHA_PGPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strbuf.h"

/* ------------------------------------------------------------- constants */

#define PGP_MAX_MSG_DEFAULT   (1024u * 1024u) /* typed message length limit */
#define PGP_STARTUP_MIN_LEN   8               /* startup packet length limits */
#define PGP_STARTUP_MAX_LEN   10000
#define PGP_CANCEL_KEY_MIN    4               /* cancel key bytes (4 in 3.0) */
#define PGP_CANCEL_KEY_MAX    256

#define PGP_CODE_CANCEL       80877102        /* 1234 << 16 | 5678 */
#define PGP_CODE_SSL          80877103        /* 1234 << 16 | 5679 */
#define PGP_CODE_GSSENC       80877104        /* 1234 << 16 | 5680 */
#define PGP_PROTO_MAJOR       3
#define PGP_PROTO(major, minor) (((uint32_t)(major) << 16) | (uint32_t)(minor))

/* Authentication request codes ('R' message subtype). */
enum pgp_auth_code {
	PGP_AUTH_OK = 0,
	PGP_AUTH_KERBEROS_V5 = 2,
	PGP_AUTH_CLEARTEXT = 3,
	PGP_AUTH_MD5 = 5,
	PGP_AUTH_GSS = 7,
	PGP_AUTH_GSS_CONTINUE = 8,
	PGP_AUTH_SSPI = 9,
	PGP_AUTH_SASL = 10,
	PGP_AUTH_SASL_CONTINUE = 11,
	PGP_AUTH_SASL_FINAL = 12,
};

enum pgp_status {
	PGP_ERROR = -1,
	PGP_OK = 0,
	PGP_NEED_MORE = 1, /* the buffer holds only a prefix: read more, call again */
};

/* --------------------------------------------------------- common types */

/* One framed typed message. body points into the caller's buffer. */
struct pgp_msg {
	char type;
	const uint8_t *body;
	size_t body_len;   /* length field - 4 */
	size_t total_len;  /* 1 + length field: bytes to consume from the buffer */
};

/* Cursor over a list a parser validated; see the pgp_next_*() functions. */
struct pgp_iter {
	const uint8_t *p;
	size_t left;
};

struct pgp_param {
	const char *name;
	const char *value;
};

/* A parameter/column value; len == -1 (data NULL) is SQL NULL. */
struct pgp_value {
	const uint8_t *data;
	int32_t len;
};

/* A packed big-endian array (Parse/ParameterDescription OIDs, Bind formats). */
struct pgp_array {
	const uint8_t *raw;
	size_t n;
};

/* ---------------------------------------------------------------- framing */

/*
 * Recognise one typed message at the start of buf[0..len). max_len bounds the
 * length field (which counts itself, not the type byte); 0 means
 * PGP_MAX_MSG_DEFAULT. PGP_OK fills *out; PGP_NEED_MORE when buf holds an
 * incomplete message (a bad length is reported as soon as the 5-byte header
 * is there); PGP_ERROR for a length < 4 or > max_len.
 */
int pgp_frame(const void *buf, size_t len, size_t max_len, struct pgp_msg *out,
	      struct pgha_err *err);

/* ------------------------------------------------------ startup packets */

enum pgp_startup_kind {
	PGP_SSL_REQUEST = 1,
	PGP_GSSENC_REQUEST,
	PGP_CANCEL_REQUEST,
	PGP_STARTUP_MESSAGE,
};

struct pgp_startup {
	enum pgp_startup_kind kind;
	size_t total_len;       /* bytes the packet took (its length field) */

	/* PGP_CANCEL_REQUEST (key 4..256 bytes; 4 in protocol 3.0) */
	int32_t cancel_pid;
	const uint8_t *cancel_key;
	size_t cancel_key_len;

	/* PGP_STARTUP_MESSAGE: protocol 3.<proto_minor> */
	unsigned proto_minor;
	const char *user;             /* never NULL nor empty */
	const char *database;         /* the user name when absent or empty */
	const char *application_name; /* NULL when absent */
	const char *options;          /* NULL when absent */
	const char *replication;      /* NULL when absent */
	size_t n_params;              /* other parameters, see below */
	struct pgp_iter params;       /* walk with pgp_startup_next_param() */
};

/*
 * Decode the untyped packet at the start of buf[0..len): Int32 length, Int32
 * code, payload. PGP_NEED_MORE until the whole packet is there (a bad length
 * is reported from the first 4 bytes on). The length must be 8..10000;
 * SSLRequest/GSSENCRequest are exactly 8; protocol major must be 3. Bytes after
 * the packet are not looked at: after SSLRequest/GSSENCRequest the caller must
 * refuse any (they would bypass the encryption handshake).
 */
int pgp_decode_startup(const void *buf, size_t len, struct pgp_startup *out,
		       struct pgha_err *err);

/*
 * The next StartupMessage parameter other than user, database,
 * application_name, options and replication, in packet order (protocol
 * options named "_pq_.*" included). false at the end.
 */
bool pgp_startup_next_param(struct pgp_iter *it, struct pgp_param *out);

/* Is this startup parameter a protocol option ("_pq_." prefix)? */
bool pgp_is_protocol_option(const char *name);

/* --------------------------------------------------------------- builders */
/*
 * Each appends one complete message to sb. Strings are C strings (a protocol
 * string cannot hold NUL). Builders abort() on impossible sizes (a count over
 * 65535, a cancel key over 256 bytes, a message over 1 GiB): those are caller
 * bugs, not input errors.
 */

/* Backend (server -> client) messages. */
/* ErrorResponse 'E': fields S and V (severity), C, M, then D/H when non-NULL. */
void pgp_build_error(struct strbuf *sb, const char *severity, const char *sqlstate,
		     const char *message, const char *detail, const char *hint);
/* NoticeResponse 'N': same fields as pgp_build_error. */
void pgp_build_notice(struct strbuf *sb, const char *severity, const char *sqlstate,
		      const char *message, const char *detail, const char *hint);
void pgp_build_ready_for_query(struct strbuf *sb, char status); /* 'I' 'T' 'E' */
void pgp_build_auth_ok(struct strbuf *sb);
void pgp_build_auth_cleartext(struct strbuf *sb);
void pgp_build_auth_md5(struct strbuf *sb, const uint8_t salt[4]);
/* AuthenticationSASL: mechanism names, in preference order. */
void pgp_build_auth_sasl(struct strbuf *sb, const char *const *mechs, size_t n);
void pgp_build_auth_sasl_continue(struct strbuf *sb, const void *data, size_t len);
void pgp_build_auth_sasl_final(struct strbuf *sb, const void *data, size_t len);
void pgp_build_parameter_status(struct strbuf *sb, const char *name, const char *value);
void pgp_build_backend_key_data(struct strbuf *sb, int32_t pid, const void *key,
				size_t key_len);
void pgp_build_command_complete(struct strbuf *sb, const char *tag);
void pgp_build_empty_query_response(struct strbuf *sb);
/* RowDescription of n text columns (type 25, text format), as an admin console sends. */
void pgp_build_row_description(struct strbuf *sb, const char *const *names, size_t n);
/* DataRow of n text values; a NULL pointer is SQL NULL. */
void pgp_build_data_row(struct strbuf *sb, const char *const *values, size_t n);
void pgp_build_parameter_description(struct strbuf *sb, const uint32_t *oids, size_t n);
/* NegotiateProtocolVersion 'v': newest minor supported + unrecognised options. */
void pgp_build_negotiate_protocol_version(struct strbuf *sb, unsigned newest_minor,
					  const char *const *unrecognized, size_t n);

/* Frontend (client -> server) messages. */
/* StartupMessage, protocol 3.<minor>, with n parameters (user among them). */
void pgp_build_startup(struct strbuf *sb, unsigned minor, const struct pgp_param *params,
		       size_t n);
void pgp_build_ssl_request(struct strbuf *sb);
void pgp_build_cancel_request(struct strbuf *sb, int32_t pid, const void *key,
			      size_t key_len);
void pgp_build_password(struct strbuf *sb, const char *password);
/* SASLInitialResponse; data == NULL sends length -1 (no initial response). */
void pgp_build_sasl_initial_response(struct strbuf *sb, const char *mech,
				     const void *data, size_t len);
void pgp_build_sasl_response(struct strbuf *sb, const void *data, size_t len);
void pgp_build_query(struct strbuf *sb, const char *sql);
void pgp_build_parse(struct strbuf *sb, const char *stmt, const char *query,
		     const uint32_t *param_oids, size_t n);
/* Bind with formats as given; params[i].len == -1 (or data NULL) is NULL. */
void pgp_build_bind(struct strbuf *sb, const char *portal, const char *stmt,
		    const int16_t *param_formats, size_t n_param_formats,
		    const struct pgp_value *params, size_t n_params,
		    const int16_t *result_formats, size_t n_result_formats);
void pgp_build_execute(struct strbuf *sb, const char *portal, int32_t max_rows);
void pgp_build_describe(struct strbuf *sb, char kind, const char *name); /* 'S'/'P' */
void pgp_build_close(struct strbuf *sb, char kind, const char *name);    /* 'S'/'P' */
void pgp_build_sync(struct strbuf *sb);
void pgp_build_flush(struct strbuf *sb);
void pgp_build_terminate(struct strbuf *sb);

/* ------------------------------------------------------------- parsers */
/*
 * Each checks m->type, validates the whole body, fills *out (pointers into
 * the body) and returns 0, or returns PGP_ERROR naming the message and field.
 */

/* Client messages. */
struct pgp_parse_msg {
	const char *stmt;
	const char *query;
	struct pgp_array param_types;   /* pgp_array_u32() */
};
struct pgp_bind {
	const char *portal;
	const char *stmt;
	struct pgp_array param_formats; /* pgp_array_i16(); each 0 or 1 */
	size_t n_params;
	struct pgp_iter params;         /* pgp_next_value() */
	struct pgp_array result_formats;/* pgp_array_i16(); each 0 or 1 */
};
struct pgp_target {                     /* Describe / Close */
	char kind;                      /* 'S' statement or 'P' portal */
	const char *name;
};
struct pgp_execute {
	const char *portal;
	int32_t max_rows;               /* <= 0: no limit */
};
struct pgp_sasl_initial {
	const char *mech;
	const uint8_t *data;            /* NULL when the length was -1 */
	int32_t data_len;               /* -1: no initial response */
};

int pgp_parse_query(const struct pgp_msg *m, const char **sql, struct pgha_err *err);
int pgp_parse_parse(const struct pgp_msg *m, struct pgp_parse_msg *out, struct pgha_err *err);
int pgp_parse_bind(const struct pgp_msg *m, struct pgp_bind *out, struct pgha_err *err);
int pgp_parse_describe(const struct pgp_msg *m, struct pgp_target *out, struct pgha_err *err);
int pgp_parse_close(const struct pgp_msg *m, struct pgp_target *out, struct pgha_err *err);
int pgp_parse_execute(const struct pgp_msg *m, struct pgp_execute *out, struct pgha_err *err);
int pgp_parse_password(const struct pgp_msg *m, const char **password, struct pgha_err *err);
int pgp_parse_sasl_initial_response(const struct pgp_msg *m, struct pgp_sasl_initial *out,
				    struct pgha_err *err);
/* SASLResponse: the whole body is the SASL data. */
int pgp_parse_sasl_response(const struct pgp_msg *m, const uint8_t **data, size_t *len,
			    struct pgha_err *err);
/* A message with an empty body of the given type (Sync, Flush, Terminate,
 * CopyDone, EmptyQueryResponse, ParseComplete...). */
int pgp_parse_empty(const struct pgp_msg *m, char type, struct pgha_err *err);

/* Server messages. */
struct pgp_auth {
	int32_t code;                   /* enum pgp_auth_code */
	uint8_t md5_salt[4];            /* PGP_AUTH_MD5 */
	size_t n_mechs;                 /* PGP_AUTH_SASL: >= 1 */
	struct pgp_iter mechs;          /* pgp_next_string() */
	const uint8_t *data;            /* SASL_CONTINUE/FINAL, GSS_CONTINUE */
	size_t data_len;
};
struct pgp_backend_key {
	int32_t pid;
	const uint8_t *key;             /* 4..256 bytes */
	size_t key_len;
};
struct pgp_notice {                     /* ErrorResponse / NoticeResponse */
	const char *severity;           /* 'S' (possibly localised), required */
	const char *severity_nl;        /* 'V' or NULL (servers before 9.6) */
	const char *sqlstate;           /* 'C', 5 characters [0-9A-Z], required */
	const char *message;            /* 'M', required */
	const char *detail;             /* 'D' or NULL */
	const char *hint;               /* 'H' or NULL */
};
struct pgp_field {                      /* one RowDescription column */
	const char *name;
	uint32_t table_oid;
	int16_t attnum;
	uint32_t type_oid;
	int16_t typlen;
	int32_t typmod;
	int16_t format;
};
struct pgp_negotiate {
	unsigned newest_minor;
	size_t n_unrecognized;
	struct pgp_iter unrecognized;   /* pgp_next_string() */
};

int pgp_parse_auth(const struct pgp_msg *m, struct pgp_auth *out, struct pgha_err *err);
int pgp_parse_parameter_status(const struct pgp_msg *m, struct pgp_param *out,
			       struct pgha_err *err);
int pgp_parse_backend_key_data(const struct pgp_msg *m, struct pgp_backend_key *out,
			       struct pgha_err *err);
int pgp_parse_ready_for_query(const struct pgp_msg *m, char *status, struct pgha_err *err);
/* ErrorResponse 'E' or NoticeResponse 'N'; unknown field codes are skipped. */
int pgp_parse_notice(const struct pgp_msg *m, struct pgp_notice *out, struct pgha_err *err);
int pgp_parse_command_complete(const struct pgp_msg *m, const char **tag,
			       struct pgha_err *err);
int pgp_parse_parameter_description(const struct pgp_msg *m, struct pgp_array *oids,
				    struct pgha_err *err);
/* RowDescription: *n columns, walk them with pgp_next_field(). */
int pgp_parse_row_description(const struct pgp_msg *m, size_t *n, struct pgp_iter *fields,
			      struct pgha_err *err);
/* DataRow: *n values, walk them with pgp_next_value(). */
int pgp_parse_data_row(const struct pgp_msg *m, size_t *n, struct pgp_iter *values,
		       struct pgha_err *err);
int pgp_parse_negotiate_protocol_version(const struct pgp_msg *m, struct pgp_negotiate *out,
					 struct pgha_err *err);

/* Iterating validated lists and arrays (false / NULL at the end). */
const char *pgp_next_string(struct pgp_iter *it);
bool pgp_next_value(struct pgp_iter *it, struct pgp_value *out);
bool pgp_next_field(struct pgp_iter *it, struct pgp_field *out);
uint32_t pgp_array_u32(const struct pgp_array *a, size_t i); /* i < a->n */
int16_t pgp_array_i16(const struct pgp_array *a, size_t i);  /* i < a->n */

/* --------------------------------------------------------------- helpers */

enum pgp_client_kind {
	PGP_CLIENT_UNKNOWN = 0,
	PGP_CLIENT_QUERY,       /* 'Q' simple query: a batch on its own */
	PGP_CLIENT_EXTENDED,    /* 'P' 'B' 'D' 'E' 'C': part of an extended batch */
	PGP_CLIENT_SYNC,        /* 'S': ends an extended batch, server answers 'Z' */
	PGP_CLIENT_FLUSH,       /* 'H': server flushes, no 'Z' */
	PGP_CLIENT_FUNCTION,    /* 'F' FunctionCall: server answers 'Z' */
	PGP_CLIENT_COPY,        /* 'd' CopyData, 'c' CopyDone, 'f' CopyFail */
	PGP_CLIENT_TERMINATE,   /* 'X' */
	PGP_CLIENT_AUTH,        /* 'p' password / SASL / GSS response */
};

/* What a typed message from a client does to the pooler's batch tracking. */
enum pgp_client_kind pgp_client_kind(char type);
/* ReadyForQuery status 'I': no transaction open, the server may be reused. */
bool pgp_rfq_is_idle(char status);
/* Message names for logs ("Query", "Bind"...; "unknown" otherwise). */
const char *pgp_client_type_name(char type);
const char *pgp_server_type_name(char type);

#endif
