import { ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './ports';

/** How to get the binary; every "missing nats-server" message carries it verbatim. */
export const NATS_INSTALL_COMMAND = 'apt-get install -y nats-server';

/** `nats-server` is not on PATH. */
export class NatsServerNotFoundError extends Error {
  constructor(searched: string) {
    super(`nats-server was not found on PATH (${searched || 'empty'}): install it with \`${NATS_INSTALL_COMMAND}\` (Debian/Ubuntu), or put a nats-server 2.9+ binary on PATH`);
    this.name = 'NatsServerNotFoundError';
  }
}

export interface NatsServerOptions {
  /** Client port. @default a free port */
  readonly port?: number;
  /** Monitoring (HTTP) port. @default a free port */
  readonly monitorPort?: number;
  /** JetStream store directory; kept on stop when given. @default a fresh temporary directory, removed on stop */
  readonly storeDir?: string;
  /** PATH to look the binary up in. @default process.env.PATH */
  readonly path?: string;
  /** Where the server's own log goes. @default 'ignore' (the tail is kept for error messages) */
  readonly logs?: 'inherit' | 'ignore';
  /** How long to wait for the server to accept connections. @default 15000 */
  readonly readyTimeoutMs?: number;
}

export interface NatsServer {
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** Monitoring base URL, `http://127.0.0.1:<port>` (`/healthz`, `/jsz`, ...). */
  readonly monitorUrl: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  /** The current server process id (changes on restart). */
  readonly pid: number;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s); removes the store directory if it made it. */
  stop(): Promise<void>;
  /**
   * Stops the server and starts it again on the same ports with the same
   * store directory, so streams, consumers and KV survive. `hard` kills it
   * with SIGKILL first, as a crash would.
   */
  restart(opts?: { hard?: boolean }): Promise<void>;
  /**
   * Ends the server process and leaves it down (ports and store kept), e.g.
   * to see what clients do while NATS is unreachable; `start()` brings it
   * back. SIGKILL by default, as a crash.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again after `kill()` (same ports, same store); a no-op while it runs. */
  start(): Promise<void>;
}

/** The absolute path of `nats-server` on `searchPath`, or undefined. */
export function findNatsServer(searchPath: string = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Runs `nats-server` from PATH with JetStream on, bound to loopback, and
 * resolves once it accepts client connections and `/healthz` reports
 * JetStream healthy. For local mode and tests; the caller must `stop()` it.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const searchPath = opts.path ?? process.env.PATH ?? '';
  const binary = findNatsServer(searchPath);
  if (!binary) throw new NatsServerNotFoundError(searchPath);
  const port = opts.port ?? (await freePort());
  const monitorPort = opts.monitorPort ?? (await freePort());
  const ownDir = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? mkdtempSync(path.join(os.tmpdir(), 'nats-js-'));
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15000;
  const args = ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort)];

  let child: ChildProcess;
  let exited: Promise<void>;
  let logTail = '';
  let stopped = false;
  // A test that throws before its stop() must not leave a server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  const isRunning = () => child.exitCode === null && child.signalCode === null;
  const launch = async () => {
    logTail = '';
    child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr?.on('data', (c: Buffer) => {
      logTail = (logTail + c.toString()).slice(-3000);
      if (opts.logs === 'inherit') process.stderr.write(c);
    });
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (!isRunning()) {
        const error = logTail.split('\n').filter((l) => /\[(FTL|ERR)\]/.test(l)).pop() ?? logTail.trim().split('\n').pop();
        throw new Error(`nats-server exited at start (${child.exitCode ?? child.signalCode}): ${error ?? 'no output'}`);
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`nats-server on port ${port} not ready after ${readyTimeoutMs} ms`);
      }
      if (await connects(port)) {
        try {
          const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { headers: { connection: 'close' } });
          await res.arrayBuffer();
          if (res.status === 200) return;
        } catch {
          // monitor not answering yet
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const halt = async (signal: NodeJS.Signals) => {
    if (!isRunning()) return;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    if (isRunning()) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  try {
    await launch();
  } catch (e) {
    process.off('exit', killOnExit);
    if (ownDir) rmSync(storeDir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    monitorUrl: `http://127.0.0.1:${monitorPort}`,
    port,
    monitorPort,
    storeDir,
    get pid() {
      return child.pid ?? -1;
    },
    async stop() {
      stopped = true;
      await halt('SIGTERM');
      process.off('exit', killOnExit);
      if (ownDir) rmSync(storeDir, { recursive: true, force: true });
    },
    async restart(o = {}) {
      if (stopped) throw new Error('nats-server was stopped with stop(); start a new one');
      await halt(o.hard ? 'SIGKILL' : 'SIGTERM');
      await launch();
    },
    async kill(signal = 'SIGKILL') {
      await halt(signal);
    },
    async start() {
      if (stopped) throw new Error('nats-server was stopped with stop(); start a new one');
      if (!isRunning()) await launch();
    },
  };
}
