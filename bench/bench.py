#!/usr/bin/env python3
"""make bench: sockpool's worker modes side by side with the servers users would pick instead.

Every server is started once per phase (the 10,000-connection case is a phase of its own, with
servers sized for it) and kept running. The cases run interleaved (for each repeat, for each
case, every server in turn) and each figure is the median over the repeats, so the noise of a
shared 2-core machine falls on every server alike. The load comes from `sockpool-client load`,
which verifies every reply byte; the server's CPU time (its process CPU clock, the utime +
stime of /proc/PID/stat) is read just before and just after each run, the client's own CPU
comes from its JSON. Memory, syscalls per message and start-up are measured on fresh
instances afterwards (bench_side.py); tables and plots are bench_report.py. docs/bench.md
says what every figure means.

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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report  # noqa: E402
import bench_side  # noqa: E402
from bench_proc import ROOT, TICK, Instance, Unavailable, find_specs, log  # noqa: E402

ALL_CPUS = os.sched_getaffinity(0)


class Fatal(Exception):
    """A failure that makes the whole run meaningless (a required tool is missing...)."""


class Case:
    """One load shape: `sockpool-client load [--udp] --mode MODE -s SIZE -c CONNS`."""

    def __init__(self, mode, size, conns, transport="tcp", seconds=None, warmup=None):
        self.mode, self.size, self.conns, self.transport = mode, size, conns, transport
        self.seconds = seconds  # None: the run's --seconds
        self.warmup = warmup  # load before the measured run, for no figure
        unit = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
        self.name = f"{'udp ' if transport == 'udp' else ''}{mode} {unit} x{conns}"
        self.phase = 1 if conns >= 10000 else 0  # servers sized for 10,000 run apart


# The 10,000-connection runs warm up for 1 s: a burst of 10,000 connects overflows the listen
# queue, and the first requests of the connections it dropped wait for TCP's retransmission.
FULL_CASES = [Case("rr", 64, 1), Case("rr", 64, 8), Case("rr", 64, 64), Case("rr", 64, 256),
              Case("rr", 64, 1000), Case("rr", 4096, 64), Case("stream", 65536, 1),
              Case("stream", 65536, 8), Case("crr", 64, 64), Case("rr", 64, 64, "udp"),
              Case("rr", 64, 10000, seconds=3, warmup=1)]
QUICK_CASES = [Case("rr", 64, 1), Case("rr", 64, 64), Case("rr", 4096, 64),
               Case("stream", 65536, 1), Case("crr", 64, 64), Case("rr", 64, 64, "udp")]
SYSCALL_CASE = {"tcp": Case("rr", 64, 64), "udp": Case("rr", 64, 64, "udp")}

# Which server runs which case in a full run (QUICK runs every case on every server of its
# transport): the rules, each with its reason, keep the full run under 10 minutes on 2 cores.
FEW = {"sockpool", "sockpool-mux", "epoll-c"}


def skip_reason(spec, case, quick):
    """None if spec runs case, else why not ("" for a transport it does not speak)."""
    n, c = spec.name, case.name
    if spec.transport != case.transport:
        return ""
    if quick:
        return None
    if spec.role == "baseline" and c not in ("rr 64 B x64", "rr 64 B x256"):
        return "pool-before runs only the cases of the pool no-regression goal"
    if case.conns >= 10000 and n not in FEW:
        return "the 10,000-connection case compares the two sockpool modes with epoll-c"
    if case.mode == "crr" and not (n in FEW or spec.role in ("thread", "fork")):
        return "the connection-rate case measures sockpool's modes (fork's cost per " \
               "connection) against epoll-c"
    if n == "python" and c != "rr 64 B x1" and c not in ("rr 64 B x64", "rr 64 B x256",
                                                        "rr 4 KiB x64"):
        return "the textbook Python server runs only x1, x64, x256 and 4 KiB x64 (backlog 5)"
    if case.conns == 1000 and n not in FEW and spec.role not in ("thread", "extra"):
        return "the 1,000-connection case serves sockpool's scaling goal"
    if c in ("rr 64 B x8", "stream 64 KiB x8") and n not in FEW and spec.role != "extra":
        return "x8 cases run on sockpool, sockpool-mux and epoll-c only (time budget)"
    if spec.role in ("thread", "fork") and c in ("rr 4 KiB x64", "stream 64 KiB x1"):
        return "thread and fork modes run the rr 64 B cases and crr (time budget)"
    return None


def memory_hold(spec, quick):
    """Connections held for the memory figure: 1,000 for a server with a thread or process
    per connection, 10,000 for the others (100 each in QUICK); None: not measured."""
    if spec.name == "python" or spec.transport != "tcp" or spec.role == "baseline":
        return None
    if quick:
        return 100
    return 1000 if spec.role in ("pool", "thread", "fork", "extra") else 10000


# ----------------------------------------------------------------------------- the client

class Client:
    def __init__(self, path):
        self.path, self.probed, self.streams = path, {}, None

    def refuses(self, extra):
        """Whether `load` refuses these options as bad usage (exit 2), probed once with a
        50 ms run against a port nothing listens on (a client that takes them fails with
        exit 1 within ~0.1 s: refused)."""
        key = tuple(extra)
        if key not in self.probed:
            with socket.socket() as s:  # a free port, bound but never listening
                s.bind(("127.0.0.1", 0))
                argv = [self.path, "load", "-p", str(s.getsockname()[1]), "-c", "1", "-s",
                        "64", "-d", "0.05", "--connect-timeout", "1"] + extra
                try:
                    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, timeout=15)
                    self.probed[key] = p.returncode == 2
                except (OSError, subprocess.SubprocessError):
                    self.probed[key] = True
                    log(f"probe of {' '.join(extra)} hung: taken as refused")
        return self.probed[key]

    def supports(self, case):
        """None if the client can run case, else why not."""
        if case.transport == "udp" and self.refuses(["--udp"]):
            return "sockpool-client load has no --udp"
        if case.mode == "crr" and self.refuses(["--mode", "crr"]):
            return "sockpool-client load has no --mode crr"
        return None

    def argv(self, port, case, seconds):
        argv = [self.path, "load", "-H", "127.0.0.1", "-p", str(port), "-c", str(case.conns),
                "-s", str(case.size), "-d", f"{seconds:g}", "--mode", case.mode, "--json", "-"]
        if case.transport == "udp":
            argv.append("--udp")
        if case.warmup:
            argv += ["--warmup", f"{case.warmup:g}"]
        if self.streams is None:
            self.streams = not self.refuses(["--json-stream", "-", "--interval", "0.1"])
        if self.streams:  # one JSON line per interval of the measured run, then the summary
            argv += ["--json-stream", "-", "--interval", f"{max(0.1, seconds / 8):g}"]
        return argv

    def run(self, port, case, seconds, sample=None):
        """One `sockpool-client load` run; returns its summary JSON object, with
        "samples": [(interval object, sample(client pid)), ...] taken as each interval line
        arrives (the moment that interval ends)."""
        argv, limit = self.argv(port, case, seconds), seconds + (case.warmup or 0) + 60
        with tempfile.TemporaryFile() as err:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=err)
            watchdog = threading.Timer(limit, p.kill)  # a hung client is ended, not waited on
            watchdog.start()
            summary, samples = None, []
            try:
                for line in p.stdout:
                    if not line.startswith(b"{"):
                        continue
                    obj = json.loads(line)
                    if "interval" in obj:
                        samples.append((obj, sample(p.pid) if sample else None))
                    elif "version" in obj:
                        summary = obj
                p.wait()
            finally:
                watchdog.cancel()
                p.stdout.close()
            if p.returncode == -signal.SIGKILL:
                raise RuntimeError(f"{' '.join(argv)}: still running {limit:.0f} s later")
            err.seek(0)
            why = err.read().decode(errors="replace").strip()[-300:]
        if summary is None:
            raise RuntimeError(f"client exit {p.returncode}, no JSON: {why}")
        for key in ("messages", "msgs_per_s", "mb_per_s", "latency_us", "errors",
                    "connections"):
            if key not in summary:
                raise RuntimeError(f"client JSON has no '{key}'")
        summary["exit_status"], summary["samples"] = p.returncode, samples
        return summary


def busy_cpu_seconds():
    """(CPU time of tasks on the machine, CPU time in interrupts) in s, all CPUs. The second
    is mostly softirq: loopback TCP's receive work, which a kernel with IRQ time accounting
    charges to no process (so neither the server's nor the client's CPU clock has it)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[7]) / TICK, (v[5] + v[6]) / TICK


