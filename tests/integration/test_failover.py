"""Automatic failover: node death, PostgreSQL crash, freeze (conftest.frozen),
etcd outage, divergent timelines. Every test runs a writer against every member
and checks that no two members accepted writes in overlapping windows, that
exactly one member is primary afterwards with all others streaming from it,
and that every write acknowledged before the fault that had reached the
standbys is on the new leader."""
import os
import signal
import time

import pytest

from conftest import Writer, frozen, pg_pid, replicated_checkpoint, signal_instance, wait_until


def start3(cluster, extra=None):
    for n in ("n1", "n2", "n3"):
        cluster.add(n, extra).start()
    return cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)


def ids_on(node, ids):
    rows = node.sql("SELECT id FROM sb_writes WHERE id = ANY(%s)", (list(ids),))
    return {r[0] for r in rows}


def check_after(cluster, writer, old_leader, mark, new_leader):
    """The common end-of-test checks."""
    # Let the new leader take writes for a moment, then stop the writer.
    wait_until("writes on the new leader", lambda: writer.acked_on(new_leader), timeout=30)
    time.sleep(1)
    writer.stop()
    writer.assert_no_split_brain()
    # Exactly one primary; the others stream from it.
    prim = [n for n, node in cluster.nodes.items()
            if node.proc.poll() is None and node.sql("SELECT NOT pg_is_in_recovery()")[0][0]]
    assert prim == [new_leader], prim
    # Every write acknowledged by the old leader that had reached the standbys survived.
    before = [w[1] for w in writer.acked_on(old_leader) if w[1] <= mark]
    assert before, "the writer got no acknowledged write before the fault"
    missing = set(before) - ids_on(cluster.nodes[new_leader], before)
    assert not missing, f"lost acknowledged writes: {sorted(missing)[:10]}"


def kill_group(pid, sig):
    signal_instance(pid, sig)


def test_node_death_fails_over_and_old_leader_rejoins(cluster):
    leader = start3(cluster)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    mark = replicated_checkpoint(cluster, writer, leader)
    old = cluster.nodes[leader]
    pid = pg_pid(old)
    # Node death: the agent and PostgreSQL die together.
    old.proc.send_signal(signal.SIGKILL)
    kill_group(pid, signal.SIGKILL)
    old.proc.wait(10)
    t0 = time.monotonic()
    others = [n for n in cluster.nodes if n != leader]
    new = cluster_wait_new_leader(cluster, leader, others, timeout=60)
    print(f"node death: new leader {new} after {time.monotonic() - t0:.1f}s")
    check_after_restart(cluster, writer, leader, mark, new)


def cluster_wait_new_leader(cluster, old, candidates, timeout):
    def ok():
        v = cluster.view()
        ms = {m["name"]: m for m in v["members"]}
        lead = v.get("leader")
        if lead in candidates and ms.get(lead, {}).get("role") == "primary" and ms[lead]["state"] == "running":
            return lead
        return None
    return wait_until("a new leader", ok, timeout=timeout)


def check_after_restart(cluster, writer, old_leader, mark, new):
    """Bring the dead node back (same data directory) and run the checks."""
    node = cluster.nodes[old_leader]
    log_before = len(node.log())
    node.start()
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    check_after(cluster, writer, old_leader, mark, new)
    new_log = node.log()[log_before:]
    assert "pg_basebackup started" not in new_log, "the old leader was re-cloned"


def test_postgres_crash_on_leader(cluster):
    leader = start3(cluster)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    mark = replicated_checkpoint(cluster, writer, leader)
    node = cluster.nodes[leader]
    os.kill(pg_pid(node), signal.SIGKILL)     # the postmaster only; the agent lives
    wait_until("PostgreSQL back or a new leader",
               lambda: cluster.wait_streaming(list(cluster.nodes), timeout=60), timeout=90)
    new = cluster.leader()
    assert "PostgreSQL exited unexpectedly" in node.log()
    check_after(cluster, writer, leader, mark, new)


def test_frozen_leader_comes_back_as_standby(cluster):
    leader = start3(cluster)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    mark = replicated_checkpoint(cluster, writer, leader)
    node = cluster.nodes[leader]
    # The agent and PostgreSQL resume together, as after a real pause (conftest.frozen says why).
    with frozen(node) as how:
        others = [n for n in cluster.nodes if n != leader]
        new = cluster_wait_new_leader(cluster, leader, others, timeout=60)
        time.sleep(2)   # the new leader takes writes while the old one is frozen
    print(f"{leader} frozen and resumed ({how})")
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    assert cluster.leader() == new
    assert "fence" in node.log()
    check_after(cluster, writer, leader, mark, new)


def test_etcd_outage_primary_keeps_writing_with_failsafe(cluster):
    leader = start3(cluster)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    ttl = 9
    cluster.etcd.stop()
    t_stop = time.monotonic()
    try:
        node = cluster.nodes[leader]
        wait_until("failsafe mode", lambda: node.api("/status")[1].get("failsafe_active"), timeout=30)
        time.sleep(ttl + 3)
        # Still writing on the leader, well past the TTL, with etcd down.
        recent = [w for w in writer.acked_on(leader) if w[3] > t_stop + ttl]
        assert recent, "the primary stopped accepting writes while etcd was down"
        for name, n in cluster.nodes.items():
            if name != leader:
                assert n.sql("SELECT pg_is_in_recovery()")[0][0], f"{name} was promoted without etcd"
        assert "staying primary" in node.log()
    finally:
        cluster.etcd.start()
    cluster.wait_streaming(list(cluster.nodes), timeout=60)
    assert cluster.leader() == leader
    writer.stop()
    writer.assert_no_split_brain()


