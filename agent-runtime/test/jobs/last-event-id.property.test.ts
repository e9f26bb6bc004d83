import fc from 'fast-check';
import { MemoryJobService } from '../../src/jobs/memory-store';
import { body, collect, fakeAgent, parse } from './store-contract';

// Any Last-Event-ID a client sends (a header: user input) resumes the events
// with a suffix of the full stream, in order and without repeats, or the
// whole stream when the id is not one we gave; it never fails the request.

test('any Last-Event-ID yields a suffix of the events, nothing repeated', async () => {
  const store = new MemoryJobService({ parse, execute: fakeAgent().execute });
  const { jobId } = await store.submit(body(['a', 'b', 'c']), {});
  const all = await collect(await store.events(jobId, {}, undefined, new AbortController().signal));
  expect(all.map((e) => e.event)).toEqual(['result', 'result', 'result', 'done']);
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string(), fc.integer({ min: -5, max: 10 }).map(String), fc.constantFrom('1.5', '2e0', ' 2', '0x2')), async (id) => {
      const got = await collect(await store.events(jobId, {}, id, new AbortController().signal));
      const from = all.length - got.length;
      expect(got).toEqual(all.slice(from));
      const given = all.findIndex((e) => e.id === id);
      if (given >= 0) expect(from).toBe(given + 1);
    }),
    { numRuns: 200 },
  );
  await store.close();
});
