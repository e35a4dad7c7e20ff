/*
 * test_agent_config.c — the agent's option table and checks
 * (ha/agent_config.c): required options, derived values, listen addresses,
 * [parameters], the relations between timings, and --help.
 *
 * Config files are written into a private temporary directory (unit_files.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/log.h"
#include "ha/agent_config.h"

#include "../unit_files.h"

/* ---- agent_config ------------------------------------------------------- */

#define AGENT_MIN                                         \
	"[node]\n"                                        \
	"name = node1\n"                                  \
	"[postgresql]\n"                                  \
	"data_dir = /srv/pg/data\n"                       \
	"superuser_password_file = /etc/pgha/su.pw\n"     \
	"replication_password_file = /etc/pgha/repl.pw\n"

static int agent_load_text(const char *text, struct agent_config *cfg, char *path, size_t pathlen,
			   struct pgha_err *e)
{
	write_conf(path, pathlen, text);
	int rc = agent_config_load(path, cfg, e);
	unlink(path);
	return rc;
}

/* Load text that must be refused; the message must contain want (after "<path>"). */
static void agent_refused(const char *text, const char *want)
{
	char path[PATH_MAX];
	struct agent_config cfg;
	struct pgha_err e;
	e.msg[0] = '\0';
	int rc = agent_load_text(text, &cfg, path, sizeof(path), &e);
	agent_config_free(&cfg);
	if (rc == 0)
		fail_msg("accepted, want an error containing \"%s\":\n%s", want, text);
	if (strncmp(e.msg, path, strlen(path)) != 0)
		fail_msg("\"%s\" does not start with the path %s", e.msg, path);
	assert_contains(e.msg, want);
}

/* Load text that must be refused with exactly "<path><after_path>". */
static void agent_refused_exact(const char *text, const char *after_path)
{
	char path[PATH_MAX], want[PATH_MAX + 1024];
	struct agent_config cfg;
	struct pgha_err e;
	e.msg[0] = '\0';
	int rc = agent_load_text(text, &cfg, path, sizeof(path), &e);
	agent_config_free(&cfg);
	if (rc == 0)
		fail_msg("accepted, want \"<path>%s\":\n%s", after_path, text);
	snprintf(want, sizeof(want), "%s%s", path, after_path);
	assert_string_equal(e.msg, want);
}

static void agent_accepted(const char *text, struct agent_config *cfg)
{
	char path[PATH_MAX];
	struct pgha_err e;
	if (agent_load_text(text, cfg, path, sizeof(path), &e) != 0)
		fail_msg("refused: %s\n%s", e.msg, text);
}

static void test_agent_minimal(void **state)
{
	char path[PATH_MAX];
	struct agent_config cfg;
	struct pgha_err e;
	if (agent_load_text(AGENT_MIN, &cfg, path, sizeof(path), &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(cfg.path, path);
	assert_string_equal(cfg.name, "node1");
	assert_string_equal(cfg.cluster_name, "pgha");
	assert_string_equal(cfg.etcd_prefix, "/pgha");
	assert_int_equal(cfg.ttl_ms, 9000);
	assert_int_equal(cfg.loop_wait_ms, 1000);
	assert_int_equal(cfg.retry_timeout_ms, 3000);
	assert_string_equal(cfg.etcd_endpoints, "http://127.0.0.1:2379");
	assert_string_equal(cfg.etcd_username, "");
	assert_int_equal(cfg.etcd_request_timeout_ms, 1500);
	assert_string_equal(cfg.api_listen, "127.0.0.1:8008");
	assert_string_equal(cfg.run_as, "postgres");
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_false(cfg.nofailover);
	assert_false(cfg.nosync);
	assert_false(cfg.noloadbalance);
	assert_int_equal(cfg.priority, 100);
	assert_string_equal(cfg.region, "");
	assert_string_equal(cfg.zone, "");
	assert_string_equal(cfg.data_dir, "/srv/pg/data");
	assert_string_equal(cfg.bin_dir, "/usr/lib/postgresql/15/bin");
	assert_string_equal(cfg.listen, "127.0.0.1:5432");
	assert_string_equal(cfg.socket_dir, "/tmp");
	assert_string_equal(cfg.superuser, "postgres");
	assert_string_equal(cfg.superuser_password_file, "/etc/pgha/su.pw");
	assert_string_equal(cfg.replication_user, "replicator");
	assert_string_equal(cfg.replication_password_file, "/etc/pgha/repl.pw");
	assert_string_equal(cfg.allowed_networks, "127.0.0.1/32,::1/128");
	assert_int_equal(cfg.start_timeout_ms, 60000);
	assert_int_equal(cfg.stop_timeout_ms, 60000);
	assert_int_equal(cfg.member_slots_ttl_ms, 30 * 60000);
	assert_int_equal(cfg.nparams, 0);
	/* derived */
	assert_string_equal(cfg.pg_host, "127.0.0.1");
	assert_int_equal(cfg.pg_port, 5432);
	assert_string_equal(cfg.address, "127.0.0.1:5432");
	assert_string_equal(cfg.address_host, "127.0.0.1");
	assert_int_equal(cfg.address_port, 5432);
	assert_string_equal(cfg.api_address, "127.0.0.1:8008");
	assert_string_equal(cfg.pgpass, "/srv/pg/node1.pgpass");
	assert_string_equal(cfg.log_file, "/srv/pg/node1.postgresql.log");
	agent_config_free(&cfg);
	assert_null(cfg.name);
	assert_null(cfg.path);
}

static void test_agent_derived(void **state)
{
	struct agent_config cfg;
	/* listen given, address derived from it */
	agent_accepted(AGENT_MIN "listen = 10.0.0.5:6432\n"
				 "[node]\napi_listen = [::1]:8009\n", &cfg);
	assert_string_equal(cfg.pg_host, "10.0.0.5");
	assert_int_equal(cfg.pg_port, 6432);
	assert_string_equal(cfg.address, "10.0.0.5:6432");
	assert_string_equal(cfg.address_host, "10.0.0.5");
	assert_int_equal(cfg.address_port, 6432);
	assert_string_equal(cfg.api_address, "[::1]:8009");
	agent_config_free(&cfg);

	/* explicit address, api_address, pgpass and log_file are kept */
	agent_accepted(AGENT_MIN "listen = *:5432\n"
				 "address = db1.example.com:5433\n"
				 "pgpass = /etc/pgha/pgpass\n"
				 "log_file = /var/log/pg.log\n"
				 "[node]\n"
				 "api_listen = 0.0.0.0:8008\n"
				 "api_address = db1.example.com:8008\n", &cfg);
	assert_string_equal(cfg.pg_host, "*");
	assert_int_equal(cfg.pg_port, 5432);
	assert_string_equal(cfg.address, "db1.example.com:5433");
	assert_string_equal(cfg.address_host, "db1.example.com");
	assert_int_equal(cfg.address_port, 5433);
	assert_string_equal(cfg.api_address, "db1.example.com:8008");
	assert_string_equal(cfg.pgpass, "/etc/pgha/pgpass");
	assert_string_equal(cfg.log_file, "/var/log/pg.log");
	agent_config_free(&cfg);

	/* IPv6 address */
	agent_accepted(AGENT_MIN "listen = [fd00::5]:5432\n", &cfg);
	assert_string_equal(cfg.pg_host, "fd00::5");
	assert_string_equal(cfg.address_host, "fd00::5");
	assert_int_equal(cfg.address_port, 5432);
	agent_config_free(&cfg);

	/* defaults next to data_dir: its parent directory */
	agent_accepted("[node]\nname = n2\n[postgresql]\ndata_dir = /var/lib/pgsql/15/main\n"
		       "superuser_password_file = /a\nreplication_password_file = /b\n", &cfg);
	assert_string_equal(cfg.pgpass, "/var/lib/pgsql/15/n2.pgpass");
	assert_string_equal(cfg.log_file, "/var/lib/pgsql/15/n2.postgresql.log");
	agent_config_free(&cfg);
}

/*
 * Trailing slashes on data_dir are stripped: "/srv/pg/data/" is
 * "/srv/pg/data", so the passfile and the server log land beside it, not
 * inside it (an empty data_dir would become non-empty, and initdb and
 * pg_basebackup refuse that).
 */
static void test_agent_data_dir_trailing_slash(void **state)
{
	static const char *const dirs[] = {"/srv/pg/data/", "/srv/pg/data//", "/srv/pg/data///"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char text[512];
		struct agent_config cfg;
		snprintf(text, sizeof(text),
			 "[node]\nname = node1\n[postgresql]\ndata_dir = %s\n"
			 "superuser_password_file = /a\nreplication_password_file = /b\n", dirs[i]);
		agent_accepted(text, &cfg);
		assert_string_equal(cfg.data_dir, "/srv/pg/data");
		assert_string_equal(cfg.pgpass, "/srv/pg/node1.pgpass");
		assert_string_equal(cfg.log_file, "/srv/pg/node1.postgresql.log");
		agent_config_free(&cfg);
	}
}

/* A data_dir right under "/": its files go in "/", joined without "//". "/" itself is refused. */
static void test_agent_data_dir_root(void **state)
{
	static const char *const dirs[] = {"/pgdata", "/pgdata/"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char text[512];
		struct agent_config cfg;
		snprintf(text, sizeof(text),
			 "[node]\nname = node1\n[postgresql]\ndata_dir = %s\n"
			 "superuser_password_file = /a\nreplication_password_file = /b\n", dirs[i]);
		agent_accepted(text, &cfg);
		assert_string_equal(cfg.data_dir, "/pgdata");
		assert_string_equal(cfg.pgpass, "/node1.pgpass");
		assert_string_equal(cfg.log_file, "/node1.postgresql.log");
		agent_config_free(&cfg);
	}
	static const char *const roots[] = {"/", "//", "///"};
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text),
			 "[node]\nname = node1\n[postgresql]\ndata_dir = %s\n"
			 "superuser_password_file = /a\nreplication_password_file = /b\n", roots[i]);
		agent_refused_exact(text, ": [postgresql] data_dir = \"/\": choose a directory of its own");
	}
}

