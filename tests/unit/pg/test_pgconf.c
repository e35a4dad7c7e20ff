/*
 * test_pgconf.c — the files pgha writes for PostgreSQL (pg/pgconf.c): slot
 * names, conninfo and postgresql.conf quoting (checked against libpq's own
 * parser), the passfile, and pgha.conf / pg_hba.conf / standby.signal /
 * the include line in a scratch data directory.
 *
 * Everything is written as the current user (run_user.set = false,
 * pg_node.user = NULL) under a private mkdtemp directory that the group
 * teardown removes, even after a failed test.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "common/proc.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "pg/pgconf.h"
#include "pg/pgctl.h"

#define INCLUDE_LINE "include_if_exists = 'pgha.conf'\t# added by pgha: keep it last\n"

/* ---- helpers ------------------------------------------------------------ */

static char root[1024];

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/pgha-test-pgconf-XXXXXX", base && base[0] ? base : "/tmp");
	return mkdtemp(root) == NULL ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_teardown(void **state)
{
	return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under root (path receives it). */
static void new_dir(char *path, size_t len)
{
	snprintf(path, len, "%s/d-XXXXXX", root);
	if (mkdtemp(path) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
}

static void put_file(const char *dir, const char *name, const char *content)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	fputs(content, f);
	fclose(f);
}

/* The whole file (caller frees), or NULL when it does not exist. */
static char *get_file(const char *dir, const char *name)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *data = NULL;
	struct pgha_err e;
	if (read_file(path, &data, NULL, &e) != 0)
		return NULL;
	return data;
}

static bool file_exists(const char *dir, const char *name)
{
	char path[1200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static void assert_mode_0600(const char *dir, const char *name)
{
	char path[1200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) != 0)
		fail_msg("%s: %s", path, strerror(errno));
	if ((st.st_mode & 07777) != 0600)
		fail_msg("%s has mode %o, want 600", path, (unsigned)(st.st_mode & 07777));
	assert_int_equal(st.st_uid, geteuid());
}

/* want may say @DATA@ for dir (pgha.conf names files in the data directory by absolute path). */
static void assert_file_eq(const char *dir, const char *name, const char *want_tmpl)
{
	char *got = get_file(dir, name);
	if (got == NULL)
		fail_msg("%s/%s does not exist", dir, name);
	char want[16384];
	size_t n = 0;
	for (const char *p = want_tmpl; *p && n + strlen(dir) + 1 < sizeof(want);) {
		if (strncmp(p, "@DATA@", 6) == 0) {
			n += (size_t)snprintf(want + n, sizeof(want) - n, "%s", dir);
			p += 6;
		} else {
			want[n++] = *p++;
		}
	}
	want[n] = '\0';
	if (strcmp(got, want) != 0) {
		print_error("%s/%s:\n--- got ---\n%s--- want ---\n%s-----------\n", dir, name, got, want);
		free(got);
		fail_msg("%s differs", name);
	}
	free(got);
}

/* No file but the listed ones (in particular no leftover *.tmp.<pid>). */
static void assert_dir_holds(const char *dir, const char *const *names, size_t n)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	size_t count = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool known = false;
		for (size_t i = 0; i < n; i++)
			known |= strcmp(de->d_name, names[i]) == 0;
		if (!known) {
			closedir(d);
			fail_msg("unexpected file %s/%s", dir, de->d_name);
		}
		count++;
	}
	closedir(d);
	assert_int_equal(count, n);
}

/* Value of keyword in a conninfo string as libpq parses it (caller frees; NULL if unset). */
static char *conninfo_value(const char *conninfo, const char *keyword)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", err ? err : "out of memory");
		PQfreemem(err);
		fail_msg("libpq refuses conninfo <%s>: %s", conninfo, msg);
	}
	char *v = NULL;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val != NULL)
			v = strdup(o->val);
	PQconninfoFree(opts);
	return v;
}

#define assert_conninfo(ci, key, want)                                               \
	do {                                                                          \
		char *v_ = conninfo_value((ci), (key));                               \
		if (v_ == NULL)                                                       \
			fail_msg("%s unset in <%s>", (key), (ci));                    \
		if (strcmp(v_, (want)) != 0) {                                        \
			print_error("%s = <%s>, want <%s>\n", (key), v_, (want));      \
			free(v_);                                                     \
			fail_msg("conninfo <%s>", (ci));                              \
		}                                                                     \
		free(v_);                                                             \
	} while (0)

/*
 * A quoted postgresql.conf value as PostgreSQL reads it: the text between the
 * outer quotes, '' is a quote, and backslash escapes as in GUC_scanstr()
 * (\b \f \n \r \t, up to three octal digits, anything else is itself).
 * Returns NULL if quoted is not one quoted token (caller frees).
 */
static char *guc_unquote(const char *quoted)
{
	size_t n = strlen(quoted);
	if (n < 2 || quoted[0] != '\'' || quoted[n - 1] != '\'')
		return NULL;
	char *out = malloc(n);
	size_t j = 0;
	for (size_t i = 1; i < n - 1; i++) {
		char c = quoted[i];
		if (c == '\n') {
			free(out);
			return NULL; /* the config lexer does not allow a newline in a string */
		}
		if (c == '\'') {
			if (i + 1 >= n - 1 || quoted[i + 1] != '\'') {
				free(out);
				return NULL; /* a lone quote ends the string early */
			}
			out[j++] = '\'';
			i++;
		} else if (c == '\\' && i + 1 < n - 1) {
			char x = quoted[++i];
			switch (x) {
			case 'b': out[j++] = '\b'; break;
			case 'f': out[j++] = '\f'; break;
			case 'n': out[j++] = '\n'; break;
			case 'r': out[j++] = '\r'; break;
			case 't': out[j++] = '\t'; break;
			default:
				if (x >= '0' && x <= '7') {
					int v = x - '0';
					for (int k = 0; k < 2 && i + 1 < n - 1 && quoted[i + 1] >= '0' &&
							quoted[i + 1] <= '7'; k++)
						v = v * 8 + (quoted[++i] - '0');
					out[j++] = (char)v;
				} else {
					out[j++] = x;
				}
			}
		} else if (c == '\\') {
			free(out);
			return NULL; /* a backslash escapes the closing quote */
		} else {
			out[j++] = c;
		}
	}
	out[j] = '\0';
	return out;
}

/* The value of "name = '...'" in a pgha.conf text, unquoted (caller frees). */
static char *conf_value(const char *conf, const char *name)
{
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "\n%s = ", name);
	const char *p = strstr(conf, prefix);
	if (p == NULL)
		return NULL;
	p += strlen(prefix);
	const char *eol = strchr(p, '\n');
	char *quoted = strndup(p, eol ? (size_t)(eol - p) : strlen(p));
	char *v = guc_unquote(quoted);
	free(quoted);
	return v;
}

