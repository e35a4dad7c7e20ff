#!/usr/bin/env python3
"""Planned switchover benchmark: the longest pause a client sees and the count of
client errors over --rounds switchovers, for pgha and, side by side under the same
load, Patroni + HAProxy + PgBouncer.

pgha      one etcd, three agents (n1..n3, the integration-test defaults: ttl 9 s,
          loop_wait 1 s), one `pgha proxy` (transaction mode, pool_size = --clients).
          Switchover: `pgha ctl switchover --to X --force --wait 60`.
Patroni   one etcd, three Patroni members (bench/patroni_bench.py, --patroni-profile,
          default ttl10: ttl 10, loop_wait 1, retry_timeout 3, the relation of pgha's
          defaults), HAProxy in front of them (`option httpchk OPTIONS /primary` on the
          Patroni REST APIs, inter 500ms fall 1 rise 1, on-marked-down shutdown-sessions;
          retries 2 and timeout connect 4s as in Patroni's haproxy.cfg template)
          and PgBouncer in transaction mode (default_pool_size = --clients,
          server_login_retry 1 s instead of 15 s) pointing at HAProxy. Switchover:
          POST /switchover {"leader": L, "candidate": X} to the leader's REST API, which
          is what `patronictl switchover --leader L --candidate X --force` sends (without
          patronictl's Python start-up in the measured time).

Load (the same for both): --clients threads, each on its own long-lived connection
through the pooler (psycopg 3, autocommit, no prepared statements), committing
`INSERT INTO so_bench (client, seq) VALUES (...) RETURNING inet_server_port()` one
at a time with --think seconds between commits. Every attempt is recorded (start,
end, server port, error text). A failed commit is one error; a connection lost
with it is reconnected, and every failed connection attempt is one more error; a
failed client waits 0.1 s before it tries again.

Rounds: every member streaming (bounded wait), 2 s of steady load, then a switchover
to the other standbys in turn (sorted, alternating as in tests/integration/
test_switchover.py). A round's window runs from the request until every client has
committed on the new leader, plus 0.5 s. Figures:
  errors            failed commits + failed connection attempts (whole run)
  longest pause     per client, from the first attempt after its previous successful
                    commit to the end of the next successful one (retries included; with
                    no error it is the latency of one commit), the longest in any window
  longest commit    the longest single successful commit in any window
  switchover time   pgha: the time `pgha ctl` prints; Patroni: the wall time of the POST
                    (Patroni polls its result once a second, so it is coarse)
  first commit      request -> first commit acknowledged by the new leader's PostgreSQL
  reference         p50/p99 commit latency outside the windows
At the end every acknowledged row must be on the last leader.

Usage: /usr/bin/python3 bench/switchover.py [--rounds 10] [--clients 8] [--only pgha|patroni]
                  [--think 0.01] [--patroni-profile ttl10] [--haproxy-retries 2] [--keep]
Needs the built binary (make) and scripts/install-deps.sh --bench (patroni, pgbouncer,
haproxy); run as root (PostgreSQL, Patroni and PgBouncer run as the OS user postgres).
Everything listens on 127.0.0.1 on free ports and is stopped by PID at the end.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

import psycopg  # noqa: E402

from conftest import (PGHA_BIN, Cluster, Etcd, Proxy, free_port, make_base_dir,  # noqa: E402
                      stop_process, wait_until)
from proxy import HAPROXY_BIN, PGBOUNCER_BIN, PgBouncer, port_open  # noqa: E402  (bench/proxy.py)

NODES = ("n1", "n2", "n3")
RETRY_DELAY = 0.1          # a client that failed waits this long before trying again
WINDOW_TAIL = 0.5          # a window ends this long after every client committed on the new leader
STEADY = 2.0               # steady load before each switchover
TABLE = "so_bench"
SYSTEM_LABEL = {"pgha": "pgha", "patroni": "Patroni+HAProxy+PgBouncer"}


def tail(path, chars=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError as e:
        return f"({e})"


def cpu_sample():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v), idle


# ---------------------------------------------------------------- Patroni's stack

class HAProxyPatroni:
    """HAProxy routing to whichever Patroni member answers 200 to OPTIONS /primary."""

    def __init__(self, base, cluster, retries=2):
        self.port = free_port()
        self.cfg = os.path.join(base, "haproxy.cfg")
        self.log_path = os.path.join(base, "haproxy.log")
        servers = "\n".join(
            f"    server {n.name} {n.host}:{n.pg_port} check port {n.api_port}"
            for n in cluster.nodes.values())
        with open(self.cfg, "w") as f:
            # Timeouts and retries as in Patroni's haproxy.cfg template (retries 2, timeout
            # connect 4s); the checks as fast as the comparison asks for.
            f.write(f"""global
    maxconn 1000
    log stdout format iso local0 info

