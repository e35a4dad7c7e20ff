"""The proxy's pools under trouble: a server login that fails while clients wait,
a read-only pool when a standby comes back, a leader that freezes (its
connection attempts must not delay the move to the new leader), and servers
that must prove they belong to this cluster before the proxy logs in.

One 2-member cluster (fast profile: ttl 3 s) and one proxy serve the whole
file; the tests run in order (the frozen leader comes last: it moves the
leadership)."""
import os
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import (Cluster, Etcd, Proxy, make_base_dir, pg_pid, sanitizer_reports, signal_instance,
                      wait_until)

FAST = {"cluster.ttl": "3s", "cluster.loop_wait": "500ms", "cluster.retry_timeout": "1s",
        "etcd.request_timeout": "800ms"}
NAMES = ("p1", "p2")
APP_PW = "app-" + os.urandom(6).hex()


@pytest.fixture(scope="module")
def pools(request):
    base = make_base_dir()
    etcd = Etcd(base).start()
    cluster = Cluster(base, etcd)
    proxy = None
    failed_before = request.session.testsfailed
    failed = True
    try:
        for n in NAMES:
            cluster.add(n, FAST).start()
        leader = cluster.wait_streaming(list(NAMES), timeout=120)
        cluster.nodes[leader].sql(f"CREATE ROLE app LOGIN PASSWORD '{APP_PW}'")
        # A long server_connect_timeout: a connection attempt left hanging on a frozen
        # leader would show as an outage of that length.
        proxy = Proxy(cluster, {"auth.admin_users": "postgres", "proxy.server_connect_timeout": "25s",
                                "proxy.hold_timeout": "40s", "proxy.log_level": "debug"},
                      users={"postgres": cluster.su_pw, "app": APP_PW}).start()
        yield cluster, proxy
        failed = request.session.testsfailed != failed_before
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.stop_all()
        etcd.stop()
        reports = sanitizer_reports(base)
        if reports or failed:
            for name in sorted(os.listdir(base)):
                if name.endswith(".log"):
                    with open(os.path.join(base, name), errors="replace") as f:
                        print(f"\n===== {name} (tail) =====\n{f.read()[-5000:]}")
        else:
            subprocess.run(["rm", "-rf", base], check=False)
        assert not reports, "sanitizer report(s):\n" + "\n----\n".join(reports)


def show_pools(proxy, cluster):
    with psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres", password=cluster.su_pw,
                         dbname="pgha", autocommit=True) as a:
        cur = a.cursor()
        cur.execute("SHOW POOLS", prepare=False)
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def app_pool(proxy, cluster):
    return next(p for p in show_pools(proxy, cluster) if p["user"] == "app" and p["port"] == "rw")


