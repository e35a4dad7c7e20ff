/*
 * dynconf.c — the agent applies the dynamic config key's timing and
 * PostgreSQL parameters (cluster/config_key.h): the HA loop's ttl, loop_wait and
 * retry_timeout replace the file's (the lease takes a new ttl when it is next
 * renewed: agent.c), and parameters are merged over the file's [parameters],
 * written into pgha.conf and reloaded; pg_settings.pending_restart then says
 * which of them wait for a restart, and the member record publishes it.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/config_key.h"
#include "common/log.h"
#include "common/util.h"

/* How often pending_restart is asked when nothing changed (after a change: every loop for a while). */
#define PENDING_CHECK_MS 10000
#define PENDING_FAST_MS 10000

void dynconf_init(struct agent *a)
{
	a->dyn.file_ttl_ms = a->cfg.ttl_ms;
	a->dyn.file_loop_wait_ms = a->cfg.loop_wait_ms;
	a->dyn.file_retry_timeout_ms = a->cfg.retry_timeout_ms;
	dyncfg_params_merge(a->cfg.params, a->cfg.nparams, NULL, 0, &a->dyn.params, &a->dyn.nparams);
}

void dynconf_free(struct agent *a)
{
	dyncfg_params_free(a->dyn.params, a->dyn.nparams);
	a->dyn.params = NULL;
	a->dyn.nparams = 0;
}

int64_t dynconf_lease_ttl_s(const struct agent *a)
{
	return a->cfg.ttl_ms / 1000;
}

static void set_dyn_error(struct agent *a, const char *msg)
{
	if (strcmp(msg, a->dyn.error) == 0)
		return;
	if (msg[0])
		log_error("%s", msg);
	else
		log_info("the dynamic config is applied in full again");
	snprintf(a->dyn.error, sizeof(a->dyn.error), "%s", msg);
}

static void apply_timing(struct agent *a, const long t[DYN_NTIMING])
{
	if (t[DYN_TTL] == a->cfg.ttl_ms && t[DYN_LOOP_WAIT] == a->cfg.loop_wait_ms &&
	    t[DYN_RETRY_TIMEOUT] == a->cfg.retry_timeout_ms)
		return;
	log_warn("timing now ttl %ldms, loop_wait %ldms, retry_timeout %ldms (was %dms, %dms, %dms)%s", t[DYN_TTL],
		 t[DYN_LOOP_WAIT], t[DYN_RETRY_TIMEOUT], a->cfg.ttl_ms, a->cfg.loop_wait_ms, a->cfg.retry_timeout_ms,
		 t[DYN_TTL] != a->cfg.ttl_ms ? "; the lease takes the new ttl at its next renewal" : "");
	a->cfg.ttl_ms = (int)t[DYN_TTL];
	a->cfg.loop_wait_ms = (int)t[DYN_LOOP_WAIT];
	a->cfg.retry_timeout_ms = (int)t[DYN_RETRY_TIMEOUT];
	etcd_set_deadline(a->dcs.etcd, a->cfg.retry_timeout_ms);
}

/* Log what differs between the parameters in effect and the new ones. */
static void log_param_changes(const struct pg_param *old, size_t nold, const struct pg_param *p, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		const char *was = NULL;
		for (size_t k = 0; k < nold && was == NULL; k++)
			if (strcmp(old[k].name, p[i].name) == 0)
				was = old[k].value;
		if (was == NULL || strcmp(was, p[i].value) != 0)
			sb_printf(&sb, "%s%s = '%s'", sb.len ? ", " : "", p[i].name, p[i].value);
	}
	for (size_t k = 0; k < nold; k++) {
		bool kept = false;
		for (size_t i = 0; i < n && !kept; i++)
			kept = strcmp(old[k].name, p[i].name) == 0;
		if (!kept)
			sb_printf(&sb, "%s%s (removed)", sb.len ? ", " : "", old[k].name);
	}
	log_info("PostgreSQL parameters changed: %s", sb_str(&sb));
	sb_free(&sb);
}

