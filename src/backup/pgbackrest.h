/*
 * pgbackrest.h — pgBackRest driven by pgha: the configuration file pgha writes
 * for one member, and the archive_command / restore_command PostgreSQL runs.
 *
 * Pure text functions (unit-tested on exact output) plus writing the file:
 * atomically, mode 0600, owned by the run user, in a work directory (0700) with
 * spool/, log/ and lock/ beside it. The cipher passphrase and the S3 keys live
 * only in that file: never in argv, a child's environment or a log line.
 */
#ifndef PGHA_BACKUP_PGBACKREST_H
#define PGHA_BACKUP_PGBACKREST_H

#include <stdbool.h>

#include "common/err.h"
#include "common/proc.h"
#include "common/strbuf.h"

/* An S3 (or S3-compatible) repository. */
struct pgbr_s3 {
	const char *bucket;
	const char *endpoint;         /* host name or address, without port */
	int port;                     /* 0: pgBackRest's default (443) */
	const char *region;
	const char *key;              /* access key id (in memory only) */
	const char *key_secret;       /* secret access key (in memory only) */
	const char *uri_style;        /* host or path */
	bool verify_tls;
	const char *ca_file;          /* NULL or "": the system's CAs */
};

struct pgbr_spec {
	const char *stanza;           /* the [cluster] name */
	const char *archive_stanza;   /* NULL or "": none; else a standby cluster's primary stanza (archive-get) */
	const struct pgbr_s3 *s3;     /* NULL: a posix repository */
	const char *repo_path;        /* posix: the directory; s3: the path inside the bucket */
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

/*
 * A value pgha writes into pgbackrest.conf from its own config (bucket,
 * region, endpoint): not empty, no blank, control character or '='
 * pgBackRest's parser would read differently. The error names what is wrong.
 */
int pgbr_value_check(const char *value, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Why pgBackRest failed against an S3 repository, in plain words, from its
 * output (the S3 error code in the response it prints, or a connection or
 * TLS error): e.g. "bucket missing (NoSuchBucket)". "" when nothing in out
 * is recognised.
 */
void pgbr_s3_cause(const char *out, char *buf, size_t len);

/*
 * text with each occurrence of secret replaced by "<redacted>" (appended to
 * out): an S3 server echoes the access key id in its error responses, which
 * pgBackRest prints and pgha logs. NULL or "" secret: text as is.
 */
void pgbr_redact(const char *text, const char *secret, struct strbuf *out);

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
/*
 * With timeout_bin (coreutils timeout), restore_command gives up after
 * PGBR_RESTORE_TIMEOUT_S (exit 124: "not there" to PostgreSQL, never the
 * fatal >125), so a hung repository cannot hold a promotion, which looks for
 * history files in the archive, or keep a standby from streaming.
 */
#define PGBR_RESTORE_TIMEOUT_S 10
/* While promoting: PostgreSQL only looks for history files, each is one small read. */
#define PGBR_PROMOTE_RESTORE_TIMEOUT_S 3
char *pgbr_restore_command(const char *timeout_bin, int timeout_s, const char *bin, const char *work_dir,
			   const char *stanza, struct pgha_err *e);

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

/*
 * What `pgbackrest backup --log-level-console=detail` printed so far: the
 * percent done on its last "backup file ... (SIZE, NN.NN%)" line (-1: none
 * yet), and at the end the new label and the size ("" when absent).
 */
int pgbr_backup_percent(const char *output);
void pgbr_backup_summary(const char *output, char *label, size_t label_len, char *size, size_t size_len);

/*
 * `pgbackrest version` output ("pgBackRest 2.45") -> major * 100 + minor
 * (245), -1 if unreadable. pgha needs PGBR_MIN_VERSION (backup annotations).
 */
#define PGBR_MIN_VERSION 241
int pgbr_parse_version(const char *output);

/*
 * What a failure against a posix repository means, in words that say what to
 * do, from pgBackRest's output: no space left (and the file it was writing),
 * a passphrase that does not decrypt the repository, an encrypted repository
 * read without one, a damaged file (and which). "" when nothing is recognised.
 * A write pgBackRest gave up on after retries (it no longer names the errno
 * then) is called no space when the file system it was writing to is nearly
 * full: the only look outside the text.
 */
void pgbr_local_cause(const char *output, char *buf, size_t len);

/*
 * pgBackRest's reason for a failure: pgbr_local_cause() when it recognises
 * the cause, else its first ERROR line, else the last line of output.
 */
void pgbr_reason(const char *output, char *buf, size_t len);

#endif
