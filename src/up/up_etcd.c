/*
 * up_etcd.c — the etcd of `pgha up`: one member (the default, as before
 * --etcd) or a cluster of 3 or 5 on loopback, each with its own client and
 * peer ports, data directory and log, started with a static
 * --initial-cluster and authentication on.
 *   1 member:  name pgha-up, DIR/etcd/,   DIR/logs/etcd.log
 *   N members: name etcdK,   DIR/etcdK/,  DIR/logs/etcdK.log
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "dcs/etcd.h"
#include "up/up_int.h"

volatile sig_atomic_t up_stop;

int up_open_log(struct up *u, const char *name, struct pgha_err *e)
{
	char *path = xasprintf("%s/logs/%s", u->dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		err_set(e, "cannot open %s: %s", path, strerror(errno));
	free(path);
	return fd;
}

const char *up_scheme(const struct up *u)
{
	return u->st.tls ? "https" : "http";
}

void up_etcd_client_tls(const struct up *u, struct etcd_opts *o)
{
	if (!u->st.tls)
		return;
	o->ca_file = u->tls_ca;
	o->cert_file = u->tls_client_crt;
	o->key_file = u->tls_client_key;
}

void up_etcd_urls(struct up *u)
{
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < u->st.etcd_members; i++)
		sb_printf(&sb, "%s%s://127.0.0.1:%d", i ? "," : "", up_scheme(u), u->st.etcd_client_port[i]);
	free(u->etcd_urls);
	u->etcd_urls = sb_steal(&sb);
}

void up_etcd_member_names(const struct up *u, int i, char *name, size_t nlen, char *log, size_t llen)
{
	if (u->st.etcd_members == 1) {
		snprintf(name, nlen, "pgha-up");
		snprintf(log, llen, "etcd.log");
	} else {
		snprintf(name, nlen, "etcd%d", i + 1);
		snprintf(log, llen, "etcd%d.log", i + 1);
	}
}

static int spawn_member(struct up *u, int i, const char *initial, struct pgha_err *e)
{
	char name[16], logname[32];
	up_etcd_member_names(u, i, name, sizeof(name), logname, sizeof(logname));
	int fd = up_open_log(u, logname, e);
	if (fd < 0)
		return -1;
	char *data = u->st.etcd_members == 1 ? path_join(u->dir, "etcd") : xasprintf("%s/%s", u->dir, name);
	char *client = xasprintf("%s://127.0.0.1:%d", up_scheme(u), u->st.etcd_client_port[i]);
	char *peer = xasprintf("%s://127.0.0.1:%d", up_scheme(u), u->st.etcd_peer_port[i]);
	char *crt = xasprintf("%s/secrets/tls/etcd.crt", u->dir), *key = xasprintf("%s/secrets/tls/etcd.key", u->dir);
	const char *argv[40] = {u->etcd_bin, "--name", name, "--data-dir", data,
			      "--listen-client-urls", client, "--advertise-client-urls", client,
			      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			      /* Read on the first start only: later ones use the data directory. */
			      "--initial-cluster", initial, "--initial-cluster-state", "new",
			      "--initial-cluster-token", "pgha-up",
			      /*
			       * Each login (/v3/auth/authenticate) costs a bcrypt: at etcd's default cost
			       * 10, agents and the proxy starting together time out. The passwords
			       * are 32 random characters: a low cost loses nothing.
			       */
			      "--bcrypt-cost", "4", NULL};
	if (u->st.tls) {
		/* Clients and peers: TLS, and a certificate of the cluster's CA (then etcd's user and password). */
		const char *tls[] = {"--cert-file", crt, "--key-file", key, "--trusted-ca-file", u->tls_ca,
				     "--client-cert-auth", "--peer-cert-file", crt, "--peer-key-file", key,
				     "--peer-trusted-ca-file", u->tls_ca, "--peer-client-cert-auth", NULL};
		size_t n = 0;
		while (argv[n] != NULL)
			n++;
		for (size_t k = 0; tls[k] != NULL && n + 1 < sizeof(argv) / sizeof(argv[0]); k++)
			argv[n++] = tls[k];
		argv[n] = NULL;
	}
	struct proc_spec spec = {.argv = argv, .out_fd = fd, .new_session = true};
	int rc = proc_spawn(&spec, &u->etcd_pid[i], e);
	free(crt);
	free(key);
	close(fd);
	free(data);
	free(client);
	free(peer);
	return rc;
}

