/*
 * creds.c — per-user credentials beyond the users file: auth_query answers
 * and SCRAM keys learned from clients (see creds.h). Lookups run in
 * authq.c's workers; this file is their event-loop side: the cache, one
 * lookup per user at a time, a bound on lookups in flight, lookups held while
 * no server is known (start, failover), and waking the clients that wait.
 */

#include "proxy/creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "auth/md5.h"
#include "common/log.h"
#include "common/util.h"
#include "proxy/authq.h"
#include "proxy/objects.h"
#include "proxy/users.h"

#define NBUCKETS 4096

struct cred {
	struct cred *next;         /* hash chain */
	char *name;
	char *secret;              /* last secret auth_query found (NULL: none) */
	int64_t answered_ms;       /* last answer, found or not (0: none to reuse) */
	bool fetching;             /* a lookup is queued, held or running */
	bool has_keys;
	struct scram_keys keys;    /* from the last client that logged in with SCRAM */
};

struct creds {
	struct cred *buckets[NBUCKETS];
	struct authq *q;           /* workers: derivations, and lookups when auth_query is on */
	bool lookups;              /* [auth] auth_user is set: users not in the file are looked up */
	int nfetching;
	struct authq_job *held;    /* lookups waiting for a server to run on */
	struct creds_wake *wakes, **wakes_tail;   /* answers not taken yet (creds_take_wake) */
};

/* ---- the table ------------------------------------------------------------ */

static unsigned bucket(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % NBUCKETS;
}

static struct cred *cred_find(struct creds *cs, const char *user)
{
	for (struct cred *cr = cs->buckets[bucket(user)]; cr != NULL; cr = cr->next)
		if (strcmp(cr->name, user) == 0)
			return cr;
	return NULL;
}

static struct cred *cred_get(struct creds *cs, const char *user)
{
	struct cred *cr = cred_find(cs, user);
	if (cr != NULL)
		return cr;
	cr = xcalloc(1, sizeof(*cr));
	cr->name = xstrdup(user);
	unsigned b = bucket(user);
	cr->next = cs->buckets[b];
	cs->buckets[b] = cr;
	return cr;
}

static void cred_free(struct cred *cr)
{
	free(cr->name);
	secret_free(cr->secret);
	scram_keys_wipe(&cr->keys);
	free(cr);
}

/* ---- setup ------------------------------------------------------------------ */

/* auth_user's password: its file, else its plaintext line in the users file. */
static int auth_user_password(struct proxy *px, char **out, struct pgha_err *e)
{
	const struct proxy_config *cfg = &px->cfg;
	if (cfg->auth_user_password_file[0] != '\0') {
		if (read_secret_file(cfg->auth_user_password_file, out, e) != 0)
			return err_wrap(e, "[auth] auth_user_password_file");
		return 0;
	}
	const struct user_entry *u = users_find(px, cfg->auth_user);
	if (u == NULL)
		return err_set(e, "[auth] auth_user = \"%s\": no password for it: put its plaintext password "
			       "in the users file (%s) or in auth_user_password_file", cfg->auth_user,
			       cfg->auth_file);
	if (scram_is_verifier(u->secret) || pgmd5_is_verifier(u->secret) || u->secret[0] == '\0')
		return err_set(e, "[auth] auth_user = \"%s\": the users file holds %s for it, but running "
			       "auth_query needs its plaintext password (put it there or in "
			       "auth_user_password_file)", cfg->auth_user,
			       u->secret[0] == '\0' ? "an empty password" : "a verifier");
	*out = xstrdup(u->secret);
	return 0;
}

