"""`pgha proxy` in front of a real 3-node cluster: protocol, pooling,
authentication, routing, and failover with client connections kept."""
import os
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import PG_BIN, Proxy, pg_pid, signal_instance, wait_until


@pytest.fixture
def proxied(cluster):
    for n in ("n1", "n2", "n3"):
        cluster.add(n).start()
    leader = cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)
    proxy = Proxy(cluster, {"proxy.log_level": "debug"}).start()
    yield cluster, proxy, leader
    assert proxy.stop() == 0, proxy.log()[-3000:]


def test_simple_and_extended_protocol_through_the_proxy(proxied):
    cluster, proxy, leader = proxied
    with proxy.connect(autocommit=True) as c:
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == cluster.nodes[leader].pg_port
        c.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        # Extended protocol with parameters (psycopg binds server-side).
        for i in range(20):
            c.execute("INSERT INTO items VALUES (%s, %s)", (i, f"item {i}"))
        assert c.execute("SELECT count(*), max(name) FROM items WHERE id >= %s", (0,)).fetchone() == (20, "item 9")
        # Simple protocol: several statements in one Query.
        c.cursor().execute("UPDATE items SET name = 'x' WHERE id = 1; UPDATE items SET name = 'y' WHERE id = 2",
                           prepare=False)
        assert c.execute("SELECT name FROM items WHERE id IN (1, 2) ORDER BY id").fetchall() == [("x",), ("y",)]
        # An error does not break the connection.
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM nope")
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_transactions_spread_over_pooled_servers(proxied):
    cluster, proxy, leader = proxied
    conns = [proxy.connect(autocommit=True) for _ in range(12)]   # pool_size 4
    try:
        pids = set()
        for rnd in range(5):
            for c in conns:
                pids.add(c.execute("SELECT pg_backend_pid()").fetchone()[0])
        assert 1 <= len(pids) <= 4, pids
        # A multi-statement transaction keeps its server until COMMIT.
        c = conns[0]
        with c.transaction():
            a = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            c.execute("SELECT pg_sleep(0.05)")
            b = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert a == b
    finally:
        for c in conns:
            c.close()


def test_prepared_statements_work_on_whatever_server_runs_the_transaction(proxied):
    cluster, proxy, leader = proxied
    conns = [proxy.connect(autocommit=True) for _ in range(8)]    # pool_size 4: servers are shared
    try:
        conns[0].execute("CREATE TABLE ps (id int PRIMARY KEY, v text)")
        backends = set()
        for rnd in range(6):
            # One client holds a server in an open transaction: the others must use another.
            pinned = conns[rnd % 3]
            pinned.execute("BEGIN")
            pinned.execute("SELECT 1")
            for i, c in enumerate(conns):
                if c is pinned:
                    continue
                k = rnd * 100 + i
                # prepare=True: a protocol-level named statement, reused every round.
                c.execute("INSERT INTO ps VALUES (%s, %s)", (k, "x"), prepare=True)
                row = c.execute("SELECT v, pg_backend_pid() FROM ps WHERE id = %s", (k,), prepare=True).fetchone()
                assert row[0] == "x"
                backends.add(row[1])
            pinned.execute("COMMIT")
        assert len(backends) > 1, "the test needs transactions on several servers"
        assert conns[0].execute("SELECT count(*) FROM ps").fetchone() == (42,)
        # Deallocating on one client leaves the others' statements alone.
        conns[1].execute("DEALLOCATE ALL")
        for c in conns:
            assert c.execute("SELECT count(*) FROM ps WHERE id >= %s", (0,), prepare=True).fetchone() == (42,)
        # A statement that fails to prepare reports the error and the session goes on.
        with pytest.raises(psycopg.errors.UndefinedTable):
            conns[2].execute("SELECT * FROM missing WHERE id = %s", (1,), prepare=True)
        assert conns[2].execute("SELECT 1 WHERE 1 = %s", (1,), prepare=True).fetchone() == (1,)
    finally:
        for c in conns:
            c.close()


def test_copy_in_and_out(proxied):
    cluster, proxy, leader = proxied
    with proxy.connect(autocommit=True) as c:
        c.execute("CREATE TABLE copied (id int, v text)")
        with c.cursor().copy("COPY copied FROM STDIN") as cp:
            for i in range(1000):
                cp.write_row((i, f"v{i}"))
        assert c.execute("SELECT count(*) FROM copied").fetchone() == (1000,)
        out = []
        with c.cursor().copy("COPY (SELECT id FROM copied ORDER BY id LIMIT 5) TO STDOUT") as cp:
            for row in cp.rows():
                out.append(row)
        assert [int(r[0]) for r in out] == [0, 1, 2, 3, 4]


