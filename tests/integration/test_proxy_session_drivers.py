"""Session state in transaction mode (test_proxy_session.py) with the two other drivers the issue
names: node-postgres (npm `pg`) and pgJDBC, each with two clients taking turns on the proxy's
servers. The same script runs directly against PostgreSQL first: the proxy must answer what
PostgreSQL answers."""
import json
import os
import subprocess

import pytest

from conftest import Proxy, module_cluster

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(os.environ.get("PGHA_S3_SERVER_DIR", "/opt/pgha-test-node"), "node_modules")
PGJDBC = "/usr/share/java/postgresql.jar"

# (client, sql, text parameter or None). $1 is written ? for pgJDBC.
SETTINGS = [
    ("a", "SET work_mem = '8MB'", None),
    ("a", "SELECT set_config('app.tenant', $1, false)", "42"),
    ("b", "SHOW work_mem", None),
    ("a", "SHOW work_mem", None),
    ("a", "SELECT current_setting('app.tenant')", None),
    ("b", "SELECT coalesce(current_setting('app.tenant', true), '')", None),
    ("a", "PREPARE q(int) AS SELECT $1 + 1", None),
    ("b", "PREPARE q(int) AS SELECT $1 * 10", None),
    ("a", "EXECUTE q(1)", None),
    ("b", "EXECUTE q(1)", None),
    ("a", "BEGIN", None),
    ("a", "SET LOCAL work_mem = '1MB'", None),
    ("a", "COMMIT", None),
    ("a", "SHOW work_mem", None),
    ("a", "RESET ALL", None),
    ("a", "SHOW work_mem", None),
    ("a", "DEALLOCATE q", None),
    ("a", "EXECUTE q(1)", None),
    ("b", "EXECUTE q(2)", None),
]
LISTEN = [
    ("a", "LISTEN jobs", None),
    ("b", "SELECT pg_notify('jobs', 'one')", None),
    ("b", "SELECT pg_notify('jobs', 'two')", None),
    ("a", "@notifications", "2"),
    ("a", "UNLISTEN *", None),
    ("a", "SELECT count(*) FROM pg_listening_channels()", None),
]


@pytest.fixture(scope="module")
def drivers_cluster(request):
    with module_cluster(request, ["j1"]) as (cluster, _):
        shared = Proxy(cluster, {"proxy.pool_size": "1"}, name="drv1").start()
        two = Proxy(cluster, {"proxy.pool_size": "2"}, name="drv2").start()
        try:
            yield cluster, shared, two
        finally:
            assert shared.stop() == 0, shared.log()[-3000:]
            assert two.stop() == 0, two.log()[-3000:]


def run_node(port, steps, cluster):
    cfg = {"host": "127.0.0.1", "port": port, "user": "postgres", "password": cluster.su_pw,
           "clients": sorted({s[0] for s in steps}),
           "steps": [[who, sql, int(p) if sql == "@notifications" else ([p] if p else None)]
                     for who, sql, p in steps]}
    p = subprocess.run(["node", os.path.join(HERE, "node_pg_session.js"), NODE_MODULES],
                       input=json.dumps(cfg), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"node: {p.stdout} {p.stderr}"
    out = json.loads(p.stdout.strip().splitlines()[-1])
    # A step's answer as one string, as JdbcSession prints it: the first row, or the error's SQLSTATE.
    res = []
    for (who, sql, _), r in zip(steps, out):
        if isinstance(r, dict):
            res.append(f"ERROR:{r['error']}")
        elif sql == "@notifications":
            res.append("|".join(r))
        else:
            res.append("|".join("" if v is None else str(v) for v in r[0]) if r else "")
    return res


def run_jdbc(port, steps, cluster):
    lines = [f"jdbc:postgresql://127.0.0.1:{port}/postgres", "postgres", cluster.su_pw]
    for who, sql, p in steps:
        sql = sql.replace("$1", "?") if p is not None and sql != "@notifications" else sql
        lines.append(f"{who}\t{sql}" + (f"\t{p}" if p is not None else ""))
    p = subprocess.run(["java", "-cp", PGJDBC, os.path.join(HERE, "JdbcSession.java")],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout.splitlines()


@pytest.mark.parametrize("driver", ["node-postgres", "pgjdbc"])
def test_settings_and_sql_prepare_follow_each_client(drivers_cluster, driver):
    cluster, shared, _ = drivers_cluster
    run = run_node if driver == "node-postgres" else run_jdbc
    direct = run(cluster.nodes["j1"].pg_port, SETTINGS, cluster)
    proxied = run(shared.port, SETTINGS, cluster)
    assert proxied == direct, list(zip(SETTINGS, direct, proxied))
    # And what that means, so the comparison cannot pass on two wrong answers.
    answers = dict(zip(range(len(SETTINGS)), proxied))
    assert answers[3] == "8MB" and answers[2] != "8MB"
    assert answers[4] == "42" and answers[5] == ""
    assert (answers[8], answers[9]) == ("2", "10")
    assert answers[13] == "8MB" and answers[15] == answers[2]
    assert answers[17].startswith("ERROR:26000") and answers[18] == "20"


@pytest.mark.parametrize("driver", ["node-postgres", "pgjdbc"])
def test_listen_gets_notifications(drivers_cluster, driver):
    cluster, _, two = drivers_cluster
    run = run_node if driver == "node-postgres" else run_jdbc
    proxied = run(two.port, LISTEN, cluster)
    assert proxied[3] == "one|two", proxied
    assert proxied[5] == "0"
