/*
 * agent.c — `pgha agent`: setup, the HA loop (observe → decide → act →
 * publish) and a clean shutdown.
 */
#include "ha/agent.h"
#include "ha/agent_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "ha/failover.h"
#include "ha/switchover.h"
#include "pg/pgconf.h"

volatile int agent_stop_requested;
static volatile sig_atomic_t agent_reload_requested;
static int wake_fd_global = -1;

static void on_signal(int sig)
{
	if (sig == SIGTERM || sig == SIGINT)
		agent_stop_requested = 1;
	if (sig == SIGHUP)
		agent_reload_requested = 1;
	uint64_t one = 1;
	if (wake_fd_global >= 0 && write(wake_fd_global, &one, sizeof(one)) < 0) {
		/* nothing to do in a signal handler */
	}
}

static void on_watch(void *arg, const struct etcd_event *ev, int64_t revision)
{
	struct agent *a = arg;
	uint64_t one = 1;
	/*
	 * Every agent rewrites its member record when it changes; waking every
	 * other agent for each of those would make them ping-pong. Member updates
	 * are picked up by the periodic loop; everything else (leader,
	 * initialize, config, members leaving) wakes the loop at once.
	 */
	if (ev != NULL && ev->type == ETCD_EV_PUT && ev->kv != NULL &&
	    strncmp(ev->kv->key, a->keys.prefix, strlen(a->keys.prefix)) == 0 &&
	    strncmp(ev->kv->key + strlen(a->keys.prefix), "members/", 8) == 0)
		return;
	if (write(a->wake_fd, &one, sizeof(one)) < 0) {
		/* the loop wakes on its own timer anyway */
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha agent -c FILE [--log-level LEVEL]\n"
		"\n"
		"Run the agent beside one PostgreSQL: bootstrap or clone it, keep its member\n"
		"record and the leader key in etcd, and serve the health API.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE      the node's config file (required)\n"
		"      --log-level LEVEL  debug, info, warn or error (overrides the file)\n"
		"      --check            validate the config file and exit\n"
		"  -h, --help             this help, with every config option\n"
		"\n"
		"Config file options (INI; [parameters] takes any PostgreSQL setting):\n");
	config_print_help(&agent_config_table, out);
}

/*
 * A secret pgha writes into pgBackRest's config (the repository's passphrase,
 * the S3 keys): the whole file (one line end dropped), as pgBackRest reads it
 * from its config: no line breaks or control characters, no blank at either
 * end (it would be trimmed). what names it in errors, never its value.
 */
static int read_pgbr_secret(const char *path, const char *what, char **out, struct pgha_err *e)
{
	char *text = NULL;
	size_t len = 0;
	if (read_secret_text(path, &text, &len, e) != 0)
		return -1;
	size_t n = len;
	if (n > 0 && text[n - 1] == '\n')
		n--;
	if (n > 0 && text[n - 1] == '\r')
		n--;
	int rc = 0;
	if (n == 0)
		rc = err_set(e, "\"%s\": the %s is empty", path, what);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			rc = err_set(e, "\"%s\": the %s has a line break or control character (byte %zu)",
				     path, what, i + 1);
	if (rc == 0 && (text[0] == ' ' || text[n - 1] == ' '))
		rc = err_set(e, "\"%s\": the %s starts or ends with a blank, which pgBackRest would drop", path, what);
	if (rc == 0) {
		*out = xmalloc(n + 1);
		memcpy(*out, text, n);
		(*out)[n] = '\0';
	}
	secret_wipe_free(text, len);
	return rc;
}

static int load_secrets(struct agent *a, struct pgha_err *e)
{
	if (read_secret_file(a->cfg.superuser_password_file, &a->su_password, e) != 0)
		return err_wrap(e, "[postgresql] superuser_password_file");
	if (read_secret_file(a->cfg.replication_password_file, &a->repl_password, e) != 0)
		return err_wrap(e, "[postgresql] replication_password_file");
	if (a->cfg.etcd_username[0] != '\0' &&
	    read_secret_file(a->cfg.etcd_password_file, &a->etcd_password, e) != 0)
		return err_wrap(e, "[etcd] password_file");
	if (agent_config_backup_on(&a->cfg) && a->cfg.backup_cipher_pass_file[0] != '\0' &&
	    read_pgbr_secret(a->cfg.backup_cipher_pass_file, "passphrase", &a->cipher_pass, e) != 0)
		return err_wrap(e, "[backup] cipher_pass_file");
	if (a->cfg.backup_s3) {
		if (read_pgbr_secret(a->cfg.backup_s3_key_file, "access key", &a->s3_key, e) != 0)
			return err_wrap(e, "[backup] s3_key_file");
		if (read_pgbr_secret(a->cfg.backup_s3_key_secret_file, "secret key", &a->s3_key_secret, e) != 0)
			return err_wrap(e, "[backup] s3_key_secret_file");
	}
	if (agent_tls_check(&a->cfg, e) != 0)
		return err_wrap(e, "[tls]");
	if (a->cfg.api_token_file[0] != '\0') {
		if (read_secret_file(a->cfg.api_token_file, &a->api_token, e) != 0)
			return err_wrap(e, "[node] api_token_file");
		if (strlen(a->api_token) < 16)
			return err_set(e, "[node] api_token_file \"%s\": the token is shorter than 16 characters",
				       a->cfg.api_token_file);
	}
	return 0;
}