static void test_agent_missing_required(void **state)
{
	agent_refused("[node]\nname = node1\n[postgresql]\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir is required (PostgreSQL data directory");
	agent_refused("[postgresql]\ndata_dir = /d\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [node] name is required (this member's name");
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir = /d\n"
		      "superuser_password_file = /a\n",
		      ": [postgresql] replication_password_file is required");
	agent_refused("", ": [node] name is required");
}

static void test_agent_bad_values(void **state)
{
	agent_refused(AGENT_MIN "[cluster]\nttl = ten\n",
		      ":8: [cluster] ttl = \"ten\": not a duration (examples: 10, 10s, 500ms, 2m)");
	agent_refused(AGENT_MIN "[cluster]\nttl = 1s\n",
		      ":8: [cluster] ttl = \"1s\": out of range: must be from 2000ms to 3600000ms");
	agent_refused(AGENT_MIN "[node]\npriority = -1\n",
		      ":8: [node] priority = \"-1\": out of range: must be from 0 to 1000000");
	agent_refused(AGENT_MIN "[node]\nnofailover = maybe\n",
		      ":8: [node] nofailover = \"maybe\": not a boolean");
	agent_refused(AGENT_MIN "[node]\nlog_level = loud\n",
		      ":8: [node] log_level = \"loud\": not a log level");
	agent_refused(AGENT_MIN "[node]\nbogus = 1\n", ":8: [node] unknown option \"bogus\"");
	agent_refused(AGENT_MIN "[nodes]\nname = x\n", ":8: unknown section [nodes]");
	agent_refused("[node]\nname = node1\nthis is not ini\n" AGENT_MIN,
		      ":3: syntax error (expected \"[section]\" or \"name = value\")");
}

static void test_agent_ttl_relation(void **state)
{
	struct agent_config cfg;
	/* exactly loop_wait + 2 * retry_timeout is enough */
	agent_accepted(AGENT_MIN "[cluster]\nttl = 7s\nloop_wait = 1s\nretry_timeout = 3s\n", &cfg);
	assert_int_equal(cfg.ttl_ms, 7000);
	agent_config_free(&cfg);
	agent_refused(AGENT_MIN "[cluster]\nttl = 7s\nloop_wait = 1001ms\nretry_timeout = 3s\n",
		      ": [cluster] ttl (7000ms) must be at least loop_wait + 2 * retry_timeout "
		      "(1001ms + 2 * 3000ms)\nHINT: raise ttl or lower loop_wait/retry_timeout");
	agent_refused(AGENT_MIN "[cluster]\nttl = 10s\nretry_timeout = 5s\n",
		      ": [cluster] ttl (10000ms) must be at least loop_wait + 2 * retry_timeout "
		      "(1000ms + 2 * 5000ms)");
	/* defaults: 1s + 2 * 3s <= 9s; only loop_wait raised */
	agent_refused(AGENT_MIN "[cluster]\nloop_wait = 5s\n",
		      ": [cluster] ttl (9000ms) must be at least");
}

