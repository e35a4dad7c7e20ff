/*
 * member.h — a member record, as published under /pgha/<cluster>/members/<name>
 * (JSON, under the member's lease), and the cluster view assembled from a
 * range read of the whole prefix.
 */
#ifndef PGHA_CLUSTER_MEMBER_H
#define PGHA_CLUSTER_MEMBER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "dcs/etcd.h"

#define MEMBER_NAME_MAX 64

/* What PostgreSQL on this member is (as the agent sees it). */
enum member_role {
	ROLE_UNKNOWN = 0,
	ROLE_PRIMARY,      /* running, not in recovery */
	ROLE_REPLICA,      /* running, in recovery */
	ROLE_UNINITIALIZED /* no data directory yet */
};

/* What the member is doing. */
enum member_state {
	STATE_UNKNOWN = 0,
	STATE_RUNNING,          /* PostgreSQL accepts connections */
	STATE_STREAMING,        /* replica with an active walreceiver */
	STATE_STARTING,
	STATE_STOPPING,
	STATE_STOPPED,
	STATE_CRASHED,
	STATE_INITIALIZING,     /* running initdb */
	STATE_CLONING,          /* running pg_basebackup */
	STATE_START_FAILED,
	STATE_RESTORING,        /* bootstrapping from a backup ([bootstrap] method = restore) */
};

struct member_tags {
	bool nofailover;
	bool nosync;
	bool noloadbalance;
	int priority;           /* higher wins ties in elections; default 100 */
	/*
	 * Where the member runs ([node] region, zone; "" when not set): failover
	 * prefers a candidate in the old leader's region, proxies prefer standbys
	 * in their own, synchronous_cross_region wants a standby outside the
	 * leader's. Same characters as a member name (member_label_valid).
	 */
	char region[MEMBER_NAME_MAX];
	char zone[MEMBER_NAME_MAX];
};

struct member {
	char name[MEMBER_NAME_MAX];
	enum member_role role;
	enum member_state state;
	uint32_t timeline;
	uint64_t received_lsn;   /* replicas: last WAL received */
	uint64_t replayed_lsn;   /* replicas: last WAL replayed */
	uint64_t wal_lsn;        /* primary: current WAL insert/flush position */
	int64_t lag_bytes;       /* replicas: leader position - own position; -1 unknown */
	char host[256];          /* PostgreSQL address other members and clients use */
	int port;
	char api_url[300];       /* http(s)://host:port of the agent API */
	char system_id[32];      /* database system identifier, "" if unknown */
	char pg_version[16];     /* server_version_num as text, "" if unknown */
	struct member_tags tags;
	int64_t updated_at;      /* unix seconds when the record was written */
	char error[256];         /* last error the agent wants operators to see, "" if none */
	bool pending_restart;    /* a changed parameter takes effect only after a restart */
	char pending_params[256]; /* ... which ones, comma-separated (JSON: an array) */
	char op_id[40];          /* the last request (requests/<name>) the agent acted on, "" if none */
	char op_state[16];       /* ... "running", "done" or "failed" (error says why) */
	char diverged_copy[300]; /* <data>.diverged, kept until this member streams again; "" if none */
	char standby_of[256];    /* a standby cluster's member: the primary cluster's hosts ([standby_cluster]
				    primary_hosts); "" otherwise */
	/*
	 * The standby leader of a standby cluster: where its walreceiver streams
	 * from ("host:port", "" when not streaming), how far the replayed WAL is
	 * behind the end the sender last reported (bytes, -1 unknown), and the age
	 * of the sender's last message (ms, -1 unknown). has_source: the record
	 * carries them (only the standby leader's does; without it both figures are 0).
	 */
	bool has_source;
	char source[280];
	int64_t source_lag_bytes;
	int64_t source_msg_age_ms;
	bool archive_replay;     /* a standby catching up from the WAL archive, not streaming (ha_archive_replay) */
	char archive[256];       /* [backup] on: WAL archiving with pgBackRest, "ok" or "failing: why"; "" if off or not known */
	int64_t archived_at;     /* primary, [backup] on: unix time of the last WAL archived (pg_stat_archiver), 0 unknown */
	/*
	 * [backup] on: what a backup runner on the same host needs to copy from
	 * this member (pgBackRest reaches PostgreSQL through its socket): the
	 * host's identity (/etc/machine-id), the data directory and socket
	 * directory. Empty when off.
	 */
	char backup_host[64];
	char pg_path[256];
	char pg_socket[256];
	/*
	 * [tls] cert_file's notAfter (unix seconds): 0 when the record has none
	 * (no TLS, an older agent), -1 when it holds something that is not a
	 * plausible time (written by hand: the record is still used).
	 */
	int64_t tls_not_after;
	char restore_id[33];     /* the in-place restore (restore key) this member's PostgreSQL is stopped for, "" if none */
	int64_t lease;           /* the etcd lease the record is under (from the view, not in the JSON) */
};

