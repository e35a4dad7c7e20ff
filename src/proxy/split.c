/*
 * split.c — which statement texts may run on a standby, for the
 * single-endpoint read/write split (`[proxy] rw_split`, relay.c routes).
 *
 * Pgpool-II decides this with its own parser and a list of functions that
 * write; here PostgreSQL's own parser (libpg_query) says what each statement
 * is, and the list is the other way round: a SELECT may leave the leader only
 * when every function it calls is known to be safe. What the parser cannot
 * see (a function reached through an operator, a view or a column default)
 * is not looked for: a standby refuses a write with 25006, never runs it.
 */
#include "proxy/split.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "proxy/objects.h"
#include "proxy/relay.h"
#include "proxy/sess.h"

/*
 * `default`: functions that neither write nor need a transaction ID, that
 * applications call in reads. Sorted (bsearch). Not here on purpose: nextval,
 * setval, txid_current, pg_current_wal_lsn and the like (a standby refuses
 * them), set_config, the advisory locks, pg_notify, lo_*, dblink*.
 */
static const char *const default_safe[] = {
	"abs", "age", "array_agg", "array_length", "array_lower", "array_position", "array_to_json",
	"array_to_string", "array_upper", "avg", "bit_and", "bit_length", "bit_or", "bool_and", "bool_or",
	"btrim", "cardinality", "cbrt", "ceil", "ceiling", "char_length", "character_length", "chr",
	"clock_timestamp", "coalesce", "concat", "concat_ws", "corr", "count", "cume_dist", "current_database",
	"current_schema", "current_schemas", "current_setting", "date_part", "date_trunc", "decode",
	"degrees", "dense_rank", "div", "encode", "every", "exp", "extract", "first_value", "floor", "format",
	"gen_random_uuid", "generate_series", "generate_subscripts", "greatest", "has_column_privilege",
	"has_database_privilege", "has_schema_privilege", "has_table_privilege", "initcap", "isfinite",
	"json_agg", "json_array_elements", "json_array_elements_text", "json_array_length",
	"json_build_array", "json_build_object", "json_each", "json_each_text", "json_extract_path",
	"json_extract_path_text", "json_object_agg", "json_object_keys", "json_typeof", "jsonb_agg",
	"jsonb_array_elements", "jsonb_array_elements_text", "jsonb_array_length", "jsonb_build_array",
	"jsonb_build_object", "jsonb_each", "jsonb_each_text", "jsonb_extract_path",
	"jsonb_extract_path_text", "jsonb_object_agg", "jsonb_object_keys", "jsonb_path_exists",
	"jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first", "jsonb_pretty",
	"jsonb_set", "jsonb_strip_nulls", "jsonb_typeof", "justify_days", "justify_hours",
	"justify_interval", "lag", "last_value", "lead", "least", "left", "length", "ln", "localtime",
	"localtimestamp", "log", "lower", "lpad", "ltrim", "make_date", "make_interval", "make_time",
	"make_timestamp", "make_timestamptz", "max", "md5", "min", "mod", "now", "nth_value", "ntile",
	"nullif", "octet_length", "overlay", "percent_rank", "percentile_cont", "percentile_disc",
	"pg_backend_pid", "pg_is_in_recovery", "pg_last_wal_replay_lsn", "pg_postmaster_start_time",
	"pg_sleep", "pg_typeof", "pi", "position", "power", "quote_ident", "quote_literal",
	"quote_nullable", "radians", "random", "rank", "regexp_match", "regexp_matches", "regexp_replace",
	"regexp_split_to_array", "regexp_split_to_table", "repeat", "replace", "reverse", "right", "round",
	"row_number", "row_to_json", "rpad", "rtrim", "sign", "split_part", "sqrt", "starts_with",
	"statement_timestamp", "stddev", "stddev_pop", "stddev_samp", "string_agg", "string_to_array",
	"strpos", "substr", "substring", "sum", "timeofday", "to_char", "to_date", "to_hex", "to_json",
	"to_jsonb", "to_number", "to_timestamp", "transaction_timestamp", "translate", "trim", "trunc",
	"unnest", "upper", "uuid_generate_v4", "var_pop", "var_samp", "variance", "version",
	"width_bucket",
};
#define NDEFAULT (sizeof(default_safe) / sizeof(default_safe[0]))

