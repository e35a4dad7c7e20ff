/*
 * test_scram.c — SCRAM-SHA-256 and MD5 authentication cryptography
 * (src/auth): RFC 7677's test vector on both sides, verifiers produced by
 * PostgreSQL 15 itself, a reference implementation of the client proof
 * written here directly on OpenSSL, malformed and tampered messages, mock
 * authentication, ClientKey passthrough, SASLprep, and MD5.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/md5.h"
#include "auth/saslprep.h"
#include "auth/scram.h"
#include "common/err.h"
#include "common/util.h"

#define assert_contains(s, sub)                                                      \
	do {                                                                         \
		if (!strstr((s), (sub)))                                             \
			fail_msg("\"%s\" does not contain \"%s\"", (s), (sub));      \
	} while (0)

/* ------------------------------------------------------------ reference code */

/* Independent base64 decode (OpenSSL's EVP_DecodeBlock), returns length. */
static size_t ref_b64_decode(const char *in, uint8_t *out)
{
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)strlen(in));
	assert_true(n >= 0);
	size_t len = strlen(in);
	if (len >= 1 && in[len - 1] == '=')
		n--;
	if (len >= 2 && in[len - 2] == '=')
		n--;
	return (size_t)n;
}

static char *ref_b64_encode(const uint8_t *in, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

/*
 * The client side of RFC 5802 written directly on OpenSSL: returns
 * client-final-message-without-proof + ",p=" + proof, and the expected server
 * signature in server_sig.
 */
static char *ref_client_final(const char *password, const uint8_t *salt, size_t salt_len, int iter,
			      const char *client_first_bare, const char *server_first,
			      const char *final_wo_proof, uint8_t server_sig[32])
{
	uint8_t salted[32], ck[32], sk[32], stored[32], csig[32], proof[32];
	unsigned int l;
	char auth[2048];

	assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iter,
					   EVP_sha256(), 32, salted),
			 1);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, &l);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, sk, &l);
	EVP_Digest(ck, 32, stored, &l, EVP_sha256(), NULL);
	snprintf(auth, sizeof(auth), "%s,%s,%s", client_first_bare, server_first, final_wo_proof);
	HMAC(EVP_sha256(), stored, 32, (const unsigned char *)auth, strlen(auth), csig, &l);
	HMAC(EVP_sha256(), sk, 32, (const unsigned char *)auth, strlen(auth), server_sig, &l);
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ csig[i];
	char *p = ref_b64_encode(proof, 32);
	char *out = malloc(strlen(final_wo_proof) + strlen(p) + 4);
	sprintf(out, "%s,p=%s", final_wo_proof, p);
	free(p);
	return out;
}

/* ----------------------------------------------------------- RFC 7677 vector */

#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_SERVER_FIRST                                                             \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                             \
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void rfc_verifier(struct scram_verifier *v)
{
	struct pgha_err e;
	uint8_t salt[64];
	size_t n = ref_b64_decode(RFC_SALT, salt);

	assert_int_equal(n, 16);
	assert_int_equal(scram_verifier_from_password_salt("pencil", salt, n, 4096, v, &e), 0);
}

/* A server at the RFC's state after the first message (server nonce injected). */
static struct scram_server *rfc_server(void)
{
	struct scram_verifier v;
	struct pgha_err e;
	char *out;

	rfc_verifier(&v);
	struct scram_server *s = scram_server_new(&v, &e);
	assert_non_null(s);
	assert_int_equal(scram_server_first_with_nonce(s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
						       RFC_SERVER_NONCE, &out, &e),
			 0);
	assert_string_equal(out, RFC_SERVER_FIRST);
	scram_free_msg(out);
	return s;
}

static void test_rfc7677_server(void **state)
{
	struct scram_server *s = rfc_server();
	struct scram_keys keys;
	struct pgha_err e;
	char *out;

	assert_false(scram_server_succeeded(s));
	assert_int_equal(scram_server_client_key(s, &keys, &e), -1);
	assert_int_equal(scram_server_final(s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), &out, &e), 0);
	assert_string_equal(out, RFC_SERVER_FINAL);
	scram_free_msg(out);
	assert_true(scram_server_succeeded(s));

	/* The recovered ClientKey is HMAC(SaltedPassword, "Client Key"). */
	assert_int_equal(scram_server_client_key(s, &keys, &e), 0);
	uint8_t salt[64], salted[32], ck[32];
	unsigned int l;
	size_t n = ref_b64_decode(RFC_SALT, salt);
	PKCS5_PBKDF2_HMAC("pencil", 6, salt, (int)n, 4096, EVP_sha256(), 32, salted);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, &l);
	assert_memory_equal(keys.client_key, ck, 32);
	assert_int_equal(keys.iterations, 4096);
	assert_int_equal(keys.salt_len, 16);
	assert_memory_equal(keys.salt, salt, 16);
	scram_keys_wipe(&keys);

	/* No second round. */
	assert_int_equal(scram_server_final(s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), &out, &e), -1);
	assert_null(out);
	scram_server_free(s);
}

static void test_rfc7677_client(void **state)
{
	struct scram_client *c;
	struct pgha_err e;
	char *out;

	assert_int_equal(scram_client_first_with_nonce("pencil", "user", "rOprNGfwEbeRWgbNEkqO", &c, &out, &e), 0);
	assert_string_equal(out, RFC_CLIENT_FIRST);
	scram_free_msg(out);
	assert_int_equal(scram_client_continue(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &out, &e), 0);
	assert_string_equal(out, RFC_CLIENT_FINAL);
	scram_free_msg(out);
	assert_int_equal(scram_client_verify(c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &e), 0);
	/* Nothing after the end. */
	assert_int_equal(scram_client_verify(c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &e), -1);
	scram_client_free(c);

	/* A wrong server signature is caught. */
	assert_int_equal(scram_client_first_with_nonce("pencil", "user", "rOprNGfwEbeRWgbNEkqO", &c, &out, &e), 0);
	scram_free_msg(out);
	assert_int_equal(scram_client_continue(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &out, &e), 0);
	scram_free_msg(out);
	const char *bad = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
	assert_int_equal(scram_client_verify(c, bad, strlen(bad), &e), -1);
	assert_contains(e.msg, "server signature is invalid");
	scram_client_free(c);

	/* The user name is saslname-encoded. */
	assert_int_equal(scram_client_first_with_nonce("x", "a,b=c", "abc", &c, &out, &e), 0);
	assert_string_equal(out, "n,,n=a=2Cb=3Dc,r=abc");
	scram_free_msg(out);
	scram_client_free(c);
	/* An injected nonce must be printable and without ','. */
	assert_int_equal(scram_client_first_with_nonce("x", "", "a,b", &c, &out, &e), -1);
	assert_null(c);
}

/* ---------------------------------------------------- full random exchanges */

/* Runs client and server against each other; returns scram_server_final's rc. */
static int exchange(struct scram_server *s, const char *password, struct pgha_err *e)
{
	struct scram_client *c;
	char *m1, *m2, *m3, *m4;
	struct pgha_err ce;

	assert_int_equal(scram_client_first(password, &c, &m1, &ce), 0);
	assert_true(strncmp(m1, "n,,n=,r=", 8) == 0);
	assert_int_equal(strlen(m1), 8 + 24); /* 18 random bytes, base64 */
	assert_int_equal(scram_server_first(s, m1, strlen(m1), &m2, e), 0);
	assert_true(strncmp(m2, "r=", 2) == 0 && strncmp(m2 + 2, m1 + 8, 24) == 0);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &ce), 0);
	int rc = scram_server_final(s, m3, strlen(m3), &m4, e);
	if (rc == 0) {
		assert_int_equal(scram_client_verify(c, m4, strlen(m4), &ce), 0);
		scram_free_msg(m4);
	} else {
		assert_null(m4);
	}
	scram_free_msg(m1);
	scram_free_msg(m2);
	scram_free_msg(m3);
	scram_client_free(c);
	return rc;
}

