/*
 * actions.c — carrying out one decision. Every action is idempotent and
 * short; whatever it starts (a job, PostgreSQL) is observed by the next loop.
 */
#include "ha/agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "ha/failover.h"
#include "pg/pgconf.h"

#define BACKOFF_MS 5000
#define REWIND_RECHECK_MS 500

static void claim_init(struct agent *a)
{
	bool created = false;
	struct pgha_err e;
	if (etcd_create(a->dcs.etcd, a->keys.init, a->keys.init_claim, a->dcs.lease, &created, &e) != 0) {
		log_warn("claiming the initialize key failed: %s", e.msg);
		return;
	}
	if (created)
		log_info("won the initialize race: this member bootstraps the cluster");
	else
		log_info("another member claimed the initialize key first");
}

/* Give the bootstrap claim back so another member can try. */
static void release_init(struct agent *a)
{
	bool done;
	struct pgha_err e;
	if (etcd_delete_if_value(a->dcs.etcd, a->keys.init, a->keys.init_claim, &done, &e) != 0)
		log_warn("releasing the initialize key failed: %s", e.msg);
}

static void take_leader(struct agent *a)
{
	bool created = false;
	struct pgha_err e;
	/* An invalid key (leader_key.c) is replaced, compared on its revision. */
	int rc = a->view.leader_invalid != NULL ? leader_key_replace(a, &created, &e)
		 : etcd_create(a->dcs.etcd, a->keys.leader, a->cfg.name, a->dcs.lease, &created, &e);
	if (rc != 0) {
		log_warn("taking the leader key failed: %s", e.msg);
		return;
	}
	if (created) {
		log_info("took the leader key (lease %lld)", (long long)a->dcs.lease);
		view_set_leader(a, a->cfg.name);
	} else {
		log_info("another member took the leader key first");
	}
}

static void finish_bootstrap(struct agent *a)
{
	struct pgha_err e;
	if (a->pg.conn == NULL || !a->pg.have_st)
		return;
	/* A standby cluster's roles are the primary cluster's (read-only here): both share the passwords. */
	bool roles = !a->pg.st.in_recovery;
	if (roles && (pg_ensure_role(a->pg.conn, a->cfg.superuser, a->su_password, false, &e) != 0 ||
		      pg_ensure_role(a->pg.conn, a->cfg.replication_user, a->repl_password, true, &e) != 0)) {
		node_set_error(a, "bootstrap: %s", e.msg);
		return;
	}
	bool done = false;
	if (etcd_put_if_value(a->dcs.etcd, a->keys.init, a->keys.init_claim, a->pg.st.system_id, 0, &done, &e) != 0) {
		log_warn("recording the system identifier failed: %s", e.msg);
		return;
	}
	if (!done) {
		log_warn("the initialize key changed under us; not recording the system identifier");
		return;
	}
	log_info("cluster initialized: system identifier %s", a->pg.st.system_id);
}

/*
 * A promotion only requests a spread checkpoint; until one ends, the control
 * file names the old timeline and pg_rewind against this server (an old
 * leader rejoining) would compute a wrong divergence point. The rewinding
 * member waits for it (job_start_rewind); an immediate checkpoint now keeps
 * that wait short.
 */
