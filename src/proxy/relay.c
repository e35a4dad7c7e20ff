/*
 * relay.c — forwarding between a client and its server, message by message.
 *
 * Client → server: messages are streamed (copied as they arrive, never
 * buffered whole) except a named Parse, a Describe and a Close, which are
 * read whole to be rewritten, and a Bind, of which only the names at its
 * start are read before the rest streams. Statement names are rewritten:
 * every distinct (query, parameter types) gets one proxy-wide name
 * ("pgha_<n>"), each server remembers which it has prepared, and a Bind or
 * Describe on a server that lacks the statement gets a Parse injected before
 * it. So a client's named statements work on whichever
 * server runs its next transaction, as with PgBouncer >= 1.21.
 *
 * Server → client: each request sent leaves an entry in a queue saying what
 * the server owes for it (ParseComplete, BindComplete, ... ReadyForQuery).
 * Entries also say where the proxy must answer itself (a Parse it did not
 * send because the server had the statement, a Close it kept to itself) and
 * which answers to drop (the ParseComplete of an injected Parse). After an
 * ErrorResponse the server skips everything up to Sync, and so does the
 * queue, and what the client sends until its Sync passes unrewritten. The
 * server's set follows what it reports: DEALLOCATE ALL / DISCARD ALL done,
 * 42P05, 0A000 (see stmt_error). A ReadyForQuery 'I' with nothing owed
 * ends the transaction: the server goes back to the pool. The few server
 * messages the proxy must read (ParameterStatus, CommandComplete,
 * ErrorResponse) are small and read whole; a FATAL is relayed and ends the
 * client's connection too.
 *
 * Memory: streamed messages pass through buffers of a few tens of KiB, up to
 * PostgreSQL's own limit (1 GiB - 1). A message read whole is at most
 * WHOLE_MAX (a named Parse) or SMALL_MAX (Describe, Close), and the whole
 * messages over SMALL_MAX held at one time by all clients together stay
 * under BIG_TOTAL: beyond, the client gets an error (53200). Buffers that
 * grew past PBUF_KEEP shrink back once used.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/util.h"
#include "pgproto/pgproto.h"
#include "proxy/locality.h"
#include "proxy/metrics.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "proxy/sess.h"
#include "proxy/tls.h"

/* The longest message PostgreSQL accepts (PQ_LARGE_MESSAGE_LIMIT): longer ones are refused here. */
#define MSG_MAX ((1u << 30) - 2)
/* A named Parse is read whole (its text is the statement's key): up to this. */
#define WHOLE_MAX (64u * 1024 * 1024)
/* Describe and Close are read whole, the names at the start of a Bind too: up to this. */
#define SMALL_MAX (1024u * 1024)
/* All clients' whole messages over SMALL_MAX together (see big_reserve). */
#define BIG_TOTAL (256u * 1024 * 1024)
/* A Query or an unnamed Parse up to this is read whole to be classified (sess.c); longer ones stream. */
#define CLASSIFY_MAX (64u * 1024)

enum expect_kind {
	EXP_PARSE,          /* '1' */
	EXP_BIND,           /* '2' */
	EXP_DESCRIBE_S,     /* 't' then 'T' or 'n' */
	EXP_DESCRIBE_P,     /* 'T' or 'n' */
	EXP_EXECUTE,        /* rows..., then 'C', 'I' or 's' */
	EXP_CLOSE,          /* '3' */
	EXP_SYNC,           /* 'Z' */
	EXP_QUERY,          /* anything, then 'Z' */
	EXP_FUNC,           /* 'V', then 'Z' */
	EXP_SYNTH_PARSE,    /* we answer '1' ourselves */
	EXP_SYNTH_CLOSE,    /* we answer '3' ourselves */
	EXP_SWALLOW_PARSE,  /* the server's '1' for an injected Parse: drop it */
	EXP_SWALLOW_CLOSE,  /* the server's '3' for a Close the proxy sent (max_prepared_statements): drop it */
	EXP_SWALLOW_QUERY,  /* an injected SET: drop its answers up to ReadyForQuery */
	EXP_STATE_QUERY,    /* sess_state_query(): read its rows, drop its answers up to ReadyForQuery */
	EXP_LSN_QUERY,      /* read-your-writes: the leader's insert position after a read-write transaction */
	EXP_REPLAY_QUERY,   /* ... a standby's replay position, waited for up to ryw_wait */
};

struct expect {
	uint8_t kind;
	bool got_t;              /* EXP_DESCRIBE_S: ParameterDescription seen */
	struct pstmt *ps;        /* the statement a Parse (sent or injected) prepares */
};

struct pstmt {
	uint64_t hash;
	char name[32];           /* "pgha_<n>": the name on servers */
	char *query;
	uint8_t *types;          /* raw Int32 OIDs */
	size_t ntypes;
	struct pstmt *retired_next;   /* in px->stmt_retired once out of the registry */
	struct sess_class *sess;      /* what its text may do to a session (sess.c); NULL: nothing */
};

struct stmt_map {
	char *name;              /* the client's name */
	struct pstmt *ps;
};

/* ---- registry of statements ---------------------------------------------- */

static uint64_t fnv64(const void *a, size_t alen, const void *b, size_t blen)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < alen; i++)
		h = (h ^ ((const uint8_t *)a)[i]) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (size_t i = 0; i < blen; i++)
		h = (h ^ ((const uint8_t *)b)[i]) * 1099511628211ull;
	return h;
}

static struct pstmt *registry_get(struct proxy *px, const char *query, const uint8_t *types, size_t ntypes)
{
	size_t qlen = strlen(query);
	uint64_t h = fnv64(query, qlen, types, ntypes * 4);
	if (px->stmt_cap > 0) {
		for (size_t i = h % px->stmt_cap, n = 0; n < px->stmt_cap; i = (i + 1) % px->stmt_cap, n++) {
			struct pstmt *p = px->stmt_table[i];
			if (p == NULL)
				break;
			if (p->hash == h && p->ntypes == ntypes && strcmp(p->query, query) == 0 &&
			    memcmp(p->types, types, ntypes * 4) == 0)
				return p;
		}
	}
	if ((px->stmt_count + 1) * 2 > px->stmt_cap) {
		size_t cap = px->stmt_cap ? px->stmt_cap * 2 : 256;
		struct pstmt **t = xcalloc(cap, sizeof(*t));
		for (size_t i = 0; i < px->stmt_cap; i++) {
			struct pstmt *p = px->stmt_table[i];
			if (p == NULL)
				continue;
			size_t j = p->hash % cap;
			while (t[j] != NULL)
				j = (j + 1) % cap;
			t[j] = p;
		}
		free(px->stmt_table);
		px->stmt_table = t;
		px->stmt_cap = cap;
	}
	struct pstmt *p = xcalloc(1, sizeof(*p));
	p->hash = h;
	snprintf(p->name, sizeof(p->name), "pgha_%llu", (unsigned long long)++px->stmt_next_id);
	p->query = xstrndup(query, qlen);
	p->types = xmalloc(ntypes * 4 + 1);
	memcpy(p->types, types, ntypes * 4);
	p->ntypes = ntypes;
	struct sess_class cl;
	sess_classify(p->query, qlen, true, &cl);
	if (cl.flags != 0) {
		p->sess = xmalloc(sizeof(*p->sess));
		*p->sess = cl;
	} else {
		sess_class_free(&cl);
	}
	size_t j = h % px->stmt_cap;
	while (px->stmt_table[j] != NULL)
		j = (j + 1) % px->stmt_cap;
	px->stmt_table[j] = p;
	px->stmt_count++;
	return p;
}

/*
 * Take p out of the registry: the next Parse of its text gets a new statement
 * (and name). Clients and servers that refer to p keep it: it is freed with the
 * registry. (Linear probing: the entries after it in its cluster move up.)
 */
static void registry_retire(struct proxy *px, struct pstmt *p)
{
	size_t i = p->hash % px->stmt_cap;
	while (px->stmt_table[i] != p) {
		if (px->stmt_table[i] == NULL)
			return;   /* retired already */
		i = (i + 1) % px->stmt_cap;
	}
	px->stmt_table[i] = NULL;
	px->stmt_count--;
	for (size_t j = (i + 1) % px->stmt_cap; px->stmt_table[j] != NULL; j = (j + 1) % px->stmt_cap) {
		struct pstmt *q = px->stmt_table[j];
		px->stmt_table[j] = NULL;
		size_t k = q->hash % px->stmt_cap;
		while (px->stmt_table[k] != NULL)
			k = (k + 1) % px->stmt_cap;
		px->stmt_table[k] = q;
	}
	p->retired_next = px->stmt_retired;
	px->stmt_retired = p;
	log_info("prepared statement %s: its result type changed on the server: the next Parse of its "
		 "text prepares a new one", p->name);
}