int creds_start(struct proxy *px, bool check_only, struct pgha_err *e)
{
	px->creds = xcalloc(1, sizeof(*px->creds));
	const struct proxy_config *cfg = &px->cfg;
	char *pw = NULL;
	px->creds->lookups = cfg->auth_user[0] != '\0';
	if (px->creds->lookups && auth_user_password(px, &pw, e) != 0)
		return -1;
	if (check_only) {
		secret_free(pw);
		return 0;
	}
	/* Without auth_query, one worker derives the users file's verifiers. */
	struct authq_opts o = {.workers = 1};
	if (px->creds->lookups)
		o = (struct authq_opts){.user = cfg->auth_user, .password = pw, .dbname = cfg->auth_dbname,
					.query = cfg->auth_query, .timeout_ms = cfg->auth_query_timeout_ms,
					.workers = AUTHQ_WORKERS};
	px->creds->q = authq_start(&o, e);
	secret_free(pw);
	if (px->creds->q == NULL)
		return -1;
	px->authq_tag.kind = FD_AUTHQ;
	px->authq_tag.fd = authq_fd(px->creds->q);
	proxy_watch(px, &px->authq_tag, EPOLLIN);
	creds_users_loaded(px, NULL, 0);
	creds_tls_changed(px);
	if (px->creds->lookups)
		log_info("auth_query: users not in the users file are looked up as \"%s\" (database \"%s\", "
			 "answers reused for %d ms)", cfg->auth_user, cfg->auth_dbname, cfg->auth_query_cache_ms);
	return 0;
}

void creds_tls_changed(struct proxy *px)
{
	if (px->creds == NULL || px->creds->q == NULL || !px->creds->lookups)
		return;
	const struct proxy_config *cfg = &px->cfg;
	struct authq_tls t;
	snprintf(t.sslmode, sizeof(t.sslmode), "%s", proxy_sslmode_name(px->server_tls_mode));
	snprintf(t.rootcert, sizeof(t.rootcert), "%s", cfg->tls_server_ca_file);
	snprintf(t.cert, sizeof(t.cert), "%s", cfg->tls_server_cert_file);
	snprintf(t.key, sizeof(t.key), "%s", cfg->tls_server_key_file);
	authq_set_tls(px->creds->q, &t);
}

int creds_reload(struct proxy *px, struct pgha_err *e)
{
	if (px->creds == NULL || !px->creds->lookups)
		return 0;
	char *pw = NULL;
	if (auth_user_password(px, &pw, e) != 0)
		return -1;
	authq_set_password(px->creds->q, pw);
	secret_free(pw);
	return 0;
}

void creds_stop(struct proxy *px)
{
	struct creds *cs = px->creds;
	if (cs == NULL)
		return;
	if (cs->q != NULL) {
		proxy_unwatch(px, &px->authq_tag);
		authq_stop(cs->q);
	}
	while (cs->held != NULL) {
		struct authq_job *j = cs->held;
		cs->held = j->next;
		authq_job_free(j);
	}
	struct creds_wake *w;
	while ((w = creds_take_wake(px)) != NULL)
		creds_wake_free(w);
	for (int b = 0; b < NBUCKETS; b++) {
		while (cs->buckets[b] != NULL) {
			struct cred *cr = cs->buckets[b];
			cs->buckets[b] = cr->next;
			cred_free(cr);
		}
	}
	free(cs);
	px->creds = NULL;
}

/* ---- the users file's verifiers ---------------------------------------------- */

/* A plaintext password (not a verifier or an md5 hash, not empty): SCRAM needs its verifier. */
static bool needs_verifier(const char *secret)
{
	return secret[0] != '\0' && !scram_is_verifier(secret) && !pgmd5_is_verifier(secret);
}

static void derive_submit(struct creds *cs, struct user_entry *u)
{
	struct authq_job *j = xcalloc(1, sizeof(*j));
	j->kind = AUTHQ_DERIVE;
	snprintf(j->user, sizeof(j->user), "%s", u->name);
	j->password = xstrdup(u->secret);
	u->deriving = true;
	authq_submit(cs->q, j);
}

