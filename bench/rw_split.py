#!/usr/bin/env python3
"""Single-endpoint read/write split (issue 12): pgha's proxy with rw_split = statements
against Pgpool-II (seed 001's choice) with load_balance_mode on, in one run, interleaved.

Setup: one etcd, a 3-member pgha cluster (leader + 2 asynchronous streaming standbys,
max_connections 200), pgbench -i -s 10. Targets, all in front of that cluster, one port each:
  pgha-off    pgha proxy, read_your_writes = on, rw_split = off: everything on the leader
              (the baseline of the ratios)
  pgha-noryw  pgha proxy, read_your_writes = off, rw_split = off: the cost of the LSN request
              read_your_writes sends after every transaction of the read-write port
  pgha-split  pgha proxy, read_your_writes = on, rw_split = statements
  pgpool      Pgpool-II 4.3, streaming-replication mode, load_balance_mode = on, backends the
              leader and both standbys (weight 1 each), its defaults otherwise (num_init_children
              32, max_pool 4, session-level load balancing, disable_load_balance_on_write =
              'transaction', delay_threshold 0); clients log in with SCRAM (pool_hba.conf),
              pool_passwd holds the password in plain text (TEXT prefix: Pgpool-II logs in to
              each backend with SCRAM itself); runs as the OS user postgres
pgha proxies: transaction pooling, pool_size 20, log_level warn. pgbench reads the superuser's
password from a PGPASSFILE. Workloads (each --seconds after a --warmup run, -c 16 -j 2):
  select-simple     pgbench -S -M simple
  select-extended   pgbench -S -M extended
  tpcb              the tpcb-like script (writes)
Per run: TPS, TPS / pgha-off (same round), the proxy's CPU per transaction (pgha: utime + stime
of the proxy process; Pgpool-II: of its main process and every descendant, those already reaped
included, from /proc/<pid>/stat), and the share of transactions the standbys ran: deltas of
xact_commit + xact_rollback in pg_stat_database per node (database postgres), the same method for
every target (a backend reports its counts at most once a second, and an idle one only after 10
s: each run is followed by --stats-wait seconds before the counts are read; the warm-up is
counted too). Cross-checks, per target: pgha_proxy_rw_split_reads_total per pgbench transaction;
Pgpool-II's SHOW POOL_NODES select_cnt on the standbys / on all nodes.
Then staleness: one standby replays --delay late (ALTER SYSTEM SET recovery_min_apply_delay +
reload), and for pgha-split and pgpool, --rounds times: a writer (its own connection, kept)
inserts a row, and at once a reader (a second connection, opened before the write, a new one each
round so that Pgpool-II picks its load-balance node afresh per session as it does) reads it back
with a plain autocommit SELECT: reads that missed their write, and which node answered.

Usage: /usr/bin/python3 bench/rw_split.py [--seconds 15] [--warmup 3] [--repeats 3]
           [--workloads select-simple,select-extended,tpcb] [--rounds 300] [--delay 300ms]
           [--stats-wait 11.5] [--keep]
Needs the built binary (make) and scripts/install-deps.sh --bench (pgpool2). Run as root
(PostgreSQL and Pgpool-II run as the OS user postgres).
"""
import collections
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

import psycopg  # noqa: E402

from proxy import (CLK_TCK, PGBENCH_BIN, bench_args, bench_parse, cpu_ticks, finish, fmt,  # noqa: E402
                   pgpass_env, port_open, private_dir, raise_nofile, run_pgbench, stop_everything,
                   tail)
from conftest import (Cluster, Etcd, Proxy, free_port, make_base_dir, process_tree,  # noqa: E402
                      stop_process, wait_until)

