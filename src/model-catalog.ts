import { ModelEntry } from './contract';

/**
 * BPE encodings the runtime can count tokens with.
 */
export enum Tokenizer {
  /** The GPT-4o / GPT-4.1 family encoding. */
  O200K_BASE = 'o200k_base',
  /** The GPT-4 / GPT-3.5 encoding. */
  CL100K_BASE = 'cl100k_base',
}

/**
 * One model of the catalog: its prices, window and resilience settings.
 */
export interface ModelSpec {
  /** Model id as the upstream knows it, e.g. `gpt-4.1`. */
  readonly id: string;
  /** USD per million prompt tokens. */
  readonly inputUsdPerMTok: number;
  /** USD per million completion tokens. @default - same as `inputUsdPerMTok` */
  readonly outputUsdPerMTok?: number;
  /** Context window in tokens. @default 128000 */
  readonly contextWindowTokens?: number;
  /** Tokens kept free for the completion. @default 4000 */
  readonly reserveTokens?: number;
  /** Consecutive failures that open this model's circuit. @default 10 */
  readonly breakerFailureThreshold?: number;
  /** Seconds an open circuit waits before a half-open trial. @default 30 */
  readonly breakerRecoverySeconds?: number;
  /** Upstream calls to this model in flight per pod (bulkhead). @default 32 */
  readonly maxConcurrency?: number;
  /** Models tried in order when this one's circuit is open or its retries are spent. @default [] */
  readonly fallbacks?: string[];
  /** Encoding used to count this model's context. @default Tokenizer.O200K_BASE */
  readonly tokenizer?: Tokenizer;
}

/**
 * The typed model catalog: defined once, rendered into every agent's config,
 * read by the runtime for prices, windows, breakers and fallbacks.
 * Immutable: `withModel` returns a new catalog.
 */
export class ModelCatalog {
  /**
   * The four models of the reference deployment with their published prices
   * (USD per million tokens) and breaker settings (failures / recovery s).
   */
  public static defaults(): ModelCatalog {
    return new ModelCatalog([
      {
        id: 'gpt-4.1',
        inputUsdPerMTok: 8,
        breakerFailureThreshold: 10,
        breakerRecoverySeconds: 60,
        fallbacks: ['claude-sonnet-4.5', 'gemini-2.5-flash'],
      },
      {
        id: 'claude-sonnet-4.5',
        inputUsdPerMTok: 15,
        breakerFailureThreshold: 8,
        breakerRecoverySeconds: 45,
        fallbacks: ['gpt-4.1', 'gemini-2.5-flash'],
      },
      {
        id: 'gemini-2.5-flash',
        inputUsdPerMTok: 2.5,
        breakerFailureThreshold: 15,
        breakerRecoverySeconds: 30,
        fallbacks: ['deepseek-v3.2'],
      },
      {
        id: 'deepseek-v3.2',
        inputUsdPerMTok: 0.42,
        breakerFailureThreshold: 20,
        breakerRecoverySeconds: 20,
        fallbacks: ['gemini-2.5-flash'],
      },
    ]);
  }

  private readonly models: Map<string, ModelSpec>;

  /** @param models the catalog's models; a later entry with the same id replaces an earlier one. */
  constructor(models: ModelSpec[] = []) {
    this.models = new Map();
    for (const m of models) this.models.set(m.id, m);
  }

  /** A new catalog with `model` added, or replacing the model of the same id. */
  public withModel(model: ModelSpec): ModelCatalog {
    return new ModelCatalog([...this.models.values(), model]);
  }

  /** The ids of every model, in insertion order. */
  public get modelIds(): string[] {
    return [...this.models.keys()];
  }

  /** True when the catalog has a model of this id. */
  public has(id: string): boolean {
    return this.models.has(id);
  }

  /** The model's spec as declared. Throws when absent. */
  public spec(id: string): ModelSpec {
    const m = this.models.get(id);
    if (!m) throw new Error(`model '${id}' is not in the catalog (known: ${this.modelIds.join(', ')})`);
    return m;
  }

  /**
   * Problems in the catalog itself (fallbacks naming unknown models, bad
   * numbers), one sentence each; empty when it is consistent.
   */
  public problems(): string[] {
    const out: string[] = [];
    for (const m of this.models.values()) {
      for (const f of m.fallbacks ?? []) {
        if (!this.models.has(f)) out.push(`model '${m.id}' falls back to '${f}', which is not in the catalog: add it with catalog.withModel({ id: '${f}', ... }) or remove it from fallbacks`);
        if (f === m.id) out.push(`model '${m.id}' lists itself as a fallback: remove it`);
      }
      const nums: Array<[string, number | undefined, number]> = [
        ['inputUsdPerMTok', m.inputUsdPerMTok, 0],
        ['outputUsdPerMTok', m.outputUsdPerMTok, 0],
        ['contextWindowTokens', m.contextWindowTokens, 1],
        ['reserveTokens', m.reserveTokens, 0],
        ['breakerFailureThreshold', m.breakerFailureThreshold, 1],
        ['breakerRecoverySeconds', m.breakerRecoverySeconds, 0.001],
        ['maxConcurrency', m.maxConcurrency, 1],
      ];
      for (const [field, value, min] of nums) {
        if (value !== undefined && (!Number.isFinite(value) || value < min)) {
          out.push(`model '${m.id}' has ${field}=${value}: it must be a number >= ${min}`);
        }
      }
      const window = m.contextWindowTokens ?? 128000;
      if ((m.reserveTokens ?? 4000) >= window) {
        out.push(`model '${m.id}' reserves ${m.reserveTokens ?? 4000} of its ${window}-token window: reserveTokens must be smaller than contextWindowTokens`);
      }
    }
    return out;
  }

  /**
   * The model with defaults resolved, in the shape of the runtime's config.
   * @internal
   */
  public _resolve(id: string): ModelEntry {
    const m = this.spec(id);
    return {
      inputUsdPerMTok: m.inputUsdPerMTok,
      outputUsdPerMTok: m.outputUsdPerMTok ?? m.inputUsdPerMTok,
      contextWindowTokens: m.contextWindowTokens ?? 128000,
      reserveTokens: m.reserveTokens ?? 4000,
      breaker: {
        failureThreshold: m.breakerFailureThreshold ?? 10,
        recoverySeconds: m.breakerRecoverySeconds ?? 30,
      },
      maxConcurrency: m.maxConcurrency ?? 32,
      fallbacks: [...(m.fallbacks ?? [])],
      tokenizer: m.tokenizer ?? Tokenizer.O200K_BASE,
    };
  }

  /**
   * The models an agent allowed `ids` may reach: those ids plus, transitively,
   * their fallbacks that exist in the catalog.
   * @internal
   */
  public _closure(ids: string[]): string[] {
    const seen = new Set<string>();
    const queue = [...ids];
    while (queue.length > 0) {
      const id = queue.shift()!;
      if (seen.has(id) || !this.models.has(id)) continue;
      seen.add(id);
      queue.push(...(this.models.get(id)!.fallbacks ?? []));
    }
    return [...seen];
  }
}
