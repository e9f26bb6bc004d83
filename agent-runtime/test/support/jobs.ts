// Clients of the job API (issue 11) for tests: async submit, GET, cancel, and
// the Server-Sent Events stream parsed into events.

export interface SseEvent {
  id: string;
  event: string;
  data: unknown;
}

export interface JobViewJson {
  job_id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  durable: boolean;
  created_at: string;
  updated_at: string;
  results?: Array<{ id: string; ok: boolean; cost_usd: number; content: string | null; agent_id: string | null; error: { code: string; message: string } | null }>;
  steps?: Array<{ id: string; ok: boolean; cost_usd: number; content: string | null; error: { code: string; message: string } | null }>;
  success_rate: number;
  total_cost_usd: number;
}

/** POST with `Prefer: respond-async`; returns status, Location and body. */
export async function submitAsync(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', prefer: 'respond-async', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, location: res.headers.get('location'), retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { job_id: string; status: string; durable: boolean; error?: { message: string } } };
}

export async function getJob(url: string, id: string): Promise<{ status: number; body: JobViewJson & { error?: { message: string } } }> {
  const res = await fetch(`${url}/v1/jobs/${id}`);
  return { status: res.status, body: (await res.json()) as JobViewJson & { error?: { message: string } } };
}

export async function cancelJob(url: string, id: string): Promise<{ status: number; body: JobViewJson }> {
  const res = await fetch(`${url}/v1/jobs/${id}`, { method: 'DELETE' });
  return { status: res.status, body: (await res.json()) as JobViewJson };
}

/** Polls GET until the job's status is final (or `timeoutMs` passes: an error naming the last status). */
export async function waitForJob(url: string, id: string, timeoutMs = 60_000): Promise<JobViewJson> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await getJob(url, id).catch(() => undefined);
    if (r?.status === 200) {
      last = r.body.status;
      if (['succeeded', 'failed', 'cancelled'].includes(last)) return r.body;
    }
    if (Date.now() > end) throw new Error(`job ${id} not finished after ${timeoutMs} ms (last status ${last || 'unreachable'})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Reads `GET /v1/jobs/<id>/events` until `done` (or until `stopAfter`
 * events, then closes the connection), parsing each event.
 */
export async function readEvents(url: string, id: string, opts: { lastEventId?: string; stopAfter?: number } = {}): Promise<{ status: number; contentType: string | null; events: SseEvent[] }> {
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/jobs/${id}/events`, { headers: opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}, signal: ac.signal });
  const events: SseEvent[] = [];
  if (res.status !== 200 || !res.body) return { status: res.status, contentType: res.headers.get('content-type'), events };
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const e: Partial<SseEvent> = {};
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) e.id = line.slice(4);
          else if (line.startsWith('event: ')) e.event = line.slice(7);
          else if (line.startsWith('data: ')) e.data = JSON.parse(line.slice(6));
        }
        if (e.event === undefined) continue; // a comment (keep-alive)
        events.push(e as SseEvent);
        if (e.event === 'done' || events.length === opts.stopAfter) {
          ac.abort();
          return { status: res.status, contentType: res.headers.get('content-type'), events };
        }
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  }
  return { status: res.status, contentType: res.headers.get('content-type'), events };
}
