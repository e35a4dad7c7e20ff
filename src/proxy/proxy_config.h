/*
 * proxy_config.h — `pgha proxy` configuration (one INI file) and its option
 * table; `pgha proxy --help` prints it.
 */
#ifndef PGHA_PROXY_CONFIG_H
#define PGHA_PROXY_CONFIG_H

#include <stdbool.h>

#include "common/config.h"
#include "common/err.h"
#include "proxy/route.h"

enum pool_mode { POOL_TRANSACTION = 0, POOL_SESSION = 1 };

/* TLS to PostgreSQL ([tls] server_sslmode), libpq's sslmode values in order of strictness. */
enum server_sslmode { SSLMODE_DISABLE, SSLMODE_PREFER, SSLMODE_REQUIRE, SSLMODE_VERIFY_CA, SSLMODE_VERIFY_FULL };

/* How the proxy may answer a server that asks it to log in (server_auth_methods). */
enum { SERVER_AUTH_SCRAM = 1, SERVER_AUTH_MD5 = 2, SERVER_AUTH_PASSWORD = 4 };

struct proxy_config {
	/* [cluster] */
	char *cluster_name;
	char *etcd_prefix;
	/* [etcd] */
	char *etcd_endpoints;
	char *etcd_username;
	char *etcd_password_file;
	int etcd_request_timeout_ms;
	char *etcd_ca_file;
	char *etcd_cert_file;
	char *etcd_key_file;
	int etcd_sync_interval_ms;
	/* [proxy] */
	char *name;
	char *listen;            /* read-write port */
	char *listen_ro;         /* read-only port, "" = none */
	char *metrics_listen;    /* Prometheus /metrics, "" = none */
	char *unix_socket_dir;   /* the ports as unix sockets too, "" = none */
	char *unix_socket_mode_text;
	char *pool_mode_text;
	int pool_size;
	int max_client_conn;     /* logged-in clients */
	int max_preauth_conn;    /* connections not logged in yet */
	int hold_timeout_ms;
	int switchover_hold_ms;
	int server_connect_timeout_ms;
	int server_idle_timeout_ms;
	int server_lifetime_ms;
	int client_idle_timeout_ms;
	int client_login_timeout_ms;
	char *server_reset_query;
	char *ignore_startup_parameters;
	bool transaction_pinning;
	char *transaction_pinning_pools;   /* "user@database:on|off, ..." ('*' any): overrides per pool */
	int max_prepared_statements;
	bool read_your_writes;
	int ryw_wait_ms;
	char *rw_split_text;
	char *rw_split_safe_functions;
	int ro_max_lag;          /* bytes */
	bool ro_fallback_leader;
	char *region;            /* where this proxy runs ("": none): reads prefer standbys there (locality.h) */
	char *zone;
	/*
	 * The primary cluster's members (host:port,...), for when this proxy's
	 * cluster is a standby cluster: writes go to the one its standby leader
	 * streams from (route.h). Parsed into primary_fwd. Not reloadable.
	 */
	char *primary_hosts;
	char *standby_writes;     /* forward or refuse (primary_fwd.refuse) */
	struct route_forward primary_fwd;
	int log_level;
	int log_format;           /* enum log_format */
	/* [tls] */
	char *tls_cert_file;
	char *tls_key_file;
	char *tls_ca_file;
	char *tls_min_protocol;
	bool tls_require;
	char *tls_server_sslmode_text;
	char *tls_server_ca_file;
	char *tls_server_cert_file;
	char *tls_server_key_file;
	/* [auth] */
	char *auth_type;         /* scram-sha-256, md5 or trust */
	char *auth_file;
	char *admin_users;
	char *server_auth_methods; /* what a server login may answer with a plaintext password */
	char *auth_user;         /* role running auth_query; "" = no auth_query */
	char *auth_query;        /* $1 = the user name; returns (name, secret) */
	char *auth_user_password_file;
	char *auth_dbname;
	int auth_query_timeout_ms;
	int auth_query_cache_ms;

	/* derived */
	enum pool_mode pool_mode;
	int rw_split;             /* enum rw_split (split.h) */
	unsigned server_auth_mask; /* SERVER_AUTH_* */
	enum server_sslmode server_sslmode;
	unsigned unix_socket_mode; /* permission bits of the unix sockets */
	char *path;
};

extern const struct config_table proxy_config_table;

int proxy_config_load(const char *path, struct proxy_config *cfg, struct pgha_err *e) PGHA_MUSTCHECK;
void proxy_config_free(struct proxy_config *cfg);
/*
 * The unix socket of the port of listen ("host:port", checked by
 * proxy_config_load) under unix_socket_dir: "<dir>/.s.PGSQL.<port>", the name
 * libpq looks for, so `psql -h DIR -p PORT` connects. It fits a sockaddr_un
 * (checked by proxy_config_load as well).
 */
void proxy_unix_socket_path(const struct proxy_config *cfg, const char *listen, char *buf, size_t len);
/*
 * transaction_pinning for the pool of user and database: the first entry of
 * transaction_pinning_pools that matches (checked by proxy_config_load), else
 * transaction_pinning.
 */
bool proxy_pinning_for(const struct proxy_config *cfg, const char *user, const char *database);
/*
 * server_sslmode (text -> cfg->server_sslmode) and what it needs: verify-ca
 * and verify-full need server_ca_file, server_cert_file and server_key_file
 * go together. e: without the file name.
 */
int proxy_sslmode_check(struct proxy_config *cfg, struct pgha_err *e) PGHA_MUSTCHECK;
/* libpq's name of m ("verify-full"); inline, as files below this one use it. */
static inline const char *proxy_sslmode_name(enum server_sslmode m)
{
	static const char *const names[] = {"disable", "prefer", "require", "verify-ca", "verify-full"};
	return names[m];
}
/* "scram-sha-256, md5" -> SERVER_AUTH_* bits; an unknown or empty list is an error. */
int proxy_server_auth_parse(const char *text, unsigned *mask, struct pgha_err *e) PGHA_MUSTCHECK;

#endif
