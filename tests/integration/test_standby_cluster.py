"""A standby cluster ([standby_cluster] primary_hosts): cluster B, with its own etcd and agents,
replicates from cluster A. B bootstraps by cloning A; B's leader (the "standby leader") streams from
A's primary through one multi-host conninfo with target_session_attrs=read-write; B's other member
cascades from B's leader; B never takes writes; after a failover in A, B's standby leader finds A's
new primary on its own.

The tests run in order on one pair of clusters (module-scoped)."""
import json
import math
import os
import pty
import signal
import subprocess
import time
import urllib.request

import psycopg
import pytest

from conftest import PGHA_BIN, Cluster, Etcd, etcdctl, pg_pid, shared_base, signal_instance, wait_until


SLOT = "west_standby"


def slot_active(node):
    rows = node.sql("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
    return bool(rows and rows[0][0])


def pick_leader(cluster, names, role):
    """The key holder once it runs in role (primary, or replica for a standby leader)."""
    def ok():
        v = cluster.view()
        ms = {m["name"]: m for m in v["members"]}
        lead = v.get("leader")
        if lead in names and ms.get(lead, {}).get("role") == role and \
                ms[lead]["state"] in ("running", "streaming"):
            return lead
        return None
    return wait_until(f"a {role} leader of {cluster.name}", ok, timeout=120)


def wal_receiver_port(node):
    rows = node.sql("SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return rows[0][0] if rows else None


def wait_receiving_from(node, upstream, timeout=90):
    wait_until(f"{node.name} to stream from {upstream.name}",
               lambda: wal_receiver_port(node) == upstream.pg_port, timeout=timeout)


def wait_row(node, marker, timeout=60):
    wait_until(f"row {marker} on {node.name}",
               lambda: node.sql("SELECT count(*) FROM sc_rows WHERE m = %s", (marker,))[0][0] == 1,
               timeout=timeout)


@pytest.fixture(scope="module")
def pair(request):
    with shared_base(request) as base:
        base_a, base_b = os.path.join(base, "a"), os.path.join(base, "b")
        for d in (base_a, base_b):
            os.makedirs(d)
            os.chmod(d, 0o755)
        etcd_a, etcd_b = Etcd(base_a).start(), None
        a = Cluster(base_a, etcd_a, name="east")
        b = None
        try:
            for n in ("a1", "a2"):
                a.add(n, {"cluster.standby_slots": SLOT}).start()
            a.wait_streaming(["a1", "a2"], timeout=120)
            lead_a = a.leader()
            replica_a = "a2" if lead_a == "a1" else "a1"
            # A's replica first: only target_session_attrs makes B skip it.
            hosts = ",".join(f"127.0.0.1:{a.nodes[n].pg_port}" for n in (replica_a, lead_a))
            etcd_b = Etcd(base_b).start()
            b = Cluster(base_b, etcd_b, name="west")
            # Both clusters share the replication (and superuser) credentials.
            b.su_pw, b.repl_pw, b.su_pw_file, b.repl_pw_file = a.su_pw, a.repl_pw, a.su_pw_file, a.repl_pw_file
            extra = {"standby_cluster.primary_hosts": hosts, "standby_cluster.primary_slot_name": SLOT}
            t0 = time.monotonic()
            b.add("b1", extra).start()
            lead_b = pick_leader(b, ["b1"], "replica")
            b.add("b2", extra).start()
            print(f"standby cluster bootstrapped in {time.monotonic() - t0:.1f}s")
            yield a, b
        finally:
            if b is not None:
                b.stop_all()
            if etcd_b is not None:
                etcd_b.stop()
            a.stop_all()
            etcd_a.stop()


def test_bootstrap_by_cloning_and_streaming_chain(pair):
    a, b = pair
    lead_a = a.nodes[a.leader()]
    lead_b = b.nodes[pick_leader(b, ["b1", "b2"], "replica")]
    other_b = b.nodes["b2" if lead_b.name == "b1" else "b1"]
    # The same system: B is a copy of A, not an initdb of its own.
    sysid = lambda n: n.sql("SELECT system_identifier FROM pg_control_system()")[0][0]
    assert sysid(lead_b) == sysid(lead_a)
    assert str(sysid(lead_a)) == etcd_initialize(b)
    # B's leader streams from A's primary (not A's replica, listed first), B's other member from B's leader.
    wait_receiving_from(lead_b, lead_a)
    wait_receiving_from(other_b, lead_b, timeout=120)
    apps = [r[0] for r in lead_a.sql("SELECT application_name FROM pg_stat_replication")]
    assert lead_b.name in apps, apps
    # ... through the slot A's leader keeps for it ([cluster] standby_slots).
    wait_until("B's standby leader on A's slot", lambda: slot_active(lead_a), timeout=30)
    # ctl list says what B is.
    hosts = lead_b.extra["standby_cluster.primary_hosts"]
    out = b.ctl("list").stdout
    assert f"Standby cluster of: {hosts}; standby leader {lead_b.name}" in out, out
    assert any(line.startswith(lead_b.name) and "standby leader" in line for line in out.splitlines()), out
    assert "Standby cluster of" not in a.ctl("list").stdout
    # ... and where its standby leader streams from, how far behind (record, ctl list, /metrics).
    wait_source(b, lead_b, lead_a)
    def metric(node, name):
        with urllib.request.urlopen(f"{node.api_url()}/metrics", timeout=3) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + "{") or line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not on {node.name}'s /metrics")
    assert metric(lead_b, "pgha_standby_cluster_streaming") == 1
    assert metric(lead_b, "pgha_standby_cluster_source_lag_bytes") >= 0
    assert metric(lead_b, "pgha_standby_cluster_source_last_message_seconds") < 60
    assert math.isnan(metric(other_b, "pgha_standby_cluster_streaming"))
    lead_a.sql("CREATE TABLE sc_rows (m text)")
    lead_a.sql("INSERT INTO sc_rows VALUES ('first')")
    for n in (lead_b, other_b):
        wait_row(n, "first")


def wait_source(b, lead_b, upstream, timeout=60):
    """B's standby leader publishes upstream as its source, with a lag figure; ctl list shows it."""
    src = f"127.0.0.1:{upstream.pg_port}"
    def published():
        ms = {m["name"]: m for m in json.loads(b.ctl("list", "--json").stdout)["members"]}
        m = ms.get(lead_b.name, {})
        return m if m.get("source") == src and m.get("source_lag_bytes", -1) >= 0 else None
    m = wait_until(f"{lead_b.name} to publish its source {src}", published, timeout=timeout)
    assert 0 <= m["source_msg_age_ms"] < 60000, m
    # Only the standby leader carries it.
    for other in json.loads(b.ctl("list", "--json").stdout)["members"]:
        if other["name"] != lead_b.name:
            assert "source" not in other, other
    out = b.ctl("list").stdout
    line = next(l for l in out.splitlines() if l.startswith("Standby cluster of"))
    assert f"standby leader {lead_b.name} streaming from {src}, " in line and " behind, last message " in line, out


def etcd_initialize(cluster):
    return etcdctl(cluster, "get", f"/pgha/{cluster.name}/initialize", "--print-value-only").strip()


def test_standby_cluster_takes_no_writes(pair):
    a, b = pair
    for n in b.nodes.values():
        assert n.sql("SELECT pg_is_in_recovery()")[0][0] is True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            n.sql("INSERT INTO sc_rows VALUES ('nope')")
    # Nobody in B ever ran as primary: the agents never decided to start or promote one.
    for n in b.nodes.values():
        log = n.log()
        assert "promoted PostgreSQL to primary" not in log and "PostgreSQL starting as primary" not in log
        assert "PostgreSQL starting as" in log
        # The standby leader's PostgreSQL is a standby: the lease fence never kills it.
        assert "stopped by the fence" not in log and "PostgreSQL exited unexpectedly" not in log


def kill_leader(a):
    """Kill A's leader, agent and PostgreSQL (by PID): the node."""
    old = a.nodes[a.leader()]
    pid = pg_pid(old)
    old.proc.send_signal(signal.SIGKILL)
    signal_instance(pid, signal.SIGKILL)
    old.proc.wait(10)
    return old


def test_follows_failover_in_primary_cluster(pair):
    a, b = pair
    lead_b = b.nodes[pick_leader(b, ["b1", "b2"], "replica")]
    old = kill_leader(a)
    t0 = time.monotonic()
    others = [n for n in a.nodes if n != old.name]
    new = a.nodes[pick_leader(a, others, "primary")]
    new.sql("INSERT INTO sc_rows VALUES ('after_failover')")
    for n in b.nodes.values():
        wait_row(n, "after_failover", timeout=90)
    print(f"row written on A's new leader seen on every B member {time.monotonic() - t0:.1f}s after the kill")
    wait_receiving_from(lead_b, new)
    wait_source(b, lead_b, new)
    # A's new leader created the standby cluster's slot too; B streams through it.
    wait_until("B's standby leader on the new leader's slot", lambda: slot_active(new), timeout=30)
    # Nobody touched B: the same standby leader, still a standby.
    assert b.leader() == lead_b.name
    assert lead_b.sql("SELECT pg_is_in_recovery()")[0][0] is True
    # A's old leader comes back as A's standby.
    old.start()
    a.wait_streaming(list(a.nodes), timeout=120)


def promote_cluster(b, *args, answer=None):
    """pgha ctl -c <a member's config> promote-cluster ARGS; with answer, on a terminal that types it."""
    cmd = [PGHA_BIN, "ctl", "-c", b.nodes["b1"].conf_path, "promote-cluster", *args]
    if answer is None:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=slave)
    finally:
        os.close(master)
        os.close(slave)