def test_cancel_is_forwarded(proxied):
    cluster, proxy, leader = proxied
    with proxy.connect(autocommit=True) as c:
        timer = threading.Timer(1.0, c.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - t0 < 10
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_scram_authentication_success_and_failure(proxied):
    cluster, proxy, leader = proxied
    with pytest.raises(psycopg.OperationalError) as exc:
        proxy.connect(password="wrong")
    assert "password authentication failed" in str(exc.value)
    with pytest.raises(psycopg.OperationalError):
        proxy.connect(user="nobody", password="x")
    assert "authentication failed" in proxy.log()
    with proxy.connect() as c:
        assert c.execute("SELECT current_user").fetchone() == ("postgres",)


def test_read_only_port_never_takes_a_write(proxied):
    cluster, proxy, leader = proxied
    seen = set()
    for _ in range(10):
        with proxy.connect(ro=True, autocommit=True) as c:
            port, in_recovery = c.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
            assert in_recovery
            seen.add(port)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                c.execute("CREATE TABLE ro_check (id int)")
    assert cluster.nodes[leader].pg_port not in seen


def test_pgbench_through_the_proxy(proxied):
    cluster, proxy, leader = proxied
    env = dict(os.environ, PGPASSWORD=cluster.su_pw)   # pgbench is the test's client, not pgha
    args = ["-h", "127.0.0.1", "-p", str(proxy.port), "-U", "postgres", "postgres"]
    r = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-s", "1", *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # pgbench -M prepared prepares synchronously (PQprepare blocks its thread): with fewer
    # servers than clients it would wait on itself, so that run uses as many clients as servers.
    for mode, clients in (([], 8), (["-S"], 8), (["-M", "extended"], 8), (["-M", "prepared"], 4)):
        r = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-c", str(clients), "-j", "2", "-T", "3",
                            *mode, *args],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "number of failed transactions: 0" in r.stdout, r.stdout


def test_failover_keeps_client_connections_and_moves_writes(proxied):
    cluster, proxy, leader = proxied
    with proxy.connect(autocommit=True) as c:
        c.execute("CREATE TABLE fo (id serial, t timestamptz default now())")
    stop = threading.Event()
    results = {"ok": 0, "err": 0, "ports": set()}
    conns = [proxy.connect(autocommit=True) for _ in range(4)]

    def work(conn):
        while not stop.is_set():
            try:
                port = conn.execute("INSERT INTO fo DEFAULT VALUES RETURNING inet_server_port()").fetchone()[0]
                results["ok"] += 1
                results["ports"].add(port)
            except psycopg.Error:
                results["err"] += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    time.sleep(2)
    old = cluster.nodes[leader]
    pid = pg_pid(old)
    old.proc.send_signal(signal.SIGKILL)
    signal_instance(pid, signal.SIGKILL)
    old.proc.wait(10)
    others = [n for n in cluster.nodes if n != leader]
    new = wait_until("a new leader", lambda: cluster.leader() in others and cluster.leader(), timeout=60)
    new_port = cluster.nodes[new].pg_port
    wait_until("writes on the new leader", lambda: new_port in results["ports"], timeout=60)
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a client waits for an answer that never comes"
    # The same client connections went on working on the new leader.
    for conn in conns:
        assert not conn.closed
        assert conn.execute("SELECT inet_server_port()").fetchone()[0] == new_port
        conn.close()
    assert results["ok"] > 0
    print(f"failover through the proxy: {results['ok']} writes ok, {results['err']} errors")


