/**
 * Runs `fn` over `items` with at most `limit` in flight, results in input
 * order. Hand-written (eight lines) because the libraries that do this
 * (p-limit, p-map) are ESM-only and this package is CommonJS.
 */
export async function runBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>, onEach?: (result: R, index: number) => void): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
      onEach?.(out[i], i); // as each finishes, e.g. to stream it back
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return out;
}
