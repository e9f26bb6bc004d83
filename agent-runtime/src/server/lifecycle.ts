import { setMaxListeners } from 'node:events';
import { Logger } from '../logger';

/** What `Lifecycle.shutdown` calls, in order. */
export interface ShutdownSteps {
  /** Stop taking work: refuse new tasks, hand back tasks still waiting for capacity, report NOT_SERVING. */
  readonly stopTaking: () => void;
  /** Every piece of work is done or handed back: end the sessions, close the servers and clients. */
  readonly close: () => Promise<void>;
}

/**
 * An agent's lifecycle: whether it drains, the work it has in flight, and
 * the hand-back that ends that work when the grace period is over.
 *
 * On SIGTERM (`shutdown`): stop taking work, wait up to the grace period for
 * what is in flight, then abort the rest (`handBack`: each task ends
 * `unavailable` so its caller re-dispatches it), then close.
 */
export class Lifecycle {
  private drainingNow = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Aborted when the grace period ends: whatever is still running is handed back. */
  readonly handBack = new AbortController();
  /** Each HTTP job's controller while it runs: handed back with the rest when the grace period ends. */
  private readonly jobs = new Set<AbortController>();
  private shuttingDown: Promise<void> | undefined;

  constructor(
    private readonly gracePeriodMs: number,
    private readonly logger: Logger,
  ) {
    setMaxListeners(0, this.handBack.signal); // one listener per task in flight
    this.handBack.signal.addEventListener('abort', () => {
      for (const j of this.jobs) j.abort(this.handBack.signal.reason);
    });
  }

  get draining(): boolean {
    return this.drainingNow;
  }

  /** Counts `p` as in-flight work until it settles (the drain waits for it). */
  track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  /**
   * A job's controller: its signal is aborted by the caller (e.g. the
   * client went away) or by the hand-back. One controller per job, aborted
   * through this set: cheaper than AbortSignal.any, which showed in profiles.
   * Call `done` when the job ends. `adopt`: a controller the job already
   * has (the hand-back aborts it), instead of a new one.
   */
  jobController(adopt?: AbortController): { controller: AbortController; done: () => void } {
    let controller = adopt;
    if (!controller) {
      controller = new AbortController();
      setMaxListeners(0, controller.signal); // one listener per task waiting for capacity
    }
    this.jobs.add(controller);
    return { controller, done: () => this.jobs.delete(controller) };
  }

  /** Drains once; later calls return the same promise. */
  shutdown(steps: ShutdownSteps): Promise<void> {
    return (this.shuttingDown ??= this.drain(steps));
  }

  private async drain(steps: ShutdownSteps): Promise<void> {
    this.drainingNow = true;
    steps.stopTaking();
    this.logger.info({ inFlight: this.inFlight.size, graceMs: this.gracePeriodMs }, 'draining');
    const settled = Promise.allSettled([...this.inFlight]);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), this.gracePeriodMs);
    });
    if ((await Promise.race([settled.then(() => 'done' as const), graceOver])) === 'timeout') {
      this.logger.warn({ inFlight: this.inFlight.size }, 'grace period over: handing back unfinished tasks');
      this.handBack.abort(new Error('agent shutting down'));
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    clearTimeout(timer);
    await steps.close();
    this.logger.info('stopped');
  }
}
