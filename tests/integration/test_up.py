"""`pgha up`: a whole local cluster in one command, stopped with Ctrl-C, and
brought back with its data."""
import os
import re
import signal
import ssl
import subprocess
import urllib.request
import time

import psycopg

from conftest import PGHA_BIN, make_base_dir, wait_until


def read_until(proc, pattern, timeout):
    """Read proc's stdout lines until one matches; return all lines read."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{''.join(lines)}")


def start_up(d, *extra):
    return subprocess.Popen([PGHA_BIN, "up", "--dir", d, "--nodes", "3", "--timeout", "240", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def leader_port(lines):
    for line in lines:
        m = re.search(r'port=(\d+) user=postgres dbname=postgres[^"]*"\s+# leader', line)
        if m:
            return int(m.group(1))
    raise AssertionError("no leader connection string printed:\n" + "".join(lines))


def check_tls(d, out, port):
    """--tls: a private CA, a certificate per process, private keys; every connection string
    printed verifies the server (verify-full against the CA) and works; replication is encrypted."""
    tls = os.path.join(d, "secrets", "tls")
    ca = os.path.join(tls, "ca.crt")
    assert os.stat(tls).st_mode & 0o777 == 0o700
    for name in ("ca", "node1", "node2", "node3", "proxy", "etcd", "client"):
        assert os.stat(os.path.join(tls, name + ".key")).st_mode & 0o777 == 0o600
        assert "PRIVATE KEY" in open(os.path.join(tls, name + ".key")).read()
        r = subprocess.run(["openssl", "verify", "-CAfile", ca, os.path.join(tls, name + ".crt")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    conninfos = re.findall(r'psql "([^"]+)"', out)
    assert len(conninfos) == 5, out   # three members, the proxy's two ports
    password = open(os.path.join(d, "secrets", "superuser.password")).read().strip()
    for ci in conninfos:
        assert f"sslmode=verify-full sslrootcert={ca}" in ci, ci
        with psycopg.connect(ci, password=password, autocommit=True) as c:
            assert c.pgconn.ssl_in_use, ci
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=verify-full "
                         f"sslrootcert={ca}", password=password, autocommit=True) as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
        rows = c.execute("SELECT r.application_name, s.ssl FROM pg_stat_replication r "
                         "JOIN pg_stat_ssl s USING (pid) ORDER BY 1").fetchall()
        assert len(rows) == 2 and all(ssl for _, ssl in rows), rows
    # A client that trusts another CA is refused by every member.
    other = os.path.join(d, "other-ca.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", os.path.join(d, "other-ca.key"), "-out", other, "-days", "2",
                    "-subj", "/CN=other"], check=True, capture_output=True, timeout=30)
    for ci in conninfos:
        try:
            psycopg.connect(ci.replace(ca, other), password=password, connect_timeout=10).close()
        except psycopg.OperationalError as ex:
            assert "certificate verify failed" in str(ex), ex
        else:
            raise AssertionError(f"{ci}: a server certificate of another CA was accepted")


def test_up_starts_three_streaming_members_and_comes_back():
    base = make_base_dir()
    d = os.path.join(base, "cluster")
    proc = start_up(d, "--rw-split", "transactions", "--tls")
    try:
        lines = read_until(proc, r"is up: 3 members", 240)
        lines += read_until(proc, r"^Stop:", 30)
        out = "".join(lines)
        assert out.count(" streaming ") >= 2, out
        port = leader_port(lines)
        check_tls(d, out, port)
        # Generated secrets are private files; the password appears nowhere in the output.
        pw_file = os.path.join(d, "secrets", "superuser.password")
        assert os.stat(pw_file).st_mode & 0o777 == 0o600
        password = open(pw_file).read().strip()
        assert password and password not in out
        # One API token for all agents (POST /failsafe between them needs it).
        token_file = os.path.join(d, "secrets", "api.token")
        assert os.stat(token_file).st_mode & 0o777 == 0o600
        for i in (1, 2, 3):
            with open(os.path.join(d, f"node{i}.conf")) as f:
                assert f"api_token_file = {token_file}\n" in f.read()
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password,
                             dbname="postgres", autocommit=True) as c:
            c.execute("CREATE TABLE survives AS SELECT 'yes' AS v")
        # The proxy up started: read-write reaches the leader, read-only a standby.
        rw = int(re.search(r"read-write .*port=(\d+)", out).group(1))
        ro = int(re.search(r"read-only .*port=(\d+)", out).group(1))
        with psycopg.connect(host="127.0.0.1", port=rw, user="postgres", password=password,
                             dbname="postgres", autocommit=True) as c:
            assert c.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone() == (port, False)
            c.execute("INSERT INTO survives VALUES ('through the proxy')")
        with psycopg.connect(host="127.0.0.1", port=ro, user="postgres", password=password,
                             dbname="postgres", autocommit=True) as c:
            # up's proxy reads its writes on the read-only port (read_your_writes = on).
            assert c.execute("SELECT count(*) FROM survives WHERE v = 'through the proxy'").fetchone()[0] == 1
        def standby_answers():
            with psycopg.connect(host="127.0.0.1", port=ro, user="postgres", password=password,
                                 dbname="postgres", autocommit=True) as c:
                return c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        wait_until("the read-only port to reach a standby", standby_answers, timeout=30)
        # --rw-split transactions: a READ ONLY transaction on the read-write port runs on a standby
        # that has the client's own write.
        with psycopg.connect(host="127.0.0.1", port=rw, user="postgres", password=password,
                             dbname="postgres", autocommit=True) as c:
            c.execute("CREATE TABLE split_reads (n int)")
            written = []
            def split_read():
                written.append(len(written))
                c.execute("INSERT INTO split_reads VALUES (%s)", (written[-1],))
                c.execute("BEGIN READ ONLY")
                row = c.execute("SELECT count(*), pg_is_in_recovery() FROM split_reads").fetchone()
                c.execute("COMMIT")
                assert row[0] == len(written), row   # every row written so far
                return row[1]
            wait_until("a READ ONLY transaction on the read-write port to run on a standby", split_read,
                       timeout=30)
        # The printed metrics URLs answer: the agent's (its role) and the proxy's (the leader it routes to).
        # Under --tls the agent's API is HTTPS, verified with the printed CA.
        am = re.search(r"^Metrics: +curl --cacert (\S+) (https://\S+/metrics)", out, re.M)
        pm = re.search(r"the proxy's: (http://\S+/metrics)\)", out)
        assert am and pm, out
        ca = am.group(1)
        assert ca == os.path.join(d, "secrets", "tls", "ca.crt"), ca
        with urllib.request.urlopen(am.group(2), timeout=5, context=ssl.create_default_context(cafile=ca)) as r:
            text = r.read().decode()
        assert re.search(r'^pgha_member_role\{cluster="pgha",member="node1",role="(primary|replica)"\} 1$', text, re.M), text
        with urllib.request.urlopen(pm.group(1), timeout=5) as r:
            text = r.read().decode()
        assert re.search(r'^pgha_proxy_leader\{name="node\d",address="127.0.0.1:%d"\} 1$' % port, text, re.M), text
        # The printed ctl command works.
        m = re.search(r"Members:\s+(.*)", out)
        r = subprocess.run(m.group(1).split(), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "leader" in r.stdout, r.stderr
        # etcd runs with authentication: its keys are the cluster's controls, and nothing
        # reads or writes them without user pgha's password (a private file).
        # Under --tls etcd also wants a certificate of the cluster's CA: without one, no connection.
        ep = re.search(r"^etcd:\s+(https://\S+) with authentication \(user pgha", out, re.M).group(1)
        tls = os.path.join(d, "secrets", "tls")
        anon = subprocess.run(["etcdctl", "--endpoints", ep, "--dial-timeout", "3s", "--command-timeout", "5s",
                               "--cacert", ca, "put", "/pgha/pgha/leader", "mine"],
                              capture_output=True, text=True, timeout=30)
        assert anon.returncode != 0 and "OK" not in anon.stdout, anon
        anon = subprocess.run(["etcdctl", "--endpoints", ep, "--cacert", ca, "--cert", f"{tls}/client.crt",
                               "--key", f"{tls}/client.key", "put", "/pgha/pgha/leader", "mine"],
                              capture_output=True, text=True, timeout=30)
        # With a certificate but no user and password: no etcd user (the certificate has no CN).
        assert anon.returncode != 0 and "permission denied" in anon.stderr, anon
        for f in ("etcd-root.password", "etcd-pgha.password"):
            assert os.stat(os.path.join(d, "secrets", f)).st_mode & 0o777 == 0o600
            assert open(os.path.join(d, "secrets", f)).read().strip() not in out
        # Ctrl-C stops everything cleanly.
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, rest
        assert "stopped; data kept in" in rest

        # Again on the same directory: same cluster, same data, no re-clone; the same certificates.
        certs = {f: open(os.path.join(d, "secrets", "tls", f)).read()
                 for f in os.listdir(os.path.join(d, "secrets", "tls"))}
        proc = start_up(d)
        lines = read_until(proc, r"is up: 3 members", 240)
        assert "restarting cluster" in "".join(lines)
        lines += read_until(proc, r"^Stop:", 30)
        port = leader_port(lines)
        assert certs == {f: open(os.path.join(d, "secrets", "tls", f)).read()
                         for f in os.listdir(os.path.join(d, "secrets", "tls"))}
        check_tls(d, "".join(lines), port)
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password,
                             dbname="postgres") as c:
            assert c.execute("SELECT v FROM survives ORDER BY v").fetchall() == [("through the proxy",), ("yes",)]
        for i in (1, 2, 3):
            log = open(os.path.join(d, "logs", f"node{i}.log")).read()
            assert log.count("initdb started") + log.count("pg_basebackup started") <= 1
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)
    import shutil
    shutil.rmtree(base, ignore_errors=True)


UP_CONF = """[up]
cluster = pgha
nodes = 3
etcd_client_port = {etcd}
etcd_peer_port = {peer}
proxy_port = {proxy}
proxy_ro_port = {proxy_ro}
pg_port_1 = {pg1}
api_port_1 = {api1}
pg_port_2 = {pg2}
api_port_2 = {api2}
pg_port_3 = {pg3}
api_port_3 = {api3}
"""


def test_up_checks_every_port_before_starting_anything():
    """A busy or repeated port is named before etcd or any agent starts (it once
    started node1, failed on node2 and then could not stop node1)."""
    import socket
    from conftest import free_port
    base = make_base_dir()
    d = os.path.join(base, "cluster")
    os.makedirs(d)
    ports = {k: free_port() for k in ("etcd", "peer", "proxy", "proxy_ro", "pg1", "api1", "pg2", "api2",
                                      "pg3", "api3")}
    conf = os.path.join(d, "up.conf")

    # The same port twice in up.conf.
    dup = dict(ports, api2=ports["etcd"])
    with open(conf, "w") as f:
        f.write(UP_CONF.format(**dup))
    r = subprocess.run([PGHA_BIN, "up", "--dir", d], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"etcd_client_port and api_port_2 are both {ports['etcd']}" in r.stderr, r.stderr
    assert "starting etcd" not in r.stdout

    # A port another program holds.
    with open(conf, "w") as f:
        f.write(UP_CONF.format(**ports))
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports["pg2"]))
        s.listen(1)
        t0 = time.monotonic()
        r = subprocess.run([PGHA_BIN, "up", "--dir", d], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"port {ports['pg2']} (pg_port_2 in {conf}) is already in use" in r.stderr, r.stderr
    assert "starting etcd" not in r.stdout
    assert time.monotonic() - t0 < 30
    assert not os.path.exists(os.path.join(d, "logs", "node1.log"))
    import shutil
    shutil.rmtree(base, ignore_errors=True)


def etcd_pids(d):
    """PIDs of the etcd members pgha up started for DIR d: {data dir name: pid}, from /proc."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"--data-dir" in argv:
            data = argv[argv.index(b"--data-dir") + 1].decode()
            if os.path.dirname(data) == d:
                found[os.path.basename(data)] = int(pid)
    return found


