"""An old leader rejoins by pg_rewind, never by a re-clone, and never serves
reads from a history the cluster does not have (issue 8, item 7).

Rounds on one 3-member cluster under write load: the leader frozen (its
agent and PostgreSQL together, conftest.frozen) past its ttl, then resumed;
the leader's node killed (agent and PostgreSQL), then started again (once with standby.signal
left in its unclean directory); and, on members in network namespaces
(test_partition.py's), the leader's link cut, then restored. After each round the old
leader must have been rewound in place (same data directory inode, no
pg_basebackup, no `.diverged` copy), stream again within a bounded time of the
fault healing, and must not have accepted a connection as a hot standby
before its rewind finished. Its PostgreSQL log must show none of the
symptoms of a wrong rewind ("not a child of this server's history", "does
not contain minimum recovery point", single-user standby mode).

A `<data>.diverged` copy left by a re-clone is shown in the member record and
`ctl list` until the member streams again, then removed."""
import os
import signal
import threading
import time

import psycopg

from conftest import Writer, frozen, pg_pid, signal_instance, wait_until
from test_failover import cluster_wait_new_leader
from test_partition import net_cluster  # noqa: F401 (a fixture: members in network namespaces)

# A short ttl keeps the rounds quick; loop_wait + 2 * retry_timeout <= ttl.
TIMING = {"cluster.ttl": "6s", "cluster.loop_wait": "1s", "cluster.retry_timeout": "2s"}
NAMES = ("n1", "n2", "n3")
REJOIN_BOUND_S = 30     # from the fault healing to streaming again (ASan build, shared CPUs)
WRONG_REWIND = ("is not a child of this server's history", "does not contain minimum recovery point",
                "standby mode is not supported by single-user servers",
                "forked off current database system timeline")


def pg_log_path(node):
    return os.path.join(node.dir, f"{node.name}.postgresql.log")


def read_from(path, offset):
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return ""


def size_of(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


class HotStandbyWatch:
    """Connects to a member's PostgreSQL every 50 ms; records each time it
    answered as a hot standby while its agent log (from `log_offset`) did not
    yet say pg_rewind finished."""

    def __init__(self, node, log_offset):
        self.node = node
        self.log_offset = log_offset
        self.early = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _loop(self):
        n = self.node
        while not self.stop_flag.is_set():
            try:
                with psycopg.connect(host=n.host, port=n.pg_port, user="postgres",
                                     password=n.cluster.su_pw, dbname="postgres",
                                     connect_timeout=1, autocommit=True) as c:
                    in_recovery = c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                if in_recovery:
                    rewound = "pg_rewind finished" in read_from(n.log_path, self.log_offset)
                    if not rewound:
                        self.early.append(time.monotonic())
            except psycopg.Error:
                pass
            time.sleep(0.05)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)


def freeze_and_resume(cluster, node, others):
    # The agent and PostgreSQL resume together, as after a real pause (conftest.frozen says why).
    with frozen(node) as how:
        new = cluster_wait_new_leader(cluster, node.name, others, timeout=60)
        time.sleep(1)   # the new leader takes writes while the old one is frozen
    print(f"{node.name} frozen and resumed ({how})")
    return new


def kill_and_restart(cluster, node, others):
    pid = pg_pid(node)
    node.proc.send_signal(signal.SIGKILL)
    signal_instance(pid, signal.SIGKILL)
    node.proc.wait(10)
    new = cluster_wait_new_leader(cluster, node.name, others, timeout=60)
    time.sleep(1)
    node.start()
    return new


def kill_and_restart_unclean_standby_config(cluster, node, others):
    """As kill_and_restart, with standby.signal in the unclean directory (what a
    standby killed during recovery leaves): pg_rewind's single-user crash
    recovery refuses standby mode unless the agent removes it first."""
    pid = pg_pid(node)
    node.proc.send_signal(signal.SIGKILL)
    signal_instance(pid, signal.SIGKILL)
    node.proc.wait(10)
    new = cluster_wait_new_leader(cluster, node.name, others, timeout=60)
    open(os.path.join(node.data_dir, "standby.signal"), "w").close()
    time.sleep(1)
    node.start()
    return new


def partition_and_heal(net):
    def fault(cluster, node, others):
        net.cut(node.name)
        try:
            new = cluster_wait_new_leader(cluster, node.name, others, timeout=60)
            time.sleep(1)
        finally:
            net.heal(node.name)
        return new
    fault.__name__ = "partition_and_heal"
    return fault


