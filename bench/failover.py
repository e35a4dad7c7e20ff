#!/usr/bin/env python3
"""Failover benchmark: write unavailability per fault, over several rounds,
for pgha and, side by side under the same load and faults, Patroni.

A writer commits one row every 20 ms to whichever member accepts writes
(libpq multi-host, target_session_attrs=read-write, 1 s connect timeout).
For each fault it reports the window from the fault to the first write
committed by another PostgreSQL instance than the one that failed (the new
leader, or the old leader's PostgreSQL restarted in place):
  node-death   kill -9 the leader's agent and its whole PostgreSQL
  pg-crash     kill -9 the leader's postmaster and backends (the agent lives)
  clean-stop   SIGTERM to the leader's agent (it stops PostgreSQL, releases the key)
("agent" is the pgha agent or the Patroni process.) After each fault the
faulted node is brought back and every member must stream again before the
next one.

Profiles (each system runs the ones it has; every run gets its own etcd):
  pgha     default  ttl 9s, loop_wait 1s, retry_timeout 3s (the built-in defaults)
           fast     ttl 3s, loop_wait 500ms, retry_timeout 1s, etcd request_timeout 800ms
  patroni  default  ttl 30, loop_wait 10, retry_timeout 10 (Patroni's own defaults)
           ttl10    ttl 10, loop_wait 1, retry_timeout 3 (pgha's default relation)
           fast     ttl 5, loop_wait 1, retry_timeout 2 (the closest Patroni 3.0 runs: whole
                    seconds only, and with etcd3 retry_timeout 1 never gets the leader key)
Every profile runs --faults, except that fast runs --fast-faults (default: all).
The final table divides pgha's median by Patroni's (< 1: pgha is faster) for
pgha default vs Patroni default and ttl10, and pgha fast vs Patroni fast.

Usage: /usr/bin/python3 bench/failover.py [--rounds 5] [--systems pgha,patroni]
                  [--profiles default,ttl10,fast] [--faults node-death,pg-crash,clean-stop]
                  [--fast-faults node-death,pg-crash,clean-stop] [--patroni-default-rounds N] [--keep]
Needs the built binary (make), the dependencies (make deps) and, for
Patroni, scripts/install-deps.sh --bench. Run as root (Patroni and
PostgreSQL run as the OS user postgres).
"""
import argparse
import os
import shutil
import signal
import statistics
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

import psycopg  # noqa: E402

from conftest import Cluster, Etcd, make_base_dir, pg_pid, signal_instance, wait_until  # noqa: E402

NODES = ("n1", "n2", "n3")
ALL_FAULTS = ("node-death", "pg-crash", "clean-stop")

PGHA_PROFILES = {
    "default": {},
    "fast": {"cluster.ttl": "3s", "cluster.loop_wait": "500ms", "cluster.retry_timeout": "1s",
             "etcd.request_timeout": "800ms"},
}
PGHA_DESCR = {
    "default": "ttl 9s, loop_wait 1s, retry_timeout 3s",
    "fast": "ttl 3s, loop_wait 500ms, retry_timeout 1s",
}
# Patroni's profiles live in bench/patroni_bench.py (imported only when asked for,
# so that a pgha-only run does not need Patroni installed).
PATRONI_PROFILE_NAMES = ("default", "ttl10", "fast")

# (pgha profile, Patroni profile) pairs the comparison table divides.
COMPARE = (("default", "default"), ("default", "ttl10"), ("fast", "fast"))


def system_profiles(system):
    return tuple(PGHA_PROFILES) if system == "pgha" else PATRONI_PROFILE_NAMES


def describe(system, profile):
    if system == "pgha":
        return PGHA_DESCR[profile]
    import patroni_bench
    t = patroni_bench.PROFILES[profile]
    return f"ttl {t['ttl']}s, loop_wait {t['loop_wait']}s, retry_timeout {t['retry_timeout']}s"