static void pstmt_free(struct pstmt *p)
{
	if (p->sess != NULL) {
		sess_class_free(p->sess);
		free(p->sess);
	}
	free(p->query);
	free(p->types);
	free(p);
}

void relay_registry_free(struct proxy *px)
{
	sess_cache_free(px->sess_cache);
	px->sess_cache = NULL;
	while (px->stmt_retired != NULL) {
		struct pstmt *p = px->stmt_retired;
		px->stmt_retired = p->retired_next;
		pstmt_free(p);
	}
	for (size_t i = 0; i < px->stmt_cap; i++) {
		if (px->stmt_table[i] != NULL)
			pstmt_free(px->stmt_table[i]);
	}
	free(px->stmt_table);
	px->stmt_table = NULL;
	px->stmt_cap = px->stmt_count = 0;
}

/* Has s p prepared? A use: it is then the last one s would close (server_add). */
static bool server_has(struct server *s, const struct pstmt *p)
{
	for (size_t i = 0; i < s->nprepared; i++) {
		if (s->prepared[i] == p) {
			s->prepared_used[i] = ++s->px->stmt_clock;
			return true;
		}
	}
	return false;
}

static void server_forget(struct server *s, const struct pstmt *p)
{
	for (size_t i = 0; i < s->nprepared; i++) {
		if (s->prepared[i] == p) {
			s->nprepared--;
			s->prepared[i] = s->prepared[s->nprepared];
			s->prepared_used[i] = s->prepared_used[s->nprepared];
			return;
		}
	}
}

static void server_keep(struct server *s, struct pstmt *p)
{
	if (s->nprepared == s->capprepared) {
		s->capprepared = s->capprepared ? s->capprepared * 2 : 16;
		s->prepared = xrealloc(s->prepared, s->capprepared * sizeof(*s->prepared));
		s->prepared_used = xrealloc(s->prepared_used, s->capprepared * sizeof(*s->prepared_used));
	}
	s->prepared[s->nprepared] = p;
	s->prepared_used[s->nprepared++] = ++s->px->stmt_clock;
}

static struct pstmt *client_stmt(const struct client *c, const char *name)
{
	for (size_t i = 0; i < c->nstmts; i++)
		if (strcmp(c->stmts[i].name, name) == 0)
			return c->stmts[i].ps;
	return NULL;
}

const char *relay_stmt_text(const struct client *c, const char *name)
{
	const struct pstmt *p = client_stmt(c, name);
	return p ? p->query : NULL;
}

static void client_stmt_set(struct client *c, const char *name, struct pstmt *p)
{
	for (size_t i = 0; i < c->nstmts; i++) {
		if (strcmp(c->stmts[i].name, name) == 0) {
			c->stmts[i].ps = p;
			return;
		}
	}
	if (c->nstmts == c->capstmts) {
		c->capstmts = c->capstmts ? c->capstmts * 2 : 8;
		c->stmts = xrealloc(c->stmts, c->capstmts * sizeof(*c->stmts));
	}
	c->stmts[c->nstmts].name = xstrdup(name);
	c->stmts[c->nstmts].ps = p;
	c->nstmts++;
}

static void client_stmt_del(struct client *c, const char *name)
{
	for (size_t i = 0; i < c->nstmts; i++) {
		if (strcmp(c->stmts[i].name, name) == 0) {
			free(c->stmts[i].name);
			c->stmts[i] = c->stmts[--c->nstmts];
			return;
		}
	}
}

/* ---- the queue of what the server owes ------------------------------------ */

static struct expect *q_head(struct client *c)
{
	return c->expq_len ? &c->expq[c->expq_head] : NULL;
}

static void q_pop(struct client *c)
{
	c->expq_head = (c->expq_head + 1) % c->expq_cap;
	c->expq_len--;
}

static void q_push(struct client *c, enum expect_kind k, struct pstmt *ps)
{
	if (c->expq_len == c->expq_cap) {
		size_t cap = c->expq_cap ? c->expq_cap * 2 : 16;
		struct expect *n = xcalloc(cap, sizeof(*n));
		for (size_t i = 0; i < c->expq_len; i++)
			n[i] = c->expq[(c->expq_head + i) % c->expq_cap];
		free(c->expq);
		c->expq = n;
		c->expq_cap = cap;
		c->expq_head = 0;
	}
	struct expect *e = &c->expq[(c->expq_head + c->expq_len) % c->expq_cap];
	e->kind = (uint8_t)k;
	e->got_t = false;
	e->ps = ps;
	c->expq_len++;
}

bool relay_idle(const struct client *c)
{
	return c->expq_len == 0 && c->c2s_remaining == 0;
}

int relay_own_queries_owed(const struct client *c, int *lsn_at)
{
	struct server *s = c->server;
	*lsn_at = -1;
	if (c->expq_len == 0 || c->c2s_remaining != 0 || (s != NULL && s->s2c_remaining != 0))
		return -1;
	for (size_t i = 0; i < c->expq_len; i++) {
		uint8_t k = c->expq[(c->expq_head + i) % c->expq_cap].kind;
		/* A state read pending: the session may hold what no other client may get (a LISTEN...). */
		if (k != EXP_SWALLOW_QUERY && k != EXP_LSN_QUERY && k != EXP_REPLAY_QUERY)
			return -1;
		if (k == EXP_LSN_QUERY)
			*lsn_at = (int)i;
	}
	return (int)c->expq_len;
}

void relay_reset(struct client *c)
{
	c->expq_head = c->expq_len = 0;
	c->skip_until_sync = false;
	c->c2s_remaining = 0;
	c->px->big_bytes -= c->big;   /* its buffered message is dropped (or it is freed) */
	c->big = 0;
}

void relay_free(struct client *c)
{
	relay_reset(c);
	for (size_t i = 0; i < c->nstmts; i++)
		free(c->stmts[i].name);
	free(c->stmts);
	free(c->expq);
	free(c->refused_stmt);
	c->stmts = NULL;
	c->expq = NULL;
	c->refused_stmt = NULL;
}

/* A Parse of name went through: a refusal of an earlier one of that name is over. */
static void parsed_again(struct client *c, const char *name)
{
	if (c->refused_stmt != NULL && strcmp(c->refused_stmt, name) == 0) {
		free(c->refused_stmt);
		c->refused_stmt = NULL;
	}
}

/* ---- session state in transaction mode (sess.c) ------------------------------------ */

/* What a statement the client sent may do to its session: kept until the state is read. */
static void sess_note(struct client *c, const struct sess_class *cl)
{
	c->sess_pending |= cl->flags;
	if (cl->flags & SESS_LOAD)
		c->loaded = true;
	for (size_t i = 0; i < cl->nnames && !(c->sess_pending & SESS_SETTINGS); i++) {
		bool have = false;
		for (size_t j = 0; j < c->nsess_names && !have; j++)
			have = strcasecmp(c->sess_names[j], cl->names[i]) == 0;
		if (have)
			continue;
		if (c->nsess_names >= 64) {
			c->sess_pending |= SESS_SETTINGS;   /* many names: one full read is cheaper */
			break;
		}
		c->sess_names = xrealloc(c->sess_names, (c->nsess_names + 1) * sizeof(*c->sess_names));
		c->sess_names[c->nsess_names++] = xstrdup(cl->names[i]);
	}
	for (size_t i = 0; i < cl->ncustom; i++) {
		bool have = false;
		for (size_t j = 0; j < c->nsess_custom && !have; j++)
			have = strcasecmp(c->sess_custom[j], cl->custom[i]) == 0;
		if (have)
			continue;
		if (c->nsess_custom >= SESS_MAX_ITEMS || strlen(cl->custom[i]) > SESS_NAME_MAX) {
			c->sess_overflow = true;   /* a setting it cannot read back: the client keeps its server */
			continue;
		}
		c->sess_custom = xrealloc(c->sess_custom, (c->nsess_custom + 1) * sizeof(*c->sess_custom));
		c->sess_custom[c->nsess_custom++] = xstrdup(cl->custom[i]);
	}
	for (size_t i = 0; i < cl->nprepares; i++) {
		if (c->sess_texts.n < SESS_MAX_ITEMS && c->sess_texts.bytes < SESS_MAX_BYTES)
			sess_set_put(&c->sess_texts, 'p', cl->prepares[i].name, cl->prepares[i].text);
		else
			c->sess_overflow = true;
	}
}

struct sync_ctx {
	struct client *c;
	struct server *s;
};

/* One statement that sets the client's state on its server: its own Query, the answers dropped. */
static void emit_sync(void *arg, const char *sql)
{
	struct sync_ctx *x = arg;
	pgp_build_query(&x->s->out, sql);
	q_push(x->c, EXP_SWALLOW_QUERY, NULL);
}

