/*
 * etcd_codec.c — encode requests for and decode replies from the etcd v3 JSON
 * gateway. Pure functions: text in, text or structs out.
 *
 * What the gateway sends (checked against etcd 3.4):
 * - keys and values are base64 strings;
 * - int64 fields are JSON strings ("revision":"12"), but numbers are accepted
 *   too, since other gateway versions emit them;
 * - fields holding their default value (0, false, "", empty list) are omitted,
 *   so every decoder reads an absent field as its zero value;
 * - errors are {"error":"...","message":"...","code":N} (unary calls) or
 *   {"error":{"grpc_code":N,"message":"...",...}} (inside a stream).
 */
#include "dcs/etcd_codec.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/strbuf.h"

/* ---------------------------------------------------------------- base64 */

char *b64_encode(const void *data, size_t len)
{
	return base64_encode(data, len);
}

/* What Go's encoding/json produces (StdEncoding, padded); anything else is refused. */
char *b64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *out = xmalloc(n / 4 * 3 + 1);
	long got = base64_decode(s, n, (uint8_t *)out, n / 4 * 3);
	if (got < 0) {
		free(out);
		return NULL;
	}
	out[got] = '\0';
	if (len)
		*len = (size_t)got;
	return out;
}

/* ------------------------------------------------------------ key ranges */

/*
 * etcd's prefix convention: increment the last byte that is not 0xff and cut
 * what follows. A prefix of only 0xff bytes (or empty) has no upper bound: the
 * range end is then "\0", which etcd reads as "to the end of the keyspace".
 */
char *etcd_prefix_end(const char *prefix, size_t *len)
{
	size_t n = strlen(prefix);
	while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
		n--;
	if (n == 0) {
		char *z = xcalloc(1, 2);
		*len = 1;
		return z;
	}
	char *end = xstrndup(prefix, n);
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	*len = n;
	return end;
}

/* --------------------------------------------------------------- encoders */

static json_t *json_b64(const void *data, size_t len)
{
	char *s = b64_encode(data, len);
	json_t *j = json_string(s);
	free(s);
	return j;
}

/* int64 fields go out as strings, like the gateway's own replies (and so
 * they survive readers that parse numbers as doubles). */
static json_t *json_i64(int64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return json_string(buf);
}

/* jansson allocates with malloc (pgha never changes its allocator): free() it. */
static char *json_finish(json_t *obj)
{
	char *out = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	return out;
}

/* {"key":..., "range_end":...}: the key plus, for a prefix, its range end. */
static json_t *key_range_obj(const char *key, bool prefix)
{
	json_t *o = json_object();
	if (prefix && key[0] == '\0') {
		/* The empty prefix is every key: etcd wants key "\0", not "". */
		json_object_set_new(o, "key", json_b64("", 1));
	} else {
		json_object_set_new(o, "key", json_b64(key, strlen(key)));
	}
	if (prefix) {
		size_t n;
		char *end = etcd_prefix_end(key, &n);
		json_object_set_new(o, "range_end", json_b64(end, n));
		free(end);
	}
	return o;
}

static json_t *put_obj(const char *key, const char *value, int64_t lease)
{
	json_t *o = json_object();
	json_object_set_new(o, "key", json_b64(key, strlen(key)));
	json_object_set_new(o, "value", json_b64(value, strlen(value)));
	if (lease != 0)
		json_object_set_new(o, "lease", json_i64(lease));
	return o;
}

char *etcd_enc_range(const char *key, bool prefix)
{
	if (key == NULL)
		return NULL;
	return json_finish(key_range_obj(key, prefix));
}

char *etcd_enc_put(const char *key, const char *value, int64_t lease)
{
	if (key == NULL || value == NULL)
		return NULL;
	return json_finish(put_obj(key, value, lease));
}

char *etcd_enc_delete(const char *key, bool prefix)
{
	if (key == NULL)
		return NULL;
	return json_finish(key_range_obj(key, prefix));
}

static const char *cmp_target_name(enum etcd_cmp_target t)
{
	switch (t) {
	case ETCD_CMP_VERSION: return "VERSION";
	case ETCD_CMP_CREATE: return "CREATE";
	case ETCD_CMP_MOD: return "MOD";
	case ETCD_CMP_VALUE: return "VALUE";
	case ETCD_CMP_LEASE: return "LEASE";
	}
	return NULL;
}