static void test_exchange_random(void **state)
{
	struct scram_verifier v;
	struct pgha_err e;

	/* Against a verifier. */
	assert_int_equal(scram_verifier_from_password("correct horse", 0, &v, &e), 0);
	assert_int_equal(v.iterations, SCRAM_DEFAULT_ITERATIONS);
	assert_int_equal(v.salt_len, SCRAM_DEFAULT_SALT_LEN);
	struct scram_server *s = scram_server_new(&v, &e);
	assert_int_equal(exchange(s, "correct horse", &e), 0);
	scram_server_free(s);

	/* Against a plaintext-stored password. */
	s = scram_server_new_plain("correct horse", &e);
	assert_non_null(s);
	assert_int_equal(exchange(s, "correct horse", &e), 0);
	scram_server_free(s);

	/* Via the dispatching constructor, both kinds. */
	char *str = scram_verifier_format(&v);
	s = scram_server_new_stored("alice", str, NULL, &e);
	assert_int_equal(exchange(s, "correct horse", &e), 0);
	scram_server_free(s);
	free(str);
	s = scram_server_new_stored("alice", "correct horse", NULL, &e);
	assert_int_equal(exchange(s, "correct horse", &e), 0);
	scram_server_free(s);

	/* Two exchanges never share a nonce. */
	struct scram_client *c1, *c2;
	char *m1, *m2;
	assert_int_equal(scram_client_first("x", &c1, &m1, &e), 0);
	assert_int_equal(scram_client_first("x", &c2, &m2, &e), 0);
	assert_string_not_equal(m1, m2);
	scram_free_msg(m1);
	scram_free_msg(m2);
	scram_client_free(c1);
	scram_client_free(c2);
	scram_verifier_wipe(&v);
}

static void test_wrong_password(void **state)
{
	struct scram_verifier v;
	struct pgha_err e;

	assert_int_equal(scram_verifier_from_password("right", 0, &v, &e), 0);
	struct scram_server *s = scram_server_new(&v, &e);
	assert_int_equal(exchange(s, "wrong", &e), -1);
	assert_contains(e.msg, "client proof is invalid (wrong password)");
	assert_false(scram_server_succeeded(s));
	struct scram_keys k;
	assert_int_equal(scram_server_client_key(s, &k, &e), -1);
	scram_server_free(s);

	s = scram_server_new_plain("right", &e);
	assert_int_equal(exchange(s, "Right", &e), -1);
	assert_contains(e.msg, "wrong password");
	scram_server_free(s);
	scram_verifier_wipe(&v);
}

/* ------------------------------------------------ verifiers from PostgreSQL */

/* Produced by PostgreSQL 15.20: CREATE ROLE sec PASSWORD 'secret' (scram-sha-256). */
#define PG_VERIFIER_SECRET                                                           \
	"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:" \
	"g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA="

static void test_postgres_verifier(void **state)
{
	struct scram_verifier v, mine;
	struct pgha_err e;

	assert_true(scram_is_verifier(PG_VERIFIER_SECRET));
	assert_int_equal(scram_verifier_parse(PG_VERIFIER_SECRET, &v, &e), 0);
	assert_int_equal(v.iterations, 4096);
	assert_int_equal(v.salt_len, 16);

	/* Formatting gives back PostgreSQL's exact string. */
	char *str = scram_verifier_format(&v);
	assert_string_equal(str, PG_VERIFIER_SECRET);
	free(str);

	/* Computing one with PostgreSQL's salt gives PostgreSQL's verifier. */
	assert_int_equal(scram_verifier_from_password_salt("secret", v.salt, v.salt_len, 4096, &mine, &e), 0);
	str = scram_verifier_format(&mine);
	assert_string_equal(str, PG_VERIFIER_SECRET);
	free(str);

	assert_int_equal(scram_verifier_check_password(&v, "secret", &e), 0);
	assert_int_equal(scram_verifier_check_password(&v, "Secret", &e), -1);
	assert_contains(e.msg, "does not match");

	/* A client exchange with "secret" against PostgreSQL's verifier. */
	struct scram_server *s = scram_server_new_stored("sec", PG_VERIFIER_SECRET, NULL, &e);
	assert_non_null(s);
	assert_int_equal(exchange(s, "secret", &e), 0);
	scram_server_free(s);
	s = scram_server_new_stored("sec", PG_VERIFIER_SECRET, NULL, &e);
	assert_int_equal(exchange(s, "secret ", &e), -1);
	scram_server_free(s);
	scram_verifier_wipe(&v);
	scram_verifier_wipe(&mine);
}

static void test_verifier_parse_errors(void **state)
{
	static const struct {
		const char *s, *err;
	} cases[] = {
		{"md5ad16ab8cb9f9946be08171afa599199d", "must start with"},
		{"SCRAM-SHA-256$", "expected"},
		{"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2btg==", "expected"},
		{"SCRAM-SHA-256$0:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "iteration count"},
		{"SCRAM-SHA-256$-1:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "iteration count"},
		{"SCRAM-SHA-256$99999999999:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "iteration count"},
		{"SCRAM-SHA-256$4x:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "iteration count"},
		{"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2btg=$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "salt"},
		{"SCRAM-SHA-256$4096:GOIgBMonJIem!5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "salt"},
		{"SCRAM-SHA-256$4096:$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "salt"},
		/* non-canonical: unused bits set ('h' instead of 'g' before "==") */
		{"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2bth==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "salt"},
		{"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SL==:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=", "StoredKey"},
		{"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=x", "ServerKey"},
		{"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:g1oGGyIfPLbeq4H+oZlRzPKC/nL3hR5M4VLyPuUsjiA=:x", "ServerKey"},
		{"SCRAM-SHA-256$4096:GOIgBMonJIemH5jraM2btg==$ndaoZaHOUQgLNh/ZPgdqPGcvwokIEG7y8+m530d2SLM=:", "ServerKey"},
	};
	struct scram_verifier v;
	struct pgha_err e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (scram_verifier_parse(cases[i].s, &v, &e) != -1)
			fail_msg("case %zu parsed: %s", i, cases[i].s);
		assert_contains(e.msg, cases[i].err);
	}

	/* Salt bounds for computed verifiers. */
	uint8_t salt[SCRAM_MAX_SALT_LEN + 1] = {0};
	assert_int_equal(scram_verifier_from_password_salt("x", salt, 0, 1, &v, &e), -1);
	assert_int_equal(scram_verifier_from_password_salt("x", salt, sizeof(salt), 1, &v, &e), -1);
	assert_int_equal(scram_verifier_from_password("x", SCRAM_MAX_ITERATIONS + 1, &v, &e), -1);
	assert_contains(e.msg, "iteration count");
}

/* --------------------------------------- malformed, tampered, hostile input */

/* A server after a good first round, with injected nonces; the verifier is for "pw". */
static struct scram_server *server_after_first(const char *client_first, char **server_first)
{
	static struct scram_verifier v;
	static int have;
	struct pgha_err e;

	if (!have) {
		uint8_t salt[16] = "0123456789abcdef";
		assert_int_equal(scram_verifier_from_password_salt("pw", salt, 16, 4096, &v, &e), 0);
		have = 1;
	}
	struct scram_server *s = scram_server_new(&v, &e);
	char *out;
	if (scram_server_first_with_nonce(s, client_first, strlen(client_first), "SRV", &out, &e) != 0)
		fail_msg("server_first: %s", e.msg);
	if (server_first)
		*server_first = out;
	else
		scram_free_msg(out);
	return s;
}

static char *valid_final(const char *client_first_bare, const char *server_first, const char *cbind,
			 uint8_t server_sig[32])
{
	char wo[256];
	uint8_t salt[16] = "0123456789abcdef";

	snprintf(wo, sizeof(wo), "c=%s,r=abcSRV", cbind);
	return ref_client_final("pw", salt, 16, 4096, client_first_bare, server_first, wo, server_sig);
}

static void test_gs2_headers(void **state)
{
	struct pgha_err e;
	uint8_t sig[32];
	char *sf, *out, *fin;

	/* n,, with c=biws: accepted; our reference client agrees on the signature. */
	struct scram_server *s = server_after_first("n,,n=,r=abc", &sf);
	assert_string_equal(sf, "r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096");
	fin = valid_final("n=,r=abc", sf, "biws", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), 0);
	char *sigb64 = ref_b64_encode(sig, 32);
	assert_string_equal(out + 2, sigb64);
	free(sigb64);
	scram_free_msg(out);
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);

	/* y,, (client supports channel binding, thinks we do not): c=eSws. */
	s = server_after_first("y,,n=,r=abc", &sf);
	fin = valid_final("n=,r=abc", sf, "eSws", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), 0);
	scram_free_msg(out);
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);

	/* y,, but c=biws: the echo does not match. */
	s = server_after_first("y,,n=,r=abc", &sf);
	fin = valid_final("n=,r=abc", sf, "biws", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), -1);
	assert_contains(e.msg, "channel-binding data (c=) does not match");
	assert_null(out);
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);

	/* n,, but c=eSws. */
	s = server_after_first("n,,n=,r=abc", &sf);
	fin = valid_final("n=,r=abc", sf, "eSws", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), -1);
	assert_contains(e.msg, "channel-binding");
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);

	/* Empty authzid "n,a=,": c= is base64("n,a=,") = "bixhPSw=". */
	s = server_after_first("n,a=,n=,r=abc", &sf);
	fin = valid_final("n=,r=abc", sf, "bixhPSw=", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), 0);
	scram_free_msg(out);
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);

	/* The user name in the message is ignored, extensions are tolerated. */
	s = server_after_first("n,,n=somebody,r=abc,x=ext", &sf);
	fin = valid_final("n=somebody,r=abc,x=ext", sf, "biws", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), 0);
	scram_free_msg(out);
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);
}

