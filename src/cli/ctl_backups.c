/*
 * ctl_backups.c — `pgha ctl backups [--json]`: what the repository holds, read
 * with `pgbackrest info` through the pgBackRest configuration the member of
 * `-c FILE` runs with (its [backup] section), as that member's run user: each
 * backup (label, type, start, duration, size, size in the repository, the WAL
 * it needs), the archived WAL range, and the recoverable window.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/info.h"
#include "backup/restore.h"
#include "cli/ctl_int.h"
#include "common/proc.h"
#include "common/strbuf.h"
#include "common/util.h"

#define INFO_TIMEOUT_MS 60000

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl -c NODE.conf backups [--json]\n"
		"\n"
		"The backups in the cluster's pgBackRest repository, oldest first: label, type (full,\n"
		"diff, incr), when it started and how long it took, the database's size and what the\n"
		"backup takes in the repository, the WAL segments a restore of it needs; then the\n"
		"archived WAL and the recoverable window (from the end of the oldest backup to the\n"
		"last archived WAL segment).\n"
		"\n"
		"It runs `pgbackrest info` with the configuration pgha wrote for the member whose\n"
		"config file -c names (its [backup] section), as that member's run user, so run it\n"
		"on a member's host.\n");
}

static void iso(int64_t s, char *buf, size_t len)
{
	time_t t = (time_t)s;
	struct tm tm;
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

static void bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
}

/* Run pgbackrest info; its JSON in *out. An error names what failed and shows pgBackRest's words. */
static int run_info(const struct ctl_target *t, struct strbuf *out, struct pgha_err *e)
{
	char *bin = find_program("pgbackrest");
	if (bin == NULL)
		return err_set(e, "pgbackrest is not installed here (not found in PATH)\n"
			       "HINT: run it on a member's host, where the agent runs pgbackrest (Debian: apt-get install pgbackrest)");
	char *conf = xasprintf("--config=%s", t->backup_conf), *stanza = xasprintf("--stanza=%s", t->cluster);
	const char *argv[] = {bin, conf, stanza, "--log-level-file=off", "--log-level-console=warn",
			      "info", "--output=json", NULL};
	struct run_user user = {0};
	int rc = -1, code = 0;
	/* As the member's run user, so nothing in the repository ends up owned by root. */
	if (geteuid() == 0 && t->run_as != NULL && run_user_lookup(t->run_as, &user, e) != 0)
		goto out;
	struct proc_spec spec = {.argv = argv, .user = &user, .out_fd = -1};
	if (proc_run(&spec, INFO_TIMEOUT_MS, out, &code, e) != 0) {
		err_wrap(e, "running %s info", bin);
		goto out;
	}
	if (code != 0) {
		char how[64];
		proc_describe_exit(code, how, sizeof(how));
		err_set(e, "%s info (%s) failed with %s: %s", bin, t->backup_conf, how, sb_str(out));
		goto out;
	}
	rc = 0;
out:
	free(bin);
	free(conf);
	free(stanza);
	return rc;
}

static json_t *backup_json(const struct backup_entry *b)
{
	char start[32], stop[32], lsn[2][32];
	iso(b->start_s, start, sizeof(start));
	iso(b->stop_s, stop, sizeof(stop));
	lsn_format(b->lsn_start, lsn[0], sizeof(lsn[0]));
	lsn_format(b->lsn_stop, lsn[1], sizeof(lsn[1]));
	return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:b}", "label", b->label,
			 "type", backup_type_name(b->type), "prior", b->prior[0] ? b->prior : NULL, "start", start,
			 "stop", stop, "size", (json_int_t)b->size, "delta", (json_int_t)b->delta, "repo_size",
			 (json_int_t)b->repo_size, "repo_delta", (json_int_t)b->repo_delta, "wal_start", b->wal_start,
			 "wal_stop", b->wal_stop, "lsn_start", lsn[0], "lsn_stop", lsn[1], "error", b->error);
}

