/*
 * test_etcd_auth.c — turning etcd authentication on (etcd_auth.c) against the
 * scripted HTTP server of etcd_script.h: the requests in order, what counts
 * as "already done", and where a refusal stops the setup.
 */
#include "etcd_script.h"

#include "dcs/etcd.h"

#define OK_REPLY "{\"header\":{\"revision\":\"3\"}}"
#define EXISTS(what) "{\"error\":\"etcdserver: " what " already exists\",\"code\":9}"
#define DENIED "{\"error\":\"etcdserver: permission denied\",\"code\":7}"

/* Run the setup of user pgha under /pgha/ against script, which it must use up. */
static int run_setup(const struct step *script, size_t nsteps, struct pgha_err *e)
{
	struct server *s = server_start(script, nsteps);
	struct etcd_client *c = client_new(s->url, 1000, 5000, NULL);
	int rc = etcd_auth_setup(c, "rootpw", "pgha", "userpw", "/pgha/", e);
	etcd_free(c);
	server_done(s, nsteps);
	return rc;
}

/* Role, its key range, users root and pgha with their roles; then auth on. */
#define SETUP_BEFORE_ENABLE                                   \
	ANSWER("/v3/auth/role/add", 200, OK_REPLY),           \
	ANSWER("/v3/auth/role/grant", 200, OK_REPLY),         \
	ANSWER("/v3/auth/user/add", 200, OK_REPLY),           \
	ANSWER("/v3/auth/user/grant", 200, OK_REPLY),         \
	ANSWER("/v3/auth/user/add", 200, OK_REPLY),           \
	ANSWER("/v3/auth/user/grant", 200, OK_REPLY)

static const struct step full_setup[] = {
	SETUP_BEFORE_ENABLE,
	ANSWER("/v3/auth/enable", 200, OK_REPLY),
};

static void test_setup_requests(void **state)
{
	struct server *s = server_start(SCRIPT(full_setup));
	struct etcd_client *c = client_new(s->url, 1000, 5000, NULL);
	struct pgha_err e = {{0}};

	assert_int_equal(etcd_auth_setup(c, "rootpw", "pgha", "userpw", "/pgha/", &e), 0);

	server_finish(s, 7);
	assert_string_equal(s->reqs[0].body, "{\"name\":\"pgha\"}");
	/* [/pgha/, /pgha0): every key under the prefix and nothing else. */
	assert_contains(s->reqs[1].body, "\"key\":\"L3BnaGEv\"");
	assert_contains(s->reqs[1].body, "\"range_end\":\"L3BnaGEw\"");
	assert_contains(s->reqs[1].body, "\"permType\":\"READWRITE\"");
	assert_contains(s->reqs[2].body, "\"name\":\"root\"");
	assert_contains(s->reqs[2].body, "\"password\":\"rootpw\"");
	assert_contains(s->reqs[3].body, "\"user\":\"root\"");
	assert_contains(s->reqs[3].body, "\"role\":\"root\"");
	assert_contains(s->reqs[4].body, "\"name\":\"pgha\"");
	assert_contains(s->reqs[4].body, "\"password\":\"userpw\"");
	assert_contains(s->reqs[5].body, "\"user\":\"pgha\"");
	assert_contains(s->reqs[5].body, "\"role\":\"pgha\"");
	assert_string_equal(s->reqs[6].body, "{}");
	server_free(s);
	etcd_free(c);
}

/* A second run finds everything in place: "already exists" is success. */
static void test_setup_idempotent(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/auth/role/add", 400, EXISTS("role name")),
		ANSWER("/v3/auth/role/grant", 200, OK_REPLY),
		ANSWER("/v3/auth/user/add", 400, EXISTS("user name")),
		ANSWER("/v3/auth/user/grant", 200, OK_REPLY),
		ANSWER("/v3/auth/user/add", 400, EXISTS("user name")),
		ANSWER("/v3/auth/user/grant", 200, OK_REPLY),
		ANSWER("/v3/auth/enable", 200, OK_REPLY),
	};
	struct pgha_err e = {{0}};

	assert_int_equal(run_setup(SCRIPT(script), &e), 0);
}

/* A refusal stops the setup where it happened, saying which step, never a password. */
static void test_setup_refused(void **state)
{
	static const struct step script[] = {
		ANSWER("/v3/auth/role/add", 200, OK_REPLY),
		ANSWER("/v3/auth/role/grant", 200, OK_REPLY),
		ANSWER("/v3/auth/user/add", 403, DENIED),
	};
	struct pgha_err e = {{0}};

	assert_int_equal(run_setup(SCRIPT(script), &e), -1);
	assert_contains(e.msg, "adding etcd user root");
	assert_contains(e.msg, "permission denied");
	assert_null(strstr(e.msg, "rootpw"));
}

/* The last step refused: all of the setup was sent, the error names auth enable. */
static void test_setup_enable_refused(void **state)
{
	static const struct step script[] = {
		SETUP_BEFORE_ENABLE,
		ANSWER("/v3/auth/enable", 400,
		       "{\"error\":\"etcdserver: root user does not have root role\",\"code\":9}"),
	};
	struct pgha_err e = {{0}};

	assert_int_equal(run_setup(SCRIPT(script), &e), -1);
	assert_contains(e.msg, "enabling etcd authentication");
	assert_contains(e.msg, "root user does not have root role");
}

/* A prefix that cannot bound a key range is refused before any request. */
static void test_setup_bad_prefix(void **state)
{
	struct server *s = server_start(NULL, 0);
	struct etcd_client *c = client_new(s->url, 1000, 5000, NULL);
	struct pgha_err e = {{0}};

	assert_int_equal(etcd_auth_setup(c, "rootpw", "pgha", "userpw", "", &e), -1);
	assert_contains(e.msg, "cannot bound a key range");
	assert_int_equal(etcd_auth_setup(c, "rootpw", "pgha", "userpw", "/pgha\xff", &e), -1);
	assert_contains(e.msg, "cannot bound a key range");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup_requests),
		cmocka_unit_test(test_setup_idempotent),
		cmocka_unit_test(test_setup_refused),
		cmocka_unit_test(test_setup_enable_refused),
		cmocka_unit_test(test_setup_bad_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