/* Give s the client's settings and SQL prepared statements (nothing when it has them). */
static void sess_give(struct client *c, struct server *s)
{
	if (sess_set_equal(&s->sess, &c->sess))
		return;
	struct sync_ctx x = {c, s};
	sess_sync(&s->sess, &c->sess, emit_sync, &x);
	sess_set_copy(&s->sess, &c->sess);
}

static bool state_check_due(const struct client *c)
{
	return (c->sess_pending & SESS_CHECK) || ((c->sess_pending & SESS_UNPIN) && c->pinned != NULL);
}

/* After a transaction that may have changed the session: ask the server what it holds, as far as needed. */
static void state_query_start(struct client *c, struct server *s)
{
	unsigned parts = c->sess_pending & (SESS_SETTINGS | SESS_NAMED | SESS_PREPARED);
	bool pins = (c->sess_pending & (SESS_PIN | SESS_MAYPIN | SESS_UNPIN)) || c->pinned != NULL;
	struct strbuf sql = STRBUF_INIT;
	sess_state_query(parts, pins, c->sess_custom, c->nsess_custom, c->sess_names, c->nsess_names, &sql);
	pgp_build_query(&s->out, sb_str(&sql));
	sb_free(&sql);
	q_push(c, EXP_STATE_QUERY, NULL);
	c->sess_reading = parts | (pins ? SESS_PIN : 0);
	c->sess_pending = 0;
	sess_names_free(c->sess_names, c->nsess_names);
	c->sess_names = NULL;
	c->nsess_names = 0;
	sess_set_clear(&c->sess_read);
	c->pin_read = NULL;
}

