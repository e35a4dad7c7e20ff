"""A leader cut off the network. Each member runs in a network namespace of
its own, joined to the others and to etcd by a bridge that this test makes
(addresses 10.213.X.0/24 exist only inside this machine). Cutting the
leader's link isolates it from etcd, the other members and clients at once."""
import threading
import time

import psycopg
import pytest

from conftest import Cluster, Etcd, Net, Writer, make_base_dir, replicated_checkpoint, wait_until


@pytest.fixture
def net_cluster():
    names = ["n1", "n2", "n3"]
    net = Net(names)
    base = make_base_dir()
    etcd = Etcd(base, host=net.gw)
    cluster = Cluster(base, etcd)
    try:
        etcd.start()
        for name in names:
            ns, _, addr = net.members[name]
            cluster.add(name, {"postgresql.allowed_networks": f"10.213.{net.subnet}.0/24,127.0.0.1/32"},
                        host=addr, netns=ns)
        yield net, cluster
    finally:
        for node in cluster.nodes.values():
            if node.proc and node.proc.poll() is None:
                node.stop()
        etcd.stop()
        net.destroy()


def test_isolated_leader_stops_writes_within_ttl_and_others_take_over(net_cluster):
    net, cluster = net_cluster
    ttl = 9
    for node in cluster.nodes.values():
        node.start()
    leader = cluster.wait_streaming(list(cluster.nodes), timeout=180)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    mark = replicated_checkpoint(cluster, writer, leader)

    # A second writer reaches the old leader through its unix socket, which the
    # cut does not touch: it tells when that PostgreSQL stops taking writes.
    old = cluster.nodes[leader]
    local_acks = []
    stop = threading.Event()

    def local_writer():
        i = 10_000_000
        while not stop.is_set():
            i += 1
            try:
                with old.connect(via_socket=True, autocommit=True) as c:
                    c.execute("INSERT INTO sb_writes VALUES (%s, %s, %s)", (i, leader, time.time()))
                    local_acks.append(time.monotonic())
            except Exception:
                pass
            time.sleep(0.05)

    t = threading.Thread(target=local_writer, daemon=True)
    t.start()
    wait_until("local writes", lambda: local_acks, timeout=10)
    t_cut = time.monotonic()
    net.cut(leader)
    try:
        others = [n for n in cluster.nodes if n != leader]

        def new_leader():
            v = cluster.view()
            ms = {m["name"]: m for m in v["members"]}
            lead = v.get("leader")
            return lead if lead in others and ms[lead]["role"] == "primary" and ms[lead]["state"] == "running" else None
        new = wait_until("a new leader", new_leader, timeout=60)
        t_new = time.monotonic() - t_cut
        time.sleep(2)
    finally:
        stop.set()
        t.join(10)
        net.heal(leader)
    last_local = max(local_acks) - t_cut
    print(f"partition: old leader's last local write {last_local:.1f}s after the cut, new leader after {t_new:.1f}s")
    assert last_local < ttl, f"the isolated leader accepted writes {last_local:.1f}s after the cut"
    assert "fence" in old.log() or "demot" in old.log() or "stopping PostgreSQL" in old.log()
    # Its last local write came before the new leader's first write.
    first_new = min(w[3] for w in writer.acked_on(new))
    assert max(local_acks) < first_new

    # Healed, the old leader rejoins as a standby of the new one.
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    assert cluster.leader() == new
    writer.stop()
    writer.assert_no_split_brain()
    before = [w[1] for w in writer.acked_on(leader) if w[1] <= mark]
    rows = cluster.nodes[new].sql("SELECT id FROM sb_writes WHERE id = ANY(%s)", (before,))
    assert {r[0] for r in rows} == set(before)
    assert "pg_basebackup started" not in old.log().split("took the leader key")[-1]
