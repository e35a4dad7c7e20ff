/*
 * test_etcd_codec.c — the etcd JSON codec against replies captured from etcd
 * 3.4, replies with default fields omitted, error objects, and garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dcs/etcd.h"
#include "dcs/etcd_codec.h"

/* ------------------------------------------------------------- helpers */

/* got (freed here) must be the same JSON value as want. */
static void check_json(char *got, const char *want)
{
	assert_non_null(got);
	json_t *a = json_loads(got, 0, NULL);
	json_t *b = json_loads(want, 0, NULL);
	assert_non_null(a);
	assert_non_null(b);
	if (!json_equal(a, b))
		fail_msg("JSON differs:\n got: %s\nwant: %s", got, want);
	json_decref(a);
	json_decref(b);
	free(got);
}

#define HDR "\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":\"13668033151171901709\",\"revision\":\"8\",\"raft_term\":\"2\"}"

/* ---------------------------------------------------------------- base64 */

static void check_b64(const char *plain, size_t len, const char *enc)
{
	char *s = b64_encode(plain, len);
	assert_string_equal(s, enc);
	size_t n = 99;
	char *d = b64_decode(enc, &n);
	assert_non_null(d);
	assert_int_equal(n, len);
	assert_memory_equal(d, plain, len);
	assert_int_equal(d[len], '\0');
	free(s);
	free(d);
}

static void test_b64_vectors(void **state)
{
	check_b64("", 0, "");
	check_b64("f", 1, "Zg==");
	check_b64("fo", 2, "Zm8=");
	check_b64("foo", 3, "Zm9v");
	check_b64("foob", 4, "Zm9vYg==");
	check_b64("fooba", 5, "Zm9vYmE=");
	check_b64("foobar", 6, "Zm9vYmFy");
	check_b64("\0a", 2, "AGE=");
	check_b64("\xff\xfe\xfd", 3, "//79");
	check_b64("\xfb\xef", 2, "++8=");
}

static void test_b64_roundtrip_all_bytes(void **state)
{
	unsigned char buf[300];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(buf); len++) {
		char *enc = b64_encode(buf, len);
		assert_int_equal(strlen(enc), (len + 2) / 3 * 4);
		size_t n;
		char *dec = b64_decode(enc, &n);
		assert_non_null(dec);
		assert_int_equal(n, len);
		assert_memory_equal(dec, buf, len);
		free(enc);
		free(dec);
	}
}

static void test_b64_invalid(void **state)
{
	static const char *const bad[] = {
		"Zg=", "Zg", "Z", "Zm9v!", "Zm9v====", "Z===", "====", "=Zg=", "Zg==Zg==",
		"AB=C", "Zm9v\n", "Zm 9v", "Zm9-", "Zm9_", "\xc3\xa9\xc3\xa9", "Zm9vY===",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = 42;
		char *d = b64_decode(bad[i], &n);
		if (d != NULL)
			fail_msg("\"%s\" decoded", bad[i]);
	}
}

/* ------------------------------------------------------------ prefix end */

static void check_prefix_end(const char *prefix, const char *want, size_t wantlen)
{
	size_t n = 99;
	char *end = etcd_prefix_end(prefix, &n);
	assert_int_equal(n, wantlen);
	assert_memory_equal(end, want, wantlen);
	free(end);
}

static void test_prefix_end(void **state)
{
	check_prefix_end("/pgha/c/", "/pgha/c0", 8);
	check_prefix_end("ab", "ac", 2);
	check_prefix_end("a\xff", "b", 1);
	check_prefix_end("a\xfe", "a\xff", 2);
	check_prefix_end("\xff\xff", "\0", 1);
	check_prefix_end("", "\0", 1);
}

/* -------------------------------------------------------------- encoders */

static void test_enc_range(void **state)
{
	check_json(etcd_enc_range("foo", false), "{\"key\":\"Zm9v\"}");
	/* "/a/" .. "/a0" */
	check_json(etcd_enc_range("/a/", true), "{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\"}");
	/* The empty prefix is every key: key "\0", range_end "\0". */
	check_json(etcd_enc_range("", true), "{\"key\":\"AA==\",\"range_end\":\"AA==\"}");
	assert_null(etcd_enc_range(NULL, false));
}

static void test_enc_put_delete(void **state)
{
	check_json(etcd_enc_put("foo", "bar", 0), "{\"key\":\"Zm9v\",\"value\":\"YmFy\"}");
	check_json(etcd_enc_put("foo", "", 7587862173812345678LL),
		   "{\"key\":\"Zm9v\",\"value\":\"\",\"lease\":\"7587862173812345678\"}");
	assert_null(etcd_enc_put(NULL, "x", 0));
	assert_null(etcd_enc_put("k", NULL, 0));
	check_json(etcd_enc_delete("foo", false), "{\"key\":\"Zm9v\"}");
	check_json(etcd_enc_delete("/a/", true), "{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\"}");
	assert_null(etcd_enc_delete(NULL, true));
}

