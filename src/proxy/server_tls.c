/*
 * server_tls.c — TLS between the proxy and PostgreSQL (OpenSSL, non-blocking).
 *
 * A server connection with server_sslmode other than disable sends an
 * SSLRequest before its startup packet, as libpq does. 'S': SSL_connect runs
 * inside the event loop (one step per readiness event) and the startup packet
 * then goes over TLS; 'N': prefer goes on in plain text, require and verify-*
 * fail the connection. The answer must be that one byte alone: bytes after the
 * 'S' would be read as if they came over TLS (CVE-2021-23222), and after an
 * 'N' as the answer to a startup packet not sent yet, so they fail the
 * connection. verify-ca checks the chain against server_ca_file,
 * verify-full also that the certificate names the host or IP address the
 * proxy dialled (the member's address in etcd).
 *
 * The context is rebuilt on SIGHUP/RELOAD with the mode; a failed rebuild
 * keeps both. A session takes its reference when its connection starts, so
 * open connections keep the context they began with.
 */
#include "proxy/server_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/tlsfile.h"
#include "common/util.h"
#include "pgproto/pgproto.h"
#include "proxy/tls.h"

static int protocol_version(const char *text)
{
	return strcasecmp(text, "TLSv1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/* The context server_sslmode and the server_* files ask for; NULL: e says which file and why. */
static SSL_CTX *build_ctx(const struct proxy_config *cfg, struct pgha_err *e)
{
	const char *path = cfg->path;
	struct pgha_err sub;
	bool verify = cfg->server_sslmode >= SSLMODE_VERIFY_CA;
	const char *ca = cfg->tls_server_ca_file, *cert = cfg->tls_server_cert_file, *key = cfg->tls_server_key_file;
	/* Checked first for messages that name the file and say what is wrong with it. */
	if (ca[0] != '\0' && tls_ca_check("server_ca_file", ca, &sub) != 0) {
		err_set(e, "%s: [tls] %s", path, sub.msg);
		return NULL;
	}
	if (cert[0] != '\0' && tls_files_check(cert, key, NULL, &sub) != 0) {
		err_set(e, "%s: [tls] server_%s", path, sub.msg);
		return NULL;
	}
	char why[512];
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		tls_error_text(why, sizeof(why));
		err_set(e, "cannot create a TLS context: %s", why);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, protocol_version(cfg->tls_min_protocol));
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (ca[0] != '\0' && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		tls_error_text(why, sizeof(why));
		err_set(e, "%s: [tls] server_ca_file = \"%s\": cannot load: %s", path, ca, why);
		goto fail;
	}
	if (cert[0] != '\0') {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
			tls_error_text(why, sizeof(why));
			err_set(e, "%s: [tls] server_cert_file = \"%s\": cannot load the certificate: %s", path,
				cert, why);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
			tls_error_text(why, sizeof(why));
			err_set(e, "%s: [tls] server_key_file = \"%s\": cannot use it with server_cert_file \"%s\": %s",
				path, key, cert, why);
			goto fail;
		}
	}
	/* prefer and require encrypt without checking who answers, as libpq without a root certificate. */
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int server_tls_configure(struct proxy *px, struct pgha_err *e)
{
	const struct proxy_config *cfg = &px->cfg;
	SSL_CTX *ctx = NULL;
	if (cfg->server_sslmode != SSLMODE_DISABLE && (ctx = build_ctx(cfg, e)) == NULL)
		return -1;
	bool changed = px->server_tls_mode != cfg->server_sslmode || ctx != NULL || px->server_tls_ctx != NULL;
	if (px->server_tls_ctx != NULL)
		SSL_CTX_free(px->server_tls_ctx);   /* open sessions hold their own reference */
	px->server_tls_ctx = ctx;
	px->server_tls_mode = cfg->server_sslmode;
	free(px->server_tls_cert_loaded);
	px->server_tls_cert_loaded = NULL;
	px->server_tls_not_after = 0;
	if (ctx != NULL && cfg->tls_server_cert_file[0] != '\0') {
		px->server_tls_cert_loaded = xstrdup(cfg->tls_server_cert_file);
		px->server_tls_not_after = tls_ctx_not_after(ctx);
	}
	if (changed)
		log_info("TLS to PostgreSQL: server_sslmode = %s%s%s%s%s", proxy_sslmode_name(cfg->server_sslmode),
			 cfg->server_sslmode >= SSLMODE_VERIFY_CA ? ", CA " : "",
			 cfg->server_sslmode >= SSLMODE_VERIFY_CA ? cfg->tls_server_ca_file : "",
			 px->server_tls_cert_loaded ? ", client certificate " : "",
			 px->server_tls_cert_loaded ? px->server_tls_cert_loaded : "");
	return 0;
}

void server_tls_shutdown(struct proxy *px)
{
	if (px->server_tls_ctx != NULL)
		SSL_CTX_free(px->server_tls_ctx);
	px->server_tls_ctx = NULL;
	free(px->server_tls_cert_loaded);
	px->server_tls_cert_loaded = NULL;
}

struct ssl_st *server_tls_new(struct ssl_ctx_st *ctx, enum server_sslmode mode, const char *host, int fd,
			      char *why, size_t whylen)
{
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_connect_state(ssl);
	unsigned char addr[sizeof(struct in6_addr)];
	bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
		goto fail;
	if (mode == SSLMODE_VERIFY_FULL) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1)
			goto fail;
	}
	return ssl;
