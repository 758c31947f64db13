#!/usr/bin/python3
"""scaleout.py BUILD CONFIG - `make scaleout`: HAProxy in front of two sockpool instances.

HAProxy (run in the foreground with a copy of contrib/haproxy.cfg, its loopback ports and
capacity substituted, its health check sped up) balances `sockpool-client load --reconnect`
over two sockpool-server instances. Once the load runs steadily, one instance is killed with
SIGKILL. The run passes if no reply byte was wrong (the client verifies each), no more
exchanges failed than the kill cut connections (each loses at most the one in flight),
exchanges went on completing through the survivor, HAProxy marked the dead one DOWN, and the
load recovered. Prints exchanges before/after the kill, errors by kind and the time to recover.
Every wait is bounded; exit 1 with the reason on a failure.
"""
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

CONNS = 32          # client connections through HAProxy
SIZE = 512          # bytes per message
DURATION = 8.0      # seconds of load
INTERVAL = 0.25     # seconds per time-series point
KILL_AFTER = 8      # steady intervals (2 s) before the kill
WORKERS = 64        # per instance (pool mode): max-conns = workers
QUEUE = 64


def fail(msg):
    print(f"scaleout: FAILED: {msg}")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, what, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    fail(f"no {what} within {timeout} s")


def start_server(build, tmp, name):
    pf = os.path.join(tmp, f"{name}.port")
    err = open(os.path.join(tmp, f"{name}.log"), "w")
    p = subprocess.Popen([f"{build}/sockpool-server", "-p", "0", "--port-file", pf,
                          "-w", str(WORKERS), "-q", str(QUEUE), "--drain-timeout", "1"],
                         stderr=err, stdin=subprocess.DEVNULL)
    port = int(wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), f"{name} port"))
    return p, port


def haproxy_config(src, tmp, front, ports):
    """contrib/haproxy.cfg with this run's ports, capacity and a faster health check."""
    cfg = open(src).read()
    cfg = cfg.replace("bind 127.0.0.1:8000", f"bind 127.0.0.1:{front}")
    cfg = cfg.replace("server sp1 127.0.0.1:8001", f"server sp1 127.0.0.1:{ports[0]}")
    cfg = cfg.replace("server sp2 127.0.0.1:8002", f"server sp2 127.0.0.1:{ports[1]}")
    cfg = re.sub(r"maxconn 1152", f"maxconn {WORKERS + QUEUE}", cfg)
    cfg = cfg.replace("check inter 1s fall 2 rise 2", "check inter 200ms fall 2 rise 1")
    cfg = cfg.replace("log stdout format raw local0 info",
                      f"log stdout format raw local0 info\n    stats socket {tmp}/haproxy.sock")
    for need in (str(front), str(ports[0]), str(ports[1]), "stats socket", "inter 200ms"):
        if need not in cfg:
            fail(f"contrib/haproxy.cfg changed shape: could not substitute {need}")
    path = os.path.join(tmp, "haproxy.cfg")
    open(path, "w").write(cfg)
    return path


def server_states(tmp):
    """{server: status} from HAProxy's stats socket ("show stat", CSV)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(f"{tmp}/haproxy.sock")
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return {}
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "sockpool"
            and r["svname"] not in ("BACKEND", "FRONTEND")}


def read_stream(path, pos):
    """New complete JSON lines of the client's --json-stream since pos."""
    try:
        with open(path) as f:
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:
        return [], pos
    end = data.rfind("\n") + 1
    lines = [json.loads(x) for x in data[:end].splitlines() if x.strip()]
    return lines, pos + len(data[:end].encode())