static void test_enc_txn(void **state)
{
	struct etcd_cmp cmps[] = {
		{.key = "a", .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL, .number = 0},
		{.key = "a", .target = ETCD_CMP_VALUE, .result = ETCD_CMP_NOT_EQUAL, .value = "x"},
		{.key = "a", .target = ETCD_CMP_MOD, .result = ETCD_CMP_LESS, .number = 12},
		{.key = "a", .target = ETCD_CMP_VERSION, .result = ETCD_CMP_GREATER, .number = 1},
		{.key = "a", .target = ETCD_CMP_LEASE, .result = ETCD_CMP_EQUAL, .number = 99},
	};
	struct etcd_op succ[] = {
		{.type = ETCD_OP_PUT, .key = "a", .value = "v", .lease = 5},
		{.type = ETCD_OP_DELETE, .key = "/p/", .prefix = true},
	};
	struct etcd_op fail[] = {{.type = ETCD_OP_RANGE, .key = "a"}};
	check_json(etcd_enc_txn(cmps, 5, succ, 2, fail, 1),
		   "{\"compare\":["
		   "{\"key\":\"YQ==\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\"},"
		   "{\"key\":\"YQ==\",\"target\":\"VALUE\",\"result\":\"NOT_EQUAL\",\"value\":\"eA==\"},"
		   "{\"key\":\"YQ==\",\"target\":\"MOD\",\"result\":\"LESS\",\"mod_revision\":\"12\"},"
		   "{\"key\":\"YQ==\",\"target\":\"VERSION\",\"result\":\"GREATER\",\"version\":\"1\"},"
		   "{\"key\":\"YQ==\",\"target\":\"LEASE\",\"result\":\"EQUAL\",\"lease\":\"99\"}],"
		   "\"success\":[{\"request_put\":{\"key\":\"YQ==\",\"value\":\"dg==\",\"lease\":\"5\"}},"
		   "{\"request_delete_range\":{\"key\":\"L3Av\",\"range_end\":\"L3Aw\"}}],"
		   "\"failure\":[{\"request_range\":{\"key\":\"YQ==\"}}]}");
	check_json(etcd_enc_txn(NULL, 0, succ, 1, NULL, 0),
		   "{\"success\":[{\"request_put\":{\"key\":\"YQ==\",\"value\":\"dg==\",\"lease\":\"5\"}}]}");
}

static void test_enc_txn_invalid(void **state)
{
	struct etcd_cmp nokey = {.key = NULL, .target = ETCD_CMP_VERSION};
	struct etcd_cmp noval = {.key = "a", .target = ETCD_CMP_VALUE, .value = NULL};
	struct etcd_cmp badtarget = {.key = "a", .target = (enum etcd_cmp_target)42};
	struct etcd_cmp badresult = {.key = "a", .result = (enum etcd_cmp_result)-1};
	struct etcd_op badop = {.type = (enum etcd_op_type)9, .key = "a"};
	struct etcd_op putnoval = {.type = ETCD_OP_PUT, .key = "a"};
	struct etcd_op opnokey = {.type = ETCD_OP_RANGE};
	assert_null(etcd_enc_txn(&nokey, 1, NULL, 0, NULL, 0));
	assert_null(etcd_enc_txn(&noval, 1, NULL, 0, NULL, 0));
	assert_null(etcd_enc_txn(&badtarget, 1, NULL, 0, NULL, 0));
	assert_null(etcd_enc_txn(&badresult, 1, NULL, 0, NULL, 0));
	assert_null(etcd_enc_txn(NULL, 0, &badop, 1, NULL, 0));
	assert_null(etcd_enc_txn(NULL, 0, NULL, 0, &putnoval, 1));
	assert_null(etcd_enc_txn(NULL, 0, &opnokey, 1, NULL, 0));
	assert_null(etcd_enc_txn(NULL, 1, NULL, 0, NULL, 0));
	assert_null(etcd_enc_txn(NULL, 0, NULL, 2, NULL, 0));
}

static void test_enc_lease_watch(void **state)
{
	check_json(etcd_enc_lease_grant(10), "{\"TTL\":\"10\"}");
	check_json(etcd_enc_lease_id(7587862173812345678LL), "{\"ID\":\"7587862173812345678\"}");
	check_json(etcd_enc_watch_create("/a/", 0),
		   "{\"create_request\":{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\",\"progress_notify\":true}}");
	check_json(etcd_enc_watch_create("/a/", 42),
		   "{\"create_request\":{\"key\":\"L2Ev\",\"range_end\":\"L2Ew\","
		   "\"start_revision\":\"42\",\"progress_notify\":true}}");
	assert_null(etcd_enc_watch_create(NULL, 0));
}

static void test_enc_auth(void **state)
{
	const char *pw = "p\"a\\s\ns\x01w\xc3\xa9rd";
	char *body = etcd_enc_auth("root", pw);
	json_t *j = json_loads(body, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "root");
	assert_string_equal(json_string_value(json_object_get(j, "password")), pw);
	json_decref(j);
	free(body);
	assert_null(etcd_enc_auth(NULL, "x"));
	assert_null(etcd_enc_auth("u", NULL));
}

