"""Read-your-writes (docs/READ_YOUR_WRITES.md) with node-postgres and pgJDBC: a driver commits a row
through the proxy's read-write port and at once reads it through the read-only port, on the cluster
of test_proxy_ryw.py (a leader, a standby, and a standby replaying 300 ms late). Without the
feature, reads landing on the late standby miss their row (the control, with each driver); with it,
none does."""
import pytest

from conftest import Proxy, wait_until
from drivers import DRIVERS, Clients, error
from test_proxy_ryw import three  # noqa: F401 (the module's cluster fixture)

ROUNDS = 100


def spread(proxy):
    """Two servers in the read-only pool, one on each standby: they open round robin over the
    standbys, and an idle server is taken oldest first, so a lone reader's reads then alternate
    between the late standby and the other. Done before the proxy saw any write: no read waits."""
    readers = [proxy.connect(ro=True, autocommit=True) for _ in range(2)]
    try:
        for r in readers:
            r.execute("BEGIN")
        ports = {r.execute("SELECT inet_server_port()").fetchone()[0] for r in readers}
        for r in readers:
            r.execute("COMMIT")
    finally:
        for r in readers:
            r.close()
    cluster = proxy.cluster
    assert ports == {n.pg_port for name, n in cluster.nodes.items() if name != cluster.leader()}, ports


@pytest.fixture(scope="module")
def proxies(three):  # noqa: F811
    on = Proxy(three, {"proxy.read_your_writes": "on", "proxy.ryw_wait": "50ms"}, name="drvryw")
    off = Proxy(three, {"proxy.read_your_writes": "off"}, name="drvnoryw")
    try:
        for p in (on, off):
            spread(p.start())
        yield on, off
    finally:
        stopped = [on.stop(), off.stop()]
        assert stopped == [0, 0], [on.log()[-3000:], off.log()[-3000:]]


def write_then_read(driver, proxy, table, rounds, paused=None):
    """Each round commits a row through the read-write port (a bound parameter) and reads it at once
    through the read-only port, with replay paused on the standby named paused if any: (reads that
    missed it, reads a standby answered, reads of those the late standby r3 answered)."""
    cluster = proxy.cluster
    late = str(cluster.nodes["r3"].pg_port)
    with Clients(driver, cluster) as c:
        c.connect("w", proxy.port)
        c.connect("r", proxy.ro_port)
        assert error(c("w", f"CREATE TABLE {table} (id int PRIMARY KEY)")) is None
        wait_until(f"{table} on every standby", lambda: all(
            n.sql("SELECT to_regclass(%s)", (table,))[0][0] for n in cluster.nodes.values()), timeout=10)
        if paused:
            cluster.nodes[paused].sql("SELECT pg_wal_replay_pause()")
        try:
            misses = on_standby = late_misses = 0
            for i in range(rounds):
                assert error(c("w", f"INSERT INTO {table} VALUES ($1::int)", str(i))) is None
                n, standby, port = c("r", f"SELECT count(*), pg_is_in_recovery()::int, inet_server_port() "
                                          f"FROM {table} WHERE id = $1::int", str(i)).split("|")
                misses += n == "0"
                on_standby += standby == "1"
                late_misses += n == "0" and port == late
        finally:
            if paused:
                cluster.nodes[paused].sql("SELECT pg_wal_replay_resume()")
        return misses, on_standby, late_misses


def table_of(driver, what):
    return f"ryw_{what}_{driver.replace('-', '_')}"


@pytest.mark.parametrize("driver", DRIVERS)
def test_without_it_a_lagging_standby_misses_writes(proxies, driver):
    _, off = proxies
    misses, _, late = write_then_read(driver, off, table_of(driver, "off"), 30)
    print(f"{driver}, read_your_writes off: {misses}/30 reads missed their write, {late} on the late standby")
    assert late > 0   # the test below can fail


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_read_sees_its_write(proxies, driver):
    on, _ = proxies
    misses, on_standby, _ = write_then_read(driver, on, table_of(driver, "on"), ROUNDS)
    print(f"{driver}, read_your_writes on: {misses}/{ROUNDS} missed, "
          f"{on_standby * 100 // ROUNDS}% served by a standby")
    assert misses == 0
    # Half the reads are offered the late standby (spread()); the proxy may prefer a standby known to
    # be further along, or run them on the leader: most still run on a standby.
    assert on_standby >= ROUNDS // 4
    # Replay paused on the other standby too: none catches up within ryw_wait, so every read runs on
    # the leader (a lent server, read-only).
    cluster = on.cluster
    other = next(n for n in cluster.nodes if n not in (cluster.leader(), "r3"))
    misses, on_standby, _ = write_then_read(driver, on, table_of(driver, "paused"), 20, paused=other)
    print(f"{driver}, replay paused: {misses}/20 missed, {on_standby} served by a standby")
    assert misses == 0 and on_standby == 0
