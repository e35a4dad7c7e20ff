/*
 * creds.h — what the proxy knows about a user's credentials besides its
 * users file, and what it logs in to PostgreSQL with.
 *
 *  - auth_query answers: for a user not in the users file, when [auth]
 *    auth_user is set, a client's login looks the user up (authq.c runs the
 *    query on the leader, else a standby); the answer (a SCRAM verifier, an
 *    md5 hash, or "no such user") serves new logins for auth_query_cache,
 *    and the last secret found stays for server logins.
 *  - SCRAM verifiers of the users file's plaintext passwords, derived by
 *    authq.c's workers when the file is loaded (and again only for a
 *    password that changed at a reload): the event loop never runs PBKDF2,
 *    and a user's salt stays the same from one login to the next, like a
 *    mock user's (scram.h), so the two cannot be told apart.
 *  - SCRAM keys: a client that authenticated with SCRAM against a verifier
 *    gave away its ClientKey; it is kept per user (memory only, wiped when
 *    freed) and answers PostgreSQL's SCRAM challenge when the server stores
 *    the same verifier (PgBouncer does the same).
 *
 * Event-loop thread only. Secrets returned by pointer stay valid until the
 * loop next runs creds_lookups_done(), creds_tick() or a users-file reload.
 */
#ifndef PGHA_PROXY_CREDS_H
#define PGHA_PROXY_CREDS_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/scram.h"
#include "common/err.h"

struct proxy;
struct user_entry;

/* Lookups waiting or running at most; more logins of new users are refused (53300). */
#define CREDS_MAX_LOOKUPS 1000

/*
 * Set up (px->creds); with auth_user set, check that its password is known
 * and, unless check_only, start the lookup workers and watch their eventfd.
 * Call after the users file is loaded and signals are blocked.
 */
int creds_start(struct proxy *px, bool check_only, struct pgha_err *e) PGHA_MUSTCHECK;
/* server_tls_configure() set TLS to PostgreSQL: auth_query's connections follow it. */
void creds_tls_changed(struct proxy *px);
/* After the users file was reloaded: auth_user's password again (file or users file). */
int creds_reload(struct proxy *px, struct pgha_err *e) PGHA_MUSTCHECK;
/*
 * px->users was (re)loaded, old/nold is the previous list (freed by the
 * caller after this): plaintext passwords keep their verifier when unchanged,
 * others are queued for derivation.
 */
void creds_users_loaded(struct proxy *px, struct user_entry *old, size_t nold);
void creds_stop(struct proxy *px);

/* The secret for user: the users file's, else the last one auth_query found; NULL if none. */
const char *creds_secret(struct proxy *px, const char *user);

enum creds_lookup {
	CREDS_KNOWN,     /* *secret is the users file's or a cached answer (NULL: no such user) */
	CREDS_PENDING,   /* a lookup or derivation runs: its answer comes with creds_take_wake() */
	CREDS_FAILED,    /* no lookup possible now: e says why (for the log) */
};
/* For a client's login: what to authenticate it against. */
enum creds_lookup creds_lookup(struct proxy *px, const char *user, const char **secret,
			       struct pgha_err *e);
/*
 * The SCRAM exchange for a client of user whose secret creds_lookup() gave:
 * a users-file password runs against its derived verifier (never PBKDF2
 * here), a secret that cannot do SCRAM or an unknown user against a mock.
 */
struct scram_server *creds_scram_server(struct proxy *px, const char *user, const char *secret,
					struct pgha_err *e);
/* The lookup eventfd is readable: take the answers (for creds_take_wake). */
void creds_lookups_done(struct proxy *px);
/* A new topology: lookups held for want of a server go now. */
void creds_topology_changed(struct proxy *px);
/* Once a second: held lookups past hold_timeout fail; old answers for users gone are forgotten. */
void creds_tick(struct proxy *px);

/*
 * A lookup or derivation is over: the clients of user that waited for it go
 * on. creds_lookups_done(), creds_topology_changed() and creds_tick() queue
 * these; the caller takes them after each (the secret is a copy: free it
 * with creds_wake_free()).
 */
struct creds_wake {
	struct creds_wake *next;
	char *user;
	char *secret;      /* what to authenticate against; NULL: no such user */
	char *failure;     /* the lookup failed: why (for the log); NULL: it did not */
};
/* The next answer not taken yet; NULL: none. */
struct creds_wake *creds_take_wake(struct proxy *px);
void creds_wake_free(struct creds_wake *w);

/* A client of user authenticated with SCRAM: keep its keys for server logins. */
void creds_learn_keys(struct proxy *px, const char *user, const struct scram_keys *k);

/* What the proxy can answer PostgreSQL's authentication request for user with. */
struct server_creds {
	const char *password;           /* plaintext: answers everything */
	const char *md5_hash;           /* answers an md5 challenge */
	const struct scram_keys *keys;  /* answer SCRAM when the server stores the same verifier */
	const char *secret_kind;        /* "a SCRAM verifier", "an md5 hash"...; NULL: nothing known */
	const char *source;             /* "the users file" or "auth_query" */
	const char *no_keys;            /* with a verifier but no usable keys: why */
};
void creds_for_server(struct proxy *px, const char *user, struct server_creds *out);

#endif