static void test_agent_request_timeout(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[etcd]\nrequest_timeout = 3s\n", &cfg);
	assert_int_equal(cfg.etcd_request_timeout_ms, 3000);
	agent_config_free(&cfg);
	agent_refused(AGENT_MIN "[etcd]\nrequest_timeout = 3001ms\n",
		      ": [etcd] request_timeout (3001ms) must not exceed [cluster] retry_timeout "
		      "(3000ms)");
	agent_refused(AGENT_MIN "[etcd]\nrequest_timeout = 2s\n[cluster]\nretry_timeout = 1s\n",
		      ": [etcd] request_timeout (2000ms) must not exceed [cluster] retry_timeout "
		      "(1000ms)");
	agent_refused(AGENT_MIN "[etcd]\nusername = pgha\n",
		      ": [etcd] username is set but password_file is not");
}

static void test_agent_data_dir_relative(void **state)
{
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir = data\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir = \"data\": must be an absolute path");
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir = ./pg/data\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir = \"./pg/data\": must be an absolute path");
	agent_refused("[node]\nname = node1\n[postgresql]\ndata_dir =\n"
		      "superuser_password_file = /a\nreplication_password_file = /b\n",
		      ": [postgresql] data_dir = \"\": must be an absolute path");
}

static void test_agent_listen(void **state)
{
	agent_refused(AGENT_MIN "listen = *:5432\n",
		      ": [postgresql] address is required when listen is \"*:5432\"");
	agent_refused(AGENT_MIN "listen = 0.0.0.0:5432\n",
		      ": [postgresql] address is required when listen is \"0.0.0.0:5432\"");
	agent_refused(AGENT_MIN "listen = 10.0.0.1,10.0.0.2:5432\n",
		      ": [postgresql] address is required when listen is \"10.0.0.1,10.0.0.2:5432\"");
	agent_refused(AGENT_MIN "listen = localhost\n",
		      ": [postgresql] listen: \"localhost\" is not host:port");
	agent_refused(AGENT_MIN "listen = 127.0.0.1:70000\n",
		      ": [postgresql] listen: \"127.0.0.1:70000\": the port must be a number from 1 to "
		      "65535");
	agent_refused(AGENT_MIN "listen = *:5432\naddress = db1\n",
		      ": [postgresql] address: \"db1\" is not host:port");
	agent_refused(AGENT_MIN "[node]\napi_listen = 0.0.0.0:8008\n",
		      ": [node] api_address is required when api_listen is \"0.0.0.0:8008\"");
	agent_refused(AGENT_MIN "[node]\napi_listen = [::]:8008\n",
		      ": [node] api_address is required when api_listen is \"[::]:8008\"");
	agent_refused(AGENT_MIN "[node]\napi_listen = 8008\n", ": [node] api_listen: \"8008\"");
	agent_refused(AGENT_MIN "[node]\napi_listen = 0.0.0.0:8008\napi_address = x:0\n",
		      ": [node] api_address: \"x:0\": the port must be a number from 1 to 65535");
}

/*
 * "[::]:5432" is the IPv6 wildcard (like "*" and "0.0.0.0", which are
 * refused): without [postgresql] address, the member record advertises host
 * "::", and a standby connecting to "::" reaches its OWN machine.
 */
static void test_agent_listen_ipv6_wildcard(void **state)
{
	agent_refused_exact(AGENT_MIN "listen = [::]:5432\n",
			    ": [postgresql] address is required when listen is \"[::]:5432\" "
			    "(others need one address to reach this member)");
	/* the same sentence as for the IPv4 wildcards */
	agent_refused_exact(AGENT_MIN "listen = *:5432\n",
			    ": [postgresql] address is required when listen is \"*:5432\" "
			    "(others need one address to reach this member)");
	agent_refused_exact(AGENT_MIN "listen = 0.0.0.0:5432\n",
			    ": [postgresql] address is required when listen is \"0.0.0.0:5432\" "
			    "(others need one address to reach this member)");
	/* with an address it is fine */
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "listen = [::]:5432\naddress = [fd00::7]:5432\n", &cfg);
	assert_string_equal(cfg.pg_host, "::");
	assert_int_equal(cfg.pg_port, 5432);
	assert_string_equal(cfg.address, "[fd00::7]:5432");
	assert_string_equal(cfg.address_host, "fd00::7");
	assert_int_equal(cfg.address_port, 5432);
	agent_config_free(&cfg);
	/* a specific IPv6 address is its own address */
	agent_accepted(AGENT_MIN "listen = [::1]:5433\n", &cfg);
	assert_string_equal(cfg.address, "[::1]:5433");
	assert_string_equal(cfg.address_host, "::1");
	agent_config_free(&cfg);
}

static void test_agent_names(void **state)
{
	static const char *const bad[] = {
		"", "node 1", "node/1", "node:1", "n\xc3\xb6""de", "node@x", "a,b",
		"0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024], want[256];
		snprintf(text, sizeof(text), AGENT_MIN "[node]\nname = %s\n", bad[i]);
		snprintf(want, sizeof(want),
			 ": [node] name = \"%s\": use 1 to 63 of A-Z a-z 0-9 _ - .", bad[i]);
		agent_refused(text, want);
	}
	static const char *const good[] = {
		"a", "Node-1.dc_2", "012345678901234567890123456789012345678901234567890123456789012",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char text[1024];
		struct agent_config cfg;
		snprintf(text, sizeof(text), AGENT_MIN "[node]\nname = %s\n", good[i]);
		agent_accepted(text, &cfg);
		assert_string_equal(cfg.name, good[i]);
		agent_config_free(&cfg);
	}
	/* region and zone: the same characters, or empty; a zone is within a region */
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[node]\nregion = eu-west\nzone = eu-west-1a\n", &cfg);
	assert_string_equal(cfg.region, "eu-west");
	assert_string_equal(cfg.zone, "eu-west-1a");
	agent_config_free(&cfg);
	agent_refused(AGENT_MIN "[node]\nregion = eu west\n",
		      ": [node] region = \"eu west\": use 1 to 63 of A-Z a-z 0-9 _ - ., or leave it empty");
	agent_refused(AGENT_MIN "[node]\nregion = a\nzone = a/1\n",
		      ": [node] zone = \"a/1\": use 1 to 63 of A-Z a-z 0-9 _ - ., or leave it empty");
	agent_refused(AGENT_MIN "[node]\nzone = a1\n", ": [node] zone = \"a1\" needs a region\nHINT: add [node] region");
	agent_refused(AGENT_MIN "[cluster]\nname = my cluster\n",
		      ": [cluster] name = \"my cluster\": use 1 to 63 of A-Z a-z 0-9 _ - .");
	agent_refused(AGENT_MIN "[cluster]\nprefix = pgha\n",
		      ": [cluster] prefix = \"pgha\": must start with /");
}

