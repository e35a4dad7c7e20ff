"""Busy clients for bench/proxy.py: N pgbench clients all running transactions through one
pooler, measured over a steady window after every client has connected.

pgbench (PostgreSQL 15: ppoll, so no FD_SETSIZE limit; -j 2) opens all its connections
before its first transaction, but its -T counts from its start, connections included, and
connecting 10,000 clients takes from 30 s to over 2 minutes here (a SCRAM exchange each,
PBKDF2 on pgbench's side and, for PgBouncer, on its side too). So -T is only an upper bound
(connect_budget plus the rest): pgbench is stopped (SIGINT) 2 s after the end of the window,
which is known once both threads log. -l logs every transaction (latency and completion
time). The window is the --busy-seconds after the first --busy-warmup seconds of
transactions of both threads (the queue in front of the pool forms, caches warm);
TPS, latencies, the proxy's and pgbench's CPU all come from that same window. A sampler
thread reads /proc/<pid>/stat (utime + stime, all threads) of the pooler and pgbench every
100 ms; CPU over the window is interpolated between samples. Peak RSS is the pooler's
VmHWM (the pooler is started fresh for each run), from before the first client to the end.
"""
import bisect
import glob
import os
import re
import signal
import subprocess
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PGBENCH_THREADS = 2


def proc_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])     # utime, stime (fields 14, 15)


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def machine_busy_ticks():
    """CPU ticks of all CPUs not idle (user nice system irq softirq steal) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


class Sampler(threading.Thread):
    """(wall time, pooler ticks, pgbench ticks, pooler VmRSS kB, machine busy ticks) every
    interval seconds."""

    def __init__(self, pooler_pids, probe=None, interval=0.1):
        super().__init__(daemon=True)
        self.pooler_pids = pooler_pids
        self.probe = probe          # called about once a second: (wall time, its value) in probes
        self.probes = []
        self.pgbench_pid = None
        self.interval = interval
        self.samples = []
        self.stop_evt = threading.Event()

    def run(self):
        k = 0
        while not self.stop_evt.is_set():
            if self.probe is not None and k % 10 == 0:
                try:
                    self.probes.append((time.time(), self.probe()))
                except Exception:
                    pass    # a probe that fails says nothing about the pooler
            k += 1
            try:
                t = time.time()
                pt = sum(proc_ticks(p) for p in self.pooler_pids)
                gt = proc_ticks(self.pgbench_pid) if self.pgbench_pid else 0
                rss = sum(proc_status_kb(p, "VmRSS") for p in self.pooler_pids)
                self.samples.append((t, pt, gt, rss, machine_busy_ticks()))
            except (OSError, ValueError):
                pass    # pgbench just ended
            self.stop_evt.wait(self.interval)

    def stop(self):
        self.stop_evt.set()
        self.join(timeout=5)

    def at(self, t, k):
        """Field k interpolated at wall time t."""
        times = [s[0] for s in self.samples]
        i = bisect.bisect_left(times, t)
        if i == 0:
            return self.samples[0][k]
        if i >= len(times):
            return self.samples[-1][k]
        (t0, *a), (t1, *b) = self.samples[i - 1], self.samples[i]
        f = (t - t0) / (t1 - t0) if t1 > t0 else 0
        return a[k - 1] + f * (b[k - 1] - a[k - 1])


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def read_logs(prefix):
    """[(completion time in s since the epoch, latency in us)] of every logged transaction that
    succeeded, the number that failed, and when every pgbench thread had completed one (a
    thread starts once it has connected its own clients)."""
    out, failed, started = [], 0, 0.0
    for path in glob.glob(prefix + ".[0-9]*"):
        n0 = len(out)
        with open(path) as f:
            for line in f:
                p = line.split()
                # client_id transaction_no time script_no time_epoch time_us: time is the
                # latency, or "failed" / "skipped"; the last line may be cut by the SIGINT.
                if len(p) < 6:
                    continue
                if not p[2].isdigit():
                    failed += p[2] == "failed"
                    continue
                out.append((int(p[4]) + int(p[5]) / 1e6, int(p[2])))
        if len(out) > n0:
            started = max(started, min(t for t, _ in out[n0:]))
    return out, failed, started


def threads_logging(prefix):
    """How many of pgbench's per-thread logs have something in them."""
    return sum(os.path.getsize(p) > 0 for p in glob.glob(prefix + ".[0-9]*"))


