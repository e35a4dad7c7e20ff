"""Transaction pooling without the usual caveats (issue 12): a client's
session state follows it from server to server, or keeps its server while it
cannot, or is refused clearly; never silently wrong, never leaked to another
client.

One member, proxies with pool_size 1 or 2, so clients share servers: every
transaction of one client may run on a server another client just used.
Clients are psycopg (libpq), with the simple and the extended protocol."""
import select
import time
import urllib.request

import psycopg
import pytest

from conftest import Proxy, free_port, module_cluster, wait_until


@pytest.fixture(scope="module")
def one(request):
    with module_cluster(request, ["s1"]) as (cluster, _):
        yield cluster


@pytest.fixture(scope="module")
def shared(one):
    """pool_size 1: two clients always take turns on the same server."""
    proxy = Proxy(one, {"proxy.pool_size": "1", "proxy.log_level": "debug"}, name="sess1").start()
    yield proxy
    assert proxy.stop() == 0, proxy.log()[-3000:]


@pytest.fixture(scope="module")
def two(one):
    metrics_port = free_port()
    proxy = Proxy(one, {"proxy.pool_size": "2", "proxy.log_level": "debug", "auth.admin_users": "postgres",
                        "proxy.metrics_listen": f"127.0.0.1:{metrics_port}"}, name="sess2").start()
    proxy.metrics_port = metrics_port
    yield proxy
    assert proxy.stop() == 0, proxy.log()[-3000:]


def pinned_by(proxy):
    """SHOW CLIENTS' pinned_by column, for the clients that have one."""
    with psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres", password=proxy.cluster.su_pw,
                         dbname="pgha", autocommit=True) as a:
        cur = a.cursor()
        cur.execute("SHOW CLIENTS", prepare=False)
        col = [d.name for d in cur.description].index("pinned_by")
        return [r[col] for r in cur.fetchall() if r[col]]


def metrics(proxy):
    """The proxy's /metrics (rendered once a second: waits for a fresh one)."""
    time.sleep(1.2)
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.metrics_port}/metrics", timeout=5) as r:
        return r.read().decode()


def proxy_rss(proxy):
    with open(f"/proc/{proxy.proc.pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def show(c, name):
    return c.execute(f"SHOW {name}").fetchone()[0]


def setting(c, name):
    return c.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0]


def test_settings_follow_their_client_and_never_leak(shared):
    a = shared.connect(autocommit=True, options="-c statement_timeout=5s")
    b = shared.connect(autocommit=True)
    try:
        default_wm = show(b, "work_mem")
        a.execute("SET work_mem = '8MB'")
        a.execute("SET search_path = a, \"B c\"")
        a.execute("SET app.tenant = '42'")
        a.execute("SELECT set_config('app.user', 'alice', false)")
        for _ in range(3):   # one server, taken in turns
            assert show(a, "work_mem") == "8MB"
            assert show(a, "search_path") == 'a, "B c"'
            assert setting(a, "app.tenant") == "42" and setting(a, "app.user") == "alice"
            assert show(a, "statement_timeout") == "5s"
            assert show(b, "work_mem") == default_wm
            assert show(b, "search_path") == '"$user", public'
            assert setting(b, "app.tenant") in (None, "")
            assert show(b, "statement_timeout") == "0"
        assert a.execute("SELECT pg_backend_pid()").fetchone() == b.execute("SELECT pg_backend_pid()").fetchone()
        # SET LOCAL keeps its transaction's scope; a rolled-back SET is undone.
        with a.transaction():
            a.execute("SET LOCAL work_mem = '1MB'")
            assert show(a, "work_mem") == "1MB"
        assert show(a, "work_mem") == "8MB"
        a.execute("BEGIN")
        a.execute("SET work_mem = '2MB'")
        a.execute("ROLLBACK")
        assert show(b, "work_mem") == default_wm
        assert show(a, "work_mem") == "8MB"
        # RESET returns to the startup value, as in PostgreSQL; RESET ALL and DISCARD ALL to all of them.
        a.execute("SET statement_timeout = '7s'")
        assert show(b, "statement_timeout") == "0"
        assert show(a, "statement_timeout") == "7s"
        a.execute("RESET statement_timeout")
        assert show(b, "statement_timeout") == "0"
        assert show(a, "statement_timeout") == "5s"
        a.execute("RESET ALL")
        assert show(b, "work_mem") == default_wm
        assert show(a, "work_mem") == default_wm and show(a, "statement_timeout") == "5s"
        a.execute("SET work_mem = '3MB'")
        a.execute("DISCARD ALL")
        assert show(b, "statement_timeout") == "0"
        assert show(a, "work_mem") == default_wm and show(a, "statement_timeout") == "5s"
        # A SET in a multi-statement Query, and one in the extended protocol.
        a.cursor().execute("SELECT 1; SET work_mem = '5MB'; SELECT 2", prepare=False)
        assert show(b, "work_mem") == default_wm
        assert show(a, "work_mem") == "5MB"
        a.execute("SELECT set_config('work_mem', %s, false)", ("6MB",))
        assert show(b, "work_mem") == default_wm
        assert show(a, "work_mem") == "6MB"
    finally:
        a.close()
        b.close()


