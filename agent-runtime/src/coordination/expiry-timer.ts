/**
 * One timer for many waiters, armed for the earliest expiry among them
 * (instead of a timer per waiter): `armFor(at)` moves it earlier when `at`
 * is sooner than what is armed; when it fires, the owner sweeps its waiters
 * and re-arms for the next expiry it found. Used by the admission queue and
 * by each peer Session.
 */
export class ExpiryTimer {
  private timer?: NodeJS.Timeout;
  private at = Infinity;

  constructor(private readonly onExpire: () => void) {}

  /** Fire at `at` (epoch ms), unless already armed for an earlier time. */
  armFor(at: number): void {
    if (at >= this.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.at = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.at = Infinity;
      this.onExpire();
    }, Math.max(1, at - Date.now()));
    this.timer.unref();
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.at = Infinity;
  }
}
