import * as grpc from '@grpc/grpc-js';
import { FlushScheduler } from '../grpc/flush';
import { AgentServiceClient, ResultBatch, TaskBatch, WireResult, WireTask } from '../grpc/service';
import { ExpiryTimer } from './expiry-timer';

interface Waiter {
  resolve(r: WireResult | undefined): void;
  reject(e: grpc.ServiceError): void;
  /** Epoch ms after which the caller stops waiting for this task. */
  expiresAt: number;
}

/** Upper bound of a task's encoded size, from string lengths (UTF-8 is at most 3 bytes per UTF-16 unit). */
export function taskBytesBound(t: WireTask): number {
  let n = 96 + (t.id.length + (t.model?.length ?? 0) + (t.role?.length ?? 0) + (t.job_id?.length ?? 0) + traceLength(t)) * 3;
  for (const m of t.messages) n += 32 + (m.role.length + m.content.length + (m.name?.length ?? 0) + toolFieldsLength(m)) * 3;
  if (t.response_schema) n += 16 + (t.response_schema.name.length + t.response_schema.schema_json.length) * 3;
  return n;
}

/** A task's encoded size, exactly enough to compare with a message limit (with room for protobuf's tags and lengths). */
export function taskBytes(t: WireTask): number {
  let n = 96 + Buffer.byteLength(t.id) + Buffer.byteLength(t.model ?? '') + Buffer.byteLength(t.role ?? '') + Buffer.byteLength(t.job_id ?? '') + traceLength(t);
  for (const m of t.messages) n += 32 + Buffer.byteLength(m.role) + Buffer.byteLength(m.content) + Buffer.byteLength(m.name ?? '') + toolFieldsLength(m) * 3;
  if (t.response_schema) n += 16 + Buffer.byteLength(t.response_schema.name) + Buffer.byteLength(t.response_schema.schema_json);
  return n;
}

/** Characters of a task's trace context (ASCII by the W3C format), with room for the two fields' tags and lengths. */
export function traceLength(t: Pick<WireTask, 'traceparent' | 'tracestate'>): number {
  return t.traceparent ? 8 + t.traceparent.length + (t.tracestate?.length ?? 0) : 0;
}

/** Characters of a message's tool fields (rare: counted as an upper bound in both functions). */
function toolFieldsLength(m: WireTask['messages'][number]): number {
  let n = m.tool_call_id?.length ?? 0;
  for (const c of m.tool_calls ?? []) n += 16 + c.id.length + c.name.length + c.arguments.length;
  return n;
}

/**
 * One caller's Session stream to one pod (agent.proto): opened on first use
 * and kept, so sending a task costs one message on a stream that exists,
 * not a call set-up (headers, a new HTTP/2 stream, trailers) per batch.
 *
 * Tasks queued together go out as one TaskBatch per hop, written as soon
 * as the code that queued them is done, or at the end of the event-loop
 * turn when the stream already wrote in it (grpc/flush.ts). Each waits
 * for the result carrying its seq; a task still unanswered at its
 * `expiresAt` is failed with DEADLINE_EXCEEDED (one timer, armed for the
 * earliest). When the stream fails, every waiting task is
 * rejected with that error; when the callee ends it (draining), every
 * waiting task resolves undefined. Either way the session is closed and the
 * owner opens a new one for the next task.
 *
 * Hand-written because this bookkeeping (numbering, batching, per-task
 * expiry on one shared stream) is specific to this protocol; grpc-js
 * provides the stream, flow control and keepalive underneath.
 */
export class PeerSession {
  private readonly call: grpc.ClientDuplexStream<TaskBatch, ResultBatch>;
  private readonly waiters = new Map<number, Waiter>();
  private readonly queued = new Map<number, { tasks: WireTask[]; bytes: number }>();
  private readonly flusher = new FlushScheduler(() => this.flush());
  /** jobs cancelled since the last flush */
  private readonly cancels = new Set<string>();
  private nextSeq = 1;
  private readonly timer = new ExpiryTimer(() => this.expire());
  private ended = false;

