/*
 * server.c — connections to PostgreSQL: connect, TLS as server_sslmode says
 * (server_tls.c), log in (SCRAM, md5 or cleartext with the password from the
 * users file, or SCRAM keys passed through from a client, or an md5 hash: see
 * creds.h), check the role (in_hot_standby), then forward.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "common/log.h"
#include "common/util.h"
#include "pgproto/pgproto.h"
#include "proxy/creds.h"
#include "proxy/server.h"
#include "proxy/server_tls.h"
#include "proxy/tls.h"

static struct server *connect_with(struct pool *p, const struct route_target *t, const struct pgp_param *params,
				   size_t nparams, char *why, size_t whylen)
{
	struct proxy *px = p->px;
	char port[16];
	snprintf(port, sizeof(port), "%d", t->port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV}, *ai = NULL;
	int rc = getaddrinfo(t->host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", t->host, gai_strerror(rc));
		return NULL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		snprintf(why, whylen, "cannot create a socket");
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc != 0 && errno != EINPROGRESS) {
		snprintf(why, whylen, "cannot connect to %s:%d: %s", t->host, t->port, strerror(errno));
		close(fd);
		return NULL;
	}
	struct server *s = xcalloc(1, sizeof(*s));
	s->tag.kind = FD_SERVER;
	s->tag.fd = fd;
	s->px = px;
	s->pool = p;
	s->target = *t;
	s->created_ms = s->used_ms = px->now_ms;
	s->status = 'I';
	sb_init(&s->out);
	p->nservers++;
	server_set_state(s, SV_CONNECTING);
	/* The startup packet waits in the out buffer until the connection is up. */
	pgp_build_startup(&s->out, 0, params, nparams);
	server_tls_request(s);   /* an SSLRequest first, unless server_sslmode = disable */
	proxy_watch(px, &s->tag, EPOLLOUT | EPOLLIN);
	log_debug("server %s:%d: connecting for %s@%s", t->host, t->port, p->user, p->database);
	return s;
}

/*
 * A read-only pool's servers are read-only sessions: on a standby that changes
 * nothing, and on the leader (ro_fallback_leader, no standby within
 * ro_max_lag) a write through the read-only port fails with 25006 as it would
 * on a standby, rather than run. A guard against mistakes, not a permission:
 * a client may SET it off (roles are the permission).
 */
#define RO_PARAM {"default_transaction_read_only", "on"}

struct server *server_connect(struct pool *p, const struct route_target *t, char *why, size_t whylen)
{
	struct pgp_param params[4] = {
		{"user", p->user}, {"database", p->database}, {"application_name", "pgha-proxy"}, RO_PARAM,
	};
	return connect_with(p, t, params, p->ro ? 4 : 3, why, whylen);
}

struct server *server_connect_probe(struct client *c, const struct pgp_param *vals, size_t nvals,
				    const struct route_target *t, char *why, size_t whylen)
{
	struct pool *p = c->pool;
	struct pgp_param *params = xcalloc(nvals + 4, sizeof(*params));
	size_t n = 0;
	bool app = false;
	params[n++] = (struct pgp_param){"user", p->user};
	params[n++] = (struct pgp_param){"database", p->database};
	for (size_t i = 0; i < nvals; i++) {
		params[n++] = vals[i];
		app = app || strcasecmp(vals[i].name, "application_name") == 0;
	}
	if (!app)
		params[n++] = (struct pgp_param){"application_name", "pgha-proxy"};
	if (p->ro)
		params[n++] = (struct pgp_param)RO_PARAM;
	struct server *s = connect_with(p, t, params, n, why, whylen);
	free(params);
	if (s == NULL)
		return NULL;
	s->probe = true;
	s->probe_for = c;
	c->probe = s;
	p->probing = true;
	for (size_t i = 0; i < nvals; i++) {
		sb_append(&s->probe_sent, vals[i].name, strlen(vals[i].name) + 1);
		sb_append(&s->probe_sent, vals[i].value, strlen(vals[i].value) + 1);
	}
	return s;
}

bool server_row_lsn(const struct pgp_msg *m, uint64_t *out)
{
	size_t n;
	struct pgp_iter it;
	struct pgp_value v;
	struct pgha_err e;
	char text[64], tail;
	unsigned hi, lo;
	if (pgp_parse_data_row(m, &n, &it, &e) != 0 || n != 1 || !pgp_next_value(&it, &v) || v.len <= 0 ||
	    (size_t)v.len >= sizeof(text))
		return false;
	memcpy(text, v.data, (size_t)v.len);
	text[v.len] = '\0';
	if (sscanf(text, "%X/%X%c", &hi, &lo, &tail) != 2)
		return false;
	*out = ((uint64_t)hi << 32) | lo;
	return true;
}

