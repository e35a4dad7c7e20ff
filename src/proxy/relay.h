/*
 * relay.h — forwarding between a client and its server (relay.c):
 * transaction boundaries, and prepared statements across servers.
 */
#ifndef PGHA_PROXY_RELAY_H
#define PGHA_PROXY_RELAY_H

#include <stdbool.h>

#include "proxy/objects.h"

/*
 * What the caller does after relay_c2s() or relay_s2c(): the relay only
 * forwards and keeps its account; closing, failing and releasing are the
 * caller's (client.c).
 */
enum relay_next {
	RELAY_WAIT,          /* nothing: the next event goes on (the watches are set) */
	RELAY_RELEASE,       /* the transaction ended: give the server back, then send c->out */
	RELAY_CLOSE_CLIENT,  /* close the client (why) */
	RELAY_FAIL_CLIENT,   /* FATAL error sqlstate, why to the client, then close it when sent */
	RELAY_CLOSE_SERVER,  /* close the server (why): the client's transaction is lost */
	RELAY_END_SESSION,   /* session mode: the server's FATAL is relayed, the client ends with it */
	RELAY_RYW_GO,        /* read-your-writes: the standby replayed far enough, the client's bytes flow */
	RELAY_RYW_LEADER,    /* ... it did not within ryw_wait: the read goes to the leader */
	RELAY_MORE,          /* rw_split: the client's next unit, held until now, goes to the server */
};

/* A read-only client's read-your-writes gate (client.ryw; 0: open). */
enum { RYW_WAIT_LSN = 1, RYW_CHECK = 2, RYW_READY = 3, RYW_TO_LEADER = 4 };

struct relay_result {
	const char *sqlstate;   /* RELAY_FAIL_CLIENT */
	char why[1024];
};

/* Client → server: send what waits, read and forward what the client sent. */
enum relay_next relay_c2s(struct client *c, struct relay_result *r);
/* Server → client: forward; RELAY_RELEASE at the end of a transaction (transaction pooling). */
enum relay_next relay_s2c(struct client *c, struct relay_result *r);
/* Make the server's tracked parameters the client's before its work runs there. */
void relay_apply_params(struct client *c, struct server *s);
/* Nothing owed by the server, nothing of a client message left to copy. */
bool relay_idle(const struct client *c);
/*
 * All the server still owes c is for the proxy's own queries (a state read
 * excepted: what it would find may forbid the server's reuse): how many
 * ReadyForQuery (-1 otherwise), and *lsn_at: how many of them come before
 * the read-your-writes LSN request's (-1: none).
 */
int relay_own_queries_owed(const struct client *c, int *lsn_at);
/*
 * Read-your-writes (docs/READ_YOUR_WRITES.md): a read-only client that just
 * got standby s. 1: its bytes may flow; 0: gated (client.ryw says on what:
 * LSN answers, or the replay check queued on s); -1: its read goes to the
 * leader. relay_ryw_recheck() is the same after LSN answers came.
 */
/*
 * An idle server of s's pool the read is better off on, when s's standby is
 * not known to cover the writes reads must see or was lately found behind:
 * one on a standby not lately behind first, then the furthest along. NULL:
 * none.
 */
struct server *relay_ryw_better(struct client *c, struct server *s);
int relay_ryw_gate(struct client *c, struct server *s);
int relay_ryw_recheck(struct client *c);
/* A leader server lent to a read-only client for one read: read-only transactions on it. */
void relay_ryw_borrow(struct client *c, struct server *s);
/* The text of c's named statement name (a Parse it sent); NULL: it has none of that name. */
const char *relay_stmt_text(const struct client *c, const char *name);
void relay_reset(struct client *c);
void relay_free(struct client *c);
void relay_registry_free(struct proxy *px);

#endif
