import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { sampleOf } from '../src/mock/upstream';
import { loadDocs, searchDocs } from '../src/tools/docs-server';

// The in-repo MCP docs server (agent-runtime mcp-docs) and the mock's
// schema-matching answers.

const CLI = path.resolve(__dirname, '..', 'dist', 'cli.js');

test('search ranks by query terms, titles first; a query with no known term finds nothing', () => {
  const docs = loadDocs();
  expect(docs.map((d) => d.id)).toEqual(['graceful-shutdown', 'horizontal-pod-autoscaling', 'network-policies', 'pod-disruption-budgets', 'pod-security-restricted']);
  expect(searchDocs(docs, 'disruption budgets')[0]).toEqual({ id: 'pod-disruption-budgets', title: 'Pod disruption budgets for agent roles', score: expect.any(Number), snippet: expect.stringMatching(/disruption/i) });
  expect(searchDocs(docs, 'autoscaling stabilization')[0].id).toBe('horizontal-pod-autoscaling');
  expect(searchDocs(docs, 'xylophone')).toEqual([]);
});

test('`agent-runtime mcp-docs --port 0` prints one line with its URL and serves search_docs and get_doc over Streamable HTTP', async () => {
  const child = spawn(process.execPath, [CLI, 'mcp-docs', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(out);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    expect(line).toMatch(/^mcp-docs listening http:\/\/127\.0\.0\.1:\d+\/mcp\n$/);
    const url = line.trim().split(' ')[2];
    const client = new Client({ name: 'test', version: '0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['search_docs', 'get_doc']);
      const found = await client.callTool({ name: 'search_docs', arguments: { query: 'network policy egress' } });
      expect((found.content as Array<{ text: string }>)[0].text).toMatch(/^network-policies: Network policies/);
      const doc = await client.callTool({ name: 'get_doc', arguments: { id: 'graceful-shutdown' } });
      expect((doc.content as Array<{ text: string }>)[0].text).toMatch(/^# Graceful shutdown/);
      const missing = await client.callTool({ name: 'get_doc', arguments: { id: 'nope' } });
      expect(missing.isError).toBe(true);
    } finally {
      await client.close();
    }
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
});

test('the mock answers a json_schema request with the smallest matching value', () => {
  expect(
    sampleOf({
      type: 'object',
      properties: {
        pass: { type: 'boolean' },
        feedback: { type: 'string', minLength: 6 },
        level: { enum: ['low', 'high'] },
        n: { type: 'integer', minimum: 3 },
        tags: { type: 'array', items: { type: 'string' }, minItems: 2 },
        maybe: { type: ['null', 'number'] },
      },
    }),
  ).toEqual({ pass: true, feedback: 'mockkk', level: 'low', n: 3, tags: ['mock', 'mock'], maybe: 0 });
});
