"""The figures of make bench beside the load matrix, each on fresh server instances: memory
with connections held, syscalls per message, start-up time, and iperf3's one-direction bulk
transfer."""
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from bench_proc import ChildCgroup, Instance, descendants, log, status_field

KSTACK_KIB = 16  # THREAD_SIZE on x86_64 (and arm64): one kernel stack per thread


# ----------------------------------------------------------------------------- iperf3

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iperf_once(streams, seconds):
    """iperf3's received MB/s (10^6 bytes) with 1 or 2 streams, one direction, or None if
    the server could not start (iperf3 has no port 0: a port freed just before may be taken
    again)."""
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(free_port()),
                            "--forceflush"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        for line in srv.stdout:  # "Server listening on PORT" comes once listen() returned
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


# ----------------------------------------------------------------------------- memory

def hold_connections(port, n, timeout=120.0):
    """Open n connections and make one round trip on each (so each is held by a worker, a
    goroutine, an event loop...), then return them still open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 256:
        raise RuntimeError(f"holding {n:,} connections needs {n + 256:,} descriptors; "
                           f"the limit is {soft:,}")
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


def smaps_rollup_kib(pid):
    out = {"Rss": 0, "Pss": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in out:
                    out[k] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def mem_snapshot(pid, cg):
    """The server's memory (and its children's, for fork mode), in KiB: RSS, PSS, kernel
    stacks (threads x 16 KiB), page tables, their sum as the estimated charge, and the
    child cgroup's charge when there is one."""
    snap = {"rss": 0, "pss": 0, "threads": 0, "pte": 0}
    for p in [pid] + descendants(pid):
        try:
            sm = smaps_rollup_kib(p)
            snap["rss"] += sm["Rss"] or status_field(p, "VmRSS")
            snap["pss"] += sm["Pss"]
            snap["threads"] += status_field(p, "Threads")
            snap["pte"] += status_field(p, "VmPTE")
        except (FileNotFoundError, ProcessLookupError):
            pass  # a child that just exited
    snap["kstack"] = snap["threads"] * KSTACK_KIB
    snap["estimate"] = snap["pss"] + snap["kstack"] + snap["pte"]
    snap["cgroup"] = cg.read() / 1024 if cg else None
    return snap


def memory(spec, size, n, use_cgroup=True):
    """Memory of a fresh instance idle, then holding n connections; figures in KiB."""
    cg, why = ChildCgroup.create("memory", spec.name) if use_cgroup else (None, "not asked")
    inst = Instance(spec, size)
    try:
        inst.start(preexec_fn=cg.enter if cg else None)
        if not inst.settle():
            log(f"  {spec.name}: still busy 5 s after start; idle memory taken anyway")
        idle = mem_snapshot(inst.pid, cg)
        socks = hold_connections(inst.port, n)
        try:
            inst.settle(timeout=2.0)
            held = mem_snapshot(inst.pid, cg)
        finally:
            for s in socks:
                s.close()
    finally:
        inst.stop()
        if cg:
            cg.remove()
    per = lambda k: None if held[k] is None else (held[k] - idle[k]) / n
    charge = "cgroup" if cg else "estimate"
    return {"connections": n, "idle": idle, "held": held,
            "rss_idle_kib": idle["rss"], "rss_held_kib": held["rss"],
            "kib_per_conn": per("rss"), "total_kib_per_conn": held["rss"] / n,
            "charge_source": charge, "charge_held_kib": held[charge],
            "charge_kib_per_conn": per(charge), "estimate_kib_per_conn": per("estimate"),
            "cgroup_note": why}


# ----------------------------------------------------------------------------- syscalls

SYSCALLS = ["read", "write", "recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg",
            "sendmmsg", "readv", "writev", "epoll_wait", "epoll_pwait", "epoll_pwait2",
            "epoll_ctl", "futex", "accept4", "accept", "close", "sched_yield", "poll", "ppoll",
            "clock_gettime", "nanosleep", "clock_nanosleep", "io_uring_enter", "getsockopt",
            "setsockopt", "shutdown"]


