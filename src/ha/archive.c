/*
 * archive.c — continuous WAL archiving with pgBackRest when [backup] has a
 * repository, a posix directory or an S3 bucket (a->arc). At setup: find the
 * pgbackrest program, write this member's pgBackRest config
 * (backup/pgbackrest.c) and the archive_command / restore_command every
 * member's pgha.conf carries (node.c reads them). Each loop: the leader, once
 * it runs as primary and the initialize key holds the system identifier, runs
 * `stanza-create` when the stanza's archive.info is not there yet, as it is
 * after a promotion (for S3 a probe reads it), then `check`, each as a child
 * with a timeout; the loop only polls it, so HA never waits for the
 * repository. A failure is logged with pgBackRest's message (for S3 with the
 * cause in words) and retried later; the state ("ok", "failing: why") goes to
 * the member record. Then pg_stat_archiver tells whether archive_command
 * keeps failing. Low in the agent: it calls only node.c.
 */
#include "ha/agent_int.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/pgbackrest.h"
#include "common/log.h"
#include "common/util.h"

enum { ARC_PROBE = 1, ARC_STANZA_CREATE, ARC_CHECK };
static const char *const step_name[] = {
	[ARC_PROBE] = "pgbackrest repo-get archive.info", [ARC_STANZA_CREATE] = "pgbackrest stanza-create",
	[ARC_CHECK] = "pgbackrest check",
};

#define ARC_TIMEOUT_MS 180000      /* one pgBackRest command (check waits up to archive-timeout, 60 s) */
#define ARC_RETRY_MS 30000         /* after a failure */
#define ARC_STAT_MS 5000           /* pg_stat_archiver, once archiving was checked */
#define ARC_LOCK_HELD 50           /* pgBackRest's exit code for a lock held by another of its processes */
#define ARC_FILE_MISSING 55        /* ... for a file that is not there */
#define ARC_NOT_ARCHIVED 82        /* ... for a WAL segment not archived within archive-timeout */
#define ARC_BUSY_MS 1000
#define ARC_BUSY_TRIES 10

/*
 * Does this pgbackrest take the compression type? Builds differ (one built
 * without a library refuses its type, error 32), and a refusal would only show as archive_command
 * failing. Asked with no config file, of a command that stops at once.
 */
static int probe_compress(const struct agent *a, const char *bin, struct pgha_err *e)
{
	char *compress = xasprintf("--compress-type=%s", pgbr_compress_name(a->cfg.backup_compress_type));
	const char *argv[] = {bin, "--config=/dev/null", "--log-level-file=off", "--log-level-console=off",
			      "--log-level-stderr=error", "--lock-path=/tmp", "--stanza=pgha-probe", compress,
			      "--pg1-path=/nonexistent", "archive-push", "/nonexistent/000000010000000000000001", NULL};
	struct proc_spec spec = {.argv = argv, .user = &a->user, .out_fd = -1, .new_session = true};
	struct strbuf out = STRBUF_INIT;
	int code = 0, rc = proc_run(&spec, 10000, &out, &code, e);
	if (rc == 0 && code == 32)
		rc = err_set(e, "[backup] compress_type = %s: this pgbackrest refuses it: %.*s\n"
			     "HINT: use lz4 or gz (or install a pgBackRest built with %s)", a->cfg.backup_compress_type,
			     (int)strcspn(sb_str(&out), "\n"), sb_str(&out), a->cfg.backup_compress_type);
	sb_free(&out);
	free(compress);
	return rc;
}

/*
 * Who shares this host: /etc/machine-id, else the host name. A backup runner
 * reaches another member's PostgreSQL through its socket, so only on one host.
 */
static void host_identity(char *out, size_t len)
{
	FILE *f = fopen("/etc/machine-id", "r");
	out[0] = '\0';
	if (f != NULL) {
		if (fgets(out, (int)len, f) == NULL)
			out[0] = '\0';
		fclose(f);
		out[strcspn(out, " \n")] = '\0';
	}
	if (out[0] == '\0' && gethostname(out, len) != 0)
		snprintf(out, len, "unknown");
	out[len - 1] = '\0';
}

