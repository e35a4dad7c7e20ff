#!/usr/bin/env python3
"""What carrying session state costs the proxy (issue 12): pgbench through pgha as built now,
through pgha as it was before session state was carried (built from --before, default the
commit before it), and through PgBouncer, in one run, interleaved.

Setup as bench/proxy.py: one etcd and one pgha agent (the leader), pgbench -i -s 10,
pool_size 20, transaction pooling everywhere. Workloads (each --seconds, after a warm-up):
  select-simple    -S -M simple -c 16 -j 2     every Query is looked at (sess_classify's quick
                                               look): the cost for plain statements
  select-extended  -S -M extended -c 16 -j 2   the same for every unnamed Parse
  set-each-xact    -c 16 -j 2, a script whose every transaction runs a session SET before its
                   SELECT: parsed with libpg_query, and the session state read back after
                   each transaction (the worst case; before, and with PgBouncer, the SET
                   simply stays on a shared server, which is the bug being paid for)
Per run: TPS, the ratio to pgha-before, and the proxy's CPU time per transaction.

Usage: /usr/bin/python3 bench/session_cost.py [--seconds 15] [--repeats 3] [--before REV]
           [--workloads select-simple,select-extended,set-each-xact]
Needs the built binary (make), git, and scripts/install-deps.sh --bench (pgbouncer).
Run as root (PostgreSQL and PgBouncer run as the OS user postgres).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(ROOT, "build", "pgha"))

from proxy import PgBouncer, cpu_ticks, raise_nofile, run_pgbench, CLK_TCK  # noqa: E402
from conftest import Cluster, Etcd, Proxy, make_base_dir, wait_until  # noqa: E402

SET_SCRIPT = """\\set aid random(1, 100000 * :scale)
SET search_path = public, pg_catalog;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
"""


def build_before(rev, into):
    """pgha at rev, built in a git worktree (release build): its binary."""
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", into, rev], check=True)
    subprocess.run(["make", "-C", into, "-j2", "build/pgha"], check=True, capture_output=True)
    return os.path.join(into, "build", "pgha")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workloads", default="select-simple,select-extended,set-each-xact")
    ap.add_argument("--before", default=None, help="git revision of pgha-before (default: the commit "
                    "before src/proxy/sess.c was added)")
    args = ap.parse_args()
    raise_nofile()
    before_rev = args.before or subprocess.run(
        ["git", "-C", ROOT, "log", "--diff-filter=A", "--format=%H^", "--", "src/proxy/sess.c"],
        check=True, capture_output=True, text=True).stdout.split()[-1]
    base = make_base_dir()
    wt = tempfile.mkdtemp(prefix="pgha-before-")
    os.rmdir(wt)
    etcd = cluster = None
    proxies = {}
    try:
        print(f"building pgha-before ({before_rev}) ...", flush=True)
        before_bin = build_before(before_rev, wt)
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        node = cluster.add("b1", {"parameters.max_connections": "200"})
        node.start()
        cluster.wait_streaming(["b1"], timeout=120)
        env = dict(os.environ)
        passfile = os.path.join(base, "secrets", "pgpass")
        with open(passfile, "w") as f:
            f.write(f"*:*:*:postgres:{cluster.su_pw}\n")
        os.chmod(passfile, 0o600)
        env["PGPASSFILE"] = passfile
        subprocess.run([shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench", "-i", "-s", "10",
                        "-q", "-h", "127.0.0.1", "-p", str(node.pg_port), "-U", "postgres", "postgres"],
                       env=env, check=True, capture_output=True)
        script = os.path.join(base, "set.sql")
        with open(script, "w") as f:
            f.write(SET_SCRIPT)
        settings = {"proxy.pool_size": "20", "proxy.log_level": "warn", "proxy.max_client_conn": "2000"}
        now = Proxy(cluster, dict(settings, **{"proxy.name": "now"}), name="pgha-now").start()
        os.environ["PGHA_BIN"], saved = before_bin, os.environ["PGHA_BIN"]
        try:
            import conftest
            conftest.PGHA_BIN, saved_mod = before_bin, conftest.PGHA_BIN
            old = Proxy(cluster, dict(settings, **{"proxy.name": "before"}), name="pgha-before").start()
        finally:
            os.environ["PGHA_BIN"] = saved
            conftest.PGHA_BIN = saved_mod
        for p in (now, old):
            wait_until("the proxy to route to the leader", lambda p=p: p.connect(autocommit=True).close() or True,
                       timeout=30)
        bouncer = PgBouncer(base, cluster.su_pw, node.pg_port).start()
        proxies = {"pgha-before": (old.port, [old.proc.pid], old),
                   "pgha-now": (now.port, [now.proc.pid], now),
                   "pgbouncer": (bouncer.port, bouncer.pids(), bouncer)}
        workloads = {
            "select-simple": ["-S", "-M", "simple", "-c", "16", "-j", "2"],
            "select-extended": ["-S", "-M", "extended", "-c", "16", "-j", "2"],
            "set-each-xact": ["-f", script, "-M", "simple", "-c", "16", "-j", "2"],
        }
        workloads = {w: workloads[w] for w in args.workloads.split(",")}
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.repeats} x "
              f"{args.seconds} s per target and workload, interleaved; median shown", flush=True)
        for wname, wargs in workloads.items():
            res = {t: [] for t in proxies}
            for t, (port, _, _) in proxies.items():
                run_pgbench(port, wargs, args.warmup, env)
            for _ in range(args.repeats):
                for t, (port, pids, _) in proxies.items():
                    c0 = cpu_ticks(pids)
                    tps, n, failed = run_pgbench(port, wargs, args.seconds, env)
                    cpu_us = (cpu_ticks(pids) - c0) / CLK_TCK * 1e6 / max(n, 1)
                    res[t].append((tps, cpu_us, failed))
            base_tps = statistics.median(r[0] for r in res["pgha-before"])
            print(f"{wname}:")
            for t, rows in res.items():
                tps = statistics.median(r[0] for r in rows)
                cpu = statistics.median(r[1] for r in rows)
                failed = sum(r[2] for r in rows)
                print(f"  {t:12s} {tps:9.0f} tps  {tps / base_tps:5.2f} x pgha-before  "
                      f"{cpu:6.1f} us proxy CPU/xact" + (f"  ({failed} failed)" if failed else ""),
                      flush=True)
    finally:
        for _, _, p in proxies.values():
            p.stop()
        if cluster is not None:
            cluster.stop_all()
        if etcd is not None:
            etcd.stop()
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", wt], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
