import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { McpServerEntry, RoleTools } from '../config';
import { Logger } from '../logger';
import { RuntimeMetrics } from '../metrics';
import { ToolDefinition } from '../upstream/client';

/** Separates server and tool in the names offered to the model: `<server>__<tool>`. */
export const TOOL_NAME_SEPARATOR = '__';

/**
 * Tool output handed back to the model is cut at this many characters: one
 * runaway tool must not push the task's own prompt out of the context window.
 */
export const MAX_TOOL_OUTPUT_CHARS = 32 * 1024;

export type ToolOutcomeKind = 'ok' | 'tool_error' | 'timeout' | 'unavailable' | 'bad_arguments' | 'unknown_tool';

/** What one tool call produced: `content` is what the model reads in the `tool` message. */
export interface ToolOutcome {
  readonly ok: boolean;
  readonly outcome: ToolOutcomeKind;
  readonly content: string;
  readonly latencyMs: number;
}

/** What the executor needs from a tool source (tests may supply their own). */
export interface ToolRunner {
  /** The tools to offer the model now; servers that cannot be reached contribute none. Never rejects. */
  offer(deadlineAt: number): Promise<ToolDefinition[]>;
  /** Runs one call the model asked for; failures come back as a tool error outcome. Never rejects. */
  call(name: string, argumentsJson: string, deadlineAt: number, signal?: AbortSignal): Promise<ToolOutcome>;
  close(): Promise<void>;
}

export interface McpToolboxOptions {
  readonly tools: RoleTools;
  readonly logger: Logger;
  readonly metrics: RuntimeMetrics;
  /** Where `bearerTokenEnv` is looked up. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** After a failed connection, calls fail fast for this long before the next attempt (doubling while it keeps failing, up to 30 s). @default 1000 */
  readonly reconnectDelayMs?: number;
}

interface ListedTool {
  readonly offered: ToolDefinition;
  readonly tool: string;
}

/**
 * One MCP server: a client connected on first use and listed once per
 * connection. A transport failure drops the connection; the next use after
 * a backoff (`reconnectDelayMs`, doubling while attempts keep failing)
 * connects again, so a server that restarts comes back without the pod
 * restarting.
 */
class ServerConnection {
  private client?: Client;
  private connecting?: Promise<Client>;
  private tools: ListedTool[] = [];
  private retryAt = 0;
  private lastError = '';
  /** Failed connection attempts in a row (0 once connected). */
  private failures = 0;