def pid_cpu(pid):
    try:
        return time.clock_gettime((~pid << 3) | 2)
    except OSError:
        return None


def window(res, start, end):
    """The CPU figures over the measured run: from the first interval's end to the last's
    (the first interval is left out: it has no sample at its start), or over the client's
    whole life when it gave fewer than two interval lines."""
    smp = res["samples"]
    if len(smp) >= 2:
        a, b = smp[0][1], smp[-1][1]
        msgs = sum(o["messages"] for o, _ in smp[1:])
        ccpu = None if a["client"] is None or b["client"] is None else b["client"] - a["client"]
        return (msgs, b["server"] - a["server"], ccpu, b["busy"][0] - a["busy"][0],
                b["busy"][1] - a["busy"][1], b["t"] - a["t"])
    return (res["messages"], end["server"] - start["server"], res.get("client_cpu_s"),
            end["busy"][0] - start["busy"][0], end["busy"][1] - start["busy"][1],
            max(res.get("elapsed_s") or 0, 1e-3))


def measure(client, inst, case, seconds):
    """One run of case against a server instance, with the server's and the client's CPU
    over the measured run (connects, warm-up and the graceful end left out; in crr the
    connects are the measured run). rr with one connection runs with the server on CPU 0 and
    the client on CPU 1 (like a client on another host): left to the scheduler, its
    wake-affine choice of one core or two flips the round trip between ~13 and ~50 us."""
    pin = case.mode == "rr" and case.conns == 1 and len(ALL_CPUS) >= 2
    snap = lambda cpid=None: {"server": inst.cpu_seconds(), "busy": busy_cpu_seconds(),
                              "client": pid_cpu(cpid) if cpid else None,
                              "t": time.monotonic()}
    if pin:
        inst.pin({min(ALL_CPUS)})
        os.sched_setaffinity(0, {max(ALL_CPUS)})  # the client inherits it
    try:
        start = snap()
        res = client.run(inst.port, case, seconds, sample=snap)
        end = snap()
    finally:
        if pin:
            os.sched_setaffinity(0, ALL_CPUS)
            if inst.alive():
                inst.pin(ALL_CPUS)
    return figures(res, *window(res, start, end), case)