void creds_users_loaded(struct proxy *px, struct user_entry *old, size_t nold)
{
	struct creds *cs = px->creds;
	if (cs == NULL || cs->q == NULL)
		return;   /* --check, or before creds_start() (which comes back here) */
	for (size_t i = 0; i < px->nusers; i++) {
		struct user_entry *u = &px->users[i];
		/* A name too long for a startup packet's user (client.c) never logs in: nothing to derive. */
		if (!needs_verifier(u->secret) || strlen(u->name) >= sizeof(((struct authq_job *)NULL)->user))
			continue;
		struct user_entry *was = NULL;
		/* The same line as before first: a reload of a file with a few changes stays linear. */
		for (size_t k = 0; k <= nold && was == NULL; k++) {
			size_t at = k == 0 ? i : k - 1;
			if (at < nold && strcmp(old[at].name, u->name) == 0 && strcmp(old[at].secret, u->secret) == 0)
				was = &old[at];
		}
		if (was != NULL && was->verifier != NULL) {
			u->verifier = was->verifier;   /* same password: same verifier, same salt */
			was->verifier = NULL;
		} else if (was != NULL && was->deriving) {
			u->deriving = true;            /* its job's answer matches this entry too */
		} else {
			derive_submit(cs, u);
		}
	}
}

struct scram_server *creds_scram_server(struct proxy *px, const char *user, const char *secret,
					struct pgha_err *e)
{
	const struct user_entry *u = users_find(px, user);
	if (u != NULL && u->verifier != NULL)
		return scram_server_new_stored(user, u->verifier, NULL, e);
	if (u != NULL && needs_verifier(u->secret))
		/* Its derivation failed (logged): fail at the end, as for a wrong password. */
		return scram_server_new_doomed(user, NULL, "no SCRAM verifier could be derived from the users "
					       "file's password (see the proxy's log)", e);
	return scram_server_new_stored(user, secret, NULL, e);
}

/* ---- client logins ---------------------------------------------------------- */

const char *creds_secret(struct proxy *px, const char *user)
{
	const struct user_entry *u = users_find(px, user);
	if (u != NULL)
		return u->secret;
	struct cred *cr = px->creds ? cred_find(px->creds, user) : NULL;
	return cr ? cr->secret : NULL;
}

/* Where lookups run: the leader, else a standby (pg_authid is the same on all). */
static bool lookup_target(struct proxy *px, struct authq_job *j)
{
	const struct topology *t = &px->topo;
	const struct route_target *r = t->has_leader ? &t->leader : t->nreplicas > 0 ? &t->replicas[0] : NULL;
	if (r == NULL)
		return false;
	snprintf(j->host, sizeof(j->host), "%s", r->host);
	j->port = r->port;
	return true;
}

enum creds_lookup creds_lookup(struct proxy *px, const char *user, const char **secret,
			       struct pgha_err *e)
{
	const struct user_entry *u = users_find(px, user);
	struct creds *cs = px->creds;
	*secret = u ? u->secret : NULL;
	if (u != NULL && u->deriving)
		return CREDS_PENDING;   /* right after a (re)load: its verifier comes in milliseconds */
	if (u != NULL || cs == NULL || !cs->lookups)
		return CREDS_KNOWN;
	struct cred *cr = cred_find(cs, user);
	if (cr != NULL && cr->fetching)
		return CREDS_PENDING;
	if (cr != NULL && cr->answered_ms != 0 && px->now_ms - cr->answered_ms < px->cfg.auth_query_cache_ms) {
		*secret = cr->secret;
		return CREDS_KNOWN;
	}
	if (cs->nfetching >= CREDS_MAX_LOOKUPS) {
		err_set(e, "too many auth_query lookups at once (%d)", CREDS_MAX_LOOKUPS);
		return CREDS_FAILED;
	}
	cr = cred_get(cs, user);
	cr->fetching = true;
	cs->nfetching++;
	struct authq_job *j = xcalloc(1, sizeof(*j));
	snprintf(j->user, sizeof(j->user), "%s", user);
	if (lookup_target(px, j)) {
		authq_submit(cs->q, j);
	} else {
		/* No server known yet (start, failover): wait for one, up to hold_timeout. */
		j->hold_until_ms = px->now_ms + px->cfg.hold_timeout_ms;
		j->next = cs->held;
		cs->held = j;
	}
	return CREDS_PENDING;
}

