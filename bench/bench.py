#!/usr/bin/env python3
"""make bench: sockpool side by side with the servers users would pick instead.

Every server is started once and kept running. The cases run interleaved (for each repeat,
for each case, every server in turn) and each figure is the median over the repeats, so the
noise of a shared 2-core machine falls on every server alike. The load comes from
`sockpool-client load`, which verifies every reply byte; the server's CPU time (its process
CPU clock, the utime + stime of /proc/PID/stat) is read just before and just after each run.

Python is the orchestrator only (processes, /proc, JSON, tables, gnuplot scripts): every
measured byte goes through C (the client, the servers, startup_time) or through the peer being
measured; the driver never sits on a measured data path.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = os.sched_getaffinity(0)
SOCKPOOL_WORKERS = 1000  # workers >= connections in every case, 1,000 held for the memory figure


class Case:
    """One load shape: `sockpool-client load --mode MODE -s SIZE -c CONNS`."""

    def __init__(self, mode, size, conns):
        self.mode, self.size, self.conns = mode, size, conns
        unit = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
        self.name = f"{mode} {unit} x{conns}"


FULL_CASES = [Case("rr", 64, 1), Case("rr", 64, 8), Case("rr", 64, 64), Case("rr", 64, 256),
              Case("rr", 4096, 64), Case("stream", 65536, 1), Case("stream", 65536, 8),
              Case("rr", 64, 1000)]
QUICK_CASES = [Case("rr", 64, 1), Case("rr", 64, 64), Case("rr", 4096, 64),
               Case("stream", 65536, 1)]

# Pairs left out of the full run to keep it under 5 minutes on 2 cores, each with its reason.
SKIPPED_PAIRS = {
    ("python", "memory"): "1,000 connections behind a backlog of 5 take minutes to open",
    ("python", "rr 64 B x8"): "not needed by a target",
    ("python", "stream 64 KiB x1"): "not needed by a target",
    ("python", "stream 64 KiB x8"): "not needed by a target",
    ("python", "rr 64 B x1000"): "1,000 threads behind a backlog of 5: see x256",
    ("go", "rr 64 B x1000"): "the 1,000-connection case serves the sockpool scaling target",
    ("node", "rr 64 B x1000"): "the 1,000-connection case serves the sockpool scaling target",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Fatal(Exception):
    """A failure that makes the whole run meaningless (a required tool is missing...)."""


# ----------------------------------------------------------------------------- servers

class Server:
    """A server process on 127.0.0.1, started on port 0; its port comes from its port file."""

    def __init__(self, name, argv, sockpool_style, required):
        self.name, self.argv, self.sockpool_style = name, argv, sockpool_style
        self.required = required
        self.proc, self.port, self.tmp, self.failure = None, None, None, None

    def command(self, port_file):
        """argv with "port 0, write the port to port_file" in this server's syntax."""
        if self.sockpool_style:
            return self.argv + ["-p", "0", "--port-file", port_file, "--quiet"]
        return self.argv + ["0", "--port-file", port_file]

    def start(self, timeout=20.0):
        self.tmp = tempfile.mkdtemp(prefix=f"sockpool-bench-{self.name}-")
        pf = os.path.join(self.tmp, "port")
        self.errlog = open(os.path.join(self.tmp, "stderr"), "w+")
        self.proc = subprocess.Popen(self.command(pf), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errlog)
        self.port = wait_port_file(pf, self.proc, timeout, self.stderr_tail)
        return self

    def stderr_tail(self):
        self.errlog.flush()
        self.errlog.seek(0)
        return self.errlog.read()[-500:].strip()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self):
        """CPU time of every thread, living or exited, in seconds: the process's POSIX CPU
        clock (what clock_getcpuclockid(pid) names), i.e. the utime + stime of /proc/PID/stat
        in nanoseconds instead of 10 ms ticks. Falls back to /proc/PID/stat."""
        try:
            return time.clock_gettime((~self.proc.pid << 3) | 2)  # CPUCLOCK_SCHED, process
        except OSError:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICK

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def pin(self, cpus):
        """Set the CPU affinity of every thread (threads created later inherit it)."""
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except (ProcessLookupError, FileNotFoundError):
                pass  # a thread that just exited

    def settle(self, timeout=5.0):
        """Wait until no thread of the server is runnable (a fresh server may still be starting
        its threads after writing the port file) and its RSS held still. Returns True if so.
        NOTE: a 20 ms poll on /proc, the only place this state shows."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            states = []
            for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
                try:
                    with open(f"/proc/{self.proc.pid}/task/{tid}/stat") as f:
                        states.append(f.read().rsplit(")", 1)[1].split()[0])
                except FileNotFoundError:
                    pass  # a thread that just exited
            rss = self.rss_kib()
            if "R" not in states and rss == last:
                return True
            last = rss
            time.sleep(0.02)
        return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"{self.name}: no exit 15 s after SIGTERM, killing it")
                self.proc.kill()
                self.proc.wait()
        if self.tmp is not None:
            self.errlog.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.proc = self.tmp = None


def wait_port_file(path, proc, timeout, why):
    """The port from the port file (written atomically by rename), waiting for it to appear.
    NOTE: a 1 ms poll, not an event: the driver is no test, and inotify from Python needs
    ctypes; the start-up figure itself comes from startup_time.c, which does use inotify."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                return int(f.read())
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with status {proc.returncode}: {why()}")
        time.sleep(0.001)
    raise RuntimeError(f"no port file from {' '.join(proc.args)} within {timeout:.0f} s")