void server_lsn_answered(struct server *s, uint64_t lsn)
{
	struct proxy *px = s->px;
	if (lsn > px->lsn_known)
		px->lsn_known = lsn;
	if (s->lsn_seq > px->lsn_known_seq)
		px->lsn_known_seq = s->lsn_seq;
}

/* The answer to an LSN request its client left behind (client_unlink_server). */
static void lsn_answer(struct server *s, const struct pgp_msg *m)
{
	uint64_t lsn;
	if (server_row_lsn(m, &lsn))
		server_lsn_answered(s, lsn);
}

void server_forget_lsn(struct server *s)
{
	if (s->lsn_seq == 0)
		return;
	if (s->lsn_seq > s->px->lsn_lost)
		s->px->lsn_lost = s->lsn_seq;
	s->lsn_seq = 0;
	s->px->ryw_wake = true;
}

void server_close(struct server *s, const char *why)
{
	if (s->state == SV_CLOSING)
		return;
	log_debug("server %s:%d (pid %d) closed: %s", s->target.host, s->target.port, s->backend_pid, why);
	server_forget_lsn(s);
	server_set_state(s, SV_CLOSING);
	proxy_unwatch(s->px, &s->tag);
	server_tls_end(s);
	close(s->tag.fd);
	if (s->sasl)
		scram_client_free(s->sasl);
	free(s->prepared);
	free(s->prepared_used);
	for (int k = 0; k < NTRACKED; k++)
		free(s->param[k]);
	sb_free(&s->probe_sent);
	if (s->probe)
		s->pool->probing = false;
	if (s->probe_for != NULL)
		s->probe_for->probe = NULL;
	pbuf_free(&s->in);
	sb_free(&s->out);
	sb_free(&s->login_params);
	sess_set_free(&s->sess);
	free(s);
}

/* Send what is queued; SERVER_FAILED (why) if the send failed. */
static enum server_next server_flush_out(struct server *s, char *why, size_t whylen)
{
	if (server_send(s) >= 0)
		return SERVER_WAIT;
	snprintf(why, whylen, "%s", strerror(errno));
	return SERVER_FAILED;
}

static enum server_next failed(char *why, size_t whylen, const char *text)
{
	snprintf(why, whylen, "%s", text);
	return SERVER_FAILED;
}

/* ---- login ---------------------------------------------------------- */

/* Nothing known for the pool's user answers what the server asks: say what, and what to do. */
static int no_login(const struct server *s, const char *asks, const struct server_creds *sc, char *why,
		    size_t whylen)
{
	const char *user = s->pool->user;
	if (sc->secret_kind == NULL)
		snprintf(why, whylen, "cannot log in to PostgreSQL as \"%s\": the server asks for %s and the "
			 "proxy has no password for this user (not in the users file%s)", user, asks,
			 s->px->cfg.auth_user[0] ? ", and auth_query did not find it" : "");
	else if (sc->no_keys != NULL && strcmp(asks, SCRAM_MECHANISM) == 0)
		snprintf(why, whylen, "cannot log in to PostgreSQL as \"%s\" with SCRAM: %s holds only a "
			 "SCRAM verifier for this user, and %s (HINT: log in as this user through the proxy "
			 "first, or put its plaintext password in the users file)", user, sc->source,
			 sc->no_keys);
	else
		snprintf(why, whylen, "cannot log in to PostgreSQL as \"%s\": the server asks for %s, but %s "
			 "holds only %s for this user, which cannot answer it (HINT: put its plaintext "
			 "password in the users file, or make the method in the server's pg_hba.conf match "
			 "the stored secret)", user, asks, sc->source, sc->secret_kind);
	return -1;
}

/* The server asks for a method server_auth_methods does not allow: nothing is sent. */
static int refuse_method(const struct server *s, const char *asks, const char *method, char *why,
			 size_t whylen)
{
	snprintf(why, whylen, "refused to log in to %.80s:%d as \"%.63s\": the server asks for %s, which "
		 "[auth] server_auth_methods does not allow (nothing was sent)\nHINT: pgha's PostgreSQL asks "
		 "for SCRAM: check the member's address in etcd; allow %s only for a server of yours",
		 s->target.host, s->target.port, s->pool->user, asks, method);
	return -1;
}

/*
 * Answer the server's authentication request as the pool's user: a plaintext
 * password from the users file answers anything; else an md5 hash answers an
 * md5 challenge, and SCRAM keys learned from a client answer SCRAM when the
 * server stores the same verifier (creds.c).
 */
