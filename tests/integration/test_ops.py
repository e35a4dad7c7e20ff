"""Operations: dynamic config (`ctl set`, `ctl edit-config`) reaching every
member, pending restarts, the rolling `ctl restart --pending`, `ctl reinit`,
a ttl change reaching the leader's lease, and the refusals.

One 3-member cluster (fast profile) and one proxy serve the whole file: the
tests run in order and each leaves the cluster streaming for the next."""
import json
import os
import subprocess
import time

import pytest

from conftest import PGHA_BIN, Cluster, Etcd, Proxy, shared_base, wait_until
from test_switchover import ProxyWriters

FAST = {"cluster.ttl": "3s", "cluster.loop_wait": "500ms", "cluster.retry_timeout": "1s",
        "etcd.request_timeout": "800ms"}
NAMES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def ops(request):
    with shared_base(request) as base:
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        proxy = None
        try:
            for n in NAMES:
                cluster.add(n, FAST).start()
            cluster.wait_streaming(list(NAMES), timeout=120)
            proxy = Proxy(cluster).start()
            yield cluster, proxy
        finally:
            if proxy is not None:
                proxy.stop()
            cluster.stop_all()
            etcd.stop()


def ctl(cluster, *args, stdin=None):
    """`pgha ctl` with standard input from a string (never a terminal)."""
    return subprocess.run([PGHA_BIN, "ctl", "--etcd", cluster.etcd.url, "--cluster", cluster.name, *args],
                          capture_output=True, text=True, timeout=300, input=stdin or "")


def show(node, name):
    return node.sql(f"SHOW {name}")[0][0]


def everywhere(cluster, name, value, timeout=20):
    wait_until(f"{name} = {value} on every member",
               lambda: all(show(cluster.nodes[n], name) == value for n in NAMES), timeout=timeout)


def test_refusals(ops):
    cluster, _ = ops
    cases = [
        (["set", "foo=1"], 2, 'unknown key "foo"'),
        (["set", "postgresql.parameters.port=5555"], 2, "port is managed by pgha"),
        (["set", "postgresql.parameters.synchronous_standby_names=*"], 2, "synchronous_mode=on"),
        (["set", "postgresql.parameters.primary_conninfo=x"], 2, "primary_conninfo is managed by pgha"),
        (["set", "postgresql.parameters.bad-name=1"], 2, "not a PostgreSQL parameter name"),
        (["set", "ttl=5s"], 2, "ttl (5000ms) must be at least loop_wait + 2 * retry_timeout"),
        (["set", "ttl=abc"], 2, "not a duration"),
        (["set", "loop_wait=10ms"], 2, "out of range"),
        (["reinit", cluster.leader()], 1, "is the leader: a leader is never re-cloned"),
        (["reinit", "nope"], 1, "not a member"),
        (["restart", "nope"], 1, "not a member"),
    ]
    for args, code, msg in cases:
        r = ctl(cluster, *args, "--force")
        assert r.returncode == code and msg in r.stderr, (args, r.returncode, r.stderr)
    # edit-config: not JSON, an unknown key, a managed parameter; nothing written.
    for text, msg in (("{", "not JSON"), ('{"ttl": 9, "tll": 3}', 'unknown key "tll"'),
                      ('{"postgresql": {"parameters": {"port": 1}}}', "port is managed by pgha")):
        r = ctl(cluster, "edit-config", "--apply", "-", "--force", stdin=text)
        assert r.returncode == 2 and msg in r.stderr, (text, r.stderr)
    # Without --force and without a terminal: refused, nothing written.
    r = ctl(cluster, "set", "postgresql.parameters.work_mem=5MB")
    assert r.returncode == 1 and "add --force" in r.stderr, r.stderr
    # Maintenance mode: the agents restart nothing, so ctl refuses.
    assert ctl(cluster, "pause", "--force").returncode == 0
    try:
        for args in (["restart"], ["restart", "n2"], ["reinit", next(n for n in NAMES if n != cluster.leader())]):
            r = ctl(cluster, *args, "--force")
            assert r.returncode == 1 and "maintenance mode is on" in r.stderr, (args, r.stderr)
    finally:
        assert ctl(cluster, "resume", "--force").returncode == 0
    for cmd in ("set", "edit-config", "restart", "reinit"):
        r = ctl(cluster, cmd, "--help")
        assert r.returncode == 0 and "Usage: pgha ctl " + cmd in r.stdout, r.stdout


