#!/usr/bin/env python3
"""Failover benchmark: write unavailability per fault, over several rounds.

A writer commits one row every 20 ms to whichever member accepts writes
(libpq multi-host, target_session_attrs=read-write, 1 s connect timeout).
For each fault it reports the window from the fault to the first write
committed by another PostgreSQL instance than the one that failed (the new
leader, or the old leader's PostgreSQL restarted in place):
  node-death   kill -9 the leader's agent and its whole PostgreSQL
  pg-crash     kill -9 the leader's postmaster and backends (the agent lives)
  clean-stop   SIGTERM to the leader's agent (it stops PostgreSQL, releases the key)
Profiles: default (ttl 9s, loop_wait 1s, retry_timeout 3s) and fast
(ttl 3s, loop_wait 500ms, retry_timeout 1s).

Usage: python3 bench/failover.py [--rounds 5] [--profiles default,fast]
                                 [--faults node-death,pg-crash,clean-stop]
Needs the built binary (make) and the dependencies (make deps).
"""
import argparse
import os
import signal
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

import psycopg  # noqa: E402

from conftest import Cluster, Etcd, make_base_dir, pg_pid, signal_instance, wait_until  # noqa: E402

PROFILES = {
    "default": {},
    "fast": {"cluster.ttl": "3s", "cluster.loop_wait": "500ms", "cluster.retry_timeout": "1s",
             "etcd.request_timeout": "800ms"},
}


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

    def first_commit_after(self, t, not_on=None):
        """First commit after t, optionally on another instance than not_on (port, start time)."""
        with self.lock:
            for c, inst in self.commits:
                if c > t and inst != not_on:
                    return c
        return None


def fault(cluster, leader, kind):
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


def run_profile(profile, faults, rounds):
    base = make_base_dir()
    etcd = Etcd(base).start()
    cluster = Cluster(base, etcd)
    results = {f: [] for f in faults}
    try:
        for n in ("n1", "n2", "n3"):
            cluster.add(n, PROFILES[profile]).start()
        leader = cluster.wait_streaming(list(cluster.nodes), timeout=180)
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
                print(f"  {profile:8s} {kind:11s} round {r + 1}: {window:6.2f} s", flush=True)
                node = cluster.nodes[leader]
                if node.proc.poll() is not None:
                    node.start()
        writer.stop_flag.set()
        th.join(10)
    finally:
        cluster.stop_all()
        etcd.stop()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profiles", default="default,fast")
    ap.add_argument("--faults", default="node-death,pg-crash,clean-stop")
    args = ap.parse_args()
    faults = args.faults.split(",")
    table = []
    for profile in args.profiles.split(","):
        res = run_profile(profile, faults if profile == "default" else ["node-death"], args.rounds)
        for kind, values in res.items():
            table.append((profile, kind, values))
    print("\nwrite unavailability (fault -> first committed write), seconds")
    print(f"{'profile':9s} {'fault':12s} {'rounds':>6s} {'median':>7s} {'min':>6s} {'max':>6s}  all")
    for profile, kind, v in table:
        print(f"{profile:9s} {kind:12s} {len(v):6d} {statistics.median(v):7.2f} {min(v):6.2f} {max(v):6.2f}  "
              + " ".join(f"{x:.2f}" for x in v))


if __name__ == "__main__":
    main()
