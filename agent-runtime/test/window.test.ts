// The same CommonJS entry the runtime loads (the package's types are only
// reachable through its ESM export map, which moduleResolution=node ignores).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { encode } = require('gpt-tokenizer/encoding/o200k_base') as { encode(text: string): number[] };
import { ContextOverflowError, countTokens, fitsWithoutCounting, fitToWindow, MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMING_TOKENS } from '../src/context/window';
import { ChatMessage } from '../src/types';

const turn = (i: number, words = 50): ChatMessage => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}: ` + 'lorem ipsum dolor '.repeat(words) });

test('counts tokens with the real o200k tokenizer, not characters', () => {
  const text = 'Kubernetes orchestrates containers.';
  expect(countTokens(text, 'o200k_base')).toBe(encode(text).length);
  expect(countTokens(text, 'o200k_base')).not.toBe(text.length);
  expect(countTokens(text, 'cl100k_base')).toBeGreaterThan(0);
});

test('everything is kept when it fits', () => {
  const msgs = [{ role: 'system' as const, content: 'be brief' }, turn(1), turn(2)];
  const r = fitToWindow(msgs, { contextWindowTokens: 128000, reserveTokens: 4000, tokenizer: 'o200k_base' });
  expect(r.messages).toEqual(msgs);
  expect(r.dropped).toBe(0);
  const expected = msgs.reduce((s, m) => s + countTokens(m.content, 'o200k_base') + MESSAGE_OVERHEAD_TOKENS, 0) + REPLY_PRIMING_TOKENS;
  expect(r.promptTokens).toBe(expected);
});

test('the window keeps the system prompt and the newest turns, dropping the oldest', () => {
  const system: ChatMessage = { role: 'system', content: 'You are the validation agent.' };
  const msgs = [system, ...Array.from({ length: 40 }, (_, i) => turn(i))];
  const perTurn = countTokens(turn(10).content, 'o200k_base') + MESSAGE_OVERHEAD_TOKENS;
  const window = 2000;
  const reserve = 300;
  const r = fitToWindow(msgs, { contextWindowTokens: window, reserveTokens: reserve, maxTokens: 100, tokenizer: 'o200k_base' });
  expect(r.messages[0]).toBe(system);
  expect(r.messages[r.messages.length - 1]).toBe(msgs[msgs.length - 1]);
  expect(r.promptTokens).toBeLessThanOrEqual(window - reserve - 100);
  // it kept as many newest turns as fit, no fewer
  const kept = r.messages.length - 1;
  expect(kept).toBeGreaterThanOrEqual(Math.floor((window - reserve - 100 - 30) / perTurn) - 1);
  expect(r.dropped).toBe(msgs.length - r.messages.length);
  // kept turns are a contiguous newest suffix
  const keptTurns = r.messages.slice(1);
  expect(keptTurns).toEqual(msgs.slice(msgs.length - keptTurns.length));
});

test('overflow when the system prompt and the newest turn alone do not fit', () => {
  const msgs = [{ role: 'system' as const, content: 'rules '.repeat(100) }, turn(1, 400)];
  expect(() => fitToWindow(msgs, { contextWindowTokens: 1000, reserveTokens: 200, tokenizer: 'o200k_base' })).toThrow(ContextOverflowError);
  expect(() => fitToWindow(msgs, { contextWindowTokens: 1000, reserveTokens: 200, tokenizer: 'o200k_base' })).toThrow(/newest turn more than 797 tokens > budget 797/);
});

test('an oversized prompt is rejected without encoding all of it', () => {
  const huge: ChatMessage = { role: 'user', content: 'token '.repeat(2_000_000) }; // ~12 MB, ~2 M tokens
  // "more than <budget>" is only reported when counting stopped at the budget
  expect(() => fitToWindow([huge], { contextWindowTokens: 128000, reserveTokens: 4000, tokenizer: 'o200k_base' })).toThrow(/newest turn more than 123997 tokens/);
});

test('the no-tokenizer fast path only says "fits" when the byte bound proves it', () => {
  const texts = ['plain ascii prompt', 'Grüße aus München, ça va? ', '日本語のテキストとemoji 🚀🚀 ', 'x'.repeat(5000), ' '.repeat(300)];
  // the premise: a byte-level BPE never yields more tokens than UTF-8 bytes
  for (const t of texts) for (const tok of ['o200k_base', 'cl100k_base']) expect(countTokens(t, tok)).toBeLessThanOrEqual(Buffer.byteLength(t));
  const opts = { contextWindowTokens: 1000, reserveTokens: 100, maxTokens: 50 };
  const budget = 1000 - 100 - 50 - REPLY_PRIMING_TOKENS;
  const at = (bytes: number): ChatMessage[] => [{ role: 'user', content: 'a'.repeat(bytes - MESSAGE_OVERHEAD_TOKENS) }];
  expect(fitsWithoutCounting(at(budget), opts)).toBe(true);
  expect(fitsWithoutCounting(at(budget + 1), opts)).toBe(false); // might still fit: fitToWindow decides
  expect(fitToWindow(at(budget + 1), { ...opts, tokenizer: 'o200k_base' }).messages).toHaveLength(1);
  // multi-byte text is bounded by its bytes, not its length
  const cjk = '日本語'.repeat(100); // 300 chars, 900 bytes
  expect(fitsWithoutCounting([{ role: 'user', content: cjk }], opts)).toBe(false);
  expect(fitsWithoutCounting([{ role: 'user', content: cjk.slice(0, 250) }], opts)).toBe(true);
});

// Counts are cached per text (the instructions and tool definitions repeat on
// every call); a cached count must be the count.

test('a repeated text is tokenized once, and a cached count is the same count', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const o200k = require('gpt-tokenizer/encoding/o200k_base') as { countTokens(text: string): number; isWithinTokenLimit(text: string, limit: number): number | false };
  const spy = jest.spyOn(o200k, 'countTokens');
  const bounded = jest.spyOn(o200k, 'isWithinTokenLimit');
  try {
    const instructions = `You are the validation role ${Date.now()}. Check every claim against the sources and answer in JSON.`;
    const first = countTokens(instructions, 'o200k_base');
    expect(first).toBe(encode(instructions).length);
    expect(countTokens(instructions, 'o200k_base')).toBe(first);
    expect(spy.mock.calls.filter(([t]) => t === instructions)).toHaveLength(1);
    // the window's own counting reads the same cache, and agrees with counting afresh
    const newest: ChatMessage = { role: 'user', content: `a question not seen before ${Date.now()}` };
    const msgs: ChatMessage[] = [{ role: 'system', content: instructions }, turn(1, 3000), turn(2, 3000), newest];
    const window = { contextWindowTokens: 9000, reserveTokens: 100, tokenizer: 'o200k_base' };
    const again = fitToWindow(msgs, window);
    expect(again.promptTokens).toBe(REPLY_PRIMING_TOKENS + [msgs[0], ...again.messages.slice(1)].reduce((n, m) => n + encode(m.content).length + MESSAGE_OVERHEAD_TOKENS, 0));
    expect(again.messages.map((m) => m.content)).toEqual([instructions, newest.content]);
    expect(spy.mock.calls.filter(([t]) => t === instructions)).toHaveLength(1);
    expect(bounded.mock.calls.filter(([t]) => t === instructions)).toHaveLength(0);
    expect(bounded.mock.calls.filter(([t]) => t === newest.content)).toHaveLength(1);
  } finally {
    spy.mockRestore();
    bounded.mockRestore();
  }
});

test('the count cache is bounded: a text not seen for a while is counted again', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const o200k = require('gpt-tokenizer/encoding/o200k_base') as { countTokens(text: string): number };
  const spy = jest.spyOn(o200k, 'countTokens');
  try {
    const old = `evicted ${Date.now()}`;
    countTokens(old, 'o200k_base');
    for (let i = 0; i < 2000; i++) expect(countTokens(`one-off user turn ${i}`, 'o200k_base')).toBe(encode(`one-off user turn ${i}`).length);
    countTokens(old, 'o200k_base');
    expect(spy.mock.calls.filter(([t]) => t === old)).toHaveLength(2);
  } finally {
    spy.mockRestore();
  }
});
