/*
 * objects.h — the proxy's objects, and the one place each changes state
 * (objects.c). Several modules read them: client.c and relay.c work a
 * client and its server, pool.c links them, admin.c and metrics.c show
 * them, hold.c counts the busy ones. Everything here lives on the
 * event-loop thread; only route.c has a thread of its own.
 *
 *   client  a connection from an application (client.c)
 *   server  a connection to PostgreSQL (server.c)
 *   pool    servers for one (database, user, port kind), the clients waiting
 *           for one, and the target they connect to (pool.c)
 *
 * Transaction pooling: a client gets a server when it sends something and
 * gives it back when the server says ReadyForQuery 'I' with nothing of the
 * client's still unanswered (relay.c keeps that account, and makes named
 * prepared statements work across servers).
 */
#ifndef PGHA_PROXY_OBJECTS_H
#define PGHA_PROXY_OBJECTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "common/strbuf.h"
#include "proxy/io.h"
#include "proxy/proxy_config.h"
#include "proxy/route.h"
#include "proxy/sess.h"

struct ssl_st;       /* OpenSSL's SSL and SSL_CTX, used only in tls.c */
struct ssl_ctx_st;

struct proxy;
struct pool;
struct server;
struct split_rules;

/* Read-your-writes: what the proxy last learnt of a standby's replay. */
struct ryw_standby {
	char host[256];
	int port;                  /* 0: a free slot */
	uint64_t lsn;              /* its replay position, as a replay check last read it */
	int64_t behind_until_ms;   /* it could not replay a read's writes within ryw_wait: new servers go elsewhere */
};

/* Startup parameters kept per client and applied (SET) on whichever server it gets. */
#define NTRACKED 6
extern const char *const tracked_params[NTRACKED];
int tracked_index(const char *name);

/* How the server reports a client's startup value of a reported parameter ("iso" -> "ISO, MDY"). */
struct param_canon {
	char *name;
	char *raw;
	char *value;
};

enum client_state {
	CL_STARTUP,      /* reading the startup packet */
	CL_TLS,          /* TLS handshake after an SSLRequest answered 'S' */
	CL_AUTH,         /* authentication exchange */
	CL_LOGIN,        /* authenticated; waiting for the pool's server parameters */
	CL_IDLE,         /* between transactions, no server */
	CL_WAITING,      /* has work, waits for a server */
	CL_ACTIVE,       /* linked to a server */
	CL_CLOSING,
};