/* A row of the state query: (kind, name, value). */
static void state_row(struct client *c, const struct pgp_msg *m)
{
	size_t n;
	struct pgp_iter it;
	struct pgha_err e;
	if (pgp_parse_data_row(m, &n, &it, &e) != 0 || n != 3)
		return;
	char *f[3];
	for (size_t i = 0; i < 3; i++) {
		struct pgp_value v;
		if (!pgp_next_value(&it, &v))
			v.len = -1;
		f[i] = v.len < 0 ? NULL : xstrndup((const char *)v.data, (size_t)v.len);
	}
	if (f[0] != NULL && f[1] != NULL) {
		const struct sess_item *t;
		switch (f[0][0]) {
		case 'g':
			sess_set_put(&c->sess_read, 'g', f[1], f[2] ? f[2] : "");
			break;
		case 'p':
			/* Its text is the one the client sent: pg_prepared_statements has the whole query string. */
			t = sess_set_get(&c->sess_texts, 'p', f[1]);
			if (t == NULL)
				t = sess_set_get(&c->sess, 'p', f[1]);
			if (t != NULL)
				sess_set_put(&c->sess_read, 'p', f[1], t->value);
			else if (c->pin_read == NULL)
				c->pin_read = sess_feature("SQL prepared statements made inside a function");
			break;
		case 'x':
			if (c->pin_read == NULL)
				c->pin_read = sess_feature(f[1]);
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < 3; i++)
		free(f[i]);
}

/*
 * The state query answered: what the server holds is the client's session
 * now, with its startup values back where a RESET took them away (RESET goes
 * to the startup value, in PostgreSQL); what pins it, if anything.
 */
static void state_done(struct client *c)
{
	struct server *s = c->server;
	/* What was read in full replaces the client's; settings read by name update it. */
	unsigned read = c->sess_reading;
	for (size_t i = c->sess.n; i-- > 0;) {
		char k = c->sess.v[i].kind;
		if ((k == 'g' && (read & SESS_SETTINGS)) || (k == 'p' && (read & SESS_PREPARED)))
			sess_set_del(&c->sess, k, c->sess.v[i].name);
	}
	for (size_t i = 0; i < c->sess_read.n; i++)
		sess_set_put(&c->sess, c->sess_read.v[i].kind, c->sess_read.v[i].name, c->sess_read.v[i].value);
	if (s != NULL)
		sess_set_copy(&s->sess, &c->sess);   /* what the server holds now */
	for (size_t i = 0; i < c->sess_start.n && (read & SESS_SETTINGS); i++) {
		const struct sess_item *it = &c->sess_start.v[i];
		if (sess_set_get(&c->sess, it->kind, it->name) == NULL)
			sess_set_put(&c->sess, it->kind, it->name, it->value);
	}
	const char *pin = c->loaded ? sess_feature("LOAD") : (read & SESS_PIN) ? c->pin_read : c->pinned;
	if (pin == NULL && (c->sess_overflow || c->sess.n > SESS_MAX_ITEMS || c->sess.bytes > SESS_MAX_BYTES))
		pin = sess_feature("more session state than the proxy carries");
	if (pin != c->pinned)
		log_debug("client %s: %s%s", c->addr, pin ? "keeps its server: its session holds " :
			  "no longer keeps its server", pin ? pin : "");
	c->pinned = pin;
	sess_set_clear(&c->sess_read);
	sess_set_clear(&c->sess_texts);
	c->pin_read = NULL;
	if (s != NULL)
		sess_give(c, s);   /* a RESET of a startup value: set it again */
}

/* ---- read-your-writes (docs/READ_YOUR_WRITES.md) ------------------------------------ */

/* The last replay position read on s's standby (NULL: none kept; create: a slot for it). */
/* How long a standby that failed a read's replay check gets no new server of a read-only pool. */
#define RYW_BEHIND_MS 5000

static uint64_t *replay_seen(struct proxy *px, const struct server *s, bool create)
{
	struct ryw_standby *st = ryw_standby_find(px, s->target.host, s->target.port, create);
	return st ? &st->lsn : NULL;
}

/*
 * A read-write transaction ended (its ReadyForQuery is on its way to the
 * client): ask its server where the leader's WAL is now. The answer is at or
 * past the transaction's commit; reads that start from now on wait for it.
 */
static void lsn_request(struct client *c, struct server *s)
{
	pgp_build_query(&s->out, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text");
	q_push(c, EXP_LSN_QUERY, NULL);
	s->lsn_seq = ++c->px->lsn_seq;
}

/* An LSN request numbered up to seq still unanswered? */
static bool lsn_pending_upto(struct proxy *px, uint64_t seq)
{
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		if (p->ro)
			continue;
		for (struct link *sl = p->active.next; sl != &p->active; sl = sl->next) {
			const struct server *s = link_entry(sl, struct server, node);
			if (s->lsn_seq != 0 && s->lsn_seq <= seq)
				return true;
		}
	}
	return false;
}

/* Lately found too far behind for a read (its replay check failed): a read goes elsewhere if it can. */
static bool standby_behind(struct proxy *px, const struct server *s)
{
	const struct ryw_standby *st = ryw_standby_find(px, s->target.host, s->target.port, false);
	return st != NULL && st->behind_until_ms > px->now_ms;
}

/* How good a standby server is for a read of the client's writes (relay_ryw_better). */
struct ryw_rank {
	bool behind;          /* lately found too far behind */
	bool short_of;        /* its last known replay position is before the client's writes */
	enum locality loc;    /* from this proxy's region and zone */
	uint64_t pos;         /* its last known replay position */
};

static struct ryw_rank ryw_rank_of(struct proxy *px, const struct server *s)
{
	const uint64_t *seen = replay_seen(px, s, false);
	struct ryw_rank r = {.behind = standby_behind(px, s), .pos = seen ? *seen : 0,
			     .loc = locality_of(px->cfg.region, px->cfg.zone, &s->target)};
	r.short_of = r.pos < px->lsn_known;
	return r;
}

/*
 * Better: not lately behind over lately behind (whatever the cached positions:
 * a standby that kept up may simply not have been asked lately), then one
 * known to have replayed the client's writes, and among those the nearest to
 * this proxy (region, zone); then the furthest along.
 */
static bool ryw_rank_better(const struct ryw_rank *a, const struct ryw_rank *b)
{
	if (a->behind != b->behind)
		return !a->behind;
	if (a->short_of != b->short_of)
		return !a->short_of;
	if (!a->short_of && a->loc != b->loc)
		return a->loc < b->loc;
	return a->pos > b->pos;
}

struct server *relay_ryw_better(struct client *c, struct server *s)
{
	struct proxy *px = c->px;
	struct ryw_rank best = ryw_rank_of(px, s);
	if (!s->standby || (!best.short_of && !best.behind))
		return NULL;
	struct server *pick = NULL;
	for (struct link *l = s->pool->idle.next; l != &s->pool->idle; l = l->next) {
		struct server *t = link_entry(l, struct server, node);
		if (!t->standby)
			continue;
		struct ryw_rank r = ryw_rank_of(px, t);
		if (ryw_rank_better(&r, &best)) {
			best = r;
			pick = t;
		}
	}
	return pick;
}

/* Every LSN request before c's read is answered: may it run on s now? (relay_ryw_gate) */
static int ryw_check(struct client *c, struct server *s)
{
	struct proxy *px = c->px;
	c->ryw = 0;
	/* A request lost with its server is covered by any later one answered; else only the leader knows. */
	if (px->lsn_lost != 0 && px->lsn_lost <= c->ryw_seq && px->lsn_known_seq < px->lsn_lost)
		return -1;
	uint64_t w = px->lsn_known, *seen = replay_seen(px, s, false);
	c->ryw_target = w;
	if (!s->standby || w == 0 || (seen != NULL && *seen >= w)) {
		c->ryw_on_standby = s->standby;
		return 1;
	}
	/*
	 * Wait on the standby itself, bounded, so the proxy needs no timer: 2 ms
	 * steps up to ryw_wait. Caught up also when it replayed up to the start of
	 * the page W is the first record position of (W just past a page header,
	 * 24 bytes, or a segment's, 40): the leader's insert position after a WAL
	 * switch, or after a record that filled its page, is there, while a
	 * standby's replay position (the end of the last record) stays at the page
	 * start until more WAL comes; no record lies in between. Then W is answered.
	 */
	char target[40];
	snprintf(target, sizeof(target), "'%X/%X'::pg_lsn", (unsigned)(w >> 32), (unsigned)w);
	struct strbuf done = STRBUF_INIT, sql = STRBUF_INIT;
	sb_printf(&done, "(w.lsn >= %s OR (%s - w.lsn IN (24, 40) AND (w.lsn - '0/0'::pg_lsn) %% "
		  "pg_catalog.current_setting('wal_block_size')::numeric = 0))", target, target);
	sb_printf(&sql, "WITH RECURSIVE w(i, lsn) AS (SELECT 0, pg_catalog.pg_last_wal_replay_lsn() UNION ALL "
		  "SELECT w.i + 1, pg_catalog.pg_last_wal_replay_lsn() FROM w, LATERAL (SELECT "
		  "pg_catalog.pg_sleep(0.002)) AS z WHERE NOT %s AND w.i < %d) "
		  "SELECT (CASE WHEN pg_catalog.bool_or(%s) THEN %s ELSE pg_catalog.max(lsn) END)::text FROM w",
		  sb_str(&done), px->cfg.ryw_wait_ms / 2, sb_str(&done), target);
	sb_free(&done);
	pgp_build_query(&s->out, sb_str(&sql));
	sb_free(&sql);
	q_push(c, EXP_REPLAY_QUERY, NULL);
	c->ryw = RYW_CHECK;
	c->ryw_seen = 0;
	px->stats_ryw_waited++;
	return 0;
}

int relay_ryw_gate(struct client *c, struct server *s)
{
	c->ryw_seq = c->px->lsn_seq;
	if (lsn_pending_upto(c->px, c->ryw_seq)) {
		c->ryw = RYW_WAIT_LSN;
		return 0;
	}
	return ryw_check(c, s);
}

int relay_ryw_recheck(struct client *c)
{
	if (lsn_pending_upto(c->px, c->ryw_seq))
		return 0;
	return ryw_check(c, c->server);
}

void relay_ryw_borrow(struct client *c, struct server *s)
{
	pgp_build_query(&s->out, "SET default_transaction_read_only = on");
	q_push(c, EXP_SWALLOW_QUERY, NULL);
}

/*
 * The end of a read on a lent leader server: it goes back read-write. Counted
 * here, once the read is done: a read whose lent server was lost before it ran
 * is lent another, and still is one read.
 */
static void ryw_give_back(struct client *c, struct server *s)
{
	c->px->stats_ryw_leader++;
	pgp_build_query(&s->out, "RESET default_transaction_read_only");
	q_push(c, EXP_SWALLOW_QUERY, NULL);
}

/* The row of an LSN request or of a replay check. */
static void ryw_row(struct client *c, struct server *s, uint8_t head, const struct pgp_msg *m)
{
	uint64_t lsn;
	if (!server_row_lsn(m, &lsn))
		return;
	if (head == EXP_REPLAY_QUERY)
		c->ryw_seen = lsn;
	else
		server_lsn_answered(s, lsn);
}

/* Is there a standby other than s's, within ro_max_lag, not lately found behind? */
static bool other_standby_ahead(struct proxy *px, const struct server *s)
{
	for (int i = 0; i < px->topo.nreplicas; i++) {
		const struct route_target *r = &px->topo.replicas[i];
		if ((r->port == s->target.port && strcmp(r->host, s->target.host) == 0) || r->lag_bytes < 0 ||
		    r->lag_bytes > px->cfg.ro_max_lag)
			continue;
		const struct ryw_standby *st = ryw_standby_find(px, r->host, r->port, false);
		if (st == NULL || st->behind_until_ms <= px->now_ms)
			return true;
	}
	return false;
}

/* An LSN request's or a replay check's answer. */
static void ryw_answer(struct client *c, struct expect *e, char type, const struct pgp_notice *err)
{
	struct proxy *px = c->px;
	struct server *s = c->server;
	if (e->kind == EXP_LSN_QUERY) {
		if (type == 'E' && s != NULL && s->lsn_seq > px->lsn_lost)
			px->lsn_lost = s->lsn_seq;
		if (type == 'Z' && s != NULL) {
			s->lsn_seq = 0;
			px->ryw_wake = true;
		}
		return;
	}
	if (type == 'E')
		log_warn("client %s: reading a standby's replay position failed: %s", c->addr,
			 err && err->message ? err->message : "an error");
	if (type == 'Z') {
		if (s != NULL && c->ryw_seen != 0) {
			uint64_t *seen = replay_seen(px, s, true);
			if (c->ryw_seen > *seen)
				*seen = c->ryw_seen;
		}
		c->ryw = c->ryw_seen >= c->ryw_target && c->ryw_seen != 0 ? RYW_READY : RYW_TO_LEADER;
		if (c->ryw == RYW_TO_LEADER && s != NULL) {
			/*
			 * Too far behind for a read now: new servers of the pool go to another
			 * standby for a while, and this one is closed, not pooled, so that the
			 * pool's next read does not meet it first again.
			 */
			ryw_standby_find(px, s->target.host, s->target.port, true)->behind_until_ms =
				px->now_ms + RYW_BEHIND_MS;
			if (other_standby_ahead(px, s)) {
				s->stale = true;
				s->stale_ms = px->now_ms;
			}
		}
		c->ryw_on_standby = c->ryw == RYW_READY;
	}
}

/* ---- message headers, and the bytes of a message streamed through --------------- */

/* A message header: its type, then its length field (the body's length and its own 4 bytes). */
static void put_header(struct strbuf *sb, char type, size_t body_len)
{
	uint32_t len = (uint32_t)(body_len + 4);
	uint8_t hdr[5] = {(uint8_t)type, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			  (uint8_t)len};
	sb_append(sb, hdr, 5);
}

/* The header of the next message in b: false while fewer than its 5 bytes are there. */
static bool next_header(const struct pbuf *b, const uint8_t **h, char *type, uint32_t *len)
{
	if (pbuf_len(b) < 5)
		return false;
	const uint8_t *p = b->data + b->start;
	*h = p;
	*type = (char)p[0];
	*len = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) | p[4];
	return true;
}

/*
 * What b holds of the message streamed through (*remaining bytes of its body
 * still to come), appended to out (NULL: dropped). false: nothing to move.
 */
static bool stream_rest(struct pbuf *b, uint32_t *remaining, struct strbuf *out)
{
	if (*remaining == 0 || b->start == b->end)
		return false;
	size_t n = pbuf_len(b) < *remaining ? pbuf_len(b) : *remaining;
	if (out != NULL)
		sb_append(out, b->data + b->start, n);
	b->start += n;
	*remaining -= (uint32_t)n;
	return true;
}

/* Answers that are ours to give, when nothing the server owes comes before them. */
static void drain_synth(struct client *c)
{
	struct expect *e;
	while ((e = q_head(c)) != NULL && (e->kind == EXP_SYNTH_PARSE || e->kind == EXP_SYNTH_CLOSE)) {
		put_header(&c->out, e->kind == EXP_SYNTH_PARSE ? '1' : '3', 0);
		q_pop(c);
	}
}

/* The server had an error: it ignores everything up to the next Sync, so do we. */
static void skip_to_sync(struct client *c)
{
	struct server *s = c->server;
	struct expect *e;
	while ((e = q_head(c)) != NULL && e->kind != EXP_SYNC) {
		if (s && e->ps && (e->kind == EXP_PARSE || e->kind == EXP_SWALLOW_PARSE))
			server_forget(s, e->ps);   /* it was never prepared */
		else if (s && e->ps && e->kind == EXP_SWALLOW_CLOSE && !server_has(s, e->ps))
			server_keep(s, e->ps);     /* it was never closed */
		q_pop(c);
	}
	c->skip_until_sync = q_head(c) == NULL;   /* the Sync is still to come */
}

