#!/usr/bin/env node
// Prints N distinct free loopback ports for servers that must come back on the
// same port after a restart (a daemon or Kafka node killed and started again).
// They are chosen below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): a port from that range can be
// taken, while its server is down, as the source port of any outgoing
// connection on the machine (even a client's connection to that very port,
// which then connects to itself), and the restart fails with EADDRINUSE.
// Each port is bound to check it is free; all are held until all are found.
// Usage: node test/support/free-ports.cjs [N]   (ports.ts and scripts/kafka/*.sh use it)
'use strict';
const net = require('node:net');
const fs = require('node:fs');

function ephemeralRange() {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo > 0 && hi >= lo) return [lo, hi];
  } catch {
    // no procfs: Linux's default range
  }
  return [32768, 60999];
}

/** Candidate ports: [10000, start of the ephemeral range), or above its end when that is too small. */
function candidates() {
  const [lo, hi] = ephemeralRange();
  if (lo - 10000 >= 2000) return [10000, lo - 1];
  if (65535 - hi >= 2000) return [hi + 1, 65535];
  return [1024, 65535]; // a range that leaves no room: any port, checked by bind as always
}

function tryListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(null));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(s));
  });
}

async function freePorts(n) {
  const [from, to] = candidates();
  const held = [];
  for (let attempt = 0; held.length < n && attempt < 200 * n; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from + 1));
    if (held.some((s) => s.address().port === port)) continue;
    const s = await tryListen(port);
    if (s !== null) held.push(s);
  }
  const ports = held.map((s) => s.address().port);
  await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  if (ports.length < n) throw new Error(`could not find ${n} free loopback ports in ${from}-${to}`);
  return ports;
}

module.exports = { freePorts };

if (require.main === module) {
  const n = Number(process.argv[2] ?? '1');
  freePorts(Number.isInteger(n) && n > 0 ? n : 1).then(
    (ports) => console.log(ports.join(' ')),
    (err) => {
      console.error(`free-ports: ${err.message}`);
      process.exit(1);
    },
  );
}
