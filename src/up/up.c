/*
 * up.c — `pgha up`: etcd (one member, or --etcd 3|5) and N agents on loopback, for trying pgha out
 * and for tests. Everything lives in one directory:
 *   DIR/up.conf                ports and sizes chosen the first time (reused after)
 *   DIR/secrets/ (*.password)  generated passwords (0600)
 *   DIR/pgpass                 passfile for your psql (0600)
 *   DIR/nodeN.conf, DIR/nodeN/ each agent's config and data
 *   DIR/etcd/ (DIR/etcdK/)     etcd's data (member K's with --etcd N; up_etcd.c)
 *   DIR/logs/                  etcd.log (etcdK.log), nodeN.log (agent), nodeN/… (PostgreSQL log)
 * Run again on the same DIR, it brings the same cluster back with its data.
 */
#include "up/up.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/restore.h"
#include "cli/ctl.h"
#include "common/ini.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "dcs/etcd.h"
#include "cluster/member.h"
#include "pg/pgconf.h"
#include "up/up_int.h"
#include "up/up_tls.h"

/* Agents' [tls] require: PostgreSQL takes TLS connections only (the proxy's are verify-full). */
#define UP_TLS_REQUIRE "on"

static void on_signal(int sig)
{
	up_stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha up [--dir DIR] [--nodes N] [options]\n"
		"\n"
		"Start a local cluster on this machine: etcd and N agents, each with its\n"
		"own PostgreSQL on loopback. Waits until every standby streams, prints how to\n"
		"connect, and stops everything cleanly on Ctrl-C. Run again with the same DIR\n"
		"to bring the same cluster back with its data.\n"
		"\n"
		"Options:\n"
		"  -d, --dir DIR        where everything lives (default ./pgha-up; as root, /var/tmp/pgha-up\n"
		"                       when ./ is not reachable by the OS user postgres)\n"
		"  -n, --nodes N        number of PostgreSQL members, 1 to %d (default 3; first run only)\n"
		"      --cluster NAME   cluster name (default pgha; first run only)\n"
		"      --etcd N         etcd members: 1 (default), 3 or 5, each on its own loopback\n"
		"                       ports with its own data directory and log; agents and proxy\n"
		"                       get every member's URL (first run only)\n"
		"      --timeout SEC    how long to wait for all members to stream (default 300)\n"
		"      --etcd-bin PATH  etcd server binary (default: etcd from PATH)\n"
		"      --bin-dir DIR    PostgreSQL binaries (default /usr/lib/postgresql/15/bin)\n"
		"      --backup         WAL archiving with pgBackRest to DIR/backup-repo on every member,\n"
		"                       a full backup at once then weekly, a differential one daily\n"
		"                       (a [backup] section in each node's config; first run only)\n"
		"      --restore-from SRC --to TARGET\n"
		"                       a new cluster made from the backups of the `pgha up --backup`\n"
		"                       cluster in SRC, recovered to TARGET (latest, an LSN, or a time\n"
		"                       such as \"2026-12-03 14:02:00\", UTC); it archives to the same\n"
		"                       repository under its own name (--cluster, default SRC's name\n"
		"                       + \"-restored\"; first run only)\n"
		"      --rw-split MODE  the proxy's single-endpoint read/write split: off (default),\n"
		"                       transactions (READ ONLY ones run on standbys) or statements\n"
		"                       (SELECTs proven read-only too), each read seeing the client's\n"
		"                       writes (docs/READ_YOUR_WRITES.md; first run only)\n"
		"      --regions A,B    a region per member in turn (node1 A, node2 B, node3 A, ...) and\n"
		"                       the proxy in the first: failover prefers the leader's region,\n"
		"                       reads the proxy's (docs/TWO_REGIONS.md; first run only)\n"
		"      --standby-of SRC a standby cluster of the `pgha up` cluster in SRC (its own etcd and\n"
		"                       members; its leader streams from SRC's primary; nothing takes\n"
		"                       writes until `ctl promote-cluster`; docs/TWO_REGIONS.md; first\n"
		"                       run only; named SRC's name + \"-standby\" unless --cluster)\n"
		"      --tls            every link encrypted and verified: a private CA and a\n"
		"                       certificate per process in DIR/secrets/tls; PostgreSQL takes\n"
		"                       TLS connections only (first run only)\n"
		"  -h, --help           this help\n",
		MAX_NODES);
}

/*
 * n distinct free TCP ports on 127.0.0.1. The kernel picks each; every socket
 * stays bound until all are chosen, so the same port is never handed out twice
 * (released at once, bind(0) may well return it again).
 */
static int free_ports(int *const *out, int n, struct pgha_err *e)
{
	int fds[2 * MAX_NODES + 2 * MAX_ETCD + 8];
	int rc = 0, opened = 0;
	for (; opened < n; opened++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = err_set(e, "socket: %s", strerror(errno));
			break;
		}
		fds[opened] = fd;
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof(sa);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
			rc = err_set(e, "cannot find a free port on 127.0.0.1: %s", strerror(errno));
			opened++;
			break;
		}
		*out[opened] = ntohs(sa.sin_port);
	}
	for (int i = 0; i < opened; i++)
		close(fds[i]);
	return rc;
}

static bool port_in_use(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool busy = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0;
	close(fd);
	return busy;
}

static int state_ini(void *user, int line, const char *section, const char *name, const char *value,
		     struct pgha_err *e)
{
	struct up_state *st = user;
	int idx;
	if (strcmp(name, "cluster") == 0)
		snprintf(st->cluster, sizeof(st->cluster), "%s", value);
	else if (strcmp(name, "nodes") == 0)
		st->nodes = atoi(value);
	else if (strcmp(name, "etcd_members") == 0)
		st->etcd_members = atoi(value);
	else if (strcmp(name, "etcd_client_port") == 0)
		st->etcd_client_port[0] = atoi(value);
	else if (strcmp(name, "etcd_peer_port") == 0)
		st->etcd_peer_port[0] = atoi(value);
	else if (sscanf(name, "etcd_client_port_%d", &idx) == 1 && idx >= 2 && idx <= MAX_ETCD)
		st->etcd_client_port[idx - 1] = atoi(value);
	else if (sscanf(name, "etcd_peer_port_%d", &idx) == 1 && idx >= 2 && idx <= MAX_ETCD)
		st->etcd_peer_port[idx - 1] = atoi(value);
	else if (strcmp(name, "proxy_port") == 0)
		st->proxy_port = atoi(value);
	else if (strcmp(name, "proxy_ro_port") == 0)
		st->proxy_ro_port = atoi(value);
	else if (strcmp(name, "proxy_metrics_port") == 0)
		st->proxy_metrics_port = atoi(value);
	else if (strcmp(name, "etcd_auth") == 0)
		st->etcd_auth = strcmp(value, "1") == 0;
	else if (strcmp(name, "tls") == 0)
		st->tls = strcmp(value, "1") == 0;
	else if (strcmp(name, "standby_of") == 0)
		snprintf(st->standby_of, sizeof(st->standby_of), "%s", value);
	else if (strcmp(name, "standby_hosts") == 0)
		snprintf(st->standby_hosts, sizeof(st->standby_hosts), "%s", value);
	else if (sscanf(name, "pg_port_%d", &idx) == 1 && idx >= 1 && idx <= MAX_NODES)
		st->pg_port[idx - 1] = atoi(value);
	else if (sscanf(name, "api_port_%d", &idx) == 1 && idx >= 1 && idx <= MAX_NODES)
		st->api_port[idx - 1] = atoi(value);
	else
		return err_set(e, "unknown setting \"%s\"", name);
	return 0;
}

