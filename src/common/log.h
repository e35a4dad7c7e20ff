/*
 * log.h — leveled logging to stderr with a per-thread context prefix.
 *
 * Lines look like:
 *   2026-11-21 06:40:01.123 UTC INFO  [agent node1] leader key taken (lease 7587...)
 * The level is checked before the arguments are formatted. A thread names its
 * context once with log_set_context(); every line it logs carries it.
 * When stderr is systemd's journal (JOURNAL_STREAM, checked by log_set_format),
 * a text line has no timestamp, the journal's own, and starts with the syslog
 * priority the journal reads (sd-daemon(3)): "<6>INFO  [agent node1] ...".
 * Never log a password: nothing in pgha passes one to these functions.
 *
 * With log_set_format(LOG_FORMAT_JSON) (`log_format = json`) each line is one
 * JSON object instead, for Loki or OpenTelemetry pipelines:
 *   {"time":"2026-11-21T06:40:01.123Z","level":"info","component":"agent",
 *    "cluster":"main","member":"node1","context":"agent node1","message":"..."}
 * plus the fields an event names (log_write_kv: "leader", "timeline", ...).
 */
#ifndef PGHA_LOG_H
#define PGHA_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

extern enum log_level log_min_level;

void log_set_level(enum log_level lvl);
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);
/* Context shown in brackets on every line from the calling thread (copied). */
void log_set_context(const char *ctx);
void log_write(enum log_level lvl, const char *fmt, ...) PGHA_PRINTF(2, 3);
void log_set_format(enum log_format f);
int log_parse_format(const char *s, enum log_format *out);
/* The process's identity in JSON lines (copied): component ("agent", "proxy"), cluster, member (may be ""). */
void log_set_identity(const char *component, const char *cluster, const char *member);
/*
 * A line with an event's fields: kv is name, value pairs then NULL. JSON: each
 * a field of the object; text: the line as log_write writes it (the message
 * says the same in words).
 */
void log_write_kv(enum log_level lvl, const char *const *kv, const char *fmt, ...) PGHA_PRINTF(3, 4);

#define log_at(lvl, ...)                                                       \
	do {                                                                   \
		if ((lvl) >= log_min_level)                                    \
			log_write((lvl), __VA_ARGS__);                         \
	} while (0)
#define log_at_kv(lvl, kv, ...)                                                \
	do {                                                                   \
		if ((lvl) >= log_min_level)                                    \
			log_write_kv((lvl), (kv), __VA_ARGS__);                \
	} while (0)
#define log_info_kv(kv, ...) log_at_kv(LOG_INFO, (kv), __VA_ARGS__)
#define log_warn_kv(kv, ...) log_at_kv(LOG_WARN, (kv), __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_fatal(...) log_at(LOG_FATAL, __VA_ARGS__)

/*
 * For what is read again every loop (a bad etcd key): true the first time this
 * thread's context asks about (what, key, rev), false after (what: a static
 * tag naming the complaint, so two complaints about one key stay apart), so the warning appears
 * once per change of the key (rev = its mod_revision, new with every write),
 * not 14 times a second. A key fixed and broken again has a new revision and
 * is reported again. The memory is bounded (the oldest entries are forgotten).
 */
bool log_first_time(const char *what, const char *key, int64_t rev);
#define log_warn_once(what, key, rev, ...)                                     \
	do {                                                                   \
		if (LOG_WARN >= log_min_level &&                               \
		    log_first_time((what), (key), (rev)))                      \
			log_write(LOG_WARN, __VA_ARGS__);                      \
	} while (0)

#endif
