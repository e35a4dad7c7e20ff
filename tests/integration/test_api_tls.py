"""The agent API over HTTPS ([tls] api = on, api_client_certs = on): three
members with a private CA. /cluster answers a client that verifies the CA and
presents a certificate of it, and no one else (no certificate, one of another
CA, plain HTTP: dropped); member records say https:// and the certificate's
expiry, as do `ctl list` and /metrics. Rotation: new files + SIGHUP, and
PostgreSQL and the API present the new certificate; a bad file + SIGHUP is
refused, naming the file, and the old one stays in use. With etcd down, the
leader's failsafe round (bearer token) goes over HTTPS; last, the leader stops
and the others elect a new one through each other's HTTPS API."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import PGHA_BIN, Node, module_cluster, wait_until
from test_proxy_tls import make_ca, make_cert, openssl

NAMES = ["a1", "a2", "a3"]


def not_after(pem_path=None, pem_text=None):
    """A certificate's notAfter as unix seconds (openssl x509 -enddate)."""
    r = subprocess.run(["openssl", "x509", "-noout", "-enddate"] + (["-in", pem_path] if pem_path else []),
                       input=pem_text, capture_output=True, text=True, check=True, timeout=30)
    return int(ssl.cert_time_to_seconds(r.stdout.strip().split("=", 1)[1]))


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="pgha-test-apitls-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        ca = make_ca(d, "ca")
        node = make_cert(d, "ca", "node")            # SAN IP:127.0.0.1: every member's host
        client = make_cert(d, "ca", "client", san="DNS:client")   # the tests' own client certificate
        elsewhere = make_cert(d, "ca", "elsewhere", san="DNS:elsewhere.example")   # names another host
        make_ca(d, "other")
        foreign = make_cert(d, "other", "foreign")   # a certificate of another CA
        yield {"dir": d, "ca": ca, "node": node, "client": client, "elsewhere": elsewhere, "foreign": foreign}
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_cluster(request, certs):
    extra = {"tls.cert_file": certs["node"][0], "tls.key_file": certs["node"][1], "tls.ca_file": certs["ca"],
             "tls.api_client_certs": "on"}
    with module_cluster(request, NAMES, node_extra=extra) as (cluster, _):
        yield cluster


def client_ctx(certs, cert=None):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def get(url, ctx):
    with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
        return r.status, r.read().decode()