static const char *secret_kind(const char *s)
{
	return scram_is_verifier(s) ? "SCRAM verifier" : pgmd5_is_verifier(s) ? "md5 hash" : "plaintext";
}

/* The clients waiting for user's lookup or verifier go on: queued for the caller (creds_take_wake). */
static void wake_clients(struct proxy *px, const char *user, const char *secret, const char *failure)
{
	struct creds *cs = px->creds;
	struct creds_wake *w = xcalloc(1, sizeof(*w));
	w->user = xstrdup(user);
	w->secret = secret ? xstrdup(secret) : NULL;
	w->failure = failure ? xstrdup(failure) : NULL;
	if (cs->wakes == NULL)
		cs->wakes_tail = &cs->wakes;
	*cs->wakes_tail = w;
	cs->wakes_tail = &w->next;
}

struct creds_wake *creds_take_wake(struct proxy *px)
{
	struct creds *cs = px->creds;
	struct creds_wake *w = cs ? cs->wakes : NULL;
	if (w != NULL)
		cs->wakes = w->next;
	return w;
}

void creds_wake_free(struct creds_wake *w)
{
	free(w->user);
	secret_free(w->secret);
	free(w->failure);
	free(w);
}

static void derived(struct proxy *px, struct authq_job *j)
{
	struct user_entry *u = (struct user_entry *)users_find(px, j->user);
	/* Answers for a password replaced by a reload since are dropped: its own job follows. */
	if (u == NULL || !u->deriving || strcmp(u->secret, j->password) != 0) {
		authq_job_free(j);
		return;
	}
	u->deriving = false;
	if (j->status == AUTHQ_FOUND) {
		log_debug("users file: SCRAM verifier of user \"%s\" derived in %lld ms", j->user,
			  (long long)j->took_ms);
		u->verifier = j->secret;
		j->secret = NULL;
	} else {
		log_warn("users file: user \"%s\": no SCRAM verifier can be derived from its password (%s): "
			 "its SCRAM logins fail", j->user, j->detail);
	}
	wake_clients(px, u->name, u->secret, NULL);
	authq_job_free(j);
}

static void answered(struct proxy *px, struct authq_job *j)
{
	if (j->kind == AUTHQ_DERIVE) {
		derived(px, j);
		return;
	}
	struct creds *cs = px->creds;
	struct cred *cr = cred_get(cs, j->user);
	if (cr->fetching) {
		cr->fetching = false;
		cs->nfetching--;
	}
	switch (j->status) {
	case AUTHQ_FOUND:
		log_debug("auth_query: user \"%s\" found (%s) on %s:%d in %lld ms", j->user,
			  secret_kind(j->secret), j->host, j->port, (long long)j->took_ms);
		if (cr->secret == NULL || strcmp(cr->secret, j->secret) != 0) {
			secret_free(cr->secret);
			cr->secret = j->secret;
			j->secret = NULL;
		}
		cr->answered_ms = px->now_ms;
		break;
	case AUTHQ_NOT_FOUND:
		log_info("auth_query: user \"%s\": %s", j->user, j->detail);
		secret_free(cr->secret);
		cr->secret = NULL;
		cr->answered_ms = px->now_ms;
		break;
	case AUTHQ_FAILED:
		log_warn("auth_query for user \"%s\" failed after %lld ms: %s", j->user, (long long)j->took_ms,
			 j->detail);
		cr->answered_ms = 0;   /* the next login tries again */
		break;
	}
	wake_clients(px, j->user, cr->secret, j->status == AUTHQ_FAILED ? j->detail : NULL);
	authq_job_free(j);
}

