/*
 * stored.h — what kind of secret a stored password is. Both schemes ask it
 * (an MD5 challenge cannot be answered from a SCRAM verifier, nor SCRAM from an
 * md5 hash), so it sits below md5.c and scram.c rather than in either.
 */
#ifndef PGHA_AUTH_STORED_H
#define PGHA_AUTH_STORED_H

#include <stdbool.h>

/* Is s an md5 hash as PostgreSQL stores it ("md5" + exactly 32 lowercase hex digits)? */
bool pgmd5_is_verifier(const char *s);

/* Does s look like a SCRAM verifier (starts with "SCRAM-SHA-256$")? Parse to be sure. */
bool scram_is_verifier(const char *s);

#endif
