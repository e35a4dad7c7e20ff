/*
 * test_archive_continuity.c — the pure part of ha/archive_continuity.c: WAL
 * file names, which segments a promotion archives again, which files a
 * rejoin pushes and in what order, and a refused .partial.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ha/archive_continuity.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_segment_name(void **state)
{
	(void)state;
	uint32_t tli = 0;
	assert_true(arcc_segment_name("00000001000000000000000A", &tli));
	assert_int_equal(tli, 1);
	assert_true(arcc_segment_name("0000001F0000000100000003", &tli));
	assert_int_equal(tli, 0x1F);
	static const char *const bad[] = {
		"", "00000001000000000000000", "00000001000000000000000A0", "00000001000000000000000a",
		"00000001000000000000000A.partial", "00000002.history", "000000010000000000000002.00000028.backup",
		"xlogtemp.123", "archive_status",
	};
	for (size_t i = 0; i < NELEM(bad); i++)
		assert_false(arcc_segment_name(bad[i], &tli));
}

static void test_newest_timeline(void **state)
{
	(void)state;
	static const char *const none[] = {"000000010000000000000001", "archive_status", "xlogtemp.7"};
	assert_int_equal(arcc_newest_timeline(none, NELEM(none)), 1);
	assert_int_equal(arcc_newest_timeline(NULL, 0), 1);
	static const char *const some[] = {
		"00000002.history", "0000000A.history", "00000003.history", "000000100000000000000001",
		"0000000B.history.tmp", "0000000c.history", "000000FF.histor",
	};
	/* A segment's timeline does not count, nor a name that is not exactly a history file. */
	assert_int_equal(arcc_newest_timeline(some, NELEM(some)), 10);
}

struct rearchive_case {
	const char *status;
	uint32_t tli;
	bool want;
};

static void test_rearchive(void **state)
{
	(void)state;
	static const struct rearchive_case cases[] = {
		{"000000020000000000000005.done", 2, true},
		{"000000020000000100000000.done", 2, true},
		/* another timeline: its last segment holds WAL only up to the branch, under a full name */
		{"000000010000000000000005.done", 2, false},
		{"000000030000000000000005.done", 2, false},
		/* not yet archived anyway, or not a whole segment */
		{"000000020000000000000005.ready", 2, false},
		{"000000020000000000000005.partial.done", 2, false},
		{"00000002.history.done", 2, false},
		{"000000020000000000000002.00000028.backup.done", 2, false},
		{"000000020000000000000005.done.tmp", 2, false},
		{".done", 2, false},
	};
	for (size_t i = 0; i < NELEM(cases); i++)
		assert_int_equal(arcc_rearchive(cases[i].status, cases[i].tli), cases[i].want);
}

static void test_ready_file(void **state)
{
	(void)state;
	char file[64];
	assert_true(arcc_ready_file("000000010000000000000007.ready", file, sizeof(file)));
	assert_string_equal(file, "000000010000000000000007");
	assert_true(arcc_ready_file("000000010000000000000007.partial.ready", file, sizeof(file)));
	assert_string_equal(file, "000000010000000000000007.partial");
	assert_true(arcc_ready_file("00000003.history.ready", file, sizeof(file)));
	assert_string_equal(file, "00000003.history");
	assert_false(arcc_ready_file("000000010000000000000007.done", file, sizeof(file)));
	assert_false(arcc_ready_file(".ready", file, sizeof(file)));
	assert_false(arcc_ready_file(".hidden.ready", file, sizeof(file)));
	assert_false(arcc_ready_file("000000010000000000000007.ready.tmp", file, sizeof(file)));
	/* Too long for the buffer: refused, never cut. */
	char small[8];
	assert_false(arcc_ready_file("000000010000000000000007.ready", small, sizeof(small)));
}

static void test_push_order(void **state)
{
	(void)state;
	const char *files[] = {
		"00000002000000000000000B", "000000010000000000000009", "00000002.history",
		"00000001000000000000000A.partial", "000000010000000000000008", "00000003.history",
	};
	qsort(files, NELEM(files), sizeof(files[0]), arcc_push_order);
	static const char *const want[] = {
		"00000002.history", "00000003.history", "000000010000000000000008", "000000010000000000000009",
		"00000001000000000000000A.partial", "00000002000000000000000B",
	};
	for (size_t i = 0; i < NELEM(want); i++)
		assert_string_equal(files[i], want[i]);
}

static void test_partial_refused(void **state)
{
	(void)state;
	/* What pgBackRest 2.45 writes to spool/archive/<stanza>/out/<wal>.error. */
	const char *dup = "45\nraised from local-1 protocol: WAL file '000000010000000000000005.partial' already "
			  "exists in the repo1 archive with a different checksum\n[ArchiveDuplicateError] on retry after 0ms";
	assert_true(arcc_partial_refused("000000010000000000000005.partial", dup));
	/* A whole segment with other content is a split brain to report, never skipped. */
	assert_false(arcc_partial_refused("000000010000000000000005", dup));
	/* Another error: the repository unreachable, or the same checksum (which is not an error). */
	assert_false(arcc_partial_refused("000000010000000000000005.partial",
					  "104\nunable to open '/repo/archive': Permission denied"));
	assert_false(arcc_partial_refused("000000010000000000000005.partial",
					  "45\nWAL file already exists in the repo1 archive with the same checksum"));
	assert_false(arcc_partial_refused("000000010000000000000005.partial", "145\nwith a different checksum"));
	assert_false(arcc_partial_refused("000000010000000000000005.partial", ""));
	assert_false(arcc_partial_refused(".partial", dup));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segment_name),
		cmocka_unit_test(test_newest_timeline),
		cmocka_unit_test(test_rearchive),
		cmocka_unit_test(test_ready_file),
		cmocka_unit_test(test_push_order),
		cmocka_unit_test(test_partial_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
