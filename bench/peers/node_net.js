#!/usr/bin/env node
// The Node.js peer: a `net` server, one event loop, ASCII-uppercase echo until EOF.
//
// Usage: node node_net.js PORT [--port-file FILE]   (127.0.0.1 only; PORT 0 picks a free port)
//
// Written as a Node developer would: TCP_NODELAY on (replies go out as produced), and reading
// pauses while the socket's write buffer is full ('drain' resumes it). Node's default listen
// backlog (511) is kept.
'use strict';
const fs = require('fs');
const net = require('net');

// Each byte's ASCII uppercase form. A table lookup has no data-dependent branch: mixed-case
// input costs what any other input costs (an `if (c >= 0x61 ...)` loop mispredicts on it).
const UPPER = new Uint8Array(256).map((_, c) => (c >= 0x61 && c <= 0x7a ? c - 0x20 : c));

// ASCII a-z to A-Z in place; every other byte unchanged (String.toUpperCase would touch
// Latin-1 letters and change lengths).
function upperInPlace(buf) {
  for (let i = 0; i < buf.length; i++) buf[i] = UPPER[buf[i]];
  return buf;
}

function writePortFile(path, port) {
  const tmp = `${path}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, path);
}

function main(argv) {
  const ok = (argv.length === 1 || (argv.length === 3 && argv[1] === '--port-file')) &&
    /^[0-9]+$/.test(argv[0]) && Number(argv[0]) <= 65535;
  if (!ok) {
    process.stderr.write('usage: node_net.js PORT [--port-file FILE]\n');
    process.exit(2);
  }
  const server = net.createServer({ noDelay: true }, (sock) => {
    sock.on('data', (data) => {
      if (!sock.write(upperInPlace(data))) {
        sock.pause();
        sock.once('drain', () => sock.resume());
      }
    });
    sock.on('error', () => sock.destroy()); // a reset peer ends only its connection
  });
  server.on('error', (err) => {
    process.stderr.write(`node_net.js: listen 127.0.0.1:${argv[0]}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen({ host: '127.0.0.1', port: Number(argv[0]) }, () => {
    if (argv.length === 3) writePortFile(argv[2], server.address().port);
  });
  // The bench stops peers with SIGTERM; exit at once (status 0), open connections or not.
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

main(process.argv.slice(2));