  constructor(
    readonly entry: McpServerEntry,
    private readonly env: NodeJS.ProcessEnv,
    private readonly connectTimeoutMs: number,
    private readonly reconnectDelayMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * The listed tools, connecting first when needed; throws when the server
   * cannot be reached or has not answered within `waitMs`. One connection
   * attempt is shared by every task waiting for it, and runs to its own
   * timeout whatever the waiters' deadlines, so one task with little time
   * left cannot make the server look down for the others.
   */
  async ensure(waitMs: number): Promise<{ client: Client; tools: ListedTool[] }> {
    if (this.client) return { client: this.client, tools: this.tools };
    if (!this.connecting) {
      if (Date.now() < this.retryAt) throw new Error(`MCP server '${this.entry.name}' is unreachable: ${this.lastError}`);
      this.connecting = this.connect().finally(() => {
        this.connecting = undefined;
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`MCP server '${this.entry.name}' did not answer within ${waitMs} ms`)), Math.max(0, waitMs));
    });
    try {
      const client = await Promise.race([this.connecting, waited]);
      return { client, tools: this.tools };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Known tools without connecting (empty until the first successful listing). */
  known(): ListedTool[] {
    return this.tools;
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** True once a connection attempt has failed and none has succeeded since. */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** Starts a connection attempt when none is running and the backoff has passed; never waits for it. */
  reconnectInBackground(): void {
    if (this.client || this.connecting || Date.now() < this.retryAt) return;
    void this.ensure(this.connectTimeoutMs).catch(() => undefined);
  }

  /** Forget the connection after a transport failure; the next use reconnects. */
  drop(reason: string): void {
    const c = this.client;
    this.client = undefined;
    this.lastError = reason;
    this.failures += 1;
    // doubling up to 30 s, so a server that stays down costs a connection attempt now and then, not per task
    this.retryAt = Date.now() + Math.min(30_000, this.reconnectDelayMs * 2 ** Math.min(this.failures - 1, 16));
    if (c) void c.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    this.retryAt = Infinity;
    await c?.close().catch(() => undefined);
  }

  private async connect(): Promise<Client> {
    const timeout = this.connectTimeoutMs;
    const { name, url, bearerTokenEnv, allowedTools } = this.entry;
    try {
      const headers: Record<string, string> = {};
      if (bearerTokenEnv) {
        const token = this.env[bearerTokenEnv];
        if (!token) throw new Error(`environment variable ${bearerTokenEnv} (tools.mcpServers[${name}].bearerTokenEnv) is not set`);
        headers.authorization = `Bearer ${token}`;
      }
      const client = new Client({ name: 'agent-runtime', version: '0.1.0' });
      const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
      client.onclose = () => {
        if (this.client === client) this.drop('connection closed');
      };
      await client.connect(transport, { timeout });
      const listed = await client.listTools(undefined, { timeout });
      const allowed = allowedTools ? new Set(allowedTools) : undefined;
      this.tools = listed.tools
        .filter((t) => !allowed || allowed.has(t.name))
        .map((t) => ({
          tool: t.name,
          offered: {
            type: 'function' as const,
            function: {
              name: `${name}${TOOL_NAME_SEPARATOR}${t.name}`,
              ...(t.description ? { description: t.description } : {}),
              parameters: withoutDialect(t.inputSchema as Record<string, unknown>),
            },
          },
        }));
      this.client = client;
      this.lastError = '';
      this.failures = 0;
      this.logger.info({ server: name, url, tools: this.tools.map((t) => t.tool) }, 'MCP server connected');
      return client;
    } catch (e) {
      const reason = describe(e);
      this.drop(reason);
      this.logger.warn({ server: name, url, err: reason }, 'MCP server unreachable');
      throw new Error(`MCP server '${name}' is unreachable: ${reason}`);
    }
  }
}

/**
 * The role's MCP tool servers (config `tools.mcpServers`) behind the two
 * calls the executor makes: what to offer the model, and run one call.
 * Nothing here throws into a task: an unreachable server offers no tools
 * and its calls come back as tool errors for the model to read.
 */
export class McpToolbox implements ToolRunner {
  private readonly servers: Map<string, ServerConnection>;

  constructor(private readonly opts: McpToolboxOptions) {
    const env = opts.env ?? process.env;
    this.servers = new Map(opts.tools.mcpServers.map((s) => [s.name, new ServerConnection(s, env, opts.tools.callTimeoutMs, opts.reconnectDelayMs ?? 1000, opts.logger)]));
  }

  /** Connects to every server in the background (boot); failures are only logged. */
  warm(): void {
    for (const s of this.servers.values()) void s.ensure(this.opts.tools.callTimeoutMs).catch(() => undefined);
  }

  /**
   * Only a server's first connection is waited for (up to the call
   * timeout, within the deadline). A server that has failed reconnects in
   * the background while tasks go on with its last listing (its calls then
   * report it down) or, never listed, without its tools.
   */
  async offer(deadlineAt: number): Promise<ToolDefinition[]> {
    const timeoutMs = this.budget(deadlineAt);
    const lists = await Promise.all(
      [...this.servers.values()].map(async (s) => {
        if (s.connected) return s.known();
        if (s.failing || timeoutMs <= 0) {
          s.reconnectInBackground();
          return s.known();
        }
        try {
          return (await s.ensure(timeoutMs)).tools;
        } catch {
          return s.known();
        }
      }),
    );
    return lists.flat().map((t) => t.offered);
  }

  async call(name: string, argumentsJson: string, deadlineAt: number, signal?: AbortSignal): Promise<ToolOutcome> {
    const t0 = process.hrtime.bigint();
    const at = name.indexOf(TOOL_NAME_SEPARATOR);
    const serverName = at > 0 ? name.slice(0, at) : '';
    const toolName = at > 0 ? name.slice(at + TOOL_NAME_SEPARATOR.length) : name;
    const server = this.servers.get(serverName);
    const done = (outcome: ToolOutcomeKind, content: string): ToolOutcome => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      // label values only from the config and the servers' listings: a made-up name must not grow the series
      const listed = server?.known().some((t) => t.tool === toolName);
      const labels = { server: server ? serverName : '(unknown)', tool: listed ? toolName : '(unknown)' };
      this.opts.metrics.toolCalls.inc({ ...labels, outcome });
      this.opts.metrics.toolLatency.observe(labels, seconds);
      return { ok: outcome === 'ok', outcome, content: truncate(content), latencyMs: Math.round(seconds * 1000) };
    };
    if (!server) {
      return done('unknown_tool', `error: no tool '${name}'; tools are named <server>${TOOL_NAME_SEPARATOR}<tool> with servers ${[...this.servers.keys()].join(', ')}`);
    }
    if (server.entry.allowedTools && !server.entry.allowedTools.includes(toolName)) {
      return done('unknown_tool', `error: tool '${toolName}' of server '${serverName}' is not allowed for this role`);
    }
    let args: Record<string, unknown>;
    try {
      const parsed: unknown = argumentsJson.trim() === '' ? {} : JSON.parse(argumentsJson);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('arguments must be a JSON object');
      args = parsed as Record<string, unknown>;
    } catch (e) {
      return done('bad_arguments', `error: the arguments of ${name} are not a JSON object: ${(e as Error).message}`);
    }
    const timeoutMs = this.budget(deadlineAt);
    if (timeoutMs <= 0) return done('timeout', `error: no time left in the task's deadline to call ${name}`);
    let client: Client;
    try {
      ({ client } = await server.ensure(timeoutMs));
    } catch (e) {
      return done('unavailable', `error: ${(e as Error).message}`);
    }
    try {
      const left = Math.max(1, Math.min(timeoutMs, deadlineAt - Date.now()));
      const res = await client.callTool({ name: toolName, arguments: args }, undefined, { timeout: left, signal });
      const text = contentText(res);
      return res.isError ? done('tool_error', `error: ${text || 'the tool reported an error'}`) : done('ok', text);
    } catch (e) {
      if (e instanceof McpError && e.code === ErrorCode.RequestTimeout) {
        return done('timeout', `error: ${name} did not answer within ${timeoutMs} ms`);
      }
      if (e instanceof McpError && e.code !== ErrorCode.ConnectionClosed) {
        // the server answered with a JSON-RPC error (unknown tool, invalid params): the connection is fine
        return done('tool_error', `error: ${e.message}`);
      }
      server.drop(describe(e));
      return done('unavailable', `error: MCP server '${serverName}' failed: ${describe(e)}`);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.close()));
  }

