/*
 * test_proxy_config.c — the proxy's option checks (proxy/proxy_config.c):
 * unix_socket_dir and unix_socket_mode, and the socket paths they give;
 * rw_split and what it needs; [tls] server_sslmode and the files it needs;
 * region and zone; primary_hosts.
 */
#include <string.h>

#include "../unit_files.h"
#include "proxy/proxy_config.h"
#include "proxy/split.h"

/* Load a config made of the required lines and `extra`: 0 or -1, e set. */
static int load(const char *extra, struct proxy_config *cfg, struct pgha_err *e)
{
	char text[1024], path[1100];
	snprintf(text, sizeof(text), "[proxy]\nlisten = 127.0.0.1:6432\nlisten_ro = 127.0.0.1:6433\n%s\n"
		 "[auth]\nauth_file = /nonexistent/users.txt\n", extra);
	write_conf(path, sizeof(path), text);
	int rc = proxy_config_load(path, cfg, e);
	if (rc != 0)
		proxy_config_free(cfg);
	return rc;
}

static void test_unix_socket_paths(void **state)
{
	struct proxy_config cfg;
	struct pgha_err e;
	char path[128];

	assert_int_equal(load("unix_socket_dir = /run/pgha/\nunix_socket_mode = 0770", &cfg, &e), 0);
	assert_int_equal(cfg.unix_socket_mode, 0770);
	proxy_unix_socket_path(&cfg, cfg.listen, path, sizeof(path));
	assert_string_equal(path, "/run/pgha/.s.PGSQL.6432");
	proxy_unix_socket_path(&cfg, cfg.listen_ro, path, sizeof(path));
	assert_string_equal(path, "/run/pgha/.s.PGSQL.6433");
	proxy_config_free(&cfg);

	/* Off by default; the mode's default is PostgreSQL's. */
	assert_int_equal(load("", &cfg, &e), 0);
	assert_string_equal(cfg.unix_socket_dir, "");
	assert_int_equal(cfg.unix_socket_mode, 0777);
	proxy_config_free(&cfg);

	assert_int_equal(load("unix_socket_dir = /\n", &cfg, &e), 0);
	proxy_unix_socket_path(&cfg, cfg.listen, path, sizeof(path));
	assert_string_equal(path, "/.s.PGSQL.6432");
	proxy_config_free(&cfg);
}

static void test_unix_socket_errors(void **state)
{
	struct proxy_config cfg;
	struct pgha_err e;

	assert_int_equal(load("unix_socket_dir = run/pgha", &cfg, &e), -1);
	assert_contains(e.msg, "[proxy] unix_socket_dir = \"run/pgha\": use an absolute path");

	char extra[300] = "unix_socket_dir = /";
	memset(extra + strlen(extra), 'd', 100);
	assert_int_equal(load(extra, &cfg, &e), -1);
	assert_contains(e.msg, "too long for a unix socket");

	static const char *const bad_modes[] = {"999", "0778", "01000", "rw", "-1", "", "0x1ff"};
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		snprintf(extra, sizeof(extra), "unix_socket_mode = %s", bad_modes[i]);
		if (load(extra, &cfg, &e) != -1)
			fail_msg("unix_socket_mode = %s was taken", bad_modes[i]);
		assert_contains(e.msg, "unix_socket_mode");
	}
}

static void test_rw_split(void **state)
{
	struct proxy_config cfg;
	struct pgha_err e;

	assert_int_equal(load("", &cfg, &e), 0);
	assert_int_equal(cfg.rw_split, RW_SPLIT_OFF);
	proxy_config_free(&cfg);
	assert_int_equal(load("read_your_writes = on\nrw_split = statements\n"
			      "rw_split_safe_functions = default, app.report", &cfg, &e), 0);
	assert_int_equal(cfg.rw_split, RW_SPLIT_STATEMENTS);
	proxy_config_free(&cfg);

	assert_int_equal(load("rw_split = transactions", &cfg, &e), -1);
	assert_contains(e.msg, "rw_split = transactions needs read_your_writes = on (HINT:");
	assert_int_equal(load("read_your_writes = on\nrw_split = statements\npool_mode = session", &cfg, &e), -1);
	assert_contains(e.msg, "needs pool_mode = transaction");
	assert_int_equal(load("rw_split = reads", &cfg, &e), -1);
	assert_contains(e.msg, "rw_split = \"reads\": use off, transactions or statements");
	assert_int_equal(load("rw_split_safe_functions = lower; drop", &cfg, &e), -1);
	assert_contains(e.msg, "rw_split_safe_functions: \"lower; drop\" is not a function name");
}

