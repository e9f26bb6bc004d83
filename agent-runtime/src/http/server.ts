import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { AgentCore } from '../server/core';
import { RequestError } from './jobs';

/** One request as a route sees it. */
export interface RequestContext {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  /** the path, without the query string */
  readonly path: string;
  /** the query string's parameters */
  readonly query: URLSearchParams;
  /** the path's capture groups when the route's `path` is a RegExp */
  readonly params: readonly string[];
  /** Answers with a JSON body (or a string as is), observed in `agent_http_request_duration_seconds` under the route's name. */
  send(status: number, body: unknown, headers?: Record<string, string>, contentType?: string): void;
  /** Answers `{ error: { message, code? } }`. */
  fail(status: number, message: string, headers?: Record<string, string>, code?: string): void;
  /** The body as text, at most `maxRequestBytes` (413 otherwise: a RequestError with status 413). */
  body(): Promise<string>;
}

/** A route of the HTTP API. */
export interface Route {
  readonly method: string;
  /** an exact path, or a RegExp over the whole path whose groups become `params` */
  readonly path: string | RegExp;
  /** the `route` label of the request metrics */
  readonly name: string;
  handle(ctx: RequestContext): void | Promise<void>;
}

export interface AgentHttpServer {
  readonly server: http.Server;
  listen(port: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The agent's HTTP port: `/healthz`, `/readyz`, `/metrics` on every role,
 * and the routes it is given (the job API on the entry). A route's thrown
 * RequestError becomes its status; anything else a 500 with the message;
 * the server keeps serving either way.
 */
export function createHttpServer(core: AgentCore, routes: readonly Route[]): AgentHttpServer {
  const { env, metrics, executor, config } = core;
  const builtIn: Route[] = [
    { method: 'GET', path: '/healthz', name: 'healthz', handle: (c) => c.send(200, { status: 'ok', agent: env.agentId }) },
    {
      method: 'GET',
      path: '/readyz',
      name: 'readyz',
      handle: (c) => {
        const r = core.ready();
        c.send(r.ok ? 200 : 503, r.ok ? { status: 'ready' } : { status: 'not ready', reason: r.why, circuits: executor?.circuitStates() });
      },
    },
    { method: 'GET', path: '/metrics', name: 'metrics', handle: async (c) => c.send(200, await metrics.text(), {}, metrics.contentType) },
  ];
  const all = [...builtIn, ...routes];
  const matches = (r: Route, path: string): string[] | undefined => {
    if (typeof r.path === 'string') return r.path === path ? [] : undefined;
    const m = r.path.exec(path);
    return m && m[0] === path ? m.slice(1) : undefined;
  };
  const hint = routes.length > 0 ? `; try ${routes[0].method} ${String(routes[0].path)}` : '';

  const server = http.createServer((req, res) => {
    const t0 = process.hrtime.bigint();
    const [path, search = ''] = (req.url ?? '/').split('?', 2);
    let route: Route | undefined;
    let params: string[] = [];
    const allowed: string[] = [];
    for (const r of all) {
      const p = matches(r, path);
      if (!p) continue;
      if (r.method === req.method) {
        route = r;
        params = p;
        break;
      }
      allowed.push(r.method);
    }
    const name = route?.name ?? (allowed.length > 0 ? all.find((r) => matches(r, path))!.name : 'other');
    const send = (status: number, body: unknown, headers: Record<string, string> = {}, contentType = 'application/json') => {
      if (res.headersSent) return;
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
      metrics.httpRequests.observe({ route: name, status: String(status) }, Number(process.hrtime.bigint() - t0) / 1e9);
    };
    const fail = (status: number, message: string, headers?: Record<string, string>, code?: string) => send(status, { error: code ? { code, message } : { message } }, headers);
    if (!route) {
      req.resume();
      if (allowed.length > 0) return fail(405, `use ${allowed.join(' or ')} ${path}`, { allow: allowed.join(', ') });
      return fail(404, `no route ${req.method} ${path}${hint}`);
    }
    const ctx: RequestContext = { req, res, path, query: new URLSearchParams(search), params, send, fail, body: () => readBody(req, config.limits.maxRequestBytes) };
    req.on('error', () => undefined);
    const failed = (e: unknown) => {
      if (e instanceof RequestError) return fail(e.status, e.message);
      core.logger.error({ err: (e as Error).message, route: name }, 'request failed unexpectedly');
      fail(500, `internal error: ${(e as Error).message}`);
    };
    try {
      const p = route.handle(ctx);
      if (p) p.catch(failed);
    } catch (e) {
      failed(e);
    }
  });
  server.keepAliveTimeout = 65_000;

  return {
    server,
    listen: (port) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '0.0.0.0', () => resolve((server.address() as AddressInfo).port));
      }),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Reads a request body of at most `limit` bytes: a declared or actual larger body is a 413 (the rest is drained, not buffered). */
export function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new RequestError(413, `body of ${declared} bytes exceeds the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        tooBig = true;
        chunks.length = 0;
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => (tooBig ? reject(new RequestError(413, `body exceeds the limit of ${limit} bytes`)) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}
