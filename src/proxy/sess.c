/*
 * sess.c — a transaction-pooled client's session state.
 *
 * In transaction mode a client's next transaction may run on another server,
 * so whatever its session holds must either follow it there or keep it on
 * its server. Three parts:
 *
 *  - Which statements can change that state. A look at the text (its first
 *    keyword, a few words anywhere) lets plain queries through at the cost of
 *    a scan; the rest goes through PostgreSQL's own parser (libpg_query),
 *    which says what each statement is: a session SET, a PREPARE, a LISTEN, a
 *    temporary table, a call of pg_advisory_lock()... The parser only finds
 *    candidates: what the session holds is read from the server itself after
 *    the transaction (sess_state_query), so a SET rolled back, a RESET ALL or
 *    a failed PREPARE are seen as they are.
 *  - What can follow the client (struct sess_set): settings and SQL prepared
 *    statements. sess_sync() writes the statements that make another server
 *    hold the same.
 *  - What cannot (advisory locks, LISTEN, temporary tables, WITH HOLD
 *    cursors, LOAD): the state query names it, and the client keeps its
 *    server until it is gone (relay.c), or such a statement is refused
 *    (sess_refusal_sql) when the proxy is set so.
 */
#include "proxy/sess.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "proxy/objects.h"

/* ---- the quick look ---------------------------------------------------------- */

const char *sess_skip_blank(const char *p, const char *end)
{
	while (p < end) {
		if (isspace((unsigned char)*p) || *p == '(') {
			p++;
		} else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
		} else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
			int depth = 0;   /* SQL block comments nest */
			while (p < end) {
				if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
					depth++;
					p += 2;
				} else if (end - p >= 2 && p[0] == '*' && p[1] == '/') {
					p += 2;
					if (--depth == 0)
						break;
				} else {
					p++;
				}
			}
		} else {
			break;
		}
	}
	return p;
}

/*
 * Does s hold one of the words that make any statement a candidate
 * ("advisory", "set_config", "temp"), in any case? One pass, a compare only
 * where a word's first letter stands: this runs on every plain statement.
 */
static bool has_candidate_word(const char *s, size_t len)
{
	static const struct { const char *w; size_t n; } words[] = {
		{"advisory", 8}, {"set_config", 10}, {"temp", 4},
	};
	for (size_t i = 0; i < len; i++) {
		char ch = (char)(s[i] | 0x20);
		if (ch != 'a' && ch != 's' && ch != 't')
			continue;
		for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
			if (words[k].w[0] == ch && len - i >= words[k].n && strncasecmp(s + i, words[k].w, words[k].n) == 0)
				return true;
	}
	return false;
}

bool sess_is_word(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(end - p) >= n && strncasecmp(p, word, n) == 0 &&
	       ((size_t)(end - p) == n || !(isalnum((unsigned char)p[n]) || p[n] == '_'));
}

/* Statements whose first word alone makes them candidates. */
static const char *const first_words[] = {
	"SET", "RESET", "DISCARD", "LISTEN", "UNLISTEN", "LOAD", "PREPARE", "DEALLOCATE", "DO", "CALL",
	"DECLARE",
};

/* Can sql change session state? false is sure; true means: ask the parser. */
bool sess_worth_parsing(const char *sql, size_t len, bool pinned)
{
	const char *end = sql + len, *p = sess_skip_blank(sql, end);
	for (size_t i = 0; i < sizeof(first_words) / sizeof(first_words[0]); i++)
		if (sess_is_word(p, end, first_words[i]))
			return true;
	if (pinned && (sess_is_word(p, end, "DROP") || sess_is_word(p, end, "CLOSE")))
		return true;
	if (sess_is_word(p, end, "EXECUTE")) {
		const char *q = sess_skip_blank(p + 7, end);
		if (end - q >= 5 && strncasecmp(q, "pgha_", 5) == 0)
			return true;   /* perhaps one of the proxy's own statements (sess_reserved_name) */
	}
	if (has_candidate_word(sql, len))
		return true;
	/* Several statements: the others may be any of the above. */
	const char *semi = memchr(p, ';', (size_t)(end - p));
	return semi != NULL && sess_skip_blank(semi + 1, end) < end;
}

/* ---- what the parser says ---------------------------------------------------- */

static void add_name(char ***v, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp((*v)[i], name) == 0)
			return;
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(name);
}