defaults
    mode tcp
    log global
    option tcplog
    retries {retries}
    timeout connect 4s
    timeout client 1h
    timeout server 1h
    timeout check 1s

listen primary
    bind 127.0.0.1:{self.port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions
{servers}
""")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", self.cfg], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until("haproxy to listen", lambda: port_open(self.port), timeout=15)
        return self

    def stop(self):
        return stop_process(self.proc, timeout=30)


# PgBouncer as bench/proxy.py runs it, in transaction mode in front of HAProxy; a failed
# server login is retried after 1 s (default 15 s), in Patroni's favour.
PGBOUNCER_SETTINGS = {"pool_mode": "transaction", "max_client_conn": "200", "server_login_retry": "1",
                      "ignore_startup_parameters": "extra_float_digits"}


class Load:
    """--clients threads, each committing one row at a time on its own connection."""

    def __init__(self, port, password, n, think):
        self.port = port
        self.password = password
        self.n = n
        self.think = think
        self.stop_ev = threading.Event()
        # Per client, appended only by its own thread: (kind, t_start, t_end, port, error)
        # kind: "ok", "commit" (failed commit) or "connect" (failed connection attempt).
        self.recs = [[] for _ in range(n)]
        self.acked = [[] for _ in range(n)]     # seq of acknowledged rows
        self.lost = [0] * n                     # connections lost
        self.threads = []

    def _connect(self):
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               password=self.password, dbname="postgres", connect_timeout=5,
                               autocommit=True, prepare_threshold=None)

    def _run(self, cid):
        recs, acked = self.recs[cid], self.acked[cid]
        conn = None
        seq = 0
        while not self.stop_ev.is_set():
            if conn is None:
                t0 = time.monotonic()
                try:
                    conn = self._connect()
                except Exception as e:
                    recs.append(("connect", t0, time.monotonic(), None, err_text(e)))
                    time.sleep(RETRY_DELAY)
                    continue
            seq += 1
            t0 = time.monotonic()
            try:
                port = conn.execute(f"INSERT INTO {TABLE} (client, seq) VALUES (%s, %s) "
                                    "RETURNING inet_server_port()", (cid, seq)).fetchone()[0]
            except Exception as e:
                recs.append(("commit", t0, time.monotonic(), None, err_text(e)))
                if conn.closed or conn.broken:
                    self.lost[cid] += 1
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                time.sleep(RETRY_DELAY)
                continue
            recs.append(("ok", t0, time.monotonic(), port, None))
            acked.append(seq)
            if self.think > 0:
                time.sleep(self.think)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def start(self):
        self.t_start = time.monotonic()
        self.t_stop = None
        for cid in range(self.n):
            t = threading.Thread(target=self._run, args=(cid,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self, timeout=60):
        self.stop_ev.set()
        self.t_stop = time.monotonic()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return [i for i, t in enumerate(self.threads) if t.is_alive()]

    def last_ok(self, cid):
        """(t_end, port) of the client's last successful commit, or None."""
        for kind, _, t1, port, _ in reversed(self.recs[cid][-50:]):
            if kind == "ok":
                return t1, port
        return None

    def all_committed_on(self, port, after):
        for cid in range(self.n):
            lo = self.last_ok(cid)
            if lo is None or lo[1] != port or lo[0] <= after:
                return False
        return True

    def first_commit_on(self, port, after):
        best = None
        for recs in self.recs:
            for kind, _, t1, p, _ in recs:
                if kind == "ok" and p == port and t1 > after and (best is None or t1 < best):
                    best = t1
                    break
        return best


def err_text(e):
    s = " ".join(str(e).split())
    return f"{type(e).__name__}: {s}"[:300]


# ---------------------------------------------------------------- one system

class PghaSide:
    label = "pgha"

    def __init__(self, base, etcd, args):
        self.args = args
        self.cluster = Cluster(base, etcd)
        params = {"parameters.max_connections": str(max(30, args.clients + 22))}
        for n in NODES:
            self.cluster.add(n, params).start()
        self.proxy = None

    def up(self):
        leader = self.cluster.wait_streaming(list(NODES), timeout=300)
        self.proxy = Proxy(self.cluster, {"proxy.pool_size": str(self.args.clients),
                                          "proxy.hold_timeout": "30s"}).start()
        key = f"/pgha/{self.cluster.name}/proxies/proxy"
        wait_until("the proxy to register in etcd", lambda: key in subprocess.run(
            ["etcdctl", "--endpoints", self.cluster.etcd.url, "get", "--prefix", "--keys-only",
             f"/pgha/{self.cluster.name}/"], capture_output=True, text=True, timeout=30).stdout,
            timeout=30)
        return leader, self.proxy.port

    def describe(self):
        r = subprocess.run([PGHA_BIN, "--version"], capture_output=True, text=True, timeout=30)
        v = (r.stdout or r.stderr).strip() or "pgha"
        return (f"{v}; agents with the test defaults (ttl 9s, loop_wait 1s); pgha proxy, "
                f"transaction mode, pool_size {self.args.clients}")

    def nodes(self):
        return self.cluster.nodes

    def wait_streaming(self, timeout=120):
        return self.cluster.wait_streaming(list(NODES), timeout=timeout)

    def switchover(self, leader, target):
        """(ok, reported time or None, output)."""
        r = subprocess.run([PGHA_BIN, "ctl", "--etcd", self.cluster.etcd.url, "--cluster",
                            self.cluster.name, "switchover", "--to", target, "--force", "--wait", "60"],
                           capture_output=True, text=True, timeout=90)
        out = (r.stdout + r.stderr).strip()
        m = re.search(rf"switched over from {re.escape(leader)} to {re.escape(target)} in ([\d.]+) s", r.stdout)
        return r.returncode == 0 and m is not None, float(m.group(1)) if m else None, out

    def logs(self):
        b = self.cluster.base
        return [os.path.join(b, f) for f in sorted(os.listdir(b)) if f.endswith(".log")]

    def stop(self):
        errs = []
        for what, fn in (("proxy", self.proxy and self.proxy.stop), ("agents", self.cluster.stop_all)):
            if fn:
                try:
                    fn()
                except Exception as e:
                    errs.append(f"stopping {what}: {e!r}")
        return errs


class PatroniSide:
    label = "Patroni+HAProxy+PgBouncer"

    def __init__(self, base, etcd, args):
        import patroni_bench
        self.pb = patroni_bench
        self.args = args
        self.base = base
        params = dict(patroni_bench.PG_PARAMETERS, max_connections=max(30, args.clients + 22))
        self.cluster = patroni_bench.PatroniCluster(base, etcd, args.patroni_profile, parameters=params)
        for n in NODES:
            self.cluster.add(n).start()
        self.haproxy = self.bouncer = None

    def up(self):
        leader = self.cluster.wait_streaming(list(NODES), timeout=300)
        self.haproxy = HAProxyPatroni(self.base, self.cluster, self.args.haproxy_retries).start()
        self.bouncer = PgBouncer(self.base, self.cluster.su_pw, self.haproxy.port, self.args.clients, PGBOUNCER_SETTINGS).start()
        return leader, self.bouncer.port

    def describe(self):
        t = self.pb.PROFILES[self.args.patroni_profile]
        ver = lambda cmd: (subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
                           .splitlines() or ["?"])[0]
        return (f"{self.pb.patroni_version()} (profile {self.args.patroni_profile}: ttl {t['ttl']}s, "
                f"loop_wait {t['loop_wait']}s, retry_timeout {t['retry_timeout']}s), etcd3; "
                f"{ver([HAPROXY_BIN, '-v'])} (retries {self.args.haproxy_retries}); {ver([PGBOUNCER_BIN, '--version'])}, "
                f"default_pool_size {self.args.clients}, "
                + ", ".join(f"{k} {v}" for k, v in PGBOUNCER_SETTINGS.items()))

    def nodes(self):
        return self.cluster.nodes

    def wait_streaming(self, timeout=120):
        leader = self.cluster.wait_streaming(list(NODES), timeout=timeout)
        # HAProxy must route to it too (a check every 500 ms).
        wait_until("HAProxy to route to the leader", lambda: self._via_haproxy() == self.cluster.nodes[leader].pg_port,
                   timeout=30)
        return leader

    def _via_haproxy(self):
        with psycopg.connect(host="127.0.0.1", port=self.haproxy.port, user="postgres",
                             password=self.cluster.su_pw, dbname="postgres", connect_timeout=2) as c:
            return c.execute("SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE inet_server_port() END").fetchone()[0]

    def switchover(self, leader, target):
        status, body = self.cluster.nodes[leader].api_post(
            "/switchover", {"leader": leader, "candidate": target}, timeout=60)
        ok = status == 200 and f'"{target}"' in body and "Successfully" in body
        return ok, None, f"HTTP {status}: {body.strip()}"

    def logs(self):
        b = self.base
        return [os.path.join(b, f) for f in sorted(os.listdir(b)) if f.endswith(".log")]

    def stop(self):
        errs = []
        for what, fn in (("pgbouncer", self.bouncer and self.bouncer.stop),
                         ("haproxy", self.haproxy and self.haproxy.stop),
                         ("patroni", self.cluster.stop_all)):
            if fn:
                try:
                    fn()
                except Exception as e:
                    errs.append(f"stopping {what}: {e!r}")
        return errs


def run_system(system, args):
    """Run the rounds for one system; returns a result dict (partial on failure)."""
    res = {"system": system, "rounds": [], "error": None, "load": None, "loadavg": [],
           "describe": None, "missing": None, "unacked_present": None, "stuck": []}
    base = make_base_dir()
    etcd = side = load = None
    ok = False
    cpu0 = cpu_sample()
    res["loadavg"].append(os.getloadavg())
    t_begin = time.monotonic()
    try:
        etcd = Etcd(base).start()
        side = (PghaSide if system == "pgha" else PatroniSide)(base, etcd, args)
        res["describe"] = side.describe()
        print(f"{SYSTEM_LABEL[system]}: {res['describe']}", flush=True)
        leader, port = side.up()
        side.nodes()[leader].sql(f"CREATE TABLE {TABLE} (client int, seq int, t timestamptz DEFAULT now(), "
                                 "PRIMARY KEY (client, seq))")
        leader = side.wait_streaming(timeout=120)
        load = res["load"] = Load(port, side.cluster.su_pw, args.clients, args.think).start()
        wait_until("every client to commit", lambda: load.all_committed_on(
            side.nodes()[leader].pg_port, time.monotonic() - 1), timeout=60, interval=0.05)
        current = leader
        for r in range(args.rounds):
            current = side.wait_streaming(timeout=180)
            res["loadavg"].append(os.getloadavg())
            time.sleep(STEADY)
            target = sorted(n for n in NODES if n != current)[r % 2]
            new_port = side.nodes()[target].pg_port
            t0 = time.monotonic()
            try:
                sw_ok, reported, out = side.switchover(current, target)
            except Exception as e:
                sw_ok, reported, out = False, None, err_text(e)
            t1 = time.monotonic()
            rnd = {"n": r + 1, "from": current, "to": target, "t0": t0, "t1": t1, "ok": sw_ok,
                   "reported": reported, "output": out, "resumed": None}
            if sw_ok:
                try:
                    wait_until(f"every client to commit on {target}",
                               lambda: load.all_committed_on(new_port, t0), timeout=60, interval=0.02)
                    rnd["resumed"] = time.monotonic()
                except AssertionError:
                    pass
            rnd["t_end"] = max(t1, rnd["resumed"] or time.monotonic()) + WINDOW_TAIL
            rnd["first"] = load.first_commit_on(new_port, t0)
            res["rounds"].append(rnd)
            first = f"{rnd['first'] - t0:5.2f} s" if rnd["first"] else "  none "
            resumed = f"{rnd['resumed'] - t0:5.2f} s" if rnd["resumed"] else "never (60 s)"
            print(f"  {system:7s} round {r + 1:2d}: {current} -> {target}: "
                  + (f"ok, reported {reported:.2f} s, " if sw_ok and reported is not None else
                     "ok, " if sw_ok else "FAILED, ")
                  + f"request {t1 - t0:5.2f} s, first commit on {target} +{first}, "
                  f"every client on it +{resumed}", flush=True)
            if not sw_ok:
                print("    " + out.replace("\n", "\n    "), flush=True)
            time.sleep(WINDOW_TAIL)
        time.sleep(STEADY)
        res["stuck"] = load.stop()
        # Every acknowledged row must be on the last leader.
        leader = side.wait_streaming(timeout=180)
        rows = set(side.nodes()[leader].sql(f"SELECT client, seq FROM {TABLE}"))
        acked = {(c, s) for c in range(args.clients) for s in load.acked[c]}
        res["missing"] = sorted(acked - rows)
        res["unacked_present"] = len(rows - acked)
        res["rows"] = len(rows)
        ok = True
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
        print(f"  {system} FAILED: {res['error']}", flush=True)
    finally:
        if load is not None and not load.stop_ev.is_set():
            res["stuck"] = load.stop(timeout=30)
        errs = side.stop() if side is not None else []
        if etcd is not None:
            try:
                etcd.stop()
            except Exception as e:
                errs.append(f"stopping etcd: {e!r}")
        for e in errs:
            ok = False
            print(f"  {system}: {e}", file=sys.stderr)
        res["loadavg"].append(os.getloadavg())
        c1 = cpu_sample()
        res["cpu_busy"] = 1 - (c1[1] - cpu0[1]) / max(1, c1[0] - cpu0[0])
        res["wall"] = time.monotonic() - t_begin
        if not ok:
            for p in (side.logs() if side is not None else []):
                print(f"\n===== {p} (tail) =====\n{tail(p)}", file=sys.stderr)
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"  {system}: kept {base}", file=sys.stderr, flush=True)
    return res