def figures(res, wmsgs, scpu, ccpu, busy, irq, dt, case):
    err, lat = res["errors"], res["latency_us"]
    return {
        "msgs_per_s": res["msgs_per_s"], "mb_per_s": res["mb_per_s"],
        "messages": res["messages"], "p50_us": lat["p50"], "p99_us": lat["p99"],
        "p999_us": lat["p999"], "max_us": lat["max"],
        "wrong": err["mismatches"] + err["short_replies"], "mismatches": err["mismatches"],
        "errors": err["total"], "starved": res["connections"]["starved"],
        "connected": res["connections"]["connected"], "conns": case.conns,
        "window_messages": wmsgs, "server_cpu_s": scpu, "client_cpu_s": ccpu,
        "server_cpu_us_per_msg": scpu * 1e6 / wmsgs if wmsgs else None,
        "client_cpu_us_per_msg": ccpu * 1e6 / wmsgs if wmsgs and ccpu is not None else None,
        "irq_us_per_msg": irq * 1e6 / wmsgs if wmsgs else None,
        "client_exit": res["exit_status"],
        # Cores' worth of CPU used by other processes during the run: the noise indicator.
        "other_load": max(0.0, busy - scpu - (ccpu or 0)) / max(dt, 1e-3),
    }


def correctness(client, inst):
    """Zero wrong bytes before a server is measured: the byte-exact corner check (every byte
    value, up to 1 MiB, half-close), then the load client in both modes (UDP: rr only).
    Returns None or why."""
    if inst.spec.transport == "tcp":
        p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "peercheck.py"),
                            str(inst.port), "16"], stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            return p.stderr.decode(errors="replace").strip().replace("\n", "; ")
        checks = (Case("rr", 1000, 4), Case("stream", 200000, 4))
    else:
        checks = (Case("rr", 1000, 4, "udp"),)
    for case in checks:
        r = measure(client, inst, case, 0.3)
        if r["wrong"] or not r["messages"] or r["client_exit"] != 0:
            return (f"{case.name}: {r['mismatches']} mismatches, {r['wrong'] - r['mismatches']} "
                    f"short replies, {r['messages']} messages, client exit {r['client_exit']}")
    return None


