/*
 * sess.h — a transaction-pooled client's session state (sess.c): which
 * statements may change it, what a server says it is, and the statements
 * that give another server the same state.
 */
#ifndef PGHA_PROXY_SESS_H
#define PGHA_PROXY_SESS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/strbuf.h"

/*
 * What a statement may do to its session, hence what to read back after its
 * transaction (sess_state_query's parts) and whether it pins.
 */
enum {
	SESS_SETTINGS = 1,    /* settings, in ways only a full read tells (RESET, DISCARD, DO, CALL...) */
	SESS_NAMED = 2,       /* settings by name only (SET x, set_config('x', ...)): read those (sess_class.names) */
	SESS_PREPARED = 4,    /* SQL prepared statements (PREPARE, DEALLOCATE, DISCARD, DO, CALL) */
	SESS_PIN = 8,         /* creates state no other server can be given (sess_class.feature) */
	SESS_MAYPIN = 16,     /* may create or drop such state (DO, CALL, DISCARD): read it */
	SESS_UNPIN = 32,      /* may drop such state: read it if the client holds some */
	SESS_LOAD = 64,       /* LOAD: a library stays loaded for the rest of the session */
	SESS_RESERVED = 128,  /* SQL PREPARE/EXECUTE/DEALLOCATE of a name the proxy uses on servers (sess_class.reserved) */
};
/* Any of these: the state is read after the transaction. */
#define SESS_CHECK (SESS_SETTINGS | SESS_NAMED | SESS_PREPARED | SESS_PIN | SESS_MAYPIN)

/* Where one statement of a text starts and how long it is (its own text, for PREPARE). */
struct sess_prepare {
	char *name;
	char *text;        /* "PREPARE name ... AS ...", as the client wrote it */
};

struct sess_class {
	unsigned flags;
	const char *feature;          /* SESS_PIN: what it is, for an error and SHOW CLIENTS */
	bool parsed;                  /* the text went through the parser */
	/* Custom settings ("app.x") named by SET or set_config(): pg_settings does not list them. */
	char **custom;
	size_t ncustom;
	/* SESS_NAMED: the settings SET by name (the tracked startup parameters left out). */
	char **names;
	size_t nnames;
	struct sess_prepare *prepares;   /* PREPARE statements, with their own text */
	size_t nprepares;
	char *reserved;               /* SESS_RESERVED: the name ("pgha_<n>"), and what did it */
	char reserved_kind;           /* 'P' PREPARE, 'E' EXECUTE, 'D' DEALLOCATE */
};

/* Is name one the proxy gives its prepared statements on servers ("pgha_" and digits)? */
bool sess_reserved_name(const char *name);

/*
 * Classify the statements of sql[0..len) (NUL at sql[len]). A quick look at
 * the text decides whether it can change session state at all; only then
 * does PostgreSQL's parser (libpg_query) say what each statement does. A text
 * the parser rejects gets SESS_CHECK (the server will answer it). pinned: the
 * client holds pinned state, so DROP and CLOSE matter too. Free with
 * sess_class_free().
 */
void sess_classify(const char *sql, size_t len, bool pinned, struct sess_class *out);
/* Past spaces, comments (nested) and opening parentheses, up to end. */
const char *sess_skip_blank(const char *p, const char *end);
/* Does the text at p (up to end) start with word, as a whole word, in any case? */
bool sess_is_word(const char *p, const char *end, const char *word);
/* The quick look alone, for a text too long to wait for: false is sure. */
bool sess_worth_parsing(const char *sql, size_t len, bool pinned);
void sess_class_free(struct sess_class *cl);
/* A list of names (sess_class.custom, .names, a client's copies) and its strings. */
void sess_names_free(char **v, size_t n);

/*
 * The classes of the texts last parsed, by text: applications send the same
 * few session statements again and again (a SET per transaction), and the
 * parser costs tens of microseconds. Texts up to SESS_CACHE_TEXT bytes.
 */
#define SESS_CACHE_SLOTS 256
#define SESS_CACHE_TEXT 1024
struct sess_cache;
struct sess_cache *sess_cache_new(void);
void sess_cache_free(struct sess_cache *cache);
/* sess_classify(), through the cache (NULL: none). */
void sess_classify_cached(struct sess_cache *cache, const char *sql, size_t len, bool pinned,
			  struct sess_class *out);

/*
 * A session's state that can be carried to another server: 'g' a setting
 * (name, value as pg_settings / current_setting shows it), 'p' an SQL
 * prepared statement (name, its PREPARE text). Kept sorted by (kind, name).
 */
struct sess_item {
	char kind;
	char *name;
	char *value;
};

struct sess_set {
	struct sess_item *v;
	size_t n, cap;
	size_t bytes;     /* names and values together (the limit, SESS_MAX_BYTES) */
};

/* A client's session state beyond these is not carried: it keeps its server instead. */
#define SESS_MAX_ITEMS 1000
#define SESS_MAX_BYTES (256u * 1024)
/* A custom setting name longer than this is not read back (the client keeps its server). */
#define SESS_NAME_MAX 256

void sess_set_put(struct sess_set *s, char kind, const char *name, const char *value);
void sess_set_del(struct sess_set *s, char kind, const char *name);
const struct sess_item *sess_set_get(const struct sess_set *s, char kind, const char *name);
bool sess_set_equal(const struct sess_set *a, const struct sess_set *b);
void sess_set_copy(struct sess_set *dst, const struct sess_set *src);
void sess_set_clear(struct sess_set *s);
void sess_set_free(struct sess_set *s);

/*
 * The statements that turn a server whose state is `from` into `to`, one
 * per call of emit (each goes as its own Query, so one that fails does not
 * undo the others). Settings: RESET or set_config(); statements:
 * DEALLOCATE, then the PREPARE text.
 */
void sess_sync(const struct sess_set *from, const struct sess_set *to,
	       void (*emit)(void *arg, const char *sql), void *arg);

/*
 * The query that reads a server's session state after a transaction, in rows
 * (kind, name, value); `parts` (SESS_* of the statements it ran) says which:
 *   SESS_SETTINGS  'g': every setting set in the session (and the custom names)
 *   SESS_NAMED     'g': only the settings in names[] (their current value)
 *   SESS_PREPARED  'p': SQL prepared statements (value NULL)
 *   pins           'x': state that pins (name: the feature), when pins is true
 * The tracked startup parameters (objects.h) are left out: ParameterStatus
 * carries them. SESS_SETTINGS reads pg_settings, about 1 ms of server time;
 * SESS_NAMED only current_setting() of a few names.
 */
void sess_state_query(unsigned parts, bool pins, char *const *custom, size_t ncustom, char *const *names,
		      size_t nnames, struct strbuf *sql);

/*
 * The startup parameter "options" ("-c name=value", "--name=value", a
 * backslash escapes the next character): its settings into set. -1 for
 * anything else (e.g. "-e"), with the reason.
 */
int sess_parse_options(const char *options, struct sess_set *set, struct pgha_err *e) PGHA_MUSTCHECK;

/* The feature a state query row names, as the static string SESS_PIN uses (never NULL). */
const char *sess_feature(const char *name);

/* A statement that fails with sqlstate 0A000 naming feature: what a refused statement becomes. */
void sess_refusal_sql(const char *feature, struct strbuf *sql);
/*
 * What a SESS_RESERVED statement becomes: EXECUTE and DEALLOCATE fail as
 * PostgreSQL answers a name the session never prepared (26000); PREPARE with
 * 42P05, the name being taken (by the proxy, on every server).
 */
void sess_reserved_sql(const struct sess_class *cl, struct strbuf *sql);

#endif
