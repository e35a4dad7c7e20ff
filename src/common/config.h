/*
 * config.h — declarative option tables and the INI files that set them (common/ini.h).
 *
 * Every option is one row of a table: section, name, type, where it lives in
 * the target struct, default, range, whether a reload (SIGHUP) may change it,
 * and a one-line description. Parsing, defaults, range checks, `--help` output
 * and docs all come from the same rows.
 *
 * Errors name the file, the line, the section and option, and what is wrong:
 *   node.conf:7: [cluster] ttl = "ten": not a duration (examples: 10, 10s, 500ms)
 */
#ifndef PGHA_CONFIG_H
#define PGHA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"

enum opt_type {
	OPT_STRING,    /* char * (owned, freed by config_free_values) */
	OPT_INT,       /* int, within [min, max] */
	OPT_BOOL,      /* bool: on/off, true/false, yes/no, 1/0 */
	OPT_DURATION,  /* int milliseconds: "10" (seconds), "10s", "500ms", "2m" */
	OPT_LOGLEVEL,  /* enum log_level */
	OPT_LOGFORMAT, /* enum log_format */
};

#define OPT_RELOAD   0x1   /* a reload may change it */
#define OPT_REQUIRED 0x2   /* no default: the file must set it */
#define OPT_SECRET   0x4   /* never print its value */

struct config_option {
	const char *section;
	const char *name;
	enum opt_type type;
	size_t offset;         /* offsetof() in the target struct */
	const char *def;       /* default as text; NULL = none ("" for empty strings) */
	long min, max;         /* OPT_INT / OPT_DURATION (ms) range, ignored when min > max */
	int flags;
	const char *help;
};

/*
 * Sections whose keys are free-form (e.g. [parameters] holding PostgreSQL
 * settings): each key/value is passed to the callback, which may refuse it.
 */
struct config_free_section {
	const char *section;
	int (*set)(void *target, const char *key, const char *value, struct pgha_err *e);
};

struct config_table {
	const struct config_option *options;
	size_t noptions;
	const struct config_free_section *free_sections;
	size_t nfree_sections;
};

/* Apply every default. Fails only if a built-in default is invalid (a bug). */
int config_apply_defaults(const struct config_table *t, void *target, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Parse an INI file into target (defaults must already be applied). Unknown
 * sections and options, bad values and missing required options are errors.
 */
int config_parse_file(const struct config_table *t, const char *path, void *target,
		      struct pgha_err *e) PGHA_MUSTCHECK;

/* Set one option from text, as the file would ("cluster.ttl" style lookups). */
int config_set(const struct config_table *t, void *target, const char *section, const char *name,
	       const char *value, struct pgha_err *e) PGHA_MUSTCHECK;

const struct config_option *config_find(const struct config_table *t, const char *section,
					const char *name);

/* Free the OPT_STRING values. */
void config_free_values(const struct config_table *t, void *target);

/*
 * A reload: move the value of every OPT_RELOAD option from fresh (a newly
 * loaded target) into live. For each other option whose value differs,
 * call fixed(o, arg) (e.g. to log "needs a restart"); live keeps its value.
 */
void config_take_reloadable(const struct config_table *t, void *live, void *fresh,
			    void (*fixed)(const struct config_option *o, void *arg), void *arg);

/* Print every option: [section] name (type, default, reload) and description. */
void config_print_help(const struct config_table *t, FILE *out);

/* Value parsers (exposed for the unit tests and for ctl). */
int config_parse_bool(const char *s, bool *out);
int config_parse_duration_ms(const char *s, long *out);
int config_parse_long(const char *s, long *out);

#endif
