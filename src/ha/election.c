#include "ha/election.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"

/* Is a's data ahead of b's? (timeline, then position) */
static bool data_ahead_of(const struct ha_candidate *a, const struct ha_candidate *b)
{
	if (a->timeline != b->timeline)
		return a->timeline > b->timeline;
	return a->lsn > b->lsn;
}

/* a ahead of b? (timeline, then position, then the old leader's region, then priority, then the lower name) */
static bool ahead_of(const struct ha_candidate *a, const struct ha_candidate *b)
{
	if (a->timeline != b->timeline || a->lsn != b->lsn)
		return data_ahead_of(a, b);
	if (a->home_region != b->home_region)
		return a->home_region;
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return strcmp(a->name, b->name) < 0;
}

enum ha_rank ha_rank(const struct ha_candidate *me, const struct ha_candidate *others, size_t n,
		     const char **ahead)
{
	for (size_t i = 0; i < n; i++) {
		const struct ha_candidate *o = &others[i];
		if (!o->answered || !o->candidate)
			continue;
		if (!o->settled) {
			if (ahead)
				*ahead = o->name;
			return HA_RANK_UNSETTLED;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct ha_candidate *o = &others[i];
		if (o->answered && o->candidate && ahead_of(o, me)) {
			if (ahead)
				*ahead = o->name;
			return HA_RANK_BEHIND;
		}
	}
	return HA_RANK_BEST;
}

/* In synchronous mode: may it take the key? */
static bool sync_competitor(const struct ha_candidate *o)
{
	return o->answered && o->candidate && (o->listed || o->sync_leader);
}

/* ... and must I not be behind it? (a listed standby may hold the only copy of a commit) */
static bool sync_counts(const struct ha_candidate *o)
{
	return sync_competitor(o) || (o->answered && o->listed && o->has_position);
}

enum ha_rank ha_rank_sync(const struct ha_candidate *me, const struct ha_candidate *others, size_t n,
			  size_t need, const char **ahead)
{
	size_t heard = me->listed ? 1 : 0;
	for (size_t i = 0; i < n; i++) {
		const struct ha_candidate *o = &others[i];
		if (!sync_counts(o))
			continue;
		if (!o->settled) {
			if (ahead)
				*ahead = o->name;
			return HA_RANK_UNSETTLED;
		}
		if (o->listed && o->has_position)
			heard++;
	}
	if (heard < need) {
		if (ahead)
			*ahead = NULL;
		return HA_RANK_NO_QUORUM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct ha_candidate *o = &others[i];
		/*
		 * A competitor wins ties (region, priority, name); one that will not take the key
		 * (it cannot reach etcd, say) is ahead only by its data, else a tie it wins would
		 * leave the key to nobody.
		 */
		if (sync_competitor(o) ? ahead_of(o, me) : sync_counts(o) && data_ahead_of(o, me)) {
			if (ahead)
				*ahead = o->name;
			return HA_RANK_BEHIND;
		}
	}
	return HA_RANK_BEST;
}

static uint64_t lsn_field(json_t *o, const char *key)
{
	uint64_t v = 0;
	json_t *j = json_object_get(o, key);
	if (json_is_string(j))
		lsn_parse(json_string_value(j), &v);
	return v;
}

void ha_candidate_from_status(const char *json, struct ha_candidate *out)
{
	char name[MEMBER_NAME_MAX];
	snprintf(name, sizeof(name), "%s", out->name);
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", name);
	json_error_t jerr;
	json_t *o = json_loads(json, 0, &jerr);
	if (!json_is_object(o))
		goto out;
	json_t *role = json_object_get(o, "role"), *state = json_object_get(o, "state");
	json_t *tl = json_object_get(o, "timeline"), *tags = json_object_get(o, "tags");
	if (!json_is_string(role) || !json_is_string(state) || !json_is_integer(tl))
		goto out;
	if (json_integer_value(tl) < 0 || json_integer_value(tl) > (json_int_t)UINT32_MAX - 1)
		goto out;   /* not a timeline: an answer we cannot use */
	out->answered = true;
	out->timeline = (uint32_t)json_integer_value(tl);
	uint64_t rx = lsn_field(o, "received_lsn"), re = lsn_field(o, "replayed_lsn");
	out->lsn = rx > re ? rx : re;
	out->settled = json_is_null(json_object_get(o, "leader")) ||
		       json_object_get(o, "leader") == NULL;
	bool nofailover = false;
	out->priority = 100;
	if (json_is_object(tags)) {
		nofailover = json_is_true(json_object_get(tags, "nofailover"));
		json_t *p = json_object_get(tags, "priority");
		if (json_is_integer(p))
			out->priority = (int)json_integer_value(p);
		json_t *region = json_object_get(tags, "region");
		if (json_is_string(region) && member_label_valid(json_string_value(region)))
			snprintf(out->region, sizeof(out->region), "%s", json_string_value(region));
	}
	const char *st = json_string_value(state);
	if (strcmp(json_string_value(role), "primary") == 0 && strcmp(st, "running") == 0 &&
	    json_is_true(json_object_get(o, "etcd_reachable"))) {
		/* A running primary that reaches etcd will take the free key itself: let it. */
		out->candidate = out->settled = out->has_position = true;
		out->timeline = UINT32_MAX;
		goto out;
	}
	out->has_position = strcmp(json_string_value(role), "replica") == 0 &&
			    (strcmp(st, "running") == 0 || strcmp(st, "streaming") == 0);
	out->candidate = strcmp(json_string_value(role), "replica") == 0 &&
			 (strcmp(st, "running") == 0 || strcmp(st, "streaming") == 0) &&
			 json_is_true(json_object_get(o, "etcd_reachable")) && !nofailover &&
			 out->priority > 0;
out:
	json_decref(o);
}

void ha_poll_candidates(const struct cluster_view *v, const char *self, const struct httpc_tls *tls,
			int timeout_ms, struct ha_candidate **out, size_t *n)
{
	struct httpc_req *reqs = xcalloc(v->nmembers, sizeof(*reqs));
	struct ha_candidate *c = xcalloc(v->nmembers, sizeof(*c));
	char **urls = xcalloc(v->nmembers, sizeof(*urls));
	size_t k = 0;
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		if (strcmp(m->name, self) == 0 || m->api_url[0] == '\0')
			continue;
		urls[k] = xasprintf("%s/status", m->api_url);
		reqs[k].url = urls[k];
		reqs[k].tls = tls;
		snprintf(c[k].name, sizeof(c[k].name), "%s", m->name);
		k++;
	}
	httpc_run(reqs, k, timeout_ms);
	for (size_t i = 0; i < k; i++) {
		/* /status answers 503 when PostgreSQL is down: the body still says why. */
		if (reqs[i].status == 200 || reqs[i].status == 503)
			ha_candidate_from_status(sb_str(&reqs[i].resp), &c[i]);
		else if (reqs[i].status == 0)
			log_info("election: no answer from %s: %s", reqs[i].url, reqs[i].error);
		else
			log_info("election: no answer from %s: HTTP %d", reqs[i].url, reqs[i].status);
		sb_free(&reqs[i].resp);
		free(urls[i]);
	}
	free(urls);
	free(reqs);
	*out = c;
	*n = k;
}