static void free_secrets(struct agent *a)
{
	secret_free(a->su_password);
	secret_free(a->repl_password);
	secret_free(a->etcd_password);
	secret_free(a->api_token);
	secret_free(a->cipher_pass);
	secret_free(a->s3_key);
	secret_free(a->s3_key_secret);
	a->su_password = a->repl_password = a->etcd_password = a->api_token = a->cipher_pass = NULL;
	a->s3_key = a->s3_key_secret = NULL;
}

static int setup_user(struct agent *a, struct pgha_err *e)
{
	if (geteuid() != 0) {
		log_info("running PostgreSQL as the current user (uid %d)", (int)geteuid());
		return 0;
	}
	if (strcmp(a->cfg.run_as, "root") == 0)
		return err_set(e, "[node] run_as = root: PostgreSQL must not run as root\n"
			       "HINT: set run_as to an unprivileged OS user (default postgres)");
	if (run_user_lookup(a->cfg.run_as, &a->user, e) != 0)
		return err_wrap(e, "[node] run_as");
	if (a->user.uid == 0)
		return err_set(e, "[node] run_as = %s has uid 0: PostgreSQL must not run as root", a->cfg.run_as);
	log_info("running as root: PostgreSQL runs as OS user %s (uid %d)", a->user.name, (int)a->user.uid);
	return 0;
}

static int setup(struct agent *a, struct pgha_err *e)
{
	job_init(a);
	a->arc.fd = -1;
	a->bk.fd = -1;
	if (load_secrets(a, e) != 0 || setup_user(a, e) != 0)
		return -1;
	struct pg_node *n = &a->node;
	n->bin_dir = a->cfg.bin_dir;
	n->data_dir = a->cfg.data_dir;
	n->socket_dir = a->cfg.socket_dir;
	n->log_file = a->cfg.log_file;
	n->listen_host = a->cfg.pg_host;
	n->port = a->cfg.pg_port;
	n->user = &a->user;
	n->superuser = a->cfg.superuser;
	n->superuser_password = a->su_password;
	n->application_name = "pgha-agent";
	n->start_timeout_ms = a->cfg.start_timeout_ms;
	n->stop_timeout_ms = a->cfg.stop_timeout_ms;
	agent_config_pg_tls(&a->cfg, &a->tls);
	char *postgres = path_join(a->cfg.bin_dir, "postgres");
	bool have_pg = access(postgres, X_OK) == 0;
	free(postgres);
	if (!have_pg)
		return err_set(e, "[postgresql] bin_dir = \"%s\": no executable postgres there\n"
			       "HINT: install PostgreSQL 15 (make deps) or point bin_dir at its binaries",
			       a->cfg.bin_dir);

	a->keys.prefix = xasprintf("%s/%s/", strcmp(a->cfg.etcd_prefix, "/") == 0 ? "" : a->cfg.etcd_prefix,
			      a->cfg.cluster_name);
	a->keys.leader = xasprintf("%sleader", a->keys.prefix);
	a->keys.init = xasprintf("%sinitialize", a->keys.prefix);
	a->keys.member = xasprintf("%smembers/%s", a->keys.prefix, a->cfg.name);
	a->keys.init_claim = xasprintf("init:%s", a->cfg.name);
	a->keys.config = xasprintf("%sconfig", a->keys.prefix);
	a->keys.failover = xasprintf("%sfailover", a->keys.prefix);
	a->keys.switchover = xasprintf("%sswitchover", a->keys.prefix);
	a->keys.proxies = xasprintf("%sproxies/", a->keys.prefix);
	a->keys.sync = xasprintf("%ssync", a->keys.prefix);
	a->keys.request = xasprintf("%srequests/%s", a->keys.prefix, a->cfg.name);
	backup_job_init(a);
	rip_init(a);
	history_init(a);
	dynconf_init(a);
	sync_init(a);
	failover_init(a);
	if (fencing_start(a, e) != 0)
		return -1;

	a->dcs.opts.endpoints = a->cfg.etcd_endpoints;
	a->dcs.opts.username = a->cfg.etcd_username;
	a->dcs.opts.password = a->etcd_password;
	a->dcs.opts.request_timeout_ms = a->cfg.etcd_request_timeout_ms;
	a->dcs.opts.deadline_ms = a->cfg.retry_timeout_ms;
	a->dcs.opts.ca_file = a->cfg.etcd_ca_file;
	a->dcs.opts.cert_file = a->cfg.etcd_cert_file;
	a->dcs.opts.key_file = a->cfg.etcd_key_file;
	a->dcs.opts.sync_interval_ms = a->cfg.etcd_sync_interval_ms;
	a->dcs.etcd = etcd_new(&a->dcs.opts, e);
	if (a->dcs.etcd == NULL)
		return err_wrap(e, "[etcd]");

	a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->wake_fd < 0)
		return err_set(e, "eventfd: %s", strerror(errno));
	wake_fd_global = a->wake_fd;

	api_source_init(&a->api, a->cfg.cluster_name);
	a->api.etcd = &a->dcs.opts;
	a->api.prefix = a->keys.prefix;
	a->api.token = a->api_token;
	SSL_CTX *api_tls;
	if (agent_tls_start(a, &api_tls, e) != 0)
		return -1;
	a->api_server = api_start(a->cfg.api_listen, &a->api, api_tls, e);
	if (a->api_server == NULL)
		return err_wrap(e, "[node] api_listen = %s", a->cfg.api_listen);
	log_info("API listening on %s", a->cfg.api_listen);
	if (pgmon_start(a, e) != 0)
		return -1;
	if (a->cfg.failsafe && a->api_token == NULL)
		log_warn("[cluster] failsafe is on but [node] api_token_file is not set: failsafe is off. Members "
			 "refuse POST /failsafe without the cluster's token, so a leader that loses etcd demotes "
			 "before its lease runs out; give every member the same api_token_file");

	a->dcs.watch = etcd_watch_start(&a->dcs.opts, a->keys.prefix, 0, on_watch, a, e);
	if (a->dcs.watch == NULL)
		return err_wrap(e, "starting the etcd watch");

	/* Replication and pg_basebackup read the passwords from this file, never from argv. */
	if (pg_write_pgpass(a->cfg.pgpass, &a->user, a->cfg.superuser, a->su_password,
			    a->cfg.replication_user, a->repl_password, e) != 0)
		return err_wrap(e, "[postgresql] pgpass");
	if (pg_write_tls_files(&a->node, &a->tls, e) != 0)
		return -1;
	/* [backup]: pgBackRest's config and the archive commands, before PostgreSQL first starts. */
	if (archive_setup(a, e) != 0)
		return -1;

	node_adopt(a);
	return 0;
}

