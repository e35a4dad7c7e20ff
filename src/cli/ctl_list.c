/*
 * ctl_list.c — `pgha ctl list`: the members table (also `pgha up`'s), the
 * notes under it (maintenance mode, a pending failover or switchover), and
 * the --json form.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl.h"
#include "cli/ctl_int.h"
#include "cluster/backup_key.h"
#include "cluster/restore_key.h"
#include "cluster/config_key.h"
#include "cluster/history_key.h"
#include "cluster/switchover.h"
#include "common/strbuf.h"
#include "common/util.h"

/* "Maintenance mode: on" / pending failover and switchover lines under the table. */
static void print_notes(FILE *out, const struct etcd_kvs *raw, const char *prefix)
{
	char *key = xasprintf("%sconfig", prefix);
	const struct etcd_kv *kv = etcd_kvs_find(raw, key);
	if (dyncfg_paused(kv ? kv->value : NULL))
		fprintf(out, "Maintenance mode: on (no automatic failover; `pgha ctl resume` ends it)\n");
	free(key);
	key = xasprintf("%sfailover", prefix);
	kv = etcd_kvs_find(raw, key);
	if (kv != NULL)
		fprintf(out, "Pending failover: %s\n", kv->value);
	free(key);
	key = xasprintf("%sswitchover", prefix);
	kv = etcd_kvs_find(raw, key);
	struct switchover so;
	struct pgha_err e;
	if (kv != NULL && switchover_decode(kv->value, kv->value_len, &so, &e) == 0) {
		char when[64] = "now";
		if (so.at_ms > 0) {
			time_t ts = (time_t)(so.at_ms / 1000);
			struct tm tm;
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&ts, &tm));
		}
		if (so.phase == SO_DONE || so.phase == SO_ABORTED)
			fprintf(out, "Last switchover: %s %s -> %s %s%s%s\n", so.id, so.from, so.to, so_phase_name(so.phase),
				so.reason[0] ? ": " : "", so.reason);
		else
			fprintf(out, "Pending switchover: %s %s -> %s at %s (%s; `pgha ctl switchover --cancel` withdraws it)\n",
				so.id, so.from, so.to, when, so_phase_name(so.phase));
	} else if (kv != NULL) {
		fprintf(out, "Switchover record unreadable: %s\n", e.msg);
	}
	free(key);
}

enum { CERT_WARN_DAYS = 30 };

/* The CERT EXPIRES column: the date of [tls] cert_file's notAfter, "-" none, "invalid" a bad record. */
static void cert_column(const struct member *m, char *buf, size_t len)
{
	if (m->tls_not_after == 0) {
		snprintf(buf, len, "-");
		return;
	}
	if (m->tls_not_after < 0) {
		snprintf(buf, len, "invalid");
		return;
	}
	time_t t = (time_t)m->tls_not_after;
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d", &tm) == 0)
		snprintf(buf, len, "invalid");
}

/* A line under the member when its certificate expired or expires within CERT_WARN_DAYS. */
static void cert_warning(FILE *out, const struct member *m, int64_t now)
{
	if (m->tls_not_after < 0) {
		fprintf(out, "%-16s   TLS certificate: the record's tls_not_after is not a time\n", "");
		return;
	}
	if (m->tls_not_after == 0 || m->tls_not_after - now > (int64_t)CERT_WARN_DAYS * 86400)
		return;
	char when[64];
	time_t t = (time_t)m->tls_not_after;
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
	if (m->tls_not_after <= now)
		fprintf(out, "%-16s   TLS certificate: EXPIRED on %s (renew it, then SIGHUP the agent)\n", "", when);
	else {
		long long days = (long long)((m->tls_not_after - now) / 86400);
		fprintf(out, "%-16s   TLS certificate: expires in %lld day%s, on %s (renew it, then SIGHUP the agent)\n",
			"", days, days == 1 ? "" : "s", when);
	}
}

