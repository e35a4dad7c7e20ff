/*
 * ctl_switch_cluster.c — `pgha ctl switchover-cluster`: a planned swap of a
 * primary cluster and its standby cluster (a region switch), either way,
 * without a re-clone and with a pause instead of client errors.
 *
 * Both clusters name the other's members in [standby_cluster] primary_hosts;
 * the one that is primary holds its `promoted` key. ctl, reaching both
 * clusters' etcd (one member config file each), moves a switchover record
 * with "kind": "cluster" in both:
 *   pausing    every proxy of both clusters holds new read-write
 *              transactions and reports paused;
 *   demoting   the old primary cluster's promoted key is deleted: its leader
 *              stops cleanly (the shutdown checkpoint is its last record) and
 *              starts again as a standby of the other cluster;
 *              ctl reads where the old leader's WAL ends (IDENTIFY_SYSTEM,
 *              read-only now) and waits until the new cluster's standby
 *              leader has flushed that far, on that timeline: checked, not
 *              assumed;
 *   promoting  the new cluster's promoted key is written: its leader promotes
 *              through the normal path;
 *   done       the proxies resume; writes go to the new primary cluster.
 * A step past its deadline aborts: the old cluster's promoted key is written
 * back (its leader promotes again; the standby cluster follows the new
 * timeline) and both records say aborted.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl_int.h"
#include "cluster/backup_key.h"
#include "cluster/promoted_key.h"
#include "cluster/switchover.h"
#include "common/util.h"
#include "ha/agent_config.h"

/* Proxies pause within this (they wait for running read-write transactions to end). */
#define PAUSE_MS 10000
/* From the pause to the new primary: below a proxy's default switchover_hold (30 s). */
#define SWITCH_MS 25000
/* The standby leader must be this close to the old primary before anything stops. */
#define MAX_LAG_BYTES (16 * 1024 * 1024)

static int usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl -c PRIMARY-MEMBER.conf switchover-cluster --to STANDBY-MEMBER.conf\n"
		"       [--force] [--json]\n\n"
		"Swap a primary cluster and its standby cluster (a planned region switch). -c is a\n"
		"member config of the cluster that is primary now, --to one of its standby cluster.\n"
		"Both clusters need [standby_cluster] primary_hosts naming the other's members (the\n"
		"primary one runs as a cluster of its own through its promoted key).\n\n"
		"Steps, each bounded: both clusters' proxies hold new read-write transactions; the\n"
		"primary cluster's leader stops cleanly and restarts as a standby of the other\n"
		"cluster; once the standby leader has every byte of its WAL (checked), the standby\n"
		"cluster promotes; the proxies resume. Clients see a pause, not errors. A step past\n"
		"its deadline puts the old primary cluster back.\n"
		"--force skips the confirmation and the check that each cluster's primary_hosts name\n"
		"the other's leader.\n");
	return out == stdout ? 0 : 2;
}

/* One cluster: its member config, its etcd, its keys. */
struct side {
	const char *path;
	struct ctl_target t;
	struct agent_config cfg;
	bool cfg_loaded;
	struct etcd_client *c;
	char *password;           /* [postgresql] replication_password_file */
	char *prefix, *so_key, *promoted_key;
	char *so_raw;             /* the switchover record as last written or read */
	struct cluster_view v;
	bool have_view;
};

static int side_open(struct side *s, const char *path, struct pgha_err *e)
{
	s->path = path;
	if (ctl_target_from_config(&s->t, path, e) != 0)
		return err_wrap(e, "%s", path);
	if (agent_config_load(path, &s->cfg, e) != 0)
		return err_wrap(e, "%s", path);
	s->cfg_loaded = true;
	if (read_secret_file(s->cfg.replication_password_file, &s->password, e) != 0)
		return err_wrap(e, "%s: [postgresql] replication_password_file", path);
	if ((s->c = ctl_etcd(&s->t, e)) == NULL)
		return err_wrap(e, "%s: etcd", path);
	s->prefix = ctl_cluster_prefix(&s->t);
	s->so_key = xasprintf("%sswitchover", s->prefix);
	s->promoted_key = xasprintf("%spromoted", s->prefix);
	return 0;
}

