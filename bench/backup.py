#!/usr/bin/env python3
"""Backup benchmark: pgBackRest as pgha configures it against plain pg_basebackup, in one run.

Setup: `pgha up --backup --nodes 2` in a temporary directory (one etcd, two agents, the
repository DIR/backup-repo), then pgbench -i -s --scale on the leader and a wait until the
WAL of the load is archived. pgBackRest runs as the OS user postgres with the leader agent's
generated config (<data_dir>.pgha-backup/pgbackrest.conf: compress-type zst, process-max 2,
start-fast) and its passfile: the commands the agent runs, measured directly (the "engine
path"; the agent's scheduling around them is not measured).

Measured, each on the same database in the same run:
  full      `pgbackrest --type=full backup` against `pg_basebackup -Ft -z -X stream -c fast`
            (gzip, the issue's baseline) and `pg_basebackup -Ft -Z client-zstd` (PostgreSQL
            15's zstd, one thread): wall time, CPU of the backup program (its process tree),
            size (pgBackRest: its info's repository size and du of the backup directory).
  incr      `--type=incr` after 1% of pgbench_accounts rows were updated, twice: a contiguous
            1% (aid <= N/100) and a spread 1% (every 100th aid, as random writes touch pages).
            pgBackRest 2.45 copies every file that changed, whole (1 GB segments).
            --block-incremental adds the same with its block incremental (beta in 2.45).
  restore   a new cluster on a free port: `pgbackrest restore` (latest: replays the archive to
            its end, then promotes) and `--type=time --target=T --target-action=promote` for a
            time T recorded between two marker rows, against the gzip pg_basebackup's tar files
            extracted and started with the same archive (restore_command = pgbackrest
            archive-get) to the same targets. Time until the files are in place, until the
            server accepts connections and until it is promoted; the marker rows are checked.
  standby   the leader's CPU (utime+stime of the postmaster and its children, reaped ones
            included) and bytes read (rchar: read() calls, page-cache hits included;
            read_bytes: from the block device) from /proc, while a standby is created (a)
            with `pgbackrest restore --delta --type=standby` from the repository and (b) with
            `pg_basebackup -X stream` from the leader, each until it streams from the leader.
            An idle interval gives the leader's background rate (the agents' health checks).
After the load, all of this runs --rounds times (a new full backup each round); the summary
shows the median of each figure. Each timed step starts after a CHECKPOINT on the leader and a
sync(), so that none pays for flushing what the step before wrote.

Usage: /usr/bin/python3 bench/backup.py [--scale 150] [--rounds 3] [--block-incremental]
                   [--json FILE] [--keep]
Needs the built binary (make), PostgreSQL 15, etcd and pgbackrest (make deps); run as root
(PostgreSQL and pgBackRest run as the OS user postgres). Disk: about 5x the database size
(the two members, a restored copy at a time, the backups). Everything listens on 127.0.0.1
and is stopped at the end; the temporary directory is removed unless --keep.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

import psycopg  # noqa: E402

from conftest import PGHA_BIN, free_port, make_base_dir, stop_process  # noqa: E402
from proxy import tail  # noqa: E402

BIN_DIR = "/usr/lib/postgresql/15/bin"
PGBENCH_BIN = shutil.which("pgbench") or f"{BIN_DIR}/pgbench"
PGBACKREST_BIN = shutil.which("pgbackrest") or "/usr/bin/pgbackrest"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Gone(Exception):
    """What a wait waits on has exited: stop waiting."""


def wait_until(what, fn, timeout, interval=0.2):
    """Call fn until it returns a truthy value (errors count as not yet, but Gone ends the
    wait); fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Gone:
            raise
        except Exception as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last!r})" if last else ""))


def as_postgres(cmd, env=None, timeout=3600, check=True):
    """cmd as the OS user postgres (PostgreSQL's and pgBackRest's files stay that user's);
    returns (CompletedProcess, wall seconds, CPU seconds of its process tree)."""
    envs = [f"{k}={v}" for k, v in (env or {}).items()]
    full = ["runuser", "-u", "postgres", "--", "env", *envs, *cmd]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {(r.stdout + r.stderr)[-2000:]}")
    return r, wall, cpu