# ---------------------------------------------------------------- figures

def pct(v, q):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def analyse(res):
    load, rounds = res["load"], res["rounds"]
    f = {"rounds_ok": sum(1 for r in rounds if r["ok"]), "rounds": len(rounds)}
    if load is None:
        return f
    wins = [(r["t0"], r["t_end"]) for r in rounds]

    def window_of(a, b):
        for i, (w0, w1) in enumerate(wins):
            if a <= w1 and b >= w0:
                return i
        return None

    errors, errors_in, outside, in_commit, pauses = [], 0, [], [], []
    round_pause = [0.0] * len(rounds)
    round_errors = [0] * len(rounds)
    n_ok = 0
    for cid, recs in enumerate(load.recs):
        pause_start = None
        for kind, a, b, port, err in recs:
            if pause_start is None:
                pause_start = a
            w = window_of(a, b)
            if kind != "ok":
                errors.append((cid, kind, a, b, err, w))
                if w is not None:
                    errors_in += 1
                    round_errors[w] += 1
                continue
            n_ok += 1
            if w is None:
                outside.append(b - a)
            else:
                in_commit.append(b - a)
            p = b - pause_start
            pw = window_of(pause_start, b)
            if pw is not None:
                pauses.append(p)
                round_pause[pw] = max(round_pause[pw], p)
            pause_start = None
    f.update({
        "errors": len(errors), "errors_in_windows": errors_in, "error_list": errors,
        "lost": sum(load.lost), "clients_with_errors": len({e[0] for e in errors}),
        "clients": load.n, "commits": n_ok,
        "rate": n_ok / max(1e-9, (load.t_stop or time.monotonic()) - load.t_start),
        "longest_pause": max(pauses) if pauses else None,
        "longest_commit": max(in_commit) if in_commit else None,
        "round_pause": round_pause, "round_errors": round_errors,
        "p50_out": pct(outside, 0.50), "p99_out": pct(outside, 0.99), "max_out": max(outside) if outside else None,
        "n_out": len(outside),
        "reported": [r["reported"] for r in rounds if r["ok"] and r["reported"] is not None],
        "request": [r["t1"] - r["t0"] for r in rounds if r["ok"]],
        "first": [r["first"] - r["t0"] for r in rounds if r["first"]],
        "resumed": [r["resumed"] - r["t0"] for r in rounds if r["resumed"]],
    })
    return f


