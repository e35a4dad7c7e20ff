#!/usr/bin/env python3
"""Planned region switch benchmark: a primary cluster and its standby cluster swap roles under
write load, --rounds times, alternating directions; pgha and Patroni side by side in one run.

pgha      two 2-member clusters, east (e1, e2) and west (w1, w2), each with its own etcd,
          configured symmetrically as tests/integration/test_cluster_switchover.py does: both
          name the other's members in [standby_cluster] primary_hosts and keep a slot for the
          other ([cluster] standby_slots); east is made primary with `ctl promote-cluster --force`
          before its agents start, west bootstraps as its standby cluster. Agents with the test
          defaults (ttl 9 s, loop_wait 1 s).
          Switch: `pgha ctl -c <primary member conf> switchover-cluster --to <standby member conf>
          --force --json` (writes held: its ms.writes_held).
Patroni   3.0.x (Debian), two 2-member clusters, each with its own etcd (bench/patroni_bench.py,
          --patroni-profile, default ttl10: ttl 10, loop_wait 1, retry_timeout 3); west
          bootstrapped as a Patroni standby cluster of east (bootstrap.dcs.standby_cluster: host,
          port of east's leader, primary_slot_name west_standby, create_replica_methods
          [basebackup]); each keeps a permanent physical slot for the other (dynamic `slots`).
          Switch, the way Patroni's maintainers and users describe it (there is no command for it
          in 3.0; patronictl demote-cluster / promote-cluster came in 4.1, PR #3405, and do these
          same two config edits):
            1. make the primary cluster a standby cluster of the other: PATCH /config
               {"standby_cluster": {"host", "port" (the other's standby leader),
               "primary_slot_name", "create_replica_methods": ["basebackup"]}} on its REST API
               (what `patronictl edit-config -s standby_cluster.host=...` writes), and wait until
               its leader runs again, as a standby (bounded, 60 s; Patroni stops it with an
               immediate shutdown and starts it as a standby leader; --patroni-promote at-once
               goes on as soon as its /cluster shows standby_leader, which it does at once);
            2. promote the other: PATCH /config {"standby_cluster": null} (removing the section,
               https://github.com/patroni/patroni/issues/1096), and wait until its leader runs as
               a primary (bounded, 60 s).
          A member that does not stream again REPAIR_AFTER (45) s after the switch is
          reinitialized as an operator would (`patronictl reinit`: POST /reinitialize, force, which
          re-clones it); the round then counts as one that needed manual work.
          Demote first, then promote: the order of the users' procedure in
          https://github.com/patroni/patroni/issues/2814 and of 4.1's demote-cluster then
          promote-cluster; promoting first would run two primaries. Making an active cluster a
          standby one: https://github.com/patroni/patroni/issues/1923 (answered with #1660, where
          the maintainer notes that Patroni stops the demoted leader with an immediate shutdown
          and suggests pausing the cluster and stopping PostgreSQL by hand first for a clean one;
          this bench follows the plain config edit, which is what the procedures above do).

Load (the same for both): --clients threads (bench/switchover.py's Load), each on its own
connection committing `INSERT INTO so_bench (client, seq) ... RETURNING inet_server_port()` one at
a time, --think s apart, reconnecting after an error (0.1 s later). Both sides connect directly
to PostgreSQL with one libpq multi-host string naming all four members and
target_session_attrs=read-write (no proxy on either side), so a client finds whichever member is
primary; while none is, its connection attempts fail (counted as client errors).

Figures, per round and summarised:
  writes held          pgha: ms.writes_held of --json (pause to resume); Patroni: none reported
  switch time          pgha: ctl's wall time; Patroni: first PATCH -> new leader runs as primary
  longest writer gap   the longest time a client waited between two acknowledged commits
                       (client view; retries and reconnects included), in the round's window
  client errors        failed commits + failed connection attempts in the round's window
  acked commits lost   after the round, every row any client saw acknowledged (by any server) must
                       be on the new primary: the ones that are not (checked, not assumed)
  old primary streams  request -> the old primary's walreceiver streams from the new primary
                       (bounded, 120 s; never: the round failed, that side stops)
  re-cloned            members whose data directory changed inode, or whose log says it was
                       removed / moved aside ("Removing data directory", "moving the data
                       directory aside"); rewinds are counted apart (pg_rewind keeps the directory)
A round is complete when the switch returned ok, the old primary streams from the new one, and
every member of both clusters streams again (bounded). A failed round is printed as such and ends
that side (the rest of its rounds are not run); nothing waits unbounded.

Usage: /usr/bin/python3 bench/cluster_switch.py [--rounds 4] [--clients 4] [--think 0.01]
                  [--only pgha|patroni] [--patroni-profile ttl10]
                  [--patroni-promote after-standby|at-once] [--keep]
Needs the built binary (make; PGHA_BIN, default build/pgha) and scripts/install-deps.sh --bench
(patroni, python3-etcd); run as root (PostgreSQL and Patroni run as the OS user postgres).
Everything listens on 127.0.0.1 on free ports and is stopped by PID at the end.

Measured (`make -j2 && /usr/bin/python3 bench/cluster_switch.py`, non-ASan build, 2 cores shared
with other work, load average 5-8; 210 s for the whole run; docs/TWO_REGIONS.md, "Side by side
with Patroni"), medians / max of 4 rounds:
                                       pgha            Patroni 3.0.2     pgha/Patroni
  rounds completed                     4/4             4/4
    of which needed a reinit by hand   0               1
  writes held (ctl --json)             1.13 / 1.54 s   n/a
  switch time                          1.27 / 1.85 s   3.53 / 4.31 s     0.36
  longest writer gap                   1.16 / 1.66 s   3.48 / 4.13 s     0.33
  client errors (direct connections)   48              152               0.32
  acknowledged commits lost            0               0
  old primary streams after            1.72 / 2.18 s   8.62 / 9.00 s     0.20
  members re-cloned / rewound          0 / 0           1 / 1
(Patroni's round 1: the promoted cluster lacked the old leader's last, unacknowledged, WAL; the
old leader was rewound, its cluster's other member never streamed again until reinitialized.)
An earlier run (load 4-6, 135 s): ratios 0.40, 0.37, 0.25, 0.22; nothing rewound or re-cloned.
With --patroni-promote at-once Patroni's switch takes 0.3-0.5 s, and is a race: 12 of 14 such rounds
were clean; in 2 the promoted cluster lacked the old leader's last WAL (8 acknowledged commits
lost in one, 1.4 kB of WAL; the other's rows went unchecked), the old leader was rewound and its
cluster's other member, whose timeline forked before its replay point, never streamed again
until reinitialized (re-cloned).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
os.environ.setdefault("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))

import psycopg  # noqa: E402

from conftest import (PGHA_BIN, Cluster, Etcd, leader_with_role, make_base_dir,  # noqa: E402
                      wait_until)
from switchover import TABLE, Load, cpu_sample, err_text, tail  # noqa: E402  (bench/switchover.py)
from test_cluster_switchover import ctl_c, data_dir_id, hosts, streams_from  # noqa: E402

STEADY = 2.0           # steady load before each switch
WINDOW_TAIL = 0.5      # a round's window ends this long after every client committed on the new primary
STREAM_WAIT = 120      # the old primary must stream from the new one within this
READY_WAIT = 180       # every member of both clusters streaming again
REPAIR_AFTER = 45      # Patroni: a member not streaming this long after the switch is reinitialized
RECLONE_MARKS = ("moving the data directory aside", "Removing data directory")
REWIND_MARKS = ("rewinding the data directory", "running pg_rewind from")
SYSTEM_LABEL = {"pgha": "pgha", "patroni": "Patroni"}
OTHER = {"east": "west", "west": "east"}


class MultiHostLoad(Load):
    """bench/switchover.py's Load, connecting to whichever of the members is read-write."""

    def __init__(self, ports, password, n, think):
        super().__init__(None, password, n, think)
        self.ports = list(ports)

    def _connect(self):
        return psycopg.connect(host=",".join("127.0.0.1" for _ in self.ports),
                               port=",".join(str(p) for p in self.ports),
                               target_session_attrs="read-write", user="postgres",
                               password=self.password, dbname="postgres", connect_timeout=3,
                               autocommit=True, prepare_threshold=None)