void dynconf_read_dcs(struct agent *a, const struct etcd_kvs *kvs)
{
	const struct etcd_kv *kv = etcd_kvs_find(kvs, a->keys.config);
	struct dyncfg dc;
	struct pgha_err e;
	(void)dyncfg_decode(kv ? kv->value : NULL, &dc, &e);   /* not an object: failover.c says so */
	char err[256] = "";
	long base[DYN_NTIMING] = {a->dyn.file_ttl_ms, a->dyn.file_loop_wait_ms, a->dyn.file_retry_timeout_ms};
	long t[DYN_NTIMING];
	if (dyncfg_timing(&dc, base, t, &e) != 0)
		snprintf(err, sizeof(err), "dynamic config refused: %.*s; keeping ttl %dms, loop_wait %dms, retry_timeout %dms",
			 (int)strcspn(e.msg, "\n"), e.msg, a->cfg.ttl_ms, a->cfg.loop_wait_ms, a->cfg.retry_timeout_ms);
	else if (t[DYN_RETRY_TIMEOUT] < a->cfg.etcd_request_timeout_ms)
		snprintf(err, sizeof(err), "dynamic config refused: retry_timeout %ldms is below this member's [etcd] "
			 "request_timeout (%dms)", t[DYN_RETRY_TIMEOUT], a->cfg.etcd_request_timeout_ms);
	else
		apply_timing(a, t);

	if (dc.params_bad) {
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "dynamic config refused: %.*s; keeping the PostgreSQL parameters in effect",
				 (int)strcspn(dc.params_why.msg, "\n"), dc.params_why.msg);
	} else {
		struct pg_param *merged = NULL;
		size_t nmerged = 0;
		dyncfg_params_merge(a->cfg.params, a->cfg.nparams, dc.params, dc.nparams, &merged, &nmerged);
		if (!dyncfg_params_equal(a->dyn.params, a->dyn.nparams, merged, nmerged)) {
			log_param_changes(a->dyn.params, a->dyn.nparams, merged, nmerged);
			dyncfg_params_free(a->dyn.params, a->dyn.nparams);
			a->dyn.params = merged;
			a->dyn.nparams = nmerged;
			a->dyn.params_dirty = true;
			merged = NULL;
			nmerged = 0;
		}
		dyncfg_params_free(merged, nmerged);
	}
	dyncfg_free(&dc);
	set_dyn_error(a, err);
}

/* PostgreSQL was started with pgha.conf written in full: ask pg_settings as soon as it runs. */
void dynconf_pg_started(struct agent *a)
{
	a->dyn.params_dirty = false;
	a->dyn.pending_checked_ms = 0;
}

/* May pgha.conf be rewritten for the running server now without losing what it streams from or waits for? */
static bool conf_rewritable(const struct agent *a)
{
	if (!a->pg.st.in_recovery)
		return a->sync.ssn_conf != NULL;   /* a primary's synchronous_standby_names must be known first */
	return a->pg.primary_conninfo != NULL || !a->pg.st.streaming;   /* adopted standby: follow() learns it first */
}

static void check_pending(struct agent *a, int64_t now)
{
	char *names = NULL;
	struct pgha_err e;
	a->dyn.pending_checked_ms = now;
	if (pg_pending_restart(a->pg.conn, &names, &e) != 0) {
		log_warn("%s", e.msg);
		return;
	}
	if (strcmp(names, a->dyn.pending_params) != 0) {
		if (names[0])
			log_warn("PostgreSQL applies these changed parameters only after a restart: %s "
				 "(`pgha ctl restart --pending`)", names);
		else if (a->dyn.pending_restart)
			log_info("no parameter waits for a restart any more");
	}
	a->dyn.pending_restart = names[0] != '\0';
	snprintf(a->dyn.pending_params, sizeof(a->dyn.pending_params), "%s", names);
	free(names);
}

void dynconf_step(struct agent *a)
{
	int64_t now = now_ms();
	if (a->pg.phase != PG_RUNNING || a->pg.conn == NULL || !a->pg.have_st) {
		if (a->pg.phase == PG_STOPPED) {
			/* The next start writes pgha.conf with every parameter in effect. */
			a->dyn.pending_restart = false;
			a->dyn.pending_params[0] = '\0';
			a->dyn.pending_fast_until_ms = 0;
		}
		return;
	}
	if (a->dyn.params_dirty && conf_rewritable(a)) {
		struct pgha_err e;
		if (node_apply_conf(a, &e) != 0) {
			log_warn("applying the PostgreSQL parameters: %s", e.msg);
		} else {
			a->dyn.params_dirty = false;
			a->dyn.pending_fast_until_ms = now + PENDING_FAST_MS;
		}
	}
	if (now < a->dyn.pending_fast_until_ms || now - a->dyn.pending_checked_ms >= PENDING_CHECK_MS)
		check_pending(a, now);
}
