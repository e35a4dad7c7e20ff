/*
 * test_pool.c — where a read-only pool's servers go (proxy/pool.c): usable
 * standbys of the proxy's zone, then its region, then anywhere, the leader
 * last; read-your-writes' "lately behind" first; and a server released on a
 * standby farther than the nearest usable one, or lagging past ro_max_lag
 * while another is usable, is closed, so reads come home.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "proxy/pool.h"
#include "proxy/server.h"

static struct proxy px;   /* static: what the pool holds stays reachable for LSan */
static struct pool *ro;

/* Standbys r0..r3: r0 a/a1, r1 a/a2, r2 b, r3 no region; leader "lead". */
static const char *const regions[] = {"a", "a", "b", ""};
static const char *const zones[] = {"a1", "a2", "", ""};

static int setup(void **state)
{
	memset(&px, 0, sizeof(px));
	px.epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(px.epfd >= 0);
	link_init(&px.pools);
	link_init(&px.clients_idle);
	px.now_ms = 100000;
	px.cfg.ro_max_lag = 1000;
	px.cfg.ro_fallback_leader = true;
	px.cfg.region = "";
	px.cfg.zone = "";
	struct topology *t = &px.topo;
	t->has_leader = true;
	snprintf(t->leader.name, sizeof(t->leader.name), "lead");
	snprintf(t->leader.host, sizeof(t->leader.host), "127.0.0.1");
	t->leader.port = 5432;
	t->nreplicas = 4;
	for (int i = 0; i < 4; i++) {
		struct route_target *r = &t->replicas[i];
		snprintf(r->name, sizeof(r->name), "r%d", i);
		snprintf(r->host, sizeof(r->host), "127.0.0.1");
		r->port = 5440 + i;
		snprintf(r->region, sizeof(r->region), "%s", regions[i]);
		snprintf(r->zone, sizeof(r->zone), "%s", zones[i]);
	}
	ro = pool_get(&px, "db", "app", true);
	return 0;
}

static int teardown(void **state)
{
	while (!link_empty(&ro->idle))
		server_close(link_entry(ro->idle.next, struct server, node), "test over");
	link_del(&ro->node);
	sb_free(&ro->params);
	free(ro);
	close(px.epfd);
	return 0;
}

/* The name of the target of the next new server, or "-" for none. */
static const char *next(void)
{
	static struct route_target t;
	return pool_target(ro, &t) ? t.name : "-";
}

static void test_no_region_spreads(void **state)
{
	int seen[4] = {0};
	for (int k = 0; k < 8; k++) {
		const char *n = next();
		assert_true(n[0] == 'r');
		seen[n[1] - '0']++;
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(seen[i], 2);
}

static void test_zone_then_region_then_anywhere(void **state)
{
	px.cfg.region = "a";
	px.cfg.zone = "a1";
	for (int k = 0; k < 3; k++)
		assert_string_equal(next(), "r0");
	/* The zone's standby too far behind: the region's other zone. */
	px.topo.replicas[0].lag_bytes = 5000;
	for (int k = 0; k < 3; k++)
		assert_string_equal(next(), "r1");
	/* The region's standbys gone or unknown (-1): any other region, round robin, the leader never. */
	px.topo.replicas[1].lag_bytes = -1;
	int seen[4] = {0};
	for (int k = 0; k < 4; k++)
		seen[next()[1] - '0']++;
	assert_int_equal(seen[2], 2);
	assert_int_equal(seen[3], 2);
	/* No standby usable anywhere: the leader, or nothing without ro_fallback_leader. */
	px.topo.replicas[2].lag_bytes = 5000;
	px.topo.replicas[3].lag_bytes = 5000;
	assert_string_equal(next(), "lead");
	px.cfg.ro_fallback_leader = false;
	assert_string_equal(next(), "-");
	/* The zone's standby back: all new servers go there again. */
	px.topo.replicas[0].lag_bytes = 0;
	assert_string_equal(next(), "r0");
	assert_string_equal(next(), "r0");
}

/* A standby cluster: its reads never fall back to the leader target (the primary cluster's primary). */
static void test_standby_cluster_reads_stay(void **state)
{
	for (int i = 0; i < 4; i++)
		px.topo.replicas[i].lag_bytes = 5000;
	assert_string_equal(next(), "lead");
	px.topo.standby_cluster = true;
	snprintf(px.topo.leader.name, sizeof(px.topo.leader.name), "%s", ROUTE_FORWARD_NAME);
	assert_string_equal(next(), "-");
	px.topo.replicas[2].lag_bytes = 0;
	assert_string_equal(next(), "r2");
}

static void test_region_without_zone(void **state)
{
	px.cfg.region = "a";
	int seen[4] = {0};
	for (int k = 0; k < 6; k++)
		seen[next()[1] - '0']++;
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], 3);
	px.cfg.region = "b";
	assert_string_equal(next(), "r2");
	assert_string_equal(next(), "r2");
}

