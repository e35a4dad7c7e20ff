"""The primary cluster's WAL archive as a standby cluster's fallback ([standby_cluster]
archive_stanza): cluster A (east) archives into a posix pgBackRest repository; cluster B (west)
is a standby cluster of A WITHOUT a slot, reading A's stanza from the same repository; cluster C
(south) is the same without archive_stanza. B and C are stopped, A writes and removes the WAL
they still need; started again, B catches up from the archive and streams again, C cannot.
Then A is stopped and B promoted: its restore_command and archive_command are its own stanza's.

The tests run in order on one set of clusters (module-scoped)."""
import glob
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import PGHA_BIN, Cluster, Etcd, leader_with_role, make_repo, pg_pid, shared_base, wait_until


def stop_member(node):
    """The agent, then its PostgreSQL (fast shutdown), each by PID."""
    pid = pg_pid(node)
    node.stop()
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    def gone():
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    wait_until(f"{node.name}'s PostgreSQL to stop", gone, timeout=60)


def streaming(node):
    rows = node.sql("SELECT status FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0][0] == "streaming"


def rows_on(node):
    return node.sql("SELECT count(*) FROM sa_rows")[0][0]


def pg_log(node):
    with open(os.path.join(node.dir, f"{node.name}.postgresql.log"), errors="replace") as f:
        return f.read()


def pgha_conf(node):
    with open(os.path.join(node.data_dir, "pgha.conf")) as f:
        return f.read()


@pytest.fixture(scope="module")
def clusters(request):
    with shared_base(request) as base:
        repo = make_repo(base)
        base_a, base_b = os.path.join(base, "a"), os.path.join(base, "b")
        for d in (base_a, base_b):
            os.makedirs(d)
            os.chmod(d, 0o755)
        etcd_a = Etcd(base_a).start()
        etcd_b = None
        a = Cluster(base_a, etcd_a, name="east")
        b = c = None
        try:
            a.add("a1", {"backup.repo_path": repo, "parameters.wal_keep_size": "0"}).start()
            a1 = leader_with_role(a, "primary")
            wait_until("A's archive ok", lambda: a.members()["a1"].get("archive") == "ok", timeout=120)
            hosts = f"127.0.0.1:{a1.pg_port}"
            etcd_b = Etcd(base_b).start()
            # B and C share one etcd (their own keys), and A's credentials.
            b = Cluster(base_b, etcd_b, name="west")
            c = Cluster(base_b, etcd_b, name="south")
            for x in (b, c):
                x.su_pw, x.repl_pw, x.su_pw_file, x.repl_pw_file = a.su_pw, a.repl_pw, a.su_pw_file, a.repl_pw_file
            b.add("b1", {"standby_cluster.primary_hosts": hosts, "backup.repo_path": repo,
                         "standby_cluster.archive_stanza": "east"}).start()
            c.add("c1", {"standby_cluster.primary_hosts": hosts}).start()
            t0 = time.monotonic()
            for x in (b, c):
                leader_with_role(x, "replica")
            for n in (b.nodes["b1"], c.nodes["c1"]):
                wait_until(f"{n.name} streaming", lambda: streaming(n), timeout=90)
            print(f"standby clusters bootstrapped in {time.monotonic() - t0:.1f}s")
            yield repo, a, b, c
        finally:
            for x in (c, b):
                if x is not None:
                    x.stop_all()
            if etcd_b is not None:
                etcd_b.stop()
            a.stop_all()
            etcd_a.stop()


def test_standby_reads_primary_stanza_and_never_writes_it(clusters):
    repo, a, b, c = clusters
    b1 = b.nodes["b1"]
    conf = pgha_conf(b1)
    restore = [l for l in conf.splitlines() if l.startswith("restore_command")]
    assert len(restore) == 1 and "--stanza=east archive-get" in restore[0], conf
    # Its own archive_command (in effect only once promoted: a standby archives nothing).
    assert "--stanza=west archive-push" in conf, conf
    assert b1.sql("SHOW restore_command")[0][0].find("--stanza=east") > 0
    assert "restore_command" not in pgha_conf(c.nodes["c1"])
    # B neither created a stanza of its own nor touched A's.
    assert not os.path.exists(os.path.join(repo, "archive", "west"))
    assert not os.path.exists(os.path.join(repo, "backup", "west"))
    assert "stanza-create" not in b1.log()


def test_catches_up_from_archive_after_primary_removed_wal(clusters):
    repo, a, b, c = clusters
    a1, b1, c1 = a.nodes["a1"], b.nodes["b1"], c.nodes["c1"]
    a1.sql("CREATE TABLE sa_rows (i int)")
    a1.sql("INSERT INTO sa_rows VALUES (0)")
    for n in (b1, c1):
        wait_until(f"row 0 on {n.name}", lambda: rows_on(n) == 1, timeout=60)
    # The segment B and C ask for first when they come back.
    lsn = max(n.sql("SELECT pg_last_wal_receive_lsn()")[0][0] for n in (b1, c1))
    need = a1.sql("SELECT pg_walfile_name(%s::pg_lsn)", (str(lsn),))[0][0]
    for n in (b1, c1):
        stop_member(n)
    for i in range(1, 6):
        a1.sql("INSERT INTO sa_rows SELECT %s FROM generate_series(1, 1000)", (i,))
        a1.sql("SELECT pg_switch_wal()")
    last = a1.sql("SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")[0][0]
    wait_until("A to archive up to the last switched segment",
               lambda: a1.sql("SELECT coalesce(last_archived_wal, '') >= %s FROM pg_stat_archiver",
                              (last,))[0][0], timeout=60)
    seg_path = os.path.join(a1.data_dir, "pg_wal", need)

    def removed():
        a1.sql("CHECKPOINT")
        return not os.path.exists(seg_path)
    wait_until(f"A to remove {need} from pg_wal", removed, timeout=60)
    assert glob.glob(os.path.join(repo, "archive", "east", "15-1", need[:16], need + "-*")), "not archived"
    expected = 1 + 5 * 1000
    # A refuses replication for now: B can only read the archive, C nothing.
    a1.sql("ALTER ROLE replicator NOLOGIN")
    t0 = time.monotonic()
    b1.start()
    c1.start()
    wait_until("B to catch up from the archive", lambda: rows_on(b1) >= expected, timeout=120)
    print(f"B had A's rows from the archive {time.monotonic() - t0:.1f}s after its start")
    assert f'restored log file "{need}" from archive' in pg_log(b1)
    assert not streaming(b1)

    # While A writes on, B follows it through the archive, and its record, ctl list and metrics say so.
    def archive_replay():
        a1.sql("INSERT INTO sa_rows VALUES (6)")
        a1.sql("SELECT pg_switch_wal()")
        return b.members()["b1"].get("archive_replay") is True
    wait_until("B's record to say archive_replay", archive_replay, timeout=60, interval=1.0)
    out = b.ctl("list").stdout
    assert "catching up from the WAL archive (not streaming)" in out, out
    with urllib.request.urlopen(f"{b1.api_url()}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert re.search(r'^pgha_postgres_archive_replay\{[^}]*member="b1"[^}]*\} 1$', metrics, re.M), metrics
    assert "catching up from the WAL archive" in b1.log()
    assert c.members()["c1"].get("archive_replay") is None

    # Replication allowed again: B streams (and its record says so), C finds its WAL removed.
    a1.sql("ALTER ROLE replicator LOGIN")
    t0 = time.monotonic()
    wait_until("B to stream again", lambda: streaming(b1), timeout=60)
    print(f"B streams again {time.monotonic() - t0:.1f}s after replication was allowed")
    wait_until("B's record to drop archive_replay", lambda: "archive_replay" not in b.members()["b1"], timeout=30)
    a1.sql("INSERT INTO sa_rows VALUES (7)")
    wait_until("the streamed row on B", lambda: b1.sql("SELECT count(*) FROM sa_rows WHERE i = 7")[0][0] == 1,
               timeout=30)
    wait_until("C's walreceiver to report the removed segment",
               lambda: "has already been removed" in pg_log(c1), timeout=60)
    assert rows_on(c1) == 1
    assert not streaming(c1)


def test_promoted_cluster_uses_its_own_stanza(clusters):
    repo, a, b, c = clusters
    a1, b1 = a.nodes["a1"], b.nodes["b1"]
    stop_member(a1)
    r = subprocess.run([PGHA_BIN, "ctl", "-c", b1.conf_path, "promote-cluster", "--force"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    leader_with_role(b, "primary")
    wait_until("B's restore_command on its own stanza",
               lambda: "--stanza=west" in b1.sql("SHOW restore_command")[0][0], timeout=60)
    assert "--stanza=east" not in pgha_conf(b1)
    assert "restore_command now reads stanza west" in b1.log()
    # Its leader creates its own stanza and archives there.
    wait_until("B's archive ok", lambda: b.members()["b1"].get("archive") == "ok", timeout=120)
    assert os.path.exists(os.path.join(repo, "archive", "west", "archive.info"))
    b1.sql("INSERT INTO sa_rows VALUES (-1)")


def test_agent_refuses_archive_stanza_without_repository(tmp_path):
    """The check at start, end to end: the agent exits naming the option, with a HINT."""
    conf = tmp_path / "bad.conf"
    conf.write_text("[cluster]\nname = west\n[etcd]\nendpoints = http://127.0.0.1:1\n[node]\nname = b9\n"
                    "[postgresql]\ndata_dir = /tmp/pgha-nonexistent/data\n"
                    "superuser_password_file = /tmp/pgha-nonexistent/su\n"
                    "replication_password_file = /tmp/pgha-nonexistent/repl\n"
                    "[standby_cluster]\nprimary_hosts = 127.0.0.1:5432\narchive_stanza = east\n")
    r = subprocess.run([PGHA_BIN, "agent", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "[standby_cluster] archive_stanza = east needs the repository the primary cluster archives into" \
        in r.stderr, r.stderr
    assert "HINT: add [backup] repo_path" in r.stderr, r.stderr
    conf.write_text(conf.read_text().replace("archive_stanza = east", "archive_stanza = west") +
                    "[backup]\nrepo_path = /tmp/pgha-nonexistent/repo\n")
    r = subprocess.run([PGHA_BIN, "agent", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "archive_stanza = west is this cluster's own stanza" in r.stderr, r.stderr
