/*
 * client.c — application connections: startup (SSL/GSSENC refused with 'N',
 * CancelRequest forwarded), authentication (SCRAM-SHA-256, md5 or trust
 * against the users file or an auth_query answer, see creds.h), then the
 * forwarding loop of transaction or session pooling.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "common/log.h"
#include "common/util.h"
#include "pgproto/pgproto.h"
#include "proxy/admin.h"
#include "proxy/cancel.h"
#include "proxy/client.h"
#include "proxy/metrics.h"
#include "proxy/creds.h"
#include "proxy/hold.h"
#include "proxy/pool.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "proxy/sess.h"
#include "proxy/split.h"
#include "proxy/tls.h"

/* ---- lifecycle -------------------------------------------------------- */

/* Is name in the comma-separated list? (case-insensitive, blanks ignored) */
static bool list_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	while (*list) {
		while (*list == ' ' || *list == ',')
			list++;
		size_t len = strcspn(list, ", ");
		if (len == n && strncasecmp(list, name, n) == 0)
			return true;
		list += len;
	}
	return false;
}

static int flush_out(struct client *c);
static void close_server(struct server *s, const char *why);
static void client_close_when_sent(struct client *c, const char *why);
/*
 * c's server is gone (it died, ended the session with FATAL, or was closed for
 * it): its transaction is lost, not its connection. Told at once (08006, then
 * ReadyForQuery) unless it sits idle inside the transaction (the server's last
 * ReadyForQuery said 'T' or 'E', nothing is owed, nothing is buffered): then at
 * its next request, never unsolicited.
 */
static void client_server_lost(struct client *c, char server_status, const char *why);
/* FATAL error sqlstate/msg to the client, then client_close_when_sent(). */
static void client_fail(struct client *c, const char *sqlstate, const char *msg);
static void client_got_server(struct client *c, struct server *s);
static void c2s(struct client *c);
static void ryw_go(struct client *c, struct server *s);
static void client_login_done(struct client *c);
static void client_auth_lookup_done(struct client *c, const char *secret, const char *failure);
static void pool_failed(struct pool *p, const char *why);

void client_accept(struct proxy *px, int fd, bool ro)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct client *c = xcalloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_UNIX) {
		snprintf(c->addr, sizeof(c->addr), "[local]");   /* as PostgreSQL names a unix-socket client */
	} else if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		char host[64] = "?", port[16] = "";
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(c->addr, sizeof(c->addr), "%.63s:%.15s", host, port);
	}
	c->tag.kind = FD_CLIENT;
	c->tag.fd = fd;
	c->px = px;
	c->ro = ro;
	c->since_ms = px->now_ms;
	client_set_state(c, CL_STARTUP);
	sb_init(&c->out);
	px->nclients++;
	c->preauth = true;
	px->npreauth++;
	px->stats_clients_total++;
	proxy_watch(px, &c->tag, EPOLLIN);
	/*
	 * Connections that have not logged in have their own limit and a short
	 * timeout (client_login_timeout): sockets that never send a startup
	 * packet cannot fill max_client_conn, so logged-in clients and new logins
	 * go on.
	 */
	if (px->npreauth > px->cfg.max_preauth_conn) {
		/* No log line each (under a flood that would be the cost): the tick sums them up. */
		px->stats_preauth_refused++;
		pgp_build_error(&c->out, "FATAL", "53300", "too many connections logging in at once (max_preauth_conn)",
				NULL, NULL);
		metrics_count_error(px, "53300");
		if (flush_out(c) >= 0)
			client_close(c, "over max_preauth_conn");
	}
}

/* Once a second: how many connections max_preauth_conn turned away since the last report. */
void client_report_refused(struct proxy *px)
{
	uint64_t *reported = &px->stats_preauth_refused_logged;
	if (px->stats_preauth_refused == *reported)
		return;
	log_warn("%llu connection(s) refused in the last second: %d connections were logging in already "
		 "(max_preauth_conn; each has client_login_timeout = %d ms to finish)",
		 (unsigned long long)(px->stats_preauth_refused - *reported), px->cfg.max_preauth_conn,
		 px->cfg.client_login_timeout_ms);
	*reported = px->stats_preauth_refused;
}

/*
 * Would c, logged in, go past max_client_conn? Then it is refused (53300) and
 * closed. Checked after the startup packet, so that libpq shows the message
 * (an error in answer to its SSLRequest loses it), and again at the login.
 */
static bool refused_over_max_client_conn(struct client *c)
{
	struct proxy *px = c->px;
	int logged_in = px->nclients - px->npreauth + (c->preauth ? 1 : 0);
	if (logged_in <= px->cfg.max_client_conn)
		return false;
	client_send_error(c, "53300", "too many client connections (max_client_conn)", true);
	return true;
}

/* c has authenticated: it counts in max_client_conn now. false: refused (closed). */
static bool client_logged_in(struct client *c)
{
	c->preauth = false;
	c->px->npreauth--;
	return !refused_over_max_client_conn(c);
}

static void client_free(struct client *c)
{
	struct proxy *px = c->px;
	proxy_unwatch(px, &c->tag);
	tls_end(c);
	close(c->tag.fd);
	link_del(&c->node);
	px->nclients--;
	if (c->preauth)
		px->npreauth--;
	if (c->sasl)
		scram_server_free(c->sasl);
	if (c->probe != NULL)
		c->probe->probe_for = NULL;   /* it logs in all the same: what it learns serves others */
	relay_free(c);
	link_del(&c->ryw_node);
	for (int k = 0; k < NTRACKED; k++)
		free(c->want[k]);
	sess_set_free(&c->sess);
	sess_set_free(&c->sess_start);
	sess_set_free(&c->sess_texts);
	sess_set_free(&c->sess_read);
	sess_names_free(c->sess_custom, c->nsess_custom);
	sess_names_free(c->sess_names, c->nsess_names);
	free(c->sess_failed);
	pbuf_free(&c->in);
	sb_free(&c->out);
	free(c->lost);
	free(c);
}

/* s's client is done with it: a waiting client gets it, or the pool keeps it. */
static void give_back(struct server *s)
{
	struct client *next = pool_release(s);
	if (next != NULL)
		client_got_server(next, s);
}