class SteadyWriter:
    def __init__(self, cluster, interval=0.02):
        self.cluster = cluster
        self.interval = interval
        self.commits = []          # monotonic times of committed writes
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        nodes = list(cluster.nodes.values())
        self.conninfo = dict(host=",".join(n.host for n in nodes),
                             port=",".join(str(n.pg_port) for n in nodes),
                             user="postgres", password=cluster.su_pw, dbname="postgres",
                             connect_timeout=1, target_session_attrs="read-write")

    def run(self):
        conn = None
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = psycopg.connect(autocommit=True, **self.conninfo)
                row = conn.execute("INSERT INTO bench_writes (t) VALUES (now()) "
                                   "RETURNING inet_server_port(), pg_postmaster_start_time()").fetchone()
                with self.lock:
                    self.commits.append((time.monotonic(), (row[0], row[1])))
            except Exception:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                conn = None
            left = self.interval - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def first_commit_after(self, t, not_on=None):
        """First commit after t, optionally on another instance than not_on (port, start time)."""
        with self.lock:
            for c, inst in self.commits:
                if c > t and inst != not_on:
                    return c
        return None


def fault(cluster, leader, kind):
    """The same faults for both systems: node.proc is the pgha agent or Patroni."""
    node = cluster.nodes[leader]
    if kind == "node-death":
        pid = pg_pid(node)
        node.proc.send_signal(signal.SIGKILL)
        signal_instance(pid, signal.SIGKILL)
        node.proc.wait(10)
    elif kind == "pg-crash":
        signal_instance(pg_pid(node), signal.SIGKILL)
    elif kind == "clean-stop":
        node.proc.send_signal(signal.SIGTERM)
    else:
        raise ValueError(kind)


def start_cluster(system, profile, base, etcd):
    if system == "pgha":
        cluster = Cluster(base, etcd)
        for n in NODES:
            cluster.add(n, PGHA_PROFILES[profile]).start()
    else:
        import patroni_bench
        cluster = patroni_bench.PatroniCluster(base, etcd, profile)
        for n in NODES:
            cluster.add(n).start()
    return cluster


def show_logs(base, chars=4000):
    for name in sorted(os.listdir(base)):
        if name.endswith(".log"):
            with open(os.path.join(base, name), errors="replace") as f:
                tail = f.read()[-chars:]
            print(f"\n===== {base}/{name} (tail) =====\n{tail}", file=sys.stderr)


def run_profile(system, profile, faults, rounds, results, keep=False):
    """Fill results[kind] with one window per round; partial results stay on failure."""
    base = make_base_dir()
    etcd = cluster = writer = th = None
    ok = False
    try:
        etcd = Etcd(base).start()
        cluster = start_cluster(system, profile, base, etcd)
        leader = cluster.wait_streaming(list(cluster.nodes), timeout=300)
        if system == "patroni":
            conf = cluster.dynamic_config() or {}
            print(f"  patroni {profile}: effective DCS config ttl={conf.get('ttl')} "
                  f"loop_wait={conf.get('loop_wait')} retry_timeout={conf.get('retry_timeout')}", flush=True)
        cluster.nodes[leader].sql("CREATE TABLE bench_writes (id bigserial PRIMARY KEY, t timestamptz)")
        writer = SteadyWriter(cluster)
        th = threading.Thread(target=writer.run, daemon=True)
        th.start()
        for r in range(rounds):
            for kind in faults:
                leader = cluster.wait_streaming(list(cluster.nodes), timeout=180)
                wait_until("steady writes", lambda: writer.first_commit_after(time.monotonic() - 0.5), timeout=30)
                time.sleep(1)
                # The instance that fails: later commits must come from another one
                # (the new leader, or PostgreSQL restarted in place).
                old = tuple(cluster.nodes[leader].sql(
                    "SELECT inet_server_port(), pg_postmaster_start_time()")[0])
                t0 = time.monotonic()
                fault(cluster, leader, kind)
                c = wait_until("the first write after the fault",
                               lambda: writer.first_commit_after(t0, not_on=old),
                               timeout=120, interval=0.05)
                window = c - t0
                results[kind].append(window)
                print(f"  {system:7s} {profile:8s} {kind:11s} round {r + 1}: {window:6.2f} s", flush=True)
                node = cluster.nodes[leader]
                if kind == "clean-stop":
                    # The agent may still be shutting down; let it finish before restarting it.
                    node.proc.wait(120)
                if node.proc.poll() is not None:
                    node.start()
        # Every faulted node must be back before the cluster is torn down.
        cluster.wait_streaming(list(cluster.nodes), timeout=180)
        ok = True
    finally:
        if writer is not None:
            writer.stop_flag.set()
            th.join(10)
        for what, fn in (("cluster", cluster and cluster.stop_all), ("etcd", etcd and etcd.stop)):
            if fn:
                try:
                    fn()
                except Exception as e:
                    ok = False
                    print(f"  {system} {profile}: stopping {what} failed: {e!r}", file=sys.stderr)
        if not ok:
            show_logs(base)
        if ok and not keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"  {system} {profile}: kept {base}", file=sys.stderr, flush=True)