static void test_client_first_malformed(void **state)
{
	static const struct {
		const char *msg, *err;
	} cases[] = {
		{"p=tls-server-end-point,,n=,r=abc", "requires channel binding"},
		{"p=tls-unique", "requires channel binding"},
		{"n,a=bob,n=,r=abc", "authorization identity (a=) is not supported"},
		{"n,x,n=,r=abc", "invalid authorization identity"},
		{"n,,m=foo,n=,r=abc", "mandatory extension"},
		{"x,,n=,r=abc", "invalid channel-binding flag"},
		{"nn,,n=,r=abc", "invalid channel-binding flag"},
		{"n,,r=abc,n=", "expected the n= attribute"},
		{"n,,n=,x=abc", "expected the r= attribute"},
		{"n,,n=,r=", "nonce is empty or not printable"},
		{"n,,n=,r=ab c", "not printable"},
		{"n,,n=,r=ab\x7f", "not printable"},
		{"n,,n=,r=\xc3\xa9", "not printable"},
		{"n,,n=,r=abc,", "invalid extension"},
		{"n,,n=,r=abc,1=x", "invalid extension"},
		{"n,,n=,r=abc,x", "invalid extension"},
		{"n,,n=", "expected gs2-header"},
		{"n,,", "expected gs2-header"},
		{"garbage", "expected gs2-header"},
		{",,,,,,,", "invalid channel-binding flag"},
	};
	struct pgha_err e;
	char *out;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_server *s = scram_server_new_plain("pw", &e);
		if (scram_server_first(s, cases[i].msg, strlen(cases[i].msg), &out, &e) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].msg);
		assert_null(out);
		assert_contains(e.msg, cases[i].err);
		/* A failed exchange stays failed. */
		assert_int_equal(scram_server_final(s, "c=biws,r=a,p=x", 14, &out, &e), -1);
		scram_server_free(s);
	}

	/* Framing: empty, embedded NUL, oversized. */
	struct scram_server *s = scram_server_new_plain("pw", &e);
	assert_int_equal(scram_server_first(s, "", 0, &out, &e), -1);
	assert_contains(e.msg, "empty message");
	scram_server_free(s);
	s = scram_server_new_plain("pw", &e);
	assert_int_equal(scram_server_first(s, "n,,n=,r=a\0bc", 12, &out, &e), -1);
	assert_contains(e.msg, "embedded NUL");
	scram_server_free(s);
	char *big = malloc(SCRAM_MAX_MESSAGE_LEN + 2);
	memcpy(big, "n,,n=,r=", 8);
	memset(big + 8, 'a', SCRAM_MAX_MESSAGE_LEN - 7);
	big[SCRAM_MAX_MESSAGE_LEN + 1] = '\0';
	s = scram_server_new_plain("pw", &e);
	assert_int_equal(scram_server_first(s, big, strlen(big), &out, &e), -1);
	assert_contains(e.msg, "at most");
	scram_server_free(s);
	free(big);
	/* Too many attributes. */
	char many[256] = "n,,n=,r=abc";
	for (int i = 0; i < 40; i++)
		strcat(many, ",x=1");
	s = scram_server_new_plain("pw", &e);
	assert_int_equal(scram_server_first(s, many, strlen(many), &out, &e), -1);
	assert_contains(e.msg, "more than");
	scram_server_free(s);

	/* Calling the steps out of order. */
	s = scram_server_new_plain("pw", &e);
	assert_int_equal(scram_server_final(s, "c=biws,r=a,p=x", 14, &out, &e), -1);
	assert_contains(e.msg, "wrong time");
	scram_server_free(s);
}

static void test_client_final_malformed(void **state)
{
	static const struct {
		const char *msg, *err;
	} cases[] = {
		{"c=biws,r=abcSRV", "expected c=, r="},
		{"r=abcSRV,c=biws,p=AAAA", "expected c=, r="},
		{"c=biws,p=AAAA", "expected c=, r="},
		{"c=biws,r=abcSRV,p=AAAA,x=y", "expected c=, r="},
		{"c=biws,r=abcSRV,p=AAAA,p=AAAA", "invalid attribute before p="},
		{"c=biws,r=abcSRV,5=x,p=AAAA", "invalid attribute before p="},
		{"c=bi!s,r=abcSRV,p=AAAA", "c= is not valid base64"},
		{"c=biw,r=abcSRV,p=AAAA", "c= is not valid base64"},
		{"c=biws,r=abcSRV,p=AAAA", "p= is not base64 of a 32-byte proof"},
		{"c=biws,r=abcSRV,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ", "p= is not base64"},
		{"c=biws,r=abcSRV,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV!=", "p= is not base64"},
		{"c=biws,r=abcSRV,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=", "p= is not base64"},
		{"c=biws,r=abcSRV,p=", "p= is not base64"},
		{"\x01\x02\x03", "expected c=, r="},
		/* a long but valid c=: a mismatch, not a crash */
		{"c=bixhPSwgYSB2ZXJ5IGxvbmcgY2hhbm5lbCBiaW5kaW5nIHZhbHVlIHRoYXQgZG9lcyBub3QgZml0IGluIDY0IGJ5dGVzIGF0IGFsbA==,r=abcSRV,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "channel-binding"},
	};
	struct pgha_err e;
	char *out;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_server *s = server_after_first("n,,n=,r=abc", NULL);
		if (scram_server_final(s, cases[i].msg, strlen(cases[i].msg), &out, &e) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].msg);
		assert_null(out);
		assert_contains(e.msg, cases[i].err);
		scram_server_free(s);
	}
}

