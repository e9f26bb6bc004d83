import { AddressInfo, createServer, Socket } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { RoleBehavior, RoleTools } from '../src/config';
import { InferenceExecutor } from '../src/inference/executor';
import { RuntimeMetrics } from '../src/metrics';
import { ChatRequestBody, MockUpstream, startMockUpstream } from '../src/mock/upstream';
import { startDocsMcpServer } from '../src/tools/docs-server';
import { McpHttpServer, startMcpHttpServer } from '../src/tools/mcp-http';
import { McpToolbox } from '../src/tools/mcp-toolbox';
import { Task } from '../src/types';
import { UpstreamClient } from '../src/upstream/client';
import { referenceCatalog, silentLogger, workerConfig } from './support/fixtures';

// A role as an agent, at the executor: its instructions and call defaults,
// structured answers, and MCP tool rounds against real MCP servers (the
// in-repo docs server and a test server with failing and slow tools).

let mock: MockUpstream;
let client: UpstreamClient;
let docs: McpHttpServer;
let flaky: McpHttpServer;
const toolboxes: McpToolbox[] = [];

/** A test MCP server: `boom` throws, `refuse` answers isError, `slow` takes 2 s. */
function flakyServer(): McpServer {
  const s = new McpServer({ name: 'flaky', version: '0.0.1' });
  s.registerTool('boom', { inputSchema: {} }, () => {
    throw new Error('the disk is on fire');
  });
  s.registerTool('refuse', { inputSchema: {} }, () => ({ isError: true, content: [{ type: 'text', text: 'quota spent' }] }));
  s.registerTool('slow', { inputSchema: { ms: z.number() } }, async ({ ms }, extra) => {
    await new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      t.unref(); // a timed-out call must not keep the test process alive
      extra.signal.addEventListener('abort', () => {
        clearTimeout(t);
        r();
      });
    });
    return { content: [{ type: 'text', text: 'finally' }] };
  });
  return s;
}

beforeAll(async () => {
  mock = await startMockUpstream({ recordRequests: true });
  client = new UpstreamClient({ baseUrl: mock.url, apiKey: 'sk-test-0123456789' });
  docs = await startDocsMcpServer();
  flaky = await startMcpHttpServer(flakyServer);
});
afterEach(async () => {
  mock.reset();
  mock.setBehaviour({ recordRequests: true });
  await Promise.all(toolboxes.splice(0).map((t) => t.close()));
});
afterAll(async () => {
  await client.close();
  await mock.close();
  await docs.close();
  await flaky.close();
});

const INSTRUCTIONS = 'You are the validation agent. Answer only with a verdict.';
const VERDICT = { name: 'verdict', schema: { type: 'object', additionalProperties: false, required: ['pass', 'feedback'], properties: { pass: { type: 'boolean' }, feedback: { type: 'string' } } } };

function agent(opts: { behavior?: RoleBehavior; tools?: RoleTools; catalog?: ReturnType<typeof referenceCatalog>; metrics?: RuntimeMetrics } = {}) {
  const metrics = opts.metrics ?? new RuntimeMetrics();
  const config = workerConfig({ behavior: opts.behavior, tools: opts.tools, ...(opts.catalog ? { catalog: opts.catalog } : {}) });
  const tools = opts.tools ? new McpToolbox({ tools: opts.tools, logger: silentLogger, metrics, reconnectDelayMs: 0 }) : undefined;
  if (tools) toolboxes.push(tools);
  return new InferenceExecutor({ config, client, metrics, logger: silentLogger, agentId: 'w-0', tools });
}
const ask = (content: string, extra: Partial<Task> = {}): Task => ({ id: 't', messages: [{ role: 'user', content }], ...extra });
const soon = () => Date.now() + 10_000;
const sent = (): ChatRequestBody[] => mock.requests();
const toolsOf = (servers: RoleTools['mcpServers'], extra: Partial<RoleTools> = {}): RoleTools => ({ mcpServers: servers, maxRounds: 3, callTimeoutMs: 5000, ...extra });
const docsServer = () => ({ name: 'docs', url: docs.url });
const flakyServerEntry = () => ({ name: 'flaky', url: flaky.url });

