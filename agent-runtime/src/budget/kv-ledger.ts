import { readFileSync } from 'node:fs';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { KV, Kvm } from '@nats-io/kv';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { JobStoreConfig } from '../generated/agent-config';
import { BudgetLedger, BudgetLine, BudgetState, EMPTY, fits, Reservation, ReserveOutcome } from './ledger';

/** One budget key's value in the bucket. */
interface StoredState {
  spent_nano: number;
  reserved_nano: number;
  /** the worst case of the last attempt refused (BudgetState.refusedNano) */
  refused_nano?: number;
  /** the limit the last writer applied, for readers that do not know it (GET /v1/jobs/<id> on another replica) */
  limit_nano?: number;
}

export interface KvLedgerOptions {
  /** Called once per compare-and-set conflict (another writer changed the key first); metrics count them. */
  readonly onConflict?: (key: string) => void;
  /** Owned connection, closed by close(). */
  readonly connection?: NatsConnection;
}

/** Another writer updated the key between our read and our write. */
function isConflict(e: unknown): boolean {
  return e instanceof JetStreamApiError && (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

/**
 * Budgets shared by every replica: one key per budget in the job store's
 * JetStream KV bucket, changed only by compare-and-set on the key's revision
 * (read, check, write if nobody wrote since; on a conflict read again), so
 * two replicas can never both take the last room of a budget.
 *
 * Within this process, changes to one key are queued, so only other
 * processes' writes cause conflicts (64 attempts in flight on one pod do not
 * race each other for the same revision).
 */
export class KvLedger implements BudgetLedger {
  readonly scope = 'shared' as const;
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Compare-and-set conflicts retried so far. */
  conflicts = 0;

  constructor(
    private readonly kv: KV,
    private readonly opts: KvLedgerOptions = {},
  ) {}

  /** Connects to the job store's NATS and opens (or creates) its bucket. */
  static async open(store: JobStoreConfig, opts: Omit<KvLedgerOptions, 'connection'> = {}): Promise<KvLedger> {
    const nc = await connect({
      servers: store.url.split(',').map((s) => s.trim()),
      name: 'agent-runtime budgets',
      maxReconnectAttempts: -1,
      ...(store.credentialsFile ? { authenticator: credsAuthenticator(readFileSync(store.credentialsFile)) } : {}),
    });
    try {
      return new KvLedger(await openBucket(nc, store.bucket, store.replicas), { ...opts, connection: nc });
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  async reserve(lines: readonly BudgetLine[], amountNano: number): Promise<ReserveOutcome> {
    // a fixed order, so two attempts on the same budgets take them in the same order
    const ordered = [...lines].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const held: BudgetLine[] = [];
    for (const line of ordered) {
      const r = await this.change(line.key, (s) => (fits(line, s, amountNano) ? { ...s, reservedNano: s.reservedNano + amountNano } : undefined), line.limitNano);
      if (!r.ok) {
        // give back what the lines before this one held
        for (const h of held) await this.change(h.key, (s) => ({ ...s, reservedNano: Math.max(0, s.reservedNano - amountNano) }), h.limitNano);
        if (r.state.refusedNano !== amountNano) await this.change(line.key, (s) => (fits(line, s, amountNano) ? undefined : { ...s, refusedNano: amountNano }), line.limitNano);
        return { ok: false, line, state: r.state };
      }
      held.push(line);
    }
    return { ok: true, reservation: { lines, amountNano } };
  }

  async settle(r: Reservation, actualNano: number): Promise<void> {
    for (const line of r.lines) {
      await this.change(line.key, (s) => ({ ...s, spentNano: s.spentNano + actualNano, reservedNano: Math.max(0, s.reservedNano - r.amountNano) }), line.limitNano);
    }
  }

  async record(lines: readonly BudgetLine[], amountNano: number): Promise<void> {
    for (const line of lines) await this.change(line.key, (s) => ({ ...s, spentNano: s.spentNano + amountNano }), line.limitNano);
  }

  async read(key: string): Promise<BudgetState> {
    return (await this.readStored(key)).state;
  }

  /** The key's state and the limit its last writer applied (undefined when never written). */
  async readWithLimit(key: string): Promise<{ state: BudgetState; limitNano?: number }> {
    const { state, limitNano } = await this.readStored(key);
    return { state, limitNano };
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()]);
    await this.opts.connection?.close();
  }

  private async readStored(key: string): Promise<{ state: BudgetState; revision: number; exists: boolean; limitNano?: number }> {
    const e = await this.kv.get(key);
    if (!e || e.operation !== 'PUT') return { state: EMPTY, revision: e?.revision ?? 0, exists: e !== null };
    const v = e.json<StoredState>();
    const state: BudgetState = { spentNano: v.spent_nano, reservedNano: v.reserved_nano, ...(v.refused_nano !== undefined ? { refusedNano: v.refused_nano } : {}) };
    return { state, revision: e.revision, exists: true, limitNano: v.limit_nano };
  }

  /** Applies `next` to the key's state by compare-and-set; `next` returning undefined refuses the change. */
  private change(key: string, next: (s: BudgetState) => BudgetState | undefined, limit: number): Promise<{ ok: true } | { ok: false; state: BudgetState }> {
    const run = async (): Promise<{ ok: true } | { ok: false; state: BudgetState }> => {
      for (let attempt = 0; ; attempt++) {
        const cur = await this.readStored(key);
        const n = next(cur.state);
        if (!n) return { ok: false, state: cur.state };
        const stored: StoredState = { spent_nano: n.spentNano, reserved_nano: n.reservedNano, limit_nano: limit };
        if (n.refusedNano !== undefined) stored.refused_nano = n.refusedNano;
        const value = JSON.stringify(stored);
        try {
          if (cur.exists) await this.kv.update(key, value, cur.revision);
          else await this.kv.create(key, value);
          return { ok: true };
        } catch (e) {
          if (!isConflict(e)) throw e;
          this.conflicts += 1;
          this.opts.onConflict?.(key);
          // a short random pause spreads the replicas that collided
          if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * Math.min(20, 2 * attempt)));
        }
      }
    };
    const prev = this.queues.get(key) ?? Promise.resolve();
    const p = prev.then(run, run);
    this.queues.set(key, p);
    void p.finally(() => {
      if (this.queues.get(key) === p) this.queues.delete(key);
    }).catch(() => undefined);
    return p;
  }
}

/** Opens the bucket when it exists (another component may have made it with its own settings), else creates it. */
export async function openBucket(nc: NatsConnection, bucket: string, replicas: number): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    const kv = await kvm.open(bucket);
    await kv.status();
    return kv;
  } catch {
    try {
      return await kvm.create(bucket, { replicas, history: 1 });
    } catch (e) {
      // made by another process in between
      const kv = await kvm.open(bucket);
      await kv.status().catch(() => {
        throw e;
      });
      return kv;
    }
  }
}
