#include "pg/pgconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

#define INCLUDE_LINE "include_if_exists = 'pgha.conf'\t# added by pgha: keep it last\n"

void pg_conf_quote(struct strbuf *sb, const char *value)
{
	sb_puts(sb, "'");
	for (const char *p = value; *p; p++) {
		if (*p == '\'')
			sb_puts(sb, "''");
		else if (*p == '\\')
			sb_puts(sb, "\\\\");
		else if (*p == '\n')
			sb_puts(sb, "\\n");
		else if (*p == '\r')
			sb_puts(sb, "\\r");
		else if (*p == '\t')
			sb_puts(sb, "\\t");
		else if ((unsigned char)*p < 0x20)
			sb_printf(sb, "\\%03o", (unsigned char)*p);
		else
			sb_append(sb, p, 1);
	}
	sb_puts(sb, "'");
}

const char *pg_param_managed(const char *name)
{
	static const char *const owned[] = {"port", "listen_addresses", "hot_standby",
		"primary_conninfo", "primary_slot_name", "unix_socket_directories", "wal_level",
		"hba_file", "data_directory", "cluster_name", "recovery_target_timeline",
		"restore_command_pgha"};
	if (strcasecmp(name, "synchronous_standby_names") == 0)
		return "pgha ctl set synchronous_mode=on (or quorum, strict)";
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		if (strcasecmp(name, owned[i]) == 0)
			return "use [postgresql] listen/socket_dir for addresses";
	return NULL;
}

bool pg_param_name_ok(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.')
			return false;
	return true;
}

/* libpq conninfo value quoting: 'a b' with \' and \\ escaped. */
static void conninfo_kv(struct strbuf *sb, const char *key, const char *value)
{
	if (sb->len > 0)
		sb_puts(sb, " ");
	sb_printf(sb, "%s='", key);
	for (const char *p = value; *p; p++) {
		if (*p == '\'' || *p == '\\')
			sb_puts(sb, "\\");
		sb_append(sb, p, 1);
	}
	sb_puts(sb, "'");
}

static char *conninfo_build(const char *host, const char *port, const char *user, const char *passfile,
			   const char *application_name, const char *dbname, const struct pg_tls *tls,
			   const char *target_session_attrs)
{
	struct strbuf sb = STRBUF_INIT;
	conninfo_kv(&sb, "host", host);
	conninfo_kv(&sb, "port", port);
	if (target_session_attrs)
		conninfo_kv(&sb, "target_session_attrs", target_session_attrs);
	conninfo_kv(&sb, "user", user);
	if (passfile)
		conninfo_kv(&sb, "passfile", passfile);
	if (application_name)
		conninfo_kv(&sb, "application_name", application_name);
	if (dbname)
		conninfo_kv(&sb, "dbname", dbname);
	/* Over TLS, SCRAM with channel binding only: a peer asking for a cleartext password gets nothing. */
	if (tls != NULL && tls->ca_file != NULL && tls->ca_file[0] != '\0') {
		conninfo_kv(&sb, "sslmode", "verify-full");
		conninfo_kv(&sb, "sslrootcert", tls->ca_file);
		conninfo_kv(&sb, "channel_binding", "require");
	} else if (tls != NULL && tls->require) {
		conninfo_kv(&sb, "sslmode", "require");
		conninfo_kv(&sb, "channel_binding", "require");
	} else {
		conninfo_kv(&sb, "sslmode", "prefer");
	}
	conninfo_kv(&sb, "connect_timeout", "5");
	conninfo_kv(&sb, "keepalives_idle", "5");
	conninfo_kv(&sb, "keepalives_interval", "2");
	conninfo_kv(&sb, "keepalives_count", "3");
	return sb_steal(&sb);
}

char *pg_conninfo(const char *host, int port, const char *user, const char *passfile,
		  const char *application_name, const char *dbname, const struct pg_tls *tls)
{
	char portbuf[16];
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	return conninfo_build(host, portbuf, user, passfile, application_name, dbname, tls, NULL);
}

char *pg_conninfo_primary_of(const char *hosts, const char *ports, const char *user, const char *passfile,
			     const char *application_name, const char *dbname, const struct pg_tls *tls)
{
	return conninfo_build(hosts, ports, user, passfile, application_name, dbname, tls, "read-write");
}

/*
 * Injective: [a-z0-9] stay, '_' becomes "__", anything else "_xx" (hex), so
 * "node-1", "node_1" and "Node-1" get different slots. A name that would not
 * fit in 63 bytes keeps its first whole escapes up to 46 bytes and gets a hash
 * of the whole name.
 */