/* Name of the Compare field that holds the operand for each target. */
static const char *cmp_field_name(enum etcd_cmp_target t)
{
	switch (t) {
	case ETCD_CMP_VERSION: return "version";
	case ETCD_CMP_CREATE: return "create_revision";
	case ETCD_CMP_MOD: return "mod_revision";
	case ETCD_CMP_VALUE: return "value";
	case ETCD_CMP_LEASE: return "lease";
	}
	return NULL;
}

static const char *cmp_result_name(enum etcd_cmp_result r)
{
	switch (r) {
	case ETCD_CMP_EQUAL: return "EQUAL";
	case ETCD_CMP_NOT_EQUAL: return "NOT_EQUAL";
	case ETCD_CMP_GREATER: return "GREATER";
	case ETCD_CMP_LESS: return "LESS";
	}
	return NULL;
}

static json_t *cmp_obj(const struct etcd_cmp *c)
{
	const char *target = cmp_target_name(c->target);
	const char *result = cmp_result_name(c->result);
	if (c->key == NULL || target == NULL || result == NULL)
		return NULL;
	if (c->target == ETCD_CMP_VALUE && c->value == NULL)
		return NULL;
	json_t *o = json_object();
	json_object_set_new(o, "key", json_b64(c->key, strlen(c->key)));
	json_object_set_new(o, "target", json_string(target));
	json_object_set_new(o, "result", json_string(result));
	if (c->target == ETCD_CMP_VALUE)
		json_object_set_new(o, "value", json_b64(c->value, strlen(c->value)));
	else
		json_object_set_new(o, cmp_field_name(c->target), json_i64(c->number));
	return o;
}

static json_t *op_obj(const struct etcd_op *op)
{
	if (op->key == NULL)
		return NULL;
	json_t *o = json_object();
	switch (op->type) {
	case ETCD_OP_PUT:
		if (op->value == NULL)
			break;
		json_object_set_new(o, "request_put", put_obj(op->key, op->value, op->lease));
		return o;
	case ETCD_OP_DELETE:
		json_object_set_new(o, "request_delete_range", key_range_obj(op->key, op->prefix));
		return o;
	case ETCD_OP_RANGE:
		json_object_set_new(o, "request_range", key_range_obj(op->key, op->prefix));
		return o;
	}
	json_decref(o);
	return NULL;
}

static int append_ops(json_t *req, const char *field, const struct etcd_op *ops, size_t n)
{
	if (n == 0)
		return 0;
	if (ops == NULL)
		return -1;
	json_t *arr = json_array();
	json_object_set_new(req, field, arr);
	for (size_t i = 0; i < n; i++) {
		json_t *o = op_obj(&ops[i]);
		if (o == NULL)
			return -1;
		json_array_append_new(arr, o);
	}
	return 0;
}

/* NULL when an argument is invalid (NULL key, unknown enum value). */
char *etcd_enc_txn(const struct etcd_cmp *cmps, size_t ncmps, const struct etcd_op *success,
		   size_t nsuccess, const struct etcd_op *failure, size_t nfailure)
{
	json_t *req = json_object();
	if (ncmps > 0) {
		if (cmps == NULL)
			goto fail;
		json_t *arr = json_array();
		json_object_set_new(req, "compare", arr);
		for (size_t i = 0; i < ncmps; i++) {
			json_t *o = cmp_obj(&cmps[i]);
			if (o == NULL)
				goto fail;
			json_array_append_new(arr, o);
		}
	}
	if (append_ops(req, "success", success, nsuccess) != 0 ||
	    append_ops(req, "failure", failure, nfailure) != 0)
		goto fail;
	return json_finish(req);
fail:
	json_decref(req);
	return NULL;
}

char *etcd_enc_lease_grant(int64_t ttl_s)
{
	json_t *o = json_object();
	json_object_set_new(o, "TTL", json_i64(ttl_s));
	return json_finish(o);
}

char *etcd_enc_lease_id(int64_t lease_id)
{
	json_t *o = json_object();
	json_object_set_new(o, "ID", json_i64(lease_id));
	return json_finish(o);
}