static int login_auth(struct server *s, const struct pgp_msg *m, char *why, size_t whylen)
{
	struct pgp_auth a;
	struct pgha_err e;
	if (pgp_parse_auth(m, &a, &e) != 0) {
		snprintf(why, whylen, "%.400s", e.msg);
		return -1;
	}
	const char *user = s->pool->user;
	struct server_creds sc;
	char *out = NULL;
	switch (a.code) {
	case PGP_AUTH_OK:
		return 0;
	case PGP_AUTH_CLEARTEXT:
		if (!(s->px->cfg.server_auth_mask & SERVER_AUTH_PASSWORD))
			return refuse_method(s, "the password in clear text", "password", why, whylen);
		creds_for_server(s->px, user, &sc);
		if (sc.password == NULL)
			return no_login(s, "a cleartext password", &sc, why, whylen);
		pgp_build_password(&s->out, sc.password);
		return 0;
	case PGP_AUTH_MD5: {
		creds_for_server(s->px, user, &sc);
		char resp[PGMD5_LEN + 1];
		int rc;
		if (sc.password != NULL && !(s->px->cfg.server_auth_mask & SERVER_AUTH_MD5))
			return refuse_method(s, "an md5 answer computed from the password", "md5", why, whylen);
		if (sc.password != NULL)
			rc = pgmd5_challenge_response(sc.password, user, a.md5_salt, resp, &e);
		else if (sc.md5_hash != NULL)
			rc = pgmd5_response_from_hash(sc.md5_hash, a.md5_salt, resp, &e);
		else
			return no_login(s, "an md5 password", &sc, why, whylen);
		if (rc != 0) {
			snprintf(why, whylen, "md5 login as \"%s\": %.380s", user, e.msg);
			return -1;
		}
		pgp_build_password(&s->out, resp);
		explicit_bzero(resp, sizeof(resp));
		return 0;
	}
	case PGP_AUTH_SASL: {
		if (!(s->px->cfg.server_auth_mask & SERVER_AUTH_SCRAM))
			return refuse_method(s, "SCRAM-SHA-256", "scram-sha-256", why, whylen);
		creds_for_server(s->px, user, &sc);
		int rc;
		if (sc.password != NULL)
			rc = scram_client_first(sc.password, (struct scram_client **)&s->sasl, &out, &e);
		else if (sc.keys != NULL)
			rc = scram_client_first_with_keys(sc.keys, (struct scram_client **)&s->sasl, &out, &e);
		else
			return no_login(s, SCRAM_MECHANISM, &sc, why, whylen);
		if (rc != 0) {
			snprintf(why, whylen, "SCRAM login as \"%s\": %.380s", user, e.msg);
			return -1;
		}
		pgp_build_sasl_initial_response(&s->out, SCRAM_MECHANISM, out, strlen(out));
		scram_free_msg(out);
		return 0;
	}
	case PGP_AUTH_SASL_CONTINUE:
		if (s->sasl == NULL ||
		    scram_client_continue(s->sasl, (const char *)a.data, a.data_len, &out, &e) != 0) {
			snprintf(why, whylen, "cannot log in to PostgreSQL as \"%s\" with SCRAM: %.380s", user,
				 s->sasl ? e.msg : "unexpected SASLContinue");
			return -1;
		}
		pgp_build_sasl_response(&s->out, out, strlen(out));
		scram_free_msg(out);
		return 0;
	case PGP_AUTH_SASL_FINAL:
		if (s->sasl == NULL || scram_client_verify(s->sasl, (const char *)a.data, a.data_len, &e) != 0) {
			snprintf(why, whylen, "SCRAM login as \"%s\": the server's signature is wrong: %.300s",
				 user, s->sasl ? e.msg : "");
			return -1;
		}
		scram_client_free(s->sasl);
		s->sasl = NULL;
		return 0;
	default:
		snprintf(why, whylen, "the server asks for an authentication method pgha does not speak (%d)", a.code);
		return -1;
	}
}

void server_param(struct server *s, const struct pgp_msg *m)
{
	struct pgp_param p;
	struct pgha_err e;
	if (pgp_parse_parameter_status(m, &p, &e) != 0)
		return;
	if (strcmp(p.name, "in_hot_standby") == 0)
		s->standby = strcmp(p.value, "on") == 0;
	int k = tracked_index(p.name);
	if (k >= 0) {
		free(s->param[k]);
		s->param[k] = xstrdup(p.value);
	}
	if (s->state == SV_LOGIN && (!s->pool->have_params || s->probe)) {
		/* Clients get the parameters of the first server the pool logged in to (a probe's: client.c). */
		sb_append(&s->login_params, (const char *)m->body - 5, m->total_len);
	}
}

