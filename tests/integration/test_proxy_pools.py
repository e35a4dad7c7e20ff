"""The proxy's pools under trouble: a server login that fails while clients wait,
a read-only pool when a standby comes back, a leader that freezes (its
connection attempts must not delay the move to the new leader), and servers
that must prove they belong to this cluster before the proxy logs in.

One 2-member cluster (fast profile: ttl 3 s) and one proxy serve the whole
file; the tests run in order (the frozen leader comes last: it moves the
leadership)."""
import base64
import json
import os
import socket
import struct
import threading
import time

import psycopg
import pytest

from conftest import Proxy, etcdctl, free_port, module_cluster, pg_pid, signal_instance, wait_until

FAST = {"cluster.ttl": "3s", "cluster.loop_wait": "500ms", "cluster.retry_timeout": "1s",
        "etcd.request_timeout": "800ms"}
NAMES = ("p1", "p2")
APP_PW = "app-" + os.urandom(6).hex()


def proxy_args(cluster):
    cluster.nodes[cluster.leader()].sql(f"CREATE ROLE app LOGIN PASSWORD '{APP_PW}'")
    # A long server_connect_timeout: a connection attempt left hanging on a frozen leader
    # would show as an outage of that length.
    return {"extra": {"auth.admin_users": "postgres", "proxy.server_connect_timeout": "25s",
                      "proxy.hold_timeout": "40s", "proxy.log_level": "debug"},
            "users": {"postgres": cluster.su_pw, "app": APP_PW}}


@pytest.fixture(scope="module")
def pools(request):
    with module_cluster(request, NAMES, FAST, proxy_args) as cp:
        yield cp


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
        # ... where it still takes no write, as on a standby.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("CREATE TABLE ro_fallback_write (id int)")
        sn.start()
        cluster.wait_streaming(list(NAMES), timeout=90)
        # ... and leaves it as soon as the standby streams again, on the same client
        # connection, without waiting for the leader's servers to time out.
        wait_until("read-only transactions to go to the standby again",
                   lambda: c.execute("SELECT inet_server_port()").fetchone()[0] == sn.pg_port, timeout=15)


def ro_port(proxy):
    with proxy.connect(ro=True, autocommit=True) as c:
        return c.execute("SELECT inet_server_port()").fetchone()[0]



class Impostor:
    """A server an attacker who can write etcd would list as the leader: it speaks just
    enough of the protocol to ask for a password (cleartext, md5, or SCRAM with one
    iteration) and keeps every byte the proxy sends it."""

    def __init__(self, mode):
        self.mode = mode
        self.port = free_port()
        self.received = b""
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stop_flag = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_msg(self, c, startup=False):
        hdr = self._read(c, 4 if startup else 5)
        n = struct.unpack("!i", hdr[-4:])[0]
        return hdr, self._read(c, n - 4)

    def _read(self, c, n):
        out = b""
        while len(out) < n:
            chunk = c.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
            self.received += chunk
        return out

    def _serve(self):
        deadline = time.monotonic() + 120
        while not self.stop_flag and time.monotonic() < deadline:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.connections += 1
            c.settimeout(2)
            try:
                hdr, body = self._read_msg(c, startup=True)
                if struct.unpack("!i", body[:4])[0] == 80877103:
                    # An SSLRequest (the proxy's default server_sslmode = prefer): an impostor
                    # after passwords says 'N', so the rest comes in plain text.
                    c.sendall(b"N")
                    self._read_msg(c, startup=True)
                if self.mode == "cleartext":
                    c.sendall(b"R" + struct.pack("!ii", 8, 3))
                elif self.mode == "md5":
                    c.sendall(b"R" + struct.pack("!ii", 12, 5) + b"salt")
                else:
                    mech = b"SCRAM-SHA-256\0\0"
                    c.sendall(b"R" + struct.pack("!ii", 8 + len(mech), 10) + mech)
                    _, body = self._read_msg(c)
                    first = body[body.index(b"\0") + 5:]
                    nonce = first.split(b"r=", 1)[1].split(b",")[0]
                    sf = b"r=" + nonce + b"SRV,s=" + base64.b64encode(b"0123456789abcdef") + b",i=1"
                    c.sendall(b"R" + struct.pack("!ii", 8 + len(sf), 11) + sf)
                # Whatever comes next (a password, an md5 answer, a SCRAM proof) is kept.
                while True:
                    self._read_msg(c)
            except (EOFError, OSError, ValueError, IndexError):
                pass
            finally:
                c.close()

    def stop(self):
        self.stop_flag = True
        self.thread.join(5)
        self.sock.close()


