"""`pgha proxy` client authentication against a real one-node cluster:

- a users file holding only a SCRAM verifier (copied from pg_authid): the
  proxy logs in to PostgreSQL with the ClientKey a client's SCRAM login gave
  it (passthrough), and says clearly when it cannot;
- auth_query: users not in the users file are looked up on the leader as
  auth_user, SCRAM and md5 roles log in, a wrong password and an unknown user
  get the same answer, and auth_user's password (from a file) shows up
  nowhere.
"""
import os
import signal
import subprocess
import time

import psycopg
import pytest
from psycopg import sql

from conftest import Proxy, wait_until


@pytest.fixture
def single(cluster):
    cluster.add("n1").start()
    leader = cluster.wait_streaming(["n1"], timeout=60)
    return cluster, cluster.nodes[leader]


def connect(proxy, user, password, dbname="postgres", ro=False, **kw):
    return psycopg.connect(host="127.0.0.1", port=proxy.ro_port if ro else proxy.port, user=user,
                           password=password, dbname=dbname, connect_timeout=10, **kw)


def login_error(proxy, user, password, **kw):
    """The message of the error a login gets (the login must fail)."""
    with pytest.raises(psycopg.OperationalError) as exc:
        connect(proxy, user, password, **kw).close()
    return str(exc.value)


def verifier(node, role):
    return node.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))[0][0]


def run_sql(node, *statements):
    """Statements in one session (SET password_encryption must hold for the next one)."""
    with node.connect(autocommit=True) as c:
        for st in statements:
            c.execute(st)


def create_role(node, role, password, encryption="scram-sha-256"):
    run_sql(node, f"SET password_encryption = '{encryption}'",
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))


def test_proxy_auth_scram_passthrough_with_a_verifier_only_users_file(single):
    cluster, node = single
    v = verifier(node, "postgres")
    assert v.startswith("SCRAM-SHA-256$4096:")
    proxy = Proxy(cluster, {"proxy.log_level": "debug"}, users={"postgres": v}).start()
    try:
        # Four clients inside transactions at once: four server connections, each
        # logged in with the key the first client's login gave the proxy.
        conns = [connect(proxy, "postgres", cluster.su_pw, autocommit=True) for _ in range(4)]
        try:
            for c in conns:
                c.execute("BEGIN")
            pids = {c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in conns}
            assert len(pids) == 4, pids
            for c in conns:
                c.execute("COMMIT")
            conns[0].execute("CREATE TABLE t_passthrough (id int)")
            for i, c in enumerate(conns):
                c.execute("INSERT INTO t_passthrough VALUES (%s)", (i,))
            assert conns[3].execute("SELECT count(*) FROM t_passthrough").fetchone() == (4,)
        finally:
            for c in conns:
                c.close()
        # Another pool of the same user (read-only port, falls back to the leader): same key.
        with connect(proxy, "postgres", cluster.su_pw, ro=True) as c:
            assert c.execute("SELECT current_user").fetchone() == ("postgres",)
        assert "password authentication failed for user \"postgres\"" in \
            login_error(proxy, "postgres", cluster.su_pw + "x")

        # The role's verifier changes on the server (same password, new salt): a new
        # server login cannot pass the key through, and says so.
        run_sql(node, sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(cluster.su_pw)))
        assert verifier(node, "postgres") != v
        msg = login_error(proxy, "postgres", cluster.su_pw, dbname="template1")
        assert "postgres" in msg and "passthrough impossible" in msg, msg
        log = proxy.log()
        assert "passthrough impossible" in log
        assert cluster.su_pw not in log
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]

    # With no client login to learn from (trust), the proxy says it has no key.
    v = verifier(node, "postgres")
    proxy = Proxy(cluster, {"auth.auth_type": "trust"}, users={"postgres": v}).start()
    try:
        msg = login_error(proxy, "postgres", "")
        assert "cannot log in to PostgreSQL as \"postgres\" with SCRAM" in msg, msg
        assert "no client of this user has logged in with SCRAM" in msg, msg
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def _lookup_roles(node):
    """auth_user "lookup" reading secrets through a SECURITY DEFINER function
    (PgBouncer's recipe), a SCRAM role, and an md5 role whose logins the
    server takes with md5."""
    create_role(node, "lookup", "lookup-pw-7f3a")
    run_sql(node,
            """CREATE FUNCTION public.user_lookup(i_username text, OUT uname text, OUT phash text)
               RETURNS record LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
               BEGIN
                   SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = i_username
                   INTO uname, phash;
                   RETURN;
               END $$""",
            "REVOKE ALL ON FUNCTION public.user_lookup(text) FROM PUBLIC",
            "GRANT EXECUTE ON FUNCTION public.user_lookup(text) TO lookup")
    create_role(node, "app_scram", "scram-pw-1")
    create_role(node, "app_md5", "md5-pw-2", encryption="md5")
    assert verifier(node, "app_md5").startswith("md5")
    # pgha writes scram-sha-256 everywhere: let app_md5 log in with md5 (until the next restart).
    hba = os.path.join(node.data_dir, "pg_hba.conf")
    with open(hba) as f:
        text = f.read()
    with open(hba, "w") as f:
        f.write("host all app_md5 127.0.0.1/32 md5\n" + text)
    node.sql("SELECT pg_reload_conf()")


