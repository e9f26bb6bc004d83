import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { NATS_INSTALL_COMMAND, startNatsServer } from '../src/local/nats';
import { startTestNats, useNatsServer } from './support/nats';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a shared server per file (useNatsServer)', () => {
  const nats = useNatsServer();

  test('runs JetStream: a work-queue stream and a KV bucket with compare-and-set work against it', async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'JOBS', subjects: ['jobs.>'], storage: StorageType.File, retention: RetentionPolicy.Workqueue });
      const ack = await jetstream(nc).publish('jobs.a', 'one');
      expect(ack.stream).toBe('JOBS');
      const kv = await new Kvm(nc).create('state');
      const rev = await kv.create('k', 'v1');
      await expect(kv.update('k', 'v2', rev + 10)).rejects.toThrow();
      expect(await kv.update('k', 'v2', rev)).toBeGreaterThan(rev);
    } finally {
      await nc.close();
    }
    const res = await fetch(`${nats.server.monitorUrl}/healthz?js-enabled-only=true`);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});

test('restart keeps the port and the store: a stream and its messages survive a graceful and a hard restart', async () => {
  const server = await startTestNats();
  try {
    const url = server.url;
    let nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'KEEP', subjects: ['keep.>'], storage: StorageType.File });
    await jetstream(nc).publish('keep.x', 'payload');
    await nc.close();

    for (const hard of [false, true]) {
      const before = server.pid;
      await server.restart({ hard });
      expect(server.url).toBe(url);
      expect(server.pid).not.toBe(before);
      expect(alive(before)).toBe(false);
      nc = await connect({ servers: url });
      const info = await (await jetstreamManager(nc)).streams.info('KEEP');
      expect(info.state.messages).toBe(1);
      await nc.close();
    }
  } finally {
    await server.stop();
  }
});

test('kill leaves it down (clients cannot connect) until start brings it back on the same port with its streams', async () => {
  const server = await startTestNats();
  try {
    let nc = await connect({ servers: server.url });
    await (await jetstreamManager(nc)).streams.add({ name: 'DOWN', subjects: ['down.>'], storage: StorageType.File });
    await nc.close();
    const before = server.pid;
    await server.kill();
    expect(alive(before)).toBe(false);
    await expect(connect({ servers: server.url, reconnect: false, timeout: 1000 })).rejects.toThrow();
    await server.start();
    await server.start(); // a no-op while it runs
    nc = await connect({ servers: server.url });
    expect((await (await jetstreamManager(nc)).streams.info('DOWN')).config.name).toBe('DOWN');
    await nc.close();
  } finally {
    await server.stop();
  }
  await expect(server.start()).rejects.toThrow('stopped with stop()');
  await expect(server.restart()).rejects.toThrow('stopped with stop()');
});

test('stop ends the process, frees the port and removes the temporary store; a given store dir is kept', async () => {
  const server = await startTestNats();
  const { pid, storeDir, port } = server;
  expect(existsSync(storeDir)).toBe(true);
  await server.stop();
  expect(alive(pid)).toBe(false);
  expect(existsSync(storeDir)).toBe(false);
  // the same port is free again: a new server binds it
  const own = mkdtempSync(path.join(os.tmpdir(), 'nats-own-'));
  try {
    const again = await startNatsServer({ port, storeDir: own });
    expect(again.url).toBe(`nats://127.0.0.1:${port}`);
    await again.stop();
    expect(existsSync(own)).toBe(true);
  } finally {
    rmSync(own, { recursive: true, force: true });
  }
});

test('a port already taken is an error quoting the server, not a hang', async () => {
  const first = await startTestNats();
  try {
    await expect(startNatsServer({ port: first.port })).rejects.toThrow(/nats-server exited at start .*address already in use/);
  } finally {
    await first.stop();
  }
});

test('missing binary: the error says how to install it', async () => {
  const empty = mkdtempSync(path.join(os.tmpdir(), 'empty-path-'));
  try {
    await expect(startNatsServer({ path: empty })).rejects.toThrow(NATS_INSTALL_COMMAND);
    await expect(startTestNats({ path: '' })).rejects.toThrow('install it with `apt-get install -y nats-server`');
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
