"""Synchronous replication: `pgha ctl set synchronous_mode=...`, the `sync` key,
and failover that never loses a commit the client saw acknowledged.

The clusters run the fast profile (ttl 3 s) so each test stays well under a
minute. A Writer (conftest.py) writes to every member all the time and records
which COMMITs returned; after the leader node is killed with SIGKILL, every one
of those acknowledged on the old leader must be on the new one."""
import signal
import subprocess
import threading
import time

from conftest import PGHA_BIN, Writer, pg_pid, signal_instance, wait_until

FAST = {"cluster.ttl": "3s", "cluster.loop_wait": "500ms", "cluster.retry_timeout": "1s",
        "etcd.request_timeout": "800ms"}


def start3(cluster, extra3=None):
    """Three members; with extra3 (n3's own settings) n1 bootstraps alone first, so n3 is a standby."""
    for n in ("n1", "n2", "n3"):
        extra = dict(FAST)
        if n == "n3" and extra3:
            extra.update(extra3)
        cluster.add(n, extra).start()
        if n == "n1" and extra3:
            cluster.wait_streaming(["n1"], timeout=60)
    return cluster.wait_streaming(["n1", "n2", "n3"], timeout=90)


def sync_view(cluster):
    v = cluster.view()
    return v.get("leader"), v.get("synchronous_mode"), v.get("sync")


def wait_sync(cluster, leader, count, quorum=False, timeout=30):
    """Until the leader published `count` synchronous standbys and PostgreSQL reports them so."""
    want = "quorum" if quorum else "sync"

    def ok():
        lead, _, s = sync_view(cluster)
        if lead != leader or not s or s["leader"] != leader or len(s["sync_standby"]) != count:
            return None
        rows = cluster.nodes[leader].sql("SELECT application_name, sync_state FROM pg_stat_replication")
        states = dict(rows)
        if all(states.get(n) == want for n in s["sync_standby"]):
            return s["sync_standby"]
        return None
    return wait_until(f"{count} {want} standby(s) published by {leader}", ok, timeout=timeout)


def kill_node(node):
    """Node death: the agent and the whole PostgreSQL instance, SIGKILL."""
    pid = pg_pid(node)
    node.proc.send_signal(signal.SIGKILL)
    signal_instance(pid, signal.SIGKILL)
    node.proc.wait(10)


def wait_new_leader(cluster, old, timeout=30):
    def ok():
        v = cluster.view()
        ms = {m["name"]: m for m in v["members"]}
        lead = v.get("leader")
        if lead and lead != old and ms.get(lead, {}).get("role") == "primary" \
                and ms[lead]["state"] == "running":
            return lead
        return None
    return wait_until("a new leader", ok, timeout=timeout)


def ids_on(node, ids):
    rows = node.sql("SELECT id FROM sb_writes WHERE id = ANY(%s)", (list(ids),))
    return {r[0] for r in rows}


def failover_keeps_every_acked_commit(cluster, allowed):
    """Kill -9 the leader under the writer; the new leader (one of `allowed`) has every acked write."""
    leader = cluster.leader()
    writer = Writer(cluster, interval=0.005).start()
    wait_until("acknowledged writes", lambda: len(writer.acked_on(leader)) > 50, timeout=20)
    kill_node(cluster.nodes[leader])
    t0 = time.monotonic()
    new = wait_new_leader(cluster, leader, timeout=30)
    print(f"new leader {new} after {time.monotonic() - t0:.1f}s")
    assert new in allowed, f"{new} was promoted; only {allowed} held every acknowledged commit"
    wait_until("writes on the new leader", lambda: writer.acked_on(new), timeout=20)
    writer.stop()
    writer.assert_no_split_brain()
    acked = [w[1] for w in writer.acked_on(leader)]
    missing = set(acked) - ids_on(cluster.nodes[new], acked)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost: {sorted(missing)[:10]}"
    return leader, new


