import { ModelEntry } from './config';
import { Usage } from './types';

/**
 * USD for one call at the catalog's per-million prices: the prompt tokens the
 * upstream reports as cached at the cached price (the input price when the
 * catalog has none), the rest of the prompt at the input price, and the
 * completion at the output price.
 */
export function costUsd(entry: Pick<ModelEntry, 'inputUsdPerMTok' | 'outputUsdPerMTok' | 'cachedInputUsdPerMTok'>, usage: Usage): number {
  const cached = Math.min(Math.max(usage.cachedPromptTokens ?? 0, 0), usage.promptTokens);
  const cachedPrice = entry.cachedInputUsdPerMTok ?? entry.inputUsdPerMTok;
  return ((usage.promptTokens - cached) * entry.inputUsdPerMTok + cached * cachedPrice + usage.completionTokens * entry.outputUsdPerMTok) / 1_000_000;
}