void ctl_print_table(FILE *out, const struct cluster_view *v, const char *cluster)
{
	struct sync_state ss;
	enum sync_mode mode;
	bool sync = dyncfg_view_sync(v, &ss, &mode) == 1 && v->leader && strcmp(ss.leader, v->leader) == 0;
	const char *sysid = v->initialize ? v->initialize : "not initialized";
	fprintf(out, "Cluster: %s (system identifier %s), leader: %s\n", cluster, sysid,
		v->leader ? v->leader : "none");
	if (v->leader_state != LEADER_KEY_OK)
		fprintf(out, "Leader key: \"%.80s\" (revision %lld) is %s: no agent wrote it.\n"
			"  The agents replace it (compared on that revision): the running primary, else the election's\n"
			"  winner%s.\n", v->leader_invalid ? v->leader_invalid : v->leader, (long long)v->leader_mod_revision,
			leader_key_problem(v->leader_state),
			v->leader_state == LEADER_KEY_FOREIGN_LEASE ? ", once it has stayed so for a ttl (an agent moving "
			"its key to a new lease shows this for a moment)" : "");
	/* A standby cluster: its leader replicates from the primary cluster (the leader's record says so). */
	const struct member *lm = v->leader ? cluster_view_member(v, v->leader) : NULL;
	bool standby = lm != NULL && lm->standby_of[0] != '\0';
	int role_w = standby ? 15 : 8;
	if (standby) {
		char how[200] = "";
		member_source_describe(lm, how, sizeof(how));
		fprintf(out, "Standby cluster of: %s; standby leader %s%s\n", lm->standby_of, lm->name, how);
	}
	/* As Patroni: the column shows only when a member waits for a restart. */
	bool pending = false, certs = false;
	int region_w = 0;   /* REGION (region/zone), when a member has one */
	for (size_t i = 0; i < v->nmembers; i++) {
		pending |= v->members[i].pending_restart;
		certs |= v->members[i].tls_not_after != 0;
		const struct member_tags *t = &v->members[i].tags;
		int w = (int)(strlen(t->region) + (t->zone[0] ? 1 + strlen(t->zone) : 0));
		if (w > 0 && w + 1 > region_w)
			region_w = w + 1 > 7 ? w + 1 : 7;
	}
	/* So is CERT EXPIRES, when a member has a [tls] certificate. */
	fprintf(out, "%-16s %-22s %-*s%-*s %-14s %4s  %-*s%s%s\n", "MEMBER", "HOST", region_w, region_w ? "REGION" : "",
		role_w, "ROLE", "STATE", "TL", pending || certs ? 10 : 0, "LAG", certs ? "  CERT EXPIRES" : "",
		pending ? "  PENDING RESTART" : "");
	int64_t now = wall_s();
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		char host[300], lag[32] = "", tl[16] = "";
		snprintf(host, sizeof(host), "%s:%d", m->host, m->port);
		bool leader = v->leader && strcmp(v->leader, m->name) == 0;
		const char *role = leader ? (standby ? "standby leader" : "leader") : member_role_name(m->role);
		if (!leader && sync && sync_set_has(&ss.set, m->name))
			role = mode == SYNC_QUORUM ? "quorum" : "sync";
		if (m->timeline > 0)
			snprintf(tl, sizeof(tl), "%u", m->timeline);
		if (!leader && m->role == ROLE_REPLICA && m->lag_bytes >= 0)
			format_bytes((uint64_t)m->lag_bytes, lag, sizeof(lag));
		else if (!leader && m->role == ROLE_REPLICA)
			snprintf(lag, sizeof(lag), "unknown");
		char restart[300] = "";
		if (m->pending_restart)
			snprintf(restart, sizeof(restart), "  * %s", m->pending_params);
		char cert[32] = "";
		if (certs) {
			char date[24];
			cert_column(m, date, sizeof(date));
			snprintf(cert, sizeof(cert), "  %-*s", pending ? 12 : 0, date);
		}
		char region[2 * MEMBER_NAME_MAX + 2];
		snprintf(region, sizeof(region), "%s%s%s", m->tags.region, m->tags.zone[0] ? "/" : "", m->tags.zone);
		fprintf(out, "%-16s %-22s %-*s%-*s %-14s %4s  %-*s%s%s\n", m->name, host, region_w, region, role_w, role,
			member_state_name(m->state), tl, pending || certs ? 10 : 0, lag, cert, restart);
		cert_warning(out, m, now);
		if (m->error[0])
			fprintf(out, "%-16s   error: %s\n", "", m->error);
		if (m->diverged_copy[0])
			fprintf(out, "%-16s   diverged copy: %s (removed once it streams again)\n", "", m->diverged_copy);
		if (m->archive_replay)
			fprintf(out, "%-16s   catching up from the WAL archive (not streaming)\n", "");
		if (m->archive[0] && strcmp(m->archive, "ok") != 0)
			fprintf(out, "%-16s   WAL archive: %s\n", "", m->archive);
	}
	if (v->nmembers == 0)
		fprintf(out, "(no members)\n");
	if (mode != SYNC_OFF) {
		char set[600];
		if (!sync)
			snprintf(set, sizeof(set), "none published by the leader yet");
		else if (ss.set.n == 0)
			snprintf(set, sizeof(set), "none (%s)", mode == SYNC_STRICT ? "writes wait for one" :
				 "asynchronous until one streams; no failover meanwhile");
		else
			sync_pub_describe(&ss.set, set, sizeof(set));
		fprintf(out, "Synchronous mode: %s; synchronous standbys: %s\n", sync_mode_name(mode), set);
		if (mode == SYNC_QUORUM && sync && ss.set.n > 1)
			fprintf(out, "  (a new leader must hear from %d of them: every commit is on one of any %d)\n",
				ss.set.num, ss.set.num);
	}
	char bk[600];
	backup_view_describe(v, wall_s(), bk, sizeof(bk));
	if (bk[0])
		fprintf(out, "%s\n", bk);
	restore_view_describe(v, bk, sizeof(bk));
	if (bk[0])
		fprintf(out, "%s\n", bk);
}

