"""The proxy's part in a planned switchover, driven by a switchover record
written straight into etcd (the agent's part is tested in test_switchover):
hold new read-write transactions at a boundary, report paused in its own
record, let running transactions finish, end sessions in session mode with a
reason, resume when the record says done, never hold past switchover_hold."""
import json
import threading
import time

import psycopg
import pytest

from conftest import Proxy, etcdctl, wait_until



def put_switchover(cluster, phase, sid="so-1", to="x2"):
    # From and to name no member: no agent drives this record, the test does.
    rec = {"id": sid, "from": "x1", "to": to, "at": 0, "phase": phase, "deadline": 0}
    etcdctl(cluster, "put", f"/pgha/{cluster.name}/switchover", json.dumps(rec))


def proxy_record(cluster, name="proxy"):
    out = etcdctl(cluster, "get", f"/pgha/{cluster.name}/proxies/{name}", "--print-value-only").strip()
    return json.loads(out) if out else None


@pytest.fixture
def one(cluster):
    cluster.add("n1").start()
    cluster.wait_streaming(["n1"], timeout=120)
    return cluster


def test_hold_reports_paused_after_running_transactions_and_resumes(one):
    cluster = one
    from conftest import free_port
    import urllib.request
    mport = free_port()
    proxy = Proxy(cluster, {"proxy.log_level": "debug", "proxy.metrics_listen": f"127.0.0.1:{mport}"}).start()

    def held():
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=3) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("pgha_proxy_held "):
                    return int(line.split()[1])
        raise AssertionError("no pgha_proxy_held metric")
    try:
        wait_until("the proxy to register", lambda: proxy_record(cluster), timeout=15)
        rec = proxy_record(cluster)
        assert rec["paused_for"] == "" and rec["listen"] == f"127.0.0.1:{proxy.port}", rec
        busy = proxy.connect(autocommit=True)
        busy.execute("CREATE TABLE h (v int)")
        busy.execute("BEGIN")
        busy.execute("INSERT INTO h VALUES (1)")
        ro = proxy.connect(ro=True, autocommit=True)
        put_switchover(cluster, "pausing")
        wait_until("the proxy to hold", lambda: "holding new read-write transactions" in proxy.log(), timeout=15)
        # A transaction already running keeps the proxy from reporting paused, and goes on.
        time.sleep(1.5)
        assert proxy_record(cluster)["paused_for"] == ""
        busy.execute("INSERT INTO h VALUES (2)")
        busy.execute("COMMIT")
        wait_until("paused to be reported", lambda: proxy_record(cluster)["paused_for"] == "so-1", timeout=10)
        assert wait_until("the metric to say held for a switchover", lambda: held() == 2, timeout=10)
        # New read-write work waits without an error; read-only work goes on.
        assert ro.execute("SELECT count(*) FROM h").fetchone() == (2,)
        result = {}

        def writer():
            try:
                with proxy.connect(autocommit=True) as c:
                    t0 = time.monotonic()
                    c.execute("INSERT INTO h VALUES (3)")
                    result["waited"] = time.monotonic() - t0
            except Exception as e:   # reported below
                result["error"] = e
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(2)
        assert t.is_alive() and not result, result
        put_switchover(cluster, "demoting")
        put_switchover(cluster, "promoting")
        time.sleep(0.5)
        assert t.is_alive()
        put_switchover(cluster, "done")
        t.join(timeout=15)
        assert "error" not in result and result["waited"] >= 2, result
        wait_until("the record to say running", lambda: proxy_record(cluster)["paused_for"] == "", timeout=10)
        wait_until("the metric to say not held", lambda: held() == 0, timeout=10)
        assert busy.execute("SELECT count(*) FROM h").fetchone() == (3,)
        busy.close()
        ro.close()
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]
    # The record goes with the proxy (its lease is revoked).
    assert proxy_record(cluster) is None


def test_hold_is_bounded_and_garbage_is_ignored(one):
    cluster = one
    proxy = Proxy(cluster, {"proxy.switchover_hold": "2s"}).start()
    try:
        etcdctl(cluster, "put", f"/pgha/{cluster.name}/switchover", '{"id": "x", "phase": 7}')
        wait_until("the bad record to be logged", lambda: "switchover record" in proxy.log(), timeout=15)
        with proxy.connect(autocommit=True) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        # An agent that died mid-way: the proxy resumes after switchover_hold, and does not hold again
        # for the same switchover.
        put_switchover(cluster, "pausing", sid="so-stuck")
        wait_until("the proxy to hold", lambda: "holding new read-write" in proxy.log(), timeout=15)
        with proxy.connect(autocommit=True) as c:
            t0 = time.monotonic()
            assert c.execute("SELECT 2").fetchone() == (2,)
            waited = time.monotonic() - t0
        assert 0.5 < waited < 10, waited
        assert "resuming anyway" in proxy.log()
        put_switchover(cluster, "promoting", sid="so-stuck")
        with proxy.connect(autocommit=True) as c:
            t0 = time.monotonic()
            assert c.execute("SELECT 3").fetchone() == (3,)
            assert time.monotonic() - t0 < 1.5
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_session_mode_clients_are_told_why(one):
    cluster = one
    proxy = Proxy(cluster, {"proxy.pool_mode": "session"}).start()
    try:
        c = proxy.connect(autocommit=True)
        assert c.execute("SELECT 1").fetchone() == (1,)
        put_switchover(cluster, "pausing", sid="so-s")
        wait_until("paused to be reported", lambda: (proxy_record(cluster) or {}).get("paused_for") == "so-s",
                   timeout=15)
        with pytest.raises(psycopg.OperationalError, match="planned switchover of the leader from x1 to x2"):
            c.execute("SELECT 2")
        c.close()
        put_switchover(cluster, "aborted", sid="so-s")
        with proxy.connect(autocommit=True) as c2:
            assert c2.execute("SELECT 3").fetchone() == (3,)
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_a_pinned_transaction_mode_client_is_ended_like_a_session(one):
    """A client whose LISTEN keeps its server (transaction mode) would hold the drain forever:
    it is ended at its transaction boundary, with the reason, as a session-mode client."""
    cluster = one
    proxy = Proxy(cluster).start()
    try:
        pinned = proxy.connect(autocommit=True)
        pinned.execute("LISTEN so_test")
        free = proxy.connect(autocommit=True)
        assert free.execute("SELECT 1").fetchone() == (1,)
        put_switchover(cluster, "pausing", sid="so-p")
        wait_until("paused to be reported", lambda: (proxy_record(cluster) or {}).get("paused_for") == "so-p",
                   timeout=15)
        with pytest.raises(psycopg.OperationalError, match="planned switchover of the leader from x1 to x2"):
            pinned.execute("SELECT 2")
        pinned.close()
        put_switchover(cluster, "aborted", sid="so-p")
        # The unpinned client was only held, not ended.
        assert free.execute("SELECT 3").fetchone() == (3,)
        free.close()
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]
