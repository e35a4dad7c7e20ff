/*
 * pgconf.h — the files pgha writes for PostgreSQL:
 *   <data>/pgha.conf        settings pgha owns (port, replication, primary_conninfo ...),
 *                           included last from postgresql.conf so it wins
 *   <data>/pg_hba.conf      scram-sha-256 for local and the allowed networks
 *   <data>/standby.signal   present iff this member must run as a standby
 *   <pgpass>                passfile for replication and rewind connections
 * They are rewritten before every start, so a data directory copied from the
 * leader by pg_basebackup gets this member's own settings.
 */
#ifndef PGHA_PG_PGCONF_H
#define PGHA_PG_PGCONF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/proc.h"
#include "pg/pgctl.h"

struct pg_param {
	char *name;
	char *value;
};

/*
 * TLS for PostgreSQL ([tls] of the agent). The operator's files are copied
 * beside the data directory (0600, owned by the user PostgreSQL runs as, as it
 * requires of its key) rather than referenced: the originals may belong to
 * root or a secrets mount, and copies inside the data directory would go into
 * every pg_basebackup and backup.
 */
struct pg_tls {
	const char *cert_src, *key_src, *ca_src;     /* the operator's files; "" or NULL: not set */
	const char *cert_file, *key_file, *ca_file;  /* the copies PostgreSQL and libpq read */
	bool require;                                /* hostssl for every TCP rule in pg_hba.conf */
};

struct pg_conf_spec {
	const struct pg_node *node;
	const char *member_name;
	const char *allowed_networks;     /* comma-separated CIDRs */
	const char *superuser;
	const char *replication_user;
	const struct pg_param *params;    /* extra settings from [parameters] */
	size_t nparams;
	/* Standby: where to stream from (NULL primary_conninfo for a primary). */
	bool standby;
	const char *primary_conninfo;
	const char *slot;
	/* synchronous_standby_names pgha manages (NULL: not written; a standby ignores it). */
	const char *synchronous_standby_names;
	/*
	 * WAL archiving pgha owns ([backup] on): archive_mode = on with these
	 * commands, on every member. NULL: nothing written (archiving as the
	 * operator's [parameters] say).
	 */
	const char *archive_command;
	const char *restore_command;
	/* NULL or no cert_src: ssl = off (PostgreSQL's default). */
	const struct pg_tls *tls;
};

int pg_write_config(const struct pg_conf_spec *s, struct pgha_err *e) PGHA_MUSTCHECK;

/* Only rewrite pgha.conf (e.g. to re-point primary_conninfo); 1 if it changed. */
int pg_update_conf_file(const struct pg_conf_spec *s, struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * Copy the [tls] files for PostgreSQL and libpq (t may be NULL). pg_write_config
 * does it too; the agent calls it at start, before a clone or rewind needs the CA.
 */
int pg_write_tls_files(const struct pg_node *n, const struct pg_tls *t, struct pgha_err *e) PGHA_MUSTCHECK;

/* Write the passfile (0600, owned by the run user). */
int pg_write_pgpass(const char *path, const struct run_user *owner, const char *superuser,
		    const char *superuser_password, const char *repl_user, const char *repl_password,
		    struct pgha_err *e) PGHA_MUSTCHECK;

/*
 * "host=... port=... user=... passfile=... application_name=... sslmode=..."
 * (caller frees). sslmode: verify-full against tls->ca_file when set, require
 * when tls->require, else prefer (tls may be NULL); with either of the first
 * two, channel_binding=require (SCRAM-SHA-256-PLUS, never a cleartext password).
 */
char *pg_conninfo(const char *host, int port, const char *user, const char *passfile,
		  const char *application_name, const char *dbname, const struct pg_tls *tls);
/*
 * The same for several servers, hosts "h1,h2" and ports "p1,p2" (libpq's
 * lists), of which libpq takes the first that is a primary
 * (target_session_attrs=read-write; a walreceiver honours it too).
 */
char *pg_conninfo_primary_of(const char *hosts, const char *ports, const char *user, const char *passfile,
			     const char *application_name, const char *dbname, const struct pg_tls *tls);

/* Replication slot name for a member: lowercase [a-z0-9_], at most 63 bytes. */
void pg_slot_name(const char *member, char *out, size_t outlen);

/*
 * Parameters pgha writes itself (addresses, replication, synchronous_standby_names):
 * NULL if `name` may be set by the operator ([parameters], the dynamic config),
 * else a HINT line saying what to use instead. Case-insensitive, as PostgreSQL.
 */
const char *pg_param_managed(const char *name);
/* A plausible PostgreSQL parameter name: [A-Za-z0-9_.], not empty. */
bool pg_param_name_ok(const char *name);

/* Quote a value for postgresql.conf: 'it''s'. Appends to sb. */
struct strbuf;
void pg_conf_quote(struct strbuf *sb, const char *value);

#endif