void pg_slot_name(const char *member, char *out, size_t outlen)
{
	char buf[256];
	size_t j = 0, cut = 0;   /* cut: the last token boundary at or before byte 46 */
	for (const unsigned char *p = (const unsigned char *)member; *p && j + 4 < sizeof(buf); p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
			buf[j++] = (char)*p;
		else if (*p == '_')
			j += (size_t)snprintf(buf + j, sizeof(buf) - j, "__");
		else
			j += (size_t)snprintf(buf + j, sizeof(buf) - j, "_%02x", *p);
		if (j <= 46)
			cut = j;
	}
	buf[j] = '\0';
	if (j > 63) {
		/*
		 * Cut between whole tokens: then "_h" cannot be read as an escape
		 * ('h' is not a hex digit and "__" is a whole token), so a hashed
		 * name never equals the plain form of another name.
		 */
		uint32_t h = 2166136261u;   /* FNV-1a */
		for (const unsigned char *p = (const unsigned char *)member; *p; p++)
			h = (h ^ *p) * 16777619u;
		snprintf(buf + cut, sizeof(buf) - cut, "_h%08x", h);
	}
	snprintf(out, outlen, "%s", buf);
}

static uid_t owner_uid(const struct pg_node *n)
{
	return (n->user && n->user->set && geteuid() == 0) ? n->user->uid : (uid_t)-1;
}

static gid_t owner_gid(const struct pg_node *n)
{
	return (n->user && n->user->set && geteuid() == 0) ? n->user->gid : (gid_t)-1;
}

static bool tls_on(const struct pg_tls *t)
{
	return t != NULL && t->cert_src != NULL && t->cert_src[0] != '\0';
}

static void build_conf(const struct pg_conf_spec *s, struct strbuf *sb)
{
	const struct pg_node *n = s->node;
	sb_puts(sb, "# Written by pgha before every start. Do not edit: set options in the pgha\n"
		    "# config file ([parameters] section) instead.\n");
#define SET(name, val)                                   \
	do {                                             \
		sb_puts(sb, name " = ");                 \
		pg_conf_quote(sb, val);                  \
		sb_puts(sb, "\n");                       \
	} while (0)
	char port[16];
	snprintf(port, sizeof(port), "%d", n->port);
	/* Defaults pgha needs; [parameters] below may override the tunable ones. */
	SET("max_wal_senders", "10");
	SET("max_replication_slots", "10");
	SET("wal_keep_size", "128MB");
	SET("wal_log_hints", "on");
	SET("password_encryption", "scram-sha-256");
	SET("hot_standby_feedback", "on");
	SET("wal_sender_timeout", "10s");
	SET("wal_receiver_timeout", "10s");
	SET("wal_retrieve_retry_interval", "1s");
	SET("logging_collector", "off");
	SET("log_line_prefix", "%m [%p] ");
	for (size_t i = 0; i < s->nparams; i++) {
		sb_printf(sb, "%s = ", s->params[i].name);
		pg_conf_quote(sb, s->params[i].value);
		sb_puts(sb, "\n");
	}
	/* What pgha owns, last so nothing overrides it. */
	SET("listen_addresses", n->listen_host);
	SET("port", port);
	SET("unix_socket_directories", n->socket_dir);
	SET("cluster_name", s->member_name);
	SET("wal_level", "replica");
	SET("hot_standby", "on");
	/* Absolute: a relative path reads as a change at every reload (pending_restart). */
	char *hba = path_join(n->data_dir, "pg_hba.conf");
	SET("hba_file", hba);
	free(hba);
	SET("recovery_target_timeline", "latest");
	SET("primary_conninfo", s->standby && s->primary_conninfo ? s->primary_conninfo : "");
	SET("primary_slot_name", s->standby && s->slot ? s->slot : "");
	if (s->synchronous_standby_names)
		SET("synchronous_standby_names", s->synchronous_standby_names);
	if (s->archive_command) {
		SET("archive_mode", "on");
		SET("archive_command", s->archive_command);
	}
	if (s->restore_command)
		SET("restore_command", s->restore_command);
	if (tls_on(s->tls)) {
		SET("ssl", "on");
		SET("ssl_cert_file", s->tls->cert_file);
		SET("ssl_key_file", s->tls->key_file);
		/* The CA's list goes to clients asking for a certificate; none is required of them yet. */
		SET("ssl_ca_file", s->tls->ca_src && s->tls->ca_src[0] ? s->tls->ca_file : "");
	}
#undef SET
}

