/*
 * reload.c — what SIGHUP and the admin console's RELOAD re-read: the config
 * file's reloadable options (a new region or zone retires the read-only
 * servers no longer where reads belong), the TLS files (clients' and
 * PostgreSQL's), the users file (and with it auth_user's password and the
 * derived SCRAM verifiers, creds.c).
 */
#include "proxy/reload.h"

#include <string.h>

#include "common/log.h"
#include "proxy/creds.h"
#include "proxy/pool.h"
#include "proxy/server_tls.h"
#include "proxy/tls.h"
#include "proxy/users.h"

int reload_users(struct proxy *px, struct pgha_err *e)
{
	struct user_entry *old = px->users;
	size_t nold = px->nusers;
	px->users = NULL;
	px->nusers = 0;
	if (users_load(px, e) != 0) {
		users_free(px);
		px->users = old;   /* keep the users we had */
		px->nusers = nold;
		return -1;
	}
	creds_users_loaded(px, old, nold);
	users_free_list(old, nold);
	return 0;
}

static void note_fixed(const struct config_option *o, void *arg)
{
	log_warn("reload: [%s] %s changed in %s: it takes effect at the next restart", o->section, o->name,
		 (const char *)arg);
}

int proxy_reload(struct proxy *px, struct pgha_err *e)
{
	struct proxy_config fresh;
	if (proxy_config_load(px->cfg.path, &fresh, e) != 0) {
		proxy_config_free(&fresh);
		return err_wrap(e, "keeping the running configuration");
	}
	/* Where reads go may change with these: servers no longer where they belong are retired. */
	bool moved = strcmp(px->cfg.region, fresh.region) != 0 || strcmp(px->cfg.zone, fresh.zone) != 0;
	config_take_reloadable(&proxy_config_table, &px->cfg, &fresh, note_fixed, px->cfg.path);
	px->cfg.server_auth_mask = fresh.server_auth_mask;   /* derived from reloadable options */
	px->cfg.server_sslmode = fresh.server_sslmode;
	proxy_config_free(&fresh);
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		p->pinning = proxy_pinning_for(&px->cfg, p->user, p->database);
	}
	log_set_level((enum log_level)px->cfg.log_level);
	if (moved) {
		log_info("reload: reads prefer standbys of region \"%s\", zone \"%s\"", px->cfg.region, px->cfg.zone);
		pool_topology_changed(px);
	}
	int rc = 0;
	if (tls_configure(px, e) != 0) {
		log_error("reload: %s (TLS keeps its previous state)", e->msg);
		rc = -1;
	}
	struct pgha_err se;
	if (server_tls_configure(px, &se) != 0) {
		log_error("reload: %s (TLS to PostgreSQL keeps its previous context and server_sslmode)", se.msg);
		if (rc == 0)
			*e = se;
		rc = -1;
	} else {
		creds_tls_changed(px);
	}
	struct pgha_err ue;
	if (reload_users(px, &ue) != 0) {
		log_error("reload: %s (keeping the previous users)", ue.msg);
		if (rc == 0)
			*e = ue;
		rc = -1;
	} else if (creds_reload(px, &ue) != 0) {
		log_error("reload: %s (auth_query keeps auth_user's previous password)", ue.msg);
		if (rc == 0)
			*e = ue;
		rc = -1;
	}
	if (rc == 0)
		log_info("reloaded %s", px->cfg.path);
	return rc;
}
