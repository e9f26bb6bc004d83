import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { ConfigError } from '../config';
import type { JobCaller } from '../jobs/job-service';

/**
 * API keys and tenants (README, "Authentication"). The entry reads
 * `keys.json` (mounted from a Secret, or `agent-runtime local --api-keys`):
 *
 *   [{"tenant": "team-a", "key_sha256": "<hex sha256 of the key>", "daily_budget_usd": 25}]
 *
 * Only digests are stored; a request's key is hashed and compared with every
 * digest in constant time. Nothing here ever logs, returns or throws a key or
 * a digest.
 */

/** A tenant as the job API sees it: its name and daily budget. */
export interface Tenant {
  readonly tenant: string;
  /** USD per UTC day; undefined: no daily limit. */
  readonly dailyBudgetUsd?: number;
}

interface KeyEntry extends Tenant {
  readonly digest: Buffer;
}

/** Tenant names become metric labels and KV key segments: keep them to a safe alphabet. */
export const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const FIELDS = new Set(['tenant', 'key_sha256', 'daily_budget_usd']);

/** What a request's Authorization header came to. */
export type AuthOutcome = { readonly ok: true; readonly tenant?: Tenant } | { readonly ok: false; readonly status: 401; readonly message: string; readonly headers: Record<string, string> };

export interface Authenticator {
  /** 'api-keys' or 'none' (open). */
  readonly mode: 'api-keys' | 'none';
  authenticate(headers: IncomingHttpHeaders): AuthOutcome;
  /** A tenant by name, with its daily budget (a runner on another replica knows only the name). */
  tenant(name: string): Tenant | undefined;
}

/** The open API: every request is served, without a tenant. */
export const OPEN: Authenticator = {
  mode: 'none',
  authenticate: () => ({ ok: true }),
  tenant: () => undefined,
};

