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


def test_etcd_auth_password_from_file_and_endpoint_failover(base_dir, etcd):
    import subprocess
    pw = "etcd-" + os.urandom(6).hex()
    env = dict(os.environ, ETCDCTL_API="3")
    for args, stdin in ((["user", "add", "root", "--interactive=false"], pw + "\n"),
                        (["auth", "enable"], None)):
        r = subprocess.run(["etcdctl", "--endpoints", etcd.url, *args], input=stdin, env=env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    pw_file = os.path.join(base_dir, "secrets-etcd")
    with open(pw_file, "w") as f:
        f.write(pw + "\n")
    os.chmod(pw_file, 0o600)
    c = Cluster(base_dir, etcd, name="auth")
    # The first endpoint is dead: the client must move on to the live one.
    from conftest import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    n = c.add("a1", {"etcd.endpoints": f"{dead},{etcd.url}", "etcd.username": "root",
                     "etcd.password_file": pw_file})
    try:
        n.start()

        def up():
            st, body = n.api("/primary")
            return st == 200
        wait_until("bootstrap through an authenticated etcd", up, timeout=90)
        # Without credentials etcd refuses us: the data really is behind auth.
        r = subprocess.run(["etcdctl", "--endpoints", etcd.url, "get", "--prefix", "/pgha/"],
                           env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert pw not in n.log()
    finally:
        n.stop()


def test_garbage_from_etcd_is_a_clear_error_not_a_crash(base_dir):
    """An 'etcd' endpoint that answers HTTP garbage: the agent logs what is wrong and keeps going."""
    import http.server
    import threading

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"header": 12, "kvs": "not a list'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    etcd = Etcd(base_dir)
    etcd.url = f"http://127.0.0.1:{srv.server_address[1]}"
    c = Cluster(base_dir, etcd)
    n = c.add("g1")
    try:
        n.start()
        wait_until("a clear error about the reply", lambda: "etcd unreachable" in n.log(), timeout=30)
        time.sleep(2)
        assert n.proc.poll() is None, "the agent died on a garbage reply"
        log = n.log()
        assert "reply is not JSON" in log and etcd.url in log, log[-2000:]
        assert not os.path.exists(n.data_dir) or not os.listdir(n.data_dir)
        assert n.stop() == 0
    finally:
        srv.shutdown()


def test_leader_drops_the_slot_of_a_member_that_left(cluster):
    for name in ("s1", "s2"):
        cluster.add(name, {"postgresql.member_slots_ttl": "0"}).start()
    leader = cluster.wait_streaming(["s1", "s2"], timeout=180)
    other = "s2" if leader == "s1" else "s1"
    ln = cluster.nodes[leader]
    wait_until("slot of the standby", lambda: ln.sql("SELECT slot_name FROM pg_replication_slots") == [(other,)],
               timeout=30)
    cluster.nodes[other].stop()
    wait_until("slot dropped after the member left",
               lambda: ln.sql("SELECT count(*) FROM pg_replication_slots") == [(0,)], timeout=30)
    assert f"dropped replication slot {other}" in ln.log()
