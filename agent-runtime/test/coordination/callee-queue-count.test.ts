import { AdmissionExit } from '../../src/coordination/admission';
import { CalleeQueue } from '../../src/coordination/callee-queue';
import { PeerPool } from '../../src/coordination/peers';

// The queue-length gauge counts only tasks that really joined the queue: a
// request refused at once (the agent has drained, or its job was already
// cancelled) must not leave a phantom waiter behind, which would inflate
// shedding decisions and the gauge for good.

/** A pool whose every pod is full: nothing can be picked, so every request would wait. */
const fullPool = { onChange: () => undefined, pick: () => undefined, anyRoom: () => false, capacity: () => 1 } as unknown as PeerPool;

function queueWithGauge() {
  const lengths: number[] = [];
  const q = new CalleeQueue(fullPool, 10, () => ({ length: (n) => lengths.push(n), left: () => undefined }));
  return { q, lengths };
}

const request = (signal?: AbortSignal) => ({ key: 'w', eligible: new Set(['w']), exclude: new Set<string>(), waitExclude: new Set<string>(), deadlineAt: Date.now() + 60_000, signal });

test('after a drain, refused requests never count as waiting', async () => {
  const { q, lengths } = queueWithGauge();
  q.drain('agent is draining');
  for (let i = 0; i < 3; i++) await expect(q.acquire(request())).rejects.toBeInstanceOf(AdmissionExit);
  expect(lengths).toEqual([]);
  expect(q.length).toBe(0);
});

test('an already-cancelled request never counts as waiting; a live one does, and leaves on cancel', async () => {
  const { q, lengths } = queueWithGauge();
  const gone = new AbortController();
  gone.abort(new Error('client left'));
  await expect(q.acquire(request(gone.signal))).rejects.toBeInstanceOf(AdmissionExit);
  expect(lengths).toEqual([]);
  const live = new AbortController();
  const waiting = q.acquire(request(live.signal));
  expect(lengths).toEqual([1]);
  live.abort(new Error('client left'));
  await expect(waiting).rejects.toBeInstanceOf(AdmissionExit);
  expect(lengths).toEqual([1, 0]);
});
