/*
 * test_relay.c — the proxy's relay (proxy/relay.c) driven through the event
 * entry points the loop calls (client_event, client_server_event) over socketpairs,
 * no PostgreSQL: what a pipeline is owed and when the server goes back to the
 * pool, named prepared statements renamed to the proxy's pgha_N names (and
 * prepared again on a server that lacks them), what an error in the middle of
 * a pipeline skips, and what a server's FATAL does to its client; and what
 * relay_c2s()/relay_s2c() decide before client.c acts on it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "pgproto/pgproto.h"
#include "proxy/client.h"
#include "proxy/pool.h"
#include "proxy/relay.h"
#include "proxy/server.h"

/* ---- a proxy with one pool, its servers and one client, over socketpairs ---- */

#define MAX_SERVERS 3

struct rig {
	struct proxy px;
	struct pool *pool;
	struct client *c;
	struct server *s[MAX_SERVERS];
	int cpeer;                  /* the application's end */
	int speer[MAX_SERVERS];     /* PostgreSQL's ends */
};

static struct rig rig;   /* static: what the pool and registry hold stays reachable for LSan */

static void pair(int *ours, int *theirs)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	*ours = sv[0];
	*theirs = sv[1];
}

static struct server *add_server(int i)
{
	struct proxy *px = &rig.px;
	struct server *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->tag.kind = FD_SERVER;
	pair(&s->tag.fd, &rig.speer[i]);
	s->px = px;
	s->pool = rig.pool;
	s->status = 'I';
	s->target = px->topo.leader;
	s->backend_pid = 100 + i;
	sb_init(&s->out);
	rig.pool->nservers++;
	server_set_state(s, SV_IDLE);
	proxy_watch(px, &s->tag, EPOLLIN);
	rig.s[i] = s;
	return s;
}

static void setup_rig(enum pool_mode mode, int nservers)
{
	memset(&rig, 0, sizeof(rig));
	struct proxy *px = &rig.px;
	px->cfg.pool_mode = mode;
	px->cfg.hold_timeout_ms = 1000;
	px->epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(px->epfd >= 0);
	link_init(&px->pools);
	link_init(&px->clients_idle);
	px->topo.has_leader = true;
	snprintf(px->topo.leader.host, sizeof(px->topo.leader.host), "127.0.0.1");
	px->topo.leader.port = 5432;
	px->now_ms = 1000;
	rig.pool = pool_get(px, "db", "app", false);
	for (int i = 0; i < nservers; i++)
		add_server(i);

	struct client *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->tag.kind = FD_CLIENT;
	pair(&c->tag.fd, &rig.cpeer);
	c->px = px;
	c->pool = rig.pool;
	client_set_state(c, CL_IDLE);
	snprintf(c->addr, sizeof(c->addr), "test");
	snprintf(c->user, sizeof(c->user), "app");
	snprintf(c->database, sizeof(c->database), "db");
	sb_init(&c->out);
	px->nclients++;
	proxy_watch(px, &c->tag, EPOLLIN);
	rig.c = c;
}

static int setup_tx(void **state)
{
	setup_rig(POOL_TRANSACTION, 1);
	return 0;
}

static int setup_tx2(void **state)
{
	setup_rig(POOL_TRANSACTION, 2);
	return 0;
}

static int setup_tx3(void **state)
{
	setup_rig(POOL_TRANSACTION, 3);
	return 0;
}

static int setup_session(void **state)
{
	setup_rig(POOL_SESSION, 1);
	return 0;
}

static int teardown(void **state)
{
	struct proxy *px = &rig.px;
	for (int i = 0; i < MAX_SERVERS; i++) {
		struct server *s = rig.s[i];
		if (s != NULL) {
			if (s->client != NULL)
				s->client->server = NULL;   /* the client is not told */
			s->client = NULL;
			server_close(s, "test over");
		}
		if (rig.speer[i] > 0)
			close(rig.speer[i]);
	}
	client_close(rig.c, "test over");
	close(rig.cpeer);
	relay_registry_free(px);
	struct pool *p = rig.pool;
	link_del(&p->node);
	sb_free(&p->params);
	for (int k = 0; k < NTRACKED; k++)
		free(p->defaults[k]);
	free(p);
	close(px->epfd);
	return 0;
}

