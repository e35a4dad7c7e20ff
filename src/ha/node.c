/*
 * node.c — the local PostgreSQL as this agent runs it: whether it is a
 * primary, its connection, stopping it, rewriting pgha.conf, and the error
 * the member record shows. The lowest layer of the agent: it calls nothing
 * else of src/ha but the fence.
 */
#include "ha/agent_int.h"

#include <stdarg.h>
#include <stdio.h>
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
	snprintf(a->last_error, sizeof(a->last_error), "%.*s", (int)strcspn(msg, "\n"), msg);
}

bool node_is_primary(const struct agent *a)
{
	return a->phase == PG_RUNNING && a->have_st && !a->st.in_recovery;
}

void node_disconnect(struct agent *a)
{
	if (a->conn) {
		PQfinish(a->conn);
		a->conn = NULL;
	}
	a->have_st = false;
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
	s->params = a->params;
	s->nparams = a->nparams;
	s->standby = standby;
	s->primary_conninfo = conninfo;
	s->slot = slot;
	s->synchronous_standby_names = ssn;
}

int node_apply_conf(struct agent *a, struct pgha_err *e)
{
	bool standby = a->have_st ? a->st.in_recovery : a->started_as_standby;
	char slot[64] = "";
	if (standby && a->primary_conninfo != NULL)
		pg_slot_name(a->cfg.name, slot, sizeof(slot));
	struct pg_conf_spec spec;
	node_conf_spec(a, &spec, standby, standby ? a->primary_conninfo : NULL, slot,
		       a->ssn_conf ? a->ssn_conf : "");
	int changed = pg_update_conf_file(&spec, e);
	if (changed < 0)
		return -1;
	if (changed == 0)
		return 0;
	if (a->conn == NULL)
		return err_set(e, "no connection to PostgreSQL to reload it");
	if (pg_reload_conf(a->conn, e) != 0)
		return -1;
	a->ssn_reload_ms = now_ms();
	return 0;
}

int node_stop(struct agent *a, struct pgha_err *e)
{
	node_disconnect(a);
	if (a->pg_pid <= 0)
		return 0;
	/* Stopping on purpose: not a crash, and nothing left to fence. */
	if (a->fence)
		fence_disarm(a->fence);
	int rc = pg_stop(&a->node, a->pg_pid, a->pg_child, e);
	if (rc == 0) {
		a->pg_pid = 0;
		a->phase = PG_STOPPED;
		log_info("PostgreSQL stopped");
	}
	return rc;
}
