/*
 * proxy_int.h — the proxy's objects, shared by its files. Everything here
 * lives on the event-loop thread; only route.c has a thread of its own.
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
#ifndef PGHA_PROXY_INT_H
#define PGHA_PROXY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "common/strbuf.h"
#include "proxy/proxy_config.h"
#include "proxy/route.h"

struct ssl_st;       /* OpenSSL's SSL and SSL_CTX, used only in tls.c */
struct ssl_ctx_st;

struct proxy;
struct pool;
struct server;

/* Growable byte buffer with a consumed prefix. */
struct pbuf {
	uint8_t *data;
	size_t cap;
	size_t start;   /* first unconsumed byte */
	size_t end;     /* one past the last byte */
	/*
	 * The last read got less than it asked for (or EAGAIN): the socket was
	 * drained then. The relay does not read again in the same pass (a read
	 * that would only say EAGAIN); level-triggered epoll reports what comes
	 * next. Cleared before a pass that an EPOLLIN event started.
	 */
	bool drained;
};

/* Startup parameters kept per client and applied (SET) on whichever server it gets. */
#define NTRACKED 6
extern const char *const tracked_params[NTRACKED];
int tracked_index(const char *name);

/* A linked-list node embedded in clients and servers. */
struct link {
	struct link *prev, *next;
};

enum fd_kind { FD_LISTEN_RW, FD_LISTEN_RO, FD_CLIENT, FD_SERVER, FD_ROUTE, FD_SIGNAL, FD_AUTHQ };

/* What epoll hands back: the first member of every registered object. */
struct fdtag {
	enum fd_kind kind;
	int fd;
	uint32_t events;       /* currently registered */
	bool registered;
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
	uint32_t c2s_remaining;    /* body bytes of a streamed client message still to copy */
	size_t big;                /* bytes of px->big_bytes this client's buffer holds */
	bool close_when_sent;      /* close once c->out is sent (client_close_when_sent) */
	uint32_t drop_remaining;   /* ... after reading this much more: the rest of a refused message */
	uint8_t refused_encryption; /* answered 'N' to an SSLRequest (1), a GSSENCRequest (2): once each */
	struct stmt_map *stmts;    /* the client's named prepared statements */
	size_t nstmts, capstmts;
	int64_t since_ms;          /* state change time (login, wait and idle timeouts) */
	int64_t xact_start_ms;     /* when it got its server (transaction time) */
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
	size_t nprepared, capprepared;
	bool stale;                /* its target is no longer right: close when free */
	int64_t stale_ms;          /* since when (a stale busy server is closed after hold_timeout) */
	bool standby;              /* in_hot_standby = on */
	uint8_t verify;            /* login: 0, 1 = system identifier asked, 2 = it matched */
	bool reset_needed;         /* session mode: run the reset query before reuse */
	struct route_target target;
	int64_t created_ms;
	int64_t used_ms;
	int32_t backend_pid;
	uint8_t backend_key[4];
	void *sasl;                /* SCRAM client state while logging in */
	struct strbuf login_params; /* its ParameterStatus messages until it is logged in */
};

