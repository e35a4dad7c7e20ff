"""TLS for PostgreSQL from the agent's [tls] section: two members with a
private CA and require = on. The standby streams over TLS with
sslmode=verify-full, a plain-text TCP connection is refused by pg_hba.conf,
a verifying client gets in, the local socket is unchanged, and a key that
does not match its certificate stops the agent before PostgreSQL is touched."""
import os
import pwd
import shutil
import subprocess
import tempfile

import psycopg
from psycopg.conninfo import conninfo_to_dict
import pytest

from conftest import PGHA_BIN, Node, module_cluster
from test_proxy_tls import make_ca, make_cert


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="pgha-test-pgtls-", dir="/tmp")
    try:
        ca = make_ca(d, "ca")
        node = make_cert(d, "ca", "node")            # SAN IP:127.0.0.1: both members' host
        other = make_cert(d, "ca", "other")
        yield {"ca": ca, "node": node, "other": other}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tls_extra(certs, key=None):
    return {"tls.cert_file": certs["node"][0], "tls.key_file": key or certs["node"][1],
            "tls.ca_file": certs["ca"], "tls.require": "on"}


@pytest.fixture(scope="module")
def tls_cluster(request, certs):
    with module_cluster(request, ["n1", "n2"], node_extra=tls_extra(certs)) as (cluster, _):
        yield cluster


def test_standby_streams_over_verified_tls(tls_cluster):
    leader = tls_cluster.leader()
    standby = next(n for n in tls_cluster.nodes if n != leader)
    rows = tls_cluster.nodes[leader].sql(
        "SELECT s.ssl, r.application_name FROM pg_stat_ssl s JOIN pg_stat_replication r USING (pid)")
    assert rows == [(True, standby)]
    (conninfo,), = tls_cluster.nodes[standby].sql("SELECT conninfo FROM pg_stat_wal_receiver")
    opts = conninfo_to_dict(conninfo)
    assert (opts["sslmode"], opts["channel_binding"]) == ("verify-full", "require")
    assert opts["sslrootcert"] == os.path.join(tls_cluster.nodes[standby].dir, f"{standby}.ca.crt")


def test_plain_tcp_refused_verified_tls_accepted(tls_cluster, certs):
    node = tls_cluster.nodes[tls_cluster.leader()]
    with pytest.raises(psycopg.OperationalError) as err:
        node.connect(sslmode="disable")
    assert "no pg_hba.conf entry" in str(err.value) and "no encryption" in str(err.value)
    with node.connect(sslmode="verify-full", sslrootcert=certs["ca"]) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    # local rules are kept: the socket needs no TLS
    with node.connect(via_socket=True, sslmode="disable") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_key_copied_for_postgres_only(tls_cluster):
    pg = pwd.getpwnam("postgres")
    for name, node in tls_cluster.nodes.items():
        st = os.stat(os.path.join(node.dir, f"{name}.server.key"))
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, pg.pw_uid if os.geteuid() == 0 else os.geteuid())
        (key_file,), = node.sql("SHOW ssl_key_file")
        assert key_file == os.path.join(node.dir, f"{name}.server.key")


def test_mismatched_key_refused_before_postgres(tls_cluster, certs):
    bad = Node(tls_cluster, "bad", tls_extra(certs, key=certs["other"][1]))
    for args, rc in ((["--check"], 2), ([], 1)):
        r = subprocess.run([PGHA_BIN, "agent", "-c", bad.conf_path, *args], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == rc, r.stdout + r.stderr
        assert certs["other"][1] in r.stderr and "does not match cert_file" in r.stderr, r.stderr
        assert certs["node"][0] in r.stderr, r.stderr
    assert not os.path.exists(bad.data_dir)
    assert not os.path.exists(os.path.join(bad.dir, "bad.server.key"))


def test_switchover_then_old_leader_streams_over_tls(tls_cluster):
    # The candidate's position check, the demoted leader's rejoin (pg_rewind if needed) and its
    # new primary_conninfo all connect with verify-full.
    old = tls_cluster.leader()
    new = next(n for n in tls_cluster.nodes if n != old)
    r = tls_cluster.ctl("switchover", "--to", new, "--force", "--wait", "60", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert tls_cluster.wait_streaming(list(tls_cluster.nodes), timeout=60) == new
    rows = tls_cluster.nodes[new].sql(
        "SELECT s.ssl, r.application_name FROM pg_stat_ssl s JOIN pg_stat_replication r USING (pid)")
    assert rows == [(True, old)]
    (conninfo,), = tls_cluster.nodes[old].sql("SELECT conninfo FROM pg_stat_wal_receiver")
    assert conninfo_to_dict(conninfo)["sslmode"] == "verify-full"
