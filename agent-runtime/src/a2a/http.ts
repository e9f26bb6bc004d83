import type { IncomingMessage } from 'node:http';
import { A2A_VERSION_HEADER, AgentCard, formatSSEErrorEvent, formatSSEEvent, SSE_HEADERS } from '@a2a-js/sdk';
import { A2A_LEGACY_PROTOCOL_VERSION } from '@a2a-js/sdk/compat/v0_3';
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server';
import { A2A_ERROR_CODE, ContentTypeNotSupportedError } from '@a2a-js/sdk/errors';
import { JsonRpcTransportHandler, ServerCallContext, validateVersion } from '@a2a-js/sdk/server';
import { AgentConfig, peerAddress } from '../config';
import { JobCaller, JobService } from '../jobs/job-service';
import type { RequestContext } from '../http/server';
import { Logger } from '../logger';
import { A2A_RPC_PATH, AGENT_CARD_PATH, agentCard, legacyAgentCard } from './card';
import { CALLER_STATE, JobRequestHandler, SIGNAL_STATE } from './job-handler';

export interface A2aHttpOptions {
  readonly config: AgentConfig;
  readonly jobs: JobService;
  readonly logger: Logger;
}

type Envelope = { jsonrpc: string; id: string | number | null; result?: unknown; error?: unknown };

/** `A2A-Version` as the request gives it; absent means 0.3 (the spec's rule). */
function requestedVersion(req: IncomingMessage): string {
  const v = req.headers[A2A_VERSION_HEADER.toLowerCase()];
  return (Array.isArray(v) ? v[0] : v)?.trim() || A2A_LEGACY_PROTOCOL_VERSION;
}

function isLegacy(version: string): boolean {
  return version.startsWith('0.');
}

/** The scheme and host the caller used to reach this pod. */
function baseUrlOf(req: IncomingMessage): string {
  const proto = (req.headers['x-forwarded-proto'] as string | undefined)?.split(',')[0].trim() || ((req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http');
  const host = req.headers.host ?? `${req.socket.localAddress}:${req.socket.localPort}`;
  return `${proto}://${host}`;
}

/**
 * A2A on the entry's HTTP port: the agent card and the JSON-RPC endpoint
 * (protocol 1.0 methods, and the 0.3 ones when a request asks for 0.3 or
 * names no version). The SDK's transport handlers do the protocol; this is
 * the node:http glue its Express adapter would otherwise be (our server is
 * node:http, and the Express adapter brings Express and its own body
 * parser, whose limit is not ours).
 */
export class A2aHttp {
  readonly handler: JobRequestHandler;
  private readonly v1: JsonRpcTransportHandler;
  private readonly legacy: LegacyJsonRpcTransportHandler;

  constructor(private readonly opts: A2aHttpOptions) {
    const { config } = opts;
    // the in-cluster address of the entry's HTTP Service: the card the handler reports when no request is at hand
    const serviceUrl = `http://${peerAddress(config.role, config.namespace).replace(/:\d+$/, '')}:8080`;
    this.handler = new JobRequestHandler(opts.jobs, () => agentCard(config, serviceUrl));
    this.v1 = new JsonRpcTransportHandler(this.handler);
    this.legacy = new LegacyJsonRpcTransportHandler(this.handler);
  }

  /** True for the paths A2A serves (the router sends them here). */
  static routes(url: string): boolean {
    return url === AGENT_CARD_PATH || url === A2A_RPC_PATH;
  }

  /** The card for a request: 1.0 when it asks for 1.x, else the 0.3 shape. */
  card(req: IncomingMessage): { status: number; body: unknown } {
    const card: AgentCard = agentCard(this.opts.config, baseUrlOf(req));
    if (isLegacy(requestedVersion(req))) return { status: 200, body: legacyAgentCard(card) };
    return { status: 200, body: AgentCard.toJSON(card) };
  }

  /**
   * Answers a JSON-RPC request whose body was read (and size-checked) by the
   * router. `caller` is who the router authenticated. Plain answers go out
   * through the router's `send` (and its request metrics); a stream is
   * written as Server-Sent Events.
   */
  async rpc(c: Pick<RequestContext, 'req' | 'res' | 'send'>, rawBody: string, caller: JobCaller): Promise<void> {
    const { req, res } = c;
    const version = requestedVersion(req);
    const legacy = isLegacy(version);
    const mapError = legacy ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError : JsonRpcTransportHandler.mapToJSONRPCError;
    const json = (status: number, body: unknown) => c.send(status, body);
    const contentType = req.headers['content-type']?.split(';', 1)[0].trim().toLowerCase();
    if (contentType && contentType !== 'application/json') {
      return json(200, { jsonrpc: '2.0', id: null, error: mapError(new ContentTypeNotSupportedError(`content-type '${contentType}' is not supported; send application/json`)) });
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(rawBody) as Record<string, unknown>;
    } catch (e) {
      return json(200, { jsonrpc: '2.0', id: null, error: { code: A2A_ERROR_CODE.PARSE_ERROR, message: `body is not valid JSON: ${(e as Error).message}` } });
    }
    const id = (body?.id as string | number | undefined) ?? null;
    // the request's lifetime: a stream stops following its job, a blocking send stops waiting, when the client goes
    const gone = new AbortController();
    res.once('close', () => gone.abort(new Error('the client closed the connection')));
    const context = new ServerCallContext({
      requestedVersion: version,
      state: new Map<string, unknown>([
        [CALLER_STATE, caller],
        [SIGNAL_STATE, gone.signal],
      ]),
    });
    let answer: Envelope | AsyncGenerator<Envelope, void, undefined>;
    try {
      validateVersion(version, await this.handler.getAgentCard(), 'JSONRPC');
      answer = await (legacy ? this.legacy : this.v1).handle(body, context);
    } catch (e) {
      return json(200, { jsonrpc: '2.0', id, error: mapError(e) });
    }
    if (!(Symbol.asyncIterator in answer)) return json(200, answer);

    const stream = answer;
    let first: IteratorResult<Envelope, void>;
    try {
      first = await stream.next();
    } catch (e) {
      // nothing sent yet: an error before the stream starts is a plain JSON-RPC error
      return json(200, { jsonrpc: '2.0', id, error: mapError(e) });
    }
    res.writeHead(200, SSE_HEADERS);
    const stop = () => void stream.return(undefined).catch(() => undefined);
    res.once('close', stop);
    try {
      for (let next = first; !next.done; next = await stream.next()) {
        if (res.destroyed) break;
        res.write(formatSSEEvent(next.value));
      }
    } catch (e) {
      this.opts.logger.warn({ err: (e as Error).message }, 'a2a stream ended with an error');
      if (!res.destroyed) res.write(formatSSEErrorEvent({ jsonrpc: '2.0', id, error: mapError(e) }));
    } finally {
      res.off('close', stop);
      if (!res.writableEnded) res.end();
    }
  }
}
