#include "ha/agent_config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backup/pgbackrest.h"
#include "backup/restore.h"
#include "cluster/backup_key.h"
#include "cluster/config_key.h"
#include "cluster/member.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "dcs/etcd.h"

#define O(sec, nm, type, field, def, min, max, flags, help) \
	{sec, nm, type, offsetof(struct agent_config, field), def, min, max, flags, help}

static const struct config_option agent_options[] = {
	O("cluster", "name", OPT_STRING, cluster_name, "pgha", 1, 0, 0,
	  "cluster name; all members of a cluster share it (etcd keys live under <prefix>/<name>/)"),
	O("cluster", "prefix", OPT_STRING, etcd_prefix, "/pgha", 1, 0, 0,
	  "etcd key prefix shared by all pgha clusters"),
	O("cluster", "ttl", OPT_DURATION, ttl_ms, DYNCFG_TTL_DEFAULT, DYNCFG_TTL_MIN_MS, DYNCFG_TTL_MAX_MS,
	  OPT_RELOAD,
	  "leader lease: a leader that cannot renew it within this time is replaced (node death fails over in about this long)"),
	O("cluster", "loop_wait", OPT_DURATION, loop_wait_ms, DYNCFG_LOOP_WAIT_DEFAULT, DYNCFG_LOOP_WAIT_MIN_MS,
	  DYNCFG_LOOP_WAIT_MAX_MS, OPT_RELOAD,
	  "longest sleep of the HA loop between runs (etcd watch events wake it sooner)"),
	O("cluster", "retry_timeout", OPT_DURATION, retry_timeout_ms, DYNCFG_RETRY_TIMEOUT_DEFAULT,
	  DYNCFG_RETRY_TIMEOUT_MIN_MS, DYNCFG_RETRY_TIMEOUT_MAX_MS, OPT_RELOAD,
	  "how long one etcd operation may retry across endpoints before it counts as failed"),

	O("cluster", "maximum_lag_on_failover", OPT_INT, maximum_lag_on_failover, DYNCFG_MAX_LAG_DEFAULT, 0,
	  DYNCFG_MAX_LAG_MAX,
	  OPT_RELOAD, "a standby more than this many bytes behind the last known leader position is never promoted"),
	O("cluster", "failsafe", OPT_BOOL, failsafe, "on", 1, 0, OPT_RELOAD,
	  "with etcd unreachable, the leader stays primary while every member confirms it cannot reach etcd either"),
	O("cluster", "standby_slots", OPT_STRING, standby_slots, "", 1, 0, 0,
	  "comma-separated physical replication slots the leader keeps for standby clusters (their "
	  "[standby_cluster] primary_slot_name); every new leader creates them, none is ever dropped: WAL is kept "
	  "for them (max_slot_wal_keep_size applies)"),

	O("etcd", "endpoints", OPT_STRING, etcd_endpoints, "http://127.0.0.1:2379", 1, 0, 0,
	  "comma-separated etcd client URLs"),
	O("etcd", "username", OPT_STRING, etcd_username, "", 1, 0, 0,
	  "etcd user (empty: no authentication)"),
	O("etcd", "password_file", OPT_STRING, etcd_password_file, "", 1, 0, 0,
	  "file holding the etcd user's password"),
	O("etcd", "request_timeout", OPT_DURATION, etcd_request_timeout_ms, "1500ms", 100, 60000, 0,
	  "timeout of one HTTP request to one etcd endpoint"),
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

	O("node", "name", OPT_STRING, name, NULL, 1, 0, OPT_REQUIRED,
	  "this member's name, unique in the cluster ([A-Za-z0-9_.-], at most 63 characters)"),
	O("node", "api_listen", OPT_STRING, api_listen, "127.0.0.1:8008", 1, 0, 0,
	  "host:port the HTTP API (health checks, /cluster) listens on"),
	O("node", "api_address", OPT_STRING, api_address, "", 1, 0, 0,
	  "host:port other members and tools use to reach the API (default: api_listen)"),
	O("node", "api_token_file", OPT_STRING, api_token_file, "", 1, 0, 0,
	  "file holding the cluster's bearer token (the same on every member) that POST/DELETE /switchover "
	  "and the members' POST /failsafe require (Authorization: Bearer <token>); empty: the API "
	  "changes nothing and failsafe is off"),
	O("node", "run_as", OPT_STRING, run_as, "postgres", 1, 0, 0,
	  "OS user that runs PostgreSQL when the agent runs as root"),
	O("node", "log_format", OPT_LOGFORMAT, log_format, "text", 1, 0, 0,
	  "text (one readable line per event) or json (one JSON object per line, for log pipelines)"),
	O("node", "log_level", OPT_LOGLEVEL, log_level, "info", 1, 0, OPT_RELOAD,
	  "debug, info, warn or error"),
	O("node", "nofailover", OPT_BOOL, nofailover, "off", 1, 0, OPT_RELOAD,
	  "never promote this member"),
	O("node", "nosync", OPT_BOOL, nosync, "off", 1, 0, OPT_RELOAD,
	  "never choose this member as a synchronous standby (so in synchronous mode it is never promoted)"),
	O("node", "noloadbalance", OPT_BOOL, noloadbalance, "off", 1, 0, OPT_RELOAD,
	  "answer 503 on /replica so load balancers send no reads here"),
	O("node", "priority", OPT_INT, priority, "100", 0, 1000000, OPT_RELOAD,
	  "election priority among equally advanced standbys (higher wins; 0 = never)"),
	O("node", "region", OPT_STRING, region, "", 1, 0, 0,
	  "the region this member runs in (docs/TWO_REGIONS.md): a failover prefers a candidate in the "
	  "old leader's region when it is as advanced, proxies prefer standbys in their own region, and "
	  "synchronous_cross_region wants a synchronous standby outside the leader's; empty: none"),
	O("node", "zone", OPT_STRING, zone, "", 1, 0, 0,
	  "the zone (data centre) within the region, shown with the member; proxies prefer standbys in "
	  "their own zone within their region; empty: none"),

	O("postgresql", "data_dir", OPT_STRING, data_dir, NULL, 1, 0, OPT_REQUIRED,
	  "PostgreSQL data directory (created by initdb or pg_basebackup if missing)"),
	O("postgresql", "bin_dir", OPT_STRING, bin_dir, "/usr/lib/postgresql/15/bin", 1, 0, 0,
	  "directory of postgres, initdb, pg_ctl, pg_basebackup, pg_rewind, pg_controldata"),
	O("postgresql", "listen", OPT_STRING, listen, "127.0.0.1:5432", 1, 0, 0,
	  "host:port PostgreSQL listens on (host may be * or a comma-separated list)"),
	O("postgresql", "address", OPT_STRING, address, "", 1, 0, 0,
	  "host:port other members and clients use to reach PostgreSQL (default: listen)"),
	O("postgresql", "socket_dir", OPT_STRING, socket_dir, "/tmp", 1, 0, 0,
	  "directory for PostgreSQL's unix socket (the agent connects through it)"),
	O("postgresql", "superuser", OPT_STRING, superuser, "postgres", 1, 0, 0,
	  "superuser role the agent uses"),
	O("postgresql", "superuser_password_file", OPT_STRING, superuser_password_file, NULL, 1, 0,
	  OPT_REQUIRED, "file holding the superuser's password"),
	O("postgresql", "replication_user", OPT_STRING, replication_user, "replicator", 1, 0, 0,
	  "role standbys replicate as"),
	O("postgresql", "replication_password_file", OPT_STRING, replication_password_file, NULL, 1,
	  0, OPT_REQUIRED, "file holding the replication role's password"),
	O("postgresql", "allowed_networks", OPT_STRING, allowed_networks, "127.0.0.1/32,::1/128", 1,
	  0, 0, "comma-separated CIDRs allowed to connect and replicate (scram-sha-256) in pg_hba.conf"),
	O("postgresql", "pgpass", OPT_STRING, pgpass, "", 1, 0, 0,
	  "passfile the agent writes for replication (default: <data_dir>/../<name>.pgpass)"),
	O("postgresql", "log_file", OPT_STRING, log_file, "", 1, 0, 0,
	  "PostgreSQL's server log (default: <data_dir>/../<name>.postgresql.log)"),
	O("postgresql", "start_timeout", OPT_DURATION, start_timeout_ms, "60s", 1000, 3600000,
	  OPT_RELOAD, "how long PostgreSQL may take to start accepting connections"),
	O("postgresql", "stop_timeout", OPT_DURATION, stop_timeout_ms, "60s", 1000, 3600000,
	  OPT_RELOAD, "how long a fast shutdown may take before the agent escalates to immediate"),
	O("postgresql", "member_slots_ttl", OPT_DURATION, member_slots_ttl_ms, "30min", 0,
	  7 * 24 * 3600000L, OPT_RELOAD,
	  "the leader keeps the replication slot of a member that left for this long"),
	O("postgresql", "crash_restart_timeout", OPT_DURATION, crash_restart_timeout_ms, "5s", 0, 3600000,
	  OPT_RELOAD, "a leader whose PostgreSQL crashed restarts it in place; if it is not back within this, the key is released"),

	O("standby_cluster", "primary_hosts", OPT_STRING, standby_primary_hosts, "", 1, 0, 0,
	  "comma-separated host:port of the primary cluster's PostgreSQL members: this cluster is then a standby "
	  "cluster (its leader replicates from whichever of them is primary; empty: a cluster of its own); it uses "
	  "[postgresql] replication_user and its password, which both clusters must share"),
	O("standby_cluster", "primary_slot_name", OPT_STRING, standby_primary_slot, "", 1, 0, 0,
	  "physical slot the primary cluster keeps for this one ([cluster] standby_slots there; empty: none)"),
	O("standby_cluster", "archive_stanza", OPT_STRING, standby_archive_stanza, "", 1, 0, 0,
	  "the primary cluster's pgBackRest stanza (its [cluster] name) in the [backup] repository this cluster "
	  "reads too: while a standby cluster, every member's restore_command fetches WAL from it, so a member "
	  "falls back to the archive when the primary removed WAL it still needs (empty: streaming only)"),

	O("backup", "repo_type", OPT_STRING, backup_repo_type, "posix", 1, 0, 0,
	  "pgBackRest repository: posix (a directory, repo_path) or s3 (a bucket, the s3_* options)"),
	O("backup", "repo_path", OPT_STRING, backup_repo_path, "", 1, 0, 0,
	  "posix: pgBackRest repository directory (shared storage mounted at the same path on every member, "
	  "writable by run_as); empty: backups and WAL archiving off. s3: the path inside the bucket (default /pgha). "
	  "With a repository, every member gets archive_mode, archive_command and restore_command, and the leader "
	  "creates the stanza (named after [cluster] name)"),
	O("backup", "retention_full", OPT_INT, backup_retention_full, "2", 1, 9999999, 0,
	  "full backups pgBackRest keeps (older ones and the WAL only they need are expired)"),
	O("backup", "compress_type", OPT_STRING, backup_compress_type, "zstd", 1, 0, 0,
	  "compression of backups and archived WAL: zstd, lz4, gz or none (the agent refuses to start with a "
	  "type its pgbackrest was built without)"),
	O("backup", "process_max", OPT_INT, backup_process_max, "2", 1, 64, 0,
	  "pgBackRest processes for compression and transfer"),
	O("backup", "cipher_pass_file", OPT_STRING, backup_cipher_pass_file, "", 1, 0, 0,
	  "file holding the repository's encryption passphrase (aes-256-cbc); empty: not encrypted. The "
	  "passphrase is written only into pgBackRest's config file (mode 0600)"),
	O("backup", "work_dir", OPT_STRING, backup_work_dir, "", 1, 0, 0,
	  "this member's pgBackRest config, spool, log and lock directories (default: <data_dir>.pgha-backup)"),
	O("backup", "archive_push_queue_max", OPT_STRING, backup_archive_push_queue_max, "1GiB", 1, 0, 0,
	  "WAL waiting to be archived beyond this size is dropped (pgBackRest logs a warning), so a slow or dead "
	  "repository never fills pg_wal; the archive then has a gap and needs a new full backup for "
	  "point-in-time recovery past it"),
	O("backup", "s3_bucket", OPT_STRING, backup_s3_bucket, "", 1, 0, 0,
	  "repo_type = s3: the bucket (it must exist)"),
	O("backup", "s3_endpoint", OPT_STRING, backup_s3_endpoint, "", 1, 0, 0,
	  "repo_type = s3: host[:port] of the S3 service (HTTPS), e.g. s3.eu-west-1.amazonaws.com or minio.lan:9000"),
	O("backup", "s3_region", OPT_STRING, backup_s3_region, "", 1, 0, 0,
	  "repo_type = s3: the bucket's region (self-hosted servers take any, e.g. us-east-1)"),
	O("backup", "s3_key_file", OPT_STRING, backup_s3_key_file, "", 1, 0, 0,
	  "repo_type = s3: file holding the access key id; written only into pgBackRest's config file (mode 0600)"),
	O("backup", "s3_key_secret_file", OPT_STRING, backup_s3_key_secret_file, "", 1, 0, 0,
	  "repo_type = s3: file holding the secret access key; written only into pgBackRest's config file (mode 0600)"),
	O("backup", "s3_uri_style", OPT_STRING, backup_s3_uri_style, "host", 1, 0, 0,
	  "repo_type = s3: host (bucket.endpoint, as AWS) or path (endpoint/bucket, as most self-hosted servers)"),
	O("backup", "s3_verify_tls", OPT_BOOL, backup_s3_verify_tls, "on", 1, 0, 0,
	  "repo_type = s3: verify the server's TLS certificate (turn off only for a test server; prefer s3_ca_file)"),
	O("backup", "s3_ca_file", OPT_STRING, backup_s3_ca_file, "", 1, 0, 0,
	  "repo_type = s3: CA certificate file that signed the server's certificate (default: the system's CAs)"),
	O("bootstrap", "method", OPT_STRING, bootstrap_method, "initdb", 1, 0, 0,
	  "how the first member of a new cluster makes its data: initdb (an empty database), or restore (from "
	  "the [backup] repository: the backup a target needs, recovered to that target; the other members "
	  "then clone it as usual)"),
	O("bootstrap", "restore_stanza", OPT_STRING, bootstrap_stanza, "", 1, 0, 0,
	  "method = restore: the stanza to restore from, i.e. the source cluster's name (default: this "
	  "cluster's name)"),
	O("bootstrap", "restore_target", OPT_STRING, bootstrap_target, "latest", 1, 0, 0,
	  "method = restore: latest (the end of the archived WAL), a time such as \"2026-12-03 14:02:00\" "
	  "(UTC unless a zone follows) or an LSN such as 0/5000028"),
	O("backup", "create_replicas", OPT_STRING, backup_create_replicas, "repository", 1, 0, 0,
	  "how a member that must be cloned gets its data: repository (restore the latest backup, fetch the WAL "
	  "since from the archive, then stream: the primary sends only the WAL, not the database) or "
	  "pg_basebackup (copy it from the primary). With no backup in the repository, pg_basebackup"),
	O("backup", "full_every", OPT_STRING, backup_full_every, "", 1, 0, 0,
	  "take a full backup once per this period (e.g. 7d; units s, m, h, d); empty: none scheduled. Periods "
	  "start at the Unix epoch plus schedule_offset; the leader requests each one once and a streaming "
	  "standby on the leader's host runs it when there is one. Set the same schedule on every member"),
	O("backup", "diff_every", OPT_STRING, backup_diff_every, "", 1, 0, 0,
	  "take a differential backup once per this period (e.g. 1d); empty: none scheduled"),
	O("backup", "incr_every", OPT_STRING, backup_incr_every, "", 1, 0, 0,
	  "take an incremental backup once per this period (e.g. 1h); empty: none scheduled"),
	O("backup", "schedule_offset", OPT_STRING, backup_schedule_offset, "0", 1, 0, 0,
	  "shift of every period from the Unix epoch (UTC): with diff_every = 1d and 2h, the daily backup "
	  "runs at 02:00 UTC"),
	O("tls", "cert_file", OPT_STRING, tls_cert_file, "", 1, 0, 0,
	  "PEM certificate (with intermediates) PostgreSQL presents; with key_file it turns on ssl. The agent "
	  "checks it at start (readable, matching key_file, valid now, signed by ca_file) and copies it beside "
	  "the data directory for PostgreSQL"),
	O("tls", "key_file", OPT_STRING, tls_key_file, "", 1, 0, 0,
	  "PEM private key of cert_file (mode 0600); copied 0600 for the user PostgreSQL runs as"),
	O("tls", "ca_file", OPT_STRING, tls_ca_file, "", 1, 0, 0,
	  "PEM certificate of the cluster's CA: members replicate, clone and rewind with sslmode=verify-full "
	  "against it and channel_binding=require (each member's certificate must name the host of its "
	  "[postgresql] address)"),
	O("tls", "require", OPT_BOOL, tls_require, "off", 1, 0, 0,
	  "pg_hba.conf accepts TCP connections only over TLS (hostssl); members connect with at least "
	  "sslmode=require. Local socket connections are unchanged"),
	O("tls", "api", OPT_BOOL, tls_api, "on", 1, 0, 0,
	  "with cert_file set, the agent API (health checks, /cluster, /metrics, the dashboard) serves HTTPS "
	  "with the same certificate and key, TLS 1.2 at least, and the member record's api_url is https://; "
	  "calls to other members verify their certificate against ca_file (with the host name) and present "
	  "cert_file. off: plain HTTP as without cert_file"),
	O("tls", "api_client_certs", OPT_BOOL, tls_api_client_certs, "off", 1, 0, 0,
	  "the HTTPS API demands a client certificate signed by ca_file from every caller (other members "
	  "present theirs; health checkers, Prometheus and browsers need one too)"),
};

