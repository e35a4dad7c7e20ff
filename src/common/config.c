#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/ini.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"

static const char *type_name(enum opt_type t)
{
	switch (t) {
	case OPT_STRING: return "string";
	case OPT_INT: return "integer";
	case OPT_BOOL: return "boolean";
	case OPT_DURATION: return "duration";
	case OPT_LOGLEVEL: return "log level";
	case OPT_LOGFORMAT: return "log format";
	}
	return "?";
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"1", "on", "true", "yes"};
	static const char *no[] = {"0", "off", "false", "no"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int config_parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int config_parse_duration_ms(const char *s, long *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	/* !(v >= 0) also refuses NaN; hex and exponents are not durations. */
	if (errno != 0 || end == s || !(v >= 0))
		return -1;
	for (const char *p = s; p < end; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;   /* no hex, exponents, signs, nan or inf */
	double mult;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60000;
	else if (strcmp(end, "h") == 0)
		mult = 3600000;
	else if (strcmp(end, "d") == 0)
		mult = 86400000;
	else
		return -1;
	double ms = v * mult;
	if (ms > (double)LONG_MAX / 2)
		return -1;
	*out = (long)(ms + 0.5);
	return 0;
}

const struct config_option *config_find(const struct config_table *t, const char *section,
					const char *name)
{
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		if (strcmp(o->section, section) == 0 && strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

static int set_value(const struct config_option *o, void *target, const char *value,
		     struct pgha_err *e)
{
	char *field = (char *)target + o->offset;
	long v = 0;
	switch (o->type) {
	case OPT_STRING: {
		char **dst = (char **)field;
		free(*dst);
		*dst = xstrdup(value);
		return 0;
	}
	case OPT_BOOL:
		if (config_parse_bool(value, (bool *)field) != 0)
			return err_set(e, "not a boolean (use on/off, true/false, yes/no or 1/0)");
		return 0;
	case OPT_LOGLEVEL:
		if (log_parse_level(value, (enum log_level *)field) != 0)
			return err_set(e, "not a log level (debug, info, warn, error)");
		return 0;
	case OPT_LOGFORMAT:
		if (log_parse_format(value, (enum log_format *)field) != 0)
			return err_set(e, "not a log format (text or json)");
		return 0;
	case OPT_INT:
		if (config_parse_long(value, &v) != 0)
			return err_set(e, "not an integer");
		break;
	case OPT_DURATION:
		if (config_parse_duration_ms(value, &v) != 0)
			return err_set(e, "not a duration (examples: 10, 10s, 500ms, 2m)");
		break;
	}
	if (o->min <= o->max && (v < o->min || v > o->max)) {
		if (o->type == OPT_DURATION)
			return err_set(e, "out of range: must be from %ldms to %ldms", o->min, o->max);
		return err_set(e, "out of range: must be from %ld to %ld", o->min, o->max);
	}
	if (v > INT_MAX || v < INT_MIN)
		return err_set(e, "out of range");
	*(int *)field = (int)v;
	return 0;
}

int config_apply_defaults(const struct config_table *t, void *target, struct pgha_err *e)
{
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		if (o->def == NULL)
			continue;
		if (set_value(o, target, o->def, e) != 0)
			return err_wrap(e, "built-in default of [%s] %s = \"%s\"", o->section, o->name, o->def);
	}
	return 0;
}

int config_set(const struct config_table *t, void *target, const char *section, const char *name,
	       const char *value, struct pgha_err *e)
{
	for (size_t i = 0; i < t->nfree_sections; i++) {
		if (strcmp(t->free_sections[i].section, section) == 0)
			return t->free_sections[i].set(target, name, value, e);
	}
	const struct config_option *o = config_find(t, section, name);
	if (o == NULL) {
		bool known_section = false;
		for (size_t i = 0; i < t->noptions; i++)
			known_section |= strcmp(t->options[i].section, section) == 0;
		if (!known_section)
			return err_set(e, "unknown section [%s]", section);
		return err_set(e, "[%s] unknown option \"%s\"", section, name);
	}
	if (set_value(o, target, value, e) != 0) {
		if (o->flags & OPT_SECRET)
			return err_wrap(e, "[%s] %s", section, name);
		return err_wrap(e, "[%s] %s = \"%s\"", section, name, value);
	}
	return 0;
}

struct parse_state {
	const struct config_table *t;
	void *target;
	unsigned char *seen;   /* one flag per option: set by the file */
};

static int config_ini_cb(void *arg, int line, const char *section, const char *name,
			 const char *value, struct pgha_err *e)
{
	struct parse_state *ps = arg;
	if (config_set(ps->t, ps->target, section, name, value, e) != 0)
		return -1;
	const struct config_option *o = config_find(ps->t, section, name);
	if (o != NULL)
		ps->seen[o - ps->t->options] = 1;
	return 0;
}

int config_parse_file(const struct config_table *t, const char *path, void *target,
		      struct pgha_err *e)
{
	struct parse_state ps = {.t = t, .target = target};
	ps.seen = xcalloc(t->noptions, 1);
	char *text;
	size_t len;
	int rc = 0;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		free(ps.seen);
		return err_set(e, "cannot open config file \"%s\": %s", path, strerror(errno));
	}
	fclose(f);
	if (read_file(path, &text, &len, e) != 0) {
		free(ps.seen);
		return -1;
	}
	if (memchr(text, '\0', len) != NULL)
		rc = err_set(e, "%s: not a text file (it holds NUL bytes)", path);
	else
		rc = ini_parse_text(text, path, config_ini_cb, &ps, e);
	explicit_bzero(text, len);
	free(text);
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		if ((o->flags & OPT_REQUIRED) && !ps.seen[i]) {
			rc = err_set(e, "%s: [%s] %s is required (%s)", path, o->section, o->name, o->help);
			goto out;
		}
	}
out:
	free(ps.seen);
	return rc;
}

void config_free_values(const struct config_table *t, void *target)
{
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		if (o->type == OPT_STRING) {
			char **p = (char **)((char *)target + o->offset);
			free(*p);
			*p = NULL;
		}
	}
}

