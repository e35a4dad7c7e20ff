/*
 * admin.c — the admin console: `psql -p <port> -U <admin user> pgha`.
 * Simple-protocol commands only:
 *   SHOW POOLS | CLIENTS | SERVERS | STATS | BACKENDS | HELP
 *   PAUSE    new transactions wait at a transaction boundary; running ones finish
 *   RESUME   let them go
 *   RELOAD   re-read the users file
 * Only users listed in [auth] admin_users get in.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "common/log.h"
#include "common/util.h"
#include "pgproto/pgproto.h"
#include "proxy/admin.h"
#include "proxy/objects.h"
#include "proxy/reload.h"

bool admin_allowed(const struct proxy *px, const char *user)
{
	const char *list = px->cfg.admin_users;
	size_t n = strlen(user);
	while (*list) {
		while (*list == ' ' || *list == ',')
			list++;
		size_t len = strcspn(list, ", ");
		if (len == n && strncmp(list, user, n) == 0)
			return true;
		list += len;
	}
	return false;
}

static void table(struct client *c, const char *const *cols, size_t ncols)
{
	pgp_build_row_description(&c->out, cols, ncols);
}

static void row(struct client *c, const char *const *vals, size_t n)
{
	pgp_build_data_row(&c->out, vals, n);
}

static const char *server_state(const struct server *s)
{
	switch (s->state) {
	case SV_CONNECTING: return "connecting";
	case SV_LOGIN: return "login";
	case SV_IDLE: return "idle";
	case SV_ACTIVE: return s->client ? "active" : "reset";
	case SV_CLOSING: return "closing";
	}
	return "?";
}

static const char *client_state(const struct client *c)
{
	static const char *const names[] = {"startup", "tls", "auth", "login", "idle", "waiting", "active", "closing"};
	return names[c->state];
}

static void show_pools(struct client *c)
{
	const char *cols[] = {"database", "user", "port", "cl_waiting", "sv_active", "sv_idle", "sv_login",
			      "pool_size", "last_error"};
	table(c, cols, 9);
	struct proxy *px = c->px;
	int rows = 0;
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next, rows++) {
		struct pool *p = link_entry(l, struct pool, node);
		int idle = 0, active = 0, login = 0;
		for (struct link *sl = p->idle.next; sl != &p->idle; sl = sl->next)
			idle++;
		for (struct link *sl = p->active.next; sl != &p->active; sl = sl->next) {
			struct server *s = link_entry(sl, struct server, node);
			if (s->state == SV_CONNECTING || s->state == SV_LOGIN)
				login++;
			else
				active++;
		}
		char w[16], a[16], i[16], g[16], ps[16];
		snprintf(w, sizeof(w), "%d", p->nwaiting);
		snprintf(a, sizeof(a), "%d", active);
		snprintf(i, sizeof(i), "%d", idle);
		snprintf(g, sizeof(g), "%d", login);
		snprintf(ps, sizeof(ps), "%d", px->cfg.pool_size);
		const char *vals[] = {p->database, p->user, p->ro ? "ro" : "rw", w, a, i, g, ps, p->last_error};
		row(c, vals, 9);
	}
	char tag[32];
	snprintf(tag, sizeof(tag), "SHOW %d", rows);
	pgp_build_command_complete(&c->out, tag);
}

static void show_servers(struct client *c)
{
	const char *cols[] = {"database", "user", "address", "state", "backend_pid", "age_s", "prepared"};
	table(c, cols, 7);
	struct proxy *px = c->px;
	int rows = 0;
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		struct link *lists[] = {&p->idle, &p->active};
		for (int k = 0; k < 2; k++) {
			for (struct link *sl = lists[k]->next; sl != lists[k]; sl = sl->next, rows++) {
				struct server *s = link_entry(sl, struct server, node);
				char addr[300], pid[16], age[24], prep[16];
				snprintf(addr, sizeof(addr), "%s:%d", s->target.host, s->target.port);
				snprintf(pid, sizeof(pid), "%d", s->backend_pid);
				snprintf(age, sizeof(age), "%lld", (long long)((px->now_ms - s->created_ms) / 1000));
				snprintf(prep, sizeof(prep), "%zu", s->nprepared);
				const char *vals[] = {p->database, p->user, addr, server_state(s), pid, age, prep};
				row(c, vals, 7);
			}
		}
	}
	char tag[32];
	snprintf(tag, sizeof(tag), "SHOW %d", rows);
	pgp_build_command_complete(&c->out, tag);
}

static void client_row(struct client *c, struct client *o, int *rows)
{
	char pid[16] = "";
	if (o->server)
		snprintf(pid, sizeof(pid), "%d", o->server->backend_pid);
	const char *vals[] = {o->addr, o->user, o->database, o->ro ? "ro" : "rw", client_state(o), pid,
			      o->app_name, o->pinned ? o->pinned : ""};
	row(c, vals, 8);
	(*rows)++;
}

static void show_clients(struct client *c)
{
	/* pinned_by: what keeps its server in transaction mode (sess.c), empty when nothing. */
	const char *cols[] = {"address", "user", "database", "port", "state", "server_pid", "application_name",
			      "pinned_by"};
	table(c, cols, 8);
	struct proxy *px = c->px;
	int rows = 0;
	for (struct link *l = px->clients_idle.next; l != &px->clients_idle; l = l->next)
		client_row(c, link_entry(l, struct client, node), &rows);
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next) {
		struct pool *p = link_entry(l, struct pool, node);
		for (struct link *wl = p->waiting.next; wl != &p->waiting; wl = wl->next)
			client_row(c, link_entry(wl, struct client, node), &rows);
		for (struct link *sl = p->active.next; sl != &p->active; sl = sl->next) {
			struct server *s = link_entry(sl, struct server, node);
			if (s->client)
				client_row(c, s->client, &rows);
		}
	}
	char tag[32];
	snprintf(tag, sizeof(tag), "SHOW %d", rows);
	pgp_build_command_complete(&c->out, tag);
}