static int param_set(void *target, const char *key, const char *value, struct pgha_err *e)
{
	struct agent_config *cfg = target;
	if (key[0] == '\0')
		return err_set(e, "[parameters] a value without a parameter name");
	if (!pg_param_name_ok(key))
		return err_set(e, "[parameters] \"%s\" is not a PostgreSQL parameter name", key);
	for (size_t i = 0; i < cfg->nparams; i++) {
		if (strcmp(cfg->params[i].name, key) == 0) {
			free(cfg->params[i].value);
			cfg->params[i].value = xstrdup(value);
			return 0;
		}
	}
	cfg->params = xrealloc(cfg->params, (cfg->nparams + 1) * sizeof(*cfg->params));
	cfg->params[cfg->nparams].name = xstrdup(key);
	cfg->params[cfg->nparams].value = xstrdup(value);
	cfg->nparams++;
	return 0;
}

static const struct config_free_section agent_free_sections[] = {
	{"parameters", param_set},
};

const struct config_table agent_config_table = {
	agent_options, sizeof(agent_options) / sizeof(agent_options[0]),
	agent_free_sections, 1,
};

bool agent_config_backup_on(const struct agent_config *cfg)
{
	if (cfg->backup_repo_type != NULL && strcmp(cfg->backup_repo_type, "s3") == 0)
		return true;
	return cfg->backup_repo_path != NULL && cfg->backup_repo_path[0] != '\0';
}