/* ---- refresh and gather (I/O) ------------------------------------------ */

static void refresh_pg(struct agent *a)
{
	enum node_event ev = node_refresh(a);
	if ((ev == NODE_EXITED || ev == NODE_EXITED_STARTING) && a->fencing.fence && fence_fired(a->fencing.fence))
		log_warn("PostgreSQL was stopped by the fence: the leader lease could not be renewed in time");
	if (ev == NODE_EXITED_STARTING || ev == NODE_START_TIMEOUT)
		agent_backoff(a);
}

static void dcs_log_state(struct agent *a, const char *why)
{
	int64_t now = now_ms();
	if (!a->dcs.ok) {
		if (a->dcs.was_ok || now - a->dcs.last_log_ms >= 10000) {
			/* The list in use: after a member list sync it is not the configured one. */
			char *eps = etcd_endpoints_text(a->dcs.etcd);
			log_warn("etcd unreachable (%s): %s; retrying every %d ms", eps, why, a->cfg.loop_wait_ms);
			free(eps);
			a->dcs.last_log_ms = now;
		}
	} else if (!a->dcs.was_ok) {
		log_info("etcd reachable at %s", etcd_current_endpoint(a->dcs.etcd));
	}
	a->dcs.was_ok = a->dcs.ok;
}

/*
 * The ttl changed (dynamic config), but a keep-alive renews a lease for the
 * ttl it was granted with: move to a lease granted with the new one. The
 * leader key, if ours, moves in one transaction (compared on our name and the
 * old lease); the member record follows when it is next published, and the old
 * lease, kept alive no more, expires on its own. Fencing goes by the ttl of
 * the lease the key is under (a->dcs.lease_ttl_ms).
 */
static void switch_lease(struct agent *a)
{
	/* Not while bootstrapping: the initialize claim lives under the current lease. */
	if (a->view.initialize && strcmp(a->view.initialize, a->keys.init_claim) == 0)
		return;
	int64_t ttl_s = dynconf_lease_ttl_s(a), lease = 0;
	struct pgha_err e;
	if (etcd_lease_grant(a->dcs.etcd, ttl_s, &lease, &e) != 0) {
		log_warn("granting a lease with the new ttl (%llds): %s", (long long)ttl_s, e.msg);
		return;
	}
	struct etcd_cmp cmp[] = {
		{.key = a->keys.leader, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = a->cfg.name},
		{.key = a->keys.leader, .target = ETCD_CMP_LEASE, .result = ETCD_CMP_EQUAL, .number = a->dcs.lease},
	};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = a->keys.leader, .value = a->cfg.name, .lease = lease};
	bool moved = false;
	if (etcd_txn(a->dcs.etcd, cmp, 2, &put, 1, NULL, 0, &moved, NULL, &e) != 0) {
		log_warn("moving the leader key to a lease with the new ttl: %s", e.msg);
		if (etcd_lease_revoke(a->dcs.etcd, lease, &e) != 0)
			log_debug("revoking the unused lease: %s", e.msg);
		return;
	}
	log_info("etcd lease %lld (ttl %llds) replaces lease %lld (ttl %llds)%s", (long long)lease, (long long)ttl_s,
		 (long long)a->dcs.lease, (long long)(a->dcs.lease_ttl_ms / 1000), moved ? "; the leader key moved to it" : "");
	a->dcs.lease = lease;
	a->dcs.lease_ttl_ms = ttl_s * 1000;
}

