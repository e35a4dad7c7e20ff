/*
 * ctl_edit.c — `pgha ctl edit-config`: the dynamic config key as JSON in
 * $EDITOR (or read from a file or standard input), checked and normalized
 * like `ctl set` values (dyncfg_normalize), the changes shown, confirmed,
 * and written only if nobody changed the key since it was read.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/ctl_int.h"
#include "cluster/config_key.h"
#include "common/strbuf.h"
#include "common/util.h"

static int usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl edit-config [--apply FILE|-] [--force]\n"
		"\n"
		"Edit the cluster's dynamic config (JSON) in $EDITOR (default vi): when the editor\n"
		"exits, the config is checked (the keys and values of `pgha ctl set --help`, and\n"
		"\"pause\": true|false), the changes are shown and, once confirmed, written, unless\n"
		"someone changed it meanwhile (then nothing is written: run it again). A key set to\n"
		"null or deleted goes back to its default. Example:\n"
		"\n"
		"  {\"synchronous_mode\": \"on\", \"ttl\": 9, \"loop_wait\": \"500ms\",\n"
		"   \"postgresql\": {\"parameters\": {\"work_mem\": \"8MB\"}}}\n"
		"\n"
		"  --apply FILE  read the new config from FILE (- for standard input) instead of\n"
		"                an editor; so does a standard input that is not a terminal\n"
		"  --force       do not ask for confirmation\n");
	return out == stdout ? 0 : 2;
}

struct edit_args {
	const char *apply;      /* NULL: the editor */
};

static int read_stream(FILE *f, char **out, struct pgha_err *e)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_append(&sb, buf, n);
	if (ferror(f)) {
		sb_free(&sb);
		return err_set(e, "reading the new config: %s", strerror(errno));
	}
	*out = sb_steal(&sb);
	return 0;
}

/* Write the config to a 0600 temp file, run the editor on it, read it back. */
static int run_editor(const json_t *cfg, char **text, char *path, size_t pathlen, struct pgha_err *e)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(path, pathlen, "%s/pgha-config-XXXXXX.json", tmp && tmp[0] ? tmp : "/tmp");
	int fd = mkstemps(path, 5);   /* mode 0600 */
	if (fd < 0)
		return err_set(e, "cannot create a temporary file in %s: %s", tmp && tmp[0] ? tmp : "/tmp", strerror(errno));
	char *json = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len = json ? strlen(json) : 0;
	bool ok = json != NULL && write(fd, json, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
	free(json);
	close(fd);
	if (!ok)
		return err_set(e, "cannot write %s: %s", path, strerror(errno));
	const char *editor = getenv("EDITOR");
	char *cmd = xasprintf("%s \"$1\"", editor && editor[0] ? editor : "vi");
	/* The editor gets this terminal: stdin, stdout and stderr are inherited. */
	int code = 0, rc = 0;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "sh", path, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		rc = err_set(e, "cannot start the editor: %s", strerror(errno));
	else if (waitpid(pid, &code, 0) != pid)
		rc = err_set(e, "waiting for the editor: %s", strerror(errno));
	if (rc == 0 && (!WIFEXITED(code) || WEXITSTATUS(code) != 0))
		rc = err_set(e, "the editor (%s) failed; nothing changed", cmd);
	free(cmd);
	if (rc != 0)
		return -1;
	return read_file(path, text, NULL, e);
}

static int edit(json_t **cfg, void *arg, struct pgha_err *e)
{
	const struct edit_args *ea = arg;
	char *text = NULL;
	char path[512] = "";
	int rc = 1;
	if (ea->apply != NULL && strcmp(ea->apply, "-") != 0) {
		if (read_file(ea->apply, &text, NULL, e) != 0)
			return 1;
	} else if (ea->apply != NULL || !isatty(STDIN_FILENO)) {
		if (read_stream(stdin, &text, e) != 0)
			return 1;
	} else if (run_editor(*cfg, &text, path, sizeof(path), e) != 0) {
		if (path[0])
			unlink(path);
		return 1;
	}
	json_error_t jerr;
	json_t *in = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	json_t *out = NULL;
	if (in == NULL)
		err_set(e, "the new config is not JSON: line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
	else
		out = dyncfg_normalize(in, e);
	json_decref(in);
	free(text);
	if (out != NULL) {
		json_decref(*cfg);
		*cfg = out;
		rc = 0;
		if (path[0])
			unlink(path);
	} else {
		rc = 2;
		if (path[0])
			err_wrap(e, "nothing changed (your edit is kept in %s)", path);
	}
	return rc;
}

int ctl_cmd_edit_config(const struct ctl_target *t, int argc, char **argv)
{
	struct edit_args ea = {NULL};
	bool force = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0)
			force = true;
		else if (strcmp(argv[i], "--apply") == 0 && i + 1 < argc)
			ea.apply = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return usage(stdout);
		else {
			fprintf(stderr, "pgha ctl edit-config: unknown option \"%s\"\n", argv[i]);
			return usage(stderr);
		}
	}
	/* One attempt: what was edited started from one revision, and a newer one is not overwritten. */
	return ctl_config_change(t, "edit-config", edit, &ea, force, 1);
}
