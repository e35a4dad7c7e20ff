"""TLS between clients and `pgha proxy`: SSLRequest answered 'S' when [tls]
cert_file/key_file are set, verified by real libpq clients (psycopg, pgbench);
require, client certificates, reload of rotated certificates, bad files."""
import os
import signal
import socket
import struct
import subprocess

import psycopg
import pytest

from conftest import PG_BIN, PGHA_BIN, Proxy, wait_until


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)
    return os.path.join(d, f"{name}.pem")


def make_cert(d, ca, name, san="IP:127.0.0.1"):
    """A certificate for name signed by the CA `ca`; returns (cert, key) paths."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    key = os.path.join(d, f"{name}.key")
    os.chmod(key, 0o600)
    return os.path.join(d, f"{name}.pem"), key


@pytest.fixture
def certs(base_dir):
    d = os.path.join(base_dir, "certs")
    os.makedirs(d)
    ca1 = make_ca(d, "ca1")
    ca2 = make_ca(d, "ca2")
    srv1 = make_cert(d, "ca1", "server1")
    srv2 = make_cert(d, "ca2", "server2")
    client = make_cert(d, "ca1", "client", san="DNS:client")
    return {"dir": d, "ca1": ca1, "ca2": ca2, "srv1": srv1, "srv2": srv2, "client": client}


@pytest.fixture
def leader(cluster):
    cluster.add("n1").start()
    return cluster.wait_streaming(["n1"], timeout=120)


def tls_proxy(cluster, certs, **opts):
    extra = {"tls.cert_file": certs["srv1"][0], "tls.key_file": certs["srv1"][1]}
    extra.update({f"tls.{k}": v for k, v in opts.items()})
    return Proxy(cluster, extra).start()


def test_tls_clients_verify_the_proxy_and_move_data_both_ways(cluster, leader, certs):
    proxy = tls_proxy(cluster, certs)
    try:
        with proxy.connect(autocommit=True, sslmode="verify-full", sslrootcert=certs["ca1"]) as c:
            assert c.pgconn.ssl_in_use
            c.execute("CREATE TABLE t (id int, pad text)")
            # Bigger than a TLS record and a socket buffer both ways: COPY in, then out.
            with c.cursor().copy("COPY t FROM STDIN") as cp:
                for i in range(20000):
                    cp.write_row((i, "x" * 200))
            assert c.execute("SELECT count(*), sum(id) FROM t").fetchone() == (20000, sum(range(20000)))
            rows = 0
            with c.cursor().copy("COPY t TO STDOUT") as cp:
                for _ in cp.rows():
                    rows += 1
            assert rows == 20000
            big = c.execute("SELECT repeat('y', 3000000)").fetchone()[0]
            assert len(big) == 3000000
        # A client that verifies against another CA refuses the proxy.
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            proxy.connect(sslmode="verify-full", sslrootcert=certs["ca2"])
        # Plain text still works when TLS is not required.
        with proxy.connect(sslmode="disable") as c:
            assert not c.pgconn.ssl_in_use
            assert c.execute("SELECT 1").fetchone() == (1,)
        # pgbench over TLS, several clients sharing the pool.
        env = dict(os.environ, PGSSLMODE="require")
        env.pop("PGPASSWORD", None)
        pgpass = os.path.join(certs["dir"], "pgpass")
        with open(pgpass, "w") as f:
            f.write(f"127.0.0.1:{proxy.port}:*:postgres:{cluster.su_pw}\n")
        os.chmod(pgpass, 0o600)
        env["PGPASSFILE"] = pgpass
        subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-s", "1", "-h", "127.0.0.1", "-p", str(proxy.port),
                        "-U", "postgres", "postgres"], env=env, check=True, capture_output=True, timeout=120)
        r = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-c", "8", "-j", "2", "-t", "200", "-h", "127.0.0.1",
                            "-p", str(proxy.port), "-U", "postgres", "postgres"], env=env, capture_output=True,
                           text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        assert "number of failed transactions: 0" in r.stdout, r.stdout
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_tls_required_and_client_certificates(cluster, leader, certs):
    proxy = tls_proxy(cluster, certs, require="on")
    try:
        with pytest.raises(psycopg.OperationalError, match="requires TLS"):
            proxy.connect(sslmode="disable")
        with proxy.connect(sslmode="require") as c:
            assert c.pgconn.ssl_in_use
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]
    proxy = tls_proxy(cluster, certs, ca_file=certs["ca1"])
    try:
        with pytest.raises(psycopg.OperationalError):
            proxy.connect(sslmode="require")
        cert, key = certs["client"]
        with proxy.connect(sslmode="verify-full", sslrootcert=certs["ca1"], sslcert=cert, sslkey=key) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_tls_certificate_rotated_on_sighup(cluster, leader, certs):
    proxy = tls_proxy(cluster, certs)
    try:
        with proxy.connect(sslmode="verify-full", sslrootcert=certs["ca1"]) as kept:
            # Rotate: the same config file now names server2 (signed by ca2).
            conf = open(proxy.conf_path).read()
            conf = conf.replace(certs["srv1"][0], certs["srv2"][0]).replace(certs["srv1"][1], certs["srv2"][1])
            with open(proxy.conf_path, "w") as f:
                f.write(conf)
            proxy.proc.send_signal(signal.SIGHUP)

            def rotated():
                with proxy.connect(sslmode="verify-full", sslrootcert=certs["ca2"]) as c:
                    return c.execute("SELECT 1").fetchone() == (1,)
            wait_until("the proxy to show the new certificate", rotated, timeout=15)
            # The connection opened before the reload goes on.
            assert kept.execute("SELECT 2").fetchone() == (2,)
            # A reload with a broken key keeps the working certificate.
            with open(certs["srv2"][1], "w") as f:
                f.write("not a key\n")
            proxy.proc.send_signal(signal.SIGHUP)
            wait_until("the reload error to be logged", lambda: "cannot load the private key" in proxy.log(),
                       timeout=15)
            with proxy.connect(sslmode="verify-full", sslrootcert=certs["ca2"]) as c:
                assert c.execute("SELECT 3").fetchone() == (3,)
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_tls_bad_files_are_named_and_early_data_is_refused(cluster, leader, certs):
    # A missing certificate: the proxy does not start and says which option and file.
    proxy = Proxy(cluster, {"tls.cert_file": "/nonexistent/server.pem", "tls.key_file": certs["srv1"][1]})
    r = subprocess.run([PGHA_BIN, "proxy", "-c", proxy.conf_path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "[tls] cert_file = \"/nonexistent/server.pem\"" in r.stderr, r.stderr
    # A key that does not match the certificate.
    proxy = Proxy(cluster, {"tls.cert_file": certs["srv1"][0], "tls.key_file": certs["client"][1]})
    r = subprocess.run([PGHA_BIN, "proxy", "-c", proxy.conf_path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "does not match cert_file" in r.stderr, r.stderr
    # Only one of the two.
    proxy = Proxy(cluster, {"tls.cert_file": certs["srv1"][0]})
    r = subprocess.run([PGHA_BIN, "proxy", "-c", proxy.conf_path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "needs both cert_file and key_file" in r.stderr, r.stderr

    # Bytes sent after the SSLRequest, before the answer, are refused (CVE-2021-23214's buffer
    # stuffing); the proxy goes on serving others.
    proxy = tls_proxy(cluster, certs)
    try:
        startup = b"user\0postgres\0database\0postgres\0\0"
        startup = struct.pack("!ii", 8 + len(startup), 196608) + startup
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(struct.pack("!ii", 8, 80877103) + startup)
            answer = s.recv(1)
            assert answer == b"E", answer
        with proxy.connect(sslmode="require") as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]
