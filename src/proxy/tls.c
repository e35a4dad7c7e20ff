/*
 * tls.c — TLS between clients and the proxy (OpenSSL, non-blocking).
 *
 * With [tls] cert_file and key_file set, an SSLRequest is answered 'S' and
 * the handshake runs inside the event loop (SSL_accept on each readiness
 * event); the startup packet then comes over TLS. Without them, 'N' as
 * before. [tls] require refuses clients that do not ask for TLS; [tls]
 * ca_file asks clients for a certificate signed by that CA and refuses those
 * without one.
 *
 * Every client read and write goes through client_read()/client_send() in
 * tls.h, which call these when the client has a TLS session (server_read()/
 * server_send() do the same for servers, server_tls.c). A read
 * offers at least 16 KiB (pbuf_reserve), the largest TLS record's plaintext,
 * and read-ahead stays off, so nothing decrypted is left inside OpenSSL
 * where level-triggered epoll could not see it; tls_read() still drains
 * SSL_pending() to be safe, and says the socket drained after a short
 * record (pbuf.drained) so that the relay does not try a read that would
 * only say EAGAIN.
 *
 * The context is rebuilt on SIGHUP/RELOAD (certificate rotation); sessions
 * already open keep a reference to the old one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/tlsfile.h"
#include "common/util.h"
#include "proxy/tls.h"

static int parse_protocol(const char *text, int *version)
{
	static const struct {
		const char *name;
		int v;
	} names[] = {{"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION}};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(text, names[i].name) == 0) {
			*version = names[i].v;
			return 0;
		}
	}
	return -1;
}

int64_t tls_ctx_not_after(struct ssl_ctx_st *ctx)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	struct tm tm;
	if (cert == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

int tls_configure(struct proxy *px, struct pgha_err *e)
{
	const struct proxy_config *cfg = &px->cfg;
	const char *path = cfg->path;
	bool have_cert = cfg->tls_cert_file[0] != '\0', have_key = cfg->tls_key_file[0] != '\0';
	if (!have_cert && !have_key) {
		if (cfg->tls_require)
			return err_set(e, "%s: [tls] require = on needs cert_file and key_file", path);
		if (px->tls_ctx != NULL) {
			SSL_CTX_free(px->tls_ctx);
			px->tls_ctx = NULL;
			log_info("TLS turned off: SSLRequest is now answered 'N'");
		}
		free(px->tls_cert_loaded);
		px->tls_cert_loaded = NULL;
		return 0;
	}
	if (!have_cert || !have_key)
		return err_set(e, "%s: [tls] needs both cert_file and key_file (only %s is set)", path,
			       have_cert ? "cert_file" : "key_file");
	int min_version;
	if (parse_protocol(cfg->tls_min_protocol, &min_version) != 0)
		return err_set(e, "%s: [tls] min_protocol = \"%s\": use TLSv1.2 or TLSv1.3", path,
			       cfg->tls_min_protocol);
	char why[512];
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_error_text(why, sizeof(why));
		return err_set(e, "cannot create a TLS context: %s", why);
	}
	SSL_CTX_set_min_proto_version(ctx, min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
		tls_error_text(why, sizeof(why));
		SSL_CTX_free(ctx);
		return err_set(e, "%s: [tls] cert_file = \"%s\": cannot load the certificate: %s", path,
			       cfg->tls_cert_file, why);
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
		bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
		tls_error_text(why, sizeof(why));
		SSL_CTX_free(ctx);
		if (mismatch)
			return err_set(e, "%s: [tls] key_file \"%s\" does not match cert_file \"%s\"", path,
				       cfg->tls_key_file, cfg->tls_cert_file);
		return err_set(e, "%s: [tls] key_file = \"%s\": cannot load the private key: %s", path,
			       cfg->tls_key_file, why);
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error_text(why, sizeof(why));
		SSL_CTX_free(ctx);
		return err_set(e, "%s: [tls] key_file \"%s\" does not match cert_file \"%s\": %s", path,
			       cfg->tls_key_file, cfg->tls_cert_file, why);
	}
	if (cfg->tls_ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1) {
			tls_error_text(why, sizeof(why));
			SSL_CTX_free(ctx);
			return err_set(e, "%s: [tls] ca_file = \"%s\": cannot load: %s", path, cfg->tls_ca_file,
				       why);
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	if (px->tls_ctx != NULL)
		SSL_CTX_free(px->tls_ctx);   /* open sessions hold their own reference */
	px->tls_ctx = ctx;
	free(px->tls_cert_loaded);
	px->tls_cert_loaded = xstrdup(cfg->tls_cert_file);
	px->tls_not_after = tls_ctx_not_after(ctx);
	log_info("TLS on: certificate %s%s%s", cfg->tls_cert_file, cfg->tls_require ? ", required" : "",
		 cfg->tls_ca_file[0] ? ", client certificates verified" : "");
	return 0;
}