# ----------------------------------------------------------------------------- the matrix

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


def start_checked(opt, spec, size, started):
    """A started, correct instance of spec, or None (spec.failure or opt.unavailable says
    why)."""
    inst = Instance(spec, size)
    started.append(inst)
    log(f"start + correctness: {spec.name}" + (f" (sized for {size:,})" if spec.size_flag
                                                 else ""))
    try:
        inst.start()
        spec.failure = correctness(opt.client, inst)
    except Unavailable as e:
        opt.unavailable[spec.name] = f"{spec.name} not run: {' '.join(spec.argv[1:])} " \
                                     f"refused with exit 2 ({e.args[0][0] if e.args else ''})"
        log(f"  {opt.unavailable[spec.name]}")
        inst.stop()
        return None
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        spec.failure = f"start: {e}"
    if spec.failure:
        log(f"  {spec.name} FAILED its correctness run: {spec.failure}")
        inst.stop()
        return None
    return inst


def run_one(opt, inst, case, seconds, rep):
    spec = inst.spec
    log(f"[{rep + 1}/{opt.reps}] {case.name:<18} {spec.name}")
    try:
        r = measure(opt.client, inst, case, seconds)
    except RuntimeError as e:
        r, spec.failure = None, f"{case.name}: {e}"
    if not inst.alive():
        spec.failure = f"{case.name}: the server died (status {inst.returncode()})"
    if r is None or spec.failure:
        log(f"  {spec.name} FAILED: {spec.failure}")
        return None
    if r["wrong"]:
        log(f"  {spec.name}: {r['mismatches']} mismatches, "
            f"{r['wrong'] - r['mismatches']} short replies")
    return r


def run_phase(opt, specs, cases, raw, ipf, started):
    """Start each server sized for the cases it runs here, then reps x (case x server)."""
    plan = {s.name: [c for c in cases if skip_reason(s, c, opt.quick) is None] for s in specs}
    insts = []
    for s in specs:
        if plan[s.name] and not s.failure and s.name not in opt.unavailable:
            inst = start_checked(opt, s, max(c.conns for c in plan[s.name]), started)
            if inst:
                insts.append(inst)
    for rep in range(opt.reps):
        for case in cases:
            for inst in insts:
                if inst.spec.failure or case not in plan[inst.name]:
                    continue
                r = run_one(opt, inst, case, case.seconds or opt.seconds, rep)
                if r:
                    raw[inst.name].setdefault(case.name, []).append(r)
            if case.name == "stream 64 KiB x1" and opt.iperf:
                for streams in (1, 2):
                    log(f"[{rep + 1}/{opt.reps}] iperf3, {streams} stream(s)")
                    try:
                        ipf[streams].append(bench_side.iperf(streams, opt.seconds))
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        opt.tool_failures.append(f"iperf3: {e}")
    for inst in insts:
        inst.stop()