static int load_or_create_state(struct up *u, int nodes, int etcd_members, const char *cluster,
				bool *existing, struct pgha_err *e)
{
	char *path = path_join(u->dir, "up.conf");
	int rc = 0;
	*existing = path_exists(path);
	if (*existing) {
		/* What up.conf says, nothing from this run's options (--standby-of applies to a new cluster). */
		memset(&u->st, 0, sizeof(u->st));
		if (ini_parse_path(path, state_ini, &u->st, e) != 0) {
			rc = err_wrap(e, "%s is damaged", path);
			goto hint;
		}
		if (u->st.etcd_members == 0)
			u->st.etcd_members = 1;   /* made before --etcd */
		if (u->st.nodes < 1 || u->st.nodes > MAX_NODES || u->st.etcd_members < 1 ||
		    u->st.etcd_members > MAX_ETCD) {
			rc = err_set(e, "%s is damaged (nodes or etcd_members out of range)", path);
			goto hint;
		}
		for (int i = 0; i < u->st.etcd_members; i++)
			if (u->st.etcd_client_port[i] <= 0 || u->st.etcd_peer_port[i] <= 0) {
				rc = err_set(e, "%s is damaged (etcd member %d's ports missing)", path, i + 1);
				goto hint;
			}
		if (etcd_members > 0 && etcd_members != u->st.etcd_members) {
			rc = err_set(e, "--etcd %d: %s was made with %d etcd member%s (--etcd applies to a new "
				     "cluster only)\nHINT: leave out --etcd, or use another --dir",
				     etcd_members, u->dir, u->st.etcd_members, u->st.etcd_members == 1 ? "" : "s");
			goto out;
		}
		goto out;
	}
	snprintf(u->st.cluster, sizeof(u->st.cluster), "%s", cluster);
	u->st.nodes = nodes;
	u->st.etcd_members = etcd_members > 0 ? etcd_members : 1;
	u->st.etcd_auth = true;
	u->st.tls = u->want_tls;
	int *want[2 * MAX_NODES + 2 * MAX_ETCD + 3] = {&u->st.proxy_port, &u->st.proxy_ro_port,
							 &u->st.proxy_metrics_port};
	int nwant = 3;
	for (int i = 0; i < u->st.etcd_members; i++) {
		want[nwant++] = &u->st.etcd_client_port[i];
		want[nwant++] = &u->st.etcd_peer_port[i];
	}
	for (int i = 0; i < nodes; i++) {
		want[nwant++] = &u->st.pg_port[i];
		want[nwant++] = &u->st.api_port[i];
	}
	if (free_ports(want, nwant, e) != 0) {
		rc = -1;
		goto out;
	}
	struct strbuf sb = STRBUF_INIT;
	sb_printf(&sb, "# pgha up: chosen on the first run, reused after\n[up]\ncluster = %s\nnodes = %d\n"
		       "etcd_client_port = %d\netcd_peer_port = %d\nproxy_port = %d\nproxy_ro_port = %d\n"
		       "proxy_metrics_port = %d\netcd_auth = 1\ntls = %d\n",
		  u->st.cluster, nodes, u->st.etcd_client_port[0], u->st.etcd_peer_port[0], u->st.proxy_port,
		  u->st.proxy_ro_port, u->st.proxy_metrics_port, u->st.tls ? 1 : 0);
	if (u->st.etcd_members > 1)
		sb_printf(&sb, "etcd_members = %d\n", u->st.etcd_members);
	if (u->st.standby_hosts[0])
		sb_printf(&sb, "standby_of = %s\nstandby_hosts = %s\n", u->st.standby_of, u->st.standby_hosts);
	for (int i = 1; i < u->st.etcd_members; i++)
		sb_printf(&sb, "etcd_client_port_%d = %d\netcd_peer_port_%d = %d\n", i + 1, u->st.etcd_client_port[i],
			  i + 1, u->st.etcd_peer_port[i]);
	for (int i = 0; i < nodes; i++)
		sb_printf(&sb, "pg_port_%d = %d\napi_port_%d = %d\n", i + 1, u->st.pg_port[i], i + 1,
			  u->st.api_port[i]);
	rc = write_file_atomic(path, sb.data, sb.len, 0644, (uid_t)-1, (gid_t)-1, e);
	sb_free(&sb);
	goto out;
hint:
	if (strlen(e->msg) + strlen(u->dir) + 64 < sizeof(e->msg))
		snprintf(e->msg + strlen(e->msg), sizeof(e->msg) - strlen(e->msg),
			 "\nHINT: use another --dir, or remove %s to start afresh", u->dir);
out:
	free(path);
	return rc;
}

/* --restore-from SRC --to TARGET: SRC is a `pgha up --backup` directory; its cluster names the stanza. */
static int restore_source(struct up *u, const char *src, const char *to, struct pgha_err *e)
{
	struct restore_target t;
	if (restore_target_parse(to, &t, e) != 0)
		return err_wrap(e, "--to");
	char buf[PATH_MAX];
	char *dir = src[0] == '/' ? xstrdup(src) : xasprintf("%s/%s", getcwd(buf, sizeof(buf)) ? buf : ".", src);
	char *state = path_join(dir, "up.conf"), *repo = path_join(dir, "backup-repo");
	struct up_state st = {0};
	int rc = 0;
	if (!path_exists(state) || ini_parse_path(state, state_ini, &st, e) != 0)
		rc = err_set(e, "--restore-from %s: not a `pgha up` directory (no readable up.conf)", dir);
	else if (!path_exists(repo))
		rc = err_set(e, "--restore-from %s: it has no backup repository\nHINT: the source cluster must have been "
			     "created with `pgha up --backup`", dir);
	if (rc == 0) {
		u->restore_repo = xstrdup(repo);
		snprintf(u->restore_stanza, sizeof(u->restore_stanza), "%s", st.cluster);
		u->restore_target = xstrdup(t.text);
	}
	free(dir);
	free(state);
	free(repo);
	return rc;
}

