/*
 * proxy.c — `pgha proxy`: setup, the users file, listeners, the epoll loop,
 * signals, the once-a-second tick, and a graceful shutdown.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "proxy/client.h"
#include "proxy/creds.h"
#include "proxy/hold.h"
#include "proxy/metrics.h"
#include "proxy/objects.h"
#include "proxy/pool.h"
#include "proxy/relay.h"
#include "proxy/reload.h"
#include "proxy/server.h"
#include "proxy/split.h"
#include "proxy/server_tls.h"
#include "proxy/tls.h"
#include "proxy/users.h"

static int listen_on(const char *addr, struct pgha_err *e)
{
	char host[256], port[16];
	int p;
	if (parse_host_port(addr, host, sizeof(host), &p, e) != 0)
		return -1;
	snprintf(port, sizeof(port), "%d", p);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &ai);
	if (rc != 0)
		return err_set(e, "%s: %s", addr, gai_strerror(rc));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
		err_set(e, "cannot listen on %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/*
 * Listen on the unix socket path, replacing a stale one (a file nobody
 * listens on: left by a proxy that was killed) but nothing else. -1: e says
 * why.
 */
static int listen_unix(const char *path, unsigned mode, struct pgha_err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);   /* fits: proxy_config_load checked */
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(e, "%s exists and is not a socket: not replaced\nHINT: remove it, or "
				       "set another [proxy] unix_socket_dir", path);
		/* Non-blocking: a listener with a full backlog answers EAGAIN, and is in use too. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int rc = probe < 0 ? -1 : connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		int err = errno;
		if (probe >= 0)
			close(probe);
		if (rc == 0 || err == EAGAIN)
			return err_set(e, "%s is in use: another proxy or a PostgreSQL listens on it\nHINT: stop "
				       "it, or choose another port or [proxy] unix_socket_dir", path);
		if (err != ECONNREFUSED)
			return err_set(e, "%s: cannot tell whether it is in use: %s", path, strerror(err));
		if (unlink(path) != 0)
			return err_set(e, "cannot remove the stale socket %s: %s", path, strerror(errno));
		log_info("replaced the stale socket %s (nothing listened on it)", path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		err_set(e, "cannot listen on the unix socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (chmod(path, mode) != 0 || listen(fd, 4096) != 0) {
		err_set(e, "cannot listen on the unix socket %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

static void accept_all(struct proxy *px, int lfd, bool ro)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		client_accept(px, fd, ro);
	}
}

static void tick(struct proxy *px)
{
	for (struct link *l = px->clients_idle.next; l != &px->clients_idle;) {
		struct client *c = link_entry(l, struct client, node);
		l = l->next;
		client_check_timeouts(c);
	}
	client_report_refused(px);
	/*
	 * Clients idle for a second give their buffers back: 10,000 idle clients
	 * then cost little more than their struct (a busy one keeps its buffers).
	 */
	size_t freed = 0;
	for (struct link *l = px->clients_idle.next; l != &px->clients_idle; l = l->next) {
		struct client *c = link_entry(l, struct client, node);
		if (c->state != CL_IDLE || px->now_ms - c->since_ms < 1000)
			continue;
		if (c->in.data != NULL && pbuf_len(&c->in) == 0) {
			freed += c->in.cap;
			pbuf_free(&c->in);
		}
		if (c->out.data != NULL && c->out.len == c->out_off) {
			freed += c->out.cap;
			sb_free(&c->out);
			c->out_off = 0;
		}
	}
	/* Freed heap chunks stay resident until trimmed: give big amounts back to the system. */
	freed += px->freed_bytes;   /* buffers shrunk after large messages (relay.c) */
	px->freed_bytes = 0;
	if (freed > 4 * 1024 * 1024)
		malloc_trim(0);
	for (struct link *l = px->pools.next; l != &px->pools; l = l->next)
		client_pool_tick(link_entry(l, struct pool, node));
	creds_tick(px);
	client_wake_lookups(px);
	if (hold_tick(px))
		client_resume_waiting(px);
	metrics_render(px);
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: pgha proxy -c FILE\n"
		"\n"
		"The clients' single endpoint: PostgreSQL protocol, connection pooling\n"
		"(transaction or session), writes to the leader, reads to standbys, and\n"
		"new work held during a failover instead of failed. Learns the cluster by\n"
		"watching etcd.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   the proxy's config file (required)\n"
		"      --check         validate the config and the users file, then exit\n"
		"  -h, --help          this help, with every config option\n"
		"\nConfig file options:\n");
	config_print_help(&proxy_config_table, out);
}