/* Too old a pgbackrest is named at start, not at the first backup (annotations need 2.41). */
static int check_version(const struct agent *a, const char *bin, struct pgha_err *e)
{
	const char *argv[] = {bin, "version", NULL};
	struct proc_spec spec = {.argv = argv, .user = &a->user, .out_fd = -1};
	struct strbuf out = STRBUF_INIT;
	int code = 0, rc = proc_run(&spec, 10000, &out, &code, e);
	int v = rc == 0 && code == 0 ? pgbr_parse_version(sb_str(&out)) : -1;
	if (rc == 0 && v < PGBR_MIN_VERSION)
		rc = err_set(e, "%s: %s pgBackRest %d.%02d or later is needed (it said: %.*s)\n"
			     "HINT: install a newer pgbackrest (https://pgbackrest.org, or the PostgreSQL APT repository)",
			     bin, v < 0 ? "cannot tell its version;" : "too old:", PGBR_MIN_VERSION / 100,
			     PGBR_MIN_VERSION % 100, (int)strcspn(sb_str(&out), "\n"), sb_str(&out));
	sb_free(&out);
	return rc;
}

int archive_setup(struct agent *a, struct pgha_err *e)
{
	struct agent_archive *r = &a->arc;
	r->fd = -1;
	r->on = agent_config_backup_on(&a->cfg);
	if (!r->on)
		return 0;
	r->bin = find_program("pgbackrest");
	if (r->bin == NULL)
		return err_set(e, "[backup] has a repository but pgbackrest is not installed (not found in PATH)\n"
			       "HINT: install it (Debian: apt-get install pgbackrest) on every member, or remove [backup]");
	if (check_version(a, r->bin, e) != 0 || probe_compress(a, r->bin, e) != 0)
		return -1;
	const struct agent_config *c = &a->cfg;
	struct pgbr_s3 s3 = {
		.bucket = c->backup_s3_bucket, .endpoint = c->backup_s3_host, .port = c->backup_s3_port,
		.region = c->backup_s3_region, .key = a->s3_key, .key_secret = a->s3_key_secret,
		.uri_style = c->backup_s3_uri_style, .verify_tls = c->backup_s3_verify_tls, .ca_file = c->backup_s3_ca_file,
	};
	struct pgbr_spec s = {
		.stanza = a->cfg.cluster_name, .archive_stanza = c->standby_archive_stanza, .s3 = c->backup_s3 ? &s3 : NULL, .repo_path = a->cfg.backup_repo_path,
		.retention_full = a->cfg.backup_retention_full, .compress_type = a->cfg.backup_compress_type,
		.process_max = a->cfg.backup_process_max, .archive_push_queue_max = a->cfg.backup_archive_push_queue_max,
		.work_dir = a->cfg.backup_work_dir, .cipher_pass = a->cipher_pass, .pg_path = a->cfg.data_dir,
		.pg_port = a->cfg.pg_port, .pg_socket_path = a->cfg.socket_dir, .pg_user = a->cfg.superuser,
	};
	if (pgbr_write_conf(&s, &a->user, e) != 0)
		return err_wrap(e, "[backup] writing pgBackRest's config");
	r->conf = pgbr_conf_path(a->cfg.backup_work_dir);
	r->archive_command = pgbr_archive_command(r->bin, a->cfg.backup_work_dir, a->cfg.cluster_name, e);
	if (r->archive_command == NULL)
		return -1;
	char *timeout_bin = find_program("timeout");
	if (timeout_bin == NULL)
		log_warn("the timeout program (coreutils) is not in PATH: restore_command runs unbounded, so a hung "
			 "repository can hold a promotion");
	r->restore_command = pgbr_restore_command(timeout_bin, PGBR_RESTORE_TIMEOUT_S, r->bin, a->cfg.backup_work_dir,
						  a->cfg.cluster_name, e);
	if (r->restore_command != NULL)
		r->restore_command_promote = pgbr_restore_command(timeout_bin, PGBR_PROMOTE_RESTORE_TIMEOUT_S, r->bin,
								  a->cfg.backup_work_dir, a->cfg.cluster_name, e);
	/* A standby cluster reads the primary cluster's archive; it never writes there. */
	if (r->restore_command_promote != NULL && c->standby_archive_stanza[0] != '\0') {
		r->restore_command_standby = pgbr_restore_command(timeout_bin, PGBR_RESTORE_TIMEOUT_S, r->bin,
								  a->cfg.backup_work_dir, c->standby_archive_stanza, e);
		if (r->restore_command_standby == NULL) {
			free(timeout_bin);
			return -1;
		}
		log_info("while a standby cluster, WAL missing from streaming is read from the primary cluster's "
			 "stanza %s in %s", c->standby_archive_stanza, a->cfg.backup_repo);
	}
	free(timeout_bin);
	if (r->restore_command == NULL || r->restore_command_promote == NULL)
		return -1;
	host_identity(r->host_id, sizeof(r->host_id));
	log_info("WAL archiving with pgBackRest to %s (stanza %s, config %s)", a->cfg.backup_repo,
		 a->cfg.cluster_name, r->conf);
	return 0;
}

