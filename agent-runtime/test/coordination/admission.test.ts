import { AdmissionExit, FifoSlots, FifoWaitList, STOP } from '../../src/coordination/admission';

// The queue rules on their own: arrival order, hand-off of a freed slot,
// the exits (deadline, cancel, drain) and shedding, with nothing spent by a
// waiter that leaves.

/** A promise and the functions that settle it. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const tick = () => new Promise((r) => setImmediate(r));

test('waiters get freed slots in arrival order; a newcomer arriving in the turn a slot frees queues behind them', async () => {
  const slots = new FifoSlots({ capacity: 2, queueLimit: 100 });
  const order: number[] = [];
  const gates = Array.from({ length: 8 }, () => deferred());
  const runs = gates.map((g, i) =>
    slots.run(Date.now() + 10_000, undefined, async () => {
      order.push(i);
      await g.promise;
    }),
  );
  await tick();
  expect(order).toEqual([0, 1]);
  expect(slots.queued).toBe(6);
  // free one slot and, in the same turn, a newcomer asks for one: the head of the queue gets it
  gates[0].resolve();
  const late = slots.run(Date.now() + 10_000, undefined, async () => {
    order.push(99);
  });
  await tick();
  expect(order).toEqual([0, 1, 2]);
  for (const g of gates.slice(1)) {
    g.resolve();
    await tick();
  }
  await Promise.all([...runs, late]);
  expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 99]);
  expect(slots.inUse).toBe(0);
});

test('a waiter whose deadline comes leaves with reason deadline and never runs; the others keep their turn', async () => {
  const slots = new FifoSlots({ capacity: 1, queueLimit: 100 });
  const hold = deferred();
  let ran = 0;
  const first = slots.run(Date.now() + 10_000, undefined, async () => {
    ran++;
    await hold.promise;
  });
  const short = slots.run(Date.now() + 30, undefined, async () => {
    ran++;
  });
  const long = slots.run(Date.now() + 10_000, undefined, async () => {
    ran++;
    return 'long ran';
  });
  await expect(short).rejects.toMatchObject({ reason: 'deadline' });
  expect(ran).toBe(1);
  expect(slots.queued).toBe(1);
  hold.resolve();
  await first;
  await expect(long).resolves.toBe('long ran');
  expect(ran).toBe(2);
});

test('a waiter leaves at once when its signal aborts, and on drain; nothing of theirs runs', async () => {
  const slots = new FifoSlots({ capacity: 1, queueLimit: 100 });
  const hold = deferred();
  let ran = 0;
  const first = slots.run(Date.now() + 10_000, undefined, () => hold.promise);
  const ac = new AbortController();
  const cancelled = slots.run(Date.now() + 10_000, ac.signal, async () => void ran++);
  const drained = slots.run(Date.now() + 10_000, undefined, async () => void ran++);
  ac.abort(new Error('job cancelled by its client'));
  await expect(cancelled).rejects.toMatchObject({ reason: 'cancelled', message: expect.stringMatching(/job cancelled by its client/) });
  expect(slots.queued).toBe(1);
  slots.drain('agent x is draining');
  await expect(drained).rejects.toMatchObject({ reason: 'drained', message: 'agent x is draining' });
  hold.resolve();
  await first;
  expect(ran).toBe(0);
  expect(slots.inUse).toBe(0);
});

test('a newcomer that could not finish before its deadline behind the queue is shed at once with a retry hint; a full queue refuses', async () => {
  const slots = new FifoSlots({ capacity: 1, queueLimit: 2 });
  // teach it the service time: one call of about 40 ms
  await slots.run(Date.now() + 10_000, undefined, () => new Promise((r) => setTimeout(r, 40)));
  const service = slots.serviceTime.ms!;
  expect(service).toBeGreaterThanOrEqual(35);
  const hold = deferred();
  const first = slots.run(Date.now() + 10_000, undefined, () => hold.promise);
  const waiting = slots.run(Date.now() + 10_000, undefined, async () => 'ok');
  // one waits ahead: this one's slot comes after about 2 service times, then it needs one more
  const shed = slots.run(Date.now() + 2 * service, undefined, async () => 'should not run');
  await expect(shed).rejects.toBeInstanceOf(AdmissionExit);
  await expect(shed).rejects.toMatchObject({ reason: 'shed', retryAfterMs: Math.ceil(2 * service) });
  const queued = slots.run(Date.now() + 10_000, undefined, async () => 'ok');
  await expect(slots.run(Date.now() + 10_000, undefined, async () => 'x')).rejects.toMatchObject({ reason: 'full' });
  hold.resolve();
  await Promise.all([first, waiting, queued]);
});

test('FifoWaitList.serve passes over a waiter that cannot use what freed and stops at STOP', async () => {
  const list = new FifoWaitList<string, { wants: string }>();
  const a = list.wait({ wants: 'x' }, Date.now() + 10_000);
  const b = list.wait({ wants: 'y' }, Date.now() + 10_000);
  const c = list.wait({ wants: 'y' }, Date.now() + 10_000);
  let left = 1;
  list.serve((m) => (left === 0 ? STOP : m.wants === 'y' ? (left--, 'slot-y') : undefined));
  await expect(b).resolves.toBe('slot-y');
  expect(list.metas()).toEqual([{ wants: 'x' }, { wants: 'y' }]);
  list.drain('done');
  await expect(a).rejects.toMatchObject({ reason: 'drained' });
  await expect(c).rejects.toMatchObject({ reason: 'drained' });
});