/* Give the server back (or drop it when it is mid-transaction). */
static void client_unlink_server(struct client *c, bool clean)
{
	struct server *s = c->server;
	if (s == NULL)
		return;
	int lsn_at;
	/* Session mode resets a server between clients (below): not this way. */
	int owed = clean && s->status == 'I' && c->pinned == NULL && c->px->cfg.pool_mode == POOL_TRANSACTION ?
		   relay_own_queries_owed(c, &lsn_at) : -1;
	c->server = NULL;
	s->client = NULL;
	if (owed > 0) {
		/*
		 * Only the proxy's own queries are unanswered (a state read, an LSN request, its
		 * settings): the server finishes them and goes back to the pool (SERVER_RESET_DONE).
		 */
		s->reset_needed = owed;
		s->reset_lsn_at = lsn_at;   /* its LSN request is still read (server.c) */
		if (lsn_at < 0)
			server_forget_lsn(s);
		int r = s->out.len > s->out_off ? server_send(s) : 1;
		if (r < 0)
			server_close(s, "cannot send the proxy's queries");
		else
			proxy_watch(c->px, &s->tag, r == 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
		return;
	}
	if (!clean || !relay_idle(c) || s->status != 'I' || pbuf_len(&s->in) > 0) {
		/*
		 * A backend keeps running a statement after its socket closed (it looks only
		 * between statements): cancel it, so that it ends now rather than after
		 * pg_sleep(60) or a long report. The connection closes all the same, never goes
		 * back to the pool: a cancel that arrives late would hit whatever statement the
		 * backend runs next — another client's — and a closed socket makes it harmless.
		 */
		if (!relay_idle(c) && s->state == SV_ACTIVE && s->backend_pid != 0)
			cancel_backend(s);
		server_close(s, "its client left in the middle of a transaction");
		return;
	}
	if (c->pinned != NULL) {
		/* What pinned it (a LISTEN, a lock...) must not reach another client. */
		server_close(s, "its client left with session state no other client may get");
		return;
	}
	if (c->px->cfg.pool_mode == POOL_SESSION && c->px->cfg.server_reset_query[0]) {
		/* Reset before another client gets it; back to the pool at its ReadyForQuery (SERVER_RESET_DONE). */
		s->reset_needed = 1;
		s->reset_lsn_at = -1;
		sess_set_clear(&s->sess);   /* DISCARD ALL, the default reset, forgets the settings the proxy gave it */
		pgp_build_query(&s->out, c->px->cfg.server_reset_query);
		s->status = 'A';
		int r = server_send(s);
		if (r < 0)
			server_close(s, "cannot send the reset query");
		else if (r == 0)
			proxy_watch(c->px, &s->tag, EPOLLIN | EPOLLOUT);
		return;
	}
	give_back(s);
}

void client_close(struct client *c, const char *why)
{
	if (c->state == CL_CLOSING)
		return;
	log_debug("client %s (%s@%s) closed: %s", c->addr, c->user, c->database, why);
	client_set_state(c, CL_CLOSING);
	client_unlink_server(c, c->terminated);
	client_free(c);
}

/* Send what the proxy has for the client. -1: the client is gone (freed): do not touch it. */
static int flush_out(struct client *c)
{
	int r = client_send(c, &c->out, &c->out_off);
	if (r < 0) {
		client_close(c, "send failed");
		return -1;
	}
	if (r == 0)
		proxy_watch(c->px, &c->tag, c->tag.events | EPOLLIN | EPOLLOUT);
	return r;
}

void client_send_error(struct client *c, const char *sqlstate, const char *msg, bool fatal)
{
	log_info("client %s (%s@%s): %s%s", c->addr, c->user, c->database, fatal ? "FATAL " : "", msg);
	pgp_build_error(&c->out, fatal ? "FATAL" : "ERROR", sqlstate, msg, NULL, NULL);
	metrics_count_error(c->px, sqlstate);
	if (!fatal) {
		/* The connection survives (transaction pooling): the client may go on. */
		pgp_build_ready_for_query(&c->out, 'I');
		c->pending = 0;
		client_set_state(c, CL_IDLE);
		/* Whatever it had sent for the lost server is dropped with the error. */
		c->in.start = c->in.end = 0;
		relay_reset(c);
		if (c->server) {
			c->server->client = NULL;
			c->server = NULL;
		}
	}
	if (flush_out(c) < 0)
		return;
	if (fatal)
		client_close(c, msg);
}

static void client_server_lost(struct client *c, char server_status, const char *why)
{
	char msg[400];
	snprintf(msg, sizeof(msg), "server connection lost: %s", why);
	if (c->pinned != NULL || c->px->cfg.pool_mode == POOL_SESSION) {
		/*
		 * Its session held what lived only there: gone, and so is its connection, as
		 * when PostgreSQL dies under a direct client (a server's FATAL is relayed
		 * as such; this is a server that went without one: killed, cut off).
		 */
		char fatal[600];
		snprintf(fatal, sizeof(fatal), "%s (the session's %s went with it)", msg,
			 c->pinned != NULL ? c->pinned : "state");
		client_send_error(c, "08006", fatal, true);
		return;
	}
	bool idle_in_xact = (server_status == 'T' || server_status == 'E') && relay_idle(c) &&
			    pbuf_len(&c->in) == 0;
	if (!idle_in_xact) {
		client_send_error(c, "08006", msg, false);   /* it waits for answers: they end here */
		return;
	}
	/*
	 * Idle inside a transaction: nothing is owed now, and an unsolicited error would
	 * be taken by its driver as the answer to its next query. That request gets it.
	 */
	log_info("client %s (%s@%s): %s (told at its next request)", c->addr, c->user, c->database, msg);
	free(c->lost);
	c->lost = xstrdup(msg);
	c->lost_told = false;
	c->server = NULL;
	client_set_state(c, CL_IDLE);
	relay_reset(c);
	proxy_watch(c->px, &c->tag, EPOLLIN);
}

/* Largest message answered for a lost transaction (answer_lost): a request, not data. */
#define LOST_MSG_MAX (1u << 20)

/*
 * The request after client_server_lost(): answered as PostgreSQL answers what
 * follows an error: the ErrorResponse once, every message up to the Sync (or
 * the simple Query) skipped, then ReadyForQuery 'I'. 0: done, c->in holds
 * what comes next; -1: wait for more, or c is gone.
 */
static int answer_lost(struct client *c)
{
	while (c->lost != NULL) {
		struct pgp_msg m;
		struct pgha_err e;
		int r = pgp_frame(c->in.data + c->in.start, pbuf_len(&c->in), LOST_MSG_MAX, &m, &e);
		if (r == PGP_NEED_MORE) {
			pbuf_compact(&c->in);
			ssize_t n = client_read(c, &c->in);
			if (n == -2) {
				flush_out(c);   /* what it is owed so far; the rest of the request comes later */
				return -1;
			}
			if (n <= 0) {
				client_close(c, n == 0 ? "client disconnected" : "read error");
				return -1;
			}
			continue;
		}
		if (r != PGP_OK) {
			client_send_error(c, "08P01", e.msg, true);
			return -1;
		}
		c->in.start += m.total_len;
		if (m.type == 'X') {
			c->terminated = true;
			client_close(c, "client sent Terminate");
			return -1;
		}
		if (!c->lost_told) {
			pgp_build_error(&c->out, "ERROR", "08006", c->lost, NULL, NULL);
			metrics_count_error(c->px, "08006");
			c->lost_told = true;
		}
		if (m.type == 'Q' || m.type == 'S') {
			pgp_build_ready_for_query(&c->out, 'I');
			free(c->lost);
			c->lost = NULL;
		}
	}
	if (flush_out(c) < 0)
		return -1;
	return pbuf_len(&c->in) > 0 ? 0 : -1;
}

/*
 * Send what c->out holds, then close: its server ended the session with
 * FATAL, or it sent something the proxy refuses. Until the client closes
 * too, what it still sends is read and dropped, so that it gets to read the
 * error (a close with unread bytes would reset the connection and lose it).
 * It waits with the idle clients, for up to client_login_timeout.
 */
static void client_close_when_sent(struct client *c, const char *why)
{
	log_debug("client %s (%s@%s): closing once its last messages are sent: %s", c->addr, c->user,
		  c->database, why);
	client_unlink_server(c, false);
	c->close_when_sent = true;
	relay_reset(c);
	client_set_state(c, CL_IDLE);
	c->in.start = c->in.end = 0;
	proxy_watch(c->px, &c->tag, EPOLLIN);
	client_event(c, EPOLLOUT);
}

/*
 * close_when_sent: send; read and drop the rest of the refused message
 * (drop_remaining), then shut our side (the client reads the error, then the
 * end) and drop what still comes until the client closes.
 */
static void closing_event(struct client *c)
{
	if (c->out.len > c->out_off && flush_out(c) <= 0)
		return;   /* gone, or waiting for EPOLLOUT */
	proxy_watch(c->px, &c->tag, EPOLLIN);
	if (c->drop_remaining == 0)
		shutdown(c->tag.fd, SHUT_WR);
	for (int i = 0; i < 64; i++) {   /* at most 1 MiB a turn: the loop serves others too */
		c->in.start = c->in.end = 0;
		ssize_t r = client_read(c, &c->in);
		if (r == -2)
			return;
		if (r <= 0) {
			client_close(c, "closed after its last messages");
			return;
		}
		if (c->drop_remaining > 0) {
			c->drop_remaining -= (size_t)r < c->drop_remaining ? (uint32_t)r : c->drop_remaining;
			if (c->drop_remaining == 0)
				shutdown(c->tag.fd, SHUT_WR);
		}
	}
}

/* A fatal error for the client (bad input): sent, then the connection is closed. */
static void client_fail(struct client *c, const char *sqlstate, const char *msg)
{
	log_info("client %s (%s@%s): FATAL %s", c->addr, c->user, c->database, msg);
	pgp_build_error(&c->out, "FATAL", sqlstate, msg, NULL, NULL);
	metrics_count_error(c->px, sqlstate);
	client_close_when_sent(c, msg);
}

static void handle_cancel(struct client *c, const struct pgp_startup *st)
{
	if (st->cancel_key_len == 4)
		cancel_forward(c->px, st->cancel_pid, st->cancel_key, c->addr);
	client_close(c, "cancel request handled");
}

/* ---- login ------------------------------------------------------------- */

/* At most this many (parameter, value) pairs per pool are learned: past it, values are reported as sent. */
#define CANON_MAX 64

/* How servers of p report the startup value raw of parameter name; NULL: not learned yet. */
static const char *canon_find(const struct pool *p, const char *name, const char *raw)
{
	for (size_t i = 0; i < p->ncanon; i++)
		if (strcasecmp(p->canon[i].name, name) == 0 && strcmp(p->canon[i].raw, raw) == 0)
			return p->canon[i].value;
	return NULL;
}

/* Calls fn for each ParameterStatus (name, value, the whole message) in params. */
static void each_param_status(const struct strbuf *params, void (*fn)(void *arg, const struct pgp_param *prm,
								      const char *msg, size_t len), void *arg)
{
	size_t off = 0;
	struct pgp_msg m;
	struct pgha_err e;
	while (off < params->len && pgp_frame(params->data + off, params->len - off, 0, &m, &e) == PGP_OK) {
		struct pgp_param prm;
		if (pgp_parse_parameter_status(&m, &prm, &e) == 0)
			fn(arg, &prm, params->data + off, m.total_len);
		off += m.total_len;
	}
}

/*
 * c's own startup value of a reported parameter beyond the tracked ones (a
 * setting it sent, libpq's options -c included); NULL: none.
 */
static const char *own_setting(const struct client *c, const char *name)
{
	if (tracked_index(name) >= 0)
		return NULL;
	const struct sess_item *it = sess_set_get(&c->sess_start, 'g', name);
	return it != NULL ? it->value : NULL;
}

/* What a probe for c sends (canon_missing): its values of reported parameters not learned yet. */
struct canon_need {
	const struct client *c;
	struct pgp_param *vals;    /* NULL: only count them */
	size_t n;
};

static void need_setting(void *arg, const struct pgp_param *prm, const char *msg, size_t len)
{
	struct canon_need *need = arg;
	const char *raw = own_setting(need->c, prm->name);
	if (raw == NULL || strcmp(raw, prm->value) == 0 || canon_find(need->c->pool, prm->name, raw) != NULL)
		return;
	if (need->vals != NULL)
		need->vals[need->n] = (struct pgp_param){prm->name, raw};
	need->n++;
}

/*
 * c's startup values of reported parameters the pool has not seen a server
 * report yet: the tracked ones (its wants) and its other settings that the
 * pool's first login reported. Counted in need->n, and listed in need->vals
 * when it is not NULL (as many as a first call counted). The tracked ones it
 * knows become the server's spelling on the way: what the relay compares
 * with a server's values (a value spelled otherwise would be SET again at
 * every transaction).
 */
static void canon_missing(struct client *c, struct canon_need *need)
{
	struct pool *p = c->pool;
	need->c = c;
	need->n = 0;
	for (int k = 0; k < NTRACKED; k++) {
		if (c->want[k] == NULL || (p->defaults[k] != NULL && strcmp(c->want[k], p->defaults[k]) == 0))
			continue;
		const char *v = canon_find(p, tracked_params[k], c->want[k]);
		if (v != NULL) {
			char *copy = xstrdup(v);
			free(c->want[k]);
			c->want[k] = copy;
		} else {
			if (need->vals != NULL)
				need->vals[need->n] = (struct pgp_param){tracked_params[k], c->want[k]};
			need->n++;
		}
	}
	each_param_status(&p->params, need_setting, need);
}

/* A probe logged in: how its server reported each value it was sent. */
static void learn_one(void *arg, const struct pgp_param *prm, const char *msg, size_t len)
{
	struct server *s = arg;
	struct pool *p = s->pool;
	for (size_t off = 0; off < s->probe_sent.len;) {
		const char *name = s->probe_sent.data + off, *raw = name + strlen(name) + 1;
		off = (size_t)(raw - s->probe_sent.data) + strlen(raw) + 1;
		if (strcasecmp(name, prm->name) != 0 || p->ncanon >= CANON_MAX || canon_find(p, prm->name, raw) != NULL)
			continue;
		if (p->ncanon % 8 == 0)
			p->canon = xrealloc(p->canon, (p->ncanon + 8) * sizeof(*p->canon));
		p->canon[p->ncanon++] = (struct param_canon){xstrdup(prm->name), xstrdup(raw), xstrdup(prm->value)};
	}
}

/* The first server's ParameterStatus message, or c's own value of it (as learned, else as sent). */
static void own_param_status(void *arg, const struct pgp_param *prm, const char *msg, size_t len)
{
	struct client *c = arg;
	if (tracked_index(prm->name) >= 0)
		return;   /* login_finish sends those */
	const char *raw = own_setting(c, prm->name);
	if (raw == NULL) {
		sb_append(&c->out, msg, len);
		return;
	}
	const char *v = canon_find(c->pool, prm->name, raw);
	pgp_build_parameter_status(&c->out, prm->name, v != NULL ? v : raw);
}

/* The pool knows its parameters: c gets them, its own values first, then its key and ReadyForQuery. */
static void login_finish(struct client *c)
{
	struct proxy *px = c->px;
	/* One ParameterStatus per parameter: the first server's, but c's own where it set one. */
	each_param_status(&c->pool->params, own_param_status, c);
	for (int k = 0; k < NTRACKED; k++)
		if (pool_param(c, k) != NULL)
			pgp_build_parameter_status(&c->out, tracked_params[k], pool_param(c, k));
	c->cancel_pid = ++px->next_cancel_pid;
	if (getrandom(c->cancel_key, sizeof(c->cancel_key), 0) != (ssize_t)sizeof(c->cancel_key))
		memset(c->cancel_key, 0, sizeof(c->cancel_key));
	pgp_build_backend_key_data(&c->out, c->cancel_pid, c->cancel_key, 4);
	pgp_build_ready_for_query(&c->out, 'I');
	client_set_state(c, CL_IDLE);
	if (flush_out(c) < 0)
		return;
	if (pbuf_len(&c->in) > 0)
		client_event(c, 0);   /* it pipelined a query after the startup */
}

/*
 * c has authenticated and its pool knows its parameters. A startup value the
 * pool has not seen a server report yet is learned first, as PostgreSQL would
 * answer it at a login: a probe server logs in with c's values (one probe per
 * pool at a time; c waits in CL_LOGIN, and so do clients waiting for another
 * client's probe). A value PostgreSQL refuses fails c's login the same way
 * (close_server). Called again for every waiting client when a probe ends.
 */
static void client_login_done(struct client *c)
{
	struct pool *p = c->pool;
	if (c->probe != NULL)
		return;   /* its probe is logging in */
	struct canon_need need = {0};
	canon_missing(c, &need);
	if (need.n == 0 || c->probed || p->ncanon >= CANON_MAX) {
		login_finish(c);
		return;
	}
	client_set_state(c, CL_LOGIN);
	if (p->probing)
		return;   /* another client's probe: that may answer for c too */
	struct route_target t;
	char why[300];
	c->probed = true;
	need.vals = xcalloc(need.n, sizeof(*need.vals));
	canon_missing(c, &need);
	bool started = pool_target(p, &t) && server_connect_probe(c, need.vals, need.n, &t, why, sizeof(why)) != NULL;
	free(need.vals);
	if (!started)
		login_finish(c);   /* nothing to learn from now: its values as they were sent */
}

/* A probe ended: the clients waiting for one go on (or start the next). */
static void probe_ended(struct pool *p)
{
	for (struct link *l = p->px->clients_idle.next; l != &p->px->clients_idle;) {
		struct client *lc = link_entry(l, struct client, node);
		l = l->next;
		if (lc->state == CL_LOGIN && lc->pool == p && p->have_params)
			client_login_done(lc);
	}
}

/* [proxy] standby_writes = refuse in a standby cluster: the read-write port says why, at once. */
static void refuse_writes(struct client *c)
{
	struct proxy *px = c->px;
	char msg[600], hint[600];
	snprintf(msg, sizeof(msg), "cluster %s is a standby cluster of %s: this proxy takes no writes ([proxy] "
		 "standby_writes = refuse)", px->cfg.cluster_name, px->topo.standby_of);
	snprintf(hint, sizeof(hint), "write through the primary cluster (%s), or read on this proxy's read-only "
		 "port", px->topo.standby_of);
	log_info("client %s (%s@%s): FATAL %s", c->addr, c->user, c->database, msg);
	pgp_build_error(&c->out, "FATAL", "25006", msg, NULL, hint);
	metrics_count_error(px, "25006");
	if (flush_out(c) < 0)
		return;
	client_close(c, msg);
}

static void auth_ok(struct client *c)
{
	if (!client_logged_in(c))
		return;
	pgp_build_auth_ok(&c->out);
	if (c->admin) {
		if (!admin_allowed(c->px, c->user)) {
			char msg[200];
			snprintf(msg, sizeof(msg), "user \"%s\" may not use the admin console (see [auth] admin_users)",
				 c->user);
			client_send_error(c, "28000", msg, true);
			return;
		}
		admin_login_done(c);
		flush_out(c);
		return;
	}
	if (!c->ro && c->px->topo.standby_cluster && c->px->cfg.primary_fwd.refuse) {
		refuse_writes(c);
		return;
	}
	if (c->pool->have_params) {
		client_login_done(c);
		return;
	}
	client_set_state(c, CL_LOGIN);
	if (flush_out(c) < 0)
		return;
	struct route_target t;
	char why[300];
	if (c->pool->nservers == 0 && pool_target(c->pool, &t) &&
	    server_connect(c->pool, &t, why, sizeof(why)) == NULL)
		pool_failed(c->pool, why);
}

static void auth_step(struct client *c);

/*
 * Ask the client to authenticate against secret (users file or auth_query;
 * NULL: no such user). SCRAM, or md5 when auth_type = md5 and the secret is
 * not a SCRAM verifier (a verifier cannot check an md5 answer; PostgreSQL
 * switches to SCRAM the same way). A user that does not exist gets the same
 * exchange as one with a wrong password, failing only at its end: a mock
 * SCRAM exchange, or in md5 mode what most users get — an md5 challenge when
 * the users file is the only source (passwords or md5 hashes), SCRAM when
 * auth_query looks users up (pgha's PostgreSQL stores SCRAM verifiers; as
 * PostgreSQL picks by password_encryption).
 */
static void auth_challenge(struct client *c, const char *secret)
{
	struct pgha_err e;
	bool md5 = strcmp(c->px->cfg.auth_type, "md5") == 0 && !scram_is_verifier(secret);
	if (md5 && secret == NULL && c->px->cfg.auth_user[0] != '\0')
		md5 = false;
	if (md5) {
		if (pgmd5_salt(c->md5_salt, &e) != 0) {
			client_send_error(c, "XX000", e.msg, true);
			return;
		}
		pgp_build_auth_md5(&c->out, c->md5_salt);
	} else {
		c->sasl = creds_scram_server(c->px, c->user, secret, &e);
		if (c->sasl == NULL) {
			client_send_error(c, "XX000", e.msg, true);
			return;
		}
		const char *mechs[] = {SCRAM_MECHANISM};
		pgp_build_auth_sasl(&c->out, mechs, 1);
	}
	if (flush_out(c) < 0)
		return;
	if (pbuf_len(&c->in) > 0)
		auth_step(c);   /* it sent its answer early (it cannot know the salt: it fails) */
}

/* After the startup packet: trust, or find the user's secret (maybe with auth_query) and challenge. */
static void auth_start(struct client *c)
{
	if (refused_over_max_client_conn(c))
		return;
	if (strcmp(c->px->cfg.auth_type, "trust") == 0) {
		auth_ok(c);
		return;
	}
	client_set_state(c, CL_AUTH);
	const char *secret = NULL;
	struct pgha_err e;
	switch (creds_lookup(c->px, c->user, &secret, &e)) {
	case CREDS_KNOWN:
		auth_challenge(c, secret);
		return;
	case CREDS_PENDING:
		c->auth_lookup = true;   /* client_auth_lookup_done() goes on */
		return;
	case CREDS_FAILED:
		log_warn("client %s: cannot look up user \"%s\": %s", c->addr, c->user, e.msg);
		client_auth_lookup_done(c, NULL, e.msg);
		return;
	}
}

static void client_auth_lookup_done(struct client *c, const char *secret, const char *failure)
{
	c->auth_lookup = false;
	c->since_ms = c->px->now_ms;   /* the login timeout counts the client's own steps from here */
	if (failure != NULL) {
		/* The reason (auth_user's login, the query, the server) is in the proxy's log. */
		char msg[300];
		snprintf(msg, sizeof(msg), "cannot authenticate user \"%s\" now: looking it up on the "
			 "server failed (auth_query; see the proxy's log)", c->user);
		client_send_error(c, "08006", msg, true);
		return;
	}
	auth_challenge(c, secret);
}

static void startup(struct client *c);

/* Answer an SSLRequest with 'S' and start the handshake. */
static void start_tls(struct client *c)
{
	if (pbuf_len(&c->in) != 0) {
		/* Bytes sent before our answer would be taken as if they came over TLS (CVE-2021-23214). */
		client_send_error(c, "08P01", "unexpected data after SSLRequest", true);
		return;
	}
	sb_puts(&c->out, "S");
	if (client_send(c, &c->out, &c->out_off) != 1) {
		client_close(c, "cannot answer the SSLRequest");
		return;
	}
	if (tls_begin(c) != 0) {
		client_close(c, "cannot start TLS");
		return;
	}
	client_set_state(c, CL_TLS);
	proxy_watch(c->px, &c->tag, EPOLLIN);
}

/* CL_TLS: one handshake step; when done, the startup packet comes over TLS. */
static void tls_step(struct client *c)
{
	int r = tls_handshake(c);
	if (r < 0) {
		client_close(c, "TLS handshake failed");
		return;
	}
	if (r == 0) {
		proxy_watch(c->px, &c->tag, c->tls_want ? c->tls_want : EPOLLIN);
		return;
	}
	client_set_state(c, CL_STARTUP);
	proxy_watch(c->px, &c->tag, EPOLLIN);
	ssize_t n = client_read(c, &c->in);
	if (n == 0 || n == -1) {
		client_close(c, "client disconnected after the TLS handshake");
		return;
	}
	if (pbuf_len(&c->in) > 0)
		startup(c);
}

/*
 * A client asking for protocol 3.x, x > 0, or for protocol options ("_pq_."),
 * learns that the proxy speaks 3.0 without options, and goes on with that
 * (as PostgreSQL answers an older minor version).
 */
static void negotiate_protocol(struct client *c, const struct pgp_startup *st)
{
	const char **opts = xcalloc(st->n_params + 1, sizeof(*opts));
	size_t n = 0;
	struct pgp_iter it = st->params;
	struct pgp_param prm;
	while (pgp_startup_next_param(&it, &prm))
		if (pgp_is_protocol_option(prm.name))
			opts[n++] = prm.name;
	if (st->proto_minor > 0 || n > 0)
		pgp_build_negotiate_protocol_version(&c->out, 0, opts, n);
	free(opts);
}

static void startup(struct client *c)
{
	struct pgp_startup st;
	struct pgha_err e;
	/*
	 * A Terminate ('X') instead of a startup packet: a driver that gave up on the
	 * connection (a pool's health check, a cancelled connect). Its first byte would
	 * be a length of over 1 GiB: it cannot start a startup packet, so it ends quietly.
	 */
	if (pbuf_len(&c->in) > 0 && c->in.data[c->in.start] == 'X') {
		client_close(c, "client sent Terminate before its startup packet");
		return;
	}
	int r = pgp_decode_startup(c->in.data + c->in.start, pbuf_len(&c->in), &st, &e);
	if (r == PGP_NEED_MORE)
		return;
	if (r != PGP_OK) {
		client_send_error(c, "08P01", e.msg, true);
		return;
	}
	c->in.start += st.total_len;
	switch (st.kind) {
	case PGP_SSL_REQUEST:
		if (c->px->tls_ctx != NULL && c->ssl == NULL) {
			start_tls(c);
			return;
		}
		if (c->ssl != NULL) {
			client_send_error(c, "08P01", "SSLRequest inside TLS", true);
			return;
		}
		/* No TLS configured: the client goes on in plain text (or gives up). */
		__attribute__((fallthrough));
	case PGP_GSSENC_REQUEST: {
		/* One of each, as PostgreSQL takes (libpq may try GSSENC, then SSL). */
		unsigned bit = st.kind == PGP_SSL_REQUEST ? 1u : 2u;
		if (c->refused_encryption & bit) {
			client_send_error(c, "08P01", st.kind == PGP_SSL_REQUEST ? "a second SSLRequest after the answer 'N'"
					  : "a second GSSENCRequest after the answer 'N'", true);
			return;
		}
		c->refused_encryption |= bit;
		sb_puts(&c->out, "N");
		if (flush_out(c) < 0)
			return;
		/* The client goes on in plain text: its startup packet may be here already. */
		if (pbuf_len(&c->in) > 0)
			startup(c);
		return;
	}
	case PGP_CANCEL_REQUEST:
		handle_cancel(c, &st);
		return;
	case PGP_STARTUP_MESSAGE:
		break;
	}
	if (c->px->cfg.tls_require && c->ssl == NULL) {
		client_send_error(c, "28000", "this proxy requires TLS: connect with sslmode=require (or stricter)",
				  true);
		return;
	}
	snprintf(c->user, sizeof(c->user), "%s", st.user);
	snprintf(c->database, sizeof(c->database), "%s", st.database);
	snprintf(c->app_name, sizeof(c->app_name), "%s", st.application_name ? st.application_name : "");
	if (strlen(st.user) >= sizeof(c->user) || strlen(st.database) >= sizeof(c->database)) {
		client_send_error(c, "08P01", "user or database name too long", true);
		return;
	}
	if (st.replication != NULL && strcmp(st.replication, "false") != 0 && strcmp(st.replication, "0") != 0) {
		client_send_error(c, "08P01", "replication connections are not pooled: connect to PostgreSQL directly", true);
		return;
	}
	/*
	 * Startup parameters: the tracked ones are kept (ParameterStatus follows them),
	 * ignored ones dropped, the others are settings of the client's own, set on
	 * each server it gets (relay.c) as PostgreSQL would at login.
	 */
	struct pgp_iter it = st.params;
	struct pgp_param prm;
	while (pgp_startup_next_param(&it, &prm)) {
		int k = tracked_index(prm.name);
		if (k >= 0) {
			free(c->want[k]);
			c->want[k] = xstrdup(prm.value);
			continue;
		}
		if (pgp_is_protocol_option(prm.name) || list_has(c->px->cfg.ignore_startup_parameters, prm.name))
			continue;
		sess_set_put(&c->sess_start, 'g', prm.name, prm.value);
	}
	if (st.options != NULL && st.options[0] != '\0' &&
	    !list_has(c->px->cfg.ignore_startup_parameters, "options") &&
	    sess_parse_options(st.options, &c->sess_start, &e) != 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%.200s (HINT: add options to [proxy] ignore_startup_parameters to drop it)",
			 e.msg);
		client_send_error(c, "08P01", msg, true);
		return;
	}
	if (c->sess_start.n > SESS_MAX_ITEMS || c->sess_start.bytes > SESS_MAX_BYTES) {
		client_send_error(c, "54000", "too many startup parameters for the proxy to carry", true);
		return;
	}
	sess_set_copy(&c->sess, &c->sess_start);
	/* Without one, the pool's default: an empty application_name (pool_take_params). */
	if (st.application_name != NULL) {
		int k = tracked_index("application_name");
		free(c->want[k]);
		c->want[k] = xstrdup(st.application_name);
	}
	negotiate_protocol(c, &st);
	c->admin = strcmp(c->database, "pgha") == 0;
	if (!c->admin)
		c->pool = pool_get(c->px, c->database, c->user, c->ro);
	auth_start(c);
}