char *etcd_enc_watch_create(const char *prefix, int64_t start_rev)
{
	if (prefix == NULL)
		return NULL;
	json_t *cr = key_range_obj(prefix, true);
	if (start_rev > 0)
		json_object_set_new(cr, "start_revision", json_i64(start_rev));
	/* Periodic empty responses when the server supports them: cheap liveness. */
	json_object_set_new(cr, "progress_notify", json_true());
	json_t *o = json_object();
	json_object_set_new(o, "create_request", cr);
	return json_finish(o);
}

/* JSON string literal of s, escaped by hand into sb (see etcd_enc_auth). */
static void json_quote_into(struct strbuf *sb, const char *s)
{
	sb_append(sb, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			sb_append(sb, esc, 2);
		} else if (*p < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			sb_append(sb, esc, 6);
		} else {
			sb_append(sb, p, 1);
		}
	}
	sb_append(sb, "\"", 1);
}

/*
 * Built by hand into one buffer sized up front, so the password is never
 * copied into intermediate allocations we cannot wipe (jansson's would be).
 * The caller wipes the returned body (explicit_bzero) before freeing it.
 */
char *etcd_enc_auth(const char *user, const char *password)
{
	if (user == NULL || password == NULL)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	sb_reserve(&sb, 6 * (strlen(user) + strlen(password)) + 64);
	sb_puts(&sb, "{\"name\":");
	json_quote_into(&sb, user);
	sb_puts(&sb, ",\"password\":");
	json_quote_into(&sb, password);
	sb_puts(&sb, "}");
	return sb_steal(&sb);
}

/* ---------------------------------------------------------- decode helpers */

static json_t *parse_object(const char *body, const char *what, struct pgha_err *e)
{
	if (body == NULL) {
		err_set(e, "empty %s reply", what);
		return NULL;
	}
	json_error_t jerr;
	json_t *root = json_loads(body, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		err_set(e, "%s reply is not JSON: %s (line %d column %d)", what, jerr.text, jerr.line,
			jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		err_set(e, "%s reply is not a JSON object", what);
		json_decref(root);
		return NULL;
	}
	return root;
}

/* Parse a decimal int64 in a string, refusing junk and overflow. */
static int parse_i64(const char *s, int64_t *out)
{
	if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* An int64 field: absent or null = 0; a JSON string or integer otherwise. */
static int get_i64(const json_t *obj, const char *field, int64_t *out, const char *what,
		   struct pgha_err *e)
{
	json_t *v = json_object_get(obj, field);
	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && parse_i64(json_string_value(v), out) == 0)
		return 0;
	return err_set(e, "%s: field \"%s\" is not a 64-bit integer", what, field);
}

static int get_bool(const json_t *obj, const char *field, bool *out, const char *what,
		    struct pgha_err *e)
{
	json_t *v = json_object_get(obj, field);
	*out = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return err_set(e, "%s: field \"%s\" is not a boolean", what, field);
	*out = json_is_true(v);
	return 0;
}

/* An object field: absent or null gives NULL (success); another type fails. */
static int get_object(const json_t *obj, const char *field, json_t **out, const char *what,
		      struct pgha_err *e)
{
	json_t *v = json_object_get(obj, field);
	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return err_set(e, "%s: field \"%s\" is not an object", what, field);
	*out = v;
	return 0;
}

static int get_array(const json_t *obj, const char *field, json_t **out, const char *what,
		     struct pgha_err *e)
{
	json_t *v = json_object_get(obj, field);
	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return err_set(e, "%s: field \"%s\" is not an array", what, field);
	*out = v;
	return 0;
}

/*
 * Every real reply carries a header (its cluster_id is never zero, so it is
 * never omitted). Requiring it keeps a stray "{}" from a proxy from reading as
 * "no keys", which to an HA loop would mean "no leader".
 */
static int header_revision(const json_t *obj, int64_t *rev, const char *what, struct pgha_err *e)
{
	json_t *hdr;
	*rev = 0;
	if (get_object(obj, "header", &hdr, what, e) != 0)
		return -1;
	if (hdr == NULL)
		return err_set(e, "%s: reply has no \"header\"", what);
	return get_i64(hdr, "revision", rev, what, e);
}

/* A base64 field into a NUL-terminated copy; absent = "". */
static int get_b64(const json_t *obj, const char *field, char **out, size_t *len,
		   const char *what, struct pgha_err *e)
{
	json_t *v = json_object_get(obj, field);
	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		*out = xstrdup("");
		*len = 0;
		return 0;
	}
	if (!json_is_string(v))
		return err_set(e, "%s: field \"%s\" is not a string", what, field);
	/* strlen() must see the whole string: "QQ==\u0000junk" is not base64. */
	if (strlen(json_string_value(v)) == json_string_length(v))
		*out = b64_decode(json_string_value(v), len);
	if (*out == NULL)
		return err_set(e, "%s: field \"%s\" is not valid base64", what, field);
	return 0;
}

