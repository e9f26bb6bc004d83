import { AdmissionExit, expectedWaitMs, FifoWaitList, QueueObserver, ServiceTime, STOP } from './admission';
import { Endpoint, PeerPool } from './peers';

/** One task's request for a slot on a callee pod. */
export interface SlotRequest {
  /** The eligible callee set, as a stable key (its roles, sorted, comma-joined). */
  readonly key: string;
  readonly eligible: ReadonlySet<string>;
  /** Pods not to take now (tried this round, or failed it against the upstream). */
  readonly exclude: ReadonlySet<string>;
  /** Pods never to take while waiting (failed it against the upstream): a waiter's tried pods count again. */
  readonly waitExclude: ReadonlySet<string>;
  readonly deadlineAt: number;
  readonly signal?: AbortSignal;
  /** Back after a callee refused it: keeps its turn at the head of the queue. */
  readonly front?: boolean;
}

interface Waiting {
  readonly key: string;
  readonly eligible: ReadonlySet<string>;
  readonly exclude: ReadonlySet<string>;
}

/**
 * Fair admission to callee pods: a task that finds every eligible pod full
 * waits in one FIFO (arrival order across every eligible set, so sets that
 * share pods are fair to each other) and is handed the first slot that
 * frees on a pod it may use, at once, by the releasing task. The slot is
 * counted (`inFlight`) before the waiter runs, so nobody can take it in
 * between. Capacity is `maxInFlightTasks` per pod the pool knows.
 *
 * Shedding: a task arriving with W tasks already waiting for its set's
 * pods (C slots in all, each held about S ms: an EWMA of recent trips of
 * that set) is refused at once (`shed`, retry after about (W+1)·S/C ms)
 * when (W+1)·S/C + S would take it past its deadline less the return
 * margin. A waiter leaves at once, having held nothing, when the time left
 * drops below margin + S ('deadline'), on its signal ('cancelled') or when
 * the agent drains ('drained'). Before the first trip of a set there is no
 * estimate: nothing is shed, and waiters leave at deadline - margin.
 */
export class CalleeQueue {
  private readonly waiters: FifoWaitList<Endpoint, Waiting>;
  /** Waiting tasks per eligible set. */
  private readonly waitingByKey = new Map<string, number>();
  private readonly serviceTimes = new Map<string, ServiceTime>();
  private readonly observers = new Map<string, QueueObserver | undefined>();

  constructor(
    private readonly pool: PeerPool,
    private readonly marginMs: number,
    private readonly observerFor: (key: string) => QueueObserver | undefined = () => undefined,
  ) {
    this.waiters = new FifoWaitList<Endpoint, Waiting>((m, waited, reason) => {
      const n = (this.waitingByKey.get(m.key) ?? 1) - 1;
      this.waitingByKey.set(m.key, n);
      const o = this.observer(m.key);
      o?.length(n);
      o?.left(waited, reason);
    });
    pool.onChange(() => this.serve());
  }

  /** The metrics of a set's queue (looked up once per set). */
  private observer(key: string): QueueObserver | undefined {
    let o = this.observers.get(key);
    if (o === undefined && !this.observers.has(key)) this.observers.set(key, (o = this.observerFor(key)));
    return o;
  }

  /** Tasks waiting now, all sets. */
  get length(): number {
    return this.waiters.length;
  }

  /** The estimated slot hold time of a set, ms (undefined before its first trip). */
  serviceMs(key: string): number | undefined {
    return this.serviceTimes.get(key)?.ms;
  }

  /**
   * A slot on an eligible pod (counted in its `inFlight`): at once when one
   * has room, else in turn. Rejects with AdmissionExit when shed or when
   * the wait ends without a slot.
   */
  async acquire(req: SlotRequest): Promise<Endpoint> {
    const now = Date.now();
    const ep = this.pool.pick(req.eligible, req.exclude);
    if (ep) {
      ep.inFlight += 1;
      this.observer(req.key)?.left(0);
      return ep;
    }
    const service = this.serviceMs(req.key);
    if (service !== undefined) {
      const ahead = req.front ? 0 : this.waitingFor(req.eligible);
      const capacity = this.pool.capacity(req.eligible);
      const wait = expectedWaitMs(ahead, capacity, service);
      if (now + wait + service > req.deadlineAt - this.marginMs) {
        this.observer(req.key)?.left(0, 'shed');
        throw new AdmissionExit(
          'shed',
          `${ahead} tasks wait for the ${capacity} slots of ${req.key} at about ${Math.round(service)} ms each: this one could not finish before its deadline`,
          Math.ceil(wait),
        );
      }
    }
    const p = this.waiters.wait({ key: req.key, eligible: req.eligible, exclude: req.waitExclude }, req.deadlineAt - this.marginMs - (service ?? 0), req.signal, req.front);
    // refused at once (drained, or already cancelled): it never joined, so it is not counted
    if (this.waiters.drained || req.signal?.aborted) return p;
    const n = (this.waitingByKey.get(req.key) ?? 0) + 1;
    this.waitingByKey.set(req.key, n);
    this.observer(req.key)?.length(n);
    this.serve(); // a pod it may use while waiting (one it had tried) can have room now
    return p;
  }

  /**
   * Gives a slot back. `tripMs`: how long the callee took to answer, when
   * it did (feeds the set's service time); a refusal or a broken call
   * gives none.
   */
  release(ep: Endpoint, key: string, tripMs?: number): void {
    ep.inFlight -= 1;
    if (tripMs !== undefined) {
      let s = this.serviceTimes.get(key);
      if (!s) this.serviceTimes.set(key, (s = new ServiceTime()));
      s.add(tripMs);
      // it answered: it has room again, whatever it said before
      if (ep.heldUntil > 0) ep.heldUntil = 0;
    }
    this.serve();
  }

  /**
   * The pod refused or failed a task: take nothing more to it for `ms`, or
   * until it answers one of ours, so waiters do not bounce off it in a
   * loop. Its slots go to the other pods' waiters meanwhile.
   */
  hold(ep: Endpoint, ms = 50): void {
    ep.heldUntil = Date.now() + ms;
    setTimeout(() => this.serve(), ms + 1).unref();
  }

  /** Every waiter leaves now (the agent drains); tasks that find a free slot still go. */
  drain(message: string): void {
    this.waiters.drain(message);
  }

  /** Hands free slots to waiters in arrival order. */
  private serve(): void {
    if (this.waiters.length === 0) return;
    this.waiters.serve((w) => {
      if (!this.pool.anyRoom()) return STOP;
      const ep = this.pool.pick(w.eligible, w.exclude);
      if (!ep) return undefined;
      ep.inFlight += 1;
      return ep;
    });
  }

  /** Tasks waiting for any pod of `eligible` (sets that share a role compete for it). */
  private waitingFor(eligible: ReadonlySet<string>): number {
    let n = 0;
    for (const [key, count] of this.waitingByKey) {
      if (count > 0 && key.split(',').some((r) => eligible.has(r))) n += count;
    }
    return n;
  }
}
