#include "proxy/proxy_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "cluster/member.h"
#include "dcs/etcd.h"
#include "proxy/split.h"

#define O(sec, nm, type, field, def, min, max, flags, help) \
	{sec, nm, type, offsetof(struct proxy_config, field), def, min, max, flags, help}

static const struct config_option proxy_options[] = {
	O("cluster", "name", OPT_STRING, cluster_name, "pgha", 1, 0, 0,
	  "the cluster to serve (etcd keys under <prefix>/<name>/)"),
	O("cluster", "prefix", OPT_STRING, etcd_prefix, "/pgha", 1, 0, 0, "etcd key prefix"),

	O("etcd", "endpoints", OPT_STRING, etcd_endpoints, "http://127.0.0.1:2379", 1, 0, 0,
	  "comma-separated etcd client URLs"),
	O("etcd", "username", OPT_STRING, etcd_username, "", 1, 0, 0, "etcd user (empty: none)"),
	O("etcd", "password_file", OPT_STRING, etcd_password_file, "", 1, 0, 0,
	  "file holding the etcd user's password"),
	O("etcd", "request_timeout", OPT_DURATION, etcd_request_timeout_ms, "1500ms", 100, 60000, 0,
	  "timeout of one etcd request"),
	O("etcd", "ca_file", OPT_STRING, etcd_ca_file, "", 1, 0, 0,
	  "https endpoints: PEM file of the CA that signed etcd's server certificates (empty: the system's CAs); "
	  "the certificate and host name are always verified"),
	O("etcd", "cert_file", OPT_STRING, etcd_cert_file, "", 1, 0, 0,
	  "https endpoints: client certificate (PEM) for etcd's --client-cert-auth; checked at start (readable, "
	  "matching key_file, valid now); etcd must trust its CA (--trusted-ca-file)"),
	O("etcd", "key_file", OPT_STRING, etcd_key_file, "", 1, 0, 0,
	  "private key (PEM, not group/world writable) of cert_file"),
	O("etcd", "sync_interval", OPT_DURATION, etcd_sync_interval_ms, "30s", 0, 3600000, 0,
	  "every this long (and after every endpoint failed) ask etcd for its members and use their client "
	  "URLs, then endpoints as a fallback, so a replaced member is found without a restart; 0: off"),

	O("proxy", "name", OPT_STRING, name, "proxy", 1, 0, 0, "this proxy's name (shown in etcd)"),
	O("proxy", "listen", OPT_STRING, listen, "127.0.0.1:6432", 1, 0, 0,
	  "host:port of the read-write port (transactions go to the leader)"),
	O("proxy", "listen_ro", OPT_STRING, listen_ro, "", 1, 0, 0,
	  "host:port of the read-only port (standbys within ro_max_lag); empty: none"),
	O("proxy", "metrics_listen", OPT_STRING, metrics_listen, "", 1, 0, 0,
	  "host:port serving Prometheus metrics at /metrics; empty: none"),
	O("proxy", "unix_socket_dir", OPT_STRING, unix_socket_dir, "", 1, 0, 0,
	  "directory where the proxy listens on unix sockets too: .s.PGSQL.<port> for the port of listen "
	  "(and of listen_ro), as PostgreSQL names them, so psql -h DIR -p PORT connects; a stale one "
	  "left by a proxy that died is replaced, the files are removed at exit; empty: none"),
	O("proxy", "unix_socket_mode", OPT_STRING, unix_socket_mode_text, "0777", 1, 0, 0,
	  "permissions of the unix sockets, in octal (connecting needs write permission); 0777: "
	  "anyone on the host may try to log in, as with PostgreSQL's default"),
	O("proxy", "pool_mode", OPT_STRING, pool_mode_text, "transaction", 1, 0, 0,
	  "transaction (a server per transaction) or session (a server per client connection)"),
	O("proxy", "pool_size", OPT_INT, pool_size, "20", 1, 10000, OPT_RELOAD,
	  "server connections per (database, user, port)"),
	O("proxy", "max_client_conn", OPT_INT, max_client_conn, "10000", 1, 1000000, OPT_RELOAD,
	  "logged-in client connections at once; more are refused with an error (53300)"),
	O("proxy", "max_preauth_conn", OPT_INT, max_preauth_conn, "1000", 1, 1000000, OPT_RELOAD,
	  "connections still logging in (startup packet, TLS, authentication) at once, counted apart "
	  "from max_client_conn; more are refused at once (53300): idle or slow sockets cannot keep "
	  "logged-in clients or new logins out for longer than client_login_timeout"),
	O("proxy", "hold_timeout", OPT_DURATION, hold_timeout_ms, "30s", 0, 3600000, OPT_RELOAD,
	  "during a failover, new transactions wait this long for the new leader"),
	O("proxy", "switchover_hold", OPT_DURATION, switchover_hold_ms, "30s", 1000, 600000, OPT_RELOAD,
	  "longest a planned switchover holds new read-write transactions here, whatever etcd says"),
	O("proxy", "server_connect_timeout", OPT_DURATION, server_connect_timeout_ms, "5s", 100,
	  600000, OPT_RELOAD, "connecting and logging in to PostgreSQL"),
	O("proxy", "server_idle_timeout", OPT_DURATION, server_idle_timeout_ms, "600s", 0, 86400000,
	  OPT_RELOAD, "close server connections idle this long (0: never)"),
	O("proxy", "server_lifetime", OPT_DURATION, server_lifetime_ms, "3600s", 0, 86400000,
	  OPT_RELOAD, "close server connections this old when they are next idle (0: never)"),
	O("proxy", "client_idle_timeout", OPT_DURATION, client_idle_timeout_ms, "0", 0, 86400000,
	  OPT_RELOAD, "close client connections idle this long (0: never)"),
	O("proxy", "client_login_timeout", OPT_DURATION, client_login_timeout_ms, "10s", 100,
	  3600000, OPT_RELOAD, "a client must finish startup, TLS and authentication within this "
	  "(time waiting for an auth_query lookup excepted); a login takes a few round trips, so 10 s "
	  "leaves room for slow networks while a socket that sends nothing holds a login slot briefly"),
	O("proxy", "server_reset_query", OPT_STRING, server_reset_query, "DISCARD ALL", 1, 0,
	  OPT_RELOAD, "run on a server before another client gets it (session mode)"),
	O("proxy", "ignore_startup_parameters", OPT_STRING, ignore_startup_parameters, "",
	  1, 0, OPT_RELOAD, "comma-separated startup parameters to drop; the others (options=-c ... "
	  "included) are the client's own settings, set on each server it gets"),
	O("proxy", "read_your_writes", OPT_BOOL, read_your_writes, "off", 1, 0, OPT_RELOAD,
	  "transaction mode: a read on the read-only port sees every write acknowledged through this proxy "
	  "before it began (a standby that replayed far enough, else the leader); costs one LSN query per "
	  "read-write transaction (docs/READ_YOUR_WRITES.md)"),
	O("proxy", "ryw_wait", OPT_DURATION, ryw_wait_ms, "100ms", 0, 10000, OPT_RELOAD,
	  "read_your_writes: how long a read waits for its standby to replay far enough before it runs on "
	  "the leader"),
	O("proxy", "rw_split", OPT_STRING, rw_split_text, "off", 1, 0, 0,
	  "transaction mode, with read_your_writes: on the read-write port, transactions that begin READ "
	  "ONLY (transactions), and statements the parser proves read-only (statements), run on a standby "
	  "that has replayed the client's writes (docs/READ_YOUR_WRITES.md); off: all on the leader"),
	O("proxy", "rw_split_safe_functions", OPT_STRING, rw_split_safe_functions, "default", 1, 0, 0,
	  "rw_split = statements: the functions a SELECT may call and still go to a standby, comma-separated; "
	  "\"default\" is the built-in list of functions that neither write nor need a transaction ID"),
	O("proxy", "max_prepared_statements", OPT_INT, max_prepared_statements, "500", 0, 1000000, OPT_RELOAD,
	  "transaction mode: drivers' named statements kept prepared on one server connection; past it the "
	  "one used least recently is closed there (prepared again when next used); 0: no limit"),
	O("proxy", "transaction_pinning", OPT_BOOL, transaction_pinning, "on", 1, 0, OPT_RELOAD,
	  "transaction mode: a client whose session holds what cannot move to another server (LISTEN, "
	  "session advisory locks, temporary tables, WITH HOLD cursors, LOAD) keeps its server until it "
	  "is gone; off: such statements fail with 0A000"),
	O("proxy", "transaction_pinning_pools", OPT_STRING, transaction_pinning_pools, "", 1, 0, OPT_RELOAD,
	  "transaction_pinning per pool, first match wins: user@database:on|off, comma-separated, '*' for any "
	  "user or database (e.g. \"batch@*:off, *@reports:on\"); the others follow transaction_pinning"),
	O("proxy", "ro_max_lag", OPT_INT, ro_max_lag, "1048576", 0, 2147483647, OPT_RELOAD,
	  "read-only port: skip standbys more than this many bytes behind"),
	O("proxy", "ro_fallback_leader", OPT_BOOL, ro_fallback_leader, "on", 1, 0, OPT_RELOAD,
	  "read-only port: use the leader when no standby qualifies"),
	O("proxy", "region", OPT_STRING, region, "", 1, 0, OPT_RELOAD,
	  "the region this proxy runs in (the agents' [node] region): reads (read-only port, rw_split) go to "
	  "usable standbys of this region, those of other regions only while none here is usable (within "
	  "ro_max_lag), the leader last (ro_fallback_leader); servers elsewhere are closed when their client "
	  "releases them once one here is usable again; empty: every standby alike"),
	O("proxy", "zone", OPT_STRING, zone, "", 1, 0, OPT_RELOAD,
	  "the zone within region this proxy runs in (the agents' [node] zone): within the region, standbys "
	  "of this zone first; empty: every standby of the region alike"),
	O("proxy", "primary_hosts", OPT_STRING, primary_hosts, "", 1, 0, 0,
	  "when this proxy's cluster is a standby cluster ([standby_cluster] of its agents): the primary "
	  "cluster's members, host:port,... (as the agents' [standby_cluster] primary_hosts); read-write "
	  "work goes to the one of them the standby leader streams from (the primary), reads stay local; "
	  "empty: read-write clients wait, then fail, while the cluster is a standby cluster"),
	O("proxy", "standby_writes", OPT_STRING, standby_writes, "forward", 1, 0, 0,
	  "when this proxy's cluster is a standby cluster: forward (read-write work to the primary cluster, "
	  "primary_hosts) or refuse (read-write clients get an error at login, SQLSTATE 25006, naming the "
	  "primary cluster)"),
	O("proxy", "log_format", OPT_LOGFORMAT, log_format, "text", 1, 0, 0,
	  "text (one readable line per event) or json (one JSON object per line, for log pipelines)"),
	O("proxy", "log_level", OPT_LOGLEVEL, log_level, "info", 1, 0, OPT_RELOAD,
	  "debug, info, warn or error"),

	O("tls", "cert_file", OPT_STRING, tls_cert_file, "", 1, 0, OPT_RELOAD,
	  "PEM certificate (chain) the proxy shows clients; with key_file, SSLRequest is answered 'S' "
	  "(empty: no TLS, SSLRequest answered 'N'); re-read on SIGHUP/RELOAD"),
	O("tls", "key_file", OPT_STRING, tls_key_file, "", 1, 0, OPT_RELOAD, "PEM private key of cert_file"),
	O("tls", "ca_file", OPT_STRING, tls_ca_file, "", 1, 0, OPT_RELOAD,
	  "PEM CA certificates: when set, clients must present a certificate signed by one of them"),
	O("tls", "min_protocol", OPT_STRING, tls_min_protocol, "TLSv1.2", 1, 0, OPT_RELOAD,
	  "oldest TLS version accepted: TLSv1.2 or TLSv1.3"),
	O("tls", "require", OPT_BOOL, tls_require, "off", 1, 0, OPT_RELOAD,
	  "refuse clients that do not ask for TLS (cancel requests excepted)"),
	O("tls", "server_sslmode", OPT_STRING, tls_server_sslmode_text, "prefer", 1, 0, OPT_RELOAD,
	  "TLS to PostgreSQL, as libpq's sslmode: disable, prefer (TLS when the server offers it), "
	  "require (TLS, certificate not checked), verify-ca (signed by server_ca_file) or verify-full "
	  "(and naming the address the proxy dialled); auth_query and cancel requests follow it"),
	O("tls", "server_ca_file", OPT_STRING, tls_server_ca_file, "", 1, 0, OPT_RELOAD,
	  "PEM CA certificates that sign PostgreSQL's certificates (needed by verify-ca and verify-full)"),
	O("tls", "server_cert_file", OPT_STRING, tls_server_cert_file, "", 1, 0, OPT_RELOAD,
	  "PEM certificate the proxy shows PostgreSQL (its clientcert/cert authentication); empty: none"),
	O("tls", "server_key_file", OPT_STRING, tls_server_key_file, "", 1, 0, OPT_RELOAD,
	  "PEM private key of server_cert_file (mode 0600)"),

	O("auth", "auth_type", OPT_STRING, auth_type, "scram-sha-256", 1, 0, OPT_RELOAD,
	  "how clients authenticate: scram-sha-256, md5 (SCRAM for users whose secret is a SCRAM "
	  "verifier, as PostgreSQL does) or trust"),
	O("auth", "auth_file", OPT_STRING, auth_file, NULL, 1, 0, OPT_REQUIRED | OPT_RELOAD,
	  "users file: lines of \"user\" \"password or SCRAM/md5 verifier\" (as PgBouncer's); with "
	  "a SCRAM verifier the proxy logs in to PostgreSQL with the key a client's SCRAM login gave it, "
	  "with an md5 hash it answers the server's md5 challenge"),
	O("auth", "admin_users", OPT_STRING, admin_users, "", 1, 0, OPT_RELOAD,
	  "comma-separated users allowed on the admin console (database pgha)"),
	O("auth", "server_auth_methods", OPT_STRING, server_auth_methods, "scram-sha-256", 1, 0, OPT_RELOAD,
	  "what the proxy answers when PostgreSQL asks it to log in with a plaintext password from the "
	  "users file: scram-sha-256, md5, password (cleartext), comma-separated; anything else is "
	  "refused, so a server (or an impostor listed in etcd) never gets the password or an md5 "
	  "answer it could attack offline. A stored md5 hash always answers md5 (no downgrade)"),
	O("auth", "auth_user", OPT_STRING, auth_user, "", 1, 0, 0,
	  "role that runs auth_query for users not in the users file (empty: no lookups); its "
	  "password is its plaintext line in the users file, or auth_user_password_file"),
	O("auth", "auth_query", OPT_STRING, auth_query,
	  "SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1", 1, 0, 0,
	  "run as auth_user on the leader (else a standby) with $1 = the user name; returns "
	  "(name, SCRAM verifier or md5 hash) or no row"),
	O("auth", "auth_user_password_file", OPT_STRING, auth_user_password_file, "", 1, 0, 0,
	  "file holding auth_user's password (first line; re-read on SIGHUP); empty: the users file"),
	O("auth", "auth_dbname", OPT_STRING, auth_dbname, "postgres", 1, 0, 0,
	  "database auth_user connects to for auth_query"),
	O("auth", "auth_query_timeout", OPT_DURATION, auth_query_timeout_ms, "5s", 100, 600000, 0,
	  "one lookup (connect and query); a client whose lookup fails gets an error (08006)"),
	O("auth", "auth_query_cache", OPT_DURATION, auth_query_cache_ms, "5s", 0, 3600000, 0,
	  "reuse a lookup's answer (user found or not) for new logins this long (0: look up each login)"),
};