/* Settings pgha writes for pgBackRest while [backup] is on. */
static const char *const backup_owned_params[] = {"archive_mode", "archive_command", "restore_command"};

/* A file pgha reads a secret from: given, and absolute (the agent's working directory is not the user's). */
static int secret_path_check(const char *p, const char *key, const char *value, bool required, struct pgha_err *e)
{
	if (value[0] == '\0')
		return required ? err_set(e, "%s: [backup] %s is required with repo_type = s3\n"
					  "HINT: point it at a file (mode 0600) holding the key", p, key) : 0;
	if (value[0] != '/')
		return err_set(e, "%s: [backup] %s = \"%s\": must be an absolute path", p, key, value);
	return 0;
}

static int s3_validate(struct agent_config *cfg, const char *p, struct pgha_err *e)
{
	static const char *const off_keys[] = {"s3_bucket", "s3_endpoint", "s3_region", "s3_key_file",
					       "s3_key_secret_file", "s3_ca_file"};
	const char *const off_values[] = {cfg->backup_s3_bucket, cfg->backup_s3_endpoint, cfg->backup_s3_region,
					  cfg->backup_s3_key_file, cfg->backup_s3_key_secret_file, cfg->backup_s3_ca_file};
	cfg->backup_s3 = strcmp(cfg->backup_repo_type, "s3") == 0;
	if (!cfg->backup_s3 && strcmp(cfg->backup_repo_type, "posix") != 0)
		return err_set(e, "%s: [backup] repo_type = \"%s\": use posix or s3", p, cfg->backup_repo_type);
	if (!cfg->backup_s3) {
		for (size_t i = 0; i < sizeof(off_keys) / sizeof(off_keys[0]); i++)
			if (off_values[i][0] != '\0')
				return err_set(e, "%s: [backup] %s is set but repo_type is posix\n"
					       "HINT: add repo_type = s3 to [backup] for an S3 repository", p, off_keys[i]);
		return 0;
	}
	struct pgha_err sub;
	static const char *const required[] = {"s3_bucket", "s3_endpoint", "s3_region"};
	const char *const values[] = {cfg->backup_s3_bucket, cfg->backup_s3_endpoint, cfg->backup_s3_region};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (values[i][0] == '\0')
			return err_set(e, "%s: [backup] %s is required with repo_type = s3\n"
				       "HINT: an S3 repository needs s3_bucket, s3_endpoint, s3_region, s3_key_file and "
				       "s3_key_secret_file", p, required[i]);
		if (pgbr_value_check(values[i], &sub) != 0)
			return err_set(e, "%s: [backup] %s = %s", p, required[i], sub.msg);
	}
	const char *ep = cfg->backup_s3_endpoint;
	if (strstr(ep, "://") != NULL)
		return err_set(e, "%s: [backup] s3_endpoint = \"%s\": give host[:port] without a scheme\n"
			       "HINT: pgBackRest always speaks HTTPS to S3; write e.g. s3_endpoint = minio.lan:9000", p, ep);
	cfg->backup_s3_port = 0;
	if (strchr(ep, ':') != NULL) {
		if (parse_host_port(ep, cfg->backup_s3_host, sizeof(cfg->backup_s3_host), &cfg->backup_s3_port, &sub) != 0)
			return err_set(e, "%s: [backup] s3_endpoint: %s", p, sub.msg);
	} else if (snprintf(cfg->backup_s3_host, sizeof(cfg->backup_s3_host), "%s", ep) >= (int)sizeof(cfg->backup_s3_host)) {
		return err_set(e, "%s: [backup] s3_endpoint = \"%.40s...\": too long", p, ep);
	}
	if (strcmp(cfg->backup_s3_uri_style, "host") != 0 && strcmp(cfg->backup_s3_uri_style, "path") != 0)
		return err_set(e, "%s: [backup] s3_uri_style = \"%s\": use host (bucket.endpoint) or path (endpoint/bucket)\n"
			       "HINT: most self-hosted S3 servers (MinIO, Ceph, Garage) want path", p, cfg->backup_s3_uri_style);
	if (secret_path_check(p, "s3_key_file", cfg->backup_s3_key_file, true, e) != 0 ||
	    secret_path_check(p, "s3_key_secret_file", cfg->backup_s3_key_secret_file, true, e) != 0)
		return -1;
	if (cfg->backup_s3_ca_file[0] != '\0' && pgbr_path_check(cfg->backup_s3_ca_file, &sub) != 0)
		return err_set(e, "%s: [backup] s3_ca_file = %s", p, sub.msg);
	if (cfg->backup_repo_path[0] == '\0') {
		free(cfg->backup_repo_path);
		cfg->backup_repo_path = xstrdup("/pgha");
	}
	return 0;
}