def find_servers(build, extra):
    """The servers to measure, and notes on the optional ones that are missing."""
    peers, here = os.path.join(build, "peers"), os.path.join(ROOT, "bench", "peers")
    node = shutil.which("node") or shutil.which("nodejs")
    sp = ["-w", str(SOCKPOOL_WORKERS), "-q", "4096"]
    cand = [Server("sockpool", [os.path.join(build, "sockpool-server")] + sp, True, True)]
    for name, cmd in extra:
        path, *args = shlex.split(cmd)
        cand.append(Server(name, [os.path.abspath(path)] + sp + args, True, True))
    cand += [
        Server("epoll-c", [os.path.join(peers, "epoll_server")], False, True),
        Server("go", [os.path.join(peers, "go_server")], False, False),
        Server("node", [node or "node", os.path.join(here, "node_net.js")], False, False),
        Server("python", [sys.executable, os.path.join(here, "py_textbook.py")], False, True),
    ]
    servers, notes = [], []
    for s in cand:
        exe = s.argv[0]
        if (os.path.sep in exe and os.access(exe, os.X_OK)) or shutil.which(exe):
            servers.append(s)
        elif s.required:
            raise Fatal(f"{s.name}: {exe} is missing (build it with make BUILD=... bench)")
        else:
            fix = "apt-get install golang-go" if s.name == "go" else "install Node.js"
            notes.append(f"{s.name} skipped: {exe} not found ({fix})")
    return servers, notes


# ----------------------------------------------------------------------------- the client

def run_client(client, port, case, seconds):
    """One `sockpool-client load` run; returns its JSON object (schema: the shared brief)."""
    argv = [client, "load", "-H", "127.0.0.1", "-p", str(port), "-c", str(case.conns),
            "-s", str(case.size), "-d", f"{seconds:g}", "--mode", case.mode, "--json", "-"]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(argv)}: still running {seconds + 60:.0f} s later")
    lines = [l for l in p.stdout.decode(errors="replace").splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"client exit {p.returncode}, no JSON: "
                           f"{p.stderr.decode(errors='replace').strip()[-300:]}")
    res = json.loads(lines[-1])
    for key in ("messages", "msgs_per_s", "mb_per_s", "latency_us", "errors", "connections"):
        if key not in res:
            raise RuntimeError(f"client JSON has no '{key}': {lines[-1][:200]}")
    res["exit_status"] = p.returncode
    return res


