/*
 * base64.h — standard base64 (RFC 4648 section 4), padded, strict.
 * One implementation for the etcd gateway (keys and values) and SCRAM
 * (nonces, salts, keys, proofs).
 */
#ifndef PGHA_BASE64_H
#define PGHA_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Encode len bytes; the caller frees the NUL-terminated result. */
char *base64_encode(const void *data, size_t len);

/*
 * Decode n characters of in into out (at most cap bytes). Strict: length a
 * multiple of 4, '=' only as the last one or two characters, no whitespace,
 * and the bits padding leaves unused must be zero (one value, one encoding).
 * Returns the decoded length, or -1 if in is not such base64 or needs more
 * than cap bytes. Intermediate bytes are wiped (callers decode secrets).
 */
long base64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