/* [bootstrap]: the method, and for restore a stanza name and a target that parse. */
static int bootstrap_validate(struct agent_config *cfg, const char *p, struct pgha_err *e)
{
	cfg->bootstrap_restore = strcmp(cfg->bootstrap_method, "restore") == 0;
	if (!cfg->bootstrap_restore && strcmp(cfg->bootstrap_method, "initdb") != 0)
		return err_set(e, "%s: [bootstrap] method = \"%s\": use initdb or restore", p, cfg->bootstrap_method);
	if (cfg->bootstrap_restore && !agent_config_backup_on(cfg))
		return err_set(e, "%s: [bootstrap] method = restore needs the repository to restore from\n"
			       "HINT: add [backup] repo_path (the source cluster's repository)", p);
	if (cfg->bootstrap_stanza[0] == '\0') {
		free(cfg->bootstrap_stanza);
		cfg->bootstrap_stanza = xstrdup(cfg->cluster_name);
	}
	if (!member_name_valid(cfg->bootstrap_stanza))
		return err_set(e, "%s: [bootstrap] restore_stanza = \"%s\": a cluster name (1 to 63 of A-Z a-z 0-9 _ - .)",
			       p, cfg->bootstrap_stanza);
	struct restore_target t;
	struct pgha_err sub;
	if (restore_target_parse(cfg->bootstrap_target, &t, &sub) != 0)
		return err_set(e, "%s: [bootstrap] %s", p, sub.msg);
	free(cfg->bootstrap_target);
	cfg->bootstrap_target = xstrdup(t.text);
	return 0;
}