def test_up_etcd_three_members():
    """`pgha up --etcd 3`: three etcd members, each with its own ports, data and log; the agents and
    the proxy get every URL and keep working with one member killed; a second run brings all back.
    With --regions, the member is in the first region and ctl list shows it."""
    base = make_base_dir()
    d = os.path.join(base, "cluster")
    proc = subprocess.Popen([PGHA_BIN, "up", "--dir", d, "--nodes", "1", "--etcd", "3", "--timeout", "240",
                             "--regions", "east,west"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    node1 = os.path.join(d, "node1.conf")
    try:
        lines = read_until(proc, r"is up: 1 members", 240)
        lines += read_until(proc, r"^Stop:", 30)
        out = "".join(lines)
        conf = open(os.path.join(d, "up.conf")).read()
        assert "etcd_members = 3" in conf
        ports = [int(p) for p in re.findall(r"etcd_client_port(?:_\d)? = (\d+)", conf)]
        assert len(set(ports)) == 3
        urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
        assert f"etcd:        3 members: {urls}" in out, out
        assert f"endpoints = {urls}" in open(node1).read()
        assert f"endpoints = {urls}" in open(os.path.join(d, "proxy.conf")).read()
        pids = etcd_pids(d)
        assert sorted(pids) == ["etcd1", "etcd2", "etcd3"], pids
        for i in (1, 2, 3):
            assert os.path.getsize(os.path.join(d, "logs", f"etcd{i}.log")) > 0
        # One member gone: the rest keep the majority; pgha up reports it.
        os.kill(pids["etcd1"], signal.SIGKILL)
        lines = read_until(proc, r"etcd member etcd1 exited", 10)
        r = subprocess.run([PGHA_BIN, "ctl", "-c", node1, "list"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "leader" in r.stdout, r.stderr
        assert "region = east\n" in open(node1).read()
        assert "region = east\n" in open(os.path.join(d, "proxy.conf")).read()
        assert "REGION" in r.stdout.splitlines()[1] and " east " in r.stdout.splitlines()[2], r.stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
    assert etcd_pids(d) == {}
    # The count belongs to the directory.
    r = subprocess.run([PGHA_BIN, "up", "--dir", d, "--etcd", "5"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "--etcd 5: " in r.stderr and "was made with 3 etcd members" in r.stderr, r.stderr
    # A second run brings every member back, the killed one included.
    proc = subprocess.Popen([PGHA_BIN, "up", "--dir", d, "--timeout", "240"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = read_until(proc, r"is up: 1 members", 240)
        assert "starting 3 etcd members" in "".join(lines)
        assert sorted(etcd_pids(d)) == ["etcd1", "etcd2", "etcd3"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
    assert etcd_pids(d) == {}
    import shutil
    shutil.rmtree(base, ignore_errors=True)


def test_up_standby_of():
    """`pgha up --standby-of SRC`: a second cluster, with its own etcd, that is a standby cluster of
    the one `pgha up` runs in SRC: its leader streams from SRC's primary, nothing in it takes writes,
    and ctl says what it is."""
    base = make_base_dir()
    src, d = os.path.join(base, "east"), os.path.join(base, "west")
    a = subprocess.Popen([PGHA_BIN, "up", "--dir", src, "--nodes", "1", "--cluster", "east", "--timeout", "240"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    b = None
    try:
        lines = read_until(a, r"is up: 1 members", 240)
        lines += read_until(a, r"^Stop:", 30)
        src_port = leader_port(lines)
        password = open(os.path.join(src, "secrets", "superuser.password")).read().strip()
        with psycopg.connect(host="127.0.0.1", port=src_port, user="postgres", password=password,
                             dbname="postgres", autocommit=True) as c:
            c.execute("CREATE TABLE up_sc (v text)")
            c.execute("INSERT INTO up_sc VALUES ('from-east')")
        # Bad input first: not a pgha up directory.
        r = subprocess.run([PGHA_BIN, "up", "--dir", d, "--standby-of", base], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0 and "not a `pgha up` directory" in r.stderr, r.stderr
        b = subprocess.Popen([PGHA_BIN, "up", "--dir", d, "--nodes", "2", "--standby-of", src, "--timeout", "240"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines = read_until(b, r"is up: 2 members", 240)
        lines += read_until(b, r"^Stop:", 30)
        out = "".join(lines)
        assert 'cluster "east-standby"' in out, out
        assert f'Standby of:  cluster "east" (127.0.0.1:{src_port})' in out, out
        assert "# standby leader (read-only)" in out and "promote-cluster" in out, out
        conf = open(os.path.join(d, "node1.conf")).read()
        assert f"[standby_cluster]" in conf and f"primary_hosts = 127.0.0.1:{src_port}" in conf, conf
        # The same passwords as the source (the clone copies its roles).
        assert open(os.path.join(d, "secrets", "superuser.password")).read().strip() == password
        ports = [int(p) for p in re.findall(r"port=(\d+) user=postgres dbname=postgres\"\s+# standby", out)]
        assert len(ports) == 2, out
        for port in ports:
            def has_row(port=port):
                with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password,
                                     dbname="postgres", autocommit=True) as c:
                    return c.execute("SELECT count(*) FROM up_sc WHERE v = 'from-east'").fetchone()[0] == 1
            wait_until(f"east's row on port {port}", has_row, timeout=60)
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password,
                                 dbname="postgres", autocommit=True) as c:
                assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        r = subprocess.run([PGHA_BIN, "ctl", "-c", os.path.join(d, "node1.conf"), "list"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and f"Standby cluster of: 127.0.0.1:{src_port}" in r.stdout, r.stdout + r.stderr
        r = subprocess.run([PGHA_BIN, "ctl", "-c", os.path.join(d, "node1.conf"), "promote-cluster", "--json"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and "is a running primary" in r.stderr, r.stderr
    finally:
        for p in (b, a):
            if p is not None:
                os.killpg(p.pid, signal.SIGINT)
                p.communicate(timeout=120)
    import shutil
    shutil.rmtree(base, ignore_errors=True)
