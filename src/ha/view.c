/*
 * view.c — this loop's read of etcd (a->view, struct cluster_view): kept
 * from the prefix read, corrected by what the agent itself did to the leader
 * key since, and what it says about the leader.
 */
#include "ha/agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	return agent_config_standby_cluster(&a->cfg);
}

char *view_primary_cluster_conninfo(const struct agent *a, char *slot, size_t slotlen)
{
	snprintf(slot, slotlen, "%s", a->cfg.standby_primary_slot);
	return pg_conninfo_primary_of(a->cfg.standby_hosts, a->cfg.standby_ports, a->cfg.replication_user,
				      a->cfg.pgpass, a->cfg.name, &a->tls);
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
	cluster_view_free(&a->view);
}
