/*
 * record.c — typed, bounded access to the fields of pgha's JSON records in
 * etcd (see record.h).
 */
#include "cluster/record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

json_t *rec_field(const json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	return json_is_null(v) ? NULL : v;
}

int rec_str(const json_t *o, const char *what, const char *name, char *out, size_t size, bool required,
	    bool truncate, struct pgha_err *e)
{
	json_t *v = rec_field(o, name);
	if (v == NULL) {
		out[0] = '\0';
		return required ? err_set(e, "%s: \"%s\" is missing", what, name) : 0;
	}
	if (!json_is_string(v))
		return err_set(e, "%s: \"%s\" is not a string", what, name);
	size_t len = json_string_length(v);
	if (memchr(json_string_value(v), '\0', len) != NULL)
		return err_set(e, "%s: \"%s\" contains a NUL byte", what, name);
	if (len >= size && !truncate)
		return err_set(e, "%s: \"%s\" is longer than %zu bytes", what, name, size - 1);
	snprintf(out, size, "%s", json_string_value(v));
	return 0;
}

int rec_int(const json_t *o, const char *what, const char *name, int64_t min, int64_t max, int64_t def,
	    int64_t *out, struct pgha_err *e)
{
	json_t *v = rec_field(o, name);
	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v))
		return err_set(e, "%s: \"%s\" is not an integer", what, name);
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return err_set(e, "%s: \"%s\" is out of range (%" PRId64 ")", what, name, (int64_t)x);
	*out = x;
	return 0;
}

int rec_bool(const json_t *o, const char *what, const char *name, bool def, bool *out, struct pgha_err *e)
{
	json_t *v = rec_field(o, name);
	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return err_set(e, "%s: \"%s\" is not a boolean", what, name);
	*out = json_is_true(v);
	return 0;
}

json_t *rec_safe_str(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	if (j != NULL)
		return j;
	char *copy = xstrndup(s, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)copy[i] >= 0x80)
			copy[i] = '?';
	j = json_stringn(copy, len);
	free(copy);
	return j;
}

json_t *rec_load(const char *text, size_t len, const char *what, struct pgha_err *e)
{
	json_error_t jerr;
	json_t *root = json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		err_set(e, "%s is not JSON: %s", what, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		err_set(e, "%s is not a JSON object", what);
		return NULL;
	}
	return root;
}

/* jansson allocates with malloc (pgha never changes that): callers free(). */
char *rec_dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s != NULL ? s : xstrdup("{}");
}
