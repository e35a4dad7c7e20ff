/*
 * info.c — decoding `pgbackrest info --output=json` (see info.h).
 */
#include "backup/info.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/pgbackrest.h"
#include "common/strbuf.h"
#include "common/util.h"

static const char *const type_names[BACKUP_NTYPES] = {"full", "diff", "incr"};

const char *backup_type_name(enum backup_type t)
{
	return (int)t >= 0 && t < BACKUP_NTYPES ? type_names[t] : "?";
}

int backup_type_parse(const char *s, enum backup_type *out)
{
	for (int t = 0; t < BACKUP_NTYPES; t++) {
		if (s != NULL && strcmp(s, type_names[t]) == 0) {
			*out = (enum backup_type)t;
			return 0;
		}
	}
	return -1;
}

/* obj.a.b...: the member at that path, or NULL. */
static json_t *at(json_t *obj, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *v = obj;
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = json_is_object(v) ? json_object_get(v, k) : NULL;
	return v;
}

static int get_text(json_t *obj, const char *path, bool null_ok, char *out, size_t outlen, const char *where,
		    struct pgha_err *e)
{
	json_t *v = at(obj, path);
	out[0] = '\0';
	if (null_ok && (v == NULL || json_is_null(v)))
		return 0;
	if (!json_is_string(v))
		return err_set(e, "pgbackrest info: %s: \"%s\" is not text", where, path);
	if (json_string_length(v) >= outlen)
		return err_set(e, "pgbackrest info: %s: \"%s\" is longer than %zu bytes", where, path, outlen - 1);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int get_count(json_t *obj, const char *path, uint64_t *out, const char *where, struct pgha_err *e)
{
	json_t *v = at(obj, path);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return err_set(e, "pgbackrest info: %s: \"%s\" is not a whole number", where, path);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int get_wal(json_t *obj, const char *path, char out[25], const char *where, struct pgha_err *e)
{
	if (get_text(obj, path, true, out, 25, where, e) != 0)
		return -1;
	if (out[0] != '\0' && (strlen(out) != 24 || strspn(out, "0123456789ABCDEF") != 24))
		return err_set(e, "pgbackrest info: %s: \"%s\" is not a WAL segment name: %s", where, path, out);
	return 0;
}

static int get_lsn(json_t *obj, const char *path, uint64_t *out, const char *where, struct pgha_err *e)
{
	char text[32];
	if (get_text(obj, path, false, text, sizeof(text), where, e) != 0)
		return -1;
	if (lsn_parse(text, out) != 0)
		return err_set(e, "pgbackrest info: %s: \"%s\" is not an LSN: %s", where, path, text);
	return 0;
}

static int decode_backup(json_t *b, struct backup_entry *out, size_t i, struct pgha_err *e)
{
	char where[96], type[8];
	uint64_t start, stop;
	snprintf(where, sizeof(where), "backup %zu", i + 1);
	memset(out, 0, sizeof(*out));
	if (get_text(b, "label", false, out->label, sizeof(out->label), where, e) != 0)
		return -1;
	snprintf(where, sizeof(where), "backup %s", out->label);
	if (get_text(b, "type", false, type, sizeof(type), where, e) != 0)
		return -1;
	if (strcmp(type, "full") == 0)
		out->type = BACKUP_FULL;
	else if (strcmp(type, "diff") == 0)
		out->type = BACKUP_DIFF;
	else if (strcmp(type, "incr") == 0)
		out->type = BACKUP_INCR;
	else
		return err_set(e, "pgbackrest info: %s: unknown type \"%s\"", where, type);
	json_t *err = json_object_get(b, "error");
	if (err != NULL && !json_is_boolean(err))
		return err_set(e, "pgbackrest info: %s: \"error\" is not true or false", where);
	out->error = json_is_true(err);
	if (get_text(b, "prior", true, out->prior, sizeof(out->prior), where, e) != 0 ||
	    get_count(b, "timestamp.start", &start, where, e) != 0 ||
	    get_count(b, "timestamp.stop", &stop, where, e) != 0 ||
	    get_count(b, "info.size", &out->size, where, e) != 0 ||
	    get_count(b, "info.delta", &out->delta, where, e) != 0 ||
	    get_count(b, "info.repository.size", &out->repo_size, where, e) != 0 ||
	    get_count(b, "info.repository.delta", &out->repo_delta, where, e) != 0 ||
	    get_wal(b, "archive.start", out->wal_start, where, e) != 0 ||
	    get_wal(b, "archive.stop", out->wal_stop, where, e) != 0 ||
	    get_lsn(b, "lsn.start", &out->lsn_start, where, e) != 0 ||
	    get_lsn(b, "lsn.stop", &out->lsn_stop, where, e) != 0)
		return -1;
	if (stop < start)
		return err_set(e, "pgbackrest info: %s: it stopped before it started", where);
	out->start_s = (int64_t)start;
	out->stop_s = (int64_t)stop;
	return 0;
}

/* The current database: the db entry with the highest id (a stanza-upgrade adds one). */
static int current_db(json_t *st, uint64_t *id, uint64_t *system_id, struct pgha_err *e)
{
	json_t *dbs = json_object_get(st, "db"), *d;
	size_t i;
	*id = 0;
	*system_id = 0;
	if (dbs == NULL)
		return 0;
	if (!json_is_array(dbs))
		return err_set(e, "pgbackrest info: \"db\" is not a list");
	json_array_foreach(dbs, i, d) {
		uint64_t this_id, sysid;
		if (get_count(d, "id", &this_id, "db", e) != 0 || get_count(d, "system-id", &sysid, "db", e) != 0)
			return -1;
		if (this_id > *id) {
			*id = this_id;
			*system_id = sysid;
		}
	}
	return 0;
}

static int decode_archive(json_t *st, uint64_t db_id, struct backup_info *out, struct pgha_err *e)
{
	json_t *list = json_object_get(st, "archive"), *a;
	size_t i;
	if (list == NULL)
		return 0;
	if (!json_is_array(list))
		return err_set(e, "pgbackrest info: \"archive\" is not a list");
	json_array_foreach(list, i, a) {
		uint64_t id;
		if (get_count(a, "database.id", &id, "archive", e) != 0)
			return -1;
		if (id != db_id)
			continue;
		if (get_wal(a, "min", out->wal_min, "archive", e) != 0 ||
		    get_wal(a, "max", out->wal_max, "archive", e) != 0)
			return -1;
	}
	return 0;
}

static int decode_stanza(json_t *st, struct backup_info *out, struct pgha_err *e)
{
	uint64_t code, db_id;
	if (get_count(st, "status.code", &code, "status", e) != 0 ||
	    get_text(st, "status.message", false, out->status, sizeof(out->status), "status", e) != 0)
		return -1;
	out->status_code = code > 99 ? 99 : (int)code;
	/*
	 * "other" alone would read as an empty repository: the repository's own
	 * message says which file could not be read, and the cause says why.
	 */
	const char *why = json_string_value(at(json_array_get(json_object_get(st, "repo"), 0), "status.message"));
	if (code != 0 && why != NULL) {
		char cause[sizeof(out->status) - 7];
		pgbr_local_cause(why, cause, sizeof(cause));
		if (cause[0] != '\0')
			snprintf(out->status, sizeof(out->status), "error: %s", cause);
		else if (code == 99)
			snprintf(out->status, sizeof(out->status), "error: %.*s", (int)strcspn(why, "\n"), why);
	}
	out->backup_running = json_is_true(at(st, "status.lock.backup.held"));
	if (current_db(st, &db_id, &out->system_id, e) != 0 || decode_archive(st, db_id, out, e) != 0)
		return -1;

	json_t *list = json_object_get(st, "backup"), *b;
	size_t i;
	if (list == NULL)
		return 0;
	if (!json_is_array(list))
		return err_set(e, "pgbackrest info: \"backup\" is not a list");
	if (json_array_size(list) > BACKUP_INFO_MAX)
		return err_set(e, "pgbackrest info: %zu backups, more than the %d pgha lists; lower the retention",
			       json_array_size(list), BACKUP_INFO_MAX);
	out->backups = xcalloc(json_array_size(list) + 1, sizeof(*out->backups));
	json_array_foreach(list, i, b) {
		if (decode_backup(b, &out->backups[i], i, e) != 0)
			return -1;
		out->nbackups++;
	}
	return 0;
}

int backup_info_decode(const char *json, const char *stanza, struct backup_info *out, struct pgha_err *e)
{
	json_error_t jerr;
	memset(out, 0, sizeof(*out));
	snprintf(out->stanza, sizeof(out->stanza), "%s", stanza);
	json_t *root = json_loads(json, 0, &jerr);
	if (root == NULL) {
		/*
		 * A file read with the wrong passphrase: pgBackRest quotes its bytes
		 * unescaped, control characters and all, which need not be UTF-8.
		 */
		char *ascii = xstrdup(json);
		for (char *p = ascii; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
			else if ((unsigned char)*p < 0x20)
				*p = ' ';
		root = json_loads(ascii, 0, &jerr);
		free(ascii);
	}
	if (!json_is_array(root)) {
		json_decref(root);
		return err_set(e, "pgbackrest info: not a JSON list of stanzas (%s)", root ? "another type" : jerr.text);
	}
	json_t *st;
	size_t i;
	int rc = 0;
	bool found = false;
	json_array_foreach(root, i, st) {
		json_t *name = json_object_get(st, "name");
		if (!json_is_string(name) || strcmp(json_string_value(name), stanza) != 0)
			continue;
		found = true;
		rc = decode_stanza(st, out, e);
		break;
	}
	json_decref(root);
	if (rc != 0) {
		backup_info_free(out);
		return -1;
	}
	if (!found) {
		out->status_code = 1;
		snprintf(out->status, sizeof(out->status), "missing stanza path");
	}
	return 0;
}

void backup_info_free(struct backup_info *bi)
{
	free(bi->backups);
	bi->backups = NULL;
	bi->nbackups = 0;
}

const struct backup_entry *backup_info_latest(const struct backup_info *bi)
{
	for (size_t i = bi->nbackups; i > 0; i--)
		if (!bi->backups[i - 1].error)
			return &bi->backups[i - 1];
	return NULL;
}