static void auth_failed(struct client *c, const char *why)
{
	const char *kv[] = {"event", "auth_failed", "client_addr", c->addr, "user", c->user, "sqlstate", "28P01", NULL};
	log_warn_kv(kv, "client %s: authentication failed for user \"%s\": %s", c->addr, c->user, why);
	char msg[200];
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", c->user);
	pgp_build_error(&c->out, "FATAL", "28P01", msg, NULL, NULL);
	metrics_count_error(c->px, "28P01");
	if (flush_out(c) < 0)
		return;
	client_close(c, "authentication failed");
}

static void auth_step(struct client *c)
{
	struct pgp_msg m;
	struct pgha_err e;
	if (c->auth_lookup)
		return;   /* nothing to check against yet: it stays buffered */
	int r = pgp_frame(c->in.data + c->in.start, pbuf_len(&c->in), 16384, &m, &e);
	if (r == PGP_NEED_MORE)
		return;
	if (r != PGP_OK || m.type != 'p') {
		client_send_error(c, "08P01", r != PGP_OK ? e.msg : "expected a password message", true);
		return;
	}
	c->in.start += m.total_len;
	if (c->sasl == NULL) {   /* md5 (auth_challenge) */
		const char *resp;
		if (pgp_parse_password(&m, &resp, &e) != 0 ||
		    pgmd5_verify(creds_secret(c->px, c->user), c->user, c->md5_salt, resp, strlen(resp), &e) != 0) {
			auth_failed(c, e.msg);
			return;
		}
		auth_ok(c);
		return;
	}
	char *out = NULL;
	if (c->sasl != NULL && !scram_server_succeeded(c->sasl) && c->pending == 0) {
		struct pgp_sasl_initial si;
		if (pgp_parse_sasl_initial_response(&m, &si, &e) != 0 || si.data == NULL ||
		    strcmp(si.mech, SCRAM_MECHANISM) != 0) {
			auth_failed(c, si.data == NULL ? "no initial SASL response" : e.msg);
			return;
		}
		if (scram_server_first(c->sasl, (const char *)si.data, (size_t)si.data_len, &out, &e) != 0) {
			auth_failed(c, e.msg);
			return;
		}
		pgp_build_auth_sasl_continue(&c->out, out, strlen(out));
		scram_free_msg(out);
		c->pending = 1;   /* reused as "first SASL message seen" during auth */
		flush_out(c);
		return;
	}
	const uint8_t *data;
	size_t len;
	if (pgp_parse_sasl_response(&m, &data, &len, &e) != 0 ||
	    scram_server_final(c->sasl, (const char *)data, len, &out, &e) != 0) {
		auth_failed(c, e.msg);
		return;
	}
	c->pending = 0;
	pgp_build_auth_sasl_final(&c->out, out, strlen(out));
	scram_free_msg(out);
	/* Its ClientKey logs the proxy in to PostgreSQL when only a verifier is known (creds.c). */
	struct scram_keys keys;
	if (scram_is_verifier(creds_secret(c->px, c->user)) && scram_server_client_key(c->sasl, &keys, &e) == 0)
		creds_learn_keys(c->px, c->user, &keys);
	scram_keys_wipe(&keys);
	scram_server_free(c->sasl);
	c->sasl = NULL;
	auth_ok(c);
}

