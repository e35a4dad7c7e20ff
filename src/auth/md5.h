/*
 * md5.h — PostgreSQL's MD5 password scheme (deprecated upstream, still
 * common). No I/O, nothing is logged.
 *
 *   stored hash      "md5" + hex(md5(password || user))                 (pg_authid)
 *   client response  "md5" + hex(md5(hex(md5(password || user)) || salt))
 *
 * where salt is the 4 random bytes the server sends in
 * AuthenticationMD5Password and hex is lowercase.
 */
#ifndef PGHA_AUTH_MD5_H
#define PGHA_AUTH_MD5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/stored.h"
#include "common/err.h"

#define PGMD5_LEN 35 /* "md5" + 32 hex digits (buffers: PGMD5_LEN + 1) */
#define PGMD5_SALT_LEN 4

/* out = "md5" + hex(md5(password || user)). */
int pgmd5_hash(const char *password, const char *user, char out[PGMD5_LEN + 1],
	       struct pgha_err *e) PGHA_MUSTCHECK;

/* The client's answer to an MD5 challenge, from the plaintext password. */
int pgmd5_challenge_response(const char *password, const char *user,
			     const uint8_t salt[PGMD5_SALT_LEN], char out[PGMD5_LEN + 1],
			     struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * The same from the stored hash only (what a pooler holding "md5..." in its
 * user list sends to the server: the stored hash is password-equivalent).
 */
int pgmd5_response_from_hash(const char *md5_hash, const uint8_t salt[PGMD5_SALT_LEN],
			     char out[PGMD5_LEN + 1], struct pgha_err *e) PGHA_MUSTCHECK;

/* A random salt for an MD5 challenge. */
int pgmd5_salt(uint8_t salt[PGMD5_SALT_LEN], struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Verify a client's response (len bytes, from the wire) to the challenge
 * salt. stored is what the user list holds: an md5 hash or a plaintext
 * password; NULL (unknown user) and a SCRAM verifier (cannot answer an MD5
 * challenge) fail after the same amount of work. 0 on success; on failure e
 * says why, for the log only (the client gets "password authentication
 * failed" whatever the reason). Constant-time comparison.
 */
int pgmd5_verify(const char *stored, const char *user, const uint8_t salt[PGMD5_SALT_LEN],
		 const char *response, size_t len, struct pgha_err *e) PGHA_MUSTCHECK;

#endif
