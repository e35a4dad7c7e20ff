/*
 * up_int.h — what the files of `pgha up` share: the state chosen on the first
 * run (DIR/up.conf) and the running processes. up.c (options, configs,
 * agents, proxy) calls up_etcd.c (the etcd members); never the other way.
 */
#ifndef PGHA_UP_UP_INT_H
#define PGHA_UP_UP_INT_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"
#include "cluster/member.h"
#include "common/proc.h"
#include "dcs/etcd.h"

#define MAX_NODES 9
#define MAX_ETCD 5            /* --etcd N: 1, 3 or 5 members */
#define UP_ETCD_USER "pgha"

struct up_state {
	char cluster[64];
	int nodes;
	int etcd_members;        /* 1 for directories made before --etcd */
	/* Member 1's are up.conf's etcd_client_port/etcd_peer_port, member K's etcd_client_port_K... */
	int etcd_client_port[MAX_ETCD];
	int etcd_peer_port[MAX_ETCD];
	int proxy_port;
	int proxy_ro_port;
	int proxy_metrics_port;  /* 0: a directory made before up served the proxy's metrics */
	int pg_port[MAX_NODES];
	int api_port[MAX_NODES];
	bool etcd_auth;          /* etcd runs with authentication (directories made since it does) */
	bool tls;                /* --tls: every link encrypted, certificates in DIR/secrets/tls */
	/* --standby-of SRC: a standby cluster of SRC's cluster (its name, its members' host:port list) */
	char standby_of[64];
	char standby_hosts[MAX_NODES * 24];
};

struct up {
	char *dir;
	char *etcd_bin;
	char *self_exe;
	char *bin_dir;
	int timeout_s;
	struct up_state st;
	pid_t etcd_pid[MAX_ETCD];
	pid_t agent_pid[MAX_NODES];
	pid_t proxy_pid;
	char *etcd_urls;         /* every member's client URL, comma-separated (the agents' endpoints) */
	struct run_user user;
	char *etcd_password;     /* user pgha's, when st.etcd_auth (wiped at the end) */
	bool backup;             /* --backup (or a repository from an earlier --backup run): DIR/backup-repo */
	/* --restore-from SRC --to TARGET (first run only): SRC's repository, its cluster, the target */
	char *restore_repo;
	char restore_stanza[64];
	char *restore_target;
	const char *rw_split;    /* --rw-split: the proxy's rw_split (first run only) */
	char *standby_src;       /* --standby-of SRC (first run only): SRC's directory (its secrets are copied) */
	bool want_tls;           /* --tls given (first run only: up.conf keeps it) */
	char regions[MAX_NODES][MEMBER_NAME_MAX];  /* --regions: node i is in regions[i % nregions] */
	int nregions;
	char *tls_ca, *tls_client_crt, *tls_client_key;  /* under st.tls: secrets/tls/ca.crt, client.* */
};

/* Set by SIGINT/SIGTERM: every wait gives up. */
extern volatile sig_atomic_t up_stop;

/* ------------------------------------------------ up_etcd.c: etcd members */

/* Append to DIR/logs/NAME (for a child's output); -1 with e. */
int up_open_log(struct up *u, const char *name, struct pgha_err *e);
/* u->etcd_urls from the state's client ports. */
void up_etcd_urls(struct up *u);
/* Member i's name, data directory and log file, as DIR holds them (1 member: as before --etcd). */
void up_etcd_member_names(const struct up *u, int i, char *name, size_t nlen, char *log, size_t llen);
/*
 * Start every member (a static --initial-cluster), wait until each answers,
 * and turn authentication on (as root, from DIR/secrets) when st.etcd_auth.
 */
int up_etcd_start(struct up *u, struct pgha_err *e);
/* Report members that exited (clearing their pid). */
void up_etcd_poll(struct up *u);
/* SIGTERM, then SIGKILL after timeout_ms. */
void up_stop_pid(pid_t pid, const char *what, int timeout_ms);
/* SIGTERM every member, then wait for each. */
void up_etcd_stop(struct up *u);
/* "https" under --tls, else "http". */
const char *up_scheme(const struct up *u);
/* Under --tls: the CA and up's own client certificate (secrets/tls/client.*) in o; else nothing. */
void up_etcd_client_tls(const struct up *u, struct etcd_opts *o);

#endif
