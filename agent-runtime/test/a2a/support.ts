import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { Message, Part, Role, SendMessageRequest, StreamResponse } from '@a2a-js/sdk';
import { Client, ClientFactory, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { A2aHttp } from '../../src/a2a/http';
import { AgentConfig } from '../../src/config';
import { JobCaller, JobService } from '../../src/jobs/job-service';
import { silentLogger } from '../support/fixtures';

/**
 * A2A over `jobs` on a node:http server, routed the way the entry's router
 * does (the card on GET, JSON-RPC on POST); `callerOf` plays the API-key check.
 */
export async function serveA2a(config: AgentConfig, jobs: JobService, callerOf: (req: http.IncomingMessage) => JobCaller = () => ({})): Promise<{ url: string; close: () => Promise<void> }> {
  const a2a = new A2aHttp({ config, jobs, logger: silentLogger });
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET') {
      const card = a2a.card(req);
      return reply(card.status, card.body);
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void a2a.rpc({ req, res, send: reply }, Buffer.concat(chunks).toString('utf8'), callerOf(req)));
    return undefined;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function text(value: string): Part {
  return { content: { $case: 'text', value }, metadata: undefined, filename: '', mediaType: 'text/plain' };
}

export function data(value: unknown): Part {
  return { content: { $case: 'data', value }, metadata: undefined, filename: '', mediaType: 'application/json' };
}

export function userMessage(parts: Part[], messageId: string = randomUUID()): Message {
  return { messageId, contextId: '', taskId: '', role: Role.ROLE_USER, parts, metadata: undefined, extensions: [], referenceTaskIds: [] };
}

export function send(parts: Part[], opts: { returnImmediately?: boolean; messageId?: string } = {}): SendMessageRequest {
  return {
    tenant: '',
    message: userMessage(parts, opts.messageId),
    configuration: opts.returnImmediately ? { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately: true } : undefined,
    metadata: undefined,
  };
}

/** The SDK's own client for the agent at `baseUrl` (card fetched from the well-known path), sending `apiKey` as a bearer token when given. */
export function a2aClient(baseUrl: string, apiKey?: string): Promise<Client> {
  const fetchImpl: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    if (apiKey) headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(input, { ...init, headers });
  };
  return new ClientFactory({ transports: [new JsonRpcTransportFactory({ fetchImpl })] }).createFromUrl(baseUrl);
}

/** One stream event in short: its kind, plus the state or artifact id. */
export function brief(e: StreamResponse): string {
  const p = e.payload!;
  switch (p.$case) {
    case 'task':
      return `task:${p.value.status?.state}`;
    case 'statusUpdate':
      return `status:${p.value.status?.state}`;
    case 'artifactUpdate':
      return `artifact:${p.value.artifact?.artifactId}`;
    default:
      return p.$case;
  }
}

/** The text of an artifact's (or message's) text parts. */
export function textOf(parts: readonly Part[] | undefined): string {
  return (parts ?? []).flatMap((p) => (p.content?.$case === 'text' ? [p.content.value] : [])).join('');
}
