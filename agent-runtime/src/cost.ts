import { ModelEntry } from './config';
import { Usage } from './types';

/** USD for one call: prompt and completion tokens at the catalog's per-million prices. */
export function costUsd(entry: Pick<ModelEntry, 'inputUsdPerMTok' | 'outputUsdPerMTok'>, usage: Usage): number {
  return (usage.promptTokens * entry.inputUsdPerMTok + usage.completionTokens * entry.outputUsdPerMTok) / 1_000_000;
}
