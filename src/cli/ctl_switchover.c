/*
 * ctl_switchover.c — `pgha ctl switchover`: ask for a planned switchover
 * (now or at a time), follow it, or cancel a scheduled one. The agents and
 * proxies do the work (ha/switchover.c, proxy/hold.c); this writes the
 * request and reports its phases.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl_int.h"
#include "common/config.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "dcs/switchover.h"

static int usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl switchover --to NODE [--at TIME] [--force] [--wait SEC] [--no-wait]\n"
		"       pgha ctl switchover --cancel [--force]\n"
		"\n"
		"Planned switchover: the proxies hold new read-write transactions at a\n"
		"transaction boundary, the leader stops cleanly once they report paused, NODE\n"
		"(a streaming standby; in synchronous mode a synchronous one) takes over, the\n"
		"proxies resume onto it, and the old leader follows it as a standby. A step\n"
		"that misses its deadline aborts it and the old leader goes on.\n"
		"\n"
		"  --to NODE     the member to hand over to\n"
		"  --at TIME     not before TIME: +30s, +5m, +2h, or 2026-11-21T23:00:00Z (UTC) /\n"
		"                ...+01:00; `ctl list` shows it pending, --cancel withdraws it\n"
		"  --force       do not ask for confirmation\n"
		"  --wait SEC    follow it this long after it is due (default 60)\n"
		"  --no-wait     only write the request\n"
		"  --cancel      withdraw a switchover that has not begun to stop the leader\n");
	return out == stdout ? 0 : 2;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* TIME -> unix ms; -1 if not understood. */