const struct config_table proxy_config_table = {
	proxy_options, sizeof(proxy_options) / sizeof(proxy_options[0]), NULL, 0,
};

/* unix_socket_dir and unix_socket_mode (after listen and listen_ro were checked). */
static int check_unix_socket(struct proxy_config *cfg, const char *path, struct pgha_err *e)
{
	const char *mode = cfg->unix_socket_mode_text;
	char *end;
	unsigned long bits = strtoul(mode, &end, 8);
	if (mode[0] < '0' || mode[0] > '7' || *end != '\0' || bits > 0777)
		return err_set(e, "%s: [proxy] unix_socket_mode = \"%s\": use octal permission bits, 0 to "
			       "0777 (for example 0770: the proxy's user and group only)", path, mode);
	cfg->unix_socket_mode = (unsigned)bits;
	const char *dir = cfg->unix_socket_dir;
	if (dir[0] == '\0')
		return 0;
	if (dir[0] != '/')
		return err_set(e, "%s: [proxy] unix_socket_dir = \"%s\": use an absolute path", path, dir);
	struct sockaddr_un sa;
	if (strlen(dir) + strlen("/.s.PGSQL.65535") >= sizeof(sa.sun_path))
		return err_set(e, "%s: [proxy] unix_socket_dir = \"%s\": too long for a unix socket "
			       "(%zu bytes with the socket's name; at most %zu)", path, dir,
			       strlen(dir) + strlen("/.s.PGSQL.65535"), sizeof(sa.sun_path) - 1);
	return 0;
}