/* ------------------------------------------------------------ etcd errors */

static bool has_any(const char *msg, const char *const *needles)
{
	for (; *needles; needles++)
		if (strstr(msg, *needles) != NULL)
			return true;
	return false;
}

/* gRPC status codes the gateway passes through. */
enum {
	GRPC_CANCELED = 1,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_ABORTED = 10,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNAVAILABLE = 14,
	GRPC_UNAUTHENTICATED = 16,
};

/*
 * Map an etcd error to our codes. The message is checked before the code:
 * etcd reuses codes (InvalidArgument is both "auth failed" and "duplicate
 * key"), but its messages are stable ("etcdserver: ...").
 *   lease not found                          -> ETCD_ENOLEASE
 *   auth / permission problems               -> ETCD_EAUTH
 *   no leader, leader changed, timeouts,
 *   overload, server stopping                -> ETCD_EUNAVAIL (try elsewhere)
 *   other invalid arguments, compaction      -> ETCD_EINVAL
 *   anything else                            -> ETCD_EPROTO
 */
static int map_etcd_error(int64_t code, const char *msg)
{
	static const char *const auth[] = {"authentication", "auth token", "auth store",
					   "permission denied", "user name", "root user",
					   "invalid auth", NULL};
	static const char *const unavail[] = {"no leader", "leader changed", "not leader",
					      "timed out", "timeout", "too many requests",
					      "server stopped", "unhealthy", "not capable",
					      "deadline exceeded", "context canceled",
					      "connection lost", NULL};

	if (strstr(msg, "lease not found") != NULL)
		return ETCD_ENOLEASE;
	if (has_any(msg, auth) || code == GRPC_UNAUTHENTICATED || code == GRPC_PERMISSION_DENIED)
		return ETCD_EAUTH;
	if (has_any(msg, unavail))
		return ETCD_EUNAVAIL;
	switch (code) {
	case GRPC_UNAVAILABLE:
	case GRPC_DEADLINE_EXCEEDED:
	case GRPC_RESOURCE_EXHAUSTED:
	case GRPC_ABORTED:
	case GRPC_CANCELED:
		return ETCD_EUNAVAIL;
	case GRPC_INVALID_ARGUMENT:
	case GRPC_OUT_OF_RANGE:
		return ETCD_EINVAL;
	default:
		return ETCD_EPROTO;
	}
}

/*
 * If root is an error object, set e and return the mapped code; else 0.
 * Shapes: {"error":"msg","message":"msg","code":N} (unary),
 * {"error":{"grpc_code":N,"message":"msg",...}} (streams), and
 * {"code":N,"message":"msg"} (newer gateways). A normal reply carries a
 * "header" or "result" and is never taken for an error.
 */
static int check_error(const json_t *root, struct pgha_err *e)
{
	if (json_object_get(root, "header") != NULL || json_object_get(root, "result") != NULL)
		return 0;
	json_t *err = json_object_get(root, "error");
	json_t *msgv = json_object_get(root, "message");
	json_t *codev = json_object_get(root, "code");

	if (json_is_object(err)) {
		msgv = json_object_get(err, "message");
		codev = json_object_get(err, "grpc_code");
	} else if (json_is_string(err) && !json_is_string(msgv)) {
		msgv = err;
	} else if (err == NULL && !(json_is_integer(codev) && json_is_string(msgv))) {
		return 0;
	} else if (err != NULL && !json_is_string(err)) {
		return 0;
	}
	const char *msg = json_is_string(msgv) ? json_string_value(msgv) : "(no message)";
	int64_t code = json_is_integer(codev) ? (int64_t)json_integer_value(codev) : -1;
	err_set(e, "etcd error: %s (code %" PRId64 ")", msg, code);
	return map_etcd_error(code, msg);
}

