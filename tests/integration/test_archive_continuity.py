"""Archive continuity across failover and switchover: real PostgreSQL 15, etcd and pgBackRest.

A 3-member cluster in synchronous mode archives to a posix repository; a full backup is taken,
then a writer inserts rows and records when each COMMIT was acknowledged. The leader's archiver
falls behind (stopped with SIGSTOP, as a slow repository would leave it) while segments are
written and streamed, then the leader node dies (SIGKILL of agent and PostgreSQL). The new leader
must archive those segments, which only the standbys still hold; the old leader rejoins (pushing
the WAL it still holds first); a switchover follows. Then (a) the archive has no gap on the
timeline path from the backup to the end (our own check, and `pgbackrest verify`), and (b) a
point-in-time restore into a separate PostgreSQL, to a time after both events, has every row
acknowledged before that time.

A second test leaves a different `.partial` under the name a promotion will archive (what a
member promoted earlier off the same segment, then lost, leaves behind): archiving must go on.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import time

from conftest import PG_BIN, Writer, free_port, instance_pids, pg_pid, wait_until
from test_backup import make_repo, wait_archive_ok
from test_sync import FAST, kill_node, wait_new_leader, wait_sync

SEG_SIZE = 16 * 1024 * 1024
SEGS_PER_XLOGID = 0x100000000 // SEG_SIZE


def pgbackrest(node, *args):
    """pgbackrest as the postgres OS user with the member's generated config and the agent's
    passfile (a backup connects to PostgreSQL)."""
    conf = node.data_dir + ".pgha-backup/pgbackrest.conf"
    pgpass = os.path.join(os.path.dirname(node.data_dir), f"{node.name}.pgpass")
    r = subprocess.run(["runuser", "-u", "postgres", "--", "env", f"PGPASSFILE={pgpass}", "pgbackrest",
                        f"--config={conf}", f"--stanza={node.cluster.name}", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"pgbackrest {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def start3(cluster, repo):
    extra = dict(FAST)
    extra["backup.repo_path"] = repo
    for n in ("n1", "n2", "n3"):
        cluster.add(n, extra).start()
    return cluster.wait_streaming(["n1", "n2", "n3"], timeout=120)


def archive_dir(repo):
    return os.path.join(repo, "archive", "t", "15-1")


def archived_names(repo):
    """Every WAL file name in the archive (segments, .partial, .history), without pgBackRest's checksum suffix."""
    names = set()
    for path in glob.glob(os.path.join(archive_dir(repo), "*")):
        base = os.path.basename(path)
        if base.endswith(".history"):
            names.add(base)
    for path in glob.glob(os.path.join(archive_dir(repo), "*", "*")):
        m = re.match(r"^([0-9A-F]{24}(?:\.partial)?)-[0-9a-f]{40}", os.path.basename(path))
        if m:
            names.add(m.group(1))
    return names


def seg_name(tli, segno):
    return f"{tli:08X}{segno // SEGS_PER_XLOGID:08X}{segno % SEGS_PER_XLOGID:08X}"


def seg_of_name(name):
    return int(name[8:16], 16) * SEGS_PER_XLOGID + int(name[16:24], 16)


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def read_history(repo, tli):
    """[(parent tli, switchpoint)] of timeline tli's history file in the archive."""
    [path] = glob.glob(os.path.join(archive_dir(repo), f"{tli:08X}.history*"))
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                out.append((int(parts[0]), lsn_int(parts[1])))
    return out


def gaps(repo, backup_start, last_tli, last_seg):
    """Segments recovery from backup_start (a WAL file name) to last_seg on last_tli would read and
    the archive lacks: on each timeline of the path, from where it begins (or the backup) to the
    segment before the next one branches off (or last_seg)."""
    names = archived_names(repo)
    path = read_history(repo, last_tli) if last_tli > 1 else []
    # [(tli, first segno, last segno)] along the path.
    start_tli, start_seg = int(backup_start[:8], 16), seg_of_name(backup_start)
    spans, begin = [], start_seg
    for tli, switch in path:
        end = switch // SEG_SIZE   # the child timeline's copy of this segment is read instead
        if tli >= start_tli:
            spans.append((tli, begin, end - 1))
        begin = max(begin, end)
    spans.append((last_tli, begin, last_seg))
    missing = [seg_name(t, s) for t, lo, hi in spans for s in range(lo, hi + 1) if seg_name(t, s) not in names]
    return spans, missing