static size_t value_size(enum opt_type type)
{
	switch (type) {
	case OPT_STRING: return sizeof(char *);
	case OPT_INT: return sizeof(int);
	case OPT_BOOL: return sizeof(bool);
	case OPT_DURATION: return sizeof(int);
	case OPT_LOGLEVEL: return sizeof(enum log_level);
	case OPT_LOGFORMAT: return sizeof(enum log_format);
	}
	return 0;
}

void config_take_reloadable(const struct config_table *t, void *live, void *fresh,
			    void (*fixed)(const struct config_option *o, void *arg), void *arg)
{
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		char *l = (char *)live + o->offset, *f = (char *)fresh + o->offset;
		bool same;
		if (o->type == OPT_STRING) {
			const char *ls = *(char **)l, *fs = *(char **)f;
			same = (ls == NULL && fs == NULL) || (ls != NULL && fs != NULL && strcmp(ls, fs) == 0);
		} else {
			same = memcmp(l, f, value_size(o->type)) == 0;
		}
		if (same)
			continue;
		if (!(o->flags & OPT_RELOAD)) {
			if (fixed)
				fixed(o, arg);
			continue;
		}
		if (o->type == OPT_STRING) {
			free(*(char **)l);
			*(char **)l = *(char **)f;
			*(char **)f = NULL;
		} else {
			memcpy(l, f, value_size(o->type));
		}
	}
}

void config_print_help(const struct config_table *t, FILE *out)
{
	const char *section = "";
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		if (strcmp(section, o->section) != 0) {
			section = o->section;
			fprintf(out, "\n  [%s]\n", section);
		}
		char def[160];
		if (o->flags & OPT_REQUIRED)
			snprintf(def, sizeof(def), "required");
		else if (o->def == NULL || o->def[0] == '\0')
			snprintf(def, sizeof(def), "default: none");
		else
			snprintf(def, sizeof(def), "default: %s", o->def);
		fprintf(out, "    %-26s %s; %s%s\n", o->name, type_name(o->type), def,
			(o->flags & OPT_RELOAD) ? "; reloadable" : "");
		fprintf(out, "    %-26s %s\n", "", o->help);
	}
	for (size_t i = 0; i < t->nfree_sections; i++)
		fprintf(out, "\n  [%s]\n    any name = value: passed through as is\n",
			t->free_sections[i].section);
}