  /** A tool call or connection may take tools.callTimeoutMs, never past the task's deadline. */
  private budget(deadlineAt: number): number {
    return Math.min(this.opts.tools.callTimeoutMs, deadlineAt - Date.now());
  }
}

/** The text the model reads from a tool result: its text parts, else its structured content. */
function contentText(res: { content?: unknown; structuredContent?: unknown; toolResult?: unknown }): string {
  const parts = Array.isArray(res.content) ? (res.content as Array<{ type?: string; text?: string }>) : [];
  const text = parts
    .map((p) => (p.type === 'text' && typeof p.text === 'string' ? p.text : `[${p.type ?? 'content'} omitted]`))
    .join('\n');
  if (text) return text;
  if (res.structuredContent !== undefined) return JSON.stringify(res.structuredContent);
  if (res.toolResult !== undefined) return JSON.stringify(res.toolResult);
  return '';
}

/** OpenAI's function parameters are a bare schema: the `$schema` dialect marker MCP servers send is left out. */
function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

function truncate(s: string): string {
  return s.length <= MAX_TOOL_OUTPUT_CHARS ? s : `${s.slice(0, MAX_TOOL_OUTPUT_CHARS)}\n[truncated: ${s.length - MAX_TOOL_OUTPUT_CHARS} more characters]`;
}

function describe(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const cause = err.cause?.code ?? err.cause?.message;
  return cause ? `${err.message} (${cause})` : (err.message ?? String(e));
}
