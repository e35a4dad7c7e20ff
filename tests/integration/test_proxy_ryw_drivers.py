"""Read-your-writes (docs/READ_YOUR_WRITES.md) with node-postgres and pgJDBC: a driver commits a row
through the proxy's read-write port and at once reads it through the read-only port, on the cluster
of test_proxy_ryw.py (a leader, a standby, and a standby replaying 300 ms late). Without the
feature, reads landing on the late standby miss their row (the control, with each driver); with it,
none does.

The single-endpoint read/write split (rw_split) with both drivers, on that cluster too: through the
read-write port alone, a driver's read-only transactions (rw_split = transactions) or its proven
autocommit reads (statements) run on a standby that replayed the driver's own writes."""
import pytest

from conftest import Proxy, wait_until
from drivers import DRIVERS, Clients, error
from test_proxy_ryw import split_count, split_proxy, three  # noqa: F401 (three: the module's cluster)

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


# ---- the single-endpoint read/write split (rw_split) -------------------------------------------

SPLIT_ROUNDS = 100
# Measured: 99-100% of the reads on a standby, or about half when the proxy keeps offering the late
# standby (the other one not checked since, so not known to be further along) and those reads go to
# the leader after ryw_wait (as in test_every_read_sees_its_write).
SPLIT_FLOOR = SPLIT_ROUNDS // 4


@pytest.fixture(scope="module")
def split(three):  # noqa: F811
    """A proxy per rw_split mode, both drivers' (its read-only pool spread over the standbys)."""
    started = {}
    try:
        for mode in ("transactions", "statements"):
            started[mode] = split_proxy(three, mode, f"drvsplit_{mode}")
            started[mode].standby_reads = 0   # by the tests so far: a floor for the counter
            spread(started[mode])
        yield started
    finally:
        stopped = [p.stop() for p in started.values()]
        assert all(rc == 0 for rc in stopped), [p.log()[-3000:] for p in started.values()]


def begin_read_only(c, driver, who):
    """Begin a read-only transaction the driver's usual way: node-postgres's BEGIN READ ONLY;
    pgJDBC's setReadOnly(true) with autocommit off, its readOnlyMode left at the default,
    "transaction" (checked): pgJDBC sends BEGIN READ ONLY in front of the next statement, named
    from its 5th time on (prepareThreshold), like that statement and the COMMIT."""
    if driver == "pgjdbc":
        assert c(who, "@readonly", "on") == "transaction"
    else:
        assert c(who, "BEGIN READ ONLY") == ""


def end_read_only(c, driver, who, how="commit"):
    if driver == "pgjdbc":
        assert c(who, f"@{how}") == ""
        assert c(who, "@readonly", "off") == ""
    else:
        assert c(who, how.upper()) == ""


def split_rounds(c, driver, who, table, ids, in_transaction):
    """Each round writes a row through client who (an autocommit INSERT, a bound parameter) and
    reads it back at once through the same client: in a read-only transaction (in_transaction) or
    as an autocommit SELECT. (reads that missed their row, reads a standby answered)"""
    read = f"SELECT count(*), pg_is_in_recovery()::int FROM {table} WHERE id = $1::int"
    misses = on_standby = 0
    for i in ids:
        assert error(c(who, f"INSERT INTO {table} VALUES ($1::int)", str(i))) is None
        if in_transaction:
            begin_read_only(c, driver, who)
        answer = c(who, read, str(i))
        if in_transaction:
            end_read_only(c, driver, who)
        assert error(answer) is None, answer
        n, standby = answer.split("|")
        misses += n == "0"
        on_standby += standby == "1"
    return misses, on_standby


