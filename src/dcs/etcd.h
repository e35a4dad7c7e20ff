/*
 * etcd.h — etcd v3 client over the JSON gateway (HTTP + JSON, libcurl + jansson).
 *
 * Contract
 * - A client holds a list of endpoints ("http://127.0.0.1:2379,http://..."). Each
 *   call is tried on the current endpoint; on a transport failure (connect
 *   refused, timeout, HTTP 5xx, "etcdserver: leader changed" ...) the client
 *   moves to the next endpoint and tries again, until the call's deadline
 *   (opts.deadline_ms) runs out. Every single HTTP request has its own timeout
 *   (opts.request_timeout_ms). A call never blocks longer than its deadline.
 * - A reply that is not the JSON etcd sends (garbage, wrong types, missing
 *   fields) is ETCD_EPROTO with a message naming the endpoint, the path and
 *   what was wrong. Never a crash.
 * - With a username, the client authenticates (/v3/auth/authenticate) and sends
 *   the token; an expired/invalid token is refreshed once per call. The password
 *   is copied into the client and wiped on etcd_free(); it is never logged.
 * - Keys and values are C strings here; base64 on the wire is the codec's job.
 * - A client is NOT thread-safe: use one per thread. A watch owns its own
 *   connection and thread.
 */
#ifndef PGHA_DCS_ETCD_H
#define PGHA_DCS_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* Return codes (0 = success). */
enum {
	ETCD_OK = 0,
	ETCD_EUNAVAIL = -1,   /* no endpoint answered before the deadline */
	ETCD_EPROTO = -2,     /* a reply we could not understand */
	ETCD_ENOLEASE = -3,   /* the lease does not exist (expired or revoked) */
	ETCD_EAUTH = -4,      /* authentication failed / permission denied */
	ETCD_EINVAL = -5,     /* bad argument from the caller */
};

struct etcd_opts {
	const char *endpoints;     /* comma-separated URLs, required */
	const char *username;      /* NULL or "" = no auth */
	const char *password;      /* copied; NULL if no auth */
	int request_timeout_ms;    /* one HTTP request (default 2000) */
	int deadline_ms;           /* one call, all retries included (default 5000) */
	const char *ca_file;       /* TLS CA bundle for https endpoints, NULL = system */
	const char *cert_file;     /* client certificate for https endpoints, NULL = none */
	const char *key_file;      /* its private key (required with cert_file) */
	/*
	 * Endpoint auto-sync (clientv3's AutoSyncInterval): every this many ms,
	 * and after every endpoint failed, the client asks etcd for its members
	 * (/v3/cluster/member/list) and uses their client URLs, then the
	 * configured endpoints as a fallback. 0 = off (short-lived clients).
	 */
	int sync_interval_ms;
};

struct etcd_client;

struct etcd_client *etcd_new(const struct etcd_opts *opts, struct pgha_err *e);
void etcd_free(struct etcd_client *c);
/* Change the per-call deadline (opts.deadline_ms) of later calls. */
void etcd_set_deadline(struct etcd_client *c, int deadline_ms);
/* Endpoint the client used last (for log lines). */
const char *etcd_current_endpoint(const struct etcd_client *c);
/*
 * Ask etcd for its members now (one pass over the endpoints, each within
 * request_timeout_ms) and use their client URLs (same scheme as the
 * configured endpoints, at most 32) followed by the configured endpoints. A
 * failed answer, or one without a usable URL, keeps the current list
 * (ETCD_EPROTO / ETCD_EUNAVAIL). Logs a change.
 */
int etcd_sync_endpoints(struct etcd_client *c, struct pgha_err *e);
/* The endpoint list in use, comma-separated (caller frees). */
char *etcd_endpoints_text(const struct etcd_client *c);

/*
 * The TLS options of opts checked before the first call: cert_file and
 * key_file together, https endpoints only, the files readable PEM, the key
 * matching, the certificate valid now (common/tlsfile.c). Whether etcd
 * trusts the certificate is etcd's --trusted-ca-file: only etcd can say. names[] are how the caller spells ca_file, cert_file
 * and key_file in its errors ("[etcd] ca_file", "--etcd-ca-file").
 */
int etcd_check_tls(const struct etcd_opts *opts, const char *const names[3], struct pgha_err *e)
	PGHA_MUSTCHECK;

struct etcd_kv {
	char *key;
	char *value;          /* NUL-terminated; value_len excludes the NUL */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
};

struct etcd_kvs {
	struct etcd_kv *kvs;
	size_t count;
	int64_t revision;     /* store revision at the time of the read */
};

void etcd_kvs_free(struct etcd_kvs *r);
/* Find a key in a result; NULL if absent. */
const struct etcd_kv *etcd_kvs_find(const struct etcd_kvs *r, const char *key);

/* Reads. A missing key is success with count == 0. */
int etcd_get(struct etcd_client *c, const char *key, struct etcd_kvs *out, struct pgha_err *e);
int etcd_get_prefix(struct etcd_client *c, const char *prefix, struct etcd_kvs *out, struct pgha_err *e);