/* ---- driving it ------------------------------------------------------------ */

static void put(int fd, const struct strbuf *sb)
{
	assert_int_equal(write(fd, sb->data, sb->len), (ssize_t)sb->len);
}

/* The application sends sb (then the loop reports EPOLLIN on the client). */
static void from_client(struct strbuf *sb)
{
	put(rig.cpeer, sb);
	sb_reset(sb);
	client_event(rig.c, EPOLLIN);
}

/* Server i sends sb (then the loop reports EPOLLIN on it). */
static void from_server(int i, struct strbuf *sb)
{
	put(rig.speer[i], sb);
	sb_reset(sb);
	client_server_event(rig.s[i], EPOLLIN);
}

/* What arrived at fd since the last call, framed. */
struct got {
	uint8_t data[65536];
	size_t len;
	char types[64];       /* one letter a message */
	struct pgp_msg m[64];
	size_t n;
};

static void take(int fd, struct got *g)
{
	memset(g, 0, sizeof(*g));
	for (;;) {
		ssize_t r = read(fd, g->data + g->len, sizeof(g->data) - g->len);
		if (r <= 0)
			break;
		g->len += (size_t)r;
	}
	size_t off = 0;
	struct pgha_err e;
	while (off < g->len) {
		assert_true(g->n < 63);
		assert_int_equal(pgp_frame(g->data + off, g->len - off, 0, &g->m[g->n], &e), PGP_OK);
		g->types[g->n] = g->m[g->n].type;
		off += g->m[g->n].total_len;
		g->n++;
	}
}

static void at_server(int i, struct got *g)
{
	take(rig.speer[i], g);
}

static void at_client(struct got *g)
{
	take(rig.cpeer, g);
}

/* The application sends sb: server i gets exactly these messages (one letter each), in g. */
static void client_sends(struct strbuf *sb, int i, const char *types, struct got *g)
{
	from_client(sb);
	at_server(i, g);
	assert_string_equal(g->types, types);
}

/* Server i sends sb: the application gets exactly these messages, in g. */
static void server_sends(int i, struct strbuf *sb, const char *types, struct got *g)
{
	from_server(i, sb);
	at_client(g);
	assert_string_equal(g->types, types);
}

/* Messages the proxy's servers get and send that pgproto has no builder for. */
static void put_empty(struct strbuf *sb, char type)
{
	uint8_t m[5] = {(uint8_t)type, 0, 0, 0, 4};
	sb_append(sb, m, 5);
}

static void parse_complete(struct strbuf *sb) { put_empty(sb, '1'); }
static void bind_complete(struct strbuf *sb) { put_empty(sb, '2'); }
static void close_complete(struct strbuf *sb) { put_empty(sb, '3'); }
static void no_data(struct strbuf *sb) { put_empty(sb, 'n'); }

static void bind_stmt(struct strbuf *sb, const char *stmt)
{
	struct pgp_value v = {.data = (const uint8_t *)"42", .len = 2};
	pgp_build_bind(sb, "", stmt, NULL, 0, &v, 1, NULL, 0);
}

static void one_row(struct strbuf *sb)
{
	const char *vals[] = {"42"};
	pgp_build_data_row(sb, vals, 1);
	pgp_build_command_complete(sb, "SELECT 1");
}

/* Message k of g as a Parse / Bind / Describe: its statement name. */
static const char *parse_name(const struct got *g, size_t k)
{
	static struct pgp_parse_msg pm;
	struct pgha_err e;
	assert_int_equal(g->m[k].type, 'P');
	assert_int_equal(pgp_parse_parse(&g->m[k], &pm, &e), 0);
	return pm.stmt;
}

static const char *bind_name(const struct got *g, size_t k)
{
	static struct pgp_bind b;
	struct pgha_err e;
	assert_int_equal(g->m[k].type, 'B');
	assert_int_equal(pgp_parse_bind(&g->m[k], &b, &e), 0);
	return b.stmt;
}

static const char *describe_name(const struct got *g, size_t k)
{
	static struct pgp_target t;
	struct pgha_err e;
	assert_int_equal(g->m[k].type, 'D');
	assert_int_equal(pgp_parse_describe(&g->m[k], &t, &e), 0);
	return t.name;
}

