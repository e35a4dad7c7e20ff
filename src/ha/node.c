/*
 * node.c — the local PostgreSQL as this agent runs it: whether it is a
 * primary, its connection, stopping it, rewriting pgha.conf, and the error
 * the member record shows. Low in the agent: it calls nothing else of
 * src/ha but the fence and the view; what its caller must do about an event
 * (a crash: backoff, crash count) it returns.
 */
#include "ha/agent_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "pg/pgconf.h"

void node_set_error(struct agent *a, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s", msg);
	/* The member record carries the first line only. */
	snprintf(a->pg.last_error, sizeof(a->pg.last_error), "%.*s", (int)strcspn(msg, "\n"), msg);
}

bool node_is_primary(const struct agent *a)
{
	return a->pg.phase == PG_RUNNING && a->pg.have_st && !a->pg.st.in_recovery;
}

void node_disconnect(struct agent *a)
{
	if (a->pg.conn) {
		PQfinish(a->pg.conn);
		a->pg.conn = NULL;
	}
	a->pg.have_st = false;
}

void node_conf_spec(const struct agent *a, struct pg_conf_spec *s, bool standby, const char *conninfo,
		    const char *slot, const char *ssn)
{
	memset(s, 0, sizeof(*s));
	s->node = &a->node;
	s->member_name = a->cfg.name;
	s->allowed_networks = a->cfg.allowed_networks;
	s->superuser = a->cfg.superuser;
	s->replication_user = a->cfg.replication_user;
	s->params = a->dyn.params;
	s->nparams = a->dyn.nparams;
	s->standby = standby;
	s->primary_conninfo = conninfo;
	s->slot = slot;
	s->synchronous_standby_names = ssn;
	s->tls = &a->tls;
	/* [backup] on: every member archives with pgBackRest (archive.c set these up). */
	s->archive_command = a->arc.archive_command;
	s->restore_command = a->arc.promoting ? a->arc.restore_command_promote : a->arc.restore_command;
	/* A standby cluster with archive_stanza: the primary cluster's archive (view.c re-applies on promotion). */
	if (a->arc.restore_command_standby != NULL && view_standby_cluster(a))
		s->restore_command = a->arc.restore_command_standby;
}

int node_apply_conf(struct agent *a, struct pgha_err *e)
{
	bool standby = a->pg.have_st ? a->pg.st.in_recovery : a->pg.started_as_standby;
	const char *slot = standby && a->pg.primary_conninfo != NULL ? a->pg.primary_slot : "";
	struct pg_conf_spec spec;
	node_conf_spec(a, &spec, standby, standby ? a->pg.primary_conninfo : NULL, slot,
		       a->sync.ssn_conf ? a->sync.ssn_conf : "");
	int changed = pg_update_conf_file(&spec, e);
	if (changed < 0)
		return -1;
	if (changed == 0)
		return 0;
	if (a->pg.conn == NULL)
		return err_set(e, "no connection to PostgreSQL to reload it");
	if (pg_reload_conf(a->pg.conn, e) != 0)
		return -1;
	a->pg.reload_ms = now_ms();
	return 0;
}

int node_stop(struct agent *a, struct pgha_err *e)
{
	node_disconnect(a);
	if (a->pg.pid <= 0)
		return 0;
	/* Stopping on purpose: not a crash, and nothing left to fence. */
	if (a->fencing.fence)
		fence_disarm(a->fencing.fence);
	int rc = pg_stop(&a->node, a->pg.pid, a->pg.child, e);
	if (rc == 0) {
		a->pg.pid = 0;
		a->pg.phase = PG_STOPPED;
		log_info("PostgreSQL stopped");
	}
	return rc;
}

/*
 * Start PostgreSQL as a primary or a standby of conninfo (taken over; NULL: no
 * upstream yet) through slot ("" none).
 */
