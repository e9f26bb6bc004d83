import { readFileSync } from 'node:fs';
import { JetStreamApiCodes, JetStreamApiError, StorageType } from '@nats-io/jetstream';
import { KV, Kvm } from '@nats-io/kv';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { JobStoreConfig } from '../generated/agent-config';
import { IDEMPOTENCY_TTL_MS } from '../jobs/records';
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
 * Within this process, the changes to one key that arrive while a write of
 * it is in flight wait and go together in the next compare-and-set, so only
 * other processes' writes cause conflicts, and 64 attempts in flight on one
 * pod cost a few writes rather than 64 rounds of retries.
 */
export class KvLedger implements BudgetLedger {
  readonly scope = 'shared' as const;
  /** Changes waiting for their key's next write, and the keys being written now. */
  private readonly pending = new Map<string, PendingChange[]>();
  private readonly flushing = new Map<string, Promise<void>>();
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
    await Promise.allSettled([...this.flushing.values()]);
    await this.opts.connection?.close();
  }

  private async readStored(key: string): Promise<{ state: BudgetState; revision: number; exists: boolean; limitNano?: number }> {
    const e = await this.kv.get(key);
    if (!e || e.operation !== 'PUT') return { state: EMPTY, revision: e?.revision ?? 0, exists: e !== null };
    const v = e.json<StoredState>();
    const state: BudgetState = { spentNano: v.spent_nano, reservedNano: v.reserved_nano, ...(v.refused_nano !== undefined ? { refusedNano: v.refused_nano } : {}) };
    return { state, revision: e.revision, exists: true, limitNano: v.limit_nano };
  }

  /**
   * Applies `next` to the key's state by compare-and-set; `next` returning
   * undefined refuses the change (the state it saw comes back).
   */
  private change(key: string, next: (s: BudgetState) => BudgetState | undefined, limit: number): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      const ops = this.pending.get(key) ?? [];
      ops.push({ next, limit, resolve, reject });
      this.pending.set(key, ops);
      if (!this.flushing.has(key)) {
        const f = this.flush(key).finally(() => this.flushing.delete(key));
        this.flushing.set(key, f);
      }
    });
  }

  /** Writes a key's queued changes, a batch per compare-and-set, until none are left. */
  private async flush(key: string): Promise<void> {
    for (let batch = this.pending.get(key); batch && batch.length > 0; batch = this.pending.get(key)) {
      this.pending.delete(key);
      try {
        await this.apply(key, batch);
      } catch (e) {
        for (const op of batch) op.reject(e);
      }
    }
  }

  /**
   * One read-modify-write for a batch: each change sees the state the ones
   * before it left, and either all the accepted ones are written together or,
   * on a conflict, the batch is applied again to what the other writer left.
   */
  private async apply(key: string, batch: readonly PendingChange[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.readStored(key);
      let state = cur.state;
      const outcomes = batch.map((op): Outcome => {
        const n = op.next(state);
        if (!n) return { ok: false, state };
        state = n;
        return { ok: true };
      });
      if (outcomes.every((o) => !o.ok)) {
        batch.forEach((op, i) => op.resolve(outcomes[i]));
        return;
      }
      const stored: StoredState = { spent_nano: state.spentNano, reserved_nano: state.reservedNano, limit_nano: batch[batch.length - 1].limit };
      if (state.refusedNano !== undefined) stored.refused_nano = state.refusedNano;
      const value = JSON.stringify(stored);
      try {
        if (cur.exists) await this.kv.update(key, value, cur.revision);
        else await this.kv.create(key, value);
        batch.forEach((op, i) => op.resolve(outcomes[i]));
        return;
      } catch (e) {
        if (!isConflict(e)) throw e;
        this.conflicts += 1;
        this.opts.onConflict?.(key);
        // a short random pause spreads the replicas that collided
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * Math.min(20, 2 * attempt)));
      }
    }
  }
}

type Outcome = { ok: true } | { ok: false; state: BudgetState };

/** A change waiting for its key's next write. */
interface PendingChange {
  readonly next: (s: BudgetState) => BudgetState | undefined;
  readonly limit: number;
  readonly resolve: (o: Outcome) => void;
  readonly reject: (e: unknown) => void;
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
      // the settings the job store makes it with (jobs/jetstream-store.ts), whichever of the two comes first
      return await kvm.create(bucket, { replicas, history: 1, ttl: IDEMPOTENCY_TTL_MS, storage: StorageType.File });
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
