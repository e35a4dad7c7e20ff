"""Bootstrap of a 3-node cluster through etcd, replication, health endpoints,
rejoin without re-clone, clean stop."""
import os
import time

from conftest import wait_until


def start3(cluster):
    for n in ("n1", "n2", "n3"):
        cluster.add(n).start()
    return cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)


def test_three_nodes_bootstrap_replicate_and_answer_health(cluster):
    leader = start3(cluster)
    nodes = cluster.nodes
    standbys = [n for n in nodes if n != leader]

    # Exactly one initdb happened, on the leader.
    initdbs = [n for n, node in nodes.items() if "initdb started" in node.log()]
    assert initdbs == [leader]
    for s in standbys:
        assert "pg_basebackup started" in nodes[s].log()

    # A row written on the leader is readable on both standbys.
    nodes[leader].sql("CREATE TABLE t (id int primary key, v text)")
    nodes[leader].sql("INSERT INTO t VALUES (1, 'hello')")
    for s in standbys:
        wait_until(f"row on {s}", lambda: nodes[s].sql("SELECT v FROM t WHERE id = 1") == [("hello",)],
                   timeout=30)
        # Standbys refuse writes.
        try:
            nodes[s].sql("INSERT INTO t VALUES (2, 'no')")
            raise AssertionError("a standby accepted a write")
        except Exception as e:
            assert "read-only" in str(e)

    # initdb settings: checksums on, scram-sha-256.
    assert nodes[leader].sql("SHOW data_checksums") == [("on",)]
    assert nodes[leader].sql("SHOW password_encryption") == [("scram-sha-256",)]

    # Health endpoints, Patroni style.
    for name, node in nodes.items():
        is_leader = name == leader
        st, body = node.api("/primary")
        assert st == (200 if is_leader else 503), (name, st, body)
        st, _ = node.api("/replica")
        assert st == (503 if is_leader else 200), (name, st)
        assert node.api("/read-only")[0] == 200
        assert node.api("/health")[0] == 200
        assert node.api("/liveness")[0] == 200
        assert node.api("/readiness")[0] == 200
        if not is_leader:
            wait_until("lag to be known", lambda: node.api("/replica?lag=16MB")[0] == 200, timeout=20)
    st, body = nodes[leader].api("/cluster")
    assert st == 200
    assert sorted(m["name"] for m in body["members"]) == ["n1", "n2", "n3"]
    assert body["leader"] == leader

    # One physical slot per standby on the leader, each in use.
    def slots_active():
        rows = nodes[leader].sql("SELECT slot_name, active FROM pg_replication_slots ORDER BY 1")
        return rows == [(s, True) for s in sorted(standbys)]
    wait_until("slots active", slots_active, timeout=30)

    # Member records carry what operators need.
    ms = cluster.members()
    for s in standbys:
        assert ms[s]["role"] == "replica"
        assert ms[s]["timeline"] == 1
        assert ms[s]["lag_bytes"] >= 0
        assert ms[s]["port"] == nodes[s].pg_port
    assert ms[leader]["role"] == "primary"

    # PostgreSQL runs as the postgres OS user, never as root.
    pid = int(open(os.path.join(nodes[leader].data_dir, "postmaster.pid")).readline())
    uid = os.stat(f"/proc/{pid}").st_uid
    assert uid != 0
    assert "PostgreSQL runs as OS user postgres" in nodes[leader].log()

    # No password in any command line of the processes we started.
    for pid_s in os.listdir("/proc"):
        if pid_s.isdigit():
            try:
                cmd = open(f"/proc/{pid_s}/cmdline", "rb").read()
            except OSError:
                continue
            assert cluster.su_pw.encode() not in cmd and cluster.repl_pw.encode() not in cmd
    # ... nor in any log line.
    for node in nodes.values():
        assert cluster.su_pw not in node.log() and cluster.repl_pw not in node.log()


def test_ctl_list_table_and_json(cluster):
    leader = start3(cluster)
    out = cluster.ctl("list").stdout
    lines = out.splitlines()
    assert lines[0].startswith("Cluster: t (system identifier ")
    assert f"leader: {leader}" in lines[0]
    assert lines[1].split() == ["MEMBER", "HOST", "ROLE", "STATE", "TL", "LAG"]
    rows = {l.split()[0]: l.split() for l in lines[2:]}
    assert rows[leader][2] == "leader" and rows[leader][3] == "running"
    for n in cluster.nodes:
        if n != leader:
            assert rows[n][2] == "replica" and rows[n][3] == "streaming"
            assert rows[n][1] == f"127.0.0.1:{cluster.nodes[n].pg_port}"
    # The same through a node's config file.
    r = cluster.ctl("list")  # sanity
    assert r.returncode == 0


def test_standby_restart_rejoins_without_reclone(cluster):
    leader = start3(cluster)
    standby = next(n for n in cluster.nodes if n != leader)
    node = cluster.nodes[standby]
    marker = os.path.join(node.data_dir, "pgha-test-marker")
    open(marker, "w").close()
    assert node.stop() == 0
    # The member record goes away with a clean stop.
    wait_until("member record removed", lambda: standby not in cluster.members(), timeout=15)
    cluster.nodes[leader].sql("CREATE TABLE after_stop AS SELECT 42 AS x")
    log_before = node.log()
    node.start()
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    new_log = node.log()[len(log_before):]
    assert "pg_basebackup started" not in new_log
    assert "initdb started" not in new_log
    assert os.path.exists(marker), "the data directory was replaced"
    wait_until("row written while stopped", lambda: node.sql("SELECT x FROM after_stop") == [(42,)], timeout=30)


def test_leader_clean_stop_fails_over_and_old_leader_rejoins(cluster):
    leader = start3(cluster)
    node = cluster.nodes[leader]
    node.sql("CREATE TABLE keep AS SELECT 7 AS x")
    assert node.stop() == 0
    assert "leader key released" in node.log()
    # A standby takes over (the clean stop sent it every WAL record).
    others = [n for n in cluster.nodes if n != leader]
    new = cluster.wait_streaming(others, timeout=60)
    assert new in others
    assert cluster.nodes[new].sql("SELECT x FROM keep") == [(7,)]
    # The old leader comes back as a standby of the new one, without a re-clone.
    node.start()
    assert cluster.wait_streaming(list(cluster.nodes), timeout=120) == new
    assert "pg_basebackup started" not in node.log()
    assert node.sql("SELECT x FROM keep") == [(7,)]
