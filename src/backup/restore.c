/*
 * restore.c — a data directory restored to a recovery target, as one child
 * process (see restore.h).
 */
#include "backup/restore.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/info.h"
#include "common/proc.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "pg/pgsql.h"

/* ---- targets -------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return n > 0;
}

/* "+HH", "+HH:MM", "+HHMM", "Z", "UTC" (after optional blanks) -> offset seconds east. */
static int parse_zone(const char *z, int *off)
{
	while (*z == ' ')
		z++;
	if (*z == '\0' || strcmp(z, "Z") == 0 || strcmp(z, "UTC") == 0 || strcmp(z, "GMT") == 0) {
		*off = 0;
		return 0;
	}
	if (*z != '+' && *z != '-')
		return -1;
	int sign = *z == '-' ? -1 : 1;
	const char *d = z + 1;
	size_t n = strlen(d);
	int h, m = 0;
	if (n == 2 && all_digits(d, 2))
		h = atoi(d);
	else if (n == 4 && all_digits(d, 4))
		h = (d[0] - '0') * 10 + (d[1] - '0'), m = atoi(d + 2);
	else if (n == 5 && d[2] == ':' && all_digits(d, 2) && all_digits(d + 3, 2))
		h = (d[0] - '0') * 10 + (d[1] - '0'), m = atoi(d + 3);
	else
		return -1;
	if (h > 15 || m > 59)
		return -1;
	*off = sign * (h * 3600 + m * 60);
	return 0;
}

int restore_target_parse(const char *s, struct restore_target *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	uint64_t lsn;
	if (strcmp(s, "latest") == 0) {
		out->kind = RESTORE_LATEST;
		snprintf(out->text, sizeof(out->text), "latest");
		return 0;
	}
	if (strchr(s, '/') != NULL && lsn_parse(s, &lsn) == 0) {
		out->kind = RESTORE_LSN;
		lsn_format(lsn, out->text, sizeof(out->text));
		return 0;
	}
	/* YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][zone] */
	int y, mo, d, h, mi, sec = 0, n = 0;
	char frac[8] = "";
	if (strlen(s) < 16 || sscanf(s, "%4d-%2d-%2d%*1[ T]%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) != 5 ||
	    !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || !all_digits(s + 8, 2) ||
	    !all_digits(s + 11, 2) || !all_digits(s + 14, 2))
		goto bad;
	const char *p = s + n;
	if (*p == ':') {
		if (!all_digits(p + 1, 2))
			goto bad;
		sec = (p[1] - '0') * 10 + (p[2] - '0');
		p += 3;
		if (*p == '.') {
			size_t f = strspn(p + 1, "0123456789");
			if (f == 0 || f > 6)
				goto bad;
			snprintf(frac, sizeof(frac), ".%.*s", (int)f, p + 1);
			p += 1 + f;
		}
	}
	int off;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || parse_zone(p, &off) != 0)
		goto bad;
	out->kind = RESTORE_TIME;
	snprintf(out->text, sizeof(out->text), "%04d-%02d-%02d %02d:%02d:%02d%s%c%02d:%02d", y, mo, d, h, mi, sec, frac,
		 off < 0 ? '-' : '+', abs(off) / 3600, abs(off) % 3600 / 60);
	return 0;
bad:
	return err_set(e, "restore target \"%s\": give latest, an LSN such as 0/5000028, or a time such as "
		       "\"2026-12-03 14:02:00\" (UTC unless a zone follows: +01, -05:00, Z)", s);
}

