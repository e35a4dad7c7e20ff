"""The proxy of a standby cluster's region ([proxy] primary_hosts): cluster B is a standby cluster of
cluster A (each with its own etcd, as in test_standby_cluster.py, whose pair fixture this module
reuses). B's proxy serves reads from B's members and forwards writes to A's primary (the member of
its primary_hosts that B's standby leader streams from); after a failover in A, forwarded writes
reach A's new primary; a switchover between the clusters (kind=cluster) holds them; with
standby_writes = refuse, read-write clients get an error at once; once B is promoted, writes go
to B's own leader. A proxy whose primary_hosts is not host:port does not start.

The tests run in order on one pair of clusters and one proxy (module-scoped)."""
import json
import os
import subprocess
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import PGHA_BIN, Proxy, etcdctl, free_port, wait_until
from test_standby_cluster import (kill_leader, pair, pick_leader, promote_cluster,  # noqa: F401 (pair: a fixture)
                                  wait_receiving_from, wait_source)


@pytest.fixture(scope="module")
def proxy(pair):
    a, b = pair
    hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in a.nodes.values())
    px = Proxy(b, {"proxy.primary_hosts": hosts, "proxy.hold_timeout": "60s",
                   "proxy.metrics_listen": f"127.0.0.1:{free_port()}"}, name="proxy-b").start()
    try:
        yield px
    finally:
        px.stop()


def proxy_metrics(px):
    with open(px.conf_path) as f:
        return next(l.split("=", 1)[1].strip() for l in f if l.startswith("metrics_listen"))


def one(px, sql, ro=False):
    with px.connect(ro=ro) as c:
        with c.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone() if cur.description else None


def test_reads_local_writes_forwarded(pair, proxy):
    a, b = pair
    lead_a = a.nodes[a.leader()]
    lead_b = b.nodes[pick_leader(b, ["b1", "b2"], "replica")]
    wait_receiving_from(lead_b, lead_a)
    # The proxy reads from a standby once its lag is known: the standby leader's, from its source.
    wait_source(b, lead_b, lead_a)
    b_ports = {n.pg_port for n in b.nodes.values()}
    # Reads: on B's members (standbys), as before.
    rec, port = one(proxy, "SELECT pg_is_in_recovery(), inet_server_port()", ro=True)
    assert rec is True and port in b_ports, (rec, port)
    # Writes: on A's primary, through B's proxy.
    rec, port = one(proxy, "SELECT pg_is_in_recovery(), inet_server_port()")
    assert rec is False and port == lead_a.pg_port, (rec, port, lead_a.pg_port)
    one(proxy, "CREATE TABLE sp_rows (m text)")
    one(proxy, "INSERT INTO sp_rows VALUES ('via_b')")
    assert lead_a.sql("SELECT count(*) FROM sp_rows WHERE m = 'via_b'")[0][0] == 1
    # ... and it comes back to B's members through replication, readable on B's proxy's read-only port.
    wait_until("the forwarded row on B", lambda: one(proxy, "SELECT count(*) FROM sp_rows WHERE m = 'via_b'",
                                                     ro=True)[0] == 1, timeout=30)
    assert f"leader: primary-cluster at 127.0.0.1:{lead_a.pg_port}" in proxy.log()


def test_cluster_switchover_pauses_forwarded_writes(pair, proxy):
    """A switchover between the clusters (kind=cluster, ctl switchover-cluster's record, written
    here by hand into B's etcd) holds B's forwarded writes as an in-cluster one holds local ones."""
    a, b = pair
    def put(phase):
        rec = {"id": "sc-1", "kind": "cluster", "from": "east", "to": "west", "at": 0, "phase": phase,
               "deadline": 0}
        etcdctl(b, "put", f"/pgha/{b.name}/switchover", json.dumps(rec))
    def paused_for():
        out = etcdctl(b, "get", f"/pgha/{b.name}/proxies/proxy", "--print-value-only").strip()
        return json.loads(out)["paused_for"] if out else None
    wait_until("B's proxy to register", lambda: paused_for() == "", timeout=15)
    busy = proxy.connect(autocommit=True)
    try:
        busy.execute("BEGIN")
        busy.execute("INSERT INTO sp_rows VALUES ('busy')")   # a forwarded transaction, running on A
        put("pausing")
        wait_until("the proxy to hold", lambda: "holding new read-write transactions" in proxy.log(), timeout=15)
        time.sleep(1.5)
        assert paused_for() == ""                             # not while the forwarded one runs
        busy.execute("COMMIT")
        wait_until("paused to be reported", lambda: paused_for() == "sc-1", timeout=10)
        done = {}
        def writer():
            try:
                one(proxy, "INSERT INTO sp_rows VALUES ('held')")
                done["ok"] = time.monotonic()
            except Exception as e:  # noqa: BLE001 (the assertion below shows it)
                done["err"] = e
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(1.5)
        assert not done, done                                 # held, no error
        released = time.monotonic()
        put("done")
        t.join(30)
        assert "ok" in done and done["ok"] >= released, done
        wait_until("running again", lambda: paused_for() == "", timeout=10)
    finally:
        busy.close()
        etcdctl(b, "del", f"/pgha/{b.name}/switchover")