def run_matrix(opt, specs, cases, started):
    """Every phase in turn. Returns ({server: {case: summary}}, {server: {case: [runs]}},
    iperf figures)."""
    raw = {s.name: {} for s in specs}
    ipf = {1: [], 2: []}
    for phase in sorted({c.phase for c in cases}):
        run_phase(opt, specs, [c for c in cases if c.phase == phase], raw, ipf, started)
    res = {n: {c: summarize(r) for c, r in cs.items()} for n, cs in raw.items() if cs}
    loop = {"iperf3_1_stream_mb_s": statistics.median(ipf[1]) if ipf[1] else None,
            "iperf3_2_streams_mb_s": statistics.median(ipf[2]) if ipf[2] else None}
    return res, raw, loop


# ----------------------------------------------------------------------------- side figures

def side_figures(opt, specs, notes):
    """Syscalls per message, memory with connections held and start-up, each on fresh
    instances of every server that passed."""
    side = {"memory": {}, "startup": {}, "syscalls": {}}
    ok = [s for s in specs if not s.failure and s.name not in opt.unavailable]
    how, why = bench_side.tracer()
    if how is None:
        notes.append(f"no syscall counts: {why}")
    for s in ok if how else []:
        case = SYSCALL_CASE[s.transport]
        if opt.quick and s.name not in FEW:
            continue  # the smoke test checks that counting works, on three servers
        if opt.client.supports(case):
            continue
        log(f"syscalls: {s.name}, {case.name} ({how})")
        try:
            side["syscalls"][s.name] = bench_side.syscalls(
                s, case.conns, case, opt.sys_seconds, opt.client.run, how)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            opt.tool_failures.append(f"syscalls of {s.name}: {e}")
    for s in ok:
        n = memory_hold(s, opt.quick)
        if n is None:
            continue
        log(f"memory: {s.name}, {n:,} connections held")
        try:
            side["memory"][s.name] = bench_side.memory(s, n, n)
        except (RuntimeError, OSError) as e:
            s.failure = f"memory: {e}"
            log(f"  {s.name} FAILED: {e}")
    for s in ok:
        if s.failure:
            continue
        log(f"start-up: {s.name}, {opt.startup_runs} runs")
        try:
            side["startup"][s.name] = bench_side.startup(opt.startup_helper, s,
                                                         opt.startup_runs)
        except (RuntimeError, subprocess.SubprocessError) as e:
            s.failure = f"start-up: {e}"
    return side


# ----------------------------------------------------------------------------- set-up

