"""A standby cluster per region (issue 14, docs/TWO_REGIONS.md), over network namespaces: east (e1,
e2) on the bridge whose own address runs both etcds; west (w1, w2) on a second bridge joined to the
first by a wire that holds every frame 10 ms each way (conftest.DelayedWire; no tc netem here):
20 ms round trip between the regions. Each cluster has its own etcd (both on the host, which a cut
between the regions leaves reachable from both: the cut is between the members' namespaces).

Both clusters name the other's members in [standby_cluster]; east starts primary. In order: the
region cut leaves west serving reads and not promoting by itself; the operator in west promotes it
(RTO measured from the cut, RPO = what west lacked at the cut); healed, east (which went on taking
its local writes) is demoted and follows west, rewound, not re-cloned; then planned
switchover-cluster there and back over the 20 ms link with clients writing through both regions'
proxies: no client error, no acknowledged write lost."""
import json
import os
import pty
import subprocess
import time

import pytest

from conftest import PGHA_BIN, leader_with_role as leader_in, AckWriter, Cluster, Etcd, Net, Proxy, etcdctl, ip, \
    make_base_dir, wait_until

REGION = {"e1": "east", "e2": "east", "w1": "west", "w2": "west"}
DELAY_MS = 10


def ctl_in(node, *args, answer=None, netns=True, timeout=120):
    """pgha ctl -c NODE.conf ARGS, run inside the node's namespace (where its operator sits), on a
    terminal that types answer when given."""
    cmd = (["ip", "netns", "exec", node.netns] if netns else []) + [PGHA_BIN, "ctl", "-c", node.conf_path, *args]
    if answer is None:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=slave)
    finally:
        os.close(master)
        os.close(slave)


def in_recovery(node):
    return node.sql("SELECT pg_is_in_recovery()")[0][0]


def rows(node):
    return {r[0] for r in node.sql("SELECT who FROM rg")}


def data_dir_id(node):
    return os.stat(node.data_dir).st_ino


class Cut:
    """No route between the regions' members (each namespace gets an unreachable route to every
    member of the other region: connects fail at once with "No route to host", as a lost link
    does after its timeouts). The host, where both etcds and the operator's ctl may run, still
    reaches everyone."""

    def __init__(self, net):
        self.net = net

    def _routes(self, verb):
        for a, ra in REGION.items():
            for b, rb in REGION.items():
                if ra != rb:
                    ip("-n", self.net.members[a][0], "route", verb, "unreachable", f"{self.net.members[b][2]}/32",
                       check=verb == "add")

    def __enter__(self):
        self._routes("add")
        return self

    def __exit__(self, *exc):
        self._routes("del")


@pytest.fixture(scope="module")
def regions():
    net = Net(list(REGION), far=[n for n, r in REGION.items() if r == "west"], far_ms=DELAY_MS)
    base = make_base_dir()
    base_e, base_w = os.path.join(base, "east"), os.path.join(base, "west")
    for d in (base_e, base_w):
        os.makedirs(d)
        os.chmod(d, 0o755)
    etcd_e, etcd_w = Etcd(base_e, host=net.gw), Etcd(base_w, host=net.gw)
    east, west = Cluster(base_e, etcd_e, name="east"), Cluster(base_w, etcd_w, name="west")
    west.su_pw, west.repl_pw, west.su_pw_file, west.repl_pw_file = \
        east.su_pw, east.repl_pw, east.su_pw_file, east.repl_pw_file
    try:
        etcd_e.start()
        etcd_w.start()
        for name, region in REGION.items():
            ns, _, addr = net.members[name]
            (east if region == "east" else west).add(name, host=addr, netns=ns)
        for mine, other in ((east, west), (west, east)):
            for node in mine.nodes.values():
                node.extra = {
                    "postgresql.allowed_networks": f"10.213.{net.subnet}.0/24,127.0.0.1/32",
                    "node.region": mine.name,
                    "standby_cluster.primary_hosts": ",".join(f"{n.host}:{n.pg_port}" for n in other.nodes.values()),
                    "standby_cluster.primary_slot_name": f"{mine.name}_standby",
                    "cluster.standby_slots": f"{other.name}_standby"}
                node.write_conf(node.extra)
        r = ctl_in(east.nodes["e1"], "promote-cluster", "--force", netns=False)
        assert r.returncode == 0, r.stderr
        for n in east.nodes.values():
            n.start()
        east.wait_streaming(list(east.nodes), timeout=180)
        for n in west.nodes.values():
            n.start()
        leader_in(west, "replica", timeout=180)
        wait_until("west's members streaming", lambda: len(west.view()["members"]) == 2 and all(
            m["state"] == "streaming" for m in west.view()["members"]), timeout=240)
        leader_in(east, "primary").sql("CREATE TABLE rg (id bigserial PRIMARY KEY, who text)")
        yield net, east, west
    finally:
        for c in (west, east):
            for node in c.nodes.values():
                if node.proc and node.proc.poll() is None:
                    node.stop()
        etcd_w.stop()
        etcd_e.stop()
        net.destroy()