int64_t restore_target_epoch(const struct restore_target *t)
{
	if (t->kind != RESTORE_TIME)
		return 0;
	struct tm tm = {0};
	int sec, oh, om;
	char sign;
	if (sscanf(t->text, "%4d-%2d-%2d %2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
		   &sec) != 6)
		return -1;
	const char *z = t->text + strlen(t->text) - 6;
	if (sscanf(z, "%c%2d:%2d", &sign, &oh, &om) != 3)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	tm.tm_sec = sec;
	int64_t epoch = (int64_t)timegm(&tm);
	int64_t off = (int64_t)(oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
	return epoch - off;
}

void restore_target_args(const struct restore_target *t, char *args[3])
{
	args[0] = args[1] = args[2] = NULL;
	switch (t->kind) {
	case RESTORE_LATEST:
		args[0] = xstrdup("--type=default");
		return;
	case RESTORE_TIME:
		args[0] = xstrdup("--type=time");
		break;
	case RESTORE_LSN:
		args[0] = xstrdup("--type=lsn");
		break;
	}
	args[1] = xasprintf("--target=%s", t->text);
	args[2] = xstrdup("--target-action=promote");
}

const struct backup_entry *restore_pick_backup(const struct backup_info *bi, const struct restore_target *t,
					       struct pgha_err *e)
{
	const struct backup_entry *oldest = NULL, *best = NULL;
	uint64_t lsn = 0;
	int64_t epoch = restore_target_epoch(t);
	if (t->kind == RESTORE_LSN && lsn_parse(t->text, &lsn) != 0)
		lsn = 0;
	for (size_t i = 0; i < bi->nbackups; i++) {
		const struct backup_entry *b = &bi->backups[i];
		if (b->error)
			continue;
		if (oldest == NULL)
			oldest = b;
		bool before = t->kind == RESTORE_LATEST || (t->kind == RESTORE_TIME && b->stop_s <= epoch) ||
			      (t->kind == RESTORE_LSN && b->lsn_stop <= lsn);
		if (before)
			best = b;
	}
	if (t->kind == RESTORE_TIME && epoch > (int64_t)time(NULL)) {
		err_set(e, "restore target %s is in the future: the recoverable window ends at the last archived WAL "
			"segment %s\nHINT: give a past time, or latest; nothing was changed", t->text,
			bi->wal_max[0] ? bi->wal_max : "(none)");
		return NULL;
	}
	if (best != NULL)
		return best;
	if (oldest == NULL) {
		err_set(e, "the repository holds no backup of stanza %s to restore from\nHINT: take one first "
			"(pgha ctl backup --wait)", bi->stanza);
		return NULL;
	}
	char from[40], lsntxt[32];
	format_utc(oldest->stop_s, from, sizeof(from));
	lsn_format(oldest->lsn_stop, lsntxt, sizeof(lsntxt));
	err_set(e, "restore target %s is before the recoverable window of stanza %s, which starts at %s UTC (LSN %s, the "
		"end of backup %s) and ends at the last archived WAL segment %s\nHINT: choose a target inside the "
		"window (pgha ctl backups shows it); nothing was changed", t->text, bi->stanza, from, lsntxt,
		oldest->label, bi->wal_max[0] ? bi->wal_max : "(none)");
	return NULL;
}

/* Is line (up to its end) a setting named name... ? */
static bool setting_is(const char *line, const char *name, bool prefix)
{
	while (*line == ' ' || *line == '\t')
		line++;
	size_t n = strlen(name);
	if (strncmp(line, name, n) != 0)
		return false;
	return prefix || line[n] == ' ' || line[n] == '=' || line[n] == '\t';
}

char *restore_strip_auto_conf(const char *in)
{
	struct strbuf out = STRBUF_INIT;
	bool ours = false;   /* inside pgBackRest's block */
	for (const char *p = in; *p;) {
		size_t n = strcspn(p, "\n");
		char *line = xstrndup(p, n);
		if (strstr(line, "generated by pgBackRest") != NULL) {
			ours = true;
		} else if (!(ours && (setting_is(line, "restore_command", false) ||
				      setting_is(line, "recovery_target", true) ||
				      setting_is(line, "archive_mode", false)))) {
			sb_append(&out, p, n);
			if (p[n] == '\n')
				sb_puts(&out, "\n");
		}
		free(line);
		p += n + (p[n] == '\n');
	}
	return sb_steal(&out);
}

/* ---- the job -------------------------------------------------------------- */

static bool no_backup;        /* the repository holds none: the job's exit code says so */
static bool touched;          /* pgbackrest restore started on the directory */

struct job_opts {
	const char *pgbackrest, *config, *stanza, *dir, *bin_dir, *superuser, *replication_user, *passwords;
	const char *target;
	int port;
	long timeout_s;
	bool standby;             /* a standby's data directory: the latest backup, no recovery here */
	bool in_place;            /* the cluster's own data directory: --delta, archiving on */
	const char *set;          /* the backup to start from, or NULL: the one the target needs */
};

static void say(const char *fmt, ...) PGHA_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

/* pgbackrest info: the backup the target needs (or the one given: still there?), or an error naming the window. */
static int pick_set(const struct job_opts *o, const struct restore_target *t, char *label, size_t len,
		    struct pgha_err *e)
{
	char *config = xasprintf("--config=%s", o->config), *stanza = xasprintf("--stanza=%s", o->stanza);
	const char *argv[] = {o->pgbackrest, config, stanza, "--output=json", "--log-level-console=error", "info", NULL};
	struct proc_spec spec = {.argv = argv, .out_fd = -1};
	struct strbuf out = STRBUF_INIT;
	int code = 0;
	int rc = proc_run(&spec, 120000, &out, &code, e);
	if (rc == 0 && code != 0)
		rc = err_set(e, "pgbackrest info failed: %s", sb_str(&out));
	struct backup_info bi = {0};
	if (rc == 0)
		rc = backup_info_decode(sb_str(&out), o->stanza, &bi, e);
	if (rc == 0 && bi.status_code != 0 && bi.status_code != 2)
		rc = err_set(e, "stanza %s in the repository: %s\nHINT: restore_stanza names the source cluster "
			     "([cluster] name of the cluster whose backups these are)", o->stanza, bi.status);
	if (rc == 0 && o->set != NULL) {
		/* Named by the caller (ctl picked it): it must still be there. */
		rc = err_set(e, "backup %s is not in the repository (stanza %s)\nHINT: `pgha ctl backups` lists the "
			     "backups; ask for the restore again", o->set, o->stanza);
		for (size_t i = 0; i < bi.nbackups; i++)
			if (strcmp(bi.backups[i].label, o->set) == 0)
				rc = 0;
		if (rc == 0)
			snprintf(label, len, "%s", o->set);
	} else if (rc == 0) {
		const struct backup_entry *b = restore_pick_backup(&bi, t, e);
		no_backup = b == NULL && bi.nbackups == 0;
		if (b == NULL)
			rc = -1;
		else
			snprintf(label, len, "%s", b->label);
	}
	backup_info_free(&bi);
	sb_free(&out);
	free(config);
	free(stanza);
	return rc;
}

static int run_pgbackrest(const struct job_opts *o, const struct restore_target *t, struct pgha_err *e)
{
	char label[64];
	if (pick_set(o, t, label, sizeof(label), e) != 0)
		return -1;
	say("from backup %s%s", label, o->in_place ? " (--delta: only the files that differ are copied)" : "");
	char *set = xasprintf("--set=%s", label);
	char *config = xasprintf("--config=%s", o->config), *stanza = xasprintf("--stanza=%s", o->stanza);
	char *path = xasprintf("--pg1-path=%s", o->dir);
	char *targ[3];
	restore_target_args(t, targ);
	const char *argv[12];
	size_t k = 0;
	argv[k++] = o->pgbackrest;
	argv[k++] = config;
	argv[k++] = stanza;
	argv[k++] = path;
	argv[k++] = "--log-level-console=info";
	argv[k++] = set;
	if (o->in_place)
		argv[k++] = "--delta";
	for (int i = 0; i < 3; i++)
		if (targ[i])
			argv[k++] = targ[i];
	argv[k++] = "restore";
	argv[k] = NULL;
	struct proc_spec spec = {.argv = argv, .out_fd = 1};
	int code = 0;
	pid_t pid;
	int rc = proc_spawn(&spec, &pid, e);
	touched = rc == 0;
	if (rc == 0 && proc_wait(pid, (int)(o->timeout_s > 2000000 ? 2000000000 : o->timeout_s * 1000), &code) != 1) {
		kill(pid, SIGTERM);
		proc_wait(pid, 10000, &code);
		rc = err_set(e, "pgbackrest restore did not finish within %ld s", o->timeout_s);
	} else if (rc == 0 && code != 0) {
		char why[64];
		proc_describe_exit(code, why, sizeof(why));
		rc = err_set(e, "pgbackrest restore failed (%s): its ERROR above says why", why);
	}
	for (int i = 0; i < 3; i++)
		free(targ[i]);
	free(config);
	free(stanza);
	free(path);
	free(set);
	return rc;
}

static char *read_line(char **p)
{
	char *s = *p, *nl = strchr(s, '\n');
	if (nl == NULL)
		return NULL;
	*nl = '\0';
	*p = nl + 1;
	return s;
}

/* Recovery to the end: connect (after the consistent point), then wait until promoted. */
static int wait_promoted(const struct job_opts *o, const char *sock, pid_t pg, PGconn **out, struct pgha_err *e)
{
	char *ci = xasprintf("host=%s port=%d user=%s dbname=postgres connect_timeout=5 application_name=pgha-restore",
			     sock, o->port, o->superuser);
	int64_t deadline = now_ms() + o->timeout_s * 1000, said = 0;
	PGconn *c = NULL;
	int rc = -1;
	while (now_ms() < deadline) {
		int code;
		if (proc_poll(pg, &code) == 1) {
			char why[64];
			proc_describe_exit(code, why, sizeof(why));
			err_set(e, "PostgreSQL stopped during recovery (%s): its FATAL above says why (a target after the "
				"last archived WAL ends recovery before it is reached)", why);
			goto out;
		}
		if (c == NULL || PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = PQconnectdb(ci);
		}
		if (PQstatus(c) == CONNECTION_OK) {
			PGresult *r = PQexec(c, "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn()::text, '')");
			bool rec = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
			if (PQresultStatus(r) == PGRES_TUPLES_OK && !rec) {
				PQclear(r);
				rc = 0;
				goto out;
			}
			if (now_ms() - said >= 10000 && PQresultStatus(r) == PGRES_TUPLES_OK) {
				say("recovering: WAL replayed up to %s", PQgetvalue(r, 0, 1));
				said = now_ms();
			}
			PQclear(r);
		}
		sleep_ms(500);
	}
	err_set(e, "recovery did not end within %ld s", o->timeout_s);
out:
	free(ci);
	if (rc == 0)
		*out = c;
	else
		PQfinish(c);
	return rc;
}

static int set_up_roles(const struct job_opts *o, PGconn *c, struct pgha_err *e)
{
	char *text = NULL;
	size_t len = 0;
	if (read_secret_text(o->passwords, &text, &len, e) != 0)
		return -1;
	char *p = text, *su = read_line(&p), *repl = read_line(&p);
	int rc = su && repl ? 0 : err_set(e, "%s: expected two lines", o->passwords);
	/* The new cluster's passwords: the restored roles had the source cluster's. */
	if (rc == 0)
		rc = pg_ensure_role(c, o->superuser, su, false, e);
	if (rc == 0)
		rc = pg_ensure_role(c, o->replication_user, repl, true, e);
	secret_wipe_free(text, len);
	if (rc == 0) {
		PGresult *r = PQexec(c, "CHECKPOINT");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = err_set(e, "checkpoint: %s", PQresultErrorMessage(r));
		PQclear(r);
	}
	return rc;
}

static int strip_recovery_settings(const char *dir, struct pgha_err *e)
{
	char *path = path_join(dir, "postgresql.auto.conf"), *text = NULL;
	size_t len;
	int rc = read_file(path, &text, &len, e);
	if (rc == 0) {
		char *out = restore_strip_auto_conf(text);
		rc = write_file_atomic(path, out, strlen(out), 0600, (uid_t)-1, (gid_t)-1, e);
		free(out);
	}
	free(text);
	free(path);
	return rc;
}

static int run_job(const struct job_opts *o, struct pgha_err *e)
{
	struct restore_target t;
	if (restore_target_parse(o->standby ? "latest" : o->target, &t, e) != 0)
		return -1;
	say("restoring stanza %s %s into %s", o->stanza, o->standby ? "as a standby" : t.text, o->dir);
	if (run_pgbackrest(o, &t, e) != 0)
		return -1;
	/* A standby recovers when the agent starts it, with its own settings (pgha.conf, standby.signal). */
	if (o->standby) {
		char *signal = path_join(o->dir, "recovery.signal");
		unlink(signal);
		free(signal);
		if (strip_recovery_settings(o->dir, e) != 0)
			return -1;
		say("done: %s holds the latest backup of stanza %s; it fetches the WAL since from the archive, "
		    "then streams", o->dir, o->stanza);
		return 0;
	}
	char sock[] = "/tmp/pgha-restore-XXXXXX";
	if (mkdtemp(sock) == NULL)
		return err_set(e, "cannot make a socket directory in /tmp: %s", strerror(errno));
	char *hba = path_join(sock, "pg_hba.conf");
	static const char trust[] = "# only this job's own socket directory (0700) reaches it\nlocal all all trust\n";
	int rc = write_file_atomic(hba, trust, strlen(trust), 0600, (uid_t)-1, (gid_t)-1, e);
	char *postgres = path_join(o->bin_dir, "postgres");
	char *c_port = xasprintf("port=%d", o->port), *c_sock = xasprintf("unix_socket_directories=%s", sock);
	char *c_hba = xasprintf("hba_file=%s", hba);
	/*
	 * A new cluster: archiving off, its new timeline must never reach the
	 * source cluster's archive. In place: on, the new timeline's history file
	 * and WAL belong in this cluster's archive (the next restore goes through them).
	 */
	const char *argv[] = {postgres, "-D", o->dir, "-c", "listen_addresses=", "-c", c_port, "-c", c_sock,
			      "-c", c_hba, "-c", "hot_standby=on", "-c", "primary_conninfo=",
			      "-c", "primary_slot_name=", "-c", "synchronous_standby_names=", "-c", "logging_collector=off",
			      "-c", "ssl=off", o->in_place ? NULL : "-c", "archive_mode=off", NULL};
	struct proc_spec spec = {.argv = argv, .out_fd = 1, .new_session = true};
	pid_t pg = 0;
	PGconn *c = NULL;
	if (rc == 0)
		rc = proc_spawn(&spec, &pg, e);
	if (rc == 0) {
		say("PostgreSQL replays the archived WAL (pid %d)", (int)pg);
		rc = wait_promoted(o, sock, pg, &c, e);
	}
	if (rc == 0) {
		PGresult *r = PQexec(c, "SELECT timeline_id FROM pg_control_checkpoint()");
		say("recovery ended and promoted%s%s", PQresultStatus(r) == PGRES_TUPLES_OK ? "; timeline " : "",
		    PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "");
		PQclear(r);
		rc = set_up_roles(o, c, e);
	}
	PQfinish(c);
	if (pg > 0) {
		int code;
		kill(pg, SIGINT);   /* fast shutdown: a clean checkpoint, then the agent starts it for real */
		if (proc_wait(pg, 120000, &code) != 1) {
			kill(pg, SIGKILL);
			proc_wait(pg, 10000, &code);
			if (rc == 0)
				rc = err_set(e, "PostgreSQL did not stop within 120 s after the restore");
		}
	}
	if (rc == 0)
		rc = strip_recovery_settings(o->dir, e);
	unlink(hba);
	rmdir(sock);
	free(hba);
	free(postgres);
	free(c_port);
	free(c_sock);
	free(c_hba);
	if (rc == 0)
		say("done: %s holds stanza %s restored to %s", o->dir, o->stanza, t.text);
	return rc;
}

int restore_job_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"pgbackrest", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'},
		{"stanza", required_argument, NULL, 's'}, {"dir", required_argument, NULL, 'd'},
		{"bin-dir", required_argument, NULL, 'B'}, {"port", required_argument, NULL, 'p'},
		{"superuser", required_argument, NULL, 'u'}, {"replication-user", required_argument, NULL, 'r'},
		{"passwords", required_argument, NULL, 'w'}, {"target", required_argument, NULL, 't'},
		{"timeout", required_argument, NULL, 'T'}, {"standby", no_argument, NULL, 'S'},
		{"in-place", no_argument, NULL, 'I'}, {"set", required_argument, NULL, 'x'}, {NULL, 0, NULL, 0}};
	struct job_opts o = {.timeout_s = 86400};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b': o.pgbackrest = optarg; break;
		case 'c': o.config = optarg; break;
		case 's': o.stanza = optarg; break;
		case 'd': o.dir = optarg; break;
		case 'B': o.bin_dir = optarg; break;
		case 'p': o.port = atoi(optarg); break;
		case 'u': o.superuser = optarg; break;
		case 'r': o.replication_user = optarg; break;
		case 'w': o.passwords = optarg; break;
		case 't': o.target = optarg; break;
		case 'T': o.timeout_s = atol(optarg); break;
		case 'S': o.standby = true; break;
		case 'I': o.in_place = true; break;
		case 'x': o.set = optarg; break;
		default: return 2;
		}
	}
	bool full = o.bin_dir && o.port && o.superuser && o.replication_user && o.passwords && o.target;
	if (!o.pgbackrest || !o.config || !o.stanza || !o.dir || (!o.standby && !full) || o.timeout_s < 1 ||
	    (o.in_place && (o.standby || o.set == NULL))) {
		fprintf(stderr, "pgha restore-job: run by the agent to bootstrap from a backup; not for people\n");
		return 2;
	}
	struct pgha_err e;
	if (run_job(&o, &e) != 0) {
		printf("restore failed: %s\n", e.msg);
		return no_backup ? RESTORE_NO_BACKUP : !touched ? RESTORE_UNTOUCHED : 1;
	}
	return 0;
}