/* ------------------------------------------------------------ dec_error */

static void check_err(const char *body, int want)
{
	struct pgha_err e = {{0}};
	int rc = etcd_dec_error(body, &e);
	if (rc != want)
		fail_msg("%s: got %d want %d (%s)", body, rc, want, e.msg);
	if (want != ETCD_OK)
		assert_true(strlen(e.msg) > 0);
}

static void test_dec_error_mapping(void **state)
{
#define ERR(msg, code) "{\"error\":\"" msg "\",\"message\":\"" msg "\",\"code\":" #code "}"
	check_err(ERR("etcdserver: requested lease not found", 5), ETCD_ENOLEASE);
	check_err(ERR("etcdserver: invalid auth token", 16), ETCD_EAUTH);
	check_err(ERR("etcdserver: permission denied", 7), ETCD_EAUTH);
	check_err(ERR("etcdserver: authentication failed, invalid user ID or password", 3),
		  ETCD_EAUTH);
	check_err(ERR("etcdserver: authentication is not enabled", 9), ETCD_EAUTH);
	check_err(ERR("etcdserver: user name is empty", 3), ETCD_EAUTH);
	check_err(ERR("etcdserver: no leader", 14), ETCD_EUNAVAIL);
	check_err(ERR("etcdserver: leader changed", 14), ETCD_EUNAVAIL);
	check_err(ERR("etcdserver: request timed out", 14), ETCD_EUNAVAIL);
	check_err(ERR("etcdserver: too many requests", 8), ETCD_EUNAVAIL);
	check_err(ERR("something new", 14), ETCD_EUNAVAIL);
	check_err(ERR("context deadline exceeded", 4), ETCD_EUNAVAIL);
	check_err(ERR("etcdserver: mvcc: required revision has been compacted", 11), ETCD_EINVAL);
	check_err(ERR("etcdserver: duplicate key given in txn request", 3), ETCD_EINVAL);
	check_err(ERR("etcdserver: key is not provided", 3), ETCD_EINVAL);
	check_err(ERR("etcdserver: corrupt cluster", 15), ETCD_EPROTO);
	/* Stream error shape and newer gateways' shape. */
	check_err("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\","
		  "\"http_status\":\"Service Unavailable\"}}",
		  ETCD_EUNAVAIL);
	check_err("{\"code\":5,\"message\":\"etcdserver: requested lease not found\",\"details\":[]}",
		  ETCD_ENOLEASE);
	check_err("{\"error\":\"etcdserver: permission denied\"}", ETCD_EAUTH);
#undef ERR
}

static void test_dec_error_not_errors(void **state)
{
	check_err("{" HDR "}", ETCD_OK);
	check_err("{" HDR ",\"error\":\"x\"}", ETCD_OK); /* lease grant's own "error" field */
	check_err("{\"result\":{" HDR "}}", ETCD_OK);
	check_err("garbage", ETCD_OK);
	check_err("", ETCD_OK);
	check_err("[1,2]", ETCD_OK);
	check_err("{}", ETCD_OK);
	check_err("{\"error\":5}", ETCD_OK);
	check_err("{\"code\":\"5\",\"message\":\"x\"}", ETCD_OK);
	check_err(NULL, ETCD_OK);
}

/* ----------------------------------------------------------------- range */

static void test_dec_range_good(void **state)
{
	const char *body =
		"{" HDR ",\"kvs\":[{\"key\":\"Yg==\",\"create_revision\":\"4\",\"mod_revision\":\"5\","
		"\"version\":\"2\",\"value\":\"eA==\",\"lease\":\"4111120142044508687\"},"
		"{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
		"\"value\":\"YmFy\"}],\"count\":\"2\"}";
	struct etcd_kvs r;
	struct pgha_err e = {{0}};
	assert_int_equal(etcd_dec_range(body, &r, &e), ETCD_OK);
	assert_int_equal(r.revision, 8);
	assert_int_equal(r.count, 2);
	assert_string_equal(r.kvs[0].key, "b");
	assert_string_equal(r.kvs[0].value, "x");
	assert_int_equal(r.kvs[0].value_len, 1);
	assert_int_equal(r.kvs[0].create_revision, 4);
	assert_int_equal(r.kvs[0].mod_revision, 5);
	assert_int_equal(r.kvs[0].version, 2);
	assert_int_equal(r.kvs[0].lease, 4111120142044508687LL);
	assert_int_equal(r.kvs[1].lease, 0);
	const struct etcd_kv *kv = etcd_kvs_find(&r, "foo");
	assert_non_null(kv);
	assert_string_equal(kv->value, "bar");
	assert_null(etcd_kvs_find(&r, "fo"));
	assert_null(etcd_kvs_find(NULL, "foo"));
	etcd_kvs_free(&r);
	assert_int_equal(r.count, 0);
	assert_null(r.kvs);
	etcd_kvs_free(&r); /* twice is harmless */
}

