#!/usr/bin/python3
"""check-reuseport.py SERVER - several instances on one port with --reuseport (SO_REUSEPORT).

Two instances bind the same loopback port with --reuseport; 64 connections are spread over
both by the kernel (each instance's /metrics says how many it accepted, and both must have
some); after one instance stops (SIGTERM, drain), new connections all reach the other. Without
--reuseport a second instance on a taken port exits 1. While sockpool-server has no
--reuseport option, the check says SKIPPED, loudly, and exits 0.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def fail(msg):
    print(f"check-reuseport: FAILED: {msg}")
    sys.exit(1)


def wait_for(pred, what, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    fail(f"no {what} within {timeout} s")


def exchange(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"reuse")
        c.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := c.recv(100):
            out += chunk
    if out != b"REUSE":
        fail(f"got {out!r}")


def start(server, tmp, name, port, extra):
    pf, log = os.path.join(tmp, name + ".port"), os.path.join(tmp, name + ".log")
    p = subprocess.Popen([server, "-p", str(port), "--port-file", pf, "-w", "8",
                          "--metrics", "127.0.0.1:0"] + extra,
                         stderr=open(log, "w"), stdin=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(pf) or p.poll() is not None, f"{name} port file")

    def mport():
        for line in open(log):
            if "(port " in line and "metrics on" in line:
                return int(line.split("(port ")[1].split(")")[0])
        return None
    return p, (wait_for(mport, f"{name} metrics port") if p.poll() is None else None)


def accepted(mport):
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("sockpool_connections_accepted_total "):
            return int(float(line.split()[1]))
    fail("no sockpool_connections_accepted_total")


def main():
    server = sys.argv[1]
    helptext = subprocess.run([server, "--help"], capture_output=True, text=True).stdout
    if "--reuseport" not in helptext:
        print("check-reuseport: SKIPPED: sockpool-server has no --reuseport option yet")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="sp-reuse-") as tmp:
        procs = []
        try:
            a, ma = start(server, tmp, "a", port, ["--reuseport"])
            procs.append(a)
            b, mb = start(server, tmp, "b", port, ["--reuseport"])
            procs.append(b)
            c, _ = start(server, tmp, "c", port, [])
            procs.append(c)
            if c.wait(timeout=10) != 1:
                fail("a third instance without --reuseport did not exit 1 on the taken port")
            for _ in range(64):
                exchange(port)
            na, nb = accepted(ma), accepted(mb)
            print(f"check-reuseport: 64 connections on port {port}: {na} to one instance, "
                  f"{nb} to the other")
            if na + nb != 64 or na == 0 or nb == 0:
                fail("the kernel did not spread the connections over both instances")
            a.send_signal(signal.SIGTERM)
            if a.wait(timeout=15) != 0:
                fail("the first instance did not exit 0 after SIGTERM")
            for _ in range(20):
                exchange(port)
            print(f"check-reuseport: after one stopped, 20 more connections all reached the "
                  f"other ({accepted(mb) - nb} accepted)")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()


if __name__ == "__main__":
    main()
