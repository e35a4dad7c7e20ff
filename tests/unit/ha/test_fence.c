/*
 * test_fence.c — the fencing thread (ha/fence.c) on real processes: a stand-in
 * postmaster whose children call setsid(), as PostgreSQL's backends do, and
 * which is still forking when the deadline passes. None of them may survive;
 * a disarmed fence kills nothing. The test process is their subreaper, so
 * every one of them, orphaned or not, is reaped here and its end checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "ha/fence.h"

#define MAX_CHILDREN 200

/* Forks children that leave its session, as backends do, until MAX_CHILDREN; never returns. */
static pid_t spawn_postmaster(void)
{
	pid_t pm = fork();
	if (pm != 0)
		return pm;
	for (int i = 0; i < MAX_CHILDREN; i++) {
		pid_t c = fork();
		if (c == 0) {
			setsid();
			for (;;)
				pause();
		}
	}
	for (;;)
		pause();
}

/* SIGKILL every child of ours until none is left, orphans included (the cleanup after a failure). */
static void kill_our_children(void)
{
	int64_t until = now_ms() + 10000;
	while (now_ms() < until) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d != NULL && (de = readdir(d)) != NULL) {
			char path[300], buf[512];
			snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
			FILE *f = fopen(path, "r");
			if (f == NULL)
				continue;
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = '\0';
			char *rp = strrchr(buf, ')');
			long ppid;
			if (rp != NULL && sscanf(rp + 1, " %*c %ld", &ppid) == 1 && ppid == (long)getpid())
				kill((pid_t)atol(de->d_name), SIGKILL);
		}
		if (d != NULL)
			closedir(d);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
			return;
		usleep(10 * 1000);
	}
}

/*
 * Reap every process that ends within timeout_ms. Returns how many were
 * reaped and whether all of them died of SIGKILL; *all_gone tells if no child
 * was left (a survivor keeps waitpid at 0 until the timeout).
 */
static int reap(int64_t timeout_ms, bool *all_killed, bool *all_gone)
{
	int64_t until = now_ms() + timeout_ms;
	int n = 0;
	*all_killed = true;
	*all_gone = false;
	while (now_ms() < until) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p < 0 && errno == ECHILD) {
			*all_gone = true;
			break;
		}
		if (p > 0) {
			n++;
			if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
				*all_killed = false;
			continue;
		}
		usleep(1000);
	}
	return n;
}

static int setup(void **state)
{
	(void)state;
	/* Orphaned children (the postmaster killed first) come to us, not to init. */
	return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 ? 0 : -1;
}

/* A stand-in postmaster and a fence armed for it, deadline in delay_ms. */
static struct fence *armed_on_postmaster(pid_t *pm, int64_t delay_ms)
{
	*pm = spawn_postmaster();
	assert_true(*pm > 0);
	struct pgha_err e = {0};
	struct fence *f = fence_start(&e);
	assert_non_null(f);
	fence_arm(f, *pm, now_ms() + delay_ms);
	return f;
}

static void deadline_kills_every_child_even_while_forking(void **state)
{
	(void)state;
	pid_t pm;
	/* The deadline passes while the postmaster is still forking (a fork takes ~1 ms here). */
	struct fence *f = armed_on_postmaster(&pm, 20);
	bool all_killed, all_gone;
	int n = reap(10000, &all_killed, &all_gone);
	bool fired = fence_fired(f);
	fence_stop(f);
	if (!all_gone)
		kill_our_children();
	assert_true(fired);
	assert_true(all_gone);         /* no child escaped the scan */
	assert_true(all_killed);
	assert_true(n >= 2);           /* the postmaster and at least one child */
}

static void disarmed_fence_kills_nothing(void **state)
{
	(void)state;
	pid_t pm;
	struct fence *f = armed_on_postmaster(&pm, 100);
	fence_disarm(f);
	usleep(300 * 1000);
	bool fired = fence_fired(f);
	fence_stop(f);
	bool alive = kill(pm, 0) == 0;
	kill_our_children();
	assert_false(fired);
	assert_true(alive);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(deadline_kills_every_child_even_while_forking),
		cmocka_unit_test(disarmed_fence_kills_nothing),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