def test_sql_prepare_execute_deallocate_across_servers(two):
    a, b, c = (two.connect(autocommit=True) for _ in range(3))
    try:
        a.execute("PREPARE q(int) AS SELECT $1 + 1")
        b.execute("PREPARE q(int) AS SELECT $1 * 10")    # the same name, another statement
        pids = set()
        for i in range(8):
            # c holds a server in an open transaction half of the time: a and b move.
            if i % 2 == 0:
                c.execute("BEGIN")
                pids.add(c.execute("SELECT pg_backend_pid()").fetchone()[0])
            assert a.execute(f"EXECUTE q({i})").fetchone()[0] == i + 1
            assert b.execute(f"EXECUTE q({i})").fetchone()[0] == i * 10
            pids.add(a.execute("SELECT pg_backend_pid()").fetchone()[0])
            if i % 2 == 0:
                c.execute("COMMIT")
        assert len(pids) == 2, pids     # both servers were used
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            c.execute("EXECUTE q(1)")    # c never prepared it
        a.execute("DEALLOCATE q")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            a.execute("EXECUTE q(1)")
        assert b.execute("EXECUTE q(2)").fetchone()[0] == 20
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            b.execute("PREPARE q(int) AS SELECT 0")
    finally:
        for x in (a, b, c):
            x.close()


def test_listen_keeps_its_server_and_gets_its_notifications(two):
    listener = two.connect(autocommit=True)
    sender = two.connect(autocommit=True)
    try:
        listener.execute("LISTEN jobs")
        pid = listener.execute("SELECT pg_backend_pid()").fetchone()[0]
        for i in range(3):
            sender.execute("SELECT pg_notify('jobs', %s)", (f"job {i}",))
        # They arrive while the listener sends nothing (asynchronously, as from PostgreSQL).
        got, deadline = [], time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            select.select([listener.pgconn.socket], [], [], 0.5)
            listener.pgconn.consume_input()
            while (n := listener.pgconn.notifies()) is not None:
                got.append(n.extra.decode())
        assert got == ["job 0", "job 1", "job 2"]
        assert listener.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        # The operator sees why this client keeps a server.
        assert pinned_by(two) == ["LISTEN"]
        assert 'pgha_proxy_pool_clients_pinned{database="postgres",user="postgres",port="rw"} 1' in metrics(two)
        listener.execute("UNLISTEN *")
        # The pin goes once the proxy's own check query (sess.c) has answered, which may come just
        # after the client's answer: a bounded wait.
        wait_until("the pin released", lambda: pinned_by(two) == [], timeout=5, interval=0.1)
        # Released: two other clients in open transactions can now take both servers.
        x, y = two.connect(autocommit=True), two.connect(autocommit=True)
        try:
            x.execute("BEGIN")
            y.execute("BEGIN")
            px = x.execute("SELECT pg_backend_pid()").fetchone()[0]
            py = y.execute("SELECT pg_backend_pid()").fetchone()[0]
            assert px != py and pid in (px, py)
            assert y.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
            assert x.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
        finally:
            x.close()
            y.close()
    finally:
        listener.close()
        sender.close()


def test_the_proxy_s_own_statement_names_are_not_the_clients(shared):
    """The proxy prepares drivers' statements on its servers as pgha_<n>, shared by the clients of a
    pool: another client's SQL DEALLOCATE, EXECUTE or PREPARE of such a name gets PostgreSQL's
    answer for a session that never had it, and the statement still works for its owner. One
    dropped anyway (inside a DO block, where the proxy does not look) fails its next use once,
    then is prepared again."""
    with shared.connect(autocommit=True) as a, shared.connect(autocommit=True) as b:
        q = "SELECT %s::int * 3"
        for i in range(6):   # psycopg prepares it on the server from the 5th execution
            assert a.execute(q, (i,), prepare=True).fetchone()[0] == i * 3
        names = [r[0] for r in b.execute("SELECT name FROM pg_prepared_statements").fetchall()]
        mine = [n for n in names if n.startswith("pgha_")]
        assert mine, names   # pool_size 1: b sees the server a used
        name = mine[0]
        with pytest.raises(psycopg.errors.InvalidSqlStatementName) as e:
            b.execute(f"DEALLOCATE {name}")
        assert "proxy's own prepared statements" in e.value.diag.message_hint
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            b.execute(f"EXECUTE {name}(1)")
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            b.execute(f"PREPARE {name.upper()} AS SELECT 1")
        b.execute("PREPARE pgha_mine AS SELECT 7")   # not the proxy's pattern: the client's own
        assert b.execute("EXECUTE pgha_mine").fetchone()[0] == 7
        assert a.execute(q, (7,), prepare=True).fetchone()[0] == 21
        # Dropped where the proxy cannot see: one failure, then it is prepared again.
        b.execute(f"DO $$BEGIN EXECUTE 'DEALLOCATE {name}'; END$$")
        failed = 0
        for i in range(3):
            try:
                assert a.execute(q, (i,), prepare=True).fetchone()[0] == i * 3
            except psycopg.errors.InvalidSqlStatementName:
                failed += 1
        assert failed <= 1


