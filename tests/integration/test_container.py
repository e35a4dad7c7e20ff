"""The container image (deploy/container/Dockerfile) and the stack (deploy/container/stack.yml),
built and run with podman: a Debian bookworm root file system made by debootstrap (every package
the image needs included, so the build needs no network) is imported as the base the Dockerfile's
BASE argument names, the pgha and etcd images are built from it, and every service of stack.yml
is started from the file's own data (image, command, entrypoint, environment, volumes, configs,
secrets, ports, stop_grace_period, health checks) with `podman run` on a podman network of the
stack's subnet: three etcd, three agents, two proxies and the application placeholder. Checked:
the bootstrap (one leader, two streaming standbys), a write through each proxy, every health
check, the application's writes, no secret in any container's environment or argv, a
failover when the leader's container is stopped, the old leader rejoining when its container
starts again, and a failover when the new leader's container is killed.

Why podman run and not podman-compose: Debian bookworm's podman-compose (1.0.3) ignores
`configs:` (the agents would start without their config), `stop_grace_period` and the secrets'
uid/mode; docker stack deploy needs a Swarm, which does not run here. The services are
translated here, field by field, and a field this translation does not know fails the test, so
stack.yml cannot grow something the test silently skips.

podman here: runc (crun fails on these machines) with cgroupfs (no systemd as PID 1), netavark,
and ulimits given explicitly. Service names resolve through /etc/hosts (--add-host, a fixed
address each), not podman's DNS server: aardvark-dns 1.4 stopped answering for about 40 s
around container starts and stops here (glibc then waits 5 s per server, name and attempt),
which stalled the agents' loops past their leases; Swarm's DNS is dockerd's own and has no
such restarts.
"""
import ipaddress
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import yaml

from conftest import free_port, make_base_dir, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONTAINER_DIR = os.path.join(ROOT, "deploy", "container")
DOCKERFILE = os.path.join(CONTAINER_DIR, "Dockerfile")
STACK = os.path.join(CONTAINER_DIR, "stack.yml")

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs", "--network-backend", "netavark"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
LABEL = "pgha-test=container"
SUITE = "bookworm"
MIRROR = os.environ.get("PGHA_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The debootstrapped root file system is kept here between runs (a fresh CI machine makes it).
CACHE = os.environ.get("PGHA_TEST_CACHE", "/var/cache/pgha-test")


def podman(*args, timeout=120, check=True, **kw):
    r = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert r.returncode == 0, f"podman {' '.join(args)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def run(cmd, timeout, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def image_packages():
    """The packages the runtime stages (etcd, runtime) of the Dockerfile ensure: what debootstrap
    includes, so that ensure-packages finds them all and the build runs no apt. Read from the
    Dockerfile, so the two cannot drift apart."""
    with open(DOCKERFILE) as f:
        text = f.read().replace("\\\n", " ")
    pkgs, stage = set(), None
    for line in text.splitlines():
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line.strip(), re.I)
        if m:
            stage = m.group(1)
            continue
        m = re.match(r"RUN\s+ensure-packages\s+([^&]*)", line.strip())
        if m and stage in ("etcd", "runtime"):
            pkgs.update(m.group(1).split())
    assert {"postgresql-15", "etcd-server", "tini"} <= pkgs, pkgs
    return sorted(pkgs)


def scratch_dir():
    """Where debootstrap works: /dev/shm when it is a tmpfs that allows devices and programs and
    has room (dpkg's fsyncs cost nothing there: 2m11s against 2m47s on disk, side by side on a
    test machine), else CACHE. Only the tar goes to CACHE."""
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
    except OSError:
        return CACHE
    if st.f_flag & (os.ST_NOEXEC | os.ST_NODEV) or st.f_bavail * st.f_frsize < 3 << 30:
        return CACHE
    return shm