  /**
   * @param maxBatchBytes a batch is sent as soon as adding a task would take
   * it past this many bytes (the callee's message limit, less headroom)
   * @param onClosed called once when the session can take no more tasks
   */
  constructor(
    client: AgentServiceClient,
    private readonly address: string,
    private readonly maxBatchBytes: number,
    private readonly onClosed: (s: PeerSession) => void,
  ) {
    this.call = client.Session(new grpc.Metadata(), {});
    this.call.on('data', (b: ResultBatch) => {
      for (const r of b.results) {
        const w = this.waiters.get(r.seq ?? 0);
        if (!w) continue; // not waited for (already expired): the task has its answer elsewhere
        this.waiters.delete(r.seq!);
        w.resolve(r);
      }
    });
    this.call.on('error', (e: grpc.ServiceError) => this.close(e));
    this.call.on('end', () => this.close());
  }

  /** True once the session takes no more tasks. */
  get closed(): boolean {
    return this.ended;
  }

  /** Tasks sent and not answered yet. */
  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * Sends `task` (deadline and job already set on it) and resolves with its
   * result, or undefined when the callee ended the session without it.
   */
  send(task: WireTask, hop: number, expiresAt: number, bytes: number, signal?: AbortSignal): Promise<WireResult | undefined> {
    let seq = this.nextSeq;
    while (this.waiters.has(seq)) seq = seq >= 0xffffffff ? 1 : seq + 1;
    this.nextSeq = seq >= 0xffffffff ? 1 : seq + 1;
    let q = this.queued.get(hop);
    if (q && q.bytes + bytes > this.maxBatchBytes) {
      this.write(hop, q.tasks);
      q = undefined;
    }
    if (!q) this.queued.set(hop, (q = { tasks: [], bytes: 0 }));
    q.tasks.push({ ...task, seq });
    q.bytes += bytes;
    this.flusher.request();
    const answer = new Promise<WireResult | undefined>((resolve, reject) => {
      this.waiters.set(seq, { resolve, reject, expiresAt });
      this.timer.armFor(expiresAt);
    });
    if (!signal || !task.job_id) return answer;
    // the job is cancelled while the task is out: the callee is told to abort it (and answers it, cancelled)
    const jobId = task.job_id;
    const onAbort = () => this.cancelJob(jobId);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    return answer.finally(() => signal.removeEventListener('abort', onAbort));
  }

  /** Asks the callee to abort this stream's tasks of `jobId` (sent with the next batch, see FlushScheduler). */
  private cancelJob(jobId: string): void {
    if (this.ended) return;
    this.cancels.add(jobId);
    this.flusher.request();
  }

  /** Ends the session from this side; waiting tasks resolve undefined. */
  end(): void {
    this.close();
  }

  private flush(): void {
    for (const [hop, q] of this.queued) this.write(hop, q.tasks);
    this.queued.clear();
    if (this.cancels.size > 0 && !this.ended) this.call.write({ tasks: [], hop: 0, cancel_job_ids: [...this.cancels] });
    this.cancels.clear();
  }

  private write(hop: number, tasks: WireTask[]): void {
    this.queued.delete(hop);
    if (this.ended) return; // their waiters were already settled by close()
    this.call.write({ tasks, hop });
  }

  private expire(): void {
    const now = Date.now();
    let next = Infinity;
    for (const [seq, w] of this.waiters) {
      if (w.expiresAt <= now) {
        this.waiters.delete(seq);
        w.reject(Object.assign(new Error(`no answer from ${this.address} before the deadline`), { code: grpc.status.DEADLINE_EXCEEDED, details: `no answer from ${this.address} before the deadline`, metadata: new grpc.Metadata() }));
      } else if (w.expiresAt < next) {
        next = w.expiresAt;
      }
    }
    if (next < Infinity) this.timer.armFor(next);
  }

  private close(err?: grpc.ServiceError): void {
    this.timer.clear();
    const first = !this.ended;
    this.ended = true;
    const waiting = [...this.waiters.values()];
    this.waiters.clear();
    this.queued.clear();
    for (const w of waiting) (err ? w.reject(err) : w.resolve(undefined));
    if (first) {
      if (!err) this.call.end();
      this.onClosed(this);
    }
  }
}