#define SPLIT_CACHE_SLOTS 256
#define SPLIT_CACHE_TEXT 1024

struct split_slot {
	uint64_t hash;
	char *text;          /* NULL: empty */
	size_t len;
	uint8_t key;         /* statements, in_ro_xact before */
	bool may, in_after;
};

struct split_rules {
	bool with_default;
	char **names;        /* the list's other names, lowercase as given */
	size_t nnames;
	struct split_slot slot[SPLIT_CACHE_SLOTS];
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct split_rules *split_rules_new(const char *list, struct pgha_err *e)
{
	struct split_rules *r = xcalloc(1, sizeof(*r));
	char *copy = xstrdup(list ? list : "default"), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		size_t n = strlen(tok);
		while (n > 0 && isspace((unsigned char)tok[n - 1]))
			tok[--n] = '\0';
		if (n == 0)
			continue;
		if (strcmp(tok, "default") == 0) {
			r->with_default = true;
			continue;
		}
		for (const char *p = tok; *p; p++) {
			if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '$')) {
				err_set(e, "rw_split_safe_functions: \"%s\" is not a function name (HINT: names, "
					"optionally schema-qualified, separated by commas; \"default\" for the built-in list)",
					tok);
				free(copy);
				split_rules_free(r);
				return NULL;
			}
		}
		r->names = xrealloc(r->names, (r->nnames + 1) * sizeof(*r->names));
		r->names[r->nnames++] = xstrdup(tok);
	}
	free(copy);
	return r;
}

void split_rules_free(struct split_rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->names);
	for (size_t i = 0; i < SPLIT_CACHE_SLOTS; i++)
		free(r->slot[i].text);
	free(r);
}

static bool listed(const struct split_rules *r, const char *name)
{
	for (size_t i = 0; i < r->nnames; i++)
		if (strcmp(r->names[i], name) == 0)
			return true;
	return false;
}

/* A FuncCall's name ({"funcname":[{"String":{"sval":...}}, ...]}): is it safe? */
static bool func_safe(const struct split_rules *r, json_t *call)
{
	json_t *names = json_object_get(call, "funcname");
	size_t n = json_array_size(names);
	if (n == 0 || n > 2)
		return false;
	const char *parts[2] = {NULL, NULL};
	for (size_t i = 0; i < n; i++) {
		parts[i] = json_string_value(json_object_get(json_object_get(json_array_get(names, i), "String"), "sval"));
		if (parts[i] == NULL)
			return false;
	}
	const char *fn = parts[n - 1];
	char qualified[256];
	if (n == 2) {
		snprintf(qualified, sizeof(qualified), "%s.%s", parts[0], fn);
		if (listed(r, qualified))
			return true;
		if (strcmp(parts[0], "pg_catalog") != 0)
			return false;
	}
	if (listed(r, fn))
		return true;
	return r->with_default && bsearch(&fn, default_safe, NDEFAULT, sizeof(default_safe[0]), name_cmp) != NULL;
}

/* Does the tree under v only read: no write (a data-modifying WITH), no INTO, no row lock, safe functions? */
static bool reads_only(const struct split_rules *r, json_t *v)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
			if (!reads_only(r, x))
				return false;
		return true;
	}
	if (!json_is_object(v))
		return true;
	const char *k;
	json_t *x;
	json_object_foreach(v, k, x) {
		if (strcmp(k, "InsertStmt") == 0 || strcmp(k, "UpdateStmt") == 0 || strcmp(k, "DeleteStmt") == 0 ||
		    strcmp(k, "MergeStmt") == 0 || strcmp(k, "intoClause") == 0 || strcmp(k, "lockingClause") == 0)
			return false;
		if (strcmp(k, "FuncCall") == 0 && !func_safe(r, x))
			return false;
		if (!reads_only(r, x))
			return false;
	}
	return true;
}

/* The integer or string value of option `name` of a TransactionStmt's options list. */
static json_t *xact_option(json_t *options, const char *name)
{
	size_t i;
	json_t *o;
	json_array_foreach(options, i, o) {
		json_t *d = json_object_get(o, "DefElem");
		const char *dn = json_string_value(json_object_get(d, "defname"));
		if (dn != NULL && strcmp(dn, name) == 0)
			return json_object_get(json_object_get(d, "arg"), "A_Const");
	}
	return NULL;
}