class Rootfs:
    """A minbase bookworm with the image's packages, as a tar for podman import, cached under
    CACHE by its package list. debootstrap runs in the background (start) while the binary
    builds; tar() waits for it."""

    def __init__(self):
        pkgs = image_packages()
        key = hashlib.sha256(" ".join([SUITE, MIRROR, *pkgs]).encode()).hexdigest()[:16]
        self.path = os.path.join(CACHE, f"rootfs-{SUITE}-{key}.tar")
        self.pkgs = pkgs
        self.proc = None
        self.work = None

    def start(self):
        if os.path.exists(self.path):
            return
        os.makedirs(CACHE, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="pgha-test-rootfs-", dir=scratch_dir())
        self.log = os.path.join(self.work, "debootstrap.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["debootstrap", "--variant=minbase", "--include=" + ",".join(self.pkgs), SUITE,
                 os.path.join(self.work, "rootfs"), MIRROR],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def tar(self):
        if self.proc is None:
            return self.path
        try:
            rc = self.proc.wait(timeout=900)
            with open(self.log, errors="replace") as f:
                assert rc == 0, f"debootstrap: exit {rc}\n{f.read()[-3000:]}"
            target = os.path.join(self.work, "rootfs")
            # Not image content, and less to tar and import: the downloaded .debs (100+ MB), and
            # the documentation, manual pages and translations debian:*-slim leaves out too.
            for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for n in os.listdir(os.path.join(target, d)):
                    p = os.path.join(target, d, n)
                    if os.path.isfile(p) and n != "lock":
                        os.unlink(p)
            for d in ("usr/share/doc", "usr/share/man", "usr/share/info"):
                shutil.rmtree(os.path.join(target, d), ignore_errors=True)
            locale = os.path.join(target, "usr/share/locale")
            for n in os.listdir(locale):
                if os.path.isdir(os.path.join(locale, n)):
                    shutil.rmtree(os.path.join(locale, n))
            run(["tar", "-C", target, "--numeric-owner", "-cf", self.path + ".part", "."], timeout=300)
            os.rename(self.path + ".part", self.path)
        finally:
            self.cleanup()
        return self.path

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)   # its own session: debootstrap and its dpkg
            self.proc.wait(timeout=30)
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def release_binary():
    """build/pgha, the release build the target pgha-prebuilt copies: under `make check`
    the tests run the ASan build, which needs the sanitizer runtimes the image does not have."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SANITIZE")}
    run(["make", "-C", ROOT, "-j2", "build/pgha"], timeout=900, env=env)
    return os.path.join(ROOT, "build", "pgha")


def seconds(duration):
    m = re.fullmatch(r"(\d+)s", str(duration))
    assert m, f"duration {duration!r}: only seconds are translated"
    return int(m.group(1))


def interpolate(value, env):
    """Compose's ${NAME:-default} and $$ (a literal $)."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1)) or m.group(2) or ""
    return re.sub(r"\$\$|\$\{(\w+)(?::-([^}]*))?\}", sub, value)


# The fields of a service the translation below handles; `deploy` is Swarm's alone (placement,
# restart policy: nothing for a single-host test to act on).
KNOWN = {"image", "command", "entrypoint", "environment", "networks", "volumes", "configs", "secrets",
         "ports", "stop_grace_period", "healthcheck", "deploy"}