/** The sha256 of a key as keys.json stores it (lower-case hex). */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export class ApiKeys implements Authenticator {
  readonly mode = 'api-keys' as const;

  private constructor(private readonly entries: readonly KeyEntry[]) {}

  /** Reads and checks a keys.json file; a ConfigError names `field`, the entry and what to fix. */
  static load(file: string, field = 'auth.keysFile'): ApiKeys {
    let raw: string;
    try {
      raw = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(field, `cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      // the parser's message can quote the text around the error, which may hold a key: say only where
      const at = /position \d+/.exec((e as Error).message)?.[0];
      throw new ConfigError(field, `'${file}' is not JSON${at ? ` (at ${at})` : ''}`);
    }
    return ApiKeys.parse(json, `${field} (${file})`);
  }

  /** Checks a parsed keys.json document. */
  static parse(json: unknown, field = 'keys.json'): ApiKeys {
    if (!Array.isArray(json)) throw new ConfigError(field, 'must be a JSON array of {"tenant", "key_sha256", "daily_budget_usd"?}');
    if (json.length === 0) throw new ConfigError(field, "lists no keys: add one, or turn authentication off (mode 'none') for a trusted namespace");
    const entries: KeyEntry[] = [];
    const seen = new Map<string, number>();
    const budgets = new Map<string, number | undefined>();
    json.forEach((e: unknown, i) => {
      const at = (f: string) => `${field}: entry ${i}${f ? `.${f}` : ''}`;
      if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new ConfigError(at(''), 'must be an object {"tenant", "key_sha256", "daily_budget_usd"?}');
      for (const k of Object.keys(e)) {
        if (!FIELDS.has(k)) {
          const hint = /key/i.test(k) ? ': store only key_sha256 (the hex sha256 of the key), never the key' : ' (fields: tenant, key_sha256, daily_budget_usd)';
          throw new ConfigError(at(k), `is not a known field${hint}`);
        }
      }
      const { tenant, key_sha256: digest, daily_budget_usd: budget } = e as Record<string, unknown>;
      if (typeof tenant !== 'string' || !TENANT_PATTERN.test(tenant)) {
        throw new ConfigError(at('tenant'), 'must be 1-64 characters of letters, digits, - and _');
      }
      if (typeof digest !== 'string' || !/^[0-9a-fA-F]{64}$/.test(digest)) {
        const got = typeof digest === 'string' ? `${digest.length} characters` : typeof digest;
        throw new ConfigError(at('key_sha256'), `must be the 64 hex digits of sha256(key) (got ${got}); e.g. printf %s "$KEY" | sha256sum`);
      }
      if (budget !== undefined && (typeof budget !== 'number' || !Number.isFinite(budget) || budget <= 0)) {
        throw new ConfigError(at('daily_budget_usd'), 'must be a number of USD greater than 0 (leave it out for no daily limit)');
      }
      const lower = digest.toLowerCase();
      const first = seen.get(lower);
      if (first !== undefined) throw new ConfigError(at('key_sha256'), `is the same key as entry ${first}; each key belongs to one tenant`);
      seen.set(lower, i);
      // a tenant may have several keys (rotation); they share one daily budget
      if (budgets.has(tenant) && budgets.get(tenant) !== budget) {
        throw new ConfigError(at('daily_budget_usd'), `tenant '${tenant}' has another key with daily_budget_usd ${budgets.get(tenant) ?? '(none)'}; give every key of a tenant the same budget`);
      }
      budgets.set(tenant, budget as number | undefined);
      entries.push({ tenant, digest: Buffer.from(lower, 'hex'), ...(budget !== undefined ? { dailyBudgetUsd: budget as number } : {}) });
    });
    return new ApiKeys(entries);
  }

  tenant(name: string): Tenant | undefined {
    return this.tenants().find((t) => t.tenant === name);
  }

  /** Tenants by name, each once. */
  tenants(): Tenant[] {
    const out = new Map<string, Tenant>();
    for (const e of this.entries) out.set(e.tenant, { tenant: e.tenant, ...(e.dailyBudgetUsd !== undefined ? { dailyBudgetUsd: e.dailyBudgetUsd } : {}) });
    return [...out.values()];
  }

  authenticate(headers: IncomingHttpHeaders): AuthOutcome {
    const header = headers.authorization;
    if (header === undefined || header === '') {
      return refuse('this API needs an API key: send Authorization: Bearer <key>', 'Bearer realm="agent-runtime"');
    }
    const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    if (!m) return refuse('the Authorization header must be Bearer <key>', 'Bearer realm="agent-runtime", error="invalid_request"');
    const presented = createHash('sha256').update(m[1], 'utf8').digest();
    // Every digest is compared, each in constant time, so the time taken does
    // not tell which entry (or how much of one) matched.
    let found: KeyEntry | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(presented, e.digest) && !found) found = e;
    }
    if (!found) return refuse('the API key is not valid', 'Bearer realm="agent-runtime", error="invalid_token"');
    return { ok: true, tenant: { tenant: found.tenant, ...(found.dailyBudgetUsd !== undefined ? { dailyBudgetUsd: found.dailyBudgetUsd } : {}) } };
  }
}

function refuse(message: string, challenge: string): AuthOutcome {
  return { ok: false, status: 401, message, headers: { 'www-authenticate': challenge } };
}

// The tenant the router authenticated for each request it let through, for
// front doors that see only the request (A2A's callerOf).
const tenants = new WeakMap<IncomingMessage, Tenant>();

/** Records the request's authenticated tenant (the HTTP router does, before any route runs). */
export function setRequestTenant(req: IncomingMessage, tenant: Tenant | undefined): void {
  if (tenant) tenants.set(req, tenant);
}

/** Who a request is, as the job service sees it: the tenant of its API key, none when the API runs open. */
export function callerOf(req: IncomingMessage): JobCaller {
  const t = tenants.get(req);
  return t ? { tenant: t.tenant } : {};
}

/** The tenant of a request, with its daily budget. */
export function tenantOf(req: IncomingMessage): Tenant | undefined {
  return tenants.get(req);
}

/** Routes served without a key: probes, metrics and the public A2A agent card. */
export function isOpenRoute(method: string | undefined, url: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  return url === '/healthz' || url === '/readyz' || url === '/metrics' || url.startsWith('/.well-known/');
}

/**
 * The authenticator a config asks for: `auth.mode` 'api-keys' reads
 * `auth.keysFile` (relative paths from the config's directory); 'none' or no
 * `auth` at all: open.
 */
export function authenticatorFor(auth: { mode: 'api-keys' | 'none'; keysFile?: string } | undefined, configFile: string): Authenticator {
  if (!auth || auth.mode === 'none') return OPEN;
  if (!auth.keysFile) throw new ConfigError('auth.keysFile', "is required with mode 'api-keys': the path of keys.json mounted from a Secret");
  return ApiKeys.load(isAbsolute(auth.keysFile) ? auth.keysFile : join(dirname(configFile), auth.keysFile));
}