static void test_read_your_writes_behind_first(void **state)
{
	px.cfg.region = "a";
	px.cfg.zone = "a1";
	px.cfg.read_your_writes = true;
	/* The zone's standby lately behind for a read: the region's, though farther. */
	ryw_standby_find(&px, "127.0.0.1", 5440, true)->behind_until_ms = px.now_ms + 5000;
	assert_string_equal(next(), "r1");
	/* The whole region behind: another region's standby that is not. */
	ryw_standby_find(&px, "127.0.0.1", 5441, true)->behind_until_ms = px.now_ms + 5000;
	assert_string_equal(next(), "r2");
	assert_string_equal(next(), "r3");
	/* Every standby behind: the nearest all the same (within ro_max_lag), not the leader. */
	ryw_standby_find(&px, "127.0.0.1", 5442, true)->behind_until_ms = px.now_ms + 5000;
	ryw_standby_find(&px, "127.0.0.1", 5443, true)->behind_until_ms = px.now_ms + 5000;
	assert_string_equal(next(), "r0");
	/* Once it is no longer behind, the zone's again. */
	px.now_ms += 6000;
	assert_string_equal(next(), "r0");
}

/* An idle-bound server of the pool on standby i (or the leader: -1), as its client had it. */
static struct server *busy_server(int i)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	struct server *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->tag.kind = FD_SERVER;
	s->tag.fd = sv[0];
	s->px = &px;
	s->pool = ro;
	s->status = 'I';
	s->standby = i >= 0;
	s->target = i >= 0 ? px.topo.replicas[i] : px.topo.leader;
	sb_init(&s->out);
	ro->nservers++;
	server_set_state(s, SV_ACTIVE);
	return s;
}

static void test_release_brings_reads_home(void **state)
{
	px.cfg.region = "a";
	px.cfg.zone = "a1";
	/* While the region has no usable standby, a server on another region's is kept. */
	px.topo.replicas[0].lag_bytes = 5000;
	px.topo.replicas[1].lag_bytes = 5000;
	assert_null(pool_release(busy_server(2)));
	assert_int_equal(ro->nservers, 1);
	assert_false(link_empty(&ro->idle));
	/* The zone's standby usable again: the idle one goes when a client next asks... */
	px.topo.replicas[0].lag_bytes = 0;
	pool_topology_changed(&px);
	assert_int_equal(ro->nservers, 0);
	/* ...and one in use goes when its client releases it, as does one in the region's other zone. */
	assert_null(pool_release(busy_server(2)));
	assert_null(pool_release(busy_server(1)));
	assert_int_equal(ro->nservers, 0);
	/* Its own zone's is kept... */
	assert_null(pool_release(busy_server(0)));
	assert_int_equal(ro->nservers, 1);
	/* ...until it lags past ro_max_lag while another standby is usable (region or not). */
	px.topo.replicas[0].lag_bytes = 5000;
	px.topo.replicas[1].lag_bytes = 0;
	pool_topology_changed(&px);
	assert_int_equal(ro->nservers, 0);
	px.cfg.region = "";
	px.cfg.zone = "";
	assert_null(pool_release(busy_server(0)));
	assert_int_equal(ro->nservers, 0);
	/* No region: a server on any usable standby stays, as before regions... */
	assert_null(pool_release(busy_server(3)));
	assert_null(pool_release(busy_server(2)));
	assert_int_equal(ro->nservers, 2);
	/* ...and on a lagging one too while none is usable (nothing better to move to). */
	for (int i = 0; i < 4; i++)
		px.topo.replicas[i].lag_bytes = 5000;
	assert_null(pool_release(busy_server(0)));
	assert_int_equal(ro->nservers, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_region_spreads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zone_then_region_then_anywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_without_zone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_standby_cluster_reads_stay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_your_writes_behind_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_brings_reads_home, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