struct client {
	struct fdtag tag;
	struct link node;          /* in the pool's waiting list, or the proxy's idle list */
	struct proxy *px;
	enum client_state state;
	bool ro;                   /* came in on the read-only port */
	struct pool *pool;
	struct server *server;
	struct pbuf in;
	struct strbuf out;         /* messages the proxy itself sends */
	size_t out_off;
	int pending;               /* during SCRAM: the first message was seen */
	/* relay.c: what the server still owes for the requests sent (see relay.c) */
	struct expect *expq;
	size_t expq_head, expq_len, expq_cap;
	bool skip_until_sync;      /* the server reported an error: it ignores all until Sync */
	char *refused_stmt;        /* its statement of this name ("": unnamed) was refused (transaction_pinning off) */
	uint32_t c2s_remaining;    /* body bytes of a streamed client message still to copy */
	size_t big;                /* bytes of px->big_bytes this client's buffer holds */
	bool close_when_sent;      /* close once c->out is sent (client_close_when_sent) */
	uint32_t drop_remaining;   /* ... after reading this much more: the rest of a refused message */
	uint8_t refused_encryption; /* answered 'N' to an SSLRequest (1), a GSSENCRequest (2): once each */
	struct stmt_map *stmts;    /* the client's named prepared statements */
	size_t nstmts, capstmts;
	int64_t since_ms;          /* state change time (login, wait and idle timeouts) */
	int64_t xact_start_ms;     /* when it got its server (transaction time) */
	int64_t query_start_ms;    /* its Query or Sync went to the server, no ReadyForQuery yet; 0 none */
	char user[64];
	char database[64];
	char app_name[64];
	char addr[96];
	int32_t cancel_pid;
	uint8_t cancel_key[4];
	void *sasl;                /* SCRAM server state while authenticating */
	uint8_t md5_salt[4];
	bool auth_lookup;          /* CL_AUTH: waits for auth_query or a verifier (creds.c) before the challenge */
	bool preauth;              /* not logged in yet: counted in px->npreauth, not in max_client_conn */
	bool terminated;           /* sent Terminate */
	bool lost_told;            /* ... lost's error is sent; skipping to the Sync */
	char *lost;                /* its server was lost while it sat idle in a transaction: the
				      error its next request gets (client_server_lost) */
	bool release_ready;        /* give the server back once its last bytes are out */
	bool admin;                /* connected to the admin console (database pgha) */
	char *want[NTRACKED];      /* tracked parameters the client asked for (NULL: default) */
	/* sess.c, relay.c: the session state that follows it from server to server (transaction mode) */
	struct sess_set sess;      /* its settings and SQL prepared statements */
	struct sess_set sess_start; /* its startup parameters beyond the tracked ones: what RESET returns to */
	struct sess_set sess_texts; /* PREPARE texts sent in the running transaction, by name */
	struct sess_set sess_read; /* the state query's rows so far */
	char **sess_custom;        /* custom setting names it used ("app.x"): pg_settings does not list them */
	size_t nsess_custom;
	char **sess_names;         /* settings SET by name since the last state query (SESS_NAMED) */
	size_t nsess_names;
	unsigned sess_pending;     /* SESS_* of the statements sent since the last state query */
	unsigned sess_reading;     /* ... of the state query being read; SESS_PIN: it reads the pins */
	const char *pinned;        /* what keeps its server (a sess.c feature name); NULL: nothing */
	const char *pin_read;      /* ... as the state query being read says */
	bool loaded;               /* ran LOAD: pinned for good */
	bool sess_overflow;        /* named more session state than is carried: pinned for good */
	/* read-your-writes (relay.c, docs/READ_YOUR_WRITES.md): a read-only client's gate */
	uint8_t ryw;               /* RYW_* (relay.h): 0 = its bytes flow */
	uint64_t ryw_seq;          /* the LSN requests it waits for: those numbered up to this */
	uint64_t ryw_target;       /* the leader position its read must see */
	uint64_t ryw_seen;         /* ... what the standby's replay check answered */
	struct link ryw_node;      /* in px->ryw_gated while it waits for LSN answers */
	struct pool *ryw_home;     /* its read-only pool, while it borrows a leader server */
	bool ryw_on_standby;       /* its read passed the gate on a standby: counted when it ends */
	/* rw_split (split.c): a read-write port client whose proven read runs on a standby */
	struct pool *split_home;   /* its read-write pool, while it reads from the read-only one */
	bool split_hold;           /* its unit is sent: the next waits for ReadyForQuery (relay.c) */
	bool split_more;           /* its unit is not all here: read more before deciding */
	char *sess_failed;         /* setting its state on a server failed: why (it ends with it) */
	char sess_failed_code[6];  /* ... the server's SQLSTATE */
	struct server *probe;      /* CL_LOGIN: a server logging in with its startup values (client.c) */
	bool probed;               /* ... one did: what is still unknown is reported as it was sent */
	struct ssl_st *ssl;        /* TLS session (tls.c), NULL in plain text */
	uint32_t tls_want;         /* EPOLLIN/EPOLLOUT the TLS layer waits for */
};

enum server_state {
	SV_CONNECTING,
	SV_LOGIN,
	SV_IDLE,
	SV_ACTIVE,
	SV_CLOSING,
};

