/*
 * archive_continuity.c — no gap in the WAL archive across failovers and
 * switchovers ([backup] on). Three places lose WAL otherwise:
 *
 * - A promotion. A standby (archive_mode=on) marks what it streams .done: it
 *   never archives it. If the old primary died with finished segments its
 *   archiver had not pushed yet, nobody has them in the archive. So just
 *   before pg_promote the standby marks the whole segments of the timeline it
 *   leaves .ready again; its archiver, once primary, pushes them, and a
 *   .ready segment is never removed or recycled before that. pgBackRest
 *   takes a segment the archive already holds with the same checksum as done,
 *   so each costs a read and a checksum, no upload. The cost is bounded by
 *   what pg_wal keeps (wal_keep_size, 128MB by default, plus what the last
 *   restartpoint keeps) and paid once per promotion, not all the time as
 *   archive_mode=always on every standby would, which also archives the last
 *   segment of a timeline under a full segment's name with whatever the file
 *   held past the switch: two members then push different contents under one
 *   name and the second fails forever. A segment finished but not streamed is
 *   not on the new timeline (the rejoin below pushes it). The segments marked
 *   again count toward archive-push-queue-max like any WAL: with the
 *   repository unreachable past that bound pgBackRest drops WAL, by design.
 * - A rejoin. The old primary, before pg_rewind or a re-clone throws its WAL
 *   away (or before it starts as a standby, where nothing archives it), pushes
 *   what its archive_status still marks .ready, one file at a time as a child
 *   with a deadline; HA never waits for it past the deadline. pgBackRest's
 *   asynchronous spool holds only status files: the WAL itself is in pg_wal.
 * - A .partial the archive holds with other content (another promotion off
 *   the same segment, from a member lost since): pgBackRest refuses it and
 *   PostgreSQL would retry it forever, archiving nothing after it. Recovery
 *   never reads a .partial, so it is marked done, with a warning. A history
 *   file pgBackRest (2.45) replaces without a word, and a whole segment with
 *   other content is not skipped: that is a split brain to report, not to hide.
 */
#include "ha/agent_int.h"
#include "ha/archive_continuity.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/pgbackrest.h"
#include "common/log.h"
#include "common/util.h"

#define GAP_PUSH_TIMEOUT_MS 30000    /* a rejoin's pushes, all together */
#define GAP_CHECK_MS 5000            /* a refused .partial looked for */

bool arcc_segment_name(const char *name, uint32_t *tli)
{
	if (strlen(name) != 24 || strspn(name, "0123456789ABCDEF") != 24)
		return false;
	char t[9];
	memcpy(t, name, 8);
	t[8] = '\0';
	*tli = (uint32_t)strtoul(t, NULL, 16);
	return true;
}

uint32_t arcc_newest_timeline(const char *const *wal_names, size_t n)
{
	uint32_t newest = 1;
	for (size_t i = 0; i < n; i++) {
		const char *s = wal_names[i];
		if (strlen(s) == 16 && strcmp(s + 8, ".history") == 0 && strspn(s, "0123456789ABCDEF") == 8) {
			uint32_t t = (uint32_t)strtoul(s, NULL, 16);
			if (t > newest)
				newest = t;
		}
	}
	return newest;
}

bool arcc_rearchive(const char *status_name, uint32_t tli)
{
	char seg[25];
	uint32_t t;
	if (strlen(status_name) != 29 || strcmp(status_name + 24, ".done") != 0)
		return false;
	memcpy(seg, status_name, 24);
	seg[24] = '\0';
	return arcc_segment_name(seg, &t) && t == tli;
}

bool arcc_ready_file(const char *status_name, char *file, size_t len)
{
	size_t n = strlen(status_name);
	if (n <= 6 || strcmp(status_name + n - 6, ".ready") != 0 || n - 6 >= len || status_name[0] == '.')
		return false;
	memcpy(file, status_name, n - 6);
	file[n - 6] = '\0';
	return true;
}

int arcc_push_order(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	bool hx = strstr(x, ".history") != NULL, hy = strstr(y, ".history") != NULL;
	if (hx != hy)
		return hx ? -1 : 1;
	return strcmp(x, y);
}

bool arcc_partial_refused(const char *wal, const char *error_text)
{
	char seg[25];
	uint32_t tli;
	if (strlen(wal) != 32 || strcmp(wal + 24, ".partial") != 0)
		return false;
	snprintf(seg, sizeof(seg), "%.24s", wal);
	if (!arcc_segment_name(seg, &tli))
		return false;
	/* pgBackRest's ArchiveDuplicateError. */
	return strncmp(error_text, "45\n", 3) == 0 && strstr(error_text, "with a different checksum") != NULL;
}

