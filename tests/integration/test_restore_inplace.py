"""`pgha ctl restore --to TARGET --in-place`: the running cluster rolled back, real pgBackRest.

On a 3-member cluster: rows committed one by one (commit times recorded with
track_commit_timestamp), a full backup, more commits, DROP TABLE at a recorded time; the
in-place restore to one second before the DROP leaves every row committed before the target
and none after, on every member, on a new timeline, and the cluster takes writes and archives
again. Before that, the cheap refusals (a target outside the window, no terminal without
--force, a cluster in maintenance mode) touch nothing; a restore record naming a member that
does not exist stops every member and `ctl restore --cancel` brings them back as they were;
a record written badly by hand is ignored.
"""
import json
import subprocess
import time
from datetime import timedelta, timezone

import pytest

from conftest import Cluster, Etcd, PGHA_BIN, etcdctl, make_repo, shared_base, wait_until, write_pitr_rows

NAMES = ["r1", "r2", "r3"]


def ctl(node, *args, timeout=120, stdin=subprocess.DEVNULL):
    return subprocess.run([PGHA_BIN, "ctl", "-c", node.conf_path, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=stdin)



def restore_key(cluster):
    return f"/pgha/{cluster.name}/restore"


def utc(ts):
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def started_at(node):
    return node.sql("SELECT pg_postmaster_start_time()")[0][0]


@pytest.fixture(scope="module")
def cluster(request):
    with shared_base(request) as base:
        repo = make_repo(base)
        etcd = Etcd(base).start()
        c = Cluster(base, etcd, name="rip")
        extra = {"backup.repo_path": repo, "parameters.track_commit_timestamp": "on"}
        try:
            for n in NAMES:
                c.add(n, extra).start()
            c.wait_streaming(NAMES, timeout=180)
            wait_until("archiving ok", lambda: c.members()[c.leader()].get("archive") == "ok", timeout=120)
            r = ctl(c.nodes[NAMES[0]], "backup", "--wait", timeout=300)
            assert r.returncode == 0, r.stdout + r.stderr
            yield c
        finally:
            c.stop_all()
            etcd.stop()


def test_refusals_touch_nothing(cluster):
    node = cluster.nodes[NAMES[0]]
    before = {n: started_at(cluster.nodes[n]) for n in NAMES}
    # Before the window.
    r = ctl(node, "restore", "--to", "2001-01-01 00:00:00", "--in-place", "--force")
    assert r.returncode == 1 and "before the recoverable window" in r.stderr and "nothing was changed" in r.stderr, \
        r.stdout + r.stderr
    # No terminal, no --force: the question names what is lost, and the answer is no.
    r = ctl(node, "restore", "--to", "latest", "--in-place")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "LOST:" in r.stdout and "DOWNTIME: all 3 members stop" in r.stdout, r.stdout
    assert "not confirmed; nothing was changed" in r.stderr, r.stderr
    # Both kinds at once, or neither.
    r = ctl(node, "restore", "--to", "latest", "--in-place", "--new-cluster", "x")
    assert r.returncode == 2 and "one of --new-cluster NAME or --in-place" in r.stderr, r.stderr
    # Maintenance mode.
    cluster.ctl("pause", "--force")
    try:
        r = ctl(node, "restore", "--to", "latest", "--in-place", "--force")
        assert r.returncode == 1 and "maintenance mode" in r.stderr and "HINT: `pgha ctl resume`" in r.stderr, \
            r.stdout + r.stderr
    finally:
        cluster.ctl("resume", "--force")
    assert etcdctl(cluster, "get", restore_key(cluster)) == ""
    assert {n: started_at(cluster.nodes[n]) for n in NAMES} == before


def test_a_bad_record_is_ignored(cluster):
    etcdctl(cluster, "put", restore_key(cluster),
            '{"id":"1","target":"latest","set":"1F; rm -rf /","member":"r1","phase":"stopping"}')
    try:
        time.sleep(3)
        assert cluster.wait_streaming(NAMES, timeout=30)
        out = ctl(cluster.nodes[NAMES[0]], "list").stdout
        assert "the restore key is not valid (agents ignore it)" in out and "backup label" in out, out
        logs = "".join(cluster.nodes[n].log() for n in NAMES)
        assert "ignoring the restore key in etcd" in logs
    finally:
        etcdctl(cluster, "del", restore_key(cluster))


def test_a_restore_nobody_runs_stops_everyone_until_cancelled(cluster):
    # A well-formed record naming a member that does not exist: every member stops and stays
    # stopped (nothing serves the data being rolled back, nobody elects), nobody restores.
    record = {"id": "abc1", "target": "latest", "set": "20260101-000000F", "member": "ghost",
              "phase": "stopping", "requested_at": int(time.time())}
    etcdctl(cluster, "put", restore_key(cluster), json.dumps(record))
    try:
        def all_stopped():
            ms = cluster.members()
            return all(ms[n]["state"] == "stopped" and ms[n].get("restore_id") == "abc1" for n in NAMES)
        wait_until("every member stopped for the restore", all_stopped, timeout=60)
        time.sleep(3)
        assert all_stopped(), cluster.members()
        out = ctl(cluster.nodes[NAMES[0]], "list").stdout
        assert "In-place restore to latest by ghost: stopping" in out, out
        r = ctl(cluster.nodes[NAMES[0]], "restore", "--cancel")
        assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
    finally:
        got = cluster.view().get("restore") or {}
        if got.get("phase") not in ("cancelled", "done"):
            etcdctl(cluster, "del", restore_key(cluster))
    cluster.wait_streaming(NAMES, timeout=120)
    assert cluster.view()["restore"]["phase"] == "cancelled"
    # Cancelling again: nothing under way.
    r = ctl(cluster.nodes[NAMES[0]], "restore", "--cancel")
    assert r.returncode == 0 and "No in-place restore is under way" in r.stdout, r.stdout + r.stderr


def test_in_place_pitr_to_one_second_before_drop_table(cluster):
    name = cluster.leader()
    leader = cluster.nodes[name]
    tl_before = leader.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
    leader.sql("CREATE TABLE pitr (id int PRIMARY KEY, note text)")
    commits = {}

    def write(first, n, pause):
        write_pitr_rows(leader, commits, first, n, pause)

    write(1, 100, 0)
    r = ctl(leader, "backup", "--wait", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    write(1001, 60, 0.05)
    drop_at = leader.sql("SELECT clock_timestamp()")[0][0]
    leader.sql("DROP TABLE pitr")
    target_ts = drop_at - timedelta(seconds=1)
    before = sorted(i for i, t in commits.items() if t <= target_ts)
    after = sorted(i for i, t in commits.items() if t > target_ts)
    assert len(before) > 100 and after, (len(before), len(after))

    # No pg_switch_wal here: the leader closes its segment itself before it stops.
    t0 = time.monotonic()
    r = ctl(leader, "restore", "--to", utc(target_ts), "--in-place", "--force", "--wait", "300", timeout=330)
    took = time.monotonic() - t0
    print(f"in-place restore: {took:.1f}s from the request to every member streaming\n{r.stdout}")
    assert r.returncode == 0, r.stdout + r.stderr
    for phase in ("stopping", "restoring", "done", "every member runs on the new timeline"):
        assert phase in r.stdout, r.stdout
    rec = cluster.view()["restore"]
    assert rec["phase"] == "done" and rec["member"] == name, rec
    assert cluster.leader() == name
    cluster.wait_streaming(NAMES, timeout=120)
    tl = leader.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
    assert tl > tl_before and rec["timeline"] == tl, (tl_before, tl, rec)
    got = [row[0] for row in leader.sql("SELECT id FROM pitr ORDER BY id")]
    assert got == before, f"missing {sorted(set(before) - set(got))[:5]}, extra {sorted(set(got) - set(before))[:5]}"
    # Every standby holds the same rows: they left the old timeline (rewound or re-cloned).
    leader.sql("INSERT INTO pitr VALUES (999999, 'after the restore')")
    want = leader.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    for n in NAMES:
        if n == name:
            continue
        node = cluster.nodes[n]
        wait_until(f"{n} to replay the write after the restore",
                   lambda: node.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (want,))[0][0], timeout=60)
        assert [row[0] for row in node.sql("SELECT id FROM pitr ORDER BY id")] == before + [999999]
    # Archiving goes on on the new timeline, and the window still starts at the first backup.
    seg = leader.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    assert seg.startswith("%08X" % tl)
    wait_until("the new timeline's WAL archived",
               lambda: leader.sql("SELECT coalesce(last_archived_wal >= %s, false) FROM pg_stat_archiver",
                                  (seg,))[0][0], timeout=60)
    r = ctl(leader, "backups")
    assert r.returncode == 0 and "Recoverable: from" in r.stdout, r.stdout + r.stderr
    out = ctl(leader, "list").stdout
    assert "Last in-place restore: to " in out and f"(timeline {tl})" in out, out
    log = leader.log()
    assert "in-place restore: from backup" in log and "--delta" in log, log[-3000:]


def test_a_failed_restore_keeps_everyone_stopped_and_untouched_can_be_cancelled(cluster):
    # The backup the record names is not in the repository: the leader's job fails before
    # pgbackrest touches anything. Every member stays stopped; ctl list says why; the cancel is
    # allowed (nothing was overwritten) and the cluster comes back with its data.
    name = cluster.leader()
    leader = cluster.nodes[name]
    leader.sql("CREATE TABLE IF NOT EXISTS kept (id int)")
    leader.sql("INSERT INTO kept VALUES (1)")
    record = {"id": "fa11", "target": "latest", "set": "20200101-000000F", "member": name,
              "phase": "stopping", "requested_at": int(time.time())}
    etcdctl(cluster, "put", restore_key(cluster), json.dumps(record))
    try:
        wait_until("the restore to fail", lambda: (cluster.view().get("restore") or {}).get("phase") == "failed",
                   timeout=120)
        rec = cluster.view()["restore"]
        assert rec["touched"] is False and "20200101-000000F is not in the repository" in rec["error"], rec
        time.sleep(2)
        ms = cluster.members()
        assert all(ms[n]["state"] != "running" and ms[n]["state"] != "streaming" for n in NAMES), ms
        out = ctl(leader, "list").stdout
        assert "failed" in out and "`pgha ctl restore --cancel`" in out, out
        r = ctl(leader, "restore", "--cancel")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        if (cluster.view().get("restore") or {}).get("phase") not in ("cancelled", "done"):
            etcdctl(cluster, "del", restore_key(cluster))
    cluster.wait_streaming(NAMES, timeout=120)
    assert cluster.leader() == name
    assert leader.sql("SELECT count(*) FROM kept")[0][0] == 1