def test_session_mode_keeps_one_server_and_resets_it(cluster):
    for n in ("n1", "n2"):
        cluster.add(n).start()
    cluster.wait_streaming(["n1", "n2"], timeout=180)
    proxy = Proxy(cluster, {"proxy.pool_mode": "session", "proxy.pool_size": "2"}).start()
    try:
        with proxy.connect(autocommit=True) as c:
            pids = {c.execute("SELECT pg_backend_pid()").fetchone()[0] for _ in range(5)}
            assert len(pids) == 1
            c.execute("SET application_name = 'mine'")
            c.execute("PREPARE p AS SELECT 42")
            assert c.execute("EXECUTE p").fetchone() == (42,)
            # LISTEN/NOTIFY works in session mode.
            notes = []
            c.add_notify_handler(lambda n: notes.append(n.payload))
            c.execute("LISTEN chan")
            c.execute("NOTIFY chan, 'hello'")
            c.execute("SELECT 1")
            assert notes == ["hello"]
        # The next client gets a reset server: no leftover settings or statements.
        with proxy.connect(autocommit=True) as c:
            assert c.execute("SHOW application_name").fetchone()[0] != "mine"
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                c.execute("EXECUTE p")
        # More clients than servers: the third waits for a free one instead of failing.
        a, b = proxy.connect(autocommit=True), proxy.connect(autocommit=True)
        a.execute("SELECT 1")
        b.execute("SELECT 1")
        t = threading.Timer(1.0, a.close)
        t.start()
        with proxy.connect(autocommit=True) as third:
            assert third.execute("SELECT 3").fetchone() == (3,)
        b.close()
    finally:
        assert proxy.stop() == 0


def test_garbage_and_slow_clients_do_not_disturb_others(proxied):
    import socket as so
    cluster, proxy, leader = proxied
    good = proxy.connect(autocommit=True)
    # A startup packet of garbage, an absurd length, a client that never finishes.
    for payload in (b"\x00\x00\x00\x08garbage!", b"\x7f\xff\xff\xff", b"GET / HTTP/1.1\r\n\r\n"):
        s = so.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(payload)
        data = s.recv(1000)
        assert data[:1] in (b"E", b""), data
        s.close()
    slow = so.create_connection(("127.0.0.1", proxy.port), timeout=5)
    slow.sendall(b"\x00\x00\x00")           # three bytes of a length, then nothing
    assert good.execute("SELECT 'still fine'").fetchone() == ("still fine",)
    slow.close()
    good.close()


def test_prometheus_metrics(cluster):
    from conftest import free_port
    import urllib.request
    cluster.add("m1").start()
    cluster.wait_streaming(["m1"], timeout=120)
    port = free_port()
    proxy = Proxy(cluster, {"proxy.metrics_listen": f"127.0.0.1:{port}"}).start()
    try:
        with proxy.connect(autocommit=True) as c:
            for _ in range(10):
                c.execute("SELECT 1")

        def scrape():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
                return r.read().decode()

        def counted():
            text = scrape()
            line = next(l for l in text.splitlines() if l.startswith("pgha_proxy_transactions_total "))
            return int(line.split()[1]) >= 10 and text
        text = wait_until("metrics to count the transactions", counted, timeout=10)
        assert 'pgha_proxy_leader{name="m1"' in text
        assert 'pgha_proxy_servers{database="postgres",user="postgres",port="rw",state="idle"}' in text
        assert 'pgha_proxy_transaction_seconds_bucket{le="+Inf"}' in text
        assert "# TYPE pgha_proxy_transaction_seconds histogram" in text
        # Clients by state per pool: one held in a transaction shows active.
        with proxy.connect() as held:
            held.execute("SELECT 1")
            text = wait_until("the active client in the metrics", lambda: (lambda t: t if
                              'pgha_proxy_pool_clients{database="postgres",user="postgres",port="rw",state="active"} 1'
                              in t else None)(scrape()), timeout=10)
            assert 'pgha_proxy_pool_longest_wait_seconds{database="postgres",user="postgres",port="rw"} 0' in text
        # A database name a client chose cannot break the text format (it is escaped in labels).
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres", password=cluster.su_pw,
                            dbname='x"} 1\nfake_metric 1', connect_timeout=5).close()
        # The pool is there, its label escaped.
        text = wait_until("the pool of the odd database in the metrics", lambda: (lambda t: t if
                          'database="x\\"} 1\\nfake_metric 1"' in t else None)(scrape()), timeout=10)
        assert "\nfake_metric" not in text, text
        for line in text.splitlines():
            assert line.startswith("#") or line.startswith("pgha_proxy_"), line
        # Bytes both ways, the clients' waits for a server, errors by SQLSTATE.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres", password="wrong",
                            dbname="postgres", connect_timeout=5).close()

        def counts():
            t = scrape()
            m = {ln.rpartition(" ")[0]: float(ln.rpartition(" ")[2]) for ln in t.splitlines()
                 if ln and not ln.startswith("#")}
            return m if m.get('pgha_proxy_errors_by_sqlstate_total{sqlstate="28P01"}') == 1 else None
        m = wait_until("the wrong password counted by SQLSTATE", counts, timeout=10)
        assert m['pgha_proxy_received_bytes_total{from="clients"}'] > 0
        assert m['pgha_proxy_received_bytes_total{from="servers"}'] > 0
        assert m['pgha_proxy_sent_bytes_total{to="clients"}'] >= m['pgha_proxy_received_bytes_total{from="servers"}'] > 0
        assert m["pgha_proxy_client_wait_seconds_count"] >= 1
        assert m["pgha_proxy_query_seconds_count"] >= 10 and m["pgha_proxy_query_seconds_sum"] >= 0
    finally:
        assert proxy.stop() == 0


