/*
 * test_api.c — the agent's API (api_start) over a real socket on 127.0.0.1:
 * its routes and who may ask for a failsafe promise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "../http/http_client.h"
#include "api/api.h"

static void test_api_routes(void **state)
{
	struct api_source src;
	struct pgha_err e;
	api_source_init(&src, "demo");
	struct api_server *api = api_start("127.0.0.1:0", &src, NULL, &e);
	assert_non_null(api);
	int port = api_port(api);
	struct strbuf r = STRBUF_INIT;
#define API_CODE(req) (sb_reset(&r), exchange_on(port, (req), strlen(req), &r))

	/* Nothing published yet: not primary, no view, loop never ran. */
	assert_int_equal(API_CODE("OPTIONS /master HTTP/1.0\r\n\r\n"), 503);
	assert_int_equal(API_CODE("GET /cluster HTTP/1.1\r\n\r\n"), 503);
	assert_non_null(strstr(body_of(sb_str(&r)), "\"error\""));
	assert_int_equal(API_CODE("GET /liveness HTTP/1.1\r\n\r\n"), 503);

	struct api_status st;
	memset(&st, 0, sizeof(st));
	snprintf(st.self.name, sizeof(st.self.name), "node1");
	st.self.role = ROLE_PRIMARY;
	st.self.state = STATE_RUNNING;
	st.self.lag_bytes = -1;
	st.holds_leader_key = true;
	st.ttl_s = 30;
	st.last_loop_ms = now_ms();
	struct cluster_view v;
	memset(&v, 0, sizeof(v));
	v.leader = xstrdup("node1");
	v.members = xcalloc(1, sizeof(*v.members));
	v.nmembers = 1;
	v.members[0] = st.self;
	api_source_update(&src, &st, &v);
	assert_null(v.members); /* ownership taken */

	assert_int_equal(API_CODE("OPTIONS /master HTTP/1.0\r\n\r\n"), 200);
	assert_int_equal(API_CODE("GET /primary HTTP/1.1\r\n\r\n"), 200);
	assert_non_null(strstr(body_of(sb_str(&r)), "\"name\":\"node1\""));
	assert_int_equal(API_CODE("HEAD /primary HTTP/1.1\r\n\r\n"), 200);
	assert_string_equal(body_of(sb_str(&r)), "");
	assert_true(content_length_of(sb_str(&r)) > 10);
	assert_int_equal(API_CODE("GET /replica HTTP/1.1\r\n\r\n"), 503);
	assert_int_equal(API_CODE("GET /replica?lag=zz HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(API_CODE("GET /liveness HTTP/1.1\r\n\r\n"), 200);
	assert_int_equal(API_CODE("GET /cluster HTTP/1.1\r\n\r\n"), 200);
	assert_true(body_of(sb_str(&r))[0] == '{');
	assert_int_equal(API_CODE("GET /nope HTTP/1.1\r\n\r\n"), 404);
	assert_non_null(strstr(body_of(sb_str(&r)), "\"error\""));
	assert_int_equal(API_CODE("POST /primary HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 405);
	assert_non_null(strstr(sb_str(&r), "\r\nAllow: GET, HEAD, OPTIONS\r\n"));

	/* Status only (etcd unreachable): the view stays. */
	st.holds_leader_key = false;
	api_source_update(&src, &st, NULL);
	assert_int_equal(API_CODE("GET /primary HTTP/1.1\r\n\r\n"), 503);
	assert_int_equal(API_CODE("GET /cluster HTTP/1.1\r\n\r\n"), 200);
#undef API_CODE
	sb_free(&r);
	api_stop(api);
	api_source_destroy(&src);
}

/*
 * POST /failsafe makes this member promise not to race for the leader key:
 * only the cluster's members (who hold the API token) may ask. Without a
 * token configured it is refused; the promise is made only on the right token.
 */
static void test_api_failsafe_needs_the_token(void **state)
{
	static const char *const tokens[] = {NULL, "0123456789abcdef-token"};
	for (int t = 0; t < 2; t++) {
		struct api_source src;
		struct pgha_err e;
		api_source_init(&src, "demo");
		src.token = tokens[t];
		struct api_status st;
		memset(&st, 0, sizeof(st));
		st.etcd_reachable = false;   /* the case where a yes binds this member */
		st.ttl_s = 30;
		api_source_update(&src, &st, NULL);
		struct api_server *api = api_start("127.0.0.1:0", &src, NULL, &e);
		assert_non_null(api);
		int port = api_port(api);
		struct strbuf r = STRBUF_INIT;
#define FS_CODE(auth) (sb_reset(&r), exchange_on(port, "POST /failsafe HTTP/1.1\r\n" auth \
			"Content-Length: 2\r\n\r\n{}", strlen("POST /failsafe HTTP/1.1\r\n" auth \
			"Content-Length: 2\r\n\r\n{}"), &r))
		int none = FS_CODE("");
		int wrong = FS_CODE("Authorization: Bearer 0123456789abcdef-tokeX\r\n");
		int shorter = FS_CODE("Authorization: Bearer 0123456789abcdef\r\n");
		pthread_mutex_lock(&src.lock);
		int64_t promised = src.failsafe_until_ms;
		pthread_mutex_unlock(&src.lock);
		assert_int_equal(promised, 0);   /* no promise made to a stranger */
		int right = FS_CODE("Authorization: Bearer 0123456789abcdef-token\r\n");
#undef FS_CODE
		if (t == 0) {
			assert_int_equal(none, 403);
			assert_int_equal(wrong, 403);
			assert_int_equal(right, 403);
		} else {
			assert_int_equal(none, 401);
			assert_int_equal(wrong, 401);
			assert_int_equal(shorter, 401);
			assert_int_equal(right, 200);
			pthread_mutex_lock(&src.lock);
			promised = src.failsafe_until_ms;
			pthread_mutex_unlock(&src.lock);
			assert_true(promised > now_ms());
		}
		sb_free(&r);
		api_stop(api);
		api_source_destroy(&src);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_routes),
		cmocka_unit_test(test_api_failsafe_needs_the_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
