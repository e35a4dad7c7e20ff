/*
 * test_timeline.c — has this member's WAL left the leader's history?
 * (pg_timeline_diverged in pg/pgsql.c, a pure function of the leader's
 * timeline history file and our own timeline and position.)
 *
 * A history file of timeline N lists, for every ancestor timeline, the
 * position where timeline N's line of history left it:
 *     <parent tli>\t<switchpoint>\t<reason>
 * WAL on the parent up to the switchpoint is shared with the leader; anything
 * past it is not, and must be rewound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pg/pgsql.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The history file of timeline 2, as PostgreSQL writes it after a promotion. */
static const char HIST2[] = "1\t0/3000060\tno recovery target specified\n";

/* Timeline 3: 1 -> 2 at 0/3000060, 2 -> 3 at 0/5000028. */
static const char HIST3[] = "1\t0/3000060\tno recovery target specified\n"
			    "\n"
			    "2\t0/5000028\tno recovery target specified\n";

struct tl_case {
	const char *desc;
	const char *history;
	uint32_t leader_tli;
	uint32_t my_tli;
	uint64_t my_lsn;
	bool want;
};

static const struct tl_case cases[] = {
	/* same timeline: nothing to compare, whatever the history says */
	{"same timeline", HIST2, 2, 2, 0x9000000, false},
	{"same timeline 1, no history", "", 1, 1, 0x3000000, false},
	{"same timeline, NULL history", NULL, 5, 5, 0xFFFFFFFF, false},

	/* ahead of the leader's timeline: never on its history */
	{"my timeline above the leader's", HIST2, 2, 3, 0x1000000, true},
	{"my timeline above, timeline 1 leader", "", 1, 2, 0x1000000, true},
	/* (a history naming my timeline as a parent cannot be the leader's: still true) */
	{"my timeline above, bogus history naming it", "3\t0/9000000\tx\n", 2, 3, 0x1000000,
	 true},

	/* one promotion: timeline 1 left at 0/3000060 */
	{"tli 1 at the switchpoint", HIST2, 2, 1, 0x3000060, false},
	{"tli 1 one byte past the switchpoint", HIST2, 2, 1, 0x3000061, true},
	{"tli 1 before the switchpoint", HIST2, 2, 1, 0x2000000, false},
	{"tli 1 far past the switchpoint (high bits)", HIST2, 2, 1, 0x100000000ULL, true},

	/* two promotions: a member left on timeline 2 */
	{"tli 2 before its switchpoint", HIST3, 3, 2, 0x4000000, false},
	{"tli 2 at its switchpoint", HIST3, 3, 2, 0x5000028, false},
	{"tli 2 one byte past its switchpoint", HIST3, 3, 2, 0x5000029, true},
	/* its switchpoint is 0/5000028, not timeline 1's 0/3000060 */
	{"tli 2 past tli 1's switchpoint only", HIST3, 3, 2, 0x4000000, false},
	/* ... and timeline 1 is compared with its own */
	{"tli 1 past its switchpoint, before tli 2's", HIST3, 3, 1, 0x4000000, true},
	{"tli 1 before its switchpoint", HIST3, 3, 1, 0x3000000, false},
	/* the lines may come in any order */
	{"tli 2, lines reversed", "2\t0/5000028\tx\n1\t0/3000060\ty\n", 3, 2, 0x5000000, false},
	{"tli 2 past, lines reversed", "2\t0/5000028\tx\n1\t0/3000060\ty\n", 3, 2, 0x5000030,
	 true},
	/* no trailing newline, high switchpoint */
	{"no final newline", "1\t1/A0000000\treason", 2, 1, 0x1A0000000ULL, false},
	{"no final newline, past", "1\t1/A0000000\treason", 2, 1, 0x1A0000001ULL, true},

	/* my timeline is not an ancestor of the leader's */
	/* timeline 3 forked from 1: timeline 2 is a sibling branch, even before 1's switchpoint */
	{"tli missing from history", HIST2, 3, 2, 0x1000000, true},
	{"tli missing, at position 0", HIST2, 3, 2, 0, true},
	{"tli missing from a longer history", "1\t0/3000060\tx\n3\t0/6000000\ty\n", 4, 2,
	 0x1000000, true},

	/* comment lines do not count */
	{"comment line ignored", "# 1\t0/9000000\tcomment\n1\t0/3000060\tx\n", 2, 1, 0x4000000,
	 true},
	{"comment only", "#1\t0/9000000\tcomment\n", 2, 1, 0x1000000, true},
	{"comment before, not past", "#1\t0/1000000\told\n1\t0/3000060\tx\n", 2, 1, 0x2000000,
	 false},

	/* no history but a newer leader timeline: cannot show we are on it */
	{"empty history", "", 2, 1, 0x1000000, true},
	{"NULL history", NULL, 2, 1, 0x1000000, true},
	{"blank lines only", "\n\n\n", 2, 1, 0x1000000, true},

	/* a switchpoint that does not parse: assume the worst */
	{"malformed switchpoint", "1\tnot-an-lsn\treason\n", 2, 1, 0x1000000, true},
	{"switchpoint without slash", "1\t3000060\treason\n", 2, 1, 0x1000000, true},
	{"switchpoint with trailing junk", "1\t0/3000060x\treason\n", 2, 1, 0x1000000, true},
	{"switchpoint missing", "1\n", 2, 1, 0x1000000, true},
};

