"""Read-your-writes on replicas (issue 12, docs/READ_YOUR_WRITES.md): with
`read_your_writes = on`, a read on the read-only port sees every write the proxy
acknowledged before it began, whichever standby it lands on; a standby too far
behind makes the read wait (ryw_wait) or run on the leader, read-only.

A leader and two standbys, one of them replaying 300 ms late
(recovery_min_apply_delay): without the feature, reads landing there miss the
row just written (the control run shows it); with it, none does."""
import subprocess
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import PGHA_BIN, Proxy, free_port, module_cluster, wait_until

ROUNDS = 300


@pytest.fixture(scope="module")
def three(request):
    with module_cluster(request, ["r1", "r2"]) as (cluster, _):
        cluster.add("r3", {"parameters.recovery_min_apply_delay": "300ms"}).start()
        cluster.wait_streaming(["r1", "r2", "r3"], timeout=180)
        yield cluster


def metrics(port, standby_reads):
    """pgha_proxy_ryw_reads_total by served_by, once /metrics (rendered each second) counts
    standby_reads on standbys."""
    def read():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        got = {}
        for line in text.splitlines():
            if line.startswith("pgha_proxy_ryw_reads_total{"):
                got[line.split('"')[1]] = int(float(line.split()[-1]))
        return got if got.get("standby", 0) >= standby_reads and "leader" in got else None
    return wait_until("the read-your-writes counters", read, timeout=10)


