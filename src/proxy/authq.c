/*
 * authq.c — auth_query lookups on worker threads with libpq (see authq.h).
 */
#include "proxy/authq.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "auth/scram.h"
#include "common/strbuf.h"
#include "common/util.h"

/* A worker closes its connection after this long without a lookup. */
#define AUTHQ_IDLE_CLOSE_MS 30000

struct worker {
	struct authq *q;
	pthread_t thread;
	bool started;
	PGconn *conn;              /* kept for the next job to the same target */
	char host[256];
	int port;
};

struct authq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct authq_job *todo, **todo_tail;
	struct authq_job *done;
	bool stopping;
	int efd;
	char *user, *password, *dbname, *query;   /* password: guarded by mu */
	struct authq_tls tls;      /* guarded by mu */
	int timeout_ms;
	int nworkers;
	struct worker workers[AUTHQ_WORKERS];
};

/* ---- bounded libpq steps ------------------------------------------------ */

/* Wait until fd is ready for ev or the deadline passes: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
	if (fd < 0) {   /* libpq has no socket (connection gone): poll() would only sleep */
		errno = ENOTCONN;
		return -1;
	}
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = ev};
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* libpq's message, first line only. */
static void pq_message(const char *msg, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", msg && msg[0] ? msg : "(no message from libpq)");
	out[strcspn(out, "\n")] = '\0';
}

static PGconn *connect_target(struct authq *q, const char *host, int port, const char *password,
			      int64_t deadline, char *err, size_t errlen)
{
	char portbuf[16], options[64];
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	/* The server stops a query that outlives the lookup too. */
	snprintf(options, sizeof(options), "-c statement_timeout=%d", q->timeout_ms);
	struct authq_tls tls;
	pthread_mutex_lock(&q->mu);
	tls = q->tls;
	pthread_mutex_unlock(&q->mu);
	const char *keys[14] = {"host", "port", "user", "password", "dbname", "application_name",
				"gssencmode", "options", "sslmode"};
	const char *vals[14] = {host, portbuf, q->user, password, q->dbname, "pgha-proxy-auth-query",
				"disable", options, tls.sslmode[0] ? tls.sslmode : "prefer"};
	int n = 9;
	/* The server connections' TLS settings; unset ones are left to libpq's defaults. */
	if (tls.rootcert[0]) {
		keys[n] = "sslrootcert";
		vals[n++] = tls.rootcert;
	}
	if (tls.cert[0]) {
		keys[n] = "sslcert";
		vals[n++] = tls.cert;
		keys[n] = "sslkey";
		vals[n++] = tls.key;
	}
	keys[n] = vals[n] = NULL;
	PGconn *c = PQconnectStartParams(keys, vals, 0);
	if (c == NULL) {
		snprintf(err, errlen, "cannot allocate a libpq connection");
		return NULL;
	}
	PostgresPollingStatusType st = PQstatus(c) == CONNECTION_BAD ? PGRES_POLLING_FAILED
								      : PGRES_POLLING_WRITING;
	char msg[300];
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			pq_message(PQerrorMessage(c), msg, sizeof(msg));
			snprintf(err, errlen, "cannot connect to %.100s:%d as \"%.63s\": %.200s", host, port, q->user, msg);
			PQfinish(c);
			return NULL;
		}
		int r = wait_fd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (r <= 0) {
			snprintf(err, errlen, "cannot connect to %.100s:%d as \"%.63s\": %s", host, port, q->user,
				 r == 0 ? "timed out (auth_query_timeout)" : strerror(errno));
			PQfinish(c);
			return NULL;
		}
		st = PQconnectPoll(c);
	}
	if (PQsetnonblocking(c, 1) != 0) {
		pq_message(PQerrorMessage(c), msg, sizeof(msg));
		snprintf(err, errlen, "libpq: %s", msg);
		PQfinish(c);
		return NULL;
	}
	return c;
}

/*
 * Run the query for j->user on c and fill j. Returns 0 when j is answered
 * (found, not found, or an error from the server), -1 when the connection
 * failed (err says why; a fresh connection may do better).
 */
