#include "common/ini.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/util.h"

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

int ini_parse_text(const char *text, const char *where, ini_cb cb, void *arg, struct pgha_err *e)
{
	char *copy = xstrdup(text);
	char *section = xstrdup("");
	int rc = 0, lineno = 0;
	char *save = NULL;
	char *p = copy;
	while (p != NULL) {
		char *line = p;
		char *nl = strchr(p, '\n');
		if (nl) {
			*nl = '\0';
			p = nl + 1;
		} else {
			p = NULL;
		}
		lineno++;
		if (lineno == 1 && (unsigned char)line[0] == 0xEF && (unsigned char)line[1] == 0xBB &&
		    (unsigned char)line[2] == 0xBF)
			line += 3;   /* UTF-8 byte order mark */
		char *s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');
			if (end == NULL || *trim(end + 1) != '\0') {
				rc = err_set(e, "%s:%d: syntax error: a section header looks like [name]", where, lineno);
				break;
			}
			*end = '\0';
			free(section);
			section = xstrdup(trim(s + 1));
			continue;
		}
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			rc = err_set(e, "%s:%d: syntax error (expected \"[section]\" or \"name = value\")", where, lineno);
			break;
		}
		*eq = '\0';
		char *name = trim(s);
		char *value = trim(eq + 1);
		if (*name == '\0') {
			rc = err_set(e, "%s:%d: syntax error: a value without a name", where, lineno);
			break;
		}
		size_t vl = strlen(value);
		if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
			value[vl - 1] = '\0';
			value++;
		}
		if (section[0] == '\0') {
			rc = err_set(e, "%s:%d: \"%s\" is outside any [section]", where, lineno, name);
			break;
		}
		struct pgha_err sub;
		sub.msg[0] = '\0';
		if (cb(arg, lineno, section, name, value, &sub) != 0) {
			rc = err_set(e, "%s:%d: %s", where, lineno, sub.msg);
			break;
		}
	}
	(void)save;
	free(section);
	explicit_bzero(copy, strlen(text));
	free(copy);
	return rc;
}

int ini_parse_path(const char *path, ini_cb cb, void *arg, struct pgha_err *e)
{
	char *text;
	size_t len;
	if (read_file(path, &text, &len, e) != 0)
		return -1;
	int rc;
	if (memchr(text, '\0', len) != NULL)
		rc = err_set(e, "%s: not a text file (it holds NUL bytes)", path);
	else
		rc = ini_parse_text(text, path, cb, arg, e);
	free(text);
	return rc;
}
