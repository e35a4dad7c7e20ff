"""TLS from `pgha proxy` to PostgreSQL ([tls] server_sslmode): agents with [tls] require = on and a
private CA, a proxy with server_sslmode = verify-full and a client certificate of its own. Queries on
both ports and in transaction pooling go over verified TLS (pg_stat_ssl), cancel requests work, a
wrong CA fails clients at once with the reason, require is refused by a PostgreSQL without TLS while
prefer goes on in plain text, certificates rotate on reload under load without a client error, bad
files stop the proxy with the file and the reason, and /metrics shows when the certificates expire.
One TLS cluster (two members) and one plain single-member cluster serve the whole module."""
import configparser
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import PGHA_BIN, Cluster, Etcd, Proxy, free_port, shared_base, wait_until
from test_proxy_tls import make_ca, make_cert


@pytest.fixture(scope="module")
def env(request):
    with shared_base(request) as base:
        d = os.path.join(base, "certs")
        os.makedirs(d)
        certs = {"dir": d, "ca": make_ca(d, "ca"), "other_ca": make_ca(d, "otherca"),
                 "node": make_cert(d, "ca", "node", san="IP:127.0.0.1,DNS:localhost"),
                 "proxy1": make_cert(d, "ca", "proxy1", san="DNS:proxy1"),
                 "proxy2": make_cert(d, "ca", "proxy2", san="DNS:proxy2"),
                 "stranger": make_cert(d, "otherca", "stranger", san="DNS:stranger")}
        etcd = Etcd(base).start()
        tls = Cluster(base, etcd)
        plain_base = os.path.join(base, "plain")
        os.makedirs(plain_base)
        plain = Cluster(plain_base, etcd, name="plain")
        node_tls = {"tls.cert_file": certs["node"][0], "tls.key_file": certs["node"][1],
                    "tls.ca_file": certs["ca"], "tls.require": "on"}
        try:
            for n in ("n1", "n2"):
                tls.add(n, node_tls).start()
            plain.add("p1").start()
            tls.wait_streaming(["n1", "n2"], timeout=120)
            plain.wait_streaming(["p1"], timeout=120)
            yield {"tls": tls, "plain": plain, "certs": certs}
        finally:
            tls.stop_all()
            plain.stop_all()
            etcd.stop()


def server_tls(certs, mode="verify-full", ca=None, client="proxy1", **more):
    opts = {"tls.server_sslmode": mode, "tls.server_ca_file": ca or certs["ca"]}
    if client:
        opts.update({"tls.server_cert_file": certs[client][0], "tls.server_key_file": certs[client][1]})
    opts.update(more)
    return opts


@pytest.fixture(scope="module")
def proxy(env):
    """verify-full to the TLS cluster, TLS from clients too, /metrics on."""
    certs = env["certs"]
    metrics_port = free_port()
    p = Proxy(env["tls"], {**server_tls(certs), "tls.cert_file": certs["node"][0],
                           "tls.key_file": certs["node"][1], "proxy.metrics_listen": f"127.0.0.1:{metrics_port}",
                           "proxy.pool_size": "2", "auth.auth_user": "postgres"})
    p.metrics_port = metrics_port
    p.start()
    yield p
    assert p.stop() == 0, p.log()[-3000:]


def set_options(proxy, opts):
    """Rewrite options of proxy's config file (section.key: value) for a reload."""
    cp = configparser.RawConfigParser()
    cp.optionxform = str
    cp.read(proxy.conf_path)
    for key, value in opts.items():
        sec, opt = key.split(".", 1)
        if not cp.has_section(sec):
            cp.add_section(sec)
        cp.set(sec, opt, value)
    with open(proxy.conf_path, "w") as f:
        cp.write(f)