class Stack:
    """stack.yml's services as podman containers on one podman network, all labelled LABEL."""

    def __init__(self, base, images, secret_values):
        with open(STACK) as f:
            self.spec = yaml.safe_load(f)
        self.base = base
        self.images = images
        self.prefix = "pgha-test-" + secrets.token_hex(3)
        self.network = self.prefix
        self.ports = {}      # (service, container port) -> published 127.0.0.1 port
        self.secret_files = {}
        for name, decl in self.spec["secrets"].items():
            assert decl == {"external": True}, f"secret {name}: created beforehand on Swarm"
            path = os.path.join(base, "secrets", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(secret_values[name])
            self.secret_files[name] = path

    def cname(self, service):
        return f"{self.prefix}-{service}"

    def create_network(self):
        (net,) = self.spec["networks"].values()
        (ipam,) = net["ipam"]["config"]
        podman("network", "create", "--label", LABEL, "--disable-dns", "--subnet", ipam["subnet"],
               self.network)
        hosts = ipaddress.ip_network(ipam["subnet"]).hosts()
        for _ in range(9):   # leave the gateway and a few below the services' addresses
            next(hosts)
        self.ips = {svc: str(next(hosts)) for svc in self.spec["services"]}

    def start(self, services):
        """podman run each service (all at once: etcd needs its peers, agents wait for etcd)."""
        argv = [self.run_args(s) for s in services]
        with ThreadPoolExecutor(len(argv)) as pool:
            list(pool.map(lambda a: podman(*a), argv))

    def run_args(self, service):
        svc = self.spec["services"][service]
        unknown = set(svc) - KNOWN
        assert not unknown, f"service {service}: fields {unknown} are not translated to podman"
        args = ["run", "-d", "--name", self.cname(service), "--label", LABEL, "--hostname", service,
                "--network", self.network, "--ip", self.ips[service], *ULIMITS]
        for other, ip in self.ips.items():
            if other != service:
                args += ["--add-host", f"{other}:{ip}"]
        assert svc["networks"] == list(self.spec["networks"]), service
        if "stop_grace_period" in svc:
            args += ["--stop-timeout", str(seconds(svc["stop_grace_period"]))]
        for k, v in (svc.get("environment") or {}).items():
            args += ["-e", f"{k}={interpolate(str(v), self.images)}"]
        for v in svc.get("volumes", []):
            vol, path = v.split(":")
            assert vol in self.spec["volumes"], v
            podman("volume", "create", "--label", LABEL, f"{self.prefix}-{vol}")
            args += ["-v", f"{self.prefix}-{vol}:{path}"]
        for c in svc.get("configs", []):
            src = os.path.join(CONTAINER_DIR, self.spec["configs"][c["source"]]["file"])
            args += ["-v", f"{src}:{c['target']}:ro"]
        for s in svc.get("secrets", []):
            path = self.secret_files[s["source"]]
            # As Swarm mounts it: owner and mode from the service's secret entry.
            os.chown(path, int(s["uid"]), int(s["gid"]))
            os.chmod(path, s["mode"])
            args += ["-v", f"{path}:/run/secrets/{s.get('target', s['source'])}:ro"]
        for p in svc.get("ports", []):
            port = free_port()
            self.ports[(service, p["target"])] = port
            args += ["-p", f"127.0.0.1:{port}:{p['target']}/{p['protocol']}"]
        hc = svc.get("healthcheck")
        if hc and hc.get("disable"):
            args.append("--no-healthcheck")
        elif hc:
            kind, *cmd = hc["test"]
            assert kind == "CMD", hc
            args += ["--health-cmd", json.dumps(cmd), "--health-interval", hc["interval"],
                     "--health-timeout", hc["timeout"], "--health-retries", str(hc["retries"])]
        if "entrypoint" in svc:
            args += ["--entrypoint", json.dumps(svc["entrypoint"])]
        args.append(interpolate(svc["image"], self.images))
        args += [interpolate(str(a), self.images) for a in svc.get("command", [])]
        return args

    def exec(self, service, *cmd, timeout=30):
        return podman("exec", self.cname(service), *cmd, timeout=timeout, check=False)

    def running(self, service):
        r = podman("inspect", "--format", "{{.State.Running}}", self.cname(service), check=False)
        return r.stdout.strip() == "true"

    def logs(self, service):
        r = podman("logs", "--tail", "60", self.cname(service), check=False)
        return r.stdout + r.stderr

    def teardown(self):
        remove_labelled()


def remove_labelled():
    """Every container, volume, network and image LABEL marks: this run's, or a killed run's
    leftovers (the images inherit the label from the imported base)."""
    ids = podman("ps", "-aq", "--filter", "label=" + LABEL, check=False).stdout.split()
    if ids:
        # -v: the anonymous volumes of the image's VOLUME (proxies, app) go too.
        podman("rm", "-f", "-v", "-t", "0", *ids, timeout=120, check=False)
    vols = podman("volume", "ls", "-q", "--filter", "label=" + LABEL, check=False).stdout.split()
    if vols:
        podman("volume", "rm", "-f", *vols, check=False)
    nets = podman("network", "ls", "-q", "--filter", "label=" + LABEL, check=False).stdout.split()
    if nets:
        podman("network", "rm", "-f", *nets, check=False)
    imgs = podman("images", "-aq", "--filter", "label=" + LABEL, check=False).stdout.split()
    if imgs:
        podman("rmi", "-f", *imgs, check=False)


def image_ids():
    return set(podman("images", "-aq", "--no-trunc").stdout.split())


@pytest.fixture(scope="module")
def stack():
    t0 = time.monotonic()
    remove_labelled()
    before = image_ids()
    base = make_base_dir()
    tag = secrets.token_hex(3)
    names = {"base": f"localhost/pgha-test-base:{tag}", "PGHA_IMAGE": f"localhost/pgha-test:{tag}",
             "PGHA_ETCD_IMAGE": f"localhost/pgha-test-etcd:{tag}"}
    st = None
    rootfs = Rootfs()
    phases, last = [], [t0]

    def phase(name):
        now = time.monotonic()
        phases.append(f"{name} {now - last[0]:.0f}s")
        last[0] = now
    try:
        rootfs.start()
        binary = release_binary()
        assert os.path.exists(binary)
        phase("make")
        tar = rootfs.tar()
        phase("rootfs (after make)")
        podman("import", "--change", "LABEL " + LABEL, tar, names["base"], timeout=600)
        phase("import")
        for target, image in (("pgha-prebuilt", names["PGHA_IMAGE"]), ("etcd", names["PGHA_ETCD_IMAGE"])):
            # --format docker: OCI images have no HEALTHCHECK. No network: the base has every package.
            podman("build", "--format", "docker", "--network", "none", *ULIMITS, "-f", DOCKERFILE,
                   "--build-arg", "BASE=" + names["base"],
                   "--target", target, "-t", image, ROOT, timeout=600)
        phase("build")
        su_pw, repl_pw = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        values = {
            "pgha_superuser_password": su_pw + "\n",
            "pgha_replication_password": repl_pw + "\n",
            "pgha_api_token": secrets.token_urlsafe(24) + "\n",
            "pgha_proxy_users": f'"postgres" "{su_pw}"\n',
            "app_pgpass": f"*:*:*:postgres:{su_pw}\n",
        }
        st = Stack(base, names, values)
        st.su_pw = su_pw
        st.secret_values = [su_pw, repl_pw, values["pgha_api_token"].strip()]
        st.phases = phases
        st.create_network()
        st.start(["etcd1", "etcd2", "etcd3", "pgha1", "pgha2", "pgha3", "proxy1", "proxy2", "app"])
        phase("start")
        yield st
    finally:
        rootfs.cleanup()
        if st is not None:
            for s in ("pgha1", "pgha2", "pgha3"):
                print(f"--- {s}\n{st.logs(s)}")
        remove_labelled()
        made = sorted(image_ids() - before)
        if made:
            podman("rmi", "-f", *made, check=False)
        shutil.rmtree(base, ignore_errors=True)
        print(f"container test: {time.monotonic() - t0:.0f}s in all")


def members(st):
    """`pgha ctl list --json` run in a running agent container, against the stack's etcd."""
    for s in ("pgha1", "pgha2", "pgha3"):
        if st.running(s):
            r = st.exec(s, "pgha", "ctl", "--etcd", "http://etcd1:2379,http://etcd2:2379,http://etcd3:2379",
                        "--cluster", "main", "list", "--json")
            if r.returncode == 0:
                return json.loads(r.stdout)
    return None


def wait_cluster(st, names, not_leader=None, timeout=180):
    def ok():
        v = members(st)
        if not v:
            return None
        ms = {m["name"]: m for m in v["members"]}
        leader = v.get("leader")
        if leader is None or leader == not_leader or ms.get(leader, {}).get("state") != "running":
            return None
        if all(n == leader or ms.get(n, {}).get("state") == "streaming" for n in names):
            return leader
        return None
    return wait_until(f"a leader and {names} streaming", ok, timeout=timeout, interval=1)


def write_through(st, proxy, value, timeout=60):
    port = st.ports[(proxy, 6432)]

    def write():
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=st.su_pw,
                             dbname="postgres", connect_timeout=5, autocommit=True) as c:
            c.execute("CREATE TABLE IF NOT EXISTS writes (v text)")
            c.execute("INSERT INTO writes VALUES (%s)", (value,))
            return c.execute("SELECT count(*) FROM writes WHERE v = %s", (value,)).fetchone()[0] == 1
    return wait_until(f"a write through {proxy}", write, timeout=timeout, interval=1)