describe('instructions and call defaults', () => {
  test("the role's instructions are the first message of every call, before the task's own system message", async () => {
    const r = await agent({ behavior: { instructions: INSTRUCTIONS } }).execute(
      { id: 't', messages: [{ role: 'system', content: 'task system' }, { role: 'user', content: 'hello' }] },
      soon(),
    );
    expect(r.ok).toBe(true);
    expect(sent()[0].messages).toEqual([
      { role: 'system', content: INSTRUCTIONS },
      { role: 'system', content: 'task system' },
      { role: 'user', content: 'hello' },
    ]);
  });

  test('instructions are kept when the window drops older turns, and every tool round sends them first', async () => {
    // a window of 600 tokens: the history does not fit, the instructions and the newest turn do
    const catalog = referenceCatalog({ 'gpt-4.1': { contextWindowTokens: 600, reserveTokens: 50 } });
    const history = Array.from({ length: 20 }, (_, i) => ({ role: (i % 2 ? 'assistant' : 'user') as 'user' | 'assistant', content: `turn ${i} ${'lorem ipsum '.repeat(20)}` }));
    const r = await agent({ behavior: { instructions: INSTRUCTIONS }, catalog }).execute(
      { id: 't', messages: [...history, { role: 'user', content: 'the newest question' }] },
      soon(),
    );
    expect(r.ok).toBe(true);
    const messages = sent()[0].messages!;
    expect(messages[0]).toEqual({ role: 'system', content: INSTRUCTIONS });
    expect(messages[messages.length - 1]).toEqual({ role: 'user', content: 'the newest question' });
    expect(messages.length).toBeLessThan(history.length + 2);
    expect(messages.some((m) => String(m.content).startsWith('turn 0 '))).toBe(false);

    const withTools = await agent({ behavior: { instructions: INSTRUCTIONS }, tools: toolsOf([docsServer()]) }).execute(ask('[[tool:docs__get_doc {"id":"network-policies"}]]'), soon());
    expect(withTools.ok).toBe(true);
    for (const req of sent().slice(1)) expect(req.messages![0]).toEqual({ role: 'system', content: INSTRUCTIONS });
    expect(sent()).toHaveLength(3);
  });

  test('behavior.temperature and behavior.maxTokens are the defaults; a task overrides them (0 included)', async () => {
    const a = agent({ behavior: { instructions: INSTRUCTIONS, temperature: 0.2, maxTokens: 300 } });
    await a.execute(ask('defaults'), soon());
    await a.execute(ask('overrides', { temperature: 0, maxTokens: 42 }), soon());
    const [first, second] = sent();
    expect([first.temperature, first.max_tokens]).toEqual([0.2, 300]);
    expect([second.temperature, second.max_tokens]).toEqual([0, 42]);
  });

  test('without behavior nothing is added: no system message, no temperature, no tools, no response_format', async () => {
    await agent().execute(ask('plain'), soon());
    const [req] = sent();
    expect(req.messages).toEqual([{ role: 'user', content: 'plain' }]);
    expect(Object.keys(req).sort()).toEqual(['messages', 'model', 'stream']);
  });
});

