/*
 * log.h — leveled logging to stderr with a per-thread context prefix.
 *
 * Lines look like:
 *   2026-11-21 06:40:01.123 UTC INFO  [agent node1] leader key taken (lease 7587...)
 * The level is checked before the arguments are formatted. A thread names its
 * context once with log_set_context(); every line it logs carries it.
 * Never log a password: nothing in pgha passes one to these functions.
 */
#ifndef PGHA_LOG_H
#define PGHA_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL };

extern enum log_level log_min_level;

void log_set_level(enum log_level lvl);
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);
/* Context shown in brackets on every line from the calling thread (copied). */
void log_set_context(const char *ctx);
void log_write(enum log_level lvl, const char *fmt, ...) PGHA_PRINTF(2, 3);

#define log_at(lvl, ...)                                                       \
	do {                                                                   \
		if ((lvl) >= log_min_level)                                    \
			log_write((lvl), __VA_ARGS__);                         \
	} while (0)
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