def test_set_reloadable_parameter_reaches_every_member(ops):
    cluster, _ = ops
    assert show(cluster.nodes["n1"], "work_mem") == "4MB"
    r = ctl(cluster, "set", "postgresql.parameters.work_mem=7MB", "--force")
    assert r.returncode == 0, r.stderr
    assert "postgresql.parameters.work_mem: (default) -> 7MB" in r.stdout, r.stdout
    t0 = time.monotonic()
    everywhere(cluster, "work_mem", "7MB")
    print(f"work_mem reached every member in {time.monotonic() - t0:.1f}s")
    assert not any(m["pending_restart"] for m in cluster.members().values())
    # edit-config from standard input: shows the change, writes it.
    cfg = {"postgresql": {"parameters": {"work_mem": "6MB", "maintenance_work_mem": 100000}}}
    r = ctl(cluster, "edit-config", "--apply", "-", "--force", stdin=json.dumps(cfg))
    assert r.returncode == 0, r.stderr
    assert "postgresql.parameters.work_mem: 7MB -> 6MB" in r.stdout, r.stdout
    assert "postgresql.parameters.maintenance_work_mem: (default) -> 100000" in r.stdout, r.stdout
    everywhere(cluster, "work_mem", "6MB")
    everywhere(cluster, "maintenance_work_mem", "100000kB")
    # NAME= removes it: back to the file's (here PostgreSQL's default).
    r = ctl(cluster, "set", "postgresql.parameters.work_mem=", "postgresql.parameters.maintenance_work_mem=",
            "--force")
    assert r.returncode == 0 and "postgresql.parameters.work_mem: 6MB -> (default)" in r.stdout, r.stdout
    everywhere(cluster, "work_mem", "4MB")
    assert "PostgreSQL parameters changed: work_mem = '7MB'" in cluster.nodes["n2"].log()


def lease_ttl(cluster):
    """Granted TTL (s) of the lease the leader key is under."""
    env = dict(os.environ, ETCDCTL_API="3")
    out = subprocess.run(["etcdctl", "--endpoints", cluster.etcd.url, "get", f"/pgha/{cluster.name}/leader",
                          "-w", "json"], capture_output=True, text=True, timeout=30, env=env).stdout
    lease = json.loads(out)["kvs"][0]["lease"]
    out = subprocess.run(["etcdctl", "--endpoints", cluster.etcd.url, "lease", "timetolive", "%x" % lease,
                          "-w", "json"], capture_output=True, text=True, timeout=30, env=env).stdout
    return json.loads(out)["granted-ttl"]


def test_ttl_change_reaches_the_leader_lease(ops):
    cluster, _ = ops
    leader = cluster.leader()
    assert lease_ttl(cluster) == 3
    # The cluster runs the fast profile from its files: ctl checks the relation with what it is given.
    r = ctl(cluster, "set", "ttl=5s", "loop_wait=500ms", "retry_timeout=1s", "--force")
    assert r.returncode == 0, r.stderr
    assert "ttl: (default) -> 5" in r.stdout and 'loop_wait: (default) -> 500ms' in r.stdout, r.stdout
    wait_until("the leader key under a 5 s lease", lambda: lease_ttl(cluster) == 5, timeout=20)
    assert cluster.leader() == leader
    for n in NAMES:
        wait_until(f"{n} to log the new timing", lambda n=n: "timing now ttl 5000ms" in cluster.nodes[n].log(),
                   timeout=10)
    assert "the leader key moved to it" in cluster.nodes[leader].log()
    # Back to the files' timing.
    r = ctl(cluster, "edit-config", "--apply", "-", "--force", stdin="{}")
    assert r.returncode == 0 and "ttl: 5 -> (default)" in r.stdout, r.stdout
    wait_until("the leader key under a 3 s lease again", lambda: lease_ttl(cluster) == 3, timeout=20)
    # Written past ctl (by hand): every agent refuses what breaks the relation with its own file,
    # says so in its member record, and keeps its timing.
    env = dict(os.environ, ETCDCTL_API="3")
    key = f"/pgha/{cluster.name}/config"
    subprocess.run(["etcdctl", "--endpoints", cluster.etcd.url, "put", key, '{"ttl": 2}'], check=True,
                   capture_output=True, timeout=30, env=env)
    want = "dynamic config refused: ttl (2000ms) must be at least loop_wait + 2 * retry_timeout"

    def refused():
        return all(want in m["error"] for m in cluster.members().values())
    wait_until("every member to refuse ttl 2 s", refused, timeout=20)
    assert lease_ttl(cluster) == 3
    subprocess.run(["etcdctl", "--endpoints", cluster.etcd.url, "put", key, "{}"], check=True,
                   capture_output=True, timeout=30, env=env)
    wait_until("the refusal to clear", lambda: not any(m["error"] for m in cluster.members().values()),
               timeout=20)
    cluster.wait_streaming(list(NAMES), timeout=30)


