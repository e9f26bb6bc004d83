import * as net from 'node:net';

/**
 * What the proxy does to traffic:
 * - `pass`: forwards bytes both ways.
 * - `blackhole`: a network partition that drops packets: connections stay
 *   open, nothing is delivered either way, new connections are accepted and
 *   go nowhere. The sender only learns of it through its own timers
 *   (gRPC keepalive, deadlines).
 * - `reset`: a partition that refuses: every open connection is destroyed
 *   and new ones are closed at once (the caller sees ECONNRESET).
 */
export type ProxyMode = 'pass' | 'blackhole' | 'reset';

export interface TcpProxy {
  /** `127.0.0.1:<port>` to give the caller instead of the target. */
  readonly address: string;
  readonly port: number;
  mode(): ProxyMode;
  setMode(mode: ProxyMode): void;
  /** Connections accepted so far (a partition test checks traffic went through). */
  connections(): number;
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
}

/**
 * A loopback TCP proxy for fault injection between two agents.
 * Hand-written because the known fault proxies (toxiproxy and the like) are
 * separate binaries this machine cannot download; this one needs only
 * node:net and is ~80 lines.
 */
export async function startTcpProxy(target: string, initial: ProxyMode = 'pass'): Promise<TcpProxy> {
  const [host, portText] = splitHostPort(target);
  const targetPort = Number(portText);
  let current: ProxyMode = initial;
  let accepted = 0;
  const pairs = new Set<Pair>();

  const server = net.createServer((client) => {
    accepted += 1;
    if (current === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host, port: targetPort });
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    // Forward by hand rather than pipe(): in blackhole mode the bytes must be
    // read and discarded, not buffered for later delivery.
    client.on('data', (chunk) => {
      if (current === 'pass') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (current === 'pass') client.write(chunk);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    address: `127.0.0.1:${port}`,
    port,
    mode: () => current,
    setMode(mode) {
      current = mode;
      if (mode === 'reset') {
        for (const pair of pairs) {
          pair.client.resetAndDestroy();
          pair.upstream.destroy();
        }
        pairs.clear();
      }
    },
    connections: () => accepted,
    close: async () => {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function splitHostPort(address: string): [string, string] {
  const at = address.lastIndexOf(':');
  if (at <= 0) throw new Error(`expected host:port, got '${address}'`);
  return [address.slice(0, at), address.slice(at + 1)];
}