static void test_tampered(void **state)
{
	struct pgha_err e;
	uint8_t sig[32];
	char *sf, *out;

	/* Nonce tampered (the proof is then computed over it: only the nonce is wrong). */
	struct scram_server *s = server_after_first("n,,n=,r=abc", &sf);
	uint8_t salt[16] = "0123456789abcdef";
	char *fin = ref_client_final("pw", salt, 16, 4096, "n=,r=abc", sf, "c=biws,r=abcSRW", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), -1);
	assert_contains(e.msg, "nonce");
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);

	/* Only the client part of the nonce sent back. */
	s = server_after_first("n,,n=,r=abc", &sf);
	fin = ref_client_final("pw", salt, 16, 4096, "n=,r=abc", sf, "c=biws,r=abc", sig);
	assert_int_equal(scram_server_final(s, fin, strlen(fin), &out, &e), -1);
	assert_contains(e.msg, "nonce");
	free(fin);
	scram_free_msg(sf);
	scram_server_free(s);

	/*
	 * Every single-byte change of a valid client-final-message fails
	 * (canonical base64 included: no second encoding of the same proof).
	 */
	s = server_after_first("n,,n=,r=abc", &sf);
	char *good = valid_final("n=,r=abc", sf, "biws", sig);
	scram_server_free(s);
	size_t len = strlen(good);
	int tried = 0;
	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 256; b += 7) {
			if ((unsigned char)good[i] == b)
				continue;
			char *m = strdup(good);
			m[i] = (char)b;
			s = server_after_first("n,,n=,r=abc", NULL);
			if (scram_server_final(s, m, len, &out, &e) != -1)
				fail_msg("mutation at %zu to 0x%02x accepted", i, b);
			scram_server_free(s);
			free(m);
			tried++;
		}
	}
	assert_true(tried > 1000);
	/* And the unmodified one passes (the loop above is not vacuous). */
	s = server_after_first("n,,n=,r=abc", NULL);
	assert_int_equal(scram_server_final(s, good, len, &out, &e), 0);
	scram_free_msg(out);
	scram_server_free(s);
	free(good);
	scram_free_msg(sf);
}

/* Deterministic garbage into every parser: nothing crashes, nothing passes. */
static void test_garbage(void **state)
{
	unsigned int seed = 12345;
	struct pgha_err e;
	char buf[300], *out;
	static const char alphabet[] = "nyp,=abcrsivme \x01\xff";
	struct scram_verifier v;

	assert_int_equal(scram_verifier_from_password("pw", 0, &v, &e), 0);

	for (int iter = 0; iter < 3000; iter++) {
		size_t len = (size_t)(rand_r(&seed) % 200);
		bool structured = iter % 2;
		for (size_t i = 0; i < len; i++)
			buf[i] = structured ? alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)]
					    : (char)(rand_r(&seed) % 256);
		buf[len] = '\0';

		struct scram_server *s = scram_server_new(&v, &e);
		if (scram_server_first(s, buf, len, &out, &e) == 0)
			scram_free_msg(out); /* may happen with structured input: fine */
		scram_server_free(s);

		s = server_after_first("n,,n=,r=abc", NULL);
		assert_int_equal(scram_server_final(s, buf, len, &out, &e), -1);
		scram_server_free(s);

		struct scram_client *c;
		assert_int_equal(scram_client_first_with_nonce("pw", "", "abc", &c, &out, &e), 0);
		scram_free_msg(out);
		if (scram_client_continue(c, buf, len, &out, &e) == 0)
			fail_msg("garbage server-first accepted: %s", buf);
		scram_client_free(c);
	}
}

