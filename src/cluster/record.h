/*
 * record.h — reading and writing the fields of the JSON records pgha keeps in
 * etcd (member records, the backup keys). Anyone with write access to etcd can
 * put anything there, so each getter checks the type, the range and the size,
 * and its error names the record and the field ("backup request: \"type\" is
 * not a string").
 */
#ifndef PGHA_CLUSTER_RECORD_H
#define PGHA_CLUSTER_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The field's value, or NULL when absent or null (both mean "not given"). */
json_t *rec_field(const json_t *o, const char *name);

/*
 * A string field into out[size]. Absent: "" (an error if required). Longer
 * than size - 1: an error, or cut when truncate (free text such as an error
 * message). A NUL inside is always an error.
 */
int rec_str(const json_t *o, const char *what, const char *name, char *out, size_t size, bool required,
	    bool truncate, struct pgha_err *e) PGHA_MUSTCHECK;
/* An integer field within [min, max]; absent leaves *out at def. */
int rec_int(const json_t *o, const char *what, const char *name, int64_t min, int64_t max, int64_t def,
	    int64_t *out, struct pgha_err *e) PGHA_MUSTCHECK;
int rec_bool(const json_t *o, const char *what, const char *name, bool def, bool *out,
	     struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * A JSON string from text that came from PostgreSQL, a tool or the network and
 * may not be valid UTF-8 (jansson would refuse it): bytes of an invalid
 * sequence become '?', so the record is still written.
 */
json_t *rec_safe_str(const char *s, size_t len);
/* A fixed-size char array, even if something left it unterminated. */
#define REC_FIXED_STR(arr) rec_safe_str((arr), strnlen((arr), sizeof(arr)))

/* Parse len bytes of text as one JSON object (a key given twice is refused); the error names what. Caller decrefs. */
json_t *rec_load(const char *text, size_t len, const char *what, struct pgha_err *e);
/* Compact JSON text of o, which it consumes; never NULL. Caller frees. */
char *rec_dump(json_t *o);

#endif