/* The transaction is over: c goes idle, s back to its pool, c gets what is left of the answer. */
/*
 * rw_split: is c's next unit a proven read? Then it leaves for the read-only
 * pool (its own kept in split_home until the transaction ends). false: not
 * all of the unit is here yet.
 */
static bool split_decide(struct client *c)
{
	struct proxy *px = c->px;
	c->split_more = false;
	if (px->cfg.rw_split == RW_SPLIT_OFF || c->ro || c->pinned != NULL || px->cfg.pool_mode != POOL_TRANSACTION)
		return true;
	/* A standby refuses SERIALIZABLE: a session that asks for it reads on the leader. */
	const struct sess_item *iso = sess_set_get(&c->sess, 'g', "default_transaction_isolation");
	if (iso != NULL && iso->value != NULL && strcmp(iso->value, "serializable") == 0)
		return true;
	int r = split_route(c);
	if (r < 0) {
		c->split_more = true;
		return false;
	}
	if (r > 0) {
		c->split_home = c->pool;
		c->pool = pool_get(px, c->database, c->user, true);
		px->stats_split_standby++;
	}
	return true;
}

/*
 * c's transaction is over and its server owes only the proxy's own queries:
 * the server finishes them alone, and c's next transaction, arriving now, is
 * routed afresh. It must be when c read on a lent leader server (its RESET of
 * default_transaction_read_only is owed: what c sends next must not run
 * there), and is worth it under rw_split (after a write, the LSN request is
 * owed: c's next transaction may be a read for a standby). true: c has no
 * server any more.
 */