/* [standby_cluster] and [cluster] standby_slots */
static void test_agent_standby_cluster(void **state)
{
	(void)state;
	struct agent_config cfg;
	agent_accepted(AGENT_MIN, &cfg);
	assert_false(agent_config_standby_cluster(&cfg));
	agent_config_free(&cfg);
	agent_accepted(AGENT_MIN "[standby_cluster]\nprimary_hosts = 10.0.0.1:5432, db2.east:5433,[::1]:6000\n"
		       "primary_slot_name = west_1\n[cluster]\nstandby_slots = west_1, west_2\n", &cfg);
	assert_true(agent_config_standby_cluster(&cfg));
	assert_string_equal(cfg.standby_hosts, "10.0.0.1,db2.east,::1");
	assert_string_equal(cfg.standby_ports, "5432,5433,6000");
	assert_string_equal(cfg.standby_primary_slot, "west_1");
	agent_config_free(&cfg);
	agent_refused(AGENT_MIN "[standby_cluster]\nprimary_hosts = 10.0.0.1\n",
		      ": [standby_cluster] primary_hosts: \"10.0.0.1\": ");
	agent_refused(AGENT_MIN "[standby_cluster]\nprimary_hosts = 10.0.0.1\n", "HINT: write host:port");
	agent_refused(AGENT_MIN "[standby_cluster]\nprimary_hosts = a:1,b:x\n",
		      ": [standby_cluster] primary_hosts: \"b:x\": ");
	agent_refused(AGENT_MIN "[standby_cluster]\nprimary_hosts = ,\n",
		      ": [standby_cluster] primary_hosts = \",\" names no host");
	agent_refused(AGENT_MIN "[standby_cluster]\nprimary_hosts = a:1\nprimary_slot_name = West\n",
		      ": [standby_cluster] primary_slot_name = \"West\" is not a replication slot name\nHINT: use 1 to 63");
	agent_refused(AGENT_MIN "[standby_cluster]\nprimary_slot_name = west\n",
		      ": [standby_cluster] primary_slot_name is set but primary_hosts is not\nHINT: add primary_hosts");
	agent_refused(AGENT_MIN "[cluster]\nstandby_slots = ok,bad-name\n",
		      ": [cluster] standby_slots: \"bad-name\" is not a replication slot name\nHINT: use 1 to 63 of a-z 0-9 _");
	agent_refused(AGENT_MIN "[cluster]\nstandby_slots = 0123456789012345678901234567890123456789012345678901234567890123\n",
		      "is not a replication slot name");
	assert_true(agent_config_slot_name_valid("012345678901234567890123456789012345678901234567890123456789012"));
	assert_false(agent_config_slot_name_valid(""));
}

/* [standby_cluster] archive_stanza: the primary's stanza in this cluster's own [backup] repository. */
static void test_agent_standby_archive_stanza(void **state)
{
#define SC AGENT_MIN "[standby_cluster]\nprimary_hosts = 10.0.0.1:5432\n"
	(void)state;
	struct agent_config cfg;
	agent_accepted(SC, &cfg);
	assert_string_equal(cfg.standby_archive_stanza, "");
	agent_config_free(&cfg);
	agent_accepted(SC "archive_stanza = east\n[backup]\nrepo_path = /srv/backup\n", &cfg);
	assert_string_equal(cfg.standby_archive_stanza, "east");
	agent_config_free(&cfg);
	agent_refused(SC "archive_stanza = east\n",
		      ": [standby_cluster] archive_stanza = east needs the repository the primary cluster archives into\n"
		      "HINT: add [backup] repo_path");
	agent_refused(SC "archive_stanza = pgha\n[backup]\nrepo_path = /srv/backup\n",
		      ": [standby_cluster] archive_stanza = pgha is this cluster's own stanza ([cluster] name)\n"
		      "HINT: name the primary cluster's stanza");
	agent_refused(SC "archive_stanza = east/1\n[backup]\nrepo_path = /srv/backup\n",
		      ": [standby_cluster] archive_stanza = \"east/1\": a cluster name (1 to 63 of A-Z a-z 0-9 _ - .)\n"
		      "HINT: the primary cluster's [cluster] name");
	agent_refused(AGENT_MIN "[standby_cluster]\narchive_stanza = east\n[backup]\nrepo_path = /srv/backup\n",
		      ": [standby_cluster] archive_stanza is set but primary_hosts is not\nHINT: add primary_hosts");
#undef SC
}

static void test_agent_parameters(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[parameters]\n"
				 "shared_buffers = 1GB\n"
				 "work_mem = 4MB\n"
				 "pg_stat_statements.max = 10000\n"
				 "shared_buffers = 2GB\n", &cfg);
	assert_int_equal(cfg.nparams, 3);
	assert_string_equal(cfg.params[0].name, "shared_buffers");
	assert_string_equal(cfg.params[0].value, "2GB"); /* a repeated key replaces */
	assert_string_equal(cfg.params[1].name, "work_mem");
	assert_string_equal(cfg.params[1].value, "4MB");
	assert_string_equal(cfg.params[2].name, "pg_stat_statements.max");
	assert_string_equal(cfg.params[2].value, "10000");
	agent_config_free(&cfg);

	agent_refused(AGENT_MIN "[parameters]\nshared-buffers = 1GB\n",
		      ":8: [parameters] \"shared-buffers\" is not a PostgreSQL parameter name");

	static const char *const owned[] = {
		"port", "listen_addresses", "hot_standby", "primary_conninfo", "primary_slot_name",
		"unix_socket_directories", "wal_level", "hba_file", "data_directory",
	};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		char text[1024], want[256];
		snprintf(text, sizeof(text), AGENT_MIN "[parameters]\nwork_mem = 1MB\n%s = x\n",
			 owned[i]);
		snprintf(want, sizeof(want),
			 ": [parameters] %s is managed by pgha and cannot be set here\nHINT: ", owned[i]);
		agent_refused(text, want);
	}
}

