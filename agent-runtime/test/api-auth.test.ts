import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { ConfigError } from '../src/config';
import type { IncomingMessage } from 'node:http';
import { ApiKeys, callerOf, isOpenRoute, keyDigest, OPEN, setRequestTenant } from '../src/http/auth';

const KEY_A = 'sk-team-a-0123456789abcdef';
const KEY_B = 'sk-team-b-fedcba9876543210';
const keys = () =>
  ApiKeys.parse([
    { tenant: 'team-a', key_sha256: keyDigest(KEY_A), daily_budget_usd: 25 },
    { tenant: 'team-b', key_sha256: keyDigest(KEY_B) },
  ]);

describe('ApiKeys.authenticate', () => {
  test('a listed key gives its tenant and daily budget', () => {
    expect(keys().authenticate({ authorization: `Bearer ${KEY_A}` })).toEqual({ ok: true, tenant: { tenant: 'team-a', dailyBudgetUsd: 25 } });
    expect(keys().authenticate({ authorization: `bearer ${KEY_B}` })).toEqual({ ok: true, tenant: { tenant: 'team-b' } });
  });

  test('missing, malformed and unknown keys are 401 with a Bearer challenge', () => {
    for (const authorization of [undefined, '', `Basic ${KEY_A}`, 'Bearer', `Bearer ${KEY_A}x`, `Bearer ${KEY_A.toUpperCase()}`]) {
      const r = keys().authenticate(authorization === undefined ? {} : { authorization });
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Bearer /);
    }
  });

  test('no refusal message ever contains the presented key or a digest', () => {
    const k = keys();
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 80 }).filter((s) => !/\s/.test(s)), (key) => {
        const r = k.authenticate({ authorization: `Bearer ${key}` });
        if (r.ok) return;
        const text = JSON.stringify(r);
        expect(text).not.toContain(key);
        expect(text).not.toContain(keyDigest(key));
        expect(text).not.toContain(keyDigest(KEY_A));
      }),
    );
  });

  test('the open authenticator serves everyone without a tenant', () => {
    expect(OPEN.authenticate({})).toEqual({ ok: true });
  });

  test('probes, metrics and the agent card are open routes; the job API is not', () => {
    expect(isOpenRoute('GET', '/healthz')).toBe(true);
    expect(isOpenRoute('GET', '/readyz')).toBe(true);
    expect(isOpenRoute('GET', '/metrics')).toBe(true);
    expect(isOpenRoute('GET', '/.well-known/agent-card.json')).toBe(true);
    expect(isOpenRoute('POST', '/v1/jobs')).toBe(false);
    expect(isOpenRoute('GET', '/v1/jobs/abc')).toBe(false);
    expect(isOpenRoute('POST', '/a2a')).toBe(false);
  });
});

describe('keys.json validation', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{}, /keys\.json: must be a JSON array/],
    [[], /lists no keys/],
    [[{ tenant: 'a b', key_sha256: keyDigest(KEY_A) }], /entry 0\.tenant: must be 1-64 characters/],
    [[{ tenant: 'a', key_sha256: 'abc' }], /entry 0\.key_sha256: must be the 64 hex digits of sha256\(key\) \(got 3 characters\)/],
    [[{ tenant: 'a', key_sha256: keyDigest(KEY_A), daily_budget_usd: 0 }], /entry 0\.daily_budget_usd: must be a number of USD greater than 0/],
    [[{ tenant: 'a', key_sha256: keyDigest(KEY_A), daily_budget_usd: '5' }], /entry 0\.daily_budget_usd/],
    [[{ tenant: 'a', key: KEY_A }], /entry 0\.key: is not a known field: store only key_sha256/],
    [[{ tenant: 'a', key_sha256: keyDigest(KEY_A) }, { tenant: 'b', key_sha256: keyDigest(KEY_A).toUpperCase() }], /entry 1\.key_sha256: is the same key as entry 0/],
    [[{ tenant: 'a', key_sha256: keyDigest(KEY_A), daily_budget_usd: 5 }, { tenant: 'a', key_sha256: keyDigest(KEY_B) }], /entry 1\.daily_budget_usd: tenant 'a' has another key/],
  ];
  test.each(bad)('bad keys.json #%# is refused naming the entry and field', (json, message) => {
    let err: unknown;
    try {
      ApiKeys.parse(json);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    // a key pasted by mistake is never echoed back
    expect((err as Error).message).not.toContain(KEY_A);
  });

  test('a tenant may have several keys (rotation) sharing one budget', () => {
    const k = ApiKeys.parse([
      { tenant: 'a', key_sha256: keyDigest(KEY_A), daily_budget_usd: 5 },
      { tenant: 'a', key_sha256: keyDigest(KEY_B), daily_budget_usd: 5 },
    ]);
    expect(k.tenants()).toEqual([{ tenant: 'a', dailyBudgetUsd: 5 }]);
    expect(k.authenticate({ authorization: `Bearer ${KEY_B}` })).toEqual({ ok: true, tenant: { tenant: 'a', dailyBudgetUsd: 5 } });
  });

  test('load: unreadable and non-JSON files name the field and file, never the content', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keys-'));
    expect(() => ApiKeys.load(path.join(dir, 'nope.json'))).toThrow(/^auth\.keysFile: cannot read '.*nope\.json': ENOENT/);
    const file = path.join(dir, 'keys.json');
    writeFileSync(file, `[{"tenant": "a", "key_sha256": ${KEY_A}}]`);
    let message = '';
    try {
      ApiKeys.load(file);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^auth\.keysFile: '.*keys\.json' is not JSON/);
    expect(message).not.toContain(KEY_A);
    expect(message).not.toContain('sk-team');
  });
});

test('callerOf gives a front door that sees only the request the tenant the router authenticated', () => {
  const req = {} as IncomingMessage;
  expect(callerOf(req)).toEqual({});
  setRequestTenant(req, { tenant: 'team-a', dailyBudgetUsd: 3 });
  expect(callerOf(req)).toEqual({ tenant: 'team-a' });
});