/* ---- pg_slot_name ---------------------------------------------------------- */

/* 32-bit FNV-1a over the raw bytes (offset basis 2166136261, prime 16777619). */
static uint32_t fnv1a32(const char *s)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

static const char hexdig[] = "0123456789abcdef";

/*
 * The slot name by the specification, written out independently:
 * [a-z0-9] kept, '_' -> "__", any other byte -> '_' + two lowercase hex
 * digits; over 63 bytes: the first 46 bytes + "_h" + 8 hex digits of the
 * FNV-1a of the whole name (56 bytes). out holds at least 64 bytes.
 * Returns whether the name was hashed.
 */
static bool slot_spec(const char *member, char *out)
{
	struct strbuf sb = STRBUF_INIT;
	size_t cut = 0;   /* the last boundary between whole escapes at or before byte 46 */
	for (const unsigned char *p = (const unsigned char *)member; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) {
			sb_append(&sb, (const char *)p, 1);
		} else if (*p == '_') {
			sb_puts(&sb, "__");
		} else {
			char esc[3] = {'_', hexdig[*p >> 4], hexdig[*p & 15]};
			sb_append(&sb, esc, 3);
		}
		if (sb.len <= 46)
			cut = sb.len;
	}
	bool hashed = sb.len > 63;
	if (!hashed) {
		memcpy(out, sb_str(&sb), sb.len + 1);
	} else {
		uint32_t h = fnv1a32(member);
		memcpy(out, sb_str(&sb), cut);
		out[cut] = '_';
		out[cut + 1] = 'h';
		for (int i = 0; i < 8; i++)
			out[cut + 2 + i] = hexdig[(h >> (28 - 4 * i)) & 15];
		out[cut + 10] = '\0';
	}
	sb_free(&sb);
	return hashed;
}

