#include "pg/pgctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"

static char *bin(const struct pg_node *n, const char *prog)
{
	return path_join(n->bin_dir, prog);
}

static const char *const c_locale_env[] = {"LC_ALL=C", "LANG=C", NULL};

static void parse_controldata(const char *text, struct pg_data_info *out)
{
	const char *line = text;
	while (line && *line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char buf[256];
		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
		memcpy(buf, line, len);
		buf[len] = '\0';
		char *colon = strchr(buf, ':');
		if (colon != NULL) {
			*colon = '\0';
			char *val = colon + 1;
			while (*val == ' ')
				val++;
			if (strcmp(buf, "Database system identifier") == 0)
				snprintf(out->system_id, sizeof(out->system_id), "%s", val);
			else if (strcmp(buf, "Database cluster state") == 0)
				snprintf(out->cluster_state, sizeof(out->cluster_state), "%s", val);
			else if (strcmp(buf, "Latest checkpoint's TimeLineID") == 0)
				out->timeline = (uint32_t)strtoul(val, NULL, 10);
			else if (strcmp(buf, "Latest checkpoint location") == 0)
				lsn_parse(val, &out->checkpoint_lsn);
			else if (strcmp(buf, "Minimum recovery ending location") == 0)
				lsn_parse(val, &out->min_recovery_lsn);
			else if (strcmp(buf, "Min recovery ending loc's timeline") == 0)
				out->min_recovery_tli = (uint32_t)strtoul(val, NULL, 10);
		}
		line = eol ? eol + 1 : NULL;
	}
}

int pg_data_inspect(const struct pg_node *n, struct pg_data_info *out, struct pgha_err *e)
{
	memset(out, 0, sizeof(*out));
	if (dir_is_empty_or_missing(n->data_dir)) {
		out->kind = PG_DATA_MISSING;
		return 0;
	}
	char *pgv = path_join(n->data_dir, "PG_VERSION");
	char *ctl = path_join(n->data_dir, "global/pg_control");
	char *sig = path_join(n->data_dir, "standby.signal");
	char *ver = NULL;
	int rc = 0;
	if (!path_exists(pgv) || !path_exists(ctl)) {
		out->kind = PG_DATA_INVALID;
		goto out;
	}
	out->kind = PG_DATA_VALID;
	out->standby_signal = path_exists(sig);
	struct pgha_err sub;
	if (read_file(pgv, &ver, NULL, &sub) == 0)
		out->major_version = atoi(ver);
	char *prog = bin(n, "pg_controldata");
	const char *argv[] = {prog, "-D", n->data_dir, NULL};
	struct proc_spec spec = {.argv = argv, .user = n->user, .out_fd = -1, .env_add = c_locale_env};
	struct strbuf output = STRBUF_INIT;
	int code;
	if (proc_run(&spec, 30000, &output, &code, e) != 0) {
		rc = -1;
	} else if (code != 0) {
		rc = err_set(e, "pg_controldata -D %s failed (exit code %d): %s", n->data_dir, code,
			     sb_str(&output));
	} else {
		parse_controldata(sb_str(&output), out);
		if (out->system_id[0] == '\0')
			rc = err_set(e, "pg_controldata -D %s printed no system identifier", n->data_dir);
	}
	sb_free(&output);
	free(prog);
out:
	free(ver);
	free(pgv);
	free(ctl);
	free(sig);
	return rc;
}

int pg_prepare_dir(const struct pg_node *n, const char *dir, struct pgha_err *e)
{
	if (mkdir_p(dir, 0700, e) != 0)
		return -1;
	if (chmod(dir, 0700) != 0)
		return err_set(e, "cannot chmod 0700 \"%s\": %s", dir, strerror(errno));
	if (n->user && n->user->set && geteuid() == 0 && chown(dir, n->user->uid, n->user->gid) != 0)
		return err_set(e, "cannot give \"%s\" to user %s: %s", dir, n->user->name, strerror(errno));
	return 0;
}

int pg_remove_tree(const char *dir, struct pgha_err *e)
{
	if (!path_exists(dir))
		return 0;
	const char *argv[] = {"/bin/rm", "-rf", "--one-file-system", dir, NULL};
	struct proc_spec spec = {.argv = argv, .out_fd = -1};
	struct strbuf out = STRBUF_INIT;
	int code;
	int rc = proc_run(&spec, 300000, &out, &code, e);
	if (rc == 0 && code != 0)
		rc = err_set(e, "cannot remove \"%s\": %s", dir, sb_str(&out));
	sb_free(&out);
	return rc;
}

int pg_initdb_spawn(const struct pg_node *n, const char *dir, const char *pwfile, pid_t *pid,
		    int *out_fd, struct pgha_err *e)
{
	char *prog = bin(n, "initdb");
	char *user_opt = xasprintf("--username=%s", n->superuser);
	char *pw_opt = xasprintf("--pwfile=%s", pwfile);
	const char *argv[] = {prog, "-D", dir, "--data-checksums", "--auth=scram-sha-256",
			      "--encoding=UTF8", "--locale=C", user_opt, pw_opt, NULL};
	char *parent = path_dirname(dir);
	struct proc_spec spec = {.argv = argv, .user = n->user, .cwd = parent, .new_session = true,
				 .env_add = c_locale_env};
	int rc = proc_spawn_piped(&spec, pid, out_fd, e);
	free(parent);
	free(prog);
	free(user_opt);
	free(pw_opt);
	return rc;
}