static void test_dec_range_omitted(void **state)
{
	struct etcd_kvs r;
	struct pgha_err e = {{0}};
	/* Missing key: no kvs, no count. */
	assert_int_equal(etcd_dec_range("{" HDR "}", &r, &e), ETCD_OK);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.revision, 8);
	etcd_kvs_free(&r);
	/* Empty value and zero fields omitted; numbers accepted as numbers. */
	assert_int_equal(etcd_dec_range("{\"header\":{\"revision\":3},\"kvs\":[{\"key\":\"YQ==\"}]}",
					&r, &e),
			 ETCD_OK);
	assert_int_equal(r.revision, 3);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.kvs[0].value, "");
	assert_int_equal(r.kvs[0].value_len, 0);
	assert_int_equal(r.kvs[0].mod_revision, 0);
	etcd_kvs_free(&r);
	/* Header without revision; null kvs. */
	assert_int_equal(etcd_dec_range("{\"header\":{},\"kvs\":null}", &r, &e), ETCD_OK);
	assert_int_equal(r.revision, 0);
	etcd_kvs_free(&r);
	/* Binary value with a NUL byte keeps its length. */
	assert_int_equal(etcd_dec_range("{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"value\":\"AGE=\"}]}",
					&r, &e),
			 ETCD_OK);
	assert_int_equal(r.kvs[0].value_len, 2);
	assert_memory_equal(r.kvs[0].value, "\0a", 3);
	etcd_kvs_free(&r);
}

static void check_range_bad(const char *body, int want, const char *needle)
{
	struct etcd_kvs r;
	struct pgha_err e = {{0}};
	memset(&r, 0xab, sizeof(r));
	int rc = etcd_dec_range(body, &r, &e);
	if (rc != want)
		fail_msg("%s: got %d want %d (%s)", body, rc, want, e.msg);
	assert_int_equal(r.count, 0);
	assert_null(r.kvs);
	if (needle && strstr(e.msg, needle) == NULL)
		fail_msg("%s: message \"%s\" lacks \"%s\"", body, e.msg, needle);
}

static void test_dec_range_malformed(void **state)
{
	check_range_bad("", ETCD_EPROTO, "not JSON");
	check_range_bad("garbage", ETCD_EPROTO, "not JSON");
	check_range_bad("{\"header\":", ETCD_EPROTO, "not JSON");
	check_range_bad("[1,2,3]", ETCD_EPROTO, "not a JSON object");
	check_range_bad("\"str\"", ETCD_EPROTO, "not a JSON object");
	check_range_bad("null", ETCD_EPROTO, "not a JSON object");
	check_range_bad("{}", ETCD_EPROTO, "header");
	check_range_bad("{\"header\":5}", ETCD_EPROTO, "header");
	check_range_bad("{" HDR ",\"kvs\":{}}", ETCD_EPROTO, "kvs");
	check_range_bad("{" HDR ",\"kvs\":\"x\"}", ETCD_EPROTO, "kvs");
	check_range_bad("{" HDR ",\"kvs\":[5]}", ETCD_EPROTO, "not an object");
	check_range_bad("{" HDR ",\"kvs\":[{\"value\":\"eA==\"}]}", ETCD_EPROTO, "no key");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":5}]}", ETCD_EPROTO, "key");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"!!!!\"}]}", ETCD_EPROTO, "base64");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"value\":\"YQ\"}]}", ETCD_EPROTO,
			"base64");
	/* jansson refuses \u0000 outright; the decoder would refuse it too. */
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"value\":\"YQ==\\u0000AAAA\"}]}",
			ETCD_EPROTO, "not JSON");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"AGE=\"}]}", ETCD_EPROTO, "NUL");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"\"}]}", ETCD_EPROTO, "empty");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"YQ==\"},{\"key\":\"YQ==\",\"version\":\"x\"}]}",
			ETCD_EPROTO, "version");
	check_range_bad("{\"header\":{\"revision\":\"99999999999999999999\"}}", ETCD_EPROTO,
			"revision");
	check_range_bad("{\"header\":{\"revision\":99999999999999999999}}", ETCD_EPROTO, NULL);
	check_range_bad("{\"header\":{\"revision\":1.5}}", ETCD_EPROTO, "revision");
	check_range_bad("{\"header\":{\"revision\":\"12abc\"}}", ETCD_EPROTO, "revision");
	check_range_bad("{\"header\":{\"revision\":\"\"}}", ETCD_EPROTO, "revision");
	check_range_bad("{\"header\":{\"revision\":\" 12\"}}", ETCD_EPROTO, "revision");
	check_range_bad("{\"header\":{\"revision\":true}}", ETCD_EPROTO, "revision");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"lease\":[]}]}", ETCD_EPROTO, "lease");
	check_range_bad("{\"header\":{},\"header\":{}}", ETCD_EPROTO, NULL);
	/* Error objects are mapped, not EPROTO. */
	check_range_bad("{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\","
			"\"code\":14}",
			ETCD_EUNAVAIL, "no leader");
	check_range_bad("{\"error\":\"etcdserver: invalid auth token\",\"message\":\"etcdserver: "
			"invalid auth token\",\"code\":16}",
			ETCD_EAUTH, "auth token");
}