/*
 * --standby-of SRC: SRC is a `pgha up` directory; the new cluster is a standby
 * cluster of it (docs/TWO_REGIONS.md): its members' addresses from SRC's
 * up.conf, its passwords copied from SRC's secrets (both clusters must share
 * them: the clone copies the roles).
 */
static int standby_source(struct up *u, const char *src, struct pgha_err *e)
{
	char buf[PATH_MAX];
	char *dir = src[0] == '/' ? xstrdup(src) : xasprintf("%s/%s", getcwd(buf, sizeof(buf)) ? buf : ".", src);
	char *state = path_join(dir, "up.conf");
	struct up_state st = {0};
	int rc = 0;
	if (!path_exists(state) || ini_parse_path(state, state_ini, &st, e) != 0)
		rc = err_set(e, "--standby-of %s: not a `pgha up` directory (no readable up.conf)", dir);
	else if (st.tls)
		rc = err_set(e, "--standby-of %s: that cluster runs with --tls; `pgha up` makes standby clusters of "
			     "clusters without it only\nHINT: docs/TWO_REGIONS.md configures one by hand", dir);
	else if (st.nodes < 1 || st.nodes > MAX_NODES)
		rc = err_set(e, "--standby-of %s: its up.conf is damaged (nodes)", dir);
	if (rc == 0) {
		struct strbuf sb = STRBUF_INIT;
		for (int i = 0; i < st.nodes; i++)
			sb_printf(&sb, "%s127.0.0.1:%d", i ? "," : "", st.pg_port[i]);
		snprintf(u->st.standby_hosts, sizeof(u->st.standby_hosts), "%s", sb_str(&sb));
		snprintf(u->st.standby_of, sizeof(u->st.standby_of), "%s", st.cluster);
		sb_free(&sb);
		u->standby_src = xstrdup(dir);
	}
	free(dir);
	free(state);
	return rc;
}

/* The standby cluster's password file name, copied from the source's secrets when it has none yet. */
static int copy_secret(const char *src_dir, const char *name, const char *to, struct pgha_err *e)
{
	if (path_exists(to))
		return 0;
	char *from = xasprintf("%s/secrets/%s", src_dir, name);
	char *pw = NULL;
	int rc = read_secret_file(from, &pw, e);
	if (rc == 0) {
		char *line = xasprintf("%s\n", pw);
		rc = write_file_atomic(to, line, strlen(line), 0600, (uid_t)-1, (gid_t)-1, e);
		secret_free(line);
	} else {
		err_wrap(e, "--standby-of: %s", from);
	}
	secret_free(pw);
	free(from);
	return rc;
}

static int ensure_secret(const char *path, struct pgha_err *e)
{
	if (path_exists(path))
		return 0;
	char pw[33];
	if (random_token(pw, 32, e) != 0)
		return -1;
	pw[32] = '\n';
	int rc = write_file_atomic(path, pw, 33, 0600, (uid_t)-1, (gid_t)-1, e);
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

/* The run user (postgres, when we are root) must be able to reach DIR. */
static int check_reachable(struct up *u, struct pgha_err *e)
{
	if (geteuid() != 0)
		return 0;
	char *p = xstrdup(u->dir);
	int rc = 0;
	for (;;) {
		struct stat st;
		if (stat(p, &st) == 0 && !(st.st_mode & S_IXOTH) && st.st_uid != u->user.uid) {
			rc = err_set(e, "PostgreSQL runs as OS user %s, which cannot enter %s (mode %04o)\n"
				     "HINT: choose a --dir whose every parent directory others may enter, e.g. /var/tmp/pgha",
				     u->user.name, p, (unsigned)(st.st_mode & 07777));
			break;
		}
		char *slash = strrchr(p, '/');
		if (slash == NULL || slash == p)
			break;
		*slash = '\0';
	}
	free(p);
	return rc;
}

/*
 * The [etcd] lines naming user pgha and its password file (none without etcd
 * auth), and under --tls the CA and who's certificate (node1, proxy, ...).
 */
static char *etcd_auth_conf(const struct up *u, const char *who)
{
	struct strbuf sb = STRBUF_INIT;
	if (u->st.etcd_auth)
		sb_printf(&sb, "username = " UP_ETCD_USER "\npassword_file = %s/secrets/etcd-pgha.password\n", u->dir);
	if (u->st.tls) {
		char *crt = up_tls_path(u->dir, who, "crt"), *key = up_tls_path(u->dir, who, "key");
		sb_printf(&sb, "ca_file = %s\ncert_file = %s\nkey_file = %s\n", u->tls_ca, crt, key);
		free(crt);
		free(key);
	}
	return sb.data ? sb_steal(&sb) : xstrdup("");
}

/* node i's [tls] section ("" without --tls): its certificate for PostgreSQL, the cluster's CA. */
static char *node_tls_conf(const struct up *u, int i)
{
	if (!u->st.tls)
		return xstrdup("");
	char name[16];
	snprintf(name, sizeof(name), "node%d", i + 1);
	char *crt = up_tls_path(u->dir, name, "crt"), *key = up_tls_path(u->dir, name, "key"),
	     *ca = up_tls_path(u->dir, "ca", "crt");
	char *s = xasprintf("[tls]\ncert_file = %s\nkey_file = %s\nca_file = %s\n"
			    "# PostgreSQL takes TLS connections only (hostssl); members replicate with verify-full.\n"
			    "require = " UP_TLS_REQUIRE "\n\n", crt, key, ca);
	free(crt);
	free(key);
	free(ca);
	return s;
}

/* --regions A,B,...: labels as [node] region takes them. */
static int parse_regions(struct up *u, const char *list, struct pgha_err *e)
{
	char *copy = xstrdup(list), *save = NULL;
	int rc = 0;
	u->nregions = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0; tok = strtok_r(NULL, ",", &save)) {
		if (u->nregions == MAX_NODES)
			rc = err_set(e, "at most %d regions", MAX_NODES);
		else if (!member_name_valid(tok))
			rc = err_set(e, "\"%s\" is not a region name: use 1 to 63 of A-Z a-z 0-9 _ - .", tok);
		else
			snprintf(u->regions[u->nregions++], sizeof(u->regions[0]), "%s", tok);
	}
	if (rc == 0 && u->nregions == 0)
		rc = err_set(e, "give one or more region names, comma-separated (e.g. --regions east,west)");
	free(copy);
	return rc;
}

