"""Integration-test harness: real etcd, real PostgreSQL 15, real pgha agents.

Every server binds 127.0.0.1 on a port picked here, lives in a temporary
directory made for the test, and is stopped by the test (by PID). Every wait
is bounded in time.
"""
import collections
import contextlib
import fcntl
import json
import os
import random
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import psycopg
import pytest

PGHA_BIN = os.environ.get("PGHA_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "pgha")
PGHA_BIN = os.path.abspath(PGHA_BIN)
ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"
PG_BIN = "/usr/lib/postgresql/15/bin"


_handed_out = set()


def _free_port_in(lo, hi):
    """The first free port of lo..hi not handed out yet (PGHA_TEST_PORTS: see the Makefile)."""
    for port in range(lo, hi + 1):
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in PGHA_TEST_PORTS {lo}-{hi}")


def free_port():
    """A free port on 127.0.0.1, never one this test run handed out before: a port
    released at once may come back from the next bind(0), and two servers of one
    test would then collide. With PGHA_TEST_PORTS=LO-HI (a range outside the kernel's
    ephemeral ports, which bind(0) never hands out), from that range: the Makefile runs
    the isolated tests so, beside the others."""
    rng = os.environ.get("PGHA_TEST_PORTS")
    if rng:
        lo, hi = (int(x) for x in rng.split("-"))
        return _free_port_in(lo, hi)
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port on 127.0.0.1 after 1000 tries")


def wait_until(what, fn, timeout=60.0, interval=0.2):
    """Call fn until it returns a truthy value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # the thing we wait for may not be up yet
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def stop_process(proc, sig=signal.SIGTERM, timeout=60):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


def make_base_dir():
    # Under /tmp, traversable by the postgres OS user (the tests run as root and
    # PostgreSQL must not).
    d = tempfile.mkdtemp(prefix="pgha-test-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def etcdctl(cluster, *args, timeout=30):
    """etcdctl (API v3) against the cluster's etcd; its output. Fails the test on an error."""
    r = subprocess.run(["etcdctl", f"--endpoints={cluster.etcd.url}", *args], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "ETCDCTL_API": "3"})
    assert r.returncode == 0, r.stderr
    return r.stdout


def write_pitr_rows(node, commits, first, n, pause):
    """Insert rows first.. into table pitr one transaction each, recording each commit's time
    (track_commit_timestamp) in commits[id]: what a point-in-time recovery must keep or drop."""
    for i in range(first, first + n):
        node.sql("INSERT INTO pitr VALUES (%s, 'row ' || %s)", (i, i))
        commits[i] = node.sql("SELECT pg_xact_commit_timestamp(xmin) FROM pitr WHERE id = %s", (i,))[0][0]
        time.sleep(pause)


def make_repo(base):
    """An empty pgBackRest repository directory under base, owned by postgres."""
    repo = os.path.join(base, "repo")
    os.makedirs(repo, mode=0o750)
    shutil.chown(repo, "postgres", "postgres")
    return repo


