import { readFileSync } from 'node:fs';
import * as net from 'node:net';

/**
 * Ports for local processes (agents, nats-server) come from below the
 * kernel's ephemeral range: a port the OS hands out for `listen(0)` is in
 * that range, so between our probe and the child's bind an outgoing
 * connection (to the mock, to a peer) can take it and the child fails with
 * EADDRINUSE. Below the range only listeners compete, and the probe sees
 * those. A rotating cursor keeps one run from handing the same port out twice.
 */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32768; // Linux's default; other systems use 49152, above it
  }
})();
const PORT_POOL = { low: Math.max(1025, EPHEMERAL_LOW - 12000), high: EPHEMERAL_LOW };
let portCursor = PORT_POOL.low + Math.floor(Math.random() * (PORT_POOL.high - PORT_POOL.low));

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

/** A TCP port nothing listens on now, for a child process to bind. */
export async function freePort(): Promise<number> {
  if (PORT_POOL.high - PORT_POOL.low < 1000) {
    // no room below the ephemeral range: let the OS choose
    return new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
  }
  for (let i = 0; i < 200; i++) {
    const port = portCursor;
    portCursor = portCursor + 1 >= PORT_POOL.high ? PORT_POOL.low : portCursor + 1;
    if (await probe(port)) return port;
  }
  throw new Error(`no free port in ${PORT_POOL.low}-${PORT_POOL.high - 1} after 200 tries`);
}
