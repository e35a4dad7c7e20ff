"""Protocol details of `pgha proxy` that ordinary drivers depend on (issue 8, items 11,
5 and 10): named statements across failed transactions, result-type changes, more than
32,767 parameters, a server FATAL, per-client parameters, an SSLRequest pipelined with
the startup packet, NegotiateProtocolVersion, and memory with large messages.

One single-member cluster and one proxy (pool_size 1, so clients share a server and
whatever one leaves behind would show to the next) serve the whole file."""
import os
import socket
import struct
import threading
import time

import psycopg
import pytest

from conftest import Proxy, module_cluster, wait_until
from pgwire import query_msg, read_until_ready, recv_exact, recv_msg, startup_packet


@pytest.fixture(scope="module")
def px(request):
    with module_cluster(request, ["p1"], proxy_args={"extra": {"proxy.pool_size": "1",
                                                               "proxy.log_level": "debug"}}) as cp:
        yield cp


def direct(cluster):
    return cluster.nodes["p1"].connect(autocommit=True)


# ---- raw protocol helpers (for what a driver cannot express) ----------------------

def raw_connect(proxy):
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.settimeout(10)
    return s


# ---- item 11 -------------------------------------------------------------------

def test_named_statements_survive_a_failed_transaction(px):
    cluster, proxy = px
    # psycopg: ROLLBACK is followed by DEALLOCATE ALL (extended protocol), and
    # statements are prepared again afterwards under the same names.
    with proxy.connect() as c:
        for rnd in range(3):
            for i in range(3):
                assert c.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone() == (i + 1,)
            c.commit()
            c.execute("BEGIN")
            assert c.execute("SELECT %s::int + 2", (rnd,), prepare=True).fetchone() == (rnd + 2,)
            with pytest.raises(psycopg.errors.DivisionByZero):
                c.execute("SELECT 1 / 0")
            c.rollback()
            assert c.execute("SELECT %s::int + 2", (rnd,), prepare=True).fetchone() == (rnd + 2,)
            c.rollback()
    # A failing DEALLOCATE ALL (in an aborted transaction) drops nothing on the server.
    with proxy.connect() as c:
        c.execute("SELECT %s::int * 3", (1,), prepare=True)
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("DEALLOCATE ALL")
        c.rollback()
        assert c.execute("SELECT %s::int * 3", (2,), prepare=True).fetchone() == (6,)
        c.rollback()
        # The same as a simple Query (libpq's PQexec), as an application may send it.
        c.execute("SELECT %s::int * 4", (1,), prepare=True)
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        r = c.pgconn.exec_(b"DEALLOCATE ALL")
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"25P02", r.error_message
        c.rollback()
        for i in range(3):
            assert c.execute("SELECT %s::int * 4", (i,), prepare=True).fetchone() == (4 * i,)
            c.rollback()


def test_a_statement_with_40000_parameters(px):
    cluster, proxy = px
    n = 40000
    with proxy.connect(autocommit=True) as c:
        sql = "SELECT array_length(ARRAY[" + ",".join(["%s::int"] * n) + "], 1)"
        assert c.execute(sql, list(range(n))).fetchone() == (n,)
        assert c.execute(sql, list(range(n)), prepare=True).fetchone() == (n,)


