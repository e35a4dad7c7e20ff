/*
 * scram.c — SCRAM-SHA-256 verifiers, server and client exchanges (see scram.h).
 *
 * Notation (RFC 5802 section 3):
 *   SaltedPassword  = Hi(Normalize(password), salt, i)      (PBKDF2-HMAC-SHA-256)
 *   ClientKey       = HMAC(SaltedPassword, "Client Key")
 *   StoredKey       = H(ClientKey)
 *   ServerKey       = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage     = client-first-message-bare + "," + server-first-message + "," +
 *                     client-final-message-without-proof
 *   ClientSignature = HMAC(StoredKey, AuthMessage)
 *   ClientProof     = ClientKey XOR ClientSignature
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 */
#include "auth/scram.h"
#include "common/base64.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/saslprep.h"
#include "auth/stored.h"
#include "common/strbuf.h"
#include "common/util.h"

#define MAX_FIELDS 32

/* ------------------------------------------------------------------ helpers */

static void wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

/* Wipe and free a NUL-terminated string. */
static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void scram_free_msg(char *msg)
{
	wipe_free(msg);
}

static int random_bytes(uint8_t *buf, size_t n, struct pgha_err *e)
{
	if (RAND_bytes(buf, (int)n) != 1)
		return err_set(e, "SCRAM: cannot get random bytes from OpenSSL");
	return 0;
}

/* A fresh nonce: SCRAM_NONCE_RAW_LEN random bytes, base64 (printable, no ','). */
static char *random_nonce(struct pgha_err *e)
{
	uint8_t raw[SCRAM_NONCE_RAW_LEN];

	if (random_bytes(raw, sizeof(raw), e) < 0)
		return NULL;
	char *s = base64_encode(raw, sizeof(raw));
	wipe(raw, sizeof(raw));
	return s;
}

static int hmac256(const uint8_t *key, size_t keylen, const void *data, size_t len,
		   uint8_t out[SCRAM_KEY_LEN], struct pgha_err *e)
{
	unsigned int outlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) || outlen != SCRAM_KEY_LEN)
		return err_set(e, "SCRAM: HMAC-SHA-256 failed in OpenSSL");
	return 0;
}

static int sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN], struct pgha_err *e)
{
	unsigned int outlen = 0;

	if (EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1 || outlen != SCRAM_KEY_LEN)
		return err_set(e, "SCRAM: SHA-256 failed in OpenSSL");
	return 0;
}

/*
 * ClientKey and ServerKey from an already SASLprep'd password. Every
 * intermediate secret is wiped.
 */
static int derive_keys(const char *prepared, const uint8_t *salt, size_t salt_len, int iterations,
		       uint8_t client_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN],
		       struct pgha_err *e)
{
	uint8_t salted[SCRAM_KEY_LEN];
	size_t pwlen = strlen(prepared);
	int rc = -1;

	if (pwlen > SCRAM_MAX_PASSWORD_LEN)
		return err_set(e, "SCRAM: password too long (%zu bytes, at most %d)", pwlen,
			       SCRAM_MAX_PASSWORD_LEN);
	if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return err_set(e, "SCRAM: iteration count %d out of range [1, %d]", iterations,
			       SCRAM_MAX_ITERATIONS);
	if (PKCS5_PBKDF2_HMAC(prepared, (int)pwlen, salt, (int)salt_len, iterations, EVP_sha256(),
			      SCRAM_KEY_LEN, salted) != 1) {
		err_set(e, "SCRAM: PBKDF2-HMAC-SHA-256 failed in OpenSSL");
		goto out;
	}
	if (hmac256(salted, sizeof(salted), "Client Key", 10, client_key, e) < 0 ||
	    hmac256(salted, sizeof(salted), "Server Key", 10, server_key, e) < 0)
		goto out;
	rc = 0;
out:
	wipe(salted, sizeof(salted));
	if (rc < 0) {
		wipe(client_key, SCRAM_KEY_LEN);
		wipe(server_key, SCRAM_KEY_LEN);
	}
	return rc;
}

/* Concatenate a "," b "," c (AuthMessage). Not secret, but wiped anyway by callers. */
static char *join3(const char *a, const char *b, const char *c, size_t clen)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = xmalloc(la + lb + clen + 3);

	memcpy(s, a, la);
	s[la] = ',';
	memcpy(s + la + 1, b, lb);
	s[la + 1 + lb] = ',';
	memcpy(s + la + lb + 2, c, clen);
	s[la + lb + 2 + clen] = '\0';
	return s;
}

/* ---------------------------------------------------------- message parsing */

struct field {
	const char *p;
	size_t n;
};

static int check_message(const char *msg, size_t len, const char *what, struct pgha_err *e)
{
	if (!msg || len == 0)
		return err_set(e, "malformed SCRAM %s: empty message", what);
	if (len > SCRAM_MAX_MESSAGE_LEN)
		return err_set(e, "malformed SCRAM %s: %zu bytes, at most %d", what, len,
			       SCRAM_MAX_MESSAGE_LEN);
	if (memchr(msg, '\0', len))
		return err_set(e, "malformed SCRAM %s: embedded NUL byte", what);
	return 0;
}