struct pool {
	struct link node;          /* in the proxy's list of pools */
	struct proxy *px;
	char database[64];
	char user[64];
	bool ro;
	struct link idle;          /* servers */
	struct link active;        /* servers */
	struct link waiting;       /* clients */
	int nservers;              /* all states, connecting included */
	int nwaiting;
	struct strbuf params;      /* ParameterStatus messages from the first login */
	char *defaults[NTRACKED];  /* ... the tracked ones: what a client that did not choose gets */
	bool have_params;
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
	uint64_t stats_xacts;
	uint64_t stats_queries;
	uint64_t stats_xact_hist[12];   /* transaction time buckets, see metrics.c */
	uint64_t stats_xact_ms_sum;
	uint64_t stats_errors_sent;
	uint64_t stats_routing_changes;
	uint64_t stats_clients_total;
	uint64_t stats_preauth_refused; /* connections refused over max_preauth_conn */
	uint64_t stats_preauth_refused_logged;   /* ... as many as the log has reported */
	struct metrics *metrics;
	int32_t next_cancel_pid;
	bool paused;               /* admin PAUSE: new transactions wait */
	struct ssl_ctx_st *tls_ctx; /* [tls] configured: SSLRequest answered 'S' (tls.c) */
	/* hold.c: a planned switchover holds new read-write transactions */
	bool so_hold;              /* holding for so.id */
	bool so_drained;           /* ... and no read-write transaction runs: reported in etcd */
	struct switchover so;
	int64_t so_since_ms;
	char so_given_up[40];      /* a switchover held past switchover_hold: not held again */
	bool record_published;
	int64_t record_ms;
	int so_clients_published;
	/* relay.c: every distinct (query, parameter types) prepared through the proxy */
	struct pstmt **stmt_table;
	size_t stmt_cap, stmt_count;
	uint64_t stmt_next_id;
	struct pstmt *stmt_retired;   /* out of the table (result type changed), still referred to */
	size_t big_bytes;          /* relay.c: large whole messages buffered now, all clients */
	size_t freed_bytes;        /* buffers shrunk since the last malloc_trim (proxy.c) */
};

/* io.c */
/* Buffers that grew past this for a large message shrink back once it is through. */
#define PBUF_KEEP (64u * 1024)
void pbuf_reserve(struct pbuf *b, size_t extra);
/* Give back what a buffer grew past PBUF_KEEP (all of it when empty); returns bytes freed. */
size_t pbuf_shrink(struct pbuf *b);
/* Free sb if it grew past PBUF_KEEP and all of it was sent (*off == len, then 0); returns bytes freed. */
size_t sb_shrink(struct strbuf *sb, size_t *off);
void pbuf_free(struct pbuf *b);
size_t pbuf_len(const struct pbuf *b);
void pbuf_compact(struct pbuf *b);
/* Read what the socket has (up to a limit). Returns bytes read, 0 on EOF, -1 on error, -2 EAGAIN. */
ssize_t pbuf_read(struct pbuf *b, int fd);
/* Send bytes [start, end) of b to fd, consuming what was sent. 1 all sent, 0 partial, -1 error. */
int pbuf_send(struct pbuf *b, int fd);
/* Send sb from *off; 1 all sent (sb reset), 0 partial, -1 error. */
int strbuf_send(struct strbuf *sb, size_t *off, int fd);
/* hold.c */
void hold_topology(struct proxy *px);   /* after a new topology */
void hold_check(struct proxy *px);      /* a server was released: drained now? */
void hold_tick(struct proxy *px);
/* New transactions of this pool wait: admin PAUSE, or a switchover (read-write pools). */
bool pool_held(const struct pool *p);

/* tls.c */
int tls_configure(struct proxy *px, struct pgha_err *e);
void tls_shutdown(struct proxy *px);
int tls_begin(struct client *c);
void tls_end(struct client *c);
/* 1 done, 0 in progress (c->tls_want says what to wait for), -1 failed. */
int tls_handshake(struct client *c);
ssize_t tls_read(struct client *c, struct pbuf *b);
int tls_send(struct client *c, struct strbuf *sb, size_t *off);

/* Client I/O, TLS or not: same results as pbuf_read() and strbuf_send(). */
static inline ssize_t client_read(struct client *c, struct pbuf *b)
{
	return c->ssl ? tls_read(c, b) : pbuf_read(b, c->tag.fd);
}

static inline int client_send(struct client *c, struct strbuf *sb, size_t *off)
{
	return c->ssl ? tls_send(c, sb, off) : strbuf_send(sb, off, c->tag.fd);
}

void link_init(struct link *l);
void link_add_tail(struct link *head, struct link *n);
void link_del(struct link *n);
bool link_empty(const struct link *head);
#define link_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* proxy.c */
void proxy_watch(struct proxy *px, struct fdtag *t, uint32_t events);
void proxy_unwatch(struct proxy *px, struct fdtag *t);
const struct user_entry *proxy_user(const struct proxy *px, const char *name);
int proxy_reload_users(struct proxy *px, struct pgha_err *e);
/* SIGHUP / RELOAD: re-read the config file (reloadable options), TLS files and the users file. */
int proxy_reload(struct proxy *px, struct pgha_err *e);

