/*
 * switchover_req.c — asking for a planned switchover (see switchover_req.h).
 */
#include "cluster/switchover_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/config_key.h"
#include "common/config.h"
#include "common/strbuf.h"
#include "common/util.h"

int64_t switchover_parse_time(const char *s, int64_t now_wall_ms)
{
	if (s[0] == '+') {
		long ms;
		if (config_parse_duration_ms(s + 1, &ms) != 0 || ms < 0)
			return -1;
		return now_wall_ms + ms;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL)
		rest = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
	if (rest == NULL)
		return -1;
	long offset = 0;
	if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0) {
		int hh, mm;
		char sign;
		if (strlen(rest) != 6 || sscanf(rest, "%c%2d:%2d", &sign, &hh, &mm) != 3 || (sign != '+' && sign != '-') ||
		    hh > 14 || mm > 59)
			return -1;
		offset = (sign == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
	}
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return ((int64_t)t - offset) * 1000;
}

int switchover_read(struct etcd_client *c, const char *key, struct switchover *so, char **raw, struct pgha_err *e)
{
	struct etcd_kvs kvs = {0};
	if (etcd_get(c, key, &kvs, e) != 0)
		return -1;
	int rc = 0;
	if (kvs.count > 0) {
		*raw = xstrdup(kvs.kvs[0].value);
		struct pgha_err ignored;
		if (switchover_decode(kvs.kvs[0].value, kvs.kvs[0].value_len, so, &ignored) != 0) {
			memset(so, 0, sizeof(*so));
			so->phase = SO_ABORTED;   /* unreadable: may be replaced */
		}
		rc = 1;
	}
	etcd_kvs_free(&kvs);
	return rc;
}

int switchover_fit(const struct cluster_view *v, const char *to, struct pgha_err *e)
{
	const struct member *m = cluster_view_member(v, to);
	const struct member *lm = v->leader ? cluster_view_member(v, v->leader) : NULL;
	if (lm == NULL || lm->role != ROLE_PRIMARY || lm->state != STATE_RUNNING)
		return err_set(e, "the cluster has no running leader to hand over from\n"
			       "HINT: `pgha ctl failover --to NODE` when the leader is gone");
	if (m == NULL)
		return err_set(e, "%s is not a member of the cluster", to);
	if (strcmp(v->leader, to) == 0)
		return err_set(e, "%s is already the leader", to);
	if (m->role != ROLE_REPLICA || m->state != STATE_STREAMING)
		return err_set(e, "%s is not fit: it is %s and %s (a streaming standby is needed)", to,
			       member_role_name(m->role), member_state_name(m->state));
	if (m->tags.nofailover)
		return err_set(e, "%s is not fit: it is tagged nofailover", to);
	struct sync_state ss;
	if (dyncfg_view_sync(v, &ss, NULL) == 1 && !sync_set_has(&ss.set, to))
		return err_set(e, "%s is not fit: synchronous mode is on and it is not a synchronous standby", to);
	return 0;
}

int switchover_submit(struct etcd_client *c, const char *key, const struct cluster_view *v, const char *to,
		      int64_t at_ms, struct switchover *out, struct pgha_err *e)
{
	struct switchover cur;
	char *raw = NULL;
	int r = switchover_read(c, key, &cur, &raw, e);
	if (r < 0)
		return -1;
	int rc = -1;
	if (r == 1 && cur.phase != SO_DONE && cur.phase != SO_ABORTED) {
		err_set(e, "switchover %s from %s to %s is already %s\n"
			"HINT: `pgha ctl switchover --cancel` withdraws it", cur.id, cur.from, cur.to,
			so_phase_name(cur.phase));
		goto out;
	}
	memset(out, 0, sizeof(*out));
	char token[9];
	if (random_token(token, sizeof(token) - 1, e) != 0)
		goto out;
	snprintf(out->id, sizeof(out->id), "so-%lld-%s", (long long)(wall_ms() / 1000), token);
	snprintf(out->from, sizeof(out->from), "%s", v->leader);
	snprintf(out->to, sizeof(out->to), "%s", to);
	out->at_ms = at_ms;
	out->phase = SO_SCHEDULED;
	char *json = switchover_encode(out);
	bool done = false;
	int w = r == 1 ? etcd_put_if_value(c, key, raw, json, 0, &done, e) : etcd_create(c, key, json, 0, &done, e);
	free(json);
	if (w == 0 && !done)
		err_set(e, "another switchover request was written meanwhile");
	else if (w == 0)
		rc = 0;
out:
	free(raw);
	return rc;
}

int switchover_cancellable(const struct switchover *so, struct pgha_err *e)
{
	if (so->phase == SO_DONE || so->phase == SO_ABORTED)
		return err_set(e, "no switchover is pending");
	if (so->phase != SO_SCHEDULED && so->phase != SO_PAUSING)
		return err_set(e, "switchover %s is %s: too late to cancel (the leader is already stopping); it ends by "
			       "itself or aborts at its deadline", so->id, so_phase_name(so->phase));
	return 0;
}

int switchover_withdraw(struct etcd_client *c, const char *key, const char *raw, struct pgha_err *e)
{
	bool done = false;
	if (etcd_delete_if_value(c, key, raw, &done, e) != 0)
		return -1;
	if (!done)
		return err_set(e, "the switchover moved on meanwhile; look with `pgha ctl list`");
	return 0;
}
