#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
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

static enum log_format log_fmt = LOG_FORMAT_TEXT;
static bool log_journal;
static char log_component[16], log_cluster[128], log_member[64];

/*
 * Is stderr systemd's journal? systemd sets JOURNAL_STREAM=<dev>:<inode> of
 * the stream it connected; a stderr redirected elsewhere has another inode.
 */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_format(enum log_format f)
{
	log_fmt = f;
	log_journal = stderr_is_journal();
}

int log_parse_format(const char *s, enum log_format *out)
{
	if (strcasecmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcasecmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

void log_set_identity(const char *component, const char *cluster, const char *member)
{
	snprintf(log_component, sizeof(log_component), "%s", component ? component : "");
	snprintf(log_cluster, sizeof(log_cluster), "%s", cluster ? cluster : "");
	snprintf(log_member, sizeof(log_member), "%s", member ? member : "");
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
	if (n == 2 && p[0] < 0xC2)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

/* s as a JSON string into out[*n..len): escaped; a byte of invalid UTF-8 becomes '?'. */
static void json_str(char *out, size_t len, size_t *n, const char *s)
{
	if (*n + 1 < len)
		out[(*n)++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p && *n + 8 < len;) {
		if (*p == '"' || *p == '\\') {
			out[(*n)++] = '\\';
			out[(*n)++] = (char)*p++;
		} else if (*p == '\n') {
			out[(*n)++] = '\\';
			out[(*n)++] = 'n';
			p++;
		} else if (*p < 0x20) {
			*n += (size_t)snprintf(out + *n, len - *n, "\\u%04x", *p++);
		} else {
			size_t k = utf8_len(p);
			if (k == 0) {
				out[(*n)++] = '?';
				p++;
			} else {
				for (size_t i = 0; i < k; i++)
					out[(*n)++] = (char)*p++;
			}
		}
	}
	if (*n + 1 < len)
		out[(*n)++] = '"';
}

static void emit(const char *line)
{
	pthread_mutex_lock(&log_lock);
	fputs(line, stderr);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

static void write_json(enum log_level lvl, const char *const *kv, const char *msg, const struct timeval *tv)
{
	static const char *const lower[] = {"debug", "info", "warn", "error", "fatal"};
	char line[8192];
	struct tm tm;
	gmtime_r(&tv->tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ\",\"level\":\"%s\"", (int)(tv->tv_usec / 1000),
			      lvl >= LOG_DEBUG && lvl <= LOG_FATAL ? lower[lvl] : "?");
	const char *fields[] = {"component", log_component, "cluster", log_cluster, "member", log_member,
				"context", log_ctx};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i += 2) {
		if (fields[i + 1][0] == '\0' || n + 16 >= sizeof(line))
			continue;
		n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"%s\":", fields[i]);
		json_str(line, sizeof(line), &n, fields[i + 1]);
	}
	for (size_t i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL && n + 16 < sizeof(line); i += 2) {
		line[n++] = ',';
		json_str(line, sizeof(line), &n, kv[i]);
		line[n++] = ':';
		json_str(line, sizeof(line), &n, kv[i + 1]);
	}
	if (n + 16 < sizeof(line)) {
		n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"message\":");
		json_str(line, sizeof(line) - 2, &n, msg);
	}
	line[n++] = '}';
	line[n] = '\0';
	emit(line);
}

static void vwrite(enum log_level lvl, const char *const *kv, const char *fmt, va_list ap)
{
	char line[4096];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (log_fmt == LOG_FORMAT_JSON) {
		vsnprintf(line, sizeof(line), fmt, ap);
		write_json(lvl, kv, line, &tv);
		return;
	}
	int n;
	if (log_journal) {
		/* The journal stamps each line itself; <N> is the syslog priority it files the line under. */
		static const int prio[] = {7, 6, 4, 3, 2};
		n = snprintf(line, sizeof(line), "<%d>%-5s ", lvl >= LOG_DEBUG && lvl <= LOG_FATAL ? prio[lvl] : 6,
			     log_level_name(lvl));
	} else {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03d UTC %-5s ", (int)(tv.tv_usec / 1000),
			      log_level_name(lvl));
	}
	if (log_ctx[0] != '\0')
		n += snprintf(line + n, sizeof(line) - (size_t)n, "[%s] ", log_ctx);
	if (n < (int)sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	emit(line);
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwrite(lvl, NULL, fmt, ap);
	va_end(ap);
}

void log_write_kv(enum log_level lvl, const char *const *kv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwrite(lvl, kv, fmt, ap);
	va_end(ap);
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
