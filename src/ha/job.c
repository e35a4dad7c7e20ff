/*
 * job.c — initdb and pg_basebackup as child jobs. They write into a temporary
 * directory beside the data directory, which is renamed into place only when
 * the job succeeds, so a crash half-way never leaves a data directory that
 * looks valid.
 */
#include "ha/agent_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "backup/restore.h"
#include "pg/pgconf.h"

static const char *kind_name(enum job_kind k)
{
	return k == JOB_INITDB ? "initdb" : k == JOB_BASEBACKUP ? "pg_basebackup"
		: k == JOB_REWIND ? "pg_rewind" : k == JOB_RESTORE ? "restore"
		: k == JOB_RESTORE_INPLACE ? "in-place restore" : "none";
}

static const char *job_label(const struct job *j)
{
	return j->kind == JOB_BASEBACKUP && j->from_repo ? "clone from the repository" : kind_name(j->kind);
}

void job_init(struct agent *a)
{
	a->job.fd = -1;
}

void job_free(struct agent *a)
{
	sb_free(&a->job.line);
	sb_free(&a->job.tail);
}

/* The data directory was moved aside: a new clone starts with no failed rewind. */
void job_forget_rewind(struct agent *a)
{
	a->job.rewind_failed = false;
	a->job.rewind_failures = 0;
}

static int prepare_tmpdir(struct agent *a, const char *suffix, struct pgha_err *e)
{
	char *tmp = xasprintf("%s.pgha-%s", a->cfg.data_dir, suffix);
	/* A leftover from an interrupted job of ours: it never became the data directory. */
	if (pg_remove_tree(tmp, e) != 0 || pg_prepare_dir(&a->node, tmp, e) != 0) {
		free(tmp);
		return -1;
	}
	a->job.tmpdir = tmp;
	return 0;
}

static void job_begin(struct agent *a, enum job_kind kind)
{
	a->job.kind = kind;
	a->job.started_ms = now_ms();
	a->job.last_progress_ms = 0;
	sb_reset(&a->job.line);
	sb_reset(&a->job.tail);
	log_info("%s started (pid %d) into %s", job_label(&a->job), (int)a->job.pid, a->job.tmpdir);
}

/* A bootstrap job that could not start: its password file and directory name go. -1. */
static int start_failed(struct agent *a)
{
	unlink(a->job.pwfile);
	free(a->job.pwfile);
	a->job.pwfile = NULL;
	free(a->job.tmpdir);
	a->job.tmpdir = NULL;
	return -1;
}

/* `pgha restore-job` (backup/restore.h) into the job's directory, as the run user; more[] its mode's options. */
static int spawn_restore_job(struct agent *a, const char *stanza, const char *const *more, struct pgha_err *e)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return err_set(e, "cannot find this program (/proc/self/exe): %s", strerror(errno));
	self[n] = '\0';
	const char *argv[32] = {self, "restore-job", "--pgbackrest", a->arc.bin, "--config", a->arc.conf,
				"--stanza", stanza, "--dir", a->job.tmpdir};
	size_t k = 10;
	for (size_t i = 0; more[i] != NULL && k < 31; i++)
		argv[k++] = more[i];
	argv[k] = NULL;
	struct proc_spec spec = {.argv = argv, .user = &a->user, .out_fd = -1, .new_session = true,
				 .parent_death_signal = SIGTERM};
	return proc_spawn_piped(&spec, &a->job.pid, &a->job.fd, e);
}

/*
 * [bootstrap] method = restore: the job restores the backup the target needs
 * and recovers it to a promoted, cleanly stopped primary; the agent then
 * starts it as it starts a fresh initdb.
 */
/* The passwords the restored roles get (this cluster's), in a 0600 file of the run user's. */
static int write_restore_pwfile(struct agent *a, struct pgha_err *e)
{
	char *parent = path_dirname(a->cfg.data_dir);
	a->job.pwfile = xasprintf("%s/.%s.restore-pw", parent, a->cfg.name);
	free(parent);
	char *pw = xasprintf("%s\n%s\n", a->su_password, a->repl_password);
	bool chown_it = a->user.set && geteuid() == 0;
	int rc = write_file_atomic(a->job.pwfile, pw, strlen(pw), 0600, chown_it ? a->user.uid : (uid_t)-1,
				   chown_it ? a->user.gid : (gid_t)-1, e);
	secret_wipe_free(pw, strlen(pw));
	return rc;
}