static void side_close(struct side *s)
{
	if (s->have_view)
		cluster_view_free(&s->v);
	free(s->so_raw);
	free(s->prefix);
	free(s->so_key);
	free(s->promoted_key);
	secret_free(s->password);
	etcd_free(s->c);
	if (s->cfg_loaded)
		agent_config_free(&s->cfg);
	ctl_target_free(&s->t);
}

static int side_read(struct side *s, struct pgha_err *e)
{
	struct etcd_kvs kvs = {0};
	if (etcd_get_prefix(s->c, s->prefix, &kvs, e) != 0)
		return err_wrap(e, "reading cluster %s from etcd", s->t.cluster);
	if (s->have_view)
		cluster_view_free(&s->v);
	cluster_view_from_kvs(s->prefix, &kvs, &s->v);
	cluster_view_sort(&s->v);
	s->have_view = true;
	etcd_kvs_free(&kvs);
	return 0;
}

static const struct member *side_leader(const struct side *s)
{
	return s->v.leader ? cluster_view_member(&s->v, s->v.leader) : NULL;
}

/* Is host:port one of the [standby_cluster] primary_hosts of cfg? */
static bool names_host(const struct agent_config *cfg, const char *host, int port)
{
	char *hosts = xstrdup(cfg->standby_hosts), *ports = xstrdup(cfg->standby_ports);
	char *hs = NULL, *ps = NULL;
	bool found = false;
	for (char *h = strtok_r(hosts, ",", &hs), *p = strtok_r(ports, ",", &ps); h && p && !found;
	     h = strtok_r(NULL, ",", &hs), p = strtok_r(NULL, ",", &ps))
		found = strcmp(h, host) == 0 && atoi(p) == port;
	free(hosts);
	free(ports);
	return found;
}

static void tls_of(const struct side *s, struct pg_tls *tls)
{
	agent_config_pg_tls(&s->cfg, tls);
}

/* Where a member's PostgreSQL WAL ends, asked with this side's replication user. */
static int position(const struct side *s, const struct member *m, struct wal_position *p, char *why, size_t len)
{
	struct pg_tls tls;
	tls_of(s, &tls);
	return promoted_probe_position(m->host, m->port, s->cfg.replication_user, s->password, &tls, p, why, len);
}

/* ---- the records ---------------------------------------------------------- */

struct run {
	struct side *from, *to;
	struct switchover so;
	int64_t started_ms, paused_ms, demoted_ms, caught_up_ms, promoted_ms, done_ms;
	struct wal_position old_end, new_pos;
	char old_leader[MEMBER_NAME_MAX], new_leader[MEMBER_NAME_MAX];
	bool json;
};

/* Create the record, or replace a finished one (or one that does not decode). */
static int record_create(struct side *s, const struct switchover *so, struct pgha_err *e)
{
	char *json = switchover_encode(so);
	struct etcd_kvs kvs = {0};
	int rc = -1;
	bool done = false;
	if (etcd_get(s->c, s->so_key, &kvs, e) != 0)
		goto out;
	if (kvs.count == 0) {
		if (etcd_create(s->c, s->so_key, json, 0, &done, e) != 0)
			goto out;
	} else {
		struct switchover old;
		struct pgha_err ignored;
		if (switchover_decode(kvs.kvs[0].value, kvs.kvs[0].value_len, &old, &ignored) == 0 &&
		    old.phase != SO_DONE && old.phase != SO_ABORTED) {
			err_set(e, "cluster %s: switchover %s (%s -> %s) is %s\nHINT: wait for it to end, or `pgha ctl "
				"switchover --cancel`", s->t.cluster, old.id, old.from, old.to, so_phase_name(old.phase));
			goto out;
		}
		if (etcd_put_if_value(s->c, s->so_key, kvs.kvs[0].value, json, 0, &done, e) != 0)
			goto out;
	}
	if (!done) {
		err_set(e, "cluster %s: the switchover record changed meanwhile", s->t.cluster);
		goto out;
	}
	free(s->so_raw);
	s->so_raw = json;
	json = NULL;
	rc = 0;
out:
	free(json);
	etcd_kvs_free(&kvs);
	return rc;
}