static bool detach_between(struct client *c)
{
	struct proxy *px = c->px;
	struct server *s = c->server;
	int lsn_at;
	bool lent = c->ryw_home != NULL;
	bool split = px->cfg.rw_split != RW_SPLIT_OFF && !c->ro;
	if (!(lent || split) || c->pinned != NULL || s == NULL || px->cfg.pool_mode != POOL_TRANSACTION ||
	    s->status != 'I' || relay_own_queries_owed(c, &lsn_at) <= 0)
		return false;
	client_unlink_server(c, true);
	relay_reset(c);
	px->stats_xacts++;
	metrics_observe_xact(px, px->now_ms - c->xact_start_ms);
	client_set_state(c, CL_IDLE);
	return true;
}

/* c has bytes and no server: the start of its next transaction. */
static void client_dispatch(struct client *c)
{
	/* A lone Terminate needs no server. */
	if (pbuf_len(&c->in) == 5 && c->in.data[c->in.start] == 'X') {
		c->terminated = true;
		client_close(c, "client sent Terminate");
		return;
	}
	if (c->lost != NULL && answer_lost(c) != 0)
		return;
	if (!split_decide(c))
		return;
	struct server *s = pool_request(c->pool, c);
	if (s != NULL)
		client_got_server(c, s);
}