struct server {
	struct fdtag tag;
	struct link node;          /* in the pool's idle or active list */
	struct proxy *px;
	struct pool *pool;
	enum server_state state;
	struct client *client;
	struct pbuf in;
	struct strbuf out;
	size_t out_off;
	char status;               /* last ReadyForQuery status */
	uint32_t s2c_remaining;    /* body bytes of the current server message still to copy/skip */
	bool s2c_skip;
	char *param[NTRACKED];     /* the server's current tracked parameters (ParameterStatus) */
	struct pstmt **prepared;   /* statements prepared on this connection (relay.c) */
	uint64_t *prepared_used;   /* ... when each was last used (px->stmt_clock): the oldest goes first */
	size_t nprepared, capprepared;
	bool stale;                /* its target is no longer right: close when free */
	int64_t stale_ms;          /* since when (a stale busy server is closed after hold_timeout) */
	bool standby;              /* in_hot_standby = on */
	uint8_t verify;            /* login: 0, 1 = system identifier asked, 2 = it matched */
	int reset_needed;          /* ReadyForQuery it owes before reuse: the session mode's reset query, or
				      the proxy's own queries its client left behind (client_unlink_server) */
	struct route_target target;
	int64_t created_ms;
	int64_t used_ms;
	int32_t backend_pid;
	uint8_t backend_key[4];
	void *sasl;                /* SCRAM client state while logging in */
	struct strbuf login_params; /* its ParameterStatus messages until it is logged in */
	struct sess_set sess;      /* the session state the proxy gave it or read from it (sess.c) */
	bool probe;                /* logs in only to learn how the server reports probe_sent, then closes */
	struct client *probe_for;  /* ... the client whose values they are (NULL: it left) */
	struct strbuf probe_sent;  /* ... "name\0value\0" for each parameter its startup packet set */
	uint64_t lsn_seq;          /* its read-your-writes LSN request in flight (px->lsn_seq); 0: none */
	int reset_lsn_at;          /* reset_needed: ReadyForQuery owed before that request's (-1: none) */
	/* server_tls.c: TLS to PostgreSQL ([tls] server_sslmode) */
	struct ssl_st *ssl;        /* TLS session, NULL in plain text */
	uint32_t tls_want;         /* EPOLLIN/EPOLLOUT the TLS layer waits for */
	uint8_t tls_phase;         /* SERVER_TLS_* (server_tls.h): 0 = none or done */
	enum server_sslmode tls_mode;   /* the mode it connected with (a reload may change the proxy's) */
	struct strbuf startup;     /* its startup packet, while the SSLRequest is answered */
};

struct pool {
	struct link node;          /* in the proxy's list of pools */
	struct proxy *px;
	char database[64];
	char user[64];
	bool ro;
	bool pinning;              /* transaction_pinning for this pool (proxy_pinning_for; set again at reload) */
	struct link idle;          /* servers */
	struct link active;        /* servers */
	struct link waiting;       /* clients */
	int nservers;              /* all states, connecting included */
	int nwaiting;
	struct strbuf params;      /* ParameterStatus messages from the first login */
	char *defaults[NTRACKED];  /* ... the tracked ones: what a client that did not choose gets */
	bool have_params;
	struct param_canon *canon; /* clients' startup values as servers report them (client.c) */
	size_t ncanon;
	bool probing;              /* a probe server is logging in */
	char last_error[256];      /* the last server login error, for waiting clients */
	int64_t last_error_ms;
};

struct user_entry {
	char *name;
	char *secret;              /* plaintext, "SCRAM-SHA-256$..." or "md5..." */
	/*
	 * For a plaintext password: its SCRAM verifier (random salt, 4096
	 * iterations), derived once per (user, password) by a worker thread
	 * (creds.c), so a login costs no PBKDF2 and sees the same salt each time.
	 */
	char *verifier;
	bool deriving;             /* being derived: its logins wait (creds_lookup: pending) */
};

#define PROXY_EVENTS 256