/* Split on ','. SCRAM attribute values never contain ',' (RFC 5802 section 7). */
static int split_fields(const char *msg, size_t len, struct field *f, size_t *nf, const char *what,
			struct pgha_err *e)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || msg[i] == ',') {
			if (n == MAX_FIELDS)
				return err_set(e, "malformed SCRAM %s: more than %d attributes", what,
					       MAX_FIELDS);
			f[n].p = msg + start;
			f[n].n = i - start;
			n++;
			start = i + 1;
		}
	}
	*nf = n;
	return 0;
}

static bool is_attr(const struct field *f, char a)
{
	return f->n >= 2 && f->p[0] == a && f->p[1] == '=';
}

static bool is_any_attr(const struct field *f)
{
	return f->n >= 2 && isalpha((unsigned char)f->p[0]) && f->p[1] == '=';
}

/* RFC 5802 "printable": %x21-2B / %x2D-7E. */
static bool is_printable(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x21 || c > 0x7E || c == ',')
			return false;
	}
	return true;
}

/* Copy an untrusted value for an error message: printable ASCII only, clipped. */
static void sanitize(const char *p, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)p[i];
		out[o++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
	}
	out[o] = '\0';
	if (n >= outlen && outlen > 4)
		memcpy(out + outlen - 4, "...", 4);
}

/* Parse a positive decimal int (no sign, no leading garbage). */
static bool parse_posint(const char *p, size_t n, long max, long *out)
{
	long v = 0;

	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
		if (v > max)
			return false;
	}
	if (v < 1)
		return false;
	*out = v;
	return true;
}

/* ---------------------------------------------------------------- verifiers */

void scram_verifier_wipe(struct scram_verifier *v)
{
	wipe(v, sizeof(*v));
}

void scram_keys_wipe(struct scram_keys *k)
{
	wipe(k, sizeof(*k));
}

bool scram_keys_match(const struct scram_keys *k, const struct scram_verifier *v)
{
	uint8_t stored[SCRAM_KEY_LEN];
	struct pgha_err e;

	if (k->iterations != v->iterations || k->salt_len != v->salt_len || k->salt_len == 0 ||
	    k->salt_len > SCRAM_MAX_SALT_LEN || memcmp(k->salt, v->salt, k->salt_len) != 0)
		return false;
	if (sha256(k->client_key, SCRAM_KEY_LEN, stored, &e) < 0)
		return false;
	int diff = CRYPTO_memcmp(stored, v->stored_key, SCRAM_KEY_LEN) |
		   CRYPTO_memcmp(k->server_key, v->server_key, SCRAM_KEY_LEN);
	wipe(stored, sizeof(stored));
	return diff == 0;
}

int scram_verifier_parse(const char *s, struct scram_verifier *v, struct pgha_err *e)
{
	memset(v, 0, sizeof(*v));
	if (!scram_is_verifier(s))
		return err_set(e, "not a SCRAM verifier: must start with \"" SCRAM_VERIFIER_PREFIX "\"");

	const char *p = s + strlen(SCRAM_VERIFIER_PREFIX);
	const char *colon = strchr(p, ':');
	const char *dollar = colon ? strchr(colon + 1, '$') : NULL;
	const char *colon2 = dollar ? strchr(dollar + 1, ':') : NULL;
	long iter;
	long n;

	if (!colon || !dollar || !colon2)
		return err_set(e, "invalid SCRAM verifier: expected "
				  "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
	if (!parse_posint(p, (size_t)(colon - p), INT_MAX, &iter))
		return err_set(e, "invalid SCRAM verifier: iteration count is not an integer in [1, %d]",
			       INT_MAX);
	v->iterations = (int)iter;

	n = base64_decode(colon + 1, (size_t)(dollar - colon - 1), v->salt, sizeof(v->salt));
	if (n <= 0) {
		scram_verifier_wipe(v);
		return err_set(e, "invalid SCRAM verifier: salt is not non-empty base64 of at most %d bytes",
			       SCRAM_MAX_SALT_LEN);
	}
	v->salt_len = (size_t)n;

	n = base64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), v->stored_key, SCRAM_KEY_LEN);
	if (n != SCRAM_KEY_LEN) {
		scram_verifier_wipe(v);
		return err_set(e, "invalid SCRAM verifier: StoredKey is not base64 of %d bytes",
			       SCRAM_KEY_LEN);
	}
	n = base64_decode(colon2 + 1, strlen(colon2 + 1), v->server_key, SCRAM_KEY_LEN);
	if (n != SCRAM_KEY_LEN) {
		scram_verifier_wipe(v);
		return err_set(e, "invalid SCRAM verifier: ServerKey is not base64 of %d bytes",
			       SCRAM_KEY_LEN);
	}
	return 0;
}

