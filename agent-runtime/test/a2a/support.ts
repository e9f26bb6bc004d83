import { randomUUID } from 'node:crypto';
import { Message, Part, Role, SendMessageRequest, StreamResponse } from '@a2a-js/sdk';
import { Client, ClientFactory, JsonRpcTransportFactory } from '@a2a-js/sdk/client';

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