static int ensure_lease(struct agent *a, struct pgha_err *e)
{
	if (a->dcs.lease != 0) {
		int rc = etcd_lease_keepalive(a->dcs.etcd, a->dcs.lease, NULL, e);
		if (rc == ETCD_OK) {
			if (a->dcs.lease_ttl_ms != dynconf_lease_ttl_s(a) * 1000)
				switch_lease(a);
			return 0;
		}
		if (rc != ETCD_ENOLEASE)
			return -1;
		log_warn("lease %lld expired; taking a new one", (long long)a->dcs.lease);
		a->dcs.lease = 0;
	}
	if (etcd_lease_grant(a->dcs.etcd, dynconf_lease_ttl_s(a), &a->dcs.lease, e) != 0)
		return -1;
	a->dcs.lease_ttl_ms = dynconf_lease_ttl_s(a) * 1000;
	log_info("etcd lease %lld granted (ttl %llds)", (long long)a->dcs.lease, (long long)dynconf_lease_ttl_s(a));
	return 0;
}

/* After an agent restart the leader key may still carry our name under the old lease. */
static void reattach_leader_key(struct agent *a)
{
	if (a->view.leader == NULL || strcmp(a->view.leader, a->cfg.name) != 0 ||
	    a->view.leader_lease == a->dcs.lease || !leader_key_may_reattach(a))
		return;
	struct etcd_cmp cmp[] = {
		{.key = a->keys.leader, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = a->cfg.name},
		{.key = a->keys.leader, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
		 .number = a->view.leader_mod_revision},
	};
	struct etcd_op put = {.type = ETCD_OP_PUT, .key = a->keys.leader, .value = a->cfg.name, .lease = a->dcs.lease};
	bool ok = false;
	struct pgha_err e;
	if (etcd_txn(a->dcs.etcd, cmp, 2, &put, 1, NULL, 0, &ok, NULL, &e) != 0) {
		log_warn("re-attaching the leader key: %s", e.msg);
		return;
	}
	if (ok) {
		log_info("leader key re-attached to this agent's lease %lld", (long long)a->dcs.lease);
		view_set_leader_lease(a, a->dcs.lease);
	}
}

static void refresh_dcs(struct agent *a)
{
	struct pgha_err e;
	struct etcd_kvs kvs = {0};
	a->dcs.ok = false;
	int64_t t0 = now_ms();
	if (ensure_lease(a, &e) != 0) {
		dcs_log_state(a, e.msg);
		return;
	}
	a->dcs.renew_sent_ms = t0;
	if (etcd_get_prefix(a->dcs.etcd, a->keys.prefix, &kvs, &e) != 0) {
		dcs_log_state(a, e.msg);
		return;
	}
	view_refresh(a, &kvs);
	/* The API thread gets its own copy of the view (handed over in publish). */
	cluster_view_free(&a->publish.api_view);
	cluster_view_from_kvs(a->keys.prefix, &kvs, &a->publish.api_view);
	cluster_view_sort(&a->publish.api_view);
	a->publish.have_api_view = true;
	if (leader_key_judge(a))
		view_leader_invalid(a);
	failover_read_dcs(a, &kvs);
	sync_read_dcs(a, &kvs);
	switchover_read_dcs(a, &kvs);
	dynconf_read_dcs(a, &kvs);
	ops_read_dcs(a, &kvs);
	etcd_kvs_free(&kvs);
	a->dcs.ok = true;
	dcs_log_state(a, "");
	reattach_leader_key(a);
}

/* Has the leader the replication slot this member clones through? */
static bool slot_on_leader(const struct agent *a)
{
	char slot[64];
	pg_slot_name(a->cfg.name, slot, sizeof(slot));
	char *ci = view_leader_conninfo(a, view_leader(a));
	struct pgha_err e;
	int r = pg_remote_slot_exists(ci, slot, &e);
	free(ci);
	if (r < 0)
		log_warn("checking slot %s on the leader: %s", slot, e.msg);
	return r == 1;
}

/*
 * Gather: the answers observe needs that take I/O, the clock or the API
 * thread's lock. What to ask depends on what is seen, so a first observation
 * without them says which questions matter.
 */
static void gather(struct agent *a, struct ha_gathered *g)
{
	memset(g, 0, sizeof(*g));
	g->now_ms = now_ms();
	g->failsafe_hold = fencing_failsafe_hold(a);
	node_adopt_upstream(a, view_leader(a));
	struct ha_observed o;
	observe(a, g, &o);
	if (o.leader_absent && o.pg == HA_PG_REPLICA)
		g->eligible = failover_eligible(a);
	if (o.data == HA_DATA_MISSING && o.leader_known && !o.leader_is_me && o.dcs_ok)
		g->slot_ready = slot_on_leader(a);
}