def list_as_leader(cluster, prefix_cluster, host, port, sysid):
    """Write a fake cluster into etcd whose leader is host:port (as a careless or hostile
    hand with write access to etcd could)."""
    real = json.loads(etcdctl(cluster, "get", f"/pgha/{cluster.name}/members/{cluster.leader()}",
                              "--print-value-only"))
    real.update({"name": "evil", "host": host, "port": port})
    base = f"/pgha/{prefix_cluster}"
    # As an agent writes them: the member record and the leader key under one lease (a key
    # without one is not taken for a leader at all).
    lease = etcdctl(cluster, "lease", "grant", "300").split()[1]
    etcdctl(cluster, "put", f"{base}/initialize", str(sysid))
    etcdctl(cluster, "put", f"--lease={lease}", f"{base}/members/evil", json.dumps(real))
    etcdctl(cluster, "put", f"--lease={lease}", f"{base}/leader", "evil")


@pytest.mark.parametrize("mode", ["cleartext", "md5", "scram-one-iteration"])
def test_the_proxy_sends_no_password_to_a_server_that_asks_for_it_weakly(pools, mode):
    cluster, _ = pools
    imp = Impostor(mode)
    name = "imp-" + mode
    proxy = None
    try:
        list_as_leader(cluster, name, "127.0.0.1", imp.port, 4242)
        proxy = Proxy(cluster, {"cluster.name": name, "proxy.hold_timeout": "5s"},
                      users={"postgres": cluster.su_pw}, name=name).start()
        with pytest.raises(psycopg.OperationalError) as exc:
            with proxy.connect(autocommit=True) as c:
                c.execute("SELECT 1")
        assert imp.connections >= 1
        msg = str(exc.value)
        if mode == "scram-one-iteration":
            assert "fewer than 4096" in msg, msg
        else:
            assert "server_auth_methods does not allow" in msg, msg
        # Nothing derived from the password left the proxy: no password message at all
        # (cleartext, md5), or only the SCRAM client-first (no proof).
        assert cluster.su_pw.encode() not in imp.received
        assert b"p\0" not in imp.received[8:] or mode == "scram-one-iteration", imp.received
        if mode == "scram-one-iteration":
            assert b"c=biws" not in imp.received and b",p=" not in imp.received, imp.received
    finally:
        if proxy is not None:
            assert proxy.stop() == 0
        imp.stop()


def test_the_proxy_gives_no_work_to_a_server_of_another_cluster(pools):
    cluster, _ = pools
    leader = cluster.nodes[cluster.leader()]
    real_sysid = leader.sql("SELECT system_identifier FROM pg_control_system()")[0][0]
    # etcd names a real PostgreSQL (it logs the proxy in with SCRAM), but the cluster the
    # proxy serves has another system identifier: the server gets no query.
    list_as_leader(cluster, "imp-sysid", "127.0.0.1", leader.pg_port, 4242)
    proxy = Proxy(cluster, {"cluster.name": "imp-sysid", "proxy.hold_timeout": "3s"},
                  users={"postgres": cluster.su_pw}, name="imp-sysid").start()
    try:
        with pytest.raises(psycopg.OperationalError) as exc:
            with proxy.connect(autocommit=True) as c:
                c.execute("CREATE TABLE must_not_exist (id int)")
        assert "not a server of this cluster" in proxy.log(), proxy.log()[-3000:]
        assert f"its system identifier is {real_sysid}" in proxy.log()
        assert "4242" in str(exc.value) or "no server" in str(exc.value), str(exc.value)
        assert leader.sql("SELECT to_regclass('must_not_exist')") == [(None,)]
        # A rewritten initialize key is reported, and not followed.
        etcdctl(cluster, "put", "/pgha/imp-sysid/initialize", str(real_sysid))
        wait_until("the proxy to report the rewritten initialize key",
                   lambda: "initialize key now says system identifier" in proxy.log(), timeout=10)
        with pytest.raises(psycopg.OperationalError):
            with proxy.connect(autocommit=True) as c:
                c.execute("CREATE TABLE must_not_exist (id int)")
        assert leader.sql("SELECT to_regclass('must_not_exist')") == [(None,)]
    finally:
        assert proxy.stop() == 0


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
        def committed_on_new_leader():
            # The leader as etcd names it now (a second election under load would move it again).
            cur = cluster.leader()
            port = cluster.nodes[cur].pg_port if cur and cur != old else np
            with lock:
                return sum(1 for r in results.values() if r[0] == "ok" and r[2] == port) >= 4
        try:
            wait_until("clients to commit on the new leader", committed_on_new_leader, timeout=15)
        except AssertionError:
            raise AssertionError(f"new leader {new} (port {np}), now {cluster.leader()}: {results}")
        took = time.monotonic() - moved_at
        print(f"frozen leader: 4 clients committed on the new leader {took:.2f} s after etcd named it, "
              f"{time.monotonic() - frozen_at:.2f} s after the freeze")
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