/* The restore job's options past --dir: where PostgreSQL runs, the roles, the target; then extra[]. */
static int spawn_restore_to_target(struct agent *a, const char *stanza, const char *target,
				   const char *const *extra, struct pgha_err *e)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", a->cfg.pg_port);
	const char *more[24] = {"--bin-dir", a->cfg.bin_dir, "--port", port, "--superuser", a->cfg.superuser,
				"--replication-user", a->cfg.replication_user, "--passwords", a->job.pwfile,
				"--target", target};
	size_t k = 12;
	for (size_t i = 0; extra != NULL && extra[i] != NULL && k < 23; i++)
		more[k++] = extra[i];
	more[k] = NULL;
	return spawn_restore_job(a, stanza, more, e);
}

static int job_start_restore(struct agent *a, struct pgha_err *e)
{
	if (!a->arc.on)
		return err_set(e, "[bootstrap] method = restore needs [backup] (the repository to restore from)");
	if (prepare_tmpdir(a, "restore", e) != 0)
		return -1;
	/* The new cluster's passwords, for the roles the backup holds with the source cluster's. */
	if (write_restore_pwfile(a, e) != 0 ||
	    spawn_restore_to_target(a, a->cfg.bootstrap_stanza, a->cfg.bootstrap_target, NULL, e) != 0)
		return start_failed(a);
	log_info("bootstrapping from the backup repository %s: stanza %s, target %s", a->cfg.backup_repo,
		 a->cfg.bootstrap_stanza, a->cfg.bootstrap_target);
	job_begin(a, JOB_RESTORE);
	return 0;
}

/*
 * ctl restore --in-place: the data directory itself, restored with --delta
 * (only the files that differ from the backup are copied), recovered to the
 * target with archiving on (the new timeline belongs in this cluster's
 * archive), promoted, stopped clean.
 */
int job_start_restore_inplace(struct agent *a, const char *target, const char *set, struct pgha_err *e)
{
	if (!a->arc.on)
		return err_set(e, "an in-place restore needs [backup] (the repository to restore from)");
	a->job.tmpdir = xstrdup(a->cfg.data_dir);
	char *set_opt = xasprintf("--set=%s", set);
	const char *extra[] = {"--in-place", set_opt, NULL};
	int rc = write_restore_pwfile(a, e);
	if (rc == 0)
		rc = spawn_restore_to_target(a, a->cfg.cluster_name, target, extra, e);
	free(set_opt);
	if (rc != 0)
		return start_failed(a);
	job_begin(a, JOB_RESTORE_INPLACE);
	return 0;
}

int job_start_initdb(struct agent *a, struct pgha_err *e)
{
	if (a->cfg.bootstrap_restore)
		return job_start_restore(a, e);
	if (prepare_tmpdir(a, "initdb", e) != 0)
		return -1;
	char *parent = path_dirname(a->cfg.data_dir);
	a->job.pwfile = xasprintf("%s/.%s.initdb-pw", parent, a->cfg.name);
	free(parent);
	bool chown_it = a->user.set && geteuid() == 0;
	if (write_file_atomic(a->job.pwfile, a->su_password, strlen(a->su_password), 0600,
			      chown_it ? a->user.uid : (uid_t)-1, chown_it ? a->user.gid : (gid_t)-1, e) != 0)
		goto fail;
	if (pg_initdb_spawn(&a->node, a->job.tmpdir, a->job.pwfile, &a->job.pid, &a->job.fd, e) != 0)
		goto fail;
	job_begin(a, JOB_INITDB);
	return 0;
fail:
	return start_failed(a);
}

/*
 * [backup] create_replicas = repository: the latest backup, then the WAL since
 * from the archive, then streaming: the primary sends WAL only. The job exits
 * RESTORE_NO_BACKUP when there is none; then (and after any failure) the next
 * clone copies from the primary.
 */
