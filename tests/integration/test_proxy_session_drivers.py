"""Session state in transaction mode (test_proxy_session.py) with the two other drivers the issue
names: node-postgres (npm `pg`) and pgJDBC, driven a step at a time (drivers.py). Settings and SQL
prepared statements follow each client: the same steps run directly against PostgreSQL first, and
the proxy must answer what PostgreSQL answers. LISTEN, session advisory locks, temporary tables and
WITH HOLD cursors keep the client on its server while other clients run transactions on the pool's
other one, and let it go once gone (SHOW CLIENTS' pinned_by says so); with transaction_pinning = off
the driver gets 0A000 naming the feature, and its connection stays usable."""
import pytest

from conftest import Proxy, module_cluster, wait_until
from drivers import DRIVERS, Clients, error
from test_proxy_session import pinned_by

# (client, sql, text parameter or None). $1 is written ? for pgJDBC.
SETTINGS = [
    ("a", "SET work_mem = '8MB'", None),
    ("a", "SELECT set_config('app.tenant', $1, false)", "42"),
    ("b", "SHOW work_mem", None),
    ("a", "SHOW work_mem", None),
    ("a", "SELECT current_setting('app.tenant')", None),
    ("b", "SELECT coalesce(current_setting('app.tenant', true), '')", None),
    ("a", "PREPARE q(int) AS SELECT $1 + 1", None),
    ("b", "PREPARE q(int) AS SELECT $1 * 10", None),
    ("a", "EXECUTE q(1)", None),
    ("b", "EXECUTE q(1)", None),
    ("a", "BEGIN", None),
    ("a", "SET LOCAL work_mem = '1MB'", None),
    ("a", "COMMIT", None),
    ("a", "SHOW work_mem", None),
    ("a", "RESET ALL", None),
    ("a", "SHOW work_mem", None),
    ("a", "DEALLOCATE q", None),
    ("a", "EXECUTE q(1)", None),
    ("b", "EXECUTE q(2)", None),
]
# What cannot follow a client to another server: (what takes it, SHOW CLIENTS' pinned_by, what
# releases it, (a query of the holder, its answer in round i), (a query of another client in a
# transaction, its answer while the state is held, and once it is released)).
HOLDS = {
    "advisory-lock": ("SELECT pg_advisory_lock(4242)", "session advisory locks", "SELECT pg_advisory_unlock(4242)",
                      ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
                       lambda i: "1"),
                      ("SELECT pg_try_advisory_xact_lock(4242)::int", "0", "1")),
    "temp-table": ("CREATE TEMP TABLE scratch AS SELECT 7 AS a", "temporary tables", "DROP TABLE scratch",
                   ("SELECT a FROM scratch", lambda i: "7"),
                   ("SELECT to_regclass('pg_temp.scratch')", "", "")),
    "hold-cursor": ("BEGIN; DECLARE cur CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 5) g; COMMIT",
                    "WITH HOLD cursors", "CLOSE cur",
                    ("FETCH 1 FROM cur", lambda i: str(i + 1)),
                    ("SELECT count(*) FROM pg_cursors WHERE name = 'cur'", "0", "0")),
}


@pytest.fixture(scope="module")
def drivers_cluster(request):
    """A member and three transaction-mode proxies: pool_size 1 (clients take turns on one server),
    pool_size 2 with an admin console, and pool_size 2 with transaction_pinning = off."""
    with module_cluster(request, ["j1"]) as (cluster, _):
        proxies = [Proxy(cluster, {"proxy.pool_size": "1"}, name="drv1"),
                   Proxy(cluster, {"proxy.pool_size": "2", "auth.admin_users": "postgres"}, name="drv2"),
                   Proxy(cluster, {"proxy.pool_size": "2", "proxy.transaction_pinning": "off"}, name="drvoff")]
        try:
            yield cluster, *(p.start() for p in proxies)
        finally:
            stopped = [p.stop() for p in proxies]
            assert stopped == [0, 0, 0], [p.log()[-3000:] for p in proxies]


def run(driver, port, steps, cluster):
    """Each step's answer, the clients of steps connected to port first."""
    with Clients(driver, cluster) as c:
        for who in sorted({s[0] for s in steps}):
            c.connect(who, port)
        return [c(*s) for s in steps]


def both_busy(c, pid):
    """Clients x and y each in a transaction take both servers of a pool_size 2 proxy: one of them
    the server pid, once no client keeps it. Their transactions stay open."""
    c("x", "BEGIN")
    c("y", "BEGIN")
    pids = {c("x", "SELECT pg_backend_pid()"), c("y", "SELECT pg_backend_pid()")}
    assert len(pids) == 2 and pid in pids, (pid, pids)


@pytest.mark.parametrize("driver", DRIVERS)
def test_settings_and_sql_prepare_follow_each_client(drivers_cluster, driver):
    cluster, shared, _, _ = drivers_cluster
    direct = run(driver, cluster.nodes["j1"].pg_port, SETTINGS, cluster)
    proxied = run(driver, shared.port, SETTINGS, cluster)
    assert proxied == direct, list(zip(SETTINGS, direct, proxied))
    # And what that means, so the comparison cannot pass on two wrong answers.
    answers = dict(zip(range(len(SETTINGS)), proxied))
    assert answers[3] == "8MB" and answers[2] != "8MB"
    assert answers[4] == "42" and answers[5] == ""
    assert (answers[8], answers[9]) == ("2", "10")
    assert answers[13] == "8MB" and answers[15] == answers[2]
    assert answers[17].startswith("ERROR:26000") and answers[18] == "20"