/* --check: besides the config, users and TLS files, what the start reads: auth_user's and etcd's passwords. */
static int check_config(struct proxy *px, const char *path)
{
	struct pgha_err e;
	char *etcd_pw = NULL;
	int rc = creds_start(px, true, &e);
	if (rc == 0 && px->cfg.etcd_username[0] &&
	    (rc = read_secret_file(px->cfg.etcd_password_file, &etcd_pw, &e)) != 0)
		err_wrap(&e, "[etcd] password_file");
	if (rc != 0)
		fprintf(stderr, "pgha proxy: %s\n", e.msg);
	else
		printf("%s: OK (%zu users)\n", path, px->nusers);
	secret_free(etcd_pw);
	creds_stop(px);
	users_free(px);
	tls_shutdown(px);
	server_tls_shutdown(px);
	proxy_config_free(&px->cfg);
	return rc != 0 ? 2 : 0;
}

/* Room for max_client_conn clients, max_preauth_conn logging in, and their servers. */
static void raise_fd_limit(const struct proxy *px)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)px->cfg.max_client_conn + (rlim_t)px->cfg.max_preauth_conn +
		      (rlim_t)px->cfg.pool_size * 64 + 64;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		log_warn("open files limited to %llu: fewer than max_client_conn = %d clients fit "
			 "(HINT: raise the hard limit, ulimit -Hn)",
			 (unsigned long long)rl.rlim_cur, px->cfg.max_client_conn);
}

/* The port of listen as a unix socket too, when unix_socket_dir is set. -1: logged. */
static int open_unix(struct proxy *px, struct fdtag *t, enum fd_kind kind, const char *listen)
{
	t->kind = kind;
	t->fd = -1;
	if (px->cfg.unix_socket_dir[0] == '\0' || listen[0] == '\0')
		return 0;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct pgha_err e;
	proxy_unix_socket_path(&px->cfg, listen, path, sizeof(path));
	t->fd = listen_unix(path, px->cfg.unix_socket_mode, &e);
	if (t->fd < 0) {
		log_fatal("[proxy] unix_socket_dir: %s", e.msg);
		return -1;
	}
	proxy_watch(px, t, EPOLLIN);
	log_info("listening on unix socket %s (%s)", path, kind == FD_LISTEN_RO ? "read-only" : "read-write");
	return 0;
}

static int open_listeners(struct proxy *px)
{
	struct pgha_err e;
	px->listen_rw.kind = FD_LISTEN_RW;
	px->listen_rw.fd = listen_on(px->cfg.listen, &e);
	if (px->listen_rw.fd < 0) {
		log_fatal("[proxy] listen: %s", e.msg);
		return -1;
	}
	proxy_watch(px, &px->listen_rw, EPOLLIN);
	if (px->cfg.listen_ro[0]) {
		px->listen_ro.kind = FD_LISTEN_RO;
		px->listen_ro.fd = listen_on(px->cfg.listen_ro, &e);
		if (px->listen_ro.fd < 0) {
			log_fatal("[proxy] listen_ro: %s", e.msg);
			return -1;
		}
		proxy_watch(px, &px->listen_ro, EPOLLIN);
	}
	if (open_unix(px, &px->unix_rw, FD_LISTEN_RW, px->cfg.listen) != 0 ||
	    open_unix(px, &px->unix_ro, FD_LISTEN_RO, px->cfg.listen_ro) != 0)
		return -1;
	return 0;
}

/* Stop taking connections: every listener closed, the unix sockets' files removed. */
static void close_listeners(struct proxy *px)
{
	struct fdtag *tags[] = {&px->listen_rw, &px->listen_ro, &px->unix_rw, &px->unix_ro};
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		struct fdtag *t = tags[i];
		if (t->fd < 0)
			continue;
		if (t == &px->unix_rw || t == &px->unix_ro) {
			char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
			proxy_unix_socket_path(&px->cfg, t == &px->unix_rw ? px->cfg.listen : px->cfg.listen_ro,
					       path, sizeof(path));
			unlink(path);
		}
		proxy_unwatch(px, t);
		close(t->fd);
		t->fd = -1;
	}
}