void proxy_unix_socket_path(const struct proxy_config *cfg, const char *listen, char *buf, size_t len)
{
	char host[256];
	int port = 0;
	struct pgha_err e;
	if (parse_host_port(listen, host, sizeof(host), &port, &e) != 0)
		port = 0;   /* cannot happen: proxy_config_load checked it */
	size_t n = strlen(cfg->unix_socket_dir);
	while (n > 0 && cfg->unix_socket_dir[n - 1] == '/')
		n--;
	snprintf(buf, len, "%.*s/.s.PGSQL.%d", (int)n, cfg->unix_socket_dir, port);
}

/*
 * The next entry of a transaction_pinning_pools list from *p: user, database
 * (NUL-terminated copies) and the setting. 0 none left, 1 one, -1 malformed
 * (e says which).
 */
static int next_pinning(const char **p, char *user, char *db, size_t n, bool *on, struct pgha_err *e)
{
	*p += strspn(*p, " ,");
	if (**p == '\0')
		return 0;
	size_t len = strcspn(*p, ",");
	char entry[300];
	snprintf(entry, sizeof(entry), "%.*s", (int)len, *p);
	*p += len;
	for (size_t k = strlen(entry); k > 0 && entry[k - 1] == ' '; k--)
		entry[k - 1] = '\0';
	char *at = strchr(entry, '@'), *colon = strrchr(entry, ':');
	if (at == NULL || colon == NULL || colon < at || at == entry || colon == at + 1 ||
	    (size_t)(at - entry) >= n || (size_t)(colon - at - 1) >= n ||
	    (strcmp(colon + 1, "on") != 0 && strcmp(colon + 1, "off") != 0))
		return err_set(e, "transaction_pinning_pools: \"%s\" is not user@database:on|off (HINT: '*' stands "
			       "for any user or database, e.g. \"batch@*:off\")", entry);
	snprintf(user, n, "%.*s", (int)(at - entry), entry);
	snprintf(db, n, "%.*s", (int)(colon - at - 1), at + 1);
	*on = strcmp(colon + 1, "on") == 0;
	return 1;
}