/* ---- publish ------------------------------------------------------------ */

/*
 * A standby cluster's leader says where it streams from and how far behind
 * the sender's reported end its replay is (ctl list, the proxies' hint, the
 * metric).
 */
static void source_of_standby_leader(struct member *m, const struct pg_status *st)
{
	m->has_source = true;
	m->source_lag_bytes = -1;
	m->source_msg_age_ms = st->last_msg_age_ms;
	/* Over TCP to [standby_cluster] primary_hosts; a socket path is no address to publish. */
	if (st->streaming && st->upstream_host[0] != '\0' && st->upstream_host[0] != '/' && st->upstream_port > 0)
		snprintf(m->source, sizeof(m->source), strchr(st->upstream_host, ':') ? "[%s]:%d" : "%s:%d",
			 st->upstream_host, st->upstream_port);
	if (st->sender_end_lsn > 0)
		m->source_lag_bytes = st->sender_end_lsn > st->replayed_lsn ?
			(int64_t)(st->sender_end_lsn - st->replayed_lsn) : 0;
}

static void build_self(struct agent *a, const struct ha_observed *o)
{
	struct member *m = &a->publish.self;
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", a->cfg.name);
	snprintf(m->host, sizeof(m->host), "%s", a->cfg.address_host);
	m->port = a->cfg.address_port;
	snprintf(m->api_url, sizeof(m->api_url), "%s://%s", a->cfg.api_tls ? "https" : "http", a->cfg.api_address);
	m->tls_not_after = a->atls.not_after;
	m->tags.nofailover = a->cfg.nofailover;
	m->tags.nosync = a->cfg.nosync;
	m->tags.noloadbalance = a->cfg.noloadbalance;
	m->tags.priority = a->cfg.priority;
	snprintf(m->tags.region, sizeof(m->tags.region), "%s", a->cfg.region);
	snprintf(m->tags.zone, sizeof(m->tags.zone), "%s", a->cfg.zone);
	m->updated_at = wall_s();
	m->lag_bytes = -1;
	snprintf(m->error, sizeof(m->error), "%s", a->pg.last_error[0] ? a->pg.last_error : a->dyn.error);
	m->pending_restart = a->dyn.pending_restart;
	snprintf(m->pending_params, sizeof(m->pending_params), "%s", a->dyn.pending_params);
	snprintf(m->diverged_copy, sizeof(m->diverged_copy), "%s", a->act.diverged_copy);
	snprintf(m->standby_of, sizeof(m->standby_of), "%s", view_standby_cluster(a) ? a->cfg.standby_primary_hosts : "");
	snprintf(m->archive, sizeof(m->archive), "%s", a->arc.state);
	snprintf(m->restore_id, sizeof(m->restore_id), "%s", a->rip.stopped_for);
	m->archived_at = a->arc.archived_at;
	if (a->arc.on) {
		snprintf(m->backup_host, sizeof(m->backup_host), "%s", a->arc.host_id);
		snprintf(m->pg_path, sizeof(m->pg_path), "%s", a->cfg.data_dir);
		snprintf(m->pg_socket, sizeof(m->pg_socket), "%s", a->cfg.socket_dir);
	}
	if (a->op.state != 0) {
		static const char *const op_states[] = {[OP_RUNNING] = "running", [OP_DONE] = "done", [OP_FAILED] = "failed"};
		snprintf(m->op_id, sizeof(m->op_id), "%s", a->op.id);
		snprintf(m->op_state, sizeof(m->op_state), "%s", op_states[a->op.state]);
	}

	if (o->data == HA_DATA_MISSING)
		m->role = ROLE_UNINITIALIZED;
	else
		m->role = o->data_standby ? ROLE_REPLICA : ROLE_PRIMARY;

	if (a->job.kind == JOB_INITDB)
		m->state = STATE_INITIALIZING;
	else if (a->job.kind == JOB_BASEBACKUP)
		m->state = STATE_CLONING;
	else if (a->job.kind == JOB_RESTORE || a->job.kind == JOB_RESTORE_INPLACE)
		m->state = STATE_RESTORING;
	else if (a->pg.phase == PG_STARTING)
		m->state = STATE_STARTING;
	else if (a->pg.phase == PG_STOPPED)
		m->state = a->pg.crashed ? STATE_CRASHED : a->pg.last_error[0] ? STATE_START_FAILED : STATE_STOPPED;
	else
		m->state = STATE_RUNNING;
	if (a->pg.phase == PG_STOPPED && !a->pg.crashed && a->pg.last_error[0] == '\0')
		m->state = a->job.kind == JOB_NONE ? STATE_STOPPED : m->state;

	if (a->pg.phase != PG_RUNNING || !a->pg.have_st) {
		/* Started again, the first look only learns where replay is. */
		memset(&a->publish.replay, 0, sizeof(a->publish.replay));
		a->publish.self_archive_replay = false;
	}
	if (a->pg.phase == PG_RUNNING && a->pg.have_st) {
		m->role = a->pg.st.in_recovery ? ROLE_REPLICA : ROLE_PRIMARY;
		m->timeline = a->pg.st.timeline;
		m->wal_lsn = a->pg.st.wal_lsn;
		m->received_lsn = a->pg.st.received_lsn;
		m->replayed_lsn = a->pg.st.replayed_lsn;
		snprintf(m->system_id, sizeof(m->system_id), "%s", a->pg.st.system_id);
		snprintf(m->pg_version, sizeof(m->pg_version), "%d", a->pg.st.server_version);
		if (a->pg.st.in_recovery && a->pg.st.streaming)
			m->state = STATE_STREAMING;
		bool was = a->publish.self_archive_replay;
		m->archive_replay = ha_archive_replay(&a->publish.replay, a->pg.st.in_recovery, a->pg.st.streaming,
						      m->received_lsn, m->replayed_lsn, now_ms());
		if (m->archive_replay && !was)
			log_info("catching up from the WAL archive: not streaming, replay past what was received");
		else if (!m->archive_replay && was)
			log_info("no longer replaying from the WAL archive%s", a->pg.st.streaming ? " (streaming)" : "");
		a->publish.self_archive_replay = m->archive_replay;
		if (a->pg.st.in_recovery) {
			const struct member *leader = view_leader(a);
			uint64_t pos = m->received_lsn > m->replayed_lsn ? m->received_lsn : m->replayed_lsn;
			if (leader && leader->wal_lsn > 0)
				m->lag_bytes = leader->wal_lsn > pos ? (int64_t)(leader->wal_lsn - pos) : 0;
		} else {
			m->lag_bytes = 0;
		}
		if (m->standby_of[0] != '\0' && o->leader_is_me)
			source_of_standby_leader(m, &a->pg.st);
	} else if (a->pg.data.kind == PG_DATA_VALID) {
		m->timeline = a->pg.data.timeline;
		snprintf(m->system_id, sizeof(m->system_id), "%s", a->pg.data.system_id);
	}
}