static void test_dec_range_big_numbers(void **state)
{
	struct etcd_kvs r;
	struct pgha_err e = {{0}};
	assert_int_equal(etcd_dec_range("{\"header\":{\"revision\":\"9223372036854775807\"}}", &r, &e),
			 ETCD_OK);
	assert_int_equal(r.revision, INT64_MAX);
	etcd_kvs_free(&r);
	assert_int_equal(etcd_dec_range("{\"header\":{\"revision\":\"9223372036854775808\"}}", &r, &e),
			 ETCD_EPROTO);
}

/* ------------------------------------------------------------ put/delete */

static void test_dec_put_delete(void **state)
{
	struct pgha_err e = {{0}};
	int64_t rev = 0, n = -1;
	assert_int_equal(etcd_dec_put("{" HDR "}", &rev, &e), ETCD_OK);
	assert_int_equal(rev, 8);
	assert_int_equal(etcd_dec_put("{" HDR "}", NULL, &e), ETCD_OK);
	assert_int_equal(etcd_dec_put("{}", &rev, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_put("nope", &rev, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_put("{\"error\":\"etcdserver: requested lease not found\","
				      "\"message\":\"etcdserver: requested lease not found\",\"code\":5}",
				      &rev, &e),
			 ETCD_ENOLEASE);
	assert_int_equal(etcd_dec_delete("{" HDR ",\"deleted\":\"3\"}", &n, &e), ETCD_OK);
	assert_int_equal(n, 3);
	assert_int_equal(etcd_dec_delete("{" HDR "}", &n, &e), ETCD_OK);
	assert_int_equal(n, 0);
	assert_int_equal(etcd_dec_delete("{" HDR ",\"deleted\":\"x\"}", &n, &e), ETCD_EPROTO);
	assert_non_null(strstr(e.msg, "deleted"));
	assert_int_equal(etcd_dec_delete("{" HDR ",\"deleted\":\"-1\"}", &n, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_delete("[]", &n, &e), ETCD_EPROTO);
}

/* ------------------------------------------------------------------- txn */

static void test_dec_txn(void **state)
{
	struct pgha_err e = {{0}};
	bool ok = true;
	struct etcd_kvs r = {0};
	/* Failure branch: "succeeded" omitted; range, delete and put responses. */
	const char *fail =
		"{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"3\"},"
		"\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
		"\"version\":\"1\",\"lease\":\"41\"}],\"count\":\"1\"}},"
		"{\"response_delete_range\":{\"header\":{\"revision\":\"3\"}}},"
		"{\"response_put\":{\"header\":{\"revision\":\"4\"}}},"
		"{\"response_range\":{\"header\":{\"revision\":\"3\"}}},"
		"{\"response_range\":{\"header\":{},\"kvs\":[{\"key\":\"Yg==\",\"value\":\"eA==\"}]}}]}";
	assert_int_equal(etcd_dec_txn(fail, &ok, &r, &e), ETCD_OK);
	assert_false(ok);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.revision, 8);
	assert_string_equal(r.kvs[0].key, "a");
	assert_int_equal(r.kvs[0].lease, 41);
	assert_string_equal(r.kvs[1].key, "b");
	/* Appends to what is there. */
	assert_int_equal(etcd_dec_txn("{" HDR ",\"succeeded\":true,\"responses\":[{\"response_range\":"
				      "{\"kvs\":[{\"key\":\"Yw==\"}]}}]}",
				      &ok, &r, &e),
			 ETCD_OK);
	assert_true(ok);
	assert_int_equal(r.count, 3);
	assert_string_equal(r.kvs[2].key, "c");
	etcd_kvs_free(&r);
	/* Nothing but the header. */
	assert_int_equal(etcd_dec_txn("{" HDR "}", &ok, NULL, &e), ETCD_OK);
	assert_false(ok);
}

static void test_dec_txn_malformed(void **state)
{
	static const char *const bad[] = {
		"x",
		"[]",
		"{}",
		"{" HDR ",\"succeeded\":\"true\"}",
		"{" HDR ",\"succeeded\":1}",
		"{" HDR ",\"responses\":{}}",
		"{" HDR ",\"responses\":[5]}",
		"{" HDR ",\"responses\":[{\"response_range\":[]}]}",
		"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":5}}]}",
		"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"YQ==\"}]}},"
		"{\"response_range\":{\"kvs\":[{\"key\":\"@@@@\"}]}}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pgha_err e = {{0}};
		struct etcd_kvs r = {0};
		bool ok = true;
		/* A previous result must survive a failed decode untouched. */
		assert_int_equal(etcd_dec_txn("{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":"
					      "[{\"key\":\"YQ==\"}]}}]}",
					      &ok, &r, &e),
				 ETCD_OK);
		int rc = etcd_dec_txn(bad[i], &ok, &r, &e);
		if (rc != ETCD_EPROTO)
			fail_msg("%s: got %d (%s)", bad[i], rc, e.msg);
		assert_int_equal(r.count, 1);
		assert_string_equal(r.kvs[0].key, "a");
		etcd_kvs_free(&r);
	}
	struct pgha_err e = {{0}};
	bool ok;
	assert_int_equal(etcd_dec_txn("{\"error\":\"etcdserver: duplicate key given in txn request\","
				      "\"message\":\"etcdserver: duplicate key given in txn request\","
				      "\"code\":3}",
				      &ok, NULL, &e),
			 ETCD_EINVAL);
}