/* One cluster: its table and notes, or (json) its object. 0, or 1 with the error printed. */
static int list_one(const struct ctl_target *t, bool json, json_t **jout)
{
	struct cluster_view v = {0};
	struct etcd_kvs raw = {0};
	struct pgha_err e;
	if (ctl_read_view(t, &v, &raw, &e) != 0) {
		fprintf(stderr, "pgha ctl list: %s\n", e.msg);
		return 1;
	}
	char *prefix = ctl_cluster_prefix(t);
	if (json) {
		char *s = backup_view_encode(&v, t->cluster);
		json_error_t jerr;
		json_t *o = json_loads(s, 0, &jerr);
		char *ck = xasprintf("%sconfig", prefix), *fk = xasprintf("%sfailover", prefix);
		const struct etcd_kv *cfg = etcd_kvs_find(&raw, ck), *fo = etcd_kvs_find(&raw, fk);
		json_object_set_new(o, "paused", json_boolean(dyncfg_paused(cfg ? cfg->value : NULL)));
		json_object_set_new(o, "pending_failover", fo ? json_loads(fo->value, 0, &jerr) : json_null());
		struct sync_state ss;
		enum sync_mode mode;
		if (dyncfg_view_sync(&v, &ss, &mode) == 1) {
			json_t *arr = json_array();
			for (size_t i = 0; i < ss.set.n; i++)
				json_array_append_new(arr, json_string(ss.set.names[i]));
			json_t *sj = json_object();
			json_object_set_new(sj, "leader", json_string(ss.leader));
			json_object_set_new(sj, "sync_standby", arr);
			json_object_set_new(sj, "quorum", json_integer(ss.set.num));
			json_object_set_new(o, "sync", sj);
		} else {
			json_object_set_new(o, "sync", json_null());
		}
		json_object_set_new(o, "synchronous_mode", json_string(sync_mode_name(mode)));
		*jout = o;
		free(ck);
		free(fk);
		free(s);
	} else {
		ctl_print_table(stdout, &v, t->cluster);
		print_notes(stdout, &raw, prefix);
	}
	free(prefix);
	etcd_kvs_free(&raw);
	cluster_view_free(&v);
	return 0;
}

static void print_json(json_t *o)
{
	char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("%s\n", out);
	free(out);
	json_decref(o);
}