def run_parallel(fn, n, timeout=60):
    """Run fn(i) on n threads; [(result or exception)] in order."""
    out = [None] * n

    def one(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # the test looks at what each client got
            out[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    assert not any(t.is_alive() for t in ts), "a client hung"
    return out


def test_failed_server_login_fails_waiting_clients_and_the_pool_recovers(pools):
    cluster, proxy = pools
    leader = cluster.leader()
    ln = cluster.nodes[leader]
    # The pool learns its parameters from a first login, then loses its servers.
    with proxy.connect(user="app", password=APP_PW, autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == ("app",)
    ln.sql("ALTER ROLE app NOLOGIN")
    ln.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'")
    wait_until("the proxy to drop app's servers",
               lambda: int(app_pool(proxy, cluster)["sv_idle"]) == 0, timeout=10)

    # Clients log in to the proxy (the users file knows them), then wait for a server
    # whose login fails: each gets PostgreSQL's reason, not a bare end of connection.
    def query(i):
        with proxy.connect(user="app", password=APP_PW, autocommit=True) as c:
            return c.execute("SELECT 1").fetchone()
    got = run_parallel(query, 6)
    for r in got:
        assert isinstance(r, psycopg.OperationalError), got
        assert "not permitted to log in" in str(r), got
    pool = app_pool(proxy, cluster)
    assert pool["cl_waiting"] == "0", pool

    # The cause is fixed: the pool opens servers again at once, several of them.
    ln.sql("ALTER ROLE app LOGIN")

    def busy(i):
        with proxy.connect(user="app", password=APP_PW, autocommit=True) as c:
            t0 = time.monotonic()
            row = c.execute("SELECT pg_backend_pid() FROM pg_sleep(0.3)").fetchone()
            return row[0], time.monotonic() - t0
    got = run_parallel(busy, 6, timeout=30)
    assert all(isinstance(r, tuple) for r in got), got
    assert max(r[1] for r in got) < 5, got
    assert len({r[0] for r in got}) >= 2, got
    assert app_pool(proxy, cluster)["cl_waiting"] == "0"


def test_read_only_pool_leaves_the_leader_when_a_standby_returns(pools):
    cluster, proxy = pools
    leader = cluster.leader()
    standby = next(n for n in NAMES if n != leader)
    sn = cluster.nodes[standby]
    sn.stop()
    wait_until("the proxy to drop the standby",
               lambda: ro_port(proxy) == cluster.nodes[leader].pg_port, timeout=20)
    with proxy.connect(ro=True, autocommit=True) as c:
        # The read-only port falls back to the leader (ro_fallback_leader) ...
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == cluster.nodes[leader].pg_port
        sn.start()
        cluster.wait_streaming(list(NAMES), timeout=90)
        # ... and leaves it as soon as the standby streams again, on the same client
        # connection, without waiting for the leader's servers to time out.
        wait_until("read-only transactions to go to the standby again",
                   lambda: c.execute("SELECT inet_server_port()").fetchone()[0] == sn.pg_port, timeout=15)


def ro_port(proxy):
    with proxy.connect(ro=True, autocommit=True) as c:
        return c.execute("SELECT inet_server_port()").fetchone()[0]


def test_a_frozen_leader_costs_no_more_than_the_ttl(pools):
    cluster, proxy = pools
    old = cluster.wait_streaming(list(NAMES), timeout=60)
    on = cluster.nodes[old]
    with proxy.connect(autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS frozen (id serial, at timestamptz DEFAULT now())")
    pm = pg_pid(on)
    results = {}
    lock = threading.Lock()

    def writer(i):
        # More clients than pool_size (4): some wait while connection attempts to the
        # frozen leader hang in the pool.
        t0 = time.monotonic()
        try:
            with proxy.connect(autocommit=True) as c:
                port = c.execute("INSERT INTO frozen DEFAULT VALUES RETURNING inet_server_port()").fetchone()[0]
                with lock:
                    results[i] = ("ok", time.monotonic() - t0, port)
        except psycopg.Error as e:
            with lock:
                results[i] = ("error", time.monotonic() - t0, e.sqlstate, str(e))

    frozen_at = time.monotonic()
    os.kill(on.proc.pid, 19)            # SIGSTOP the agent ...
    signal_instance(pm, 19)             # ... and its PostgreSQL: a frozen node
    threads = []
    try:
        for i in range(10):
            t = threading.Thread(target=writer, args=(i,), daemon=True)
            t.start()
            threads.append(t)
            time.sleep(0.05)
        new = wait_until("a new leader", lambda: (lambda l: l if l and l != old else None)(cluster.leader()),
                         timeout=20)
        moved_at = time.monotonic()
        np = cluster.nodes[new].pg_port
        # Clients that were not stuck inside a transaction on the frozen server commit on
        # the new leader soon after the move: the frozen leader's login attempts are dropped
        # (server_connect_timeout is 25 s here).
        wait_until("clients to commit on the new leader",
                   lambda: sum(1 for r in results.values() if r[0] == "ok" and r[2] == np) >= 4, timeout=15)
        took = time.monotonic() - moved_at
        assert took < 8, (took, results)
        assert time.monotonic() - frozen_at < 20, results
    finally:
        signal_instance(pm, 18)
        os.kill(on.proc.pid, 18)
    # The old leader wakes up, finds the key gone and stops: clients stuck on it get the
    # documented 08006 (their connection lost), never the server's shutdown FATAL.
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads), results
    for r in results.values():
        assert r[0] == "ok" or r[2] == "08006", results
    cluster.wait_streaming(list(NAMES), timeout=90)
