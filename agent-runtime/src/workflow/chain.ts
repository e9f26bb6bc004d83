import { ContextOverflowError, fitToWindow } from '../context/window';
import { ChatMessage } from '../types';

/** One earlier step as a chain carries it: its own request and its answer. */
export interface Exchange {
  readonly messages: readonly ChatMessage[];
  readonly content: string;
}

/** A model's window as the entry's catalog describes it. */
export interface ChainWindow {
  readonly contextWindowTokens: number;
  readonly reserveTokens: number;
  readonly tokenizer: string;
}

/**
 * The request of a `chain` step: its own system messages first, then each
 * earlier step's exchange (its user turns and its answer) in dependency
 * order, then its own turns. Earlier steps' system messages are their roles'
 * instructions, not this step's, and are left out.
 */
export function chainMessages(own: readonly ChatMessage[], earlier: readonly Exchange[]): ChatMessage[] {
  const out: ChatMessage[] = own.filter((m) => m.role === 'system');
  for (const e of earlier) {
    for (const m of e.messages) if (m.role !== 'system') out.push(m);
    out.push({ role: 'assistant', content: e.content });
  }
  for (const m of own) if (m.role !== 'system') out.push(m);
  return out;
}

/**
 * Trims a chain to the model's window in tokens (the model's own tokenizer),
 * dropping the oldest turns first and keeping every system message: the
 * sliding window the workers apply, done here so the step's request is the
 * one the model will see. Throws ContextOverflowError when the step's own
 * newest turn does not fit.
 */
export function trimChain(messages: readonly ChatMessage[], window: ChainWindow, maxTokens?: number): { messages: ChatMessage[]; dropped: number } {
  const r = fitToWindow(messages, { ...window, maxTokens });
  return { messages: r.messages, dropped: r.dropped };
}

export { ContextOverflowError };