fail:
	tls_error_text(why, whylen);
	if (ssl != NULL)
		SSL_free(ssl);
	return NULL;
}

void server_tls_request(struct server *s)
{
	struct proxy *px = s->px;
	s->tls_mode = px->server_tls_mode;
	if (px->server_tls_mode == SSLMODE_DISABLE || px->server_tls_ctx == NULL)
		return;
	char why[256];
	s->ssl = server_tls_new(px->server_tls_ctx, s->tls_mode, s->target.host, s->tag.fd, why, sizeof(why));
	if (s->ssl == NULL)   /* 'S' fails the connection */
		log_warn("server %s:%d: cannot start TLS: %s", s->target.host, s->target.port, why);
	/* The startup packet waits for the answer (and the handshake). */
	sb_append(&s->startup, s->out.data, s->out.len);
	sb_reset(&s->out);
	pgp_build_ssl_request(&s->out);
	s->tls_phase = SERVER_TLS_ASKED;
}

/* Queue the startup packet and send what can go now: 1, or -1 (why). */
static int startup_next(struct server *s, char *why, size_t whylen)
{
	s->tls_phase = SERVER_TLS_DONE;
	sb_append(&s->out, s->startup.data, s->startup.len);
	sb_free(&s->startup);
	int r = server_send(s);
	if (r < 0) {
		snprintf(why, whylen, "cannot send the startup packet: %s", s->ssl ? "TLS write failed" : strerror(errno));
		return -1;
	}
	proxy_watch(s->px, &s->tag, r == 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
	return 1;
}

/* The answer to the SSLRequest: one byte, 'S' or 'N'. */
static int answer_step(struct server *s, char *why, size_t whylen)
{
	const char *host = s->target.host, *mode = proxy_sslmode_name(s->tls_mode);
	int port = s->target.port;
	if (s->out.len > s->out_off) {
		if (strbuf_send(&s->out, &s->out_off, s->tag.fd) < 0) {
			snprintf(why, whylen, "cannot send the SSLRequest: %s", strerror(errno));
			return -1;
		}
		proxy_watch(s->px, &s->tag, s->out.len > s->out_off ? EPOLLOUT : EPOLLIN);
		return 0;
	}
	uint8_t ans[64];
	ssize_t n = recv(s->tag.fd, ans, sizeof(ans), 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0) {
		snprintf(why, whylen, "the server closed the connection after the SSLRequest%s%s",
			 n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		return -1;
	}
	if (n > 1 && (ans[0] == 'S' || ans[0] == 'N')) {
		/* PostgreSQL sends nothing more before the handshake or the startup packet. */
		snprintf(why, whylen, "%.80s:%d sent data after its '%c' to the SSLRequest, before %s: refused "
			 "(a man in the middle injecting plain text? CVE-2021-23222)", host, port, ans[0],
			 ans[0] == 'S' ? "TLS began" : "the startup packet");
		return -1;
	}
	if (ans[0] == 'N') {
		if (s->tls_mode == SSLMODE_PREFER) {
			if (s->ssl != NULL)
				SSL_free(s->ssl);
			s->ssl = NULL;
			log_debug("server %s:%d: no TLS (it answered 'N'), server_sslmode = prefer: plain text",
				  host, port);
			return startup_next(s, why, whylen);
		}
		snprintf(why, whylen, "%.80s:%d does not accept TLS and server_sslmode = %s\nHINT: turn TLS on for "
			 "PostgreSQL (the agents' [tls]), or set server_sslmode = prefer", host, port, mode);
		return -1;
	}
	if (ans[0] != 'S') {
		snprintf(why, whylen, "%.80s:%d answered the SSLRequest with '%c' (server_sslmode = %s): not a "
			 "PostgreSQL server that speaks TLS", host, port, ans[0] >= 32 && ans[0] < 127 ? ans[0] : '?', mode);
		return -1;
	}
	if (s->ssl == NULL) {
		snprintf(why, whylen, "cannot start TLS to %.80s:%d (see the log)", host, port);
		return -1;
	}
	s->tls_phase = SERVER_TLS_HANDSHAKE;
	return 0;
}

/* Why the handshake failed, for the pool's error and the log (the mode and the file say what to check). */
static void handshake_failed(struct server *s, int rc, char *why, size_t whylen)
{
	const char *host = s->target.host, *mode = proxy_sslmode_name(s->tls_mode);
	int port = s->target.port;
	long v = SSL_get_verify_result(s->ssl);
	char text[300];
	tls_error_text(text, sizeof(text));
	if (s->tls_mode >= SSLMODE_VERIFY_CA && v != X509_V_OK) {
		if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
			snprintf(why, whylen, "the certificate of %.80s:%d does not name %.80s (server_sslmode = %s "
				 "checks the address the proxy dialled, from etcd)", host, port, host, mode);
		else
			snprintf(why, whylen, "the certificate of %.80s:%d is not trusted: %s (server_sslmode = %s, "
				 "server_ca_file = %.100s)", host, port, X509_verify_cert_error_string(v), mode,
				 s->px->cfg.tls_server_ca_file);
	} else if (rc == 0) {
		snprintf(why, whylen, "%.80s:%d closed the connection during the TLS handshake (server_sslmode = %s; "
			 "its log says why)", host, port, mode);
	} else {
		snprintf(why, whylen, "TLS handshake with %.80s:%d failed (server_sslmode = %s): %s", host, port,
			 mode, text);
	}
}

int server_tls_step(struct server *s, uint32_t events, char *why, size_t whylen)
{
	if (s->tls_phase == SERVER_TLS_ASKED) {
		int r = answer_step(s, why, whylen);
		if (r != 0 || s->tls_phase != SERVER_TLS_HANDSHAKE)
			return r;
	}
	ERR_clear_error();
	errno = 0;
	int r = SSL_connect(s->ssl);
	if (r == 1) {
		log_debug("server %s:%d: %s, cipher %s", s->target.host, s->target.port, SSL_get_version(s->ssl),
			  SSL_get_cipher(s->ssl));
		return startup_next(s, why, whylen);
	}
	int err = SSL_get_error(s->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		s->tls_want = err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		proxy_watch(s->px, &s->tag, s->tls_want);
		return 0;
	}
	unsigned long first = ERR_peek_error();
	bool closed = err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && first == 0) ||
		      (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
	handshake_failed(s, closed ? 0 : -1, why, whylen);
	return -1;
}

void server_tls_end(struct server *s)
{
	sb_free(&s->startup);
	if (s->ssl == NULL)
		return;
	/* A close_notify if it goes out at once; never wait for the peer's. */
	if (SSL_is_init_finished(s->ssl))
		(void)SSL_shutdown(s->ssl);
	SSL_free(s->ssl);
	s->ssl = NULL;
	ERR_clear_error();
}
