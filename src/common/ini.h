/*
 * ini.h — a strict INI reader that knows where it is.
 *
 * Why not inih: its lines are cut at 200 bytes (an archive_command is often
 * longer), " ;" inside a value silently starts a comment, and its callback
 * cannot tell which line it is on. This reader has none of those limits:
 *   [section]
 *   name = value        ; no inline comments: the value is everything after '='
 *   # comment           (also "; comment", at the start of a line only)
 * Leading/trailing blanks are trimmed; a value may be wrapped in double quotes
 * to keep them. Every callback gets the line number.
 */
#ifndef PGHA_INI_H
#define PGHA_INI_H

#include "common/err.h"

/* Return 0 to go on, -1 to stop (the callback fills e; the line is prefixed). */
typedef int (*ini_cb)(void *arg, int line, const char *section, const char *name, const char *value,
		      struct pgha_err *e);

/* Parse text (NUL-terminated). Errors read "<where>:<line>: <what>". */
int ini_parse_text(const char *text, const char *where, ini_cb cb, void *arg, struct pgha_err *e) PGHA_MUSTCHECK;
int ini_parse_path(const char *path, ini_cb cb, void *arg, struct pgha_err *e) PGHA_MUSTCHECK;

#endif
