/*
 * history_key.c — the history of leader changes (see history_key.h).
 */
#include "cluster/history_key.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/record.h"
#include "common/strbuf.h"

static const char *const kinds[] = {"bootstrap", "failover", "switchover", "manual failover", "restore"};

static int decode_entry(const json_t *o, size_t i, struct history_entry *out, struct pgha_err *e)
{
	char what[48];
	snprintf(what, sizeof(what), "history entry %zu", i);
	if (!json_is_object(o))
		return err_set(e, "%s is not a JSON object", what);
	struct history_entry h;
	memset(&h, 0, sizeof(h));
	int64_t tl = 0;
	if (rec_int(o, what, "at", 0, INT64_MAX, 0, &h.at_ms, e) != 0 ||
	    rec_str(o, what, "kind", h.kind, sizeof(h.kind), true, false, e) != 0 ||
	    rec_str(o, what, "from", h.from, sizeof(h.from), false, false, e) != 0 ||
	    rec_str(o, what, "to", h.to, sizeof(h.to), true, false, e) != 0 ||
	    rec_int(o, what, "timeline", 0, UINT32_MAX, 0, &tl, e) != 0 ||
	    rec_int(o, what, "unavailable_ms", 0, INT64_MAX, 0, &h.unavailable_ms, e) != 0)
		return -1;
	bool known = false;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		known = known || strcmp(h.kind, kinds[k]) == 0;
	if (!known)
		return err_set(e, "%s: \"kind\" must be bootstrap, failover, switchover, manual failover or restore", what);
	if (!member_name_valid(h.to) || (h.from[0] != '\0' && !member_name_valid(h.from)))
		return err_set(e, "%s: \"from\" and \"to\" must be member names", what);
	h.timeline = (uint32_t)tl;
	*out = h;
	return 0;
}

int history_decode(const char *json, struct history *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	if (json == NULL)
		return 0;
	json_t *o = rec_load(json, strlen(json), "history", e);
	if (o == NULL)
		return -1;
	int rc = 0;
	json_t *list = rec_field(o, "entries");
	if (list == NULL || !json_is_array(list)) {
		rc = err_set(e, "history: \"entries\" is not a list");
	} else if (json_array_size(list) > HISTORY_MAX) {
		rc = err_set(e, "history: more than %d entries", HISTORY_MAX);
	} else {
		out->entries = xcalloc(json_array_size(list) + 1, sizeof(*out->entries));
		for (size_t i = 0; i < json_array_size(list) && rc == 0; i++)
			rc = decode_entry(json_array_get(list, i), i, &out->entries[out->n++], e);
	}
	json_decref(o);
	if (rc != 0)
		history_free(out);
	return rc;
}

char *history_encode(const struct history *h)
{
	json_t *list = json_array();
	for (size_t i = 0; i < h->n; i++) {
		const struct history_entry *x = &h->entries[i];
		json_t *o = json_object();
		json_object_set_new(o, "at", json_integer(x->at_ms));
		json_object_set_new(o, "kind", json_string(x->kind));
		json_object_set_new(o, "from", REC_FIXED_STR(x->from));
		json_object_set_new(o, "to", REC_FIXED_STR(x->to));
		json_object_set_new(o, "timeline", json_integer(x->timeline));
		json_object_set_new(o, "unavailable_ms", json_integer(x->unavailable_ms));
		json_array_append_new(list, o);
	}
	json_t *o = json_object();
	json_object_set_new(o, "entries", list);
	return rec_dump(o);
}

void history_append(struct history *h, const struct history_entry *e)
{
	if (h->n >= HISTORY_MAX) {
		size_t drop = h->n - HISTORY_MAX + 1;
		memmove(h->entries, h->entries + drop, (h->n - drop) * sizeof(*h->entries));
		h->n -= drop;
	}
	h->entries = xrealloc(h->entries, (h->n + 1) * sizeof(*h->entries));
	h->entries[h->n++] = *e;
}

void history_free(struct history *h)
{
	free(h->entries);
	memset(h, 0, sizeof(*h));
}