@pytest.mark.parametrize("hold,release", [
    ("SELECT pg_advisory_lock(4242)", "SELECT pg_advisory_unlock(4242)"),
    ("CREATE TEMP TABLE scratch (a int); INSERT INTO scratch VALUES (7)", "DROP TABLE scratch"),
    ("BEGIN; DECLARE cur CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 5) g; COMMIT", "CLOSE cur"),
], ids=["advisory-lock", "temp-table", "hold-cursor"])
def test_state_that_cannot_move_keeps_the_server_until_it_is_gone(two, hold, release):
    a, other = two.connect(autocommit=True), two.connect(autocommit=True)
    try:
        a.cursor().execute(hold, prepare=False)
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        for _ in range(3):
            other.execute("BEGIN")
            assert other.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
            other.execute("COMMIT")
        if "scratch" in hold:
            assert a.execute("SELECT a FROM scratch").fetchone()[0] == 7
        if "cur" in hold:
            assert a.execute("FETCH 2 FROM cur").fetchall() == [(1,), (2,)]
        a.execute(release)
        # Free again: another client in a transaction can take its server.
        x, y = two.connect(autocommit=True), two.connect(autocommit=True)
        try:
            x.execute("BEGIN")
            y.execute("BEGIN")
            assert pid in (x.execute("SELECT pg_backend_pid()").fetchone()[0],
                           y.execute("SELECT pg_backend_pid()").fetchone()[0])
        finally:
            x.close()
            y.close()
    finally:
        a.close()
        other.close()


def test_a_client_leaving_with_pinned_state_leaks_nothing(shared):
    a = shared.connect(autocommit=True)
    a.execute("LISTEN leak; SELECT pg_advisory_lock(77)")
    a.close()
    b = shared.connect(autocommit=True)
    try:
        assert b.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
        assert b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0
    finally:
        b.close()


def test_pinning_off_refuses_with_the_feature_and_the_setting(one):
    proxy = Proxy(one, {"proxy.pool_size": "2", "proxy.transaction_pinning": "off"}, name="nopin").start()
    try:
        with proxy.connect(autocommit=True) as c:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as exc:
                c.execute("LISTEN jobs")
            assert "LISTEN cannot be used through the proxy in transaction pooling mode" in str(exc.value)
            assert "transaction_pinning" in exc.value.diag.message_hint
            # The extended protocol, with a parameter: refused too.
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                c.execute("SELECT pg_advisory_lock(%s)", (5,))
            # Inside a transaction it fails the transaction, as any error does.
            c.execute("BEGIN")
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                c.execute("CREATE TEMP TABLE t (a int)")
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                c.execute("SELECT 1")
            c.execute("ROLLBACK")
            # What moves still works.
            c.execute("SET work_mem = '9MB'")
            assert show(c, "work_mem") == "9MB"
            assert c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_pinning_is_set_per_pool(one):
    """transaction_pinning_pools: the same user pinned in one database, refused in another."""
    one.nodes["s1"].sql("CREATE DATABASE batch")
    proxy = Proxy(one, {"proxy.pool_size": "2", "proxy.transaction_pinning": "off",
                        "proxy.transaction_pinning_pools": "nobody@*:off, postgres@postgres:on"},
                  name="pinpools").start()
    try:
        with proxy.connect(autocommit=True) as c:
            c.execute("LISTEN jobs")   # this pool: on
            assert c.execute("SELECT pg_listening_channels()").fetchone()[0] == "jobs"
        with psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres", password=one.su_pw,
                             dbname="batch", autocommit=True) as c:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as exc:
                c.execute("LISTEN jobs")   # the default: off
            assert "transaction_pinning_pools" in exc.value.diag.message_hint
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_bad_input_is_answered_by_the_server_or_bounded(shared):
    with shared.connect(autocommit=True) as c:
        # What the parser rejects reaches the server unchanged, which answers it.
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("SET = nonsense")
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("SELECT set_config(")
        # A large value is carried.
        big = "x" * 100_000
        c.execute("SELECT set_config('app.big', %s, false)", (big,))
        with shared.connect(autocommit=True) as other:
            assert setting(other, "app.big") in (None, "")
        assert setting(c, "app.big") == big
    # More settings than the proxy carries: the client keeps its server (bounded memory), still right.
    with shared.connect(autocommit=True) as c:
        c.cursor().execute("; ".join(f"SET app.k{i} = '{i}'" for i in range(1200)), prepare=False)
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert setting(c, "app.k1199") == "1199"
        assert c.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
    with shared.connect(autocommit=True) as c:
        assert setting(c, "app.k5") in (None, "")   # its server was closed with it
    # Thousands of channels: the server keeps them, the proxy only the pin.
    rss0 = proxy_rss(shared)
    with shared.connect(autocommit=True) as c:
        c.cursor().execute("; ".join(f"LISTEN ch{i}" for i in range(3000)), prepare=False)
        assert c.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 3000
        got = []
        c.add_notify_handler(lambda n: got.append(n.payload))
        c.execute("SELECT pg_notify('ch2999', 'last')")
        c.execute("SELECT 1")
        assert got == ["last"]
        assert proxy_rss(shared) - rss0 < 16 * 1024 * 1024


