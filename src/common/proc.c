#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

int run_user_lookup(const char *name, struct run_user *out, struct pgha_err *e)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	memset(out, 0, sizeof(*out));
	int rc = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (rc != 0 || res == NULL)
		return err_set(e, "OS user \"%s\" does not exist%s%s", name, rc ? ": " : "",
			       rc ? strerror(rc) : "");
	out->set = true;
	out->uid = pw.pw_uid;
	out->gid = pw.pw_gid;
	snprintf(out->name, sizeof(out->name), "%s", pw.pw_name);
	snprintf(out->home, sizeof(out->home), "%s", pw.pw_dir);
	return 0;
}

/* In the child, after fork: write pieces to fd 2 (no stdio, no malloc). */
static void child_write(const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = write(2, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* In the child, after fork: report a failure on fd 2 and exit 127. */
static void child_fail(const char *what, const char *arg)
{
	const char *why = strerrordesc_np(errno);
	child_write("pgha: ");
	child_write(what);
	child_write(" \"");
	child_write(arg);
	child_write("\": ");
	child_write(why != NULL ? why : "unknown error");
	child_write("\n");
	_exit(127);
}

/*
 * Everything the child needs, prepared before fork(). The agent is
 * multithreaded (the proxy, the HTTP server): after fork() only the calling
 * thread exists, and a lock another thread held (malloc's, the NSS lookup's
 * behind initgroups(), the environment's behind setenv()) stays locked
 * forever. So the child makes only async-signal-safe calls: the group list and
 * the environment are built here, in the parent.
 */
struct child_prep {
	bool switch_user;
	gid_t *groups;
	int ngroups;
	char **envp;        /* NULL-terminated; entries point into environ, the spec or owned[] */
	char *owned[3];     /* HOME=, USER=, LOGNAME= */
	pid_t parent;       /* the forking process, for parent_death_signal */
};

static void child_prep_free(struct child_prep *cp)
{
	free(cp->groups);
	free(cp->envp);
	for (size_t i = 0; i < sizeof(cp->owned) / sizeof(cp->owned[0]); i++)
		free(cp->owned[i]);
	memset(cp, 0, sizeof(*cp));
}

/* Does "NAME=value" entry have the name of `entry2`'s? */
static bool env_same_name(const char *a, const char *b)
{
	size_t n = strcspn(a, "=");
	return strncmp(a, b, n) == 0 && b[n] == '=';
}

/* Put `entry` into envp[0..*n), replacing an entry of the same name. */
static void env_set(char **envp, size_t *n, char *entry)
{
	for (size_t i = 0; i < *n; i++) {
		if (env_same_name(envp[i], entry)) {
			envp[i] = entry;
			return;
		}
	}
	envp[(*n)++] = entry;
}

static int child_prep_build(const struct proc_spec *spec, struct child_prep *cp, struct pgha_err *e)
{
	memset(cp, 0, sizeof(*cp));
	cp->parent = getpid();
	const struct run_user *u = spec->user;
	cp->switch_user = u != NULL && u->set && geteuid() != u->uid;
	if (cp->switch_user) {
		int n = 32;
		for (int tries = 0; tries < 8; tries++) {
			gid_t *g = realloc(cp->groups, sizeof(gid_t) * (size_t)n);
			if (g == NULL)
				goto oom;
			cp->groups = g;
			int want = n;
			if (getgrouplist(u->name, u->gid, cp->groups, &want) >= 0) {
				cp->ngroups = want;
				break;
			}
			n = want > n ? want : n * 2;
		}
		if (cp->ngroups == 0) {
			child_prep_free(cp);
			return err_set(e, "cannot list the groups of OS user \"%s\"", u->name);
		}
		const char *names[3] = { "HOME=", "USER=", "LOGNAME=" };
		const char *vals[3] = { u->home, u->name, u->name };
		for (int i = 0; i < 3; i++) {
			if (asprintf(&cp->owned[i], "%s%s", names[i], vals[i]) < 0) {
				cp->owned[i] = NULL;
				goto oom;
			}
		}
	}
	size_t cap = 4;
	for (char **env = environ; env != NULL && *env != NULL; env++)
		cap++;
	for (const char *const *env = spec->env_add; env != NULL && *env != NULL; env++)
		cap++;
	cp->envp = calloc(cap, sizeof(char *));
	if (cp->envp == NULL)
		goto oom;
	size_t n = 0;
	for (char **env = environ; env != NULL && *env != NULL; env++)
		cp->envp[n++] = *env;
	for (int i = 0; i < 3; i++) {
		if (cp->owned[i] != NULL)
			env_set(cp->envp, &n, cp->owned[i]);
	}
	for (const char *const *env = spec->env_add; env != NULL && *env != NULL; env++)
		env_set(cp->envp, &n, (char *)*env);
	cp->envp[n] = NULL;
	return 0;
oom:
	child_prep_free(cp);
	return err_set(e, "out of memory preparing a child process");
}

/*
 * fork() with every signal blocked. A SIGTERM sent to the new pid before the
 * child has reset its handlers would otherwise run the parent's handler copy
 * in the child (setting a flag nobody reads) and be lost: the child would then
 * exec and run deaf to the stop request. Blocked, it stays pending until
 * child_exec() has restored the default actions.
 */
static pid_t fork_quiet(void)
{
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid_t p = fork();
	int saved = errno;
	if (p != 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return p;
}

/* In the child: only async-signal-safe calls from here to execve (see child_prep). */
static void child_exec(const struct proc_spec *spec, const struct child_prep *cp, int out_fd)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++) {
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (spec->new_session)
		setsid();
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0)
		dup2(devnull, 0);
	int fd = out_fd >= 0 ? out_fd : devnull;
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (cp->switch_user) {
		if (setgroups((size_t)cp->ngroups, cp->groups) != 0)
			child_fail("cannot set groups for user", spec->user->name);
		if (setgid(spec->user->gid) != 0)
			child_fail("cannot switch group for user", spec->user->name);
		if (setuid(spec->user->uid) != 0)
			child_fail("cannot switch to user", spec->user->name);
	}
	/* After setuid, which clears it; a parent already gone is seen through getppid. */
	if (spec->parent_death_signal != 0 &&
	    (prctl(PR_SET_PDEATHSIG, spec->parent_death_signal) != 0 || getppid() != cp->parent))
		_exit(127);
	if (spec->cwd != NULL && chdir(spec->cwd) != 0)
		child_fail("cannot enter directory (every parent must be searchable by the user)", spec->cwd);
	/* Close every other descriptor: children must not hold our sockets. */
	for (int i = 3; i < 1024; i++)
		close(i);
	execve(spec->argv[0], (char *const *)spec->argv, cp->envp);
	child_fail("cannot execute", spec->argv[0]);
}

int proc_spawn(const struct proc_spec *spec, pid_t *pid, struct pgha_err *e)
{
	struct child_prep cp;
	if (child_prep_build(spec, &cp, e) != 0)
		return -1;
	pid_t p = fork_quiet();
	if (p < 0) {
		child_prep_free(&cp);
		return err_set(e, "fork failed: %s", strerror(errno));
	}
	if (p == 0)
		child_exec(spec, &cp, spec->out_fd);
	child_prep_free(&cp);
	*pid = p;
	return 0;
}

int proc_spawn_piped(const struct proc_spec *spec, pid_t *pid, int *out_fd, struct pgha_err *e)
{
	struct child_prep cp;
	if (child_prep_build(spec, &cp, e) != 0)
		return -1;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		child_prep_free(&cp);
		return err_set(e, "pipe failed: %s", strerror(errno));
	}
	pid_t p = fork_quiet();
	if (p < 0) {
		close(fds[0]);
		close(fds[1]);
		child_prep_free(&cp);
		return err_set(e, "fork failed: %s", strerror(errno));
	}
	if (p == 0) {
		int w = dup(fds[1]);  /* without O_CLOEXEC */
		child_exec(spec, &cp, w);
	}
	child_prep_free(&cp);
	close(fds[1]);
	fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
	*pid = p;
	*out_fd = fds[0];
	return 0;
}

