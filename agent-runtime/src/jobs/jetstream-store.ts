import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AckPolicy, Consumer, DeliverPolicy, JetStreamClient, JsMsg, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { KV, KvEntry, KvWatchInclude, Kvm } from '@nats-io/kv';
import * as natsNode from '@nats-io/transport-node';
import { connect, NodeConnectionOptions } from '@nats-io/transport-node';
import { ConfigError, JobStoreConfig } from '../config';
import { ParsedJob, RequestError } from '../http/jobs';
import { Logger } from '../logger';
import { isFinal, JobCaller, JobEvent, JobStatus, JobView, SubmitOptions, SubmitOutcome } from './job-service';
import { ExecuteJob, ParseJob } from './memory-store';
import { bodyHash, cancelledResult, finalStatus, IDEMPOTENCY_TTL_MS, IdempotencyEntry, idsOf, JobRecord, jobBodyHash, renderResult, reuseOf, StoredResult, viewOf } from './records';
import { JobStore, SettledJob } from './store';

export interface JetStreamJobServiceOptions {
  readonly config: JobStoreConfig;
  readonly parse: ParseJob;
  readonly execute: ExecuteJob;
  readonly logger: Logger;
  /** this replica, in logs */
  readonly agentId: string;
  /** jobs this replica runs at once; 0: it runs none (submits, reads and cancels only) */
  readonly lanes?: number;
  /** the consumer's ack wait: how long a job whose runner died stays with it before another replica gets it */
  readonly ackWaitMs?: number;
}

type NatsConnection = Awaited<ReturnType<typeof connect>>;
type Subscription = ReturnType<NatsConnection['subscribe']>;
/** what is used of a core NATS message (nats-core's `Msg`, which this package's module resolution cannot name) */
type NatsMsg = { string(): string; respond(data?: string): boolean };
// transport-node re-exports nats-core's credsAuthenticator through a subpath export that this package's
// `moduleResolution: node` cannot see at compile time; it is there at run time
const credsAuthenticator = (natsNode as unknown as { credsAuthenticator: (creds: Uint8Array) => NonNullable<NodeConnectionOptions['authenticator']> }).credsAuthenticator;

/** Default ack wait: a killed runner's job goes to another replica this long after its last progress report. */
export const DEFAULT_ACK_WAIT_MS = 10_000;
const DEFAULT_LANES = 32;
/** How long a submit or a read waits for NATS before answering 503. */
const OP_TIMEOUT_MS = 3_000;
/** Job records and result lists larger than this are not copied into the queue message or the final state. */
const MAX_INLINE_BYTES = 256 * 1024;
/** How long this replica remembers a job it submitted, for its own lanes and waiters (older ones are read from NATS). */
const SUBMITTED_MEMORY_MS = 5_000;
const SUBMITTED_MEMORY_MAX = 4_096;

/** A job this replica just submitted: its record as submitted, and its KV revision once NATS confirms the write. */
interface Submitted {
  readonly rec: JobRecord;
  readonly revision: Promise<number | undefined>;
  readonly at: number;
  /** a waiter here took the record as its first read (the submit's own wait does, right after the submit) */
  waited?: boolean;
}

/**
 * The queue message of a job: its id, and (when small) the record as
 * submitted. `revision` (the record's KV revision) is in messages of earlier
 * versions only: the submit now sends the record and the message together,
 * before the revision is known.
 */
interface JobMessage {
  readonly job_id: string;
  readonly revision?: number;
  readonly rec?: JobRecord;
  /** the replica (its connection's `instance`) that runs the job itself: the message only keeps it durable */
  readonly owner?: string;
}

// Keys of the bucket (KV keys are NATS subject tokens; job ids are UUIDs):
//   <job>.job       the JobRecord, updated with compare-and-set on its revision
//   <job>.r.<i>     the final result of task or step i, create-only: exactly one per task
//   idem.<sha256>   an Idempotency-Key (hashed with its tenant): the job it made and its body's hash
// The bucket keeps one value per key (history 1) for 24 hours after its last write.
const stateKey = (id: string) => `${id}.job`;
const resultKey = (id: string, i: number) => `${id}.r.${i}`;
const RESULT_KEY = /^[^.]+\.r\.(\d+)$/;

const encode = (v: unknown) => JSON.stringify(v);

/** A create or CAS update that lost to another writer (the key exists, or moved on). */
function isConflict(e: unknown): boolean {
  const m = String((e as Error)?.message ?? e);
  return /wrong last sequence|key exists|10071/i.test(m);
}

