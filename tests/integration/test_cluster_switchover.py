"""`pgha ctl switchover-cluster`: a planned swap of a primary cluster and its standby cluster, there
and back, under write load, with no re-clone.

Two clusters, each with its own etcd: east (e1, e2) and west (w1, w2). Both name the other's members
in [standby_cluster] primary_hosts and keep a slot for the other ([cluster] standby_slots); east
starts primary (its promoted key is written before it bootstraps), west bootstraps as its standby
cluster. The tests run in order on the one pair (module-scoped)."""
import json
import os
import pty
import signal
import subprocess
import time

import psycopg
import pytest

from conftest import PGHA_BIN, leader_with_role as leader_in, AckWriter, Cluster, Etcd, Proxy, etcdctl, shared_base, \
    wait_until


def hosts(cluster):
    return ",".join(f"127.0.0.1:{n.pg_port}" for n in cluster.nodes.values())


def ctl_c(node, *args, timeout=120):
    return subprocess.run([PGHA_BIN, "ctl", "-c", node.conf_path, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def streams_from(node, upstream):
    rows = node.sql("SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return bool(rows) and rows[0][0] == upstream.pg_port


def data_dir_id(node):
    """The data directory's inode: a re-clone moves it aside and makes a new one."""
    return os.stat(node.data_dir).st_ino


@pytest.fixture(scope="module")
def pair(request):
    with shared_base(request) as base:
        base_e, base_w = os.path.join(base, "east"), os.path.join(base, "west")
        for d in (base_e, base_w):
            os.makedirs(d)
            os.chmod(d, 0o755)
        etcd_e = Etcd(base_e).start()
        etcd_w = Etcd(base_w).start()
        east = Cluster(base_e, etcd_e, name="east")
        west = Cluster(base_w, etcd_w, name="west")
        west.su_pw, west.repl_pw, west.su_pw_file, west.repl_pw_file = \
            east.su_pw, east.repl_pw, east.su_pw_file, east.repl_pw_file
        try:
            for n in ("e1", "e2"):
                east.add(n)
            for n in ("w1", "w2"):
                west.add(n)
            # Symmetric: each names the other's members and keeps the other's slot.
            for mine, other, me in ((east, west, "east"), (west, east, "west")):
                for node in mine.nodes.values():
                    node.extra = {"standby_cluster.primary_hosts": hosts(other),
                                  "standby_cluster.primary_slot_name": f"{me}_standby",
                                  "cluster.standby_slots": f"{other.name}_standby"}
                    node.write_conf(node.extra)
            # East starts as the primary cluster: its promoted key before it bootstraps.
            r = ctl_c(east.nodes["e1"], "promote-cluster", "--force")
            assert r.returncode == 0, r.stderr
            for n in east.nodes.values():
                n.start()
            east.wait_streaming(list(east.nodes), timeout=120)
            for n in west.nodes.values():
                n.start()
            leader_in(west, "replica")
            wait_until("west's members streaming", lambda: all(
                m["state"] == "streaming" for m in west.view()["members"]) and len(west.view()["members"]) == 2,
                timeout=180)
            lead = east.nodes[east.leader()]
            lead.sql("CREATE TABLE sw (id bigserial PRIMARY KEY, who text, at timestamptz DEFAULT now())")
            # A proxy per region: each sends writes to whichever cluster is primary.
            for mine, other in ((east, west), (west, east)):
                mine.proxy = Proxy(mine, {"proxy.primary_hosts": hosts(other), "proxy.standby_writes": "forward"},
                                   name=f"proxy-{mine.name}").start()
            yield east, west
        finally:
            for c in (west, east):
                if getattr(c, "proxy", None) is not None:
                    c.proxy.stop()
            west.stop_all()
            east.stop_all()
            etcd_w.stop()
            etcd_e.stop()


def switch(frm, to, from_node, to_node):
    """switchover-cluster from frm to to, checked; returns its --json output."""
    old_lead = frm.nodes[frm.leader()]
    new_lead = leader_in(to, "replica")
    wait_until(f"{to.name}'s standby leader to publish that it streams",
               lambda: to.members()[new_lead.name]["state"] == "streaming", timeout=60)
    inodes = {n.name: data_dir_id(n) for c in (frm, to) for n in c.nodes.values()}
    t0 = time.monotonic()
    r = ctl_c(from_node, "switchover-cluster", "--to", to_node.conf_path, "--force", "--json")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["from"] == frm.name and out["to"] == to.name, out
    print(f"switchover-cluster {frm.name} -> {to.name}: {took:.2f}s, phases (ms from the start) {out['ms']}")
    # The new cluster's leader is the standby leader that was, now primary; the old leader a standby.
    assert new_lead.sql("SELECT pg_is_in_recovery()")[0][0] is False
    assert old_lead.sql("SELECT pg_is_in_recovery()")[0][0] is True
    assert etcdctl(frm, "get", f"/pgha/{frm.name}/promoted", "--print-value-only").strip() == ""
    assert etcdctl(to, "get", f"/pgha/{to.name}/promoted", "--print-value-only").strip() != ""
    # The old primary cluster follows the new one without a re-clone: the same data directories.
    wait_until(f"{old_lead.name} to stream from {new_lead.name}", lambda: streams_from(old_lead, new_lead),
               timeout=60)
    for c in (frm, to):
        for n in c.nodes.values():
            assert data_dir_id(n) == inodes[n.name], f"{n.name} was re-cloned"
            assert "moving the data directory aside" not in n.log()
    # Both records say done.
    for c in (frm, to):
        rec = json.loads(etcdctl(c, "get", f"/pgha/{c.name}/switchover", "--print-value-only"))
        assert rec["kind"] == "cluster" and rec["phase"] == "done", rec
    return out, old_lead, new_lead


def all_rows(node):
    return {r[0] for r in node.sql("SELECT who FROM sw")}


def test_switchover_there_and_back_no_commit_lost(pair):
    east, west = pair

    def to_east_leader():
        lead = east.nodes[east.leader()]
        return psycopg.connect(host="127.0.0.1", port=lead.pg_port, user="postgres", password=east.su_pw,
                               dbname="postgres", connect_timeout=5)

    with AckWriter("w", to_east_leader) as w:
        time.sleep(1)
        out, old, new = switch(east, west, east.nodes["e1"], west.nodes["w1"])
        n_before = len(w.acked)
    # Every write the old leader acknowledged is on the new primary.
    rows = all_rows(new)
    lost = [t for t in w.acked[:n_before] if t not in rows and t in set(w.acked)]
    assert not lost, f"{len(lost)} acknowledged rows lost: {lost[:5]}"
    # West takes writes; east's members get them.
    new.sql("INSERT INTO sw (who) VALUES ('on-west')")
    for n in east.nodes.values():
        wait_until(f"on-west on {n.name}", lambda n=n: "on-west" in all_rows(n), timeout=60)
    # ... and back.
    out2, old2, new2 = switch(west, east, west.nodes["w1"], east.nodes["e1"])
    new2.sql("INSERT INTO sw (who) VALUES ('back-on-east')")
    for n in west.nodes.values():
        wait_until(f"back-on-east on {n.name}", lambda n=n: "back-on-east" in all_rows(n), timeout=60)
    assert "on-west" in all_rows(new2)
    # ctl list of each says which is which.
    assert "Standby cluster of" in west.ctl("list").stdout
    assert "Standby cluster of" not in east.ctl("list").stdout


def test_switchover_there_and_back_through_both_proxies(pair):
    """Clients of both regions' proxies write all the time while the primary moves to west and back:
    they see a pause, not one error, and every acknowledged write is on the final primary."""
    east, west = pair
    # West's proxy forwards to where west's standby leader streams from: wait until it does (just
    # after the last test's switch back its walreceiver may still be reconnecting).
    w_lead = leader_in(west, "replica")
    wait_until("west's standby leader to publish its source", lambda: west.members()[w_lead.name].get("source"),
               timeout=60)

    def via(cluster):
        return lambda: cluster.proxy.connect()
    with AckWriter("pe", via(east)) as we, AckWriter("pw", via(west)) as ww:
        wait_until("both proxies' writers", lambda: len(we.acked) > 20 and len(ww.acked) > 20, timeout=60)
        switch(east, west, east.nodes["e1"], west.nodes["w1"])
        n_e, n_w = len(we.acked), len(ww.acked)
        wait_until("writes after the switch through both proxies",
                   lambda: len(we.acked) > n_e + 20 and len(ww.acked) > n_w + 20, timeout=60)
        switch(west, east, west.nodes["w1"], east.nodes["e1"])
        n_e, n_w = len(we.acked), len(ww.acked)
        wait_until("writes after the switch back through both proxies",
                   lambda: len(we.acked) > n_e + 20 and len(ww.acked) > n_w + 20, timeout=60)
    print(f"through the proxies: east's clients {len(we.acked)} writes, longest gap {we.max_gap:.2f} s; "
          f"west's {len(ww.acked)}, longest gap {ww.max_gap:.2f} s")
    assert we.errors == [] and ww.errors == [], (we.errors[:5], ww.errors[:5])
    have = all_rows(leader_in(east, "primary"))
    lost = [t for t in we.acked + ww.acked if t not in have]
    assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:5]}"


def test_refused_the_wrong_way_and_bad_input(pair):
    east, west = pair
    w_lead = leader_in(west, "replica")
    wait_until("west's standby leader to publish that it streams",
               lambda: west.members()[w_lead.name]["state"] == "streaming", timeout=60)
    # West is the standby cluster now: asking it to hand over is refused, with the way round.
    r = ctl_c(west.nodes["w1"], "switchover-cluster", "--to", east.nodes["e1"].conf_path, "--force")
    assert r.returncode != 0
    assert "is not the primary one" in r.stderr and "HINT: run it the other way" in r.stderr, r.stderr
    # The same cluster twice.
    r = ctl_c(east.nodes["e1"], "switchover-cluster", "--to", east.nodes["e2"].conf_path, "--force")
    assert r.returncode != 0 and "members of the same cluster" in r.stderr, r.stderr
    # Both clusters in one listing, each from its own etcd.
    r = ctl_c(east.nodes["e1"], "list", "--also", west.nodes["w1"].conf_path)
    assert r.returncode == 0, r.stderr
    assert "east" in r.stdout and "west" in r.stdout and "Standby cluster of" in r.stdout, r.stdout
    assert r.stdout.index("Standby cluster of") > r.stdout.index("e1"), r.stdout
    r = ctl_c(east.nodes["e1"], "list", "--json", "--also", west.nodes["w1"].conf_path)
    both = json.loads(r.stdout)
    assert [c["cluster"] for c in both] == ["east", "west"], both
    r = ctl_c(east.nodes["e1"], "list", "--also", "/nonexistent.conf")
    assert r.returncode == 1 and "--also /nonexistent.conf" in r.stderr, r.stderr
    # No --to.
    r = ctl_c(east.nodes["e1"], "switchover-cluster")
    assert r.returncode == 2 and "needs a member config of each cluster" in r.stderr, r.stderr
    # Without a terminal and without --force: refused before anything moves.
    r = ctl_c(east.nodes["e1"], "switchover-cluster", "--to", west.nodes["w1"].conf_path)
    assert r.returncode != 0 and "add --force" in r.stderr, r.stderr
    assert east.nodes[east.leader()].sql("SELECT pg_is_in_recovery()")[0][0] is False


def ctl_tty(node, *args, answer="y\n"):
    """pgha ctl -c NODE.conf ARGS on a terminal that types answer (the confirmation)."""
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        return subprocess.run([PGHA_BIN, "ctl", "-c", node.conf_path, *args], capture_output=True, text=True,
                              timeout=120, stdin=slave)
    finally:
        os.close(master)
        os.close(slave)


def test_lost_region_promote_then_heal_without_reclone(pair):
    """East (primary) takes writes west never receives; east's region is lost; west is promoted; east
    comes back: `demote-cluster` makes it follow west, rewound (its extra writes discarded), not
    re-cloned."""
    east, west = pair
    e_lead = leader_in(east, "primary")
    w_lead = leader_in(west, "replica")
    wait_until(f"{w_lead.name} streaming from {e_lead.name}", lambda: streams_from(w_lead, e_lead), timeout=60)
    e_lead.sql("INSERT INTO sw (who) VALUES ('before-cut')")
    wait_until("before-cut on west", lambda: "before-cut" in all_rows(w_lead), timeout=30)
    inodes = {n.name: data_dir_id(n) for c in (east, west) for n in c.nodes.values()}
    # West stops receiving (its walreceiver frozen): what east acknowledges now never reaches west.
    receiver = w_lead.sql("SELECT pid FROM pg_stat_wal_receiver")[0][0]
    os.kill(receiver, signal.SIGSTOP)
    try:
        for i in range(20):
            e_lead.sql("INSERT INTO sw (who) VALUES (%s)", (f"only-east-{i}",))
        # East's region is lost (its agents stop, and with them PostgreSQL).
        east.stop_all()
    finally:
        os.kill(receiver, signal.SIGCONT)
    assert "only-east-0" not in all_rows(w_lead)
    # West is promoted by the operator.
    r = ctl_tty(w_lead, "promote-cluster")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until("west's leader to promote", lambda: w_lead.sql("SELECT pg_is_in_recovery()")[0][0] is False,
               timeout=60)
    w_lead.sql("INSERT INTO sw (who) VALUES ('west-after-promotion')")
    # The operator makes east follow west before its region comes back (west runs a primary: allowed).
    r = ctl_tty(e_lead, "demote-cluster")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is a standby cluster of" in r.stdout, r.stdout
    # East's region comes back.
    t0 = time.monotonic()
    for n in east.nodes.values():
        n.start()
    for n in east.nodes.values():
        wait_until(f"west-after-promotion on {n.name}", lambda n=n: "west-after-promotion" in all_rows(n),
                   timeout=180)
    print(f"east follows west {time.monotonic() - t0:.1f}s after its agents started")
    for n in east.nodes.values():
        rows = all_rows(n)
        assert "before-cut" in rows
        assert not any(r.startswith("only-east-") for r in rows), f"{n.name} kept writes west never got"
        assert n.sql("SELECT pg_is_in_recovery()")[0][0] is True
        assert data_dir_id(n) == inodes[n.name], f"{n.name} was re-cloned"
        assert "moving the data directory aside" not in n.log()
    assert any("rewinding the data directory against the primary cluster" in n.log() for n in east.nodes.values())
    # Demoting again is refused: east is a standby cluster already.
    r = ctl_tty(e_lead, "demote-cluster")
    assert r.returncode != 0 and "is a standby cluster already" in r.stderr, r.stderr
    # West demoted without another primary: refused, with the way out.
    r = ctl_tty(w_lead, "demote-cluster", "--json")
    assert r.returncode != 0, r.stdout
    assert "no host of" in r.stderr and "HINT: promote the other cluster first" in r.stderr, r.stderr