/* Input from a client with no server (and no admin console). */
static void idle_input(struct client *c)
{
	if (pbuf_len(&c->in) == 0 || c->split_more) {
		ssize_t r = client_read(c, &c->in);
		if (r == -2)
			return;
		if (r <= 0) {
			client_close(c, r == 0 ? "client disconnected" : "read error");
			return;
		}
	}
	client_dispatch(c);
}

static void release_server(struct client *c, struct server *s)
{
	struct proxy *px = c->px;
	c->server = NULL;
	s->client = NULL;
	client_set_state(c, CL_IDLE);
	proxy_watch(px, &c->tag, EPOLLIN);
	proxy_watch(px, &s->tag, EPOLLIN);
	/* A large message went through: pooled buffers do not keep its size. */
	px->freed_bytes += pbuf_shrink(&s->in) + sb_shrink(&s->out, &s->out_off) + pbuf_shrink(&c->in);
	give_back(s);
	flush_out(c);   /* a slow client keeps its bytes */
	/* rw_split: the client's next unit came while its read ran: it starts its next transaction. */
	if (c->state == CL_IDLE && pbuf_len(&c->in) > 0)
		client_dispatch(c);
}

/*
 * Read-your-writes: c's standby has not replayed what c must see within
 * ryw_wait (or no LSN answer covers it): the standby goes back, and c's read
 * runs on a leader server lent read-only (relay_ryw_borrow), its own
 * read-only pool kept aside until the transaction ends (client_set_state).
 */
static void ryw_to_leader(struct client *c, struct server *s)
{
	log_debug("client %s: its read goes to the leader (read-your-writes)", c->addr);
	c->ryw = 0;
	c->server = NULL;
	s->client = NULL;
	give_back(s);
	c->ryw_home = c->pool;
	c->pool = pool_get(c->px, c->database, c->user, false);
	struct server *ls = pool_request(c->pool, c);
	if (ls != NULL)
		client_got_server(c, ls);
}