def test_region_cut_then_promote_then_heal(regions):
    net, east, west = regions
    e_lead, w_lead = leader_in(east, "primary"), leader_in(west, "replica")
    w_other = west.nodes["w2" if w_lead.name == "w1" else "w1"]
    e_lead.sql("INSERT INTO rg (who) VALUES ('before-cut')")
    wait_until("before-cut in west", lambda: "before-cut" in rows(w_other), timeout=60)
    inodes = {n.name: data_dir_id(n) for c in (east, west) for n in c.nodes.values()}
    # Writes go on in east all the time; the last one acknowledged before the cut, and what west
    # had then, give the RPO.
    for i in range(50):
        e_lead.sql("INSERT INTO rg (who) VALUES (%s)", (f"pre-{i}",))
    with Cut(net):
        t_cut = time.monotonic()
        east_lsn = e_lead.sql("SELECT pg_current_wal_lsn()::text")[0][0]
        west_lsn = w_lead.sql("SELECT pg_last_wal_receive_lsn()::text")[0][0]
        rpo = w_lead.sql("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", (east_lsn, west_lsn))[0][0]
        east_only = []
        for i in range(20):   # east's own clients go on writing during the cut
            e_lead.sql("INSERT INTO rg (who) VALUES (%s)", (f"east-during-cut-{i}",))
            east_only.append(f"east-during-cut-{i}")
        # West serves reads and does not promote by itself, over two TTLs.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for n in west.nodes.values():
                assert in_recovery(n), f"{n.name} promoted by itself"
                assert "before-cut" in rows(n)
            time.sleep(1)
        assert etcdctl(west, "get", "/pgha/west/promoted", "--print-value-only").strip() == ""
        # The operator in west promotes it (from west's side of the cut).
        t_op = time.monotonic()
        r = ctl_in(w_lead, "promote-cluster", answer="y\n")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_until("west's leader to take writes", lambda: not in_recovery(w_lead), timeout=60)
        w_lead.sql("INSERT INTO rg (who) VALUES ('west-after-promotion')")
        now = time.monotonic()
        print(f"region cut: RPO {rpo} bytes (west's received WAL behind east's at the cut); RTO {now - t_cut:.1f} s "
              f"from the cut to the first write on west (of which 20 s watching west not promote by itself), "
              f"{now - t_op:.1f} s from promote-cluster (its primary hosts asked from west's side of the cut)")
        assert rpo >= 0
    # Healed: east went on as a primary cluster. Its operator demotes it (west runs a primary).
    assert not in_recovery(e_lead)
    r = ctl_in(e_lead, "demote-cluster", answer="y\n")
    assert r.returncode == 0, r.stdout + r.stderr
    t0 = time.monotonic()
    for n in east.nodes.values():
        wait_until(f"west-after-promotion on {n.name}", lambda n=n: "west-after-promotion" in rows(n), timeout=180)
    print(f"healed: east follows west {time.monotonic() - t0:.1f} s after demote-cluster")
    for n in east.nodes.values():
        have = rows(n)
        assert in_recovery(n)
        assert "pre-49" in have or "pre-49" not in rows(w_lead)
        assert not any(x in have for x in east_only), f"{n.name} kept writes west never got"
        assert data_dir_id(n) == inodes[n.name], f"{n.name} was re-cloned"
        assert "moving the data directory aside" not in n.log()


def test_planned_switchover_there_and_back_through_both_proxies(regions):
    """A proxy per region (each forwards writes to whichever cluster is primary); clients write
    through both all the time while the primary moves to east over the 20 ms link and back to
    west: a pause, not one client error, nothing acknowledged lost."""
    net, east, west = regions
    proxies = []
    try:
        for mine, other in ((east, west), (west, east)):
            hosts = ",".join(f"{n.host}:{n.pg_port}" for n in other.nodes.values())
            proxies.append(Proxy(mine, {"proxy.primary_hosts": hosts, "proxy.standby_writes": "forward"},
                                 name=f"proxy-{mine.name}").start())
        p_east, p_west = proxies
        e_lead = leader_in(east, "replica")
        wait_until("east's standby leader to publish its source",
                   lambda: east.members()[e_lead.name].get("source"), timeout=120)
        figures = []
        with AckWriter("pe", p_east.connect, table="rg") as we, AckWriter("pw", p_west.connect, table="rg") as ww:
            wait_until("writes through both proxies", lambda: len(we.acked) > 10 and len(ww.acked) > 10, timeout=60)
            for frm, to in ((west, east), (east, west)):
                old, new = leader_in(frm, "primary"), leader_in(to, "replica")
                wait_until(f"{to.name}'s standby leader to publish its source",
                           lambda: to.members()[new.name].get("source"), timeout=120)
                r = ctl_in(old, "switchover-cluster", "--to", new.conf_path, "--force", "--json", netns=False)
                assert r.returncode == 0, r.stdout + r.stderr
                figures.append((frm.name, to.name, json.loads(r.stdout)["ms"]))
                assert not in_recovery(new) and in_recovery(old)
                n_e, n_w = len(we.acked), len(ww.acked)
                wait_until(f"writes through both proxies after the switch to {to.name}",
                           lambda: len(we.acked) > n_e + 10 and len(ww.acked) > n_w + 10, timeout=120)
        for frm, to, ms in figures:
            print(f"switchover-cluster {frm} -> {to} over 20 ms: phases (ms from the start) {ms}")
        print(f"through the proxies: east's clients {len(we.acked)} writes, longest gap {we.max_gap:.2f} s; "
              f"west's {len(ww.acked)}, longest gap {ww.max_gap:.2f} s")
        assert we.errors == [] and ww.errors == [], (we.errors[:5], ww.errors[:5])
        have = rows(leader_in(west, "primary"))
        lost = [t for t in we.acked + ww.acked if t not in have]
        assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:5]}"
        # East follows west again, without a re-clone, and gets the rows.
        for n in east.nodes.values():
            wait_until(f"the last rows on {n.name}", lambda n=n: ww.acked[-1] in rows(n), timeout=120)
    finally:
        for p in proxies:
            p.stop()