def med_max(v):
    if not v:
        return "n/a"
    return f"{statistics.median(v):.2f} / {max(v):.2f} s"


def secs(v):
    return "n/a" if v is None else f"{v:.3f} s"


def ms(v):
    return "n/a" if v is None else f"{v * 1000:.1f} ms"


def print_errors(system, res, f, limit=12):
    errs = f.get("error_list") or []
    if not errs:
        return
    starts = {r["n"] - 1: r["t0"] for r in res["rounds"]}
    print(f"\n{SYSTEM_LABEL[system]}: {len(errs)} client errors, {f['lost']} connections lost "
          f"({f['clients_with_errors']} of {f['clients']} clients)")
    by_text = collections.Counter((kind, re.sub(r"\d+", "N", e)) for _, kind, _, _, e, _ in errs)
    print("  distinct errors (digits as N):")
    for (kind, text), n in by_text.most_common(limit):
        print(f"    {n:5d} x {kind:7s} {text}")
    print("  per round: errors, first/last error relative to the request (client, took):")
    per = collections.defaultdict(list)
    for e in errs:
        per[e[5]].append(e)
    for w in sorted(per, key=lambda x: (x is None, x)):
        es = sorted(per[w], key=lambda e: e[2])
        if w is None:
            print(f"    outside any window: {len(es)} (first: client {es[0][0]} {es[0][4]})")
            continue
        t0 = starts[w]
        a, z = es[0], es[-1]
        print(f"    round {w + 1:2d}: {len(es):4d}, first +{a[2] - t0:.2f} s (client {a[0]}, "
              f"{a[3] - a[2]:.3f} s, {a[1]}), last +{z[2] - t0:.2f} s (client {z[0]}, {z[3] - z[2]:.3f} s, {z[1]})")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--only", choices=("pgha", "patroni"), default=None)
    ap.add_argument("--think", type=float, default=0.01, help="seconds between a client's commits")
    ap.add_argument("--patroni-profile", default="ttl10", help="default, ttl10 or fast (bench/patroni_bench.py)")
    ap.add_argument("--haproxy-retries", type=int, default=2,
                    help="HAProxy `retries` (2 as in Patroni's template; HAProxy's default is 3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (logs)")
    args = ap.parse_args()
    if args.rounds < 1 or args.clients < 1:
        ap.error("--rounds and --clients must be at least 1")
    systems = [args.only] if args.only else ["pgha", "patroni"]
    if "patroni" in systems:
        import patroni_bench
        if args.patroni_profile not in patroni_bench.PROFILES:
            ap.error(f"unknown Patroni profile {args.patroni_profile!r}")
        for b in (patroni_bench.PATRONI_BIN, PGBOUNCER_BIN, HAPROXY_BIN):
            if not os.path.exists(b):
                sys.exit(f"{b} not found: run scripts/install-deps.sh --bench")

    t_start = time.monotonic()
    print(f"{args.rounds} switchovers per system, {args.clients} clients (think {args.think * 1000:.0f} ms), "
          f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}", flush=True)
    results, figs = {}, {}
    for s in systems:
        results[s] = run_system(s, args)
        figs[s] = analyse(results[s])
        r = results[s]
        la = [x[0] for x in r["loadavg"]]
        print(f"  ({s} took {r['wall']:.0f} s; machine CPU busy {r['cpu_busy'] * 100:.0f}% over it, "
              f"1-min load average {min(la):.2f}..{max(la):.2f})", flush=True)

    for s in systems:
        print_errors(s, results[s], figs[s])

    # ---- side by side
    cols = systems
    print("\nplanned switchover under load: "
          + " vs ".join(f"{SYSTEM_LABEL[s]}" for s in cols))
    rows = [
        ("switchovers completed", lambda f, r: f"{f['rounds_ok']}/{f['rounds']}", None),
        ("client errors (commits + connects)", lambda f, r: str(f.get("errors", "n/a")), None),
        ("  of which in switchover windows", lambda f, r: str(f.get("errors_in_windows", "n/a")), None),
        ("connections lost", lambda f, r: str(f.get("lost", "n/a")), None),
        ("clients that saw an error", lambda f, r: f"{f.get('clients_with_errors', 'n/a')}/{f.get('clients', '?')}", None),
        ("longest pause (incl. retries)", lambda f, r: secs(f.get("longest_pause")), "longest_pause"),
        ("longest single commit in windows", lambda f, r: secs(f.get("longest_commit")), "longest_commit"),
        ("median of per-round longest pause",
         lambda f, r: secs(statistics.median(f["round_pause"]) if f.get("round_pause") else None), "med_pause"),
        ("switchover time reported, med/max", lambda f, r: med_max(f.get("reported")), None),
        ("request returned, med/max", lambda f, r: med_max(f.get("request")), "request"),
        ("request -> 1st commit on new leader", lambda f, r: med_max(f.get("first")), "first"),
        ("request -> every client on it", lambda f, r: med_max(f.get("resumed")), "resumed"),
        ("commit p50 outside windows", lambda f, r: ms(f.get("p50_out")), "p50_out"),
        ("commit p99 outside windows", lambda f, r: ms(f.get("p99_out")), "p99_out"),
        ("commits acknowledged", lambda f, r: str(f.get("commits", "n/a")), None),
        ("commits per second (whole run)", lambda f, r: f"{f['rate']:.0f}" if "rate" in f else "n/a", None),
        ("acknowledged rows missing at the end",
         lambda f, r: "n/a" if r.get("missing") is None else str(len(r["missing"])), None),
        ("rows committed but not acknowledged",
         lambda f, r: "n/a" if r.get("unacked_present") is None else str(r["unacked_present"]), None),
        ("1-min load average (min..max)",
         lambda f, r: f"{min(x[0] for x in r['loadavg']):.2f}..{max(x[0] for x in r['loadavg']):.2f}", None),
    ]

    def num(s, key):
        f = figs[s]
        if key == "med_pause":
            return statistics.median(f["round_pause"]) if f.get("round_pause") else None
        v = f.get(key)
        if isinstance(v, list):
            return statistics.median(v) if v else None
        return v

    w0 = 38
    head = f"{'':{w0}s}" + "".join(f"{SYSTEM_LABEL[s]:>28s}" for s in cols)
    if len(cols) == 2:
        head += f"{'pgha/Patroni':>14s}"
    print(head)
    for label, fn, key in rows:
        line = f"{label:{w0}s}" + "".join(f"{fn(figs[s], results[s]):>28s}" for s in cols)
        if len(cols) == 2 and key:
            a, b = num("pgha", key), num("patroni", key)
            line += f"{a / b:14.2f}" if a is not None and b else f"{'n/a':>14s}"
        print(line)
    if len(cols) == 2:
        print("(ratios: medians where the cell shows med/max; below 1: pgha is shorter)")

    if "pgha" in figs:
        f, r = figs["pgha"], results["pgha"]
        lp = f.get("longest_pause")
        e = f.get("errors")
        met = (e == 0 and lp is not None and lp <= 1.0 and f["rounds_ok"] == f["rounds"]
               and r.get("missing") == [])
        print(f"\ntargets: errors 0 (pgha: {e if e is not None else 'n/a'}), longest pause <= 1 s "
              f"(pgha: {lp:.3f} s)" if lp is not None else
              f"\ntargets: errors 0 (pgha: {e}), longest pause <= 1 s (pgha: n/a)")
        print("targets " + ("met" if met else "NOT met")
              + ("" if f["rounds_ok"] == f["rounds"] else f" ({f['rounds_ok']}/{f['rounds']} switchovers completed)")
              + ("" if r.get("missing") in ([], None) else f" ({len(r['missing'])} acknowledged rows missing)"))
    for s in systems:
        if results[s].get("missing"):
            print(f"{s}: acknowledged rows missing (client, seq), first 10: {results[s]['missing'][:10]}")
        if results[s].get("stuck"):
            print(f"{s}: clients still in a commit when the load stopped: {results[s]['stuck']}")
    print(f"\ntotal wall time {time.monotonic() - t_start:.0f} s; 1-min load average now {os.getloadavg()[0]:.2f}")
    if any(results[s]["error"] for s in systems):
        sys.exit(1)


if __name__ == "__main__":
    main()