char *scram_verifier_format(const struct scram_verifier *v)
{
	char *salt = base64_encode(v->salt, v->salt_len);
	char *stored = base64_encode(v->stored_key, SCRAM_KEY_LEN);
	char *server = base64_encode(v->server_key, SCRAM_KEY_LEN);
	char *s = xasprintf(SCRAM_VERIFIER_PREFIX "%d:%s$%s:%s", v->iterations, salt, stored, server);

	wipe_free(salt);
	wipe_free(stored);
	wipe_free(server);
	return s;
}

int scram_verifier_from_password_salt(const char *password, const uint8_t *salt, size_t salt_len,
				      int iterations, struct scram_verifier *v, struct pgha_err *e)
{
	uint8_t client_key[SCRAM_KEY_LEN];
	char *prepared = NULL;
	int rc = -1;

	memset(v, 0, sizeof(*v));
	if (iterations == 0)
		iterations = SCRAM_DEFAULT_ITERATIONS;
	if (salt_len == 0 || salt_len > SCRAM_MAX_SALT_LEN)
		return err_set(e, "SCRAM: salt length %zu out of range [1, %d]", salt_len,
			       SCRAM_MAX_SALT_LEN);
	if (scram_prepare_password(password, &prepared, e) < 0)
		return -1;
	if (derive_keys(prepared, salt, salt_len, iterations, client_key, v->server_key, e) < 0 ||
	    sha256(client_key, sizeof(client_key), v->stored_key, e) < 0)
		goto out;
	v->iterations = iterations;
	memcpy(v->salt, salt, salt_len);
	v->salt_len = salt_len;
	rc = 0;
out:
	wipe(client_key, sizeof(client_key));
	secret_free(prepared);
	if (rc < 0)
		scram_verifier_wipe(v);
	return rc;
}

int scram_verifier_from_password(const char *password, int iterations, struct scram_verifier *v,
				 struct pgha_err *e)
{
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];

	memset(v, 0, sizeof(*v));
	if (random_bytes(salt, sizeof(salt), e) < 0)
		return -1;
	return scram_verifier_from_password_salt(password, salt, sizeof(salt), iterations, v, e);
}

int scram_verifier_check_password(const struct scram_verifier *v, const char *password,
				  struct pgha_err *e)
{
	struct scram_verifier computed;

	if (scram_verifier_from_password_salt(password, v->salt, v->salt_len, v->iterations,
					      &computed, e) < 0)
		return -1;
	int diff = CRYPTO_memcmp(computed.stored_key, v->stored_key, SCRAM_KEY_LEN) |
		   CRYPTO_memcmp(computed.server_key, v->server_key, SCRAM_KEY_LEN);
	scram_verifier_wipe(&computed);
	if (diff)
		return err_set(e, "password does not match the SCRAM verifier");
	return 0;
}

/* -------------------------------------------------------------- server side */

enum srv_state { SRV_INIT, SRV_FIRST_SENT, SRV_SUCCEEDED, SRV_FAILED };

struct scram_server {
	enum srv_state state;
	struct scram_verifier v;
	bool doomed;              /* mock exchange: fails at the end */
	char doomed_reason[256];  /* for the log */
	char *gs2_header;         /* as the client sent it, e.g. "n,," */
	char *client_first_bare;
	char *server_first;
	char *nonce;              /* client nonce + server nonce */
	uint8_t client_key[SCRAM_KEY_LEN]; /* recovered, valid in SRV_SUCCEEDED */
};

struct scram_server *scram_server_new(const struct scram_verifier *v, struct pgha_err *e)
{
	if (v->iterations < 1 || v->salt_len == 0 || v->salt_len > SCRAM_MAX_SALT_LEN) {
		err_set(e, "SCRAM: invalid verifier (iterations %d, salt %zu bytes)", v->iterations,
			v->salt_len);
		return NULL;
	}
	struct scram_server *s = xcalloc(1, sizeof(*s));
	s->state = SRV_INIT;
	s->v = *v;
	return s;
}

struct scram_server *scram_server_new_plain(const char *password, struct pgha_err *e)
{
	struct scram_verifier v;

	if (scram_verifier_from_password(password, SCRAM_DEFAULT_ITERATIONS, &v, e) < 0)
		return NULL;
	struct scram_server *s = scram_server_new(&v, e);
	scram_verifier_wipe(&v);
	return s;
}

static uint8_t process_mock_key[32];
static bool process_mock_key_ok;
static pthread_once_t process_mock_key_once = PTHREAD_ONCE_INIT;

static void init_process_mock_key(void)
{
	process_mock_key_ok = RAND_bytes(process_mock_key, sizeof(process_mock_key)) == 1;
}

struct scram_server *scram_server_new_mock(const char *user, const struct scram_mock *mock,
					   struct pgha_err *e)
{
	const uint8_t *key;
	size_t key_len;
	int iterations = mock && mock->iterations > 0 ? mock->iterations : SCRAM_DEFAULT_ITERATIONS;

