import { KV } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { KvLedger, openBucket } from '../src/budget/kv-ledger';
import { BudgetLine } from '../src/budget/ledger';
import { useNatsServer } from './support/nats';

// The shared ledger against a real nats-server (JetStream KV): several
// ledgers on one bucket stand for several replicas.

const nats = useNatsServer();
const line = (key: string, limitNano: number): BudgetLine => ({ key, kind: 'job', limitNano, label: `job budget_usd of ${key}` });
const store = (bucket: string) => ({ url: nats.url, stream: 'jobs', consumer: 'runners', bucket, replicas: 1 });

test('two ledgers on one bucket: compare-and-set conflicts are retried and no update is lost', async () => {
  const a = await KvLedger.open(store('cas'));
  const b = await KvLedger.open(store('cas'));
  try {
    const ln = line('budget.job.cas', 1_000_000);
    // 2 x 100 reservations of 10 settled at 7, interleaved across the two "replicas"
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const l = i % 2 === 0 ? a : b;
        const r = await l.reserve([ln], 10);
        if (!r.ok) throw new Error('refused');
        await l.settle(r.reservation, 7);
      }),
    );
    expect(await a.read(ln.key)).toEqual({ spentNano: 1400, reservedNano: 0 });
    expect(await b.read(ln.key)).toEqual({ spentNano: 1400, reservedNano: 0 });
    // the two wrote the same key at once: at least one of them lost a race and retried
    expect(a.conflicts + b.conflicts).toBeGreaterThan(0);
  } finally {
    await a.close();
    await b.close();
  }
});

test('three ledgers racing for one budget: held plus spent never passes the limit, and the settled total stays within it', async () => {
  const ledgers = await Promise.all([0, 1, 2].map(() => KvLedger.open(store('race'))));
  try {
    const ln = line('budget.job.race', 1000);
    let granted = 0;
    await Promise.all(
      Array.from({ length: 150 }, async (_, i) => {
        const l = ledgers[i % 3];
        const r = await l.reserve([ln], 30);
        if (!r.ok) return;
        granted += 1;
        const s = await l.read(ln.key);
        expect(s.spentNano + s.reservedNano).toBeLessThanOrEqual(1000);
        await l.settle(r.reservation, 25);
      }),
    );
    const s = await ledgers[0].read(ln.key);
    expect(s.reservedNano).toBe(0);
    expect(s.spentNano).toBe(granted * 25);
    expect(s.spentNano).toBeLessThanOrEqual(1000);
    // room for 33 concurrent holds of 30 at first, more as settles free it
    expect(granted).toBeGreaterThanOrEqual(33);
  } finally {
    await Promise.all(ledgers.map((l) => l.close()));
  }
});

test('a refusal on one line gives back what the other lines held', async () => {
  const l = await KvLedger.open(store('multi'));
  try {
    const roomy = line('budget.tenant.t.2026-11-27', 10_000);
    const tight = line('budget.job.tight', 50);
    expect((await l.reserve([roomy, tight], 40)).ok).toBe(true);
    const r = await l.reserve([roomy, tight], 40);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.line.key).toBe(tight.key);
    expect(await l.read(roomy.key)).toEqual({ spentNano: 0, reservedNano: 40 });
    expect(await l.read(tight.key)).toEqual({ spentNano: 0, reservedNano: 40, refusedNano: 40 });
  } finally {
    await l.close();
  }
});

test('within one process, changes that arrive during a write go together in the next compare-and-set, and each keeps its own outcome', async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const kv = await openBucket(nc, 'batch', 1);
    let writes = 0;
    const counted = Object.assign(Object.create(kv) as KV, {
      update: (...a: Parameters<KV['update']>) => ((writes += 1), kv.update(...a)),
      create: (...a: Parameters<KV['create']>) => ((writes += 1), kv.create(...a)),
    });
    const l = new KvLedger(counted);
    const ln = line('budget.job.batch', 50 * 10);
    const outcomes = await Promise.all(Array.from({ length: 64 }, () => l.reserve([ln], 10)));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(50);
    expect(await l.read(ln.key)).toMatchObject({ spentNano: 0, reservedNano: 500 });
    // 50 holds and a refusal mark took a handful of writes, not 51
    expect(writes).toBeLessThan(10);
  } finally {
    await nc.close();
  }
});

test('an existing bucket is opened as it is, not re-created', async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const kv: KV = await openBucket(nc, 'shared-bucket', 1);
    await kv.put('job.x', 'state');
    const again = await openBucket(nc, 'shared-bucket', 1);
    expect((await again.get('job.x'))?.string()).toBe('state');
  } finally {
    await nc.close();
  }
});
