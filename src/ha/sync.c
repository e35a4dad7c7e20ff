/*
 * sync.c — synchronous replication state and the safe planner (see sync.h).
 */
#include "ha/sync.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/strbuf.h"
#include "common/util.h"

static bool subset(const struct sync_set *a, const struct sync_set *b)
{
	for (size_t i = 0; i < a->n; i++)
		if (!sync_set_has(b, a->names[i]))
			return false;
	return true;
}

static size_t union_size(const struct sync_set *a, const struct sync_set *b)
{
	size_t n = a->n;
	for (size_t i = 0; i < b->n; i++)
		if (!sync_set_has(a, b->names[i]))
			n++;
	return n;
}

void sync_set_describe(const struct sync_set *s, char *out, size_t len)
{
	if (s->n == 0) {
		snprintf(out, len, "(none)");
		return;
	}
	size_t k = (size_t)snprintf(out, len, "ANY %d (", s->num);
	for (size_t i = 0; i < s->n && k < len; i++)
		k += (size_t)snprintf(out + k, len - k, "%s%s", i ? ", " : "", s->names[i]);
	if (k < len)
		snprintf(out + k, len - k, ")");
}


bool sync_safe(const struct sync_set *ssn, const struct sync_set *pub)
{
	if (pub->n == 0)
		return true;
	if (pub->num < 1 || (size_t)pub->num > pub->n || ssn->num < 0)
		return false;
	return (size_t)ssn->num + (size_t)pub->num > union_size(ssn, pub);
}

/* ---- synchronous_standby_names ------------------------------------------- */

static void quote_name(struct strbuf *sb, const char *name)
{
	sb_puts(sb, "\"");
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			sb_puts(sb, "\"");
		sb_append(sb, p, 1);
	}
	sb_puts(sb, "\"");
}

char *sync_ssn_format(const struct sync_set *s, bool quorum)
{
	struct strbuf sb = STRBUF_INIT;
	if (s->n == 0 || s->num <= 0) {
		sb_puts(&sb, "");
		return sb_steal(&sb);
	}
	if (!quorum && s->n == 1 && s->num == 1) {
		quote_name(&sb, s->names[0]);
		return sb_steal(&sb);
	}
	sb_printf(&sb, "ANY %d (", s->num);
	for (size_t i = 0; i < s->n; i++) {
		if (i)
			sb_puts(&sb, ",");
		quote_name(&sb, s->names[i]);
	}
	sb_puts(&sb, ")");
	return sb_steal(&sb);
}

struct lexer {
	const char *p;
};