bool proxy_pinning_for(const struct proxy_config *cfg, const char *user, const char *database)
{
	const char *p = cfg->transaction_pinning_pools ? cfg->transaction_pinning_pools : "";
	char u[128], d[128];
	bool on;
	struct pgha_err e;
	while (next_pinning(&p, u, d, sizeof(u), &on, &e) == 1)
		if ((strcmp(u, "*") == 0 || strcmp(u, user) == 0) && (strcmp(d, "*") == 0 || strcmp(d, database) == 0))
			return on;
	return cfg->transaction_pinning;
}

static int check_rw_split(struct proxy_config *cfg, const char *path, struct pgha_err *e)
{
	static const char *const modes[] = {"off", "transactions", "statements"};
	cfg->rw_split = -1;
	for (int i = 0; i < 3; i++)
		if (strcmp(cfg->rw_split_text, modes[i]) == 0)
			cfg->rw_split = i;
	if (cfg->rw_split < 0)
		return err_set(e, "%s: [proxy] rw_split = \"%s\": use off, transactions or statements", path,
			       cfg->rw_split_text);
	struct pgha_err sub;
	struct split_rules *r = split_rules_new(cfg->rw_split_safe_functions, &sub);
	if (r == NULL)
		return err_set(e, "%s: [proxy] %s", path, sub.msg);
	split_rules_free(r);
	if (cfg->rw_split == RW_SPLIT_OFF)
		return 0;
	if (cfg->pool_mode != POOL_TRANSACTION)
		return err_set(e, "%s: [proxy] rw_split = %s needs pool_mode = transaction (HINT: a session-mode "
			       "client keeps one server; use the read-only port for its reads)", path, cfg->rw_split_text);
	if (!cfg->read_your_writes)
		return err_set(e, "%s: [proxy] rw_split = %s needs read_your_writes = on (HINT: without it a read "
			       "moved to a standby may miss the client's own last write)", path, cfg->rw_split_text);
	return 0;
}

