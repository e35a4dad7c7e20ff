#!/usr/bin/env python3
"""Proxy benchmark: pgbench against PostgreSQL directly, pgha proxy, PgBouncer
and HAProxy, in one run and interleaved, plus the memory of 10,000 idle clients.

Setup: one etcd and ONE pgha agent (a single-member cluster: the leader),
[parameters] max_connections = 200, pgbench -i -s 10. In front of the leader:
  pgha       `pgha proxy` (transaction pooling, pool_size 20, log_level warn)
  pgbouncer  PgBouncer (pool_mode transaction, default_pool_size 20, SCRAM, plaintext auth_file)
  haproxy    HAProxy (mode tcp, one server: the leader; no pooling)
pgbench gets the password from a PGPASSFILE. Workloads (each --seconds, after a
3 s warm-up run that is not counted):
  select16    -S -M simple -c 16 -j 2
  select1000  -S -M simple -c 1000 -j 2   (direct and haproxy: n/a, PostgreSQL has
                                          max_connections 200 and they do not pool)
  tpcb16      default (tpcb-like) script, -c 16 -j 2
  connect16   -C -S -M simple -c 16 -j 2  (a new connection per transaction)
For each workload the targets run in turn (direct, pgha, pgbouncer, haproxy), --repeats
times; the median is reported. Per run: TPS, TPS / direct, and the proxy's CPU time
(utime + stime from /proc/<pid>/stat, before and after the run) per transaction.
Then --busy-clients (default 10000) pgbench clients all running transactions (select-only,
-M simple, -j 2; --busy-scripts tpcb adds tpcb-like ones) through pgha and through PgBouncer, each freshly started, same pool size
(20), same generator, same window: TPS, proxy CPU per transaction, peak RSS, latency
p50/p99/max (bench/busy.py says how). On a 2-core machine pgbench competes with the pooler
and PostgreSQL for the CPUs; the output says how much each took.
Finally --idle-clients (default 10000) connections that complete startup and SCRAM
authentication through pgha and PgBouncer (each freshly started), kept idle; VmRSS
of the pooler with 0 clients and with N clients gives the RSS per client.

--tls: TLS on every hop. A private CA (openssl) and a certificate for 127.0.0.1; the agent
runs PostgreSQL with [tls] require = on (hostssl only); pgbench connects with sslmode=require
to every target; pgha has [tls] cert_file/key_file and server_sslmode = verify-full with
server_ca_file; PgBouncer has client_tls_sslmode = require with the same certificate and
server_tls_sslmode = verify-full with the same CA; HAProxy passes the clients' TLS through to
PostgreSQL (direct and haproxy: one TLS hop, the poolers: two).

Usage: /usr/bin/python3 bench/proxy.py [--seconds 15] [--repeats 2] [--tls]
           [--workloads select16,select1000,tpcb16,connect16] [--idle-clients 10000]
           [--busy-clients 10000] [--busy-seconds 20] [--busy-warmup 5] [--busy-repeats 2]
           [--busy-scripts select,tpcb] [--busy-connect-budget 600] [--keep]
Needs the built binary (make) and scripts/install-deps.sh --bench (pgbouncer,
haproxy). Run as root (PostgreSQL and PgBouncer run as the OS user postgres).
"""
import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

import psycopg  # noqa: E402

import busy  # noqa: E402

from conftest import (Cluster, Etcd, Proxy, free_port, make_base_dir, stop_process,  # noqa: E402
                      wait_until)

