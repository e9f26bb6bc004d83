import pino from 'pino';
import { JetStreamJobService } from '../../src/jobs/jetstream-store';
import { NatsServer } from '../../src/local/nats';
import { startTestNats } from '../support/nats';
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { RequestError } from '../../src/http/jobs';
import { ExecuteJob } from '../../src/jobs/memory-store';
import { body, fakeAgent, jobStoreContract, parse, until } from './store-contract';

// The JetStream store against a real nats-server: the cases both stores
// share, then what only a durable store does (a job outlives its runner,
// a NATS restart, NATS down at submit).

const logger = pino({ level: 'silent' });
let nats: NatsServer;
let n = 0;

beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  await nats?.stop();
});

/** A store on its own stream, consumer and bucket (a fresh job store per test). */
function config(tag = `t${++n}`) {
  return { url: nats.url, stream: `JOBS_${tag}`, consumer: `runners_${tag}`, bucket: `jobs_${tag}`, replicas: 1 };
}

describe('JetStreamJobService', () => {
  jobStoreContract(async (execute) => JetStreamJobService.connect({ config: config(), parse, execute, logger, agentId: 'e-0' }), true);
});

describe('JetStreamJobService, a submitter that waits (it runs the job itself)', () => {
  jobStoreContract(async (execute) => {
    const s = await JetStreamJobService.connect({ config: config(), parse, execute, logger, agentId: 'e-0' });
    const submit = s.submit.bind(s);
    s.submit = (raw, opts) => submit(raw, { ...opts, waits: true });
    return s;
  }, true);
});

