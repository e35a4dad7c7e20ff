"""Region preference of the proxy's reads (issue 14, README "Reads in the proxy's region"):
a proxy with `[proxy] region` sends reads to usable standbys of its region,
to other regions' only while none of its own is usable, and brings them home once one is.

One cluster for the file: r1 and r2 in region a, r3 in region b (the leader is r1 or r2: the
other one is "the region-a standby"). r3 is made unusable without dropping a connection: its
WAL receiver is stopped (SIGSTOP) while the leader writes past the proxy's ro_max_lag, so its
member record shows it lagging; SIGCONT lets it catch up."""
import collections
import os
import signal
import threading
import time
import urllib.request

import pytest

from conftest import Proxy, free_port, module_cluster, wait_until

MAX_LAG = 262144   # the proxies' ro_max_lag: 256 kB


@pytest.fixture(scope="module")
def regions(request):
    # A stopped WAL receiver must not be cut off by the leader meanwhile (pgha's default: 10 s).
    extra = {"node.region": "a", "parameters.wal_sender_timeout": "120s"}
    with module_cluster(request, ["r1", "r2"], extra) as (cluster, _):
        cluster.add("r3", {"node.region": "b", "parameters.wal_sender_timeout": "120s"}).start()
        leader = cluster.wait_streaming(["r1", "r2", "r3"], timeout=180)
        yield cluster, leader, next(n for n in ("r1", "r2") if n != leader)


def proxy_in(cluster, name, region=None, metrics_port=None, **opts):
    extra = {"proxy.ro_max_lag": str(MAX_LAG)}
    if region is not None:
        extra["proxy.region"] = region
    if metrics_port is not None:
        extra["proxy.metrics_listen"] = f"127.0.0.1:{metrics_port}"
    extra.update(opts)
    return Proxy(cluster, extra, name=name).start()


def member_of(cluster, port):
    return next(n for n, node in cluster.nodes.items() if node.pg_port == port)


def concurrent_reads(proxy, cluster, n=4, ro=True, begin="BEGIN"):
    """n transactions at once (n servers of the pool): the member each ran on."""
    conns = [proxy.connect(ro=ro, autocommit=True) for _ in range(n)]
    try:
        got = []
        for c in conns:
            c.execute(begin)
            standby, port = c.execute("SELECT pg_is_in_recovery(), inet_server_port()").fetchone()
            assert standby
            got.append(member_of(cluster, port))
        for c in conns:
            c.execute("COMMIT")
        return collections.Counter(got)
    finally:
        for c in conns:
            c.close()


