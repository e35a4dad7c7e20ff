"""The dashboard (/ui) in a real browser: headless Chromium driven over its DevTools protocol.

A 2-member `pgha up` cluster (its agents, its proxy). Chromium loads the page from a standby's agent: the DOM shows
the cluster, the leader, both members with their roles, the proxy, etcd and the bootstrap in the
history; the page fetches
nothing from elsewhere (every request goes to the agent) and a screenshot is taken. The
switchover form refuses without the API token; with it (the confirmation accepted), the
switchover happens and the page shows the new leader.
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
import websocket

from conftest import UpCluster, free_port, shared_base, stop_process, wait_until

NAMES = ["node1", "node2"]


class Browser:
    """Chromium with one page, spoken to over the DevTools protocol (JSON over a websocket)."""

    def __init__(self, base):
        self.dir = tempfile.mkdtemp(prefix="chromium-", dir=base)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={self.dir}", "--window-size=1280,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        page = wait_until("Chromium's DevTools endpoint", self._page, timeout=30)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=10)
        self.next_id = 0
        self.requests = []
        self.call("Network.enable")
        self.call("Page.enable")

    def _page(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as r:
            pages = [p for p in json.loads(r.read()) if p["type"] == "page"]
        return pages[0] if pages else None

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"]["url"])
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
        raise AssertionError(f"{method}: no answer")

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def close(self):
        try:
            self.ws.close()
        finally:
            stop_process(self.proc, timeout=20)
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def board(request):
    with shared_base(request) as base:
        cluster = UpCluster(base, nodes=2)
        b = None
        try:
            cluster.wait_streaming(timeout=120)
            b = Browser(base)
            yield cluster, b
        finally:
            if b is not None:
                b.close()
            assert cluster.stop() == 0


def members_shown(b):
    return b.js("""Array.from(document.querySelectorAll('#members tbody tr')).map(
        r => Array.from(r.cells).slice(0, 3).map(c => c.textContent))""")


def test_the_page_shows_the_cluster(board):
    cluster, b = board
    leader = cluster.leader()
    standby = next(n for n in NAMES if n != leader)
    url = f"http://127.0.0.1:{cluster.api_port(standby)}/ui"
    b.call("Page.navigate", url=url)
    wait_until("the page to show the leader",
               lambda: b.js("document.getElementById('status').textContent") == f"leader {leader}", timeout=20)
    assert b.js("document.getElementById('cluster').textContent") == cluster.name
    want = sorted([[leader, "leader", "running"], [standby, "replica", "streaming"]])
    wait_until("both members, the standby streaming",
               lambda: sorted(members_shown(b)) == want, timeout=20)
    assert b.js("document.querySelector('#history tbody tr').cells[1].textContent") == "bootstrap"
    # The proxy as it registered, and etcd as this agent reaches it.
    wait_until("the proxy in the page", lambda: b.js(
        "Array.from(document.querySelectorAll('#proxies tbody tr')).map(r => r.cells[0].textContent)") == ["proxy"],
        timeout=20)
    # The charts' points carry the proxies' waiting clients (from their records, every 10 s).
    def series():
        with urllib.request.urlopen(f"http://127.0.0.1:{cluster.api_port(standby)}/ui/series", timeout=5) as r:
            pts = json.loads(r.read())["points"]
        # A sample whose statistics query ran out of its time bound (a loaded machine) has no
        # conns/xacts: the next one has them.
        return pts if pts and pts[-1]["proxy_waiting"] == 0 and pts[-1]["conns"] is not None else None
    pts = wait_until("the proxies in the charts' points", series, timeout=45)
    assert pts[-1]["conns"] is not None and pts[-1]["xacts"] is not None, pts[-1]
    etcd_url = f"http://127.0.0.1:{cluster.ports['etcd_client_port']}"
    wait_until("etcd's health in the page", lambda: b.js("document.getElementById('etcd').textContent")
               == f"{etcd_url} up; this agent reaches etcd", timeout=15)
    # Everything the page asked for came from the agent itself.
    origin = f"http://127.0.0.1:{cluster.api_port(standby)}/"
    assert b.requests and all(u.startswith(origin) for u in b.requests), b.requests
    # No token is in the page, and the security headers are there.
    with urllib.request.urlopen(url, timeout=5) as r:
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert cluster.api_token not in r.read().decode()
    shot = base64.b64decode(b.call("Page.captureScreenshot", format="png")["data"])
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10000
    with open(os.path.join(cluster.dir, "dashboard.png"), "wb") as f:
        f.write(shot)


def test_a_switchover_from_the_page(board):
    cluster, b = board
    leader = cluster.leader()
    standby = next(n for n in NAMES if n != leader)
    b.js("window.confirm = () => true")
    # Without the token: refused by the page, nothing asked.
    b.js(f"document.getElementById('so-to').value = '{standby}'; document.getElementById('so-token').value = '';"
         "document.getElementById('ops').requestSubmit()")
    assert "token is needed" in wait_until(
        "the page to ask for the token", lambda: b.js("document.getElementById('so-result').textContent"), timeout=5)
    # A wrong token: the agent refuses (401), the page says so.
    b.js("document.getElementById('so-token').value = 'wrong'; document.getElementById('ops').requestSubmit()")
    wait_until("the refusal", lambda: "Refused (401)" in b.js("document.getElementById('so-result').textContent"),
               timeout=10)
    assert cluster.leader() == leader
    # The cluster's token: the switchover happens, and the page shows the new leader.
    b.js(f"document.getElementById('so-to').value = '{standby}';"
         f"document.getElementById('so-token').value = {json.dumps(cluster.api_token)};"
         "document.getElementById('ops').requestSubmit()")
    wait_until("the switchover to be asked",
               lambda: "asked" in b.js("document.getElementById('so-result').textContent"), timeout=10)
    wait_until("the page to show the new leader",
               lambda: b.js("document.getElementById('status').textContent") == f"leader {standby}", timeout=90)
    cluster.wait_streaming(NAMES, timeout=60)
    assert cluster.leader() == standby
    assert wait_until("the switchover in the page's history",
                      lambda: b.js("document.querySelector('#history tbody tr').cells[1].textContent")
                      == "switchover", timeout=20)


def test_pause_and_resume_from_the_page(board):
    cluster, b = board
    b.js("window.confirm = () => true")
    b.js(f"document.getElementById('so-token').value = {json.dumps(cluster.api_token)};"
         "document.getElementById('pause').click()")
    wait_until("maintenance mode on", lambda: cluster.view().get("paused") is True, timeout=10)
    wait_until("the page to show it", lambda: b.js("document.getElementById('paused').textContent").startswith("on"),
               timeout=10)
    b.js("document.getElementById('resume').click()")
    wait_until("maintenance mode off", lambda: cluster.view().get("paused") is False, timeout=10)
    wait_until("the page to show it", lambda: b.js("document.getElementById('paused').textContent") == "off",
               timeout=10)
    # Without the right token nothing changes.
    b.js("document.getElementById('so-token').value = 'wrong'; document.getElementById('pause').click()")
    wait_until("the refusal", lambda: "Refused (401)" in b.js("document.getElementById('so-result').textContent"),
               timeout=10)
    assert cluster.view().get("paused") is False


def test_a_scheduled_switchover_shows(board):
    cluster, b = board
    leader = cluster.leader()
    other = next(n for n in NAMES if n != leader)
    r = cluster.ctl("switchover", "--to", other, "--at", "+1h", "--force", "--no-wait", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        wait_until("the page to show the scheduled switchover",
                   lambda: f"Switchover {leader} → {other}: scheduled" in b.js("document.getElementById('notes').textContent"),
                   timeout=15)
    finally:
        cluster.ctl("switchover", "--cancel", "--force", check=False)
    wait_until("the page to drop it", lambda: "Switchover" not in b.js("document.getElementById('notes').textContent"),
               timeout=15)