	if (mock && mock->key && mock->key_len > 0) {
		key = mock->key;
		key_len = mock->key_len;
	} else {
		pthread_once(&process_mock_key_once, init_process_mock_key);
		if (!process_mock_key_ok) {
			err_set(e, "SCRAM: cannot get random bytes from OpenSSL for the mock key");
			return NULL;
		}
		key = process_mock_key;
		key_len = sizeof(process_mock_key);
	}

	struct scram_verifier v;
	memset(&v, 0, sizeof(v));
	v.iterations = iterations;

	/* Salt: HMAC(key, domain || user), stable per user and key. */
	static const char domain[] = "pgha scram mock salt";
	size_t ulen = strlen(user ? user : "");
	char *data = xmalloc(sizeof(domain) + ulen);
	uint8_t mac[SCRAM_KEY_LEN];

	memcpy(data, domain, sizeof(domain)); /* including the NUL: unambiguous */
	memcpy(data + sizeof(domain), user ? user : "", ulen);
	int rc = hmac256(key, key_len, data, sizeof(domain) + ulen, mac, e);
	free(data);
	if (rc < 0)
		return NULL;
	memcpy(v.salt, mac, SCRAM_DEFAULT_SALT_LEN);
	v.salt_len = SCRAM_DEFAULT_SALT_LEN;
	wipe(mac, sizeof(mac));

	/* Keys nobody knows: no proof can match. */
	if (random_bytes(v.stored_key, SCRAM_KEY_LEN, e) < 0 ||
	    random_bytes(v.server_key, SCRAM_KEY_LEN, e) < 0)
		return NULL;

	struct scram_server *s = scram_server_new(&v, e);
	scram_verifier_wipe(&v);
	if (s) {
		s->doomed = true;
		snprintf(s->doomed_reason, sizeof(s->doomed_reason), "user does not exist");
	}
	return s;
}

struct scram_server *scram_server_new_doomed(const char *user, const struct scram_mock *mock,
					     const char *reason, struct pgha_err *e)
{
	struct scram_server *s = scram_server_new_mock(user, mock, e);

	if (s)
		snprintf(s->doomed_reason, sizeof(s->doomed_reason), "%s", reason);
	return s;
}

struct scram_server *scram_server_new_stored(const char *user, const char *stored,
					     const struct scram_mock *mock, struct pgha_err *e)
{
	struct pgha_err why;

	if (!stored)
		return scram_server_new_doomed(user, mock, "user does not exist", e);
	if (scram_is_verifier(stored)) {
		struct scram_verifier v;
		if (scram_verifier_parse(stored, &v, &why) < 0) {
			char reason[256];
			snprintf(reason, sizeof(reason), "stored secret: %.200s", why.msg);
			return scram_server_new_doomed(user, mock, reason, e);
		}
		struct scram_server *s = scram_server_new(&v, e);
		scram_verifier_wipe(&v);
		return s;
	}
	if (pgmd5_is_verifier(stored))
		return scram_server_new_doomed(user, mock,
				  "the stored secret is an MD5 hash, which cannot be used for SCRAM "
				  "authentication (store a SCRAM verifier or the plaintext password)",
				  e);
	if (stored[0] == '\0')
		return scram_server_new_doomed(user, mock, "the stored password is empty", e);

	char *prepared = NULL;
	if (scram_prepare_password(stored, &prepared, &why) < 0) {
		char reason[256];
		snprintf(reason, sizeof(reason), "stored password: %.200s", why.msg);
		return scram_server_new_doomed(user, mock, reason, e);
	}
	secret_free(prepared);
	return scram_server_new_plain(stored, e);
}

bool scram_server_succeeded(const struct scram_server *s)
{
	return s && s->state == SRV_SUCCEEDED;
}

void scram_server_free(struct scram_server *s)
{
	if (!s)
		return;
	wipe_free(s->gs2_header);
	wipe_free(s->client_first_bare);
	wipe_free(s->server_first);
	wipe_free(s->nonce);
	wipe(s, sizeof(*s));
	free(s);
}