/* What /metrics counts, kept across loops in a->publish. */
static void count_for_metrics(struct agent *a, struct api_status *st)
{
	struct agent_publish *p = &a->publish;
	int64_t now = now_ms();
	if (p->loop_start_ms > 0)
		p->loop_ms = now - p->loop_start_ms;
	if (a->dcs.ok) {
		p->etcd_ok_s = wall_s();
		/* A new holder after another one (a gap without a leader in between or not). */
		const char *leader = a->view.leader;
		if (leader != NULL && strcmp(leader, p->seen_leader) != 0) {
			if (p->seen_leader[0] != '\0')
				p->leader_changes++;
			snprintf(p->seen_leader, sizeof(p->seen_leader), "%s", leader);
		}
	}
	bool primary_leader = st->holds_leader_key && st->self.role == ROLE_PRIMARY && st->self.state == STATE_RUNNING;
	if (primary_leader && !p->was_primary_leader) {
		p->promotions++;
		history_became_leader(a);
	}
	p->was_primary_leader = primary_leader;
	st->loop_ms = p->loop_ms;
	st->loops = p->loops;
	st->leader_changes = p->leader_changes;
	st->promotions = p->promotions;
	st->etcd_ok_s = p->etcd_ok_s;
	st->started_s = p->started_s;
	st->lease_left_ms = a->dcs.lease != 0 && a->dcs.renew_sent_ms > 0
			    ? a->dcs.renew_sent_ms + a->dcs.lease_ttl_ms - now : -1;
	if (st->lease_left_ms < -1)
		st->lease_left_ms = 0;
}

static void publish(struct agent *a, const struct ha_observed *o)
{
	build_self(a, o);
	if (a->dcs.ok && a->dcs.lease != 0) {
		/* Write when something changed, and at least every ttl/2 to refresh updated_at. */
		struct member cmp = a->publish.self;
		cmp.updated_at = 0;
		char *key = member_encode(&cmp);
		int64_t now = now_ms();
		bool changed = a->publish.last == NULL || strcmp(a->publish.last, key) != 0 ||
			       a->publish.lease != a->dcs.lease || now - a->publish.ms >= a->cfg.ttl_ms / 2;
		if (changed) {
			char *json = member_encode(&a->publish.self);
			struct pgha_err e;
			if (etcd_put(a->dcs.etcd, a->keys.member, json, a->dcs.lease, &e) != 0) {
				log_warn("publishing the member record: %s", e.msg);
				a->dcs.ok = false;
				free(key);
				key = NULL;
			}
			free(json);
			free(a->publish.last);
			a->publish.last = key;
			a->publish.lease = a->dcs.lease;
			a->publish.ms = now;
		} else {
			free(key);
		}
	}
	struct api_status st;
	memset(&st, 0, sizeof(st));
	st.self = a->publish.self;
	st.holds_leader_key = o->leader_is_me && a->dcs.ok;
	st.etcd_reachable = a->dcs.ok;
	st.paused = a->fo.paused;
	st.failsafe_active = !a->dcs.ok && a->fencing.failsafe_ok;
	const struct member *leader = view_leader(a);
	st.leader_lsn = leader ? leader->wal_lsn : 0;
	st.last_loop_ms = now_ms();
	st.ttl_s = a->cfg.ttl_ms / 1000;
	st.tls_cert_file = a->cfg.tls_cert_file[0] ? a->cfg.tls_cert_file : NULL;
	st.api_tls = a->cfg.api_tls;
	count_for_metrics(a, &st);
	if (a->view.leader)
		snprintf(st.leader, sizeof(st.leader), "%s", a->view.leader);
	if (a->publish.have_api_view) {
		api_source_update(&a->api, &st, &a->publish.api_view);
		a->publish.have_api_view = false;
	} else {
		api_source_update(&a->api, &st, NULL);
	}
}

