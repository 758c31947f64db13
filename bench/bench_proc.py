"""Server processes for make bench: what each server is (Spec) and one running copy (Instance).

Every server listens on 127.0.0.1, is started on port 0 and tells its port through a port file.
An Instance may be started inside a child memory cgroup (for the memory figure) or under a
wrapper command (perf or strace, for the syscall count); `pid` is always the server itself.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


T0 = time.monotonic()


def log(msg):
    """Progress on stderr, each line with the seconds since the start."""
    print(f"{time.monotonic() - T0:6.1f}s {msg}", file=sys.stderr, flush=True)


class Unavailable(Exception):
    """An optional server this build does not have (it refused its options with exit 2)."""


class Spec:
    """What a server is: its name, argv, how it takes a port, and how it is sized.

    size_flag: None, or the option that sizes the server to the connections of the cases it
    runs ("-w" for the pool, "--max-conns" for thread and fork modes); the value given is
    max(SIZE_FLOOR, the largest connection count it serves). optional: a refusal with exit 2
    (a mode this build lacks) skips the server with a note instead of failing the run."""

    SIZE_FLOOR = 64

    def __init__(self, name, argv, sockpool_style, required=True, transport="tcp",
                 size_flag=None, optional=False, role="", tuning=()):
        self.name, self.argv, self.sockpool_style = name, argv, sockpool_style
        self.tuning = list(tuning)  # options for the measured runs, not for start-up
        self.required, self.transport, self.size_flag = required, transport, size_flag
        self.optional, self.role = optional, role
        self.failure = None

    def command(self, port_file, size=None, startup=False):
        """argv with "port 0, write the port to port_file" in this server's syntax; size is
        the connection count to size a pool for (None: the server's defaults)."""
        argv = list(self.argv) + ([] if startup else self.tuning)
        if self.size_flag and size is not None and not startup:
            argv += [self.size_flag, str(max(self.SIZE_FLOOR, size))]
        if self.sockpool_style:
            return argv + ["-p", "0", "--port-file", port_file, "--quiet"]
        return argv + ["0", "--port-file", port_file]

    def exists(self):
        exe = self.argv[0]
        return (os.path.sep in exe and os.access(exe, os.X_OK)) or shutil.which(exe) is not None


class ChildCgroup:
    """A cgroup made for one server under the bench's own (so every limit above still
    applies), or None where that is not allowed. kind "memory": the charge in bytes (v2
    memory.current; v1 memory.usage_in_bytes, user + kernel memory, plus
    memory.kmem.tcp.usage_in_bytes, socket buffers charged apart); kind "cpu": the CPU time of
    every task that ever ran in it, exited ones included, in ns (v2 cpu.stat usage_usec, v1
    cpuacct.usage)."""

    V1 = {"memory": ("memory", ["memory.usage_in_bytes", "memory.kmem.tcp.usage_in_bytes"]),
          "cpu": ("cpuacct", ["cpuacct.usage"])}
    V2 = {"memory": ["memory.current"], "cpu": ["cpu.stat"]}

    def __init__(self, path, files):
        self.path, self.files = path, files

    @staticmethod
    def create(kind, tag):
        """(cgroup, None) or (None, why not)."""
        with open("/proc/self/cgroup") as f:
            lines = [l.rstrip("\n").split(":", 2) for l in f]
        ctl, files = ChildCgroup.V1[kind]
        v1 = [p for _, c, p in lines if ctl in c.split(",")]
        v2 = [p for hid, c, p in lines if hid == "0" and c == ""]
        if v1 and os.path.isdir(f"/sys/fs/cgroup/{ctl}"):
            base = f"/sys/fs/cgroup/{ctl}" + v1[0]
        elif v2 and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            base, files = "/sys/fs/cgroup" + v2[0], ChildCgroup.V2[kind]
        else:
            return None, f"no {kind} cgroup"
        path = os.path.join(base, f"sockpool-bench-{os.getpid()}-{tag}")
        try:
            os.mkdir(path)
        except OSError as e:
            return None, f"cannot create a child {kind} cgroup under {base}: {e.strerror}"
        cg = ChildCgroup(path, [f for f in files if os.path.exists(os.path.join(path, f))])
        if not cg.files:
            cg.remove()
            return None, f"{path} has no {kind} accounting"
        return cg, None

    def enter(self):
        """preexec_fn: moves the forked child (the server to be) into the cgroup before exec,
        so all it ever uses is counted here."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def read(self):
        total = 0
        for name in self.files:
            with open(os.path.join(self.path, name)) as f:
                text = f.read()
            if name == "cpu.stat":  # "usage_usec N" first
                total += int(text.split()[1]) * 1000
            else:
                total += int(text)
        return total

    def remove(self):
        for _ in range(50):  # the last task may take a moment to leave after exit
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)
        log(f"  could not remove {self.path}")


class Instance:
    """One running copy of a Spec."""

    def __init__(self, spec, size=None):
        self.spec, self.name, self.size = spec, spec.name, size
        self.proc, self.port, self.tmp, self.errlog, self._pid = None, None, None, None, None
        self.cpu_cg = None  # fork mode: its children's CPU, exited ones included

    def start(self, timeout=30.0, wrapper=None, preexec_fn=None):
        """Start the server (under `wrapper` argv if given) and wait for its port file.
        Raises Unavailable for an optional server that exits 2 at once."""
        self.tmp = tempfile.mkdtemp(prefix=f"sockpool-bench-{self.name}-")
        pf = os.path.join(self.tmp, "port")
        self.errlog = open(os.path.join(self.tmp, "stderr"), "w+")
        argv = (wrapper or []) + self.spec.command(pf, self.size)
        if self.spec.role == "fork" and not wrapper:
            self.cpu_cg, why = ChildCgroup.create("cpu", self.name)
            if why:
                log(f"  {self.name}: {why}; CPU of exited children is not counted")
        enter = [f for f in (preexec_fn, self.cpu_cg and self.cpu_cg.enter) if f]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.errlog,
                                     preexec_fn=(lambda: [f() for f in enter]) if enter else None)
        try:
            self.port = wait_port_file(pf, self.proc, timeout, self.stderr_tail)
        except RuntimeError:
            if self.spec.optional and self.proc.poll() == 2:
                raise Unavailable(self.stderr_tail().splitlines()[-1:] or ["exit 2"])
            raise
        self._pid = self.proc.pid if not wrapper else wrapped_child(self.proc.pid)
        return self

    @property
    def pid(self):
        return self._pid

    def stderr_tail(self):
        self.errlog.flush()
        self.errlog.seek(0)
        return self.errlog.read()[-500:].strip()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def returncode(self):
        return None if self.proc is None else self.proc.poll()

    def cpu_seconds(self):
        """CPU time of every thread, living or exited, of the server and of every child it
        has reaped, in seconds: the process's POSIX CPU clock (CPUCLOCK_SCHED, what
        clock_getcpuclockid names), i.e. utime + stime of /proc/PID/stat in ns instead of
        10 ms ticks. Fork mode: its CPU cgroup's figure (every process that ran in it); without
        one, reaped children (cutime + cstime) and the living ones."""
        if self.cpu_cg:
            return self.cpu_cg.read() / 1e9
        total = 0.0
        try:
            total = time.clock_gettime((~self.pid << 3) | 2)
            fields = proc_stat(self.pid)
            total += (int(fields[13]) + int(fields[14])) / TICK  # reaped children
        except OSError:
            fields = proc_stat(self.pid)
            total = sum(int(x) for x in fields[11:15]) / TICK
        for kid in descendants(self.pid):
            try:
                total += time.clock_gettime((~kid << 3) | 2)
            except OSError:
                pass  # a child that just exited: its time is in cstime at the next read
        return total

    def pin(self, cpus):
        """Set the CPU affinity of every thread (threads created later inherit it)."""
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except (ProcessLookupError, FileNotFoundError, OSError):
                pass  # a thread that just exited

    def settle(self, timeout=5.0):
        """Wait until no thread of the server is runnable (a fresh server may still be starting
        its threads after writing the port file) and its RSS held still. Returns True if so.
        NOTE: a 20 ms poll on /proc, the only place this state shows."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            states = []
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                try:
                    with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                        states.append(f.read().rsplit(")", 1)[1].split()[0])
                except (FileNotFoundError, ProcessLookupError):
                    pass  # a thread that just exited
            rss = status_field(self.pid, "VmRSS")
            if "R" not in states and rss == last:
                return True
            last = rss
            time.sleep(0.02)
        return False

    def stop(self):
        """SIGTERM the server (not a wrapper: the wrapper writes its report when its child
        exits), wait, kill after 15 s; remove the temp directory."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.pid or self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"{self.name}: no exit 15 s after SIGTERM, killing it")
                if self.pid and self.pid != self.proc.pid:
                    try:
                        os.kill(self.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait()
        if self.cpu_cg:
            self.cpu_cg.remove()
            self.cpu_cg = None
        if self.tmp is not None:
            self.errlog.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (field 3 is index 0)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def status_field(pid, key):
    """A kB figure (or a count) from /proc/PID/status, or 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(k) for k in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def descendants(pid):
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def wrapped_child(pid, timeout=5.0):
    """The server a wrapper (perf, strace) started: its first child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(pid)
        if kids:
            return kids[0]
        time.sleep(0.005)
    raise RuntimeError(f"the wrapper {pid} started no server")


def wait_port_file(path, proc, timeout, why):
    """The port from the port file (written atomically by rename), waiting for it to appear.
    NOTE: a 1 ms poll, not an event: the driver is no test, and inotify from Python needs
    ctypes; the start-up figure itself comes from startup_time.c, which does use inotify."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with status {proc.returncode}: {why()}")
        time.sleep(0.001)
    raise RuntimeError(f"no port file from {' '.join(proc.args)} within {timeout:.0f} s")