static int decode_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

int proc_poll(pid_t pid, int *exit_code)
{
	int status;
	pid_t r = waitpid(pid, &status, WNOHANG);
	if (r == 0)
		return 0;
	if (r < 0)
		return -1;
	*exit_code = decode_status(status);
	return 1;
}

int proc_wait(pid_t pid, int timeout_ms, int *exit_code)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int r = proc_poll(pid, exit_code);
		if (r != 0)
			return r < 0 ? 1 : r;
		if (now_ms() >= deadline)
			return 0;
		sleep_ms(20);
	}
}

int proc_run(const struct proc_spec *spec, int timeout_ms, struct strbuf *output, int *exit_code,
	     struct pgha_err *e)
{
	pid_t pid;
	int fd;
	struct proc_spec s = *spec;
	s.new_session = true;  /* so a timeout can kill the whole group */
	if (proc_spawn_piped(&s, &pid, &fd, e) != 0)
		return -1;
	int64_t deadline = now_ms() + timeout_ms;
	bool eof = false;
	int rc = 0;
	while (!eof) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			rc = err_set(e, "%s did not finish within %d ms and was killed", spec->argv[0], timeout_ms);
			break;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int n = poll(&pfd, 1, (int)(left > 200 ? 200 : left));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		char buf[4096];
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r > 0) {
			if (output != NULL && output->len < 1024 * 1024)
				sb_append(output, buf, (size_t)r);
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			eof = true;
		}
	}
	close(fd);
	int code = 255;
	if (proc_wait(pid, 5000, &code) == 0) {
		kill(pid, SIGKILL);
		proc_wait(pid, 1000, &code);
	}
	*exit_code = code;
	return rc;
}

bool proc_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

void proc_describe_exit(int exit_code, char *buf, size_t len)
{
	if (exit_code > 128 && exit_code < 128 + NSIG)
		snprintf(buf, len, "killed by signal %d (%s)", exit_code - 128, strsignal(exit_code - 128));
	else
		snprintf(buf, len, "exit code %d", exit_code);
}