def test_promote_cluster_refused_while_primary_runs(pair):
    a, b = pair
    r = promote_cluster(b, "--json", answer="y\n")
    assert r.returncode != 0, r.stdout
    assert "is a running primary" in r.stderr and "HINT: stop the primary cluster first" in r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert out["promoted"] is False
    assert "primary" in [p["result"] for p in out["primary_hosts"]], out
    assert etcdctl(b, "get", "/pgha/west/promoted", "--print-value-only").strip() == ""


def test_careless_promoted_key_is_ignored(pair):
    a, b = pair
    lead_b = b.nodes[b.leader()]
    etcdctl(b, "put", "/pgha/west/promoted", '{"at": 1, "by": "ctl"}')
    wait_until("the agents to warn about the promoted key",
               lambda: "promoted is ignored, this stays a standby cluster" in lead_b.log(), timeout=30)
    time.sleep(2)
    assert lead_b.sql("SELECT pg_is_in_recovery()")[0][0] is True
    etcdctl(b, "del", "/pgha/west/promoted")


def test_promote_cluster_after_primary_region_lost(pair):
    a, b = pair
    lead_b = b.nodes[b.leader()]
    other_b = b.nodes["b2" if lead_b.name == "b1" else "b1"]
    a.stop_all()   # the primary region is lost
    time.sleep(1)
    assert lead_b.sql("SELECT pg_is_in_recovery()")[0][0] is True   # nothing promoted B on its own
    t0 = time.monotonic()
    r = promote_cluster(b, answer="y\n")
    assert r.returncode == 0, r.stderr
    assert "promoted" in r.stdout
    t1 = time.monotonic()
    wait_until("B's standby leader to promote",
               lambda: lead_b.sql("SELECT pg_is_in_recovery()")[0][0] is False, timeout=60)
    print(f"promote-cluster: the command took {t1 - t0:.2f}s, B's leader was primary {time.monotonic() - t0:.2f}s "
          f"after it started")
    assert "this standby cluster was promoted" in lead_b.log()
    assert b.leader() == lead_b.name
    lead_b.sql("INSERT INTO sc_rows VALUES ('after_promotion')")
    wait_row(other_b, "after_promotion", timeout=60)
    wait_receiving_from(other_b, lead_b, timeout=60)
    assert other_b.sql("SELECT pg_is_in_recovery()")[0][0] is True
    wait_until("ctl list to show B as a cluster of its own",
               lambda: "Standby cluster of" not in b.ctl("list").stdout, timeout=30)