/* [backup] *_every and schedule_offset: durations in seconds, into cfg->backup_plan. */
static int schedule_validate(struct agent_config *cfg, const char *p, struct pgha_err *e)
{
	const char *const every[BACKUP_NTYPES] = {cfg->backup_full_every, cfg->backup_diff_every,
						  cfg->backup_incr_every};
	long ms;
	for (int t = 0; t < BACKUP_NTYPES; t++) {
		cfg->backup_plan.every_s[t] = 0;
		if (every[t][0] == '\0')
			continue;
		if (config_parse_duration_ms(every[t], &ms) != 0 || ms < 60000)
			return err_set(e, "%s: [backup] %s_every = \"%s\": a period of at least 1 minute such as 7d, "
				       "1d, 6h or 30m (empty: not scheduled)", p, backup_type_name((enum backup_type)t),
				       every[t]);
		cfg->backup_plan.every_s[t] = ms / 1000;
	}
	if (config_parse_duration_ms(cfg->backup_schedule_offset, &ms) != 0)
		return err_set(e, "%s: [backup] schedule_offset = \"%s\": a duration such as 2h or 30m", p,
			       cfg->backup_schedule_offset);
	cfg->backup_plan.offset_s = ms / 1000;
	return 0;
}

static int backup_validate(struct agent_config *cfg, const char *p, struct pgha_err *e)
{
	if (s3_validate(cfg, p, e) != 0)
		return -1;
	if (!agent_config_backup_on(cfg))
		return 0;
	struct pgha_err sub;
	if (pgbr_path_check(cfg->backup_repo_path, &sub) != 0)
		return err_set(e, "%s: [backup] repo_path = %s", p, sub.msg);
	if (cfg->backup_s3)
		snprintf(cfg->backup_repo, sizeof(cfg->backup_repo), "s3://%s%s at %s", cfg->backup_s3_bucket,
			 cfg->backup_repo_path, cfg->backup_s3_endpoint);
	else
		snprintf(cfg->backup_repo, sizeof(cfg->backup_repo), "%s", cfg->backup_repo_path);
	if (!pgbr_compress_ok(cfg->backup_compress_type))
		return err_set(e, "%s: [backup] compress_type = \"%s\": use zstd, lz4, gz or none", p,
			       cfg->backup_compress_type);
	if (cfg->backup_work_dir[0] == '\0') {
		free(cfg->backup_work_dir);
		cfg->backup_work_dir = xasprintf("%s.pgha-backup", cfg->data_dir);
	}
	for (size_t n = strlen(cfg->backup_work_dir); n > 1 && cfg->backup_work_dir[n - 1] == '/'; n--)
		cfg->backup_work_dir[n - 1] = '\0';
	if (pgbr_path_check(cfg->backup_work_dir, &sub) != 0)
		return err_set(e, "%s: [backup] work_dir = %s", p, sub.msg);
	if (secret_path_check(p, "cipher_pass_file", cfg->backup_cipher_pass_file, false, e) != 0)
		return -1;
	const char *q = cfg->backup_archive_push_queue_max;
	size_t digits = strspn(q, "0123456789");
	static const char *const units[] = {"", "B", "KB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB", "PB", "PiB"};
	bool unit_ok = false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		unit_ok |= strcasecmp(q + digits, units[i]) == 0;
	if (digits == 0 || !unit_ok)
		return err_set(e, "%s: [backup] archive_push_queue_max = \"%s\": a size such as 1GiB, 512MiB or 100GB",
			       p, q);
	if (schedule_validate(cfg, p, e) != 0)
		return -1;
	if (strcmp(cfg->backup_create_replicas, "repository") != 0 &&
	    strcmp(cfg->backup_create_replicas, "pg_basebackup") != 0)
		return err_set(e, "%s: [backup] create_replicas = \"%s\": use repository or pg_basebackup", p,
			       cfg->backup_create_replicas);
	for (size_t i = 0; i < cfg->nparams; i++)
		for (size_t k = 0; k < sizeof(backup_owned_params) / sizeof(backup_owned_params[0]); k++)
			if (strcasecmp(cfg->params[i].name, backup_owned_params[k]) == 0)
				return err_set(e, "%s: [parameters] %s is managed by pgha while [backup] repo_path is set\n"
					       "HINT: remove it: pgha archives WAL with pgBackRest to %s on every member",
					       p, cfg->params[i].name, cfg->backup_repo);
	return 0;
}