/*
 * PostgreSQL parameter names are case-insensitive ("Port = 5433" in
 * postgresql.conf sets port), so the managed parameters are refused in any
 * case, and the message names them as written.
 */
static void test_agent_parameters_managed_case(void **state)
{
	static const char *const names[] = {"Port", "PORT", "WAL_LEVEL", "Listen_Addresses",
					    "Primary_Conninfo", "HBA_file", "Data_Directory",
					    "restore_command_PGHA"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char text[1024], want[256];
		snprintf(text, sizeof(text), AGENT_MIN "[parameters]\nwork_mem = 1MB\n%s = x\n",
			 names[i]);
		snprintf(want, sizeof(want),
			 ": [parameters] %s is managed by pgha and cannot be set here"
			 "\nHINT: use [postgresql] listen/socket_dir for addresses", names[i]);
		agent_refused_exact(text, want);
	}
	/* not a prefix match: names that merely start like a managed one are fine */
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[parameters]\nPorts = 1\nwal_level_x = 2\n", &cfg);
	assert_int_equal(cfg.nparams, 2);
	assert_string_equal(cfg.params[0].name, "Ports");
	assert_string_equal(cfg.params[1].name, "wal_level_x");
	agent_config_free(&cfg);
}

/* An empty parameter name is a syntax error of the file (the reader refuses "= 5"). */
static void test_agent_parameters_empty_name(void **state)
{
	agent_refused_exact(AGENT_MIN "[parameters]\n= 5\n", ":8: syntax error: a value without a name");
	agent_refused_exact(AGENT_MIN "[parameters]\nwork_mem = 1MB\n   = 5\n",
			    ":9: syntax error: a value without a name");
	/* and param_set refuses it too when reached some other way */
	struct agent_config cfg;
	struct pgha_err e;
	memset(&cfg, 0, sizeof(cfg));
	if (config_apply_defaults(&agent_config_table, &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(config_set(&agent_config_table, &cfg, "parameters", "", "5", &e), -1);
	assert_string_equal(e.msg, "[parameters] a value without a parameter name");
	assert_int_equal(cfg.nparams, 0);
	agent_config_free(&cfg);
}

/*
 * Long archive_command lines are read whole: the old inih reader cut lines at
 * 200 bytes and parsed the tail as a new "stanza = ..." parameter.
 */
static void test_agent_long_line(void **state)
{
	char value[512], text[2048];
	const char *key = "archive_command = ";
	snprintf(value, sizeof(value),
		 "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --log-path=/var/log/pgbackrest "
		 "--spool-path=/var/spool/pgbackrest/");
	size_t len = strlen(key) + strlen(value);
	while (len < 199 - 3) { /* pad the spool path so "--" ends at byte 199 */
		strcat(value, "x");
		len++;
	}
	strcat(value, " --stanza=main archive-push %p");
	assert_int_equal(strlen(key) + strlen(value), 199 + strlen("stanza=main archive-push %p"));
	snprintf(text, sizeof(text), AGENT_MIN "[parameters]\n%s%s\nwork_mem = 4MB\n", key, value);

	struct agent_config cfg;
	agent_accepted(text, &cfg);
	assert_int_equal(cfg.nparams, 2);
	assert_string_equal(cfg.params[0].name, "archive_command");
	assert_string_equal(cfg.params[0].value, value);
	assert_string_equal(cfg.params[1].name, "work_mem");
	assert_string_equal(cfg.params[1].value, "4MB");
	agent_config_free(&cfg);

	/* 5000 bytes, intact */
	enum { VLEN = 5000 };
	char *big = malloc(VLEN + 1);
	char *btext = malloc(VLEN + 512);
	assert_non_null(big);
	assert_non_null(btext);
	for (int i = 0; i < VLEN; i++)
		big[i] = (char)('a' + i % 26);
	memcpy(big + 100, " ; # = ", 7);
	big[VLEN] = '\0';
	snprintf(btext, VLEN + 512, AGENT_MIN "[parameters]\narchive_command = %s\n", big);
	agent_accepted(btext, &cfg);
	assert_int_equal(cfg.nparams, 1);
	assert_string_equal(cfg.params[0].name, "archive_command");
	assert_int_equal(strlen(cfg.params[0].value), VLEN);
	assert_string_equal(cfg.params[0].value, big);
	agent_config_free(&cfg);
	/* an error after it names its own line */
	snprintf(btext, VLEN + 512, AGENT_MIN "[parameters]\narchive_command = %s\n[node]\nbogus = 1\n",
		 big);
	agent_refused_exact(btext, ":10: [node] unknown option \"bogus\"");
	free(btext);
	free(big);
}

/* No inline comments: "; sync" is part of the command, not a comment. */
static void test_agent_semicolon_in_value(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[parameters]\narchive_command = cp %p /x ; sync\n"
				 "restore_command = \"cp /x/%f %p # quoted\"\n", &cfg);
	assert_int_equal(cfg.nparams, 2);
	assert_string_equal(cfg.params[0].name, "archive_command");
	assert_string_equal(cfg.params[0].value, "cp %p /x ; sync");
	assert_string_equal(cfg.params[1].name, "restore_command");
	assert_string_equal(cfg.params[1].value, "cp /x/%f %p # quoted");
	agent_config_free(&cfg);
	/* for an option that is a number, a would-be comment makes the value wrong */
	agent_refused_exact(AGENT_MIN "[node]\npriority = 5 ; high\n",
			    ":8: [node] priority = \"5 ; high\": not an integer");
	agent_refused_exact(AGENT_MIN "[cluster]\nttl = 10s # ten\n",
			    ":8: [cluster] ttl = \"10s # ten\": not a duration (examples: 10, 10s, "
			    "500ms, 2m)");
}

/* [backup]: off by default (nothing derived), defaults, derived work_dir, refusals. */
static void test_agent_backup_off(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[parameters]\narchive_mode = on\narchive_command = /bin/true %p\n", &cfg);
	assert_false(agent_config_backup_on(&cfg));
	assert_string_equal(cfg.backup_repo_path, "");
	assert_string_equal(cfg.backup_work_dir, "");
	assert_int_equal(cfg.nparams, 2);
	agent_config_free(&cfg);
}

static void test_agent_backup_defaults(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[backup]\nrepo_path = /srv/backup\n", &cfg);
	assert_true(agent_config_backup_on(&cfg));
	assert_string_equal(cfg.backup_repo_path, "/srv/backup");
	assert_int_equal(cfg.backup_retention_full, 2);
	assert_string_equal(cfg.backup_compress_type, "zstd");
	assert_int_equal(cfg.backup_process_max, 2);
	assert_string_equal(cfg.backup_cipher_pass_file, "");
	assert_string_equal(cfg.backup_work_dir, "/srv/pg/data.pgha-backup");
	assert_string_equal(cfg.backup_archive_push_queue_max, "1GiB");
	agent_config_free(&cfg);
	agent_accepted(AGENT_MIN "[backup]\nrepo_path = /srv/backup\nretention_full = 7\ncompress_type = lz4\n"
		       "process_max = 64\ncipher_pass_file = /etc/pgha/cipher\nwork_dir = /var/lib/pgha/br/\n"
		       "archive_push_queue_max = 512MB\n", &cfg);
	assert_int_equal(cfg.backup_retention_full, 7);
	assert_string_equal(cfg.backup_compress_type, "lz4");
	assert_int_equal(cfg.backup_process_max, 64);
	assert_string_equal(cfg.backup_cipher_pass_file, "/etc/pgha/cipher");
	assert_string_equal(cfg.backup_work_dir, "/var/lib/pgha/br");
	assert_string_equal(cfg.backup_archive_push_queue_max, "512MB");
	agent_config_free(&cfg);
}

static void test_agent_backup_refused(void **state)
{
#define BK AGENT_MIN "[backup]\nrepo_path = /srv/backup\n"
	agent_refused_exact(AGENT_MIN "[backup]\nrepo_path = backup\n",
			    ": [backup] repo_path = \"backup\": must be an absolute path");
	agent_refused_exact(BK "compress_type = bz2\n",
			    ": [backup] compress_type = \"bz2\": use zstd, lz4, gz or none");
	agent_refused(BK "process_max = 0\n", "process_max");
	agent_refused(BK "process_max = 65\n", "process_max");
	agent_refused(BK "retention_full = 0\n", "retention_full");
	agent_refused_exact(BK "work_dir = rel/dir\n", ": [backup] work_dir = \"rel/dir\": must be an absolute path");
	agent_refused_exact(BK "cipher_pass_file = cipher\n",
			    ": [backup] cipher_pass_file = \"cipher\": must be an absolute path");
	agent_refused_exact(BK "archive_push_queue_max = lots\n",
			    ": [backup] archive_push_queue_max = \"lots\": a size such as 1GiB, 512MiB or 100GB");
	agent_refused_exact(BK "[parameters]\nArchive_Command = cp %p /x\n",
			    ": [parameters] Archive_Command is managed by pgha while [backup] repo_path is set\n"
			    "HINT: remove it: pgha archives WAL with pgBackRest to /srv/backup on every member");
	agent_refused(BK "[parameters]\narchive_mode = off\n", "archive_mode is managed by pgha");
	agent_refused(BK "[parameters]\nrestore_command = cp /x/%f %p\n", "restore_command is managed by pgha");
	agent_refused(BK "[backup]\nrepo = /x\n", "repo");
	agent_refused_exact(BK "diff_every = 30s\n", ": [backup] diff_every = \"30s\": a period of at least 1 minute "
			    "such as 7d, 1d, 6h or 30m (empty: not scheduled)");
	agent_refused_exact(BK "schedule_offset = soon\n", ": [backup] schedule_offset = \"soon\": a duration such as 2h or 30m");
	agent_refused_exact(BK "create_replicas = rsync\n", ": [backup] create_replicas = \"rsync\": use repository or pg_basebackup");
	agent_refused_exact(BK "[bootstrap]\nmethod = clone\n", ": [bootstrap] method = \"clone\": use initdb or restore");
	agent_refused_exact(AGENT_MIN "[bootstrap]\nmethod = restore\n", ": [bootstrap] method = restore needs the "
			    "repository to restore from\nHINT: add [backup] repo_path (the source cluster's repository)");
	agent_refused(BK "[bootstrap]\nmethod = restore\nrestore_target = last tuesday\n",
		      ": [bootstrap] restore target \"last tuesday\": give latest");
	agent_refused(BK "[bootstrap]\nmethod = restore\nrestore_stanza = ../x\n", "restore_stanza = \"../x\"");
#undef BK
}

/* [backup] repo_type = s3: the repository is on, repo_path defaults to /pgha, the endpoint's port is split off. */
#define S3_MIN                                                                                     \
	AGENT_MIN "[backup]\nrepo_type = s3\ns3_bucket = pgha-backups\ns3_endpoint = minio.lan:9000\n" \
		  "s3_region = us-east-1\ns3_key_file = /etc/pgha/s3.key\ns3_key_secret_file = /etc/pgha/s3.secret\n"

static void test_agent_backup_s3(void **state)
{
	struct agent_config cfg;
	agent_accepted(S3_MIN, &cfg);
	assert_true(agent_config_backup_on(&cfg));
	assert_true(cfg.backup_s3);
	assert_string_equal(cfg.backup_repo_path, "/pgha");
	assert_string_equal(cfg.backup_s3_host, "minio.lan");
	assert_int_equal(cfg.backup_s3_port, 9000);
	assert_string_equal(cfg.backup_s3_uri_style, "host");
	assert_true(cfg.backup_s3_verify_tls);
	assert_string_equal(cfg.backup_s3_ca_file, "");
	assert_string_equal(cfg.backup_repo, "s3://pgha-backups/pgha at minio.lan:9000");
	assert_string_equal(cfg.backup_work_dir, "/srv/pg/data.pgha-backup");
	agent_config_free(&cfg);
	agent_accepted(S3_MIN "repo_path = /clusters/a\ns3_endpoint = s3.eu-west-1.amazonaws.com\ns3_uri_style = path\n"
		       "s3_verify_tls = off\ns3_ca_file = /etc/pgha/ca.pem\n", &cfg);
	assert_string_equal(cfg.backup_repo_path, "/clusters/a");
	assert_string_equal(cfg.backup_s3_host, "s3.eu-west-1.amazonaws.com");
	assert_int_equal(cfg.backup_s3_port, 0);
	assert_string_equal(cfg.backup_s3_uri_style, "path");
	assert_false(cfg.backup_s3_verify_tls);
	assert_string_equal(cfg.backup_s3_ca_file, "/etc/pgha/ca.pem");
	agent_config_free(&cfg);
	/* Posix stays the default. */
	agent_accepted(AGENT_MIN "[backup]\nrepo_path = /srv/backup\n", &cfg);
	assert_false(cfg.backup_s3);
	assert_string_equal(cfg.backup_repo, "/srv/backup");
	agent_config_free(&cfg);
}

static void test_agent_backup_s3_refused(void **state)
{
	agent_refused_exact(AGENT_MIN "[backup]\nrepo_type = gcs\n", ": [backup] repo_type = \"gcs\": use posix or s3");
	agent_refused_exact(AGENT_MIN "[backup]\ns3_bucket = b\n",
			    ": [backup] s3_bucket is set but repo_type is posix\n"
			    "HINT: add repo_type = s3 to [backup] for an S3 repository");
	agent_refused_exact(AGENT_MIN "[backup]\nrepo_type = s3\ns3_endpoint = x\n",
			    ": [backup] s3_bucket is required with repo_type = s3\n"
			    "HINT: an S3 repository needs s3_bucket, s3_endpoint, s3_region, s3_key_file and "
			    "s3_key_secret_file");
	agent_refused(S3_MIN "s3_region = \n", ": [backup] s3_region is required with repo_type = s3");
	agent_refused_exact(S3_MIN "s3_bucket = a b\n",
			    ": [backup] s3_bucket = \"a b\": blanks, control characters and '=' cannot be passed to "
			    "pgBackRest");
	agent_refused_exact(S3_MIN "s3_endpoint = https://minio.lan\n",
			    ": [backup] s3_endpoint = \"https://minio.lan\": give host[:port] without a scheme\n"
			    "HINT: pgBackRest always speaks HTTPS to S3; write e.g. s3_endpoint = minio.lan:9000");
	agent_refused(S3_MIN "s3_endpoint = minio.lan:http\n", ": [backup] s3_endpoint: ");
	agent_refused(S3_MIN "s3_uri_style = vhost\n", "s3_uri_style = \"vhost\": use host (bucket.endpoint) or path");
	agent_refused_exact(S3_MIN "s3_key_file = \n", ": [backup] s3_key_file is required with repo_type = s3\n"
			    "HINT: point it at a file (mode 0600) holding the key");
	agent_refused_exact(S3_MIN "s3_key_secret_file = secret\n",
			    ": [backup] s3_key_secret_file = \"secret\": must be an absolute path");
	agent_refused(S3_MIN "s3_ca_file = ca.pem\n", ": [backup] s3_ca_file = \"ca.pem\": must be an absolute path");
	agent_refused(S3_MIN "s3_verify_tls = maybe\n", "s3_verify_tls");
	agent_refused(S3_MIN "repo_path = pgha\n", ": [backup] repo_path = \"pgha\": must be an absolute path");
	agent_refused(S3_MIN "[parameters]\narchive_command = x\n",
		      "HINT: remove it: pgha archives WAL with pgBackRest to s3://pgha-backups/pgha at minio.lan:9000");
}
#undef S3_MIN

static void test_agent_backup_schedule_and_bootstrap(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN "[backup]\nrepo_path = /srv/backup\nfull_every = 7d\ndiff_every = 1d\n"
		       "incr_every = 90m\nschedule_offset = 2h\n", &cfg);
	assert_int_equal(cfg.backup_plan.every_s[BACKUP_FULL], 7 * 86400);
	assert_int_equal(cfg.backup_plan.every_s[BACKUP_DIFF], 86400);
	assert_int_equal(cfg.backup_plan.every_s[BACKUP_INCR], 5400);
	assert_int_equal(cfg.backup_plan.offset_s, 7200);
	assert_string_equal(cfg.backup_create_replicas, "repository");
	assert_false(cfg.bootstrap_restore);
	agent_config_free(&cfg);
	agent_accepted(AGENT_MIN "[backup]\nrepo_path = /srv/backup\n[bootstrap]\nmethod = restore\n"
		       "restore_stanza = main\nrestore_target = 2026-12-03 14:02\n", &cfg);
	assert_true(cfg.bootstrap_restore);
	assert_string_equal(cfg.bootstrap_stanza, "main");
	assert_string_equal(cfg.bootstrap_target, "2026-12-03 14:02:00+00:00");
	assert_int_equal(cfg.backup_plan.every_s[BACKUP_FULL], 0);
	agent_config_free(&cfg);
	/* The source stanza defaults to this cluster's name; the target to the end of the archive. */
	agent_accepted(AGENT_MIN "[backup]\nrepo_path = /srv/backup\n[bootstrap]\nmethod = restore\n", &cfg);
	assert_string_equal(cfg.bootstrap_target, "latest");
	assert_string_equal(cfg.bootstrap_stanza, cfg.cluster_name);
	agent_config_free(&cfg);
}

