"""Patroni side of bench/failover.py and bench/switchover.py (not named patroni.py:
that would shadow the Patroni package itself on sys.path): three Patroni members on
one etcd (v3 API).

Same shape as the pgha harness in tests/integration/conftest.py (nodes with
host, pg_port, data_dir, proc, start(), sql(); a cluster with su_pw,
wait_streaming() and stop_all()), so that the writer and the faults of
bench/failover.py apply to both systems unchanged.

Every server binds 127.0.0.1 on a free port. Patroni runs as the OS user
postgres (PostgreSQL refuses root); its YAML files, which hold the passwords,
are mode 0600 and owned by postgres. Only the Patroni processes started here
are signalled, by PID, and the PostgreSQL instances they started, found
through postmaster.pid in their data directories.

Needs the Debian package patroni (3.0.x) and python3-etcd, which its etcd3
DCS module imports (scripts/install-deps.sh --bench).
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import psycopg
import yaml

from conftest import PG_BIN, free_port, signal_instance, wait_until

PATRONI_BIN = shutil.which("patroni") or "/usr/bin/patroni"

# bootstrap.dcs timing per profile (Patroni wants loop_wait + 2 * retry_timeout <= ttl).
PROFILES = {
    # Patroni's own defaults (patroni/config.py __DEFAULT_CONFIG), spelled out.
    "default": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
    # The same relation as pgha's default (ttl 9s, loop_wait 1s, retry_timeout 3s).
    "ttl10": {"ttl": 10, "loop_wait": 1, "retry_timeout": 3},
    # The closest to pgha's fast profile (3s / 500ms / 1s) that Patroni 3.0 can run: it
    # takes whole seconds only, and with etcd3 a retry_timeout of 1 never gets the leader
    # key (attempt_to_acquire_leader gives up when less than 1 s of retry_timeout is left
    # after refreshing its lease), so retry_timeout 2, and ttl >= loop_wait + 2 * 2.
    # (Patroni's docs from 3.1 on give minimums ttl 20, loop_wait 1, retry_timeout 3;
    # 3.0.2 does not enforce them.)
    "fast": {"ttl": 5, "loop_wait": 1, "retry_timeout": 2},
}

# The same server settings as the pgha bench nodes (conftest.Node.write_conf).
PG_PARAMETERS = {"shared_buffers": "16MB", "max_connections": 30, "fsync": "off"}


def patroni_version():
    try:
        r = subprocess.run([PATRONI_BIN, "--version"], capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip()
    except Exception as e:  # reported, not fatal here
        return f"unknown ({e!r})"


def _pid_is_postmaster_of(pid, data_dir):
    """True if pid is alive and is a postgres started on data_dir (postmaster.pid may be stale)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z" or not argv:
        return False
    real = os.path.realpath(data_dir)
    return os.path.basename(argv[0]) == "postgres" and any(
        os.path.realpath(a.split("=", 1)[-1]) == real for a in argv[1:] if "/" in a)