static void test_client_continue_errors(void **state)
{
	static const struct {
		const char *msg, *err;
	} cases[] = {
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=10000001", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=2147483648", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=99999999999999999999999", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=0", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=1", "fewer than 4096"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4095", "fewer than 4096"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=-1", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=+4096", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096x", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=", "iteration count"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg=,i=4096", "salt is not"},
		{"r=abcSRV,s=MDEyMzQ1Njc4OW$iY2RlZg==,i=4096", "salt is not"},
		{"r=abcSRV,s=,i=4096", "salt is not"},
		{"r=xyzSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "does not extend the client nonce"},
		{"r=abc,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "does not extend the client nonce"},
		{"r=ab,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "does not extend the client nonce"},
		{"r=abc\x01,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "not printable"},
		{"s=MDEyMzQ1Njc4OWFiY2RlZg==,r=abcSRV,i=4096", "expected r=, s= and i="},
		{"r=abcSRV,i=4096", "expected r=, s= and i="},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==", "expected r=, s= and i="},
		{"r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096,", "invalid extension"},
		{"m=x,r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "mandatory extension"},
		{"e=other-error", "server reported an error: other-error"},
	};
	struct pgha_err e;
	struct scram_client *c;
	char *out;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(scram_client_first_with_nonce("pw", "", "abc", &c, &out, &e), 0);
		scram_free_msg(out);
		if (scram_client_continue(c, cases[i].msg, strlen(cases[i].msg), &out, &e) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].msg);
		assert_null(out);
		assert_contains(e.msg, cases[i].err);
		scram_client_free(c);
	}

	/*
	 * PostgreSQL allows i=1, but the client refuses fewer than 4096 (above: an
	 * impostor would get a proof cheap to brute-force); extensions are ignored.
	 */
	assert_int_equal(scram_client_first_with_nonce("pw", "", "abc", &c, &out, &e), 0);
	scram_free_msg(out);
	const char *ok = "r=abcSRV,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096,x=whatever";
	assert_int_equal(scram_client_continue(c, ok, strlen(ok), &out, &e), 0);
	scram_free_msg(out);
	/* The server says no. */
	assert_int_equal(scram_client_verify(c, "e=invalid-proof", 15, &e), -1);
	assert_contains(e.msg, "rejected the authentication: invalid-proof");
	scram_client_free(c);

	/* Malformed server-final. */
	static const char *finals[] = {"v=", "v=AAAA", "x=1", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
				       "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,", "", "e=\x01\xff"};
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		assert_int_equal(scram_client_first_with_nonce("pencil", "user", "rOprNGfwEbeRWgbNEkqO", &c, &out, &e), 0);
		scram_free_msg(out);
		assert_int_equal(scram_client_continue(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &out, &e), 0);
		scram_free_msg(out);
		if (scram_client_verify(c, finals[i], strlen(finals[i]), &e) != -1)
			fail_msg("final %zu accepted", i);
		scram_client_free(c);
	}

	/* Out of order. */
	assert_int_equal(scram_client_first_with_nonce("pw", "", "abc", &c, &out, &e), 0);
	scram_free_msg(out);
	assert_int_equal(scram_client_verify(c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &e), -1);
	assert_contains(e.msg, "wrong time");
	scram_client_free(c);
}

/* ----------------------------------------------------------------- mock auth */

/* Runs the first round and returns the server-first-message's "s=...,i=..." part. */
static char *salt_part(struct scram_server *s)
{
	struct pgha_err e;
	char *out;

	assert_int_equal(scram_server_first(s, "n,,n=,r=abc", 11, &out, &e), 0);
	char *p = strstr(out, ",s=");
	assert_non_null(p);
	char *r = strdup(p + 1);
	scram_free_msg(out);
	return r;
}

static void test_mock(void **state)
{
	struct pgha_err e;
	static const uint8_t key[] = "a persistent mock key";
	struct scram_mock mock = {key, sizeof(key), 0};

	/* An unknown user runs the whole exchange and fails only at the end. */
	struct scram_server *s = scram_server_new_stored("ghost", NULL, &mock, &e);
	assert_non_null(s);
	assert_int_equal(exchange(s, "anything", &e), -1);
	assert_contains(e.msg, "user does not exist (mock authentication)");
	scram_server_free(s);

	/* Same shape as a real user's server-first: 16-byte salt, default iterations. */
	s = scram_server_new_stored("ghost", NULL, &mock, &e);
	char *a = salt_part(s);
	scram_server_free(s);
	assert_int_equal(strlen(a), strlen("s=GOIgBMonJIemH5jraM2btg==,i=4096"));
	assert_true(strcmp(a + strlen(a) - 7, ",i=4096") == 0);

	/* Stable per user and key (a changing salt would reveal the mock)... */
	s = scram_server_new_mock("ghost", &mock, &e);
	char *b = salt_part(s);
	scram_server_free(s);
	assert_string_equal(a, b);
	free(b);
	/* ...different for another user or another key... */
	s = scram_server_new_mock("ghost2", &mock, &e);
	b = salt_part(s);
	scram_server_free(s);
	assert_string_not_equal(a, b);
	free(b);
	struct scram_mock other = {(const uint8_t *)"other", 5, 10000};
	s = scram_server_new_mock("ghost", &other, &e);
	b = salt_part(s);
	scram_server_free(s);
	assert_string_not_equal(a, b);
	assert_contains(b, ",i=10000");
	free(b);
	free(a);
	/* ...and stable with the per-process key too. */
	s = scram_server_new_mock("ghost", NULL, &e);
	a = salt_part(s);
	scram_server_free(s);
	s = scram_server_new_mock("ghost", NULL, &e);
	b = salt_part(s);
	scram_server_free(s);
	assert_string_equal(a, b);
	free(a);
	free(b);

	/* The right verifier's password does not help: the mock always fails. */
	s = scram_server_new_mock("sec", NULL, &e);
	assert_int_equal(exchange(s, "secret", &e), -1);
	assert_contains(e.msg, "mock authentication");
	scram_server_free(s);

	/* Stored secrets that cannot do SCRAM get a mock exchange naming the reason. */
	static const struct {
		const char *stored, *reason;
	} cases[] = {
		{"md5ad16ab8cb9f9946be08171afa599199d", "MD5 hash"},
		{"SCRAM-SHA-256$4096:bad", "stored secret: invalid SCRAM verifier"},
		{"", "empty"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = scram_server_new_stored("u", cases[i].stored, NULL, &e);
		assert_non_null(s);
		assert_int_equal(exchange(s, "some password", &e), -1);
		assert_contains(e.msg, "mock authentication");
		assert_contains(e.msg, cases[i].reason);
		scram_server_free(s);
	}
}

/* ---------------------------------------------------------- key passthrough */

static void test_key_passthrough(void **state)
{
	struct pgha_err e;
	struct scram_keys keys;
	struct scram_client *c;
	char *m1, *m2, *m3, *m4;

	/* The client authenticates to the proxy against PostgreSQL's verifier... */
	struct scram_server *proxy = scram_server_new_stored("sec", PG_VERIFIER_SECRET, NULL, &e);
	assert_int_equal(exchange(proxy, "secret", &e), 0);
	assert_int_equal(scram_server_client_key(proxy, &keys, &e), 0);
	scram_server_free(proxy);

	/* ...and the proxy logs into "PostgreSQL" (same verifier) without the password. */
	struct scram_server *pg = scram_server_new_stored("sec", PG_VERIFIER_SECRET, NULL, &e);
	assert_int_equal(scram_client_first_with_keys(&keys, &c, &m1, &e), 0);
	assert_int_equal(scram_server_first(pg, m1, strlen(m1), &m2, &e), 0);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &e), 0);
	assert_int_equal(scram_server_final(pg, m3, strlen(m3), &m4, &e), 0);
	assert_int_equal(scram_client_verify(c, m4, strlen(m4), &e), 0);
	scram_free_msg(m1);
	scram_free_msg(m2);
	scram_free_msg(m3);
	scram_free_msg(m4);
	scram_client_free(c);
	scram_server_free(pg);

	/* A server with another verifier for the same password: refused clearly. */
	pg = scram_server_new_plain("secret", &e); /* random salt */
	assert_int_equal(scram_client_first_with_keys(&keys, &c, &m1, &e), 0);
	assert_int_equal(scram_server_first(pg, m1, strlen(m1), &m2, &e), 0);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &e), -1);
	assert_contains(e.msg, "passthrough impossible");
	scram_free_msg(m1);
	scram_free_msg(m2);
	scram_client_free(c);
	scram_server_free(pg);

	/* Same salt and iterations but other keys (another password): the server says no. */
	struct scram_verifier v;
	assert_int_equal(scram_verifier_parse(PG_VERIFIER_SECRET, &v, &e), 0);
	struct scram_verifier v2;
	assert_int_equal(scram_verifier_from_password_salt("other", v.salt, v.salt_len, 4096, &v2, &e), 0);
	pg = scram_server_new(&v2, &e);
	assert_int_equal(scram_client_first_with_keys(&keys, &c, &m1, &e), 0);
	assert_int_equal(scram_server_first(pg, m1, strlen(m1), &m2, &e), 0);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &e), 0);
	assert_int_equal(scram_server_final(pg, m3, strlen(m3), &m4, &e), -1);
	assert_contains(e.msg, "wrong password");
	scram_free_msg(m1);
	scram_free_msg(m2);
	scram_free_msg(m3);
	scram_client_free(c);
	scram_server_free(pg);
	scram_verifier_wipe(&v);
	scram_verifier_wipe(&v2);

	/* Invalid keys are refused up front. */
	struct scram_keys bad = keys;
	bad.salt_len = 0;
	assert_int_equal(scram_client_first_with_keys(&bad, &c, &m1, &e), -1);
	scram_keys_wipe(&keys);
	/* Wiping really clears. */
	static const uint8_t zero[sizeof(keys)];
	assert_memory_equal(&keys, zero, sizeof(keys));
}

/*
 * The attribute a= of a SCRAM message (e.g. "r", "s", "p"), copied into out.
 * Fails the test when missing.
 */
static void ref_attr(const char *msg, char a, char *out, size_t outlen)
{
	const char *p = msg;
	for (;;) {
		if (p[0] == a && p[1] == '=') {
			size_t n = strcspn(p + 2, ",");
			assert_true(n < outlen);
			memcpy(out, p + 2, n);
			out[n] = '\0';
			return;
		}
		p = strchr(p, ',');
		if (p == NULL)
			fail_msg("no %c= in \"%s\"", a, msg);
		p++;
	}
}

/*
 * A PostgreSQL server's check of a client-final-message, written here on
 * OpenSSL: ClientKey' = proof XOR HMAC(StoredKey, AuthMessage) must hash to
 * StoredKey. Returns the ServerSignature the server would send.
 */
static bool ref_server_accepts(const struct scram_verifier *v, const char *client_first,
			       const char *server_first, const char *client_final, uint8_t server_sig[32])
{
	uint8_t proof[64], csig[32], ck[32], h[32];
	unsigned int l;
	char p64[128], auth[2048];
	const char *bare = client_first + 3;   /* after "n,," */
	size_t wo_proof = (size_t)(strstr(client_final, ",p=") - client_final);

	ref_attr(client_final, 'p', p64, sizeof(p64));
	assert_int_equal(ref_b64_decode(p64, proof), 32);
	snprintf(auth, sizeof(auth), "%s,%s,%.*s", bare, server_first, (int)wo_proof, client_final);
	HMAC(EVP_sha256(), v->stored_key, 32, (const unsigned char *)auth, strlen(auth), csig, &l);
	HMAC(EVP_sha256(), v->server_key, 32, (const unsigned char *)auth, strlen(auth), server_sig, &l);
	for (int i = 0; i < 32; i++)
		ck[i] = proof[i] ^ csig[i];
	EVP_Digest(ck, 32, h, &l, EVP_sha256(), NULL);
	return memcmp(h, v->stored_key, 32) == 0;
}

/* A server-first-message for client_first, as a server with verifier v would send it. */
static char *ref_server_first(const struct scram_verifier *v, const char *client_first)
{
	char nonce[128], out[512];
	ref_attr(client_first + 3, 'r', nonce, sizeof(nonce));
	char *salt = ref_b64_encode(v->salt, v->salt_len);
	snprintf(out, sizeof(out), "r=%sServerPart0123,s=%s,i=%d", nonce, salt, v->iterations);
	free(salt);
	return strdup(out);
}