/* An error about one of the proxy's server statements: keep the registry true to the server. */
static void stmt_error(struct client *c, struct expect *e, const struct pgp_notice *err)
{
	if (e->ps == NULL)
		return;
	if ((e->kind == EXP_BIND || e->kind == EXP_DESCRIBE_S) && strcmp(err->sqlstate, "0A000") == 0)
		registry_retire(c->px, e->ps);   /* "cached plan must not change result type" */
	else if ((e->kind == EXP_BIND || e->kind == EXP_DESCRIBE_S) && strcmp(err->sqlstate, "26000") == 0 &&
		 c->server != NULL)
		server_forget(c->server, e->ps);   /* gone from the server after all: prepared again next time */
	else if ((e->kind == EXP_PARSE || e->kind == EXP_SWALLOW_PARSE) && strcmp(err->sqlstate, "42P05") == 0)
		e->ps = NULL;   /* the server has it after all: skip_to_sync must not forget it */
}

/*
 * One server message header: what to do with it. Returns true to forward,
 * false to drop. `status` is the ReadyForQuery status ('Z' only).
 */
static bool on_server_msg(struct client *c, char type, char status, const struct pgp_notice *err)
{
	drain_synth(c);
	struct expect *e = q_head(c);
	if (e != NULL && e->kind == EXP_SWALLOW_QUERY) {
		if (type == 'Z') {
			q_pop(c);
		} else if (type == 'E' && c->sess_failed == NULL) {
			/* As PostgreSQL refuses a login with a bad setting: the client ends (relay_s2c). */
			c->sess_failed = xstrdup(err && err->message ? err->message : "an error without a message");
			snprintf(c->sess_failed_code, sizeof(c->sess_failed_code), "%s",
				 err && err->sqlstate ? err->sqlstate : "08P01");
		}
		return false;
	}
	if (e != NULL && (e->kind == EXP_LSN_QUERY || e->kind == EXP_REPLAY_QUERY)) {
		if (type == 'Z')
			q_pop(c);
		ryw_answer(c, e, type, err);
		return false;
	}
	if (e != NULL && e->kind == EXP_STATE_QUERY) {
		if (type == 'Z') {
			q_pop(c);
			state_done(c);
		} else if (type == 'E') {
			/* Not knowing what the session holds, the client keeps this server. */
			log_warn("client %s: reading its session state failed: %s", c->addr,
				 err && err->message ? err->message : "an error");
			c->pin_read = sess_feature("session state");
		}
		return false;
	}
	/* Asynchronous messages may come at any time. */
	if (type == 'N' || type == 'A' || (type == 'S' && (e == NULL || e->kind != EXP_QUERY)))
		return true;
	if (e == NULL)
		return true;
	switch (type) {
	case 'E':
		if (e->kind == EXP_QUERY || e->kind == EXP_FUNC)
			return true;   /* ends at ReadyForQuery */
		if (err != NULL)
			stmt_error(c, e, err);
		skip_to_sync(c);
		return true;
	case 'Z':
		if (e->kind == EXP_SYNC || e->kind == EXP_QUERY || e->kind == EXP_FUNC)
			q_pop(c);
		c->skip_until_sync = false;
		if (c->server)
			c->server->status = status;
		drain_synth(c);
		return true;
	default:
		break;
	}
	switch (e->kind) {
	case EXP_PARSE:
		if (type == '1')
			q_pop(c);
		return true;
	case EXP_SWALLOW_PARSE:
		if (type == '1') {
			q_pop(c);
			return false;
		}
		return true;
	case EXP_SWALLOW_CLOSE:
		if (type == '3') {
			q_pop(c);
			return false;
		}
		return true;
	case EXP_BIND:
		if (type == '2')
			q_pop(c);
		return true;
	case EXP_CLOSE:
		if (type == '3')
			q_pop(c);
		return true;
	case EXP_DESCRIBE_S:
		if (type == 't')
			e->got_t = true;
		else if (type == 'T' || type == 'n')
			q_pop(c);
		return true;
	case EXP_DESCRIBE_P:
		if (type == 'T' || type == 'n')
			q_pop(c);
		return true;
	case EXP_EXECUTE:
		if (type == 'C' || type == 'I' || type == 's')
			q_pop(c);
		return true;
	default:
		return true;
	}
}

/* ---- client → server ------------------------------------------------------- */

static void emit_parse(struct strbuf *out, const struct pstmt *p)
{
	size_t nlen = strlen(p->name) + 1, qlen = strlen(p->query) + 1;
	put_header(out, 'P', nlen + qlen + 2 + p->ntypes * 4);
	sb_append(out, p->name, nlen);
	sb_append(out, p->query, qlen);
	uint8_t n[2] = {(uint8_t)(p->ntypes >> 8), (uint8_t)p->ntypes};
	sb_append(out, n, 2);
	sb_append(out, p->types, p->ntypes * 4);
}

/*
 * p is being prepared on s (its Parse queued): at max_prepared_statements the
 * statement s used least recently is closed there first, its CloseComplete
 * dropped (EXP_SWALLOW_CLOSE). The server runs what it is sent in order, so a
 * Bind of it queued before still works, and a later one prepares it again. A
 * Close the server skips (an error before it) puts it back (skip_to_sync).
 */
static void server_add(struct client *c, struct server *s, struct pstmt *p)
{
	size_t max = (size_t)c->px->cfg.max_prepared_statements;
	if (max > 0 && s->nprepared >= max) {
		size_t old = 0;
		for (size_t i = 1; i < s->nprepared; i++)
			if (s->prepared_used[i] < s->prepared_used[old])
				old = i;
		struct pstmt *victim = s->prepared[old];
		pgp_build_close(&s->out, 'S', victim->name);
		q_push(c, EXP_SWALLOW_CLOSE, victim);
		server_forget(s, victim);
		c->px->stats_stmt_evicted++;
	}
	server_keep(s, p);
}

/* Make sure the server has p before a Bind/Describe uses it. */
static void ensure_prepared(struct client *c, struct server *s, struct pstmt *p)
{
	if (server_has(s, p))
		return;
	server_add(c, s, p);
	emit_parse(&s->out, p);
	q_push(c, EXP_SWALLOW_PARSE, p);
}

/* Replace the statement name that follows `prefix_len` bytes of body. */
static void emit_renamed(struct strbuf *out, char type, const uint8_t *body, size_t body_len,
			 size_t prefix_len, const char *old_name, const char *new_name)
{
	size_t old_len = strlen(old_name) + 1, new_len = strlen(new_name) + 1;
	size_t rest = body_len - prefix_len - old_len;
	put_header(out, type, prefix_len + new_len + rest);
	sb_append(out, body, prefix_len);
	sb_append(out, new_name, new_len);
	sb_append(out, body + prefix_len + old_len, rest);
}

/*
 * Is a statement of class cl refused: one that would pin with transaction_pinning
 * off, or one naming the proxy's own statements on servers (a client's
 * DEALLOCATE pgha_3 would drop what the proxy counts on for other clients)?
 */
static bool refused(const struct client *c, const struct sess_class *cl)
{
	return (cl->flags & SESS_RESERVED) || ((cl->flags & SESS_PIN) && !c->pool->pinning);
}

/*
 * The statement a refused one becomes (sess_refusal_sql, sess_reserved_sql): the server answers
 * with the error. The caller consumes the client's message.
 */
static void refuse_statement(struct client *c, struct server *s, const uint8_t *h, uint32_t len,
			     const struct sess_class *cl)
{
	struct strbuf sql = STRBUF_INIT;
	if (cl->flags & SESS_RESERVED)
		sess_reserved_sql(cl, &sql);
	else
		sess_refusal_sql(cl->feature, &sql);
	struct pgp_msg m;
	struct pgp_parse_msg pm;
	struct pgha_err e;
	if (h[0] == 'P' && pgp_frame(h, (size_t)len + 1, (size_t)len + 1, &m, &e) == PGP_OK &&
	    pgp_parse_parse(&m, &pm, &e) == 0) {
		/*
		 * It takes no parameter: the client's Bind of it is sent without its
		 * values (refused_bind), whatever types it declared or left to the server.
		 */
		pgp_build_parse(&s->out, "", sb_str(&sql), NULL, 0);
		q_push(c, EXP_PARSE, NULL);
		free(c->refused_stmt);
		c->refused_stmt = xstrdup(pm.stmt);
	} else {
		pgp_build_query(&s->out, sb_str(&sql));
		q_push(c, EXP_QUERY, NULL);
		c->px->stats_queries++;
		if (c->query_start_ms == 0)
			c->query_start_ms = c->px->now_ms;
	}
	sb_free(&sql);
}