/* [tls]: relations only; the files themselves are checked at start (common/tlsfile.h). */
static int tls_validate(struct agent_config *cfg, const char *p, const char *parent, struct pgha_err *e)
{
	bool have_cert = cfg->tls_cert_file[0] != '\0', have_key = cfg->tls_key_file[0] != '\0';
	if (have_cert != have_key)
		return err_set(e, "%s: [tls] needs both cert_file and key_file (only %s is set)", p,
			       have_cert ? "cert_file" : "key_file");
	if (cfg->tls_require && !have_cert)
		return err_set(e, "%s: [tls] require = on needs cert_file and key_file", p);
	cfg->api_tls = have_cert && cfg->tls_api;
	if (cfg->tls_api_client_certs && (!cfg->api_tls || cfg->tls_ca_file[0] == '\0'))
		return err_set(e, "%s: [tls] api_client_certs = on needs api = on, cert_file, key_file and ca_file "
			       "(the CA the callers' certificates are checked against)", p);
	static const char *const keys[] = {"cert_file", "key_file", "ca_file"};
	static const char *const suffix[] = {"server.crt", "server.key", "ca.crt"};
	const char *const values[] = {cfg->tls_cert_file, cfg->tls_key_file, cfg->tls_ca_file};
	for (size_t i = 0; i < 3; i++) {
		free(cfg->tls_copy[i]);
		cfg->tls_copy[i] = NULL;
		if (values[i][0] == '\0')
			continue;
		if (values[i][0] != '/')
			return err_set(e, "%s: [tls] %s = \"%s\": must be an absolute path", p, keys[i], values[i]);
		char *file = xasprintf("%s.%s", cfg->name, suffix[i]);
		cfg->tls_copy[i] = path_join(parent, file);
		free(file);
	}
	return 0;
}

void agent_config_pg_tls(const struct agent_config *cfg, struct pg_tls *t)
{
	t->cert_src = cfg->tls_cert_file;
	t->key_src = cfg->tls_key_file;
	t->ca_src = cfg->tls_ca_file;
	t->cert_file = cfg->tls_copy[0];
	t->key_file = cfg->tls_copy[1];
	t->ca_file = cfg->tls_copy[2];
	t->require = cfg->tls_require;
}

bool agent_config_standby_cluster(const struct agent_config *cfg)
{
	return cfg->standby_hosts != NULL;
}

bool agent_config_slot_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 63)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	return true;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* [cluster] standby_slots: NAME,... (spaces around the commas allowed). */
static int standby_slots_validate(const struct agent_config *cfg, const char *p, struct pgha_err *e)
{
	char *list = xstrdup(cfg->standby_slots), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(list, ",", &save); t != NULL && rc == 0; t = strtok_r(NULL, ",", &save)) {
		char *name = trim(t);
		if (!agent_config_slot_name_valid(name))
			rc = err_set(e, "%s: [cluster] standby_slots: \"%s\" is not a replication slot name\n"
				     "HINT: use 1 to 63 of a-z 0-9 _", p, name);
	}
	free(list);
	return rc;
}

