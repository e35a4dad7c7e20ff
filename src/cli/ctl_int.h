/*
 * ctl_int.h — what the ctl commands share: where the cluster is, and how to
 * read it.
 */
#ifndef PGHA_CLI_CTL_INT_H
#define PGHA_CLI_CTL_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cluster/member.h"
#include "common/err.h"
#include "dcs/etcd.h"

struct ctl_target {
	char *endpoints;
	char *cluster;
	char *prefix;
	char *user;
	char *password;
	char *ca_file, *cert_file, *key_file;  /* etcd client TLS (paths; NULL: none) */
	int timeout_ms;
	/* From -c FILE with [backup] repo_path set: the member's pgBackRest configuration, its run user. */
	char *backup_conf;
	char *run_as;
	char *config_path;        /* -c FILE, as given */
};

/*
 * The files of src/cli, top down: ctl.c (options, dispatch) calls the
 * commands; ctl_edit.c calls ctl_set.c (ctl_config_change), ctl_restart.c
 * calls ctl_switchover.c (ctl_switchover_run), ctl_backups.c calls
 * ctl_restore.c (the in-place restore); every one calls ctl_common.c,
 * which calls none of them.
 */

/* ctl_common.c */
/* Where a member's config file (-c) says its cluster is: etcd, its credentials, the cluster. */
int ctl_target_from_config(struct ctl_target *t, const char *path, struct pgha_err *e);
void ctl_target_free(struct ctl_target *t);
char *ctl_cluster_prefix(const struct ctl_target *t);
struct etcd_client *ctl_etcd(const struct ctl_target *t, struct pgha_err *e);
/* One range read of the cluster; *raw (if not NULL) receives the kvs (caller frees). */
int ctl_read_view(const struct ctl_target *t, struct cluster_view *v, struct etcd_kvs *raw,
		  struct pgha_err *e);
bool ctl_confirm(const char *question, bool force);
/* Write cfg to the config key only if it still has kv's revision (kv NULL: still absent). */
int ctl_config_put_cas(struct etcd_client *c, const char *key, const struct etcd_kv *kv, json_t *cfg, bool *ok,
		       struct pgha_err *e);

/* ctl_backup.c */
int ctl_cmd_backup(const struct ctl_target *t, int argc, char **argv);

/* ctl_backups.c */
int ctl_cmd_backups(const struct ctl_target *t, int argc, char **argv);
/* `ctl restore`: the target checked against the recoverable window, then a new cluster. */
int ctl_cmd_restore(const struct ctl_target *t, int argc, char **argv);

/* ctl_restore.c */
struct restore_target;
struct backup_entry;
/* ctl restore --in-place, the target already checked against the window (b: the backup it starts from). */
int ctl_restore_in_place(const struct ctl_target *t, const struct restore_target *target,
			 const struct backup_entry *b, bool force, long wait_s);
int ctl_restore_cancel(const struct ctl_target *t);

/* ctl_list.c */
int ctl_cmd_list(const struct ctl_target *t, int argc, char **argv);
/* `ctl history [--json]`: the leader changes (cluster/history_key.h). */
int ctl_cmd_history(const struct ctl_target *t, int argc, char **argv);

/* ctl_ops.c */
int ctl_cmd_pause(const struct ctl_target *t, bool pause, int argc, char **argv);
int ctl_cmd_failover(const struct ctl_target *t, int argc, char **argv);
/* ctl_switchover.c */
int ctl_cmd_switchover(const struct ctl_target *t, int argc, char **argv);
/*
 * A switchover from the current leader to `to` at at_ms (unix ms, 0 now): the
 * checks, confirmation (unless force), the request, and (wait) its phases
 * followed for wait_s after it is due. An exit code. Also `ctl restart`'s.
 */
int ctl_switchover_run(const struct ctl_target *t, struct etcd_client *c, const char *to, int64_t at_ms, bool force,
		       bool wait, long wait_s);

/* ctl_promote.c */
int ctl_cmd_promote_cluster(const struct ctl_target *t, int argc, char **argv);
int ctl_cmd_demote_cluster(const struct ctl_target *t, int argc, char **argv);
/* ctl_switch_cluster.c */
int ctl_cmd_switchover_cluster(const struct ctl_target *t, int argc, char **argv);

/* ctl_set.c */
int ctl_cmd_set(const struct ctl_target *t, int argc, char **argv);
/* Change *cfg (a copy of the config key's object; may be replaced): 0, or an exit code with e set. */
typedef int (*ctl_config_edit_fn)(json_t **cfg, void *arg, struct pgha_err *e);
/*
 * Read the config key, let edit change a copy, show the changes, confirm
 * (unless force), write it only if the key kept its revision; with attempts >
 * 1 a concurrent change makes it start again (confirmed once). An exit code.
 */
int ctl_config_change(const struct ctl_target *t, const char *cmd, ctl_config_edit_fn edit, void *arg, bool force,
		      int attempts);
/* ctl_edit.c */
int ctl_cmd_edit_config(const struct ctl_target *t, int argc, char **argv);
/* ctl_restart.c */
int ctl_cmd_restart(const struct ctl_target *t, int argc, char **argv);
int ctl_cmd_reinit(const struct ctl_target *t, int argc, char **argv);

#endif