int ctl_cmd_list(const struct ctl_target *t, int argc, char **argv)
{
	bool json = false;
	const char *also = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--also") == 0 && i + 1 < argc) {
			also = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("Usage: pgha ctl list [--json] [--also OTHER-NODE.conf]\n\nList the members of the cluster as etcd knows them.\n"
			       "ROLE is leader, replica, or (synchronous mode) sync / quorum for the standbys the\n"
			       "leader published as synchronous: only those may be promoted. PENDING RESTART (shown\n"
			       "when a member has one) names the parameters that wait for `pgha ctl restart --pending`.\n"
			       "CERT EXPIRES (shown when a member has a [tls] certificate) is its expiry date (UTC),\n"
			       "with a warning under the member from %d days before; --json has it as tls_not_after\n"
			       "(unix seconds). REGION (shown when a member has [node] region) is region/zone.\n"
			       "--also lists a second cluster after this one, from its own etcd (a member config of\n"
			       "it: e.g. the standby cluster of this one); with --json, the two objects in an array.\n",
			       CERT_WARN_DAYS);
			return 0;
		} else {
			fprintf(stderr, "pgha ctl list: unknown option \"%s\"\n", argv[i]);
			return 2;
		}
	}
	json_t *first = NULL, *second = NULL;
	if (list_one(t, json, &first) != 0)
		return 1;
	if (also == NULL) {
		if (json)
			print_json(first);
		return 0;
	}
	struct ctl_target other = {0};
	struct pgha_err e;
	int rc = 0;
	if (ctl_target_from_config(&other, also, &e) != 0) {
		fprintf(stderr, "pgha ctl list: --also %s: %s\n", also, e.msg);
		rc = 1;
	} else {
		if (!json)
			printf("\n");
		rc = list_one(&other, json, &second);
	}
	if (json) {
		json_t *arr = json_array();
		json_array_append_new(arr, first);
		if (second)
			json_array_append_new(arr, second);
		print_json(arr);
	}
	ctl_target_free(&other);
	return rc;
}

int ctl_cmd_history(const struct ctl_target *t, int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("Usage: pgha ctl history [--json]\n\nEvery leader change of the cluster, oldest first (the last %d):\n"
			       "when the new leader ran as primary, the kind (bootstrap, failover, switchover, manual\n"
			       "failover, restore), from and to, the new timeline, and how long no member ran as\n"
			       "primary, as the new leader saw it. Also GET /history on any agent.\n", HISTORY_MAX);
			return 0;
		} else {
			fprintf(stderr, "pgha ctl history: unknown option \"%s\"\n", argv[i]);
			return 2;
		}
	}
	struct cluster_view v = {0};
	struct pgha_err e;
	if (ctl_read_view(t, &v, NULL, &e) != 0) {
		fprintf(stderr, "pgha ctl history: %s\n", e.msg);
		return 1;
	}
	struct history h;
	int rc = history_decode(v.history, &h, &e);
	cluster_view_free(&v);
	if (rc != 0) {
		fprintf(stderr, "pgha ctl history: the history key is not valid: %s\nHINT: the agents start it afresh at the "
				"next leader change\n", e.msg);
		return 1;
	}
	if (json) {
		char *s = history_encode(&h);
		printf("%s\n", s);
		free(s);
	} else if (h.n == 0) {
		printf("No leader change recorded yet.\n");
	} else {
		printf("%-23s  %-15s  %-16s  %-16s  %3s  %s\n", "TIME (UTC)", "KIND", "FROM", "TO", "TL",
		       "WRITES UNAVAILABLE");
		for (size_t i = 0; i < h.n; i++) {
			const struct history_entry *x = &h.entries[i];
			char when[32];
			format_utc(x->at_ms / 1000, when, sizeof(when));
			printf("%s.%03d  %-15s  %-16s  %-16s  %3u  %.1f s\n", when, (int)(x->at_ms % 1000), x->kind,
			       x->from[0] ? x->from : "-", x->to, x->timeline, (double)x->unavailable_ms / 1000.0);
		}
	}
	history_free(&h);
	return 0;
}