TARGETS = ("direct", "pgha", "pgbouncer", "haproxy")
POOLERS = ("pgha", "pgbouncer", "haproxy")
WORKLOADS = {
    # name: (description, pgbench args, targets that cannot run it -> reason)
    "select16": ("select-only, 16 clients", ["-S", "-M", "simple", "-c", "16", "-j", "2"], {}),
    "select1000": ("select-only, 1000 clients", ["-S", "-M", "simple", "-c", "1000", "-j", "2"],
                   {"direct": "max_connections 200", "haproxy": "no pooling: 1000 server conns"}),
    "tpcb16": ("tpcb-like, 16 clients", ["-c", "16", "-j", "2"], {}),
    "connect16": ("-C select-only, 16 clients", ["-C", "-S", "-M", "simple", "-c", "16", "-j", "2"], {}),
}
NOFILE = 65536
CLK_TCK = os.sysconf("SC_CLK_TCK")
PGBOUNCER_BIN = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
HAPROXY_BIN = shutil.which("haproxy") or "/usr/sbin/haproxy"
PGBENCH_BIN = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):      # no CAP_SYS_RESOURCE: up to the hard limit only
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def cpu_ticks(pids):
    return sum(busy.proc_ticks(pid) for pid in pids)


def rss_bytes(pid):
    return busy.proc_status_kb(pid, "VmRSS") * 1024