def fmt_stats(v):
    if not v:
        return f"{0:6d} {'-':>7s} {'-':>6s} {'-':>6s}"
    return f"{len(v):6d} {statistics.median(v):7.2f} {min(v):6.2f} {max(v):6.2f}"


def main():
    # A SIGTERM (timeout(1), kill) unwinds like Ctrl-C, so every finally stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--systems", default="pgha,patroni")
    ap.add_argument("--profiles", default="default,ttl10,fast",
                    help="each system runs those of these profiles it has")
    ap.add_argument("--faults", default=",".join(ALL_FAULTS))
    ap.add_argument("--fast-faults", default=",".join(ALL_FAULTS), help="faults for the fast profiles")
    ap.add_argument("--patroni-default-rounds", type=int, default=None,
                    help="rounds for Patroni's default profile (30 s ttl); default --rounds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (logs)")
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    profiles = [p for p in args.profiles.split(",") if p]
    faults = [f for f in args.faults.split(",") if f]
    fast_faults = [f for f in args.fast_faults.split(",") if f]
    for s in systems:
        if s not in ("pgha", "patroni"):
            ap.error(f"unknown system {s!r}")
    for f in faults + fast_faults:
        if f not in ALL_FAULTS:
            ap.error(f"unknown fault {f!r}")
    known = {p for s in systems for p in system_profiles(s)}
    for p in profiles:
        if p not in known:
            ap.error(f"unknown profile {p!r} (known: {', '.join(sorted(known))})")
    if "patroni" in systems:
        import patroni_bench
        print(f"{patroni_bench.patroni_version()} ({patroni_bench.PATRONI_BIN}), etcd3 DCS", flush=True)

    t_start = time.monotonic()
    table = []          # (system, profile, fault, values, error)
    for system in systems:
        for profile in [p for p in profiles if p in system_profiles(system)]:
            pf = fast_faults if profile == "fast" else faults
            rounds = args.rounds
            if system == "patroni" and profile == "default" and args.patroni_default_rounds:
                rounds = args.patroni_default_rounds
            print(f"{system} {profile} ({describe(system, profile)}): {rounds} rounds of {', '.join(pf)}",
                  flush=True)
            results = {f: [] for f in pf}
            error = None
            t1 = time.monotonic()
            try:
                run_profile(system, profile, pf, rounds, results, keep=args.keep)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                traceback.print_exc()
                print(f"  {system} {profile} FAILED: {error}", flush=True)
            print(f"  ({system} {profile} took {time.monotonic() - t1:.0f} s)", flush=True)
            for kind in pf:
                table.append((system, profile, kind, results[kind], error))

    print("\nwrite unavailability (fault -> first committed write), seconds")
    print(f"{'system':8s} {'profile':9s} {'fault':12s} {'rounds':>6s} {'median':>7s} {'min':>6s} {'max':>6s}  all")
    for system, profile, kind, v, error in table:
        print(f"{system:8s} {profile:9s} {kind:12s} {fmt_stats(v)}  "
              + " ".join(f"{x:.2f}" for x in v) + ("  (profile failed)" if error else ""))

    med = {(s, p, k): statistics.median(v) for s, p, k, v, _ in table if v}
    rows = []
    for pp, tp in COMPARE:
        for kind in ALL_FAULTS:
            a, b = med.get(("pgha", pp, kind)), med.get(("patroni", tp, kind))
            if a is not None and b is not None:
                rows.append((pp, tp, kind, a, b))
    if rows:
        print("\npgha median / Patroni median (below 1: pgha restores writes faster)")
        print(f"{'pgha profile':30s} {'Patroni profile':30s} {'fault':12s} {'pgha':>6s} {'Patroni':>7s} {'ratio':>6s}")
        for pp, tp, kind, a, b in rows:
            print(f"{pp + ' (' + describe('pgha', pp).split(',')[0] + ')':30s} "
                  f"{tp + ' (' + describe('patroni', tp).split(',')[0] + ')':30s} "
                  f"{kind:12s} {a:6.2f} {b:7.2f} {a / b:6.2f}")
    print(f"\ntotal wall time {time.monotonic() - t_start:.0f} s")
    if any(error for *_, error in table):
        sys.exit(1)


if __name__ == "__main__":
    main()