static bool clone_from_repo(struct agent *a, const struct member *leader)
{
	return a->arc.on && strcmp(a->cfg.backup_create_replicas, "repository") == 0 && !a->job.repo_clone_failed &&
	       strcmp(leader->archive, "ok") == 0;
}

/* A standby cluster bootstraps (no leader yet, or this member's key) by cloning the primary cluster. */
static int clone_primary_cluster(struct agent *a, struct pgha_err *e)
{
	if (prepare_tmpdir(a, "clone", e) != 0)
		return -1;
	a->job.from_repo = false;
	char slot[64];
	char *ci = view_primary_cluster_conninfo(a, slot, sizeof(slot));
	int rc = pg_basebackup_spawn(&a->node, a->job.tmpdir, ci, slot, &a->job.pid, &a->job.fd, e);
	free(ci);
	if (rc != 0) {
		free(a->job.tmpdir);
		a->job.tmpdir = NULL;
		return -1;
	}
	log_info("standby cluster: cloning the primary cluster (%s)%s%s", a->cfg.standby_primary_hosts,
		 slot[0] ? " through replication slot " : "", slot);
	job_begin(a, JOB_BASEBACKUP);
	return 0;
}

int job_start_basebackup(struct agent *a, struct pgha_err *e)
{
	const struct member *leader = view_leader(a);
	if (view_standby_cluster(a) && (leader == NULL || strcmp(leader->name, a->cfg.name) == 0))
		return clone_primary_cluster(a, e);
	if (leader == NULL)
		return err_set(e, "no leader to clone from");
	if (prepare_tmpdir(a, "clone", e) != 0)
		return -1;
	a->job.from_repo = clone_from_repo(a, leader);
	if (a->job.from_repo) {
		const char *more[] = {"--standby", NULL};
		if (spawn_restore_job(a, a->cfg.cluster_name, more, e) != 0) {
			free(a->job.tmpdir);
			a->job.tmpdir = NULL;
			return -1;
		}
		log_info("cloning from the backup repository %s (the latest backup, then the archived WAL, then "
			 "streaming from %s)", a->cfg.backup_repo, leader->name);
		job_begin(a, JOB_BASEBACKUP);
		return 0;
	}
	char slot[64];
	pg_slot_name(a->cfg.name, slot, sizeof(slot));
	char *ci = view_leader_conninfo(a, leader);
	int rc = pg_basebackup_spawn(&a->node, a->job.tmpdir, ci, slot, &a->job.pid, &a->job.fd, e);
	free(ci);
	if (rc != 0) {
		free(a->job.tmpdir);
		a->job.tmpdir = NULL;
		return -1;
	}
	log_info("cloning %s (%s:%d) through replication slot %s", leader->name, leader->host,
		 leader->port, slot);
	job_begin(a, JOB_BASEBACKUP);
	return 0;
}

/*
 * 0: pg_rewind started; 1: postponed, the leader has not finished the
 * checkpoint after its promotion (its control file, where pg_rewind reads the
 * source's timeline, still names the old one); -1: error.
 */