/* A setting SET by its name: read back by name, unless ParameterStatus carries it. */
static void set_by_name(struct sess_class *out, const char *name)
{
	if (name == NULL) {
		out->flags |= SESS_SETTINGS;
		return;
	}
	if (strchr(name, '.') != NULL)
		add_name(&out->custom, &out->ncustom, name);
	if (tracked_index(name) >= 0)
		return;
	out->flags |= SESS_NAMED;
	add_name(&out->names, &out->nnames, name);
}

static const char *const features[] = {
	"session advisory locks", "LISTEN", "WITH HOLD cursors", "temporary tables", "LOAD",
	"SQL prepared statements made inside a function", "more session state than the proxy carries",
};

const char *sess_feature(const char *name)
{
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		if (strcmp(features[i], name) == 0)
			return features[i];
	return "session state";
}

static void pin(struct sess_class *out, const char *feature)
{
	out->flags |= SESS_PIN;
	if (out->feature == NULL)
		out->feature = feature;
}

/* The last part of a FuncCall's name ({"funcname":[{"String":{"sval":...}}, ...]}). */
static const char *func_name(json_t *call)
{
	json_t *names = json_object_get(call, "funcname");
	size_t n = json_array_size(names);
	if (n == 0)
		return NULL;
	return json_string_value(json_object_get(json_object_get(json_array_get(names, n - 1), "String"), "sval"));
}

static void on_func(json_t *call, struct sess_class *out)
{
	const char *f = func_name(call);
	if (f == NULL)
		return;
	if (strcmp(f, "pg_advisory_lock") == 0 || strcmp(f, "pg_advisory_lock_shared") == 0 ||
	    strcmp(f, "pg_try_advisory_lock") == 0 || strcmp(f, "pg_try_advisory_lock_shared") == 0) {
		pin(out, "session advisory locks");
	} else if (strncmp(f, "pg_advisory_unlock", 18) == 0) {
		out->flags |= SESS_UNPIN;
	} else if (strcmp(f, "set_config") == 0) {
		/* A name given as a literal is read back by name; any other, by a full read. */
		json_t *arg = json_array_get(json_object_get(call, "args"), 0);
		set_by_name(out, json_string_value(json_object_get(json_object_get(
			json_object_get(arg, "A_Const"), "sval"), "sval")));
	}
}

/*
 * A relation named with TEMP (CREATE TEMP TABLE, ... AS, SELECT INTO TEMP,
 * a temporary view or sequence): the RangeVar of what is created says 't';
 * one that only refers to a table says 'p'.
 */
static bool temp_rel(json_t *o)
{
	const char *p = json_string_value(json_object_get(o, "relpersistence"));
	return p != NULL && strcmp(p, "t") == 0 && json_object_get(o, "relname") != NULL;
}