static void print_json(const struct backup_info *bi)
{
	json_t *list = json_array();
	for (size_t i = 0; i < bi->nbackups; i++)
		json_array_append_new(list, backup_json(&bi->backups[i]));
	json_t *window = json_null();
	if (bi->nbackups > 0 && bi->wal_max[0]) {
		char from[32];
		iso(bi->backups[0].stop_s, from, sizeof(from));
		window = json_pack("{s:s, s:s, s:s}", "from", from, "from_backup", bi->backups[0].label, "to_wal",
				   bi->wal_max);
	}
	json_t *o = json_pack("{s:s, s:{s:i, s:s}, s:b, s:o, s:{s:s?, s:s?}, s:o}", "stanza", bi->stanza, "status",
			      "code", bi->status_code, "message", bi->status, "backup_running", bi->backup_running,
			      "backups", list, "archive", "min", bi->wal_min[0] ? bi->wal_min : NULL, "max",
			      bi->wal_max[0] ? bi->wal_max : NULL, "recoverable", window);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

static void print_table(const struct backup_info *bi, const char *conf)
{
	printf("Stanza %s: %s%s (pgBackRest configuration %s)\n", bi->stanza, bi->status,
	       bi->backup_running ? ", a backup is running" : "", conf);
	/* The repository could not be read: what it holds is unknown, not empty. */
	if (bi->status_code != 0 && bi->status_code != 2 && bi->nbackups == 0) {
		printf("What the repository holds is unknown until this is fixed (pgBackRest's log: %s).\n",
		       "the log/ directory beside that configuration");
		return;
	}
	if (bi->nbackups == 0) {
		printf("No backups yet.\n");
	} else {
		printf("\n%-36s %-4s  %-19s  %6s  %10s  %10s  %s\n", "LABEL", "TYPE", "STARTED (UTC)", "TOOK", "SIZE",
		       "IN REPO", "WAL NEEDED");
		for (size_t i = 0; i < bi->nbackups; i++) {
			const struct backup_entry *b = &bi->backups[i];
			char start[32], size[16], repo[16], took[16];
			format_utc(b->start_s, start, sizeof(start));
			bytes(b->size, size, sizeof(size));
			bytes(b->repo_delta, repo, sizeof(repo));
			snprintf(took, sizeof(took), "%llds", (long long)(b->stop_s - b->start_s));
			printf("%-36s %-4s  %-19s  %6s  %10s  %10s  %s..%s%s\n", b->label, backup_type_name(b->type), start,
			       took, size, repo, b->wal_start, b->wal_stop, b->error ? "  (page checksum errors)" : "");
		}
	}
	printf("\nArchived WAL: %s%s%s\n", bi->wal_min[0] ? bi->wal_min : "none", bi->wal_min[0] ? " .. " : "",
	       bi->wal_max);
	if (bi->nbackups > 0 && bi->wal_max[0]) {
		char from[32];
		format_utc(bi->backups[0].stop_s, from, sizeof(from));
		printf("Recoverable: from %s UTC (end of backup %s) to the last archived WAL segment %s\n", from,
		       bi->backups[0].label, bi->wal_max);
	} else {
		printf("Recoverable: nothing yet (a restore needs a backup and the WAL archived since)\n");
	}
}

int ctl_cmd_backups(const struct ctl_target *t, int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "pgha ctl backups: unknown option \"%s\"\n", argv[i]);
			return 2;
		}
	}
	if (t->backup_conf == NULL) {
		fprintf(stderr, "pgha ctl backups: no pgBackRest configuration to read the repository with\n"
				"HINT: run it on a member's host with -c NODE.conf, whose [backup] repo_path is set\n");
		return 2;
	}
	struct strbuf out = STRBUF_INIT;
	struct backup_info bi;
	struct pgha_err e;
	int rc = 1;
	if (run_info(t, &out, &e) != 0 || backup_info_decode(sb_str(&out), t->cluster, &bi, &e) != 0) {
		fprintf(stderr, "pgha ctl backups: %s\n", e.msg);
		goto done;
	}
	if (json)
		print_json(&bi);
	else
		print_table(&bi, t->backup_conf);
	if (bi.status_code == 1)
		fprintf(stderr, "HINT: the repository holds no stanza \"%s\": check that the [backup] repository is "
				"reachable from this host and what the leader's log says about stanza-create\n", t->cluster);
	rc = bi.status_code == 0 || (bi.status_code == 2 && bi.nbackups == 0) ? 0 : 1;
	backup_info_free(&bi);
done:
	sb_free(&out);
	return rc;
}

static void restore_usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha ctl -c NODE.conf restore --to TARGET --new-cluster NAME [--dry-run]\n"
		"       pgha ctl -c NODE.conf restore --to TARGET --in-place [--force] [--wait SEC | --no-wait] [--dry-run]\n"
		"       pgha ctl restore --cancel\n"
		"\n"
		"A new cluster NAME made from this cluster's backups, recovered to TARGET: latest (the\n"
		"end of the archived WAL), an LSN such as 0/5000028, or a time such as\n"
		"\"2026-12-03 14:02:00\" (UTC unless a zone follows: +01, -05:00). The running cluster is\n"
		"not touched. A target before the recoverable window (`pgha ctl backups`) is refused.\n"
		"\n"
		"On a `pgha up --backup` cluster it starts the new cluster at once with\n"
		"`pgha up --dir DIR-NAME --restore-from DIR --to TARGET` (Ctrl-C stops it). Elsewhere it\n"
		"prints the [bootstrap] section to give the new cluster's agents: their first member\n"
		"restores the backup the target needs, recovers to the target and promotes; the others\n"
		"clone it. --dry-run only checks the target.\n"
		"\n"
		"--in-place rolls THIS cluster back to TARGET: every transaction committed after it is\n"
		"lost. Every member stops PostgreSQL; the leader restores the backup with --delta (only\n"
		"the files that differ are copied), replays the archived WAL to the target and starts on a\n"
		"new timeline; the standbys rewind or re-clone onto it. It asks you to type the cluster's\n"
		"name (--force: no question), then follows the restore (--wait SEC, 3600 by default;\n"
		"--no-wait: return once asked). --cancel withdraws it while members are still stopping, or\n"
		"after a failure that touched nothing.\n");
}

