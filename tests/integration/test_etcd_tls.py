"""etcd over TLS with client certificates: a 3-member etcd whose members require a certificate
signed by their CA (--client-cert-auth), certificates made here by openssl. An agent and ctl
connect with [etcd] ca_file/cert_file/key_file (ctl: --etcd-*-file and PGHA_ETCD_*_FILE);
a client without a certificate, or that does not trust etcd's CA, is refused with a clear error,
and a wrong TLS setting is refused at start."""
import os
import subprocess

import pytest

from conftest import (PGHA_BIN, Cluster, EtcdCluster, Proxy, openssl_ca, openssl_cert, shared_base, wait_until)


@pytest.fixture(scope="module")
def env(request):
    with shared_base(request) as base:
        d = os.path.join(base, "certs")
        os.makedirs(d)
        ca = openssl_ca(d, "etcd-ca")
        other_ca = openssl_ca(d, "other-ca")
        server = openssl_cert(d, "etcd-ca", "etcd-server")
        client = openssl_cert(d, "etcd-ca", "pgha-client", san="DNS:pgha")
        stranger = openssl_cert(d, "other-ca", "stranger", san="DNS:stranger")
        certs = {"ca": ca, "other_ca": other_ca, "client": client, "stranger": stranger}
        etcd = EtcdCluster(base, 3, tls={"ca": ca, "cert": server[0], "key": server[1]}).start()
        cluster = Cluster(base, etcd)
        # The agents are given two of the three members: the third comes from the member list.
        tls = {"etcd.ca_file": ca, "etcd.cert_file": client[0], "etcd.key_file": client[1],
               "etcd.sync_interval": "1s", "etcd.endpoints": ",".join(m.url for m in etcd.members[:2])}
        try:
            # Cluster.ctl (wait_streaming, leader) reads the TLS files from the environment.
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("PGHA_ETCD_CA_FILE", ca)
                mp.setenv("PGHA_ETCD_CERT_FILE", client[0])
                mp.setenv("PGHA_ETCD_KEY_FILE", client[1])
                cluster.add("n1", tls).start()
                cluster.add("n2", tls).start()
                cluster.wait_streaming(["n1", "n2"], timeout=120)
                yield etcd, cluster, certs
        finally:
            cluster.stop_all()
            etcd.stop()


def ctl(etcd, *args, env_tls=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGHA_ETCD_")}
    env.update(env_tls or {})
    return subprocess.run([PGHA_BIN, "ctl", "--etcd", etcd.url, "--cluster", "t", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_agents_work_over_tls_with_client_certificates(env):
    etcd, cluster, certs = env
    leader = cluster.leader()
    assert leader in ("n1", "n2")
    # Unary calls and the watch both go over TLS: a switchover needs the standby's watch.
    other = "n2" if leader == "n1" else "n1"
    cluster.ctl("switchover", "--to", other, "--force", "--wait", "60")
    assert cluster.wait_streaming(["n1", "n2"], timeout=60) == other
    for n in cluster.nodes.values():
        log = n.log()
        assert "etcd watch on /pgha/t/ established at https://" in log
        # Auto-sync over https: the third member's https URL, from the member list.
        wait_until(f"{n.name} to learn the third member", lambda: "etcd endpoints changed" in n.log()
                   and etcd.members[2].url in n.log(), timeout=10)


def test_ctl_flags_and_environment(env):
    etcd, cluster, certs = env
    ca, (cert, key) = certs["ca"], certs["client"]
    r = ctl(etcd, "--etcd-ca-file", ca, "--etcd-cert-file", cert, "--etcd-key-file", key, "list")
    assert r.returncode == 0, r.stderr
    assert "n1" in r.stdout and "n2" in r.stdout
    r = ctl(etcd, "list", env_tls={"PGHA_ETCD_CA_FILE": ca, "PGHA_ETCD_CERT_FILE": cert,
                                   "PGHA_ETCD_KEY_FILE": key})
    assert r.returncode == 0, r.stderr


def test_client_without_certificate_refused(env):
    etcd, cluster, certs = env
    r = ctl(etcd, "--etcd-ca-file", certs["ca"], "list")
    assert r.returncode != 0
    assert "it wants a client certificate: set the etcd cert and key files" in r.stderr, r.stderr


def test_client_not_trusting_etcd_ca_refused(env):
    etcd, cluster, certs = env
    cert, key = certs["client"]
    r = ctl(etcd, "--etcd-ca-file", certs["other_ca"], "--etcd-cert-file", cert, "--etcd-key-file", key, "list")
    assert r.returncode != 0
    assert "the etcd CA file must hold the CA that signed etcd's server certificate" in r.stderr, r.stderr
    # Without a CA file the system's CAs are used, which do not know this CA either.
    r = ctl(etcd, "--etcd-cert-file", cert, "--etcd-key-file", key, "list")
    assert r.returncode != 0
    assert "certificate" in r.stderr, r.stderr


def test_certificate_of_another_ca_refused_by_etcd(env):
    etcd, cluster, certs = env
    cert, key = certs["stranger"]
    r = ctl(etcd, "--etcd-ca-file", certs["ca"], "--etcd-cert-file", cert, "--etcd-key-file", key, "list")
    assert r.returncode != 0
    assert "etcd may have refused this client's certificate" in r.stderr, r.stderr


def agent_check(cluster, extra):
    node = cluster.add("bad", extra)
    r = subprocess.run([PGHA_BIN, "agent", "-c", node.conf_path, "--check"], capture_output=True, text=True,
                       timeout=30)
    del cluster.nodes["bad"]
    return r


def test_wrong_tls_settings_refused_at_start(env):
    etcd, cluster, certs = env
    cert, key = certs["client"]
    r = agent_check(cluster, {"etcd.ca_file": certs["ca"], "etcd.cert_file": cert})
    assert r.returncode != 0
    assert "[etcd] cert_file is set but [etcd] key_file is not" in r.stderr, r.stderr
    assert "HINT:" in r.stderr
    plain = ",".join(m.url.replace("https://", "http://") for m in etcd.members)
    r = agent_check(cluster, {"etcd.endpoints": plain, "etcd.ca_file": certs["ca"]})
    assert r.returncode != 0
    assert "[etcd] ca_file is set but the etcd endpoint" in r.stderr and "is not https://" in r.stderr, r.stderr
    r = agent_check(cluster, {"etcd.ca_file": "/nonexistent/ca.pem"})
    assert r.returncode != 0
    assert "[etcd] ca_file" in r.stderr and "/nonexistent/ca.pem" in r.stderr, r.stderr
    r = agent_check(cluster, {"etcd.ca_file": certs["ca"], "etcd.cert_file": cert, "etcd.key_file": key})
    assert r.returncode == 0, r.stderr


def test_proxy_tls_settings_checked_at_start(env):
    etcd, cluster, certs = env
    cert, key = certs["client"]
    bad = Proxy(cluster, {"etcd.ca_file": certs["ca"], "etcd.key_file": key}, name="proxy-bad")
    r = subprocess.run([PGHA_BIN, "proxy", "-c", bad.conf_path, "--check"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert "[etcd] key_file is set but [etcd] cert_file is not" in r.stderr, r.stderr
    good = Proxy(cluster, {"etcd.ca_file": certs["ca"], "etcd.cert_file": cert, "etcd.key_file": key},
                 name="proxy-good")
    r = subprocess.run([PGHA_BIN, "proxy", "-c", good.conf_path, "--check"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