/* Act on what the relay returned for c and its server s. */
static void relay_then(struct client *c, struct server *s, enum relay_next next, const struct relay_result *r)
{
	switch (next) {
	case RELAY_WAIT:
		return;
	case RELAY_RELEASE:
		release_server(c, s);
		return;
	case RELAY_CLOSE_CLIENT:
		client_close(c, r->why);
		return;
	case RELAY_FAIL_CLIENT:
		client_fail(c, r->sqlstate, r->why);
		return;
	case RELAY_CLOSE_SERVER:
		close_server(s, r->why);
		return;
	case RELAY_RYW_GO:
		ryw_go(c, s);
		return;
	case RELAY_RYW_LEADER:
		ryw_to_leader(c, s);
		return;
	case RELAY_MORE:
		c2s(c);
		return;
	case RELAY_END_SESSION:
		/* PostgreSQL closes the connection after a FATAL: so do we, once it is sent. */
		c->server = NULL;
		s->client = NULL;
		server_close(s, "it ended the session with FATAL");
		client_close_when_sent(c, "its server ended the session with FATAL");
		return;
	}
}

static void c2s(struct client *c)
{
	struct relay_result r;
	relay_then(c, c->server, relay_c2s(c, &r), &r);
}

static void s2c(struct client *c)
{
	struct relay_result r;
	relay_then(c, c->server, relay_s2c(c, &r), &r);
}

static void client_got_server(struct client *c, struct server *s)
{
	struct proxy *px = c->px;
	c->server = s;
	s->client = c;
	client_set_state(c, CL_ACTIVE);
	c->xact_start_ms = px->now_ms;
	if (!s->pool->ro && strcmp(s->target.name, ROUTE_FORWARD_NAME) == 0)
		px->stats_forwarded++;   /* a standby cluster's write, on the primary cluster */
	if ((c->ro || c->split_home != NULL) && c->ryw_home == NULL && px->cfg.read_your_writes &&
	    px->cfg.pool_mode == POOL_TRANSACTION) {
		/* A standby known to be further along: the read waits less there, or not at all. */
		struct server *better = relay_ryw_better(c, s);
		if (better != NULL) {
			server_set_state(better, SV_ACTIVE);
			s->client = NULL;
			give_back(s);
			s = better;
			c->server = s;
			s->client = c;
		}
		/*
		 * The gate first: nothing of the client's (its settings included) may be
		 * queued on a standby its read may leave for the leader.
		 */
		int gate = relay_ryw_gate(c, s);
		if (gate < 0) {
			ryw_to_leader(c, s);
			return;
		}
		if (gate == 0) {
			if (c->ryw == RYW_WAIT_LSN)
				link_add_tail(&px->ryw_gated, &c->ryw_node);
			c2s(c);   /* gated: sends only the replay check */
			return;
		}
	}
	ryw_go(c, s);
}

/* c's work starts on s: its settings first (read-your-writes: once its gate opened). */
static void ryw_go(struct client *c, struct server *s)
{
	relay_apply_params(c, s);
	if (c->ryw_home != NULL)
		relay_ryw_borrow(c, s);
	c2s(c);
}

void client_ryw_wake(struct proxy *px)
{
	if (!px->ryw_wake)
		return;
	px->ryw_wake = false;
	for (struct link *l = px->ryw_gated.next; l != &px->ryw_gated;) {
		struct client *c = link_entry(l, struct client, ryw_node);
		l = l->next;
		if (c->ryw != RYW_WAIT_LSN || c->server == NULL) {
			link_del(&c->ryw_node);
			continue;
		}
		int gate = relay_ryw_recheck(c);
		if (c->ryw != RYW_WAIT_LSN)
			link_del(&c->ryw_node);
		if (gate < 0)
			ryw_to_leader(c, c->server);
		else if (gate > 0)
			ryw_go(c, c->server);
		else if (c->ryw != RYW_WAIT_LSN)
			c2s(c);   /* sends the replay check */
	}
}

/* Bytes a client that shut its side may still have sent while it waits (client_gave_up). */
#define WAIT_TAIL_MAX (64u << 10)

/*
 * c, waiting for a server, has shut its side: did it give up? Yes when all it
 * sent ends with a Terminate, or it sent nothing. A half-closed client still
 * waiting for its answers (all of them read here, up to WAIT_TAIL_MAX) is
 * not: PostgreSQL answers what came before the end, and so will its server.
 */
static bool client_gave_up(struct client *c)
{
	for (;;) {
		if (pbuf_len(&c->in) > WAIT_TAIL_MAX)
			return false;
		ssize_t r = client_read(c, &c->in);
		if (r == -2)
			return false;   /* not the end yet: a reset or error comes as a read error */
		if (r < 0)
			return true;
		if (r == 0)
			break;
	}
	size_t n = pbuf_len(&c->in);
	return n == 0 || (n >= 5 && memcmp(c->in.data + c->in.end - 5, "X\0\0\0\4", 5) == 0);
}

void client_event(struct client *c, uint32_t events)
{
	if (c->state == CL_TLS) {
		tls_step(c);
		return;
	}
	if (c->close_when_sent) {
		closing_event(c);
		return;
	}
	if (events & EPOLLOUT) {
		if (c->out.len > c->out_off) {
			if (flush_out(c) != 1)
				return;
		}
		if (c->state == CL_ACTIVE && c->server) {
			/* The client drained: let the server's bytes flow again. */
			s2c(c);
			return;
		}
		proxy_watch(c->px, &c->tag, EPOLLIN);
	}
	if (events & (EPOLLHUP | EPOLLERR) && !(events & EPOLLIN)) {
		client_close(c, "connection reset");
		return;
	}
	switch (c->state) {
	case CL_ACTIVE:
		c->in.drained = false;   /* EPOLLIN: there is something to read */
		if (detach_between(c))
			idle_input(c);
		else
			c2s(c);
		return;
	case CL_IDLE: {
		if (c->admin) {
			ssize_t r = client_read(c, &c->in);
			if (r == -2)
				return;
			bool resume = false;
			if (r <= 0 || admin_input(c, &resume) < 0) {
				client_close(c, "admin client left");
				return;
			}
			if (resume)
				client_resume_waiting(c->px);
			flush_out(c);
			return;
		}
		idle_input(c);
		return;
	}
	case CL_WAITING:
		/*
		 * Backpressure until a server comes: nothing more is read, but the end of
		 * the connection is watched. A driver that gives up sends Terminate and
		 * closes; it is let go now, not when a server frees up (then to run a
		 * query nobody waits for).
		 */
		if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && client_gave_up(c)) {
			client_close(c, "client left while waiting for a server");
			return;
		}
		proxy_watch(c->px, &c->tag, (events & EPOLLRDHUP) ? 0 : EPOLLRDHUP);
		return;
	case CL_STARTUP:
	case CL_AUTH:
	case CL_LOGIN: {
		ssize_t r = client_read(c, &c->in);
		if (r == 0 || r == -1) {
			client_close(c, "client disconnected during login");
			return;
		}
		if (c->state == CL_STARTUP)
			startup(c);
		else if (c->state == CL_AUTH)
			auth_step(c);
		return;
	}
	case CL_TLS:      /* handled above */
	case CL_CLOSING:
		return;
	}
}