static void show_stats(struct client *c)
{
	struct proxy *px = c->px;
	const char *cols[] = {"clients", "clients_accepted", "transactions", "queries", "avg_xact_ms", "errors_sent",
			      "routing_changes", "paused"};
	table(c, cols, 8);
	char v[7][32];
	snprintf(v[0], 32, "%d", px->nclients);
	snprintf(v[1], 32, "%llu", (unsigned long long)px->stats_clients_total);
	snprintf(v[2], 32, "%llu", (unsigned long long)px->stats_xacts);
	snprintf(v[3], 32, "%llu", (unsigned long long)px->stats_queries);
	snprintf(v[4], 32, "%.2f", px->stats_xacts ? (double)px->stats_xact_ms_sum / (double)px->stats_xacts : 0.0);
	snprintf(v[5], 32, "%llu", (unsigned long long)px->stats_errors_sent);
	snprintf(v[6], 32, "%llu", (unsigned long long)px->stats_routing_changes);
	const char *vals[] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], px->paused ? "yes" : "no"};
	row(c, vals, 8);
	pgp_build_command_complete(&c->out, "SHOW 1");
}

static void show_backends(struct client *c)
{
	struct proxy *px = c->px;
	const char *cols[] = {"name", "address", "role", "lag_bytes"};
	table(c, cols, 4);
	int rows = 0;
	char addr[300], lag[32];
	if (px->topo.has_leader) {
		snprintf(addr, sizeof(addr), "%s:%d", px->topo.leader.host, px->topo.leader.port);
		const char *vals[] = {px->topo.leader.name, addr, "leader", "0"};
		row(c, vals, 4);
		rows++;
	}
	for (int i = 0; i < px->topo.nreplicas; i++, rows++) {
		const struct route_target *r = &px->topo.replicas[i];
		snprintf(addr, sizeof(addr), "%s:%d", r->host, r->port);
		snprintf(lag, sizeof(lag), "%lld", (long long)r->lag_bytes);
		const char *vals[] = {r->name, addr, "standby", r->lag_bytes >= 0 ? lag : NULL};
		row(c, vals, 4);
	}
	char tag[32];
	snprintf(tag, sizeof(tag), "SHOW %d", rows);
	pgp_build_command_complete(&c->out, tag);
}