def served_not_after(port, certs, starttls_postgres=False):
    """notAfter of the certificate a server on 127.0.0.1:port presents."""
    if starttls_postgres:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "postgres",
                            "-CAfile", certs["ca"], "-verify_return_error"],
                           input="", capture_output=True, text=True, timeout=30)
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
        assert m, r.stdout + r.stderr
        return not_after(pem_text=m.group(0))
    ctx = client_ctx(certs, certs["client"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            der = t.getpeercert(binary_form=True)
    return not_after(pem_text=ssl.DER_cert_to_PEM_cert(der))


def test_bad_certificates_refused_at_start(tls_cluster, certs):
    """A certificate that does not name the member's addresses, or is not of ca_file: `pgha agent
    --check` and the start itself say which file and why, before PostgreSQL is touched."""
    cases = [
        ("elsewhere", ['cert_file "%s" does not name [node] api_address "127.0.0.1"' % certs["elsewhere"][0],
                       "HINT: issue the certificate with subjectAltName = IP:127.0.0.1"]),
        ("foreign", ['cert_file "%s" is not signed by ca_file "%s"' % (certs["foreign"][0], certs["ca"])]),
    ]
    for cert, wants in cases:
        bad = Node(tls_cluster, "bad-" + cert, {"tls.cert_file": certs[cert][0], "tls.key_file": certs[cert][1],
                                                "tls.ca_file": certs["ca"]})
        for args, rc in ((["--check"], 2), ([], 1)):
            r = subprocess.run([PGHA_BIN, "agent", "-c", bad.conf_path, *args], capture_output=True, text=True,
                               timeout=30)
            assert r.returncode == rc, r.stdout + r.stderr
            for want in wants:
                assert want in r.stderr, r.stderr
        assert not os.path.exists(bad.data_dir)


def test_cluster_over_verified_https(tls_cluster, certs):
    node = tls_cluster.nodes["a1"]
    status, body = get(f"https://127.0.0.1:{node.api_port}/cluster", client_ctx(certs, certs["client"]))
    assert status == 200
    want = not_after(certs["node"][0])
    members = {m["name"]: m for m in __import__("json").loads(body)["members"]}
    assert sorted(members) == NAMES
    for name, m in members.items():
        assert m["api_url"] == f"https://127.0.0.1:{tls_cluster.nodes[name].api_port}", m
        assert m["tls_not_after"] == want, m


def test_refused_without_a_good_client_certificate(tls_cluster, certs):
    url = f"https://127.0.0.1:{tls_cluster.nodes['a2'].api_port}/cluster"
    for cert in (None, certs["foreign"]):
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
            get(url, client_ctx(certs, cert))
    # A client that does not verify the server gets nothing more.
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        get(url, loose)
    log = tls_cluster.nodes["a2"].log()
    assert "TLS handshake with 127.0.0.1:" in log and "failed" in log


def test_plain_http_dropped(tls_cluster, certs):
    node = tls_cluster.nodes["a3"]
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=10) as s:
        s.sendall(b"GET /cluster HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    assert b"HTTP/1" not in got and b"members" not in got, got[:200]
    assert time.monotonic() - t0 < 5
    wait_until("the drop logged", lambda: "sent plain HTTP to the TLS port" in node.log(), timeout=10)
    # ... and the server goes on.
    assert node.api("/health")[0] == 200


def test_expiry_in_ctl_list_and_metrics(tls_cluster, certs):
    want = not_after(certs["node"][0])
    day = time.strftime("%Y-%m-%d", time.gmtime(want))
    out = tls_cluster.ctl("list").stdout
    assert "CERT EXPIRES" in out, out
    for name in NAMES:
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert day in line, out
    # Two days left: under 30, so each member gets a warning line.
    assert out.count("TLS certificate: expires in 1 day, on ") == 3, out
    node = tls_cluster.nodes["a1"]
    _, text = get(f"https://127.0.0.1:{node.api_port}/metrics", client_ctx(certs, certs["client"]))
    assert "# TYPE pgha_tls_cert_expiry_timestamp_seconds gauge" in text
    assert "# HELP pgha_tls_cert_expiry_timestamp_seconds " in text
    for link in ("postgresql", "api"):
        m = re.search(r'^pgha_tls_cert_expiry_timestamp_seconds\{[^}]*link="%s",file="%s"\} (\S+)$'
                      % (link, re.escape(certs["node"][0])), text, re.M)
        assert m, text
        assert int(float(m.group(1))) == want


def sighup_all(cluster, mark):
    before = {n: len(node.log()) for n, node in cluster.nodes.items()}
    for node in cluster.nodes.values():
        node.proc.send_signal(signal.SIGHUP)
    for n, node in cluster.nodes.items():
        wait_until(f"{n} to log {mark!r}", lambda node=node, n=n: mark in node.log()[before[n]:], timeout=30)
    return before


def test_rotation_then_bad_file_refused(tls_cluster, certs):
    d = certs["dir"]
    old = not_after(certs["node"][0])
    # A new certificate (new serial, one more day) for the same key, written over the files in use.
    with open(os.path.join(d, "node.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "3", "-extfile", "node.ext", "-out", "node.new.pem", cwd=d)
    os.replace(os.path.join(d, "node.new.pem"), certs["node"][0])
    new = not_after(certs["node"][0])
    assert new > old
    sighup_all(tls_cluster, "SIGHUP: [tls] reloaded")
    for name, node in tls_cluster.nodes.items():
        assert served_not_after(node.api_port, certs) == new, name
        wait_until(f"{name}'s PostgreSQL to present the new certificate",
                   lambda node=node: served_not_after(node.pg_port, certs, starttls_postgres=True) == new,
                   timeout=20)
    wait_until("the member records to show the new expiry",
               lambda: all(m.get("tls_not_after") == new for m in tls_cluster.members().values()), timeout=30)
    assert time.strftime("%Y-%m-%d", time.gmtime(new)) in tls_cluster.ctl("list").stdout

    # A key that does not match: refused on reload, naming the files; the new certificate stays in use.
    key = certs["node"][1]
    saved = open(key).read()
    other_key = certs["foreign"][1]
    shutil.copyfile(other_key, key)
    os.chmod(key, 0o600)
    try:
        before = sighup_all(tls_cluster, "SIGHUP: [tls] reload refused")
        for name, node in tls_cluster.nodes.items():
            log = node.log()[before[name]:]
            assert f'key_file "{key}" does not match cert_file "{certs["node"][0]}"' in log, log
            assert "keep the certificate in use" in log
            assert served_not_after(node.api_port, certs) == new
            assert served_not_after(node.pg_port, certs, starttls_postgres=True) == new
    finally:
        with open(key, "w") as f:
            f.write(saved)
        os.chmod(key, 0o600)
    # Garbage in the CA bundle: refused too, naming ca_file.
    with open(certs["ca"]) as f:
        ca_text = f.read()
    with open(certs["ca"], "a") as f:
        # (Text between PEM blocks is allowed, as in every CA bundle: a broken block is not.)
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    try:
        before = sighup_all(tls_cluster, "SIGHUP: [tls] reload refused")
        log = tls_cluster.nodes["a1"].log()[before["a1"]:]
        assert f'ca_file "{certs["ca"]}": not PEM certificates only' in log, log
    finally:
        with open(certs["ca"], "w") as f:
            f.write(ca_text)
    assert get(f"https://127.0.0.1:{tls_cluster.nodes['a1'].api_port}/health",
               client_ctx(certs, certs["client"]))[0] == 200


def test_failsafe_round_over_https(tls_cluster):
    """etcd goes away: the leader's POST /failsafe (bearer token, client certificate) reaches both
    other members over HTTPS, they vouch, and it stays primary."""
    leader = tls_cluster.leader()
    node = tls_cluster.nodes[leader]
    mark = len(node.log())
    tls_cluster.etcd.stop()
    try:
        wait_until("failsafe mode", lambda: node.api("/status")[1].get("failsafe_active"), timeout=30)
        log = node.log()[mark:]
        assert "all 2 other members answered and none reaches etcd: staying primary" in log, log[-3000:]
        assert "failsafe: https://" not in log, log[-3000:]   # no "<url> said no"
    finally:
        tls_cluster.etcd.start()
    tls_cluster.wait_streaming(NAMES, timeout=60)
    assert tls_cluster.leader() == leader


def test_failover_elects_over_https(tls_cluster, certs):
    old = tls_cluster.leader()
    others = [n for n in NAMES if n != old]
    marks = {n: len(tls_cluster.nodes[n].log()) for n in others}
    tls_cluster.nodes[old].stop()   # releases the leader key: the others elect
    try:
        def new_leader():
            v = tls_cluster.view()
            return v.get("leader") if v.get("leader") in others else None
        winner = wait_until("a new leader", new_leader, timeout=90)
        # The winner asked the other member over HTTPS (its api_url is https://, and the call
        # presents a client certificate, which that API demands) and had its answer.
        log = tls_cluster.nodes[winner].log()[marks[winner]:]
        assert re.search(r"election: this member is the most advanced that answered \(.*, [1-9]\d* of \d+ others "
                         r"answered\)", log), log[-3000:]
        # (The old leader, shutting down, may be asked too and not answer.)
        loser = next(n for n in others if n != winner)
        assert f"election: no answer from {tls_cluster.nodes[loser].api_url()}" not in log, log[-3000:]
        tls_cluster.wait_streaming(others, timeout=60)
    finally:
        tls_cluster.nodes[old].start()
    tls_cluster.wait_streaming(NAMES, timeout=120)