const char *member_role_name(enum member_role r);
const char *member_state_name(enum member_state s);
int member_role_parse(const char *s, enum member_role *out);
int member_state_parse(const char *s, enum member_state *out);

/*
 * A standby leader's source for ctl list: " streaming from H:P, 0 B behind,
 * last message 0.4 s ago", " not streaming from the primary cluster", or ""
 * when the record has none (an older agent).
 */
void member_source_describe(const struct member *m, char *out, size_t len);

/* JSON encoding. Caller frees the string. */
char *member_encode(const struct member *m);
/*
 * Decode; unknown fields are ignored (forward compatibility), wrong types and
 * missing required fields (name, role, state) are errors naming the field.
 */
int member_decode(const char *json, struct member *out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * A leader key an agent wrote is a member name under that member's lease
 * (create-if-absent txn under its own lease). Anything else was written by
 * hand or is corrupt.
 */
enum leader_key_state {
	LEADER_KEY_OK = 0,         /* absent, or a member name under that member's lease */
	LEADER_KEY_GARBAGE,        /* not a member name */
	LEADER_KEY_NO_LEASE,       /* under no lease: it would never expire */
	LEADER_KEY_NO_MEMBER,      /* names a member with no live record */
	LEADER_KEY_FOREIGN_LEASE,  /* under a lease that is not the named member's (see below) */
};

/* Cluster view read from etcd in one range over the cluster prefix. */
struct cluster_view {
	char *initialize;        /* value of the initialize key, NULL if absent */
	char *leader;            /* name in the leader key, NULL if absent or invalid (below) */
	int64_t leader_mod_revision;
	int64_t leader_lease;
	/*
	 * GARBAGE, NO_LEASE, NO_MEMBER: no agent wrote the key, so there is no
	 * leader (leader is NULL, leader_invalid holds the value). FOREIGN_LEASE
	 * keeps leader: an agent moving its key to a new lease (ctl set ttl, a
	 * restart) shows it for a moment; the agent judges it over time.
	 */
	enum leader_key_state leader_state;
	char *leader_invalid;
	char *config;            /* raw JSON of the config key, NULL if absent */
	char *sync;              /* raw JSON of the sync key (ha/sync.h), NULL if absent */
	/* The backup keys (cluster/backup_key.h), raw JSON, NULL if absent. */
	char *backup_request;
	int64_t backup_request_rev;    /* its mod_revision */
	char *backup_running;
	char *backup_last;
	char *backup_schedule;
	int64_t backup_schedule_rev;
	char *restore;           /* the in-place restore record (cluster/restore_key.h), raw JSON, NULL if absent */
	int64_t restore_rev;
	char *history;           /* the history of leader changes (cluster/history_key.h), raw JSON, NULL if absent */
	int64_t history_rev;
	char *switchover;        /* the switchover record (cluster/switchover.h), raw JSON, NULL if absent */
	char *promoted;          /* a standby cluster made primary (cluster/promoted_key.h), raw JSON, NULL if absent */
	char **proxies;          /* the proxies' records (proxies/<name>, cluster/switchover.h), raw JSON */
	size_t nproxies;
	struct member *members;  /* decoded records (bad records are skipped with a warning) */
	size_t nmembers;
	int64_t revision;        /* etcd revision of the read */
};

/*
 * Build the view from a prefix read (prefix = "/pgha/<cluster>/"). Bad member
 * records are logged and skipped, never fatal.
 */
void cluster_view_from_kvs(const char *prefix, const struct etcd_kvs *kvs, struct cluster_view *out);
/* Why the leader key is not valid, for logs, ctl list and /cluster; NULL when it is. */
const char *leader_key_problem(enum leader_key_state s);
/* Letters, digits, '_', '-', '.'; 1..63 characters (as [node] name). */
bool member_name_valid(const char *s);
/* A region or zone: "" (none) or a valid member name. */
bool member_label_valid(const char *s);
/*
 * A config's region and zone ([SECTION] of the file at path): labels, and a
 * zone lies within a region. 0, or -1 with the option, the value and a HINT.
 */
int member_where_check(const char *path, const char *section, const char *region, const char *zone,
		       struct pgha_err *e) PGHA_MUSTCHECK;
void cluster_view_free(struct cluster_view *v);
const struct member *cluster_view_member(const struct cluster_view *v, const char *name);
/* Sort members by name (stable output for ctl list and /cluster). */
void cluster_view_sort(struct cluster_view *v);

/* Encode the view as the JSON of GET /cluster and `ctl list --json`. Caller frees. */
char *cluster_view_encode(const struct cluster_view *v, const char *cluster_name);

#endif