describe('structured answers', () => {
  test("the role's schema goes out as response_format json_schema (strict) and a matching answer passes", async () => {
    const r = await agent({ behavior: { instructions: INSTRUCTIONS, responseSchema: VERDICT } }).execute(ask('judge this'), soon());
    expect(sent()[0].response_format).toEqual({ type: 'json_schema', json_schema: { name: 'verdict', schema: VERDICT.schema, strict: true } });
    expect(r.ok).toBe(true);
    expect(JSON.parse(r.content!)).toEqual({ pass: true, feedback: 'mock' });
  });

  test("a task's responseSchema overrides the role's", async () => {
    const count = { name: 'count', schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer', minimum: 3 } } } };
    const r = await agent({ behavior: { instructions: INSTRUCTIONS, responseSchema: VERDICT } }).execute(ask('count', { responseSchema: count }), soon());
    expect(sent()[0].response_format?.json_schema?.name).toBe('count');
    expect(JSON.parse(r.content!)).toEqual({ n: 3 });
  });

  test.each([
    ['[[bad-json]]', /is not JSON/],
    ['[[bad-schema]]', /does not match the schema: \/ must be object/],
  ])('an answer that fails (%s) ends the task bad_response, naming the schema and the failure; its spend is counted', async (marker, why) => {
    const r = await agent({ behavior: { instructions: INSTRUCTIONS, responseSchema: VERDICT } }).execute(ask(`judge ${marker}`), soon());
    expect(r.ok).toBe(false);
    expect(r.error!.code).toBe('bad_response');
    expect(r.error!.message).toMatch(why);
    expect(r.error!.message).toContain("response schema 'verdict'");
    expect(r.costUsd).toBeGreaterThan(0);
    expect(r.attempts).toBe(1);
    expect(mock.stats().calls).toBe(1); // not retried, not sent to a fallback
  });

  test('a response schema that is not valid JSON Schema is a bad_request before any call', async () => {
    const r = await agent().execute(ask('x', { responseSchema: { name: 'broken', schema: { type: 'no-such-type' } } }), soon());
    expect(r.error).toEqual({ code: 'bad_request', message: expect.stringMatching(/responseSchema 'broken' is not a valid JSON Schema/) });
    expect(mock.stats().calls).toBe(0);
  });

  test('a draft 2020-12 schema is understood (prefixItems)', async () => {
    const pair = { name: 'pair', schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'array', prefixItems: [{ type: 'string' }], items: false } };
    const r = await agent().execute(ask('[[bad-schema]]', { responseSchema: pair }), soon());
    expect(r.error?.code).toBe('bad_response');
  });
});