def test_reprepare_after_the_result_type_changed(px):
    cluster, proxy = px
    with proxy.connect(autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS shape")
        c.execute("CREATE TABLE shape (a int)")
        c.execute("INSERT INTO shape VALUES (1)")
        pg = c.pgconn
        assert pg.prepare(b"s1", b"SELECT * FROM shape").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert pg.exec_prepared(b"s1", []).get_value(0, 0) == b"1"
        c.execute("ALTER TABLE shape ADD COLUMN b text DEFAULT 'x'")
        r = pg.exec_prepared(b"s1", [])
        assert r.status == psycopg.pq.ExecStatus.FATAL_ERROR
        assert b"cached plan must not change result type" in r.error_message
        # The usual recovery: prepare again (JDBC, npgsql, asyncpg do this).
        assert pg.prepare(b"s2", b"SELECT * FROM shape").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pg.exec_prepared(b"s2", [])
        assert r.status == psycopg.pq.ExecStatus.TUPLES_OK, r.error_message
        assert (r.nfields, r.get_value(0, 1)) == (2, b"x")
        # Another client preparing the same text gets the new shape too.
        with proxy.connect(autocommit=True) as other:
            assert other.execute("SELECT * FROM shape WHERE a = %s", (1,), prepare=True).fetchone() == (1, "x")
            assert other.execute("SELECT * FROM shape").fetchone() == (1, "x")


def terminate(cluster, pid):
    with direct(cluster) as d:
        assert d.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_a_server_fatal_costs_the_transaction_not_the_connection(px):
    """Transaction mode: a server that ends the session (pg_terminate_backend here, a
    leader's fast shutdown in a failover) costs the client its transaction, with 08006 and
    the server's message, and the client goes on."""
    cluster, proxy = px
    with proxy.connect(autocommit=True) as c:
        # Inside a query (pool_size 1: the same server runs both statements).
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        killer = threading.Timer(0.5, terminate, (cluster, pid))
        killer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as exc:
            c.execute("SELECT pg_sleep(10)")
        killer.join()
        assert time.monotonic() - t0 < 5
        assert exc.value.sqlstate == "08006", exc.value
        assert "terminating connection due to administrator command" in str(exc.value)
        assert not c.closed
        assert c.execute("SELECT 1").fetchone() == (1,)
        # Idle inside a transaction: told at the next request, and the protocol stays in step.
        c.execute("BEGIN")
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        terminate(cluster, pid)
        time.sleep(0.5)
        with pytest.raises(psycopg.OperationalError) as exc:
            c.execute("SELECT 2")
        assert exc.value.sqlstate == "08006", exc.value
        assert "terminating connection due to administrator command" in str(exc.value)
        assert c.execute("SELECT 3").fetchone() == (3,)
        assert c.execute("SELECT %s::int", (4,)).fetchone() == (4,)


def terminated_in_transaction(s, cluster):
    """Log in over s, open a transaction, and have its backend terminated while idle in it."""
    login_raw(s, cluster)
    s.sendall(query_msg("BEGIN"))
    read_until_ready(s)
    s.sendall(query_msg("SELECT pg_backend_pid()"))
    msgs = read_until_ready(s)
    terminate(cluster, int(next(body for t, body in msgs if t == b"D")[6:]))


def test_a_lost_transaction_is_told_at_the_next_request_never_unsolicited(px):
    cluster, proxy = px
    s = raw_connect(proxy)
    try:
        terminated_in_transaction(s, cluster)
        # The backend, idle in the transaction, sends its FATAL at once: the client, which
        # asked nothing, gets nothing (a driver would take it as its next query's answer).
        s.settimeout(1.0)
        with pytest.raises(socket.timeout):
            s.recv(100)
        s.settimeout(10)
        # Its next request: the error, ReadyForQuery 'I', and nothing else for it.
        s.sendall(query_msg("SELECT 'lost'"))
        msgs = read_until_ready(s)
        assert [t for t, _ in msgs] == [b"E", b"Z"], msgs
        assert b"SERROR\0" in msgs[0][1] and b"C08006\0" in msgs[0][1], msgs
        assert b"administrator command" in msgs[0][1]
        assert msgs[1][1] == b"I"
        # The next request runs normally.
        s.sendall(query_msg("SELECT 'next'"))
        msgs = read_until_ready(s)
        assert [t for t, _ in msgs] == [b"T", b"D", b"C", b"Z"], msgs
        assert b"next" in msgs[1][1]
    finally:
        s.close()


def test_in_session_mode_a_fatal_is_the_last_message_on_the_wire(px):
    cluster, _ = px
    proxy = Proxy(cluster, {"proxy.pool_mode": "session"}, name="session").start()
    s = raw_connect(proxy)
    try:
        terminated_in_transaction(s, cluster)
        # The session is gone: as with PostgreSQL, the FATAL, then the end of the connection.
        t, body = recv_msg(s)
        assert t == b"E" and b"SFATAL\0" in body and b"C57P01\0" in body, body
        assert s.recv(100) == b"", "anything after a FATAL"
    finally:
        s.close()
        assert proxy.stop() == 0


def test_parameters_do_not_leak_between_clients(px):
    cluster, proxy = px
    # pool_size 1: every client below runs on the same server, one after the other.
    with proxy.connect(autocommit=True, application_name="first-app") as a:
        assert a.execute("SHOW application_name").fetchone() == ("first-app",)
        a.execute("SET TimeZone = 'Asia/Tokyo'")
        with proxy.connect(autocommit=True) as b:
            assert b.info.parameter_status("application_name") == ""
            assert b.execute("SHOW application_name").fetchone() == ("",)
            default_tz = b.info.parameter_status("TimeZone")
            assert default_tz != "Asia/Tokyo"
            assert b.execute("SHOW TimeZone").fetchone() == (default_tz,)
        # A SET in a client's session follows it to the server it gets next.
        assert a.execute("SHOW TimeZone").fetchone() == ("Asia/Tokyo",)
        assert a.execute("SHOW application_name").fetchone() == ("first-app",)
        # ... and a rolled-back SET does not.
        a.execute("BEGIN")
        a.execute("SET TimeZone = 'America/Lima'")
        a.execute("ROLLBACK")
        with proxy.connect(autocommit=True) as b:
            assert b.execute("SHOW TimeZone").fetchone() == (default_tz,)
        assert a.execute("SHOW TimeZone").fetchone() == ("Asia/Tokyo",)


# ---- item 10 -------------------------------------------------------------------

def login_raw(s, cluster, packet=None, before=b""):
    """Start up and authenticate over a raw socket; return the messages up to ReadyForQuery."""
    from psycopg.pq import PGconn  # noqa: F401  (only to be sure libpq is there)
    import base64
    import hashlib
    import hmac
    import secrets
    s.sendall(before + (packet or startup_packet("postgres")))
    seen = []
    while True:
        t, body = recv_msg(s)
        seen.append((t, body))
        if t == b"E":
            raise AssertionError(f"error during login: {body!r}")
        if t == b"R":
            code = struct.unpack("!I", body[:4])[0]
            if code == 10:   # SASL: SCRAM-SHA-256
                nonce = base64.b64encode(secrets.token_bytes(18)).decode()
                first_bare = f"n=,r={nonce}"
                init = ("n,," + first_bare).encode()
                mech = b"SCRAM-SHA-256\0"
                payload = mech + struct.pack("!i", len(init)) + init
                s.sendall(b"p" + struct.pack("!I", 4 + len(payload)) + payload)
            elif code == 11:
                server_first = body[4:].decode()
                attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
                salt = base64.b64decode(attrs["s"])
                salted = hashlib.pbkdf2_hmac("sha256", cluster.su_pw.encode(), salt, int(attrs["i"]))
                client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
                stored = hashlib.sha256(client_key).digest()
                final_bare = f"c=biws,r={attrs['r']}"
                auth_msg = f"{first_bare},{server_first},{final_bare}".encode()
                sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
                proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
                final = f"{final_bare},p={proof}".encode()
                s.sendall(b"p" + struct.pack("!I", 4 + len(final)) + final)
        if t == b"Z":
            return seen


def test_startup_right_after_an_sslrequest_without_tls(px):
    cluster, proxy = px
    s = raw_connect(proxy)
    try:
        ssl_request = struct.pack("!II", 8, 80877103)
        # Both packets in one write: the answer 'N' must not drop the startup packet.
        s.sendall(ssl_request + startup_packet("postgres"))
        assert recv_exact(s, 1) == b"N"
        t, body = recv_msg(s)
        assert t == b"R", (t, body)
    finally:
        s.close()
    # libpq may ask for GSSAPI encryption first, then TLS: one of each is answered.
    s = raw_connect(proxy)
    try:
        s.sendall(struct.pack("!II", 8, 80877104) + ssl_request + startup_packet("postgres"))
        assert recv_exact(s, 2) == b"NN"
        assert recv_msg(s)[0] == b"R"
    finally:
        s.close()
    s = raw_connect(proxy)
    try:
        s.sendall(ssl_request + ssl_request)
        assert recv_exact(s, 1) == b"N"
        t, body = recv_msg(s)
        assert t == b"E" and b"a second SSLRequest" in body, body
    finally:
        s.close()


def test_newer_protocol_minor_and_options_get_negotiate_protocol_version(px):
    cluster, proxy = px
    s = raw_connect(proxy)
    try:
        pkt = startup_packet("postgres", minor=2, extra=(("_pq_.compression", "on"), ("_pq_.other", "x")))
        seen = login_raw(s, cluster, packet=pkt)
        t, body = seen[0]
        assert t == b"v", seen[0]
        version, n = struct.unpack("!II", body[:8])
        assert version == (3 << 16) | 0
        assert n == 2 and body[8:].split(b"\0")[:2] == [b"_pq_.compression", b"_pq_.other"]
        s.sendall(query_msg("SELECT 42"))
        assert any(t == b"D" and body.endswith(b"42") for t, body in read_until_ready(s))
    finally:
        s.close()
    # 3.0 without options: no NegotiateProtocolVersion, as PostgreSQL does.
    s = raw_connect(proxy)
    try:
        assert login_raw(s, cluster)[0][0] == b"R"
    finally:
        s.close()


# ---- item 5: memory -------------------------------------------------------------

def proxy_mem_kb(proxy):
    """(VmRSS, VmHWM) of the proxy process, in KiB."""
    with open(f"/proc/{proxy.proc.pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@pytest.fixture(scope="module")
def px4(px):
    """A second proxy with 8 servers per pool, so that large messages go through at once."""
    cluster, _ = px
    # Freed memory must be seen to go back: under ASan, a small quarantine (it would hold
    # 256 MiB of freed blocks); detection is otherwise as in the other tests.
    asan = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=1"
    try:
        proxy = Proxy(cluster, {"proxy.pool_size": "8"}, name="proxy4").start()
    finally:
        if asan is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = asan
    try:
        yield cluster, proxy
    finally:
        assert proxy.stop() == 0


def test_large_messages_stream_through_in_bounded_memory(px4):
    cluster, proxy = px4
    with proxy.connect(autocommit=True) as c:
        c.execute("SELECT 1")
    rss0, _ = proxy_mem_kb(proxy)
    n, size = 6, 60 * 1024 * 1024
    errors, lengths = [], []

    def big_bind(i):
        try:
            with proxy.connect(autocommit=True) as c:
                # A 60 MB binary parameter: one Bind of 60 MB.
                lengths.append(c.execute("SELECT length(%b)", (bytes([i]) * size,)).fetchone()[0])
                # The same through a named statement (the Bind's name is rewritten).
                lengths.append(c.execute("SELECT length(%b)", (bytes([i]) * size,), prepare=True).fetchone()[0])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=big_bind, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert lengths == [size] * (2 * n)
    rss, hwm = proxy_mem_kb(proxy)
    print(f"proxy memory: RSS before {rss0 // 1024} MiB, peak {hwm // 1024} MiB, after {rss // 1024} MiB "
          f"({n} clients x 2 Binds of {size >> 20} MiB at once)")
    # Streamed: the peak is the proxy's base plus buffers, not the messages (whole, 6 x 60 MiB
    # would be 360 MiB at least; the bound leaves room for ASan's shadow memory).
    assert hwm - rss0 < 96 * 1024, (rss0, hwm)
    # Longer than the old 64 MiB limit on a whole message: a 65 MB query works, as it does
    # against PostgreSQL (whose own limit is 1 GiB).
    with proxy.connect(autocommit=True) as c:
        q = "SELECT length('" + "x" * (65 * 1024 * 1024) + "')"
        assert c.execute(q, prepare=False).fetchone() == (65 * 1024 * 1024,)
        # A named statement is read whole: beyond 64 MiB a clear error (FATAL, then the end).
        c.pgconn.prepare(b"huge", q.encode())
        assert b"FATAL:  Parse message of 68157470 bytes: the proxy reads this message whole and takes " \
               b"at most 67108864 bytes" in c.pgconn.error_message, c.pgconn.error_message
    _, hwm = proxy_mem_kb(proxy)
    assert hwm - rss0 < 96 * 1024, (rss0, hwm)
    # Named statements are read whole (their text is kept once, for every server): the
    # buffers that held them, client's and server's, do not stay that size once used.
    text = ("SELECT length('" + "y" * (20 << 20) + "')").encode()

    def named(i):
        try:
            with proxy.connect(autocommit=True) as c:
                assert c.pgconn.prepare(b"s20", text).status == psycopg.pq.ExecStatus.COMMAND_OK
                assert c.pgconn.exec_prepared(b"s20", []).get_value(0, 0) == str(20 << 20).encode()
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=named, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    # Buffers shrink after use: nothing of the size of a message stays but the statement text.
    peak = proxy_mem_kb(proxy)
    wait_until("the proxy's memory to come back down",
               lambda: proxy_mem_kb(proxy)[0] - rss0 < 48 * 1024, timeout=10)
    print(f"proxy memory with 3 named statements of 20 MiB at once: RSS {peak[0] // 1024} MiB, "
          f"peak {peak[1] // 1024} MiB, then {proxy_mem_kb(proxy)[0] // 1024} MiB")


def test_whole_messages_of_all_clients_stay_within_a_budget(px4):
    cluster, proxy = px4
    # Four clients send the start of a 60 MB named Parse and stop: the proxy holds a buffer
    # for each (a named statement is read whole).
    held = [raw_connect(proxy) for _ in range(4)]
    try:
        size = 60 * 1024 * 1024
        for i, a in enumerate(held):
            login_raw(a, cluster)
            a.sendall(b"P" + struct.pack("!I", 4 + size) + b"held%d\0SELECT '" % i + b"z" * 65536)
        time.sleep(0.5)
        # A fifth 60 MB one would take the total past 256 MiB: refused, clearly; others go on.
        with proxy.connect(autocommit=True) as c:
            c.pgconn.prepare(b"b60", b"SELECT length('" + b"w" * (60 << 20) + b"')")
            assert b"FATAL:  Parse message of 62914589 bytes: the proxy holds 256 MiB of large messages " \
                   b"for its clients already" in c.pgconn.error_message, c.pgconn.error_message
        with proxy.connect(autocommit=True) as c:
            assert c.execute("SELECT %s::int", (5,), prepare=True).fetchone() == (5,)
    finally:
        for a in held:
            a.close()

    # The budget comes back when they leave.
    def fits():
        with proxy.connect(autocommit=True) as c:
            r = c.pgconn.prepare(b"b60", b"SELECT length('" + b"w" * (60 << 20) + b"')")
            return r.status == psycopg.pq.ExecStatus.COMMAND_OK
    wait_until("a 60 MB named statement to be taken again", fits, timeout=10)
