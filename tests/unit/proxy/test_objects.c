/*
 * test_objects.c — the proxy's state transitions (proxy/objects.c): each
 * state change puts a client or server on the list of its new state, keeps
 * the pool's counts, and restarts a client's timer except through the login.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/objects.h"

static struct proxy px;
static struct pool pool;

static int setup(void **state)
{
	memset(&px, 0, sizeof(px));
	memset(&pool, 0, sizeof(pool));
	link_init(&px.pools);
	link_init(&px.clients_idle);
	pool.px = &px;
	link_init(&pool.idle);
	link_init(&pool.active);
	link_init(&pool.waiting);
	px.now_ms = 1000;
	return 0;
}

static int count(const struct link *head)
{
	int n = 0;
	for (const struct link *l = head->next; l != head; l = l->next)
		n++;
	return n;
}

static void test_client_lists_and_counts(void **state)
{
	struct client c = {.px = &px, .pool = &pool};
	client_set_state(&c, CL_STARTUP);   /* a new client: on the idle list */
	assert_int_equal(count(&px.clients_idle), 1);
	assert_int_equal(c.since_ms, 0);    /* the login timer is the accept's */

	px.now_ms = 2000;
	client_set_state(&c, CL_AUTH);
	assert_int_equal(c.since_ms, 0);
	client_set_state(&c, CL_LOGIN);
	assert_int_equal(c.since_ms, 2000);
	client_set_state(&c, CL_IDLE);
	assert_int_equal(count(&px.clients_idle), 1);

	px.now_ms = 3000;
	client_set_state(&c, CL_WAITING);
	assert_int_equal(count(&px.clients_idle), 0);
	assert_int_equal(count(&pool.waiting), 1);
	assert_int_equal(pool.nwaiting, 1);
	assert_int_equal(c.since_ms, 3000);

	client_set_state(&c, CL_ACTIVE);   /* reached through its server: on no list */
	assert_int_equal(count(&pool.waiting), 0);
	assert_int_equal(pool.nwaiting, 0);
	assert_int_equal(count(&px.clients_idle), 0);

	client_set_state(&c, CL_IDLE);
	assert_int_equal(count(&px.clients_idle), 1);
	client_set_state(&c, CL_WAITING);
	client_set_state(&c, CL_CLOSING);   /* leaves from waiting: uncounted */
	assert_int_equal(pool.nwaiting, 0);
	assert_int_equal(count(&pool.waiting), 0);
	assert_int_equal(count(&px.clients_idle), 0);
	assert_int_equal(c.state, CL_CLOSING);
}

static void test_server_lists_and_counts(void **state)
{
	struct server s = {.px = &px, .pool = &pool};
	pool.nservers = 1;
	server_set_state(&s, SV_CONNECTING);   /* a new server: with the active ones */
	assert_int_equal(count(&pool.active), 1);
	server_set_state(&s, SV_LOGIN);
	assert_int_equal(count(&pool.active), 1);
	server_set_state(&s, SV_IDLE);
	assert_int_equal(count(&pool.active), 0);
	assert_int_equal(count(&pool.idle), 1);
	server_set_state(&s, SV_ACTIVE);
	assert_int_equal(count(&pool.idle), 0);
	assert_int_equal(count(&pool.active), 1);
	assert_int_equal(pool.nservers, 1);
	server_set_state(&s, SV_CLOSING);
	assert_int_equal(count(&pool.active), 0);
	assert_int_equal(pool.nservers, 0);
}

static void test_pool_param(void **state)
{
	char utc[] = "UTC", berlin[] = "Europe/Berlin";
	int k = tracked_index("timezone");   /* names are case-insensitive */
	assert_true(k >= 0);
	assert_string_equal(tracked_params[k], "TimeZone");
	assert_int_equal(tracked_index("work_mem"), -1);
	struct client c = {.px = &px, .pool = &pool};
	assert_null(pool_param(&c, k));
	pool.defaults[k] = utc;
	assert_string_equal(pool_param(&c, k), "UTC");
	c.want[k] = berlin;
	assert_string_equal(pool_param(&c, k), "Europe/Berlin");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_client_lists_and_counts, setup),
		cmocka_unit_test_setup(test_server_lists_and_counts, setup),
		cmocka_unit_test_setup(test_pool_param, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
