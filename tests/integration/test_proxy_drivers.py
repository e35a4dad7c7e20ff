"""`pgha proxy` is transparent to drivers (issue 12, "Transparent to drivers"): what psycopg,
node-postgres and pgJDBC see through the proxy is what they see directly from PostgreSQL —
the login's ParameterStatus, a Terminate while a query runs, a backend terminated under a
session-mode client, passwords that need SASLprep, and a unix socket.

One single-member cluster serves the whole file, with a transaction-mode proxy (pool_size 1,
so whatever a client leaves on its server would show to the next) and a session-mode one."""
import json
import os
import select
import signal
import socket
import stat
import subprocess
import threading
import time

import psycopg
import pytest
from psycopg import sql

from conftest import PGHA_BIN, Proxy, module_cluster, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(os.environ.get("PGHA_S3_SERVER_DIR", "/opt/pgha-test-node"), "node_modules")

# Roles whose passwords need SASLprep (RFC 4013), as PostgreSQL applies it on both sides.
SASL_USERS = {
    "u_umlaut": "pässwörd",               # non-ASCII, already normalized
    "u_ligature": "\ufb01sh-\ufb01ne",    # 'ﬁ' (U+FB01): NFKC maps it to "fi"
    "u_fullwidth": "\uff50\uff41\uff53\uff53\uff11",   # fullwidth "pass1"
    "u_space": "two\u2003words\u00a0here",  # non-ASCII spaces: mapped to U+0020
    "u_combining": "cafe\u0301",          # e + combining acute: NFKC composes "café"
    "u_prohibited": "bad\ufffdpw",        # U+FFFD is prohibited: the raw bytes are used
}


def proxy_args(cluster):
    node = next(iter(cluster.nodes.values()))
    with node.connect(autocommit=True) as c:
        c.execute("SET password_encryption = 'scram-sha-256'")
        for role, pw in SASL_USERS.items():
            c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(pw)))
    users = {"postgres": cluster.su_pw, **SASL_USERS}
    return {"users": users, "extra": {"proxy.pool_size": "1", "proxy.log_level": "debug"}}


@pytest.fixture(scope="module")
def drv(request):
    with module_cluster(request, ["d1"], proxy_args=proxy_args) as (cluster, proxy):
        yield cluster, proxy


@pytest.fixture(scope="module")
def session_proxy(drv):
    cluster, _ = drv
    proxy = Proxy(cluster, {"proxy.pool_mode": "session", "proxy.log_level": "debug"},
                  users={"postgres": cluster.su_pw}, name="session").start()
    yield proxy
    assert proxy.stop() == 0


def node_of(cluster):
    return cluster.nodes["d1"]


def direct(cluster, user="postgres", password=None, **kw):
    n = node_of(cluster)
    return psycopg.connect(host=n.host, port=n.pg_port, user=user, dbname="postgres", connect_timeout=10,
                           password=password if password is not None else cluster.su_pw, autocommit=True, **kw)


