/*
 * view.c — what this loop's read of etcd (struct cluster_view) says about
 * the leader, for every file of the agent.
 */
#include "ha/agent_int.h"

#include <string.h>

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
			   a->cfg.name, NULL);
}