int pg_basebackup_spawn(const struct pg_node *n, const char *dir, const char *conninfo,
			const char *slot, pid_t *pid, int *out_fd, struct pgha_err *e)
{
	char *prog = bin(n, "pg_basebackup");
	/* Without a slot (""): pg_basebackup streams through a temporary one. */
	const char *argv[] = {prog, "-D", dir, "-d", conninfo, "-X", "stream", "-c", "fast", "-P", "-v",
			      slot[0] ? "-S" : NULL, slot, NULL};
	char *parent = path_dirname(dir);
	struct proc_spec spec = {.argv = argv, .user = n->user, .cwd = parent, .new_session = true,
				 .env_add = c_locale_env};
	int rc = proc_spawn_piped(&spec, pid, out_fd, e);
	free(parent);
	free(prog);
	return rc;
}

int pg_rewind_spawn(const struct pg_node *n, const char *source_conninfo, pid_t *pid, int *out_fd,
		    struct pgha_err *e)
{
	char *prog = bin(n, "pg_rewind");
	char *target = xasprintf("--target-pgdata=%s", n->data_dir);
	char *source = xasprintf("--source-server=%s", source_conninfo);
	const char *argv[] = {prog, target, source, "--progress", NULL};
	struct proc_spec spec = {.argv = argv, .user = n->user, .cwd = n->data_dir, .new_session = true,
				 .env_add = c_locale_env};
	int rc = proc_spawn_piped(&spec, pid, out_fd, e);
	free(prog);
	free(target);
	free(source);
	return rc;
}

int pg_rewind_prepare(const struct pg_node *n, struct pgha_err *e)
{
	static const char *const signals[] = {"standby.signal", "recovery.signal"};
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		char *path = path_join(n->data_dir, signals[i]);
		int rc = unlink(path) != 0 && errno != ENOENT ? -1 : 0;
		if (rc != 0)
			err_set(e, "cannot remove \"%s\" before pg_rewind: %s", path, strerror(errno));
		free(path);
		if (rc != 0)
			return -1;
	}
	return 0;
}

int pg_start(const struct pg_node *n, pid_t *pid, struct pgha_err *e)
{
	int fd = open(n->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return err_set(e, "cannot open PostgreSQL log \"%s\": %s", n->log_file, strerror(errno));
	if (n->user && n->user->set && geteuid() == 0 &&
	    fchown(fd, n->user->uid, n->user->gid) != 0)
		log_warn("cannot give %s to %s: %s", n->log_file, n->user->name, strerror(errno));
	char *prog = bin(n, "postgres");
	const char *argv[] = {prog, "-D", n->data_dir, NULL};
	struct proc_spec spec = {.argv = argv, .user = n->user, .cwd = n->data_dir, .out_fd = fd,
				 .new_session = true};
	int rc = proc_spawn(&spec, pid, e);
	close(fd);
	free(prog);
	return rc;
}

pid_t pg_postmaster_pid(const struct pg_node *n)
{
	char *path = path_join(n->data_dir, "postmaster.pid");
	char *data = NULL;
	struct pgha_err e;
	pid_t pid = 0;
	if (read_file(path, &data, NULL, &e) == 0) {
		long p = strtol(data, NULL, 10);
		if (p > 0 && proc_alive((pid_t)p)) {
			/* Make sure it is a postgres and not a recycled pid. */
			char exe[64], target[512];
			snprintf(exe, sizeof(exe), "/proc/%ld/exe", p);
			ssize_t len = readlink(exe, target, sizeof(target) - 1);
			if (len < 0 || (target[len] = '\0', strstr(target, "postgres") != NULL))
				pid = (pid_t)p;
		}
	}
	free(data);
	free(path);
	return pid;
}

static bool wait_gone(pid_t pid, bool child, int timeout_ms)
{
	int code;
	if (child)
		return proc_wait(pid, timeout_ms, &code) == 1;
	int64_t deadline = now_ms() + timeout_ms;
	while (now_ms() < deadline) {
		if (!proc_alive(pid))
			return true;
		sleep_ms(50);
	}
	return !proc_alive(pid);
}

int pg_stop(const struct pg_node *n, pid_t pid, bool child, struct pgha_err *e)
{
	if (pid <= 0)
		return 0;
	log_info("stopping PostgreSQL (pid %d, fast shutdown)", (int)pid);
	if (kill(pid, SIGINT) != 0 && errno == ESRCH) {
		int code;
		if (child)
			proc_wait(pid, 100, &code);
		return 0;
	}
	if (wait_gone(pid, child, n->stop_timeout_ms))
		return 0;
	log_warn("PostgreSQL (pid %d) did not stop within %d ms; immediate shutdown", (int)pid,
		 n->stop_timeout_ms);
	kill(pid, SIGQUIT);
	if (wait_gone(pid, child, 10000))
		return 0;
	kill(pid, SIGKILL);
	if (wait_gone(pid, child, 5000))
		return 0;
	return err_set(e, "PostgreSQL (pid %d) does not stop even after SIGKILL", (int)pid);
}

bool pg_accepting(const struct pg_node *n)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", n->port);
	const char *keys[] = {"host", "port", "dbname", "user", "connect_timeout", NULL};
	const char *vals[] = {n->socket_dir, port, "postgres", n->superuser, "2", NULL};
	return PQpingParams(keys, vals, 0) == PQPING_OK;
}