bool sess_reserved_name(const char *name)
{
	if (name == NULL || strncmp(name, "pgha_", 5) != 0 || name[5] == '\0')
		return false;
	for (const char *p = name + 5; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return true;
}

/* A PREPARE, EXECUTE or DEALLOCATE (node n) of one of the proxy's names: kind says which. */
static void reserved(json_t *n, char kind, struct sess_class *out)
{
	const char *name = json_string_value(json_object_get(n, "name"));
	if (!sess_reserved_name(name) || out->reserved != NULL)
		return;
	out->flags |= SESS_RESERVED;
	out->reserved = xstrdup(name);
	out->reserved_kind = kind;
}

/* One node of the tree (the object under its type name). */
static void on_node(const char *type, json_t *n, struct sess_class *out)
{
	if (strcmp(type, "FuncCall") == 0) {
		on_func(n, out);
	} else if (strcmp(type, "VariableSetStmt") == 0) {
		const char *kind = json_string_value(json_object_get(n, "kind"));
		const char *name = json_string_value(json_object_get(n, "name"));
		if (json_is_true(json_object_get(n, "is_local")))
			return;
		if (kind != NULL && strcmp(kind, "VAR_SET_MULTI") == 0 && name != NULL &&
		    strncmp(name, "TRANSACTION", 11) == 0)
			return;   /* SET TRANSACTION ...: this transaction only */
		if (kind != NULL && (strcmp(kind, "VAR_SET_VALUE") == 0 || strcmp(kind, "VAR_SET_CURRENT") == 0)) {
			set_by_name(out, name);
		} else {
			/* RESET (to the startup value), SET ... TO DEFAULT, RESET ALL, SESSION CHARACTERISTICS */
			out->flags |= SESS_SETTINGS;
			if (name != NULL && strchr(name, '.') != NULL)
				add_name(&out->custom, &out->ncustom, name);
		}
	} else if (strcmp(type, "DiscardStmt") == 0 || strcmp(type, "DoStmt") == 0 ||
		   strcmp(type, "CallStmt") == 0) {
		out->flags |= SESS_SETTINGS | SESS_PREPARED | SESS_MAYPIN;
	} else if (strcmp(type, "DeallocateStmt") == 0) {
		out->flags |= SESS_PREPARED;
		reserved(n, 'D', out);
	} else if (strcmp(type, "ExecuteStmt") == 0) {
		reserved(n, 'E', out);
	} else if (strcmp(type, "ListenStmt") == 0) {
		pin(out, "LISTEN");
	} else if (strcmp(type, "UnlistenStmt") == 0 || strcmp(type, "ClosePortalStmt") == 0 ||
		   strcmp(type, "DropStmt") == 0) {
		out->flags |= SESS_UNPIN;
	} else if (strcmp(type, "LoadStmt") == 0) {
		pin(out, "LOAD");
		out->flags |= SESS_LOAD;
	} else if (strcmp(type, "DeclareCursorStmt") == 0) {
		/* CURSOR_OPT_HOLD (parsenodes.h): the cursor outlives its transaction. */
		if (json_integer_value(json_object_get(n, "options")) & 0x0020)
			pin(out, "WITH HOLD cursors");
	} else if (strcmp(type, "PrepareStmt") == 0) {
		out->flags |= SESS_PREPARED;
		reserved(n, 'P', out);
	}
}

/* Every node of the tree, nested statements (EXPLAIN, a PREPARE's query) included. */
static void walk(json_t *v, struct sess_class *out)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
			walk(x, out);
		return;
	}
	if (!json_is_object(v))
		return;
	if (temp_rel(v))
		pin(out, "temporary tables");
	const char *k;
	json_t *x;
	json_object_foreach(v, k, x) {
		if (json_is_object(x) && isupper((unsigned char)k[0]))
			on_node(k, x, out);
		walk(x, out);
	}
}

/* A top-level PREPARE: its name and its own text (stmt_location, stmt_len; 0 = to the end). */
static void keep_prepare(json_t *raw, const char *sql, size_t len, struct sess_class *out)
{
	json_t *ps = json_object_get(json_object_get(raw, "stmt"), "PrepareStmt");
	const char *name = json_string_value(json_object_get(ps, "name"));
	if (name == NULL)
		return;
	size_t at = (size_t)json_integer_value(json_object_get(raw, "stmt_location"));
	size_t n = (size_t)json_integer_value(json_object_get(raw, "stmt_len"));
	if (at > len)
		return;
	if (n == 0 || at + n > len)
		n = len - at;
	while (n > 0 && isspace((unsigned char)sql[at])) {
		at++;
		n--;
	}
	out->prepares = xrealloc(out->prepares, (out->nprepares + 1) * sizeof(*out->prepares));
	out->prepares[out->nprepares].name = xstrdup(name);
	out->prepares[out->nprepares].text = xstrndup(sql + at, n);
	out->nprepares++;
}

void sess_classify(const char *sql, size_t len, bool pinned, struct sess_class *out)
{
	memset(out, 0, sizeof(*out));
	if (!sess_worth_parsing(sql, len, pinned))
		return;
	out->parsed = true;
	PgQueryParseResult r = pg_query_parse(sql);
	json_t *tree = r.error == NULL ? json_loads(r.parse_tree, 0, NULL) : NULL;
	pg_query_free_parse_result(r);
	if (tree == NULL) {
		out->flags = SESS_SETTINGS | SESS_PREPARED | SESS_MAYPIN;   /* the server answers it; read all after */
		return;
	}
	json_t *stmts = json_object_get(tree, "stmts");
	size_t i;
	json_t *raw;
	json_array_foreach(stmts, i, raw) {
		walk(json_object_get(raw, "stmt"), out);
		keep_prepare(raw, sql, len, out);
	}
	json_decref(tree);
}

void sess_names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void sess_class_free(struct sess_class *cl)
{
	free(cl->reserved);
	sess_names_free(cl->custom, cl->ncustom);
	sess_names_free(cl->names, cl->nnames);
	for (size_t i = 0; i < cl->nprepares; i++) {
		free(cl->prepares[i].name);
		free(cl->prepares[i].text);
	}
	free(cl->prepares);
	memset(cl, 0, sizeof(*cl));
}

