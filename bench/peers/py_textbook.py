#!/usr/bin/env python3
"""The textbook Python server that sockpool replaces: socketserver.ThreadingTCPServer, one new
thread per connection, recv(1024) / sendall(data.upper()) until EOF.

Usage: py_textbook.py PORT [--port-file FILE]   (127.0.0.1 only; PORT 0 picks a free port)

Everything is left at socketserver's defaults on purpose: the listen backlog of 5
(request_queue_size) and no TCP_NODELAY are what a reader of the docs gets, and what the
benchmark measures. bytes.upper() changes only ASCII a-z, like the protocol asks.
"""
import os
import socketserver
import sys


class UpperHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            self.request.sendall(data.upper())


def write_port_file(path, port):
    """Write "PORT\\n" atomically: a temp file renamed over the target."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, path)


def main(argv):
    if not (len(argv) == 2 or (len(argv) == 4 and argv[2] == "--port-file")) \
            or not argv[1].isdigit() or int(argv[1]) > 65535:
        print("usage: py_textbook.py PORT [--port-file FILE]", file=sys.stderr)
        return 2
    try:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", int(argv[1])), UpperHandler)
    except OSError as e:
        print(f"py_textbook.py: listen 127.0.0.1:{argv[1]}: {e.strerror}", file=sys.stderr)
        return 1
    with server:
        if len(argv) == 4:
            write_port_file(argv[3], server.server_address[1])
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