def test_proxy_auth_query_scram_and_md5_roles(single):
    cluster, node = single
    _lookup_roles(node)
    proxy = Proxy(cluster, {"auth.auth_type": "md5", "auth.auth_user": "lookup",
                            "auth.auth_query": "SELECT uname, phash FROM public.user_lookup($1)",
                            "proxy.log_level": "debug"},
                  users={"lookup": "lookup-pw-7f3a"}).start()
    try:
        # A SCRAM role (asked for SCRAM although auth_type = md5: its secret is a verifier),
        # over two server connections.
        a = connect(proxy, "app_scram", "scram-pw-1", autocommit=True)
        b = connect(proxy, "app_scram", "scram-pw-1", autocommit=True)
        try:
            a.execute("BEGIN")
            b.execute("BEGIN")
            pa = a.execute("SELECT pg_backend_pid(), current_user").fetchone()
            pb = b.execute("SELECT pg_backend_pid(), current_user").fetchone()
            assert pa[1] == pb[1] == "app_scram"
            assert pa[0] != pb[0]
            a.execute("COMMIT")
            b.execute("COMMIT")
        finally:
            a.close()
            b.close()
        # An md5 role: md5 to the proxy, and its md5 hash answers the server's md5 challenge.
        with connect(proxy, "app_md5", "md5-pw-2") as c:
            assert c.execute("SELECT current_user").fetchone() == ("app_md5",)
        # Wrong passwords and a user that does not exist: one answer.
        msgs = {
            "app_scram": login_error(proxy, "app_scram", "nope"),
            "app_md5": login_error(proxy, "app_md5", "nope"),
            "nobody": login_error(proxy, "nobody", "nope"),
        }
        for user, msg in msgs.items():
            assert f'password authentication failed for user "{user}"' in msg, msg
        shapes = {m.replace(u, "USER") for u, m in msgs.items()}
        assert len(shapes) == 1, shapes
        log = proxy.log()
        assert 'auth_query: user "nobody": auth_query returned no password (NULL' in log   # the function's NULL row
        # md5 mode, but users come from PostgreSQL (SCRAM verifiers): the unknown user runs a mock SCRAM exchange.
        assert 'authentication failed for user "nobody": SCRAM authentication failed' in log
        assert 'authentication failed for user "app_md5": MD5 authentication failed' in log
        for secret in ("lookup-pw-7f3a", "scram-pw-1", "md5-pw-2"):
            assert secret not in log
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_proxy_auth_query_password_file_default_query_and_failures(single):
    cluster, node = single
    auth_pw = "authq-" + os.urandom(8).hex()
    create_role(node, "authq", auth_pw)
    run_sql(node, "GRANT SELECT ON pg_catalog.pg_shadow TO authq")
    create_role(node, "app_scram", "scram-pw-1")
    create_role(node, "app_md5", "md5-pw-2", encryption="md5")
    pw_file = os.path.join(cluster.base, "secrets", "authq")
    with open(pw_file, "w") as f:
        f.write(auth_pw + "\n")
    os.chmod(pw_file, 0o600)
    # The users file has nobody: every user is looked up (default query: pg_shadow).
    proxy = Proxy(cluster, {"auth.auth_user": "authq", "auth.auth_user_password_file": pw_file,
                            "proxy.log_level": "debug"}, users={}).start()
    try:
        for _ in range(3):   # the first login looks up, the next ones reuse the answer
            with connect(proxy, "app_scram", "scram-pw-1") as c:
                assert c.execute("SELECT current_user").fetchone() == ("app_scram",)
        # SCRAM mode: an unknown user runs the whole (mock) exchange, and fails like a wrong password.
        wrong = login_error(proxy, "app_scram", "nope")
        unknown = login_error(proxy, "no_such_user", "nope")
        assert wrong.replace("app_scram", "USER") == unknown.replace("no_such_user", "USER"), (wrong, unknown)
        assert "password authentication failed" in unknown
        # An md5 hash cannot check a SCRAM login: refused the same way.
        assert login_error(proxy, "app_md5", "md5-pw-2").replace("app_md5", "USER") == \
            unknown.replace("no_such_user", "USER")
        log = proxy.log()
        assert 'auth_query: user "no_such_user": no such user' in log
        assert "user does not exist (mock authentication)" in log
        assert "MD5 hash, which cannot be used for SCRAM" in log

        # auth_user's password: not in the proxy's argv or environment, nor in any log or ps.
        pid = proxy.proc.pid
        for name in ("cmdline", "environ"):
            with open(f"/proc/{pid}/{name}", "rb") as f:
                assert auth_pw.encode() not in f.read()
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, timeout=10).stdout
        assert auth_pw not in ps
        with open(proxy.conf_path) as f:
            assert auth_pw not in f.read()
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]

    # A lookup that cannot run (auth_user's password is wrong): a clear error, the reason logged.
    with open(pw_file, "w") as f:
        f.write("not-" + auth_pw + "\n")
    bad = Proxy(cluster, {"auth.auth_user": "authq", "auth.auth_user_password_file": pw_file}, users={})
    bad.log_path = os.path.join(cluster.base, "proxy-bad.log")
    bad.start()
    try:
        msg = login_error(bad, "app_scram", "scram-pw-1")
        assert 'cannot authenticate user "app_scram" now: looking it up on the server failed' in msg, msg
        log = bad.log()
        assert 'auth_query for user "app_scram" failed' in log
        assert 'password authentication failed for user "authq"' in log
        # The right password in the file and SIGHUP: lookups work again.
        with open(pw_file, "w") as f:
            f.write(auth_pw + "\n")
        bad.proc.send_signal(signal.SIGHUP)
        wait_until("the proxy to reload", lambda: "reloaded" in bad.log(), timeout=10)
        with connect(bad, "app_scram", "scram-pw-1") as c:
            assert c.execute("SELECT current_user").fetchone() == ("app_scram",)
    finally:
        assert bad.stop() == 0, bad.log()[-3000:]

    # A lookup slower than auth_query_timeout: the client gets its error in about that time.
    slow = Proxy(cluster, {"auth.auth_user": "authq", "auth.auth_user_password_file": pw_file,
                           "auth.auth_query_timeout": "1s",
                           "auth.auth_query": "SELECT usename, passwd FROM pg_catalog.pg_shadow, "
                                              "pg_catalog.pg_sleep(5) WHERE usename = $1"}, users={})
    slow.log_path = os.path.join(cluster.base, "proxy-slow.log")
    slow.start()
    try:
        t0 = time.monotonic()
        msg = login_error(slow, "app_scram", "scram-pw-1")
        assert time.monotonic() - t0 < 4, msg
        assert "looking it up on the server failed" in msg, msg
        assert 'auth_query for user "app_scram" failed' in slow.log()
    finally:
        assert slow.stop() == 0, slow.log()[-3000:]
    for root, _, files in os.walk(cluster.base):
        for name in files:
            if name.endswith(".log"):
                with open(os.path.join(root, name), errors="replace") as f:
                    assert auth_pw not in f.read(), name
