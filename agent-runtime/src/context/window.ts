import { ChatMessage } from '../types';

type Encoder = { encode(text: string): number[]; countTokens?(text: string): number; isWithinTokenLimit(text: string, limit: number): false | number };

// Encodings are large tables: load each at most once, and only when a model uses it.
const encoders = new Map<string, Encoder>();
function encoder(name: string): Encoder {
  let e = encoders.get(name);
  if (!e) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    e = name === 'cl100k_base' ? (require('gpt-tokenizer/encoding/cl100k_base') as Encoder) : (require('gpt-tokenizer/encoding/o200k_base') as Encoder);
    encoders.set(name, e);
  }
  return e;
}

/**
 * Tokens a message costs in a chat prompt: its content plus a fixed framing
 * overhead of 4 tokens per message (role and separators) and 3 per reply
 * priming, the accounting OpenAI documents for its chat format.
 */
export const MESSAGE_OVERHEAD_TOKENS = 4;
export const REPLY_PRIMING_TOKENS = 3;

/**
 * Counts of texts seen lately, per tokenizer. BPE is the costliest step of a
 * budgeted call (tens of microseconds for a few hundred characters) and most
 * of a prompt repeats on every call: the role's instructions, the tool
 * definitions, the answer schema. A count is a pure function of the text, so
 * the cache changes no answer. Least recently used out first (a Map keeps
 * insertion order; a hit moves its text to the end), so the texts every call
 * sends stay while one-off user turns pass through.
 */
const COUNT_CACHE_ENTRIES = 512;
// longer texts are rare and would pin their memory: counted every time
const COUNT_CACHE_MAX_CHARS = 64 * 1024;
const counted = new Map<string, Map<string, number>>();

function cachedCount(text: string, tokenizer: string): number | undefined {
  const cache = counted.get(tokenizer);
  const n = cache?.get(text);
  if (n !== undefined) {
    cache!.delete(text);
    cache!.set(text, n);
  }
  return n;
}

function remember(text: string, tokenizer: string, n: number): void {
  if (text.length > COUNT_CACHE_MAX_CHARS) return;
  let cache = counted.get(tokenizer);
  if (!cache) {
    cache = new Map();
    counted.set(tokenizer, cache);
  }
  if (cache.size >= COUNT_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  cache.set(text, n);
}

export function countTokens(text: string, tokenizer: string): number {
  const known = cachedCount(text, tokenizer);
  if (known !== undefined) return known;
  const e = encoder(tokenizer);
  const n = e.countTokens ? e.countTokens(text) : e.encode(text).length;
  remember(text, tokenizer, n);
  return n;
}

/** The text of a message that costs tokens: its content, and the calls of an assistant turn that asked for tools. */
function textOf(m: ChatMessage): string {
  return m.tool_calls ? m.content + JSON.stringify(m.tool_calls) : m.content;
}

export function messageTokens(m: ChatMessage, tokenizer: string): number {
  return countTokens(textOf(m), tokenizer) + MESSAGE_OVERHEAD_TOKENS + (m.name ? 1 : 0);
}

/**
 * Like messageTokens, but stops encoding once `limit` is passed and returns
 * Infinity: an oversized prompt costs no more memory than the budget.
 */
function messageTokensUpTo(m: ChatMessage, tokenizer: string, limit: number): number {
  const overhead = MESSAGE_OVERHEAD_TOKENS + (m.name ? 1 : 0);
  if (limit < overhead) return Infinity;
  const text = textOf(m);
  const known = cachedCount(text, tokenizer);
  if (known !== undefined) return known > limit - overhead ? Infinity : known + overhead;
  const n = encoder(tokenizer).isWithinTokenLimit(text, limit - overhead);
  if (n === false) return Infinity;
  remember(text, tokenizer, n);
  return n + overhead;
}

export class ContextOverflowError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContextOverflowError';
  }
}

export interface WindowResult {
  readonly messages: ChatMessage[];
  readonly promptTokens: number;
  readonly dropped: number;
}

/**
 * True when the messages fit the budget for certain without tokenizing:
 * cl100k and o200k are byte-level BPE, so no token is shorter than one byte
 * and a text never has more tokens than UTF-8 bytes. Most prompts are far
 * below any window; this skips the tokenizer (the costliest step of a short
 * task) for them, and leaves everything near the limit to fitToWindow.
 */
export function fitsWithoutCounting(
  messages: readonly ChatMessage[],
  opts: { contextWindowTokens: number; reserveTokens: number; maxTokens?: number },
): boolean {
  const budget = opts.contextWindowTokens - opts.reserveTokens - (opts.maxTokens ?? 0) - REPLY_PRIMING_TOKENS;
  let bound = 0;
  for (const m of messages) {
    // length * 3 bounds the UTF-8 bytes of a JS string (a UTF-16 unit is at most 3 bytes)
    // and is free; the exact byte count is only taken when that bound is too loose
    const text = textOf(m);
    const content = text.length * 3 <= budget ? text.length * 3 : Buffer.byteLength(text, 'utf8');
    bound += content + MESSAGE_OVERHEAD_TOKENS + (m.name ? 1 : 0);
    if (bound > budget) return false;
  }
  return true;
}

/**
 * Sliding window in tokens: keeps every system message and the newest other
 * turns that fit `contextWindow - reserve - maxTokens`; drops the oldest
 * non-system turns first. Throws ContextOverflowError when the system
 * prompt plus the newest turn alone do not fit.
 */
export function fitToWindow(
  messages: readonly ChatMessage[],
  opts: { contextWindowTokens: number; reserveTokens: number; maxTokens?: number; tokenizer: string },
): WindowResult {
  const budget = opts.contextWindowTokens - opts.reserveTokens - (opts.maxTokens ?? 0) - REPLY_PRIMING_TOKENS;
  const costs = messages.map((m) => messageTokensUpTo(m, opts.tokenizer, Math.max(0, budget)));
  let systemTokens = 0;
  messages.forEach((m, i) => {
    if (m.role === 'system') systemTokens += costs[i];
  });
  const keep = new Array<boolean>(messages.length).fill(false);
  let used = systemTokens;
  messages.forEach((m, i) => {
    if (m.role === 'system') keep[i] = true;
  });
  let keptTurns = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'system') continue;
    if (used + costs[i] > budget) break;
    used += costs[i];
    keep[i] = true;
    keptTurns += 1;
  }
  const turns = messages.filter((m) => m.role !== 'system').length;
  if (turns > 0 && keptTurns === 0) {
    const lastTurn = messages.reduce((acc, m, i) => (m.role !== 'system' ? i : acc), -1);
    const newest = costs[lastTurn];
    throw new ContextOverflowError(
      `prompt does not fit: system ${systemTokens} + newest turn ${Number.isFinite(newest) ? newest : `more than ${budget}`} tokens > budget ${budget} (window ${opts.contextWindowTokens} - reserve ${opts.reserveTokens} - max_tokens ${opts.maxTokens ?? 0})`,
    );
  }
  if (systemTokens > budget) throw new ContextOverflowError(`system prompt alone is more than the budget of ${budget} tokens`);
  const kept = messages.filter((_, i) => keep[i]);
  return { messages: kept, promptTokens: used + REPLY_PRIMING_TOKENS, dropped: messages.length - kept.length };
}