/* SIGINT, SIGTERM and SIGHUP come through a signalfd in the loop (before any thread starts). */
static void watch_signals(struct proxy *px)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	px->signal_tag.kind = FD_SIGNAL;
	px->signal_tag.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	proxy_watch(px, &px->signal_tag, EPOLLIN);
}

/* The etcd watch (routing thread), metrics, auth_query workers. etcd_pw is freed here. */
static int start_threads(struct proxy *px, char *etcd_pw)
{
	struct pgha_err e;
	char *prefix = xasprintf("%s/%s/", strcmp(px->cfg.etcd_prefix, "/") == 0 ? "" : px->cfg.etcd_prefix,
				 px->cfg.cluster_name);
	struct etcd_opts eo = {.endpoints = px->cfg.etcd_endpoints, .username = px->cfg.etcd_username,
			       .password = etcd_pw, .request_timeout_ms = px->cfg.etcd_request_timeout_ms,
			       .deadline_ms = 3000, .ca_file = px->cfg.etcd_ca_file,
			       .cert_file = px->cfg.etcd_cert_file, .key_file = px->cfg.etcd_key_file,
			       .sync_interval_ms = px->cfg.etcd_sync_interval_ms};
	px->route = route_start(&eo, prefix, &px->cfg.primary_fwd, &e);
	free(prefix);
	secret_free(etcd_pw);
	if (px->route == NULL) {
		log_fatal("watching etcd: %s", e.msg);
		return -1;
	}
	if (px->cfg.metrics_listen[0] && metrics_start(px, px->cfg.metrics_listen, &e) == NULL) {
		log_fatal("[proxy] metrics_listen: %s", e.msg);
		return -1;
	}
	/* After the signals are blocked: the lookup threads must not take them. */
	if (creds_start(px, false, &e) != 0) {
		log_fatal("%s", e.msg);
		return -1;
	}
	px->route_tag.kind = FD_ROUTE;
	px->route_tag.fd = route_fd(px->route);
	proxy_watch(px, &px->route_tag, EPOLLIN);
	return 0;
}

/* The config's log level, format and identity: before anything logs (the TLS setup does). */
static void log_init(struct proxy *px)
{
	log_set_level((enum log_level)px->cfg.log_level);
	log_set_format((enum log_format)px->cfg.log_format);
	log_set_identity("proxy", px->cfg.cluster_name, px->cfg.name);
	char ctx[96];
	snprintf(ctx, sizeof(ctx), "proxy %s", px->cfg.name);
	log_set_context(ctx);
}

/* Config and users file loaded: everything the loop needs. -1: it cannot run (logged). */
static int setup(struct proxy *px)
{
	signal(SIGPIPE, SIG_IGN);
	struct pgha_err e;
	char *etcd_pw = NULL;
	if (px->cfg.etcd_username[0] && read_secret_file(px->cfg.etcd_password_file, &etcd_pw, &e) != 0) {
		log_fatal("[etcd] password_file: %s", e.msg);
		return -1;
	}
	raise_fd_limit(px);
	px->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (open_listeners(px) != 0) {
		secret_free(etcd_pw);
		return -1;
	}
	watch_signals(px);
	if (start_threads(px, etcd_pw) != 0)
		return -1;
	log_info("listening on %s (read-write)%s%s%s, %s pooling, pool_size %d", px->cfg.listen,
		 px->cfg.listen_ro[0] ? " and " : "", px->cfg.listen_ro, px->cfg.listen_ro[0] ? " (read-only)" : "",
		 px->cfg.pool_mode_text, px->cfg.pool_size);
	return 0;
}

/* SIGHUP reloads; SIGINT or SIGTERM stop taking connections, and the loop ends once work is done. */
static void on_signals(struct proxy *px, int fd)
{
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			struct pgha_err e;
			log_info("SIGHUP: reloading %s", px->cfg.path);
			if (proxy_reload(px, &e) != 0)
				log_error("reload incomplete: %s", e.msg);
		} else if (!px->stopping) {
			log_info("shutting down: no new connections; waiting up to 10 s for running transactions");
			px->stopping = true;
			px->stop_ms = px->now_ms + 10000;
			close_listeners(px);
		}
	}
}