def mkdir_pg(path):
    os.makedirs(path, exist_ok=True)
    shutil.chown(path, "postgres", "postgres")
    os.chmod(path, 0o700)
    return path


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def dir_files(path):
    return {f: os.path.getsize(os.path.join(path, f)) for f in sorted(os.listdir(path))}


# ---- the leader's load, from /proc ----

def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def proc_io(pid):
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v)
    return out


def children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def instance_load(postmaster):
    """CPU seconds and read counters of a PostgreSQL instance so far. The postmaster's cutime/
    cstime and /proc/<pid>/io hold what its reaped children used (a walsender that ended
    within the interval counts), plus what its live children used: differences of two
    samples are what the instance did in between."""
    st = proc_stat(postmaster)
    ticks = int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])  # utime stime cutime cstime
    io = proc_io(postmaster)
    rchar, rbytes = io["rchar"], io["read_bytes"]
    for kid in children(postmaster):
        try:
            s = proc_stat(kid)
            i = proc_io(kid)
        except (OSError, ValueError):
            continue        # ended between the listing and the read: then it is in the parent's
        ticks += int(s[11]) + int(s[12])
        rchar += i["rchar"]
        rbytes += i["read_bytes"]
    return {"cpu_s": ticks / CLK_TCK, "rchar": rchar, "read_bytes": rbytes}


def load_delta(a, b):
    return {k: b[k] - a[k] for k in a}


# ---- a PostgreSQL started from a backup ----

class Restored:
    """A data directory restored from a backup, started on a free port with the settings a new
    cluster or standby needs over the copied pgha.conf: its own port and socket, archive_mode
    off (it must not archive into the cluster's stanza) and restore_command reading the
    repository with its own spool and lock directories."""

    def __init__(self, base, name, conf, stanza):
        self.name = name
        self.dir = os.path.join(base, name)
        self.data = os.path.join(self.dir, "data")
        self.work = os.path.join(self.dir, "work")
        self.log_path = os.path.join(self.dir, "postgresql.log")
        self.conf, self.stanza = conf, stanza
        self.port = None
        self.pid = None
        mkdir_pg(self.dir)
        mkdir_pg(self.work)
        os.chmod(self.dir, 0o755)

    def restore_command(self):
        return (f"{PGBACKREST_BIN} --config={self.conf} --stanza={self.stanza} --pg1-path={self.data} "
                f"--spool-path={self.work} --lock-path={self.work} --log-path={self.work} "
                'archive-get %f "%p"')

    def configure(self, extra):
        self.port = free_port()
        settings = {"port": str(self.port), "listen_addresses": "127.0.0.1",
                    "unix_socket_directories": self.dir, "cluster_name": self.name,
                    "hba_file": os.path.join(self.data, "pg_hba.conf"),
                    "archive_mode": "off", "restore_command": self.restore_command(),
                    "primary_conninfo": "", "logging_collector": "off"}
        settings.update(extra)
        lines = "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())
        # postgresql.auto.conf is read after postgresql.conf and its include of pgha.conf.
        path = os.path.join(self.data, "postgresql.auto.conf")
        with open(path, "a") as f:
            f.write("# bench/backup.py: this copy's own settings\n" + lines)
        shutil.chown(path, "postgres", "postgres")

    def start(self):
        as_postgres([f"{BIN_DIR}/pg_ctl", "-D", self.data, "-l", self.log_path, "-W", "start"], timeout=60)

        def pid():
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        self.pid = wait_until(f"{self.name}'s postmaster.pid", pid, timeout=60)

    def query(self, sql):
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             connect_timeout=5, autocommit=True) as c:
            return c.execute(sql).fetchall()

    def check_alive(self):
        if self.pid and not os.path.exists(f"/proc/{self.pid}"):
            raise Gone(f"{self.name} exited:\n{tail(self.log_path)}")

    def wait_connect(self, timeout):
        def ok():
            self.check_alive()
            return self.query("SELECT 1") and True
        return wait_until(f"{self.name} to accept connections", ok, timeout=timeout, interval=0.1)

    def wait_promoted(self, timeout):
        def ok():
            self.check_alive()
            return not self.query("SELECT pg_is_in_recovery()")[0][0]
        return wait_until(f"{self.name} to be promoted", ok, timeout=timeout, interval=0.1)

    def stop(self):
        if self.pid and os.path.exists(f"/proc/{self.pid}"):
            as_postgres([f"{BIN_DIR}/pg_ctl", "-D", self.data, "-m", "fast", "-t", "120", "stop"],
                        timeout=150, check=False)
            if os.path.exists(f"/proc/{self.pid}"):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def fmt_b(n):
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