def busy_cpu_seconds():
    """CPU time spent by anything on the machine (all CPUs, not idle, not iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK  # user..steal, less idle and iowait


def measure(client, server, case, seconds):
    """One run of case against server, with the server's CPU over the client's lifetime.
    rr with one connection runs with the server on CPU 0 and the client on CPU 1 (like a
    client on another host): left to the scheduler, its wake-affine choice of one core or two
    flips the round trip between ~13 and ~50 us from one run to the next on this machine."""
    pin = case.mode == "rr" and case.conns == 1 and len(ALL_CPUS) >= 2
    if pin:
        server.pin({min(ALL_CPUS)})
        os.sched_setaffinity(0, {max(ALL_CPUS)})  # the client inherits it
    try:
        busy0, cpu0 = busy_cpu_seconds(), server.cpu_seconds()
        res = run_client(client, server.port, case, seconds)
        busy1, cpu1 = busy_cpu_seconds(), server.cpu_seconds()
    finally:
        if pin:
            os.sched_setaffinity(0, ALL_CPUS)
            if server.alive():
                server.pin(ALL_CPUS)
    msgs, err = res["messages"], res["errors"]
    return {
        "msgs_per_s": res["msgs_per_s"], "mb_per_s": res["mb_per_s"], "messages": msgs,
        "p50_us": res["latency_us"]["p50"], "p99_us": res["latency_us"]["p99"],
        "p999_us": res["latency_us"]["p999"], "max_us": res["latency_us"]["max"],
        "wrong": err["mismatches"] + err["short_replies"], "mismatches": err["mismatches"],
        "errors": err["total"], "starved": res["connections"]["starved"],
        "connected": res["connections"]["connected"],
        "server_cpu_s": cpu1 - cpu0, "client_cpu_s": res.get("client_cpu_s"),
        "server_cpu_us_per_msg": (cpu1 - cpu0) * 1e6 / msgs if msgs else None,
        "client_exit": res["exit_status"],
        # Cores' worth of CPU used by other processes during the run: the noise indicator.
        "other_load": max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (res.get("client_cpu_s") or 0))
        / max(res.get("elapsed_s") or seconds, 1e-3),
    }


def correctness(client, server):
    """Zero wrong bytes before a server is measured: the byte-exact corner check (every byte
    value, up to 1 MiB, half-close), then the load client in both modes. Returns None or why."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "peercheck.py"),
                        str(server.port), "16"], stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        return p.stderr.decode(errors="replace").strip().replace("\n", "; ")
    for case in (Case("rr", 1000, 4), Case("stream", 200000, 4)):
        r = measure(client, server, case, 0.5)
        if r["wrong"] or not r["messages"] or r["client_exit"] != 0:
            return (f"{case.name}: {r['mismatches']} mismatches, {r['wrong'] - r['mismatches']} "
                    f"short replies, {r['messages']} messages, client exit {r['client_exit']}")
    return None


# ----------------------------------------------------------------------------- side figures

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iperf_once(streams, seconds):
    """The loopback limit: iperf3's received MB/s (10^6 bytes) with 1 or 2 streams, or None
    if the server could not start (iperf3 has no port 0: a port freed just before may be
    taken again)."""
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(free_port()),
                            "--forceflush"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        # "Server listening on PORT" comes once listen() returned: wait for that line.
        port = None
        for line in srv.stdout:
            if "listening on" in line:
                port = int(line.split("listening on")[1].split()[0])
                break
        if port is None:
            return None
        p = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t",
                            str(max(1, round(seconds))), "-P", str(streams), "-J"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=seconds + 30)
        try:
            return json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
        except (ValueError, KeyError):
            return None  # iperf3 -J reports its errors as {"error": ...}
    finally:
        srv.kill()
        srv.wait()
        srv.stdout.close()


def iperf(streams, seconds):
    for _ in range(3):
        mb = iperf_once(streams, seconds)
        if mb is not None:
            return mb
    raise RuntimeError(f"iperf3 with {streams} streams failed three times")


