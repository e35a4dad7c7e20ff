/* fence.c — the fencing thread: kills the whole PostgreSQL instance when the leader's deadline passes. */
#include "ha/fence.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"

struct fence {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool armed;
	bool paused;
	bool fired;
	pid_t pid;
	int64_t deadline_ms;
};

/* State and parent of a process from /proc/<pid>/stat; -1 if it is gone. */
static int proc_stat(long pid, char *state, long *ppid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'. */
	char *rp = strrchr(buf, ')');
	return rp != NULL && sscanf(rp + 1, " %c %ld", state, ppid) == 2 ? 0 : -1;
}

/*
 * kill() only queues SIGSTOP: a fork() the postmaster is inside of still
 * completes, and its child could appear in /proc behind the scan. Once the
 * postmaster shows as stopped it is in no system call, so every child it will
 * ever have exists. Bounded: a process in uninterruptible sleep (a hung disk)
 * stops only when the I/O ends; the scan then goes ahead anyway.
 */
static void wait_stopped(pid_t pid)
{
	int64_t until = now_ms() + 100;
	char state;
	long ppid;
	while (proc_stat(pid, &state, &ppid) == 0 && state != 'T' && state != 't' && state != 'Z' &&
	       now_ms() < until)
		sched_yield();
}

/*
 * The quick pass: the postmaster's own list of its children, one read
 * (Linux with CONFIG_PROC_CHILDREN). Not exhaustive: a child that exits while
 * the list is read can make the kernel skip a sibling, so the /proc scan
 * follows; but that scan reads a file per process of the host (tens of ms
 * with a few hundred), during which a backend could finish a COMMIT.
 */
static void kill_listed_children(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	long child;
	while (fscanf(f, "%ld", &child) == 1)
		kill((pid_t)child, SIGKILL);
	fclose(f);
}

/*
 * Kill the whole instance at once. PostgreSQL's backends are not in the
 * postmaster's process group (each calls setsid()), and a backend that is
 * already running a COMMIT finishes it even after the postmaster died. So:
 * freeze the postmaster (no new children), kill every child, then it.
 * SIGKILL works on stopped processes too (a node resumed after SIGSTOP).
 */
static void kill_postgres(pid_t pid)
{
	kill(pid, SIGSTOP);
	wait_stopped(pid);
	kill_listed_children(pid);
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		char *end;
		long child = strtol(de->d_name, &end, 10);
		char state;
		long ppid;
		if (*end == '\0' && child > 0 && proc_stat(child, &state, &ppid) == 0 && ppid == pid)
			kill((pid_t)child, SIGKILL);
	}
	if (d != NULL)
		closedir(d);
	kill(pid, SIGKILL);
}

static void *fence_thread(void *arg)
{
	struct fence *f = arg;
	log_set_context("fence");
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&f->lock);
	while (!f->stop) {
		if (!f->armed || f->paused) {
			pthread_cond_wait(&f->cond, &f->lock);
			continue;
		}
		int64_t left = f->deadline_ms - now_ms();
		if (left > 0) {
			/* The condition variable runs on CLOCK_MONOTONIC, like now_ms(). */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += left / 1000;
			ts.tv_nsec += (left % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&f->cond, &f->lock, &ts);
			continue;
		}
		pid_t pid = f->pid;
		int64_t late = -left;
		f->armed = false;
		f->fired = true;
		pthread_mutex_unlock(&f->lock);
		/* Kill first: every moment spent before it is one a resumed primary may commit in. */
		int64_t t0 = now_ms();
		kill_postgres(pid);
		log_error("leader lease not renewed in time (%lld ms past the fencing deadline): killed "
			  "PostgreSQL (pid %d, the kill took %lld ms) so it accepts no more writes",
			  (long long)late, (int)pid, (long long)(now_ms() - t0));
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

struct fence *fence_start(struct pgha_err *e)
{
	struct fence *f = xcalloc(1, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &attr);
	pthread_condattr_destroy(&attr);
	int rc = pthread_create(&f->thread, NULL, fence_thread, f);
	if (rc != 0) {
		err_set(e, "cannot start the fencing thread: %s", strerror(rc));
		free(f);
		return NULL;
	}
	return f;
}

void fence_stop(struct fence *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void fence_arm(struct fence *f, pid_t postmaster, int64_t deadline_ms)
{
	pthread_mutex_lock(&f->lock);
	if (!f->armed || f->pid != postmaster || deadline_ms > f->deadline_ms)
		f->deadline_ms = deadline_ms;
	f->armed = postmaster > 0;
	f->pid = postmaster;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

void fence_disarm(struct fence *f)
{
	pthread_mutex_lock(&f->lock);
	f->armed = false;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

void fence_set_paused(struct fence *f, bool paused)
{
	pthread_mutex_lock(&f->lock);
	f->paused = paused;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

bool fence_fired(struct fence *f)
{
	pthread_mutex_lock(&f->lock);
	bool fired = f->fired;
	f->fired = false;
	pthread_mutex_unlock(&f->lock);
	return fired;
}
