/* pgbackrest.c — pgBackRest's config text for one member, the archive commands, writing the file. */
#include "backup/pgbackrest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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

int pgbr_value_check(const char *value, struct pgha_err *e)
{
	if (value[0] == '\0')
		return err_set(e, "must not be empty");
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '=')
			return err_set(e, "\"%s\": blanks, control characters and '=' cannot be passed to pgBackRest", value);
	return 0;
}

/* The S3 error codes a misconfigured repository answers with, in words that say what to fix. */
static const struct {
	const char *code;
	const char *words;
} s3_codes[] = {
	{"NoSuchBucket", "bucket missing"},
	{"SignatureDoesNotMatch", "secret key refused, check [backup] s3_key_secret_file"},
	{"InvalidAccessKeyId", "access key unknown to the server, check [backup] s3_key_file"},
	{"AccessDenied", "access denied, the key may not use this bucket"},
	{"AuthorizationHeaderMalformed", "request refused, check [backup] s3_region"},
	{"PermanentRedirect", "the bucket is in another region or needs another endpoint"},
};

/* pgBackRest's words for a server it could not reach, or whose certificate it refused. */
static const struct {
	const char *text;
	const char *words;
} s3_net[] = {
	{"unable to connect to '", "endpoint unreachable"},
	{"unable to get address for '", "endpoint unreachable"},
	{"unable to verify certificate", "TLS certificate refused"},
	{"unable to find hostname '", "TLS certificate refused"},
	{"unable to negotiate TLS", "TLS failed"},
};

void pgbr_s3_cause(const char *out, char *buf, size_t len)
{
	buf[0] = '\0';
	const char *c = strstr(out, "<Code>");
	if (c != NULL) {
		c += 6;
		int n = (int)strcspn(c, "<\n");
		for (size_t i = 0; i < sizeof(s3_codes) / sizeof(s3_codes[0]); i++)
			if ((size_t)n == strlen(s3_codes[i].code) && strncmp(c, s3_codes[i].code, (size_t)n) == 0) {
				snprintf(buf, len, "%s (S3 %s)", s3_codes[i].words, s3_codes[i].code);
				return;
			}
		snprintf(buf, len, "S3 error %.*s", n, c);
		return;
	}
	for (size_t i = 0; i < sizeof(s3_net) / sizeof(s3_net[0]); i++) {
		const char *t = strstr(out, s3_net[i].text);
		if (t != NULL) {
			snprintf(buf, len, "%s: %.*s", s3_net[i].words, (int)strcspn(t, "\n"), t);
			return;
		}
	}
	/* The answer to a HEAD has no body, so no code: the status alone. */
	if (strstr(out, "HTTP request failed with 403") != NULL)
		snprintf(buf, len, "access refused (HTTP 403), check [backup] s3_key_file, s3_key_secret_file and the "
			 "key's rights on the bucket");
}

void pgbr_redact(const char *text, const char *secret, struct strbuf *out)
{
	size_t n = secret != NULL ? strlen(secret) : 0;
	const char *at;
	while (n > 0 && (at = strstr(text, secret)) != NULL) {
		sb_append(out, text, (size_t)(at - text));
		sb_puts(out, "<redacted>");
		text = at + n;
	}
	sb_puts(out, text);
}

char *pgbr_conf_path(const char *work_dir)
{
	return path_join(work_dir, "pgbackrest.conf");
}

static void render_pg(const struct pgbr_spec *s, const char *stanza, struct strbuf *out)
{
	sb_printf(out, "\n[%s]\n", stanza);
	sb_printf(out, "pg1-path=%s\n", s->pg_path);
	sb_printf(out, "pg1-port=%d\n", s->pg_port);
	sb_printf(out, "pg1-socket-path=%s\n", s->pg_socket_path);
	sb_printf(out, "pg1-user=%s\n", s->pg_user);
}

