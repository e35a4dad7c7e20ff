/*
 * etcd_kv.c — the key-value, transaction and lease calls of the etcd client:
 * each encodes its request (etcd_codec.c), runs it through etcd_call (etcd.c:
 * retries, failover, tokens) and decodes the reply.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "dcs/etcd_codec.h"
#include "dcs/etcd_int.h"

/* ------------------------------------------------------------------- KV */

static int dec_range_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_range(body, ctx, e);
}

static int get_impl(struct etcd_client *c, const char *key, bool prefix, struct etcd_kvs *out,
		    struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	if (key == NULL)
		return etcd_bad_arg(e, "etcd get: no key");
	char *body = etcd_enc_range(key, prefix);
	int rc = etcd_call(c, "/v3/kv/range", body, dec_range_ctx, out, e);
	free(body);
	return rc;
}

int etcd_get(struct etcd_client *c, const char *key, struct etcd_kvs *out, struct pgha_err *e)
{
	return get_impl(c, key, false, out, e);
}

int etcd_get_prefix(struct etcd_client *c, const char *prefix, struct etcd_kvs *out,
		    struct pgha_err *e)
{
	return get_impl(c, prefix, true, out, e);
}

static int dec_put_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_put(body, ctx, e);
}

int etcd_put(struct etcd_client *c, const char *key, const char *value, int64_t lease,
	     struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || value == NULL)
		return etcd_bad_arg(e, "etcd put: no key or value");
	int64_t rev = 0;
	char *body = etcd_enc_put(key, value, lease);
	int rc = etcd_call(c, "/v3/kv/put", body, dec_put_ctx, &rev, e);
	free(body);
	return rc;
}

static int dec_delete_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_delete(body, ctx, e);
}

static int delete_impl(struct etcd_client *c, const char *key, bool prefix, int64_t *deleted,
		       struct pgha_err *e)
{
	if (key == NULL || (!prefix && key[0] == '\0'))
		return etcd_bad_arg(e, "etcd delete: no key");
	int64_t n = 0;
	char *body = etcd_enc_delete(key, prefix);
	int rc = etcd_call(c, "/v3/kv/deleterange", body, dec_delete_ctx, &n, e);
	free(body);
	if (rc == ETCD_OK && deleted)
		*deleted = n;
	return rc;
}

int etcd_delete(struct etcd_client *c, const char *key, int64_t *deleted, struct pgha_err *e)
{
	return delete_impl(c, key, false, deleted, e);
}

int etcd_delete_prefix(struct etcd_client *c, const char *prefix, int64_t *deleted,
		       struct pgha_err *e)
{
	return delete_impl(c, prefix, true, deleted, e);
}

/* ------------------------------------------------------------------ txn */

struct txn_ctx {
	bool succeeded;
	struct etcd_kvs ranges;
};

static int dec_txn_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	struct txn_ctx *t = ctx;
	/* A retried attempt must not append twice: start from empty each time. */
	etcd_kvs_free(&t->ranges);
	return etcd_dec_txn(body, &t->succeeded, &t->ranges, e);
}

static void kvs_append_move(struct etcd_kvs *dst, struct etcd_kvs *src)
{
	if (src->count > 0) {
		dst->kvs = xrealloc(dst->kvs, (dst->count + src->count) * sizeof(*dst->kvs));
		memcpy(dst->kvs + dst->count, src->kvs, src->count * sizeof(*src->kvs));
		dst->count += src->count;
	}
	dst->revision = src->revision;
	free(src->kvs);
	memset(src, 0, sizeof(*src));
}

int etcd_txn(struct etcd_client *c, const struct etcd_cmp *cmps, size_t ncmps,
	     const struct etcd_op *success, size_t nsuccess, const struct etcd_op *failure,
	     size_t nfailure, bool *succeeded, struct etcd_kvs *ranges, struct pgha_err *e)
{
	struct txn_ctx t = {false, {0}};
	char *body = etcd_enc_txn(cmps, ncmps, success, nsuccess, failure, nfailure);
	if (body == NULL)
		return etcd_bad_arg(e, "etcd txn: invalid compare or operation");
	int rc = etcd_call(c, "/v3/kv/txn", body, dec_txn_ctx, &t, e);
	free(body);
	if (rc == ETCD_OK) {
		if (succeeded)
			*succeeded = t.succeeded;
		if (ranges)
			kvs_append_move(ranges, &t.ranges);
	}
	etcd_kvs_free(&t.ranges);
	return rc;
}

/*
 * After a failed compare: is the key already exactly what we meant to write?
 * Then an earlier attempt of this very call got through but its reply was
 * lost. For a create that counts only under our own lease (non-zero, hence
 * unique): without one, another writer of the same value cannot be told apart.
 * For a put-if-value the desired state is reached either way.
 */
