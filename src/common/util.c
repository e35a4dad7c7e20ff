#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_s(void)
{
	return (int64_t)time(NULL);
}

void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int read_file(const char *path, char **out, size_t *len, struct pgha_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, "cannot open \"%s\": %s", path, strerror(errno));
	struct strbuf sb = STRBUF_INIT;
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int saved = errno;
			close(fd);
			sb_free(&sb);
			return err_set(e, "cannot read \"%s\": %s", path, strerror(saved));
		}
		if (n == 0)
			break;
		sb_append(&sb, buf, (size_t)n);
		if (sb.len > 64 * 1024 * 1024) {
			close(fd);
			sb_free(&sb);
			return err_set(e, "\"%s\" is larger than 64 MB", path);
		}
	}
	close(fd);
	if (len)
		*len = sb.len;
	*out = sb_steal(&sb);
	return 0;
}

/*
 * Mode and owner of an open secret file. Writable by group or others: anyone
 * there could put in a password of their choosing (refused, as OpenSSH
 * refuses such keys). Readable by others: warned, as libpq's passfile check
 * would refuse it but Kubernetes secret mounts are often 0644. Owned by
 * another user than us or root: that user can change it (warned).
 */
static int secret_file_mode_ok(const char *path, const struct stat *st, struct pgha_err *e)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);
	if (!S_ISREG(st->st_mode))
		return err_set(e, "secret file \"%s\" is not a regular file", path);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return err_set(e, "secret file \"%s\" has mode %04o: it is writable by %s, who could change "
			       "the secret; refusing to use it (HINT: chmod 600 %s)", path, mode,
			       (st->st_mode & S_IWOTH) ? "every user" : "its group", path);
	if (st->st_mode & S_IROTH)
		log_warn("secret file \"%s\" has mode %04o: every user of this machine can read it "
			 "(HINT: chmod 600 %s)", path, mode, path);
	if (st->st_uid != geteuid() && st->st_uid != 0)
		log_warn("secret file \"%s\" is owned by uid %u, not by this process's user (uid %u) or root: "
			 "that user can change it (HINT: chown %u %s)", path, (unsigned)st->st_uid,
			 (unsigned)geteuid(), (unsigned)geteuid(), path);
	return 0;
}

/* Read all of fd into a buffer that is wiped whenever it moves or is given back. */
static int read_secret_fd(int fd, const char *path, size_t hint, char **out, size_t *len, struct pgha_err *e)
{
	size_t cap = hint + 1 < 4096 ? 4096 : hint + 1, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (n + 1 == cap) {
			if (cap > 64 * 1024 * 1024) {
				secret_wipe_free(buf, cap);
				return err_set(e, "secret file \"%s\" is larger than 64 MB", path);
			}
			char *bigger = xmalloc(cap * 2);
			memcpy(bigger, buf, n);
			secret_wipe_free(buf, cap);
			buf = bigger;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int saved = errno;
			secret_wipe_free(buf, cap);
			return err_set(e, "cannot read secret file \"%s\": %s", path, strerror(saved));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int read_secret_text(const char *path, char **out, size_t *len, struct pgha_err *e)
{
	if (path == NULL || path[0] == '\0')
		return err_set(e, "no secret file given");
	/* One open: the file checked is the file read. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);   /* a FIFO must not hang us */
	if (fd < 0)
		return err_set(e, "cannot open secret file \"%s\": %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int saved = errno;
		close(fd);
		return err_set(e, "cannot stat secret file \"%s\": %s", path, strerror(saved));
	}
	int rc = secret_file_mode_ok(path, &st, e);
	if (rc == 0)
		rc = read_secret_fd(fd, path, (size_t)st.st_size, out, len, e);
	close(fd);
	if (rc != 0)
		return -1;
	const char *nul = memchr(*out, '\0', *len);
	if (nul != NULL) {
		size_t at = (size_t)(nul - *out);
		secret_wipe_free(*out, *len);
		*out = NULL;
		return err_set(e, "secret file \"%s\" holds a NUL byte (at byte %zu): a secret cannot contain "
			       "one, and it would cut the secret short (HINT: write the file as text)", path, at);
	}
	return 0;
}

int read_secret_file(const char *path, char **out, struct pgha_err *e)
{
	char *data;
	size_t len;
	if (read_secret_text(path, &data, &len, e) != 0)
		return -1;
	size_t n = strcspn(data, "\r\n");
	if (n == 0) {
		secret_wipe_free(data, len);
		return err_set(e, "secret file \"%s\" is empty (its first line holds the secret)", path);
	}
	char *s = xstrndup(data, n);
	secret_wipe_free(data, len);
	*out = s;
	return 0;
}

void secret_wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

void secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
		      gid_t gid, struct pgha_err *e)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		err_set(e, "cannot create \"%s\": %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err_set(e, "cannot write \"%s\": %s", tmp, strerror(errno));
			goto fail;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fchmod(fd, mode) != 0) {
		err_set(e, "cannot chmod \"%s\": %s", tmp, strerror(errno));
		goto fail;
	}
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) != 0) {
		err_set(e, "cannot chown \"%s\" to uid %d: %s", tmp, (int)uid, strerror(errno));
		goto fail;
	}
	if (fsync(fd) != 0) {
		err_set(e, "cannot fsync \"%s\": %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		err_set(e, "cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
fail:
	close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

int mkdir_p(const char *path, mode_t mode, struct pgha_err *e)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST) {
				err_set(e, "cannot create directory \"%s\": %s", p, strerror(errno));
				free(p);
				return -1;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return err_set(e, "\"%s\" exists and is not a directory", path);
	return 0;
}

bool path_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

bool dir_is_empty_or_missing(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOENT;
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	}
	closedir(d);
	return empty;
}