static struct pgp_notice notice_of(const struct got *g, size_t k)
{
	struct pgp_notice n;
	struct pgha_err e;
	assert_int_equal(g->m[k].type, 'E');
	assert_int_equal(pgp_parse_notice(&g->m[k], &n, &e), 0);
	return n;
}

static char rfq_status(const struct got *g, size_t k)
{
	assert_int_equal(g->m[k].type, 'Z');
	return (char)g->m[k].body[0];
}

static void assert_released(int i)
{
	assert_null(rig.c->server);
	assert_int_equal(rig.c->state, CL_IDLE);
	assert_null(rig.s[i]->client);
	assert_int_equal(rig.s[i]->state, SV_IDLE);
}

static void assert_linked(int i)
{
	assert_ptr_equal(rig.c->server, rig.s[i]);
	assert_ptr_equal(rig.s[i]->client, rig.c);
	assert_int_equal(rig.c->state, CL_ACTIVE);
	assert_int_equal(rig.s[i]->state, SV_ACTIVE);
}

/* A named statement prepared in a transaction of its own: the server's name for it. */
static void prepare(const char *name, const char *sql, int on)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_parse(&sb, name, sql, NULL, 0);
	pgp_build_sync(&sb);
	client_sends(&sb, on, "PS", &g);
	parse_complete(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(on, &sb, "1Z", &g);
	assert_released(on);
	sb_free(&sb);
}

/* ---- what is owed, and when the server goes back ------------------------------ */

static void test_pipeline_owed_then_released(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_parse(&sb, "", "SELECT $1::int", NULL, 0);
	bind_stmt(&sb, "");
	pgp_build_describe(&sb, 'P', "");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	size_t sent = sb.len;
	uint8_t copy[512];
	memcpy(copy, sb.data, sent);
	from_client(&sb);
	assert_linked(0);
	at_server(0, &g);
	/* Unnamed: streamed as they are. */
	assert_int_equal(g.len, sent);
	assert_memory_equal(g.data, copy, sent);

	/* Part of the answers: more is owed, the server stays. */
	parse_complete(&sb);
	bind_complete(&sb);
	server_sends(0, &sb, "12", &g);
	assert_linked(0);

	no_data(&sb);
	one_row(&sb);
	server_sends(0, &sb, "nDC", &g);
	assert_linked(0);

	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "Z", &g);
	assert_released(0);
	assert_int_equal(rig.px.stats_xacts, 1);
	sb_free(&sb);
}

static void test_two_syncs_release_after_the_second(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	bind_stmt(&sb, "");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	bind_stmt(&sb, "");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "BESBES", &g);

	bind_complete(&sb);
	one_row(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "2DCZ", &g);
	assert_linked(0);   /* 'I', but the second Sync is still owed */

	bind_complete(&sb);
	one_row(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "2DCZ", &g);
	assert_released(0);
	sb_free(&sb);
}

static void test_transaction_keeps_server_until_idle(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_query(&sb, "BEGIN");
	client_sends(&sb, 0, "Q", &g);
	pgp_build_command_complete(&sb, "BEGIN");
	pgp_build_ready_for_query(&sb, 'T');
	server_sends(0, &sb, "CZ", &g);
	assert_int_equal(rfq_status(&g, 1), 'T');
	assert_linked(0);

	pgp_build_query(&sb, "COMMIT");
	client_sends(&sb, 0, "Q", &g);
	pgp_build_command_complete(&sb, "COMMIT");
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "CZ", &g);
	assert_released(0);
	assert_int_equal(rig.px.stats_queries, 2);
	sb_free(&sb);
}

static void test_session_mode_keeps_server(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_parse(&sb, "s1", "SELECT 1", NULL, 0);
	pgp_build_sync(&sb);
	from_client(&sb);
	at_server(0, &g);
	/* Session mode: nothing is renamed, nothing given back. */
	assert_string_equal(g.types, "PS");
	assert_string_equal(parse_name(&g, 0), "s1");
	parse_complete(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "1Z", &g);
	assert_linked(0);
	sb_free(&sb);
}

