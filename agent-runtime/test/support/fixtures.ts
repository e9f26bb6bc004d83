import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { AgentConfig, ModelEntry } from '../../src/config';

export const silentLogger = pino({ level: 'silent' });

/** The four reference models, as the constructs render them. */
export function referenceCatalog(overrides: Partial<Record<string, Partial<ModelEntry>>> = {}): Record<string, ModelEntry> {
  const base = (price: number, threshold: number, recovery: number, fallbacks: string[]): ModelEntry => ({
    inputUsdPerMTok: price,
    outputUsdPerMTok: price,
    contextWindowTokens: 128000,
    reserveTokens: 4000,
    breaker: { failureThreshold: threshold, recoverySeconds: recovery },
    maxConcurrency: 32,
    fallbacks,
    tokenizer: 'o200k_base',
  });
  const catalog: Record<string, ModelEntry> = {
    'gpt-4.1': base(8, 10, 60, ['claude-sonnet-4.5', 'gemini-2.5-flash']),
    'claude-sonnet-4.5': base(15, 8, 45, ['gpt-4.1', 'gemini-2.5-flash']),
    'gemini-2.5-flash': base(2.5, 15, 30, ['deepseek-v3.2']),
    'deepseek-v3.2': base(0.42, 20, 20, ['gemini-2.5-flash']),
  };
  for (const [k, v] of Object.entries(overrides)) catalog[k] = { ...catalog[k], ...v } as ModelEntry;
  return catalog;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A valid worker config; `patch` changes any top-level field. */
export function workerConfig(patch: Partial<Mutable<AgentConfig>> = {}): AgentConfig {
  const catalog = patch.catalog ?? referenceCatalog();
  return {
    apiVersion: 'agents.cdk8s.io/v1',
    cluster: 'test',
    namespace: 'test',
    topology: 'hub-and-spoke',
    role: 'task-executor-a',
    kind: 'worker',
    entry: false,
    peers: [],
    fanOut: { concurrency: 5 },
    concurrency: { maxInFlightTasks: 64 },
    deadlines: { defaultMs: 10000, maxMs: 60000 },
    drain: { gracePeriodMs: 5000 },
    retry: { maxAttempts: 4, initialDelayMs: 10, maxDelayMs: 100 },
    models: { default: 'gpt-4.1', allowed: Object.keys(catalog) },
    catalog,
    limits: { maxTasksPerJob: 10000, maxRequestBytes: 1024 * 1024 },
    ...patch,
  };
}

/** Writes `config` to a temp file and returns an env that boots it. */
export function envFor(config: unknown, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-test-'));
  const file = path.join(dir, 'agent-config.json');
  writeFileSync(file, JSON.stringify(config));
  const role = (config as { role?: string }).role ?? 'task-executor-a';
  return {
    AGENT_CONFIG_FILE: file,
    AGENT_ROLE: role,
    AGENT_ID: `${role}-0`,
    UPSTREAM_BASE_URL: 'http://127.0.0.1:9/v1',
    UPSTREAM_API_KEY: 'sk-test-0123456789',
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    ...extra,
  };
}