static int64_t parse_at(const char *s)
{
	if (s[0] == '+') {
		long ms;
		if (config_parse_duration_ms(s + 1, &ms) != 0 || ms < 0)
			return -1;
		return wall_ms() + ms;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL)
		rest = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
	if (rest == NULL)
		return -1;
	long offset = 0;
	if (strcmp(rest, "Z") == 0 || strcmp(rest, "+00:00") == 0) {
		offset = 0;
	} else {
		int hh, mm;
		char sign;
		if (sscanf(rest, "%c%2d:%2d", &sign, &hh, &mm) != 3 || (sign != '+' && sign != '-') || hh > 14 ||
		    mm > 59 || strlen(rest) != 6)
			return -1;
		offset = (sign == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
	}
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return ((int64_t)t - offset) * 1000;
}

/* The record as it is now: 1 present (*raw set, caller frees), 0 absent, -1 error. */
static int read_record(struct etcd_client *c, const char *key, struct switchover *so, char **raw,
		       struct pgha_err *e)
{
	struct etcd_kvs kvs = {0};
	if (etcd_get(c, key, &kvs, e) != 0)
		return -1;
	int rc = 0;
	if (kvs.count > 0) {
		*raw = xstrdup(kvs.kvs[0].value);
		if (switchover_decode(kvs.kvs[0].value, kvs.kvs[0].value_len, so, e) != 0) {
			memset(so, 0, sizeof(*so));
			so->phase = SO_ABORTED;   /* unreadable: may be replaced */
		}
		rc = 1;
	}
	etcd_kvs_free(&kvs);
	return rc;
}

static int cancel(const struct ctl_target *t, struct etcd_client *c, const char *key, bool force)
{
	struct pgha_err e;
	struct switchover so;
	char *raw = NULL;
	int r = read_record(c, key, &so, &raw, &e);
	if (r < 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		return 1;
	}
	if (r == 0 || so.phase == SO_DONE || so.phase == SO_ABORTED) {
		fprintf(stderr, "pgha ctl switchover: no switchover is pending in cluster %s\n", t->cluster);
		free(raw);
		return 1;
	}
	if (so.phase != SO_SCHEDULED && so.phase != SO_PAUSING) {
		fprintf(stderr, "pgha ctl switchover: switchover %s is %s: too late to cancel (the leader is already "
			"stopping); it ends by itself or aborts at its deadline\n", so.id, so_phase_name(so.phase));
		free(raw);
		return 1;
	}
	char q[256];
	snprintf(q, sizeof(q), "Cancel switchover %s from %s to %s?", so.id, so.from, so.to);
	if (!ctl_confirm(q, force)) {
		free(raw);
		return 1;
	}
	bool done = false;
	int rc = 1;
	if (etcd_delete_if_value(c, key, raw, &done, &e) != 0)
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
	else if (!done)
		fprintf(stderr, "pgha ctl switchover: it moved on meanwhile; look with `pgha ctl list`\n");
	else {
		printf("switchover %s cancelled\n", so.id);
		rc = 0;
	}
	free(raw);
	return rc;
}

/* Follow the record until done/aborted/gone or the deadline. */
static int follow(struct etcd_client *c, const char *key, const char *id, int64_t until_ms, int64_t t0)
{
	enum so_phase last = SO_SCHEDULED;
	struct pgha_err e;
	while (wall_ms() < until_ms) {
		struct switchover so;
		char *raw = NULL;
		int r = read_record(c, key, &so, &raw, &e);
		free(raw);
		if (r == 0 || (r == 1 && strcmp(so.id, id) != 0)) {
			fprintf(stderr, "switchover %s: the request is gone (cancelled)\n", id);
			return 1;
		}
		if (r == 1 && so.phase != last) {
			last = so.phase;
			printf("  %6.2f s  %s%s%s\n", (double)(wall_ms() - t0) / 1000.0, so_phase_name(so.phase),
			       so.reason[0] ? ": " : "", so.reason);
			fflush(stdout);
			if (so.phase == SO_DONE) {
				printf("switched over from %s to %s in %.2f s\n", so.from, so.to,
				       (double)(wall_ms() - t0) / 1000.0);
				return 0;
			}
			if (so.phase == SO_ABORTED) {
				fprintf(stderr, "switchover %s aborted: %s\n", id, so.reason);
				return 1;
			}
		}
		sleep_ms(50);
	}
	fprintf(stderr, "switchover %s: not finished within the wait; follow it with `pgha ctl list`\n", id);
	return 1;
}

int ctl_switchover_run(const struct ctl_target *t, struct etcd_client *c, const char *to, int64_t at, bool force,
		       bool wait, long wait_s)
{
	struct pgha_err e;
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sswitchover", prefix);
	int rc = 1;
	struct cluster_view v = {0};
	char *raw = NULL;
	if (ctl_read_view(t, &v, NULL, &e) != 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		goto out;
	}
	const struct member *m = cluster_view_member(&v, to);
	const struct member *lm = v.leader ? cluster_view_member(&v, v.leader) : NULL;
	if (lm == NULL || lm->role != ROLE_PRIMARY || lm->state != STATE_RUNNING) {
		fprintf(stderr, "pgha ctl switchover: cluster %s has no running leader to hand over from\n"
			"HINT: `pgha ctl failover --to NODE` when the leader is gone\n", t->cluster);
		goto out;
	}
	if (m == NULL) {
		fprintf(stderr, "pgha ctl switchover: %s is not a member of cluster %s\n", to, t->cluster);
		goto out;
	}
	if (strcmp(v.leader, to) == 0) {
		fprintf(stderr, "pgha ctl switchover: %s is already the leader\n", to);
		goto out;
	}
	if (m->role != ROLE_REPLICA || m->state != STATE_STREAMING) {
		fprintf(stderr, "pgha ctl switchover: %s is not fit: it is %s and %s (a streaming standby is needed)\n",
			to, member_role_name(m->role), member_state_name(m->state));
		goto out;
	}
	if (m->tags.nofailover) {
		fprintf(stderr, "pgha ctl switchover: %s is not fit: it is tagged nofailover\n", to);
		goto out;
	}
	struct sync_state ss;
	if (ctl_view_sync(&v, &ss, NULL) == 1 && !sync_set_has(&ss.set, to)) {
		fprintf(stderr, "pgha ctl switchover: %s is not fit: synchronous mode is on and it is not a "
			"synchronous standby\n", to);
		goto out;
	}
	struct switchover cur;
	int r = read_record(c, key, &cur, &raw, &e);
	if (r < 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		goto out;
	}
	if (r == 1 && cur.phase != SO_DONE && cur.phase != SO_ABORTED) {
		fprintf(stderr, "pgha ctl switchover: switchover %s from %s to %s is already %s\n"
			"HINT: `pgha ctl switchover --cancel` withdraws it\n", cur.id, cur.from, cur.to,
			so_phase_name(cur.phase));
		goto out;
	}
	char q[300];
	if (at > wall_ms()) {
		time_t ts = (time_t)(at / 1000);
		struct tm tm;
		char when[64];
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&ts, &tm));
		snprintf(q, sizeof(q), "Switch over from %s to %s at %s?", v.leader, to, when);
	} else {
		snprintf(q, sizeof(q), "Switch over from %s to %s now?", v.leader, to);
	}
	if (!ctl_confirm(q, force))
		goto out;
	struct switchover so;
	memset(&so, 0, sizeof(so));
	char token[9];
	if (random_token(token, sizeof(token) - 1, &e) != 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		goto out;
	}
	snprintf(so.id, sizeof(so.id), "so-%lld-%s", (long long)(wall_ms() / 1000), token);
	snprintf(so.from, sizeof(so.from), "%s", v.leader);
	snprintf(so.to, sizeof(so.to), "%s", to);
	so.at_ms = at;
	so.phase = SO_SCHEDULED;
	char *json = switchover_encode(&so);
	bool done = false;
	int64_t t0 = wall_ms();
	if (r == 1)
		rc = etcd_put_if_value(c, key, raw, json, 0, &done, &e);
	else
		rc = etcd_create(c, key, json, 0, &done, &e);
	free(json);
	if (rc != 0 || !done) {
		fprintf(stderr, "pgha ctl switchover: %s\n", rc != 0 ? e.msg : "another request was written meanwhile");
		rc = 1;
		goto out;
	}
	printf("switchover %s requested: %s -> %s%s\n", so.id, so.from, so.to, at > t0 ? " (scheduled)" : "");
	fflush(stdout);
	rc = 0;
	if (wait) {
		int64_t start = at > t0 ? at : t0;
		rc = follow(c, key, so.id, start + wait_s * 1000, start);
	}