def split_checked(c, driver, split, proxies, what):
    """SPLIT_ROUNDS of split_rounds through client "a", on the read-write port of the proxy of mode
    what (none missed, enough on a standby), then 20 through client "off", on that of a proxy without
    rw_split (none on a standby: the control). The reads a standby answered, counted by the proxy."""
    proxy, table, in_transaction = split[what], table_of(driver, f"split_{what}"), what == "transactions"
    c.connect("a", proxy.port)
    c.connect("off", proxies[0].port)
    assert error(c("a", f"CREATE TABLE {table} (id int PRIMARY KEY)")) is None
    misses, on_standby = split_rounds(c, driver, "a", table, range(SPLIT_ROUNDS), in_transaction)
    print(f"{driver}, rw_split = {what}: {misses}/{SPLIT_ROUNDS} "
          f"{'read-only transactions' if in_transaction else 'autocommit reads'} missed their write, "
          f"{on_standby * 100 // SPLIT_ROUNDS}% served by a standby")
    assert misses == 0
    assert on_standby >= SPLIT_FLOOR
    assert split_rounds(c, driver, "off", table, range(SPLIT_ROUNDS, SPLIT_ROUNDS + 20), in_transaction) == (0, 0)
    # pgha_proxy_rw_split_reads_total counts at least every read a standby answered.
    proxy.standby_reads += on_standby
    assert split_count(proxy, proxy.standby_reads) >= proxy.standby_reads
    return table


@pytest.mark.parametrize("driver", DRIVERS)
def test_rw_split_transactions_read_only_ones_go_to_standbys(proxies, split, driver):
    with Clients(driver, split["transactions"].cluster) as c:
        table = split_checked(c, driver, split, proxies, "transactions")
        # Not a read-only transaction: the leader, a plain SELECT too (6 times: pgJDBC names it at the 5th).
        for _ in range(6):
            assert c("a", "SELECT pg_is_in_recovery()::int") == "0"
            assert c("a", "SELECT pg_is_in_recovery()::int + $1::int", "0") == "0"
        # A write in a read-only transaction fails as on the leader, and the client goes on.
        begin_read_only(c, driver, "a")
        answer = c("a", f"INSERT INTO {table} VALUES ($1::int)", "-1")
        assert (error(answer) or ("",))[0] == "25006", answer
        end_read_only(c, driver, "a", "rollback")
        assert error(c("a", f"INSERT INTO {table} VALUES ($1::int)", "-1")) is None
        assert c("a", f"SELECT count(*) FROM {table} WHERE id = $1::int", "-1") == "1"
        # A session that asks for SERIALIZABLE (what pgJDBC's setTransactionIsolation sends): a standby
        # refuses it, so its read-only transactions run on the leader; back to READ COMMITTED, on a standby.
        for level, standby in (("SERIALIZABLE", False), ("READ COMMITTED", True)):
            assert c("a", f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}") == ""
            served = set()
            for _ in range(6):
                begin_read_only(c, driver, "a")
                answer = c("a", "SELECT pg_is_in_recovery()::int, current_setting('transaction_isolation')")
                end_read_only(c, driver, "a")
                assert answer.split("|")[1:] == [level.lower()], answer
                served.add(answer.split("|")[0])
            assert ("1" in served) == standby, (level, served)


@pytest.mark.parametrize("driver", DRIVERS)
def test_rw_split_statements_proven_reads_go_to_standbys(proxies, split, driver):
    with Clients(driver, split["statements"].cluster) as c:
        # More than 5 rounds: from the 5th on, pgJDBC binds a named statement prepared once.
        table = split_checked(c, driver, split, proxies, "statements")
        # nextval() is not safe: the leader runs it (named by pgJDBC too).
        assert error(c("a", f"CREATE SEQUENCE {table}_seq")) is None
        for k in range(1, 7):
            assert c("a", "SELECT nextval($1::regclass), pg_is_in_recovery()::int", f"{table}_seq") == f"{k}|0"
        # In a transaction, a proven read runs where the transaction does: on the leader, seeing its rows.
        assert c("a", "BEGIN") == ""
        assert error(c("a", f"INSERT INTO {table} VALUES ($1::int)", "-1")) is None
        assert c("a", f"SELECT count(*), pg_is_in_recovery()::int FROM {table} WHERE id = $1::int", "-1") == "1|0"
        assert c("a", "ROLLBACK") == ""



