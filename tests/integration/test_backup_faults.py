"""Repository faults with real pgBackRest, PostgreSQL 15 and etcd: a wrong encryption passphrase,
a damaged repository, a full one.

Each fault is named where the user looks (the member record's archive state, `pgha ctl backup
--wait`, `pgha ctl backups`) with its cause and what to do; the cluster keeps committing and
switching over meanwhile, and what the repository held before stays usable.

Two clusters: 2 members on an encrypted repository (a member restarted with another passphrase),
and 1 member whose repository is a 40 MB tmpfs (damaged files, then filled up).
"""
import contextlib
import errno
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import PGHA_BIN, Cluster, Etcd, shared_base, wait_until


def write_secret(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def make_repo(path):
    os.makedirs(path, mode=0o750)
    shutil.chown(path, "postgres", "postgres")
    return path


def ctl(cluster, *args, conf=None, timeout=300):
    where = ["-c", conf] if conf else ["--etcd", cluster.etcd.url, "--cluster", cluster.name]
    return subprocess.run([PGHA_BIN, "ctl", *where, *args], capture_output=True, text=True, timeout=timeout)


def pgbackrest(node, *args, conf=None, check=True):
    """pgbackrest as the postgres OS user with a member's generated config (or conf)."""
    conf = conf or node.data_dir + ".pgha-backup/pgbackrest.conf"
    r = subprocess.run(["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={conf}",
                        f"--stanza={node.cluster.name}", "--log-level-file=off", *args],
                       capture_output=True, text=True, errors="replace", timeout=120)
    assert not check or r.returncode == 0, f"pgbackrest {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def labels(node, conf=None):
    info = json.loads(pgbackrest(node, "info", "--output=json", conf=conf).stdout)[0]
    return [b["label"] for b in info["backup"]]


def verified(node, label, conf=None):
    """`pgbackrest verify` as the user runs it: its words on backup label (2.45 exits 0 even when it
    finds damage), and all it said (the damaged files are named at log level info)."""
    out = pgbackrest(node, "verify", "--output=text", "--verbose", "--log-level-console=info", conf=conf).stdout
    m = re.search(rf"backup: {label}, status: (\w+)", out)
    assert m, out
    return m.group(1), out


def archive_state(cluster, name):
    return cluster.members().get(name, {}).get("archive", "")


def wait_archive(cluster, name, words, timeout=120):
    return wait_until(f"{name}'s archive state to say {words!r}",
                      lambda: words in archive_state(cluster, name) and archive_state(cluster, name),
                      timeout=timeout)


def full_backup(cluster):
    r = ctl(cluster, "backup", "--type", "full", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"done: full backup (\S+F) in", r.stdout)
    assert m, r.stdout
    return m.group(1)


def failed_backup(cluster):
    """ctl backup --wait that must fail: its words (stdout and stderr), and how long it took."""
    t0 = time.monotonic()
    r = ctl(cluster, "backup", "--type", "full", "--wait")
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed on " in r.stderr, r.stdout + r.stderr
    return r.stdout + r.stderr, took


def commit(node, table, n=1):
    """n rows committed on node, each within 5 s (a backup problem must not hold commits)."""
    node.sql(f"CREATE TABLE IF NOT EXISTS {table} (i int)")
    for i in range(n):
        t0 = time.monotonic()
        node.sql(f"INSERT INTO {table} VALUES (%s)", (i,))
        assert time.monotonic() - t0 < 5, "a commit took more than 5 s"
    return node.sql(f"SELECT count(*) FROM {table}")[0][0]


def archiving_again(cluster, node, timeout=120):
    """Wait for node's archive state to be ok again. PostgreSQL retries archive_command a minute
    after its last failures, or at once for new WAL: a segment is finished every few seconds."""
    def caught_up():
        commit(node, "poke")
        node.sql("SELECT pg_switch_wal()")
        return archive_state(cluster, node.name) == "ok"
    wait_until(f"{node.name} archiving again", caught_up, timeout=timeout, interval=3)


def switchover(cluster, to):
    r = cluster.ctl("switchover", "--to", to, "--force", "--wait", "60", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    assert cluster.leader() == to


# ---------------------------------------------------------------------------------------------
# A wrong passphrase

@pytest.fixture(scope="module")
def encrypted(request):
    with shared_base(request) as base:
        repo = make_repo(os.path.join(base, "repo"))
        good, wrong = os.path.join(base, "cipher-good"), os.path.join(base, "cipher-wrong")
        write_secret(good, "good-" + os.urandom(12).hex())
        write_secret(wrong, "wrong-" + os.urandom(12).hex())
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        try:
            extra = {"backup.repo_path": repo, "backup.cipher_pass_file": good}
            for n in ("n1", "n2"):
                cluster.add(n, extra).start()
            leader = cluster.wait_streaming(["n1", "n2"], timeout=180)
            wait_archive(cluster, leader, "ok")
            yield cluster, extra, wrong
        finally:
            cluster.stop_all()
            etcd.stop()


def test_wrong_passphrase(encrypted):
    cluster, extra, wrong = encrypted
    leader = cluster.leader()
    standby = next(n for n in cluster.nodes if n != leader)
    commit(cluster.nodes[leader], "before")
    label = full_backup(cluster)

    # The standby restarted with another passphrase: it streams on, and it is the member that
    # runs backups (from the standby) and would archive after a switchover.
    node = cluster.nodes[standby]
    node.stop()
    node.write_conf({**extra, "backup.cipher_pass_file": wrong})
    node.start()
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    cause = "cipher_pass_file does not hold the passphrase the repository was created with"

    text, took = failed_backup(cluster)
    print(f"ctl backup --wait with the wrong passphrase failed in {took:.1f}s:\n{text}")
    assert f"failed on {standby}" in text and "cannot decrypt " in text and cause in text, text
    assert "backup.info" in text, text

    r = ctl(cluster, "backups", conf=node.conf_path, timeout=60)
    print(f"ctl backups with the wrong passphrase (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: cannot decrypt " in r.stdout and cause in r.stdout, r.stdout + r.stderr
    # Unknown, not empty: no "No backups yet." while the repository cannot be read.
    assert "No backups yet" not in r.stdout and "unknown until this is fixed" in r.stdout, r.stdout

    # HA is not held: a switchover to that member works, it commits, and its record says why
    # it cannot archive.
    t0 = time.monotonic()
    switchover(cluster, standby)
    print(f"switchover to the member with the wrong passphrase: {time.monotonic() - t0:.1f}s")
    assert commit(node, "during", 20) == 20
    st = wait_archive(cluster, standby, "cannot decrypt", timeout=120)
    print(f"its archive state: {st}")
    assert st.startswith("failing: ") and cause in st and "archive.info" in st, st
    text = cluster.ctl("list").stdout
    assert "WAL archive: failing: " in text and "cannot decrypt" in text, text

    # And back: the member with the right passphrase archives again, and what the repository held
    # is intact: the backup made before, and the WAL committed while archiving failed.
    switchover(cluster, leader)
    wait_archive(cluster, leader, "ok", timeout=120)
    good = cluster.nodes[leader]
    seg = good.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_until(f"{seg} archived", lambda: good.sql("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] >= seg,
               timeout=60)
    assert label in labels(good)
    status, out = verified(good, label)
    assert status == "valid", out
    assert good.sql("SELECT count(*) FROM during")[0][0] == 20

    # The member given its right passphrase back takes backups again.
    node.stop()
    node.write_conf(extra)
    node.start()
    cluster.wait_streaming(list(cluster.nodes), timeout=120)
    assert full_backup(cluster) in labels(good)


# ---------------------------------------------------------------------------------------------
# A damaged repository, a full one (40 MB of tmpfs)

@pytest.fixture(scope="module")
def small(request):
    with shared_base(request) as base:
        mnt = os.path.join(base, "mnt")
        os.makedirs(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0755", "tmpfs", mnt], check=True, timeout=30)
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        try:
            repo = make_repo(os.path.join(mnt, "repo"))
            cluster.add("n1", {"backup.repo_path": repo}).start()
            cluster.wait_streaming(["n1"], timeout=120)
            wait_archive(cluster, "n1", "ok")
            yield cluster, mnt, repo
        finally:
            cluster.stop_all()
            etcd.stop()
            subprocess.run(["umount", mnt], timeout=30)


@contextlib.contextmanager
def damaged(path, offset=100):
    """path with 16 bytes overwritten at offset; put back as it was on leaving."""
    with open(path, "rb") as f:
        sound = f.read()
    with open(path, "r+b") as f:
        f.seek(min(offset, len(sound) - 16))
        f.write(b"\x00garbage\x00bytes\x00!")
    try:
        yield
    finally:
        with open(path, "wb") as f:
            f.write(sound)


def test_damaged_repository(small):
    cluster, _, repo = small
    node = cluster.nodes["n1"]
    commit(node, "dmg")
    first = full_backup(cluster)
    stanza = os.path.join(repo, "backup", "t")

    # A damaged file of a backup: `pgbackrest verify` names it; a new full backup is sound.
    files = sorted(glob.glob(os.path.join(stanza, first, "pg_data", "base", "*", "*")), key=os.path.getsize)
    victim = files[-1]
    with damaged(victim, offset=os.path.getsize(victim) // 2):
        status, out = verified(node, first)
        assert status == "invalid", out
        assert f"invalid checksum '{first}/pg_data/base/" in out, out
        second = full_backup(cluster)
        status, out = verified(node, second)
        assert status == "valid", out

    # backup.info damaged: pgBackRest reads its .copy, nothing is lost.
    info = os.path.join(stanza, "backup.info")
    with damaged(info):
        r = ctl(cluster, "backups", conf=node.conf_path, timeout=60)
        assert r.returncode == 0 and first in r.stdout and second in r.stdout, r.stdout + r.stderr
        # ... and its .copy too: named, with what to do; the cluster commits on.
        with damaged(info + ".copy"):
            r = ctl(cluster, "backups", conf=node.conf_path, timeout=60)
            print(f"ctl backups, backup.info and its copy damaged (exit {r.returncode}):\n{r.stdout}{r.stderr}")
            assert r.returncode == 1, r.stdout + r.stderr
            assert f"error: {info} and its .copy are damaged" in r.stdout, r.stdout
            assert "put back a sound copy or set a new [backup] repo_path" in r.stdout, r.stdout
            assert "No backups yet" not in r.stdout, r.stdout
            text, took = failed_backup(cluster)
            print(f"ctl backup --wait, backup.info damaged: failed in {took:.1f}s:\n{text}")
            assert f"{info} and its .copy are damaged (" in text, text
            assert commit(node, "dmg", 5) == 6
            assert archive_state(cluster, "n1") == "ok"
    # Put back: the backups are all there, and a new one works (retention_full = 2 then expires
    # the first).
    assert {first, second} <= set(labels(node))
    third = full_backup(cluster)
    assert {second, third} <= set(labels(node))

    # archive.info and its copy damaged: archive_command fails, the member record says why.
    ainfo = os.path.join(repo, "archive", "t", "archive.info")
    with damaged(ainfo), damaged(ainfo + ".copy"):
        commit(node, "dmg", 3)
        node.sql("SELECT pg_switch_wal()")
        st = wait_archive(cluster, "n1", "are damaged", timeout=90)
        print(f"archive state, archive.info damaged: {st}")
        assert st.startswith("failing: archive_command failed for ") and f"{ainfo} and its .copy" in st, st
        assert commit(node, "dmg", 3) == 12
    archiving_again(cluster, node)


def segments(repo):
    return sorted(os.path.basename(p)[:24] for p in glob.glob(os.path.join(repo, "archive", "t", "15-1", "*", "0*"))
                  if re.match(r"^[0-9A-F]{24}-", os.path.basename(p)))


def fill(mnt, name, leave=0):
    """Fill the file system at mnt with a file (root's, outside the repository) until leave bytes
    are free (0: none); its path."""
    path = os.path.join(mnt, name)
    st = os.statvfs(mnt)
    todo = st.f_bavail * st.f_frsize - leave if leave else None
    chunk = b"\xa5" * (1 << 16)
    with open(path, "wb") as f:
        try:
            while todo is None or todo > 0:
                f.write(chunk if todo is None or todo >= len(chunk) else chunk[:todo])
                f.flush()
                todo = None if todo is None else todo - len(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return path


def test_full_repository(small):
    cluster, mnt, repo = small
    node = cluster.nodes["n1"]
    before = labels(node)
    fillers = []
    try:
        # Room for WAL, not for a backup (2.7 MB compressed here): the backup fails, by name.
        fillers.append(fill(mnt, "filler-1", leave=1200 << 10))
        text, took = failed_backup(cluster)
        print(f"ctl backup --wait, no room for a backup: failed in {took:.1f}s:\n{text}")
        assert f"no space left on device in {repo}/backup/t; free space there (or lower [backup] " \
               "retention_full)" in text, text

        # No room at all: commits go on (archiving is asynchronous), the member record says why
        # archiving fails.
        fillers.append(fill(mnt, "filler-2"))
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize < (64 << 10)
        t0 = time.monotonic()
        for i in range(5):
            commit(node, "wal_full", 10)
            node.sql("SELECT pg_switch_wal()")
        print(f"50 commits and 5 WAL switches with the repository full: {time.monotonic() - t0:.1f}s")
        st = wait_archive(cluster, "n1", "no space left on device", timeout=90)
        print(f"archive state, repository full: {st}")
        assert st.startswith("failing: archive_command failed for ") and f"in {repo}/archive/t;" in st, st
        text = cluster.ctl("list").stdout
        assert "WAL archive: failing: " in text and "no space left on device" in text, text
        # A backup waits for archiving (it could not complete without its WAL), and says so.
        r = ctl(cluster, "backup", "--type", "full", "--wait", "10")
        print(f"ctl backup --wait 10, repository full (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        assert r.returncode == 1 and "no outcome within 10 s; it goes on" in r.stderr, r.stdout + r.stderr
        assert "waiting for a member to take it (WAL archiving on the leader is failing: " in r.stdout and \
            f"no space left on device in {repo}/archive/t" in r.stdout, r.stdout
        assert node.sql("SELECT count(*) FROM wal_full")[0][0] == 50
    finally:
        for f in fillers:
            os.unlink(f)

    # Space again: archiving catches up with no gap, and the backup asked for runs. PostgreSQL
    # retries archive_command a minute after its last failures, or at once for new WAL.
    t0 = time.monotonic()
    archiving_again(cluster, node)
    last = node.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_until(f"{last} archived", lambda: last in segments(repo), timeout=60)
    print(f"archiving ok {time.monotonic() - t0:.1f}s after space was freed")
    segs = segments(repo)
    first = segs[0]
    want = [f"{first[:8]}{n // 256:08X}{n % 256:08X}" for n in range(int(first[8:16], 16) * 256 + int(first[16:], 16),
                                                                      int(last[8:16], 16) * 256 + int(last[16:], 16) + 1)]
    assert [s for s in want if s not in segs] == [], segs
    assert set(before) <= set(labels(node))
    r = ctl(cluster, "backup", "--wait", "120")
    assert r.returncode == 0 and "done: full backup " in r.stdout, r.stdout + r.stderr


def test_full_repository_at_start(small):
    """The agent (re)starting on a full repository: its `pgbackrest check` times out waiting for a
    WAL segment that cannot be archived; the member record says why, not only that it timed out."""
    cluster, mnt, repo = small
    node = cluster.nodes["n1"]
    filler = fill(mnt, "filler-3")
    try:
        node.stop()
        node.start()
        cluster.wait_streaming(["n1"], timeout=120)
        t0 = time.monotonic()
        st = wait_archive(cluster, "n1", "pgbackrest check: ", timeout=150)
        print(f"archive state {time.monotonic() - t0:.1f}s after the start on a full repository: {st}")
        assert f"no space left on device in {repo}/archive/t; free space there" in st, st
        assert commit(node, "at_start", 10) == 10
    finally:
        os.unlink(filler)
    t0 = time.monotonic()
    archiving_again(cluster, node)
    print(f"archiving ok {time.monotonic() - t0:.1f}s after space was freed")