struct proxy {
	struct proxy_config cfg;
	int epfd;
	struct epoll_event evs[PROXY_EVENTS];   /* the batch being handled (proxy_unwatch) */
	int ev_next, ev_count;     /* its next event, its length */
	struct fdtag listen_rw, listen_ro, route_tag, signal_tag;
	struct fdtag unix_rw, unix_ro;   /* the same ports as unix sockets ([proxy] unix_socket_dir) */
	struct route *route;
	struct topology topo;
	int ro_rr;                 /* round robin over standbys */
	struct link pools;
	struct link clients_idle;  /* clients not waiting for a server */
	int nclients;              /* every client connection */
	int npreauth;              /* ... of which not logged in yet (max_preauth_conn) */
	struct user_entry *users;
	size_t nusers;
	struct creds *creds;       /* auth_query answers, SCRAM keys from clients (creds.c) */
	struct fdtag authq_tag;    /* auth_query lookups finished (creds.c) */
	int64_t now_ms;
	bool stopping;
	int64_t stop_ms;           /* stopping: running transactions are given up on after this */
	uint64_t stats_xacts;
	uint64_t stats_queries;
	uint64_t stats_xact_hist[12];   /* transaction time buckets, see metrics.c */
	uint64_t stats_xact_ms_sum;
	uint64_t stats_errors_sent;
	uint64_t stats_wait_hist[12];   /* time a client waited for a server, buckets as metrics.c */
	uint64_t stats_query_hist[12];  /* a Query or Sync until its ReadyForQuery */
	uint64_t stats_query_ms_sum;
	uint64_t stats_wait_ms_sum;
	uint64_t stats_bytes_from_clients;  /* read from clients (TLS: after decryption) */
	uint64_t stats_bytes_from_servers;  /* read from servers while relaying */
	uint64_t stats_bytes_to_clients;    /* sent to clients (TLS: before encryption) */
	struct { char code[6]; uint64_t n; } stats_sqlstate[16];   /* errors the proxy sent, by SQLSTATE */
	size_t nsqlstate;
	uint64_t stats_routing_changes;
	uint64_t stats_clients_total;
	uint64_t stats_preauth_refused; /* connections refused over max_preauth_conn */
	uint64_t stats_preauth_refused_logged;   /* ... as many as the log has reported */
	struct metrics *metrics;
	int32_t next_cancel_pid;
	bool paused;               /* admin PAUSE: new transactions wait */
	struct ssl_ctx_st *tls_ctx; /* [tls] configured: SSLRequest answered 'S' (tls.c) */
	int64_t tls_not_after;     /* ... its certificate's notAfter (unix seconds), for /metrics */
	char *tls_cert_loaded;     /* ... the file it came from */
	/* server_tls.c: TLS to PostgreSQL, as the last good [tls] server_* options say */
	struct ssl_ctx_st *server_tls_ctx;   /* NULL: server_sslmode = disable */
	enum server_sslmode server_tls_mode;
	int64_t server_tls_not_after;   /* server_cert_file's notAfter; 0: no client certificate */
	char *server_tls_cert_loaded;
	/* hold.c: a planned switchover holds new read-write transactions */
	bool so_hold;              /* holding for so.id */
	bool so_drained;           /* ... and no read-write transaction runs: reported in etcd */
	struct switchover so;
	int64_t so_since_ms;
	char so_given_up[40];      /* a switchover held past switchover_hold: not held again */
	bool record_published;
	int64_t record_ms;
	int so_clients_published;
	int so_waiting_published;  /* clients waiting, pools: refreshed with the record every 10 s */
	int so_pools_published;
	/* relay.c: every distinct (query, parameter types) prepared through the proxy */
	struct pstmt **stmt_table;
	size_t stmt_cap, stmt_count;
	uint64_t stmt_next_id;
	uint64_t stmt_clock;          /* uses of statements on servers (server.prepared_used) */
	uint64_t stats_stmt_evicted;  /* statements closed on a server at max_prepared_statements */
	struct pstmt *stmt_retired;   /* out of the table (result type changed), still referred to */
	struct sess_cache *sess_cache;   /* relay.c: classes of session statements seen lately (sess.c) */
	/* read-your-writes (relay.c) */
	uint64_t lsn_seq;          /* LSN requests sent after read-write transactions */
	uint64_t lsn_known;        /* the highest answer: reads must see at least this */
	uint64_t lsn_known_seq;    /* the highest request answered (it covers every write acknowledged before it) */
	uint64_t lsn_lost;         /* the highest request lost with its server (its reads go to the leader) */
	bool ryw_wake;             /* an LSN request ended: gated clients may go (client_ryw_wake) */
	struct link ryw_gated;     /* read-only clients waiting for LSN answers */
	struct ryw_standby ryw_replay[8];   /* standbys' last replay positions (ryw_standby_find) */
	uint64_t stats_ryw_standby, stats_ryw_leader, stats_ryw_waited;
	struct split_rules *split;  /* rw_split: safe functions and proven texts (split.c) */
	uint64_t stats_split_standby;   /* read-write port transactions sent to a standby */
	uint64_t stats_ro_remote;       /* read-only transactions on a standby outside [proxy] region */
	uint64_t stats_forwarded;       /* read-write transactions a standby cluster's proxy gave a server of the primary cluster */
	size_t big_bytes;          /* relay.c: large whole messages buffered now, all clients */
	size_t freed_bytes;        /* buffers shrunk since the last malloc_trim (proxy.c) */
};

/*
 * The only way a client changes state: it moves to the list of its new state
 * (the proxy's idle list, or its pool's waiting list, counted in nwaiting; an
 * active or closing client is on none), and since_ms restarts, except through
 * the login (client_login_timeout counts from the accept).
 */
void client_set_state(struct client *c, enum client_state to);
/*
 * The only way a server changes state: it moves to its pool's idle or active
 * list, or leaves it (closing: no longer counted in the pool's nservers).
 */
void server_set_state(struct server *s, enum server_state to);

/* The standby at host:port in px->ryw_replay; create: taking a slot (the oldest one when all are used). */
struct ryw_standby *ryw_standby_find(struct proxy *px, const char *host, int port, bool create);

/* The value of tracked parameter k a client of p gets: its own, else the pool's default. */
const char *pool_param(const struct client *c, int k);

#endif