/* [tls]: both halves of the pair, require only with one, absolute paths; the copies sit beside data_dir. */
static void test_agent_tls(void **state)
{
	struct agent_config cfg;
	agent_accepted(AGENT_MIN, &cfg);
	struct pg_tls t;
	agent_config_pg_tls(&cfg, &t);
	assert_string_equal(t.cert_src, "");
	assert_null(t.cert_file);
	assert_null(t.ca_file);
	assert_false(t.require);
	agent_config_free(&cfg);

	agent_accepted(AGENT_MIN "[tls]\ncert_file = /etc/pgha/n1.crt\nkey_file = /etc/pgha/n1.key\n"
		       "ca_file = /etc/pgha/ca.crt\nrequire = on\n", &cfg);
	agent_config_pg_tls(&cfg, &t);
	assert_string_equal(t.cert_src, "/etc/pgha/n1.crt");
	assert_string_equal(t.key_src, "/etc/pgha/n1.key");
	assert_string_equal(t.ca_src, "/etc/pgha/ca.crt");
	assert_string_equal(t.cert_file, "/srv/pg/node1.server.crt");
	assert_string_equal(t.key_file, "/srv/pg/node1.server.key");
	assert_string_equal(t.ca_file, "/srv/pg/node1.ca.crt");
	assert_true(t.require);
	agent_config_free(&cfg);

	/* a CA alone: this member verifies the others but serves without TLS */
	agent_accepted(AGENT_MIN "[tls]\nca_file = /etc/pgha/ca.crt\n", &cfg);
	agent_config_pg_tls(&cfg, &t);
	assert_null(t.cert_file);
	assert_string_equal(t.ca_file, "/srv/pg/node1.ca.crt");
	agent_config_free(&cfg);

	agent_refused_exact(AGENT_MIN "[tls]\ncert_file = /etc/pgha/n1.crt\n",
			    ": [tls] needs both cert_file and key_file (only cert_file is set)");
	agent_refused_exact(AGENT_MIN "[tls]\nkey_file = /etc/pgha/n1.key\n",
			    ": [tls] needs both cert_file and key_file (only key_file is set)");
	agent_refused_exact(AGENT_MIN "[tls]\nrequire = on\n", ": [tls] require = on needs cert_file and key_file");
	agent_refused_exact(AGENT_MIN "[tls]\ncert_file = n1.crt\nkey_file = /etc/pgha/n1.key\n",
			    ": [tls] cert_file = \"n1.crt\": must be an absolute path");
	agent_refused_exact(AGENT_MIN "[tls]\nca_file = ca.crt\n", ": [tls] ca_file = \"ca.crt\": must be an absolute path");
	agent_refused(AGENT_MIN "[tls]\nrequire = maybe\n", "require");

	/* The API: HTTPS by default with a certificate, client certificates only with a CA to check them. */
	agent_accepted(AGENT_MIN "[tls]\ncert_file = /etc/pgha/n1.crt\nkey_file = /etc/pgha/n1.key\n", &cfg);
	assert_true(cfg.api_tls);
	assert_false(cfg.tls_api_client_certs);
	agent_config_free(&cfg);
	agent_accepted(AGENT_MIN "[tls]\ncert_file = /etc/pgha/n1.crt\nkey_file = /etc/pgha/n1.key\napi = off\n", &cfg);
	assert_false(cfg.api_tls);
	agent_config_free(&cfg);
	agent_accepted(AGENT_MIN "[tls]\nca_file = /etc/pgha/ca.crt\n", &cfg);
	assert_false(cfg.api_tls);
	agent_config_free(&cfg);
	agent_accepted(AGENT_MIN "[tls]\ncert_file = /etc/pgha/n1.crt\nkey_file = /etc/pgha/n1.key\n"
		       "ca_file = /etc/pgha/ca.crt\napi_client_certs = on\n", &cfg);
	assert_true(cfg.api_tls && cfg.tls_api_client_certs);
	agent_config_free(&cfg);
	agent_refused(AGENT_MIN "[tls]\ncert_file = /etc/pgha/n1.crt\nkey_file = /etc/pgha/n1.key\napi_client_certs = on\n",
		      "api_client_certs = on needs api = on, cert_file, key_file and ca_file");
	agent_refused(AGENT_MIN "[tls]\ncert_file = /etc/pgha/n1.crt\nkey_file = /etc/pgha/n1.key\n"
		      "ca_file = /etc/pgha/ca.crt\napi = off\napi_client_certs = on\n", "api_client_certs");
	agent_refused(AGENT_MIN "[tls]\napi = maybe\n", "api");
}

