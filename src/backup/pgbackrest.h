/*
 * pgbackrest.h — pgBackRest driven by pgha: the configuration file pgha writes
 * for one member, and the archive_command / restore_command PostgreSQL runs.
 *
 * Pure text functions (unit-tested on exact output) plus writing the file:
 * atomically, mode 0600, owned by the run user, in a work directory (0700) with
 * spool/, log/ and lock/ beside it. The cipher passphrase lives only in that
 * file: never in argv, a child's environment or a log line.
 */
#ifndef PGHA_BACKUP_PGBACKREST_H
#define PGHA_BACKUP_PGBACKREST_H

#include <stdbool.h>

#include "common/err.h"
#include "common/proc.h"
#include "common/strbuf.h"

struct pgbr_spec {
	const char *stanza;           /* the [cluster] name */
	const char *repo_path;        /* posix repository directory */
	int retention_full;
	const char *compress_type;    /* zstd, lz4, gz, none */
	int process_max;
	const char *archive_push_queue_max;   /* size text, e.g. "1GiB" */
	const char *work_dir;         /* config, spool, log, lock live here */
	const char *cipher_pass;      /* NULL or "": no encryption (in memory only) */
	const char *pg_path;          /* data directory */
	int pg_port;
	const char *pg_socket_path;
	const char *pg_user;          /* the superuser */
};

/* A compression pgBackRest knows: zstd, lz4, gz or none. */
bool pgbr_compress_ok(const char *type);
/* pgBackRest's own spelling of it (it calls zstd "zst" and refuses "zstd"). */
const char *pgbr_compress_name(const char *type);

/*
 * A path pgha may hand to pgBackRest and PostgreSQL's shell: absolute, no
 * control characters, no leading or trailing blank in a component pgBackRest
 * would trim. The error names what is wrong (the caller adds the option name).
 */
int pgbr_path_check(const char *path, struct pgha_err *e) PGHA_MUSTCHECK;

/* The text of pgbackrest.conf (appended to out). */
void pgbr_render_conf(const struct pgbr_spec *s, struct strbuf *out);

/* <work_dir>/pgbackrest.conf (caller frees). */
char *pgbr_conf_path(const char *work_dir);

/*
 * `'BIN' '--config=WORK/pgbackrest.conf' --stanza=S archive-push %p` and
 * `... archive-get %f "%p"`: single-quoted for /bin/sh, '%' doubled for
 * PostgreSQL's own substitution. NULL (with e set) for a path that cannot be
 * quoted. Caller frees.
 */
char *pgbr_archive_command(const char *bin, const char *work_dir, const char *stanza, struct pgha_err *e);
char *pgbr_restore_command(const char *bin, const char *work_dir, const char *stanza, struct pgha_err *e);

/*
 * Create work_dir (0700) with spool/, log/, lock/ and write pgbackrest.conf
 * (atomic, 0600), all owned by owner when we run as root.
 */
int pgbr_write_conf(const struct pgbr_spec *s, const struct run_user *owner, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Read what a pgBackRest child wrote to its pipe (non-blocking fd) into out,
 * keeping the last PGBR_TAIL_MAX bytes: enough for its ERROR and summary lines.
 */
#define PGBR_TAIL_MAX 8192
void pgbr_read_tail(int fd, struct strbuf *out);

/* pgBackRest's reason for a failure: its first ERROR line, else the last line of output. */
void pgbr_reason(const char *output, char *buf, size_t len);

#endif
