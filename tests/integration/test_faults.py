"""Bootstrap under adverse conditions: a race for initdb, etcd down at start,
a data directory from another cluster."""
import os
import shutil
import time

from conftest import Cluster, Etcd, wait_until


def test_two_agents_started_together_make_exactly_one_initdb(cluster):
    a = cluster.add("a")
    b = cluster.add("b")
    a.start()
    b.start()
    leader = cluster.wait_streaming(["a", "b"], timeout=180)
    initdbs = [n for n, node in cluster.nodes.items() if "initdb started" in node.log()]
    assert initdbs == [leader], initdbs
    other = "b" if leader == "a" else "a"
    assert "another member claimed the initialize key first" in cluster.nodes[other].log() or \
        "another member is bootstrapping" in cluster.nodes[other].log()
    # The initialize key holds the system identifier of the one cluster.
    v = cluster.view()
    sysid = cluster.nodes[leader].sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    assert v["initialize"] == sysid


def test_etcd_down_at_start_agent_retries_then_joins(base_dir):
    etcd = Etcd(base_dir)          # not started yet
    cluster = Cluster(base_dir, etcd)
    node = cluster.add("solo")
    try:
        node.start()
        wait_until("the agent to report etcd unreachable",
                   lambda: "etcd unreachable" in node.log(), timeout=30)
        time.sleep(2)
        assert node.proc.poll() is None, "the agent gave up instead of retrying"
        assert not os.path.exists(node.data_dir) or not os.listdir(node.data_dir)
        st, body = node.api("/liveness")
        assert st == 200
        st, body = node.api("/health")
        assert st == 503 and body["etcd_reachable"] is False
        etcd.start()
        wait_until("bootstrap after etcd came up",
                   lambda: cluster.leader() == "solo" and cluster.members()["solo"]["state"] == "running",
                   timeout=60)
        assert "etcd reachable" in node.log()
        assert node.api("/primary")[0] == 200
    finally:
        node.stop()
        etcd.stop()


def test_data_directory_of_another_cluster_is_refused(base_dir, etcd):
    # A first cluster makes a data directory...
    other = Cluster(base_dir, etcd, name="other")
    o = other.add("o1")
    o.start()
    other.wait_streaming(["o1"], timeout=120)
    o.stop()
    # ...then a node of cluster "t" is pointed at it while "t" has its own leader.
    c = Cluster(base_dir, etcd, name="t")
    try:
        c.add("t1").start()
        c.wait_streaming(["t1"], timeout=120)
        intruder = c.add("t2")
        intruder.data_dir = o.data_dir
        intruder.write_conf({"postgresql.data_dir": o.data_dir})
        intruder.start()
        code = intruder.proc.wait(timeout=60)
        assert code == 1
        log = intruder.log()
        assert "belongs to another cluster" in log
        # Nothing was deleted or started on it.
        assert os.path.exists(os.path.join(o.data_dir, "PG_VERSION"))
        assert "pg_basebackup started" not in log
    finally:
        c.stop_all()


def test_non_postgres_data_directory_is_never_touched(cluster):
    n = cluster.add("x")
    os.makedirs(n.data_dir)
    keep = os.path.join(n.data_dir, "precious.txt")
    with open(keep, "w") as f:
        f.write("user data")
    n.start()
    assert n.proc.wait(timeout=60) == 1
    assert "not a PostgreSQL data directory" in n.log()
    assert open(keep).read() == "user data"