out:
	free(raw);
	cluster_view_free(&v);
	free(key);
	free(prefix);
	return rc;
}

int ctl_cmd_switchover(const struct ctl_target *t, int argc, char **argv)
{
	const char *to = NULL, *at_text = NULL;
	bool force = false, do_cancel = false, wait = true;
	long wait_s = 60;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			to = argv[++i];
		else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc)
			at_text = argv[++i];
		else if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0)
			force = true;
		else if (strcmp(argv[i], "--cancel") == 0)
			do_cancel = true;
		else if (strcmp(argv[i], "--no-wait") == 0)
			wait = false;
		else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			char *end;
			wait_s = strtol(argv[++i], &end, 10);
			if (*end != '\0' || wait_s < 1 || wait_s > 86400) {
				fprintf(stderr, "pgha ctl switchover: --wait %s: give seconds, 1 to 86400\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return usage(stdout);
		else {
			fprintf(stderr, "pgha ctl switchover: unknown option \"%s\"\n", argv[i]);
			return usage(stderr);
		}
	}
	struct pgha_err e;
	struct etcd_client *c = ctl_etcd(t, &e);
	if (c == NULL) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		return 1;
	}
	char *prefix = ctl_cluster_prefix(t);
	char *key = xasprintf("%sswitchover", prefix);
	int rc = 1;
	if (do_cancel) {
		rc = cancel(t, c, key, force);
		goto out;
	}
	if (to == NULL) {
		fprintf(stderr, "pgha ctl switchover: --to NODE is required\n");
		rc = usage(stderr);
		goto out;
	}
	int64_t at = 0;
	if (at_text != NULL && (at = parse_at(at_text)) < 0) {
		fprintf(stderr, "pgha ctl switchover: --at \"%s\": use +30s, +5m, or 2026-11-21T23:00:00Z\n", at_text);
		rc = 2;
		goto out;
	}
	rc = ctl_switchover_run(t, c, to, at, force, wait, wait_s);
out:
	free(key);
	free(prefix);
	etcd_free(c);
	return rc;
}
