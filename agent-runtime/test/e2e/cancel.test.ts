import { LocalCluster, startLocalCluster } from '../../src/local/launcher';
import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { synthesizedManifests, tasks } from '../support/cluster';
import { cancelJob, submitAsync, waitForJob } from '../support/jobs';

// DELETE /v1/jobs/<id> aborts the upstream calls already in flight, not
// only the tasks still waiting: the cancel crosses every gRPC hop (the
// Session's cancel_job_ids) to the worker, whose call to the upstream is
// aborted. Hub-and-spoke (one hop) and hierarchical (two hops).

const API_KEY = 'sk-local-test-123456';
let mock: MockUpstream;
let manifests: ReturnType<typeof synthesizedManifests>;

beforeAll(async () => {
  manifests = synthesizedManifests();
  // each call would take a minute: only an abort ends it sooner
  mock = await startMockUpstream({ apiKey: API_KEY, latencyMs: 60_000 });
});
afterAll(async () => {
  await mock?.close();
});

const until = async (what: () => boolean, label: string, capMs = 30_000) => {
  const end = Date.now() + capMs;
  while (!what()) {
    if (Date.now() > end) throw new Error(`${label}: not reached (mock: ${JSON.stringify({ ...mock.stats(), times: undefined, models: undefined })})`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.each(['hub-and-spoke', 'hierarchical'] as const)('%s', (topology) => {
  let cluster: LocalCluster;
  beforeAll(async () => {
    cluster = await startLocalCluster({ manifests: manifests[topology], upstreamUrl: mock.url, apiKey: API_KEY, logs: 'ignore', readyTimeoutMs: 90000 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  afterEach(() => mock.reset());

  test('DELETE aborts the calls in flight at the workers: the upstream sees them go, none is answered', async () => {
    const sub = await submitAsync(cluster.entryUrl, { tasks: tasks(3, 'c'), deadline_ms: 110_000 });
    expect(sub.status).toBe(202);
    await until(() => mock.stats().concurrent === 3, 'three calls open at the upstream');
    const del = await cancelJob(cluster.entryUrl, sub.body.job_id);
    expect(del.status).toBe(200);
    // within 10 s: the calls would last 60 s and the manifests' attempt timeout is 15 s, so only the cancel closes them this soon
    await until(() => mock.stats().concurrent === 0, 'every call closed by its caller', 10_000);
    expect(mock.stats().abandoned).toBe(3);
    expect(mock.stats().byStatus['200'] ?? 0).toBe(0);
    const view = await waitForJob(cluster.entryUrl, sub.body.job_id);
    expect(view.status).toBe('cancelled');
    expect(view.results!.map((r) => r.error?.code)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    // nothing was sent after the cancel
    expect(mock.stats().calls).toBe(3);
  });
});