/* [a-z0-9_]{0,63} */
static void assert_valid_slot(const char *member, const char *slot)
{
	size_t n = strlen(slot);
	if (n > 63)
		fail_msg("slot for <%s> is %zu bytes: %s", member, n, slot);
	for (const char *p = slot; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			fail_msg("slot name \"%s\" holds 0x%02x", slot, (unsigned char)*p);
}

/* Inverse of the escaping (for names that were not hashed): 0 and the name, or -1. */
static int slot_decode(const char *slot, char *out, size_t outlen)
{
	size_t j = 0;
	for (const char *p = slot; *p; p++) {
		if (j + 1 >= outlen)
			return -1;
		if (*p != '_') {
			out[j++] = *p;
		} else if (p[1] == '_') {
			out[j++] = '_';
			p++;
		} else {
			if (p[1] == '\0' || p[2] == '\0')
				return -1;
			const char *a = strchr(hexdig, p[1]), *b = strchr(hexdig, p[2]);
			if (a == NULL || b == NULL)
				return -1;
			out[j++] = (char)(((a - hexdig) << 4) | (b - hexdig));
			p += 2;
		}
	}
	out[j] = '\0';
	return 0;
}

static void test_slot_name(void **state)
{
	static const struct {
		const char *member;
		const char *want;
	} cases[] = {
		{"node1", "node1"},
		{"node_1", "node__1"},
		{"node-1", "node_2d1"},
		{"Node-1", "_4eode_2d1"},
		{"node.1", "node_2e1"},
		{"Node1", "_4eode1"},
		{"NODE-1", "_4e_4f_44_45_2d1"},
		{"db.dc1_a-b", "db_2edc1__a_2db"},
		{"abcxyz0189", "abcxyz0189"},
		{"", ""},
		{"_", "__"},
		{"__", "____"},
		{"a b/c:d'e\"f\\g", "a_20b_2fc_3ad_27e_22f_5cg"},
		{"n\xc3\xb6""de", "n_c3_b6de"},           /* UTF-8 "ö": two bytes, two escapes */
		{"\xc3\x84", "_c3_84"},                   /* "Ä": bytes, not characters */
		{"\xff\x80Z", "_ff_80_5a"},
		{"\x01\x1f\x7f", "_01_1f_7f"},
		{"AZ", "_41_5a"},
		{"az09", "az09"},
		{"_2d", "__2d"},                           /* "_" + "2d", not "-" ("_2d") */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		memset(out, 'X', sizeof(out));
		pg_slot_name(cases[i].member, out, sizeof(out));
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("pg_slot_name(\"%s\") = \"%s\", want \"%s\"", cases[i].member, out,
				 cases[i].want);
	}
}

/* Member names that the old mapping folded together get different slots. */
static void test_slot_name_distinct(void **state)
{
	static const char *const names[] = {
		"node-1", "node_1", "Node-1", "NODE-1", "node.1", "node1", "Node1", "NODE1",
		"node__1", "node_2d1", "node-_1", "node_-1", "node--1", "n\xc3\xb6""de", "n\xc3\xb7""de",
		"a_b", "a__b", "a-b", "a.b", "A_B",
	};
	enum { N = sizeof(names) / sizeof(names[0]) };
	char slots[N][64];
	for (size_t i = 0; i < N; i++) {
		pg_slot_name(names[i], slots[i], sizeof(slots[i]));
		assert_valid_slot(names[i], slots[i]);
	}
	for (size_t i = 0; i < N; i++)
		for (size_t j = i + 1; j < N; j++)
			if (strcmp(slots[i], slots[j]) == 0)
				fail_msg("\"%s\" and \"%s\" share the slot \"%s\"", names[i], names[j],
					 slots[i]);
	assert_string_equal(slots[0], "node_2d1");
	assert_string_equal(slots[1], "node__1");
	assert_string_equal(slots[2], "_4eode_2d1");
	assert_string_equal(slots[3], "_4e_4f_44_45_2d1");
	assert_string_equal(slots[4], "node_2e1");
}

static void test_slot_name_limits(void **state)
{
	char member[200], want[64], out[128];

	/* results of exactly 63 bytes are kept as they are */
	memset(member, 'a', 63);
	member[63] = '\0';
	pg_slot_name(member, out, sizeof(out));
	assert_string_equal(out, member);
	memset(member, '-', 21);                         /* 21 * "_2d" */
	member[21] = '\0';
	pg_slot_name(member, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	for (int i = 0; i < 63; i += 3)
		assert_memory_equal(out + i, "_2d", 3);
	memset(member, 'b', 60);
	memcpy(member + 60, "-", 2);                     /* 60 + 3 */
	pg_slot_name(member, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	assert_memory_equal(out, member, 60);
	assert_string_equal(out + 60, "_2d");
	memset(member, 'c', 61);
	memcpy(member + 61, "_", 2);                     /* 61 + 2 */
	pg_slot_name(member, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	assert_memory_equal(out, member, 61);
	assert_string_equal(out + 61, "__");
	/* the longest valid [node] name of lowercase letters and digits */
	pg_slot_name("012345678901234567890123456789012345678901234567890123456789012", out,
		     sizeof(out));
	assert_string_equal(out, "012345678901234567890123456789012345678901234567890123456789012");

	/* one byte more is hashed: 46 bytes + "_h" + 8 hex digits, 56 bytes */
	memset(member, 'a', 64);
	member[64] = '\0';
	pg_slot_name(member, out, sizeof(out));
	assert_string_equal(out, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_hd96f0f85");
	assert_int_equal(strlen(out), 56);
	memset(member, 'b', 61);
	memcpy(member + 61, "-", 2);                     /* 61 + 3 = 64 */
	pg_slot_name(member, out, sizeof(out));
	assert_string_equal(out, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb_ha9a9c658");
	snprintf(want, sizeof(want), "%.46s_h%08x", member, (unsigned)fnv1a32(member));
	assert_string_equal(out, want);

	/* a smaller buffer: truncated, always terminated */
	char small[5];
	memset(small, 'X', sizeof(small));
	pg_slot_name("ABCDEFGH", small, sizeof(small));
	assert_string_equal(small, "_41_");
	char one[1] = {'X'};
	pg_slot_name("abc", one, sizeof(one));
	assert_int_equal(one[0], '\0');
}

/* The hash is the 32-bit FNV-1a of the whole name, computed here independently. */
static void test_slot_name_hash(void **state)
{
	/* the reference itself, against published FNV-1a 32-bit vectors */
	assert_int_equal(fnv1a32(""), 0x811c9dc5u);
	assert_int_equal(fnv1a32("a"), 0xe40c292cu);
	assert_int_equal(fnv1a32("foobar"), 0xbf9cf968u);

	/* a valid 47-byte member name whose escaped form is 68 bytes */
	const char *name = "Node-1.DataCenter_Frankfurt.rack-42.example.com";
	uint32_t h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	assert_int_equal(h, 0xbe82e1bfu);
	char want[64], out[64];
	snprintf(want, sizeof(want), "_4eode_2d1_2e_44ata_43enter___46rankfurt_2erac_h%08x",
		 (unsigned)h);
	pg_slot_name(name, out, sizeof(out));
	assert_string_equal(out, want);
	assert_string_equal(out, "_4eode_2d1_2e_44ata_43enter___46rankfurt_2erac_hbe82e1bf");
	assert_int_equal(strlen(out), 56);
	/* without ".com" it fits (62 bytes) and is not hashed */
	pg_slot_name("Node-1.DataCenter_Frankfurt.rack-42.example", out, sizeof(out));
	assert_string_equal(out, "_4eode_2d1_2e_44ata_43enter___46rankfurt_2erack_2d42_2eexample");

	/* names that differ only far beyond the kept prefix: the hash covers the whole name */
	char a[1001], b[1001], sa[64], sb2[64];
	memset(a, 'Q', 1000);
	a[1000] = '\0';
	memcpy(b, a, sizeof(b));
	b[999] = 'R';
	pg_slot_name(a, sa, sizeof(sa));
	pg_slot_name(b, sb2, sizeof(sb2));
	/* 15 whole escapes (45 bytes): the cut never splits "_51" */
	snprintf(want, sizeof(want), "_51_51_51_51_51_51_51_51_51_51_51_51_51_51_51_h%08x",
		 (unsigned)fnv1a32(a));
	assert_string_equal(sa, want);
	assert_string_equal(sa, "_51_51_51_51_51_51_51_51_51_51_51_51_51_51_51_h224f70ed");
	assert_string_equal(sb2, "_51_51_51_51_51_51_51_51_51_51_51_51_51_51_51_h1f4f6c34");

	/* high bytes are hashed as unsigned bytes */
	const char *hi = "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0\xef\xee"
			 "\xed\xec\xeb\xea";
	pg_slot_name(hi, out, sizeof(out));
	snprintf(want, sizeof(want), "_ff_fe_fd_fc_fb_fa_f9_f8_f7_f6_f5_f4_f3_f2_f1_h%08x",
		 (unsigned)fnv1a32(hi));
	assert_string_equal(out, want);
	assert_string_equal(out, "_ff_fe_fd_fc_fb_fa_f9_f8_f7_f6_f5_f4_f3_f2_f1_h3c74770c");
}

/*
 * Whatever the name: at most 63 bytes of [a-z0-9_], exactly as specified, and
 * a name that is not hashed decodes back to the member name (so two such
 * names never share a slot).
 */
static void test_slot_name_always_valid(void **state)
{
	char member[400], out[128], want[64], back[400];
	/* every single byte */
	for (int c = 1; c < 256; c++) {
		member[0] = (char)c;
		member[1] = '\0';
		pg_slot_name(member, out, sizeof(out));
		assert_valid_slot(member, out);
		slot_spec(member, want);
		assert_string_equal(out, want);
		assert_int_equal(slot_decode(out, back, sizeof(back)), 0);
		assert_string_equal(back, member);
	}
	/* every byte value in one name */
	for (int i = 1; i < 256; i++)
		member[i - 1] = (char)i;
	member[255] = '\0';
	pg_slot_name(member, out, sizeof(out));
	assert_valid_slot(member, out);
	assert_true(slot_spec(member, want));
	assert_string_equal(out, want);
	assert_int_equal(strlen(out), 55);   /* 15 whole 3-byte escapes + "_h" + 8 */
	/* pseudo-random names of 0..300 bytes, from a small alphabet and from all bytes */
	static const char alpha[] = "aA_-.0zZ\xc3\xb6 ";
	uint32_t seed = 12345;
	int hashed = 0, kept = 0;
	for (int round = 0; round < 4000; round++) {
		seed = seed * 1103515245u + 12345u;
		size_t len = (seed >> 8) % (round < 2000 ? 40 : 301);
		bool bytes = round & 1;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			member[i] = bytes ? (char)(1 + (seed >> 16) % 255)
					  : alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		member[len] = '\0';
		memset(out, 'X', sizeof(out));
		pg_slot_name(member, out, 64);
		assert_valid_slot(member, out);
		bool h = slot_spec(member, want);
		if (strcmp(out, want) != 0)
			fail_msg("round %d: \"%s\", want \"%s\"", round, out, want);
		if (h) {
			hashed++;
			assert_in_range(strlen(out), 54, 56);   /* cut at 44..46: whole escapes only */
		} else {
			kept++;
			assert_int_equal(slot_decode(out, back, sizeof(back)), 0);
			assert_string_equal(back, member);
		}
	}
	assert_true(hashed > 500);
	assert_true(kept > 500);
}

/*
 * The hashed form must not be reachable by a short name: "injective" is only
 * as good as the hash between two LONG names. Cutting at byte 46 can leave a
 * '_' that starts an escape, and "<45 a>_" + "_h<hex>" then reads back as
 * "<45 a>" "__" "h<hex>": the slot of the valid 55-byte name
 * "<45 a>_h<hash>" (not hashed). Both names below are valid [node] names.
 */
static void test_slot_name_hash_not_forgeable(void **state)
{
	char x[80], y[80], sx[64], sy[64];
	memset(x, 'a', 45);
	x[45] = '-';                                     /* "_2d" straddles byte 46 */
	memset(x + 46, 'a', 16);
	x[62] = '\0';                                    /* 62 bytes, escaped 64: hashed */
	snprintf(y, sizeof(y), "%.45s_h%08x", x, (unsigned)fnv1a32(x));   /* 55 bytes */
	pg_slot_name(x, sx, sizeof(sx));
	pg_slot_name(y, sy, sizeof(sy));
	if (strcmp(sx, sy) == 0)
		fail_msg("members \"%s\" and \"%s\" share the slot \"%s\"", x, y, sx);
}

/* ---- pg_conninfo ------------------------------------------------------------ */

static void test_conninfo_exact(void **state)
{
	char *ci = pg_conninfo("10.0.0.1", 5432, "replicator", NULL, NULL, NULL, NULL);
	assert_string_equal(ci, "host='10.0.0.1' port='5432' user='replicator' sslmode='prefer' "
				"connect_timeout='5' keepalives_idle='5' keepalives_interval='2' "
				"keepalives_count='3'");
	free(ci);
	ci = pg_conninfo("db1", 6432, "postgres", "/var/lib/pg/node1.pgpass", "node1", "postgres", NULL);
	assert_string_equal(ci, "host='db1' port='6432' user='postgres' "
				"passfile='/var/lib/pg/node1.pgpass' application_name='node1' "
				"dbname='postgres' sslmode='prefer' connect_timeout='5' "
				"keepalives_idle='5' keepalives_interval='2' keepalives_count='3'");
	free(ci);
	/* A standby cluster's upstream: every host of the primary cluster, the primary among them. */
	ci = pg_conninfo_primary_of("10.1.0.1,db2", "5432,5433", "replicator", "/p/w.pgpass", "w1", NULL, NULL);
	assert_string_equal(ci, "host='10.1.0.1,db2' port='5432,5433' target_session_attrs='read-write' "
				"user='replicator' passfile='/p/w.pgpass' application_name='w1' sslmode='prefer' "
				"connect_timeout='5' keepalives_idle='5' keepalives_interval='2' keepalives_count='3'");
	PQconninfoOption *opts = PQconninfoParse(ci, NULL);
	assert_non_null(opts);   /* libpq takes it */
	PQconninfoFree(opts);
	free(ci);
}

static void test_conninfo_roundtrip(void **state)
{
	static const struct {
		const char *host, *user, *passfile, *app, *db;
	} cases[] = {
		{"10.0.0.1", "replicator", "/tmp/x.pgpass", "node1", NULL},
		{"my host", "rep user", "/tmp/my dir/pass file", "node 1", "my db"},
		{"it's", "o'brien", "/tmp/it's/x", "a'b", "d'b"},
		{"back\\slash", "u\\v", "C:\\pg\\pass", "x\\", "\\"},
		{"'\\' \\'", "''", "/tmp/ a'b\\c d ", " ", "='\\"},
		{"", "", "", "", ""},
		{"fd00::1", "user=host", "/tmp/a=b c=d", "x=y", "dbname=evil"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *ci = pg_conninfo(cases[i].host, 5433, cases[i].user, cases[i].passfile,
				       cases[i].app, cases[i].db, NULL);
		assert_conninfo(ci, "host", cases[i].host);
		assert_conninfo(ci, "port", "5433");
		assert_conninfo(ci, "user", cases[i].user);
		assert_conninfo(ci, "passfile", cases[i].passfile);
		assert_conninfo(ci, "application_name", cases[i].app);
		if (cases[i].db)
			assert_conninfo(ci, "dbname", cases[i].db);
		assert_conninfo(ci, "sslmode", "prefer");
		assert_conninfo(ci, "connect_timeout", "5");
		assert_conninfo(ci, "keepalives_idle", "5");
		assert_conninfo(ci, "keepalives_interval", "2");
		assert_conninfo(ci, "keepalives_count", "3");
		free(ci);
	}
	/* no passfile / application_name / dbname: left unset */
	char *ci = pg_conninfo("h", 1, "u", NULL, NULL, NULL, NULL);
	char *v = conninfo_value(ci, "passfile");
	assert_null(v);
	v = conninfo_value(ci, "application_name");
	assert_null(v);
	v = conninfo_value(ci, "dbname");
	assert_null(v);
	assert_conninfo(ci, "port", "1");
	free(ci);
}

/* ---- pg_conf_quote ------------------------------------------------------------ */

static void test_conf_quote(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"", "''"},
		{"on", "'on'"},
		{"it's", "'it''s'"},
		{"''", "''''''"},
		{"a\\b", "'a\\\\b'"},
		{"\\'", "'\\\\'''"},
		{"%m [%p] ", "'%m [%p] '"},
		{"host='x' port='5'", "'host=''x'' port=''5'''"},
		{"C:\\dir\\", "'C:\\\\dir\\\\'"},
		/* control characters: \n \r \t by name, other bytes < 0x20 in octal */
		{"a\nb", "'a\\nb'"},
		{"\r\n", "'\\r\\n'"},
		{"\tx\t", "'\\tx\\t'"},
		{"\x01", "'\\001'"},
		{"\x07\x08\x0b\x0c", "'\\007\\010\\013\\014'"},
		{"\x1b[0m", "'\\033[0m'"},
		{"\x1f" "7", "'\\0377'"},                 /* always three digits: "7" stays "7" */
		{"\x01" "1", "'\\0011'"},
		/* from 0x20 up, bytes are kept as they are */
		{" ~\x7f\x80\xc3\xb6\xff", "' ~\x7f\x80\xc3\xb6\xff'"},
		/* all together */
		{"it's\\\n", "'it''s\\\\\\n'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf sb = STRBUF_INIT;
		pg_conf_quote(&sb, cases[i].in);
		if (strcmp(sb_str(&sb), cases[i].want) != 0)
			fail_msg("pg_conf_quote(<%s>) = <%s>, want <%s>", cases[i].in, sb_str(&sb),
				 cases[i].want);
		/* PostgreSQL reads back the original */
		char *back = guc_unquote(sb_str(&sb));
		assert_non_null(back);
		assert_string_equal(back, cases[i].in);
		free(back);
		sb_free(&sb);
	}
	/* it appends */
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "x = ");
	pg_conf_quote(&sb, "a");
	pg_conf_quote(&sb, "b");
	assert_string_equal(sb_str(&sb), "x = 'a''b'");
	sb_free(&sb);
}

/*
 * postgresql.conf cannot hold a raw newline inside a quoted value (the config
 * lexer ends the string at the line end and PostgreSQL refuses to start). A
 * leader's "host" comes from its member record in etcd, which may hold any
 * JSON string, so every byte below 0x20 is escaped and the quoted value is
 * always one line of printable bytes.
 */
static void test_conf_quote_control_chars(void **state)
{
	char in[40];
	for (int c = 1; c < 0x20; c++) {
		snprintf(in, sizeof(in), "a%cb", c);
		char want[16];
		if (c == '\n')
			snprintf(want, sizeof(want), "'a\\nb'");
		else if (c == '\r')
			snprintf(want, sizeof(want), "'a\\rb'");
		else if (c == '\t')
			snprintf(want, sizeof(want), "'a\\tb'");
		else
			snprintf(want, sizeof(want), "'a\\%o%o%ob'", c >> 6, (c >> 3) & 7, c & 7);
		struct strbuf sb = STRBUF_INIT;
		pg_conf_quote(&sb, in);
		if (strcmp(sb_str(&sb), want) != 0) {
			char got[64];
			snprintf(got, sizeof(got), "%s", sb_str(&sb));
			sb_free(&sb);
			fail_msg("byte 0x%02x: got <%s>, want <%s>", c, got, want);
		}
		for (const char *p = sb_str(&sb); *p; p++)
			if ((unsigned char)*p < 0x20)
				fail_msg("byte 0x%02x left raw", (unsigned char)*p);
		char *back = guc_unquote(sb_str(&sb));
		assert_non_null(back);
		assert_string_equal(back, in);
		free(back);
		sb_free(&sb);
	}
	/* all of them in one value, read back by PostgreSQL's rules */
	for (int c = 1; c < 0x20; c++)
		in[c - 1] = (char)c;
	in[0x1f] = '\0';
	struct strbuf sb = STRBUF_INIT;
	pg_conf_quote(&sb, in);
	assert_string_equal(sb_str(&sb), "'\\001\\002\\003\\004\\005\\006\\007\\010\\t\\n\\013\\014\\r"
					 "\\016\\017\\020\\021\\022\\023\\024\\025\\026\\027\\030\\031"
					 "\\032\\033\\034\\035\\036\\037'");
	char *back = guc_unquote(sb_str(&sb));
	assert_non_null(back);
	assert_string_equal(back, in);
	free(back);
	sb_free(&sb);
}

/* ---- pg_write_pgpass ---------------------------------------------------------- */

static void test_pgpass(void **state)
{
	char dir[1100], path[1200];
	new_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/node1.pgpass", dir);
	struct run_user me = {.set = false};
	struct pgha_err e;
	assert_int_equal(pg_write_pgpass(path, &me, "postgres", "s3cret", "replicator", "r3pl", &e), 0);
	assert_file_eq(dir, "node1.pgpass", "*:*:*:replicator:r3pl\n*:*:*:postgres:s3cret\n");
	assert_mode_0600(dir, "node1.pgpass");

	/* ':' and '\' are escaped with '\'; other characters are kept */
	assert_int_equal(pg_write_pgpass(path, &me, "su:per\\user", "p:a\\ss:", "rep\\",
					 "\\:'\" #*", &e), 0);
	assert_file_eq(dir, "node1.pgpass",
		       "*:*:*:rep\\\\:\\\\\\:'\" #*\n"
		       "*:*:*:su\\:per\\\\user:p\\:a\\\\ss\\:\n");
	assert_mode_0600(dir, "node1.pgpass");

	/* an existing file with a loose mode is replaced by a 0600 one */
	chmod(path, 0644);
	assert_int_equal(pg_write_pgpass(path, NULL, "a", "b", "c", "d", &e), 0);
	assert_file_eq(dir, "node1.pgpass", "*:*:*:c:d\n*:*:*:a:b\n");
	assert_mode_0600(dir, "node1.pgpass");
	static const char *const only[] = {"node1.pgpass"};
	assert_dir_holds(dir, only, 1);

	/* a missing directory: an error naming the file */
	snprintf(path, sizeof(path), "%s/missing/x.pgpass", dir);
	assert_int_equal(pg_write_pgpass(path, &me, "a", "b", "c", "d", &e), -1);
	assert_non_null(strstr(e.msg, "cannot create"));
	assert_non_null(strstr(e.msg, "/missing/x.pgpass"));
}

/* ---- pg_write_config ------------------------------------------------------------- */

#define ORIG_CONF "# PostgreSQL configuration\nshared_buffers = 128MB\n"

static const struct pg_param params[] = {
	{(char *)"work_mem", (char *)"4MB"},
	{(char *)"log_line_prefix", (char *)"%m it's \\ "},
};

struct conf_env {
	char dir[1100];
	struct pg_node node;
	struct pg_conf_spec spec;
};

static void env_init(struct conf_env *env, const char *orig_conf)
{
	memset(env, 0, sizeof(*env));
	new_dir(env->dir, sizeof(env->dir));
	if (orig_conf)
		put_file(env->dir, "postgresql.conf", orig_conf);
	env->node.data_dir = env->dir;
	env->node.listen_host = "10.0.0.1";
	env->node.port = 5433;
	env->node.socket_dir = "/var/run/postgresql";
	env->node.user = NULL;
	env->spec.node = &env->node;
	env->spec.member_name = "node1";
	env->spec.allowed_networks = "10.0.0.0/24, 192.168.1.0/24,fd00::/8";
	env->spec.superuser = "postgres";
	env->spec.replication_user = "replicator";
	env->spec.params = params;
	env->spec.nparams = 2;
}

#define CONF_HEAD                                                                 \
	"# Written by pgha before every start. Do not edit: set options in the pgha\n" \
	"# config file ([parameters] section) instead.\n"                              \
	"max_wal_senders = '10'\n"                                                     \
	"max_replication_slots = '10'\n"                                               \
	"wal_keep_size = '128MB'\n"                                                    \
	"wal_log_hints = 'on'\n"                                                       \
	"password_encryption = 'scram-sha-256'\n"                                      \
	"hot_standby_feedback = 'on'\n"                                                \
	"wal_sender_timeout = '10s'\n"                                                 \
	"wal_receiver_timeout = '10s'\n"                                               \
	"wal_retrieve_retry_interval = '1s'\n"                                         \
	"logging_collector = 'off'\n"                                                  \
	"log_line_prefix = '%m [%p] '\n"                                               \
	"work_mem = '4MB'\n"                                                           \
	"log_line_prefix = '%m it''s \\\\ '\n"                                         \
	"listen_addresses = '10.0.0.1'\n"                                              \
	"port = '5433'\n"                                                              \
	"unix_socket_directories = '/var/run/postgresql'\n"                            \
	"cluster_name = 'node1'\n"                                                     \
	"wal_level = 'replica'\n"                                                      \
	"hot_standby = 'on'\n"                                                         \
	"hba_file = '@DATA@/pg_hba.conf'\n"                                            \
	"recovery_target_timeline = 'latest'\n"

#define CONF_PRIMARY CONF_HEAD "primary_conninfo = ''\nprimary_slot_name = ''\n"

#define HBA                                                                            \
	"# Written by pgha before every start: scram-sha-256 everywhere.\n"               \
	"# TYPE  DATABASE     USER          ADDRESS            METHOD\n"                  \
	"local   all          all                              scram-sha-256\n"           \
	"local   replication  replicator                       scram-sha-256\n"           \
	"host    all          all           10.0.0.0/24        scram-sha-256\n"           \
	"host    replication  replicator    10.0.0.0/24        scram-sha-256\n"           \
	"host    all          all           192.168.1.0/24     scram-sha-256\n"           \
	"host    replication  replicator    192.168.1.0/24     scram-sha-256\n"           \
	"host    all          all           fd00::/8           scram-sha-256\n"           \
	"host    replication  replicator    fd00::/8           scram-sha-256\n"

static void test_write_config_primary(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	/* a primary ignores a conninfo and slot it is given */
	env.spec.primary_conninfo = "host='x'";
	env.spec.slot = "node1";
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "pgha.conf", CONF_PRIMARY);
	assert_file_eq(env.dir, "pg_hba.conf", HBA);
	assert_file_eq(env.dir, "postgresql.conf", ORIG_CONF INCLUDE_LINE);
	assert_false(file_exists(env.dir, "standby.signal"));
	assert_mode_0600(env.dir, "pgha.conf");
	assert_mode_0600(env.dir, "pg_hba.conf");
	static const char *const files[] = {"postgresql.conf", "pgha.conf", "pg_hba.conf"};
	assert_dir_holds(env.dir, files, 3);

	/* every pg_hba.conf line has the five fields PostgreSQL expects */
	char *hba = get_file(env.dir, "pg_hba.conf");
	int host_lines = 0;
	for (char *save = NULL, *line = strtok_r(hba, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		char type[16], db[16], user[32], addr[64], method[32], extra[8];
		int n = sscanf(line, "%15s %15s %31s %63s %31s %7s", type, db, user, addr, method, extra);
		if (strcmp(type, "local") == 0) {
			assert_int_equal(n, 4); /* local: no address */
			assert_string_equal(addr, "scram-sha-256");
		} else {
			assert_int_equal(n, 5);
			assert_string_equal(type, "host");
			assert_string_equal(method, "scram-sha-256");
			host_lines++;
		}
	}
	assert_int_equal(host_lines, 6);
	free(hba);

	/* the values PostgreSQL will read */
	char *conf = get_file(env.dir, "pgha.conf");
	char *v = conf_value(conf, "primary_conninfo");
	assert_string_equal(v, "");
	free(v);
	v = conf_value(conf, "primary_slot_name");
	assert_string_equal(v, "");
	free(v);
	free(conf);
}

/*
 * [tls]: the files are copied 0600 beside the data directory and named in
 * pgha.conf; require turns every TCP rule into hostssl and leaves local alone.
 */
static void test_write_config_tls(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	char src[1100], dst[1100];
	new_dir(src, sizeof(src));
	new_dir(dst, sizeof(dst));
	put_file(src, "n1.crt", "CERT\n");
	put_file(src, "n1.key", "KEY\n");
	char ks[1200];
	snprintf(ks, sizeof(ks), "%s/n1.key", src);
	assert_int_equal(chmod(ks, 0600), 0);
	put_file(src, "ca.crt", "CA\n");
	char cs[1200], as[1200], cd[1200], kd[1200], ad[1200];
	snprintf(cs, sizeof(cs), "%s/n1.crt", src);
	snprintf(as, sizeof(as), "%s/ca.crt", src);
	snprintf(cd, sizeof(cd), "%s/node1.server.crt", dst);
	snprintf(kd, sizeof(kd), "%s/node1.server.key", dst);
	snprintf(ad, sizeof(ad), "%s/node1.ca.crt", dst);
	struct pg_tls tls = {cs, ks, as, cd, kd, ad, true};
	env.spec.tls = &tls;
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	static const char *const copies[] = {"node1.server.crt", "node1.server.key", "node1.ca.crt"};
	static const char *const contents[] = {"CERT\n", "KEY\n", "CA\n"};
	for (size_t i = 0; i < 3; i++) {
		char *got = get_file(dst, copies[i]);
		assert_non_null(got);
		assert_string_equal(got, contents[i]);
		free(got);
		assert_mode_0600(dst, copies[i]);
	}
	char *conf = get_file(env.dir, "pgha.conf");
	const char *const want[][2] = {{"ssl", "on"}, {"ssl_cert_file", cd}, {"ssl_key_file", kd}, {"ssl_ca_file", ad}};
	for (size_t i = 0; i < 4; i++) {
		char *v = conf_value(conf, want[i][0]);
		assert_non_null(v);
		assert_string_equal(v, want[i][1]);
		free(v);
	}
	free(conf);
	char *hba = get_file(env.dir, "pg_hba.conf");
	assert_non_null(strstr(hba, "local   all          all                              scram-sha-256\n"));
	assert_non_null(strstr(hba, "hostssl all          all           10.0.0.0/24        scram-sha-256\n"));
	assert_non_null(strstr(hba, "hostssl replication  replicator    fd00::/8           scram-sha-256\n"));
	assert_null(strstr(hba, "host "));
	free(hba);

	/* without require: TLS offered, plain TCP still accepted */
	tls.require = false;
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "pg_hba.conf", HBA);

	/* a key that cannot be read: refused, naming the option and the file */
	snprintf(ks, sizeof(ks), "%s/missing.key", src);
	assert_int_equal(pg_write_config(&env.spec, &e), -1);
	assert_non_null(strstr(e.msg, "[tls] key_file"));
	assert_non_null(strstr(e.msg, "missing.key"));
}

/* sslmode: verify-full with the CA copy, require with only require, prefer otherwise. */
static void test_conninfo_tls(void **state)
{
	struct pg_tls tls = {"", "", "/etc/ca.crt", NULL, NULL, "/srv/pg/node1.ca.crt", false};
	char *ci = pg_conninfo("10.0.0.1", 5432, "replicator", NULL, NULL, NULL, &tls);
	assert_conninfo(ci, "sslmode", "verify-full");
	assert_conninfo(ci, "sslrootcert", "/srv/pg/node1.ca.crt");
	assert_conninfo(ci, "channel_binding", "require");
	free(ci);
	struct pg_tls req = {"/c", "/k", "", "/cc", "/kk", NULL, true};
	ci = pg_conninfo("10.0.0.1", 5432, "replicator", NULL, NULL, NULL, &req);
	assert_conninfo(ci, "sslmode", "require");
	assert_conninfo(ci, "channel_binding", "require");
	assert_null(strstr(ci, "sslrootcert"));
	free(ci);
	req.require = false;
	ci = pg_conninfo("10.0.0.1", 5432, "replicator", NULL, NULL, NULL, &req);
	assert_conninfo(ci, "sslmode", "prefer");
	assert_null(strstr(ci, "channel_binding"));
	free(ci);
}

static void test_write_config_standby(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	/* an awkward host and passfile: quoted twice (conninfo, then postgresql.conf) */
	const char *host = "db 1'x\\y";
	const char *passfile = "/tmp/my dir/it's\\node1.pgpass";
	char *ci = pg_conninfo(host, 5432, "replicator", passfile, "node1", NULL, NULL);
	env.spec.standby = true;
	env.spec.primary_conninfo = ci;
	env.spec.slot = "node1";
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_true(file_exists(env.dir, "standby.signal"));
	assert_file_eq(env.dir, "standby.signal", "");
	assert_mode_0600(env.dir, "standby.signal");
	assert_file_eq(env.dir, "pg_hba.conf", HBA);
	assert_file_eq(env.dir, "postgresql.conf", ORIG_CONF INCLUDE_LINE);

	struct strbuf want = STRBUF_INIT;
	sb_puts(&want, CONF_HEAD "primary_conninfo = ");
	pg_conf_quote(&want, ci);
	sb_puts(&want, "\nprimary_slot_name = 'node1'\n");
	assert_file_eq(env.dir, "pgha.conf", sb_str(&want));
	sb_free(&want);

	/* PostgreSQL reads the conninfo back, and libpq parses the original values */
	char *conf = get_file(env.dir, "pgha.conf");
	char *v = conf_value(conf, "primary_conninfo");
	assert_non_null(v);
	assert_string_equal(v, ci);
	assert_conninfo(v, "host", host);
	assert_conninfo(v, "passfile", passfile);
	assert_conninfo(v, "port", "5432");
	assert_conninfo(v, "user", "replicator");
	assert_conninfo(v, "application_name", "node1");
	free(v);
	v = conf_value(conf, "primary_slot_name");
	assert_string_equal(v, "node1");
	free(v);
	free(conf);

	/* back to primary: standby.signal removed, conninfo cleared */
	env.spec.standby = false;
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_false(file_exists(env.dir, "standby.signal"));
	assert_file_eq(env.dir, "pgha.conf", CONF_PRIMARY);
	/* and again: removing a missing standby.signal is fine */
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_false(file_exists(env.dir, "standby.signal"));

	/* a standby without a conninfo or slot (yet) */
	env.spec.standby = true;
	env.spec.primary_conninfo = NULL;
	env.spec.slot = NULL;
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_true(file_exists(env.dir, "standby.signal"));
	assert_file_eq(env.dir, "pgha.conf", CONF_PRIMARY); /* both empty */
	static const char *const files[] = {"postgresql.conf", "pgha.conf", "pg_hba.conf",
					    "standby.signal"};
	assert_dir_holds(env.dir, files, 4);
	free(ci);
}

static void test_write_config_include_once(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	for (int i = 0; i < 3; i++)
		if (pg_write_config(&env.spec, &e) != 0)
			fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "postgresql.conf", ORIG_CONF INCLUDE_LINE);

	/* no final newline: one is added before the include line */
	env_init(&env, "port = 1234");
	for (int i = 0; i < 2; i++)
		if (pg_write_config(&env.spec, &e) != 0)
			fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "postgresql.conf", "port = 1234\n" INCLUDE_LINE);

	/* an empty postgresql.conf */
	env_init(&env, "");
	for (int i = 0; i < 2; i++)
		if (pg_write_config(&env.spec, &e) != 0)
			fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "postgresql.conf", INCLUDE_LINE);

	/* already included (e.g. by a clone of the leader): left alone */
	env_init(&env, ORIG_CONF INCLUDE_LINE "work_mem = 1MB\n");
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "postgresql.conf", ORIG_CONF INCLUDE_LINE "work_mem = 1MB\n");

	/* no postgresql.conf: an error, nothing written */
	env_init(&env, NULL);
	assert_int_equal(pg_write_config(&env.spec, &e), -1);
	char want[1300];
	snprintf(want, sizeof(want), "cannot open \"%s/postgresql.conf\": No such file or directory",
		 env.dir);
	assert_string_equal(e.msg, want);
	assert_false(file_exists(env.dir, "pgha.conf"));
	assert_false(file_exists(env.dir, "pg_hba.conf"));
}