char *path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a);
	if (la > 0 && a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

/* "host:port" / "[v6]:port" with a port from min_port to 65535. */
static int split_host_port(const char *s, int min_port, char *hostbuf, size_t hostlen, int *port,
			   struct pgha_err *e)
{
	const char *colon;
	const char *host = s;
	size_t hl;
	if (s == NULL)
		return err_set(e, "no address given (host:port)");
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return err_set(e, "\"%s\" is not host:port ([v6addr]:port for IPv6)", s);
		host = s + 1;
		hl = (size_t)(rb - host);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return err_set(e, "\"%s\" is not host:port", s);
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return err_set(e, "\"%s\": the host part is empty or too long", s);
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p < min_port || p > 65535)
		return err_set(e, "\"%s\": the port must be a number from %d to 65535", s, min_port);
	memcpy(hostbuf, host, hl);
	hostbuf[hl] = '\0';
	*port = (int)p;
	return 0;
}

int parse_host_port(const char *s, char *hostbuf, size_t hostlen, int *port, struct pgha_err *e)
{
	return split_host_port(s, 1, hostbuf, hostlen, port, e);
}

int parse_listen_addr(const char *s, char *hostbuf, size_t hostlen, int *port, struct pgha_err *e)
{
	return split_host_port(s, 0, hostbuf, hostlen, port, e);
}

int random_token(char *out, size_t len, struct pgha_err *e)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char raw[256];
	if (len >= sizeof(raw))
		return err_set(e, "random token too long");
	if (getrandom(raw, len, 0) != (ssize_t)len)
		return err_set(e, "getrandom failed: %s", strerror(errno));
	for (size_t i = 0; i < len; i++)
		out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	out[len] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

void format_bytes(uint64_t bytes, char *out, size_t outlen)
{
	static const char *units[] = {"B", "kB", "MB", "GB", "TB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(out, outlen, "%" PRIu64 " B", bytes);
	else
		snprintf(out, outlen, "%.1f %s", v, units[u]);
}

int lsn_parse(const char *s, uint64_t *out)
{
	unsigned int hi, lo;
	int n = 0;
	if (s == NULL || sscanf(s, "%X/%X%n", &hi, &lo, &n) != 2 || s[n] != '\0')
		return -1;
	*out = ((uint64_t)hi << 32) | lo;
	return 0;
}

void lsn_format(uint64_t lsn, char *out, size_t outlen)
{
	snprintf(out, outlen, "%X/%X", (unsigned int)(lsn >> 32), (unsigned int)lsn);
}

char *find_program(const char *name)
{
	const char *path = getenv("PATH");
	char *dirs = xstrdup(path && path[0] ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL, *found = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		if (d[0] != '/')
			continue;
		char *p = path_join(d, name);
		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(dirs);
	return found;
}

void format_utc(int64_t secs, char *out, size_t outlen)
{
	time_t t = (time_t)secs;
	struct tm tm;
	strftime(out, outlen, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
}