static void on_topology(struct proxy *px)
{
	route_get(px->route, &px->topo);
	px->stats_routing_changes++;
	log_debug("topology %llu: leader %s:%d, %d standbys", (unsigned long long)px->topo.version,
		  px->topo.has_leader ? px->topo.leader.host : "-", px->topo.leader.port, px->topo.nreplicas);
	pool_topology_changed(px);
	while (hold_topology(px))
		client_resume_waiting(px);
	creds_topology_changed(px);
	client_wake_lookups(px);
}

static void dispatch(struct proxy *px, struct fdtag *t, uint32_t events)
{
	switch (t->kind) {
	case FD_LISTEN_RW: accept_all(px, t->fd, false); break;
	case FD_LISTEN_RO: accept_all(px, t->fd, true); break;
	case FD_CLIENT: client_event((struct client *)t, events); break;
	case FD_SERVER: client_server_event((struct server *)t, events); break;
	case FD_ROUTE: on_topology(px); break;
	case FD_AUTHQ:
		creds_lookups_done(px);
		client_wake_lookups(px);
		break;
	case FD_SIGNAL: on_signals(px, t->fd); break;
	}
}

/* Stopping: done once no server is busy, or at the deadline. */
static bool stopped(const struct proxy *px)
{
	if (px->now_ms > px->stop_ms)
		return true;
	for (const struct link *l = px->pools.next; l != &px->pools; l = l->next)
		if (!link_empty(&link_entry(l, const struct pool, node)->active))
			return false;
	return true;
}

static void run(struct proxy *px)
{
	int64_t last_tick = now_ms();
	struct epoll_event *evs = px->evs;
	for (;;) {
		int n = epoll_wait(px->epfd, evs, PROXY_EVENTS, 250);
		px->now_ms = now_ms();
		px->ev_count = n < 0 ? 0 : n;
		for (int i = 0; i < n; i++) {
			struct fdtag *t = evs[i].data.ptr;
			px->ev_next = i + 1;
			if (t != NULL)   /* NULL: closed by an earlier event of this batch */
				dispatch(px, t, evs[i].events);
		}
		px->ev_count = 0;
		client_hold_check(px);   /* servers released in this batch: drained for a switchover now? */
		client_ryw_wake(px);     /* LSN answers in this batch: gated reads go on */
		if (px->now_ms - last_tick >= 1000) {
			last_tick = px->now_ms;
			tick(px);
		}
		if (px->stopping && stopped(px))
			return;
	}
}

static void shutdown_proxy(struct proxy *px)
{
	close_listeners(px);   /* a setup that failed half-way may have some open */
	metrics_stop(px->metrics);
	px->metrics = NULL;
	if (px->route)
		route_stop(px->route);
	creds_stop(px);
	users_free(px);
	tls_shutdown(px);
	server_tls_shutdown(px);
	relay_registry_free(px);
	split_rules_free(px->split);
	px->split = NULL;
	proxy_config_free(&px->cfg);
}

int proxy_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *path = NULL;
	bool check = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'k': check = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "pgha proxy: -c FILE is required\n");
		return 2;
	}
	static struct proxy proxy;
	struct proxy *px = &proxy;
	struct pgha_err e;
	link_init(&px->pools);
	link_init(&px->clients_idle);
	px->listen_rw.fd = px->listen_ro.fd = px->unix_rw.fd = px->unix_ro.fd = -1;
	link_init(&px->ryw_gated);
	if (proxy_config_load(path, &px->cfg, &e) != 0) {
		fprintf(stderr, "pgha proxy: %s\n", e.msg);
		proxy_config_free(&px->cfg);
		return 2;
	}
	log_init(px);
	if (users_load(px, &e) != 0 || tls_configure(px, &e) != 0 || server_tls_configure(px, &e) != 0) {
		fprintf(stderr, "pgha proxy: %s\n", e.msg);
		tls_shutdown(px);
		server_tls_shutdown(px);
		return 2;
	}
	if (check)
		return check_config(px, path);
	int code = 1;
	if (setup(px) == 0) {
		run(px);
		code = 0;
		log_info("stopped");
	}
	shutdown_proxy(px);
	return code;
}