/* The DataRow of the system identifier query: this cluster's, or the server is not used. */
static int check_sysid(struct server *s, const struct pgp_msg *m, char *why, size_t whylen)
{
	size_t n;
	struct pgp_iter it;
	struct pgp_value v;
	struct pgha_err e;
	char text[32] = "";
	if (pgp_parse_data_row(m, &n, &it, &e) == 0 && n == 1 && pgp_next_value(&it, &v) && v.len > 0 &&
	    v.len < (int32_t)sizeof(text))
		memcpy(text, v.data, (size_t)v.len);
	char want[32];
	snprintf(want, sizeof(want), "%llu", (unsigned long long)s->px->topo.sysid);
	if (strcmp(text, want) == 0)
		return 0;
	snprintf(why, whylen, "%.80s:%d is not a server of this cluster: its system identifier is %.31s, the "
		 "cluster's is %s (initialize key): not used\nHINT: a member record in etcd names a wrong "
		 "address, or was written by someone else", s->target.host, s->target.port,
		 text[0] ? text : "(unreadable)", want);
	return -1;
}

static enum server_next login_step(struct server *s, char *why, size_t whylen)
{
	struct pbuf *b = &s->in;
	for (;;) {
		struct pgp_msg m;
		struct pgha_err e;
		int r = pgp_frame(b->data + b->start, pbuf_len(b), 0, &m, &e);
		if (r == PGP_NEED_MORE)
			break;
		if (r != PGP_OK)
			return failed(why, whylen, e.msg);
		b->start += m.total_len;
		switch (m.type) {
		case 'R':
			if (login_auth(s, &m, why, whylen) != 0)
				return SERVER_FAILED;
			break;
		case 'S':
			server_param(s, &m);
			break;
		case 'K': {
			struct pgp_backend_key k;
			if (pgp_parse_backend_key_data(&m, &k, &e) == 0) {
				s->backend_pid = k.pid;
				memcpy(s->backend_key, k.key, k.key_len < 4 ? k.key_len : 4);
			}
			break;
		}
		case 'E': {
			struct pgp_notice n;
			if (pgp_parse_notice(&m, &n, &e) == 0)
				snprintf(why, whylen, "login refused: %s: %.400s", n.sqlstate, n.message);
			else
				snprintf(why, whylen, "login refused: %.400s", e.msg);
			return SERVER_FAILED;
		}
		case 'N':
			break;
		case 'T':   /* the answer to the system identifier query: its row description ... */
		case 'C':   /* ... and its end */
			if (s->verify != (m.type == 'T' ? 1 : 2)) {
				snprintf(why, whylen, "unexpected message '%c' during login", m.type);
				return SERVER_FAILED;
			}
			break;
		case 'D':
			if (s->verify != 1)
				return failed(why, whylen, "unexpected data row during login");
			if (check_sysid(s, &m, why, whylen) != 0)
				return SERVER_FAILED;
			s->verify = 2;
			break;
		case 'Z':
			if (!s->pool->ro && s->standby)
				return failed(why, whylen, "it is a standby (in_hot_standby = on): no writes go there");
			if (s->verify == 0) {
				/* Logged in: before any work, the server shows it belongs to this cluster. */
				if (s->px->topo.sysid == 0)
					return failed(why, whylen, "the cluster's system identifier is not known yet (no "
						      "initialize key in etcd): servers get no work until it is");
				s->verify = 1;
				pgp_build_query(&s->out, "SELECT system_identifier FROM pg_catalog.pg_control_system()");
				break;
			}
			if (s->verify != 2)
				return failed(why, whylen, "the server did not show its system identifier");
			s->used_ms = s->px->now_ms;
			pbuf_compact(b);
			log_debug("server %s:%d logged in (backend pid %d)", s->target.host, s->target.port,
				  s->backend_pid);
			return SERVER_READY;
		default:
			snprintf(why, whylen, "unexpected message '%c' during login", m.type);
			return SERVER_FAILED;
		}
	}
	return server_flush_out(s, why, whylen);
}

/* ---- forwarding ------------------------------------------------------ */

