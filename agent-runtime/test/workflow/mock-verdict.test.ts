import { MockUpstream, startMockUpstream } from '../../src/mock/upstream';
import { VERDICT_INSTRUCTION, VERDICT_SCHEMA } from '../../src/workflow/verdict';
import { revisionRequest } from '../../src/workflow/engine';

// The mock upstream's workflow rules (documented at the top of
// src/mock/upstream.ts), over HTTP as a worker would call it.

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ recordRequests: true });
});
afterAll(async () => {
  await mock.close();
});
afterEach(() => mock.reset());

async function chat(messages: Array<{ role: string; content: string }>, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${mock.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages, ...extra }) });
  const body = (await res.json()) as { choices: Array<{ message: { content: string } }> };
  return body.choices[0].message.content;
}

const verdictFormat = { response_format: { type: 'json_schema', json_schema: { name: VERDICT_SCHEMA.name, schema: VERDICT_SCHEMA.schema } } };

test('a verdict request (by response_format or by the verdict line) gets a verdict judged on its last user message', async () => {
  expect(JSON.parse(await chat([{ role: 'user', content: 'Check: draft-v1 echo:abc' }], verdictFormat))).toEqual({ pass: false, feedback: 'mock: draft-v1 needs a concrete example' });
  expect(JSON.parse(await chat([{ role: 'user', content: 'Check: draft-v2 echo:abc' }], verdictFormat))).toEqual({ pass: true, feedback: 'mock' });
  expect(JSON.parse(await chat([{ role: 'user', content: `Check: draft-v1\n\n${VERDICT_INSTRUCTION}` }]))).toMatchObject({ pass: false });
  expect(JSON.parse(await chat([{ role: 'user', content: 'REJECT-ALWAYS draft-v7' }], verdictFormat))).toMatchObject({ pass: false, feedback: expect.stringMatching(/REJECT-ALWAYS/) });
  expect(await chat([{ role: 'user', content: 'NOT-A-VERDICT' }], verdictFormat)).toBe('I think it is fine.');
  // the generic structured answer's failure markers still apply to a verdict schema
  expect(await chat([{ role: 'user', content: 'judge [[bad-json]]' }], verdictFormat)).toBe('{"answer": "cut off');
  // a json_schema that is not a verdict gets the generic structured answer, not a verdict
  const other = { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'string' } } } } } };
  expect(JSON.parse(await chat([{ role: 'user', content: 'draft-v1' }], other))).not.toHaveProperty('pass');
});

test('#revise-once drafts are numbered by the revision requests they carry; the request log keeps what was sent', async () => {
  expect(await chat([{ role: 'user', content: 'write #revise-once' }])).toMatch(/^draft-v1 echo:[0-9a-f]{16}/);
  const again = [
    { role: 'user', content: 'write #revise-once' },
    { role: 'assistant', content: 'draft-v1 echo:x' },
    { role: 'user', content: revisionRequest('review', 'add an example') },
  ];
  expect(await chat(again)).toMatch(/^draft-v2 echo:/);
  expect(await chat([{ role: 'user', content: 'plain' }])).toMatch(/^echo:/);
  const log = mock.requests();
  expect(log).toHaveLength(3);
  expect(log[1]).toEqual({ model: 'm', messages: again });
  const viaHttp = (await (await fetch(mock.url.replace(/\/v1$/, '/__mock/requests'))).json()) as unknown[];
  expect(viaHttp).toEqual(log);
});