/* A whole Parse (named), Describe or Close from the client. Returns -1 on a protocol error. */
static int rewrite(struct client *c, struct server *s, const struct pgp_msg *m, struct pgha_err *e)
{
	const uint8_t *raw = m->body - 5;
	if (m->type == 'P') {
		struct pgp_parse_msg pm;
		if (pgp_parse_parse(m, &pm, e) != 0)
			return -1;
		struct pstmt *p = registry_get(c->px, pm.query, pm.param_types.raw, pm.param_types.n);
		if (p->sess != NULL && refused(c, p->sess)) {
			refuse_statement(c, s, raw, (uint32_t)m->total_len - 1, p->sess);
			return 0;
		}
		client_stmt_set(c, pm.stmt, p);
		parsed_again(c, pm.stmt);
		if (server_has(s, p)) {
			q_push(c, EXP_SYNTH_PARSE, NULL);
		} else {
			server_add(c, s, p);
			emit_parse(&s->out, p);
			q_push(c, EXP_PARSE, p);
		}
		return 0;
	}
	struct pgp_target t;
	if ((m->type == 'D' ? pgp_parse_describe(m, &t, e) : pgp_parse_close(m, &t, e)) != 0)
		return -1;
	struct pstmt *p = t.kind == 'S' && t.name[0] ? client_stmt(c, t.name) : NULL;
	if (m->type == 'C' && t.kind == 'S' && t.name[0]) {
		/* The statement stays on the servers (others may use it); forget the client's name. */
		client_stmt_del(c, t.name);
		q_push(c, EXP_SYNTH_CLOSE, NULL);
		return 0;
	}
	if (p == NULL) {
		sb_append(&s->out, raw, m->total_len);
	} else {
		ensure_prepared(c, s, p);
		emit_renamed(&s->out, 'D', m->body, m->body_len, 1, t.name, p->name);
	}
	if (m->type == 'C')
		q_push(c, EXP_CLOSE, NULL);
	else
		q_push(c, t.kind == 'S' ? EXP_DESCRIBE_S : EXP_DESCRIBE_P, p);
	return 0;
}

/*
 * Whole messages over SMALL_MAX count against BIG_TOTAL for all clients, so a
 * few clients cannot make the proxy hold gigabytes. false: over the budget.
 */
static bool big_reserve(struct client *c, size_t need)
{
	struct proxy *px = c->px;
	if (need <= SMALL_MAX || need <= c->big)
		return true;
	if (px->big_bytes - c->big + need > BIG_TOTAL)
		return false;
	px->big_bytes = px->big_bytes - c->big + need;
	c->big = need;
	return true;
}

static void big_release(struct client *c)
{
	c->px->big_bytes -= c->big;
	c->big = 0;
	c->px->freed_bytes += pbuf_shrink(&c->in);
}

/* Stream a message from its header on: what it will be owed, then its bytes as they come. */
static void stream_msg(struct client *c, struct server *s, const uint8_t *h, uint32_t len)
{
	char type = (char)h[0];
	if (!c->skip_until_sync || type == 'S') {
		switch (type) {
		case 'E': q_push(c, EXP_EXECUTE, NULL); break;
		case 'S': q_push(c, EXP_SYNC, NULL); break;
		case 'F': q_push(c, EXP_FUNC, NULL); break;
		case 'Q': q_push(c, EXP_QUERY, NULL); c->px->stats_queries++; break;
		case 'P': q_push(c, EXP_PARSE, NULL); break;
		case 'B': q_push(c, EXP_BIND, NULL); break;
		case 'D': q_push(c, pbuf_len(&c->in) > 5 && h[5] == 'S' ? EXP_DESCRIBE_S : EXP_DESCRIBE_P, NULL); break;
		case 'C': q_push(c, EXP_CLOSE, NULL); break;
		default: break;   /* Flush, CopyData/Done/Fail: nothing owed of their own */
		}
	}
	/* After an error the server ignores all up to Sync: so does the queue (nothing is owed). */
	if (type == 'S')
		c->skip_until_sync = false;
	/* A round trip starts: timed until the ReadyForQuery that ends what is owed. */
	if ((type == 'Q' || type == 'S') && c->query_start_ms == 0)
		c->query_start_ms = c->px->now_ms;
	sb_append(&s->out, h, 5);
	c->in.start += 5;
	c->c2s_remaining = len - 4;
}

/*
 * A Bind: rewrite the statement name at its start (portal, statement), stream
 * the parameters after it. 1 done, 0 wait for more bytes, -1 protocol error.
 */
/*
 * A Bind of a refused statement (refuse_statement): the unnamed statement that
 * raises the refusal, without the client's values (it takes none). 1 done, 0
 * wait for the whole message, -1 a protocol error.
 */
static int refused_bind(struct client *c, struct server *s, const uint8_t *h, uint32_t len, struct pgha_err *e)
{
	if (len > SMALL_MAX)
		return err_set(e, "Bind message of %u bytes for a refused statement: the proxy reads it whole "
			       "and takes at most %u bytes", len + 1, SMALL_MAX);
	if (pbuf_len(&c->in) < (size_t)len + 1) {
		pbuf_reserve(&c->in, (size_t)len + 1 - pbuf_len(&c->in));
		return 0;
	}
	struct pgp_msg m;
	struct pgp_bind bm;
	if (pgp_frame(h, (size_t)len + 1, SMALL_MAX, &m, e) != PGP_OK || pgp_parse_bind(&m, &bm, e) != 0)
		return -1;
	int16_t *rf = xcalloc(bm.result_formats.n + 1, sizeof(*rf));
	for (size_t i = 0; i < bm.result_formats.n; i++)
		rf[i] = pgp_array_i16(&bm.result_formats, i);
	pgp_build_bind(&s->out, bm.portal, "", NULL, 0, NULL, 0, rf, bm.result_formats.n);
	free(rf);
	q_push(c, EXP_BIND, NULL);
	c->in.start += (size_t)len + 1;
	return 1;
}

static int bind_start(struct client *c, struct server *s, const uint8_t *h, uint32_t len,
		      struct pgha_err *e)
{
	size_t have = pbuf_len(&c->in) - 5, body = len - 4;
	if (have > body)
		have = body;
	const uint8_t *portal = h + 5;
	const uint8_t *pend = memchr(portal, '\0', have);
	const uint8_t *name = pend ? pend + 1 : NULL;
	const uint8_t *nend = pend ? memchr(name, '\0', have - (size_t)(name - portal)) : NULL;
	if (nend == NULL) {
		if (have == body)
			return err_set(e, "Bind message: the portal and statement names are not NUL-terminated");
		if (have >= SMALL_MAX)
			return err_set(e, "Bind message: the portal and statement names take more than %u bytes",
				       SMALL_MAX);
		pbuf_reserve(&c->in, (body < SMALL_MAX ? body : SMALL_MAX) + 5 - pbuf_len(&c->in));
		return 0;
	}
	if (c->refused_stmt != NULL && strcmp(c->refused_stmt, (const char *)name) == 0)
		return refused_bind(c, s, h, len, e);
	struct pstmt *p = name[0] ? client_stmt(c, (const char *)name) : NULL;
	if (p == NULL) {
		stream_msg(c, s, h, len);   /* unnamed, or unknown: the server answers */
		return 1;
	}
	ensure_prepared(c, s, p);
	if (p->sess != NULL)
		sess_note(c, p->sess);
	size_t prefix = (size_t)(nend + 1 - portal), old_len = (size_t)(nend - name) + 1;
	size_t new_len = strlen(p->name) + 1;
	put_header(&s->out, 'B', body - old_len + new_len);
	sb_append(&s->out, portal, (size_t)(pend - portal) + 1);
	sb_append(&s->out, p->name, new_len);
	q_push(c, EXP_BIND, p);
	c->in.start += 5 + prefix;
	c->c2s_remaining = (uint32_t)(body - prefix);
	return 1;
}

static enum relay_next result(struct relay_result *r, enum relay_next next, const char *sqlstate,
			      const char *why)
{
	r->sqlstate = sqlstate;
	snprintf(r->why, sizeof(r->why), "%s", why);
	return next;
}

/* Refuse the client message whose header is at h (len: its length field): error, then close. */
static int refuse(struct client *c, const uint8_t *h, uint32_t len, const char *sqlstate, const char *msg,
		  struct relay_result *r)
{
	size_t have = c->in.end - (size_t)(h - c->in.data), total = (size_t)len + 1;
	c->drop_remaining = have < total ? (uint32_t)(total - have) : 0;
	result(r, RELAY_FAIL_CLIENT, sqlstate, msg);
	return -1;
}