static int server_first(struct scram_server *s, const char *msg, size_t len,
			const char *server_nonce, char **out, struct pgha_err *e)
{
	static const char *what = "client-first-message";
	struct field f[MAX_FIELDS];
	size_t nf;

	*out = NULL;
	if (s->state != SRV_INIT)
		return err_set(e, "SCRAM: client-first-message received at the wrong time");
	s->state = SRV_FAILED; /* until proven otherwise */

	if (check_message(msg, len, what, e) < 0 || split_fields(msg, len, f, &nf, what, e) < 0)
		return -1;
	if (nf < 4) {
		if (nf >= 1 && f[0].n >= 2 && f[0].p[0] == 'p' && f[0].p[1] == '=')
			goto cbind_required;
		return err_set(e, "malformed SCRAM %s: expected gs2-header, n= and r= attributes",
			       what);
	}

	/* gs2-cbind-flag */
	if (f[0].n >= 2 && f[0].p[0] == 'p' && f[0].p[1] == '=')
		goto cbind_required;
	if (f[0].n != 1 || (f[0].p[0] != 'n' && f[0].p[0] != 'y'))
		return err_set(e, "malformed SCRAM %s: invalid channel-binding flag (expected n, y or p=)",
			       what);
	/* authzid: empty, or "a=" with an empty name */
	if (f[1].n != 0 && !(f[1].n == 2 && is_attr(&f[1], 'a'))) {
		if (is_attr(&f[1], 'a'))
			return err_set(e, "SCRAM %s: an authorization identity (a=) is not supported",
				       what);
		return err_set(e, "malformed SCRAM %s: invalid authorization identity field", what);
	}
	/* client-first-message-bare: [m=...,] n=user, r=nonce [, extensions] */
	if (is_attr(&f[2], 'm'))
		return err_set(e, "SCRAM %s: the client requires an unsupported mandatory extension (m=)",
			       what);
	if (!is_attr(&f[2], 'n'))
		return err_set(e, "malformed SCRAM %s: expected the n= attribute", what);
	/* The user name is ignored: the startup packet's user is authenticated. */
	if (!is_attr(&f[3], 'r'))
		return err_set(e, "malformed SCRAM %s: expected the r= attribute", what);
	if (!is_printable(f[3].p + 2, f[3].n - 2))
		return err_set(e, "malformed SCRAM %s: the client nonce is empty or not printable ASCII",
			       what);
	for (size_t i = 4; i < nf; i++)
		if (!is_any_attr(&f[i]))
			return err_set(e, "malformed SCRAM %s: invalid extension attribute", what);

	char *snonce = server_nonce ? xstrdup(server_nonce) : random_nonce(e);
	if (!snonce)
		return -1;
	if (!is_printable(snonce, strlen(snonce))) {
		free(snonce);
		return err_set(e, "SCRAM: the server nonce must be printable ASCII without ','");
	}

	size_t gs2_len = (size_t)(f[2].p - msg);
	s->gs2_header = xstrndup(msg, gs2_len);
	s->client_first_bare = xstrndup(f[2].p, len - gs2_len);
	s->nonce = xasprintf("%.*s%s", (int)(f[3].n - 2), f[3].p + 2, snonce);
	free(snonce);

	char *salt = base64_encode(s->v.salt, s->v.salt_len);
	s->server_first = xasprintf("r=%s,s=%s,i=%d", s->nonce, salt, s->v.iterations);
	free(salt);

	*out = xstrdup(s->server_first);
	s->state = SRV_FIRST_SENT;
	return 0;

cbind_required:
	return err_set(e, "SCRAM %s: the client requires channel binding (p=), but only " SCRAM_MECHANISM
			  " without channel binding is offered",
		       what);
}

int scram_server_first(struct scram_server *s, const char *msg, size_t len, char **out,
		       struct pgha_err *e)
{
	return server_first(s, msg, len, NULL, out, e);
}

int scram_server_first_with_nonce(struct scram_server *s, const char *msg, size_t len,
				  const char *server_nonce, char **out, struct pgha_err *e)
{
	*out = NULL;
	if (!server_nonce)
		return err_set(e, "SCRAM: no server nonce given");
	return server_first(s, msg, len, server_nonce, out, e);
}

int scram_server_final(struct scram_server *s, const char *msg, size_t len, char **out,
		       struct pgha_err *e)
{
	static const char *what = "client-final-message";
	struct field f[MAX_FIELDS];
	size_t nf;
	uint8_t proof[SCRAM_KEY_LEN], client_sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	uint8_t cbind[64];
	char *auth_msg = NULL;
	int rc = -1;

	*out = NULL;
	if (s->state != SRV_FIRST_SENT)
		return err_set(e, "SCRAM: client-final-message received at the wrong time");
	s->state = SRV_FAILED;

	if (check_message(msg, len, what, e) < 0 || split_fields(msg, len, f, &nf, what, e) < 0)
		return -1;
	if (nf < 3 || !is_attr(&f[0], 'c') || !is_attr(&f[1], 'r') || !is_attr(&f[nf - 1], 'p'))
		return err_set(e, "malformed SCRAM %s: expected c=, r=, [extensions,] p=", what);
	for (size_t i = 2; i + 1 < nf; i++)
		if (!is_any_attr(&f[i]) || f[i].p[0] == 'p')
			return err_set(e, "malformed SCRAM %s: invalid attribute before p=", what);

