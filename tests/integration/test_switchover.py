"""Planned switchover through `pgha ctl switchover`, with clients writing
through the proxy in transaction mode: no client error at all, only a pause;
every acknowledged write on the new leader; the old leader streams from it.
And an aborted one: a candidate that never takes over leaves the old leader
serving writes."""
import os
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import Proxy, wait_until


class ProxyWriters:
    """Writer threads on their own proxy connections (kept open throughout): each
    commits one row at a time and records what was acknowledged, every error,
    and the longest time one commit took."""

    def __init__(self, proxy, n=4):
        self.proxy = proxy
        self.n = n
        self.stop_ev = threading.Event()
        self.acked = []
        self.errors = []
        self.longest = 0.0
        self.lock = threading.Lock()
        self.threads = []

    def _run(self, wid):
        conn = self.proxy.connect(autocommit=True)
        i = 0
        try:
            while not self.stop_ev.is_set():
                i += 1
                t0 = time.monotonic()
                try:
                    conn.execute("INSERT INTO so_writes (writer, seq) VALUES (%s, %s)", (wid, i))
                except Exception as e:   # counted: the test expects none
                    with self.lock:
                        self.errors.append(f"writer {wid}: {e!r}")
                    time.sleep(0.05)
                    continue
                took = time.monotonic() - t0
                with self.lock:
                    self.acked.append((wid, i))
                    self.longest = max(self.longest, took)
                time.sleep(0.01)
        finally:
            conn.close()

    def start(self):
        for w in range(self.n):
            t = threading.Thread(target=self._run, args=(w,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=30)


@pytest.fixture
def three(cluster):
    for n in ("n1", "n2", "n3"):
        cluster.add(n).start()
    leader = cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)
    proxy = Proxy(cluster).start()
    wait_until("the proxy to register", lambda: "proxies/proxy" in subprocess.run(
        ["etcdctl", "--endpoints", cluster.etcd.url, "get", "--prefix", "--keys-only", f"/pgha/{cluster.name}/"],
        capture_output=True, text=True, timeout=30).stdout, timeout=15)
    with proxy.connect(autocommit=True) as c:
        c.execute("CREATE TABLE so_writes (writer int, seq int, PRIMARY KEY (writer, seq))")
    yield cluster, proxy, leader
    assert proxy.stop() == 0, proxy.log()[-3000:]


def test_switchover_back_and_forth_without_client_errors(three):
    cluster, proxy, leader = three
    writers = ProxyWriters(proxy).start()
    try:
        time.sleep(1)
        current = leader
        took = []
        for rnd in range(6):
            target = sorted(n for n in ("n1", "n2", "n3") if n != current)[rnd % 2]
            t0 = time.monotonic()
            r = cluster.ctl("switchover", "--to", target, "--force", "--wait", "60", check=False)
            assert r.returncode == 0, f"round {rnd}: {r.stdout}\n{r.stderr}"
            assert f"switched over from {current} to {target}" in r.stdout, r.stdout
            took.append(time.monotonic() - t0)
            current = target
            # The old leader follows the new one (no re-clone) before the next round.
            cluster.wait_streaming(["n1", "n2", "n3"], timeout=120)
            time.sleep(0.5)
        time.sleep(1)
    finally:
        writers.stop()
    assert writers.errors == [], writers.errors[:5]
    assert len(writers.acked) > 100
    print(f"switchovers took {['%.2f' % t for t in took]} s; longest client commit {writers.longest:.2f} s")
    assert cluster.leader() == current
    with cluster.nodes[current].connect() as c:
        rows = set(c.execute("SELECT writer, seq FROM so_writes").fetchall())
    missing = [w for w in writers.acked if w not in rows]
    assert missing == [], missing[:10]
    for n, node in cluster.nodes.items():
        log = node.log()
        assert log.count("pg_basebackup started") <= 1, f"{n} was re-cloned"


def test_switchover_cancel_and_bad_requests(three):
    cluster, proxy, leader = three
    other = sorted(n for n in ("n1", "n2", "n3") if n != leader)[0]
    r = cluster.ctl("switchover", "--to", leader, "--force", check=False)
    assert r.returncode != 0 and "already the leader" in r.stderr
    r = cluster.ctl("switchover", "--to", "nope", "--force", check=False)
    assert r.returncode != 0 and "not a member" in r.stderr
    r = cluster.ctl("switchover", "--to", other, "--at", "tomorrow", "--force", check=False)
    assert r.returncode == 2 and "--at" in r.stderr
    r = cluster.ctl("switchover", "--to", other, "--at", "+1h", "--force", "--no-wait", check=False)
    assert r.returncode == 0, r.stderr
    assert "Pending switchover" in cluster.ctl("list").stdout
    r = cluster.ctl("switchover", "--to", other, "--force", check=False)
    assert r.returncode != 0 and "already scheduled" in r.stderr
    r = cluster.ctl("switchover", "--cancel", "--force", check=False)
    assert r.returncode == 0 and "cancelled" in r.stdout
    assert "Pending switchover" not in cluster.ctl("list").stdout
    assert cluster.leader() == leader


def test_switchover_aborts_when_the_candidate_never_takes_over(three):
    cluster, proxy, leader = three
    candidate = sorted(n for n in ("n1", "n2", "n3") if n != leader)[0]
    writers = ProxyWriters(proxy, n=2).start()
    agent = cluster.nodes[candidate].proc
    try:
        time.sleep(1)
        # Its PostgreSQL keeps streaming, but its agent will never take the key.
        os.kill(agent.pid, signal.SIGSTOP)
        r = cluster.ctl("switchover", "--to", candidate, "--force", "--wait", "60", check=False)
        assert r.returncode == 1 and "aborted" in r.stderr, r.stdout + r.stderr
        assert "did not take over" in r.stderr, r.stderr
        wait_until("the old leader to serve writes again", lambda: cluster.leader() == leader and
                   cluster.members()[leader]["state"] == "running", timeout=60)
    finally:
        os.kill(agent.pid, signal.SIGCONT)
        time.sleep(2)
        writers.stop()
    assert writers.errors == [], writers.errors[:5]
    with cluster.nodes[leader].connect() as c:
        rows = set(c.execute("SELECT writer, seq FROM so_writes").fetchall())
    assert [w for w in writers.acked if w not in rows] == []
    cluster.wait_streaming(["n1", "n2", "n3"], timeout=120)
