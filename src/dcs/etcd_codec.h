/*
 * etcd_codec.h — pure encode/decode of the etcd v3 JSON gateway messages.
 * No I/O: every function takes or returns text, so the unit tests can feed it
 * any reply, well-formed or not.
 *
 * Decoders return ETCD_OK or ETCD_EPROTO (with a message saying what was wrong),
 * or for replies that carry an etcd error ({"error":..., "code":...}), the mapped
 * code (ETCD_ENOLEASE for "requested lease not found", ETCD_EAUTH for auth
 * errors, ETCD_EUNAVAIL for "leader changed"/"no leader"/"timeout" style errors).
 */
#ifndef PGHA_DCS_ETCD_CODEC_H
#define PGHA_DCS_ETCD_CODEC_H

#include <stddef.h>
#include "common/err.h"
#include "dcs/etcd.h"

/* base64 (standard alphabet, padded). Caller frees. */
char *b64_encode(const void *data, size_t len);
/* Returns NULL on invalid input; *len receives the decoded length; result NUL-terminated. */
char *b64_decode(const char *s, size_t *len);

/* The end of a key range covering every key that starts with prefix. Caller frees. */
char *etcd_prefix_end(const char *prefix, size_t *len);

/* Request bodies (caller frees). */
char *etcd_enc_range(const char *key, bool prefix);
char *etcd_enc_put(const char *key, const char *value, int64_t lease);
char *etcd_enc_delete(const char *key, bool prefix);
char *etcd_enc_txn(const struct etcd_cmp *cmps, size_t ncmps, const struct etcd_op *success,
		   size_t nsuccess, const struct etcd_op *failure, size_t nfailure);
char *etcd_enc_lease_grant(int64_t ttl_s);
char *etcd_enc_lease_id(int64_t lease_id);                 /* keepalive & revoke */
char *etcd_enc_watch_create(const char *prefix, int64_t start_rev);
char *etcd_enc_auth(const char *user, const char *password);

/* Reply decoders. */
int etcd_dec_error(const char *body, struct pgha_err *e);    /* body is an error object? */
/* An HTTP answer that is not etcd's error object, explained (the start of its text, a known cause). */
void etcd_explain_foreign(long status, const char *body, struct pgha_err *e);
int etcd_dec_range(const char *body, struct etcd_kvs *out, struct pgha_err *e);
int etcd_dec_put(const char *body, int64_t *revision, struct pgha_err *e);
int etcd_dec_delete(const char *body, int64_t *deleted, struct pgha_err *e);
int etcd_dec_txn(const char *body, bool *succeeded, struct etcd_kvs *ranges, struct pgha_err *e);
int etcd_dec_lease_grant(const char *body, int64_t *lease_id, int64_t *ttl, struct pgha_err *e);
int etcd_dec_lease_keepalive(const char *body, int64_t *ttl_left, struct pgha_err *e);
int etcd_dec_auth(const char *body, char **token, struct pgha_err *e);
/*
 * /v3/cluster/member/list: the members' client URLs with the given scheme
 * ("http" or "https"), at most max of them (more is ETCD_EPROTO). URLs with
 * another scheme or odd characters are left out; *urls (caller frees each and
 * the array) may hold none.
 */
int etcd_dec_member_urls(const char *body, const char *scheme, size_t max, char ***urls, size_t *n,
			 struct pgha_err *e);

/*
 * One message of the watch stream: {"result":{"header":..., "created":true,
 * "events":[...]}}. Calls cb for each event. *revision receives the header
 * revision; *canceled is set when etcd canceled the watch (compacted revision).
 */
int etcd_dec_watch_msg(const char *body, etcd_watch_cb cb, void *arg, int64_t *revision,
		       bool *canceled, int64_t *compact_revision, struct pgha_err *e);

#endif
