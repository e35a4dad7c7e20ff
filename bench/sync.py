#!/usr/bin/env python3
"""Synchronous replication benchmark: pgbench tpcb-like TPS on the leader with
synchronous_mode off and on, and the ratio on/off.

One etcd and --nodes pgha agents on 127.0.0.1 (PostgreSQL 15, fsync as given),
pgbench -i -s --scale on the leader, then --rounds rounds that each run
pgbench -T --seconds -c --clients with synchronous_mode=off and then =on
(switched with `pgha ctl set`; the "on" run starts once the leader has
published its synchronous standby and PostgreSQL reports it as sync). The
table shows the median TPS of each mode and on/off.

Usage: /usr/bin/python3 bench/sync.py [--nodes 2] [--seconds 10] [--rounds 2]
                  [--clients 4] [--scale 5] [--fsync on] [--mode on|quorum] [--keep]
Needs the built binary (make) and the dependencies (make deps); run as root
(PostgreSQL runs as the OS user postgres). Everything it starts listens on
127.0.0.1 and is stopped at the end.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

from conftest import Cluster, Etcd, make_base_dir, wait_until  # noqa: E402

PGBENCH_BIN = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def pgbench(port, args, env, timeout):
    r = subprocess.run([PGBENCH_BIN, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args,
                        "postgres"], env=env, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        raise RuntimeError(f"pgbench exit {r.returncode}: {out[-1500:]}")
    return out


def set_mode(cluster, leader, mode, standbys):
    cluster.ctl("set", f"synchronous_mode={mode}", "--force")
    want = {"off": None, "on": "sync", "quorum": "quorum"}[mode]

    def ok():
        v = cluster.view()
        s = v.get("sync")
        rows = dict(cluster.nodes[leader].sql("SELECT application_name, sync_state FROM pg_stat_replication"))
        ssn = cluster.nodes[leader].sql("SHOW synchronous_standby_names")[0][0]
        if want is None:
            return ssn == "" and all(st == "async" for st in rows.values())
        n = 1 if mode == "on" else standbys
        return s and s["leader"] == leader and len(s["sync_standby"]) == n and \
            all(rows.get(m) == want for m in s["sync_standby"])
    wait_until(f"synchronous_mode {mode} in effect", ok, timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--fsync", choices=("on", "off"), default="on")
    ap.add_argument("--mode", choices=("on", "quorum"), default="on")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.nodes < 2:
        ap.error("--nodes must be at least 2 (a leader and a standby)")

    base = make_base_dir()
    etcd = cluster = None
    ok = False
    tps = {"off": [], args.mode: []}
    try:
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        names = [f"n{i + 1}" for i in range(args.nodes)]
        for n in names:
            cluster.add(n, {"parameters.fsync": args.fsync, "parameters.max_connections": "50",
                            "parameters.shared_buffers": "64MB"}).start()
        leader = cluster.wait_streaming(names, timeout=180)
        node = cluster.nodes[leader]
        passfile = os.path.join(base, "secrets", "pgpass")
        with open(passfile, "w") as f:
            f.write(f"*:*:*:postgres:{cluster.su_pw}\n")
        os.chmod(passfile, 0o600)
        env = dict(os.environ, PGPASSFILE=passfile)
        print(f"{args.nodes} members, leader {leader}, fsync={args.fsync}; "
              f"pgbench -i -s {args.scale}", flush=True)
        pgbench(node.pg_port, ["-i", "-q", "-s", str(args.scale)], env, 600)
        node.sql("VACUUM ANALYZE")
        for r in range(args.rounds):
            for mode in ("off", args.mode):
                set_mode(cluster, leader, mode, args.nodes - 1)
                out = pgbench(node.pg_port, ["-n", "-T", str(args.seconds), "-c", str(args.clients),
                                             "-j", str(min(args.clients, 2))], env, args.seconds + 120)
                m = re.search(r"^tps = ([\d.]+)", out, re.M)
                lat = re.search(r"^latency average = ([\d.]+) ms", out, re.M)
                tps[mode].append(float(m.group(1)))
                print(f"round {r + 1}: synchronous_mode={mode:<6} tps {float(m.group(1)):9.1f}"
                      f"  latency {lat.group(1) if lat else '?'} ms", flush=True)
        off = statistics.median(tps["off"])
        on = statistics.median(tps[args.mode])
        print(f"\npgbench tpcb-like, {args.clients} clients, {args.seconds} s x {args.rounds} rounds "
              f"(medians):")
        print(f"  synchronous_mode=off    {off:9.1f} tps")
        print(f"  synchronous_mode={args.mode:<6} {on:9.1f} tps")
        print(f"  ratio {args.mode}/off          {on / off:9.2f}")
        ok = True
    finally:
        if cluster is not None:
            cluster.stop_all()
        if etcd is not None:
            etcd.stop()
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"logs kept in {base}")


if __name__ == "__main__":
    main()