def archiver_pid(node):
    for pid in instance_pids(pg_pid(node)):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"archiver" in f.read():
                    return pid
        except OSError:
            pass
    raise AssertionError(f"no archiver process under {node.name}'s PostgreSQL")


def switch_wal(node):
    return node.sql("SELECT pg_walfile_name(pg_current_wal_lsn()), pg_switch_wal()::text")[0]


def wait_replayed(cluster, leader, lsn, names):
    for n in names:
        node = cluster.nodes[n]
        wait_until(f"{n} to receive {lsn}", lambda: node.sql(
            "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,))[0][0], timeout=30)


def restore_to(cluster, repo, target, base):
    """pgbackrest restore --type=time into a new directory, started as a separate PostgreSQL on a
    free port with archiving off (it must never push into the cluster's repository); its
    connection."""
    import psycopg
    data = os.path.join(base, "restored")
    work = os.path.join(base, "restore-work")
    for d in (data, work):
        os.makedirs(d, mode=0o700)
        shutil.chown(d, "postgres", "postgres")
    conf = os.path.join(work, "pgbackrest.conf")
    with open(conf, "w") as f:
        f.write(f"[global]\nrepo1-path={repo}\nlog-path={work}\nlock-path={work}\nspool-path={work}\n"
                f"log-level-console=warn\nlog-level-file=info\n\n[t]\npg1-path={data}\n")
    shutil.chown(conf, "postgres", "postgres")
    t0 = time.monotonic()
    r = subprocess.run(["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={conf}", "--stanza=t",
                        "restore", "--type=time", f"--target={target}", "--target-action=promote"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    restored_s = time.monotonic() - t0
    port = free_port()
    log = os.path.join(work, "postgres.log")
    opts = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={work} "
            f"-c hba_file={data}/pg_hba.conf -c archive_mode=off -c primary_conninfo= "
            f"-c synchronous_standby_names= -c cluster_name=restored")
    r = subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D", data, "-l", log,
                        "-o", opts, "-w", "-t", "90", "start"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + open(log).read()[-3000:]

    def promoted():
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=cluster.su_pw,
                             dbname="postgres", connect_timeout=3, autocommit=True) as c:
            return not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    wait_until("the restored server to reach the target and promote", promoted, timeout=90)
    print(f"restore: pgbackrest restore {restored_s:.1f}s, recovered and promoted "
          f"{time.monotonic() - t0 - restored_s:.1f}s later")
    return data, port, log


def stop_restored(data):
    subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate",
                    "-w", "stop"], capture_output=True, timeout=60)