def in_recovery(node):
    return node.sql("SELECT pg_is_in_recovery()")[0][0]


def current_primary(nodes):
    """The member running as a primary (one that does not answer yet is skipped), or None."""
    for n in nodes.values():
        try:
            if not in_recovery(n):
                return n
        except Exception:
            pass
    return None


def streams_ok(primary_cluster, standby_cluster, lead, slead):
    """lead a running primary, slead streaming from it, every other member from its own leader."""
    if in_recovery(lead) or not streams_from(slead, lead):
        return False
    for c, up in ((primary_cluster, lead), (standby_cluster, slead)):
        for n in c.nodes.values():
            if n is not up and not streams_from(n, up):
                return False
    return True


# ---------------------------------------------------------------- pgha

class PghaPair:
    def __init__(self, base, args):
        self.args = args
        self.etcds, self.clusters = {}, {}
        for name in ("east", "west"):
            d = os.path.join(base, name)
            os.makedirs(d)
            os.chmod(d, 0o755)
            self.etcds[name] = Etcd(d).start()
            self.clusters[name] = Cluster(d, self.etcds[name], name=name)
        east, west = self.clusters["east"], self.clusters["west"]
        west.su_pw, west.repl_pw, west.su_pw_file, west.repl_pw_file = \
            east.su_pw, east.repl_pw, east.su_pw_file, east.repl_pw_file
        self.su_pw = east.su_pw
        for n in ("e1", "e2"):
            east.add(n)
        for n in ("w1", "w2"):
            west.add(n)
        for mine, other in ((east, west), (west, east)):
            for node in mine.nodes.values():
                node.extra = {"standby_cluster.primary_hosts": hosts(other),
                              "standby_cluster.primary_slot_name": f"{mine.name}_standby",
                              "cluster.standby_slots": f"{other.name}_standby",
                              "parameters.max_connections": str(max(30, args.clients + 22))}
                node.write_conf(node.extra)
        self.primary = "east"

    def describe(self):
        r = subprocess.run([PGHA_BIN, "--version"], capture_output=True, text=True, timeout=30)
        v = (r.stdout or r.stderr).strip() or "pgha"
        return f"{v}; agents with the test defaults (ttl 9s, loop_wait 1s); no proxy"

    def up(self):
        east, west = self.clusters["east"], self.clusters["west"]
        r = ctl_c(east.nodes["e1"], "promote-cluster", "--force")
        if r.returncode != 0:
            raise RuntimeError(f"promote-cluster: {r.stderr}")
        for n in east.nodes.values():
            n.start()
        east.wait_streaming(list(east.nodes), timeout=180)
        for n in west.nodes.values():
            n.start()
        leader_with_role(west, "replica", timeout=300)
        return self.ready(timeout=300)

    def nodes(self):
        return {n.name: n for c in self.clusters.values() for n in c.nodes.values()}

    def leaders(self):
        p, s = self.clusters[self.primary], self.clusters[OTHER[self.primary]]
        return p.nodes[p.leader()], s.nodes[s.leader()]

    def ready(self, timeout):
        """(primary leader, standby leader) once all four stream; bounded."""
        p, s = self.clusters[self.primary], self.clusters[OTHER[self.primary]]

        def ok():
            lead, slead = self.leaders()
            return (lead, slead) if streams_ok(p, s, lead, slead) else None
        return wait_until("every member of both clusters streaming", ok, timeout=timeout)

    def switch(self, lead, slead):
        """(ok, writes_held s or None, detail)."""
        r = ctl_c(lead, "switchover-cluster", "--to", slead.conf_path, "--force", "--json", timeout=120)
        try:
            out = json.loads(r.stdout)
        except ValueError:
            out = None
        ok = r.returncode == 0 and out is not None and out.get("ok") is True
        held = out["ms"]["writes_held"] / 1000 if out and out.get("ms", {}).get("writes_held", -1) >= 0 else None
        if ok:
            self.primary = OTHER[self.primary]
        return ok, held, (json.dumps(out.get("ms")) if ok else (r.stdout + r.stderr).strip())

    def logs(self):
        return [n.log_path for n in self.nodes().values()] + [e.log_path for e in self.etcds.values()]

    def stop(self):
        errs = []
        for name in (OTHER[self.primary], self.primary):
            for what, fn in ((f"{name} agents", self.clusters[name].stop_all), (f"{name} etcd", self.etcds[name].stop)):
                try:
                    fn()
                except Exception as e:
                    errs.append(f"stopping {what}: {e!r}")
        return errs