int job_start_rewind(struct agent *a, struct pgha_err *e)
{
	const struct member *leader = view_leader(a);
	if (leader == NULL)
		return err_set(e, "no leader to rewind from");
	/* A standby cluster's leader rewinds from the primary cluster's primary, whichever host it is. */
	bool sc_leader = strcmp(leader->name, a->cfg.name) == 0 && view_standby_cluster(a);
	const char *source = sc_leader ? "the primary cluster" : leader->name;
	char *ci = sc_leader ? pg_conninfo_primary_of(a->cfg.standby_hosts, a->cfg.standby_ports, a->cfg.superuser,
						      a->cfg.pgpass, a->cfg.name, "postgres", &a->tls)
			     : pg_conninfo(leader->host, leader->port, a->cfg.superuser, a->cfg.pgpass, a->cfg.name,
					   "postgres", &a->tls);
	bool ready = false;
	uint32_t ckpt_tli = 0, cur_tli = 0;
	int rc = pg_remote_rewind_ready(ci, &ready, &ckpt_tli, &cur_tli, e);
	if (rc == 0 && !ready) {
		if (!a->job.rewind_waiting_logged)
			log_info("waiting for %s's checkpoint after its promotion before pg_rewind (its last checkpoint "
				 "is on timeline %u, it runs on %u)", source, ckpt_tli, cur_tli);
		a->job.rewind_waiting_logged = true;
		rc = 1;
	}
	if (rc == 0)
		rc = pg_rewind_prepare(&a->node, e);
	if (rc == 0)
		rc = pg_rewind_spawn(&a->node, ci, &a->job.pid, &a->job.fd, e);
	free(ci);
	if (rc != 0)
		return rc;
	a->job.rewind_waiting_logged = false;
	a->job.tmpdir = xstrdup(a->cfg.data_dir);
	if (sc_leader)
		log_info("rewinding the data directory against the primary cluster (%s, timeline %u)",
			 a->cfg.standby_primary_hosts, cur_tli);
	else
		log_info("rewinding the data directory against %s (%s:%d, timeline %u)", leader->name, leader->host,
			 leader->port, cur_tli);
	job_begin(a, JOB_REWIND);
	return 0;
}

/* Keep the last ~2 KB of output for error messages. */
static void remember(struct job *j, const char *line)
{
	sb_puts(&j->tail, line);
	sb_puts(&j->tail, "\n");
	if (j->tail.len > 2048) {
		size_t cut = j->tail.len - 2048;
		memmove(j->tail.data, j->tail.data + cut, j->tail.len - cut + 1);
		j->tail.len -= cut;
	}
}

static void handle_line(struct job *j, const char *line)
{
	if (line[0] == '\0')
		return;
	remember(j, line);
	/* pg_basebackup -P progress: "1234/56789 kB (2%), 0/1 tablespace". Log every 2 s. */
	if (strstr(line, " kB (") != NULL) {
		int64_t now = now_ms();
		if (now - j->last_progress_ms < 2000)
			return;
		j->last_progress_ms = now;
		log_info("%s progress: %s", job_label(j), line);
		return;
	}
	log_info("%s: %s", job_label(j), line);
}

static void drain(struct job *j)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(j->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || buf[i] == '\r') {
				handle_line(j, sb_str(&j->line));
				sb_reset(&j->line);
			} else if (j->line.len < 4096) {
				sb_append(&j->line, &buf[i], 1);
			}
		}
	}
}

static void job_clear(struct agent *a)
{
	struct job *j = &a->job;
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	if (j->pwfile) {
		unlink(j->pwfile);
		free(j->pwfile);
		j->pwfile = NULL;
	}
	free(j->tmpdir);
	j->tmpdir = NULL;
	j->kind = JOB_NONE;
	j->pid = 0;
}

/* Put the finished job's directory in place of the (missing or empty) data directory. */
static int install_datadir(struct agent *a, struct pgha_err *e)
{
	if (path_exists(a->cfg.data_dir) && rmdir(a->cfg.data_dir) != 0)
		return err_set(e, "cannot replace \"%s\": %s", a->cfg.data_dir, strerror(errno));
	if (rename(a->job.tmpdir, a->cfg.data_dir) != 0)
		return err_set(e, "cannot rename \"%s\" to \"%s\": %s", a->job.tmpdir, a->cfg.data_dir,
			       strerror(errno));
	return 0;
}

/*
 * pg_rewind leaves the directory fit for another try when it fails (the
 * signal files are removed before each run, so its single-user crash recovery
 * can run): a failure is retried once after the backoff, then the directory
 * is moved aside and cloned.
 */
#define REWIND_TRIES 2