	/* Longer than any GS2 header we accept: a mismatch, not a syntax error. */
	long cblen = f[0].n - 2 > (sizeof(cbind) / 3) * 4
			     ? (long)sizeof(cbind) + 1
			     : base64_decode(f[0].p + 2, f[0].n - 2, cbind, sizeof(cbind));
	if (cblen < 0)
		return err_set(e, "malformed SCRAM %s: c= is not valid base64", what);
	if (base64_decode(f[nf - 1].p + 2, f[nf - 1].n - 2, proof, sizeof(proof)) != SCRAM_KEY_LEN) {
		wipe(proof, sizeof(proof));
		return err_set(e, "malformed SCRAM %s: p= is not base64 of a %d-byte proof", what,
			       SCRAM_KEY_LEN);
	}

	bool cbind_ok = (size_t)cblen == strlen(s->gs2_header) &&
			memcmp(cbind, s->gs2_header, (size_t)cblen) == 0;
	size_t nonce_len = strlen(s->nonce);
	bool nonce_ok = f[1].n - 2 == nonce_len && CRYPTO_memcmp(f[1].p + 2, s->nonce, nonce_len) == 0;

	/*
	 * The proof is checked whatever else is wrong, mock exchange included,
	 * so that the time taken does not depend on the reason for a failure.
	 */
	auth_msg = join3(s->client_first_bare, s->server_first, msg, (size_t)(f[nf - 1].p - 1 - msg));
	if (hmac256(s->v.stored_key, SCRAM_KEY_LEN, auth_msg, strlen(auth_msg), client_sig, e) < 0)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	if (sha256(client_key, SCRAM_KEY_LEN, stored, e) < 0)
		goto out;
	bool proof_ok = CRYPTO_memcmp(stored, s->v.stored_key, SCRAM_KEY_LEN) == 0;

	if (!cbind_ok) {
		err_set(e, "SCRAM authentication failed: the channel-binding data (c=) does not match "
			   "the GS2 header of the client-first-message");
		goto out;
	}
	if (!nonce_ok) {
		err_set(e, "SCRAM authentication failed: the nonce of the client-final-message does "
			   "not match the one of the exchange");
		goto out;
	}
	if (s->doomed) {
		err_set(e, "SCRAM authentication failed: %s (mock authentication)", s->doomed_reason);
		goto out;
	}
	if (!proof_ok) {
		err_set(e, "SCRAM authentication failed: the client proof is invalid (wrong password)");
		goto out;
	}

	if (hmac256(s->v.server_key, SCRAM_KEY_LEN, auth_msg, strlen(auth_msg), server_sig, e) < 0)
		goto out;
	char *sig = base64_encode(server_sig, sizeof(server_sig));
	*out = xasprintf("v=%s", sig);
	free(sig);
	memcpy(s->client_key, client_key, SCRAM_KEY_LEN);
	s->state = SRV_SUCCEEDED;
	rc = 0;
out:
	wipe(proof, sizeof(proof));
	wipe(client_sig, sizeof(client_sig));
	wipe(client_key, sizeof(client_key));
	wipe(stored, sizeof(stored));
	wipe(server_sig, sizeof(server_sig));
	wipe(cbind, sizeof(cbind));
	wipe_free(auth_msg);
	return rc;
}

int scram_server_client_key(const struct scram_server *s, struct scram_keys *out,
			    struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	if (!s || s->state != SRV_SUCCEEDED)
		return err_set(e, "SCRAM: the client key is only known after a successful exchange");
	memcpy(out->client_key, s->client_key, SCRAM_KEY_LEN);
	memcpy(out->server_key, s->v.server_key, SCRAM_KEY_LEN);
	memcpy(out->salt, s->v.salt, s->v.salt_len);
	out->salt_len = s->v.salt_len;
	out->iterations = s->v.iterations;
	return 0;
}

/* -------------------------------------------------------------- client side */

enum cl_state { CL_FIRST_SENT, CL_FINAL_SENT, CL_SUCCEEDED, CL_FAILED };

struct scram_client {
	enum cl_state state;
	bool with_keys;
	char *password;          /* SASLprep'd; wiped once the keys are derived */
	struct scram_keys keys;  /* with_keys */
	char *client_nonce;
	char *client_first_bare;
	uint8_t server_signature[SCRAM_KEY_LEN]; /* expected in server-final */
};

void scram_client_free(struct scram_client *c)
{
	if (!c)
		return;
	secret_free(c->password);
	wipe_free(c->client_nonce);
	wipe_free(c->client_first_bare);
	wipe(c, sizeof(*c));
	free(c);
}

/* saslname encoding (RFC 5802 section 5.1): ',' -> "=2C", '=' -> "=3D". */
static char *saslname(const char *user)
{
	struct strbuf sb = STRBUF_INIT;

	sb_puts(&sb, "");
	for (const char *p = user; *p; p++) {
		if (*p == ',')
			sb_puts(&sb, "=2C");
		else if (*p == '=')
			sb_puts(&sb, "=3D");
		else
			sb_append(&sb, p, 1);
	}
	return sb_steal(&sb);
}