def test_failover_and_switchover_leave_no_gap(base_dir, cluster):
    import psycopg
    repo = make_repo(base_dir)
    leader = start3(cluster, repo)
    cluster.ctl("set", "synchronous_mode=on", "--force")
    wait_sync(cluster, leader, 1)
    wait_archive_ok(cluster, leader, timeout=60)
    ln = cluster.nodes[leader]
    t0 = time.monotonic()
    pgbackrest(ln, "backup", "--type=full")
    info = json.loads(pgbackrest(ln, "info", "--output=json"))
    backup_start = info[0]["backup"][-1]["archive"]["start"]
    print(f"full backup {time.monotonic() - t0:.1f}s, WAL from {backup_start}")
    clock = time.time() - time.monotonic()   # Writer's times are monotonic: this makes them wall-clock
    writer = Writer(cluster, interval=0.005).start()
    try:
        wait_until("acknowledged writes", lambda: len(writer.acked_on(leader)) > 20, timeout=20)
        # The leader's archiver falls behind while segments fill and reach the standbys.
        arch = archiver_pid(ln)
        os.kill(arch, signal.SIGSTOP)
        time.sleep(1)
        held = []
        for _ in range(3):
            time.sleep(0.5)
            seg, lsn = switch_wal(ln)
            held.append(seg)
        wait_replayed(cluster, leader, lsn, [n for n in cluster.nodes if n != leader])
        # One more segment that only the leader holds: its WAL senders stop first (its commits wait
        # for the synchronous standby and are never acknowledged).
        for pid in [r[0] for r in ln.sql("SELECT pid FROM pg_stat_replication")]:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(0.5)
        only_old, _ = switch_wal(ln)
        names = archived_names(repo)
        assert not [s for s in held + [only_old] if s in names], f"the stalled archiver pushed {held}"
        kill_node(ln)
        t_kill = time.monotonic()
        new = wait_new_leader(cluster, leader, timeout=40)
        print(f"failover: {new} leads {time.monotonic() - t_kill:.1f}s after the kill; segments only the "
              f"standbys held: {held}")
        # Those segments reach the archive from the new leader, within seconds.
        wait_until(f"{held} archived after the failover", lambda: set(held) <= archived_names(repo), timeout=30)
        held_s = time.monotonic() - t_kill
        tl = cluster.nodes[new].sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
        wait_until(f"timeline {tl}'s history archived", lambda: f"{tl:08X}.history" in archived_names(repo),
                   timeout=30)
        # PostgreSQL on the new leader counts them archived too: none of those archived again failed.
        nn = cluster.nodes[new]
        wait_until("the new leader's archiver past them", lambda: nn.sql(
            "SELECT last_archived_wal >= %s FROM pg_stat_archiver", (held[-1],))[0][0], timeout=30)
        assert nn.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0
        print(f"held segments archived {held_s:.1f}s after the kill; history of timeline {tl} too")
        wait_until("writes on the new leader", lambda: writer.acked_on(new), timeout=30)
        # The old leader rejoins.
        log_before = len(ln.log())
        ln.start()
        cluster.wait_streaming(list(cluster.nodes), timeout=120)
        rejoin_log = ln.log()[log_before:]
        print("old leader rejoined:", [l[l.find("]") + 2:] for l in rejoin_log.splitlines()
                                       if "this member held" in l or "pg_rewind finished" in l][:4])
        # It pushed what it held before pg_rewind threw it away: the segment no standby had.
        assert "WAL file(s) this member holds but never archived" in rejoin_log, rejoin_log[-3000:]
        assert only_old in archived_names(repo), f"{only_old}, held only by the old leader, is not archived"
        # A switchover to the synchronous standby.
        [target] = wait_sync(cluster, new, 1, timeout=30)
        r = cluster.ctl("switchover", "--to", target, "--force", "--wait", "60", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        t_switched = time.monotonic()
        # The new timeline's history file is archived, and PostgreSQL goes on archiving, within
        # seconds (pgBackRest's archive lock once held that push up for its 60 s archive-timeout).
        tn = cluster.nodes[target]
        tl3 = tn.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
        wait_until(f"timeline {tl3}'s history archived", lambda: f"{tl3:08X}.history" in archived_names(repo),
                   timeout=30)
        seg3, _ = switch_wal(tn)
        wait_until(f"{target} archiving {seg3}", lambda: tn.sql(
            "SELECT last_archived_wal >= %s FROM pg_stat_archiver", (seg3,))[0][0], timeout=20)
        print(f"switchover: timeline {tl3}'s history and segment {seg3} archived "
              f"{time.monotonic() - t_switched:.1f}s after it")
        cluster.wait_streaming(list(cluster.nodes), timeout=90)
        assert cluster.leader() == target
        wait_until("writes on the switchover's leader", lambda: writer.acked_on(target), timeout=30)
        time.sleep(2)
        target_time = time.time()
        time.sleep(1.5)
    finally:
        writer.stop()
    final = cluster.nodes[target]
    seg, _ = switch_wal(final)
    final_tl = int(seg[:8], 16)
    wait_until(f"{seg} archived", lambda: final.sql(
        "SELECT last_archived_wal >= %s FROM pg_stat_archiver", (seg,))[0][0], timeout=60)
    assert seg in archived_names(repo)
    # What archiving again cost: segments pgBackRest found already archived, unchanged.
    again = {n: open(os.path.join(node.dir, f"{n}.postgresql.log"), errors="replace").read().count(
        "archive with the same checksum") for n, node in cluster.nodes.items()}
    failed = {n: node.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] for n, node in cluster.nodes.items()}
    print(f"segments found already archived (same checksum) per member: {again}; archive_command failures "
          f"since each member's last start: {failed}")
    assert failed[target] == 0, failed

    # (a) No gap from the backup's first segment to the last one, along the timelines' path.
    spans, missing = gaps(repo, backup_start, final_tl, seg_of_name(seg))
    print("timeline path (tli, first segno, last segno):", spans)
    assert len(spans) >= 3, spans   # the failover and the switchover each started a timeline
    assert not missing, f"the archive lacks {missing}"
    # pgbackrest verify checks every file's checksum and, at detail level, lists each run of
    # consecutive segments per timeline: a gap splits a run in two.
    out = pgbackrest(final, "verify", "--log-level-console=detail")
    runs = re.findall(r"wal start: ([0-9A-F]{24}), wal stop: ([0-9A-F]{24})", out)
    print("pgbackrest verify:", runs)
    assert "completed successfully" in out and " WARN: " not in out and " ERROR: " not in out, out
    for tli, lo, hi in spans:
        covering = [r for r in runs if int(r[0][:8], 16) == tli and seg_of_name(r[0]) <= lo <= hi <= seg_of_name(r[1])]
        assert covering, f"pgbackrest verify shows no run of timeline {tli} from segment {lo} to {hi}: {runs}"

    # (b) Point-in-time restore to after both events: every row acknowledged before then is there.
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(target_time)) + f".{int(target_time % 1 * 1e6):06d}+00"
    data, port, _ = restore_to(cluster, repo, stamp, base_dir)
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=cluster.su_pw,
                             dbname="postgres", connect_timeout=5, autocommit=True) as c:
            have = {r[0] for r in c.execute("SELECT id FROM sb_writes").fetchall()}
    finally:
        stop_restored(data)
    acked = [(w[1], w[3] + clock, w[0], w[3]) for w in writer.acked]
    before = [w for w in acked if w[1] < target_time]
    lost = [w for w in before if w[0] not in have]
    # Rows acknowledged by each leader in turn: before the kill, after the failover, after the switchover.
    phases = [len([w for w in before if w[2] == leader and w[3] < t_kill]),
              len([w for w in before if w[2] == new and t_kill < w[3] < t_switched]),
              len([w for w in before if w[2] == target and w[3] > t_switched])]
    print(f"restored to {stamp}: {len(have)} rows; {len(before)} acknowledged before the target "
          f"(by {leader}, {new}, {target} in turn: {phases}), {len(acked) - len(before)} after")
    assert all(phases), phases
    assert not lost, f"{len(lost)} acknowledged rows missing after the restore: {lost[:5]}"
    # The target is honoured: rows acknowledged well after it are not there.
    late = [w for w in acked if w[1] > target_time + 1.0]
    assert late and not [w for w in late if w[0] in have], "rows after the target were restored"