def tracer():
    """"perf" when perf can count syscall tracepoints here, else "strace", else None (why)."""
    if shutil.which("perf"):
        try:
            p = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20)
            if p.returncode == 0 and re.search(rb"^\d+,", p.stderr, re.M):
                return "perf", None
        except (OSError, subprocess.SubprocessError):
            pass
    if shutil.which("strace"):
        return "strace", None
    return None, "neither perf (linux-perf) with syscall tracepoints nor strace is installed"


def perf_events():
    have = set()
    base = "/sys/kernel/tracing/events/syscalls"
    if not os.path.isdir(base):
        base = "/sys/kernel/debug/tracing/events/syscalls"
    try:
        have = set(os.listdir(base))
    except OSError:
        pass
    return ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{s}" for s in SYSCALLS
                                         if f"sys_enter_{s}" in have]


def parse_perf(path):
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[0].isdigit():
                ev = parts[2]
                name = "total" if ev == "raw_syscalls:sys_enter" else ev.split("sys_enter_")[-1]
                counts[name] = int(parts[0])
    return counts


def parse_strace(path):
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[-1] == "total":
                counts["total"] = int(parts[3])
            elif len(parts) >= 5 and parts[3].isdigit() and not line.startswith("%"):
                counts[parts[-1]] = int(parts[3])
    return counts


def syscalls(spec, size, case, seconds, run_client, how):
    """Syscalls of a fresh instance over one client run of `case`, per message. perf: the
    server runs under `perf stat` with its counters disabled, enabled through perf's control
    FIFO just for the client's run (every thread counted, those started later too); strace:
    `strace -f -c` attached to the running server just before the run (slower: the count is
    exact, the run's speed is not the timed one's)."""
    tmp = tempfile.mkdtemp(prefix="sockpool-sys-")
    out = os.path.join(tmp, "counts")
    inst = Instance(spec, size)
    try:
        if how == "perf":
            ctl, ack = os.path.join(tmp, "ctl"), os.path.join(tmp, "ack")
            os.mkfifo(ctl)
            os.mkfifo(ack)
            inst.start(wrapper=["perf", "stat", "-D", "-1", "--control", f"fifo:{ctl},{ack}",
                                "-x,", "-o", out, "-e", ",".join(perf_events()), "--"])
            inst.settle(timeout=2.0)
            with open(ctl, "w") as c, open(ack) as a:
                c.write("enable\n")
                c.flush()
                a.readline()
                res = run_client(inst.port, case, seconds)
                c.write("disable\n")
                c.flush()
                a.readline()
            inst.stop()
            counts = parse_perf(out)
        else:
            inst.start()
            inst.settle(timeout=2.0)
            st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(inst.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # NOTE: strace says nothing when it has attached to every thread
            res = run_client(inst.port, case, seconds)
            st.send_signal(2)
            st.wait(timeout=30)
            counts = parse_strace(out)
    finally:
        inst.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    msgs = res["messages"]
    if not msgs or "total" not in counts:
        raise RuntimeError(f"no syscall count ({how}) or no message ({msgs})")
    return {"tool": how, "messages": msgs, "syscalls": counts["total"],
            "per_msg": counts["total"] / msgs,
            "by_call": {k: v / msgs for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
                        if k != "total" and v}}


# ----------------------------------------------------------------------------- start-up

def startup(helper, spec, runs):
    """Median milliseconds from exec to the port file, over runs (startup_time.c), with the
    server's default options (the mode flag only)."""
    tmp = tempfile.mkdtemp(prefix="sockpool-startup-")
    pf = os.path.join(tmp, "port")
    try:
        p = subprocess.run([helper, str(runs), pf, "--"] + spec.command(pf, startup=True),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=runs * 20)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.decode(errors="replace").strip())
        times = [float(x) / 1000 for x in p.stdout.split()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "runs": runs}
