// One prom-client series (a metric with every label fixed), recorded without
// the per-call work prom-client does on every `observe`/`inc`, even through
// its `labels()` children: it checks each label name against the metric's,
// builds the series' key string from the label values, and a histogram then
// turns the bucket's float bound into a property name. An upstream attempt
// records nine series; at worker load that was about a third of the
// executor's own CPU (CPU profile, executor with a stub client).
//
// prom-client (15.x) has no cheaper public way to record, so a series here
// is found by recording once through the public API, then updated in place:
// the entry prom-client keeps for it (`hashMap[key]`: a histogram's sum,
// count and per-bound bucket counts; a counter's value) is the state
// prom-client renders on a scrape. Whatever the fast path cannot vouch for
// goes through the public call: a value prom-client would refuse (so it
// throws the same error), a series reset or removed since (`resetMetrics()`:
// its entry is recreated by the public call and found again), and metrics
// whose internals do not look as expected (exemplars on, another version).
// test/prom-series.test.ts renders both ways and compares the text.

import type { Counter, Histogram, LabelValues } from 'prom-client';

/** A histogram series with its labels bound. */
export interface HistogramSeries {
  observe(value: number): void;
}

/** A counter series with its labels bound. */
export interface CounterSeries {
  inc(value?: number): void;
}

interface Entry {
  readonly labels: Record<string, string | number>;
}
interface HistogramEntry extends Entry {
  sum: number;
  count: number;
  bucketValues: Record<string, number>;
}
interface CounterEntry extends Entry {
  value: number;
}
interface Internals<E> {
  hashMap?: Record<string, E>;
  enableExemplars?: boolean;
  upperBounds?: readonly number[];
}

/** The key and entry of the series whose labels are `labels`, once it was recorded. */
function locate<E extends Entry>(metric: Internals<E>, labels: Readonly<Record<string, string | number | undefined>>): { key: string; entry: E } | undefined {
  const map = metric.hashMap;
  if (!map) return undefined;
  const names = Object.keys(labels).filter((n) => labels[n] !== undefined);
  for (const key of Object.keys(map)) {
    const entry = map[key];
    const have = entry?.labels;
    if (!have || Object.keys(have).filter((n) => have[n] !== undefined).length !== names.length) continue;
    if (names.every((n) => String(have[n]) === String(labels[n]))) return { key, entry };
  }
  return undefined;
}

/** `histogram`'s series for `labels` (validated now, as prom-client's `labels()` does). */
export function histogramSeries<T extends string>(histogram: Histogram<T>, labels: LabelValues<T>): HistogramSeries {
  const child = histogram.labels(labels);
  const metric = histogram as unknown as Internals<HistogramEntry>;
  const bounds = metric.upperBounds;
  if (metric.enableExemplars || typeof metric.hashMap !== 'object' || !Array.isArray(bounds)) return child;
  // the property names prom-client keys bucket counts by
  const names = bounds.map(String);
  let key = '';
  let entry: HistogramEntry | undefined;
  return {
    observe(value: number): void {
      if (entry === undefined || metric.hashMap![key] !== entry || !Number.isFinite(value)) {
        child.observe(value);
        const found = locate(metric, labels);
        if (found && typeof found.entry.count === 'number' && typeof found.entry.bucketValues === 'object') ({ key, entry } = found);
        else entry = undefined;
        return;
      }
      entry.sum += value;
      entry.count += 1;
      // above the last bound only +Inf counts it, and prom-client derives that from count
      for (let i = 0; i < bounds.length; i++) {
        if (value <= bounds[i]) {
          entry.bucketValues[names[i]] += 1;
          break;
        }
      }
    },
  };
}

/** `counter`'s series for `labels`. */
export function counterSeries<T extends string>(counter: Counter<T>, labels: LabelValues<T>): CounterSeries {
  const child = counter.labels(labels);
  const metric = counter as unknown as Internals<CounterEntry>;
  if (metric.enableExemplars || typeof metric.hashMap !== 'object') return child;
  let key = '';
  let entry: CounterEntry | undefined;
  return {
    inc(value = 1): void {
      // NaN, Infinity and negatives take prom-client's own path (and its errors)
      if (entry === undefined || metric.hashMap![key] !== entry || !(value >= 0 && value !== Infinity)) {
        child.inc(value);
        const found = locate(metric, labels);
        if (found && typeof found.entry.value === 'number') ({ key, entry } = found);
        else entry = undefined;
        return;
      }
      entry.value += value;
    },
  };
}