PGPOOL_BIN = shutil.which("pgpool") or "/usr/sbin/pgpool"
CLIENTS = ["-c", "16", "-j", "2"]
TARGETS = ("pgha-off", "pgha-noryw", "pgha-split", "pgpool")
WORKLOADS = {   # name: pgbench arguments
    "select-simple": ["-S", "-M", "simple", *CLIENTS],
    "select-extended": ["-S", "-M", "extended", *CLIENTS],
    "tpcb": ["-M", "simple", *CLIENTS],
}
PGHA_TARGETS = {   # name: (read_your_writes, rw_split)
    "pgha-noryw": ("off", "off"),
    "pgha-off": ("on", "off"),
    "pgha-split": ("on", "statements"),
}


def tree_ticks(root):
    """CPU ticks of root and its descendants, with those of descendants already reaped (cutime +
    cstime): Pgpool-II does its work in child processes, which may come and go."""
    total = 0
    for pid in process_tree([root]):
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:     # gone since the tree was read: its parent's cutime has it
            continue
        total += sum(int(x) for x in s[s.rindex(")") + 2:].split()[11:15])
    return total


class Pgpool:
    """Pgpool-II in streaming-replication mode with load balancing, as seed 001 runs it: the
    package's defaults but for where it listens, its files, the backends, the user that checks
    them, and client authentication. Started and stopped by PID, as postgres."""

    def __init__(self, base, su_pw, backends):
        self.port = free_port()
        self.dir = os.path.join(base, f"pgpool-{self.port}")
        conf = f"""backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = {self.port}
socket_dir = '{self.dir}'
pcp_listen_addresses = ''
pcp_port = {free_port()}
pcp_socket_dir = '{self.dir}'
wd_ipc_socket_dir = '{self.dir}'
pid_file_name = '{self.dir}/pgpool.pid'
logdir = '{self.dir}'
enable_pool_hba = on
pool_passwd = '{self.dir}/pool_passwd'
sr_check_user = 'postgres'
load_balance_mode = on
""" + "".join(f"backend_hostname{i} = '{h}'\nbackend_port{i} = {p}\nbackend_weight{i} = 1\n"
              for i, (h, p) in enumerate(backends))
        private_dir(self.dir, {
            "pool_passwd": f"postgres:TEXT{su_pw}\n",
            "pool_hba.conf": "host all all 127.0.0.1/32 scram-sha-256\nlocal all all scram-sha-256\n",
            "pcp.conf": "",
            "pgpool.conf": conf})
        self.log_path = os.path.join(self.dir, "pgpool.log")
        self.proc = None
        self.seen = set()

    def start(self, su_pw, n_backends):
        log = open(self.log_path, "ab")
        path = self.dir + "/"
        self.proc = subprocess.Popen([PGPOOL_BIN, "-n", "-f", path + "pgpool.conf", "-F", path + "pcp.conf",
                                      "-a", path + "pool_hba.conf"], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, user="postgres", group="postgres", start_new_session=True,
                                     preexec_fn=raise_nofile)
        log.close()
        wait_until("pgpool to listen", lambda: port_open(self.port), timeout=30)

        def ready():
            nodes = self.nodes(su_pw)
            return (len(nodes) == n_backends and all(n["status"] in ("up", "waiting") for n in nodes)
                    and sum(n["role"] == "primary" for n in nodes) == 1)
        wait_until("pgpool to see its backends up, one primary", ready, timeout=60)
        return self

    def nodes(self, su_pw):
        """SHOW POOL_NODES, one dict per backend."""
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", password=su_pw,
                             dbname="postgres", connect_timeout=10, autocommit=True) as c:
            cur = c.execute("SHOW POOL_NODES")
            cols = [d.name for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def ticks(self):
        self.seen |= process_tree([self.proc.pid])
        return tree_ticks(self.proc.pid)

    def stop(self):
        """Fast shutdown (SIGINT) of the main process; children it left behind (it was killed
        after a timeout) are killed by PID."""
        if self.proc is None:
            return None
        self.seen |= process_tree([self.proc.pid])
        rc = stop_process(self.proc, sig=signal.SIGINT, timeout=30)
        for pid in self.seen - {self.proc.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return rc


def node_xacts(cluster):
    """xact_commit + xact_rollback of database postgres, per node (pg_stat_database)."""
    return {name: node.sql("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                           "WHERE datname = 'postgres'")[0][0]
            for name, node in cluster.nodes.items()}


def split_reads(proxy):
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.metrics_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("pgha_proxy_rw_split_reads_total "):
                return int(float(line.split()[-1]))
    raise RuntimeError("no pgha_proxy_rw_split_reads_total in /metrics")


def wait_replayed(cluster, leader):
    lsn = cluster.nodes[leader].sql("SELECT pg_current_wal_lsn()")[0][0]
    for name, node in cluster.nodes.items():
        if name != leader:
            wait_until(f"{name} to replay {lsn}", lambda node=node: node.sql(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0], timeout=120)


def staleness(name, port, su_pw, rounds, first_id, port_names, budget):
    """A writer inserts a row, a second connection at once reads it: (rounds run, misses,
    {node: reads answered}, {node: misses}, mean read ms)."""
    def conn():
        return psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=su_pw,
                               dbname="postgres", connect_timeout=10, autocommit=True,
                               options="-c statement_timeout=10s")
    served, missed = collections.Counter(), collections.Counter()
    spent, done = 0.0, 0
    deadline = time.monotonic() + budget
    with conn() as writer:
        for i in range(rounds):
            if time.monotonic() > deadline:
                print(f"  {name}: stopped after {i} rounds ({budget} s)", flush=True)
                break
            with conn() as reader:
                writer.execute("INSERT INTO rw_stale VALUES (%s)", (first_id + i,))
                t0 = time.monotonic()
                n, at = reader.execute("SELECT count(*), current_setting('port') FROM rw_stale WHERE id = %s",
                                       (first_id + i,)).fetchone()
                spent += time.monotonic() - t0
            node = port_names.get(int(at), at)
            served[node] += 1
            missed[node] += n == 0
            done += 1
    return done, sum(missed.values()), served, missed, spent / max(done, 1) * 1000


def main():
    ap = bench_args(__doc__, WORKLOADS, repeats=3)
    ap.add_argument("--rounds", type=int, default=300, help="staleness rounds per target (0: skip)")
    ap.add_argument("--delay", default="300ms", help="recovery_min_apply_delay of one standby, staleness")
    ap.add_argument("--stats-wait", type=float, default=11.5,
                    help="seconds after each run before pg_stat_database is read (idle backends report "
                         "their counts after 10 s)")
    args, workloads = bench_parse(ap, WORKLOADS)
    raise_nofile()

    t_start = time.monotonic()
    base = make_base_dir()
    etcd = cluster = pgpool = None
    proxies = {}
    ok = False
    results = {}        # (workload, target) -> [(tps, ratio, cpu_us, standby_share, counter_share)]
    stale = {}
    failures = []
    try:
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        for n in ("n1", "n2", "n3"):
            cluster.add(n, {"parameters.max_connections": "200", "parameters.shared_buffers": "128MB"}).start()
        leader = cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)
        standbys = [n for n in cluster.nodes if n != leader]
        lnode = cluster.nodes[leader]
        env = pgpass_env(cluster)
        print(f"leader {leader}, standbys {', '.join(standbys)}; pgbench -i -s 10 on the leader", flush=True)
        subprocess.run([PGBENCH_BIN, "-h", "127.0.0.1", "-p", str(lnode.pg_port), "-U", "postgres",
                        "-i", "-s", "10", "-q", "postgres"], env=env, check=True, capture_output=True,
                       timeout=300)
        lnode.sql("VACUUM ANALYZE")
        lnode.sql("CREATE TABLE rw_stale (id int PRIMARY KEY)")
        wait_replayed(cluster, leader)

        for name, (ryw, split) in PGHA_TARGETS.items():
            mport = free_port()
            p = Proxy(cluster, {"proxy.name": name, "proxy.pool_size": "20", "proxy.log_level": "warn",
                                "proxy.max_client_conn": "2000", "proxy.read_your_writes": ryw,
                                "proxy.rw_split": split, "proxy.metrics_listen": f"127.0.0.1:{mport}"},
                      name=name).start()
            p.metrics_port = mport
            proxies[name] = p
            wait_until(f"{name} to route", lambda p=p: p.connect(autocommit=True).close() or True, timeout=30)
        pgpool = Pgpool(base, cluster.su_pw, [("127.0.0.1", cluster.nodes[n].pg_port)
                                              for n in (leader, *standbys)])
        pgpool.start(cluster.su_pw, len(cluster.nodes))
        port_names = {node.pg_port: name for name, node in cluster.nodes.items()}
        pool_names = {n["node_id"]: port_names[int(n["port"])] for n in pgpool.nodes(cluster.su_pw)}
        ports = {name: p.port for name, p in proxies.items()}
        ports["pgpool"] = pgpool.port
        logs = {name: p.log_path for name, p in proxies.items()}
        logs["pgpool"] = pgpool.log_path

        def ticks(t):
            return pgpool.ticks() if t == "pgpool" else cpu_ticks([proxies[t].proc.pid])

        def counter(t):
            """(standby reads, all reads) by the target's own count."""
            if t == "pgpool":
                cnt = {pool_names[n["node_id"]]: int(n["select_cnt"]) for n in pgpool.nodes(cluster.su_pw)}
                return sum(v for k, v in cnt.items() if k != leader), sum(cnt.values())
            return split_reads(proxies[t]), None

        v = subprocess.run([PGPOOL_BIN, "--version"], capture_output=True, text=True)
        version = (v.stdout + v.stderr).strip()
        print(f"{version}; machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
        print(f"{len(workloads)} workloads x {args.repeats} repeats x targets, {args.seconds} s each after a "
              f"{args.warmup} s warm-up, then {args.stats_wait} s for pg_stat_database", flush=True)
        time.sleep(args.stats_wait)
        x0 = node_xacts(cluster)
        for w in workloads:
            wargs, targets = WORKLOADS[w], TARGETS
            print(f"\n{w}: pgbench {' '.join(wargs)}", flush=True)
            for r in range(args.repeats):
                round_res = {}
                # Each round starts with another target: none always runs first after a change of
                # workload (the first tpcb run after the select-only ones is the slowest).
                for t in targets[r % len(targets):] + targets[:r % len(targets)]:
                    try:
                        m0 = counter(t)
                        n_warm = run_pgbench(ports[t], wargs, args.warmup, env)[1] if args.warmup > 0 else 0
                        c0 = ticks(t)
                        tps, n, failed = run_pgbench(ports[t], wargs, args.seconds, env)
                        c1 = ticks(t)
                        time.sleep(args.stats_wait)
                        x1 = node_xacts(cluster)
                        m1 = counter(t)
                    except Exception as e:
                        msg = f"{type(e).__name__}: {e}"
                        print(f"  {t:10s} round {r + 1}: FAILED {msg}", flush=True)
                        failures.append((w, t, msg, tail(logs[t])))
                        time.sleep(args.stats_wait)
                        x0 = node_xacts(cluster)
                        continue
                    d = {k: x1[k] - x0[k] for k in x1}
                    x0 = x1
                    share = sum(d[s] for s in standbys) / max(sum(d.values()), 1)
                    cshare = ((m1[0] - m0[0]) / max(n + n_warm, 1) if m1[1] is None
                              else (m1[0] - m0[0]) / max(m1[1] - m0[1], 1))
                    cpu = (c1 - c0) / CLK_TCK / max(n, 1) * 1e6
                    round_res[t] = [tps, None, cpu, share, cshare]
                    print(f"  {t:10s} round {r + 1}: {tps:9.1f} tps  {n:8d} tx"
                          + (f" ({failed} failed)" if failed else "")
                          + f"  proxy CPU {cpu:6.1f} us/tx  standbys ran {share * 100:5.1f}% of xacts ("
                          + " ".join(f"{k} {v}" for k, v in sorted(d.items()))
                          + f"); own count {cshare * 100:5.1f}%", flush=True)
                off = round_res.get("pgha-off")
                for t, v in round_res.items():
                    v[1] = v[0] / off[0] if off else None
                    results.setdefault((w, t), []).append(tuple(v))
                print(f"  round {r + 1}, TPS / pgha-off: "
                      + "  ".join(f"{t} {fmt(v[1], '.2f')}" for t, v in round_res.items()), flush=True)

        if args.rounds > 0:
            late = standbys[-1]
            cluster.nodes[late].sql(f"ALTER SYSTEM SET recovery_min_apply_delay = '{args.delay}'")
            cluster.nodes[late].sql("SELECT pg_reload_conf()")
            wait_until(f"{late} to replay {args.delay} late", lambda: cluster.nodes[late].sql(
                "SHOW recovery_min_apply_delay")[0][0] != "0", timeout=10)
            print(f"\nstaleness: {late} replays {args.delay} late; {args.rounds} rounds per target: a writer "
                  "inserts a row, a new second connection reads it at once (autocommit SELECT)", flush=True)
            for i, t in enumerate(("pgha-split", "pgpool")):
                try:
                    stale[t] = staleness(t, ports[t], cluster.su_pw, args.rounds, (i + 1) * 1000000,
                                         port_names, budget=max(120, args.rounds))
                except Exception as e:
                    msg = f"{type(e).__name__}: {e}"
                    print(f"  {t}: FAILED {msg}", flush=True)
                    failures.append(("staleness", t, msg, tail(logs[t])))
                    continue
                done, misses, served, missed, ms = stale[t]
                print(f"  {t:10s} {misses}/{done} reads missed their write; answered by "
                      + ", ".join(f"{k} {served[k]} ({missed[k]} missed)" for k in sorted(served))
                      + f"; mean read {ms:.1f} ms", flush=True)
            cluster.nodes[late].sql("ALTER SYSTEM RESET recovery_min_apply_delay")
            cluster.nodes[late].sql("SELECT pg_reload_conf()")
        ok = True
    finally:
        ok = stop_everything([*proxies.items(), ("pgpool", pgpool), ("cluster", cluster)], etcd) and ok

    if results:
        print(f"\nsummary: median of {args.repeats} run(s) of {args.seconds} s; CPU = the proxy's utime + "
              "stime per transaction (Pgpool-II: all its processes); standbys = share of the transactions "
              "(pg_stat_database) the standbys ran; own = the target's own count (pgha: rw_split reads per "
              "pgbench transaction; Pgpool-II: select_cnt on standbys / on all nodes)")
        print(f"{'workload':16s} {'target':11s} {'tps':>9s} {'/pgha-off':>10s} {'CPU us/tx':>10s} "
              f"{'standbys':>9s} {'own':>6s}")
        for w in workloads:
            for t in TARGETS:
                v = results.get((w, t))
                if not v:
                    print(f"{w:16s} {t:11s} {'n/a':>9s}")
                    continue
                ratios = [x[1] for x in v if x[1] is not None]
                print(f"{w:16s} {t:11s} {statistics.median(x[0] for x in v):9.1f} "
                      f"{fmt(statistics.median(ratios) if ratios else None, '10.2f')} "
                      f"{statistics.median(x[2] for x in v):10.1f} "
                      f"{statistics.median(x[3] for x in v) * 100:8.1f}% "
                      f"{statistics.median(x[4] for x in v) * 100:5.1f}%")
    if stale:
        print(f"\nstaleness ({args.delay} replay delay on one standby): reads that missed their own write")
        for t, (done, misses, served, missed, ms) in stale.items():
            print(f"  {t:10s} {misses:4d} / {done} missed  ("
                  + ", ".join(f"{k}: {served[k]} reads, {missed[k]} missed" for k in sorted(served))
                  + f"; mean read {ms:.1f} ms)")
    print(f"\nload average at the end {os.getloadavg()}; total wall time {time.monotonic() - t_start:.0f} s")
    finish(base, ok, failures, args.keep)


if __name__ == "__main__":
    main()
