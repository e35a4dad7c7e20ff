/*
 * test_proc.c — starting children (common/proc.c).
 *
 * A stop request sent the instant a child is forked must not be lost. `pgha
 * up` spawns an agent and may SIGTERM it a microsecond later (a later start
 * step failed); the signal used to land between fork() and the child's
 * handler reset, ran the parent's handler copy in the child, and the agent
 * then ran deaf to it until killed 90 s later.
 *
 * A child forked from the multithreaded agent must reach exec even when
 * another thread held a lock (malloc's, the NSS lookup's) at the instant of
 * fork(): a child once hung forever in initgroups() after fork.
 */
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/proc.h"
#include "common/strbuf.h"

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static void test_sigterm_right_after_spawn_is_not_lost(void **state)
{
	(void)state;
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old);
	const char *argv[] = {"/bin/sleep", "30", NULL};
	struct proc_spec spec = {.argv = argv, .out_fd = -1};
	for (int i = 0; i < 200; i++) {
		pid_t pid;
		struct pgha_err e;
		assert_int_equal(proc_spawn(&spec, &pid, &e), 0);
		kill(pid, SIGTERM);
		int code = -1;
		/* sleep would run 30 s: ending within 5 s means SIGTERM reached it. */
		if (proc_wait(pid, 5000, &code) != 1) {
			kill(pid, SIGKILL);
			(void)proc_wait(pid, 5000, &code);
			fail_msg("round %d: the child ignored a SIGTERM sent right after fork", i);
		}
		assert_int_equal(code, 128 + SIGTERM);
	}
	assert_int_equal(got_term, 0);
	sigaction(SIGTERM, &old, NULL);
}

static void test_spawn_keeps_the_parent_signal_mask(void **state)
{
	(void)state;
	sigset_t before, after;
	sigprocmask(SIG_SETMASK, NULL, &before);
	const char *argv[] = {"/bin/true", NULL};
	struct proc_spec spec = {.argv = argv, .out_fd = -1};
	pid_t pid;
	struct pgha_err e;
	assert_int_equal(proc_spawn(&spec, &pid, &e), 0);
	int code = -1;
	assert_int_equal(proc_wait(pid, 5000, &code), 1);
	assert_int_equal(code, 0);
	sigprocmask(SIG_SETMASK, NULL, &after);
	for (int s = 1; s < NSIG; s++)
		assert_int_equal(sigismember(&before, s), sigismember(&after, s));
}

static volatile int busy_stop;

/* Take and release the locks a forked child could inherit held: malloc's and NSS's. */
static void *busy_thread(void *arg)
{
	(void)arg;
	while (!busy_stop) {
		for (int i = 0; i < 64; i++)
			free(malloc((size_t)(16 + i * 97)));
		struct passwd pw, *res = NULL;
		char buf[2048];
		(void)getpwnam_r("root", &pw, buf, sizeof(buf), &res);
		gid_t groups[64];
		int n = 64;
		(void)getgrouplist("root", 0, groups, &n);
		/* What the etcd client threads do: a host lookup through NSS. */
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
		if (getaddrinfo("localhost", "2379", &hints, &ai) == 0)
			freeaddrinfo(ai);
	}
	return NULL;
}

static void test_children_of_a_busy_multithreaded_process_reach_exec(void **state)
{
	(void)state;
	struct run_user nobody = {0};
	struct pgha_err e;
	/* As root (CI), the child also switches user: the path that called initgroups(). */
	if (geteuid() == 0)
		assert_int_equal(run_user_lookup("nobody", &nobody, &e), 0);
	pthread_t t[3];
	busy_stop = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, busy_thread, NULL), 0);
	const char *argv[] = {"/bin/true", NULL};
	const char *env_add[] = {"PGHA_TEST_CHILD=1", NULL};
	struct proc_spec spec = {.argv = argv, .out_fd = -1, .env_add = env_add, .user = &nobody};
	int stuck = -1;
	for (int i = 0; i < 400 && stuck < 0; i++) {
		pid_t pid;
		assert_int_equal(proc_spawn(&spec, &pid, &e), 0);
		int code = -1;
		if (proc_wait(pid, 10000, &code) != 1) {
			stuck = i;
			kill(pid, SIGKILL);
			(void)proc_wait(pid, 5000, &code);
		} else {
			assert_int_equal(code, 0);
		}
	}
	busy_stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	if (stuck >= 0)
		fail_msg("child %d never reached exec (a lock inherited held across fork)", stuck);
}

/* Run /usr/bin/env under spec; its output into out. */
static void run_env(struct proc_spec *spec, struct strbuf *out)
{
	const char *argv[] = {"/usr/bin/env", NULL};
	spec->argv = argv;
	int code = -1;
	struct pgha_err e;
	assert_int_equal(proc_run(spec, 10000, out, &code, &e), 0);
	assert_int_equal(code, 0);
}

/* How many lines of env output are exactly `line`, and how many start with `name=`. */
static void count_env(const char *text, const char *line, int *exact, int *named)
{
	size_t nlen = strcspn(line, "=") + 1;
	*exact = *named = 0;
	for (const char *p = text; *p != '\0';) {
		size_t len = strcspn(p, "\n");
		if (len == strlen(line) && strncmp(p, line, len) == 0)
			(*exact)++;
		if (len >= nlen && strncmp(p, line, nlen) == 0)
			(*named)++;
		p += len;
		if (*p == '\n')
			p++;
	}
}

static void test_child_environment_adds_and_replaces(void **state)
{
	(void)state;
	setenv("PGHA_TEST_REPLACED", "old", 1);
	const char *env_add[] = {"PGHA_TEST_REPLACED=new", "PGHA_TEST_ADDED=yes", NULL};
	struct proc_spec spec = {.out_fd = -1, .env_add = env_add};
	struct strbuf out;
	sb_init(&out);
	run_env(&spec, &out);
	int exact, named;
	count_env(out.data, "PGHA_TEST_REPLACED=new", &exact, &named);
	assert_int_equal(exact, 1);
	assert_int_equal(named, 1);
	count_env(out.data, "PGHA_TEST_ADDED=yes", &exact, &named);
	assert_int_equal(exact, 1);
	unsetenv("PGHA_TEST_REPLACED");
	sb_free(&out);
	if (geteuid() != 0)
		return;  /* the user switch below needs root; CI runs as root */
	struct run_user nobody;
	struct pgha_err e;
	assert_int_equal(run_user_lookup("nobody", &nobody, &e), 0);
	spec.user = &nobody;
	struct strbuf out2;
	sb_init(&out2);
	run_env(&spec, &out2);
	char want[300];
	snprintf(want, sizeof(want), "HOME=%s", nobody.home);
	count_env(out2.data, want, &exact, &named);
	assert_int_equal(exact, 1);
	assert_int_equal(named, 1);
	count_env(out2.data, "USER=nobody", &exact, &named);
	assert_int_equal(exact, 1);
	assert_int_equal(named, 1);
	count_env(out2.data, "LOGNAME=nobody", &exact, &named);
	assert_int_equal(exact, 1);
	sb_free(&out2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigterm_right_after_spawn_is_not_lost),
		cmocka_unit_test(test_spawn_keeps_the_parent_signal_mask),
		cmocka_unit_test(test_children_of_a_busy_multithreaded_process_reach_exec),
		cmocka_unit_test(test_child_environment_adds_and_replaces),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