static void test_passthrough_math(void **state)
{
	struct pgha_err e;
	struct scram_verifier v;
	struct scram_keys keys;
	uint8_t salted[32], ck[32], sk[32];
	unsigned int l;

	/*
	 * The ClientKey the proxy recovers from a client's proof (proof XOR
	 * ClientSignature) is the one derived from the password: HMAC(Hi(password,
	 * salt, i), "Client Key"), computed here directly on OpenSSL.
	 */
	assert_int_equal(scram_verifier_parse(PG_VERIFIER_SECRET, &v, &e), 0);
	struct scram_server *proxy = scram_server_new(&v, &e);
	assert_int_equal(exchange(proxy, "secret", &e), 0);
	assert_int_equal(scram_server_client_key(proxy, &keys, &e), 0);
	scram_server_free(proxy);
	assert_int_equal(PKCS5_PBKDF2_HMAC("secret", 6, v.salt, (int)v.salt_len, 4096, EVP_sha256(), 32, salted), 1);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, &l);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, sk, &l);
	assert_memory_equal(keys.client_key, ck, 32);
	assert_memory_equal(keys.server_key, sk, 32);
	assert_int_equal(keys.iterations, 4096);
	assert_int_equal(keys.salt_len, v.salt_len);
	assert_memory_equal(keys.salt, v.salt, v.salt_len);
	assert_true(scram_keys_match(&keys, &v));

	/*
	 * With those keys only, the proxy's proof convinces a server that checks
	 * it the way PostgreSQL does (reference code above, not scram.c), and the
	 * proxy accepts exactly that server's signature.
	 */
	struct scram_client *c;
	char *m1, *m3;
	uint8_t sig[32];
	assert_int_equal(scram_client_first_with_keys(&keys, &c, &m1, &e), 0);
	assert_true(strncmp(m1, "n,,n=,r=", 8) == 0);
	char *m2 = ref_server_first(&v, m1);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &e), 0);
	assert_true(ref_server_accepts(&v, m1, m2, m3, sig));
	char *sig64 = ref_b64_encode(sig, 32);
	char final[128];
	snprintf(final, sizeof(final), "v=%s", sig64);
	assert_int_equal(scram_client_verify(c, final, strlen(final), &e), 0);
	scram_client_free(c);
	scram_free_msg(m1);
	scram_free_msg(m3);
	free(m2);
	/* A forged server signature is refused. */
	assert_int_equal(scram_client_first_with_keys(&keys, &c, &m1, &e), 0);
	m2 = ref_server_first(&v, m1);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &e), 0);
	final[3] ^= 1;
	assert_int_equal(scram_client_verify(c, final, strlen(final), &e), -1);
	scram_client_free(c);
	scram_free_msg(m1);
	scram_free_msg(m3);
	free(m2);
	free(sig64);

	/* A ClientKey off by one bit gives a proof the server refuses. */
	struct scram_keys bad = keys;
	bad.client_key[7] ^= 0x10;
	assert_false(scram_keys_match(&bad, &v));
	assert_int_equal(scram_client_first_with_keys(&bad, &c, &m1, &e), 0);
	m2 = ref_server_first(&v, m1);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &e), 0);
	assert_false(ref_server_accepts(&v, m1, m2, m3, sig));
	scram_client_free(c);
	scram_free_msg(m1);
	scram_free_msg(m3);
	free(m2);
	scram_keys_wipe(&bad);

	/* A server with the same password but another iteration count: refused before any proof. */
	struct scram_verifier v2;
	assert_int_equal(scram_verifier_from_password_salt("secret", v.salt, v.salt_len, 4097, &v2, &e), 0);
	assert_false(scram_keys_match(&keys, &v2));
	assert_int_equal(scram_client_first_with_keys(&keys, &c, &m1, &e), 0);
	m2 = ref_server_first(&v2, m1);
	assert_int_equal(scram_client_continue(c, m2, strlen(m2), &m3, &e), -1);
	assert_contains(e.msg, "passthrough impossible");
	assert_null(m3);
	scram_client_free(c);
	scram_free_msg(m1);
	free(m2);
	scram_verifier_wipe(&v2);
	scram_verifier_wipe(&v);
	scram_keys_wipe(&keys);
}

static void test_keys_match(void **state)
{
	struct pgha_err e;
	struct scram_verifier v, other;
	struct scram_keys keys, k;

	assert_int_equal(scram_verifier_parse(PG_VERIFIER_SECRET, &v, &e), 0);
	struct scram_server *s = scram_server_new_stored("sec", PG_VERIFIER_SECRET, NULL, &e);
	assert_int_equal(exchange(s, "secret", &e), 0);
	assert_int_equal(scram_server_client_key(s, &keys, &e), 0);
	scram_server_free(s);
	assert_true(scram_keys_match(&keys, &v));

	/* Each part of the verifier matters. */
	k = keys;
	k.iterations = 4095;
	assert_false(scram_keys_match(&k, &v));
	k = keys;
	k.salt[0] ^= 1;
	assert_false(scram_keys_match(&k, &v));
	k = keys;
	k.salt_len--;
	assert_false(scram_keys_match(&k, &v));
	k = keys;
	k.server_key[31] ^= 0x80;
	assert_false(scram_keys_match(&k, &v));
	k = keys;
	k.client_key[0] ^= 1;
	assert_false(scram_keys_match(&k, &v));
	k = keys;
	k.salt_len = 0;
	assert_false(scram_keys_match(&k, &v));

	/* Same salt and iterations, another password (the role's password changed). */
	assert_int_equal(scram_verifier_from_password_salt("secret2", v.salt, v.salt_len, 4096, &other, &e), 0);
	assert_false(scram_keys_match(&keys, &other));
	scram_verifier_wipe(&other);

	/* Keys from a plaintext-stored password (fresh random salt) never match PostgreSQL's verifier. */
	s = scram_server_new_stored("sec", "secret", NULL, &e);
	assert_int_equal(exchange(s, "secret", &e), 0);
	assert_int_equal(scram_server_client_key(s, &k, &e), 0);
	scram_server_free(s);
	assert_false(scram_keys_match(&k, &v));
	/* ...but the very same ClientKey would, with PostgreSQL's salt: only the salt differs. */
	assert_int_equal(scram_verifier_from_password_salt("secret", k.salt, k.salt_len, k.iterations, &other, &e), 0);
	assert_true(scram_keys_match(&k, &other));
	scram_verifier_wipe(&other);

	scram_keys_wipe(&k);
	scram_keys_wipe(&keys);
	scram_verifier_wipe(&v);
}

/* ------------------------------------------------------------------ SASLprep */

static void expect_prep(const char *in, enum scram_saslprep_rc rc, const char *out)
{
	char *o = (char *)0x1;
	enum scram_saslprep_rc got = scram_saslprep(in, &o);
	if (got != rc)
		fail_msg("saslprep(\"%s\") = %d, expected %d", in, got, rc);
	if (out) {
		assert_non_null(o);
		assert_string_equal(o, out);
	} else {
		assert_null(o);
	}
	secret_free(o);
}

