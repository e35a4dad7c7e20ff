/*
 * sync_key.c — synchronous modes, member sets and the sync key (see sync_key.h).
 */
#include "cluster/sync_key.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/strbuf.h"

static const char *const mode_names[] = {
	[SYNC_OFF] = "off", [SYNC_ON] = "on", [SYNC_QUORUM] = "quorum", [SYNC_STRICT] = "strict",
};

const char *sync_mode_name(enum sync_mode m)
{
	return (int)m >= SYNC_OFF && m <= SYNC_STRICT ? mode_names[m] : "?";
}

int sync_mode_parse(const char *s, enum sync_mode *out)
{
	if (s == NULL)
		return -1;
	for (int m = SYNC_OFF; m <= SYNC_STRICT; m++) {
		if (strcasecmp(s, mode_names[m]) == 0) {
			*out = (enum sync_mode)m;
			return 0;
		}
	}
	if (strcasecmp(s, "true") == 0) {
		*out = SYNC_ON;
		return 0;
	}
	if (strcasecmp(s, "false") == 0) {
		*out = SYNC_OFF;
		return 0;
	}
	return -1;
}

/* ---- sets ------------------------------------------------------------------ */

void sync_set_clear(struct sync_set *s)
{
	s->num = 0;
	s->n = 0;
}

bool sync_set_has(const struct sync_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

void sync_set_add(struct sync_set *s, const char *name)
{
	if (name[0] == '\0' || strlen(name) >= MEMBER_NAME_MAX || s->n >= SYNC_MAX || sync_set_has(s, name))
		return;
	size_t i = s->n;
	while (i > 0 && strcmp(s->names[i - 1], name) > 0) {
		memcpy(s->names[i], s->names[i - 1], MEMBER_NAME_MAX);
		i--;
	}
	snprintf(s->names[i], MEMBER_NAME_MAX, "%s", name);
	s->n++;
}

static bool same_names(const struct sync_set *a, const struct sync_set *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->names[i], b->names[i]) != 0)
			return false;
	return true;
}

bool sync_set_equal(const struct sync_set *a, const struct sync_set *b)
{
	return a->num == b->num && same_names(a, b);
}

void sync_pub_describe(const struct sync_set *s, char *out, size_t len)
{
	if (s->n == 0) {
		snprintf(out, len, "(none)");
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < s->n && k < len; i++)
		k += (size_t)snprintf(out + k, len - k, "%s%s", i ? ", " : "", s->names[i]);
	if (k < len && s->n > 1)
		snprintf(out + k, len - k, " (quorum %d)", s->num);
}

/* ---- the sync key -------------------------------------------------------- */

char *sync_state_encode(const struct sync_state *s)
{
	json_t *o = json_object();
	json_t *arr = json_array();
	for (size_t i = 0; i < s->set.n; i++)
		json_array_append_new(arr, json_string(s->set.names[i]));
	json_object_set_new(o, "leader", json_string(s->leader));
	json_object_set_new(o, "sync_standby", arr);
	json_object_set_new(o, "quorum", json_integer(s->set.n ? s->set.num : 0));
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text != NULL ? text : xstrdup("{}");
}

static bool valid_member_name(const char *s, size_t len)
{
	if (len == 0 || len >= MEMBER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

int sync_state_decode(const char *json, struct sync_state *out, struct pgha_err *e)
{
	json_error_t jerr;
	json_t *o = json_loads(json ? json : "", 0, &jerr);
	int rc = -1;
	memset(out, 0, sizeof(*out));
	if (!json_is_object(o)) {
		err_set(e, "sync key: not a JSON object%s%s", o ? "" : ": ", o ? "" : jerr.text);
		goto out;
	}
	json_t *l = json_object_get(o, "leader"), *arr = json_object_get(o, "sync_standby");
	json_t *q = json_object_get(o, "quorum");
	if (!json_is_string(l) || !valid_member_name(json_string_value(l), json_string_length(l))) {
		err_set(e, "sync key: \"leader\" is not a member name");
		goto out;
	}
	snprintf(out->leader, sizeof(out->leader), "%s", json_string_value(l));
	if (arr != NULL && !json_is_null(arr) && !json_is_array(arr)) {
		err_set(e, "sync key: \"sync_standby\" is not a list");
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || !valid_member_name(json_string_value(v), json_string_length(v))) {
			err_set(e, "sync key: \"sync_standby\" item %zu is not a member name", i);
			goto out;
		}
		if (i >= SYNC_MAX) {
			err_set(e, "sync key: more than %d synchronous standbys", SYNC_MAX);
			goto out;
		}
		sync_set_add(&out->set, json_string_value(v));
	}
	if (out->set.n > 0) {
		if (q == NULL && out->set.n == 1) {
			out->set.num = 1;
		} else if (!json_is_integer(q) || json_integer_value(q) < 1 ||
			   json_integer_value(q) > (json_int_t)out->set.n) {
			err_set(e, "sync key: \"quorum\" must be an integer from 1 to %zu", out->set.n);
			goto out;
		} else {
			out->set.num = (int)json_integer_value(q);
		}
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}