def within(seconds, fn):
    """fn's result, or a failure if it has not returned within seconds (it runs on a thread)."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"no answer within {seconds} s"
    return out[0]


def write_then_read(proxy, table, rounds):
    """Each round commits a row through the read-write port and reads it at once through the
    read-only port: (reads that missed it, reads a standby answered, mean read seconds)."""
    # The reader has settings of its own: they are set on whichever server its read runs on,
    # the leader too (none may be left queued on a standby it leaves).
    with proxy.connect(autocommit=True) as rw, \
            proxy.connect(ro=True, autocommit=True, application_name="reader",
                          options="-c statement_timeout=10s") as ro:
        rw.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        misses = on_standby = 0
        spent = 0.0
        for i in range(rounds):
            rw.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
            t0 = time.monotonic()
            try:
                n, standby = ro.execute(f"SELECT count(*), pg_is_in_recovery() FROM {table} WHERE id = %s",
                                        (i,)).fetchone()
            except psycopg.errors.UndefinedTable:
                n, standby = 0, True   # the table itself is not there yet
            spent += time.monotonic() - t0
            misses += n == 0
            on_standby += bool(standby)
        return misses, on_standby, spent / rounds


def test_without_it_a_lagging_standby_misses_writes(three):
    """The control run. The reader's one server is on whichever standby the pool's round robin
    named first: replay is paused on the standby that is not late, so both are behind and the
    reads miss wherever they land."""
    proxy = Proxy(three, {"proxy.read_your_writes": "off"}, name="noryw").start()
    other = next(n for n in ("r1", "r2") if n != three.leader())
    three.nodes[other].sql("SELECT pg_wal_replay_pause()")
    try:
        misses, on_standby, _ = write_then_read(proxy, "ryw_off", 40)
        print(f"read_your_writes off: {misses}/40 reads missed their write, {on_standby} on a standby")
        assert on_standby == 40
        assert misses > 0   # the test below can fail
    finally:
        three.nodes[other].sql("SELECT pg_wal_replay_resume()")
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_every_read_sees_its_write(three):
    metrics_port = free_port()
    proxy = Proxy(three, {"proxy.read_your_writes": "on", "proxy.ryw_wait": "100ms",
                          "proxy.metrics_listen": f"127.0.0.1:{metrics_port}"}, name="ryw").start()
    try:
        misses, on_standby, mean = write_then_read(proxy, "ryw_on", ROUNDS)
        on_standby_first = on_standby
        print(f"read_your_writes on: {misses}/{ROUNDS} missed, {on_standby} served by a standby, "
              f"mean read {mean * 1000:.1f} ms")
        assert misses == 0
        assert on_standby > ROUNDS // 2   # caught-up standbys serve most reads
        # Replay paused on the other standby too: no standby can catch up within ryw_wait, so every
        # read runs on the leader, read-only, after waiting ryw_wait at most.
        other = next(n for n in ("r1", "r2") if n != three.leader())
        three.nodes[other].sql("SELECT pg_wal_replay_pause()")
        try:
            misses, on_standby, mean = write_then_read(proxy, "ryw_paused", 30)
            print(f"replay paused: {misses}/30 missed, {on_standby} served by a standby, "
                  f"mean read {mean * 1000:.1f} ms")
            assert misses == 0 and on_standby == 0
            assert mean < 1.0
            # Counted, by transaction: the standby reads; the leader ones lent a leader server (a
            # read-only pool with no standby in ro_max_lag uses the leader itself: those are not
            # lent). psycopg prepares a statement run 5 times in a round trip of its own: one more
            # per reader.
            time.sleep(1.2)   # /metrics is rendered each second
            served = metrics(metrics_port, on_standby_first)
            assert served["standby"] <= on_standby_first + 1, served
            assert served["leader"] <= (ROUNDS - on_standby_first) + 30 + 2, served
            # A write right after a read on a lent leader server still fails (that server is
            # made read-write again after the read: the write must not reach it).
            with proxy.connect(autocommit=True) as rw, proxy.connect(ro=True, autocommit=True) as ro:
                for i in range(20):
                    rw.execute("INSERT INTO ryw_paused VALUES (%s)", (1000 + i,))
                    assert ro.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
                    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                        ro.execute("INSERT INTO ryw_paused VALUES (%s)", (-1000 - i,))
        finally:
            three.nodes[other].sql("SELECT pg_wal_replay_resume()")
        # The read-only port still takes no write, on a standby or on a lent leader server.
        with proxy.connect(ro=True, autocommit=True) as ro:
            for _ in range(4):
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    ro.execute("INSERT INTO ryw_on VALUES (-1)")
        with proxy.connect(autocommit=True) as rw:
            assert rw.execute("SELECT count(*) FROM ryw_on WHERE id = -1").fetchone()[0] == 0
            # A lent leader server went back read-write.
            for _ in range(8):
                rw.execute("INSERT INTO ryw_on VALUES (-2) ON CONFLICT DO NOTHING")
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_a_writer_that_leaves_at_once_still_has_its_write_read(three):
    """psycopg's `with connect()` sends Terminate as soon as its COMMIT returned: the LSN
    request after it must neither be lost for the readers nor cost the server connection."""
    proxy = Proxy(three, {"proxy.read_your_writes": "on"}, name="rywleave").start()
    try:
        with proxy.connect(autocommit=True) as rw:
            rw.execute("CREATE TABLE ryw_leave (id int PRIMARY KEY)")
            pid = rw.execute("SELECT pg_backend_pid()").fetchone()[0]
        misses = 0
        for i in range(20):
            with proxy.connect(autocommit=True) as rw:
                rw.execute("INSERT INTO ryw_leave VALUES (%s)", (i,))
            with proxy.connect(ro=True, autocommit=True, options="-c statement_timeout=10s") as ro:
                # Bounded: a read stuck in the proxy (statement_timeout cannot end that) fails the test.
                n = within(20, lambda: ro.execute("SELECT count(*) FROM ryw_leave WHERE id = %s",
                                                  (i,)).fetchone()[0])
                misses += n == 0
        assert misses == 0
        with proxy.connect(autocommit=True) as rw:
            assert rw.execute("SELECT pg_backend_pid()").fetchone()[0] == pid   # the server was kept
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


# ---- the single-endpoint read/write split (rw_split) -------------------------------------------

def split_proxy(three, mode, name, **extra):
    metrics_port = free_port()
    conf = {"proxy.read_your_writes": "on", "proxy.rw_split": mode,
            "proxy.metrics_listen": f"127.0.0.1:{metrics_port}"}
    conf.update(extra)
    proxy = Proxy(three, conf, name=name).start()
    proxy.metrics_port = metrics_port
    return proxy


def split_count(proxy, at_least):
    def read():
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.metrics_port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("pgha_proxy_rw_split_reads_total "):
                    n = int(float(line.split()[-1]))
                    return n if n >= at_least else None
    return wait_until("the rw_split counter", read, timeout=10)


def reads_on_standbys(mode, misses, on_standby):
    print(f"rw_split = {mode}: {misses}/{ROUNDS} missed, {on_standby} served by a standby")
    assert misses == 0
    assert on_standby > ROUNDS // 2


def test_rw_split_transactions_read_only_ones_go_to_standbys_and_see_their_writes(three):
    """rw_split = transactions: one port. A READ ONLY transaction runs on a standby that replayed the
    client's last write (the lagging one makes it wait or go to the leader); everything else runs on
    the leader, plain SELECTs included."""
    proxy = split_proxy(three, "transactions", "split_tx")
    try:
        with proxy.connect(autocommit=True) as c, proxy.connect() as reader:
            reader.read_only = True   # psycopg sends BEGIN READ ONLY
            c.execute("CREATE TABLE split_tx (id int PRIMARY KEY)")
            misses = on_standby = 0
            for i in range(ROUNDS):
                c.execute("INSERT INTO split_tx VALUES (%s)", (i,))
                if i % 2:
                    # The same client: its own write, in its own read-only transaction.
                    c.execute("BEGIN READ ONLY")
                    n, standby = c.execute("SELECT count(*), pg_is_in_recovery() FROM split_tx WHERE id = %s",
                                           (i,)).fetchone()
                    c.execute("COMMIT")
                else:
                    n, standby = reader.execute("SELECT count(*), pg_is_in_recovery() FROM split_tx WHERE id = %s",
                                                (i,)).fetchone()
                    reader.commit()
                misses += n == 0
                on_standby += standby
            reads_on_standbys("transactions", misses, on_standby)
            # Not read-only: the leader. A plain SELECT too, in this mode.
            assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
            c.execute("BEGIN")
            assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
            c.execute("COMMIT")
            # SERIALIZABLE READ ONLY: a standby refuses it, so the leader runs it.
            c.execute("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY")
            assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
            c.execute("COMMIT")
            # A write in a read-only transaction fails as it would on the leader, and the client goes on.
            c.execute("BEGIN READ ONLY")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                c.execute("INSERT INTO split_tx VALUES (-1)")
            c.execute("ROLLBACK")
            c.execute("INSERT INTO split_tx VALUES (-1)")
        assert split_count(proxy, on_standby) >= on_standby
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_rw_split_statements_proven_reads_go_to_standbys_the_rest_to_the_leader(three):
    """rw_split = statements: an autocommit SELECT the parser proves read-only (safe functions only)
    runs on a standby, after the client's own write; any other runs on the leader and works."""
    proxy = split_proxy(three, "statements", "split_st",
                        **{"proxy.rw_split_safe_functions": "default, split_double"})
    try:
        with proxy.connect(autocommit=True) as c:
            c.execute("CREATE TABLE split_st (id int PRIMARY KEY)")
            c.execute("CREATE SEQUENCE split_seq")
            c.execute("CREATE FUNCTION split_note(v int) RETURNS int LANGUAGE sql "
                      "AS 'INSERT INTO split_st VALUES (v) RETURNING v'")
            c.execute("CREATE FUNCTION split_double(v int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2 * v'")
            misses = on_standby = 0
            for i in range(ROUNDS):
                c.execute("INSERT INTO split_st VALUES (%s)", (i,))
                # Extended protocol (parameters), unnamed and, every third round, a named statement.
                n, standby = c.execute("SELECT count(*), pg_is_in_recovery() FROM split_st WHERE id = %s",
                                       (i,), prepare=(i % 3 == 0)).fetchone()
                misses += n == 0
                on_standby += standby
            reads_on_standbys("statements", misses, on_standby)
            # Not proven: the leader, and they work there.
            assert c.execute("SELECT nextval('split_seq'), pg_is_in_recovery()").fetchone()[1] is False
            assert c.execute("SELECT split_note(-5), pg_is_in_recovery()").fetchone() == (-5, False)
            assert c.execute("SELECT id, pg_is_in_recovery() FROM split_st WHERE id = -5 FOR UPDATE"
                             ).fetchone() == (-5, False)
            assert c.execute("WITH d AS (DELETE FROM split_st WHERE id = -5 RETURNING id) "
                             "SELECT count(*), pg_is_in_recovery() FROM d").fetchone() == (1, False)
            assert c.execute("SELECT 1 INTO split_into").rowcount >= 0
            # Listed in rw_split_safe_functions: a standby runs it.
            standby = any(c.execute("SELECT split_double(2), pg_is_in_recovery()").fetchone() == (4, True)
                          for _ in range(10))
            assert standby
            # Pipelined: a read then a write in one round trip: the write still reaches the leader.
            with c.pipeline():
                r1 = c.execute("SELECT count(*) FROM split_st WHERE id = 0")
                c.execute("INSERT INTO split_st VALUES (-7)")
                r3 = c.execute("SELECT count(*), pg_is_in_recovery() FROM split_st WHERE id = -7")
            assert r1.fetchone()[0] == 1
            assert r3.fetchone()[0] == 1
        assert split_count(proxy, on_standby) >= on_standby
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_rw_split_needs_read_your_writes(three, tmp_path):
    proxy = Proxy(three, {"proxy.rw_split": "statements"}, name="split_bad")
    out = subprocess.run([PGHA_BIN, "proxy", "--check", "-c", proxy.conf_path], capture_output=True, text=True)
    assert out.returncode != 0
    assert "rw_split = statements needs read_your_writes = on" in out.stderr + out.stdout