static void test_pinning_per_pool(void **state)
{
	struct proxy_config cfg;
	struct pgha_err e;

	assert_int_equal(load("transaction_pinning_pools = batch@*:off, *@reports:on ,app@app:off", &cfg, &e), 0);
	assert_false(proxy_pinning_for(&cfg, "batch", "app"));
	assert_true(proxy_pinning_for(&cfg, "app", "reports"));
	assert_false(proxy_pinning_for(&cfg, "app", "app"));
	assert_true(proxy_pinning_for(&cfg, "app", "other"));   /* transaction_pinning's default */
	proxy_config_free(&cfg);
	assert_int_equal(load("transaction_pinning = off\ntransaction_pinning_pools = *@reports:on", &cfg, &e), 0);
	assert_false(proxy_pinning_for(&cfg, "app", "app"));
	assert_true(proxy_pinning_for(&cfg, "app", "reports"));
	proxy_config_free(&cfg);

	static const char *const bad[] = {"batch:off", "batch@app", "@app:on", "batch@:on", "a@b:maybe", "a@b:on, x"};
	char extra[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(extra, sizeof(extra), "transaction_pinning_pools = %s", bad[i]);
		if (load(extra, &cfg, &e) != -1)
			fail_msg("transaction_pinning_pools = %s was taken", bad[i]);
		assert_contains(e.msg, "is not user@database:on|off");
	}
}

static void test_server_sslmode(void **state)
{
	struct proxy_config cfg;
	struct pgha_err e;

	/* prefer by default, as libpq and PgBouncer: TLS when the server offers it. */
	assert_int_equal(load("", &cfg, &e), 0);
	assert_int_equal(cfg.server_sslmode, SSLMODE_PREFER);
	assert_string_equal(proxy_sslmode_name(cfg.server_sslmode), "prefer");
	proxy_config_free(&cfg);

	static const struct {
		const char *text;
		enum server_sslmode mode;
	} ok[] = {{"disable", SSLMODE_DISABLE}, {"prefer", SSLMODE_PREFER}, {"require", SSLMODE_REQUIRE},
		  {"verify-ca", SSLMODE_VERIFY_CA}, {"verify-full", SSLMODE_VERIFY_FULL}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char extra[200];
		snprintf(extra, sizeof(extra), "[tls]\nserver_sslmode = %s\nserver_ca_file = /etc/ca.pem", ok[i].text);
		assert_int_equal(load(extra, &cfg, &e), 0);
		assert_int_equal(cfg.server_sslmode, ok[i].mode);
		assert_string_equal(proxy_sslmode_name(cfg.server_sslmode), ok[i].text);
		proxy_config_free(&cfg);
	}

	assert_int_equal(load("[tls]\nserver_sslmode = allow", &cfg, &e), -1);
	assert_contains(e.msg, "[tls] server_sslmode = \"allow\": use disable, prefer, require, verify-ca or "
			"verify-full");
	assert_int_equal(load("[tls]\nserver_sslmode = Verify-Full", &cfg, &e), -1);

	/* Verifying needs the CA; the refusal says what to set. */
	assert_int_equal(load("[tls]\nserver_sslmode = verify-full", &cfg, &e), -1);
	assert_contains(e.msg, "[tls] server_sslmode = verify-full needs server_ca_file\nHINT:");
	assert_int_equal(load("[tls]\nserver_sslmode = verify-ca\nserver_cert_file = /c.pem\n"
			      "server_key_file = /c.key", &cfg, &e), -1);
	assert_contains(e.msg, "verify-ca needs server_ca_file");
	assert_int_equal(load("[tls]\nserver_sslmode = require", &cfg, &e), 0);
	proxy_config_free(&cfg);

	/* A client certificate needs its key, and the other way round. */
	assert_int_equal(load("[tls]\nserver_cert_file = /c.pem", &cfg, &e), -1);
	assert_contains(e.msg, "server_cert_file and server_key_file go together (only server_cert_file is set)");
	assert_int_equal(load("[tls]\nserver_key_file = /c.key", &cfg, &e), -1);
	assert_contains(e.msg, "(only server_key_file is set)");
	assert_int_equal(load("[tls]\nserver_cert_file = /c.pem\nserver_key_file = /c.key", &cfg, &e), 0);
	assert_string_equal(cfg.tls_server_cert_file, "/c.pem");
	assert_string_equal(cfg.tls_server_key_file, "/c.key");
	proxy_config_free(&cfg);
}

