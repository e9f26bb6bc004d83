// Internal: not exported from index.ts, so jsii never sees this shape.

/** A model with every default resolved (what the runtime receives). */
export interface ResolvedModel {
  readonly inputUsdPerMTok: number;
  readonly outputUsdPerMTok: number;
  readonly cachedInputUsdPerMTok: number;
  readonly contextWindowTokens: number;
  readonly reserveTokens: number;
  readonly breaker: { readonly failureThreshold: number; readonly recoverySeconds: number };
  readonly maxConcurrency: number;
  readonly fallbacks: string[];
  readonly tokenizer: string;
}