def test_forwarded_writes_follow_failover_in_primary_cluster(pair, proxy):
    a, b = pair
    lead_b = b.nodes[pick_leader(b, ["b1", "b2"], "replica")]
    old = kill_leader(a)
    t0 = time.monotonic()
    # A client that connects right after the kill waits (the proxy holds it) and then writes.
    one(proxy, "INSERT INTO sp_rows VALUES ('during_failover')")
    waited = time.monotonic() - t0
    others = [n for n in a.nodes if n != old.name]
    new = a.nodes[pick_leader(a, others, "primary")]
    assert new.sql("SELECT count(*) FROM sp_rows WHERE m = 'during_failover'")[0][0] == 1
    print(f"a write through B's proxy right after A's leader was killed went through after {waited:.1f}s")
    wait_source(b, lead_b, new)
    # Every client that connects from now on writes on A's new primary, without an error.
    errors = 0
    for i in range(20):
        try:
            rec, port = one(proxy, f"INSERT INTO sp_rows VALUES ('after_{i}') RETURNING pg_is_in_recovery(), "
                                   "inet_server_port()")
            assert rec is False and port == new.pg_port, (rec, port)
        except Exception as e:  # noqa: BLE001 (counted: the assertion below names them)
            print(f"client {i}: {e}")
            errors += 1
    assert errors == 0
    assert new.sql("SELECT count(*) FROM sp_rows WHERE m LIKE 'after_%'")[0][0] == 20
    # Counted: 3 in the first test, 2 in the switchover's, 21 here.
    def forwarded():
        with urllib.request.urlopen(f"http://{proxy_metrics(proxy)}/metrics", timeout=3) as r:
            line = next(l for l in r.read().decode().splitlines() if l.startswith("pgha_proxy_writes_forwarded_total "))
        return float(line.split()[1])
    # The loop renders /metrics about once a second.
    wait_until("the forwarded writes counted", lambda: forwarded() >= 26, timeout=10)
    old.start()
    a.wait_streaming(list(a.nodes), timeout=120)


def test_refuse_mode(pair):
    """[proxy] standby_writes = refuse: read-write clients get an error at once, naming the primary
    cluster; reads go on."""
    a, b = pair
    px = Proxy(b, {"proxy.standby_writes": "refuse", "proxy.name": "refuser"}, name="proxy-refuse").start()
    try:
        assert one(px, "SELECT pg_is_in_recovery()", ro=True) == (True,)
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            px.connect()
        took = time.monotonic() - t0
        msg = str(ei.value)
        assert f"cluster {b.name} is a standby cluster of {b.nodes['b1'].extra['standby_cluster.primary_hosts']}" \
            in msg and "standby_writes = refuse" in msg, msg
        assert took < 3, took
    finally:
        px.stop()


def test_no_primary_hosts_warns(pair):
    """Forward without primary_hosts: the proxy says what to set; read-write clients fail after
    hold_timeout, reads go on."""
    a, b = pair
    px = Proxy(b, {"proxy.name": "nohosts", "proxy.hold_timeout": "1s"}, name="proxy-nohosts").start()
    try:
        wait_until("the proxy to warn", lambda: "HINT: set [proxy] primary_hosts = host:port" in px.log(),
                   timeout=15)
        assert one(px, "SELECT pg_is_in_recovery()", ro=True) == (True,)
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            px.connect()
        assert time.monotonic() - t0 < 8
    finally:
        px.stop()


def test_writes_go_local_once_promoted(pair, proxy):
    """After promote-cluster (the primary region lost) B's leader runs as primary: B's proxy sends
    writes to it, without a restart. Last: it ends the pair's standby relation."""
    a, b = pair
    lead_b = b.nodes[b.leader()]
    a.stop_all()
    r = promote_cluster(b, answer="y\n")
    assert r.returncode == 0, r.stderr
    wait_until("B's leader to promote", lambda: lead_b.sql("SELECT pg_is_in_recovery()")[0][0] is False,
               timeout=60)
    # New clients may wait (hold) while the proxy learns of it; none gets an error.
    rec, port = one(proxy, "INSERT INTO sp_rows VALUES ('local') RETURNING pg_is_in_recovery(), inet_server_port()")
    assert rec is False and port == lead_b.pg_port, (rec, port, lead_b.pg_port)
    assert f"leader: {lead_b.name} at 127.0.0.1:{lead_b.pg_port}" in proxy.log()


def test_bad_primary_hosts_refused(pair, tmp_path):
    a, b = pair
    px = Proxy(b, {"proxy.primary_hosts": "127.0.0.1:5432, db2"}, name="proxy-bad")
    r = subprocess.run([PGHA_BIN, "proxy", "-c", px.conf_path], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    err = r.stdout + r.stderr
    assert f"{px.conf_path}: [proxy] primary_hosts: \"db2\"" in err and "HINT:" in err, err
    assert os.path.exists(px.conf_path)