def run_node(action, host, port, user="postgres", password=None, cluster=None, timeout=60, **kw):
    """One node-postgres action (node_pg_client.js); its JSON answer."""
    cfg = {"action": action, "host": host, "port": port, "user": user,
           "password": password if password is not None else cluster.su_pw, **kw}
    p = subprocess.run(["node", os.path.join(HERE, "node_pg_client.js"), NODE_MODULES],
                       input=json.dumps(cfg), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"node: {p.stdout} {p.stderr}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def pg_addr(cluster):
    n = node_of(cluster)
    return n.host, n.pg_port


def wait_no_activity(cluster, query_text, timeout=10):
    """No backend runs query_text any more (within timeout)."""
    def gone():
        with direct(cluster) as d:
            return d.execute("SELECT count(*) FROM pg_stat_activity WHERE query = %s AND pid <> pg_backend_pid()",
                             (query_text,)).fetchone()[0] == 0
    wait_until(f"no backend running {query_text!r}", gone, timeout=timeout)


# ---- 1. the login's ParameterStatus ---------------------------------------------------

# What PostgreSQL 15 reports at login (GUC_REPORT).
REPORTED = ("application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
            "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser", "server_encoding",
            "server_version", "session_authorization", "standard_conforming_strings", "TimeZone")


def reported(conn):
    return {name: conn.info.parameter_status(name) for name in REPORTED}


def test_login_parameters_are_the_clients_own_with_psycopg(drv, monkeypatch):
    """Values as the client sent them (lower case, a partial DateStyle), reported as the server
    spells them — through the proxy as directly; and twice, the second time from what the
    proxy learned the first."""
    cluster, proxy = drv
    # libpq sends PGDATESTYLE and PGTZ in the startup packet (as "datestyle", "timezone").
    monkeypatch.setenv("PGDATESTYLE", "iso, dmy")
    monkeypatch.setenv("PGTZ", "europe/paris")
    kw = {"application_name": "drv-app", "client_encoding": "latin1"}
    with direct(cluster, **kw) as d:
        want = reported(d)
    assert (want["DateStyle"], want["TimeZone"], want["client_encoding"]) == ("ISO, DMY", "Europe/Paris", "LATIN1")
    probes = proxy.log().count("reported how PostgreSQL spells")
    for _ in range(2):
        with proxy.connect(autocommit=True, **kw) as c:
            assert reported(c) == want
            # What the client was told is what its session has.
            assert c.execute("SELECT current_setting('DateStyle'), current_setting('TimeZone'), "
                             "current_setting('application_name')").fetchone() == \
                ("ISO, DMY", "Europe/Paris", "drv-app")
    # One server logged in with these values to learn them; the second login reused that.
    assert proxy.log().count("reported how PostgreSQL spells") == probes + 1
    # A client that sends nothing gets the server's defaults, not the last client's.
    monkeypatch.delenv("PGDATESTYLE")
    monkeypatch.delenv("PGTZ")
    with direct(cluster) as d, proxy.connect(autocommit=True) as c:
        assert reported(c) == reported(d)


def test_other_reported_startup_settings_are_the_clients_own(drv):
    """A reported setting beyond the tracked ones, sent at startup (libpq's options -c):
    ParameterStatus says the client's value at login, as directly."""
    cluster, proxy = drv
    kw = {"options": "-c default_transaction_read_only=ON"}
    with direct(cluster, **kw) as d:
        want = reported(d)
    assert want["default_transaction_read_only"] == "on"
    with proxy.connect(autocommit=True, **kw) as c:
        assert reported(c) == want
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_a_startup_value_the_server_refuses_fails_the_login_as_directly(drv, monkeypatch):
    cluster, proxy = drv
    monkeypatch.setenv("PGDATESTYLE", "no-such-style")
    errors = []
    for connect in (lambda: direct(cluster), lambda: proxy.connect()):
        with pytest.raises(psycopg.OperationalError) as exc:
            connect().close()
        errors.append(exc.value.sqlstate)
        assert 'invalid value for parameter "DateStyle": "no-such-style"' in str(exc.value), exc.value
    assert errors[0] == errors[1]


def test_login_parameters_with_node_postgres(drv):
    cluster, proxy = drv
    host, port = pg_addr(cluster)
    want = run_node("params", host, port, cluster=cluster, application_name="node-app")["params"]
    assert want["application_name"] == "node-app"
    got = run_node("params", "127.0.0.1", proxy.port, cluster=cluster, application_name="node-app")["params"]
    assert got == want


def run_jdbc(*jobs):
    """pgJDBC jobs (action, URL, user, password) in one JVM (JdbcProbe.java); its output lines."""
    stdin = "".join(f"{a}\n{url}\n{user}\n{pw}\n" for a, url, user, pw in jobs)
    p = subprocess.run(["java", "-cp", "/usr/share/java/postgresql.jar", os.path.join(HERE, "JdbcProbe.java")],
                       input=stdin, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_login_parameters_with_pgjdbc(drv):
    """pgJDBC sends DateStyle=ISO (the server reports "ISO, MDY") and its own application_name."""
    cluster, proxy = drv
    host, port = pg_addr(cluster)
    want = run_jdbc(("params", f"jdbc:postgresql://{host}:{port}/postgres?ApplicationName=jdbc-app",
                     "postgres", cluster.su_pw))
    assert "application_name=jdbc-app" in want and any(l.startswith("DateStyle=ISO, ") for l in want), want
    got = run_jdbc(("params", f"jdbc:postgresql://127.0.0.1:{proxy.port}/postgres?ApplicationName=jdbc-app",
                    "postgres", cluster.su_pw))
    assert got == want


# ---- 2. Terminate while a query runs; before the startup packet ------------------------

def send_terminate(conn):
    """Terminate on conn's socket, as a driver's close sends it; the socket stays open to
    see when the other side ends the connection."""
    s = socket.socket(fileno=os.dup(conn.pgconn.socket))
    s.sendall(b"X\0\0\0\4")
    return s


def wait_eof(s, timeout):
    """Seconds until the peer closed s (everything before the end is read and dropped)."""
    t0 = time.monotonic()
    s.setblocking(False)
    while time.monotonic() - t0 < timeout:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            try:
                if s.recv(65536) == b"":
                    return time.monotonic() - t0
            except ConnectionResetError:
                return time.monotonic() - t0
    raise AssertionError(f"the connection did not end within {timeout} s")


def give_up(c, query, close):
    """c sends query, then Terminate while it runs or waits (and closes its side when close):
    the proxy must end the connection within 2 s."""
    try:
        c.pgconn.send_query(query)
        c.pgconn.flush()
        time.sleep(0.5)
        s = send_terminate(c)
        try:
            if close:
                s.shutdown(socket.SHUT_WR)
            assert wait_eof(s, 5) < 2
        finally:
            s.close()
    finally:
        c.close()


def test_terminate_during_a_query_ends_the_connection_at_once(drv):
    cluster, proxy = drv
    give_up(proxy.connect(autocommit=True), b"SELECT pg_sleep(60)", close=False)
    # The query does not run on behind the proxy's back, nor in the next client's transaction
    # (pool_size 1: the next client gets whatever server the pool has).
    wait_no_activity(cluster, "SELECT pg_sleep(60)")
    t0 = time.monotonic()
    with proxy.connect(autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
                         ).fetchone() == (0,)
    assert time.monotonic() - t0 < 5


def test_node_postgres_end_during_a_query_returns_at_once(drv):
    cluster, proxy = drv
    out = run_node("terminate", "127.0.0.1", proxy.port, cluster=cluster, sql="SELECT pg_sleep(60)",
                   after_ms=500)
    assert out["end_ms"] < 2000, out
    wait_no_activity(cluster, "SELECT pg_sleep(60)")
    out = run_node("login", "127.0.0.1", proxy.port, cluster=cluster)
    assert out == {"ok": True}


def test_terminate_while_waiting_for_a_server_ends_the_connection_at_once(drv):
    """pool_size 1 and the server busy in another client's transaction: a client that gives up
    on its query (Terminate, then its socket closed) is let go at once, not once a server frees
    up, and its query never runs."""
    cluster, proxy = drv
    with proxy.connect() as holder:
        holder.execute("SELECT 1")   # a transaction holds the pool's one server
        give_up(proxy.connect(autocommit=True), b"SELECT 'never' || 'run'", close=True)
        time.sleep(0.5)
        assert holder.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s",
                              ("%'never' ||%",)).fetchone() == (0,)
        holder.rollback()
    with proxy.connect(autocommit=True) as c:   # the pool serves on
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_terminate_or_eof_before_the_startup_packet_is_quiet(drv):
    cluster, proxy = drv
    before = len(proxy.log())
    for payload in (b"X\0\0\0\4", b"", b"\0\0\0"):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        try:
            if payload:
                s.sendall(payload)
            if payload != b"X\0\0\0\4":
                s.shutdown(socket.SHUT_WR)   # EOF, after nothing or part of a startup packet
            assert s.recv(100) == b"", "an answer to a client that said goodbye"
        finally:
            s.close()
    with proxy.connect() as c:   # the proxy serves on, and has logged everything above by now
        c.execute("SELECT 1")
    log = proxy.log()[before:]
    bad = [l for l in log.splitlines() if "WARN" in l or "ERROR" in l or "FATAL" in l]
    assert not bad, bad


# ---- 3. session mode: a terminated backend ends the client's connection ----------------

def read_to_eof(s, timeout):
    """Everything the peer sends until it closes s (within timeout)."""
    data = b""
    deadline = time.monotonic() + timeout
    s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the connection did not end within {timeout} s; got {data!r}")


def terminate_backend(cluster, pid):
    with direct(cluster) as d:
        assert d.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_session_mode_terminated_idle_backend_sends_its_fatal_and_ends(drv, session_proxy):
    """An idle client (it ran a query, so it has its server) whose backend is terminated gets
    the FATAL 57P01 unsolicited, then the end of the connection — through the proxy as
    directly."""
    cluster, _ = drv
    seen = []
    for conn in (direct(cluster), session_proxy.connect(autocommit=True)):
        try:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            terminate_backend(cluster, pid)
            s = socket.socket(fileno=os.dup(conn.pgconn.socket))
            try:
                data = read_to_eof(s, 10)
            finally:
                s.close()
            assert data[:1] == b"E" and b"SFATAL\0" in data and b"C57P01\0" in data, data
            seen.append(data[data.index(b"M"):])   # the message, as the server wrote it
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
            assert conn.closed
        finally:
            conn.close()
    assert seen[0] == seen[1]


def test_session_mode_terminated_idle_backend_with_node_postgres(drv, session_proxy):
    cluster, _ = drv
    host, port = pg_addr(cluster)
    outcomes = []
    for h, p in ((host, port), ("127.0.0.1", session_proxy.port)):
        proc = subprocess.Popen(["node", os.path.join(HERE, "node_pg_client.js"), NODE_MODULES],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            proc.stdin.write(json.dumps({"action": "idle_fatal", "host": h, "port": p, "user": "postgres",
                                         "password": cluster.su_pw}))
            proc.stdin.close()
            terminate_backend(cluster, json.loads(proc.stdout.readline())["pid"])
            outcomes.append(json.loads(proc.stdout.readline()))
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert outcomes[1] == outcomes[0] == {"code": "57P01", "ended": True}, outcomes


def test_session_mode_terminated_busy_backend_is_a_fatal_57P01(drv, session_proxy):
    cluster, _ = drv
    outcomes = []
    for conn in (direct(cluster), session_proxy.connect(autocommit=True)):
        try:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            killer = threading.Timer(0.5, terminate_backend, (cluster, pid))
            killer.start()
            with pytest.raises(psycopg.OperationalError) as exc:
                conn.execute("SELECT pg_sleep(20)")
            killer.join()
            outcomes.append((exc.value.sqlstate, "terminating connection due to administrator command"
                             in str(exc.value), conn.closed))
        finally:
            conn.close()
    # libpq reports the message and a broken connection (the SQLSTATE goes with the connection).
    assert outcomes[1] == outcomes[0] and outcomes[0][1:] == (True, True), outcomes


# ---- 4. passwords that need SASLprep ---------------------------------------------------

def test_saslprep_passwords_with_psycopg(drv):
    cluster, proxy = drv
    for role, pw in SASL_USERS.items():
        with direct(cluster, user=role, password=pw) as c:
            assert c.execute("SELECT current_user").fetchone() == (role,)
        # client → proxy (the users file's password, prepared as PostgreSQL prepares it) and
        # proxy → server (a new pool for each role: its first login uses that password).
        with proxy.connect(user=role, password=pw, autocommit=True) as c:
            assert c.execute("SELECT current_user").fetchone() == (role,)
        with pytest.raises(psycopg.OperationalError) as exc:
            proxy.connect(user=role, password=pw + "x").close()
        assert "password authentication failed" in str(exc.value)


def test_saslprep_passwords_with_node_postgres(drv):
    """node-postgres does no SASLprep itself: whatever it gets directly (a normalized password
    logs in, one that needs normalization is refused), it gets through the proxy."""
    cluster, proxy = drv
    host, port = pg_addr(cluster)
    for role, pw in SASL_USERS.items():
        d = run_node("login", host, port, user=role, password=pw)
        p = run_node("login", "127.0.0.1", proxy.port, user=role, password=pw)
        assert (d["ok"], d.get("code")) == (p["ok"], p.get("code")), (role, d, p)
    assert run_node("login", "127.0.0.1", proxy.port, user="u_umlaut", password=SASL_USERS["u_umlaut"])["ok"]


def test_saslprep_passwords_with_pgjdbc(drv):
    """pgJDBC prepares passwords with SASLprep itself, as libpq does: the ligature and its
    normalized form are one password, through the proxy as directly."""
    cluster, proxy = drv
    host, port = pg_addr(cluster)
    urls = (f"jdbc:postgresql://{host}:{port}/postgres", f"jdbc:postgresql://127.0.0.1:{proxy.port}/postgres")
    jobs = [("login", url, role, pw) for url in urls
            for role, pw in (("u_ligature", SASL_USERS["u_ligature"]), ("u_fullwidth", SASL_USERS["u_fullwidth"]),
                             ("u_ligature", "fish-fine"), ("u_ligature", "fish-fine!"))]
    out = run_jdbc(*jobs)
    assert len(out) == len(jobs), out
    assert out[:3] == out[4:7] == ["ok"] * 3, out
    assert out[3].startswith("error 28P01 ") and out[7].startswith("error 28P01 "), out


# ---- 5. unix sockets ------------------------------------------------------------------

def unix_proxy(cluster, sock_dir, name):
    return Proxy(cluster, {"proxy.unix_socket_dir": sock_dir, "proxy.unix_socket_mode": "0770"},
                 users={"postgres": cluster.su_pw}, name=name)


def test_unix_sockets_for_both_ports(drv):
    cluster, _ = drv
    sock_dir = os.path.join(cluster.base, "sock")
    os.makedirs(sock_dir, exist_ok=True)
    proxy = unix_proxy(cluster, sock_dir, "unix").start()
    paths = [os.path.join(sock_dir, f".s.PGSQL.{port}") for port in (proxy.port, proxy.ro_port)]
    try:
        for path in paths:
            st = os.stat(path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o770, (path, oct(st.st_mode))
        # libpq's way: host is the directory, the port names the file.
        for port in (proxy.port, proxy.ro_port):
            with psycopg.connect(host=sock_dir, port=port, user="postgres", password=cluster.su_pw,
                                 dbname="postgres", connect_timeout=10, autocommit=True) as c:
                assert c.execute("SELECT 1").fetchone() == (1,)
        assert run_node("login", sock_dir, proxy.port, cluster=cluster) == {"ok": True}
    finally:
        assert proxy.stop() == 0
    assert not any(os.path.exists(p) for p in paths), "socket files left after the proxy stopped"

    # A stale socket (a proxy that was killed leaves its file) is replaced.
    proxy = unix_proxy(cluster, sock_dir, "unix-stale")
    path = os.path.join(sock_dir, f".s.PGSQL.{proxy.port}")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    proxy.start()
    try:
        with psycopg.connect(host=sock_dir, port=proxy.port, user="postgres", password=cluster.su_pw,
                             dbname="postgres", connect_timeout=10) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        assert "replaced the stale socket " + path in proxy.log()
    finally:
        assert proxy.stop() == 0


def test_unix_socket_in_use_or_not_a_socket_is_a_clear_error(drv):
    cluster, _ = drv
    sock_dir = os.path.join(cluster.base, "sock-busy")
    os.makedirs(sock_dir, exist_ok=True)
    proxy = unix_proxy(cluster, sock_dir, "unix-busy")
    path = os.path.join(sock_dir, f".s.PGSQL.{proxy.port}")
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(path)
    busy.listen(1)
    try:
        for expect in ("is in use: another proxy or a PostgreSQL listens on it", None):
            if expect is None:   # now a file that is not a socket: never removed
                busy.close()
                os.unlink(path)
                with open(path, "w") as f:
                    f.write("not a socket")
                expect = "exists and is not a socket: not replaced"
            p = subprocess.run([PGHA_BIN, "proxy", "-c", proxy.conf_path], capture_output=True,
                               text=True, timeout=30)
            assert p.returncode != 0
            assert f"{path} {expect}" in p.stdout + p.stderr, p.stdout + p.stderr
            assert os.path.exists(path)
    finally:
        busy.close()


# ---- 3 (continued). a PostgreSQL restart under a session-mode client ----------------------
# Last in the file: it restarts the cluster's PostgreSQL.

def test_session_mode_postgresql_restart_ends_idle_sessions_with_57P01(drv, session_proxy):
    cluster, _ = drv
    conns = [direct(cluster), session_proxy.connect(autocommit=True)]
    socks = []
    try:
        for conn in conns:
            conn.execute("SELECT 1")   # the session-mode client has its server now
            socks.append(socket.socket(fileno=os.dup(conn.pgconn.socket)))
        r = cluster.ctl("restart", "d1", "--in-place", "--force", "--wait", "90", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        seen = []
        for s in socks:
            data = read_to_eof(s, 30)
            assert data[:1] == b"E" and b"SFATAL\0" in data and b"C57P01\0" in data, data
            seen.append(data[data.index(b"M"):])
        assert seen[0] == seen[1]
    finally:
        for s in socks:
            s.close()
        for conn in conns:
            conn.close()
    wait_until("the proxy to serve again", lambda: session_proxy.connect().close() is None, timeout=60)


def test_session_mode_backend_gone_without_a_word_ends_the_session(drv, session_proxy):
    """A backend killed (no FATAL on the wire; PostgreSQL restarts after a crash): a direct
    client's connection is gone, and so is a session-mode client's, with 08006 — not a
    fresh server under the same connection with the session's state lost."""
    cluster, _ = drv
    with session_proxy.connect(autocommit=True) as c:
        c.execute("SET application_name = 'kept-state'")
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(psycopg.OperationalError) as exc:
            for _ in range(50):   # bounded: the proxy sees the end of the server at once
                c.execute("SELECT 1")
                time.sleep(0.1)
        assert c.closed
        assert "server connection lost" in str(exc.value), exc.value
    wait_until("PostgreSQL back after the crash",
               lambda: session_proxy.connect(autocommit=True).execute("SELECT 1").fetchone() == (1,), timeout=90)