/* Writes. lease 0 = no lease. */
int etcd_put(struct etcd_client *c, const char *key, const char *value, int64_t lease, struct pgha_err *e);
/* *deleted (may be NULL) receives the number of keys deleted. */
int etcd_delete(struct etcd_client *c, const char *key, int64_t *deleted, struct pgha_err *e);
int etcd_delete_prefix(struct etcd_client *c, const char *prefix, int64_t *deleted, struct pgha_err *e);

/* Transactions (compare-and-swap). */
enum etcd_cmp_target { ETCD_CMP_VERSION, ETCD_CMP_CREATE, ETCD_CMP_MOD, ETCD_CMP_VALUE, ETCD_CMP_LEASE };
enum etcd_cmp_result { ETCD_CMP_EQUAL, ETCD_CMP_NOT_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS };

struct etcd_cmp {
	const char *key;
	enum etcd_cmp_target target;
	enum etcd_cmp_result result;
	int64_t number;        /* for VERSION, CREATE, MOD, LEASE */
	const char *value;     /* for VALUE */
};

enum etcd_op_type { ETCD_OP_PUT, ETCD_OP_DELETE, ETCD_OP_RANGE };

struct etcd_op {
	enum etcd_op_type type;
	const char *key;
	const char *value;     /* PUT */
	int64_t lease;         /* PUT */
	bool prefix;           /* DELETE / RANGE over a prefix */
};

/*
 * Run a transaction. *succeeded tells which branch ran. If ranges is not NULL,
 * the kvs of every RANGE op of the branch that ran are appended to it (in op
 * order).
 */
int etcd_txn(struct etcd_client *c, const struct etcd_cmp *cmps, size_t ncmps,
	     const struct etcd_op *success, size_t nsuccess, const struct etcd_op *failure,
	     size_t nfailure, bool *succeeded, struct etcd_kvs *ranges, struct pgha_err *e);

/* Convenience transactions built on etcd_txn. */
/* Create key only if it does not exist. */
int etcd_create(struct etcd_client *c, const char *key, const char *value, int64_t lease,
		bool *created, struct pgha_err *e);
/* Put only if the key currently holds `expected`. */
int etcd_put_if_value(struct etcd_client *c, const char *key, const char *expected,
		      const char *value, int64_t lease, bool *done, struct pgha_err *e);
/* Delete only if the key currently holds `expected`. */
int etcd_delete_if_value(struct etcd_client *c, const char *key, const char *expected,
			 bool *done, struct pgha_err *e);

/*
 * An administrative call: POST a JSON body to path (e.g. "/v3/auth/enable") with
 * the usual retries; the reply's content is not decoded, an etcd error is the
 * result. The body may hold a password: callers wipe it; it is never logged.
 */
int etcd_post(struct etcd_client *c, const char *path, const char *body, struct pgha_err *e);

/* Leases. */
int etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, int64_t *lease_id, struct pgha_err *e);
/* One keep-alive round trip. ETCD_ENOLEASE if the lease is gone. *ttl_left may be NULL. */
int etcd_lease_keepalive(struct etcd_client *c, int64_t lease_id, int64_t *ttl_left, struct pgha_err *e);
int etcd_lease_revoke(struct etcd_client *c, int64_t lease_id, struct pgha_err *e);

/* Watch (streaming /v3/watch) on a key prefix. */
enum etcd_event_type { ETCD_EV_PUT, ETCD_EV_DELETE };

struct etcd_event {
	enum etcd_event_type type;
	const struct etcd_kv *kv;   /* valid only during the callback */
};

/*
 * Called from the watch thread for every event, in order. `revision` is the
 * header revision of the batch. Keep it short; copy what you need.
 * Called with ev == NULL after the watch (re)connects or loses events
 * (compaction): the consumer should re-read the whole prefix.
 */
typedef void (*etcd_watch_cb)(void *arg, const struct etcd_event *ev, int64_t revision);

struct etcd_watch;

/*
 * Start watching `prefix` from revision start_rev (0 = from now). The watch runs
 * in its own thread with its own connection; it survives endpoint failures by
 * reconnecting (with backoff, across endpoints) from the last revision seen.
 */
struct etcd_watch *etcd_watch_start(const struct etcd_opts *opts, const char *prefix,
				    int64_t start_rev, etcd_watch_cb cb, void *arg,
				    struct pgha_err *e);
/* Stop the thread and free everything (returns within ~1 s). */
void etcd_watch_stop(struct etcd_watch *w);

/*
 * etcd_auth.c: turn authentication on (idempotent, for `pgha up`'s own etcd):
 * user root (root_password) and user `user` (password) whose role of the same
 * name may read and write the keys under `prefix` and nothing else, then
 * auth enable. Existing users and roles are kept.
 */
int etcd_auth_setup(struct etcd_client *c, const char *root_password, const char *user,
		    const char *password, const char *prefix, struct pgha_err *e);

#endif
