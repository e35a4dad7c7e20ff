/*
 * switchover.h — the records planned operations are coordinated through.
 *
 *   <prefix>/<cluster>/switchover       one request: from whom, to whom, when,
 *                                       and the phase it has reached
 *   <prefix>/<cluster>/proxies/<name>   one per running proxy, under its lease:
 *                                       which switchover it has paused for
 *   <prefix>/<cluster>/failover         a manual failover (`ctl failover`, or
 *                                       the switchover's last step): see
 *                                       struct failover_key
 *   <prefix>/<cluster>/requests/<name>  an operation asked of one member
 *                                       (`ctl restart`, `ctl reinit`), under
 *                                       ctl's lease: see struct member_request
 *
 * Phases: scheduled (waits for `at`) -> pausing (proxies hold new
 * transactions at a boundary and report paused) -> demoting (the leader
 * stops, the candidate replays everything) -> promoting (the candidate takes
 * the key and promotes) -> done; any step past its deadline -> aborted (the
 * old leader goes on, proxies resume to it). Proxies hold work only in
 * pausing, demoting and promoting, and never longer than their own
 * switchover_hold limit whatever the record says.
 *
 * A switchover between two clusters (a primary cluster and its standby
 * cluster, `ctl switchover-cluster`) has the same record in both clusters'
 * etcd with "kind": "cluster"; ctl alone moves it on.
 *
 * Decoding is strict on types and lengths (a bad record is an error naming
 * the field), lenient on unknown fields (another version may add some).
 */
#ifndef PGHA_CLUSTER_SWITCHOVER_H
#define PGHA_CLUSTER_SWITCHOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum so_phase {
	SO_SCHEDULED,
	SO_PAUSING,
	SO_DEMOTING,
	SO_PROMOTING,
	SO_DONE,
	SO_ABORTED,
};

struct switchover {
	char id[40];
	char from[64];            /* the leader when it was asked for */
	char to[64];              /* the candidate */
	int64_t at_ms;            /* unix ms it may start (0: at once) */
	enum so_phase phase;
	int64_t deadline_ms;      /* unix ms the current phase must end by (0: none) */
	char reason[256];         /* aborted: why; done: how long it took */
	bool clusters;            /* "kind": "cluster": a switchover between two clusters (`ctl
	                           * switchover-cluster`): from and to are cluster names, ctl moves
	                           * the phases in both clusters' etcd, the agents leave it alone
	                           * and the proxies hold for it as for any switchover */
};

const char *so_phase_name(enum so_phase p);
/* Proxies hold new read-write transactions in these phases. */
bool so_phase_holds(enum so_phase p);

int switchover_decode(const char *json, size_t len, struct switchover *out, struct pgha_err *e) PGHA_MUSTCHECK;
/* Caller frees. */
char *switchover_encode(const struct switchover *s);

struct proxy_record {
	char name[64];
	int pid;
	char listen[128];
	char listen_ro[128];
	char paused_for[40];      /* the switchover id it holds work for ("" none) */
	int clients;
	int waiting;              /* clients waiting for a server (a hold included) */
	int pools;
	char region[64];          /* its [proxy] region and zone ("" none): where its reads go first */
	char zone[64];
};

int proxy_record_decode(const char *json, size_t len, struct proxy_record *out, struct pgha_err *e) PGHA_MUSTCHECK;
char *proxy_record_encode(const struct proxy_record *r);

/*
 * failover: {"to": "n2", "from": "n1"} from `ctl failover`, {"to": "n2",
 * "switchover": "so-..."} from a switchover. The member `to` takes the leader
 * key (the leader at the time gives it up); nobody else acts on it.
 */
struct failover_key {
	char to[64];
	char from[64];            /* the leader when it was asked for ("" none or not said) */
	char switchover[40];      /* the switchover it carries out ("" none) */
};

int failover_key_decode(const char *json, size_t len, struct failover_key *out,
			    struct pgha_err *e) PGHA_MUSTCHECK;
char *failover_key_encode(const struct failover_key *r);

/*
 * requests/<member>: {"id": "rq-...", "action": "restart" | "reinit", "deadline": unix ms}.
 * The member's agent acts on a given id once: it must begin before the deadline
 * (a member that was down does not act on a stale request) and reports failure if
 * not done by then. Progress goes to its member record (op_id, op_state, error);
 * it deletes the key when done. ctl writes the key under a lease that ends
 * shortly after the deadline, so nothing is left behind either way.
 */
enum req_action { REQ_RESTART, REQ_REINIT };

struct member_request {
	char id[40];
	enum req_action action;
	int64_t deadline_ms;
};

const char *req_action_name(enum req_action a);
int member_request_decode(const char *json, size_t len, struct member_request *out, struct pgha_err *e) PGHA_MUSTCHECK;
char *member_request_encode(const struct member_request *r);

#endif