int node_start(struct agent *a, bool standby, char *conninfo, const char *slot, const char *ssn, struct pgha_err *e)
{
	if (conninfo == NULL)
		slot = "";
	struct pg_conf_spec spec;
	node_conf_spec(a, &spec, standby, conninfo, slot, ssn);
	int rc = -1;
	if (pg_write_pgpass(a->cfg.pgpass, &a->user, a->cfg.superuser, a->su_password,
			    a->cfg.replication_user, a->repl_password, e) != 0)
		goto out;
	if (pg_write_config(&spec, e) != 0)
		goto out;
	if (pg_start(&a->node, &a->pg.pid, e) != 0)
		goto out;
	a->pg.child = true;
	a->pg.phase = PG_STARTING;
	a->pg.start_ms = now_ms();
	a->pg.crashed = false;
	a->pg.started_as_standby = standby;
	free(a->pg.primary_conninfo);
	a->pg.primary_conninfo = conninfo;
	snprintf(a->pg.primary_slot, sizeof(a->pg.primary_slot), "%s", slot);
	conninfo = NULL;
	log_info("PostgreSQL starting as %s (pid %d, port %d)", !standby ? "primary"
		 : !a->pg.primary_conninfo ? "a standby (no leader to stream from yet)"
		 : view_standby_cluster(a) && view_leader(a) && strcmp(view_leader(a)->name, a->cfg.name) == 0
		 ? "the standby leader (a standby of the primary cluster)" : "a standby of the leader",
		 (int)a->pg.pid, a->cfg.pg_port);
	rc = 0;
out:
	free(conninfo);
	return rc;
}

/* A postmaster left running (agent restarted): adopt it rather than start a second one. */
void node_adopt(struct agent *a)
{
	pid_t pid = pg_postmaster_pid(&a->node);
	if (pid <= 0)
		return;
	log_info("PostgreSQL is already running (pid %d): adopting it", (int)pid);
	a->pg.pid = pid;
	a->pg.child = false;
	a->pg.phase = PG_STARTING;
	a->pg.start_ms = now_ms();
}

int node_reload(struct agent *a, struct pgha_err *e)
{
	if (pg_reload_conf(a->pg.conn, e) != 0)
		return -1;
	a->pg.reload_ms = now_ms();
	return 0;
}

/* Adopted PostgreSQL: trust its upstream if its walreceiver streams from the leader. */
void node_adopt_upstream(struct agent *a, const struct member *leader)
{
	if (leader == NULL || a->pg.primary_conninfo != NULL || a->pg.phase != PG_RUNNING || !a->pg.have_st ||
	    !a->pg.st.in_recovery)
		return;
	if (a->pg.st.streaming && strcmp(a->pg.st.upstream_host, leader->host) == 0 &&
	    a->pg.st.upstream_port == leader->port) {
		a->pg.primary_conninfo = view_leader_conninfo(a, leader);
		pg_slot_name(a->cfg.name, a->pg.primary_slot, sizeof(a->pg.primary_slot));
	}
}

/* The data directory was moved away: nothing is there until a clone. */
void node_data_gone(struct agent *a)
{
	memset(&a->pg.data, 0, sizeof(a->pg.data));
	a->pg.data.kind = PG_DATA_MISSING;
}

void node_free(struct agent *a)
{
	node_disconnect(a);
	free(a->pg.primary_conninfo);
	a->pg.primary_conninfo = NULL;
}

static void note_crash(struct agent *a)
{
	int64_t now = now_ms();
	if (a->pg.crash_first_ms == 0)
		a->pg.crash_first_ms = now;
	a->pg.crash_count++;
}

/* Forget an old crash once PostgreSQL has run well for a while. */
void node_note_running(struct agent *a)
{
	if (a->pg.phase != PG_RUNNING) {
		a->pg.running_since_ms = 0;
		return;
	}
	int64_t now = now_ms();
	if (a->pg.running_since_ms == 0)
		a->pg.running_since_ms = now;
	if (a->pg.crash_first_ms != 0 && now - a->pg.running_since_ms > 30000) {
		a->pg.crash_first_ms = 0;
		a->pg.crash_count = 0;
	}
}

bool node_restart_exhausted(const struct agent *a, int64_t now)
{
	if (a->pg.crash_first_ms == 0)
		return false;
	return now - a->pg.crash_first_ms > a->cfg.crash_restart_timeout_ms || a->pg.crash_count > 3;
}

