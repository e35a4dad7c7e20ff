/*
 * users.c — the users file: lines of "user" "secret" (PgBouncer's
 * userlist.txt format); creds.c derives SCRAM verifiers for its passwords.
 */
#include "proxy/users.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

const struct user_entry *users_find(const struct proxy *px, const char *name)
{
	for (size_t i = 0; i < px->nusers; i++)
		if (strcmp(px->users[i].name, name) == 0)
			return &px->users[i];
	return NULL;
}

/* Users file: lines of "user" "secret" (PgBouncer's userlist.txt format). */
int users_load(struct proxy *px, struct pgha_err *e)
{
	char *text;
	size_t len;
	if (read_secret_text(px->cfg.auth_file, &text, &len, e) != 0)
		return err_wrap(e, "[auth] auth_file");
	int rc = 0, lineno = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == ';' || *p == '#' || *p == '\r')
			continue;
		char *field[2];
		for (int f = 0; f < 2; f++) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p != '"') {
				rc = err_set(e, "%s:%d: expected \"user\" \"password\"", px->cfg.auth_file, lineno);
				goto out;
			}
			char *start = ++p, *w = p;
			for (;; p++) {
				if (*p == '\0') {
					rc = err_set(e, "%s:%d: unterminated quote", px->cfg.auth_file, lineno);
					goto out;
				}
				if (*p == '"' && p[1] == '"') {   /* "" is a quote inside */
					*w++ = '"';
					p++;
					continue;
				}
				if (*p == '"')
					break;
				*w++ = *p;
			}
			*w = '\0';
			p++;
			field[f] = start;
		}
		px->users = xrealloc(px->users, (px->nusers + 1) * sizeof(*px->users));
		px->users[px->nusers] = (struct user_entry){.name = xstrdup(field[0]), .secret = xstrdup(field[1])};
		px->nusers++;
	}
out:
	secret_wipe_free(text, len);
	return rc;
}

void users_free_list(struct user_entry *users, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(users[i].name);
		secret_free(users[i].secret);
		secret_free(users[i].verifier);
	}
	free(users);
}

void users_free(struct proxy *px)
{
	users_free_list(px->users, px->nusers);
	px->users = NULL;
	px->nusers = 0;
}