static void test_timeline_table(void **state)
{
	int failures = 0;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct tl_case *c = &cases[i];
		bool got = pg_timeline_diverged(c->history, c->leader_tli, c->my_tli, c->my_lsn);
		if (got != c->want) {
			print_error("case %zu \"%s\": leader tli %u, me tli %u at %X/%X: got %s, "
				    "want %s\n",
				    i, c->desc, c->leader_tli, c->my_tli,
				    (unsigned)(c->my_lsn >> 32), (unsigned)c->my_lsn,
				    got ? "diverged" : "not diverged",
				    c->want ? "diverged" : "not diverged");
			failures++;
		}
	}
	if (failures > 0)
		fail_msg("%d of %zu cases failed", failures, NELEM(cases));
}

/* A line longer than any real one is cut, not overrun (ASan watches). */
static void test_timeline_long_line(void **state)
{
	char hist[2048];
	memset(hist, 'x', sizeof(hist));
	memcpy(hist, "# ", 2);
	hist[1000] = '\n';
	snprintf(hist + 1001, sizeof(hist) - 1001, "1\t0/3000060\t%0900d\n", 0);
	assert_false(pg_timeline_diverged(hist, 2, 1, 0x3000000));
	assert_true(pg_timeline_diverged(hist, 2, 1, 0x3000061));
}

/*
 * A stopped data directory (pg_data_diverged): what pg_controldata says,
 * against the leader on timeline 2 forked from 1 at 0/3000060 (HIST2).
 */
struct data_case {
	const char *desc;
	const char *state;
	uint32_t tli;
	uint64_t checkpoint;
	uint32_t minrec_tli;
	uint64_t minrec;
	bool want;
};

static const struct data_case data_cases[] = {
	/* an old primary shut down cleanly: its shutdown checkpoint is its last record */
	{"shut down before the switchpoint", "shut down", 1, 0x3000000, 0, 0, false},
	/* PostgreSQL: "requested timeline 2 is not a child of this server's history" */
	{"shut down, checkpoint record AT the switchpoint", "shut down", 1, 0x3000060, 0, 0, true},
	{"shut down past the switchpoint", "shut down", 1, 0x3000100, 0, 0, true},
	/* an old primary that crashed: WAL past its checkpoint is not in pg_controldata */
	{"crashed primary, other timeline, checkpoint before", "in production", 1, 0x2000000, 0, 0, true},
	{"crashed primary on the leader's timeline", "in production", 2, 0x3000100, 0, 0, false},
	/* what pg_rewind leaves: the last common checkpoint, the minimum recovery point on the new timeline */
	{"after pg_rewind", "in archive recovery", 1, 0x2000000, 2, 0x5000000, false},
	/* a standby: the minimum recovery point is an end position */
	{"standby replayed up to the switchpoint", "shut down in recovery", 1, 0x2000000, 1, 0x3000060, false},
	{"standby replayed past the switchpoint", "shut down in recovery", 1, 0x2000000, 1, 0x3000061, true},
	{"standby on the leader's timeline", "shut down in recovery", 1, 0x2000000, 2, 0x9000000, false},
	{"standby, restartpoint past the switchpoint", "in archive recovery", 1, 0x3000080, 1, 0x3000100, true},
	{"on a timeline the leader never had", "shut down in recovery", 3, 0x1000000, 3, 0x1000000, true},
};

static void test_data_diverged_table(void **state)
{
	int failures = 0;
	for (size_t i = 0; i < NELEM(data_cases); i++) {
		const struct data_case *c = &data_cases[i];
		struct pg_data_info d;
		memset(&d, 0, sizeof(d));
		d.kind = PG_DATA_VALID;
		snprintf(d.cluster_state, sizeof(d.cluster_state), "%s", c->state);
		d.timeline = c->tli;
		d.checkpoint_lsn = c->checkpoint;
		d.min_recovery_tli = c->minrec_tli;
		d.min_recovery_lsn = c->minrec;
		bool got = pg_data_diverged(HIST2, 2, &d);
		if (got != c->want) {
			print_error("data case %zu \"%s\": got %s, want %s\n", i, c->desc,
				    got ? "diverged" : "not diverged", c->want ? "diverged" : "not diverged");
			failures++;
		}
	}
	if (failures > 0)
		fail_msg("%d of %zu cases failed", failures, NELEM(data_cases));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeline_table),
		cmocka_unit_test(test_data_diverged_table),
		cmocka_unit_test(test_timeline_long_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