static int write_node_conf(struct up *u, int i, struct pgha_err *e)
{
	char *path = xasprintf("%s/node%d.conf", u->dir, i + 1);
	int rc = 0;
	if (path_exists(path))
		goto out;
	struct strbuf sb = STRBUF_INIT;
	char who[16];
	snprintf(who, sizeof(who), "node%d", i + 1);
	char *etcd_auth_lines = etcd_auth_conf(u, who);
	char *backup = u->restore_repo
		? xasprintf("[backup]\nrepo_path = %s\nfull_every = 7d\ndiff_every = 1d\n\n"
			    "[bootstrap]\nmethod = restore\nrestore_stanza = %s\nrestore_target = %s\n\n",
			    u->restore_repo, u->restore_stanza, u->restore_target)
		: u->backup ? xasprintf("[backup]\nrepo_path = %s/backup-repo\nfull_every = 7d\ndiff_every = 1d\n\n", u->dir)
		: xstrdup("");
	char *tls = node_tls_conf(u, i);
	char region[MEMBER_NAME_MAX + 16] = "";
	if (u->nregions > 0)
		snprintf(region, sizeof(region), "region = %s\n", u->regions[i % u->nregions]);
	char *standby = u->st.standby_hosts[0]
		? xasprintf("[standby_cluster]\n# A standby cluster of \"%s\" (pgha up --standby-of): its leader streams from "
			    "the first of these\n# that is primary; `pgha ctl promote-cluster` makes it a cluster of its own.\n"
			    "primary_hosts = %s\n\n", u->st.standby_of, u->st.standby_hosts)
		: xstrdup("");
	sb_printf(&sb,
		  "# Written by pgha up. See `pgha agent --help` for every option.\n"
		  "[cluster]\nname = %s\n\n"
		  "[etcd]\nendpoints = %s\n%s\n"
		  "[node]\nname = node%d\napi_listen = 127.0.0.1:%d\napi_token_file = %s/secrets/api.token\n%s\n"
		  "[postgresql]\ndata_dir = %s/node%d/data\nbin_dir = %s\nlisten = 127.0.0.1:%d\n"
		  "socket_dir = %s/node%d\n"
		  "log_file = %s/logs/node%d.postgresql.log\n"
		  "superuser_password_file = %s/secrets/superuser.password\n"
		  "replication_password_file = %s/secrets/replication.password\n\n"
		  "%s%s%s"
		  "[parameters]\nmax_connections = 100\nshared_buffers = 64MB\n",
		  u->st.cluster, u->etcd_urls, etcd_auth_lines, i + 1, u->st.api_port[i], u->dir, region, u->dir, i + 1,
		  u->bin_dir,
		  u->st.pg_port[i], u->dir, i + 1, u->dir, i + 1, u->dir, u->dir, backup, tls, standby);
	free(standby);
	free(backup);
	free(tls);
	rc = write_file_atomic(path, sb.data, sb.len, 0644, (uid_t)-1, (gid_t)-1, e);
	sb_free(&sb);
	free(etcd_auth_lines);
out:
	free(path);
	return rc;
}

static int prepare_dir(struct up *u, int nodes, int etcd_members, const char *cluster, bool *existing,
		       struct pgha_err *e)
{
	if (mkdir_p(u->dir, 0755, e) != 0)
		return -1;
	if (load_or_create_state(u, nodes, etcd_members, cluster, existing, e) != 0)
		return -1;
	up_etcd_urls(u);
	char *secrets = path_join(u->dir, "secrets");
	char *logs = path_join(u->dir, "logs");
	char *su = path_join(secrets, "superuser.password");
	char *repl = path_join(secrets, "replication.password");
	char *token = path_join(secrets, "api.token");   /* POST /failsafe, /switchover between the agents */
	int rc = -1;
	if (mkdir_p(secrets, 0700, e) != 0 || mkdir_p(logs, 0755, e) != 0)
		goto out;
	if (u->standby_src != NULL &&
	    (copy_secret(u->standby_src, "superuser.password", su, e) != 0 ||
	     copy_secret(u->standby_src, "replication.password", repl, e) != 0))
		goto out;
	if (ensure_secret(su, e) != 0 || ensure_secret(repl, e) != 0 || ensure_secret(token, e) != 0)
		goto out;
	if (u->st.tls) {
		free(u->tls_ca);
		free(u->tls_client_crt);
		free(u->tls_client_key);
		u->tls_ca = up_tls_path(u->dir, "ca", "crt");
		u->tls_client_crt = up_tls_path(u->dir, "client", "crt");
		u->tls_client_key = up_tls_path(u->dir, "client", "key");
		if (up_tls_prepare(u->dir, u->st.nodes, e) != 0)
			goto out;
	}
	if (u->st.etcd_auth) {
		char *root = path_join(secrets, "etcd-root.password");
		char *pg = path_join(secrets, "etcd-pgha.password");
		int r = ensure_secret(root, e) == 0 && ensure_secret(pg, e) == 0 &&
			read_secret_file(pg, &u->etcd_password, e) == 0 ? 0 : -1;
		free(root);
		free(pg);
		if (r != 0)
			goto out;
	}
	if (u->backup) {
		/* The repository every member archives to (shared storage in a real deployment). */
		char *repo = path_join(u->dir, "backup-repo");
		int r = mkdir_p(repo, 0750, e);
		if (r == 0 && u->user.set && chown(repo, u->user.uid, u->user.gid) != 0)
			r = err_set(e, "chown %s: %s", repo, strerror(errno));
		free(repo);
		if (r != 0)
			goto out;
	}
	for (int i = 0; i < u->st.nodes; i++) {
		char *nd = xasprintf("%s/node%d", u->dir, i + 1);
		int r = mkdir_p(nd, 0755, e);
		/* The node directory holds PostgreSQL's socket: the run user writes there. */
		if (r == 0 && u->user.set && chown(nd, u->user.uid, u->user.gid) != 0)
			r = err_set(e, "chown %s: %s", nd, strerror(errno));
		free(nd);
		if (r != 0 || write_node_conf(u, i, e) != 0)
			goto out;
	}
	/* A passfile for the user's own psql. */
	char *supw = NULL;
	if (read_secret_file(su, &supw, e) != 0)
		goto out;
	char *pgpass = path_join(u->dir, "pgpass");
	struct strbuf sb = STRBUF_INIT;
	sb_printf(&sb, "127.0.0.1:*:*:postgres:%s\n", supw);
	rc = write_file_atomic(pgpass, sb.data, sb.len, 0600, (uid_t)-1, (gid_t)-1, e);
	explicit_bzero(sb.data, sb.len);
	sb_reset(&sb);
	/* The proxy's users file (PgBouncer's format) and config. */
	char *users = path_join(u->dir, "secrets/proxy-users.txt");
	if (rc == 0) {
		sb_printf(&sb, "\"postgres\" \"%s\"\n", supw);
		rc = write_file_atomic(users, sb.data, sb.len, 0600, (uid_t)-1, (gid_t)-1, e);
		explicit_bzero(sb.data, sb.len);
		sb_reset(&sb);
	}
	char *pconf = path_join(u->dir, "proxy.conf");
	if (rc == 0 && !path_exists(pconf)) {
		char *auth_lines = etcd_auth_conf(u, "proxy");
		sb_printf(&sb, "# Written by pgha up. See `pgha proxy --help` for every option.\n"
			       "[cluster]\nname = %s\n\n[etcd]\nendpoints = %s\n%s\n"
			       "[proxy]\nlisten = 127.0.0.1:%d\nlisten_ro = 127.0.0.1:%d\npool_size = 20\n"
			       "# Reads on listen_ro see every write acknowledged before them (docs/READ_YOUR_WRITES.md).\n"
			       "read_your_writes = on\n"
			       "# On listen too: READ ONLY transactions (transactions), and SELECTs proven read-only\n"
			       "# (statements), run on a standby that replayed the client's writes; off: on the leader.\n"
			       "rw_split = %s\n",
			  u->st.cluster, u->etcd_urls, auth_lines, u->st.proxy_port, u->st.proxy_ro_port,
			  u->rw_split ? u->rw_split : "off");
		if (u->st.proxy_metrics_port > 0)
			sb_printf(&sb, "metrics_listen = 127.0.0.1:%d\n", u->st.proxy_metrics_port);
		if (u->nregions > 0)
			sb_printf(&sb, "# Reads go to a standby in this region first (docs/TWO_REGIONS.md).\nregion = %s\n",
				  u->regions[0]);
		sb_printf(&sb, "\n[auth]\nauth_type = scram-sha-256\nauth_file = %s\n", users);
		if (u->st.tls) {
			char *crt = up_tls_path(u->dir, "proxy", "crt"), *key = up_tls_path(u->dir, "proxy", "key");
			sb_printf(&sb, "\n[tls]\n# Clients: TLS offered (sslmode=verify-full with the CA in secrets/tls/ca.crt).\n"
				       "cert_file = %s\nkey_file = %s\n"
				       "# PostgreSQL: TLS, its certificate verified against the cluster's CA and address.\n"
				       "server_sslmode = verify-full\nserver_ca_file = %s\n", crt, key, u->tls_ca);
			free(crt);
			free(key);
		}
		free(auth_lines);
		rc = write_file_atomic(pconf, sb.data, sb.len, 0644, (uid_t)-1, (gid_t)-1, e);
	}
	free(pconf);
	free(users);
	sb_free(&sb);
	secret_free(supw);
	free(pgpass);
out:
	free(secrets);
	free(logs);
	free(su);
	free(repl);
	free(token);
	return rc;
}