enum server_next server_event(struct server *s, uint32_t events, char *why, size_t whylen)
{
	struct proxy *px = s->px;
	if (events & (EPOLLERR | EPOLLHUP) && s->state == SV_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(s->tag.fd, SOL_SOCKET, SO_ERROR, &err, &len);
		snprintf(why, whylen, "cannot connect to %s:%d: %s", s->target.host, s->target.port,
			 strerror(err ? err : ECONNREFUSED));
		return SERVER_FAILED;
	}
	if (s->state == SV_CONNECTING && (events & EPOLLOUT)) {
		server_set_state(s, SV_LOGIN);
		proxy_watch(px, &s->tag, EPOLLIN);
	}
	if (s->tls_phase != SERVER_TLS_DONE) {
		/* Connected: the SSLRequest's answer, then the handshake; the startup packet goes after. */
		if (s->state == SV_CONNECTING)
			return SERVER_WAIT;
		return server_tls_step(s, events, why, whylen) < 0 ? SERVER_FAILED : SERVER_WAIT;
	}
	if (events & EPOLLOUT) {
		if (s->client)
			return SERVER_CLIENT_OUT;
		if (s->out.len > s->out_off && server_flush_out(s, why, whylen) != SERVER_WAIT)
			return SERVER_FAILED;
		if (s->out.len == s->out_off)
			proxy_watch(px, &s->tag, EPOLLIN);
		return SERVER_WAIT;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return SERVER_WAIT;
	if (s->state == SV_LOGIN || s->state == SV_CONNECTING) {
		ssize_t n = server_read(s, &s->in);
		if (n == 0 || n == -1)
			return failed(why, whylen, n == 0 ? "the server closed the connection during login"
						     : strerror(errno));
		return login_step(s, why, whylen);
	}
	if (s->client != NULL) {
		s->in.drained = false;   /* EPOLLIN: there is something to read */
		return SERVER_CLIENT_IN;
	}
	if (s->reset_needed) {
		/* Session mode: the reset query runs; back to the pool at its ReadyForQuery. */
		ssize_t rn = server_read(s, &s->in);
		if (rn == 0 || rn == -1)
			return failed(why, whylen, "the server closed the connection during reset");
		struct pgp_msg m;
		struct pgha_err e;
		while (pgp_frame(s->in.data + s->in.start, pbuf_len(&s->in), 0, &m, &e) == PGP_OK) {
			s->in.start += m.total_len;
			if (m.type == 'E')
				return failed(why, whylen, "the reset query failed");
			if (m.type == 'D' && s->reset_lsn_at == 0)
				lsn_answer(s, &m);
			if (m.type == 'Z' && m.body_len == 1) {
				s->status = (char)m.body[0];
				if (s->reset_lsn_at >= 0 && s->reset_lsn_at-- == 0) {
					s->lsn_seq = 0;   /* answered */
					s->px->ryw_wake = true;
				}
				if (--s->reset_needed > 0)
					continue;
				s->in.start = s->in.end = 0;
				return SERVER_RESET_DONE;
			}
		}
		return SERVER_WAIT;
	}
	/* Idle in the pool: anything but EOF is unexpected. */
	ssize_t n = server_read(s, &s->in);
	if (n == 0 || n == -1)
		return failed(why, whylen, "the server closed an idle connection");
	if (n > 0) {
		/* A ParameterStatus (e.g. in_hot_standby after a promotion) or a notice. */
		struct pgp_msg m;
		struct pgha_err e;
		while (pgp_frame(s->in.data + s->in.start, pbuf_len(&s->in), 0, &m, &e) == PGP_OK) {
			if (m.type == 'S')
				server_param(s, &m);
			else if (m.type == 'E')
				return failed(why, whylen, "the server sent an error to an idle connection (shutting down?)");
			s->in.start += m.total_len;
		}
		if (!s->pool->ro && s->standby)
			return failed(why, whylen, "it became a standby");
	}
	return SERVER_WAIT;
}

const char *server_timed_out(const struct server *s)
{
	const struct proxy_config *cfg = &s->px->cfg;
	int64_t now = s->px->now_ms;
	if ((s->state == SV_CONNECTING || s->state == SV_LOGIN) &&
	    now - s->created_ms > cfg->server_connect_timeout_ms)
		return "connect/login timed out";
	if (s->state == SV_ACTIVE && s->stale && !s->pool->ro && now - s->stale_ms > cfg->hold_timeout_ms) {
		/*
		 * Its transaction on an old leader did not end (frozen, cut off: that leader can
		 * no longer commit anything that counts): the client gets 08006 and moves on.
		 */
		return "the leader changed and the transaction on the old one did not end within hold_timeout";
	}
	if (s->state != SV_IDLE)
		return NULL;
	if (s->stale)
		return "its target is no longer the right one";
	if (cfg->server_idle_timeout_ms > 0 && now - s->used_ms > cfg->server_idle_timeout_ms)
		return "idle timeout";
	if (cfg->server_lifetime_ms > 0 && now - s->created_ms > cfg->server_lifetime_ms)
		return "lifetime reached";
	return NULL;
}
