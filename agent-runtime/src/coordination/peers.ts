import { promises as dns } from 'node:dns';
import { PeerEntry } from '../config';
import { Logger } from '../logger';
import { AgentServiceClient, newClient } from '../grpc/service';

/** One callee pod. */
export interface Endpoint {
  readonly role: string;
  readonly address: string;
  readonly client: AgentServiceClient;
  readonly maxInFlight: number;
  inFlight: number;
  /** Epoch ms before which the endpoint is skipped after a failure. */
  unhealthyUntil: number;
  /** Epoch ms before which the endpoint counts as full (it refused a task; see CalleeQueue.hold). */
  heldUntil: number;
}

/**
 * The pods of every callee role: DNS A records of each headless Service
 * (re-resolved periodically), or the static list AGENT_PEER_ENDPOINTS gives.
 * One gRPC channel per pod, so load is balanced per pod, not per connection.
 */
export class PeerPool {
  private readonly endpoints = new Map<string, Endpoint>();
  private timer?: NodeJS.Timeout;
  private resolvedOnce = false;
  private readonly changed: Array<() => void> = [];

  constructor(
    private readonly peers: readonly PeerEntry[],
    private readonly overrides: Readonly<Record<string, readonly string[]>>,
    private readonly logger: Logger,
    private readonly refreshMs = 5000,
    /** Opens the channel to one pod of a peer (mTLS: with the role's certificate). @default plain text */
    private readonly dial: (address: string, peer: PeerEntry) => AgentServiceClient = (address) => newClient(address),
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  /** True once every peer role was looked up at least once. */
  get ready(): boolean {
    return this.resolvedOnce || this.peers.length === 0;
  }

  all(): Endpoint[] {
    return [...this.endpoints.values()];
  }

  roles(): string[] {
    return [...new Set(this.peers.map((p) => p.role))];
  }

  /** Every role a task may name here: each callee's `roles` (absent: the callee itself). */
  reachableRoles(): string[] {
    return [...new Set(this.peers.flatMap((p) => p.roles ?? [p.role]))];
  }

  /**
   * Callee roles a task for `role` goes through: the callee itself, or a
   * supervisor whose subtree holds it (its `roles`).
   */
  rolesReaching(role: string): string[] {
    return this.peers.filter((p) => (p.roles ?? [p.role]).includes(role)).map((p) => p.role);
  }

  /** Callee roles that accept a task for `model` (all of them when no model is named). */
  rolesAccepting(model: string | undefined): string[] {
    return this.peers.filter((p) => !model || !p.models || p.models.includes(model)).map((p) => p.role);
  }

  /**
   * The least-loaded healthy endpoint with room, of `role` when given,
   * never one in `exclude`. Falls back to an unhealthy one rather than none.
   */
  pick(roles: ReadonlySet<string> | undefined, exclude: ReadonlySet<string>): Endpoint | undefined {
    const now = Date.now();
    let best: Endpoint | undefined;
    let fallback: Endpoint | undefined;
    for (const e of this.endpoints.values()) {
      if (roles && !roles.has(e.role)) continue;
      if (exclude.has(e.address) || e.inFlight >= e.maxInFlight || e.heldUntil > now) continue;
      if (e.unhealthyUntil > now) {
        if (!fallback || e.unhealthyUntil < fallback.unhealthyUntil) fallback = e;
        continue;
      }
      if (!best || e.inFlight < best.inFlight) best = e;
    }
    return best ?? fallback;
  }

  /** Tasks the pods of `roles` hold at once: maxInFlightTasks times the pods known. */
  capacity(roles: ReadonlySet<string>): number {
    let n = 0;
    for (const e of this.endpoints.values()) if (roles.has(e.role)) n += e.maxInFlight;
    return n;
  }

  /** True when some endpoint could take a task now. */
  anyRoom(): boolean {
    const now = Date.now();
    for (const e of this.endpoints.values()) if (e.inFlight < e.maxInFlight && e.heldUntil <= now) return true;
    return false;
  }

  /** Calls `fn` after the set of endpoints changed (new pods have room). */
  onChange(fn: () => void): void {
    this.changed.push(fn);
  }

  /** True when every endpoint of `roles` is in `set` (and there is at least one). */
  allIn(roles: ReadonlySet<string>, set: ReadonlySet<string>): boolean {
    let any = false;
    for (const e of this.endpoints.values()) {
      if (!roles.has(e.role)) continue;
      if (!set.has(e.address)) return false;
      any = true;
    }
    return any;
  }

  /** True when `role` has any endpoint at all (known role, resolved pods). */
  has(role: string | undefined): boolean {
    for (const e of this.endpoints.values()) if (!role || e.role === role) return true;
    return false;
  }

  markUnhealthy(address: string, forMs = 1000): void {
    const e = this.endpoints.get(address);
    if (e) e.unhealthyUntil = Date.now() + forMs;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const e of this.endpoints.values()) e.client.close();
    this.endpoints.clear();
  }

  private async refresh(): Promise<void> {
    const want = new Map<string, PeerEntry>();
    for (const p of this.peers) {
      const at = p.address.lastIndexOf(':');
      const host = p.address.slice(0, at);
      const port = p.address.slice(at + 1);
      let addresses: readonly string[];
      if (this.overrides[host]) {
        addresses = this.overrides[host];
      } else {
        try {
          addresses = (await dns.lookup(host, { all: true, family: 4 })).map((a) => `${a.address}:${port}`);
        } catch (e) {
          this.logger.warn({ host, err: (e as Error).message }, 'peer lookup failed; keeping known endpoints');
          for (const ep of this.endpoints.values()) if (ep.role === p.role) want.set(ep.address, p);
          continue;
        }
      }
      for (const a of addresses) want.set(a, p);
    }
    for (const [address, ep] of this.endpoints) {
      // A pod that left DNS gets no new work; its channel closes once idle.
      if (!want.has(address) && ep.inFlight === 0) {
        ep.client.close();
        this.endpoints.delete(address);
      }
    }
    let added = false;
    for (const [address, p] of want) {
      if (!this.endpoints.has(address)) {
        this.endpoints.set(address, { role: p.role, address, client: this.dial(address, p), maxInFlight: p.maxInFlightTasks, inFlight: 0, unhealthyUntil: 0, heldUntil: 0 });
        added = true;
      }
    }
    this.resolvedOnce = true;
    if (added) for (const fn of this.changed) fn();
  }
}