def test_partial_already_archived_with_other_content_does_not_stop_archiving(base_dir, cluster):
    repo = make_repo(base_dir)
    extra = dict(FAST)
    extra["backup.repo_path"] = repo
    cluster.add("n1", extra).start()
    cluster.wait_streaming(["n1"], timeout=60)
    cluster.add("n2", extra).start()
    cluster.wait_streaming(["n1", "n2"], timeout=90)
    wait_archive_ok(cluster, "n1", timeout=60)
    n1, n2 = cluster.nodes["n1"], cluster.nodes["n2"]
    n1.sql("CREATE TABLE p (i int)")
    n1.sql("INSERT INTO p SELECT generate_series(1, 1000)")
    # What another promotion off the segment the switchover will leave would have archived: the
    # same name, other content. The old primary's shutdown (archive_mode on) switches to the next
    # segment, which the promotion leaves as .partial. (pgBackRest pushes only from the data
    # directory; PostgreSQL ignores the file there, and it goes at once.) Again if something
    # switched segments meanwhile.
    for _ in range(3):
        cur, seg = n1.sql("SELECT pg_walfile_name(pg_current_wal_lsn()), "
                          "pg_walfile_name(pg_current_wal_lsn() + 16777216)")[0]
        other = os.path.join(n1.data_dir, "pg_wal", seg + ".partial")
        shutil.copy(os.path.join(n1.data_dir, "pg_wal", cur), other)
        shutil.chown(other, "postgres", "postgres")
        try:
            pgbackrest(n1, "--no-archive-async", "archive-push", other)
        finally:
            os.unlink(other)
        n1.sql("INSERT INTO p SELECT generate_series(1, 1000)")   # the real segment goes on
        if n1.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0] == cur:
            break
    assert seg + ".partial" in archived_names(repo)
    r = cluster.ctl("switchover", "--to", "n2", "--force", "--wait", "60", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    cluster.wait_streaming(["n1", "n2"], timeout=90)
    # n2's own .partial is refused by pgBackRest (ArchiveDuplicateError); PostgreSQL archives in
    # order, so it would retry that file forever and never mark what follows archived, although
    # pgBackRest's asynchronous queue has pushed it. It goes on past it all the same.
    t0 = time.monotonic()
    new_seg, _ = switch_wal(n2)
    assert new_seg.startswith("00000002"), new_seg
    wait_until(f"PostgreSQL on n2 to archive {new_seg} after the refused .partial", lambda: n2.sql(
        "SELECT last_archived_wal >= %s FROM pg_stat_archiver", (new_seg,))[0][0], timeout=60)
    print(f"{new_seg} archived {time.monotonic() - t0:.1f}s after the switchover's end")
    assert new_seg in archived_names(repo)
    assert os.path.exists(os.path.join(n2.data_dir, "pg_wal", seg + ".partial"))   # the switchover left seg
    log = n2.log()
    assert f"the archive already holds {seg}.partial with other content" in log, log[-3000:]
    assert os.path.exists(os.path.join(n2.data_dir, "pg_wal", "archive_status", seg + ".partial.done"))
    wait_archive_ok(cluster, "n2", timeout=30)


def freeze_matching(marks, stop, frozen):
    """SIGSTOP every process whose command line holds all of marks, until stop is set."""
    seen = set()
    while not stop.is_set():
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in seen:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if all(m in cmd for m in marks):
                seen.add(int(entry))
                try:
                    os.kill(int(entry), signal.SIGSTOP)
                    frozen.append(int(entry))
                except ProcessLookupError:
                    pass
        time.sleep(0.005)


def test_rejoin_push_never_holds_the_member_back_for_long(base_dir, cluster):
    """The old leader rejoins holding WAL its archiver never pushed, and pushing it hangs (each
    archive-push the agent starts is frozen with SIGSTOP, as on a hung repository mount): the agent
    stops it at the deadline (30 s) and the member goes on rejoining."""
    import threading
    repo = make_repo(base_dir)
    extra = dict(FAST)
    extra["backup.repo_path"] = repo
    for n in ("n1", "n2"):
        cluster.add(n, extra).start()
    leader = cluster.wait_streaming(["n1", "n2"], timeout=90)
    wait_archive_ok(cluster, leader, timeout=60)
    ln = cluster.nodes[leader]
    os.kill(archiver_pid(ln), signal.SIGSTOP)
    ln.sql("CREATE TABLE h (i int)")
    for _ in range(2):
        ln.sql("INSERT INTO h SELECT generate_series(1, 1000)")
        _, lsn = switch_wal(ln)
    wait_replayed(cluster, leader, lsn, [n for n in cluster.nodes if n != leader])
    kill_node(ln)
    new = wait_new_leader(cluster, leader, timeout=40)
    stop, frozen = threading.Event(), []
    marks = [b"--no-archive-async", b"archive-push", os.path.join(ln.data_dir, "pg_wal").encode()]
    watcher = threading.Thread(target=freeze_matching, args=(marks, stop, frozen), daemon=True)
    watcher.start()
    try:
        log_before = len(ln.log())
        t0 = time.monotonic()
        ln.start()
        cluster.wait_streaming(list(cluster.nodes), timeout=120)
        took = time.monotonic() - t0
    finally:
        stop.set()
        watcher.join(5)
        for pid in frozen:   # any the agent did not kill
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    log = ln.log()[log_before:]
    print(f"the old leader streams from {new} {took:.1f}s after its start; archive-push frozen: {frozen}")
    assert frozen, "no archive-push of the rejoin was seen"
    assert "took over 30 s (stopped)" in log, log[-3000:]
    assert 30 <= took < 75, took