describe('tools over MCP', () => {
  test('the docs server\'s tools are offered as <server>__<tool> with their input schemas', async () => {
    await agent({ tools: toolsOf([docsServer()]) }).execute(ask('nothing to look for'), soon());
    const tools = sent()[0].tools!;
    expect(tools.map((t) => t.function!.name)).toEqual(['docs__search_docs', 'docs__get_doc']);
    expect(tools[0]).toEqual({
      type: 'function',
      function: { name: 'docs__search_docs', description: expect.any(String), parameters: expect.objectContaining({ type: 'object', required: ['query'] }) },
    });
  });

  test('allowedTools limits what is offered', async () => {
    await agent({ tools: toolsOf([{ ...docsServer(), allowedTools: ['get_doc'] }]) }).execute(ask('x'), soon());
    expect(sent()[0].tools!.map((t) => t.function!.name)).toEqual(['docs__get_doc']);
  });

  test('a tool the model calls runs through MCP and its result is fed back in the next request', async () => {
    const r = await agent({ tools: toolsOf([docsServer()]) }).execute(ask('[[tool:docs__get_doc {"id":"pod-disruption-budgets"}]]'), soon());
    expect(r.ok).toBe(true);
    const [first, second] = sent();
    expect(second.messages).toEqual([
      first.messages![0],
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_0_0', type: 'function', function: { name: 'docs__get_doc', arguments: '{"id":"pod-disruption-budgets"}' } }] },
      { role: 'tool', tool_call_id: 'call_0_0', content: expect.stringContaining('# Pod disruption budgets for agent roles') },
    ]);
    // the final answer is built from the tool's result
    expect(r.content).toMatch(/^tools:[0-9a-f]{16} # Pod disruption budgets/);
    expect(r.toolCalls).toEqual([{ name: 'docs__get_doc', ok: true, latencyMs: expect.any(Number) }]);
  });

  test('usage, cost and attempts add up over every round', async () => {
    const r = await agent({ tools: toolsOf([docsServer()]) }).execute(ask('Find facts about pod disruption budgets'), soon());
    expect(r.ok).toBe(true);
    expect(r.toolCalls!.map((c) => c.name)).toEqual(['docs__search_docs']);
    expect(sent()[0].tools).toBeDefined();
    expect(JSON.parse(String((sent()[1].messages![1].tool_calls as Array<{ function: { arguments: string } }>)[0].function.arguments))).toEqual({ query: 'Find facts about pod disruption budgets' });
    expect(r.content).toContain('pod-disruption-budgets: Pod disruption budgets for agent roles');
    expect(r.attempts).toBe(2);
    const single = await agent().execute(ask('Find facts about pod disruption budgets'), soon());
    // two calls cost more than the first alone, and the usage is the sum of both
    expect(r.costUsd).toBeGreaterThan(single.costUsd);
    expect(r.usage!.totalTokens).toBe(r.usage!.promptTokens + r.usage!.completionTokens);
    expect(r.usage!.promptTokens).toBeGreaterThan(single.usage!.promptTokens);
  });

  test.each([
    ['flaky__refuse', 'error: quota spent'],
    ['flaky__boom', 'the disk is on fire'],
    ['flaky__nope', 'error: '],
    ['nowhere__thing', "error: no tool 'nowhere__thing'"],
  ])('%s fails: the model reads a tool error and the task completes', async (name, text) => {
    const metrics = new RuntimeMetrics();
    const r = await agent({ tools: toolsOf([flakyServerEntry()]), metrics }).execute(ask(`[[tool:${name}]]`), soon());
    expect(r.ok).toBe(true);
    expect(r.toolCalls).toEqual([{ name, ok: false, latencyMs: expect.any(Number) }]);
    const toolMsg = sent()[1].messages!.find((m) => m.role === 'tool')!;
    expect(String(toolMsg.content)).toContain(text);
    expect(String(toolMsg.content)).toMatch(/^error: /);
    expect(r.content).toContain(text);
  });

  test('a tool slower than tools.callTimeoutMs is reported as a timeout; calls of one round run concurrently', async () => {
    const metrics = new RuntimeMetrics();
    const r = await agent({ tools: toolsOf([flakyServerEntry(), docsServer()], { callTimeoutMs: 300 }), metrics }).execute(
      ask('[[tool:flaky__slow {"ms":3000}]] [[tool:docs__get_doc {"id":"network-policies"}]]'),
      soon(),
    );
    expect(r.ok).toBe(true);
    expect(r.toolCalls!.map((c) => [c.name, c.ok])).toEqual([
      ['flaky__slow', false],
      ['docs__get_doc', true],
    ]);
    const tools = sent()[1].messages!.filter((m) => m.role === 'tool');
    expect(tools.map((m) => m.tool_call_id)).toEqual(['call_0_0', 'call_0_1']);
    expect(String(tools[0].content)).toMatch(/did not answer within 300 ms/);
    const text = await metrics.text();
    expect(text).toMatch(/agent_tool_calls_total\{server="flaky",tool="slow",outcome="timeout"\} 1/);
    expect(text).toMatch(/agent_tool_calls_total\{server="docs",tool="get_doc",outcome="ok"\} 1/);
    expect(text).toMatch(/agent_tool_call_duration_seconds_count\{server="docs",tool="get_doc"\} 1/);
  });

  test('a tool call never outlives the task deadline', async () => {
    // uncapped, the 60 s call timeout would let the 5 s tool finish and succeed
    const r = await agent({ tools: toolsOf([flakyServerEntry()], { callTimeoutMs: 60_000 }) }).execute(ask('[[tool:flaky__slow {"ms":5000}]]'), Date.now() + 1500);
    expect(r.toolCalls).toEqual([{ name: 'flaky__slow', ok: false, latencyMs: expect.any(Number) }]);
    expect(r.error?.code).toBe('deadline_exceeded'); // no time was left for the model to read the error
    expect(mock.stats().calls).toBe(1);
  });

  test('an MCP server that is down offers nothing, its calls are tool errors, and the other servers still work', async () => {
    const down = { name: 'down', url: 'http://127.0.0.1:9/mcp' };
    const r = await agent({ tools: toolsOf([down, docsServer()]) }).execute(ask('[[tool:down__lookup {"q":1}]] [[tool:docs__get_doc {"id":"graceful-shutdown"}]]'), soon());
    expect(r.ok).toBe(true);
    expect(sent()[0].tools!.map((t) => t.function!.name)).toEqual(['docs__search_docs', 'docs__get_doc']);
    expect(r.toolCalls!.map((c) => [c.name, c.ok])).toEqual([
      ['down__lookup', false],
      ['docs__get_doc', true],
    ]);
    const [downMsg] = sent()[1].messages!.filter((m) => m.role === 'tool');
    expect(downMsg.content).toMatch(/^error: MCP server 'down' is unreachable/);
  });

  test('a server that goes away after listing: calls report it down; once it is back, calls work again', async () => {
    const own = await startDocsMcpServer();
    const port = own.port;
    const a = agent({ tools: toolsOf([{ name: 'own', url: own.url }]) });
    expect((await a.execute(ask('[[tool:own__get_doc {"id":"network-policies"}]]'), soon())).toolCalls![0].ok).toBe(true);
    await own.close();
    mock.reset();
    mock.setBehaviour({ recordRequests: true });
    const r = await a.execute(ask('[[tool:own__get_doc {"id":"network-policies"}]]'), soon());
    expect(r.ok).toBe(true);
    expect(sent()[0].tools!.map((t) => t.function!.name)).toContain('own__get_doc'); // still offered from the last listing
    expect(r.toolCalls![0].ok).toBe(false);
    const back = await startDocsMcpServer({ port });
    try {
      const again = await a.execute(ask('[[tool:own__get_doc {"id":"network-policies"}]]'), soon());
      expect(again.toolCalls![0].ok).toBe(true);
    } finally {
      await back.close();
    }
  });

  test('a server that does not answer is waited for once; later tasks go on without it while it reconnects in the background', async () => {
    const held = new Set<Socket>();
    const blackhole = createServer((sock) => held.add(sock)); // accepts, never answers
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(blackhole.address() as AddressInfo).port}/mcp`;
    try {
      const a = agent({ tools: toolsOf([{ name: 'hole', url }, docsServer()], { callTimeoutMs: 1000 }) });
      const first = await a.execute(ask('first'), soon());
      expect(first.ok).toBe(true);
      // deadlines shorter than the call timeout: waiting for the server again would spend them
      for (let i = 1; i <= 3; i++) {
        const later = await a.execute(ask(`later ${i}`), Date.now() + 800);
        expect([i, later.ok, later.error?.code]).toEqual([i, true, undefined]);
        expect(sent()[i].tools!.map((t) => t.function!.name)).toEqual(['docs__search_docs', 'docs__get_doc']);
      }
    } finally {
      for (const sock of held) sock.destroy();
      await new Promise<void>((r) => blackhole.close(() => r()));
    }
  });

  test('bearerTokenEnv: the token from that variable is sent; a missing variable or a wrong token makes the server unavailable, named', async () => {
    const guarded = await startDocsMcpServer({ bearerToken: 'tok-123456' });
    try {
      const run = async (env: NodeJS.ProcessEnv) => {
        const metrics = new RuntimeMetrics();
        const tools = new McpToolbox({ tools: toolsOf([{ name: 'g', url: guarded.url, bearerTokenEnv: 'DOCS_TOKEN' }]), logger: silentLogger, metrics, env, reconnectDelayMs: 0 });
        toolboxes.push(tools);
        return tools.call('g__get_doc', '{"id":"network-policies"}', soon());
      };
      expect(await run({ DOCS_TOKEN: 'tok-123456' })).toMatchObject({ ok: true, outcome: 'ok' });
      expect(await run({})).toMatchObject({ ok: false, outcome: 'unavailable', content: expect.stringMatching(/environment variable DOCS_TOKEN .* is not set/) });
      expect(await run({ DOCS_TOKEN: 'wrong' })).toMatchObject({ ok: false, outcome: 'unavailable', content: expect.stringMatching(/MCP server 'g' is unreachable/) });
    } finally {
      await guarded.close();
    }
  });

  test('arguments that are not a JSON object are a tool error, not a call', async () => {
    const tools = new McpToolbox({ tools: toolsOf([docsServer()]), logger: silentLogger, metrics: new RuntimeMetrics() });
    toolboxes.push(tools);
    expect(await tools.call('docs__get_doc', '[1,2]', soon())).toMatchObject({ ok: false, outcome: 'bad_arguments', content: expect.stringMatching(/not a JSON object/) });
    expect(await tools.call('docs__get_doc', '{"id":', soon())).toMatchObject({ ok: false, outcome: 'bad_arguments' });
  });

  test('when the window cuts between a tool request and its results, the orphaned results are not sent', async () => {
    const catalog = referenceCatalog({ 'gpt-4.1': { contextWindowTokens: 400, reserveTokens: 10 } });
    const r = await agent({ catalog }).execute(
      {
        id: 't',
        messages: [
          { role: 'user', content: 'old question' },
          // a tool request too large to keep, and its small result
          { role: 'assistant', content: '', tool_calls: [{ id: 'c9', type: 'function', function: { name: 'docs__search_docs', arguments: JSON.stringify({ query: 'word '.repeat(400) }) } }] },
          { role: 'tool', tool_call_id: 'c9', content: 'small result' },
          { role: 'user', content: 'the newest question' },
        ],
      },
      soon(),
    );
    expect(r.ok).toBe(true);
    expect(sent()[0].messages).toEqual([{ role: 'user', content: 'the newest question' }]);
  });

  test('a model that keeps asking for tools ends the task tool_rounds_exceeded after maxRounds rounds, with every round billed', async () => {
    const r = await agent({ tools: toolsOf([docsServer()], { maxRounds: 2 }) }).execute(ask('[[tools:loop]] [[tool:docs__search_docs {"query":"drain"}]]'), soon());
    expect(r.ok).toBe(false);
    expect(r.error!.code).toBe('tool_rounds_exceeded');
    expect(r.error!.message).toMatch(/still asked for tools \(docs__search_docs\) after 2 tool rounds \(tools\.maxRounds\)/);
    expect(mock.stats().calls).toBe(3);
    expect(r.toolCalls).toHaveLength(2);
    expect(r.attempts).toBe(3);
    expect(r.costUsd).toBeGreaterThan(0);
    expect(r.usage!.promptTokens).toBeGreaterThan(0);
  });

  test('a role without tools whose model asks for tools anyway ends tool_rounds_exceeded at once', async () => {
    const asking = {
      chat: async () => ({
        id: 'x',
        model: 'gpt-4.1',
        content: '',
        toolCalls: [{ id: 'c1', type: 'function' as const, function: { name: 'made__up', arguments: '{}' } }],
        usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15 },
      }),
    };
    const ex = new InferenceExecutor({ config: workerConfig(), client: asking, metrics: new RuntimeMetrics(), logger: silentLogger, agentId: 'w-0' });
    const r = await ex.execute(ask('x'), soon());
    expect(r.error).toEqual({ code: 'tool_rounds_exceeded', message: expect.stringMatching(/asked for tools \(made__up\) but role 'task-executor-a' has no tools configured/) });
    expect(r.usage).toEqual({ promptTokens: 10, completionTokens: 5, totalTokens: 15 });
  });

  test('tools and a structured answer together: tools first, then the JSON answer is checked', async () => {
    const r = await agent({ behavior: { instructions: INSTRUCTIONS, responseSchema: VERDICT }, tools: toolsOf([docsServer()]) }).execute(ask('[[tool:docs__search_docs {"query":"quota"}]]'), soon());
    expect(r.ok).toBe(true);
    expect(r.toolCalls).toHaveLength(1);
    expect(JSON.parse(r.content!)).toEqual({ pass: true, feedback: 'mock' });
    expect(sent().every((req) => req.response_format?.json_schema?.name === 'verdict')).toBe(true);
  });
});