static bool is_cmd(const char *sql, const char *cmd)
{
	while (isspace((unsigned char)*sql))
		sql++;
	size_t n = strlen(cmd);
	if (strncasecmp(sql, cmd, n) != 0)
		return false;
	sql += n;
	while (isspace((unsigned char)*sql) || *sql == ';')
		sql++;
	return *sql == '\0';
}

/* Run one command; true: RESUME (the caller lets the waiting transactions go). */
static bool run(struct client *c, const char *sql)
{
	bool resume = false;
	struct proxy *px = c->px;
	if (is_cmd(sql, "SHOW POOLS")) {
		show_pools(c);
	} else if (is_cmd(sql, "SHOW SERVERS")) {
		show_servers(c);
	} else if (is_cmd(sql, "SHOW CLIENTS")) {
		show_clients(c);
	} else if (is_cmd(sql, "SHOW STATS")) {
		show_stats(c);
	} else if (is_cmd(sql, "SHOW BACKENDS")) {
		show_backends(c);
	} else if (is_cmd(sql, "SHOW HELP") || is_cmd(sql, "HELP")) {
		pgp_build_notice(&c->out, "NOTICE", "00000",
				 "Commands: SHOW POOLS|CLIENTS|SERVERS|STATS|BACKENDS, PAUSE, RESUME, RELOAD", NULL, NULL);
		pgp_build_command_complete(&c->out, "SHOW");
	} else if (is_cmd(sql, "PAUSE")) {
		px->paused = true;
		log_info("admin %s: PAUSE: new transactions wait", c->user);
		pgp_build_command_complete(&c->out, "PAUSE");
	} else if (is_cmd(sql, "RESUME")) {
		px->paused = false;
		log_info("admin %s: RESUME", c->user);
		resume = true;
		pgp_build_command_complete(&c->out, "RESUME");
	} else if (is_cmd(sql, "RELOAD")) {
		struct pgha_err e;
		if (proxy_reload(px, &e) != 0) {
			pgp_build_error(&c->out, "ERROR", "F0000", e.msg, NULL, NULL);
		} else {
			log_info("admin %s: RELOAD", c->user);
			pgp_build_command_complete(&c->out, "RELOAD");
		}
	} else {
		pgp_build_error(&c->out, "ERROR", "42601", "unknown admin command", NULL,
				"SHOW POOLS|CLIENTS|SERVERS|STATS|BACKENDS, PAUSE, RESUME, RELOAD");
	}
	pgp_build_ready_for_query(&c->out, 'I');
	return resume;
}

void admin_login_done(struct client *c)
{
	static const char *const params[][2] = {
		{"server_version", "15.0 (pgha proxy admin)"}, {"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"}, {"TimeZone", "UTC"},
	};
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		pgp_build_parameter_status(&c->out, params[i][0], params[i][1]);
	pgp_build_backend_key_data(&c->out, 0, "\0\0\0\0", 4);
	pgp_build_ready_for_query(&c->out, 'I');
	client_set_state(c, CL_IDLE);
}

int admin_input(struct client *c, bool *resume)
{
	for (;;) {
		struct pgp_msg m;
		struct pgha_err e;
		int r = pgp_frame(c->in.data + c->in.start, pbuf_len(&c->in), 65536, &m, &e);
		if (r == PGP_NEED_MORE)
			return 0;
		if (r != PGP_OK)
			return -1;
		c->in.start += m.total_len;
		if (m.type == 'X')
			return -1;
		if (m.type != 'Q') {
			pgp_build_error(&c->out, "ERROR", "0A000", "the admin console speaks the simple protocol only",
					NULL, NULL);
			if (m.type == 'S')
				pgp_build_ready_for_query(&c->out, 'I');
			continue;
		}
		const char *sql;
		if (pgp_parse_query(&m, &sql, &e) != 0)
			return -1;
		*resume |= run(c, sql);
	}
}
