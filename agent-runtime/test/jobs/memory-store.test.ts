import * as jobsJson from '../../src/http/jobs';
import { MemoryJobService } from '../../src/jobs/memory-store';
import { body, collect, fakeAgent, jobStoreContract, parse } from './store-contract';

describe('MemoryJobService', () => {
  jobStoreContract(async (execute) => new MemoryJobService({ parse, execute }), false);

  test('a job nobody watches renders each result once, for the answer; its event log is rendered when read', async () => {
    const store = new MemoryJobService({ parse, execute: fakeAgent(4).execute });
    const render = jest.spyOn(jobsJson, 'resultJson');
    try {
      const { jobId } = await store.submit(body(['a', 'b', 'c']), {});
      const settled = await store.settle(jobId, {});
      expect(settled?.view.status).toBe('succeeded');
      expect(render).toHaveBeenCalledTimes(3);
      const events = await collect(await store.events(jobId, {}, undefined, new AbortController().signal));
      // the log replays in finish order from what was recorded: ids 1..3, then done with the same view
      expect(events.map((e) => `${e.id} ${e.event}`)).toEqual(['1 result', '2 result', '3 result', '4 done']);
      expect(events.slice(0, 3).map((e) => (e.data as { id: string }).id).sort()).toEqual(['t0', 't1', 't2']);
      expect(events[3].data).toEqual(settled?.view);
    } finally {
      render.mockRestore();
      await store.close();
    }
  });
});