def hold_connections(port, n, timeout=60.0):
    """Open n connections and make one round trip on each (so each is held by a worker, a
    goroutine...), then return them still open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
    deadline = time.monotonic() + timeout
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=timeout))
        for i, s in enumerate(socks):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            msg = b"held connection %d" % i
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(64)
                if not chunk:
                    raise RuntimeError(f"held connection {i} closed by the server")
                got += chunk
            if got != msg.upper():
                raise RuntimeError(f"held connection {i}: wrong reply {got!r}")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def memory(server, n):
    """RSS of a fresh instance idle, then holding n connections."""
    try:
        server.start()
        if not server.settle():
            log(f"  {server.name}: still busy 5 s after start; idle RSS taken anyway")
        idle = server.rss_kib()
        socks = hold_connections(server.port, n)
        try:
            held = server.rss_kib()
        finally:
            for s in socks:
                s.close()
    finally:
        server.stop()
    return {"connections": n, "rss_idle_kib": idle, "rss_held_kib": held,
            "kib_per_conn": (held - idle) / n, "total_kib_per_conn": held / n}


def startup(helper, server, runs):
    """Median milliseconds from exec to the port file, over runs (startup_time.c)."""
    tmp = tempfile.mkdtemp(prefix="sockpool-startup-")
    pf = os.path.join(tmp, "port")
    try:
        p = subprocess.run([helper, str(runs), pf, "--"] + server.command(pf),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=runs * 20)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.decode(errors="replace").strip())
        times = [float(x) / 1000 for x in p.stdout.split()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "runs": runs}


# ----------------------------------------------------------------------------- the matrix

def runs_pair(server, what, quick):
    """Whether server runs `what` (a case name or "memory"); QUICK runs every case."""
    if quick and what != "memory":
        return True
    return (server.name, what) not in SKIPPED_PAIRS


# Error counts must show if any repeat had one; everything else is a median.
WORST_OF = ("wrong", "mismatches", "errors", "starved", "client_exit")


def summarize(runs):
    out = {"runs": len(runs)}
    for k in runs[0]:
        vals = [r[k] for r in runs if isinstance(r[k], (int, float))]
        if not vals:
            out[k] = None
        elif k in WORST_OF:
            out[k] = max(vals)
        else:
            out[k] = statistics.median(vals)
    return out


def run_matrix(opt, servers, cases):
    """reps x (case x server), interleaved; iperf3 runs with the stream cases of each repeat.
    Returns ({server: {case: summary}}, {server: {case: [runs]}}, iperf figures)."""
    raw = {s.name: {} for s in servers}
    ipf = {1: [], 2: []}
    for rep in range(opt.reps):
        for case in cases:
            for s in servers:
                if s.failure or not runs_pair(s, case.name, opt.quick):
                    continue
                log(f"[{rep + 1}/{opt.reps}] {case.name:<18} {s.name}")
                try:
                    r = measure(opt.client, s, case, opt.seconds)
                except RuntimeError as e:
                    r = None
                    s.failure = f"{case.name}: {e}"
                if not s.alive():
                    s.failure = f"{case.name}: the server died (status {s.proc.returncode})"
                if r is None or s.failure:
                    log(f"  {s.name} FAILED: {s.failure}")
                    continue
                if r["wrong"]:
                    log(f"  {s.name}: {r['mismatches']} mismatches, "
                        f"{r['wrong'] - r['mismatches']} short replies")
                raw[s.name].setdefault(case.name, []).append(r)
            if case.mode == "stream" and case.conns == 1 and opt.iperf:
                for streams in (1, 2):
                    log(f"[{rep + 1}/{opt.reps}] iperf3, {streams} stream(s)")
                    try:
                        ipf[streams].append(iperf(streams, opt.seconds))
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        opt.tool_failures.append(f"iperf3: {e}")
    res = {n: {c: summarize(r) for c, r in cs.items()} for n, cs in raw.items()}
    loop = {"iperf3_1_stream_mb_s": statistics.median(ipf[1]) if ipf[1] else None,
            "iperf3_2_streams_mb_s": statistics.median(ipf[2]) if ipf[2] else None}
    return res, raw, loop


# ----------------------------------------------------------------------------- targets

# The ratio targets of issue 5: (figure, case, the other server, rule, limit).
RATIO_TARGETS = [
    ("server_cpu_us_per_msg", "rr 64 B x64", "epoll-c", "<=", 1.15),
    ("server_cpu_us_per_msg", "rr 64 B x64", "node", "<=", 0.7),
    ("server_cpu_us_per_msg", "rr 64 B x64", "go", "<=", 0.7),
    ("msgs_per_s", "rr 64 B x64", "epoll-c", ">=", 0.9),
    ("p50_us", "rr 64 B x1", "epoll-c", "<=", 1.1),
    ("msgs_per_s", "rr 4 KiB x64", "epoll-c", ">=", 0.9),
    ("mb_per_s", "stream 64 KiB x1", "iperf3 1 stream", ">=", 0.8),
    ("server_cpu_us_per_msg", "rr 64 B x64", "python", "<=", 0.5),
    ("msgs_per_s", "rr 4 KiB x64", "python", ">=", 50),
]
FIGURE_NAMES = {"server_cpu_us_per_msg": "server CPU/msg", "msgs_per_s": "msgs/s",
                "p50_us": "p50 latency", "mb_per_s": "MB/s"}


def targets(res, side):
    """Each issue-5 target: the figure, how it was formed, its limit, met or not. A ratio is
    sockpool's figure over the other server's in the same run."""
    t = []
    for key, case, other, rule, limit in RATIO_TARGETS:
        a = res.get("sockpool", {}).get(case, {}).get(key)
        if other.startswith("iperf3"):
            b = side.get("iperf3_1_stream_mb_s")
        else:
            b = res.get(other, {}).get(case, {}).get(key)
        ok = a is not None and b
        t.append((f"{case}: {FIGURE_NAMES[key]}, sockpool / {other}", a / b if ok else None,
                  f"{fmt(a, 2)} / {fmt(b, 2)}" if ok else "", rule, limit))
    t.append(starvation_target(res))
    mem = side.get("memory", {}).get("sockpool")
    if mem:
        t.append((f"memory: RSS per connection held by a worker, KiB ({mem['connections']:,})",
                  mem["kib_per_conn"], f"({fmt(mem['rss_held_kib'], 0)} - "
                  f"{fmt(mem['rss_idle_kib'], 0)}) / {mem['connections']:,}; total / n: "
                  f"{fmt(mem['total_kib_per_conn'])}", "<=", 48))
    sup = side.get("startup", {}).get("sockpool")
    if sup:
        t.append(("start-up, exec to port file, ms", sup["median_ms"],
                  f"median of {sup['runs']}", "<=", 5))
    t.append(scaling_target(res))
    out = []
    for name, val, how, rule, limit in t:
        met = None if val is None else (val <= limit if rule == "<=" else val >= limit)
        out.append({"target": name, "value": val, "how": how, "rule": rule, "limit": limit,
                    "met": met})
    return out


def starvation_target(res):
    """Zero starved connections for sockpool in every case where Python starved some."""
    py = {c: r["starved"] for c, r in res.get("python", {}).items() if r.get("starved")}
    if not py or "sockpool" not in res:
        return ("starved connections where python starves some", None,
                "python starved none" if "python" in res else "", "<=", 0)
    sp = sum(res["sockpool"].get(c, {}).get("starved") or 0 for c in py)
    how = "python: " + ", ".join(f"{n:g} in {c}" for c, n in py.items())
    return ("starved connections (sockpool) where python starves some", sp, how, "<=", 0)


def scaling_target(res):
    """Server CPU per message from 8 to 1,000 connections (rr 64 B): max / min <= 1.2."""
    sp = res.get("sockpool", {})
    pts = {c: sp[f"rr 64 B x{c}"]["server_cpu_us_per_msg"] for c in (8, 64, 256, 1000)
           if sp.get(f"rr 64 B x{c}", {}).get("server_cpu_us_per_msg")}
    if len(pts) < 2:
        return ("server CPU/msg spread, 8..1,000 connections (max/min)", None, "", "<=", 1.2)
    how = ", ".join(f"x{c}: {v:.2f}" for c, v in pts.items())
    return ("server CPU/msg spread, 8..1,000 connections (max/min)",
            max(pts.values()) / min(pts.values()), how, "<=", 1.2)


# ----------------------------------------------------------------------------- output

def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer() and nd == 0:
        v = int(v)
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def markdown(res, side, tgt, meta, cases):
    lines = [f"sockpool benchmark, {meta['date']}{' (QUICK smoke run)' if meta['quick'] else ''}",
             "", f"Machine: {meta['machine']}.", "",
             f"Each figure is the median of {meta['reps']} run{'s' if meta['reps'] > 1 else ''} "
             f"of {meta['seconds']:g} s "
             "(error counts: the worst run), servers interleaved. Load: `sockpool-client load` "
             "with its default threads (min(connections, cores)), every reply byte verified; "
             "rr x1 runs with the server on one core and the client on the other. Server CPU: "
             "the server process's CPU clock (utime + stime, in ns) over each client run, "
             "connects and closes included.", ""]
    ol = meta.get("other_load")
    if ol:
        lines += [f"Other processes on the machine used {ol['median']:.2f} cores (median; worst "
                  f"run {ol['max']:.2f}) during the runs"
                  + (": **the machine was busy, figures are unreliable**." if ol["median"] > 0.15
                     else "."), ""]
    lines += ["| case | server | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs "
              "| server CPU µs/msg | wrong | errors | starved |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cases:
        for name, srv in res.items():
            r = srv.get(c.name)
            if r:
                lines.append(
                    f"| {c.name} | {name} | {fmt(r['msgs_per_s'], 0)} | {fmt(r['mb_per_s'])} | "
                    f"{fmt(r['p50_us'])} | {fmt(r['p99_us'])} | {fmt(r['p999_us'])} | "
                    f"{fmt(r['server_cpu_us_per_msg'], 2)} | {fmt(r['wrong'], 0)} | "
                    f"{fmt(r['errors'], 0)} | {fmt(r['starved'], 0)} |")
    lines += ["", "| loopback limit (iperf3) | MB/s |", "|---|---:|",
              f"| 1 stream | {fmt(side.get('iperf3_1_stream_mb_s'))} |",
              f"| 2 streams | {fmt(side.get('iperf3_2_streams_mb_s'))} |"]
    if side.get("memory"):
        lines += ["", "| memory | connections held | RSS idle KiB | RSS held KiB "
                  "| KiB per connection (held − idle) / n | total KiB / n |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, m in side["memory"].items():
            lines.append(f"| {name} | {m['connections']:,} | {fmt(m['rss_idle_kib'], 0)} | "
                         f"{fmt(m['rss_held_kib'], 0)} | {fmt(m['kib_per_conn'])} | "
                         f"{fmt(m['total_kib_per_conn'])} |")
    if side.get("startup"):
        lines += ["", "| start-up, exec to port file | median ms | min | max | runs |",
                  "|---|---:|---:|---:|---:|"]
        for name, s in side["startup"].items():
            lines.append(f"| {name} | {fmt(s['median_ms'], 2)} | {fmt(s['min_ms'], 2)} | "
                         f"{fmt(s['max_ms'], 2)} | {s['runs']} |")
    lines += ["", "| target (issue 5) | figure | from | limit | met |", "|---|---:|---|---:|---|"]
    for t in tgt:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {fmt(t['value'], 2)} | {t['how']} | "
                     f"{t['rule']} {t['limit']:g} | {met} |")
    notes = meta["notes"] + [f"{k[0]} not run in {k[1]}: {v}" for k, v in SKIPPED_PAIRS.items()
                             if not meta["quick"] or k[1] == "memory"]
    if meta["failures"]:
        lines += ["", "FAILURES: " + "; ".join(meta["failures"])]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def plots(res, outdir):
    """PNG plots through gnuplot: msgs/s and server CPU/msg against connections (rr 64 B), and
    latency percentiles per server (rr 64 B x1 and x64). Returns the files written."""
    tmp = tempfile.mkdtemp(prefix="sockpool-plot-")
    try:
        series = []
        for name, cases in res.items():
            pts = sorted((int(c.rsplit("x", 1)[1]), r) for c, r in cases.items()
                         if c.startswith("rr 64 B x"))
            if pts:
                path = os.path.join(tmp, f"{name}.dat")
                with open(path, "w") as f:
                    for conns, r in pts:
                        f.write(f"{conns} {r['msgs_per_s'] or 'NaN'} "
                                f"{r['server_cpu_us_per_msg'] or 'NaN'}\n")
                series.append((name, path))
        lat = {}
        for conns in (1, 64):
            rows = [(n, cs[f"rr 64 B x{conns}"]) for n, cs in res.items()
                    if (cs.get(f"rr 64 B x{conns}") or {}).get("p50_us")]
            if rows:
                lat[conns] = os.path.join(tmp, f"lat{conns}.dat")
                with open(lat[conns], "w") as f:
                    for name, r in rows:
                        f.write(f"{name} {r['p50_us']} {r['p99_us']} {r['p999_us']}\n")
        if not series or not lat:
            return []  # no rr 64 B case in this run (--cases)
        files = [os.path.join(outdir, n) for n in ("throughput.png", "cpu_per_msg.png",
                                                   "latency.png")]
        curves = lambda col: ", ".join(f"'{p}' using 1:{col} with linespoints lw 2 pt 7 "
                                       f"title '{n}'" for n, p in series)
        hist = lambda path: (f"plot '{path}' using 2:xtic(1) title 'p50', '' using 3 title "
                             "'p99', '' using 4 title 'p99.9'")
        script = f"""