void creds_lookups_done(struct proxy *px)
{
	struct creds *cs = px->creds;
	if (cs == NULL || cs->q == NULL)
		return;
	struct authq_job *j = authq_take_done(cs->q);
	while (j != NULL) {
		struct authq_job *next = j->next;
		answered(px, j);
		j = next;
	}
}

/* Held lookups: a server is known now, or they give up after hold_timeout. */
void creds_topology_changed(struct proxy *px)
{
	struct creds *cs = px->creds;
	if (cs == NULL)
		return;
	struct authq_job *held = cs->held;
	cs->held = NULL;
	while (held != NULL) {
		struct authq_job *j = held;
		held = j->next;
		j->next = NULL;
		if (lookup_target(px, j)) {
			authq_submit(cs->q, j);
		} else if (px->now_ms >= j->hold_until_ms) {
			j->status = AUTHQ_FAILED;
			snprintf(j->detail, sizeof(j->detail), "no PostgreSQL server known to run auth_query on "
				 "after %d ms (no leader or standby in etcd)", px->cfg.hold_timeout_ms);
			answered(px, j);
		} else {
			j->next = cs->held;
			cs->held = j;
		}
	}
}

void creds_tick(struct proxy *px)
{
	struct creds *cs = px->creds;
	if (cs == NULL)
		return;
	creds_topology_changed(px);
	/* Answers too old to reuse, for users with nothing else to keep. */
	for (int b = 0; b < NBUCKETS; b++) {
		for (struct cred **pp = &cs->buckets[b]; *pp != NULL;) {
			struct cred *cr = *pp;
			bool stale = cr->answered_ms == 0 || px->now_ms - cr->answered_ms >= px->cfg.auth_query_cache_ms;
			if (!cr->fetching && !cr->has_keys && cr->secret == NULL && stale) {
				*pp = cr->next;
				cred_free(cr);
				continue;
			}
			pp = &cr->next;
		}
	}
}

void creds_learn_keys(struct proxy *px, const char *user, const struct scram_keys *k)
{
	if (px->creds == NULL)
		return;
	struct cred *cr = cred_get(px->creds, user);
	cr->keys = *k;
	cr->has_keys = true;
}

/* ---- server logins ---------------------------------------------------------- */

void creds_for_server(struct proxy *px, const char *user, struct server_creds *out)
{
	memset(out, 0, sizeof(*out));
	const struct user_entry *u = users_find(px, user);
	struct cred *cr = px->creds ? cred_find(px->creds, user) : NULL;
	const char *secret = NULL;
	if (u != NULL) {
		secret = u->secret;
		out->source = "the users file";
	} else if (cr != NULL && cr->secret != NULL) {
		secret = cr->secret;
		out->source = "auth_query";
	}
	if (secret == NULL)
		return;
	if (scram_is_verifier(secret)) {
		struct scram_verifier v;
		struct pgha_err e;
		out->secret_kind = "a SCRAM verifier";
		if (scram_verifier_parse(secret, &v, &e) != 0)
			out->no_keys = "that verifier is malformed";
		else if (cr == NULL || !cr->has_keys)
			out->no_keys = "no client of this user has logged in with SCRAM since the proxy started "
				       "(the proxy learns the SCRAM key from a client's login)";
		else if (!scram_keys_match(&cr->keys, &v))
			out->no_keys = "the SCRAM key learned from a client belongs to an earlier verifier (the "
				       "secret changed since; the next client login brings the new key)";
		else
			out->keys = &cr->keys;
		scram_verifier_wipe(&v);
	} else if (pgmd5_is_verifier(secret)) {
		out->secret_kind = "an md5 hash";
		out->md5_hash = secret;
	} else if (secret[0] == '\0') {
		out->secret_kind = "an empty password";
	} else {
		out->secret_kind = "a password";
		out->password = secret;
	}
}
