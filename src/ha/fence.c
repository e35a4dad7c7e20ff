#include "ha/fence.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
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
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		char *end;
		long child = strtol(de->d_name, &end, 10);
		if (*end != '\0' || child <= 0)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%ld/stat", child);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'. */
		char *rp = strrchr(buf, ')');
		char state;
		long ppid;
		if (rp != NULL && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == pid)
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
		log_error("leader lease not renewed in time (%lld ms past the fencing deadline): killing "
			  "PostgreSQL (pid %d) so it accepts no more writes",
			  (long long)late, (int)pid);
		kill_postgres(pid);
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