/* ---- the cache of classes ----------------------------------------------------------- */

struct sess_slot {
	uint64_t hash;
	char *text;          /* NULL: empty */
	size_t len;
	bool pinned;
	struct sess_class cl;
};

struct sess_cache {
	struct sess_slot slot[SESS_CACHE_SLOTS];
};

struct sess_cache *sess_cache_new(void)
{
	return xcalloc(1, sizeof(struct sess_cache));
}

static void slot_clear(struct sess_slot *sl)
{
	free(sl->text);
	sess_class_free(&sl->cl);
	memset(sl, 0, sizeof(*sl));
}

void sess_cache_free(struct sess_cache *cache)
{
	if (cache == NULL)
		return;
	for (size_t i = 0; i < SESS_CACHE_SLOTS; i++)
		slot_clear(&cache->slot[i]);
	free(cache);
}

static char **copy_names(char *const *v, size_t n)
{
	char **c = n ? xcalloc(n, sizeof(*c)) : NULL;
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

static void class_copy(struct sess_class *dst, const struct sess_class *src)
{
	*dst = *src;
	dst->custom = copy_names(src->custom, src->ncustom);
	dst->names = copy_names(src->names, src->nnames);
	dst->reserved = src->reserved ? xstrdup(src->reserved) : NULL;
	dst->prepares = src->nprepares ? xcalloc(src->nprepares, sizeof(*dst->prepares)) : NULL;
	for (size_t i = 0; i < src->nprepares; i++) {
		dst->prepares[i].name = xstrdup(src->prepares[i].name);
		dst->prepares[i].text = xstrdup(src->prepares[i].text);
	}
}

void sess_classify_cached(struct sess_cache *cache, const char *sql, size_t len, bool pinned,
			  struct sess_class *out)
{
	if (cache == NULL || len > SESS_CACHE_TEXT || !sess_worth_parsing(sql, len, pinned)) {
		sess_classify(sql, len, pinned, out);
		return;
	}
	uint64_t h = 1469598103934665603ull ^ (uint64_t)pinned;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)sql[i]) * 1099511628211ull;
	struct sess_slot *sl = &cache->slot[h % SESS_CACHE_SLOTS];
	if (sl->text == NULL || sl->hash != h || sl->len != len || sl->pinned != pinned ||
	    memcmp(sl->text, sql, len) != 0) {
		slot_clear(sl);
		sess_classify(sql, len, pinned, &sl->cl);
		sl->hash = h;
		sl->text = xstrndup(sql, len);
		sl->len = len;
		sl->pinned = pinned;
	}
	class_copy(out, &sl->cl);
}

/* ---- sets of settings and statements ----------------------------------------------- */

static int item_cmp(char ka, const char *na, char kb, const char *nb)
{
	if (ka != kb)
		return ka < kb ? -1 : 1;
	return strcasecmp(na, nb);
}

/* Where (kind, name) is or would go. */
static size_t find(const struct sess_set *s, char kind, const char *name, bool *found)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = item_cmp(s->v[mid].kind, s->v[mid].name, kind, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

void sess_set_put(struct sess_set *s, char kind, const char *name, const char *value)
{
	bool found;
	size_t i = find(s, kind, name, &found);
	if (found) {
		s->bytes -= strlen(s->v[i].value);
		free(s->v[i].value);
		s->v[i].value = xstrdup(value);
		s->bytes += strlen(value);
		return;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = (struct sess_item){.kind = kind, .name = xstrdup(name), .value = xstrdup(value)};
	s->n++;
	s->bytes += strlen(name) + strlen(value);
}

void sess_set_del(struct sess_set *s, char kind, const char *name)
{
	bool found;
	size_t i = find(s, kind, name, &found);
	if (!found)
		return;
	s->bytes -= strlen(s->v[i].name) + strlen(s->v[i].value);
	free(s->v[i].name);
	free(s->v[i].value);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
}

const struct sess_item *sess_set_get(const struct sess_set *s, char kind, const char *name)
{
	bool found;
	size_t i = find(s, kind, name, &found);
	return found ? &s->v[i] : NULL;
}

bool sess_set_equal(const struct sess_set *a, const struct sess_set *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (item_cmp(a->v[i].kind, a->v[i].name, b->v[i].kind, b->v[i].name) != 0 ||
		    strcmp(a->v[i].value, b->v[i].value) != 0)
			return false;
	return true;
}

void sess_set_clear(struct sess_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].value);
	}
	s->n = 0;
	s->bytes = 0;
}

