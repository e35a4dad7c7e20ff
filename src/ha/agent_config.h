/*
 * agent_config.h — the agent's configuration (one INI file per node) and its
 * option table. `pgha agent --help` prints the table.
 */
#ifndef PGHA_HA_AGENT_CONFIG_H
#define PGHA_HA_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cluster/backup_key.h"
#include "common/config.h"
#include "common/err.h"
#include "pg/pgconf.h"

struct agent_config {
	/* [cluster] */
	char *cluster_name;
	char *etcd_prefix;
	int ttl_ms;
	int loop_wait_ms;
	int retry_timeout_ms;
	int maximum_lag_on_failover;
	bool failsafe;
	char *standby_slots;      /* physical slots the leader keeps for standby clusters: "" or NAME,... */
	/* [etcd] */
	char *etcd_endpoints;
	char *etcd_username;
	char *etcd_password_file;
	int etcd_request_timeout_ms;
	char *etcd_ca_file;
	char *etcd_cert_file;
	char *etcd_key_file;
	int etcd_sync_interval_ms;
	/* [node] */
	char *name;
	char *api_listen;
	char *api_address;
	char *api_token_file;
	char *run_as;
	int log_level;
	int log_format;           /* enum log_format */
	bool nofailover;
	bool nosync;
	bool noloadbalance;
	int priority;
	char *region;             /* "" when not set */
	char *zone;
	/* [postgresql] */
	char *data_dir;
	char *bin_dir;
	char *listen;
	char *address;
	char *socket_dir;
	char *superuser;
	char *superuser_password_file;
	char *replication_user;
	char *replication_password_file;
	char *allowed_networks;
	char *pgpass;
	char *log_file;
	int start_timeout_ms;
	int stop_timeout_ms;
	int member_slots_ttl_ms;
	int crash_restart_timeout_ms;
	/* [backup]: pgBackRest (off unless repo_path is set or repo_type = s3) */
	char *backup_repo_type;
	char *backup_repo_path;
	int backup_retention_full;
	char *backup_compress_type;
	int backup_process_max;
	char *backup_cipher_pass_file;
	char *backup_work_dir;
	char *backup_archive_push_queue_max;
	char *backup_s3_bucket;
	char *backup_s3_endpoint;
	char *backup_s3_region;
	char *backup_s3_key_file;
	char *backup_s3_key_secret_file;
	char *backup_s3_uri_style;
	bool backup_s3_verify_tls;
	char *backup_s3_ca_file;
	char *backup_full_every;      /* "" or a duration; parsed into backup_plan */
	char *backup_diff_every;
	char *backup_incr_every;
	char *backup_schedule_offset;
	struct backup_plan backup_plan;
	char *backup_create_replicas;  /* repository or pg_basebackup */
	/* [bootstrap]: how the first member makes the cluster's data */
	char *bootstrap_method;       /* initdb or restore */
	char *bootstrap_stanza;       /* restore: the stanza in the repository (default: [cluster] name) */
	char *bootstrap_target;       /* restore: latest, a time or an LSN (backup/restore.h) */
	bool bootstrap_restore;       /* derived: method = restore */
	/* [tls]: PostgreSQL's server certificate, and the CA members verify each other with */
	char *tls_cert_file;
	char *tls_key_file;
	char *tls_ca_file;
	bool tls_require;
	bool tls_api;                 /* HTTPS for the agent API when cert_file is set */
	bool tls_api_client_certs;    /* ... and a client certificate signed by ca_file demanded */
	/* [standby_cluster]: this cluster replicates from another one (empty primary_hosts: it does not) */
	char *standby_primary_hosts;  /* the primary cluster's PostgreSQL addresses, host:port,... */
	char *standby_primary_slot;   /* "" or the physical slot the primary cluster keeps for us */
	char *standby_archive_stanza; /* "" or the primary cluster's stanza in [backup]'s repository */
	/* [parameters]: extra PostgreSQL settings */
	struct pg_param *params;
	size_t nparams;

	/* Derived at load time (not options). */
	char pg_host[256];
	int pg_port;
	char address_host[256];
	int address_port;
	bool api_tls;            /* the API serves HTTPS: [tls] cert_file set and api = on */
	char api_host[256];      /* the host of [node] api_address */
	bool backup_s3;          /* [backup] repo_type = s3 */
	char backup_s3_host[256];  /* s3_endpoint without its port */
	int backup_s3_port;      /* 0: not given (443) */
	char backup_repo[600];   /* the repository in words, for messages: a path or s3://bucket/path at host */
	char *path;              /* the config file */
	char *tls_copy[3];       /* [tls] cert, key and CA as copied for PostgreSQL (NULL: not set) */
	char *standby_hosts;     /* [standby_cluster] primary_hosts as libpq lists: "h1,h2" (NULL: not a */
	char *standby_ports;     /* standby cluster) and "p1,p2" */
};

/* [standby_cluster] primary_hosts is set: this cluster replicates from another one. */
bool agent_config_standby_cluster(const struct agent_config *cfg);
/* A physical replication slot name as PostgreSQL takes it: 1 to 63 of a-z 0-9 _. */
bool agent_config_slot_name_valid(const char *name);

extern const struct config_table agent_config_table;

/* [backup] has a repository (posix repo_path, or repo_type = s3): pgBackRest archives WAL on every member. */
bool agent_config_backup_on(const struct agent_config *cfg);

/* [tls] for pg/pgconf.h: the operator's files and their copies beside the data directory. */
void agent_config_pg_tls(const struct agent_config *cfg, struct pg_tls *t);

/* Load, apply defaults, derive, and check relations between options. */
int agent_config_load(const char *path, struct agent_config *cfg, struct pgha_err *e) PGHA_MUSTCHECK;
void agent_config_free(struct agent_config *cfg);
/* Check the relations between options (also used after a reload). */
int agent_config_validate(struct agent_config *cfg, struct pgha_err *e) PGHA_MUSTCHECK;

#endif
