import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { McpHttpServer, startMcpHttpServer } from './mcp-http';

/** The in-repo documents the docs server serves (agent-runtime/mcp-docs). */
export const DOCS_DIR = path.resolve(__dirname, '..', '..', 'mcp-docs');

export interface Doc {
  /** File name without `.md`. */
  readonly id: string;
  /** The first `# ` heading. */
  readonly title: string;
  readonly text: string;
}

export function loadDocs(dir: string = DOCS_DIR): Doc[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => {
      const text = readFileSync(path.join(dir, f), 'utf8');
      const title = /^#\s+(.+)$/m.exec(text)?.[1].trim() ?? f;
      return { id: f.replace(/\.md$/, ''), title, text };
    });
}

const STOPWORDS = new Set(['the', 'and', 'for', 'with', 'about', 'what', 'how', 'are', 'that', 'this', 'from', 'into', 'facts', 'find', 'look']);
function terms(s: string): string[] {
  return s
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length >= 3 && !STOPWORDS.has(w));
}

/**
 * Ranks documents by how many query terms they contain (a title match
 * counts three times). Written by hand: over a handful of short files a
 * search library would add a dependency for what ten lines do.
 */
export function searchDocs(docs: readonly Doc[], query: string, limit = 3): Array<{ id: string; title: string; score: number; snippet: string }> {
  const q = [...new Set(terms(query))];
  return docs
    .map((d) => {
      const body = new Set(terms(d.text));
      const title = new Set(terms(d.title));
      const score = q.reduce((s, t) => s + (title.has(t) ? 3 : 0) + (body.has(t) ? 1 : 0), 0);
      const line = d.text.split('\n').find((l) => !l.startsWith('#') && q.some((t) => l.toLowerCase().includes(t))) ?? '';
      return { id: d.id, title: d.title, score, snippet: line.trim() };
    })
    .filter((r) => r.score > 0)
    .sort((a, b) => b.score - a.score || a.id.localeCompare(b.id))
    .slice(0, limit);
}

/** An MCP server with `search_docs(query)` and `get_doc(id)` over `docs`. */
export function buildDocsServer(docs: readonly Doc[]): McpServer {
  const server = new McpServer({ name: 'agent-docs', version: '0.1.0' });
  server.registerTool(
    'search_docs',
    {
      description: 'Search the Kubernetes agent operations notes. Returns the best matching document ids, titles and a matching line.',
      inputSchema: { query: z.string().min(1).describe('words to look for') },
    },
    ({ query }) => {
      const hits = searchDocs(docs, query);
      const text = hits.length === 0 ? `no document matches '${query}'; documents: ${docs.map((d) => d.id).join(', ')}` : hits.map((h) => `${h.id}: ${h.title}: ${h.snippet}`).join('\n');
      return { content: [{ type: 'text', text }] };
    },
  );
  server.registerTool(
    'get_doc',
    {
      description: 'The full text of one document, by the id search_docs returned.',
      inputSchema: { id: z.string().min(1).describe('document id, e.g. pod-disruption-budgets') },
    },
    ({ id }) => {
      const doc = docs.find((d) => d.id === id);
      if (!doc) return { isError: true, content: [{ type: 'text', text: `no document '${id}'; ids: ${docs.map((d) => d.id).join(', ')}` }] };
      return { content: [{ type: 'text', text: doc.text }] };
    },
  );
  return server;
}

/** Starts the docs server over Streamable HTTP (in tests and from the CLI). */
export function startDocsMcpServer(opts: { port?: number; host?: string; docsDir?: string; bearerToken?: string } = {}): Promise<McpHttpServer> {
  const docs = loadDocs(opts.docsDir);
  return startMcpHttpServer(() => buildDocsServer(docs), { port: opts.port, host: opts.host, bearerToken: opts.bearerToken });
}

/** `agent-runtime mcp-docs [--port N] [--host H] [--docs DIR] [--token-env NAME]` */
export async function runDocsMcpCli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      docs: { type: 'string' },
      'token-env': { type: 'string' },
    },
  });
  const tokenEnv = values['token-env'];
  const bearerToken = tokenEnv ? process.env[tokenEnv] : undefined;
  if (tokenEnv && !bearerToken) throw new Error(`--token-env: environment variable ${tokenEnv} is not set`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: '${values.port}' is not a port number (0-65535)`);
  const server = await startDocsMcpServer({ port, host: values.host, docsDir: values.docs, bearerToken });
  process.stdout.write(`mcp-docs listening ${server.url}\n`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