void tls_shutdown(struct proxy *px)
{
	if (px->tls_ctx != NULL)
		SSL_CTX_free(px->tls_ctx);
	px->tls_ctx = NULL;
	free(px->tls_cert_loaded);
	px->tls_cert_loaded = NULL;
}

int tls_begin(struct client *c)
{
	ERR_clear_error();
	SSL *ssl = SSL_new(c->px->tls_ctx);
	if (ssl == NULL || SSL_set_fd(ssl, c->tag.fd) != 1) {
		char why[256];
		tls_error_text(why, sizeof(why));
		log_warn("client %s: cannot start TLS: %s", c->addr, why);
		if (ssl)
			SSL_free(ssl);
		return -1;
	}
	c->ssl = ssl;
	return 0;
}

void tls_end(struct client *c)
{
	if (c->ssl == NULL)
		return;
	/* A close_notify if it goes out at once; never wait for the peer's. */
	if (SSL_is_init_finished(c->ssl))
		(void)SSL_shutdown(c->ssl);
	SSL_free(c->ssl);
	c->ssl = NULL;
	ERR_clear_error();
}

/* A read of at least this much plaintext looks like a bulk transfer: read again at once. */
#define TLS_BULK_RECORD 8192

/* What SSL_get_error says about r: -2 would block (*want set), 0 EOF, -1 error (logged at info). */
int tls_result(struct ssl_st *ssl, uint32_t *want, const char *kind, const char *name, int r, const char *what)
{
	int err = SSL_get_error(ssl, r);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		*want = EPOLLIN;
		return -2;
	case SSL_ERROR_WANT_WRITE:
		*want = EPOLLOUT;
		return -2;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
			return 0;   /* the peer went away without close_notify */
		/* fallthrough */
	default: {
		char why[512];
		tls_error_text(why, sizeof(why));
		log_info("%s %s: TLS %s failed: %s", kind, name, what, why);
		return -1;
	}
	}
}

int tls_handshake(struct client *c)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_accept(c->ssl);
	if (r == 1) {
		c->tls_want = 0;
		log_debug("client %s: %s, cipher %s", c->addr, SSL_get_version(c->ssl), SSL_get_cipher(c->ssl));
		return 1;
	}
	int rc = tls_result(c->ssl, &c->tls_want, "client", c->addr, r, "handshake");
	return rc == -2 ? 0 : -1;
}

ssize_t tls_read(struct ssl_st *ssl, uint32_t *want, const char *kind, const char *name, struct pbuf *b)
{
	if (b->start == b->end)
		b->start = b->end = 0;
	size_t total = 0;
	do {
		pbuf_reserve(b, 16384);
		ERR_clear_error();
		errno = 0;
		int r = SSL_read(ssl, b->data + b->end, (int)(b->cap - b->end > 1 << 30 ? 1 << 30 : b->cap - b->end));
		if (r > 0) {
			b->end += (size_t)r;
			total += (size_t)r;
			*want = 0;
			continue;
		}
		if (total > 0)
			break;
		int rc = tls_result(ssl, want, kind, name, r, "read");
		b->drained = rc == -2;
		return rc;
	} while (SSL_pending(ssl) > 0);
	/*
	 * Whether the socket holds another record is unknown (read-ahead is off, so
	 * nothing waits inside OpenSSL). Less than a bulk transfer's record came
	 * (an answer, a request): most likely all there was, and another SSL_read
	 * would cost a recv that says EAGAIN on each message. Stop; if more is
	 * there, level-triggered epoll reports it at once. A full record (COPY, a
	 * large result: PostgreSQL writes 8 KiB at a time): read on.
	 */
	b->drained = total < TLS_BULK_RECORD;
	return (ssize_t)total;
}

int tls_send(struct ssl_st *ssl, uint32_t *want, const char *kind, const char *name, struct strbuf *sb,
	     size_t *off)
{
	while (*off < sb->len) {
		size_t n = sb->len - *off;
		ERR_clear_error();
		errno = 0;
		int r = SSL_write(ssl, sb->data + *off, (int)(n > 1 << 30 ? 1 << 30 : n));
		if (r > 0) {
			*off += (size_t)r;
			*want = 0;
			continue;
		}
		int rc = tls_result(ssl, want, kind, name, r, "write");
		return rc == -2 ? 0 : -1;
	}
	sb_reset(sb);
	*off = 0;
	return 1;
}