def test_sync_on_kill9_leader_loses_no_acknowledged_commit(cluster):
    leader = start3(cluster)
    out = cluster.ctl("set", "synchronous_mode=on", "--force").stdout
    assert "synchronous_mode: (default) -> on" in out, out
    [standby] = wait_sync(cluster, leader, 1)
    ssn = cluster.nodes[leader].sql("SHOW synchronous_standby_names")[0][0]
    assert ssn == f'"{standby}"', ssn
    listing = cluster.ctl("list").stdout
    assert "Synchronous mode: on" in listing and " sync " in listing, listing
    # The metrics say who is synchronous, on every member.
    import urllib.request

    def sync_metrics(name):
        with urllib.request.urlopen(f"http://127.0.0.1:{cluster.nodes[name].api_port}/metrics", timeout=3) as r:
            text = r.read().decode()
        lab = f'{{cluster="{cluster.name}",member="{name}"}}'
        return (f"pgha_member_synchronous{lab} 1" in text, f"pgha_cluster_synchronous_standbys{lab} 1" in text)
    wait_until("the synchronous standby in its metrics", lambda: sync_metrics(standby) == (True, True), timeout=15)
    assert sync_metrics(leader) == (False, True)
    # `ctl failover --to` the other standby would lose commits: refused.
    other = next(n for n in cluster.nodes if n not in (leader, standby))
    r = cluster.ctl("failover", "--to", other, "--force", check=False)
    assert r.returncode == 1 and "not a synchronous standby" in r.stderr, r.stderr
    _, new = failover_keeps_every_acked_commit(cluster, [standby])
    # The new leader names itself in the sync key and takes the remaining standby.
    wait_sync(cluster, new, 1, timeout=30)


def test_sync_quorum_kill9_leader_loses_no_acknowledged_commit(cluster):
    leader = start3(cluster)
    cluster.ctl("set", "synchronous_mode=quorum", "synchronous_node_count=1", "--force")
    standbys = wait_sync(cluster, leader, 2, quorum=True)
    ssn = cluster.nodes[leader].sql("SHOW synchronous_standby_names")[0][0]
    assert ssn.startswith("ANY 1 ("), ssn
    _, s = sync_view(cluster)[1:]
    assert s["quorum"] == 2, s          # ANY 1 of 2: a new leader hears from both
    failover_keeps_every_acked_commit(cluster, standbys)


def test_sync_strict_blocks_without_standbys_and_resumes(cluster):
    leader = start3(cluster)
    cluster.ctl("set", "synchronous_mode=strict", "--force")
    [sync] = wait_sync(cluster, leader, 1)
    other = next(n for n in cluster.nodes if n not in (leader, sync))
    cluster.nodes[leader].sql("CREATE TABLE strict_t (id int)")
    for n in (sync, other):
        cluster.nodes[n].stop()
    # A write now waits: no standby can confirm it.
    done = []

    def write():
        try:
            with cluster.nodes[leader].connect(autocommit=True) as c:
                c.execute("INSERT INTO strict_t VALUES (1)")
                done.append(time.monotonic())
        except Exception as e:  # the test fails below if it never returns
            done.append(e)
    th = threading.Thread(target=write, daemon=True)
    th.start()
    time.sleep(4)
    assert not done, f"a write returned with no standby up in strict mode: {done}"
    # Another standby comes back: the leader makes it synchronous and the write returns.
    t0 = time.monotonic()
    cluster.nodes[other].start()
    th.join(45)
    assert done and not isinstance(done[0], Exception), f"the write did not return: {done}"
    print(f"write returned {done[0] - t0:.1f}s after {other} was started")
    assert wait_sync(cluster, leader, 1) == [other]
    assert cluster.nodes[other].sql("SELECT count(*) FROM strict_t")[0][0] == 1


def test_sync_nosync_member_never_chosen_nor_promoted(cluster):
    leader = start3(cluster, {"node.nosync": "on"})
    assert leader == "n1"
    cluster.ctl("set", "synchronous_mode=on", "--force")
    [sync] = wait_sync(cluster, leader, 1)
    assert sync != "n3"
    # The only other standby goes: n3 (nosync) is not chosen; the leader runs asynchronously.
    cluster.nodes[sync].stop()

    def empty_set():
        _, _, s = sync_view(cluster)
        return s is not None and s["sync_standby"] == [] and \
            cluster.nodes[leader].sql("SHOW synchronous_standby_names")[0][0] == ""
    wait_until("an empty synchronous set", empty_set, timeout=20)
    for _ in range(6):
        _, _, s = sync_view(cluster)
        assert "n3" not in s["sync_standby"], s
        time.sleep(0.5)
    # The leader dies: n3 may lack acknowledged commits, so it is never promoted.
    kill_node(cluster.nodes[leader])
    deadline = time.monotonic() + 10        # > 3 ttl
    while time.monotonic() < deadline:
        assert cluster.leader() in (None, leader), f"{cluster.leader()} took the leader key"
        time.sleep(0.5)
    assert cluster.leader() is None
    assert cluster.nodes["n3"].sql("SELECT pg_is_in_recovery()")[0][0]
    assert "only a member the sync key lists may be promoted" in cluster.nodes["n3"].log()