/* Member i answers a read (which needs the cluster's quorum), before deadline. */
static int wait_member(struct up *u, int i, const char *root_pw, int64_t deadline, struct pgha_err *e)
{
	char url[64], name[16], logname[32];
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d", up_scheme(u), u->st.etcd_client_port[i]);
	up_etcd_member_names(u, i, name, sizeof(name), logname, sizeof(logname));
	struct etcd_opts o = {.endpoints = url, .request_timeout_ms = 500, .deadline_ms = 1000,
			      .username = root_pw ? "root" : NULL, .password = root_pw};
	up_etcd_client_tls(u, &o);
	struct etcd_client *c = etcd_new(&o, e);
	if (c == NULL)
		return -1;
	int rc = -1;
	while (now_ms() < deadline && !up_stop) {
		struct etcd_kvs kvs = {0};
		if (etcd_get(c, "/pgha-up-probe", &kvs, e) == 0) {
			etcd_kvs_free(&kvs);
			rc = 0;
			break;
		}
		int code;
		if (proc_poll(u->etcd_pid[i], &code) != 0) {
			u->etcd_pid[i] = 0;
			err_set(e, "etcd member %s exited at once; see %s/logs/%s", name, u->dir, logname);
			break;
		}
		sleep_ms(100);
	}
	if (rc != 0 && u->etcd_pid[i] > 0)
		err_wrap(e, "etcd member %s did not answer within 30 s (see %s/logs/%s)", name, u->dir, logname);
	etcd_free(c);
	return rc;
}

int up_etcd_start(struct up *u, struct pgha_err *e)
{
	struct strbuf initial = STRBUF_INIT;
	for (int i = 0; i < u->st.etcd_members; i++) {
		char name[16], logname[32];
		up_etcd_member_names(u, i, name, sizeof(name), logname, sizeof(logname));
		sb_printf(&initial, "%s%s=%s://127.0.0.1:%d", i ? "," : "", name, up_scheme(u), u->st.etcd_peer_port[i]);
	}
	int rc = 0;
	for (int i = 0; i < u->st.etcd_members && rc == 0; i++)
		rc = spawn_member(u, i, initial.data, e);
	sb_free(&initial);
	if (rc != 0)
		return -1;
	/* Wait until every member answers (as root once authentication is on: it may be from an earlier run). */
	char *root_pw = NULL;
	if (u->st.etcd_auth) {
		char *path = xasprintf("%s/secrets/etcd-root.password", u->dir);
		rc = read_secret_file(path, &root_pw, e);
		free(path);
		if (rc != 0)
			return -1;
	}
	int64_t deadline = now_ms() + 30000;
	/* Refused connections are expected until etcd listens: keep them out of the output. */
	enum log_level saved = log_min_level;
	log_set_level(LOG_FATAL);
	for (int i = 0; i < u->st.etcd_members && rc == 0; i++)
		rc = wait_member(u, i, root_pw, deadline, e);
	/* Only user pgha, with its password, may read or write the cluster's keys. */
	if (rc == 0 && root_pw != NULL) {
		struct etcd_opts o = {.endpoints = u->etcd_urls, .request_timeout_ms = 1000, .deadline_ms = 5000,
				      .username = "root", .password = root_pw};
		up_etcd_client_tls(u, &o);
		struct etcd_client *c = etcd_new(&o, e);
		rc = c ? etcd_auth_setup(c, root_pw, UP_ETCD_USER, u->etcd_password, "/pgha/", e) : -1;
		if (rc != 0)
			err_wrap(e, "turning on etcd authentication");
		etcd_free(c);
	}
	/* Until here: the first run's "auth not enabled yet" is expected too. */
	log_set_level(saved);
	secret_free(root_pw);
	return rc;
}

void up_etcd_poll(struct up *u)
{
	for (int i = 0; i < u->st.etcd_members; i++) {
		int c;
		if (u->etcd_pid[i] > 0 && proc_poll(u->etcd_pid[i], &c) == 1) {
			char name[16], logname[32];
			up_etcd_member_names(u, i, name, sizeof(name), logname, sizeof(logname));
			fprintf(stderr, "pgha up: etcd member %s exited (code %d); see %s/logs/%s\n", name, c,
				u->dir, logname);
			u->etcd_pid[i] = 0;
		}
	}
}

void up_stop_pid(pid_t pid, const char *what, int timeout_ms)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	int code;
	if (proc_wait(pid, timeout_ms, &code) == 0) {
		fprintf(stderr, "  %s did not stop within %d s: killing it\n", what, timeout_ms / 1000);
		kill(pid, SIGKILL);
		proc_wait(pid, 5000, &code);
	}
}

void up_etcd_stop(struct up *u)
{
	/* All at once: a member waiting for its peers to stop would only slow the others. */
	for (int i = 0; i < u->st.etcd_members; i++)
		if (u->etcd_pid[i] > 0)
			kill(u->etcd_pid[i], SIGTERM);
	for (int i = 0; i < u->st.etcd_members; i++) {
		char name[16], logname[32], what[32];
		up_etcd_member_names(u, i, name, sizeof(name), logname, sizeof(logname));
		snprintf(what, sizeof(what), "etcd member %s", name);
		up_stop_pid(u->etcd_pid[i], what, 30000);
		u->etcd_pid[i] = 0;
	}
}