static void test_startup_parameters_set_and_swallowed(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	rig.c->want[tracked_index("TimeZone")] = strdup("UTC");
	pgp_build_query(&sb, "SELECT 1");
	client_sends(&sb, 0, "QQ", &g);
	const char *sql;
	struct pgha_err e;
	assert_int_equal(pgp_parse_query(&g.m[0], &sql, &e), 0);
	assert_string_equal(sql, "SET TimeZone = 'UTC';");

	/* The SET's answers are the proxy's: the client sees only its query's. */
	pgp_build_parameter_status(&sb, "TimeZone", "UTC");
	pgp_build_command_complete(&sb, "SET");
	pgp_build_ready_for_query(&sb, 'I');
	one_row(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "DCZ", &g);
	assert_released(0);
	assert_string_equal(rig.s[0]->param[tracked_index("TimeZone")], "UTC");
	sb_free(&sb);
}

/* ---- prepared statements ---------------------------------------------------- */

static void test_named_parse_renamed(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	uint32_t oid = 23;
	pgp_build_parse(&sb, "mystmt", "SELECT $1", &oid, 1);
	bind_stmt(&sb, "mystmt");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "PBES", &g);
	assert_string_equal(parse_name(&g, 0), "pgha_1");
	assert_string_equal(bind_name(&g, 1), "pgha_1");
	struct pgp_parse_msg pm;
	struct pgha_err e;
	assert_int_equal(pgp_parse_parse(&g.m[0], &pm, &e), 0);
	assert_string_equal(pm.query, "SELECT $1");
	assert_int_equal(pm.param_types.n, 1);

	parse_complete(&sb);
	bind_complete(&sb);
	one_row(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "12DCZ", &g);
	assert_released(0);
	assert_int_equal(rig.s[0]->nprepared, 1);
	sb_free(&sb);
}

static void test_bind_on_other_server_injects_parse(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	prepare("s1", "SELECT 1", 0);
	/* Server 0 went to the back of the idle list: the next transaction gets server 1. */
	bind_stmt(&sb, "s1");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	from_client(&sb);
	assert_linked(1);
	at_server(1, &g);
	assert_string_equal(g.types, "PBES");
	assert_string_equal(parse_name(&g, 0), "pgha_1");
	assert_string_equal(bind_name(&g, 1), "pgha_1");

	/* The injected Parse's ParseComplete is the proxy's, not the client's. */
	parse_complete(&sb);
	bind_complete(&sb);
	one_row(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(1, &sb, "2DCZ", &g);
	assert_released(1);

	/* Back on server 0, which has it: no Parse. */
	bind_stmt(&sb, "s1");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	from_client(&sb);
	assert_linked(0);
	at_server(0, &g);
	assert_string_equal(g.types, "BES");
	assert_string_equal(bind_name(&g, 0), "pgha_1");
	sb_free(&sb);
}

static void test_parse_again_answered_by_proxy(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	prepare("s1", "SELECT 1", 0);
	/* Same text under another name: the same server statement, which server 0 has. */
	pgp_build_parse(&sb, "s2", "SELECT 1", NULL, 0);
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "S", &g);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "1Z", &g);
	assert_released(0);
	assert_int_equal(rig.px.stmt_count, 1);
	sb_free(&sb);
}

static void test_close_kept_describe_renamed(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	prepare("s1", "SELECT 1", 0);
	pgp_build_describe(&sb, 'S', "s1");
	pgp_build_close(&sb, 'S', "s1");
	pgp_build_close(&sb, 'P', "");
	pgp_build_sync(&sb);
	from_client(&sb);
	at_server(0, &g);
	/* The statement Close stays with the proxy (other clients may use it); the portal's goes. */
	assert_string_equal(g.types, "DCS");
	assert_string_equal(describe_name(&g, 0), "pgha_1");

	pgp_build_parameter_description(&sb, NULL, 0);
	no_data(&sb);
	close_complete(&sb);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "tn33Z", &g);
	assert_released(0);
	assert_int_equal(rig.c->nstmts, 0);
	assert_int_equal(rig.s[0]->nprepared, 1);

	/* The name is gone for the client: a Bind of it goes through as it is. */
	bind_stmt(&sb, "s1");
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "BS", &g);
	assert_string_equal(bind_name(&g, 0), "s1");
	sb_free(&sb);
}

