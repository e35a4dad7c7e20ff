"""Backups the cluster takes: `pgha ctl backup` and the [backup] schedule, real pgBackRest.

A 3-member cluster: `ctl backup --wait` is run by a streaming standby (the primary only
starts and stops it), shows progress and the outcome, and the repository holds the backup
annotated with the request and the member; `ctl list` and /cluster show it; one backup at a
time; --cancel stops a running one without harming the repository; a backup key written by
hand is refused by name. A second 3-member cluster with a schedule: its first full backup is
requested at once; the standby running a later incremental one is killed half-way, another
member runs the same request, and every period gets exactly one backup.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import Cluster, Etcd, PGHA_BIN, etcdctl, make_repo, pg_pid, shared_base, signal_instance, wait_until



def ctl(cluster, *args, timeout=300):
    return subprocess.run([PGHA_BIN, "ctl", "--etcd", cluster.etcd.url, "--cluster", cluster.name, *args],
                          capture_output=True, text=True, timeout=timeout)


def repo_backups(node):
    """pgBackRest's own view of the repository (as the run user, with the member's config)."""
    conf = node.data_dir + ".pgha-backup/pgbackrest.conf"
    r = subprocess.run(["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={conf}",
                        f"--stanza={node.cluster.name}", "--output=json", "info"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)[0]["backup"]



def backup_state(cluster):
    return cluster.view()["backup"]


def wait_archive_ok(cluster, timeout=120):
    def ok():
        v = cluster.view()
        ms = {m["name"]: m for m in v["members"]}
        return v.get("leader") in ms and ms[v["leader"]].get("archive") == "ok"
    wait_until("WAL archiving ok on the leader", ok, timeout=timeout)


@pytest.fixture(scope="module")
def three(request):
    with shared_base(request) as base:
        repo = make_repo(base)
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        try:
            # The server logs show every BASE_BACKUP a member's clone asks of the primary.
            extra = {"backup.repo_path": repo, "parameters.log_replication_commands": "on"}
            for n in ("n1", "n2", "n3"):
                cluster.add(n, extra).start()
            cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)
            wait_archive_ok(cluster)
            cluster.extra = extra
            yield cluster
        finally:
            cluster.stop_all()
            etcd.stop()


def test_ctl_backup_runs_on_a_standby(three):
    cluster = three
    leader = cluster.leader()
    cluster.nodes[leader].sql("CREATE TABLE bk_job AS SELECT generate_series(1, 200000) AS i")
    t0 = time.monotonic()
    r = ctl(cluster, "backup", "--wait")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    req = re.search(r"full backup requested \(id ([0-9a-f]+)\)", r.stdout)
    assert req, r.stdout
    done = re.search(r"done: full backup (\S+F) in \d+ s, [0-9.]+[KMG]B, on (n\d) \(copied from the standby\)",
                     r.stdout)
    assert done, r.stdout
    label, runner = done.group(1), done.group(2)
    assert runner != leader
    assert "running on " + runner in r.stdout     # progress was shown
    print(f"ctl backup --wait: {label} by {runner} in {took:.1f}s")

    # The repository holds it, annotated with the request and the member that ran it.
    entry = next(b for b in repo_backups(cluster.nodes[leader]) if b["label"] == label)
    assert entry["type"] == "full"
    assert entry["annotation"] == {"pgha-id": req.group(1), "pgha-by": "ctl", "pgha-member": runner}

    # ctl list and /cluster say so.
    last = backup_state(cluster)["last"]
    assert last["ok"] is True and last["label"] == label and last["member"] == runner and last["standby"] is True
    assert backup_state(cluster)["request"] is None and backup_state(cluster)["running"] is None
    text = cluster.ctl("list").stdout
    assert f"Backups: last full {label} ok" in text and "WAL last archived" in text
    api = cluster.nodes[runner].api("/cluster")[1]
    assert api["backup"]["last"]["label"] == label


def pg_log(node):
    with open(os.path.join(os.path.dirname(node.data_dir), f"{node.name}.postgresql.log"), errors="replace") as f:
        return f.read()


def test_a_new_standby_is_restored_from_the_repository(three):
    cluster = three
    leader = cluster.nodes[cluster.leader()]
    # The first standbys were cloned with pg_basebackup (the repository was empty then): the log shows it.
    base_backups = pg_log(leader).count("BASE_BACKUP")
    assert base_backups >= 2, "the primary's log does not show the first standbys' BASE_BACKUP"
    rows = leader.sql("SELECT count(*) FROM bk_job")[0][0]
    node = cluster.add("n4", cluster.extra).start()
    try:
        cluster.wait_streaming(["n1", "n2", "n3", "n4"], timeout=180)
        log = node.log()
        assert "cloning from the backup repository" in log and "clone from the repository finished" in log, log[-3000:]
        assert "restoring stanza t as a standby" in log
        # The primary sent WAL only: no BASE_BACKUP since, and the data is all there.
        assert pg_log(leader).count("BASE_BACKUP") == base_backups
        assert node.sql("SELECT count(*) FROM bk_job")[0][0] == rows
        leader.sql("INSERT INTO bk_job VALUES (-1)")
        wait_until("n4 to replay a new write", lambda: node.sql("SELECT count(*) FROM bk_job WHERE i = -1")[0][0] == 1,
                   timeout=30)
    finally:
        node.stop()
        del cluster.nodes["n4"]


def test_incr_and_one_at_a_time(three):
    cluster = three
    r = ctl(cluster, "backup", "--type", "weekly")
    assert r.returncode == 2 and "--type weekly: use full, diff or incr" in r.stderr

    first = ctl(cluster, "backup", "--type", "full")
    assert first.returncode == 0, first.stderr
    # A second request while the first is pending or running is refused by name.
    again = ctl(cluster, "backup", "--type", "incr")
    assert again.returncode == 1
    assert "is already" in again.stderr and "HINT: one at a time" in again.stderr
    # --wait on a busy cluster follows the backup that is there.
    follow = ctl(cluster, "backup", "--wait", "300")
    assert follow.returncode == 0, follow.stdout + follow.stderr
    assert "done: full backup" in follow.stdout

    r = ctl(cluster, "backup", "--type", "incr", "--wait", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ok"] is True and out["type"] == "incr" and out["label"].endswith("I")


def test_cancel_stops_a_running_backup_and_the_repository_stays_sound(three):
    cluster = three
    leader = cluster.leader()
    before = [b["label"] for b in repo_backups(cluster.nodes[leader])]
    # Make the full backup long enough to catch it running.
    cluster.nodes[leader].sql("CREATE TABLE bk_big AS SELECT g AS i, md5(g::text) AS t FROM generate_series(1, 1500000) g")
    r = ctl(cluster, "backup", "--type", "full")
    assert r.returncode == 0, r.stderr
    wait_until("the backup to run", lambda: backup_state(cluster)["running"], timeout=60, interval=0.1)
    r = ctl(cluster, "backup", "--cancel")
    assert r.returncode == 0 and "withdrawn" in r.stdout, r.stdout + r.stderr
    last = wait_until("the cancelled outcome",
                      lambda: (lambda b: b["last"] if b["running"] is None and b["last"]["ok"] is False else None)(
                          backup_state(cluster)), timeout=60)
    assert "cancelled: the request was withdrawn" in last["error"]
    assert [b["label"] for b in repo_backups(cluster.nodes[leader])] == before
    assert "Backups: last full FAILED" in cluster.ctl("list").stdout
    # The next backup completes (pgBackRest resumes or removes the partial one); retention_full = 2
    # then expires the oldest full backup.
    r = ctl(cluster, "backup", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    label = re.search(r"done: full backup (\S+F) ", r.stdout).group(1)
    after = [b["label"] for b in repo_backups(cluster.nodes[leader])]
    assert after[-1] == label and after[:-1] == [b for b in before if not b.startswith(before[0])], after
    r = ctl(cluster, "backup", "--cancel")
    assert r.returncode == 0 and "no backup request to withdraw" in r.stdout


def test_a_backup_key_written_by_hand_is_refused(three):
    cluster = three
    key = f"/pgha/{cluster.name}/backup/request"
    etcdctl(cluster, "put", key, '{"id":"../etc","type":"full"}')
    try:
        r = ctl(cluster, "backup")
        assert r.returncode == 1
        assert '"id" must be 1 to 32 lowercase hex digits' in r.stderr and key in r.stderr
        assert "HINT: `pgha ctl backup --cancel` removes a bad request" in r.stderr
        assert backup_state(cluster)["request"] == {"invalid": 'backup request: "id" must be 1 to 32 lowercase hex digits'}
        wait_until("an agent to say it ignores the key",
                   lambda: any("ignoring the backup/request key in etcd" in n.log() for n in cluster.nodes.values()),
                   timeout=30)
        last_before = backup_state(cluster)["last"]
        time.sleep(2)
        assert backup_state(cluster)["running"] is None and backup_state(cluster)["last"] == last_before
    finally:
        r = ctl(cluster, "backup", "--cancel")
    assert r.returncode == 0 and "withdrawn" in r.stdout


def test_schedule_runs_each_period_once_while_its_runner_is_killed(request):
    with shared_base(request) as base:
        repo = make_repo(base)
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        extra = {"backup.repo_path": repo, "backup.process_max": "1", "backup.full_every": "1d",
                 "backup.incr_every": "1m"}
        try:
            for n in ("n1", "n2", "n3"):
                cluster.add(n, extra).start()
            leader = cluster.wait_streaming(["n1", "n2", "n3"], timeout=180)
            # A new cluster's first full backup is requested as soon as the leader archives.
            first = wait_until("the first scheduled full backup",
                               lambda: (lambda l: l if l and l["type"] == "full" else None)(
                                   backup_state(cluster)["last"]), timeout=120)
            assert first["ok"] is True and first["by"] == "schedule", first
            # Enough new data for the next incremental backup to take a few seconds; catch it running.
            cluster.nodes[leader].sql("CREATE TABLE bk_sched AS SELECT g AS i, md5(g::text) AS t "
                                      "FROM generate_series(1, 1500000) g")
            running = wait_until("the scheduled incremental backup to run",
                                 lambda: (lambda r: r if r and r["type"] == "incr" else None)(
                                     backup_state(cluster)["running"]), timeout=90, interval=0.1)
            victim = running["member"]
            assert victim != leader and running["standby"] is True and running["by"] == "schedule"
            node = cluster.nodes[victim]
            pid = pg_pid(node)
            node.proc.send_signal(signal.SIGKILL)      # the member dies: agent and PostgreSQL
            signal_instance(pid, signal.SIGKILL)
            node.proc.wait(10)
            t0 = time.monotonic()
            # Its claim goes with its lease; another member runs the same request to the end.
            last = wait_until("the scheduled incremental backup to complete elsewhere",
                              lambda: (lambda l: l if l and l["id"] == running["id"] else None)(
                                  backup_state(cluster)["last"]), timeout=120)
            print(f"scheduled incr: runner {victim} killed, {last['member']} finished it "
                  f"{time.monotonic() - t0:.1f}s later")
            assert last["ok"] is True, last
            assert last["member"] != victim and last["by"] == "schedule"
            time.sleep(3)
            backups = repo_backups(cluster.nodes[leader])
            periods = [b["annotation"]["pgha-period"] for b in backups]
            assert len(periods) == len(set(periods)), f"a period ran twice: {periods}"
            assert [b["annotation"]["pgha-id"] for b in backups].count(running["id"]) == 1
            assert f"incr:{running['period']}" in periods
            assert all(b["annotation"]["pgha-by"] == "schedule" for b in backups)
        finally:
            cluster.stop_all()
            etcd.stop()
