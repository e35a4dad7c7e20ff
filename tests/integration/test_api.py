"""The agent API and the agents under attack: a slow-client flood must not
starve the health checks; POST /failsafe (a promise not to race for the leader
key) needs the cluster's API token; a bad etcd key is logged once per change; a
hand-written leader key neither stops the primary nor promotes a standby.

One 2-member cluster (fast profile) serves the whole file; the tests run in
order and leave it with one valid leader for the next."""
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Cluster, Etcd, Writer, etcdctl, pg_pid, shared_base, signal_instance, wait_until

FAST = {"cluster.ttl": "3s", "cluster.loop_wait": "500ms", "cluster.retry_timeout": "1s",
        "etcd.request_timeout": "800ms"}
NAMES = ("a1", "a2")


@pytest.fixture(scope="module")
def api_cluster(request):
    with shared_base(request) as base:
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        try:
            for n in NAMES:
                cluster.add(n, FAST).start()
            cluster.wait_streaming(list(NAMES), timeout=120)
            yield cluster
        finally:
            cluster.stop_all()
            etcd.stop()


class Drip:
    """n connections that each send one byte of a request head a second, and
    reconnect when the server drops them (as an attacker would)."""

    def __init__(self, port, n):
        self.port = port
        self.socks = [None] * n
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        s.setblocking(False)
        return s

    def _run(self):
        while not self.stop_flag.is_set():
            for i, s in enumerate(self.socks):
                try:
                    if s is None:
                        s = self.socks[i] = self._open()
                    s.send(b"G")
                except OSError:
                    if s is not None:
                        s.close()
                    self.socks[i] = None
            self.stop_flag.wait(1.0)

    def __enter__(self):
        for i in range(len(self.socks)):
            self.socks[i] = self._open()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)
        for s in self.socks:
            if s is not None:
                s.close()


def timed_get(url):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    return code, time.monotonic() - t0


def test_slow_flood_does_not_starve_health_checks(api_cluster):
    cluster = api_cluster
    leader = cluster.nodes[cluster.leader()]
    url = f"http://127.0.0.1:{leader.api_port}/primary"
    with Drip(leader.api_port, 400):
        time.sleep(1.5)    # every drip connection is in, and has sent a byte or two
        answers = []
        for _ in range(8):  # spans more than the 5 s request deadline of the first drips
            answers.append(timed_get(url))
            time.sleep(0.8)
    assert all(code == 200 for code, _ in answers), answers
    slowest = max(t for _, t in answers)
    print(f"/primary during a 400-connection drip flood: slowest {slowest * 1000:.1f} ms of {len(answers)}")
    assert slowest < 0.5, f"/primary took {slowest:.3f} s during the flood: {answers}"


def post(port, path, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}", method="POST",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_failsafe_needs_the_api_token(api_cluster):
    cluster = api_cluster
    standby = next(n for name, n in cluster.nodes.items() if name != cluster.leader())
    assert post(standby.api_port, "/failsafe") == 401
    assert post(standby.api_port, "/failsafe", token="tok-not-the-right-one") == 401
    assert "POST /failsafe refused: wrong token" in standby.log()
    # The members' own token is accepted (409: this member reaches etcd, so no promise).
    assert post(standby.api_port, "/failsafe", token=cluster.api_token) == 409



def test_bad_etcd_key_is_logged_once_per_change(api_cluster):
    cluster = api_cluster
    key = f"/pgha/{cluster.name}/members/zz"
    line = f"skipping member record {key}"
    try:
        etcdctl(cluster, "put", key, '{"garbage":')
        time.sleep(3)    # six loops of 500 ms on every agent, and watch wake-ups
        for node in cluster.nodes.values():
            assert node.log().count(line) == 1, node.log()[-3000:]
        etcdctl(cluster, "put", key, "still not a record")   # changed: reported again, once
        time.sleep(2)
        for node in cluster.nodes.values():
            assert node.log().count(line) == 2, node.log()[-3000:]
    finally:
        etcdctl(cluster, "del", key)


def valid_leader(cluster):
    """The leader's name once the leader key is valid again (an agent's, under its lease)."""
    v = cluster.view()
    return v.get("leader") if "leader_key_invalid" not in v else None