# ---------------------------------------------------------------- Patroni

class PatroniPair:
    def __init__(self, base, args):
        import patroni_bench
        self.pb = patroni_bench
        self.args = args
        self.base = base
        self.params = dict(patroni_bench.PG_PARAMETERS, max_connections=max(30, args.clients + 22))
        self.etcds, self.clusters = {}, {}
        self.dirs = {}
        for name in ("east", "west"):
            d = os.path.join(base, name)
            os.makedirs(d)
            os.chmod(d, 0o755)
            self.dirs[name] = d
            self.etcds[name] = Etcd(d).start()
        self.primary = "east"

    def describe(self):
        t = self.pb.PROFILES[self.args.patroni_profile]
        return (f"{self.pb.patroni_version()} (profile {self.args.patroni_profile}: ttl {t['ttl']}s, "
                f"loop_wait {t['loop_wait']}s, retry_timeout {t['retry_timeout']}s), etcd3; no proxy; "
                f"promote {self.args.patroni_promote}")

    def _cluster(self, name, extra):
        c = self.pb.PatroniCluster(self.dirs[name], self.etcds[name], self.args.patroni_profile,
                                   scope=name, parameters=self.params,
                                   dcs_extra=dict(extra, slots={f"{OTHER[name]}_standby": {"type": "physical"}}))
        self.clusters[name] = c
        return c

    def up(self):
        east = self._cluster("east", {})
        for n in ("e1", "e2"):
            east.add(n).start()
        lead = east.nodes[east.wait_streaming(["e1", "e2"], timeout=180)]
        west = self._cluster("west", {"standby_cluster": self.standby_conf("west", lead)})
        west.su_pw, west.repl_pw = east.su_pw, east.repl_pw
        self.su_pw = east.su_pw
        for n in ("w1", "w2"):
            west.add(n).start()
        return self.ready(timeout=300)

    @staticmethod
    def standby_conf(me, upstream):
        return {"host": upstream.host, "port": upstream.pg_port, "primary_slot_name": f"{me}_standby",
                "create_replica_methods": ["basebackup"]}

    def nodes(self):
        return {n.name: n for c in self.clusters.values() for n in c.nodes.values()}

    def leader_of(self, name, role):
        c = self.clusters[name]
        for m in c.view().get("members", []):
            if m.get("role") == role and m["name"] in c.nodes:
                return c.nodes[m["name"]]
        return None

    def leaders(self):
        return self.leader_of(self.primary, "leader"), self.leader_of(OTHER[self.primary], "standby_leader")

    def ready(self, timeout):
        p, s = self.clusters[self.primary], self.clusters[OTHER[self.primary]]

        def ok():
            lead, slead = self.leaders()
            return (lead, slead) if lead and slead and streams_ok(p, s, lead, slead) else None
        return wait_until("every member of both clusters streaming", ok, timeout=timeout)

    def patch_config(self, name, body):
        """PATCH /config on the first member of cluster name that answers (what patronictl
        edit-config does through the REST API)."""
        last = None
        for node in self.clusters[name].nodes.values():
            try:
                status, text = node.api_post("/config", body, timeout=10, method="PATCH")
                if status == 200:
                    return
                last = f"HTTP {status}: {text.strip()}"
            except Exception as e:
                last = err_text(e)
        raise RuntimeError(f"PATCH /config on {name}: {last}")

    def switch(self, lead, slead):
        frm, to = self.primary, OTHER[self.primary]
        t0 = time.monotonic()
        try:
            self.patch_config(frm, {"standby_cluster": self.standby_conf(frm, slead)})
            # Patroni's /cluster calls the leader standby_leader as soon as the config says so;
            # the operator waits until its PostgreSQL runs again, as a standby (unless
            # --patroni-promote at-once).
            wait_until(f"{lead.name} to run as {frm}'s standby leader",
                       lambda: self.leader_of(frm, "standby_leader") is lead and (
                           self.args.patroni_promote == "at-once" or in_recovery(lead)),
                       timeout=60, interval=0.1)
            t_demoted = time.monotonic() - t0
            self.patch_config(to, {"standby_cluster": None})
            wait_until(f"{slead.name} to run as a primary", lambda: not in_recovery(slead), timeout=60, interval=0.05)
        except Exception as e:
            return False, None, err_text(e)
        self.primary = to
        return True, None, f"demoted after {t_demoted:.2f} s, promoted after {time.monotonic() - t0:.2f} s"

    def repair(self):
        """What an operator does when a member does not stream again: `patronictl reinit` (POST
        /reinitialize, force), which re-clones it. Not possible on a standby leader (#1923).
        Returns the names reinitialized."""
        lead, slead = self.leaders()
        if lead is None or slead is None:
            return []
        done = []
        for c, up in ((self.clusters[self.primary], lead), (self.clusters[OTHER[self.primary]], slead)):
            for n in c.nodes.values():
                if n is up:
                    continue
                try:
                    if streams_from(n, up):
                        continue
                except Exception:
                    pass
                status, text = n.api_post("/reinitialize", {"force": True}, timeout=30)
                if status == 200:
                    done.append(n.name)
                else:
                    print(f"    reinitialize {n.name}: HTTP {status}: {text.strip()}", flush=True)
        return done

    def logs(self):
        return [n.log_path for n in self.nodes().values()] + [e.log_path for e in self.etcds.values()]

    def stop(self):
        errs = []
        for name in (OTHER[self.primary], self.primary):
            for what, fn in ((f"{name} patroni", self.clusters[name].stop_all if name in self.clusters else None),
                             (f"{name} etcd", self.etcds[name].stop)):
                if fn is None:
                    continue
                try:
                    fn()
                except Exception as e:
                    errs.append(f"stopping {what}: {e!r}")
        return errs