int etcd_dec_error(const char *body, struct pgha_err *e)
{
	if (body == NULL)
		return ETCD_OK;
	json_t *root = json_loads(body, 0, NULL);
	int rc = ETCD_OK;
	if (json_is_object(root))
		rc = check_error(root, e);
	json_decref(root);
	return rc;
}

/*
 * Parse a unary reply: a JSON object that is not an error object. Returns
 * ETCD_OK with *root set, or an error code with e set and *root NULL.
 */
static int open_reply(const char *body, const char *what, json_t **root, struct pgha_err *e)
{
	*root = parse_object(body, what, e);
	if (*root == NULL)
		return ETCD_EPROTO;
	int rc = check_error(*root, e);
	if (rc != 0) {
		json_decref(*root);
		*root = NULL;
	}
	return rc;
}

/* ------------------------------------------------------------- key-values */

static void kv_clear(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

static int decode_kv(const json_t *o, struct etcd_kv *kv, const char *what, struct pgha_err *e)
{
	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o))
		return err_set(e, "%s: a kv is not an object", what);
	json_t *k = json_object_get(o, "key");
	if (k == NULL || json_is_null(k))
		return err_set(e, "%s: a kv has no key", what);
	size_t klen;
	if (get_b64(o, "key", &kv->key, &klen, what, e) != 0)
		goto fail;
	/* Keys are C strings in this API; one with a NUL byte cannot be named. */
	if (klen == 0 || strlen(kv->key) != klen) {
		err_set(e, "%s: a kv key is empty or contains a NUL byte", what);
		goto fail;
	}
	if (get_b64(o, "value", &kv->value, &kv->value_len, what, e) != 0 ||
	    get_i64(o, "create_revision", &kv->create_revision, what, e) != 0 ||
	    get_i64(o, "mod_revision", &kv->mod_revision, what, e) != 0 ||
	    get_i64(o, "version", &kv->version, what, e) != 0 ||
	    get_i64(o, "lease", &kv->lease, what, e) != 0)
		goto fail;
	return 0;
fail:
	kv_clear(kv);
	return -1;
}

/* Append every kv of arr (a "kvs" array, may be NULL) to out. */
static int append_kvs(const json_t *arr, struct etcd_kvs *out, const char *what,
		      struct pgha_err *e)
{
	size_t n = arr ? json_array_size(arr) : 0;
	if (n == 0)
		return 0;
	out->kvs = xrealloc(out->kvs, (out->count + n) * sizeof(*out->kvs));
	for (size_t i = 0; i < n; i++) {
		if (decode_kv(json_array_get(arr, i), &out->kvs[out->count], what, e) != 0)
			return -1;
		out->count++;
	}
	return 0;
}

