"""Point-in-time recovery into a new cluster ([bootstrap] method = restore), real pgBackRest.

The case users fear: rows committed one by one (their commit times recorded with
track_commit_timestamp), a full backup taken by the cluster, more commits, then DROP TABLE at a
recorded time. A new 2-member cluster bootstrapped from the repository to one second before
the DROP has every row committed before that time and none after, runs on a new timeline with
the new cluster's passwords, archives to its own stanza, and its second member streams. A
target before the recoverable window is refused with the window, and nothing is created.
"""
import json
import os
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import PGHA_BIN, Cluster, Etcd, shared_base, wait_until, make_repo, write_pitr_rows


def ctl(cluster, *args, timeout=300):
    return subprocess.run([PGHA_BIN, "ctl", "--etcd", cluster.etcd.url, "--cluster", cluster.name, *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def source(request):
    with shared_base(request) as base:
        repo = make_repo(base)
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd, name="src")
        extra = {"backup.repo_path": repo, "parameters.track_commit_timestamp": "on"}
        try:
            for n in ("s1", "s2"):
                cluster.add(n, extra).start()
            cluster.wait_streaming(["s1", "s2"], timeout=180)
            yield base, etcd, cluster, repo
        finally:
            cluster.stop_all()
            etcd.stop()


def utc(ts):
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def new_cluster(base, etcd, name, repo, target, members):
    sub = os.path.join(base, name)     # its own secrets: the new cluster has its own passwords
    os.makedirs(sub, exist_ok=True)
    os.chmod(sub, 0o755)
    c = Cluster(sub, etcd, name=name)
    extra = {"backup.repo_path": repo, "bootstrap.method": "restore", "bootstrap.restore_stanza": "src",
             "bootstrap.restore_target": target}
    for m in members:
        c.add(m, extra)
    return c


def test_pitr_to_one_second_before_drop_table(source):
    base, etcd, src, repo = source
    leader = src.nodes[src.leader()]
    wait_until("archiving ok", lambda: src.members()[src.leader()].get("archive") == "ok", timeout=120)
    leader.sql("CREATE TABLE pitr (id int PRIMARY KEY, note text)")
    commits = {}

    def write(first, n, pause):
        write_pitr_rows(leader, commits, first, n, pause)

    write(1, 200, 0)
    r = ctl(src, "backup", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    write(1001, 60, 0.05)                 # ~3 s of commits after the backup
    drop_at = leader.sql("SELECT clock_timestamp()")[0][0]
    leader.sql("DROP TABLE pitr")
    # The DROP's WAL reaches the archive.
    seg = leader.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_until("the DROP's segment archived",
               lambda: leader.sql("SELECT coalesce(last_archived_wal >= %s, false) FROM pg_stat_archiver",
                                  (seg,))[0][0], timeout=60)
    target_ts = drop_at - timedelta(seconds=1)
    target = utc(target_ts)
    before = sorted(i for i, t in commits.items() if t <= target_ts)
    after = sorted(i for i, t in commits.items() if t > target_ts)
    assert len(before) > 200 and after, (len(before), len(after))

    new = new_cluster(base, etcd, "pitr", repo, target, ["p1", "p2"])
    t0 = time.monotonic()
    try:
        new.nodes["p1"].start()
        wait_until("p1 to bootstrap from the backup", lambda: new.leader() == "p1", timeout=300)
        took = time.monotonic() - t0
        new.nodes["p2"].start()
        new.wait_streaming(["p1", "p2"], timeout=180)
        print(f"PITR: new cluster leader after {took:.1f}s, streaming after {time.monotonic() - t0:.1f}s; "
              f"{len(before)} rows before the target, {len(after)} after")
        p1 = new.nodes["p1"]
        log = p1.log()
        assert "bootstrapping from the backup repository" in log and "restore: from backup" in log
        got = [r[0] for r in p1.sql("SELECT id FROM pitr ORDER BY id")]
        assert got == before, f"missing {sorted(set(before) - set(got))[:5]}, extra {sorted(set(got) - set(before))[:5]}"
        # A new timeline, the new cluster's passwords (the roles came from the source), its own stanza.
        assert p1.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] >= 2
        assert new.nodes["p2"].sql("SELECT count(*) FROM pitr")[0][0] == len(before)
        p1.sql("INSERT INTO pitr VALUES (999999, 'after the restore')")
        wait_until("the new cluster archives to its own stanza",
                   lambda: new.members()["p1"].get("archive") == "ok", timeout=120)
        assert os.path.isdir(os.path.join(repo, "archive", "pitr"))
        # Recovery settings from the restore are gone: a later standby start uses its own stanza.
        with open(os.path.join(p1.data_dir, "postgresql.auto.conf")) as f:
            auto = f.read()
        assert "recovery_target" not in auto and "stanza=src" not in auto, auto
    finally:
        new.stop_all()


def test_target_before_the_window_is_refused(source):
    base, etcd, src, repo = source
    new = new_cluster(base, etcd, "early", repo, "2001-01-01 00:00:00", ["e1"])
    try:
        new.nodes["e1"].start()
        wait_until("the refusal", lambda: "before the recoverable window" in new.nodes["e1"].log(), timeout=120)
        log = new.nodes["e1"].log()
        assert re.search(r"restore target 2001-01-01 00:00:00\+00:00 is before the recoverable window of stanza "
                         r"src, which starts at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", log), log[-3000:]
        assert "HINT: choose a target inside the window" in log
        # Nothing was created: no data directory, the cluster not initialized.
        assert not os.path.exists(os.path.join(new.nodes["e1"].data_dir, "PG_VERSION"))
        assert new.view().get("initialize") in (None, "init:e1")
    finally:
        new.stop_all()


def test_ctl_restore_checks_the_target_and_prints_the_bootstrap(source):
    base, etcd, src, repo = source
    conf = src.nodes["s1"].conf_path
    wait_until("archiving ok", lambda: src.members()[src.leader()].get("archive") == "ok", timeout=120)
    r = ctl(src, "backup", "--type", "incr", "--wait")   # a full one when there is none yet
    assert r.returncode == 0, r.stdout + r.stderr

    def restore(*args):
        return subprocess.run([PGHA_BIN, "ctl", "-c", conf, "restore", *args], capture_output=True, text=True,
                              timeout=120)

    r = restore("--to", "2001-01-01 00:00", "--new-cluster", "early")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "is before the recoverable window of stanza src" in r.stderr and "nothing was changed" in r.stderr
    r = restore("--to", "yesterday", "--new-cluster", "x")
    assert r.returncode == 2 and 'restore target "yesterday": give latest, an LSN' in r.stderr
    r = restore("--to", "latest", "--new-cluster", "src")
    assert r.returncode == 2 and "that is this cluster" in r.stderr
    r = restore("--to", "latest", "--new-cluster", "copy", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert re.match(r"Target latest: from backup \S+F(_\S+)? \(ended ", r.stdout) and "[bootstrap]" not in r.stdout
    # Not a `pgha up` directory: the section to give the new cluster's agents.
    r = restore("--to", "2099-01-01 00:00:00+01", "--new-cluster", "copy")
    assert r.returncode == 1 and "restore target 2099-01-01 00:00:00+01:00 is in the future" in r.stderr
    r = restore("--to", "latest", "--new-cluster", "copy")
    assert r.returncode == 0, r.stderr
    assert "[bootstrap]\nmethod = restore\nrestore_stanza = src\nrestore_target = latest\n" in r.stdout
    assert "[cluster] name = copy" in r.stdout
    # Without -c there is no repository to read.
    r = ctl(src, "restore", "--to", "latest", "--new-cluster", "copy")
    assert r.returncode == 2 and "HINT: run it on a member's host with -c NODE.conf" in r.stderr