def heartbeats(st):
    with psycopg.connect(host="127.0.0.1", port=st.ports[("proxy1", 6432)], user="postgres",
                         password=st.su_pw, dbname="postgres", connect_timeout=5) as c:
        return c.execute("SELECT count(*) FROM app_heartbeat").fetchone()[0]


def test_stack_bootstraps_serves_and_fails_over(stack):
    """One test: each step needs the cluster the step before left (seconds, not minutes)."""
    st = stack
    t0 = time.monotonic()
    leader = wait_cluster(st, ["pgha1", "pgha2", "pgha3"])
    boot_s = time.monotonic() - t0

    write_through(st, "proxy1", "before-1")
    write_through(st, "proxy2", "before-2")
    n = wait_until("the application's heartbeats", lambda: heartbeats(st), timeout=60, interval=1)

    # The images' and the stack's health checks pass on every container (run by hand: podman's
    # timers need systemd).
    for s in ("etcd1", "etcd2", "etcd3", "pgha1", "pgha2", "pgha3", "proxy1", "proxy2"):
        r = podman("healthcheck", "run", st.cname(s), check=False)
        assert r.returncode == 0, f"{s}: health check: {r.stdout} {r.stderr}"

    # Secrets only as files: in no container's environment or command line.
    for s in st.spec["services"]:
        blob = podman("inspect", st.cname(s)).stdout
        for v in st.secret_values:
            assert v not in blob, f"a secret is in {s}'s configuration (podman inspect)"
    r = st.exec(leader, "sh", "-c", "cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert "/usr/local/bin/pgha" in r.stdout and "postgres" in r.stdout, r.stdout[-2000:]
    for v in st.secret_values:
        assert v not in r.stdout, f"a secret is in a process's argv or environment in {leader}"

    # The leader's container stops (a node drained, docker stop): its agent stops PostgreSQL,
    # releases the leader key; a standby takes over and the proxies follow.
    t1 = time.monotonic()
    podman("stop", st.cname(leader), timeout=150)
    assert not st.running(leader)
    code = podman("inspect", "--format", "{{.State.ExitCode}}", st.cname(leader)).stdout.strip()
    assert code == "0", f"{leader} exited {code} on docker stop:\n{st.logs(leader)}"
    rest = [s for s in ("pgha1", "pgha2", "pgha3") if s != leader]
    new_leader = wait_cluster(st, rest, not_leader=leader, timeout=120)
    assert new_leader in rest
    write_through(st, "proxy1", "after-1")
    write_through(st, "proxy2", "after-2")
    failover_s = time.monotonic() - t1
    wait_until("heartbeats after the failover", lambda: heartbeats(st) > n + 2, timeout=60, interval=1)

    # As Swarm's restart policy would: the old leader's container starts again on its volume and
    # rejoins as a standby of the new leader.
    t2 = time.monotonic()
    podman("start", st.cname(leader))
    assert wait_cluster(st, ["pgha1", "pgha2", "pgha3"], timeout=120) == new_leader
    rejoin_s = time.monotonic() - t2

    # The new leader's container is killed outright (a node lost): PostgreSQL dies with it (PID 1
    # gone, the whole PID namespace goes); the others take over once its lease expires (ttl).
    t3 = time.monotonic()
    podman("kill", "-s", "KILL", st.cname(new_leader))
    wait_until(f"{new_leader} killed", lambda: not st.running(new_leader), timeout=30)
    rest = [s for s in ("pgha1", "pgha2", "pgha3") if s != new_leader]
    third = wait_cluster(st, rest, not_leader=new_leader, timeout=120)
    write_through(st, "proxy1", "after-kill-1")
    write_through(st, "proxy2", "after-kill-2")
    kill_s = time.monotonic() - t3
    print(f"container test: {', '.join(st.phases)}, bootstrap {boot_s:.0f}s, "
          f"stop-to-writes-again {failover_s:.0f}s ({leader} -> {new_leader}), rejoin {rejoin_s:.0f}s, "
          f"kill-to-writes-again {kill_s:.0f}s ({new_leader} -> {third})")