static void set_state(struct agent *a, const char *fmt, ...) PGHA_PRINTF(2, 3);
static void set_state(struct agent *a, const char *fmt, ...)
{
	char buf[sizeof(a->arc.state)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One line in the member record. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	memcpy(a->arc.state, buf, sizeof(buf));
}

/* The repository as the run user will see it: a missing one is named before pgBackRest runs. */
static int repo_check(const struct agent *a, struct pgha_err *e)
{
	const char *repo = a->cfg.backup_repo_path;
	const char *who = a->user.set ? a->user.name : "this agent's user";
	struct stat st;
	if (stat(repo, &st) != 0)
		return err_set(e, "repository %s: %s\nHINT: create it on storage every member mounts at the same path, "
			       "owned by %s (mkdir -p %s && chown %s %s), or fix [backup] repo_path",
			       repo, strerror(errno), who, repo, who, repo);
	if (!S_ISDIR(st.st_mode))
		return err_set(e, "repository %s is not a directory\nHINT: point [backup] repo_path at a directory", repo);
	/* As root, access() answers for root: pgBackRest's own error names the problem then. */
	if (geteuid() != 0 && access(repo, W_OK | X_OK) != 0)
		return err_set(e, "repository %s is not writable by %s (%s)\nHINT: chown %s %s (and mode 0750), "
			       "on every member", repo, who, strerror(errno), who, repo);
	return 0;
}

static int spawn_step(struct agent *a, int step, struct pgha_err *e)
{
	struct agent_archive *r = &a->arc;
	char *config = xasprintf("--config=%s", r->conf);
	char *stanza = xasprintf("--stanza=%s", a->cfg.cluster_name);
	/* pgBackRest connects to PostgreSQL through libpq: the password comes from the passfile. */
	char *passfile = xasprintf("PGPASSFILE=%s", a->cfg.pgpass);
	char *info = xasprintf("archive/%s/archive.info", a->cfg.cluster_name);
	/*
	 * S3: stanza-create takes long enough that PostgreSQL's first
	 * archive-push often meets its lock, and a push that meets it waits
	 * archive-timeout (60 s). In a lock directory of its own it never does:
	 * the push fails at once (no stanza yet) and PostgreSQL retries it a
	 * second later. archive-push only reads archive.info, written whole.
	 */
	char *lock = xasprintf("--lock-path=%s/lock/stanza-create", a->cfg.backup_work_dir);
	/*
	 * An S3 endpoint that does not answer: pgBackRest retries each request
	 * for io-timeout (60 s) several times over, longer than ARC_TIMEOUT_MS;
	 * a shorter one lets its own "unable to connect" reach the member record.
	 */
	const char *argv[8] = {r->bin, config, stanza};
	size_t n = 3;
	if (a->cfg.backup_s3)
		argv[n++] = "--io-timeout=15";
	if (step == ARC_PROBE) {
		argv[n++] = "--raw";
		argv[n++] = "repo-get";
		argv[n++] = info;
	} else {
		if (step == ARC_STANZA_CREATE && a->cfg.backup_s3)
			argv[n++] = lock;
		argv[n++] = step == ARC_STANZA_CREATE ? "stanza-create" : "check";
	}
	const char *env[] = {passfile, NULL};
	struct proc_spec spec = {.argv = argv, .user = &a->user, .out_fd = -1, .new_session = true, .env_add = env};
	int rc = proc_spawn_piped(&spec, &r->pid, &r->fd, e);
	free(config);
	free(stanza);
	free(passfile);
	free(info);
	free(lock);
	if (rc != 0)
		return -1;
	r->step = step;
	r->started_ms = now_ms();
	sb_reset(&r->out);
	log_info("%s started (pid %d)", step_name[step], (int)r->pid);
	return 0;
}

static void child_done(struct agent_archive *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->pid = 0;
}

static void failed(struct agent *a, const char *what, const char *why, const char *detail)
{
	struct agent_archive *r = &a->arc;
	char cause[200] = "";
	struct strbuf shown = STRBUF_INIT;
	pgbr_redact(detail ? detail : "", a->s3_key, &shown);
	detail = sb_str(&shown);
	/* pgBackRest's first line for S3 is "HTTP request failed with 403": the S3 error code says why. */
	if (a->cfg.backup_s3)
		pgbr_s3_cause(detail, cause, sizeof(cause));
	if (cause[0])
		set_state(a, "failing: %s: %s; %s", what, cause, why);
	else
		set_state(a, "failing: %s: %s", what, why);
	char hint[600];
	if (a->cfg.backup_s3)
		snprintf(hint, sizeof(hint), "the bucket %s must exist at https://%s, and the keys in [backup] s3_key_file "
			 "and s3_key_secret_file must be allowed to list, read and write it (check s3_region, "
			 "s3_uri_style, and s3_ca_file for a server with its own CA)", a->cfg.backup_s3_bucket,
			 a->cfg.backup_s3_endpoint);
	else
		snprintf(hint, sizeof(hint), "the repository %s must exist and be writable by the OS user running "
			 "PostgreSQL on every member", a->cfg.backup_repo_path);
	log_error("WAL archiving: %s failed: %s%s%s%s%s\nHINT: %s; pgBackRest's log is in %s/log, archive_command's "
		  "errors in %s. Retrying in %d s; HA and commits go on meanwhile", what, cause, cause[0] ? "; " : "", why,
		  detail[0] ? "\n" : "", detail, hint, a->cfg.backup_work_dir, a->cfg.log_file, ARC_RETRY_MS / 1000);
	sb_free(&shown);
	r->retry_ms = now_ms() + ARC_RETRY_MS;
}

/*
 * Why the asynchronous archive-push failed for wal: pgBackRest leaves its
 * error in the spool (<wal>.error, or global.error for all), "" if not there.
 */
static void push_error(const struct agent *a, const char *wal, char *why, size_t len)
{
	why[0] = '\0';
	for (int i = 0; i < 2 && why[0] == '\0'; i++) {
		char *path = xasprintf("%s/spool/archive/%s/out/%s.error", a->cfg.backup_work_dir, a->cfg.cluster_name,
				       i == 0 ? wal : "global");
		char *text = NULL;
		size_t n;
		struct pgha_err e;
		if (read_file(path, &text, &n, &e) == 0)
			pgbr_reason(text, why, len);
		free(text);
		free(path);
	}
}

/* Poll the running child: output, end, timeout. */
static void poll_child(struct agent *a)
{
	struct agent_archive *r = &a->arc;
	const char *what = step_name[r->step];
	pgbr_read_tail(r->fd, &r->out);
	int code = 0;
	if (proc_poll(r->pid, &code) == 0) {
		if (now_ms() - r->started_ms <= ARC_TIMEOUT_MS)
			return;
		kill(-r->pid, SIGKILL);
		proc_wait(r->pid, 5000, &code);
		pgbr_read_tail(r->fd, &r->out);
		child_done(r);
		char why[128];
		snprintf(why, sizeof(why), "no answer within %d s (killed)", ARC_TIMEOUT_MS / 1000);
		failed(a, what, why, sb_str(&r->out));
		return;
	}
	pgbr_read_tail(r->fd, &r->out);
	child_done(r);
	/*
	 * 50: a lock is held, e.g. by the asynchronous archive-push a promotion just
	 * started (the new timeline's history file): try again in a moment, a few times.
	 */
	if (code == ARC_LOCK_HELD && ++r->busy <= ARC_BUSY_TRIES) {
		log_info("%s: pgBackRest holds a lock (archiving is under way); trying again in %d ms", what, ARC_BUSY_MS);
		r->retry_ms = now_ms() + ARC_BUSY_MS;
		return;
	}
	r->busy = 0;
	/* A new repository has no archive.info yet: the probe reached it, which is all it asks. */
	bool stanza_exists = r->step == ARC_PROBE && code == 0;
	if (r->step == ARC_PROBE && code == ARC_FILE_MISSING)
		code = 0;
	if (code != 0) {
		char why[200], exitdesc[64], seg[32];
		pgbr_reason(sb_str(&r->out), why, sizeof(why));
		/* check's WAL segment never reached the repository: the spool says why. */
		const char *w = strstr(sb_str(&r->out), "WAL segment ");
		if (code == ARC_NOT_ARCHIVED && w != NULL && sscanf(w + 12, "%24[0-9A-F]", seg) == 1) {
			char pushed[sizeof(why)];
			push_error(a, seg, pushed, sizeof(pushed));
			if (pushed[0])
				snprintf(why, sizeof(why), "%s", pushed);
		}
		proc_describe_exit(code, exitdesc, sizeof(exitdesc));
		char full[300];
		snprintf(full, sizeof(full), "%s (%s)", why[0] ? why : "no output", exitdesc);
		failed(a, what, full, sb_str(&r->out));
		return;
	}
	int64_t ms = now_ms() - r->started_ms;
	if (r->step == ARC_PROBE) {
		/*
		 * The stanza exists (check still compares it with this database):
		 * no stanza-create, whose lock would make the archive-push a
		 * promotion starts give up and PostgreSQL wait archive-timeout.
		 */
		int next = stanza_exists ? ARC_CHECK : ARC_STANZA_CREATE;
		struct pgha_err e;
		if (spawn_step(a, next, &e) != 0)
			failed(a, "starting pgbackrest", e.msg, NULL);
		return;
	}
	if (r->step == ARC_STANZA_CREATE) {
		log_info("pgbackrest stanza-create: stanza %s ready in %s (%lld ms)", a->cfg.cluster_name,
			 a->cfg.backup_repo, (long long)ms);
		struct pgha_err e;
		if (spawn_step(a, ARC_CHECK, &e) != 0)
			failed(a, "starting pgbackrest check", e.msg, NULL);
		return;
	}
	log_info("pgbackrest check: WAL archiving to %s works (%lld ms)", a->cfg.backup_repo, (long long)ms);
	r->checked = true;
	r->stat_ms = now_ms();
	set_state(a, "ok");
	/* check just archived a segment: the record says when at once, not a stat round later. */
	if (a->pg.conn != NULL) {
		PGresult *res = PQexec(a->pg.conn, "SELECT coalesce(extract(epoch FROM last_archived_time)::bigint, 0) "
					       "FROM pg_stat_archiver");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			r->archived_at = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
}

/* Once checked: does archive_command keep failing (pg_stat_archiver)? */
static void watch_archiver(struct agent *a)
{
	struct agent_archive *r = &a->arc;
	int64_t now = now_ms();
	if (a->pg.conn == NULL || now - r->stat_ms < ARC_STAT_MS)
		return;
	r->stat_ms = now;
	PGresult *res = PQexec(a->pg.conn,
			       "SELECT coalesce(last_failed_wal, ''), failed_count, "
			       "last_failed_time IS NOT NULL AND last_failed_time > coalesce(last_archived_time, "
			       "'-infinity'), coalesce(extract(epoch FROM last_archived_time)::bigint, 0) "
			       "FROM pg_stat_archiver");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		bool failing = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
		r->archived_at = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		if (failing) {
			char was[sizeof(r->state)], why[200];
			snprintf(was, sizeof(was), "%s", r->state);
			push_error(a, PQgetvalue(res, 0, 0), why, sizeof(why));
			set_state(a, "failing: archive_command failed for %s (%s failures)%s%s; see %s and %s/log",
				  PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), why[0] ? ": " : "", why, a->cfg.log_file,
				  a->cfg.backup_work_dir);
			if (strncmp(was, "failing: archive_command", 24) != 0)
				log_warn("WAL archiving: %s", r->state);
		} else if (strcmp(r->state, "ok") != 0) {
			log_info("WAL archiving works again");
			set_state(a, "ok");
		}
	}
	PQclear(res);
}