static enum node_event ended(struct agent *a, int code)
{
	char why[64];
	proc_describe_exit(code, why, sizeof(why));
	node_disconnect(a);
	bool was_starting = a->pg.phase == PG_STARTING;
	a->pg.pid = 0;
	a->pg.phase = PG_STOPPED;
	note_crash(a);
	if (was_starting) {
		node_set_error(a, "PostgreSQL exited during startup (%s); see %s", why, a->cfg.log_file);
		return NODE_EXITED_STARTING;
	}
	node_set_error(a, "PostgreSQL exited unexpectedly (%s); see %s", why, a->cfg.log_file);
	a->pg.crashed = true;
	return NODE_EXITED;
}

enum node_event node_refresh(struct agent *a)
{
	if (a->pg.pid > 0) {
		int code = 0;
		if (a->pg.child) {
			if (proc_poll(a->pg.pid, &code) != 0)
				return ended(a, code);
		} else if (!proc_alive(a->pg.pid)) {
			return ended(a, 0);
		}
	} else {
		a->pg.phase = PG_STOPPED;
		return NODE_UP;
	}
	if (a->pg.phase == PG_STARTING) {
		if (!pg_accepting(&a->node)) {
			if (now_ms() - a->pg.start_ms > a->cfg.start_timeout_ms) {
				struct pgha_err e;
				node_set_error(a, "PostgreSQL did not accept connections within %d ms; stopping it (see %s)",
						a->cfg.start_timeout_ms, a->cfg.log_file);
				if (node_stop(a, &e) != 0)
					log_error("%s", e.msg);
				return NODE_START_TIMEOUT;
			}
			return NODE_UP;
		}
		log_info("PostgreSQL accepts connections");
		a->pg.phase = PG_RUNNING;
		a->pg.last_error[0] = '\0';
	}
	struct pgha_err e;
	if (a->pg.conn == NULL) {
		a->pg.conn = pg_connect_local(&a->node, &e);
		if (a->pg.conn == NULL) {
			log_warn("%s", e.msg);
			a->pg.have_st = false;
			return NODE_UP;
		}
	}
	if (pg_query_status(a->pg.conn, &a->pg.st, &e) != 0) {
		log_warn("querying PostgreSQL: %s", e.msg);
		node_disconnect(a);
		return NODE_UP;
	}
	a->pg.have_st = true;
	return NODE_UP;
}

void node_inspect_data(struct agent *a)
{
	struct pgha_err e;
	/* pg_controldata only while PostgreSQL is down; when it runs, SQL tells us more. */
	if (a->pg.phase != PG_STOPPED || a->job.kind != JOB_NONE)
		return;
	if (pg_data_inspect(&a->node, &a->pg.data, &e) != 0) {
		node_set_error(a, "inspecting the data directory: %s", e.msg);
		a->pg.data.kind = PG_DATA_INVALID;
	}
}

void node_follow(struct agent *a, const struct member *leader)
{
	if (a->pg.conn == NULL)
		return;
	char slot[64];
	char *ci = view_upstream_conninfo(a, leader, slot, sizeof(slot));
	if (ci == NULL)
		return;
	struct pg_conf_spec spec;
	node_conf_spec(a, &spec, true, ci, slot, NULL);
	struct pgha_err e;
	int changed = pg_update_conf_file(&spec, &e);
	if (changed < 0) {
		node_set_error(a, "re-pointing replication: %s", e.msg);
		free(ci);
		return;
	}
	if (pg_reload_conf(a->pg.conn, &e) != 0) {
		node_set_error(a, "reload after re-pointing replication: %s", e.msg);
		free(ci);
		return;
	}
	if (strcmp(leader->name, a->cfg.name) == 0)
		log_info("standby leader: now replicating from the primary cluster (%s)", a->cfg.standby_primary_hosts);
	else
		log_info("now following %s (%s:%d)", leader->name, leader->host, leader->port);
	free(a->pg.primary_conninfo);
	a->pg.primary_conninfo = ci;
	snprintf(a->pg.primary_slot, sizeof(a->pg.primary_slot), "%s", slot);
}

