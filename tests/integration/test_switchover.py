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


def api_call(node, method, path, body=None, token=None):
    import json
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{node.host}:{node.api_port}{path}", data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def test_switchover_through_the_agent_api(cluster):
    token = "tok-" + os.urandom(12).hex()
    tfile = os.path.join(cluster.base, "secrets", "api-token")
    with open(tfile, "w") as f:
        f.write(token + "\n")
    os.chmod(tfile, 0o600)
    cluster.add("n1", extra={"node.api_token_file": tfile}).start()
    cluster.add("n2", extra={"node.api_token_file": tfile}).start()
    cluster.add("n3", extra={"node.api_token_file": ""}).start()    # no token file: its API changes nothing
    leader = cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)
    target = "n2" if leader != "n2" else "n1"
    via = cluster.nodes["n1" if leader != "n1" else "n2"]
    body = {"candidate": target}
    assert api_call(cluster.nodes["n3"], "POST", "/switchover", body, token)[0] == 403
    assert api_call(via, "POST", "/switchover", body)[0] == 401
    status, answer = api_call(via, "POST", "/switchover", body, "wrong-" + token)
    assert status == 401 and answer == {"error": "wrong token"}
    # Refusals carry the reason.
    status, answer = api_call(via, "POST", "/switchover", {"candidate": leader}, token)
    assert status == 409 and "already the leader" in answer["error"], answer
    status, answer = api_call(via, "POST", "/switchover", {"candidate": target, "leader": "n9"}, token)
    assert status == 412, answer
    assert api_call(via, "POST", "/switchover", {"nope": 1}, token)[0] == 400
    # A scheduled one shows in ctl list and can be withdrawn over the API.
    status, answer = api_call(via, "POST", "/switchover", {"candidate": target, "scheduled_at": "+1h"}, token)
    assert status == 202 and answer["phase"] == "scheduled" and answer["to"] == target, answer
    assert "Pending switchover" in cluster.ctl("list").stdout
    status, answer = api_call(via, "DELETE", "/switchover", None, token)
    assert status == 200 and answer == {"cancelled": answer["cancelled"]}
    assert api_call(via, "DELETE", "/switchover", None, token)[0] == 404
    # Now.
    status, answer = api_call(via, "POST", "/switchover", {"candidate": target, "leader": leader}, token)
    assert status == 202, answer
    wait_until("the candidate to lead", lambda: cluster.leader() == target and
               cluster.members()[target]["state"] == "running", timeout=60)
    cluster.wait_streaming(["n1", "n2", "n3"], timeout=120)
    # The token never shows in a log or an argv.
    for n in cluster.nodes.values():
        assert token not in n.log()
