// Waiting for capacity, fairly. Used in front of callee pods (the
// dispatcher) and in front of each model's upstream calls (the per-model
// bulkhead). Hand-written because no library we could use does all of:
// strict arrival order with a hand-off of the freed slot (cockatiel's
// bulkhead lets a newcomer take a slot before the queued call it was freed
// for), a waiter leaving at its deadline or on an AbortSignal without ever
// holding a slot, putting a returning waiter back at the head, and shedding
// on arrival from a measured service time.

import { ExpiryTimer } from './expiry-timer';

/** Why a waiter left the queue without a slot. */
export type ExitReason = 'deadline' | 'cancelled' | 'drained' | 'shed' | 'full';

/** A wait that ended without a slot; `retryAfterMs` is set when shed. */
export class AdmissionExit extends Error {
  constructor(
    readonly reason: ExitReason,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'AdmissionExit';
  }
}

/**
 * Exponentially weighted moving average of how long a slot is held (one
 * task's trip), per queue. Feeds the shedding rule and the deadline exit:
 * recent tasks weigh most (alpha 0.2: about the last ten count), so the
 * estimate follows a slower upstream within a few tasks.
 */
export class ServiceTime {
  private value = NaN;
  constructor(private readonly alpha = 0.2) {}

  /** The estimate in ms, or undefined before the first sample. */
  get ms(): number | undefined {
    return Number.isNaN(this.value) ? undefined : this.value;
  }

  add(ms: number): void {
    this.value = Number.isNaN(this.value) ? ms : this.value + this.alpha * (ms - this.value);
  }
}

/**
 * When a task would finish if it joined a queue with `ahead` waiters in
 * front of `capacity` slots that each take `serviceMs`: slots free at
 * `capacity / serviceMs` per ms, so its own slot comes after about
 * `(ahead + 1) * serviceMs / capacity`, and it then needs `serviceMs`.
 */
export function expectedWaitMs(ahead: number, capacity: number, serviceMs: number): number {
  return ((ahead + 1) * serviceMs) / Math.max(1, capacity);
}

interface Entry<T, M> {
  readonly meta: M;
  readonly exitAt: number;
  readonly enqueuedAt: number;
  readonly signal?: AbortSignal;
  onAbort?: () => void;
  resolve(v: T): void;
  reject(e: AdmissionExit): void;
}

/** What `serve` hands a waiter: a grant, nothing for this one (skip it), or STOP (nothing left for anyone). */
export const STOP = Symbol('stop');

/**
 * Waiters in arrival order. `serve` offers what has freed to each waiter
 * from the head; a waiter leaves at `exitAt` (one timer, armed for the
 * earliest) or when its signal aborts, and never held anything then.
 */
export class FifoWaitList<T, M> {
  private readonly list: Array<Entry<T, M>> = [];
  private readonly timer = new ExpiryTimer(() => this.expire());
  private drainedWith?: string;

  /** `onLeave` sees every waiter once as it leaves: granted (reason undefined) or not. */
  constructor(private readonly onLeave?: (meta: M, waitedMs: number, reason?: ExitReason) => void) {}

  get length(): number {
    return this.list.length;
  }

  /** The waiting entries' metadata, head first. */
  metas(): M[] {
    return this.list.map((e) => e.meta);
  }

  /** True once `drain` was called: nothing waits any more. */
  get drained(): boolean {
    return this.drainedWith !== undefined;
  }

