import { EventEmitter } from 'node:events';
import { PeerSession } from '../src/coordination/session';
import { FlushScheduler } from '../src/grpc/flush';
import { TaskBatch, WireTask } from '../src/grpc/service';

// When a Session's queued messages are written (grpc/flush.ts): a task or
// result nothing else can join goes out as soon as the code that queued it
// is done, without waiting for the end of the event-loop turn; what is
// queued together still goes as one message, and what others may join this
// turn (or comes after the stream wrote in it) waits for the turn's end.

const tick = () => new Promise<void>((r) => process.nextTick(r));
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('FlushScheduler', () => {
  test('the first request of a turn is flushed after the current code, before the turn ends', async () => {
    const flushes: string[] = [];
    let queued: string[] = [];
    const f = new FlushScheduler(() => {
      flushes.push(queued.join(','));
      queued = [];
    });
    const queue = (x: string) => {
      queued.push(x);
      f.request();
    };
    // queued in one piece of code, including its promise continuations: one flush
    queue('a');
    await Promise.resolve();
    queue('b');
    await tick();
    expect(flushes).toEqual(['a,b']);

    // later in the same turn: held until the turn ends, then one flush
    queue('c');
    await tick();
    queue('d');
    await tick();
    expect(flushes).toEqual(['a,b']);
    await turn();
    expect(flushes).toEqual(['a,b', 'c,d']);

    // a turn with nothing queued: the next request goes at once again
    await turn();
    await turn();
    queue('e');
    await tick();
    expect(flushes).toEqual(['a,b', 'c,d', 'e']);
    await turn();
    await turn();
  });

  test('a request that others may join this turn waits for the turn to end, and they go with it', async () => {
    const flushes: string[] = [];
    let queued: string[] = [];
    const f = new FlushScheduler(() => {
      flushes.push(queued.join(','));
      queued = [];
    });
    queued.push('a');
    f.request(true);
    await tick();
    expect(flushes).toEqual([]);
    queued.push('b');
    f.request(); // the last one: joins the batch already waiting
    await tick();
    expect(flushes).toEqual([]);
    await turn();
    expect(flushes).toEqual(['a,b']);
    await turn();
    await turn();
  });
});

describe('PeerSession writes', () => {
  /** A Session call that records what is written on it. */
  function fakeClient() {
    const writes: TaskBatch[] = [];
    const call = Object.assign(new EventEmitter(), {
      write: (b: TaskBatch) => {
        writes.push(b);
        return true;
      },
      end: () => undefined,
    });
    return { writes, client: { Session: () => call } as never };
  }
  const task = (id: string): WireTask => ({ id, messages: [{ role: 'user', content: id }], job_id: 'job', deadline_unix_ms: Date.now() + 5000 });

  test('a fan-out goes out as one batch, written before the event-loop turn ends', async () => {
    const { writes, client } = fakeClient();
    const s = new PeerSession(client, 'pod', 1 << 20, () => undefined);
    const expires = Date.now() + 5000;
    for (const id of ['t0', 't1', 't2']) void s.send(task(id), 1, expires, 200);
    await tick();
    expect(writes.map((w) => w.tasks.map((t) => t.id))).toEqual([['t0', 't1', 't2']]);
    expect(writes[0].hop).toBe(1);
    s.end();
    await turn();
  });
});
