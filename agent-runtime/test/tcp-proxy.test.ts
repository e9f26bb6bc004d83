import * as net from 'node:net';
import { startTcpProxy, TcpProxy } from './support/tcp-proxy';

// An echo server stands in for an agent.
let echo: net.Server;
let echoAddress: string;
let proxy: TcpProxy | undefined;

beforeAll(async () => {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoAddress = `127.0.0.1:${(echo.address() as net.AddressInfo).port}`;
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});
afterAll(async () => {
  await new Promise<void>((r) => echo.close(() => r()));
});

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `text` and resolves with what came back within `waitMs`. */
function roundTrip(socket: net.Socket, text: string, waitMs: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (chunk: Buffer) => {
      got += chunk.toString();
      if (got.length >= text.length) finish();
    };
    const timer = setTimeout(finish, waitMs);
    function finish() {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(got);
    }
    socket.on('data', onData);
    socket.write(text);
  });
}

test('pass mode forwards bytes both ways', async () => {
  proxy = await startTcpProxy(echoAddress);
  const s = await connect(proxy.port);
  expect(await roundTrip(s, 'hello', 2000)).toBe('hello');
  expect(proxy.connections()).toBe(1);
  s.destroy();
});

test('blackhole mode delivers nothing on an open connection and resumes on pass', async () => {
  proxy = await startTcpProxy(echoAddress);
  const s = await connect(proxy.port);
  expect(await roundTrip(s, 'a', 2000)).toBe('a');
  proxy.setMode('blackhole');
  expect(await roundTrip(s, 'lost', 200)).toBe('');
  expect(s.destroyed).toBe(false);
  proxy.setMode('pass');
  expect(await roundTrip(s, 'back', 2000)).toBe('back');
  s.destroy();
});

test('reset mode destroys open connections and refuses new ones', async () => {
  proxy = await startTcpProxy(echoAddress);
  const s = await connect(proxy.port);
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => undefined);
  proxy.setMode('reset');
  await closed;
  const s2 = await connect(proxy.port).catch((e: NodeJS.ErrnoException) => e);
  const outcome = await new Promise<string>((resolve) => {
    if (!(s2 instanceof net.Socket)) return resolve(String(s2.code));
    s2.once('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)));
    s2.once('close', () => resolve('closed'));
  });
  expect(['ECONNRESET', 'closed']).toContain(outcome);
});