/* Every port up.conf names, checked before anything starts: distinct and free. */
static int check_ports(struct up *u, struct pgha_err *e)
{
	struct {
		const char *what;
		int port;
	} ports[2 * MAX_NODES + 2 * MAX_ETCD + 3] = {{"etcd_client_port", u->st.etcd_client_port[0]},
						     {"etcd_peer_port", u->st.etcd_peer_port[0]},
						     {"proxy_port", u->st.proxy_port},
						     {"proxy_ro_port", u->st.proxy_ro_port}};
	static const char *const etcd_names[][2] = {{"", ""}, {"etcd_client_port_2", "etcd_peer_port_2"},
						    {"etcd_client_port_3", "etcd_peer_port_3"},
						    {"etcd_client_port_4", "etcd_peer_port_4"},
						    {"etcd_client_port_5", "etcd_peer_port_5"}};
	_Static_assert(MAX_ETCD <= 5, "etcd_names above");
	static const char *const pg_names[] = {"pg_port_1", "pg_port_2", "pg_port_3", "pg_port_4", "pg_port_5",
					       "pg_port_6", "pg_port_7", "pg_port_8", "pg_port_9"};
	static const char *const api_names[] = {"api_port_1", "api_port_2", "api_port_3", "api_port_4", "api_port_5",
						"api_port_6", "api_port_7", "api_port_8", "api_port_9"};
	_Static_assert(MAX_NODES <= 9, "name tables above");
	int n = u->st.proxy_port > 0 ? 4 : 2;  /* a directory made before up started a proxy has none */
	if (u->st.proxy_metrics_port > 0) {
		ports[n].what = "proxy_metrics_port";
		ports[n++].port = u->st.proxy_metrics_port;
	}
	for (int i = 1; i < u->st.etcd_members; i++) {
		ports[n].what = etcd_names[i][0];
		ports[n++].port = u->st.etcd_client_port[i];
		ports[n].what = etcd_names[i][1];
		ports[n++].port = u->st.etcd_peer_port[i];
	}
	for (int i = 0; i < u->st.nodes; i++) {
		ports[n].what = pg_names[i];
		ports[n++].port = u->st.pg_port[i];
		ports[n].what = api_names[i];
		ports[n++].port = u->st.api_port[i];
	}
	char *conf = path_join(u->dir, "up.conf");
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		if (ports[i].port <= 0 || ports[i].port > 65535) {
			rc = err_set(e, "%s: %s = %d is not a TCP port", conf, ports[i].what, ports[i].port);
			break;
		}
		for (int j = 0; j < i; j++) {
			if (ports[j].port == ports[i].port) {
				rc = err_set(e, "%s: %s and %s are both %d", conf, ports[j].what, ports[i].what,
					     ports[i].port);
				break;
			}
		}
		if (rc == 0 && port_in_use(ports[i].port))
			rc = err_set(e, "port %d (%s in %s) is already in use\n"
				       "HINT: is another `pgha up --dir %s` running, or a PostgreSQL left from it?",
				     ports[i].port, ports[i].what, conf, u->dir);
	}
	free(conf);
	return rc;
}

static int start_proxy(struct up *u, struct pgha_err *e)
{
	if (u->st.proxy_port <= 0)
		return 0;   /* a directory made before up started a proxy */
	int fd = up_open_log(u, "proxy.log", e);
	if (fd < 0)
		return -1;
	char *conf = path_join(u->dir, "proxy.conf");
	const char *argv[] = {u->self_exe, "proxy", "-c", conf, NULL};
	struct proc_spec spec = {.argv = argv, .out_fd = fd, .new_session = true};
	int rc = proc_spawn(&spec, &u->proxy_pid, e);
	close(fd);
	free(conf);
	return rc;
}