def test_admin_console_show_pause_resume(cluster):
    cluster.add("a1").start()
    cluster.wait_streaming(["a1"], timeout=120)
    proxy = Proxy(cluster, {"auth.admin_users": "postgres"},
                  users={"postgres": cluster.su_pw, "app": cluster.su_pw}).start()
    try:
        def admin():
            return psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres",
                                   password=cluster.su_pw, dbname="pgha", autocommit=True)
        with proxy.connect(autocommit=True) as c:
            c.execute("SELECT 1")
        with admin() as a:
            cur = a.cursor()
            cur.execute("SHOW POOLS", prepare=False)
            cols = [d.name for d in cur.description]
            rows = cur.fetchall()
            assert cols[:4] == ["database", "user", "port", "cl_waiting"]
            assert ("postgres", "postgres", "rw") in [r[:3] for r in rows]
            for cmd in ("SHOW CLIENTS", "SHOW SERVERS", "SHOW STATS", "SHOW BACKENDS"):
                cur.execute(cmd, prepare=False)
                assert cur.fetchall() is not None
            cur.execute("SHOW BACKENDS", prepare=False)
            assert [r[2] for r in cur.fetchall()] == ["leader"]
            with pytest.raises(psycopg.errors.SyntaxError):
                cur.execute("SHOW NONSENSE", prepare=False)

            # PAUSE: a new transaction waits; RESUME lets it through.
            cur.execute("PAUSE", prepare=False)
            done = []
            def work():
                with proxy.connect(autocommit=True) as c2:
                    done.append(c2.execute("SELECT 'after resume'").fetchone()[0])
            t = threading.Thread(target=work)
            t.start()
            time.sleep(1.5)
            assert done == [], "a transaction ran while paused"
            cur.execute("SHOW STATS", prepare=False)
            assert cur.fetchone()[-1] == "yes"
            cur.execute("RESUME", prepare=False)
            t.join(10)
            assert done == ["after resume"]
            cur.execute("RELOAD", prepare=False)
        # Not an admin user: refused.
        with pytest.raises(psycopg.OperationalError) as exc:
            psycopg.connect(host="127.0.0.1", port=proxy.port, user="app", password=cluster.su_pw,
                            dbname="pgha")
        assert "admin console" in str(exc.value)
    finally:
        assert proxy.stop() == 0


def test_startup_parameters_follow_the_client_across_servers(cluster):
    cluster.add("t1").start()
    cluster.wait_streaming(["t1"], timeout=120)
    proxy = Proxy(cluster, {"proxy.pool_size": "1"}).start()
    try:
        # Any other setting is the client's own too (test_proxy_session.py has the rest).
        with proxy.connect(autocommit=True, options="-c search_path=elsewhere") as c:
            assert c.execute("SHOW search_path").fetchone()[0] == "elsewhere"
        # Tracked ones (libpq sends PGTZ as "timezone") are SET on whichever server the client gets.
        old = os.environ.get("PGTZ")
        try:
            os.environ["PGTZ"] = "Asia/Tokyo"
            tokyo = proxy.connect(autocommit=True, application_name="tokyo-app")
            os.environ["PGTZ"] = "America/Lima"
            lima = proxy.connect(autocommit=True, application_name="lima-app")
        finally:
            if old is None:
                os.environ.pop("PGTZ", None)
            else:
                os.environ["PGTZ"] = old
        for _ in range(3):   # pool_size 1: both share one server, back and forth
            assert tokyo.execute("SELECT current_setting('TimeZone'), current_setting('application_name'),"
                                 " pg_backend_pid()").fetchone()[:2] == ("Asia/Tokyo", "tokyo-app")
            assert lima.execute("SELECT current_setting('TimeZone'), current_setting('application_name')"
                                ).fetchone() == ("America/Lima", "lima-app")
        assert tokyo.info.parameter_status("TimeZone") == "Asia/Tokyo"
        tokyo.close()
        lima.close()
    finally:
        assert proxy.stop() == 0