class PatroniNode:
    """One Patroni process + the PostgreSQL it manages."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.host = "127.0.0.1"
        self.pg_port = free_port()
        self.api_port = free_port()
        self.dir = os.path.join(cluster.base, name)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "run")
        os.makedirs(self.socket_dir, mode=0o700, exist_ok=True)
        shutil.chown(self.socket_dir, "postgres", "postgres")
        self.conf_path = os.path.join(self.dir, "patroni.yml")
        self.log_path = os.path.join(cluster.base, f"{name}.patroni.log")
        self.proc = None
        self.write_conf()

    def write_conf(self):
        c = self.cluster
        dcs = dict(c.timing)
        dcs["postgresql"] = {"use_pg_rewind": True, "use_slots": True, "parameters": dict(c.parameters)}
        dcs.update(c.dcs_extra)
        conf = {
            "scope": c.scope,
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"{self.host}:{self.api_port}",
                        "connect_address": f"{self.host}:{self.api_port}"},
            "etcd3": {"host": f"127.0.0.1:{c.etcd.client_port}"},
            "bootstrap": {"dcs": dcs},
            "postgresql": {
                "listen": f"{self.host}:{self.pg_port}",
                "connect_address": f"{self.host}:{self.pg_port}",
                "data_dir": self.data_dir,
                "bin_dir": PG_BIN,
                "pgpass": os.path.join(self.dir, "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": c.su_pw},
                    "replication": {"username": "replicator", "password": c.repl_pw},
                },
                "pg_hba": [
                    "local all postgres peer",
                    f"host all all {self.host}/32 scram-sha-256",
                    f"host replication replicator {self.host}/32 scram-sha-256",
                ],
                "parameters": {"unix_socket_directories": self.socket_dir},
                "remove_data_directory_on_rewind_failure": True,
                "remove_data_directory_on_diverged_timelines": True,
            },
            "watchdog": {"mode": "off"},
        }
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(conf, f, default_flow_style=False, sort_keys=False)
        os.chmod(self.conf_path, 0o600)
        shutil.chown(self.conf_path, "postgres", "postgres")

    def start(self):
        pw = pwd.getpwnam("postgres")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": pw.pw_dir, "USER": "postgres",
               "LOGNAME": "postgres", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")
        # user=/group= make the child itself drop to postgres before exec, so
        # proc.pid is Patroni's own PID (runuser/su would put a parent in between).
        self.proc = subprocess.Popen([PATRONI_BIN, self.conf_path], cwd=self.dir, env=env,
                                     user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        return self

    def postmaster_pid(self):
        """PID of the live PostgreSQL running on this data dir, or None."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return None
        return pid if _pid_is_postmaster_of(pid, self.data_dir) else None

    def stop(self, timeout=90):
        """SIGTERM Patroni (it stops PostgreSQL), then make sure its PostgreSQL is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        pid = self.postmaster_pid()
        if pid is not None:
            # Left behind (Patroni killed, or it gave up): fast shutdown, then kill the instance.
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _pid_is_postmaster_of(pid, self.data_dir):
                time.sleep(0.2)
            if _pid_is_postmaster_of(pid, self.data_dir):
                signal_instance(pid, signal.SIGKILL)

    def api(self, path):
        """(status, parsed JSON body) of GET path on this member's REST API."""
        req = urllib.request.Request(f"http://{self.host}:{self.api_port}{path}")
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body) if body else None
            except ValueError:
                return e.code, None

    def api_post(self, path, body, timeout=60, method="POST"):
        """(status, body text) of POST (or method, e.g. PATCH /config) path with a JSON body."""
        req = urllib.request.Request(f"http://{self.host}:{self.api_port}{path}",
                                     data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def connect(self, **kw):
        return psycopg.connect(host=self.host, port=self.pg_port, user="postgres",
                               password=self.cluster.su_pw, dbname="postgres",
                               connect_timeout=5, **kw)

    def sql(self, query, params=None, autocommit=True):
        with self.connect(autocommit=autocommit) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class PatroniCluster:
    def __init__(self, base, etcd, profile, scope="bench", parameters=None, dcs_extra=None):
        self.base = base
        self.etcd = etcd
        self.scope = scope
        self.timing = dict(PROFILES[profile])
        # PostgreSQL parameters (bootstrap.dcs.postgresql.parameters); PG_PARAMETERS unless given.
        self.parameters = dict(PG_PARAMETERS if parameters is None else parameters)
        # More bootstrap.dcs keys (bench/cluster_switch.py: standby_cluster, slots).
        self.dcs_extra = dict(dcs_extra or {})
        self.su_pw = "su-" + os.urandom(8).hex()
        self.repl_pw = "re'pl:" + os.urandom(8).hex()
        self.nodes = {}

    def add(self, name):
        node = PatroniNode(self, name)
        self.nodes[name] = node
        return node

    def view(self):
        """GET /cluster from the first member that answers."""
        last = None
        for node in self.nodes.values():
            if node.proc is None or node.proc.poll() is not None:
                continue
            try:
                status, body = node.api("/cluster")
                if status == 200 and body:
                    return body
            except Exception as e:
                last = e
        raise RuntimeError(f"no Patroni REST API answered /cluster ({last!r})")

    def leader(self):
        for m in self.view().get("members", []):
            if m.get("role") == "leader":
                return m["name"]
        return None

    def dynamic_config(self):
        for node in self.nodes.values():
            try:
                status, body = node.api("/config")
                if status == 200:
                    return body
            except Exception:
                pass
        return None

    def wait_streaming(self, names, timeout=120):
        """Wait for a leader (running primary) and every other name streaming from it.

        Patroni 3.0 reports replicas as state "running" whether or not they
        replicate, so streaming is checked on the leader's pg_stat_replication
        (Patroni sets application_name to the member name)."""
        def ok():
            ms = {m["name"]: m for m in self.view().get("members", [])}
            leader = next((n for n, m in ms.items() if m.get("role") == "leader"), None)
            if leader not in self.nodes or ms[leader].get("state") != "running":
                return None
            if any(self.nodes[n].proc is None or self.nodes[n].proc.poll() is not None for n in names):
                return None
            node = self.nodes[leader]
            if node.sql("SELECT pg_is_in_recovery()")[0][0]:
                return None
            streaming = {r[0] for r in node.sql(
                "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")}
            for n in names:
                if n != leader and (n not in streaming or ms.get(n, {}).get("state") != "running"):
                    return None
            return leader
        return wait_until(f"{names} to stream from a Patroni leader", ok, timeout=timeout)

    def stop_all(self):
        # Standbys first, then the leader (as conftest.Cluster.stop_all).
        leader = None
        try:
            leader = self.leader()
        except Exception:
            pass
        for name, node in self.nodes.items():
            if name != leader:
                node.stop()
        if leader in self.nodes:
            self.nodes[leader].stop()