# ---------------------------------------------------------------- one system

def log_text(node):
    try:
        with open(node.log_path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def run_system(system, args):
    res = {"system": system, "rounds": [], "error": None, "load": None, "describe": None,
           "lost_total": None, "loadavg": [os.getloadavg()]}
    base = make_base_dir()
    pair = load = None
    ok = False
    cpu0 = cpu_sample()
    t_begin = time.monotonic()
    lost_seen = set()
    try:
        pair = (PghaPair if system == "pgha" else PatroniPair)(base, args)
        res["describe"] = pair.describe()
        print(f"{SYSTEM_LABEL[system]}: {res['describe']}", flush=True)
        lead, slead = pair.up()
        lead.sql(f"CREATE TABLE {TABLE} (client int, seq int, t timestamptz DEFAULT now(), "
                 "PRIMARY KEY (client, seq))")
        lead, slead = pair.ready(timeout=READY_WAIT)
        nodes = pair.nodes()
        load = res["load"] = MultiHostLoad([n.pg_port for n in nodes.values()], pair.su_pw,
                                           args.clients, args.think).start()
        wait_until("every client to commit", lambda: load.all_committed_on(lead.pg_port, time.monotonic() - 1),
                   timeout=60, interval=0.05)
        for r in range(args.rounds):
            lead, slead = pair.ready(timeout=READY_WAIT)
            res["loadavg"].append(os.getloadavg())
            frm = pair.primary
            inodes = {name: data_dir_id(n) for name, n in nodes.items()}
            log_len = {name: len(log_text(n)) for name, n in nodes.items()}
            time.sleep(STEADY)
            t0 = time.monotonic()
            try:
                sw_ok, held, detail = pair.switch(lead, slead)
            except Exception as e:
                sw_ok, held, detail = False, None, err_text(e)
            t1 = time.monotonic()
            rnd = {"n": r + 1, "from": frm, "to": OTHER[frm], "old": lead.name, "new": slead.name, "t0": t0,
                   "t1": t1, "ok": sw_ok, "held": held, "detail": detail, "resumed": None, "streams": None,
                   "lost": None, "recloned": [], "rewound": [], "manual": [], "failure": None if sw_ok else "switch failed"}
            res["rounds"].append(rnd)
            if sw_ok:
                try:
                    wait_until(f"every client to commit on {slead.name}",
                               lambda: load.all_committed_on(slead.pg_port, t0), timeout=60, interval=0.02)
                    rnd["resumed"] = time.monotonic()
                except AssertionError:
                    rnd["failure"] = "clients did not all commit on the new primary within 60 s"
                try:
                    wait_until(f"{lead.name} to stream from {slead.name}", lambda: streams_from(lead, slead),
                               timeout=STREAM_WAIT, interval=0.1)
                    rnd["streams"] = time.monotonic() - t0
                except AssertionError:
                    rnd["failure"] = rnd["failure"] or f"the old primary did not stream within {STREAM_WAIT} s"
            rnd["t_end"] = (rnd["resumed"] or time.monotonic()) + WINDOW_TAIL
            time.sleep(WINDOW_TAIL)
            if rnd["failure"] is None:
                repair = getattr(pair, "repair", None)
                try:
                    pair.ready(timeout=REPAIR_AFTER if repair else READY_WAIT)
                except AssertionError:
                    rnd["manual"] = repair() if repair else []
                    if not rnd["manual"]:
                        rnd["failure"] = f"not every member streaming within {REPAIR_AFTER if repair else READY_WAIT} s"
                if rnd["manual"] and rnd["failure"] is None:
                    try:
                        pair.ready(timeout=READY_WAIT)
                    except AssertionError:
                        rnd["failure"] = f"not every member streaming {READY_WAIT} s after reinit of {rnd['manual']}"
            # Every acknowledged row must be on the primary now (the new one, or the old one back).
            acked = {(c, s) for c in range(load.n) for s in list(load.acked[c])}
            try:
                now_primary = wait_until("a primary to check the rows on", lambda: current_primary(nodes), timeout=30)
                rows = set(now_primary.sql(f"SELECT client, seq FROM {TABLE}"))
                missing = acked - rows
                rnd["lost"] = len(missing - lost_seen)
                lost_seen |= missing
            except Exception as e:
                rnd["failure"] = rnd["failure"] or f"could not check the rows: {err_text(e)}"
            for name, n in nodes.items():
                new_log = log_text(n)[log_len[name]:]
                try:
                    changed = data_dir_id(n) != inodes[name]
                except OSError:
                    changed = True
                if changed or any(m in new_log for m in RECLONE_MARKS):
                    rnd["recloned"].append(name)
                if any(m in new_log for m in REWIND_MARKS):
                    rnd["rewound"].append(name)
            print_round(system, rnd, load)
            if rnd["failure"]:
                print(f"    {system}: round {r + 1} failed ({rnd['failure']}); no more rounds on this side", flush=True)
                break
        time.sleep(STEADY)
        load.stop()
        res["lost_total"] = len(lost_seen)
        ok = True
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
        print(f"  {system} FAILED: {res['error']}", flush=True)
    finally:
        if load is not None and not load.stop_ev.is_set():
            load.stop(timeout=30)
        errs = pair.stop() if pair is not None else []
        for e in errs:
            ok = False
            print(f"  {system}: {e}", file=sys.stderr)
        res["loadavg"].append(os.getloadavg())
        c1 = cpu_sample()
        res["cpu_busy"] = 1 - (c1[1] - cpu0[1]) / max(1, c1[0] - cpu0[0])
        res["wall"] = time.monotonic() - t_begin
        failed_round = any(r["failure"] for r in res["rounds"])
        if not ok or failed_round:
            for p in (pair.logs() if pair is not None else []):
                print(f"\n===== {p} (tail) =====\n{tail(p, 2000)}", file=sys.stderr)
        if ok and not failed_round and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"  {system}: kept {base}", file=sys.stderr, flush=True)
    return res


