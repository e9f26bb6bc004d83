import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { counterSeries, histogramSeries } from '../src/telemetry/prom-series';

// A bound series must render exactly what prom-client's own calls render:
// two registries get the same operations, one through the series, one
// through observe/inc with labels, and their texts are compared.

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 1, 10];
const LABELS = [
  { model: 'gpt-4.1', kind: 'prompt' },
  { model: 'gpt-4.1', kind: 'completion' },
  { model: 'claude-sonnet-4.5', kind: 'prompt' },
] as const;

function metricsOn(registry: Registry) {
  return {
    histogram: new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['model', 'kind'], buckets: BUCKETS, registers: [registry] }),
    counter: new Counter({ name: 'c_total', help: 'c', labelNames: ['model', 'kind'], registers: [registry] }),
  };
}

type Op = { kind: 'observe' | 'inc'; series: number; value: number } | { kind: 'reset' };

const value = fc.oneof(
  fc.constantFrom(0, ...BUCKETS, 11, 1e9),
  fc.double({ min: 0, max: 20, noNaN: true }),
  fc.integer({ min: 0, max: 100_000 }),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constantFrom('observe' as const, 'inc' as const), series: fc.nat(LABELS.length - 1), value }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reset' as const }) },
);

test('bound series render the same text as prom-client calls with labels, across resets', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
      const plainRegistry = new Registry();
      const boundRegistry = new Registry();
      const plain = metricsOn(plainRegistry);
      const bound = metricsOn(boundRegistry);
      const hs = LABELS.map((l) => histogramSeries(bound.histogram, l));
      const cs = LABELS.map((l) => counterSeries(bound.counter, l));
      for (const o of ops) {
        if (o.kind === 'reset') {
          plainRegistry.resetMetrics();
          boundRegistry.resetMetrics();
        } else if (o.kind === 'observe') {
          plain.histogram.observe(LABELS[o.series], o.value);
          hs[o.series].observe(o.value);
        } else {
          plain.counter.inc(LABELS[o.series], o.value);
          cs[o.series].inc(o.value);
        }
      }
      expect(await boundRegistry.metrics()).toBe(await plainRegistry.metrics());
    }),
    { numRuns: 200 },
  );
});

test('inc() without a value adds 1, as prom-client does', async () => {
  const plainRegistry = new Registry();
  const boundRegistry = new Registry();
  const plain = metricsOn(plainRegistry);
  const series = counterSeries(metricsOn(boundRegistry).counter, LABELS[0]);
  for (let i = 0; i < 3; i++) {
    plain.counter.inc(LABELS[0]);
    series.inc();
  }
  expect(await boundRegistry.metrics()).toBe(await plainRegistry.metrics());
});

test('values prom-client refuses are refused with its errors, before and after the series exists', () => {
  const { histogram, counter } = metricsOn(new Registry());
  const h = histogramSeries(histogram, LABELS[0]);
  const c = counterSeries(counter, LABELS[0]);
  for (const when of ['first', 'later']) {
    expect(() => h.observe(NaN)).toThrow(/not a valid number/);
    expect(() => c.inc(Infinity)).toThrow(/not a valid number/);
    expect(() => c.inc(-1)).toThrow(/not possible to decrease/);
    if (when === 'first') {
      h.observe(1);
      c.inc(1);
    }
  }
});

test('a label the metric does not have is refused when the series is bound', () => {
  const { histogram } = metricsOn(new Registry());
  expect(() => histogramSeries(histogram, { model: 'gpt-4.1', tier: 'x' } as never)).toThrow(/not included in initial labelset/);
});

// The fast path reads prom-client's per-series state; if an upgrade changes
// it, series fall back to the public calls (correct, but slow again): this
// test says so, rather than the CPU profile weeks later.
test("prom-client keeps the per-series state the fast path updates", () => {
  const { histogram, counter } = metricsOn(new Registry());
  histogram.observe(LABELS[0], 0.02);
  counter.inc(LABELS[0], 2);
  const h = Object.values((histogram as unknown as { hashMap: Record<string, { count: number; sum: number; bucketValues: Record<string, number> }> }).hashMap);
  expect(h).toEqual([expect.objectContaining({ count: 1, sum: 0.02, bucketValues: expect.objectContaining({ '0.025': 1, '0.01': 0 }) })]);
  expect((histogram as unknown as { upperBounds: number[] }).upperBounds).toEqual(BUCKETS);
  const c = Object.values((counter as unknown as { hashMap: Record<string, { value: number }> }).hashMap);
  expect(c).toEqual([expect.objectContaining({ value: 2 })]);
});
