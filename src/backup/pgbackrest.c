#include "backup/pgbackrest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

bool pgbr_compress_ok(const char *type)
{
	static const char *const known[] = {"zstd", "lz4", "gz", "none"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(type, known[i]) == 0)
			return true;
	return false;
}

const char *pgbr_compress_name(const char *type)
{
	return strcmp(type, "zstd") == 0 ? "zst" : type;
}

int pgbr_path_check(const char *path, struct pgha_err *e)
{
	if (path[0] != '/')
		return err_set(e, "\"%s\": must be an absolute path", path);
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return err_set(e, "\"%s\": control characters cannot be passed to pgBackRest", path);
	size_t n = strlen(path);
	if (path[n - 1] == ' ')
		return err_set(e, "\"%s\": pgBackRest would drop the trailing blank", path);
	return 0;
}

char *pgbr_conf_path(const char *work_dir)
{
	return path_join(work_dir, "pgbackrest.conf");
}

void pgbr_render_conf(const struct pgbr_spec *s, struct strbuf *out)
{
	sb_puts(out, "# Written by pgha at every start from its [backup] section. Do not edit.\n");
	sb_puts(out, "[global]\n");
	sb_printf(out, "repo1-path=%s\n", s->repo_path);
	sb_printf(out, "repo1-retention-full=%d\n", s->retention_full);
	if (s->cipher_pass != NULL && s->cipher_pass[0] != '\0') {
		sb_puts(out, "repo1-cipher-type=aes-256-cbc\n");
		sb_printf(out, "repo1-cipher-pass=%s\n", s->cipher_pass);
	}
	sb_printf(out, "compress-type=%s\n", pgbr_compress_name(s->compress_type));
	sb_printf(out, "process-max=%d\n", s->process_max);
	sb_puts(out, "archive-async=y\n");
	sb_printf(out, "spool-path=%s/spool\n", s->work_dir);
	sb_printf(out, "archive-push-queue-max=%s\n", s->archive_push_queue_max);
	sb_printf(out, "log-path=%s/log\n", s->work_dir);
	sb_printf(out, "lock-path=%s/lock\n", s->work_dir);
	sb_puts(out, "log-level-console=warn\n");
	sb_puts(out, "log-level-file=info\n");
	sb_puts(out, "start-fast=y\n");
	sb_printf(out, "\n[%s]\n", s->stanza);
	sb_printf(out, "pg1-path=%s\n", s->pg_path);
	sb_printf(out, "pg1-port=%d\n", s->pg_port);
	sb_printf(out, "pg1-socket-path=%s\n", s->pg_socket_path);
	sb_printf(out, "pg1-user=%s\n", s->pg_user);
}

/* 'text' for /bin/sh ('\'' for a quote), with '%' doubled for PostgreSQL's %p/%f substitution. */
static void shell_quote(struct strbuf *sb, const char *s)
{
	sb_puts(sb, "'");
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			sb_puts(sb, "'\\''");
		else if (*p == '%')
			sb_puts(sb, "%%");
		else
			sb_append(sb, p, 1);
	}
	sb_puts(sb, "'");
}

static char *command(const char *bin, const char *work_dir, const char *stanza, const char *tail,
		     struct pgha_err *e)
{
	struct pgha_err sub;
	if (pgbr_path_check(bin, &sub) != 0) {
		err_set(e, "pgBackRest program %s", sub.msg);
		return NULL;
	}
	if (pgbr_path_check(work_dir, &sub) != 0) {
		err_set(e, "[backup] work_dir %s", sub.msg);
		return NULL;
	}
	struct strbuf sb = STRBUF_INIT;
	char *conf = pgbr_conf_path(work_dir);
	char *opt = xasprintf("--config=%s", conf);
	shell_quote(&sb, bin);
	sb_puts(&sb, " ");
	shell_quote(&sb, opt);
	/* The stanza is a cluster name: [A-Za-z0-9_.-], nothing the shell reads. */
	sb_printf(&sb, " --stanza=%s %s", stanza, tail);
	free(opt);
	free(conf);
	return sb_steal(&sb);
}

char *pgbr_archive_command(const char *bin, const char *work_dir, const char *stanza, struct pgha_err *e)
{
	return command(bin, work_dir, stanza, "archive-push %p", e);
}

char *pgbr_restore_command(const char *bin, const char *work_dir, const char *stanza, struct pgha_err *e)
{
	return command(bin, work_dir, stanza, "archive-get %f \"%p\"", e);
}

static int own_dir(const char *dir, const struct run_user *owner, struct pgha_err *e)
{
	if (mkdir_p(dir, 0700, e) != 0)
		return -1;
	if (chmod(dir, 0700) != 0)
		return err_set(e, "cannot chmod 0700 \"%s\": %s", dir, strerror(errno));
	if (owner && owner->set && geteuid() == 0 && chown(dir, owner->uid, owner->gid) != 0)
		return err_set(e, "cannot give \"%s\" to user %s: %s", dir, owner->name, strerror(errno));
	return 0;
}

int pgbr_write_conf(const struct pgbr_spec *s, const struct run_user *owner, struct pgha_err *e)
{
	static const char *const subdirs[] = {"spool", "log", "lock"};
	if (own_dir(s->work_dir, owner, e) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		char *d = path_join(s->work_dir, subdirs[i]);
		int rc = own_dir(d, owner, e);
		free(d);
		if (rc != 0)
			return -1;
	}
	struct strbuf text = STRBUF_INIT;
	pgbr_render_conf(s, &text);
	char *path = pgbr_conf_path(s->work_dir);
	bool chown_it = owner && owner->set && geteuid() == 0;
	int rc = write_file_atomic(path, text.data, text.len, 0600, chown_it ? owner->uid : (uid_t)-1,
				   chown_it ? owner->gid : (gid_t)-1, e);
	free(path);
	explicit_bzero(text.data, text.len);
	sb_free(&text);
	return rc;
}

void pgbr_read_tail(int fd, struct strbuf *out)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		sb_append(out, buf, (size_t)n);
		if (out->len > PGBR_TAIL_MAX) {
			size_t cut = out->len - PGBR_TAIL_MAX;
			memmove(out->data, out->data + cut, out->len - cut + 1);
			out->len -= cut;
		}
	}
}

void pgbr_reason(const char *t, char *buf, size_t len)
{
	const char *err = strstr(t, "ERROR:");
	if (err == NULL) {
		size_t n = strlen(t);
		while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == ' '))
			n--;
		const char *start = t + n;
		while (start > t && start[-1] != '\n')
			start--;
		snprintf(buf, len, "%.*s", (int)(t + n - start), start);
		return;
	}
	snprintf(buf, len, "%.*s", (int)strcspn(err, "\n"), err);
}