void archive_step(struct agent *a)
{
	struct agent_archive *r = &a->arc;
	if (!r->on)
		return;
	if (r->pid > 0) {
		poll_child(a);
		return;
	}
	bool leader = node_is_primary(a) && a->view.leader != NULL && strcmp(a->view.leader, a->cfg.name) == 0;
	bool initialized = a->view.initialize != NULL && strncmp(a->view.initialize, "init:", 5) != 0;
	if (!leader || !initialized) {
		/* A standby archives nothing; after a promotion the new primary checks again. */
		if (!node_is_primary(a)) {
			r->checked = false;
			r->archived_at = 0;
			r->state[0] = '\0';
		}
		return;
	}
	if (r->checked) {
		watch_archiver(a);
		return;
	}
	if (now_ms() < r->retry_ms)
		return;
	struct pgha_err e;
	/*
	 * An S3 bucket is checked by pgBackRest itself, by the probe's GET of the
	 * stanza's archive.info: unlike the HEAD stanza-create starts with, the
	 * server's answer to a GET carries the S3 error code (failed() names it).
	 */
	if (!a->cfg.backup_s3 && repo_check(a, &e) != 0) {
		char first[200];
		snprintf(first, sizeof(first), "%.*s", (int)strcspn(e.msg, "\n"), e.msg);
		set_state(a, "failing: %s", first);
		log_error("WAL archiving: %s; retrying in %d s (HA and commits go on meanwhile)", e.msg, ARC_RETRY_MS / 1000);
		r->retry_ms = now_ms() + ARC_RETRY_MS;
		return;
	}
	/*
	 * After a promotion the stanza exists: stanza-create would take pgBackRest's
	 * archive lock just as the new primary's archiver starts pushing (its
	 * history file first), and that push would wait out archive-timeout (60 s).
	 * check takes no lock. An S3 bucket is looked at by the probe.
	 */
	int first = ARC_PROBE;
	if (!a->cfg.backup_s3) {
		char *info = xasprintf("%s/archive/%s/archive.info", a->cfg.backup_repo_path, a->cfg.cluster_name);
		first = path_exists(info) ? ARC_CHECK : ARC_STANZA_CREATE;
		free(info);
	}
	if (spawn_step(a, first, &e) != 0)
		failed(a, "starting pgbackrest", e.msg, NULL);
}

void archive_promoting(struct agent *a, bool on)
{
	struct agent_archive *r = &a->arc;
	if (!r->on || r->promoting == on)
		return;
	r->promoting = on;
	struct pgha_err e;
	if (node_apply_conf(a, &e) != 0)
		log_warn("restore_command for the promotion: %s", e.msg);
}

void archive_free(struct agent *a)
{
	struct agent_archive *r = &a->arc;
	if (r->pid > 0) {
		int code;
		kill(-r->pid, SIGKILL);
		proc_wait(r->pid, 5000, &code);
	}
	child_done(r);
	sb_free(&r->out);
	free(r->bin);
	free(r->conf);
	free(r->archive_command);
	free(r->restore_command);
	free(r->restore_command_promote);
	free(r->restore_command_standby);
	r->bin = r->conf = r->archive_command = r->restore_command = r->restore_command_promote = NULL;
	r->restore_command_standby = NULL;
}