static int start_agents(struct up *u, struct pgha_err *e)
{
	for (int i = 0; i < u->st.nodes; i++) {
		char name[32];
		snprintf(name, sizeof(name), "node%d.log", i + 1);
		int fd = up_open_log(u, name, e);
		if (fd < 0)
			return -1;
		char *conf = xasprintf("%s/node%d.conf", u->dir, i + 1);
		const char *argv[] = {u->self_exe, "agent", "-c", conf, NULL};
		struct proc_spec spec = {.argv = argv, .out_fd = fd, .new_session = true};
		int rc = proc_spawn(&spec, &u->agent_pid[i], e);
		close(fd);
		free(conf);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* One line of progress: "node1 leader running, node2 replica cloning, ...". */
static bool cluster_ready(const struct cluster_view *v, int nodes, bool standby_cluster, struct strbuf *line)
{
	sb_reset(line);
	int streaming = 0;
	bool leader_ok = false;
	for (size_t i = 0; i < v->nmembers; i++) {
		const struct member *m = &v->members[i];
		bool is_leader = v->leader && strcmp(v->leader, m->name) == 0;
		sb_printf(line, "%s%s %s %s", i ? ", " : "", m->name, is_leader ? "leader" : member_role_name(m->role),
			  member_state_name(m->state));
		/* A standby cluster's leader is a standby that streams from the primary cluster. */
		if (is_leader && !standby_cluster && m->role == ROLE_PRIMARY && m->state == STATE_RUNNING)
			leader_ok = true;
		else if (is_leader && standby_cluster && m->role == ROLE_REPLICA && m->state == STATE_STREAMING)
			leader_ok = true;
		else if (!is_leader && m->state == STATE_STREAMING)
			streaming++;
	}
	if (v->nmembers == 0)
		sb_puts(line, "waiting for the first member");
	return leader_ok && v->initialize && streaming == nodes - 1 && (int)v->nmembers == nodes;
}

static int wait_ready(struct up *u, struct cluster_view *out, struct pgha_err *e)
{
	struct etcd_opts o0 = {0};
	up_etcd_client_tls(u, &o0);
	struct etcd_opts o = {.endpoints = u->etcd_urls, .request_timeout_ms = 1000, .deadline_ms = 2000,
			      .ca_file = o0.ca_file, .cert_file = o0.cert_file, .key_file = o0.key_file,
			      .username = u->etcd_password ? UP_ETCD_USER : NULL, .password = u->etcd_password};
	struct etcd_client *c = etcd_new(&o, e);
	if (c == NULL)
		return -1;
	char *prefix = xasprintf("/pgha/%s/", u->st.cluster);
	struct strbuf line = STRBUF_INIT, last = STRBUF_INIT;
	int64_t start = now_ms(), deadline = start + (int64_t)u->timeout_s * 1000;
	int rc = -1;
	while (!up_stop) {
		for (int i = 0; i < u->st.nodes; i++) {
			int code;
			if (u->agent_pid[i] > 0 && proc_poll(u->agent_pid[i], &code) != 0) {
				u->agent_pid[i] = 0;
				err_set(e, "the agent of node%d exited (code %d); see %s/logs/node%d.log", i + 1,
					code, u->dir, i + 1);
				goto out;
			}
		}
		struct etcd_kvs kvs = {0};
		if (etcd_get_prefix(c, prefix, &kvs, e) == 0) {
			cluster_view_free(out);
			cluster_view_from_kvs(prefix, &kvs, out);
			cluster_view_sort(out);
			etcd_kvs_free(&kvs);
			bool ready = cluster_ready(out, u->st.nodes, u->st.standby_hosts[0] != '\0', &line);
			if (strcmp(sb_str(&line), sb_str(&last)) != 0) {
				printf("  [%5.1fs] %s\n", (double)(now_ms() - start) / 1000.0, sb_str(&line));
				fflush(stdout);
				sb_reset(&last);
				sb_puts(&last, sb_str(&line));
			}
			if (ready) {
				rc = 0;
				break;
			}
		}
		if (now_ms() > deadline) {
			err_set(e, "the cluster was not ready within %d s (%s)\nHINT: see the logs in %s/logs/",
				u->timeout_s, sb_str(&line), u->dir);
			goto out;
		}
		sleep_ms(250);
	}
	if (up_stop)
		err_set(e, "interrupted");
out:
	sb_free(&line);
	sb_free(&last);
	free(prefix);
	etcd_free(c);
	return rc;
}

static void print_summary(struct up *u, const struct cluster_view *v, double secs)
{
	printf("\npgha cluster \"%s\" is up: %d members, leader %s (%.1f s)\n\n", u->st.cluster,
	       u->st.nodes, v->leader ? v->leader : "?", secs);
	ctl_print_table(stdout, v, u->st.cluster);
	char *ssl = u->st.tls ? xasprintf(" sslmode=verify-full sslrootcert=%s/secrets/tls/ca.crt", u->dir) : xstrdup("");
	printf("\nConnect (password in %s/secrets/superuser.password):\n", u->dir);
	for (int i = 0; i < u->st.nodes; i++) {
		char name[16];
		snprintf(name, sizeof(name), "node%d", i + 1);
		bool leader = v->leader && strcmp(v->leader, name) == 0;
		printf("  %-6s PGPASSFILE=%s/pgpass psql \"host=127.0.0.1 port=%d user=postgres dbname=postgres%s\"%s\n",
		       name, u->dir, u->st.pg_port[i], ssl, !leader ? "   # standby (read-only)" :
		       u->st.standby_hosts[0] ? "   # standby leader (read-only)" : "   # leader (read-write)");
	}
	if (u->st.proxy_port > 0) {
		printf("\nThrough the proxy (pooled; writes follow the leader, reads go to standbys):\n");
		printf("  read-write PGPASSFILE=%s/pgpass psql \"host=127.0.0.1 port=%d user=postgres dbname=postgres%s\"\n",
		       u->dir, u->st.proxy_port, ssl);
		printf("  read-only  PGPASSFILE=%s/pgpass psql \"host=127.0.0.1 port=%d user=postgres dbname=postgres%s\""
		       "   # sees your writes\n", u->dir, u->st.proxy_ro_port, ssl);
	}
	/* Under --tls the API is HTTPS with node1's certificate: curl checks it against the CA. */
	char *cacert = u->st.tls ? xasprintf("--cacert %s ", u->tls_ca) : xstrdup("");
	printf("\nHealth API:  curl %s%s://127.0.0.1:%d/cluster   (node1; /primary, /replica, ...)\n", cacert,
	       up_scheme(u), u->st.api_port[0]);
	printf("Dashboard:   %s://127.0.0.1:%d/ui   (node1's agent; every agent serves it; a switchover from it "
	       "needs the token in %s/secrets/api.token%s)\n", up_scheme(u), u->st.api_port[0], u->dir,
	       u->st.tls ? "; your browser must trust secrets/tls/ca.crt" : "");
	printf("Metrics:     curl %s%s://127.0.0.1:%d/metrics   (node1's agent; every agent serves its own", cacert,
	       up_scheme(u), u->st.api_port[0]);
	free(cacert);
	if (u->st.proxy_port > 0 && u->st.proxy_metrics_port > 0)
		printf(";\n             the proxy's: http://127.0.0.1:%d/metrics", u->st.proxy_metrics_port);
	printf(")\n");
	/* ctl reads etcd's address, the cluster and etcd's credentials from a node's config. */
	printf("Members:     %s ctl -c %s/node1.conf list\n", u->self_exe, u->dir);
	if (u->st.standby_hosts[0])
		printf("Standby of:  cluster \"%s\" (%s): nothing here takes writes\n"
		       "Promote:     %s ctl -c %s/node1.conf promote-cluster   (when \"%s\" is lost; refused while it "
		       "runs)\n", u->st.standby_of, u->st.standby_hosts, u->self_exe, u->dir, u->st.standby_of);
	if (u->st.nodes > 1)
		printf("Switchover:  %s ctl -c %s/node1.conf switchover --to <member>\n", u->self_exe, u->dir);
	if (u->st.etcd_members > 1)
		printf("etcd:        %d members: %s\n             (a majority of %d keeps it working; agents and "
		       "the proxy follow member changes: docs/ETCD.md)\n", u->st.etcd_members, u->etcd_urls,
		       u->st.etcd_members / 2 + 1);
	if (u->st.etcd_auth)
		printf("%s%s with authentication (user " UP_ETCD_USER ", password in "
		       "%s/secrets/etcd-pgha.password): write access to etcd is control of the cluster\n",
		       u->st.etcd_members > 1 ? "             " : "etcd:        ",
		       u->st.etcd_members > 1 ? "all" : u->etcd_urls, u->dir);
	if (u->backup || u->restore_repo) {
		char *repo = u->restore_repo ? xstrdup(u->restore_repo) : path_join(u->dir, "backup-repo");
		printf("Backups:     %s ctl -c %s/node1.conf backups\n"
		       "             (repository %s; a full backup runs now, then weekly, a differential one daily)\n",
		       u->self_exe, u->dir, repo);
		free(repo);
		printf("Backup now:  %s ctl -c %s/node1.conf backup --wait\n", u->self_exe, u->dir);
		printf("Restore:     %s ctl -c %s/node1.conf restore --to \"YYYY-MM-DD HH:MM:SS\" --new-cluster NAME\n"
		       "             (a new cluster beside this one, recovered to that time, UTC)\n", u->self_exe, u->dir);
		printf("Roll back:   %s ctl -c %s/node1.conf restore --to \"YYYY-MM-DD HH:MM:SS\" --in-place\n"
		       "             (THIS cluster back to that time: what was committed after it is lost)\n",
		       u->self_exe, u->dir);
	}
	if (u->st.tls)
		printf("TLS:         every certificate and the CA in %s/secrets/tls/ (CA key there too: keep it private)\n",
		       u->dir);
	free(ssl);
	printf("Logs:        %s/logs/\n", u->dir);
	printf("Stop:        Ctrl-C (data stays in %s; `pgha up --dir %s` brings it back)\n\n", u->dir, u->dir);
	fflush(stdout);
}

/* Standbys first, then the leader (so nobody sees the leader vanish first), then etcd. */
static void stop_all(struct up *u, const char *leader)
{
	printf("\nstopping the cluster...\n");
	fflush(stdout);
	int leader_idx = -1;
	for (int i = 0; i < u->st.nodes; i++) {
		char name[16];
		snprintf(name, sizeof(name), "node%d", i + 1);
		if (leader && strcmp(leader, name) == 0) {
			leader_idx = i;
			continue;
		}
		if (u->agent_pid[i] > 0)
			kill(u->agent_pid[i], SIGTERM);
	}
	for (int i = 0; i < u->st.nodes; i++) {
		if (i == leader_idx)
			continue;
		char what[32];
		snprintf(what, sizeof(what), "agent node%d", i + 1);
		up_stop_pid(u->agent_pid[i], what, 90000);
		u->agent_pid[i] = 0;
	}
	if (leader_idx >= 0) {
		up_stop_pid(u->agent_pid[leader_idx], "the leader's agent", 90000);
		u->agent_pid[leader_idx] = 0;
	}
	up_stop_pid(u->proxy_pid, "the proxy", 30000);
	u->proxy_pid = 0;
	up_etcd_stop(u);
	printf("stopped; data kept in %s\n", u->dir);
}

int up_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dir", required_argument, NULL, 'd'}, {"nodes", required_argument, NULL, 'n'},
		{"cluster", required_argument, NULL, 'C'}, {"timeout", required_argument, NULL, 't'},
		{"etcd-bin", required_argument, NULL, 'E'}, {"bin-dir", required_argument, NULL, 'B'},
		{"backup", no_argument, NULL, 'K'}, {"restore-from", required_argument, NULL, 'R'},
		{"to", required_argument, NULL, 'T'}, {"rw-split", required_argument, NULL, 'S'},
		{"tls", no_argument, NULL, 'L'},
		{"etcd", required_argument, NULL, 'e'}, {"regions", required_argument, NULL, 'G'},
		{"standby-of", required_argument, NULL, 'Y'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *restore_from = NULL, *restore_to = NULL, *rw_split = NULL;
	bool cluster_given = false;
	const char *dir = NULL, *cluster = "pgha", *etcd_bin = NULL;
	bool backup = false, u_tls = false;
	const char *regions = NULL, *standby_of = NULL;
	const char *bin_dir = "/usr/lib/postgresql/15/bin";
	long nodes = 3, timeout = 300, etcd_members = 0;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "d:n:h", longopts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'd': dir = optarg; break;
		case 'C': cluster = optarg; cluster_given = true; break;
		case 'E': etcd_bin = optarg; break;
		case 'B': bin_dir = optarg; break;
		case 'K': backup = true; break;
		case 'L': u_tls = true; break;
		case 'G': regions = optarg; break;
		case 'Y': standby_of = optarg; break;
		case 'R': restore_from = optarg; break;
		case 'T': restore_to = optarg; break;
		case 'S':
			if (strcmp(optarg, "off") != 0 && strcmp(optarg, "transactions") != 0 &&
			    strcmp(optarg, "statements") != 0) {
				fprintf(stderr, "pgha up: --rw-split %s: use off, transactions or statements\n", optarg);
				return 2;
			}
			rw_split = optarg;
			break;
		case 'n':
			nodes = strtol(optarg, &end, 10);
			if (*end || nodes < 1 || nodes > MAX_NODES) {
				fprintf(stderr, "pgha up: --nodes %s: use a number from 1 to %d\n", optarg, MAX_NODES);
				return 2;
			}
			break;
		case 'e':
			etcd_members = strtol(optarg, &end, 10);
			if (*end || (etcd_members != 1 && etcd_members != 3 && etcd_members != 5)) {
				fprintf(stderr, "pgha up: --etcd %s: use 1, 3 or 5 (an even count tolerates no more "
					"failures than one less)\n", optarg);
				return 2;
			}
			break;
		case 't':
			timeout = strtol(optarg, &end, 10);
			if (*end || timeout < 1) {
				fprintf(stderr, "pgha up: --timeout %s: use a number of seconds\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgha up: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	static struct up up;
	struct up *u = &up;
	struct pgha_err e;
	if ((restore_from == NULL) != (restore_to == NULL)) {
		fprintf(stderr, "pgha up: --restore-from and --to go together\n");
		return 2;
	}
	if (restore_from != NULL) {
		static char restored[64];
		if (restore_source(u, restore_from, restore_to, &e) != 0) {
			fprintf(stderr, "pgha up: %s\n", e.msg);
			return 1;
		}
		if (!cluster_given) {
			snprintf(restored, sizeof(restored), "%.50s-restored", u->restore_stanza);
			cluster = restored;
		}
		if (strcmp(cluster, u->restore_stanza) == 0) {
			fprintf(stderr, "pgha up: --cluster %s is the source's name: the new cluster needs its own (its "
				"backups go to the same repository under its name)\n", cluster);
			return 2;
		}
	}
	if (standby_of != NULL && restore_from != NULL) {
		fprintf(stderr, "pgha up: --standby-of and --restore-from make two different clusters: choose one\n");
		return 2;
	}
	if (standby_of != NULL) {
		static char name[64];
		if (standby_source(u, standby_of, &e) != 0) {
			fprintf(stderr, "pgha up: %s\n", e.msg);
			return 1;
		}
		if (!cluster_given) {
			snprintf(name, sizeof(name), "%.50s-standby", u->st.standby_of);
			cluster = name;
		}
	}
	char buf[PATH_MAX];
	log_set_context("up");
	u->timeout_s = (int)timeout;
	u->rw_split = rw_split;
	if (regions != NULL && parse_regions(u, regions, &e) != 0) {
		fprintf(stderr, "pgha up: --regions %s: %s\n", regions, e.msg);
		return 2;
	}
	u->want_tls = u_tls;
	u->bin_dir = xstrdup(bin_dir);
	bool default_dir = dir == NULL;
	if (default_dir)
		dir = "pgha-up";
	if (dir[0] == '/')
		u->dir = xstrdup(dir);
	else
		u->dir = xasprintf("%s/%s", getcwd(buf, sizeof(buf)) ? buf : ".", dir);
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0) {
		fprintf(stderr, "pgha up: cannot find its own executable\n");
		return 1;
	}
	buf[n] = '\0';
	u->self_exe = xstrdup(buf);
	if (etcd_bin == NULL)
		etcd_bin = access("/usr/bin/etcd", X_OK) == 0 ? "/usr/bin/etcd" : "/usr/local/bin/etcd";
	u->etcd_bin = xstrdup(etcd_bin);
	if (access(u->etcd_bin, X_OK) != 0) {
		fprintf(stderr, "pgha up: no etcd server at %s\nHINT: install it (make deps) or pass --etcd-bin\n",
			u->etcd_bin);
		return 1;
	}
	if (geteuid() == 0 && run_user_lookup("postgres", &u->user, &e) != 0) {
		fprintf(stderr, "pgha up: running as root needs the OS user postgres for PostgreSQL: %s\n", e.msg);
		return 1;
	}

	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int64_t t0 = now_ms();
	bool existing = false;
	struct cluster_view view = {0};
	int code = 1;
	if (default_dir && check_reachable(u, &e) != 0) {
		/* Root in a private home: PostgreSQL's user cannot get in; use a shared place. */
		printf("note: %s is not reachable by the OS user postgres; using /var/tmp/pgha-up\n", u->dir);
		free(u->dir);
		u->dir = xstrdup("/var/tmp/pgha-up");
	}
	{
		/* --backup shapes the node configs, written on the first run only; a later run keeps what was chosen. */
		char *repo = path_join(u->dir, "backup-repo");
		char *state = path_join(u->dir, "up.conf");
		bool had_repo = path_exists(repo), had_state = path_exists(state);
		if (backup && had_state && !had_repo)
			printf("note: --backup applies to a new cluster only; %s was created without it\n", u->dir);
		if (u_tls && had_state)
			printf("note: --tls applies to a new cluster only; %s keeps what it was created with\n", u->dir);
		if (standby_of && had_state)
			printf("note: --standby-of applies to a new cluster only; %s keeps what it was created with\n",
			       u->dir);
		u->backup = had_repo || (backup && !had_state);
		free(repo);
		free(state);
	}
	if (check_reachable(u, &e) != 0 || prepare_dir(u, (int)nodes, (int)etcd_members, cluster, &existing, &e) != 0 ||
	    check_ports(u, &e) != 0) {
		fprintf(stderr, "pgha up: %s\n", e.msg);
		return 1;
	}
	printf("%s cluster \"%s\" in %s (%d members)\n", existing ? "restarting" : "creating", u->st.cluster,
	       u->dir, u->st.nodes);
	if (u->st.etcd_members > 1)
		printf("  starting %d etcd members on %s\n", u->st.etcd_members, u->etcd_urls);
	else
		printf("  starting etcd on %s\n", u->etcd_urls);
	fflush(stdout);
	if (up_etcd_start(u, &e) != 0 || start_agents(u, &e) != 0 || start_proxy(u, &e) != 0) {
		fprintf(stderr, "pgha up: %s\n", e.msg);
		goto stop;
	}
	printf("  started %d agents; waiting for every standby to stream (logs: %s/logs/)\n", u->st.nodes, u->dir);
	fflush(stdout);
	if (wait_ready(u, &view, &e) != 0) {
		fprintf(stderr, "pgha up: %s\n", e.msg);
		goto stop;
	}
	print_summary(u, &view, (double)(now_ms() - t0) / 1000.0);
	code = 0;
	/* Run until Ctrl-C; report members that die. */
	while (!up_stop) {
		for (int i = 0; i < u->st.nodes; i++) {
			int c;
			if (u->agent_pid[i] > 0 && proc_poll(u->agent_pid[i], &c) == 1) {
				fprintf(stderr, "pgha up: the agent of node%d exited (code %d); see %s/logs/node%d.log\n",
					i + 1, c, u->dir, i + 1);
				u->agent_pid[i] = 0;
			}
		}
		int c;
		if (u->proxy_pid > 0 && proc_poll(u->proxy_pid, &c) == 1) {
			fprintf(stderr, "pgha up: the proxy exited (code %d); see %s/logs/proxy.log\n", c, u->dir);
			u->proxy_pid = 0;
		}
		up_etcd_poll(u);
		sleep_ms(200);
	}
stop:
	stop_all(u, view.leader);
	cluster_view_free(&view);
	free(u->dir);
	free(u->etcd_bin);
	free(u->self_exe);
	free(u->bin_dir);
	free(u->standby_src);
	secret_free(u->etcd_password);
	free(u->tls_ca);
	free(u->tls_client_crt);
	free(u->tls_client_key);
	free(u->etcd_urls);
	return code;
}
