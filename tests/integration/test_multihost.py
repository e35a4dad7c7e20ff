"""Three hosts, TLS on every link, set up exactly as docs/DEPLOY_3HOSTS.md says.

Each host is a network namespace with the guide's address (10.0.0.1-3), joined by a bridge
in a namespace of its own (a switch), so those addresses exist nowhere else on this machine;
the applications' host is one more namespace (10.0.0.100). The test runs the guide's command
blocks verbatim (marked `<!-- step NAME -->` in the guide), with three documented
differences: its own values in the `vars` block (directories of the test instead of /etc,
/var/lib and /run), no `sudo` (it runs as root), and instead of `systemctl` it starts what
the units start (the ExecStart= of pgha's units; etcd with the environment of its file) and
emulates LoadCredential= (a copy of each secret, mode 0400, in the credentials directory).

It checks, in one cluster: bootstrap; a client writing through each proxy throughout;
failover of the leader's host (cut off the network); a certificate rotation (the guide's
steps) under that load without a client error; that plain-text and wrongly signed
connections are refused on every link; and that a capture of the traffic between hosts
holds no password and no row data in clear.
"""
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import PGHA_BIN, make_base_dir, stop_process, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUIDE = os.path.join(ROOT, "docs", "DEPLOY_3HOSTS.md")
HOSTS = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"}
PROXY_HOSTS = ("db1", "db2")
APP = "10.0.0.100"
ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"