/* client.c */
void client_accept(struct proxy *px, int fd, bool ro);
/*
 * The only way a client changes state: it moves to the list of its new state
 * (the proxy's idle list, or its pool's waiting list, counted in nwaiting; an
 * active or closing client is on none), and since_ms restarts, except through
 * the login (client_login_timeout counts from the accept).
 */
void client_set_state(struct client *c, enum client_state to);
void client_event(struct client *c, uint32_t events);
void client_send_error(struct client *c, const char *sqlstate, const char *msg, bool fatal);
void client_close(struct client *c, const char *why);
/* Send what is queued for c, then close it (reading and dropping its input meanwhile). */
void client_close_when_sent(struct client *c, const char *why);
/*
 * c's server is gone (it died, ended the session with FATAL, or was closed for
 * it): its transaction is lost, not its connection. Told at once (08006, then
 * ReadyForQuery) unless it sits idle inside the transaction (the server's last
 * ReadyForQuery said 'T' or 'E', nothing is owed, nothing is buffered): then at
 * its next request, never unsolicited.
 */
void client_server_lost(struct client *c, char server_status, const char *why);
/* FATAL error sqlstate/msg to the client, then client_close_when_sent(). */
void client_fail(struct client *c, const char *sqlstate, const char *msg);
void client_got_server(struct client *c, struct server *s);
void client_login_done(struct client *c);
void client_check_timeouts(struct client *c);
void client_report_refused(struct proxy *px);
/* creds.c: the auth_query lookup c waited for is over (failure: why, for the log). */
void client_auth_lookup_done(struct client *c, const char *secret, const char *failure);
/* A server answered: forward, and release it at the end of a transaction. */
void client_forward_from_server(struct client *c);

/* admin.c */
bool admin_allowed(const struct proxy *px, const char *user);
void admin_login_done(struct client *c);
int admin_input(struct client *c);

/* metrics.c: Prometheus text rendered by the loop each second, served by an HTTP thread */
struct metrics;
struct metrics *metrics_start(struct proxy *px, const char *listen, struct pgha_err *e);
void metrics_render(struct proxy *px);
void metrics_stop(struct metrics *m);
void metrics_observe_xact(struct proxy *px, int64_t ms);

/* relay.c: forwarding, transaction boundaries, prepared statements across servers */
void relay_c2s(struct client *c);
void relay_apply_params(struct client *c, struct server *s);
bool relay_idle(const struct client *c);
void relay_reset(struct client *c);
void relay_free(struct client *c);
void relay_server_free(struct server *s);
void relay_registry_free(struct proxy *px);

/* server.c */
/* Connecting: counted in p->nservers (until closed), on p's active list. NULL: failed (told to p). */
struct server *server_connect(struct pool *p, const struct route_target *t);
/* The only way a server changes state: it moves to its pool's idle or active list, or leaves (closing). */
void server_set_state(struct server *s, enum server_state to);
void server_event(struct server *s, uint32_t events);
void server_close(struct server *s, const char *why);
/* Send the client's buffered bytes to its server. */
void server_forward_from_client(struct server *s);
void server_check_timeouts(struct server *s);
struct pgp_msg;
/* A ParameterStatus from the server: role (in_hot_standby) and tracked parameters. */
void server_param(struct server *s, const struct pgp_msg *m);

/* pool.c */
struct pool *pool_get(struct proxy *px, const char *db, const char *user, bool ro);
void pool_request(struct pool *p, struct client *c);
void pool_cancel_wait(struct pool *p, struct client *c);
void pool_release(struct server *s);
void pool_server_ready(struct server *s);
/* The first server logged in: its ParameterStatus messages (taken) are what clients are told. */
void pool_take_params(struct pool *p, struct strbuf *params);
/* The value of tracked parameter k a client of p gets: its own, else the pool's default. */
const char *pool_param(const struct client *c, int k);
void pool_login_failed(struct pool *p, const char *why);
bool pool_target(struct pool *p, struct route_target *out);
void pool_topology_changed(struct proxy *px);
void pool_tick(struct pool *p);
void pool_resume_all(struct proxy *px);

#endif
