/*
 * fence.h — self-fencing of a leader that can no longer prove it holds the key.
 *
 * The HA loop extends a deadline each time it renews the lease while holding
 * the leader key (deadline = time the renewal was sent + ttl - margin), or
 * when every member confirmed a failsafe ping while etcd is unreachable. A
 * thread of its own watches the deadline: if it passes while PostgreSQL runs
 * as primary, it kills the whole instance (the postmaster stopped, every child
 * SIGKILLed, then it), so writes stop before the lease can expire and another
 * member can take the key. It does not depend on the HA loop being
 * responsive: a loop stuck in a slow call, or a process resumed after SIGSTOP,
 * is fenced all the same.
 */
#ifndef PGHA_HA_FENCE_H
#define PGHA_HA_FENCE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct fence;

struct fence *fence_start(struct pgha_err *e);
void fence_stop(struct fence *f);

/*
 * Arm for a primary: pid is the postmaster (it and its children are killed
 * at the deadline). deadline_ms is a now_ms() time. Extending never shortens.
 */
void fence_arm(struct fence *f, pid_t postmaster, int64_t deadline_ms);
/* We are no longer a primary (demoted, stopped, or lost the key knowingly). */
void fence_disarm(struct fence *f);
/* Maintenance mode: never fence. */
void fence_set_paused(struct fence *f, bool paused);
/* True once the fence has fired since the last arm (read and cleared). */
bool fence_fired(struct fence *f);

#endif