/* The names in a directory (caller frees each and the array); -1 if it cannot be read. */
static int list_dir(const char *path, char ***names, size_t *n)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	*names = NULL;
	*n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		*names = xrealloc(*names, (*n + 1) * sizeof(**names));
		(*names)[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Rename pg_wal/archive_status/<file><from> to <file><to>. */
static int set_status(const struct agent *a, const char *file, const char *from, const char *to)
{
	char *src = xasprintf("%s/pg_wal/archive_status/%s%s", a->cfg.data_dir, file, from);
	char *dst = xasprintf("%s/pg_wal/archive_status/%s%s", a->cfg.data_dir, file, to);
	int rc = rename(src, dst);
	if (rc != 0)
		log_warn("WAL archiving: cannot rename %s to %s: %s", src, dst, strerror(errno));
	free(src);
	free(dst);
	return rc;
}

void arcgap_before_promote(struct agent *a)
{
	if (!a->arc.on)
		return;
	char *wal = xasprintf("%s/pg_wal", a->cfg.data_dir);
	char *status = xasprintf("%s/pg_wal/archive_status", a->cfg.data_dir);
	char **files = NULL, **marks = NULL;
	size_t nfiles = 0, nmarks = 0;
	if (list_dir(wal, &files, &nfiles) != 0 || list_dir(status, &marks, &nmarks) != 0) {
		log_warn("WAL archiving: cannot read %s before the promotion: %s; WAL the old primary had not "
			 "archived may be missing from the archive", status, strerror(errno));
		goto out;
	}
	uint32_t tli = arcc_newest_timeline((const char *const *)files, nfiles);
	qsort(marks, nmarks, sizeof(*marks), arcc_push_order);
	int count = 0;
	char first[25] = "", last[25] = "";
	for (size_t i = 0; i < nmarks; i++) {
		if (!arcc_rearchive(marks[i], tli))
			continue;
		char seg[25];
		snprintf(seg, sizeof(seg), "%.24s", marks[i]);
		if (set_status(a, seg, ".done", ".ready") != 0)
			continue;
		if (count++ == 0)
			snprintf(first, sizeof(first), "%s", seg);
		snprintf(last, sizeof(last), "%s", seg);
	}
	if (count > 0)
		log_info("WAL archiving: before the promotion, %d segment(s) of timeline %u this standby received "
			 "(%s..%s) are marked for archiving again, in case the old primary had not archived them "
			 "(the archive keeps one copy)", count, tli, first, last);
out:
	free_names(files, nfiles);
	free_names(marks, nmarks);
	free(wal);
	free(status);
}

static void push_child_done(struct agent_arc_gap *g)
{
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
	g->pid = 0;
}

/* The round is over: what ended it (NULL: it is done, "before <why>"). */
static void round_end(struct agent *a, const char *why)
{
	struct agent_arc_gap *g = &a->gap;
	char done[160];
	if (why == NULL) {
		snprintf(done, sizeof(done), "before %s", g->why);
		why = done;
	}
	size_t left = g->nfiles - g->next;
	if (left > 0 || g->failed > 0)
		log_warn("WAL archiving: %s; %d WAL file(s) pushed, %d refused, %zu not tried: the archive may lack "
			 "WAL this member held\nHINT: see pgBackRest's log in %s/log; the member goes on rejoining",
			 why, g->pushed, g->failed, left, a->cfg.backup_work_dir);
	else
		log_info("WAL archiving: %s: %d WAL file(s) this member held pushed in %lld ms", why, g->pushed,
			 (long long)(now_ms() - (g->deadline_ms - GAP_PUSH_TIMEOUT_MS)));
	free_names(g->files, g->nfiles);
	g->files = NULL;
	g->nfiles = g->next = 0;
	g->round_end_ms = now_ms();
}

static int spawn_push(struct agent *a, const char *file, struct pgha_err *e)
{
	struct agent_arc_gap *g = &a->gap;
	char *config = xasprintf("--config=%s", a->arc.conf);
	char *stanza = xasprintf("--stanza=%s", a->cfg.cluster_name);
	char *path = xasprintf("%s/pg_wal/%s", a->cfg.data_dir, file);
	/* Synchronous: when it returns the file is in the repository (or refused), nothing left running. */
	const char *argv[] = {a->arc.bin, config, stanza, "--no-archive-async", "archive-push", path, NULL};
	struct proc_spec spec = {.argv = argv, .user = &a->user, .out_fd = -1, .new_session = true};
	int rc = proc_spawn_piped(&spec, &g->pid, &g->fd, e);
	free(config);
	free(stanza);
	free(path);
	sb_reset(&g->out);
	return rc;
}

/* Start pushing the next file; false when none is left. */
static bool push_next(struct agent *a)
{
	struct agent_arc_gap *g = &a->gap;
	while (g->next < g->nfiles) {
		struct pgha_err e;
		if (spawn_push(a, g->files[g->next], &e) == 0)
			return true;
		log_warn("WAL archiving: cannot start pgbackrest archive-push of %s: %s", g->files[g->next], e.msg);
		g->failed++;
		g->next++;
	}
	return false;
}

/* Poll the running push: true while the round goes on. */
static bool poll_push(struct agent *a)
{
	struct agent_arc_gap *g = &a->gap;
	const char *why = g->why;
	pgbr_read_tail(g->fd, &g->out);
	int code = 0;
	if (proc_poll(g->pid, &code) == 0) {
		if (now_ms() < g->deadline_ms)
			return true;
		kill(-g->pid, SIGKILL);
		proc_wait(g->pid, 5000, &code);
		push_child_done(g);
		char msg[160];
		snprintf(msg, sizeof(msg), "pushing the WAL it holds before %s took over %d s (stopped)", why,
			 GAP_PUSH_TIMEOUT_MS / 1000);
		round_end(a, msg);
		return false;
	}
	pgbr_read_tail(g->fd, &g->out);
	push_child_done(g);
	const char *file = g->files[g->next++];
	if (code == 0) {
		g->pushed++;
		if (set_status(a, file, ".ready", ".done") != 0)
			log_warn("WAL archiving: %s pushed, but still marked ready", file);
	} else {
		g->failed++;
		char exitdesc[64], reason[200];
		proc_describe_exit(code, exitdesc, sizeof(exitdesc));
		pgbr_reason(sb_str(&g->out), reason, sizeof(reason));
		log_warn("WAL archiving: pgbackrest archive-push of %s failed (%s): %s", file, exitdesc, reason);
	}
	if (push_next(a))
		return true;
	round_end(a, NULL);
	return false;
}

bool arcgap_before_wal_loss(struct agent *a, const char *why)
{
	struct agent_arc_gap *g = &a->gap;
	if (!a->arc.on || a->arc.conf == NULL)
		return true;
	if (g->pid > 0)
		return !poll_push(a);
	/* One round each time PostgreSQL stopped: a file refused once is not retried every loop. */
	if (g->round_end_ms > a->pg.start_ms)
		return true;
	char *status = xasprintf("%s/pg_wal/archive_status", a->cfg.data_dir);
	char **marks = NULL;
	size_t nmarks = 0;
	int rc = list_dir(status, &marks, &nmarks);
	free(status);
	g->files = NULL;
	g->nfiles = g->next = 0;
	g->pushed = g->failed = 0;
	for (size_t i = 0; rc == 0 && i < nmarks; i++) {
		char file[64];
		if (!arcc_ready_file(marks[i], file, sizeof(file)))
			continue;
		char *path = xasprintf("%s/pg_wal/%s", a->cfg.data_dir, file);
		bool present = path_exists(path);
		free(path);
		if (!present)
			continue;
		g->files = xrealloc(g->files, (g->nfiles + 1) * sizeof(*g->files));
		g->files[g->nfiles++] = xstrdup(file);
	}
	free_names(marks, nmarks);
	if (g->nfiles == 0) {
		g->round_end_ms = now_ms();
		return true;
	}
	qsort(g->files, g->nfiles, sizeof(*g->files), arcc_push_order);
	log_info("WAL archiving: pushing %zu WAL file(s) this member holds but never archived (%s..%s) before %s "
		 "(at most %d s)", g->nfiles, g->files[0], g->files[g->nfiles - 1], why, GAP_PUSH_TIMEOUT_MS / 1000);
	g->deadline_ms = now_ms() + GAP_PUSH_TIMEOUT_MS;
	g->why = why;
	if (push_next(a))
		return false;
	round_end(a, NULL);
	return true;
}

void arcgap_step(struct agent *a)
{
	struct agent_arc_gap *g = &a->gap;
	/* A rejoin's push whose action the loop no longer decides (a new leader, a start): see it end. */
	if (g->pid > 0)
		poll_push(a);
	int64_t now = now_ms();
	if (!a->arc.on || a->pg.conn == NULL || !node_is_primary(a) || now - g->check_ms < GAP_CHECK_MS)
		return;
	g->check_ms = now;
	PGresult *res = PQexec(a->pg.conn,
			       "SELECT last_failed_wal FROM pg_stat_archiver WHERE last_failed_wal LIKE '%.partial' "
			       "AND last_failed_time > coalesce(last_archived_time, '-infinity')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		PQclear(res);
		return;
	}
	char wal[64];
	snprintf(wal, sizeof(wal), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (strchr(wal, '/') != NULL)
		return;
	char *errfile = xasprintf("%s/spool/archive/%s/out/%s.error", a->cfg.backup_work_dir, a->cfg.cluster_name, wal);
	char *text = NULL;
	size_t len = 0;
	struct pgha_err e;
	if (read_file(errfile, &text, &len, &e) == 0 && arcc_partial_refused(wal, text) &&
	    set_status(a, wal, ".ready", ".done") == 0) {
		log_warn("WAL archiving: the archive already holds %s with other content (left by another promotion "
			 "off the same segment); PostgreSQL would retry it forever and archive nothing after it, so it "
			 "is marked done (recovery never reads a .partial: the next timeline's segment holds that WAL)",
			 wal);
		/* The archiver sleeps up to a minute after repeated failures; a reload wakes it. */
		if (node_reload(a, &e) != 0)
			log_warn("WAL archiving: %s", e.msg);
	}
	free(text);
	free(errfile);
}

void arcgap_free(struct agent *a)
{
	struct agent_arc_gap *g = &a->gap;
	if (g->pid > 0) {
		int code;
		kill(-g->pid, SIGKILL);
		proc_wait(g->pid, 5000, &code);
		push_child_done(g);
	}
	free_names(g->files, g->nfiles);
	g->files = NULL;
	g->nfiles = 0;
	sb_free(&g->out);
}
