/*
 * scram.h — SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it.
 * Cryptography and message parsing only: no I/O, nothing is logged.
 *
 * Three parts:
 *
 *  1. Verifiers, PostgreSQL's stored format (pg_authid.rolpassword):
 *       SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
 *
 *  2. The server side (the proxy authenticating a client):
 *       s = scram_server_new_stored(user, stored, NULL, &e)
 *       scram_server_first(s, client-first-message)  -> server-first-message
 *       scram_server_final(s, client-final-message)  -> server-final-message
 *     A failed scram_server_final() fills the error with the exact reason
 *     (wrong password, nonce mismatch, channel binding, mock...). That text is
 *     for the server log only: the client must get the same answer whatever
 *     the reason, as PostgreSQL does (ErrorResponse SQLSTATE 28P01
 *     "password authentication failed for user ..."). Errors from
 *     scram_server_first() are about the message's syntax and may be shown to
 *     the client (they never depend on the user or its secret).
 *
 *  3. The client side (the proxy authenticating to PostgreSQL):
 *       scram_client_first(password)         -> client-first-message
 *       scram_client_continue(server-first)  -> client-final-message
 *       scram_client_verify(server-final)    -> 0 when the server proved it knows the verifier
 *
 * Messages are passed with their length (they come from the wire); a message
 * with an embedded NUL, an empty one, or one longer than
 * SCRAM_MAX_MESSAGE_LEN is refused. Produced messages are malloc'd
 * NUL-terminated strings; free them with scram_free_msg() (the
 * client-final-message carries the proof, so it is wiped).
 *
 * Passwords go through SASLprep first, as PostgreSQL's (auth/saslprep.h).
 *
 * Secrets hygiene: every buffer holding a password, a salted password, a
 * ClientKey, a ServerKey or a proof is wiped before it is released; the
 * objects wipe themselves in their *_free().
 */
#ifndef PGHA_AUTH_SCRAM_H
#define PGHA_AUTH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/stored.h"
#include "common/err.h"

#define SCRAM_MECHANISM "SCRAM-SHA-256"
#define SCRAM_VERIFIER_PREFIX "SCRAM-SHA-256$"
#define SCRAM_KEY_LEN 32             /* SHA-256 */
#define SCRAM_DEFAULT_ITERATIONS 4096 /* PostgreSQL's default */
#define SCRAM_DEFAULT_SALT_LEN 16
#define SCRAM_MAX_SALT_LEN 128       /* larger salts in a verifier are refused */
#define SCRAM_NONCE_RAW_LEN 18       /* random bytes in our nonces (base64: 24 chars) */
/*
 * Upper bound on the iteration count we run PBKDF2 with (client side, and
 * verifier generation): bounds the CPU a hostile or misconfigured server can
 * make us burn. PostgreSQL accepts any count >= 1; we do too, up to this.
 */
#define SCRAM_MAX_ITERATIONS 10000000
/*
 * The fewest iterations the client side accepts from a server when it derives
 * keys from a password: a server (or an impostor listed in etcd) that asks for
 * fewer would make the proof it gets cheap to brute-force offline.
 */
#define SCRAM_MIN_SERVER_ITERATIONS 4096
#define SCRAM_MAX_MESSAGE_LEN 8192
#define SCRAM_MAX_PASSWORD_LEN (1024 * 1024)

/* ---------------------------------------------------------------- verifiers */

struct scram_verifier {
	int iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	uint8_t stored_key[SCRAM_KEY_LEN]; /* H(ClientKey) */
	uint8_t server_key[SCRAM_KEY_LEN]; /* HMAC(SaltedPassword, "Server Key") */
};


/* Parse PostgreSQL's stored format (strict: canonical padded base64, 32-byte keys, 1 <= i <= INT_MAX). */
int scram_verifier_parse(const char *s, struct scram_verifier *v, struct pgha_err *e) PGHA_MUSTCHECK;

/* Format v in PostgreSQL's stored format; the caller frees the result. */
char *scram_verifier_format(const struct scram_verifier *v);

