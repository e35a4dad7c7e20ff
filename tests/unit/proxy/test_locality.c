/*
 * test_locality.c — how near a standby is to the proxy (proxy/locality.c),
 * and the round robin that stays within the nearest usable group.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/locality.h"

static struct route_target target(const char *name, const char *region, const char *zone)
{
	struct route_target t;
	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", name);
	snprintf(t.region, sizeof(t.region), "%s", region);
	snprintf(t.zone, sizeof(t.zone), "%s", zone);
	return t;
}

static void test_locality_of(void **state)
{
	struct route_target a1 = target("s1", "a", "a1"), a2 = target("s2", "a", "a2"), a = target("s3", "a", ""),
			    b1 = target("s4", "b", "a1"), none = target("s5", "", "");
	/* No region: every standby alike, whatever its tags. */
	assert_int_equal(locality_of("", "", &a1), LOC_ZONE);
	assert_int_equal(locality_of("", "", &b1), LOC_ZONE);
	assert_int_equal(locality_of("", "", &none), LOC_ZONE);
	/* Region and zone. */
	assert_int_equal(locality_of("a", "a1", &a1), LOC_ZONE);
	assert_int_equal(locality_of("a", "a1", &a2), LOC_REGION);
	assert_int_equal(locality_of("a", "a1", &a), LOC_REGION);
	/* A zone of the same name in another region is another place. */
	assert_int_equal(locality_of("a", "a1", &b1), LOC_REMOTE);
	assert_int_equal(locality_of("a", "a1", &none), LOC_REMOTE);
	/* A region without a zone: every standby of the region alike. */
	assert_int_equal(locality_of("a", "", &a1), LOC_REGION);
	assert_int_equal(locality_of("a", "", &a), LOC_REGION);
	assert_int_equal(locality_of("b", "", &a1), LOC_REMOTE);
}

static void test_pick_nearest_round_robin(void **state)
{
	struct route_target r[5] = {
		target("far1", "b", ""), target("zone", "a", "a1"), target("far2", "", ""), target("region", "a", "a2"),
		target("zone2", "a", "a1"),
	};
	bool all[5] = {true, true, true, true, true};
	int rr = 0;
	/* The zone's two standbys take turns; nothing else gets work. */
	for (int k = 0; k < 6; k++) {
		int i = locality_pick(r, all, 5, "a", "a1", &rr);
		assert_int_equal(i, k % 2 == 0 ? 1 : 4);
	}
	assert_int_equal(locality_nearest(r, all, 5, "a", "a1"), LOC_ZONE);

	/* The zone unusable: the region's one. */
	bool no_zone[5] = {true, false, true, true, false};
	assert_int_equal(locality_nearest(r, no_zone, 5, "a", "a1"), LOC_REGION);
	for (int k = 0; k < 3; k++)
		assert_int_equal(locality_pick(r, no_zone, 5, "a", "a1", &rr), 3);

	/* Only other regions (or none): round robin over them. */
	bool far[5] = {true, false, true, false, false};
	int got[5] = {0};
	for (int k = 0; k < 4; k++)
		got[locality_pick(r, far, 5, "a", "a1", &rr)]++;
	assert_int_equal(got[0], 2);
	assert_int_equal(got[2], 2);

	/* None usable. */
	bool none[5] = {false};
	assert_int_equal(locality_pick(r, none, 5, "a", "a1", &rr), -1);
	assert_int_equal(locality_nearest(r, none, 5, "a", "a1"), LOC_NONE);
	assert_int_equal(locality_pick(r, all, 0, "a", "a1", &rr), -1);

	/* No region: round robin over every usable standby, as before regions. */
	int seen[5] = {0};
	rr = 7;   /* left over from a larger topology */
	for (int k = 0; k < 10; k++)
		seen[locality_pick(r, all, 5, "", "", &rr)]++;
	for (int i = 0; i < 5; i++)
		assert_int_equal(seen[i], 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locality_of),
		cmocka_unit_test(test_pick_nearest_round_robin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