def run_busy(name, port, pooler_pids, clients, warmup, seconds, connect_budget, env, pgbench_bin,
             workdir, pgbench_args, preexec_fn, probe=None):
    """One pgbench run of `clients` busy clients; a dict of the window's figures. probe(), called
    about once a second, counts the pooler's server connections: its largest value in the window
    is "servers"."""
    os.makedirs(workdir, exist_ok=True)
    prefix = os.path.join(workdir, f"busy-{name}")
    for old in glob.glob(prefix + ".*"):
        os.unlink(old)
    cmd = [pgbench_bin, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n", *pgbench_args,
           "-c", str(clients), "-j", str(PGBENCH_THREADS),
           "-T", str(connect_budget + warmup + seconds + 5),
           "-l", f"--log-prefix={prefix}", "postgres"]
    rss0 = sum(proc_status_kb(p, "VmRSS") for p in pooler_pids)
    load = loadavg()
    sampler = Sampler(pooler_pids, probe)
    sampler.start()
    t_start = time.time()
    out_path = prefix + "-output.txt"
    with open(out_path, "w") as out_f:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=out_f, stderr=subprocess.STDOUT,
                                preexec_fn=preexec_fn)
    sampler.pgbench_pid = proc.pid
    first_seen = None
    try:
        # A thread's first logged bytes come within milliseconds of its first transaction:
        # once both threads log, the window's end is known, and pgbench is stopped 2 s after
        # it (its log lines still buffered then are from after the window).
        while proc.poll() is None:
            now = time.time()
            if first_seen is None and threads_logging(prefix) == PGBENCH_THREADS:
                first_seen = now
            if first_seen is not None and now > first_seen + warmup + seconds + 2:
                proc.send_signal(signal.SIGINT)
                break
            if now > t_start + connect_budget + warmup + seconds + 60:
                break
            time.sleep(0.1)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sampler.stop()
    with open(out_path, errors="replace") as f:
        out = f.read()
    with open(prefix + "-samples.csv", "w") as f:    # for a look at a run afterwards (--keep)
        f.write("time,pooler_ticks,pgbench_ticks,pooler_rss_kb,machine_busy_ticks\n")
        f.writelines(",".join(str(v) for v in smp) + "\n" for smp in sampler.samples)
    hwm = sum(proc_status_kb(p, "VmHWM") for p in pooler_pids)
    rss_end = sum(proc_status_kb(p, "VmRSS") for p in pooler_pids)
    if first_seen is None:
        raise RuntimeError(f"pgbench (exit {proc.returncode}) ran no transaction within "
                           f"{time.time() - t_start:.0f} s (HINT: raise --busy-connect-budget): "
                           f"{out[-1500:]}")
    txs, failed, first = read_logs(prefix)
    last = max(t for t, _ in txs)
    w0, w1 = first + warmup, first + warmup + seconds
    if last < w1:
        raise RuntimeError(f"pgbench (exit {proc.returncode}) stopped {w1 - last:.1f} s before "
                           f"the end of the window: {out[-1500:]}")
    lat = sorted(lat for t, lat in txs if w0 <= t < w1)
    n = len(lat)
    proxy_cpu = (sampler.at(w1, 1) - sampler.at(w0, 1)) / CLK_TCK
    gen_cpu = (sampler.at(w1, 2) - sampler.at(w0, 2)) / CLK_TCK
    all_cpu = (sampler.at(w1, 4) - sampler.at(w0, 4)) / CLK_TCK
    rss_window = max((s[3] for s in sampler.samples if w0 <= s[0] < w1), default=0)
    return {
        "clients": clients, "tx": n, "tps": n / seconds,
        "p50_ms": percentile(lat, 0.50) / 1e3, "p99_ms": percentile(lat, 0.99) / 1e3,
        "max_ms": (lat[-1] if lat else float("nan")) / 1e3,
        "cpu_us_tx": proxy_cpu / n * 1e6 if n else float("nan"),
        "proxy_cpu_pct": proxy_cpu / seconds * 100, "pgbench_cpu_pct": gen_cpu / seconds * 100,
        "machine_cpu_pct": all_cpu / seconds * 100,
        "rss0_kb": rss0, "hwm_kb": hwm, "rss_window_kb": rss_window, "rss_end_kb": rss_end,
        "per_client_b": (hwm - rss0) * 1024 / clients,
        "connect_s": first - t_start,
        # Failed transactions and clients pgbench gave up on (an error ends a client in PG 15).
        "failed": failed + len(re.findall(r"^pgbench: error: client \d+ ", out, re.M)),
        "load": load,
        "servers": max((v for t, v in sampler.probes if w0 <= t < w1), default=None),
    }
