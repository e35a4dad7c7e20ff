/*
 * tls_reload.c — [tls] files at start and on SIGHUP: one certificate and key
 * for PostgreSQL, the agent API (HTTPS when [tls] api = on) and the calls to
 * other members' APIs (verified against ca_file, our certificate presented).
 *
 * A reload checks the new files first (common/tlsfile.h) and builds
 * everything it needs in memory before it changes anything: a bad file is
 * logged with its name and the reason, and PostgreSQL, the API and the calls
 * keep the certificate they had. Connections already open finish with the
 * old one.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/tlsfile.h"
#include "common/util.h"

/* "Jan  2 2027 03:04:05 UTC" style text of a unix time, for log lines. */
static void when_text(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

int agent_tls_check(const struct agent_config *c, struct pgha_err *e)
{
	if (c->tls_cert_file[0] == '\0')
		return 0;
	if (tls_files_check(c->tls_cert_file, c->tls_key_file, c->tls_ca_file, e) != 0)
		return -1;
	/* What peers verify: the API's host (libcurl), PostgreSQL's with a CA (verify-full). */
	if (c->api_tls && tls_cert_check_host(c->tls_cert_file, "[node] api_address", c->api_host, e) != 0)
		return -1;
	if (c->tls_ca_file[0] != '\0' &&
	    tls_cert_check_host(c->tls_cert_file, "[postgresql] address", c->address_host, e) != 0)
		return -1;
	return 0;
}

/*
 * Everything the [tls] files give, built in memory: *ctx (the API's server
 * context, NULL when the API is plain HTTP), *peer (the calls' CA and client
 * certificate; *peer_on false: plain libcurl defaults) and *not_after.
 * Nothing of the agent changes here.
 */
static int tls_build(const struct agent *a, SSL_CTX **ctx, struct httpc_tls *peer, bool *peer_on,
		     int64_t *not_after, struct pgha_err *e)
{
	const struct agent_config *c = &a->cfg;
	bool have_cert = c->tls_cert_file[0] != '\0';
	*ctx = NULL;
	memset(peer, 0, sizeof(*peer));
	*peer_on = false;
	*not_after = 0;
	if (agent_tls_check(c, e) != 0 || (have_cert && tls_cert_not_after(c->tls_cert_file, not_after, e) != 0))
		return -1;
	if (c->api_tls) {
		*ctx = tls_server_ctx_new(c->tls_cert_file, c->tls_key_file,
					  c->tls_api_client_certs ? c->tls_ca_file : NULL, e);
		if (*ctx == NULL)
			return -1;
	}
	/*
	 * The calls verify https:// peers against ca_file whenever there is one
	 * (a member without a certificate of its own may still call members that
	 * have one), and present cert_file when there is one (for api_client_certs).
	 */
	if (c->api_tls || c->tls_ca_file[0] != '\0') {
		if (httpc_tls_load(peer, c->tls_ca_file, c->tls_cert_file, c->tls_key_file, e) != 0) {
			SSL_CTX_free(*ctx);
			*ctx = NULL;
			return -1;
		}
		peer->https_only = c->api_tls;
		*peer_on = true;
	}
	return 0;
}

int agent_tls_start(struct agent *a, SSL_CTX **api_ctx, struct pgha_err *e)
{
	*api_ctx = NULL;
	if (a->cfg.tls_cert_file[0] == '\0' && a->cfg.tls_ca_file[0] == '\0')
		return 0;
	if (tls_build(a, api_ctx, &a->atls.peer, &a->atls.peer_on, &a->atls.not_after, e) != 0)
		return err_wrap(e, "[tls]");
	if (a->atls.not_after == 0)
		return 0;
	char when[64];
	when_text(a->atls.not_after, when, sizeof(when));
	log_info("[tls] certificate %s valid until %s; the API serves %s%s", a->cfg.tls_cert_file, when,
		 a->cfg.api_tls ? "HTTPS" : "plain HTTP ([tls] api = off)",
		 a->cfg.tls_api_client_certs ? " to clients with a certificate of ca_file" : "");
	return 0;
}

void agent_tls_reload(struct agent *a)
{
	const struct agent_config *c = &a->cfg;
	if (c->tls_cert_file[0] == '\0' && c->tls_ca_file[0] == '\0') {
		log_info("SIGHUP: no [tls] files configured, nothing to reload");
		return;
	}
	SSL_CTX *ctx;
	struct httpc_tls peer;
	bool peer_on;
	int64_t not_after;
	struct pgha_err e;
	if (tls_build(a, &ctx, &peer, &peer_on, &not_after, &e) != 0) {
		log_error("SIGHUP: [tls] reload refused: %s\n"
			  "PostgreSQL, the API and the calls to other members keep the certificate in use", e.msg);
		return;
	}
	/* PostgreSQL's copies: written one by one, so a failure can leave a mix, which it must not load. */
	if (pg_write_tls_files(&a->node, &a->tls, &e) != 0) {
		log_error("SIGHUP: [tls] reload failed copying the files for PostgreSQL: %s\n"
			  "HINT: PostgreSQL is not reloaded and keeps the certificate it loaded; fix and send SIGHUP again",
			  e.msg);
		SSL_CTX_free(ctx);
		httpc_tls_free(&peer);
		return;
	}
	const char *pg = "PostgreSQL (at its next start: it is not running)";
	if (a->pg.conn != NULL) {
		if (node_reload(a, &e) != 0) {
			log_warn("SIGHUP: [tls] reloading PostgreSQL: %s; it loads the new files at its next reload or "
				 "start", e.msg);
			pg = NULL;
		} else {
			pg = "PostgreSQL";
		}
	}
	if (ctx != NULL && a->api_server != NULL)
		api_set_tls(a->api_server, ctx);
	else
		SSL_CTX_free(ctx);
	httpc_tls_free(&a->atls.peer);
	a->atls.peer = peer;
	a->atls.peer_on = peer_on;
	a->atls.not_after = not_after;
	char when[64] = "-";
	if (not_after > 0)
		when_text(not_after, when, sizeof(when));
	log_info("SIGHUP: [tls] reloaded %s (valid until %s) for %s%s%s", c->tls_cert_file[0] ? c->tls_cert_file :
		 c->tls_ca_file, when, pg ? pg : "", pg && peer_on ? ", " : "",
		 c->api_tls ? "the API and the calls to other members" : peer_on ? "the calls to other members" : "");
}

void agent_tls_free(struct agent *a)
{
	httpc_tls_free(&a->atls.peer);
	a->atls.peer_on = false;
}