def tail(path, chars=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError as e:
        return f"({e})"


class PgBouncer:
    """PgBouncer (Debian package) run as postgres, SCRAM with a plaintext auth_file, every
    database to one host:port. bench/switchover.py uses it too, with other settings."""

    SETTINGS = {"pool_mode": "transaction", "max_client_conn": "12000",
                "ignore_startup_parameters": "extra_float_digits,options",
                "log_connections": "0", "log_disconnections": "0"}

    def __init__(self, base, su_pw, target_port, pool_size=20, settings=None):
        self.dir = os.path.join(base, f"pgbouncer-{os.urandom(3).hex()}")
        os.makedirs(self.dir)
        self.port = free_port()
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.users = os.path.join(self.dir, "userlist.txt")
        self.log_path = os.path.join(self.dir, "pgbouncer.log")
        with open(self.users, "w") as f:
            f.write(f'"postgres" "{su_pw}"\n')
        lines = "\n".join(f"{k} = {v}" for k, v in (settings or self.SETTINGS).items())
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
* = host=127.0.0.1 port={target_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.users}
default_pool_size = {pool_size}
{lines}
""")
        for p in (self.dir, self.ini, self.users):
            shutil.chown(p, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        os.chmod(self.ini, 0o600)
        os.chmod(self.users, 0o600)
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PGBOUNCER_BIN, "-u", "postgres", self.ini], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=raise_nofile)
        log.close()
        wait_until("pgbouncer to listen", lambda: port_open(self.port), timeout=15)
        return self

    def stop(self):
        return stop_process(self.proc, sig=signal.SIGINT, timeout=30)

    def pids(self):
        return [self.proc.pid]


class HAProxy:
    def __init__(self, base, leader_port):
        self.port = free_port()
        self.cfg = os.path.join(base, "haproxy.cfg")
        self.log_path = os.path.join(base, "haproxy.log")
        with open(self.cfg, "w") as f:
            # maxconn 12000 needs 24017 fds; where the hard limit is lower (20000 in some
            # containers) "no strict-limits" lets HAProxy start with what it gets (only
            # up to 1000 clients connect to it here).
            f.write(f"""global
    maxconn 12000
    no strict-limits

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

listen pg
    bind 127.0.0.1:{self.port}
    maxconn 12000
    server leader 127.0.0.1:{leader_port}
""")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", self.cfg], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=raise_nofile)
        log.close()
        wait_until("haproxy to listen", lambda: port_open(self.port), timeout=15)
        return self

    def stop(self):
        return stop_process(self.proc, timeout=30)

    def pids(self):
        return [self.proc.pid]


def port_open(port):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def run_pgbench(port, args, seconds, env, timeout_extra=180):
    cmd = [PGBENCH_BIN, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n",
           "-T", str(seconds), *args, "postgres"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=raise_nofile,
                       timeout=seconds + timeout_extra)
    out = r.stdout + r.stderr
    m_tps = re.search(r"^tps = ([\d.]+)", out, re.M)
    m_n = re.search(r"number of transactions actually processed: (\d+)", out)
    m_fail = re.search(r"number of failed transactions: (\d+)", out)
    if r.returncode != 0 or not m_tps or not m_n:
        raise RuntimeError(f"pgbench exit {r.returncode}: {out[-1500:]}")
    return float(m_tps.group(1)), int(m_n.group(1)), int(m_fail.group(1)) if m_fail else 0


async def open_idle(port, n, batch=500, budget=600.0):
    """Open up to n connections (startup + SCRAM) in batches; stop at the first failing batch."""
    conns, errors = [], []
    sem = asyncio.Semaphore(batch)
    t0 = time.monotonic()

    async def one():
        async with sem:
            try:
                c = await psycopg.AsyncConnection.connect(
                    host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                    connect_timeout=60, autocommit=True)
                conns.append(c)
            except Exception as e:
                errors.append(repr(e))

    while len(conns) < n and not errors and time.monotonic() - t0 < budget:
        k = min(batch, n - len(conns))
        await asyncio.gather(*[one() for _ in range(k)])
    return conns, errors, time.monotonic() - t0


async def close_all(conns):
    for i in range(0, len(conns), 500):
        await asyncio.gather(*[c.close() for c in conns[i:i + 500]], return_exceptions=True)


def idle_test(name, port, pid, n):
    time.sleep(1)
    before = rss_bytes(pid)

    async def go():
        conns, errors, dt = await open_idle(port, n)
        await asyncio.sleep(2)
        # Check that they are alive: the pooler still has them all.
        after = rss_bytes(pid)
        await close_all(conns)
        return len(conns), errors, dt, after

    got, errors, dt, after = asyncio.run(go())
    per = (after - before) / got if got else float("nan")
    print(f"  {name:9s} idle clients {got:6d}/{n} in {dt:5.1f} s: RSS {before / 1e6:7.1f} MB -> "
          f"{after / 1e6:7.1f} MB, {per:8.0f} bytes/client"
          + (f"  (stopped: {errors[0]}; {len(errors)} errors)" if errors else ""), flush=True)
    return got, before, after, per, errors


BUSY_SCRIPTS = {
    # name: (description, pgbench args)
    "select": ("select-only, one statement per transaction", ["-S", "-M", "simple"]),
    "tpcb": ("tpcb-like: BEGIN, 5 statements, END; the server stays with the client throughout",
             ["-M", "simple"]),
}


def servers_probe(node):
    """A function counting the TCP connections to PostgreSQL but its own (the pooler's servers:
    the agent and its metrics use the unix socket), on one connection kept open."""
    conn = node.connect(autocommit=True)

    def count():
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE client_port > 0 "
                            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchone()[0]
    return conn, count


def busy_tests(args, base, cluster, node, env, failures):
    """--busy-clients through pgha and PgBouncer, each freshly started per run (peak RSS is
    its VmHWM), the order alternating between repeats. {(script, pooler): [result dict]}."""
    n = args.busy_clients
    maxconn = str(max(12000, n + 1000))
    out = {}
    for script in args.busy_scripts.split(","):
        descr, pgbench_args = BUSY_SCRIPTS[script]
        print(f"\nbusy clients, {script} ({descr}): {n} pgbench clients (pgbench "
              f"{' '.join(pgbench_args)} -c {n} -j 2 -l), pool size 20 to PostgreSQL, transaction "
              f"mode; window {args.busy_seconds} s after {args.busy_warmup} s of transactions; "
              f"pgbench shares the {os.cpu_count()} CPUs with the pooler and PostgreSQL", flush=True)
        busy_script(args, base, cluster, node, env, failures, n, maxconn, script, pgbench_args, out)
    return out


def busy_script(args, base, cluster, node, env, failures, n, maxconn, script, pgbench_args, out):
    """One pgbench script, --busy-repeats runs per pooler; results appended to out."""
    probe_conn, probe = servers_probe(node)
    try:
        for r in range(args.busy_repeats):
            for name in (("pgha", "pgbouncer") if r % 2 == 0 else ("pgbouncer", "pgha")):
                if name == "pgha":
                    pooler = Proxy(cluster, {"proxy.pool_size": "20", "proxy.log_level": "warn",
                                             "proxy.max_client_conn": maxconn}).start()
                    wait_until("pgha proxy to route to the leader",
                               lambda: pooler.connect(autocommit=True).close() or True, timeout=30)
                else:
                    pooler = PgBouncer(base, cluster.su_pw, node.pg_port,
                                       settings=dict(PgBouncer.SETTINGS, max_client_conn=maxconn)).start()
                pid = pooler.proc.pid
                try:
                    time.sleep(1)
                    res = busy.run_busy(f"{script}-{name}-{r + 1}", pooler.port, [pid], n,
                                        args.busy_warmup, args.busy_seconds,
                                        args.busy_connect_budget, env, PGBENCH_BIN,
                                        os.path.join(base, "busy"), pgbench_args, raise_nofile, probe)
                except Exception as e:
                    msg = f"{type(e).__name__}: {e}"
                    print(f"  {name:9s} round {r + 1}: FAILED {msg}", flush=True)
                    failures.append(("busy", name, msg, tail(pooler.log_path)))
                    continue
                finally:
                    pooler.stop()
                out.setdefault((script, name), []).append(res)
                rest = res["machine_cpu_pct"] - res["proxy_cpu_pct"] - res["pgbench_cpu_pct"]
                print(f"  {name:9s} round {r + 1}: {res['tps']:9.1f} tps  latency p50 "
                      f"{res['p50_ms']:7.1f} p99 {res['p99_ms']:7.1f} max {res['max_ms']:7.1f} ms  proxy "
                      f"CPU {res['cpu_us_tx']:6.2f} us/tx  peak RSS {res['hwm_kb'] / 1024:6.1f} MB "
                      f"({res['per_client_b']:.0f} B/client)"
                      + (f"  {res['failed']} failed" if res["failed"] else ""), flush=True)
                print(f"  {'':9s}          CPU in the window: pooler {res['proxy_cpu_pct']:.0f}%, pgbench "
                      f"{res['pgbench_cpu_pct']:.0f}%, the rest {rest:.0f}% (PostgreSQL, other work) of "
                      f"{os.cpu_count() * 100}%; up to {res['servers']} servers; clients connected in "
                      f"{res['connect_s']:.1f} s; load average {res['load']} at the start", flush=True)
    finally:
        probe_conn.close()


def fmt(v, spec, na="n/a"):
    return format(v, spec) if v is not None else format(na, ">" + spec.split(".")[0].lstrip("<>"))


def pgpass_env(cluster):
    """The environment for pgbench: a PGPASSFILE (mode 0600) with the superuser's password."""
    passfile = os.path.join(cluster.base, "secrets", "pgpass")
    with open(passfile, "w") as f:
        f.write(f"*:*:*:postgres:{cluster.su_pw}\n")
    os.chmod(passfile, 0o600)
    return dict(os.environ, PGPASSFILE=passfile)


def private_dir(d, files):
    """Make d, a directory of its own for a server run as postgres, holding files (name: text),
    each 0600; all owned by postgres, the directory 0700."""
    os.makedirs(d)
    for name, text in files.items():
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        shutil.chown(path, "postgres", "postgres")
    shutil.chown(d, "postgres", "postgres")
    os.chmod(d, 0o700)


def bench_args(doc, workloads, repeats):
    """The options every pgbench comparison here takes; the caller adds its own."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--workloads", default=",".join(workloads))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    return ap


def bench_parse(ap, workloads):
    """(arguments, the workloads asked for), each one checked."""
    args = ap.parse_args()
    asked = [w for w in args.workloads.split(",") if w]
    for w in asked:
        if w not in workloads:
            ap.error(f"unknown workload {w!r}")
    return args, asked


def stop_everything(objs, etcd):
    """Stop each (name, object) (a Cluster by stop_all), then etcd: False if one failed."""
    ok = True
    for what, obj in objs:
        if obj is None:
            continue
        try:
            obj.stop_all() if what == "cluster" else obj.stop()
        except Exception as e:
            ok = False
            print(f"stopping {what} failed: {e!r}", file=sys.stderr)
    if etcd is not None:
        etcd.stop()
    return ok


def finish(base, ok, failures, keep):
    """Print the failures with their log tails, remove base unless kept, exit 1 on failure."""
    if failures:
        print("\nFAILURES:")
        for w, t, msg, lt in failures:
            print(f"--- {w} {t}: {msg}\n    log tail:\n{lt}")
    if not ok or failures:
        print(f"kept {base}", file=sys.stderr)
    elif not keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"kept {base}")
    if failures or not ok:
        sys.exit(1)


def tls_setup(base):
    """--tls: a CA and a certificate for 127.0.0.1; the options of the agent, pgha proxy and
    PgBouncer (its files copied into a directory of its own, as it runs as postgres)."""
    from test_proxy_tls import make_ca, make_cert
    d = os.path.join(base, "certs")
    os.makedirs(d)
    ca = make_ca(d, "ca")
    cert, key = make_cert(d, "ca", "node", san="IP:127.0.0.1,DNS:localhost")
    node = {"tls.cert_file": cert, "tls.key_file": key, "tls.ca_file": ca, "tls.require": "on"}
    pgha = {"tls.cert_file": cert, "tls.key_file": key, "tls.server_sslmode": "verify-full",
            "tls.server_ca_file": ca}
    bd = os.path.join(base, "pgbouncer-tls")
    private_dir(bd, {name: open(path).read() for name, path in
                     (("ca.pem", ca), ("node.pem", cert), ("node.key", key))})
    bouncer = {"client_tls_sslmode": "require", "client_tls_cert_file": os.path.join(bd, "node.pem"),
               "client_tls_key_file": os.path.join(bd, "node.key"), "server_tls_sslmode": "verify-full",
               "server_tls_ca_file": os.path.join(bd, "ca.pem")}
    return node, pgha, bouncer


def main():
    ap = bench_args(__doc__, WORKLOADS, repeats=2)
    ap.add_argument("--tls", action="store_true",
                    help="TLS client -> pooler and pooler -> PostgreSQL (verify-full), see above")
    ap.add_argument("--idle-clients", type=int, default=10000, help="0: skip the idle-client test")
    ap.add_argument("--busy-clients", type=int, default=10000,
                    help="busy clients through pgha and PgBouncer (0: skip)")
    ap.add_argument("--busy-seconds", type=int, default=20, help="measured window")
    ap.add_argument("--busy-warmup", type=int, default=5,
                    help="seconds of transactions before the window (after all clients connected)")
    ap.add_argument("--busy-repeats", type=int, default=2, help="runs per pooler, order alternating")
    ap.add_argument("--busy-scripts", default="select",
                    help="comma-separated: " + ", ".join(f"{k} ({v[0]})" for k, v in BUSY_SCRIPTS.items()))
    ap.add_argument("--busy-connect-budget", type=int, default=600,
                    help="seconds pgbench may take to connect every client")
    args, workloads = bench_parse(ap, WORKLOADS)
    if args.tls and (args.busy_clients or args.idle_clients):
        ap.error("--tls measures the pgbench workloads only: add --busy-clients 0 --idle-clients 0")
    for sc in args.busy_scripts.split(","):
        if sc not in BUSY_SCRIPTS:
            ap.error(f"unknown busy script {sc!r}")
    raise_nofile()     # inherited by every server started here (and the idle clients)

    t_start = time.monotonic()
    base = make_base_dir()
    etcd = cluster = proxy = bouncer = haproxy = None
    ok = False
    results = {}       # (workload, target) -> list of (tps, n, cpu_us_per_tx or None)
    failures = []
    idle = {}
    busy_res = {}
    try:
        tls_node, tls_pgha, tls_bouncer = tls_setup(base) if args.tls else ({}, {}, {})
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        node = cluster.add("n1", {"parameters.max_connections": "200",
                                  "parameters.shared_buffers": "256MB", **tls_node}).start()
        leader = cluster.wait_streaming(["n1"], timeout=120)
        assert leader == "n1", leader
        passfile = os.path.join(base, "secrets", "pgpass")
        with open(passfile, "w") as f:
            f.write(f"*:*:*:postgres:{cluster.su_pw}\n")
        os.chmod(passfile, 0o600)
        env = dict(os.environ, PGPASSFILE=passfile)
        os.environ["PGPASSFILE"] = passfile     # for the idle clients (psycopg/libpq)
        if args.tls:
            env["PGSSLMODE"] = os.environ["PGSSLMODE"] = "require"
        print(f"TLS: {'every hop (--tls)' if args.tls else 'off'}", flush=True)
        print(f"pgbench -i -s 10 on the leader (127.0.0.1:{node.pg_port})", flush=True)
        subprocess.run([PGBENCH_BIN, "-h", "127.0.0.1", "-p", str(node.pg_port), "-U", "postgres",
                        "-i", "-s", "10", "-q", "postgres"], env=env, check=True,
                       capture_output=True, timeout=300)
        node.sql("VACUUM ANALYZE")

        proxy = Proxy(cluster, {"proxy.pool_size": "20", "proxy.log_level": "warn",
                                "proxy.max_client_conn": "12000", **tls_pgha}).start()
        wait_until("pgha proxy to route to the leader", lambda: proxy.connect(autocommit=True).close() or True,
                   timeout=30)
        bouncer = PgBouncer(base, cluster.su_pw, node.pg_port,
                              settings=dict(PgBouncer.SETTINGS, **tls_bouncer)).start()
        haproxy = HAProxy(base, node.pg_port).start()
        ports = {"direct": node.pg_port, "pgha": proxy.port, "pgbouncer": bouncer.port,
                 "haproxy": haproxy.port}
        pids = {"direct": None, "pgha": [proxy.proc.pid], "pgbouncer": bouncer.pids(),
                "haproxy": haproxy.pids()}
        logs = {"pgha": proxy.log_path, "pgbouncer": bouncer.log_path, "haproxy": haproxy.log_path}
        print(f"{subprocess.run([PGBOUNCER_BIN, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}, "
              f"{subprocess.run([HAPROXY_BIN, '-v'], capture_output=True, text=True).stdout.splitlines()[0]}, "
              f"{os.cpu_count()} CPUs", flush=True)
        print(f"{len(workloads)} workloads x {args.repeats} repeats x targets, {args.seconds} s each "
              f"after a {args.warmup} s warm-up", flush=True)

        for w in workloads:
            descr, wargs, skip = WORKLOADS[w]
            print(f"\n{w}: {descr} (pgbench {' '.join(wargs)})", flush=True)
            for r in range(args.repeats):
                for t in TARGETS:
                    if t in skip:
                        print(f"  {t:9s} round {r + 1}: n/a ({skip[t]})", flush=True)
                        continue
                    if t != "direct" and pids[t] and any(
                            not os.path.exists(f"/proc/{p}") for p in pids[t]):
                        print(f"  {t:9s} round {r + 1}: process gone", flush=True)
                        failures.append((w, t, "process gone", tail(logs[t])))
                        continue
                    try:
                        if args.warmup > 0:
                            try:
                                run_pgbench(ports[t], wargs, args.warmup, env)
                            except RuntimeError:
                                pass    # 1000 clients may not all log in within a short warm-up
                        c0 = cpu_ticks(pids[t]) if pids[t] else None
                        tps, n, failed = run_pgbench(ports[t], wargs, args.seconds, env)
                        c1 = cpu_ticks(pids[t]) if pids[t] else None
                    except Exception as e:
                        msg = f"{type(e).__name__}: {e}"
                        print(f"  {t:9s} round {r + 1}: FAILED {msg}", flush=True)
                        failures.append((w, t, msg, tail(logs[t]) if t in logs else ""))
                        continue
                    cpu = (c1 - c0) / CLK_TCK / n * 1e6 if c0 is not None and n else None
                    results.setdefault((w, t), []).append((tps, n, cpu))
                    d = results.get((w, "direct"))
                    ratio = tps / d[-1][0] if d else None
                    print(f"  {t:9s} round {r + 1}: {tps:10.1f} tps  {n:9d} tx"
                          + (f" ({failed} failed)" if failed else "")
                          + f"  vs direct {fmt(ratio, '5.2f')}"
                          + (f"  proxy CPU {cpu:7.2f} us/tx" if cpu is not None else ""), flush=True)

        if args.busy_clients > 0:
            proxy.stop()     # only the pooler measured runs (and its fds and memory are fresh)
            bouncer.stop()
            busy_res = busy_tests(args, base, cluster, node, env, failures)
            proxy = Proxy(cluster, {"proxy.pool_size": "20", "proxy.log_level": "warn",
                                    "proxy.max_client_conn": "12000", **tls_pgha}).start()
            bouncer = PgBouncer(base, cluster.su_pw, node.pg_port,
                              settings=dict(PgBouncer.SETTINGS, **tls_bouncer)).start()
        if args.idle_clients > 0:
            print(f"\nidle clients: {args.idle_clients} connections (startup + SCRAM), batches of 500, "
                  "each pooler freshly started", flush=True)
            # Fresh poolers: the baseline is "after startup, with 0 clients".
            proxy.stop()
            bouncer.stop()
            proxy = Proxy(cluster, {"proxy.pool_size": "20", "proxy.log_level": "warn",
                                    "proxy.max_client_conn": "12000", **tls_pgha}).start()
            bouncer = PgBouncer(base, cluster.su_pw, node.pg_port,
                              settings=dict(PgBouncer.SETTINGS, **tls_bouncer)).start()
            for name, port, pid, lp in (("pgha", proxy.port, proxy.proc.pid, proxy.log_path),
                                        ("pgbouncer", bouncer.port, bouncer.proc.pid, bouncer.log_path)):
                try:
                    idle[name] = idle_test(name, port, pid, args.idle_clients)
                    if idle[name][4]:
                        failures.append(("idle", name, idle[name][4][0], tail(lp)))
                except Exception as e:
                    msg = f"{type(e).__name__}: {e}"
                    print(f"  {name} idle test FAILED: {msg}", flush=True)
                    failures.append(("idle", name, msg, tail(lp)))
        ok = True
    finally:
        ok = stop_everything((("pgha proxy", proxy), ("pgbouncer", bouncer), ("haproxy", haproxy),
                              ("cluster", cluster)), etcd) and ok

    # ---- summary ----
    med = {}
    for (w, t), v in results.items():
        med[(w, t)] = (statistics.median(x[0] for x in v),
                       statistics.median(x[2] for x in v) if v[0][2] is not None else None)
    if workloads:
        print(f"\nsummary: median of {args.repeats} run(s) of {args.seconds} s; CPU = proxy utime+stime "
              "per transaction")
        print(f"{'workload':11s} {'target':10s} {'tps':>10s} {'/direct':>8s} {'CPU us/tx':>10s}")
        for w in workloads:
            d = med.get((w, "direct"), (None, None))[0]
            for t in TARGETS:
                tps, cpu = med.get((w, t), (None, None))
                ratio = tps / d if tps is not None and d else None
                print(f"{w:11s} {t:10s} {fmt(tps, '10.1f')} {fmt(ratio, '8.2f')} {fmt(cpu, '10.2f')}")
        print("\npgha / PgBouncer per workload (targets: TPS >= 1.3 on select-only, CPU/tx <= 0.7)")
        print(f"{'workload':11s} {'TPS ratio':>10s} {'CPU/tx ratio':>13s}")
        for w in workloads:
            a, b = med.get((w, "pgha")), med.get((w, "pgbouncer"))
            tr = a[0] / b[0] if a and b and b[0] else None
            cr = a[1] / b[1] if a and b and a[1] is not None and b[1] else None
            print(f"{w:11s} {fmt(tr, '10.2f')} {fmt(cr, '13.2f')}")
    if idle:
        print("\nidle clients (target: pgha RSS per client / PgBouncer <= 1)")
        print(f"{'pooler':10s} {'clients':>8s} {'RSS 0 (MB)':>11s} {'RSS N (MB)':>11s} {'bytes/client':>13s}")
        for name, (got, before, after, per, errs) in idle.items():
            print(f"{name:10s} {got:8d} {before / 1e6:11.1f} {after / 1e6:11.1f} {per:13.0f}"
                  + ("  (fewer than asked)" if got < args.idle_clients else ""))
    if busy_res:
        print(f"\n{args.busy_clients} busy clients (median of {args.busy_repeats} run(s); window "
              f"{args.busy_seconds} s; pgbench runs on the same {os.cpu_count()} CPUs as the pooler "
              "and PostgreSQL)")
        keys = ("tps", "p50_ms", "p99_ms", "max_ms", "cpu_us_tx", "hwm_kb", "per_client_b")
        bm = {sn: {k: statistics.median(x[k] for x in v) for k in keys} for sn, v in busy_res.items()}
        print(f"{'script':7s} {'pooler':10s} {'tps':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
              f"{'CPU us/tx':>10s} {'peak RSS MB':>12s} {'B/client':>9s}")
        for (script, name), m in bm.items():
            print(f"{script:7s} {name:10s} {m['tps']:9.1f} {m['p50_ms']:8.1f} {m['p99_ms']:8.1f} "
                  f"{m['max_ms']:8.1f} {m['cpu_us_tx']:10.2f} {m['hwm_kb'] / 1024:12.1f} "
                  f"{m['per_client_b']:9.0f}")
        for script in args.busy_scripts.split(","):
            a, b = bm.get((script, "pgha")), bm.get((script, "pgbouncer"))
            if a and b:
                print(f"{script}: pgha / PgBouncer: " + "  ".join(
                    f"{k} {a[k] / b[k]:.2f}" for k in keys if b[k]))
    print("\nproject target ratios:")
    for w in ("select16", "select1000"):
        a, b = med.get((w, "pgha")), med.get((w, "pgbouncer"))
        if a and b:
            print(f"  pgha {w} TPS / PgBouncer       = {a[0] / b[0]:.2f}  (target >= 1.3)")
    for w in workloads:
        a, b = med.get((w, "pgha")), med.get((w, "pgbouncer"))
        if a and b and a[1] is not None and b[1]:
            print(f"  pgha {w} CPU per tx / PgBouncer = {a[1] / b[1]:.2f}  (target <= 0.7)")
    if "pgha" in idle and "pgbouncer" in idle and idle["pgbouncer"][3] > 0:
        print(f"  pgha idle RSS per client / PgBouncer = {idle['pgha'][3] / idle['pgbouncer'][3]:.2f}"
              f"  (target <= 1; {idle['pgha'][0]} and {idle['pgbouncer'][0]} clients)")
    print(f"\ntotal wall time {time.monotonic() - t_start:.0f} s")
    finish(base, ok, failures, args.keep)


if __name__ == "__main__":
    main()