/* One statement (the object under "stmt"), from *in: may it run on a standby? */
static bool stmt_may_read(const struct split_rules *r, json_t *stmt, bool statements, bool *in)
{
	json_t *t = json_object_get(stmt, "TransactionStmt");
	const char *kind = t ? json_string_value(json_object_get(t, "kind")) : NULL;
	if (*in) {
		if (kind != NULL) {
			if (strcmp(kind, "TRANS_STMT_COMMIT") == 0 || strcmp(kind, "TRANS_STMT_ROLLBACK") == 0)
				*in = false;
			return strcmp(kind, "TRANS_STMT_PREPARE") != 0;
		}
		/* What a read-only transaction on the leader allows and a standby does not. */
		if (json_object_get(stmt, "ListenStmt") != NULL)
			return false;
		json_t *rel = json_object_get(json_object_get(stmt, "CreateStmt"), "relation");
		const char *pers = json_string_value(json_object_get(rel, "relpersistence"));
		return pers == NULL || strcmp(pers, "t") != 0;
	}
	if (kind != NULL) {
		if (strcmp(kind, "TRANS_STMT_BEGIN") != 0 && strcmp(kind, "TRANS_STMT_START") != 0)
			return false;
		json_t *opts = json_object_get(t, "options");
		json_t *ro = xact_option(opts, "transaction_read_only");
		json_t *iso = xact_option(opts, "transaction_isolation");
		const char *level = json_string_value(json_object_get(json_object_get(iso, "sval"), "sval"));
		if (json_integer_value(json_object_get(json_object_get(ro, "ival"), "ival")) != 1 ||
		    (level != NULL && strcmp(level, "serializable") == 0))
			return false;
		*in = true;
		return true;
	}
	if (!statements)
		return false;
	if (json_object_get(stmt, "VariableShowStmt") != NULL)
		return true;
	json_t *sel = json_object_get(stmt, "SelectStmt");
	return sel != NULL && reads_only(r, sel);
}

/* Worth the parser at all? The first word of a candidate, as sess.c looks. */
static bool worth_parsing(const char *sql, size_t len, bool statements, bool in)
{
	const char *end = sql + len, *p = sess_skip_blank(sql, end);
	if (in) {
		/* Inside a read-only transaction only its end and what a standby refuses matter. */
		static const char *const words[] = {"COMMIT", "END", "ROLLBACK", "ABORT", "PREPARE", "LISTEN", "CREATE"};
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (sess_is_word(p, end, words[i]))
				return true;
		const char *semi = memchr(p, ';', (size_t)(end - p));
		return semi != NULL && sess_skip_blank(semi + 1, end) < end;
	}
	if (sess_is_word(p, end, "BEGIN") || sess_is_word(p, end, "START"))
		return true;
	return statements && (sess_is_word(p, end, "SELECT") || sess_is_word(p, end, "WITH") ||
			      sess_is_word(p, end, "VALUES") || sess_is_word(p, end, "TABLE") ||
			      sess_is_word(p, end, "SHOW"));
}

static bool classify(const struct split_rules *r, const char *sql, size_t len, bool statements, bool *in)
{
	PgQueryParseResult pr = pg_query_parse(sql);
	json_t *tree = pr.error == NULL ? json_loads(pr.parse_tree, 0, NULL) : NULL;
	pg_query_free_parse_result(pr);
	if (tree == NULL)
		return false;
	json_t *stmts = json_object_get(tree, "stmts");
	bool may = json_array_size(stmts) > 0;
	size_t i;
	json_t *raw;
	json_array_foreach(stmts, i, raw) {
		if (!stmt_may_read(r, json_object_get(raw, "stmt"), statements, in)) {
			may = false;
			break;
		}
	}
	json_decref(tree);
	return may;
}