int ctl_cmd_restore(const struct ctl_target *t, int argc, char **argv)
{
	const char *to = NULL, *name = NULL;
	bool dry = false, in_place = false, force = false, cancel = false;
	long wait_s = 3600;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
			to = argv[++i];
		} else if (strcmp(argv[i], "--in-place") == 0) {
			in_place = true;
		} else if (strcmp(argv[i], "--force") == 0) {
			force = true;
		} else if (strcmp(argv[i], "--cancel") == 0) {
			cancel = true;
		} else if (strcmp(argv[i], "--no-wait") == 0) {
			wait_s = 0;
		} else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			char *end;
			wait_s = strtol(argv[++i], &end, 10);
			if (*end != '\0' || wait_s < 1) {
				fprintf(stderr, "pgha ctl restore: --wait %s: give seconds (1 or more)\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--new-cluster") == 0 && i + 1 < argc) {
			name = argv[++i];
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			dry = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			restore_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "pgha ctl restore: unknown option \"%s\"\n", argv[i]);
			restore_usage(stderr);
			return 2;
		}
	}
	struct restore_target target;
	struct pgha_err e;
	if (cancel)
		return to || name || in_place ? (fprintf(stderr, "pgha ctl restore: --cancel takes no target\n"), 2)
					      : ctl_restore_cancel(t);
	if (to == NULL || (name == NULL) == !in_place) {
		fprintf(stderr, "pgha ctl restore: --to TARGET and one of --new-cluster NAME or --in-place are required\n");
		return 2;
	}
	if (restore_target_parse(to, &target, &e) != 0) {
		fprintf(stderr, "pgha ctl restore: %s\n", e.msg);
		return 2;
	}
	if (!in_place && (!member_name_valid(name) || strcmp(name, t->cluster) == 0)) {
		fprintf(stderr, "pgha ctl restore: --new-cluster %s: %s\n", name, strcmp(name, t->cluster) == 0 ?
			"that is this cluster: a restore makes a new one beside it" : "use 1 to 63 of A-Z a-z 0-9 _ - .");
		return 2;
	}
	if (t->backup_conf == NULL) {
		fprintf(stderr, "pgha ctl restore: no pgBackRest configuration to read the repository with\n"
				"HINT: run it on a member's host with -c NODE.conf, whose [backup] repo_path is set\n");
		return 2;
	}
	struct strbuf out = STRBUF_INIT;
	struct backup_info bi;
	int rc = 1;
	if (run_info(t, &out, &e) != 0 || backup_info_decode(sb_str(&out), t->cluster, &bi, &e) != 0) {
		fprintf(stderr, "pgha ctl restore: %s\n", e.msg);
		sb_free(&out);
		return 1;
	}
	const struct backup_entry *b = restore_pick_backup(&bi, &target, &e);
	if (b == NULL) {
		fprintf(stderr, "pgha ctl restore: %s\n", e.msg);
		goto done;
	}
	char end[32];
	format_utc(b->stop_s, end, sizeof(end));
	printf("Target %s: from backup %s (ended %s UTC), then the archived WAL up to the target\n", target.text,
	       b->label, end);
	rc = 0;
	if (dry)
		goto done;
	if (in_place) {
		rc = ctl_restore_in_place(t, &target, b, force, wait_s);
		goto done;
	}
	/* A `pgha up` directory: start the new cluster beside it, in the foreground. */
	char *cdir = t->config_path ? path_dirname(t->config_path) : NULL;
	char *state = cdir ? path_join(cdir, "up.conf") : NULL;
	if (state != NULL && path_exists(state)) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n > 0) {
			self[n] = '\0';
			char *newdir = xasprintf("%s-%s", cdir, name);
			printf("Starting the new cluster: %s up --dir %s --cluster %s --restore-from %s --to \"%s\"\n\n", self,
			       newdir, name, cdir, target.text);
			fflush(stdout);
			const char *args[] = {self, "up", "--dir", newdir, "--cluster", name, "--restore-from", cdir,
					      "--to", target.text, NULL};
			execv(self, (char *const *)args);
			fprintf(stderr, "pgha ctl restore: cannot run %s: %s\n", self, strerror(errno));
			free(newdir);
			rc = 1;
		}
	} else {
		printf("\nGive the new cluster's agents [cluster] name = %s, the same [backup] repository, and:\n\n"
		       "[bootstrap]\nmethod = restore\nrestore_stanza = %s\nrestore_target = %s\n\n"
		       "Its first member restores backup %s, recovers to the target and promotes; the others clone\n"
		       "it. It archives to the same repository as stanza %s. This cluster is not touched.\n",
		       name, t->cluster, target.text, b->label, name);
	}
	free(state);
	free(cdir);
done:
	backup_info_free(&bi);
	sb_free(&out);
	return rc;
}
