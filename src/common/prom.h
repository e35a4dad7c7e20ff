/*
 * prom.h — writing Prometheus's text exposition format: a family's HELP and
 * TYPE lines, then its samples, label values escaped (backslash, double
 * quote, newline), NaN for what is not known, integers with every digit
 * (WAL positions exceed a double's %g).
 */
#ifndef PGHA_COMMON_PROM_H
#define PGHA_COMMON_PROM_H

#include "common/strbuf.h"

/* "# HELP name help" and "# TYPE name type" (gauge, counter, histogram). */
void prom_family(struct strbuf *out, const char *name, const char *type, const char *help);

/*
 * name{k="v",...} value. labels: key, value pairs then NULL (NULL itself: no
 * labels); more: a second list appended after them (NULL: none).
 */
void prom_sample(struct strbuf *out, const char *name, const char *const *labels, const char *const *more,
		 double value);

#endif