static void test_write_config_networks(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	env.spec.allowed_networks = "";
	env.spec.replication_user = "a_very_long_replication_user";
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "pg_hba.conf",
		       "# Written by pgha before every start: scram-sha-256 everywhere.\n"
		       "# TYPE  DATABASE     USER          ADDRESS            METHOD\n"
		       "local   all          all                              scram-sha-256\n"
		       "local   replication  a_very_long_replication_user                    "
		       "scram-sha-256\n");

	env.spec.replication_user = "rep";
	env.spec.allowed_networks = " ,0.0.0.0/0,, ::/0 ,";
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "pg_hba.conf",
		       "# Written by pgha before every start: scram-sha-256 everywhere.\n"
		       "# TYPE  DATABASE     USER          ADDRESS            METHOD\n"
		       "local   all          all                              scram-sha-256\n"
		       "local   replication  rep                              scram-sha-256\n"
		       "host    all          all           0.0.0.0/0          scram-sha-256\n"
		       "host    replication  rep           0.0.0.0/0          scram-sha-256\n"
		       "host    all          all           ::/0               scram-sha-256\n"
		       "host    replication  rep           ::/0               scram-sha-256\n");
}

/* Control characters in a parameter or in the conninfo: still one line each in pgha.conf. */
static void test_write_config_control_chars(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	static const struct pg_param odd[] = {
		{(char *)"log_line_prefix", (char *)"%m\t[%p]\n"},
		{(char *)"application_name", (char *)"x\x01y\r"},
	};
	env.spec.params = odd;
	env.spec.nparams = 2;
	env.spec.standby = true;
	env.spec.slot = "node1";
	char *ci = pg_conninfo("evil\nhost", 5432, "replicator", "/p", "node1", NULL, NULL);
	env.spec.primary_conninfo = ci;
	if (pg_write_config(&env.spec, &e) != 0)
		fail_msg("%s", e.msg);
	assert_file_eq(env.dir, "pgha.conf",
		       "# Written by pgha before every start. Do not edit: set options in the pgha\n"
		       "# config file ([parameters] section) instead.\n"
		       "max_wal_senders = '10'\n"
		       "max_replication_slots = '10'\n"
		       "wal_keep_size = '128MB'\n"
		       "wal_log_hints = 'on'\n"
		       "password_encryption = 'scram-sha-256'\n"
		       "hot_standby_feedback = 'on'\n"
		       "wal_sender_timeout = '10s'\n"
		       "wal_receiver_timeout = '10s'\n"
		       "wal_retrieve_retry_interval = '1s'\n"
		       "logging_collector = 'off'\n"
		       "log_line_prefix = '%m [%p] '\n"
		       "log_line_prefix = '%m\\t[%p]\\n'\n"
		       "application_name = 'x\\001y\\r'\n"
		       "listen_addresses = '10.0.0.1'\n"
		       "port = '5433'\n"
		       "unix_socket_directories = '/var/run/postgresql'\n"
		       "cluster_name = 'node1'\n"
		       "wal_level = 'replica'\n"
		       "hot_standby = 'on'\n"
		       "hba_file = '@DATA@/pg_hba.conf'\n"
		       "recovery_target_timeline = 'latest'\n"
		       "primary_conninfo = 'host=''evil\\nhost'' port=''5432'' user=''replicator'' "
		       "passfile=''/p'' application_name=''node1'' sslmode=''prefer'' "
		       "connect_timeout=''5'' keepalives_idle=''5'' keepalives_interval=''2'' "
		       "keepalives_count=''3'''\n"
		       "primary_slot_name = 'node1'\n");
	/* and PostgreSQL reads back the original values */
	char *conf = get_file(env.dir, "pgha.conf");
	char *v = conf_value(conf, "primary_conninfo");
	assert_non_null(v);
	assert_string_equal(v, ci);
	assert_conninfo(v, "host", "evil\nhost");
	free(v);
	v = conf_value(conf, "application_name");
	assert_non_null(v);
	assert_string_equal(v, "x\x01y\r");
	free(v);
	free(conf);
	free(ci);
}