static void build_hba(const struct pg_conf_spec *s, struct strbuf *sb)
{
	/* With require, no TCP rule matches a connection without TLS: it gets "no pg_hba.conf entry". */
	const char *tcp = tls_on(s->tls) && s->tls->require ? "hostssl" : "host   ";
	sb_puts(sb, "# Written by pgha before every start: scram-sha-256 everywhere.\n"
		    "# TYPE  DATABASE     USER          ADDRESS            METHOD\n");
	sb_puts(sb, "local   all          all                              scram-sha-256\n");
	sb_printf(sb, "local   replication  %-13s                    scram-sha-256\n", s->replication_user);
	char *nets = xstrdup(s->allowed_networks);
	char *save = NULL;
	for (char *tok = strtok_r(nets, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		sb_printf(sb, "%s all          all           %-18s scram-sha-256\n", tcp, tok);
		sb_printf(sb, "%s replication  %-13s %-18s scram-sha-256\n", tcp, s->replication_user, tok);
	}
	free(nets);
}

/* Make postgresql.conf include pgha.conf as its last line (once). */
static int ensure_include(const struct pg_node *n, struct pgha_err *e)
{
	char *path = path_join(n->data_dir, "postgresql.conf");
	char *data = NULL;
	size_t len = 0;
	int rc = 0;
	if (read_file(path, &data, &len, e) != 0) {
		rc = -1;
		goto out;
	}
	if (strstr(data, INCLUDE_LINE) == NULL) {
		struct strbuf sb = STRBUF_INIT;
		sb_append(&sb, data, len);
		if (len > 0 && data[len - 1] != '\n')
			sb_puts(&sb, "\n");
		sb_puts(&sb, INCLUDE_LINE);
		rc = write_file_atomic(path, sb.data, sb.len, 0600, owner_uid(n), owner_gid(n), e);
		sb_free(&sb);
	}
out:
	free(data);
	free(path);
	return rc;
}

int pg_update_conf_file(const struct pg_conf_spec *s, struct pgha_err *e)
{
	const struct pg_node *n = s->node;
	struct strbuf conf = STRBUF_INIT;
	build_conf(s, &conf);
	char *path = path_join(n->data_dir, "pgha.conf");
	char *old = NULL;
	struct pgha_err ignore;
	int rc = 0;
	if (read_file(path, &old, NULL, &ignore) == 0 && strcmp(old, sb_str(&conf)) == 0)
		goto out;
	rc = write_file_atomic(path, conf.data, conf.len, 0600, owner_uid(n), owner_gid(n), e);
	if (rc == 0)
		rc = 1;
out:
	free(old);
	free(path);
	sb_free(&conf);
	return rc;
}

/* One [tls] file copied for PostgreSQL: 0600, owned by the user it runs as. */
static int copy_tls_file(const struct pg_node *n, const char *what, const char *src, const char *dst,
			 bool secret, struct pgha_err *e)
{
	char *data = NULL;
	size_t len = 0;
	int rc = secret ? read_secret_text(src, &data, &len, e) : read_file(src, &data, &len, e);
	if (rc == 0)
		rc = write_file_atomic(dst, data, len, 0600, owner_uid(n), owner_gid(n), e);
	if (data != NULL)
		secret_wipe_free(data, len);
	return rc != 0 ? err_wrap(e, "[tls] %s", what) : 0;
}

int pg_write_tls_files(const struct pg_node *n, const struct pg_tls *t, struct pgha_err *e)
{
	if (tls_on(t) && (copy_tls_file(n, "cert_file", t->cert_src, t->cert_file, false, e) != 0 ||
			  copy_tls_file(n, "key_file", t->key_src, t->key_file, true, e) != 0))
		return -1;
	if (t != NULL && t->ca_src != NULL && t->ca_src[0] != '\0')
		return copy_tls_file(n, "ca_file", t->ca_src, t->ca_file, false, e);
	return 0;
}

int pg_write_config(const struct pg_conf_spec *s, struct pgha_err *e)
{
	const struct pg_node *n = s->node;
	if (ensure_include(n, e) != 0 || pg_write_tls_files(n, s->tls, e) != 0)
		return -1;
	if (pg_update_conf_file(s, e) < 0)
		return -1;
	struct strbuf hba = STRBUF_INIT;
	build_hba(s, &hba);
	char *hba_path = path_join(n->data_dir, "pg_hba.conf");
	int rc = write_file_atomic(hba_path, hba.data, hba.len, 0600, owner_uid(n), owner_gid(n), e);
	free(hba_path);
	sb_free(&hba);
	if (rc != 0)
		return -1;
	char *sig = path_join(n->data_dir, "standby.signal");
	if (s->standby) {
		rc = write_file_atomic(sig, "", 0, 0600, owner_uid(n), owner_gid(n), e);
	} else if (unlink(sig) != 0 && errno != ENOENT) {
		rc = err_set(e, "cannot remove \"%s\": %s", sig, strerror(errno));
	}
	free(sig);
	return rc;
}

static void pgpass_escape(struct strbuf *sb, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == ':' || *p == '\\')
			sb_puts(sb, "\\");
		sb_append(sb, p, 1);
	}
}

int pg_write_pgpass(const char *path, const struct run_user *owner, const char *superuser,
		    const char *superuser_password, const char *repl_user, const char *repl_password,
		    struct pgha_err *e)
{
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "*:*:*:");
	pgpass_escape(&sb, repl_user);
	sb_puts(&sb, ":");
	pgpass_escape(&sb, repl_password);
	sb_puts(&sb, "\n*:*:*:");
	pgpass_escape(&sb, superuser);
	sb_puts(&sb, ":");
	pgpass_escape(&sb, superuser_password);
	sb_puts(&sb, "\n");
	bool chown_it = owner && owner->set && geteuid() == 0;
	int rc = write_file_atomic(path, sb.data, sb.len, 0600, chown_it ? owner->uid : (uid_t)-1,
				   chown_it ? owner->gid : (gid_t)-1, e);
	explicit_bzero(sb.data, sb.len);
	sb_free(&sb);
	return rc;
}
