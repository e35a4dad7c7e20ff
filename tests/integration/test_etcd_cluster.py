"""A real 3-member etcd cluster under 3 agents and a proxy, with a client writing through the proxy
the whole time: an etcd member killed, one stalled, the majority lost (failsafe), and every member
replaced by a new one on new ports (endpoint auto-sync).

The "partition" is SIGSTOP of the member: its sockets stay open and accept connections, but nothing
answers, which is what a client sees of a member cut off by the network (it does not model the
member's own side: a stopped member does not campaign while it is away)."""
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import (PGHA_BIN, Cluster, EtcdCluster, Proxy, shared_base, wait_until)

TTL = 9            # the default [cluster] ttl, in seconds
SYNC = "1s"        # [etcd] sync_interval here (default 30s), so a replacement is seen within a second


class ProxyClient:
    """One client writing through the proxy's read-write port all the time: one INSERT every 50 ms on
    its own connection, reconnecting after an error. Records every success and every error."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.ok = []            # monotonic times of committed writes
        self.errors = []        # (time, error)
        self.stop_flag = threading.Event()
        self.thread = None

    def start(self):
        with self.proxy.connect(autocommit=True) as c:
            c.execute("CREATE TABLE IF NOT EXISTS etcd_writes (id serial PRIMARY KEY, t double precision)")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        wait_until("the first write through the proxy", lambda: self.ok, timeout=10)
        return self

    def _loop(self):
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = self.proxy.connect(autocommit=True)
                conn.execute("INSERT INTO etcd_writes (t) VALUES (%s)", (time.time(),))
                self.ok.append(time.monotonic())
            except Exception as e:   # every kind of failure is what we count
                self.errors.append((time.monotonic(), repr(e)))
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                conn = None
            time.sleep(0.05)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(15)

    def writes_since(self, t):
        return [x for x in self.ok if x > t]


def ctl(etcd, cluster, *args):
    """pgha ctl against the members that exist now (the agents only know what they were given)."""
    r = subprocess.run([PGHA_BIN, "ctl", "--etcd", etcd.live_urls(), "--cluster", cluster.name, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"pgha ctl {' '.join(args)}: {r.stderr}"
    return r.stdout


def leader_now(etcd, cluster):
    import json
    return json.loads(ctl(etcd, cluster, "list", "--json")).get("leader")


@pytest.fixture(scope="module")
def env(request):
    with shared_base(request) as base:
        etcd = EtcdCluster(base, 3).start()
        cluster = Cluster(base, etcd)
        proxy = None
        try:
            for n in ("n1", "n2", "n3"):
                cluster.add(n, {"etcd.sync_interval": SYNC}).start()
            cluster.wait_streaming(["n1", "n2", "n3"], timeout=120)
            proxy = Proxy(cluster, {"etcd.sync_interval": SYNC}).start()
            client = ProxyClient(proxy).start()
            yield etcd, cluster, proxy, client
            client.stop()
        finally:
            if proxy is not None:
                proxy.stop()
            cluster.stop_all()
            etcd.stop()


def restart_member(etcd, m):
    m.start(",".join(f"{x.name}={x.peer_url}" for x in etcd.members), "new")   # data dir kept: flags unused
    wait_until(f"etcd member {m.name} back", m.healthy, timeout=30)


def assert_calm(client, t0, leader, etcd, cluster):
    """No client error since t0, writes committed until now, the same leader."""
    assert client.errors == [] or all(t < t0 for t, _ in client.errors), \
        f"client errors through the proxy: {[e for e in client.errors if e[0] >= t0][:5]}"
    assert client.writes_since(time.monotonic() - 1.5), "the client's writes stopped"
    assert leader_now(etcd, cluster) == leader


def test_raft_leader_killed(env):
    etcd, cluster, proxy, client = env
    leader = cluster.wait_streaming(list(cluster.nodes), timeout=60)
    victim = wait_until("an etcd raft leader", etcd.leader, timeout=10)
    t0 = time.monotonic()
    victim.kill(signal.SIGKILL)
    try:
        # Past the TTL: every lease renewal and watch went through the two members left.
        time.sleep(TTL + 3)
        assert_calm(client, t0, leader, etcd, cluster)
    finally:
        restart_member(etcd, victim)
    cluster.wait_streaming(list(cluster.nodes), timeout=30)


def test_raft_leader_stalled(env):
    etcd, cluster, proxy, client = env
    leader = cluster.wait_streaming(list(cluster.nodes), timeout=60)
    victim = wait_until("an etcd raft leader", etcd.leader, timeout=10)
    t0 = time.monotonic()
    victim.kill(signal.SIGSTOP)
    try:
        # Requests to it hang until [etcd] request_timeout, then go to the others.
        time.sleep(TTL + 3)
        assert_calm(client, t0, leader, etcd, cluster)
    finally:
        victim.kill(signal.SIGCONT)
    wait_until(f"etcd member {victim.name} answering again", victim.healthy, timeout=30)
    cluster.wait_streaming(list(cluster.nodes), timeout=30)


def test_majority_lost_failsafe_then_recovery(env):
    etcd, cluster, proxy, client = env
    leader = cluster.wait_streaming(list(cluster.nodes), timeout=60)
    gone = etcd.members[:2]
    t0 = time.monotonic()
    for m in gone:
        m.kill(signal.SIGKILL)
    try:
        node = cluster.nodes[leader]
        # The member left has no quorum: etcd is unreachable for everyone, and every member
        # confirms it to the leader, which stays primary (README: failsafe).
        wait_until("failsafe mode", lambda: node.api("/status")[1].get("failsafe_active"), timeout=30)
        time.sleep(TTL + 3)
        assert client.errors == [] or all(t < t0 for t, _ in client.errors), \
            f"client errors through the proxy: {[e for e in client.errors if e[0] >= t0][:5]}"
        assert client.writes_since(time.monotonic() - 1.5), "the primary stopped taking writes"
        for name, n in cluster.nodes.items():
            if name != leader:
                assert n.sql("SELECT pg_is_in_recovery()")[0][0], f"{name} was promoted without etcd"
        assert "staying primary" in node.log()
    finally:
        for m in gone:
            restart_member(etcd, m)
    wait_until("failsafe over", lambda: not cluster.nodes[leader].api("/status")[1].get("failsafe_active"),
               timeout=30)
    cluster.wait_streaming(list(cluster.nodes), timeout=60)
    assert_calm(client, t0, leader, etcd, cluster)


def logs_of(cluster, proxy):
    out = {name: n.log() for name, n in cluster.nodes.items()}
    out["proxy"] = proxy.log()
    return out


def test_every_member_replaced_without_restart(env):
    """Replace the three members one by one with new ones on new ports. Afterwards not one URL the
    agents and the proxy were configured with answers: they work only through the member list."""
    etcd, cluster, proxy, client = env
    leader = cluster.wait_streaming(list(cluster.nodes), timeout=60)
    configured = [m.url for m in etcd.members]
    pids = {name: n.proc.pid for name, n in cluster.nodes.items()}
    pids["proxy"] = proxy.proc.pid
    t0 = time.monotonic()
    for old in list(etcd.members):
        new = etcd.replace(old)
        # Every agent and the proxy log the new list, with the new member's URL in it.
        wait_until(f"every agent and the proxy to use {new.url}",
                   lambda: all(f"etcd endpoints changed" in text and new.url in text
                               for text in logs_of(cluster, proxy).values()), timeout=20)
    for url in configured:
        assert url not in etcd.live_urls()
    # The leader keeps renewing its key through the new members only, past the TTL.
    time.sleep(TTL + 3)
    assert_calm(client, t0, leader, etcd, cluster)
    # A switchover needs every agent to read and watch etcd, and the proxy to follow the new leader.
    target = next(n for n in cluster.nodes if n != leader)
    ctl(etcd, cluster, "switchover", "--to", target, "--force", "--wait", "60")
    wait_until("the proxy to send writes to the new leader", lambda: client.writes_since(time.monotonic() - 1)
               and cluster.nodes[target].sql("SELECT count(*) FROM etcd_writes WHERE t > %s",
                                             (time.time() - 1,))[0][0] > 0, timeout=30)
    assert leader_now(etcd, cluster) == target
    assert client.errors == [] or all(t < t0 for t, _ in client.errors), \
        f"client errors through the proxy: {[e for e in client.errors if e[0] >= t0][:5]}"
    # Nobody was restarted.
    assert {name: n.proc.pid for name, n in cluster.nodes.items()} | {"proxy": proxy.proc.pid} == pids
    assert all(n.proc.poll() is None for n in cluster.nodes.values()) and proxy.proc.poll() is None
