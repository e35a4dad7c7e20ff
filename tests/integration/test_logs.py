"""`log_format = json`: one JSON object per line from the agent and the proxy, for log pipelines.

A one-member cluster and a proxy, both with log_format = json: every line either writes is a
JSON object with time, level, component, cluster, member and message; the bootstrap is logged as
a leader_change event with its fields; the proxy logs the leader it routes to and a failed login
with the client's address and the SQLSTATE. Nothing secret appears.
"""
import json

import psycopg
import pytest

from conftest import Cluster, Etcd, Proxy, shared_base, wait_until


def lines(text):
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            o = json.loads(raw)
        except ValueError:
            raise AssertionError(f"not a JSON line: {raw!r}")
        assert isinstance(o, dict), raw
        out.append(o)
    return out


@pytest.fixture(scope="module")
def json_cluster(request):
    with shared_base(request) as base:
        etcd = Etcd(base).start()
        c = Cluster(base, etcd, name="js")
        proxy = None
        try:
            c.add("j1", {"node.log_format": "json"}).start()
            c.wait_streaming(["j1"], timeout=120)
            proxy = Proxy(c, {"proxy.log_format": "json"}).start()
            yield c, proxy
        finally:
            if proxy is not None:
                proxy.stop()
            c.stop_all()
            etcd.stop()


def test_agent_writes_json_lines(json_cluster):
    c, _ = json_cluster
    node = c.nodes["j1"]
    events = wait_until("the bootstrap's leader_change event",
                        lambda: [o for o in lines(node.log()) if o.get("event") == "leader_change"], timeout=30)
    objs = lines(node.log())
    assert len(objs) > 10
    for o in objs:
        assert {"time", "level", "component", "cluster", "member", "message"} <= o.keys(), o
        assert o["component"] == "agent" and o["cluster"] == "js" and o["member"] == "j1", o
        assert o["level"] in ("debug", "info", "warn", "error", "fatal"), o
    ev = events[0]
    assert ev["kind"] == "bootstrap" and ev["new_leader"] == "j1" and ev["timeline"] == "1", ev
    assert c.su_pw not in node.log()


def test_proxy_writes_json_lines_with_event_fields(json_cluster):
    c, proxy = json_cluster
    with pytest.raises(psycopg.OperationalError):
        proxy.connect(password="wrong-password").close()

    def failed():
        return [o for o in lines(proxy.log()) if o.get("event") == "auth_failed"]
    ev = wait_until("the failed login in the proxy's log", failed, timeout=15)[0]
    assert ev["sqlstate"] == "28P01" and ev["user"] == "postgres" and ev["client_addr"].startswith("127.0.0.1"), ev
    assert ev["component"] == "proxy" and ev["cluster"] == "js" and ev["level"] == "warn", ev
    leader = [o for o in lines(proxy.log()) if o.get("event") == "leader"]
    assert leader and leader[0]["leader"] == "j1" and leader[0]["leader_address"].startswith("127.0.0.1:"), leader
    assert "wrong-password" not in proxy.log() and c.su_pw not in proxy.log()
