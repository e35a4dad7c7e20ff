#!/usr/bin/env python3
"""Cost of a metrics scrape: pgha's agent /metrics against postgres_exporter, in one run.

Setup: `pgha up --nodes 2` in a temporary directory. On the leader:
  pgha      GET http://AGENT/metrics: the HA series plus PostgreSQL's statistics (which the
            agent's own thread collects every 5 s off the HA loop; a scrape serves the last
            collection and runs no query).
  exporter  Debian's prometheus-postgres-exporter (0.11, default collectors) against the same
            PostgreSQL through its socket (PGPASSFILE: the password stays in a file): every
            scrape runs its queries.
For each: --scrapes sequential scrapes; the scrape's latency (median, p99), the body size and
series count, and the CPU the scrape costs the serving side: utime+stime of the agent process
(pgha), or of the exporter plus the PostgreSQL backends' (exporter), from /proc, before and
after, divided by the number of scrapes. pgha's background cost (the collection thread, every
5 s) is reported apart: pgha_pg_stats_duration_seconds and the PostgreSQL time it takes.

Usage: /usr/bin/python3 bench/metrics.py [--scrapes 500] [--keep]
Needs the built binary (make), PostgreSQL 15, etcd; the exporter: `scripts/install-deps.sh --bench`
(prometheus-postgres-exporter). Run as root. Everything listens on 127.0.0.1 and is stopped.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PGHA = os.environ.get("PGHA_BIN", os.path.join(HERE, "..", "build", "pgha"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICK


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_series(url, n, pids):
    lat = []
    body = b""
    c0 = cpu_s(pids())
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
        lat.append(time.perf_counter() - t0)
    c1 = cpu_s(pids())
    lat.sort()
    samples = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
    return {"median_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
            "bytes": len(body), "series": len(samples), "cpu_ms": (c1 - c0) * 1000 / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=500)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="pgha-bench-metrics-", dir="/var/tmp")
    os.chmod(d, 0o755)
    up = subprocess.Popen([PGHA, "up", "--dir", os.path.join(d, "c"), "--nodes", "2"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    exporter = None
    try:
        out = ""
        deadline = time.monotonic() + 240
        while "\nStop:" not in out and time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                raise SystemExit("pgha up ended:\n" + out)
            out += line
        leader = re.search(r"leader: (\S+)", out).group(1)
        idx = int(leader.replace("node", ""))
        conf = open(os.path.join(d, "c", f"node{idx}.conf")).read()
        api = re.search(r"^api_listen = (\S+)", conf, re.M).group(1)
        port = re.search(r"^listen = [^:]+:(\d+)", conf, re.M).group(1)
        agent_pid = int(subprocess.run(["pgrep", "-f", f"pgha agent -c .*node{idx}.conf"], capture_output=True,
                                       text=True).stdout.split()[0])
        time.sleep(12)   # two statistics rounds
        url = f"http://{api}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        dur = float(re.search(r'^pgha_pg_stats_duration_seconds\{[^}]*\} (\S+)', text, re.M).group(1))
        pgha = scrape_series(url, args.scrapes, lambda: [agent_pid])
        print(f"pgha agent /metrics: median {pgha['median_ms']:.2f} ms, p99 {pgha['p99_ms']:.2f} ms, "
              f"{pgha['bytes']} bytes, {pgha['series']} series, agent CPU {pgha['cpu_ms']:.3f} ms per scrape; "
              f"background collection {dur * 1000:.1f} ms every 5 s")
        exe = shutil.which("prometheus-postgres-exporter")
        if exe is None:
            print("postgres_exporter: not installed (scripts/install-deps.sh --bench); no side-by-side figure")
            return
        eport = free_port()
        env = dict(os.environ, DATA_SOURCE_NAME=f"host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable",
                   PGPASSFILE=os.path.join(d, "c", "pgpass"))
        exporter = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{eport}"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        eurl = f"http://127.0.0.1:{eport}/metrics"
        first = ""
        for _ in range(100):
            try:
                first = urllib.request.urlopen(eurl, timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        up_line = next((ln for ln in first.splitlines() if ln.startswith("pg_up")), "pg_up missing")
        if not up_line.endswith(" 1"):
            raise SystemExit(f"postgres_exporter does not reach PostgreSQL ({up_line}): no fair comparison")
        pm_pid = int(subprocess.run(["head", "-1", os.path.join(d, "c", f"node{idx}", "data", "postmaster.pid")],
                                    capture_output=True, text=True).stdout.strip())
        exp = scrape_series(eurl, args.scrapes, lambda: [exporter.pid] + children(pm_pid))
        print(f"postgres_exporter:   median {exp['median_ms']:.2f} ms, p99 {exp['p99_ms']:.2f} ms, "
              f"{exp['bytes']} bytes, {exp['series']} series, exporter+PostgreSQL CPU {exp['cpu_ms']:.3f} ms per scrape")
        cpu = (f"{exp['cpu_ms'] / pgha['cpu_ms']:.0f}x" if pgha["cpu_ms"] > 0
               else f"pgha below the {1000 / TICK:.0f} ms CPU tick over {args.scrapes} scrapes")
        print(f"ratio (exporter / pgha): latency {exp['median_ms'] / pgha['median_ms']:.1f}x, CPU per scrape {cpu}")
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        os.killpg(up.pid, signal.SIGINT)
        up.wait(120)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