static void test_region_zone(void **state)
{
	struct proxy_config cfg;
	struct pgha_err e;

	/* None by default: every standby alike. */
	assert_int_equal(load("", &cfg, &e), 0);
	assert_string_equal(cfg.region, "");
	assert_string_equal(cfg.zone, "");
	proxy_config_free(&cfg);

	assert_int_equal(load("region = eu-west\nzone = eu-west-1a", &cfg, &e), 0);
	assert_string_equal(cfg.region, "eu-west");
	assert_string_equal(cfg.zone, "eu-west-1a");
	proxy_config_free(&cfg);
	assert_int_equal(load("region = b", &cfg, &e), 0);
	assert_string_equal(cfg.region, "b");
	proxy_config_free(&cfg);

	/* A zone lies within a region. */
	assert_int_equal(load("zone = a1", &cfg, &e), -1);
	assert_contains(e.msg, "[proxy] zone = \"a1\" needs a region");
	assert_contains(e.msg, "HINT: add [proxy] region = ");

	/* A member's label (what an agent's [node] region can be): its characters, 63 at most. */
	static const char *const bad[] = {"eu west", "eu/west", "r\xc3\xa9gion", "a:b"};
	char extra[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(extra, sizeof(extra), "region = %s", bad[i]);
		if (load(extra, &cfg, &e) != -1)
			fail_msg("region = %s was taken", bad[i]);
		assert_contains(e.msg, "[proxy] region = \"");
		assert_contains(e.msg, "use 1 to 63 of A-Z a-z 0-9 _ - .");
		assert_contains(e.msg, "HINT:");
		snprintf(extra, sizeof(extra), "region = a\nzone = %s", bad[i]);
		assert_int_equal(load(extra, &cfg, &e), -1);
		assert_contains(e.msg, "[proxy] zone = \"");
	}
	memset(extra, 0, sizeof(extra));
	strcpy(extra, "region = ");
	memset(extra + strlen(extra), 'r', 64);
	assert_int_equal(load(extra, &cfg, &e), -1);
	assert_contains(e.msg, "[proxy] region = ");
	memset(extra, 0, sizeof(extra));
	strcpy(extra, "region = ");
	memset(extra + strlen(extra), 'r', 63);
	assert_int_equal(load(extra, &cfg, &e), 0);
	proxy_config_free(&cfg);
}

/* [proxy] primary_hosts: a standby cluster's writes go to one of these (route.h). */
static void test_primary_hosts(void **state)
{
	struct proxy_config cfg;
	struct pgha_err e;
	assert_int_equal(load("", &cfg, &e), 0);
	assert_int_equal(cfg.primary_fwd.n, 0);
	proxy_config_free(&cfg);
	assert_int_equal(load("primary_hosts = 10.0.0.1:5432, db2.east:5433 ,[fd00::3]:5432", &cfg, &e), 0);
	assert_int_equal(cfg.primary_fwd.n, 3);
	assert_string_equal(cfg.primary_fwd.hosts[0].host, "10.0.0.1");
	assert_int_equal(cfg.primary_fwd.hosts[0].port, 5432);
	assert_string_equal(cfg.primary_fwd.hosts[1].host, "db2.east");
	assert_int_equal(cfg.primary_fwd.hosts[1].port, 5433);
	assert_string_equal(cfg.primary_fwd.hosts[2].host, "fd00::3");
	proxy_config_free(&cfg);
	static const char *const bad[] = {"db2", "db1:5432,db2:0", "db1:x", ",", "db1:5432,:5432"};
	char extra[200];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(extra, sizeof(extra), "primary_hosts = %s", bad[i]);
		if (load(extra, &cfg, &e) != -1)
			fail_msg("primary_hosts = %s was taken", bad[i]);
		assert_contains(e.msg, "[proxy] primary_hosts");
	}
	/* standby_writes: forward (default) or refuse. */
	assert_int_equal(load("", &cfg, &e), 0);
	assert_false(cfg.primary_fwd.refuse);
	proxy_config_free(&cfg);
	assert_int_equal(load("standby_writes = refuse", &cfg, &e), 0);
	assert_true(cfg.primary_fwd.refuse);
	proxy_config_free(&cfg);
	assert_int_equal(load("standby_writes = drop", &cfg, &e), -1);
	assert_contains(e.msg, "[proxy] standby_writes = \"drop\": use forward or refuse");
	assert_int_equal(load("primary_hosts = db1:5432, db2", &cfg, &e), -1);
	assert_contains(e.msg, "[proxy] primary_hosts: \"db2\": ");
	assert_contains(e.msg, "HINT: write host:port of every member of the primary cluster");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unix_socket_paths),
		cmocka_unit_test(test_unix_socket_errors),
		cmocka_unit_test(test_rw_split),
		cmocka_unit_test(test_pinning_per_pool),
		cmocka_unit_test(test_server_sslmode),
		cmocka_unit_test(test_region_zone),
		cmocka_unit_test(test_primary_hosts),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