/* Move both records to phase (compare-and-swap on what we wrote). */
static int advance(struct run *r, enum so_phase phase, int64_t deadline_ms, const char *reason, struct pgha_err *e)
{
	r->so.phase = phase;
	r->so.deadline_ms = deadline_ms;
	snprintf(r->so.reason, sizeof(r->so.reason), "%s", reason ? reason : "");
	struct side *sides[2] = {r->from, r->to};
	int rc = 0;
	for (int i = 0; i < 2; i++) {
		if (sides[i]->so_raw == NULL)
			continue;   /* never written there (its creation failed) */
		char *json = switchover_encode(&r->so);
		bool done = false;
		struct pgha_err e1;
		if (etcd_put_if_value(sides[i]->c, sides[i]->so_key, sides[i]->so_raw, json, 0, &done, &e1) != 0 || !done) {
			if (rc == 0)
				err_set(e, "cluster %s: cannot move the switchover record to %s: %s", sides[i]->t.cluster,
					so_phase_name(phase), done ? e1.msg : "it changed meanwhile (cancelled?)");
			rc = -1;
			free(json);
			continue;
		}
		free(sides[i]->so_raw);
		sides[i]->so_raw = json;
	}
	return rc;
}

static void progress(const struct run *r, const char *fmt, ...) PGHA_PRINTF(2, 3);