def test_a_bad_startup_setting_fails_the_client_like_postgresql(shared):
    c = shared.connect(autocommit=True, options="-c statement_timeout=forever")
    try:
        with pytest.raises(psycopg.OperationalError) as exc:
            c.execute("SELECT 1")
        assert "invalid value for parameter" in str(exc.value)
    finally:
        c.close()
    with pytest.raises(psycopg.OperationalError) as exc:
        shared.connect(options="-e")
    assert "is not a setting" in str(exc.value)
    with shared.connect(autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_a_pinned_client_whose_server_ends_is_told_and_closed(one, two):
    listener = two.connect(autocommit=True)
    try:
        listener.execute("LISTEN gone")
        pid = listener.execute("SELECT pg_backend_pid()").fetchone()[0]
        one.nodes["s1"].sql(f"SELECT pg_terminate_backend({pid})")
        # Its LISTEN lived on that server only: the client learns it lost its session, as directly.
        with pytest.raises(psycopg.OperationalError) as exc:
            for _ in range(50):
                listener.execute("SELECT 1")
                time.sleep(0.1)
        assert "the session's LISTEN went with it" in str(exc.value)
    finally:
        listener.close()
    with two.connect(autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0


def test_a_server_keeps_at_most_max_prepared_statements(one):
    """Drivers' named statements are prepared on the server connection they run on and kept for the
    next client; past max_prepared_statements the one used least recently is closed there, and
    prepared again when next used: every statement keeps working, alone or pipelined, and the
    server never holds more."""
    metrics_port = free_port()
    proxy = Proxy(one, {"proxy.pool_size": "1", "proxy.max_prepared_statements": "3",
                        "proxy.metrics_listen": f"127.0.0.1:{metrics_port}"}, name="sessmax").start()
    try:
        with proxy.connect(autocommit=True, prepare_threshold=0) as c:
            def held():
                return c.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgha%%'",
                                 prepare=False).fetchone()[0]
            for rnd in range(3):
                for k in range(8):
                    assert c.execute(f"SELECT %s::int + {k}", (rnd,)).fetchone()[0] == rnd + k
                    assert held() <= 3
            with c.pipeline():
                curs = [c.execute(f"SELECT %s::int * {k}", (2,)) for k in range(10)]
            assert [cur.fetchone()[0] for cur in curs] == [2 * k for k in range(10)]
            assert held() <= 3
            # An error in a pipeline skips the Close the proxy sent before a Parse: the server keeps
            # that statement, and the proxy knows it (no "already exists" later).
            with pytest.raises(psycopg.errors.DivisionByZero):
                with c.pipeline():
                    c.execute("SELECT 1 / %s::int", (0,))
                    c.execute("SELECT %s::int - 100", (1,))
            for k in (9, 8, 7):   # the Close skipped was of one of these, the least recently used
                assert c.execute(f"SELECT %s::int * {k}", (3,)).fetchone()[0] == 3 * k
            for k in range(8):
                assert c.execute(f"SELECT %s::int + {k}", (1,)).fetchone()[0] == 1 + k
        def evicted():   # /metrics is rendered each second
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
            return [float(l.split()[-1]) for l in text.splitlines()
                    if l.startswith("pgha_proxy_prepared_statements_evicted_total ")][0] > 0
        wait_until("statements closed at max_prepared_statements to be counted", evicted, timeout=10)
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]