static int client_start(struct scram_client *c, const char *user, const char *nonce, char **out,
			struct pgha_err *e)
{
	if (nonce) {
		if (!is_printable(nonce, strlen(nonce)))
			return err_set(e, "SCRAM: the client nonce must be printable ASCII without ','");
		c->client_nonce = xstrdup(nonce);
	} else if (!(c->client_nonce = random_nonce(e))) {
		return -1;
	}
	char *name = saslname(user ? user : "");
	c->client_first_bare = xasprintf("n=%s,r=%s", name, c->client_nonce);
	free(name);
	*out = xasprintf("n,,%s", c->client_first_bare);
	c->state = CL_FIRST_SENT;
	return 0;
}

static int client_first(const char *password, const char *user, const char *nonce,
			struct scram_client **client, char **out, struct pgha_err *e)
{
	*client = NULL;
	*out = NULL;
	if (!password)
		return err_set(e, "SCRAM: no password");
	if (strlen(password) > SCRAM_MAX_PASSWORD_LEN)
		return err_set(e, "SCRAM: password too long");

	struct scram_client *c = xcalloc(1, sizeof(*c));
	if (scram_prepare_password(password, &c->password, e) < 0 ||
	    client_start(c, user, nonce, out, e) < 0) {
		scram_client_free(c);
		return -1;
	}
	*client = c;
	return 0;
}

int scram_client_first(const char *password, struct scram_client **client, char **out,
		       struct pgha_err *e)
{
	return client_first(password, NULL, NULL, client, out, e);
}

int scram_client_first_with_nonce(const char *password, const char *user, const char *client_nonce,
				  struct scram_client **client, char **out, struct pgha_err *e)
{
	if (!client_nonce) {
		*client = NULL;
		*out = NULL;
		return err_set(e, "SCRAM: no client nonce given");
	}
	return client_first(password, user, client_nonce, client, out, e);
}

int scram_client_first_with_keys(const struct scram_keys *keys, struct scram_client **client,
				 char **out, struct pgha_err *e)
{
	*client = NULL;
	*out = NULL;
	if (keys->salt_len == 0 || keys->salt_len > SCRAM_MAX_SALT_LEN || keys->iterations < 1)
		return err_set(e, "SCRAM: invalid keys (salt %zu bytes, iterations %d)", keys->salt_len,
			       keys->iterations);

	struct scram_client *c = xcalloc(1, sizeof(*c));
	c->with_keys = true;
	c->keys = *keys;
	if (client_start(c, NULL, NULL, out, e) < 0) {
		scram_client_free(c);
		return -1;
	}
	*client = c;
	return 0;
}

int scram_client_continue(struct scram_client *c, const char *msg, size_t len, char **out,
			  struct pgha_err *e)
{
	static const char *what = "server-first-message";
	struct field f[MAX_FIELDS];
	size_t nf;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	uint8_t client_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	uint8_t client_sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	char *final_wo_proof = NULL, *auth_msg = NULL, *proof_b64 = NULL;
	long iterations;
	int rc = -1;

	*out = NULL;
	if (c->state != CL_FIRST_SENT)
		return err_set(e, "SCRAM: server-first-message received at the wrong time");
	c->state = CL_FAILED;

	if (check_message(msg, len, what, e) < 0 || split_fields(msg, len, f, &nf, what, e) < 0)
		return -1;
	if (nf >= 1 && is_attr(&f[0], 'e')) {
		char v[64];
		sanitize(f[0].p + 2, f[0].n - 2, v, sizeof(v));
		return err_set(e, "SCRAM: the server reported an error: %s", v);
	}
	if (nf >= 1 && is_attr(&f[0], 'm'))
		return err_set(e, "SCRAM %s: the server requires an unsupported mandatory extension (m=)",
			       what);
	if (nf < 3 || !is_attr(&f[0], 'r') || !is_attr(&f[1], 's') || !is_attr(&f[2], 'i'))
		return err_set(e, "malformed SCRAM %s: expected r=, s= and i= attributes", what);
	for (size_t i = 3; i < nf; i++)
		if (!is_any_attr(&f[i]))
			return err_set(e, "malformed SCRAM %s: invalid extension attribute", what);

	const char *nonce = f[0].p + 2;
	size_t nonce_len = f[0].n - 2, cn_len = strlen(c->client_nonce);
	if (!is_printable(nonce, nonce_len))
		return err_set(e, "malformed SCRAM %s: the nonce is not printable ASCII", what);
	if (nonce_len <= cn_len || memcmp(nonce, c->client_nonce, cn_len) != 0)
		return err_set(e, "SCRAM %s: the server nonce does not extend the client nonce", what);

	long salt_len = base64_decode(f[1].p + 2, f[1].n - 2, salt, sizeof(salt));
	if (salt_len <= 0)
		return err_set(e, "malformed SCRAM %s: the salt is not non-empty base64 of at most %d bytes",
			       what, SCRAM_MAX_SALT_LEN);