/*
 * [standby_cluster] archive_stanza: the primary cluster's stanza, read from
 * this cluster's own [backup] repository. Never this cluster's own stanza:
 * the primary's WAL would then be mixed with what this cluster archives once
 * promoted.
 */
static int archive_stanza_validate(const struct agent_config *cfg, const char *p, struct pgha_err *e)
{
	const char *st = cfg->standby_archive_stanza;
	if (st[0] == '\0')
		return 0;
	if (!member_name_valid(st))
		return err_set(e, "%s: [standby_cluster] archive_stanza = \"%s\": a cluster name (1 to 63 of A-Z a-z 0-9 _ - .)\n"
			       "HINT: the primary cluster's [cluster] name", p, st);
	if (!agent_config_backup_on(cfg))
		return err_set(e, "%s: [standby_cluster] archive_stanza = %s needs the repository the primary cluster "
			       "archives into\nHINT: add [backup] repo_path (posix, mounted here too) or the same S3 bucket "
			       "as the primary cluster's [backup]", p, st);
	if (strcmp(st, cfg->cluster_name) == 0)
		return err_set(e, "%s: [standby_cluster] archive_stanza = %s is this cluster's own stanza ([cluster] name)\n"
			       "HINT: name the primary cluster's stanza (its [cluster] name); the clusters need different names",
			       p, st);
	return 0;
}

/* [standby_cluster]: primary_hosts into libpq's host and port lists; the slot name; the archive stanza. */
static int standby_cluster_validate(struct agent_config *cfg, const char *p, struct pgha_err *e)
{
	free(cfg->standby_hosts);
	free(cfg->standby_ports);
	cfg->standby_hosts = cfg->standby_ports = NULL;
	if (cfg->standby_primary_slot[0] != '\0' && !agent_config_slot_name_valid(cfg->standby_primary_slot))
		return err_set(e, "%s: [standby_cluster] primary_slot_name = \"%s\" is not a replication slot name\n"
			       "HINT: use 1 to 63 of a-z 0-9 _, the name in the primary cluster's [cluster] standby_slots",
			       p, cfg->standby_primary_slot);
	if (cfg->standby_primary_hosts[0] == '\0') {
		if (cfg->standby_primary_slot[0] != '\0' || cfg->standby_archive_stanza[0] != '\0')
			return err_set(e, "%s: [standby_cluster] %s is set but primary_hosts is not\n"
				       "HINT: add primary_hosts = host:port,... (the primary cluster's members)", p,
				       cfg->standby_primary_slot[0] != '\0' ? "primary_slot_name" : "archive_stanza");
		return 0;
	}
	if (archive_stanza_validate(cfg, p, e) != 0)
		return -1;
	struct strbuf hosts = STRBUF_INIT, ports = STRBUF_INIT;
	char *list = xstrdup(cfg->standby_primary_hosts), *save = NULL;
	int rc = 0, n = 0;
	for (char *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		char host[256];
		int port;
		struct pgha_err sub;
		char *hp = trim(t);
		if (parse_host_port(hp, host, sizeof(host), &port, &sub) != 0 || port <= 0) {
			rc = err_set(e, "%s: [standby_cluster] primary_hosts: \"%s\": %s\nHINT: write host:port of every "
				     "member of the primary cluster, separated by commas", p, hp,
				     port <= 0 ? "no port" : sub.msg);
			break;
		}
		if (strchr(host, ' ') != NULL || strchr(host, '\'') != NULL || strchr(host, '\\') != NULL) {
			rc = err_set(e, "%s: [standby_cluster] primary_hosts: \"%s\": not a host name", p, hp);
			break;
		}
		sb_printf(&hosts, "%s%s", n ? "," : "", host);
		sb_printf(&ports, "%s%d", n ? "," : "", port);
		n++;
	}
	free(list);
	if (rc == 0 && n == 0)
		rc = err_set(e, "%s: [standby_cluster] primary_hosts = \"%s\" names no host", p, cfg->standby_primary_hosts);
	if (rc != 0) {
		sb_free(&hosts);
		sb_free(&ports);
		return -1;
	}
	cfg->standby_hosts = sb_steal(&hosts);
	cfg->standby_ports = sb_steal(&ports);
	return 0;
}