static void test_result_type_change_retires_statement(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	prepare("s1", "SELECT * FROM t", 0);
	bind_stmt(&sb, "s1");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "BES", &g);
	pgp_build_error(&sb, "ERROR", "0A000", "cached plan must not change result type", NULL, NULL);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "EZ", &g);
	assert_released(0);

	/* The next Parse of the text prepares a new statement. */
	pgp_build_parse(&sb, "s1", "SELECT * FROM t", NULL, 0);
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "PS", &g);
	assert_string_equal(parse_name(&g, 0), "pgha_2");
	sb_free(&sb);
}

/* ---- errors in the middle of a pipeline ------------------------------------------ */

static void test_error_skips_to_sync(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_parse(&sb, "bad", "SELEC 1", NULL, 0);
	bind_stmt(&sb, "bad");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "PBES", &g);
	assert_string_equal(parse_name(&g, 0), "pgha_1");

	/* The server skips the Bind and Execute: nothing more is owed for them. */
	pgp_build_error(&sb, "ERROR", "42601", "syntax error", NULL, NULL);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "EZ", &g);
	assert_released(0);
	/* It was never prepared there: a Bind of it prepares it again. */
	assert_int_equal(rig.s[0]->nprepared, 0);

	bind_stmt(&sb, "bad");
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "PBS", &g);
	assert_string_equal(parse_name(&g, 0), "pgha_1");
	sb_free(&sb);
}

static void test_error_before_sync_sent(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	prepare("s1", "SELECT 1", 0);
	bind_stmt(&sb, "s1");
	pgp_build_execute(&sb, "", 0);
	pgp_build_flush(&sb);
	client_sends(&sb, 0, "BEH", &g);
	pgp_build_error(&sb, "ERROR", "22012", "division by zero", NULL, NULL);
	server_sends(0, &sb, "E", &g);
	assert_linked(0);

	/* Until its Sync, what the client sends is ignored by the server: passed on as it is. */
	bind_stmt(&sb, "s1");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	client_sends(&sb, 0, "BES", &g);
	assert_string_equal(bind_name(&g, 0), "s1");

	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "Z", &g);
	assert_released(0);
	sb_free(&sb);
}

static void test_error_in_simple_query_waits_for_ready(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_query(&sb, "SELECT 1/0; SELECT 2");
	from_client(&sb);
	pgp_build_error(&sb, "ERROR", "22012", "division by zero", NULL, NULL);
	server_sends(0, &sb, "E", &g);
	assert_linked(0);
	pgp_build_ready_for_query(&sb, 'I');
	server_sends(0, &sb, "Z", &g);
	assert_released(0);
	sb_free(&sb);
}

/* ---- the server ends the session ----------------------------------------------- */

static void test_fatal_mid_query_is_08006(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_query(&sb, "SELECT pg_sleep(10)");
	from_client(&sb);
	pgp_build_error(&sb, "FATAL", "57P01", "terminating connection due to administrator command", NULL,
			NULL);
	from_server(0, &sb);
	rig.s[0] = NULL;   /* closed and freed */
	/* Transaction mode: the transaction is lost, not the client. */
	at_client(&g);
	assert_string_equal(g.types, "EZ");
	struct pgp_notice n = notice_of(&g, 0);
	assert_string_equal(n.sqlstate, "08006");
	assert_string_equal(n.severity, "ERROR");
	assert_non_null(strstr(n.message, "57P01"));
	assert_int_equal(rfq_status(&g, 1), 'I');
	assert_null(rig.c->server);
	assert_int_equal(rig.c->state, CL_IDLE);
	assert_int_equal(rig.pool->nservers, 0);
	sb_free(&sb);
}