/*
 * A Query, or an unnamed Parse (its text after off bytes of body), in
 * transaction mode: what it may do to the session (sess.c) is noted, or it
 * is refused; then it streams. 1 done, 0 wait for more bytes.
 */
static int classify_msg(struct client *c, struct server *s, const uint8_t *h, uint32_t len, size_t off)
{
	struct pbuf *b = &c->in;
	size_t body = len - 4, have = pbuf_len(b) - 5;
	bool pinned = c->pinned != NULL;
	if (h[0] == 'P')
		parsed_again(c, "");   /* refuse_statement says so again if this one is refused too */
	if (body > CLASSIFY_MAX) {
		/* Too long to wait for: its first words decide; a candidate's effect is read after. */
		if (have < off + 256) {
			pbuf_reserve(b, off + 256 + 5 - pbuf_len(b));
			return 0;
		}
		if (sess_worth_parsing((const char *)h + 5 + off, have - off, pinned))
			c->sess_pending |= SESS_SETTINGS | SESS_PREPARED | SESS_MAYPIN;
		stream_msg(c, s, h, len);
		return 1;
	}
	if (have < body) {
		pbuf_reserve(b, body - have);
		return 0;
	}
	const char *sql = (const char *)h + 5 + off;
	const char *nul = body > off ? memchr(sql, '\0', body - off) : NULL;
	if (nul != NULL) {
		struct sess_class cl;
		if (c->px->sess_cache == NULL)
			c->px->sess_cache = sess_cache_new();
		sess_classify_cached(c->px->sess_cache, sql, (size_t)(nul - sql), pinned, &cl);
		bool no = refused(c, &cl);
		if (no)
			refuse_statement(c, s, h, len, &cl);
		else
			sess_note(c, &cl);
		sess_class_free(&cl);
		if (no) {
			c->in.start += (size_t)len + 1;
			return 1;
		}
	}
	stream_msg(c, s, h, len);   /* without its NUL it is malformed: the server says so */
	return 1;
}

/*
 * The start of a client message (header at h): stream it, or read it whole and
 * rewrite it. 1 done, 0 wait for more bytes, -1 the client fails (r says how).
 */
static int c2s_msg(struct client *c, struct server *s, const uint8_t *h, uint32_t len,
		   struct relay_result *r)
{
	char type = (char)h[0];
	struct pbuf *b = &c->in;
	struct pgha_err e;
	bool pooled = c->px->cfg.pool_mode == POOL_TRANSACTION && !c->skip_until_sync;
	if (type == 'Q' && c->px->cfg.pool_mode == POOL_TRANSACTION)
		return classify_msg(c, s, h, len, 0);
	if (!pooled || !(type == 'P' || type == 'B' || type == 'D' || type == 'C')) {
		stream_msg(c, s, h, len);
		return 1;
	}
	if (pbuf_len(b) < 6 && len > 4)
		return 0;
	if (type == 'P' && (len == 4 || h[5] == '\0'))
		return classify_msg(c, s, h, len, 1);   /* an unnamed statement: nothing to rewrite */
	if (type == 'B') {
		int done = bind_start(c, s, h, len, &e);
		return done < 0 ? refuse(c, h, len, "08P01", e.msg, r) : done;
	}
	size_t max = type == 'P' ? WHOLE_MAX : SMALL_MAX;
	if (len > max) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s message of %u bytes: the proxy reads this message whole and "
			 "takes at most %zu bytes (HINT: use an unnamed statement for longer texts)",
			 pgp_client_type_name(type), len + 1, max);
		return refuse(c, h, len, "54000", msg, r);
	}
	if (pbuf_len(b) < (size_t)len + 1) {
		if (!big_reserve(c, (size_t)len + 1)) {
			char msg[300];
			snprintf(msg, sizeof(msg), "%s message of %u bytes: the proxy holds %u MiB of large "
				 "messages for its clients already (HINT: retry later)",
				 pgp_client_type_name(type), len + 1, BIG_TOTAL >> 20);
			return refuse(c, h, len, "53200", msg, r);
		}
		pbuf_reserve(b, (size_t)len + 1 - pbuf_len(b));
		return 0;
	}
	struct pgp_msg m;
	if (pgp_frame(h, pbuf_len(b), max, &m, &e) != PGP_OK || rewrite(c, s, &m, &e) != 0) {
		result(r, RELAY_FAIL_CLIENT, "08P01", e.msg);
		return -1;
	}
	b->start += m.total_len;
	if (c->big)
		big_release(c);
	else
		c->px->freed_bytes += pbuf_shrink(b);
	return 1;
}

/* 1 all sent, 0 partial (the client is watched for EPOLLOUT), -1 failed (the client must go). */
static int flush_client(struct client *c)
{
	int r = client_send(c, &c->out, &c->out_off);
	if (r == 0)
		proxy_watch(c->px, &c->tag, EPOLLIN | EPOLLOUT);
	return r;
}

/* Make the server's tracked parameters the client's before its work runs there. */
void relay_apply_params(struct client *c, struct server *s)
{
	struct strbuf sql = STRBUF_INIT;
	for (int k = 0; k < NTRACKED; k++) {
		const char *want = pool_param(c, k);
		if (want == NULL || (s->param[k] != NULL && strcmp(s->param[k], want) == 0))
			continue;
		sb_printf(&sql, "SET %s = '", tracked_params[k]);
		for (const char *p = want; *p; p++) {
			if (*p == '\'')
				sb_puts(&sql, "'");
			sb_append(&sql, p, 1);
		}
		sb_puts(&sql, "';");
	}
	if (sql.len > 0) {
		pgp_build_query(&s->out, sb_str(&sql));
		q_push(c, EXP_SWALLOW_QUERY, NULL);
	}
	sb_free(&sql);
	sess_give(c, s);
}

enum relay_next relay_c2s(struct client *c, struct relay_result *res)
{
	struct proxy *px = c->px;
	struct server *s = c->server;
	if (c->ryw != 0) {
		/* Read-your-writes: the client's read waits; what the proxy queued for s goes. */
		if (s->out.len > s->out_off && server_send(s) < 0)
			return result(res, RELAY_CLOSE_SERVER, NULL, "send to the server failed");
		proxy_watch(px, &s->tag, s->out.len > s->out_off ? EPOLLIN | EPOLLOUT : EPOLLIN);
		proxy_watch(px, &c->tag, 0);
		return RELAY_WAIT;
	}
	for (;;) {
		if (s->out.len > s->out_off) {
			int sent = server_send(s);
			if (sent < 0)
				return result(res, RELAY_CLOSE_SERVER, NULL, "send to the server failed");
			if (sent == 0) {
				/* The server is slow: stop reading the client until it drains. */
				proxy_watch(px, &s->tag, EPOLLIN | EPOLLOUT);
				proxy_watch(px, &c->tag, 0);
				return RELAY_WAIT;
			}
		}
		struct pbuf *b = &c->in;
		bool progress = false;
		while (b->start < b->end) {
			if (stream_rest(b, &c->c2s_remaining, &s->out)) {
				progress = true;
				continue;
			}
			if (c->split_hold)
				break;   /* rw_split: the next unit waits for this one's ReadyForQuery */
			const uint8_t *h;
			char type;
			uint32_t len;
			if (!next_header(b, &h, &type, &len))
				break;
			if (len < 4 || len > MSG_MAX) {
				char msg[200];
				snprintf(msg, sizeof(msg), "invalid message length %u from the client (%s; "
					 "PostgreSQL takes 4 to %u)", len, pgp_client_type_name(type), MSG_MAX);
				return result(res, RELAY_FAIL_CLIENT, "08P01", msg);
			}
			if (type == 'X') {
				c->terminated = true;
				b->start = b->end;
				return result(res, RELAY_CLOSE_CLIENT, NULL, "client sent Terminate");
			}
			int r = c2s_msg(c, s, h, len, res);
			if (r < 0)
				return RELAY_FAIL_CLIENT;
			if (r == 0)
				break;
			progress = true;
			/* A read moved by rw_split runs one unit at a time: what follows may write. */
			if (c->split_home != NULL && (type == 'Q' || type == 'S'))
				c->split_hold = true;
		}
		drain_synth(c);
		if (c->out.len > c->out_off && flush_client(c) < 0)
			return result(res, RELAY_CLOSE_CLIENT, NULL, "send to the client failed");
		if (progress || s->out.len > s->out_off)
			continue;   /* send what was queued, then read more */
		if (b->start == b->end)
			b->start = b->end = 0;
		if (b->drained)
			break;   /* it had nothing more a moment ago: epoll says when it has */
		ssize_t r = client_read(c, b);
		if (r == -2)
			break;
		if (r <= 0)
			return result(res, RELAY_CLOSE_CLIENT, NULL, r == 0 ? "client disconnected" : "read error");
	}
	proxy_watch(px, &s->tag, EPOLLIN);
	proxy_watch(px, &c->tag, EPOLLIN);
	return RELAY_WAIT;
}