static void progress(const struct run *r, const char *fmt, ...)
{
	if (r->json)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("%6.1f s  ", (double)(wall_ms() - r->started_ms) / 1000.0);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

/* ---- the steps ------------------------------------------------------------ */

static int check_before(struct run *r, bool force, struct pgha_err *e)
{
	struct side *a = r->from, *b = r->to;
	if (strcmp(a->t.cluster, b->t.cluster) == 0 && strcmp(a->t.endpoints, b->t.endpoints) == 0)
		return err_set(e, "%s and %s are members of the same cluster (%s)\nHINT: `pgha ctl switchover --to "
			       "NODE` switches over inside a cluster", a->path, b->path, a->t.cluster);
	struct side *sides[2] = {a, b};
	for (int i = 0; i < 2; i++)
		if (!agent_config_standby_cluster(&sides[i]->cfg))
			return err_set(e, "%s: [standby_cluster] primary_hosts is not set: cluster %s could not follow "
				       "the other one afterwards\nHINT: give every member of both clusters "
				       "[standby_cluster] primary_hosts = the other cluster's members (docs/TWO_REGIONS.md)",
				       sides[i]->path, sides[i]->t.cluster);
	if (side_read(a, e) != 0 || side_read(b, e) != 0)
		return -1;
	if (a->v.promoted == NULL)
		return err_set(e, "cluster %s is not the primary one (it has no %s key)\nHINT: run it the other way: "
			       "-c %s --to %s", a->t.cluster, a->promoted_key, b->path, a->path);
	if (b->v.promoted != NULL)
		return err_set(e, "cluster %s is already primary (%s exists): two primary clusters\nHINT: `pgha ctl -c "
			       "%s list` both; delete the promoted key of the one that must follow", b->t.cluster,
			       b->promoted_key, b->path);
	const struct member *la = side_leader(a), *lb = side_leader(b);
	if (la == NULL || la->role != ROLE_PRIMARY || la->state != STATE_RUNNING)
		return err_set(e, "cluster %s has no running primary to switch over from", a->t.cluster);
	if (lb == NULL || lb->role != ROLE_REPLICA || lb->state != STATE_STREAMING)
		return err_set(e, "cluster %s has no standby leader streaming from %s (leader %s, %s)\nHINT: `pgha ctl "
			       "-c %s list`", b->t.cluster, a->t.cluster, lb ? lb->name : "none",
			       lb ? member_state_name(lb->state) : "-", b->path);
	snprintf(r->old_leader, sizeof(r->old_leader), "%s", la->name);
	snprintf(r->new_leader, sizeof(r->new_leader), "%s", lb->name);
	if (!force && !names_host(&b->cfg, la->host, la->port))
		return err_set(e, "%s: [standby_cluster] primary_hosts does not name %s's leader %s (%s:%d): is %s "
			       "really a standby cluster of %s?\nHINT: --force if the names differ only in spelling "
			       "(a host name for an address)", b->path, a->t.cluster, la->name, la->host, la->port,
			       b->t.cluster, a->t.cluster);
	if (!force && !names_host(&a->cfg, lb->host, lb->port))
		return err_set(e, "%s: [standby_cluster] primary_hosts does not name %s's standby leader %s (%s:%d): "
			       "after the switch %s could not follow it\nHINT: add %s's members to it on every "
			       "member of %s, or --force if the names differ only in spelling", a->path, b->t.cluster,
			       lb->name, lb->host, lb->port, a->t.cluster, b->t.cluster, a->t.cluster);
	char why[256];
	struct wal_position pa, pb;
	if (position(a, la, &pa, why, sizeof(why)) != 0)
		return err_set(e, "asking %s's leader %s (%s:%d) for its WAL position: %s", a->t.cluster, la->name,
			       la->host, la->port, why);
	if (position(b, lb, &pb, why, sizeof(why)) != 0)
		return err_set(e, "asking %s's standby leader %s (%s:%d) for its WAL position: %s", b->t.cluster,
			       lb->name, lb->host, lb->port, why);
	if (strcmp(pa.sysid, pb.sysid) != 0)
		return err_set(e, "%s (system %s) and %s (system %s) are not copies of one database", a->t.cluster,
			       pa.sysid, b->t.cluster, pb.sysid);
	if (pa.read_only)
		return err_set(e, "%s's leader %s is read-only", a->t.cluster, la->name);
	if (pa.lsn > pb.lsn && pa.lsn - pb.lsn > MAX_LAG_BYTES)
		return err_set(e, "%s's standby leader %s is %llu bytes behind %s (more than %d MiB): the pause would "
			       "be long\nHINT: wait until it catches up (`pgha ctl -c %s list`)", b->t.cluster, lb->name,
			       (unsigned long long)(pa.lsn - pb.lsn), a->t.cluster, MAX_LAG_BYTES >> 20, b->path);
	return 0;
}

/* Every proxy of both clusters reports paused for the switchover (or there is none). */
static bool all_paused(struct run *r, int *waiting, struct pgha_err *e)
{
	struct side *sides[2] = {r->from, r->to};
	*waiting = 0;
	for (int i = 0; i < 2; i++) {
		if (side_read(sides[i], e) != 0)
			return false;
		for (size_t k = 0; k < sides[i]->v.nproxies; k++) {
			struct proxy_record p;
			struct pgha_err ignored;
			const char *raw = sides[i]->v.proxies[k];
			if (proxy_record_decode(raw, strlen(raw), &p, &ignored) != 0 || strcmp(p.paused_for, r->so.id) != 0)
				(*waiting)++;
		}
	}
	return *waiting == 0;
}

/* The old leader runs again, read-only; where its WAL ends. */
static bool old_leader_stopped(struct run *r, char *why, size_t len)
{
	struct pgha_err e;
	if (side_read(r->from, &e) != 0) {
		snprintf(why, len, "%.300s", e.msg);
		return false;
	}
	for (size_t i = 0; i < r->from->v.nmembers; i++) {
		const struct member *m = &r->from->v.members[i];
		if (m->role == ROLE_PRIMARY && m->state == STATE_RUNNING) {
			snprintf(why, len, "%s still runs as a primary", m->name);
			return false;
		}
	}
	const struct member *m = cluster_view_member(&r->from->v, r->old_leader);
	if (m == NULL || m->role != ROLE_REPLICA || (m->state != STATE_RUNNING && m->state != STATE_STREAMING)) {
		snprintf(why, len, "%s is %s", r->old_leader, m ? member_state_name(m->state) : "gone");
		return false;
	}
	struct wal_position p;
	if (position(r->from, m, &p, why, len) != 0)
		return false;
	if (!p.read_only) {
		snprintf(why, len, "%s answers read-write", m->name);
		return false;
	}
	r->old_end = p;
	return true;
}

/* The new cluster's standby leader has flushed the old leader's WAL, on its timeline. */
static bool new_leader_caught_up(struct run *r, char *why, size_t len)
{
	struct pgha_err e;
	if (side_read(r->to, &e) != 0) {
		snprintf(why, len, "%.300s", e.msg);
		return false;
	}
	const struct member *lb = side_leader(r->to);
	if (lb == NULL || strcmp(lb->name, r->new_leader) != 0) {
		snprintf(why, len, "%s's leader is now %s", r->to->t.cluster, lb ? lb->name : "none");
		return false;
	}
	struct wal_position p;
	if (position(r->to, lb, &p, why, len) != 0)
		return false;
	r->new_pos = p;
	char have[32], want[32];
	lsn_format(p.lsn, have, sizeof(have));
	lsn_format(r->old_end.lsn, want, sizeof(want));
	if (strcmp(p.sysid, r->old_end.sysid) != 0 || p.timeline != r->old_end.timeline || p.lsn < r->old_end.lsn) {
		snprintf(why, len, "%s has %s on timeline %u, the old leader ends at %s on timeline %u", lb->name, have,
			 p.timeline, want, r->old_end.timeline);
		return false;
	}
	return true;
}

static bool new_leader_primary(struct run *r, char *why, size_t len)
{
	struct pgha_err e;
	if (side_read(r->to, &e) != 0) {
		snprintf(why, len, "%.300s", e.msg);
		return false;
	}
	const struct member *lb = side_leader(r->to);
	if (lb == NULL || lb->role != ROLE_PRIMARY || lb->state != STATE_RUNNING) {
		snprintf(why, len, "%s's leader %s is %s %s", r->to->t.cluster, lb ? lb->name : "none",
			 lb ? member_role_name(lb->role) : "-", lb ? member_state_name(lb->state) : "-");
		return false;
	}
	snprintf(r->new_leader, sizeof(r->new_leader), "%s", lb->name);
	return true;
}

typedef bool (*ready_fn)(struct run *r, char *why, size_t len);

/* Poll until ready or the deadline; why holds the last reason. */
static bool wait_for(struct run *r, ready_fn ready, int64_t deadline_ms, char *why, size_t len)
{
	for (;;) {
		if (ready(r, why, len))
			return true;
		if (wall_ms() >= deadline_ms)
			return false;
		sleep_ms(200);
	}
}

static int write_promoted(struct side *s, struct pgha_err *e)
{
	struct promoted_rec pr = {.at = (int64_t)time(NULL)};
	char id[BACKUP_ID_MAX];
	backup_new_id(id);
	snprintf(pr.by, sizeof(pr.by), "switchover");
	snprintf(pr.id, sizeof(pr.id), "%s", id);
	char *value = promoted_encode(&pr);
	bool created = false;
	int rc = etcd_create(s->c, s->promoted_key, value, 0, &created, e);
	free(value);
	if (rc == 0 && !created)
		rc = err_set(e, "%s exists already", s->promoted_key);
	return rc;
}

/* Past a deadline after the old cluster's key was deleted: make it primary again. */
static void put_back(struct run *r, const char *why)
{
	struct pgha_err e;
	if (write_promoted(r->from, &e) != 0)
		fprintf(stderr, "pgha ctl switchover-cluster: CANNOT put %s back as the primary cluster: %s\nHINT: "
				"`pgha ctl -c %s promote-cluster` once %s's standby leader is known not to be primary\n",
			r->from->t.cluster, e.msg, r->from->path, r->to->t.cluster);
	else
		fprintf(stderr, "pgha ctl switchover-cluster: %s is the primary cluster again (its leader promotes; "
				"%s follows it)\n", r->from->t.cluster, r->to->t.cluster);
	if (advance(r, SO_ABORTED, 0, why, &e) != 0)
		fprintf(stderr, "pgha ctl switchover-cluster: %s\n", e.msg);
}

static void print_json(const struct run *r, bool ok, const char *error)
{
	json_t *o = json_object();
	char lsn[32];
	json_object_set_new(o, "id", json_string(r->so.id));
	json_object_set_new(o, "from", json_string(r->from->t.cluster));
	json_object_set_new(o, "to", json_string(r->to->t.cluster));
	json_object_set_new(o, "ok", json_boolean(ok));
	if (error)
		json_object_set_new(o, "error", json_string(error));
	json_object_set_new(o, "old_leader", json_string(r->old_leader));
	json_object_set_new(o, "new_leader", json_string(r->new_leader));
	lsn_format(r->old_end.lsn, lsn, sizeof(lsn));
	json_object_set_new(o, "old_end_lsn", json_string(lsn));
	json_object_set_new(o, "old_end_timeline", json_integer(r->old_end.timeline));
	lsn_format(r->new_pos.lsn, lsn, sizeof(lsn));
	json_object_set_new(o, "new_flushed_lsn", json_string(lsn));
	json_t *ms = json_object();
	json_object_set_new(ms, "paused", json_integer(r->paused_ms ? r->paused_ms - r->started_ms : -1));
	json_object_set_new(ms, "old_stopped", json_integer(r->demoted_ms ? r->demoted_ms - r->started_ms : -1));
	json_object_set_new(ms, "caught_up", json_integer(r->caught_up_ms ? r->caught_up_ms - r->started_ms : -1));
	json_object_set_new(ms, "promoted", json_integer(r->promoted_ms ? r->promoted_ms - r->started_ms : -1));
	json_object_set_new(ms, "writes_held", json_integer(r->done_ms ? r->done_ms - r->started_ms : -1));
	json_object_set_new(o, "ms", ms);
	char *s = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

static int fail(struct run *r, const char *msg)
{
	if (r->json)
		print_json(r, false, msg);
	fprintf(stderr, "pgha ctl switchover-cluster: %s\n", msg);
	return 1;
}

static int run_switch(struct run *r)
{
	struct pgha_err e;
	char why[512];
	r->started_ms = wall_ms();
	backup_new_id(r->so.id);
	snprintf(r->so.from, sizeof(r->so.from), "%s", r->from->t.cluster);
	snprintf(r->so.to, sizeof(r->so.to), "%s", r->to->t.cluster);
	r->so.clusters = true;
	r->so.phase = SO_PAUSING;
	r->so.deadline_ms = r->started_ms + PAUSE_MS;
	if (record_create(r->from, &r->so, &e) != 0)
		return fail(r, e.msg);
	if (record_create(r->to, &r->so, &e) != 0) {
		struct pgha_err e2;
		advance(r, SO_ABORTED, 0, "could not start in both clusters", &e2);
		return fail(r, e.msg);
	}
	progress(r, "switchover %s: %s -> %s; proxies of both clusters pausing", r->so.id, r->so.from, r->so.to);

	int waiting = 0;
	while (!all_paused(r, &waiting, &e)) {
		if (wall_ms() >= r->so.deadline_ms) {
			snprintf(why, sizeof(why), "%d proxies did not pause within %d ms (long read-write transactions?)",
				 waiting, PAUSE_MS);
			advance(r, SO_ABORTED, 0, why, &e);
			return fail(r, why);
		}
		sleep_ms(100);
	}
	r->paused_ms = wall_ms();
	int64_t deadline = r->paused_ms + SWITCH_MS;
	progress(r, "every proxy paused; stopping %s's leader %s", r->so.from, r->old_leader);
	if (advance(r, SO_DEMOTING, deadline, NULL, &e) != 0) {
		struct pgha_err e2;
		advance(r, SO_ABORTED, 0, e.msg, &e2);
		return fail(r, e.msg);
	}
	bool deleted = false;
	if (etcd_delete_if_value(r->from->c, r->from->promoted_key, r->from->v.promoted, &deleted, &e) != 0 || !deleted) {
		snprintf(why, sizeof(why), "cannot delete %s: %.300s", r->from->promoted_key,
			 deleted ? e.msg : "it changed meanwhile");
		advance(r, SO_ABORTED, 0, why, &e);
		return fail(r, why);
	}
	if (!wait_for(r, old_leader_stopped, deadline, why, sizeof(why))) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s did not stop and restart as a standby in time: %s", r->old_leader, why);
		put_back(r, msg);
		return fail(r, msg);
	}
	r->demoted_ms = wall_ms();
	char lsn[32];
	lsn_format(r->old_end.lsn, lsn, sizeof(lsn));
	progress(r, "%s stopped cleanly and runs as a standby; its WAL ends at %s (timeline %u)", r->old_leader, lsn,
		 r->old_end.timeline);
	if (!wait_for(r, new_leader_caught_up, deadline, why, sizeof(why))) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s's standby leader did not receive all of %s's WAL in time: %s",
			 r->so.to, r->so.from, why);
		put_back(r, msg);
		return fail(r, msg);
	}
	r->caught_up_ms = wall_ms();
	lsn_format(r->new_pos.lsn, lsn, sizeof(lsn));
	progress(r, "%s has flushed %s: every byte of %s's WAL; promoting %s", r->new_leader, lsn, r->so.from,
		 r->so.to);
	if (advance(r, SO_PROMOTING, deadline, NULL, &e) != 0 || write_promoted(r->to, &e) != 0) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%.900s", e.msg);
		put_back(r, msg);
		return fail(r, msg);
	}
	if (!wait_for(r, new_leader_primary, deadline, why, sizeof(why))) {
		/* The key is written: the standby leader promotes when it can. Nothing to put back safely. */
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s is promoted but its leader does not run as primary yet: %s\nHINT: `pgha "
			 "ctl -c %s list`", r->so.to, why, r->to->path);
		advance(r, SO_ABORTED, 0, msg, &e);
		return fail(r, msg);
	}
	r->promoted_ms = wall_ms();
	r->done_ms = wall_ms();
	char reason[128];
	snprintf(reason, sizeof(reason), "writes held %lld ms", (long long)(r->done_ms - r->started_ms));
	if (advance(r, SO_DONE, 0, reason, &e) != 0)
		fprintf(stderr, "pgha ctl switchover-cluster: %s (the proxies resume after their switchover_hold)\n",
			e.msg);
	progress(r, "%s's leader %s runs as primary; proxies resume (writes held %.1f s)", r->so.to, r->new_leader,
		 (double)(r->done_ms - r->started_ms) / 1000.0);
	if (r->json)
		print_json(r, true, NULL);
	else
		printf("Cluster %s is primary now; %s is its standby cluster (`pgha ctl -c %s list`)\n", r->so.to,
		       r->so.from, r->from->path);
	return 0;
}