static void rewind_finished(struct agent *a, int code, int64_t secs)
{
	/* Whatever happened, the data must be checked against the leader again before it starts. */
	divergence_unknown(a);
	if (code == 0) {
		log_info("pg_rewind finished in %llds", (long long)secs);
		a->job.rewind_failures = 0;
		a->job.rewind_failed = false;
		return;
	}
	char why[64];
	proc_describe_exit(code, why, sizeof(why));
	a->job.rewind_failures++;
	a->job.rewind_failed = a->job.rewind_failures >= REWIND_TRIES;
	node_set_error(a, "pg_rewind failed (%s) after %llds, attempt %d of %d%s; its last output:\n%s", why,
			(long long)secs, a->job.rewind_failures, REWIND_TRIES,
			a->job.rewind_failed ? ": the data directory will be moved aside and cloned afresh" : ": retrying",
			sb_str(&a->job.tail));
}

int job_poll(struct agent *a, bool *ok)
{
	struct job *j = &a->job;
	if (j->kind == JOB_NONE)
		return 0;
	drain(j);
	int code;
	if (proc_poll(j->pid, &code) == 0)
		return 0;
	drain(j);
	if (j->line.len > 0)
		handle_line(j, sb_str(&j->line));
	*ok = code == 0;
	int64_t secs = (now_ms() - j->started_ms) / 1000;
	struct pgha_err e;
	enum job_kind kind = j->kind;
	j->last_exit = code;
	if (kind == JOB_RESTORE_INPLACE) {
		/* In place: nothing to rename, and never remove the data directory. */
		if (*ok) {
			log_info("in-place restore finished in %llds", (long long)secs);
		} else {
			char why[64];
			proc_describe_exit(code, why, sizeof(why));
			node_set_error(a, "in-place restore failed (%s) after %llds; its last output:\n%s", why,
				       (long long)secs, sb_str(&j->tail));
		}
		divergence_unknown(a);
		job_clear(a);
		return 1;
	}
	if (kind == JOB_REWIND) {
		/* pg_rewind works in place: nothing to rename, and never remove the data directory. */
		rewind_finished(a, code, secs);
		free(j->tmpdir);
		j->tmpdir = NULL;
		job_clear(a);
		return 1;
	}
	if (kind == JOB_BASEBACKUP)
		j->repo_clone_failed = j->from_repo && !*ok;
	if (kind == JOB_BASEBACKUP && j->from_repo && code == RESTORE_NO_BACKUP) {
		/* Nothing to restore yet: copy from the primary now, as if that had been the plan. */
		log_info("the repository holds no backup yet: cloning from the primary instead");
		if (pg_remove_tree(j->tmpdir, &e) != 0)
			log_warn("%s", e.msg);
		job_clear(a);
		if (job_start_basebackup(a, &e) == 0)
			return 0;
		node_set_error(a, "cannot start pg_basebackup: %s", e.msg);
		return 1;
	}
	if (*ok && install_datadir(a, &e) != 0) {
		*ok = false;
		node_set_error(a, "%s succeeded but %s", job_label(j), e.msg);
	} else if (*ok) {
		log_info("%s finished in %llds", job_label(j), (long long)secs);
		divergence_unknown(a);
		a->job.rewind_failures = 0;
		a->job.rewind_failed = false;
	} else {
		char why[64];
		proc_describe_exit(code, why, sizeof(why));
		node_set_error(a, "%s failed (%s) after %llds; its last output:\n%s", job_label(j),
				why, (long long)secs, sb_str(&j->tail));
		if (pg_remove_tree(j->tmpdir, &e) != 0)
			log_warn("%s", e.msg);
	}
	job_clear(a);
	return 1;
}

void job_abort(struct agent *a)
{
	struct job *j = &a->job;
	if (j->kind == JOB_NONE)
		return;
	log_warn("interrupting %s (pid %d)", job_label(j), (int)j->pid);
	kill(-j->pid, SIGTERM);
	int code;
	if (proc_wait(j->pid, 10000, &code) == 0) {
		kill(-j->pid, SIGKILL);
		proc_wait(j->pid, 5000, &code);
	}
	struct pgha_err e;
	if (j->kind != JOB_REWIND && j->kind != JOB_RESTORE_INPLACE && j->tmpdir && pg_remove_tree(j->tmpdir, &e) != 0)
		log_warn("%s", e.msg);
	job_clear(a);
}