/**
 * Jobs in NATS JetStream (issue 11): submitted jobs go to a work-queue
 * stream that every entry replica pulls from through one durable consumer;
 * a job's state, each of its results and idempotency keys live in a KV
 * bucket, so any replica can answer GET, events and DELETE, and a job whose
 * runner dies is redelivered (after the ack wait) to another replica or to
 * the restarted one, which runs only the tasks without a result.
 *
 * While a job runs, its runner reports progress (`working`) so the ack wait
 * never expires under a live runner. A cancel is written to the job's state
 * and announced on a core NATS subject that every runner listens to.
 *
 * A submitter that waits for the job's end (a synchronous POST) runs it
 * itself, without a lane's pick-up: the job is stored as running, and the
 * lane that gets its queue message holds it while the submitter runs the job
 * (asking it on its own subject), then acks it, or runs what is left should
 * the submitter die or hand the job back.
 */
export class JetStreamJobService implements JobStore {
  readonly durable = true;
  private readonly running = new Map<string, AbortController>();
  private connected = false;
  private taking = true;
  private closed = false;
  /** runs in progress here (close waits for them to record or hand back) */
  private readonly runs = new Set<Promise<void>>();
  private readonly ackWaitMs: number;
  /** jobs submitted here lately (insertion order is age order): a lane here starts them, a waiter here waits, without reading them back */
  private readonly submitted = new Map<string, Submitted>();
  /** waiters in this process for a job's end: a runner here wakes them with the final record, before NATS would */
  private readonly waiters = new Map<string, Set<(final?: JobRecord) => void>>();
  /** this replica's connection, as the owner of the jobs it runs itself (an agent id may repeat; this does not) */
  private readonly instance = randomUUID();
  /** jobs submitted here that run here without going through a lane; each settles when its run ends (true: with the job's end written) */
  private readonly ownRuns = new Map<string, Promise<boolean>>();
  /** settles when the agent stops taking work or closes (a lane holding another replica's job lets it go) */
  private readonly stopping: Promise<void>;
  private stopped!: () => void;

  private constructor(
    private readonly opts: JetStreamJobServiceOptions,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly consumer: Consumer,
    private readonly cancels: Subscription,
  ) {
    this.ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
    this.connected = true;
    this.stopping = new Promise((r) => (this.stopped = r));
  }

  /**
   * Connects (reconnecting forever after the first connection), makes sure
   * the stream, the consumer and the bucket exist, and starts pulling jobs.
   */
  static async connect(opts: JetStreamJobServiceOptions): Promise<JetStreamJobService> {
    const c = opts.config;
    const nc = await connect({
      servers: c.url.split(',').map((s) => s.trim()),
      name: opts.agentId,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // every request would otherwise capture a stack trace for its error, at a CPU cost on each KV write
      noAsyncTraces: true,
      ...(c.credentialsFile ? { authenticator: credsAuthenticator(readFileSync(c.credentialsFile)) } : {}),
    }).catch((e: unknown) => {
      throw new ConfigError('jobStore.url', `cannot connect to NATS at ${c.url}: ${(e as Error).message}`);
    });
    try {
      const jsm = await jetstreamManager(nc);
      const subject = `${c.stream}.jobs`;
      const ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
      await jsm.streams.info(c.stream).catch(() =>
        jsm.streams.add({ name: c.stream, subjects: [subject], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: c.replicas, duplicate_window: 2 * 60 * 1_000_000_000 }),
      );
      await jsm.consumers.info(c.stream, c.consumer).catch(() =>
        jsm.consumers.add(c.stream, {
          durable_name: c.consumer,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: ackWaitMs * 1_000_000,
          max_deliver: -1,
          filter_subject: subject,
        }),
      );
      const js = jetstream(nc, { timeout: OP_TIMEOUT_MS });
      const kv = await new Kvm(js).create(c.bucket, { history: 1, replicas: c.replicas, ttl: IDEMPOTENCY_TTL_MS, storage: StorageType.File });
      const consumer = await js.consumers.get(c.stream, c.consumer);
      const cancels = nc.subscribe(`${c.stream}.cancel`);
      const svc = new JetStreamJobService(opts, nc, js, kv, consumer, cancels);
      svc.start();
      return svc;
    } catch (e) {
      await nc.close().catch(() => undefined);
      throw e;
    }
  }