void sess_set_copy(struct sess_set *dst, const struct sess_set *src)
{
	if (dst == src)
		return;
	sess_set_clear(dst);
	for (size_t i = 0; i < src->n; i++)
		sess_set_put(dst, src->v[i].kind, src->v[i].name, src->v[i].value);
}

void sess_set_free(struct sess_set *s)
{
	sess_set_clear(s);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- statements for a server ---------------------------------------------------------- */

/* E'...': right whatever standard_conforming_strings is. */
static void put_literal(struct strbuf *sb, const char *s)
{
	sb_puts(sb, "E'");
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			sb_append(sb, s, 1);
		sb_append(sb, s, 1);
	}
	sb_puts(sb, "'");
}

static void put_literals(struct strbuf *sb, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sb_puts(sb, i ? ", " : "");
		put_literal(sb, v[i]);
	}
}

static void put_ident(struct strbuf *sb, const char *s)
{
	sb_puts(sb, "\"");
	for (; *s; s++) {
		if (*s == '"')
			sb_append(sb, s, 1);
		sb_append(sb, s, 1);
	}
	sb_puts(sb, "\"");
}

static void sync_one(const struct sess_item *had, const struct sess_item *want,
		     void (*emit)(void *arg, const char *sql), void *arg)
{
	if (had != NULL && want != NULL && strcmp(had->value, want->value) == 0)
		return;
	struct strbuf sql = STRBUF_INIT;
	const struct sess_item *it = want ? want : had;
	if (it->kind == 'g') {
		if (want == NULL) {
			sb_puts(&sql, "RESET ");
			put_ident(&sql, it->name);
		} else {
			sb_puts(&sql, "SELECT pg_catalog.set_config(");
			put_literal(&sql, want->name);
			sb_puts(&sql, ", ");
			put_literal(&sql, want->value);
			sb_puts(&sql, ", false)");
		}
		emit(arg, sb_str(&sql));
	} else {
		if (had != NULL) {
			sb_puts(&sql, "DEALLOCATE ");
			put_ident(&sql, had->name);
			emit(arg, sb_str(&sql));
		}
		if (want != NULL)
			emit(arg, want->value);
	}
	sb_free(&sql);
}

void sess_sync(const struct sess_set *from, const struct sess_set *to,
	       void (*emit)(void *arg, const char *sql), void *arg)
{
	size_t i = 0, j = 0;
	while (i < from->n || j < to->n) {
		int c = i == from->n ? 1 : j == to->n ? -1 :
			item_cmp(from->v[i].kind, from->v[i].name, to->v[j].kind, to->v[j].name);
		if (c < 0)
			sync_one(&from->v[i++], NULL, emit, arg);
		else if (c > 0)
			sync_one(NULL, &to->v[j++], emit, arg);
		else
			sync_one(&from->v[i++], &to->v[j++], emit, arg);
	}
}

void sess_state_query(unsigned parts, bool pins, char *const *custom, size_t ncustom, char *const *names,
		      size_t nnames, struct strbuf *sql)
{
	/* A first row that is always there: the query stays valid whatever parts it has. */
	sb_puts(sql, "SELECT 'z', '', NULL");
	if (parts & SESS_SETTINGS) {
		sb_puts(sql, " UNION ALL SELECT 'g', name, setting FROM pg_catalog.pg_settings WHERE source = 'session' "
			"AND name NOT IN (");
		put_literals(sql, tracked_params, NTRACKED);
		sb_puts(sql, ")");
		names = custom;   /* custom settings are not in pg_settings; current_setting() knows them by name */
		nnames = ncustom;
	} else if (!(parts & SESS_NAMED)) {
		nnames = 0;
	}
	if (nnames > 0) {
		sb_puts(sql, " UNION ALL SELECT 'g', n, pg_catalog.current_setting(n, true) FROM pg_catalog.unnest("
			"ARRAY[");
		put_literals(sql, (const char *const *)names, nnames);
		sb_puts(sql, "]::text[]) AS n WHERE pg_catalog.current_setting(n, true) IS NOT NULL");
	}
	if (parts & SESS_PREPARED)
		sb_puts(sql, " UNION ALL SELECT 'p', name, NULL FROM pg_catalog.pg_prepared_statements WHERE from_sql");
	if (pins)
		sb_puts(sql,
			" UNION ALL SELECT 'x', 'session advisory locks', NULL WHERE EXISTS (SELECT FROM pg_catalog.pg_locks"
			" WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())"
			" UNION ALL SELECT 'x', 'LISTEN', NULL WHERE EXISTS (SELECT FROM pg_catalog.pg_listening_channels())"
			" UNION ALL SELECT 'x', 'WITH HOLD cursors', NULL WHERE EXISTS (SELECT FROM pg_catalog.pg_cursors"
			" WHERE is_holdable)"
			" UNION ALL SELECT 'x', 'temporary tables', NULL WHERE EXISTS (SELECT FROM pg_catalog.pg_class"
			" WHERE relnamespace = pg_catalog.pg_my_temp_schema())");
}