def ssl_row(conn):
    return conn.execute("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()


def test_verify_full_on_both_ports_and_in_transaction_pooling(env, proxy):
    with proxy.connect(autocommit=True, sslmode="verify-full", sslrootcert=env["certs"]["ca"]) as c:
        assert c.pgconn.ssl_in_use
        assert ssl_row(c) == (True, "/CN=proxy1")
        c.execute("CREATE TABLE IF NOT EXISTS tls_t (id int)")
        c.execute("INSERT INTO tls_t SELECT generate_series(1, 1000)")
        # More than a TLS record each way.
        assert len(c.execute("SELECT repeat('z', 200000)").fetchone()[0]) == 200000
    with proxy.connect(ro=True, autocommit=True) as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert ssl_row(c) == (True, "/CN=proxy1")
        wait_until("the standby to replay", lambda: c.execute("SELECT count(*) FROM tls_t").fetchone()[0] >= 1000,
                   timeout=15)
    # Transaction pooling: five clients share two servers, each transaction on a TLS backend.
    conns = [proxy.connect(autocommit=False) for _ in range(5)]
    try:
        for round_ in range(3):
            for i, c in enumerate(conns):
                assert c.execute("SELECT %s::int + 0", (i,)).fetchone() == (i,)
                assert ssl_row(c)[0] is True
                c.commit()
        pids = set()
        for c in conns:
            pids.add(c.execute("SELECT pg_backend_pid()").fetchone()[0])
            c.commit()
        assert 1 <= len(pids) <= 2, pids
    finally:
        for c in conns:
            c.close()
    # The members' view: every backend of the proxy is encrypted.
    leader = env["tls"].nodes[env["tls"].leader()]
    (proxied, plain), = leader.sql(
        "SELECT count(*) FILTER (WHERE s.ssl AND s.client_dn = '/CN=proxy1'), count(*) FILTER (WHERE NOT s.ssl) "
        "FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'client backend' "
        "AND a.client_addr IS NOT NULL AND a.pid <> pg_backend_pid()")
    assert proxied >= 1 and plain == 0, (proxied, plain)


def test_auth_query_follows_the_server_tls_settings(env, proxy):
    """A user not in the users file is looked up with libpq under the same sslmode, CA and client
    certificate: the lookup's backend shows the proxy's certificate."""
    leader = env["tls"].nodes[env["tls"].leader()]
    leader.sql("DROP ROLE IF EXISTS aq_user")
    leader.sql("CREATE ROLE aq_user LOGIN PASSWORD 'aq-secret'")
    with proxy.connect(user="aq_user", password="aq-secret", autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == ("aq_user",)
    rows = leader.sql("SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                      "WHERE a.application_name = 'pgha-proxy-auth-query'")
    assert rows == [(True, "/CN=proxy1")], rows


def test_cancel_reaches_a_tls_backend(env, proxy):
    with proxy.connect(autocommit=True) as c:
        threading.Timer(0.5, c.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - t0 < 10
        assert c.execute("SELECT 1").fetchone() == (1,)
    # It went over TLS with the connection's verify-full settings: a failure there is logged.
    assert "cancel request to" not in proxy.log(), proxy.log()[-2000:]


def test_expiry_metric(env, proxy):
    text = urllib.request.urlopen(f"http://127.0.0.1:{proxy.metrics_port}/metrics", timeout=5).read().decode()
    assert "# TYPE pgha_tls_cert_expiry_timestamp_seconds gauge" in text
    assert "# HELP pgha_tls_cert_expiry_timestamp_seconds " in text
    certs = env["certs"]
    for link, cert in (("client", certs["node"][0]), ("server", certs["proxy1"][0])):
        end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", cert],
                             capture_output=True, text=True, check=False)
        if end.returncode != 0:   # older openssl: no -dateopt
            end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", cert], capture_output=True,
                                 text=True, check=True)
        when = subprocess.run(["date", "-u", "-d", end.stdout.strip().split("=", 1)[1], "+%s"], capture_output=True,
                              text=True, check=True).stdout.strip()
        line = f'pgha_tls_cert_expiry_timestamp_seconds{{link="{link}",file="{cert}"}} {when}'
        assert line in text, (line, text[-2000:])


def test_wrong_ca_fails_clients_at_once_with_the_reason(env):
    certs = env["certs"]
    p = Proxy(env["tls"], server_tls(certs, ca=certs["other_ca"]), name="wrongca").start()
    try:
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as err:
            p.connect()
        assert time.monotonic() - t0 < 10
        assert "is not trusted" in str(err.value) and "server_sslmode = verify-full" in str(err.value), str(err.value)
        log = p.log()
        assert re.search(r"the certificate of 127\.0\.0\.1:\d+ is not trusted: (unable to get local issuer "
                         r"certificate|self.signed certificate)", log), log[-2000:]
    finally:
        assert p.stop() == 0, p.log()[-3000:]


def test_require_refused_by_plain_postgres_prefer_goes_on(env):
    certs = env["certs"]
    p = Proxy(env["plain"], {"tls.server_sslmode": "require"}, name="plainreq").start()
    try:
        with pytest.raises(psycopg.OperationalError) as err:
            p.connect()
        assert "does not accept TLS and server_sslmode = require" in str(err.value), str(err.value)
    finally:
        assert p.stop() == 0, p.log()[-3000:]
    # prefer (the default), with a CA and a client certificate that a plain server never asks for.
    p = Proxy(env["plain"], server_tls(certs, mode="prefer"), name="plainprefer").start()
    try:
        with p.connect(autocommit=True) as c:
            assert ssl_row(c) == (False, None)
        with p.connect(ro=True, autocommit=True) as c:   # the leader serves reads: no standby
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert p.stop() == 0, p.log()[-3000:]
    # prefer against the TLS cluster encrypts without checking (no CA needed).
    p = Proxy(env["tls"], {"tls.server_sslmode": "prefer"}, name="tlsprefer").start()
    try:
        with p.connect(autocommit=True) as c:
            assert ssl_row(c) == (True, None)
    finally:
        assert p.stop() == 0, p.log()[-3000:]


def test_rotation_on_reload_under_load(env):
    certs = env["certs"]
    # debug: each server's handshake is logged ("server HOST:PORT: TLSv1.3, cipher ...").
    p = Proxy(env["tls"], {**server_tls(certs), "proxy.log_level": "debug"}, name="rotate").start()
    errors, done, stop = [], [0], threading.Event()

    def load():
        try:
            with p.connect(autocommit=True) as c:
                while not stop.is_set():
                    assert c.execute("SELECT count(*) FROM generate_series(1, 100)").fetchone() == (100,)
                    done[0] += 1
        except Exception as e:  # noqa: BLE001 - any failure is the test's failure
            errors.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        wait_until("load to run", lambda: done[0] > 50, timeout=15)
        # The CA bundle and the client certificate change; servers are renewed quickly from now on.
        bundle = os.path.join(certs["dir"], "bundle.pem")
        with open(bundle, "w") as f:
            f.write(open(certs["other_ca"]).read() + open(certs["ca"]).read())
        set_options(p, {"tls.server_ca_file": bundle, "tls.server_cert_file": certs["proxy2"][0],
                        "tls.server_key_file": certs["proxy2"][1], "proxy.server_lifetime": "300ms"})
        p.proc.send_signal(signal.SIGHUP)

        def renewed():
            with p.connect(autocommit=True) as c:
                return ssl_row(c) == (True, "/CN=proxy2")
        wait_until("servers with the new certificate", renewed, timeout=20)
        # A broken CA file on reload: refused with the file and why, the running context stays.
        garbage = os.path.join(certs["dir"], "garbage.pem")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        set_options(p, {"tls.server_ca_file": garbage})
        p.proc.send_signal(signal.SIGHUP)
        wait_until("the reload to be refused", lambda: "TLS to PostgreSQL keeps its previous context" in p.log(),
                   timeout=15)
        assert f'server_ca_file "{garbage}": no PEM certificate in it' in p.log()
        before = done[0]
        wait_until("load to go on", lambda: done[0] > before + 50, timeout=15)

        def handshake_after_refusal():
            log = p.log()
            after = log[log.index("TLS to PostgreSQL keeps its previous context"):]
            return re.search(r"server 127\.0\.0\.1:\d+: TLSv1\.[23], cipher", after)
        # Servers renewed after the refused reload are verified with the context kept.
        wait_until("a server handshake after the refused reload", handshake_after_refusal, timeout=15)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert p.stop() == 0, p.log()[-3000:]
    assert errors == [], errors
    assert done[0] > 100


def test_bad_files_at_start_are_named(env):
    certs = env["certs"]
    garbage = os.path.join(certs["dir"], "garbage-start.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    cases = [
        (server_tls(certs, ca="/nonexistent/ca.pem"), 'server_ca_file "/nonexistent/ca.pem": cannot open: No such file'),
        (server_tls(certs, ca=garbage), f'server_ca_file "{garbage}": no PEM certificate in it'),
        ({**server_tls(certs), "tls.server_key_file": certs["proxy2"][1]},
         f'key_file "{certs["proxy2"][1]}" does not match cert_file "{certs["proxy1"][0]}"'),
        ({**server_tls(certs), "tls.server_cert_file": "/nonexistent/c.pem"},
         'server_cert_file "/nonexistent/c.pem": cannot open'),
        ({"tls.server_sslmode": "verify-ca"}, "server_sslmode = verify-ca needs server_ca_file\nHINT:"),
    ]
    for i, (opts, want) in enumerate(cases):
        p = Proxy(env["tls"], opts, name=f"bad{i}")
        r = subprocess.run([PGHA_BIN, "proxy", "-c", p.conf_path], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (opts, r.stdout, r.stderr)
        assert want in r.stderr, (want, r.stderr)
        assert "[tls]" in r.stderr, r.stderr
