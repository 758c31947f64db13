#!/usr/bin/python3
"""check-e2e.py SERVER - sockpool-server as systemd and Prometheus see it.

Starts the real binary on loopback port 0 with --metrics 127.0.0.1:0 and $NOTIFY_SOCKET set to
a datagram socket in a temporary directory, then checks: READY=1 arrives once the port file
exists; /metrics parses with prometheus_client's own text parser (python3-prometheus-client),
every family has HELP and TYPE, and the counters match the exchanges made; a scraper that
connects and says nothing does not stop another scrape; SIGTERM with a connection still open
sends STOPPING=1 and turns /healthz to 503 while the drain runs; the server exits 0. In
--mode fork, a child serving a connection does not hold the metrics listener.
Every wait is bounded; exit 1 with the reason on the first failure.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("check-e2e: needs python3-prometheus-client (apt-get install -y "
             "python3-prometheus-client)")


def fail(msg):
    print(f"check-e2e: FAILED: {msg}")
    sys.exit(1)


def wait_for(pred, what, timeout=10.0):
    """Poll pred (a file, a line: things only visible by looking) until true or timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    fail(f"no {what} within {timeout} s")


def notifications(sock, until, timeout=10.0):
    """Datagrams from the fake NOTIFY_SOCKET until one contains `until`."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if until in msg:
            return got
    fail(f"no notification with {until!r}; got {got!r}")


def http(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def exchange(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
    if out != data.upper():
        fail(f"exchange: sent {len(data)} bytes, got {len(out)} back, not the uppercase")


def families(text):
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for f in fams.values():
        if not f.documentation or f.type == "unknown":
            fail(f"metric {f.name} has no HELP or no TYPE")
    return fams


def value(fams, family, sample, labels=None):
    for s in fams[family].samples:
        if s.name == sample and (labels is None or s.labels == labels):
            return s.value
    fail(f"no sample {sample} {labels or ''} in {family}")


def check_metrics(mport, port, n):
    silent = socket.create_connection(("127.0.0.1", mport), timeout=5)  # says nothing
    status, ctype, text = http(mport, "/metrics")
    silent.close()
    if status != 200 or not ctype.startswith("text/plain; version=0.0.4"):
        fail(f"/metrics: {status} {ctype}")
    fams = families(text)
    for name, typ in [("sockpool_connections_accepted", "counter"),
                      ("sockpool_connections_rejected", "counter"),
                      ("sockpool_connections_closed", "counter"),
                      ("sockpool_received_bytes", "counter"), ("sockpool_sent_bytes", "counter"),
                      ("sockpool_connections_active", "gauge"),
                      ("sockpool_connections_queued", "gauge"), ("sockpool_info", "gauge")]:
        if name not in fams or fams[name].type != typ:
            fail(f"/metrics: no {typ} {name}")
    acc = value(fams, "sockpool_connections_accepted", "sockpool_connections_accepted_total")
    done = value(fams, "sockpool_connections_closed", "sockpool_connections_closed_total",
                 {"outcome": "completed"})
    sent = value(fams, "sockpool_sent_bytes", "sockpool_sent_bytes_total")
    if acc != n or done != n or sent != n * 1000:
        fail(f"/metrics: accepted {acc}, completed {done}, sent {sent} after {n} exchanges")
    print(f"check-e2e: /metrics parsed: {len(fams)} families, accepted {acc:.0f}, "
          f"completed {done:.0f}, bytes out {sent:.0f}")


def listen_inode(port):
    """The inode of the loopback TCP socket listening on port, from /proc/net/tcp."""
    for line in open("/proc/net/tcp").readlines()[1:]:
        f = line.split()
        if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
            return f[9]
    fail(f"no socket listens on port {port}")


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def children(pid):
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        kids += open(f"/proc/{pid}/task/{tid}/children").read().split()
    return kids


def check_fork_children(server, tmp):
    """--mode fork: a child serving a connection does not hold the metrics listener (fork.c
    closes every inherited descriptor but its connection's), so a restart after a crash finds
    the metrics port free even while children drain."""
    proc, port, mport, _ = start(server, tmp, "", ["--mode", "fork"])
    try:
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.sendall(b"f")
        if held.recv(1) != b"F":
            fail("fork mode: no answer")
        inode = listen_inode(mport)
        if inode not in socket_inodes(proc.pid):
            fail("the server itself does not hold its metrics listener (the check is wrong)")
        kids = wait_for(lambda: children(proc.pid), "forked child")
        leaked = [k for k in kids if inode in socket_inodes(k)]
        if leaked:
            fail(f"forked children {leaked} hold the metrics listener")
        print(f"check-e2e: --mode fork: {len(kids)} child serving, without the metrics listener")
        held.close()
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=15) != 0:
            fail("fork mode: the server did not exit 0")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start(server, tmp, notify_path, extra=()):
    tag = "fork" if extra else "main"
    port_file = os.path.join(tmp, f"port.{tag}")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    if not notify_path:
        del env["NOTIFY_SOCKET"]
    env.pop("JOURNAL_STREAM", None)
    errlog = open(os.path.join(tmp, f"stderr.{tag}"), "w+")
    proc = subprocess.Popen([server, "-p", "0", "--port-file", port_file, "-w", "4",
                             "--drain-timeout", "10", "--metrics", "127.0.0.1:0", *extra],
                            env=env, stderr=errlog, stdin=subprocess.DEVNULL)

    def metrics_port():
        errlog.seek(0)
        for line in errlog:
            if "metrics on" in line and "(port " in line:
                return int(line.split("(port ")[1].split(")")[0])
        return None

    port = int(wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                        "port file"))
    return proc, port, wait_for(metrics_port, "'metrics on' line"), errlog


def main():
    server = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="sp-e2e-") as tmp:
        notify_path = os.path.join(tmp, "notify")
        nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        nsock.bind(notify_path)
        proc, port, mport, errlog = start(server, tmp, notify_path)
        try:
            ready = notifications(nsock, "READY=1")
            print(f"check-e2e: NOTIFY_SOCKET: {ready[-1].splitlines()[0]} with "
                  f"{ready[-1].splitlines()[1][:40]}...")
            n = 5
            for _ in range(n):
                exchange(port, b"x" * 1000)
            check_metrics(mport, port, n)
            status, _, body = http(mport, "/healthz")
            if (status, body) != (200, "ok\n"):
                fail(f"/healthz before the drain: {status} {body!r}")
            held = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.sendall(b"a")
            if held.recv(1) != b"A":
                fail("held connection: no answer")
            proc.send_signal(signal.SIGTERM)
            stopping = notifications(nsock, "STOPPING=1")
            status, _, body = http(mport, "/healthz")
            if status != 503:
                fail(f"/healthz during the drain: {status} {body!r}")
            print(f"check-e2e: SIGTERM: {stopping[-1].splitlines()[0]}; /healthz {status} "
                  f"{body.strip()} while a connection drains")
            held.close()
            rc = proc.wait(timeout=15)
            if rc != 0:
                errlog.seek(0)
                fail(f"server exited {rc}: {errlog.read()[-2000:]}")
            print("check-e2e: server exited 0 after the drain")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if "fork" in subprocess.run([server, "--help"], capture_output=True, text=True).stdout:
            check_fork_children(server, tmp)


if __name__ == "__main__":
    main()