/* ---- startup options ---------------------------------------------------------------------- */

/* The next word of options (PostgreSQL's pg_split_opts: spaces split, a backslash escapes). */
static bool next_word(const char **p, struct strbuf *w)
{
	const char *s = *p;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return false;
	sb_reset(w);
	while (*s && !isspace((unsigned char)*s)) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		sb_append(w, s, 1);
		s++;
	}
	*p = s;
	return true;
}

static int put_option(const char *arg, struct sess_set *set, struct pgha_err *e)
{
	const char *eq = strchr(arg, '=');
	if (eq == NULL || eq == arg)
		return err_set(e, "startup option \"%s\": expected name=value", arg);
	char *name = xstrndup(arg, (size_t)(eq - arg));
	for (char *q = name; *q; q++)
		if (*q == '-')
			*q = '_';   /* as PostgreSQL reads --name=value */
	sess_set_put(set, 'g', name, eq + 1);
	free(name);
	return 0;
}

int sess_parse_options(const char *options, struct sess_set *set, struct pgha_err *e)
{
	struct strbuf w = STRBUF_INIT;
	const char *p = options;
	int rc = 0;
	while (rc == 0 && next_word(&p, &w)) {
		const char *word = sb_str(&w);
		if (strcmp(word, "-c") == 0) {
			if (!next_word(&p, &w)) {
				rc = err_set(e, "startup option -c without a setting");
				break;
			}
			rc = put_option(sb_str(&w), set, e);
		} else if (strncmp(word, "-c", 2) == 0) {
			rc = put_option(word + 2, set, e);
		} else if (strncmp(word, "--", 2) == 0) {
			rc = put_option(word + 2, set, e);
		} else {
			rc = err_set(e, "startup option \"%.60s\" is not a setting (only -c name=value and "
				     "--name=value pass the pooler)", word);
		}
	}
	sb_free(&w);
	return rc;
}

void sess_refusal_sql(const char *feature, struct strbuf *sql)
{
	struct strbuf msg = STRBUF_INIT, hint = STRBUF_INIT;
	sb_printf(&msg, "%s cannot be used through the proxy in transaction pooling mode: "
		  "the session state it creates would stay on a server other clients share", feature);
	sb_puts(&hint, "Set transaction_pinning = on in the proxy's [proxy] section, or this pool to on in "
		"transaction_pinning_pools (the client then keeps its server until the state is gone), or use a "
		"session-mode proxy");
	sb_puts(sql, "DO $pgha$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = ");
	put_literal(sql, sb_str(&msg));
	sb_puts(sql, ", HINT = ");
	put_literal(sql, sb_str(&hint));
	sb_puts(sql, "; END$pgha$");
	sb_free(&msg);
	sb_free(&hint);
}

void sess_reserved_sql(const struct sess_class *cl, struct strbuf *sql)
{
	struct strbuf msg = STRBUF_INIT;
	const char *code = cl->reserved_kind == 'P' ? "42P05" : "26000";
	sb_printf(&msg, cl->reserved_kind == 'P' ? "prepared statement \"%s\" already exists" :
		  "prepared statement \"%s\" does not exist", cl->reserved);
	sb_printf(sql, "DO $pgha$BEGIN RAISE EXCEPTION USING ERRCODE = '%s', MESSAGE = ", code);
	put_literal(sql, sb_str(&msg));
	sb_puts(sql, ", HINT = ");
	put_literal(sql, "Names pgha_ followed by digits are the proxy's own prepared statements on "
		    "its servers: use another name");
	sb_puts(sql, "; END$pgha$");
	sb_free(&msg);
}
