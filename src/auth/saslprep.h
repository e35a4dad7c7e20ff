/*
 * saslprep.h — SASLprep (RFC 4013) of SCRAM passwords, the way PostgreSQL
 * does it. No I/O.
 *
 * PostgreSQL (src/common/saslprep.c, used by both the server and libpq)
 * prepares a password like this:
 *
 *   - pure ASCII: used as is (no check at all, control characters included);
 *   - not valid UTF-8: the raw bytes are used ("RAW");
 *   - otherwise map (non-ASCII spaces -> U+0020, RFC 3454 B.1 -> nothing),
 *     then, on the mapped string: empty, or a prohibited / unassigned
 *     (Unicode 3.2) code point, or a failed bidi check -> the raw bytes are
 *     used ("RAW"); else the result is the NFKC normalization of the mapped
 *     string.
 *
 * This implementation does all of the above; NFKC itself comes from ICU
 * (saslprep.c says why ICU). The mapping and the checks use generated
 * Unicode 3.2 stringprep tables (saslprep_table.h, from gen_saslprep_table.py).
 */
#ifndef PGHA_AUTH_SASLPREP_H
#define PGHA_AUTH_SASLPREP_H

#include "common/err.h"

enum scram_saslprep_rc {
	SCRAM_SASLPREP_OK,          /* *out is the prepared password */
	SCRAM_SASLPREP_RAW,         /* PostgreSQL uses the raw bytes: *out is a copy of the input */
	SCRAM_SASLPREP_FAILED,      /* ICU could not normalize (out of memory): *out = NULL */
};

/*
 * Prepare password. On OK and RAW, *out is a NUL-terminated string the caller
 * frees with secret_free() (common/util.h), which wipes it.
 */
enum scram_saslprep_rc scram_saslprep(const char *password, char **out);

/*
 * The bytes PostgreSQL feeds to PBKDF2 for this password: scram_saslprep()
 * with FAILED turned into an error. *out: free with secret_free().
 */
int scram_prepare_password(const char *password, char **out, struct pgha_err *e) PGHA_MUSTCHECK;

#endif
