/*
 * view.c — this loop's read of etcd (a->view, struct cluster_view): kept
 * from the prefix read, corrected by what the agent itself did to the leader
 * key since, and what it says about the leader.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/promoted_key.h"
#include "common/log.h"
#include "common/util.h"

#include "pg/pgconf.h"

const struct member *view_leader(const struct agent *a)
{
	if (a->view.leader == NULL)
		return NULL;
	return cluster_view_member(&a->view, a->view.leader);
}

char *view_leader_conninfo(const struct agent *a, const struct member *leader)
{
	return pg_conninfo(leader->host, leader->port, a->cfg.replication_user, a->cfg.pgpass,
			   a->cfg.name, NULL, &a->tls);
}

bool view_standby_cluster(const struct agent *a)
{
	return agent_config_standby_cluster(&a->cfg) && !a->sc_promoted;
}

/* The promoted key (cluster/promoted_key.h): only a record that decodes promotes. */
static void promoted_read(struct agent *a, bool was)
{
	a->sc_promoted = false;
	const char *v = a->view.promoted;
	if (!agent_config_standby_cluster(&a->cfg) || v == NULL)
		return;
	struct promoted_rec r;
	struct pgha_err e;
	if (promoted_decode(v, &r, &e) != 0) {
		if (a->sc_bad_promoted == NULL || strcmp(a->sc_bad_promoted, v) != 0) {
			log_warn("%spromoted is ignored, this stays a standby cluster: %s\nHINT: promote it with `pgha "
				 "ctl promote-cluster`", a->keys.prefix, e.msg);
			free(a->sc_bad_promoted);
			a->sc_bad_promoted = xstrdup(v);
		}
		return;
	}
	a->sc_promoted = true;
	if (!was)
		log_warn("this standby cluster was promoted (%s, at %lld, id %s): it is a cluster of its own now; "
			 "[standby_cluster] is ignored while %spromoted exists", r.by, (long long)r.at, r.id, a->keys.prefix);
}

static void promoted_refresh(struct agent *a)
{
	bool was = a->sc_promoted;
	promoted_read(a, was);
	/*
	 * restore_command reads the primary cluster's stanza only while this is a
	 * standby cluster: pgha.conf is rewritten and reloaded (dynconf.c) when
	 * that changes, on every member.
	 */
	if (was != a->sc_promoted && a->arc.restore_command_standby != NULL) {
		log_info("restore_command now reads stanza %s", a->sc_promoted ? a->cfg.cluster_name
			 : a->cfg.standby_archive_stanza);
		a->dyn.params_dirty = true;
	}
}

char *view_primary_cluster_conninfo(const struct agent *a, char *slot, size_t slotlen)
{
	snprintf(slot, slotlen, "%s", a->cfg.standby_primary_slot);
	return pg_conninfo_primary_of(a->cfg.standby_hosts, a->cfg.standby_ports, a->cfg.replication_user,
				      a->cfg.pgpass, a->cfg.name, NULL, &a->tls);
}

char *view_upstream_conninfo(const struct agent *a, const struct member *leader, char *slot, size_t slotlen)
{
	slot[0] = '\0';
	if (leader == NULL)
		return NULL;
	if (strcmp(leader->name, a->cfg.name) != 0) {
		pg_slot_name(a->cfg.name, slot, slotlen);
		return view_leader_conninfo(a, leader);
	}
	return view_standby_cluster(a) ? view_primary_cluster_conninfo(a, slot, slotlen) : NULL;
}

void view_refresh(struct agent *a, const struct etcd_kvs *kvs)
{
	cluster_view_free(&a->view);
	cluster_view_from_kvs(a->keys.prefix, kvs, &a->view);
	cluster_view_sort(&a->view);
	promoted_refresh(a);
}

/* This agent took (name) or gave up (NULL) the leader key since the read. */
void view_set_leader(struct agent *a, const char *name)
{
	free(a->view.leader);
	a->view.leader = name ? xstrdup(name) : NULL;
}

void view_set_leader_lease(struct agent *a, int64_t lease)
{
	a->view.leader_lease = lease;
}

/* The leader key names no leader (leader_key.c): keep its value only to replace it. */
void view_leader_invalid(struct agent *a)
{
	free(a->view.leader_invalid);
	a->view.leader_invalid = a->view.leader;
	a->view.leader = NULL;
}

void view_free(struct agent *a)
{
	free(a->sc_bad_promoted);
	a->sc_bad_promoted = NULL;
	cluster_view_free(&a->view);
}