def remote_reads(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("pgha_proxy_ro_reads_remote_total "):
                return int(float(line.split()[1]))
    raise AssertionError("no pgha_proxy_ro_reads_remote_total in /metrics")


class Reader:
    """Two clients reading on the read-only port in turn, a read every 20 ms: where each ran
    (member name), and every error."""

    def __init__(self, proxy, cluster):
        self.proxy, self.cluster = proxy, cluster
        self.where, self.errors = [], []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        conns = [self.proxy.connect(ro=True, autocommit=True) for _ in range(2)]
        try:
            i = 0
            while not self.stop_flag.is_set():
                try:
                    port = conns[i % 2].execute("SELECT inet_server_port()").fetchone()[0]
                    self.where.append(member_of(self.cluster, port))
                except Exception as e:   # counted, and the test fails on it
                    self.errors.append(repr(e))
                i += 1
                time.sleep(0.02)
        finally:
            for c in conns:
                c.close()

    def start(self):
        self.thread.start()
        return self

    def last(self, k):
        """The last k reads' members, once k were made since this was first asked (else None)."""
        w = list(self.where)
        return set(w[-k:]) if len(w) >= k else None

    def wait_all_on(self, member, timeout, after):
        """Seconds until the 10 reads after index `after` and since all ran on member."""
        t0 = time.monotonic()

        def home():
            w = list(self.where)[after:]
            return len(w) >= 10 and set(w[-10:]) == {member}
        wait_until(f"reads to run on {member} only", home, timeout=timeout, interval=0.1)
        return time.monotonic() - t0

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def receiver_pid(node):
    return node.sql("SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0]


def test_no_region_spreads_over_every_standby(regions):
    cluster, _, local_a = regions
    proxy = proxy_in(cluster, "anywhere")
    try:
        got = concurrent_reads(proxy, cluster)
        assert set(got) == {local_a, "r3"}, got
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_region_a_reads_its_standby_only(regions):
    """...and a reload that moves the proxy to region b moves its reads to r3, the servers it
    holds on the region-a standby closed as they fall idle."""
    cluster, _, local_a = regions
    proxy = proxy_in(cluster, "in-a", region="a")
    try:
        for _ in range(3):
            assert concurrent_reads(proxy, cluster) == {local_a: 4}
        with open(proxy.conf_path) as f:
            conf = f.read()
        assert "region = a\n" in conf
        with open(proxy.conf_path, "w") as f:
            f.write(conf.replace("region = a\n", "region = b\n"))
        proxy.proc.send_signal(signal.SIGHUP)
        wait_until("the reload", lambda: 'reads prefer standbys of region "b"' in proxy.log(), timeout=10)
        assert concurrent_reads(proxy, cluster) == {"r3": 4}
    finally:
        assert proxy.stop() == 0, proxy.log()[-3000:]


def test_region_b_reads_leave_and_come_home(regions):
    """Every read of a region-b proxy runs on r3, rw_split's too; while r3 lags past ro_max_lag
    they run on the region-a standby, and once it caught up they come back within seconds;
    no client sees an error."""
    cluster, leader, local_a = regions
    metrics_port = free_port()
    proxy = proxy_in(cluster, "in-b", region="b", metrics_port=metrics_port,
                     **{"proxy.read_your_writes": "on", "proxy.rw_split": "transactions",
                        "proxy.ryw_wait": "2s"})
    r3 = cluster.nodes["r3"]
    try:
        assert concurrent_reads(proxy, cluster) == {"r3": 4}
        # rw_split: a READ ONLY transaction of the read-write port, on the region's standby too.
        assert concurrent_reads(proxy, cluster, n=2, ro=False, begin="BEGIN READ ONLY") == {"r3": 2}
        wait_until("the metrics", lambda: remote_reads(metrics_port) == 0, timeout=10)

        reader = Reader(proxy, cluster).start()
        wait_until("the reader's first reads", lambda: reader.last(10) == {"r3"}, timeout=30)
        pid = receiver_pid(r3)
        os.kill(pid, signal.SIGSTOP)
        try:
            # About 3 MB of WAL that r3 does not receive: past ro_max_lag (256 kB).
            cluster.nodes[leader].sql("CREATE TABLE pad AS SELECT g, repeat('x', 200) AS t "
                                      "FROM generate_series(1, 12000) AS g")
            away = reader.wait_all_on(local_a, timeout=30, after=len(reader.where))
            print(f"reads left r3 (lagging) for {local_a} in {away:.1f} s")
        finally:
            os.kill(pid, signal.SIGCONT)
        back = reader.wait_all_on("r3", timeout=30, after=len(reader.where))
        print(f"reads came back to r3 in {back:.1f} s after it resumed")
        time.sleep(1)
        reader.stop()
        assert reader.errors == [], reader.errors[:5]
        # Counted while away, and no more once home (metrics are rendered each second).
        away_count = wait_until("remote reads counted", lambda: remote_reads(metrics_port), timeout=10)
        home = list(reader.where)[-10:]
        assert set(home) == {"r3"}
        time.sleep(1.5)
        settled = remote_reads(metrics_port)
        assert concurrent_reads(proxy, cluster) == {"r3": 4}
        time.sleep(1.5)
        assert remote_reads(metrics_port) == settled >= away_count > 0
    finally:
        cluster.nodes[leader].sql("DROP TABLE IF EXISTS pad")
        assert proxy.stop() == 0, proxy.log()[-3000:]