bool split_may_read(struct split_rules *r, const char *sql, size_t len, bool statements, bool *in_ro_xact)
{
	uint8_t key = (uint8_t)((statements ? 2 : 0) | (*in_ro_xact ? 1 : 0));
	if (!worth_parsing(sql, len, statements, *in_ro_xact))
		return *in_ro_xact;   /* not cached: every write a client sends would fill the cache */
	if (len > SPLIT_CACHE_TEXT)
		return classify(r, sql, len, statements, in_ro_xact);
	uint64_t h = 1469598103934665603ull ^ key;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)sql[i]) * 1099511628211ull;
	struct split_slot *sl = &r->slot[h % SPLIT_CACHE_SLOTS];
	if (sl->text == NULL || sl->hash != h || sl->len != len || sl->key != key || memcmp(sl->text, sql, len) != 0) {
		free(sl->text);
		bool in = *in_ro_xact;
		sl->may = classify(r, sql, len, statements, &in);
		sl->in_after = in;
		sl->hash = h;
		sl->text = xstrndup(sql, len);
		sl->len = len;
		sl->key = key;
	}
	*in_ro_xact = sl->in_after;
	return sl->may;
}

/* Statements Parsed earlier in the unit being judged (each proven, or the unit went to the leader). */
#define UNIT_PARSES 16
struct unit_parses {
	const char *name[UNIT_PARSES];
	size_t n;
};

static bool parsed_in_unit(const struct unit_parses *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->name[i], name) == 0)
			return true;
	return false;
}

/*
 * The text a message carries: a Query's, a Parse's, or the statement a Bind
 * names ("" for one Parsed earlier in the unit: judged then).
 */
static const char *unit_text(struct client *c, char type, const char *body, size_t n, const struct unit_parses *u)
{
	const char *nul = memchr(body, '\0', n);
	if (nul == NULL)
		return NULL;
	if (type == 'Q')
		return body;
	const char *second = nul + 1, *end = body + n;
	if (second >= end || memchr(second, '\0', (size_t)(end - second)) == NULL)
		return NULL;
	if (type == 'P')
		return second;
	/* Bind: the statement a Parse earlier in this unit made (pgJDBC's first use of a name), or one of before. */
	if (parsed_in_unit(u, second))
		return "";
	return second[0] ? relay_stmt_text(c, second) : NULL;
}

int split_route(struct client *c)
{
	struct proxy *px = c->px;
	if (px->split == NULL) {
		struct pgha_err e;
		px->split = split_rules_new(px->cfg.rw_split_safe_functions, &e);   /* checked at load */
		if (px->split == NULL)
			return 0;
	}
	const struct pbuf *b = &c->in;
	const uint8_t *p = b->data + b->start, *end = b->data + b->end;
	bool statements = px->cfg.rw_split == RW_SPLIT_STATEMENTS, in = false, any = false;
	struct unit_parses parses = {.n = 0};
	while (p < end) {
		if (end - p < 5)
			break;
		char type = (char)p[0];
		uint32_t len = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) | p[4];
		if (len < 4 || (size_t)(p - (b->data + b->start)) + len + 1 > SPLIT_UNIT_MAX)
			return 0;
		if ((size_t)(end - p) < (size_t)len + 1)
			break;
		const char *body = (const char *)p + 5;
		size_t n = len - 4;
		p += len + 1;
		switch (type) {
		case 'Q':
		case 'P':
		case 'B': {
			const char *sql = unit_text(c, type, body, n, &parses);
			if (sql == NULL)
				return 0;
			if (sql[0] != '\0' && !split_may_read(px->split, sql, strlen(sql), statements, &in))
				return 0;
			if (type == 'P') {
				if (parses.n == UNIT_PARSES)
					return 0;
				parses.name[parses.n++] = body;   /* its name: the body starts with it */
			}
			any = true;
			if (type == 'Q')
				return 1;
			break;
		}
		case 'S':
		case 'H':
			return any;
		case 'D':
		case 'E':
		case 'C':
			break;
		default:
			return 0;   /* a function call, COPY data, Terminate...: the leader */
		}
	}
	/* Not all here: make room for the rest of the unit, up to its bound. */
	size_t have = pbuf_len(b), want = have + 4096;
	if (end - p >= 5) {
		uint32_t len = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) | p[4];
		want = (size_t)(p - (b->data + b->start)) + len + 1;
	}
	pbuf_reserve(&c->in, want - have);
	return -1;
}