/* [proxy] primary_hosts into cfg->primary_fwd: host:port, ... */
static int parse_primary_hosts(struct proxy_config *cfg, const char *path, struct pgha_err *e)
{
	struct route_forward *f = &cfg->primary_fwd;
	memset(f, 0, sizeof(*f));
	char *list = xstrdup(cfg->primary_hosts), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(list, ",", &save); t != NULL && rc == 0; t = strtok_r(NULL, ",", &save)) {
		char *hp = t + strspn(t, " \t");
		size_t len = strlen(hp);
		while (len > 0 && (hp[len - 1] == ' ' || hp[len - 1] == '\t'))
			hp[--len] = '\0';
		struct pgha_err sub;
		int port = 0;
		if (f->n == ROUTE_MAX_FORWARD)
			rc = err_set(e, "%s: [proxy] primary_hosts: more than %d hosts", path, ROUTE_MAX_FORWARD);
		else if (parse_host_port(hp, f->hosts[f->n].host, sizeof(f->hosts[f->n].host), &port, &sub) != 0)
			rc = err_set(e, "%s: [proxy] primary_hosts: \"%s\": %s\nHINT: write host:port of every member "
				     "of the primary cluster, separated by commas (as its agents' [standby_cluster] "
				     "primary_hosts)", path, hp, sub.msg);
		else
			f->hosts[f->n++].port = port;
	}
	free(list);
	if (rc == 0 && strcmp(cfg->standby_writes, "refuse") != 0 && strcmp(cfg->standby_writes, "forward") != 0)
		rc = err_set(e, "%s: [proxy] standby_writes = \"%s\": use forward or refuse", path, cfg->standby_writes);
	f->refuse = strcmp(cfg->standby_writes, "refuse") == 0;
	if (rc == 0 && f->n == 0 && cfg->primary_hosts[0] != '\0')
		rc = err_set(e, "%s: [proxy] primary_hosts = \"%s\" names no host", path, cfg->primary_hosts);
	return rc;
}