describe('durability', () => {
  const stores: JetStreamJobService[] = [];
  const open = async (cfg: ReturnType<typeof config>, execute: ExecuteJob, ackWaitMs = 1_000) => {
    const s = await JetStreamJobService.connect({ config: cfg, parse, execute, logger, agentId: `e-${stores.length}`, ackWaitMs });
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });

  test('a runner that dies mid-job: another replica takes it over and runs only the tasks without a result', async () => {
    const cfg = config();
    // replica A answers three tasks and is stuck on three when it dies (its connection drops: no ack, no nak)
    const a = fakeAgent(6);
    const replicaA = await open(cfg, a.execute);
    const { jobId } = await replicaA.submit(body(['a', 'b', 'c', 'hang', 'hang', 'hang']), {});
    await until(async () => ((await replicaA.get(jobId, {}))?.results?.length ?? 0) === 3, 'three results stored');
    await (replicaA as unknown as { nc: { close(): Promise<void> } }).nc.close();
    const b = fakeAgent(6, { hang: false });
    const replicaB = await open(cfg, b.execute);
    const view = await replicaB.wait(jobId, {});
    expect(view!.status).toBe('succeeded');
    expect(view!.results!.map((r) => (r as { id: string }).id)).toEqual(['t0', 't1', 't2', 't3', 't4', 't5']);
    // finished tasks were not run (billed) again; the three in flight at the death ran once more
    expect(b.calls.sort()).toEqual(['t3', 't4', 't5']);
    expect(view!.total_cost_usd).toBeCloseTo(6 * 0.25, 10);
  });

  test('a replica without lanes (a role that is not the entry) takes jobs but runs none; a runner does', async () => {
    const cfg = config();
    const idle = fakeAgent();
    const front = await JetStreamJobService.connect({ config: cfg, parse, execute: idle.execute, logger, agentId: 'worker-0', lanes: 0 });
    stores.push(front);
    const { jobId } = await front.submit(body(['a', 'b']), {});
    await new Promise((r) => setTimeout(r, 300));
    expect((await front.get(jobId, {}))!.status).toBe('queued');
    const runner = fakeAgent();
    await open(cfg, runner.execute);
    expect((await front.wait(jobId, {}))!.status).toBe('succeeded');
    expect(idle.calls).toEqual([]);
    expect(runner.calls.sort()).toEqual(['t0', 't1']);
  });

  test('a DELETE while the job waits for a lane: the lane that takes it later runs nothing of it', async () => {
    const cfg = config();
    const agent = fakeAgent();
    // one lane, held by a hanging job: the second job stays in the queue until the first ends
    const s = await JetStreamJobService.connect({ config: cfg, parse, execute: agent.execute, logger, agentId: 'e-lane', lanes: 1 });
    stores.push(s);
    const hung = await s.submit(JSON.stringify({ tasks: [{ id: 'h0', prompt: 'hang' }] }), {});
    await until(() => agent.calls.includes('h0'), 'the lane runs the hanging job');
    const { jobId } = await s.submit(JSON.stringify({ tasks: [{ id: 'x0', prompt: 'x' }, { id: 'x1', prompt: 'y' }] }), {});
    // cancelled through another replica: this one still holds the job as it submitted it
    const other = await JetStreamJobService.connect({ config: cfg, parse, execute: fakeAgent().execute, logger, agentId: 'e-front', lanes: 0 });
    stores.push(other);
    expect((await other.cancel(jobId, {}))!.status).toBe('cancelled');
    await s.cancel(hung.jobId, {});
    // the lane takes the cancelled job (its first delivery, submitted here) and acks it
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await until(async () => {
        const info = await jsm.consumers.info(cfg.stream, cfg.consumer);
        return info.delivered.stream_seq >= 2 && info.num_ack_pending === 0 && info.num_pending === 0;
      }, 'the cancelled job taken and acknowledged');
    } finally {
      await nc.close();
    }
    expect(agent.calls).toEqual(['h0']);
    const view = await s.get(jobId, {});
    expect(view!.status).toBe('cancelled');
    expect(view!.results!.map((r) => (r as { error?: { code: string } }).error?.code)).toEqual(['cancelled', 'cancelled']);
  });

  test('a queue message that comes before its record is taken again until the record is there', async () => {
    const cfg = config();
    const agent = fakeAgent();
    // an ack wait longer than the test: only a look again soon after, not a redelivery, gets the job run
    const s = await open(cfg, agent.execute, 60_000);
    const nc = await connect({ servers: nats.url });
    try {
      const jobId = randomUUID();
      const at = new Date().toISOString();
      const raw = body(['a']);
      const rec = { job_id: jobId, kind: 'tasks', body: raw, ids: ['t0'], created_at: at, updated_at: at, status: 'queued' };
      await jetstream(nc).publish(`${cfg.stream}.jobs`, JSON.stringify({ job_id: jobId, rec }));
      await new Promise((r) => setTimeout(r, 300));
      await (await new Kvm(nc).open(cfg.bucket)).create(`${jobId}.job`, JSON.stringify(rec));
      await until(async () => (await s.get(jobId, {}))?.status === 'succeeded', 'the job run once its record is there');
      expect(agent.calls).toEqual(['t0']);
    } finally {
      await nc.close();
    }
  });

  test('another tenant waiting on a job just submitted here gets nothing', async () => {
    const s = await open(config(), fakeAgent().execute);
    const { jobId } = await s.submit(body(['hang']), { tenant: 'acme' });
    expect(await s.wait(jobId, { tenant: 'other' })).toBeUndefined();
    expect(await s.wait(jobId, {})).toBeUndefined();
    expect((await s.cancel(jobId, { tenant: 'acme' }))!.status).toBe('cancelled');
  });

  test('a submitter that waits runs the job itself; the lane that gets its queue message holds it, then acks it', async () => {
    const cfg = config();
    // A's one lane is busy: without running it itself, A's job could only go to B's lanes
    // (its tasks take a while: B's lane gets the message while A still runs it)
    const a = fakeAgent(4, { delayMs: 300 });
    const replicaA = await JetStreamJobService.connect({ config: cfg, parse, execute: a.execute, logger, agentId: 'e-a', lanes: 1 });
    stores.push(replicaA);
    await replicaA.submit(JSON.stringify({ tasks: [{ id: 'h0', prompt: 'hang' }] }), {});
    await until(() => a.calls.includes('h0'), 'A\'s lane busy');
    const b = fakeAgent();
    await open(cfg, b.execute);
    const { jobId } = await replicaA.submit(body(['a', 'b', 'c']), { waits: true });
    const view = await replicaA.wait(jobId, {});
    expect(view!.status).toBe('succeeded');
    expect(a.calls.filter((c) => c !== 'h0').sort()).toEqual(['t0', 't1', 't2']);
    expect(b.calls).toEqual([]);
    // the message (held by B's lane while A ran the job) is acknowledged: only the hanging job's stays
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await until(async () => {
        const info = await jsm.consumers.info(cfg.stream, cfg.consumer);
        return info.num_ack_pending === 1 && info.num_pending === 0;
      }, 'the job\'s message acknowledged');
    } finally {
      await nc.close();
    }
  });

  test('a submitter running its job dies mid-job: the replica holding the message runs only the tasks without a result', async () => {
    const cfg = config();
    const a = fakeAgent(6);
    const replicaA = await open(cfg, a.execute);
    const b = fakeAgent(6, { hang: false });
    const replicaB = await open(cfg, b.execute);
    const { jobId } = await replicaA.submit(body(['a', 'b', 'c', 'hang', 'hang', 'hang']), { waits: true });
    await until(async () => ((await replicaB.get(jobId, {}))?.results?.length ?? 0) === 3, 'three results stored');
    expect(b.calls).toEqual([]);
    await (replicaA as unknown as { nc: { close(): Promise<void> } }).nc.close();
    const view = await replicaB.wait(jobId, {});
    expect(view!.status).toBe('succeeded');
    expect(view!.results!.map((r) => (r as { id: string }).id)).toEqual(['t0', 't1', 't2', 't3', 't4', 't5']);
    expect(a.calls.sort()).toEqual(['t0', 't1', 't2', 't3', 't4', 't5']);
    expect(b.calls.sort()).toEqual(['t3', 't4', 't5']);
  });

  test('a submitter running its job closes mid-job: the job is handed back and another replica finishes it, nothing cancelled', async () => {
    const cfg = config();
    const a = fakeAgent(6);
    const replicaA = await open(cfg, a.execute);
    const { jobId } = await replicaA.submit(body(['a', 'b', 'hang', 'hang']), { waits: true });
    await until(async () => ((await replicaA.get(jobId, {}))?.results?.length ?? 0) === 2, 'two results stored');
    replicaA.stopTaking();
    await replicaA.close();
    const b = fakeAgent(6, { hang: false });
    const replicaB = await open(cfg, b.execute);
    const view = await replicaB.wait(jobId, {});
    expect(view!.status).toBe('succeeded');
    expect(view!.results!.every((r) => (r as { ok: boolean }).ok)).toBe(true);
    expect(b.calls.sort()).toEqual(['t2', 't3']);
  });

  test('a waiting submitter whose run here hands the job back still gets the job\'s end, written by the runner that took it over', async () => {
    const cfg = config();
    const agent = fakeAgent();
    let first = true;
    // the first run stores one result and stops (as a hand-back does); the next runs the rest
    const execute: ExecuteJob = async (jobId, job, run) => {
      if (!first) return agent.execute(jobId, job, run);
      first = false;
      run.onResult(0, { id: 't0', ok: true, content: 'answer of t0', model: 'gpt-4.1', costUsd: 0.25, attempts: 1, latencyMs: 5, agentId: 'w-0' });
    };
    const s = await open(cfg, execute);
    const { jobId } = await s.submit(body(['a', 'b', 'c']), { waits: true });
    const view = await s.wait(jobId, {});
    expect(view!.status).toBe('succeeded');
    expect(view!.results).toHaveLength(3);
    expect(agent.calls.sort()).toEqual(['t1', 't2']);
  });

  test.each([
    ['queued', false],
    ['run by its waiting submitter', true],
  ])('NATS restarted mid-job (%s): the job still finishes, each task once', async (_what, waits) => {
    const agent = fakeAgent(1, { delayMs: 150 });
    const s = await open(config(), agent.execute, 5_000);
    const { jobId } = await s.submit(body(['a', 'b', 'c', 'd', 'e', 'f']), { waits });
    await until(() => agent.calls.length >= 2, 'two tasks started');
    await nats.kill();
    await new Promise((r) => setTimeout(r, 400));
    await nats.start();
    const view = await s.wait(jobId, {}).catch(async () => {
      await until(async () => (await s.get(jobId, {}).catch(() => undefined)) !== undefined, 'store reachable again');
      return s.wait(jobId, {});
    });
    expect(view!.status).toBe('succeeded');
    expect(view!.results).toHaveLength(6);
    expect(new Set(agent.calls).size).toBe(6);
  });

  test('a result write that fails and is retried: the job is not written as ended before every result is stored', async () => {
    const cfg = config();
    const store = await open(cfg, fakeAgent(4, { delayMs: 5 }).execute);
    const kv = (store as unknown as { kv: { create: (k: string, v: string) => Promise<number>; update: (k: string, v: string, rev: number) => Promise<number>; get: (k: string) => Promise<unknown> } }).kv;
    // the first write of task 0's result fails, as a write lost in a NATS outage does; the store retries it
    const create = kv.create.bind(kv);
    let failed = false;
    kv.create = async (k, v) => {
      if (!failed && k.endsWith('.r.0')) {
        failed = true;
        throw new Error('simulated: the write was lost');
      }
      return create(k, v);
    };
    // whenever a state that ends the job is written: which results are in the bucket at that moment
    const update = kv.update.bind(kv);
    const missingAtEnd: string[] = [];
    kv.update = async (k, v, rev) => {
      const rec = JSON.parse(v) as { job_id: string; status: string; ids: string[] };
      if (['succeeded', 'failed', 'cancelled'].includes(rec.status)) {
        for (let i = 0; i < rec.ids.length; i++) if (!(await kv.get(`${rec.job_id}.r.${i}`))) missingAtEnd.push(rec.ids[i]);
      }
      return update(k, v, rev);
    };
    for (const waits of [false, true]) {
      failed = false;
      const { jobId } = await store.submit(body(['a', 'b', 'c']), { waits });
      const view = await store.wait(jobId, {});
      expect(view?.status).toBe('succeeded');
      expect(view?.results).toHaveLength(3);
      expect(failed).toBe(true);
    }
    expect(missingAtEnd).toEqual([]);
  });

  test('a submit whose record write lands but reports a failure: a 503, and the record is purged so its queue message runs nothing', async () => {
    const cfg = config();
    const agent = fakeAgent(4, { delayMs: 5 });
    const store = await open(cfg, agent.execute);
    const kv = (store as unknown as { kv: { create: (k: string, v: string) => Promise<number> } }).kv;
    const create = kv.create.bind(kv);
    kv.create = async (k, v) => {
      const rev = await create(k, v);
      if (k.endsWith('.job')) throw new Error('simulated: the answer to a write that landed was lost');
      return rev;
    };
    await expect(store.submit(body(['a']), {})).rejects.toBeInstanceOf(RequestError);
    kv.create = create;
    const nc = await connect({ servers: nats.url });
    try {
      const bucket = await new Kvm(nc).open(cfg.bucket);
      const left: string[] = [];
      for await (const k of await bucket.keys()) left.push(k);
      expect(left).toEqual([]);
    } finally {
      await nc.close();
    }
    // the queue message that went with it finds no job: nothing reaches the agent
    await new Promise((r) => setTimeout(r, 300));
    expect(agent.calls).toEqual([]);
  });

  test('NATS unreachable at submit: a 503 that says so, and nothing half-written', async () => {
    const cfg = config();
    const agent = fakeAgent();
    const s = await open(cfg, agent.execute);
    await nats.kill();
    try {
      // a submitter that would run the job itself: nothing runs either
      expect(((await s.submit(body(['a']), { waits: true }).catch((err: unknown) => err)) as RequestError).status).toBe(503);
      await until(async () => {
        const e = await s.submit(body(['a']), { idempotencyKey: 'down-1' }).catch((err: unknown) => err);
        return e instanceof RequestError && e.status === 503;
      }, 'a 503 at submit');
      const e = (await s.submit(body(['a']), {}).catch((err: unknown) => err)) as RequestError;
      expect(e.message).toMatch(/job store \(NATS at nats:\/\/127\.0\.0\.1:\d+\) is unreachable.*nothing was stored/);
    } finally {
      await nats.start();
    }
    expect(agent.calls).toEqual([]);
    // nothing in the bucket, nothing queued
    const nc = await connect({ servers: nats.url });
    try {
      const kv = await new Kvm(nc).open(cfg.bucket);
      const keys: string[] = [];
      for await (const k of await kv.keys()) keys.push(k);
      expect(keys).toEqual([]);
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(cfg.stream)).state.messages).toBe(0);
    } finally {
      await nc.close();
    }
    // and once NATS is back the same submit works
    await until(async () => (await s.submit(body(['a']), { idempotencyKey: 'down-1' }).catch(() => undefined)) !== undefined, 'submit after NATS is back');
  });
});
