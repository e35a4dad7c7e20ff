/*
 * test_proc.c — starting children (common/proc.c).
 *
 * A stop request sent the instant a child is forked must not be lost. `pgha
 * up` spawns an agent and may SIGTERM it a microsecond later (a later start
 * step failed); the signal used to land between fork() and the child's
 * handler reset, ran the parent's handler copy in the child, and the agent
 * then ran deaf to it until killed 90 s later.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/proc.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigterm_right_after_spawn_is_not_lost),
		cmocka_unit_test(test_spawn_keeps_the_parent_signal_mask),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