static void test_fatal_idle_in_transaction_told_at_next_request(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_query(&sb, "BEGIN");
	from_client(&sb);
	pgp_build_command_complete(&sb, "BEGIN");
	pgp_build_ready_for_query(&sb, 'T');
	server_sends(0, &sb, "CZ", &g);

	pgp_build_error(&sb, "FATAL", "25P03", "terminating connection due to idle-in-transaction timeout",
			NULL, NULL);
	from_server(0, &sb);
	rig.s[0] = NULL;
	/* Nothing unsolicited: its driver would take it for the answer to its next query. */
	at_client(&g);
	assert_int_equal(g.n, 0);
	assert_int_equal(rig.c->state, CL_IDLE);

	/* That request gets it, and all up to its Sync is skipped. */
	bind_stmt(&sb, "");
	pgp_build_execute(&sb, "", 0);
	pgp_build_sync(&sb);
	from_client(&sb);
	at_client(&g);
	assert_string_equal(g.types, "EZ");
	assert_string_equal(notice_of(&g, 0).sqlstate, "08006");
	assert_int_equal(rfq_status(&g, 1), 'I');
	assert_null(rig.c->lost);
	sb_free(&sb);
}

static void test_fatal_in_session_mode_ends_client(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	pgp_build_query(&sb, "SELECT 1");
	from_client(&sb);
	pgp_build_error(&sb, "FATAL", "57P01", "terminating connection due to administrator command", NULL,
			NULL);
	from_server(0, &sb);
	rig.s[0] = NULL;
	/* Session mode: the server's own FATAL, then the end of the connection. */
	at_client(&g);
	assert_string_equal(g.types, "E");
	struct pgp_notice n = notice_of(&g, 0);
	assert_string_equal(n.sqlstate, "57P01");
	assert_string_equal(n.severity, "FATAL");
	assert_true(rig.c->close_when_sent);
	assert_null(rig.c->server);
	sb_free(&sb);
}

/* ---- what the relay decides, before client.c acts on it ------------------------- */

/* The types of the messages queued for the client, not sent yet. */
static void queued_for_client(char *types, size_t cap)
{
	size_t off = rig.c->out_off, n = 0;
	struct pgp_msg m;
	struct pgha_err e;
	while (off < rig.c->out.len && n + 1 < cap) {
		assert_int_equal(pgp_frame(rig.c->out.data + off, rig.c->out.len - off, 0, &m, &e), PGP_OK);
		types[n++] = m.type;
		off += m.total_len;
	}
	types[n] = '\0';
}

static void test_relay_decides_fatal(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	struct relay_result r;
	char types[16];
	pgp_build_query(&sb, "SELECT 1");
	from_client(&sb);
	at_server(0, &g);
	one_row(&sb);
	pgp_build_error(&sb, "FATAL", "57P01", "terminating connection due to administrator command", NULL,
			NULL);
	put(rig.speer[0], &sb);
	rig.s[0]->in.drained = false;
	if (rig.px.cfg.pool_mode == POOL_TRANSACTION) {
		/* The transaction is lost: the server goes, the client is told 08006 (client_server_lost). */
		assert_int_equal(relay_s2c(rig.c, &r), RELAY_CLOSE_SERVER);
		assert_non_null(strstr(r.why, "FATAL 57P01"));
		queued_for_client(types, sizeof(types));
		assert_string_equal(types, "DC");
	} else {
		/* The session is lost: the FATAL is the client's too, then both end. */
		assert_int_equal(relay_s2c(rig.c, &r), RELAY_END_SESSION);
		queued_for_client(types, sizeof(types));
		assert_string_equal(types, "DCE");
	}
	sb_free(&sb);
}

static void test_relay_decides_client_errors(void **state)
{
	struct relay_result r;
	struct strbuf sb = STRBUF_INIT;
	pgp_build_query(&sb, "BEGIN");
	from_client(&sb);
	assert_linked(0);
	/* A length PostgreSQL would refuse: the client fails (FATAL 08P01, then closed). */
	uint8_t bad[5] = {'Q', 0, 0, 0, 2};
	assert_int_equal(write(rig.cpeer, bad, 5), 5);
	rig.c->in.drained = false;
	assert_int_equal(relay_c2s(rig.c, &r), RELAY_FAIL_CLIENT);
	assert_string_equal(r.sqlstate, "08P01");
	assert_non_null(strstr(r.why, "invalid message length 2"));
	rig.c->in.start = rig.c->in.end = 0;

	pgp_build_terminate(&sb);
	put(rig.cpeer, &sb);
	rig.c->in.drained = false;
	assert_int_equal(relay_c2s(rig.c, &r), RELAY_CLOSE_CLIENT);
	assert_true(rig.c->terminated);
	sb_free(&sb);
}

/* ---- streaming ---------------------------------------------------------------- */