int proxy_config_load(const char *path, struct proxy_config *cfg, struct pgha_err *e)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->path = xstrdup(path);
	if (config_apply_defaults(&proxy_config_table, cfg, e) != 0 ||
	    config_parse_file(&proxy_config_table, path, cfg, e) != 0)
		return -1;
	if (strcmp(cfg->pool_mode_text, "transaction") == 0)
		cfg->pool_mode = POOL_TRANSACTION;
	else if (strcmp(cfg->pool_mode_text, "session") == 0)
		cfg->pool_mode = POOL_SESSION;
	else
		return err_set(e, "%s: [proxy] pool_mode = \"%s\": use transaction or session", path,
			       cfg->pool_mode_text);
	if (check_rw_split(cfg, path, e) != 0)
		return -1;
	const char *pp = cfg->transaction_pinning_pools;
	char pu[128], pd[128];
	bool pon;
	int got;
	struct pgha_err perr;
	while ((got = next_pinning(&pp, pu, pd, sizeof(pu), &pon, &perr)) == 1)
		;
	if (got < 0)
		return err_set(e, "%s: [proxy] %s", path, perr.msg);
	if (strcmp(cfg->auth_type, "scram-sha-256") != 0 && strcmp(cfg->auth_type, "md5") != 0 &&
	    strcmp(cfg->auth_type, "trust") != 0)
		return err_set(e, "%s: [auth] auth_type = \"%s\": use scram-sha-256, md5 or trust", path,
			       cfg->auth_type);
	char host[256];
	int port;
	struct pgha_err sub;
	if (proxy_server_auth_parse(cfg->server_auth_methods, &cfg->server_auth_mask, &sub) != 0)
		return err_set(e, "%s: [auth] server_auth_methods: %s", path, sub.msg);
	if (parse_host_port(cfg->listen, host, sizeof(host), &port, &sub) != 0)
		return err_set(e, "%s: [proxy] listen: %s", path, sub.msg);
	if (cfg->listen_ro[0] && parse_host_port(cfg->listen_ro, host, sizeof(host), &port, &sub) != 0)
		return err_set(e, "%s: [proxy] listen_ro: %s", path, sub.msg);
	if (cfg->metrics_listen[0] && parse_host_port(cfg->metrics_listen, host, sizeof(host), &port, &sub) != 0)
		return err_set(e, "%s: [proxy] metrics_listen: %s", path, sub.msg);
	if (check_unix_socket(cfg, path, e) != 0 || member_where_check(path, "proxy", cfg->region, cfg->zone, e) != 0 ||
	    parse_primary_hosts(cfg, path, e) != 0)
		return -1;
	if (cfg->auth_user_password_file[0] != '\0' && cfg->auth_user[0] == '\0')
		return err_set(e, "%s: [auth] auth_user_password_file is set but auth_user is not", path);
	if (cfg->auth_user[0] != '\0' && strstr(cfg->auth_query, "$1") == NULL)
		return err_set(e, "%s: [auth] auth_query = \"%s\": it must use $1 (the user name looked up)",
			       path, cfg->auth_query);
	if (proxy_sslmode_check(cfg, &sub) != 0)
		return err_set(e, "%s: [tls] %s", path, sub.msg);
	if (cfg->etcd_username[0] != '\0' && cfg->etcd_password_file[0] == '\0')
		return err_set(e, "%s: [etcd] username is set but password_file is not", path);
	static const char *const etcd_tls_names[3] = {"[etcd] ca_file", "[etcd] cert_file", "[etcd] key_file"};
	struct etcd_opts eo = {.endpoints = cfg->etcd_endpoints, .ca_file = cfg->etcd_ca_file,
			       .cert_file = cfg->etcd_cert_file, .key_file = cfg->etcd_key_file};
	struct pgha_err tls_err;
	if (etcd_check_tls(&eo, etcd_tls_names, &tls_err) != 0)
		return err_set(e, "%s: %s", path, tls_err.msg);
	return 0;
}