void pgbr_render_conf(const struct pgbr_spec *s, struct strbuf *out)
{
	sb_puts(out, "# Written by pgha at every start from its [backup] section. Do not edit.\n");
	sb_puts(out, "[global]\n");
	const struct pgbr_s3 *s3 = s->s3;
	if (s3 != NULL) {
		sb_puts(out, "repo1-type=s3\n");
		sb_printf(out, "repo1-s3-bucket=%s\n", s3->bucket);
		sb_printf(out, "repo1-s3-endpoint=%s\n", s3->endpoint);
		if (s3->port > 0)
			sb_printf(out, "repo1-storage-port=%d\n", s3->port);
		sb_printf(out, "repo1-s3-region=%s\n", s3->region);
		sb_printf(out, "repo1-s3-key=%s\n", s3->key);
		sb_printf(out, "repo1-s3-key-secret=%s\n", s3->key_secret);
		sb_printf(out, "repo1-s3-uri-style=%s\n", s3->uri_style);
		if (!s3->verify_tls)
			sb_puts(out, "repo1-storage-verify-tls=n\n");
		if (s3->ca_file != NULL && s3->ca_file[0] != '\0')
			sb_printf(out, "repo1-storage-ca-file=%s\n", s3->ca_file);
	}
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
	render_pg(s, s->stanza, out);
	/* A standby cluster's archive-get of the primary's stanza checks this data directory against it. */
	if (s->archive_stanza != NULL && s->archive_stanza[0] != '\0')
		render_pg(s, s->archive_stanza, out);
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

char *pgbr_restore_command(const char *timeout_bin, int timeout_s, const char *bin, const char *work_dir,
			   const char *stanza, struct pgha_err *e)
{
	char *cmd = command(bin, work_dir, stanza, "archive-get %f \"%p\"", e);
	struct pgha_err sub;
	if (cmd == NULL || timeout_bin == NULL)
		return cmd;
	if (pgbr_path_check(timeout_bin, &sub) != 0) {
		free(cmd);
		err_set(e, "timeout program %s", sub.msg);
		return NULL;
	}
	struct strbuf sb = STRBUF_INIT;
	shell_quote(&sb, timeout_bin);
	sb_printf(&sb, " %d %s", timeout_s, cmd);
	free(cmd);
	return sb_steal(&sb);
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

/* The quoted name after 'after' in t (printable characters only, at most len - 1), or "". */
static void quoted_after(const char *t, const char *after, char *buf, size_t len)
{
	const char *p = strstr(t, after);
	size_t n = 0;
	if (p != NULL)
		for (p += strlen(after); *p && *p != '\'' && n + 1 < len; p++)
			buf[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	buf[n] = '\0';
}

/*
 * pgBackRest's own words for a file it could not use: "FormatError: missing
 * '=' in key/value at line 6", cut before the damaged bytes it quotes (and
 * before ", expected '...' but found '...'").
 */
static void damage_words(const char *d, char *buf, size_t len)
{
	size_t n = 0;
	const char *line = strstr(d, "at line ");
	const char *end = line != NULL ? line + 8 + strspn(line + 8, "0123456789") : d + strcspn(d, "\n");
	for (const char *p = d; p < end && *p && *p != '\n' && *p != ',' && n + 1 < len; p++)
		buf[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	buf[n] = '\0';
}

/* The directory of the stanza a repository file is in (cut in place), not the long name of a temporary file. */
static void stanza_dir(char *file)
{
	char *at = strstr(file, "/backup/");
	if (at == NULL)
		at = strstr(file, "/archive/");
	if (at != NULL) {
		at = strchr(at + 1, '/') + 1;
		at[strcspn(at, "/")] = '\0';
	}
}

/* Less than 1 MiB (or 0.5 %) left where dir is: too little for a file pgBackRest writes. */
static bool nearly_full(const char *dir)
{
	struct statvfs st;
	if (dir[0] != '/' || statvfs(dir, &st) != 0 || st.f_blocks == 0)
		return false;
	unsigned long long avail = (unsigned long long)st.f_bavail * st.f_frsize;
	unsigned long long size = (unsigned long long)st.f_blocks * st.f_frsize;
	return avail < (1ULL << 20) || avail < size / 200;
}

void pgbr_local_cause(const char *t, char *buf, size_t len)
{
	char file[160];
	buf[0] = '\0';
	quoted_after(t, "unable to write '", file, sizeof(file));
	stanza_dir(file);
	/*
	 * After its retries, pgBackRest's last words on a file it could not write
	 * are "[FileWriteError] on retry after 15000ms", without the errno: the
	 * file system itself says whether it is full.
	 */
	if (strstr(t, "No space left on device") != NULL || (file[0] && strstr(t, "[FileWriteError] on retry") &&
							       nearly_full(file))) {
		snprintf(buf, len, "no space left on device in %s; free space there (or lower [backup] retention_full)",
			 file[0] ? file : "the repository");
		return;
	}
	quoted_after(t, "unable to load info file '", file, sizeof(file));
	if (file[0] == '\0')
		quoted_after(t, "invalid checksum '", file, sizeof(file));
	/* Read without a passphrase, an encrypted file starts with OpenSSL's "Salted__". */
	if (strstr(t, "Salted__") != NULL) {
		snprintf(buf, len, "%s is encrypted; set [backup] cipher_pass_file to the passphrase the repository "
			 "was created with", file[0] ? file : "the repository");
		return;
	}
	if (strstr(t, "cipher header missing") != NULL) {
		snprintf(buf, len, "%s is not encrypted (or is empty) but [backup] cipher_pass_file is set: the "
			 "repository was created without a passphrase, or the file is damaged",
			 file[0] ? file : "the repository");
		return;
	}
	/* Decrypted with another passphrase, the text is noise from its first line on. */
	if (strstr(t, "CryptoError") != NULL || strstr(t, "key/value found outside of section at line 1:") != NULL) {
		snprintf(buf, len, "cannot decrypt %s: [backup] cipher_pass_file does not hold the passphrase the "
			 "repository was created with (or the file is damaged)", file[0] ? file : "the repository");
		return;
	}
	const char *d = strstr(t, "FormatError: ");
	if (d == NULL)
		d = strstr(t, "ChecksumError: ");
	/* verify's line names the file, and that is all it says. */
	if (d == NULL && strstr(t, "invalid checksum '") != NULL)
		d = "invalid checksum";
	if (d != NULL) {
		char words[120];
		damage_words(d, words, sizeof(words));
		/* Both copies of an info file are damaged (pgBackRest reads the .copy when one is). */
		if (strstr(t, "unable to load info file") != NULL)
			snprintf(buf, len, "%s and its .copy are damaged (%s); put back a sound copy or set a new "
				 "[backup] repo_path", file, words);
		else
			snprintf(buf, len, "%s is damaged (%s); `pgbackrest verify` lists every damaged file; take "
				 "a new full backup", file[0] ? file : "a repository file", words);
	}
}

void pgbr_reason(const char *t, char *buf, size_t len)
{
	/* A cause names the file and what to do; pgBackRest's own lines stay in its log. */
	pgbr_local_cause(t, buf, len);
	if (buf[0] != '\0')
		return;
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

int pgbr_backup_percent(const char *t)
{
	const char *end = NULL;
	for (const char *p = strstr(t, "%)"); p != NULL; p = strstr(p + 2, "%)"))
		end = p;
	if (end == NULL)
		return -1;
	const char *start = end;
	while (start > t && (start[-1] == '.' || (start[-1] >= '0' && start[-1] <= '9')))
		start--;
	if (start == end)
		return -1;
	int pct = atoi(start);
	return pct < 0 ? 0 : pct > 100 ? 100 : pct;
}

void pgbr_backup_summary(const char *t, char *label, size_t label_len, char *size, size_t size_len)
{
	const char *l = strstr(t, "new backup label = ");
	const char *z = strstr(t, "backup size = ");
	label[0] = size[0] = '\0';
	if (l != NULL)
		snprintf(label, label_len, "%.*s", (int)strcspn(l + 19, " \r\n"), l + 19);
	if (z != NULL)
		snprintf(size, size_len, "%.*s", (int)strcspn(z + 14, ", \r\n"), z + 14);
}

int pgbr_parse_version(const char *t)
{
	int major, minor;
	const char *p = strstr(t, "pgBackRest ");
	if (p == NULL || sscanf(p + 11, "%d.%d", &major, &minor) != 2 || major < 1 || minor < 0 || minor > 99)
		return -1;
	return major * 100 + minor;
}