def one_round(cluster, fault, k):
    leader = cluster.wait_streaming(list(NAMES), timeout=60)
    # A writer per round: leadership moves back and forth, so the acceptance
    # windows are compared within a round (ids kept apart between rounds).
    writer = Writer(cluster)
    writer.next_id = k * 10_000_000
    writer.start()
    try:
        took = fault_round(cluster, fault, leader)
        new = cluster.leader()
        n_before = len(writer.acked_on(new))
        wait_until("writes on the new leader", lambda: len(writer.acked_on(new)) > n_before, timeout=30)
    finally:
        writer.stop()
    writer.assert_no_split_brain()
    return took


def fault_round(cluster, fault, leader):
    node = cluster.nodes[leader]
    others = [n for n in NAMES if n != leader]
    inode = os.stat(node.data_dir).st_ino
    agent_off, pg_off = size_of(node.log_path), size_of(pg_log_path(node))
    time.sleep(1)   # writes on the leader that the others may or may not have received
    new = fault(cluster, node, others)
    healed = time.monotonic()
    watch = HotStandbyWatch(node, agent_off).start()
    try:
        cluster.wait_streaming(list(NAMES), timeout=REJOIN_BOUND_S + 30)
    finally:
        watch.stop()
    took = time.monotonic() - healed
    log = read_from(node.log_path, agent_off)
    pglog = read_from(pg_log_path(node), pg_off)
    print(f"{fault.__name__}: {leader} -> {new}; old leader streams {took:.1f}s after the fault healed")
    assert cluster.leader() == new
    assert "pg_rewind finished" in log, log[-4000:]
    assert "pg_rewind failed" not in log, log[-4000:]
    assert "pg_basebackup started" not in log, "the old leader was re-cloned"
    assert "moved the diverged data directory" not in log
    assert os.stat(node.data_dir).st_ino == inode, "the data directory was replaced"
    assert not os.path.exists(node.data_dir + ".diverged")
    for symptom in WRONG_REWIND:
        assert symptom not in pglog, f"{symptom!r} in {leader}'s PostgreSQL log:\n{pglog[-4000:]}"
    assert not watch.early, f"{leader} answered as a hot standby {len(watch.early)} time(s) before its rewind"
    assert took <= REJOIN_BOUND_S, f"{leader} streamed only {took:.1f}s after the fault healed"
    return took


def test_old_leaders_rejoin_by_rewind_under_writes(cluster):
    for n in NAMES:
        cluster.add(n, TIMING).start()
    cluster.wait_streaming(list(NAMES), timeout=180)
    faults = (freeze_and_resume, kill_and_restart, freeze_and_resume, kill_and_restart,
              kill_and_restart_unclean_standby_config)
    times = [one_round(cluster, fault, k) for k, fault in enumerate(faults, 1)]
    print("rejoin times:", ", ".join(f"{t:.1f}s" for t in times))
    # Every member is on the leader's timeline.
    ms = cluster.members()
    assert len({m["timeline"] for m in ms.values()}) == 1, ms


def test_partitioned_leader_rejoins_by_rewind_under_writes(net_cluster):  # noqa: F811 (the fixture)
    net, cluster = net_cluster
    for node in cluster.nodes.values():
        node.start()
    cluster.wait_streaming(list(NAMES), timeout=180)
    took = one_round(cluster, partition_and_heal(net), 1)
    print(f"partition: rejoined {took:.1f}s after the link came back")


def test_diverged_copy_shown_until_the_member_streams_then_removed(cluster):
    names = NAMES[:2]
    for n in names:
        cluster.add(n, TIMING).start()
    leader = cluster.wait_streaming(list(names), timeout=180)
    name = next(n for n in names if n != leader)
    node = cluster.nodes[name]
    copy = node.data_dir + ".diverged"
    cluster.ctl("pause", "--force")
    try:
        node.stop()
        # What a re-clone leaves behind (actions.c moves the diverged directory there).
        os.makedirs(copy)
        with open(os.path.join(copy, "PG_VERSION"), "w") as f:
            f.write("15\n")
        node.start()
        # Paused: the member stays stopped, and its record names the copy.
        wait_until("the copy in the member record",
                   lambda: cluster.members().get(name, {}).get("diverged_copy") == copy, timeout=30)
        listing = cluster.ctl("list").stdout
        assert f"diverged copy: {copy}" in listing, listing
        assert os.path.isdir(copy)
    finally:
        cluster.ctl("resume", "--force")
    cluster.wait_streaming(list(names), timeout=60)
    wait_until("the copy removed", lambda: not os.path.exists(copy), timeout=30)
    wait_until("the record without it", lambda: "diverged_copy" not in cluster.members()[name], timeout=30)
    assert "removed the diverged copy" in node.log()