int ctl_cmd_switchover_cluster(const struct ctl_target *t, int argc, char **argv)
{
	bool force = false, as_json = false;
	const char *to = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0)
			force = true;
		else if (strcmp(argv[i], "--json") == 0)
			as_json = true;
		else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			to = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return usage(stdout);
		else {
			fprintf(stderr, "pgha ctl switchover-cluster: unknown option \"%s\"\n", argv[i]);
			return usage(stderr);
		}
	}
	if (t->config_path == NULL || to == NULL) {
		fprintf(stderr, "pgha ctl switchover-cluster: needs a member config of each cluster\nHINT: pgha ctl -c "
				"/etc/pgha/EAST-NODE.conf switchover-cluster --to /etc/pgha/WEST-NODE.conf\n");
		return 2;
	}
	struct side a = {0}, b = {0};
	struct run r = {.from = &a, .to = &b, .json = as_json};
	struct pgha_err e;
	int rc = 1;
	if (side_open(&a, t->config_path, &e) != 0 || side_open(&b, to, &e) != 0 || check_before(&r, force, &e) != 0) {
		fprintf(stderr, "pgha ctl switchover-cluster: %s\n", e.msg);
		goto out;
	}
	char q[512];
	snprintf(q, sizeof(q), "Switch over: %s (leader %s) becomes a standby cluster of %s (standby leader %s), "
		 "writes held meanwhile?", a.t.cluster, r.old_leader, b.t.cluster, r.new_leader);
	if (!ctl_confirm(q, force))
		goto out;
	rc = run_switch(&r);
out:
	side_close(&a);
	side_close(&b);
	return rc;
}