/*
 * Compute a verifier from a plaintext password: SASLprep, SCRAM_DEFAULT_SALT_LEN
 * random salt bytes, iterations (0: SCRAM_DEFAULT_ITERATIONS; at most
 * SCRAM_MAX_ITERATIONS).
 */
int scram_verifier_from_password(const char *password, int iterations, struct scram_verifier *v,
				 struct pgha_err *e) PGHA_MUSTCHECK;
/* Same with a given salt (deterministic; tests, and re-deriving a known verifier). */
int scram_verifier_from_password_salt(const char *password, const uint8_t *salt, size_t salt_len,
				      int iterations, struct scram_verifier *v,
				      struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Check a plaintext password (e.g. from a cleartext password exchange)
 * against a verifier: 0 if it matches, -1 otherwise (e says why). Costs one
 * PBKDF2 with the verifier's iteration count (refused above SCRAM_MAX_ITERATIONS).
 */
int scram_verifier_check_password(const struct scram_verifier *v, const char *password,
				  struct pgha_err *e) PGHA_MUSTCHECK;

void scram_verifier_wipe(struct scram_verifier *v);

/* ------------------------------------------------------------------- keys */

/*
 * The keys of one verifier, as recovered from a client's successful SCRAM
 * exchange (scram_server_client_key()) and usable to answer a SCRAM challenge
 * of the PostgreSQL server without knowing the password
 * (scram_client_first_with_keys()). The ClientKey is password-equivalent for
 * every server that stores this verifier: wipe it with scram_keys_wipe().
 */
struct scram_keys {
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	size_t salt_len;
	int iterations;
};

void scram_keys_wipe(struct scram_keys *k);

/*
 * Do keys belong to verifier v: same salt and iteration count, the same
 * ServerKey, and H(ClientKey) = StoredKey? (Constant-time comparisons.) A
 * pooler keeping keys learned from a client checks this before using them
 * with the verifier it currently knows: keys learned under a verifier that
 * has changed since are refused here instead of failing at the server.
 */
bool scram_keys_match(const struct scram_keys *k, const struct scram_verifier *v);

/* --------------------------------------------------------------- server side */

struct scram_server;

/*
 * Mock authentication settings, for users that do not exist (or whose stored
 * secret cannot do SCRAM). The exchange runs normally with a fake salt and
 * fails at the very end, like a wrong password: user names cannot be probed.
 * The fake salt is HMAC-SHA256(key, user) truncated, so it is stable per user
 * (a salt that changed on each attempt would give the game away). Pass a key
 * that survives restarts (e.g. random bytes kept in a file) to keep it stable
 * across restarts too; key == NULL uses a per-process random key.
 * iterations: 0 means SCRAM_DEFAULT_ITERATIONS; use what the real verifiers use.
 */
struct scram_mock {
	const uint8_t *key;
	size_t key_len;
	int iterations;
};

/* A server exchange against a verifier (copied). Returns NULL only if v is invalid. */
struct scram_server *scram_server_new(const struct scram_verifier *v, struct pgha_err *e);

/*
 * A server exchange against a plaintext-stored password: derives the keys
 * with a fresh random salt and SCRAM_DEFAULT_ITERATIONS (as PostgreSQL does
 * for a plaintext rolpassword). NULL on error (SASLprep unsupported...).
 */
struct scram_server *scram_server_new_plain(const char *password, struct pgha_err *e);

/* A mock exchange for user (mock may be NULL). NULL only if the RNG fails. */
struct scram_server *scram_server_new_mock(const char *user, const struct scram_mock *mock,
					   struct pgha_err *e);

/* A mock exchange for a user that exists but cannot do SCRAM; reason goes to the final error (the log). */
struct scram_server *scram_server_new_doomed(const char *user, const struct scram_mock *mock,
					     const char *reason, struct pgha_err *e);

/*
 * The one to use: stored is what the user list holds for user — a SCRAM
 * verifier, a plaintext password, an md5 hash, or NULL for an unknown user.
 * Whatever cannot do SCRAM (NULL, md5 hash, malformed verifier, empty
 * password, password SASLprep cannot handle) gets a mock exchange whose final
 * error names the real reason. NULL only if the RNG fails.
 */
struct scram_server *scram_server_new_stored(const char *user, const char *stored,
					     const struct scram_mock *mock, struct pgha_err *e);

/*
 * client-first-message -> server-first-message ("r=<nonce>,s=<salt>,i=<n>").
 * Accepts the GS2 headers "n,," and "y,," (y: the client supports channel
 * binding but thinks we do not — true, we only advertise SCRAM-SHA-256), and
 * an empty authzid ("n,a=,"). Refuses "p=..." (channel binding requested but
 * not offered), a non-empty authzid, and mandatory extensions ("m="). The
 * user name in the message is ignored, like PostgreSQL: the startup packet's
 * user is the one authenticated.
 */
int scram_server_first(struct scram_server *s, const char *msg, size_t len, char **out,
		       struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * client-final-message -> server-final-message ("v=<ServerSignature>").
 * Checks the channel-binding echo (c= must be base64 of the GS2 header the
 * client sent: "biws" for "n,,", "eSws" for "y,,"), the nonce, and the proof
 * (constant time). On failure, see the top of this file: e->msg is for the
 * log only.
 */
int scram_server_final(struct scram_server *s, const char *msg, size_t len, char **out,
		       struct pgha_err *e) PGHA_MUSTCHECK;

/* Has the exchange completed successfully? */
bool scram_server_succeeded(const struct scram_server *s);

/*
 * After a successful exchange: the client's ClientKey (recovered as
 * ClientProof XOR ClientSignature), with the verifier's ServerKey, salt and
 * iteration count. Fails before success.
 *
 * Passthrough condition: these keys authenticate to a PostgreSQL server
 * (scram_client_first_with_keys()) only if that server stores the very same
 * verifier for the role — same salt, same iteration count, same password —
 * e.g. the proxy got it from that server's pg_authid (auth query) or it was
 * copied from there. A plaintext-stored password gets a random salt per
 * exchange here, so its keys never pass through: use the password itself.
 */
int scram_server_client_key(const struct scram_server *s, struct scram_keys *out,
			    struct pgha_err *e) PGHA_MUSTCHECK;

void scram_server_free(struct scram_server *s);

/* --------------------------------------------------------------- client side */

struct scram_client;

/*
 * Start an exchange with a password: *client is the new state, *out the
 * client-first-message "n,,n=,r=<nonce>" (the user name is empty, as libpq
 * sends it: the server uses the startup packet's user).
 */
int scram_client_first(const char *password, struct scram_client **client, char **out,
		       struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Start an exchange with recovered keys instead of a password (see
 * scram_server_client_key() for when that works). scram_client_continue()
 * then refuses a server whose salt or iteration count differ from keys'.
 */
int scram_client_first_with_keys(const struct scram_keys *keys, struct scram_client **client,
				 char **out, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * server-first-message -> client-final-message. Checks that the server's
 * nonce extends ours, 1 <= i <= SCRAM_MAX_ITERATIONS, and the salt.
 */
int scram_client_continue(struct scram_client *c, const char *msg, size_t len, char **out,
			  struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * server-final-message: 0 if v= carries the expected ServerSignature
 * (constant-time compare). An "e=<error>" from the server is reported.
 */
int scram_client_verify(struct scram_client *c, const char *msg, size_t len,
			struct pgha_err *e) PGHA_MUSTCHECK;

void scram_client_free(struct scram_client *c);

/* Wipe and free a message produced by this module (NULL is fine). */
void scram_free_msg(char *msg);

/* ------------------------------------------------------------ testing hooks */

/*
 * For reproducing published test vectors only: the same as scram_server_first()
 * / scram_client_first() but with a caller-chosen nonce (printable ASCII
 * except ',') and, on the client, a user name for the n= attribute (which
 * PostgreSQL ignores; RFC 7677's vector has "n=user"). Production code uses
 * the random-nonce functions above.
 */
int scram_server_first_with_nonce(struct scram_server *s, const char *msg, size_t len,
				  const char *server_nonce, char **out,
				  struct pgha_err *e) PGHA_MUSTCHECK;
int scram_client_first_with_nonce(const char *password, const char *user, const char *client_nonce,
				  struct scram_client **client, char **out,
				  struct pgha_err *e) PGHA_MUSTCHECK;

#endif