void etcd_kvs_free(struct etcd_kvs *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->count; i++)
		kv_clear(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

const struct etcd_kv *etcd_kvs_find(const struct etcd_kvs *r, const char *key)
{
	if (r == NULL || key == NULL)
		return NULL;
	for (size_t i = 0; i < r->count; i++)
		if (strcmp(r->kvs[i].key, key) == 0)
			return &r->kvs[i];
	return NULL;
}

/* A RangeResponse object ({"header","kvs","count","more"}) appended to out. */
static int decode_range_obj(const json_t *o, struct etcd_kvs *out, const char *what,
			    struct pgha_err *e)
{
	json_t *arr;
	if (get_array(o, "kvs", &arr, what, e) != 0)
		return -1;
	return append_kvs(arr, out, what, e);
}

/* ---------------------------------------------------------------- decoders */

int etcd_dec_range(const char *body, struct etcd_kvs *out, struct pgha_err *e)
{
	json_t *root;
	memset(out, 0, sizeof(*out));
	int rc = open_reply(body, "range", &root, e);
	if (rc != 0)
		return rc;
	rc = ETCD_EPROTO;
	if (header_revision(root, &out->revision, "range", e) != 0 ||
	    decode_range_obj(root, out, "range", e) != 0) {
		etcd_kvs_free(out);
		goto out;
	}
	rc = ETCD_OK;
out:
	json_decref(root);
	return rc;
}

int etcd_dec_put(const char *body, int64_t *revision, struct pgha_err *e)
{
	json_t *root;
	int64_t rev = 0;
	int rc = open_reply(body, "put", &root, e);
	if (rc != 0)
		return rc;
	rc = header_revision(root, &rev, "put", e) == 0 ? ETCD_OK : ETCD_EPROTO;
	if (rc == ETCD_OK && revision)
		*revision = rev;
	json_decref(root);
	return rc;
}

int etcd_dec_delete(const char *body, int64_t *deleted, struct pgha_err *e)
{
	json_t *root;
	int64_t n = 0, rev;
	int rc = open_reply(body, "delete", &root, e);
	if (rc != 0)
		return rc;
	rc = ETCD_EPROTO;
	if (header_revision(root, &rev, "delete", e) != 0 ||
	    get_i64(root, "deleted", &n, "delete", e) != 0)
		goto out;
	if (n < 0) {
		err_set(e, "delete: negative \"deleted\" count %" PRId64, n);
		goto out;
	}
	if (deleted)
		*deleted = n;
	rc = ETCD_OK;
out:
	json_decref(root);
	return rc;
}

/* One element of a txn's "responses": append the kvs of a response_range. */
static int decode_txn_response(const json_t *r, struct etcd_kvs *acc, struct pgha_err *e)
{
	if (!json_is_object(r))
		return err_set(e, "txn: a response is not an object");
	json_t *range;
	if (get_object(r, "response_range", &range, "txn", e) != 0)
		return -1;
	if (range == NULL)
		return 0; /* put, delete_range or nested txn: nothing to collect */
	return decode_range_obj(range, acc, "txn", e);
}

static void kvs_move_append(struct etcd_kvs *dst, struct etcd_kvs *src)
{
	if (src->count > 0) {
		dst->kvs = xrealloc(dst->kvs, (dst->count + src->count) * sizeof(*dst->kvs));
		memcpy(dst->kvs + dst->count, src->kvs, src->count * sizeof(*src->kvs));
		dst->count += src->count;
	}
	free(src->kvs);
	memset(src, 0, sizeof(*src));
}

/*
 * ranges (may be NULL) must be initialized (zeroed or holding a previous
 * result): the kvs of the branch's RANGE ops are appended, in op order, and its
 * revision becomes the txn's. On failure ranges is left as it was.
 */
int etcd_dec_txn(const char *body, bool *succeeded, struct etcd_kvs *ranges, struct pgha_err *e)
{
	json_t *root, *arr;
	struct etcd_kvs acc = {0};
	bool ok;
	int rc = open_reply(body, "txn", &root, e);
	if (rc != 0)
		return rc;
	rc = ETCD_EPROTO;
	if (header_revision(root, &acc.revision, "txn", e) != 0 ||
	    get_bool(root, "succeeded", &ok, "txn", e) != 0 ||
	    get_array(root, "responses", &arr, "txn", e) != 0)
		goto out;
	for (size_t i = 0; arr && i < json_array_size(arr); i++)
		if (decode_txn_response(json_array_get(arr, i), &acc, e) != 0)
			goto out;
	if (succeeded)
		*succeeded = ok;
	if (ranges) {
		ranges->revision = acc.revision;
		kvs_move_append(ranges, &acc);
	}
	rc = ETCD_OK;
out:
	etcd_kvs_free(&acc);
	json_decref(root);
	return rc;
}

int etcd_dec_lease_grant(const char *body, int64_t *lease_id, int64_t *ttl, struct pgha_err *e)
{
	json_t *root;
	int64_t id, t, rev;
	int rc = open_reply(body, "lease grant", &root, e);
	if (rc != 0)
		return rc;
	rc = ETCD_EPROTO;
	if (header_revision(root, &rev, "lease grant", e) != 0 ||
	    get_i64(root, "ID", &id, "lease grant", e) != 0 ||
	    get_i64(root, "TTL", &t, "lease grant", e) != 0)
		goto out;
	json_t *errv = json_object_get(root, "error");
	if (json_is_string(errv) && json_string_length(errv) > 0) {
		err_set(e, "lease grant: etcd error: %s", json_string_value(errv));
		goto out;
	}
	if (id == 0 || t <= 0) {
		err_set(e, "lease grant: reply has no lease ID or TTL");
		goto out;
	}
	*lease_id = id;
	if (ttl)
		*ttl = t;
	rc = ETCD_OK;
out:
	json_decref(root);
	return rc;
}

/*
 * The keep-alive endpoint is a stream, so its reply is wrapped:
 * {"result":{"header":..., "ID":"..", "TTL":".."}}. A lease that no longer
 * exists comes back without a TTL (TTL 0 omitted): ETCD_ENOLEASE.
 */
int etcd_dec_lease_keepalive(const char *body, int64_t *ttl_left, struct pgha_err *e)
{
	json_t *root, *res;
	int64_t t, id;
	int rc = open_reply(body, "lease keepalive", &root, e);
	if (rc != 0)
		return rc;
	rc = ETCD_EPROTO;
	if (get_object(root, "result", &res, "lease keepalive", e) != 0)
		goto out;
	if (res == NULL) {
		err_set(e, "lease keepalive: reply has no \"result\"");
		goto out;
	}
	if (header_revision(res, &t, "lease keepalive", e) != 0 ||
	    get_i64(res, "TTL", &t, "lease keepalive", e) != 0 ||
	    get_i64(res, "ID", &id, "lease keepalive", e) != 0)
		goto out;
	if (t <= 0) {
		err_set(e, "lease %" PRId64 " expired or was revoked", id);
		rc = ETCD_ENOLEASE;
		goto out;
	}
	if (ttl_left)
		*ttl_left = t;
	rc = ETCD_OK;
out:
	json_decref(root);
	return rc;
}

int etcd_dec_auth(const char *body, char **token, struct pgha_err *e)
{
	json_t *root;
	int rc = open_reply(body, "authenticate", &root, e);
	if (rc != 0)
		return rc;
	int64_t rev;
	json_t *t = json_object_get(root, "token");
	if (header_revision(root, &rev, "authenticate", e) != 0) {
		rc = ETCD_EPROTO;
	} else if (!json_is_string(t) || json_string_length(t) == 0) {
		/* Never print the value: it would be a credential. */
		err_set(e, "authenticate: reply has no token string");
		rc = ETCD_EPROTO;
	} else {
		*token = xstrdup(json_string_value(t));
	}
	json_decref(root);
	return rc;
}

/* ----------------------------------------------------------- members */

/*
 * A client URL as the member list may give it, kept only if it is plainly
 * one: the scheme we use, a host, printable ASCII without spaces or commas
 * (the endpoint list is comma-separated), at most 255 bytes.
 */
static bool member_url_ok(const char *u, const char *scheme)
{
	size_t n = strlen(u), sl = strlen(scheme);
	if (n <= sl + 3 || n > 255 || strncmp(u, scheme, sl) != 0 || strncmp(u + sl, "://", 3) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (u[i] <= ' ' || u[i] >= 0x7f || u[i] == ',')
			return false;
	return true;
}

int etcd_dec_member_urls(const char *body, const char *scheme, size_t max, char ***urls, size_t *n,
			 struct pgha_err *e)
{
	json_t *root, *members;
	*urls = NULL;
	*n = 0;
	int rc = open_reply(body, "member list", &root, e);
	if (rc != 0)
		return rc;
	int64_t rev;
	if (header_revision(root, &rev, "member list", e) != 0 ||
	    get_array(root, "members", &members, "member list", e) != 0) {
		json_decref(root);
		return ETCD_EPROTO;
	}
	char **out = xcalloc(max ? max : 1, sizeof(*out));
	size_t cnt = 0, i;
	json_t *m;
	json_array_foreach(members, i, m) {
		json_t *list = json_is_object(m) ? json_object_get(m, "clientURLs") : NULL;
		size_t j;
		json_t *u;
		/* A member added but not started yet has no client URL: skip it. */
		if (!json_is_array(list))
			continue;
		json_array_foreach(list, j, u) {
			if (!json_is_string(u) || !member_url_ok(json_string_value(u), scheme))
				continue;
			if (cnt == max) {
				err_set(e, "member list: more than %zu client URLs", max);
				rc = ETCD_EPROTO;
				goto out;
			}
			out[cnt++] = xstrdup(json_string_value(u));
		}
	}
out:
	json_decref(root);
	if (rc != 0) {
		for (i = 0; i < cnt; i++)
			free(out[i]);
		free(out);
		return rc;
	}
	*urls = out;
	*n = cnt;
	return 0;
}

/* ------------------------------------------------------------------ watch */

struct watch_ev {
	enum etcd_event_type type;
	struct etcd_kv kv;
};

static int decode_event(const json_t *o, struct watch_ev *ev, struct pgha_err *e)
{
	json_t *kv;
	memset(ev, 0, sizeof(*ev));
	if (!json_is_object(o))
		return err_set(e, "watch: an event is not an object");
	json_t *type = json_object_get(o, "type");
	if (type == NULL || json_is_null(type) ||
	    (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0))
		ev->type = ETCD_EV_PUT;
	else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0)
		ev->type = ETCD_EV_DELETE;
	else if (json_is_integer(type) && json_integer_value(type) <= 1)
		ev->type = json_integer_value(type) == 1 ? ETCD_EV_DELETE : ETCD_EV_PUT;
	else
		return err_set(e, "watch: unknown event type");
	if (get_object(o, "kv", &kv, "watch", e) != 0)
		return -1;
	if (kv == NULL)
		return err_set(e, "watch: an event has no kv");
	return decode_kv(kv, &ev->kv, "watch", e);
}

/*
 * The whole batch is decoded before cb sees any of it, so a malformed event
 * never leaves the consumer with half a batch. When etcd canceled the watch
 * the reason (if any) is put in e although ETCD_OK is returned.
 */
int etcd_dec_watch_msg(const char *body, etcd_watch_cb cb, void *arg, int64_t *revision,
		       bool *canceled, int64_t *compact_revision, struct pgha_err *e)
{
	json_t *root, *res, *arr;
	struct watch_ev *evs = NULL;
	size_t nev = 0;
	int64_t rev, compact;
	bool cancel;
	int rc = open_reply(body, "watch", &root, e);
	if (rc != 0)
		return rc;
	rc = ETCD_EPROTO;
	if (get_object(root, "result", &res, "watch", e) != 0)
		goto out;
	if (res == NULL) {
		err_set(e, "watch: message has no \"result\"");
		goto out;
	}
	if (header_revision(res, &rev, "watch", e) != 0 ||
	    get_bool(res, "canceled", &cancel, "watch", e) != 0 ||
	    get_i64(res, "compact_revision", &compact, "watch", e) != 0 ||
	    get_array(res, "events", &arr, "watch", e) != 0)
		goto out;
	size_t n = arr ? json_array_size(arr) : 0;
	evs = xcalloc(n ? n : 1, sizeof(*evs));
	for (; nev < n; nev++)
		if (decode_event(json_array_get(arr, nev), &evs[nev], e) != 0)
			goto out;
	for (size_t i = 0; cb && i < nev; i++) {
		struct etcd_event ev = {.type = evs[i].type, .kv = &evs[i].kv};
		cb(arg, &ev, rev);
	}
	if (revision)
		*revision = rev;
	if (canceled)
		*canceled = cancel;
	if (compact_revision)
		*compact_revision = compact;
	if (cancel) {
		json_t *reason = json_object_get(res, "cancel_reason");
		err_set(e, "watch canceled by etcd%s%s", json_is_string(reason) ? ": " : "",
			json_is_string(reason) ? json_string_value(reason) : "");
	}
	rc = ETCD_OK;
out:
	for (size_t i = 0; i < nev; i++)
		kv_clear(&evs[i].kv);
	free(evs);
	json_decref(root);
	return rc;
}

void etcd_explain_foreign(long status, const char *body, struct pgha_err *e)
{
	/*
	 * etcd 3.4+ with --client-cert-auth refuses, on its JSON gateway (all
	 * pgha uses), any client certificate that has a CommonName: through the
	 * gateway the CN could not be used as the etcd user, so etcd will not
	 * let a client believe it is.
	 */
	if (body != NULL && strstr(body, "CommonName of client sending a request against gateway") != NULL) {
		err_set(e, "HTTP %ld: etcd refuses a client certificate with a CommonName on its HTTP gateway\n"
			   "HINT: make [etcd] cert_file a certificate without CN (its names in subjectAltName only, "
			   "e.g. openssl -subj \"/O=pgha/OU=db1\"); the user comes from username/password_file", status);
		return;
	}
	char text[81];
	size_t n = 0;
	for (const char *p = body ? body : ""; *p != '\0' && n < sizeof(text) - 1; p++)
		text[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
	text[n] = '\0';
	err_set(e, "HTTP %ld with a reply that is not an etcd error: \"%s%s\"", status, text,
		body && strlen(body) > n ? "..." : "");
}