static void test_agent_help(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	config_print_help(&agent_config_table, f);
	fclose(f);
	assert_non_null(buf);
	const struct config_table *t = &agent_config_table;
	assert_true(t->noptions >= 30);
	for (size_t i = 0; i < t->noptions; i++) {
		const struct config_option *o = &t->options[i];
		char line[128], sec[64];
		/* "    <name padded to 26> <type>; ..." */
		snprintf(line, sizeof(line), "\n    %-26s ", o->name);
		assert_contains(buf, line);
		snprintf(sec, sizeof(sec), "\n  [%s]\n", o->section);
		assert_contains(buf, sec);
		assert_contains(buf, o->help);
	}
	assert_contains(buf, "\n  [parameters]\n    any name = value: passed through as is\n");
	/* a few complete lines: required, default, reloadable, type names */
	static const char *const lines[][2] = {
		{"name", "string; required"},
		{"data_dir", "string; required"},
		{"ttl", "duration; default: 9s; reloadable"},
		{"request_timeout", "duration; default: 1500ms"},
		{"priority", "integer; default: 100; reloadable"},
		{"nofailover", "boolean; default: off; reloadable"},
		{"log_level", "log level; default: info; reloadable"},
		{"username", "string; default: none"},
		{"endpoints", "string; default: http://127.0.0.1:2379"},
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char line[160];
		snprintf(line, sizeof(line), "\n    %-26s %s\n", lines[i][0], lines[i][1]);
		assert_contains(buf, line);
	}
	/* each section header once, in table order */
	assert_true(strstr(buf, "[cluster]") < strstr(buf, "[etcd]"));
	assert_true(strstr(buf, "[etcd]") < strstr(buf, "[node]"));
	assert_true(strstr(buf, "[node]") < strstr(buf, "[postgresql]"));
	assert_null(strstr(strstr(buf, "[node]") + 1, "\n  [node]\n"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_minimal),
		cmocka_unit_test(test_agent_derived),
		cmocka_unit_test(test_agent_data_dir_trailing_slash),
		cmocka_unit_test(test_agent_data_dir_root),
		cmocka_unit_test(test_agent_missing_required),
		cmocka_unit_test(test_agent_bad_values),
		cmocka_unit_test(test_agent_ttl_relation),
		cmocka_unit_test(test_agent_request_timeout),
		cmocka_unit_test(test_agent_data_dir_relative),
		cmocka_unit_test(test_agent_listen),
		cmocka_unit_test(test_agent_listen_ipv6_wildcard),
		cmocka_unit_test(test_agent_names),
		cmocka_unit_test(test_agent_standby_cluster),
		cmocka_unit_test(test_agent_standby_archive_stanza),
		cmocka_unit_test(test_agent_parameters),
		cmocka_unit_test(test_agent_parameters_managed_case),
		cmocka_unit_test(test_agent_parameters_empty_name),
		cmocka_unit_test(test_agent_long_line),
		cmocka_unit_test(test_agent_semicolon_in_value),
		cmocka_unit_test(test_agent_backup_off),
		cmocka_unit_test(test_agent_backup_defaults),
		cmocka_unit_test(test_agent_backup_refused),
		cmocka_unit_test(test_agent_backup_s3),
		cmocka_unit_test(test_agent_backup_s3_refused),
		cmocka_unit_test(test_agent_backup_schedule_and_bootstrap),
		cmocka_unit_test(test_agent_tls),
		cmocka_unit_test(test_agent_help),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
