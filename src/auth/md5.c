/*
 * md5.c — PostgreSQL's MD5 password scheme (see md5.h).
 */
#include "auth/md5.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/stored.h"
#include "common/strbuf.h"

static const char hexdigits[] = "0123456789abcdef";

/* out = "md5" + hex(md5(a || b)); a and b may be secrets, the buffer is wiped. */
static int md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[PGMD5_LEN + 1],
		   struct pgha_err *e)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	unsigned char *buf = xmalloc(alen + blen + 1);
	int ok;

	memcpy(buf, a, alen);
	memcpy(buf + alen, b, blen);
	ok = EVP_Digest(buf, alen + blen, digest, &dlen, EVP_md5(), NULL) == 1 && dlen == 16;
	OPENSSL_cleanse(buf, alen + blen + 1);
	free(buf);
	if (!ok) {
		OPENSSL_cleanse(digest, sizeof(digest));
		return err_set(e, "MD5 is not available in OpenSSL (FIPS mode?)");
	}
	memcpy(out, "md5", 3);
	for (unsigned int i = 0; i < 16; i++) {
		out[3 + 2 * i] = hexdigits[digest[i] >> 4];
		out[3 + 2 * i + 1] = hexdigits[digest[i] & 15];
	}
	out[PGMD5_LEN] = '\0';
	OPENSSL_cleanse(digest, sizeof(digest));
	return 0;
}

int pgmd5_hash(const char *password, const char *user, char out[PGMD5_LEN + 1],
	       struct pgha_err *e)
{
	return md5_hex(password, strlen(password), user, strlen(user), out, e);
}

int pgmd5_response_from_hash(const char *md5_hash, const uint8_t salt[PGMD5_SALT_LEN],
			     char out[PGMD5_LEN + 1], struct pgha_err *e)
{
	if (!pgmd5_is_verifier(md5_hash))
		return err_set(e, "not an md5 hash (expected \"md5\" and 32 lowercase hex digits)");
	/* The hex part only: md5(hex(md5(password || user)) || salt). */
	return md5_hex(md5_hash + 3, PGMD5_LEN - 3, salt, PGMD5_SALT_LEN, out, e);
}

int pgmd5_challenge_response(const char *password, const char *user,
			     const uint8_t salt[PGMD5_SALT_LEN], char out[PGMD5_LEN + 1],
			     struct pgha_err *e)
{
	char hash[PGMD5_LEN + 1];
	int rc = pgmd5_hash(password, user, hash, e);

	if (rc == 0)
		rc = pgmd5_response_from_hash(hash, salt, out, e);
	OPENSSL_cleanse(hash, sizeof(hash));
	return rc;
}

int pgmd5_salt(uint8_t salt[PGMD5_SALT_LEN], struct pgha_err *e)
{
	if (RAND_bytes(salt, PGMD5_SALT_LEN) != 1)
		return err_set(e, "MD5: cannot get random bytes from OpenSSL");
	return 0;
}

int pgmd5_verify(const char *stored, const char *user, const uint8_t salt[PGMD5_SALT_LEN],
		 const char *response, size_t len, struct pgha_err *e)
{
	char expected[PGMD5_LEN + 1];
	const char *why = NULL;
	int rc;

	if (!user)
		user = "";
	/*
	 * Compute an expected response in every case, so that the time taken
	 * does not tell an unknown user from a wrong password.
	 */
	if (!stored) {
		why = "user does not exist";
		rc = pgmd5_challenge_response("", user, salt, expected, e);
	} else if (scram_is_verifier(stored)) {
		why = "the stored secret is a SCRAM verifier, which cannot answer an MD5 challenge "
		      "(use SCRAM authentication, or store the md5 hash or the plaintext password)";
		rc = pgmd5_challenge_response("", user, salt, expected, e);
	} else if (pgmd5_is_verifier(stored)) {
		rc = pgmd5_response_from_hash(stored, salt, expected, e);
	} else if (stored[0] == '\0') {
		why = "the stored password is empty";
		rc = pgmd5_challenge_response("", user, salt, expected, e);
	} else {
		rc = pgmd5_challenge_response(stored, user, salt, expected, e);
	}
	if (rc < 0) {
		OPENSSL_cleanse(expected, sizeof(expected));
		return rc;
	}

	bool match = response && len == PGMD5_LEN &&
		     CRYPTO_memcmp(response, expected, PGMD5_LEN) == 0;
	OPENSSL_cleanse(expected, sizeof(expected));
	if (why)
		return err_set(e, "MD5 authentication failed: %s", why);
	if (!response || len != PGMD5_LEN)
		return err_set(e, "MD5 authentication failed: malformed response (%zu bytes, expected %d)",
			       response ? len : 0, PGMD5_LEN);
	if (!match)
		return err_set(e, "MD5 authentication failed: the response does not match (wrong password)");
	return 0;
}
