/*
 * locality.c — a proxy prefers the standbys nearest to it for reads: same
 * region and zone, then same region, then anywhere (README, "Reads in the
 * proxy's region"). Cross-region reads cost a WAN round trip each; a
 * proxy with no region treats every standby alike, as before regions existed.
 */
#include "proxy/locality.h"

#include <string.h>

enum locality locality_of(const char *region, const char *zone, const struct route_target *t)
{
	if (region[0] == '\0')
		return LOC_ZONE;
	if (strcmp(region, t->region) != 0)
		return LOC_REMOTE;
	return zone[0] != '\0' && strcmp(zone, t->zone) == 0 ? LOC_ZONE : LOC_REGION;
}

enum locality locality_nearest(const struct route_target *r, const bool *usable, int n, const char *region,
			       const char *zone)
{
	enum locality best = LOC_NONE;
	for (int i = 0; i < n; i++) {
		enum locality l = usable[i] ? locality_of(region, zone, &r[i]) : LOC_NONE;
		if (l < best)
			best = l;
	}
	return best;
}

int locality_pick(const struct route_target *r, const bool *usable, int n, const char *region, const char *zone,
		  int *rr)
{
	enum locality best = locality_nearest(r, usable, n, region, zone);
	if (best == LOC_NONE)
		return -1;
	int start = *rr > 0 ? *rr % n : 0;
	for (int k = 0; k < n; k++) {
		int i = (start + k) % n;
		if (usable[i] && locality_of(region, zone, &r[i]) == best) {
			*rr = (i + 1) % n;
			return i;
		}
	}
	return -1;   /* cannot happen: best names a usable target */
}