def test_pending_restart_then_rolling_restart(ops):
    cluster, proxy = ops
    leader = cluster.wait_streaming(list(NAMES), timeout=30)
    r = ctl(cluster, "set", "postgresql.parameters.max_connections=40", "--force")
    assert r.returncode == 0, r.stderr

    def all_pending():
        ms = cluster.members()
        return all(ms[n]["pending_restart"] and ms[n]["pending_restart_params"] == ["max_connections"]
                   for n in NAMES)
    wait_until("pending_restart on every member", all_pending, timeout=20)
    listing = ctl(cluster, "list").stdout
    assert "PENDING RESTART" in listing and listing.count("* max_connections") == 3, listing
    assert show(cluster.nodes[leader], "max_connections") == "30"

    with proxy.connect(autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS so_writes (writer int, seq int, PRIMARY KEY (writer, seq))")
    writers = ProxyWriters(proxy, n=2).start()
    try:
        time.sleep(1)
        t0 = time.monotonic()
        r = ctl(cluster, "restart", "--pending", "--force", "--wait", "90")
        took = time.monotonic() - t0
        time.sleep(1)
    finally:
        writers.stop()
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "restart done" in r.stdout and "switched over from" in r.stdout, r.stdout
    assert "restarted as a standby by the switchover" in r.stdout, r.stdout
    assert "restarted " in r.stdout.splitlines()[-1], r.stdout
    print(f"rolling restart of 3 members took {took:.1f}s")
    new = cluster.wait_streaming(list(NAMES), timeout=60)
    assert new != leader, "the leader was not switched over"
    assert writers.errors == [], writers.errors[:5]
    assert len(writers.acked) > 20
    with cluster.nodes[new].connect() as c:
        rows = set(c.execute("SELECT writer, seq FROM so_writes").fetchall())
    assert [w for w in writers.acked if w not in rows] == []
    ms = cluster.members()
    assert not any(ms[n]["pending_restart"] for n in NAMES), ms
    for n in NAMES:
        assert show(cluster.nodes[n], "max_connections") == "40", n
    assert "PENDING RESTART" not in ctl(cluster, "list").stdout
    # Nothing pending any more: nothing to do.
    r = ctl(cluster, "restart", "--pending", "--force")
    assert r.returncode == 0 and "nothing to restart" in r.stdout, r.stdout


def test_reinit_reclones_a_standby(ops):
    cluster, _ = ops
    leader = cluster.wait_streaming(list(NAMES), timeout=30)
    target = "n2" if leader != "n2" else "n3"
    node = cluster.nodes[target]
    clones_before = node.log().count("pg_basebackup started")
    marker = os.path.join(node.data_dir, "pgha_test_marker")
    with open(marker, "w") as f:
        f.write("old data\n")
    cluster.nodes[leader].sql("CREATE TABLE reinit_t AS SELECT g AS id FROM generate_series(1, 5000) g")
    t0 = time.monotonic()
    r = ctl(cluster, "reinit", target, "--force", "--wait", "120")
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"re-initialized {target} from {leader}" in r.stdout, r.stdout
    assert "cloning" in r.stdout, r.stdout
    print(f"reinit took {time.monotonic() - t0:.1f}s")
    log = node.log()
    assert log.count("pg_basebackup started") == clones_before + 1, log[-3000:]
    assert "removed the old data directory" in log
    assert not os.path.exists(marker), "the old data directory is still in place"
    assert not os.path.exists(node.data_dir + ".pgha-reinit")
    cluster.wait_streaming(list(NAMES), timeout=30)
    lsn = cluster.nodes[leader].sql("SELECT pg_current_wal_lsn()::text")[0][0]
    wait_until(f"{target} to replay {lsn}",
               lambda: node.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0], timeout=30)
    q = "SELECT count(*), sum(id) FROM reinit_t"
    assert node.sql(q) == cluster.nodes[leader].sql(q)
    sysid = "SELECT system_identifier::text FROM pg_control_system()"
    assert node.sql(sysid) == cluster.nodes[leader].sql(sysid)
    m = cluster.members()[target]
    assert m["op_state"] == "done" and m["error"] == "", m