	if (!parse_posint(f[2].p + 2, f[2].n - 2, SCRAM_MAX_ITERATIONS, &iterations)) {
		char v[32];
		sanitize(f[2].p + 2, f[2].n - 2, v, sizeof(v));
		return err_set(e, "SCRAM %s: iteration count \"%s\" is not an integer in [1, %d]", what,
			       v, SCRAM_MAX_ITERATIONS);
	}

	if (c->with_keys) {
		if ((size_t)salt_len != c->keys.salt_len || memcmp(salt, c->keys.salt, c->keys.salt_len) != 0 ||
		    iterations != c->keys.iterations)
			return err_set(e, "SCRAM key passthrough impossible: the server's verifier for this "
					  "role has a different salt or iteration count than the one the "
					  "client was authenticated against (the server must store the very "
					  "same verifier)");
		memcpy(client_key, c->keys.client_key, SCRAM_KEY_LEN);
		memcpy(server_key, c->keys.server_key, SCRAM_KEY_LEN);
	} else {
		if (iterations < SCRAM_MIN_SERVER_ITERATIONS)
			return err_set(e, "SCRAM %s: the server asks for %ld iterations, fewer than %d: refused "
					  "(a proof computed with so few is cheap to brute-force offline)\n"
					  "HINT: the server's verifier for this role was made with a low "
					  "scram_iterations; set the password again with the default", what,
				       iterations, SCRAM_MIN_SERVER_ITERATIONS);
		if (derive_keys(c->password, salt, (size_t)salt_len, (int)iterations, client_key,
				server_key, e) < 0)
			goto out;
		secret_free(c->password);
		c->password = NULL;
	}

	/* We always send gs2 header "n,,": c= is base64("n,,"). */
	final_wo_proof = xasprintf("c=biws,r=%.*s", (int)nonce_len, nonce);
	char *server_first = xstrndup(msg, len);
	auth_msg = join3(c->client_first_bare, server_first, final_wo_proof, strlen(final_wo_proof));
	free(server_first);
	if (sha256(client_key, SCRAM_KEY_LEN, stored, e) < 0 ||
	    hmac256(stored, SCRAM_KEY_LEN, auth_msg, strlen(auth_msg), client_sig, e) < 0 ||
	    hmac256(server_key, SCRAM_KEY_LEN, auth_msg, strlen(auth_msg), c->server_signature, e) < 0)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];

	proof_b64 = base64_encode(proof, sizeof(proof));
	size_t l1 = strlen(final_wo_proof), l2 = strlen(proof_b64);
	*out = xmalloc(l1 + 3 + l2 + 1);
	memcpy(*out, final_wo_proof, l1);
	memcpy(*out + l1, ",p=", 3);
	memcpy(*out + l1 + 3, proof_b64, l2 + 1);
	c->state = CL_FINAL_SENT;
	rc = 0;
out:
	wipe(salt, sizeof(salt));
	wipe(client_key, sizeof(client_key));
	wipe(server_key, sizeof(server_key));
	wipe(stored, sizeof(stored));
	wipe(client_sig, sizeof(client_sig));
	wipe(proof, sizeof(proof));
	wipe_free(final_wo_proof);
	wipe_free(auth_msg);
	wipe_free(proof_b64);
	return rc;
}

int scram_client_verify(struct scram_client *c, const char *msg, size_t len, struct pgha_err *e)
{
	static const char *what = "server-final-message";
	struct field f[MAX_FIELDS];
	size_t nf;
	uint8_t sig[SCRAM_KEY_LEN];

	if (c->state != CL_FINAL_SENT)
		return err_set(e, "SCRAM: server-final-message received at the wrong time");
	c->state = CL_FAILED;

	if (check_message(msg, len, what, e) < 0 || split_fields(msg, len, f, &nf, what, e) < 0)
		return -1;
	if (is_attr(&f[0], 'e')) {
		char v[64];
		sanitize(f[0].p + 2, f[0].n - 2, v, sizeof(v));
		return err_set(e, "SCRAM: the server rejected the authentication: %s", v);
	}
	for (size_t i = 1; i < nf; i++)
		if (!is_any_attr(&f[i]))
			return err_set(e, "malformed SCRAM %s: invalid extension attribute", what);
	if (!is_attr(&f[0], 'v'))
		return err_set(e, "malformed SCRAM %s: expected v= or e=", what);
	if (base64_decode(f[0].p + 2, f[0].n - 2, sig, sizeof(sig)) != SCRAM_KEY_LEN) {
		wipe(sig, sizeof(sig));
		return err_set(e, "malformed SCRAM %s: v= is not base64 of a %d-byte signature", what,
			       SCRAM_KEY_LEN);
	}
	int diff = CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN);
	wipe(sig, sizeof(sig));
	if (diff)
		return err_set(e, "SCRAM: the server signature is invalid: the server does not know "
				  "the password's verifier (or the exchange was tampered with)");
	c->state = CL_SUCCEEDED;
	return 0;
}
