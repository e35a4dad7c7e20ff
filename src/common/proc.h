/*
 * proc.h — running child processes (PostgreSQL tools, postgres itself, etcd,
 * agents under `pgha up`).
 *
 * A child can drop privileges to another OS user (the agent runs as root but
 * never runs PostgreSQL as root), start its own session (so a Ctrl-C meant for
 * `pgha up` does not reach it), redirect its output to a file or a pipe, and run
 * in a given working directory. Passwords never travel in argv or in the
 * environment: callers hand children files (pwfile, passfile) instead.
 */
#ifndef PGHA_PROC_H
#define PGHA_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/strbuf.h"

struct run_user {
	bool set;          /* false: run as the current user */
	uid_t uid;
	gid_t gid;
	char name[64];
	char home[256];
};

/* Look up an OS user by name. */
int run_user_lookup(const char *name, struct run_user *out, struct pgha_err *e) PGHA_MUSTCHECK;

struct proc_spec {
	const char *const *argv;     /* argv[0] is the path of the program */
	const struct run_user *user; /* NULL or !set: current user */
	const char *cwd;             /* NULL: inherit */
	int out_fd;                  /* -1: /dev/null; else stdout+stderr go there */
	bool new_session;            /* setsid() in the child */
	const char *const *env_add;  /* "NAME=value" entries added to the environment (never secrets) */
	int parent_death_signal;     /* 0, or a signal the child gets when this process dies (a backup
					must not outlive the agent that claimed it) */
};

/* Start a child; *pid receives its pid. */
int proc_spawn(const struct proc_spec *spec, pid_t *pid, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Start a child whose stdout+stderr go to a pipe; *out_fd receives the
 * non-blocking read end (the caller closes it).
 */
int proc_spawn_piped(const struct proc_spec *spec, pid_t *pid, int *out_fd, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Run to completion with a timeout, capturing output (stdout+stderr). On
 * timeout the child's process group is killed (SIGKILL) and -1 returned.
 * *exit_code is the exit status, or 128+signal.
 */
int proc_run(const struct proc_spec *spec, int timeout_ms, struct strbuf *output, int *exit_code,
	     struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Non-blocking check: returns 1 and sets *exit_code if the child ended, 0 if
 * it is still running, -1 if pid is not our child.
 */
int proc_poll(pid_t pid, int *exit_code);

/* Wait up to timeout_ms for our child to end. 1 = ended, 0 = still running. */
int proc_wait(pid_t pid, int timeout_ms, int *exit_code);

/* Is a process (not necessarily our child) alive? */
bool proc_alive(pid_t pid);

/* Describe an exit code: "exit code 1", "killed by signal 9". */
void proc_describe_exit(int exit_code, char *buf, size_t len);

#endif
