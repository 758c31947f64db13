#!/usr/bin/env python3
"""Byte-exact check of a server speaking the protocol: every byte value, sizes from 1 byte to
1 MiB, several connections at once, and the half-close (everything sent before SHUT_WR is
answered before the server's EOF). The load client checks correctness under load; this checks
the corners it does not reach (non-ASCII bytes, the reply to a half-closed connection).

Usage: peercheck.py PORT [CONNS]   exit 0 if every reply was right, 1 otherwise.
"""
import random
import selectors
import socket
import sys
import time

TIMEOUT_S = 20.0


def expected(data):
    # The protocol's transform, written independently of bytes.upper(): a-z -> A-Z only.
    return bytes(c - 32 if 97 <= c <= 122 else c for c in data)


def payloads(rng, conns):
    sizes = [1, 2, 63, 64, 65, 1023, 1024, 1025, 4096, 65535, 65536, 65537, 1 << 20]
    out = [bytes(range(256)) * 4]
    for i in range(conns - 1):
        out.append(rng.randbytes(sizes[i % len(sizes)]))
    return out


def run(port, conns, seed=1):
    """Send every payload on its own connection, all at once, half-close each, and compare
    what comes back until EOF. Returns a list of failure descriptions."""
    rng = random.Random(seed)
    sel = selectors.DefaultSelector()
    want, got, todo = {}, {}, {}
    for data in payloads(rng, conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        s.setblocking(False)
        want[s], got[s], todo[s] = expected(data), bytearray(), memoryview(data)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    deadline = time.monotonic() + TIMEOUT_S
    failures, open_socks = [], len(want)
    while open_socks and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE and todo[s] is not None:
                n = s.send(todo[s][:65536]) if len(todo[s]) else 0
                todo[s] = todo[s][n:]
                if not len(todo[s]):
                    s.shutdown(socket.SHUT_WR)
                    todo[s] = None
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                try:
                    chunk = s.recv(1 << 16)
                except ConnectionResetError:
                    chunk = b""
                    failures.append(f"{len(want[s])} B: connection reset")
                got[s] += chunk
                if not chunk:
                    sel.unregister(s)
                    s.close()
                    open_socks -= 1
    for s in want:
        if bytes(got[s]) != want[s]:
            bad = next((i for i, (a, b) in enumerate(zip(got[s], want[s])) if a != b), None)
            failures.append(f"{len(want[s])} B sent, {len(got[s])} B back, first wrong byte "
                            f"at {bad if bad is not None else min(len(got[s]), len(want[s]))}")
        if s.fileno() >= 0:
            s.close()
    if open_socks:
        failures.append(f"{open_socks} connections unanswered after {TIMEOUT_S} s")
    return failures


def main(argv):
    if len(argv) not in (2, 3) or not all(a.isdigit() for a in argv[1:]):
        print("usage: peercheck.py PORT [CONNS]", file=sys.stderr)
        return 2
    failures = run(int(argv[1]), int(argv[2]) if len(argv) == 3 else 16)
    if failures:
        more = f" (and {len(failures) - 2} more)" if len(failures) > 2 else ""
        print(f"peercheck: {'; '.join(failures[:2])}{more}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