set terminal pngcairo size 900,500 noenhanced font 'sans,10'
set grid
set key outside right
set logscale x 2
set xtics (1, 8, 64, 256, 1000)
set xlabel 'connections (rr, 64 B messages)'
set output '{files[0]}'
set title 'throughput: messages/s (higher is better)'
set ylabel 'messages / s'
set yrange [0:*]
plot {curves(2)}
set output '{files[1]}'
set title 'server CPU per message (lower is better; both cores are shared with the client)'
set ylabel 'server CPU µs / message'
plot {curves(3)}
unset logscale
set autoscale y
unset xtics
set xtics
set output '{files[2]}'
set multiplot layout 1,{len(lat)} title 'latency percentiles, rr 64 B (lower is better)'
set xlabel ''
set ylabel 'µs'
set logscale y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key inside top left
{"".join(f"set title '{c} connection{'s' if c > 1 else ''}'{chr(10)}{hist(p)}{chr(10)}"
         for c, p in lat.items())}unset multiplot
"""
        p = subprocess.run(["gnuplot"], input=script.encode(), stderr=subprocess.PIPE,
                           timeout=60)
        if p.returncode != 0:
            raise RuntimeError("gnuplot: " + p.stderr.decode(errors="replace").strip())
        return files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tool_version(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode(errors="replace").splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}"


# ----------------------------------------------------------------------------- main

def side_figures(opt, servers, fresh):
    """Memory with connections held and start-up time, each on fresh server instances."""
    side = {"memory": {}, "startup": {}}
    for s in servers:
        if s.failure or not runs_pair(s, "memory", opt.quick):
            continue
        log(f"memory: {s.name}, {opt.hold:,} connections held")
        try:
            side["memory"][s.name] = memory(fresh(s), opt.hold)
        except (RuntimeError, OSError) as e:
            s.failure = f"memory: {e}"
            log(f"  {s.name} FAILED: {e}")
    for s in servers:
        if s.failure:
            continue
        log(f"start-up: {s.name}, {opt.startup_runs} runs")
        try:
            side["startup"][s.name] = startup(opt.startup_helper, s, opt.startup_runs)
        except (RuntimeError, subprocess.SubprocessError) as e:
            s.failure = f"start-up: {e}"
    return side


def check_tools(opt):
    """A full run needs iperf3 and gnuplot (its documented outputs); QUICK skips what is
    missing with a note."""
    notes = []
    for tool, pkg, attr in (("iperf3", "iperf3", "iperf"), ("gnuplot", "gnuplot-nox", "plots")):
        if shutil.which(tool) is None:
            if not opt.quick:
                raise Fatal(f"{tool} is missing: apt-get install {pkg}")
            notes.append(f"{tool} missing: no {attr} (apt-get install {pkg})")
            setattr(opt, attr, False)
    for path in (opt.client, opt.startup_helper):
        if not os.access(path, os.X_OK):
            raise Fatal(f"{path} is missing (make BUILD=... bench builds it)")
    return notes


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test (under a minute): 3 short cases, 1 run each, checks answers")
    ap.add_argument("--reps", type=int, help="runs of each case (default 3, quick 1)")
    ap.add_argument("--seconds", type=float, help="length of each run (default 2, quick 1)")
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(ROOT, "build")))
    ap.add_argument("--out", help="results directory (default: bench/results for a complete "
                    "default run, BUILD/bench for QUICK and partial runs)")
    ap.add_argument("--only", help="comma-separated servers to run (default: all found)")
    ap.add_argument("--cases", help="comma-separated case names, e.g. 'rr 64 B x64'")
    ap.add_argument("--add", action="append", default=[], metavar="NAME=PATH [ARGS]",
                    help="another sockpool-server binary (and extra options) to measure side "
                         "by side, e.g. --add 'exp=/tmp/wt/build/sockpool-server --idle-timeout 0'")
    opt = ap.parse_args()
    opt.reps = opt.reps or (1 if opt.quick else 3)
    opt.seconds = opt.seconds or (1.0 if opt.quick else 2.0)
    # Only a complete default run replaces the committed results; partial runs go to BUILD.
    partial = opt.quick or opt.cases or opt.only or opt.add or opt.reps != 3 or opt.seconds != 2
    opt.out = opt.out or (os.path.join(opt.build, "bench") if partial
                          else os.path.join(ROOT, "bench", "results"))
    opt.client = os.path.join(opt.build, "sockpool-client")
    opt.startup_helper = os.path.join(opt.build, "bench", "startup_time")
    opt.hold = 100 if opt.quick else 1000
    opt.startup_runs = 5 if opt.quick else 20
    opt.iperf = opt.plots = True
    opt.tool_failures = []
    opt.extra = [a.split("=", 1) for a in opt.add]
    if any(len(e) != 2 for e in opt.extra):
        ap.error("--add wants NAME=PATH")
    return opt


def select_cases(opt):
    cases = QUICK_CASES if opt.quick else FULL_CASES
    if opt.cases:
        want = [c.strip() for c in opt.cases.split(",")]
        known = {c.name: c for c in FULL_CASES + QUICK_CASES}
        if any(w not in known for w in want):
            raise Fatal(f"--cases: known cases are {', '.join(known)}")
        cases = [known[w] for w in want]
    return cases


def write_outputs(opt, res, raw, side, tgt, meta, cases):
    os.makedirs(opt.out, exist_ok=True)
    md = markdown(res, side, tgt, meta, cases)
    with open(os.path.join(opt.out, "latest.md"), "w") as f:
        f.write(md)
    if opt.plots and res:
        try:
            meta["plots"] = [os.path.relpath(p, ROOT) for p in plots(res, opt.out)]
        except (RuntimeError, subprocess.SubprocessError) as e:
            meta["failures"].append(str(e))
    with open(os.path.join(opt.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "results": res, "runs": raw, "side": side, "targets": tgt},
                  f, indent=1)
        f.write("\n")
    print(md, flush=True)


def main():
    t0 = time.monotonic()
    opt = parse_args()
    started = []
    # A SIGTERM (a CI timeout...) unwinds through the finally below: no server is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def fresh(s):
        return Server(s.name, s.argv, s.sockpool_style, s.required)

    try:
        cases = select_cases(opt)
        notes = check_tools(opt)
        servers, more = find_servers(opt.build, opt.extra)
        notes += more
        if opt.only:
            keep = set(opt.only.split(","))
            unknown = keep - {s.name for s in servers}
            if unknown:
                raise Fatal(f"--only: no server named {', '.join(sorted(unknown))}")
            servers = [s for s in servers if s.name in keep]
        for s in servers:
            log(f"start + correctness: {s.name}")
            started.append(s)
            try:
                s.start()
                s.failure = correctness(opt.client, s)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                s.failure = f"start: {e}"
            if s.failure:
                log(f"  {s.name} FAILED its correctness run: {s.failure}")
        res, raw, side = run_matrix(opt, servers, cases)
        for s in servers:
            s.stop()
        side.update(side_figures(opt, servers, fresh))
    except Fatal as e:
        log(f"bench: {e}")
        return 1
    finally:
        for s in started:
            s.stop()
    failures = [f"{s.name}: {s.failure}" for s in servers if s.failure] + opt.tool_failures
    failures += [f"{n}: {r['mismatches']} mismatches, {r['wrong'] - r['mismatches']} short "
                 f"replies in {c}" for n, cs in res.items() for c, r in cs.items() if r["wrong"]]
    tgt = targets(res, side)
    loads = [r["other_load"] for cs in raw.values() for rs in cs.values() for r in rs]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "reps": opt.reps, "seconds": opt.seconds, "quick": opt.quick,
            "notes": notes, "failures": failures,
            "servers": {s.name: s.argv for s in servers},
            "versions": {"cc": tool_version(["cc", "--version"]),
                         "go": tool_version(["go", "version"]),
                         "node": tool_version(["node", "--version"]),
                         "python": platform.python_version(),
                         "iperf3": tool_version(["iperf3", "--version"])},
            "other_load": {"median": statistics.median(loads), "max": max(loads)} if loads
            else None,
            "wall_s": None}
    meta["wall_s"] = round(time.monotonic() - t0, 1)
    write_outputs(opt, res, raw, side, tgt, meta, cases)
    log(f"bench: {meta['wall_s']:.0f} s wall; results in {os.path.relpath(opt.out, ROOT)}/")
    if failures:
        log("bench: FAILED: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