void client_check_timeouts(struct client *c)
{
	const struct proxy_config *cfg = &c->px->cfg;
	int64_t age = c->px->now_ms - c->since_ms;
	if (c->close_when_sent) {
		if (age > cfg->client_login_timeout_ms)
			client_close(c, "it did not read its last messages in time");
		return;
	}
	/* A wait for auth_query or a verifier has bounds of its own (auth_query_timeout, hold_timeout). */
	if ((c->state == CL_STARTUP || c->state == CL_TLS || (c->state == CL_AUTH && !c->auth_lookup)) &&
	    age > cfg->client_login_timeout_ms)
		client_send_error(c, "08006", "login timed out", true);
	else if (c->state == CL_LOGIN && c->pool->have_params && c->probe == NULL && !c->pool->probing)
		client_login_done(c);   /* a probe it waited for was closed without a word (a topology change) */
	else if (c->state == CL_LOGIN && age > cfg->hold_timeout_ms)
		client_send_error(c, "08006", c->pool->last_error[0] ? c->pool->last_error
					       : "no server available to log in (no leader?)", true);
	else if (c->state == CL_IDLE && cfg->client_idle_timeout_ms > 0 && age > cfg->client_idle_timeout_ms)
		client_send_error(c, "08006", "client idle timeout", true);
}

/* ---- what the lower modules return, acted on --------------------------------- */

/* A server of p failed to log in: a failure that waiting will not cure fails p's clients now. */
static void pool_failed(struct pool *p, const char *why)
{
	if (!pool_login_failed(p, why))
		return;
	while (!link_empty(&p->waiting)) {
		struct client *c = link_entry(p->waiting.next, struct client, node);
		pool_cancel_wait(p, c);
		client_send_error(c, "08004", why, true);
	}
	for (struct link *l = p->px->clients_idle.next; l != &p->px->clients_idle;) {
		struct client *c = link_entry(l, struct client, node);
		l = l->next;
		if (c->state == CL_LOGIN && c->pool == p)
			client_send_error(c, "08004", why, true);
	}
}

/*
 * A probe failed to log in. PostgreSQL refusing a startup value (a data
 * exception, class 22: "invalid value for parameter") fails its client's
 * login with that error, as a direct login would; any other failure (no
 * server now) teaches nothing and its client goes on with its values as it
 * sent them. The pool's own logins are not concerned.
 */
static void probe_failed(struct server *s, const char *why)
{
	struct pool *p = s->pool;
	struct client *c = s->probe_for;
	server_close(s, why);   /* clears c->probe */
	/* server.c's words for a login error: "login refused: SQLSTATE: message". */
	const char *prefix = "login refused: ";
	size_t n = strlen(prefix);
	if (c != NULL && strncmp(why, prefix, n) == 0 && strncmp(why + n, "22", 2) == 0 &&
	    strlen(why) > n + 7 && why[n + 5] == ':') {
		char sqlstate[6];
		memcpy(sqlstate, why + n, 5);
		sqlstate[5] = '\0';
		client_fail(c, sqlstate, why + n + 7);
	} else if (c != NULL) {
		log_info("client %s (%s@%s): cannot learn how the server reports its startup values (%s): "
			 "reported as sent", c->addr, c->user, c->database, why);
	}
	probe_ended(p);
}

/* Close s and tell whom it concerns: its client (the transaction is lost), its pool (a failed login). */
static void close_server(struct server *s, const char *why)
{
	struct client *c = s->client;
	struct pool *p = s->pool;
	char status = s->status;
	if (s->probe) {
		probe_failed(s, why);
		return;
	}
	/* A stale attempt was abandoned, it did not fail. */
	bool login_failed = (s->state == SV_CONNECTING || s->state == SV_LOGIN) && !s->stale;
	if (c != NULL) {
		c->server = NULL;
		s->client = NULL;
	}
	server_close(s, why);
	if (c != NULL)
		client_server_lost(c, status, why);   /* its transaction is lost, not its connection */
	if (login_failed)
		pool_failed(p, why);
}

/* s logged in: the pool's first login gives its clients their parameters; s gets work. */
static void server_ready(struct server *s)
{
	struct pool *p = s->pool;
	if (s->probe) {
		/* It was sent no work and gets none: closed, as pool_size counts it until then. */
		each_param_status(&s->login_params, learn_one, s);
		server_close(s, "it reported how PostgreSQL spells a client's startup values");
		probe_ended(p);
		return;
	}
	if (!p->have_params)
		pool_take_params(p, &s->login_params);
	sb_free(&s->login_params);
	struct client *c = pool_server_ready(s);
	if (c != NULL)
		client_got_server(c, s);
	/*
	 * Clients that logged in before the pool knew its parameters can go on now
	 * (one that sent a query after its startup packet finds the server idle).
	 */
	for (struct link *l = p->px->clients_idle.next; l != &p->px->clients_idle;) {
		struct client *lc = link_entry(l, struct client, node);
		l = l->next;
		if (lc->state == CL_LOGIN && lc->pool == p)
			client_login_done(lc);
	}
}

void client_server_event(struct server *s, uint32_t events)
{
	char why[512];
	switch (server_event(s, events, why, sizeof(why))) {
	case SERVER_WAIT:
		return;
	case SERVER_CLIENT_IN:
		s2c(s->client);
		return;
	case SERVER_CLIENT_OUT:
		c2s(s->client);   /* sends what waits, and reads the client again */
		return;
	case SERVER_READY:
		server_ready(s);
		return;
	case SERVER_RESET_DONE:
		give_back(s);
		return;
	case SERVER_FAILED:
		close_server(s, why);
		return;
	}
}

void client_pool_tick(struct pool *p)
{
	struct proxy *px = p->px;
	/* Oldest first (a client joins at the tail when it starts waiting): the first still in time ends the walk. */
	for (struct link *l = p->waiting.next; l != &p->waiting;) {
		struct client *c = link_entry(l, struct client, node);
		l = l->next;
		if (pool_held(p) || px->now_ms - c->since_ms < px->cfg.hold_timeout_ms)
			break;   /* a PAUSE holds clients until RESUME */
		pool_cancel_wait(p, c);
		char msg[400];
		struct route_target t;
		if (!pool_target(p, &t))
			snprintf(msg, sizeof(msg), "no %s server available after waiting %d ms (no leader: failover in progress?)",
				 p->ro ? "read-only" : "read-write", px->cfg.hold_timeout_ms);
		else
			snprintf(msg, sizeof(msg), "no server available after waiting %d ms: %s",
				 px->cfg.hold_timeout_ms, p->last_error[0] ? p->last_error : "pool exhausted");
		client_send_error(c, "08006", msg, false);
	}
	struct link *lists[] = {&p->idle, &p->active};
	for (int k = 0; k < 2; k++) {
		for (struct link *l = lists[k]->next; l != lists[k];) {
			struct server *s = link_entry(l, struct server, node);
			l = l->next;
			const char *why = server_timed_out(s);
			if (why != NULL)
				close_server(s, why);
		}
	}
	if (p->nwaiting > 0)
		pool_open_servers(p);
}

void client_resume_waiting(struct proxy *px)
{
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		struct server *s;
		struct client *c;
		while ((c = pool_resume_next(p, &s)) != NULL)
			client_got_server(c, s);
		pool_open_servers(p);
	}
}

void client_wake_lookups(struct proxy *px)
{
	struct creds_wake *w;
	while ((w = creds_take_wake(px)) != NULL) {
		for (struct link *l = px->clients_idle.next; l != &px->clients_idle;) {
			struct client *c = link_entry(l, struct client, node);
			l = l->next;
			if (c->state == CL_AUTH && c->auth_lookup && strcmp(c->user, w->user) == 0)
				client_auth_lookup_done(c, w->secret, w->failure);
		}
		creds_wake_free(w);
	}
}

void client_hold_check(struct proxy *px)
{
	struct client *c;
	char why[300];
	while ((c = hold_session_to_end(px, why, sizeof(why))) != NULL)
		client_send_error(c, "57P01", why, true);
	hold_check(px);
}
