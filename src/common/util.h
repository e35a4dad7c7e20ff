/*
 * util.h — time, files and secrets.
 */
#ifndef PGHA_UTIL_H
#define PGHA_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Monotonic clock in milliseconds (for deadlines and intervals). */
int64_t now_ms(void);
/* Wall clock, seconds since the epoch. */
int64_t wall_s(void);
/* Wall clock, milliseconds since the epoch (deadlines other hosts read: etcd records). */
int64_t wall_ms(void);
void sleep_ms(int64_t ms);

/*
 * Files holding secrets (passwords, tokens, the proxy's users file). The
 * file is opened once and checked before it is read: a file writable by group
 * or others is refused (its mode and `chmod 600 FILE` in the error), one
 * readable by others or owned by another user than ours or root is used with
 * a warning, and a NUL byte anywhere is refused (it would cut a secret short).
 */
/* The whole file, NUL-terminated; free *out with secret_wipe_free(*out, *len). */
int read_secret_text(const char *path, char **out, size_t *len, struct pgha_err *e) PGHA_MUSTCHECK;
/*
 * A secret (password, token): the first line, without the line end; an
 * empty first line is refused. The caller frees *out with secret_free(),
 * which wipes it.
 */
int read_secret_file(const char *path, char **out, struct pgha_err *e) PGHA_MUSTCHECK;
/* Wipe len bytes at p and free it (NULL is fine). */
void secret_wipe_free(void *p, size_t len);
void secret_free(char *s);

/* Read a whole (small) file. *out is NUL-terminated; the caller frees it. */
int read_file(const char *path, char **out, size_t *len, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Write a file atomically (tmp + fsync + rename) with the given mode and, when
 * uid != (uid_t)-1, owner.
 */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
		      gid_t gid, struct pgha_err *e) PGHA_MUSTCHECK;

/* mkdir -p with the given mode for the directories it creates. */
int mkdir_p(const char *path, mode_t mode, struct pgha_err *e) PGHA_MUSTCHECK;

bool path_exists(const char *path);
bool dir_is_empty_or_missing(const char *path);

/* Copy of dirname()/basename() that do not modify their argument; caller frees. */
char *path_dirname(const char *path);
char *path_join(const char *a, const char *b);
/* The absolute path of a program in PATH (only its absolute entries), or NULL. Caller frees. */
char *find_program(const char *name);

/* Split "host:port" (IPv6 as "[::1]:5432"). host is copied into hostbuf. */
int parse_host_port(const char *s, char *hostbuf, size_t hostlen, int *port, struct pgha_err *e) PGHA_MUSTCHECK;
/* The same for an address to listen on, where port 0 asks the kernel for a free port. */
int parse_listen_addr(const char *s, char *hostbuf, size_t hostlen, int *port, struct pgha_err *e) PGHA_MUSTCHECK;

/* Random alphanumeric string of len characters from the kernel CSPRNG. */
int random_token(char *out, size_t len, struct pgha_err *e) PGHA_MUSTCHECK;

/* Format a byte count for humans: "0 B", "12.5 MB" (1 MB = 1024*1024). */
void format_bytes(uint64_t bytes, char *out, size_t outlen);
/* Unix seconds as "2026-12-03 14:02:00" (UTC). */
void format_utc(int64_t secs, char *out, size_t outlen);

/* "0/3000060" <-> 64-bit LSN. */
int lsn_parse(const char *s, uint64_t *out);
void lsn_format(uint64_t lsn, char *out, size_t outlen);

#endif
