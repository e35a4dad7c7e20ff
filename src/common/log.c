#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

enum log_level log_min_level = LOG_INFO;

static __thread char log_ctx[96];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

void log_set_level(enum log_level lvl) { log_min_level = lvl; }

const char *log_level_name(enum log_level lvl)
{
	return (lvl >= LOG_DEBUG && lvl <= LOG_FATAL) ? level_names[lvl] : "?";
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = LOG_DEBUG; i <= LOG_FATAL; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

void log_set_context(const char *ctx)
{
	snprintf(log_ctx, sizeof(log_ctx), "%s", ctx ? ctx : "");
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03d UTC %-5s ", (int)(tv.tv_usec / 1000),
		      log_level_name(lvl));
	if (log_ctx[0] != '\0')
		n += snprintf(line + n, sizeof(line) - (size_t)n, "[%s] ", log_ctx);
	if (n < (int)sizeof(line)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&log_lock);
	fputs(line, stderr);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

/* (context, what, key) -> the last revision reported; replaced round-robin when full. */
enum { LOG_ONCE_SLOTS = 128, LOG_ONCE_KEY = 256 };
static struct {
	char ctx[96];
	const char *what;
	char key[LOG_ONCE_KEY];
	int64_t rev;
} log_once[LOG_ONCE_SLOTS];
static size_t log_once_used, log_once_next;
static pthread_mutex_t log_once_lock = PTHREAD_MUTEX_INITIALIZER;

bool log_first_time(const char *what, const char *key, int64_t rev)
{
	bool first = true;
	pthread_mutex_lock(&log_once_lock);
	size_t i;
	for (i = 0; i < log_once_used; i++) {
		if (log_once[i].what == what && strncmp(log_once[i].key, key, LOG_ONCE_KEY - 1) == 0 &&
		    strcmp(log_once[i].ctx, log_ctx) == 0)
			break;
	}
	if (i == log_once_used) {
		if (log_once_used < LOG_ONCE_SLOTS) {
			log_once_used++;
		} else {
			i = log_once_next;
			log_once_next = (log_once_next + 1) % LOG_ONCE_SLOTS;
		}
		snprintf(log_once[i].ctx, sizeof(log_once[i].ctx), "%s", log_ctx);
		log_once[i].what = what;
		snprintf(log_once[i].key, sizeof(log_once[i].key), "%s", key);
	} else if (log_once[i].rev == rev) {
		first = false;
	}
	log_once[i].rev = rev;
	pthread_mutex_unlock(&log_once_lock);
	return first;
}