static bool is_own_write(const struct etcd_kvs *r, const char *key, const char *value,
			 int64_t lease, bool need_lease)
{
	const struct etcd_kv *kv = etcd_kvs_find(r, key);
	if (kv == NULL || (need_lease && lease == 0))
		return false;
	return kv->lease == lease && kv->value_len == strlen(value) &&
	       strcmp(kv->value, value) == 0;
}

/* Put key=value if every compare holds; a range of the key on failure lets
 * us recognize a lost reply of our own earlier attempt. */
static int cas_put(struct etcd_client *c, const struct etcd_cmp *cmps, size_t ncmps,
		   const char *key, const char *value, int64_t lease, bool need_lease, bool *done,
		   struct pgha_err *e)
{
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = value, .lease = lease};
	struct etcd_op get = {.type = ETCD_OP_RANGE, .key = key};
	struct etcd_kvs r = {0};
	bool ok = false;
	int rc = etcd_txn(c, cmps, ncmps, &put, 1, &get, 1, &ok, &r, e);
	if (rc == ETCD_OK && !ok && is_own_write(&r, key, value, lease, need_lease))
		ok = true;
	etcd_kvs_free(&r);
	if (rc == ETCD_OK && done)
		*done = ok;
	return rc;
}

int etcd_create(struct etcd_client *c, const char *key, const char *value, int64_t lease,
		bool *created, struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || value == NULL)
		return etcd_bad_arg(e, "etcd create: no key or value");
	struct etcd_cmp cmp = {.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL,
			       .number = 0};
	return cas_put(c, &cmp, 1, key, value, lease, true, created, e);
}

int etcd_put_if_value(struct etcd_client *c, const char *key, const char *expected,
		      const char *value, int64_t lease, bool *done, struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || value == NULL || expected == NULL)
		return etcd_bad_arg(e, "etcd put_if_value: no key, value or expected value");
	/* VALUE == "" would also match an absent key; require existence too. */
	struct etcd_cmp cmp[2] = {
		{.key = key, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = expected},
		{.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_GREATER, .number = 0},
	};
	return cas_put(c, cmp, 2, key, value, lease, false, done, e);
}

int etcd_delete_if_value(struct etcd_client *c, const char *key, const char *expected,
			 bool *done, struct pgha_err *e)
{
	if (key == NULL || key[0] == '\0' || expected == NULL)
		return etcd_bad_arg(e, "etcd delete_if_value: no key or expected value");
	struct etcd_cmp cmp[2] = {
		{.key = key, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = expected},
		{.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_GREATER, .number = 0},
	};
	struct etcd_op del = {.type = ETCD_OP_DELETE, .key = key};
	return etcd_txn(c, cmp, 2, &del, 1, NULL, 0, done, NULL, e);
}

/* ---------------------------------------------------------------- leases */

struct grant_ctx {
	int64_t id;
	int64_t ttl;
};

static int dec_grant_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	struct grant_ctx *g = ctx;
	return etcd_dec_lease_grant(body, &g->id, &g->ttl, e);
}

int etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, int64_t *lease_id, struct pgha_err *e)
{
	if (ttl_s <= 0)
		return etcd_bad_arg(e, "etcd lease grant: the TTL must be positive");
	struct grant_ctx g = {0, 0};
	char *body = etcd_enc_lease_grant(ttl_s);
	int rc = etcd_call(c, "/v3/lease/grant", body, dec_grant_ctx, &g, e);
	free(body);
	if (rc == ETCD_OK)
		*lease_id = g.id;
	return rc;
}

static int dec_keepalive_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	return etcd_dec_lease_keepalive(body, ctx, e);
}

int etcd_lease_keepalive(struct etcd_client *c, int64_t lease_id, int64_t *ttl_left,
			 struct pgha_err *e)
{
	int64_t ttl = 0;
	char *body = etcd_enc_lease_id(lease_id);
	int rc = etcd_call(c, "/v3/lease/keepalive", body, dec_keepalive_ctx, &ttl, e);
	free(body);
	if (rc == ETCD_OK && ttl_left)
		*ttl_left = ttl;
	return rc;
}

static int dec_revoke_ctx(const char *body, void *ctx, struct pgha_err *e)
{
	int64_t rev;
	return etcd_dec_put(body, &rev, e); /* a bare {"header":...} like put's */
}

/* Both /v3/lease/revoke and /v3/kv/lease/revoke work on 3.4; the former is
 * the path newer releases keep. */
int etcd_lease_revoke(struct etcd_client *c, int64_t lease_id, struct pgha_err *e)
{
	char *body = etcd_enc_lease_id(lease_id);
	int rc = etcd_call(c, "/v3/lease/revoke", body, dec_revoke_ctx, NULL, e);
	free(body);
	return rc;
}