static void checkpoint_after_promote(struct agent *a)
{
	int64_t t0 = now_ms();
	PGresult *r = PQexec(a->pg.conn, "CHECKPOINT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		log_warn("checkpoint after the promotion failed: %s", PQresultErrorMessage(r));
	else
		log_info("checkpoint after the promotion done in %lld ms", (long long)(now_ms() - t0));
	PQclear(r);
}

/*
 * In-place restore: a primary's current WAL segment is closed before it stops,
 * so the archive gets the WAL up to now (the restore target lies before it;
 * recovery must read past the target to stop there).
 */
static void switch_wal_before_restore(struct agent *a)
{
	if (a->pg.conn == NULL || !node_is_primary(a))
		return;
	PGresult *r = PQexec(a->pg.conn, "SELECT pg_switch_wal()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		log_warn("in-place restore: pg_switch_wal() failed: %s", PQresultErrorMessage(r));
	PQclear(r);
}

/*
 * Promotion waits at most PROMOTE_WAIT_S per loop: leaving recovery can take
 * long (it looks for history files in the WAL archive, and a slow repository
 * slows that), and the loop must go on renewing the leader key meanwhile. The
 * decision asks again while PostgreSQL is still in recovery; the fences
 * before the promotion (the sync key, the segments to archive again) run
 * once per promotion.
 */
#define PROMOTE_WAIT_S 2

static void promote(struct agent *a)
{
	if (a->pg.conn == NULL)
		return;
	if (!a->act.promoting) {
		/* Synchronous mode: the sync key names this member first (the fence), then promote. */
		if (sync_before_promote(a) != 0)
			return;
		arcgap_before_promote(a);
		archive_promoting(a, true);
		a->act.promoting = true;
		a->act.promote_started_ms = now_ms();
		a->act.promote_logged_ms = now_ms();
	}
	char sql[48];
	snprintf(sql, sizeof(sql), "SELECT pg_promote(true, %d)", PROMOTE_WAIT_S);
	PGresult *r = PQexec(a->pg.conn, sql);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK, done = ok && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	/* It finished between the last status read and this call. */
	if (!ok && a->act.promoting && strstr(PQresultErrorMessage(r), "recovery is not in progress") != NULL)
		ok = done = true;
	int64_t ms = now_ms() - a->act.promote_started_ms;
	if (!ok) {
		node_set_error(a, "promotion failed: %s", PQresultErrorMessage(r));
		a->act.promoting = false;
	} else if (done) {
		log_info("promoted PostgreSQL to primary in %lld ms", (long long)ms);
		a->act.promoting = false;
	}
	if (!a->act.promoting)
		archive_promoting(a, false); else if (now_ms() - a->act.promote_logged_ms >= 10000) {
		log_warn("promotion under way for %lld s: PostgreSQL is still leaving recovery (it reads history "
			 "files from the WAL archive; a slow repository slows this)", (long long)(ms / 1000));
		a->act.promote_logged_ms = now_ms();
	}
	PQclear(r);
	fencing_arm(a);
	if (done)
		checkpoint_after_promote(a);
}

static void release_leader(struct agent *a)
{
	bool done = false;
	struct pgha_err e;
	if (a->fencing.fence)
		fence_disarm(a->fencing.fence);
	if (etcd_delete_if_value(a->dcs.etcd, a->keys.leader, a->cfg.name, &done, &e) != 0) {
		log_warn("releasing the leader key: %s", e.msg);
		return;
	}
	if (done)
		log_warn("released the leader key");
	view_set_leader(a, NULL);
}

static int start_pg(struct agent *a, bool standby, struct pgha_err *e)
{
	char *ci = NULL, slot[64] = "";
	if (standby) {
		/*
		 * Without a leader: a read-only standby replaying its own WAL, ready to be
		 * elected. A standby cluster's leader: a standby of the primary cluster.
		 */
		ci = view_upstream_conninfo(a, view_leader(a), slot, sizeof(slot));
		sync_forget_leadership(a);
	}
	if (node_start(a, standby, ci, slot, standby ? NULL : sync_primary_ssn(a), e) != 0)
		return -1;
	dynconf_pg_started(a);
	if (!standby)
		fencing_arm(a);
	return 0;
}

/*
 * Move the data directory to `aside` (one copy: an older one there is removed),
 * then clone afresh: the diverged data is kept for the operator; a requested
 * re-clone's is removed once the new clone is in place (ops.c).
 */
static void move_aside(struct agent *a, const char *aside, const char *what)
{
	struct pgha_err e;
	if (pg_remove_tree(aside, &e) != 0) {
		node_set_error(a, "re-clone: %s", e.msg);
		return;
	}
	if (rename(a->cfg.data_dir, aside) != 0) {
		node_set_error(a, "re-clone: cannot move %s to %s: %s", a->cfg.data_dir, aside, strerror(errno));
	} else {
		log_warn("moved the %s data directory to %s; cloning the leader afresh", what, aside);
		job_forget_rewind(a);
		divergence_reset(a);
		node_data_gone(a);
	}
}

char *agent_diverged_aside(const struct agent *a)
{
	return xasprintf("%s.diverged", a->cfg.data_dir);
}

/*
 * The copy a re-clone moved aside from a diverged data directory (one: a newer
 * one replaces it) is kept until this member streams from the leader again,
 * then removed; meanwhile the member record names it (`ctl list`).
 */
void agent_diverged_copy_step(struct agent *a)
{
	char *aside = agent_diverged_aside(a);
	bool present = path_exists(aside);
	if (present && a->pg.phase == PG_RUNNING && a->pg.have_st && a->pg.st.in_recovery && a->pg.st.streaming) {
		struct pgha_err e;
		if (pg_remove_tree(aside, &e) != 0) {
			log_warn("removing the diverged copy: %s", e.msg);
		} else {
			log_info("streaming from the leader again: removed the diverged copy %s", aside);
			present = false;
		}
	}
	snprintf(a->act.diverged_copy, sizeof(a->act.diverged_copy), "%s", present ? aside : "");
	free(aside);
}

/* true: look again soon (the WAL this member holds is still being archived). */
static bool reinit(struct agent *a, const struct ha_decision *d)
{
	struct pgha_err e;
	if (a->pg.pid > 0) {
		log_warn("stopping PostgreSQL: %s", d->reason);
		if (node_stop(a, &e) != 0) {
			node_set_error(a, "re-clone: %s", e.msg);
			return false;
		}
	}
	/* The old directory is removed once the clone succeeds: what it never archived goes first. */
	if (!arcgap_before_wal_loss(a, "the requested re-clone"))
		return true;
	char *aside = agent_reinit_aside(a);
	move_aside(a, aside, "old");
	free(aside);
	if (a->pg.data.kind != PG_DATA_MISSING)
		agent_backoff(a);   /* not moved: try again later, not every loop */
	return false;
}

static bool slot_wanted(const struct agent *a, const char *slot)
{
	for (size_t i = 0; i < a->view.nmembers; i++) {
		char want[64];
		if (strcmp(a->view.members[i].name, a->cfg.name) == 0)
			continue;
		pg_slot_name(a->view.members[i].name, want, sizeof(want));
		if (strcmp(want, slot) == 0)
			return true;
	}
	return false;
}

static struct slot_seen *slot_tracked(struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->act.nslots; i++)
		if (strcmp(a->act.slots[i].name, name) == 0)
			return &a->act.slots[i];
	return NULL;
}

/*
 * [cluster] standby_slots: the slots standby clusters replicate through. Every
 * leader creates the missing ones (so they survive a failover here); none is
 * ever dropped (they are not tracked): the standby cluster may be away for long.
 */
static void keep_standby_slots(struct agent *a, const struct pg_slot *slots, size_t n)
{
	char *list = xstrdup(a->cfg.standby_slots), *save = NULL;
	for (char *t = strtok_r(list, ", \t", &save); t != NULL; t = strtok_r(NULL, ", \t", &save)) {
		bool exists = false;
		for (size_t k = 0; k < n; k++)
			exists |= strcmp(slots[k].name, t) == 0;
		struct pgha_err e;
		if (exists)
			continue;
		if (pg_create_physical_slot(a->pg.conn, t, true, &e) != 0)
			log_warn("%s", e.msg);
		else
			log_info("created replication slot %s for a standby cluster ([cluster] standby_slots)", t);
	}
	free(list);
}

/*
 * Keep one physical slot per member. A slot whose member left is dropped after
 * member_slots_ttl, and only if this agent has managed it (a slot an operator
 * created by hand is never dropped).
 */
static void manage_slots(struct agent *a)
{
	struct pg_slot *slots = NULL;
	size_t n = 0;
	struct pgha_err e;
	if (a->pg.conn == NULL || pg_list_slots(a->pg.conn, &slots, &n, &e) != 0) {
		if (a->pg.conn)
			log_warn("listing replication slots: %s", e.msg);
		return;
	}
	keep_standby_slots(a, slots, n);
	int64_t now = now_ms();
	for (size_t i = 0; i < a->view.nmembers; i++) {
		const struct member *m = &a->view.members[i];
		if (strcmp(m->name, a->cfg.name) == 0)
			continue;
		char want[64];
		pg_slot_name(m->name, want, sizeof(want));
		bool exists = false;
		for (size_t k = 0; k < n; k++)
			exists |= strcmp(slots[k].name, want) == 0;
		if (!exists) {
			if (pg_create_physical_slot(a->pg.conn, want, false, &e) != 0)
				log_warn("%s", e.msg);
			else
				log_info("created replication slot %s for member %s", want, m->name);
		}
		struct slot_seen *t = slot_tracked(a, want);
		if (t == NULL) {
			a->act.slots = xrealloc(a->act.slots, (a->act.nslots + 1) * sizeof(*a->act.slots));
			t = &a->act.slots[a->act.nslots++];
			snprintf(t->name, sizeof(t->name), "%s", want);
		}
		t->last_seen_ms = now;
	}
	for (size_t k = 0; k < n; k++) {
		if (!slots[k].physical || slot_wanted(a, slots[k].name))
			continue;
		struct slot_seen *t = slot_tracked(a, slots[k].name);
		if (t == NULL || slots[k].active || now - t->last_seen_ms < a->cfg.member_slots_ttl_ms)
			continue;
		if (pg_drop_slot(a->pg.conn, slots[k].name, &e) != 0) {
			log_warn("%s", e.msg);
			continue;
		}
		log_info("dropped replication slot %s: its member left the cluster", slots[k].name);
		*t = a->act.slots[--a->act.nslots];
	}
	free(slots);
}

bool agent_act(struct agent *a, const struct ha_decision *d)
{
	struct pgha_err e;
	bool quick = false;
	/* A promotion given up for another decision starts again from its fences. */
	if (d->action != ACT_PROMOTE && a->act.promoting) {
		/* It left recovery between two pg_promote calls: the status read saw it first. */
		if (node_is_primary(a))
			log_info("promoted PostgreSQL to primary in %lld ms", (long long)(now_ms() - a->act.promote_started_ms));
		a->act.promoting = false;
		archive_promoting(a, false);
	}
	switch (d->action) {
	case ACT_WAIT:
	case ACT_REPLICA_DUTIES:
		break;
	case ACT_FATAL:
		if (a->pg.data.kind == PG_DATA_INVALID)
			node_set_error(a, "%s: %s\nHINT: point [postgresql] data_dir at an empty or missing "
					"directory, or at this cluster's data; pgha never deletes what it did not create",
					a->cfg.data_dir, d->reason);
		else
			node_set_error(a, "%s: %s: it has system identifier %s, cluster %s has %s\n"
					"HINT: this member cannot join with it; move it away to clone afresh",
					a->cfg.data_dir, d->reason, a->pg.have_st ? a->pg.st.system_id : a->pg.data.system_id,
					a->cfg.cluster_name, a->view.initialize ? a->view.initialize : "none");
		a->act.fatal = true;
		break;
	case ACT_CLAIM_INIT:
		claim_init(a);
		break;
	case ACT_INITDB:
		if (job_start_initdb(a, &e) != 0) {
			node_set_error(a, "cannot start initdb: %s", e.msg);
			agent_backoff(a);
			release_init(a);
		}
		break;
	case ACT_TAKE_LEADER:
		take_leader(a);
		break;
	case ACT_START_PRIMARY:
	case ACT_START_STANDBY:
		/* An old primary joining a leader: a standby archives nothing, so push what it holds first. */
		if (d->action == ACT_START_STANDBY && view_leader(a) != NULL &&
		    !arcgap_before_wal_loss(a, "starting as a standby")) {
			quick = true;
			break;
		}
		if (start_pg(a, d->action == ACT_START_STANDBY, &e) != 0) {
			node_set_error(a, "cannot start PostgreSQL: %s", e.msg);
			agent_backoff(a);
		}
		break;
	case ACT_FINISH_BOOTSTRAP:
		finish_bootstrap(a);
		break;
	case ACT_CLONE:
		if (job_start_basebackup(a, &e) != 0) {
			node_set_error(a, "cannot start pg_basebackup: %s", e.msg);
			agent_backoff(a);
		}
		break;
	case ACT_FOLLOW: {
		const struct member *leader = view_leader(a);
		if (leader != NULL)
			node_follow(a, leader);
		break;
	}
	case ACT_RESTORE_STOP:
		switch_wal_before_restore(a);
		/* fall through */
	case ACT_DEMOTE:
	case ACT_RESTART:
		log_warn("stopping PostgreSQL: %s", d->reason);
		if (node_stop(a, &e) != 0)
			node_set_error(a, "%s: %s", ha_action_name(d->action), e.msg);
		break;
	case ACT_REINIT:
		quick = reinit(a, d);
		break;
	case ACT_RESTORE_RUN:
		/* The restore replaces pg_wal: what the archive lacks of it goes there first. */
		if (!arcgap_before_wal_loss(a, "the in-place restore")) {
			quick = true;
			break;
		}
		rip_run(a);
		break;
	case ACT_RESTORE_FINISH:
		rip_finish(a);
		break;
	case ACT_PROMOTE:
		promote(a);
		failover_request_done(a);
		break;
	case ACT_LEADER_DUTIES:
		manage_slots(a);
		failover_request_done(a);
		quick = sync_leader_duties(a);
		break;
	case ACT_RELEASE_LEADER:
		release_leader(a);
		break;
	case ACT_REWIND: {
		if (!arcgap_before_wal_loss(a, "pg_rewind")) {
			quick = true;
			break;
		}
		int rc = job_start_rewind(a, &e);
		if (rc < 0) {
			node_set_error(a, "cannot start pg_rewind: %s", e.msg);
			agent_backoff(a);
		} else if (rc == 1) {
			a->act.backoff_until_ms = now_ms() + REWIND_RECHECK_MS;   /* look again soon, not in a tight loop */
		}
		break;
	}
	case ACT_RECLONE: {
		if (!arcgap_before_wal_loss(a, "the re-clone")) {
			quick = true;
			break;
		}
		char *aside = agent_diverged_aside(a);
		move_aside(a, aside, "diverged");
		free(aside);
		break;
	}
	case ACT_ELECT:
		break;   /* the loop polls the members and decides again */
	}
	return quick;
}

void agent_backoff(struct agent *a)
{
	a->act.backoff_until_ms = now_ms() + BACKOFF_MS;
}

void agent_act_free(struct agent *a)
{
	free(a->act.slots);
	a->act.slots = NULL;
	a->act.nslots = 0;
}

/* Called by the loop when a bootstrap job failed: let another member try. */
void agent_bootstrap_failed(struct agent *a)
{
	agent_backoff(a);
	release_init(a);
}