static void test_saslprep(void **state)
{
	/* ASCII passes through untouched, control characters included. */
	expect_prep("pencil", SCRAM_SASLPREP_OK, "pencil");
	expect_prep("a\tb\x7f", SCRAM_SASLPREP_OK, "a\tb\x7f");
	expect_prep("", SCRAM_SASLPREP_OK, "");
	/* Stable non-ASCII: unchanged. */
	expect_prep("p\xc3\xa4ssw\xc3\xb6rd", SCRAM_SASLPREP_OK, "p\xc3\xa4ssw\xc3\xb6rd");
	expect_prep("\xe5\xaf\x86\xe7\xa0\x81", SCRAM_SASLPREP_OK, "\xe5\xaf\x86\xe7\xa0\x81"); /* 密码 */
	expect_prep("\xea\xb0\x80", SCRAM_SASLPREP_OK, "\xea\xb0\x80"); /* Hangul syllable */
	/* Mapping: NBSP -> space, soft hyphen and ZWJ -> nothing. */
	expect_prep("a\xc2\xa0" "b\xc2\xad" "c", SCRAM_SASLPREP_OK, "a bc");
	expect_prep("x\xe2\x80\x8dy\xc3\xa9", SCRAM_SASLPREP_OK, "xy\xc3\xa9");
	/* Raw bytes: invalid UTF-8, overlong, surrogate, > U+10FFFF, truncated. */
	expect_prep("\xff", SCRAM_SASLPREP_RAW, "\xff");
	expect_prep("\xc0\xaf", SCRAM_SASLPREP_RAW, "\xc0\xaf");
	expect_prep("\xed\xa0\x80", SCRAM_SASLPREP_RAW, "\xed\xa0\x80");
	expect_prep("\xf4\x90\x80\x80", SCRAM_SASLPREP_RAW, "\xf4\x90\x80\x80");
	expect_prep("ab\xc3", SCRAM_SASLPREP_RAW, "ab\xc3");
	/* Raw bytes: prohibited (control, private use, unassigned in 3.2), empty after mapping. */
	expect_prep("\xc3\xa9\x07", SCRAM_SASLPREP_RAW, "\xc3\xa9\x07");
	expect_prep("\xee\x80\x80", SCRAM_SASLPREP_RAW, "\xee\x80\x80");
	expect_prep("\xc8\xa1", SCRAM_SASLPREP_RAW, "\xc8\xa1"); /* U+0221, unassigned in 3.2 */
	expect_prep("\xc2\xad", SCRAM_SASLPREP_RAW, "\xc2\xad");
	/* Bidi: all-RTL fine; RTL mixed with L, or not RTL at both ends: raw. */
	expect_prep("\xd7\x90\xd7\x91", SCRAM_SASLPREP_OK, "\xd7\x90\xd7\x91");
	expect_prep("\xd7\x90" "1\xd7\x91", SCRAM_SASLPREP_OK, "\xd7\x90" "1\xd7\x91");
	expect_prep("\xd7\x90" "a\xd7\x91", SCRAM_SASLPREP_RAW, "\xd7\x90" "a\xd7\x91");
	expect_prep("1\xd7\x90", SCRAM_SASLPREP_RAW, "1\xd7\x90");
	/* NFKC: composed, compatibility forms replaced. */
	expect_prep("e\xcc\x81", SCRAM_SASLPREP_OK, "\xc3\xa9");           /* e + combining acute */
	expect_prep("\xef\xbc\xa1", SCRAM_SASLPREP_OK, "A");               /* fullwidth A */
	expect_prep("\xef\xac\x81sh", SCRAM_SASLPREP_OK, "fish");          /* ligature fi */
	expect_prep("\xc2\xb2", SCRAM_SASLPREP_OK, "2");                   /* superscript two */
	expect_prep("\xe1\x84\x80\xe1\x85\xa1", SCRAM_SASLPREP_OK, "\xea\xb0\x80"); /* jamo -> syllable */
	expect_prep("\xe2\x84\xab", SCRAM_SASLPREP_OK, "\xc3\x85");       /* ANGSTROM SIGN -> Å */
	/* Mapping then NFKC: an em space, a ligature after a NBSP. */
	expect_prep("a\xe2\x80\x83" "b\xc2\xa0\xef\xac\x81", SCRAM_SASLPREP_OK, "a b fi");
	/* The longest expansion there is: U+FDFA, 18 code points. */
	expect_prep("\xef\xb7\xba", SCRAM_SASLPREP_OK,
		    "\xd8\xb5\xd9\x84\xd9\x89 \xd8\xa7\xd9\x84\xd9\x84\xd9\x87 \xd8\xb9\xd9\x84\xd9\x8a\xd9\x87 "
		    "\xd9\x88\xd8\xb3\xd9\x84\xd9\x85");
	/* ...unless PostgreSQL would use raw bytes anyway (prohibited wins). */
	expect_prep("\xef\xbc\xa1\x01", SCRAM_SASLPREP_RAW, "\xef\xbc\xa1\x01");

	char *o;
	struct pgha_err e;
	assert_int_equal(scram_prepare_password("\xef\xbc\xa1" "b", &o, &e), 0);
	assert_string_equal(o, "Ab");
	secret_free(o);
}

/*
 * Verifiers PostgreSQL 15 computed for non-ASCII passwords (UTF8 database),
 * and the password NFKC makes of each one it normalizes.
 */
static void test_saslprep_vs_postgres(void **state)
{
	static const struct {
		const char *password, *normalized, *verifier;
	} ok[] = {
		/* "pässwörd": no change */
		{"p\xc3\xa4ssw\xc3\xb6rd", NULL,
		 "SCRAM-SHA-256$4096:vCbW4m2Jm4trKtDD/JnKwA==$NF2BQ4/rQaJ12nF+3sj6EaJD4C7y1pCiW9PYSu++Diw=:77tnA4GDfcw7fLAG3X/S6U40g7tJJ2dDfgYpJY0U0hQ="},
		/* "a<NBSP>b<SHY>c": mapped to "a bc" */
		{"a\xc2\xa0" "b\xc2\xad" "c", NULL,
		 "SCRAM-SHA-256$4096:d5hZPtvH+czUGYwexVifGA==$ouppmdB5duMBYsxSlR/IUgD91AUl3ODIVTMtMbD6nqc=:MkjtcDCI3ZKHrKZc3t3iFGHeUnsFytax789ab0MQcW8="},
		{"a bc", NULL,
		 "SCRAM-SHA-256$4096:d5hZPtvH+czUGYwexVifGA==$ouppmdB5duMBYsxSlR/IUgD91AUl3ODIVTMtMbD6nqc=:MkjtcDCI3ZKHrKZc3t3iFGHeUnsFytax789ab0MQcW8="},
		/* "é<BEL>x": prohibited, raw bytes */
		{"\xc3\xa9\x07x", NULL,
		 "SCRAM-SHA-256$4096:u3LP5tihS8j7BTekSaVWuw==$U7tlNbaQZ8F5fhCcC+tWc4vli4qb3Yas3nLp461xF0c=:ff3aLU39CzmjA/GqbQBo7SpwfyNVkoa0Uvbb4JzGf80="},
		/* Hebrew with a Latin letter: bidi failure, raw bytes */
		{"\xd7\x90" "a\xd7\x91", NULL,
		 "SCRAM-SHA-256$4096:NLqtM4H+2TYunIX3J/FyTg==$N3AsvRhop0cm24+O7nhD+cY+O/LzsI0S1s8SbEtnE5A=:lXuwSzCoC4jCoNtJjDpKrKiDcai4hlnK5YINiHIx+CM="},
		/* Hebrew only */
		{"\xd7\x90\xd7\x91\xd7\x92", NULL,
		 "SCRAM-SHA-256$4096:zaqK0i+N2QpqfsZ2c681jQ==$oinuqubt+CGUN22aQSlCEc63dWrNhVxmhL9P7Lh0wz8=:uNMeVxO8dn0PBtUaMLgwpyAqVzEZb4RRic51xoStS68="},
		/* "Ａb" (fullwidth A) */
		{"\xef\xbc\xa1" "b", "Ab",
		 "SCRAM-SHA-256$4096:snGclLtMr7x6YVsJJSuKog==$mmyagWSeU2MgFwH4GBBq/mQ8LnbGZ9NBVyYo8fTdmbU=:aerF7WhljENdNA883JXuARi6QISSf5xy5RqvIOPw0Rw="},
		/* "ﬁsh-ﬁne" (U+FB01 ligatures) */
		{"\xef\xac\x81sh-\xef\xac\x81ne", "fish-fine",
		 "SCRAM-SHA-256$4096:4yQB6YbM27FP9ioKMjhb8w==$H0+NqG0BDSlk3jtjrBEPILAYhCnXRpywuj9RA3/Y88A=:/I+BdAyN14neTPGSbB/TQtc9Ve7YkdQeNyTIbex4nY8="},
		/* "cafe" + combining acute */
		{"cafe\xcc\x81", "caf\xc3\xa9",
		 "SCRAM-SHA-256$4096:/Qg8UaVj0TJQOghE5BJJ/w==$gMfK9daC5FQJAvXrE6FO1wdNFjVgE6lo+TlhNyuJ/ws=:5rZ5FRYQ5IvTZu5nVy2RJfLqKuuG49hGtxn6sgZcxhY="},
		/* fullwidth "pass1" */
		{"\xef\xbd\x90\xef\xbd\x81\xef\xbd\x93\xef\xbd\x93\xef\xbc\x91", "pass1",
		 "SCRAM-SHA-256$4096:rzziyTLwhENj21vs8BpDIg==$V3mm7ntIul1AuIBZXxuoDbSPdFoHaAOv8Ydn1XFHkmc=:7ccQNOOM7L9leDI8vFH+x5QotY494xQ1Kj3RvrJiMiU="},
		/* "two<EM SPACE>words<NBSP>here" */
		{"two\xe2\x80\x83words\xc2\xa0here", "two words here",
		 "SCRAM-SHA-256$4096:PO5eynHx5TWMbyQCtkBo7Q==$Sn1NA48b+UvaJN7aHgP34HOQUT69sMQIeR1lZ2tqy6A=:H4Mdn22wsRxKeFVR0Pt/Tb7dv8ppjhbPFxHGpZ7hmbg="},
		/* U+FDFA, 18 code points after NFKC */
		{"\xef\xb7\xba", NULL,
		 "SCRAM-SHA-256$4096:H3u1Y41d9p9N2MZzml6ApA==$H47dKNiWr3IXzn2WZhhRHWlXT3pKZF5OCDkJMP7BbMQ=:KZLzCXdUhhSzszwbym47jGTDThEgEHjFTmx4rpP3K1U="},
	};
	struct scram_verifier v;
	struct pgha_err e;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(scram_verifier_parse(ok[i].verifier, &v, &e), 0);
		if (scram_verifier_check_password(&v, ok[i].password, &e) != 0)
			fail_msg("case %zu: %s", i, e.msg);
		if (ok[i].normalized != NULL && scram_verifier_check_password(&v, ok[i].normalized, &e) != 0)
			fail_msg("case %zu, normalized: %s", i, e.msg);
		/* The whole exchange, client and server both preparing the password: against the
		 * verifier (a client's login to the proxy), and against the plaintext (the proxy's). */
		struct scram_server *s = scram_server_new(&v, &e);
		assert_int_equal(exchange(s, ok[i].password, &e), 0);
		scram_server_free(s);
		s = scram_server_new_plain(ok[i].password, &e);
		assert_non_null(s);
		assert_int_equal(exchange(s, ok[i].normalized ? ok[i].normalized : ok[i].password, &e), 0);
		scram_server_free(s);
		scram_verifier_wipe(&v);
	}
}