int agent_config_validate(struct agent_config *cfg, struct pgha_err *e)
{
	const char *p = cfg->path ? cfg->path : "config";
	if (!member_name_valid(cfg->name))
		return err_set(e, "%s: [node] name = \"%s\": use 1 to 63 of A-Z a-z 0-9 _ - .", p, cfg->name);
	if (member_where_check(p, "node", cfg->region, cfg->zone, e) != 0)
		return -1;
	if (!member_name_valid(cfg->cluster_name))
		return err_set(e, "%s: [cluster] name = \"%s\": use 1 to 63 of A-Z a-z 0-9 _ - .", p,
			       cfg->cluster_name);
	if (cfg->etcd_prefix[0] != '/')
		return err_set(e, "%s: [cluster] prefix = \"%s\": must start with /", p, cfg->etcd_prefix);
	struct pgha_err sub;
	if (dyncfg_timing_check(cfg->ttl_ms, cfg->loop_wait_ms, cfg->retry_timeout_ms, &sub) != 0)
		return err_set(e, "%s: [cluster] %s", p, sub.msg);
	if (cfg->etcd_request_timeout_ms > cfg->retry_timeout_ms)
		return err_set(e, "%s: [etcd] request_timeout (%dms) must not exceed [cluster] retry_timeout (%dms)",
			       p, cfg->etcd_request_timeout_ms, cfg->retry_timeout_ms);
	if (cfg->etcd_username[0] != '\0' && cfg->etcd_password_file[0] == '\0')
		return err_set(e, "%s: [etcd] username is set but password_file is not", p);
	static const char *const etcd_tls_names[3] = {"[etcd] ca_file", "[etcd] cert_file", "[etcd] key_file"};
	struct etcd_opts eo = {.endpoints = cfg->etcd_endpoints, .ca_file = cfg->etcd_ca_file,
			       .cert_file = cfg->etcd_cert_file, .key_file = cfg->etcd_key_file};
	struct pgha_err tls_err;
	if (etcd_check_tls(&eo, etcd_tls_names, &tls_err) != 0)
		return err_set(e, "%s: %s", p, tls_err.msg);
	if (cfg->data_dir[0] != '/')
		return err_set(e, "%s: [postgresql] data_dir = \"%s\": must be an absolute path", p, cfg->data_dir);
	/* "/srv/pg/data/" is "/srv/pg/data": files pgha keeps beside it must not land inside it. */
	for (size_t n = strlen(cfg->data_dir); n > 1 && cfg->data_dir[n - 1] == '/'; n--)
		cfg->data_dir[n - 1] = '\0';
	if (strcmp(cfg->data_dir, "/") == 0)
		return err_set(e, "%s: [postgresql] data_dir = \"/\": choose a directory of its own", p);
	if (parse_host_port(cfg->listen, cfg->pg_host, sizeof(cfg->pg_host), &cfg->pg_port, &sub) != 0)
		return err_set(e, "%s: [postgresql] listen: %s", p, sub.msg);
	if (cfg->address[0] == '\0') {
		if (strcmp(cfg->pg_host, "*") == 0 || strcmp(cfg->pg_host, "0.0.0.0") == 0 ||
		    strcmp(cfg->pg_host, "::") == 0 || strchr(cfg->pg_host, ',') != NULL)
			return err_set(e, "%s: [postgresql] address is required when listen is \"%s\" "
				       "(others need one address to reach this member)", p, cfg->listen);
		free(cfg->address);
		cfg->address = xstrdup(cfg->listen);
	}
	if (parse_host_port(cfg->address, cfg->address_host, sizeof(cfg->address_host),
			    &cfg->address_port, &sub) != 0)
		return err_set(e, "%s: [postgresql] address: %s", p, sub.msg);
	char h[256];
	int port;
	if (parse_host_port(cfg->api_listen, h, sizeof(h), &port, &sub) != 0)
		return err_set(e, "%s: [node] api_listen: %s", p, sub.msg);
	if (cfg->api_address[0] == '\0') {
		if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
			return err_set(e, "%s: [node] api_address is required when api_listen is \"%s\"",
				       p, cfg->api_listen);
		free(cfg->api_address);
		cfg->api_address = xstrdup(cfg->api_listen);
	}
	if (parse_host_port(cfg->api_address, cfg->api_host, sizeof(cfg->api_host), &port, &sub) != 0)
		return err_set(e, "%s: [node] api_address: %s", p, sub.msg);
	char *parent = path_dirname(cfg->data_dir);
	if (cfg->pgpass[0] == '\0') {
		free(cfg->pgpass);
		char *file = xasprintf("%s.pgpass", cfg->name);
		cfg->pgpass = path_join(parent, file);
		free(file);
	}
	if (cfg->log_file[0] == '\0') {
		free(cfg->log_file);
		char *file = xasprintf("%s.postgresql.log", cfg->name);
		cfg->log_file = path_join(parent, file);
		free(file);
	}
	int tls_rc = tls_validate(cfg, p, parent, e);
	free(parent);
	if (tls_rc != 0)
		return -1;
	if (backup_validate(cfg, p, e) != 0 || bootstrap_validate(cfg, p, e) != 0)
		return -1;
	if (standby_slots_validate(cfg, p, e) != 0 || standby_cluster_validate(cfg, p, e) != 0)
		return -1;
	/* Parameters pgha owns: setting them here would break replication or failover. */
	for (size_t i = 0; i < cfg->nparams; i++) {
		const char *hint = pg_param_managed(cfg->params[i].name);
		if (hint != NULL)
			return err_set(e, "%s: [parameters] %s is managed by pgha and cannot be set here\nHINT: %s", p,
				       cfg->params[i].name, hint);
	}
	return 0;
}

int agent_config_load(const char *path, struct agent_config *cfg, struct pgha_err *e)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->path = xstrdup(path);
	if (config_apply_defaults(&agent_config_table, cfg, e) != 0)
		return -1;
	if (config_parse_file(&agent_config_table, path, cfg, e) != 0)
		return -1;
	return agent_config_validate(cfg, e);
}

void agent_config_free(struct agent_config *cfg)
{
	config_free_values(&agent_config_table, cfg);
	for (size_t i = 0; i < cfg->nparams; i++) {
		free(cfg->params[i].name);
		free(cfg->params[i].value);
	}
	free(cfg->params);
	free(cfg->path);
	for (size_t i = 0; i < 3; i++)
		free(cfg->tls_copy[i]);
	free(cfg->standby_hosts);
	free(cfg->standby_ports);
	memset(cfg, 0, sizeof(*cfg));
}