static void test_update_conf_file(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	/* no pgha.conf yet: written */
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 1);
	assert_file_eq(env.dir, "pgha.conf", CONF_PRIMARY);
	/* same content: untouched */
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 0);
	struct stat before, after;
	char path[1200];
	snprintf(path, sizeof(path), "%s/pgha.conf", env.dir);
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 0);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino); /* not even rewritten */

	/* re-pointed at another leader: changed, then stable */
	char *ci1 = pg_conninfo("10.0.0.2", 5432, "replicator", "/p", "node1", NULL, NULL);
	char *ci2 = pg_conninfo("10.0.0.3", 5432, "replicator", "/p", "node1", NULL, NULL);
	env.spec.standby = true;
	env.spec.slot = "node1";
	env.spec.primary_conninfo = ci1;
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 1);
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 0);
	env.spec.primary_conninfo = ci2;
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 1);
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 0);
	char *conf = get_file(env.dir, "pgha.conf");
	char *v = conf_value(conf, "primary_conninfo");
	assert_string_equal(v, ci2);
	free(v);
	free(conf);
	/* pg_update_conf_file writes pgha.conf only */
	assert_false(file_exists(env.dir, "standby.signal"));
	assert_false(file_exists(env.dir, "pg_hba.conf"));
	assert_file_eq(env.dir, "postgresql.conf", ORIG_CONF);

	/* a changed parameter is a change too */
	env.spec.nparams = 1;
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 1);
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 0);
	/* edited by hand: rewritten */
	put_file(env.dir, "pgha.conf", "port = 1\n");
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 1);
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 0);
	assert_mode_0600(env.dir, "pgha.conf");

	/* an unwritable data directory: -1 with a message */
	env.node.data_dir = "/nonexistent/pgha-test/data";
	assert_int_equal(pg_update_conf_file(&env.spec, &e), -1);
	assert_non_null(strstr(e.msg, "/nonexistent/pgha-test/data/pgha.conf"));
	free(ci1);
	free(ci2);
}