def ctl(etcd, *args, stdin=None):
    return subprocess.run([PGHA_BIN, "ctl", "--etcd", etcd.url, "--cluster", "t", *args],
                          capture_output=True, text=True, timeout=30, stdin=stdin)


def test_ctl_set_checks_keys_and_values(etcd):
    bad = [
        (["set"], "nothing to set"),
        (["set", "synchronous_mode"], "expected KEY=VALUE"),
        (["set", "=on"], "expected KEY=VALUE"),
        (["set", "synchronous_mod=on"], 'unknown key "synchronous_mod"; keys: synchronous_mode, '
                                        "synchronous_node_count, synchronous_cross_region, "
                                        "maximum_lag_on_failover"),
        (["set", "synchronous_cross_region=yes"], 'synchronous_cross_region = "yes": use true or false'),
        (["set", "synchronous_mode=maybe"], 'synchronous_mode = "maybe": use off, on, quorum or strict'),
        (["set", "synchronous_mode=true"], "use off, on, quorum or strict"),
        (["set", "synchronous_node_count=0"], "use a whole number from 1 to 16"),
        (["set", "synchronous_node_count=2x"], "use a whole number from 1 to 16"),
        (["set", "maximum_lag_on_failover=-1"], "use a number of bytes"),
        (["set", "synchronous_mode=on", "synchronous_mode=off"], "synchronous_mode is given twice"),
    ]
    for args, msg in bad:
        r = ctl(etcd, *args, "--force")
        assert r.returncode == 2 and msg in r.stderr, (args, r.returncode, r.stderr)
    # Without --force and without a terminal: refused, nothing written.
    r = ctl(etcd, "set", "synchronous_mode=quorum", stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "synchronous_mode: (default) -> quorum" in r.stderr, r.stderr
    assert "add --force" in r.stderr
    assert ctl(etcd, "list", "--json").stdout.count('"synchronous_mode":"off"') == 1
    # Other settings (pause) are kept; what changed is printed; a repeat changes nothing.
    assert ctl(etcd, "pause", "--force").returncode == 0
    r = ctl(etcd, "set", "synchronous_mode=quorum", "synchronous_node_count=2", "--force")
    assert r.returncode == 0, r.stderr
    assert "synchronous_mode: (default) -> quorum" in r.stdout
    assert "synchronous_node_count: (default) -> 2" in r.stdout
    r = ctl(etcd, "set", "synchronous_mode=quorum", "--force")
    assert r.returncode == 0 and "nothing to change" in r.stdout, r.stdout
    r = ctl(etcd, "set", "synchronous_mode=off", "--force")
    assert "synchronous_mode: quorum -> off" in r.stdout, r.stdout
    listing = ctl(etcd, "list", "--json").stdout
    assert '"paused":true' in listing and '"synchronous_mode":"off"' in listing, listing
    assert ctl(etcd, "set", "--help").returncode == 0


def test_agent_refuses_synchronous_standby_names_parameter(base_dir):
    import os
    conf = os.path.join(base_dir, "n.conf")
    with open(conf, "w") as f:
        f.write("[node]\nname = n\n[postgresql]\ndata_dir = /tmp/x/data\n"
                "superuser_password_file = /dev/null\nreplication_password_file = /dev/null\n"
                "[parameters]\nsynchronous_standby_names = '*'\n")
    r = subprocess.run([PGHA_BIN, "agent", "--check", "-c", conf], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2
    assert "synchronous_standby_names is managed by pgha" in r.stderr
    assert "pgha ctl set synchronous_mode" in r.stderr