class Etcd:
    def __init__(self, base, host="127.0.0.1"):
        self.dir = os.path.join(base, "etcd")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.host = host
        self.url = f"http://{host}:{self.client_port}"
        self.log_path = os.path.join(base, "etcd.log")
        self.proc = None

    def start(self):
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.log_path, "ab")
        listen = self.url if self.host == "127.0.0.1" else \
            f"{self.url},http://127.0.0.1:{self.client_port}"
        self.proc = subprocess.Popen(
            [ETCD_BIN, "--name", "t", "--data-dir", self.dir,
             "--listen-client-urls", listen, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"t={peer}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until("etcd to answer", self.healthy, timeout=30)
        return self

    def healthy(self):
        with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
            return json.loads(r.read()).get("health") == "true"

    def stop(self):
        stop_process(self.proc, timeout=30)


def openssl_ca(d, name):
    """A self-signed CA made by openssl in d: its certificate's path (the key beside it)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem"],
                   cwd=d, check=True, capture_output=True, timeout=60)
    return os.path.join(d, f"{name}.pem")


def openssl_cert(d, ca, name, san="IP:127.0.0.1"):
    """A certificate for name signed by the CA `ca` (made by openssl_ca in d): (cert, key) paths."""
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                    "-keyout", f"{name}.key", "-out", f"{name}.csr"],
                   cwd=d, check=True, capture_output=True, timeout=60)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                    "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem"],
                   cwd=d, check=True, capture_output=True, timeout=60)
    os.chmod(os.path.join(d, f"{name}.key"), 0o600)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


class EtcdMember:
    """One member of an EtcdCluster: its own client and peer ports, data directory and log."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"{cluster.scheme}://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.dir = os.path.join(cluster.base, f"etcd-{name}")
        self.log_path = os.path.join(cluster.base, f"etcd-{name}.log")
        self.proc = None

    def start(self, initial_cluster, state):
        tls = self.cluster.tls
        args = []
        if tls:
            args = ["--cert-file", tls["cert"], "--key-file", tls["key"], "--trusted-ca-file", tls["ca"],
                    "--client-cert-auth"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [ETCD_BIN, "--name", self.name, "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
             "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
             "--initial-cluster-token", self.cluster.token, *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def healthy(self):
        r = self.cluster.etcdctl("endpoint", "health", endpoints=self.url, check=False, timeout=5)
        return r.returncode == 0

    def kill(self, sig=signal.SIGKILL):
        """Signal the member by its PID (SIGKILL: wait for it to be gone)."""
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)   # a stopped member cannot handle SIGTERM
        stop_process(self.proc, timeout=30)


class EtcdCluster:
    """A real etcd cluster of n members on 127.0.0.1 (static --initial-cluster), optionally over TLS
    (tls: {"ca", "cert", "key"}: members require client certificates signed by ca, and etcdctl here
    uses cert/key). `url` is what agents and the proxy are configured with: the first members' URLs."""

    def __init__(self, base, n=3, tls=None):
        self.base = base
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.token = "pgha-test-" + os.urandom(4).hex()
        self.members = [EtcdMember(self, f"e{i + 1}") for i in range(n)]
        self.url = ",".join(m.url for m in self.members)
        self.serial = n

    def start(self):
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.start(initial, "new")
        for m in self.members:
            wait_until(f"etcd member {m.name} to answer", m.healthy, timeout=30)
        return self

    def live_urls(self):
        return ",".join(m.url for m in self.members if m.proc and m.proc.poll() is None)

    def etcdctl(self, *args, endpoints=None, check=True, timeout=30):
        tls = []
        if self.tls:
            tls = [f"--cacert={self.tls['ca']}", f"--cert={self.tls['cert']}", f"--key={self.tls['key']}"]
        r = subprocess.run(["etcdctl", f"--endpoints={endpoints or self.live_urls()}", *tls, *args],
                           capture_output=True, text=True, timeout=timeout, env={**os.environ, "ETCDCTL_API": "3"})
        if check:
            assert r.returncode == 0, f"etcdctl {' '.join(args)}: {r.stderr}"
        return r

    def leader(self):
        """The member that is raft leader now."""
        for m in self.members:
            r = self.etcdctl("endpoint", "status", "-w", "json", endpoints=m.url, check=False, timeout=5)
            if r.returncode == 0:
                st = json.loads(r.stdout)[0]["Status"]
                if st["header"]["member_id"] == st["leader"]:
                    return m
        return None

    def replace(self, old):
        """Remove member old (killed by PID, its data wiped) and add a new member on new ports: the
        runtime reconfiguration an operator does for a dead machine. Returns the new member."""
        ids = {}
        for line in self.etcdctl("member", "list").stdout.splitlines():
            f = [x.strip() for x in line.split(",")]
            ids[f[2]] = f[0]
        # etcd refuses a change that would leave too few members it saw active in the last 5 s
        # ("unhealthy cluster"), e.g. right after a member came back: every member healthy first,
        # then retry until it takes it (a busy machine may need its peers a while to reconnect).
        wait_until("every etcd member healthy before a removal",
                   lambda: self.etcdctl("endpoint", "health", check=False, timeout=10).returncode == 0,
                   timeout=60, interval=1)
        last = {}

        def remove():
            r = self.etcdctl("member", "remove", ids[old.name], check=False)
            last["err"] = r.stderr.strip()
            if r.returncode == 0:
                return True
            # An earlier attempt that timed out on the client side may have been applied: then the
            # member is gone from the list, which is what was asked.
            return "member not found" in r.stderr and \
                ids[old.name] not in self.etcdctl("member", "list", check=False).stdout
        try:
            wait_until(f"etcd to remove member {old.name}", remove, timeout=60, interval=1)
        except AssertionError as e:
            raise AssertionError(f"{e}; etcdctl said: {last.get('err')}") from None
        if old.proc.poll() is None:
            old.kill()
        shutil.rmtree(old.dir, ignore_errors=True)
        self.members.remove(old)
        self.serial += 1
        new = EtcdMember(self, f"e{self.serial}")
        wait_until(f"etcd to add member {new.name}",
                   lambda: self.etcdctl("member", "add", new.name, f"--peer-urls={new.peer_url}",
                                        check=False).returncode == 0, timeout=30, interval=1)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members + [new])
        self.members.append(new)
        new.start(initial, "existing")
        wait_until(f"new etcd member {new.name} to answer", new.healthy, timeout=30)
        return new

    def stop(self):
        for m in self.members:
            m.stop()


class Node:
    """One agent + its PostgreSQL, configured through its own INI file."""

    def __init__(self, cluster, name, extra=None, host="127.0.0.1", netns=None):
        self.cluster = cluster
        self.name = name
        self.host = host
        self.netns = netns
        self.dir = os.path.join(cluster.base, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.pg_port = free_port()
        self.api_port = free_port()
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "run")
        os.makedirs(self.socket_dir, exist_ok=True)
        shutil.chown(self.socket_dir, "postgres", "postgres")
        self.conf_path = os.path.join(cluster.base, f"{name}.conf")
        self.log_path = os.path.join(cluster.base, f"{name}.agent.log")
        self.proc = None
        self.extra = dict(extra or {})
        self.write_conf(self.extra)

    def write_conf(self, extra):
        c = self.cluster
        sections = {
            "cluster": {"name": c.name},
            "etcd": {"endpoints": c.etcd.url},
            "node": {"name": self.name, "api_listen": f"{self.host}:{self.api_port}",
                     "api_token_file": c.api_token_file},
            "postgresql": {
                "data_dir": self.data_dir,
                "bin_dir": PG_BIN,
                "listen": f"{self.host}:{self.pg_port}",
                "socket_dir": self.socket_dir,
                "superuser_password_file": c.su_pw_file,
                "replication_password_file": c.repl_pw_file,
            },
            "parameters": {"shared_buffers": "16MB", "max_connections": "30",
                           "fsync": "off"},
        }
        for key, value in extra.items():
            sec, opt = key.split(".", 1)
            sections.setdefault(sec, {})[opt] = value
        with open(self.conf_path, "w") as f:
            for sec, opts in sections.items():
                f.write(f"[{sec}]\n")
                for k, v in opts.items():
                    f.write(f"{k} = {v}\n")
                f.write("\n")

    def start(self):
        log = open(self.log_path, "ab")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(prefix + [PGHA_BIN, "agent", "-c", self.conf_path],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    def stop(self, timeout=90):
        return stop_process(self.proc, timeout=timeout)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def api_url(self):
        """The API's base URL: https:// when [tls] cert_file is set and [tls] api is not off."""
        tls = self.extra.get("tls.cert_file") and self.extra.get("tls.api", "on") == "on"
        return f"{'https' if tls else 'http'}://{self.host}:{self.api_port}"

    def api_ssl_context(self):
        """For an https:// API: verify it with [tls] ca_file, present the node's own certificate."""
        if not self.api_url().startswith("https://"):
            return None
        ctx = ssl.create_default_context(cafile=self.extra["tls.ca_file"])
        ctx.load_cert_chain(self.extra["tls.cert_file"], self.extra["tls.key_file"])
        return ctx

    def api(self, path):
        """(status, parsed JSON body) of GET path on this agent's API."""
        req = urllib.request.Request(f"{self.api_url()}{path}")
        try:
            with urllib.request.urlopen(req, timeout=3, context=self.api_ssl_context()) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            body = e.read()
            return e.code, json.loads(body) if body else None

    def connect(self, via_socket=False, **kw):
        host = self.socket_dir if via_socket else self.host
        return psycopg.connect(host=host, port=self.pg_port, user="postgres",
                               password=self.cluster.su_pw, dbname="postgres",
                               connect_timeout=5, **kw)

    def sql(self, query, params=None, autocommit=True):
        with self.connect(autocommit=autocommit) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None


class AckWriter:
    """Inserts rows tagged NAME-i into table sw (or `table`) through connect(), one at a time, reconnecting on
    error; records the acknowledged tags, the errors and the longest gap between two acknowledgements."""

    def __init__(self, name, connect, table="sw"):
        import threading
        self.name, self.connect, self.table = name, connect, table
        self.acked, self.errors = [], []
        self.stop = threading.Event()
        self.max_gap = 0.0
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conn = None
        last = time.monotonic()
        i = 0
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = self.connect()
                    conn.autocommit = True
                i += 1
                tag = f"{self.name}-{i}"
                conn.execute(f"INSERT INTO {self.table} (who) VALUES (%s)", (tag,))
                self.acked.append(tag)
                now = time.monotonic()
                self.max_gap = max(self.max_gap, now - last)
                last = now
            except psycopg.Error as e:
                self.errors.append(f"{type(e).__name__}: {e}".strip())
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(0.01)
        if conn is not None:
            conn.close()

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(30)

def leader_with_role(cluster, role, timeout=120):
    """The cluster's key holder once it runs in role (primary, or replica for a standby cluster's
    leader): its Node."""
    def ok():
        v = cluster.view()
        ms = {m["name"]: m for m in v["members"]}
        lead = v.get("leader")
        if lead in ms and ms[lead]["role"] == role and ms[lead]["state"] in ("running", "streaming"):
            return lead
        return None
    return cluster.nodes[wait_until(f"a {role} leader of {cluster.name}", ok, timeout=timeout)]


class Cluster:
    def __init__(self, base, etcd, name="t"):
        self.base = base
        self.etcd = etcd
        self.name = name
        secrets = os.path.join(base, "secrets")
        os.makedirs(secrets, mode=0o700, exist_ok=True)
        self.su_pw = "su-" + os.urandom(8).hex()
        self.repl_pw = "re'pl:" + os.urandom(8).hex()   # quoting must survive
        self.su_pw_file = os.path.join(secrets, "su")
        self.repl_pw_file = os.path.join(secrets, "repl")
        # One API token for every member, as `pgha up` makes: POST /failsafe needs it.
        self.api_token = "tok-" + os.urandom(12).hex()
        self.api_token_file = os.path.join(secrets, "api.token")
        for path, pw in ((self.su_pw_file, self.su_pw), (self.repl_pw_file, self.repl_pw),
                         (self.api_token_file, self.api_token)):
            with open(path, "w") as f:
                f.write(pw + "\n")
            os.chmod(path, 0o600)
        self.nodes = {}

    def add(self, name, extra=None, **kw):
        node = Node(self, name, extra, **kw)
        self.nodes[name] = node
        return node

    def ctl(self, *args, check=True):
        r = subprocess.run([PGHA_BIN, "ctl", "--etcd", self.etcd.url, "--cluster", self.name,
                            *args], capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"pgha ctl {' '.join(args)} failed: {r.stderr}")
        return r

    def view(self):
        return json.loads(self.ctl("list", "--json").stdout)

    def members(self):
        return {m["name"]: m for m in self.view()["members"]}

    def leader(self):
        return self.view().get("leader")

    def wait_streaming(self, names, timeout=120):
        """Wait for a leader (running primary) and every other name streaming."""
        def ok():
            v = self.view()
            ms = {m["name"]: m for m in v["members"]}
            leader = v.get("leader")
            if leader not in ms or ms[leader]["role"] != "primary" or ms[leader]["state"] != "running":
                return None
            for n in names:
                if n != leader and (n not in ms or ms[n]["state"] != "streaming"):
                    return None
            return leader
        return wait_until(f"{names} to stream from a leader", ok, timeout=timeout)

    def stop_all(self):
        # Standbys first, then the leader.
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


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(d):
    """Sanitizer reports in any log under d (the binaries are built with ASan/UBSan in CI)."""
    found = []
    for root, _, files in os.walk(d):
        for name in files:
            if name.endswith(".log"):
                with open(os.path.join(root, name), errors="replace") as f:
                    text = f.read()
                for mark in SANITIZER_MARKS:
                    i = text.find(mark)
                    if i >= 0:
                        found.append(f"{name}: {text[max(0, i - 200):i + 1500]}")
    return found


@contextlib.contextmanager
def shared_base(request):
    """The base directory of a cluster shared by a whole test file (a module-scoped fixture
    stops its servers inside this block): afterwards any sanitizer report fails, the logs are
    shown if a test of the file failed, and the directory is removed if none did."""
    base = make_base_dir()
    failed_before = request.session.testsfailed
    failed = True
    try:
        yield base
        failed = request.session.testsfailed != failed_before
    finally:
        reports = sanitizer_reports(base)
        if reports or failed:
            for name in sorted(os.listdir(base)):
                if name.endswith(".log"):
                    with open(os.path.join(base, name), errors="replace") as f:
                        print(f"\n===== {name} (tail) =====\n{f.read()[-5000:]}")
        else:
            shutil.rmtree(base, ignore_errors=True)
        assert not reports, "sanitizer report(s):\n" + "\n----\n".join(reports)


@contextlib.contextmanager
def module_cluster(request, names, node_extra=None, proxy_args=None):
    """A cluster (and a proxy when proxy_args is given: Proxy's keyword arguments, or a function of the
    cluster returning them) shared by a module's tests: (cluster, proxy), in a shared_base."""
    with shared_base(request) as base:
        etcd = Etcd(base).start()
        cluster = Cluster(base, etcd)
        proxy = None
        try:
            for n in names:
                cluster.add(n, node_extra).start()
            cluster.wait_streaming(list(names), timeout=120)
            if proxy_args is not None:
                proxy = Proxy(cluster, **(proxy_args(cluster) if callable(proxy_args) else proxy_args)).start()
            yield cluster, proxy
        finally:
            if proxy is not None:
                proxy.stop()
            cluster.stop_all()
            etcd.stop()


@pytest.fixture
def base_dir(request):
    d = make_base_dir()
    yield d
    reports = sanitizer_reports(d)
    if reports:
        pytest.fail("sanitizer report(s):\n" + "\n----\n".join(reports), pytrace=False)
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        # Leave the directory for inspection and show the agent logs.
        for name in sorted(os.listdir(d)):
            if name.endswith(".log"):
                with open(os.path.join(d, name), errors="replace") as f:
                    tail = f.read()[-6000:]
                print(f"\n===== {name} (tail) =====\n{tail}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def etcd(base_dir):
    e = Etcd(base_dir).start()
    yield e
    e.stop()


@pytest.fixture
def cluster(base_dir, etcd):
    c = Cluster(base_dir, etcd)
    yield c
    c.stop_all()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


class DelayedWire:
    """A long-distance link between two bridges: a TAP device on each and a thread per direction
    that passes every frame across `ms` later (this kernel has no tc netem: CONFIG_NET_SCH_NETEM
    is off). Frames keep their order; the wire holds them in memory only."""
    TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000

    def __init__(self, tag, bridge_a, bridge_b, ms):
        import threading
        self.delay = ms / 1000.0
        self.stop_flag = threading.Event()
        self.fds = []
        for side, bridge in (("a", bridge_a), ("b", bridge_b)):
            name = f"pt{side}{tag}"
            fd = os.open("/dev/net/tun", os.O_RDWR)
            fcntl.ioctl(fd, self.TUNSETIFF, struct.pack("16sH", name.encode(), self.IFF_TAP | self.IFF_NO_PI))
            self.fds.append(fd)
            ip("link", "set", name, "master", bridge)
            ip("link", "set", name, "up")
        self.threads = [threading.Thread(target=self._pump, args=(a, b), daemon=True)
                        for a, b in ((self.fds[0], self.fds[1]), (self.fds[1], self.fds[0]))]
        for t in self.threads:
            t.start()

    def _pump(self, src, dst):
        queue = collections.deque()
        while not self.stop_flag.is_set():
            wait = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.2
            ready, _, _ = select.select([src], [], [], wait)
            now = time.monotonic()
            if ready:
                try:
                    queue.append((now + self.delay, os.read(src, 65536)))
                except OSError:
                    pass
            while queue and queue[0][0] <= now:
                try:
                    os.write(dst, queue.popleft()[1])
                except OSError:
                    pass   # the other side is down: the frame is lost, as on a cut wire

    def close(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(5)
        for fd in self.fds:
            os.close(fd)   # the TAP devices go with their last descriptor


class Net:
    """A bridge in this namespace and one namespace per member, each with a veth (addresses
    10.213.X.0/24 exist only inside this machine; the bridge's own address is X.1). Members named
    in `far` sit on a second bridge joined to the first by a DelayedWire of far_ms each way: one
    L2 segment, far from the rest."""

    def __init__(self, names, far=(), far_ms=10):
        self.tag = f"{os.getpid() % 1000:03d}{random.randint(0, 99):02d}"
        self.subnet = 100 + random.randint(0, 150)
        self.bridge = f"pgbr{self.tag}"
        self.far_bridge = f"pgfb{self.tag}" if far else None
        self.wire = None
        self.gw = f"10.213.{self.subnet}.1"
        self.members = {}
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gw}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        if far:
            ip("link", "add", self.far_bridge, "type", "bridge")
            ip("link", "set", self.far_bridge, "up")
            self.wire = DelayedWire(self.tag, self.bridge, self.far_bridge, far_ms)
        for i, name in enumerate(names):
            ns = f"pgha{self.tag}{name}"
            outer, inner = f"pv{self.tag}{i}", f"pi{self.tag}{i}"
            addr = f"10.213.{self.subnet}.{10 + i}"
            ip("netns", "add", ns)
            ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            ip("link", "set", inner, "netns", ns)
            ip("link", "set", outer, "master", self.far_bridge if name in far else self.bridge)
            ip("link", "set", outer, "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
            ip("-n", ns, "link", "set", inner, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            self.members[name] = (ns, outer, addr)

    def cut(self, name):
        ip("link", "set", self.members[name][1], "down")

    def heal(self, name):
        ip("link", "set", self.members[name][1], "up")

    def destroy(self):
        for ns, outer, _ in self.members.values():
            ip("link", "del", outer, check=False)
            ip("netns", "del", ns, check=False)
        if self.wire:
            self.wire.close()
            ip("link", "del", self.far_bridge, check=False)
        ip("link", "del", self.bridge, check=False)


class Writer:
    """Writes to every member all the time and records which writes were
    acknowledged, and when. A write counts as acknowledged only if its COMMIT
    returned within `timeout` seconds (as an application with a client-side
    timeout would see it); one that hangs longer is abandoned.

    assert_no_split_brain(): the acceptance windows [first ack, last ack] of
    two members must never overlap."""

    def __init__(self, cluster, interval=0.02, timeout=2.0):
        import threading
        self.cluster = cluster
        self.interval = interval
        self.timeout = timeout
        self.lock = threading.Lock()
        self.acked = []          # (member, id, t_send, t_ack)
        self.next_id = 0
        self.stop_flag = threading.Event()
        self.threads = []

    def _new_id(self):
        with self.lock:
            self.next_id += 1
            return self.next_id

    def start(self):
        import threading
        leader = self.cluster.nodes[self.cluster.leader()]
        leader.sql("CREATE TABLE IF NOT EXISTS sb_writes (id bigint PRIMARY KEY, member text, t double precision)")
        for name in self.cluster.nodes:
            t = threading.Thread(target=self._loop, args=(name,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _attempt(self, node, wid, result):
        try:
            with psycopg.connect(host=node.host, port=node.pg_port, user="postgres",
                                 password=self.cluster.su_pw, dbname="postgres",
                                 connect_timeout=2, autocommit=True) as c:
                c.execute("INSERT INTO sb_writes VALUES (%s, %s, %s)", (wid, node.name, time.time()))
                result.append(True)
        except Exception:
            pass

    def _loop(self, name):
        import threading
        node = self.cluster.nodes[name]
        while not self.stop_flag.is_set():
            wid = self._new_id()
            result = []
            t0 = time.monotonic()
            th = threading.Thread(target=self._attempt, args=(node, wid, result), daemon=True)
            th.start()
            th.join(self.timeout)
            t1 = time.monotonic()
            if result and not th.is_alive() and t1 - t0 <= self.timeout:
                with self.lock:
                    self.acked.append((name, wid, t0, t1))
            time.sleep(self.interval)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def acked_on(self, member):
        with self.lock:
            return [w for w in self.acked if w[0] == member]

    def max_acked_id(self, member):
        ids = [w[1] for w in self.acked_on(member)]
        return max(ids) if ids else 0

    def windows(self):
        with self.lock:
            ws = {}
            for member, _, _, t_ack in self.acked:
                lo, hi = ws.get(member, (t_ack, t_ack))
                ws[member] = (min(lo, t_ack), max(hi, t_ack))
            return ws

    def assert_no_split_brain(self):
        ws = self.windows()
        names = sorted(ws)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                (a0, a1), (b0, b1) = ws[a], ws[b]
                assert a1 < b0 or b1 < a0, \
                    f"split brain: {a} accepted writes during {a0:.3f}..{a1:.3f} and {b} during {b0:.3f}..{b1:.3f}"
        return ws


def replicated_checkpoint(cluster, writer, leader):
    """Highest id acknowledged by the leader that is known to have reached every standby."""
    ln = cluster.nodes[leader]
    time.sleep(0.5)
    mark = writer.max_acked_id(leader)
    lsn = ln.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    for name, node in cluster.nodes.items():
        if name == leader:
            continue
        wait_until(f"{name} to replay {lsn}",
                   lambda: node.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0],
                   timeout=30)
    return mark


def pg_pid(node):
    with open(os.path.join(node.data_dir, "postmaster.pid")) as f:
        return int(f.readline())


def parent_pids():
    """{pid: parent pid} of every process now."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return parents


def instance_pids(postmaster):
    """The postmaster and its children (backends are not in its process group)."""
    return [postmaster] + [pid for pid, ppid in parent_pids().items() if ppid == postmaster]


def signal_instance(postmaster, sig):
    """Signal a whole PostgreSQL instance, as a node freeze or death would."""
    import signal as _signal
    if sig in (_signal.SIGKILL, _signal.SIGSTOP):
        # Freeze the postmaster first so it forks nothing new meanwhile.
        try:
            os.kill(postmaster, _signal.SIGSTOP)
        except ProcessLookupError:
            return
    for pid in instance_pids(postmaster):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def process_tree(roots):
    """The processes in roots and all their descendants."""
    parents = parent_pids()
    tree, grew = set(roots), True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def _cgroup_freezer():
    """(kind, root) of a hierarchy this process can freeze processes in, or None:
    the cgroup v1 freezer, else cgroup v2 (its cgroup.freeze, Linux 5.2+)."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split() for line in f]
    for dev, where, fstype, opts, *_ in mounts:
        if fstype == "cgroup" and "freezer" in opts.split(","):
            return "v1", where
    for dev, where, fstype, *_ in mounts:
        if fstype == "cgroup2":
            return "v2", where
    return None


def _cgroup_of(pid, kind):
    """pid's cgroup path (from the hierarchy's root) in the freezer hierarchy of kind."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if (kind == "v1" and "freezer" in controllers.split(",")) or (kind == "v2" and controllers == ""):
                return path
    return "/"


class _CgroupFreeze:
    """Every process of a member in one freezer cgroup made for it, frozen and
    thawed by the kernel as a group; the cgroup removed afterwards."""

    _serial = 0

    def __init__(self, kind, root, node):
        _CgroupFreeze._serial += 1
        self.kind, self.root = kind, root
        self.path = os.path.join(root, f"pgha-test-{os.getpid()}-{node.name}-{_CgroupFreeze._serial}")
        self.home = os.path.join(root, _cgroup_of(node.proc.pid, kind).lstrip("/"))
        os.mkdir(self.path)     # raises when this hierarchy is not ours to change: signals then
        if kind == "v2" and not os.path.exists(os.path.join(self.path, "cgroup.freeze")):
            os.rmdir(self.path)
            raise OSError(f"{root} has no cgroup.freeze (Linux before 5.2)")

    def _move(self, pid, to):
        try:
            with open(os.path.join(to, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except ProcessLookupError:
            pass                # exited meanwhile
        except OSError as e:
            if e.errno != 22:   # EINVAL: a zombie
                raise

    def move_in(self, roots):
        # Parents first: what they fork from then on is born in the cgroup, and what they forked
        # before is in the next look at the tree; repeated until a look finds nothing new.
        moved = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = process_tree(roots) - moved
            if not new:
                break
            for pid in sorted(new, key=lambda p: p not in roots):
                self._move(pid, self.path)
                moved.add(pid)
        else:
            raise AssertionError(f"{roots}: processes kept appearing while being moved to {self.path}")

    def freeze(self):
        if self.kind == "v1":
            self._write("freezer.state", "FROZEN")
            wait_until(f"{self.path} frozen", lambda: self._read("freezer.state") == "FROZEN", timeout=10,
                       interval=0.01)
        else:
            self._write("cgroup.freeze", "1")
            wait_until(f"{self.path} frozen", lambda: "frozen 1" in self._read("cgroup.events"), timeout=10,
                       interval=0.01)

    def thaw(self):
        self._write("freezer.state" if self.kind == "v1" else "cgroup.freeze",
                    "THAWED" if self.kind == "v1" else "0")

    def remove(self):
        def emptied():
            for pid in self._read("cgroup.procs").split():
                self._move(int(pid), self.home)
            try:
                os.rmdir(self.path)
                return True
            except OSError:
                return False    # EBUSY: a process forked into it meanwhile
        wait_until(f"{self.path} emptied and removed", emptied, timeout=10, interval=0.05)

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def _read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return f.read().strip()


@contextlib.contextmanager
def frozen(node):
    """A paused node for the duration of the block: its agent (with any child
    it runs) and its PostgreSQL instance stop, then resume together.

    Why the cgroup freezer: a real pause of a node (`docker pause`, which is
    this same freezer; a cgroup frozen by systemd; a VM paused by its
    hypervisor) stops every process at once and lets them all run again at the
    same instant; the agent's fence thread and PostgreSQL's postmaster then
    race on equal terms, as they do in production. Resuming with SIGCONT one
    process after the other does not: PostgreSQL resumed first gets a head
    start no real pause gives it, in which a connection that waited in the
    listen backlog through the freeze is accepted, authenticated and
    committed before the agent is even running again -- a window made by the
    test, not by pgha. The freezer removes only that head start: the writer
    and the split-brain check are unchanged, so a fence that comes too late
    after a simultaneous resume still fails the test. (The host's clock runs
    on through the freeze, as in `docker pause`; a KVM guest's clock may stop
    while the VM is paused, which this does not model.)

    Where no freezer can be used (no cgroup hierarchy this process may change),
    signals: SIGSTOP of the instance (postmaster first) and of the agent, and
    SIGCONT of the agent first, then of the instance: any head start goes to
    the agent, not to PostgreSQL (the milder model; the freezer is the
    faithful one).

    Yields how the node was frozen: "cgroup v1", "cgroup v2" or "signals"."""
    postmaster = pg_pid(node)
    agent = node.proc.pid
    found = _cgroup_freezer()
    cg = None
    if found:
        try:
            cg = _CgroupFreeze(*found, node)
            cg.move_in([agent, postmaster])
        except OSError as e:
            if cg is not None:
                cg.remove()
                cg = None
            print(f"{node.name}: cannot use the {found[0]} freezer under {found[1]} ({e}); freezing with signals")
    if cg is None:
        signal_instance(postmaster, signal.SIGSTOP)
        os.kill(agent, signal.SIGSTOP)
        try:
            yield "signals"
        finally:
            os.kill(agent, signal.SIGCONT)
            signal_instance(postmaster, signal.SIGCONT)
        return
    try:
        try:
            cg.freeze()
            yield f"cgroup {found[0]}"
        finally:
            cg.thaw()
    finally:
        cg.remove()


class UpCluster:
    """A cluster `pgha up --dir DIR --nodes N` runs (etcd, agents, a proxy), as a newcomer starts it:
    its printed output, its ports from DIR/up.conf, `pgha ctl -c DIR/node1.conf`."""

    def __init__(self, base, nodes=2):
        self.dir = os.path.join(base, "up")
        self.names = [f"node{i + 1}" for i in range(nodes)]
        self.proc = subprocess.Popen([PGHA_BIN, "up", "--dir", self.dir, "--nodes", str(nodes), "--timeout", "240"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.output = ""
        deadline = time.monotonic() + 300
        while "\nStop:" not in self.output:
            line = self.proc.stdout.readline()
            if not line and (self.proc.poll() is not None or time.monotonic() > deadline):
                raise AssertionError("pgha up did not come up:\n" + self.output)
            self.output += line
        self.ports = {}
        with open(os.path.join(self.dir, "up.conf")) as f:
            for line in f:
                k, sep, v = line.partition(" = ")
                if sep:
                    self.ports[k.strip()] = int(v) if v.strip().isdigit() else v.strip()
        with open(os.path.join(self.dir, "secrets", "api.token")) as f:
            self.api_token = f.read().strip()
        self.name = self.ports.get("cluster", "pgha")

    def api_port(self, name):
        return self.ports[f"api_port_{self.names.index(name) + 1}"]

    def ctl(self, *args, check=True):
        r = subprocess.run([PGHA_BIN, "ctl", "-c", os.path.join(self.dir, "node1.conf"), *args],
                           capture_output=True, text=True, timeout=90)
        if check and r.returncode != 0:
            raise AssertionError(f"pgha ctl {' '.join(args)} failed: {r.stderr}")
        return r

    def view(self):
        return json.loads(self.ctl("list", "--json").stdout)

    def leader(self):
        return self.view().get("leader")

    def wait_streaming(self, names=None, timeout=120):
        names = names or self.names

        def ok():
            v = self.view()
            ms = {m["name"]: m for m in v["members"]}
            leader = v.get("leader")
            if leader not in ms or ms[leader]["state"] != "running":
                return None
            return leader if all(n == leader or ms.get(n, {}).get("state") == "streaming" for n in names) else None
        return wait_until(f"{names} to stream from a leader", ok, timeout=timeout)

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate(timeout=30)
        return self.proc.returncode


class Proxy:
    """A `pgha proxy` in front of a cluster, with a users file holding the superuser's password."""

    def __init__(self, cluster, extra=None, users=None, name="proxy"):
        self.cluster = cluster
        self.port = free_port()
        self.ro_port = free_port()
        base = cluster.base
        self.users_path = os.path.join(base, f"{name}-users.txt")
        users = users if users is not None else {"postgres": cluster.su_pw}
        with open(self.users_path, "w") as f:
            for u, pw in users.items():
                f.write(f'"{u}" "{pw}"\n')
        os.chmod(self.users_path, 0o600)
        self.conf_path = os.path.join(base, f"{name}.conf")
        self.log_path = os.path.join(base, f"{name}.log")
        sections = {
            "cluster": {"name": cluster.name},
            "etcd": {"endpoints": cluster.etcd.url},
            "proxy": {"listen": f"127.0.0.1:{self.port}", "listen_ro": f"127.0.0.1:{self.ro_port}",
                      "pool_size": "4", "hold_timeout": "30s"},
            "auth": {"auth_file": self.users_path},
        }
        for key, value in (extra or {}).items():
            sec, opt = key.split(".", 1)
            sections.setdefault(sec, {})[opt] = value
        with open(self.conf_path, "w") as f:
            for sec, opts in sections.items():
                f.write(f"[{sec}]\n")
                for k, v in opts.items():
                    f.write(f"{k} = {v}\n")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PGHA_BIN, "proxy", "-c", self.conf_path], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until("the proxy to listen", self._listening, timeout=15)
        return self

    def _listening(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self):
        return stop_process(self.proc, timeout=30)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def connect(self, ro=False, user="postgres", password=None, **kw):
        return psycopg.connect(host="127.0.0.1", port=self.ro_port if ro else self.port, user=user,
                               password=password if password is not None else self.cluster.su_pw,
                               dbname="postgres", connect_timeout=10, **kw)