def run_load(build, tmp, front, servers):
    stream = os.path.join(tmp, "stream.json")
    client = subprocess.Popen([f"{build}/sockpool-client", "load", "-H", "127.0.0.1", "-p",
                               str(front), "-c", str(CONNS), "-s", str(SIZE), "-d",
                               f"{DURATION}s", "--interval", f"{int(INTERVAL * 1000)}ms",
                               "--reconnect=10ms:200ms", "--json-stream", stream],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    points, pos, kill_s = [], 0, None
    end = time.monotonic() + DURATION + 15
    while client.poll() is None and time.monotonic() < end:
        new, pos = read_stream(stream, pos)
        points += [p for p in new if "interval" in p]
        if kill_s is None and len(points) >= KILL_AFTER:
            servers[0].send_signal(signal.SIGKILL)
            kill_s = points[-1]["end_s"]
            print(f"scaleout: SIGKILL to instance 1 at t={kill_s:.2f} s of the load")
        time.sleep(0.01)
    if client.poll() is None:
        client.kill()
        fail("the load client did not finish")
    out, err = client.communicate()
    new, pos = read_stream(stream, pos)
    points += [p for p in new if "interval" in p]
    summary = [p for p in new if "params" in p] or [None]
    if kill_s is None:
        fail(f"the load never ran {KILL_AFTER} intervals: {err[-2000:]}")
    return client.returncode, points, summary[-1], kill_s, out


def report(rc, points, summary, kill_s):
    before = [p for p in points if p["end_s"] <= kill_s]
    after = [p for p in points if p["start_s"] >= kill_s]
    n_before = sum(p["messages"] for p in before)
    n_after = sum(p["messages"] for p in after)
    rate_before = n_before / max(kill_s, 1e-9)
    recovered = next((p for p in after if p["msgs_per_s"] >= 0.5 * rate_before), None)
    errs = summary["errors"] if summary else {}
    conns = summary["connections"] if summary else {}
    print(f"scaleout: exchanges before the kill {n_before} ({rate_before:.0f}/s), after it "
          f"{n_after} ({n_after / max(DURATION - kill_s, 1e-9):.0f}/s)")
    print("scaleout: errors by kind: " + ", ".join(f"{k} {v}" for k, v in errs.items()))
    print(f"scaleout: connections cut by the kill and replaced {conns.get('replaced')}, "
          f"reconnect failures {conns.get('reconnect_failures')}")
    if recovered is not None:
        print(f"scaleout: time to recover: the rate was back to >= 50% of the rate before in "
              f"the interval ending {recovered['end_s'] - kill_s:.2f} s after the kill; the "
              f"longest any connection waited for a reply: {conns.get('longest_gap_ms')} ms")
    if rc != 0:
        fail(f"the load client exited {rc} (3: a reply byte was wrong)")
    if errs.get("mismatches", 1) != 0:
        fail("replies were not byte-exact")
    # A connection cut by the kill loses at most the one exchange it had in flight.
    cut = errs.get("short_replies", 0) + errs.get("resets", 0) + errs.get("closed", 0)
    if cut > conns.get("replaced", 0) or errs.get("other", 0) or errs.get("local", 0):
        fail(f"more errors ({cut}) than connections the kill cut ({conns.get('replaced')})")
    if n_after == 0 or not after or after[-1]["messages"] == 0:
        fail("no exchange completed after the kill")
    if recovered is None:
        fail("the rate never came back to half of what it was before the kill")


def main():
    build, cfg_src = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="sp-scaleout-") as tmp:
        procs = []
        try:
            servers = [start_server(build, tmp, n) for n in ("sp1", "sp2")]
            procs += [p for p, _ in servers]
            front = free_port()
            cfg = haproxy_config(cfg_src, tmp, front, [port for _, port in servers])
            hlog = open(os.path.join(tmp, "haproxy.log"), "w")
            ha = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=hlog, stderr=hlog)
            procs.append(ha)
            wait_for(lambda: server_states(tmp).get("sp1") == "UP" and
                     server_states(tmp).get("sp2") == "UP", "HAProxy with both servers UP")
            print(f"scaleout: HAProxy on 127.0.0.1:{front} (leastconn, maxconn "
                  f"{WORKERS + QUEUE} per server) -> sockpool on ports "
                  f"{servers[0][1]} and {servers[1][1]}; {CONNS} connections, {SIZE} B, "
                  f"{DURATION:.0f} s")
            rc, points, summary, kill_s = run_load(build, tmp, front,
                                                    [p for p, _ in servers])[:4]
            states = server_states(tmp)
            print(f"scaleout: HAProxy now sees sp1 {states.get('sp1')}, sp2 {states.get('sp2')}")
            report(rc, points, summary, kill_s)
            if states.get("sp1", "").startswith("UP") or states.get("sp2") != "UP":
                fail("HAProxy did not mark the dead instance DOWN and keep the survivor UP")
            print("scaleout: passed: no reply byte wrong, exchanges went on through the survivor")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()


if __name__ == "__main__":
    main()