static int run_query(struct authq *q, PGconn *c, struct authq_job *j, int64_t deadline, char *err,
		     size_t errlen)
{
	const char *params[1] = {j->user};
	char msg[300];
	if (!PQsendQueryParams(c, q->query, 1, NULL, params, NULL, NULL, 0))
		goto conn_failed;
	for (;;) {
		int f = PQflush(c);
		if (f == 0)
			break;
		if (f < 0)
			goto conn_failed;
		int r = wait_fd(PQsocket(c), POLLIN | POLLOUT, deadline);
		if (r < 0)
			goto conn_failed;
		if (r == 0)
			goto timed_out;
		if (!PQconsumeInput(c))
			goto conn_failed;
	}
	bool answered = false;
	for (;;) {
		while (PQisBusy(c)) {
			int r = wait_fd(PQsocket(c), POLLIN, deadline);
			if (r < 0)
				goto conn_failed;
			if (r == 0)
				goto timed_out;
			if (!PQconsumeInput(c))
				goto conn_failed;
		}
		PGresult *res = PQgetResult(c);
		if (res == NULL)
			break;
		if (answered) {
			PQclear(res);
			continue;
		}
		answered = true;
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_TUPLES_OK) {
			j->status = AUTHQ_FAILED;
			pq_message(PQresultErrorMessage(res), msg, sizeof(msg));
			snprintf(j->detail, sizeof(j->detail), "auth_query failed on %.100s:%d: %.250s", j->host,
				 j->port, msg);
		} else if (PQnfields(res) < 2) {
			j->status = AUTHQ_FAILED;
			snprintf(j->detail, sizeof(j->detail),
				 "auth_query returns %d column(s); it must return (user name, secret)",
				 PQnfields(res));
		} else if (PQntuples(res) == 0) {
			j->status = AUTHQ_NOT_FOUND;
			snprintf(j->detail, sizeof(j->detail), "no such user (auth_query returned no row)");
		} else if (PQntuples(res) > 1) {
			j->status = AUTHQ_FAILED;
			snprintf(j->detail, sizeof(j->detail),
				 "auth_query returned %d rows for one user (at most 1 expected)", PQntuples(res));
		} else if (PQgetisnull(res, 0, 1) || PQgetlength(res, 0, 1) == 0) {
			j->status = AUTHQ_NOT_FOUND;
			snprintf(j->detail, sizeof(j->detail), "auth_query returned no password (NULL: no "
				 "such user, or a role without a password)");
		} else {
			j->status = AUTHQ_FOUND;
			char *v = PQgetvalue(res, 0, 1);
			j->secret = xstrdup(v);
			explicit_bzero(v, strlen(v));
		}
		PQclear(res);
	}
	if (!answered)
		goto conn_failed;
	return 0;
timed_out:
	snprintf(err, errlen, "auth_query on %.100s:%d timed out (auth_query_timeout %d ms)", j->host,
		 j->port, q->timeout_ms);
	return -1;
conn_failed:
	pq_message(PQerrorMessage(c), msg, sizeof(msg));
	snprintf(err, errlen, "auth_query on %.100s:%d: connection failed: %.250s", j->host, j->port, msg);
	return -1;
}

static void close_conn(struct worker *w)
{
	if (w->conn != NULL)
		PQfinish(w->conn);
	w->conn = NULL;
	w->host[0] = '\0';
	w->port = 0;
}

static void lookup(struct worker *w, struct authq_job *j, const char *password)
{
	struct authq *q = w->q;
	int64_t start = now_ms(), deadline = start + q->timeout_ms;
	char err[400] = "";
	if (w->conn != NULL && (strcmp(w->host, j->host) != 0 || w->port != j->port ||
				PQstatus(w->conn) != CONNECTION_OK))
		close_conn(w);
	/* A kept connection may have died since (server restarted, failover): one fresh retry. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = w->conn != NULL;
		if (!reused) {
			w->conn = connect_target(q, j->host, j->port, password, deadline, err, sizeof(err));
			if (w->conn == NULL)
				break;
			snprintf(w->host, sizeof(w->host), "%s", j->host);
			w->port = j->port;
		}
		int r = run_query(q, w->conn, j, deadline, err, sizeof(err));
		bool broken = PQstatus(w->conn) != CONNECTION_OK;
		if (r == 0 && !(broken && reused && j->status == AUTHQ_FAILED)) {
			err[0] = '\0';
			if (broken)
				close_conn(w);
			break;
		}
		if (r == 0)   /* the server ended a kept connection (restart, failover): retry */
			snprintf(err, sizeof(err), "%s", j->detail);
		close_conn(w);
		if (!reused || now_ms() >= deadline)
			break;
	}
	if (err[0] != '\0') {
		j->status = AUTHQ_FAILED;
		snprintf(j->detail, sizeof(j->detail), "%s", err);
	}
	j->took_ms = now_ms() - start;
}

