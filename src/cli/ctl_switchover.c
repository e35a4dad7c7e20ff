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
#include "cluster/switchover.h"
#include "cluster/switchover_req.h"
#include "common/config.h"
#include "common/strbuf.h"
#include "common/util.h"

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

static int cancel(const struct ctl_target *t, struct etcd_client *c, const char *key, bool force)
{
	struct pgha_err e;
	struct switchover so;
	char *raw = NULL;
	int r = switchover_read(c, key, &so, &raw, &e);
	int rc = 1;
	if (r < 0 || (r == 1 && switchover_cancellable(&so, &e) != 0)) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		goto out;
	}
	if (r == 0) {
		fprintf(stderr, "pgha ctl switchover: no switchover is pending in cluster %s\n", t->cluster);
		goto out;
	}
	char q[256];
	snprintf(q, sizeof(q), "Cancel switchover %s from %s to %s?", so.id, so.from, so.to);
	if (!ctl_confirm(q, force))
		goto out;
	if (switchover_withdraw(c, key, raw, &e) != 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		goto out;
	}
	printf("switchover %s cancelled\n", so.id);
	rc = 0;
out:
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
		int r = switchover_read(c, key, &so, &raw, &e);
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
	if (ctl_read_view(t, &v, NULL, &e) != 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
		goto out;
	}
	if (switchover_fit(&v, to, &e) != 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
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
	int64_t t0 = wall_ms();
	if (switchover_submit(c, key, &v, to, at, &so, &e) != 0) {
		fprintf(stderr, "pgha ctl switchover: %s\n", e.msg);
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
	if (at_text != NULL && (at = switchover_parse_time(at_text, wall_ms())) < 0) {
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