class LeaderKeyRound:
    """Write `value` to the leader key under no lease while a Writer runs on every member;
    afterwards the same leader must hold a valid key, its PostgreSQL never stopped, the
    standby never promoted, and no split brain."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.key = f"/pgha/{cluster.name}/leader"
        self.leader = cluster.leader()
        self.standby = next(n for n in cluster.nodes if n != self.leader)
        self.lnode = cluster.nodes[self.leader]
        self.pid = pg_pid(self.lnode)

    def run(self, value, lease=None):
        cluster, leader = self.cluster, self.leader
        writer = Writer(cluster).start()
        try:
            wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
            t_bad = time.monotonic()
            etcdctl(cluster, "put", self.key, value, *([f"--lease={lease}"] if lease else []))
            wait_until("the leader key back with the leader, valid",
                       lambda: etcdctl(cluster, "get", "--print-value-only", self.key).strip() == leader
                       and valid_leader(cluster) == leader, timeout=20)
            time.sleep(2)
        finally:
            writer.stop()
        writer.assert_no_split_brain()
        assert not writer.acked_on(self.standby), "the standby accepted writes"
        assert pg_pid(self.lnode) == self.pid, "the primary's PostgreSQL was restarted"
        assert cluster.nodes[self.standby].sql("SELECT pg_is_in_recovery()")[0][0]
        # The primary took writes all along: no gap longer than 3 s after the bad key.
        acks = sorted(w[3] for w in writer.acked_on(leader) if w[3] > t_bad - 1)
        gaps = [b - a for a, b in zip(acks, acks[1:])]
        assert acks and max(gaps, default=0) < 3, f"writes stopped for {max(gaps):.1f} s"
        cluster.wait_streaming(list(cluster.nodes), timeout=60)


def test_garbage_leader_key_does_not_stop_the_primary(api_cluster):
    r = LeaderKeyRound(api_cluster)
    r.run('{"garbage":')
    log = r.lnode.log()
    assert 'the leader key /pgha/t/leader = "{"garbage":" is not a member name' in log
    assert 'replaced the invalid leader key ("{"garbage":"' in log


def test_standby_named_in_a_leaseless_leader_key_does_not_promote(api_cluster):
    r = LeaderKeyRound(api_cluster)
    r.run(r.standby)
    assert f'the leader key /pgha/t/leader = "{r.standby}" is under no lease' in r.lnode.log()


def test_standby_named_under_a_foreign_lease_does_not_promote(api_cluster):
    r = LeaderKeyRound(api_cluster)
    # A live lease that is not the standby's (etcdctl prints "lease 694d... granted with TTL(60s)").
    lease = etcdctl(api_cluster, "lease", "grant", "60").split()[1]
    try:
        r.run(r.standby, lease=lease)
    finally:
        etcdctl(api_cluster, "lease", "revoke", lease)
    assert f"the leader key names {r.standby} under lease" in r.lnode.log()


def scrape(node):
    with urllib.request.urlopen(f"http://127.0.0.1:{node.api_port}/metrics", timeout=3) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, v = line.rpartition(" ")
        samples[name] = float(v)
    return samples


def test_metrics_say_who_leads_and_who_streams(api_cluster):
    leader = api_cluster.leader()
    standby = next(n for n in NAMES if n != leader)
    lab = f'cluster="{api_cluster.name}",member="{leader}"'
    sab = f'cluster="{api_cluster.name}",member="{standby}"'
    # The cluster series are the view of the leader's last loop: the standby's record may be newer.
    lm = wait_until("the leader's view to show the standby streaming",
                    lambda: (lambda m: m if m[f"pgha_cluster_streaming_standbys{{{lab}}}"] == 1 else None)(
                        scrape(api_cluster.nodes[leader])), timeout=30)
    sm = scrape(api_cluster.nodes[standby])
    assert lm[f"pgha_leader{{{lab}}}"] == 1 and sm[f"pgha_leader{{{sab}}}"] == 0
    assert lm[f'pgha_member_role{{{lab},role="primary"}}'] == 1
    assert sm[f'pgha_member_role{{{sab},role="replica"}}'] == 1
    assert sm[f"pgha_postgres_streaming{{{sab}}}"] == 1
    assert sm[f"pgha_replication_lag_bytes{{{sab}}}"] >= 0
    assert lm[f'pgha_wal_position_bytes{{{lab},kind="written"}}'] > 0
    assert lm[f"pgha_timeline{{{lab}}}"] >= 1
    assert 0 < lm[f"pgha_lease_remaining_seconds{{{lab}}}"] <= 30
    assert lm[f"pgha_etcd_reachable{{{lab}}}"] == 1 and lm[f"pgha_ha_loops_total{{{lab}}}"] > 0
    assert lm[f"pgha_cluster_members{{{lab}}}"] == 2
    assert lm[f"pgha_cluster_leader_running{{{lab}}}"] == 1
    # Answered from the snapshot: fast even while the loop works.
    t0 = time.monotonic()
    for _ in range(20):
        scrape(api_cluster.nodes[leader])
    assert (time.monotonic() - t0) / 20 < 0.2


def test_metrics_carry_postgres_statistics(api_cluster):
    leader = api_cluster.leader()
    standby = next(n for n in NAMES if n != leader)
    node = api_cluster.nodes[leader]
    lab = f'cluster="{api_cluster.name}",member="{leader}"'
    # A session idle in a transaction shows within a collection round (every 5 s).
    with node.connect() as conn:
        conn.execute("SELECT txid_current()")

        def seen():
            m = scrape(node)
            return m if (m.get(f"pgha_pg_stats_up{{{lab}}}") == 1 and
                         m.get(f'pgha_pg_connections{{{lab},state="idle in transaction"}}', 0) >= 1 and
                         m.get(f"pgha_pg_oldest_idle_in_transaction_seconds{{{lab}}}", 0) > 0) else None
        m = wait_until("the idle transaction in the leader's statistics", seen, timeout=20)
    assert m[f'pgha_pg_database_xact_commit_total{{{lab},datname="postgres"}}'] > 0
    assert m[f'pgha_pg_database_size_bytes{{{lab},datname="postgres"}}'] > 1 << 20
    assert m[f"pgha_pg_max_connections{{{lab}}}"] >= 10
    assert m[f"pgha_pg_xid_age{{{lab}}}"] > 0
    assert m[f'pgha_pg_replication_streaming{{{lab},standby="{standby}"}}'] == 1
    assert m[f'pgha_pg_slot_active{{{lab},slot="{standby}"}}'] == 1
    assert m[f"pgha_pg_wal_bytes_total{{{lab}}}"] > 0
    assert m[f"pgha_pg_stats_duration_seconds{{{lab}}}"] < 1


def test_metrics_answer_fast_while_postgres_is_frozen(api_cluster):
    leader = api_cluster.leader()
    standby = next(n for n in NAMES if n != leader)
    node = api_cluster.nodes[standby]
    sab = f'cluster="{api_cluster.name}",member="{standby}"'
    pid = pg_pid(node)
    before = scrape(node)[f"pgha_pg_stats_errors_total{{{sab}}}"]
    signal_instance(pid, signal.SIGSTOP)
    try:
        def down():
            t0 = time.monotonic()
            m = scrape(node)
            assert time.monotonic() - t0 < 1, "a scrape waited for a frozen PostgreSQL"
            return m if m[f"pgha_pg_stats_up{{{sab}}}"] == 0 else None
        m = wait_until("the frozen standby's statistics to be reported missing", down, timeout=30)
        assert m[f"pgha_pg_stats_errors_total{{{sab}}}"] > before
        assert not any(k.startswith("pgha_pg_database_") for k in m)
        # The HA part still answers.
        assert f'pgha_member_role{{{sab},role="replica"}}' in m
    finally:
        signal_instance(pid, signal.SIGCONT)
    wait_until("the standby's statistics back",
               lambda: scrape(node)[f"pgha_pg_stats_up{{{sab}}}"] == 1, timeout=40)
    api_cluster.wait_streaming(list(NAMES), timeout=60)


def test_history_records_the_bootstrap_and_a_switchover(api_cluster):
    old = api_cluster.leader()
    new = next(n for n in NAMES if n != old)
    first = json.loads(api_cluster.ctl("history", "--json").stdout)["entries"]
    assert first and first[0]["kind"] == "bootstrap" and first[0]["from"] == "" and first[0]["timeline"] == 1, first
    changes_before = scrape(api_cluster.nodes[new])[
        f'pgha_leader_changes_total{{cluster="{api_cluster.name}",member="{new}"}}']
    r = api_cluster.ctl("switchover", "--to", new, "--force", "--wait", "60", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    api_cluster.wait_streaming(list(NAMES), timeout=60)

    def recorded():
        h = json.loads(api_cluster.ctl("history", "--json").stdout)["entries"]
        return h if len(h) == len(first) + 1 else None
    h = wait_until("the switchover in the history", recorded, timeout=30)
    last = h[-1]
    assert last["kind"] == "switchover" and last["from"] == old and last["to"] == new, last
    assert last["timeline"] == h[-2]["timeline"] + 1 and 0 < last["unavailable_ms"] < 15000, last
    # The API serves the same history; ctl prints it as a table.
    status, body = api_cluster.nodes[old].api("/history")
    assert status == 200 and body["entries"][-1] == last, body
    out = api_cluster.ctl("history").stdout
    assert re.search(rf"switchover +{old} +{new} +{last['timeline']} +\d+\.\d s", out), out
    m = wait_until("the new leader's metrics to count the change", lambda: (lambda m: m if m[
        f'pgha_leader_changes_total{{cluster="{api_cluster.name}",member="{new}"}}'] > changes_before else None)(
        scrape(api_cluster.nodes[new])), timeout=15)
    assert m[f'pgha_promotions_total{{cluster="{api_cluster.name}",member="{new}"}}'] >= 1


def test_metrics_answer_fast_while_etcd_is_frozen(api_cluster):
    leader = api_cluster.wait_streaming(list(NAMES), timeout=120)
    node = api_cluster.nodes[leader]
    lab = f'cluster="{api_cluster.name}",member="{leader}"'
    etcd_pid = api_cluster.etcd.proc.pid
    os.kill(etcd_pid, signal.SIGSTOP)
    try:
        def unreachable():
            t0 = time.monotonic()
            m = scrape(node)
            assert time.monotonic() - t0 < 1, "a scrape waited for etcd"
            return m if m[f"pgha_etcd_reachable{{{lab}}}"] == 0 else None
        m = wait_until("the leader's metrics to say etcd is unreachable", unreachable, timeout=30)
        assert f'pgha_member_role{{{lab},role="primary"}}' in m
        assert time.time() - m[f"pgha_etcd_last_contact_timestamp_seconds{{{lab}}}"] >= 1
    finally:
        os.kill(etcd_pid, signal.SIGCONT)
    wait_until("etcd reachable again in the metrics",
               lambda: scrape(node)[f"pgha_etcd_reachable{{{lab}}}"] == 1, timeout=60)
    api_cluster.wait_streaming(list(NAMES), timeout=60)