int proxy_sslmode_check(struct proxy_config *cfg, struct pgha_err *e)
{
	const char *text = cfg->tls_server_sslmode_text;
	int m = -1;
	for (int i = SSLMODE_DISABLE; i <= SSLMODE_VERIFY_FULL; i++)
		if (strcmp(text, proxy_sslmode_name((enum server_sslmode)i)) == 0)
			m = i;
	if (m < 0)
		return err_set(e, "server_sslmode = \"%s\": use disable, prefer, require, verify-ca or verify-full",
			       text);
	cfg->server_sslmode = (enum server_sslmode)m;
	bool cert = cfg->tls_server_cert_file[0] != '\0', key = cfg->tls_server_key_file[0] != '\0';
	if (cert != key)
		return err_set(e, "server_cert_file and server_key_file go together (only %s is set)",
			       cert ? "server_cert_file" : "server_key_file");
	if (m >= SSLMODE_VERIFY_CA && cfg->tls_server_ca_file[0] == '\0')
		return err_set(e, "server_sslmode = %s needs server_ca_file\nHINT: set server_ca_file to the CA "
			       "that signs PostgreSQL's certificates (the agents' [tls] ca_file), or use require "
			       "to encrypt without checking who answers", text);
	return 0;
}

int proxy_server_auth_parse(const char *text, unsigned *mask, struct pgha_err *e)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{"scram-sha-256", SERVER_AUTH_SCRAM}, {"md5", SERVER_AUTH_MD5}, {"password", SERVER_AUTH_PASSWORD},
	};
	*mask = 0;
	const char *p = text;
	while (*p) {
		p += strspn(p, " ,");
		size_t n = strcspn(p, " ,");
		if (n == 0)
			break;
		size_t k = 0;
		while (k < sizeof(methods) / sizeof(methods[0]) &&
		       (strlen(methods[k].name) != n || strncmp(methods[k].name, p, n) != 0))
			k++;
		if (k == sizeof(methods) / sizeof(methods[0]))
			return err_set(e, "\"%.*s\" is not a method: use scram-sha-256, md5 or password", (int)n, p);
		*mask |= methods[k].bit;
		p += n;
	}
	if (*mask == 0)
		return err_set(e, "empty: name at least one method (scram-sha-256)");
	return 0;
}

void proxy_config_free(struct proxy_config *cfg)
{
	config_free_values(&proxy_config_table, cfg);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}