static void skip_space(struct lexer *lx)
{
	while (*lx->p && isspace((unsigned char)*lx->p))
		lx->p++;
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* A name: "quoted ""like"" this" or an identifier/number. */
static int lex_name(struct lexer *lx, char *out, size_t len)
{
	skip_space(lx);
	size_t n = 0;
	if (*lx->p == '"') {
		lx->p++;
		for (;;) {
			if (*lx->p == '\0')
				return -1;
			if (*lx->p == '"') {
				if (lx->p[1] != '"')
					break;
				lx->p++;
			}
			if (n + 1 >= len)
				return -1;
			out[n++] = *lx->p++;
		}
		lx->p++;
	} else {
		while (ident_char(*lx->p)) {
			if (n + 1 >= len)
				return -1;
			out[n++] = *lx->p++;
		}
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

static bool lex_keyword(struct lexer *lx, const char *kw)
{
	skip_space(lx);
	size_t n = strlen(kw);
	if (strncasecmp(lx->p, kw, n) == 0 && !ident_char(lx->p[n])) {
		lx->p += n;
		return true;
	}
	return false;
}

static int lex_list(struct lexer *lx, struct sync_set *out)
{
	for (;;) {
		char name[MEMBER_NAME_MAX];
		if (lex_name(lx, name, sizeof(name)) != 0)
			return -1;
		if (out->n >= SYNC_MAX)
			return -1;
		sync_set_add(out, name);
		skip_space(lx);
		if (*lx->p != ',')
			return 0;
		lx->p++;
	}
}

int sync_ssn_parse(const char *text, struct sync_set *out)
{
	struct lexer lx = {text ? text : ""};
	sync_set_clear(out);
	skip_space(&lx);
	if (*lx.p == '\0')
		return 0;
	bool counted = lex_keyword(&lx, "ANY") || lex_keyword(&lx, "FIRST");
	skip_space(&lx);
	const char *save = lx.p;
	if (isdigit((unsigned char)*lx.p)) {
		long k = strtol(lx.p, (char **)&lx.p, 10);
		skip_space(&lx);
		if (*lx.p == '(') {
			if (k < 1 || k > 1000)
				return -1;
			lx.p++;
			if (lex_list(&lx, out) != 0)
				return -1;
			skip_space(&lx);
			if (*lx.p != ')')
				return -1;
			lx.p++;
			skip_space(&lx);
			out->num = (int)k;
			return *lx.p == '\0' ? 0 : -1;
		}
		lx.p = save;   /* a standby named like a number */
	}
	if (counted)
		return -1;
	/* A plain list: the first one that is connected is synchronous (FIRST 1). */
	if (lex_list(&lx, out) != 0)
		return -1;
	skip_space(&lx);
	out->num = 1;
	return *lx.p == '\0' ? 0 : -1;
}


/* ---- what the leader wants ----------------------------------------------- */

void sync_goal(enum sync_mode mode, int count, const char *const *cands, size_t ncands,
	       const struct sync_set *cur, struct sync_set *goal)
{
	sync_set_clear(goal);
	switch (mode) {
	case SYNC_OFF:
		return;
	case SYNC_ON:
	case SYNC_STRICT: {
		const char *pick = NULL;
		for (size_t i = 0; i < ncands && pick == NULL; i++)
			if (cur != NULL && sync_set_has(cur, cands[i]))
				pick = cands[i];   /* keep the one we have: no needless switch */
		if (pick == NULL && ncands > 0)
			pick = cands[0];
		if (pick == NULL && mode == SYNC_STRICT)
			pick = SYNC_NONE_NAME;
		if (pick != NULL) {
			sync_set_add(goal, pick);
			goal->num = 1;
		}
		return;
	}
	case SYNC_QUORUM:
		for (size_t i = 0; i < ncands; i++)
			sync_set_add(goal, cands[i]);
		if (goal->n > 0)
			goal->num = count < 1 ? 1 : (size_t)count > goal->n ? (int)goal->n : count;
		return;
	}
}

void sync_goal_pub(const struct sync_set *goal, struct sync_set *pub)
{
	sync_set_clear(pub);
	if (goal->n == 0 || goal->num < 1 || (size_t)goal->num > goal->n || sync_set_has(goal, SYNC_NONE_NAME))
		return;
	*pub = *goal;
	pub->num = (int)goal->n - goal->num + 1;
}

/* ---- the planner ----------------------------------------------------------- */

static struct sync_step step(enum sync_step_kind kind, const struct sync_set *set, const char *why)
{
	struct sync_step s;
	memset(&s, 0, sizeof(s));
	s.kind = kind;
	if (set != NULL)
		s.set = *set;
	s.why = why;
	return s;
}

struct sync_step sync_plan(const struct sync_plan_in *in)
{
	const struct sync_set *ssn = in->ssn, *pub = in->pub, *goal = in->goal;
	struct sync_set empty, want_pub;
	sync_set_clear(&empty);
	sync_goal_pub(goal, &want_pub);

	if (!in->pub_mine)
		return step(SYNC_STEP_PUBLISH, &empty, "taking over the sync key as leader (empty set first)");
	if (!in->ssn_known) {
		if (pub->n > 0)
			return step(SYNC_STEP_PUBLISH, &empty,
				    "synchronous_standby_names holds a value pgha cannot read: publishing an empty set first");
		return step(SYNC_STEP_SSN, goal, "replacing a synchronous_standby_names value pgha cannot read");
	}

	/*
	 * The ssn we want now: the goal's names, with k raised as far as needed to
	 * stay safe against what is published (it comes down again once the
	 * published set has caught up).
	 */
	struct sync_set want = *goal;
	bool feasible = true;
	if (pub->n > 0) {
		size_t u = union_size(pub, goal);
		int k = (int)u - pub->num + 1;
		if (k > want.num)
			want.num = k;
		feasible = (size_t)want.num <= want.n;
	}
	if (feasible && !sync_set_equal(&want, ssn))
		return step(SYNC_STEP_SSN, &want,
			    want.num > goal->num ? "adding standbys to synchronous_standby_names (more acks for now)"
						 : "setting synchronous_standby_names");

	/* Published members that are no longer wanted go first. */
	if (!feasible || !subset(pub, goal)) {
		struct sync_set smaller = *pub;
		smaller.n = 0;
		for (size_t i = 0; i < pub->n; i++)
			if (sync_set_has(goal, pub->names[i]))
				sync_set_add(&smaller, pub->names[i]);
		long q = (long)union_size(&smaller, ssn) - ssn->num + 1;
		smaller.num = q < 1 ? 1 : (int)q;
		if (smaller.n == 0 || (size_t)smaller.num > smaller.n || !in->settled ||
		    !sync_safe(ssn, &smaller))
			return step(SYNC_STEP_PUBLISH, &empty, "removing members from the published synchronous set");
		return step(SYNC_STEP_PUBLISH, &smaller, "removing members from the published synchronous set");
	}

	if (!sync_set_equal(pub, &want_pub)) {
		if (!in->settled)
			return step(SYNC_STEP_NONE, NULL, "waiting for the synchronous standbys to confirm");
		if (!sync_safe(ssn, &want_pub))
			return step(SYNC_STEP_NONE, NULL, "waiting: the wanted set is not safe yet");
		return step(SYNC_STEP_PUBLISH, &want_pub, "publishing the synchronous set");
	}
	return step(SYNC_STEP_NONE, NULL, "steady");
}