static void test_large_query_streamed(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct got g;
	char *sql = malloc(40000);
	assert_non_null(sql);
	memset(sql, ' ', 39999);
	memcpy(sql, "SELECT 1", 8);
	sql[39999] = '\0';
	pgp_build_query(&sb, sql);
	size_t sent = sb.len;
	client_sends(&sb, 0, "Q", &g);
	assert_int_equal(g.len, sent);
	const char *got_sql;
	struct pgha_err e;
	assert_int_equal(pgp_parse_query(&g.m[0], &got_sql, &e), 0);
	assert_string_equal(got_sql, sql);
	free(sql);
	sb_free(&sb);
}

/* Server i on a standby at port 5440 + i in region, its replay position last read at lsn. */
static void on_standby(int i, const char *region, uint64_t lsn)
{
	struct server *s = rig.s[i];
	s->standby = true;
	s->target.port = 5440 + i;
	snprintf(s->target.region, sizeof(s->target.region), "%s", region);
	ryw_standby_find(&rig.px, s->target.host, s->target.port, true)->lsn = lsn;
}

/*
 * Read-your-writes: a read whose standby has not replayed the client's writes
 * moves to an idle server that has, the nearest to the proxy first; without a
 * region, the furthest along, as before.
 */
static void test_ryw_better_prefers_own_region(void **state)
{
	struct proxy *px = &rig.px;
	px->lsn_known = 1000;
	on_standby(0, "b", 500);    /* the read's server: short of the writes */
	on_standby(1, "a", 3000);   /* caught up, another region, further along */
	on_standby(2, "b", 1200);   /* caught up, the proxy's region */
	server_set_state(rig.s[0], SV_ACTIVE);
	px->cfg.region = "b";
	px->cfg.zone = "";
	assert_ptr_equal(relay_ryw_better(rig.c, rig.s[0]), rig.s[2]);
	/* No region: the furthest along. */
	px->cfg.region = "";
	assert_ptr_equal(relay_ryw_better(rig.c, rig.s[0]), rig.s[1]);
	/* The region's standby short of the writes too: the other region's, which has them. */
	px->cfg.region = "b";
	ryw_standby_find(px, rig.s[2]->target.host, rig.s[2]->target.port, false)->lsn = 900;
	assert_ptr_equal(relay_ryw_better(rig.c, rig.s[0]), rig.s[1]);
	/* Lately behind loses whatever its region: not behind comes first. */
	ryw_standby_find(px, rig.s[1]->target.host, rig.s[1]->target.port, false)->behind_until_ms = px->now_ms + 5000;
	assert_ptr_equal(relay_ryw_better(rig.c, rig.s[0]), rig.s[2]);
	/* A read whose standby has the writes stays there. */
	ryw_standby_find(px, rig.s[0]->target.host, rig.s[0]->target.port, false)->lsn = 1000;
	assert_null(relay_ryw_better(rig.c, rig.s[0]));
	server_set_state(rig.s[0], SV_IDLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pipeline_owed_then_released, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_two_syncs_release_after_the_second, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_keeps_server_until_idle, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_session_mode_keeps_server, setup_session, teardown),
		cmocka_unit_test_setup_teardown(test_startup_parameters_set_and_swallowed, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_named_parse_renamed, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_bind_on_other_server_injects_parse, setup_tx2, teardown),
		cmocka_unit_test_setup_teardown(test_parse_again_answered_by_proxy, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_close_kept_describe_renamed, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_result_type_change_retires_statement, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_error_skips_to_sync, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_error_before_sync_sent, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_error_in_simple_query_waits_for_ready, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_fatal_mid_query_is_08006, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_fatal_idle_in_transaction_told_at_next_request, setup_tx,
						teardown),
		cmocka_unit_test_setup_teardown(test_fatal_in_session_mode_ends_client, setup_session, teardown),
		cmocka_unit_test_setup_teardown(test_relay_decides_fatal, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_relay_decides_fatal, setup_session, teardown),
		cmocka_unit_test_setup_teardown(test_relay_decides_client_errors, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_large_query_streamed, setup_tx, teardown),
		cmocka_unit_test_setup_teardown(test_ryw_better_prefers_own_region, setup_tx3, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