/* ---------------------------------------------------------------- leases */

static void test_dec_lease(void **state)
{
	struct pgha_err e = {{0}};
	int64_t id = 0, ttl = 0;
	assert_int_equal(etcd_dec_lease_grant("{" HDR ",\"ID\":\"4111120142044508681\",\"TTL\":\"2\"}",
					      &id, &ttl, &e),
			 ETCD_OK);
	assert_int_equal(id, 4111120142044508681LL);
	assert_int_equal(ttl, 2);
	assert_int_equal(etcd_dec_lease_grant("{" HDR ",\"TTL\":\"2\"}", &id, &ttl, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_grant("{" HDR ",\"ID\":\"5\"}", &id, &ttl, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_grant("{" HDR ",\"ID\":\"5\",\"TTL\":\"2\",\"error\":\"boom\"}",
					      &id, &ttl, &e),
			 ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_grant("{" HDR ",\"ID\":{},\"TTL\":\"2\"}", &id, &ttl, &e),
			 ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_grant("{\"error\":\"etcdserver: too many requests\","
					      "\"message\":\"etcdserver: too many requests\",\"code\":8}",
					      &id, &ttl, &e),
			 ETCD_EUNAVAIL);

	/* Keep-alive replies are wrapped in "result". */
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":{" HDR ",\"ID\":\"41\",\"TTL\":\"20\"}}\n",
						  &ttl, &e),
			 ETCD_OK);
	assert_int_equal(ttl, 20);
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":{" HDR ",\"ID\":\"12345\"}}", &ttl, &e),
			 ETCD_ENOLEASE);
	assert_non_null(strstr(e.msg, "12345"));
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":{" HDR ",\"ID\":\"1\",\"TTL\":\"0\"}}",
						  NULL, &e),
			 ETCD_ENOLEASE);
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":{" HDR ",\"ID\":\"1\",\"TTL\":\"-1\"}}",
						  NULL, &e),
			 ETCD_ENOLEASE);
	assert_int_equal(etcd_dec_lease_keepalive("{" HDR ",\"ID\":\"1\",\"TTL\":\"5\"}", &ttl, &e),
			 ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":5}", &ttl, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":{}}", &ttl, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":{" HDR ",\"TTL\":true}}", &ttl, &e),
			 ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_keepalive("{\"result\":{" HDR "}}{\"result\":{}}", &ttl, &e),
			 ETCD_EPROTO);
	assert_int_equal(etcd_dec_lease_keepalive("{\"error\":{\"grpc_code\":14,\"http_code\":503,"
						  "\"message\":\"etcdserver: no leader\"}}",
						  &ttl, &e),
			 ETCD_EUNAVAIL);
	assert_int_equal(etcd_dec_lease_keepalive("{\"error\":\"etcdserver: requested lease not found\","
						  "\"code\":5}",
						  &ttl, &e),
			 ETCD_ENOLEASE);
}

