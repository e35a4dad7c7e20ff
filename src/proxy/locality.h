/*
 * locality.h — how near a standby is to this proxy ([proxy] region and zone
 * against the member's tags), and the round robin that keeps reads in the
 * nearest group of usable standbys (locality.c). Pure: no I/O, no state
 * besides the round-robin position the caller keeps.
 */
#ifndef PGHA_PROXY_LOCALITY_H
#define PGHA_PROXY_LOCALITY_H

#include <stdbool.h>

#include "proxy/route.h"

/* Nearest first: comparisons use the order. */
enum locality {
	LOC_ZONE,     /* same region and zone (and every standby when the proxy has no region) */
	LOC_REGION,   /* same region, another zone or none */
	LOC_REMOTE,   /* another region, or a standby with none */
	LOC_NONE,     /* no standby at all (locality_nearest of an empty set) */
};

/* Where t is seen from a proxy in region, zone ("": none). No region: every standby is LOC_ZONE. */
enum locality locality_of(const char *region, const char *zone, const struct route_target *t);
/* The nearest locality among the targets r[i] with usable[i]; LOC_NONE when none is usable. */
enum locality locality_nearest(const struct route_target *r, const bool *usable, int n, const char *region,
			       const char *zone);
/*
 * The next target for new work: the index of a usable target of the nearest
 * locality, round robin from *rr (which moves past it), or -1 when none is
 * usable. Round robin stays within that group: nearer standbys take all the
 * work while one of them is usable.
 */
int locality_pick(const struct route_target *r, const bool *usable, int n, const char *region, const char *zone,
		  int *rr);

#endif