def server_help(exe):
    try:
        p = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10)
        return p.stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return ""


def find_specs(build, extra, baseline):
    """The servers to measure, and notes on the optional ones that are missing. Modes and
    transports the server does not have are left out with a note: a mode it refuses with exit
    2 at start, UDP when --help does not name --udp."""
    peers, here = os.path.join(build, "peers"), os.path.join(ROOT, "bench", "peers")
    exe = os.path.join(build, "sockpool-server")
    node = shutil.which("node") or shutil.which("nodejs")
    helptext = server_help(exe)
    q = ["-q", "16384"]
    cand = [Spec("sockpool", [exe], True, size_flag="-w", role="pool", tuning=q)]
    notes = []
    # Every mode is tried: a build without it refuses `--mode` with exit 2 (skipped, noted).
    for mode in ("mux", "thread", "fork"):
        cand.append(Spec(f"sockpool-{mode}", [exe, "--mode", mode], True, optional=True,
                         role=mode, size_flag=None if mode == "mux" else "--max-conns",
                         tuning=q))
    if baseline:
        cand.append(Spec("pool-before", [os.path.abspath(baseline)], True, size_flag="-w",
                         role="baseline", tuning=q))
    for name, cmd in extra:
        path, *args = cmd.split()
        cand.append(Spec(name, [os.path.abspath(path)] + args, True, size_flag="-w",
                         role="extra", tuning=q))
    cand += [
        Spec("epoll-c", [os.path.join(peers, "epoll_server")], False, role="peer"),
        Spec("go", [os.path.join(peers, "go_server")], False, required=False, role="peer"),
        Spec("node", [node or "node", os.path.join(here, "node_net.js")], False,
             required=False, role="peer"),
        Spec("python", [sys.executable, os.path.join(here, "py_textbook.py")], False,
             role="peer"),
    ]
    if "--udp" in helptext:
        cand += [Spec("sockpool-udp", [exe, "--udp"], True, transport="udp", optional=True,
                      role="udp"),
                 Spec("epoll-udp", [os.path.join(peers, "udp_epoll_server")], False,
                      transport="udp", role="peer")]
    else:
        notes.append("UDP not run: this sockpool-server has no --udp")
    specs = []
    for s in cand:
        if s.exists():
            specs.append(s)
        elif s.required:
            raise RuntimeError(f"{s.name}: {s.argv[0]} is missing (make BUILD=... bench "
                               "builds it)")
        else:
            fix = "apt-get install golang-go" if s.name == "go" else "install Node.js"
            notes.append(f"{s.name} skipped: {s.argv[0]} not found ({fix})")
    return specs, notes