def round_window_figures(load, rnd):
    """(longest gap between acknowledged commits, client errors) in the round's window."""
    w0, w1 = rnd["t0"], rnd["t_end"]
    gap, errors = 0.0, 0
    for recs in load.recs:
        last_ok = None
        for kind, a, b, _, _ in recs:
            if kind != "ok":
                if a <= w1 and b >= w0:
                    errors += 1
                continue
            if last_ok is not None and last_ok <= w1 and b >= w0:
                gap = max(gap, b - last_ok)
            last_ok = b
    return gap, errors


def print_round(system, rnd, load):
    rnd["gap"], rnd["errors"] = round_window_figures(load, rnd)
    held = f"writes held {rnd['held']:.2f} s, " if rnd["held"] is not None else ""
    streams = f"{rnd['streams']:.2f} s" if rnd["streams"] is not None else "never"
    print(f"  {system:7s} round {rnd['n']}: {rnd['from']} -> {rnd['to']} ({rnd['old']} -> {rnd['new']}): "
          + ("ok, " if rnd["ok"] else "FAILED, ")
          + f"{held}switch {rnd['t1'] - rnd['t0']:.2f} s, longest gap {rnd['gap']:.2f} s, errors {rnd['errors']}, "
          f"acked lost {rnd['lost'] if rnd['lost'] is not None else 'n/a'}, old primary streams after {streams}, "
          f"re-cloned {','.join(rnd['recloned']) or 'none'}, rewound {','.join(rnd['rewound']) or 'none'}"
          + (f", reinit by hand {','.join(rnd['manual'])}" if rnd["manual"] else ""),
          flush=True)
    print(f"    ({rnd['detail'][:400]})", flush=True)


