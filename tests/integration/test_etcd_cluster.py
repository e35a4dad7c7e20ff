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


def test_dns_name_with_several_addresses(request):
    """One DNS name for the whole etcd cluster: the name resolves to three addresses (one per
    member, all on the same port) and the first one is dead; libcurl tries the next address. The
    members run in their own network namespace (127.0.0.2-4 on its loopback), and `ip netns exec`
    gives the processes in it /etc/netns/NS/hosts as /etc/hosts."""
    from conftest import ETCD_BIN, free_port, stop_process
    ns = f"pgha-dns-{os.getpid()}"
    etc = f"/etc/netns/{ns}"
    procs = []
    with shared_base(request) as base:
        try:
            subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=10)
            os.makedirs(etc, exist_ok=True)
            addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            with open(os.path.join(etc, "hosts"), "w") as f:
                f.write("127.0.0.1 localhost\n" + "".join(f"{a} etcd-all\n" for a in addrs))
            port, peer = free_port(), free_port()
            initial = ",".join(f"d{i}=http://{a}:{peer}" for i, a in enumerate(addrs))
            for i, a in enumerate(addrs):
                log = open(os.path.join(base, f"etcd-d{i}.log"), "ab")
                procs.append(subprocess.Popen(
                    ["ip", "netns", "exec", ns, ETCD_BIN, "--name", f"d{i}", "--data-dir",
                     os.path.join(base, f"etcd-d{i}"), "--listen-client-urls", f"http://{a}:{port}",
                     "--advertise-client-urls", f"http://{a}:{port}", "--listen-peer-urls", f"http://{a}:{peer}",
                     "--initial-advertise-peer-urls", f"http://{a}:{peer}", "--initial-cluster", initial,
                     "--initial-cluster-state", "new"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
                log.close()

            def ctl_ns(*args):
                return subprocess.run(["ip", "netns", "exec", ns, PGHA_BIN, "ctl", "--etcd", f"http://etcd-all:{port}",
                                       "--cluster", "dns", *args], capture_output=True, text=True, timeout=60)
            wait_until("the etcd members in the namespace", lambda: ctl_ns("list").returncode == 0, timeout=30)
            # The order the resolver gives (the one libcurl tries): kill the first.
            # (getent would add AI_ADDRCONFIG, which finds nothing on a namespace with only loopback.)
            order = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c",
                                    "import socket; print(*[a[4][0] for a in socket.getaddrinfo("
                                    "'etcd-all', 1, socket.AF_UNSPEC, socket.SOCK_STREAM)])"],
                                   capture_output=True, text=True, timeout=10, check=True).stdout.split()
            assert sorted(order) == addrs, order
            first = next(w for w in order if w in addrs)
            victim = procs[addrs.index(first)]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            t = time.monotonic()
            for _ in range(3):
                r = ctl_ns("list")
                assert r.returncode == 0, r.stderr
            # Refused at once, then the next address: no timeout spent on the dead one.
            assert time.monotonic() - t < 15
        finally:
            for p in procs:
                stop_process(p, timeout=30)
            subprocess.run(["ip", "netns", "del", ns], timeout=10)
            if os.path.exists(os.path.join(etc, "hosts")):
                os.remove(os.path.join(etc, "hosts"))
                os.rmdir(etc)