class Bench:
    def __init__(self, args):
        self.args = args
        self.base = make_base_dir()
        self.up = None
        self.restored = []
        self.out = {"rounds": []}
        self.cur = None

    # -- the cluster --

    def start_cluster(self):
        self.dir = os.path.join(self.base, "cluster")
        self.up_log = os.path.join(self.base, "up.out")
        with open(self.up_log, "w") as log:
            self.up = subprocess.Popen([PGHA_BIN, "up", "--dir", self.dir, "--nodes", "2", "--backup",
                                        "--timeout", "240"], stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)

        def ready():
            if self.up.poll() is not None:
                raise Gone(f"pgha up exited {self.up.returncode}:\n{tail(self.up_log)}")
            return re.search(r"^Stop:", tail(self.up_log, 100000), re.M)
        wait_until("pgha up", ready, timeout=300)
        text = tail(self.up_log, 100000)
        self.leader = re.search(r"^Cluster: (\S+) .*, leader: (\S+)$", text, re.M).group(2)
        self.stanza = re.search(r"^Cluster: (\S+) ", text, re.M).group(1)
        self.port = int(re.search(rf"^\s+{self.leader}\s+PGPASSFILE=\S+ psql \"host=127.0.0.1 port=(\d+)",
                                  text, re.M).group(1))
        node = os.path.join(self.dir, self.leader)
        self.data = os.path.join(node, "data")
        self.conf = self.data + ".pgha-backup/pgbackrest.conf"
        self.agent_pgpass = os.path.join(node, f"{self.leader}.pgpass")   # [postgresql] pgpass default
        self.repo = os.path.join(self.dir, "backup-repo")
        os.environ["PGPASSFILE"] = os.path.join(self.dir, "pgpass")        # root's: user postgres
        with open(self.conf) as f:
            c = f.read()
        self.pgbr_settings = ", ".join(l for l in c.splitlines() if l.split("=")[0] in ("compress-type", "process-max"))
        print(f"pgha up --backup: 2 members, leader {self.leader} (127.0.0.1:{self.port}); "
              f"pgBackRest {self.pgbackrest_version()} with {self.pgbr_settings}", flush=True)
        took = self.agent_backups_idle("the first full backup of `pgha up --backup`")
        print(f"  the cluster's first scheduled backup is done ({took:.1f} s after up)", flush=True)

    def agent_backups_idle(self, what, timeout=600):
        """Wait until no backup the cluster scheduled or was asked for is pending or running
        (`pgha up --backup` takes a first full backup at once): two backups of one stanza must
        not run together, and the agent's lock is in its own member's directory."""
        def idle():
            r = subprocess.run([PGHA_BIN, "ctl", "-c", os.path.join(self.dir, "node1.conf"), "list", "--json"],
                               capture_output=True, text=True, timeout=30)
            b = json.loads(r.stdout).get("backup")
            if b is None:
                return True     # an agent without backups run by the cluster
            return b.get("request") is None and b.get("running") is None and b.get("last") is not None
        t0 = time.monotonic()
        wait_until(f"the cluster's own backups to finish ({what})", idle, timeout=timeout, interval=0.5)
        return time.monotonic() - t0

    def pgbackrest_version(self):
        return subprocess.run([PGBACKREST_BIN, "version"], capture_output=True, text=True).stdout.split()[-1]

    def postmaster(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def sql(self, query):
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             connect_timeout=10, autocommit=True) as c:
            cur = c.execute(query)
            return cur.fetchall() if cur.description else None

    def pgbackrest(self, *args, timeout=3600):
        return as_postgres([PGBACKREST_BIN, f"--config={self.conf}", f"--stanza={self.stanza}", *args],
                           env={"PGPASSFILE": self.agent_pgpass}, timeout=timeout)

    def wait_archived(self, timeout):
        """Switch WAL and wait until the segment is archived (with the load, the async queue
        may be minutes behind)."""
        seg = self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        t0 = time.monotonic()

        def done():
            last, failed = self.sql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver")[0]
            self.archive_failed = failed
            return last >= seg and not last.endswith(".history")
        wait_until(f"WAL segment {seg} archived", done, timeout=timeout, interval=0.5)
        return seg, time.monotonic() - t0

    def load(self):
        s = self.args.scale
        print(f"\npgbench -i -s {s} on {self.leader}", flush=True)
        t0 = time.monotonic()
        r = subprocess.run([PGBENCH_BIN, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-i", "-s", str(s), "-q", "postgres"], capture_output=True, text=True,
                           timeout=7200)
        if r.returncode != 0:
            raise RuntimeError(f"pgbench -i: {r.stderr[-2000:]}")
        took = time.monotonic() - t0
        seg, lag = self.wait_archived(timeout=1800)
        self.db_size = self.sql("SELECT pg_database_size('postgres')")[0][0]
        self.cluster_size = du(self.data)
        print(f"  loaded in {took:.0f} s; database {fmt_b(self.db_size)}, data directory {fmt_b(self.cluster_size)}; "
              f"WAL archived up to {seg} {lag:.0f} s after the load ended "
              f"(archive_command failures: {self.archive_failed})", flush=True)
        self.out["load"] = {"scale": s, "seconds": took, "db_bytes": self.db_size, "data_dir_bytes": self.cluster_size}

    # -- backups --

    def backup_info(self):
        r, _, _ = self.pgbackrest("info", "--output=json", timeout=120)
        return json.loads(r.stdout)[0]["backup"]

    def settle(self):
        """Before each timed step: a checkpoint on the leader and sync(), so that no step pays
        for flushing the writes of the one before (the load, the updates, a restored copy)."""
        self.sql("CHECKPOINT")
        os.sync()

    def pgbr_backup(self, kind, extra=()):
        self.agent_backups_idle(f"before a {kind} backup")
        self.settle()
        pm = self.postmaster()
        a = instance_load(pm)
        _, wall, cpu = self.pgbackrest(f"--type={kind}", *extra, "backup")
        load = load_delta(a, instance_load(pm))
        b = self.backup_info()[-1]
        d = os.path.join(self.repo, "backup", self.stanza, b["label"])
        res = {"label": b["label"], "seconds": wall, "cpu_s": cpu, "db_bytes": b["info"]["size"],
               "copied_bytes": b["info"]["delta"], "repo_bytes": b["info"]["repository"]["delta"],
               "du_bytes": du(d), "leader_pg_cpu_s": load["cpu_s"], "leader_pg_rchar": load["rchar"]}
        return res

    def basebackup(self, name, compress):
        d = os.path.join(self.base, name)
        self.settle()
        pm = self.postmaster()
        a = instance_load(pm)
        _, wall, cpu = as_postgres([f"{BIN_DIR}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", "replicator", "-D", d, "-Ft", *compress, "-X", "stream",
                                    "-c", "fast", "--no-password"],
                                   env={"PGPASSFILE": self.agent_pgpass})
        load = load_delta(a, instance_load(pm))
        files = dir_files(d)
        return {"dir": d, "seconds": wall, "cpu_s": cpu, "bytes": sum(files.values()), "files": files,
                "leader_pg_cpu_s": load["cpu_s"], "leader_pg_rchar": load["rchar"]}

    def full(self):
        print("\nfull backup (same database, one after the other)", flush=True)
        pb = self.pgbr_backup("full")
        print(f"  pgbackrest --type=full:       {pb['seconds']:7.1f} s  CPU {pb['cpu_s']:6.1f} s  "
              f"repo {fmt_b(pb['repo_bytes'])} (du {fmt_b(pb['du_bytes'])}) of {fmt_b(pb['db_bytes'])}; "
              f"leader PostgreSQL CPU {pb['leader_pg_cpu_s']:.1f} s", flush=True)
        os.chmod(self.base, 0o755)
        bbdir = mkdir_pg(os.path.join(self.base, "basebackups"))
        os.chmod(bbdir, 0o755)
        gz = self.basebackup("basebackups/gzip", ["-z"])
        print(f"  pg_basebackup -Ft -z:         {gz['seconds']:7.1f} s  CPU {gz['cpu_s']:6.1f} s  "
              f"{fmt_b(gz['bytes'])} {gz['files']}; leader PostgreSQL CPU {gz['leader_pg_cpu_s']:.1f} s", flush=True)
        zs = self.basebackup("basebackups/zstd", ["-Z", "client-zstd"])
        print(f"  pg_basebackup -Ft -Z client-zstd: {zs['seconds']:5.1f} s  CPU {zs['cpu_s']:6.1f} s  "
              f"{fmt_b(zs['bytes'])} {zs['files']}; leader PostgreSQL CPU {zs['leader_pg_cpu_s']:.1f} s", flush=True)
        shutil.rmtree(zs["dir"], ignore_errors=True)
        self.gz_dir = gz["dir"]
        self.cur["full"] = {"pgbackrest": pb, "basebackup_gzip": gz, "basebackup_zstd": zs}

    def incr(self, extra=()):
        n = self.args.scale * 100000
        k = n // 100
        print(f"\nincremental backups {' '.join(extra)} after updating 1% of pgbench_accounts ({k} of {n} rows)",
              flush=True)
        res = {}
        for what, where in (("contiguous", f"aid <= {k}"), ("spread", "aid % 100 = 50")):
            t0 = time.monotonic()
            self.sql(f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE {where}")
            upd = time.monotonic() - t0
            b = self.pgbr_backup("incr", extra)
            b["update_seconds"] = upd
            b["where"] = where
            res[what] = b
            print(f"  {what:10s} ({where}): incr {b['seconds']:6.1f} s  CPU {b['cpu_s']:6.1f} s  "
                  f"copied {fmt_b(b['copied_bytes'])}, repo {fmt_b(b['repo_bytes'])} (du {fmt_b(b['du_bytes'])})",
                  flush=True)
        return res

    def block_incremental(self):
        """The same two incrementals with pgBackRest's block incremental (beta in 2.45, the
        agent does not enable it), after a full taken with it: what it would save. Runs last
        in a round, as the restores must use the agent's kind of backup."""
        extra = ("--beta", "--repo1-bundle", "--repo1-block")
        print(f"\nblock incremental: full {' '.join(extra)}", flush=True)
        full = self.pgbr_backup("full", extra)
        print(f"  pgbackrest --type=full {' '.join(extra)}: {full['seconds']:6.1f} s  CPU {full['cpu_s']:6.1f} s  "
              f"repo {fmt_b(full['repo_bytes'])}", flush=True)
        self.cur["block"] = {"full": full, "incr": self.incr(extra)}

    def markers(self):
        """Two marker rows and a time between them: the PITR target."""
        self.sql("CREATE TABLE IF NOT EXISTS bench_pitr (what text, at timestamptz DEFAULT clock_timestamp())")
        self.sql("TRUNCATE bench_pitr")
        self.sql("INSERT INTO bench_pitr (what) VALUES ('before')")
        time.sleep(1.2)
        self.target = self.sql("SELECT clock_timestamp()::text")[0][0]
        time.sleep(1.2)
        self.sql("INSERT INTO bench_pitr (what) VALUES ('after')")
        seg, lag = self.wait_archived(timeout=600)
        print(f"\nPITR target {self.target} between rows 'before' and 'after' (archived up to {seg})", flush=True)

    # -- restores --

    def new_restored(self, name):
        r = Restored(self.base, name, self.conf, self.stanza)
        self.restored.append(r)
        return r

    def finish_restore(self, r, t0, files_s, want):
        r.start()
        t_conn = r.wait_connect(timeout=3600) and time.monotonic() - t0
        r.wait_promoted(timeout=3600)
        t_prom = time.monotonic() - t0
        rows = sorted(x[0] for x in r.query("SELECT what FROM bench_pitr"))
        ok = rows == sorted(want)
        r.remove()
        self.restored.remove(r)
        if not ok:
            raise RuntimeError(f"{r.name}: marker rows {rows}, expected {sorted(want)}")
        return {"files_seconds": files_s, "connect_seconds": t_conn, "promoted_seconds": t_prom, "rows": rows}

    def restore_pgbr(self, name, target_args, want):
        r = self.new_restored(name)
        mkdir_pg(r.data)
        self.settle()
        t0 = time.monotonic()
        self.pgbackrest(f"--pg1-path={r.data}", *target_args, "restore")
        files = time.monotonic() - t0
        r.configure({})
        return self.finish_restore(r, t0, files, want)

    def restore_bb(self, name, recovery, want):
        r = self.new_restored(name)
        mkdir_pg(r.data)
        self.settle()
        t0 = time.monotonic()
        as_postgres(["tar", "-xzf", os.path.join(self.gz_dir, "base.tar.gz"), "-C", r.data])
        as_postgres(["tar", "-xzf", os.path.join(self.gz_dir, "pg_wal.tar.gz"), "-C",
                     os.path.join(r.data, "pg_wal")])
        files = time.monotonic() - t0
        r.configure(recovery)
        sig = os.path.join(r.data, "recovery.signal")
        open(sig, "w").close()
        shutil.chown(sig, "postgres", "postgres")
        return self.finish_restore(r, t0, files, want)

    def restores(self):
        print("\nrestore a new cluster (files in place / accepts connections / promoted)", flush=True)
        pitr = {"recovery_target_time": self.target, "recovery_target_action": "promote"}
        runs = [
            ("pgbackrest latest", lambda: self.restore_pgbr("restore-pgbr-latest", [], ["after", "before"])),
            ("pg_basebackup latest", lambda: self.restore_bb("restore-bb-latest", {}, ["after", "before"])),
            ("pgbackrest PITR", lambda: self.restore_pgbr(
                "restore-pgbr-pitr", ["--type=time", f"--target={self.target}", "--target-action=promote"],
                ["before"])),
            ("pg_basebackup PITR", lambda: self.restore_bb("restore-bb-pitr", pitr, ["before"])),
        ]
        res = {}
        for name, fn in runs:
            x = fn()
            res[name] = x
            print(f"  {name:21s} {x['files_seconds']:7.1f} s / {x['connect_seconds']:7.1f} s / "
                  f"{x['promoted_seconds']:7.1f} s  rows {x['rows']}", flush=True)
        self.cur["restore"] = res

    # -- standby creation --

    def idle_rate(self, seconds=10):
        pm = self.postmaster()
        a = instance_load(pm)
        time.sleep(seconds)
        d = load_delta(a, instance_load(pm))
        return {k: v / seconds for k, v in d.items()}

    def wait_streaming(self, r, timeout=3600):
        def ok():
            r.check_alive()
            rows = self.sql(f"SELECT state FROM pg_stat_replication WHERE application_name = '{r.name}'")
            return rows and rows[0][0] == "streaming"
        wait_until(f"{r.name} to stream from the leader", ok, timeout=timeout, interval=0.2)

    def standby(self, name, make):
        r = self.new_restored(name)
        conninfo = (f"host=127.0.0.1 port={self.port} user=replicator passfile={self.agent_pgpass} "
                    f"application_name={name}")
        self.settle()
        pm = self.postmaster()
        a = instance_load(pm)
        t0 = time.monotonic()
        make(r)
        files = time.monotonic() - t0
        r.configure({"primary_conninfo": conninfo, "hot_standby": "on"})
        sig = os.path.join(r.data, "standby.signal")
        open(sig, "a").close()
        shutil.chown(sig, "postgres", "postgres")
        r.start()
        self.wait_streaming(r)
        took = time.monotonic() - t0
        d = load_delta(a, instance_load(pm))
        r.remove()
        self.restored.remove(r)
        d.update({"files_seconds": files, "streaming_seconds": took})
        return d

    def standbys(self):
        idle = self.idle_rate()
        print(f"\nstandby creation, load on the leader {self.leader} (idle: {idle['cpu_s'] * 1000:.0f} ms CPU/s, "
              f"rchar {fmt_b(idle['rchar'])}/s, read_bytes {fmt_b(idle['read_bytes'])}/s)", flush=True)

        def from_repo(r):
            mkdir_pg(r.data)
            self.pgbackrest(f"--pg1-path={r.data}", "--delta", "--type=standby", "restore")

        def from_leader(r):
            as_postgres([f"{BIN_DIR}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "replicator",
                         "-D", r.data, "-X", "stream", "-c", "fast", "--no-password"],
                        env={"PGPASSFILE": self.agent_pgpass})

        res = {"idle_per_s": idle}
        for name, fn in (("pgbackrest", from_repo), ("pg_basebackup", from_leader)):
            d = self.standby(f"standby_{name}", fn)
            res[name] = d
            print(f"  {name:13s} files {d['files_seconds']:6.1f} s, streaming after {d['streaming_seconds']:6.1f} s: "
                  f"leader CPU {d['cpu_s']:6.2f} s, rchar {fmt_b(d['rchar'])}, read_bytes {fmt_b(d['read_bytes'])}",
                  flush=True)
        self.cur["standby"] = res

    def stop(self):
        ok = True
        for r in list(self.restored):
            try:
                r.stop()
            except Exception as e:
                ok = False
                print(f"stopping {r.name} failed: {e!r}", file=sys.stderr)
        if self.up is not None:
            code = stop_process(self.up, sig=signal.SIGINT, timeout=300)
            if code != 0:
                ok = False
                print(f"pgha up exited {code}:\n{tail(self.up_log)}", file=sys.stderr)
        return ok


def median_tree(items):
    """One dict shaped like each of items, with the median of every number across them."""
    first = items[0]
    if isinstance(first, dict):
        return {k: median_tree([x[k] for x in items]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(items)
    return first


def summary(out, args):
    rounds = out["rounds"]
    o = median_tree(rounds)
    o["load"] = out["load"]
    f, i = o["full"], o["incr"]
    pb, gz, zs = f["pgbackrest"], f["basebackup_gzip"], f["basebackup_zstd"]
    print(f"\nsummary: median of {len(rounds)} round(s), scale {args.scale} (database {fmt_b(o['load']['db_bytes'])}, "
          f"data directory {fmt_b(o['load']['data_dir_bytes'])})")
    print("(CPU: the backup program's process tree; PG CPU: the leader's PostgreSQL processes)")
    print(f"{'full backup':34s} {'time':>8s} {'CPU':>8s} {'PG CPU':>8s} {'size':>10s} {'time/pgbr':>10s} "
          f"{'size/pgbr':>10s}")
    for name, x, size in (("pgbackrest zstd, process-max 2", pb, pb["repo_bytes"]),
                          ("pg_basebackup -Ft -z", gz, gz["bytes"]),
                          ("pg_basebackup -Ft -Z client-zstd", zs, zs["bytes"])):
        print(f"{name:34s} {x['seconds']:7.1f}s {x['cpu_s']:7.1f}s {x['leader_pg_cpu_s']:7.1f}s {fmt_b(size):>10s} "
              f"{ratio(x['seconds'], pb['seconds']):>10s} {ratio(size, pb['repo_bytes']):>10s}")
    print(f"\n{'incremental (1% rows)':34s} {'time':>8s} {'copied':>10s} {'in repo':>10s} {'time/full':>10s} "
          f"{'repo/full':>10s}")
    for name, b in i.items():
        print(f"{name:34s} {b['seconds']:7.1f}s {fmt_b(b['copied_bytes']):>10s} {fmt_b(b['repo_bytes']):>10s} "
              f"{ratio(b['seconds'], pb['seconds']):>10s} {ratio(b['repo_bytes'], pb['repo_bytes']):>10s}")
    if "block" in o:
        bf = o["block"]["full"]
        print(f"{'full with --repo-block':34s} {bf['seconds']:7.1f}s {'':>10s} {fmt_b(bf['repo_bytes']):>10s} "
              f"{ratio(bf['seconds'], pb['seconds']):>10s} {ratio(bf['repo_bytes'], pb['repo_bytes']):>10s}")
        for name, b in o["block"]["incr"].items():
            print(f"{'block ' + name:34s} {b['seconds']:7.1f}s {fmt_b(b['copied_bytes']):>10s} "
                  f"{fmt_b(b['repo_bytes']):>10s} {ratio(b['seconds'], bf['seconds']):>10s} "
                  f"{ratio(b['repo_bytes'], bf['repo_bytes']):>10s}")
    rs = o["restore"]
    print(f"\n{'restore a new cluster':22s} {'files':>8s} {'connect':>8s} {'promoted':>9s} {'vs pgbr':>8s}")
    for name, x in rs.items():
        ref = rs["pgbackrest " + name.split()[-1]]["promoted_seconds"]
        print(f"{name:22s} {x['files_seconds']:7.1f}s {x['connect_seconds']:7.1f}s {x['promoted_seconds']:8.1f}s "
              f"{ratio(x['promoted_seconds'], ref):>8s}")
    sb = o["standby"]
    a, b = sb["pgbackrest"], sb["pg_basebackup"]
    print("\nnew standby, load on the leader until it streams (pgbackrest from the repository / pg_basebackup)")
    print(f"  leader CPU:        {a['cpu_s']:8.2f} s / {b['cpu_s']:8.2f} s   ratio {ratio(a['cpu_s'], b['cpu_s'])}")
    print(f"  leader rchar:      {fmt_b(a['rchar']):>10s} / {fmt_b(b['rchar']):>10s}   "
          f"ratio {ratio(a['rchar'], b['rchar'])}")
    print(f"  leader read_bytes: {fmt_b(a['read_bytes']):>10s} / {fmt_b(b['read_bytes']):>10s}   "
          f"(from disk; 0 when the files are in the page cache)")
    print(f"  time to streaming: {a['streaming_seconds']:8.1f} s / {b['streaming_seconds']:8.1f} s   "
          f"ratio {ratio(a['streaming_seconds'], b['streaming_seconds'])}")
    print(f"  leader idle rate:  {sb['idle_per_s']['cpu_s'] * 1000:.0f} ms CPU/s (agents' health checks, "
          "checkpointer), included above")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=150, help="pgbench scale (150: about 2.3 GB; 5 for a smoke run)")
    ap.add_argument("--rounds", type=int, default=3, help="measure everything this many times; the summary "
                    "shows medians")
    ap.add_argument("--block-incremental", action="store_true",
                    help="also measure pgBackRest's block incremental (--beta --repo1-bundle --repo1-block)")
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, repository)")
    args = ap.parse_args()
    t_start = time.monotonic()
    b = Bench(args)
    ok = False
    try:
        print(f"bench/backup.py --scale {args.scale}: {os.cpu_count()} CPUs, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"temporary directory {b.base}", flush=True)
        b.start_cluster()
        b.load()
        for n in range(args.rounds):
            print(f"\n==== round {n + 1} of {args.rounds}", flush=True)
            b.cur = {}
            b.full()
            b.cur["incr"] = b.incr()
            b.markers()
            b.restores()
            b.standbys()
            if args.block_incremental:
                b.block_incremental()
            b.out["rounds"].append(b.cur)
            shutil.rmtree(b.gz_dir, ignore_errors=True)
        ok = True
    except Exception as e:
        print(f"\nFAILED: {type(e).__name__}: {e}", file=sys.stderr)
        if b.up is not None:
            print(f"pgha up output (tail):\n{tail(b.up_log)}", file=sys.stderr)
    finally:
        ok = b.stop() and ok
    if ok:
        summary(b.out, args)
        print("\npgBackRest ran with the leader agent's generated config, as the agent runs it; creating a standby "
              "from the repository is measured with pgbackrest restore directly, not through the agent.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(b.out, f, indent=1, default=str)
    print(f"\ntotal wall time {time.monotonic() - t_start:.0f} s")
    if args.keep:
        print(f"kept {b.base}")
    else:
        shutil.rmtree(b.base, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