# ---------------------------------------------------------------- figures

def rate(load):
    return sum(len(a) for a in load.acked) / max(1e-9, load.t_stop - load.t_start)


def med_max(v, unit=" s"):
    if not v:
        return "n/a"
    return f"{statistics.median(v):.2f} / {max(v):.2f}{unit}"


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--think", type=float, default=0.01, help="seconds between a client's commits")
    ap.add_argument("--only", choices=("pgha", "patroni"), default=None)
    ap.add_argument("--patroni-profile", default="ttl10", help="default, ttl10 or fast (bench/patroni_bench.py)")
    ap.add_argument("--patroni-promote", choices=("after-standby", "at-once"), default="after-standby",
                    help="promote the other Patroni cluster once the old leader runs as a standby (default), "
                         "or as soon as its /cluster says standby_leader (right after the first PATCH)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (logs)")
    args = ap.parse_args()
    if args.rounds < 1 or args.clients < 1:
        ap.error("--rounds and --clients must be at least 1")
    systems = [args.only] if args.only else ["pgha", "patroni"]
    if "patroni" in systems:
        import patroni_bench
        if args.patroni_profile not in patroni_bench.PROFILES:
            ap.error(f"unknown Patroni profile {args.patroni_profile!r}")
        if not os.path.exists(patroni_bench.PATRONI_BIN):
            sys.exit(f"{patroni_bench.PATRONI_BIN} not found: run scripts/install-deps.sh --bench")

    t_start = time.monotonic()
    print(f"{args.rounds} region switches per system, {args.clients} clients (think {args.think * 1000:.0f} ms), "
          f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for s in systems:
        results[s] = run_system(s, args)
        r = results[s]
        la = [x[0] for x in r["loadavg"]]
        print(f"  ({s} took {r['wall']:.0f} s; machine CPU busy {r['cpu_busy'] * 100:.0f}% over it, "
              f"1-min load average {min(la):.2f}..{max(la):.2f})", flush=True)

    def rounds(s):
        return results[s]["rounds"]

    def complete(s):
        return [r for r in rounds(s) if not r["failure"]]

    rows = [
        ("rounds completed", lambda s: f"{len(complete(s))}/{args.rounds}", None),
        ("  of which needed a reinit by hand", lambda s: str(sum(1 for r in rounds(s) if r["manual"])), None),
        ("writes held (ctl --json), med/max", lambda s: med_max([r["held"] for r in rounds(s) if r["held"] is not None]),
         lambda s: [r["held"] for r in rounds(s) if r["held"] is not None]),
        ("switch time, med/max", lambda s: med_max([r["t1"] - r["t0"] for r in rounds(s) if r["ok"]]),
         lambda s: [r["t1"] - r["t0"] for r in rounds(s) if r["ok"]]),
        ("longest writer gap, med/max", lambda s: med_max([r["gap"] for r in rounds(s) if "gap" in r]),
         lambda s: [r["gap"] for r in rounds(s) if "gap" in r]),
        ("client errors (all rounds)", lambda s: str(sum(r.get("errors", 0) for r in rounds(s))),
         lambda s: sum(r.get("errors", 0) for r in rounds(s))),
        ("acknowledged commits lost", lambda s: str(sum(r["lost"] or 0 for r in rounds(s)))
         + ("" if all(r["lost"] is not None for r in rounds(s)) else " (+ unchecked)"), None),
        ("old primary streams after, med/max", lambda s: med_max([r["streams"] for r in rounds(s) if r["streams"]]),
         lambda s: [r["streams"] for r in rounds(s) if r["streams"]]),
        ("members re-cloned (all rounds)", lambda s: str(sum(len(r["recloned"]) for r in rounds(s))), None),
        ("members rewound (all rounds)", lambda s: str(sum(len(r["rewound"]) for r in rounds(s))), None),
        ("commits acknowledged", lambda s: str(sum(len(a) for a in results[s]["load"].acked))
         if results[s]["load"] else "n/a", None),
        ("commits per second (whole load)", lambda s: f"{rate(results[s]['load']):.0f}"
         if results[s]["load"] and results[s]["load"].t_stop else "n/a", None),
    ]
    print("\nplanned region switch under load: " + " vs ".join(SYSTEM_LABEL[s] for s in systems))
    w0 = 38
    head = f"{'figure':{w0}s}" + "".join(f"{SYSTEM_LABEL[s]:>24s}" for s in systems)
    if len(systems) == 2:
        head += f"{'pgha/Patroni':>14s}"
    print(head)
    for label, fn, num in rows:
        line = f"{label:{w0}s}" + "".join(f"{fn(s):>24s}" for s in systems)
        if len(systems) == 2 and num:
            a, b = num("pgha"), num("patroni")
            a = statistics.median(a) if isinstance(a, list) and a else (None if isinstance(a, list) else a)
            b = statistics.median(b) if isinstance(b, list) and b else (None if isinstance(b, list) else b)
            line += f"{a / b:14.2f}" if a is not None and b else f"{'n/a':>14s}"
        print(line)
    if len(systems) == 2:
        print("(ratios of the medians where a cell shows med/max; below 1: pgha is shorter / fewer)")
    for s in systems:
        for r in rounds(s):
            if r["failure"]:
                print(f"{SYSTEM_LABEL[s]}: round {r['n']} ({r['from']} -> {r['to']}) failed: {r['failure']}")
        if results[s]["error"]:
            print(f"{SYSTEM_LABEL[s]}: stopped: {results[s]['error']}")
    print(f"\ntotal wall time {time.monotonic() - t_start:.0f} s; 1-min load average now {os.getloadavg()[0]:.2f}")
    if any(results[s]["error"] for s in systems) or ("pgha" in results and any(r["failure"] for r in rounds("pgha"))):
        sys.exit(1)


if __name__ == "__main__":
    main()
