#!/usr/bin/env python3
"""What failing logins cost everyone else: a flood of SCRAM logins with a wrong proof for a
users-file user (plaintext password, as `pgha up` writes it) at --rate attempts a second, while
one logged-in client runs SELECT 1 in a loop.

Setup: one etcd, ONE pgha agent (the leader), `pgha proxy` (log_level error) with a users file
holding the superuser's plaintext password. Two floods of --seconds each: the first alone, for
the proxy's CPU (utime + stime from /proc/<pid>/stat) as a share of one core and per attempt;
the second with the SELECT 1 loop, for its latency (median, p99) against the one before.

Usage: /usr/bin/python3 bench/preauth.py [--seconds 8] [--rate 700] [--keep]
(PGHA_BIN: the binary, default build/pgha.)
"""
import argparse
import os
import multiprocessing
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

from conftest import Cluster, Etcd, Proxy, make_base_dir  # noqa: E402
from test_proxy_preauth import proxy_cpu_s, scram_attempt  # noqa: E402


def select1_ms(conn):
    t = time.monotonic()
    conn.execute("SELECT 1").fetchone()
    return (time.monotonic() - t) * 1000


def flood(port, rate, stop, made):
    """Failed logins at rate a second until stop (time.monotonic(): the same clock in every process)."""
    nxt = time.monotonic()
    while time.monotonic() < stop:
        scram_attempt(port, "postgres")
        with made.get_lock():
            made.value += 1
        nxt += 1 / rate
        time.sleep(max(0, nxt - time.monotonic()))


def run_flood(port, rate, seconds, meanwhile):
    """Two processes (not threads: the GIL would slow `meanwhile`, not the proxy) flood for seconds."""
    stop = time.monotonic() + seconds
    made = multiprocessing.Value("i", 0)
    flooders = [multiprocessing.Process(target=flood, args=(port, rate / 2, stop, made)) for _ in range(2)]
    for f in flooders:
        f.start()
    while time.monotonic() < stop:
        meanwhile()
    for f in flooders:
        f.join(60)
    return made.value


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rate", type=int, default=700)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    base = make_base_dir()
    etcd = Etcd(base).start()
    cluster = Cluster(base, etcd)
    proxy = None
    try:
        cluster.add("n1").start()
        cluster.wait_streaming(["n1"], timeout=60)
        proxy = Proxy(cluster, {"proxy.log_level": "error"}).start()
        with proxy.connect(autocommit=True) as conn:
            before = [select1_ms(conn) for _ in range(2000)]
            # The flood alone: the proxy's CPU per failed login.
            cpu0, t0 = proxy_cpu_s(proxy), time.monotonic()
            made = run_flood(proxy.port, args.rate, args.seconds, lambda: time.sleep(0.05))
            cpu = proxy_cpu_s(proxy) - cpu0
            wall = time.monotonic() - t0
            # Again, with SELECT 1 in a loop meanwhile.
            during = []
            made2 = run_flood(proxy.port, args.rate, args.seconds, lambda: during.append(select1_ms(conn)))
        print(f"binary: {os.environ['PGHA_BIN']}")
        print(f"SELECT 1 before: median {pct(before, 0.5):.2f} ms, p99 {pct(before, 0.99):.2f} ms")
        print(f"failed logins alone: {made} in {wall:.1f} s ({made / wall:.0f}/s, asked {args.rate}/s); "
              f"proxy CPU {100 * cpu / wall:.0f}% of a core, {1000 * cpu / max(1, made):.2f} ms per attempt")
        print(f"SELECT 1 during {made2} failed logins: median {pct(during, 0.5):.2f} ms, "
              f"p99 {pct(during, 0.99):.2f} ms ({len(during)} queries)")
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.stop_all()
        etcd.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", base], check=False)


if __name__ == "__main__":
    main()
