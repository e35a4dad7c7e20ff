"""pgha under a real Prometheus (Debian's `prometheus`, with `promtool`).

The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`, synthetic
series for every alert); every metric they use is documented. A real Prometheus, with those
rules loaded, scrapes the agents and the proxy of a 2-member `pgha up` cluster: every target is up, the values
say who leads and who streams, the proxy routes to the leader, and no alert fires on a healthy
cluster.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request

import pytest

from conftest import UpCluster, free_port, shared_base, stop_process, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "deploy", "prometheus", "pgha-alerts.yml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "pgha-alerts.test.yml")


def test_alert_rules_pass_promtool():
    r = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS: 26 rules found" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["promtool", "test", "rules", RULE_TESTS], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    # Every alert has a unit test.
    with open(RULES) as f:
        alerts = set(re.findall(r"^\s+- alert: (\w+)$", f.read(), re.M))
    with open(RULE_TESTS) as f:
        tested = set(re.findall(r"^\s+alertname: (\w+)$", f.read(), re.M))
    assert alerts and alerts == tested, alerts ^ tested


def test_every_metric_the_rules_use_is_documented():
    with open(RULES) as f:
        used = set(re.findall(r"\b(pgha_\w+)", f.read()))
    with open(os.path.join(ROOT, "docs", "METRICS.md")) as f:
        doc = f.read()
    missing = sorted(m for m in used if f"`{m}`" not in doc and f"`{m}{{" not in doc)
    assert used and not missing, missing


@pytest.fixture(scope="module")
def watched(request):
    with shared_base(request) as base:
        up = UpCluster(base, nodes=2)
        d = tempfile.mkdtemp(prefix="prometheus-", dir=base)
        proc = None
        try:
            up.wait_streaming(timeout=120)
            port = free_port()
            agents = ", ".join(f'"127.0.0.1:{up.api_port(n)}"' for n in up.names)
            conf = os.path.join(d, "prometheus.yml")
            with open(conf, "w") as f:
                f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: pgha-agents
    static_configs: [{{targets: [{agents}]}}]
  - job_name: pgha-proxy
    static_configs: [{{targets: ["127.0.0.1:{up.ports['proxy_metrics_port']}"]}}]
""")
            log = open(os.path.join(base, "prometheus.log"), "ab")
            proc = subprocess.Popen(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={d}/data",
                                     f"--web.listen-address=127.0.0.1:{port}"],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            yield up, f"http://127.0.0.1:{port}"
        finally:
            if proc is not None:
                stop_process(proc, timeout=30)
            assert up.stop() == 0
            shutil.rmtree(d, ignore_errors=True)


def api(url, path, **params):
    q = ("?" + urllib.parse.urlencode(params)) if params else ""
    with urllib.request.urlopen(f"{url}/api/v1/{path}{q}", timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def value(url, query):
    res = api(url, "query", query=query)["result"]
    return float(res[0]["value"][1]) if res else None


def test_prometheus_scrapes_the_agents_and_the_proxy(watched):
    cluster, url = watched

    def all_up():
        targets = api(url, "targets")["activeTargets"]
        return len(targets) == 3 and all(t["health"] == "up" for t in targets)
    wait_until("Prometheus to scrape 2 agents and the proxy", all_up, timeout=60)
    leader = cluster.leader()
    wait_until("a leader and a streaming standby in Prometheus",
               lambda: value(url, "sum(pgha_leader)") == 1 and
               value(url, 'count(pgha_member_role{role="replica"} == 1)') == 1 and
               value(url, "max(pgha_cluster_streaming_standbys)") == 1, timeout=30)
    assert value(url, f'pgha_leader{{member="{leader}"}}') == 1
    assert value(url, f'pgha_proxy_leader{{name="{leader}"}}') == 1
    # PostgreSQL's statistics came along (collected every 5 s).
    wait_until("PostgreSQL's statistics in Prometheus",
               lambda: value(url, "min(pgha_pg_stats_up)") == 1 and
               value(url, f'pgha_pg_replication_streaming{{member="{leader}"}}') == 1, timeout=30)
    # The rules loaded, and a healthy cluster fires none.
    groups = api(url, "rules")["groups"]
    assert [g["name"] for g in groups] == ["pgha"] and len(groups[0]["rules"]) == 26
    firing = [a for a in api(url, "alerts")["alerts"] if a["state"] == "firing"]
    assert firing == [], firing