/* ----------------------------------------------------------------------- md5 */

/* Independent: "md5" + hex(MD5(a || b)) with OpenSSL directly. */
static void ref_md5(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
	uint8_t buf[256], d[16];
	unsigned int l;

	memcpy(buf, a, alen);
	memcpy(buf + alen, b, blen);
	EVP_Digest(buf, alen + blen, d, &l, EVP_md5(), NULL);
	strcpy(out, "md5");
	for (int i = 0; i < 16; i++)
		sprintf(out + 3 + 2 * i, "%02x", d[i]);
}

static void test_md5(void **state)
{
	struct pgha_err e;
	char out[PGMD5_LEN + 1], ref[36];
	const uint8_t salt[4] = {1, 2, 3, 4};

	assert_int_equal(pgmd5_hash("foobar", "foo", out, &e), 0);
	ref_md5("foobar", 6, "foo", 3, ref);
	assert_string_equal(out, ref);
	assert_string_equal(out, "md5c98cbfeb6a347a47eb8e96cfb4c4b890");

	/* PostgreSQL 15: SET password_encryption = 'md5'; CREATE ROLE md5u PASSWORD 'secret'. */
	assert_int_equal(pgmd5_hash("secret", "md5u", out, &e), 0);
	assert_string_equal(out, "md5ad16ab8cb9f9946be08171afa599199d");
	assert_true(pgmd5_is_verifier(out));

	/* Challenge response: md5(hex(md5(password || user)) || salt). */
	assert_int_equal(pgmd5_challenge_response("secret", "md5u", salt, out, &e), 0);
	ref_md5("ad16ab8cb9f9946be08171afa599199d", 32, salt, 4, ref);
	assert_string_equal(out, ref);
	assert_string_equal(out, "md574d422b0eeebba2baecebf90de5ddaae"); /* Python hashlib */
	char out2[PGMD5_LEN + 1];
	assert_int_equal(pgmd5_response_from_hash("md5ad16ab8cb9f9946be08171afa599199d", salt, out2, &e), 0);
	assert_string_equal(out2, out);
	assert_int_equal(pgmd5_response_from_hash("secret", salt, out2, &e), -1);

	/* Verification against the hash and against the plaintext. */
	assert_int_equal(pgmd5_verify("md5ad16ab8cb9f9946be08171afa599199d", "md5u", salt, out, 35, &e), 0);
	assert_int_equal(pgmd5_verify("secret", "md5u", salt, out, 35, &e), 0);
	assert_int_equal(pgmd5_verify("Secret", "md5u", salt, out, 35, &e), -1);
	assert_contains(e.msg, "wrong password");
	const uint8_t salt2[4] = {1, 2, 3, 5};
	assert_int_equal(pgmd5_verify("secret", "md5u", salt2, out, 35, &e), -1); /* replayed */
	assert_int_equal(pgmd5_verify("secret", "other", salt, out, 35, &e), -1);
	assert_int_equal(pgmd5_verify("secret", "md5u", salt, out, 34, &e), -1);
	assert_contains(e.msg, "malformed response");
	assert_int_equal(pgmd5_verify("secret", "md5u", salt, NULL, 0, &e), -1);
	assert_int_equal(pgmd5_verify(NULL, "md5u", salt, out, 35, &e), -1);
	assert_contains(e.msg, "user does not exist");
	assert_int_equal(pgmd5_verify(PG_VERIFIER_SECRET, "md5u", salt, out, 35, &e), -1);
	assert_contains(e.msg, "SCRAM verifier");
	assert_int_equal(pgmd5_verify("", "md5u", salt, out, 35, &e), -1);
	assert_contains(e.msg, "empty");

	/* What is an md5 hash. */
	assert_false(pgmd5_is_verifier("md5AD16AB8CB9F9946BE08171AFA599199D"));
	assert_false(pgmd5_is_verifier("md5ad16ab8cb9f9946be08171afa599199"));
	assert_false(pgmd5_is_verifier("md5ad16ab8cb9f9946be08171afa599199dd"));
	assert_false(pgmd5_is_verifier("MD5ad16ab8cb9f9946be08171afa599199d"));
	assert_false(pgmd5_is_verifier("md5ad16ab8cb9f9946be08171afa599199g"));
	assert_false(pgmd5_is_verifier(NULL));

	uint8_t s1[4], s2[4];
	assert_int_equal(pgmd5_salt(s1, &e), 0);
	assert_int_equal(pgmd5_salt(s2, &e), 0);
	(void)s2; /* random: nothing to compare reliably in 4 bytes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_server),
		cmocka_unit_test(test_rfc7677_client),
		cmocka_unit_test(test_exchange_random),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_postgres_verifier),
		cmocka_unit_test(test_verifier_parse_errors),
		cmocka_unit_test(test_gs2_headers),
		cmocka_unit_test(test_client_first_malformed),
		cmocka_unit_test(test_client_final_malformed),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_client_continue_errors),
		cmocka_unit_test(test_mock),
		cmocka_unit_test(test_key_passthrough),
		cmocka_unit_test(test_passthrough_math),
		cmocka_unit_test(test_keys_match),
		cmocka_unit_test(test_saslprep),
		cmocka_unit_test(test_saslprep_vs_postgres),
		cmocka_unit_test(test_md5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