def raise_nofile(want):
    """Soft (and, as root, hard) RLIMIT_NOFILE up to `want` for the driver and everything it
    starts (the client and the servers inherit it). Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                ceiling = int(f.read())
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, ceiling),) * 2)
            return min(want, ceiling)
        except (OSError, ValueError):
            pass  # not root: the hard limit stands
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check_tools(opt):
    """A full run needs iperf3 and gnuplot (its documented outputs); QUICK skips what is
    missing with a note."""
    import shutil
    notes = []
    for tool, pkg, attr in (("iperf3", "iperf3", "iperf"), ("gnuplot", "gnuplot-nox", "plots")):
        if shutil.which(tool) is None:
            if not opt.quick:
                raise Fatal(f"{tool} is missing: apt-get install {pkg}")
            notes.append(f"{tool} missing: no {attr} (apt-get install {pkg})")
            setattr(opt, attr, False)
    for path in (opt.client_path, opt.startup_helper):
        if not os.access(path, os.X_OK):
            raise Fatal(f"{path} is missing (make BUILD=... bench builds it)")
    return notes


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test (under a minute): short cases, 1 run each, checks answers")
    ap.add_argument("--reps", type=int, help="runs of each case (default 3, quick 1)")
    ap.add_argument("--seconds", type=float,
                    help="length of each run in s (default 2, quick 0.5)")
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(ROOT, "build")))
    ap.add_argument("--refresh", action="store_true",
                    help="write bench/results/ (a complete default run only); otherwise the "
                         "results go to BUILD/bench/")
    ap.add_argument("--out", help="results directory (overrides the two above)")
    ap.add_argument("--only", help="comma-separated servers to run (default: all found)")
    ap.add_argument("--replot", metavar="DIR",
                    help="no run: write DIR's tables and plots again from DIR/latest.json")
    ap.add_argument("--cases", help="comma-separated case names, e.g. 'rr 64 B x64'")
    ap.add_argument("--baseline", metavar="PATH",
                    help="a sockpool-server built from an earlier commit, measured in pool "
                         "mode as 'pool-before' (the pool no-regression goal)")
    ap.add_argument("--add", action="append", default=[], metavar="NAME=PATH [ARGS]",
                    help="another sockpool-server binary (and extra options) to measure side "
                         "by side, e.g. --add 'exp=/tmp/wt/build/sockpool-server --mode mux'")
    opt = ap.parse_args()
    opt.reps = opt.reps or (1 if opt.quick else 3)
    opt.seconds = opt.seconds or (0.5 if opt.quick else 2.0)
    partial = opt.quick or opt.cases or opt.only or opt.add or opt.reps != 3 or opt.seconds != 2
    if opt.refresh and partial:
        ap.error("--refresh (REFRESH=1) replaces bench/results/ and takes a complete default "
                 "run only: no QUICK, --cases, --only, --add, --reps or --seconds")
    opt.out = opt.out or (os.path.join(ROOT, "bench", "results") if opt.refresh
                          else os.path.join(opt.build, "bench"))
    opt.client_path = os.path.join(opt.build, "sockpool-client")
    opt.startup_helper = os.path.join(opt.build, "bench", "startup_time")
    opt.startup_runs = 3 if opt.quick else 20
    opt.sys_seconds = 0.5 if opt.quick else 1.0
    opt.iperf = opt.plots = True
    opt.tool_failures, opt.unavailable = [], {}
    opt.extra = [a.split("=", 1) for a in opt.add]
    if any(len(e) != 2 for e in opt.extra):
        ap.error("--add wants NAME=PATH")
    return opt


def select_cases(opt, client, nofile, notes):
    cases = QUICK_CASES if opt.quick else FULL_CASES
    if opt.cases:
        want = [c.strip() for c in opt.cases.split(",")]
        known = {c.name: c for c in FULL_CASES + QUICK_CASES}
        if any(w not in known for w in want):
            raise Fatal(f"--cases: known cases are {', '.join(known)}")
        cases = [known[w] for w in want]
    out = []
    for c in cases:
        why = client.supports(c)
        if why is None and c.conns + 1024 > nofile:
            why = f"needs {c.conns + 1024:,} descriptors, the limit is {nofile:,}"
        if why:
            notes.append(f"{c.name} not run: {why}")
        else:
            out.append(c)
    return out


def write_outputs(opt, res, raw, side, tgt, meta, cases):
    os.makedirs(opt.out, exist_ok=True)
    md = bench_report.markdown(res, side, tgt, meta, cases)
    if opt.plots and res:
        try:
            meta["plots"] = [os.path.relpath(p, ROOT) for p in
                             bench_report.plots(res, side, cases, opt.out)]
        except (RuntimeError, subprocess.SubprocessError) as e:
            meta["failures"].append(str(e))
    with open(os.path.join(opt.out, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(opt.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "results": res, "runs": raw, "side": side, "targets": tgt},
                  f, indent=1)
        f.write("\n")
    print(md, flush=True)


def replot(opt):
    """--replot DIR: the tables and plots of DIR/latest.json written again by this version
    of the report code (same run, same figures; goals recomputed)."""
    with open(os.path.join(opt.replot, "latest.json")) as f:
        d = json.load(f)
    known = {c.name: c for c in FULL_CASES + QUICK_CASES}
    names = {c for cs in d["results"].values() for c in cs}
    cases = [c for n, c in known.items() if n in names]
    opt.out, opt.plots = opt.replot, True
    d["meta"]["failures"] = [f for f in d["meta"]["failures"] if not f.startswith("gnuplot")]
    write_outputs(opt, d["results"], d["runs"], d["side"],
                  bench_report.targets(d["results"], d["side"]), d["meta"], cases)
    return 0


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


def skipped_notes(specs, cases, quick):
    """One note per reason, naming the server/case pairs it left out."""
    by_reason = {}
    for s in specs:
        for c in cases:
            why = skip_reason(s, c, quick)
            if why:
                by_reason.setdefault(why, []).append(f"{s.name} in {c.name}")
    return [f"not run ({why}): {', '.join(pairs)}" for why, pairs in by_reason.items()]


def collect_failures(opt, specs, res, notes):
    """What fails the run. In QUICK, a side tool's failure (iperf3, the syscall counter) is
    only a note: the smoke test fails on servers, never on the machine it runs on."""
    failures = [f"{s.name}: {s.failure}" for s in specs if s.failure]
    if opt.quick:
        notes += [f"not measured: {f}" for f in opt.tool_failures]
    else:
        failures += opt.tool_failures
    failures += [f"{n}: {r['mismatches']} mismatches, {r['wrong'] - r['mismatches']} short "
                 f"replies in {c}" for n, cs in res.items() for c, r in cs.items() if r["wrong"]]
    return failures


def main():
    t0 = time.monotonic()
    opt = parse_args()
    if opt.replot:
        return replot(opt)
    started = []
    # A SIGTERM (a CI timeout...) unwinds through the finally below: no server is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    nofile = raise_nofile(65536)
    try:
        notes = check_tools(opt)
        opt.client = Client(opt.client_path)
        cases = select_cases(opt, opt.client, nofile, notes)
        try:
            specs, more = find_specs(opt.build, opt.extra, opt.baseline)
        except RuntimeError as e:
            raise Fatal(str(e))
        notes += more
        if opt.only:
            keep = set(opt.only.split(","))
            unknown = keep - {s.name for s in specs}
            if unknown:
                raise Fatal(f"--only: no server named {', '.join(sorted(unknown))}")
            specs = [s for s in specs if s.name in keep]
        res, raw, side = run_matrix(opt, specs, cases, started)
        side.update(side_figures(opt, specs, notes))
    except Fatal as e:
        log(f"bench: {e}")
        return 1
    finally:
        for inst in started:
            inst.stop()
    specs = [s for s in specs if s.name not in opt.unavailable]
    notes += list(opt.unavailable.values()) + skipped_notes(specs, cases, opt.quick)
    failures = collect_failures(opt, specs, res, notes)
    tgt = bench_report.targets(res, side)
    loads = [r["other_load"] for cs in raw.values() for rs in cs.values() for r in rs]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "reps": opt.reps, "seconds": opt.seconds, "quick": opt.quick,
            "notes": notes, "failures": failures, "nofile": nofile,
            "servers": {s.name: s.argv + s.tuning for s in specs},
            "versions": {"cc": tool_version(["cc", "--version"]),
                         "go": tool_version(["go", "version"]),
                         "node": tool_version(["node", "--version"]),
                         "python": platform.python_version(),
                         "iperf3": tool_version(["iperf3", "--version"])},
            "other_load": {"median": statistics.median(loads), "max": max(loads)} if loads
            else None}
    meta["wall_s"] = round(time.monotonic() - t0, 1)
    write_outputs(opt, res, raw, side, tgt, meta, cases)
    log(f"bench: {meta['wall_s']:.0f} s wall; results in {os.path.relpath(opt.out, ROOT)}/")
    if failures:
        log("bench: FAILED: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
