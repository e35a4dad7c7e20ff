/*
 * prom.c — Prometheus text format (see prom.h).
 */
#include "common/prom.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

void prom_family(struct strbuf *out, const char *name, const char *type, const char *help)
{
	sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_value(struct strbuf *out, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\' || *p == '"')
			sb_printf(out, "\\%c", *p);
		else if (*p == '\n')
			sb_puts(out, "\\n");
		else
			sb_append(out, p, 1);
	}
}

static void labels_of(struct strbuf *out, const char *const *l, bool *first)
{
	for (size_t i = 0; l != NULL && l[i] != NULL && l[i + 1] != NULL; i += 2) {
		sb_printf(out, "%s%s=\"", *first ? "{" : ",", l[i]);
		label_value(out, l[i + 1]);
		sb_puts(out, "\"");
		*first = false;
	}
}

void prom_sample(struct strbuf *out, const char *name, const char *const *labels, const char *const *more,
		 double value)
{
	sb_puts(out, name);
	bool first = true;
	labels_of(out, labels, &first);
	labels_of(out, more, &first);
	if (!first)
		sb_puts(out, "}");
	if (isnan(value))
		sb_puts(out, " NaN\n");
	else if (value > -9e18 && value < 9e18 && value == (double)(int64_t)value)
		sb_printf(out, " %lld\n", (long long)value);
	else
		sb_printf(out, " %.15g\n", value);
}