/* ---- loop --------------------------------------------------------------- */

static void wait_for_events(struct agent *a)
{
	int timeout = a->cfg.loop_wait_ms;
	if (a->pg.phase == PG_STARTING || a->job.kind != JOB_NONE)
		timeout = timeout > 250 ? 250 : timeout;
	if (a->publish.quick_retry)
		timeout = timeout > 100 ? 100 : timeout;
	struct pollfd pfd[2] = {{.fd = a->wake_fd, .events = POLLIN}, {.fd = a->job.fd, .events = POLLIN}};
	int n = poll(pfd, a->job.fd >= 0 ? 2 : 1, timeout);
	if (n > 0 && (pfd[0].revents & POLLIN)) {
		uint64_t v;
		if (read(a->wake_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: someone else drained it */
		}
	}
}

static void log_decision(struct agent *a, const struct ha_decision *d)
{
	if (d->action == a->publish.last_decision.action && d->reason == a->publish.last_decision.reason)
		return;
	if (d->action != ACT_LEADER_DUTIES && d->action != ACT_REPLICA_DUTIES)
		log_info("%s: %s", ha_action_name(d->action), d->reason);
	else
		log_info("role: %s", d->reason);
	a->publish.last_decision = *d;
}

static void run_loop(struct agent *a)
{
	a->publish.started_s = wall_s();
	while (!agent_stop_requested && !a->act.fatal) {
		a->publish.loop_start_ms = now_ms();
		a->publish.loops++;
		if (agent_reload_requested) {
			agent_reload_requested = 0;
			agent_tls_reload(a);
		}
		bool ok = false;
		enum job_kind kind = a->job.kind;
		if (job_poll(a, &ok) == 1) {
			if (kind == JOB_BASEBACKUP)
				ops_clone_finished(a, ok);
			if (kind == JOB_RESTORE_INPLACE) {
				refresh_dcs(a);   /* compared on the record's revision as it is now */
				rip_step(a);
				rip_job_finished(a, a->job.last_exit);
			}
			if (!ok) {
				agent_backoff(a);
				if (a->view.initialize && strcmp(a->view.initialize, a->keys.init_claim) == 0)
					agent_bootstrap_failed(a);
			}
		}
		/* Refresh: read etcd, PostgreSQL and the data directory into the agent's state. */
		refresh_dcs(a);
		refresh_pg(a);
		node_inspect_data(a);
		/* What each concern does on its own each loop, before the decision. */
		node_note_running(a);
		fencing_update(a);
		fencing_failsafe_round(a);
		divergence_check(a);
		agent_diverged_copy_step(a);
		switchover_step(a);
		dynconf_step(a);
		archive_step(a);
		arcgap_step(a);
		backup_job_step(a);
		rip_step(a);
		history_step(a);
		/* Observe (no side effect, from what was gathered) -> decide (pure) -> act -> publish. */
		struct ha_gathered g;
		gather(a, &g);
		struct ha_observed o;
		observe(a, &g, &o);
		struct ha_decision d = ha_decide(&o);
		/* A planned switchover waits for the candidate's WAL position: look again soon. */
		a->publish.quick_retry = o.handover_wait;
		if (d.action == ACT_ELECT) {
			o.election = failover_elect(a);
			d = ha_decide(&o);
			/* Everyone woke on the same watch event: ask again as soon as they have looked. */
			a->publish.quick_retry = o.election == HA_ELECT_UNSETTLED;
		}
		if (view_standby_cluster(a))
			d = ha_decide_standby_cluster(&o, d);
		log_decision(a, &d);
		if (agent_act(a, &d))
			a->publish.quick_retry = true;
		ops_step(a, &d);
		if (d.action == ACT_CLONE || d.action == ACT_INITDB || d.action == ACT_START_PRIMARY ||
		    d.action == ACT_START_STANDBY || d.action == ACT_TAKE_LEADER || d.action == ACT_DEMOTE ||
		    d.action == ACT_PROMOTE || d.action == ACT_RELEASE_LEADER || d.action == ACT_REWIND ||
		    d.action == ACT_RECLONE || d.action == ACT_RESTART || d.action == ACT_REINIT ||
		    d.action == ACT_RESTORE_STOP || d.action == ACT_RESTORE_RUN || d.action == ACT_RESTORE_FINISH) {
			/* Publish the new state at once, then look again without sleeping. */
			refresh_pg(a);
			gather(a, &g);
			observe(a, &g, &o);
			publish(a, &o);
			continue;
		}
		publish(a, &o);
		wait_for_events(a);
	}
}

static void shutdown_agent(struct agent *a)
{
	struct pgha_err e;
	log_info("shutting down");
	pgmon_stop(a);
	if (a->dcs.watch) {
		etcd_watch_stop(a->dcs.watch);
		a->dcs.watch = NULL;
	}
	job_abort(a);
	bool was_leader = a->view.leader && strcmp(a->view.leader, a->cfg.name) == 0;
	if (a->pg.pid > 0 && node_stop(a, &e) != 0)
		log_error("%s", e.msg);
	if (a->dcs.etcd) {
		bool done;
		if (was_leader) {
			/* After the clean shutdown the standbys have every WAL record we wrote. */
			if (etcd_delete_if_value(a->dcs.etcd, a->keys.leader, a->cfg.name, &done, &e) != 0)
				log_warn("releasing the leader key: %s", e.msg);
			else if (done)
				log_info("leader key released");
		}
		if (a->view.initialize && strcmp(a->view.initialize, a->keys.init_claim) == 0 &&
		    etcd_delete_if_value(a->dcs.etcd, a->keys.init, a->keys.init_claim, &done, &e) != 0)
			log_warn("releasing the initialize claim: %s", e.msg);
		if (etcd_delete(a->dcs.etcd, a->keys.member, NULL, &e) != 0)
			log_warn("removing the member record: %s", e.msg);
		if (a->dcs.lease != 0 && etcd_lease_revoke(a->dcs.etcd, a->dcs.lease, &e) != 0)
			log_warn("revoking lease: %s", e.msg);
	}
	if (a->api_server)
		api_stop(a->api_server);
	fencing_stop(a);
	log_info("stopped");
}

static void agent_free(struct agent *a)
{
	pgmon_stop(a);
	node_free(a);
	if (a->dcs.etcd)
		etcd_free(a->dcs.etcd);
	view_free(a);
	cluster_view_free(&a->publish.api_view);
	api_source_destroy(&a->api);
	free_secrets(a);
	agent_tls_free(a);
	free(a->keys.prefix);
	free(a->keys.leader);
	free(a->keys.init);
	free(a->keys.member);
	free(a->keys.init_claim);
	free(a->keys.config);
	free(a->keys.failover);
	free(a->keys.switchover);
	free(a->keys.proxies);
	switchover_free(a);
	free(a->keys.sync);
	free(a->keys.request);
	dynconf_free(a);
	sync_forget_leadership(a);
	free(a->publish.last);
	agent_act_free(a);
	backup_job_free(a);
	rip_free(a);
	history_free_agent(a);
	archive_free(a);
	arcgap_free(a);
	job_free(a);
	if (a->wake_fd > 0)
		close(a->wake_fd);
	agent_config_free(&a->cfg);
}

int agent_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"log-level", required_argument, NULL, 'l'},
		{"check", no_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *path = NULL, *level = NULL;
	bool check_only = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'l': level = optarg; break;
		case 'k': check_only = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "pgha agent: -c FILE is required\n");
		usage(stderr);
		return 2;
	}
	static struct agent agent;
	struct agent *a = &agent;
	struct pgha_err e;
	if (agent_config_load(path, &a->cfg, &e) != 0) {
		fprintf(stderr, "pgha agent: %s\n", e.msg);
		agent_config_free(&a->cfg);
		return 2;
	}
	if (check_only) {
		/* Everything the real start reads: a missing or unsafe secret file fails here too. */
		int rc = load_secrets(a, &e);
		if (rc != 0)
			fprintf(stderr, "pgha agent: %s: %s\n", path, e.msg);
		else
			printf("%s: OK\n", path);
		free_secrets(a);
		agent_config_free(&a->cfg);
		return rc != 0 ? 2 : 0;
	}
	log_set_level((enum log_level)a->cfg.log_level);
	if (level != NULL) {
		enum log_level l;
		if (log_parse_level(level, &l) != 0) {
			fprintf(stderr, "pgha agent: --log-level %s: use debug, info, warn or error\n", level);
			return 2;
		}
		log_set_level(l);
	}
	log_set_format((enum log_format)a->cfg.log_format);
	log_set_identity("agent", a->cfg.cluster_name, a->cfg.name);
	char ctx[96];
	snprintf(ctx, sizeof(ctx), "agent %s", a->cfg.name);
	log_set_context(ctx);

	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("starting: cluster %s, data directory %s, etcd %s", a->cfg.cluster_name, a->cfg.data_dir,
		 a->cfg.etcd_endpoints);
	int code = 0;
	if (setup(a, &e) != 0) {
		log_fatal("%s", e.msg);
		code = 1;
	} else {
		run_loop(a);
		if (a->act.fatal)
			code = 1;
	}
	shutdown_agent(a);
	agent_free(a);
	return code;
}