def run(cmd, check=True, timeout=60, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def guide_steps():
    """{step name: shell text} of every block the guide marks."""
    text = open(GUIDE).read()
    steps = {}
    for m in re.finditer(r"<!-- step ([\w-]+) -->\n```sh\n(.*?)```", text, re.S):
        steps[m.group(1)] = m.group(2)
    return steps


def unit_exec_start(unit, etc, what="ExecStart"):
    """The ExecStart= (or ExecStartPre=) command of one of pgha's units, as a list: %i = main,
    /etc/pgha = the host's own directory."""
    text = open(os.path.join(ROOT, "deploy", "systemd", unit)).read()
    line = re.search(rf"^{what}=(.*)$", text, re.M).group(1)
    return line.replace("@BINDIR@/pgha", PGHA_BIN).replace("%i", "main").replace("/etc/pgha", etc).split()


class Net:
    """A switch namespace with a bridge; one namespace per host, with a veth to the bridge."""

    def __init__(self):
        self.tag = f"{os.getpid() % 10000:04d}"
        self.sw = f"pghasw{self.tag}"
        self.ns = {}
        self.links = {}
        run(["ip", "netns", "add", self.sw])
        run(["ip", "-n", self.sw, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.sw, "link", "set", "br0", "up"])
        run(["ip", "-n", self.sw, "link", "set", "lo", "up"])
        for i, (name, addr) in enumerate(list(HOSTS.items()) + [("app", APP)]):
            ns = f"pgha{self.tag}{name}"
            outer, inner = f"v{self.tag}{i}o", f"v{self.tag}{i}i"
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", outer, "netns", self.sw, "type", "veth", "peer", "name", inner,
                 "netns", ns])
            run(["ip", "-n", self.sw, "link", "set", outer, "master", "br0"])
            run(["ip", "-n", self.sw, "link", "set", outer, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", inner])
            run(["ip", "-n", ns, "link", "set", inner, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            self.ns[name] = ns
            self.links[name] = outer

    def cut(self, name):
        run(["ip", "-n", self.sw, "link", "set", self.links[name], "down"])

    def heal(self, name):
        run(["ip", "-n", self.sw, "link", "set", self.links[name], "up"])

    def exec(self, name):
        return ["ip", "netns", "exec", self.ns[name]]

    def destroy(self):
        for ns in list(self.ns.values()) + [self.sw]:
            run(["ip", "netns", "del", ns], check=False)


class Host:
    """One host's directories (the guide's variables) and the processes the units would run."""

    def __init__(self, deploy, name):
        self.d = deploy
        self.name = name
        self.addr = HOSTS[name]
        self.root = os.path.join(deploy.base, name)
        self.work = os.path.join(self.root, "home")   # where the admin copied pgha-ca/
        v = {"H": name, "ADDR": self.addr, "ETC": f"{self.root}/etc/pgha",
             "VAR": f"{self.root}/var/lib/pgha", "RUN": f"{self.root}/run/pgha",
             "ETCD_DATA": f"{self.root}/var/lib/etcd", "ETCD_ENV": f"{self.root}/etc/default/etcd",
             "CRED": f"{self.root}/run/credentials/pgha-agent@main.service",
             "PCRED": f"{self.root}/run/credentials/pgha-proxy@main.service"}
        self.vars = v
        for key in ("ETC", "VAR", "RUN", "ETCD_DATA", "CRED", "PCRED"):
            os.makedirs(v[key], exist_ok=True)
        os.makedirs(os.path.dirname(v["ETCD_ENV"]), exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        for dirpath, _, _ in os.walk(self.root):
            os.chmod(dirpath, 0o755)
        # The units' StateDirectory= and RuntimeDirectory= (systemd makes them, owned by the user).
        for path, mode in ((f"{v['VAR']}/main", 0o700), (f"{v['RUN']}/main", 0o755)):
            os.makedirs(path, mode=mode, exist_ok=True)
            os.chmod(path, mode)
            shutil.chown(path, "postgres", "postgres")
        shutil.chown(v["ETCD_DATA"], "etcd", "etcd")
        self.etcd = self.agent = self.proxy = None

    def sh(self, step, check=True, timeout=120):
        """One of the guide's blocks, on this host, after the test's own `vars`."""
        text = self.d.steps[step]
        script = "set -e\n" + "".join(f"{k}='{val}' " for k, val in self.vars.items()) + "\n"
        script += "\n".join(line for line in text.replace("sudo ", "").splitlines()
                            if not line.startswith("systemctl "))
        env = dict(os.environ, PATH=f"{self.d.bindir}:{os.environ['PATH']}")
        return run(self.d.net.exec(self.name) + ["bash", "-c", script], cwd=self.work, env=env,
                   check=check, timeout=timeout)

    def load_credentials(self):
        """LoadCredential=secrets:/etc/pgha/secrets/%i: a copy of each file, 0400, at each start."""
        for unit, cred in (("main", self.vars["CRED"]), ("proxy-main", self.vars["PCRED"])):
            src = os.path.join(self.vars["ETC"], "secrets", unit)
            for f in os.listdir(src):
                dst = os.path.join(cred, "secrets_" + f)
                if os.path.exists(dst):
                    os.chmod(dst, 0o600)
                shutil.copyfile(os.path.join(src, f), dst)
                os.chmod(dst, 0o400)

    def spawn(self, argv, log, env=None):
        f = open(os.path.join(self.root, log), "ab")
        p = subprocess.Popen(self.d.net.exec(self.name) + argv, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True, env=env)
        f.close()
        return p

    def start_etcd(self):
        env = {"PATH": os.environ["PATH"]}
        for line in open(self.vars["ETCD_ENV"]):
            if "=" in line and not line.startswith("#"):
                k, v = line.strip().split("=", 1)
                env[k] = v
        self.etcd = self.spawn([ETCD_BIN], "etcd.log", env=env)

    def start_unit(self, unit, log):
        """What systemd does: the credentials, ExecStartPre= (which must pass), ExecStart=."""
        self.load_credentials()
        run(self.d.net.exec(self.name) + unit_exec_start(unit, self.vars["ETC"], "ExecStartPre"), timeout=60)
        return self.spawn(unit_exec_start(unit, self.vars["ETC"]), log)

    def start_agent(self):
        self.agent = self.start_unit("pgha-agent@.service", "agent.log")

    def start_proxy(self):
        self.proxy = self.start_unit("pgha-proxy@.service", "proxy.log")

    def conf(self, name):
        return os.path.join(self.vars["ETC"], name)

    def log(self, name):
        try:
            return open(os.path.join(self.root, name), errors="replace").read()
        except FileNotFoundError:
            return ""

    def stop(self):
        for p, t in ((self.proxy, 30), (self.agent, 90), (self.etcd, 30)):
            if p is not None and p.poll() is None:
                stop_process(p, timeout=t)


class Deploy:
    def __init__(self):
        self.base = make_base_dir()
        os.chmod(self.base, 0o755)
        self.steps = guide_steps()
        self.bindir = os.path.join(self.base, "bin")   # `pgha` on PATH, as `make install` puts it
        os.makedirs(self.bindir)
        os.symlink(PGHA_BIN, os.path.join(self.bindir, "pgha"))
        self.net = Net()
        self.hosts = {}
        self.admin = os.path.join(self.base, "admin")
        os.makedirs(self.admin)

    def app(self, argv, **kw):
        return run(self.net.exec("app") + argv, **kw)


def python_in(net, name, code, timeout=60, check=True):
    """Python run inside a host's namespace (a client on that host)."""
    return run(net.exec(name) + ["/usr/bin/python3", "-c", code], timeout=timeout, check=check)


WRITER = r'''
import os, sys, time
import psycopg
conninfo, pwfile, out, stopfile, via, marker = sys.argv[1:7]
password = open(pwfile).read().strip()
deadline = time.monotonic() + 900
n = 0
conn = None
with open(out, "a", buffering=1) as f:
    while not os.path.exists(stopfile) and time.monotonic() < deadline:
        try:
            if conn is None:
                conn = psycopg.connect(conninfo, password=password, autocommit=True, connect_timeout=5)
            n += 1
            conn.execute("INSERT INTO mh_writes (via, n, payload) VALUES (%s, %s, %s)",
                         (via, n, f"{marker}-{via}-{n}"))
            f.write(f"ok {n} {time.time():.3f}\n")
        except Exception as e:
            f.write(f"err {n} {time.time():.3f} {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}\n")
            try:
                conn and conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.2)
        time.sleep(0.02)
'''


class Writer:
    """A client on the applications' host writing through one proxy, one row per round trip."""

    def __init__(self, deploy, via, conninfo, pwfile, marker):
        self.out = os.path.join(deploy.base, f"writer-{via}.log")
        self.stopfile = os.path.join(deploy.base, f"writer-{via}.stop")
        script = os.path.join(deploy.base, "writer.py")
        with open(script, "w") as f:
            f.write(WRITER)
        self.proc = subprocess.Popen(deploy.net.exec("app") + ["/usr/bin/python3", script, conninfo, pwfile,
                                                               self.out, self.stopfile, via, marker],
                                     stdout=subprocess.DEVNULL, stderr=open(self.out + ".stderr", "wb"),
                                     start_new_session=True)

    def lines(self):
        try:
            return open(self.out).read().splitlines()
        except FileNotFoundError:
            return []

    def acked(self):
        return [int(line.split()[1]) for line in self.lines() if line.startswith("ok ")]

    def errors(self, since=0.0, until=None):
        out = []
        for line in self.lines():
            if line.startswith("err "):
                t = float(line.split()[2])
                if t >= since and (until is None or t <= until):
                    out.append(line)
        return out

    def stop(self):
        open(self.stopfile, "w").close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def serial_of(pem_path):
    return run(["openssl", "x509", "-noout", "-serial", "-in", pem_path]).stdout.strip()


def served_serial(deploy, host, port, starttls=None):
    """The serial of the certificate a server presents, seen from the applications' host."""
    cmd = ["openssl", "s_client", "-connect", f"{HOSTS[host]}:{port}", "-servername", host]
    if starttls:
        cmd += ["-starttls", starttls]
    r = run(deploy.net.exec("app") + cmd, check=False, timeout=30, input="")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    assert m, f"{host}:{port} presented no certificate:\n{r.stdout}\n{r.stderr}"
    return run(["openssl", "x509", "-noout", "-serial"], input=m.group(0)).stdout.strip()


@pytest.fixture(scope="module")
def deploy():
    if run(["getent", "passwd", "pgha"], check=False).returncode != 0:
        # The guide's step 1 (`systemd-sysusers` after `make install`): the proxy's user.
        run(["systemd-sysusers", os.path.join(ROOT, "deploy", "systemd", "pgha.sysusers")])
    d = Deploy()
    cap = None
    try:
        d.capture = os.path.join(d.base, "between-hosts.pcap")
        # Everything that crosses the switch (the hosts' and the applications' traffic).
        cap = subprocess.Popen(["ip", "netns", "exec", d.net.sw, "tcpdump", "-i", "br0", "-U", "-s", "0",
                                "-w", d.capture],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        d.capture_proc = cap
        yield d
    finally:
        for w in getattr(d, "writers", {}).values():
            w.stop()
        for h in d.hosts.values():
            h.stop()
        if cap is not None and cap.poll() is None:
            stop_process(cap, timeout=10)
        d.net.destroy()
        shutil.rmtree(d.base, ignore_errors=True)


def ctl(deploy, host, *args, check=True):
    h = deploy.hosts[host]
    return run(deploy.net.exec(host) + [PGHA_BIN, "ctl", "-c", h.conf("main.conf"), *args], check=check,
               timeout=60)


def cluster_state(deploy, host="db1"):
    import json
    r = ctl(deploy, host, "list", "--json", check=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def test_three_hosts_tls_everywhere(deploy):
    d = deploy
    steps = d.steps
    assert set(steps) >= {"vars", "ca", "files", "etcd", "etcd-auth", "agent", "proxy", "rotate"}, steps.keys()
    # 2. The CA, the certificates and the secrets, on the admin machine.
    run(["bash", "-c", "set -e\n" + steps["ca"]], cwd=d.admin, timeout=120)
    ca_dir = os.path.join(d.admin, "pgha-ca")
    for name in d.hosts or HOSTS:
        d.hosts[name] = Host(d, name)
    for h in d.hosts.values():
        # "Copy pgha-ca/ to every host, without ca.key."
        shutil.copytree(ca_dir, os.path.join(h.work, "pgha-ca"), ignore=shutil.ignore_patterns("ca.key"))
        h.sh("files")
        h.sh("etcd")
        h.start_etcd()
    ca = os.path.join(ca_dir, "ca.crt")
    etcdctl = ["etcdctl", "--endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379",
               f"--cacert={ca}", f"--cert={ca_dir}/admin.crt", f"--key={ca_dir}/admin.key"]

    def etcd_healthy():
        r = run(d.net.exec("db1") + etcdctl + ["endpoint", "health"], check=False, timeout=30)
        return r.returncode == 0 and r.stdout.count("is healthy") + r.stderr.count("is healthy") == 3
    wait_until("three healthy etcd members", etcd_healthy, timeout=60)
    d.hosts["db1"].sh("etcd-auth")

    # 6. The agents: the first one runs initdb, the others clone it.
    for h in d.hosts.values():
        h.sh("agent")
        h.start_agent()

    def bootstrapped():
        s = cluster_state(d)
        if not s:
            return False
        members = s.get("members", [])
        return s.get("leader") and sum(1 for m in members if m.get("state") == "streaming") == 2
    try:
        wait_until("a leader and two streaming standbys", bootstrapped, timeout=240)
    except AssertionError:
        raise AssertionError("\n".join(f"--- {h.name}\n{h.log('agent.log')[-3000:]}" for h in d.hosts.values()))
    for name in PROXY_HOSTS:
        d.hosts[name].sh("proxy")
        d.hosts[name].start_proxy()
    password_file = os.path.join(ca_dir, "superuser.password")
    secrets = {f: open(os.path.join(ca_dir, f)).read().strip()
               for f in ("superuser.password", "replication.password", "etcd-root.password",
                         "etcd-pgha.password", "api.token")}
    marker = "rowdata" + os.urandom(6).hex()

    def proxy_conninfo(host, port=6432, sslmode="verify-full", rootcert=ca):
        return (f"host={HOSTS[host]} port={port} user=postgres dbname=postgres sslmode={sslmode} "
                f"sslrootcert={rootcert}")
    # The table, through the first proxy (the guide's psql line, as the application would).
    code = ("import psycopg,sys;c=psycopg.connect(sys.argv[1],password=open(sys.argv[2]).read().strip(),"
            "autocommit=True);c.execute('CREATE TABLE mh_writes (via text, n int, payload text, "
            "at timestamptz DEFAULT now())')")
    wait_until("the proxy on db1 to take TLS clients",
               lambda: run(d.net.exec("app") + ["/usr/bin/python3", "-c", code, proxy_conninfo("db1"),
                                                password_file], check=False).returncode == 0, timeout=60)
    d.writers = {h: Writer(d, h, proxy_conninfo(h), password_file, marker) for h in PROXY_HOSTS}
    for h, w in d.writers.items():
        wait_until(f"writes through the proxy on {h}", lambda w=w: len(w.acked()) >= 20, timeout=60)
    assert all(not w.errors() for w in d.writers.values()), {h: w.errors() for h, w in d.writers.items()}

    check_every_link_encrypted(d, ca, ca_dir)
    check_dashboard_etcd_health(d, ca, ca_dir)
    check_refusals(d, ca, ca_dir, proxy_conninfo, password_file)
    rotate_certificates(d, ca_dir)
    fail_over_leader_host(d)
    check_capture(d, secrets, marker)


def psql_in_app(d, conninfo, password_file, query="SELECT 1"):
    """(ok, message) of one query from the applications' host."""
    code = ("import psycopg,sys\n"
            "try:\n"
            "    c=psycopg.connect(sys.argv[1],password=open(sys.argv[2]).read().strip(),autocommit=True,"
            "connect_timeout=10)\n"
            "    print('OK', c.execute(sys.argv[3]).fetchall())\n"
            "except Exception as e:\n"
            "    print('ERR', e)\n")
    r = run(d.net.exec("app") + ["/usr/bin/python3", "-c", code, conninfo, password_file, query], timeout=60)
    return r.stdout.startswith("OK"), r.stdout.strip()


def curl(d, url, *opts, where="app"):
    """(exit code, HTTP status, stderr) of a request from the applications' host (or another)."""
    r = run(d.net.exec(where) + ["curl", "--http1.1", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                 *opts, url], check=False, timeout=30)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def check_every_link_encrypted(d, ca, ca_dir):
    """Every connection PostgreSQL has from another host (the proxies, the standbys) is TLS."""
    leader = cluster_state(d)["leader"]
    code = ("import psycopg,sys\n"
            "c=psycopg.connect(sys.argv[1],password=open(sys.argv[2]).read().strip(),autocommit=True)\n"
            "print(c.execute(\"SELECT a.backend_type, host(a.client_addr), s.ssl FROM pg_stat_activity a "
            "JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr IS NOT NULL\").fetchall())\n")
    ci = f"host={HOSTS[leader]} port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}"
    rows = eval(run(d.net.exec("app") + ["/usr/bin/python3", "-c", code, ci,
                                         os.path.join(ca_dir, "superuser.password")]).stdout)
    kinds = {(t, addr) for t, addr, _ in rows}
    assert sum(1 for t, _, _ in rows if t == "walsender") == 2, rows
    proxies = {HOSTS[h] for h in PROXY_HOSTS}
    assert proxies <= {addr for t, addr in kinds if t == "client backend"}, rows
    assert all(ssl for _, _, ssl in rows), rows


def check_dashboard_etcd_health(d, ca, ca_dir):
    """The dashboard's etcd health (each agent asks every member's /health, with its client
    certificate): every member up, seen over the API's HTTPS."""
    import json

    def all_up():
        r = run(d.net.exec("app") + ["curl", "-sS", "--max-time", "5", "--cacert", ca, "--cert",
                                     f"{ca_dir}/admin.crt", "--key", f"{ca_dir}/admin.key",
                                     "https://10.0.0.1:8008/ui/series"], check=False, timeout=30)
        if r.returncode != 0:
            return False
        health = json.loads(r.stdout)["etcd"]["health"]
        return len(health) == 3 and all(h["up"] for h in health) and health
    wait_until("the dashboard to see three healthy etcd members", all_up, timeout=30)


def check_refusals(d, ca, ca_dir, proxy_conninfo, password_file):
    """Plain text and certificates of another CA are refused on every link."""
    other = os.path.join(d.admin, "other")
    os.makedirs(other)
    run(["bash", "-c", "set -e\nmkdir -p pgha-ca && cd pgha-ca\n"
         + re.search(r"openssl req -x509.*?-out ca.crt\n", d.steps["ca"], re.S).group(0)
         + re.search(r"cert\(\) \{.*?\n\}\n", d.steps["ca"], re.S).group(0)
         + "cert db1 10.0.0.1\n"], cwd=other, timeout=60)
    other_ca = os.path.join(other, "pgha-ca", "ca.crt")
    bad = ["--cert", f"{other}/pgha-ca/db1.crt", "--key", f"{other}/pgha-ca/db1.key"]
    good = ["--cert", f"{ca_dir}/admin.crt", "--key", f"{ca_dir}/admin.key"]
    leader = cluster_state(d)["leader"]
    for host in PROXY_HOSTS:
        for port in (6432, 6433):
            ok, msg = psql_in_app(d, proxy_conninfo(host, port, sslmode="disable"), password_file)
            assert not ok, f"proxy {host}:{port} took a plain-text client: {msg}"
            ok, msg = psql_in_app(d, proxy_conninfo(host, port, rootcert=other_ca), password_file)
            assert not ok and "certificate verify failed" in msg, msg
    for host in HOSTS:
        ci = f"host={HOSTS[host]} port=5432 user=postgres dbname=postgres"
        ok, msg = psql_in_app(d, ci + " sslmode=disable", password_file)
        assert not ok and "no pg_hba.conf entry" in msg, f"PostgreSQL on {host} took a plain-text client: {msg}"
        ok, msg = psql_in_app(d, ci + f" sslmode=verify-full sslrootcert={other_ca}", password_file)
        assert not ok and "certificate verify failed" in msg, msg
        ok, msg = psql_in_app(d, ci + f" sslmode=verify-full sslrootcert={ca}", password_file)
        assert ok, msg
        addr = HOSTS[host]
        for port, path in ((2379, "/version"), (2380, "/members"), (8008, "/health")):
            code, status, err = curl(d, f"http://{addr}:{port}{path}")
            assert code != 2 and not status.startswith("2"), f"{host}:{port} answered plain HTTP: {status} {err}"
            for opts in ([], bad):
                code, status, err = curl(d, f"https://{addr}:{port}{path}", "--cacert", ca, *opts)
                # curl's TLS and connection errors (35, 56, ...), not a usage error (2).
                assert code not in (0, 2), f"{host}:{port} took a client certificate of another CA ({opts}): " \
                    f"{code} {status} {err}"
            # The control: the right certificate is taken. etcd checks a peer's certificate names
            # against the address it comes from: a peer's own certificate, from its host.
            peer = next(p for p in HOSTS if p != host)
            right = good if port != 2380 else ["--cert", f"{ca_dir}/{peer}.crt", "--key", f"{ca_dir}/{peer}.key"]
            code, status, err = curl(d, f"https://{addr}:{port}{path}", "--cacert", ca, *right,
                                     where="app" if port != 2380 else peer)
            assert code == 0 and status.startswith("2"), (host, port, code, status, err)
            code, status, err = curl(d, f"https://{addr}:{port}{path}", "--cacert", other_ca, *good)
            assert code == 60, f"{host}:{port}: a server certificate of another CA was accepted: {code} {err}"
    assert leader in HOSTS


def rotate_certificates(d, ca_dir):
    """New certificates from the same CA, put in place with the guide's steps and a reload,
    while both writers run: no client error, and every server presents the new one."""
    cert_fn = re.search(r"cert\(\) \{.*?\n\}\n", d.steps["ca"], re.S).group(0)
    old = {h: serial_of(os.path.join(ca_dir, f"{h}.crt")) for h in HOSTS}
    run(["bash", "-c", "set -e\ncd pgha-ca\n" + cert_fn + "cert db1 10.0.0.1 && cert db2 10.0.0.2 && "
         "cert db3 10.0.0.3\n"], cwd=d.admin, timeout=60)
    new = {h: serial_of(os.path.join(ca_dir, f"{h}.crt")) for h in HOSTS}
    assert all(old[h] != new[h] for h in HOSTS)
    t0 = time.time()
    for h in d.hosts.values():
        for f in (f"{h.name}.crt", f"{h.name}.key"):
            shutil.copyfile(os.path.join(ca_dir, f), os.path.join(h.work, "pgha-ca", f))
        h.sh("files")
        # The rotate step: `systemctl reload` sends SIGHUP (ExecReload= of both units).
        h.agent.send_signal(signal.SIGHUP)
        if h.proxy is not None:
            h.proxy.send_signal(signal.SIGHUP)

    def presented():
        return all(served_serial(d, h, 5432, "postgres") == new[h] and served_serial(d, h, 8008) == new[h]
                   and served_serial(d, h, 2379) == new[h] for h in HOSTS) and \
            all(served_serial(d, h, 6432, "postgres") == new[h] for h in PROXY_HOSTS)
    wait_until("every server to present its new certificate", presented, timeout=60)
    for w in d.writers.values():
        n = len(w.acked())
        wait_until("writes after the rotation", lambda w=w, n=n: len(w.acked()) >= n + 20, timeout=30)
    errs = {h: w.errors(since=t0) for h, w in d.writers.items()}
    assert not any(errs.values()), errs


def fail_over_leader_host(d):
    """The leader's host cut off the network: a member of the others takes over and both
    proxies' writers go on; the old leader's host comes back as a standby."""
    s = cluster_state(d)
    if s["leader"] != "db3":
        # The proxies run on db1 and db2: make db3 the leader, so that losing its host
        # leaves both proxies (a proxy's own host going down takes its clients with it).
        ctl(d, "db1", "switchover", "--to", "db3", "--force")
        wait_until("db3 to lead", lambda: (cluster_state(d) or {}).get("leader") == "db3", timeout=90)
    counts = {h: len(w.acked()) for h, w in d.writers.items()}
    for h, w in d.writers.items():
        wait_until(f"writes through {h} with db3 leading", lambda w=w, h=h: len(w.acked()) >= counts[h] + 10,
                   timeout=60)
    t_cut = time.time()
    d.net.cut("db3")
    wait_until("a new leader on db1 or db2",
               lambda: (cluster_state(d) or {}).get("leader") in ("db1", "db2"), timeout=90)
    t_new = time.time()
    counts = {h: len(w.acked()) for h, w in d.writers.items()}
    for h, w in d.writers.items():
        wait_until(f"writes through {h} after the failover", lambda w=w, h=h: len(w.acked()) >= counts[h] + 20,
                   timeout=60)
    d.failover_figures = {"seconds_to_new_leader": round(t_new - t_cut, 1),
                          "writer_errors": {h: len(w.errors(since=t_cut)) for h, w in d.writers.items()}}
    print("failover of the leader's host:", d.failover_figures)
    d.net.heal("db3")

    def db3_streams():
        s = cluster_state(d) or {}
        return any(m.get("name") == "db3" and m.get("state") == "streaming" for m in s.get("members", []))
    wait_until("db3 back as a streaming standby", db3_streams, timeout=180)


def check_capture(d, secrets, marker):
    """What crossed the switch: TLS on every port, no secret and no row in clear."""
    time.sleep(1)
    stop_process(d.capture_proc, timeout=10)
    data = open(d.capture, "rb").read()
    assert len(data) > 100_000, len(data)
    for name, value in secrets.items():
        assert value.encode() not in data, f"{name} crossed the network in clear"
    assert marker.encode() not in data, "row data crossed the network in clear"
    assert b"INSERT INTO mh_writes" not in data and b"pg_stat_replication" not in data
    for port in (2379, 2380, 5432, 6432, 8008):
        r = run(["tcpdump", "-nr", d.capture, f"tcp port {port} and tcp[tcpflags] & tcp-push != 0"],
                check=False, timeout=60)
        assert r.stdout.count("\n") > 5, f"no traffic on port {port} was captured: {r.stderr}"