/* A users-file password's SCRAM verifier: a random salt, PostgreSQL's iteration count. */
static void derive(struct authq_job *j)
{
	int64_t start = now_ms();
	struct scram_verifier v;
	struct pgha_err e;
	if (scram_verifier_from_password(j->password, SCRAM_DEFAULT_ITERATIONS, &v, &e) != 0) {
		j->status = AUTHQ_FAILED;
		snprintf(j->detail, sizeof(j->detail), "%.300s", e.msg);
	} else {
		j->status = AUTHQ_FOUND;
		j->secret = scram_verifier_format(&v);
	}
	scram_verifier_wipe(&v);
	j->took_ms = now_ms() - start;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct authq *q = w->q;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->stopping && q->todo == NULL) {
			if (w->conn == NULL) {
				pthread_cond_wait(&q->cv, &q->mu);
				continue;
			}
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += AUTHQ_IDLE_CLOSE_MS / 1000;
			if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT && q->todo == NULL) {
				pthread_mutex_unlock(&q->mu);
				close_conn(w);
				pthread_mutex_lock(&q->mu);
			}
		}
		if (q->stopping)
			break;
		struct authq_job *j = q->todo;
		q->todo = j->next;
		if (q->todo == NULL)
			q->todo_tail = &q->todo;
		j->next = NULL;
		char *password = j->kind == AUTHQ_LOOKUP ? xstrdup(q->password) : NULL;
		pthread_mutex_unlock(&q->mu);

		if (j->kind == AUTHQ_DERIVE)
			derive(j);
		else
			lookup(w, j, password);
		secret_free(password);

		pthread_mutex_lock(&q->mu);
		j->next = q->done;
		q->done = j;
		uint64_t one = 1;
		if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
			/* Cannot happen with an eventfd below its maximum; the loop's tick reads anyway. */
		}
	}
	pthread_mutex_unlock(&q->mu);
	close_conn(w);
	return NULL;
}

/* ---- the event loop's side ------------------------------------------------ */

struct authq *authq_start(const struct authq_opts *o, struct pgha_err *e)
{
	struct authq *q = xcalloc(1, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	q->todo_tail = &q->todo;
	q->user = xstrdup(o->user ? o->user : "");
	q->password = xstrdup(o->password ? o->password : "");
	q->dbname = xstrdup(o->dbname ? o->dbname : "");
	q->query = xstrdup(o->query ? o->query : "");
	q->timeout_ms = o->timeout_ms;
	q->nworkers = o->workers < 1 ? 1 : o->workers > AUTHQ_WORKERS ? AUTHQ_WORKERS : o->workers;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		err_set(e, "auth_query: eventfd: %s", strerror(errno));
		authq_stop(q);
		return NULL;
	}
	for (int i = 0; i < q->nworkers; i++) {
		struct worker *w = &q->workers[i];
		w->q = q;
		int rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc != 0) {
			err_set(e, "auth_query: cannot start a worker thread: %s", strerror(rc));
			authq_stop(q);
			return NULL;
		}
		w->started = true;
	}
	return q;
}

int authq_fd(const struct authq *q)
{
	return q->efd;
}

void authq_set_password(struct authq *q, const char *password)
{
	char *copy = xstrdup(password);
	pthread_mutex_lock(&q->mu);
	char *old = q->password;
	q->password = copy;
	pthread_mutex_unlock(&q->mu);
	secret_free(old);
}

void authq_set_tls(struct authq *q, const struct authq_tls *tls)
{
	pthread_mutex_lock(&q->mu);
	q->tls = *tls;
	pthread_mutex_unlock(&q->mu);
}

void authq_submit(struct authq *q, struct authq_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&q->mu);
	*q->todo_tail = j;
	q->todo_tail = &j->next;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

struct authq_job *authq_take_done(struct authq *q)
{
	uint64_t n;
	if (read(q->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return NULL;
	pthread_mutex_lock(&q->mu);
	struct authq_job *j = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->mu);
	return j;
}

void authq_job_free(struct authq_job *j)
{
	if (j == NULL)
		return;
	secret_free(j->secret);
	secret_free(j->password);
	explicit_bzero(j, sizeof(*j));
	free(j);
}

static void free_list(struct authq_job *j)
{
	while (j != NULL) {
		struct authq_job *next = j->next;
		authq_job_free(j);
		j = next;
	}
}

void authq_stop(struct authq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (int i = 0; i < q->nworkers; i++)
		if (q->workers[i].started)
			pthread_join(q->workers[i].thread, NULL);
	free_list(q->todo);
	free_list(q->done);
	if (q->efd >= 0)
		close(q->efd);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q->user);
	secret_free(q->password);
	free(q->dbname);
	free(q->query);
	free(q);
}
