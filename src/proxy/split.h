/*
 * split.h — the single-endpoint read/write split (`[proxy] rw_split`): which
 * statement texts PostgreSQL's parser proves read-only, so that a client of
 * the read-write port may have them run on a standby.
 */
#ifndef PGHA_PROXY_SPLIT_H
#define PGHA_PROXY_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

enum rw_split { RW_SPLIT_OFF = 0, RW_SPLIT_TRANSACTIONS = 1, RW_SPLIT_STATEMENTS = 2 };

struct split_rules;

/*
 * The functions a proven read may call, from `rw_split_safe_functions`: a
 * comma-separated list of names, where `default` stands for the built-in
 * list (aggregates, string, date, math and JSON functions that neither
 * write nor need a transaction ID). A name is matched unqualified or
 * qualified by pg_catalog; `schema.name` matches that one only.
 */
struct split_rules *split_rules_new(const char *list, struct pgha_err *e);
void split_rules_free(struct split_rules *r);

/*
 * May the statements of sql[0..len) (NUL at sql[len]) run on a standby, as
 * part of a unit of client messages that runs there whole? *in_ro_xact says
 * whether a READ ONLY transaction begun earlier in the unit is open, and is
 * updated. Outside one, a statement may run there when it begins a READ ONLY
 * transaction (not SERIALIZABLE: a standby refuses that), or, with
 * statements, when it is proven to read only: a SELECT (no INTO, FOR UPDATE
 * or data-modifying WITH) whose every function is safe, or a SHOW. Inside
 * one, anything but what a standby refuses where a leader would not
 * (temporary tables, LISTEN, PREPARE TRANSACTION). A text the parser rejects
 * may not (the leader answers it). Results are cached by text in r.
 */
bool split_may_read(struct split_rules *r, const char *sql, size_t len, bool statements, bool *in_ro_xact);

struct client;
/*
 * rw_split: may the unit client c starts (its messages up to a Query, a Sync
 * or a Flush) run on a standby? 1 yes, 0 no (the leader), -1 not all of it
 * is here yet (space is reserved in c->in: read more). A unit longer than
 * SPLIT_UNIT_MAX goes to the leader unread.
 */
int split_route(struct client *c);
#define SPLIT_UNIT_MAX (64u * 1024)

#endif
