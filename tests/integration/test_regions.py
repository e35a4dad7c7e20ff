"""One cluster over two regions (issue 14, docs/TWO_REGIONS.md). Four members, each in a network
namespace of its own: n3 and n4 in region a, on the bridge whose own address runs etcd (the third
site: neither region's loss takes it); n1 and n2 in region b, on a second bridge joined to the
first by a wire that holds every frame 10 ms each way (conftest.DelayedWire; this kernel has no tc
netem): a <-> b and b <-> etcd 20 ms round trip. Cutting region a's veths takes region a away
from etcd and from region b at once.

The names are chosen so that the old rules (priority, then the lower name) would pick region b:
n1 also has the highest priority. Region a holds the first leader, n3."""
import signal
import time

import pytest

from conftest import Cluster, Etcd, Net, Writer, make_base_dir, pg_pid, signal_instance, wait_until

REGION = {"n3": "a", "n4": "a", "n1": "b", "n2": "b"}
DELAY_MS = 10


@pytest.fixture(scope="module")
def regions():
    net = Net(list(REGION), far=[n for n, r in REGION.items() if r == "b"], far_ms=DELAY_MS)
    base = make_base_dir()
    etcd = Etcd(base, host=net.gw)
    cluster = Cluster(base, etcd)
    try:
        etcd.start()
        for name, region in REGION.items():
            ns, _, addr = net.members[name]
            extra = {"postgresql.allowed_networks": f"10.213.{net.subnet}.0/24,127.0.0.1/32",
                     "node.region": region, "node.zone": f"{region}-1"}
            if name == "n1":
                extra["node.priority"] = "200"
            cluster.add(name, extra, host=addr, netns=ns)
        cluster.nodes["n3"].start()
        wait_until("n3 to lead", lambda: cluster.leader() == "n3", timeout=120)
        for name in ("n4", "n1", "n2"):
            cluster.nodes[name].start()
        cluster.wait_streaming(list(REGION), timeout=240)
        yield net, cluster
    finally:
        for node in cluster.nodes.values():
            if node.proc and node.proc.poll() is None:
                node.stop()
        etcd.stop()
        net.destroy()


def kill_node(node):
    """Node death: the agent and the whole PostgreSQL instance, SIGKILL."""
    pid = pg_pid(node)
    node.proc.send_signal(signal.SIGKILL)
    signal_instance(pid, signal.SIGKILL)
    node.proc.wait(10)


def new_leader(cluster, among):
    v = cluster.view()
    ms = {m["name"]: m for m in v["members"]}
    lead = v.get("leader")
    if lead in among and ms[lead]["role"] == "primary" and ms[lead]["state"] == "running":
        return lead
    return None


def test_members_show_their_region(regions):
    _, cluster = regions
    table = cluster.ctl("list").stdout
    assert "REGION" in table.splitlines()[1]
    for name, region in REGION.items():
        line = next(x for x in table.splitlines() if x.startswith(name + " "))
        assert f" {region}/{region}-1 " in line, table
    tags = cluster.members()["n1"]["tags"]
    assert tags["region"] == "b" and tags["zone"] == "b-1" and tags["priority"] == 200


def test_failover_prefers_a_candidate_in_the_leaders_region(regions):
    """n3 dies with every standby as far along as it: n4 (region a) takes over, not n1, which has
    the higher priority and the lower name but is in region b."""
    _, cluster = regions
    assert cluster.leader() == "n3"
    lead = cluster.nodes["n3"]
    lsn = lead.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    for name in ("n4", "n1", "n2"):
        node = cluster.nodes[name]
        wait_until(f"{name} to receive {lsn}", lambda: node.sql(
            "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,))[0][0], timeout=30)
    t0 = time.monotonic()
    kill_node(lead)
    got = wait_until("a new leader", lambda: new_leader(cluster, ("n4", "n1", "n2")), timeout=90)
    print(f"leader n3 (region a) killed: new leader {got} after {time.monotonic() - t0:.1f} s")
    assert got == "n4", f"{got} took over; n4 is as far along and in the old leader's region"
    # The old leader comes back as a standby.
    lead.start()
    cluster.wait_streaming(list(REGION), timeout=180)
    assert cluster.leader() == "n4"


def test_cross_region_sync_loses_no_commit_with_the_leaders_region(regions):
    """synchronous_cross_region: the synchronous standby is in region b. Region a (the leader n4 and
    n3) is cut off while writes go on: region b promotes its synchronous standby and has every
    acknowledged commit. Healed, region a's members come back as standbys."""
    net, cluster = regions
    assert cluster.leader() == "n4"
    cluster.ctl("set", "synchronous_mode=on", "synchronous_cross_region=true", "--force")

    def sync_in_b():
        s = cluster.view().get("sync")
        rows = cluster.nodes["n4"].sql("SELECT application_name, sync_state FROM pg_stat_replication")
        states = dict(rows)
        if s and s["leader"] == "n4" and len(s["sync_standby"]) == 1 and \
                REGION[s["sync_standby"][0]] == "b" and states.get(s["sync_standby"][0]) == "sync":
            return s["sync_standby"][0]
        return None
    standby = wait_until("a synchronous standby in region b", sync_in_b, timeout=60)
    writer = Writer(cluster).start()
    wait_until("writes", lambda: len(writer.acked_on("n4")) > 50, timeout=30)
    lag = {m["name"]: m.get("lag_bytes") for m in cluster.view()["members"]}
    t_cut = time.monotonic()
    net.cut("n4")
    net.cut("n3")
    try:
        got = wait_until("a leader in region b", lambda: new_leader(cluster, ("n1", "n2")), timeout=90)
        t_leader = time.monotonic() - t_cut
        wait_until("writes on the new leader", lambda: writer.acked_on(got), timeout=30)
        first = min(w[3] for w in writer.acked_on(got)) - t_cut
    finally:
        net.heal("n4")
        net.heal("n3")
    print(f"region a cut: {standby}'s lag at the cut {lag.get(standby)} bytes (as last published); "
          f"new leader {got} after {t_leader:.1f} s, first write acknowledged there {first:.1f} s after the cut")
    assert got == standby, f"{got} took over; only {standby} was synchronous"
    cluster.wait_streaming(list(REGION), timeout=240)
    writer.stop()
    writer.assert_no_split_brain()
    acked = [w[1] for w in writer.acked_on("n4")]
    rows = cluster.nodes[got].sql("SELECT id FROM sb_writes WHERE id = ANY(%s)", (acked,))
    missing = set(acked) - {r[0] for r in rows}
    assert not missing, f"{len(missing)} acknowledged commits lost with region a: {sorted(missing)[:10]}"
    assert len(acked) > 50