/* ---- server → client --------------------------------------------------------- */

/*
 * ParameterStatus: the server's values, and the client's own when it changed
 * one (SET, RESET, or a rollback of them): it follows the client to the next
 * server it gets, as the session would with PostgreSQL.
 */
static void track_param(struct client *c, struct server *s, const struct pgp_msg *m)
{
	server_param(s, m);
	struct expect *e = q_head(c);
	if (e != NULL && e->kind == EXP_SWALLOW_QUERY)
		return;   /* our own SET of the client's values */
	struct pgp_param p;
	struct pgha_err pe;
	int k;
	if (pgp_parse_parameter_status(m, &p, &pe) != 0 || (k = tracked_index(p.name)) < 0)
		return;
	free(c->want[k]);
	c->want[k] = xstrdup(p.value);
}

/* CommandComplete: DEALLOCATE ALL and DISCARD ALL (once they ran) drop the server's statements. */
static void command_done(struct server *s, const struct pgp_msg *m)
{
	const char *tag;
	struct pgha_err pe;
	if (pgp_parse_command_complete(m, &tag, &pe) == 0 &&
	    (strcmp(tag, "DEALLOCATE ALL") == 0 || strcmp(tag, "DISCARD ALL") == 0))
		s->nprepared = 0;
}

/* FATAL or PANIC (the non-localised severity when the server sends one). */
static bool ends_session(const struct pgp_notice *err)
{
	const char *sev = err->severity_nl ? err->severity_nl : err->severity;
	return strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0;
}

enum relay_next relay_s2c(struct client *c, struct relay_result *res)
{
	struct server *s = c->server;
	struct proxy *px = c->px;
	for (;;) {
		if (c->out.len > c->out_off) {
			int r = flush_client(c);
			if (r < 0)
				return result(res, RELAY_CLOSE_CLIENT, NULL, "send to the client failed");
			if (r == 0) {
				/* The client is slow: stop reading the server until it drains. */
				proxy_watch(px, &s->tag, 0);
				return RELAY_WAIT;
			}
		}
		struct pbuf *b = &s->in;
		bool ended = false;
		while (b->start < b->end) {
			if (stream_rest(b, &s->s2c_remaining, s->s2c_skip ? NULL : &c->out))
				continue;
			const uint8_t *h;
			char type;
			uint32_t len;
			if (!next_header(b, &h, &type, &len))
				break;
			if (len < 4)
				return result(res, RELAY_CLOSE_SERVER, NULL, "invalid message length from the server");
			char status = 0;
			if (type == 'Z') {
				if (pbuf_len(b) < 6)
					break;
				status = (char)h[5];
			}
			struct pgp_notice notice;
			const struct pgp_notice *err = NULL;
			uint8_t head = c->expq_len > 0 ? q_head(c)->kind : 0;
			bool state_row_msg = type == 'D' && (head == EXP_STATE_QUERY || head == EXP_LSN_QUERY ||
							     head == EXP_REPLAY_QUERY);
			if ((type == 'S' || type == 'C' || type == 'E' || state_row_msg) && len <= SMALL_MAX) {
				/* Small messages the proxy reads: wait until they are whole. */
				if (pbuf_len(b) < (size_t)len + 1) {
					pbuf_reserve(b, (size_t)len + 1 - pbuf_len(b));
					break;
				}
				struct pgp_msg pm;
				struct pgha_err pe;
				if (pgp_frame(h, pbuf_len(b), SMALL_MAX, &pm, &pe) == PGP_OK) {
					if (type == 'S')
						track_param(c, s, &pm);
					else if (type == 'C')
						command_done(s, &pm);
					else if (type == 'D' && head == EXP_STATE_QUERY)
						state_row(c, &pm);
					else if (type == 'D')
						ryw_row(c, s, head, &pm);
					else if (pgp_parse_notice(&pm, &notice, &pe) == 0)
						err = &notice;
				}
			}
			/*
			 * Before the account of what is owed takes the error in: whether the client
			 * still waits for answers decides how it learns of the lost transaction.
			 */
			if (err != NULL && ends_session(err)) {
				b->start += (size_t)len + 1;
				if (px->cfg.pool_mode == POOL_SESSION) {
					/* The session is gone: so is the client's, as with PostgreSQL. */
					sb_append(&c->out, h, (size_t)len + 1);
					return RELAY_END_SESSION;
				}
				/* Transaction mode: the transaction is lost, not the client (08006). */
				snprintf(res->why, sizeof(res->why), "the server ended the session: %s %s: %.200s",
					 err->severity_nl ? err->severity_nl : err->severity,
					 err->sqlstate ? err->sqlstate : "", err->message ? err->message : "");
				return RELAY_CLOSE_SERVER;
			}
			bool fwd = on_server_msg(c, type, status, err);
			if (c->sess_failed != NULL) {
				snprintf(res->why, sizeof(res->why), "the proxy could not give this session its settings "
					 "on the server: %.900s", c->sess_failed);
				res->sqlstate = c->sess_failed_code;
				return RELAY_FAIL_CLIENT;
			}
			if (c->ryw == RYW_READY || c->ryw == RYW_TO_LEADER) {
				/* The replay check's ReadyForQuery (whole: 'Z' waits for its status byte) ends here. */
				b->start += (size_t)len + 1;
				enum relay_next go = c->ryw == RYW_READY ? RELAY_RYW_GO : RELAY_RYW_LEADER;
				c->ryw = 0;
				return go;
			}
			if (type == 'Z' && status == 'I' && c->expq_len == 0 && px->cfg.pool_mode == POOL_TRANSACTION) {
				if (fwd && !c->ro && c->split_home == NULL && px->cfg.read_your_writes && s->lsn_seq == 0)
					lsn_request(c, s);
				else if (fwd && c->ryw_home != NULL)
					ryw_give_back(c, s);
				else if (fwd && c->ryw_on_standby) {
					px->stats_ryw_standby++;   /* once the read is done, as a lent one */
					c->ryw_on_standby = false;
				}
				if (state_check_due(c))
					state_query_start(c, s);
			}
			if (fwd)
				sb_append(&c->out, h, 5);
			b->start += 5;
			s->s2c_remaining = len - 4;
			s->s2c_skip = !fwd;
			if (type == 'Z' && c->expq_len == 0 && c->query_start_ms != 0) {
				metrics_observe_query(px, px->now_ms - c->query_start_ms);
				c->query_start_ms = 0;
			}
			if (type == 'Z' && status == 'I' && c->expq_len == 0) {
				ended = true;
				if (fwd && s->pool->ro && s->standby &&
				    locality_of(px->cfg.region, px->cfg.zone, &s->target) == LOC_REMOTE)
					px->stats_ro_remote++;
			}
			if (type == 'Z' && c->expq_len == 0)
				c->split_hold = false;
		}
		/* A client moved by rw_split goes back to its pool between transactions, what it sent since too. */
		if (ended && px->cfg.pool_mode == POOL_TRANSACTION && c->pinned == NULL && s->s2c_remaining == 0 &&
		    b->start == b->end && (pbuf_len(&c->in) == 0 || c->split_home != NULL) && c->c2s_remaining == 0) {
			b->start = b->end = 0;
			px->stats_xacts++;
			metrics_observe_xact(px, px->now_ms - c->xact_start_ms);
			return RELAY_RELEASE;
		}
		if (c->out.len > c->out_off)
			continue;
		if (b->start == b->end)
			b->start = b->end = 0;
		else
			pbuf_compact(b);
		if (b->drained)
			break;
		ssize_t r = server_read(s, b);
		if (r > 0)
			px->stats_bytes_from_servers += (uint64_t)r;
		if (r == -2)
			break;
		if (r <= 0)
			return result(res, RELAY_CLOSE_SERVER, NULL,
				      r == 0 ? "the server closed the connection" : "read error");
	}
	/* A state query or settings queued above go out now. */
	if (s->out.len > s->out_off && server_send(s) < 0)
		return result(res, RELAY_CLOSE_SERVER, NULL, "send to the server failed");
	proxy_watch(px, &s->tag, s->out.len > s->out_off ? EPOLLIN | EPOLLOUT : EPOLLIN);
	proxy_watch(px, &c->tag, EPOLLIN);
	if (c->split_home != NULL && !c->split_hold && pbuf_len(&c->in) > 0 && c->ryw == 0)
		return RELAY_MORE;   /* held while its previous unit ran, inside its read-only transaction */
	return RELAY_WAIT;
}