static void test_dec_auth(void **state)
{
	struct pgha_err e = {{0}};
	char *tok = NULL;
	assert_int_equal(etcd_dec_auth("{" HDR ",\"token\":\"abc.123\"}", &tok, &e), ETCD_OK);
	assert_string_equal(tok, "abc.123");
	free(tok);
	tok = NULL;
	assert_int_equal(etcd_dec_auth("{" HDR "}", &tok, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_auth("{" HDR ",\"token\":\"\"}", &tok, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_auth("{" HDR ",\"token\":7}", &tok, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_auth("{\"token\":\"abc\"}", &tok, &e), ETCD_EPROTO);
	assert_null(tok);
	assert_int_equal(etcd_dec_auth("{\"error\":\"etcdserver: authentication failed, invalid user "
				       "ID or password\",\"message\":\"etcdserver: authentication "
				       "failed, invalid user ID or password\",\"code\":3}",
				       &tok, &e),
			 ETCD_EAUTH);
	assert_null(tok);
}

/* --------------------------------------------------------------- members */

static void free_urls(char **urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

static void test_dec_member_urls(void **state)
{
	struct pgha_err e = {{0}};
	char **urls;
	size_t n;
	const char *body = "{" HDR ",\"members\":["
			   "{\"name\":\"e1\",\"clientURLs\":[\"https://10.0.0.1:2379\",\"http://10.0.0.1:2381\"]},"
			   "{\"name\":\"\",\"peerURLs\":[\"https://10.0.0.4:2380\"]},"
			   "{\"name\":\"e3\",\"clientURLs\":[\"https://a,b:1\",\"https://x y\",\"https://\",5,"
			   "\"https://e3.example:2379\"]}]}";
	assert_int_equal(etcd_dec_member_urls(body, "https", 8, &urls, &n, &e), ETCD_OK);
	assert_int_equal(n, 2);
	assert_string_equal(urls[0], "https://10.0.0.1:2379");
	assert_string_equal(urls[1], "https://e3.example:2379");
	free_urls(urls, n);
	assert_int_equal(etcd_dec_member_urls(body, "http", 8, &urls, &n, &e), ETCD_OK);
	assert_int_equal(n, 1);
	assert_string_equal(urls[0], "http://10.0.0.1:2381");
	free_urls(urls, n);
	/* More URLs than allowed: refused whole, never cut to an arbitrary part. */
	assert_int_equal(etcd_dec_member_urls(body, "https", 1, &urls, &n, &e), ETCD_EPROTO);
	assert_null(urls);
	assert_int_equal(etcd_dec_member_urls("{\"members\":[]}", "http", 8, &urls, &n, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_member_urls("{" HDR ",\"members\":{}}", "http", 8, &urls, &n, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_member_urls("[1]", "http", 8, &urls, &n, &e), ETCD_EPROTO);
	assert_int_equal(etcd_dec_member_urls("{" HDR "}", "http", 8, &urls, &n, &e), ETCD_OK);
	assert_int_equal(n, 0);
	free_urls(urls, n);
}

/* ----------------------------------------------------------------- watch */

struct rec {
	int n;
	int nulls;
	enum etcd_event_type type[8];
	char key[8][32];
	char value[8][32];
	int64_t mod[8];
	int64_t rev[8];
};

static void rec_cb(void *arg, const struct etcd_event *ev, int64_t revision)
{
	struct rec *r = arg;
	if (ev == NULL) {
		r->nulls++;
		return;
	}
	assert_true(r->n < 8);
	r->type[r->n] = ev->type;
	snprintf(r->key[r->n], sizeof(r->key[0]), "%s", ev->kv->key);
	snprintf(r->value[r->n], sizeof(r->value[0]), "%s", ev->kv->value);
	r->mod[r->n] = ev->kv->mod_revision;
	r->rev[r->n] = revision;
	r->n++;
}

static void test_dec_watch_good(void **state)
{
	struct rec r = {0};
	struct pgha_err e = {{0}};
	int64_t rev = -1, compact = -1;
	bool canceled = true;
	/* created */
	assert_int_equal(etcd_dec_watch_msg("{\"result\":{" HDR ",\"created\":true}}", rec_cb, &r,
					    &rev, &canceled, &compact, &e),
			 ETCD_OK);
	assert_int_equal(r.n, 0);
	assert_int_equal(rev, 8);
	assert_false(canceled);
	assert_int_equal(compact, 0);
	/* two puts and a delete (type omitted = PUT; DELETE kv has no value) */
	const char *msg =
		"{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":["
		"{\"kv\":{\"key\":\"cDE=\",\"create_revision\":\"6\",\"mod_revision\":\"6\","
		"\"version\":\"1\",\"value\":\"dg==\"}},"
		"{\"type\":\"PUT\",\"kv\":{\"key\":\"cDI=\",\"mod_revision\":\"7\",\"value\":\"dzI=\"}},"
		"{\"type\":\"DELETE\",\"kv\":{\"key\":\"cDE=\",\"mod_revision\":\"9\"}}]}}";
	assert_int_equal(etcd_dec_watch_msg(msg, rec_cb, &r, &rev, &canceled, &compact, &e), ETCD_OK);
	assert_int_equal(r.n, 3);
	assert_int_equal(rev, 9);
	assert_int_equal(r.type[0], ETCD_EV_PUT);
	assert_string_equal(r.key[0], "p1");
	assert_string_equal(r.value[0], "v");
	assert_int_equal(r.type[1], ETCD_EV_PUT);
	assert_string_equal(r.value[1], "w2");
	assert_int_equal(r.type[2], ETCD_EV_DELETE);
	assert_string_equal(r.value[2], "");
	assert_int_equal(r.mod[2], 9);
	assert_int_equal(r.rev[2], 9);
	/* canceled: compacted; header revision omitted */
	assert_int_equal(etcd_dec_watch_msg("{\"result\":{\"header\":{\"raft_term\":\"2\"},"
					    "\"canceled\":true,\"compact_revision\":\"7\"}}",
					    rec_cb, &r, &rev, &canceled, &compact, &e),
			 ETCD_OK);
	assert_true(canceled);
	assert_int_equal(compact, 7);
	assert_int_equal(rev, 0);
	assert_int_equal(r.nulls, 0);
	/* NULL out-params and NULL cb are allowed. */
	assert_int_equal(etcd_dec_watch_msg(msg, NULL, NULL, NULL, NULL, NULL, &e), ETCD_OK);
}

static void test_dec_watch_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{}",
		"{" HDR "}",
		"{\"result\":5}",
		"{\"result\":{}}",
		"{\"result\":{" HDR ",\"events\":{}}}",
		"{\"result\":{" HDR ",\"events\":[5]}}",
		"{\"result\":{" HDR ",\"events\":[{\"type\":\"PUT\"}]}}",
		"{\"result\":{" HDR ",\"events\":[{\"type\":\"BOOM\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{" HDR ",\"events\":[{\"type\":[],\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{" HDR ",\"canceled\":\"yes\"}}",
		"{\"result\":{" HDR ",\"compact_revision\":\"x\"}}",
		/* a good event followed by a bad one: nothing may be delivered */
		"{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"YQ==\"}},"
		"{\"kv\":{\"key\":\"YQ==\",\"value\":\"%%%%\"}}]}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rec r = {0};
		struct pgha_err e = {{0}};
		int64_t rev;
		bool canceled;
		int rc = etcd_dec_watch_msg(bad[i], rec_cb, &r, &rev, &canceled, NULL, &e);
		if (rc != ETCD_EPROTO)
			fail_msg("%s: got %d (%s)", bad[i], rc, e.msg);
		assert_int_equal(r.n, 0);
		assert_true(strlen(e.msg) > 0);
	}
	struct pgha_err e = {{0}};
	assert_int_equal(etcd_dec_watch_msg("{\"error\":{\"grpc_code\":14,\"http_code\":503,"
					    "\"message\":\"etcdserver: no leader\",\"http_status\":"
					    "\"Service Unavailable\"}}",
					    rec_cb, NULL, NULL, NULL, NULL, &e),
			 ETCD_EUNAVAIL);
	assert_int_equal(etcd_dec_watch_msg("{\"error\":\"invalid character 'g' looking for beginning "
					    "of value\",\"message\":\"x\",\"code\":2}",
					    rec_cb, NULL, NULL, NULL, NULL, &e),
			 ETCD_EPROTO);
}

/* Huge input must not crash: a long kvs array and deep nesting. */
static void test_dec_large(void **state)
{
	size_t n = 20000;
	char *body = malloc(n * 40 + 100);
	size_t off = (size_t)sprintf(body, "{" HDR ",\"kvs\":[");
	for (size_t i = 0; i < n; i++)
		off += (size_t)sprintf(body + off, "%s{\"key\":\"YQ==\",\"value\":\"YmJi\"}",
				       i ? "," : "");
	strcpy(body + off, "]}");
	struct etcd_kvs r;
	struct pgha_err e = {{0}};
	assert_int_equal(etcd_dec_range(body, &r, &e), ETCD_OK);
	assert_int_equal(r.count, n);
	etcd_kvs_free(&r);
	free(body);

	size_t depth = 100000;
	char *deep = malloc(depth * 2 + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[depth * 2] = '\0';
	assert_int_equal(etcd_dec_range(deep, &r, &e), ETCD_EPROTO);
	free(deep);
}

/* A reply that is not etcd's error object: its start is quoted; the CN refusal of etcd's gateway explained. */
static void test_explain_foreign(void **state)
{
	struct pgha_err e;
	etcd_explain_foreign(400, "CommonName of client sending a request against gateway will be ignored and not "
			     "used as expected\n", &e);
	assert_non_null(strstr(e.msg, "HTTP 400: etcd refuses a client certificate with a CommonName"));
	assert_non_null(strstr(e.msg, "HINT: make [etcd] cert_file a certificate without CN"));
	etcd_explain_foreign(502, "<html>\x01" "bad gateway</html>", &e);
	assert_string_equal(e.msg, "HTTP 502 with a reply that is not an etcd error: \"<html> bad gateway</html>\"");
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	etcd_explain_foreign(500, big, &e);
	assert_non_null(strstr(e.msg, "xxx...\""));
	etcd_explain_foreign(500, NULL, &e);
	assert_string_equal(e.msg, "HTTP 500 with a reply that is not an etcd error: \"\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_roundtrip_all_bytes),
		cmocka_unit_test(test_b64_invalid),
		cmocka_unit_test(test_prefix_end),
		cmocka_unit_test(test_enc_range),
		cmocka_unit_test(test_enc_put_delete),
		cmocka_unit_test(test_enc_txn),
		cmocka_unit_test(test_enc_txn_invalid),
		cmocka_unit_test(test_enc_lease_watch),
		cmocka_unit_test(test_enc_auth),
		cmocka_unit_test(test_dec_member_urls),
		cmocka_unit_test(test_dec_error_mapping),
		cmocka_unit_test(test_dec_error_not_errors),
		cmocka_unit_test(test_dec_range_good),
		cmocka_unit_test(test_dec_range_omitted),
		cmocka_unit_test(test_dec_range_malformed),
		cmocka_unit_test(test_dec_range_big_numbers),
		cmocka_unit_test(test_dec_put_delete),
		cmocka_unit_test(test_dec_txn),
		cmocka_unit_test(test_dec_txn_malformed),
		cmocka_unit_test(test_dec_lease),
		cmocka_unit_test(test_dec_auth),
		cmocka_unit_test(test_dec_watch_good),
		cmocka_unit_test(test_dec_watch_malformed),
		cmocka_unit_test(test_dec_large),
		cmocka_unit_test(test_explain_foreign),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