/* [backup] on: archive_mode, archive_command and restore_command last, as PostgreSQL reads them back. */
static void test_conf_archive(void **state)
{
	struct conf_env env;
	struct pgha_err e;
	env_init(&env, ORIG_CONF);
	const char *ac = "'/usr/bin/pgbackrest' '--config=/w/it'\\''s/pgbackrest.conf' --stanza=pgha archive-push %p";
	const char *rc = "'/usr/bin/pgbackrest' '--config=/w/pgbackrest.conf' --stanza=pgha archive-get %f \"%p\"";
	env.spec.archive_command = ac;
	env.spec.restore_command = rc;
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 1);
	char *conf = get_file(env.dir, "pgha.conf");
	assert_non_null(strstr(conf, "primary_slot_name = ''\narchive_mode = 'on'\narchive_command = '"));
	char *v = conf_value(conf, "archive_command");
	assert_string_equal(v, ac);
	free(v);
	v = conf_value(conf, "restore_command");
	assert_string_equal(v, rc);
	free(v);
	free(conf);
	/* off again: not written at all (the file is what it was before [backup]) */
	env.spec.archive_command = NULL;
	env.spec.restore_command = NULL;
	assert_int_equal(pg_update_conf_file(&env.spec, &e), 1);
	assert_file_eq(env.dir, "pgha.conf", CONF_PRIMARY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_name),
		cmocka_unit_test(test_slot_name_distinct),
		cmocka_unit_test(test_slot_name_limits),
		cmocka_unit_test(test_slot_name_hash),
		cmocka_unit_test(test_slot_name_always_valid),
		cmocka_unit_test(test_slot_name_hash_not_forgeable),
		cmocka_unit_test(test_conninfo_exact),
		cmocka_unit_test(test_conninfo_roundtrip),
		cmocka_unit_test(test_conf_quote),
		cmocka_unit_test(test_conf_quote_control_chars),
		cmocka_unit_test(test_pgpass),
		cmocka_unit_test(test_write_config_primary),
		cmocka_unit_test(test_write_config_standby),
		cmocka_unit_test(test_write_config_tls),
		cmocka_unit_test(test_conninfo_tls),
		cmocka_unit_test(test_write_config_include_once),
		cmocka_unit_test(test_write_config_networks),
		cmocka_unit_test(test_write_config_control_chars),
		cmocka_unit_test(test_update_conf_file),
		cmocka_unit_test(test_conf_archive),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
