"""`pgha ctl -c NODE.conf backups [--json]` on a real pgBackRest repository.

One member with [backup] repo_path: once the agent has created the stanza the command says
there is no backup yet; after a full backup (taken with pgBackRest directly, through the
configuration the agent wrote: `ctl backup` is not there yet) it lists it with its sizes and
WAL range, and the recoverable window starts where it ended. Without -c, or for a member whose
pgBackRest configuration is missing, it fails with the reason.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import PGHA_BIN, Cluster, Etcd, shared_base, wait_until


@pytest.fixture(scope="module")
def member(request):
    with shared_base(request) as base:
        repo = os.path.join(base, "repo")
        os.makedirs(repo, mode=0o700)
        shutil.chown(repo, "postgres", "postgres")
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        try:
            node = cluster.add("n1", {"backup.repo_path": repo}).start()
            cluster.wait_streaming(["n1"], timeout=120)
            yield node, repo
        finally:
            cluster.stop_all()
            etcd.stop()


def ctl(node, *args, conf=None):
    return subprocess.run([PGHA_BIN, "ctl", "-c", conf or node.conf_path, *args],
                          capture_output=True, text=True, timeout=120)


def backups(node):
    r = ctl(node, "backups", "--json")
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def test_backups_listed_with_window(member):
    node, repo = member
    # The leader creates the stanza; until then the repository holds none.
    info = wait_until("the stanza to exist", lambda: (lambda i: i if i["status"]["code"] != 1 else None)(backups(node)),
                      timeout=90)
    assert info["stanza"] == "t"
    assert info["backups"] == [] and info["recoverable"] is None
    r = ctl(node, "backups")
    assert r.returncode == 0, r.stderr
    assert "No backups yet." in r.stdout and "Recoverable: nothing yet" in r.stdout

    node.sql("CREATE TABLE ctl_backups AS SELECT generate_series(1, 10000) AS i")
    conf = os.path.join(node.data_dir + ".pgha-backup", "pgbackrest.conf")
    assert os.path.exists(conf), f"the agent wrote no pgBackRest configuration at {conf}"
    # As the agent runs pgBackRest: the run user, the password from the agent's passfile.
    passfile = os.path.join(os.path.dirname(node.data_dir), "n1.pgpass")
    b = subprocess.run(["runuser", "-u", "postgres", "--", "env", f"PGPASSFILE={passfile}", "pgbackrest",
                        f"--config={conf}", "--stanza=t", "--type=full", "backup"],
                       capture_output=True, text=True, timeout=300)
    assert b.returncode == 0, b.stdout + b.stderr

    info = backups(node)
    assert info["status"] == {"code": 0, "message": "ok"}
    assert len(info["backups"]) == 1
    full = info["backups"][0]
    assert full["type"] == "full" and full["prior"] is None and not full["error"]
    assert full["label"].endswith("F")
    assert full["size"] > 10_000_000 and 0 < full["repo_size"] < full["size"]
    assert full["wal_start"] <= full["wal_stop"] <= info["archive"]["max"]
    assert info["recoverable"] == {"from": full["stop"], "from_backup": full["label"], "to_wal": info["archive"]["max"]}

    r = ctl(node, "backups")
    assert r.returncode == 0, r.stderr
    assert f"Stanza t: ok (pgBackRest configuration {conf})" in r.stdout
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(full["label"]))
    assert " full " in line and f"{full['wal_start']}..{full['wal_stop']}" in line
    assert f"(end of backup {full['label']}) to the last archived WAL segment {info['archive']['max']}" in r.stdout


def test_backups_refused_with_the_reason(member, tmp_path):
    node, _ = member
    r = subprocess.run([PGHA_BIN, "ctl", "--etcd", "http://127.0.0.1:1", "backups"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "HINT: run it on a member's host with -c NODE.conf, whose [backup] repo_path is set" in r.stderr

    # A member whose work directory holds no pgBackRest configuration: pgBackRest's own words.
    with open(node.conf_path) as f:
        text = f.read()
    other = tmp_path / "other.conf"
    other.write_text(text.replace("[backup]\n", f"[backup]\nwork_dir = {tmp_path}/nowhere\n"))
    r = ctl(node, "backups", conf=str(other))
    assert r.returncode == 1
    assert f"{tmp_path}/nowhere/pgbackrest.conf" in r.stderr and "failed with exit code" in r.stderr