def test_divergent_old_primary_rejoins_with_pg_rewind(cluster):
    leader = start3(cluster)
    ln = cluster.nodes[leader]
    ln.sql("CREATE TABLE base AS SELECT 1 AS x")
    standbys = [n for n in cluster.nodes if n != leader]
    wait_until("base row replicated",
               lambda: all(cluster.nodes[s].sql("SELECT count(*) FROM pg_tables WHERE tablename = 'base'")[0][0]
                           for s in standbys), timeout=30)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    mark = replicated_checkpoint(cluster, writer, leader)
    # Freeze the leader's WAL senders so the next writes exist only on the leader.
    senders = [r[0] for r in ln.sql("SELECT pid FROM pg_stat_replication")]
    assert len(senders) == 2
    for pid in senders:
        os.kill(pid, signal.SIGSTOP)
    ln.sql("CREATE TABLE only_on_old AS SELECT generate_series(1, 1000) AS x")
    pid = pg_pid(ln)
    ln.proc.send_signal(signal.SIGKILL)
    kill_group(pid, signal.SIGKILL)     # the frozen senders die with it, their WAL unsent
    ln.proc.wait(10)
    new = cluster_wait_new_leader(cluster, leader, standbys, timeout=60)
    assert cluster.nodes[new].sql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_on_old'")[0][0] == 0
    new_tl = cluster.members()[new]["timeline"]
    assert new_tl >= 2
    log_before = len(ln.log())
    ln.start()
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    log = ln.log()[log_before:]
    assert "pg_rewind finished" in log, log[-3000:]
    assert "pg_basebackup started" not in log
    # The old primary now has the new leader's history: the diverged table is gone.
    assert ln.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_on_old'")[0][0] == 0
    assert ln.sql("SELECT x FROM base") == [(1,)]
    assert cluster.members()[leader]["timeline"] == new_tl
    check_after(cluster, writer, leader, mark, new)


def test_nofailover_standby_is_never_promoted(cluster):
    cluster.add("p1").start()
    cluster.wait_streaming(["p1"], timeout=120)
    cluster.add("s1", {"node.nofailover": "on"}).start()
    cluster.wait_streaming(["p1", "s1"], timeout=120)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on("p1"), timeout=10)
    p = cluster.nodes["p1"]
    pid = pg_pid(p)
    p.proc.send_signal(signal.SIGKILL)
    kill_group(pid, signal.SIGKILL)
    p.proc.wait(10)
    time.sleep(15)   # longer than the TTL
    assert cluster.leader() is None
    s = cluster.nodes["s1"]
    assert s.sql("SELECT pg_is_in_recovery()")[0][0]
    assert "may not be promoted" in s.log()
    writer.stop()
    assert not writer.acked_on("s1")
    writer.assert_no_split_brain()


def test_pause_blocks_failover_and_resume_restores_it(cluster):
    leader = start3(cluster)
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    r = cluster.ctl("pause", "--force")
    assert "Maintenance mode on" in r.stdout
    assert "Maintenance mode: on" in cluster.ctl("list").stdout
    assert cluster.view()["paused"] is True
    node = cluster.nodes[leader]
    pid = pg_pid(node)
    kill_group(pid, signal.SIGSTOP)
    node.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(14)   # the lease expires, but nobody takes over
        v = cluster.view()
        assert v.get("leader") in (None, leader)
        for name, n in cluster.nodes.items():
            if name != leader:
                assert n.sql("SELECT pg_is_in_recovery()")[0][0]
    finally:
        kill_group(pid, signal.SIGCONT)
        node.proc.send_signal(signal.SIGCONT)
    # Paused, the old primary keeps running and takes its key back.
    wait_until("the old leader back", lambda: cluster.leader() == leader, timeout=30)
    assert node.sql("SELECT NOT pg_is_in_recovery()")[0][0]
    assert "Maintenance mode off" in cluster.ctl("resume", "--force").stdout
    assert cluster.view()["paused"] is False
    cluster.wait_streaming(list(cluster.nodes), timeout=60)
    assert cluster.leader() == leader
    writer.stop()
    assert set(w[0] for w in writer.acked) == {leader}
    writer.assert_no_split_brain()


def test_ctl_failover_to_a_standby_and_refusals(cluster):
    leader = start3(cluster)
    target = next(n for n in cluster.nodes if n != leader)
    r = cluster.ctl("failover", "--to", leader, "--force", check=False)
    assert r.returncode != 0 and "already the leader" in r.stderr
    r = cluster.ctl("failover", "--to", "nobody", "--force", check=False)
    assert r.returncode != 0 and "not a member" in r.stderr
    r = cluster.ctl("failover", "--to", target, check=False)   # no terminal, no --force
    assert r.returncode != 0 and "--force" in r.stderr
    writer = Writer(cluster).start()
    wait_until("first writes", lambda: writer.acked_on(leader), timeout=10)
    mark = replicated_checkpoint(cluster, writer, leader)
    r = cluster.ctl("failover", "--to", target, "--force", "--wait", "60")
    assert f"{target} is the leader" in r.stdout, r.stdout + r.stderr
    cluster.wait_streaming(list(cluster.nodes), timeout=90)
    assert cluster.leader() == target
    check_after(cluster, writer, leader, mark, target)
    assert cluster.view()["pending_failover"] is None
