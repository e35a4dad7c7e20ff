"""WAL archiving with pgBackRest ([backup] repo_path), real PostgreSQL 15, etcd and pgBackRest.

One 2-member cluster for the file, its repository encrypted with a passphrase from a file:
the stanza is created at bootstrap, WAL reaches the repository within seconds, every member
carries the archive settings, a switchover's new primary archives its history file and new
WAL, and the passphrase shows in no process's argv or environment and in no log. A
separate one-member cluster with a bad repository keeps serving writes and says why
archiving fails, then recovers once the repository is fixed.
"""
import glob
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import Cluster, Etcd, module_cluster, wait_until

PASSPHRASE = "cipher-" + os.urandom(12).hex()


def make_repo(base, name="backup-repo", owner="postgres"):
    repo = os.path.join(base, name)
    os.makedirs(repo, exist_ok=True)
    shutil.chown(repo, owner, owner)
    os.chmod(repo, 0o750)
    return repo


def pgbackrest(node, *args):
    """pgbackrest as the postgres OS user with the member's generated config (never as root:
    its lock and log files must stay the run user's)."""
    conf = node.data_dir + ".pgha-backup/pgbackrest.conf"
    r = subprocess.run(["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={conf}",
                        f"--stanza={node.cluster.name}", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"pgbackrest {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def archived(repo, pattern):
    return glob.glob(os.path.join(repo, "archive", "t", "15-1", pattern))


@pytest.fixture(scope="module")
def two(request):
    import tempfile
    # The cipher file and repository must exist before the agents start: module_cluster
    # makes the base directory, so the node options point into a directory made here.
    pre = tempfile.mkdtemp(prefix="pgha-backup-", dir="/tmp")
    os.chmod(pre, 0o755)
    repo = make_repo(pre)
    cipher = os.path.join(pre, "cipher")
    with open(cipher, "w") as f:
        f.write(PASSPHRASE + "\n")
    os.chmod(cipher, 0o600)
    extra = {"backup.repo_path": repo, "backup.cipher_pass_file": cipher}
    try:
        with module_cluster(request, ["n1", "n2"], extra) as (cluster, _):
            yield cluster, repo
    finally:
        shutil.rmtree(pre, ignore_errors=True)


def wait_archive_ok(cluster, name, timeout=120):
    def ok():
        m = cluster.members().get(name)
        return m and m.get("archive") == "ok"
    wait_until(f"{name}'s archive state ok", ok, timeout=timeout)


def switch_and_wait_archived(node, timeout=30):
    """pg_switch_wal() on node; the finished segment is archived without a failure."""
    seg = node.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    t0 = time.monotonic()

    def done():
        last, failed = node.sql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver")[0]
        assert failed == 0, f"archive_command failed {failed} times"
        return last >= seg and not last.endswith(".history")
    wait_until(f"segment {seg} archived", done, timeout=timeout)
    return seg, time.monotonic() - t0


def test_stanza_created_and_wal_archived(two):
    cluster, repo = two
    leader = cluster.leader()
    t0 = time.monotonic()
    wait_archive_ok(cluster, leader)
    print(f"archive ok {time.monotonic() - t0:.1f}s after the cluster was up")
    info = json.loads(pgbackrest(cluster.nodes[leader], "info", "--output=json"))
    assert info[0]["name"] == "t"
    # The stanza is sound; no backup was taken yet (not in this slice): code 2, "no valid backups".
    assert info[0]["status"]["code"] == 2 and info[0]["status"]["message"] == "no valid backups", info
    assert info[0]["db"][0]["system-id"] == int(cluster.members()[leader]["system_id"]), info
    assert info[0]["cipher"] == "aes-256-cbc"
    # The leader's WAL reaches the repository within seconds.
    leader_node = cluster.nodes[leader]
    leader_node.sql("CREATE TABLE IF NOT EXISTS arc (i int)")
    leader_node.sql("INSERT INTO arc SELECT generate_series(1, 1000)")
    seg, took = switch_and_wait_archived(leader_node)
    print(f"segment {seg} archived in {took:.2f}s")
    assert archived(repo, f"{seg[:16]}/{seg}-*")
    info = json.loads(pgbackrest(leader_node, "info", "--output=json"))
    assert info[0]["archive"][0]["max"] >= seg


def test_every_member_has_the_archive_settings(two):
    cluster, _ = two
    for name, node in cluster.nodes.items():
        mode, ac, rc = (node.sql(f"SHOW {p}")[0][0] for p in ("archive_mode", "archive_command", "restore_command"))
        conf = node.data_dir + ".pgha-backup/pgbackrest.conf"
        assert mode == "on", name
        assert ac == f"'/usr/bin/pgbackrest' '--config={conf}' --stanza=t archive-push %p", name
        # Bounded: a hung repository must not hold recovery or a promotion (10 s; 3 s while promoting).
        assert rc == (f"'/usr/bin/timeout' 10 '/usr/bin/pgbackrest' '--config={conf}' --stanza=t "
                      f"archive-get %f \"%p\""), name
        st = os.stat(conf)
        assert st.st_mode & 0o777 == 0o600 and st.st_uid != 0, name
        assert os.stat(os.path.dirname(conf)).st_mode & 0o777 == 0o700


def test_switchover_new_primary_archives_history_and_wal(two):
    cluster, repo = two
    old = cluster.wait_streaming(list(cluster.nodes))
    wait_archive_ok(cluster, old)
    new = next(n for n in cluster.nodes if n != old)
    t0 = time.monotonic()
    r = cluster.ctl("switchover", "--to", new, "--force", "--wait", "60", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    switched = time.monotonic() - t0
    node = cluster.nodes[new]
    tl = node.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
    history = f"{tl:08X}.history"
    wait_until(f"{history} in the archive", lambda: archived(repo, history + "*"), timeout=20)
    history_s = time.monotonic() - t0 - switched
    seg, took = switch_and_wait_archived(node, timeout=20)
    assert seg.startswith(f"{tl:08X}")
    assert archived(repo, f"{seg[:16]}/{seg}-*")
    # The new primary checks archiving at once (a lock its archive-push holds only delays that by a second).
    wait_archive_ok(cluster, new, timeout=20)
    assert "WAL archiving: pgbackrest" not in node.log(), node.log()
    print(f"switchover {switched:.1f}s; history file archived {history_s:.2f}s later; "
          f"a new segment of timeline {tl} archived in {took:.2f}s")
    # The old primary follows as a standby with the same settings.
    cluster.wait_streaming(list(cluster.nodes))
    assert cluster.nodes[old].sql("SHOW archive_mode")[0][0] == "on"


def assert_nowhere(secrets, base):
    """No secret in any process's argv or environment, nor in a log file under base (the agents',
    PostgreSQL's and pgBackRest's own). Returns how many log files were read."""
    secrets = [s.encode() for s in secrets]
    for pid_s in os.listdir("/proc"):
        if not pid_s.isdigit():
            continue
        for what in ("cmdline", "environ"):
            try:
                data = open(f"/proc/{pid_s}/{what}", "rb").read()
            except OSError:
                continue
            for s in secrets:
                assert s not in data, f"a secret in /proc/{pid_s}/{what}"
    logs = 0
    for root, _, files in os.walk(base):
        for f in files:
            if f.endswith(".log"):
                logs += 1
                with open(os.path.join(root, f), "rb") as fh:
                    text = fh.read()
                for s in secrets:
                    assert s not in text, f"a secret in {os.path.join(root, f)}"
    return logs


def test_passphrase_nowhere_but_the_config(two):
    cluster, _ = two
    assert_nowhere([PASSPHRASE], cluster.base)
    # ... where it is: only the 0600 config file.
    for node in cluster.nodes.values():
        with open(node.data_dir + ".pgha-backup/pgbackrest.conf") as f:
            lines = [l for l in f if PASSPHRASE in l]
        assert lines == [f"repo1-cipher-pass={PASSPHRASE}\n"]


def test_bad_repository_keeps_writes_and_says_why(base_dir, etcd):
    cluster = Cluster(base_dir, etcd)
    repo = os.path.join(base_dir, "missing-repo")
    node = cluster.add("n1", {"backup.repo_path": repo})
    try:
        node.start()
        cluster.wait_streaming(["n1"])

        def archive_state(want):
            def f():
                m = cluster.members().get("n1")
                return m and want in m.get("archive", "") and m["archive"]
            return f
        st = wait_until("a missing repository named", archive_state(f"repository {repo}: No such file"), timeout=30)
        assert st.startswith("failing: ")
        node.sql("CREATE TABLE w (i int)")
        node.sql("INSERT INTO w VALUES (1)")
        assert "create it on storage every member mounts" in node.log()
        # Present but not writable by the postgres OS user: pgBackRest's own message names the path.
        os.makedirs(repo)
        os.chmod(repo, 0o755)
        st = wait_until("pgBackRest's refusal named", archive_state("Permission denied"), timeout=60)
        assert repo in st, st
        assert "pgbackrest stanza-create" in st
        for i in range(3):
            node.sql("INSERT INTO w VALUES (%s)", (i,))
            node.sql("SELECT pg_switch_wal()")
        assert node.sql("SELECT count(*) FROM w")[0][0] == 4
        assert cluster.members()["n1"]["role"] == "primary"
        # Fixed: archiving works on the next try, and WAL that piled up is archived.
        shutil.chown(repo, "postgres", "postgres")
        t0 = time.monotonic()
        wait_until("archiving ok once the repository is fixed", archive_state("ok"), timeout=120)
        print(f"archiving ok {time.monotonic() - t0:.1f}s after the repository was fixed")
        seg = node.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_until("the new segment archived", lambda: node.sql(
            "SELECT last_archived_wal FROM pg_stat_archiver")[0][0] >= seg, timeout=30)
    finally:
        cluster.stop_all()


def test_check_reads_the_cipher_pass_file(tmp_path):
    """`agent --check` reads [backup] cipher_pass_file as the real start does."""
    from conftest import PGHA_BIN
    for name in ("su", "repl"):
        (tmp_path / name).write_text("pw\n")
        (tmp_path / name).chmod(0o600)
    cipher = tmp_path / "cipher"
    conf = tmp_path / "node.conf"
    conf.write_text(f"""[node]
name = n1
[postgresql]
data_dir = /tmp/does-not-matter
superuser_password_file = {tmp_path}/su
replication_password_file = {tmp_path}/repl
[backup]
repo_path = /tmp/does-not-matter-either
cipher_pass_file = {cipher}
""")

    def check():
        return subprocess.run([PGHA_BIN, "agent", "--check", "-c", str(conf)], capture_output=True, text=True,
                              timeout=30)
    r = check()
    assert r.returncode == 2 and "[backup] cipher_pass_file" in r.stderr and str(cipher) in r.stderr, r.stderr
    cipher.write_text("a passphrase\n")
    cipher.chmod(0o666)
    r = check()
    assert r.returncode == 2 and "chmod 600" in r.stderr, r.stderr
    cipher.chmod(0o600)
    r = check()
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    cipher.write_text("two\nlines\n")
    r = check()
    assert r.returncode == 2 and "line break" in r.stderr, r.stderr
    assert "two" not in r.stderr and "lines" not in r.stderr.replace("line break", "")
    cipher.write_text("\n")
    r = check()
    assert r.returncode == 2 and "empty" in r.stderr, r.stderr


def test_up_backup_archives_and_prints_how_to_see_it():
    import re
    import signal
    from conftest import PGHA_BIN, make_base_dir, stop_process
    from test_up import read_until
    base = make_base_dir()
    d = os.path.join(base, "cluster")
    proc = subprocess.Popen([PGHA_BIN, "up", "--dir", d, "--nodes", "2", "--backup", "--timeout", "240"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = read_until(proc, r"is up: 2 members", 240)
        lines += read_until(proc, r"^Stop:", 30)
        out = "".join(lines)
        m = re.search(r"^Backups: +(\S+ ctl -c (\S+) backups)\n +\(repository (\S+); a full backup runs now", out, re.M)
        assert m, out
        assert m.group(3) == os.path.join(d, "backup-repo")
        assert re.search(r"^Backup now: +\S+ ctl -c \S+ backup --wait$", out, re.M), out
        assert re.search(r'^Restore: +\S+ ctl -c \S+ restore --to "YYYY-MM-DD HH:MM:SS" --new-cluster NAME$', out, re.M)
        for i in (1, 2):
            with open(os.path.join(d, f"node{i}.conf")) as f:
                assert f"[backup]\nrepo_path = {d}/backup-repo\nfull_every = 7d\ndiff_every = 1d\n" in f.read()
        cmd = m.group(1).split() + ["--json"]

        def first_full():
            info = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout)
            return [b for b in info["backups"] if b["type"] == "full"] and info["archive"]["max"]
        wal = wait_until("the first full backup, taken by the schedule", first_full, timeout=120)
        print(f"pgha up --backup: first full backup done, archive max {wal}")

        # The roll-back command as printed, with a time filled in: the cluster goes back to it.
        rb = re.search(r'^Roll back: +(\S+ ctl -c \S+ restore) --to "YYYY-MM-DD HH:MM:SS" --in-place$', out, re.M)
        assert rb, out
        rw = re.search(r'read-write (PGPASSFILE=(\S+)) psql "([^"]+)"', out)
        assert rw, out
        import psycopg
        with psycopg.connect(rw.group(3), passfile=rw.group(2), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (id int)")
            conn.execute("INSERT INTO kept VALUES (1)")
            time.sleep(1.5)
            at = conn.execute("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                              "'YYYY-MM-DD HH24:MI:SS')").fetchone()[0]
            time.sleep(1.5)
            conn.execute("INSERT INTO kept VALUES (2)")
        r = subprocess.run(rb.group(1).split() + ["--to", at, "--in-place", "--force"], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0 and "every member runs on the new timeline" in r.stdout, r.stdout + r.stderr

        def rows():
            with psycopg.connect(rw.group(3), passfile=rw.group(2), autocommit=True, connect_timeout=3) as conn:
                return [x[0] for x in conn.execute("SELECT id FROM kept ORDER BY id").fetchall()]
        assert wait_until("the proxy to reach the restored leader", rows, timeout=60) == [1]
    finally:
        code = stop_process(proc, sig=signal.SIGINT, timeout=120)
        assert code == 0, code
    shutil.rmtree(base, ignore_errors=True)


def test_too_old_pgbackrest_is_named_at_start(tmp_path):
    """A pgbackrest older than 2.41 (backups are annotated), or none, stops the agent at start, named."""
    import tempfile
    from conftest import PGHA_BIN, free_port
    fake = tempfile.mkdtemp(prefix="pgha-fake-pgbackrest-", dir="/tmp")
    try:
        os.chmod(fake, 0o755)
        with open(os.path.join(fake, "pgbackrest"), "w") as f:
            f.write("#!/bin/sh\necho 'pgBackRest 2.30'\n")
        os.chmod(os.path.join(fake, "pgbackrest"), 0o755)
        for name in ("su", "repl"):
            (tmp_path / name).write_text("pw\n")
            (tmp_path / name).chmod(0o600)
        conf = tmp_path / "node.conf"
        conf.write_text(f"""[etcd]
endpoints = http://127.0.0.1:{free_port()}
[node]
name = n1
api_listen = 127.0.0.1:{free_port()}
[postgresql]
data_dir = {fake}/data
superuser_password_file = {tmp_path}/su
replication_password_file = {tmp_path}/repl
[backup]
repo_path = {fake}/repo
""")
        r = subprocess.run([PGHA_BIN, "agent", "-c", str(conf)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert (f"{fake}/pgbackrest: too old: pgBackRest 2.41 or later is needed (it said: pgBackRest 2.30)"
                in out), out
        assert "HINT: install a newer pgbackrest" in out
        # Not installed at all (a PATH without it): named at start too, before anything is created.
        os.unlink(os.path.join(fake, "pgbackrest"))
        r = subprocess.run([PGHA_BIN, "agent", "-c", str(conf)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PATH": fake})
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert "pgbackrest is not installed (not found in PATH)" in out and "apt-get install pgbackrest" in out, out
        assert not os.path.exists(os.path.join(fake, "data")) and not os.path.exists(os.path.join(fake, "repo"))
    finally:
        shutil.rmtree(fake, ignore_errors=True)


def test_a_hung_repository_does_not_block_a_failover(request):
    """The repository hangs (its archive.info files become FIFOs: every pgBackRest open blocks), then
    the leader dies. The standby promotes anyway: restore_command gives up after 10 s (3 s while
    promoting) and the agent's loop keeps the leader key while PostgreSQL leaves recovery, so the
    new primary is not fenced."""
    import signal
    from conftest import pg_pid, shared_base, signal_instance
    with shared_base(request) as base:
        repo = make_repo(base)
        stanza = os.path.join(repo, "archive", "t")
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        try:
            for n in ("n1", "n2"):
                cluster.add(n, {"backup.repo_path": repo}).start()
            leader = cluster.wait_streaming(["n1", "n2"], timeout=120)
            wait_archive_ok(cluster, leader)
            for f in ("archive.info", "archive.info.copy"):
                os.unlink(os.path.join(stanza, f))
                os.mkfifo(os.path.join(stanza, f))
                shutil.chown(os.path.join(stanza, f), "postgres", "postgres")
            old = cluster.nodes[leader]
            pid = pg_pid(old)
            old.proc.send_signal(signal.SIGKILL)
            signal_instance(pid, signal.SIGKILL)
            old.proc.wait(10)
            t0 = time.monotonic()
            new = cluster.nodes["n2" if leader == "n1" else "n1"]

            def writable():
                try:
                    new.sql("CREATE TABLE IF NOT EXISTS after_hang (i int)")
                    return True
                except Exception:
                    return False
            wait_until("the standby to take writes with the repository hung", writable, timeout=90)
            took = time.monotonic() - t0
            print(f"failover with a hung repository: writable after {took:.1f}s")
            time.sleep(15)    # longer than the ttl: a fenced primary would be gone by now
            assert writable() and cluster.leader() == new.name
            assert "promoted PostgreSQL to primary" in new.log()
        finally:
            # Unblock every pgBackRest process still opening the FIFOs (an async archive-get would wait
            # forever): holding a read-write end lets their opens finish, a regular file takes the
            # name for later opens, and closing ours gives them an end of file.
            held = []
            for f in ("archive.info", "archive.info.copy"):
                path = os.path.join(stanza, f)
                if os.path.exists(path) and not os.path.isfile(path):
                    held.append(os.open(path, os.O_RDWR | os.O_NONBLOCK))
                    with open(path + ".tmp", "w") as tmp:
                        tmp.write("unreadable on purpose\n")
                    os.replace(path + ".tmp", path)
            time.sleep(0.5)
            for fd in held:
                os.close(fd)
            cluster.stop_all()
            etcd.stop()
