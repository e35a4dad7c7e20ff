/*
 * unit_files.h — what unit tests that read files share: a private temporary
 * directory (mkdtemp; the group teardown removes it and its files, even after a
 * failed test), files written into it, and substring assertions.
 * Header-only: each test program is one .c file.
 */
#ifndef PGHA_TESTS_UNIT_FILES_H
#define PGHA_TESTS_UNIT_FILES_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char tmpdir[1024];

static inline int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/pgha-unit-XXXXXX",
		 base && base[0] ? base : "/tmp");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static inline int group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			char p[PATH_MAX + 256];
			snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	return rmdir(tmpdir) == 0 ? 0 : -1;
}

/* Write len bytes of content to a new file in tmpdir; path receives its name. */
static inline void write_conf_n(char *path, size_t pathlen, const char *content, size_t len)
{
	snprintf(path, pathlen, "%s/conf-XXXXXX", tmpdir);
	int fd = mkstemp(path);
	if (fd < 0)
		fail_msg("mkstemp: %s", strerror(errno));
	if (write(fd, content, len) != (ssize_t)len)
		fail_msg("write %s: %s", path, strerror(errno));
	close(fd);
}

static inline void write_conf(char *path, size_t pathlen, const char *content)
{
	write_conf_n(path, pathlen, content, strlen(content));
}

#define assert_contains(hay, needle)                                                    \
	do {                                                                             \
		const char *h_ = (hay), *n_ = (needle);                                  \
		if (strstr(h_, n_) == NULL)                                              \
			fail_msg("\"%s\"\n  does not contain\n\"%s\"", h_, n_);           \
	} while (0)

#define assert_not_contains(hay, needle)                                                \
	do {                                                                             \
		const char *h_ = (hay), *n_ = (needle);                                  \
		if (strstr(h_, n_) != NULL)                                              \
			fail_msg("\"%s\"\n  contains\n\"%s\"", h_, n_);                   \
	} while (0)

#endif