  /**
   * Waits for a grant. `front`: at the head (a waiter coming back after its
   * grant was refused keeps its turn). Rejects with AdmissionExit at
   * `exitAt` ('deadline'), on abort ('cancelled') or on drain ('drained').
   */
  wait(meta: M, exitAt: number, signal?: AbortSignal, front = false): Promise<T> {
    if (this.drainedWith !== undefined) return Promise.reject(new AdmissionExit('drained', this.drainedWith));
    if (signal?.aborted) return Promise.reject(new AdmissionExit('cancelled', cancelMessage(signal)));
    return new Promise<T>((resolve, reject) => {
      const entry: Entry<T, M> = { meta, exitAt, enqueuedAt: Date.now(), signal, resolve, reject };
      if (signal) {
        entry.onAbort = () => this.leave(entry, new AdmissionExit('cancelled', cancelMessage(signal)));
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      if (front) this.list.unshift(entry);
      else this.list.push(entry);
      this.timer.armFor(exitAt);
    });
  }

  /**
   * Offers capacity to the waiters in order: `grant(meta)` returns what the
   * waiter gets, undefined to pass it over (nothing it can use freed), or
   * STOP when nothing is left. Granted waiters leave the list at once, so
   * the slot is theirs before their promise continues: no one can take it
   * in between.
   */
  serve(grant: (meta: M) => T | undefined | typeof STOP): void {
    for (let i = 0; i < this.list.length; ) {
      const e = this.list[i];
      const g = grant(e.meta);
      if (g === STOP) return;
      if (g === undefined) {
        i++;
        continue;
      }
      this.list.splice(i, 1);
      this.settle(e);
      this.onLeave?.(e.meta, Date.now() - e.enqueuedAt);
      e.resolve(g);
    }
  }

  /** Every waiter leaves now ('drained'), and later waits are refused at once. */
  drain(message: string): void {
    this.drainedWith = message;
    for (const e of [...this.list]) this.leave(e, new AdmissionExit('drained', message));
  }

  private leave(e: Entry<T, M>, why: AdmissionExit): void {
    const i = this.list.indexOf(e);
    if (i < 0) return;
    this.list.splice(i, 1);
    this.settle(e);
    this.onLeave?.(e.meta, Date.now() - e.enqueuedAt, why.reason);
    e.reject(why);
  }

  private settle(e: Entry<T, M>): void {
    if (e.onAbort) e.signal!.removeEventListener('abort', e.onAbort);
    if (this.list.length === 0) this.timer.clear();
  }

  private expire(): void {
    const now = Date.now();
    let next = Infinity;
    for (const e of [...this.list]) {
      if (e.exitAt <= now) this.leave(e, new AdmissionExit('deadline', `waited ${now - e.enqueuedAt} ms for capacity; the deadline can no longer be met`));
      else if (e.exitAt < next) next = e.exitAt;
    }
    if (next < Infinity) this.timer.armFor(next);
  }
}

function cancelMessage(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  const why = r instanceof Error ? r.message : typeof r === 'string' ? r : 'cancelled';
  return `cancelled while waiting for capacity (${why})`;
}

/** Hooks to count and time waits (metrics). */
export interface QueueObserver {
  /** The number waiting changed. */
  length(n: number): void;
  /** A task got its slot after `waitedMs` (0 when it never queued), or left: `reason`. */
  left(waitedMs: number, reason?: ExitReason): void;
}

export interface FifoSlotsOptions {
  /** Slots used at once. */
  readonly capacity: number;
  /** Waiters beyond this are refused at once ('full'). */
  readonly queueLimit: number;
  /** Counts and times of the queue (metrics). */
  readonly observer?: QueueObserver;
}

/**
 * A counting semaphore with a FIFO, deadline-aware queue: the per-model
 * bulkhead. `run` takes a slot (at once, or when the waiters ahead have
 * theirs), runs `fn`, gives the slot to the next waiter as it returns.
 */
export class FifoSlots {
  private active = 0;
  private readonly waiters: FifoWaitList<true, null>;
  readonly serviceTime = new ServiceTime();

  constructor(private readonly opts: FifoSlotsOptions) {
    this.waiters = new FifoWaitList<true, null>((_m, waited, reason) => {
      opts.observer?.length(this.waiters.length);
      opts.observer?.left(waited, reason);
    });
  }

  /** Slots in use. */
  get inUse(): number {
    return this.active;
  }

  /** Callers waiting. */
  get queued(): number {
    return this.waiters.length;
  }

  /**
   * Runs `fn` in a slot. Without a free slot it waits its turn, unless it
   * could not finish by `deadlineAt` anyway (the waiters ahead, at the
   * measured service time, already take longer: 'shed', with when to retry)
   * or the queue is full ('full'). A waiter leaves when the time left drops
   * below the service time ('deadline') or its signal aborts ('cancelled'):
   * either way before anything was spent.
   */
  async run<T>(deadlineAt: number, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.active < this.opts.capacity && this.waiters.length === 0) {
      this.active += 1;
      this.opts.observer?.left(0);
    } else {
      const service = this.serviceTime.ms;
      if (service !== undefined) {
        const wait = expectedWaitMs(this.waiters.length, this.opts.capacity, service);
        if (Date.now() + wait + service > deadlineAt) {
          this.opts.observer?.left(0, 'shed');
          throw new AdmissionExit('shed', `${this.waiters.length} calls wait for ${this.opts.capacity} slots at about ${Math.round(service)} ms each: this one could not finish before its deadline`, Math.ceil(wait));
        }
      }
      if (this.waiters.length >= this.opts.queueLimit) {
        this.opts.observer?.left(0, 'full');
        throw new AdmissionExit('full', `${this.opts.capacity} calls run and ${this.waiters.length} wait, the most this queue holds`);
      }
      const p = this.waiters.wait(null, deadlineAt - (service ?? 0), signal);
      this.opts.observer?.length(this.waiters.length);
      await p; // the slot was counted for us when it was handed over
    }
    const started = Date.now();
    try {
      return await fn();
    } finally {
      this.serviceTime.add(Date.now() - started);
      this.active -= 1;
      this.waiters.serve(() => {
        if (this.active >= this.opts.capacity) return STOP;
        this.active += 1;
        return true;
      });
    }
  }

  /** Every waiter leaves at once (the agent drains); later callers still run while a slot is free. */
  drain(message: string): void {
    this.waiters.drain(message);
  }
}