@pytest.mark.parametrize("driver", DRIVERS)
def test_listen_keeps_its_server_gets_notifications_and_lets_go(drivers_cluster, driver):
    """The listener keeps its server while client x runs transactions on the pool's other one; the
    notifications x and y send reach it while it sends nothing (the driver's own API); UNLISTEN
    gives its server back."""
    cluster, _, two, _ = drivers_cluster
    with Clients(driver, cluster) as c:
        for who in ("l", "x", "y"):
            c.connect(who, two.port)
        assert c("l", "LISTEN jobs") == ""
        pid = c("l", "SELECT pg_backend_pid()")
        assert pinned_by(two) == ["LISTEN"]
        for i in range(3):
            c("x", "BEGIN")
            assert c("x", "SELECT pg_backend_pid()") != pid
            assert c("l", "SELECT pg_backend_pid()") == pid
            c("x", "SELECT pg_notify('jobs', $1)", f"x{i}")
            c("x", "COMMIT")
            c("y", "SELECT pg_notify('jobs', $1)", f"y{i}")
            assert c("l", "@notifications", 2) == f"x{i}|y{i}"
        assert c("l", "UNLISTEN *") == ""
        # The pin goes once the proxy's own check query (sess.c) has answered, which may come just
        # after the client's answer: a bounded wait.
        wait_until("the pin released", lambda: pinned_by(two) == [], timeout=5, interval=0.1)
        assert c("l", "SELECT count(*) FROM pg_listening_channels()") == "0"
        both_busy(c, pid)
        assert c("y", "SELECT count(*) FROM pg_listening_channels()") == "0"
        assert c("x", "SELECT count(*) FROM pg_listening_channels()") == "0"


@pytest.mark.parametrize("kind", HOLDS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_state_that_cannot_move_keeps_its_server_until_it_is_gone(drivers_cluster, driver, kind):
    cluster, _, two, _ = drivers_cluster
    hold, feature, release, (mine, mine_want), (other, while_held, once_released) = HOLDS[kind]
    with Clients(driver, cluster) as c:
        for who in ("a", "x", "y"):
            c.connect(who, two.port)
        assert error(c("a", hold)) is None
        pid = c("a", "SELECT pg_backend_pid()")
        assert pinned_by(two) == [feature]
        for i in range(3):
            # x holds the pool's other server: a's transactions can only run on its own.
            c("x", "BEGIN")
            assert c("x", "SELECT pg_backend_pid()") != pid
            assert c("x", other) == while_held
            assert c("a", "SELECT pg_backend_pid()") == pid
            assert c("a", mine) == mine_want(i)
            c("x", "COMMIT")
        assert error(c("a", release)) is None
        # The pin goes once the proxy's own check query (sess.c) has answered, which may come just
        # after the client's answer: a bounded wait.
        wait_until("the pin released", lambda: pinned_by(two) == [], timeout=5, interval=0.1)
        both_busy(c, pid)
        assert c("x", other) == once_released


@pytest.mark.parametrize("driver", DRIVERS)
def test_pinning_off_refuses_with_the_feature_and_the_setting(drivers_cluster, driver):
    cluster, _, _, off = drivers_cluster
    with Clients(driver, cluster) as c:
        c.connect("a", off.port)
        code, message, hint = error(c("a", "LISTEN jobs"))
        assert code == "0A000"
        assert message.startswith("LISTEN cannot be used through the proxy in transaction pooling mode"), message
        assert "transaction_pinning" in hint, hint
        assert c("a", "SELECT 1") == "1"
        # Inside a transaction it fails the transaction, as any error does.
        c("a", "BEGIN")
        assert error(c("a", "CREATE TEMP TABLE t (a int)"))[0] == "0A000"
        assert error(c("a", "SELECT 1"))[0] == "25P02"
        assert c("a", "ROLLBACK") == ""
        assert c("a", "SELECT count(*) FROM pg_listening_channels()") == "0"
        assert c("a", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == "0"
        assert c("a", "SELECT to_regclass('pg_temp.t')") == ""


@pytest.mark.parametrize("driver", DRIVERS)
def test_pinning_off_refuses_a_statement_with_a_bound_parameter(drivers_cluster, driver):
    """The extended protocol with a parameter whose type the driver leaves to the server (node-postgres
    sends none in its Parse; pgJDBC names varchar): refused as well, and the client goes on."""
    cluster, _, _, off = drivers_cluster
    with Clients(driver, cluster) as c:
        c.connect("a", off.port)
        code, message, hint = error(c("a", "SELECT pg_advisory_lock($1::bigint)", "5"))
        assert (code, message.split(":")[0]) == \
            ("0A000", "session advisory locks cannot be used through the proxy in transaction pooling mode"), message
        assert "transaction_pinning" in hint, hint
        assert c("a", "SELECT $1::int + 1", "41") == "42"
        assert c("a", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == "0"