def wal_replayed(cluster, switch=False):
    """New WAL written on the leader directly (and then a switch to the next WAL segment, if switch),
    replayed by every standby: the bytes from the end of that WAL to the leader's insert position
    (what the proxy's LSN requests read): 0, or with switch the 40 bytes of the new segment's page
    header, which no standby replays to before more WAL comes."""
    leader = cluster.nodes[cluster.leader()]
    leader.sql("CREATE TABLE IF NOT EXISTS ryw_split_wal (n int)")
    # A record may end at a page's end by chance (its next page's header: 24 bytes), and the
    # background writer may log a standby snapshot (running xacts) right after the switch: try again.
    for _ in range(3):
        leader.sql("INSERT INTO ryw_split_wal VALUES (1)")
        if switch:
            leader.sql("SELECT pg_switch_wal()")
        end = leader.sql("SELECT pg_current_wal_lsn()::text")[0][0]
        wait_until("the standbys to replay every write", lambda: all(
            n.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (end,))[0][0]
            for name, n in cluster.nodes.items() if name != cluster.leader()), timeout=10)
        gap = leader.sql("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)::int", (end,))[0][0]
        if gap == (40 if switch else 0):
            return gap
    return gap


def test_rw_split_pgjdbc_first_named_execution_is_split_too(split):
    """pgJDBC names a statement at its 5th execution (prepareThreshold): that unit carries its Parse
    and its Bind together (Parse S_1, Bind S_1, ..., Sync), a read-only transaction's BEGIN READ ONLY
    too. Every standby has replayed every write first, so no read waits for one: all of them, that
    5th one too, run on a standby."""
    cluster = split["statements"].cluster
    assert wal_replayed(cluster) == 0
    served = {}
    with Clients("pgjdbc", cluster) as c:
        for mode, proxy in split.items():
            c.connect(mode, proxy.port)
            served[mode] = []
            for _ in range(8):
                if mode == "transactions":
                    begin_read_only(c, "pgjdbc", mode)
                served[mode].append(c(mode, "SELECT pg_is_in_recovery()::int + $1::int", "0"))
                if mode == "transactions":
                    end_read_only(c, "pgjdbc", mode)
    assert served == {mode: ["1"] * 8 for mode in split}, served


def test_reads_go_to_standbys_after_a_wal_switch(proxies, split):
    """After a switch to a new WAL segment (pg_basebackup ends with one, so do archive_timeout and
    pg_switch_wal), an idle leader's insert position is past the new segment's page header, where no
    standby's replay gets before more WAL comes. pgJDBC's connection sets extra_float_digits on the
    leader, a transaction the proxy then asks the leader's LSN for: its reads still run on a standby,
    through rw_split and through the read-only port (read_your_writes), without waiting ryw_wait."""
    cluster = split["statements"].cluster
    leader = cluster.nodes[cluster.leader()]
    with Clients("pgjdbc", cluster) as c:
        for attempt in range(3):
            assert wal_replayed(cluster, switch=True) == 40
            idle_at = leader.sql("SELECT pg_current_wal_insert_lsn()::text")[0][0]
            c.connect(f"split{attempt}", split["statements"].port)
            c.connect(f"w{attempt}", proxies[0].port)   # its SET: the LSN request the "r" reads wait for
            c.connect(f"r{attempt}", proxies[0].ro_port)
            # Fewer than 5 times each: no named statement (see the test above).
            served = [c(f"{who}{attempt}", "SELECT pg_is_in_recovery()::int + $1::int", "0")
                      for who in ("split", "r") for _ in range(3)]
            if leader.sql("SELECT pg_current_wal_insert_lsn()::text")[0][0] == idle_at:
                break   # no WAL came meanwhile (autovacuum may write some): the case above was met
    assert served == ["1"] * 6, served