  private start(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === 'disconnect') this.connected = false;
        if (s.type === 'reconnect') this.connected = true;
        if (s.type === 'disconnect' || s.type === 'reconnect') this.opts.logger.warn({ nats: s.type }, `job store ${s.type === 'disconnect' ? 'disconnected' : 'reconnected'}`);
      }
    })();
    void (async () => {
      for await (const m of this.cancels) this.running.get(m.string())?.abort(new Error('job cancelled by its client'));
    })();
    // whether a job this replica runs itself is still running here (asked by a lane holding its queue message)
    this.nc.subscribe(`${this.opts.config.stream}.owner.${this.instance}`, {
      callback: (_e: Error | null, m: NatsMsg) => {
        m.respond(this.ownRuns.has(m.string()) ? 'running' : 'no');
      },
    });
    const n = this.opts.lanes ?? DEFAULT_LANES;
    for (let i = 0; i < n; i++) void this.lane();
  }

  private unavailable(e?: unknown): RequestError {
    const why = e ? `: ${(e as Error).message}` : '';
    return new RequestError(503, `the job store (NATS at ${this.opts.config.url}) is unreachable${why}; nothing was stored, retry later`);
  }

  private ensureConnected(): void {
    if (!this.connected || this.closed) throw this.unavailable();
  }

  // ---- submit and read ----

  async submit(rawBody: string, opts: SubmitOptions): Promise<SubmitOutcome> {
    this.ensureConnected();
    const now = Date.now();
    // the body is hashed only for an idempotency key (parse, sort and sha256 cost CPU on every submit otherwise)
    const hash = opts.idempotencyKey !== undefined ? jobBodyHash(rawBody) : '';
    const idemKey = opts.idempotencyKey !== undefined ? `idem.${bodyHash(`${opts.tenant ?? ''}\u0000${opts.idempotencyKey}`)}` : undefined;
    if (idemKey) {
      const same = await this.reused(idemKey, opts.idempotencyKey!, hash, now);
      if (same) return { jobId: same, created: false, durable: true };
    }
    const job = this.opts.parse(rawBody, now);
    const at = new Date(now).toISOString();
    // A submitter that waits for the end runs the job itself when this replica runs jobs: it is stored as
    // running, and its queue message only keeps it durable (the lane that gets it holds it while the run
    // here lasts, and finishes the job should this replica die or hand it back).
    const here = opts.waits === true && (this.opts.lanes ?? DEFAULT_LANES) > 0 && this.taking;
    const rec: JobRecord = { job_id: randomUUID(), kind: job.kind, body: rawBody, ids: idsOf(job), ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}), ...(opts.trace ? { trace: opts.trace } : {}), ...(job.budgetUsd !== undefined ? { budget_usd: job.budgetUsd } : {}), created_at: at, updated_at: at, status: here ? 'running' : 'queued' };
    const written: string[] = [];
    let own: { controller: AbortController; ended: (done: boolean) => void } | undefined;
    try {
      if (idemKey) {
        const entry: IdempotencyEntry = { job_id: rec.job_id, body_sha256: hash, at: now };
        try {
          await this.kv.create(idemKey, encode(entry));
        } catch (e) {
          if (!isConflict(e)) throw e;
          // another submit with this key won the race, or the key names a job that is gone
          const same = await this.reused(idemKey, opts.idempotencyKey!, hash, now);
          if (same) return { jobId: same, created: false, durable: true };
          await this.kv.put(idemKey, encode(entry));
        }
        written.push(idemKey);
      }
      // The record and the queue message go out together (one round trip, not two): NATS stores what one
      // connection sends in the order sent, so a runner normally gets the message after the record exists
      // (in an outage it may not: the lane looks at such a message again for a while, see runMessage).
      // The record rides along in the message (when small) so the runner starts without reading it back.
      if (here) {
        // known as running here before anything is sent: a cancel, or a lane that gets the message, finds it
        const controller = new AbortController();
        let ended!: (done: boolean) => void;
        this.ownRuns.set(rec.job_id, new Promise<boolean>((r) => (ended = r)));
        this.running.set(rec.job_id, controller);
        own = { controller, ended };
      }
      const state = this.kv.create(stateKey(rec.job_id), encode(rec));
      const owner = here ? { owner: this.instance } : {};
      const whole = encode({ job_id: rec.job_id, rec, ...owner });
      const queued = this.js.publish(`${this.opts.config.stream}.jobs`, whole.length <= MAX_INLINE_BYTES ? whole : encode({ job_id: rec.job_id, ...owner }), { msgID: rec.job_id });
      this.remember(rec, state);
      // purged too on a failure even when its own write reported one: in an outage a write can land while
      // its answer is lost, and a record left behind would let the message that went with it run the job
      written.push(stateKey(rec.job_id));
      const [stored, sent] = await Promise.allSettled([state, queued]);
      if (stored.status === 'rejected' || sent.status === 'rejected') {
        this.submitted.delete(rec.job_id);
        // a message whose record failed is dropped by the runner that gets it (no such job)
        throw stored.status === 'rejected' ? stored.reason : (sent as PromiseRejectedResult).reason;
      }
      if (own) this.runHere(rec, stored.value, own.controller, own.ended, job);
    } catch (e) {
      if (own) {
        this.running.delete(rec.job_id);
        this.ownRuns.delete(rec.job_id);
        own.ended(false);
      }
      if (e instanceof RequestError) throw e;
      // nothing half-written: what this submit stored goes again (best effort: NATS may be gone)
      await Promise.all(written.map((k) => this.kv.purge(k).catch(() => undefined)));
      throw this.unavailable(e);
    }
    return { jobId: rec.job_id, created: true, durable: true };
  }

  /** Keeps a job submitted here for a few seconds, so a lane or a waiter here need not read it back. */
  private remember(rec: JobRecord, state: Promise<number>): void {
    const now = Date.now();
    for (const [id, e] of this.submitted) {
      if (now - e.at < SUBMITTED_MEMORY_MS && this.submitted.size < SUBMITTED_MEMORY_MAX) break;
      this.submitted.delete(id);
    }
    this.submitted.set(rec.job_id, { rec, revision: state.catch(() => undefined), at: now });
  }

  /** The job an idempotency key names, when it is valid for this body and the job still exists. */
  private async reused(idemKey: string, key: string, hash: string, now: number): Promise<string | undefined> {
    const e = await this.read(() => this.kv.get(idemKey));
    if (!e || e.operation !== 'PUT') return undefined;
    const same = reuseOf(key, e.json<IdempotencyEntry>(), hash, now);
    if (same === undefined) return undefined;
    return (await this.state(same)) ? same : undefined;
  }

  async get(jobId: string, caller: JobCaller): Promise<JobView | undefined> {
    return (await this.snapshot(jobId, caller))?.view;
  }

  async wait(jobId: string, caller: JobCaller, signal?: AbortSignal): Promise<JobView | undefined> {
    return (await this.settle(jobId, caller, signal))?.view;
  }

  async settle(jobId: string, caller: JobCaller, signal?: AbortSignal): Promise<SettledJob | undefined> {
    this.ensureConnected();
    let wake: (() => void) | undefined;
    let announced = false;
    let final: JobRecord | undefined;
    // runners announce a job's end on a core subject; subscribed before the first read, so no end is missed
    // between the two (a NATS outage can lose one: the state is read again every second as well)
    let done: Subscription | undefined;
    let over = false;
    const listen = () => {
      if (done || over) return;
      const sub = (done = this.nc.subscribe(`${this.opts.config.stream}.done.${jobId}`));
      void (async () => {
        for await (const m of sub) {
          announced = true;
          if (m.data.length > 0) final = m.json<JobRecord>();
          wake?.();
        }
      })();
    };
    // A job its submitter runs here ends here: the waiter below hears it, no subscription needed, unless the
    // run here leaves the job to another replica (it hands it back): then its end comes over NATS.
    const own = this.ownRuns.get(jobId);
    if (own) {
      void own.then((ended) => {
        if (ended) return;
        listen();
        wake?.();
      });
    } else {
      listen();
    }
    // a runner in this process wakes it directly (and hands over the final record without a parse)
    const local = (rec?: JobRecord) => {
      announced = true;
      if (rec) final = rec;
      wake?.();
    };
    let waiting = this.waiters.get(jobId);
    if (!waiting) this.waiters.set(jobId, (waiting = new Set()));
    waiting.add(local);
    // A job submitted here moments ago is known as it was submitted: its first waiter (normally the submit's own,
    // subscribed in the same turn, before the job can end) waits without a read; later ones read. (A first
    // waiter that comes after the job ended elsewhere reads it one poll second later.)
    const mine = this.submitted.get(jobId);
    let known = mine && !mine.waited ? mine.rec : undefined;
    if (mine) mine.waited = true;
    try {
      for (;;) {
        if (final && isFinal(final.status) && final.job_id === jobId) return this.visible(final, caller) ? await this.settled(jobId, final) : undefined;
        const s = known ? { rec: known } : await this.state(jobId);
        known = undefined;
        if (!s || !this.visible(s.rec, caller)) return undefined;
        if (isFinal(s.rec.status)) return await this.settled(jobId, s.rec);
        if (signal?.aborted) throw signal.reason;
        if (!announced && !final) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => wake?.(), 1_000);
            const onAbort = () => wake?.();
            signal?.addEventListener('abort', onAbort, { once: true });
            wake = () => {
              wake = undefined;
              clearTimeout(timer);
              signal?.removeEventListener('abort', onAbort);
              resolve();
            };
          });
        }
        announced = false;
      }
    } finally {
      over = true;
      done?.unsubscribe();
      waiting.delete(local);
      if (waiting.size === 0 && this.waiters.get(jobId) === waiting) this.waiters.delete(jobId);
    }
  }

  /** The job ended (`final`: its final record, when this replica wrote it): wake the waiters here, and announce it to every replica. */
  private announce(jobId: string, final?: JobRecord, text = ''): void {
    this.submitted.delete(jobId);
    for (const w of this.waiters.get(jobId) ?? []) w(final);
    this.nc.publish(`${this.opts.config.stream}.done.${jobId}`, text);
  }

  async cancel(jobId: string, caller: JobCaller): Promise<JobView | undefined> {
    this.ensureConnected();
    const s = await this.state(jobId);
    if (!s || !this.visible(s.rec, caller)) return undefined;
    if (!isFinal(s.rec.status)) {
      await this.transition(jobId, (r) => (isFinal(r.status) || r.cancel_requested ? undefined : { ...r, cancel_requested: true }));
      this.nc.publish(`${this.opts.config.stream}.cancel`, jobId);
      await this.endCancelled(jobId, s.rec);
    }
    return this.get(jobId, caller);
  }

  async events(jobId: string, caller: JobCaller, afterEventId: string | undefined, signal: AbortSignal): Promise<AsyncIterable<JobEvent> | undefined> {
    this.ensureConnected();
    const s = await this.state(jobId);
    if (!s || !this.visible(s.rec, caller)) return undefined;
    // event ids are the KV revisions of the results (and of the final state for `done`)
    const after = Number(afterEventId);
    const from = Number.isInteger(after) && after > 0 ? after : 0;
    if (isFinal(s.rec.status) && from >= s.revision) return (async function* () {})();
    const queue: JobEvent[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: unknown;
    const kind = s.rec.kind;
    const follow = this.follow(jobId, from > 0 ? from + 1 : undefined, signal, (e) => {
      const idx = indexOf(e.key);
      if (idx !== undefined && e.revision > from) queue.push({ id: String(e.revision), event: 'result', data: renderResult(kind, e.json<StoredResult>()) });
      else if (e.key === stateKey(jobId) && isFinal(e.json<JobRecord>().status)) {
        queue.push({ id: String(e.revision), event: 'done', data: undefined });
        wake?.();
        return true;
      }
      wake?.();
      return false;
    }).then(
      () => {
        ended = true;
        wake?.();
      },
      (e: unknown) => {
        failure = e;
        ended = true;
        wake?.();
      },
    );
    void follow;
    const self = this;
    return (async function* () {
      for (;;) {
        while (queue.length > 0) {
          const ev = queue.shift()!;
          if (ev.event === 'done') {
            yield { ...ev, data: await self.get(jobId, caller) };
            return;
          }
          yield ev;
        }
        if (ended) {
          if (failure && !signal.aborted) throw failure;
          return;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    })();
  }

  stopTaking(): void {
    this.taking = false;
    this.stopped();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.taking = false;
    this.closed = true;
    this.stopped();
    for (const c of this.running.values()) c.abort(new Error('agent shutting down'));
    await Promise.race([Promise.allSettled([...this.runs]), new Promise((r) => setTimeout(r, 5_000).unref())]);
    this.cancels.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
  }

  // ---- running jobs ----

  /** One job at a time: pull, run, ack; until the agent stops taking work. */
  private async lane(): Promise<void> {
    while (this.taking && !this.closed) {
      let m: JsMsg | null;
      try {
        m = await this.consumer.next({ expires: 5_000 });
      } catch (e) {
        if (!this.taking || this.closed) return;
        this.opts.logger.debug({ err: (e as Error).message }, 'job pull failed; retrying');
        await sleep(500);
        continue;
      }
      if (!m) continue;
      if (!this.taking || this.closed) {
        m.nak();
        return;
      }
      const run = this.runMessage(m).catch((e: unknown) => {
        this.opts.logger.error({ err: (e as Error).message, jobId: m!.string() }, 'job run failed; it will be delivered again');
        m!.nak(1_000);
      });
      this.runs.add(run);
      await run;
      this.runs.delete(run);
    }
  }

  private async runMessage(m: JsMsg): Promise<void> {
    const msg = parseMessage(m);
    const jobId = msg.job_id;
    // delivered again while this replica still runs it (its progress reports came late): the run here goes on
    if (msg.owner === undefined && this.running.has(jobId)) return;
    // a job submitted here: its record and its revision are at hand
    const mine = this.submitted.get(jobId);
    const log = this.opts.logger.child({ jobId, delivery: m.info.deliveryCount });
    // progress reports keep the job with this runner (or this holder) while it lives
    const heartbeat = setInterval(() => {
      try {
        m.working();
      } catch {
        // NATS is away: the next report goes out once it is back
      }
    }, Math.max(200, Math.floor(this.ackWaitMs / 3)));
    try {
      if (msg.owner !== undefined) {
        // its submitter runs it: the message stays here (kept by the progress reports) while that run lasts
        if (await this.holdWhileOwnerRuns(msg.owner, jobId)) return void (await ackSafely(m));
        if (!this.taking || this.closed) return void m.nak();
        // then as any redelivery: ended (ack), or left unfinished by a replica that died or handed it back (take over)
      }
      // first delivery of an untouched job: straight to running at the submit's revision (no reads); the
      // revision is the submit's here, or in the message from an earlier version. The compare-and-set fails
      // when a cancel came first: then nothing runs. A redelivery, a job submitted elsewhere, or a job
      // changed since reads its state and results.
      const submittedRec = msg.rec ?? mine?.rec;
      const revision = msg.revision ?? (mine ? await mine.revision : undefined);
      let start = msg.owner === undefined && m.info.deliveryCount === 1 && submittedRec && revision !== undefined ? await this.casRunning(submittedRec, revision) : undefined;
      let finished = new Map<number, StoredResult>();
      if (!start) {
        const s = await this.state(jobId);
        if (!s) {
          // the submit sends the record and the message together; NATS keeps their order, but should a
          // message ever come before its record, it is looked at again until the submit would have given up
          if (Date.now() - Number(m.info.timestampNanos) / 1e6 < 2 * OP_TIMEOUT_MS) return void m.nak(100);
          return void m.term('no such job (expired, or its submit failed)');
        }
        if (isFinal(s.rec.status)) return void (await ackSafely(m));
        if (s.rec.cancel_requested) {
          await this.endCancelled(jobId, s.rec);
          return void (await ackSafely(m));
        }
        start = await this.casRunning(s.rec, s.revision);
        if (!start) {
          const again = await this.transition(jobId, (r) => (isFinal(r.status) || r.cancel_requested ? undefined : { ...r, status: 'running' }));
          if (!again) return void (await ackSafely(m)); // it ended or was cancelled meanwhile: the next delivery finds it so
          start = again;
        }
        finished = await this.results(jobId);
        if (m.info.deliveryCount > 1 || msg.owner !== undefined) log.info({ finished: finished.size, total: start.rec.ids.length }, 'job taken over: running the tasks without a result');
      }
      if ((await this.runToEnd(start, finished, new AbortController(), log)) === 'cut') return void m.nak();
      await ackSafely(m);
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** A job submitted here runs here, outside the lanes: the lane that holds its queue message finishes what it leaves. */
  private runHere(rec: JobRecord, revision: number, controller: AbortController, ended: (done: boolean) => void, job: ParsedJob): void {
    const log = this.opts.logger.child({ jobId: rec.job_id });
    let done = false;
    const run = this.runToEnd({ rec, revision }, new Map(), controller, log, job)
      .then(
        (outcome) => {
          done = outcome === 'ended';
        },
        (e: unknown) => log.error({ err: (e as Error).message }, 'job run failed; the replica holding its queue message finishes it'),
      )
      .finally(() => {
        this.ownRuns.delete(rec.job_id);
        this.runs.delete(run);
        ended(done);
      });
    this.runs.add(run);
  }

  /**
   * Waits while the replica that submitted a job runs it itself: at once when
   * it runs here; else it is asked (a request to its own subject), and asked
   * again on the job's end or every third of the ack wait. It no longer runs
   * the job once it says so, or it cannot answer (it died, or NATS lost it).
   * True when it ran here and wrote the job's end (nothing to read back).
   */
  private async holdWhileOwnerRuns(owner: string, jobId: string): Promise<boolean> {
    if (owner === this.instance) return (await Promise.race([this.ownRuns.get(jobId), this.stopping])) === true;
    const every = Math.max(200, Math.floor(this.ackWaitMs / 3));
    while (this.taking && !this.closed) {
      // subscribed before asking: an end between the answer and the wait is not missed
      const done = this.nc.subscribe(`${this.opts.config.stream}.done.${jobId}`, { max: 1 });
      let timer: NodeJS.Timeout | undefined;
      try {
        const runs = await this.nc
          .request(`${this.opts.config.stream}.owner.${owner}`, jobId, { timeout: Math.min(OP_TIMEOUT_MS, every) })
          .then((r: NatsMsg) => r.string() === 'running', () => false);
        if (!runs) return false;
        await Promise.race([
          (async () => {
            for await (const _ of done) return;
          })(),
          new Promise((r) => (timer = setTimeout(r, every))),
          this.stopping,
        ]);
      } finally {
        clearTimeout(timer);
        done.unsubscribe();
      }
    }
    return false;
  }

  /**
   * Runs a job that is `running` at `start.revision` to its end: its results
   * and final state written and announced ('ended'), or 'cut' (handed back:
   * the results so far stay, another runner runs the rest).
   */
  private async runToEnd(start: { rec: JobRecord; revision: number }, finished: Map<number, StoredResult>, controller: AbortController, log: Logger, parsed?: ParsedJob): Promise<'ended' | 'cut'> {
    const rec = start.rec;
    const jobId = rec.job_id;
    this.running.set(jobId, controller);
    try {
      const job = parsed ?? this.opts.parse(rec.body, Date.parse(rec.created_at));
      const all = new Map(finished);
      /** each result's JSON as stored, by index (the final state's list is made of them) */
      const texts = new Map<number, string>();
      const writes: Promise<void>[] = [];
      // Results that end in one turn of the event loop are written together, after it: one socket write for
      // them all instead of one each (the client flushes what was sent at the end of each microtask).
      let batch: Array<() => void> | undefined;
      const flush = () => {
        const go = batch ?? [];
        batch = undefined;
        for (const send of go) send();
      };
      // the final state; it carries the results (when small) so a read of a finished job is one get
      const end = (r: JobRecord, inline?: StoredResult[]): JobRecord | undefined => {
        if (isFinal(r.status)) return undefined;
        // a cancel that came while it ran: the canceller's results stand (create-only), the job ends cancelled
        if (r.cancel_requested || all.size < r.ids.length) return { ...r, status: 'cancelled' };
        return { ...r, status: finalStatus(all.values()), ...(inline ? { results: inline } : {}) };
      };
      await this.opts.execute(jobId, job, {
        finished,
        signal: controller.signal,
        ...(rec.trace ? { traceHeaders: rec.trace } : {}),
        ...(rec.tenant !== undefined ? { tenant: rec.tenant } : {}),
        onResult: (i, r) => {
          if (all.has(i)) return;
          // a job this replica gives up (it closes) records nothing more: the next runner runs those tasks
          if (this.closed) return;
          all.set(i, r);
          const text = encode(r);
          texts.set(i, text);
          if (!batch) {
            batch = [];
            setImmediate(flush);
          }
          writes.push(new Promise<void>((resolve, reject) => batch!.push(() => this.createResult(jobId, i, text).then(resolve, reject))));
        },
      });
      flush();
      // handed back (the agent drains) or cut short: another replica finishes it
      if (all.size < rec.ids.length && (!controller.signal.aborted || this.closed)) {
        await Promise.all(writes);
        log.info({ finished: all.size, total: rec.ids.length }, 'job handed back');
        return 'cut';
      }
      const ordered = rec.ids.map((_, i) => all.get(i));
      // the list as JSON, from the results' own (the same text JSON.stringify gives: one stringify less per result)
      const list = ordered.every((r) => r !== undefined) ? `[${rec.ids.map((_, i) => texts.get(i) ?? encode(all.get(i))).join(',')}]` : undefined;
      const inline = list !== undefined && list.length <= MAX_INLINE_BYTES ? (ordered as StoredResult[]) : undefined;
      const next = end(start.rec, inline);
      // The state that ends the job is written only once every result is stored. Sending it right behind
      // the result writes is not safe: in a NATS outage a result write can be lost and retried
      // (createResult) after a later write (the end) went through, and a job would read as ended without
      // that result (the fault matrix's "NATS restarted mid-job" caught it).
      await Promise.all(writes);
      const written = next ? await this.casWritten(next, start.revision, inline ? list : undefined) : undefined;
      if (!written) await this.transition(jobId, (r) => end(r));
      // the announcement carries the final record when it is small, so a waiting POST answers without a read
      const text = written?.text ?? '';
      this.announce(jobId, written?.rec, text.length <= MAX_INLINE_BYTES * 2 ? text : '');
      return 'ended';
    } finally {
      // kept until the job's end is written: a lane asking whether it still runs here then finds it ended
      this.running.delete(jobId);
    }
  }

  /** `rec` as running, if its state is still at `revision` (compare-and-set). */
  private async casRunning(rec: JobRecord, revision: number): Promise<{ rec: JobRecord; revision: number } | undefined> {
    if (isFinal(rec.status) || rec.cancel_requested) return undefined;
    const running: JobRecord = { ...rec, status: 'running', updated_at: new Date().toISOString() };
    try {
      return { rec: running, revision: await this.kv.update(stateKey(rec.job_id), encode(running), revision) };
    } catch (e) {
      if (isConflict(e)) return undefined;
      throw e;
    }
  }

  /**
   * Writes `rec` if the state is still at `revision`, returning it as written
   * (and its JSON); undefined when another writer moved it on. `resultsJson`:
   * `rec.results` as JSON already, put in as the last key rather than made again.
   */
  private async casWritten(rec: JobRecord, revision: number, resultsJson?: string): Promise<{ rec: JobRecord; text: string } | undefined> {
    const out = { ...rec, updated_at: new Date().toISOString() };
    let text: string;
    if (resultsJson !== undefined && out.results) {
      // JSON.stringify leaves out a key whose value is undefined: the record without its results, then them
      const head = encode({ ...out, results: undefined });
      text = `${head.slice(0, -1)},"results":${resultsJson}}`;
    } else {
      text = encode(out);
    }
    try {
      await this.kv.update(stateKey(rec.job_id), text, revision);
      return { rec: out, text };
    } catch (e) {
      if (isConflict(e)) return undefined;
      throw e;
    }
  }

  /** Stores a result once (create-only), retrying through a NATS outage; a result already there stands. */
  private async createResult(jobId: string, i: number, text: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.kv.create(resultKey(jobId, i), text);
        return;
      } catch (e) {
        if (isConflict(e)) return;
        if (this.closed) throw e;
        if (attempt % 10 === 0) this.opts.logger.warn({ jobId, index: i, err: (e as Error).message }, 'storing a result failed; retrying');
        await sleep(Math.min(1_000, 50 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  /** Every task without a result ends cancelled, then the job does (results first: `done` comes last). */
  private async endCancelled(jobId: string, rec: JobRecord): Promise<void> {
    const have = await this.results(jobId);
    await Promise.all(
      rec.ids.map((id, i) =>
        have.has(i)
          ? undefined
          : this.kv.create(resultKey(jobId, i), encode(cancelledResult(rec.kind, id))).catch((e: unknown) => {
            if (!isConflict(e)) throw e;
          }),
      ),
    );
    await this.transition(jobId, (r) => (isFinal(r.status) ? undefined : { ...r, status: 'cancelled' as JobStatus }));
    this.announce(jobId);
  }

  // ---- the bucket ----

  private async state(jobId: string): Promise<{ rec: JobRecord; revision: number } | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(jobId)) return undefined;
    const e = await this.read(() => this.kv.get(stateKey(jobId)));
    return e && e.operation === 'PUT' ? { rec: e.json<JobRecord>(), revision: e.revision } : undefined;
  }

  /** Reads the job's results; KV history ends once it has sent every key it holds. */
  private async results(jobId: string): Promise<Map<number, StoredResult>> {
    const out = new Map<number, StoredResult>();
    const it = await this.read(() => this.kv.history({ key: `${jobId}.r.*` }));
    for await (const e of it) {
      const i = indexOf(e.key);
      if (i !== undefined && e.operation === 'PUT') out.set(i, e.json<StoredResult>());
    }
    return out;
  }

  private async snapshot(jobId: string, caller: JobCaller): Promise<SettledJob | undefined> {
    this.ensureConnected();
    const s = await this.state(jobId);
    if (!s || !this.visible(s.rec, caller)) return undefined;
    return this.settled(jobId, s.rec);
  }

  /** The view of a job from its record: the results it carries once final, else those in the bucket. */
  private async settled(jobId: string, rec: JobRecord): Promise<SettledJob> {
    if (rec.results) return { view: viewOf(rec, new Map(rec.results.map((r, i) => [i, r])), true), results: rec.results };
    const results = await this.results(jobId);
    // a state read before its last results were written: read it again after them
    if (!isFinal(rec.status)) rec = (await this.state(jobId))?.rec ?? rec;
    return { view: viewOf(rec, results, true), results: [...results.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r) };
  }

  /** Updates the job's record with compare-and-set (re-reading on a conflict); `change` returns undefined to leave it. */
  private async transition(jobId: string, change: (r: JobRecord) => JobRecord | undefined): Promise<{ rec: JobRecord; revision: number } | undefined> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const s = await this.state(jobId);
      if (!s) return undefined;
      const next = change(s.rec);
      if (!next) return undefined;
      try {
        const rec = { ...next, updated_at: new Date().toISOString() };
        return { rec, revision: await this.kv.update(stateKey(jobId), encode(rec), s.revision) };
      } catch (e) {
        if (!isConflict(e)) {
          if (this.closed) throw e;
          await sleep(Math.min(1_000, 50 * 2 ** Math.min(attempt, 5)));
        }
      }
    }
    throw new Error(`job ${jobId}: its state kept changing under 50 updates`);
  }

  /**
   * Watches every key of a job in revision order (what is stored, then live
   * changes) until `onEntry` returns true or `signal` aborts.
   */
  private async follow(jobId: string, fromRevision: number | undefined, signal: AbortSignal | undefined, onEntry: (e: KvEntry) => boolean): Promise<void> {
    const w = await this.read(() => this.kv.watch({ key: `${jobId}.>`, include: KvWatchInclude.AllHistory, ...(fromRevision ? { resumeFromRevision: fromRevision } : {}) }));
    const stop = () => w.stop();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      if (signal?.aborted) return;
      for await (const e of w) {
        if (e.operation !== 'PUT') continue;
        if (onEntry(e)) return;
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      w.stop();
    }
  }

  private async read<T>(op: () => Promise<T>): Promise<T> {
    this.ensureConnected();
    try {
      return await op();
    } catch (e) {
      throw this.connected ? e : this.unavailable(e);
    }
  }

  private visible(rec: JobRecord, caller: JobCaller): boolean {
    return rec.tenant === caller.tenant;
  }
}

function parseMessage(m: JsMsg): JobMessage {
  const text = m.string();
  // a bare id: what a message too large to carry its record holds
  return text.startsWith('{') ? (JSON.parse(text) as JobMessage) : { job_id: text };
}

function indexOf(key: string): number | undefined {
  const m = RESULT_KEY.exec(key);
  return m ? Number(m[1]) : undefined;
}

/** An ack that NATS confirms, retried a few times through a reconnect; a lost ack only means one redelivery, which finds the job final. */
async function ackSafely(m: JsMsg): Promise<void> {
  for (let i = 0; i < 5; i++) {
    try {
      await m.ackAck({ timeout: OP_TIMEOUT_MS });
      return;
    } catch {
      await sleep(200 * (i + 1));
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
